//! WebAuthn credentials and ceremonies in SQL both engines accept, expanded per backend by
//! `webauthn_queries!` so that the queries are written once.
//!
//! No time is compared in SQL: the service decides whether a ceremony is too old.

use chrono::{DateTime, Utc};

use crate::accounts::AccountId;
use crate::error::StoreError;
use crate::sessions::SessionId;
use crate::webauthn::{
    CeremonyKind, WebauthnCeremony, WebauthnCeremonyId, WebauthnCredential, WebauthnCredentialId,
};

pub(crate) const CEREMONY_INSERT: &str = "INSERT INTO webauthn_ceremony \
     (account_id, kind, handle_hash, session_id, state, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";

pub(crate) const CEREMONY_BY_HANDLE: &str = "SELECT id, account_id, kind, session_id, state, \
       created_at FROM webauthn_ceremony WHERE handle_hash = $1 AND used_at IS NULL";

/// Finishes a ceremony: only an unused one.
pub(crate) const CEREMONY_CONSUME: &str =
    "UPDATE webauthn_ceremony SET used_at = $2 WHERE id = $1 AND used_at IS NULL";

pub(crate) const CREDENTIAL_INSERT: &str = "INSERT INTO account_webauthn_credential \
     (account_id, credential_id, label, passkey, created_at) \
     VALUES ($1, $2, $3, $4, $5) RETURNING id";

pub(crate) const CREDENTIALS_OF_ACCOUNT: &str = "SELECT id, account_id, credential_id, label, \
       passkey, created_at, last_used_at FROM account_webauthn_credential \
     WHERE account_id = $1 AND revoked_at IS NULL ORDER BY id";

/// Records an assertion's new counter: only on a live credential of a live account.
pub(crate) const CREDENTIAL_USE: &str = "UPDATE account_webauthn_credential \
     SET passkey = $2, last_used_at = $3 WHERE id = $1 AND revoked_at IS NULL";

/// Revokes one live credential of one account: a holder can only revoke their own.
pub(crate) const CREDENTIAL_REVOKE: &str = "UPDATE account_webauthn_credential \
     SET revoked_at = $3 WHERE id = $1 AND account_id = $2 AND revoked_at IS NULL";

