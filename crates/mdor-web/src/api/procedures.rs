//! `POST /api/v1/procedures` and `GET /api/v1/procedures/{id}`.

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use mdor_service::ProcedureId;

use crate::access_headers::{AccessHeaderParams, AccessHeaders};
use crate::api::{identifiable, path_error};
use crate::dto::{ProcedureBody, ProcedureView};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, JsonCreate, RequestState};

/// Registers a procedure with its patient and devices in one transaction.
#[utoipa::path(post, path = "/api/v1/procedures", request_body = ProcedureBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key: the same key and body replay the first response")),
    responses(
        (status = 201, description = "Stored; devices not in the register or expired are flagged, not dropped", body = ProcedureView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Role or organisation may not submit this", body = ErrorBody),
        (status = 409, description = "Duplicate local_record_id, or patient details conflict", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Invalid fields (all listed) or Idempotency-Key reused with another body", body = ErrorBody),
    ))]
pub async fn create_procedure(
    state: RequestState,
    Caller(principal): Caller,
    JsonCreate { body, idempotency }: JsonCreate<ProcedureBody>,
) -> Result<Response, ApiError> {
    let submission = body
        .into_submission(state.ctx.today())
        .map_err(ApiError::Validation)?;
    let outcome =
        mdor_service::register_procedure(&state.ctx, &principal, submission, idempotency).await?;
    let replayed = outcome.is_replay();
    let view = ProcedureView::from(outcome.into_inner());
    let location = format!("/api/v1/procedures/{}", view.id);
    let mut response = identifiable(StatusCode::CREATED, view);
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Reads a procedure. A provider sees only its own organisation's procedures (others answer
/// 404); a regulator states its purpose; a consultant treating another provider's patient,
/// or an administrator, breaks glass.
#[utoipa::path(get, path = "/api/v1/procedures/{id}", params(("id" = i64, Path), AccessHeaderParams), responses(
    (status = 200, description = "Identifiable; never cached; audited with its purpose", body = ProcedureView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "Role may not read procedures, or may only by breaking glass (break_glass_required), or may not break glass", body = ErrorBody),
    (status = 404, description = "Absent or not visible to this caller", body = ErrorBody),
    (status = 422, description = "Purpose missing (purpose_required) or not allowed, or an unreadable Access-Purpose or Break-Glass-Reason", body = ErrorBody),
))]
pub async fn get_procedure(
    state: RequestState,
    Caller(principal): Caller,
    AccessHeaders(stated): AccessHeaders,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|r| path_error(r, "id"))?;
    let record =
        mdor_service::get_procedure(&state.ctx, &principal, ProcedureId(id), &stated).await?;
    Ok(identifiable(StatusCode::OK, ProcedureView::from(record)))
}
