//! Extractors: the caller's principal from a bearer token or a session cookie (with the CSRF
//! check for cookies), the caller's own session, the client's address, JSON bodies whose
//! errors name the field, and the `Idempotency-Key` header with a hash of the body.
//!
//! This is the only place a session cookie is read, so no route can accept one for a
//! state-changing request without its CSRF token; it also reads the cookie that binds an
//! OpenID Connect sign-in under way to its browser. A request with an `Authorization` header
//! is judged by that header alone: its cookie, if any, is ignored, and it needs no CSRF
//! token, since a browser never adds a bearer token to a cross-site request by itself.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use mdor_service::{
    IdempotencyRequest, OidcBrowserBinding, Principal, RefusedCaller, SessionCaller, SessionSecret,
    authenticate, authenticate_session,
};

use crate::AppState;
use crate::api::refusals::RefusalSlot;
use crate::error::ApiError;
use crate::security::client_address;

/// The session cookie. `__Host-` makes browsers refuse it unless it is `Secure`, has
/// `Path=/` and no `Domain`, so no other host (a sibling subdomain) can set or shadow it.
pub const SESSION_COOKIE: &str = "__Host-mdor_session";
/// The cookie binding an OpenID Connect sign-in under way to the browser that started it
/// (it holds the PKCE verifier). `SameSite=Lax`, unlike the session cookie: it must come back
/// with the callback, a top-level navigation from the identity provider's site.
pub const OIDC_COOKIE: &str = "__Host-mdor_oidc";
/// The header a state-changing request made with a session carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The authenticated caller.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or(ApiError::Unauthenticated)?;
            let principal = authenticate(&state.ctx_for(&parts.headers), token.trim()).await?;
            RefusalSlot::record(parts, RefusedCaller::of_principal(&principal));
            return Ok(Caller(principal));
        }
        let session = session_from_cookie(parts, state).await?;
        RefusalSlot::record(parts, RefusedCaller::of_session(&session.caller));
        // Every account role has a principal; the policy decides what each may do.
        let principal = session
            .caller
            .principal(&state.ctx_for(&parts.headers))
            .await?;
        RefusalSlot::record(parts, RefusedCaller::of_principal(&principal));
        Ok(Caller(principal))
    }
}

/// The caller's own session, for the routes that manage it; bearer tokens have none.
pub struct SessionAuth {
    pub caller: SessionCaller,
    pub secret: SessionSecret,
}

impl FromRequestParts<AppState> for SessionAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let session = session_from_cookie(parts, state).await?;
        RefusalSlot::record(parts, RefusedCaller::of_session(&session.caller));
        Ok(session)
    }
}

/// The application state as one request sees it: `ctx` is `AppState::ctx_for` the request,
/// so that every audit entry a handler's use case writes names the request's id. Handlers
/// take this rather than `State<AppState>`.
pub struct RequestState {
    pub ctx: mdor_service::Ctx,
    pub app: AppState,
}

impl FromRequestParts<AppState> for RequestState {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, std::convert::Infallible> {
        Ok(RequestState {
            ctx: state.ctx_for(&parts.headers),
            app: state.clone(),
        })
    }
}

/// The client's address, for per-address limits (`security::client_address`).
pub struct ClientAddress(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(ClientAddress(client_address(
            &parts.headers,
            peer,
            state.settings.trusted_proxy,
        )))
    }
}

/// The `Set-Cookie` value that gives the browser a session for `max_age_seconds`.
pub fn session_cookie(secret: &SessionSecret, max_age_seconds: i64) -> HeaderValue {
    let value = format!(
        "{SESSION_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
        secret.expose(),
        max_age_seconds.max(0)
    );
    // The secret is prefix and hex, the rest ASCII: always a valid header value.
    HeaderValue::from_str(&value).unwrap_or_else(|_| clear_session_cookie())
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_session_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "__Host-mdor_session=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
    )
}

