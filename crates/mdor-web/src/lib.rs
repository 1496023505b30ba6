//! The HTTP face of mdor: a JSON API under `/api/v1` described by OpenAPI, and `/health`.
//!
//! Invariant: handlers parse input into domain types, call one `mdor_service` function and
//! render the result; this crate never names the `Store`, so it cannot bypass the service's
//! permission checks.

pub mod api;
pub mod dto;
mod error;
mod extract;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request, header};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;

use mdor_service::Ctx;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub ctx: Ctx,
}

/// The largest JSON body accepted: a procedure with 50 devices is well under this.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the application with its middleware: request ids, tracing spans without bodies,
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
    let limited = api::routes()
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ));
    // Uploads stream for as long as the file takes; the service enforces their own limit.
    let uploads = api::upload_routes()
        .with_state(state)
        .layer(DefaultBodyLimit::disable());
    limited
        .merge(uploads)
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(trace)
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}
