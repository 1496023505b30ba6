//! Recall and field safety cases: the regulator opens a case for a device (UDI-DIs with lot
//! or serial lists and ranges, expiry, manufacture or implant windows, or the whole model),
//! the registry finds every affected patient, splits the work by the provider that implanted
//! the device, and tracks each patient's follow-up. Every access is audited in the same
//! transaction as the data it touches.
//!
//! Who may do what: regulators and administrators open, refresh and read every case's summary
//! (no identifiers); regulators read and update every provider's work items, stating their
//! purpose; a provider reads and updates only its own work items, and sees only its own line
//! of a case's summary.

use mdor_domain::record::FieldError;
use mdor_domain::{AccessPurpose, OdsCode, UdiDi};
use mdor_store::{
    NewAuditEvent, NewRecallCase, OrganisationId, RecallCase, RecallCaseCriteria, RecallCaseGrowth,
    RecallCaseId, RecallEntry, RecallEntryId, RecallStatus, RecallStatusChange, RecallWorkQuery,
    StoreError,
};

use crate::access::{StatedAccess, begin_access};
use crate::auth::Principal;
use crate::ctx::Ctx;
use crate::error::ServiceError;
use crate::policy::{self, Action, Relationship};

/// The most work items one page returns.
pub const MAX_WORK_PAGE: u32 = 5_000;

/// What the regulator asks for when opening a case, before validation.
#[derive(Debug, Clone, Default)]
pub struct RecallCaseRequest {
    pub reference: String,
    pub title: String,
    pub reason: String,
    pub udi_dis: Vec<UdiDi>,
    pub lots: Vec<String>,
    pub lot_range: Option<(String, String)>,
    pub serials: Vec<String>,
    pub serial_range: Option<(String, String)>,
    pub expiry_from: Option<chrono::NaiveDate>,
    pub expiry_to: Option<chrono::NaiveDate>,
    pub manufactured_from: Option<chrono::NaiveDate>,
    pub manufactured_to: Option<chrono::NaiveDate>,
    pub implanted_from: Option<chrono::NaiveDate>,
    pub implanted_to: Option<chrono::NaiveDate>,
}

fn audit(
    ctx: &Ctx,
    principal: &Principal,
    action: &'static str,
    resource: String,
) -> NewAuditEvent {
    NewAuditEvent {
        patients: Vec::new(),
        request: ctx.request(),
        at: ctx.now(),
        organisation: principal.organisation,
        role: principal.audit_role(),
        token: principal.token(),
        account: principal.account(),
        action,
        resource,
        patient: None,
        record_count: 0,
        purpose: "recall",
        outcome: "ok",
        break_glass: None,
    }
}

