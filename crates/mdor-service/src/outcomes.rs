//! Outcome events: a revision or explant of an implant, and a patient's death.

use chrono::NaiveDate;

use mdor_domain::NhsNumber;
use mdor_domain::record::{RemovalKind, RemovalReason};
use mdor_domain::rules::{TimelineError, check_death, check_removal};
use mdor_store::{ImplantId, NewRemoval, RemovalId};

use crate::auth::Principal;
use crate::ctx::Ctx;
use crate::error::ServiceError;
use crate::idempotency::{self, IdempotencyRequest, Outcome};
use crate::policy::{self, Action, Relationship};

/// A provider's report that an implant was revised or explanted.
#[derive(Debug, Clone)]
pub struct RemovalRequest {
    pub implant: ImplantId,
    /// The patient's NHS number, which the reporting provider must know: a provider that did
    /// not implant the device can record its revision only for a patient it treats.
    pub nhs_number: NhsNumber,
    pub kind: RemovalKind,
    pub removal_date: NaiveDate,
    pub reason: Option<RemovalReason>,
}

/// Records a revision or explant by the caller's organisation.
#[tracing::instrument(skip_all, fields(organisation = %principal.organisation_ods, implant = request.implant.0))]
pub async fn record_removal(
    ctx: &Ctx,
    principal: &Principal,
    request: RemovalRequest,
    idempotency: Option<IdempotencyRequest>,
) -> Result<Outcome<RemovalId>, ServiceError> {
    // The removal is the caller's organisation's record, whoever implanted the device.
    policy::authorize(
        principal,
        Action::RecordRemoval,
        Relationship::OwnOrganisation,
    )?;
    if let Some(reference) = idempotency::earlier(ctx, principal, idempotency.as_ref()).await? {
        let implant = implant_from_reference(&reference)?;
        return Ok(Outcome::Replayed(removal_by_implant(ctx, implant).await?));
    }
    let not_found = || ServiceError::NotFound { what: "implant" };
    let implant = ctx
        .store
        .implant_context(request.implant)
        .await?
        .ok_or_else(not_found)?;
    let patient = ctx
        .store
        .patient_timeline_bounds(&request.nhs_number)
        .await?
        .ok_or_else(not_found)?;
    if patient.patient != implant.patient {
        return Err(not_found());
    }
    if implant.already_removed {
        return Err(ServiceError::Conflict {
            code: "implant_already_removed",
            field: Some("implant_id".into()),
            message: "this implant already has a recorded revision or explant".into(),
        });
    }
    check_removal(
        implant.procedure_date,
        request.removal_date,
        implant.date_of_death,
        ctx.today(),
    )
    .map_err(|e| timeline_error("removal_date", &e))?;
    let removal = NewRemoval {
        implant: request.implant,
        kind: request.kind,
        removal_date: request.removal_date,
        reason: request.reason.map(|r| r.as_str().to_string()),
        revising_provider: principal.organisation,
        recorded_at: ctx.now(),
    };
    // The reference must be known before the insert; the implant id identifies the removal
    // because an implant is removed at most once.
    let reference = serde_json::json!({ "implant_id": request.implant.0 }).to_string();
    let record = idempotency::record(ctx, principal, idempotency.as_ref(), reference);
    match ctx
        .store
        .insert_removals(std::slice::from_ref(&removal), record.as_ref())
        .await
    {
        Ok(ids) => ids
            .first()
            .copied()
            .map(Outcome::Created)
            .ok_or(ServiceError::NotFound { what: "removal" }),
        Err(e) if idempotency::lost_race(&e) => Ok(Outcome::Replayed(
            removal_by_implant(ctx, request.implant).await?,
        )),
        Err(mdor_store::StoreError::Conflict { constraint })
            if constraint.contains("implant_id") =>
        {
            Err(ServiceError::Conflict {
                code: "implant_already_removed",
                field: Some("implant_id".into()),
                message: "this implant already has a recorded revision or explant".into(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Records a patient's death. A provider may record it only for a patient it has treated.
#[tracing::instrument(skip_all, fields(organisation = %principal.organisation_ods))]
pub async fn record_death(
    ctx: &Ctx,
    principal: &Principal,
    nhs_number: &NhsNumber,
    date_of_death: NaiveDate,
    idempotency: Option<IdempotencyRequest>,
) -> Result<Outcome<()>, ServiceError> {
    policy::authorize_some(principal, Action::RecordDeath)?;
    if idempotency::earlier(ctx, principal, idempotency.as_ref())
        .await?
        .is_some()
    {
        return Ok(Outcome::Replayed(()));
    }
    let patient = ctx
        .store
        .patient_timeline_bounds(nhs_number)
        .await?
        .ok_or(ServiceError::NotFound { what: "patient" })?;
    // The patient is the caller's own when its organisation has treated them.
    let relationship = if patient.providers.contains(&principal.organisation) {
        Relationship::OwnOrganisation
    } else {
        Relationship::OtherOrganisation
    };
    if !policy::allows(principal.role, Action::RecordDeath, relationship) {
        return Err(ServiceError::NotFound { what: "patient" });
    }
    match patient.date_of_death {
        Some(recorded) if recorded == date_of_death => return Ok(Outcome::Replayed(())),
        Some(_) => {
            return Err(ServiceError::Conflict {
                code: "death_already_recorded",
                field: Some("date_of_death".into()),
                message: "a different date of death is already recorded for this patient".into(),
            });
        }
        None => {}
    }
    check_death(date_of_death, patient.latest_procedure, ctx.today())
        .map_err(|e| timeline_error("date_of_death", &e))?;
    if patient
        .latest_removal
        .is_some_and(|removal| removal > date_of_death)
    {
        return Err(ServiceError::invalid(
            "date_of_death",
            "death_before_removal",
            "date_of_death is before a recorded revision or explant",
        ));
    }
    let record = idempotency::record(ctx, principal, idempotency.as_ref(), "{}".into());
    match ctx
        .store
        .record_death(patient.patient, date_of_death, record.as_ref())
        .await
    {
        Ok(()) => Ok(Outcome::Created(())),
        Err(e) if idempotency::lost_race(&e) => Ok(Outcome::Replayed(())),
        Err(e) => Err(e.into()),
    }
}

fn timeline_error(field: &str, error: &TimelineError) -> ServiceError {
    let code = match error {
        TimelineError::RemovalBeforeImplant { .. } => "removal_before_implant",
        TimelineError::AfterDeath { .. } => "after_death",
        TimelineError::DeathBeforeProcedure { .. } => "death_before_procedure",
        TimelineError::InFuture { .. } => "date_in_future",
    };
    ServiceError::invalid(field, code, error.to_string())
}

fn implant_from_reference(reference: &str) -> Result<ImplantId, ServiceError> {
    let value: serde_json::Value = serde_json::from_str(reference)
        .map_err(|e| ServiceError::Input(format!("stored idempotency reference: {e}")))?;
    value["implant_id"]
        .as_i64()
        .map(ImplantId)
        .ok_or(ServiceError::IdempotencyKeyReused)
}

async fn removal_by_implant(ctx: &Ctx, implant: ImplantId) -> Result<RemovalId, ServiceError> {
    let context = ctx
        .store
        .implant_context(implant)
        .await?
        .ok_or(ServiceError::NotFound { what: "implant" })?;
    let record = ctx
        .store
        .procedure(context.procedure)
        .await?
        .ok_or(ServiceError::NotFound { what: "procedure" })?;
    record
        .implants
        .iter()
        .find(|i| i.id == implant)
        .and_then(|i| i.removal.as_ref().map(|r| r.id))
        .ok_or(ServiceError::NotFound { what: "removal" })
}
