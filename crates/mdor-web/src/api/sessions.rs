//! People's sessions: `POST /api/v1/session` signs in (password and second factor) and sets
//! the session cookie, `GET` shows the current session and its CSRF token, `DELETE` signs
//! out; `POST /api/v1/session/reauthenticate` is step-up; `GET /api/v1/sessions` lists the
//! caller's live sessions and `DELETE /api/v1/sessions/{id}` revokes one.
//!
//! A failed sign-in or step-up is one response whatever the reason, and sign-in attempts are
//! limited per client address (`rate_limit`) before any password is looked at.

use std::time::Instant;

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use mdor_service::sessions::IDLE_TIMEOUT;
use mdor_service::{ServiceError, SessionId, SignInRequest, StartedSession};

use crate::api::{identifiable, path_error};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{
    ClientAddress, JsonBody, RequestState, SessionAuth, clear_session_cookie, session_cookie,
};

/// A sign-in: username, password and a TOTP code or backup code.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInBody {
    pub username: String,
    pub password: String,
    /// A six-digit TOTP code from the authenticator app, or an unused backup code.
    pub second_factor: String,
    /// Required while the account still has the initial password an administrator handed
    /// over: the password to replace it with.
    pub new_password: Option<String>,
}

/// Step-up: the password and a fresh second factor again.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReauthenticateBody {
    pub password: String,
    pub second_factor: String,
}

/// The current session. The session's secret is only ever in the cookie; the CSRF token
/// must be sent as `X-CSRF-Token` with every request that changes data.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub session: i64,
    pub account: i64,
    /// The account role, e.g. `provider_submitter`, `consultant`, `patient`.
    pub role: String,
    /// The account's organisation (ODS code); none for a patient.
    pub organisation: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When the password and second factor were last entered (sign-in or step-up);
    /// exports and administration need this within the last 10 minutes.
    pub reauthenticated_at: DateTime<Utc>,
    /// The absolute timeout: the session ends then however busy.
    pub expires_at: DateTime<Utc>,
    /// The session ends after this long without a request.
    pub idle_timeout_seconds: i64,
    /// The second factor of the sign-in or latest step-up: `totp`, `backup_code`,
    /// `webauthn` or `oidc`.
    pub factor: String,
    /// Whether that factor resists phishing. Administrators, regulators and researchers reach
    /// nothing but their own session and credentials until it does.
    pub phishing_resistant: bool,
    pub csrf_token: String,
}

/// One of the caller's live sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionListItem {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    /// To within a minute.
    pub last_seen_at: DateTime<Utc>,
    pub reauthenticated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The second factor of the sign-in or latest step-up.
    pub factor: String,
    /// The session this request was made with.
    pub current: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionListItem>,
}

#[utoipa::path(post, path = "/api/v1/session", request_body = SignInBody, security(()), responses(
    (status = 201, description = "Signed in: a fresh session, its cookie `__Host-mdor_session` (Secure, HttpOnly, SameSite=Strict, Path=/) set", body = SessionView),
    (status = 401, description = "Sign-in failed: the same response for an unknown user, a wrong password or code, and a locked or disabled account", body = ErrorBody),
    (status = 409, description = "The account still has its initial password: send `new_password`", body = ErrorBody),
    (status = 422, description = "Malformed body, or a new password that breaks the policy", body = ErrorBody),
    (status = 429, description = "Too many sign-in attempts from this address; see Retry-After", body = ErrorBody),
))]
pub async fn sign_in(
    state: RequestState,
    ClientAddress(address): ClientAddress,
    JsonBody(body): JsonBody<SignInBody>,
) -> Result<Response, ApiError> {
    state
        .app
        .sign_in_limiter
        .check(address, Instant::now())
        .map_err(|retry_after_seconds| ApiError::TooManyRequests {
            retry_after_seconds,
        })?;
    let request = SignInRequest {
        username: &body.username,
        password: &body.password,
        second_factor: &body.second_factor,
        new_password: body.new_password.as_deref(),
    };
    let started = mdor_service::sign_in(&state.ctx, &request)
        .await
        .map_err(sign_in_error)?;
    Ok(started_response(StatusCode::CREATED, &started))
}

#[utoipa::path(get, path = "/api/v1/session", security(("session" = [])), responses(
    (status = 200, description = "The session of this request's cookie, with its CSRF token", body = SessionView),
    (status = 401, description = "No live session", body = ErrorBody),
))]
pub async fn current_session(session: SessionAuth) -> Result<Response, ApiError> {
    let caller = &session.caller;
    let view = SessionView {
        session: caller.session.id.0,
        account: caller.session.account.0,
        role: caller.role.as_str().to_string(),
        organisation: caller.organisation_ods.clone(),
        created_at: caller.session.created_at,
        reauthenticated_at: caller.session.reauthenticated_at,
        expires_at: caller.expires_at(),
        idle_timeout_seconds: IDLE_TIMEOUT.num_seconds(),
        factor: caller.session.assurance.factor.as_str().to_string(),
        phishing_resistant: caller.session.assurance.phishing_resistant,
        csrf_token: session.secret.csrf_token(),
    };
    Ok(identifiable(StatusCode::OK, view))
}