/// Checks every field and reports every problem at once.
fn validate(request: RecallCaseRequest) -> Result<RecallCaseCriteria, ServiceError> {
    let mut errors = Vec::new();
    let mut text = |field: &str, value: &str, max: usize| {
        if value.trim().is_empty() {
            errors.push(FieldError::new(
                field,
                "required",
                format!("{field} is required"),
            ));
        } else if value.chars().count() > max {
            errors.push(FieldError::new(
                field,
                "too_long",
                format!("{field} must be at most {max} characters"),
            ));
        }
    };
    text("reference", &request.reference, 64);
    text("title", &request.title, 200);
    text("reason", &request.reason, 2000);
    if request.udi_dis.is_empty() {
        errors.push(FieldError::new(
            "udi_dis",
            "required",
            "name at least one UDI-DI; a whole model is all of its UDI-DIs with no other criteria",
        ));
    }
    for (field, list) in [("lots", &request.lots), ("serials", &request.serials)] {
        for (i, value) in list.iter().enumerate() {
            if value.trim().is_empty() || value.len() > 20 {
                errors.push(FieldError::new(
                    format!("{field}[{i}]"),
                    "invalid",
                    "lots and serials are 1 to 20 characters (GS1 AI 10 and 21)",
                ));
            }
        }
    }
    for (field, range) in [
        ("lot_range", &request.lot_range),
        ("serial_range", &request.serial_range),
    ] {
        if let Some((from, to)) = range {
            // Compared as text, so endpoints of different lengths would catch lots nobody
            // meant ("15" lies between "1000" and "1999"); refuse rather than guess.
            if from.is_empty() || from.len() != to.len() || from > to {
                errors.push(FieldError::new(
                    field,
                    "invalid_range",
                    format!("{field} needs from ≤ to, both of the same length (they are compared as text)"),
                ));
            }
        }
    }
    for (field, from, to) in [
        ("expiry_to", request.expiry_from, request.expiry_to),
        (
            "manufactured_to",
            request.manufactured_from,
            request.manufactured_to,
        ),
        ("implanted_to", request.implanted_from, request.implanted_to),
    ] {
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            errors.push(FieldError::new(
                field,
                "empty_range",
                format!("{field} is before the start of its window"),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ServiceError::Invalid(errors));
    }
    Ok(RecallCaseCriteria {
        udi_dis: request
            .udi_dis
            .iter()
            .map(|u| u.as_str().to_string())
            .collect(),
        lots: request.lots,
        lot_range: request.lot_range,
        serials: request.serials,
        serial_range: request.serial_range,
        expiry_from: request.expiry_from,
        expiry_to: request.expiry_to,
        manufactured_from: request.manufactured_from,
        manufactured_to: request.manufactured_to,
        implanted_from: request.implanted_from,
        implanted_to: request.implanted_to,
    })
}

/// Opens a case and finds every affected patient.
#[tracing::instrument(skip_all)]
pub async fn open_recall_case(
    ctx: &Ctx,
    principal: &Principal,
    request: RecallCaseRequest,
) -> Result<(RecallCaseId, RecallCaseGrowth), ServiceError> {
    policy::authorize(principal, Action::OpenRecallCase, Relationship::Independent)?;
    let reference = request.reference.trim().to_string();
    let title = request.title.trim().to_string();
    let reason = request.reason.trim().to_string();
    let criteria = validate(request)?;
    let case = NewRecallCase {
        reference,
        title,
        reason,
        opened_by: principal.organisation,
        opened_at: ctx.now(),
        criteria,
    };
    let audit = audit(ctx, principal, "recall_case.create", "recall_case".into());
    match ctx.store.create_recall_case(&case, &audit).await {
        Ok(created) => Ok(created),
        Err(StoreError::Conflict { .. }) => Err(ServiceError::Conflict {
            code: "reference_in_use",
            field: Some("reference".into()),
            message: format!(
                "a recall case with reference {} already exists",
                case.reference
            ),
        }),
        Err(other) => Err(other.into()),
    }
}

/// Adds patients whose implants were submitted after the case was opened.
pub async fn refresh_recall_case(
    ctx: &Ctx,
    principal: &Principal,
    id: RecallCaseId,
) -> Result<RecallCaseGrowth, ServiceError> {
    policy::authorize(
        principal,
        Action::RefreshRecallCase,
        Relationship::Independent,
    )?;
    let audit = audit(
        ctx,
        principal,
        "recall_case.refresh",
        format!("recall_case/{id}"),
    );
    ctx.store
        .refresh_recall_case(id, &audit)
        .await?
        .ok_or(ServiceError::NotFound {
            what: "recall case",
        })
}

/// The case and its work counts; a provider sees only its own line, and a case with no
/// work for it is not found.
pub async fn recall_case(
    ctx: &Ctx,
    principal: &Principal,
    id: RecallCaseId,
) -> Result<RecallCase, ServiceError> {
    policy::authorize_some(principal, Action::ReadRecallCase)?;
    let mut case = ctx
        .store
        .recall_case(id)
        .await?
        .ok_or(ServiceError::NotFound {
            what: "recall case",
        })?;
    if principal.scope(Action::ReadRecallCase).is_some() {
        // A case is the caller's organisation's own when it has work items there; the caller
        // sees only its own line.
        case.work
            .retain(|w| w.provider_ods == principal.organisation_ods);
        if case.work.is_empty() {
            return Err(ServiceError::NotFound {
                what: "recall case",
            });
        }
        // The total count of implants is national; a provider sees only its own share.
        case.implants = 0;
    }
    Ok(case)
}

/// A page of work items: a provider's own, or for the regulator, with a stated purpose, any
/// provider's (or all). `action` is `ReadRecallWorklist` for a page, `ExportRecallWorklist`
/// for the export.
#[allow(
    clippy::too_many_arguments,
    reason = "each is one of the request's parameters; a struct would only rename them"
)]
pub async fn recall_worklist(
    ctx: &Ctx,
    principal: &Principal,
    action: Action,
    id: RecallCaseId,
    provider: Option<&OdsCode>,
    after: Option<RecallEntryId>,
    limit: u32,
    stated: &StatedAccess,
) -> Result<Vec<RecallEntry>, ServiceError> {
    let access = begin_access(
        ctx,
        principal,
        action,
        stated,
        AccessPurpose::Recall,
        "recall_case.worklist",
        format!("recall_case/{id}"),
    )
    .await?;
    if limit == 0 || limit > MAX_WORK_PAGE {
        return Err(ServiceError::invalid(
            "limit",
            "out_of_range",
            format!("limit must be 1 to {MAX_WORK_PAGE}"),
        ));
    }
    let provider: Option<OrganisationId> = match (access.scope, provider) {
        (None, None) => None,
        (None, Some(ods)) => Some(
            ctx.store
                .organisation_by_ods(ods)
                .await?
                .ok_or(ServiceError::NotFound {
                    what: "organisation",
                })?
                .id,
        ),
        (Some(_), Some(ods)) if ods.as_str() != principal.organisation_ods => {
            return Err(ServiceError::NotFound {
                what: "recall case",
            });
        }
        (Some(own), _) => Some(own),
    };
    if ctx.store.recall_case(id).await?.is_none() {
        return Err(ServiceError::NotFound {
            what: "recall case",
        });
    }
    let query = RecallWorkQuery {
        case_id: id,
        provider,
        after,
        limit,
    };
    Ok(ctx.store.recall_entries(&query, &access.audit).await?)
}

