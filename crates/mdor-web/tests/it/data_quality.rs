//! Providers' data quality over HTTP on every backend, worked by hand: RA1 records one
//! procedure through the API and sends a file of three records (one accepted, one accepted
//! with a warning, one rejected for a bad NHS number), all dated 2024-06-01, against an
//! expected 10 procedures in May 2024 and 4 in June.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use mdor_domain::Month;
use mdor_service::SubmissionJobId;

use crate::support::{TestApp, backends, nhs, procedure_body, spawn_app};

/// A valid `mdor_core` 1.1 record for RA1 dated 2024-06-01, with no follow-up flag.
fn record(k: u32, local: &str) -> Value {
    json!({
        "patient": {
            "nhs_number": nhs(k), "family_name": "Testpatient", "given_name": "Ann",
            "date_of_birth": "1950-03-02", "sex": "female", "postcode": "LS1 4AP"
        },
        "procedure": {
            "local_record_id": local, "provider": "RA1", "consultant": "1234567",
            "date": "2024-06-01", "opcs4_code": "W37.1", "action": "implant",
            "laterality": "left", "urgency": "elective"
        },
        "devices": [
            { "udi": "]d2010501234567890017270101", "role": "implanted" },
            { "udi_di": "05012345678917", "lot": "LOT7", "expiry": "2030-01-01", "role": "implanted" }
        ]
    })
}

