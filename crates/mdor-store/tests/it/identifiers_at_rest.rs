//! Identifiers at rest (issue 4, part 6): what reaches the database's columns and file is
//! sealed; rows written before encryption are sealed by `migrate`; a missing or wrong
//! key-encryption key is refused by name; `rotate_keys` re-wraps and re-seals, and finishes an
//! interrupted rotation. Each case runs on a SQLite file and on PostgreSQL, reading the tables
//! through a side connection, as an attacker with a copy of the database would.

use std::str::FromStr;
use std::sync::Arc;

use sqlx::Connection;
use sqlx::postgres::PgPool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

use mdor_domain::Postcode;
use mdor_domain::record::PersonName;
use mdor_store::{
    BulkBatch, KeyEncryptionKey, OrganisationId, PreparedSubmission, Store, StoreError, connect,
};

use crate::fixtures::{
    add_provider, add_token, date, decided_break_glass, idempotency, manual_device, nhs, patient,
    prepare, procedure, submission, udi,
};
use crate::harness::{
    TempSqliteFile, drop_database, keyed_with, postgres_url, unique_name, with_database,
};

/// Identifiers no other fixture uses, so that finding one in the file can only mean a leak.
const CANARY_FAMILY: &str = "Quillfeatherstonehaugh";
const CANARY_GIVEN: &str = "Wenceslaus";
const CANARY_POSTCODE: &str = "ZE2 9QX";

/// A database under test and a side connection that reads its tables directly.
struct Db {
    url: String,
    side: Side,
    /// Removed (SQLite) or dropped (PostgreSQL) with the test.
    _file: Option<TempSqliteFile>,
    postgres: Option<(String, String)>,
}

enum Side {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Db {
    async fn sqlite(name: &str) -> Db {
        let file = TempSqliteFile::new(name);
        let url = file.url();
        let pool = SqlitePool::connect_with(
            SqliteConnectOptions::from_str(&url)
                .unwrap()
                .create_if_missing(true),
        )
        .await
        .unwrap();
        Db {
            url,
            side: Side::Sqlite(pool),
            _file: Some(file),
            postgres: None,
        }
    }

    async fn postgres(name: &str) -> Option<Db> {
        let admin_url = postgres_url(name)?;
        let database = unique_name("mdor_keys");
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        sqlx::raw_sql(&format!("CREATE DATABASE {database}"))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        let url = with_database(&admin_url, &database);
        let pool = PgPool::connect(&url).await.unwrap();
        Some(Db {
            url,
            side: Side::Postgres(pool),
            _file: None,
            postgres: Some((admin_url, database)),
        })
    }

    async fn open(&self, kek: Option<KeyEncryptionKey>) -> Arc<dyn Store> {
        let options = match kek {
            Some(kek) => keyed_with(kek),
            None => mdor_store::ConnectOptions::default(),
        };
        connect(&self.url, &options).await.unwrap()
    }

    async fn count(&self, sql: &str) -> i64 {
        match &self.side {
            Side::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
            Side::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        }
    }

    async fn texts(&self, sql: &str) -> Vec<String> {
        match &self.side {
            Side::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
            Side::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
        }
    }

    async fn execute(&self, sql: &str) {
        match &self.side {
            Side::Sqlite(pool) => {
                sqlx::raw_sql(sql).execute(pool).await.unwrap();
            }
            Side::Postgres(pool) => {
                sqlx::raw_sql(sql).execute(pool).await.unwrap();
            }
        }
    }

    async fn close(self) {
        match self.side {
            Side::Sqlite(pool) => pool.close().await,
            Side::Postgres(pool) => pool.close().await,
        }
        if let Some((admin_url, database)) = self.postgres {
            let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
            drop_database(&mut admin, &database).await;
            admin.close().await.unwrap();
        }
    }

