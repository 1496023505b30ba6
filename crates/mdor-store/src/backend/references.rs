//! Bulk writes with SQLite's foreign-key enforcement off, and the reference check that
//! replaces it (SQLite only).
//!
//! With foreign keys on, SQLite must be able to undo a multi-row INSERT half-way (an
//! immediate foreign key is checked row by row), so it copies every page the statement
//! changes into a statement journal before changing it. For a bulk submission that copying,
//! and the allocation churn behind it, was about a fifth of each chunk's commit: 102 s
//! against 83 s for 1,000,000 records on 2026-12-05 (`docs/benchmarks.md`). Deferring the
//! checks (`PRAGMA defer_foreign_keys`) does not avoid the journal; only turning enforcement
//! off does, and the pragma can be changed only outside a transaction.
//!
//! So `without_foreign_keys` runs one transaction on a connection with enforcement off, and
//! whatever runs in it checks the rows it wrote with `check_references`, which asks the
//! schema for the table's foreign keys: a key added by a later migration is checked without a
//! change here. Writes that update or delete rows others refer to do not belong in it.

use sqlx::pool::PoolConnection;
use sqlx::{Connection, Sqlite, SqliteConnection, SqlitePool};

use crate::{StoreError, StoreResult};

/// Runs `write` in one `BEGIN IMMEDIATE` transaction on a pooled connection with
/// foreign-key enforcement off, committing when it succeeds. Enforcement is turned back on
/// afterwards whatever happened, and a connection on which it cannot be confirmed on is
/// closed, never returned to the pool.
pub(super) async fn without_foreign_keys<T>(
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
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let value = write(&mut tx).await?;
    tx.commit().await?;
    Ok(value)
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
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    use std::str::FromStr;

    async fn pool() -> SqlitePool {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .unwrap()
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE pair (a INTEGER, b INTEGER, PRIMARY KEY (a, b));
             CREATE TABLE child (
                 id INTEGER PRIMARY KEY,
                 parent_id INTEGER NOT NULL REFERENCES parent (id),
                 other_id INTEGER REFERENCES parent,
                 pa INTEGER, pb INTEGER,
                 FOREIGN KEY (pa, pb) REFERENCES pair);
             INSERT INTO parent (id) VALUES (1), (2);
             INSERT INTO pair (a, b) VALUES (1, 10);",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool
    }

    async fn insert(pool: &SqlitePool, sql: &str) -> StoreResult<()> {
        without_foreign_keys(pool, async |conn| {
            let after: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(rowid), 0) FROM child")
                .fetch_one(&mut *conn)
                .await?;
            sqlx::query(sql).execute(&mut *conn).await?;
            check_references(conn, "child", after).await
        })
        .await
    }

    async fn children(pool: &SqlitePool) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM child")
            .fetch_one(pool)
            .await
            .unwrap()
    }

    async fn enforcing(pool: &SqlitePool) -> i64 {
        sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn rows_that_refer_to_existing_rows_or_to_nothing_are_committed() {
        let pool = pool().await;
        insert(
            &pool,
            "INSERT INTO child (id, parent_id, other_id, pa, pb) VALUES \
             (1, 1, NULL, NULL, NULL), (2, 2, 1, 1, 10), (3, 1, 2, NULL, 99)",
        )
        .await
        .unwrap();
        assert_eq!(children(&pool).await, 3);
        assert_eq!(enforcing(&pool).await, 1);
    }

    #[tokio::test]
    async fn a_dangling_reference_is_named_and_nothing_is_committed() {
        let pool = pool().await;
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
        for (values, named) in cases {
            let error = insert(
                &pool,
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
            assert_eq!(children(&pool).await, 0, "{values}");
            assert_eq!(enforcing(&pool).await, 1, "{values}");
        }
    }

    #[tokio::test]
    async fn only_rows_written_after_the_mark_are_checked() {
        let pool = pool().await;
        // A row from before the mark whose parent has gone (written with enforcement off).
        without_foreign_keys(&pool, async |conn| {
            sqlx::query("INSERT INTO child (id, parent_id) VALUES (1, 9)")
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
        .await
        .unwrap();
        insert(&pool, "INSERT INTO child (id, parent_id) VALUES (2, 1)")
            .await
            .unwrap();
        assert_eq!(children(&pool).await, 2);
    }

    #[tokio::test]
    async fn enforcement_is_back_on_after_a_failed_write() {
        let pool = pool().await;
        let error = without_foreign_keys(&pool, async |conn| {
            sqlx::query("INSERT INTO child (id, parent_id) VALUES (1, 1)")
                .execute(&mut *conn)
                .await?;
            sqlx::query("INSERT INTO no_such_table VALUES (1)")
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
        .await;
        assert!(error.is_err());
        assert_eq!(children(&pool).await, 0);
        assert_eq!(enforcing(&pool).await, 1);
        // The engine refuses a dangling reference again.
        let refused = sqlx::query("INSERT INTO child (id, parent_id) VALUES (1, 9)")
            .execute(&pool)
            .await;
        assert!(refused.is_err());
    }
}
