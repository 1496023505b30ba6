//! Issue 4 §4 over HTTP on every backend: identifiable reads beyond the caller's organisation
//! state their purpose (`Access-Purpose`), which the audit records; a consultant treating
//! another provider's patient, or an administrator, breaks glass with a written reason
//! (`Break-Glass-Reason`), which raises exactly one review item that another administrator
//! decides once; administrators reach no identifiable record any other way; and a patient
//! reads their own record and who accessed it, and nobody else's.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};

use mdor_service::{AccountId, AccountRole};
use mdor_web::WebSettings;

use crate::support::{Reply, TestApp, backends, new_person, nhs, procedure_body, spawn_app};

/// A signed-in person.
struct Person {
    account: AccountId,
    cookie: String,
    csrf: String,
}

/// A new account of `role` (in `ods`, none for a patient, who may be linked to `patient`),
/// signed in as its holder would (`support::new_person`).
async fn person(
    app: &TestApp,
    username: &str,
    role: AccountRole,
    ods: Option<&str>,
    patient: Option<mdor_service::PatientId>,
) -> Person {
    let started = new_person(&app.ctx, username, role, ods, patient).await;
    Person {
        account: started.account,
        cookie: format!("{}={}", mdor_web::SESSION_COOKIE, started.secret.expose()),
        csrf: started.secret.csrf_token(),
    }
}

