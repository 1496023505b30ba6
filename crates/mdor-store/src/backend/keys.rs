//! The identifier data keys of a database (`crate::field_crypto`): loaded and unwrapped once
//! per store, created on first use, re-wrapped under a new key-encryption key and rotated by
//! `mdor keys rotate`; and sealing patients written before encryption. Written once for both
//! engines (see `recall_cases` for why a macro expands the same bodies per connection type).

use std::sync::{Arc, RwLock};

use crate::StoreResult;
use crate::error::StoreError;
use crate::field_crypto::{FieldCipher, KeyEncryptionKey};

/// Patients sealed or re-sealed per transaction by rotation and by sealing legacy rows: small
/// enough that a crash loses little work, large enough that the fsync per batch is cheap.
pub(crate) const RESEAL_BATCH: i64 = 2_000;

/// The tables holding raw input or core records, sealed whole (`Field::SourceRecord`, …).
#[derive(Debug, Clone, Copy)]
pub(crate) enum RecordTable {
    Source,
    Version,
    Rejected,
}

impl RecordTable {
    pub const ALL: [RecordTable; 3] = [
        RecordTable::Source,
        RecordTable::Version,
        RecordTable::Rejected,
    ];
}

/// A store's key-encryption key and, once loaded, its unwrapped data keys.
pub(crate) struct KeySlot {
    /// Replaced when `mdor keys rotate` re-wraps the data keys under a new one.
    kek: RwLock<Option<KeyEncryptionKey>>,
    cipher: RwLock<Option<Arc<FieldCipher>>>,
}

impl KeySlot {
    pub fn new(kek: Option<KeyEncryptionKey>) -> KeySlot {
        KeySlot {
            kek: RwLock::new(kek),
            cipher: RwLock::new(None),
        }
    }

    pub fn kek(&self) -> StoreResult<KeyEncryptionKey> {
        self.kek.read().ok().and_then(|k| k.clone()).ok_or_else(|| {
            StoreError::Keys(
                "no key-encryption key is configured (keys.kek_file or MDOR_KEYS__KEK); \
                 patient identifiers cannot be read or written without it"
                    .into(),
            )
        })
    }

    pub fn has_kek(&self) -> bool {
        self.kek.read().is_ok_and(|k| k.is_some())
    }

    pub fn set_kek(&self, kek: KeyEncryptionKey) {
        if let Ok(mut slot) = self.kek.write() {
            *slot = Some(kek);
        }
    }

    pub fn cached(&self) -> Option<Arc<FieldCipher>> {
        self.cipher.read().ok().and_then(|c| c.clone())
    }

    pub fn replace(&self, cipher: Arc<FieldCipher>) {
        if let Ok(mut slot) = self.cipher.write() {
            *slot = Some(cipher);
        }
    }
}

/// One `data_key` row.
#[derive(sqlx::FromRow)]
pub(crate) struct DataKeyRow {
    pub id: i64,
    pub purpose: String,
    pub kek_id: String,
    pub wrapped: String,
}

/// Unwraps every data key: the retired ones too, so that a value a running server sealed
/// under an old key while `mdor keys rotate` ran still opens.
pub(crate) fn unwrap_keys(kek: &KeyEncryptionKey, rows: &[DataKeyRow]) -> StoreResult<FieldCipher> {
    let mut field = Vec::new();
    let mut blind = None;
    for row in rows {
        if row.kek_id != kek.id() {
            return Err(StoreError::Keys(format!(
                "data key {} is wrapped by key-encryption key {}, but the configured one is {}",
                row.id,
                row.kek_id,
                kek.id()
            )));
        }
        let key = kek.unwrap(row.id, &row.purpose, &row.wrapped)?;
        match row.purpose.as_str() {
            "field" => field.push((row.id, key)),
            "blind_index" => blind = Some(key),
            // A research project's pseudonym key, unwrapped when its extract is read.
            "research" => {}
            other => return Err(StoreError::Corrupt(format!("data_key purpose {other}"))),
        }
    }
    let blind = blind.ok_or_else(|| StoreError::Keys("no blind-index key".into()))?;
    FieldCipher::new(field, blind)
}

