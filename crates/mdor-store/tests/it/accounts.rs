//! Accounts on every backend: stored and read back, usernames unique, the role and
//! organisation rules the schema holds, single use of TOTP steps and backup codes, failure
//! counting, rehashing, idle expiry, and the audit entry written with each sign-in.

use chrono::Duration;

use mdor_store::{
    AccountId, AccountRole, LoginFailures, LoginSuccess, NewAccountAuditEvent, OrganisationId,
    SecondFactorUse, Store, StoreError,
};

use crate::fixtures::*;

fn login_audit(organisation: OrganisationId, outcome: &'static str) -> NewAccountAuditEvent {
    NewAccountAuditEvent {
        request: None,
        at: instant(2026, 1, 2, 9),
        organisation,
        role: "consultant",
        action: "account.login",
        resource: "account/1".to_string(),
        outcome,
    }
}

fn success(account: AccountId, second_factor: SecondFactorUse) -> LoginSuccess {
    LoginSuccess {
        account,
        at: instant(2026, 1, 2, 9),
        second_factor,
        rehashed_password: None,
    }
}

async fn audit_count(store: &dyn Store) -> usize {
    store.audit_events(None, 1000).await.unwrap().len()
}

pub async fn accounts_are_read_back_by_username_and_a_taken_username_is_a_conflict(
    store: &dyn Store,
) {
    let provider = add_provider(store, "RXR").await;
    let id = store
        .insert_account(
            &new_account("j.smith", AccountRole::Consultant, Some(provider)),
            None,
        )
        .await
        .unwrap();
    let account = store.account_by_username("j.smith").await.unwrap().unwrap();
    assert_eq!(account.id, id);
    assert_eq!(account.role, AccountRole::Consultant);
    assert_eq!(account.organisation, Some(provider));
    assert_eq!(account.organisation_ods.as_deref(), Some("RXR"));
    assert_eq!(account.totp_secret_sealed, vec![7; 48]);
    assert_eq!(account.totp_last_step, None);
    assert_eq!(account.created_at, instant(2026, 1, 1, 9));
    assert_eq!(account.disabled_at, None);
    assert_eq!(store.unused_backup_codes(id).await.unwrap(), 2);
    assert!(
        store
            .account_by_username("j.smyth")
            .await
            .unwrap()
            .is_none()
    );

    let again = store
        .insert_account(
            &new_account("j.smith", AccountRole::Regulator, Some(provider)),
            None,
        )
        .await;
    assert!(
        matches!(again, Err(StoreError::Conflict { .. })),
        "{again:?}"
    );
}

pub async fn patients_have_no_organisation_and_everyone_else_has_one(store: &dyn Store) {
    let provider = add_provider(store, "RXR").await;
    let patient_with_organisation = store
        .insert_account(
            &new_account("pat.one", AccountRole::Patient, Some(provider)),
            None,
        )
        .await;
    assert!(
        matches!(patient_with_organisation, Err(StoreError::Conflict { .. })),
        "{patient_with_organisation:?}"
    );
    let staff_without_organisation = store
        .insert_account(
            &new_account("staff.one", AccountRole::Regulator, None),
            None,
        )
        .await;
    assert!(
        matches!(staff_without_organisation, Err(StoreError::Conflict { .. })),
        "{staff_without_organisation:?}"
    );
    let patient = store
        .insert_account(&new_account("pat.two", AccountRole::Patient, None), None)
        .await
        .unwrap();
    let account = store.account_by_username("pat.two").await.unwrap().unwrap();
    assert_eq!(account.id, patient);
    assert_eq!(account.organisation, None);
    assert_eq!(account.organisation_ods, None);
}

