//! Passkeys and security keys through the service on every backend, answered by a software
//! authenticator (webauthn-authenticator-rs's `SoftPasskey`, which signs real WebAuthn
//! assertions): enrolment from a session signed in with a code, sign-in and step-up with the
//! key, phishing-resistant roles held to their own session until then, single use and expiry
//! of ceremonies, strangers' keys refused, and every step audited. Time is a per-test clock.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::prelude::{
    CreationChallengeResponse, RequestChallengeResponse, Url,
};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use mdor_domain::OdsCode;
use mdor_service::webauthn::{self, CeremonyStarted, Relying, WebauthnSettings};
use mdor_service::{
    AccountRole, NewOrganisation, OrganisationKind, ServiceError, SessionCaller, SessionFactor,
    SignInRequest, StartedSession, authenticate_session, create_account, sign_in,
};

use crate::accounts::{T0, code, request, setup};
use crate::support::{TestStore, backends};

const PASSWORD: &str = "correct horse battery staple 42";
const ORIGIN: &str = "https://registry.example.nhs.uk";

type Authenticator = WebauthnAuthenticator<SoftPasskey>;

fn authenticator() -> Authenticator {
    // `true`: the software key claims user verification, as a key with a PIN would.
    WebauthnAuthenticator::new(SoftPasskey::new(true))
}

fn origin() -> Url {
    Url::parse(ORIGIN).unwrap()
}

/// The accounts set-up plus the WebAuthn relying party and a regulator organisation `MHRA`.
async fn relying_setup(backend: &str, clock: fn() -> DateTime<Utc>) -> TestStore {
    let mut t = setup(backend, clock).await;
    let relying = Relying::new(&WebauthnSettings {
        relying_party_id: "registry.example.nhs.uk".into(),
        origin: origin(),
    })
    .unwrap();
    t.ctx = t.ctx.clone().with_webauthn(relying);
    mdor_service::ensure_organisations(
        &t.ctx,
        &[NewOrganisation {
            ods_code: OdsCode::parse("MHRA").unwrap(),
            name: "Regulator".into(),
            kind: OrganisationKind::Regulator,
            region: None,
        }],
    )
    .await
    .unwrap();
    t
}

/// An account of `role` whose holder has chosen `PASSWORD`, signed in with a TOTP code at
/// the clock's time `at`: the session it is left with.
async fn signed_in_with_code(
    t: &TestStore,
    username: &str,
    role: AccountRole,
    ods: &str,
    at: i64,
) -> (StartedSession, SessionCaller) {
    let account = create_account(&t.ctx, &request(username, role, Some(ods)))
        .await
        .unwrap();
    let started = sign_in(
        &t.ctx,
        &SignInRequest {
            username,
            password: &account.initial_password,
            second_factor: &code(&account, at),
            new_password: Some(PASSWORD),
        },
    )
    .await
    .unwrap();
    let caller = caller(t, &started).await;
    (started, caller)
}

async fn caller(t: &TestStore, started: &StartedSession) -> SessionCaller {
    authenticate_session(&t.ctx, &started.secret).await.unwrap()
}

/// Registers `key` to the caller's account.
async fn register(t: &TestStore, caller: &SessionCaller, key: &mut Authenticator, label: &str) {
    let started = webauthn::begin_registration(&t.ctx, caller).await.unwrap();
    let answer = key
        .do_registration(origin(), creation_options(&started))
        .unwrap();
    webauthn::finish_registration(
        &t.ctx,
        caller,
        &started.ceremony,
        &serde_json::to_value(&answer).unwrap(),
        label,
    )
    .await
    .unwrap();
}

fn creation_options(started: &CeremonyStarted) -> CreationChallengeResponse {
    serde_json::from_value(started.options.clone()).unwrap()
}

fn request_options(started: &CeremonyStarted) -> RequestChallengeResponse {
    serde_json::from_value(started.options.clone()).unwrap()
}

/// `key`'s answer to a sign-in or step-up ceremony, as the browser would send it.
fn assertion(key: &mut Authenticator, started: &CeremonyStarted) -> serde_json::Value {
    let answer = key
        .do_authentication(origin(), request_options(started))
        .unwrap();
    serde_json::to_value(&answer).unwrap()
}

