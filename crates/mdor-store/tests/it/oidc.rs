//! OpenID Connect sign-in on every backend: a sign-in under way is taken once by its state
//! hash (also when callbacks race) and expired ones are purged when another starts; a subject
//! links to one account per issuer with its audit entry, and a sign-in of a disabled account
//! records nothing.

use chrono::Duration;

use mdor_store::{
    AccountId, AccountRole, NewAccount, NewAccountAuditEvent, NewAuditEvent, NewOidcIdentity,
    NewOidcSignIn, OrganisationId, Store, StoreError,
};

use crate::fixtures::*;

async fn add_account(store: &dyn Store, username: &str, organisation: OrganisationId) -> AccountId {
    store
        .insert_account(
            &NewAccount {
                username: username.to_string(),
                role: AccountRole::Regulator,
                organisation: Some(organisation),
                patient: None,
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".to_string(),
                totp_secret_sealed: vec![7; 48],
                backup_code_hashes: Vec::new(),
                created_at: instant(2026, 1, 1, 9),
            },
            None,
        )
        .await
        .unwrap()
}

fn sign_in(state: &str, hour: u32) -> NewOidcSignIn {
    NewOidcSignIn {
        state_hash: state.repeat(32),
        nonce_hash: format!("n{state}").repeat(16),
        verifier_hash: format!("v{state}").repeat(16),
        created_at: instant(2026, 1, 2, hour),
        expires_at: instant(2026, 1, 2, hour) + Duration::minutes(10),
        step_up_session_hash: None,
    }
}

/// The operator's entry for linking a subject.
fn link_audit(organisation: OrganisationId) -> NewAuditEvent {
    NewAuditEvent {
        patients: Vec::new(),
        request: None,
        at: instant(2026, 1, 2, 12),
        organisation,
        role: "operator",
        token: None,
        account: None,
        action: "account.link_oidc",
        resource: "account/1".to_string(),
        patient: None,
        record_count: 0,
        purpose: "administration",
        outcome: "ok",
        break_glass: None,
    }
}

fn audit(organisation: OrganisationId, action: &'static str) -> NewAccountAuditEvent {
    NewAccountAuditEvent {
        request: None,
        at: instant(2026, 1, 2, 12),
        organisation,
        role: "operator",
        action,
        resource: "account/1".to_string(),
        outcome: "ok",
    }
}

pub async fn an_oidc_sign_in_is_taken_once_by_its_state_and_expired_ones_are_purged(
    store: &dyn Store,
) {
    store.insert_oidc_sign_in(&sign_in("a1", 9)).await.unwrap();
    store.insert_oidc_sign_in(&sign_in("b2", 9)).await.unwrap();
    let taken = store
        .take_oidc_sign_in(&"a1".repeat(32))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.nonce_hash, "na1".repeat(16));
    assert_eq!(taken.verifier_hash, "va1".repeat(16));
    assert_eq!(taken.created_at, instant(2026, 1, 2, 9));
    assert_eq!(taken.step_up_session_hash, None);
    assert_eq!(
        taken.expires_at,
        instant(2026, 1, 2, 9) + Duration::minutes(10)
    );
    // A state works once.
    assert!(
        store
            .take_oidc_sign_in(&"a1".repeat(32))
            .await
            .unwrap()
            .is_none()
    );
    // A sign-in starting an hour later purges b2, which expired at 09:10, and keeps a
    // sign-in that is still under way.
    store.insert_oidc_sign_in(&sign_in("c3", 10)).await.unwrap();
    let mut late = sign_in("d4", 10);
    late.created_at += Duration::minutes(5);
    store.insert_oidc_sign_in(&late).await.unwrap();
    assert!(
        store
            .take_oidc_sign_in(&"b2".repeat(32))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .take_oidc_sign_in(&"c3".repeat(32))
            .await
            .unwrap()
            .is_some()
    );
    // A step-up names the session it re-authenticates; a sign-in (above) names none.
    let mut step_up = sign_in("e5", 10);
    step_up.step_up_session_hash = Some("5e".repeat(32));
    store.insert_oidc_sign_in(&step_up).await.unwrap();
    let taken = store
        .take_oidc_sign_in(&"e5".repeat(32))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.step_up_session_hash, Some("5e".repeat(32)));
    // A state is unique.
    assert!(matches!(
        store.insert_oidc_sign_in(&late).await,
        Err(StoreError::Conflict { .. })
    ));
}