    /// Every identifier value stored in `patient`, as text.
    async fn patient_identifier_values(&self) -> Vec<String> {
        let mut values = Vec::new();
        for column in [
            "nhs_number",
            "family_name",
            "given_name",
            "date_of_birth",
            "postcode",
        ] {
            values.extend(
                self.texts(&format!(
                    "SELECT CAST({column} AS TEXT) FROM patient WHERE {column} IS NOT NULL"
                ))
                .await,
            );
        }
        values
    }
}

/// Runs `case` on a SQLite file and on PostgreSQL.
macro_rules! on_both {
    ($name:ident, $case:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = super::Db::sqlite(stringify!($name)).await;
                super::$case(&db).await;
                db.close().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = super::Db::postgres(stringify!($name)).await {
                    super::$case(&db).await;
                    db.close().await;
                }
            }
        }
    };
}

fn canary_submission(k: u32, provider: OrganisationId, local: &str) -> PreparedSubmission {
    let mut p = patient(&nhs(k), date(1937, 7, 23));
    p.family_name = PersonName::parse(CANARY_FAMILY, "family_name").unwrap();
    p.given_name = PersonName::parse(CANARY_GIVEN, "given_name").unwrap();
    p.postcode = Some(Postcode::parse(CANARY_POSTCODE).unwrap());
    prepare(
        submission(
            p,
            procedure("RXX", local, date(2024, 5, 2)),
            vec![manual_device(&udi(1), Some("LOT1"), None, None)],
        ),
        provider,
        &[None],
    )
}

/// `n` patients loaded in one bulk batch, numbered from `first`.
fn bulk_batch(first: u32, n: u32, provider: OrganisationId) -> BulkBatch {
    BulkBatch {
        submissions: (first..first + n)
            .map(|k| {
                prepare(
                    submission(
                        patient(&nhs(k), date(1960, 1, 1 + k % 28)),
                        procedure("RXX", &format!("B{k:06}"), date(2024, 1, 10)),
                        vec![manual_device(&udi(2), Some("LOT2"), None, None)],
                    ),
                    provider,
                    &[None],
                )
            })
            .collect(),
    }
}

fn is_sealed(value: &str, key: i64) -> bool {
    value.starts_with(&format!("k{key}."))
}

async fn identifiers_are_sealed_in_their_columns_and_open_for_the_store(db: &Db) {
    let store = db.open(Some(KeyEncryptionKey::random())).await;
    store.migrate().await.unwrap();
    let provider = add_provider(&*store, "RXX").await;
    let token = add_token(&*store, provider, "h1").await;
    let canary_nhs = nhs(7);
    let body = format!("{{\"nhs_number\":\"{}\"}}", canary_nhs.as_str());
    let id = store
        .insert_submission(
            &canary_submission(7, provider, "C1"),
            Some(&idempotency(token, "key-1", &body)),
        )
        .await
        .unwrap();
    store
        .bulk_load(&bulk_batch(100, 20, provider))
        .await
        .unwrap();

    let values = db.patient_identifier_values().await;
    assert_eq!(
        values.len(),
        21 * 5,
        "five identifiers for each of 21 patients"
    );
    for value in &values {
        assert!(is_sealed(value, 2), "not sealed: {value:.20}");
        for plain in [
            canary_nhs.as_str(),
            CANARY_FAMILY,
            CANARY_GIVEN,
            "1937-07-23",
            // The whole postcode: its space cannot occur in base64, whereas a three-letter
            // piece of it turns up in random ciphertext about once in seventy runs.
            CANARY_POSTCODE,
        ] {
            assert!(!value.contains(plain));
        }
    }
    let indexes = db.texts("SELECT nhs_number_index FROM patient").await;
    assert_eq!(indexes.len(), 21);
    assert!(
        indexes
            .iter()
            .all(|i| i.len() == 32 && i.bytes().all(|b| b.is_ascii_hexdigit()))
    );
    let answers = db.texts("SELECT response_body FROM idempotency_key").await;
    assert_eq!(answers.len(), 1);
    assert!(is_sealed(&answers[0], 2) && !answers[0].contains(canary_nhs.as_str()));

    // The store opens what it sealed: the same values as submitted.
    let record = store.procedure(id).await.unwrap().unwrap();
    assert_eq!(record.nhs_number, canary_nhs.as_str());
    assert_eq!(
        (record.family_name.as_str(), record.given_name.as_str()),
        (CANARY_FAMILY, CANARY_GIVEN)
    );
    assert_eq!(record.date_of_birth, date(1937, 7, 23));
    assert_eq!(record.postcode.as_deref(), Some(CANARY_POSTCODE));
    let replay = store
        .idempotency_record(token, "key-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replay.response_body, body);
    // And finds a patient by NHS number through the blind index.
    let bounds = store
        .patient_timeline_bounds(&canary_nhs)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bounds.patient, record.patient_id);
    let bulk_patient = store.patient_timeline_bounds(&nhs(105)).await.unwrap();
    assert!(bulk_patient.is_some());
    // A returning patient with another date of birth is still refused.
    let mut other = canary_submission(7, provider, "C2");
    other.submission.patient.date_of_birth = date(1937, 7, 24);
    assert!(matches!(
        store.insert_submission(&other, None).await,
        Err(StoreError::PatientMismatch)
    ));
}
on_both!(
    sealed_columns,
    identifiers_are_sealed_in_their_columns_and_open_for_the_store
);

