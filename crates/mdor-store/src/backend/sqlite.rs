//! The embedded SQLite backend: one file, WAL journal, `synchronous=FULL`, foreign keys on.
//! Writes run in `BEGIN IMMEDIATE` transactions so that concurrent writers queue on the
//! busy timeout instead of failing on a stale snapshot.
//!
//! Submissions use group commit. With `synchronous=FULL` every commit waits for an fsync
//! (about 2.6 ms on the reference machine, so at most ~380 commits a second), so one writer
//! task takes every submission waiting at that moment into one transaction, each in its own
//! savepoint: a failing submission rolls back alone, and every submission is acknowledged only
//! after the shared COMMIT has returned. If the COMMIT itself fails, each submission of the
//! group is retried in a transaction of its own so that each gets its own answer.
//!
//! Audited reads (`audited_procedure`, `audited_recall`) use the same writer: the data is read
//! on a pooled connection (a recall: on the writer's own connection, inside the group's
//! transaction, `RecallJob`), its audit entry joins the next group commit, and the data is
//! returned only after that COMMIT has returned, so a failed audit write means no data and
//! concurrent audited reads share one fsync. (Except for recalls, and unlike PostgreSQL, the
//! read is not inside the audit's transaction; nothing is returned before the audit is durable
//! either way.)

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use mdor_domain::register::RegisterEntry;

use super::references;
use mdor_domain::{NhsNumber, OdsCode, UdiDi};

use super::ConnectOptions;
use super::bulk::{BulkLookups, BulkPlan};
use super::keys::{self, KeySlot};
use super::named_index::{IndexerGuard, NamedIndex, spawn_indexer};
use super::submissions::{ReportRow, SourceRow};
use crate::access_reviews::{
    AccessReview, AccessReviewDecision, AccessReviewId, AccessReviewQuery,
};
use crate::accounts::{
    Account, AccountId, LoginFailures, LoginSuccess, NewAccount, NewAccountAuditEvent,
};
use crate::analysis::{
    self, AlertRow, AnalysisExtract, AnalysisScope, NewSurveillanceRun, SignalRow, StoredAlert,
    StoredSignal, SurveillanceRunId, SurveillanceRunInfo,
};
use crate::field_crypto::{FieldCipher, KeyEncryptionKey, SealedPatient};
use crate::load_schema;
use crate::rows::*;
use crate::sessions::{
    NewSession, SessionAccount, SessionAssurance, SessionEnd, SessionId, StoredSession,
};
use crate::sql::{self, Param};
use crate::types::*;
use crate::webauthn::{
    NewWebauthnCeremony, NewWebauthnCredential, WebauthnCeremony, WebauthnCeremonyId,
    WebauthnCredential, WebauthnCredentialId,
};
use crate::{Store, StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite allows 32,766 bound variables per statement; stay well below it.
const MAX_VARIABLES: usize = 30_000;

/// The most submissions one group commit takes.
const MAX_GROUP: usize = 256;

pub struct SqliteStore {
    pool: SqlitePool,
    writer: mpsc::Sender<WriteJob>,
    /// Rows per page of an analysis extract's large tables (`ConnectOptions`).
    extract_page_rows: i64,
    /// The identifier keys (`field_crypto`), loaded on first use.
    keys: KeySlot,
    /// The by-patient index of multi-patient reads, a file of its own (`named_index`).
    named_index: Arc<NamedIndex>,
    /// Keeps that index caught up while the store lives.
    _indexer: IndexerGuard,
    /// Bulk loads and submission chunks, with the engine's foreign keys off (`references`).
    bulk: references::BulkWriter,
}

/// One write waiting for the group-commit writer.
enum WriteJob {
    // Both boxed, so that the channel of up to a thousand jobs holds pointers: a submission
    // is three times the size of an audit entry, and an entry is over 200 bytes. One
    // allocation is nothing next to the commit's fsync every job waits for.
    Submission(Box<PendingSubmission>),
    Audit(Box<AuditJob>),
    Recall(Box<RecallJob>),
}

/// An audited recall: its rows are read on the writer's connection inside the group's
/// transaction, then its audit entry (naming every patient read) is appended there.
///
/// Why on the writer: in WAL mode a connection discards its whole page cache whenever another
/// connection has committed since its last read, and every audited read commits. Read on a
/// pooled connection, a large lot re-read its few hundred pages from the operating system
/// after each recall's audit commit (a 243-implant lot: 0.45 ms warm, 1.87 ms after a commit
/// by another connection); the writer's connection keeps its cache, since the commits are
/// its own. The identifiers are opened by the caller, off the writer.
struct RecallJob {
    criteria: RecallCriteria,
    audit: NewAuditEvent,
    reply: oneshot::Sender<StoreResult<Vec<RecallDbRow>>>,
}

struct PendingSubmission {
    prepared: PreparedSubmission,
    /// The patient's identifiers, sealed before the job was queued.
    sealed: SealedPatient,
    cipher: Arc<FieldCipher>,
    /// Its `response_body` is sealed.
    idempotency: Option<NewIdempotencyRecord>,
    reply: oneshot::Sender<StoreResult<ProcedureId>>,
}

/// The audit entry of a read whose data waits for this entry's commit.
struct AuditJob {
    event: NewAuditEvent,
    reply: oneshot::Sender<StoreResult<()>>,
}

impl SqliteStore {
    pub async fn connect(url: &str, options: &ConnectOptions) -> StoreResult<SqliteStore> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let connect = SqliteConnectOptions::from_str(url)?
            .create_if_missing(options.create_if_missing)
            .foreign_keys(true)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            // 64 MiB of page cache per connection (the default is 2 MiB): the registry's
            // indexes are read at random, and bulk loads and recalls stay in memory.
            .pragma("cache_size", "-65536")
            // Statement journals (the undo of one statement inside a transaction, written for
            // every multi-row insert that could fail half-way) in memory, not in temporary
            // files: they were a tenth of a bulk submission's time in write system calls.
            .pragma("temp_store", "MEMORY")
            // Checkpoint the WAL into the database every 16,384 pages (64 MiB) rather than
            // every 1,000: the same hot index pages are rewritten by each commit, and a
            // checkpoint copies each of them once however often they changed since the last.
            .pragma("wal_autocheckpoint", "16384")
            // Rows cross from SQLite's worker thread in a bounded channel; a deeper buffer
            // lets large reads (the surveillance extract) stream without a wake-up per row.
            .row_buffer_size(1024);
        // An in-memory database lives in one connection; WAL does not apply to it.
        let (connect, max_connections) = if in_memory {
            (connect.journal_mode(SqliteJournalMode::Memory), 1)
        } else {
            (
                connect.journal_mode(SqliteJournalMode::Wal),
                options.max_connections.max(2),
            )
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .min_connections(if in_memory { 1 } else { 0 })
            // The in-memory database disappears when its last connection closes.
            .idle_timeout(if in_memory {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(if in_memory {
                None
            } else {
                Some(Duration::from_secs(3600))
            })
            .connect_with(connect.clone())
            .await?;
        let named_index = Arc::new(NamedIndex::open(&connect, in_memory).await?);
        let indexer = spawn_indexer(named_index.clone(), pool.clone());
        let (writer, jobs) = mpsc::channel(4 * MAX_GROUP);
        tokio::spawn(group_commit_writer(pool.clone(), !in_memory, jobs));
        let bulk = if in_memory {
            references::BulkWriter::pooled(pool.clone())
        } else {
            references::BulkWriter::own(&connect)
        };
        Ok(SqliteStore {
            pool,
            writer,
            extract_page_rows: i64::from(options.extract_page_rows.max(1)),
            keys: KeySlot::new(options.kek.clone()),
            named_index,
            _indexer: indexer,
            bulk,
        })
    }

    /// Runs the pending migrations on one connection with foreign keys off, as SQLite requires
    /// for rebuilding a table that others reference (0016 rebuilds `patient`): with them on,
    /// `DROP TABLE patient` would delete through every referencing row or refuse. The pragma
    /// is a no-op inside a transaction, and sqlx wraps each migration in one, so it is set on
    /// the connection first. A foreign-key check afterwards turns any dangling reference a
    /// migration left into an error instead of a silently broken record.
    async fn run_migrations(&self) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("PRAGMA foreign_keys = OFF")
            .execute(&mut *conn)
            .await?;
        let outcome = migrate_and_check(&mut conn).await;
        if sqlx::query("PRAGMA foreign_keys = ON")
            .execute(&mut *conn)
            .await
            .is_err()
        {
            // Never hand a connection without foreign keys back to the pool.
            conn.close_on_drop();
        }
        outcome
    }

    /// The identifier keys, unwrapped once (the first call creates them in a new database).
    async fn cipher(&self) -> StoreResult<Arc<FieldCipher>> {
        if let Some(cipher) = self.keys.cached() {
            return Ok(cipher);
        }
        self.reload_keys().await
    }

    async fn sealed_idempotency(
        &self,
        record: Option<&NewIdempotencyRecord>,
    ) -> StoreResult<Option<NewIdempotencyRecord>> {
        match record {
            Some(r) => Ok(Some(keys::sealed_idempotency(&*self.cipher().await?, r)?)),
            None => Ok(None),
        }
    }

    /// SQLite's `BEGIN IMMEDIATE` already serialises every writer, key changes included.
    async fn lock_keys(&self, _tx: &mut SqliteConnection) -> StoreResult<()> {
        Ok(())
    }

    super::keys::key_store_methods!(inherent);
    super::keys::key_store_methods!(shared);
    super::research::research_store_methods!();

    async fn reload_keys(&self) -> StoreResult<Arc<FieldCipher>> {
        let kek = self.keys.kek()?;
        let mut tx = self.begin_write().await?;
        self.lock_keys(&mut tx).await?;
        let cipher = Arc::new(key_sql::load_or_create_keys(&mut tx, &kek, Utc::now()).await?);
        tx.commit().await?;
        self.keys.replace(cipher.clone());
        Ok(cipher)
    }

    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Appends `event` in the next group commit and waits until it is committed.
    async fn audit_through_writer(&self, event: NewAuditEvent) -> StoreResult<()> {
        self.through_writer(|reply| WriteJob::Audit(Box::new(AuditJob { event, reply })))
            .await
    }

    /// Queues the job `make` builds around its reply channel for the group-commit writer and
    /// waits for the writer's answer, which comes after the group's COMMIT.
    async fn through_writer<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<StoreResult<T>>) -> WriteJob,
    ) -> StoreResult<T> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(make(reply))
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }
}

async fn read_procedure(
    conn: &mut SqliteConnection,
    cipher: &FieldCipher,
    id: ProcedureId,
) -> StoreResult<Option<ProcedureRecord>> {
    let Some(row): Option<ProcedureRow> = sqlx::query_as(sql::PROCEDURE_SELECT)
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let implants: Vec<ImplantRow> = sqlx::query_as(sql::IMPLANTS_OF_PROCEDURE)
        .bind(id.0)
        .fetch_all(&mut *conn)
        .await?;
    let flags: Vec<FlagRow> = sqlx::query_as(sql::OPEN_FLAGS_OF_PROCEDURE)
        .bind(id.0)
        .fetch_all(&mut *conn)
        .await?;
    Ok(Some(procedure_record(cipher, row, implants, flags)?))
}