/// A request as `person`, with extra headers and an optional JSON body.
async fn as_person(
    app: &TestApp,
    person: &Person,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Reply {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("cookie", &person.cookie)
        .header("x-csrf-token", &person.csrf);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    app.send(request.body(body).unwrap()).await
}

/// A request with a bearer token, extra headers and an optional JSON body.
async fn as_token(
    app: &TestApp,
    token: &str,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Reply {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    app.send(request.body(body).unwrap()).await
}

async fn app(backend: &str) -> TestApp {
    spawn_app(backend)
        .await
        .with_accounts(WebSettings::default(), chrono::Utc::now)
}

/// A procedure of `ods` for patient `nhs_number`; returns its id.
async fn procedure(app: &TestApp, token: &str, ods: &str, nhs_number: &str, local: &str) -> i64 {
    let mut body = procedure_body(nhs_number, local);
    body["procedure"]["provider"] = json!(ods);
    let created = app.post("/api/v1/procedures", token, &body, None).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    created.body["id"].as_i64().unwrap()
}

async fn open_reviews(app: &TestApp) -> Vec<Value> {
    let reply = app.get("/api/v1/access-reviews", Some(&app.admin)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["reviews"].as_array().unwrap().clone()
}

const BREAK_GLASS: &str = "break-glass-reason";
const PURPOSE: &str = "access-purpose";

#[tokio::test]
async fn break_glass_without_a_reason_is_refused_and_with_one_is_allowed_and_raises_exactly_one_review_item()
 {
    for backend in backends() {
        let app = app(backend).await;
        let id = procedure(&app, &app.provider, "RA1", &nhs(1), "BG-1").await;
        let uri = format!("/api/v1/procedures/{id}");
        // A consultant at RB2, treating RA1's patient in an emergency.
        let consultant = person(
            &app,
            "rb2.consultant",
            AccountRole::Consultant,
            Some("RB2"),
            None,
        )
        .await;

        let hidden = as_person(&app, &consultant, "GET", &uri, &[], None).await;
        assert_eq!(hidden.status, StatusCode::NOT_FOUND, "not their patient");
        for (reason, code) in [
            ("", "break_glass_reason_required"),
            ("   ", "break_glass_reason_required"),
            (&"x".repeat(501)[..], "break_glass_reason_too_long"),
        ] {
            let refused = as_person(
                &app,
                &consultant,
                "GET",
                &uri,
                &[(BREAK_GLASS, reason)],
                None,
            )
            .await;
            assert_eq!(
                refused.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{reason:?}"
            );
            assert_eq!(refused.body["code"], code);
            assert_eq!(refused.body["field"], "Break-Glass-Reason");
        }
        let not_care = as_person(
            &app,
            &consultant,
            "GET",
            &uri,
            &[
                (BREAK_GLASS, "unconscious in ED"),
                (PURPOSE, "investigation"),
            ],
            None,
        )
        .await;
        assert_eq!(not_care.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(not_care.body["code"], "purpose_not_allowed");
        assert!(
            open_reviews(&app).await.is_empty(),
            "nothing refused is reviewed"
        );

        let reason = "unconscious in ED after a fall; hip implant details needed";
        let read = as_person(
            &app,
            &consultant,
            "GET",
            &uri,
            &[(BREAK_GLASS, reason)],
            None,
        )
        .await;
        assert_eq!(read.status, StatusCode::OK, "{}", read.body);
        assert_eq!(read.body["patient"]["nhs_number"], nhs(1));
        let reviews = open_reviews(&app).await;
        assert_eq!(reviews.len(), 1, "exactly one review item: {reviews:?}");
        let review = &reviews[0];
        assert_eq!(review["reason"], reason);
        assert_eq!(review["username"], "rb2.consultant");
        assert_eq!(review["account_id"], consultant.account.0);
        assert_eq!(review["organisation_ods"], "RB2");
        assert_eq!(review["role"], "consultant");
        assert_eq!(review["action"], "procedure.read");
        assert_eq!(review["resource"], format!("procedure/{id}"));
        assert_eq!(review["purpose"], "break_glass:direct_care");
        assert_eq!(review["outcome"], "ok");
        assert_eq!(review["decision"], Value::Null);
        // The review names the access's audit entry, which marks it as break-glass.
        let audit = app.store.audit_events(None, 100).await.unwrap();
        let entry = audit
            .iter()
            .find(|e| {
                e.action == "procedure.read" && e.organisation_ods == "RB2" && e.outcome == "ok"
            })
            .unwrap();
        assert_eq!(entry.purpose, "break_glass:direct_care");
        assert!(entry.patient.is_some());
        let log = app.store.audit_log_page(0, 100).await.unwrap();
        let seq = review["audit_seq"].as_u64().unwrap();
        assert_eq!(log[seq as usize - 1].purpose, "break_glass:direct_care");
        assert_eq!(log[seq as usize - 1].account, Some(consultant.account));

        // The timeline too: one more item, and the read answers with the patient.
        let timeline = as_person(
            &app,
            &consultant,
            "POST",
            "/api/v1/patients/timeline",
            &[(BREAK_GLASS, "MRI safety check before an emergency scan")],
            Some(&json!({ "nhs_number": nhs(1) })),
        )
        .await;
        assert_eq!(timeline.status, StatusCode::OK, "{}", timeline.body);
        assert_eq!(timeline.body["procedures"][0]["provider_ods"], "RA1");
        assert_eq!(open_reviews(&app).await.len(), 2);

        // Roles that may not break glass, and API tokens, are refused and raise nothing.
        let submitter = person(
            &app,
            "rb2.clerk",
            AccountRole::ProviderSubmitter,
            Some("RB2"),
            None,
        )
        .await;
        let researcher = person(
            &app,
            "a.researcher",
            AccountRole::Researcher,
            Some("MDOR"),
            None,
        )
        .await;
        for refused in [
            as_person(
                &app,
                &submitter,
                "GET",
                &uri,
                &[(BREAK_GLASS, reason)],
                None,
            )
            .await,
            as_person(
                &app,
                &researcher,
                "GET",
                &uri,
                &[(BREAK_GLASS, reason)],
                None,
            )
            .await,
            as_token(
                &app,
                &app.other_provider,
                "GET",
                &uri,
                &[(BREAK_GLASS, reason)],
                None,
            )
            .await,
            as_token(
                &app,
                &app.admin,
                "GET",
                &uri,
                &[(BREAK_GLASS, reason), (PURPOSE, "investigation")],
                None,
            )
            .await,
        ] {
            assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
            assert_eq!(refused.body["code"], "forbidden");
        }
        // A consultant has no route to a procedure's versions, breaking glass or not.
        let versions = as_person(
            &app,
            &consultant,
            "GET",
            &format!("{uri}/versions"),
            &[(BREAK_GLASS, reason)],
            None,
        )
        .await;
        assert_eq!(versions.status, StatusCode::FORBIDDEN);
        assert_eq!(open_reviews(&app).await.len(), 2);
        let denied = app
            .store
            .audit_events(None, 100)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.outcome == "denied" && e.action == "procedure.read")
            .count();
        assert_eq!(
            denied, 6,
            "every refusal is audited (the hidden read among them)"
        );
    }
}

#[tokio::test]
async fn a_review_is_decided_once_by_another_administrator_and_never_by_the_one_who_broke_glass() {
    for backend in backends() {
        let app = app(backend).await;
        procedure(&app, &app.provider, "RA1", &nhs(1), "RV-1").await;
        let first = person(
            &app,
            "admin.one",
            AccountRole::SystemAdmin,
            Some("MDOR"),
            None,
        )
        .await;
        let second = person(
            &app,
            "admin.two",
            AccountRole::SystemAdmin,
            Some("MDOR"),
            None,
        )
        .await;
        let read = as_person(
            &app,
            &first,
            "POST",
            "/api/v1/patients/timeline",
            &[
                (BREAK_GLASS, "complaint 2026/114: patient asks what we hold"),
                (PURPOSE, "investigation"),
            ],
            Some(&json!({ "nhs_number": nhs(1) })),
        )
        .await;
        assert_eq!(read.status, StatusCode::OK, "{}", read.body);
        let reviews = open_reviews(&app).await;
        assert_eq!(reviews.len(), 1);
        assert_eq!(reviews[0]["purpose"], "break_glass:investigation");
        assert_eq!(reviews[0]["role"], "system_admin");
        let id = reviews[0]["id"].as_i64().unwrap();
        let decide = format!("/api/v1/access-reviews/{id}/decision");

        let own = as_person(
            &app,
            &first,
            "POST",
            &decide,
            &[],
            Some(&json!({ "decision": "appropriate" })),
        )
        .await;
        assert_eq!(own.status, StatusCode::FORBIDDEN, "{}", own.body);
        let by_token = as_token(
            &app,
            &app.admin,
            "POST",
            &decide,
            &[],
            Some(&json!({ "decision": "appropriate" })),
        )
        .await;
        assert_eq!(
            by_token.status,
            StatusCode::FORBIDDEN,
            "a decision is a person's"
        );
        let unexplained = as_person(
            &app,
            &second,
            "POST",
            &decide,
            &[],
            Some(&json!({ "decision": "inappropriate" })),
        )
        .await;
        assert_eq!(unexplained.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(unexplained.body["errors"][0]["field"], "note");
        let unknown = as_person(
            &app,
            &second,
            "POST",
            &decide,
            &[],
            Some(&json!({ "decision": "fine" })),
        )
        .await;
        assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(open_reviews(&app).await.len() == 1, "still open");

        let decided = as_person(
            &app,
            &second,
            "POST",
            &decide,
            &[],
            Some(&json!({ "decision": "inappropriate", "note": "no complaint of that number" })),
        )
        .await;
        assert_eq!(decided.status, StatusCode::OK, "{}", decided.body);
        assert_eq!(decided.body["decision"], "inappropriate");
        assert_eq!(decided.body["decision_note"], "no complaint of that number");
        assert_eq!(decided.body["decided_by_username"], "admin.two");
        assert_eq!(decided.body["decided_by"], second.account.0);
        let again = as_person(
            &app,
            &second,
            "POST",
            &decide,
            &[],
            Some(&json!({ "decision": "appropriate" })),
        )
        .await;
        assert_eq!(again.status, StatusCode::CONFLICT);
        assert_eq!(again.body["code"], "review_already_decided");
        let missing = as_person(
            &app,
            &second,
            "POST",
            "/api/v1/access-reviews/999/decision",
            &[],
            Some(&json!({ "decision": "appropriate" })),
        )
        .await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);

        assert!(open_reviews(&app).await.is_empty());
        let all = app
            .get(
                "/api/v1/access-reviews?include_decided=true",
                Some(&app.admin),
            )
            .await;
        assert_eq!(all.body["reviews"][0]["decision"], "inappropriate");
        // Only administrators list review items.
        assert_eq!(
            app.get("/api/v1/access-reviews", Some(&app.regulator))
                .await
                .status,
            StatusCode::FORBIDDEN
        );

        let decisions: Vec<(String, String)> = app
            .store
            .audit_events(None, 100)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.action == "access_review.decide")
            .map(|e| (e.outcome.clone(), e.role.clone()))
            .collect();
        assert_eq!(
            decisions
                .iter()
                .map(|(o, r)| (o.as_str(), r.as_str()))
                .collect::<Vec<_>>(),
            [
                ("denied", "system_admin"),
                ("denied", "admin"),
                ("ok", "system_admin"),
                ("not_found", "system_admin"),
            ],
            "{backend}: every decision and refusal is audited"
        );
    }
}

#[tokio::test]
async fn administrators_read_identifiable_records_only_by_breaking_glass_with_a_stated_purpose() {
    for backend in backends() {
        let app = app(backend).await;
        let id = procedure(&app, &app.provider, "RA1", &nhs(1), "AD-1").await;
        let uri = format!("/api/v1/procedures/{id}");
        let admin = person(
            &app,
            "the.admin",
            AccountRole::SystemAdmin,
            Some("MDOR"),
            None,
        )
        .await;

        for reply in [
            app.get(&uri, Some(&app.admin)).await,
            as_person(&app, &admin, "GET", &uri, &[], None).await,
            as_person(
                &app,
                &admin,
                "GET",
                &uri,
                &[(PURPOSE, "investigation")],
                None,
            )
            .await,
        ] {
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
            assert_eq!(reply.body["code"], "break_glass_required");
            assert_eq!(reply.body["field"], "Break-Glass-Reason");
        }
        let no_purpose = as_person(
            &app,
            &admin,
            "GET",
            &uri,
            &[(BREAK_GLASS, "support call 88")],
            None,
        )
        .await;
        assert_eq!(no_purpose.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(no_purpose.body["code"], "purpose_required");
        let care = as_person(
            &app,
            &admin,
            "GET",
            &uri,
            &[(BREAK_GLASS, "support call 88"), (PURPOSE, "direct_care")],
            None,
        )
        .await;
        assert_eq!(care.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(care.body["code"], "purpose_not_allowed");
        assert!(open_reviews(&app).await.is_empty());
        let read = as_person(
            &app,
            &admin,
            "GET",
            &uri,
            &[(BREAK_GLASS, "support call 88"), (PURPOSE, "investigation")],
            None,
        )
        .await;
        assert_eq!(read.status, StatusCode::OK, "{}", read.body);
        let versions = as_person(
            &app,
            &admin,
            "GET",
            &format!("{uri}/versions"),
            &[(BREAK_GLASS, "support call 88"), (PURPOSE, "investigation")],
            None,
        )
        .await;
        assert_eq!(versions.status, StatusCode::OK, "{}", versions.body);
        assert_eq!(
            open_reviews(&app).await.len(),
            2,
            "every such read is reviewed"
        );

        // Bulk identifiable reads have no break-glass: refused outright.
        let case = app
            .post(
                "/api/v1/recall-cases",
                &app.regulator,
                &json!({
                    "reference": "FSN-ADMIN", "title": "Stem 12", "reason": "FSN-2026-1",
                    "udi_dis": ["05012345678917"], "lots": ["LOT7"]
                }),
                None,
            )
            .await;
        assert_eq!(case.status, StatusCode::CREATED, "{}", case.body);
        let case = case.body["id"].as_i64().unwrap();
        for bulk in [
            "/api/v1/recall?udi_di=05012345678917".to_string(),
            format!("/api/v1/recall-cases/{case}/patients"),
            format!("/api/v1/recall-cases/{case}/worklist.csv"),
            "/api/v1/quarantine".to_string(),
        ] {
            let reply = as_person(
                &app,
                &admin,
                "GET",
                &bulk,
                &[(BREAK_GLASS, "support call 88"), (PURPOSE, "investigation")],
                None,
            )
            .await;
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "{bulk}: {}",
                reply.body
            );
        }
        // Administration and aggregates stay.
        assert_eq!(
            app.get(&format!("/api/v1/recall-cases/{case}"), Some(&app.admin))
                .await
                .status,
            StatusCode::OK
        );
        let log = app
            .post(
                "/api/v1/patients/access-log",
                &app.admin,
                &json!({ "nhs_number": nhs(1) }),
                None,
            )
            .await;
        assert_eq!(log.status, StatusCode::OK);
        let purposes: Vec<&str> = log.body["accesses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["purpose"].as_str().unwrap())
            .collect();
        // Refusals came before any record was read, so name no patient; the patient sees
        // the two reviewed reads.
        assert_eq!(
            purposes,
            ["break_glass:investigation", "break_glass:investigation"],
            "{backend}"
        );
    }
}

#[tokio::test]
async fn every_identifiable_read_beyond_the_callers_organisation_states_a_purpose_the_audit_records()
 {
    for backend in backends() {
        let app = app(backend).await;
        let id = procedure(&app, &app.provider, "RA1", &nhs(1), "PU-1").await;
        let case = app
            .post(
                "/api/v1/recall-cases",
                &app.regulator,
                &json!({
                    "reference": "FSN-PURPOSE", "title": "Stem 12", "reason": "FSN-2026-2",
                    "udi_dis": ["05012345678917"], "lots": ["LOT7"]
                }),
                None,
            )
            .await;
        let case = case.body["id"].as_i64().unwrap();
        let reads = [
            format!("/api/v1/procedures/{id}"),
            format!("/api/v1/procedures/{id}/versions"),
            "/api/v1/recall?udi_di=05012345678917".to_string(),
            format!("/api/v1/recall-cases/{case}/patients"),
            format!("/api/v1/recall-cases/{case}/worklist.csv"),
        ];
        let before = app.store.audit_events(None, 1000).await.unwrap().len();
        for uri in &reads {
            let unstated = app.get(uri, Some(&app.regulator)).await;
            assert_eq!(unstated.status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}");
            assert_eq!(unstated.body["code"], "purpose_required", "{uri}");
            assert_eq!(unstated.body["field"], "Access-Purpose", "{uri}");
            let unknown = app.get_for(uri, &app.regulator, "curiosity").await;
            assert_eq!(unknown.body["code"], "purpose_not_in_code_list", "{uri}");
            let care = app.get_for(uri, &app.regulator, "direct_care").await;
            assert_eq!(care.body["code"], "purpose_not_allowed", "{uri}");
        }
        assert_eq!(
            app.store.audit_events(None, 1000).await.unwrap().len(),
            before,
            "a missing or unfit purpose reads nothing"
        );
        for (uri, purpose) in reads.iter().zip([
            "investigation",
            "clinical_audit",
            "recall",
            "recall",
            "investigation",
        ]) {
            let reply = app.get_for(uri, &app.regulator, purpose).await;
            assert_eq!(reply.status, StatusCode::OK, "{uri}");
        }
        // The timeline takes the header too; its body's purpose must agree with it.
        let ask = json!({ "nhs_number": nhs(1), "purpose": "recall" });
        let conflict = as_token(
            &app,
            &app.regulator,
            "POST",
            "/api/v1/patients/timeline",
            &[(PURPOSE, "investigation")],
            Some(&ask),
        )
        .await;
        assert_eq!(conflict.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(conflict.body["errors"][0]["code"], "purpose_conflict");
        let timeline = as_token(
            &app,
            &app.regulator,
            "POST",
            "/api/v1/patients/timeline",
            &[(PURPOSE, "clinical_audit")],
            Some(&json!({ "nhs_number": nhs(1) })),
        )
        .await;
        assert_eq!(timeline.status, StatusCode::OK, "{}", timeline.body);
        // The caller's own organisation's records need no purpose.
        assert_eq!(
            app.get(&reads[0], Some(&app.provider)).await.status,
            StatusCode::OK
        );

        let recorded: Vec<(String, String)> = app.store.audit_events(None, 1000).await.unwrap()
            [before..]
            .iter()
            .map(|e| (e.action.clone(), e.purpose.clone()))
            .collect();
        let recorded: Vec<(&str, &str)> = recorded
            .iter()
            .map(|(a, p)| (a.as_str(), p.as_str()))
            .collect();
        assert_eq!(
            recorded,
            [
                ("procedure.read", "investigation"),
                ("procedure.read", "clinical_audit"),
                ("recall.query", "recall"),
                ("recall_case.worklist", "recall"),
                ("recall_case.worklist", "investigation"),
                ("patient.timeline", "clinical_audit"),
                ("procedure.read", "direct_care"),
            ],
            "{backend}"
        );
    }
}

#[tokio::test]
async fn a_patient_reads_their_own_record_and_who_accessed_it_and_never_another_patients() {
    for backend in backends() {
        let app = app(backend).await;
        let mine = procedure(&app, &app.provider, "RA1", &nhs(1), "PT-1").await;
        let theirs = procedure(&app, &app.other_provider, "RB2", &nhs(2), "PT-2").await;
        let bounds = |k| {
            let app = &app;
            async move {
                let timeline = app
                    .post(
                        "/api/v1/patients/timeline",
                        &app.regulator,
                        &json!({ "nhs_number": nhs(k), "purpose": "investigation" }),
                        None,
                    )
                    .await;
                assert_eq!(timeline.status, StatusCode::OK, "{}", timeline.body);
                mdor_service::PatientId(timeline.body["patient"].as_i64().unwrap())
            }
        };
        let me = bounds(1).await;
        bounds(2).await;
        // Someone else breaks glass on the patient's record.
        let consultant = person(
            &app,
            "rb2.consultant",
            AccountRole::Consultant,
            Some("RB2"),
            None,
        )
        .await;
        let read = as_person(
            &app,
            &consultant,
            "GET",
            &format!("/api/v1/procedures/{mine}"),
            &[(BREAK_GLASS, "emergency admission")],
            None,
        )
        .await;
        assert_eq!(read.status, StatusCode::OK, "{}", read.body);
        // A recall query that returned the patient's implant, and the other patient's: one
        // entry, which names them both.
        let recall = as_token(
            &app,
            &app.regulator,
            "GET",
            "/api/v1/recall?udi_di=05012345678917&lot=LOT7",
            &[("access-purpose", "recall")],
            None,
        )
        .await;
        assert_eq!(recall.status, StatusCode::OK, "{}", recall.body);

        let patient = person(&app, "a.patient", AccountRole::Patient, None, Some(me)).await;
        let timeline = as_person(&app, &patient, "GET", "/api/v1/me/timeline", &[], None).await;
        assert_eq!(timeline.status, StatusCode::OK, "{}", timeline.body);
        assert_eq!(timeline.headers["cache-control"], "no-store");
        assert_eq!(timeline.body["nhs_number"], nhs(1));
        assert_eq!(timeline.body["procedures"][0]["procedure_id"], mine);
        assert!(!timeline.body.to_string().contains(&nhs(2)));
        let log = as_person(&app, &patient, "GET", "/api/v1/me/access-log", &[], None).await;
        assert_eq!(log.status, StatusCode::OK, "{}", log.body);
        let accesses: Vec<(&str, &str, &str, &str)> = log.body["accesses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["organisation_ods"].as_str().unwrap(),
                    a["role"].as_str().unwrap(),
                    a["action"].as_str().unwrap(),
                    a["purpose"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            accesses,
            [
                ("MHRA", "regulator", "patient.timeline", "investigation"),
                (
                    "RB2",
                    "consultant",
                    "procedure.read",
                    "break_glass:direct_care"
                ),
                ("MHRA", "regulator", "recall.query", "recall"),
                ("MDOR", "patient", "patient.timeline", "patient_access"),
            ],
            "{backend}: who accessed the record, the patient's own read and the recall that \
             found them included, nobody else's"
        );
        assert!(
            log.body["accesses"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a.get("token").is_none() && a.get("account").is_none())
        );

        // Nothing names another patient's record for a patient.
        let other = json!({ "nhs_number": nhs(2) });
        for reply in [
            as_person(
                &app,
                &patient,
                "POST",
                "/api/v1/patients/timeline",
                &[],
                Some(&other),
            )
            .await,
            as_person(
                &app,
                &patient,
                "POST",
                "/api/v1/patients/access-log",
                &[],
                Some(&other),
            )
            .await,
            as_person(
                &app,
                &patient,
                "GET",
                &format!("/api/v1/procedures/{theirs}"),
                &[],
                None,
            )
            .await,
            as_person(
                &app,
                &patient,
                "GET",
                &format!("/api/v1/procedures/{theirs}"),
                &[(BREAK_GLASS, "curious")],
                None,
            )
            .await,
        ] {
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
            assert!(!reply.body.to_string().contains(&nhs(2)));
        }
        // Staff and systems have no "own record"; an unlinked patient account has none yet.
        for reply in [
            app.get("/api/v1/me/timeline", Some(&app.provider)).await,
            app.get("/api/v1/me/access-log", Some(&app.admin)).await,
            as_person(&app, &consultant, "GET", "/api/v1/me/timeline", &[], None).await,
        ] {
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
        }
        let unlinked = person(&app, "new.patient", AccountRole::Patient, None, None).await;
        for uri in ["/api/v1/me/timeline", "/api/v1/me/access-log"] {
            let reply = as_person(&app, &unlinked, "GET", uri, &[], None).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
            assert_eq!(reply.body["code"], "linked_patient_record_not_found");
        }

        let own: Vec<(String, String, String)> = app
            .store
            .audit_events(None, 1000)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.role == "patient" && !e.action.starts_with("account."))
            .map(|e| (e.action.clone(), e.purpose.clone(), e.outcome.clone()))
            .collect();
        let own: Vec<(&str, &str, &str)> = own
            .iter()
            .map(|(a, p, o)| (a.as_str(), p.as_str(), o.as_str()))
            .collect();
        assert_eq!(
            own,
            [
                ("patient.timeline", "patient_access", "ok"),
                ("patient.access_log", "patient_access", "ok"),
                ("patient.timeline", "unstated", "denied"),
                ("patient.access_log", "subject_access", "denied"),
                ("procedure.read", "unstated", "denied"),
                ("procedure.read", "unstated", "denied"),
                ("patient.timeline", "patient_access", "not_found"),
                ("patient.access_log", "patient_access", "not_found"),
            ],
            "{backend}: the patient's reads and refusals are audited"
        );
    }
}
