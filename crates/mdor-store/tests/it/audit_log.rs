//! The audit table refuses changes on both engines: a row, once written, can be neither
//! updated nor deleted (nor, on PostgreSQL, truncated away, with or without the review items
//! that refer to it), even by the application's own database role going around the store.

use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection, PgConnection};

use mdor_store::{NewAuditEvent, NewRecallCase, RecallCaseCriteria, Store, connect};

use crate::fixtures::{add_provider, instant, udi};
use crate::harness::{TempSqliteFile, postgres_url, unique_name, with_database};

/// Writes one audit entry through the store (opening a case audits it).
async fn write_one_audit_entry(store: &dyn Store) {
    store.migrate().await.unwrap();
    let regulator = add_provider(store, "MHRA").await;
    store
        .create_recall_case(
            &NewRecallCase {
                reference: "MHRA-AUDIT-1".to_string(),
                title: "t".to_string(),
                reason: "r".to_string(),
                opened_by: regulator,
                opened_at: instant(2026, 11, 20, 10),
                criteria: RecallCaseCriteria {
                    udi_dis: vec![udi(1).as_str().to_string()],
                    ..RecallCaseCriteria::default()
                },
            },
            &NewAuditEvent {
                patients: Vec::new(),
                request: None,
                at: instant(2026, 11, 20, 10),
                organisation: regulator,
                role: "regulator",
                token: None,
                account: None,
                action: "recall_case.create",
                resource: "recall_case".to_string(),
                patient: None,
                record_count: 0,
                purpose: "recall",
                outcome: "ok",
                break_glass: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(store.audit_events(None, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn sqlite_audit_rows_cannot_be_updated_or_deleted() {
    let file = TempSqliteFile::new("audit-append-only");
    let store = connect(&file.url(), &crate::harness::keyed())
        .await
        .unwrap();
    write_one_audit_entry(&*store).await;
    let mut side = SqliteConnectOptions::from_str(&file.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    for statement in [
        "UPDATE audit_event SET outcome = 'edited'",
        "DELETE FROM audit_event",
    ] {
        let refused = sqlx::query(statement).execute(&mut side).await.unwrap_err();
        assert!(
            refused.to_string().contains("append-only"),
            "{statement}: {refused}"
        );
    }
    assert_eq!(store.audit_events(None, 10).await.unwrap()[0].outcome, "ok");
}

#[tokio::test]
async fn postgres_audit_rows_cannot_be_updated_deleted_or_truncated() {
    let Some(admin_url) = postgres_url("audit_rows_cannot_be_updated_deleted_or_truncated") else {
        return;
    };
    let database = unique_name("mdor_test");
    let mut admin = PgConnection::connect(&admin_url).await.unwrap();
    sqlx::raw_sql(&format!("CREATE DATABASE {database}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = with_database(&admin_url, &database);
    let outcome = tokio::spawn(async move {
        let store = connect(&url, &crate::harness::keyed()).await.unwrap();
        write_one_audit_entry(&*store).await;
        let mut side = PgConnection::connect(&url).await.unwrap();
        // A plain TRUNCATE is refused before the trigger runs, since review items
        // (`access_review`) refer to entries; with CASCADE the trigger refuses it.
        for (statement, refusal) in [
            ("UPDATE audit_event SET outcome = 'edited'", "append-only"),
            ("DELETE FROM audit_event", "append-only"),
            ("TRUNCATE audit_event", "foreign key"),
            ("TRUNCATE audit_event CASCADE", "append-only"),
        ] {
            let refused = sqlx::query(statement).execute(&mut side).await.unwrap_err();
            assert!(
                refused.to_string().contains(refusal),
                "{statement}: {refused}"
            );
        }
        assert_eq!(store.audit_events(None, 10).await.unwrap()[0].outcome, "ok");
        side.close().await.unwrap();
    })
    .await;
    crate::harness::drop_database(&mut admin, &database).await;
    outcome.unwrap();
}

fn access(
    organisation: mdor_store::OrganisationId,
    at: chrono::DateTime<chrono::Utc>,
) -> NewAuditEvent {
    NewAuditEvent {
        patients: Vec::new(),
        request: None,
        at,
        organisation,
        role: "regulator",
        token: None,
        account: None,
        action: "recall.query",
        resource: "recall".to_string(),
        patient: None,
        record_count: 0,
        purpose: "recall",
        outcome: "ok",
        break_glass: None,
    }
}

/// Concurrent audited reads and refusals number their entries 1, 2, 3, … with no gap or
/// repeat, and each stored leaf hash is the hash of the entry as read back (instants with
/// sub-microsecond parts included, which both engines cut to microseconds).
pub async fn concurrent_audit_entries_are_numbered_without_gaps_and_carry_their_leaf_hash(
    store: std::sync::Arc<dyn Store>,
) {
    use chrono::TimeZone;
    let regulator = add_provider(&*store, "MHRA").await;
    let provider = add_provider(&*store, "RA1").await;
    let prepared = crate::fixtures::simple(
        1,
        provider,
        "RA1",
        "L1",
        crate::fixtures::date(2026, 1, 5),
        &udi(1),
    );
    let procedure = store.insert_submission(&prepared, None).await.unwrap();
    let at = chrono::Utc
        .timestamp_opt(1_795_000_000, 123_456_789)
        .single()
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..24 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            match i % 3 {
                0 => store.append_audit(&access(regulator, at)).await.unwrap(),
                1 => {
                    let read = store
                        .audited_procedure(procedure, Some(regulator), &access(regulator, at))
                        .await
                        .unwrap();
                    assert!(read.is_none(), "another provider's procedure is withheld");
                }
                _ => {
                    let read = store
                        .audited_procedure(procedure, None, &access(regulator, at))
                        .await
                        .unwrap();
                    assert!(read.is_some());
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let entries = store.audit_log_page(0, 100).await.unwrap();
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=24).collect::<Vec<_>>()
    );
    for entry in &entries {
        assert_eq!(
            entry.leaf_hash.as_deref(),
            Some(&mdor_store::audit_log::leaf_hash(entry)[..]),
            "entry {}",
            entry.seq
        );
        assert_eq!(entry.at.timestamp_subsec_nanos(), 123_456_000);
    }
    let denied = entries.iter().filter(|e| e.outcome == "denied").count();
    let read = entries.iter().filter(|e| e.record_count == 1).count();
    assert_eq!((denied, read), (8, 8));
    assert!(
        entries
            .iter()
            .filter(|e| e.action == "recall.query" && e.record_count == 1)
            .all(|e| e.patient.is_some())
    );
    assert_eq!(store.audit_log_page(20, 100).await.unwrap().len(), 4);
}
