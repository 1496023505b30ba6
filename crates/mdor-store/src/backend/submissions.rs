//! Bulk submission jobs, their per-record reports and quarantine, and the raw input and
//! versions of submitted procedures, written once for both engines like `recall_cases.rs`:
//! `submission_queries!` expands the same function bodies for each backend's connection.
//!
//! The set-wise steps whose SQL differs between the engines (looking up many local record
//! ids, multi-row inserts, the bulk write of new procedures) are functions of each backend
//! module, called here as `super::…`.
//!
//! Crash safety rests on `commit_chunk`: a chunk's procedures, corrections, report rows,
//! quarantine resolutions and the job's progress (`resume_offset`) are one transaction, and
//! the transaction is refused when the job's progress is not where the chunk began. A process
//! killed at any point therefore leaves each record either committed once, with its report
//! row, or not at all, to be read again from `resume_offset`.

use chrono::{DateTime, Utc};

use crate::types::{ChunkRecordResult, OrganisationId, ProcedureId, SubmissionJobId, TokenId};

/// Whether the engine enforces foreign keys in a chunk's transaction. SQLite commits a chunk
/// with enforcement off (`references.rs`) unless it corrects stored procedures.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ForeignKeys {
    Enforced,
    /// Off: the bulk write checks the references of the rows it creates, and a chunk with
    /// corrections (which update and delete rows others refer to) is not written.
    Off,
}

/// What `commit_chunk` did.
pub(crate) enum ChunkWrite {
    Written(Vec<ChunkRecordResult>),
    /// The chunk corrects stored procedures and foreign keys are off: nothing was written,
    /// and the chunk must be written again with them enforced.
    NeedsForeignKeys,
}

/// The raw input and provenance of a procedure created by a chunk.
pub(crate) struct SourceRow<'a> {
    pub procedure: ProcedureId,
    pub registry: &'a str,
    pub dataset_version: &'a str,
    /// Sealed (`Field::SourceRecord`): the raw input names the patient.
    pub record: String,
    pub content_hash: &'a str,
    pub warnings: Option<&'a str>,
    pub job: SubmissionJobId,
    pub line: i64,
    pub organisation: OrganisationId,
    pub token: Option<TokenId>,
    pub received_at: DateTime<Utc>,
}

/// One report row of a chunk.
pub(crate) struct ReportRow<'a> {
    pub job: SubmissionJobId,
    pub line: i64,
    pub organisation: OrganisationId,
    pub local_record_id: Option<&'a str>,
    pub outcome: &'static str,
    pub effect: &'static str,
    pub procedure: Option<ProcedureId>,
    pub messages: Option<&'a str>,
    /// Kept for rejected records only, sealed (`Field::RejectedRecord`): accepted ones keep
    /// theirs in `procedure_source`.
    pub record: Option<String>,
}

pub(crate) const JOB_INSERT: &str = "INSERT INTO submission_job \
     (organisation_id, token_id, submitted_by, registry, dataset_version, format, spool_path, \
      file_bytes, state, resolves_quarantine, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id";

pub(crate) const JOB_SELECT: &str = "SELECT j.id, j.organisation_id, o.ods_code AS organisation_ods, \
       j.token_id, j.submitted_by, j.registry, j.dataset_version, j.format, j.spool_path, \
       j.file_bytes, j.state, j.total_records, j.records_done, j.accepted, \
       j.accepted_with_warnings, j.rejected, j.created, j.corrected, j.unchanged, \
       j.resume_offset, j.resume_line, j.resolves_quarantine, j.created_at, j.started_at, \
       j.finished_at, j.failure \
     FROM submission_job j JOIN organisation o ON o.id = j.organisation_id";

pub(crate) const JOB_START: &str = "UPDATE submission_job SET state = 'processing', \
       started_at = COALESCE(started_at, $3), total_records = COALESCE(total_records, $2) \
     WHERE id = $1 AND state IN ('queued', 'processing')";

pub(crate) const JOB_FAIL: &str = "UPDATE submission_job SET state = 'failed', failure = $2, \
       finished_at = $3 WHERE id = $1 AND state IN ('queued', 'processing')";

pub(crate) const JOB_PROGRESS: &str = "UPDATE submission_job SET resume_offset = $3, resume_line = $4, \
       records_done = records_done + $5, accepted = accepted + $6, \
       accepted_with_warnings = accepted_with_warnings + $7, rejected = rejected + $8, \
       created = created + $9, corrected = corrected + $10, unchanged = unchanged + $11 \
     WHERE id = $1 AND resume_offset = $2 AND state = 'processing'";

