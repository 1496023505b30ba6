//! The recall query: every implant of a device, narrowed by lot, serial, expiry or implant
//! date, with the patient and the provider that implanted it.

use mdor_store::{RecallCriteria, RecallRow, Role};

use crate::auth::Principal;
use crate::ctx::Ctx;
use crate::error::ServiceError;

/// The most rows one page of a recall returns.
pub const MAX_RECALL_PAGE: u32 = 10_000;

/// Runs a recall query for the regulator (or an administrator).
#[tracing::instrument(skip_all, fields(udi_di = %criteria.udi_di))]
pub async fn recall(
    ctx: &Ctx,
    principal: &Principal,
    criteria: &RecallCriteria,
) -> Result<Vec<RecallRow>, ServiceError> {
    principal.require(&[Role::Regulator, Role::Admin], "run recall queries")?;
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
    Ok(ctx.store.recall(criteria).await?)
}