/// Moves a patient's follow-up forward. Work moves one way: a status can only be followed
/// by a later one, and explanted and no action are final.
pub async fn update_recall_status(
    ctx: &Ctx,
    principal: &Principal,
    id: RecallCaseId,
    entry: RecallEntryId,
    to: RecallStatus,
    note: Option<String>,
) -> Result<RecallStatus, ServiceError> {
    policy::authorize_some(principal, Action::UpdateRecallStatus)?;
    let state = ctx
        .store
        .recall_entry_state(id, entry)
        .await?
        .filter(|s| principal.reaches(Action::UpdateRecallStatus, s.provider))
        .ok_or(ServiceError::NotFound {
            what: "recall work item",
        })?;
    if state.status.is_final() || to <= state.status {
        return Err(ServiceError::Conflict {
            code: "invalid_transition",
            field: Some("status".into()),
            message: format!(
                "a patient at {} cannot move to {}; follow-up only moves forward and {} is {}",
                state.status.as_str(),
                to.as_str(),
                state.status.as_str(),
                if state.status.is_final() {
                    "final"
                } else {
                    "later"
                }
            ),
        });
    }
    if let Some(note) = &note
        && note.chars().count() > 2000
    {
        return Err(ServiceError::invalid(
            "note",
            "too_long",
            "note must be at most 2000 characters",
        ));
    }
    let change = RecallStatusChange {
        case_id: id,
        entry,
        from: state.status,
        to,
        note,
        at: ctx.now(),
        by_organisation: principal.organisation,
        by_role: principal.audit_role(),
    };
    let audit = audit(
        ctx,
        principal,
        "recall_case.status",
        format!("recall_case/{id}/patients/{entry}"),
    );
    if ctx.store.set_recall_status(&change, &audit).await? {
        Ok(to)
    } else {
        Err(ServiceError::Conflict {
            code: "status_changed",
            field: Some("status".into()),
            message: "someone else changed this patient's status meanwhile; reload and try again"
                .into(),
        })
    }
}
