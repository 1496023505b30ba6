//! Manufacturers and researchers never receive direct identifiers: every route the policy
//! lets them reach answers with response types whose schema (in the committed OpenAPI
//! document, with every `$ref` followed) has no identifying property, and a manufacturer
//! reading its own devices' report gets a body whose every key is in that schema, so the
//! schema cannot hide what is sent. A manufacturer reads no other manufacturer's report.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};

use mdor_domain::OdsCode;
use mdor_service::accounts::{AccountRequest, Username};
use mdor_service::policy::{Action, allows_some};
use mdor_service::{AccountRole, NewOrganisation, OrganisationKind, SignInRequest};
use mdor_web::{RoutePolicy, WebSettings};

use crate::support::{TestApp, backends, nhs, procedure_body, spawn_app};

/// Properties that name or locate a person, or a record a person could be found by.
const IDENTIFYING: [&str; 12] = [
    "nhs_number",
    "family_name",
    "given_name",
    "date_of_birth",
    "postcode",
    "address",
    "patient",
    "patient_id",
    "local_record_id",
    "email",
    "telephone",
    "date_of_death",
];

fn openapi() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every property name reachable from `schema`, following `$ref`s once each.
fn property_names(
    document: &Value,
    schema: &Value,
    seen: &mut BTreeSet<String>,
    out: &mut BTreeSet<String>,
) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                let name = reference
                    .trim_start_matches("#/components/schemas/")
                    .to_string();
                if seen.insert(name.clone()) {
                    property_names(
                        document,
                        &document["components"]["schemas"][&name],
                        seen,
                        out,
                    );
                }
            }
            if let Some(Value::Object(properties)) = map.get("properties") {
                out.extend(properties.keys().cloned());
            }
            for value in map.values() {
                property_names(document, value, seen, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                property_names(document, item, seen, out);
            }
        }
        _ => {}
    }
}

/// The property names of a route's successful responses.
fn response_properties(document: &Value, method: &str, path: &str) -> BTreeSet<String> {
    let operation = &document["paths"][path][method.to_lowercase()];
    assert!(
        operation.is_object(),
        "{method} {path} is not in the OpenAPI document"
    );
    let mut out = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for (status, response) in operation["responses"].as_object().unwrap() {
        if status.starts_with('2') {
            property_names(document, response, &mut seen, &mut out);
        }
    }
    out
}

fn identifying(properties: &BTreeSet<String>) -> Vec<&str> {
    IDENTIFYING
        .into_iter()
        .filter(|name| properties.contains(*name))
        .collect()
}

#[test]
fn every_route_a_manufacturer_or_researcher_may_reach_answers_without_direct_identifiers() {
    let document = openapi();
    let mut checked = Vec::new();
    for declared in mdor_web::ROUTE_POLICIES {
        let RoutePolicy::Action(action) = declared.policy else {
            continue;
        };
        if !(allows_some(AccountRole::Manufacturer, action)
            || allows_some(AccountRole::Researcher, action))
        {
            continue;
        }
        let properties = response_properties(&document, declared.method, declared.path);
        assert!(
            !properties.is_empty(),
            "{} {} has no typed response to check",
            declared.method,
            declared.path
        );
        assert_eq!(
            identifying(&properties),
            Vec::<&str>::new(),
            "{} {}",
            declared.method,
            declared.path
        );
        checked.push((declared.method, declared.path, action));
    }
    // The walk covers the register, the manufacturer's report and research extracts at least.
    assert!(
        checked.iter().any(|c| c.2 == Action::ReadDevice),
        "{checked:?}"
    );
    assert!(
        checked.iter().any(|c| c.2 == Action::ReadFeedbackReport),
        "{checked:?}"
    );
    assert!(
        checked.iter().any(|c| c.2 == Action::ExtractResearch),
        "{checked:?}"
    );
    // And it can fail: an identifiable route's schema is caught by the same check.
    let procedure = response_properties(&document, "GET", "/api/v1/procedures/{id}");
    assert!(
        identifying(&procedure).contains(&"nhs_number"),
        "{procedure:?}"
    );
}

