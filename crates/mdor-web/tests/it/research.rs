//! Researchers over HTTP on every backend (issue 4 §1 and §4): a researcher named on an
//! approved project lists it and downloads its pseudonymised extract as NDJSON and as CSV
//! (the same rows, every key in the published schema, no identifier, each page audited with
//! its row count and request); a project not naming them, or no longer naming them, is 404
//! like an absent one and the miss is audited; other roles and API tokens are refused; an
//! extract needs a step-up within 10 minutes; a bad reference names the field.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use mdor_domain::OdsCode;
use mdor_service::accounts::Username;
use mdor_service::research::{
    ResearchProjectRequest, add_research_member, create_research_project, remove_research_member,
};
use mdor_service::{AccountRole, StartedSession};
use mdor_web::WebSettings;

use crate::support::{TestApp, backends, new_person, nhs, procedure_body, spawn_app};

static NOW: AtomicI64 = AtomicI64::new(0);

fn clock() -> DateTime<Utc> {
    DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap()
}

/// A GET as `session` (or with a bearer token): status, headers and the body as text.
async fn get(
    app: &TestApp,
    session: Option<&StartedSession>,
    token: Option<&str>,
    uri: &str,
) -> (StatusCode, HeaderMap, String) {
    let mut request = Request::builder().method("GET").uri(uri);
    if let Some(session) = session {
        request = request.header(
            "cookie",
            format!("{}={}", mdor_web::SESSION_COOKIE, session.secret.expose()),
        );
    }
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app
        .router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

/// The property names of `ResearchRowView` in the committed OpenAPI document.
fn published_row_fields() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api/openapi.json");
    let document: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    document["components"]["schemas"]["ResearchRowView"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

async fn research_entries(app: &TestApp) -> Vec<mdor_service::AuditEvent> {
    app.store
        .audit_events(None, 500)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "research.extract")
        .collect()
}

const EXTRACT: &str = "/api/v1/research/projects/REC%2F24%2F001/extract";

#[tokio::test]
async fn a_researcher_named_on_a_project_downloads_its_pseudonymised_extract_and_nobody_else_does()
{
    for backend in backends() {
        NOW.store(Utc::now().timestamp(), Ordering::SeqCst);
        let app = spawn_app(backend)
            .await
            .with_accounts(WebSettings::default(), clock);
        // Three patients at two providers, two devices each.
        let patients = [nhs(31), nhs(41), nhs(51)];
        for (i, (number, token, ods)) in [
            (&patients[0], &app.provider, "RA1"),
            (&patients[1], &app.provider, "RA1"),
            (&patients[2], &app.other_provider, "RB2"),
        ]
        .into_iter()
        .enumerate()
        {
            let mut body = procedure_body(number, &format!("RESEARCH-{i}"));
            body["procedure"]["provider"] = json!(ods);
            let created = app.post("/api/v1/procedures", token, &body, None).await;
            assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        }
        for reference in ["REC/24/001", "DAC-2"] {
            let request = ResearchProjectRequest {
                reference: reference.into(),
                title: "Hip stem survival".into(),
                organisation: OdsCode::parse("MDOR").unwrap(),
                registry: None,
                approved_by: "Data Access Committee".into(),
                expires_on: Some(Utc::now().date_naive() + chrono::Days::new(30)),
            };
            create_research_project(&app.ctx, &request).await.unwrap();
        }
        let researcher = new_person(
            &app.ctx,
            "a.researcher",
            AccountRole::Researcher,
            Some("MDOR"),
            None,
        )
        .await;
        let colleague = new_person(
            &app.ctx,
            "b.researcher",
            AccountRole::Researcher,
            Some("MDOR"),
            None,
        )
        .await;
        let username = |name: &str| Username::parse(name).unwrap();
        add_research_member(&app.ctx, "REC/24/001", &username("a.researcher"))
            .await
            .unwrap();
        add_research_member(&app.ctx, "DAC-2", &username("b.researcher"))
            .await
            .unwrap();

        // Their projects, and only theirs.
        let (status, headers, text) =
            get(&app, Some(&researcher), None, "/api/v1/research/projects").await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_eq!(headers["cache-control"], "no-store");
        let listed: Value = serde_json::from_str(&text).unwrap();
        let references: Vec<&str> = listed["projects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["reference"].as_str().unwrap())
            .collect();
        assert_eq!(references, ["REC/24/001"]);
        assert_eq!(listed["projects"][0]["organisation"], "MDOR");

        // The extract as NDJSON: one row per implant, every key published, no identifier.
        let (status, headers, ndjson) =
            get(&app, Some(&researcher), None, &format!("{EXTRACT}.ndjson")).await;
        assert_eq!(status, StatusCode::OK, "{ndjson}");
        assert_eq!(headers["content-type"], "application/x-ndjson");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(
            headers["content-disposition"],
            "attachment; filename=\"research-REC-24-001.ndjson\""
        );
        let rows: Vec<Value> = ndjson
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 6);
        let published = published_row_fields();
        for row in &rows {
            let keys: BTreeSet<String> = row.as_object().unwrap().keys().cloned().collect();
            assert_eq!(keys, published);
            assert_eq!(row["pseudonym"].as_str().unwrap().len(), 32);
            // Born 1950-03-02, counted from 1950-03-16: 74 on 2024-06-01.
            assert_eq!(row["age_at_procedure"], 74);
            assert_eq!(row["procedure_month"], "2024-06");
        }
        let pseudonyms: BTreeSet<&str> = rows
            .iter()
            .map(|r| r["pseudonym"].as_str().unwrap())
            .collect();
        assert_eq!(pseudonyms.len(), 3, "one pseudonym per patient");
        let providers: Vec<&str> = rows
            .iter()
            .map(|r| r["provider_ods"].as_str().unwrap())
            .collect();
        assert_eq!(providers, ["RA1", "RA1", "RA1", "RA1", "RB2", "RB2"]);
        for identifier in patients.iter().map(String::as_str).chain([
            "RESEARCH-0",
            "Testpatient",
            "1950-03-02",
            "LS1 4AP",
        ]) {
            assert!(!ndjson.contains(identifier), "{identifier} in the extract");
        }

        // The same rows as CSV, in the same order.
        let (status, headers, csv) =
            get(&app, Some(&researcher), None, &format!("{EXTRACT}.csv")).await;
        assert_eq!(status, StatusCode::OK, "{csv}");
        assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
        let mut lines = csv.lines();
        assert_eq!(
            lines.next().unwrap(),
            "pseudonym,sex,age_at_procedure,procedure_month,provider_ods,registry,laterality,\
             udi_di,removal_kind,days_to_removal,days_to_death"
        );
        let csv_rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        assert_eq!(csv_rows.len(), rows.len());
        for (cells, row) in csv_rows.iter().zip(&rows) {
            assert_eq!(cells.len(), 11);
            assert_eq!(cells[0], row["pseudonym"]);
            assert_eq!(cells[4], row["provider_ods"]);
            assert_eq!(cells[7], row["udi_di"]);
        }

        // Each download read one page, audited with its rows and the request behind it.
        let entries = research_entries(&app).await;
        assert_eq!(entries.len(), 2, "{entries:?}");
        for entry in &entries {
            assert_eq!(
                (
                    entry.role.as_str(),
                    entry.purpose.as_str(),
                    entry.outcome.as_str()
                ),
                ("researcher", "research", "ok")
            );
            assert_eq!(entry.record_count, 6);
            assert_eq!(entry.resource, "research_project/REC/24/001?after=0");
            assert!(entry.request_id.is_some());
        }

        // A narrower extract: by implant date (every procedure here is on 2024-06-01) and by
        // the register's device type; each page audited with the narrowing asked for.
        let udi = rows[0]["udi_di"].as_str().unwrap();
        let device_type = app
            .store
            .device_model(&mdor_domain::UdiDi::parse(udi).unwrap())
            .await
            .unwrap()
            .unwrap()
            .device_type;
        let of_type = rows.iter().filter(|r| r["udi_di"] == udi).count();
        for (query, expected) in [
            (
                "implanted_from=2024-06-01&implanted_to=2024-06-01",
                rows.len(),
            ),
            ("implanted_from=2024-06-02", 0),
            (&*format!("device_type={device_type}"), of_type),
            ("device_type=no_such_type", 0),
        ] {
            let (status, _, narrowed) = get(
                &app,
                Some(&researcher),
                None,
                &format!("{EXTRACT}.ndjson?{query}"),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{query}: {narrowed}");
            assert_eq!(narrowed.lines().count(), expected, "{query}");
            let last = research_entries(&app).await.pop().unwrap();
            assert_eq!(
                last.resource,
                format!("research_project/REC/24/001?after=0&{query}")
            );
            assert_eq!(last.record_count, expected as u64);
        }
        assert!(of_type > 0 && of_type < rows.len(), "{of_type}");
        // A narrowing that cannot be one is refused naming its parameter, and reads nothing.
        for (query, field) in [
            ("implanted_from=2024-13-01", "implanted_from"),
            (
                "implanted_from=2024-06-02&implanted_to=2024-06-01",
                "implanted_to",
            ),
            ("device_type=Hip%20Cup", "device_type"),
        ] {
            let (status, _, text) = get(
                &app,
                Some(&researcher),
                None,
                &format!("{EXTRACT}.csv?{query}"),
            )
            .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {text}");
            let body: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(body["errors"][0]["field"], field, "{text}");
        }
        let (status, _, _) = get(
            &app,
            Some(&researcher),
            None,
            &format!("{EXTRACT}.csv?colour=red"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(research_entries(&app).await.len(), 6);

        // A project not naming them is absent, like one that does not exist; both audited.
        for uri in [
            "/api/v1/research/projects/DAC-2/extract.ndjson",
            "/api/v1/research/projects/DAC-404/extract.csv",
        ] {
            let (status, _, text) = get(&app, Some(&researcher), None, uri).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {text}");
        }
        let misses = research_entries(&app)
            .await
            .into_iter()
            .filter(|e| e.outcome == "not_found")
            .count();
        assert_eq!(misses, 2);
        // Their colleague reads DAC-2, and not REC/24/001.
        let (status, _, _) = get(
            &app,
            Some(&colleague),
            None,
            "/api/v1/research/projects/DAC-2/extract.ndjson",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, _) = get(&app, Some(&colleague), None, &format!("{EXTRACT}.csv")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // No other role, and no API token, reads an extract or lists projects.
        let consultant = new_person(
            &app.ctx,
            "a.consultant",
            AccountRole::Consultant,
            Some("RA1"),
            None,
        )
        .await;
        let analyst = new_person(
            &app.ctx,
            "an.analyst",
            AccountRole::RegistryAnalyst,
            Some("MDOR"),
            None,
        )
        .await;
        for uri in [
            format!("{EXTRACT}.ndjson"),
            "/api/v1/research/projects".into(),
        ] {
            for session in [&consultant, &analyst] {
                let (status, _, text) = get(&app, Some(session), None, &uri).await;
                assert_eq!(status, StatusCode::FORBIDDEN, "{uri}: {text}");
            }
            for token in [&app.admin, &app.regulator, &app.provider] {
                let (status, _, text) = get(&app, None, Some(token), &uri).await;
                assert_eq!(status, StatusCode::FORBIDDEN, "{uri}: {text}");
            }
        }

        // A reference that cannot be one names the field.
        let (status, _, text) = get(
            &app,
            Some(&researcher),
            None,
            "/api/v1/research/projects/REC%2024/extract.ndjson",
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
        let error: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (error["field"].as_str(), error["errors"][0]["code"].as_str()),
            (Some("reference"), Some("invalid_reference"))
        );

        // Eleven minutes on: the list still answers, the extract needs a step-up.
        NOW.fetch_add(11 * 60, Ordering::SeqCst);
        let (status, _, _) = get(&app, Some(&researcher), None, "/api/v1/research/projects").await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, text) =
            get(&app, Some(&researcher), None, &format!("{EXTRACT}.ndjson")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
        assert!(text.contains("reauthentication_required"), "{text}");
        NOW.fetch_sub(11 * 60, Ordering::SeqCst);

        // Removed from the project, the researcher finds it absent.
        remove_research_member(&app.ctx, "REC/24/001", &username("a.researcher"))
            .await
            .unwrap();
        let (status, _, _) = get(&app, Some(&researcher), None, &format!("{EXTRACT}.ndjson")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (_, _, text) = get(&app, Some(&researcher), None, "/api/v1/research/projects").await;
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap()["projects"],
            json!([])
        );

        // An approval that has ended closes its extract, even to a researcher named on it
        // (written through the store: the service refuses to create or name on such a one).
        let registry = app
            .store
            .organisation_by_ods(&OdsCode::parse("MDOR").unwrap())
            .await
            .unwrap()
            .unwrap()
            .id;
        let yesterday = clock().date_naive() - chrono::Days::new(1);
        let ended = app
            .store
            .create_research_project(&mdor_store::NewResearchProject {
                reference: "DAC-ENDED".into(),
                title: "Hip stem survival".into(),
                organisation: registry,
                registry: None,
                approved_by: "Data Access Committee".into(),
                created_at: clock() - chrono::Duration::days(400),
                expires_on: Some(yesterday),
            })
            .await
            .unwrap();
        let named = mdor_store::NewAuditEvent {
            patients: Vec::new(),
            request: None,
            at: clock(),
            organisation: registry,
            role: "operator",
            token: None,
            account: None,
            action: "research.member_add",
            resource: "research_project/DAC-ENDED".into(),
            patient: None,
            record_count: 0,
            purpose: "administration",
            outcome: "ok",
            break_glass: None,
        };
        app.store
            .add_research_member(ended, researcher.account, &named)
            .await
            .unwrap();
        let (status, _, text) = get(
            &app,
            Some(&researcher),
            None,
            "/api/v1/research/projects/DAC-ENDED/extract.csv",
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{text}");
        assert!(text.contains("\"research_approval_expired\""), "{text}");
        let (_, _, text) = get(&app, Some(&researcher), None, "/api/v1/research/projects").await;
        let listed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(listed["projects"][0]["expires_on"], yesterday.to_string());
        let expired = research_entries(&app)
            .await
            .into_iter()
            .filter(|e| e.outcome == "approval_expired")
            .count();
        assert_eq!(expired, 1);
        // Closed to the operator too, and nobody more is named on it.
        let operator = mdor_service::research::research_extract(
            &app.ctx,
            "DAC-ENDED",
            Default::default(),
            |_| Ok(()),
        )
        .await;
        assert!(matches!(
            operator,
            Err(mdor_service::ServiceError::Conflict {
                code: "research_approval_expired",
                ..
            })
        ));
        assert!(matches!(
            add_research_member(&app.ctx, "DAC-ENDED", &username("b.researcher")).await,
            Err(mdor_service::ServiceError::Conflict {
                code: "research_approval_expired",
                ..
            })
        ));
    }
}

/// The operator's membership commands check what they are given and name the field.
#[tokio::test]
async fn only_researchers_are_named_on_projects_and_once_each() {
    for backend in backends() {
        // The real clock: `NOW` belongs to the test above, which moves it while this runs.
        let app = spawn_app(backend)
            .await
            .with_accounts(WebSettings::default(), Utc::now);
        let request = ResearchProjectRequest {
            reference: "DAC-7".into(),
            title: "Cochlear implant outcomes".into(),
            organisation: OdsCode::parse("MDOR").unwrap(),
            registry: Some("nrhi".into()),
            approved_by: "Data Access Committee".into(),
            expires_on: None,
        };
        create_research_project(&app.ctx, &request).await.unwrap();
        // An approval that has already ended is refused, naming the field.
        let mut ended = request.clone();
        ended.reference = "DAC-6".into();
        ended.expires_on = Some(Utc::now().date_naive() - chrono::Days::new(1));
        let refused = create_research_project(&app.ctx, &ended).await.unwrap_err();
        assert!(
            matches!(&refused, mdor_service::ServiceError::Invalid(errors)
                if errors[0].field == "expires_on" && errors[0].code == "in_the_past"),
            "{refused:?}"
        );
        new_person(
            &app.ctx,
            "a.researcher",
            AccountRole::Researcher,
            Some("MDOR"),
            None,
        )
        .await;
        new_person(
            &app.ctx,
            "an.analyst",
            AccountRole::RegistryAnalyst,
            Some("MDOR"),
            None,
        )
        .await;
        let username = |name: &str| Username::parse(name).unwrap();
        let field_error = |e: mdor_service::ServiceError| match e {
            mdor_service::ServiceError::Invalid(errors) => {
                (errors[0].field.clone(), errors[0].code.to_string())
            }
            mdor_service::ServiceError::Conflict { code, field, .. } => {
                (field.unwrap_or_default(), code.to_string())
            }
            other => panic!("{other:?}"),
        };
        let refused = add_research_member(&app.ctx, "DAC-7", &username("an.analyst"))
            .await
            .unwrap_err();
        assert_eq!(
            field_error(refused),
            ("username".into(), "not_a_researcher".into())
        );
        let refused = add_research_member(&app.ctx, "DAC-7", &username("no.one"))
            .await
            .unwrap_err();
        assert_eq!(
            field_error(refused),
            ("username".into(), "unknown_account".into())
        );
        assert!(matches!(
            add_research_member(&app.ctx, "DAC-8", &username("a.researcher")).await,
            Err(mdor_service::ServiceError::NotFound { .. })
        ));
        add_research_member(&app.ctx, "DAC-7", &username("a.researcher"))
            .await
            .unwrap();
        let again = add_research_member(&app.ctx, "DAC-7", &username("a.researcher"))
            .await
            .unwrap_err();
        assert_eq!(
            field_error(again),
            ("username".into(), "already_a_member".into())
        );
        remove_research_member(&app.ctx, "DAC-7", &username("a.researcher"))
            .await
            .unwrap();
        assert!(matches!(
            remove_research_member(&app.ctx, "DAC-7", &username("a.researcher")).await,
            Err(mdor_service::ServiceError::NotFound { .. })
        ));
        // Each change that happened is in the audit, as the operator's administration.
        let changes: Vec<(String, String, String)> = app
            .store
            .audit_events(None, 500)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action.starts_with("research.member"))
            .map(|e| (e.action, e.role, e.purpose))
            .collect();
        let expected = |action: &str| (action.into(), "operator".into(), "administration".into());
        let mut changes = changes;
        changes.sort();
        assert_eq!(
            changes,
            [
                expected("research.member_add"),
                expected("research.member_remove")
            ]
        );
    }
}