/// The `Set-Cookie` value that binds a sign-in under way to this browser for
/// `max_age_seconds`.
pub fn oidc_cookie(binding: &OidcBrowserBinding, max_age_seconds: i64) -> HeaderValue {
    let value = format!(
        "{OIDC_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={}",
        binding.expose(),
        max_age_seconds.max(0)
    );
    // A binding is RFC 7636 unreserved characters, the rest ASCII: always a valid header value.
    HeaderValue::from_str(&value).unwrap_or_else(|_| clear_oidc_cookie())
}

/// The `Set-Cookie` value that removes the OpenID Connect binding cookie.
pub fn clear_oidc_cookie() -> HeaderValue {
    HeaderValue::from_static("__Host-mdor_oidc=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0")
}

/// The OpenID Connect binding the browser sent, if any well-formed one.
pub fn oidc_binding(headers: &HeaderMap) -> Option<OidcBrowserBinding> {
    cookie_value(headers, OIDC_COOKIE).and_then(OidcBrowserBinding::parse)
}

/// The session named by the request's cookie. For a state-changing method the CSRF token is
/// checked first, before the store is asked anything.
async fn session_from_cookie(parts: &Parts, state: &AppState) -> Result<SessionAuth, ApiError> {
    let secret = cookie_secret(&parts.headers).ok_or(ApiError::Unauthenticated)?;
    if changes_state(&parts.method) {
        let presented = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|value| value.to_str().ok())
            .ok_or(ApiError::CsrfTokenInvalid)?;
        if !secret.csrf_token_matches(presented.trim()) {
            return Err(ApiError::CsrfTokenInvalid);
        }
    }
    let caller = authenticate_session(&state.ctx_for(&parts.headers), &secret).await?;
    Ok(SessionAuth { caller, secret })
}

/// Every method but the safe ones (RFC 9110 §9.2.1) may change state.
fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn cookie_secret(headers: &HeaderMap) -> Option<SessionSecret> {
    cookie_value(headers, SESSION_COOKIE).and_then(SessionSecret::parse)
}

/// The value of the first cookie called `wanted` in the request's `Cookie` headers.
fn cookie_value<'a>(headers: &'a HeaderMap, wanted: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == wanted)
        .map(|(_, value)| value.trim())
}

/// A JSON body, for requests that are not creations (no idempotency key).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let JsonCreate { body, .. } = JsonCreate::from_request(request, state).await?;
        Ok(JsonBody(body))
    }
}

/// A JSON body and, when the client sent one, its idempotency key with the body's hash.
pub struct JsonCreate<T> {
    pub body: T,
    pub idempotency: Option<IdempotencyRequest>,
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonCreate<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let key = request
            .headers()
            .get("idempotency-key")
            .map(|v| v.to_str().map(str::to_string).map_err(|_| invalid_key()))
            .transpose()?;
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::MalformedJson(rejection.body_text())
                }
            })?;
        let body = parse_json(&bytes)?;
        let idempotency = match key {
            Some(key) => Some(IdempotencyRequest::new(
                &key,
                hex::encode(Sha256::digest(&bytes)),
            )?),
            None => None,
        };
        Ok(JsonCreate { body, idempotency })
    }
}

fn invalid_key() -> ApiError {
    ApiError::BadParameter {
        field: "Idempotency-Key".into(),
        message: "Idempotency-Key must be printable ASCII".into(),
    }
}

/// Deserialises JSON, reporting the path of the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde would read a struct from a JSON array by position; every body here is an object.
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        None => return Err(ApiError::MalformedJson("request body is empty".into())),
        Some(_) => {
            return Err(ApiError::InvalidField {
                field: ".".into(),
                message: "request body must be a json object".into(),
            });
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::MalformedJson(format!("request body is not valid json: {inner}"))
        } else {
            ApiError::InvalidField {
                field,
                message: inner.to_string(),
            }
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::MalformedJson(format!("trailing characters after json: {e}")))?;
    Ok(value)
}