pub async fn of_concurrent_callbacks_with_one_state_exactly_one_takes_the_sign_in(
    store: std::sync::Arc<dyn Store>,
) {
    store.insert_oidc_sign_in(&sign_in("e5", 9)).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .take_oidc_sign_in(&"e5".repeat(32))
                    .await
                    .unwrap()
                    .is_some()
            })
        })
        .collect();
    let mut taken = 0;
    for task in tasks {
        taken += usize::from(task.await.unwrap());
    }
    assert_eq!(taken, 1);
}

pub async fn a_subject_links_to_one_account_per_issuer_and_a_disabled_account_records_no_sign_in(
    store: &dyn Store,
) {
    let regulator = add_provider(store, "RXX").await;
    let holder = add_account(store, "holder", regulator).await;
    let other = add_account(store, "other", regulator).await;
    let issuer = "https://idp.example";
    let link = |account, issuer: &str, subject: &str| NewOidcIdentity {
        account,
        issuer: issuer.to_string(),
        subject: subject.to_string(),
        linked_at: instant(2026, 1, 2, 9),
    };
    store
        .link_oidc_identity(&link(holder, issuer, "subject-1"), &link_audit(regulator))
        .await
        .unwrap();
    let found = store
        .account_by_oidc_identity(issuer, "subject-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, holder);
    assert_eq!(found.organisation_ods.as_deref(), Some("RXX"));
    // Another issuer's same subject, and an unknown subject, are nobody.
    for (issuer, subject) in [
        ("https://other.example", "subject-1"),
        (issuer, "subject-2"),
    ] {
        assert!(
            store
                .account_by_oidc_identity(issuer, subject)
                .await
                .unwrap()
                .is_none()
        );
    }
    // One subject is one account, and an account has one subject per issuer.
    for conflicting in [
        link(other, issuer, "subject-1"),
        link(holder, issuer, "subject-3"),
    ] {
        assert!(matches!(
            store
                .link_oidc_identity(&conflicting, &link_audit(regulator))
                .await,
            Err(StoreError::Conflict { .. })
        ));
    }
    store
        .link_oidc_identity(
            &link(holder, "https://other.example", "subject-9"),
            &link_audit(regulator),
        )
        .await
        .unwrap();
    let audit_entries = store.audit_events(None, 100).await.unwrap();
    assert_eq!(
        audit_entries
            .iter()
            .filter(|e| e.action == "account.link_oidc")
            .count(),
        2,
        "refused links write no audit entry"
    );

    let login = audit(regulator, "account.login");
    assert!(
        store
            .record_oidc_login(holder, instant(2026, 1, 2, 10), &login)
            .await
            .unwrap()
    );
    let signed_in = store.account_by_username("holder").await.unwrap().unwrap();
    assert_eq!(signed_in.last_login_at, Some(instant(2026, 1, 2, 10)));
    store
        .disable_account(
            holder,
            instant(2026, 1, 2, 11),
            &administration_audit(
                regulator,
                "account.disable",
                format!("account/{holder}"),
                instant(2026, 1, 2, 11),
            ),
        )
        .await
        .unwrap();
    let before = store.audit_events(None, 100).await.unwrap().len();
    assert!(
        !store
            .record_oidc_login(holder, instant(2026, 1, 2, 12), &login)
            .await
            .unwrap()
    );
    assert_eq!(store.audit_events(None, 100).await.unwrap().len(), before);
    let disabled = store
        .account_by_oidc_identity(issuer, "subject-1")
        .await
        .unwrap()
        .unwrap();
    assert!(disabled.disabled_at.is_some());
    assert_eq!(disabled.last_login_at, Some(instant(2026, 1, 2, 10)));
}
