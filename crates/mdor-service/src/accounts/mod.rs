//! Staff and patient accounts: creation by an administrator (no self sign-up; `admin` holds
//! account administration), sign-in with a password and a second factor, the per-account
//! soft lock, replacing the generated initial password with one the holder chooses, and idle
//! expiry.
//!
//! Every sign-in, successful or not, is written to the audit log (action `account.login`,
//! purpose `authentication`, the outcome naming the reason) and never to the tracing log with
//! an identifier: the caller only ever sees one failure, `ServiceError::Unauthenticated`,
//! whether the username is unknown, the password or code wrong, the code reused, or the
//! account throttled, locked or disabled.
//!
//! Sign-in order, and why:
//! 1. An unknown username still costs one argon2id verification (against a dummy hash), so
//!    that timing does not tell which usernames exist.
//! 2. A disabled account is refused after verifying its password, for the same reason.
//! 3. The soft lock: with `LOCK_AFTER_FAILURES` failures in the last hour the account is
//!    locked until they age out; from `FREE_FAILURES` on, each further attempt must wait
//!    a delay doubling from one second up to `MAX_DELAY_SECONDS` after the latest failure, and
//!    one made earlier is refused without looking at the password. The delays add up to well
//!    under an hour, so the lock is reachable: at most 100 guesses an hour per account.
//! 4. The password, then the second factor; a wrong one counts as a failure.
//! 5. The store consumes the TOTP step or backup code and writes the audit entry in one
//!    transaction; a code used meanwhile is a failure like a wrong one.

mod admin;
mod codes;
mod password;
mod totp;

use chrono::{DateTime, Duration, Utc};

use mdor_domain::OdsCode;
use mdor_store::{
    Account, AccountId, AccountRole, LoginSuccess, NewAccount, NewAccountAuditEvent,
    OrganisationId, OrganisationKind, PatientId, SecondFactorUse, SessionAssurance, SessionFactor,
};

use crate::ctx::Ctx;
use crate::error::ServiceError;

pub use admin::{
    AccountSummary, Administrator, administrator_create_account, disable_account, enable_account,
    list_accounts, operator_disable_account, operator_enable_account,
    operator_reset_account_credentials, operator_set_approver, reset_account_credentials,
    set_approver,
};
pub use codes::{
    BACKUP_CODE_CHARS, BACKUP_CODE_COUNT, SecondFactor, Username, base32, hash_backup_code,
};
pub use password::{
    ARGON2_M_COST_KIB, ARGON2_P_COST, ARGON2_T_COST, MIN_PASSWORD_CHARS, check_password_policy,
    hash_password, needs_rehash, verify_password,
};
pub use totp::{AccountKey, TOTP_SKEW_STEPS, TOTP_STEP_SECONDS, code_at_step, time_step};

/// Failures in the last hour that lock an account.
pub const LOCK_AFTER_FAILURES: u64 = 100;
/// Failures in the last hour before attempts are spaced out.
pub const FREE_FAILURES: u64 = 5;
pub const MAX_DELAY_SECONDS: i64 = 30;
/// An account not signed in to for this long is disabled by `expire_idle_accounts`.
pub const IDLE_DAYS: i64 = 90;

pub(crate) const LOGIN_ACTION: &str = "account.login";
const PASSWORD_CHANGE_ACTION: &str = "account.password_change";
const ISSUER: &str = "mdor";

/// An account to create: the username, role, organisation (none for a patient) and,
/// optionally for a patient, the patient record it may see.
#[derive(Debug, Clone)]
pub struct AccountRequest {
    pub username: Username,
    pub role: AccountRole,
    pub organisation: Option<OdsCode>,
    pub patient: Option<PatientId>,
}

/// What the administrator hands to the holder of a new account, or of one whose credentials
/// were reset, once, over a trusted channel: nothing here is stored in clear.
pub struct CreatedAccount {
    pub id: AccountId,
    pub username: String,
    pub initial_password: String,
    /// The TOTP secret in base32, for typing into an authenticator app.
    pub totp_secret: String,
    pub totp_uri: String,
    pub backup_codes: Vec<String>,
}