/// Every byte of the SQLite database and its write-ahead log is searched for the canaries
/// after they were written through the single and the bulk path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_file_and_its_log_hold_none_of_the_seeded_identifiers() {
    let db = Db::sqlite("canary-file").await;
    let store = db.open(Some(KeyEncryptionKey::random())).await;
    store.migrate().await.unwrap();
    let provider = add_provider(&*store, "RXX").await;
    store
        .insert_submission(&canary_submission(7, provider, "C1"), None)
        .await
        .unwrap();
    let mut batch = bulk_batch(100, 3, provider);
    batch.submissions.push(canary_submission(8, provider, "C2"));
    store.bulk_load(&batch).await.unwrap();
    decided_break_glass(
        &*store,
        provider,
        "Glasscanary reason for 9990000018",
        "Glasscanary note",
    )
    .await;
    let path = db._file.as_ref().unwrap().path();
    let wal = std::path::PathBuf::from(format!("{}-wal", path.display()));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend(std::fs::read(&wal).unwrap_or_default());
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    // The search finds what is stored in clear: it would find a leak.
    assert!(contains("RXX") && contains("LOT2"));
    for canary in [
        nhs(7).as_str(),
        nhs(8).as_str(),
        nhs(101).as_str(),
        CANARY_FAMILY,
        CANARY_GIVEN,
        CANARY_POSTCODE,
        "1937-07-23",
        "Testpatient",
        "Glasscanary",
    ] {
        assert!(!contains(canary), "{canary} found in the database file");
    }
    db.close().await;
}

async fn rows_written_before_encryption_are_sealed_by_migrate(db: &Db) {
    let kek = KeyEncryptionKey::random();
    let store = db.open(Some(kek.clone())).await;
    store.migrate().await.unwrap();
    let provider = add_provider(&*store, "RXX").await;
    let token = add_token(&*store, provider, "h1").await;
    let legacy = nhs(9);
    // As an older release wrote them: clear text and no blind index.
    db.execute(&format!(
        "INSERT INTO patient (nhs_number, family_name, given_name, date_of_birth, sex, postcode, \
           created_at, birth_month_mid) \
         VALUES ('{}', '{CANARY_FAMILY}', '{CANARY_GIVEN}', '1941-02-03', 'female', '{CANARY_POSTCODE}', \
           '2020-01-01T00:00:00Z', '1941-02-15'); \
         INSERT INTO idempotency_key (token_id, idempotency_key, request_hash, response_status, \
           response_body, created_at) \
         VALUES ({}, 'old-key', 'h', 201, '{{\"id\":1}}', '2020-01-01T00:00:00Z')",
        legacy.as_str(),
        token.0
    ))
    .await;
    assert!(
        store
            .patient_timeline_bounds(&legacy)
            .await
            .unwrap()
            .is_none()
    );

    // Without the key-encryption key, migrate refuses rather than leave them in clear.
    let keyless = db.open(None).await;
    match keyless.migrate().await {
        Err(StoreError::Keys(message)) => {
            assert!(message.contains("before identifiers were encrypted"))
        }
        other => panic!("expected a key error, got {other:?}"),
    }
    store.migrate().await.unwrap();
    let values = db.patient_identifier_values().await;
    assert_eq!(values.len(), 5);
    assert!(values.iter().all(|v| is_sealed(v, 2)), "{values:?}");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM patient WHERE nhs_number_index IS NULL")
            .await,
        0
    );
    let bounds = store.patient_timeline_bounds(&legacy).await.unwrap();
    assert!(bounds.is_some(), "found by blind index once sealed");
    let answer = store
        .idempotency_record(token, "old-key")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.response_body, "{\"id\":1}");
    let status = store.key_status().await.unwrap();
    assert_eq!((status.plain_patients, status.live_field_keys), (0, 1));
}
on_both!(
    legacy_rows,
    rows_written_before_encryption_are_sealed_by_migrate
);

