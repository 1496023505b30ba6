//! `GET /api/v1/reports/feedback`: the feedback report of a provider, consultant or
//! manufacturer as JSON, CSV or HTML. Aggregate only, with small-number suppression applied
//! by the service; a provider's token reads its own provider's report.

use askama::Template;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use mdor_service::disclosure::Published;
use mdor_service::{FeedbackReport, FeedbackSubject, RevisionEstimate};

use crate::api::query_error;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Caller;
use crate::extract::RequestState;

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

/// A feedback report as JSON: volumes, completeness, cumulative revision against national and
/// current signals, every count suppressed where small. Its schema is the contract that
/// manufacturers and analysts receive no direct identifier (`tests/it/identifier_free.rs`).
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackReportView {
    /// `provider`, `consultant` or `manufacturer`.
    pub subject_kind: String,
    /// The ODS code, GMC number or the register's manufacturer name.
    pub subject: String,
    pub as_of: NaiveDate,
    pub volumes: Vec<VolumeView>,
    pub completeness: Vec<CompletenessView>,
    pub revision: Vec<RevisionView>,
    /// Signals currently raised for the subject (for a manufacturer, its models and lots).
    pub signals: Vec<String>,
}

/// A count as published: a number (rounded to 5), or `"*"` where 1 to 7 are hidden.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum PublishedView {
    Count(u64),
    Suppressed(String),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VolumeView {
    pub year: i32,
    pub procedures: PublishedView,
    pub implants: PublishedView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompletenessView {
    pub measure: String,
    /// Percentage, when both counts may be shown.
    pub percent: Option<f64>,
    pub of: PublishedView,
}

/// Cumulative revision (1 − Kaplan–Meier, %) of one device type at one horizon.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevisionView {
    pub device_type: String,
    pub years: u32,
    pub subject: Option<RevisionEstimateView>,
    pub national: Option<RevisionEstimateView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RevisionEstimateView {
    /// Absent when suppressed (fewer than 8 at risk, or 1 to 7 revisions so far).
    pub percent: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub at_risk: PublishedView,
    pub revisions: PublishedView,
}

impl From<Published> for PublishedView {
    fn from(published: Published) -> Self {
        match published {
            Published::Count(n) => PublishedView::Count(n),
            Published::Suppressed => PublishedView::Suppressed("*".into()),
        }
    }
}

impl From<&RevisionEstimate> for RevisionEstimateView {
    fn from(e: &RevisionEstimate) -> Self {
        RevisionEstimateView {
            percent: e.percent,
            lower: e.lower,
            upper: e.upper,
            at_risk: e.at_risk.into(),
            revisions: e.revisions.into(),
        }
    }
}

impl From<&FeedbackReport> for FeedbackReportView {
    fn from(report: &FeedbackReport) -> Self {
        FeedbackReportView {
            subject_kind: report.subject_kind.to_string(),
            subject: report.subject.clone(),
            as_of: report.as_of,
            volumes: report
                .volumes
                .iter()
                .map(|v| VolumeView {
                    year: v.year,
                    procedures: v.procedures.into(),
                    implants: v.implants.into(),
                })
                .collect(),
            completeness: report
                .completeness
                .iter()
                .map(|c| CompletenessView {
                    measure: c.measure.to_string(),
                    percent: c.percent,
                    of: c.of.into(),
                })
                .collect(),
            revision: report
                .revision
                .iter()
                .map(|r| RevisionView {
                    device_type: r.device_type.clone(),
                    years: r.years,
                    subject: r.subject.as_ref().map(RevisionEstimateView::from),
                    national: r.national.as_ref().map(RevisionEstimateView::from),
                })
                .collect(),
            signals: report.signals.clone(),
        }
    }
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
    (status = 200, description = "The report: JSON, or CSV or HTML when asked; aggregate, suppressed, never a patient or a record", body = FeedbackReportView),
    (status = 400, body = ErrorBody),
    (status = 403, description = "A provider reads only its own provider's report, a manufacturer only its own devices'", body = ErrorBody),
    (status = 404, description = "No procedures for this subject", body = ErrorBody),
))]
pub async fn feedback(
    state: RequestState,
    Caller(principal): Caller,
    params: Result<Query<FeedbackParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(query_error)?;
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
        "json" => return Ok(axum::Json(FeedbackReportView::from(&report)).into_response()),
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
