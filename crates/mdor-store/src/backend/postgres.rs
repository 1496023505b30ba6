//! The PostgreSQL backend, the production engine. Bulk loads bind whole columns as arrays and
//! insert them with `UNNEST`; ids for bulk rows are reserved from the tables' sequences.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres};

use mdor_domain::register::RegisterEntry;
use mdor_domain::{NhsNumber, OdsCode, UdiDi};

use super::ConnectOptions;
use super::bulk::{BulkLookups, BulkPlan};
use super::keys::{self, KeySlot};
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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Rows per `UNNEST` insert: bounds the size of one statement's arrays.
const ROWS_PER_STATEMENT: usize = 20_000;

pub struct PostgresStore {
    pool: PgPool,
    /// The identifier keys (`field_crypto`), loaded on first use.
    keys: KeySlot,
}

impl PostgresStore {
    pub async fn connect(url: &str, options: &ConnectOptions) -> StoreResult<PostgresStore> {
        let connect: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(connect)
            .await?;
        Ok(PostgresStore {
            pool,
            keys: KeySlot::new(options.kek.clone()),
        })
    }

    /// The identifier keys, unwrapped once (the first call creates them in a new database).
    async fn cipher(&self) -> StoreResult<Arc<FieldCipher>> {
        if let Some(cipher) = self.keys.cached() {
            return Ok(cipher);
        }
        self.reload_keys().await
    }

