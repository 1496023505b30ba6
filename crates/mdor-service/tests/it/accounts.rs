//! Accounts through the service on every backend: creation rules, sign-in with a password
//! and TOTP (each code once, one step of skew either way), backup codes (each once), the
//! uniform failure, the soft lock and its delays, rehashing of weak hashes, idle expiry, and
//! the audit entry of every attempt. Time is a per-test clock the test moves.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

use mdor_domain::OdsCode;
use mdor_service::accounts::{
    AccountKey, AccountRequest, CreatedAccount, LOCK_AFTER_FAILURES, SecondFactor, Username,
    code_at_step, hash_backup_code, time_step, unused_backup_codes,
};
use mdor_service::{
    AccountRole, NewOrganisation, OrganisationKind, ServiceError, change_password, create_account,
    expire_idle_accounts, login,
};
use mdor_store::NewAccount;

use crate::support::{TestStore, backends, open_with_clock};

/// An instant in the middle of a TOTP step (1,800,000,000 is a multiple of 30).
pub(crate) const T0: i64 = 1_800_000_015;
const PASSWORD_UNUSED: &str = "not the password at all";

fn key() -> AccountKey {
    AccountKey::parse(&"42".repeat(32)).unwrap()
}

/// A migrated store with the accounts key, a provider `RXR` and the registry `X26`.
pub(crate) async fn setup(backend: &str, clock: fn() -> DateTime<Utc>) -> TestStore {
    let mut t = open_with_clock(backend, clock).await;
    t.ctx = t.ctx.clone().with_account_key(key());
    let organisation = |code: &str, kind| NewOrganisation {
        ods_code: OdsCode::parse(code).unwrap(),
        name: format!("{code} test"),
        kind,
        region: None,
    };
    mdor_service::ensure_organisations(
        &t.ctx,
        &[
            organisation("RXR", OrganisationKind::Provider),
            organisation("X26", OrganisationKind::Registry),
        ],
    )
    .await
    .unwrap();
    t
}

pub(crate) fn request(username: &str, role: AccountRole, ods: Option<&str>) -> AccountRequest {
    AccountRequest {
        username: Username::parse(username).unwrap(),
        role,
        organisation: ods.map(|code| OdsCode::parse(code).unwrap()),
        patient: None,
    }
}

async fn consultant(t: &TestStore, username: &str) -> CreatedAccount {
    create_account(
        &t.ctx,
        &request(username, AccountRole::Consultant, Some("RXR")),
    )
    .await
    .unwrap()
}

/// The code an authenticator app shows at `unix` for the secret the account was given.
pub(crate) fn code(account: &CreatedAccount, unix: i64) -> String {
    code_at_step(
        &base32_decode(&account.totp_secret),
        6,
        time_step(unix as u64),
    )
    .unwrap()
}

/// RFC 4648 base32 decoding, written here independently of the service's encoder.
fn base32_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {c}"),
        };
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

/// The outcomes of the sign-ins audited so far, oldest first.
async fn login_outcomes(t: &TestStore) -> Vec<String> {
    t.store
        .audit_events(None, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|event| event.action == "account.login")
        .map(|event| event.outcome)
        .collect()
}

fn assert_refused(result: Result<mdor_service::SignedIn, ServiceError>) {
    match result {
        Err(ServiceError::Unauthenticated) => {}
        other => panic!("expected the uniform failure, got {other:?}"),
    }
}

