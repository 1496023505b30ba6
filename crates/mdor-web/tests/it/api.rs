//! The API's behaviour end to end: authentication, submission, flags, isolation between
//! organisations, idempotency, error shapes, outcomes, recall and the OpenAPI document.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestApp, backends, nhs, procedure_body, spawn_app};

/// Status, error code and field a bad request must get.
type Expected = (StatusCode, &'static str, Option<&'static str>);

async fn create(app: &TestApp, nhs_number: &str, local_id: &str) -> Value {
    let reply = app
        .post(
            "/api/v1/procedures",
            &app.provider,
            &procedure_body(nhs_number, local_id),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body
}

#[tokio::test]
async fn health_is_open_and_names_the_backend() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let reply = app.get("/health", None).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, json!({ "status": "ok", "backend": backend }));
    }
}

#[tokio::test]
async fn every_api_route_refuses_missing_unknown_and_revoked_tokens() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let routes = crate::support::authenticated_routes();
        let revoked = mdor_service::create_token(
            &app.ctx,
            &mdor_domain::OdsCode::parse("RA1").unwrap(),
            mdor_service::Role::ProviderSubmitter,
            "to revoke",
        )
        .await
        .ok()
        .unwrap();
        mdor_service::revoke_token(&app.ctx, revoked.id)
            .await
            .ok()
            .unwrap();
        let fake = format!("mdor_{}", "0".repeat(64));
        for (i, (method, uri)) in routes.into_iter().enumerate() {
            for token in [
                None,
                Some("not-a-token"),
                Some(fake.as_str()),
                Some(revoked.secret.as_str()),
            ] {
                let mut request = Request::builder()
                    .method(method)
                    .uri(&uri)
                    .header("content-type", "application/json");
                if let Some(token) = token {
                    request = request.header("authorization", format!("Bearer {token}"));
                }
                let mut request = request.body(Body::from("{}")).unwrap();
                // Each route from its own address: the walk is more refusals than one
                // address may make before it is throttled (`refusals.rs` tests that limit).
                request.extensions_mut().insert(axum::extract::ConnectInfo(
                    std::net::SocketAddr::from(([10, 0, (i / 256) as u8, (i % 256) as u8], 40_000)),
                ));
                let reply = app.send(request).await;
                assert_eq!(
                    reply.status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {uri} with {token:?}"
                );
                assert_eq!(reply.body["code"], "unauthenticated");
            }
        }
    }
}

#[tokio::test]
async fn a_procedure_round_trips_with_its_devices_and_follow_up_flags() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let created = create(&app, &nhs(1), "LOCAL-1").await;
        let id = created["id"].as_i64().unwrap();
        let read = app
            .get(&format!("/api/v1/procedures/{id}"), Some(&app.provider))
            .await;
        assert_eq!(read.status, StatusCode::OK);
        assert_eq!(read.headers["cache-control"], "no-store");
        assert_eq!(read.body, created);
        let body = &read.body;
        assert_eq!(body["patient"]["nhs_number"], nhs(1));
        assert_eq!(body["procedure_date"], "2024-06-01");
        assert_eq!(body["opcs4_code"], "W37.1");
        assert_eq!(body["consultant"], "1234567");
        let implants = body["implants"].as_array().unwrap();
        assert_eq!(implants.len(), 2);
        assert_eq!(implants[0]["udi_di"], "05012345678900");
        assert_eq!(implants[0]["expiry"], "2027-01-01");
        assert_eq!(implants[0]["entry_type"], "barcode");
        assert_eq!(implants[0]["raw_scan"], "]d2010501234567890017270101");
        assert_eq!(implants[0]["follow_up_flags"], json!([]));
        assert_eq!(implants[1]["entry_type"], "manual");
        assert_eq!(implants[1]["lot"], "LOT7");
        assert_eq!(
            implants[1]["follow_up_flags"],
            json!(["expired_at_implant"])
        );
        assert_eq!(implants[1]["in_register"], true);
    }
}

#[tokio::test]
async fn a_device_missing_from_the_register_is_accepted_and_flagged() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let mut body = procedure_body(&nhs(2), "LOCAL-2");
        body["devices"] = json!([{ "udi_di": "05012345678924" }]);
        let reply = app
            .post("/api/v1/procedures", &app.provider, &body, None)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert_eq!(reply.body["implants"][0]["in_register"], false);
        assert_eq!(
            reply.body["implants"][0]["follow_up_flags"],
            json!(["not_in_register"])
        );
    }
}