/// A successful sign-in: who signed in, with which role, for which organisation.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub account: AccountId,
    pub role: AccountRole,
    pub organisation: Option<OrganisationId>,
    pub organisation_ods: Option<String>,
    pub patient: Option<PatientId>,
    /// The password is still the generated initial one: the holder must choose their own
    /// (`change_password`) before doing anything else.
    pub must_change_password: bool,
    /// The second factor the holder signed in with.
    pub assurance: SessionAssurance,
}

/// Creates an account with a random initial password, a TOTP secret and backup codes, as
/// the operator at the command line (`mdor account create`); audited as role `operator`.
/// A patient's account belongs to no organisation; every other role belongs to an
/// organisation of the matching kind. The TOTP secret is sealed with the accounts key.
pub async fn create_account(
    ctx: &Ctx,
    request: &AccountRequest,
) -> Result<CreatedAccount, ServiceError> {
    admin::create(ctx, admin::Administrator::Operator, request).await
}

/// The organisation a new account of `request`'s role belongs to, checked against the role.
pub(crate) async fn organisation_for(
    ctx: &Ctx,
    request: &AccountRequest,
) -> Result<Option<OrganisationId>, ServiceError> {
    let organisation = match (&request.organisation, request.role) {
        (None, AccountRole::Patient) => {
            // Patients' sign-ins are audited under the registry's own organisation.
            if ctx.store.registry_organisation().await?.is_none() {
                return Err(ServiceError::invalid(
                    "organisation",
                    "registry_organisation_missing",
                    "create the registry's own organisation (kind registry) before patient accounts",
                ));
            }
            None
        }
        (Some(_), AccountRole::Patient) => {
            return Err(ServiceError::invalid(
                "organisation",
                "patient_has_no_organisation",
                "a patient account belongs to no organisation",
            ));
        }
        (None, _) => {
            return Err(ServiceError::invalid(
                "organisation",
                "organisation_required",
                "this role needs an organisation",
            ));
        }
        (Some(ods_code), role) => {
            let organisation =
                ctx.store
                    .organisation_by_ods(ods_code)
                    .await?
                    .ok_or(ServiceError::NotFound {
                        what: "organisation",
                    })?;
            if organisation.kind != organisation_kind_for(role) {
                return Err(ServiceError::invalid(
                    "role",
                    "role_not_allowed_for_organisation",
                    format!(
                        "role {} cannot belong to a {} organisation",
                        role.as_str(),
                        organisation.kind.as_str()
                    ),
                ));
            }
            Some(organisation.id)
        }
    };
    if request.patient.is_some() && request.role != AccountRole::Patient {
        return Err(ServiceError::invalid(
            "patient",
            "patient_link_not_allowed",
            "only a patient account may be linked to a patient record",
        ));
    }
    Ok(organisation)
}

/// New credentials for `username`: what the holder is handed once, and what the store keeps
/// (an argon2id hash, the sealed TOTP secret, SHA-256 of each backup code).
pub(crate) struct FreshCredentials {
    pub(crate) handed_over: IssuedSecrets,
    pub(crate) password_hash: String,
    pub(crate) totp_secret_sealed: Vec<u8>,
    pub(crate) backup_code_hashes: Vec<String>,
}

/// The secrets a holder is handed, in clear, once.
pub(crate) struct IssuedSecrets {
    pub(crate) initial_password: String,
    pub(crate) totp_secret: String,
    pub(crate) totp_uri: String,
    pub(crate) backup_codes: Vec<String>,
}

impl IssuedSecrets {
    pub(crate) fn for_account(self, id: AccountId, username: &str) -> CreatedAccount {
        CreatedAccount {
            id,
            username: username.to_string(),
            initial_password: self.initial_password,
            totp_secret: self.totp_secret,
            totp_uri: self.totp_uri,
            backup_codes: self.backup_codes,
        }
    }
}