#[tokio::test]
async fn an_account_signs_in_with_password_and_totp_and_each_code_is_accepted_once() {
    static NOW: AtomicI64 = AtomicI64::new(T0);
    fn clock() -> DateTime<Utc> {
        DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap()
    }
    for backend in backends() {
        NOW.store(T0, Ordering::SeqCst);
        let t = setup(backend, clock).await;
        let account = consultant(&t, "J.Smith").await;
        assert_eq!(account.username, "j.smith");
        assert!(
            account
                .totp_uri
                .starts_with("otpauth://totp/mdor:j.smith?secret=")
        );
        assert_eq!(account.backup_codes.len(), 10);

        let signed_in = login(
            &t.ctx,
            "j.smith",
            &account.initial_password,
            &code(&account, T0),
        )
        .await
        .unwrap();
        assert_eq!(signed_in.account, account.id);
        assert_eq!(signed_in.role, AccountRole::Consultant);
        assert_eq!(signed_in.organisation_ods.as_deref(), Some("RXR"));

        // The same code again, in the same step, is refused; so is the previous step's.
        assert_refused(
            login(
                &t.ctx,
                "j.smith",
                &account.initial_password,
                &code(&account, T0),
            )
            .await,
        );
        assert_refused(
            login(
                &t.ctx,
                "j.smith",
                &account.initial_password,
                &code(&account, T0 - 30),
            )
            .await,
        );
        // The next step's code is fresh.
        NOW.store(T0 + 30, Ordering::SeqCst);
        login(
            &t.ctx,
            "J.SMITH",
            &account.initial_password,
            &code(&account, T0 + 30),
        )
        .await
        .unwrap();
        assert_eq!(
            login_outcomes(&t).await,
            ["ok", "bad_second_factor", "bad_second_factor", "ok"]
        );
    }
}

#[tokio::test]
async fn codes_one_step_either_side_are_accepted_and_two_steps_away_refused() {
    static NOW: AtomicI64 = AtomicI64::new(T0);
    fn clock() -> DateTime<Utc> {
        DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap()
    }
    for backend in backends() {
        NOW.store(T0, Ordering::SeqCst);
        let t = setup(backend, clock).await;
        for (username, offset_steps, accepted) in [
            ("early.one", -1, true),
            ("late.one", 1, true),
            ("early.two", -2, false),
            ("late.two", 2, false),
        ] {
            let account = consultant(&t, username).await;
            let result = login(
                &t.ctx,
                username,
                &account.initial_password,
                &code(&account, T0 + 30 * offset_steps),
            )
            .await;
            assert_eq!(result.is_ok(), accepted, "{username}: {result:?}");
        }
        // A code accepted from the next step also retires the current step's code.
        let account = consultant(&t, "ahead").await;
        login(
            &t.ctx,
            "ahead",
            &account.initial_password,
            &code(&account, T0 + 30),
        )
        .await
        .unwrap();
        assert_refused(
            login(
                &t.ctx,
                "ahead",
                &account.initial_password,
                &code(&account, T0),
            )
            .await,
        );
    }
}

#[tokio::test]
async fn a_backup_code_signs_in_once_in_any_case_or_grouping() {
    static NOW: AtomicI64 = AtomicI64::new(T0);
    fn clock() -> DateTime<Utc> {
        DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap()
    }
    for backend in backends() {
        NOW.store(T0, Ordering::SeqCst);
        let t = setup(backend, clock).await;
        let account = consultant(&t, "j.smith").await;
        let first = &account.backup_codes[0];
        let typed = first.replace('-', " ").to_lowercase();
        login(&t.ctx, "j.smith", &account.initial_password, &typed)
            .await
            .unwrap();
        assert_refused(login(&t.ctx, "j.smith", &account.initial_password, first).await);
        login(
            &t.ctx,
            "j.smith",
            &account.initial_password,
            &account.backup_codes[1],
        )
        .await
        .unwrap();
        assert_eq!(unused_backup_codes(&t.ctx, account.id).await.unwrap(), 8);
        // A well-formed code that was never issued is refused.
        assert_refused(
            login(
                &t.ctx,
                "j.smith",
                &account.initial_password,
                "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA",
            )
            .await,
        );
        assert_eq!(
            login_outcomes(&t).await,
            ["ok", "second_factor_reused", "ok", "second_factor_reused"]
        );
    }
}

