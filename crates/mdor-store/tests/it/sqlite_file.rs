//! What only an SQLite file shows: the WAL journal, foreign keys on the store's connections,
//! an intact file that reopens with its data, backend selection by URL, and a table rebuild
//! by migration under existing data.
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
    Backend, ConnectOptions, NewApiToken, NewAuditEvent, NewRemoval, OrganisationId, PatientId,
    RecallCriteria, Role, Store, StoreError, connect,
};

use crate::fixtures::{add_provider, administration_audit, date, instant, recall_of, simple, udi};
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
    add_ten_procedures(&*store, provider_id).await;
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
    assert_orphan_token_refused(&*store, provider_id, "aa11").await;

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
    assert_file_is_sound(&mut side).await;
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

/// Migration 0016 rebuilds `patient` (dropping the UNIQUE on the sealed NHS number) under a
/// database full of rows that refer to it. Every record, every reference and the blind-index
/// uniqueness must come through, and foreign keys must be back on afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilding_the_patient_table_keeps_every_record_and_reference() {
    let file = TempSqliteFile::new("rebuild");
    // The schema as migration 0015 left it, with the UNIQUE constraint still there.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    let mut up_to_0015 = sqlx::migrate::Migrator::new(dir).await.unwrap();
    let older: Vec<_> = up_to_0015
        .migrations
        .iter()
        .filter(|m| m.version <= 15)
        .cloned()
        .collect();
    assert_eq!(older.len(), 15);
    up_to_0015.migrations = older.into();
    let mut side = SqliteConnectOptions::from_str(&file.url())
        .unwrap()
        .create_if_missing(true)
        .foreign_keys(true)
        .connect()
        .await
        .unwrap();
    up_to_0015.run(&mut side).await.unwrap();
    let autoindex = "SELECT count(*) FROM sqlite_master \
                     WHERE tbl_name = 'patient' AND name LIKE 'sqlite_autoindex%'";
    let unique_before: i64 = sqlx::query_scalar(autoindex)
        .fetch_one(&mut side)
        .await
        .unwrap();
    assert_eq!(unique_before, 1, "0001 declared nhs_number UNIQUE");

    // Records written by this release's store on the 0015 schema: ten patients, one of them
    // with a second procedure.
    let kek = mdor_store::KeyEncryptionKey::random();
    let store = connect(&file.url(), &keyed_with(kek.clone()))
        .await
        .unwrap();
    let provider_id = add_provider(&*store, "RXX").await;
    add_ten_procedures(&*store, provider_id).await;
    let again = simple(3, provider_id, "RXX", "W-3b", date(2021, 6, 1), &udi(10));
    store.insert_submission(&again, None).await.unwrap();
    let w3 = store
        .procedure_by_local_id(provider_id, "W-3")
        .await
        .unwrap()
        .unwrap();
    let before = store.procedure(w3).await.unwrap().unwrap();
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.patients, counts.procedures), (10, 11));

    store.migrate().await.unwrap();
    store.check_migrations().await.unwrap();

    assert_eq!(store.counts().await.unwrap(), counts);
    let after = store.procedure(w3).await.unwrap().unwrap();
    assert_eq!(after.patient_id, before.patient_id);
    assert_eq!(after.nhs_number, before.nhs_number);
    assert_eq!(after.family_name, before.family_name);
    assert_eq!(after.date_of_birth, before.date_of_birth);
    let w3b = store
        .procedure_by_local_id(provider_id, "W-3b")
        .await
        .unwrap()
        .unwrap();
    let second = store.procedure(w3b).await.unwrap().unwrap();
    assert_eq!(second.patient_id, before.patient_id);

    // The same patient submitted again is still found by the blind index, not duplicated.
    let third = simple(3, provider_id, "RXX", "W-3c", date(2022, 6, 1), &udi(10));
    store.insert_submission(&third, None).await.unwrap();
    assert_eq!(store.counts().await.unwrap().patients, 10);

    // The constraint is gone, the blind index's is there, nothing dangles, the file is sound.
    let unique_after: i64 = sqlx::query_scalar(autoindex)
        .fetch_one(&mut side)
        .await
        .unwrap();
    assert_eq!(unique_after, 0);
    let blind_unique: String =
        sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = 'patient_nhs_number_index'")
            .fetch_one(&mut side)
            .await
            .unwrap();
    assert!(
        blind_unique.starts_with("CREATE UNIQUE INDEX"),
        "{blind_unique}"
    );
    assert_file_is_sound(&mut side).await;
    side.close().await.unwrap();

    // Foreign keys are on again for the store's writes. The pool reuses idle connections, the
    // one that migrated among them, so several writes in a row are each refused.
    for attempt in 0..4 {
        assert_orphan_token_refused(&*store, provider_id, &format!("bb{attempt}")).await;
    }
}

