//! WebAuthn passkeys and security keys over the API (`mdor_service::webauthn`): signing in
//! with a password and one (`POST /api/v1/session/webauthn`, then `…/finish`), stepping a
//! session up with one (`POST /api/v1/session/reauthenticate/webauthn`, then `…/finish`),
//! and the holder's own credentials (`/api/v1/session/credentials`: list, register in two
//! steps, revoke).
//!
//! Each ceremony is two requests: the first returns the options for the browser's
//! `navigator.credentials.create()` or `.get()` with a ceremony handle; the second sends the
//! authenticator's answer (the WebAuthn JSON encoding of its `PublicKeyCredential`) with the
//! handle. Sign-in attempts share the per-address limit of the password sign-in, and every
//! failure of a sign-in or step-up is the one `sign_in_failed` response.

use std::time::Instant;

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use mdor_service::WebauthnCredentialId;
use mdor_service::webauthn::{self, CeremonyStarted, CredentialSummary};

use crate::AppState;
use crate::api::sessions::{sign_in_error, started_response};
use crate::api::{identifiable, path_error};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ClientAddress, JsonBody, RequestState, SessionAuth};

/// The first half of a sign-in with a passkey or security key.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebauthnSignInBody {
    pub username: String,
    pub password: String,
}

/// The first half of a step-up with a passkey or security key.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebauthnReauthenticateBody {
    pub password: String,
}

/// The second half of a sign-in or step-up: the authenticator's assertion.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebauthnAssertionBody {
    /// The handle the first half returned.
    pub ceremony: String,
    /// The browser's `PublicKeyCredential` from `navigator.credentials.get()`, in the WebAuthn
    /// JSON encoding (binary fields base64url).
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

/// The second half of a registration: the authenticator's new credential and its name.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebauthnRegistrationBody {
    pub ceremony: String,
    /// The browser's `PublicKeyCredential` from `navigator.credentials.create()`, in the
    /// WebAuthn JSON encoding.
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
    /// The holder's name for it, 1 to 64 characters ("blue security key").
    pub label: String,
}

/// The first half of a ceremony.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebauthnChallengeView {
    /// Send back with the authenticator's answer within five minutes.
    pub ceremony: String,
    /// Pass `options.publicKey` (binary fields decoded from base64url) to
    /// `navigator.credentials.create()` for a registration, `.get()` for a sign-in.
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
}

/// One of the holder's registered credentials.
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialView {
    pub id: i64,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialList {
    pub credentials: Vec<CredentialView>,
}

#[utoipa::path(post, path = "/api/v1/session/webauthn", request_body = WebauthnSignInBody, security(()), responses(
    (status = 200, description = "The password is right and the account has a passkey or security key: the options for navigator.credentials.get()", body = WebauthnChallengeView),
    (status = 401, description = "Sign-in failed: one response for an unknown user, a wrong password, an account without a credential, and a locked or disabled account", body = ErrorBody),
    (status = 409, description = "The account still has its initial password: sign in with a code and a new password first", body = ErrorBody),
    (status = 429, description = "Too many sign-in attempts from this address; see Retry-After", body = ErrorBody),
))]
pub async fn begin_sign_in(
    state: RequestState,
    ClientAddress(address): ClientAddress,
    JsonBody(body): JsonBody<WebauthnSignInBody>,
) -> Result<Response, ApiError> {
    limit(&state.app, address)?;
    let started = webauthn::begin_sign_in(&state.ctx, &body.username, &body.password)
        .await
        .map_err(sign_in_error)?;
    Ok(challenge(started))
}

#[utoipa::path(post, path = "/api/v1/session/webauthn/finish", request_body = WebauthnAssertionBody, security(()), responses(
    (status = 201, description = "Signed in with a phishing-resistant factor: a fresh session, its cookie set", body = crate::api::sessions::SessionView),
    (status = 401, description = "Sign-in failed (an assertion that does not verify, an unknown, used or expired ceremony)", body = ErrorBody),
    (status = 429, description = "Too many sign-in attempts from this address; see Retry-After", body = ErrorBody),
))]
pub async fn finish_sign_in(
    state: RequestState,
    ClientAddress(address): ClientAddress,
    JsonBody(body): JsonBody<WebauthnAssertionBody>,
) -> Result<Response, ApiError> {
    limit(&state.app, address)?;
    let started = webauthn::finish_sign_in(&state.ctx, &body.ceremony, &body.credential)
        .await
        .map_err(sign_in_error)?;
    Ok(started_response(StatusCode::CREATED, &started))
}

#[utoipa::path(post, path = "/api/v1/session/reauthenticate/webauthn", request_body = WebauthnReauthenticateBody, security(("session" = [])), params(("X-CSRF-Token" = String, Header)), responses(
    (status = 200, description = "The options for navigator.credentials.get()", body = WebauthnChallengeView),
    (status = 401, description = "Wrong password, no credential, or no live session", body = ErrorBody),
    (status = 403, description = "Missing or wrong X-CSRF-Token", body = ErrorBody),
))]
pub async fn begin_reauthentication(
    state: RequestState,
    session: SessionAuth,
    JsonBody(body): JsonBody<WebauthnReauthenticateBody>,
) -> Result<Response, ApiError> {
    let started = webauthn::begin_reauthentication(&state.ctx, &session.caller, &body.password)
        .await
        .map_err(sign_in_error)?;
    Ok(challenge(started))
}

