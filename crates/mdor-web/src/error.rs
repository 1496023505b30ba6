//! The one API error type: a status, a stable snake_case code, a message, and the field at
//! fault, rendered as `{ "code", "message", "field", "errors" }`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use mdor_domain::record::FieldError;
use mdor_service::{RefusalOutcome, ServiceError};

/// Every error the API returns. The codes are a public contract: clients may rely on them.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the body is not JSON at all.
    MalformedJson(String),
    /// 422: JSON of the wrong shape (a missing field, a wrong type, an unknown field).
    InvalidField {
        field: String,
        message: String,
    },
    /// 422: well-formed input that breaks the registry's rules; all problems listed.
    Validation(Vec<FieldError>),
    /// 400: a path or query parameter that cannot be read.
    BadParameter {
        field: String,
        message: String,
    },
    /// 401: no credential, or one that is unknown, revoked, ended or expired.
    Unauthenticated,
    /// 401: a sign-in or step-up failed; the same whatever the reason (unknown user, wrong
    /// password or code, locked or disabled account).
    SignInFailed,
    /// 403: the policy refuses; `audited` when the service already wrote the refusal to
    /// the audit (otherwise `api::refusals` does).
    Forbidden {
        action: String,
        audited: bool,
    },
    /// 403: a state-changing request made with a session cookie without its CSRF token.
    CsrfTokenInvalid,
    /// 403: a person must re-enter their password and second factor first (step-up).
    ReauthenticationRequired,
    /// 422: an `Access-Purpose` or `Break-Glass-Reason` header that cannot be read; the code
    /// is the field error's (`purpose_not_in_code_list`, `break_glass_reason_required`, …).
    AccessHeader(FieldError),
    /// 422: an identifiable read beyond the caller's own organisation without the purpose it
    /// must state (`Access-Purpose`).
    PurposeRequired(&'static str),
    /// 422: a stated purpose this caller may not give for this read.
    PurposeNotAllowed(&'static str),
    /// 403: the caller's role reaches these records only by breaking glass
    /// (`Break-Glass-Reason`).
    BreakGlassRequired,
    /// 403: the caller's role acts only through a session established with a passkey or
    /// security key, and this session was established with a code.
    PhishingResistantFactorRequired,
    /// 404: OpenID Connect sign-in was asked for, but this registry has no `[oidc]` settings.
    OidcNotConfigured,
    /// 503: the identity provider could not be reached to start a sign-in.
    IdentityProviderUnavailable,
    /// 429: too many attempts from this address; try again after this many seconds.
    TooManyRequests {
        retry_after_seconds: u64,
    },
    NotFound(&'static str),
    Conflict {
        code: &'static str,
        field: Option<String>,
        message: String,
    },
    IdempotencyKeyReused,
    PayloadTooLarge,
    /// 413: an upload larger than the configured limit, in bytes.
    UploadTooLarge(u64),
    UnsupportedMediaType,
    Internal,
}

/// The JSON body of every error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable snake_case code, e.g. `validation_failed`, `procedure_not_found`.
    pub code: String,
    pub message: String,
    /// The field at fault (the first one, when there are several).
    pub field: Option<String>,
    /// Every problem, for validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldErrorBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FieldErrorBody {
    pub field: String,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) | ApiError::BadParameter { .. } => StatusCode::BAD_REQUEST,
            ApiError::InvalidField { .. }
            | ApiError::Validation(_)
            | ApiError::IdempotencyKeyReused
            | ApiError::AccessHeader(_)
            | ApiError::PurposeRequired(_)
            | ApiError::PurposeNotAllowed(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthenticated | ApiError::SignInFailed => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. }
            | ApiError::CsrfTokenInvalid
            | ApiError::ReauthenticationRequired
            | ApiError::BreakGlassRequired
            | ApiError::PhishingResistantFactorRequired => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound(_) | ApiError::OidcNotConfigured => StatusCode::NOT_FOUND,
            ApiError::IdentityProviderUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge | ApiError::UploadTooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> ErrorBody {
        let simple = |code: &str, message: String, field: Option<String>| ErrorBody {
            code: code.to_string(),
            message,
            field,
            errors: Vec::new(),
        };
        match self {
            ApiError::MalformedJson(m) => simple("malformed_json", m.clone(), None),
            ApiError::InvalidField { field, message } => {
                simple("invalid_field", message.clone(), Some(field.clone()))
            }
            ApiError::Validation(errors) => ErrorBody {
                code: "validation_failed".into(),
                message: match errors.as_slice() {
                    [only] => only.message.clone(),
                    many => format!("{} problems with this request", many.len()),
                },
                field: errors.first().map(|e| e.field.clone()),
                errors: errors
                    .iter()
                    .map(|e| FieldErrorBody {
                        field: e.field.clone(),
                        code: e.code.to_string(),
                        message: e.message.clone(),
                    })
                    .collect(),
            },
            ApiError::BadParameter { field, message } => {
                simple("invalid_parameter", message.clone(), Some(field.clone()))
            }
            ApiError::Unauthenticated => simple(
                "unauthenticated",
                "a valid bearer token or session is required".into(),
                None,
            ),
            ApiError::SignInFailed => simple(
                "sign_in_failed",
                "the username, password or code is wrong, or the account cannot sign in now".into(),
                None,
            ),
            ApiError::Forbidden { action, .. } => {
                simple("forbidden", format!("this caller may not {action}"), None)
            }
            ApiError::CsrfTokenInvalid => simple(
                "csrf_token_invalid",
                "a request that changes data with a session must carry its X-CSRF-Token".into(),
                Some("X-CSRF-Token".into()),
            ),
            ApiError::ReauthenticationRequired => simple(
                "reauthentication_required",
                "enter your password and second factor again (POST /api/v1/session/reauthenticate) within 10 minutes of this request".into(),
                None,
            ),
            ApiError::AccessHeader(error) => simple(
                error.code,
                error.message.clone(),
                Some(error.field.clone()),
            ),
            ApiError::PurposeRequired(message) => simple(
                "purpose_required",
                (*message).to_string(),
                Some(crate::access_headers::ACCESS_PURPOSE_HEADER.into()),
            ),
            ApiError::PurposeNotAllowed(message) => simple(
                "purpose_not_allowed",
                (*message).to_string(),
                Some(crate::access_headers::ACCESS_PURPOSE_HEADER.into()),
            ),
            ApiError::BreakGlassRequired => simple(
                "break_glass_required",
                "this role reads these records only by breaking glass: send Break-Glass-Reason with a written reason (and Access-Purpose); the access is reviewed".into(),
                Some(crate::access_headers::BREAK_GLASS_REASON_HEADER.into()),
            ),
            ApiError::PhishingResistantFactorRequired => simple(
                "phishing_resistant_factor_required",
                "this role acts only through a session signed in with a passkey or security key: register one (POST /api/v1/session/credentials), then sign in with it (POST /api/v1/session/webauthn)".into(),
                None,
            ),
            ApiError::TooManyRequests {
                retry_after_seconds,
            } => simple(
                "too_many_requests",
                format!("too many attempts from this address: try again in {retry_after_seconds} s"),
                None,
            ),
            ApiError::OidcNotConfigured => simple(
                "oidc_not_configured",
                "sign-in through an identity provider is not configured on this registry".into(),
                None,
            ),
            ApiError::IdentityProviderUnavailable => simple(
                "identity_provider_unavailable",
                "the identity provider cannot be reached: try again later".into(),
                None,
            ),
            ApiError::NotFound(what) => simple(
                &format!("{}_not_found", what.replace(' ', "_")),
                format!("{what} not found"),
                None,
            ),
            ApiError::Conflict {
                code,
                field,
                message,
            } => simple(code, message.clone(), field.clone()),
            ApiError::IdempotencyKeyReused => simple(
                "idempotency_key_reused",
                "this Idempotency-Key was already used with a different request body".into(),
                Some("Idempotency-Key".into()),
            ),
            ApiError::PayloadTooLarge => simple(
                "body_too_large",
                format!(
                    "request body is larger than {} bytes",
                    crate::MAX_BODY_BYTES
                ),
                None,
            ),
            ApiError::UploadTooLarge(limit) => simple(
                "upload_too_large",
                format!("the upload is larger than the limit of {limit} bytes"),
                None,
            ),
            ApiError::UnsupportedMediaType => simple(
                "unsupported_media_type",
                "request body must be application/json".into(),
                None,
            ),
            ApiError::Internal => simple(
                "internal_error",
                "the request could not be completed; it has been logged".into(),
                None,
            ),
        }
    }
}

