//! Refused requests in the audit: an unknown credential and a refusal by the policy each
//! write one entry naming the route template and, where known, the caller; a refusal the use
//! case audited itself is not written twice; and an address that keeps presenting unknown
//! credentials is answered 429 beyond its burst, adding nothing more to the audit.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};

use mdor_service::AuditEvent;

use crate::support::{TestApp, backends, spawn_app};

const UNKNOWN_TOKEN: &str = "mdor_00000000000000000000000000000000000000000000000000000000deadbeef";

async fn audit(app: &TestApp) -> Vec<AuditEvent> {
    app.store.audit_events(None, 100_000).await.unwrap()
}

async fn get_from(app: &TestApp, uri: &str, token: &str, address: [u8; 4]) -> StatusCode {
    let mut request = Request::get(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((address, 40_000))));
    app.send(request).await.status
}

#[tokio::test]
async fn every_refused_request_is_audited_once_with_its_route_and_caller() {
    for backend in backends() {
        let app = spawn_app(backend).await;

        // An unknown token: one entry, anonymous, naming the route template only.
        let before = audit(&app).await.len();
        let reply = app
            .get("/api/v1/procedures/12345", Some(UNKNOWN_TOKEN))
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        let added = audit(&app).await.split_off(before);
        assert_eq!(added.len(), 1, "{added:?}");
        let entry = &added[0];
        assert_eq!(
            (
                entry.action.as_str(),
                entry.outcome.as_str(),
                entry.role.as_str(),
                entry.purpose.as_str()
            ),
            (
                "request.authenticate",
                "unauthenticated",
                "unknown",
                "authentication"
            )
        );
        assert_eq!(entry.resource, "GET /api/v1/procedures/{id}");
        assert_eq!(entry.organisation_ods, "MDOR");
        assert_eq!(entry.token, None);

        // A provider's token on administration: one entry naming the token and its role.
        let before = audit(&app).await.len();
        let entry_body = serde_json::json!({
            "udi_di": "05012345678924", "manufacturer": "Acme", "brand": "Acme",
            "model": "Liner", "device_type": "hip_liner", "risk_class": "III", "registry": "njr"
        });
        let reply = app
            .post("/api/v1/devices", &app.provider, &entry_body, None)
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        let added = audit(&app).await.split_off(before);
        assert_eq!(added.len(), 1, "{added:?}");
        let entry = &added[0];
        assert_eq!(
            (entry.action.as_str(), entry.outcome.as_str()),
            ("request.authorise", "forbidden")
        );
        assert_eq!(entry.resource, "POST /api/v1/devices");
        assert_eq!(entry.organisation_ods, "RA1");
        assert_eq!(entry.role, "provider_submitter");
        assert!(entry.token.is_some());

        // A recall query by a provider is refused and audited by the use case, with its
        // query: still one entry, the use case's.
        let before = audit(&app).await.len();
        let reply = app
            .get("/api/v1/recall?udi_di=05012345678900", Some(&app.provider))
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        let added = audit(&app).await.split_off(before);
        assert_eq!(added.len(), 1, "{added:?}");
        assert_eq!(added[0].outcome, "denied");
        assert_ne!(added[0].action, "request.authorise");

        // An allowed request adds no refusal entry.
        let before = audit(&app).await.len();
        let reply = app
            .get("/api/v1/devices/05012345678900", Some(&app.provider))
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(
            audit(&app)
                .await
                .split_off(before)
                .iter()
                .all(|e| !e.action.starts_with("request."))
        );
    }
}

#[tokio::test]
async fn an_address_presenting_unknown_tokens_gets_429_beyond_its_burst_and_fills_no_more_audit() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let burst = mdor_web::RateLimit::REFUSALS.burst as usize;
        let refused_before = audit(&app)
            .await
            .iter()
            .filter(|e| e.action == "request.authenticate")
            .count();
        // The burst is answered 401 and audited; then 429s come, with Retry-After. The
        // bucket refills one a second, so on a slow engine a few more 401s may slip in before
        // the first 429: count them rather than assume none.
        let mut unauthorised = 0;
        let mut limited = None;
        for attempt in 0..burst * 2 {
            let mut request = Request::get("/api/v1/devices/05012345678900")
                .header("authorization", format!("Bearer {UNKNOWN_TOKEN}"))
                .body(Body::empty())
                .unwrap();
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::from(([198, 51, 100, 9], 40_000))));
            let reply = app.send(request).await;
            match reply.status {
                StatusCode::UNAUTHORIZED => unauthorised += 1,
                StatusCode::TOO_MANY_REQUESTS => {
                    assert!(attempt >= burst, "limited after only {attempt}");
                    limited = Some(reply);
                    break;
                }
                other => panic!("unexpected {other}"),
            }
        }
        let limited = limited.expect("no 429 within twice the burst");
        assert!(limited.headers.contains_key("retry-after"));
        assert_eq!(limited.body["code"], "too_many_requests");
        // Another address is still answered, and audited.
        assert_eq!(
            get_from(
                &app,
                "/api/v1/devices/05012345678900",
                UNKNOWN_TOKEN,
                [198, 51, 100, 10]
            )
            .await,
            StatusCode::UNAUTHORIZED
        );
        // A valid token from the limited address is not refused: only refusals count.
        assert_eq!(
            get_from(
                &app,
                "/api/v1/devices/05012345678900",
                &app.provider,
                [198, 51, 100, 9]
            )
            .await,
            StatusCode::OK
        );
        let refused = audit(&app)
            .await
            .iter()
            .filter(|e| e.action == "request.authenticate")
            .count();
        // One entry per 401 (the other address's included), none for the 429.
        assert_eq!(refused - refused_before, unauthorised + 1);
    }
}
