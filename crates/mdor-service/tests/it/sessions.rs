//! Sessions through the service on every backend: started only by a full sign-in, the idle
//! and absolute timeouts on the test's clock, step-up and its 10-minute window, listing and
//! revoking one's own sessions only, sign-out, and disabling or idle expiry ending an
//! account's sessions. Time is a per-test clock the test moves.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

use mdor_service::accounts::{CreatedAccount, Username};
use mdor_service::sessions::{ABSOLUTE_TIMEOUT, IDLE_TIMEOUT};
use mdor_service::{
    AccountRole, Credential, Role, ServiceError, SessionCaller, SessionSecret, SignInRequest,
    StartedSession, authenticate_session, create_account, disable_account, expire_idle_accounts,
    list_sessions, operator_disable_account, reauthenticate, revoke_session, sign_in, sign_out,
};

use crate::accounts::{T0, code, request, setup};
use crate::support::{TestStore, backends, principal};

const NEW_PASSWORD: &str = "correct horse battery staple 42";

/// A provider submitter of `RXR` who has chosen their password (with the code of `T0`).
async fn submitter(t: &TestStore, username: &str) -> CreatedAccount {
    let account = create_account(
        &t.ctx,
        &request(username, AccountRole::ProviderSubmitter, Some("RXR")),
    )
    .await
    .unwrap();
    let started = sign_in(
        &t.ctx,
        &SignInRequest {
            username,
            password: &account.initial_password,
            second_factor: &code(&account, T0),
            new_password: Some(NEW_PASSWORD),
        },
    )
    .await
    .unwrap();
    sign_out(&t.ctx, &caller(t, &started.secret).await)
        .await
        .unwrap();
    account
}

/// Signs in with the next unused backup code.
async fn session(t: &TestStore, account: &CreatedAccount, backup_code: usize) -> StartedSession {
    sign_in(
        &t.ctx,
        &SignInRequest {
            username: &account.username,
            password: NEW_PASSWORD,
            second_factor: &account.backup_codes[backup_code],
            new_password: None,
        },
    )
    .await
    .unwrap()
}

async fn caller(t: &TestStore, secret: &SessionSecret) -> SessionCaller {
    authenticate_session(&t.ctx, secret).await.unwrap()
}

fn assert_unauthenticated<T: std::fmt::Debug>(result: Result<T, ServiceError>) {
    match result {
        Err(ServiceError::Unauthenticated) => {}
        other => panic!("expected Unauthenticated, got {other:?}"),
    }
}

#[tokio::test]
async fn a_session_starts_only_after_password_and_second_factor_and_after_the_initial_password_is_replaced()
 {
    static NOW: AtomicI64 = AtomicI64::new(T0);
    fn clock() -> DateTime<Utc> {
        DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap()
    }
    for backend in backends() {
        NOW.store(T0, Ordering::SeqCst);
        let t = setup(backend, clock).await;
        let account = create_account(
            &t.ctx,
            &request("p.jones", AccountRole::ProviderSubmitter, Some("RXR")),
        )
        .await
        .unwrap();
        let attempt = |password: &'static str, second_factor: String, new: Option<&'static str>| {
            let initial = account.initial_password.clone();
            let ctx = t.ctx.clone();
            async move {
                let password = if password.is_empty() {
                    initial.as_str()
                } else {
                    password
                };
                sign_in(
                    &ctx,
                    &SignInRequest {
                        username: "p.jones",
                        password,
                        second_factor: &second_factor,
                        new_password: new,
                    },
                )
                .await
            }
        };
        // A wrong password or code starts nothing.
        assert_unauthenticated(attempt("wrong password here", code(&account, T0), None).await);
        assert_unauthenticated(attempt("", "000000".into(), None).await);
        // The right ones, with the initial password still in place, start nothing either.
        match attempt("", code(&account, T0), None).await {
            Err(ServiceError::Conflict { code, .. }) => {
                assert_eq!(code, "password_change_required")
            }
            other => panic!("expected password_change_required, got {other:?}"),
        }
        assert!(
            t.store
                .account_sessions(account.id)
                .await
                .unwrap()
                .is_empty()
        );

        NOW.store(T0 + 30, Ordering::SeqCst);
        let started = attempt("", code(&account, T0 + 30), Some(NEW_PASSWORD))
            .await
            .unwrap();
        assert_eq!(started.account, account.id);
        assert_eq!(started.role, AccountRole::ProviderSubmitter);
        assert_eq!(started.expires_at, clock() + ABSOLUTE_TIMEOUT);
        // The secret is 256 bits, and only its hash is stored.
        assert_eq!(started.secret.expose().len(), "mdors_".len() + 64);
        assert!(
            t.store
                .session_by_secret_hash(started.secret.expose())
                .await
                .unwrap()
                .is_none()
        );
        let caller = caller(&t, &started.secret).await;
        assert_eq!(caller.session.id, started.id);
        assert_eq!(caller.username, "p.jones");
        // A provider submitter's session acts as the provider submitter principal.
        let principal = caller.principal(&t.ctx).await.unwrap();
        assert_eq!(principal.role, AccountRole::ProviderSubmitter);
        assert_eq!(principal.organisation_ods, "RXR");
        assert_eq!(principal.token(), None);
        assert!(matches!(
            principal.credential,
            Credential::Session { account: a, session: s, .. } if a == account.id && s == started.id
        ));
        // Each sign-in gets a fresh session and secret.
        NOW.store(T0 + 60, Ordering::SeqCst);
        let again = session(&t, &account, 0).await;
        assert_ne!(again.id, started.id);
        assert_ne!(again.secret, started.secret);
        // A well-formed secret that was never issued is refused.
        let forged = SessionSecret::parse(&format!("mdors_{}", "0".repeat(64))).unwrap();
        assert_unauthenticated(authenticate_session(&t.ctx, &forged).await);
    }
}