#[tokio::test]
async fn every_failure_is_the_same_error_and_the_audit_keeps_the_reason() {
    static NOW: AtomicI64 = AtomicI64::new(T0);
    fn clock() -> DateTime<Utc> {
        DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap()
    }
    for backend in backends() {
        NOW.store(T0, Ordering::SeqCst);
        let t = setup(backend, clock).await;
        let account = consultant(&t, "j.smith").await;
        let idle = consultant(&t, "idle.user").await;
        let right = account.initial_password.clone();
        let good_code = code(&account, T0);
        let attempts: Vec<(&str, String, String)> = vec![
            ("nobody", right.clone(), good_code.clone()),
            ("not a username!", right.clone(), good_code.clone()),
            ("j.smith", PASSWORD_UNUSED.to_string(), good_code.clone()),
            ("j.smith", right.clone(), "000000".to_string()),
            ("j.smith", right.clone(), "not a code".to_string()),
        ];
        let mut errors = Vec::new();
        for (username, password, second_factor) in &attempts {
            let error = login(&t.ctx, username, password, second_factor)
                .await
                .unwrap_err();
            errors.push(format!("{error:?} / {error}"));
        }
        // Disabled: idle for 90 days (the other account signs in meanwhile).
        NOW.store(T0 + 91 * 86_400, Ordering::SeqCst);
        assert_eq!(expire_idle_accounts(&t.ctx).await.unwrap().len(), 2);
        let error = login(
            &t.ctx,
            "idle.user",
            &idle.initial_password,
            &code(&idle, T0 + 91 * 86_400),
        )
        .await
        .unwrap_err();
        errors.push(format!("{error:?} / {error}"));
        assert!(
            errors
                .iter()
                .all(|e| e == "Unauthenticated / missing or invalid credentials"),
            "{errors:?}"
        );
        assert_eq!(
            login_outcomes(&t).await,
            [
                "unknown_account",
                "unknown_account",
                "bad_password",
                "bad_second_factor",
                "bad_second_factor",
                "disabled"
            ]
        );
        // Unknown usernames are audited under the registry, with no role.
        let events: Vec<_> = t
            .store
            .audit_events(None, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "account.login")
            .collect();
        assert_eq!(events[0].organisation_ods, "X26");
        assert_eq!(events[0].role, "unknown");
        assert_eq!(events[0].resource, "account");
        assert_eq!(events[2].organisation_ods, "RXR");
        assert_eq!(events[2].resource, format!("account/{}", account.id));
        // Nothing in the audit names the username.
        assert!(events.iter().all(|e| !e.resource.contains("smith")));
    }
}

#[tokio::test]
async fn an_account_is_throttled_with_growing_delays_and_locked_after_100_failures_in_an_hour() {
    static NOW: AtomicI64 = AtomicI64::new(T0);
    fn clock() -> DateTime<Utc> {
        DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap()
    }
    let advance = |seconds: i64| NOW.fetch_add(seconds, Ordering::SeqCst) + seconds;
    for backend in backends() {
        NOW.store(T0, Ordering::SeqCst);
        let t = setup(backend, clock).await;
        let account = consultant(&t, "j.smith").await;
        // Five failures in a row are allowed without delay.
        for _ in 0..5 {
            assert_refused(login(&t.ctx, "j.smith", PASSWORD_UNUSED, "123456").await);
        }
        // Then one second, two, four…: an attempt within the delay is refused unchecked.
        assert_refused(login(&t.ctx, "j.smith", PASSWORD_UNUSED, "123456").await);
        advance(1);
        assert_refused(login(&t.ctx, "j.smith", PASSWORD_UNUSED, "123456").await);
        advance(1);
        assert_refused(login(&t.ctx, "j.smith", PASSWORD_UNUSED, "123456").await);
        advance(1);
        assert_refused(login(&t.ctx, "j.smith", PASSWORD_UNUSED, "123456").await);
        let outcomes = login_outcomes(&t).await;
        assert_eq!(
            outcomes[5..],
            ["throttled", "bad_password", "throttled", "bad_password"]
        );
        // Further failures, each after the longest delay, up to the threshold.
        let mut failures = 7;
        while failures < LOCK_AFTER_FAILURES {
            advance(30);
            assert_refused(login(&t.ctx, "j.smith", PASSWORD_UNUSED, "123456").await);
            failures += 1;
        }
        assert!(
            NOW.load(Ordering::SeqCst) - T0 < 3600,
            "all within the hour"
        );
        // Locked: even the right password and code are refused.
        let now = advance(30);
        assert_refused(
            login(
                &t.ctx,
                "j.smith",
                &account.initial_password,
                &code(&account, now),
            )
            .await,
        );
        assert_eq!(login_outcomes(&t).await.last().unwrap(), "locked");
        // Once the failures are more than an hour old, the account signs in again.
        let now = advance(3601);
        login(
            &t.ctx,
            "j.smith",
            &account.initial_password,
            &code(&account, now),
        )
        .await
        .unwrap();
        let outcomes = login_outcomes(&t).await;
        let count = |o: &str| outcomes.iter().filter(|x| *x == o).count();
        assert_eq!(count("bad_password") as u64, LOCK_AFTER_FAILURES);
        assert_eq!(count("throttled"), 2);
        assert_eq!(count("locked"), 1);
        assert_eq!(count("ok"), 1);
    }
}

