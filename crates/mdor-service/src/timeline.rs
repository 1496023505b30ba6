//! One patient's implants, outcomes and recalls across every registry: the data behind an
//! implant card. Identifiable, so every request is audited with its stated purpose, refusals
//! and searches that find nobody included.
//!
//! A provider may read the timeline of a patient it has treated (direct care: a surgeon about
//! to revise a hip needs to know what else is implanted, wherever it was done); regulators and
//! administrators must state a purpose other than direct care.

use mdor_domain::NhsNumber;
use mdor_store::{NewAuditEvent, PatientAccess, PatientTimeline};

use crate::auth::Principal;
use crate::ctx::Ctx;
use crate::error::ServiceError;
use crate::policy::{self, Action, Relationship};

/// Why identifiable data is being read; recorded with every access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessPurpose {
    DirectCare,
    Recall,
    ClinicalAudit,
    Investigation,
}

impl AccessPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessPurpose::DirectCare => "direct_care",
            AccessPurpose::Recall => "recall",
            AccessPurpose::ClinicalAudit => "clinical_audit",
            AccessPurpose::Investigation => "investigation",
        }
    }

    pub fn parse(input: &str) -> Option<AccessPurpose> {
        [
            AccessPurpose::DirectCare,
            AccessPurpose::Recall,
            AccessPurpose::ClinicalAudit,
            AccessPurpose::Investigation,
        ]
        .into_iter()
        .find(|p| p.as_str() == input)
    }
}

/// The patient's timeline, if this principal may see it for this purpose.
#[tracing::instrument(skip_all)]
pub async fn patient_timeline(
    ctx: &Ctx,
    principal: &Principal,
    nhs_number: &NhsNumber,
    purpose: Option<AccessPurpose>,
) -> Result<PatientTimeline, ServiceError> {
    let refused = principal.audit(
        ctx,
        "patient.timeline",
        "patient".into(),
        purpose.map_or("unstated", AccessPurpose::as_str),
    );
    policy::authorize_some_audited(ctx, principal, Action::ReadTimeline, &refused).await?;
    // Roles limited to their own organisation's patients read for direct care; the others
    // read any patient's and must say why.
    let own_patients_only = principal.scope(Action::ReadTimeline).is_some();
    let purpose = match (own_patients_only, purpose) {
        (true, None | Some(AccessPurpose::DirectCare)) => AccessPurpose::DirectCare,
        (true, Some(_)) => {
            return Err(ServiceError::invalid(
                "purpose",
                "not_allowed",
                "a provider reads its own patients' records for direct care only",
            ));
        }
        (false, Some(p)) if p != AccessPurpose::DirectCare => p,
        (false, _) => {
            return Err(ServiceError::invalid(
                "purpose",
                "required",
                "state the purpose: recall, clinical_audit or investigation",
            ));
        }
    };
    let mut audit = NewAuditEvent {
        at: ctx.now(),
        organisation: principal.organisation,
        role: principal.audit_role(),
        token: principal.token(),
        account: principal.account(),
        action: "patient.timeline",
        resource: "patient".into(),
        patient: None,
        record_count: 0,
        purpose: purpose.as_str(),
        outcome: "ok",
        break_glass: None,
    };
    let bounds = ctx.store.patient_timeline_bounds(nhs_number).await?;
    // A patient is the caller's organisation's own when it has treated them.
    let visible = bounds.as_ref().filter(|b| {
        let relationship = if b.providers.contains(&principal.organisation) {
            Relationship::OwnOrganisation
        } else {
            Relationship::OtherOrganisation
        };
        policy::allows(principal.role, Action::ReadTimeline, relationship)
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

/// Who accessed a patient's record: organisation, role, action, purpose, time and outcome of
/// every audited access naming the patient, oldest first (never the token). For now only an
/// administrator may read it, on the patient's behalf; patients reading their own waits for
/// patient accounts. The read, a refusal and a miss are audited like any other.
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
