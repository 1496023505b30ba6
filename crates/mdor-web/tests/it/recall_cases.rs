//! Recall cases over HTTP on every backend: the regulator opens a case and sees the work per
//! provider; each provider sees, exports and updates only its own patients; follow-up only
//! moves forward; late submissions are added by a refresh; every access is audited.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestApp, backends, nhs, procedure_body, spawn_app};

/// Submits patient `k`'s procedure at `provider` (its own token) with stem lot `lot`.
async fn submit(app: &TestApp, provider: &str, k: u32, lot: &str) {
    let mut body = procedure_body(&nhs(k), &format!("{provider}-{k}"));
    body["procedure"]["provider"] = json!(provider);
    body["devices"][1]["lot"] = json!(lot);
    let token = if provider == "RA1" {
        &app.provider
    } else {
        &app.other_provider
    };
    let reply = app.post("/api/v1/procedures", token, &body, None).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

fn case_body(reference: &str) -> Value {
    json!({
        "reference": reference,
        "title": "Stem 12 taper corrosion",
        "reason": "Field safety notice FSN-2026-077",
        "udi_dis": ["05012345678917"],
        "lots": ["LOT7"]
    })
}

async fn get_text(app: &TestApp, uri: &str, token: &str) -> (StatusCode, String) {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let response = app
        .router
        .clone()
        .oneshot(
            Request::get(uri)
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn a_recall_case_splits_work_by_provider_and_each_provider_sees_only_its_own() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        submit(&app, "RA1", 1, "LOT7").await;
        submit(&app, "RA1", 2, "LOT7").await;
        submit(&app, "RA1", 3, "LOT8").await;
        submit(&app, "RB2", 4, "LOT7").await;
        submit(&app, "RB2", 5, "LOT7").await;

        let refused = app
            .post(
                "/api/v1/recall-cases",
                &app.provider,
                &case_body("FSN-1"),
                None,
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{backend}");

        let opened = app
            .post(
                "/api/v1/recall-cases",
                &app.regulator,
                &case_body("FSN-1"),
                None,
            )
            .await;
        assert_eq!(
            opened.status,
            StatusCode::CREATED,
            "{backend}: {}",
            opened.body
        );
        assert_eq!(opened.body["implants_added"], 4);
        assert_eq!(opened.body["patients_added"], 4);
        let id = opened.body["id"].as_i64().unwrap();
        assert_eq!(
            opened.headers["location"].to_str().unwrap(),
            format!("/api/v1/recall-cases/{id}")
        );
        let again = app
            .post(
                "/api/v1/recall-cases",
                &app.regulator,
                &case_body("FSN-1"),
                None,
            )
            .await;
        assert_eq!(again.status, StatusCode::CONFLICT);
        assert_eq!(again.body["code"], "reference_in_use");
        assert_eq!(again.body["field"], "reference");

        // The regulator sees everyone's work; a provider only its own line.
        let case = app
            .get(&format!("/api/v1/recall-cases/{id}"), Some(&app.regulator))
            .await;
        assert_eq!(case.status, StatusCode::OK);
        assert_eq!(case.body["implants"], 4);
        assert_eq!(
            case.body["work"],
            json!([
                { "provider_ods": "RA1", "provider_name": "RA1 test", "status": "identified", "patients": 2 },
                { "provider_ods": "RB2", "provider_name": "RB2 test", "status": "identified", "patients": 2 }
            ])
        );
        let own = app
            .get(&format!("/api/v1/recall-cases/{id}"), Some(&app.provider))
            .await;
        assert_eq!(own.body["work"].as_array().unwrap().len(), 1);
        assert_eq!(own.body["work"][0]["provider_ods"], "RA1");

        let page = app
            .get(
                &format!("/api/v1/recall-cases/{id}/patients"),
                Some(&app.provider),
            )
            .await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.headers["cache-control"], "no-store");
        let entries = page.body["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert!(entries.iter().all(|e| e["provider_ods"] == "RA1"));
        let mut patients: Vec<&str> = entries
            .iter()
            .map(|e| e["nhs_number"].as_str().unwrap())
            .collect();
        patients.sort();
        let (p1, p2) = (nhs(1), nhs(2));
        assert_eq!(patients, [p1.as_str(), p2.as_str()]);
        assert_eq!(entries[0]["implants"][0]["lot"], "LOT7");
        assert_eq!(entries[0]["postcode"], "LS1 4AP");
        // Asking for another provider's list is indistinguishable from a missing case.
        let other = app
            .get(
                &format!("/api/v1/recall-cases/{id}/patients?provider=RB2"),
                Some(&app.provider),
            )
            .await;
        assert_eq!(other.status, StatusCode::NOT_FOUND);
        let missing = app
            .get_for(
                "/api/v1/recall-cases/999/patients",
                &app.regulator,
                "recall",
            )
            .await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);

        // RB2's work list as CSV: a header and one row per affected implant.
        let (status, csv) = get_text(
            &app,
            &format!("/api/v1/recall-cases/{id}/worklist.csv"),
            &app.other_provider,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3, "{csv}");
        assert!(lines[0].starts_with("entry_id,status,provider_ods,nhs_number"));
        assert!(
            lines[1..]
                .iter()
                .all(|l| l.contains(",RB2,") && l.contains("LOT7"))
        );
        assert!(csv.contains(&nhs(4)) && csv.contains(&nhs(5)) && !csv.contains(&nhs(1)));

        // Follow-up: only the provider's own patients, only forward.
        let entry = entries[0]["id"].as_i64().unwrap();
        let status_uri = format!("/api/v1/recall-cases/{id}/patients/{entry}/status");
        let step = |s: &str| json!({ "status": s, "note": "letter sent 21 Nov" });
        let foreign = app
            .post(
                &status_uri,
                &app.other_provider,
                &step("patient_contacted"),
                None,
            )
            .await;
        assert_eq!(foreign.status, StatusCode::NOT_FOUND);
        let done = app
            .post(&status_uri, &app.provider, &step("patient_contacted"), None)
            .await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.body);
        assert_eq!(done.body["status"], "patient_contacted");
        let back = app
            .post(&status_uri, &app.provider, &step("provider_notified"), None)
            .await;
        assert_eq!(back.status, StatusCode::CONFLICT);
        assert_eq!(back.body["code"], "invalid_transition");
        let unknown = app
            .post(&status_uri, &app.provider, &step("cured"), None)
            .await;
        assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(unknown.body["errors"][0]["field"], "status");

        // A late submission joins the case on refresh, once.
        submit(&app, "RA1", 6, "LOT7").await;
        let refreshed = app
            .post(
                &format!("/api/v1/recall-cases/{id}/refresh"),
                &app.regulator,
                &json!({}),
                None,
            )
            .await;
        assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
        assert_eq!(refreshed.body["patients_added"], 1);

        // Every access was audited, by whom and how many records, starting with the provider's
        // refused attempt to open a case.
        let audit = app.store.audit_events(None, 100).await.unwrap();
        let trail: Vec<(&str, &str, u64)> = audit
            .iter()
            .map(|e| {
                (
                    e.action.as_str(),
                    e.organisation_ods.as_str(),
                    e.record_count,
                )
            })
            .collect();
        assert_eq!(
            trail,
            [
                ("request.authorise", "RA1", 0),
                ("recall_case.create", "MHRA", 4),
                ("recall_case.worklist", "RA1", 2),
                ("recall_case.worklist", "RB2", 2),
                ("recall_case.status", "RA1", 0),
                ("recall_case.refresh", "MHRA", 1),
            ],
            "{backend}"
        );
    }
}