/// Stores RA1's activity and expected activity, and returns the query string covering May
/// 2024 to the current month (when the file's job was received).
async fn activity(app: &TestApp) -> String {
    // Expires 2024-05-01, before its procedure: an open `expired_at_implant` flag.
    let reply = app
        .post(
            "/api/v1/procedures",
            &app.provider,
            &procedure_body(&nhs(1), "API-1"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);

    let mut warned = record(3, "F-3");
    // Not in the register: accepted with a warning and an open `not_in_register` flag.
    warned["devices"][1]["udi_di"] = json!("05012345678931");
    let mut bad_nhs = record(4, "F-4");
    bad_nhs["patient"]["nhs_number"] = json!("9990000019");
    let mut body = String::new();
    for r in [record(2, "F-2"), warned, bad_nhs] {
        body.push_str(&r.to_string());
        body.push('\n');
    }
    let request = Request::post("/api/v1/submissions?registry=mdor_core&version=1.1")
        .header("authorization", format!("Bearer {}", app.provider))
        .header("content-type", "application/x-ndjson")
        .body(Body::from(body))
        .unwrap();
    let reply = app.send(request).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let job = SubmissionJobId(reply.body["id"].as_i64().unwrap());
    mdor_service::process_submission(&app.ctx, job)
        .await
        .unwrap();

    let csv = "ods_code,month,expected_procedures\nRA1,2024-05,10\nRA1,2024-06,4\nRB2,2024-06,50\n";
    mdor_service::load_expected_activity(&app.ctx, csv.as_bytes())
        .await
        .unwrap();
    format!("from=2024-05&to={}", Month::of(app.ctx.today()))
}

async fn get_text(
    app: &TestApp,
    uri: &str,
    token: &str,
    accept: Option<&str>,
) -> (StatusCode, String, String) {
    let mut request = Request::get(uri).header("authorization", format!("Bearer {token}"));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = app
        .router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn a_provider_reads_its_own_completeness_against_expected_activity_with_the_ninety_percent_target()
 {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let query = activity(&app).await;
        let uri = format!("/api/v1/providers/RA1/data-quality?{query}");
        let reply = app.get(&uri, Some(&app.provider)).await;
        assert_eq!(reply.status, StatusCode::OK, "{backend}: {}", reply.body);
        let dq = &reply.body;
        assert_eq!(dq["provider"], "RA1");
        assert_eq!(dq["from"], "2024-05");
        assert_eq!(dq["completeness_target_percent"], 90);
        let months = dq["months"].as_array().unwrap();
        // May: 0 of 10. June: one API procedure and two accepted records = 3 of 4, 75%.
        assert_eq!(months[0]["month"], "2024-05");
        assert_eq!(months[0]["procedures_received"], 0);
        assert_eq!(months[0]["completeness_percent"], 0.0);
        assert_eq!(months[0]["below_target"], true);
        assert_eq!(months[1]["month"], "2024-06");
        assert_eq!(months[1]["procedures_received"], 3);
        assert_eq!(months[1]["expected_procedures"], 4);
        assert_eq!(months[1]["completeness_percent"], 75.0);
        assert_eq!(months[1]["below_target"], true);
        assert_eq!(months[1]["procedures_with_open_flags"], 2);
        // July has no figure: unknown, not below target.
        assert_eq!(months[2]["expected_procedures"], Value::Null);
        assert_eq!(months[2]["completeness_percent"], Value::Null);
        assert_eq!(months[2]["below_target"], false);
        assert_eq!(dq["months_below_target"], json!(["2024-05", "2024-06"]));
        // Overall 3 of 14 = 21.4%.
        assert_eq!(dq["overall"]["procedures_received"], 3);
        assert_eq!(dq["overall"]["expected_procedures"], 14);
        assert_eq!(dq["overall"]["completeness_percent"], 21.4);
        assert_eq!(dq["overall"]["below_target"], true);
        // The file's job, this month: 1 accepted, 1 with warnings, 1 rejected.
        let this_month = months.last().unwrap();
        assert_eq!(
            this_month["submissions"],
            json!({"jobs": 1, "accepted": 1, "accepted_with_warnings": 1, "rejected": 1})
        );
        assert_eq!(dq["records_submitted"], 3);
        assert_eq!(dq["errors_by_field"][0]["field"], "patient.nhs_number");
        assert_eq!(dq["errors_by_field"][0]["code"], "bad_check_digit");
        assert_eq!(dq["errors_by_field"][0]["records"], 1);
        // One of three records submitted: 33.3%.
        assert_eq!(dq["errors_by_field"][0]["percent_of_submitted"], 33.3);
        assert_eq!(
            dq["open_flags"],
            json!([
                {"flag": "expired_at_implant", "procedures": 1, "implants": 1},
                {"flag": "not_in_register", "procedures": 1, "implants": 1}
            ])
        );
        assert_eq!(dq["open_quarantine"], 1);

        // A regulator reads the same report; as CSV by `Accept` or by `format`.
        let regulator = app.get(&uri, Some(&app.regulator)).await;
        assert_eq!(regulator.status, StatusCode::OK);
        assert_eq!(regulator.body["overall"], dq["overall"]);
        for (uri, accept) in [
            (uri.clone(), Some("text/csv")),
            (format!("{uri}&format=csv"), None),
        ] {
            let (status, content_type, text) = get_text(&app, &uri, &app.regulator, accept).await;
            assert_eq!(status, StatusCode::OK, "{text}");
            assert_eq!(content_type, "text/csv; charset=utf-8");
            let lines: Vec<&str> = text.lines().collect();
            assert!(lines[0].starts_with("provider,month,procedures_received,expected_procedures,completeness_percent,target_percent,below_target"), "{text}");
            assert_eq!(lines[1], "RA1,2024-05,0,10,0.0,90,true,0,0,0,0,0");
            assert_eq!(lines[2], "RA1,2024-06,3,4,75.0,90,true,2,0,0,0,0");
            assert_eq!(lines[3], "RA1,2024-07,0,,,90,false,0,0,0,0,0");
            assert_eq!(
                *lines.last().unwrap(),
                "RA1,overall,3,14,21.4,90,true,2,1,1,1,1"
            );
        }
        // The HTML page, by `format` or by `Accept`: every figure in its tables, a bar per
        // month with an expected figure, and nothing a strict content security policy blocks.
        for (uri, accept) in [
            (format!("{uri}&format=html"), None),
            (uri.clone(), Some("text/html,application/xhtml+xml")),
        ] {
            let (status, content_type, html) = get_text(&app, &uri, &app.provider, accept).await;
            assert_eq!(status, StatusCode::OK, "{html}");
            assert_eq!(content_type, "text/html; charset=utf-8");
            assert!(html.contains("<h1>Data quality for "), "{html}");
            assert!(html.contains("21.4% (3 received of 14 expected) (below the 90% target)"));
            assert!(html.contains(
                "<tr><th scope=\"row\">2024-06</th><td>4</td><td>3</td><td>75.0%</td><td>below</td><td>2</td>"
            ), "{html}");
            assert!(html.contains(
                "<tr><th scope=\"row\">2024-07</th><td>not loaded</td><td>0</td><td>unknown</td><td>unknown</td>"
            ), "{html}");
            assert!(html.contains(
                "<td>patient.nhs_number</td><td>bad_check_digit</td><td>1</td><td>33.3%</td>"
            ));
            assert!(html.contains("<td>expired_at_implant</td><td>1</td><td>1</td>"));
            // May (0%) and June (75%) have bars; later months have no expected figure.
            assert_eq!(html.matches("<rect ").count(), 2, "{html}");
            assert!(html.contains("<title>2024-06: 75.0% (3 of 4 expected)</title>"));
            assert!(
                !html.contains("<script") && !html.contains("style="),
                "{html}"
            );
        }
        // `format=json` wins over `Accept`.
        let (_, content_type, _) = get_text(
            &app,
            &format!("{uri}&format=json"),
            &app.admin,
            Some("text/csv"),
        )
        .await;
        assert_eq!(content_type, "application/json");
    }
}

#[tokio::test]
async fn another_providers_data_quality_is_not_found_and_bad_parameters_name_their_field() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let uri = "/api/v1/providers/RA1/data-quality?from=2024-01&to=2024-12";
        // Another provider's report is indistinguishable from an unknown provider's.
        let other = app.get(uri, Some(&app.other_provider)).await;
        assert_eq!(
            other.status,
            StatusCode::NOT_FOUND,
            "{backend}: {}",
            other.body
        );
        assert_eq!(other.body["code"], "provider_not_found");
        let unknown = app
            .get("/api/v1/providers/RZZ9/data-quality", Some(&app.regulator))
            .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        assert_eq!(unknown.body["code"], "provider_not_found");
        // A regulator is an organisation but not a provider.
        let regulator = app
            .get("/api/v1/providers/MHRA/data-quality", Some(&app.admin))
            .await;
        assert_eq!(regulator.status, StatusCode::NOT_FOUND);
        let anonymous = app.get(uri, None).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

        for (query, field) in [
            ("from=2024-13", "from"),
            ("from=2024-1", "from"),
            ("to=June", "to"),
            ("from=2024-06&to=2024-05", "to"),
            ("from=2010-01&to=2024-05", "to"),
            ("format=xml", "format"),
            ("mode=all", "query"),
        ] {
            let reply = app
                .get(
                    &format!("/api/v1/providers/RA1/data-quality?{query}"),
                    Some(&app.provider),
                )
                .await;
            assert_eq!(
                reply.status,
                StatusCode::BAD_REQUEST,
                "{query}: {}",
                reply.body
            );
            assert_eq!(reply.body["code"], "invalid_parameter", "{query}");
            assert_eq!(reply.body["field"], field, "{query}: {}", reply.body);
            assert!(reply.body["message"].as_str().unwrap().len() > 5);
        }
        let bad_ods = app
            .get("/api/v1/providers/R!1/data-quality", Some(&app.regulator))
            .await;
        assert_eq!(bad_ods.status, StatusCode::BAD_REQUEST);
        assert_eq!(bad_ods.body["field"], "ods");

        // Without a range, the report covers the twelve complete months before this one.
        let default = app
            .get("/api/v1/providers/RA1/data-quality", Some(&app.provider))
            .await;
        assert_eq!(default.status, StatusCode::OK, "{}", default.body);
        let this_month = Month::of(app.ctx.today());
        assert_eq!(default.body["to"], this_month.previous().to_string());
        assert_eq!(default.body["months"].as_array().unwrap().len(), 12);
        assert_eq!(default.body["overall"]["completeness_percent"], Value::Null);
    }
}
