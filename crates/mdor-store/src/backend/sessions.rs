//! Sessions in SQL both engines accept, expanded per backend by `session_queries!` so that
//! the queries are written once.
//!
//! No time is compared in SQL (SQLite keeps times as text): the service reads a session's
//! times and decides whether it has expired.

use chrono::{DateTime, Utc};

use crate::accounts::{AccountId, AccountRole};
use crate::error::StoreError;
use crate::sessions::{SessionAccount, SessionAssurance, SessionFactor, SessionId, StoredSession};
use crate::types::{OrganisationId, PatientId};

pub(crate) const SESSION_INSERT: &str = "INSERT INTO account_session \
     (account_id, secret_hash, created_at, last_seen_at, reauthenticated_at, factor, \
      phishing_resistant) \
     VALUES ($1, $2, $3, $3, $3, $4, $5) RETURNING id";

pub(crate) const SESSION_BY_SECRET_HASH: &str = "SELECT s.id, s.account_id, s.created_at, \
       s.last_seen_at, s.reauthenticated_at, s.factor, s.phishing_resistant, a.username, a.role, a.organisation_id, \
       o.ods_code AS organisation_ods, a.patient_id, a.must_change_password, a.disabled_at \
     FROM account_session s JOIN account a ON a.id = s.account_id \
       LEFT JOIN organisation o ON o.id = a.organisation_id \
     WHERE s.secret_hash = $1 AND s.ended_at IS NULL";

pub(crate) const SESSION_TOUCH: &str =
    "UPDATE account_session SET last_seen_at = $2 WHERE id = $1 AND ended_at IS NULL";

/// Ends one live session of one account: a holder can only end their own.
pub(crate) const SESSION_END: &str = "UPDATE account_session SET ended_at = $3, end_reason = $4 \
     WHERE id = $1 AND account_id = $2 AND ended_at IS NULL";

/// Step-up: a new secret for the same session, and the time and factor of the
/// authentication.
pub(crate) const SESSION_ROTATE: &str = "UPDATE account_session \
     SET secret_hash = $2, reauthenticated_at = $3, last_seen_at = $3, factor = $4, \
       phishing_resistant = $5 \
     WHERE id = $1 AND ended_at IS NULL";

pub(crate) const SESSIONS_OF_ACCOUNT: &str = "SELECT id, account_id, created_at, last_seen_at, \
       reauthenticated_at, factor, phishing_resistant FROM account_session \
     WHERE account_id = $1 AND ended_at IS NULL ORDER BY id";

/// Ends every live session of an account that was just disabled.
pub(crate) const SESSIONS_END_FOR_ACCOUNT: &str = "UPDATE account_session \
     SET ended_at = $2, end_reason = 'account_disabled' \
     WHERE account_id = $1 AND ended_at IS NULL";

pub(crate) const ACCOUNT_DISABLE: &str =
    "UPDATE account SET disabled_at = $2 WHERE id = $1 AND disabled_at IS NULL";

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    id: i64,
    account_id: i64,
    created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    reauthenticated_at: DateTime<Utc>,
    factor: String,
    phishing_resistant: bool,
}

