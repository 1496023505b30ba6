//! Bulk submission: `POST /api/v1/submissions` streams an NDJSON or CSV file to the spool and
//! queues a job; `GET /api/v1/submissions/{id}` shows its progress and counts, and
//! `…/report.ndjson` and `…/report.csv` stream what became of every record. The quarantine of
//! rejected records is `GET /api/v1/quarantine`, and one is corrected with
//! `POST /api/v1/quarantine/{id}/resubmit`.

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use mdor_service::{
    Principal, ProcedureId, ProcedureSourceVersion, QuarantineEntry, SubmissionFormat,
    SubmissionJob, SubmissionJobId, SubmissionRecord, SubmissionRecordId, SubmissionRequest,
    Submitter,
};

use crate::access_headers::{AccessHeaderParams, AccessHeaders};
use crate::api::query_error;
use crate::api::recall_cases::cell;
use crate::api::{identifiable, path_error};
use crate::error::{ApiError, ErrorBody, FieldErrorBody};
use crate::extract::{Caller, RequestState, parse_json};

/// Report lines read from the store per page while a report is streamed.
const REPORT_PAGE: u32 = 5_000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubmissionParams {
    /// The registry whose dataset the records follow, e.g. `bcir`.
    pub registry: Option<String>,
    /// The dataset version, e.g. `1.1`; the registry's latest when absent.
    pub version: Option<String>,
    /// `ndjson` (one JSON record per line) or `csv` (a header row, one procedure per row).
    pub format: Option<String>,
}

/// A submission job: where it stands and what its records became so far.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubmissionView {
    pub id: i64,
    pub provider: String,
    pub registry: String,
    pub dataset_version: String,
    pub format: String,
    /// `queued`, `processing`, `completed` or `failed`.
    pub state: String,
    pub file_bytes: u64,
    /// Known once processing has counted the file.
    pub total_records: Option<u64>,
    pub records_done: u64,
    pub accepted: u64,
    pub accepted_with_warnings: u64,
    pub rejected: u64,
    /// Accepted records that created a procedure, corrected a stored one (a new version),
    /// or were identical to the stored one.
    pub created: u64,
    pub corrected: u64,
    pub unchanged: u64,
    pub submitted_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub failure: Option<String>,
    pub report_ndjson: String,
    pub report_csv: String,
}

impl From<SubmissionJob> for SubmissionView {
    fn from(job: SubmissionJob) -> Self {
        SubmissionView {
            id: job.id.0,
            provider: job.organisation_ods,
            registry: job.registry,
            dataset_version: job.dataset_version,
            format: job.format.as_str().to_string(),
            state: job.state.as_str().to_string(),
            file_bytes: job.file_bytes,
            total_records: job.total_records,
            records_done: job.records_done,
            accepted: job.counts.accepted,
            accepted_with_warnings: job.counts.accepted_with_warnings,
            rejected: job.counts.rejected,
            created: job.counts.created,
            corrected: job.counts.corrected,
            unchanged: job.counts.unchanged,
            submitted_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            failure: job.failure,
            report_ndjson: format!("/api/v1/submissions/{}/report.ndjson", job.id),
            report_csv: format!("/api/v1/submissions/{}/report.csv", job.id),
        }
    }
}

/// What became of one record.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordReportView {
    /// The record's line in the file (for CSV, the header is line 1).
    pub line: u64,
    pub local_record_id: Option<String>,
    /// `accepted`, `accepted_with_warnings` or `rejected`.
    pub outcome: String,
    /// `created`, `corrected`, `unchanged`, or `none` for a rejected record.
    pub effect: String,
    pub procedure_id: Option<i64>,
    /// Why a rejected record was rejected.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldErrorBody>,
    /// What a person should look at in an accepted record.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<FieldErrorBody>,
    /// The quarantine entry of a rejected record, to resubmit it by.
    pub quarantine_id: Option<i64>,
}

impl From<SubmissionRecord> for RecordReportView {
    fn from(r: SubmissionRecord) -> Self {
        let messages = messages(r.messages.as_deref());
        let rejected = r.outcome == mdor_service::RecordOutcome::Rejected;
        let (errors, warnings) = if rejected {
            (messages, Vec::new())
        } else {
            (Vec::new(), messages)
        };
        RecordReportView {
            line: r.line,
            local_record_id: r.local_record_id,
            outcome: r.outcome.as_str().to_string(),
            effect: r.effect.as_str().to_string(),
            procedure_id: r.procedure.map(|p| p.0),
            errors,
            warnings,
            quarantine_id: rejected.then_some(r.id.0),
        }
    }
}

