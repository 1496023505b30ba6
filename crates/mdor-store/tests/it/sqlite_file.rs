//! What only an SQLite file shows: the WAL journal, foreign keys on the store's connections,
//! an intact file that reopens with its data, and backend selection by URL.
//!
//! `journal_mode=WAL` is stored in the file, so it is checked from the file header and from a
//! second connection. `foreign_keys` and `synchronous` are per-connection settings and the
//! store does not hand out its connections: foreign keys are checked by behaviour (a write
//! naming a missing organisation is refused), while `synchronous=FULL` cannot be observed from
//! outside and is left to the code review of `SqliteStore::connect`.

use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection};

use mdor_domain::record::RemovalKind;
use mdor_store::{
    Backend, ConnectOptions, NewApiToken, NewRemoval, OrganisationId, Role, StoreError, connect,
};

use crate::fixtures::{add_provider, date, instant, simple, udi};
use crate::harness::{TempSqliteFile, keyed, keyed_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_store_runs_in_wal_mode_with_foreign_keys_and_stays_intact() {
    let file = TempSqliteFile::new("wal");
    let kek = mdor_store::KeyEncryptionKey::random();
    let store = connect(&file.url(), &keyed_with(kek.clone()))
        .await
        .unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    store.migrate().await.unwrap();
    let provider_id = add_provider(&*store, "RXX").await;
    for k in 0..10u32 {
        let prepared = simple(
            k,
            provider_id,
            "RXX",
            &format!("W-{k}"),
            date(2020, 1 + k, 1),
            &udi(10),
        );
        store.insert_submission(&prepared, None).await.unwrap();
    }
    let id = store
        .procedure_by_local_id(provider_id, "W-3")
        .await
        .unwrap()
        .unwrap();
    let implant = store.procedure(id).await.unwrap().unwrap().implants[0].id;
    store
        .insert_removals(
            &[NewRemoval {
                implant,
                kind: RemovalKind::Explant,
                removal_date: date(2024, 1, 1),
                reason: None,
                revising_provider: provider_id,
                recorded_at: instant(2024, 1, 2, 9),
            }],
            None,
        )
        .await
        .unwrap();

    // Foreign keys are enforced on the store's own connections.
    let orphan = store
        .insert_token(&NewApiToken {
            token_hash: "aa11".to_string(),
            organisation: OrganisationId(provider_id.0 + 1000),
            role: Role::Admin,
            label: "orphan".to_string(),
            created_at: instant(2026, 1, 1, 0),
        })
        .await;
    assert!(
        matches!(orphan, Err(StoreError::Conflict { .. })),
        "{orphan:?}"
    );

    // Bytes 18 and 19 of the header (file format write and read versions) are 2 in WAL mode,
    // and the write-ahead log sits beside the file while the store has it open.
    let header = std::fs::read(file.path()).unwrap();
    assert_eq!(&header[..16], b"SQLite format 3\0");
    assert_eq!((header[18], header[19]), (2, 2));
    assert!(file.dir.join("mdor.db-wal").exists());

    let mut side = SqliteConnectOptions::from_str(&file.url())
        .unwrap()
        .create_if_missing(false)
        .connect()
        .await
        .unwrap();
    let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut side)
        .await
        .unwrap();
    assert_eq!(journal_mode, "wal");
    let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut side)
        .await
        .unwrap();
    assert_eq!(integrity, ["ok"]);
    let dangling: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
        .fetch_all(&mut side)
        .await
        .unwrap();
    assert!(dangling.is_empty(), "{dangling:?}");
    side.close().await.unwrap();

    // Everything is there when the file is opened again.
    let counts = store.counts().await.unwrap();
    drop(store);
    let reopened = connect(&file.url(), &keyed_with(kek)).await.unwrap();
    reopened.check_migrations().await.unwrap();
    assert_eq!(reopened.counts().await.unwrap(), counts);
    assert_eq!(counts.procedures, 10);
    assert_eq!(counts.removals, 1);
}

#[tokio::test]
async fn connect_refuses_a_url_of_another_scheme() {
    let result = connect("mysql://localhost/mdor", &ConnectOptions::default()).await;
    assert!(
        matches!(result, Err(StoreError::UnsupportedUrl(ref message)) if message.contains("mysql")),
        "{:?}",
        result.err()
    );
}

#[tokio::test]
async fn connect_does_not_create_a_missing_file_when_told_not_to() {
    let file = TempSqliteFile::new("missing");
    let options = ConnectOptions {
        create_if_missing: false,
        ..ConnectOptions::default()
    };
    assert!(connect(&file.url(), &options).await.is_err());
    assert!(!file.path().exists());
}

/// SQLite reads an extract's large tables in pages; with one row per page every table crosses
/// page boundaries (and ends on a full page followed by an empty one), and the extract must be
/// exactly what the conformance case expects of a single read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extract_read_one_row_per_page_is_the_same_extract() {
    let file = TempSqliteFile::new("extract-pages");
    let options = ConnectOptions {
        extract_page_rows: 1,
        ..keyed()
    };
    let store = connect(&file.url(), &options).await.unwrap();
    store.migrate().await.unwrap();
    crate::surveillance::analysis_extract_joins_each_implant_to_its_procedure_patient_removal_and_death(&*store).await;
}
