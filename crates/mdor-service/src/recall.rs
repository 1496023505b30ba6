//! The recall query: every implant of a device, narrowed by lot, serial, expiry or implant
//! date, with the patient and the provider that implanted it. Identifiable across every
//! provider, so the caller states its purpose (recall, clinical audit or investigation), and
//! every query and refusal is audited with the criteria as its resource, that purpose and the
//! number of rows returned.

use mdor_domain::AccessPurpose;
use mdor_store::{RecallCriteria, RecallRow};

use crate::access::{StatedAccess, begin_access};
use crate::auth::Principal;
use crate::ctx::Ctx;
use crate::error::ServiceError;
use crate::policy::Action;

/// The most rows one page of a recall returns.
pub const MAX_RECALL_PAGE: u32 = 10_000;

/// Runs a recall query for the regulator, for its stated purpose.
#[tracing::instrument(skip_all, fields(udi_di = %criteria.udi_di))]
pub async fn recall(
    ctx: &Ctx,
    principal: &Principal,
    criteria: &RecallCriteria,
    stated: &StatedAccess,
) -> Result<Vec<RecallRow>, ServiceError> {
    let access = begin_access(
        ctx,
        principal,
        Action::RecallSearch,
        stated,
        AccessPurpose::Recall,
        "recall.query",
        query_resource(criteria),
    )
    .await?;
    if criteria.limit == 0 || criteria.limit > MAX_RECALL_PAGE {
        return Err(ServiceError::invalid(
            "limit",
            "out_of_range",
            format!("limit must be 1 to {MAX_RECALL_PAGE}"),
        ));
    }
    let ranges = [
        ("expiry_to", criteria.expiry_from, criteria.expiry_to),
        (
            "implanted_to",
            criteria.implanted_from,
            criteria.implanted_to,
        ),
    ];
    for (field, from, to) in ranges {
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            return Err(ServiceError::invalid(
                field,
                "empty_range",
                format!("{field} is before the start of its range"),
            ));
        }
    }
    Ok(ctx.store.audited_recall(criteria, &access.audit).await?)
}

/// The query as the audit records it: the criteria given, none of them identifying a person.
fn query_resource(criteria: &RecallCriteria) -> String {
    let mut resource = format!("recall?udi_di={}", criteria.udi_di);
    let mut add = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            resource.push_str(&format!("&{name}={value}"));
        }
    };
    add("lot", criteria.lot.clone());
    add("serial", criteria.serial.clone());
    add("expiry_from", criteria.expiry_from.map(|d| d.to_string()));
    add("expiry_to", criteria.expiry_to.map(|d| d.to_string()));
    add(
        "implanted_from",
        criteria.implanted_from.map(|d| d.to_string()),
    );
    add("implanted_to", criteria.implanted_to.map(|d| d.to_string()));
    add("after", criteria.after.map(|a| a.0.to_string()));
    add("limit", Some(criteria.limit.to_string()));
    resource
}
