//! Review of break-glass accesses: every break-glass access raises a review item (written by
//! the store with the access's audit entry, see `access`), administrators list the open ones,
//! and another person than the one who broke glass decides whether the access was
//! appropriate. Listing and deciding are audited; a decision is a person's, so it needs a
//! session, and it is final.

use mdor_store::{
    AccessReview, AccessReviewDecision, AccessReviewId, AccessReviewQuery, Field, ReviewDecision,
};

use crate::auth::Principal;
use crate::ctx::Ctx;
use crate::error::ServiceError;
use crate::policy::{self, Action, Relationship};

/// The most review items one page returns.
pub const MAX_REVIEW_PAGE: u32 = 500;
/// The longest decision note, in characters.
pub const MAX_REVIEW_NOTE_CHARS: usize = 2000;

/// Review items, oldest first: the open ones, or with `include_decided` every one.
#[tracing::instrument(skip_all)]
pub async fn access_reviews(
    ctx: &Ctx,
    principal: &Principal,
    query: &AccessReviewQuery,
) -> Result<Vec<AccessReview>, ServiceError> {
    let mut audit = principal.audit(ctx, "access_review.list", "access_review".into(), "review");
    policy::authorize_audited(
        ctx,
        principal,
        Action::ReadAccessReviews,
        Relationship::Independent,
        &audit,
    )
    .await?;
    if query.limit == 0 || query.limit > MAX_REVIEW_PAGE {
        return Err(ServiceError::invalid(
            "limit",
            "out_of_range",
            format!("limit must be 1 to {MAX_REVIEW_PAGE}"),
        ));
    }
    let reviews = ctx.store.access_reviews(query).await?;
    // The reasons are written once the listing is: no audit, no reasons.
    audit.record_count = reviews.len() as u64;
    ctx.store.append_audit(&audit).await?;
    Ok(reviews)
}

/// Records a decision on an open review item: appropriate, or inappropriate with a note
/// saying why (a note is optional for appropriate). Refused to an API token, to the person
/// who broke glass, and for an item already decided.
#[tracing::instrument(skip_all, fields(review = id.0))]
pub async fn decide_access_review(
    ctx: &Ctx,
    principal: &Principal,
    id: AccessReviewId,
    decision: ReviewDecision,
    note: Option<&str>,
) -> Result<AccessReview, ServiceError> {
    let mut audit = principal.audit(
        ctx,
        "access_review.decide",
        format!("access_review/{id}"),
        "review",
    );
    policy::authorize_audited(
        ctx,
        principal,
        Action::DecideAccessReview,
        Relationship::Independent,
        &audit,
    )
    .await?;
    let Some(reviewer) = principal.account() else {
        audit.outcome = "denied";
        ctx.store.append_audit(&audit).await?;
        return Err(ServiceError::Forbidden {
            action: "decide review items with an API token: a decision is a person's",
            audited: true,
        });
    };
    principal.require_recent_authentication(ctx)?;
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    if decision == ReviewDecision::Inappropriate && note.is_none() {
        return Err(ServiceError::invalid(
            "note",
            "required",
            "say why the access was inappropriate",
        ));
    }
    if note.is_some_and(|n| n.chars().count() > MAX_REVIEW_NOTE_CHARS) {
        return Err(ServiceError::invalid(
            "note",
            "too_long",
            format!("note must be at most {MAX_REVIEW_NOTE_CHARS} characters"),
        ));
    }
    let Some(review) = ctx.store.access_review(id).await? else {
        audit.outcome = "not_found";
        ctx.store.append_audit(&audit).await?;
        return Err(ServiceError::NotFound {
            what: "access review",
        });
    };
    if review.account == reviewer {
        audit.outcome = "denied";
        ctx.store.append_audit(&audit).await?;
        return Err(ServiceError::Forbidden {
            action: "decide the review of their own break-glass access",
            audited: true,
        });
    }
    if review.decision.is_some() {
        return Err(already_decided());
    }
    // The decision and note are sealed with a commitment the decision's audit entry holds.
    let sealed = ctx.store.identifier_cipher().await?.seal_detail(
        Field::ReviewDecision,
        &mdor_store::decision_detail(decision, note),
    )?;
    let recorded = ctx
        .store
        .decide_access_review(
            &AccessReviewDecision {
                review: id,
                decision,
                sealed,
                by: reviewer,
                at: ctx.now(),
            },
            &audit,
        )
        .await?;
    if !recorded {
        // Another reviewer decided it between the read and the update.
        return Err(already_decided());
    }
    ctx.store
        .access_review(id)
        .await?
        .ok_or(ServiceError::NotFound {
            what: "access review",
        })
}

fn already_decided() -> ServiceError {
    ServiceError::Conflict {
        code: "review_already_decided",
        field: None,
        message: "this review item was already decided; a decision is final".into(),
    }
}