/// Ten procedures at provider `RXX`, `W-0` to `W-9`, one patient each.
async fn add_ten_procedures(store: &dyn Store, provider_id: OrganisationId) {
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
}

/// A token naming an organisation that does not exist is refused by a foreign key.
async fn assert_orphan_token_refused(store: &dyn Store, provider_id: OrganisationId, hash: &str) {
    let orphan = store
        .insert_token(&NewApiToken {
            token_hash: hash.to_string(),
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
}

/// No row refers to a missing one and SQLite finds the file intact.
async fn assert_file_is_sound(side: &mut sqlx::SqliteConnection) {
    let dangling: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
        .fetch_all(&mut *side)
        .await
        .unwrap();
    assert!(dangling.is_empty(), "{dangling:?}");
    let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut *side)
        .await
        .unwrap();
    assert_eq!(integrity, ["ok"]);
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

/// A recall of every implant of `udi(10)`, audited as `action`.
async fn recall_all(store: &dyn Store, by: OrganisationId, action: &'static str) -> Vec<PatientId> {
    recall_implanted(store, by, action, None).await
}

/// A recall of the implants of `udi(10)` implanted within `window`, audited as `action`.
async fn recall_implanted(
    store: &dyn Store,
    by: OrganisationId,
    action: &'static str,
    window: Option<(chrono::NaiveDate, chrono::NaiveDate)>,
) -> Vec<PatientId> {
    let rows = store
        .audited_recall(
            &RecallCriteria {
                implanted_from: window.map(|w| w.0),
                implanted_to: window.map(|w| w.1),
                limit: 100,
                ..recall_of(&udi(10))
            },
            &NewAuditEvent {
                role: "regulator",
                purpose: "recall",
                ..administration_audit(by, action, "recall".into(), instant(2026, 11, 20, 10))
            },
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.patient).collect()
}

/// The multi-patient reads in one patient's access log, oldest first.
async fn named_reads(store: &dyn Store, by: OrganisationId, patient: PatientId) -> Vec<String> {
    let audit = NewAuditEvent {
        role: "admin",
        purpose: "patient_access",
        ..administration_audit(
            by,
            "patient.access_log",
            "patient".into(),
            instant(2026, 11, 21, 10),
        )
    };
    let log = store.patient_access_log(patient, &audit).await.unwrap();
    log.into_iter()
        .filter(|a| a.patients_named > 0)
        .map(|a| a.action)
        .collect()
}

/// The rows of the by-patient index file at `path`.
async fn index_rows(path: &std::path::Path) -> i64 {
    let mut index = SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM named_patient")
        .fetch_one(&mut index)
        .await
        .unwrap();
    index.close().await.unwrap();
    rows
}

/// Waits for a dropped store's connections to close, so that its files can be copied whole.
async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
}

/// The by-patient index of multi-patient reads lives in `<database>.patient-index`, filled by
/// `index_named_patients` (and a background task); it is derived data. A registry restored
/// from an older backup reuses positions the index file still lists, so the index must be
/// recognised as not matching, ignored, and rebuilt; never shown as another read's history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_patient_index_file_is_derived_and_a_restored_log_never_inherits_it() {
    let file = TempSqliteFile::new("named-index");
    let index_path = file.dir.join("mdor.db.patient-index");
    let kek = mdor_store::KeyEncryptionKey::random();
    let store = connect(&file.url(), &keyed_with(kek.clone()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let provider_id = add_provider(&*store, "RXX").await;
    add_ten_procedures(&*store, provider_id).await;
    let patients = recall_all(&*store, provider_id, "recall.first").await;
    assert_eq!(patients.len(), 10);
    assert!(index_path.exists());
    // Migration 0025 took the by-patient index out of the registry's file.
    let mut side = SqliteConnectOptions::from_str(&file.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let in_registry: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE name = 'audit_named_patient_by_patient'",
    )
    .fetch_one(&mut side)
    .await
    .unwrap();
    assert_eq!(in_registry, 0);
    side.close().await.unwrap();

    // Indexed: the file holds one row per named patient, up to the newest entry. (The count
    // `index_named_patients` returns is not checked: the background task, which also runs
    // when a store opens, may have indexed some of them first.)
    store.index_named_patients().await.unwrap();
    assert_eq!(index_rows(&index_path).await, 10);
    assert_eq!(store.index_named_patients().await.unwrap(), 0);
    assert_eq!(
        named_reads(&*store, provider_id, patients[0]).await,
        ["recall.first"]
    );

    // A backup now (the store closed, so the file is whole).
    drop(store);
    settle().await;
    let backup = file.dir.join("backup.db");
    std::fs::copy(file.path(), &backup).unwrap();
    if file.dir.join("mdor.db-wal").exists() {
        std::fs::copy(file.dir.join("mdor.db-wal"), file.dir.join("backup.db-wal")).unwrap();
    }

    // Later reads, indexed.
    let store = connect(&file.url(), &keyed_with(kek.clone()))
        .await
        .unwrap();
    recall_all(&*store, provider_id, "recall.second").await;
    recall_all(&*store, provider_id, "recall.third").await;
    store.index_named_patients().await.unwrap();
    assert_eq!(index_rows(&index_path).await, 30);
    assert_eq!(
        named_reads(&*store, provider_id, patients[0]).await,
        ["recall.first", "recall.second", "recall.third"]
    );
    drop(store);
    settle().await;

    // The registry restored from the backup; the index file is newer than its log.
    std::fs::copy(&backup, file.path()).unwrap();
    let _ = std::fs::remove_file(file.dir.join("mdor.db-wal"));
    let _ = std::fs::remove_file(file.dir.join("mdor.db-shm"));
    if file.dir.join("backup.db-wal").exists() {
        std::fs::copy(file.dir.join("backup.db-wal"), file.dir.join("mdor.db-wal")).unwrap();
    }
    let store = connect(&file.url(), &keyed_with(kek.clone()))
        .await
        .unwrap();
    // New entries take the positions the index file lists for the later reads: the next one
    // names only the first patient, where the index file lists all ten.
    let january = (date(2020, 1, 1), date(2020, 1, 31));
    let named = recall_implanted(&*store, provider_id, "recall.after_restore", Some(january)).await;
    assert_eq!(named, [patients[0]]);
    let expected = |patient: PatientId| {
        if patient == patients[0] {
            vec!["recall.first", "recall.after_restore"]
        } else {
            vec!["recall.first"]
        }
    };
    for patient in &patients {
        assert_eq!(
            named_reads(&*store, provider_id, *patient).await,
            expected(*patient),
            "patient {patient}, before the rebuild"
        );
    }
    // The rebuild (here, or by the background task at start-up) indexes the restored log
    // from its start: the first recall's ten patients and the one after the restore.
    store.index_named_patients().await.unwrap();
    assert_eq!(index_rows(&index_path).await, 11);
    for patient in &patients {
        assert_eq!(
            named_reads(&*store, provider_id, *patient).await,
            expected(*patient),
            "patient {patient}, after the rebuild"
        );
    }
    // And a deleted index file is rebuilt the same way.
    drop(store);
    settle().await;
    std::fs::remove_file(&index_path).unwrap();
    let _ = std::fs::remove_file(file.dir.join("mdor.db.patient-index-wal"));
    let _ = std::fs::remove_file(file.dir.join("mdor.db.patient-index-shm"));
    let store = connect(&file.url(), &keyed_with(kek)).await.unwrap();
    for patient in [patients[0], patients[3]] {
        assert_eq!(
            named_reads(&*store, provider_id, patient).await,
            expected(patient)
        );
    }
}
