//! Accounts and sign-in bookkeeping in SQL both engines accept, expanded per backend by
//! `account_queries!` so that the queries are written once.
//!
//! Single-use rules are enforced here, not only in the service: a sign-in consumes its TOTP
//! step or backup code with a conditional UPDATE in the same transaction as its audit entry,
//! so of two concurrent sign-ins with one code exactly one succeeds.

use chrono::{DateTime, Utc};

use crate::accounts::{Account, AccountId, AccountRole};
use crate::error::StoreError;
use crate::types::{OrganisationId, PatientId};

pub(crate) const ACCOUNT_INSERT: &str = "INSERT INTO account \
     (username, role, organisation_id, patient_id, password_hash, totp_secret_sealed, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id";

pub(crate) const BACKUP_CODE_INSERT: &str =
    "INSERT INTO account_backup_code (account_id, code_hash) VALUES ($1, $2)";

/// Builds an account read: the columns `AccountRow` decodes, from `account a` and its
/// organisation `o`, followed by the caller's FROM clause. Every read of an account goes through
/// it, so a new column cannot be added to one query and forgotten in another.
macro_rules! account_select {
    ($from:literal) => {
        concat!(
            "SELECT a.id, a.username, a.role, a.organisation_id, o.ods_code AS organisation_ods, ",
            "a.patient_id, a.password_hash, a.must_change_password, a.totp_secret_sealed, ",
            "a.totp_last_step, a.created_at, a.last_login_at, a.disabled_at, a.reinstated_at, ",
            "a.approver ",
            $from
        )
    };
}
pub(crate) use account_select;

pub(crate) const ACCOUNT_BY_USERNAME: &str = account_select!(
    "FROM account a LEFT JOIN organisation o ON o.id = a.organisation_id \
     WHERE a.username = $1"
);

pub(crate) const ACCOUNT_BY_ID: &str = account_select!(
    "FROM account a LEFT JOIN organisation o ON o.id = a.organisation_id \
     WHERE a.id = $1"
);

/// Every account, for administrators to review, in username order.
pub(crate) const ACCOUNTS_ALL: &str = account_select!(
    "FROM account a LEFT JOIN organisation o ON o.id = a.organisation_id \
     ORDER BY a.username"
);

/// Re-enables a disabled account and restarts its idle clock.
pub(crate) const ACCOUNT_REINSTATE: &str = "UPDATE account SET disabled_at = NULL, reinstated_at = $2 \
     WHERE id = $1 AND disabled_at IS NOT NULL";

/// Designates a provider's data manager as its organisation's approver, or withdraws it;
/// only when that changes something.
pub(crate) const ACCOUNT_SET_APPROVER: &str = "UPDATE account SET approver = $2 \
     WHERE id = $1 AND role = 'provider_data_manager' AND approver <> $2";

/// New credentials: a generated password the holder must change, a new TOTP secret with no
/// step used yet, and a restarted idle clock. A disabled account stays disabled.
pub(crate) const CREDENTIALS_RESET: &str = "UPDATE account SET password_hash = $2, \
       must_change_password = TRUE, totp_secret_sealed = $3, totp_last_step = NULL, \
       reinstated_at = $4 \
     WHERE id = $1";

pub(crate) const BACKUP_CODES_DELETE: &str =
    "DELETE FROM account_backup_code WHERE account_id = $1";

pub(crate) const LOGIN_FAILURES_DELETE: &str =
    "DELETE FROM account_login_failure WHERE account_id = $1";

pub(crate) const WEBAUTHN_CREDENTIALS_REVOKE: &str = "UPDATE account_webauthn_credential \
     SET revoked_at = $2 WHERE account_id = $1 AND revoked_at IS NULL";

/// A reset ends the holder's sessions as revoked: whoever held them no longer has the
/// credentials they were started with.
pub(crate) const SESSIONS_REVOKE_FOR_ACCOUNT: &str = "UPDATE account_session \
     SET ended_at = $2, end_reason = 'revoked' WHERE account_id = $1 AND ended_at IS NULL";

pub(crate) const FAILURE_INSERT: &str =
    "INSERT INTO account_login_failure (account_id, at) VALUES ($1, $2)";

pub(crate) const FAILURES_SINCE: &str = "SELECT COUNT(*), MAX(at) FROM account_login_failure \
     WHERE account_id = $1 AND at >= $2";

/// Consumes a TOTP step: only a step later than the last accepted one, on a live account.
pub(crate) const CONSUME_TOTP_STEP: &str = "UPDATE account SET totp_last_step = $2 \
     WHERE id = $1 AND disabled_at IS NULL AND (totp_last_step IS NULL OR totp_last_step < $2)";