pub(crate) const JOB_COMPLETE: &str = "UPDATE submission_job SET state = 'completed', \
       total_records = records_done, finished_at = $2 WHERE id = $1";

pub(crate) const RECORDS_PAGE: &str = "SELECT id, job_id, line, local_record_id, outcome, effect, \
       procedure_id, messages, resolved_at \
     FROM submission_record WHERE job_id = $1 AND line > $2 ORDER BY line LIMIT $3";

pub(crate) const QUARANTINE_COLUMNS: &str = "SELECT r.id, r.job_id, r.line, r.organisation_id, \
       o.ods_code AS organisation_ods, j.registry, j.dataset_version, r.local_record_id, r.record, \
       r.messages, j.created_at AS received_at, r.resolved_at, r.resolved_by_job \
     FROM submission_record r \
     JOIN submission_job j ON j.id = r.job_id \
     JOIN organisation o ON o.id = r.organisation_id";

pub(crate) const QUARANTINE_PAGE_OPEN: &str = " WHERE r.outcome = 'rejected' AND r.resolved_at IS NULL \
       AND ($1 IS NULL OR r.organisation_id = $1) AND r.id > $2 ORDER BY r.id LIMIT $3";

pub(crate) const QUARANTINE_PAGE_ALL: &str = " WHERE r.outcome = 'rejected' \
       AND ($1 IS NULL OR r.organisation_id = $1) AND r.id > $2 ORDER BY r.id LIMIT $3";

pub(crate) const QUARANTINE_OPEN_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM submission_record \
       WHERE organisation_id = $1 AND outcome = 'rejected' AND resolved_at IS NULL)";

pub(crate) const QUARANTINE_RESOLVE_ONE: &str = "UPDATE submission_record SET resolved_at = $2, \
       resolved_by_job = $3 WHERE id = $1 AND outcome = 'rejected' AND resolved_at IS NULL";

pub(crate) const SOURCE_VERSION_INSERT: &str = "INSERT INTO procedure_version \
       (procedure_id, version, registry, dataset_version, record, core_record, content_hash, job_id, \
        line, organisation_id, token_id, received_at, superseded_at, superseded_by_job) \
     SELECT procedure_id, version, registry, dataset_version, record, $2, content_hash, job_id, \
       line, organisation_id, token_id, received_at, $3, $4 \
     FROM procedure_source WHERE procedure_id = $1";

pub(crate) const SOURCE_UPDATE: &str = "UPDATE procedure_source SET version = version + 1, \
       registry = $2, dataset_version = $3, record = $4, content_hash = $5, warnings = $6, \
       job_id = $7, line = $8, organisation_id = $9, token_id = $10, received_at = $11 \
     WHERE procedure_id = $1";

/// A procedure that came through the single-record API has no source row: its first
/// version is the core record alone.
pub(crate) const API_VERSION_INSERT: &str = "INSERT INTO procedure_version \
       (procedure_id, version, core_record, superseded_at, superseded_by_job) \
     VALUES ($1, 1, $2, $3, $4)";

pub(crate) const SOURCE_INSERT: &str = "INSERT INTO procedure_source \
       (procedure_id, version, registry, dataset_version, record, content_hash, warnings, job_id, \
        line, organisation_id, token_id, received_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

pub(crate) const SOURCE_CURRENT: &str = "SELECT version, registry, dataset_version, record, \
       NULL AS core_record, warnings, job_id, line, organisation_id, token_id, received_at, \
       NULL AS superseded_at \
     FROM procedure_source WHERE procedure_id = $1";

pub(crate) const SOURCE_EARLIER: &str = "SELECT version, registry, dataset_version, record, \
       core_record, NULL AS warnings, job_id, line, organisation_id, token_id, received_at, \
       superseded_at \
     FROM procedure_version WHERE procedure_id = $1 ORDER BY version DESC";

/// The implants of a procedure, with how many removals and recall cases refer to each.
pub(crate) const IMPLANT_REFERENCES: &str = "SELECT i.id, i.udi_di, \
       (SELECT COUNT(*) FROM removal r WHERE r.implant_id = i.id) \
         + (SELECT COUNT(*) FROM recall_case_implant c WHERE c.implant_id = i.id) AS refs \
     FROM implant i WHERE i.procedure_id = $1 ORDER BY i.position";

pub(crate) const PROCEDURE_CORRECT: &str = "UPDATE procedure SET patient_id = $2, consultant_id = $3, \
       procedure_date = $4, opcs4_code = $5, opcs4_version = $6, snomed_ct_id = $7, \
       laterality = $8, registry = $9, indication = $10 WHERE id = $1";

