//! The JSON API under `/api/v1` and its OpenAPI description.

mod access_reviews;
mod accounts;
mod data_quality;
mod data_quality_page;
mod devices;
mod health;
mod me;
mod oidc;
mod outcomes;
mod passkeys;
mod patients;
mod procedures;
mod recall;
pub(crate) mod recall_cases;
pub(crate) mod refusals;
mod reports;
mod research;
pub mod route_policy;
pub(crate) mod sessions;
mod submissions;
mod survivorship;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;
use crate::error::ApiError;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health::health))
        .route("/api/v1/openapi.json", get(openapi_json))
        .route(
            "/api/v1/session",
            post(sessions::sign_in)
                .get(sessions::current_session)
                .delete(sessions::sign_out),
        )
        .route(
            "/api/v1/session/reauthenticate",
            post(sessions::reauthenticate),
        )
        .route("/api/v1/session/webauthn", post(passkeys::begin_sign_in))
        .route(
            "/api/v1/session/webauthn/finish",
            post(passkeys::finish_sign_in),
        )
        .route(
            "/api/v1/session/reauthenticate/webauthn",
            post(passkeys::begin_reauthentication),
        )
        .route(
            "/api/v1/session/reauthenticate/webauthn/finish",
            post(passkeys::finish_reauthentication),
        )
        .route(
            "/api/v1/session/credentials",
            get(passkeys::list_credentials).post(passkeys::begin_registration),
        )
        .route(
            "/api/v1/session/credentials/finish",
            post(passkeys::finish_registration),
        )
        .route(
            "/api/v1/session/credentials/{id}",
            delete(passkeys::revoke_credential),
        )
        .route("/api/v1/session/oidc/start", get(oidc::start))
        .route("/api/v1/session/oidc/callback", get(oidc::callback))
        .route(
            "/api/v1/session/oidc/reauthenticate",
            get(oidc::reauthenticate),
        )
        .route("/api/v1/sessions", get(sessions::list_sessions))
        .route("/api/v1/sessions/{id}", delete(sessions::revoke_session))
        .route("/api/v1/procedures", post(procedures::create_procedure))
        .route("/api/v1/procedures/{id}", get(procedures::get_procedure))
        .route(
            "/api/v1/procedures/{id}/versions",
            get(submissions::procedure_versions),
        )
        .route("/api/v1/submissions/{id}", get(submissions::get_submission))
        .route(
            "/api/v1/submissions/{id}/report.ndjson",
            get(submissions::report_ndjson),
        )
        .route(
            "/api/v1/submissions/{id}/report.csv",
            get(submissions::report_csv),
        )
        .route("/api/v1/quarantine", get(submissions::list_quarantine))
        .route(
            "/api/v1/quarantine/{id}/resubmit",
            post(submissions::resubmit),
        )
        .route(
            "/api/v1/implants/{id}/removals",
            post(outcomes::record_removal),
        )
        .route("/api/v1/deaths", post(outcomes::record_death))
        .route("/api/v1/devices", post(devices::register_device))
        .route("/api/v1/devices/{udi_di}", get(devices::get_device))
        .route(
            "/api/v1/devices/{udi_di}/survivorship",
            get(survivorship::get_survivorship),
        )
        .route("/api/v1/recall", get(recall::recall))
        .route("/api/v1/patients/timeline", post(patients::timeline))
        .route("/api/v1/reports/feedback", get(reports::feedback))
        .route(
            "/api/v1/providers/{ods}/data-quality",
            get(data_quality::provider_data_quality),
        )
        .route("/api/v1/patients/access-log", post(patients::access_log))
        .route("/api/v1/me/timeline", get(me::own_timeline))
        .route("/api/v1/me/access-log", get(me::own_access_log))
        .route(
            "/api/v1/accounts",
            get(accounts::list_accounts).post(accounts::create_account),
        )
        .route(
            "/api/v1/accounts/{username}/disable",
            post(accounts::disable_account),
        )
        .route(
            "/api/v1/accounts/{username}/enable",
            post(accounts::enable_account),
        )
        .route(
            "/api/v1/accounts/{username}/reset",
            post(accounts::reset_account),
        )
        .route(
            "/api/v1/accounts/{username}/oidc-identity",
            post(accounts::link_oidc_identity),
        )
        .route(
            "/api/v1/accounts/{username}/approver",
            put(accounts::set_approver),
        )
        .route("/api/v1/research/projects", get(research::list_projects))
        .route(
            "/api/v1/research/projects/{reference}/extract.ndjson",
            get(research::extract_ndjson),
        )
        .route(
            "/api/v1/research/projects/{reference}/extract.csv",
            get(research::extract_csv),
        )
        .route("/api/v1/access-reviews", get(access_reviews::list_reviews))
        .route(
            "/api/v1/access-reviews/{id}/decision",
            post(access_reviews::decide_review),
        )
        .route("/api/v1/recall-cases", post(recall_cases::open_case))
        .route("/api/v1/recall-cases/{id}", get(recall_cases::get_case))
        .route(
            "/api/v1/recall-cases/{id}/refresh",
            post(recall_cases::refresh_case),
        )
        .route(
            "/api/v1/recall-cases/{id}/patients",
            get(recall_cases::work_page),
        )
        .route(
            "/api/v1/recall-cases/{id}/worklist.csv",
            get(recall_cases::worklist_csv),
        )
        .route(
            "/api/v1/recall-cases/{id}/patients/{entry}/status",
            post(recall_cases::set_status),
        )
        .route_layer(axum::middleware::from_fn(
            route_policy::require_declared_policy,
        ))
        .fallback(|| async { ApiError::NotFound("route") })
}

