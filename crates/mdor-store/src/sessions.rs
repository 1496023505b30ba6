//! Server-side sessions of accounts as stored: who, when it began, when it was last used,
//! when its holder last entered their password and second factor, and how it ended.
//!
//! The store keeps only the SHA-256 of a session's secret (the cookie value) and decides
//! nothing: the service applies the idle and absolute timeouts to the times it reads here.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::accounts::{AccountId, AccountRole};
use crate::types::{OrganisationId, PatientId};

/// A session's row id: public (listed to its holder, named when revoking), unlike its secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SessionId(pub i64);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a session ended; the names are `account_session.end_reason`'s CHECK values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionEnd {
    SignedOut,
    Revoked,
    /// Unused for longer than the idle timeout.
    Idle,
    /// Older than the absolute timeout.
    Expired,
    AccountDisabled,
}

impl SessionEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionEnd::SignedOut => "signed_out",
            SessionEnd::Revoked => "revoked",
            SessionEnd::Idle => "idle",
            SessionEnd::Expired => "expired",
            SessionEnd::AccountDisabled => "account_disabled",
        }
    }
}

/// The second factor a session's holder last authenticated with (at sign-in, then at each
/// step-up); the names are `account_session.factor`'s CHECK values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionFactor {
    Totp,
    BackupCode,
    /// A WebAuthn passkey or security key: bound to the registry's origin, so it resists
    /// phishing.
    Webauthn,
    /// A national identity provider's sign-in (OpenID Connect); whether it resists phishing
    /// depends on the assurance it asserted.
    Oidc,
}

impl SessionFactor {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionFactor::Totp => "totp",
            SessionFactor::BackupCode => "backup_code",
            SessionFactor::Webauthn => "webauthn",
            SessionFactor::Oidc => "oidc",
        }
    }

    pub fn parse(input: &str) -> Option<SessionFactor> {
        [
            SessionFactor::Totp,
            SessionFactor::BackupCode,
            SessionFactor::Webauthn,
            SessionFactor::Oidc,
        ]
        .into_iter()
        .find(|factor| factor.as_str() == input)
    }
}

/// How a session's holder last proved who they are: the factor, and whether it resists
/// phishing (a code typed into a look-alike site can be relayed; a WebAuthn assertion is
/// bound to the origin that asked for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionAssurance {
    pub factor: SessionFactor,
    pub phishing_resistant: bool,
}

/// A session to start, right after a sign-in.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub account: AccountId,
    /// SHA-256 of the secret, hex.
    pub secret_hash: String,
    /// The sign-in's time: creation, last use and last authentication at once.
    pub at: DateTime<Utc>,
    pub assurance: SessionAssurance,
}

/// A live session, as listed to its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub id: SessionId,
    pub account: AccountId,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub reauthenticated_at: DateTime<Utc>,
    /// The factor of the sign-in or latest step-up.
    pub assurance: SessionAssurance,
}

/// A live session found by its secret, with the account it acts for.
#[derive(Debug, Clone)]
pub struct SessionAccount {
    pub session: StoredSession,
    pub username: String,
    pub role: AccountRole,
    pub organisation: Option<OrganisationId>,
    pub organisation_ods: Option<String>,
    pub patient: Option<PatientId>,
    pub must_change_password: bool,
    pub account_disabled_at: Option<DateTime<Utc>>,
}
