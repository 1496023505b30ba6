//! Recall cases on every backend: which implants a case's criteria catch (lists, ranges,
//! windows, unknown production identifiers), work items per patient and provider, paging,
//! refresh after late submissions, guarded status changes, and the audit of each access.

use mdor_domain::UdiDi;
use mdor_store::{
    NewAuditEvent, NewRecallCase, OrganisationId, RecallCaseCriteria, RecallCaseGrowth,
    RecallCaseId, RecallEntryId, RecallStatus, RecallStatusChange, RecallWorkQuery, Store,
    StoreError,
};

use crate::fixtures::*;

fn audit(organisation: OrganisationId, action: &'static str) -> NewAuditEvent {
    NewAuditEvent {
        patients: Vec::new(),
        request: None,
        at: instant(2026, 11, 20, 10),
        organisation,
        role: "regulator",
        token: None,
        account: None,
        action,
        resource: "recall_case".to_string(),
        patient: None,
        record_count: 0,
        purpose: "recall",
        outcome: "ok",
        break_glass: None,
    }
}

fn case(reference: &str, by: OrganisationId, criteria: RecallCaseCriteria) -> NewRecallCase {
    NewRecallCase {
        reference: reference.to_string(),
        title: "Stem fracture at the neck".to_string(),
        reason: "Field safety notice FSN-2026-041".to_string(),
        opened_by: by,
        opened_at: instant(2026, 11, 20, 10),
        criteria,
    }
}

/// Stores one procedure for patient `k` at `provider` with one manually entered device.
#[allow(clippy::too_many_arguments)]
async fn implant(
    store: &dyn Store,
    k: u32,
    provider: OrganisationId,
    ods_code: &str,
    local: &str,
    udi_di: &UdiDi,
    lot: Option<&str>,
    serial: Option<&str>,
    expiry: Option<chrono::NaiveDate>,
) {
    let prepared = prepare(
        submission(
            patient(&nhs(k), date(1950, 3, 14)),
            procedure(ods_code, local, date(2024, 5, 1)),
            vec![manual_device(udi_di, lot, serial, expiry)],
        ),
        provider,
        &[None],
    );
    store.insert_submission(&prepared, None).await.unwrap();
}

struct World {
    regulator: OrganisationId,
    ra1: OrganisationId,
    rb2: OrganisationId,
    stem: UdiDi,
    cup: UdiDi,
}

async fn world(store: &dyn Store) -> World {
    let ra1 = add_provider(store, "RA1").await;
    let rb2 = add_provider(store, "RB2").await;
    let regulator = add_provider(store, "MHRA").await;
    let stem = udi(1);
    let cup = udi(2);
    // Patients 1–3 at RA1 and 4–5 at RB2 received stems from lots L100, L150, L200, an
    // unrecorded lot, and L150; patient 6 a cup from L150; patient 1 also a second stem at RB2.
    implant(
        store,
        1,
        ra1,
        "RA1",
        "A-1",
        &stem,
        Some("L100"),
        Some("S1"),
        Some(date(2027, 1, 1)),
    )
    .await;
    implant(
        store,
        2,
        ra1,
        "RA1",
        "A-2",
        &stem,
        Some("L150"),
        Some("S2"),
        Some(date(2028, 1, 1)),
    )
    .await;
    implant(
        store,
        3,
        ra1,
        "RA1",
        "A-3",
        &stem,
        Some("L200"),
        Some("S3"),
        None,
    )
    .await;
    implant(store, 4, rb2, "RB2", "B-4", &stem, None, None, None).await;
    implant(
        store,
        5,
        rb2,
        "RB2",
        "B-5",
        &stem,
        Some("L150"),
        Some("S5"),
        Some(date(2029, 6, 1)),
    )
    .await;
    implant(
        store,
        6,
        rb2,
        "RB2",
        "B-6",
        &cup,
        Some("L150"),
        Some("S6"),
        None,
    )
    .await;
    implant(
        store,
        1,
        rb2,
        "RB2",
        "B-1",
        &stem,
        Some("L120"),
        Some("S7"),
        None,
    )
    .await;
    World {
        regulator,
        ra1,
        rb2,
        stem,
        cup,
    }
}

