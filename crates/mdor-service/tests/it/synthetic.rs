//! Loads a synthetic dataset from `mdor_synth::Generator` into a store through the service's
//! bulk path, the way `mdor load` does from files, and returns what was injected.
//! Shared by the integration tests and the `surveillance_seeds` example.

use mdor_domain::record::{
    EntryType, ImplantedDevice, LocalRecordId, Patient, PersonName, Procedure, Submission,
};
use mdor_domain::register::RegisterEntry;
use mdor_domain::udi::parse_scan;
use mdor_domain::{Opcs4Code, ProductionIdentifiers, Slug, SnomedCtId, UdiDi};
use mdor_service::{BulkOutcomeRecord, Ctx, NewOrganisation, OrganisationKind};
use mdor_synth::dataset::{DatasetSummary, Truth};
use mdor_synth::{DeviceEntry, Generator, OutcomeRecord, ProcedureRecord, SynthConfig};

/// Procedures per bulk transaction.
const BATCH: usize = 5_000;

/// Generates `n_procedures` with `seed` and loads them; returns the injected truth.
pub async fn load(ctx: &Ctx, seed: u64, n_procedures: u64) -> Truth {
    let generator = Generator::new(SynthConfig::new(seed, n_procedures));
    let catalogue = generator.catalogue();
    let organisations: Vec<NewOrganisation> = catalogue
        .providers
        .iter()
        .map(|p| NewOrganisation {
            ods_code: p.ods_code.clone(),
            name: p.name.clone(),
            kind: OrganisationKind::Provider,
            region: Some(p.region.to_string()),
        })
        .collect();
    let providers = mdor_service::ensure_organisations(ctx, &organisations)
        .await
        .expect("organisations load");
    let register: Vec<RegisterEntry> = catalogue
        .device_models
        .iter()
        .map(|m| RegisterEntry {
            udi_di: m.udi_di.clone(),
            manufacturer: m.manufacturer.clone(),
            brand: m.brand.clone(),
            model: m.model.clone(),
            device_type: Slug::parse(m.device_type.as_str()).expect("device type is a slug"),
            risk_class: m.risk_class,
            registry: m.registry.clone(),
        })
        .collect();
    mdor_service::upsert_register(ctx, &register)
        .await
        .expect("register loads");
    let udi_dis: Vec<UdiDi> = register.iter().map(|e| e.udi_di.clone()).collect();
    let index = mdor_service::register_index(ctx, &udi_dis)
        .await
        .expect("register index");

    let mut submissions = Vec::new();
    let mut outcomes = Vec::new();
    for history in generator.patient_histories() {
        let history = history.expect("generator has NHS numbers left");
        submissions.extend(history.procedures.iter().map(to_submission));
        outcomes.extend(history.outcomes.into_iter().map(to_outcome));
        if submissions.len() >= BATCH {
            let batch = std::mem::take(&mut submissions);
            mdor_service::bulk_load(ctx, &providers, &index, batch)
                .await
                .expect("batch loads");
        }
    }
    mdor_service::bulk_load(ctx, &providers, &index, submissions)
        .await
        .expect("last batch loads");
    for chunk in outcomes.chunks(BATCH) {
        let report = mdor_service::bulk_outcomes(ctx, &providers, chunk)
            .await
            .expect("outcomes load");
        assert!(report.unresolved.is_empty() && report.already_recorded.is_empty());
    }
    mdor_synth::dataset::truth(&generator, &DatasetSummary::default())
}

fn to_submission(record: &ProcedureRecord) -> Submission {
    let p = &record.patient;
    let patient = Patient {
        nhs_number: p.nhs_number.clone(),
        family_name: PersonName::parse(&p.family_name, "family_name").expect("family name"),
        given_name: PersonName::parse(&p.given_name, "given_name").expect("given name"),
        date_of_birth: p.date_of_birth,
        sex: p.sex,
        postcode: Some(p.postcode.clone()),
    };
    let d = &record.procedure;
    let procedure = Procedure {
        provider: d.provider.clone(),
        consultant: d.consultant.clone(),
        procedure_date: d.procedure_date,
        opcs4: Some(Opcs4Code::parse(d.opcs4_code, d.opcs4_version).expect("opcs-4 code")),
        snomed: d
            .snomed_ct_id
            .as_deref()
            .map(|id| SnomedCtId::parse(id).expect("snomed ct id")),
        laterality: d.laterality,
        registry: d.registry.clone(),
        local_record_id: LocalRecordId::parse(&d.local_record_id, "local_record_id")
            .expect("local record id"),
        indication: None,
    };
    let devices = record.devices.iter().map(to_device).collect();
    Submission::new(patient, procedure, devices, mdor_synth::CUTOFF_DATE)
        .expect("synthetic submissions are valid")
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
            udi_di: UdiDi::parse(udi_di).expect("udi-di"),
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
            let parsed = parse_scan(scan).expect("synthetic scans parse");
            ImplantedDevice {
                udi_di: parsed.di,
                production: parsed.production,
                raw_scan: Some(scan.clone()),
                entry_type: EntryType::Barcode,
            }
        }
    }
}

fn to_outcome(outcome: OutcomeRecord) -> BulkOutcomeRecord {
    match outcome {
        OutcomeRecord::Removal {
            kind,
            provider,
            local_record_id,
            device_index,
            date,
            reason,
            revising_provider,
        } => BulkOutcomeRecord::Removal {
            provider,
            local_record_id,
            device_index: device_index as i64,
            kind,
            date,
            reason: Some(reason.to_string()),
            revising_provider,
        },
        OutcomeRecord::Death { nhs_number, date } => BulkOutcomeRecord::Death { nhs_number, date },
    }
}
