//! `GET /api/v1/reports/feedback`: the feedback report of a provider, consultant or
//! manufacturer as JSON, CSV or HTML. Aggregate only, with small-number suppression applied
//! by the service; a provider's token reads its own provider's report.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use mdor_service::{FeedbackReport, FeedbackSubject, RevisionEstimate};

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Caller;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedbackParams {
    /// provider (ODS code), consultant (GMC number) or manufacturer (register name).
    pub kind: String,
    pub subject: String,
    /// json (default), csv or html.
    pub format: Option<String>,
}

/// The report as the HTML page shows it: every cell already a string.
#[derive(Template)]
#[template(path = "feedback.html")]
struct FeedbackPage {
    kind: &'static str,
    subject: String,
    as_of: String,
    volumes: Vec<(i32, String, String)>,
    completeness: Vec<(&'static str, String, String)>,
    revision: Vec<(String, u32, String, String, String, String)>,
    signals: Vec<String>,
}

fn estimate(e: &Option<RevisionEstimate>) -> (String, String) {
    match e {
        None => ("no follow-up".into(), String::new()),
        Some(e) => {
            let shown = match (e.percent, e.lower, e.upper) {
                (Some(p), Some(l), Some(u)) => format!("{p:.1} ({l:.1} to {u:.1})"),
                _ => "*".into(),
            };
            (shown, e.at_risk.to_string())
        }
    }
}

fn page(report: &FeedbackReport) -> FeedbackPage {
    FeedbackPage {
        kind: report.subject_kind,
        subject: report.subject.clone(),
        as_of: report.as_of.to_string(),
        volumes: report
            .volumes
            .iter()
            .map(|v| (v.year, v.procedures.to_string(), v.implants.to_string()))
            .collect(),
        completeness: report
            .completeness
            .iter()
            .map(|c| {
                let percent = c.percent.map_or_else(|| "*".into(), |p| format!("{p:.1}"));
                (c.measure, percent, c.of.to_string())
            })
            .collect(),
        revision: report
            .revision
            .iter()
            .map(|r| {
                let (own, own_risk) = estimate(&r.subject);
                let (national, national_risk) = estimate(&r.national);
                (
                    r.device_type.clone(),
                    r.years,
                    own,
                    own_risk,
                    national,
                    national_risk,
                )
            })
            .collect(),
        signals: report.signals.clone(),
    }
}

/// Renders a report as an HTML page (askama escapes every value).
pub fn feedback_html(report: &FeedbackReport) -> Result<String, askama::Error> {
    page(report).render()
}

#[utoipa::path(get, path = "/api/v1/reports/feedback", params(FeedbackParams), responses(
    (status = 200, description = "The report: JSON, or CSV or HTML when asked; aggregate, suppressed", body = Object),
    (status = 400, body = ErrorBody),
    (status = 403, description = "A provider reads only its own report", body = ErrorBody),
    (status = 404, description = "No procedures for this subject", body = ErrorBody),
))]
pub async fn feedback(
    State(state): State<AppState>,
    Caller(principal): Caller,
    params: Result<Query<FeedbackParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|r| ApiError::BadParameter {
        field: "query".into(),
        message: r.body_text(),
    })?;
    let subject = match params.kind.as_str() {
        "provider" => FeedbackSubject::Provider(params.subject.trim().to_uppercase()),
        "consultant" => FeedbackSubject::Consultant(params.subject.trim().to_string()),
        "manufacturer" => FeedbackSubject::Manufacturer(params.subject.trim().to_string()),
        _ => {
            return Err(ApiError::BadParameter {
                field: "kind".into(),
                message: "kind must be provider, consultant or manufacturer".into(),
            });
        }
    };
    let report = mdor_service::feedback_report(&state.ctx, &principal, &subject).await?;
    let (body, content_type) = match params.format.as_deref().unwrap_or("json") {
        "json" => return Ok(axum::Json(report).into_response()),
        "csv" => (
            mdor_service::feedback_csv(&report),
            "text/csv; charset=utf-8",
        ),
        "html" => (
            feedback_html(&report).map_err(|e| {
                tracing::error!(error = %e, "rendering a feedback report");
                ApiError::Internal
            })?,
            "text/html; charset=utf-8",
        ),
        _ => {
            return Err(ApiError::BadParameter {
                field: "format".into(),
                message: "format must be json, csv or html".into(),
            });
        }
    };
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}