async fn a_missing_or_wrong_key_encryption_key_is_refused_by_name(db: &Db) {
    let store = db.open(Some(KeyEncryptionKey::random())).await;
    store.migrate().await.unwrap();
    let provider = add_provider(&*store, "RXX").await;
    let id = store
        .insert_submission(&canary_submission(7, provider, "C1"), None)
        .await
        .unwrap();
    drop(store);

    let wrong = db.open(Some(KeyEncryptionKey::random())).await;
    match wrong.key_status().await {
        Err(StoreError::Keys(message)) => {
            assert!(
                message.contains("wrapped by key-encryption key"),
                "{message}"
            )
        }
        other => panic!("expected a key error, got {other:?}"),
    }
    assert!(matches!(
        wrong.procedure(id).await,
        Err(StoreError::Keys(_))
    ));
    let keyless = db.open(None).await;
    match keyless.procedure(id).await {
        Err(StoreError::Keys(message)) => assert!(message.contains("no key-encryption key")),
        other => panic!("expected a key error, got {other:?}"),
    }
    // Nothing a refused store did changed the keys.
    assert_eq!(db.count("SELECT COUNT(*) FROM data_key").await, 2);
}
on_both!(
    wrong_key,
    a_missing_or_wrong_key_encryption_key_is_refused_by_name
);