#[tokio::test]
async fn a_stored_hash_weaker_than_the_current_parameters_is_replaced_at_sign_in() {
    use argon2::password_hash::{PasswordHasher, SaltString};
    static NOW: AtomicI64 = AtomicI64::new(T0);
    fn clock() -> DateTime<Utc> {
        DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap()
    }
    for backend in backends() {
        NOW.store(T0, Ordering::SeqCst);
        let t = setup(backend, clock).await;
        let password = "an old but long password";
        let weak = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(8, 1, 1, None).unwrap(),
        )
        .hash_password(
            password.as_bytes(),
            &SaltString::encode_b64(&[9; 16]).unwrap(),
        )
        .unwrap()
        .to_string();
        let secret = b"12345678901234567890";
        let provider = t
            .store
            .organisation_by_ods(&OdsCode::parse("RXR").unwrap())
            .await
            .unwrap()
            .unwrap();
        t.store
            .insert_account(
                &NewAccount {
                    username: "legacy.user".into(),
                    role: AccountRole::ProviderSubmitter,
                    organisation: Some(provider.id),
                    patient: None,
                    password_hash: weak.clone(),
                    totp_secret_sealed: key().seal("legacy.user", secret).unwrap(),
                    backup_code_hashes: vec![hash_backup_code("ABCDEFGHIJKLMNOPQRSTUVWX")],
                    created_at: clock(),
                },
                None,
            )
            .await
            .unwrap();
        // A failed sign-in leaves the weak hash alone.
        assert_refused(login(&t.ctx, "legacy.user", password, "000000").await);
        let stored = t
            .store
            .account_by_username("legacy.user")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.password_hash, weak);

        login(
            &t.ctx,
            "legacy.user",
            password,
            "abcd efgh ijkl mnop qrst uvwx",
        )
        .await
        .unwrap();
        let stored = t
            .store
            .account_by_username("legacy.user")
            .await
            .unwrap()
            .unwrap();
        assert!(
            stored
                .password_hash
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            stored.password_hash
        );
        // The new hash verifies the same password.
        NOW.store(T0 + 30, Ordering::SeqCst);
        let code = code_at_step(secret, 6, time_step((T0 + 30) as u64)).unwrap();
        login(&t.ctx, "legacy.user", password, &code).await.unwrap();
    }
}

#[tokio::test]
async fn accounts_unused_for_90_days_are_disabled_and_cannot_sign_in() {
    static NOW: AtomicI64 = AtomicI64::new(T0);
    fn clock() -> DateTime<Utc> {
        DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap()
    }
    const DAY: i64 = 86_400;
    for backend in backends() {
        NOW.store(T0, Ordering::SeqCst);
        let t = setup(backend, clock).await;
        let active = consultant(&t, "active.user").await;
        let never = consultant(&t, "never.user").await;
        NOW.store(T0 + 60 * DAY, Ordering::SeqCst);
        login(
            &t.ctx,
            "active.user",
            &active.initial_password,
            &code(&active, T0 + 60 * DAY),
        )
        .await
        .unwrap();
        NOW.store(T0 + 90 * DAY, Ordering::SeqCst);
        assert!(expire_idle_accounts(&t.ctx).await.unwrap().is_empty());
        NOW.store(T0 + 90 * DAY + 1, Ordering::SeqCst);
        assert_eq!(expire_idle_accounts(&t.ctx).await.unwrap(), [never.id]);
        let now = T0 + 90 * DAY + 1;
        assert_refused(
            login(
                &t.ctx,
                "never.user",
                &never.initial_password,
                &code(&never, now),
            )
            .await,
        );
        NOW.store(T0 + 150 * DAY + 1, Ordering::SeqCst);
        assert_eq!(expire_idle_accounts(&t.ctx).await.unwrap(), [active.id]);
    }
}