#[utoipa::path(post, path = "/api/v1/session/reauthenticate/webauthn/finish", request_body = WebauthnAssertionBody, security(("session" = [])), params(("X-CSRF-Token" = String, Header)), responses(
    (status = 200, description = "Re-authenticated with a phishing-resistant factor: a new secret (cookie replaced) and CSRF token", body = crate::api::sessions::SessionView),
    (status = 401, description = "The assertion did not verify (the session stays as it was), or no live session", body = ErrorBody),
    (status = 403, description = "Missing or wrong X-CSRF-Token", body = ErrorBody),
))]
pub async fn finish_reauthentication(
    state: RequestState,
    session: SessionAuth,
    JsonBody(body): JsonBody<WebauthnAssertionBody>,
) -> Result<Response, ApiError> {
    let started = webauthn::finish_reauthentication(
        &state.ctx,
        &session.caller,
        &body.ceremony,
        &body.credential,
    )
    .await
    .map_err(sign_in_error)?;
    Ok(started_response(StatusCode::OK, &started))
}

#[utoipa::path(get, path = "/api/v1/session/credentials", security(("session" = [])), responses(
    (status = 200, description = "The caller's passkeys and security keys, oldest first", body = CredentialList),
    (status = 401, description = "No live session", body = ErrorBody),
))]
pub async fn list_credentials(
    state: RequestState,
    session: SessionAuth,
) -> Result<Response, ApiError> {
    let credentials = webauthn::list_credentials(&state.ctx, &session.caller).await?;
    let list = CredentialList {
        credentials: credentials.into_iter().map(credential_view).collect(),
    };
    Ok(identifiable(StatusCode::OK, list))
}

#[utoipa::path(post, path = "/api/v1/session/credentials", security(("session" = [])), params(("X-CSRF-Token" = String, Header)), responses(
    (status = 200, description = "The options for navigator.credentials.create()", body = WebauthnChallengeView),
    (status = 401, description = "No live session", body = ErrorBody),
    (status = 403, description = "No step-up within 10 minutes (`reauthentication_required`), or the account has a credential and the step-up did not use one (`phishing_resistant_factor_required`), or a missing X-CSRF-Token", body = ErrorBody),
))]
pub async fn begin_registration(
    state: RequestState,
    session: SessionAuth,
) -> Result<Response, ApiError> {
    let started = webauthn::begin_registration(&state.ctx, &session.caller).await?;
    Ok(challenge(started))
}

#[utoipa::path(post, path = "/api/v1/session/credentials/finish", request_body = WebauthnRegistrationBody, security(("session" = [])), params(("X-CSRF-Token" = String, Header)), responses(
    (status = 201, description = "Registered", body = CredentialView),
    (status = 401, description = "No live session", body = ErrorBody),
    (status = 403, description = "As for starting a registration", body = ErrorBody),
    (status = 404, description = "No unfinished ceremony of this session has this handle, or it is older than five minutes", body = ErrorBody),
    (status = 409, description = "This authenticator's credential is already registered", body = ErrorBody),
    (status = 422, description = "The answer did not verify (field `credential`), or a bad label", body = ErrorBody),
))]
pub async fn finish_registration(
    state: RequestState,
    session: SessionAuth,
    JsonBody(body): JsonBody<WebauthnRegistrationBody>,
) -> Result<Response, ApiError> {
    let registered = webauthn::finish_registration(
        &state.ctx,
        &session.caller,
        &body.ceremony,
        &body.credential,
        &body.label,
    )
    .await?;
    Ok(identifiable(
        StatusCode::CREATED,
        credential_view(registered),
    ))
}

#[utoipa::path(delete, path = "/api/v1/session/credentials/{id}", security(("session" = [])), params(("id" = i64, Path), ("X-CSRF-Token" = String, Header)), responses(
    (status = 204, description = "Revoked"),
    (status = 401, description = "No live session", body = ErrorBody),
    (status = 403, description = "No step-up with a passkey or security key within 10 minutes, or a missing X-CSRF-Token", body = ErrorBody),
    (status = 404, description = "The caller has no live credential with this id", body = ErrorBody),
))]
pub async fn revoke_credential(
    state: RequestState,
    session: SessionAuth,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|rejection| path_error(rejection, "id"))?;
    webauthn::revoke_credential(&state.ctx, &session.caller, WebauthnCredentialId(id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Sign-in attempts with passkeys count against the same per-address bucket as those with
/// codes, before any password is looked at.
fn limit(state: &AppState, address: std::net::IpAddr) -> Result<(), ApiError> {
    state
        .sign_in_limiter
        .check(address, Instant::now())
        .map_err(|retry_after_seconds| ApiError::TooManyRequests {
            retry_after_seconds,
        })
}

fn challenge(started: CeremonyStarted) -> Response {
    identifiable(
        StatusCode::OK,
        WebauthnChallengeView {
            ceremony: started.ceremony,
            options: started.options,
        },
    )
}

fn credential_view(summary: CredentialSummary) -> CredentialView {
    CredentialView {
        id: summary.id.0,
        label: summary.label,
        created_at: summary.created_at,
        last_used_at: summary.last_used_at,
    }
}