async fn rotation_rewraps_under_a_new_key_and_reseals_every_identifier(db: &Db) {
    let old = KeyEncryptionKey::random();
    let store = db.open(Some(old.clone())).await;
    store.migrate().await.unwrap();
    let provider = add_provider(&*store, "RXX").await;
    let token = add_token(&*store, provider, "h1").await;
    let id = store
        .insert_submission(
            &canary_submission(7, provider, "C1"),
            Some(&idempotency(token, "key-1", "{\"answer\":1}")),
        )
        .await
        .unwrap();
    store
        .bulk_load(&bulk_batch(100, 30, provider))
        .await
        .unwrap();
    decided_break_glass(&*store, provider, "a reason", "a note").await;
    let before = format!("{:?}", store.procedure(id).await.unwrap().unwrap());

    let new = KeyEncryptionKey::random();
    let rotation = store.rotate_keys(Some(new.clone())).await.unwrap();
    assert!(!rotation.resumed);
    assert_eq!(rotation.kek_id, new.id());
    assert_eq!(
        rotation.current_field_key, 3,
        "keys 1 (blind index) and 2 (first field key) came first"
    );
    assert_eq!(rotation.resealed.patients, 31);
    assert_eq!(rotation.resealed.answers, 1);
    assert_eq!(
        rotation.resealed.review_details, 2,
        "the reason and the decision"
    );
    assert_eq!(rotation.resealed.keys_retired, 1);
    assert!(
        db.texts(
            "SELECT reason FROM access_review UNION ALL SELECT decision_note FROM access_review"
        )
        .await
        .iter()
        .all(|v| is_sealed(v, 3))
    );
    assert!(
        db.patient_identifier_values()
            .await
            .iter()
            .all(|v| is_sealed(v, 3))
    );
    let kek_ids = db.texts("SELECT DISTINCT kek_id FROM data_key").await;
    assert_eq!(kek_ids, [new.id().to_string()]);
    // The store that rotated goes on working, and the blind index did not change.
    assert_eq!(
        format!("{:?}", store.procedure(id).await.unwrap().unwrap()),
        before
    );
    assert!(
        store
            .patient_timeline_bounds(&nhs(7))
            .await
            .unwrap()
            .is_some()
    );
    drop(store);

    let with_old = db.open(Some(old)).await;
    assert!(matches!(
        with_old.procedure(id).await,
        Err(StoreError::Keys(_))
    ));
    let with_new = db.open(Some(new)).await;
    assert_eq!(
        format!("{:?}", with_new.procedure(id).await.unwrap().unwrap()),
        before
    );
    let replay = with_new
        .idempotency_record(token, "key-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replay.response_body, "{\"answer\":1}");
    let review = &with_new
        .access_reviews(&mdor_store::AccessReviewQuery {
            include_decided: true,
            after: None,
            limit: 1,
        })
        .await
        .unwrap()[0];
    assert_eq!(
        (review.reason.as_str(), review.decision_note.as_deref()),
        ("a reason", Some("a note"))
    );
    // A second rotation under the same key-encryption key moves everything to key 4.
    let again = with_new.rotate_keys(None).await.unwrap();
    assert_eq!((again.current_field_key, again.resealed.patients), (4, 31));
    assert_eq!(
        db.count("SELECT COUNT(*) FROM data_key WHERE retired_at IS NULL")
            .await,
        2
    );
}
on_both!(
    rotation,
    rotation_rewraps_under_a_new_key_and_reseals_every_identifier
);

/// A rotation stopped between two of its transactions (the task is aborted once the first
/// re-sealed batch is visible, as a crash would stop it) leaves two live field keys and
/// patients under both; running it again finishes it without starting another.
async fn an_interrupted_rotation_is_finished_by_the_next_run(db: &Db) {
    let kek = KeyEncryptionKey::random();
    let store = db.open(Some(kek.clone())).await;
    store.migrate().await.unwrap();
    let provider = add_provider(&*store, "RXX").await;
    for first in (0..12_000).step_by(4_000) {
        store
            .bulk_load(&bulk_batch(1_000 + first, 4_000, provider))
            .await
            .unwrap();
    }
    let rotating = tokio::spawn({
        let store = store.clone();
        async move { store.rotate_keys(None).await }
    });
    let partial = "SELECT COUNT(*) FROM patient WHERE nhs_number LIKE 'k3.%'";
    loop {
        let moved = db.count(partial).await;
        if moved > 0 || rotating.is_finished() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    rotating.abort();
    let interrupted = rotating.await.is_err();
    let moved = db.count(partial).await;
    assert!(
        interrupted && moved < 12_000,
        "the rotation finished before it could be interrupted ({moved} moved)"
    );
    drop(store);

    let store = db.open(Some(kek)).await;
    let status = store.key_status().await.unwrap();
    assert_eq!((status.live_field_keys, status.current_field_key), (2, 3));
    // Counted again now: a batch's COMMIT already handed to SQLite's worker thread when the
    // task was aborted still lands, after the count above (seen once on SQLite: 2,000 moved
    // at the first count, 4,000 in fact). On SQLite `key_status` took the write lock, so any
    // such commit has finished by here; on PostgreSQL the count is at least later.
    let moved = db.count(partial).await;
    assert!(moved < 12_000, "{moved} moved before the resumed run");
    let resumed = store.rotate_keys(None).await.unwrap();
    assert!(resumed.resumed);
    assert_eq!(resumed.current_field_key, 3);
    assert_eq!(resumed.resealed.patients, 12_000 - moved as u64);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM patient WHERE nhs_number NOT LIKE 'k3.%'")
            .await,
        0
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM data_key").await, 3);
    let status = store.key_status().await.unwrap();
    assert_eq!(status.live_field_keys, 1);
    assert!(
        store
            .patient_timeline_bounds(&nhs(5_000))
            .await
            .unwrap()
            .is_some()
    );
}
on_both!(
    interrupted_rotation,
    an_interrupted_rotation_is_finished_by_the_next_run
);

/// A research extract names patients only by a pseudonym keyed per project (one patient, one
/// pseudonym within a project; unlinkable across projects; stable across key rotation), keeps
/// ages in whole years from the middle of the birth month and outcomes as days, pages by
/// cursor, honours a project's registry, and audits every page in its transaction.
async fn research_extracts_are_pseudonymised_per_project_and_audited(db: &Db) {
    use mdor_domain::record::RemovalKind;
    use mdor_store::{NewAuditEvent, NewRemoval, NewResearchProject, ResearchFilter};

    let kek = KeyEncryptionKey::random();
    let store = db.open(Some(kek.clone())).await;
    store.migrate().await.unwrap();
    let provider = add_provider(&*store, "RXX").await;
    let recipient = add_provider(&*store, "RES").await;
    // Patient 7 (born 1950-03-14) twice, patient 8 once.
    let mut ids = Vec::new();
    for (k, local, day) in [
        (7, "R1", date(2024, 5, 2)),
        (7, "R2", date(2024, 9, 30)),
        (8, "R3", date(2024, 5, 2)),
    ] {
        let prepared = prepare(
            submission(
                patient(&nhs(k), date(1950, 3, 14)),
                procedure("RXX", local, day),
                vec![manual_device(&udi(1), Some("LOT1"), None, None)],
            ),
            provider,
            &[None],
        );
        ids.push(store.insert_submission(&prepared, None).await.unwrap());
    }
    let first = store.procedure(ids[0]).await.unwrap().unwrap();
    store
        .insert_removals(
            &[NewRemoval {
                implant: first.implants[0].id,
                kind: RemovalKind::Revision,
                removal_date: date(2025, 6, 6),
                reason: None,
                revising_provider: provider,
                recorded_at: crate::fixtures::instant(2025, 6, 7, 9),
            }],
            None,
        )
        .await
        .unwrap();
    store
        .record_death(first.patient_id, date(2025, 12, 31), None)
        .await
        .unwrap();
    let project = |reference: &str, registry: Option<&str>| NewResearchProject {
        reference: reference.into(),
        title: "Hip stem survival".into(),
        organisation: recipient,
        registry: registry.map(str::to_string),
        approved_by: "Data Access Committee".into(),
        created_at: crate::fixtures::instant(2026, 11, 1, 9),
        expires_on: None,
    };
    let a = store
        .create_research_project(&project("DAC-1", None))
        .await
        .unwrap();
    let b = store
        .create_research_project(&project("DAC-2", Some("njr")))
        .await
        .unwrap();
    let c = store
        .create_research_project(&project("DAC-3", Some("bcir")))
        .await
        .unwrap();
    assert!(matches!(
        store.create_research_project(&project("DAC-1", None)).await,
        Err(StoreError::Conflict { .. })
    ));
    let stored = store.research_project("DAC-2").await.unwrap().unwrap();
    assert_eq!((stored.id, stored.organisation_ods.as_str()), (b, "RES"));
    assert_eq!(stored.registry.as_deref(), Some("njr"));

    let audit = NewAuditEvent {
        patients: Vec::new(),
        request: None,
        at: crate::fixtures::instant(2026, 11, 2, 9),
        organisation: recipient,
        role: "operator",
        token: None,
        account: None,
        action: "research.extract",
        resource: "research_project/DAC-1".into(),
        patient: None,
        record_count: 0,
        purpose: "research",
        outcome: "ok",
        break_glass: None,
    };
    let everything = ResearchFilter::default();
    let rows_a = store
        .research_extract_page(a, &everything, 0, 100, &audit)
        .await
        .unwrap();
    assert_eq!(rows_a.len(), 3);
    let r = &rows_a[0];
    assert_eq!(r.pseudonym.len(), 32);
    assert_eq!(
        r.pseudonym, rows_a[1].pseudonym,
        "one patient, one pseudonym"
    );
    assert_ne!(r.pseudonym, rows_a[2].pseudonym);
    // Born 1950-03-14, counted from 1950-03-15: 74 on 2024-05-02.
    assert_eq!(
        (r.age_at_procedure, r.procedure_month.as_str()),
        (74, "2024-05")
    );
    assert_eq!(r.removal_kind.as_deref(), Some("revision"));
    // 2024-05-02 to 2025-06-06: 400 days; to 2025-12-31: 608 days.
    assert_eq!((r.days_to_removal, r.days_to_death), (Some(400), Some(608)));
    assert_eq!(rows_a[1].days_to_death, Some(457));
    assert_eq!(
        (rows_a[2].days_to_removal, rows_a[2].days_to_death),
        (None, None)
    );
    assert_eq!(
        (r.provider_ods.as_str(), r.registry.as_str()),
        ("RXX", "njr")
    );

    // Another project: the same rows under unlinkable pseudonyms.
    let rows_b = store
        .research_extract_page(b, &everything, 0, 100, &audit)
        .await
        .unwrap();
    assert_eq!(rows_b.len(), 3);
    for (x, y) in rows_a.iter().zip(&rows_b) {
        assert_eq!(x.cursor, y.cursor);
        assert_ne!(x.pseudonym, y.pseudonym);
    }
    assert!(
        store
            .research_extract_page(c, &everything, 0, 100, &audit)
            .await
            .unwrap()
            .is_empty()
    );
    // A narrower extract: by implant date (inclusive at both ends), and by device type of
    // the register, of which LOT1's device is a hip stem once registered.
    let narrowed = |implanted_from, implanted_to, device_type: Option<&str>| ResearchFilter {
        implanted_from,
        implanted_to,
        device_type: device_type.map(str::to_string),
    };
    let later = store
        .research_extract_page(
            a,
            &narrowed(Some(date(2024, 9, 30)), None, None),
            0,
            100,
            &audit,
        )
        .await
        .unwrap();
    assert_eq!(later, [rows_a[1].clone()]);
    let may = store
        .research_extract_page(
            a,
            &narrowed(Some(date(2024, 5, 1)), Some(date(2024, 5, 2)), None),
            0,
            100,
            &audit,
        )
        .await
        .unwrap();
    assert_eq!(may, [rows_a[0].clone(), rows_a[2].clone()]);
    let stems = narrowed(None, None, Some("hip_stem"));
    assert!(
        store
            .research_extract_page(a, &stems, 0, 100, &audit)
            .await
            .unwrap()
            .is_empty(),
        "not in the register yet"
    );
    crate::fixtures::add_device_model(&*store, &udi(1)).await;
    assert_eq!(
        store
            .research_extract_page(a, &stems, 0, 100, &audit)
            .await
            .unwrap(),
        rows_a
    );
    assert!(
        store
            .research_extract_page(a, &narrowed(None, None, Some("hip_cup")), 0, 100, &audit)
            .await
            .unwrap()
            .is_empty()
    );
    // Pages follow the cursor.
    let page = store
        .research_extract_page(a, &everything, 0, 2, &audit)
        .await
        .unwrap();
    let rest = store
        .research_extract_page(a, &everything, page[1].cursor, 2, &audit)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0], rows_a[2]);
    // Every page read wrote an audit entry with its row count.
    let counts: Vec<u64> = store
        .audit_events(None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "research.extract")
        .map(|e| e.record_count)
        .collect();
    let mut sorted = counts.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [0, 0, 0, 1, 1, 2, 2, 3, 3, 3]);

    // Rotation re-wraps the project keys with the others: pseudonyms do not change.
    let new = KeyEncryptionKey::random();
    store.rotate_keys(Some(new.clone())).await.unwrap();
    drop(store);
    let reopened = db.open(Some(new)).await;
    assert_eq!(
        reopened
            .research_extract_page(a, &everything, 0, 100, &audit)
            .await
            .unwrap(),
        rows_a
    );
    let with_old = db.open(Some(kek)).await;
    assert!(matches!(
        with_old
            .research_extract_page(a, &everything, 0, 100, &audit)
            .await,
        Err(StoreError::Keys(_))
    ));
}
on_both!(
    research,
    research_extracts_are_pseudonymised_per_project_and_audited
);

