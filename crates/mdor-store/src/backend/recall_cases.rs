//! Recall cases and the access audit, written once for both engines: the SQL below uses only
//! what SQLite and PostgreSQL share, and `recall_case_queries!` expands the same function
//! bodies for each backend's connection type (sqlx's executor traits make one generic body
//! far harder to read than this).
//!
//! A case's criteria are stored as rows (`recall_case`, `recall_case_device`, `…_lot`,
//! `…_serial`), so finding its implants is one `INSERT … SELECT` that creating and refreshing
//! a case both run: a refresh after late submissions adds only what is new.

/// Adds every implant matching case `$1` not yet in it, stamped `$2`. Unknown production
/// identifiers match (a recall errs towards including); lots and serials match when listed
/// or inside the range.
pub(crate) const MATCH_IMPLANTS: &str = "INSERT INTO recall_case_implant \
     (case_id, implant_id, patient_id, provider_id, identified_at) \
     SELECT c.id, i.id, p.patient_id, p.provider_id, $2 \
     FROM recall_case c \
     JOIN recall_case_device d ON d.case_id = c.id \
     JOIN implant i ON i.udi_di = d.udi_di \
     JOIN procedure p ON p.id = i.procedure_id \
     WHERE c.id = $1 \
       AND (i.lot IS NULL \
            OR (c.lot_from IS NULL AND c.lot_to IS NULL \
                AND NOT EXISTS (SELECT 1 FROM recall_case_lot l WHERE l.case_id = c.id)) \
            OR EXISTS (SELECT 1 FROM recall_case_lot l WHERE l.case_id = c.id AND l.lot = i.lot) \
            OR (c.lot_from IS NOT NULL AND i.lot >= c.lot_from AND i.lot <= c.lot_to)) \
       AND (i.serial IS NULL \
            OR (c.serial_from IS NULL AND c.serial_to IS NULL \
                AND NOT EXISTS (SELECT 1 FROM recall_case_serial s WHERE s.case_id = c.id)) \
            OR EXISTS (SELECT 1 FROM recall_case_serial s WHERE s.case_id = c.id AND s.serial = i.serial) \
            OR (c.serial_from IS NOT NULL AND i.serial >= c.serial_from AND i.serial <= c.serial_to)) \
       AND (i.expiry IS NULL OR c.expiry_from IS NULL OR i.expiry >= c.expiry_from) \
       AND (i.expiry IS NULL OR c.expiry_to IS NULL OR i.expiry <= c.expiry_to) \
       AND (i.manufactured IS NULL OR c.manufactured_from IS NULL OR i.manufactured >= c.manufactured_from) \
       AND (i.manufactured IS NULL OR c.manufactured_to IS NULL OR i.manufactured <= c.manufactured_to) \
       AND (c.implanted_from IS NULL OR p.procedure_date >= c.implanted_from) \
       AND (c.implanted_to IS NULL OR p.procedure_date <= c.implanted_to) \
     ON CONFLICT (case_id, implant_id) DO NOTHING";

/// One work item per (patient, implanting provider) of case `$1` not yet listed.
pub(crate) const ADD_ENTRIES: &str = "INSERT INTO recall_case_patient \
     (case_id, patient_id, provider_id, status, status_at) \
     SELECT DISTINCT case_id, patient_id, provider_id, 'identified', $2 \
     FROM recall_case_implant WHERE case_id = $1 \
     ON CONFLICT (case_id, patient_id, provider_id) DO NOTHING";

pub(crate) const CASE_INSERT: &str = "INSERT INTO recall_case \
     (reference, title, reason, opened_by, opened_at, lot_from, lot_to, serial_from, serial_to, \
      expiry_from, expiry_to, manufactured_from, manufactured_to, implanted_from, implanted_to) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id";

pub(crate) const CASE_SELECT: &str = "SELECT c.id, c.reference, c.title, c.reason, \
       o.ods_code AS opened_by, c.opened_at, c.lot_from, c.lot_to, c.serial_from, c.serial_to, \
       c.expiry_from, c.expiry_to, c.manufactured_from, c.manufactured_to, \
       c.implanted_from, c.implanted_to \
     FROM recall_case c JOIN organisation o ON o.id = c.opened_by";

