//! Bulk writes with SQLite's foreign-key enforcement off, and the reference check that
//! replaces it (SQLite only).
//!
//! With foreign keys on, SQLite must be able to undo a multi-row INSERT half-way (an
//! immediate foreign key is checked row by row), so it copies every page the statement
//! changes into a statement journal before changing it. For a bulk submission that copying,
//! and the allocation churn behind it, was about a seventh of the time: 85–88 s against
//! 74–75 s for 1,000,000 records on 2026-12-05 (`docs/benchmarks.md`). Deferring the checks
//! (`PRAGMA defer_foreign_keys`) does not avoid the journal; only turning enforcement off
//! does, and the pragma can be changed only outside a transaction.
//!
//! So `BulkWriter` runs each bulk transaction with enforcement off, and whatever runs in it
//! checks the rows it wrote with `check_references`, which asks the schema for the table's
//! foreign keys: a key added by a later migration is checked without a change here. Writes
//! that update or delete rows others refer to do not belong in it.
//!
//! On a database file the writer keeps one connection of its own, opened with enforcement
//! off and used for nothing else: its page cache stays warm from one bulk transaction to the
//! next (a pooled connection's goes cold when another connection commits), its prepared
//! statements survive (changing the pragma expires them), and a national submission fills
//! one 64 MiB page cache rather than one in every pooled connection it happened to use
//! (peak memory 616–656 MB in half the runs before, on 2026-12-05). An in-memory database
//! lives in its one pooled connection, so there the pragma is turned off for the
//! transaction and back on after.

use sqlx::pool::PoolConnection;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::Mutex;

use crate::{StoreError, StoreResult};

/// Where bulk transactions run with foreign-key enforcement off.
pub(super) enum BulkWriter {
    /// A connection of its own to the database file, opened on first use; `None` after a
    /// failed transaction, so that the next one starts on a fresh connection.
    Own {
        options: Box<SqliteConnectOptions>,
        conn: Mutex<Option<SqliteConnection>>,
    },
    /// The in-memory database's pool (one connection), the pragma changed around each
    /// transaction.
    Pooled(SqlitePool),
}

impl BulkWriter {
    /// A writer with its own connection, opened like the pool's (page cache, synchronous,
    /// WAL) but with enforcement off.
    pub(super) fn own(options: &SqliteConnectOptions) -> BulkWriter {
        BulkWriter::Own {
            options: Box::new(options.clone().foreign_keys(false)),
            conn: Mutex::new(None),
        }
    }

    pub(super) fn pooled(pool: SqlitePool) -> BulkWriter {
        BulkWriter::Pooled(pool)
    }

    /// Runs `write` in one `BEGIN IMMEDIATE` transaction with foreign-key enforcement off,
    /// committing when it succeeds.
    pub(super) async fn write<T>(
        &self,
        write: impl AsyncFnOnce(&mut SqliteConnection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        match self {
            BulkWriter::Own { options, conn } => {
                let mut slot = conn.lock().await;
                let mut own = match slot.take() {
                    Some(own) => own,
                    None => options.connect().await?,
                };
                let outcome = transaction(&mut own, write).await;
                if outcome.is_ok() {
                    *slot = Some(own);
                }
                // A failed transaction's connection is dropped, which rolls back whatever
                // it left open; the next write opens another.
                outcome
            }
            BulkWriter::Pooled(pool) => without_foreign_keys(pool, write).await,
        }
    }
}

async fn transaction<T>(
    conn: &mut SqliteConnection,
    write: impl AsyncFnOnce(&mut SqliteConnection) -> StoreResult<T>,
) -> StoreResult<T> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let value = write(&mut tx).await?;
    tx.commit().await?;
    Ok(value)
}

/// Runs `write` in one transaction on a pooled connection with foreign-key enforcement off.
/// Enforcement is turned back on afterwards whatever happened, and a connection on which it
/// cannot be confirmed on is closed, never returned to the pool.
async fn without_foreign_keys<T>(
    pool: &SqlitePool,
    write: impl AsyncFnOnce(&mut SqliteConnection) -> StoreResult<T>,
) -> StoreResult<T> {
    let mut conn = pool.acquire().await?;
    let outcome = write_with_enforcement_off(&mut conn, write).await;
    if !enforcement_restored(&mut conn).await {
        conn.close_on_drop();
    }
    outcome
}

async fn write_with_enforcement_off<T>(
    conn: &mut PoolConnection<Sqlite>,
    write: impl AsyncFnOnce(&mut SqliteConnection) -> StoreResult<T>,
) -> StoreResult<T> {
    sqlx::query("PRAGMA foreign_keys = OFF")
        .execute(&mut **conn)
        .await?;
    transaction(conn, write).await
}

