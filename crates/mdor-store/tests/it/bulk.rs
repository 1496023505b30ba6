//! Bulk loading synthetic data from `mdor_synth::Generator`: batches, duplicates, patient
//! mismatches, and removals and deaths resolved by where they were recorded.
//!
//! The generator's typed `ProcedureRecord`s (the same values it writes as `procedures.ndjson`
//! lines) become domain `Submission`s the way `crates/mdor-synth/tests/it/files.rs` builds
//! them: scans are read by `mdor_domain::udi::parse_scan_at` and stored verbatim.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;

use mdor_domain::record::{
    EntryType, ImplantedDevice, LocalRecordId, Patient, PersonName, Procedure, Submission,
};
use mdor_domain::register::RegisterEntry;
use mdor_domain::rules::follow_up_flags;
use mdor_domain::{
    GmcNumber, Indication, NhsNumber, Opcs4Code, ProductionIdentifiers, Slug, SnomedCtId, UdiDi,
};
use mdor_store::{
    BulkBatch, BulkLoadOutcome, BulkRemoval, DeviceModelId, NewOrganisation, OrganisationId,
    OrganisationKind, PreparedImplant, PreparedSubmission, Store,
};
use mdor_synth::{DeviceEntry, Generator, OutcomeRecord, ProcedureRecord, SynthConfig};

use crate::fixtures::{GS, instant, nhs};

const SEED: u64 = 20_261_121;
const N_PROCEDURES: u64 = 300;
/// More procedures than the SQLite backend writes in one multi-row statement (2,000 rows).
const N_PROCEDURES_LARGE: u64 = 2_500;

/// A generated dataset whose providers and device register are already in the store.
struct SyntheticData {
    submissions: Vec<PreparedSubmission>,
    removals: Vec<BulkRemoval>,
    deaths: Vec<(NhsNumber, NaiveDate)>,
    providers: HashMap<String, OrganisationId>,
}

impl SyntheticData {
    async fn prepare(store: &dyn Store, n_procedures: u64) -> SyntheticData {
        let generator = Generator::new(SynthConfig::new(SEED, n_procedures));
        let catalogue = generator.catalogue();
        let mut providers = HashMap::new();
        for provider in &catalogue.providers {
            let id = store
                .upsert_organisation(&NewOrganisation {
                    ods_code: provider.ods_code.clone(),
                    name: provider.name.clone(),
                    kind: OrganisationKind::Provider,
                    region: Some(provider.region.to_string()),
                })
                .await
                .unwrap();
            providers.insert(provider.ods_code.as_str().to_string(), id);
        }
        let register: Vec<RegisterEntry> = catalogue
            .device_models
            .iter()
            .map(|model| RegisterEntry {
                udi_di: model.udi_di.clone(),
                manufacturer: model.manufacturer.clone(),
                brand: model.brand.clone(),
                model: model.model.clone(),
                device_type: Slug::parse(model.device_type.as_str()).unwrap(),
                risk_class: model.risk_class,
                registry: model.registry.clone(),
            })
            .collect();
        store.upsert_device_models(&register).await.unwrap();

        let mut records = Vec::new();
        let mut outcomes = Vec::new();
        for history in generator.patient_histories() {
            let history = history.unwrap();
            records.extend(history.procedures);
            outcomes.extend(history.outcomes);
        }
        let submissions: Vec<Submission> = records.iter().map(to_submission).collect();
        let udi_dis: Vec<&UdiDi> = submissions
            .iter()
            .flat_map(|s| s.devices.iter().map(|d| &d.udi_di))
            .collect();
        let known: HashMap<String, DeviceModelId> = store
            .device_model_ids(&udi_dis)
            .await
            .unwrap()
            .into_iter()
            .collect();
        let submissions = submissions
            .into_iter()
            .map(|submission| {
                let implants = submission
                    .devices
                    .iter()
                    .map(|device| {
                        let model = known.get(device.udi_di.as_str()).copied();
                        PreparedImplant {
                            device_model: model,
                            flags: follow_up_flags(
                                device,
                                submission.procedure.procedure_date,
                                model.is_some(),
                            ),
                        }
                    })
                    .collect();
                PreparedSubmission {
                    provider: providers[submission.procedure.provider.as_str()],
                    submission,
                    implants,
                    received_at: instant(2026, 11, 1, 9),
                    sealed_patient: None,
                }
            })
            .collect();
        let mut removals = Vec::new();
        let mut deaths = Vec::new();
        for outcome in outcomes {
            match outcome {
                OutcomeRecord::Removal {
                    kind,
                    provider,
                    local_record_id,
                    device_index,
                    date,
                    reason,
                    revising_provider,
                } => removals.push(BulkRemoval {
                    provider: providers[provider.as_str()],
                    local_record_id,
                    position: device_index as i64,
                    kind,
                    removal_date: date,
                    reason: Some(reason.to_string()),
                    revising_provider: providers[revising_provider.as_str()],
                    recorded_at: instant(2026, 11, 1, 10),
                }),
                OutcomeRecord::Death { nhs_number, date } => deaths.push((nhs_number, date)),
            }
        }
        SyntheticData {
            submissions,
            removals,
            deaths,
            providers,
        }
    }
}

