//! `GET /api/v1/providers/{ods}/data-quality`: a provider's data quality over a range of
//! months (completeness against expected activity and the 90% target, submissions, errors by
//! field, open flags) as JSON, its months as CSV, or an HTML page with a completeness chart.
//! A provider's token reads only its own; another provider's answers 404, as an unknown one
//! does.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use mdor_domain::{Month, OdsCode};
use mdor_service::{MonthRange, ServiceError};

use super::data_quality_page::data_quality_html;
use super::path_error;
use crate::api::query_error;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Caller;
use crate::extract::RequestState;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DataQualityParams {
    /// First month, `YYYY-MM`; by default twelve months before `to`.
    pub from: Option<String>,
    /// Last month, `YYYY-MM`; by default the last complete month. At most 120 months in all.
    pub to: Option<String>,
    /// json (default), csv or html; `Accept: text/csv` or `text/html` also asks for them.
    pub format: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/providers/{ods}/data-quality",
    params(("ods" = String, Path, description = "The provider's ODS code"), DataQualityParams),
    responses(
        (status = 200, description = "Completeness per month against expected activity and the 90% target, submissions, errors by field and open flags; JSON, the months as CSV, or an HTML page with a completeness chart, when asked", body = Object),
        (status = 400, description = "A bad ODS code, month, range or format, naming the field", body = ErrorBody),
        (status = 404, description = "No such provider, or another provider's (for a provider's token)", body = ErrorBody),
    ))]
pub async fn provider_data_quality(
    state: RequestState,
    Caller(principal): Caller,
    ods: Result<Path<String>, PathRejection>,
    params: Result<Query<DataQualityParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(ods) = ods.map_err(|r| path_error(r, "ods"))?;
    let Query(params) = params.map_err(query_error)?;
    let ods = OdsCode::parse(&ods).map_err(|e| ApiError::BadParameter {
        field: "ods".into(),
        message: format!("ods code {}", e.problem),
    })?;
    let from = month_param("from", params.from.as_deref())?;
    let to = month_param("to", params.to.as_deref())?;
    let format = wanted_format(params.format.as_deref(), &headers)?;
    let range = MonthRange::requested(from, to, state.ctx.today()).map_err(range_error)?;

    let report = mdor_service::provider_data_quality(&state.ctx, &principal, &ods, range).await?;
    let (body, content_type) = match format {
        Format::Json => return Ok(axum::Json(report).into_response()),
        Format::Csv => (
            mdor_service::data_quality_csv(&report),
            "text/csv; charset=utf-8",
        ),
        Format::Html => (
            data_quality_html(&report).map_err(|e| {
                tracing::error!(error = %e, "rendering a data quality page");
                ApiError::Internal
            })?,
            "text/html; charset=utf-8",
        ),
    };
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

enum Format {
    Json,
    Csv,
    Html,
}

fn month_param(field: &str, value: Option<&str>) -> Result<Option<Month>, ApiError> {
    value
        .map(|v| {
            Month::parse(v.trim()).map_err(|e| ApiError::BadParameter {
                field: field.into(),
                message: format!("{field} '{v}' {e}"),
            })
        })
        .transpose()
}

/// `format` wins over `Accept`, so a browser link with `?format=csv` downloads CSV whatever
/// the browser accepts; without it, `Accept` asking for CSV or HTML gets them.
fn wanted_format(format: Option<&str>, headers: &HeaderMap) -> Result<Format, ApiError> {
    match format {
        Some("json") => Ok(Format::Json),
        Some("csv") => Ok(Format::Csv),
        Some("html") => Ok(Format::Html),
        Some(_) => Err(ApiError::BadParameter {
            field: "format".into(),
            message: "format must be json, csv or html".into(),
        }),
        None => {
            let accept = headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            Ok(if accept.contains("text/csv") {
                Format::Csv
            } else if accept.contains("text/html") {
                Format::Html
            } else {
                Format::Json
            })
        }
    }
}

/// A reversed or too long range is a bad parameter naming `to`, like any other bad query.
fn range_error(error: ServiceError) -> ApiError {
    match error {
        ServiceError::Invalid(errors) => match errors.into_iter().next() {
            Some(first) => ApiError::BadParameter {
                field: first.field,
                message: first.message,
            },
            None => ApiError::Internal,
        },
        other => other.into(),
    }
}