    /// Serialises key creation and rotation between processes sharing the database.
    async fn lock_keys(&self, tx: &mut PgConnection) -> StoreResult<()> {
        sqlx::query("LOCK TABLE data_key IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
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

    async fn sealed_idempotency(
        &self,
        record: Option<&NewIdempotencyRecord>,
    ) -> StoreResult<Option<NewIdempotencyRecord>> {
        match record {
            Some(r) => Ok(Some(keys::sealed_idempotency(&*self.cipher().await?, r)?)),
            None => Ok(None),
        }
    }

    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

async fn read_procedure(
    conn: &mut PgConnection,
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

async fn read_recall(
    conn: &mut PgConnection,
    cipher: &FieldCipher,
    criteria: &RecallCriteria,
) -> StoreResult<Vec<RecallRow>> {
    let (text, params) = sql::recall_query(criteria);
    let mut query = sqlx::query_as::<_, RecallDbRow>(&text);
    for param in params {
        query = match param {
            Param::Text(v) => query.bind(v),
            Param::Date(v) => query.bind(v),
            Param::Int(v) => query.bind(v),
        };
    }
    let rows = query.fetch_all(&mut *conn).await?;
    open_all(rows, |r| r.open(cipher))
}

async fn put_idempotency(
    conn: &mut PgConnection,
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

/// Creates a patient unless one with the NHS number exists or is being created by a concurrent
/// transaction (which this waits for); returns the new id, or nothing when it existed.
const PATIENT_INSERT_IF_NEW: &str = "INSERT INTO patient \
     (nhs_number, family_name, given_name, date_of_birth, sex, postcode, created_at, \
      nhs_number_index, birth_month_mid) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
     ON CONFLICT (nhs_number_index) DO NOTHING RETURNING id";

/// Checks a stored patient's date of birth against a submission's and keeps the submission's
/// demographics; returns the patient's id.
async fn update_patient(
    conn: &mut PgConnection,
    cipher: &FieldCipher,
    id: i64,
    stored_date_of_birth: &str,
    patient: &mdor_domain::record::Patient,
    sealed: &SealedPatient,
) -> StoreResult<i64> {
    if open_date_of_birth(cipher, &sealed.index, stored_date_of_birth)? != patient.date_of_birth {
        return Err(StoreError::PatientMismatch);
    }
    sqlx::query(sql::PATIENT_UPDATE_DEMOGRAPHICS)
        .bind(id)
        .bind(&sealed.family_name)
        .bind(&sealed.given_name)
        .bind(patient.sex.as_str())
        .bind(&sealed.postcode)
        .execute(&mut *conn)
        .await?;
    Ok(id)
}

async fn consultant_id(conn: &mut PgConnection, gmc: &str) -> StoreResult<i64> {
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
impl Store for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.pool).await?;
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
        let list: Vec<&str> = udi_dis.iter().map(|u| u.as_str()).collect();
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT udi_di, id FROM device_model WHERE udi_di = ANY($1)")
                .bind(&list)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(udi, id)| (udi, DeviceModelId(id)))
            .collect())
    }

    async fn insert_submission(
        &self,
        prepared: &PreparedSubmission,
        idempotency: Option<&NewIdempotencyRecord>,
    ) -> StoreResult<ProcedureId> {
        prepared.check_shape()?;
        let s = &prepared.submission;
        let p = &s.patient;
        let cipher = self.cipher().await?;
        let sealed = cipher.seal_patient(p)?;
        let idempotency = self.sealed_idempotency(idempotency).await?;
        let idempotency = idempotency.as_ref();
        let mut tx = self.begin_write().await?;
        let existing: Option<(i64, String)> = sqlx::query_as(sql::PATIENT_BY_NHS)
            .bind(&sealed.index)
            .fetch_optional(&mut *tx)
            .await?;
        let patient_id = match existing {
            Some((id, stored_dob)) => {
                update_patient(&mut tx, &cipher, id, &stored_dob, p, &sealed).await?
            }
            None => {
                // A concurrent submission may be creating the same patient: the insert then
                // waits for it and does nothing, and the patient it created is used instead,
                // as SQLite's serialised writers would.
                let inserted: Option<i64> = sqlx::query_scalar(PATIENT_INSERT_IF_NEW)
                    .bind(&sealed.nhs_number)
                    .bind(&sealed.family_name)
                    .bind(&sealed.given_name)
                    .bind(&sealed.date_of_birth)
                    .bind(p.sex.as_str())
                    .bind(&sealed.postcode)
                    .bind(prepared.received_at)
                    .bind(&sealed.index)
                    .bind(birth_month_mid(p.date_of_birth))
                    .fetch_optional(&mut *tx)
                    .await?;
                match inserted {
                    Some(id) => id,
                    None => {
                        let (id, stored_dob): (i64, String) = sqlx::query_as(sql::PATIENT_BY_NHS)
                            .bind(&sealed.index)
                            .fetch_one(&mut *tx)
                            .await?;
                        update_patient(&mut tx, &cipher, id, &stored_dob, p, &sealed).await?
                    }
                }
            }
        };
        let procedure = &s.procedure;
        let consultant = consultant_id(&mut tx, procedure.consultant.as_str()).await?;
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
            .fetch_one(&mut *tx)
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
                .fetch_one(&mut *tx)
                .await?;
            for flag in &implant.flags {
                sqlx::query(sql::FLAG_INSERT)
                    .bind(implant_id)
                    .bind(flag.as_str())
                    .bind(prepared.received_at)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        put_idempotency(&mut tx, idempotency).await?;
        tx.commit().await?;
        Ok(ProcedureId(procedure_id))
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
        // DDL is transactional here: either everything is deferred or nothing is.
        sqlx::query("LOCK TABLE procedure IN ACCESS EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM procedure)")
            .fetch_one(&mut *tx)
            .await?;
        if any {
            return Ok(false);
        }
        for fk in load_schema::FOREIGN_KEYS {
            sqlx::query(&format!(
                "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}",
                fk.table, fk.name
            ))
            .execute(&mut *tx)
            .await?;
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
        // Index builds and foreign-key validation sort; the default 64 MB spills a national
        // load's sorts to disk. Local to this transaction.
        sqlx::query("SET LOCAL maintenance_work_mem = '256MB'")
            .execute(&mut *tx)
            .await?;
        let mut restored = 0;
        for fk in load_schema::FOREIGN_KEYS {
            let present: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_constraint \
                 WHERE conname = $1 AND conrelid = to_regclass($2))",
            )
            .bind(fk.name)
            .bind(fk.table)
            .fetch_one(&mut *tx)
            .await?;
            if !present {
                sqlx::query(&format!(
                    "ALTER TABLE {} ADD CONSTRAINT {} {}",
                    fk.table, fk.name, fk.definition
                ))
                .execute(&mut *tx)
                .await?;
                restored += 1;
            }
        }
        for index in load_schema::INDEXES {
            let present: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_indexes \
                 WHERE schemaname = current_schema() AND indexname = $1)",
            )
            .bind(index.name)
            .fetch_one(&mut *tx)
            .await?;
            if !present {
                sqlx::query(index.create).execute(&mut *tx).await?;
                restored += 1;
            }
        }
        if restored > 0 {
            // The tables grew from nothing: without fresh statistics the planner would treat
            // them as empty until autovacuum caught up, and the outcome joins that follow a
            // load would choose full scans.
            sqlx::query("ANALYZE patient, procedure, implant, follow_up_flag")
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(restored)
    }