pub(crate) fn fresh_credentials(
    key: &AccountKey,
    username: &str,
) -> Result<FreshCredentials, ServiceError> {
    let initial_password = codes::generate_initial_password();
    let secret = totp::generate_secret();
    let backup_codes = codes::generate_backup_codes();
    let password_hash = password::hash_password(&initial_password)?;
    let totp_secret_sealed = key.seal(username, &secret)?;
    let backup_code_hashes = backup_codes
        .iter()
        .filter_map(|code| match SecondFactor::parse(code) {
            Some(SecondFactor::BackupCode(normalised)) => Some(hash_backup_code(&normalised)),
            _ => None,
        })
        .collect();
    let totp_secret = base32(&secret);
    Ok(FreshCredentials {
        handed_over: IssuedSecrets {
            totp_uri: totp::otpauth_uri(ISSUER, username, &totp_secret),
            totp_secret,
            initial_password,
            backup_codes,
        },
        password_hash,
        totp_secret_sealed,
        backup_code_hashes,
    })
}

/// The account `new` describes, with the credentials prepared for it.
pub(crate) fn new_account(
    ctx: &Ctx,
    request: &AccountRequest,
    organisation: Option<OrganisationId>,
    credentials: &FreshCredentials,
) -> NewAccount {
    NewAccount {
        username: request.username.as_str().to_string(),
        role: request.role,
        organisation,
        patient: request.patient,
        password_hash: credentials.password_hash.clone(),
        totp_secret_sealed: credentials.totp_secret_sealed.clone(),
        backup_code_hashes: credentials.backup_code_hashes.clone(),
        created_at: ctx.now(),
    }
}

/// Signs in with a username, a password and a second factor (a TOTP code or a backup code).
/// Every failure is the same `ServiceError::Unauthenticated`; storage failures are errors of
/// their own, since they say nothing about the account.
#[tracing::instrument(skip_all)]
pub async fn login(
    ctx: &Ctx,
    username: &str,
    password: &str,
    second_factor: &str,
) -> Result<SignedIn, ServiceError> {
    let key = ctx.account_key()?;
    let now = ctx.now();
    let account = check_password(ctx, username, password, now).await?;
    let Some((second_factor_use, factor)) = check_second_factor(&key, &account, second_factor, now)
    else {
        return fail(ctx, &account, "bad_second_factor", now).await;
    };
    let assurance = SessionAssurance {
        factor,
        phishing_resistant: false,
    };
    complete_login(ctx, &account, password, second_factor_use, assurance, now).await
}

/// The first half of every sign-in: the account named by `username`, if it exists, is live,
/// is not locked or throttled, and `password` is its password. Every failure is audited and
/// answered with the same `Unauthenticated`; a wrong password counts towards the soft lock.
pub(crate) async fn check_password(
    ctx: &Ctx,
    username: &str,
    password: &str,
    now: DateTime<Utc>,
) -> Result<Account, ServiceError> {
    let account = match Username::parse(username) {
        Ok(username) => ctx.store.account_by_username(username.as_str()).await?,
        Err(_) => None,
    };
    let Some(account) = account else {
        password::verify_dummy(password);
        return refuse(ctx, None, "unknown_account", now).await;
    };
    if account.disabled_at.is_some() {
        let _ = password::verify_password(password, &account.password_hash);
        return refuse(ctx, Some(&account), "disabled", now).await;
    }
    let failures = ctx
        .store
        .login_failures_since(account.id, now - Duration::hours(1))
        .await?;
    if failures.count >= LOCK_AFTER_FAILURES {
        password::verify_dummy(password);
        return refuse(ctx, Some(&account), "locked", now).await;
    }
    if let Some(latest) = failures.latest
        && now < latest + delay_after(failures.count)
    {
        return refuse(ctx, Some(&account), "throttled", now).await;
    }
    if !password::verify_password(password, &account.password_hash) {
        return fail(ctx, &account, "bad_password", now).await;
    }
    Ok(account)
}

