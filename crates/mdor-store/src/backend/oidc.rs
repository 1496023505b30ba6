//! OpenID Connect sign-ins and identity links in SQL both engines accept, expanded per backend
//! by `oidc_queries!` so that the queries are written once.
//!
//! A sign-in under way is taken with `DELETE … RETURNING`, so of two callbacks with one state
//! exactly one finds it. Expired rows are purged when a sign-in starts; the times are whole
//! seconds, so SQLite's text comparison orders them as PostgreSQL does.

use chrono::{DateTime, Utc};

use crate::backend::accounts::account_select;
use crate::oidc::PendingOidcSignIn;

pub(crate) const SIGN_IN_PURGE: &str = "DELETE FROM oidc_sign_in WHERE expires_at < $1";

pub(crate) const SIGN_IN_INSERT: &str = "INSERT INTO oidc_sign_in \
     (state_hash, nonce_hash, verifier_hash, created_at, expires_at, step_up_session_hash) \
     VALUES ($1, $2, $3, $4, $5, $6)";

pub(crate) const SIGN_IN_TAKE: &str = "DELETE FROM oidc_sign_in WHERE state_hash = $1 \
     RETURNING nonce_hash, verifier_hash, created_at, expires_at, step_up_session_hash";

pub(crate) const IDENTITY_INSERT: &str = "INSERT INTO account_oidc_identity \
     (account_id, issuer, subject, linked_at) VALUES ($1, $2, $3, $4)";

/// The account linked to a subject.
pub(crate) const ACCOUNT_BY_IDENTITY: &str = account_select!(
    "FROM account_oidc_identity i JOIN account a ON a.id = i.account_id \
       LEFT JOIN organisation o ON o.id = a.organisation_id \
     WHERE i.issuer = $1 AND i.subject = $2"
);

/// Records a sign-in of a live account; nothing for a disabled one.
pub(crate) const RECORD_OIDC_LOGIN: &str =
    "UPDATE account SET last_login_at = $2 WHERE id = $1 AND disabled_at IS NULL";

#[derive(sqlx::FromRow)]
pub(crate) struct PendingRow {
    nonce_hash: String,
    verifier_hash: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    step_up_session_hash: Option<String>,
}

impl From<PendingRow> for PendingOidcSignIn {
    fn from(row: PendingRow) -> Self {
        PendingOidcSignIn {
            nonce_hash: row.nonce_hash,
            verifier_hash: row.verifier_hash,
            created_at: row.created_at,
            expires_at: row.expires_at,
            step_up_session_hash: row.step_up_session_hash,
        }
    }
}

/// Expands, inside a backend module next to its `recall` module (whose `insert_audit_entry`
/// appends to the audit log), the OpenID Connect queries for connection type `$conn`.
macro_rules! oidc_queries {
    ($conn:ty) => {
        use chrono::{DateTime, Utc};

        use $crate::accounts::{Account, AccountId, NewAccountAuditEvent};
        use $crate::backend::accounts::AccountRow;
        use $crate::backend::oidc as q;
        use $crate::oidc::*;

        /// Purges expired sign-ins, then stores this one.
        pub(super) async fn insert_sign_in(
            conn: &mut $conn,
            sign_in: &NewOidcSignIn,
        ) -> StoreResult<()> {
            sqlx::query(q::SIGN_IN_PURGE)
                .bind(sign_in.created_at)
                .execute(&mut *conn)
                .await?;
            sqlx::query(q::SIGN_IN_INSERT)
                .bind(&sign_in.state_hash)
                .bind(&sign_in.nonce_hash)
                .bind(&sign_in.verifier_hash)
                .bind(sign_in.created_at)
                .bind(sign_in.expires_at)
                .bind(sign_in.step_up_session_hash.as_deref())
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        pub(super) async fn take_sign_in(
            conn: &mut $conn,
            state_hash: &str,
        ) -> StoreResult<Option<PendingOidcSignIn>> {
            let row: Option<q::PendingRow> = sqlx::query_as(q::SIGN_IN_TAKE)
                .bind(state_hash)
                .fetch_optional(&mut *conn)
                .await?;
            Ok(row.map(PendingOidcSignIn::from))
        }

        /// A subject already linked, or an account already linked at this issuer, is a
        /// `Conflict`.
        pub(super) async fn link_identity(
            conn: &mut $conn,
            identity: &NewOidcIdentity,
            audit: &$crate::types::NewAuditEvent,
        ) -> StoreResult<()> {
            sqlx::query(q::IDENTITY_INSERT)
                .bind(identity.account.0)
                .bind(&identity.issuer)
                .bind(&identity.subject)
                .bind(identity.linked_at)
                .execute(&mut *conn)
                .await?;
            super::recall::insert_audit(conn, audit).await?;
            Ok(())
        }

        pub(super) async fn account_by_identity(
            conn: &mut $conn,
            issuer: &str,
            subject: &str,
        ) -> StoreResult<Option<Account>> {
            let row: Option<AccountRow> = sqlx::query_as(q::ACCOUNT_BY_IDENTITY)
                .bind(issuer)
                .bind(subject)
                .fetch_optional(&mut *conn)
                .await?;
            row.map(Account::try_from).transpose()
        }

        /// False, with nothing written, when the account is disabled.
        pub(super) async fn record_login(
            conn: &mut $conn,
            account: AccountId,
            at: DateTime<Utc>,
            audit: &NewAccountAuditEvent,
        ) -> StoreResult<bool> {
            let recorded = sqlx::query(q::RECORD_OIDC_LOGIN)
                .bind(account.0)
                .bind(at)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if recorded != 1 {
                return Ok(false);
            }
            super::recall::insert_audit_entry(conn, |seq| audit.entry(seq)).await?;
            Ok(true)
        }
    };
}

pub(crate) use oidc_queries;
