//! Registering an implant procedure and reading it back.

use std::collections::HashMap;

use mdor_domain::AccessPurpose;
use mdor_domain::record::Submission;
use mdor_domain::rules::follow_up_flags;
use mdor_store::{
    OrganisationId, PreparedImplant, PreparedSubmission, ProcedureId, ProcedureRecord, StoreError,
};

use crate::access::{StatedAccess, begin_access};
use crate::auth::Principal;
use crate::ctx::Ctx;
use crate::error::ServiceError;
use crate::idempotency::{self, IdempotencyRequest, Outcome};
use crate::policy::{self, Action, Relationship};

/// Stores a submission from a provider: the procedure's provider must be the caller's own
/// organisation. Devices are matched against the register and flagged for follow-up when
/// expired on the implant date or not in the register; flagged devices are stored, never
/// dropped.
#[tracing::instrument(skip_all, fields(organisation = %principal.organisation_ods))]
pub async fn register_procedure(
    ctx: &Ctx,
    principal: &Principal,
    submission: Submission,
    idempotency: Option<IdempotencyRequest>,
) -> Result<Outcome<ProcedureRecord>, ServiceError> {
    policy::authorize_some(principal, Action::RegisterProcedure)?;
    if let Some(reference) = idempotency::earlier(ctx, principal, idempotency.as_ref()).await? {
        return replay(ctx, &reference).await;
    }
    // The procedure's provider is named by ODS code; only the caller's own is reachable, and
    // another is refused outright (the caller knows which provider it wrote).
    let relationship = if submission.procedure.provider.as_str() == principal.organisation_ods {
        Relationship::OwnOrganisation
    } else {
        Relationship::OtherOrganisation
    };
    if !policy::allows(principal.role, Action::RegisterProcedure, relationship) {
        return Err(ServiceError::Forbidden {
            action: "submit procedures for another organisation",
            audited: false,
        });
    }
    let prepared = prepare(ctx, principal.organisation, submission).await?;
    // The reference names the procedure by provider and local record id, both known before
    // the insert creates the id.
    let reference = reference_for(&prepared);
    let record = idempotency::record(ctx, principal, idempotency.as_ref(), reference);
    let id = match ctx
        .store
        .insert_submission(&prepared, record.as_ref())
        .await
    {
        Ok(id) => id,
        Err(e) if idempotency::lost_race(&e) => {
            let earlier = idempotency::earlier(ctx, principal, idempotency.as_ref()).await?;
            let reference = earlier.ok_or(ServiceError::Store(e))?;
            return replay(ctx, &reference).await;
        }
        Err(StoreError::Conflict { constraint }) if constraint.contains("local_record_id") => {
            return Err(ServiceError::Conflict {
                code: "duplicate_local_record_id",
                field: Some("procedure.local_record_id".into()),
                message:
                    "a procedure with this local_record_id is already registered for this provider"
                        .into(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let record = ctx
        .store
        .procedure(id)
        .await?
        .ok_or(ServiceError::NotFound { what: "procedure" })?;
    Ok(Outcome::Created(record))
}

/// Reads a procedure. Providers see only their own organisation's procedures, and anything
/// else is reported as not found so that ids cannot be probed; regulators state a purpose,
/// and a consultant or administrator may break glass (`access`). Every read, refusal and miss
/// is audited, and the record is returned only after its audit entry is committed.
#[tracing::instrument(skip_all, fields(procedure = id.0))]
pub async fn get_procedure(
    ctx: &Ctx,
    principal: &Principal,
    id: ProcedureId,
    stated: &StatedAccess,
) -> Result<ProcedureRecord, ServiceError> {
    read_procedure(ctx, principal, id, Action::ReadProcedure, stated).await
}

/// `get_procedure` under `action` (reading a procedure's versions checks that the caller may
/// read those, and reads the procedure itself the same way).
pub(crate) async fn read_procedure(
    ctx: &Ctx,
    principal: &Principal,
    id: ProcedureId,
    action: Action,
    stated: &StatedAccess,
) -> Result<ProcedureRecord, ServiceError> {
    let access = begin_access(
        ctx,
        principal,
        action,
        stated,
        AccessPurpose::DirectCare,
        "procedure.read",
        format!("procedure/{id}"),
    )
    .await?;
    ctx.store
        .audited_procedure(id, access.scope, &access.audit)
        .await?
        .ok_or(ServiceError::NotFound { what: "procedure" })
}

/// Matches devices against the register and computes follow-up flags.
pub(crate) async fn prepare(
    ctx: &Ctx,
    provider: OrganisationId,
    submission: Submission,
) -> Result<PreparedSubmission, ServiceError> {
    let udi_dis: Vec<_> = submission.devices.iter().map(|d| &d.udi_di).collect();
    let known: HashMap<String, _> = ctx
        .store
        .device_model_ids(&udi_dis)
        .await?
        .into_iter()
        .collect();
    Ok(prepare_with(&known, provider, submission, ctx.now()))
}

/// The pure part of `prepare`, shared with bulk loading, which looks the register up once.
pub(crate) fn prepare_with(
    known: &HashMap<String, mdor_store::DeviceModelId>,
    provider: OrganisationId,
    submission: Submission,
    received_at: chrono::DateTime<chrono::Utc>,
) -> PreparedSubmission {
    let date = submission.procedure.procedure_date;
    let implants = submission
        .devices
        .iter()
        .map(|device| {
            let device_model = known.get(device.udi_di.as_str()).copied();
            PreparedImplant {
                device_model,
                flags: follow_up_flags(device, date, device_model.is_some()),
            }
        })
        .collect();
    PreparedSubmission {
        submission,
        provider,
        implants,
        received_at,
        sealed_patient: None,
    }
}

/// The idempotency reference: the provider and its local record id identify the procedure.
fn reference_for(prepared: &PreparedSubmission) -> String {
    serde_json::json!({
        "provider": prepared.provider.0,
        "local_record_id": prepared.submission.procedure.local_record_id.as_str(),
    })
    .to_string()
}

async fn replay(ctx: &Ctx, reference: &str) -> Result<Outcome<ProcedureRecord>, ServiceError> {
    let value: serde_json::Value = serde_json::from_str(reference)
        .map_err(|e| ServiceError::Input(format!("stored idempotency reference: {e}")))?;
    let provider = value["provider"].as_i64().map(OrganisationId);
    let local = value["local_record_id"].as_str();
    let (Some(provider), Some(local)) = (provider, local) else {
        return Err(ServiceError::IdempotencyKeyReused);
    };
    let id = ctx
        .store
        .procedure_by_local_id(provider, local)
        .await?
        .ok_or(ServiceError::NotFound { what: "procedure" })?;
    let record = ctx
        .store
        .procedure(id)
        .await?
        .ok_or(ServiceError::NotFound { what: "procedure" })?;
    Ok(Outcome::Replayed(record))
}