/// The second half of a sign-in whose password and second factor checked out: the store
/// consumes the factor (once only), records the sign-in and writes its audit entry in one
/// transaction. A factor used meanwhile is a failure like a wrong one.
pub(crate) async fn complete_login(
    ctx: &Ctx,
    account: &Account,
    password: &str,
    second_factor_use: SecondFactorUse,
    assurance: SessionAssurance,
    now: DateTime<Utc>,
) -> Result<SignedIn, ServiceError> {
    let rehashed_password = rehash_if_weak(account, password)?;
    complete_login_rehashed(
        ctx,
        account,
        rehashed_password,
        second_factor_use,
        assurance,
        now,
    )
    .await
}

/// A new hash of `password` when the account's is weaker than the current parameters.
pub(crate) fn rehash_if_weak(
    account: &Account,
    password: &str,
) -> Result<Option<String>, ServiceError> {
    if password::needs_rehash(&account.password_hash) {
        Ok(Some(password::hash_password(password)?))
    } else {
        Ok(None)
    }
}

/// `complete_login` with the rehash already decided (a WebAuthn sign-in checks the password
/// one request before it completes).
pub(crate) async fn complete_login_rehashed(
    ctx: &Ctx,
    account: &Account,
    rehashed_password: Option<String>,
    second_factor_use: SecondFactorUse,
    assurance: SessionAssurance,
    now: DateTime<Utc>,
) -> Result<SignedIn, ServiceError> {
    let Some(audit) = audit_event(ctx, Some(account), "ok", now).await? else {
        // No organisation to audit under: fail closed rather than sign in unaudited.
        return Err(ServiceError::Unauthenticated);
    };
    let success = LoginSuccess {
        account: account.id,
        at: now,
        second_factor: second_factor_use,
        rehashed_password,
    };
    if !ctx.store.record_login_success(&success, &audit).await? {
        return fail(ctx, account, "second_factor_reused", now).await;
    }
    tracing::info!(factor = assurance.factor.as_str(), "sign-in succeeded");
    Ok(SignedIn {
        account: account.id,
        role: account.role,
        organisation: account.organisation,
        organisation_ods: account.organisation_ods.clone(),
        patient: account.patient,
        must_change_password: account.must_change_password,
        assurance,
    })
}

/// Replaces the password of an account whose holder signs in with the current password and
/// a second factor (consumed as at any sign-in). The new password must meet the policy and
/// differ from the current one; these are checked first, so a refusal says nothing about the
/// account and costs no code.
pub async fn change_password(
    ctx: &Ctx,
    username: &str,
    current_password: &str,
    second_factor: &str,
    new_password: &str,
) -> Result<SignedIn, ServiceError> {
    password::check_password_policy(new_password)?;
    if new_password == current_password {
        return Err(ServiceError::invalid(
            "new_password",
            "password_unchanged",
            "the new password must differ from the current one",
        ));
    }
    let signed_in = login(ctx, username, current_password, second_factor).await?;
    let organisation = match signed_in.organisation {
        Some(organisation) => organisation,
        None => ctx
            .store
            .registry_organisation()
            .await?
            .ok_or(ServiceError::Unauthenticated)?,
    };
    let audit = NewAccountAuditEvent {
        request: ctx.request(),
        at: ctx.now(),
        organisation,
        role: signed_in.role.as_str(),
        action: PASSWORD_CHANGE_ACTION,
        resource: format!("account/{}", signed_in.account),
        outcome: "ok",
    };
    let hash = password::hash_password(new_password)?;
    if !ctx
        .store
        .set_account_password(signed_in.account, &hash, &audit)
        .await?
    {
        return Err(ServiceError::Unauthenticated);
    }
    Ok(SignedIn {
        must_change_password: false,
        ..signed_in
    })
}

/// Disables every account not signed in to (or, never signed in, created) in the last
/// `IDLE_DAYS` days by the context's clock; returns their ids.
pub async fn expire_idle_accounts(ctx: &Ctx) -> Result<Vec<AccountId>, ServiceError> {
    let now = ctx.now();
    Ok(ctx
        .store
        .disable_idle_accounts(now - Duration::days(IDLE_DAYS), now)
        .await?)
}

/// How many of an account's backup codes are unused, so that its holder can be told to ask
/// for new ones.
pub async fn unused_backup_codes(ctx: &Ctx, account: AccountId) -> Result<u64, ServiceError> {
    Ok(ctx.store.unused_backup_codes(account).await?)
}