async fn all_entries(
    store: &dyn Store,
    id: RecallCaseId,
    w: &World,
) -> Vec<mdor_store::RecallEntry> {
    store
        .recall_entries(
            &RecallWorkQuery {
                case_id: id,
                provider: None,
                after: None,
                limit: 100,
            },
            &audit(w.regulator, "recall_case.read"),
        )
        .await
        .unwrap()
}

pub async fn a_recall_case_finds_listed_and_ranged_lots_and_unrecorded_ones(store: &dyn Store) {
    let w = world(store).await;
    let criteria = RecallCaseCriteria {
        udi_dis: vec![w.stem.as_str().to_string()],
        lots: vec!["L200".to_string()],
        lot_range: Some(("L110".to_string(), "L150".to_string())),
        ..RecallCaseCriteria::default()
    };
    let (id, growth) = store
        .create_recall_case(
            &case("MHRA-2026-001", w.regulator, criteria.clone()),
            &audit(w.regulator, "recall_case.create"),
        )
        .await
        .unwrap();
    // L150 (patients 2 and 5), L200 (3), the unrecorded lot (4) and L120 (1 at RB2);
    // not L100 (outside the range and not listed), not the cup.
    assert_eq!(
        growth,
        RecallCaseGrowth {
            implants: 5,
            patients: 5
        }
    );
    let stored = store.recall_case(id).await.unwrap().unwrap();
    assert_eq!(stored.criteria, criteria);
    assert_eq!(stored.implants, 5);
    assert_eq!(stored.opened_by, "MHRA");
    let per_provider: Vec<(String, RecallStatus, u64)> = stored
        .work
        .iter()
        .map(|c| (c.provider_ods.clone(), c.status, c.patients))
        .collect();
    assert_eq!(
        per_provider,
        [
            ("RA1".to_string(), RecallStatus::Identified, 2),
            ("RB2".to_string(), RecallStatus::Identified, 3)
        ]
    );
    let entries = all_entries(store, id, &w).await;
    let mut found: Vec<(String, Option<String>)> = entries
        .iter()
        .flat_map(|e| {
            e.implants
                .iter()
                .map(|i| (e.provider_ods.clone(), i.lot.clone()))
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("RA1".to_string(), Some("L150".to_string())),
            ("RA1".to_string(), Some("L200".to_string())),
            ("RB2".to_string(), None),
            ("RB2".to_string(), Some("L120".to_string())),
            ("RB2".to_string(), Some("L150".to_string())),
        ]
    );
    // Contact details come from the patient's current record.
    let first = entries
        .iter()
        .find(|e| e.implants[0].lot.as_deref() == Some("L200"))
        .unwrap();
    assert_eq!(first.nhs_number, nhs(3).as_str());
    assert_eq!(first.postcode.as_deref(), Some("LS1 4AP"));

    // A reused reference is refused and changes nothing.
    let again = store
        .create_recall_case(
            &case(
                "MHRA-2026-001",
                w.regulator,
                RecallCaseCriteria {
                    udi_dis: vec![w.cup.as_str().to_string()],
                    ..Default::default()
                },
            ),
            &audit(w.regulator, "recall_case.create"),
        )
        .await;
    assert!(
        matches!(again, Err(StoreError::Conflict { .. })),
        "{again:?}"
    );
}

pub async fn a_recall_case_narrows_by_expiry_window_and_serials(store: &dyn Store) {
    let w = world(store).await;
    let criteria = RecallCaseCriteria {
        udi_dis: vec![w.stem.as_str().to_string()],
        serials: vec!["S1".to_string(), "S2".to_string(), "S5".to_string()],
        expiry_from: Some(date(2027, 6, 1)),
        expiry_to: Some(date(2028, 12, 31)),
        ..RecallCaseCriteria::default()
    };
    let (id, growth) = store
        .create_recall_case(
            &case("MHRA-2026-002", w.regulator, criteria),
            &audit(w.regulator, "recall_case.create"),
        )
        .await
        .unwrap();
    // S2 expires inside the window; S1 and S5 outside; patient 4's unrecorded serial and
    // expiry are included; S3 and S7 are not listed.
    assert_eq!(growth.implants, 2);
    let mut patients: Vec<String> = all_entries(store, id, &w)
        .await
        .into_iter()
        .map(|e| e.nhs_number)
        .collect();
    patients.sort();
    let mut expected = vec![nhs(2).as_str().to_string(), nhs(4).as_str().to_string()];
    expected.sort();
    assert_eq!(patients, expected);
}

