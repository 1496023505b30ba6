//! Sessions on every backend: found by the hash of their secret with their account, used,
//! stepped up (a new secret for the same session), ended by their own account only with an
//! audit entry, and ended with their account when it is disabled or expires idle.

use mdor_store::{
    AccountId, AccountRole, NewAccount, NewAccountAuditEvent, NewSession, OrganisationId,
    SessionAssurance, SessionEnd, SessionFactor, Store,
};

use crate::fixtures::*;

async fn add_account(store: &dyn Store, username: &str, organisation: OrganisationId) -> AccountId {
    store
        .insert_account(
            &NewAccount {
                username: username.to_string(),
                role: AccountRole::ProviderSubmitter,
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

const TOTP: SessionAssurance = SessionAssurance {
    factor: SessionFactor::Totp,
    phishing_resistant: false,
};

const WEBAUTHN: SessionAssurance = SessionAssurance {
    factor: SessionFactor::Webauthn,
    phishing_resistant: true,
};

fn new_session(account: AccountId, secret_hash: &str, hour: u32) -> NewSession {
    NewSession {
        account,
        secret_hash: secret_hash.to_string(),
        at: instant(2026, 1, 2, hour),
        assurance: TOTP,
    }
}

fn session_audit(organisation: OrganisationId, outcome: &'static str) -> NewAccountAuditEvent {
    NewAccountAuditEvent {
        request: None,
        at: instant(2026, 1, 2, 12),
        organisation,
        role: "provider_submitter",
        action: "session.sign_out",
        resource: "account/1/session/1".to_string(),
        outcome,
    }
}

pub async fn a_session_is_found_by_its_secret_hash_used_stepped_up_and_ended_by_its_account(
    store: &dyn Store,
) {
    let provider = add_provider(store, "RXR").await;
    let holder = add_account(store, "holder", provider).await;
    let other = add_account(store, "other", provider).await;
    let first = store
        .insert_session(&new_session(holder, &"a1".repeat(32), 9))
        .await
        .unwrap();
    let second = store
        .insert_session(&new_session(holder, &"b2".repeat(32), 10))
        .await
        .unwrap();
    store
        .insert_session(&new_session(other, &"c3".repeat(32), 10))
        .await
        .unwrap();

    let found = store
        .session_by_secret_hash(&"a1".repeat(32))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.session.id, first);
    assert_eq!(found.session.account, holder);
    assert_eq!(found.session.created_at, instant(2026, 1, 2, 9));
    assert_eq!(found.session.last_seen_at, instant(2026, 1, 2, 9));
    assert_eq!(found.session.reauthenticated_at, instant(2026, 1, 2, 9));
    assert_eq!(found.username, "holder");
    assert_eq!(found.role, AccountRole::ProviderSubmitter);
    assert_eq!(found.organisation, Some(provider));
    assert_eq!(found.organisation_ods.as_deref(), Some("RXR"));
    assert!(found.must_change_password);
    assert_eq!(found.account_disabled_at, None);
    assert!(
        store
            .session_by_secret_hash(&"d4".repeat(32))
            .await
            .unwrap()
            .is_none()
    );

    store
        .touch_session(first, instant(2026, 1, 2, 11))
        .await
        .unwrap();
    let listed = store.account_sessions(holder).await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.id).collect::<Vec<_>>(),
        [first, second]
    );
    assert_eq!(listed[0].last_seen_at, instant(2026, 1, 2, 11));
    assert_eq!(listed[0].assurance, TOTP);

    // Step-up: the old secret stops working, the new one finds the same session, which now
    // records the factor of the step-up.
    assert!(
        store
            .rotate_session(first, &"e5".repeat(32), instant(2026, 1, 2, 12), WEBAUTHN)
            .await
            .unwrap()
    );
    assert!(
        store
            .session_by_secret_hash(&"a1".repeat(32))
            .await
            .unwrap()
            .is_none()
    );
    let stepped_up = store
        .session_by_secret_hash(&"e5".repeat(32))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stepped_up.session.id, first);
    assert_eq!(stepped_up.session.created_at, instant(2026, 1, 2, 9));
    assert_eq!(
        stepped_up.session.reauthenticated_at,
        instant(2026, 1, 2, 12)
    );
    assert_eq!(stepped_up.session.assurance, WEBAUTHN);

    // Another account cannot end the holder's session; the holder can, once, audited.
    let audits_before = store.audit_events(None, 1000).await.unwrap().len();
    assert!(
        !store
            .end_session(
                other,
                first,
                instant(2026, 1, 2, 12),
                SessionEnd::Revoked,
                Some(&session_audit(provider, "revoked")),
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store.audit_events(None, 1000).await.unwrap().len(),
        audits_before
    );
    assert!(
        store
            .end_session(
                holder,
                first,
                instant(2026, 1, 2, 12),
                SessionEnd::SignedOut,
                Some(&session_audit(provider, "signed_out")),
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .end_session(
                holder,
                first,
                instant(2026, 1, 2, 12),
                SessionEnd::SignedOut,
                None
            )
            .await
            .unwrap()
    );
    let audits = store.audit_events(None, 1000).await.unwrap();
    assert_eq!(audits.len(), audits_before + 1);
    assert!(
        audits
            .iter()
            .any(|a| a.action == "session.sign_out" && a.outcome == "signed_out")
    );
    assert!(
        store
            .session_by_secret_hash(&"e5".repeat(32))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !store
            .rotate_session(first, &"f6".repeat(32), instant(2026, 1, 2, 13), WEBAUTHN)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .account_sessions(holder)
            .await
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect::<Vec<_>>(),
        [second]
    );
}

pub async fn disabling_an_account_or_expiring_it_idle_ends_its_sessions_only(store: &dyn Store) {
    let provider = add_provider(store, "RXR").await;
    let disabled = add_account(store, "disabled", provider).await;
    let idle = add_account(store, "idle", provider).await;
    let active = add_account(store, "active", provider).await;
    for (account, hash) in [(disabled, "a1"), (idle, "b2"), (active, "c3")] {
        store
            .insert_session(&new_session(account, &hash.repeat(32), 9))
            .await
            .unwrap();
    }
    let audit = administration_audit(
        provider,
        "account.disable",
        format!("account/{disabled}"),
        instant(2026, 1, 3, 9),
    );
    assert!(
        store
            .disable_account(disabled, instant(2026, 1, 3, 9), &audit)
            .await
            .unwrap()
    );
    assert!(store.account_sessions(disabled).await.unwrap().is_empty());
    assert!(
        store
            .session_by_secret_hash(&"a1".repeat(32))
            .await
            .unwrap()
            .is_none()
    );
    // A second disabling changes nothing and writes no audit entry.
    let audits = store.audit_events(None, 1000).await.unwrap().len();
    assert!(
        !store
            .disable_account(disabled, instant(2026, 1, 4, 9), &audit)
            .await
            .unwrap()
    );
    assert_eq!(store.audit_events(None, 1000).await.unwrap().len(), audits);
    let account = store
        .account_by_username("disabled")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(account.disabled_at, Some(instant(2026, 1, 3, 9)));

    // `active` signs in after the idle cut-off; `idle` never did.
    let recent = mdor_store::LoginSuccess {
        account: active,
        at: instant(2026, 3, 1, 9),
        second_factor: mdor_store::SecondFactorUse::TotpStep(5),
        rehashed_password: None,
    };
    assert!(
        store
            .record_login_success(&recent, &session_audit(provider, "ok"))
            .await
            .unwrap()
    );
    let expired = store
        .disable_idle_accounts(instant(2026, 2, 1, 0), instant(2026, 4, 1, 0))
        .await
        .unwrap();
    assert_eq!(expired, [idle]);
    assert!(store.account_sessions(idle).await.unwrap().is_empty());
    assert_eq!(store.account_sessions(active).await.unwrap().len(), 1);
}
