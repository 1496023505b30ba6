//! `GET /api/v1/devices/{udi_di}/survivorship`: cumulative revision of one device model and its
//! hazard ratio against the rest of its class (regulators and administrators).

use axum::Json;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;

use mdor_domain::UdiDi;
use mdor_service::DeviceGrouping;

use crate::api::path_error;
use crate::dto::SurvivorshipView;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Caller;
use crate::extract::RequestState;

/// Cumulative revision of a device model at 1, 3, 5, 10 and 15 years as 1 − Kaplan–Meier and
/// as Aalen–Johansen incidence with death competing, with 95% intervals and numbers at risk,
/// and the Cox hazard ratio against the rest of its device type adjusted for age and sex.
#[utoipa::path(get, path = "/api/v1/devices/{udi_di}/survivorship", params(("udi_di" = String, Path, description = "GTIN-14 or HIBCC primary identifier")), responses(
    (status = 200, body = SurvivorshipView),
    (status = 400, description = "Not a valid UDI-DI", body = ErrorBody),
    (status = 403, description = "Only regulators and administrators read survivorship", body = ErrorBody),
    (status = 404, description = "Not in the register, or never implanted", body = ErrorBody),
))]
pub async fn get_survivorship(
    state: RequestState,
    Caller(principal): Caller,
    udi_di: Result<Path<String>, PathRejection>,
) -> Result<Json<SurvivorshipView>, ApiError> {
    let Path(raw) = udi_di.map_err(|r| path_error(r, "udi_di"))?;
    let udi_di = UdiDi::parse(&raw).map_err(|e| ApiError::BadParameter {
        field: "udi_di".into(),
        message: e.to_string(),
    })?;
    let report =
        mdor_service::device_survivorship(&state.ctx, &principal, &DeviceGrouping::Model(udi_di))
            .await?;
    Ok(Json(SurvivorshipView::from(report)))
}
