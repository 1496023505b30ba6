//! SQLite's by-patient index of multi-patient reads (`audit_named_patient`), kept in a file of
//! its own beside the database and filled in sorted batches off the request path.
//!
//! A recall names every patient it returned in its audit entry, and each patient's access log
//! needs those entries by patient. Kept as an index in the registry's file (migration 0019),
//! every named patient was one insert at a random position: a 247-implant recall dirtied about
//! 247 index pages (1 MB of WAL) inside the commit the recall's answer waits for, and the cost
//! grew with the log (recall p99 from 8 ms to 86–127 ms once the log named 5 million patients;
//! docs/benchmarks.md, "2026-12-05: what sets the recall tail now"). Migration 0025 drops that
//! index; `audit_named_patient` is keyed by position, so the writer only ever appends to it.
//!
//! This module keeps the same index in `<database>.patient-index`, a derived file: the
//! background task of `spawn_indexer` reads the entries past its watermark from the registry (a
//! read transaction, which never waits for the writer in WAL mode), sorts them by patient and
//! inserts them in one transaction of the index file, with the new watermark. A patient's
//! access log reads the index up to its watermark and the registry's entries after it by
//! position (`PATIENT_ACCESS`), so it never lags whatever the task's pace.
//!
//! The watermark is stored with the leaf hash of the entry it names. If the registry no longer
//! holds that entry with that hash (restored from an older backup, or the file belongs to
//! another database), positions may have been reused: the index is ignored by readers and
//! rebuilt from the start. Deleting the file is always safe; it is rebuilt the same way.
//! PostgreSQL keeps its index in the log's own transaction (no twin of migration 0025).

use std::ffi::OsString;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use crate::rows::PatientAccessRow;
use crate::types::{PatientAccess, PatientId};
use crate::{StoreError, StoreResult};

/// How often the background task indexes what was appended since its last pass. Larger batches
/// touch each leaf page of the index once for many entries; the access log reads the unindexed
/// tail by position, so the interval costs readers a scan of at most this much of the log.
pub(crate) const INDEX_INTERVAL: Duration = Duration::from_secs(30);

/// Named patients per indexing transaction, bounding the task's memory (16 bytes each); a
/// batch ends at an entry's boundary, and one entry names at most a recall page (10,000).
const ROWS_PER_BATCH: i64 = 200_000;

/// Rows per multi-row insert: two variables each, within SQLite's 32,766.
const ROWS_PER_INSERT: usize = 10_000;

const SCHEMA: &str = "\
    CREATE TABLE IF NOT EXISTS named_patient ( \
        patient_id INTEGER NOT NULL, \
        audit_seq INTEGER NOT NULL, \
        PRIMARY KEY (patient_id, audit_seq) \
    ) WITHOUT ROWID; \
    CREATE TABLE IF NOT EXISTS indexed_through ( \
        only INTEGER PRIMARY KEY CHECK (only = 1), \
        seq INTEGER NOT NULL, \
        leaf_hash BLOB \
    ); \
    INSERT OR IGNORE INTO indexed_through (only, seq, leaf_hash) VALUES (1, 0, NULL);";

/// One patient's accesses on SQLite: entries about them alone, entries the index file lists
/// for them (`$3`, a JSON array of positions up to its watermark), and entries after the
/// watermark (`$2`) that name them, read by position. A union of lookups, not an `OR`.
const PATIENT_ACCESS: &str = "SELECT a.at, o.ods_code AS organisation_ods, \
       o.name AS organisation_name, a.role, a.action, a.purpose, a.outcome, a.record_count, \
       (SELECT count(*) FROM audit_named_patient ap WHERE ap.audit_seq = a.seq) AS patients_named \
     FROM audit_event a JOIN organisation o ON o.id = a.organisation_id \
     WHERE a.seq IN (SELECT seq FROM audit_event WHERE patient_id = $1 \
                     UNION SELECT audit_seq FROM audit_named_patient \
                           WHERE audit_seq > $2 AND patient_id = $1 \
                     UNION SELECT value FROM json_each($3)) \
     ORDER BY a.seq";

/// The index file's connections.
pub(crate) struct NamedIndex {
    pool: SqlitePool,
}

/// What the index holds: positions through `seq`, whose entry had `leaf_hash`.
#[derive(Debug, Clone, PartialEq)]
struct Watermark {
    seq: i64,
    leaf_hash: Option<Vec<u8>>,
}

