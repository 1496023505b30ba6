//! `POST /api/v1/patients/timeline`: one patient's procedures, devices, outcomes and recalls
//! across every registry; `POST /api/v1/patients/access-log`: who accessed that record. The
//! NHS number travels in the body, never in a URL that proxies and access logs would keep.
//! The timeline takes the purpose and break-glass headers of every identifiable read
//! (`access_headers`); its body's `purpose`, from before them, is still read.

use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use mdor_domain::NhsNumber;
use mdor_domain::record::FieldError;
use mdor_service::AccessPurpose;

use crate::access_headers::{AccessHeaderParams, AccessHeaders};
use crate::api::identifiable;
use crate::dto::ident;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, JsonCreate, RequestState};

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimelineRequest {
    pub nhs_number: String,
    /// Deprecated: send the `Access-Purpose` header, as every identifiable read does. Still
    /// read: direct_care (providers, the default for them), recall, clinical_audit or
    /// investigation; when both are given they must agree.
    #[schema(deprecated)]
    pub purpose: Option<String>,
}

/// The timeline: patient details, then procedures oldest first, each with its implants, their
/// register entries, removals and recall cases.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineView {
    #[schema(value_type = Object)]
    #[serde(flatten)]
    pub timeline: mdor_service::PatientTimeline,
}

#[utoipa::path(post, path = "/api/v1/patients/timeline", request_body = TimelineRequest, params(AccessHeaderParams), responses(
    (status = 200, description = "Identifiable; never cached; audited with its purpose", body = TimelineView),
    (status = 403, description = "Role may not read timelines, may only by breaking glass (break_glass_required), or may not break glass", body = ErrorBody),
    (status = 404, description = "Unknown patient, or not one this provider has treated", body = ErrorBody),
    (status = 422, description = "Invalid NHS number, purpose missing (purpose_required) or not allowed, or an unreadable header", body = ErrorBody),
))]
pub async fn timeline(
    state: RequestState,
    Caller(principal): Caller,
    AccessHeaders(mut stated): AccessHeaders,
    JsonCreate { body, .. }: JsonCreate<TimelineRequest>,
) -> Result<Response, ApiError> {
    let mut errors = Vec::new();
    let nhs_number = ident(
        NhsNumber::parse(&body.nhs_number),
        "nhs_number",
        &mut errors,
    );
    let purpose = match body.purpose.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => {
            let parsed = AccessPurpose::parse(raw);
            if parsed.is_none() {
                errors.push(FieldError::new(
                    "purpose",
                    "not_in_code_list",
                    "purpose must be direct_care, recall, clinical_audit or investigation",
                ));
            }
            parsed
        }
    };
    match (stated.purpose, purpose) {
        (Some(header), Some(body)) if header != body => errors.push(FieldError::new(
            "purpose",
            "purpose_conflict",
            "the body's purpose and the Access-Purpose header differ; send the header only",
        )),
        (None, Some(body)) => stated.purpose = Some(body),
        _ => {}
    }
    let Some(nhs_number) = nhs_number.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let timeline =
        mdor_service::patient_timeline(&state.ctx, &principal, &nhs_number, &stated).await?;
    Ok(identifiable(StatusCode::OK, TimelineView { timeline }))
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessLogRequest {
    pub nhs_number: String,
}

/// Every audited access to the patient's record, oldest first: which organisation, in which
/// role, did what, why, when and with what outcome (never which token).
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessLogView {
    #[schema(value_type = Vec<Object>)]
    pub accesses: Vec<mdor_service::PatientAccess>,
}

#[utoipa::path(post, path = "/api/v1/patients/access-log", request_body = AccessLogRequest, responses(
    (status = 200, description = "Administrators only, on the patient's behalf (a patient with an account reads their own at GET /api/v1/me/access-log); identifiable; audited", body = AccessLogView),
    (status = 403, description = "Not an administrator (the refusal is audited)", body = ErrorBody),
    (status = 404, description = "Unknown patient", body = ErrorBody),
    (status = 422, description = "Invalid NHS number", body = ErrorBody),
))]
pub async fn access_log(
    state: RequestState,
    Caller(principal): Caller,
    JsonCreate { body, .. }: JsonCreate<AccessLogRequest>,
) -> Result<Response, ApiError> {
    let nhs_number = NhsNumber::parse(&body.nhs_number).map_err(|e| {
        ApiError::Validation(vec![FieldError::new(
            "nhs_number",
            "invalid_nhs_number",
            e.to_string(),
        )])
    })?;
    let accesses = mdor_service::patient_access_log(&state.ctx, &principal, &nhs_number).await?;
    Ok(identifiable(StatusCode::OK, AccessLogView { accesses }))
}