/// Consumes a backup code: only an unused one of a live account.
pub(crate) const CONSUME_BACKUP_CODE: &str = "UPDATE account_backup_code SET used_at = $3 \
     WHERE account_id = $1 AND code_hash = $2 AND used_at IS NULL \
       AND account_id IN (SELECT id FROM account WHERE disabled_at IS NULL)";

/// The account, if it is live: a WebAuthn sign-in checks this in its transaction, as the
/// TOTP and backup-code updates do in their WHERE clauses.
pub(crate) const LIVE_ACCOUNT: &str =
    "SELECT id FROM account WHERE id = $1 AND disabled_at IS NULL";

pub(crate) const RECORD_LOGIN: &str = "UPDATE account SET last_login_at = $2, \
       password_hash = COALESCE($3, password_hash) WHERE id = $1";

/// An account unused since `$1` (never signed in: since its creation), and not re-enabled or
/// reset since, is disabled at `$2`.
pub(crate) const DISABLE_IDLE: &str = "UPDATE account SET disabled_at = $2 \
     WHERE disabled_at IS NULL AND COALESCE(last_login_at, created_at) < $1 \
       AND (reinstated_at IS NULL OR reinstated_at < $1) RETURNING id";

/// Replaces a password chosen by its holder, which also ends the obligation to change it.
pub(crate) const SET_PASSWORD: &str = "UPDATE account SET password_hash = $2, must_change_password = FALSE \
     WHERE id = $1 AND disabled_at IS NULL";

pub(crate) const UNUSED_BACKUP_CODES: &str =
    "SELECT COUNT(*) FROM account_backup_code WHERE account_id = $1 AND used_at IS NULL";

/// The registry's own organisation (the lowest id of kind `registry`), under which
/// authentication events without an organisation are audited.
pub(crate) const REGISTRY_ORGANISATION: &str =
    "SELECT id FROM organisation WHERE kind = 'registry' ORDER BY id LIMIT 1";

#[derive(sqlx::FromRow)]
pub(crate) struct AccountRow {
    id: i64,
    username: String,
    role: String,
    organisation_id: Option<i64>,
    organisation_ods: Option<String>,
    patient_id: Option<i64>,
    password_hash: String,
    must_change_password: bool,
    totp_secret_sealed: Vec<u8>,
    totp_last_step: Option<i64>,
    created_at: DateTime<Utc>,
    last_login_at: Option<DateTime<Utc>>,
    disabled_at: Option<DateTime<Utc>>,
    reinstated_at: Option<DateTime<Utc>>,
    approver: bool,
}

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;
    fn try_from(row: AccountRow) -> Result<Self, StoreError> {
        let role = AccountRole::parse(&row.role)
            .ok_or_else(|| StoreError::Corrupt(format!("account role '{}'", row.role)))?;
        Ok(Account {
            id: AccountId(row.id),
            username: row.username,
            role,
            organisation: row.organisation_id.map(OrganisationId),
            organisation_ods: row.organisation_ods,
            patient: row.patient_id.map(PatientId),
            password_hash: row.password_hash,
            must_change_password: row.must_change_password,
            totp_secret_sealed: row.totp_secret_sealed,
            // Steps are written from u64 values far below i64::MAX (the time in 30 s steps).
            totp_last_step: row.totp_last_step.map(|step| step as u64),
            created_at: row.created_at,
            last_login_at: row.last_login_at,
            disabled_at: row.disabled_at,
            reinstated_at: row.reinstated_at,
            approver: row.approver,
        })
    }
}