pub async fn recall_work_pages_by_provider_and_refresh_adds_only_late_implants(store: &dyn Store) {
    let w = world(store).await;
    let criteria = RecallCaseCriteria {
        udi_dis: vec![w.stem.as_str().to_string()],
        ..RecallCaseCriteria::default()
    };
    let (id, growth) = store
        .create_recall_case(
            &case("MHRA-2026-003", w.regulator, criteria),
            &audit(w.regulator, "recall_case.create"),
        )
        .await
        .unwrap();
    assert_eq!(
        growth,
        RecallCaseGrowth {
            implants: 6,
            patients: 6
        }
    );
    // RB2's list, two at a time, without gaps or repeats.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .recall_entries(
                &RecallWorkQuery {
                    case_id: id,
                    provider: Some(w.rb2),
                    after,
                    limit: 2,
                },
                &audit(w.rb2, "recall_case.worklist"),
            )
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.iter().all(|e| e.provider_ods == "RB2"));
        seen.extend(page.iter().map(|e| e.id));
        after = page.last().map(|e| e.id);
    }
    assert_eq!(seen.len(), 3);
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(unique, seen);

    // A stem submitted after the case opened is added by a refresh, once.
    implant(
        store,
        7,
        w.ra1,
        "RA1",
        "A-7",
        &w.stem,
        Some("L300"),
        None,
        None,
    )
    .await;
    let refreshed = store
        .refresh_recall_case(id, &audit(w.regulator, "recall_case.refresh"))
        .await
        .unwrap();
    assert_eq!(
        refreshed,
        Some(RecallCaseGrowth {
            implants: 1,
            patients: 1
        })
    );
    let again = store
        .refresh_recall_case(id, &audit(w.regulator, "recall_case.refresh"))
        .await
        .unwrap();
    assert_eq!(again, Some(RecallCaseGrowth::default()));
    assert_eq!(
        store
            .refresh_recall_case(
                RecallCaseId(999),
                &audit(w.regulator, "recall_case.refresh")
            )
            .await
            .unwrap(),
        None
    );
}

