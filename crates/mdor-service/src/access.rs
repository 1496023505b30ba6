//! The purpose and break-glass rules of identifiable reads (issue 4 §4), applied in one place
//! for every use case that reads another organisation's records (`Action::takes_stated_purpose`).
//!
//! - The caller's own organisation's records: no purpose needed (direct care, or the recall
//!   work it is doing); stating another is refused, since a provider reads its own patients
//!   for their care.
//! - Other organisations' records, or all of them (regulators): a stated purpose other than
//!   direct care (recall, clinical audit, investigation), recorded in the audit entry.
//! - Break-glass: a person (never an API token) whose role the policy lets break glass for the
//!   action states a written reason. A direct-care role (consultant) breaks glass for direct
//!   care; any other (administrators) also states its purpose. The entry's purpose is marked
//!   `break_glass:…`, it carries the reason, and the store raises one review item with it
//!   (`access_review`), whatever the read finds.
//!
//! Refusals by the policy are audited (`denied`) before they are returned, so probing shows;
//! a missing or unfit purpose is an input error and reads nothing.

use mdor_domain::{AccessPurpose, BreakGlassReason};
use mdor_store::{Field, NewAuditEvent, OrganisationId};

use crate::auth::Principal;
use crate::ctx::Ctx;
use crate::error::ServiceError;
use crate::policy::{self, Action, Relationship};

/// What the caller says about an identifiable read: why, and for break-glass, the written
/// reason. Empty for a read of the caller's own organisation's records.
#[derive(Debug, Clone, Default)]
pub struct StatedAccess {
    pub purpose: Option<AccessPurpose>,
    pub break_glass: Option<BreakGlassReason>,
}

/// An identifiable read allowed to go ahead: the organisation whose records it is limited to
/// (`None`: any), and its audit entry with the purpose (and break-glass reason) recorded.
#[derive(Debug)]
pub(crate) struct Access {
    pub scope: Option<OrganisationId>,
    pub audit: NewAuditEvent,
}

/// Decides whether `principal` may make the identifiable read `action` as stated, and on what
/// basis. `own_purpose` is what a read of the caller's own organisation's records is for
/// (direct care; recall for a provider's recall work); `audit_action` and `resource` name the
/// audit entry.
pub(crate) async fn begin_access(
    ctx: &Ctx,
    principal: &Principal,
    action: Action,
    stated: &StatedAccess,
    own_purpose: AccessPurpose,
    audit_action: &'static str,
    resource: String,
) -> Result<Access, ServiceError> {
    let role = principal.role;
    let mut audit = principal.audit(
        ctx,
        audit_action,
        resource,
        stated.purpose.map_or("unstated", AccessPurpose::as_str),
    );
    if !policy::allows_some(role, action) {
        return refuse(
            ctx,
            &audit,
            ServiceError::Forbidden {
                action: action.describe(),
                audited: true,
            },
        )
        .await;
    }
    if let Some(reason) = &stated.break_glass {
        if !policy::allows_break_glass(role, action) {
            return refuse(
                ctx,
                &audit,
                ServiceError::Forbidden {
                    action: "break glass for this record",
                    audited: true,
                },
            )
            .await;
        }
        // The review names the person who broke glass, and a token names a system.
        if principal.account().is_none() {
            return refuse(
                ctx,
                &audit,
                ServiceError::Forbidden {
                    action: "break glass with an API token: it takes a person's session",
                    audited: true,
                },
            )
            .await;
        }
        let purpose = if policy::allows(role, action, Relationship::OwnOrganisation) {
            // A role that reads its own organisation's records for direct care breaks glass
            // for the same reason: treating a patient who is not (yet) its own.
            match stated.purpose {
                None | Some(AccessPurpose::DirectCare) => AccessPurpose::DirectCare,
                Some(_) => {
                    return Err(ServiceError::PurposeNotAllowed {
                        message: "a clinician breaks glass for direct care only",
                    });
                }
            }
        } else {
            beyond_own_organisation(stated.purpose)?
        };
        audit.purpose = purpose.break_glass_str();
        // Sealed like an identifier (a reason may name the patient), and committed to by the
        // access's audit entry.
        audit.break_glass = Some(
            ctx.store
                .identifier_cipher()
                .await?
                .seal_detail(Field::BreakGlassReason, reason.as_str())?,
        );
        return Ok(Access { scope: None, audit });
    }
    if policy::allows(role, action, Relationship::OtherOrganisation)
        || policy::allows(role, action, Relationship::Independent)
    {
        audit.purpose = beyond_own_organisation(stated.purpose)?.as_str();
        return Ok(Access { scope: None, audit });
    }
    if policy::allows(role, action, Relationship::OwnOrganisation) {
        let purpose = match stated.purpose {
            None => own_purpose,
            Some(p) if p == own_purpose || p == AccessPurpose::DirectCare => p,
            Some(_) => {
                return Err(ServiceError::PurposeNotAllowed {
                    message: "a provider reads its own patients' records for their care; \
                              state no purpose, or direct_care",
                });
            }
        };
        audit.purpose = purpose.as_str();
        return Ok(Access {
            scope: Some(principal.organisation),
            audit,
        });
    }
    // The role's only row for the action is break-glass, and it did not break glass.
    refuse(ctx, &audit, ServiceError::BreakGlassRequired).await
}

/// The purpose of a read beyond the caller's own organisation: stated, and not direct care
/// (direct care of another provider's patient is what break-glass is for).
fn beyond_own_organisation(stated: Option<AccessPurpose>) -> Result<AccessPurpose, ServiceError> {
    const STATE_ONE: &str = "state the purpose: recall, clinical_audit or investigation";
    match stated {
        None => Err(ServiceError::PurposeRequired { message: STATE_ONE }),
        Some(AccessPurpose::DirectCare) => Err(ServiceError::PurposeNotAllowed {
            message: "direct care is for the treating provider, or break-glass; \
                      state recall, clinical_audit or investigation",
        }),
        Some(purpose) => Ok(purpose),
    }
}

/// Writes the refusal to the audit (no review item: nothing was reached), then returns it.
async fn refuse<T>(
    ctx: &Ctx,
    audit: &NewAuditEvent,
    error: ServiceError,
) -> Result<T, ServiceError> {
    let mut refused = audit.clone();
    refused.outcome = "denied";
    refused.break_glass = None;
    ctx.store.append_audit(&refused).await?;
    Err(error)
}