impl ApiError {
    /// What the audit should record of this error, when it is a refusal that no use case
    /// audited.
    fn unaudited_refusal(&self) -> Option<RefusalOutcome> {
        match self {
            ApiError::Unauthenticated => Some(RefusalOutcome::Unauthenticated),
            ApiError::Forbidden { audited: false, .. } => Some(RefusalOutcome::Forbidden),
            ApiError::PhishingResistantFactorRequired => {
                Some(RefusalOutcome::PhishingResistantFactorRequired)
            }
            ApiError::ReauthenticationRequired => Some(RefusalOutcome::ReauthenticationRequired),
            ApiError::CsrfTokenInvalid => Some(RefusalOutcome::CsrfTokenInvalid),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        // A refusal nobody has audited yet is marked for `api::refusals`, which writes it.
        if let Some(outcome) = self.unaudited_refusal() {
            response.extensions_mut().insert(outcome);
        }
        response.headers_mut().insert(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
        if let ApiError::TooManyRequests {
            retry_after_seconds,
        } = self
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, retry_after_seconds.into());
        }
        response
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Invalid(errors) => ApiError::Validation(errors),
            ServiceError::NotFound { what } => ApiError::NotFound(what),
            ServiceError::Unauthenticated => ApiError::Unauthenticated,
            ServiceError::Forbidden { action, audited } => ApiError::Forbidden {
                action: action.to_string(),
                audited,
            },
            ServiceError::ReauthenticationRequired => ApiError::ReauthenticationRequired,
            ServiceError::PurposeRequired { message } => ApiError::PurposeRequired(message),
            ServiceError::PurposeNotAllowed { message } => ApiError::PurposeNotAllowed(message),
            ServiceError::BreakGlassRequired => ApiError::BreakGlassRequired,
            ServiceError::PhishingResistantFactorRequired => {
                ApiError::PhishingResistantFactorRequired
            }
            ServiceError::Conflict {
                code,
                field,
                message,
            } => ApiError::Conflict {
                code,
                field,
                message,
            },
            ServiceError::IdempotencyKeyReused => ApiError::IdempotencyKeyReused,
            ServiceError::Store(source) => {
                // The chain goes to the log with the request span; the client gets a generic
                // message.
                tracing::error!(error = %mdor_service::error_chain(&source), "storage failure");
                ApiError::Internal
            }
            ServiceError::TooLarge { limit } => ApiError::UploadTooLarge(limit),
            ServiceError::OidcNotConfigured => ApiError::OidcNotConfigured,
            ServiceError::IdentityProviderUnavailable => ApiError::IdentityProviderUnavailable,
            ServiceError::Input(message) => {
                tracing::error!(%message, "unexpected input failure");
                ApiError::Internal
            }
        }
    }
}
