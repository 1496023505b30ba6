//! The audit of refused requests: every route's responses pass through `audit_refusals`,
//! which writes one audit entry for each 401 and 403 that no use case audited itself (an
//! unknown or ended credential, a policy refusal, a missing step-up, a session without the
//! phishing-resistant factor its role needs, a missing CSRF token). The extractors record who
//! the caller turned out to be in a `RefusalSlot`, so that the entry names them.
//!
//! Anonymous refusals (no credential established anyone) also count against a per-address
//! bucket (`RateLimit::REFUSALS`): beyond it the address gets 429 with `Retry-After` and no
//! entry, so that a client guessing tokens can neither guess fast nor fill the audit.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use mdor_service::{RefusalOutcome, RefusedCaller};

use crate::AppState;
use crate::error::ApiError;
use crate::security::client_address;

/// Who a request's credential established, filled in by the extractors.
#[derive(Clone, Default)]
pub(crate) struct RefusalSlot(Arc<Mutex<Option<RefusedCaller>>>);

impl RefusalSlot {
    /// Records the caller in the request's slot, if the request passed `audit_refusals`.
    pub(crate) fn record(parts: &Parts, caller: RefusedCaller) {
        if let Some(slot) = parts.extensions.get::<RefusalSlot>() {
            // A poisoned lock only means another holder panicked; the value is still whole.
            let mut held = slot
                .0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            *held = Some(caller);
        }
    }

    fn take(&self) -> RefusedCaller {
        let mut held = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        held.take().unwrap_or_else(RefusedCaller::anonymous)
    }
}

/// Writes the audit entry of a refusal the handler's response is marked with.
pub(crate) async fn audit_refusals(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let slot = RefusalSlot::default();
    request.extensions_mut().insert(slot.clone());
    // The route template, never the path: paths hold record ids.
    let resource = format!(
        "{} {}",
        request.method(),
        request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str)
    );
    let address = client_address(
        request.headers(),
        request
            .extensions()
            .get::<ConnectInfo<std::net::SocketAddr>>(),
        state.settings.trusted_proxy,
    );
    let ctx = state.ctx_for(request.headers());
    let response = next.run(request).await;
    let Some(outcome) = response.extensions().get::<RefusalOutcome>().copied() else {
        return response;
    };
    let caller = slot.take();
    if caller.is_anonymous()
        && let Err(retry_after_seconds) = state.refusal_limiter.check(address, Instant::now())
    {
        return ApiError::TooManyRequests {
            retry_after_seconds,
        }
        .into_response();
    }
    if let Err(error) = mdor_service::audit_refusal(&ctx, &caller, resource, outcome).await {
        // The request is refused either way and nothing was read; the failure to record the
        // refusal is the operator's to see.
        tracing::error!(error = %error, "could not audit a refused request");
    }
    response
}