/// The researchers named on a project: each named once (naming again is a conflict), their
/// projects listed by reference, removed once; every change writes its audit entry in its
/// transaction, and a refused one writes none.
async fn research_members_are_named_listed_and_removed_with_their_audit(db: &Db) {
    use mdor_store::{AccountRole, NewAccount, NewAuditEvent, NewResearchProject};

    let store = db.open(Some(KeyEncryptionKey::random())).await;
    store.migrate().await.unwrap();
    let recipient = add_provider(&*store, "RES").await;
    let mut projects = Vec::new();
    for reference in ["DAC-9", "DAC-8"] {
        let project = NewResearchProject {
            reference: reference.into(),
            title: "Hip stem survival".into(),
            organisation: recipient,
            registry: None,
            approved_by: "Data Access Committee".into(),
            created_at: crate::fixtures::instant(2026, 11, 1, 9),
            expires_on: Some(date(2027, 10, 31)),
        };
        projects.push(store.create_research_project(&project).await.unwrap());
    }
    let (a, b) = (projects[0], projects[1]);
    let mut researchers = Vec::new();
    for username in ["a.researcher", "b.researcher"] {
        let account = NewAccount {
            username: username.into(),
            role: AccountRole::Researcher,
            organisation: Some(recipient),
            patient: None,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into(),
            totp_secret_sealed: vec![7; 48],
            backup_code_hashes: vec![],
            created_at: crate::fixtures::instant(2026, 11, 1, 9),
        };
        researchers.push(store.insert_account(&account, None).await.unwrap());
    }
    let (first, second) = (researchers[0], researchers[1]);
    let audit = |action: &'static str| NewAuditEvent {
        patients: Vec::new(),
        request: None,
        at: crate::fixtures::instant(2026, 11, 2, 9),
        organisation: recipient,
        role: "operator",
        token: None,
        account: None,
        action,
        resource: "research_project/DAC".into(),
        patient: None,
        record_count: 0,
        purpose: "administration",
        outcome: "ok",
        break_glass: None,
    };
    let references = |projects: Vec<mdor_store::ResearchProject>| {
        projects
            .into_iter()
            .map(|p| p.reference)
            .collect::<Vec<_>>()
    };

    assert!(store.research_projects_of(first).await.unwrap().is_empty());
    for (project, account) in [(a, first), (b, first), (b, second)] {
        store
            .add_research_member(project, account, &audit("research.member_add"))
            .await
            .unwrap();
    }
    assert!(matches!(
        store
            .add_research_member(a, first, &audit("research.member_add"))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        references(store.research_projects_of(first).await.unwrap()),
        ["DAC-8", "DAC-9"]
    );
    assert_eq!(
        references(store.research_projects_of(second).await.unwrap()),
        ["DAC-8"]
    );
    // The approval's last day is kept.
    assert_eq!(
        store
            .research_project("DAC-9")
            .await
            .unwrap()
            .unwrap()
            .expires_on,
        Some(date(2027, 10, 31))
    );

    let remove = |project, account| {
        let store = store.clone();
        async move {
            store
                .remove_research_member(project, account, &audit("research.member_remove"))
                .await
                .unwrap()
        }
    };
    assert!(remove(a, first).await);
    assert!(!remove(a, first).await, "already removed");
    assert!(!remove(a, second).await, "never named");
    assert_eq!(
        references(store.research_projects_of(first).await.unwrap()),
        ["DAC-8"]
    );

    let mut actions: Vec<String> = store
        .audit_events(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .filter(|a| a.starts_with("research."))
        .collect();
    actions.sort();
    assert_eq!(
        actions,
        [
            "research.member_add",
            "research.member_add",
            "research.member_add",
            "research.member_remove"
        ]
    );
}
on_both!(
    research_members,
    research_members_are_named_listed_and_removed_with_their_audit
);
