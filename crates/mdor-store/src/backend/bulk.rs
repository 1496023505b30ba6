//! Planning a bulk load: which records are duplicates, which patients are new, and the column
//! vectors each backend then writes with its own multi-row insert.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};

use crate::field_crypto::FieldCipher;
use crate::rows::birth_month_mid;
use crate::types::{BulkBatch, BulkLoadOutcome};

/// Existing rows the plan must know about, looked up by the backend first.
#[derive(Default)]
pub struct BulkLookups {
    /// NHS number → (patient id, date of birth), found by blind index and opened.
    pub patients: HashMap<String, (i64, NaiveDate)>,
    /// (provider id, local record id) already stored.
    pub local_ids: HashSet<(i64, String)>,
    /// GMC number → consultant id, for the consultants of the records the plan writes.
    pub consultants: HashMap<String, i64>,
}

/// Decisions made before ids are allocated.
pub struct BulkPlan<'a> {
    batch: &'a BulkBatch,
    /// For each submission: skipped, or the patient it links to.
    decisions: Vec<Decision>,
    new_patient_count: usize,
    procedure_count: usize,
    implant_count: usize,
    pub outcome: BulkLoadOutcome,
}

#[derive(Clone, Copy)]
enum Decision {
    Skip,
    Existing(i64),
    /// Index into the new-patient id vector.
    New(usize),
}

#[derive(Default)]
pub struct PatientColumns {
    pub id: Vec<i64>,
    /// The identifiers are sealed (`field_crypto`); the index is the NHS number's blind index.
    pub nhs_number_index: Vec<String>,
    pub nhs_number: Vec<String>,
    pub family_name: Vec<String>,
    pub given_name: Vec<String>,
    pub date_of_birth: Vec<String>,
    pub birth_month_mid: Vec<NaiveDate>,
    pub sex: Vec<String>,
    pub postcode: Vec<Option<String>>,
    pub created_at: Vec<DateTime<Utc>>,
}

#[derive(Default)]
pub struct ProcedureColumns {
    pub id: Vec<i64>,
    pub patient_id: Vec<i64>,
    pub provider_id: Vec<i64>,
    pub consultant_id: Vec<i64>,
    pub procedure_date: Vec<NaiveDate>,
    pub opcs4_code: Vec<Option<String>>,
    pub opcs4_version: Vec<Option<String>>,
    pub snomed_ct_id: Vec<Option<i64>>,
    pub laterality: Vec<String>,
    pub registry: Vec<String>,
    pub local_record_id: Vec<String>,
    pub created_at: Vec<DateTime<Utc>>,
    pub indication: Vec<Option<String>>,
}

#[derive(Default)]
pub struct ImplantColumns {
    pub id: Vec<i64>,
    pub procedure_id: Vec<i64>,
    pub position: Vec<i32>,
    pub udi_di: Vec<String>,
    pub device_model_id: Vec<Option<i64>>,
    pub lot: Vec<Option<String>>,
    pub serial: Vec<Option<String>>,
    pub expiry: Vec<Option<NaiveDate>>,
    pub manufactured: Vec<Option<NaiveDate>>,
    pub raw_scan: Vec<Option<String>>,
    pub entry_type: Vec<String>,
}

#[derive(Default)]
pub struct FlagColumns {
    pub implant_id: Vec<i64>,
    pub flag: Vec<String>,
    pub raised_at: Vec<DateTime<Utc>>,
}

pub struct BulkRows {
    pub patients: PatientColumns,
    pub procedures: ProcedureColumns,
    pub implants: ImplantColumns,
    pub flags: FlagColumns,
}

impl<'a> BulkPlan<'a> {
    pub fn new(batch: &'a BulkBatch, lookups: &BulkLookups) -> BulkPlan<'a> {
        let mut outcome = BulkLoadOutcome::default();
        let mut new_patients: HashMap<&str, (usize, NaiveDate)> = HashMap::new();
        let mut seen_local: HashSet<(i64, &str)> = HashSet::new();
        let mut decisions = Vec::with_capacity(batch.submissions.len());
        let (mut procedure_count, mut implant_count) = (0, 0);
        for (index, prepared) in batch.submissions.iter().enumerate() {
            let s = &prepared.submission;
            let local_id = s.procedure.local_record_id.as_str();
            let duplicate = lookups
                .local_ids
                .contains(&(prepared.provider.0, local_id.to_string()))
                || !seen_local.insert((prepared.provider.0, local_id));
            if duplicate {
                outcome.duplicates.push(index);
                decisions.push(Decision::Skip);
                continue;
            }
            let nhs = s.patient.nhs_number.as_str();
            let dob = s.patient.date_of_birth;
            let decision = match (lookups.patients.get(nhs), new_patients.get(nhs)) {
                (Some(&(id, stored_dob)), _) if stored_dob == dob => Decision::Existing(id),
                (None, Some(&(slot, stored_dob))) if stored_dob == dob => Decision::New(slot),
                (Some(_), _) | (None, Some(_)) => Decision::Skip,
                (None, None) => {
                    let slot = new_patients.len();
                    new_patients.insert(nhs, (slot, dob));
                    Decision::New(slot)
                }
            };
            if matches!(decision, Decision::Skip) {
                // The local id was reserved above but nothing is written for it.
                seen_local.remove(&(prepared.provider.0, local_id));
                outcome.patient_mismatches.push(index);
            } else {
                procedure_count += 1;
                implant_count += s.devices.len();
            }
            decisions.push(decision);
        }
        let new_patient_count = new_patients.len();
        outcome.new_patients = new_patient_count as u64;
        outcome.procedures = procedure_count as u64;
        outcome.implants = implant_count as u64;
        BulkPlan {
            batch,
            decisions,
            new_patient_count,
            procedure_count,
            implant_count,
            outcome,
        }
    }

    /// The GMC numbers of the consultants of the records that will be written; refused and
    /// duplicate records are left out so that they leave nothing behind.
    pub fn consultants(&self) -> Vec<&'a str> {
        let batch: &'a BulkBatch = self.batch;
        let gmc: HashSet<&'a str> = batch
            .submissions
            .iter()
            .zip(&self.decisions)
            .filter(|(_, decision)| !matches!(decision, Decision::Skip))
            .map(|(prepared, _)| prepared.submission.procedure.consultant.as_str())
            .collect();
        gmc.into_iter().collect()
    }