fn to_submission(record: &ProcedureRecord) -> Submission {
    let p = &record.patient;
    let patient = Patient {
        nhs_number: p.nhs_number.clone(),
        family_name: PersonName::parse(&p.family_name, "family_name").unwrap(),
        given_name: PersonName::parse(&p.given_name, "given_name").unwrap(),
        date_of_birth: p.date_of_birth,
        sex: p.sex,
        postcode: Some(p.postcode.clone()),
    };
    assert!(patient.nhs_number.is_test_range());
    let d = &record.procedure;
    let procedure = Procedure {
        provider: d.provider.clone(),
        consultant: d.consultant.clone(),
        procedure_date: d.procedure_date,
        opcs4: Some(Opcs4Code::parse(d.opcs4_code, d.opcs4_version).unwrap()),
        snomed: d
            .snomed_ct_id
            .as_deref()
            .map(|id| SnomedCtId::parse(id).unwrap()),
        laterality: d.laterality,
        registry: d.registry.clone(),
        local_record_id: LocalRecordId::parse(&d.local_record_id, "local_record_id").unwrap(),
        indication: d.indication.map(|code| Indication::parse(code).unwrap()),
    };
    let devices = record.devices.iter().map(to_device).collect();
    Submission::new(patient, procedure, devices, mdor_synth::CUTOFF_DATE).unwrap()
}

fn to_device(entry: &DeviceEntry) -> ImplantedDevice {
    match entry {
        DeviceEntry::Manual {
            udi_di,
            lot,
            serial,
            expiry,
            manufactured,
        } => ImplantedDevice {
            udi_di: UdiDi::parse(udi_di).unwrap(),
            production: ProductionIdentifiers {
                lot: lot.clone(),
                serial: serial.clone(),
                expiry: *expiry,
                manufactured: *manufactured,
            },
            raw_scan: None,
            entry_type: EntryType::Manual,
        },
        DeviceEntry::Scan { scan } => {
            // The synthetic data's dates lie between 2000 and 2026, so parsing against a fixed
            // year keeps the sliding century window from moving with the clock.
            let parsed = mdor_domain::udi::parse_scan_at(scan, 2026).unwrap();
            ImplantedDevice {
                udi_di: parsed.di,
                production: parsed.production,
                raw_scan: Some(scan.clone()),
                entry_type: EntryType::Barcode,
            }
        }
    }
}

fn n_implants(submissions: &[PreparedSubmission]) -> u64 {
    submissions
        .iter()
        .map(|s| s.submission.devices.len() as u64)
        .sum()
}

fn nhs_numbers(submissions: &[PreparedSubmission]) -> HashSet<String> {
    submissions
        .iter()
        .map(|s| s.submission.patient.nhs_number.as_str().to_string())
        .collect()
}