#[tokio::test]
async fn accounts_are_created_only_in_an_organisation_of_their_roles_kind() {
    for backend in backends() {
        let t = setup(backend, crate::support::test_clock).await;
        let refused_code = |result: Result<CreatedAccount, ServiceError>| match result {
            Err(ServiceError::Invalid(errors)) => errors[0].code,
            Err(ServiceError::Conflict { code, .. }) => code,
            Err(other) => panic!("{other:?}"),
            Ok(_) => "created",
        };
        assert_eq!(
            refused_code(
                create_account(
                    &t.ctx,
                    &request("reg.one", AccountRole::Regulator, Some("RXR"))
                )
                .await
            ),
            "role_not_allowed_for_organisation"
        );
        assert_eq!(
            refused_code(
                create_account(
                    &t.ctx,
                    &request("admin.one", AccountRole::SystemAdmin, None)
                )
                .await
            ),
            "organisation_required"
        );
        assert_eq!(
            refused_code(
                create_account(
                    &t.ctx,
                    &request("pat.one", AccountRole::Patient, Some("RXR"))
                )
                .await
            ),
            "patient_has_no_organisation"
        );
        assert_eq!(
            refused_code(
                create_account(
                    &t.ctx,
                    &request("admin.one", AccountRole::SystemAdmin, Some("X26"))
                )
                .await
            ),
            "created"
        );
        assert_eq!(
            refused_code(
                create_account(
                    &t.ctx,
                    &request("Admin.One", AccountRole::SystemAdmin, Some("X26"))
                )
                .await
            ),
            "username_taken"
        );
        // A patient signs in, audited under the registry's own organisation.
        let patient = create_account(&t.ctx, &request("pat.two", AccountRole::Patient, None))
            .await
            .unwrap();
        let backup = &patient.backup_codes[3];
        assert!(matches!(
            SecondFactor::parse(backup),
            Some(SecondFactor::BackupCode(_))
        ));
        let signed_in = login(&t.ctx, "pat.two", &patient.initial_password, backup)
            .await
            .unwrap();
        assert_eq!(signed_in.role, AccountRole::Patient);
        assert_eq!(signed_in.organisation, None);
        let events = t.store.audit_events(None, 10).await.unwrap();
        assert_eq!(events.last().unwrap().organisation_ods, "X26");
        assert_eq!(events.last().unwrap().role, "patient");
        // Without the accounts key nothing can be created.
        let keyless = crate::support::open(backend).await;
        assert!(matches!(
            create_account(
                &keyless.ctx,
                &request("pat.three", AccountRole::Patient, None)
            )
            .await,
            Err(ServiceError::Input(_))
        ));
    }
}

/// A buffer the test's log lines are written to.
#[derive(Clone, Default)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