#[utoipa::path(delete, path = "/api/v1/session", security(("session" = [])), params(("X-CSRF-Token" = String, Header)), responses(
    (status = 204, description = "Signed out: the session has ended and its cookie is cleared"),
    (status = 401, description = "No live session", body = ErrorBody),
    (status = 403, description = "Missing or wrong X-CSRF-Token", body = ErrorBody),
))]
pub async fn sign_out(state: RequestState, session: SessionAuth) -> Result<Response, ApiError> {
    mdor_service::sign_out(&state.ctx, &session.caller).await?;
    Ok(cleared(StatusCode::NO_CONTENT))
}

#[utoipa::path(post, path = "/api/v1/session/reauthenticate", request_body = ReauthenticateBody, security(("session" = [])), params(("X-CSRF-Token" = String, Header)), responses(
    (status = 200, description = "Re-authenticated: the session has a new secret (cookie replaced) and a new CSRF token", body = SessionView),
    (status = 401, description = "Wrong password or code (the session stays as it was), or no live session", body = ErrorBody),
    (status = 403, description = "Missing or wrong X-CSRF-Token", body = ErrorBody),
))]
pub async fn reauthenticate(
    state: RequestState,
    session: SessionAuth,
    JsonBody(body): JsonBody<ReauthenticateBody>,
) -> Result<Response, ApiError> {
    let started = mdor_service::reauthenticate(
        &state.ctx,
        &session.caller,
        &body.password,
        &body.second_factor,
    )
    .await
    .map_err(sign_in_error)?;
    Ok(started_response(StatusCode::OK, &started))
}

#[utoipa::path(get, path = "/api/v1/sessions", security(("session" = [])), responses(
    (status = 200, description = "The caller's live sessions, oldest first", body = SessionList),
    (status = 401, description = "No live session", body = ErrorBody),
))]
pub async fn list_sessions(
    state: RequestState,
    session: SessionAuth,
) -> Result<Response, ApiError> {
    let current = session.caller.session.id;
    let sessions = mdor_service::list_sessions(&state.ctx, &session.caller).await?;
    let list = SessionList {
        sessions: sessions
            .into_iter()
            .map(|s| SessionListItem {
                id: s.id.0,
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                reauthenticated_at: s.reauthenticated_at,
                expires_at: s.created_at + mdor_service::sessions::ABSOLUTE_TIMEOUT,
                factor: s.assurance.factor.as_str().to_string(),
                current: s.id == current,
            })
            .collect(),
    };
    Ok(identifiable(StatusCode::OK, list))
}

#[utoipa::path(delete, path = "/api/v1/sessions/{id}", security(("session" = [])), params(("id" = i64, Path), ("X-CSRF-Token" = String, Header)), responses(
    (status = 204, description = "Revoked; when it was this request's session, its cookie is cleared"),
    (status = 401, description = "No live session", body = ErrorBody),
    (status = 403, description = "Missing or wrong X-CSRF-Token", body = ErrorBody),
    (status = 404, description = "No live session of this account has this id", body = ErrorBody),
))]
pub async fn revoke_session(
    state: RequestState,
    session: SessionAuth,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|rejection| path_error(rejection, "id"))?;
    let id = SessionId(id);
    mdor_service::revoke_session(&state.ctx, &session.caller, id).await?;
    if id == session.caller.session.id {
        return Ok(cleared(StatusCode::NO_CONTENT));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Every failure of the credentials is one response; other errors keep their own.
pub(crate) fn sign_in_error(error: ServiceError) -> ApiError {
    match error {
        ServiceError::Unauthenticated => ApiError::SignInFailed,
        other => other.into(),
    }
}

pub(crate) fn started_response(status: StatusCode, started: &StartedSession) -> Response {
    let view = SessionView {
        session: started.id.0,
        account: started.account.0,
        role: started.role.as_str().to_string(),
        organisation: started.organisation_ods.clone(),
        created_at: started.created_at,
        reauthenticated_at: started.reauthenticated_at,
        expires_at: started.expires_at,
        idle_timeout_seconds: IDLE_TIMEOUT.num_seconds(),
        factor: started.assurance.factor.as_str().to_string(),
        phishing_resistant: started.assurance.phishing_resistant,
        csrf_token: started.secret.csrf_token(),
    };
    let mut response = identifiable(status, view);
    set_session_cookie(&mut response, started);
    response
}

/// Gives the browser the cookie of a session just started or stepped up (by password or
/// through the identity provider, `api::oidc`).
pub(crate) fn set_session_cookie(response: &mut Response, started: &StartedSession) {
    // The browser may keep the cookie until the absolute timeout, counted from the
    // authentication that just happened.
    let max_age = (started.expires_at - started.reauthenticated_at).num_seconds();
    response
        .headers_mut()
        .append(header::SET_COOKIE, session_cookie(&started.secret, max_age));
}

fn cleared(status: StatusCode) -> Response {
    let mut response = status.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_session_cookie());
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