impl TryFrom<SessionRow> for StoredSession {
    type Error = StoreError;
    fn try_from(row: SessionRow) -> Result<Self, StoreError> {
        let factor = SessionFactor::parse(&row.factor)
            .ok_or_else(|| StoreError::Corrupt(format!("session factor '{}'", row.factor)))?;
        Ok(StoredSession {
            id: SessionId(row.id),
            account: AccountId(row.account_id),
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            reauthenticated_at: row.reauthenticated_at,
            assurance: SessionAssurance {
                factor,
                phishing_resistant: row.phishing_resistant,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SessionAccountRow {
    #[sqlx(flatten)]
    session: SessionRow,
    username: String,
    role: String,
    organisation_id: Option<i64>,
    organisation_ods: Option<String>,
    patient_id: Option<i64>,
    must_change_password: bool,
    disabled_at: Option<DateTime<Utc>>,
}

impl TryFrom<SessionAccountRow> for SessionAccount {
    type Error = StoreError;
    fn try_from(row: SessionAccountRow) -> Result<Self, StoreError> {
        let role = AccountRole::parse(&row.role)
            .ok_or_else(|| StoreError::Corrupt(format!("account role '{}'", row.role)))?;
        Ok(SessionAccount {
            session: row.session.try_into()?,
            username: row.username,
            role,
            organisation: row.organisation_id.map(OrganisationId),
            organisation_ods: row.organisation_ods,
            patient: row.patient_id.map(PatientId),
            must_change_password: row.must_change_password,
            account_disabled_at: row.disabled_at,
        })
    }
}

/// Expands, inside a backend module next to its `recall` module (whose `insert_audit_entry`
/// appends to the audit log), the session queries for connection type `$conn`.
macro_rules! session_queries {
    ($conn:ty) => {
        use chrono::{DateTime, Utc};

        use $crate::accounts::{AccountId, NewAccountAuditEvent};
        use $crate::backend::sessions as q;
        use $crate::sessions::*;

        pub(super) async fn insert_session(
            conn: &mut $conn,
            session: &NewSession,
        ) -> StoreResult<SessionId> {
            let id: i64 = sqlx::query_scalar(q::SESSION_INSERT)
                .bind(session.account.0)
                .bind(&session.secret_hash)
                .bind(session.at)
                .bind(session.assurance.factor.as_str())
                .bind(session.assurance.phishing_resistant)
                .fetch_one(&mut *conn)
                .await?;
            Ok(SessionId(id))
        }

        pub(super) async fn session_by_secret_hash(
            conn: &mut $conn,
            secret_hash: &str,
        ) -> StoreResult<Option<SessionAccount>> {
            let row: Option<q::SessionAccountRow> = sqlx::query_as(q::SESSION_BY_SECRET_HASH)
                .bind(secret_hash)
                .fetch_optional(&mut *conn)
                .await?;
            row.map(SessionAccount::try_from).transpose()
        }

        pub(super) async fn touch_session(
            conn: &mut $conn,
            session: SessionId,
            at: DateTime<Utc>,
        ) -> StoreResult<()> {
            sqlx::query(q::SESSION_TOUCH)
                .bind(session.0)
                .bind(at)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        /// False, with nothing written, when the session is not a live one of `account`.
        pub(super) async fn end_session(
            conn: &mut $conn,
            account: AccountId,
            session: SessionId,
            at: DateTime<Utc>,
            reason: SessionEnd,
            audit: Option<&NewAccountAuditEvent>,
        ) -> StoreResult<bool> {
            let ended = sqlx::query(q::SESSION_END)
                .bind(session.0)
                .bind(account.0)
                .bind(at)
                .bind(reason.as_str())
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if ended != 1 {
                return Ok(false);
            }
            if let Some(audit) = audit {
                super::recall::insert_audit_entry(conn, |seq| audit.entry(seq)).await?;
            }
            Ok(true)
        }

        pub(super) async fn rotate_session(
            conn: &mut $conn,
            session: SessionId,
            secret_hash: &str,
            at: DateTime<Utc>,
            assurance: SessionAssurance,
        ) -> StoreResult<bool> {
            let rotated = sqlx::query(q::SESSION_ROTATE)
                .bind(session.0)
                .bind(secret_hash)
                .bind(at)
                .bind(assurance.factor.as_str())
                .bind(assurance.phishing_resistant)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            Ok(rotated == 1)
        }

        pub(super) async fn account_sessions(
            conn: &mut $conn,
            account: AccountId,
        ) -> StoreResult<Vec<StoredSession>> {
            let rows: Vec<q::SessionRow> = sqlx::query_as(q::SESSIONS_OF_ACCOUNT)
                .bind(account.0)
                .fetch_all(&mut *conn)
                .await?;
            rows.into_iter().map(StoredSession::try_from).collect()
        }

        /// Ends every live session of an account disabled at `at`.
        pub(super) async fn end_account_sessions(
            conn: &mut $conn,
            account: AccountId,
            at: DateTime<Utc>,
        ) -> StoreResult<()> {
            sqlx::query(q::SESSIONS_END_FOR_ACCOUNT)
                .bind(account.0)
                .bind(at)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        /// Disables a live account and ends its sessions; false, with nothing written, when
        /// it was already disabled.
        pub(super) async fn disable_account(
            conn: &mut $conn,
            account: AccountId,
            at: DateTime<Utc>,
            audit: &$crate::types::NewAuditEvent,
        ) -> StoreResult<bool> {
            let disabled = sqlx::query(q::ACCOUNT_DISABLE)
                .bind(account.0)
                .bind(at)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if disabled != 1 {
                return Ok(false);
            }
            end_account_sessions(conn, account, at).await?;
            super::recall::insert_audit(conn, audit).await?;
            Ok(true)
        }
    };
}

pub(crate) use session_queries;