#[tokio::test]
async fn another_organisations_procedure_answers_404_but_the_regulator_may_read_it_for_a_stated_purpose()
 {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let id = create(&app, &nhs(3), "LOCAL-3").await["id"]
            .as_i64()
            .unwrap();
        let uri = format!("/api/v1/procedures/{id}");
        let other = app.get(&uri, Some(&app.other_provider)).await;
        assert_eq!(other.status, StatusCode::NOT_FOUND);
        assert_eq!(other.body["code"], "procedure_not_found");
        let absent = app
            .get("/api/v1/procedures/999999", Some(&app.provider))
            .await;
        assert_eq!(
            absent.body, other.body,
            "absent and hidden must look the same"
        );
        let unstated = app.get(&uri, Some(&app.regulator)).await;
        assert_eq!(unstated.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(unstated.body["code"], "purpose_required");
        assert_eq!(unstated.body["field"], "Access-Purpose");
        assert_eq!(
            app.get_for(&uri, &app.regulator, "investigation")
                .await
                .status,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn a_provider_cannot_submit_for_another_organisation_and_a_regulator_cannot_submit() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let body = procedure_body(&nhs(4), "LOCAL-4");
        let reply = app
            .post("/api/v1/procedures", &app.other_provider, &body, None)
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        let reply = app
            .post("/api/v1/procedures", &app.regulator, &body, None)
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert_eq!(app.ctx.counts().await.ok().unwrap().procedures, 0);
    }
}

#[tokio::test]
async fn the_same_idempotency_key_and_body_replay_and_another_body_is_refused() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let body = procedure_body(&nhs(5), "LOCAL-5");
        let first = app
            .post("/api/v1/procedures", &app.provider, &body, Some("key-1"))
            .await;
        assert_eq!(first.status, StatusCode::CREATED);
        let again = app
            .post("/api/v1/procedures", &app.provider, &body, Some("key-1"))
            .await;
        assert_eq!(again.status, StatusCode::CREATED);
        assert_eq!(again.headers["idempotent-replayed"], "true");
        assert_eq!(again.body, first.body);
        let other = procedure_body(&nhs(6), "LOCAL-6");
        let reused = app
            .post("/api/v1/procedures", &app.provider, &other, Some("key-1"))
            .await;
        assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(reused.body["code"], "idempotency_key_reused");
        assert_eq!(app.ctx.counts().await.ok().unwrap().procedures, 1);
        // Without a key, resubmitting the same local record id is a conflict, not a copy.
        let duplicate = app
            .post("/api/v1/procedures", &app.provider, &body, None)
            .await;
        assert_eq!(duplicate.status, StatusCode::CONFLICT);
        assert_eq!(duplicate.body["code"], "duplicate_local_record_id");
        assert_eq!(duplicate.body["field"], "procedure.local_record_id");
    }
}

