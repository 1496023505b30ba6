//! Review of break-glass accesses, for administrators: `GET /api/v1/access-reviews` lists the
//! open review items (or every one), each naming the access's audit entry, who broke glass,
//! when, what and why; `POST /api/v1/access-reviews/{id}/decision` records whether it was
//! appropriate. A decision is a person's (a session, within 10 minutes of entering the
//! password and second factor), never the one who broke glass, and final.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use mdor_domain::record::FieldError;
use mdor_service::{AccessReview, AccessReviewId, AccessReviewQuery, ReviewDecision};

use crate::api::query_error;
use crate::api::{identifiable, path_error};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, JsonBody, RequestState};

/// Which review items to list, oldest first.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReviewParams {
    /// Decided items too, not only the open ones (default false).
    pub include_decided: Option<bool>,
    /// Items with ids greater than this (from `next_after`).
    pub after: Option<i64>,
    /// Page size, 1 to 500; default 100.
    pub limit: Option<u32>,
}

/// A break-glass access and its review.
#[derive(Serialize, ToSchema)]
pub struct AccessReviewView {
    pub id: i64,
    /// The access's audit entry, by its position in the audit log.
    pub audit_seq: u64,
    /// When the access was made.
    pub at: DateTime<Utc>,
    pub organisation_ods: String,
    pub role: String,
    /// The person who broke glass.
    pub account_id: i64,
    pub username: String,
    pub action: String,
    /// The record reached, e.g. `procedure/12` or `patient/7`.
    pub resource: String,
    pub patient_id: Option<i64>,
    /// `break_glass:` and the purpose (direct_care for clinicians).
    pub purpose: String,
    pub outcome: String,
    /// The reason the person wrote.
    pub reason: String,
    /// appropriate or inappropriate; absent while open.
    pub decision: Option<String>,
    pub decision_note: Option<String>,
    pub decided_by: Option<i64>,
    pub decided_by_username: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
}

impl From<AccessReview> for AccessReviewView {
    fn from(r: AccessReview) -> Self {
        AccessReviewView {
            id: r.id.0,
            audit_seq: r.audit_seq,
            at: r.at,
            organisation_ods: r.organisation_ods,
            role: r.role,
            account_id: r.account.0,
            username: r.username,
            action: r.action,
            resource: r.resource,
            patient_id: r.patient.map(|p| p.0),
            purpose: r.purpose,
            outcome: r.outcome,
            reason: r.reason,
            decision: r.decision.map(|d| d.as_str().to_string()),
            decision_note: r.decision_note,
            decided_by: r.decided_by.map(|a| a.0),
            decided_by_username: r.decided_by_username,
            decided_at: r.decided_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AccessReviewPage {
    pub reviews: Vec<AccessReviewView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

/// A reviewer's decision.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewDecisionBody {
    /// appropriate or inappropriate.
    pub decision: String,
    /// Why; required when inappropriate, at most 2000 characters.
    pub note: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/access-reviews", params(ReviewParams), responses(
    (status = 200, description = "Review items with their accesses, oldest first; never cached; the listing is audited", body = AccessReviewPage),
    (status = 400, body = ErrorBody),
    (status = 403, description = "Administrators only", body = ErrorBody),
    (status = 422, body = ErrorBody),
))]
pub async fn list_reviews(
    state: RequestState,
    Caller(principal): Caller,
    params: Result<Query<ReviewParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(query_error)?;
    let query = AccessReviewQuery {
        include_decided: params.include_decided.unwrap_or(false),
        after: params.after.map(AccessReviewId),
        limit: params.limit.unwrap_or(100),
    };
    let reviews = mdor_service::access_reviews(&state.ctx, &principal, &query).await?;
    let next_after = if reviews.len() as u32 == query.limit {
        reviews.last().map(|r| r.id.0)
    } else {
        None
    };
    let page = AccessReviewPage {
        reviews: reviews.into_iter().map(AccessReviewView::from).collect(),
        next_after,
    };
    Ok(identifiable(StatusCode::OK, page))
}

#[utoipa::path(post, path = "/api/v1/access-reviews/{id}/decision", params(("id" = i64, Path)), request_body = ReviewDecisionBody, responses(
    (status = 200, description = "The decided item; the decision is audited", body = AccessReviewView),
    (status = 403, description = "Not an administrator's session, the reviewer's own break-glass access, or no step-up within 10 minutes", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "Already decided (review_already_decided)", body = ErrorBody),
    (status = 422, description = "Unknown decision, or inappropriate without a note", body = ErrorBody),
))]
pub async fn decide_review(
    state: RequestState,
    Caller(principal): Caller,
    id: Result<Path<i64>, PathRejection>,
    JsonBody(body): JsonBody<ReviewDecisionBody>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|r| path_error(r, "id"))?;
    let decision = ReviewDecision::parse(body.decision.trim()).ok_or_else(|| {
        ApiError::Validation(vec![FieldError::new(
            "decision",
            "not_in_code_list",
            "decision must be appropriate or inappropriate",
        )])
    })?;
    let review = mdor_service::decide_access_review(
        &state.ctx,
        &principal,
        AccessReviewId(id),
        decision,
        body.note.as_deref(),
    )
    .await?;
    Ok(identifiable(StatusCode::OK, AccessReviewView::from(review)))
}
