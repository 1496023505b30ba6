//! OpenID Connect sign-in through a national identity provider (`mdor_service::oidc`):
//! `GET /api/v1/session/oidc/start` sends the browser to the provider, and the provider sends
//! it back to `GET /api/v1/session/oidc/callback`, which starts the same session (cookie
//! `__Host-mdor_session`, CSRF token) as `POST /api/v1/session`.
//! `GET /api/v1/session/oidc/reauthenticate` is the same journey for a signed-in person's
//! step-up: the callback gives their session a new secret and a fresh re-authentication.
//!
//! Both routes are public, answer `404 oidc_not_configured` without `[oidc]` settings, and
//! share the per-address sign-in limit. A failed callback is the password sign-in's
//! `401 sign_in_failed`, whatever check failed; the reason is in the audit.
//!
//! The session cookie is `SameSite=Strict`, and browsers withhold such cookies from a
//! navigation that began on another site, redirects included. The callback is such a
//! navigation (it comes from the provider), so it answers with a page that moves to `/`
//! itself: that second navigation starts here, and carries the new cookie.

use std::time::Instant;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use mdor_service::{OidcCallback, OidcStart};

use crate::AppState;
use crate::api::sessions::{set_session_cookie, sign_in_error};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{
    ClientAddress, RequestState, SessionAuth, clear_oidc_cookie, oidc_binding, oidc_cookie,
};

/// What the identity provider sends the browser back with. Other parameters it may add
/// (`error_description`, `session_state`, `iss`) are ignored.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// The authorization code, exchanged once at the provider's token endpoint.
    pub code: Option<String>,
    /// The state this registry sent with the browser; it works once.
    pub state: Option<String>,
    /// Set instead of `code` when the provider refused or the person cancelled.
    pub error: Option<String>,
}

/// The page a successful callback answers with: it moves to `/` (see the module comment).
const SIGNED_IN_PAGE: &str = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"refresh\" content=\"0;url=/\"><title>Signed in</title></head>\
<body><p>Signed in. <a href=\"/\">Continue</a>.</p></body></html>\n";

#[utoipa::path(get, path = "/api/v1/session/oidc/start", security(()), responses(
    (status = 302, description = "Sent to the identity provider's authorization endpoint with state, nonce and PKCE challenge; the cookie `__Host-mdor_oidc` (Secure, HttpOnly, SameSite=Lax, 10 minutes) binds the sign-in to this browser"),
    (status = 404, description = "OpenID Connect sign-in is not configured (`oidc_not_configured`)", body = ErrorBody),
    (status = 429, description = "Too many sign-in attempts from this address; see Retry-After", body = ErrorBody),
    (status = 503, description = "The identity provider's discovery document or keys could not be fetched", body = ErrorBody),
))]
pub async fn start(
    state: RequestState,
    ClientAddress(address): ClientAddress,
) -> Result<Response, ApiError> {
    limit(&state.app, address)?;
    let started = mdor_service::begin_oidc_sign_in(&state.ctx).await?;
    Ok(redirect_to_provider(&started))
}

/// A step-up of the caller's own session through the identity provider: the same journey as
/// a sign-in, and the callback gives this session a new secret and a fresh re-authentication
/// (for exports and administration) instead of starting another.
#[utoipa::path(get, path = "/api/v1/session/oidc/reauthenticate", responses(
    (status = 302, description = "Sent to the identity provider, asked to authenticate the person again (prompt=login, max_age=0); the cookie `__Host-mdor_oidc` binds the step-up to this browser. The callback then answers as for a sign-in, with the session's new cookie, if the ID token is for this session's account and its auth_time is after the step-up began"),
    (status = 401, description = "No live session", body = ErrorBody),
    (status = 404, description = "OpenID Connect sign-in is not configured (`oidc_not_configured`)", body = ErrorBody),
    (status = 429, description = "Too many sign-in attempts from this address; see Retry-After", body = ErrorBody),
    (status = 503, description = "The identity provider's discovery document or keys could not be fetched", body = ErrorBody),
))]
pub async fn reauthenticate(
    state: RequestState,
    ClientAddress(address): ClientAddress,
    session: SessionAuth,
) -> Result<Response, ApiError> {
    limit(&state.app, address)?;
    let started = mdor_service::begin_oidc_reauthentication(&state.ctx, &session.secret).await?;
    Ok(redirect_to_provider(&started))
}

#[utoipa::path(get, path = "/api/v1/session/oidc/callback", params(CallbackQuery), security(()), responses(
    (status = 200, description = "Signed in: a fresh session, its cookie `__Host-mdor_session` set as by POST /api/v1/session (after a step-up: the same session with a new secret); an HTML page that moves to `/`", content_type = "text/html"),
    (status = 400, description = "The query string cannot be read", body = ErrorBody),
    (status = 401, description = "Sign-in failed: the same response whatever check failed (state, browser, code, token signature, issuer, audience, nonce, expiry, assurance level, unlinked or disabled account)", body = ErrorBody),
    (status = 404, description = "OpenID Connect sign-in is not configured (`oidc_not_configured`)", body = ErrorBody),
    (status = 429, description = "Too many sign-in attempts from this address; see Retry-After", body = ErrorBody),
))]
pub async fn callback(
    state: RequestState,
    ClientAddress(address): ClientAddress,
    headers: axum::http::HeaderMap,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    limit(&state.app, address)?;
    let Query(query) = query.map_err(|rejection| ApiError::BadParameter {
        field: "query".into(),
        message: format!(
            "the callback's query string is invalid: {}",
            rejection.body_text()
        ),
    })?;
    let binding = oidc_binding(&headers);
    let callback = OidcCallback {
        code: query.code.as_deref(),
        state: query.state.as_deref(),
        error: query.error.as_deref(),
        browser_binding: binding.as_ref(),
    };
    let started = match mdor_service::finish_oidc_sign_in(&state.ctx, &callback).await {
        Ok(started) => started,
        Err(error) => {
            // The sign-in under way is spent either way: the browser's binding goes too.
            let mut response = sign_in_error(error).into_response();
            response
                .headers_mut()
                .append(header::SET_COOKIE, clear_oidc_cookie());
            return Ok(response);
        }
    };
    let mut response = (StatusCode::OK, SIGNED_IN_PAGE).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.append(header::SET_COOKIE, clear_oidc_cookie());
    set_session_cookie(&mut response, &started);
    Ok(response)
}

fn limit(state: &AppState, address: std::net::IpAddr) -> Result<(), ApiError> {
    state
        .sign_in_limiter
        .check(address, Instant::now())
        .map_err(|retry_after_seconds| ApiError::TooManyRequests {
            retry_after_seconds,
        })
}

fn redirect_to_provider(started: &OidcStart) -> Response {
    let Ok(location) = HeaderValue::from_str(&started.authorization_url) else {
        // The URL was built by `url::Url`, which percent-encodes everything a header forbids.
        tracing::error!("the identity provider's authorization url is not a header value");
        return ApiError::Internal.into_response();
    };
    let max_age = mdor_service::oidc::SIGN_IN_TIMEOUT.num_seconds();
    let mut response = StatusCode::FOUND.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::SET_COOKIE,
        oidc_cookie(&started.browser_binding, max_age),
    );
    response
}