#[tokio::test]
async fn bad_input_gets_a_4xx_naming_the_field_never_a_500() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let token = app.provider.clone();
        let check = |status: StatusCode, code: &'static str, field: Option<&'static str>| {
            (status, code, field)
        };
        let mut bad_nhs = procedure_body("9990000019", "L");
        bad_nhs["patient"]["nhs_number"] = json!("943 476 5918");
        let mut many = procedure_body(&nhs(7), "L");
        many["patient"]["date_of_birth"] = json!("1950-02-30");
        many["procedure"]["laterality"] = json!("sideways");
        many["devices"] = json!([{ "scan": "]d20105012345678901" }]);
        let mut wrong_type = procedure_body(&nhs(7), "L");
        wrong_type["patient"]["nhs_number"] = json!(12345);
        let mut unknown = procedure_body(&nhs(7), "L");
        unknown["procedure"]["surgeon"] = json!("x");
        let mut both = procedure_body(&nhs(7), "L");
        both["devices"] = json!([{ "scan": "]d2010501234567890017270101", "lot": "A" }]);
        let mut bad_indication = procedure_body(&nhs(8), "L");
        bad_indication["procedure"]["indication"] = json!("Fractured neck of femur");
        let cases: Vec<(Vec<u8>, Expected)> = vec![
            (
                bad_indication.to_string().into_bytes(),
                check(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    Some("procedure.indication"),
                ),
            ),
            (
                bad_nhs.to_string().into_bytes(),
                check(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    Some("patient.nhs_number"),
                ),
            ),
            (
                wrong_type.to_string().into_bytes(),
                check(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_field",
                    Some("patient.nhs_number"),
                ),
            ),
            (
                unknown.to_string().into_bytes(),
                check(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_field",
                    Some("procedure.surgeon"),
                ),
            ),
            (
                both.to_string().into_bytes(),
                check(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    Some("devices[0]"),
                ),
            ),
            (
                b"{\"patient\": ".to_vec(),
                check(StatusCode::BAD_REQUEST, "malformed_json", None),
            ),
            (
                b"[1,2,3]".to_vec(),
                check(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", Some(".")),
            ),
            (
                vec![b' '; mdor_web::MAX_BODY_BYTES + 1],
                check(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", None),
            ),
            (
                many.to_string().into_bytes(),
                check(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    Some("patient.date_of_birth"),
                ),
            ),
        ];
        for (body, (status, code, field)) in cases {
            let reply = app.post_raw("/api/v1/procedures", &token, body, None).await;
            assert_eq!(
                (reply.status, reply.body["code"].as_str().unwrap()),
                (status, code),
                "{}",
                reply.body
            );
            if let Some(field) = field {
                assert_eq!(reply.body["field"], field, "{}", reply.body);
            }
        }
        let many_reply = app.post("/api/v1/procedures", &token, &many, None).await;
        let fields: Vec<&str> = many_reply.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "patient.date_of_birth",
                "procedure.laterality",
                "devices[0].scan"
            ],
            "every problem is reported at once"
        );
        let bad_check = app.post("/api/v1/procedures", &token, &bad_nhs, None).await;
        assert_eq!(bad_check.body["errors"][0]["code"], "invalid_check_digit");
        let text = Request::post("/api/v1/procedures")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "text/plain")
            .body(Body::from("hello"))
            .unwrap();
        assert_eq!(
            app.send(text).await.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            app.get("/api/v1/procedures/abc", Some(&token)).await.body["code"],
            "invalid_parameter"
        );
        assert_eq!(
            app.ctx.counts().await.ok().unwrap().procedures,
            0,
            "nothing was stored from bad input"
        );
    }
}

#[tokio::test]
async fn a_revision_is_recorded_once_and_never_before_its_implant() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let created = create(&app, &nhs(8), "LOCAL-8").await;
        let implant = created["implants"][0]["id"].as_i64().unwrap();
        let uri = format!("/api/v1/implants/{implant}/removals");
        let early = json!({ "nhs_number": nhs(8), "kind": "revision", "removal_date": "2024-05-31", "reason": "loosening" });
        let reply = app.post(&uri, &app.provider, &early, None).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(reply.body["errors"][0]["code"], "removal_before_implant");
        let wrong_patient =
            json!({ "nhs_number": nhs(9), "kind": "revision", "removal_date": "2025-01-10" });
        assert_eq!(
            app.post(&uri, &app.provider, &wrong_patient, None)
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        // A different provider that knows the patient may record the revision it performed.
        let good = json!({ "nhs_number": nhs(8), "kind": "revision", "removal_date": "2025-01-10", "reason": "aseptic loosening" });
        let reply = app
            .post(&uri, &app.other_provider, &good, Some("rev-1"))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        let replay = app
            .post(&uri, &app.other_provider, &good, Some("rev-1"))
            .await;
        assert_eq!(replay.body, reply.body);
        let again = app.post(&uri, &app.provider, &good, None).await;
        assert_eq!(again.status, StatusCode::CONFLICT);
        assert_eq!(again.body["code"], "implant_already_removed");
        let read = app
            .get(
                &format!("/api/v1/procedures/{}", created["id"]),
                Some(&app.provider),
            )
            .await;
        let removal = &read.body["implants"][0]["removal"];
        assert_eq!(removal["kind"], "revision");
        assert_eq!(removal["removal_date"], "2025-01-10");
        assert_eq!(removal["revising_provider"], "RB2");
        assert_eq!(read.body["implants"][1]["removal"], Value::Null);
    }
}

#[tokio::test]
async fn a_death_is_checked_against_the_record_and_only_a_treating_provider_may_report_it() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        create(&app, &nhs(10), "LOCAL-10").await;
        let before = json!({ "nhs_number": nhs(10), "date_of_death": "2024-01-01" });
        let reply = app
            .post("/api/v1/deaths", &app.provider, &before, None)
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(reply.body["errors"][0]["code"], "death_before_procedure");
        let good = json!({ "nhs_number": nhs(10), "date_of_death": "2025-02-01" });
        assert_eq!(
            app.post("/api/v1/deaths", &app.other_provider, &good, None)
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.post("/api/v1/deaths", &app.provider, &good, None)
                .await
                .status,
            StatusCode::CREATED
        );
        let conflicting = json!({ "nhs_number": nhs(10), "date_of_death": "2025-03-01" });
        assert_eq!(
            app.post("/api/v1/deaths", &app.provider, &conflicting, None)
                .await
                .body["code"],
            "death_already_recorded"
        );
        assert_eq!(app.ctx.counts().await.ok().unwrap().deaths, 1);
    }
}

