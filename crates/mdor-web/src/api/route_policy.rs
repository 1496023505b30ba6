//! Every route's declared policy, in one table: the service `Action` its handler is judged by
//! (`mdor_service::policy::POLICIES` says which roles may do it, in which relationship to the
//! organisation), or one of the two markers for routes that touch no records: public (health,
//! this API's description, sign-in by password or through the identity provider) and the
//! caller's own session.
//!
//! Deny by default: `require_declared_policy` refuses a request to any route missing from
//! `ROUTE_POLICIES` before its handler runs, and `tests/it/route_policies.rs` fails when a
//! route in the OpenAPI document (or the short list of routes outside it) has no row here.

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use mdor_service::policy::Action;

use crate::error::ApiError;
use RoutePolicy::{OwnSession, Public};

/// What a route is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutePolicy {
    /// Anyone, signed in or not: nothing the registry holds on anyone is read or changed.
    Public,
    /// The caller's own session (its sign-out, step-up, list and revocation, and its
    /// account's passkeys and security keys); a bearer token has none.
    OwnSession,
    /// A use case judged by the service's policy for this action.
    Action(Action),
}

/// One route: its method and path template, as the router and the OpenAPI document write them.
#[derive(Debug, Clone, Copy)]
pub struct RouteDeclaration {
    pub method: &'static str,
    pub path: &'static str,
    pub policy: RoutePolicy,
}

const fn route(method: &'static str, path: &'static str, policy: RoutePolicy) -> RouteDeclaration {
    RouteDeclaration {
        method,
        path,
        policy,
    }
}

/// Every route the router serves.
pub const ROUTE_POLICIES: &[RouteDeclaration] = &[
    route("GET", "/health", Public),
    route("GET", "/api/v1/openapi.json", Public),
    route("POST", "/api/v1/session", Public),
    route("GET", "/api/v1/session", OwnSession),
    route("DELETE", "/api/v1/session", OwnSession),
    route("POST", "/api/v1/session/reauthenticate", OwnSession),
    route("POST", "/api/v1/session/webauthn", Public),
    route("POST", "/api/v1/session/webauthn/finish", Public),
    route(
        "POST",
        "/api/v1/session/reauthenticate/webauthn",
        OwnSession,
    ),
    route(
        "POST",
        "/api/v1/session/reauthenticate/webauthn/finish",
        OwnSession,
    ),
    route("GET", "/api/v1/session/credentials", OwnSession),
    route("POST", "/api/v1/session/credentials", OwnSession),
    route("POST", "/api/v1/session/credentials/finish", OwnSession),
    route("DELETE", "/api/v1/session/credentials/{id}", OwnSession),
    route("GET", "/api/v1/session/oidc/start", Public),
    route("GET", "/api/v1/session/oidc/callback", Public),
    route("GET", "/api/v1/session/oidc/reauthenticate", OwnSession),
    route("GET", "/api/v1/sessions", OwnSession),
    route("DELETE", "/api/v1/sessions/{id}", OwnSession),
    route(
        "POST",
        "/api/v1/procedures",
        RoutePolicy::Action(Action::RegisterProcedure),
    ),
    route(
        "GET",
        "/api/v1/procedures/{id}",
        RoutePolicy::Action(Action::ReadProcedure),
    ),
    route(
        "GET",
        "/api/v1/procedures/{id}/versions",
        RoutePolicy::Action(Action::ReadProcedureVersions),
    ),
    route(
        "POST",
        "/api/v1/submissions",
        RoutePolicy::Action(Action::CreateSubmission),
    ),
    route(
        "GET",
        "/api/v1/submissions/{id}",
        RoutePolicy::Action(Action::ReadSubmission),
    ),
    route(
        "GET",
        "/api/v1/submissions/{id}/report.ndjson",
        RoutePolicy::Action(Action::ReadSubmissionReport),
    ),
    route(
        "GET",
        "/api/v1/submissions/{id}/report.csv",
        RoutePolicy::Action(Action::ReadSubmissionReport),
    ),
    route(
        "GET",
        "/api/v1/quarantine",
        RoutePolicy::Action(Action::ReadQuarantine),
    ),
    route(
        "POST",
        "/api/v1/quarantine/{id}/resubmit",
        RoutePolicy::Action(Action::ResubmitQuarantined),
    ),
    route(
        "POST",
        "/api/v1/implants/{id}/removals",
        RoutePolicy::Action(Action::RecordRemoval),
    ),
    route(
        "POST",
        "/api/v1/deaths",
        RoutePolicy::Action(Action::RecordDeath),
    ),
    route(
        "POST",
        "/api/v1/devices",
        RoutePolicy::Action(Action::RegisterDevice),
    ),
    route(
        "GET",
        "/api/v1/devices/{udi_di}",
        RoutePolicy::Action(Action::ReadDevice),
    ),
    route(
        "GET",
        "/api/v1/devices/{udi_di}/survivorship",
        RoutePolicy::Action(Action::ReadSurvivorship),
    ),
    route(
        "GET",
        "/api/v1/recall",
        RoutePolicy::Action(Action::RecallSearch),
    ),
    route(
        "POST",
        "/api/v1/patients/timeline",
        RoutePolicy::Action(Action::ReadTimeline),
    ),
    route(
        "POST",
        "/api/v1/patients/access-log",
        RoutePolicy::Action(Action::ReadAccessLog),
    ),
    route(
        "GET",
        "/api/v1/me/timeline",
        RoutePolicy::Action(Action::ReadOwnTimeline),
    ),
    route(
        "GET",
        "/api/v1/me/access-log",
        RoutePolicy::Action(Action::ReadOwnAccessLog),
    ),
    route(
        "GET",
        "/api/v1/accounts",
        RoutePolicy::Action(Action::ListAccounts),
    ),
    route(
        "POST",
        "/api/v1/accounts",
        RoutePolicy::Action(Action::CreateAccount),
    ),
    route(
        "POST",
        "/api/v1/accounts/{username}/disable",
        RoutePolicy::Action(Action::DisableAccount),
    ),
    route(
        "POST",
        "/api/v1/accounts/{username}/enable",
        RoutePolicy::Action(Action::EnableAccount),
    ),
    route(
        "POST",
        "/api/v1/accounts/{username}/reset",
        RoutePolicy::Action(Action::ResetAccountCredentials),
    ),
    route(
        "PUT",
        "/api/v1/accounts/{username}/approver",
        RoutePolicy::Action(Action::DesignateApprover),
    ),
    route(
        "POST",
        "/api/v1/accounts/{username}/oidc-identity",
        RoutePolicy::Action(Action::LinkOidcIdentity),
    ),
    route(
        "GET",
        "/api/v1/research/projects",
        RoutePolicy::Action(Action::ListResearchProjects),
    ),
    route(
        "GET",
        "/api/v1/research/projects/{reference}/extract.ndjson",
        RoutePolicy::Action(Action::ExtractResearch),
    ),
    route(
        "GET",
        "/api/v1/research/projects/{reference}/extract.csv",
        RoutePolicy::Action(Action::ExtractResearch),
    ),
    route(
        "GET",
        "/api/v1/access-reviews",
        RoutePolicy::Action(Action::ReadAccessReviews),
    ),
    route(
        "POST",
        "/api/v1/access-reviews/{id}/decision",
        RoutePolicy::Action(Action::DecideAccessReview),
    ),
    route(
        "GET",
        "/api/v1/reports/feedback",
        RoutePolicy::Action(Action::ReadFeedbackReport),
    ),
    route(
        "GET",
        "/api/v1/providers/{ods}/data-quality",
        RoutePolicy::Action(Action::ReadDataQuality),
    ),
    route(
        "POST",
        "/api/v1/recall-cases",
        RoutePolicy::Action(Action::OpenRecallCase),
    ),
    route(
        "GET",
        "/api/v1/recall-cases/{id}",
        RoutePolicy::Action(Action::ReadRecallCase),
    ),
    route(
        "POST",
        "/api/v1/recall-cases/{id}/refresh",
        RoutePolicy::Action(Action::RefreshRecallCase),
    ),
    route(
        "GET",
        "/api/v1/recall-cases/{id}/patients",
        RoutePolicy::Action(Action::ReadRecallWorklist),
    ),
    route(
        "GET",
        "/api/v1/recall-cases/{id}/worklist.csv",
        RoutePolicy::Action(Action::ExportRecallWorklist),
    ),
    route(
        "POST",
        "/api/v1/recall-cases/{id}/patients/{entry}/status",
        RoutePolicy::Action(Action::UpdateRecallStatus),
    ),
];

