//! Every audit entry written for an HTTP request names the request's id, the one in its
//! `X-Request-Id` response header and tracing span: a record read, a refused request and a
//! sign-in alike. The id is always the server's own: a client's `X-Request-Id` is replaced,
//! so that no client can make two entries share an id or put its own text in the audit.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use serde_json::json;

use mdor_service::AuditEvent;

use crate::support::{Reply, TestApp, backends, nhs, procedure_body, spawn_app};

/// What a client might send to plant its own id: a value another request used, with text an
/// audit reader could mistake for a field.
const CLIENT_ID: &str = "same-id-for-everything; outcome=ok";

fn response_id(reply: &Reply) -> String {
    let id = reply.headers["x-request-id"].to_str().unwrap().to_string();
    // A v4 UUID in its hyphenated lower-case form.
    let groups: Vec<&str> = id.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    assert_eq!(lengths, [8, 4, 4, 4, 12], "{id}");
    assert!(
        id.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(&groups[2][..1], "4", "{id}");
    id
}

async fn last_entry(app: &TestApp, action: &str) -> AuditEvent {
    let events = app.store.audit_events(None, 10_000).await.unwrap();
    events
        .into_iter()
        .rev()
        .find(|e| e.action == action)
        .unwrap_or_else(|| panic!("no {action} entry"))
}

#[tokio::test]
async fn each_audited_request_names_its_own_server_chosen_id() {
    for backend in backends() {
        let app = spawn_app(backend)
            .await
            .with_accounts(mdor_web::WebSettings::default(), chrono::Utc::now);
        let created = app
            .post(
                "/api/v1/procedures",
                &app.provider,
                &procedure_body(&nhs(1), "R-1"),
                None,
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let path = format!("/api/v1/procedures/{}", created.body["id"]);

        // An identifiable read, sent with a client's own id.
        let read = app
            .get_with(&path, &app.provider, &[("x-request-id", CLIENT_ID)])
            .await;
        assert_eq!(read.status, StatusCode::OK, "{backend}: {}", read.body);
        let read_id = response_id(&read);
        let entry = last_entry(&app, "procedure.read").await;
        assert_eq!(
            entry.request_id.as_deref(),
            Some(read_id.as_str()),
            "{backend}"
        );

        // The same read again is another request with another id.
        let again = app
            .get_with(&path, &app.provider, &[("x-request-id", CLIENT_ID)])
            .await;
        let again_id = response_id(&again);
        assert_ne!(again_id, read_id, "{backend}");
        let entry = last_entry(&app, "procedure.read").await;
        assert_eq!(
            entry.request_id.as_deref(),
            Some(again_id.as_str()),
            "{backend}"
        );

        // A request refused for its unknown token.
        let refused = app
            .get_with(
                &path,
                "mdor_00000000000000000000000000000000000000000000000000000000deadbeef",
                &[("x-request-id", CLIENT_ID)],
            )
            .await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{backend}");
        let entry = last_entry(&app, "request.authenticate").await;
        assert_eq!(
            entry.request_id.as_deref(),
            Some(response_id(&refused).as_str()),
            "{backend}"
        );

        // A failed sign-in: an authentication event, written through the accounts' path.
        let body = json!({ "username": "nobody.here", "password": "not the password at all", "second_factor": "123456" });
        let mut request = Request::post("/api/v1/session")
            .header("content-type", "application/json")
            .header("x-request-id", CLIENT_ID)
            .body(Body::from(body.to_string()))
            .unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 7], 50_000))));
        let signed_in = app.send(request).await;
        assert_eq!(signed_in.status, StatusCode::UNAUTHORIZED, "{backend}");
        let events = app.store.audit_events(None, 10_000).await.unwrap();
        let sign_in = events
            .iter()
            .rev()
            .find(|e| e.purpose == "authentication" && e.action != "request.authenticate")
            .unwrap_or_else(|| panic!("{backend}: no sign-in entry in {events:?}"));
        assert_eq!(
            sign_in.request_id.as_deref(),
            Some(response_id(&signed_in).as_str()),
            "{backend}: {sign_in:?}"
        );

        // No entry holds the client's text, and no two entries share an id.
        assert!(
            events
                .iter()
                .all(|e| e.request_id.as_deref() != Some(CLIENT_ID))
        );
        let mut ids: Vec<&str> = events
            .iter()
            .filter_map(|e| e.request_id.as_deref())
            .collect();
        let written = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), written, "{backend}: an id was reused");
        assert!(written >= 4, "{backend}: {written} entries with an id");
    }
}

#[tokio::test]
async fn work_outside_a_request_writes_entries_without_an_id() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        // The operator's command-line path: the application's own context, no request.
        mdor_service::audit_refusal(
            &app.ctx,
            &mdor_service::RefusedCaller::anonymous(),
            "GET /api/v1/procedures/{id}".into(),
            mdor_service::RefusalOutcome::Unauthenticated,
        )
        .await
        .unwrap();
        let entry = last_entry(&app, "request.authenticate").await;
        assert_eq!(entry.request_id, None, "{backend}");
    }
}