async fn audit_outcomes(t: &TestStore, action: &str) -> Vec<String> {
    t.store
        .audit_events(None, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|event| event.action == action)
        .map(|event| event.outcome)
        .collect()
}

fn assert_unauthenticated<T: std::fmt::Debug>(result: Result<T, ServiceError>) {
    match result {
        Err(ServiceError::Unauthenticated) => {}
        other => panic!("expected the uniform failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_regulator_signed_in_with_a_code_reaches_nothing_until_they_sign_in_with_a_registered_key()
 {
    static NOW: AtomicI64 = AtomicI64::new(T0);
    fn clock() -> DateTime<Utc> {
        DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap()
    }
    for backend in backends() {
        NOW.store(T0, Ordering::SeqCst);
        let t = relying_setup(backend, clock).await;
        let (code_session, with_code) =
            signed_in_with_code(&t, "reg.one", AccountRole::Regulator, "MHRA", T0).await;
        assert_eq!(with_code.session.assurance.factor, SessionFactor::Totp);
        assert!(!with_code.session.assurance.phishing_resistant);
        assert!(matches!(
            with_code.principal(&t.ctx).await,
            Err(ServiceError::PhishingResistantFactorRequired)
        ));

        // The session signed in with a code may enrol the first key, within 10 minutes.
        let mut key = authenticator();
        register(&t, &with_code, &mut key, "blue security key").await;
        let listed = webauthn::list_credentials(&t.ctx, &with_code)
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].label, "blue security key");
        assert_eq!(listed[0].last_used_at, None);
        assert_eq!(
            audit_outcomes(&t, "account.webauthn_register").await,
            ["ok"]
        );
        // Registering a key does not lift the code-established session's restriction.
        let with_code = caller(&t, &code_session).await;
        assert!(matches!(
            with_code.principal(&t.ctx).await,
            Err(ServiceError::PhishingResistantFactorRequired)
        ));

        // Sign-in with the password and the key: a phishing-resistant session that acts.
        NOW.store(T0 + 60, Ordering::SeqCst);
        let started = webauthn::begin_sign_in(&t.ctx, "reg.one", PASSWORD)
            .await
            .unwrap();
        let answer = assertion(&mut key, &started);
        let session = webauthn::finish_sign_in(&t.ctx, &started.ceremony, &answer)
            .await
            .unwrap();
        assert_eq!(session.assurance.factor, SessionFactor::Webauthn);
        assert!(session.assurance.phishing_resistant);
        let with_key = caller(&t, &session).await;
        assert!(with_key.session.assurance.phishing_resistant);
        let principal = with_key.principal(&t.ctx).await.unwrap();
        assert_eq!(principal.role, AccountRole::Regulator);
        assert_eq!(principal.organisation_ods, "MHRA");
        let used = webauthn::list_credentials(&t.ctx, &with_key).await.unwrap();
        assert_eq!(used[0].last_used_at, Some(clock()));
        assert_eq!(audit_outcomes(&t, "account.login").await, ["ok", "ok"]);
    }
}

#[tokio::test]
async fn a_ceremony_is_finished_once_only_and_not_after_five_minutes() {
    static NOW: AtomicI64 = AtomicI64::new(T0);
    fn clock() -> DateTime<Utc> {
        DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap()
    }
    for backend in backends() {
        NOW.store(T0, Ordering::SeqCst);
        let t = relying_setup(backend, clock).await;
        let (_, with_code) =
            signed_in_with_code(&t, "p.key", AccountRole::ProviderSubmitter, "RXR", T0).await;
        let mut key = authenticator();
        register(&t, &with_code, &mut key, "laptop").await;

        // A provider may sign in with a key too; replaying the same answer is refused.
        let started = webauthn::begin_sign_in(&t.ctx, "p.key", PASSWORD)
            .await
            .unwrap();
        let answer = assertion(&mut key, &started);
        webauthn::finish_sign_in(&t.ctx, &started.ceremony, &answer)
            .await
            .unwrap();
        assert_unauthenticated(webauthn::finish_sign_in(&t.ctx, &started.ceremony, &answer).await);

        // Answered five minutes later: refused and audited as expired.
        let started = webauthn::begin_sign_in(&t.ctx, "p.key", PASSWORD)
            .await
            .unwrap();
        let answer = assertion(&mut key, &started);
        NOW.store(T0 + 5 * 60, Ordering::SeqCst);
        assert_unauthenticated(webauthn::finish_sign_in(&t.ctx, &started.ceremony, &answer).await);
        assert_eq!(
            audit_outcomes(&t, "account.login").await,
            ["ok", "ok", "webauthn_ceremony_expired"]
        );

        // An unknown handle is the same failure.
        assert_unauthenticated(
            webauthn::finish_sign_in(&t.ctx, &format!("mdorw_{}", "1".repeat(64)), &answer).await,
        );
    }
}

#[tokio::test]
async fn another_accounts_key_or_an_answer_to_another_challenge_is_refused_as_a_failure() {
    static NOW: AtomicI64 = AtomicI64::new(T0);
    fn clock() -> DateTime<Utc> {
        DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap()
    }
    for backend in backends() {
        NOW.store(T0, Ordering::SeqCst);
        let t = relying_setup(backend, clock).await;
        let (_, with_code) =
            signed_in_with_code(&t, "admin.key", AccountRole::SystemAdmin, "X26", T0).await;
        let mut key = authenticator();
        register(&t, &with_code, &mut key, "office key").await;

        // Another account's registered key answers that account's challenge; sent with the
        // administrator's ceremony it is refused, since the challenge and credential differ.
        let (_, other) =
            signed_in_with_code(&t, "dr.other", AccountRole::Consultant, "RXR", T0 + 30).await;
        let mut other_key = authenticator();
        register(&t, &other, &mut other_key, "other's key").await;
        let admins = webauthn::begin_sign_in(&t.ctx, "admin.key", PASSWORD)
            .await
            .unwrap();
        let others = webauthn::begin_sign_in(&t.ctx, "dr.other", PASSWORD)
            .await
            .unwrap();
        let other_answer = assertion(&mut other_key, &others);
        assert_unauthenticated(
            webauthn::finish_sign_in(&t.ctx, &admins.ceremony, &other_answer).await,
        );

        // The right key's answer to one challenge, sent with another ceremony's handle.
        let first = webauthn::begin_sign_in(&t.ctx, "admin.key", PASSWORD)
            .await
            .unwrap();
        let second = webauthn::begin_sign_in(&t.ctx, "admin.key", PASSWORD)
            .await
            .unwrap();
        let answer_to_first = assertion(&mut key, &first);
        assert_unauthenticated(
            webauthn::finish_sign_in(&t.ctx, &second.ceremony, &answer_to_first).await,
        );
        // A body that is not an assertion at all.
        let third = webauthn::begin_sign_in(&t.ctx, "admin.key", PASSWORD)
            .await
            .unwrap();
        assert_unauthenticated(
            webauthn::finish_sign_in(&t.ctx, &third.ceremony, &serde_json::json!({"id": 1})).await,
        );
        let outcomes = audit_outcomes(&t, "account.login").await;
        assert_eq!(
            outcomes[2..],
            [
                "bad_second_factor",
                "bad_second_factor",
                "bad_second_factor"
            ],
            "{outcomes:?}"
        );
        let failures = t
            .store
            .login_failures_since(
                with_code.session.account,
                clock() - chrono::Duration::hours(1),
            )
            .await
            .unwrap();
        assert_eq!(
            failures.count, 3,
            "each refused assertion counts towards the soft lock"
        );
    }
}

#[tokio::test]
async fn the_password_is_checked_first_and_every_failure_before_the_key_looks_the_same() {
    static NOW: AtomicI64 = AtomicI64::new(T0);
    fn clock() -> DateTime<Utc> {
        DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap()
    }
    for backend in backends() {
        NOW.store(T0, Ordering::SeqCst);
        let t = relying_setup(backend, clock).await;
        let (_, with_code) =
            signed_in_with_code(&t, "has.key", AccountRole::Consultant, "RXR", T0).await;
        register(&t, &with_code, &mut authenticator(), "key").await;
        signed_in_with_code(&t, "no.key", AccountRole::Consultant, "RXR", T0 + 30).await;

        assert_unauthenticated(webauthn::begin_sign_in(&t.ctx, "has.key", "wrong password").await);
        assert_unauthenticated(webauthn::begin_sign_in(&t.ctx, "nobody.here", PASSWORD).await);
        assert_unauthenticated(webauthn::begin_sign_in(&t.ctx, "no.key", PASSWORD).await);
        let outcomes = audit_outcomes(&t, "account.login").await;
        assert_eq!(
            outcomes[2..],
            ["bad_password", "unknown_account", "no_webauthn_credential"]
        );
    }
}

#[tokio::test]
async fn a_second_key_or_a_revocation_needs_a_recent_step_up_made_with_a_key() {
    static NOW: AtomicI64 = AtomicI64::new(T0);
    fn clock() -> DateTime<Utc> {
        DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap()
    }
    for backend in backends() {
        NOW.store(T0, Ordering::SeqCst);
        let t = relying_setup(backend, clock).await;
        let (_, with_code) =
            signed_in_with_code(&t, "res.one", AccountRole::Researcher, "X26", T0).await;
        let mut first = authenticator();
        register(&t, &with_code, &mut first, "first").await;

        // Someone holding only the password and a code cannot add their own key.
        assert!(matches!(
            webauthn::begin_registration(&t.ctx, &with_code).await,
            Err(ServiceError::PhishingResistantFactorRequired)
        ));
        let listed = webauthn::list_credentials(&t.ctx, &with_code)
            .await
            .unwrap();
        assert!(matches!(
            webauthn::revoke_credential(&t.ctx, &with_code, listed[0].id).await,
            Err(ServiceError::PhishingResistantFactorRequired)
        ));

        // A step-up with the first key: a new secret, factor webauthn, and the second key.
        let started = webauthn::begin_reauthentication(&t.ctx, &with_code, PASSWORD)
            .await
            .unwrap();
        let answer = assertion(&mut first, &started);
        let stepped_up =
            webauthn::finish_reauthentication(&t.ctx, &with_code, &started.ceremony, &answer)
                .await
                .unwrap();
        assert_eq!(stepped_up.id, with_code.session.id);
        assert!(stepped_up.assurance.phishing_resistant);
        let with_key = caller(&t, &stepped_up).await;
        register(&t, &with_key, &mut authenticator(), "second").await;
        assert_eq!(
            webauthn::list_credentials(&t.ctx, &with_key)
                .await
                .unwrap()
                .len(),
            2
        );

        // Ten minutes on, the step-up is stale: nothing is managed until the next one.
        NOW.store(T0 + 10 * 60, Ordering::SeqCst);
        let with_key = authenticate_session(&t.ctx, &stepped_up.secret)
            .await
            .unwrap();
        assert!(matches!(
            webauthn::begin_registration(&t.ctx, &with_key).await,
            Err(ServiceError::ReauthenticationRequired)
        ));
        assert!(matches!(
            webauthn::revoke_credential(&t.ctx, &with_key, listed[0].id).await,
            Err(ServiceError::ReauthenticationRequired)
        ));

        // Stepped up again, the first key is revoked and no longer answers.
        let started = webauthn::begin_reauthentication(&t.ctx, &with_key, PASSWORD)
            .await
            .unwrap();
        let answer = assertion(&mut first, &started);
        let stepped_up =
            webauthn::finish_reauthentication(&t.ctx, &with_key, &started.ceremony, &answer)
                .await
                .unwrap();
        let with_key = caller(&t, &stepped_up).await;
        webauthn::revoke_credential(&t.ctx, &with_key, listed[0].id)
            .await
            .unwrap();
        assert!(matches!(
            webauthn::revoke_credential(&t.ctx, &with_key, listed[0].id).await,
            Err(ServiceError::NotFound { .. })
        ));
        let started = webauthn::begin_sign_in(&t.ctx, "res.one", PASSWORD)
            .await
            .unwrap();
        match first.do_authentication(origin(), request_options(&started)) {
            Err(_) => {}
            Ok(answer) => assert_unauthenticated(
                webauthn::finish_sign_in(
                    &t.ctx,
                    &started.ceremony,
                    &serde_json::to_value(&answer).unwrap(),
                )
                .await,
            ),
        }
        assert_eq!(audit_outcomes(&t, "account.webauthn_revoke").await, ["ok"]);
    }
}
