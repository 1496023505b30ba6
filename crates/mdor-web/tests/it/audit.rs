//! Procedure reads and recall queries are audited like timelines, refusals and misses
//! included, and an administrator can show a patient who accessed their record: organisation,
//! role, action, purpose, time and outcome, never the token.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::{backends, nhs, procedure_body, spawn_app};

#[tokio::test]
async fn procedure_reads_and_recalls_are_audited_and_the_patient_sees_who_accessed_their_record() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let created = app
            .post(
                "/api/v1/procedures",
                &app.provider,
                &procedure_body(&nhs(1), "A-1"),
                None,
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let id = created.body["id"].as_i64().unwrap();
        let path = format!("/api/v1/procedures/{id}");
        assert_eq!(
            app.get(&path, Some(&app.provider)).await.status,
            StatusCode::OK
        );
        assert_eq!(
            app.get(&path, Some(&app.other_provider)).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.get_for(&path, &app.regulator, "investigation")
                .await
                .status,
            StatusCode::OK
        );
        assert_eq!(
            app.get_for("/api/v1/procedures/999999", &app.regulator, "investigation")
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        let recall = "/api/v1/recall?udi_di=05012345678917&lot=LOT7";
        let found = app.get_for(recall, &app.regulator, "recall").await;
        assert_eq!(found.status, StatusCode::OK, "{}", found.body);
        assert_eq!(
            app.get(recall, Some(&app.provider)).await.status,
            StatusCode::FORBIDDEN
        );

        let audit = app.store.audit_events(None, 100).await.unwrap();
        let seen: Vec<(&str, &str, &str, &str, u64, bool)> = audit
            .iter()
            .map(|e| {
                (
                    e.organisation_ods.as_str(),
                    e.action.as_str(),
                    e.purpose.as_str(),
                    e.outcome.as_str(),
                    e.record_count,
                    e.patient.is_some(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("RA1", "procedure.read", "direct_care", "ok", 1, true),
                ("RB2", "procedure.read", "direct_care", "denied", 0, true),
                ("MHRA", "procedure.read", "investigation", "ok", 1, true),
                (
                    "MHRA",
                    "procedure.read",
                    "investigation",
                    "not_found",
                    0,
                    false
                ),
                ("MHRA", "recall.query", "recall", "ok", 1, false),
                // A refusal records the purpose as stated (here none).
                ("RA1", "recall.query", "unstated", "denied", 0, false),
            ],
            "{backend}"
        );
        assert_eq!(
            audit[4].resource,
            "recall?udi_di=05012345678917&lot=LOT7&limit=1000"
        );

        // Only an administrator reads a patient's access log on their behalf (patients read
        // their own, `access::*`); the refusal is audited too.
        let ask = json!({ "nhs_number": nhs(1) });
        let refused = app
            .post("/api/v1/patients/access-log", &app.regulator, &ask, None)
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        let unknown = app
            .post(
                "/api/v1/patients/access-log",
                &app.admin,
                &json!({ "nhs_number": nhs(40) }),
                None,
            )
            .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        let log = app
            .post("/api/v1/patients/access-log", &app.admin, &ask, None)
            .await;
        assert_eq!(log.status, StatusCode::OK, "{}", log.body);
        assert_eq!(log.headers["cache-control"], "no-store");
        let accesses = log.body["accesses"].as_array().unwrap();
        let summary: Vec<(&str, &str, &str, &str)> = accesses
            .iter()
            .map(|a| {
                (
                    a["organisation_ods"].as_str().unwrap(),
                    a["role"].as_str().unwrap(),
                    a["action"].as_str().unwrap(),
                    a["outcome"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("RA1", "provider_submitter", "procedure.read", "ok"),
                ("RB2", "provider_submitter", "procedure.read", "denied"),
                ("MHRA", "regulator", "procedure.read", "ok"),
                // The recall whose rows included this patient's implant names them.
                ("MHRA", "regulator", "recall.query", "ok"),
            ],
            "{backend}"
        );
        assert_eq!(accesses[0]["organisation_name"], "RA1 test");
        assert!(accesses[0]["at"].is_string());
        assert!(accesses.iter().all(|a| a.get("token").is_none()));
        let after = app.store.audit_events(None, 100).await.unwrap();
        let own: Vec<(&str, &str)> = after[audit.len()..]
            .iter()
            .map(|e| (e.action.as_str(), e.outcome.as_str()))
            .collect();
        assert_eq!(
            own,
            [
                ("patient.access_log", "denied"),
                ("patient.access_log", "not_found"),
                ("patient.access_log", "ok"),
            ]
        );
    }
}