/// Reads a recall's rows as one JSON array built by the engine. A large lot returns hundreds
/// of rows, and sqlx's per-row cost (a channel hop and a decode per value) was most of the
/// recall route's p99; one aggregated value costs one hop and one `serde_json` pass.
async fn read_recall(
    conn: &mut SqliteConnection,
    cipher: &FieldCipher,
    criteria: &RecallCriteria,
) -> StoreResult<Vec<RecallRow>> {
    let parsed = fetch_recall(conn, criteria).await?;
    open_recall(parsed, cipher)
}

/// A recall's rows as read, identifiers still sealed.
async fn fetch_recall(
    conn: &mut SqliteConnection,
    criteria: &RecallCriteria,
) -> StoreResult<Vec<RecallDbRow>> {
    let (text, params) = sql::recall_query(criteria);
    let text = format!(
        "SELECT json_group_array(json_array(implant_id, procedure_id, procedure_date, udi_di, \
           lot, serial, expiry, nhs_number_index, nhs_number, family_name, given_name, date_of_birth, postcode, \
           date_of_death, provider_ods, provider_name, removal_date, patient_id)) FROM ({text})"
    );
    let mut query = sqlx::query_scalar::<_, String>(&text);
    for param in params {
        query = match param {
            Param::Text(v) => query.bind(v),
            Param::Date(v) => query.bind(v),
            Param::Int(v) => query.bind(v),
        };
    }
    let json = query.fetch_one(&mut *conn).await?;
    // A recall page is kilobytes: parsed in place, not worth a hop to the blocking pool.
    // `RecallDbRow` reads a JSON array in its fields' order, `sql::recall_query`'s.
    parse_json(&json, "recall")
}

/// Opens a recall's identifiers, in implant order.
fn open_recall(parsed: Vec<RecallDbRow>, cipher: &FieldCipher) -> StoreResult<Vec<RecallRow>> {
    let mut rows: Vec<RecallRow> = open_all(parsed, |r| r.open(cipher))?;
    // An aggregate over an ordered subquery keeps its order in SQLite, but SQL does not
    // promise it; pages are keyed on the implant id, so the order is restored here.
    rows.sort_unstable_by_key(|r| r.implant_id.0);
    Ok(rows)
}

