//! Every route declares its policy: each method and path of the committed OpenAPI document, and
//! of the routes outside it, has a row in `mdor_web::ROUTE_POLICIES`, every row names a route
//! that exists in one or the other, and the router serves each row's route (so a row cannot
//! name a route that the router lacks).

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode};

use mdor_web::{ROUTE_POLICIES, RoutePolicy};

use crate::support::{concrete_path, spawn_app};

/// Routes the router serves that the OpenAPI document does not describe.
const NOT_IN_OPENAPI: [(&str, &str); 1] = [("GET", "/api/v1/openapi.json")];

fn openapi_routes() -> BTreeSet<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api/openapi.json");
    let document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut routes = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

#[test]
fn every_route_in_the_openapi_document_and_outside_it_declares_its_policy() {
    let declared: BTreeSet<(String, String)> = ROUTE_POLICIES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    let mut served = openapi_routes();
    assert!(served.len() > 30, "the document lists the routes");
    served.extend(
        NOT_IN_OPENAPI
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string())),
    );
    let undeclared: Vec<_> = served.difference(&declared).collect();
    assert!(
        undeclared.is_empty(),
        "routes without a declared policy: {undeclared:?}"
    );
    let unknown: Vec<_> = declared.difference(&served).collect();
    assert!(
        unknown.is_empty(),
        "policies declared for routes neither in the OpenAPI document nor in NOT_IN_OPENAPI: {unknown:?}"
    );
}

#[tokio::test]
async fn the_router_serves_every_declared_route_and_refuses_unknown_callers_on_record_routes() {
    let app = spawn_app("sqlite").await;
    for route in ROUTE_POLICIES {
        let uri = concrete_path(route.path);
        let request = Request::builder()
            .method(route.method)
            .uri(&uri)
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let reply = app.send(request).await;
        assert_ne!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{} {uri}",
            route.method
        );
        assert_ne!(
            reply.body["code"], "route_not_found",
            "{} {uri}",
            route.method
        );
        // Without credentials only public routes answer anything but 401.
        match route.policy {
            RoutePolicy::Public => assert_ne!(reply.status, StatusCode::UNAUTHORIZED),
            RoutePolicy::OwnSession | RoutePolicy::Action(_) => assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{} {uri}",
                route.method
            ),
        }
    }
}