impl NamedIndex {
    /// Opens (creating if needed) the index of the database `main`: a file beside it, or a
    /// private in-memory database when the registry itself is in memory.
    pub(crate) async fn open(main: &SqliteConnectOptions, in_memory: bool) -> StoreResult<Self> {
        let options = if in_memory {
            SqliteConnectOptions::from_str("sqlite::memory:")?
        } else {
            let mut path = OsString::from(main.get_filename());
            path.push(".patient-index");
            SqliteConnectOptions::new()
                .filename(path)
                .journal_mode(SqliteJournalMode::Wal)
                // Derived data: a crash may lose the last batch (NORMAL in WAL mode keeps the
                // file consistent), which the next pass indexes again.
                .synchronous(SqliteSynchronous::Normal)
        }
        .create_if_missing(true)
        .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { 2 })
            .min_connections(u32::from(in_memory))
            // An in-memory database disappears when its last connection closes.
            .idle_timeout((!in_memory).then_some(Duration::from_secs(600)))
            .max_lifetime((!in_memory).then_some(Duration::from_secs(3600)))
            .connect_with(options)
            .await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        Ok(NamedIndex { pool })
    }

    /// One patient's accesses, read from the index and the registry's `main` pool.
    pub(crate) async fn patient_access(
        &self,
        main: &SqlitePool,
        patient: PatientId,
    ) -> StoreResult<Vec<PatientAccess>> {
        // The index first, in one snapshot: whatever the registry holds when it is read next
        // includes everything through the watermark, so nothing falls between the two.
        let (mark, indexed) = {
            let mut conn = self.pool.acquire().await?;
            let mut tx = conn.begin().await?;
            let mark = watermark(&mut tx).await?;
            let indexed: Vec<i64> = sqlx::query_scalar(
                "SELECT audit_seq FROM named_patient WHERE patient_id = $1 AND audit_seq <= $2",
            )
            .bind(patient.0)
            .bind(mark.seq)
            .fetch_all(&mut *tx)
            .await?;
            tx.rollback().await?;
            (mark, indexed)
        };
        let mut conn = main.acquire().await?;
        let mut tx = conn.begin().await?;
        let (through, indexed) = if matches_log(&mut tx, &mark).await? {
            (mark.seq, indexed)
        } else {
            tracing::warn!(
                indexed_through = mark.seq,
                "the patient index does not match the audit log; reading the log itself until it is rebuilt"
            );
            (0, Vec::new())
        };
        let rows: Vec<PatientAccessRow> = sqlx::query_as(PATIENT_ACCESS)
            .bind(patient.0)
            .bind(through)
            .bind(
                serde_json::to_string(&indexed)
                    .map_err(|e| StoreError::Corrupt(format!("indexed positions: {e}")))?,
            )
            .fetch_all(&mut *tx)
            .await?;
        tx.rollback().await?;
        Ok(rows.into_iter().map(PatientAccess::from).collect())
    }

    /// Indexes every entry the registry's log holds past the watermark, in batches; returns how
    /// many named patients it indexed. Rebuilds from the start if the watermark's entry is not
    /// in the log as it was indexed.
    pub(crate) async fn catch_up(&self, main: &SqlitePool) -> StoreResult<u64> {
        let mut indexed = 0u64;
        loop {
            let mark = watermark(&mut *self.pool.acquire().await?).await?;
            let mut conn = main.acquire().await?;
            if !has_named_patients(&mut conn).await? {
                // Not migrated yet: nothing to index.
                return Ok(indexed);
            }
            let mut tx = conn.begin().await?;
            if !matches_log(&mut tx, &mark).await? {
                tx.rollback().await?;
                drop(conn);
                tracing::warn!(
                    indexed_through = mark.seq,
                    "the patient index does not match the audit log; rebuilding it"
                );
                self.reset(&mark).await?;
                continue;
            }
            let top: i64 = sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM audit_event")
                .fetch_one(&mut *tx)
                .await?;
            if top <= mark.seq {
                tx.rollback().await?;
                return Ok(indexed);
            }
            let mut rows: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT patient_id, audit_seq FROM audit_named_patient \
                 WHERE audit_seq > $1 AND audit_seq <= $2 ORDER BY audit_seq LIMIT $3",
            )
            .bind(mark.seq)
            .bind(top)
            .bind(ROWS_PER_BATCH)
            .fetch_all(&mut *tx)
            .await?;
            let end = match batch_end(&mut rows, top, ROWS_PER_BATCH as usize) {
                Some(end) => end,
                None => {
                    // One entry alone passed the limit: index it whole.
                    let first = rows.first().map_or(top, |r| r.1);
                    rows = sqlx::query_as(
                        "SELECT patient_id, audit_seq FROM audit_named_patient WHERE audit_seq = $1",
                    )
                    .bind(first)
                    .fetch_all(&mut *tx)
                    .await?;
                    first
                }
            };
            // Positions have no gaps, so the entry at `end` exists.
            let end_leaf = leaf_at(&mut tx, end).await?.ok_or_else(|| {
                StoreError::Corrupt(format!("the audit log has no entry at position {end}"))
            })?;
            tx.rollback().await?;
            drop(conn);
            // In key order, so that each leaf page of the index is written once per batch.
            rows.sort_unstable();
            let next = Watermark {
                seq: end,
                leaf_hash: end_leaf,
            };
            if !self.append(&mark, &next, &rows).await? {
                // Another process's indexer moved the watermark first; start from its.
                continue;
            }
            indexed += rows.len() as u64;
        }
    }

    /// Writes one sorted batch and moves the watermark from `from` to `to`, in one transaction;
    /// false (and nothing written) if the watermark is no longer `from`.
    async fn append(
        &self,
        from: &Watermark,
        to: &Watermark,
        rows: &[(i64, i64)],
    ) -> StoreResult<bool> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        // The write comes first, so the transaction takes the write lock (waiting on the busy
        // timeout) instead of failing to upgrade from a read.
        let moved = sqlx::query(
            "UPDATE indexed_through SET seq = $1, leaf_hash = $2 \
             WHERE only = 1 AND seq = $3 AND leaf_hash IS $4",
        )
        .bind(to.seq)
        .bind(&to.leaf_hash)
        .bind(from.seq)
        .bind(&from.leaf_hash)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_rows(&mut tx, rows).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Empties the index, if its watermark is still `mark`.
    async fn reset(&self, mark: &Watermark) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let moved = sqlx::query(
            "UPDATE indexed_through SET seq = 0, leaf_hash = NULL \
             WHERE only = 1 AND seq = $1 AND leaf_hash IS $2",
        )
        .bind(mark.seq)
        .bind(&mark.leaf_hash)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved == 1 {
            sqlx::query("DELETE FROM named_patient")
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Where a batch read in position order ends: at `top` if the read held everything up to it,
/// otherwise before the last entry it read, whose named patients may continue past the limit
/// (they are dropped here and read with the next batch). None if the read holds one entry only
/// (more named patients than the limit), which the caller reads whole.
fn batch_end(rows: &mut Vec<(i64, i64)>, top: i64, limit: usize) -> Option<i64> {
    if rows.len() < limit {
        return Some(top);
    }
    let first = rows.first()?.1;
    let last = rows.last()?.1;
    if first == last {
        return None;
    }
    rows.retain(|r| r.1 < last);
    Some(last - 1)
}

/// True if the log holds the watermark's entry with the hash it had when it was indexed (an
/// empty index matches any log).
async fn matches_log(conn: &mut SqliteConnection, mark: &Watermark) -> StoreResult<bool> {
    if mark.seq == 0 {
        return Ok(true);
    }
    let found = leaf_at(conn, mark.seq).await?;
    Ok(found.as_ref() == Some(&mark.leaf_hash))
}

/// The leaf hash of the log's entry at `seq`; None if the log has no such entry.
async fn leaf_at(conn: &mut SqliteConnection, seq: i64) -> StoreResult<Option<Option<Vec<u8>>>> {
    Ok(
        sqlx::query_scalar("SELECT leaf_hash FROM audit_event WHERE seq = $1")
            .bind(seq)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// What the index file holds, read on `conn` (inside the caller's snapshot, if any).
async fn watermark(conn: &mut SqliteConnection) -> StoreResult<Watermark> {
    let (seq, leaf_hash): (i64, Option<Vec<u8>>) =
        sqlx::query_as("SELECT seq, leaf_hash FROM indexed_through WHERE only = 1")
            .fetch_one(&mut *conn)
            .await?;
    Ok(Watermark { seq, leaf_hash })
}

async fn has_named_patients(conn: &mut SqliteConnection) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_named_patient'",
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.is_some())
}

async fn insert_rows(conn: &mut SqliteConnection, rows: &[(i64, i64)]) -> StoreResult<()> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT OR IGNORE INTO named_patient (patient_id, audit_seq) ",
        );
        q.push_values(chunk, |mut b, (patient, seq)| {
            b.push_bind(*patient).push_bind(*seq);
        });
        // Chunks differ in length at the tail; not worth keeping prepared.
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Keeps the index caught up every `INDEX_INTERVAL` until the returned guard is dropped.
pub(crate) fn spawn_indexer(index: std::sync::Arc<NamedIndex>, main: SqlitePool) -> IndexerGuard {
    let task = tokio::spawn(async move {
        loop {
            match index.catch_up(&main).await {
                Ok(0) => {}
                Ok(indexed) => tracing::debug!(indexed, "patient index caught up"),
                Err(error) => tracing::warn!(error = %error, "indexing named patients failed"),
            }
            tokio::time::sleep(INDEX_INTERVAL).await;
        }
    });
    IndexerGuard(task)
}

/// Stops the indexing task with the store that owns it.
pub(crate) struct IndexerGuard(tokio::task::JoinHandle<()>);

impl Drop for IndexerGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::batch_end;

    #[test]
    fn a_batch_that_read_everything_ends_at_the_top_of_the_log() {
        let mut rows = vec![(7, 3), (9, 3), (2, 5)];
        assert_eq!(batch_end(&mut rows, 6, 4), Some(6));
        assert_eq!(rows.len(), 3);
    }

    #[test]
    fn a_batch_cut_by_the_limit_ends_before_its_last_entry_and_drops_that_entry() {
        // Entry 5's named patients may go on past the limit: it waits for the next batch.
        let mut rows = vec![(7, 3), (9, 3), (2, 4), (4, 5), (8, 5)];
        assert_eq!(batch_end(&mut rows, 9, 5), Some(4));
        assert_eq!(rows, vec![(7, 3), (9, 3), (2, 4)]);
    }

    #[test]
    fn one_entry_past_the_limit_is_left_for_the_caller_to_read_whole() {
        let mut rows = vec![(1, 8), (2, 8), (3, 8)];
        assert_eq!(batch_end(&mut rows, 9, 3), None);
    }
}
