//! Research projects for the researchers they name: `GET /api/v1/research/projects` (the
//! approved projects naming the signed-in researcher) and
//! `GET /api/v1/research/projects/{reference}/extract.ndjson` and `.csv` (a project's
//! pseudonymised extract, streamed page by page; each page is read in the transaction that
//! audits it, so a download cut short has audited exactly what it read), which a researcher
//! may narrow to an implant date range or a device type (`ExtractParams`) within the approval.
//!
//! A researcher's session only (a phishing-resistant sign-in, and a step-up within 10
//! minutes for the extract, as for every export); a project of another organisation, or one
//! that does not name them, is 404 as an absent one. The rows carry no direct identifier:
//! `ResearchRowView` is their own type, which the identifier-free test walks.

use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use mdor_service::research::{ResearchExtract, ResearchFilter, ResearchProject, ResearchRow};

use crate::api::query_error;
use crate::api::recall_cases::cell;
use crate::api::{identifiable, path_error};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, RequestState};

/// An approved research project, as the researchers it names see it.
#[derive(Serialize, ToSchema)]
pub struct ResearchProjectView {
    /// The approval's reference, e.g. the data access committee's.
    pub reference: String,
    pub title: String,
    /// ODS code of the organisation the extract is released to.
    pub organisation: String,
    /// Only this registry's procedures, when set.
    pub registry: Option<String>,
    pub approved_by: String,
    pub created_at: DateTime<Utc>,
    /// The approval's last day, if it has one: after it the extract is closed (409
    /// `research_approval_expired`).
    pub expires_on: Option<chrono::NaiveDate>,
}

impl From<ResearchProject> for ResearchProjectView {
    fn from(p: ResearchProject) -> Self {
        ResearchProjectView {
            reference: p.reference,
            title: p.title,
            organisation: p.organisation_ods,
            registry: p.registry,
            approved_by: p.approved_by,
            created_at: p.created_at,
            expires_on: p.expires_on,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ResearchProjectsView {
    pub projects: Vec<ResearchProjectView>,
}

/// One implant of a research extract: no direct identifier and no date that could single a
/// patient out.
#[derive(Serialize, ToSchema)]
pub struct ResearchRowView {
    /// The patient's pseudonym for this project (128 bits in hex): the same patient has the
    /// same one within the project and unlinkable ones across projects.
    pub pseudonym: String,
    pub sex: String,
    /// Whole years from the middle of the birth month to the procedure.
    pub age_at_procedure: i64,
    /// `YYYY-MM`.
    pub procedure_month: String,
    pub provider_ods: String,
    pub registry: String,
    pub laterality: String,
    pub udi_di: String,
    /// `revision` or `explant`, when the implant was removed.
    pub removal_kind: Option<String>,
    pub days_to_removal: Option<i64>,
    pub days_to_death: Option<i64>,
}

impl From<ResearchRow> for ResearchRowView {
    fn from(r: ResearchRow) -> Self {
        ResearchRowView {
            pseudonym: r.pseudonym,
            sex: r.sex,
            age_at_procedure: r.age_at_procedure,
            procedure_month: r.procedure_month,
            provider_ods: r.provider_ods,
            registry: r.registry,
            laterality: r.laterality,
            udi_di: r.udi_di,
            removal_kind: r.removal_kind,
            days_to_removal: r.days_to_removal,
            days_to_death: r.days_to_death,
        }
    }
}

/// A narrower extract, within the project's approval: every parameter is optional, and the
/// narrowing is recorded in each page's audit entry. Dates are `YYYY-MM-DD`, inclusive.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExtractParams {
    /// Only procedures on or after this day.
    pub implanted_from: Option<String>,
    /// Only procedures on or before this day.
    pub implanted_to: Option<String>,
    /// Only devices of this device-register type (e.g. `hip_cup`).
    pub device_type: Option<String>,
}

impl ExtractParams {
    /// The filter, or every problem with the parameters, each naming its field.
    fn filter(
        params: Result<Query<ExtractParams>, QueryRejection>,
    ) -> Result<ResearchFilter, ApiError> {
        let Query(params) = params.map_err(query_error)?;
        let mut errors = Vec::new();
        let implanted_from = params
            .implanted_from
            .as_deref()
            .and_then(|v| crate::dto::date(v, "implanted_from", &mut errors));
        let implanted_to = params
            .implanted_to
            .as_deref()
            .and_then(|v| crate::dto::date(v, "implanted_to", &mut errors));
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        Ok(ResearchFilter {
            implanted_from,
            implanted_to,
            device_type: params.device_type,
        })
    }
}

const EXTRACT_CSV_HEADER: &str = "pseudonym,sex,age_at_procedure,procedure_month,provider_ods,\
registry,laterality,udi_di,removal_kind,days_to_removal,days_to_death\n";

#[utoipa::path(get, path = "/api/v1/research/projects", responses(
    (status = 200, description = "The approved projects naming the signed-in researcher, by reference", body = ResearchProjectsView),
    (status = 403, description = "Not a researcher's session", body = ErrorBody),
))]
pub async fn list_projects(
    state: RequestState,
    Caller(principal): Caller,
) -> Result<Response, ApiError> {
    let projects = mdor_service::research::own_research_projects(&state.ctx, &principal).await?;
    Ok(identifiable(
        StatusCode::OK,
        ResearchProjectsView {
            projects: projects.into_iter().map(Into::into).collect(),
        },
    ))
}

