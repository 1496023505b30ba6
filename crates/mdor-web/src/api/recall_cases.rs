//! Recall and field safety cases: `POST /api/v1/recall-cases` opens one (regulator),
//! `GET …/{id}` shows its criteria and work per provider and status, `POST …/{id}/refresh`
//! adds late submissions, `GET …/{id}/patients` pages the work items with contact details,
//! `GET …/{id}/worklist.csv` exports a provider's work list, and
//! `POST …/{id}/patients/{entry}/status` records follow-up.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use mdor_domain::record::FieldError;
use mdor_domain::{OdsCode, UdiDi};
use mdor_service::policy::Action;
use mdor_service::{
    RecallCase, RecallCaseId, RecallCaseRequest, RecallEntry, RecallEntryId, RecallStatus,
};

use crate::access_headers::{AccessHeaderParams, AccessHeaders};
use crate::api::query_error;
use crate::api::{identifiable, path_error};
use crate::dto::date;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, JsonCreate, RequestState};

/// An inclusive range of lots or serials; both ends the same length (compared as text).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TextRange {
    pub from: String,
    pub to: String,
}

/// An inclusive date window, `YYYY-MM-DD`; either end may be left open.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DateWindow {
    pub from: Option<String>,
    pub to: Option<String>,
}

/// A new recall case. Implants match when their UDI-DI is listed and every criterion given
/// holds; an implant whose lot, serial, expiry or manufacture date was not recorded matches
/// too, so that nobody is missed. A whole model: list its UDI-DIs and nothing else.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecallCaseBody {
    /// The regulator's reference (e.g. the field safety notice number); unique.
    pub reference: String,
    pub title: String,
    pub reason: String,
    pub udi_dis: Vec<String>,
    #[serde(default)]
    pub lots: Vec<String>,
    pub lot_range: Option<TextRange>,
    #[serde(default)]
    pub serials: Vec<String>,
    pub serial_range: Option<TextRange>,
    #[serde(default)]
    pub expiry: DateWindow,
    #[serde(default)]
    pub manufactured: DateWindow,
    #[serde(default)]
    pub implanted: DateWindow,
}

impl RecallCaseBody {
    fn into_request(self) -> Result<RecallCaseRequest, ApiError> {
        let mut errors = Vec::new();
        let udi_dis: Vec<UdiDi> = self
            .udi_dis
            .iter()
            .enumerate()
            .filter_map(|(i, raw)| {
                UdiDi::parse(raw)
                    .map_err(|e| {
                        errors.push(FieldError::new(
                            format!("udi_dis[{i}]"),
                            "invalid_udi",
                            e.to_string(),
                        ))
                    })
                    .ok()
            })
            .collect();
        let mut window = |w: &DateWindow, name: &str| {
            let from = w
                .from
                .as_deref()
                .and_then(|v| date(v, &format!("{name}.from"), &mut errors));
            let to =
                w.to.as_deref()
                    .and_then(|v| date(v, &format!("{name}.to"), &mut errors));
            (from, to)
        };
        let (expiry_from, expiry_to) = window(&self.expiry, "expiry");
        let (manufactured_from, manufactured_to) = window(&self.manufactured, "manufactured");
        let (implanted_from, implanted_to) = window(&self.implanted, "implanted");
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        let trim = |v: Vec<String>| v.into_iter().map(|s| s.trim().to_string()).collect();
        let range =
            |r: Option<TextRange>| r.map(|r| (r.from.trim().to_string(), r.to.trim().to_string()));
        Ok(RecallCaseRequest {
            reference: self.reference,
            title: self.title,
            reason: self.reason,
            udi_dis,
            lots: trim(self.lots),
            lot_range: range(self.lot_range),
            serials: trim(self.serials),
            serial_range: range(self.serial_range),
            expiry_from,
            expiry_to,
            manufactured_from,
            manufactured_to,
            implanted_from,
            implanted_to,
        })
    }
}

/// What opening or refreshing a case found.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecallCaseOpened {
    pub id: i64,
    pub implants_added: u64,
    pub patients_added: u64,
}