#[tokio::test]
async fn the_regulator_finds_every_patient_with_a_recalled_lot_and_pages_through_them() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        for k in 0..5 {
            create(&app, &nhs(20 + k), &format!("R-{k}")).await;
        }
        let forbidden = app
            .get("/api/v1/recall?udi_di=05012345678917", Some(&app.provider))
            .await;
        assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
        let page1 = app
            .get_for(
                "/api/v1/recall?udi_di=05012345678917&lot=LOT7&limit=3",
                &app.regulator,
                "recall",
            )
            .await;
        assert_eq!(page1.status, StatusCode::OK, "{}", page1.body);
        assert_eq!(page1.headers["cache-control"], "no-store");
        let rows = page1.body["implants"].as_array().unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0]["provider"], "RA1");
        assert_eq!(rows[0]["nhs_number"], nhs(20));
        let after = page1.body["next_after"].as_i64().unwrap();
        let page2 = app
            .get_for(
                &format!("/api/v1/recall?udi_di=05012345678917&lot=LOT7&limit=3&after={after}"),
                &app.regulator,
                "recall",
            )
            .await;
        let rest: Vec<&str> = page2.body["implants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["nhs_number"].as_str().unwrap())
            .collect();
        assert_eq!(rest, [nhs(23), nhs(24)]);
        assert_eq!(page2.body["next_after"], Value::Null);
        let none = app
            .get_for(
                "/api/v1/recall?udi_di=05012345678917&lot=OTHER",
                &app.regulator,
                "recall",
            )
            .await;
        assert_eq!(none.body["implants"], json!([]));
        let bad = app
            .get_for(
                "/api/v1/recall?udi_di=05012345678918&implanted_from=2024-13-01",
                &app.regulator,
                "recall",
            )
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        let fields: Vec<&str> = bad.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["udi_di", "implanted_from"]);
        let window = app
            .get_for(
                "/api/v1/recall?udi_di=05012345678900&implanted_from=2024-06-02",
                &app.regulator,
                "recall",
            )
            .await;
        assert_eq!(window.body["implants"], json!([]));
    }
}

#[tokio::test]
async fn devices_are_looked_up_in_the_register() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let found = app
            .get("/api/v1/devices/05012345678900", Some(&app.provider))
            .await;
        assert_eq!(found.status, StatusCode::OK);
        assert_eq!(found.body["model"], "Cup 52mm");
        assert_eq!(found.body["risk_class"], "III");
        assert_eq!(
            app.get("/api/v1/devices/05012345678924", Some(&app.provider))
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        let bad = app
            .get("/api/v1/devices/05012345678901", Some(&app.provider))
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert_eq!(bad.body["field"], "udi_di");
    }
}

#[tokio::test]
async fn a_devices_survivorship_is_reported_to_the_regulator_and_administrators_only() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let mut cups = Vec::new();
        for k in 0..4 {
            let created = create(&app, &nhs(30 + k), &format!("SURV-{k}")).await;
            cups.push(created["implants"][0]["id"].as_i64().unwrap());
        }
        // One of the four cups implanted on 2024-06-01 is revised 365 days later.
        let revision =
            json!({ "nhs_number": nhs(30), "kind": "revision", "removal_date": "2025-06-01" });
        let uri = format!("/api/v1/implants/{}/removals", cups[0]);
        let reply = app.post(&uri, &app.provider, &revision, None).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);

        let uri = "/api/v1/devices/05012345678900/survivorship";
        for token in [&app.regulator, &app.admin] {
            let reply = app.get(uri, Some(token)).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            let body = &reply.body;
            assert_eq!(body["unit"], "implant");
            assert_eq!(body["device_types"], json!(["hip_cup"]));
            assert_eq!(body["n_units"], 4);
            assert_eq!(body["n_revisions"], 1);
            let one = &body["estimates"][0];
            assert_eq!(one["years"], 1);
            assert_eq!(one["n_at_risk"], 3);
            assert_eq!(one["kaplan_meier"]["estimate"], 0.25);
            assert_eq!(one["competing_risks"]["estimate"], 0.25);
            // Follow-up of implants from mid-2024 does not reach 5 years.
            assert_eq!(body["estimates"][2]["years"], 5);
            assert_eq!(body["estimates"][2]["kaplan_meier"], Value::Null);
            // The cup is its class's only model.
            assert_eq!(body["hazard_ratio"], Value::Null);
            assert!(
                body["warnings"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("no other devices in the class: no hazard ratio"))
            );
        }
        let refused = app.get(uri, Some(&app.provider)).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        let unknown = app
            .get(
                "/api/v1/devices/05012345678924/survivorship",
                Some(&app.regulator),
            )
            .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        let bad = app
            .get(
                "/api/v1/devices/05012345678901/survivorship",
                Some(&app.regulator),
            )
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert_eq!(bad.body["field"], "udi_di");
    }
}