/// Every event and span on the test's thread (the test runtime has one thread, so the
/// service's and the PostgreSQL driver's events are all here; SQLite's worker thread is not)
/// is captured at TRACE level while sign-ins with planted usernames, passwords and codes run.
#[tokio::test]
async fn sign_in_never_logs_usernames_passwords_or_codes() {
    static NOW: AtomicI64 = AtomicI64::new(T0);
    fn clock() -> DateTime<Utc> {
        DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap()
    }
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
        .with_ansi(false)
        .with_writer(capture.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut canaries = vec![
        "canaryuserqz".to_string(),
        "Canary-Password-Xq-2026".to_string(),
        "QQQQ-ZZZZ-QQQQ-ZZZZ-QQQQ-ZZZZ".to_string(),
        "QQQQZZZZQQQQZZZZQQQQZZZZ".to_string(),
    ];
    for backend in backends() {
        NOW.store(T0, Ordering::SeqCst);
        let t = setup(backend, clock).await;
        let account = consultant(&t, "canaryuserqz").await;
        canaries.push(account.initial_password.clone());
        canaries.push(account.totp_secret.clone());
        canaries.extend(account.backup_codes.iter().cloned());
        canaries.extend(account.backup_codes.iter().map(|c| c.replace('-', "")));
        // Other tests in this binary meet the sign-in's log callsites too, on threads with no
        // subscriber, and tracing caches their interest per callsite; recomputed here, with
        // this thread's subscriber in place, so that the sign-ins below are captured.
        tracing::callsite::rebuild_interest_cache();
        tracing::info!("canary test: sign-ins start");
        assert_refused(login(&t.ctx, "canaryuserqz", "Canary-Password-Xq-2026", "123456").await);
        assert_refused(
            login(
                &t.ctx,
                "canaryuserqz",
                &account.initial_password,
                "QQQQ-ZZZZ-QQQQ-ZZZZ-QQQQ-ZZZZ",
            )
            .await,
        );
        assert_refused(
            login(
                &t.ctx,
                "nocanaryuserqz",
                "Canary-Password-Xq-2026",
                "123456",
            )
            .await,
        );
        login(
            &t.ctx,
            "canaryuserqz",
            &account.initial_password,
            &account.backup_codes[0],
        )
        .await
        .unwrap();
    }
    let log = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("canary test: sign-ins start"),
        "the capture works"
    );
    assert!(
        log.contains("sign-in failed") && log.contains("sign-in succeeded"),
        "{}",
        &log[log.len().saturating_sub(3000)..]
    );
    for line in log.lines() {
        for canary in &canaries {
            assert!(
                !line.to_lowercase().contains(&canary.to_lowercase()),
                "a log line holds {canary}: {line}"
            );
        }
    }
}

#[tokio::test]
async fn the_initial_password_is_replaced_by_one_the_holder_chooses_that_meets_the_policy() {
    static NOW: AtomicI64 = AtomicI64::new(T0);
    fn clock() -> DateTime<Utc> {
        DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap()
    }
    for backend in backends() {
        NOW.store(T0, Ordering::SeqCst);
        let t = setup(backend, clock).await;
        let account = consultant(&t, "j.smith").await;
        let initial = account.initial_password.clone();
        let signed_in = login(&t.ctx, "j.smith", &initial, &account.backup_codes[0])
            .await
            .unwrap();
        assert!(signed_in.must_change_password);

        let refused = |result: Result<mdor_service::SignedIn, ServiceError>| match result {
            Err(ServiceError::Invalid(errors)) => errors[0].code,
            other => panic!("{other:?}"),
        };
        let code_now = code(&account, T0);
        for (new, expected) in [
            ("1q2w3e4r5t6y", "password_too_common"),
            ("short pass", "password_too_short"),
            (initial.as_str(), "password_unchanged"),
        ] {
            assert_eq!(
                refused(change_password(&t.ctx, "j.smith", &initial, &code_now, new).await),
                expected
            );
        }
        // The refusals above cost no code: this one is still fresh.
        let changed = change_password(
            &t.ctx,
            "j.smith",
            &initial,
            &code_now,
            "walnut harbour lantern 93",
        )
        .await
        .unwrap();
        assert!(!changed.must_change_password);
        // A wrong current password changes nothing and is a sign-in failure like any other.
        assert_refused(
            change_password(
                &t.ctx,
                "j.smith",
                "walnut harbour lantern 94",
                &account.backup_codes[1],
                "another long passphrase",
            )
            .await,
        );

        NOW.store(T0 + 30, Ordering::SeqCst);
        assert_refused(login(&t.ctx, "j.smith", &initial, &code(&account, T0 + 30)).await);
        let signed_in = login(
            &t.ctx,
            "j.smith",
            "walnut harbour lantern 93",
            &code(&account, T0 + 30),
        )
        .await
        .unwrap();
        assert!(!signed_in.must_change_password);
        let actions: Vec<(String, String)> = t
            .store
            .audit_events(None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.action, e.outcome))
            .collect();
        let pair = |a: &str, o: &str| (a.to_string(), o.to_string());
        assert_eq!(
            actions,
            [
                // The operator's creation of the account, then its holder's sign-ins.
                pair("account.create", "ok"),
                pair("account.login", "ok"),
                pair("account.login", "ok"),
                pair("account.password_change", "ok"),
                pair("account.login", "bad_password"),
                pair("account.login", "bad_password"),
                pair("account.login", "ok"),
            ]
        );
    }
}
