//! Staff and patient accounts as stored: roles, credentials as the service prepared them
//! (argon2id hash, sealed TOTP secret, hashed backup codes) and sign-in bookkeeping.
//!
//! The store never sees a password, a TOTP secret in clear or a backup code: it keeps what
//! the service hands it and applies the single-use rules atomically (a TOTP step or a backup
//! code is consumed by a conditional update inside the sign-in's transaction, so two
//! concurrent sign-ins with the same code cannot both succeed).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::types::{OrganisationId, PatientId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AccountId(pub i64);

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a person signed in with an account may do. Separate from the API token `Role`, whose
/// three values are fixed by `api_token`'s CHECK constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountRole {
    ProviderSubmitter,
    ProviderDataManager,
    Consultant,
    RegistryAnalyst,
    Regulator,
    Manufacturer,
    Researcher,
    SystemAdmin,
    Patient,
}

impl AccountRole {
    pub const ALL: [AccountRole; 9] = [
        AccountRole::ProviderSubmitter,
        AccountRole::ProviderDataManager,
        AccountRole::Consultant,
        AccountRole::RegistryAnalyst,
        AccountRole::Regulator,
        AccountRole::Manufacturer,
        AccountRole::Researcher,
        AccountRole::SystemAdmin,
        AccountRole::Patient,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AccountRole::ProviderSubmitter => "provider_submitter",
            AccountRole::ProviderDataManager => "provider_data_manager",
            AccountRole::Consultant => "consultant",
            AccountRole::RegistryAnalyst => "registry_analyst",
            AccountRole::Regulator => "regulator",
            AccountRole::Manufacturer => "manufacturer",
            AccountRole::Researcher => "researcher",
            AccountRole::SystemAdmin => "system_admin",
            AccountRole::Patient => "patient",
        }
    }

    pub fn parse(input: &str) -> Option<AccountRole> {
        AccountRole::ALL
            .into_iter()
            .find(|role| role.as_str() == input)
    }
}

/// An account as the service prepared it.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Already normalised (lowercase) by the service.
    pub username: String,
    pub role: AccountRole,
    /// `None` exactly when the role is `Patient` (a CHECK constraint holds the store to it).
    pub organisation: Option<OrganisationId>,
    pub patient: Option<PatientId>,
    /// PHC string of an argon2id hash.
    pub password_hash: String,
    /// Nonce, ciphertext and tag of the TOTP secret.
    pub totp_secret_sealed: Vec<u8>,
    /// SHA-256 of each backup code, hex.
    pub backup_code_hashes: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// A stored account with its credentials; the service never lets this leave a sign-in.
#[derive(Clone)]
pub struct Account {
    pub id: AccountId,
    pub username: String,
    pub role: AccountRole,
    pub organisation: Option<OrganisationId>,
    pub organisation_ods: Option<String>,
    pub patient: Option<PatientId>,
    pub password_hash: String,
    /// The password is still the generated initial one.
    pub must_change_password: bool,
    pub totp_secret_sealed: Vec<u8>,
    pub totp_last_step: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
    /// When an administrator last re-enabled the account or reset its credentials; idle
    /// expiry counts from the latest of this, the last sign-in and the creation.
    pub reinstated_at: Option<DateTime<Utc>>,
    /// A provider's data manager an administrator designated as its organisation's approver:
    /// they create and administer that organisation's staff accounts.
    pub approver: bool,
}

/// Credentials are left out so that an account cannot print its hash or sealed secret.
impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("organisation", &self.organisation)
            .field("disabled_at", &self.disabled_at)
            .finish_non_exhaustive()
    }
}

/// New credentials for an account whose holder lost theirs, prepared by the service like a
/// new account's: the store replaces the password (to be changed at the next sign-in), the
/// sealed TOTP secret and every backup code, revokes every WebAuthn credential, ends every
/// live session and forgets failed sign-ins, all in one transaction.
#[derive(Clone)]
pub struct CredentialReset {
    pub account: AccountId,
    /// PHC string of an argon2id hash of the generated password.
    pub password_hash: String,
    pub totp_secret_sealed: Vec<u8>,
    /// SHA-256 of each new backup code, hex.
    pub backup_code_hashes: Vec<String>,
    pub at: DateTime<Utc>,
}

/// Failed sign-ins of one account in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFailures {
    pub count: u64,
    pub latest: Option<DateTime<Utc>>,
}

/// The second factor a successful sign-in consumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecondFactorUse {
    /// The TOTP time step of the accepted code: refused unless it is later than the last one.
    TotpStep(u64),
    /// SHA-256 of the backup code, hex: refused unless the code exists and is unused.
    BackupCode(String),
    /// A WebAuthn assertion: its ceremony is finished once only and the credential's
    /// signature counter moves on.
    Webauthn(crate::webauthn::WebauthnUse),
}

/// A sign-in that passed every check the service can make without the store.
#[derive(Debug, Clone)]
pub struct LoginSuccess {
    pub account: AccountId,
    pub at: DateTime<Utc>,
    pub second_factor: SecondFactorUse,
    /// A new hash when the stored one was made with weaker parameters.
    pub rehashed_password: Option<String>,
}

/// An authentication event for the audit log: who (by account role and organisation), when,
/// what and how it ended. Written as an ordinary audit entry, with no token.
#[derive(Debug, Clone)]
pub struct NewAccountAuditEvent {
    pub at: DateTime<Utc>,
    pub organisation: OrganisationId,
    /// The account's role, or `unknown` when no account has the username given.
    pub role: &'static str,
    pub action: &'static str,
    /// `account/{id}`, or `account` when no account matched.
    pub resource: String,
    pub outcome: &'static str,
    /// The HTTP request behind the event; `None` at the command line.
    pub request: Option<crate::types::RequestId>,
}

impl NewAccountAuditEvent {
    /// The log entry at position `seq`: purpose `authentication`, no token, patient or count.
    pub(crate) fn entry(&self, seq: u64) -> crate::types::AuditLogEntry {
        crate::types::AuditLogEntry {
            seq,
            at: crate::audit_log::audit_instant(self.at),
            organisation: self.organisation,
            role: self.role.to_string(),
            token: None,
            // The resource already names the account (`account/{id}`), also when the sign-in
            // failed and no session exists.
            account: None,
            action: self.action.to_string(),
            resource: self.resource.clone(),
            patient: None,
            record_count: 0,
            purpose: "authentication".to_string(),
            outcome: self.outcome.to_string(),
            request_id: self.request.as_ref().map(|r| r.as_str().to_string()),
            patients: Vec::new(),
            detail_digest: None,
            leaf_hash: None,
        }
    }
}
