//! `GET /api/v1/recall`: the regulator's query for every implant of a device, for a stated
//! purpose (`Access-Purpose`).

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;

use mdor_domain::UdiDi;
use mdor_domain::record::FieldError;
use mdor_service::{ImplantId, RecallCriteria};

use crate::access_headers::{AccessHeaderParams, AccessHeaders};
use crate::api::identifiable;
use crate::api::query_error;
use crate::dto::{RecallImplant, RecallPage, date};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Caller;
use crate::extract::RequestState;

/// Recall criteria: a UDI-DI and optional narrowing; dates are `YYYY-MM-DD`, inclusive.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecallParams {
    pub udi_di: String,
    pub lot: Option<String>,
    pub serial: Option<String>,
    pub expiry_from: Option<String>,
    pub expiry_to: Option<String>,
    pub implanted_from: Option<String>,
    pub implanted_to: Option<String>,
    /// Return implants with ids greater than this (from `next_after`).
    pub after: Option<i64>,
    /// Page size, 1 to 10000; default 1000.
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/recall", params(RecallParams, AccessHeaderParams), responses(
    (status = 200, description = "Affected implants with patient and provider; identifiable, never cached; audited with the query and its purpose", body = RecallPage),
    (status = 400, body = ErrorBody),
    (status = 403, description = "Regulators only", body = ErrorBody),
    (status = 422, description = "Invalid criteria, or no purpose stated (purpose_required)", body = ErrorBody),
))]
pub async fn recall(
    state: RequestState,
    Caller(principal): Caller,
    AccessHeaders(stated): AccessHeaders,
    params: Result<Query<RecallParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(query_error)?;
    let mut errors: Vec<FieldError> = Vec::new();
    let udi_di = UdiDi::parse(&params.udi_di)
        .map_err(|e| errors.push(FieldError::new("udi_di", "invalid_udi", e.to_string())))
        .ok();
    let mut optional_date = |value: &Option<String>, field: &str| {
        value.as_deref().and_then(|v| date(v, field, &mut errors))
    };
    let expiry_from = optional_date(&params.expiry_from, "expiry_from");
    let expiry_to = optional_date(&params.expiry_to, "expiry_to");
    let implanted_from = optional_date(&params.implanted_from, "implanted_from");
    let implanted_to = optional_date(&params.implanted_to, "implanted_to");
    let Some(udi_di) = udi_di.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let non_empty = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let criteria = RecallCriteria {
        udi_di,
        lot: non_empty(params.lot),
        serial: non_empty(params.serial),
        expiry_from,
        expiry_to,
        implanted_from,
        implanted_to,
        after: params.after.map(ImplantId),
        limit: params.limit.unwrap_or(1000),
    };
    let rows = mdor_service::recall(&state.ctx, &principal, &criteria, &stated).await?;
    let next_after = if rows.len() as u32 == criteria.limit {
        rows.last().map(|r| r.implant_id.0)
    } else {
        None
    };
    let page = RecallPage {
        implants: rows.into_iter().map(RecallImplant::from).collect(),
        next_after,
    };
    Ok(identifiable(StatusCode::OK, page))
}
