//! Data quality figures and expected activity on every backend, checked against counts worked
//! out by hand from the records each case stores.

use std::collections::BTreeMap;

use mdor_domain::Month;
use mdor_store::{
    ChunkRecord, ChunkRecordBody, ExpectedActivity, FieldErrorCount, NewSubmissionJob,
    OpenFlagCount, OrganisationId, Store, StoreError, SubmissionChunk, SubmissionFormat,
    SubmissionJobId, SubmissionMonth, SubmissionState,
};

use crate::fixtures::*;

fn month(text: &str) -> Month {
    Month::parse(text).unwrap()
}

fn expected(organisation: OrganisationId, m: &str, n: u32) -> ExpectedActivity {
    ExpectedActivity {
        organisation,
        month: month(m),
        expected_procedures: n,
    }
}

/// Creates a job received at `received`, started, and commits `records` as its only chunk.
async fn job(
    store: &dyn Store,
    organisation: OrganisationId,
    received: chrono::DateTime<chrono::Utc>,
    records: Vec<ChunkRecord>,
) -> SubmissionJobId {
    let id = store
        .create_submission_job(&NewSubmissionJob {
            organisation,
            token: None,
            submitted_by: "operator".into(),
            registry: "mdor_core".into(),
            dataset_version: "1.1".into(),
            format: SubmissionFormat::Ndjson,
            spool_path: "unused".into(),
            file_bytes: 100,
            state: SubmissionState::Queued,
            resolves_quarantine: None,
            created_at: received,
        })
        .await
        .unwrap();
    assert!(
        store
            .start_submission_job(id, records.len() as u64, received)
            .await
            .unwrap()
    );
    let lines = records.len() as u64 + 1;
    store
        .commit_submission_chunks(&[SubmissionChunk {
            job: id,
            organisation,
            token: None,
            registry: "mdor_core".into(),
            dataset_version: "1.1".into(),
            received_at: received,
            from_offset: 0,
            to_offset: 100,
            to_line: lines,
            last: true,
            records,
        }])
        .await
        .unwrap();
    id
}

fn rejected(line: u64, errors: &[(&str, &str)]) -> ChunkRecord {
    let errors: Vec<serde_json::Value> = errors
        .iter()
        .map(|(field, code)| serde_json::json!({"field": field, "code": code, "message": "m"}))
        .collect();
    ChunkRecord {
        line,
        local_record_id: Some(format!("BAD-{line}")),
        record: mdor_store::PackedRecord::pack("{}"),
        body: ChunkRecordBody::Rejected {
            errors: serde_json::Value::Array(errors).to_string(),
        },
    }
}

fn valid(
    line: u64,
    prepared: mdor_store::PreparedSubmission,
    warnings: Option<&str>,
) -> ChunkRecord {
    ChunkRecord {
        line,
        local_record_id: Some(
            prepared
                .submission
                .procedure
                .local_record_id
                .as_str()
                .into(),
        ),
        record: mdor_store::PackedRecord::pack("{}"),
        body: ChunkRecordBody::Valid {
            prepared: Box::new(prepared),
            content_hash: format!("hash-{line}"),
            warnings: warnings.map(str::to_string),
            names_given: true,
        },
    }
}