/// Expands, inside a backend module, the key queries for `$conn`. Each runs inside a write
/// transaction the caller has begun (and, on PostgreSQL, locked `data_key` in).
macro_rules! key_queries {
    ($conn:ty, $now:ty) => {
        use $crate::backend::keys::{DataKeyRow, unwrap_keys};
        use $crate::field_crypto::{FieldCipher, KeyEncryptionKey, new_data_key};

        const SELECT_KEYS: &str =
            "SELECT id, purpose, kek_id, wrapped FROM data_key ORDER BY id";

        pub(super) async fn insert_key(
            conn: &mut $conn,
            kek: &KeyEncryptionKey,
            purpose: &str,
            now: $now,
        ) -> StoreResult<i64> {
            let id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM data_key")
                .fetch_one(&mut *conn)
                .await?;
            sqlx::query(
                "INSERT INTO data_key (id, purpose, kek_id, wrapped, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(purpose)
            .bind(kek.id())
            .bind(kek.wrap(id, purpose, &new_data_key())?)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            Ok(id)
        }

        /// The database's keys, creating the first field and blind-index keys if there are none.
        pub(super) async fn load_or_create_keys(
            conn: &mut $conn,
            kek: &KeyEncryptionKey,
            now: $now,
        ) -> StoreResult<FieldCipher> {
            let mut rows: Vec<DataKeyRow> =
                sqlx::query_as(SELECT_KEYS).fetch_all(&mut *conn).await?;
            let mut created = false;
            for purpose in ["blind_index", "field"] {
                if !rows.iter().any(|r| r.purpose == purpose) {
                    insert_key(conn, kek, purpose, now).await?;
                    created = true;
                }
            }
            if created {
                rows = sqlx::query_as(SELECT_KEYS).fetch_all(&mut *conn).await?;
            }
            unwrap_keys(kek, &rows)
        }

        /// Re-wraps every data key not yet under `new_kek` (all in the caller's
        /// transaction); returns the keys.
        pub(super) async fn rewrap_keys(
            conn: &mut $conn,
            old_kek: &KeyEncryptionKey,
            new_kek: &KeyEncryptionKey,
        ) -> StoreResult<FieldCipher> {
            let rows: Vec<DataKeyRow> = sqlx::query_as(SELECT_KEYS).fetch_all(&mut *conn).await?;
            for row in &rows {
                if row.kek_id == new_kek.id() {
                    continue;
                }
                if row.kek_id != old_kek.id() {
                    return Err(StoreError::Keys(format!(
                        "data key {} is wrapped by key-encryption key {}, neither the old ({}) nor the new ({})",
                        row.id,
                        row.kek_id,
                        old_kek.id(),
                        new_kek.id()
                    )));
                }
                let key = old_kek.unwrap(row.id, &row.purpose, &row.wrapped)?;
                sqlx::query("UPDATE data_key SET kek_id = $2, wrapped = $3 WHERE id = $1")
                    .bind(row.id)
                    .bind(new_kek.id())
                    .bind(new_kek.wrap(row.id, &row.purpose, &key)?)
                    .execute(&mut *conn)
                    .await?;
            }
            let rows: Vec<DataKeyRow> = sqlx::query_as(SELECT_KEYS).fetch_all(&mut *conn).await?;
            unwrap_keys(new_kek, &rows)
        }

        /// Adds a new current field key; returns the keys.
        pub(super) async fn add_field_key(
            conn: &mut $conn,
            kek: &KeyEncryptionKey,
            now: $now,
        ) -> StoreResult<FieldCipher> {
            insert_key(conn, kek, "field", now).await?;
            let rows: Vec<DataKeyRow> = sqlx::query_as(SELECT_KEYS).fetch_all(&mut *conn).await?;
            unwrap_keys(kek, &rows)
        }

        /// Marks every field key but the current one retired: nothing is sealed under them.
        pub(super) async fn retire_old_field_keys(
            conn: &mut $conn,
            current: i64,
            now: $now,
        ) -> StoreResult<u64> {
            Ok(sqlx::query(
                "UPDATE data_key SET retired_at = $2 \
                 WHERE purpose = 'field' AND id <> $1 AND retired_at IS NULL",
            )
            .bind(current)
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected())
        }

        /// The next `RESEAL_BATCH` patients after `after` that are plaintext (no blind index
        /// yet) or sealed under another key than the current one: id, index, nhs_number,
        /// family_name, given_name, date_of_birth, postcode.
        pub(super) async fn patients_to_reseal(
            conn: &mut $conn,
            after: i64,
        ) -> StoreResult<Vec<$crate::backend::keys::PatientSealRow>> {
            Ok(sqlx::query_as(
                "SELECT id, nhs_number_index, nhs_number, family_name, given_name, \
                   CAST(date_of_birth AS TEXT) AS date_of_birth, postcode \
                 FROM patient WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(after)
            .bind($crate::backend::keys::RESEAL_BATCH)
            .fetch_all(&mut *conn)
            .await?)
        }

        pub(super) async fn write_resealed(
            conn: &mut $conn,
            id: i64,
            sealed: &$crate::field_crypto::SealedPatient,
        ) -> StoreResult<()> {
            sqlx::query(
                "UPDATE patient SET nhs_number_index = $2, nhs_number = $3, family_name = $4, \
                   given_name = $5, date_of_birth = $6, postcode = $7 WHERE id = $1",
            )
            .bind(id)
            .bind(&sealed.index)
            .bind(&sealed.nhs_number)
            .bind(&sealed.family_name)
            .bind(&sealed.given_name)
            .bind(&sealed.date_of_birth)
            .bind(&sealed.postcode)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        /// The next `RESEAL_BATCH` stored idempotency answers after (`token`, `key`): token,
        /// key and body (sealed or, from before encryption, plain).
        pub(super) async fn idempotency_to_reseal(
            conn: &mut $conn,
            token: i64,
            key: &str,
        ) -> StoreResult<Vec<(i64, String, String)>> {
            Ok(sqlx::query_as(
                "SELECT token_id, idempotency_key, response_body FROM idempotency_key \
                 WHERE token_id > $1 OR (token_id = $1 AND idempotency_key > $2) \
                 ORDER BY token_id, idempotency_key LIMIT $3",
            )
            .bind(token)
            .bind(key)
            .bind($crate::backend::keys::RESEAL_BATCH)
            .fetch_all(&mut *conn)
            .await?)
        }

        /// Seals the next batch of patients after id `after` that are plain or under an older
        /// key; returns the last id read (`None` when there were no more) and how many were
        /// written.
        pub(super) async fn reseal_patient_batch(
            conn: &mut $conn,
            cipher: &FieldCipher,
            after: i64,
        ) -> StoreResult<(Option<i64>, u64)> {
            let rows = patients_to_reseal(&mut *conn, after).await?;
            let mut written = 0;
            for row in &rows {
                if let Some(sealed) = row.resealed(cipher)? {
                    write_resealed(&mut *conn, row.id, &sealed).await?;
                    written += 1;
                }
            }
            Ok((rows.last().map(|r| r.id), written))
        }

        /// As `reseal_patient_batch`, for stored idempotency answers.
        pub(super) async fn reseal_idempotency_batch(
            conn: &mut $conn,
            cipher: &FieldCipher,
            after: &(i64, String),
        ) -> StoreResult<(Option<(i64, String)>, u64)> {
            let rows = idempotency_to_reseal(&mut *conn, after.0, &after.1).await?;
            let mut written = 0;
            for (token, key, body) in &rows {
                if let Some(sealed) =
                    $crate::backend::keys::resealed_response(cipher, *token, key, body)?
                {
                    write_idempotency_body(&mut *conn, *token, key, &sealed).await?;
                    written += 1;
                }
            }
            Ok((rows.last().map(|(t, k, _)| (*t, k.clone())), written))
        }

        /// Seals the next batch of raw and core records (procedure sources, earlier versions,
        /// rejected records) after the `after` key of `table`; returns the last key read and how
        /// many values were written.
        pub(super) async fn reseal_record_batch(
            conn: &mut $conn,
            cipher: &FieldCipher,
            table: $crate::backend::keys::RecordTable,
            after: (i64, i64),
        ) -> StoreResult<(Option<(i64, i64)>, u64)> {
            use $crate::backend::keys::RecordTable;
            use $crate::field_crypto::Field;
            let select = match table {
                RecordTable::Source => {
                    "SELECT procedure_id, CAST(0 AS BIGINT) AS k2, procedure_id AS owner, record, \
                       CAST(NULL AS TEXT) AS core \
                     FROM procedure_source WHERE procedure_id > $1 OR (procedure_id = $1 AND $2 < 0) \
                     ORDER BY procedure_id LIMIT $3"
                }
                RecordTable::Version => {
                    "SELECT procedure_id, version AS k2, procedure_id AS owner, record, core_record AS core \
                     FROM procedure_version WHERE procedure_id > $1 OR (procedure_id = $1 AND version > $2) \
                     ORDER BY procedure_id, version LIMIT $3"
                }
                RecordTable::Rejected => {
                    "SELECT id AS procedure_id, CAST(0 AS BIGINT) AS k2, job_id AS owner, record, \
                       CAST(line AS TEXT) AS core \
                     FROM submission_record WHERE (id > $1 OR (id = $1 AND $2 < 0)) \
                       AND record IS NOT NULL ORDER BY id LIMIT $3"
                }
            };
            let rows: Vec<(i64, i64, i64, Option<String>, Option<String>)> = sqlx::query_as(select)
                .bind(after.0)
                .bind(after.1)
                .bind($crate::backend::keys::RESEAL_BATCH)
                .fetch_all(&mut *conn)
                .await?;
            let mut written = 0;
            for (k1, k2, owner, record, core) in &rows {
                match table {
                    RecordTable::Source | RecordTable::Version => {
                        let row = owner.to_string();
                        let record = match record {
                            Some(r) => cipher.resealed_record(Field::SourceRecord, &row, r)?,
                            None => None,
                        };
                        let core = match (table, core) {
                            (RecordTable::Version, Some(c)) => {
                                cipher.resealed_record(Field::CoreRecord, &row, c)?
                            }
                            _ => None,
                        };
                        if record.is_none() && core.is_none() {
                            continue;
                        }
                        if matches!(table, RecordTable::Source) {
                            sqlx::query("UPDATE procedure_source SET record = $2 WHERE procedure_id = $1")
                                .bind(k1)
                                .bind(record)
                                .execute(&mut *conn)
                                .await?;
                        } else {
                            sqlx::query(
                                "UPDATE procedure_version SET record = COALESCE($3, record), \
                                   core_record = COALESCE($4, core_record) \
                                 WHERE procedure_id = $1 AND version = $2",
                            )
                            .bind(k1)
                            .bind(k2)
                            .bind(record)
                            .bind(core)
                            .execute(&mut *conn)
                            .await?;
                        }
                    }
                    RecordTable::Rejected => {
                        let (Some(record), Some(line)) = (record, core) else {
                            continue;
                        };
                        let at = format!("{owner}/{line}");
                        let Some(sealed) = cipher.resealed_record(Field::RejectedRecord, &at, record)?
                        else {
                            continue;
                        };
                        sqlx::query("UPDATE submission_record SET record = $2 WHERE id = $1")
                            .bind(k1)
                            .bind(sealed)
                            .execute(&mut *conn)
                            .await?;
                    }
                }
                written += 1;
            }
            Ok((rows.last().map(|r| (r.0, r.1)), written))
        }

        /// Moves the next batch of sealed break-glass reasons and review decisions after review
        /// `after` to the current key, each for the digest of its audit entry (those recorded
        /// before 0024, in clear with no commitment, stay as they are); returns the last id
        /// read and how many values were written.
        pub(super) async fn reseal_review_batch(
            conn: &mut $conn,
            cipher: &FieldCipher,
            after: i64,
        ) -> StoreResult<(Option<i64>, u64)> {
            use $crate::field_crypto::Field;
            let rows: Vec<(i64, String, Option<Vec<u8>>, Option<String>, Option<Vec<u8>>)> =
                sqlx::query_as(
                    "SELECT r.id, r.reason, a.detail_digest, r.decision_note, de.detail_digest \
                     FROM access_review r \
                     JOIN audit_event a ON a.seq = r.audit_seq \
                     LEFT JOIN audit_event de ON de.seq = r.decision_seq \
                     WHERE r.id > $1 ORDER BY r.id LIMIT $2",
                )
                .bind(after)
                .bind($crate::backend::keys::RESEAL_BATCH)
                .fetch_all(&mut *conn)
                .await?;
            let mut written = 0;
            for (id, reason, reason_digest, note, decision_digest) in &rows {
                let details = [
                    (
                        Field::BreakGlassReason,
                        reason_digest,
                        Some(reason),
                        "UPDATE access_review SET reason = $2 WHERE id = $1",
                    ),
                    (
                        Field::ReviewDecision,
                        decision_digest,
                        note.as_ref(),
                        "UPDATE access_review SET decision_note = $2 WHERE id = $1",
                    ),
                ];
                for (field, digest, sealed, update) in details {
                    let (Some(digest), Some(sealed)) = (digest, sealed) else {
                        continue;
                    };
                    if let Some(resealed) = cipher.resealed_detail(field, digest, sealed)? {
                        sqlx::query(update)
                            .bind(id)
                            .bind(resealed)
                            .execute(&mut *conn)
                            .await?;
                        written += 1;
                    }
                }
            }
            Ok((rows.last().map(|r| r.0), written))
        }

        /// Raw and core records stored before encryption (sealed ones start `c`, or `k` when
        /// sealed before records were packed).
        pub(super) async fn plain_records(conn: &mut $conn) -> StoreResult<i64> {
            Ok(sqlx::query_scalar(
                "SELECT (SELECT COUNT(*) FROM procedure_source \
                          WHERE record NOT LIKE 'c%' AND record NOT LIKE 'k%') \
                   + (SELECT COUNT(*) FROM procedure_version \
                      WHERE (record NOT LIKE 'c%' AND record NOT LIKE 'k%') \
                         OR (core_record NOT LIKE 'c%' AND core_record NOT LIKE 'k%')) \
                   + (SELECT COUNT(*) FROM submission_record \
                      WHERE record NOT LIKE 'c%' AND record NOT LIKE 'k%')",
            )
            .fetch_one(&mut *conn)
            .await?)
        }

        /// How many field keys are not retired: more than one means a rotation is unfinished.
        pub(super) async fn live_field_keys(conn: &mut $conn) -> StoreResult<i64> {
            Ok(sqlx::query_scalar(
                "SELECT COUNT(*) FROM data_key WHERE purpose = 'field' AND retired_at IS NULL",
            )
            .fetch_one(&mut *conn)
            .await?)
        }

        /// Stored create answers written before encryption (a sealed one starts `k`).
        pub(super) async fn plain_answers(conn: &mut $conn) -> StoreResult<i64> {
            Ok(sqlx::query_scalar(
                "SELECT COUNT(*) FROM idempotency_key WHERE response_body NOT LIKE 'k%'",
            )
            .fetch_one(&mut *conn)
            .await?)
        }

        /// Patients whose identifiers predate encryption.
        pub(super) async fn plain_patients(conn: &mut $conn) -> StoreResult<i64> {
            Ok(
                sqlx::query_scalar("SELECT COUNT(*) FROM patient WHERE nhs_number_index IS NULL")
                    .fetch_one(&mut *conn)
                    .await?,
            )
        }

        pub(super) async fn write_idempotency_body(
            conn: &mut $conn,
            token_id: i64,
            key: &str,
            body: &str,
        ) -> StoreResult<()> {
            sqlx::query(
                "UPDATE idempotency_key SET response_body = $3 \
                 WHERE token_id = $1 AND idempotency_key = $2",
            )
            .bind(token_id)
            .bind(key)
            .bind(body)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }
    };
}

pub(crate) use key_queries;

/// A patient's identifier columns as stored, for re-sealing.
#[derive(sqlx::FromRow)]
pub(crate) struct PatientSealRow {
    pub id: i64,
    pub nhs_number_index: Option<String>,
    pub nhs_number: String,
    pub family_name: String,
    pub given_name: String,
    pub date_of_birth: String,
    pub postcode: Option<String>,
}

impl PatientSealRow {
    /// The row sealed under the current key: opened first when it was sealed before (under any
    /// key the cipher holds), taken as it is when it predates encryption.
    pub fn resealed(
        &self,
        cipher: &FieldCipher,
    ) -> StoreResult<Option<crate::field_crypto::SealedPatient>> {
        use crate::field_crypto::Field;
        let plain = match &self.nhs_number_index {
            None => crate::field_crypto::PlainPatient {
                nhs_number: self.nhs_number.clone(),
                family_name: self.family_name.clone(),
                given_name: self.given_name.clone(),
                date_of_birth: self.date_of_birth.clone(),
                postcode: self.postcode.clone(),
            },
            Some(index) => {
                let all_current = [
                    &self.nhs_number,
                    &self.family_name,
                    &self.given_name,
                    &self.date_of_birth,
                ]
                .into_iter()
                .chain(self.postcode.as_ref())
                .all(|v| cipher.is_current(v));
                if all_current {
                    return Ok(None);
                }
                crate::field_crypto::PlainPatient {
                    nhs_number: cipher.open(Field::NhsNumber, index, &self.nhs_number)?,
                    family_name: cipher.open(Field::FamilyName, index, &self.family_name)?,
                    given_name: cipher.open(Field::GivenName, index, &self.given_name)?,
                    date_of_birth: cipher.open(Field::DateOfBirth, index, &self.date_of_birth)?,
                    postcode: cipher.open_optional(
                        Field::Postcode,
                        index,
                        self.postcode.as_deref(),
                    )?,
                }
            }
        };
        Ok(Some(cipher.seal_plain(&plain)?))
    }
}

/// A stored create answer sealed under the current key, or `None` when it already is.
pub(crate) fn resealed_response(
    cipher: &FieldCipher,
    token: i64,
    key: &str,
    body: &str,
) -> StoreResult<Option<String>> {
    if cipher.is_current(body) {
        return Ok(None);
    }
    let plain = match crate::field_crypto::sealed_parts(body) {
        Some(_) => cipher.open_response(token, key, body)?,
        // Written before encryption: the JSON answer itself.
        None => body.to_string(),
    };
    Ok(Some(cipher.seal_response(token, key, &plain)?))
}

/// Expands, inside a backend's inherent `impl`, the key-management methods its `Store`
/// methods call (`async_trait` cannot see into a macro, so the trait methods are one-line
/// calls written in each backend). The backend
/// provides `begin_write`, `lock_keys` (serialising key changes between processes), the
/// `keys: KeySlot` field and a `key_sql` module expanded from `key_queries!`.
macro_rules! key_store_methods {
    (inherent) => {
        /// After migrating: seals what was written before encryption. Without a
        /// key-encryption key, a database holding such rows is refused.
        pub(crate) async fn seal_legacy_identifiers(&self) -> StoreResult<u64> {
            let mut conn = self.pool.acquire().await?;
            let plain = key_sql::plain_patients(&mut conn).await?
                + key_sql::plain_answers(&mut conn).await?
                + key_sql::plain_records(&mut conn).await?;
            drop(conn);
            if plain == 0 {
                return Ok(0);
            }
            if !self.keys.has_kek() {
                return Err(StoreError::Keys(format!(
                    "{plain} patients or stored answers were written before identifiers were \
                     encrypted; run `mdor migrate` with the key-encryption key configured \
                     (keys.kek_file or MDOR_KEYS__KEK) to seal them"
                )));
            }
            let report = self.reseal_now().await?;
            Ok(report.patients + report.answers + report.records)
        }
    };
    (shared) => {
        async fn key_status_now(&self) -> StoreResult<$crate::types::KeyStatus> {
            let cipher = self.reload_keys().await?;
            let mut tx = self.begin_write().await?;
            let live_field_keys = key_sql::live_field_keys(&mut tx).await?;
            let plain_patients = key_sql::plain_patients(&mut tx).await?;
            tx.commit().await?;
            Ok($crate::types::KeyStatus {
                kek_id: self.keys.kek()?.id().to_string(),
                current_field_key: cipher.current_key(),
                live_field_keys,
                plain_patients,
            })
        }

        async fn reseal_now(&self) -> StoreResult<$crate::types::ResealReport> {
            let cipher = self.reload_keys().await?;
            let mut report = $crate::types::ResealReport::default();
            let mut after = 0_i64;
            loop {
                let mut tx = self.begin_write().await?;
                let (last, written) =
                    key_sql::reseal_patient_batch(&mut tx, &cipher, after).await?;
                tx.commit().await?;
                report.patients += written;
                match last {
                    Some(id) => after = id,
                    None => break,
                }
            }
            let mut after = (i64::MIN, String::new());
            loop {
                let mut tx = self.begin_write().await?;
                let (last, written) =
                    key_sql::reseal_idempotency_batch(&mut tx, &cipher, &after).await?;
                tx.commit().await?;
                report.answers += written;
                match last {
                    Some(next) => after = next,
                    None => break,
                }
            }
            for table in $crate::backend::keys::RecordTable::ALL {
                let mut after = (i64::MIN, i64::MIN);
                loop {
                    let mut tx = self.begin_write().await?;
                    let (last, written) =
                        key_sql::reseal_record_batch(&mut tx, &cipher, table, after).await?;
                    tx.commit().await?;
                    report.records += written;
                    match last {
                        Some(next) => after = next,
                        None => break,
                    }
                }
            }
            let mut after = 0_i64;
            loop {
                let mut tx = self.begin_write().await?;
                let (last, written) = key_sql::reseal_review_batch(&mut tx, &cipher, after).await?;
                tx.commit().await?;
                report.review_details += written;
                match last {
                    Some(id) => after = id,
                    None => break,
                }
            }
            let mut tx = self.begin_write().await?;
            self.lock_keys(&mut tx).await?;
            report.keys_retired =
                key_sql::retire_old_field_keys(&mut tx, cipher.current_key(), chrono::Utc::now())
                    .await?;
            tx.commit().await?;
            Ok(report)
        }

        async fn rotate_now(
            &self,
            new_kek: Option<$crate::field_crypto::KeyEncryptionKey>,
        ) -> StoreResult<$crate::types::KeyRotation> {
            let old_kek = self.keys.kek()?;
            let new_kek = new_kek.unwrap_or_else(|| old_kek.clone());
            let mut tx = self.begin_write().await?;
            self.lock_keys(&mut tx).await?;
            // An unfinished rotation (a crash while re-sealing) already added the key values
            // are being moved to: finish moving to it rather than start another.
            let resumed = key_sql::live_field_keys(&mut tx).await? > 1;
            let cipher = if resumed {
                key_sql::rewrap_keys(&mut tx, &old_kek, &new_kek).await?
            } else {
                key_sql::rewrap_keys(&mut tx, &old_kek, &new_kek).await?;
                key_sql::add_field_key(&mut tx, &new_kek, chrono::Utc::now()).await?
            };
            tx.commit().await?;
            self.keys.set_kek(new_kek.clone());
            self.keys.replace(std::sync::Arc::new(cipher));
            let resealed = self.reseal_now().await?;
            let cipher = self.reload_keys().await?;
            Ok($crate::types::KeyRotation {
                resumed,
                kek_id: new_kek.id().to_string(),
                current_field_key: cipher.current_key(),
                resealed,
            })
        }
    };
}

pub(crate) use key_store_methods;

/// A copy of `record` whose stored answer is sealed (it names the patient).
pub(crate) fn sealed_idempotency(
    cipher: &FieldCipher,
    record: &crate::types::NewIdempotencyRecord,
) -> StoreResult<crate::types::NewIdempotencyRecord> {
    let mut sealed = record.clone();
    sealed.response_body =
        cipher.seal_response(record.token.0, &record.key, &record.response_body)?;
    Ok(sealed)
}