/// A rejected record waiting to be corrected.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuarantineView {
    pub id: i64,
    pub submission_id: i64,
    pub line: u64,
    pub provider: String,
    pub registry: String,
    pub dataset_version: String,
    pub local_record_id: Option<String>,
    /// The record as it was received (a CSV row as column → cell).
    #[schema(value_type = Object)]
    pub record: serde_json::Value,
    pub errors: Vec<FieldErrorBody>,
    pub received_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by_submission: Option<i64>,
}

impl From<QuarantineEntry> for QuarantineView {
    fn from(e: QuarantineEntry) -> Self {
        QuarantineView {
            id: e.id.0,
            submission_id: e.job.0,
            line: e.line,
            provider: e.organisation_ods,
            registry: e.registry,
            dataset_version: e.dataset_version,
            local_record_id: e.local_record_id,
            record: serde_json::from_str(&e.record).unwrap_or(serde_json::Value::String(e.record)),
            errors: messages(Some(&e.errors)),
            received_at: e.received_at,
            resolved_at: e.resolved_at,
            resolved_by_submission: e.resolved_by_job.map(|j| j.0),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuarantinePage {
    pub entries: Vec<QuarantineView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QuarantineParams {
    pub after: Option<i64>,
    /// 1 to 1000; 100 by default.
    pub limit: Option<u32>,
    /// Also list entries resolved by a later submission.
    pub include_resolved: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResubmissionView {
    pub submission: SubmissionView,
    pub record: RecordReportView,
}

/// One version of a procedure's raw input and provenance.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcedureVersionView {
    pub version: u64,
    pub current: bool,
    pub registry: Option<String>,
    pub dataset_version: Option<String>,
    /// The record as received; absent for a version from the single-record API.
    #[schema(value_type = Option<Object>)]
    pub record: Option<serde_json::Value>,
    /// The core record as it stood before it was corrected; absent for the current version.
    #[schema(value_type = Option<Object>)]
    pub core_record: Option<serde_json::Value>,
    pub warnings: Vec<FieldErrorBody>,
    pub submission_id: Option<i64>,
    pub line: Option<u64>,
    pub token_id: Option<i64>,
    pub received_at: Option<DateTime<Utc>>,
    pub superseded_at: Option<DateTime<Utc>>,
}

impl From<ProcedureSourceVersion> for ProcedureVersionView {
    fn from(v: ProcedureSourceVersion) -> Self {
        let json = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
        ProcedureVersionView {
            version: v.version,
            current: v.current,
            registry: v.registry,
            dataset_version: v.dataset_version,
            record: json(v.record),
            core_record: json(v.core_record),
            warnings: messages(v.warnings.as_deref()),
            submission_id: v.job.map(|j| j.0),
            line: v.line,
            token_id: v.token.map(|t| t.0),
            received_at: v.received_at,
            superseded_at: v.superseded_at,
        }
    }
}

/// Uploads a file of procedures for one registry's dataset; it is spooled as it arrives and
/// processed in the background.
#[utoipa::path(post, path = "/api/v1/submissions", params(SubmissionParams),
    request_body(content = String, description = "NDJSON (application/x-ndjson) or CSV (text/csv); layout per dataset in docs/datasets.md", content_type = "application/octet-stream"),
    responses(
        (status = 202, description = "Received in full and queued; poll the Location", body = SubmissionView),
        (status = 400, description = "Unknown format or unreadable parameters", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Only a provider's token may submit", body = ErrorBody),
        (status = 413, description = "Larger than the configured upload limit", body = ErrorBody),
        (status = 422, description = "Unknown registry or dataset version", body = ErrorBody),
    ))]
pub async fn create_submission(
    state: RequestState,
    Caller(principal): Caller,
    params: Result<Query<SubmissionParams>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(query_error)?;
    let registry = params.registry.ok_or_else(|| ApiError::BadParameter {
        field: "registry".into(),
        message: "registry is required, e.g. ?registry=bcir".into(),
    })?;
    let format_text = params.format.as_deref().unwrap_or("ndjson");
    let format = SubmissionFormat::parse(format_text).ok_or_else(|| ApiError::BadParameter {
        field: "format".into(),
        message: format!("format must be ndjson or csv (got {format_text})"),
    })?;
    let submitter = Submitter::from_principal(&principal)?;
    let limit = state.ctx.submission_settings().max_upload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::UploadTooLarge(limit));
    }
    let request = SubmissionRequest {
        registry,
        version: params.version,
        format,
    };
    let mut upload = mdor_service::begin_submission(&state.ctx, &submitter, &request).await?;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::MalformedJson(format!("reading the upload: {e}")))?;
        if let Ok(data) = frame.into_data() {
            upload.write(&data).await?;
        }
    }
    let job = upload.finish(&state.ctx).await?;
    let view = SubmissionView::from(job);
    let location = format!("/api/v1/submissions/{}", view.id);
    let mut response = identifiable(StatusCode::ACCEPTED, view);
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// A submission's state, progress and counts. Visible to the submitting organisation and
/// administrators; others get 404.
#[utoipa::path(get, path = "/api/v1/submissions/{id}", params(("id" = i64, Path)), responses(
    (status = 200, body = SubmissionView),
    (status = 401, body = ErrorBody),
    (status = 404, description = "Absent or not visible to this token", body = ErrorBody),
))]
pub async fn get_submission(
    state: RequestState,
    Caller(principal): Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|r| path_error(r, "id"))?;
    let job = mdor_service::submission_job(&state.ctx, &principal, SubmissionJobId(id)).await?;
    Ok(identifiable(StatusCode::OK, SubmissionView::from(job)))
}