/// Turns enforcement back on and reads it back: the pragma is silently ignored inside a
/// transaction, and a failed write's rollback is only queued when its transaction drops.
async fn enforcement_restored(conn: &mut PoolConnection<Sqlite>) -> bool {
    if sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut **conn)
        .await
        .is_err()
    {
        return false;
    }
    matches!(
        sqlx::query_scalar::<_, i64>("PRAGMA foreign_keys")
            .fetch_one(&mut **conn)
            .await,
        Ok(1)
    )
}

/// One foreign key of a table: its columns and the parent's.
struct ForeignKey {
    parent: String,
    columns: Vec<(String, String)>,
}

/// Checks that every row of `table` with a rowid above `after` refers to existing rows, as
/// SQLite's foreign keys would have: a reference with a NULL column refers to nothing and
/// passes. The first broken key is a `Conflict` naming the table, its columns and the parent.
pub(super) async fn check_references(
    conn: &mut SqliteConnection,
    table: &str,
    after: i64,
) -> StoreResult<()> {
    for key in foreign_keys(conn, table).await? {
        let present = key
            .columns
            .iter()
            .map(|(child, _)| format!("c.{} IS NOT NULL", quoted(child)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let matches = key
            .columns
            .iter()
            .map(|(child, parent)| format!("p.{} = c.{}", quoted(parent), quoted(child)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM {table} c WHERE c.rowid > $1 AND {present} \
             AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE {matches}))",
            table = quoted(table),
            parent = quoted(&key.parent),
        );
        let broken: bool = sqlx::query_scalar(&sql)
            .bind(after)
            .fetch_one(&mut *conn)
            .await?;
        if broken {
            let columns: Vec<&str> = key.columns.iter().map(|(c, _)| c.as_str()).collect();
            return Err(StoreError::Conflict {
                constraint: format!(
                    "FOREIGN KEY {table} ({}) REFERENCES {}",
                    columns.join(", "),
                    key.parent
                ),
            });
        }
    }
    Ok(())
}

/// The table's foreign keys as the schema declares them; a key naming no parent columns
/// refers to the parent's primary key.
async fn foreign_keys(conn: &mut SqliteConnection, table: &str) -> StoreResult<Vec<ForeignKey>> {
    let rows: Vec<(i64, String, String, Option<String>)> = sqlx::query_as(
        "SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list($1) ORDER BY id, seq",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    let mut keys: Vec<(i64, ForeignKey)> = Vec::new();
    for (id, parent, from, to) in rows {
        let to = match to {
            Some(to) => to,
            None => primary_key_column(conn, &parent, keys_so_far(&keys, id)).await?,
        };
        match keys.last_mut() {
            Some((last, key)) if *last == id => key.columns.push((from, to)),
            _ => keys.push((
                id,
                ForeignKey {
                    parent,
                    columns: vec![(from, to)],
                },
            )),
        }
    }
    Ok(keys.into_iter().map(|(_, key)| key).collect())
}

/// How many columns of foreign key `id` are already known: the position of the next one.
fn keys_so_far(keys: &[(i64, ForeignKey)], id: i64) -> usize {
    match keys.last() {
        Some((last, key)) if *last == id => key.columns.len(),
        _ => 0,
    }
}

/// The `position`-th column (from 0) of `table`'s primary key.
async fn primary_key_column(
    conn: &mut SqliteConnection,
    table: &str,
    position: usize,
) -> StoreResult<String> {
    let columns: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_table_info($1) WHERE pk > 0 ORDER BY pk")
            .bind(table)
            .fetch_all(&mut *conn)
            .await?;
    columns.into_iter().nth(position).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "a foreign key refers to {table}, which has no such key"
        ))
    })
}