/// The organisation kind each staff role belongs to.
fn organisation_kind_for(role: AccountRole) -> OrganisationKind {
    match role {
        AccountRole::ProviderSubmitter
        | AccountRole::ProviderDataManager
        | AccountRole::Consultant => OrganisationKind::Provider,
        AccountRole::Regulator => OrganisationKind::Regulator,
        AccountRole::Manufacturer => OrganisationKind::Manufacturer,
        // Analysts, researchers (who only ever get pseudonymised extracts) and administrators
        // work for or through the registry. Patients never reach here.
        AccountRole::RegistryAnalyst
        | AccountRole::Researcher
        | AccountRole::SystemAdmin
        | AccountRole::Patient => OrganisationKind::Registry,
    }
}

/// The wait before the next attempt after `failures` failures in the last hour.
fn delay_after(failures: u64) -> Duration {
    if failures < FREE_FAILURES {
        return Duration::zero();
    }
    let doublings = (failures - FREE_FAILURES).min(16) as u32;
    Duration::seconds((1i64 << doublings).min(MAX_DELAY_SECONDS))
}

fn check_second_factor(
    key: &AccountKey,
    account: &Account,
    input: &str,
    now: DateTime<Utc>,
) -> Option<(SecondFactorUse, SessionFactor)> {
    match SecondFactor::parse(input)? {
        SecondFactor::Totp(code) => {
            let secret = key.open(&account.username, &account.totp_secret_sealed)?;
            let unix = u64::try_from(now.timestamp()).ok()?;
            totp::matching_step(&secret, &code, time_step(unix), account.totp_last_step)
                .map(|step| (SecondFactorUse::TotpStep(step), SessionFactor::Totp))
        }
        SecondFactor::BackupCode(code) => Some((
            SecondFactorUse::BackupCode(hash_backup_code(&code)),
            SessionFactor::BackupCode,
        )),
    }
}

/// A failure that counts towards the soft lock.
pub(crate) async fn fail<T>(
    ctx: &Ctx,
    account: &Account,
    outcome: &'static str,
    now: DateTime<Utc>,
) -> Result<T, ServiceError> {
    let audit = audit_event(ctx, Some(account), outcome, now).await?;
    ctx.store
        .record_login_failure(Some(account.id), now, audit.as_ref())
        .await?;
    // The reason goes to the audit only: in the tracing log it would tell an operator reading
    // logs which usernames exist and which passwords were right.
    tracing::info!("sign-in failed");
    Err(ServiceError::Unauthenticated)
}

/// A refusal that does not count (the password was not what was wrong, or not looked at).
pub(crate) async fn refuse<T>(
    ctx: &Ctx,
    account: Option<&Account>,
    outcome: &'static str,
    now: DateTime<Utc>,
) -> Result<T, ServiceError> {
    let audit = audit_event(ctx, account, outcome, now).await?;
    ctx.store
        .record_login_failure(None, now, audit.as_ref())
        .await?;
    tracing::info!("sign-in refused");
    Err(ServiceError::Unauthenticated)
}

/// The audit entry of a sign-in: under the account's organisation, or the registry's own
/// for patients and unknown usernames; `None` when there is no organisation to name. OpenID
/// Connect sign-ins (`oidc`) are audited with it too.
pub(crate) async fn audit_event(
    ctx: &Ctx,
    account: Option<&Account>,
    outcome: &'static str,
    now: DateTime<Utc>,
) -> Result<Option<NewAccountAuditEvent>, ServiceError> {
    let organisation = match account.and_then(|a| a.organisation) {
        Some(organisation) => Some(organisation),
        None => ctx.store.registry_organisation().await?,
    };
    Ok(organisation.map(|organisation| NewAccountAuditEvent {
        request: ctx.request(),
        at: now,
        organisation,
        role: account.map_or("unknown", |a| a.role.as_str()),
        action: LOGIN_ACTION,
        resource: account.map_or_else(|| "account".to_string(), |a| format!("account/{}", a.id)),
        outcome,
    }))
}
