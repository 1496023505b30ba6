//! The patient timeline over HTTP on every backend: every procedure of a patient across
//! providers, with register details, removals and recall cases; visible to treating
//! providers for direct care and to the regulator for a stated purpose; every request audited,
//! refusals and misses included.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::{TestApp, backends, nhs, procedure_body, spawn_app};

async fn submit(
    app: &TestApp,
    provider: &str,
    k: u32,
    local: &str,
    date: &str,
) -> serde_json::Value {
    let mut body = procedure_body(&nhs(k), local);
    body["procedure"]["provider"] = json!(provider);
    body["procedure"]["procedure_date"] = json!(date);
    let token = if provider == "RA1" {
        &app.provider
    } else {
        &app.other_provider
    };
    let reply = app.post("/api/v1/procedures", token, &body, None).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body
}

#[tokio::test]
async fn a_patients_timeline_spans_providers_and_registries_and_every_read_is_audited() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let first = submit(&app, "RA1", 1, "A-1", "2024-06-01").await;
        submit(&app, "RB2", 1, "B-1", "2025-02-03").await;
        submit(&app, "RA1", 2, "A-2", "2024-07-01").await;
        let stem = first["implants"][1]["id"].as_i64().unwrap();
        let removal = json!({ "nhs_number": nhs(1), "kind": "revision", "removal_date": "2025-02-03", "reason": "aseptic loosening" });
        let reply = app
            .post(
                &format!("/api/v1/implants/{stem}/removals"),
                &app.other_provider,
                &removal,
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        let case = json!({ "reference": "FSN-9", "title": "t", "reason": "r", "udi_dis": ["05012345678917"], "lots": ["LOT7"] });
        let opened = app
            .post("/api/v1/recall-cases", &app.regulator, &case, None)
            .await;
        assert_eq!(opened.status, StatusCode::CREATED);

        // RA1 treated patient 1: it sees both procedures, its own and RB2's.
        let ask =
            |purpose: Option<&str>, k: u32| json!({ "nhs_number": nhs(k), "purpose": purpose });
        let reply = app
            .post(
                "/api/v1/patients/timeline",
                &app.provider,
                &ask(None, 1),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{backend}: {}", reply.body);
        assert_eq!(reply.headers["cache-control"], "no-store");
        let t = &reply.body;
        assert_eq!(t["nhs_number"], nhs(1));
        let procedures = t["procedures"].as_array().unwrap();
        assert_eq!(procedures.len(), 2);
        assert_eq!(procedures[0]["provider_ods"], "RA1");
        assert_eq!(procedures[0]["procedure_date"], "2024-06-01");
        assert_eq!(procedures[1]["provider_ods"], "RB2");
        let revised = &procedures[0]["implants"][1];
        assert_eq!(revised["model"], "Stem 12");
        assert_eq!(revised["manufacturer"], "Acme Orthopaedics");
        assert_eq!(revised["removal"]["kind"], "revision");
        assert_eq!(revised["removal"]["revising_provider"], "RB2");
        assert_eq!(revised["recalls"][0]["reference"], "FSN-9");
        assert_eq!(revised["recalls"][0]["status"], "identified");
        assert_eq!(procedures[0]["implants"][0]["udi_di"], "05012345678900");
        assert!(
            procedures[0]["implants"][0]["recalls"]
                .as_array()
                .unwrap()
                .is_empty()
        );

        // RB2 never treated patient 2; the answer is the same as for an unknown patient.
        let refused = app
            .post(
                "/api/v1/patients/timeline",
                &app.other_provider,
                &ask(None, 2),
                None,
            )
            .await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND);
        let unknown = app
            .post(
                "/api/v1/patients/timeline",
                &app.regulator,
                &ask(Some("recall"), 40),
                None,
            )
            .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        assert_eq!(refused.body, unknown.body);
        // Providers read for direct care only; the regulator must say why.
        let wrong = app
            .post(
                "/api/v1/patients/timeline",
                &app.provider,
                &ask(Some("investigation"), 1),
                None,
            )
            .await;
        assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(wrong.body["code"], "purpose_not_allowed");
        let no_purpose = app
            .post(
                "/api/v1/patients/timeline",
                &app.regulator,
                &ask(None, 1),
                None,
            )
            .await;
        assert_eq!(no_purpose.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(no_purpose.body["code"], "purpose_required");
        assert_eq!(no_purpose.body["field"], "Access-Purpose");
        let bad = app
            .post(
                "/api/v1/patients/timeline",
                &app.regulator,
                &json!({ "nhs_number": "9990000019", "purpose": "curiosity" }),
                None,
            )
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        let fields: Vec<&str> = bad.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["nhs_number", "purpose"]);
        let regulator = app
            .post(
                "/api/v1/patients/timeline",
                &app.regulator,
                &ask(Some("investigation"), 1),
                None,
            )
            .await;
        assert_eq!(regulator.status, StatusCode::OK);

        let audit = app.store.audit_events(None, 100).await.unwrap();
        let reads: Vec<(&str, &str, &str, u64, bool)> = audit
            .iter()
            .filter(|e| e.action == "patient.timeline")
            .map(|e| {
                (
                    e.organisation_ods.as_str(),
                    e.purpose.as_str(),
                    e.outcome.as_str(),
                    e.record_count,
                    e.patient.is_some(),
                )
            })
            .collect();
        assert_eq!(
            reads,
            [
                ("RA1", "direct_care", "ok", 2, true),
                ("RB2", "direct_care", "denied", 0, true),
                ("MHRA", "recall", "not_found", 0, false),
                ("MHRA", "investigation", "ok", 2, true),
            ],
            "{backend}"
        );
    }
}