/// Expands, inside a backend module next to its `recall` module (whose `insert_audit_entry`
/// appends to the audit log), its `sessions` and its `webauthn_sql` modules, the account queries for connection type `$conn`.
macro_rules! account_queries {
    ($conn:ty) => {
        use chrono::{DateTime, Utc};

        use $crate::accounts::*;
        use $crate::backend::accounts as q;
        use $crate::types::OrganisationId;

        /// Inserts the account and its backup codes and, when given, the audit entry of its
        /// creation, whose resource becomes `account/{id}` of the new account.
        pub(super) async fn insert_account(
            conn: &mut $conn,
            account: &NewAccount,
            audit: Option<&$crate::types::NewAuditEvent>,
        ) -> StoreResult<AccountId> {
            let id: i64 = sqlx::query_scalar(q::ACCOUNT_INSERT)
                .bind(&account.username)
                .bind(account.role.as_str())
                .bind(account.organisation.map(|o| o.0))
                .bind(account.patient.map(|p| p.0))
                .bind(&account.password_hash)
                .bind(&account.totp_secret_sealed)
                .bind(account.created_at)
                .fetch_one(&mut *conn)
                .await?;
            for code_hash in &account.backup_code_hashes {
                sqlx::query(q::BACKUP_CODE_INSERT)
                    .bind(id)
                    .bind(code_hash)
                    .execute(&mut *conn)
                    .await?;
            }
            if let Some(audit) = audit {
                let mut audit = audit.clone();
                audit.resource = format!("account/{id}");
                super::recall::insert_audit(conn, &audit).await?;
            }
            Ok(AccountId(id))
        }

        pub(super) async fn all_accounts(conn: &mut $conn) -> StoreResult<Vec<Account>> {
            let rows: Vec<q::AccountRow> = sqlx::query_as(q::ACCOUNTS_ALL)
                .fetch_all(&mut *conn)
                .await?;
            rows.into_iter().map(Account::try_from).collect()
        }

        /// Re-enables a disabled account with its audit entry; false, with nothing
        /// written, when it was not disabled.
        pub(super) async fn reinstate_account(
            conn: &mut $conn,
            account: AccountId,
            at: DateTime<Utc>,
            audit: &$crate::types::NewAuditEvent,
        ) -> StoreResult<bool> {
            let updated = sqlx::query(q::ACCOUNT_REINSTATE)
                .bind(account.0)
                .bind(at)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if updated != 1 {
                return Ok(false);
            }
            super::recall::insert_audit(conn, audit).await?;
            Ok(true)
        }

        /// Designates or withdraws an approver with its audit entry; false, with nothing
        /// written, when the account is no data manager or already was (not) one.
        pub(super) async fn set_approver(
            conn: &mut $conn,
            account: AccountId,
            approver: bool,
            audit: &$crate::types::NewAuditEvent,
        ) -> StoreResult<bool> {
            let updated = sqlx::query(q::ACCOUNT_SET_APPROVER)
                .bind(account.0)
                .bind(approver)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if updated != 1 {
                return Ok(false);
            }
            super::recall::insert_audit(conn, audit).await?;
            Ok(true)
        }

        /// Replaces an account's credentials (`CredentialReset`) with its audit entry; false,
        /// with nothing written, when there is no such account.
        pub(super) async fn reset_credentials(
            conn: &mut $conn,
            reset: &CredentialReset,
            audit: &$crate::types::NewAuditEvent,
        ) -> StoreResult<bool> {
            let updated = sqlx::query(q::CREDENTIALS_RESET)
                .bind(reset.account.0)
                .bind(&reset.password_hash)
                .bind(&reset.totp_secret_sealed)
                .bind(reset.at)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if updated != 1 {
                return Ok(false);
            }
            sqlx::query(q::BACKUP_CODES_DELETE)
                .bind(reset.account.0)
                .execute(&mut *conn)
                .await?;
            for code_hash in &reset.backup_code_hashes {
                sqlx::query(q::BACKUP_CODE_INSERT)
                    .bind(reset.account.0)
                    .bind(code_hash)
                    .execute(&mut *conn)
                    .await?;
            }
            for statement in [
                q::WEBAUTHN_CREDENTIALS_REVOKE,
                q::SESSIONS_REVOKE_FOR_ACCOUNT,
            ] {
                sqlx::query(statement)
                    .bind(reset.account.0)
                    .bind(reset.at)
                    .execute(&mut *conn)
                    .await?;
            }
            sqlx::query(q::LOGIN_FAILURES_DELETE)
                .bind(reset.account.0)
                .execute(&mut *conn)
                .await?;
            super::recall::insert_audit(conn, audit).await?;
            Ok(true)
        }

        pub(super) async fn account_by_username(
            conn: &mut $conn,
            username: &str,
        ) -> StoreResult<Option<Account>> {
            let row: Option<q::AccountRow> = sqlx::query_as(q::ACCOUNT_BY_USERNAME)
                .bind(username)
                .fetch_optional(&mut *conn)
                .await?;
            row.map(Account::try_from).transpose()
        }

        pub(super) async fn account_by_id(
            conn: &mut $conn,
            account: AccountId,
        ) -> StoreResult<Option<Account>> {
            let row: Option<q::AccountRow> = sqlx::query_as(q::ACCOUNT_BY_ID)
                .bind(account.0)
                .fetch_optional(&mut *conn)
                .await?;
            row.map(Account::try_from).transpose()
        }

        pub(super) async fn failures_since(
            conn: &mut $conn,
            account: AccountId,
            since: DateTime<Utc>,
        ) -> StoreResult<LoginFailures> {
            let (count, latest): (i64, Option<DateTime<Utc>>) = sqlx::query_as(q::FAILURES_SINCE)
                .bind(account.0)
                .bind(since)
                .fetch_one(&mut *conn)
                .await?;
            Ok(LoginFailures {
                count: count as u64,
                latest,
            })
        }

        pub(super) async fn record_failure(
            conn: &mut $conn,
            account: Option<AccountId>,
            at: DateTime<Utc>,
            audit: Option<&NewAccountAuditEvent>,
        ) -> StoreResult<()> {
            if let Some(account) = account {
                sqlx::query(q::FAILURE_INSERT)
                    .bind(account.0)
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
            }
            if let Some(audit) = audit {
                super::recall::insert_audit_entry(conn, |seq| audit.entry(seq)).await?;
            }
            Ok(())
        }

        /// Consumes the second factor and records the sign-in; false, with nothing written,
        /// when the factor was already used (the caller rolls back).
        pub(super) async fn record_success(
            conn: &mut $conn,
            success: &LoginSuccess,
            audit: &NewAccountAuditEvent,
        ) -> StoreResult<bool> {
            let consumed = match &success.second_factor {
                SecondFactorUse::TotpStep(step) => sqlx::query(q::CONSUME_TOTP_STEP)
                    .bind(success.account.0)
                    .bind(*step as i64)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected(),
                SecondFactorUse::BackupCode(code_hash) => sqlx::query(q::CONSUME_BACKUP_CODE)
                    .bind(success.account.0)
                    .bind(code_hash)
                    .bind(success.at)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected(),
                SecondFactorUse::Webauthn(used) => {
                    let live: Option<i64> = sqlx::query_scalar(q::LIVE_ACCOUNT)
                        .bind(success.account.0)
                        .fetch_optional(&mut *conn)
                        .await?;
                    if live.is_some()
                        && super::webauthn_sql::use_credential(conn, used, success.at).await?
                    {
                        1
                    } else {
                        0
                    }
                }
            };
            if consumed != 1 {
                return Ok(false);
            }
            sqlx::query(q::RECORD_LOGIN)
                .bind(success.account.0)
                .bind(success.at)
                .bind(success.rehashed_password.as_deref())
                .execute(&mut *conn)
                .await?;
            super::recall::insert_audit_entry(conn, |seq| audit.entry(seq)).await?;
            Ok(true)
        }

        pub(super) async fn disable_idle(
            conn: &mut $conn,
            unused_since: DateTime<Utc>,
            at: DateTime<Utc>,
        ) -> StoreResult<Vec<AccountId>> {
            let ids: Vec<i64> = sqlx::query_scalar(q::DISABLE_IDLE)
                .bind(unused_since)
                .bind(at)
                .fetch_all(&mut *conn)
                .await?;
            let mut ids: Vec<AccountId> = ids.into_iter().map(AccountId).collect();
            ids.sort();
            // Disabling an account ends its live sessions, in the same transaction.
            for id in &ids {
                super::sessions::end_account_sessions(conn, *id, at).await?;
            }
            Ok(ids)
        }

        /// False, with nothing written, when the account is disabled.
        pub(super) async fn set_password(
            conn: &mut $conn,
            account: AccountId,
            password_hash: &str,
            audit: &NewAccountAuditEvent,
        ) -> StoreResult<bool> {
            let updated = sqlx::query(q::SET_PASSWORD)
                .bind(account.0)
                .bind(password_hash)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if updated != 1 {
                return Ok(false);
            }
            super::recall::insert_audit_entry(conn, |seq| audit.entry(seq)).await?;
            Ok(true)
        }

        pub(super) async fn unused_backup_codes(
            conn: &mut $conn,
            account: AccountId,
        ) -> StoreResult<u64> {
            let count: i64 = sqlx::query_scalar(q::UNUSED_BACKUP_CODES)
                .bind(account.0)
                .fetch_one(&mut *conn)
                .await?;
            Ok(count as u64)
        }

        pub(super) async fn registry_organisation(
            conn: &mut $conn,
        ) -> StoreResult<Option<OrganisationId>> {
            let id: Option<i64> = sqlx::query_scalar(q::REGISTRY_ORGANISATION)
                .fetch_optional(&mut *conn)
                .await?;
            Ok(id.map(OrganisationId))
        }
    };
}

pub(crate) use account_queries;