pub async fn bulk_load_deduplicates_patients_across_batches_and_reports_duplicates_and_mismatches(
    store: &dyn Store,
) {
    let data = SyntheticData::prepare(store, N_PROCEDURES).await;
    let all = &data.submissions;
    assert_eq!(all.len() as u64, N_PROCEDURES);
    // Alternate records go to each batch, so patients with several procedures span both.
    let (first, second): (Vec<_>, Vec<_>) = all
        .iter()
        .cloned()
        .enumerate()
        .partition(|(i, _)| i % 2 == 0);
    let first: Vec<PreparedSubmission> = first.into_iter().map(|(_, s)| s).collect();
    let second: Vec<PreparedSubmission> = second.into_iter().map(|(_, s)| s).collect();
    let (first_patients, second_patients) = (nhs_numbers(&first), nhs_numbers(&second));
    let shared = first_patients.intersection(&second_patients).count();
    assert!(
        shared > 0,
        "the generated data has no patient in both batches"
    );
    let all_patients = nhs_numbers(all);

    let outcome = store
        .bulk_load(&BulkBatch {
            submissions: first.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        outcome,
        BulkLoadOutcome {
            procedures: first.len() as u64,
            implants: n_implants(&first),
            new_patients: first_patients.len() as u64,
            duplicates: vec![],
            patient_mismatches: vec![],
        }
    );
    let outcome = store
        .bulk_load(&BulkBatch {
            submissions: second.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        outcome,
        BulkLoadOutcome {
            procedures: second.len() as u64,
            implants: n_implants(&second),
            new_patients: (second_patients.len() - shared) as u64,
            duplicates: vec![],
            patient_mismatches: vec![],
        }
    );

    let counts = store.counts().await.unwrap();
    assert_eq!(counts.patients, all_patients.len() as i64);
    assert_eq!(counts.procedures, all.len() as i64);
    assert_eq!(counts.implants, n_implants(all) as i64);
    let n_flags: usize = all
        .iter()
        .flat_map(|s| s.implants.iter().map(|i| i.flags.len()))
        .sum();
    assert_eq!(counts.open_flags, n_flags as i64);
    let consultants: HashSet<&str> = all
        .iter()
        .map(|s| s.submission.procedure.consultant.as_str())
        .collect();
    assert_eq!(counts.consultants, consultants.len() as i64);

    // Every record reads back as generated, scans verbatim.
    for prepared in all {
        check_stored(store, prepared).await;
    }
    assert!(
        all.iter().any(|s| s
            .submission
            .devices
            .iter()
            .any(|d| d.raw_scan.as_deref().is_some_and(|r| r.contains(GS)))),
        "the generated data has no scan with a group separator"
    );

    // Loading a batch again writes nothing and reports every record as a duplicate.
    let outcome = store
        .bulk_load(&BulkBatch {
            submissions: first.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        outcome,
        BulkLoadOutcome {
            procedures: 0,
            implants: 0,
            new_patients: 0,
            duplicates: (0..first.len()).collect(),
            patient_mismatches: vec![],
        }
    );
    assert_eq!(store.counts().await.unwrap(), counts);

    // A known NHS number with another date of birth, a new patient, a duplicate, and the new
    // patient again with another date of birth.
    let mut mismatch = first[0].clone();
    mismatch.submission.procedure.local_record_id =
        LocalRecordId::parse("MISMATCH-1", "local_record_id").unwrap();
    mismatch.submission.patient.date_of_birth = mismatch
        .submission
        .patient
        .date_of_birth
        .succ_opt()
        .unwrap();
    let mut new_patient = first[1].clone();
    new_patient.submission.patient.nhs_number = nhs(90_000);
    new_patient.submission.procedure.local_record_id =
        LocalRecordId::parse("EXTRA-1", "local_record_id").unwrap();
    let mut new_patient_mismatch = new_patient.clone();
    new_patient_mismatch.submission.procedure.local_record_id =
        LocalRecordId::parse("EXTRA-2", "local_record_id").unwrap();
    new_patient_mismatch.submission.patient.date_of_birth = new_patient
        .submission
        .patient
        .date_of_birth
        .pred_opt()
        .unwrap();
    let batch = vec![
        mismatch.clone(),
        new_patient.clone(),
        second[0].clone(),
        new_patient_mismatch.clone(),
    ];
    let outcome = store
        .bulk_load(&BulkBatch { submissions: batch })
        .await
        .unwrap();
    assert_eq!(
        outcome,
        BulkLoadOutcome {
            procedures: 1,
            implants: new_patient.submission.devices.len() as u64,
            new_patients: 1,
            duplicates: vec![2],
            patient_mismatches: vec![0, 3],
        }
    );
    for refused in [&mismatch, &new_patient_mismatch] {
        assert_eq!(
            store
                .procedure_by_local_id(
                    refused.provider,
                    refused.submission.procedure.local_record_id.as_str()
                )
                .await
                .unwrap(),
            None
        );
    }
    check_stored(store, &new_patient).await;
    let after = store.counts().await.unwrap();
    assert_eq!(after.patients, counts.patients + 1);
    assert_eq!(after.procedures, counts.procedures + 1);

    // A refused record leaves nothing behind, not even its consultant.
    let mut refused = mismatch.clone();
    refused.submission.procedure.local_record_id =
        LocalRecordId::parse("MISMATCH-2", "local_record_id").unwrap();
    refused.submission.procedure.consultant = GmcNumber::parse("1234567").unwrap();
    assert!(!consultants.contains("1234567"));
    let outcome = store
        .bulk_load(&BulkBatch {
            submissions: vec![refused],
        })
        .await
        .unwrap();
    assert_eq!(outcome.patient_mismatches, [0]);
    assert_eq!(outcome.procedures, 0);
    assert_eq!(store.counts().await.unwrap(), after);
}

/// Reads `prepared` back by its local record id and compares what was stored.
async fn check_stored(store: &dyn Store, prepared: &PreparedSubmission) {
    let s = &prepared.submission;
    let id = store
        .procedure_by_local_id(prepared.provider, s.procedure.local_record_id.as_str())
        .await
        .unwrap()
        .unwrap();
    let record = store.procedure(id).await.unwrap().unwrap();
    assert_eq!(record.nhs_number, s.patient.nhs_number.as_str());
    assert_eq!(record.date_of_birth, s.patient.date_of_birth);
    assert_eq!(record.family_name, s.patient.family_name.as_str());
    assert_eq!(record.procedure_date, s.procedure.procedure_date);
    assert_eq!(record.consultant_gmc, s.procedure.consultant.as_str());
    assert_eq!(
        record.opcs4_code.as_deref(),
        s.procedure.opcs4.as_ref().map(|c| c.code())
    );
    assert_eq!(
        record.snomed_ct_id,
        s.procedure.snomed.map(|c| c.value() as i64)
    );
    assert_eq!(record.laterality, s.procedure.laterality.as_str());
    assert_eq!(record.created_at, prepared.received_at);
    assert_eq!(record.implants.len(), s.devices.len());
    for ((stored, device), implant) in record
        .implants
        .iter()
        .zip(&s.devices)
        .zip(&prepared.implants)
    {
        assert_eq!(stored.udi_di, device.udi_di.as_str());
        assert_eq!(stored.device_model, implant.device_model);
        assert_eq!(stored.lot, device.production.lot);
        assert_eq!(stored.serial, device.production.serial);
        assert_eq!(stored.expiry, device.production.expiry);
        assert_eq!(stored.manufactured, device.production.manufactured);
        assert_eq!(stored.raw_scan, device.raw_scan);
        assert_eq!(stored.entry_type, device.entry_type.as_str());
        let mut flags: Vec<&str> = implant.flags.iter().map(|f| f.as_str()).collect();
        flags.sort();
        assert_eq!(stored.flags, flags);
    }
}

pub async fn bulk_removals_and_deaths_resolve_generated_outcomes_and_report_unknown_ones(
    store: &dyn Store,
) {
    let data = SyntheticData::prepare(store, N_PROCEDURES).await;
    let outcome = store
        .bulk_load(&BulkBatch {
            submissions: data.submissions.clone(),
        })
        .await
        .unwrap();
    assert_eq!(outcome.procedures, N_PROCEDURES);
    assert!(
        !data.removals.is_empty(),
        "the generated data has no removals"
    );
    assert!(!data.deaths.is_empty(), "the generated data has no deaths");

    let n_known = data.removals.len();
    let mut removals = data.removals.clone();
    let mut unknown_record = data.removals[0].clone();
    unknown_record.local_record_id = "NO-SUCH-RECORD".to_string();
    let mut unknown_position = data.removals[0].clone();
    unknown_position.position = 99;
    // The same implant named twice in one batch: the first mention is written, the second
    // reported as already recorded.
    let mut second_mention = data.removals[1].clone();
    second_mention.reason = Some("a later, conflicting report".to_string());
    removals.push(unknown_record);
    removals.push(unknown_position);
    removals.push(second_mention);
    let report = store.bulk_removals(&removals).await.unwrap();
    assert_eq!(report.unresolved, [n_known, n_known + 1]);
    assert_eq!(report.already_recorded, [n_known + 2]);
    assert_eq!(store.counts().await.unwrap().removals, n_known as i64);
    // Loading the same removals again writes nothing and reports every known one.
    let again = store.bulk_removals(&removals).await.unwrap();
    assert_eq!(again.unresolved, [n_known, n_known + 1]);
    let mut every_known: Vec<usize> = (0..n_known).collect();
    every_known.push(n_known + 2);
    assert_eq!(again.already_recorded, every_known);
    assert_eq!(store.counts().await.unwrap().removals, n_known as i64);

    let ods_of: HashMap<OrganisationId, &str> = data
        .providers
        .iter()
        .map(|(ods, id)| (*id, ods.as_str()))
        .collect();
    for removal in &data.removals {
        let id = store
            .procedure_by_local_id(removal.provider, &removal.local_record_id)
            .await
            .unwrap()
            .unwrap();
        let record = store.procedure(id).await.unwrap().unwrap();
        let stored = record.implants[removal.position as usize]
            .removal
            .as_ref()
            .unwrap();
        assert_eq!(stored.kind, removal.kind.as_str());
        assert_eq!(stored.removal_date, removal.removal_date);
        assert_eq!(stored.reason, removal.reason);
        assert_eq!(stored.revising_provider, ods_of[&removal.revising_provider]);
    }

    let mut deaths = data.deaths.clone();
    deaths.insert(
        0,
        (nhs(90_001), NaiveDate::from_ymd_opt(2025, 1, 1).unwrap()),
    );
    let unknown = store.bulk_deaths(&deaths).await.unwrap();
    assert_eq!(unknown, [0]);
    assert_eq!(
        store.counts().await.unwrap().deaths,
        data.deaths.len() as i64
    );
    for (nhs_number, date) in &data.deaths {
        let bounds = store
            .patient_timeline_bounds(nhs_number)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(bounds.date_of_death, Some(*date));
    }
}

pub async fn bulk_load_of_more_rows_than_one_statement_holds_loads_every_row(store: &dyn Store) {
    let empty = store.bulk_load(&BulkBatch::default()).await.unwrap();
    assert_eq!(empty, BulkLoadOutcome::default());

    let data = SyntheticData::prepare(store, N_PROCEDURES_LARGE).await;
    let all = &data.submissions;
    let outcome = store
        .bulk_load(&BulkBatch {
            submissions: all.clone(),
        })
        .await
        .unwrap();
    assert_eq!(outcome.procedures, N_PROCEDURES_LARGE);
    assert_eq!(outcome.implants, n_implants(all));
    assert!(outcome.implants > 2_000);
    assert_eq!(outcome.new_patients, nhs_numbers(all).len() as u64);
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.procedures, N_PROCEDURES_LARGE as i64);
    assert_eq!(counts.implants, n_implants(all) as i64);
    assert_eq!(counts.patients, nhs_numbers(all).len() as i64);
    // Records on both sides of each statement boundary, and the last, read back intact.
    for index in [0, 1_999, 2_000, all.len() - 1] {
        check_stored(store, &all[index]).await;
    }
}

pub async fn concurrent_bulk_loads_of_one_batch_load_it_once(store: std::sync::Arc<dyn Store>) {
    let data = SyntheticData::prepare(&*store, N_PROCEDURES).await;
    let batch = std::sync::Arc::new(BulkBatch {
        submissions: data.submissions.clone(),
    });
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let store = std::sync::Arc::clone(&store);
            let batch = std::sync::Arc::clone(&batch);
            tokio::spawn(async move { store.bulk_load(&batch).await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    outcomes.sort_by_key(|o| o.procedures);
    // One load wrote everything; the other, serialised after it, found only duplicates.
    assert_eq!(outcomes[0].procedures, 0);
    assert_eq!(outcomes[0].duplicates.len() as u64, N_PROCEDURES);
    assert_eq!(outcomes[1].procedures, N_PROCEDURES);
    assert!(outcomes[1].duplicates.is_empty());
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.procedures, N_PROCEDURES as i64);
    assert_eq!(counts.patients, nhs_numbers(&data.submissions).len() as i64);
}

/// How many objects `restore_load_schema` recreates after a deferral: the three secondary
/// indexes, and on PostgreSQL also its six per-row foreign keys.
fn deferred_object_count(store: &dyn Store) -> usize {
    match store.backend() {
        // Four indexes (`load_schema::INDEXES`); PostgreSQL also six foreign keys.
        mdor_store::Backend::Sqlite => 4,
        mdor_store::Backend::Postgres => 10,
    }
}

pub async fn an_initial_load_defers_indexes_and_restores_exactly_the_migrated_schema(
    store: &dyn Store,
) {
    let migrated = store.schema_objects().await.unwrap();
    assert!(
        migrated.iter().any(|o| o.contains("implant_udi_lot")),
        "{migrated:?}"
    );
    assert_eq!(store.restore_load_schema().await.unwrap(), 0);

    let data = SyntheticData::prepare(store, N_PROCEDURES).await;
    assert!(store.defer_load_schema().await.unwrap());
    let deferred = store.schema_objects().await.unwrap();
    assert_eq!(
        migrated.len() - deferred.len(),
        deferred_object_count(store),
        "{deferred:?}"
    );
    let outcome = store
        .bulk_load(&BulkBatch {
            submissions: data.submissions.clone(),
        })
        .await
        .unwrap();
    assert_eq!(outcome.procedures, N_PROCEDURES);
    // Reads are correct, only slower, while the indexes are missing.
    check_stored(store, &data.submissions[0]).await;
    // A store that already holds procedures is never deferred again.
    assert!(!store.defer_load_schema().await.unwrap());

    assert_eq!(
        store.restore_load_schema().await.unwrap(),
        deferred_object_count(store)
    );
    assert_eq!(store.schema_objects().await.unwrap(), migrated);
    assert_eq!(store.restore_load_schema().await.unwrap(), 0);
    for prepared in data.submissions.iter().step_by(50) {
        check_stored(store, prepared).await;
    }
}

pub async fn a_row_breaking_a_deferred_foreign_key_fails_the_load_or_its_restore(
    store: &dyn Store,
) {
    let data = SyntheticData::prepare(store, 5).await;
    assert!(store.defer_load_schema().await.unwrap());
    let mut broken = data.submissions.clone();
    broken[2].provider = OrganisationId(9_999_999);
    let loaded = store
        .bulk_load(&BulkBatch {
            submissions: broken,
        })
        .await;
    match loaded {
        // SQLite keeps its foreign keys, so the batch is refused and nothing is written.
        Err(_) => {
            assert_eq!(store.counts().await.unwrap().procedures, 0);
            assert_eq!(
                store.restore_load_schema().await.unwrap(),
                deferred_object_count(store)
            );
        }
        // PostgreSQL wrote the batch without its triggers; restoring validates every row
        // and refuses, so the broken row cannot be kept silently.
        Ok(_) => {
            assert_eq!(store.backend(), mdor_store::Backend::Postgres);
            assert!(store.restore_load_schema().await.is_err());
        }
    }
}