/// Routes that stream large request bodies: no request timeout and no body limit but the
/// upload limit the service enforces while spooling.
pub fn upload_routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/submissions", post(submissions::create_submission))
        .route_layer(axum::middleware::from_fn(
            route_policy::require_declared_policy,
        ))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mdor API",
        description = "Medical Device Outcome Registry: record implants at the point of care, follow up outcomes, find patients for recalls. Every route except /health, this document and sign-in (password, or an OpenID Connect identity provider when configured) needs a bearer token bound to one organisation and one role (systems), or a session cookie from POST /api/v1/session (people; requests that change data also send the session's X-CSRF-Token).",
        version = "1.0.0",
        license(name = "Apache-2.0")
    ),
    paths(
        health::health,
        sessions::sign_in,
        sessions::current_session,
        sessions::sign_out,
        sessions::reauthenticate,
        sessions::list_sessions,
        sessions::revoke_session,
        passkeys::begin_sign_in,
        passkeys::finish_sign_in,
        passkeys::begin_reauthentication,
        passkeys::finish_reauthentication,
        passkeys::list_credentials,
        passkeys::begin_registration,
        passkeys::finish_registration,
        passkeys::revoke_credential,
        oidc::start,
        oidc::callback,
        oidc::reauthenticate,
        procedures::create_procedure,
        procedures::get_procedure,
        outcomes::record_removal,
        outcomes::record_death,
        devices::get_device,
        devices::register_device,
        recall::recall,
        patients::timeline,
        reports::feedback,
        data_quality::provider_data_quality,
        patients::access_log,
        me::own_timeline,
        me::own_access_log,
        accounts::list_accounts,
        accounts::create_account,
        accounts::disable_account,
        accounts::enable_account,
        accounts::set_approver,
        accounts::reset_account,
        accounts::link_oidc_identity,
        access_reviews::list_reviews,
        access_reviews::decide_review,
        research::list_projects,
        research::extract_ndjson,
        research::extract_csv,
        recall_cases::open_case,
        recall_cases::get_case,
        recall_cases::refresh_case,
        recall_cases::work_page,
        recall_cases::worklist_csv,
        recall_cases::set_status,
        survivorship::get_survivorship,
        submissions::create_submission,
        submissions::get_submission,
        submissions::report_ndjson,
        submissions::report_csv,
        submissions::list_quarantine,
        submissions::resubmit,
        submissions::procedure_versions,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []), ("session" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "mdor_ followed by 64 hex characters, from `mdor token create`",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "__Host-mdor_session",
                "Set by POST /api/v1/session; requests that change data must also send the session's csrf_token as X-CSRF-Token",
            ))),
        );
    }
}

/// The OpenAPI document as served and as committed in `docs/api/openapi.json`.
pub fn openapi_document() -> String {
    // Serialising a document built from static definitions cannot fail.
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}

async fn openapi_json() -> Response {
    let mut response = openapi_document().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Marks a response as carrying identifiable data: never cached.
pub(crate) fn identifiable<T: serde::Serialize>(
    status: axum::http::StatusCode,
    body: T,
) -> Response {
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A query string that did not deserialise: the field is the whole query, the message serde's
/// (which names the parameter).
pub(crate) fn query_error(rejection: QueryRejection) -> ApiError {
    ApiError::BadParameter {
        field: "query".into(),
        message: rejection.body_text(),
    }
}

pub(crate) fn path_error(rejection: PathRejection, field: &str) -> ApiError {
    ApiError::BadParameter {
        field: field.to_string(),
        message: format!("{field} in the path is invalid: {}", rejection.body_text()),
    }
}