pub async fn a_totp_step_is_accepted_once_and_never_an_earlier_one(store: &dyn Store) {
    let provider = add_provider(store, "RXR").await;
    let id = store
        .insert_account(
            &new_account("j.smith", AccountRole::Consultant, Some(provider)),
            None,
        )
        .await
        .unwrap();
    let audit = login_audit(provider, "ok");
    let step = |n| success(id, SecondFactorUse::TotpStep(n));
    assert!(
        store
            .record_login_success(&step(100), &audit)
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_login_success(&step(100), &audit)
            .await
            .unwrap()
    );
    assert!(!store.record_login_success(&step(99), &audit).await.unwrap());
    assert!(
        store
            .record_login_success(&step(101), &audit)
            .await
            .unwrap()
    );

    let account = store.account_by_username("j.smith").await.unwrap().unwrap();
    assert_eq!(account.totp_last_step, Some(101));
    assert_eq!(account.last_login_at, Some(instant(2026, 1, 2, 9)));
    // Only the two accepted sign-ins reached the audit: a refused one wrote nothing.
    let events = store.audit_events(None, 10).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].action, "account.login");
    assert_eq!(events[0].role, "consultant");
    assert_eq!(events[0].purpose, "authentication");
    assert_eq!(events[0].organisation_ods, "RXR");
    assert_eq!(events[0].token, None);
}

pub async fn a_backup_code_is_accepted_once_and_a_rehashed_password_is_kept(store: &dyn Store) {
    let provider = add_provider(store, "RXR").await;
    let id = store
        .insert_account(
            &new_account("j.smith", AccountRole::Consultant, Some(provider)),
            None,
        )
        .await
        .unwrap();
    let audit = login_audit(provider, "ok");
    let mut with_code = success(id, SecondFactorUse::BackupCode("aa".repeat(32)));
    with_code.rehashed_password = Some("$argon2id$v=19$m=65536,t=3,p=1$bmV3$bmV3".to_string());
    assert!(
        store
            .record_login_success(&with_code, &audit)
            .await
            .unwrap()
    );
    assert_eq!(store.unused_backup_codes(id).await.unwrap(), 1);
    let account = store.account_by_username("j.smith").await.unwrap().unwrap();
    assert_eq!(
        account.password_hash,
        "$argon2id$v=19$m=65536,t=3,p=1$bmV3$bmV3"
    );

    assert!(
        !store
            .record_login_success(&with_code, &audit)
            .await
            .unwrap()
    );
    let unknown = success(id, SecondFactorUse::BackupCode("cc".repeat(32)));
    assert!(!store.record_login_success(&unknown, &audit).await.unwrap());
    assert_eq!(store.unused_backup_codes(id).await.unwrap(), 1);
    assert_eq!(audit_count(store).await, 1);
}

pub async fn login_failures_are_counted_from_a_time_with_their_audit(store: &dyn Store) {
    let provider = add_provider(store, "RXR").await;
    let id = store
        .insert_account(
            &new_account("j.smith", AccountRole::Consultant, Some(provider)),
            None,
        )
        .await
        .unwrap();
    let start = instant(2026, 1, 2, 9);
    for minutes in [0, 10, 20, 70] {
        let at = start + Duration::minutes(minutes);
        store
            .record_login_failure(Some(id), at, Some(&login_audit(provider, "bad_password")))
            .await
            .unwrap();
    }
    // A failure for no account (an unknown username) is audited but counted against nobody.
    store
        .record_login_failure(None, start, Some(&login_audit(provider, "unknown_account")))
        .await
        .unwrap();
    let failures = store
        .login_failures_since(id, start + Duration::minutes(10))
        .await
        .unwrap();
    assert_eq!(
        failures,
        LoginFailures {
            count: 3,
            latest: Some(start + Duration::minutes(70)),
        }
    );
    let none = store
        .login_failures_since(id, start + Duration::minutes(71))
        .await
        .unwrap();
    assert_eq!(
        none,
        LoginFailures {
            count: 0,
            latest: None
        }
    );
    let outcomes: Vec<String> = store
        .audit_events(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.outcome)
        .collect();
    assert_eq!(
        outcomes,
        [
            "bad_password",
            "bad_password",
            "bad_password",
            "bad_password",
            "unknown_account"
        ]
    );
}