/// The project's pseudonymised extract, one row per implant, one JSON object per line.
#[utoipa::path(get, path = "/api/v1/research/projects/{reference}/extract.ndjson",
    params(("reference" = String, Path, description = "The project's reference; a `/` in it is sent as %2F"), ExtractParams),
    responses(
        (status = 200, description = "One ResearchRowView per line, in implant order; each page of 10,000 rows audited (purpose research)", content_type = "application/x-ndjson", body = ResearchRowView),
        (status = 403, description = "Not a researcher's session, or no step-up within 10 minutes (reauthentication_required)", body = ErrorBody),
        (status = 404, description = "No such project naming the caller", body = ErrorBody),
        (status = 409, description = "The project's approval has ended (research_approval_expired)", body = ErrorBody),
        (status = 422, description = "A reference that cannot be one, or a narrowing that cannot be (each problem naming its parameter)", body = ErrorBody),
))]
pub async fn extract_ndjson(
    state: RequestState,
    Caller(principal): Caller,
    reference: Result<Path<String>, PathRejection>,
    params: Result<Query<ExtractParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(reference) = reference.map_err(|r| path_error(r, "reference"))?;
    let filter = ExtractParams::filter(params)?;
    extract(state, principal, &reference, filter, Format::Ndjson).await
}

/// The project's pseudonymised extract as CSV with a header line, the columns of
/// `ResearchRowView`.
#[utoipa::path(get, path = "/api/v1/research/projects/{reference}/extract.csv",
    params(("reference" = String, Path, description = "The project's reference; a `/` in it is sent as %2F"), ExtractParams),
    responses(
        (status = 200, description = "A header line, then one line per implant whose columns are ResearchRowView's fields in its order (pseudonym, sex, age_at_procedure, procedure_month, provider_ods, registry, laterality, udi_di, removal_kind, days_to_removal, days_to_death); each page of 10,000 rows audited (purpose research)", content_type = "text/csv", body = ResearchRowView),
        (status = 403, description = "Not a researcher's session, or no step-up within 10 minutes (reauthentication_required)", body = ErrorBody),
        (status = 404, description = "No such project naming the caller", body = ErrorBody),
        (status = 409, description = "The project's approval has ended (research_approval_expired)", body = ErrorBody),
        (status = 422, description = "A reference that cannot be one, or a narrowing that cannot be (each problem naming its parameter)", body = ErrorBody),
))]
pub async fn extract_csv(
    state: RequestState,
    Caller(principal): Caller,
    reference: Result<Path<String>, PathRejection>,
    params: Result<Query<ExtractParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(reference) = reference.map_err(|r| path_error(r, "reference"))?;
    let filter = ExtractParams::filter(params)?;
    extract(state, principal, &reference, filter, Format::Csv).await
}

#[derive(Clone, Copy)]
enum Format {
    Ndjson,
    Csv,
}

impl Format {
    fn render(self, text: &mut String, row: ResearchRow) {
        let view = ResearchRowView::from(row);
        match self {
            Format::Ndjson => {
                // A struct of strings and integers always serialises.
                text.push_str(&serde_json::to_string(&view).unwrap_or_default());
                text.push('\n');
            }
            Format::Csv => {
                let number = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
                let cells = [
                    cell(&view.pseudonym),
                    cell(&view.sex),
                    view.age_at_procedure.to_string(),
                    cell(&view.procedure_month),
                    cell(&view.provider_ods),
                    cell(&view.registry),
                    cell(&view.laterality),
                    cell(&view.udi_di),
                    cell(view.removal_kind.as_deref().unwrap_or_default()),
                    number(view.days_to_removal),
                    number(view.days_to_death),
                ];
                text.push_str(&cells.join(","));
                text.push('\n');
            }
        }
    }
}

/// Streams the extract page by page, so that a national extract is never held whole.
async fn extract(
    state: RequestState,
    principal: mdor_service::Principal,
    reference: &str,
    filter: ResearchFilter,
    format: Format,
) -> Result<Response, ApiError> {
    let mut extract =
        mdor_service::research::open_research_extract(&state.ctx, &principal, reference, filter)
            .await?;
    // The first page is read before the response starts, so that its failure gets a status.
    let first = extract.next_page(&state.ctx).await?;
    let filename = format!(
        "research-{}.{}",
        extract.project().reference.replace(['/', '.'], "-"),
        match format {
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
        }
    );
    struct Cursor {
        state: RequestState,
        extract: ResearchExtract,
        first: Option<Option<Vec<ResearchRow>>>,
        header: Option<&'static str>,
        done: bool,
    }
    let cursor = Cursor {
        state,
        extract,
        first: Some(first),
        header: matches!(format, Format::Csv).then_some(EXTRACT_CSV_HEADER),
        done: false,
    };
    let stream = futures_util::stream::unfold(cursor, move |mut cursor| async move {
        if cursor.done {
            return None;
        }
        let rows = match cursor.first.take() {
            Some(first) => first,
            None => match cursor.extract.next_page(&cursor.state.ctx).await {
                Ok(rows) => rows,
                Err(e) => {
                    // The status has been sent: ending the body early is all that is left,
                    // and the client sees a truncated download, never a short one as whole.
                    tracing::error!(error = %e, "streaming a research extract");
                    cursor.done = true;
                    return Some((Err(std::io::Error::other("extract failed")), cursor));
                }
            },
        };
        let mut text = cursor.header.take().unwrap_or_default().to_string();
        match rows {
            Some(rows) => rows
                .into_iter()
                .for_each(|row| format.render(&mut text, row)),
            None => cursor.done = true,
        }
        if text.is_empty() {
            return None;
        }
        Some((Ok::<_, std::io::Error>(Bytes::from(text)), cursor))
    });
    let mut response = Response::new(Body::from_stream(stream));
    let content_type = match format {
        Format::Ndjson => "application/x-ndjson",
        Format::Csv => "text/csv; charset=utf-8",
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(disposition) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}
