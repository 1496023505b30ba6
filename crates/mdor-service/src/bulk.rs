//! Bulk loading of trusted, pre-validated datasets (synthetic data, migrations from another
//! registry) by an operator. Each batch is one transaction; duplicates and unresolvable
//! records are reported back by index, never dropped silently.
//!
//! Provider bulk submission with per-record validation reports and quarantine is a separate
//! use case; this path is for operator loads run from the CLI.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::Serialize;

use mdor_domain::record::{RemovalKind, Submission};
use mdor_domain::{NhsNumber, OdsCode};
use mdor_store::{
    BulkBatch, BulkLoadOutcome, BulkRemoval, DeviceModelId, NewOrganisation, OrganisationId,
};

use crate::ctx::Ctx;
use crate::error::ServiceError;
use crate::procedures::prepare_with;

/// Creates or updates organisations; returns their ids by ODS code.
pub async fn ensure_organisations(
    ctx: &Ctx,
    organisations: &[NewOrganisation],
) -> Result<HashMap<String, OrganisationId>, ServiceError> {
    let mut ids = HashMap::with_capacity(organisations.len());
    for organisation in organisations {
        let id = ctx.store.upsert_organisation(organisation).await?;
        ids.insert(organisation.ods_code.as_str().to_string(), id);
    }
    Ok(ids)
}

/// Totals of a whole load, across batches.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadSummary {
    pub procedures: u64,
    pub implants: u64,
    pub new_patients: u64,
    pub duplicates: u64,
    pub patient_mismatches: u64,
    pub removals: u64,
    pub deaths: u64,
    pub unresolved_outcomes: u64,
    /// Removals already recorded for their implant (a dataset loaded again): not written twice.
    pub duplicate_outcomes: u64,
}

impl LoadSummary {
    pub fn add(&mut self, outcome: &BulkLoadOutcome) {
        self.procedures += outcome.procedures;
        self.implants += outcome.implants;
        self.new_patients += outcome.new_patients;
        self.duplicates += outcome.duplicates.len() as u64;
        self.patient_mismatches += outcome.patient_mismatches.len() as u64;
    }
}

/// Before a dataset load: on an empty registry, drops the indexes and foreign-key checks
/// that are cheaper to build once at the end (see `mdor_store::Store::defer_load_schema`).
/// Returns whether it did; `restore_load_schema` must follow however the load ends.
pub async fn defer_load_schema(ctx: &Ctx) -> Result<bool, ServiceError> {
    Ok(ctx.store.defer_load_schema().await?)
}

/// Rebuilds whatever `defer_load_schema` dropped, validating every foreign key; returns how
/// many indexes and constraints it rebuilt. Also run at start-up, to repair a load that was
/// killed before it could restore them.
pub async fn restore_load_schema(ctx: &Ctx) -> Result<usize, ServiceError> {
    Ok(ctx.store.restore_load_schema().await?)
}

/// Loads one batch of submissions. `providers` maps ODS codes to organisations (from
/// `ensure_organisations`); `register` maps UDI-DIs to device models, read once per load.
pub async fn bulk_load(
    ctx: &Ctx,
    providers: &HashMap<String, OrganisationId>,
    register: &HashMap<String, DeviceModelId>,
    submissions: Vec<Submission>,
) -> Result<BulkLoadOutcome, ServiceError> {
    let now = ctx.now();
    let mut batch = BulkBatch {
        submissions: Vec::with_capacity(submissions.len()),
    };
    for submission in submissions {
        let ods = submission.procedure.provider.as_str();
        let provider = *providers.get(ods).ok_or_else(|| {
            ServiceError::Input(format!("provider {ods} is not a known organisation"))
        })?;
        batch
            .submissions
            .push(prepare_with(register, provider, submission, now));
    }
    Ok(ctx.store.bulk_load(&batch).await?)
}

/// The register as a map from UDI-DI to device model id, for `bulk_load`.
pub async fn register_index(
    ctx: &Ctx,
    udi_dis: &[mdor_domain::UdiDi],
) -> Result<HashMap<String, DeviceModelId>, ServiceError> {
    let refs: Vec<_> = udi_dis.iter().collect();
    Ok(ctx
        .store
        .device_model_ids(&refs)
        .await?
        .into_iter()
        .collect())
}

/// An outcome event in a bulk dataset.
#[derive(Debug, Clone)]
pub enum BulkOutcomeRecord {
    Removal {
        provider: OdsCode,
        local_record_id: String,
        device_index: i64,
        kind: RemovalKind,
        date: NaiveDate,
        reason: Option<String>,
        revising_provider: OdsCode,
    },
    Death {
        nhs_number: NhsNumber,
        date: NaiveDate,
    },
}

/// What became of a batch of outcome records, by index into the batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutcomeLoadReport {
    /// Records naming no stored implant or patient.
    pub unresolved: Vec<usize>,
    /// Removals of implants that already have one; the stored removal is kept.
    pub already_recorded: Vec<usize>,
}

/// Loads outcome events and reports, by index, those not written.
pub async fn bulk_outcomes(
    ctx: &Ctx,
    providers: &HashMap<String, OrganisationId>,
    records: &[BulkOutcomeRecord],
) -> Result<OutcomeLoadReport, ServiceError> {
    let now = ctx.now();
    let mut unresolved = Vec::new();
    let mut removals = Vec::new();
    let mut removal_indexes = Vec::new();
    let mut deaths = Vec::new();
    let mut death_indexes = Vec::new();
    for (index, record) in records.iter().enumerate() {
        match record {
            BulkOutcomeRecord::Removal {
                provider,
                local_record_id,
                device_index,
                kind,
                date,
                reason,
                revising_provider,
            } => {
                let (Some(&provider), Some(&revising)) = (
                    providers.get(provider.as_str()),
                    providers.get(revising_provider.as_str()),
                ) else {
                    unresolved.push(index);
                    continue;
                };
                removal_indexes.push(index);
                removals.push(BulkRemoval {
                    provider,
                    local_record_id: local_record_id.clone(),
                    position: *device_index,
                    kind: *kind,
                    removal_date: *date,
                    reason: reason.clone(),
                    revising_provider: revising,
                    recorded_at: now,
                });
            }
            BulkOutcomeRecord::Death { nhs_number, date } => {
                death_indexes.push(index);
                deaths.push((nhs_number.clone(), *date));
            }
        }
    }
    let removal_report = ctx.store.bulk_removals(&removals).await?;
    unresolved.extend(
        removal_report
            .unresolved
            .iter()
            .map(|&i| removal_indexes[i]),
    );
    let already_recorded = removal_report
        .already_recorded
        .iter()
        .map(|&i| removal_indexes[i])
        .collect();
    for i in ctx.store.bulk_deaths(&deaths).await? {
        unresolved.push(death_indexes[i]);
    }
    unresolved.sort_unstable();
    Ok(OutcomeLoadReport {
        unresolved,
        already_recorded,
    })
}

/// Creates or updates consultants (from a GMC extract or a dataset).
pub async fn upsert_consultants(
    ctx: &Ctx,
    consultants: &[mdor_store::NewConsultant],
) -> Result<(), ServiceError> {
    Ok(ctx.store.upsert_consultants(consultants).await?)
}