/// The declared policy of a route, if it has one. `HEAD` is answered by a `GET` route.
pub fn declared_policy(method: &Method, path: &str) -> Option<RoutePolicy> {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    ROUTE_POLICIES
        .iter()
        .find(|r| r.method == method && r.path == path)
        .map(|r| r.policy)
}

/// Middleware on every route: a route without a declared policy is refused before its handler
/// runs, so one added without a row in `ROUTE_POLICIES` serves nothing.
pub(crate) async fn require_declared_policy(request: Request, next: Next) -> Response {
    let declared = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|path| declared_policy(request.method(), path.as_str()));
    match declared {
        Some(_) => next.run(request).await,
        None => {
            tracing::error!("a route without a declared policy was refused");
            ApiError::Forbidden {
                action: "use a route that declares no policy".into(),
                audited: false,
            }
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_route_without_a_declared_policy_is_refused_and_a_declared_one_is_served() {
        let router: Router = Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/api/v1/undeclared", get(|| async { "secret" }))
            .route_layer(axum::middleware::from_fn(require_declared_policy));
        let status = |uri: &'static str| {
            let router = router.clone();
            async move {
                router
                    .oneshot(Request::get(uri).body(Body::empty()).unwrap())
                    .await
                    .unwrap()
                    .status()
            }
        };
        assert_eq!(status("/health").await, StatusCode::OK);
        assert_eq!(status("/api/v1/undeclared").await, StatusCode::FORBIDDEN);
    }

    #[test]
    fn no_route_is_declared_twice() {
        for (i, a) in ROUTE_POLICIES.iter().enumerate() {
            for b in &ROUTE_POLICIES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {} twice",
                    a.method,
                    a.path
                );
            }
        }
    }
}