#[tokio::test]
async fn only_an_administrator_changes_the_register_and_every_bad_field_is_named() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let entry = json!({
            "udi_di": "05012345678924", "manufacturer": "Acme Orthopaedics", "brand": "Acme",
            "model": "Liner 52", "device_type": "hip_liner", "risk_class": "III", "registry": "njr"
        });
        let refused = app
            .post("/api/v1/devices", &app.provider, &entry, None)
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        let added = app.post("/api/v1/devices", &app.admin, &entry, None).await;
        assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
        assert_eq!(added.body["issuer"], "gs1");
        let found = app
            .get("/api/v1/devices/05012345678924", Some(&app.provider))
            .await;
        assert_eq!(found.body["model"], "Liner 52");
        let mut invalid = entry.clone();
        invalid["risk_class"] = json!("IV");
        invalid["device_type"] = json!("Hip Liner");
        let invalid = app
            .post("/api/v1/devices", &app.admin, &invalid, None)
            .await;
        assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
        let fields: Vec<&str> = invalid.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["device_type", "risk_class"]);
    }
}

#[tokio::test]
async fn the_served_openapi_document_is_the_committed_one() {
    let app = spawn_app("sqlite").await;
    let served = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(served.status, StatusCode::OK);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api/openapi.json");
    let generated = mdor_web::api::openapi_document();
    if std::env::var("UPDATE_OPENAPI").as_deref() == Ok("1") {
        std::fs::write(path, format!("{generated}\n")).unwrap();
    }
    let committed = std::fs::read_to_string(path)
        .expect("docs/api/openapi.json is committed; regenerate with UPDATE_OPENAPI=1");
    assert_eq!(
        committed.trim_end(),
        generated,
        "the OpenAPI document changed: run UPDATE_OPENAPI=1 cargo test -p mdor-web"
    );
    let paths = served.body["paths"].as_object().unwrap();
    for route in [
        "/api/v1/procedures",
        "/api/v1/procedures/{id}",
        "/api/v1/implants/{id}/removals",
        "/api/v1/deaths",
        "/api/v1/devices/{udi_di}",
        "/api/v1/devices",
        "/api/v1/recall",
        "/health",
    ] {
        assert!(paths.contains_key(route), "{route} is documented");
    }
}

#[tokio::test]
async fn a_bad_nhs_check_digit_gets_the_same_code_on_every_route() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        // A valid test-range number with its check digit changed.
        let valid = nhs(3);
        let last = valid.as_bytes()[9] - b'0';
        let bad = format!("{}{}", &valid[..9], (last + 1) % 10);
        let bad = bad.as_str();
        let mut procedure = procedure_body(&nhs(1), "L-1");
        procedure["patient"]["nhs_number"] = json!(bad);
        let requests = [
            (
                "/api/v1/procedures",
                &app.provider,
                procedure,
                "patient.nhs_number",
            ),
            (
                "/api/v1/deaths",
                &app.provider,
                json!({ "nhs_number": bad, "date_of_death": "2025-01-01" }),
                "nhs_number",
            ),
            (
                "/api/v1/patients/timeline",
                &app.regulator,
                json!({ "nhs_number": bad, "purpose": "recall" }),
                "nhs_number",
            ),
        ];
        for (uri, token, body, field) in requests {
            let reply = app.post(uri, token, &body, None).await;
            assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}");
            assert_eq!(reply.body["errors"][0]["field"], field, "{uri}");
            assert_eq!(
                reply.body["errors"][0]["code"], "invalid_check_digit",
                "{uri}: {}",
                reply.body
            );
        }
    }
}
