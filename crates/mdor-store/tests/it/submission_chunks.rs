//! Submission chunks committed together on every backend: each chunk's records, report and
//! progress, a correction among chunks that create (on SQLite, written in a second
//! transaction with the engine's foreign keys on), and a group that does not start where
//! the job stands.

use mdor_store::{
    ChunkRecord, ChunkRecordBody, NewSubmissionJob, OrganisationId, PreparedSubmission,
    RecordEffect, RecordOutcome, Store, StoreError, SubmissionChunk, SubmissionFormat,
    SubmissionJobId, SubmissionState,
};

use crate::fixtures::*;

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

async fn started_job(
    store: &dyn Store,
    organisation: OrganisationId,
    total: u64,
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
            file_bytes: 30,
            state: SubmissionState::Queued,
            resolves_quarantine: None,
            created_at: now(),
        })
        .await
        .unwrap();
    assert!(store.start_submission_job(id, total, now()).await.unwrap());
    id
}

fn chunk(
    job: SubmissionJobId,
    organisation: OrganisationId,
    (from, to): (u64, u64),
    to_line: u64,
    last: bool,
    records: Vec<ChunkRecord>,
) -> SubmissionChunk {
    SubmissionChunk {
        job,
        organisation,
        token: None,
        registry: "mdor_core".into(),
        dataset_version: "1.1".into(),
        received_at: now(),
        from_offset: from,
        to_offset: to,
        to_line,
        last,
        records,
    }
}

fn valid(line: u64, prepared: PreparedSubmission, hash: &str) -> ChunkRecord {
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
        record: mdor_store::PackedRecord::pack(&format!("{{\"line\":{line}}}")),
        body: ChunkRecordBody::Valid {
            prepared: Box::new(prepared),
            content_hash: hash.into(),
            warnings: None,
            names_given: true,
        },
    }
}

fn rejected(line: u64) -> ChunkRecord {
    ChunkRecord {
        line,
        local_record_id: Some(format!("BAD-{line}")),
        record: mdor_store::PackedRecord::pack("{}"),
        body: ChunkRecordBody::Rejected {
            errors: r#"[{"field":"procedure.date","code":"required","message":"m"}]"#.into(),
        },
    }
}

fn effects(results: &[mdor_store::ChunkRecordResult]) -> Vec<(RecordOutcome, RecordEffect)> {
    results.iter().map(|r| (r.outcome, r.effect)).collect()
}

pub async fn chunks_committed_together_keep_each_chunks_records_and_a_correction_among_them(
    store: &dyn Store,
) {
    let ra1 = add_provider(store, "RA1").await;
    let device = udi(1);
    let job = started_job(store, ra1, 5).await;
    let first = chunk(
        job,
        ra1,
        (0, 10),
        4,
        false,
        vec![
            valid(
                1,
                simple(1, ra1, "RA1", "P1", date(2024, 6, 1), &device),
                "h1",
            ),
            valid(
                2,
                simple(2, ra1, "RA1", "P2", date(2024, 6, 2), &device),
                "h2",
            ),
            rejected(3),
        ],
    );
    // P1 again, changed: the second chunk corrects what the first created.
    let second = chunk(
        job,
        ra1,
        (10, 20),
        6,
        true,
        vec![
            valid(
                4,
                simple(1, ra1, "RA1", "P1", date(2024, 6, 9), &device),
                "h1b",
            ),
            valid(
                5,
                simple(3, ra1, "RA1", "P3", date(2024, 6, 3), &device),
                "h3",
            ),
        ],
    );
    let results = store
        .commit_submission_chunks(&[first, second])
        .await
        .unwrap();
    assert_eq!(results.len(), 2);
    use RecordEffect::*;
    use RecordOutcome::*;
    assert_eq!(
        effects(&results[0]),
        vec![(Accepted, Created), (Accepted, Created), (Rejected, None)]
    );
    assert_eq!(
        effects(&results[1]),
        vec![(Accepted, Corrected), (Accepted, Created)]
    );
    let p1 = results[0][0].procedure.unwrap();
    assert_eq!(results[1][0].procedure, Some(p1));

    let stored = store.submission_job(job).await.unwrap().unwrap();
    assert_eq!(stored.state, SubmissionState::Completed);
    assert_eq!((stored.resume_offset, stored.resume_line), (20, 6));
    assert_eq!(stored.records_done, 5);
    let c = stored.counts;
    assert_eq!((c.accepted, c.rejected), (4, 1));
    assert_eq!((c.created, c.corrected, c.unchanged), (3, 1, 0));

    let p1_record = store.procedure(p1).await.unwrap().unwrap();
    assert_eq!(p1_record.procedure_date, date(2024, 6, 9));
    let history = store.procedure_history(p1).await.unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[0].record.as_deref(), Some("{\"line\":4}"));
    assert_eq!(history[1].record.as_deref(), Some("{\"line\":1}"));
    let report = store.submission_records(job, 0, 10).await.unwrap();
    let lines: Vec<u64> = report.iter().map(|r| r.line).collect();
    assert_eq!(lines, vec![1, 2, 3, 4, 5]);
}

pub async fn a_group_of_chunks_that_does_not_start_where_the_job_stands_writes_nothing(
    store: &dyn Store,
) {
    let ra1 = add_provider(store, "RA1").await;
    let device = udi(1);
    let job = started_job(store, ra1, 2).await;
    let records = |k: u32, line: u64, local: &str| {
        vec![valid(
            line,
            simple(k, ra1, "RA1", local, date(2024, 6, 1), &device),
            local,
        )]
    };
    let stale = [
        chunk(job, ra1, (5, 10), 2, false, records(1, 1, "P1")),
        chunk(job, ra1, (10, 20), 3, true, records(2, 2, "P2")),
    ];
    let refused = store.commit_submission_chunks(&stale).await.unwrap_err();
    assert!(
        matches!(&refused, StoreError::Conflict { constraint } if constraint == "submission_job.resume_offset"),
        "{refused:?}"
    );
    let stored = store.submission_job(job).await.unwrap().unwrap();
    assert_eq!((stored.resume_offset, stored.records_done), (0, 0));
    assert_eq!(store.procedure_by_local_id(ra1, "P1").await.unwrap(), None);
    assert_eq!(store.procedure_by_local_id(ra1, "P2").await.unwrap(), None);
    assert!(
        store
            .submission_records(job, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
