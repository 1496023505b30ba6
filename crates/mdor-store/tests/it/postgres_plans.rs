//! PostgreSQL's plans for the bulk path's lookups under the statistics a new provider's first
//! large submission meets (PostgreSQL only; SQLite keeps no sampled statistics).
//!
//! The registry is analysed while it holds one procedure from each of 20 providers, then a
//! 21st provider's 50,000 procedures arrive with autovacuum off, as when bulk writes hold
//! their table locks. On such statistics the lookups that find which of a chunk's records
//! exist were planned on `procedure_provider_date` with a filter, visiting every procedure of
//! the provider for each record, and a 1M-record submission stalled at 50,000 records
//! (`docs/benchmarks.md`, 2026-12-06). The control: every bulk transaction first calls
//! `mdor_refresh_bulk_statistics()` (migration 0026), which analyses the tables once they
//! have more than doubled since their statistics were taken. With fresh statistics the
//! planner may read the unique key or, while the table is small, scan it once per chunk;
//! either is linear in the chunk, and neither goes through `procedure_provider_date`.

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection};

use crate::harness::{drop_database, keyed, postgres_url, unique_name, with_database};

/// `existing_procedures` in `crates/mdor-store/src/backend/postgres.rs`.
const EXISTING_PROCEDURES: &str = "SELECT p.local_record_id, p.id, s.content_hash FROM procedure p \
     LEFT JOIN procedure_source s ON s.procedure_id = p.id \
     WHERE p.provider_id = $1 AND p.local_record_id = ANY($2)";

/// The local-record-id half of `bulk_lookups` in the same file.
const BULK_LOOKUP_LOCAL_IDS: &str = "SELECT p.provider_id, p.local_record_id FROM procedure p \
     JOIN UNNEST($1::bigint[], $2::text[]) AS wanted (provider_id, local_record_id) \
       ON p.provider_id = wanted.provider_id AND p.local_record_id = wanted.local_record_id";

const SEED: &str = "
    ALTER TABLE procedure SET (autovacuum_enabled = false);
    INSERT INTO organisation (ods_code, name, kind)
        SELECT 'R' || g, 'Provider ' || g, 'provider' FROM generate_series(1, 21) g;
    INSERT INTO consultant (gmc_number) VALUES ('1234567');
    INSERT INTO patient (nhs_number, family_name, given_name, date_of_birth, sex, created_at, nhs_number_index)
        VALUES ('sealed', 'sealed', 'sealed', 'sealed', 'sealed', now(), 'index');
    INSERT INTO procedure (patient_id, provider_id, consultant_id, procedure_date, laterality, registry, local_record_id, created_at)
        SELECT (SELECT id FROM patient), o.id, (SELECT id FROM consultant), DATE '2026-01-01',
               'left', 'mdor_core', 'L-' || o.id, now()
        FROM organisation o WHERE o.ods_code <> 'R21';
    ANALYZE procedure;
    INSERT INTO procedure (patient_id, provider_id, consultant_id, procedure_date, laterality, registry, local_record_id, created_at)
        SELECT (SELECT id FROM patient), (SELECT id FROM organisation WHERE ods_code = 'R21'),
               (SELECT id FROM consultant), DATE '2026-01-01' + (g % 300), 'left', 'mdor_core',
               'N-' || g, now()
        FROM generate_series(1, 50000) g;
";

/// The plan as PostgreSQL prints it in text form, each line cut at 160 characters (a filter
/// line spells out the whole array of local record ids).
async fn plan(pool: &PgPool, sql: &str, provider: i64, locals: &[String]) -> String {
    let explain = format!("EXPLAIN {sql}");
    let query = sqlx::query_scalar::<_, String>(&explain);
    let query = if sql.contains("UNNEST") {
        query.bind(vec![provider; locals.len()]).bind(locals)
    } else {
        query.bind(provider).bind(locals)
    };
    let lines = query.fetch_all(pool).await.unwrap();
    lines
        .iter()
        .map(|line| line.chars().take(160).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_writes_refresh_statistics_they_have_outgrown_before_looking_up_records() {
    let Some(admin_url) = postgres_url("postgres_plans") else {
        return;
    };
    let database = unique_name("mdor_plans");
    let mut admin = PgConnection::connect(&admin_url).await.unwrap();
    sqlx::raw_sql(&format!("CREATE DATABASE {database}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = with_database(&admin_url, &database);
    let outcome = tokio::spawn(async move {
        let store = mdor_store::connect(&url, &keyed()).await.unwrap();
        store.migrate().await.unwrap();
        let pool = PgPool::connect(&url).await.unwrap();
        // One connection, so that the flush below is the seeding backend's.
        let seeding = PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        sqlx::raw_sql(SEED).execute(&seeding).await.unwrap();
        // Row counts reach pg_stat_user_tables when the writing backend next goes idle.
        sqlx::query("SELECT pg_stat_force_next_flush()")
            .execute(&seeding)
            .await
            .unwrap();
        seeding.close().await;
        let provider: i64 =
            sqlx::query_scalar("SELECT id FROM organisation WHERE ods_code = 'R21'")
                .fetch_one(&pool)
                .await
                .unwrap();
        let mut stale = false;
        for _ in 0..100 {
            stale = sqlx::query_scalar(
                "SELECT s.n_live_tup > 2 * greatest(c.reltuples, 0) + 1000 FROM pg_class c \
                 JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.relname = 'procedure'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            if stale {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert!(
            stale,
            "the seed should leave the statistics of 20 procedures"
        );
        // Every bulk transaction refreshes them first; one that removes nothing is enough.
        store.bulk_removals(&[]).await.unwrap();
        let counted: f32 =
            sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE relname = 'procedure'")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert!(counted > 40_000.0, "procedure analysed with {counted} rows");
        // Fresh statistics are left alone.
        let again: bool = sqlx::query_scalar("SELECT mdor_refresh_bulk_statistics()")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(!again);
        // The planner now knows whose procedures these are.
        let share: f32 = sqlx::query_scalar(
            "SELECT f FROM pg_stats, unnest(most_common_vals::text::bigint[], most_common_freqs) \
               AS m (v, f) WHERE tablename = 'procedure' AND attname = 'provider_id' AND v = $1",
        )
        .bind(provider)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert!(share > 0.99, "provider 21 sampled as {share} of procedures");
        // A chunk's worth of records: half already stored, half new.
        let locals: Vec<String> = (45_001..55_001).map(|g| format!("N-{g}")).collect();
        for sql in [EXISTING_PROCEDURES, BULK_LOOKUP_LOCAL_IDS] {
            let plan = plan(&pool, sql, provider, &locals).await;
            assert!(
                !plan.contains("procedure_provider_date"),
                "the lookup scans the provider's procedures by date:\n{sql}\n{plan}"
            );
        }
        // And the lookup finds exactly the stored half.
        let found: Vec<(String, i64, Option<String>)> = sqlx::query_as(EXISTING_PROCEDURES)
            .bind(provider)
            .bind(&locals)
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(found.len(), 5_000);
        pool.close().await;
    })
    .await;
    drop_database(&mut admin, &database).await;
    admin.close().await.unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}