/// Every key in a JSON value, at any depth.
fn keys(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                out.insert(key.clone());
                keys(inner, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| keys(item, out)),
        _ => {}
    }
}

async fn manufacturer_session(app: &TestApp) -> (String, String) {
    const PASSWORD: &str = "correct horse battery staple 42";
    let account = mdor_service::create_account(
        &app.ctx,
        &AccountRequest {
            username: Username::parse("acme.analyst").unwrap(),
            role: AccountRole::Manufacturer,
            organisation: Some(OdsCode::parse("ACME").unwrap()),
            patient: None,
        },
    )
    .await
    .unwrap();
    let started = mdor_service::sign_in(
        &app.ctx,
        &SignInRequest {
            username: "acme.analyst",
            password: &account.initial_password,
            second_factor: &account.backup_codes[0],
            new_password: Some(PASSWORD),
        },
    )
    .await
    .unwrap();
    (
        format!("{}={}", mdor_web::SESSION_COOKIE, started.secret.expose()),
        started.secret.csrf_token(),
    )
}

#[tokio::test]
async fn a_manufacturer_reads_the_report_on_its_own_devices_only_and_it_names_no_patient() {
    for backend in backends() {
        let app = spawn_app(backend)
            .await
            .with_accounts(WebSettings::default(), chrono::Utc::now);
        // The organisation's name is the register's manufacturer (support's register CSV).
        mdor_service::ensure_organisations(
            &app.ctx,
            &[NewOrganisation {
                ods_code: OdsCode::parse("ACME").unwrap(),
                name: "Acme Orthopaedics".into(),
                kind: OrganisationKind::Manufacturer,
                region: None,
            }],
        )
        .await
        .unwrap();
        let mut planted = Vec::new();
        for k in 0..3 {
            let nhs_number = nhs(700 + k);
            let reply = app
                .post(
                    "/api/v1/procedures",
                    &app.provider,
                    &procedure_body(&nhs_number, &format!("MAN-{k}")),
                    None,
                )
                .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
            planted.push(nhs_number);
        }
        let (cookie, _csrf) = manufacturer_session(&app).await;
        let get = |uri: String| {
            let request = Request::get(uri)
                .header("cookie", cookie.as_str())
                .body(Body::empty())
                .unwrap();
            app.send(request)
        };
        let own =
            get("/api/v1/reports/feedback?kind=manufacturer&subject=Acme%20Orthopaedics".into())
                .await;
        assert_eq!(own.status, StatusCode::OK, "{}", own.body);
        assert_eq!(own.body["subject_kind"], "manufacturer");
        assert_eq!(own.body["subject"], "Acme Orthopaedics");
        let text = own.body.to_string();
        for nhs_number in &planted {
            assert!(!text.contains(nhs_number.as_str()));
        }
        assert!(!text.contains("MAN-0"), "a local record id in {text}");
        // Every key sent is one the schema declares, so the schema check above covers it.
        let document = openapi();
        let declared = response_properties(&document, "GET", "/api/v1/reports/feedback");
        let mut sent = BTreeSet::new();
        keys(&own.body, &mut sent);
        let undeclared: Vec<&String> = sent.difference(&declared).collect();
        assert!(
            undeclared.is_empty(),
            "sent but not in the schema: {undeclared:?}"
        );

        for uri in [
            "/api/v1/reports/feedback?kind=manufacturer&subject=Other%20Implants",
            "/api/v1/reports/feedback?kind=provider&subject=RA1",
            "/api/v1/reports/feedback?kind=provider&subject=ACME",
        ] {
            let refused = get(uri.to_string()).await;
            assert_eq!(
                refused.status,
                StatusCode::FORBIDDEN,
                "{uri}: {}",
                refused.body
            );
        }
        let procedure = get("/api/v1/procedures/1".into()).await;
        assert_eq!(procedure.status, StatusCode::FORBIDDEN);
        assert_eq!(procedure.body["code"], json!("forbidden"));
    }
}
