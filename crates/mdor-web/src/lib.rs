//! The HTTP face of mdor: a JSON API under `/api/v1` described by OpenAPI, and `/health`.
//! Callers are systems with bearer tokens or people with a session cookie from
//! `POST /api/v1/session` (`api::sessions`).
//!
//! Invariant: handlers parse input into domain types, call one `mdor_service` function and
//! render the result; this crate never names the `Store`, so it cannot bypass the service's
//! permission checks.

mod access_headers;
pub mod api;
pub mod dto;
mod error;
mod extract;
pub mod rate_limit;
pub mod security;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderName, Request};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use access_headers::{ACCESS_PURPOSE_HEADER, BREAK_GLASS_REASON_HEADER};
pub use api::route_policy::{ROUTE_POLICIES, RouteDeclaration, RoutePolicy};
pub use error::ApiError;
pub use extract::{CSRF_HEADER, SESSION_COOKIE};
pub use rate_limit::RateLimit;
pub use security::WebSettings;

use mdor_service::{Ctx, RequestId};

use crate::rate_limit::RateLimiter;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub ctx: Ctx,
    pub settings: WebSettings,
    /// Sign-in attempts per client address, shared by every request.
    sign_in_limiter: Arc<RateLimiter>,
    /// Refused anonymous requests per client address (`api::refusals`).
    refusal_limiter: Arc<RateLimiter>,
}

impl AppState {
    pub fn new(ctx: Ctx, settings: WebSettings) -> AppState {
        AppState {
            ctx,
            sign_in_limiter: Arc::new(RateLimiter::new(settings.sign_in_limit)),
            refusal_limiter: Arc::new(RateLimiter::new(RateLimit::REFUSALS)),
            settings,
        }
    }
}

/// The largest JSON body accepted: a procedure with 50 devices is well under this.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

impl AppState {
    /// The service context for the request with these headers: it names the request's id,
    /// so that every audit entry the request writes carries it.
    pub(crate) fn ctx_for(&self, headers: &HeaderMap) -> Ctx {
        match request_id(headers) {
            Some(id) => self.ctx.for_request(id),
            None => self.ctx.clone(),
        }
    }
}

/// The id `SetRequestIdLayer` gave the request: always one the server generated, since a
/// client's own `X-Request-Id` is removed first (`router`).
fn request_id(headers: &HeaderMap) -> Option<RequestId> {
    headers
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .and_then(RequestId::parse)
}

/// Builds the application with its middleware: request ids (the server's own, never the
/// client's), tracing spans without bodies,
/// body limits and security headers.
pub fn router(state: AppState) -> Router {
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
        let route = request
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        let request_id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
        // Only the route template is logged, never the path with its identifiers.
        tracing::info_span!("request", method = %request.method(), route = %route, request_id = %request_id)
    });
    // Every refused request is audited, around the route-policy check and the handler.
    let refusals =
        || axum::middleware::from_fn_with_state(state.clone(), api::refusals::audit_refusals);
    let limited = api::routes()
        .route_layer(refusals())
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ));
    // Uploads stream for as long as the file takes; the service enforces their own limit.
    let settings = state.settings.clone();
    let uploads = api::upload_routes()
        .route_layer(refusals())
        .with_state(state)
        .layer(DefaultBodyLimit::disable());
    limited
        .merge(uploads)
        .layer(axum::middleware::from_fn_with_state(
            settings,
            security::security_headers,
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(trace)
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        // Outermost: a client's own id is dropped before one is set, since the audit relies
        // on ids being unique and chosen by the server; a caller correlates through the id
        // returned in the response.
        .layer(axum::middleware::map_request(
            |mut request: Request<axum::body::Body>| async move {
                request.headers_mut().remove(&REQUEST_ID);
                request
            },
        ))
}
