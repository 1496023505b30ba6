//! `GET /api/v1/devices/{udi_di}` looks a device model up in the register;
//! `POST /api/v1/devices` adds or updates one (administrators).

use axum::Json;
use axum::http::StatusCode;

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use mdor_domain::register::RawRegisterEntry;

use mdor_domain::UdiDi;

use crate::api::path_error;
use crate::dto::{DeviceView, RegisterEntryBody};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, JsonCreate, RequestState};

#[utoipa::path(get, path = "/api/v1/devices/{udi_di}", params(("udi_di" = String, Path, description = "GTIN-14 or HIBCC primary identifier")), responses(
    (status = 200, body = DeviceView),
    (status = 400, description = "Not a valid UDI-DI", body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
pub async fn get_device(
    state: RequestState,
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

/// Adds or updates a device register entry; the layout is that of the register CSV.
#[utoipa::path(post, path = "/api/v1/devices", request_body = RegisterEntryBody, responses(
    (status = 201, body = DeviceView),
    (status = 403, description = "Only administrators change the register, and with a session only within 10 minutes of entering their password and second factor", body = ErrorBody),
    (status = 422, description = "Invalid fields, all listed", body = ErrorBody),
))]
pub async fn register_device(
    state: RequestState,
    Caller(principal): Caller,
    JsonCreate { body, .. }: JsonCreate<RegisterEntryBody>,
) -> Result<(StatusCode, Json<DeviceView>), ApiError> {
    let raw = RawRegisterEntry {
        udi_di: body.udi_di,
        manufacturer: body.manufacturer,
        brand: body.brand,
        model: body.model,
        device_type: body.device_type,
        risk_class: body.risk_class,
        registry: body.registry,
    };
    let device = mdor_service::register_device(&state.ctx, &principal, &raw).await?;
    Ok((StatusCode::CREATED, Json(DeviceView::from(device))))
}