#[tokio::test]
async fn a_session_ends_after_30_idle_minutes_and_after_12_hours_however_busy() {
    static NOW: AtomicI64 = AtomicI64::new(T0);
    fn clock() -> DateTime<Utc> {
        DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap()
    }
    let idle = IDLE_TIMEOUT.num_seconds();
    for backend in backends() {
        NOW.store(T0, Ordering::SeqCst);
        let t = setup(backend, clock).await;
        let account = submitter(&t, "p.jones").await;
        let busy = session(&t, &account, 0).await;
        let quiet = session(&t, &account, 1).await;
        let start = T0;

        // Used every 20 minutes, `busy` lives on past many idle timeouts.
        let mut at = start;
        while at + 20 * 60 < start + ABSOLUTE_TIMEOUT.num_seconds() {
            at += 20 * 60;
            NOW.store(at, Ordering::SeqCst);
            caller(&t, &busy.secret).await;
        }
        // `quiet` was last used at the start: long past its idle timeout, and ended for good.
        assert_unauthenticated(authenticate_session(&t.ctx, &quiet.secret).await);
        NOW.store(start + 60, Ordering::SeqCst);
        assert_unauthenticated(authenticate_session(&t.ctx, &quiet.secret).await);

        // At 12 hours `busy` ends although it was used 20 minutes before.
        NOW.store(start + ABSOLUTE_TIMEOUT.num_seconds(), Ordering::SeqCst);
        assert_unauthenticated(authenticate_session(&t.ctx, &busy.secret).await);
        assert!(
            t.store
                .account_sessions(account.id)
                .await
                .unwrap()
                .is_empty()
        );

        // The idle timeout to the second: used at 29:59 it lives; 30:00 after a use it ends.
        let base = start + 13 * 3600;
        NOW.store(base, Ordering::SeqCst);
        let fresh = session(&t, &account, 2).await;
        NOW.store(base + idle - 1, Ordering::SeqCst);
        caller(&t, &fresh.secret).await;
        NOW.store(base + 2 * idle - 1, Ordering::SeqCst);
        assert_unauthenticated(authenticate_session(&t.ctx, &fresh.secret).await);
    }
}