/// An identifier from the schema, quoted for SQL.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{SqliteJournalMode, SqlitePoolOptions};
    use std::path::PathBuf;
    use std::str::FromStr;
    use std::sync::atomic::{AtomicU32, Ordering};

    const SCHEMA: &str = "CREATE TABLE parent (id INTEGER PRIMARY KEY);
         CREATE TABLE pair (a INTEGER, b INTEGER, PRIMARY KEY (a, b));
         CREATE TABLE child (
             id INTEGER PRIMARY KEY,
             parent_id INTEGER NOT NULL REFERENCES parent (id),
             other_id INTEGER REFERENCES parent,
             pa INTEGER, pb INTEGER,
             FOREIGN KEY (pa, pb) REFERENCES pair);
         INSERT INTO parent (id) VALUES (1), (2);
         INSERT INTO pair (a, b) VALUES (1, 10);";

    /// A database with the pool the store would have and its bulk writer: in memory (the
    /// pragma changed around each write) or a file (the writer's own connection).
    struct Setup {
        pool: SqlitePool,
        writer: BulkWriter,
        file: Option<PathBuf>,
    }

    impl Drop for Setup {
        fn drop(&mut self) {
            if let Some(file) = &self.file {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
                }
            }
        }
    }

    async fn setups() -> Vec<Setup> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let memory = SqliteConnectOptions::from_str("sqlite::memory:")
            .unwrap()
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(memory)
            .await
            .unwrap();
        let in_memory = Setup {
            writer: BulkWriter::pooled(pool.clone()),
            pool,
            file: None,
        };
        let file = std::env::temp_dir().join(format!(
            "mdor-references-{}-{}.db",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let options = SqliteConnectOptions::new()
            .filename(&file)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options.clone())
            .await
            .unwrap();
        let on_file = Setup {
            writer: BulkWriter::own(&options),
            pool,
            file: Some(file),
        };
        let setups = vec![in_memory, on_file];
        for setup in &setups {
            sqlx::raw_sql(SCHEMA).execute(&setup.pool).await.unwrap();
        }
        setups
    }

    async fn insert(setup: &Setup, sql: &str) -> StoreResult<()> {
        setup
            .writer
            .write(async |conn| {
                let after: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(rowid), 0) FROM child")
                    .fetch_one(&mut *conn)
                    .await?;
                sqlx::query(sql).execute(&mut *conn).await?;
                check_references(conn, "child", after).await
            })
            .await
    }

    async fn children(setup: &Setup) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM child")
            .fetch_one(&setup.pool)
            .await
            .unwrap()
    }

    /// The pool's connections still enforce foreign keys: the engine refuses a dangling
    /// reference written outside the bulk writer.
    async fn pool_enforces(setup: &Setup) -> bool {
        sqlx::query("INSERT INTO child (id, parent_id) VALUES (100, 9)")
            .execute(&setup.pool)
            .await
            .is_err()
    }

    fn kind(setup: &Setup) -> &'static str {
        if setup.file.is_some() {
            "file"
        } else {
            "memory"
        }
    }

    #[tokio::test]
    async fn rows_that_refer_to_existing_rows_or_to_nothing_are_committed() {
        for setup in setups().await {
            insert(
                &setup,
                "INSERT INTO child (id, parent_id, other_id, pa, pb) VALUES \
                 (1, 1, NULL, NULL, NULL), (2, 2, 1, 1, 10), (3, 1, 2, NULL, 99)",
            )
            .await
            .unwrap();
            assert_eq!(children(&setup).await, 3, "{}", kind(&setup));
            assert!(pool_enforces(&setup).await, "{}", kind(&setup));
        }
    }

    #[tokio::test]
    async fn a_dangling_reference_is_named_and_nothing_is_committed() {
        let cases = [
            (
                "(1, 1, NULL, NULL, NULL), (2, 3, NULL, NULL, NULL)",
                "child (parent_id) REFERENCES parent",
            ),
            (
                "(1, 1, 7, NULL, NULL)",
                "child (other_id) REFERENCES parent",
            ),
            ("(1, 1, NULL, 1, 11)", "child (pa, pb) REFERENCES pair"),
        ];
        for setup in setups().await {
            for (values, named) in cases {
                let error = insert(
                    &setup,
                    &format!("INSERT INTO child (id, parent_id, other_id, pa, pb) VALUES {values}"),
                )
                .await
                .unwrap_err();
                match error {
                    StoreError::Conflict { constraint } => {
                        assert_eq!(constraint, format!("FOREIGN KEY {named}"))
                    }
                    other => panic!("expected a conflict, got {other:?}"),
                }
                assert_eq!(children(&setup).await, 0, "{} {values}", kind(&setup));
                assert!(pool_enforces(&setup).await, "{} {values}", kind(&setup));
            }
            // The writer works again after a refused write.
            insert(&setup, "INSERT INTO child (id, parent_id) VALUES (1, 1)")
                .await
                .unwrap();
            assert_eq!(children(&setup).await, 1, "{}", kind(&setup));
        }
    }

    #[tokio::test]
    async fn only_rows_written_after_the_mark_are_checked() {
        for setup in setups().await {
            // A row from before the mark whose parent is missing (written unchecked).
            setup
                .writer
                .write(async |conn| {
                    sqlx::query("INSERT INTO child (id, parent_id) VALUES (1, 9)")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
                .await
                .unwrap();
            insert(&setup, "INSERT INTO child (id, parent_id) VALUES (2, 1)")
                .await
                .unwrap();
            assert_eq!(children(&setup).await, 2, "{}", kind(&setup));
        }
    }

    #[tokio::test]
    async fn a_failed_write_commits_nothing_and_leaves_enforcement_on() {
        for setup in setups().await {
            let error = setup
                .writer
                .write(async |conn| {
                    sqlx::query("INSERT INTO child (id, parent_id) VALUES (1, 1)")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("INSERT INTO no_such_table VALUES (1)")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
                .await;
            assert!(error.is_err(), "{}", kind(&setup));
            assert_eq!(children(&setup).await, 0, "{}", kind(&setup));
            assert!(pool_enforces(&setup).await, "{}", kind(&setup));
        }
    }
}
