//! OpenID Connect sign-in as stored: sign-ins under way at the identity provider (kept only
//! as hashes of their state, nonce and PKCE verifier, taken once) and the links between an
//! identity provider's subjects and accounts.
//!
//! The store decides nothing: the service hashes the secrets, judges expiry and the ID token,
//! and asks here only "which sign-in has this state" and "which account is this subject".

use chrono::{DateTime, Utc};

use crate::accounts::AccountId;

/// A sign-in just sent to the identity provider. Every field but the times is the hex SHA-256
/// of a secret the service generated and never stores.
#[derive(Debug, Clone)]
pub struct NewOidcSignIn {
    pub state_hash: String,
    pub nonce_hash: String,
    pub verifier_hash: String,
    /// Whole seconds (both engines then compare times as written).
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// For a step-up of a live session, the SHA-256 of that session's secret; `None` for a
    /// sign-in.
    pub step_up_session_hash: Option<String>,
}

/// A sign-in under way, as taken (and so ended) by its callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOidcSignIn {
    pub nonce_hash: String,
    pub verifier_hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The session a step-up re-authenticates, as `NewOidcSignIn` names it.
    pub step_up_session_hash: Option<String>,
}

/// A link from an identity provider's subject to an account.
#[derive(Debug, Clone)]
pub struct NewOidcIdentity {
    pub account: AccountId,
    pub issuer: String,
    pub subject: String,
    pub linked_at: DateTime<Utc>,
}