/// What became of every record so far, one JSON object per line.
#[utoipa::path(get, path = "/api/v1/submissions/{id}/report.ndjson", params(("id" = i64, Path)), responses(
    (status = 200, description = "One RecordReportView per line, in file order", content_type = "application/x-ndjson", body = String),
    (status = 404, body = ErrorBody),
))]
pub async fn report_ndjson(
    state: RequestState,
    Caller(principal): Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|r| path_error(r, "id"))?;
    report(state, principal, SubmissionJobId(id), ReportFormat::Ndjson).await
}

/// What became of every record so far, one row per error or warning (one row for a record
/// with none).
#[utoipa::path(get, path = "/api/v1/submissions/{id}/report.csv", params(("id" = i64, Path)), responses(
    (status = 200, description = "Columns line, local_record_id, outcome, effect, procedure_id, field, code, message", content_type = "text/csv", body = String),
    (status = 404, body = ErrorBody),
))]
pub async fn report_csv(
    state: RequestState,
    Caller(principal): Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|r| path_error(r, "id"))?;
    report(state, principal, SubmissionJobId(id), ReportFormat::Csv).await
}

/// The caller's rejected records waiting to be corrected (an administrator's: everyone's).
#[utoipa::path(get, path = "/api/v1/quarantine", params(QuarantineParams), responses(
    (status = 200, body = QuarantinePage),
    (status = 401, body = ErrorBody),
    (status = 403, description = "Regulators have no quarantine", body = ErrorBody),
))]
pub async fn list_quarantine(
    state: RequestState,
    Caller(principal): Caller,
    params: Result<Query<QuarantineParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(query_error)?;
    let limit = params.limit.unwrap_or(100).clamp(1, 1_000);
    let entries = mdor_service::quarantine(
        &state.ctx,
        &principal,
        params.include_resolved.unwrap_or(false),
        params.after.map(SubmissionRecordId),
        limit,
    )
    .await?;
    let next_after = (entries.len() == limit as usize)
        .then(|| entries.last().map(|e| e.id.0))
        .flatten();
    let page = QuarantinePage {
        entries: entries.into_iter().map(QuarantineView::from).collect(),
        next_after,
    };
    Ok(identifiable(StatusCode::OK, page))
}

/// Sends a corrected record for a quarantined one, validated against the dataset version the
/// original was submitted under. The entry is resolved when the record is accepted; when it
/// is rejected again it stays, and the new rejection is reported.
#[utoipa::path(post, path = "/api/v1/quarantine/{id}/resubmit", params(("id" = i64, Path)),
    request_body(content = Object, description = "The corrected record, in the dataset's JSON shape"),
    responses(
        (status = 200, description = "Processed; see record.outcome", body = ResubmissionView),
        (status = 400, body = ErrorBody),
        (status = 404, description = "Absent or another organisation's", body = ErrorBody),
        (status = 409, description = "Already resolved", body = ErrorBody),
    ))]
pub async fn resubmit(
    state: RequestState,
    Caller(principal): Caller,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|r| path_error(r, "id"))?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::MalformedJson(rejection.body_text())
        }
    })?;
    let record: serde_json::Value = parse_json(&body)?;
    let (job, record) =
        mdor_service::resubmit_quarantined(&state.ctx, &principal, SubmissionRecordId(id), &record)
            .await?;
    let view = ResubmissionView {
        submission: SubmissionView::from(job),
        record: RecordReportView::from(record),
    };
    Ok(identifiable(StatusCode::OK, view))
}