pub async fn provider_activity_counts_procedures_submissions_errors_flags_and_expected_activity(
    store: &dyn Store,
) {
    let ra1 = add_provider(store, "RA1").await;
    let rb2 = add_provider(store, "RB2").await;
    let registered = udi(1);
    let model = add_device_model(store, &registered).await;
    let unregistered = udi(2);

    // RA1's procedures, January to March 2026 (plus one the day before the range):
    // P1 2026-01-05 not in register; P2 2026-01-20 registered, no flag; P3 2026-02-10
    // registered but expired on 2026-01-01; P4 2026-02-11 not in register; P5 2025-12-31.
    let stored = [
        simple(1, ra1, "RA1", "P1", date(2026, 1, 5), &unregistered),
        prepare(
            submission(
                patient(&nhs(2), date(1950, 3, 14)),
                procedure("RA1", "P2", date(2026, 1, 20)),
                vec![manual_device(&registered, Some("L"), Some("S2"), None)],
            ),
            ra1,
            &[Some(model)],
        ),
        prepare(
            submission(
                patient(&nhs(3), date(1950, 3, 14)),
                procedure("RA1", "P3", date(2026, 2, 10)),
                vec![manual_device(
                    &registered,
                    Some("L"),
                    Some("S3"),
                    Some(date(2026, 1, 1)),
                )],
            ),
            ra1,
            &[Some(model)],
        ),
        simple(4, ra1, "RA1", "P4", date(2026, 2, 11), &unregistered),
        simple(5, ra1, "RA1", "P5", date(2025, 12, 31), &unregistered),
        // Another provider's procedure in range counts for nobody here.
        simple(6, rb2, "RB2", "Q1", date(2026, 1, 10), &unregistered),
    ];
    for submission in &stored {
        store.insert_submission(submission, None).await.unwrap();
    }

    // January's job: two accepted records (one with warnings), dated in March and not in the
    // register, and two rejected ones. February's job (received 23:30 UTC on the 28th): one
    // rejected. December's job is before the range; RB2's job is another provider's.
    job(
        store,
        ra1,
        instant(2026, 1, 15, 10),
        vec![
            valid(
                2,
                simple(7, ra1, "RA1", "S1", date(2026, 3, 1), &unregistered),
                None,
            ),
            valid(
                3,
                simple(8, ra1, "RA1", "S2", date(2026, 3, 2), &unregistered),
                Some(r#"[{"field":"devices[0].udi","code":"udi_not_in_register","message":"m"}]"#),
            ),
            rejected(
                4,
                &[
                    ("patient.nhs_number", "bad_check_digit"),
                    ("procedure.procedure_date", "date_in_future"),
                ],
            ),
            rejected(5, &[("patient.nhs_number", "bad_check_digit")]),
        ],
    )
    .await;
    job(
        store,
        ra1,
        instant(2026, 2, 28, 23),
        vec![rejected(2, &[("procedure.procedure_date", "required")])],
    )
    .await;
    job(
        store,
        ra1,
        instant(2025, 12, 20, 9),
        vec![rejected(2, &[("patient.nhs_number", "bad_check_digit")])],
    )
    .await;
    job(
        store,
        rb2,
        instant(2026, 1, 15, 9),
        vec![rejected(2, &[("procedure.laterality", "not_in_code_list")])],
    )
    .await;

    // Expected activity: February is loaded twice (the second figure replaces the first);
    // April is outside the range and RB2's figure is another provider's.
    let loaded = store
        .upsert_expected_activity(
            &[
                expected(ra1, "2026-01", 10),
                expected(ra1, "2026-02", 2),
                expected(rb2, "2026-01", 3),
            ],
            instant(2026, 3, 1, 8),
        )
        .await
        .unwrap();
    assert_eq!(loaded, 3);
    store
        .upsert_expected_activity(
            &[expected(ra1, "2026-02", 4), expected(ra1, "2026-04", 7)],
            instant(2026, 3, 2, 8),
        )
        .await
        .unwrap();
    // A batch naming an unknown organisation writes none of its rows, March's included.
    let refused = store
        .upsert_expected_activity(
            &[
                expected(ra1, "2026-03", 5),
                expected(OrganisationId(999_999), "2026-03", 5),
            ],
            instant(2026, 3, 3, 8),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict { .. })),
        "{refused:?}"
    );

    let activity = store
        .provider_activity(ra1, month("2026-01"), month("2026-03"))
        .await
        .unwrap();
    let by_month = |pairs: &[(&str, u64)]| -> BTreeMap<Month, u64> {
        pairs.iter().map(|(m, n)| (month(m), *n)).collect()
    };
    // January P1, P2; February P3, P4; March the two submitted records; P5 is December's.
    assert_eq!(
        activity.procedures,
        by_month(&[("2026-01", 2), ("2026-02", 2), ("2026-03", 2)])
    );
    // P2 has no flag; every other one has one.
    assert_eq!(
        activity.procedures_with_open_flags,
        by_month(&[("2026-01", 1), ("2026-02", 2), ("2026-03", 2)])
    );
    assert_eq!(
        activity.open_flags,
        [
            OpenFlagCount {
                flag: "expired_at_implant".into(),
                procedures: 1,
                implants: 1
            },
            OpenFlagCount {
                flag: "not_in_register".into(),
                procedures: 4,
                implants: 4
            },
        ]
    );
    let submissions: Vec<(String, SubmissionMonth)> = activity
        .submissions
        .iter()
        .map(|(m, s)| (m.to_string(), *s))
        .collect();
    assert_eq!(
        submissions,
        [
            (
                "2026-01".to_string(),
                SubmissionMonth {
                    jobs: 1,
                    accepted: 1,
                    accepted_with_warnings: 1,
                    rejected: 2
                }
            ),
            (
                "2026-02".to_string(),
                SubmissionMonth {
                    jobs: 1,
                    accepted: 0,
                    accepted_with_warnings: 0,
                    rejected: 1
                }
            ),
        ]
    );
    let error = |field: &str, code: &str, records| FieldErrorCount {
        field: field.into(),
        code: code.into(),
        records,
    };
    // Two rejected records had a bad NHS number in range (December's third is outside);
    // ties are ordered by field then code.
    assert_eq!(
        activity.rejected_errors,
        [
            error("patient.nhs_number", "bad_check_digit", 2),
            error("procedure.procedure_date", "date_in_future", 1),
            error("procedure.procedure_date", "required", 1),
        ]
    );
    // Every rejected RA1 record is still quarantined, December's included.
    assert_eq!(activity.open_quarantine, 4);
    assert_eq!(
        activity.expected,
        by_month(&[("2026-01", 10), ("2026-02", 4)])
    );

    // A range with nothing in it reads as empty, not as an error.
    let empty = store
        .provider_activity(ra1, month("2030-01"), month("2030-12"))
        .await
        .unwrap();
    assert!(empty.procedures.is_empty() && empty.submissions.is_empty());
    assert!(empty.rejected_errors.is_empty() && empty.expected.is_empty());
    assert_eq!(empty.open_quarantine, 4);
}