pub(crate) const CASE_WORK: &str = "SELECT o.ods_code, o.name, e.status, COUNT(*) AS patients \
     FROM recall_case_patient e JOIN organisation o ON o.id = e.provider_id \
     WHERE e.case_id = $1 GROUP BY o.ods_code, o.name, e.status ORDER BY o.ods_code, e.status";

pub(crate) const ENTRIES_PAGE: &str = "SELECT e.id, e.status, e.status_at, \
       o.ods_code AS provider_ods, o.name AS provider_name, pt.nhs_number_index, pt.nhs_number, \
       pt.family_name, pt.given_name, pt.date_of_birth, pt.postcode, pt.date_of_death, \
       e.patient_id \
     FROM recall_case_patient e \
     JOIN patient pt ON pt.id = e.patient_id \
     JOIN organisation o ON o.id = e.provider_id \
     WHERE e.case_id = $1 AND ($2 IS NULL OR e.provider_id = $2) AND e.id > $3 \
     ORDER BY e.id LIMIT $4";

/// The implants behind work items `$3 < id <= $4` of case `$1` (and provider `$2`).
pub(crate) const ENTRY_IMPLANTS: &str = "SELECT e.id AS entry_id, i.id AS implant_id, \
       p.id AS procedure_id, p.procedure_date, p.local_record_id, i.udi_di, i.lot, i.serial, \
       i.expiry, r.removal_date \
     FROM recall_case_patient e \
     JOIN recall_case_implant ci ON ci.case_id = e.case_id AND ci.patient_id = e.patient_id \
          AND ci.provider_id = e.provider_id \
     JOIN implant i ON i.id = ci.implant_id \
     JOIN procedure p ON p.id = i.procedure_id \
     LEFT JOIN removal r ON r.implant_id = i.id \
     WHERE e.case_id = $1 AND ($2 IS NULL OR e.provider_id = $2) AND e.id > $3 AND e.id <= $4 \
     ORDER BY e.id, i.id";

pub(crate) const AUDIT_INSERT: &str = "INSERT INTO audit_event \
     (at, organisation_id, role, token_id, action, resource, patient_id, record_count, purpose, \
      outcome, seq, leaf_hash, account_id, request_id, detail_digest) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";

/// One patient's accesses on PostgreSQL: entries about them alone, and multi-patient reads
/// that named them (`audit_named_patient`). A union of two index lookups, not an `OR`, so that
/// neither engine is tempted to scan the whole audit. SQLite keeps its by-patient index in a
/// file of its own and reads the newest entries by position (`named_index.rs`).
pub(crate) const PATIENT_ACCESS: &str = "SELECT a.at, o.ods_code AS organisation_ods, \
       o.name AS organisation_name, a.role, a.action, a.purpose, a.outcome, a.record_count, \
       (SELECT count(*) FROM audit_named_patient ap WHERE ap.audit_seq = a.seq) AS patients_named \
     FROM audit_event a JOIN organisation o ON o.id = a.organisation_id \
     WHERE a.seq IN (SELECT seq FROM audit_event WHERE patient_id = $1 \
                     UNION SELECT audit_seq FROM audit_named_patient WHERE patient_id = $1) \
     ORDER BY a.seq";

pub(crate) const CHECKPOINT_INSERT: &str = "INSERT INTO audit_checkpoint \
     (tree_size, root_hash, created_at, key_name, note) VALUES ($1, $2, $3, $4, $5)";

pub(crate) const CHECKPOINT_LATEST: &str = "SELECT id, tree_size, root_hash, created_at, \
       key_name, note FROM audit_checkpoint ORDER BY tree_size DESC, id DESC LIMIT 1";

pub(crate) const AUDIT_SELECT: &str = "SELECT a.id, a.at, o.ods_code AS organisation_ods, a.role, \
       a.token_id, a.action, a.resource, a.patient_id, a.record_count, a.purpose, a.outcome, \
       a.request_id \
     FROM audit_event a JOIN organisation o ON o.id = a.organisation_id \
     WHERE a.id > $1 ORDER BY a.id LIMIT $2";