#[tokio::test]
async fn a_recall_case_with_bad_fields_lists_every_problem() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let body = json!({
            "reference": " ",
            "title": "t",
            "reason": "r",
            "udi_dis": ["05012345678918"],
            "lot_range": { "from": "L1000", "to": "L20" },
            "expiry": { "from": "2026-02-30" }
        });
        let reply = app
            .post("/api/v1/recall-cases", &app.regulator, &body, None)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{backend}: {}",
            reply.body
        );
        let fields: Vec<&str> = reply.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(
            fields,
            ["udi_dis[0]", "expiry.from"],
            "parse errors come first: {}",
            reply.body
        );

        let body = json!({
            "reference": " ", "title": "t", "reason": "r", "udi_dis": [],
            "lot_range": { "from": "L1000", "to": "L20" },
            "implanted": { "from": "2025-01-01", "to": "2024-01-01" }
        });
        let reply = app
            .post("/api/v1/recall-cases", &app.regulator, &body, None)
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
        let fields: Vec<&str> = reply.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(
            fields,
            ["reference", "udi_dis", "lot_range", "implanted_to"]
        );
        let unknown_field = app
            .post(
                "/api/v1/recall-cases",
                &app.regulator,
                &json!({ "reference": "x", "colour": "red" }),
                None,
            )
            .await;
        assert_eq!(unknown_field.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(app.store.audit_events(None, 10).await.unwrap().is_empty());
    }
}