    async fn schema_objects(&self) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT d FROM ( \
               SELECT 'constraint ' || conrelid::regclass::text || '.' || conname || ': ' \
                      || pg_get_constraintdef(oid) AS d \
               FROM pg_constraint WHERE connamespace = current_schema()::regnamespace \
               UNION ALL \
               SELECT 'index ' || indexname || ': ' || indexdef \
               FROM pg_indexes WHERE schemaname = current_schema() \
             ) o ORDER BY d",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn bulk_load(&self, batch: &BulkBatch) -> StoreResult<BulkLoadOutcome> {
        let cipher = self.cipher().await?;
        let mut tx = self.begin_write().await?;
        let (outcome, _) = bulk_write(&mut tx, &cipher, batch).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn bulk_removals(&self, removals: &[BulkRemoval]) -> StoreResult<BulkRemovalReport> {
        // Resolved and inserted set-wise: a round trip per row would dominate a national load.
        let mut tx = self.begin_write().await?;
        refresh_bulk_statistics(&mut tx).await?;
        let index: Vec<i32> = (0..removals.len() as i32).collect();
        let providers: Vec<i64> = removals.iter().map(|r| r.provider.0).collect();
        let locals: Vec<&str> = removals
            .iter()
            .map(|r| r.local_record_id.as_str())
            .collect();
        let positions: Vec<i64> = removals.iter().map(|r| r.position).collect();
        let resolved: Vec<(i32, i64)> = sqlx::query_as(
            "SELECT w.idx, i.id FROM UNNEST($1::int[], $2::bigint[], $3::text[], $4::bigint[]) \
               AS w (idx, provider_id, local_record_id, position) \
             JOIN procedure p ON p.provider_id = w.provider_id AND p.local_record_id = w.local_record_id \
             JOIN implant i ON i.procedure_id = p.id AND i.position = w.position",
        )
        .bind(&index)
        .bind(&providers)
        .bind(&locals)
        .bind(&positions)
        .fetch_all(&mut *tx)
        .await?;
        let mut implant_of = vec![None; removals.len()];
        for (idx, implant) in resolved {
            implant_of[idx as usize] = Some(implant);
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
        for chunk in found.chunks(ROWS_PER_STATEMENT) {
            let implants: Vec<i64> = chunk.iter().map(|(_, _, id)| *id).collect();
            let kinds: Vec<&str> = chunk.iter().map(|(_, r, _)| r.kind.as_str()).collect();
            let dates: Vec<NaiveDate> = chunk.iter().map(|(_, r, _)| r.removal_date).collect();
            let reasons: Vec<Option<&str>> =
                chunk.iter().map(|(_, r, _)| r.reason.as_deref()).collect();
            let revising: Vec<i64> = chunk
                .iter()
                .map(|(_, r, _)| r.revising_provider.0)
                .collect();
            let recorded: Vec<chrono::DateTime<Utc>> =
                chunk.iter().map(|(_, r, _)| r.recorded_at).collect();
            let written: Vec<i64> = sqlx::query_scalar(
                "INSERT INTO removal (implant_id, kind, removal_date, reason, revising_provider_id, recorded_at) \
                 SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::date[], $4::text[], $5::bigint[], $6::timestamptz[]) \
                 ON CONFLICT (implant_id) DO NOTHING RETURNING implant_id",
            )
            .bind(&implants)
            .bind(&kinds)
            .bind(&dates)
            .bind(&reasons)
            .bind(&revising)
            .bind(&recorded)
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
            .map(|(n, _)| cipher.blind_index(n.as_str()))
            .collect();
        let dates: Vec<NaiveDate> = deaths.iter().map(|(_, d)| *d).collect();
        let mut tx = self.begin_write().await?;
        let updated: Vec<String> = sqlx::query_scalar(
            "UPDATE patient p SET date_of_death = d.date_of_death \
             FROM UNNEST($1::text[], $2::date[]) AS d (nhs_number_index, date_of_death) \
             WHERE p.nhs_number_index = d.nhs_number_index RETURNING p.nhs_number_index",
        )
        .bind(&indexes)
        .bind(&dates)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let updated: HashSet<&str> = updated.iter().map(String::as_str).collect();
        Ok((0..deaths.len())
            .filter(|&i| !updated.contains(indexes[i].as_str()))
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
        let cipher = self.cipher().await?;
        let mut tx = self.begin_write().await?;
        // As in `bulk_write`: the chunk's view of existing patients and procedures must stay
        // true until commit, including for corrections, which write without the bulk path.
        sqlx::query("LOCK TABLE patient, procedure, implant IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        // Before `existing_procedures`, whose plan depends on them.
        refresh_bulk_statistics(&mut tx).await?;
        let mut results = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            let written = submission::commit_chunk(
                &mut tx,
                &cipher,
                chunk,
                super::submissions::ForeignKeys::Enforced,
            )
            .await?;
            let super::submissions::ChunkWrite::Written(written) = written else {
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
        let mut tx = self.pool.begin().await?;
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
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let rows = read_extract_rows(&mut tx, &sql::analysis_queries(scope)).await?;
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
        let mut tx = self.begin_write().await?;
        let record = read_procedure(&mut tx, &cipher, id).await?;
        let (audit, visible) = super::procedure_read_audit(record.as_ref(), provider, audit);
        recall::insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(record.filter(|_| visible))
    }

    async fn audited_recall(
        &self,
        criteria: &RecallCriteria,
        audit: &NewAuditEvent,
    ) -> StoreResult<Vec<RecallRow>> {
        let cipher = self.cipher().await?;
        let mut tx = self.begin_write().await?;
        let rows = read_recall(&mut tx, &cipher, criteria).await?;
        let mut audit = audit.clone();
        audit.record_count = rows.len() as u64;
        audit.patients = rows.iter().map(|r| r.patient).collect();
        recall::insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn patient_access_log(
        &self,
        patient: PatientId,
        audit: &NewAuditEvent,
    ) -> StoreResult<Vec<PatientAccess>> {
        let mut tx = self.begin_write().await?;
        let accesses = patient_access(&mut tx, patient).await?;
        let mut audit = audit.clone();
        audit.patient = Some(patient);
        audit.record_count = accesses.len() as u64;
        recall::insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(accesses)
    }

    async fn index_named_patients(&self) -> StoreResult<u64> {
        // `audit_named_patient_by_patient` is kept in each entry's own transaction.
        Ok(0)
    }

    async fn audit_log_page(&self, after_seq: u64, limit: u32) -> StoreResult<Vec<AuditLogEntry>> {
        // to_json of a timestamptz is ISO 8601 with its offset; the session's time zone does
        // not matter since the instant is parsed with it.
        let json: Option<String> = sqlx::query_scalar(
            "SELECT json_agg(json_build_array(seq, at, organisation_id, role, token_id, \
               action, resource, patient_id, record_count, purpose, outcome, \
               encode(leaf_hash, 'hex'), account_id, request_id, \
               (SELECT string_agg(patient_id::text, ',') FROM audit_named_patient ap \
                WHERE ap.audit_seq = page.seq), encode(detail_digest, 'hex')) ORDER BY seq)::text \
             FROM (SELECT * FROM audit_event WHERE seq > $1 ORDER BY seq LIMIT $2) page",
        )
        .bind(after_seq as i64)
        .bind(i64::from(limit))
        .fetch_one(&self.pool)
        .await?;
        audit_log_page_from_json(json.as_deref())
    }

    async fn insert_audit_checkpoint(&self, checkpoint: &NewAuditCheckpoint) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        recall::insert_checkpoint(&mut conn, checkpoint).await
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

/// Writes a batch inside the caller's transaction; returns the outcome and, for each
/// submission, the id of the procedure written for it (`None` when skipped).
async fn bulk_write(
    tx: &mut PgConnection,
    cipher: &FieldCipher,
    batch: &BulkBatch,
) -> StoreResult<(BulkLoadOutcome, Vec<Option<ProcedureId>>)> {
    for prepared in &batch.submissions {
        prepared.check_shape()?;
    }
    // Serialises bulk loads with each other and with single submissions: the plan's view
    // of existing patients stays true until commit, and no other transaction can draw
    // from the id sequences while `next_ids` reserves a block from each. The tables are
    // locked in the order single submissions write them, so the two cannot deadlock.
    sqlx::query("LOCK TABLE patient, procedure, implant IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    refresh_bulk_statistics(&mut *tx).await?;
    let mut lookups = bulk_lookups(&mut *tx, cipher, batch).await?;
    let plan = BulkPlan::new(batch, &lookups);
    lookups.consultants = ensure_consultants(&mut *tx, &plan.consultants()).await?;
    let (n_patients, n_procedures, n_implants) = plan.id_counts();
    let patient_ids = next_ids(&mut *tx, "patient", n_patients).await?;
    let procedure_ids = next_ids(&mut *tx, "procedure", n_procedures).await?;
    let implant_ids = next_ids(&mut *tx, "implant", n_implants).await?;
    let rows = plan.rows(&patient_ids, &procedure_ids, &implant_ids, &lookups, cipher)?;

    let p = &rows.patients;
    for r in chunks(p.id.len()) {
        sqlx::query("INSERT INTO patient (id, nhs_number, family_name, given_name, date_of_birth, sex, postcode, created_at, nhs_number_index, birth_month_mid) \
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[], $9::text[], $10::date[])")
            .bind(&p.id[r.clone()]).bind(&p.nhs_number[r.clone()]).bind(&p.family_name[r.clone()]).bind(&p.given_name[r.clone()])
            .bind(&p.date_of_birth[r.clone()]).bind(&p.sex[r.clone()]).bind(&p.postcode[r.clone()]).bind(&p.created_at[r.clone()])
            .bind(&p.nhs_number_index[r.clone()]).bind(&p.birth_month_mid[r])
            .execute(&mut *tx).await?;
    }
    let q = &rows.procedures;
    for r in chunks(q.id.len()) {
        sqlx::query("INSERT INTO procedure (id, patient_id, provider_id, consultant_id, procedure_date, opcs4_code, opcs4_version, snomed_ct_id, laterality, registry, local_record_id, created_at, indication) \
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::date[], $6::text[], $7::text[], $8::bigint[], $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::text[])")
            .bind(&q.id[r.clone()]).bind(&q.patient_id[r.clone()]).bind(&q.provider_id[r.clone()]).bind(&q.consultant_id[r.clone()])
            .bind(&q.procedure_date[r.clone()]).bind(&q.opcs4_code[r.clone()]).bind(&q.opcs4_version[r.clone()]).bind(&q.snomed_ct_id[r.clone()])
            .bind(&q.laterality[r.clone()]).bind(&q.registry[r.clone()]).bind(&q.local_record_id[r.clone()]).bind(&q.created_at[r.clone()]).bind(&q.indication[r])
            .execute(&mut *tx).await?;
    }
    let m = &rows.implants;
    for r in chunks(m.id.len()) {
        sqlx::query("INSERT INTO implant (id, procedure_id, position, udi_di, device_model_id, lot, serial, expiry, manufactured, raw_scan, entry_type) \
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::int[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::date[], $9::date[], $10::text[], $11::text[])")
            .bind(&m.id[r.clone()]).bind(&m.procedure_id[r.clone()]).bind(&m.position[r.clone()]).bind(&m.udi_di[r.clone()])
            .bind(&m.device_model_id[r.clone()]).bind(&m.lot[r.clone()]).bind(&m.serial[r.clone()]).bind(&m.expiry[r.clone()])
            .bind(&m.manufactured[r.clone()]).bind(&m.raw_scan[r.clone()]).bind(&m.entry_type[r])
            .execute(&mut *tx).await?;
    }
    let f = &rows.flags;
    for r in chunks(f.implant_id.len()) {
        sqlx::query("INSERT INTO follow_up_flag (implant_id, flag, raised_at) SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::timestamptz[])")
            .bind(&f.implant_id[r.clone()]).bind(&f.flag[r.clone()]).bind(&f.raised_at[r])
            .execute(&mut *tx).await?;
    }
    let ids = plan
        .procedure_slots()
        .into_iter()
        .map(|slot| slot.map(|k| ProcedureId(procedure_ids[k])))
        .collect();
    Ok((plan.outcome, ids))
}

/// Analyses `procedure` and `patient` when bulk writes have more than doubled `procedure`
/// since its statistics were taken (the function of migration 0026, which runs as the
/// tables' owner). Autovacuum cannot do it while bulk transactions hold their locks, and the
/// lookups by (provider_id, local_record_id) below went quadratic on statistics from a much
/// smaller registry (test `postgres_plans`).
async fn refresh_bulk_statistics(conn: &mut PgConnection) -> StoreResult<()> {
    sqlx::query_scalar::<_, bool>("SELECT mdor_refresh_bulk_statistics()")
        .fetch_one(&mut *conn)
        .await?;
    Ok(())
}

/// Looks up the patients and local record ids a batch refers to.
async fn bulk_lookups(
    conn: &mut PgConnection,
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
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT nhs_number_index, id, date_of_birth FROM patient \
         WHERE nhs_number_index = ANY($1)",
    )
    .bind(&indexes)
    .fetch_all(&mut *conn)
    .await?;
    for (index, id, dob) in rows {
        let dob = open_date_of_birth(cipher, &index, &dob)?;
        lookups
            .patients
            .insert(by_index[&index].to_string(), (id, dob));
    }
    // Pairs, so that the lookup uses the unique (provider_id, local_record_id) index.
    let (providers, locals): (Vec<i64>, Vec<&str>) = batch
        .submissions
        .iter()
        .map(|s| {
            (
                s.provider.0,
                s.submission.procedure.local_record_id.as_str(),
            )
        })
        .unzip();
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT p.provider_id, p.local_record_id FROM procedure p \
         JOIN UNNEST($1::bigint[], $2::text[]) AS wanted (provider_id, local_record_id) \
           ON p.provider_id = wanted.provider_id AND p.local_record_id = wanted.local_record_id",
    )
    .bind(&providers)
    .bind(&locals)
    .fetch_all(&mut *conn)
    .await?;
    lookups.local_ids.extend(rows);
    Ok(lookups)
}

/// Creates the consultants seen for the first time and returns the ids of all of them.
async fn ensure_consultants(
    conn: &mut PgConnection,
    gmc: &[&str],
) -> StoreResult<HashMap<String, i64>> {
    sqlx::query("INSERT INTO consultant (gmc_number) SELECT * FROM UNNEST($1::text[]) ON CONFLICT (gmc_number) DO NOTHING")
        .bind(gmc)
        .execute(&mut *conn)
        .await?;
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT gmc_number, id FROM consultant WHERE gmc_number = ANY($1)")
            .bind(gmc)
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows.into_iter().collect())
}

/// The stored procedures of one provider with these local record ids: id and, when it came
/// through a submission, the content hash of its current version.
async fn existing_procedures(
    conn: &mut PgConnection,
    provider: OrganisationId,
    local_ids: &[&str],
) -> StoreResult<HashMap<String, (i64, Option<String>)>> {
    let rows: Vec<(String, i64, Option<String>)> = sqlx::query_as(
        "SELECT p.local_record_id, p.id, s.content_hash FROM procedure p \
         LEFT JOIN procedure_source s ON s.procedure_id = p.id \
         WHERE p.provider_id = $1 AND p.local_record_id = ANY($2)",
    )
    .bind(provider.0)
    .bind(local_ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(local, id, hash)| (local, (id, hash)))
        .collect())
}

async fn insert_sources(conn: &mut PgConnection, rows: &[SourceRow<'_>]) -> StoreResult<()> {
    for range in chunks(rows.len()) {
        let rows = &rows[range];
        let column = |f: &dyn Fn(&SourceRow<'_>) -> i64| rows.iter().map(f).collect::<Vec<i64>>();
        let procedure = column(&|r| r.procedure.0);
        let job = column(&|r| r.job.0);
        let line = column(&|r| r.line);
        let organisation = column(&|r| r.organisation.0);
        let token: Vec<Option<i64>> = rows.iter().map(|r| r.token.map(|t| t.0)).collect();
        let registry: Vec<&str> = rows.iter().map(|r| r.registry).collect();
        let version: Vec<&str> = rows.iter().map(|r| r.dataset_version).collect();
        let record: Vec<&str> = rows.iter().map(|r| r.record.as_str()).collect();
        let hash: Vec<&str> = rows.iter().map(|r| r.content_hash).collect();
        let warnings: Vec<Option<&str>> = rows.iter().map(|r| r.warnings).collect();
        let received: Vec<chrono::DateTime<Utc>> = rows.iter().map(|r| r.received_at).collect();
        sqlx::query(
            "INSERT INTO procedure_source (procedure_id, version, registry, dataset_version, record, \
             content_hash, warnings, job_id, line, organisation_id, token_id, received_at) \
             SELECT p, 1, rg, v, rc, h, w, j, l, o, t, at FROM UNNEST($1::bigint[], $2::text[], \
               $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[], \
               $9::bigint[], $10::bigint[], $11::timestamptz[]) AS u (p, rg, v, rc, h, w, j, l, o, t, at)",
        )
        .bind(&procedure)
        .bind(&registry)
        .bind(&version)
        .bind(&record)
        .bind(&hash)
        .bind(&warnings)
        .bind(&job)
        .bind(&line)
        .bind(&organisation)
        .bind(&token)
        .bind(&received)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn insert_report(conn: &mut PgConnection, rows: &[ReportRow<'_>]) -> StoreResult<()> {
    for range in chunks(rows.len()) {
        let rows = &rows[range];
        let job: Vec<i64> = rows.iter().map(|r| r.job.0).collect();
        let line: Vec<i64> = rows.iter().map(|r| r.line).collect();
        let organisation: Vec<i64> = rows.iter().map(|r| r.organisation.0).collect();
        let local: Vec<Option<&str>> = rows.iter().map(|r| r.local_record_id).collect();
        let outcome: Vec<&str> = rows.iter().map(|r| r.outcome).collect();
        let effect: Vec<&str> = rows.iter().map(|r| r.effect).collect();
        let procedure: Vec<Option<i64>> = rows.iter().map(|r| r.procedure.map(|p| p.0)).collect();
        let messages: Vec<Option<&str>> = rows.iter().map(|r| r.messages).collect();
        let record: Vec<Option<&str>> = rows.iter().map(|r| r.record.as_deref()).collect();
        sqlx::query(
            "INSERT INTO submission_record (job_id, line, organisation_id, local_record_id, outcome, \
             effect, procedure_id, messages, record) \
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], \
               $6::text[], $7::bigint[], $8::text[], $9::text[])",
        )
        .bind(&job)
        .bind(&line)
        .bind(&organisation)
        .bind(&local)
        .bind(&outcome)
        .bind(&effect)
        .bind(&procedure)
        .bind(&messages)
        .bind(&record)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Resolves an organisation's open quarantine entries for local record ids now accepted.
async fn resolve_quarantined(
    conn: &mut PgConnection,
    organisation: OrganisationId,
    local_ids: &[&str],
    job: SubmissionJobId,
    at: chrono::DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE submission_record SET resolved_at = $1, resolved_by_job = $2 \
         WHERE outcome = 'rejected' AND resolved_at IS NULL AND organisation_id = $3 \
           AND local_record_id = ANY($4)",
    )
    .bind(at)
    .bind(job.0)
    .bind(organisation.0)
    .bind(local_ids)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Reserves `count` ids from a table's identity sequence.
async fn next_ids(conn: &mut PgConnection, table: &str, count: usize) -> StoreResult<Vec<i64>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    // One round trip for the whole block instead of a `nextval` per row (about 8 µs each).
    // Safe only under `bulk_load`'s table lock: nobody else can take a value between the
    // `nextval` and the `setval`.
    let last: i64 = sqlx::query_scalar(&format!(
        "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                nextval(pg_get_serial_sequence('{table}', 'id')) + $1 - 1)"
    ))
    .bind(count as i64)
    .fetch_one(&mut *conn)
    .await?;
    let first = last - count as i64 + 1;
    Ok((first..=last).collect())
}

fn chunks(count: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..count)
        .step_by(ROWS_PER_STATEMENT)
        .map(move |start| start..(start + ROWS_PER_STATEMENT).min(count))
}

/// One patient's accesses (`recall_cases::PATIENT_ACCESS`).
async fn patient_access(
    conn: &mut PgConnection,
    patient: PatientId,
) -> StoreResult<Vec<PatientAccess>> {
    let rows: Vec<PatientAccessRow> = sqlx::query_as(super::recall_cases::PATIENT_ACCESS)
        .bind(patient.0)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().map(PatientAccess::from).collect())
}

/// Recall cases and the access audit, shared with the other backend.
mod recall {
    use crate::StoreResult;
    use crate::types::*;

    // Audit writers queue on one transaction-level advisory lock until the holder commits, so
    // positions are gapless and in commit order. Unlike LOCK TABLE in a mode that blocks other
    // inserters, it needs no UPDATE, DELETE or TRUNCATE privilege, which an application role
    // should not have on the audit (`mdor audit grants`). The key is "mdoraudt" in ASCII.
    super::super::recall_cases::recall_case_queries!(
        sqlx::PgConnection,
        Some("SELECT pg_advisory_xact_lock(7882547784857248884)"),
        "INSERT INTO audit_named_patient (audit_seq, patient_id) \
         SELECT $1, value::bigint FROM json_array_elements_text($2::json)"
    );
}

/// Review items of break-glass accesses, shared with the other backend.
mod reviews {
    use crate::StoreResult;
    use crate::types::*;
    use crate::{AccessReview, AccessReviewDecision, AccessReviewId, AccessReviewQuery};

    super::super::access_reviews::access_review_queries!(sqlx::PgConnection);
}

/// One patient's timeline, shared with the other backend.
mod timeline {
    use crate::StoreResult;
    use crate::types::*;

    super::super::timeline::timeline_queries!(sqlx::PgConnection);
}

// ---- Surveillance (issue 6): reading the analysis extract ----

/// Reads every table of an extract; `queries.params` are bound to the scoped statements.
async fn read_extract_rows(
    conn: &mut PgConnection,
    queries: &sql::AnalysisQueries,
) -> StoreResult<analysis::ExtractRows> {
    let models: Vec<DeviceModelRow> = sqlx::query_as(&queries.device_models)
        .fetch_all(&mut *conn)
        .await?;
    let providers = sqlx::query_as(&queries.providers)
        .fetch_all(&mut *conn)
        .await?;
    let consultants = sqlx::query_as(&queries.consultants)
        .fetch_all(&mut *conn)
        .await?;
    let mut procedures = sqlx::query_as(&queries.procedures);
    let mut patients = sqlx::query_as(&queries.patients);
    let mut implants = sqlx::query_as(&queries.implants);
    let mut removals = sqlx::query_as(&queries.removals);
    for param in &queries.params {
        procedures = procedures.bind(param);
        patients = patients.bind(param);
        implants = implants.bind(param);
        removals = removals.bind(param);
    }
    Ok(analysis::ExtractRows {
        device_models: models.into_iter().map(DeviceModel::from).collect(),
        providers,
        consultants,
        procedures: procedures.fetch_all(&mut *conn).await?,
        patients: patients.fetch_all(&mut *conn).await?,
        implants: implants.fetch_all(&mut *conn).await?,
        removals: removals.fetch_all(&mut *conn).await?,
    })
}

/// Bulk submission jobs, reports, quarantine and procedure versions, shared with the other
/// backend.
mod submission {
    use crate::types::*;
    use crate::{StoreError, StoreResult};

    super::super::submissions::submission_queries!(sqlx::PgConnection);
}

/// Providers' data quality figures and expected activity, shared with the other backend.
mod data_quality {
    use crate::types::*;
    use crate::{StoreError, StoreResult};

    super::super::data_quality::data_quality_queries!(
        sqlx::PgConnection,
        super::super::data_quality::ERRORS_BY_FIELD_POSTGRES
    );
}

/// Accounts and sign-in bookkeeping, shared with the other backend.
mod accounts {
    use crate::StoreResult;

    super::super::accounts::account_queries!(sqlx::PgConnection);
}

/// Sessions of accounts, shared with the other backend.
mod sessions {
    use crate::StoreResult;

    super::super::sessions::session_queries!(sqlx::PgConnection);
}

/// WebAuthn credentials and ceremonies, shared with the other backend.
mod webauthn_sql {
    use crate::StoreResult;

    super::super::webauthn::webauthn_queries!(sqlx::PgConnection);
}

/// OpenID Connect sign-ins and identity links, shared with the other backend.
mod oidc {
    use crate::StoreResult;

    super::super::oidc::oidc_queries!(sqlx::PgConnection);
}

/// The identifier data keys, shared with the other backend.
mod key_sql {
    use chrono::{DateTime, Utc};

    use crate::{StoreError, StoreResult};

    super::super::keys::key_queries!(sqlx::PgConnection, DateTime<Utc>);
}

/// Research projects and their extracts, shared with the other backend.
mod research_sql {
    use crate::{StoreError, StoreResult};

    super::super::research::research_queries!(sqlx::PgConnection);
}