pub async fn recall_status_changes_only_from_the_expected_status_and_every_access_is_audited(
    store: &dyn Store,
) {
    let w = world(store).await;
    let before = store.audit_events(None, 1000).await.unwrap().len();
    let criteria = RecallCaseCriteria {
        udi_dis: vec![w.cup.as_str().to_string()],
        ..RecallCaseCriteria::default()
    };
    let (id, _) = store
        .create_recall_case(
            &case("MHRA-2026-004", w.regulator, criteria),
            &audit(w.regulator, "recall_case.create"),
        )
        .await
        .unwrap();
    let entries = all_entries(store, id, &w).await;
    assert_eq!(entries.len(), 1);
    let entry = entries[0].id;
    let state = store.recall_entry_state(id, entry).await.unwrap().unwrap();
    assert_eq!(state.provider, w.rb2);
    assert_eq!(state.status, RecallStatus::Identified);
    assert_eq!(
        store
            .recall_entry_state(id, RecallEntryId(entry.0 + 100))
            .await
            .unwrap(),
        None
    );

    let change = RecallStatusChange {
        case_id: id,
        entry,
        from: RecallStatus::Identified,
        to: RecallStatus::PatientContacted,
        note: Some("letter sent".to_string()),
        at: instant(2026, 11, 21, 9),
        by_organisation: w.rb2,
        by_role: "provider_submitter",
    };
    assert!(
        store
            .set_recall_status(&change, &audit(w.rb2, "recall_case.status"))
            .await
            .unwrap()
    );
    // The same change again finds the entry no longer in `from`, and changes nothing.
    assert!(
        !store
            .set_recall_status(&change, &audit(w.rb2, "recall_case.status"))
            .await
            .unwrap()
    );
    let state = store.recall_entry_state(id, entry).await.unwrap().unwrap();
    assert_eq!(state.status, RecallStatus::PatientContacted);

    let events = store.audit_events(None, 1000).await.unwrap();
    let actions: Vec<(&str, &str, u64)> = events[before..]
        .iter()
        .map(|e| {
            (
                e.action.as_str(),
                e.organisation_ods.as_str(),
                e.record_count,
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("recall_case.create", "MHRA", 1),
            ("recall_case.read", "MHRA", 1),
            ("recall_case.status", "RB2", 0),
        ]
    );
    assert_eq!(events[before].resource, format!("recall_case/{id}"));
    // Paging the audit from an entry returns only later ones.
    let later = store
        .audit_events(Some(events[before].id), 1000)
        .await
        .unwrap();
    assert_eq!(later.len(), events.len() - before - 1);
}

pub async fn multi_patient_reads_name_every_patient_they_returned_in_the_audit(store: &dyn Store) {
    let w = world(store).await;
    // Every stem: six implants of five patients (patient 1 has two).
    let rows = store
        .audited_recall(
            &mdor_store::RecallCriteria {
                limit: 100,
                ..recall_of(&w.stem)
            },
            &audit(w.regulator, "recall.query"),
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 6);
    let mut recalled: Vec<_> = rows.iter().map(|r| r.patient).collect();
    recalled.sort();
    recalled.dedup();
    assert_eq!(recalled.len(), 5);

    // RB2's first work-list page of two.
    let (case_id, _) = store
        .create_recall_case(
            &case(
                "MHRA-2026-009",
                w.regulator,
                RecallCaseCriteria {
                    udi_dis: vec![w.stem.as_str().to_string()],
                    ..RecallCaseCriteria::default()
                },
            ),
            &audit(w.regulator, "recall_case.create"),
        )
        .await
        .unwrap();
    let page = store
        .recall_entries(
            &RecallWorkQuery {
                case_id,
                provider: Some(w.rb2),
                after: None,
                limit: 2,
            },
            &audit(w.rb2, "recall_case.worklist"),
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    let listed: Vec<_> = page.iter().map(|e| e.patient).collect();

    // The log names them, ascending, and each leaf is the hash of the entry as read back.
    let log = store.audit_log_page(0, 100).await.unwrap();
    let recall_entry = log.iter().find(|e| e.action == "recall.query").unwrap();
    assert_eq!(recall_entry.patients, recalled);
    let page_entry = log
        .iter()
        .find(|e| e.action == "recall_case.worklist")
        .unwrap();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(page_entry.patients, sorted);
    assert!(
        log.iter()
            .filter(|e| e.action == "recall_case.create")
            .all(|e| e.patients.is_empty())
    );
    for entry in &log {
        assert_eq!(
            entry.leaf_hash.as_deref(),
            Some(&mdor_store::audit_log::leaf_hash(entry)[..]),
            "{}",
            entry.action
        );
    }

    // Each patient's own access log shows the reads that named them, and no other, with how
    // many patients each named.
    let mut listed_once = listed.clone();
    listed_once.sort();
    listed_once.dedup();
    for patient in &recalled {
        let actions: Vec<(String, u64)> = store
            .patient_access_log(*patient, &audit(w.regulator, "patient.access_log"))
            .await
            .unwrap()
            .into_iter()
            .map(|a| (a.action, a.patients_named))
            .collect();
        let mut expected = vec![("recall.query".to_string(), recalled.len() as u64)];
        if listed.contains(patient) {
            expected.push(("recall_case.worklist".to_string(), listed_once.len() as u64));
        }
        assert_eq!(actions, expected, "patient {patient}");
    }

    // The same logs once the by-patient index has caught up (SQLite keeps it in a file of its
    // own, filled in batches), and with a newer read that only the log itself holds yet.
    store.index_named_patients().await.unwrap();
    assert_eq!(store.index_named_patients().await.unwrap(), 0, "caught up");
    let again = store
        .audited_recall(
            &mdor_store::RecallCriteria {
                limit: 100,
                ..recall_of(&w.stem)
            },
            &audit(w.regulator, "recall.query"),
        )
        .await
        .unwrap();
    assert_eq!(again.len(), 6);
    for pass in ["indexed and newer", "all indexed"] {
        for patient in &recalled {
            let actions: Vec<String> = store
                .patient_access_log(*patient, &audit(w.regulator, "patient.access_log"))
                .await
                .unwrap()
                .into_iter()
                .map(|a| a.action)
                .filter(|a| a != "patient.access_log")
                .collect();
            let mut expected = vec!["recall.query"];
            if listed.contains(patient) {
                expected.push("recall_case.worklist");
            }
            expected.push("recall.query");
            assert_eq!(actions, expected, "patient {patient}, {pass}");
        }
        store.index_named_patients().await.unwrap();
    }
}