#[utoipa::path(post, path = "/api/v1/recall-cases", request_body = RecallCaseBody, responses(
    (status = 201, body = RecallCaseOpened),
    (status = 403, description = "Only regulator and admin tokens", body = ErrorBody),
    (status = 409, description = "The reference is already used", body = ErrorBody),
    (status = 422, description = "Invalid fields, all listed", body = ErrorBody),
))]
pub async fn open_case(
    state: RequestState,
    Caller(principal): Caller,
    JsonCreate { body, .. }: JsonCreate<RecallCaseBody>,
) -> Result<Response, ApiError> {
    let request = body.into_request()?;
    let (id, growth) = mdor_service::open_recall_case(&state.ctx, &principal, request).await?;
    let mut response = (
        StatusCode::CREATED,
        axum::Json(RecallCaseOpened {
            id: id.0,
            implants_added: growth.implants,
            patients_added: growth.patients,
        }),
    )
        .into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/recall-cases/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[utoipa::path(post, path = "/api/v1/recall-cases/{id}/refresh", params(("id" = i64, Path)), responses(
    (status = 200, body = RecallCaseOpened),
    (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
pub async fn refresh_case(
    state: RequestState,
    Caller(principal): Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<axum::Json<RecallCaseOpened>, ApiError> {
    let Path(id) = id.map_err(|r| path_error(r, "id"))?;
    let growth =
        mdor_service::refresh_recall_case(&state.ctx, &principal, RecallCaseId(id)).await?;
    Ok(axum::Json(RecallCaseOpened {
        id,
        implants_added: growth.implants,
        patients_added: growth.patients,
    }))
}

/// A case: its criteria and how many patients stand at each status, per provider. Carries
/// no identifiers.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecallCaseView {
    pub id: i64,
    pub reference: String,
    pub title: String,
    pub reason: String,
    pub opened_by: String,
    pub opened_at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub criteria: mdor_service::RecallCaseCriteria,
    /// Implants in the case nationally; 0 in a provider's view.
    pub implants: u64,
    pub work: Vec<WorkCountView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkCountView {
    pub provider_ods: String,
    pub provider_name: String,
    pub status: String,
    pub patients: u64,
}

impl From<RecallCase> for RecallCaseView {
    fn from(case: RecallCase) -> Self {
        RecallCaseView {
            id: case.id.0,
            reference: case.reference,
            title: case.title,
            reason: case.reason,
            opened_by: case.opened_by,
            opened_at: case.opened_at,
            criteria: case.criteria,
            implants: case.implants,
            work: case
                .work
                .into_iter()
                .map(|w| WorkCountView {
                    provider_ods: w.provider_ods,
                    provider_name: w.provider_name,
                    status: w.status.as_str().to_string(),
                    patients: w.patients,
                })
                .collect(),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/recall-cases/{id}", params(("id" = i64, Path)), responses(
    (status = 200, body = RecallCaseView),
    (status = 404, description = "No such case, or none of its work is this provider's", body = ErrorBody),
))]
pub async fn get_case(
    state: RequestState,
    Caller(principal): Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<axum::Json<RecallCaseView>, ApiError> {
    let Path(id) = id.map_err(|r| path_error(r, "id"))?;
    let case = mdor_service::recall_case(&state.ctx, &principal, RecallCaseId(id)).await?;
    Ok(axum::Json(RecallCaseView::from(case)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WorkParams {
    /// One provider's work (ODS code); a provider's token always sees only its own.
    pub provider: Option<String>,
    /// Entries with ids greater than this (from `next_after`).
    pub after: Option<i64>,
    /// Page size, 1 to 5000; default 500.
    pub limit: Option<u32>,
}

/// One patient to follow up, with the affected implants the provider put in.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecallEntryView {
    pub id: i64,
    pub status: String,
    pub status_at: DateTime<Utc>,
    pub provider_ods: String,
    pub provider_name: String,
    pub nhs_number: String,
    pub family_name: String,
    pub given_name: String,
    pub date_of_birth: NaiveDate,
    pub postcode: Option<String>,
    pub date_of_death: Option<NaiveDate>,
    pub implants: Vec<RecallEntryImplantView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecallEntryImplantView {
    pub implant_id: i64,
    pub procedure_id: i64,
    pub procedure_date: NaiveDate,
    pub local_record_id: String,
    pub udi_di: String,
    /// Absent when not recorded: such implants are included so that nobody is missed.
    pub lot: Option<String>,
    pub serial: Option<String>,
    pub expiry: Option<NaiveDate>,
    pub removal_date: Option<NaiveDate>,
}

impl From<RecallEntry> for RecallEntryView {
    fn from(e: RecallEntry) -> Self {
        RecallEntryView {
            id: e.id.0,
            status: e.status.as_str().to_string(),
            status_at: e.status_at,
            provider_ods: e.provider_ods,
            provider_name: e.provider_name,
            nhs_number: e.nhs_number,
            family_name: e.family_name,
            given_name: e.given_name,
            date_of_birth: e.date_of_birth,
            postcode: e.postcode,
            date_of_death: e.date_of_death,
            implants: e
                .implants
                .into_iter()
                .map(|i| RecallEntryImplantView {
                    implant_id: i.implant_id.0,
                    procedure_id: i.procedure_id.0,
                    procedure_date: i.procedure_date,
                    local_record_id: i.local_record_id,
                    udi_di: i.udi_di,
                    lot: i.lot,
                    serial: i.serial,
                    expiry: i.expiry,
                    removal_date: i.removal_date,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecallWorkPage {
    pub entries: Vec<RecallEntryView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

/// A work-list request, parsed: provider filter, page start and page size.
type WorkSelection = (Option<OdsCode>, Option<RecallEntryId>, Option<u32>);

fn work_params(
    params: Result<Query<WorkParams>, QueryRejection>,
) -> Result<WorkSelection, ApiError> {
    let Query(params) = params.map_err(query_error)?;
    let provider = params
        .provider
        .as_deref()
        .map(OdsCode::parse)
        .transpose()
        .map_err(|e| ApiError::BadParameter {
            field: "provider".into(),
            message: e.to_string(),
        })?;
    Ok((provider, params.after.map(RecallEntryId), params.limit))
}

#[utoipa::path(get, path = "/api/v1/recall-cases/{id}/patients", params(("id" = i64, Path), WorkParams, AccessHeaderParams), responses(
    (status = 200, description = "Identifiable; never cached; the access is audited with its purpose (regulators state one)", body = RecallWorkPage),
    (status = 400, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 422, description = "No purpose stated beyond the caller's own organisation (purpose_required)", body = ErrorBody),
))]
pub async fn work_page(
    state: RequestState,
    Caller(principal): Caller,
    AccessHeaders(stated): AccessHeaders,
    id: Result<Path<i64>, PathRejection>,
    params: Result<Query<WorkParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|r| path_error(r, "id"))?;
    let (provider, after, limit) = work_params(params)?;
    let limit = limit.unwrap_or(500);
    let entries = mdor_service::recall_worklist(
        &state.ctx,
        &principal,
        Action::ReadRecallWorklist,
        RecallCaseId(id),
        provider.as_ref(),
        after,
        limit,
        &stated,
    )
    .await?;
    let next_after = if entries.len() as u32 == limit {
        entries.last().map(|e| e.id.0)
    } else {
        None
    };
    let page = RecallWorkPage {
        entries: entries.into_iter().map(RecallEntryView::from).collect(),
        next_after,
    };
    Ok(identifiable(StatusCode::OK, page))
}

/// A spreadsheet cell that cannot be read as a formula (CSV injection).
pub(crate) fn cell(value: &str) -> String {
    let guarded = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

const WORKLIST_HEADER: &str = "entry_id,status,provider_ods,nhs_number,family_name,given_name,date_of_birth,postcode,date_of_death,procedure_date,local_record_id,udi_di,lot,serial,expiry,removal_date\n";

#[utoipa::path(get, path = "/api/v1/recall-cases/{id}/worklist.csv", params(("id" = i64, Path), WorkParams, AccessHeaderParams), responses(
    (status = 200, description = "One row per affected implant, CSV; identifiable; audited with its purpose (regulators state one)", content_type = "text/csv", body = String),
    (status = 403, description = "With a session: the password and second factor were not entered in the last 10 minutes (step-up first)", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 422, description = "No purpose stated beyond the caller's own organisation (purpose_required)", body = ErrorBody),
))]
pub async fn worklist_csv(
    state: RequestState,
    Caller(principal): Caller,
    AccessHeaders(stated): AccessHeaders,
    id: Result<Path<i64>, PathRejection>,
    params: Result<Query<WorkParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    // An export: a person must have re-authenticated within 10 minutes; the page-by-page
    // JSON view of the same work items does not ask it.
    principal.require_recent_authentication(&state.ctx)?;
    let Path(id) = id.map_err(|r| path_error(r, "id"))?;
    let (provider, mut after, _) = work_params(params)?;
    let mut csv = String::from(WORKLIST_HEADER);
    let page = mdor_service::MAX_WORK_PAGE;
    loop {
        let entries = mdor_service::recall_worklist(
            &state.ctx,
            &principal,
            Action::ExportRecallWorklist,
            RecallCaseId(id),
            provider.as_ref(),
            after,
            page,
            &stated,
        )
        .await?;
        for e in &entries {
            for i in &e.implants {
                let opt = |d: Option<NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
                let fields = [
                    e.id.0.to_string(),
                    e.status.as_str().to_string(),
                    e.provider_ods.clone(),
                    e.nhs_number.clone(),
                    e.family_name.clone(),
                    e.given_name.clone(),
                    e.date_of_birth.to_string(),
                    e.postcode.clone().unwrap_or_default(),
                    opt(e.date_of_death),
                    i.procedure_date.to_string(),
                    i.local_record_id.clone(),
                    i.udi_di.clone(),
                    i.lot.clone().unwrap_or_default(),
                    i.serial.clone().unwrap_or_default(),
                    opt(i.expiry),
                    opt(i.removal_date),
                ];
                let row: Vec<String> = fields.iter().map(|f| cell(f)).collect();
                csv.push_str(&row.join(","));
                csv.push('\n');
            }
        }
        if (entries.len() as u32) < page {
            break;
        }
        after = entries.last().map(|e| e.id);
    }
    let mut response = csv.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(disposition) = HeaderValue::from_str(&format!(
        "attachment; filename=\"recall-case-{id}-worklist.csv\""
    )) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}

/// A follow-up step for one patient.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    /// provider_notified, patient_contacted, reviewed, explanted or no_action; only forward.
    pub status: String,
    pub note: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusView {
    pub id: i64,
    pub status: String,
}

#[utoipa::path(post, path = "/api/v1/recall-cases/{id}/patients/{entry}/status", params(("id" = i64, Path), ("entry" = i64, Path)), request_body = StatusBody, responses(
    (status = 200, body = StatusView),
    (status = 404, description = "No such work item for this organisation", body = ErrorBody),
    (status = 409, description = "Not a forward step, or changed meanwhile", body = ErrorBody),
    (status = 422, body = ErrorBody),
))]
pub async fn set_status(
    state: RequestState,
    Caller(principal): Caller,
    ids: Result<Path<(i64, i64)>, PathRejection>,
    JsonCreate { body, .. }: JsonCreate<StatusBody>,
) -> Result<axum::Json<StatusView>, ApiError> {
    let Path((id, entry)) = ids.map_err(|r| path_error(r, "id"))?;
    let Some(status) = RecallStatus::parse(body.status.trim()) else {
        return Err(ApiError::Validation(vec![FieldError::new(
            "status",
            "not_in_code_list",
            "status must be one of provider_notified, patient_contacted, reviewed, explanted, no_action",
        )]));
    };
    let status = mdor_service::update_recall_status(
        &state.ctx,
        &principal,
        RecallCaseId(id),
        RecallEntryId(entry),
        status,
        body.note
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty()),
    )
    .await?;
    Ok(axum::Json(StatusView {
        id: entry,
        status: status.as_str().to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn csv_cells_are_quoted_and_cannot_start_a_formula() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("-12"), "'-12");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("O'Neil"), "O'Neil");
    }
}