pub(crate) const IMPLANT_CORRECT: &str = "UPDATE implant SET device_model_id = $2, lot = $3, serial = $4, \
       expiry = $5, manufactured = $6, raw_scan = $7, entry_type = $8 WHERE id = $1";

/// Keeps the stored names when the record carries none.
pub(crate) const PATIENT_CORRECT_WITHOUT_NAMES: &str =
    "UPDATE patient SET sex = $2, postcode = COALESCE($3, postcode) WHERE id = $1";

/// The error recorded when the store refuses a valid record, as the JSON array reports use.
pub(crate) fn store_error(field: &str, code: &str, message: &str) -> String {
    serde_json::json!([{ "field": field, "code": code, "message": message }]).to_string()
}

/// Expands, inside a backend module, the submission functions for `$conn`.
macro_rules! submission_queries {
    ($conn:ty) => {
        use std::collections::HashMap;

        use chrono::{DateTime, Utc};

        use $crate::backend::submissions::{self as sq, ReportRow, SourceRow};
        use $crate::rows::{
            ImplantRow, ProcedureRow, QuarantineRow, SourceVersionRow, SubmissionJobRow,
            SubmissionRecordRow, birth_month_mid, open_date_of_birth, procedure_record,
        };
        use $crate::field_crypto::{Field, FieldCipher};
        use $crate::sql;

        pub(super) async fn create_job(
            conn: &mut $conn,
            job: &NewSubmissionJob,
        ) -> StoreResult<SubmissionJobId> {
            let id: i64 = sqlx::query_scalar(sq::JOB_INSERT)
                .bind(job.organisation.0)
                .bind(job.token.map(|t| t.0))
                .bind(&job.submitted_by)
                .bind(&job.registry)
                .bind(&job.dataset_version)
                .bind(job.format.as_str())
                .bind(&job.spool_path)
                .bind(job.file_bytes as i64)
                .bind(job.state.as_str())
                .bind(job.resolves_quarantine.map(|q| q.0))
                .bind(job.created_at)
                .fetch_one(&mut *conn)
                .await?;
            Ok(SubmissionJobId(id))
        }

        pub(super) async fn job(
            conn: &mut $conn,
            id: SubmissionJobId,
        ) -> StoreResult<Option<SubmissionJob>> {
            let row: Option<SubmissionJobRow> =
                sqlx::query_as(&format!("{} WHERE j.id = $1", sq::JOB_SELECT))
                    .bind(id.0)
                    .fetch_optional(&mut *conn)
                    .await?;
            row.map(SubmissionJob::try_from).transpose()
        }

        pub(super) async fn jobs(
            conn: &mut $conn,
            organisation: Option<OrganisationId>,
            limit: u32,
        ) -> StoreResult<Vec<SubmissionJob>> {
            let rows: Vec<SubmissionJobRow> = sqlx::query_as(&format!(
                "{} WHERE ($1 IS NULL OR j.organisation_id = $1) ORDER BY j.id DESC LIMIT $2",
                sq::JOB_SELECT
            ))
            .bind(organisation.map(|o| o.0))
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?;
            rows.into_iter().map(SubmissionJob::try_from).collect()
        }

        pub(super) async fn jobs_in_state(
            conn: &mut $conn,
            state: SubmissionState,
        ) -> StoreResult<Vec<SubmissionJobId>> {
            let ids: Vec<i64> =
                sqlx::query_scalar("SELECT id FROM submission_job WHERE state = $1 ORDER BY id")
                    .bind(state.as_str())
                    .fetch_all(&mut *conn)
                    .await?;
            Ok(ids.into_iter().map(SubmissionJobId).collect())
        }

        pub(super) async fn start_job(
            conn: &mut $conn,
            id: SubmissionJobId,
            total_records: u64,
            at: DateTime<Utc>,
        ) -> StoreResult<bool> {
            let done = sqlx::query(sq::JOB_START)
                .bind(id.0)
                .bind(total_records as i64)
                .bind(at)
                .execute(&mut *conn)
                .await?;
            Ok(done.rows_affected() == 1)
        }

        pub(super) async fn fail_job(
            conn: &mut $conn,
            id: SubmissionJobId,
            failure: &str,
            at: DateTime<Utc>,
        ) -> StoreResult<()> {
            sqlx::query(sq::JOB_FAIL)
                .bind(id.0)
                .bind(failure)
                .bind(at)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        pub(super) async fn records(
            conn: &mut $conn,
            job: SubmissionJobId,
            after_line: u64,
            limit: u32,
        ) -> StoreResult<Vec<SubmissionRecord>> {
            let rows: Vec<SubmissionRecordRow> = sqlx::query_as(sq::RECORDS_PAGE)
                .bind(job.0)
                .bind(after_line as i64)
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await?;
            rows.into_iter().map(SubmissionRecord::try_from).collect()
        }

        pub(super) async fn quarantine(
            conn: &mut $conn,
            cipher: &FieldCipher,
            query: &QuarantineQuery,
        ) -> StoreResult<Vec<QuarantineEntry>> {
            let filter = if query.include_resolved {
                sq::QUARANTINE_PAGE_ALL
            } else {
                sq::QUARANTINE_PAGE_OPEN
            };
            let rows: Vec<QuarantineRow> =
                sqlx::query_as(&format!("{}{}", sq::QUARANTINE_COLUMNS, filter))
                    .bind(query.organisation.map(|o| o.0))
                    .bind(query.after.map_or(0, |a| a.0))
                    .bind(i64::from(query.limit))
                    .fetch_all(&mut *conn)
                    .await?;
            rows.into_iter()
                .map(|row| open_quarantined(cipher, row))
                .collect()
        }

        pub(super) async fn quarantine_entry(
            conn: &mut $conn,
            cipher: &FieldCipher,
            id: SubmissionRecordId,
        ) -> StoreResult<Option<QuarantineEntry>> {
            let row: Option<QuarantineRow> = sqlx::query_as(&format!(
                "{} WHERE r.id = $1 AND r.outcome = 'rejected'",
                sq::QUARANTINE_COLUMNS
            ))
            .bind(id.0)
            .fetch_optional(&mut *conn)
            .await?;
            row.map(|row| open_quarantined(cipher, row)).transpose()
        }

        fn open_quarantined(cipher: &FieldCipher, mut row: QuarantineRow) -> StoreResult<QuarantineEntry> {
            if let Some(record) = &row.record {
                let at = format!("{}/{}", row.job_id, row.line);
                row.record = Some(cipher.open_record(Field::RejectedRecord, &at, record)?);
            }
            Ok(QuarantineEntry::from(row))
        }

        pub(super) async fn history(
            conn: &mut $conn,
            cipher: &FieldCipher,
            procedure: ProcedureId,
        ) -> StoreResult<Vec<ProcedureSourceVersion>> {
            let current: Option<SourceVersionRow> = sqlx::query_as(sq::SOURCE_CURRENT)
                .bind(procedure.0)
                .fetch_optional(&mut *conn)
                .await?;
            let earlier: Vec<SourceVersionRow> = sqlx::query_as(sq::SOURCE_EARLIER)
                .bind(procedure.0)
                .fetch_all(&mut *conn)
                .await?;
            let row = procedure.0.to_string();
            let open = |mut version: SourceVersionRow| -> StoreResult<SourceVersionRow> {
                if let Some(record) = &version.record {
                    version.record = Some(cipher.open_record(Field::SourceRecord, &row, record)?);
                }
                if let Some(core) = &version.core_record {
                    version.core_record = Some(cipher.open_record(Field::CoreRecord, &row, core)?);
                }
                Ok(version)
            };
            let mut versions = Vec::new();
            if let Some(current) = current {
                versions.push(open(current)?.into_version(true));
            }
            for earlier in earlier {
                versions.push(open(earlier)?.into_version(false));
            }
            Ok(versions)
        }

        /// Commits one chunk; see the module header of `backend/submissions.rs`.
        pub(super) async fn commit_chunk(
            conn: &mut $conn,
            cipher: &FieldCipher,
            chunk: &SubmissionChunk,
            foreign_keys: sq::ForeignKeys,
        ) -> StoreResult<sq::ChunkWrite> {
            let guard: Option<(i64, String, Option<i64>)> = sqlx::query_as(
                "SELECT resume_offset, state, resolves_quarantine FROM submission_job WHERE id = $1",
            )
            .bind(chunk.job.0)
            .fetch_optional(&mut *conn)
            .await?;
            let Some((offset, state, resolves)) = guard else {
                return Err(StoreError::NotFound {
                    what: "submission job",
                });
            };
            if offset != chunk.from_offset as i64 || state != "processing" {
                return Err(StoreError::Conflict {
                    constraint: "submission_job.resume_offset".into(),
                });
            }

            let valid_ids: Vec<&str> = chunk
                .records
                .iter()
                .filter(|r| matches!(r.body, ChunkRecordBody::Valid { .. }))
                .filter_map(|r| r.local_record_id.as_deref())
                .collect();
            let existing: HashMap<String, (i64, Option<String>)> =
                super::existing_procedures(&mut *conn, chunk.organisation, &valid_ids).await?;

            let mut results: Vec<Option<ChunkRecordResult>> = vec![None; chunk.records.len()];
            let mut batch = BulkBatch::default();
            let mut batch_index = Vec::new();
            let mut corrections = Vec::new();
            for (index, record) in chunk.records.iter().enumerate() {
                match &record.body {
                    ChunkRecordBody::Rejected { .. } => {
                        results[index] = Some(ChunkRecordResult {
                            outcome: RecordOutcome::Rejected,
                            effect: RecordEffect::None,
                            procedure: None,
                            store_errors: None,
                        });
                    }
                    ChunkRecordBody::Valid {
                        prepared,
                        content_hash,
                        warnings,
                        ..
                    } => {
                        let local = prepared.submission.procedure.local_record_id.as_str();
                        let outcome = if warnings.is_some() {
                            RecordOutcome::AcceptedWithWarnings
                        } else {
                            RecordOutcome::Accepted
                        };
                        match existing.get(local) {
                            None => {
                                batch_index.push(index);
                                batch.submissions.push((**prepared).clone());
                            }
                            Some((id, Some(hash))) if hash == content_hash => {
                                results[index] = Some(ChunkRecordResult {
                                    outcome,
                                    effect: RecordEffect::Unchanged,
                                    procedure: Some(ProcedureId(*id)),
                                    store_errors: None,
                                });
                            }
                            Some((id, _)) => corrections.push((index, ProcedureId(*id))),
                        }
                    }
                }
            }

            if !corrections.is_empty() && foreign_keys == sq::ForeignKeys::Off {
                return Ok(sq::ChunkWrite::NeedsForeignKeys);
            }

            if !batch.submissions.is_empty() {
                let (outcome, ids) = super::bulk_write(&mut *conn, cipher, &batch).await?;
                for (k, &index) in batch_index.iter().enumerate() {
                    let accepted = match &chunk.records[index].body {
                        ChunkRecordBody::Valid { warnings: Some(_), .. } => {
                            RecordOutcome::AcceptedWithWarnings
                        }
                        _ => RecordOutcome::Accepted,
                    };
                    results[index] = Some(match ids[k] {
                        Some(id) => ChunkRecordResult {
                            outcome: accepted,
                            effect: RecordEffect::Created,
                            procedure: Some(id),
                            store_errors: None,
                        },
                        None if outcome.patient_mismatches.contains(&k) => refused(
                            "patient.date_of_birth",
                            "patient_details_conflict",
                            "A patient with this NHS number is registered with a different date of birth",
                        ),
                        None => refused(
                            "procedure.local_record_id",
                            "duplicate_local_record_id",
                            "This local record ID appears twice in one chunk",
                        ),
                    });
                }
            }

            for (index, procedure) in corrections {
                let record = &chunk.records[index];
                let refusal = correct(&mut *conn, cipher, chunk, record, procedure).await?;
                results[index] = Some(match refusal {
                    None => ChunkRecordResult {
                        outcome: match &record.body {
                            ChunkRecordBody::Valid { warnings: Some(_), .. } => {
                                RecordOutcome::AcceptedWithWarnings
                            }
                            _ => RecordOutcome::Accepted,
                        },
                        effect: RecordEffect::Corrected,
                        procedure: Some(procedure),
                        store_errors: None,
                    },
                    Some(errors) => ChunkRecordResult {
                        outcome: RecordOutcome::Rejected,
                        effect: RecordEffect::None,
                        procedure: None,
                        store_errors: Some(errors),
                    },
                });
            }

            let results: Vec<ChunkRecordResult> = results
                .into_iter()
                .map(|r| {
                    r.ok_or_else(|| StoreError::Corrupt("a chunk record was not decided".into()))
                })
                .collect::<StoreResult<_>>()?;

            let mut sources = Vec::new();
            let mut report = Vec::with_capacity(results.len());
            let mut counts = SubmissionCounts::default();
            let mut accepted_ids = Vec::new();
            let mut resolved_by_id = false;
            for (record, result) in chunk.records.iter().zip(&results) {
                counts.add(result.outcome, result.effect);
                let line = record.line as i64;
                let (messages, raw) = match (&record.body, &result.store_errors) {
                    (_, Some(errors)) => (Some(errors.as_str()), Some(&record.record)),
                    (ChunkRecordBody::Rejected { errors }, None) => {
                        (Some(errors.as_str()), Some(&record.record))
                    }
                    (ChunkRecordBody::Valid { warnings, .. }, None) => (warnings.as_deref(), None),
                };
                let raw = raw
                    .map(|raw| {
                        cipher.seal_packed(
                            Field::RejectedRecord,
                            &format!("{}/{line}", chunk.job.0),
                            raw,
                        )
                    })
                    .transpose()?;
                report.push(ReportRow {
                    job: chunk.job,
                    line,
                    organisation: chunk.organisation,
                    local_record_id: record.local_record_id.as_deref(),
                    outcome: result.outcome.as_str(),
                    effect: result.effect.as_str(),
                    procedure: result.procedure,
                    messages,
                    record: raw,
                });
                if result.outcome != RecordOutcome::Rejected {
                    resolved_by_id = true;
                    if let Some(local) = record.local_record_id.as_deref() {
                        accepted_ids.push(local);
                    }
                }
                if let (
                    RecordEffect::Created,
                    Some(procedure),
                    ChunkRecordBody::Valid {
                        content_hash,
                        warnings,
                        ..
                    },
                ) = (result.effect, result.procedure, &record.body)
                {
                    sources.push(SourceRow {
                        procedure,
                        registry: &chunk.registry,
                        dataset_version: &chunk.dataset_version,
                        record: cipher.seal_packed(
                            Field::SourceRecord,
                            &procedure.0.to_string(),
                            &record.record,
                        )?,
                        content_hash,
                        warnings: warnings.as_deref(),
                        job: chunk.job,
                        line,
                        organisation: chunk.organisation,
                        token: chunk.token,
                        received_at: chunk.received_at,
                    });
                }
            }
            super::insert_sources(&mut *conn, &sources).await?;
            // Resolve before inserting this chunk's own rejections, which must stay open.
            if !accepted_ids.is_empty() {
                let open: bool = sqlx::query_scalar(sq::QUARANTINE_OPEN_EXISTS)
                    .bind(chunk.organisation.0)
                    .fetch_one(&mut *conn)
                    .await?;
                if open {
                    super::resolve_quarantined(
                        &mut *conn,
                        chunk.organisation,
                        &accepted_ids,
                        chunk.job,
                        chunk.received_at,
                    )
                    .await?;
                }
            }
            if let (Some(entry), true) = (resolves, resolved_by_id) {
                sqlx::query(sq::QUARANTINE_RESOLVE_ONE)
                    .bind(entry)
                    .bind(chunk.received_at)
                    .bind(chunk.job.0)
                    .execute(&mut *conn)
                    .await?;
            }
            super::insert_report(&mut *conn, &report).await?;

            let moved = sqlx::query(sq::JOB_PROGRESS)
                .bind(chunk.job.0)
                .bind(chunk.from_offset as i64)
                .bind(chunk.to_offset as i64)
                .bind(chunk.to_line as i64)
                .bind(counts.records() as i64)
                .bind(counts.accepted as i64)
                .bind(counts.accepted_with_warnings as i64)
                .bind(counts.rejected as i64)
                .bind(counts.created as i64)
                .bind(counts.corrected as i64)
                .bind(counts.unchanged as i64)
                .execute(&mut *conn)
                .await?;
            if moved.rows_affected() != 1 {
                return Err(StoreError::Conflict {
                    constraint: "submission_job.resume_offset".into(),
                });
            }
            if chunk.last {
                sqlx::query(sq::JOB_COMPLETE)
                    .bind(chunk.job.0)
                    .bind(chunk.received_at)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(sq::ChunkWrite::Written(results))
        }

        fn refused(field: &str, code: &str, message: &str) -> ChunkRecordResult {
            ChunkRecordResult {
                outcome: RecordOutcome::Rejected,
                effect: RecordEffect::None,
                procedure: None,
                store_errors: Some(sq::store_error(field, code, message)),
            }
        }

        /// Applies a changed record to its stored procedure, keeping the previous version;
        /// returns the errors (JSON) when the change cannot be applied, having written nothing.
        async fn correct(
            conn: &mut $conn,
            cipher: &FieldCipher,
            chunk: &SubmissionChunk,
            record: &ChunkRecord,
            procedure: ProcedureId,
        ) -> StoreResult<Option<String>> {
            let ChunkRecordBody::Valid {
                prepared,
                content_hash,
                warnings,
                names_given,
            } = &record.body
            else {
                return Ok(None);
            };
            let s = &prepared.submission;
            let sealed = cipher.seal_patient(&s.patient)?;
            let (patient_id, index, date_of_birth): (i64, String, String) = sqlx::query_as(
                "SELECT p.patient_id, pt.nhs_number_index, pt.date_of_birth FROM procedure p \
                 JOIN patient pt ON pt.id = p.patient_id WHERE p.id = $1",
            )
            .bind(procedure.0)
            .fetch_one(&mut *conn)
            .await?;
            let target: Option<(i64, String)> = if index == sealed.index {
                Some((patient_id, date_of_birth))
            } else {
                sqlx::query_as(sql::PATIENT_BY_NHS)
                    .bind(&sealed.index)
                    .fetch_optional(&mut *conn)
                    .await?
            };
            let same_birth_date = match &target {
                Some((_, dob)) => {
                    open_date_of_birth(cipher, &sealed.index, dob)? == s.patient.date_of_birth
                }
                None => true,
            };
            if !same_birth_date {
                return Ok(Some(sq::store_error(
                    "patient.date_of_birth",
                    "patient_details_conflict",
                    "A patient with this NHS number is registered with a different date of birth",
                )));
            }
            let implants: Vec<(i64, String, i64)> = sqlx::query_as(sq::IMPLANT_REFERENCES)
                .bind(procedure.0)
                .fetch_all(&mut *conn)
                .await?;
            let same_devices = implants.len() == s.devices.len()
                && implants
                    .iter()
                    .zip(&s.devices)
                    .all(|((_, udi, _), device)| udi == device.udi_di.as_str());
            let referenced = implants.iter().any(|(_, _, refs)| *refs > 0);
            if referenced && !same_devices {
                return Ok(Some(sq::store_error(
                    "devices",
                    "devices_locked",
                    "The devices of this procedure have recorded removals or recall cases, so a resubmission cannot add, remove or replace devices; ask the registry to correct it",
                )));
            }
            let patient_changes = target.as_ref().map(|(id, _)| *id) != Some(patient_id);
            if referenced && patient_changes {
                return Ok(Some(sq::store_error(
                    "patient.nhs_number",
                    "patient_locked",
                    "This procedure's devices have recorded removals or recall cases, so a resubmission cannot move it to another patient; ask the registry to correct it",
                )));
            }

            let core_record = cipher.seal_record(
                Field::CoreRecord,
                &procedure.0.to_string(),
                &core_snapshot(&mut *conn, cipher, procedure).await?,
            )?;
            let sealed_record =
                cipher.seal_packed(Field::SourceRecord, &procedure.0.to_string(), &record.record)?;
            let had_source = sqlx::query(sq::SOURCE_VERSION_INSERT)
                .bind(procedure.0)
                .bind(&core_record)
                .bind(chunk.received_at)
                .bind(chunk.job.0)
                .execute(&mut *conn)
                .await?
                .rows_affected()
                == 1;
            if had_source {
                sqlx::query(sq::SOURCE_UPDATE)
                    .bind(procedure.0)
                    .bind(&chunk.registry)
                    .bind(&chunk.dataset_version)
                    .bind(&sealed_record)
                    .bind(content_hash)
                    .bind(warnings.as_deref())
                    .bind(chunk.job.0)
                    .bind(record.line as i64)
                    .bind(chunk.organisation.0)
                    .bind(chunk.token.map(|t| t.0))
                    .bind(chunk.received_at)
                    .execute(&mut *conn)
                    .await?;
            } else {
                sqlx::query(sq::API_VERSION_INSERT)
                    .bind(procedure.0)
                    .bind(&core_record)
                    .bind(chunk.received_at)
                    .bind(chunk.job.0)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(sq::SOURCE_INSERT)
                    .bind(procedure.0)
                    .bind(2_i64)
                    .bind(&chunk.registry)
                    .bind(&chunk.dataset_version)
                    .bind(&sealed_record)
                    .bind(content_hash)
                    .bind(warnings.as_deref())
                    .bind(chunk.job.0)
                    .bind(record.line as i64)
                    .bind(chunk.organisation.0)
                    .bind(chunk.token.map(|t| t.0))
                    .bind(chunk.received_at)
                    .execute(&mut *conn)
                    .await?;
            }

            let p = &s.patient;
            let patient = match target {
                Some((id, _)) => id,
                None => {
                    sqlx::query_scalar(sql::PATIENT_INSERT)
                        .bind(&sealed.nhs_number)
                        .bind(&sealed.family_name)
                        .bind(&sealed.given_name)
                        .bind(&sealed.date_of_birth)
                        .bind(p.sex.as_str())
                        .bind(&sealed.postcode)
                        .bind(chunk.received_at)
                        .bind(&sealed.index)
                        .bind(birth_month_mid(p.date_of_birth))
                        .fetch_one(&mut *conn)
                        .await?
                }
            };
            if *names_given {
                sqlx::query(sql::PATIENT_UPDATE_DEMOGRAPHICS)
                    .bind(patient)
                    .bind(&sealed.family_name)
                    .bind(&sealed.given_name)
                    .bind(p.sex.as_str())
                    .bind(&sealed.postcode)
                    .execute(&mut *conn)
                    .await?;
            } else {
                sqlx::query(sq::PATIENT_CORRECT_WITHOUT_NAMES)
                    .bind(patient)
                    .bind(p.sex.as_str())
                    .bind(&sealed.postcode)
                    .execute(&mut *conn)
                    .await?;
            }
            let q = &s.procedure;
            sqlx::query(sql::CONSULTANT_ENSURE)
                .bind(q.consultant.as_str())
                .execute(&mut *conn)
                .await?;
            let consultant: i64 = sqlx::query_scalar(sql::CONSULTANT_ID)
                .bind(q.consultant.as_str())
                .fetch_one(&mut *conn)
                .await?;
            sqlx::query(sq::PROCEDURE_CORRECT)
                .bind(procedure.0)
                .bind(patient)
                .bind(consultant)
                .bind(q.procedure_date)
                .bind(q.opcs4.as_ref().map(|c| c.code()))
                .bind(q.opcs4.as_ref().map(|c| c.version()))
                .bind(q.snomed.map(|c| c.value() as i64))
                .bind(q.laterality.as_str())
                .bind(q.registry.as_str())
                .bind(q.indication.as_ref().map(|i| i.as_str()))
                .execute(&mut *conn)
                .await?;

            let implant_ids: Vec<i64> = if same_devices {
                for ((id, _, _), (device, implant)) in
                    implants.iter().zip(s.devices.iter().zip(&prepared.implants))
                {
                    sqlx::query(sq::IMPLANT_CORRECT)
                        .bind(*id)
                        .bind(implant.device_model.map(|m| m.0))
                        .bind(&device.production.lot)
                        .bind(&device.production.serial)
                        .bind(device.production.expiry)
                        .bind(device.production.manufactured)
                        .bind(&device.raw_scan)
                        .bind(device.entry_type.as_str())
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query(
                        "DELETE FROM follow_up_flag WHERE implant_id = $1 AND resolved_at IS NULL",
                    )
                    .bind(*id)
                    .execute(&mut *conn)
                    .await?;
                }
                implants.iter().map(|(id, _, _)| *id).collect()
            } else {
                sqlx::query(
                    "DELETE FROM follow_up_flag WHERE implant_id IN \
                     (SELECT id FROM implant WHERE procedure_id = $1)",
                )
                .bind(procedure.0)
                .execute(&mut *conn)
                .await?;
                sqlx::query("DELETE FROM implant WHERE procedure_id = $1")
                    .bind(procedure.0)
                    .execute(&mut *conn)
                    .await?;
                let mut ids = Vec::with_capacity(s.devices.len());
                for (position, (device, implant)) in
                    s.devices.iter().zip(&prepared.implants).enumerate()
                {
                    let id: i64 = sqlx::query_scalar(sql::IMPLANT_INSERT)
                        .bind(procedure.0)
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
                    ids.push(id);
                }
                ids
            };
            for (id, implant) in implant_ids.iter().zip(&prepared.implants) {
                for flag in &implant.flags {
                    sqlx::query(
                        "INSERT INTO follow_up_flag (implant_id, flag, raised_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (implant_id, flag) DO NOTHING",
                    )
                    .bind(*id)
                    .bind(flag.as_str())
                    .bind(chunk.received_at)
                    .execute(&mut *conn)
                    .await?;
                }
            }
            Ok(None)
        }

        /// The core record of a procedure as it stands, as JSON text, for its version history.
        async fn core_snapshot(
            conn: &mut $conn,
            cipher: &FieldCipher,
            procedure: ProcedureId,
        ) -> StoreResult<String> {
            let row: ProcedureRow = sqlx::query_as(sql::PROCEDURE_SELECT)
                .bind(procedure.0)
                .fetch_one(&mut *conn)
                .await?;
            let implants: Vec<ImplantRow> = sqlx::query_as(sql::IMPLANTS_OF_PROCEDURE)
                .bind(procedure.0)
                .fetch_all(&mut *conn)
                .await?;
            let r = procedure_record(cipher, row, implants, Vec::new())?;
            Ok(serde_json::json!({
                "patient": {
                    "nhs_number": r.nhs_number,
                    "date_of_birth": r.date_of_birth,
                    "sex": r.sex,
                    "postcode": r.postcode,
                },
                "procedure": {
                    "provider": r.provider_ods,
                    "consultant": r.consultant_gmc,
                    "procedure_date": r.procedure_date,
                    "opcs4_code": r.opcs4_code,
                    "opcs4_version": r.opcs4_version,
                    "snomed_ct_id": r.snomed_ct_id,
                    "laterality": r.laterality,
                    "registry": r.registry,
                    "local_record_id": r.local_record_id,
                },
                "implants": r.implants,
            })
            .to_string())
        }
    };
}

pub(crate) use submission_queries;