#[derive(sqlx::FromRow)]
pub(crate) struct CeremonyRow {
    id: i64,
    account_id: i64,
    kind: String,
    session_id: Option<i64>,
    state: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<CeremonyRow> for WebauthnCeremony {
    type Error = StoreError;
    fn try_from(row: CeremonyRow) -> Result<Self, StoreError> {
        let kind = CeremonyKind::parse(&row.kind)
            .ok_or_else(|| StoreError::Corrupt(format!("webauthn ceremony kind '{}'", row.kind)))?;
        Ok(WebauthnCeremony {
            id: WebauthnCeremonyId(row.id),
            account: AccountId(row.account_id),
            kind,
            session: row.session_id.map(SessionId),
            state: row.state,
            created_at: row.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct CredentialRow {
    id: i64,
    account_id: i64,
    credential_id: String,
    label: String,
    passkey: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
}

impl From<CredentialRow> for WebauthnCredential {
    fn from(row: CredentialRow) -> Self {
        WebauthnCredential {
            id: WebauthnCredentialId(row.id),
            account: AccountId(row.account_id),
            credential_id: row.credential_id,
            label: row.label,
            passkey: row.passkey,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
        }
    }
}

/// Expands, inside a backend module next to its `recall` module (whose `insert_audit_entry`
/// appends to the audit log), the WebAuthn queries for connection type `$conn`.
macro_rules! webauthn_queries {
    ($conn:ty) => {
        use chrono::{DateTime, Utc};

        use $crate::accounts::{AccountId, NewAccountAuditEvent};
        use $crate::backend::webauthn as q;
        use $crate::webauthn::*;

        pub(super) async fn insert_ceremony(
            conn: &mut $conn,
            ceremony: &NewWebauthnCeremony,
        ) -> StoreResult<WebauthnCeremonyId> {
            let id: i64 = sqlx::query_scalar(q::CEREMONY_INSERT)
                .bind(ceremony.account.0)
                .bind(ceremony.kind.as_str())
                .bind(&ceremony.handle_hash)
                .bind(ceremony.session.map(|s| s.0))
                .bind(&ceremony.state)
                .bind(ceremony.at)
                .fetch_one(&mut *conn)
                .await?;
            Ok(WebauthnCeremonyId(id))
        }

        pub(super) async fn ceremony_by_handle(
            conn: &mut $conn,
            handle_hash: &str,
        ) -> StoreResult<Option<WebauthnCeremony>> {
            let row: Option<q::CeremonyRow> = sqlx::query_as(q::CEREMONY_BY_HANDLE)
                .bind(handle_hash)
                .fetch_optional(&mut *conn)
                .await?;
            row.map(WebauthnCeremony::try_from).transpose()
        }

        /// True when this call finished the ceremony; false when it was finished before.
        pub(super) async fn consume_ceremony(
            conn: &mut $conn,
            ceremony: WebauthnCeremonyId,
            at: DateTime<Utc>,
        ) -> StoreResult<bool> {
            let consumed = sqlx::query(q::CEREMONY_CONSUME)
                .bind(ceremony.0)
                .bind(at)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            Ok(consumed == 1)
        }

        pub(super) async fn credentials(
            conn: &mut $conn,
            account: AccountId,
        ) -> StoreResult<Vec<WebauthnCredential>> {
            let rows: Vec<q::CredentialRow> = sqlx::query_as(q::CREDENTIALS_OF_ACCOUNT)
                .bind(account.0)
                .fetch_all(&mut *conn)
                .await?;
            Ok(rows.into_iter().map(WebauthnCredential::from).collect())
        }

        /// Finishes the registration ceremony and stores the credential with its audit
        /// entry; `None`, with nothing written, when the ceremony was finished before.
        pub(super) async fn register_credential(
            conn: &mut $conn,
            ceremony: WebauthnCeremonyId,
            credential: &NewWebauthnCredential,
            audit: &NewAccountAuditEvent,
        ) -> StoreResult<Option<WebauthnCredentialId>> {
            if !consume_ceremony(conn, ceremony, credential.at).await? {
                return Ok(None);
            }
            let id: i64 = sqlx::query_scalar(q::CREDENTIAL_INSERT)
                .bind(credential.account.0)
                .bind(&credential.credential_id)
                .bind(&credential.label)
                .bind(&credential.passkey)
                .bind(credential.at)
                .fetch_one(&mut *conn)
                .await?;
            super::recall::insert_audit_entry(conn, |seq| audit.entry(seq)).await?;
            Ok(Some(WebauthnCredentialId(id)))
        }

        /// Consumes a sign-in's or step-up's ceremony and moves the credential's counter on;
        /// false when either was used or revoked meanwhile (the caller rolls back).
        pub(super) async fn use_credential(
            conn: &mut $conn,
            used: &WebauthnUse,
            at: DateTime<Utc>,
        ) -> StoreResult<bool> {
            if !consume_ceremony(conn, used.ceremony, at).await? {
                return Ok(false);
            }
            let updated = sqlx::query(q::CREDENTIAL_USE)
                .bind(used.credential.0)
                .bind(&used.passkey)
                .bind(at)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            Ok(updated == 1)
        }

        /// False, with nothing written, when the credential is not a live one of `account`.
        pub(super) async fn revoke_credential(
            conn: &mut $conn,
            account: AccountId,
            credential: WebauthnCredentialId,
            at: DateTime<Utc>,
            audit: &NewAccountAuditEvent,
        ) -> StoreResult<bool> {
            let revoked = sqlx::query(q::CREDENTIAL_REVOKE)
                .bind(credential.0)
                .bind(account.0)
                .bind(at)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if revoked != 1 {
                return Ok(false);
            }
            super::recall::insert_audit_entry(conn, |seq| audit.entry(seq)).await?;
            Ok(true)
        }
    };
}

pub(crate) use webauthn_queries;
