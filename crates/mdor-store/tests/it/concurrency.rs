//! Concurrent submissions from spawned tasks: every one is stored once, with its own id, and
//! submissions for one existing patient all attach to that patient.

use std::collections::HashSet;
use std::sync::Arc;

use mdor_store::{ProcedureId, Store, StoreError};

use crate::fixtures::{add_provider, date, nhs, simple, udi};

const N_TASKS: u32 = 20;
const SUBMISSIONS_PER_TASK: u32 = 5;
/// The patient every task submits once for, created before the tasks start.
const SHARED_PATIENT: u32 = 1_000;

pub async fn concurrent_submissions_all_succeed_with_distinct_ids(store: Arc<dyn Store>) {
    let provider_id = add_provider(&*store, "RXX").await;
    let device = udi(10);
    // Creates the shared patient and the consultant before the tasks race.
    let first = store
        .insert_submission(
            &simple(
                SHARED_PATIENT,
                provider_id,
                "RXX",
                "C-init",
                date(2019, 1, 1),
                &device,
            ),
            None,
        )
        .await
        .unwrap();
    let shared_patient = store.procedure(first).await.unwrap().unwrap().patient_id;

    let mut tasks = Vec::new();
    for task in 0..N_TASKS {
        let store = Arc::clone(&store);
        let device = device.clone();
        tasks.push(tokio::spawn(async move {
            let mut stored: Vec<(String, u32, ProcedureId)> = Vec::new();
            for j in 0..SUBMISSIONS_PER_TASK {
                // Each task's first submission is for the shared patient; the rest are new.
                let k = if j == 0 {
                    SHARED_PATIENT
                } else {
                    task * SUBMISSIONS_PER_TASK + j
                };
                let local = format!("C-{task}-{j}");
                let prepared = simple(k, provider_id, "RXX", &local, date(2020, 1 + j, 1), &device);
                let id = store.insert_submission(&prepared, None).await.unwrap();
                stored.push((local, k, id));
            }
            stored
        }));
    }
    let mut stored = Vec::new();
    for task in tasks {
        stored.extend(task.await.unwrap());
    }

    let n = (N_TASKS * SUBMISSIONS_PER_TASK) as usize;
    assert_eq!(stored.len(), n);
    let ids: HashSet<ProcedureId> = stored.iter().map(|(_, _, id)| *id).collect();
    assert_eq!(ids.len(), n, "procedure ids were reused");
    assert!(!ids.contains(&first));
    for (local, k, id) in &stored {
        assert_eq!(
            store
                .procedure_by_local_id(provider_id, local)
                .await
                .unwrap(),
            Some(*id)
        );
        let record = store.procedure(*id).await.unwrap().unwrap();
        assert_eq!(record.local_record_id, *local);
        assert_eq!(record.nhs_number, nhs(*k).as_str());
        if *k == SHARED_PATIENT {
            assert_eq!(record.patient_id, shared_patient);
        }
    }
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.procedures, n as i64 + 1);
    assert_eq!(counts.implants, n as i64 + 1);
    assert_eq!(
        counts.patients,
        1 + i64::from(N_TASKS * (SUBMISSIONS_PER_TASK - 1))
    );
    assert_eq!(counts.consultants, 1);
}

/// How many tasks submit the first procedures of one new patient at the same moment.
const N_RACING: u32 = 10;

pub async fn concurrent_first_submissions_for_one_new_patient_share_that_patient(
    store: Arc<dyn Store>,
) {
    let provider_id = add_provider(&*store, "RXX").await;
    let device = udi(10);
    // Another patient's submission creates the consultant, so only the patient is new.
    store
        .insert_submission(
            &simple(1, provider_id, "RXX", "R-init", date(2019, 1, 1), &device),
            None,
        )
        .await
        .unwrap();
    let start = Arc::new(tokio::sync::Barrier::new(N_RACING as usize));
    let mut tasks = Vec::new();
    for task in 0..N_RACING {
        let store = Arc::clone(&store);
        let device = device.clone();
        let start = Arc::clone(&start);
        tasks.push(tokio::spawn(async move {
            let prepared = simple(
                2,
                provider_id,
                "RXX",
                &format!("R-{task}"),
                date(2020, 1, 1),
                &device,
            );
            start.wait().await;
            store.insert_submission(&prepared, None).await
        }));
    }
    let mut patients = HashSet::new();
    for task in tasks {
        let id = task.await.unwrap().unwrap();
        patients.insert(store.procedure(id).await.unwrap().unwrap().patient_id);
    }
    assert_eq!(patients.len(), 1);
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.patients, 2);
    assert_eq!(counts.procedures, 1 + i64::from(N_RACING));

    // Two first submissions of another new patient with different dates of birth: one
    // creates the patient, the other is a mismatch, whichever comes first.
    let start = Arc::new(tokio::sync::Barrier::new(2));
    let mut tasks = Vec::new();
    for (task, born) in [(0, date(1950, 3, 14)), (1, date(1960, 7, 7))] {
        let store = Arc::clone(&store);
        let device = device.clone();
        let start = Arc::clone(&start);
        tasks.push(tokio::spawn(async move {
            let mut prepared = simple(
                3,
                provider_id,
                "RXX",
                &format!("M-{task}"),
                date(2020, 1, 1),
                &device,
            );
            prepared.submission.patient.date_of_birth = born;
            start.wait().await;
            store.insert_submission(&prepared, None).await
        }));
    }
    let mut stored = 0;
    let mut mismatches = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => stored += 1,
            Err(StoreError::PatientMismatch) => mismatches += 1,
            Err(other) => panic!("expected a patient mismatch, got {other:?}"),
        }
    }
    assert_eq!((stored, mismatches), (1, 1));
    assert_eq!(store.counts().await.unwrap().patients, 3);
}