/// Expands, inside a backend module, the recall-case and audit functions for `$conn`.
/// `$audit_lock` is the statement (if any) that serialises audit writers until commit, so
/// that each entry's `seq` is the previous one plus one: SQLite's `BEGIN IMMEDIATE` already
/// holds the only write lock; PostgreSQL takes a transaction-level advisory lock.
macro_rules! recall_case_queries {
    ($conn:ty, $audit_lock:expr, $named_patients_insert:expr) => {
        use $crate::backend::recall_cases as rc;
        use $crate::rows::{
            AuditCheckpointRow, AuditEventRow, RecallCaseRow,
            RecallEntryImplantRow, RecallEntryRow,
        };

        /// Appends `event` to the log as its next leaf and returns its position; a
        /// break-glass access raises its review item (holding the sealed reason the entry's
        /// leaf commits to) in the same transaction, naming the entry's position, so that
        /// neither exists without the other.
        pub(super) async fn insert_audit(
            conn: &mut $conn,
            event: &NewAuditEvent,
        ) -> StoreResult<u64> {
            let seq = insert_audit_entry(conn, |seq| AuditLogEntry::appended(seq, event)).await?;
            if let Some(reason) = &event.break_glass {
                sqlx::query($crate::backend::access_reviews::REVIEW_INSERT)
                    .bind(seq as i64)
                    .bind(event.account.map(|a| a.0))
                    .bind(&reason.sealed)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(seq)
        }

        /// Appends the entry `entry_at` builds for the next position, under the audit write
        /// lock, and returns that position; shared by data-access and authentication events.
        pub(super) async fn insert_audit_entry(
            conn: &mut $conn,
            entry_at: impl FnOnce(u64) -> AuditLogEntry,
        ) -> StoreResult<u64> {
            let lock: Option<&str> = $audit_lock;
            if let Some(lock) = lock {
                sqlx::query(lock).execute(&mut *conn).await?;
            }
            let last: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit_event")
                .fetch_one(&mut *conn)
                .await?;
            let seq = last.unwrap_or(0) as u64 + 1;
            let entry = entry_at(seq);
            let leaf = $crate::audit_log::leaf_hash(&entry);
            sqlx::query(rc::AUDIT_INSERT)
                .bind(entry.at)
                .bind(entry.organisation.0)
                .bind(&entry.role)
                .bind(entry.token.map(|t| t.0))
                .bind(&entry.action)
                .bind(&entry.resource)
                .bind(entry.patient.map(|p| p.0))
                .bind(entry.record_count as i64)
                .bind(&entry.purpose)
                .bind(&entry.outcome)
                .bind(entry.seq as i64)
                .bind(&leaf[..])
                .bind(entry.account.map(|a| a.0))
                .bind(entry.request_id.as_deref())
                .bind(entry.detail_digest.as_deref())
                .execute(&mut *conn)
                .await?;
            // The patients of a multi-patient read, as one JSON array in one statement whose
            // text never changes: a text per row count would be prepared afresh for most
            // reads, and a read's latency waits for this transaction.
            if !entry.patients.is_empty() {
                let ids: Vec<i64> = entry.patients.iter().map(|p| p.0).collect();
                let ids = serde_json::to_string(&ids).map_err(|e| {
                    $crate::StoreError::Corrupt(format!("audit entry patients: {e}"))
                })?;
                let insert: &str = $named_patients_insert;
                sqlx::query(insert)
                    .bind(entry.seq as i64)
                    .bind(ids)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(seq)
        }

        pub(super) async fn insert_checkpoint(
            conn: &mut $conn,
            checkpoint: &NewAuditCheckpoint,
        ) -> StoreResult<()> {
            sqlx::query(rc::CHECKPOINT_INSERT)
                .bind(checkpoint.tree_size as i64)
                .bind(&checkpoint.root_hash[..])
                .bind(checkpoint.created_at)
                .bind(&checkpoint.key_name)
                .bind(&checkpoint.note)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        pub(super) async fn latest_checkpoint(
            conn: &mut $conn,
        ) -> StoreResult<Option<AuditCheckpoint>> {
            let row: Option<AuditCheckpointRow> = sqlx::query_as(rc::CHECKPOINT_LATEST)
                .fetch_optional(&mut *conn)
                .await?;
            row.map(AuditCheckpoint::try_from).transpose()
        }

        pub(super) async fn create_case(
            conn: &mut $conn,
            case: &NewRecallCase,
            audit: &NewAuditEvent,
        ) -> StoreResult<(RecallCaseId, RecallCaseGrowth)> {
            let c = &case.criteria;
            let range = |r: &Option<(String, String)>| {
                r.as_ref()
                    .map(|(a, b)| (Some(a.clone()), Some(b.clone())))
                    .unwrap_or((None, None))
            };
            let (lot_from, lot_to) = range(&c.lot_range);
            let (serial_from, serial_to) = range(&c.serial_range);
            let id: i64 = sqlx::query_scalar(rc::CASE_INSERT)
                .bind(&case.reference)
                .bind(&case.title)
                .bind(&case.reason)
                .bind(case.opened_by.0)
                .bind(case.opened_at)
                .bind(lot_from)
                .bind(lot_to)
                .bind(serial_from)
                .bind(serial_to)
                .bind(c.expiry_from)
                .bind(c.expiry_to)
                .bind(c.manufactured_from)
                .bind(c.manufactured_to)
                .bind(c.implanted_from)
                .bind(c.implanted_to)
                .fetch_one(&mut *conn)
                .await?;
            for udi in &c.udi_dis {
                sqlx::query("INSERT INTO recall_case_device (case_id, udi_di) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(id)
                    .bind(udi)
                    .execute(&mut *conn)
                    .await?;
            }
            for lot in &c.lots {
                sqlx::query("INSERT INTO recall_case_lot (case_id, lot) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(id)
                    .bind(lot)
                    .execute(&mut *conn)
                    .await?;
            }
            for serial in &c.serials {
                sqlx::query("INSERT INTO recall_case_serial (case_id, serial) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(id)
                    .bind(serial)
                    .execute(&mut *conn)
                    .await?;
            }
            let id = RecallCaseId(id);
            let growth = grow_case(conn, id, audit.at).await?;
            let mut audit = audit.clone();
            audit.resource = format!("recall_case/{id}");
            audit.record_count = growth.patients;
            insert_audit(conn, &audit).await?;
            Ok((id, growth))
        }

        /// Adds newly matching implants and their work items, stamped `at`.
        pub(super) async fn grow_case(
            conn: &mut $conn,
            id: RecallCaseId,
            at: chrono::DateTime<chrono::Utc>,
        ) -> StoreResult<RecallCaseGrowth> {
            let implants = sqlx::query(rc::MATCH_IMPLANTS)
                .bind(id.0)
                .bind(at)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            let patients = sqlx::query(rc::ADD_ENTRIES)
                .bind(id.0)
                .bind(at)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            Ok(RecallCaseGrowth { implants, patients })
        }

        pub(super) async fn refresh_case(
            conn: &mut $conn,
            id: RecallCaseId,
            audit: &NewAuditEvent,
        ) -> StoreResult<Option<RecallCaseGrowth>> {
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM recall_case WHERE id = $1)")
                    .bind(id.0)
                    .fetch_one(&mut *conn)
                    .await?;
            if !exists {
                return Ok(None);
            }
            let growth = grow_case(conn, id, audit.at).await?;
            let mut audit = audit.clone();
            audit.record_count = growth.patients;
            insert_audit(conn, &audit).await?;
            Ok(Some(growth))
        }

        pub(super) async fn case(
            conn: &mut $conn,
            id: RecallCaseId,
        ) -> StoreResult<Option<RecallCase>> {
            let row: Option<RecallCaseRow> =
                sqlx::query_as(&format!("{} WHERE c.id = $1", rc::CASE_SELECT))
                    .bind(id.0)
                    .fetch_optional(&mut *conn)
                    .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let list = |table: &str, column: &str| {
                format!("SELECT {column} FROM {table} WHERE case_id = $1 ORDER BY {column}")
            };
            let udi_dis: Vec<String> = sqlx::query_scalar(&list("recall_case_device", "udi_di"))
                .bind(id.0)
                .fetch_all(&mut *conn)
                .await?;
            let lots: Vec<String> = sqlx::query_scalar(&list("recall_case_lot", "lot"))
                .bind(id.0)
                .fetch_all(&mut *conn)
                .await?;
            let serials: Vec<String> = sqlx::query_scalar(&list("recall_case_serial", "serial"))
                .bind(id.0)
                .fetch_all(&mut *conn)
                .await?;
            let implants: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM recall_case_implant WHERE case_id = $1")
                    .bind(id.0)
                    .fetch_one(&mut *conn)
                    .await?;
            let work: Vec<(String, String, String, i64)> = sqlx::query_as(rc::CASE_WORK)
                .bind(id.0)
                .fetch_all(&mut *conn)
                .await?;
            let work = work
                .into_iter()
                .map(|(provider_ods, provider_name, status, patients)| {
                    Ok(RecallWorkCount {
                        provider_ods,
                        provider_name,
                        status: crate::rows::recall_status(&status)?,
                        patients: patients as u64,
                    })
                })
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(Some(row.into_case(udi_dis, lots, serials, implants as u64, work)))
        }

        pub(super) async fn entries(
            conn: &mut $conn,
            cipher: &$crate::field_crypto::FieldCipher,
            query: &RecallWorkQuery,
            audit: &NewAuditEvent,
        ) -> StoreResult<Vec<RecallEntry>> {
            let provider = query.provider.map(|p| p.0);
            let after = query.after.map(|a| a.0).unwrap_or(0);
            let rows: Vec<RecallEntryRow> = sqlx::query_as(rc::ENTRIES_PAGE)
                .bind(query.case_id.0)
                .bind(provider)
                .bind(after)
                .bind(i64::from(query.limit))
                .fetch_all(&mut *conn)
                .await?;
            let mut entries = crate::rows::open_all(rows, |row| row.open(cipher))?;
            if let Some(last) = entries.last().map(|e| e.id.0) {
                let implants: Vec<RecallEntryImplantRow> = sqlx::query_as(rc::ENTRY_IMPLANTS)
                    .bind(query.case_id.0)
                    .bind(provider)
                    .bind(after)
                    .bind(last)
                    .fetch_all(&mut *conn)
                    .await?;
                let mut at = 0;
                for implant in implants {
                    while entries[at].id.0 != implant.entry_id {
                        at += 1;
                    }
                    entries[at].implants.push(implant.into());
                }
            }
            let mut audit = audit.clone();
            audit.record_count = entries.len() as u64;
            audit.patients = entries.iter().map(|e| e.patient).collect();
            insert_audit(conn, &audit).await?;
            Ok(entries)
        }

        pub(super) async fn entry_state(
            conn: &mut $conn,
            case_id: RecallCaseId,
            entry: RecallEntryId,
        ) -> StoreResult<Option<RecallEntryState>> {
            let row: Option<(i64, String)> = sqlx::query_as(
                "SELECT provider_id, status FROM recall_case_patient WHERE id = $1 AND case_id = $2",
            )
            .bind(entry.0)
            .bind(case_id.0)
            .fetch_optional(&mut *conn)
            .await?;
            row.map(|(provider, status)| {
                Ok(RecallEntryState {
                    provider: OrganisationId(provider),
                    status: crate::rows::recall_status(&status)?,
                })
            })
            .transpose()
        }

        pub(super) async fn set_status(
            conn: &mut $conn,
            change: &RecallStatusChange,
            audit: &NewAuditEvent,
        ) -> StoreResult<bool> {
            let updated = sqlx::query(
                "UPDATE recall_case_patient SET status = $1, status_at = $2 \
                 WHERE id = $3 AND case_id = $4 AND status = $5",
            )
            .bind(change.to.as_str())
            .bind(change.at)
            .bind(change.entry.0)
            .bind(change.case_id.0)
            .bind(change.from.as_str())
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if updated == 0 {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO recall_case_event \
                 (case_patient_id, status, note, at, by_organisation, by_role) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(change.entry.0)
            .bind(change.to.as_str())
            .bind(change.note.as_deref())
            .bind(change.at)
            .bind(change.by_organisation.0)
            .bind(change.by_role)
            .execute(&mut *conn)
            .await?;
            insert_audit(conn, audit).await?;
            Ok(true)
        }

        pub(super) async fn audit_events(
            conn: &mut $conn,
            after: Option<AuditEventId>,
            limit: u32,
        ) -> StoreResult<Vec<AuditEvent>> {
            let rows: Vec<AuditEventRow> = sqlx::query_as(rc::AUDIT_SELECT)
                .bind(after.map(|a| a.0).unwrap_or(0))
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await?;
            Ok(rows.into_iter().map(AuditEvent::from).collect())
        }
    };
}

pub(crate) use recall_case_queries;
