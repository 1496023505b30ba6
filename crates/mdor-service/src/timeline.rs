//! One patient's implants, outcomes and recalls across every registry: the data behind an
//! implant card. Identifiable, so every request is audited with its stated purpose, refusals
//! and searches that find nobody included.
//!
//! A provider may read the timeline of a patient it has treated (direct care: a surgeon about
//! to revise a hip needs to know what else is implanted, wherever it was done); regulators
//! must state a purpose other than direct care; a consultant treating someone else's patient,
//! and an administrator, break glass (`access`). A patient reads their own record and who
//! accessed it, and nobody else's.

use mdor_domain::{AccessPurpose, NhsNumber};
use mdor_store::{PatientAccess, PatientTimeline};

use crate::access::{StatedAccess, begin_access};
use crate::auth::Principal;
use crate::ctx::Ctx;
use crate::error::ServiceError;
use crate::policy::{self, Action, Relationship};

/// The patient's timeline, if this principal may see it as stated.
#[tracing::instrument(skip_all)]
pub async fn patient_timeline(
    ctx: &Ctx,
    principal: &Principal,
    nhs_number: &NhsNumber,
    stated: &StatedAccess,
) -> Result<PatientTimeline, ServiceError> {
    let access = begin_access(
        ctx,
        principal,
        Action::ReadTimeline,
        stated,
        AccessPurpose::DirectCare,
        "patient.timeline",
        "patient".into(),
    )
    .await?;
    let mut audit = access.audit;
    let bounds = ctx.store.patient_timeline_bounds(nhs_number).await?;
    // A patient is the caller's organisation's own when it has treated them.
    let visible = bounds.as_ref().filter(|b| match access.scope {
        None => true,
        Some(own) => b.providers.contains(&own),
    });
    let Some(bounds) = visible else {
        // Absent and not visible look the same to the caller; the audit tells them apart.
        audit.outcome = if bounds.is_some() {
            "denied"
        } else {
            "not_found"
        };
        audit.patient = bounds.as_ref().map(|b| b.patient);
        ctx.store.append_audit(&audit).await?;
        return Err(ServiceError::NotFound { what: "patient" });
    };
    audit.resource = format!("patient/{}", bounds.patient);
    ctx.store
        .patient_timeline(bounds.patient, &audit)
        .await?
        .ok_or(ServiceError::NotFound { what: "patient" })
}

/// A patient's own timeline: the record their account is linked to, and nothing else.
/// Audited under the purpose `patient_access`, so it shows in their own access log.
#[tracing::instrument(skip_all)]
pub async fn own_patient_timeline(
    ctx: &Ctx,
    principal: &Principal,
) -> Result<PatientTimeline, ServiceError> {
    let mut audit = principal.audit(ctx, "patient.timeline", "patient".into(), "patient_access");
    let patient = own_patient_record(ctx, principal, Action::ReadOwnTimeline, &mut audit).await?;
    ctx.store
        .patient_timeline(patient, &audit)
        .await?
        .ok_or(ServiceError::NotFound {
            what: "linked patient record",
        })
}

/// Who accessed the patient's own record: organisation, role, action, purpose, time and
/// outcome of every audited access naming it, oldest first (never the token or the person).
#[tracing::instrument(skip_all)]
pub async fn own_patient_access_log(
    ctx: &Ctx,
    principal: &Principal,
) -> Result<Vec<PatientAccess>, ServiceError> {
    let mut audit = principal.audit(
        ctx,
        "patient.access_log",
        "patient".into(),
        "patient_access",
    );
    let patient = own_patient_record(ctx, principal, Action::ReadOwnAccessLog, &mut audit).await?;
    audit.resource = format!("patient/{patient}/access_log");
    Ok(ctx.store.patient_access_log(patient, &audit).await?)
}

/// The patient record the principal's account is linked to, once the policy lets it read its
/// own record: anyone but a patient is refused, and a patient account without a link has no
/// record to read. Refusals and the missing link are audited.
async fn own_patient_record(
    ctx: &Ctx,
    principal: &Principal,
    action: Action,
    audit: &mut mdor_store::NewAuditEvent,
) -> Result<mdor_store::PatientId, ServiceError> {
    policy::authorize_some_audited(ctx, principal, action, audit).await?;
    let Some(patient) = principal.patient else {
        audit.outcome = "not_found";
        ctx.store.append_audit(audit).await?;
        return Err(ServiceError::NotFound {
            what: "linked patient record",
        });
    };
    audit.resource = format!("patient/{patient}");
    policy::authorize_audited(
        ctx,
        principal,
        action,
        principal.relationship_to_patient(patient),
        audit,
    )
    .await?;
    Ok(patient)
}

/// Who accessed a patient's record: organisation, role, action, purpose, time and outcome of
/// every audited access naming the patient, oldest first (never the token). An administrator
/// reads it on the patient's behalf (a patient with an account reads their own,
/// `own_patient_access_log`). The read, a refusal and a miss are audited like any other.
#[tracing::instrument(skip_all)]
pub async fn patient_access_log(
    ctx: &Ctx,
    principal: &Principal,
    nhs_number: &NhsNumber,
) -> Result<Vec<PatientAccess>, ServiceError> {
    let mut audit = principal.audit(
        ctx,
        "patient.access_log",
        "patient".into(),
        "subject_access",
    );
    policy::authorize_audited(
        ctx,
        principal,
        Action::ReadAccessLog,
        Relationship::Independent,
        &audit,
    )
    .await?;
    let Some(bounds) = ctx.store.patient_timeline_bounds(nhs_number).await? else {
        audit.outcome = "not_found";
        ctx.store.append_audit(&audit).await?;
        return Err(ServiceError::NotFound { what: "patient" });
    };
    audit.resource = format!("patient/{}/access_log", bounds.patient);
    Ok(ctx.store.patient_access_log(bounds.patient, &audit).await?)
}