pub async fn accounts_unused_since_a_time_are_disabled_and_then_refuse_every_factor(
    store: &dyn Store,
) {
    let provider = add_provider(store, "RXR").await;
    let mut old = new_account("old.user", AccountRole::Consultant, Some(provider));
    old.created_at = instant(2025, 6, 1, 9);
    let old = store.insert_account(&old, None).await.unwrap();
    let mut used = new_account("used.user", AccountRole::Consultant, Some(provider));
    used.created_at = instant(2025, 6, 1, 9);
    let used = store.insert_account(&used, None).await.unwrap();
    let mut new = new_account("new.user", AccountRole::Consultant, Some(provider));
    new.created_at = instant(2026, 3, 1, 9);
    store.insert_account(&new, None).await.unwrap();

    let mut recent = success(used, SecondFactorUse::TotpStep(5));
    recent.at = instant(2026, 2, 1, 9);
    let audit = login_audit(provider, "ok");
    assert!(store.record_login_success(&recent, &audit).await.unwrap());

    let unused_since = instant(2026, 1, 15, 0);
    let now = instant(2026, 4, 15, 0);
    let disabled = store
        .disable_idle_accounts(unused_since, now)
        .await
        .unwrap();
    assert_eq!(disabled, [old]);
    // Already disabled accounts are not disabled again.
    assert!(
        store
            .disable_idle_accounts(unused_since, now)
            .await
            .unwrap()
            .is_empty()
    );
    let account = store
        .account_by_username("old.user")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(account.disabled_at, Some(now));

    assert!(
        !store
            .record_login_success(&success(old, SecondFactorUse::TotpStep(9)), &audit)
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_login_success(
                &success(old, SecondFactorUse::BackupCode("aa".repeat(32))),
                &audit
            )
            .await
            .unwrap()
    );
}

pub async fn the_registry_organisation_is_the_first_of_kind_registry(store: &dyn Store) {
    add_provider(store, "RXR").await;
    assert_eq!(store.registry_organisation().await.unwrap(), None);
    let registry = store
        .upsert_organisation(&mdor_store::NewOrganisation {
            ods_code: ods("X26"),
            name: "The registry".to_string(),
            kind: mdor_store::OrganisationKind::Registry,
            region: None,
        })
        .await
        .unwrap();
    assert_eq!(store.registry_organisation().await.unwrap(), Some(registry));
}