/// A procedure's raw input and provenance: the current version first, then each earlier one.
/// A regulator states its purpose; an administrator breaks glass.
#[utoipa::path(get, path = "/api/v1/procedures/{id}/versions", params(("id" = i64, Path), AccessHeaderParams), responses(
    (status = 200, description = "Identifiable; never cached; the read is audited with its purpose", body = [ProcedureVersionView]),
    (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 422, description = "Purpose missing (purpose_required) or not allowed", body = ErrorBody),
))]
pub async fn procedure_versions(
    state: RequestState,
    Caller(principal): Caller,
    AccessHeaders(stated): AccessHeaders,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|r| path_error(r, "id"))?;
    let versions =
        mdor_service::procedure_history(&state.ctx, &principal, ProcedureId(id), &stated).await?;
    let views: Vec<ProcedureVersionView> = versions
        .into_iter()
        .map(ProcedureVersionView::from)
        .collect();
    Ok(identifiable(StatusCode::OK, views))
}

#[derive(Clone, Copy)]
enum ReportFormat {
    Ndjson,
    Csv,
}

const REPORT_CSV_HEADER: &str =
    "line,local_record_id,outcome,effect,procedure_id,field,code,message\n";

/// Streams a job's report page by page, so that a report of a million records is never held.
async fn report(
    state: RequestState,
    principal: Principal,
    id: SubmissionJobId,
    format: ReportFormat,
) -> Result<Response, ApiError> {
    // Checks visibility, as the report's pages will, before the response starts.
    mdor_service::submission_report_job(&state.ctx, &principal, id).await?;
    struct Cursor {
        state: RequestState,
        principal: Principal,
        after: u64,
        header: bool,
        done: bool,
    }
    let cursor = Cursor {
        state,
        principal,
        after: 0,
        header: matches!(format, ReportFormat::Csv),
        done: false,
    };
    let stream = futures_util::stream::unfold(cursor, move |mut cursor| async move {
        if cursor.done {
            return None;
        }
        let mut text = String::new();
        if cursor.header {
            cursor.header = false;
            text.push_str(REPORT_CSV_HEADER);
        }
        let page = mdor_service::submission_report(
            &cursor.state.ctx,
            &cursor.principal,
            id,
            cursor.after,
            REPORT_PAGE,
        )
        .await;
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                tracing::error!(error = %e, "streaming a submission report");
                return Some((Err(std::io::Error::other("report failed")), cursor));
            }
        };
        cursor.done = page.len() < REPORT_PAGE as usize;
        if let Some(last) = page.last() {
            cursor.after = last.line;
        }
        for record in page {
            let view = RecordReportView::from(record);
            match format {
                ReportFormat::Ndjson => {
                    text.push_str(&serde_json::to_string(&view).unwrap_or_default());
                    text.push('\n');
                }
                ReportFormat::Csv => push_csv(&mut text, &view),
            }
        }
        Some((Ok::<_, std::io::Error>(Bytes::from(text)), cursor))
    });
    let mut response = Response::new(Body::from_stream(stream));
    let (content_type, extension) = match format {
        ReportFormat::Ndjson => ("application/x-ndjson", "ndjson"),
        ReportFormat::Csv => ("text/csv; charset=utf-8", "csv"),
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(disposition) = HeaderValue::from_str(&format!(
        "attachment; filename=\"submission-{id}-report.{extension}\""
    )) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}

fn push_csv(text: &mut String, view: &RecordReportView) {
    let head = [
        view.line.to_string(),
        cell(view.local_record_id.as_deref().unwrap_or_default()),
        view.outcome.clone(),
        view.effect.clone(),
        view.procedure_id.map(|p| p.to_string()).unwrap_or_default(),
    ]
    .join(",");
    let messages: Vec<&FieldErrorBody> = view.errors.iter().chain(&view.warnings).collect();
    if messages.is_empty() {
        text.push_str(&head);
        text.push_str(",,,\n");
    }
    for m in messages {
        text.push_str(&format!(
            "{head},{},{},{}\n",
            cell(&m.field),
            cell(&m.code),
            cell(&m.message)
        ));
    }
}

fn messages(json: Option<&str>) -> Vec<FieldErrorBody> {
    #[derive(Deserialize)]
    struct Message {
        field: String,
        code: String,
        message: String,
    }
    json.and_then(|text| serde_json::from_str::<Vec<Message>>(text).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|m| FieldErrorBody {
            field: m.field,
            code: m.code,
            message: m.message,
        })
        .collect()
}