async fn put_idempotency(
    conn: &mut SqliteConnection,
    record: Option<&NewIdempotencyRecord>,
) -> StoreResult<()> {
    if let Some(r) = record {
        sqlx::query(sql::IDEMPOTENCY_INSERT)
            .bind(r.token.0)
            .bind(&r.key)
            .bind(&r.request_hash)
            .bind(i32::from(r.response_status))
            .bind(&r.response_body)
            .bind(r.created_at)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Applies the pending migrations on `conn` (foreign keys already off) and checks that no
/// row refers to one that is not there.
async fn migrate_and_check(conn: &mut SqliteConnection) -> StoreResult<()> {
    // `run` takes an `Acquire`, whose lifetimes make this future not `Send` inside the
    // async-trait method; `run_direct` is what it calls, on the connection directly.
    MIGRATOR.run_direct(conn).await?;
    let dangling: Vec<(String, Option<i64>, String)> =
        sqlx::query_as("SELECT \"table\", rowid, parent FROM pragma_foreign_key_check")
            .fetch_all(&mut *conn)
            .await?;
    match dangling.first() {
        None => Ok(()),
        Some((table, rowid, parent)) => Err(StoreError::Corrupt(format!(
            "after migration, {} row(s) refer to missing rows; the first is {table} row {rowid:?}, \
             which refers to {parent}",
            dangling.len()
        ))),
    }
}

async fn consultant_id(conn: &mut SqliteConnection, gmc: &str) -> StoreResult<i64> {
    sqlx::query(sql::CONSULTANT_ENSURE)
        .bind(gmc)
        .execute(&mut *conn)
        .await?;
    Ok(sqlx::query_scalar(sql::CONSULTANT_ID)
        .bind(gmc)
        .fetch_one(&mut *conn)
        .await?)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn migrate(&self) -> StoreResult<()> {
        self.run_migrations().await?;
        self.seal_legacy_identifiers().await?;
        Ok(())
    }

    async fn key_status(&self) -> StoreResult<KeyStatus> {
        self.key_status_now().await
    }

    async fn identifier_cipher(&self) -> StoreResult<Arc<FieldCipher>> {
        self.cipher().await
    }

    async fn reseal_identifiers(&self) -> StoreResult<ResealReport> {
        self.reseal_now().await
    }

    async fn rotate_keys(&self, new_kek: Option<KeyEncryptionKey>) -> StoreResult<KeyRotation> {
        self.rotate_now(new_kek).await
    }

    async fn create_research_project(
        &self,
        project: &NewResearchProject,
    ) -> StoreResult<ResearchProjectId> {
        self.create_research_project_now(project).await
    }

    async fn research_project(&self, reference: &str) -> StoreResult<Option<ResearchProject>> {
        self.research_project_now(reference).await
    }

    async fn research_extract_page(
        &self,
        project: ResearchProjectId,
        filter: &ResearchFilter,
        after: i64,
        limit: u32,
        audit: &NewAuditEvent,
    ) -> StoreResult<Vec<ResearchRow>> {
        self.research_extract_page_now(project, filter, after, limit, audit)
            .await
    }

    async fn add_research_member(
        &self,
        project: ResearchProjectId,
        account: AccountId,
        audit: &NewAuditEvent,
    ) -> StoreResult<()> {
        self.add_research_member_now(project, account, audit).await
    }

    async fn remove_research_member(
        &self,
        project: ResearchProjectId,
        account: AccountId,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        self.remove_research_member_now(project, account, audit)
            .await
    }

    async fn research_projects_of(&self, account: AccountId) -> StoreResult<Vec<ResearchProject>> {
        self.research_projects_of_now(account).await
    }

    async fn check_migrations(&self) -> StoreResult<()> {
        let applied: Result<Vec<i64>, sqlx::Error> = sqlx::query_scalar(
            "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await;
        let expected: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
        crate::error::check_applied(applied, &expected)
    }

    async fn upsert_organisation(&self, o: &NewOrganisation) -> StoreResult<OrganisationId> {
        let id: i64 = sqlx::query_scalar(sql::ORGANISATION_UPSERT)
            .bind(o.ods_code.as_str())
            .bind(&o.name)
            .bind(o.kind.as_str())
            .bind(&o.region)
            .fetch_one(&self.pool)
            .await?;
        Ok(OrganisationId(id))
    }

    async fn organisation_by_ods(&self, ods_code: &OdsCode) -> StoreResult<Option<Organisation>> {
        let row: Option<OrganisationRow> = sqlx::query_as(&format!(
            "{} WHERE ods_code = $1",
            sql::ORGANISATION_COLUMNS
        ))
        .bind(ods_code.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(Organisation::try_from).transpose()
    }

    async fn organisation(&self, id: OrganisationId) -> StoreResult<Option<Organisation>> {
        let row: Option<OrganisationRow> =
            sqlx::query_as(&format!("{} WHERE id = $1", sql::ORGANISATION_COLUMNS))
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await?;
        row.map(Organisation::try_from).transpose()
    }

    async fn upsert_consultants(&self, consultants: &[NewConsultant]) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        for c in consultants {
            sqlx::query(sql::CONSULTANT_UPSERT)
                .bind(c.gmc_number.as_str())
                .bind(&c.family_name)
                .bind(&c.given_name)
                .bind(&c.specialty)
                .bind(c.organisation.map(|o| o.0))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn upsert_device_models(&self, entries: &[RegisterEntry]) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        for e in entries {
            sqlx::query(sql::DEVICE_MODEL_UPSERT)
                .bind(e.udi_di.as_str())
                .bind(e.udi_di.issuer().as_str())
                .bind(&e.manufacturer)
                .bind(&e.brand)
                .bind(&e.model)
                .bind(e.device_type.as_str())
                .bind(e.risk_class.as_str())
                .bind(e.registry.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(entries.len() as u64)
    }

    async fn device_model(&self, udi_di: &UdiDi) -> StoreResult<Option<DeviceModel>> {
        let row: Option<DeviceModelRow> = sqlx::query_as(sql::DEVICE_MODEL_BY_UDI)
            .bind(udi_di.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(DeviceModel::from))
    }

    async fn device_model_ids(
        &self,
        udi_dis: &[&UdiDi],
    ) -> StoreResult<Vec<(String, DeviceModelId)>> {
        let mut found = Vec::new();
        for chunk in udi_dis.chunks(MAX_VARIABLES) {
            let mut q =
                QueryBuilder::<Sqlite>::new("SELECT udi_di, id FROM device_model WHERE udi_di IN ");
            push_in_list(&mut q, chunk.iter().map(|udi| udi.as_str()));
            let rows: Vec<(String, i64)> = q
                .build_query_as()
                .persistent(false)
                .fetch_all(&self.pool)
                .await?;
            found.extend(rows.into_iter().map(|(udi, id)| (udi, DeviceModelId(id))));
        }
        Ok(found)
    }

    async fn insert_submission(
        &self,
        prepared: &PreparedSubmission,
        idempotency: Option<&NewIdempotencyRecord>,
    ) -> StoreResult<ProcedureId> {
        prepared.check_shape()?;
        let cipher = self.cipher().await?;
        let sealed = cipher.seal_patient(&prepared.submission.patient)?;
        let idempotency = idempotency
            .map(|r| keys::sealed_idempotency(&cipher, r))
            .transpose()?;
        self.through_writer(|reply| {
            WriteJob::Submission(Box::new(PendingSubmission {
                prepared: prepared.clone(),
                sealed,
                idempotency,
                cipher,
                reply,
            }))
        })
        .await
    }

    async fn procedure(&self, id: ProcedureId) -> StoreResult<Option<ProcedureRecord>> {
        let cipher = self.cipher().await?;
        let mut conn = self.pool.acquire().await?;
        read_procedure(&mut conn, &cipher, id).await
    }

    async fn procedure_by_local_id(
        &self,
        provider: OrganisationId,
        local_record_id: &str,
    ) -> StoreResult<Option<ProcedureId>> {
        let id: Option<i64> = sqlx::query_scalar(sql::PROCEDURE_BY_LOCAL_ID)
            .bind(provider.0)
            .bind(local_record_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(id.map(ProcedureId))
    }

    async fn implant_context(&self, id: ImplantId) -> StoreResult<Option<ImplantContext>> {
        let row: Option<ImplantContextRow> = sqlx::query_as(sql::IMPLANT_CONTEXT)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(ImplantContext::from))
    }

    async fn insert_removals(
        &self,
        removals: &[NewRemoval],
        idempotency: Option<&NewIdempotencyRecord>,
    ) -> StoreResult<Vec<RemovalId>> {
        let idempotency = self.sealed_idempotency(idempotency).await?;
        let idempotency = idempotency.as_ref();
        let mut tx = self.begin_write().await?;
        let mut ids = Vec::with_capacity(removals.len());
        for r in removals {
            let id: i64 = sqlx::query_scalar(sql::REMOVAL_INSERT)
                .bind(r.implant.0)
                .bind(r.kind.as_str())
                .bind(r.removal_date)
                .bind(&r.reason)
                .bind(r.revising_provider.0)
                .bind(r.recorded_at)
                .fetch_one(&mut *tx)
                .await?;
            ids.push(RemovalId(id));
        }
        put_idempotency(&mut tx, idempotency).await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn patient_timeline_bounds(
        &self,
        nhs_number: &NhsNumber,
    ) -> StoreResult<Option<PatientBounds>> {
        let index = self.cipher().await?.blind_index(nhs_number.as_str());
        let mut conn = self.pool.acquire().await?;
        let Some(row): Option<PatientBoundsRow> = sqlx::query_as(sql::PATIENT_BOUNDS)
            .bind(index)
            .fetch_optional(&mut *conn)
            .await?
        else {
            return Ok(None);
        };
        let providers: Vec<i64> = sqlx::query_scalar(sql::PATIENT_PROVIDERS)
            .bind(row.id)
            .fetch_all(&mut *conn)
            .await?;
        Ok(Some(PatientBounds {
            patient: PatientId(row.id),
            providers: providers.into_iter().map(OrganisationId).collect(),
            latest_procedure: row.latest_procedure,
            latest_removal: row.latest_removal,
            date_of_death: row.date_of_death,
        }))
    }

    async fn record_death(
        &self,
        patient: PatientId,
        date_of_death: NaiveDate,
        idempotency: Option<&NewIdempotencyRecord>,
    ) -> StoreResult<()> {
        let idempotency = self.sealed_idempotency(idempotency).await?;
        let idempotency = idempotency.as_ref();
        let mut tx = self.begin_write().await?;
        sqlx::query(sql::PATIENT_DEATH_UPDATE)
            .bind(patient.0)
            .bind(date_of_death)
            .execute(&mut *tx)
            .await?;
        put_idempotency(&mut tx, idempotency).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn recall(&self, criteria: &RecallCriteria) -> StoreResult<Vec<RecallRow>> {
        let cipher = self.cipher().await?;
        let mut conn = self.pool.acquire().await?;
        read_recall(&mut conn, &cipher, criteria).await
    }

    async fn insert_token(&self, t: &NewApiToken) -> StoreResult<TokenId> {
        let id: i64 = sqlx::query_scalar(sql::TOKEN_INSERT)
            .bind(&t.token_hash)
            .bind(t.organisation.0)
            .bind(t.role.as_str())
            .bind(&t.label)
            .bind(t.created_at)
            .fetch_one(&self.pool)
            .await?;
        Ok(TokenId(id))
    }

    async fn token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiToken>> {
        let row: Option<TokenRow> = sqlx::query_as(&format!(
            "{} WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
            sql::TOKEN_COLUMNS
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(ApiToken::try_from).transpose()
    }

    async fn tokens(&self) -> StoreResult<Vec<ApiToken>> {
        let rows: Vec<TokenRow> = sqlx::query_as(&format!("{} ORDER BY t.id", sql::TOKEN_COLUMNS))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(ApiToken::try_from).collect()
    }

    async fn revoke_token(&self, id: TokenId) -> StoreResult<bool> {
        let done = sqlx::query(sql::TOKEN_REVOKE)
            .bind(id.0)
            .bind(Utc::now())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn idempotency_record(
        &self,
        token: TokenId,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        let row: Option<IdempotencyRow> = sqlx::query_as(sql::IDEMPOTENCY_SELECT)
            .bind(token.0)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(row.open(&*self.cipher().await?, token, key)?)),
            None => Ok(None),
        }
    }

    async fn defer_load_schema(&self) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM procedure)")
            .fetch_one(&mut *tx)
            .await?;
        if any {
            return Ok(false);
        }
        for index in load_schema::INDEXES {
            sqlx::query(&format!("DROP INDEX IF EXISTS {}", index.name))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn restore_load_schema(&self) -> StoreResult<usize> {
        let mut tx = self.begin_write().await?;
        let mut restored = 0;
        for index in load_schema::INDEXES {
            let present: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = $1)",
            )
            .bind(index.name)
            .fetch_one(&mut *tx)
            .await?;
            if !present {
                sqlx::query(index.create).execute(&mut *tx).await?;
                restored += 1;
            }
        }
        tx.commit().await?;
        Ok(restored)
    }

    async fn schema_objects(&self) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT type || ' ' || name || ': ' || COALESCE(sql, '') FROM sqlite_master \
             WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn bulk_load(&self, batch: &BulkBatch) -> StoreResult<BulkLoadOutcome> {
        let cipher = self.cipher().await?;
        // Only inserts, whose references `bulk_write` checks itself (`references.rs`).
        let (outcome, _) = self
            .bulk
            .write(async |conn| bulk_write(conn, &cipher, batch).await)
            .await?;
        Ok(outcome)
    }

    async fn bulk_removals(&self, removals: &[BulkRemoval]) -> StoreResult<BulkRemovalReport> {
        // Resolved and inserted set-wise, as on PostgreSQL: a statement per row costs about
        // 60 µs through the driver, most of a national load's outcome phase.
        let mut tx = self.begin_write().await?;
        let mut implant_of: Vec<Option<i64>> = vec![None; removals.len()];
        let indexed: Vec<(usize, &BulkRemoval)> = removals.iter().enumerate().collect();
        for chunk in indexed.chunks(MAX_VARIABLES / 4) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "WITH w (idx, provider_id, local_record_id, position) AS (",
            );
            q.push_values(chunk, |mut b, (i, r)| {
                b.push_bind(*i as i64)
                    .push_bind(r.provider.0)
                    .push_bind(r.local_record_id.as_str())
                    .push_bind(r.position);
            });
            q.push(
                ") SELECT w.idx, i.id FROM w \
                 JOIN procedure p ON p.provider_id = w.provider_id AND p.local_record_id = w.local_record_id \
                 JOIN implant i ON i.procedure_id = p.id AND i.position = w.position",
            );
            let rows: Vec<(i64, i64)> = q
                .build_query_as()
                .persistent(false)
                .fetch_all(&mut *tx)
                .await?;
            for (idx, implant) in rows {
                implant_of[idx as usize] = Some(implant);
            }
        }
        let unresolved: Vec<usize> = (0..removals.len())
            .filter(|&i| implant_of[i].is_none())
            .collect();
        let found: Vec<(usize, &BulkRemoval, i64)> = removals
            .iter()
            .zip(&implant_of)
            .enumerate()
            .filter_map(|(i, (r, implant))| implant.map(|id| (i, r, id)))
            .collect();
        let mut inserted: HashSet<i64> = HashSet::new();
        for chunk in found.chunks(MAX_VARIABLES / 6) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO removal (implant_id, kind, removal_date, reason, revising_provider_id, recorded_at) ",
            );
            q.push_values(chunk, |mut b, (_, r, implant)| {
                b.push_bind(*implant)
                    .push_bind(r.kind.as_str())
                    .push_bind(r.removal_date)
                    .push_bind(r.reason.as_deref())
                    .push_bind(r.revising_provider.0)
                    .push_bind(r.recorded_at);
            });
            q.push(" ON CONFLICT (implant_id) DO NOTHING RETURNING implant_id");
            let written: Vec<i64> = q
                .build_query_scalar()
                .persistent(false)
                .fetch_all(&mut *tx)
                .await?;
            inserted.extend(written);
        }
        // An implant named twice in one batch is written once; the later mention is reported.
        let mut seen: HashSet<i64> = HashSet::new();
        let already_recorded: Vec<usize> = found
            .iter()
            .filter(|(_, _, id)| !inserted.contains(id) || !seen.insert(*id))
            .map(|(i, _, _)| *i)
            .collect();
        tx.commit().await?;
        Ok(BulkRemovalReport {
            unresolved,
            already_recorded,
        })
    }

    async fn bulk_deaths(&self, deaths: &[(NhsNumber, NaiveDate)]) -> StoreResult<Vec<usize>> {
        let cipher = self.cipher().await?;
        let indexes: Vec<String> = deaths
            .iter()
            .map(|(nhs, _)| cipher.blind_index(nhs.as_str()))
            .collect();
        let mut tx = self.begin_write().await?;
        let mut updated: HashSet<String> = HashSet::new();
        for (chunk, chunk_indexes) in deaths
            .chunks(MAX_VARIABLES / 2)
            .zip(indexes.chunks(MAX_VARIABLES / 2))
        {
            let mut q =
                QueryBuilder::<Sqlite>::new("WITH d (nhs_number_index, date_of_death) AS (");
            q.push_values(
                chunk.iter().zip(chunk_indexes),
                |mut b, ((_, date), index)| {
                    b.push_bind(index.as_str()).push_bind(*date);
                },
            );
            q.push(
                ") UPDATE patient SET date_of_death = d.date_of_death FROM d \
                 WHERE patient.nhs_number_index = d.nhs_number_index \
                 RETURNING patient.nhs_number_index",
            );
            let rows: Vec<String> = q
                .build_query_scalar()
                .persistent(false)
                .fetch_all(&mut *tx)
                .await?;
            updated.extend(rows);
        }
        tx.commit().await?;
        Ok((0..deaths.len())
            .filter(|&i| !updated.contains(&indexes[i]))
            .collect())
    }

    async fn create_recall_case(
        &self,
        case: &NewRecallCase,
        audit: &NewAuditEvent,
    ) -> StoreResult<(RecallCaseId, RecallCaseGrowth)> {
        let mut tx = self.begin_write().await?;
        let created = recall::create_case(&mut tx, case, audit).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn refresh_recall_case(
        &self,
        id: RecallCaseId,
        audit: &NewAuditEvent,
    ) -> StoreResult<Option<RecallCaseGrowth>> {
        let mut tx = self.begin_write().await?;
        let growth = recall::refresh_case(&mut tx, id, audit).await?;
        tx.commit().await?;
        Ok(growth)
    }

    async fn recall_case(&self, id: RecallCaseId) -> StoreResult<Option<RecallCase>> {
        let mut conn = self.pool.acquire().await?;
        recall::case(&mut conn, id).await
    }

    async fn recall_entries(
        &self,
        query: &RecallWorkQuery,
        audit: &NewAuditEvent,
    ) -> StoreResult<Vec<RecallEntry>> {
        let cipher = self.cipher().await?;
        let mut tx = self.begin_write().await?;
        let entries = recall::entries(&mut tx, &cipher, query, audit).await?;
        tx.commit().await?;
        Ok(entries)
    }

    async fn recall_entry_state(
        &self,
        case_id: RecallCaseId,
        entry: RecallEntryId,
    ) -> StoreResult<Option<RecallEntryState>> {
        let mut conn = self.pool.acquire().await?;
        recall::entry_state(&mut conn, case_id, entry).await
    }

    async fn set_recall_status(
        &self,
        change: &RecallStatusChange,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let done = recall::set_status(&mut tx, change, audit).await?;
        tx.commit().await?;
        Ok(done)
    }

    async fn patient_timeline(
        &self,
        patient: PatientId,
        audit: &NewAuditEvent,
    ) -> StoreResult<Option<PatientTimeline>> {
        let cipher = self.cipher().await?;
        let mut tx = self.begin_write().await?;
        let timeline = timeline::patient_timeline(&mut tx, &cipher, patient).await?;
        let mut audit = audit.clone();
        audit.patient = Some(patient);
        audit.record_count = timeline.as_ref().map_or(0, |t| t.procedures.len() as u64);
        recall::insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(timeline)
    }

    async fn append_audit(&self, event: &NewAuditEvent) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        recall::insert_audit(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_events(
        &self,
        after: Option<AuditEventId>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>> {
        let mut conn = self.pool.acquire().await?;
        recall::audit_events(&mut conn, after, limit).await
    }

    async fn create_submission_job(&self, job: &NewSubmissionJob) -> StoreResult<SubmissionJobId> {
        let mut conn = self.pool.acquire().await?;
        submission::create_job(&mut conn, job).await
    }

    async fn submission_job(&self, id: SubmissionJobId) -> StoreResult<Option<SubmissionJob>> {
        let mut conn = self.pool.acquire().await?;
        submission::job(&mut conn, id).await
    }

    async fn submission_jobs(
        &self,
        organisation: Option<OrganisationId>,
        limit: u32,
    ) -> StoreResult<Vec<SubmissionJob>> {
        let mut conn = self.pool.acquire().await?;
        submission::jobs(&mut conn, organisation, limit).await
    }

    async fn submission_jobs_in_state(
        &self,
        state: SubmissionState,
    ) -> StoreResult<Vec<SubmissionJobId>> {
        let mut conn = self.pool.acquire().await?;
        submission::jobs_in_state(&mut conn, state).await
    }

    async fn start_submission_job(
        &self,
        id: SubmissionJobId,
        total_records: u64,
        at: chrono::DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut conn = self.pool.acquire().await?;
        submission::start_job(&mut conn, id, total_records, at).await
    }

    async fn fail_submission_job(
        &self,
        id: SubmissionJobId,
        failure: &str,
        at: chrono::DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        submission::fail_job(&mut conn, id, failure, at).await
    }

    async fn register_device_types(&self) -> StoreResult<Vec<(String, String, DeviceModelId)>> {
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT udi_di, device_type, id FROM device_model")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(udi, device_type, id)| (udi, device_type, DeviceModelId(id)))
            .collect())
    }

    async fn commit_submission_chunks(
        &self,
        chunks: &[SubmissionChunk],
    ) -> StoreResult<Vec<Vec<ChunkRecordResult>>> {
        use super::submissions::{ChunkWrite, ForeignKeys};
        let cipher = self.cipher().await?;
        // BEGIN IMMEDIATE already holds the write lock. Foreign keys are off while chunks
        // only create (the bulk write checks what it wrote; see `references.rs`); the first
        // chunk that corrects stored procedures says so before writing anything, and it and
        // the rest are written in a second transaction with the engine enforcing them.
        let mut results = self
            .bulk
            .write(async |conn| {
                let mut results = Vec::with_capacity(chunks.len());
                for chunk in chunks {
                    match submission::commit_chunk(conn, &cipher, chunk, ForeignKeys::Off).await? {
                        ChunkWrite::Written(written) => results.push(written),
                        ChunkWrite::NeedsForeignKeys => break,
                    }
                }
                Ok(results)
            })
            .await?;
        if results.len() == chunks.len() {
            return Ok(results);
        }
        let mut tx = self.begin_write().await?;
        for chunk in &chunks[results.len()..] {
            let ChunkWrite::Written(written) =
                submission::commit_chunk(&mut tx, &cipher, chunk, ForeignKeys::Enforced).await?
            else {
                return Err(StoreError::Corrupt(
                    "a chunk with foreign keys enforced was not written".into(),
                ));
            };
            results.push(written);
        }
        tx.commit().await?;
        Ok(results)
    }

    async fn submission_records(
        &self,
        job: SubmissionJobId,
        after_line: u64,
        limit: u32,
    ) -> StoreResult<Vec<SubmissionRecord>> {
        let mut conn = self.pool.acquire().await?;
        submission::records(&mut conn, job, after_line, limit).await
    }

    async fn quarantine(&self, query: &QuarantineQuery) -> StoreResult<Vec<QuarantineEntry>> {
        let cipher = self.cipher().await?;
        let mut conn = self.pool.acquire().await?;
        submission::quarantine(&mut conn, &cipher, query).await
    }

    async fn quarantine_entry(
        &self,
        id: SubmissionRecordId,
    ) -> StoreResult<Option<QuarantineEntry>> {
        let cipher = self.cipher().await?;
        let mut conn = self.pool.acquire().await?;
        submission::quarantine_entry(&mut conn, &cipher, id).await
    }

    async fn procedure_history(
        &self,
        procedure: ProcedureId,
    ) -> StoreResult<Vec<ProcedureSourceVersion>> {
        let cipher = self.cipher().await?;
        let mut conn = self.pool.acquire().await?;
        submission::history(&mut conn, &cipher, procedure).await
    }

    async fn upsert_expected_activity(
        &self,
        rows: &[ExpectedActivity],
        loaded_at: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        // BEGIN IMMEDIATE already holds the write lock.
        let written = data_quality::upsert_expected_activity(&mut tx, rows, loaded_at).await?;
        tx.commit().await?;
        Ok(written)
    }

    async fn provider_activity(
        &self,
        organisation: OrganisationId,
        from: mdor_domain::Month,
        to: mdor_domain::Month,
    ) -> StoreResult<ProviderActivity> {
        // One read transaction, so that the counts come from one snapshot.
        let mut tx = self.pool.begin().await?;
        let activity = data_quality::provider_activity(&mut tx, organisation, from, to).await?;
        tx.commit().await?;
        Ok(activity)
    }

    async fn counts(&self) -> StoreResult<Counts> {
        let row: CountsRow = sqlx::query_as(sql::COUNTS).fetch_one(&self.pool).await?;
        Ok(Counts::from(row))
    }
    // ---- Surveillance (issue 6) ----

    async fn analysis_extract(&self, scope: &AnalysisScope) -> StoreResult<AnalysisExtract> {
        // One read transaction, so that the tables are read from one snapshot.
        let mut tx = self.pool.begin().await?;
        let queries = sql::analysis_queries(scope);
        let rows = match &queries.filters.implants {
            Some(filter) => read_scoped_extract_rows(&mut tx, &queries, filter).await?,
            None => read_extract_rows(&mut tx, &queries, self.extract_page_rows).await?,
        };
        tx.commit().await?;
        analysis::assemble(rows)
    }

    async fn surveillance_signals(&self) -> StoreResult<Vec<StoredSignal>> {
        let rows: Vec<SignalRow> = sqlx::query_as(sql::SURVEILLANCE_SIGNALS)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(StoredSignal::from).collect())
    }

    async fn save_surveillance_run(
        &self,
        run: &NewSurveillanceRun,
    ) -> StoreResult<SurveillanceRunId> {
        let mut tx = self.begin_write().await?;
        let n_alerts = run.signals.iter().filter(|s| s.raise_alert).count() as i64;
        let run_id: i64 = sqlx::query_scalar(sql::SURVEILLANCE_RUN_INSERT)
            .bind(run.started_at)
            .bind(run.finished_at)
            .bind(run.as_of)
            .bind(run.n_implants)
            .bind(n_alerts)
            .bind(&run.summary)
            .fetch_one(&mut *tx)
            .await?;
        for s in &run.signals {
            let signal_id: i64 = sqlx::query_scalar(sql::SURVEILLANCE_SIGNAL_UPSERT)
                .bind(&s.method)
                .bind(&s.subject_kind)
                .bind(&s.subject)
                .bind(&s.state)
                .bind(s.since)
                .bind(s.observed)
                .bind(s.expected)
                .bind(s.statistic)
                .bind(s.critical_value)
                .bind(&s.explanation)
                .bind(run_id)
                .fetch_one(&mut *tx)
                .await?;
            if s.raise_alert {
                sqlx::query(sql::SURVEILLANCE_ALERT_INSERT)
                    .bind(signal_id)
                    .bind(run_id)
                    .bind(run.finished_at)
                    .bind(s.since)
                    .bind(s.observed)
                    .bind(s.expected)
                    .bind(s.statistic)
                    .bind(s.critical_value)
                    .bind(&s.explanation)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(SurveillanceRunId(run_id))
    }

    async fn surveillance_alerts(&self, limit: u32) -> StoreResult<Vec<StoredAlert>> {
        let rows: Vec<AlertRow> = sqlx::query_as(sql::SURVEILLANCE_ALERTS)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(StoredAlert::from).collect())
    }

    async fn latest_surveillance_run(&self) -> StoreResult<Option<SurveillanceRunInfo>> {
        let row: Option<(i64, DateTime<Utc>, NaiveDate, i64)> =
            sqlx::query_as(sql::LATEST_SURVEILLANCE_RUN)
                .fetch_optional(&self.pool)
                .await?;
        Ok(
            row.map(|(id, finished_at, as_of, n_implants)| SurveillanceRunInfo {
                id: SurveillanceRunId(id),
                finished_at,
                as_of,
                n_implants,
            }),
        )
    }

    async fn audited_procedure(
        &self,
        id: ProcedureId,
        provider: Option<OrganisationId>,
        audit: &NewAuditEvent,
    ) -> StoreResult<Option<ProcedureRecord>> {
        let cipher = self.cipher().await?;
        let mut conn = self.pool.acquire().await?;
        let record = read_procedure(&mut conn, &cipher, id).await?;
        drop(conn);
        let (audit, visible) = super::procedure_read_audit(record.as_ref(), provider, audit);
        self.audit_through_writer(audit).await?;
        Ok(record.filter(|_| visible))
    }

    async fn audited_recall(
        &self,
        criteria: &RecallCriteria,
        audit: &NewAuditEvent,
    ) -> StoreResult<Vec<RecallRow>> {
        let cipher = self.cipher().await?;
        // Read by the writer, on its own connection, in the transaction that appends the
        // audit entry: see `RecallJob`.
        let parsed = self
            .through_writer(|reply| {
                WriteJob::Recall(Box::new(RecallJob {
                    criteria: criteria.clone(),
                    audit: audit.clone(),
                    reply,
                }))
            })
            .await?;
        // Opened here, off the writer, once the entry is committed.
        open_recall(parsed, &cipher)
    }

    async fn patient_access_log(
        &self,
        patient: PatientId,
        audit: &NewAuditEvent,
    ) -> StoreResult<Vec<PatientAccess>> {
        let accesses = self.named_index.patient_access(&self.pool, patient).await?;
        let mut audit = audit.clone();
        audit.patient = Some(patient);
        audit.record_count = accesses.len() as u64;
        self.audit_through_writer(audit).await?;
        Ok(accesses)
    }

    async fn index_named_patients(&self) -> StoreResult<u64> {
        self.named_index.catch_up(&self.pool).await
    }

    async fn audit_log_page(&self, after_seq: u64, limit: u32) -> StoreResult<Vec<AuditLogEntry>> {
        let json: Option<String> = sqlx::query_scalar(
            "SELECT json_group_array(json_array(seq, at, organisation_id, role, token_id, \
               action, resource, patient_id, record_count, purpose, outcome, hex(leaf_hash), account_id, request_id, \
               (SELECT group_concat(patient_id) FROM audit_named_patient ap \
                WHERE ap.audit_seq = page.seq), nullif(hex(detail_digest), ''))) \
             FROM (SELECT * FROM audit_event WHERE seq > $1 ORDER BY seq LIMIT $2) page",
        )
        .bind(after_seq as i64)
        .bind(i64::from(limit))
        .fetch_one(&self.pool)
        .await?;
        audit_log_page_from_json(json.as_deref().filter(|j| *j != "[]"))
    }

    async fn insert_audit_checkpoint(&self, checkpoint: &NewAuditCheckpoint) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        recall::insert_checkpoint(&mut tx, checkpoint).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn latest_audit_checkpoint(&self) -> StoreResult<Option<AuditCheckpoint>> {
        let mut conn = self.pool.acquire().await?;
        recall::latest_checkpoint(&mut conn).await
    }

    async fn insert_account(
        &self,
        account: &NewAccount,
        audit: Option<&NewAuditEvent>,
    ) -> StoreResult<AccountId> {
        let mut tx = self.begin_write().await?;
        let id = accounts::insert_account(&mut tx, account, audit).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn accounts(&self) -> StoreResult<Vec<Account>> {
        let mut conn = self.pool.acquire().await?;
        accounts::all_accounts(&mut conn).await
    }

    async fn reinstate_account(
        &self,
        account: AccountId,
        at: chrono::DateTime<Utc>,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        if !accounts::reinstate_account(&mut tx, account, at, audit).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn set_account_approver(
        &self,
        account: AccountId,
        approver: bool,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        if !accounts::set_approver(&mut tx, account, approver, audit).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn reset_account_credentials(
        &self,
        reset: &crate::CredentialReset,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        if !accounts::reset_credentials(&mut tx, reset, audit).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn account_by_username(&self, username: &str) -> StoreResult<Option<Account>> {
        let mut conn = self.pool.acquire().await?;
        accounts::account_by_username(&mut conn, username).await
    }

    async fn account_by_id(&self, account: AccountId) -> StoreResult<Option<Account>> {
        let mut conn = self.pool.acquire().await?;
        accounts::account_by_id(&mut conn, account).await
    }

    async fn login_failures_since(
        &self,
        account: AccountId,
        since: chrono::DateTime<Utc>,
    ) -> StoreResult<LoginFailures> {
        let mut conn = self.pool.acquire().await?;
        accounts::failures_since(&mut conn, account, since).await
    }

    async fn record_login_failure(
        &self,
        account: Option<AccountId>,
        at: chrono::DateTime<Utc>,
        audit: Option<&NewAccountAuditEvent>,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        accounts::record_failure(&mut tx, account, at, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record_login_success(
        &self,
        success: &LoginSuccess,
        audit: &NewAccountAuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        if !accounts::record_success(&mut tx, success, audit).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn disable_idle_accounts(
        &self,
        unused_since: chrono::DateTime<Utc>,
        at: chrono::DateTime<Utc>,
    ) -> StoreResult<Vec<AccountId>> {
        let mut tx = self.begin_write().await?;
        let ids = accounts::disable_idle(&mut tx, unused_since, at).await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn set_account_password(
        &self,
        account: AccountId,
        password_hash: &str,
        audit: &NewAccountAuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        if !accounts::set_password(&mut tx, account, password_hash, audit).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn unused_backup_codes(&self, account: AccountId) -> StoreResult<u64> {
        let mut conn = self.pool.acquire().await?;
        accounts::unused_backup_codes(&mut conn, account).await
    }

    async fn registry_organisation(&self) -> StoreResult<Option<OrganisationId>> {
        let mut conn = self.pool.acquire().await?;
        accounts::registry_organisation(&mut conn).await
    }

    async fn disable_account(
        &self,
        account: AccountId,
        at: chrono::DateTime<Utc>,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        if !sessions::disable_account(&mut tx, account, at, audit).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn access_reviews(&self, query: &AccessReviewQuery) -> StoreResult<Vec<AccessReview>> {
        let cipher = self.cipher().await?;
        let mut conn = self.pool.acquire().await?;
        reviews::list(&mut conn, &cipher, query).await
    }

    async fn access_review(&self, id: AccessReviewId) -> StoreResult<Option<AccessReview>> {
        let cipher = self.cipher().await?;
        let mut conn = self.pool.acquire().await?;
        reviews::get(&mut conn, &cipher, id).await
    }

    async fn decide_access_review(
        &self,
        decision: &AccessReviewDecision,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        if !reviews::decide(&mut tx, decision, audit).await? {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn insert_session(&self, session: &NewSession) -> StoreResult<SessionId> {
        let mut tx = self.begin_write().await?;
        let id = sessions::insert_session(&mut tx, session).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn session_by_secret_hash(
        &self,
        secret_hash: &str,
    ) -> StoreResult<Option<SessionAccount>> {
        let mut conn = self.pool.acquire().await?;
        sessions::session_by_secret_hash(&mut conn, secret_hash).await
    }

    async fn touch_session(
        &self,
        session: SessionId,
        at: chrono::DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sessions::touch_session(&mut tx, session, at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn end_session(
        &self,
        account: AccountId,
        session: SessionId,
        at: chrono::DateTime<Utc>,
        reason: SessionEnd,
        audit: Option<&NewAccountAuditEvent>,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        if !sessions::end_session(&mut tx, account, session, at, reason, audit).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn rotate_session(
        &self,
        session: SessionId,
        secret_hash: &str,
        at: chrono::DateTime<Utc>,
        assurance: SessionAssurance,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let rotated =
            sessions::rotate_session(&mut tx, session, secret_hash, at, assurance).await?;
        tx.commit().await?;
        Ok(rotated)
    }

    async fn account_sessions(&self, account: AccountId) -> StoreResult<Vec<StoredSession>> {
        let mut conn = self.pool.acquire().await?;
        sessions::account_sessions(&mut conn, account).await
    }

    async fn insert_webauthn_ceremony(
        &self,
        ceremony: &NewWebauthnCeremony,
    ) -> StoreResult<WebauthnCeremonyId> {
        let mut tx = self.begin_write().await?;
        let id = webauthn_sql::insert_ceremony(&mut tx, ceremony).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn webauthn_ceremony(&self, handle_hash: &str) -> StoreResult<Option<WebauthnCeremony>> {
        let mut conn = self.pool.acquire().await?;
        webauthn_sql::ceremony_by_handle(&mut conn, handle_hash).await
    }

    async fn webauthn_credentials(
        &self,
        account: AccountId,
    ) -> StoreResult<Vec<WebauthnCredential>> {
        let mut conn = self.pool.acquire().await?;
        webauthn_sql::credentials(&mut conn, account).await
    }

    async fn register_webauthn_credential(
        &self,
        ceremony: WebauthnCeremonyId,
        credential: &NewWebauthnCredential,
        audit: &NewAccountAuditEvent,
    ) -> StoreResult<Option<WebauthnCredentialId>> {
        let mut tx = self.begin_write().await?;
        let Some(id) =
            webauthn_sql::register_credential(&mut tx, ceremony, credential, audit).await?
        else {
            tx.rollback().await?;
            return Ok(None);
        };
        tx.commit().await?;
        Ok(Some(id))
    }

    async fn revoke_webauthn_credential(
        &self,
        account: AccountId,
        credential: WebauthnCredentialId,
        at: chrono::DateTime<Utc>,
        audit: &NewAccountAuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        if !webauthn_sql::revoke_credential(&mut tx, account, credential, at, audit).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn insert_oidc_sign_in(&self, sign_in: &crate::NewOidcSignIn) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        oidc::insert_sign_in(&mut tx, sign_in).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn take_oidc_sign_in(
        &self,
        state_hash: &str,
    ) -> StoreResult<Option<crate::PendingOidcSignIn>> {
        let mut tx = self.begin_write().await?;
        let taken = oidc::take_sign_in(&mut tx, state_hash).await?;
        tx.commit().await?;
        Ok(taken)
    }

    async fn link_oidc_identity(
        &self,
        identity: &crate::NewOidcIdentity,
        audit: &NewAuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        oidc::link_identity(&mut tx, identity, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn account_by_oidc_identity(
        &self,
        issuer: &str,
        subject: &str,
    ) -> StoreResult<Option<Account>> {
        let mut conn = self.pool.acquire().await?;
        oidc::account_by_identity(&mut conn, issuer, subject).await
    }

    async fn record_oidc_login(
        &self,
        account: AccountId,
        at: chrono::DateTime<Utc>,
        audit: &NewAccountAuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        if !oidc::record_login(&mut tx, account, at, audit).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// Writes one submission on a connection that is already inside a transaction or savepoint.
async fn write_submission(
    conn: &mut SqliteConnection,
    cipher: &FieldCipher,
    prepared: &PreparedSubmission,
    sealed: &SealedPatient,
    idempotency: Option<&NewIdempotencyRecord>,
) -> StoreResult<ProcedureId> {
    let s = &prepared.submission;
    let p = &s.patient;
    let existing: Option<(i64, String)> = sqlx::query_as(sql::PATIENT_BY_NHS)
        .bind(&sealed.index)
        .fetch_optional(&mut *conn)
        .await?;
    let patient_id = match existing {
        Some((id, dob)) => {
            if open_date_of_birth(cipher, &sealed.index, &dob)? != p.date_of_birth {
                return Err(StoreError::PatientMismatch);
            }
            sqlx::query(sql::PATIENT_UPDATE_DEMOGRAPHICS)
                .bind(id)
                .bind(&sealed.family_name)
                .bind(&sealed.given_name)
                .bind(p.sex.as_str())
                .bind(&sealed.postcode)
                .execute(&mut *conn)
                .await?;
            id
        }
        None => {
            sqlx::query_scalar(sql::PATIENT_INSERT)
                .bind(&sealed.nhs_number)
                .bind(&sealed.family_name)
                .bind(&sealed.given_name)
                .bind(&sealed.date_of_birth)
                .bind(p.sex.as_str())
                .bind(&sealed.postcode)
                .bind(prepared.received_at)
                .bind(&sealed.index)
                .bind(birth_month_mid(p.date_of_birth))
                .fetch_one(&mut *conn)
                .await?
        }
    };
    let procedure = &s.procedure;
    let consultant = consultant_id(conn, procedure.consultant.as_str()).await?;
    let procedure_id: i64 = sqlx::query_scalar(sql::PROCEDURE_INSERT)
        .bind(patient_id)
        .bind(prepared.provider.0)
        .bind(consultant)
        .bind(procedure.procedure_date)
        .bind(procedure.opcs4.as_ref().map(|c| c.code()))
        .bind(procedure.opcs4.as_ref().map(|c| c.version()))
        .bind(procedure.snomed.map(|c| c.value() as i64))
        .bind(procedure.laterality.as_str())
        .bind(procedure.registry.as_str())
        .bind(procedure.local_record_id.as_str())
        .bind(prepared.received_at)
        .bind(procedure.indication.as_ref().map(|i| i.as_str()))
        .fetch_one(&mut *conn)
        .await?;
    for (position, (device, implant)) in s.devices.iter().zip(&prepared.implants).enumerate() {
        let implant_id: i64 = sqlx::query_scalar(sql::IMPLANT_INSERT)
            .bind(procedure_id)
            .bind(position as i32)
            .bind(device.udi_di.as_str())
            .bind(implant.device_model.map(|m| m.0))
            .bind(&device.production.lot)
            .bind(&device.production.serial)
            .bind(device.production.expiry)
            .bind(device.production.manufactured)
            .bind(&device.raw_scan)
            .bind(device.entry_type.as_str())
            .fetch_one(&mut *conn)
            .await?;
        for flag in &implant.flags {
            sqlx::query(sql::FLAG_INSERT)
                .bind(implant_id)
                .bind(flag.as_str())
                .bind(prepared.received_at)
                .execute(&mut *conn)
                .await?;
        }
    }
    put_idempotency(conn, idempotency).await?;
    Ok(ProcedureId(procedure_id))
}

/// Writes a batch inside the caller's transaction; returns the outcome and, for each
/// submission, the id of the procedure written for it (`None` when skipped).
async fn bulk_write(
    tx: &mut SqliteConnection,
    cipher: &FieldCipher,
    batch: &BulkBatch,
) -> StoreResult<(BulkLoadOutcome, Vec<Option<ProcedureId>>)> {
    for prepared in &batch.submissions {
        prepared.check_shape()?;
    }
    let mut lookups = bulk_lookups(&mut *tx, cipher, batch).await?;
    let plan = BulkPlan::new(batch, &lookups);
    lookups.consultants = ensure_consultants(&mut *tx, &plan.consultants()).await?;
    let (n_patients, n_procedures, n_implants) = plan.id_counts();
    // Ids are allocated past the current maximum: BEGIN IMMEDIATE holds the write lock, so
    // no other writer can take them before commit.
    let patient_ids = next_ids(&mut *tx, "patient", n_patients).await?;
    let procedure_ids = next_ids(&mut *tx, "procedure", n_procedures).await?;
    let implant_ids = next_ids(&mut *tx, "implant", n_implants).await?;
    let rows = plan.rows(&patient_ids, &procedure_ids, &implant_ids, &lookups, cipher)?;

    let p = &rows.patients;
    insert_rows(&mut *tx, "INSERT INTO patient (id, nhs_number, family_name, given_name, date_of_birth, sex, postcode, created_at, nhs_number_index, birth_month_mid) ", p.id.len(), 10, |b, i| {
        b.push_bind(p.id[i]).push_bind(p.nhs_number[i].as_str()).push_bind(p.family_name[i].as_str()).push_bind(p.given_name[i].as_str())
            .push_bind(p.date_of_birth[i].as_str()).push_bind(p.sex[i].as_str()).push_bind(p.postcode[i].as_deref()).push_bind(p.created_at[i])
            .push_bind(p.nhs_number_index[i].as_str()).push_bind(p.birth_month_mid[i]);
    }).await?;
    let r = &rows.procedures;
    insert_rows(&mut *tx, "INSERT INTO procedure (id, patient_id, provider_id, consultant_id, procedure_date, opcs4_code, opcs4_version, snomed_ct_id, laterality, registry, local_record_id, created_at, indication) ", r.id.len(), 13, |b, i| {
        b.push_bind(r.id[i]).push_bind(r.patient_id[i]).push_bind(r.provider_id[i]).push_bind(r.consultant_id[i])
            .push_bind(r.procedure_date[i]).push_bind(r.opcs4_code[i].as_deref()).push_bind(r.opcs4_version[i].as_deref()).push_bind(r.snomed_ct_id[i])
            .push_bind(r.laterality[i].as_str()).push_bind(r.registry[i].as_str()).push_bind(r.local_record_id[i].as_str()).push_bind(r.created_at[i]).push_bind(r.indication[i].as_deref());
    }).await?;
    let m = &rows.implants;
    insert_rows(&mut *tx, "INSERT INTO implant (id, procedure_id, position, udi_di, device_model_id, lot, serial, expiry, manufactured, raw_scan, entry_type) ", m.id.len(), 11, |b, i| {
        b.push_bind(m.id[i]).push_bind(m.procedure_id[i]).push_bind(m.position[i]).push_bind(m.udi_di[i].as_str())
            .push_bind(m.device_model_id[i]).push_bind(m.lot[i].as_deref()).push_bind(m.serial[i].as_deref()).push_bind(m.expiry[i])
            .push_bind(m.manufactured[i]).push_bind(m.raw_scan[i].as_deref()).push_bind(m.entry_type[i].as_str());
    }).await?;
    let f = &rows.flags;
    let flags_after: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(rowid), 0) FROM follow_up_flag")
        .fetch_one(&mut *tx)
        .await?;
    insert_rows(
        &mut *tx,
        "INSERT INTO follow_up_flag (implant_id, flag, raised_at) ",
        f.implant_id.len(),
        3,
        |b, i| {
            b.push_bind(f.implant_id[i])
                .push_bind(f.flag[i].as_str())
                .push_bind(f.raised_at[i]);
        },
    )
    .await?;
    // The caller may have turned the engine's foreign keys off (`references.rs`); the rows
    // written here are checked either way. Ids were allocated past each table's maximum, so
    // the rows above it are exactly this batch's.
    for (table, ids) in [
        ("patient", &patient_ids),
        ("procedure", &procedure_ids),
        ("implant", &implant_ids),
    ] {
        if let Some(first) = ids.first() {
            references::check_references(&mut *tx, table, first - 1).await?;
        }
    }
    if !f.implant_id.is_empty() {
        references::check_references(&mut *tx, "follow_up_flag", flags_after).await?;
    }
    let ids = plan
        .procedure_slots()
        .into_iter()
        .map(|slot| slot.map(|k| ProcedureId(procedure_ids[k])))
        .collect();
    Ok((plan.outcome, ids))
}

/// Takes every write waiting and commits them together; see the module header.
/// The writer keeps one connection of its own (`keep`), so that its page cache survives its
/// commits, which would otherwise make it start cold like any reader (`RecallJob`). Not for an
/// in-memory database, whose only connection the readers need between groups; and a
/// connection whose group failed is given back, in case it is the connection that is broken.
async fn group_commit_writer(pool: SqlitePool, keep: bool, mut jobs: mpsc::Receiver<WriteJob>) {
    let mut own: Option<sqlx::pool::PoolConnection<Sqlite>> = None;
    while let Some(first) = jobs.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut conn = match own.take() {
            Some(conn) => conn,
            None => match pool.acquire().await {
                Ok(conn) => conn,
                Err(error) => {
                    // Each job gets its own answer; sqlx's error is not `Clone`.
                    tracing::error!(error = %error, "the writer found no database connection");
                    for job in group {
                        let message = format!("no database connection for the writer: {error}");
                        job.reply(Err(StoreError::Backend(sqlx::Error::Protocol(message))));
                    }
                    continue;
                }
            },
        };
        match commit_group(&mut conn, &group).await {
            Ok(results) => {
                for (job, result) in group.into_iter().zip(results) {
                    job.reply(result);
                }
                if keep {
                    own = Some(conn);
                }
            }
            Err(error) => {
                tracing::warn!(error = %error, size = group.len(), "group commit failed; committing one by one");
                for job in group {
                    let result = commit_one(&mut conn, &job).await;
                    job.reply(result);
                }
            }
        }
    }
}

/// What one job wrote: a submission's procedure id, nothing for an audit entry, or what a
/// recall read.
type JobResult = StoreResult<Written>;

enum Written {
    Procedure(ProcedureId),
    Audit,
    Recall(Vec<RecallDbRow>),
}

impl WriteJob {
    /// Writes the job on a connection already inside a transaction or savepoint.
    async fn write(&self, conn: &mut SqliteConnection) -> JobResult {
        match self {
            WriteJob::Submission(job) => write_submission(
                conn,
                &job.cipher,
                &job.prepared,
                &job.sealed,
                job.idempotency.as_ref(),
            )
            .await
            .map(Written::Procedure),
            WriteJob::Audit(job) => recall::insert_audit(conn, &job.event)
                .await
                .map(|_| Written::Audit),
            WriteJob::Recall(job) => {
                let rows = fetch_recall(conn, &job.criteria).await?;
                let mut audit = job.audit.clone();
                audit.record_count = rows.len() as u64;
                audit.patients = rows.iter().map(|r| PatientId(r.patient_id)).collect();
                recall::insert_audit(conn, &audit).await?;
                Ok(Written::Recall(rows))
            }
        }
    }

    fn reply(self, result: JobResult) {
        // A caller that stopped waiting has gone; its answer has nowhere to go.
        match self {
            WriteJob::Submission(job) => {
                let _ = job.reply.send(result.and_then(|written| match written {
                    Written::Procedure(id) => Ok(id),
                    _ => Err(StoreError::Corrupt("submission wrote no procedure".into())),
                }));
            }
            WriteJob::Audit(job) => {
                let _ = job.reply.send(result.map(|_| ()));
            }
            WriteJob::Recall(job) => {
                let _ = job.reply.send(result.and_then(|written| match written {
                    Written::Recall(rows) => Ok(rows),
                    _ => Err(StoreError::Corrupt("a recall read nothing".into())),
                }));
            }
        }
    }
}

async fn commit_group(
    conn: &mut SqliteConnection,
    group: &[WriteJob],
) -> StoreResult<Vec<JobResult>> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let mut results = Vec::with_capacity(group.len());
    for job in group {
        let mut savepoint = tx.begin().await?;
        match job.write(&mut savepoint).await {
            Ok(id) => {
                savepoint.commit().await?;
                results.push(Ok(id));
            }
            Err(error) => {
                savepoint.rollback().await?;
                results.push(Err(error));
            }
        }
    }
    tx.commit().await?;
    Ok(results)
}

async fn commit_one(conn: &mut SqliteConnection, job: &WriteJob) -> JobResult {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let written = job.write(&mut tx).await?;
    tx.commit().await?;
    Ok(written)
}

/// Looks up the patients and local record ids a batch refers to.
async fn bulk_lookups(
    conn: &mut SqliteConnection,
    cipher: &FieldCipher,
    batch: &BulkBatch,
) -> StoreResult<BulkLookups> {
    let mut lookups = BulkLookups::default();
    let by_index: HashMap<String, &str> = batch
        .submissions
        .iter()
        .map(|s| {
            let nhs = s.submission.patient.nhs_number.as_str();
            (cipher.blind_index(nhs), nhs)
        })
        .collect();
    let indexes: Vec<&str> = by_index.keys().map(String::as_str).collect();
    for chunk in indexes.chunks(MAX_VARIABLES) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT nhs_number_index, id, date_of_birth FROM patient WHERE nhs_number_index IN ",
        );
        push_in_list(&mut q, chunk.iter().copied());
        let rows: Vec<(String, i64, String)> = q
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?;
        for (index, id, dob) in rows {
            let dob = open_date_of_birth(cipher, &index, &dob)?;
            lookups
                .patients
                .insert(by_index[&index].to_string(), (id, dob));
        }
    }
    // Grouped by provider so that each query is a range of the unique
    // (provider_id, local_record_id) index rather than a scan of every procedure.
    let mut by_provider: HashMap<i64, HashSet<&str>> = HashMap::new();
    for s in &batch.submissions {
        by_provider
            .entry(s.provider.0)
            .or_default()
            .insert(s.submission.procedure.local_record_id.as_str());
    }
    for (provider, local) in by_provider {
        let local: Vec<&str> = local.into_iter().collect();
        for chunk in local.chunks(MAX_VARIABLES - 1) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "SELECT provider_id, local_record_id FROM procedure WHERE provider_id = ",
            );
            q.push_bind(provider);
            q.push(" AND local_record_id IN ");
            push_in_list(&mut q, chunk.iter().copied());
            let rows: Vec<(i64, String)> = q
                .build_query_as()
                .persistent(false)
                .fetch_all(&mut *conn)
                .await?;
            lookups.local_ids.extend(rows);
        }
    }
    Ok(lookups)
}

/// Creates the consultants seen for the first time and returns the ids of all of them.
async fn ensure_consultants(
    conn: &mut SqliteConnection,
    gmc: &[&str],
) -> StoreResult<HashMap<String, i64>> {
    let mut ids = HashMap::new();
    for chunk in gmc.chunks(MAX_VARIABLES) {
        let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO consultant (gmc_number) ");
        q.push_values(chunk, |mut b, g| {
            b.push_bind(*g);
        });
        q.push(" ON CONFLICT (gmc_number) DO NOTHING");
        q.build().persistent(false).execute(&mut *conn).await?;
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT gmc_number, id FROM consultant WHERE gmc_number IN ",
        );
        push_in_list(&mut q, chunk.iter().copied());
        let rows: Vec<(String, i64)> = q
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?;
        ids.extend(rows);
    }
    Ok(ids)
}

/// The stored procedures of one provider with these local record ids: id and, when it came
/// through a submission, the content hash of its current version.
async fn existing_procedures(
    conn: &mut SqliteConnection,
    provider: OrganisationId,
    local_ids: &[&str],
) -> StoreResult<HashMap<String, (i64, Option<String>)>> {
    let mut found = HashMap::new();
    for chunk in local_ids.chunks(MAX_VARIABLES - 1) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT p.local_record_id, p.id, s.content_hash FROM procedure p \
             LEFT JOIN procedure_source s ON s.procedure_id = p.id WHERE p.provider_id = ",
        );
        q.push_bind(provider.0);
        q.push(" AND p.local_record_id IN ");
        push_in_list(&mut q, chunk.iter().copied());
        let rows: Vec<(String, i64, Option<String>)> = q
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?;
        found.extend(
            rows.into_iter()
                .map(|(local, id, hash)| (local, (id, hash))),
        );
    }
    Ok(found)
}

async fn insert_sources(conn: &mut SqliteConnection, rows: &[SourceRow<'_>]) -> StoreResult<()> {
    insert_rows(
        conn,
        "INSERT INTO procedure_source (procedure_id, version, registry, dataset_version, record, \
         content_hash, warnings, job_id, line, organisation_id, token_id, received_at) ",
        rows.len(),
        12,
        |b, i| {
            let r = &rows[i];
            b.push_bind(r.procedure.0)
                .push_bind(1_i64)
                .push_bind(r.registry)
                .push_bind(r.dataset_version)
                .push_bind(r.record.as_str())
                .push_bind(r.content_hash)
                .push_bind(r.warnings)
                .push_bind(r.job.0)
                .push_bind(r.line)
                .push_bind(r.organisation.0)
                .push_bind(r.token.map(|t| t.0))
                .push_bind(r.received_at);
        },
    )
    .await
}

async fn insert_report(conn: &mut SqliteConnection, rows: &[ReportRow<'_>]) -> StoreResult<()> {
    insert_rows(
        conn,
        "INSERT INTO submission_record (job_id, line, organisation_id, local_record_id, outcome, \
         effect, procedure_id, messages, record) ",
        rows.len(),
        9,
        |b, i| {
            let r = &rows[i];
            b.push_bind(r.job.0)
                .push_bind(r.line)
                .push_bind(r.organisation.0)
                .push_bind(r.local_record_id)
                .push_bind(r.outcome)
                .push_bind(r.effect)
                .push_bind(r.procedure.map(|p| p.0))
                .push_bind(r.messages)
                .push_bind(r.record.as_deref());
        },
    )
    .await
}

/// Resolves an organisation's open quarantine entries for local record ids now accepted.
async fn resolve_quarantined(
    conn: &mut SqliteConnection,
    organisation: OrganisationId,
    local_ids: &[&str],
    job: SubmissionJobId,
    at: chrono::DateTime<Utc>,
) -> StoreResult<()> {
    for chunk in local_ids.chunks(MAX_VARIABLES - 3) {
        let mut q = QueryBuilder::<Sqlite>::new("UPDATE submission_record SET resolved_at = ");
        q.push_bind(at);
        q.push(", resolved_by_job = ");
        q.push_bind(job.0);
        q.push(" WHERE outcome = 'rejected' AND resolved_at IS NULL AND organisation_id = ");
        q.push_bind(organisation.0);
        q.push(" AND local_record_id IN ");
        push_in_list(&mut q, chunk.iter().copied());
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Appends `(?, ?, …)` binding each value; callers chunk to stay under `MAX_VARIABLES`.
fn push_in_list<'a>(q: &mut QueryBuilder<'a, Sqlite>, values: impl Iterator<Item = &'a str>) {
    q.push("(");
    let mut list = q.separated(", ");
    for value in values {
        list.push_bind(value);
    }
    q.push(")");
}

async fn next_ids(conn: &mut SqliteConnection, table: &str, count: usize) -> StoreResult<Vec<i64>> {
    let max: i64 = sqlx::query_scalar(&format!("SELECT COALESCE(MAX(id), 0) FROM {table}"))
        .fetch_one(&mut *conn)
        .await?;
    Ok((1..=count as i64).map(|i| max + i).collect())
}

/// Inserts `count` rows with multi-row VALUES statements of as many rows as fit under
/// SQLite's variable limit; `bind_row` binds row `i`'s `columns` values.
///
/// The statements are `INSERT OR FAIL`: a row that breaks a constraint ends the statement
/// without undoing the rows before it, so SQLite needs no statement journal for its unique,
/// NOT NULL and CHECK constraints (see `references.rs` for foreign keys). Every caller writes
/// inside a transaction that an error rolls back whole, so no half-statement survives.
async fn insert_rows<'a, F>(
    conn: &mut SqliteConnection,
    head: &str,
    count: usize,
    columns: usize,
    bind_row: F,
) -> StoreResult<()>
where
    F: for<'q> Fn(&mut sqlx::query_builder::Separated<'q, 'a, Sqlite, &'static str>, usize),
{
    let rows_per_statement = MAX_VARIABLES / columns;
    let mut start = 0;
    while start < count {
        let end = (start + rows_per_statement).min(count);
        let mut q = QueryBuilder::<'a, Sqlite>::new(or_fail(head));
        q.push_values(start..end, |mut b, i| bind_row(&mut b, i));
        // A full statement has the same text every time and is worth keeping prepared; a
        // shorter tail differs almost every time, and kept it would fill the connection's
        // statement cache with statements of thousands of parameters (tens of megabytes per
        // connection after a large submission).
        let full = end - start == rows_per_statement;
        q.build().persistent(full).execute(&mut *conn).await?;
        start = end;
    }
    Ok(())
}

/// `head` (`INSERT INTO …`) as `INSERT OR FAIL INTO …`.
fn or_fail(head: &str) -> String {
    debug_assert!(head.starts_with("INSERT INTO "), "{head}");
    match head.strip_prefix("INSERT INTO ") {
        Some(rest) => format!("INSERT OR FAIL INTO {rest}"),
        None => head.to_string(),
    }
}

/// Recall cases and the access audit, shared with the other backend.
mod recall {
    use crate::StoreResult;
    use crate::types::*;

    super::super::recall_cases::recall_case_queries!(
        sqlx::SqliteConnection,
        None,
        "INSERT INTO audit_named_patient (audit_seq, patient_id) \
         SELECT $1, value FROM json_each($2)"
    );
}

/// Review items of break-glass accesses, shared with the other backend.
mod reviews {
    use crate::StoreResult;
    use crate::types::*;
    use crate::{AccessReview, AccessReviewDecision, AccessReviewId, AccessReviewQuery};

    super::super::access_reviews::access_review_queries!(sqlx::SqliteConnection);
}

/// One patient's timeline, shared with the other backend.
mod timeline {
    use crate::StoreResult;
    use crate::types::*;

    super::super::timeline::timeline_queries!(sqlx::SqliteConnection);
}

// ---- Surveillance (issue 6): reading the analysis extract ----

/// The device models, providers and consultants an extract's rows refer to by id.
async fn read_extract_dimensions(
    conn: &mut SqliteConnection,
    queries: &sql::AnalysisQueries,
) -> StoreResult<(Vec<DeviceModel>, Vec<(i64, String)>, Vec<(i64, String)>)> {
    let models: Vec<DeviceModelRow> = sqlx::query_as(&queries.device_models)
        .fetch_all(&mut *conn)
        .await?;
    let providers = sqlx::query_as(&queries.providers)
        .fetch_all(&mut *conn)
        .await?;
    let consultants = sqlx::query_as(&queries.consultants)
        .fetch_all(&mut *conn)
        .await?;
    Ok((
        models.into_iter().map(DeviceModel::from).collect(),
        providers,
        consultants,
    ))
}

/// Reads every table of an extract; `queries.params` are bound to the scoped statements.
///
/// The four large tables are read in pages of `page_rows` rows, each page one JSON array
/// that SQLite builds (`json_group_array`) with dates as day numbers. Read row by row, sqlx
/// moved 4.7 million rows across its worker channel one at a time and parsed every date
/// from text: 34 of the 44 seconds of a 1M-procedure surveillance run. SQLite builds the
/// same pages in about 3 seconds and `serde_json` parses them in about one.
async fn read_extract_rows(
    conn: &mut SqliteConnection,
    queries: &sql::AnalysisQueries,
    page_rows: i64,
) -> StoreResult<analysis::ExtractRows> {
    let (device_models, providers, consultants) = read_extract_dimensions(conn, queries).await?;
    let filters = &queries.filters;
    let params = &queries.params;
    let started = std::time::Instant::now();
    let procedures: Vec<(i64, i64, i64, i64, i64, Option<String>)> = read_extract_pages(
        conn,
        ExtractTable {
            table: "procedure",
            key: "id",
            columns: "id, patient_id, provider_id, consultant_id, procedure_date, indication",
            json: "id, patient_id, provider_id, consultant_id, unixepoch(procedure_date) / 86400, indication",
        },
        &filters.procedures,
        params,
        page_rows,
    )
    .await?;
    let patients: Vec<(i64, i64, String, Option<i64>)> = read_extract_pages(
        conn,
        ExtractTable {
            table: "patient",
            key: "id",
            columns: "id, birth_month_mid, sex, date_of_death",
            json: "id, unixepoch(birth_month_mid) / 86400, sex, unixepoch(date_of_death) / 86400",
        },
        &filters.patients,
        params,
        page_rows,
    )
    .await?;
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        "procedures and patients read"
    );
    let started = std::time::Instant::now();
    let implants: Vec<analysis::ImplantRow> = read_extract_pages(
        conn,
        ExtractTable {
            table: "implant",
            key: "id",
            columns: "id, procedure_id, position, device_model_id, lot",
            json: "id, procedure_id, position, device_model_id, lot",
        },
        &filters.implants,
        params,
        page_rows,
    )
    .await?;
    let removals: Vec<(i64, i64, String)> = read_extract_pages(
        conn,
        ExtractTable {
            table: "removal",
            key: "implant_id",
            columns: "implant_id, removal_date, kind",
            json: "implant_id, unixepoch(removal_date) / 86400, kind",
        },
        &filters.removals,
        params,
        page_rows,
    )
    .await?;
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        "implants and removals read"
    );
    Ok(analysis::ExtractRows {
        device_models,
        providers,
        consultants,
        procedures: procedures
            .into_iter()
            .map(|(id, patient, provider, consultant, date, indication)| {
                Ok((
                    id,
                    patient,
                    provider,
                    consultant,
                    day_to_date(date)?,
                    indication,
                ))
            })
            .collect::<StoreResult<_>>()?,
        patients: patients
            .into_iter()
            .map(|(id, born, sex, died)| {
                Ok((
                    id,
                    day_to_date(born)?,
                    sex,
                    died.map(day_to_date).transpose()?,
                ))
            })
            .collect::<StoreResult<_>>()?,
        implants,
        removals: removals
            .into_iter()
            .map(|(implant, date, kind)| Ok((implant, day_to_date(date)?, kind)))
            .collect::<StoreResult<_>>()?,
    })
}

/// One implant of a scoped extract joined to its procedure, patient and removal, as
/// `json_array` writes it (dates as day numbers).
type ScopedJsonRow = (
    (i64, i64, i32, Option<i64>, Option<String>),
    (i64, i64, i64, i64, Option<String>),
    (i64, i64, String, Option<i64>),
    (Option<i64>, Option<String>),
);

/// Reads a scoped extract (one class of devices) in one joined statement.
///
/// Each table's own scope filter is a nested `IN` over the implants, so reading the four
/// tables separately scanned every implant of the registry four times (6.2 s for the hip cups
/// of the 1M database). Joining from the scope's implants scans them once and reaches each
/// procedure, patient and removal by its key; the dimension tables are read as usual.
async fn read_scoped_extract_rows(
    conn: &mut SqliteConnection,
    queries: &sql::AnalysisQueries,
    implant_filter: &str,
) -> StoreResult<analysis::ExtractRows> {
    let (device_models, providers, consultants) = read_extract_dimensions(conn, queries).await?;
    let started = std::time::Instant::now();
    let statement = format!(
        "SELECT json_group_array(json_array(\
           json_array(i.id, i.procedure_id, i.position, i.device_model_id, i.lot), \
           json_array(p.id, p.patient_id, p.provider_id, p.consultant_id, p.indication), \
           json_array(unixepoch(p.procedure_date) / 86400, unixepoch(pt.birth_month_mid) / 86400, pt.sex, unixepoch(pt.date_of_death) / 86400), \
           json_array(unixepoch(r.removal_date) / 86400, r.kind))) \
         FROM implant i \
         JOIN procedure p ON p.id = i.procedure_id \
         JOIN patient pt ON pt.id = p.patient_id \
         LEFT JOIN removal r ON r.implant_id = i.id \
         WHERE i.{implant_filter}"
    );
    let mut query = sqlx::query_scalar::<_, String>(&statement);
    for param in &queries.params {
        query = query.bind(param);
    }
    let json = query.fetch_one(&mut *conn).await?;
    let mut joined: Vec<ScopedJsonRow> = parse_off_runtime(json, "scoped extract").await?;
    joined.sort_unstable_by_key(|row| (row.0).0);
    let mut procedures = Vec::new();
    let mut patients = Vec::new();
    let mut implants = Vec::with_capacity(joined.len());
    let mut removals = Vec::new();
    for (
        implant,
        (procedure, patient, provider, consultant, indication),
        (day, born, sex, died),
        removal,
    ) in joined
    {
        procedures.push((
            procedure,
            patient,
            provider,
            consultant,
            day_to_date(day)?,
            indication,
        ));
        patients.push((
            patient,
            day_to_date(born)?,
            sex,
            died.map(day_to_date).transpose()?,
        ));
        if let (Some(removed), Some(kind)) = removal {
            removals.push((implant.0, day_to_date(removed)?, kind));
        }
        implants.push(implant);
    }
    procedures.sort_unstable_by_key(|p| p.0);
    procedures.dedup_by_key(|p| p.0);
    patients.sort_unstable_by_key(|p| p.0);
    patients.dedup_by_key(|p| p.0);
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        implants = implants.len(),
        "scoped implants read"
    );
    Ok(analysis::ExtractRows {
        device_models,
        providers,
        consultants,
        procedures,
        patients,
        implants,
        removals,
    })
}

/// One large table of the extract: its plain columns, and the same columns as `json_array`
/// arguments (dates as days since 1970-01-01).
struct ExtractTable {
    table: &'static str,
    /// The unique, indexed column the pages follow.
    key: &'static str,
    columns: &'static str,
    json: &'static str,
}

/// Reads `table` in key order, a page of `page_rows` rows per statement.
async fn read_extract_pages<T: serde::de::DeserializeOwned + Send + 'static>(
    conn: &mut SqliteConnection,
    table: ExtractTable,
    filter: &Option<String>,
    params: &[String],
    page_rows: i64,
) -> StoreResult<Vec<T>> {
    let ExtractTable {
        table,
        key,
        columns,
        json,
    } = table;
    let after = params.len() + 1;
    let limit = params.len() + 2;
    let scope = filter
        .as_ref()
        .map(|f| format!(" AND {f}"))
        .unwrap_or_default();
    let statement = format!(
        "SELECT json_group_array(json_array({json})), max({key}), count(*) \
         FROM (SELECT {columns} FROM {table} WHERE {key} > ${after}{scope} \
               ORDER BY {key} LIMIT ${limit})"
    );
    let mut rows = Vec::new();
    let mut last = i64::MIN;
    loop {
        let mut query = sqlx::query_as::<_, (String, Option<i64>, i64)>(&statement);
        for param in params {
            query = query.bind(param);
        }
        let (page, max_key, count) = query
            .bind(last)
            .bind(page_rows)
            .fetch_one(&mut *conn)
            .await?;
        let parsed: Vec<T> = parse_off_runtime(page, table).await?;
        rows.extend(parsed);
        match max_key {
            Some(key) if count == page_rows => last = key,
            _ => return Ok(rows),
        }
    }
}

/// Parses an engine-built JSON value on the blocking pool: a class's extract is tens of
/// megabytes, and parsing it on a runtime worker would stall other requests.
async fn parse_off_runtime<T: serde::de::DeserializeOwned + Send + 'static>(
    json: String,
    what: &'static str,
) -> StoreResult<T> {
    tokio::task::spawn_blocking(move || parse_json(&json, what))
        .await
        .map_err(|e| StoreError::Corrupt(format!("parsing {what} was cancelled: {e}")))?
}

/// Parses rows the engine aggregated into one JSON value; a failure means stored values the
/// statement's `json_array` did not shape as expected.
fn parse_json<T: serde::de::DeserializeOwned>(json: &str, what: &str) -> StoreResult<T> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("{what} rows do not parse: {e}")))
}

/// A day number from SQLite's `unixepoch(date) / 86400` as a date.
fn day_to_date(days: i64) -> StoreResult<NaiveDate> {
    /// `NaiveDate::num_days_from_ce` of 1970-01-01.
    const UNIX_EPOCH_FROM_CE: i64 = 719_163;
    i32::try_from(days + UNIX_EPOCH_FROM_CE)
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .ok_or_else(|| StoreError::Corrupt(format!("day number {days} is not a date")))
}

/// Bulk submission jobs, reports, quarantine and procedure versions, shared with the other
/// backend.
mod submission {
    use crate::types::*;
    use crate::{StoreError, StoreResult};

    super::super::submissions::submission_queries!(sqlx::SqliteConnection);
}

/// Providers' data quality figures and expected activity, shared with the other backend.
mod data_quality {
    use crate::types::*;
    use crate::{StoreError, StoreResult};

    super::super::data_quality::data_quality_queries!(
        sqlx::SqliteConnection,
        super::super::data_quality::ERRORS_BY_FIELD_SQLITE
    );
}

/// Accounts and sign-in bookkeeping, shared with the other backend.
mod accounts {
    use crate::StoreResult;

    super::super::accounts::account_queries!(sqlx::SqliteConnection);
}

/// Sessions of accounts, shared with the other backend.
mod sessions {
    use crate::StoreResult;

    super::super::sessions::session_queries!(sqlx::SqliteConnection);
}

/// WebAuthn credentials and ceremonies, shared with the other backend.
mod webauthn_sql {
    use crate::StoreResult;

    super::super::webauthn::webauthn_queries!(sqlx::SqliteConnection);
}

/// OpenID Connect sign-ins and identity links, shared with the other backend.
mod oidc {
    use crate::StoreResult;

    super::super::oidc::oidc_queries!(sqlx::SqliteConnection);
}

/// The identifier data keys, shared with the other backend.
mod key_sql {
    use chrono::{DateTime, Utc};

    use crate::{StoreError, StoreResult};

    super::super::keys::key_queries!(sqlx::SqliteConnection, DateTime<Utc>);
}

/// Research projects and their extracts, shared with the other backend.
mod research_sql {
    use crate::{StoreError, StoreResult};

    super::super::research::research_queries!(sqlx::SqliteConnection);
}