/// Sign-ins racing with one TOTP code, and with one backup code: exactly one of each wins.
pub async fn of_concurrent_sign_ins_with_one_code_exactly_one_succeeds(
    store: std::sync::Arc<dyn Store>,
) {
    let provider = add_provider(&*store, "RXR").await;
    let id = store
        .insert_account(
            &new_account("j.smith", AccountRole::Consultant, Some(provider)),
            None,
        )
        .await
        .unwrap();
    for factor in [
        SecondFactorUse::TotpStep(100),
        SecondFactorUse::BackupCode("aa".repeat(32)),
    ] {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                let attempt = success(id, factor.clone());
                tokio::spawn(async move {
                    store
                        .record_login_success(&attempt, &login_audit(provider, "ok"))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut won = 0;
        for task in tasks {
            won += usize::from(task.await.unwrap());
        }
        assert_eq!(won, 1, "{factor:?}");
    }
    assert_eq!(audit_count(&*store).await, 2);
}

pub async fn a_chosen_password_replaces_the_initial_one_with_its_audit_entry(store: &dyn Store) {
    let provider = add_provider(store, "RXR").await;
    let id = store
        .insert_account(
            &new_account("j.smith", AccountRole::Consultant, Some(provider)),
            None,
        )
        .await
        .unwrap();
    let account = store.account_by_username("j.smith").await.unwrap().unwrap();
    assert!(account.must_change_password);
    let mut audit = login_audit(provider, "ok");
    audit.action = "account.password_change";
    assert!(
        store
            .set_account_password(id, "$argon2id$v=19$m=19456,t=2,p=1$bmV3$Y2hvc2Vu", &audit)
            .await
            .unwrap()
    );
    let account = store.account_by_username("j.smith").await.unwrap().unwrap();
    assert!(!account.must_change_password);
    assert_eq!(
        account.password_hash,
        "$argon2id$v=19$m=19456,t=2,p=1$bmV3$Y2hvc2Vu"
    );
    let events = store.audit_events(None, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, "account.password_change");

    store
        .disable_idle_accounts(instant(2030, 1, 1, 0), instant(2030, 1, 1, 0))
        .await
        .unwrap();
    assert!(
        !store
            .set_account_password(id, "$argon2id$v=19$m=19456,t=2,p=1$bmV3$bGF0ZXI", &audit)
            .await
            .unwrap()
    );
    assert_eq!(audit_count(store).await, 1);
}

pub async fn administrators_create_reenable_and_reset_accounts_each_with_its_audit_entry(
    store: &dyn Store,
) {
    let provider = add_provider(store, "RXR").await;
    let at = instant(2025, 6, 1, 9);
    // Creation: the entry names the new account, whatever resource it was given.
    let mut returning = new_account("returning.user", AccountRole::Consultant, Some(provider));
    returning.created_at = at;
    let create = administration_audit(provider, "account.create", "account".into(), at);
    let returning = store
        .insert_account(&returning, Some(&create))
        .await
        .unwrap();
    let mut other = new_account("another.user", AccountRole::Consultant, Some(provider));
    other.created_at = at;
    let other = store.insert_account(&other, None).await.unwrap();
    let entries = store.audit_events(None, 1000).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].action, "account.create");
    assert_eq!(entries[0].resource, format!("account/{returning}"));
    assert_eq!(entries[0].purpose, "administration");
    let listed: Vec<String> = store
        .accounts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.username)
        .collect();
    assert_eq!(listed, ["another.user", "returning.user"]);

    // Both expire idle; only one is re-enabled, and its idle clock restarts.
    let expired = store
        .disable_idle_accounts(instant(2026, 1, 1, 0), instant(2026, 4, 1, 9))
        .await
        .unwrap();
    assert_eq!(expired, [returning, other]);
    let enable = administration_audit(
        provider,
        "account.enable",
        format!("account/{returning}"),
        instant(2026, 4, 2, 9),
    );
    assert!(
        store
            .reinstate_account(returning, instant(2026, 4, 2, 9), &enable)
            .await
            .unwrap()
    );
    let count = audit_count(store).await;
    // An enabled account is left as it is, with no entry.
    assert!(
        !store
            .reinstate_account(returning, instant(2026, 4, 3, 9), &enable)
            .await
            .unwrap()
    );
    assert_eq!(audit_count(store).await, count);
    let account = store.account_by_id(returning).await.unwrap().unwrap();
    assert_eq!(account.disabled_at, None);
    assert_eq!(account.reinstated_at, Some(instant(2026, 4, 2, 9)));
    // The next daily expiry, with the same 90-day window, leaves it alone...
    assert!(
        store
            .disable_idle_accounts(instant(2026, 1, 2, 0), instant(2026, 4, 2, 10))
            .await
            .unwrap()
            .is_empty()
    );
    // ...until it is unused for 90 days from the re-enabling.
    assert_eq!(
        store
            .disable_idle_accounts(instant(2026, 7, 2, 0), instant(2026, 9, 30, 9))
            .await
            .unwrap(),
        [returning]
    );
    let enable_again = administration_audit(
        provider,
        "account.enable",
        format!("account/{returning}"),
        instant(2026, 10, 1, 9),
    );
    assert!(
        store
            .reinstate_account(returning, instant(2026, 10, 1, 9), &enable_again)
            .await
            .unwrap()
    );

    // A reset: the holder signed in once with a TOTP step, has a live session and failures.
    let used = success(returning, SecondFactorUse::TotpStep(40));
    assert!(
        store
            .record_login_success(&used, &login_audit(provider, "ok"))
            .await
            .unwrap()
    );
    store
        .insert_session(&mdor_store::NewSession {
            account: returning,
            secret_hash: "c4".repeat(32),
            at: instant(2026, 10, 1, 10),
            assurance: mdor_store::SessionAssurance {
                factor: mdor_store::SessionFactor::Totp,
                phishing_resistant: false,
            },
        })
        .await
        .unwrap();
    store
        .record_login_failure(Some(returning), instant(2026, 10, 1, 11), None)
        .await
        .unwrap();
    let reset = mdor_store::CredentialReset {
        account: returning,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaA".to_string(),
        totp_secret_sealed: vec![9; 48],
        backup_code_hashes: vec!["cc".repeat(32), "dd".repeat(32), "ee".repeat(32)],
        at: instant(2026, 10, 1, 12),
    };
    let reset_audit = administration_audit(
        provider,
        "account.reset_credentials",
        format!("account/{returning}"),
        instant(2026, 10, 1, 12),
    );
    assert!(
        store
            .reset_account_credentials(&reset, &reset_audit)
            .await
            .unwrap()
    );
    let account = store.account_by_id(returning).await.unwrap().unwrap();
    assert_eq!(account.password_hash, reset.password_hash);
    assert!(account.must_change_password);
    assert_eq!(account.totp_secret_sealed, vec![9; 48]);
    // A new secret starts with no step used: an early step of it is accepted.
    assert_eq!(account.totp_last_step, None);
    assert_eq!(account.reinstated_at, Some(instant(2026, 10, 1, 12)));
    assert!(
        store
            .session_by_secret_hash(&"c4".repeat(32))
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.account_sessions(returning).await.unwrap().is_empty());
    assert_eq!(
        store
            .login_failures_since(returning, instant(2026, 1, 1, 0))
            .await
            .unwrap()
            .count,
        0
    );
    assert_eq!(store.unused_backup_codes(returning).await.unwrap(), 3);
    // The old backup codes are gone; a new one works once.
    let audit = login_audit(provider, "ok");
    assert!(
        !store
            .record_login_success(
                &success(returning, SecondFactorUse::BackupCode("aa".repeat(32))),
                &audit
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .record_login_success(
                &success(returning, SecondFactorUse::BackupCode("dd".repeat(32))),
                &audit
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .record_login_success(&success(returning, SecondFactorUse::TotpStep(3)), &audit)
            .await
            .unwrap()
    );
    let last = store.audit_events(None, 1000).await.unwrap();
    let reset_entries: Vec<_> = last
        .iter()
        .filter(|e| e.action == "account.reset_credentials")
        .collect();
    assert_eq!(reset_entries.len(), 1);
    assert_eq!(reset_entries[0].resource, format!("account/{returning}"));
    // The other account is untouched.
    let other = store.account_by_id(other).await.unwrap().unwrap();
    assert_eq!(other.totp_secret_sealed, vec![7; 48]);
    assert!(other.disabled_at.is_some());
    // No such account: nothing written.
    let count = audit_count(store).await;
    let missing = mdor_store::CredentialReset {
        account: AccountId(999_999),
        ..reset
    };
    assert!(
        !store
            .reset_account_credentials(&missing, &reset_audit)
            .await
            .unwrap()
    );
    assert_eq!(audit_count(store).await, count);
}

/// Only a provider's data manager can be designated an approver; a designation or withdrawal
/// that changes nothing writes nothing; each change has its audit entry.
pub async fn an_approver_is_a_designated_data_manager_each_change_audited(store: &dyn Store) {
    let provider = add_provider(store, "RXR").await;
    let at = instant(2026, 6, 1, 9);
    let manager = store
        .insert_account(
            &new_account(
                "a.manager",
                AccountRole::ProviderDataManager,
                Some(provider),
            ),
            None,
        )
        .await
        .unwrap();
    let clerk = store
        .insert_account(
            &new_account("a.clerk", AccountRole::ProviderSubmitter, Some(provider)),
            None,
        )
        .await
        .unwrap();
    let approver =
        |id: AccountId| async move { store.account_by_id(id).await.unwrap().unwrap().approver };
    assert!(!approver(manager).await, "nobody starts as an approver");
    let grant = administration_audit(
        provider,
        "account.approver_grant",
        format!("account/{manager}"),
        at,
    );
    assert!(
        store
            .set_account_approver(manager, true, &grant)
            .await
            .unwrap()
    );
    assert!(approver(manager).await);
    assert!(
        !store
            .set_account_approver(manager, true, &grant)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_account_approver(clerk, true, &grant)
            .await
            .unwrap()
    );
    assert!(!approver(clerk).await);
    let revoke = administration_audit(
        provider,
        "account.approver_revoke",
        format!("account/{manager}"),
        at,
    );
    assert!(
        store
            .set_account_approver(manager, false, &revoke)
            .await
            .unwrap()
    );
    assert!(!approver(manager).await);
    let actions: Vec<String> = store
        .audit_events(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        ["account.approver_grant", "account.approver_revoke"]
    );
}
