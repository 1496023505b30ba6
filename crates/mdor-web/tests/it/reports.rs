//! Feedback reports over HTTP on every backend: JSON, CSV and HTML, a provider's own only,
//! never an identifier.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::support::{backends, nhs, procedure_body, spawn_app};

#[tokio::test]
async fn a_provider_reads_its_own_feedback_report_as_json_csv_or_html() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        for k in 1..=9 {
            let body = procedure_body(&nhs(k), &format!("R-{k}"));
            let reply = app
                .post("/api/v1/procedures", &app.provider, &body, None)
                .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        }
        let uri = "/api/v1/reports/feedback?kind=provider&subject=RA1";
        let json = app.get(uri, Some(&app.provider)).await;
        assert_eq!(json.status, StatusCode::OK, "{backend}: {}", json.body);
        assert_eq!(json.body["subject"], "RA1");
        // Nine procedures publish as 10; eighteen implants as 20.
        assert_eq!(json.body["volumes"][0]["procedures"], 10);
        assert_eq!(json.body["volumes"][0]["implants"], 20);

        let refused = app.get(uri, Some(&app.other_provider)).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        let bad = app
            .get(
                "/api/v1/reports/feedback?kind=hospital&subject=RA1",
                Some(&app.regulator),
            )
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert_eq!(bad.body["field"], "kind");

        for (format, content_type, marker) in [
            (
                "csv",
                "text/csv; charset=utf-8",
                "section,group,period,measure,value",
            ),
            (
                "html",
                "text/html; charset=utf-8",
                "<h1>Feedback report for provider RA1</h1>",
            ),
        ] {
            let response = app
                .router
                .clone()
                .oneshot(
                    Request::get(format!("{uri}&format={format}"))
                        .header("authorization", format!("Bearer {}", app.regulator))
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()["content-type"], content_type);
            let text = String::from_utf8(
                response
                    .into_body()
                    .collect()
                    .await
                    .unwrap()
                    .to_bytes()
                    .to_vec(),
            )
            .unwrap();
            assert!(text.contains(marker), "{text}");
            assert!(
                !text.contains(&nhs(1)) && !text.contains("Testpatient"),
                "{text}"
            );
        }
    }
}
