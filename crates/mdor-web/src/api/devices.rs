//! `GET /api/v1/devices/{udi_di}`: look a device model up in the register.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};

use mdor_domain::UdiDi;

use crate::AppState;
use crate::api::path_error;
use crate::dto::DeviceView;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Caller;

#[utoipa::path(get, path = "/api/v1/devices/{udi_di}", params(("udi_di" = String, Path, description = "GTIN-14 or HIBCC primary identifier")), responses(
    (status = 200, body = DeviceView),
    (status = 400, description = "Not a valid UDI-DI", body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
pub async fn get_device(
    State(state): State<AppState>,
    Caller(principal): Caller,
    udi_di: Result<Path<String>, PathRejection>,
) -> Result<Json<DeviceView>, ApiError> {
    let Path(raw) = udi_di.map_err(|r| path_error(r, "udi_di"))?;
    let udi_di = UdiDi::parse(&raw).map_err(|e| ApiError::BadParameter {
        field: "udi_di".into(),
        message: e.to_string(),
    })?;
    let device = mdor_service::device_lookup(&state.ctx, &principal, &udi_di).await?;
    Ok(Json(DeviceView::from(device)))
}