    /// For each submission of the batch, the index into the procedure ids given to `rows`,
    /// or `None` when it is skipped (a duplicate or a patient mismatch).
    pub fn procedure_slots(&self) -> Vec<Option<usize>> {
        let mut next = 0;
        self.decisions
            .iter()
            .map(|decision| match decision {
                Decision::Skip => None,
                Decision::Existing(_) | Decision::New(_) => {
                    next += 1;
                    Some(next - 1)
                }
            })
            .collect()
    }

    /// How many ids each table needs: (patients, procedures, implants).
    pub fn id_counts(&self) -> (usize, usize, usize) {
        (
            self.new_patient_count,
            self.procedure_count,
            self.implant_count,
        )
    }

    /// Builds the rows with the allocated ids. Each id slice has the length `id_counts` gave.
    pub fn rows(
        &self,
        patient_ids: &[i64],
        procedure_ids: &[i64],
        implant_ids: &[i64],
        lookups: &BulkLookups,
        cipher: &FieldCipher,
    ) -> crate::StoreResult<BulkRows> {
        let mut patients = PatientColumns::default();
        let mut procedures = ProcedureColumns::default();
        let mut implants = ImplantColumns::default();
        let mut flags = FlagColumns::default();
        let mut patient_written = vec![false; patient_ids.len()];
        let (mut next_procedure, mut next_implant) = (0, 0);
        for (prepared, decision) in self.batch.submissions.iter().zip(&self.decisions) {
            let s = &prepared.submission;
            let patient_id = match *decision {
                Decision::Skip => continue,
                Decision::Existing(id) => id,
                Decision::New(slot) => {
                    if !patient_written[slot] {
                        patient_written[slot] = true;
                        let p = &s.patient;
                        let sealed =
                            cipher.presealed_or_seal(p, prepared.sealed_patient.as_ref())?;
                        patients.id.push(patient_ids[slot]);
                        patients.nhs_number_index.push(sealed.index);
                        patients.nhs_number.push(sealed.nhs_number);
                        patients.family_name.push(sealed.family_name);
                        patients.given_name.push(sealed.given_name);
                        patients.date_of_birth.push(sealed.date_of_birth);
                        patients
                            .birth_month_mid
                            .push(birth_month_mid(p.date_of_birth));
                        patients.sex.push(p.sex.as_str().to_string());
                        patients.postcode.push(sealed.postcode);
                        patients.created_at.push(prepared.received_at);
                    }
                    patient_ids[slot]
                }
            };
            let procedure_id = procedure_ids[next_procedure];
            next_procedure += 1;
            let p = &s.procedure;
            procedures.id.push(procedure_id);
            procedures.patient_id.push(patient_id);
            procedures.provider_id.push(prepared.provider.0);
            // Consultants are ensured before planning, so every GMC number has an id.
            procedures.consultant_id.push(
                lookups
                    .consultants
                    .get(p.consultant.as_str())
                    .copied()
                    .unwrap_or_default(),
            );
            procedures.procedure_date.push(p.procedure_date);
            procedures
                .opcs4_code
                .push(p.opcs4.as_ref().map(|c| c.code().to_string()));
            procedures
                .opcs4_version
                .push(p.opcs4.as_ref().map(|c| c.version().to_string()));
            procedures
                .snomed_ct_id
                .push(p.snomed.map(|c| c.value() as i64));
            procedures
                .laterality
                .push(p.laterality.as_str().to_string());
            procedures.registry.push(p.registry.as_str().to_string());
            procedures
                .local_record_id
                .push(p.local_record_id.as_str().to_string());
            procedures.created_at.push(prepared.received_at);
            procedures
                .indication
                .push(p.indication.as_ref().map(|i| i.as_str().to_string()));
            for (position, (device, implant)) in
                s.devices.iter().zip(&prepared.implants).enumerate()
            {
                let implant_id = implant_ids[next_implant];
                next_implant += 1;
                implants.id.push(implant_id);
                implants.procedure_id.push(procedure_id);
                implants.position.push(position as i32);
                implants.udi_di.push(device.udi_di.as_str().to_string());
                implants
                    .device_model_id
                    .push(implant.device_model.map(|m| m.0));
                implants.lot.push(device.production.lot.clone());
                implants.serial.push(device.production.serial.clone());
                implants.expiry.push(device.production.expiry);
                implants.manufactured.push(device.production.manufactured);
                implants.raw_scan.push(device.raw_scan.clone());
                implants
                    .entry_type
                    .push(device.entry_type.as_str().to_string());
                for flag in &implant.flags {
                    flags.implant_id.push(implant_id);
                    flags.flag.push(flag.as_str().to_string());
                    flags.raised_at.push(prepared.received_at);
                }
            }
        }
        Ok(BulkRows {
            patients,
            procedures,
            implants,
            flags,
        })
    }
}
