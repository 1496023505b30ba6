//! The signed-in patient's own record: `GET /api/v1/me/timeline` (their implants, procedures,
//! removals and recalls) and `GET /api/v1/me/access-log` (who accessed their record). Neither
//! names a patient: the record is the one the account is linked to, so a patient cannot ask
//! for anyone else's. Staff and API tokens are refused (403); a patient account without a
//! linked record gets 404 `linked_patient_record_not_found`.

use axum::http::StatusCode;
use axum::response::Response;

use crate::api::identifiable;
use crate::api::patients::{AccessLogView, TimelineView};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Caller;
use crate::extract::RequestState;

#[utoipa::path(get, path = "/api/v1/me/timeline", responses(
    (status = 200, description = "The signed-in patient's own timeline; never cached; audited (purpose patient_access)", body = TimelineView),
    (status = 403, description = "Not a patient's session", body = ErrorBody),
    (status = 404, description = "The account is linked to no patient record (linked_patient_record_not_found)", body = ErrorBody),
))]
pub async fn own_timeline(
    state: RequestState,
    Caller(principal): Caller,
) -> Result<Response, ApiError> {
    let timeline = mdor_service::own_patient_timeline(&state.ctx, &principal).await?;
    Ok(identifiable(StatusCode::OK, TimelineView { timeline }))
}

#[utoipa::path(get, path = "/api/v1/me/access-log", responses(
    (status = 200, description = "Who accessed the signed-in patient's record: organisation, role, action, purpose (break-glass accesses marked break_glass:…), time, outcome, record count; oldest first; never who in person or which token; audited", body = AccessLogView),
    (status = 403, description = "Not a patient's session", body = ErrorBody),
    (status = 404, description = "The account is linked to no patient record (linked_patient_record_not_found)", body = ErrorBody),
))]
pub async fn own_access_log(
    state: RequestState,
    Caller(principal): Caller,
) -> Result<Response, ApiError> {
    let accesses = mdor_service::own_patient_access_log(&state.ctx, &principal).await?;
    Ok(identifiable(StatusCode::OK, AccessLogView { accesses }))
}