#[tokio::test]
async fn step_up_replaces_the_secret_and_opens_the_ten_minute_window_for_exports() {
    static NOW: AtomicI64 = AtomicI64::new(T0);
    fn clock() -> DateTime<Utc> {
        DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap()
    }
    for backend in backends() {
        NOW.store(T0, Ordering::SeqCst);
        let t = setup(backend, clock).await;
        let account = submitter(&t, "p.jones").await;
        let started = session(&t, &account, 0).await;
        // The sign-in itself counts as an authentication for ten minutes.
        NOW.store(T0 + 9 * 60, Ordering::SeqCst);
        let current = caller(&t, &started.secret).await;
        assert!(current.reauthenticated_recently(clock()));
        current
            .principal(&t.ctx)
            .await
            .unwrap()
            .require_recent_authentication(&t.ctx)
            .unwrap();
        NOW.store(T0 + 10 * 60, Ordering::SeqCst);
        let current = caller(&t, &started.secret).await;
        assert!(!current.reauthenticated_recently(clock()));
        assert!(matches!(
            current
                .principal(&t.ctx)
                .await
                .unwrap()
                .require_recent_authentication(&t.ctx),
            Err(ServiceError::ReauthenticationRequired)
        ));

        // A wrong password changes nothing.
        assert_unauthenticated(
            reauthenticate(
                &t.ctx,
                &current,
                "not the password!",
                &account.backup_codes[1],
            )
            .await,
        );
        caller(&t, &started.secret).await;

        let stepped_up = reauthenticate(&t.ctx, &current, NEW_PASSWORD, &code(&account, T0 + 600))
            .await
            .unwrap();
        assert_eq!(stepped_up.id, started.id);
        assert_ne!(stepped_up.secret, started.secret);
        assert_eq!(stepped_up.reauthenticated_at, clock());
        assert_eq!(stepped_up.expires_at, started.expires_at);
        // The old secret stops working at once; the new one is recently re-authenticated.
        assert_unauthenticated(authenticate_session(&t.ctx, &started.secret).await);
        let renewed = caller(&t, &stepped_up.secret).await;
        assert!(renewed.reauthenticated_recently(clock()));
        renewed
            .principal(&t.ctx)
            .await
            .unwrap()
            .require_recent_authentication(&t.ctx)
            .unwrap();

        // Tokens are not subject to the window.
        let admin = principal(&t.ctx, Role::Admin).await;
        admin.require_recent_authentication(&t.ctx).unwrap();
    }
}

#[tokio::test]
async fn holders_list_and_revoke_their_own_sessions_only_and_sign_out_ends_the_current_one() {
    static NOW: AtomicI64 = AtomicI64::new(T0);
    fn clock() -> DateTime<Utc> {
        DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap()
    }
    for backend in backends() {
        NOW.store(T0, Ordering::SeqCst);
        let t = setup(backend, clock).await;
        let alice = submitter(&t, "alice").await;
        let bob = submitter(&t, "bob").await;
        let laptop = session(&t, &alice, 0).await;
        let phone = session(&t, &alice, 1).await;
        let bobs = session(&t, &bob, 0).await;
        let alice_now = caller(&t, &laptop.secret).await;

        let listed = list_sessions(&t.ctx, &alice_now).await.unwrap();
        assert_eq!(
            listed.iter().map(|s| s.id).collect::<Vec<_>>(),
            [laptop.id, phone.id]
        );
        assert!(listed.iter().all(|s| s.account == alice.id));

        // Bob's session is not Alice's to revoke, and looks absent to her.
        assert!(matches!(
            revoke_session(&t.ctx, &alice_now, bobs.id).await,
            Err(ServiceError::NotFound { what: "session" })
        ));
        caller(&t, &bobs.secret).await;

        revoke_session(&t.ctx, &alice_now, phone.id).await.unwrap();
        assert_unauthenticated(authenticate_session(&t.ctx, &phone.secret).await);
        assert!(matches!(
            revoke_session(&t.ctx, &alice_now, phone.id).await,
            Err(ServiceError::NotFound { .. })
        ));

        sign_out(&t.ctx, &alice_now).await.unwrap();
        assert_unauthenticated(authenticate_session(&t.ctx, &laptop.secret).await);
        caller(&t, &bobs.secret).await;

        // Each ending is in the audit, under the holder's organisation.
        let ended: Vec<(String, String)> = t
            .store
            .audit_events(None, 1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action.starts_with("session."))
            .map(|e| (e.action, e.outcome))
            .collect();
        assert!(ended.contains(&("session.revoke".into(), "revoked".into())));
        assert!(ended.contains(&("session.sign_out".into(), "signed_out".into())));
    }
}

