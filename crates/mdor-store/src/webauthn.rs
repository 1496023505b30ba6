//! WebAuthn passkeys and security keys as stored: an account's registered credentials (public
//! key and signature counter, as webauthn-rs serialises them) and the ceremonies begun and
//! not yet finished (the challenge state, found by the hash of a handle the client echoes).
//!
//! The store verifies nothing: the service runs webauthn-rs and hands the store what to keep.
//! It does enforce single use: a ceremony is finished by a conditional UPDATE in the
//! finishing transaction, so two answers to one challenge cannot both succeed.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::accounts::AccountId;
use crate::sessions::SessionId;

/// A registered credential's row id: shown to its holder and named when revoking it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct WebauthnCredentialId(pub i64);

impl std::fmt::Display for WebauthnCredentialId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A ceremony's row id; the client knows it only by its handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WebauthnCeremonyId(pub i64);

/// What a ceremony is for; the names are `webauthn_ceremony.kind`'s CHECK values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    /// Adding a credential to the account of a live session.
    Registration,
    /// The second factor of a sign-in whose password was right.
    SignIn,
    /// A step-up of a live session.
    Reauthentication,
}

impl CeremonyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CeremonyKind::Registration => "registration",
            CeremonyKind::SignIn => "sign_in",
            CeremonyKind::Reauthentication => "reauthentication",
        }
    }

    pub fn parse(input: &str) -> Option<CeremonyKind> {
        [
            CeremonyKind::Registration,
            CeremonyKind::SignIn,
            CeremonyKind::Reauthentication,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == input)
    }
}

/// A ceremony to keep until the client answers.
#[derive(Debug, Clone)]
pub struct NewWebauthnCeremony {
    pub account: AccountId,
    pub kind: CeremonyKind,
    /// SHA-256 of the handle given to the client, hex.
    pub handle_hash: String,
    pub session: Option<SessionId>,
    /// The service's serialised state (webauthn-rs's challenge state and its own notes).
    pub state: String,
    pub at: DateTime<Utc>,
}

/// An unfinished ceremony, as found by its handle.
#[derive(Debug, Clone)]
pub struct WebauthnCeremony {
    pub id: WebauthnCeremonyId,
    pub account: AccountId,
    pub kind: CeremonyKind,
    pub session: Option<SessionId>,
    pub state: String,
    pub created_at: DateTime<Utc>,
}

/// A credential to register.
#[derive(Debug, Clone)]
pub struct NewWebauthnCredential {
    pub account: AccountId,
    /// The authenticator's credential id, base64url without padding.
    pub credential_id: String,
    pub label: String,
    /// webauthn-rs's `Passkey`, serialised.
    pub passkey: String,
    pub at: DateTime<Utc>,
}

/// A live (not revoked) registered credential.
#[derive(Debug, Clone)]
pub struct WebauthnCredential {
    pub id: WebauthnCredentialId,
    pub account: AccountId,
    pub credential_id: String,
    pub label: String,
    pub passkey: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// What a sign-in or step-up with WebAuthn consumes and updates: the ceremony (once only)
/// and the credential's stored state (its signature counter moves on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebauthnUse {
    pub ceremony: WebauthnCeremonyId,
    pub credential: WebauthnCredentialId,
    /// The credential's `Passkey` after the assertion, serialised.
    pub passkey: String,
}