/// The principal of a newly created API token of `role`.
async fn token_principal(t: &TestStore, role: Role) -> mdor_service::Principal {
    let organisation = principal(&t.ctx, role).await.organisation_ods;
    let token = mdor_service::create_token(
        &t.ctx,
        &mdor_domain::OdsCode::parse(&organisation).unwrap(),
        role,
        "sessions test",
    )
    .await
    .unwrap();
    mdor_service::authenticate(&t.ctx, &token.secret)
        .await
        .unwrap()
}

#[tokio::test]
async fn disabling_an_account_or_expiring_it_idle_ends_its_live_sessions() {
    static NOW: AtomicI64 = AtomicI64::new(T0);
    fn clock() -> DateTime<Utc> {
        DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap()
    }
    for backend in backends() {
        NOW.store(T0, Ordering::SeqCst);
        let t = setup(backend, clock).await;
        let leaver = submitter(&t, "leaver").await;
        let stayer = submitter(&t, "stayer").await;
        let leavers = session(&t, &leaver, 0).await;
        let stayers = session(&t, &stayer, 0).await;
        let username = Username::parse("leaver").unwrap();

        // Only an administrator disables accounts.
        // Real tokens: refusals are audited, naming the token.
        let provider = token_principal(&t, Role::ProviderSubmitter).await;
        let refused = disable_account(&t.ctx, &provider, &username).await;
        assert!(
            matches!(refused, Err(ServiceError::Forbidden { .. })),
            "{refused:?}"
        );
        caller(&t, &leavers.secret).await;

        // Nor does an administrator's API token: account administration takes a person's
        // session (see the web test `accounts`); the operator disables at the command line.
        let admin = token_principal(&t, Role::Admin).await;
        assert!(matches!(
            disable_account(&t.ctx, &admin, &username).await,
            Err(ServiceError::Forbidden { audited: true, .. })
        ));
        caller(&t, &leavers.secret).await;
        assert_eq!(
            operator_disable_account(&t.ctx, &username).await.unwrap(),
            leaver.id
        );
        assert_unauthenticated(authenticate_session(&t.ctx, &leavers.secret).await);
        assert!(
            t.store
                .account_sessions(leaver.id)
                .await
                .unwrap()
                .is_empty()
        );
        caller(&t, &stayers.secret).await;
        assert!(matches!(
            operator_disable_account(&t.ctx, &Username::parse("nobody").unwrap()).await,
            Err(ServiceError::NotFound { what: "account" })
        ));

        // 91 days on, the stayer's account expires idle; its session row, which nothing has
        // touched since, is ended with it.
        NOW.store(T0 + 91 * 86_400, Ordering::SeqCst);
        assert_eq!(t.store.account_sessions(stayer.id).await.unwrap().len(), 1);
        let expired = expire_idle_accounts(&t.ctx).await.unwrap();
        assert_eq!(expired, [stayer.id]);
        assert!(
            t.store
                .account_sessions(stayer.id)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn every_account_role_acts_as_a_principal_of_its_own_role_that_the_policy_judges() {
    static NOW: AtomicI64 = AtomicI64::new(T0);
    fn clock() -> DateTime<Utc> {
        DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap()
    }
    for backend in backends() {
        NOW.store(T0, Ordering::SeqCst);
        let t = setup(backend, clock).await;
        let account = create_account(
            &t.ctx,
            &request("dr.who", AccountRole::Consultant, Some("RXR")),
        )
        .await
        .unwrap();
        let started = sign_in(
            &t.ctx,
            &SignInRequest {
                username: "dr.who",
                password: &account.initial_password,
                second_factor: &code(&account, T0),
                new_password: Some(NEW_PASSWORD),
            },
        )
        .await
        .unwrap();
        let consultant = caller(&t, &started.secret).await;
        assert_eq!(consultant.role, AccountRole::Consultant);
        let principal = consultant.principal(&t.ctx).await.unwrap();
        assert_eq!(principal.role, AccountRole::Consultant);
        assert_eq!(principal.organisation_ods, "RXR");
        assert_eq!(principal.audit_role(), "consultant");
        // The policy gives consultants no surveillance alerts.
        assert!(matches!(
            mdor_service::surveillance_alerts(&t.ctx, &principal, 10).await,
            Err(ServiceError::Forbidden { .. })
        ));
        // The session itself works: the holder can still list and end it.
        assert_eq!(list_sessions(&t.ctx, &consultant).await.unwrap().len(), 1);
    }
}
