//! Bulk submission over HTTP on every backend: uploads in NDJSON and CSV, per-record reports
//! in JSON, NDJSON and CSV, the quarantine and its resubmission, unchanged and corrected
//! resubmissions with versions kept, permissions, limits and the background worker.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use mdor_service::{SubmissionJobId, SubmissionSettings};

use crate::support::{TestApp, backends, nhs, spawn_app};

/// A valid `mdor_core` record (1.1, and 1.2 without an indication) for provider RA1: one scanned and one typed device.
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

fn ndjson(records: &[Value]) -> Vec<u8> {
    let mut text = String::new();
    for r in records {
        text.push_str(&r.to_string());
        text.push('\n');
    }
    text.into_bytes()
}

async fn upload(app: &TestApp, token: &str, query: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let request = Request::post(format!("/api/v1/submissions?{query}"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/x-ndjson")
        .body(Body::from(body))
        .unwrap();
    let reply = app.send(request).await;
    (reply.status, reply.body)
}

/// Uploads as RA1 and runs the job to its end, as the server's worker would.
async fn submit(app: &TestApp, query: &str, body: Vec<u8>) -> Value {
    let (status, job) = upload(app, &app.provider, query, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["state"], "queued");
    let id = SubmissionJobId(job["id"].as_i64().unwrap());
    mdor_service::process_submission(&app.ctx, id)
        .await
        .unwrap();
    let reply = app
        .get(
            &format!("/api/v1/submissions/{}", id.0),
            Some(&app.provider),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

async fn get_text(app: &TestApp, uri: &str, token: &str) -> (StatusCode, String) {
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

async fn report(app: &TestApp, job: &Value) -> Vec<Value> {
    let uri = job["report_ndjson"].as_str().unwrap();
    let (status, text) = get_text(app, uri, &app.provider).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn a_file_is_validated_record_by_record_and_nothing_is_dropped() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let mut warned = record(2, "L2");
        // A UDI-DI that is not in the register: accepted, with a warning.
        warned["devices"][1]["udi_di"] = json!("05012345678931");
        let mut bad_nhs = record(3, "L3");
        bad_nhs["patient"]["nhs_number"] = json!("9990000019");
        let mut other_provider = record(4, "L4");
        other_provider["procedure"]["provider"] = json!("RB2");
        let mut body = ndjson(&[record(1, "L1"), warned, bad_nhs, other_provider]);
        body.extend_from_slice(b"\n{\"patient\": \n");
        let job = submit(&app, "registry=mdor_core&version=1.1&format=ndjson", body).await;
        assert_eq!(job["state"], "completed", "{backend}: {job}");
        assert_eq!(job["total_records"], 5, "{backend}: {job}");
        assert_eq!(job["records_done"], 5);
        assert_eq!(job["accepted"], 1);
        assert_eq!(job["accepted_with_warnings"], 1);
        assert_eq!(job["rejected"], 3);
        assert_eq!(job["created"], 2);

        let lines = report(&app, &job).await;
        assert_eq!(lines.len(), 5, "{backend}");
        assert_eq!(lines[0]["outcome"], "accepted");
        assert_eq!(lines[0]["effect"], "created");
        assert_eq!(lines[1]["outcome"], "accepted_with_warnings");
        assert_eq!(lines[1]["warnings"][0]["code"], "not_in_register");
        assert_eq!(lines[2]["outcome"], "rejected");
        assert_eq!(lines[2]["errors"][0]["field"], "patient.nhs_number");
        assert_eq!(lines[2]["errors"][0]["code"], "bad_check_digit");
        assert_eq!(lines[3]["errors"][0]["field"], "procedure.provider");
        assert_eq!(lines[3]["errors"][0]["code"], "not_your_organisation");
        // The blank line is not a record; the broken one is line 6 of the file.
        assert_eq!(lines[4]["line"], 6);
        assert_eq!(lines[4]["errors"][0]["code"], "malformed_json");

        let (status, csv) =
            get_text(&app, job["report_csv"].as_str().unwrap(), &app.provider).await;
        assert_eq!(status, StatusCode::OK);
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(
            rows[0],
            "line,local_record_id,outcome,effect,procedure_id,field,code,message"
        );
        assert!(rows[1].starts_with("1,L1,accepted,created,"), "{csv}");
        assert!(
            rows.iter()
                .any(|r| r.starts_with("3,L3,rejected,none,,patient.nhs_number,bad_check_digit,")),
            "{csv}"
        );

        // The accepted record is a procedure, with its dataset fields kept as sent.
        let id = lines[0]["procedure_id"].as_i64().unwrap();
        let procedure = app
            .get(&format!("/api/v1/procedures/{id}"), Some(&app.provider))
            .await;
        assert_eq!(procedure.body["registry"], "mdor_core");
        assert_eq!(procedure.body["laterality"], "left");
        assert_eq!(procedure.body["implants"].as_array().unwrap().len(), 2);
        assert_eq!(procedure.body["implants"][1]["lot"], "LOT7");
        let versions = app
            .get(
                &format!("/api/v1/procedures/{id}/versions"),
                Some(&app.provider),
            )
            .await;
        assert_eq!(versions.status, StatusCode::OK);
        let current = &versions.body[0];
        assert_eq!(current["version"], 1);
        assert_eq!(current["record"]["procedure"]["urgency"], "elective");
        assert_eq!(current["submission_id"], job["id"]);
        assert_eq!(current["line"], 1);
        assert!(current["token_id"].is_i64());

        let quarantine = app.get("/api/v1/quarantine", Some(&app.provider)).await;
        assert_eq!(quarantine.status, StatusCode::OK);
        let entries = quarantine.body["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 3, "{backend}: {}", quarantine.body);
        assert_eq!(entries[0]["local_record_id"], "L3");
        assert_eq!(entries[0]["record"]["procedure"]["local_record_id"], "L3");
        assert_eq!(entries[0]["errors"][0]["field"], "patient.nhs_number");
        let theirs = app
            .get("/api/v1/quarantine", Some(&app.other_provider))
            .await;
        assert_eq!(theirs.body["entries"], json!([]));
    }
}

#[tokio::test]
async fn the_same_record_again_changes_nothing_and_a_changed_one_is_a_new_version() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let query = "registry=mdor_core&format=ndjson";
        let first = submit(&app, query, ndjson(&[record(1, "L1"), record(2, "L2")])).await;
        assert_eq!(first["created"], 2, "{backend}: {first}");
        // Fields in another order, the same values: unchanged.
        let again = submit(&app, query, ndjson(&[record(2, "L2"), record(1, "L1")])).await;
        assert_eq!(again["unchanged"], 2, "{backend}: {again}");
        assert_eq!(again["created"], 0);

        let mut changed = record(1, "L1");
        changed["procedure"]["date"] = json!("2024-06-03");
        changed["procedure"]["indication"] = json!("fracture");
        changed["devices"][1]["lot"] = json!("LOT8");
        let corrected = submit(&app, query, ndjson(&[changed])).await;
        assert_eq!(corrected["corrected"], 1, "{backend}: {corrected}");
        let lines = report(&app, &corrected).await;
        let id = lines[0]["procedure_id"].as_i64().unwrap();
        let procedure = app
            .get(&format!("/api/v1/procedures/{id}"), Some(&app.provider))
            .await;
        assert_eq!(procedure.body["procedure_date"], "2024-06-03");
        assert_eq!(procedure.body["implants"][1]["lot"], "LOT8");
        assert_eq!(procedure.body["indication"], "fracture");
        let versions = app
            .get(
                &format!("/api/v1/procedures/{id}/versions"),
                Some(&app.provider),
            )
            .await;
        let versions = versions.body.as_array().unwrap().clone();
        assert_eq!(versions.len(), 2, "{backend}: {versions:?}");
        assert_eq!(versions[0]["version"], 2);
        assert_eq!(versions[0]["record"]["procedure"]["date"], "2024-06-03");
        assert_eq!(versions[1]["version"], 1);
        assert_eq!(versions[1]["record"]["procedure"]["date"], "2024-06-01");
        assert_eq!(
            versions[1]["core_record"]["procedure"]["procedure_date"],
            "2024-06-01"
        );
        assert_eq!(versions[1]["submission_id"], first["id"]);
        assert_eq!(
            versions[1]["core_record"]["procedure"]["indication"],
            Value::Null
        );

        // Twice in one file: the later one corrects the earlier one.
        let mut later = record(5, "L5");
        later["procedure"]["urgency"] = json!("urgent");
        let twice = submit(&app, query, ndjson(&[record(5, "L5"), later])).await;
        assert_eq!(twice["created"], 1, "{backend}: {twice}");
        assert_eq!(twice["corrected"], 1);
    }
}

/// The server's surveillance-after-ingest task: a file that stores records is followed by a
/// surveillance run over the registry; the same file again (every record unchanged) is not.
#[tokio::test]
async fn a_submission_that_stores_records_is_followed_by_a_surveillance_run() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let task = tokio::spawn(mdor_service::surveil_after_ingests(
            app.ctx.clone(),
            mdor_service::SurveillanceConfig::default(),
        ));
        let latest = || async {
            mdor_service::latest_surveillance_run(&app.ctx)
                .await
                .unwrap()
        };
        assert!(latest().await.is_none(), "{backend}");
        let query = "registry=mdor_core&format=ndjson";
        let body = ndjson(&[record(1, "S1"), record(2, "S2")]);
        let first = submit(&app, query, body.clone()).await;
        assert_eq!(first["created"], 2, "{backend}: {first}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let run = loop {
            if let Some(run) = latest().await {
                break run;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{backend}: no surveillance run followed the submission"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        // Two procedures of two registered devices each.
        assert_eq!(run.n_implants, 4, "{backend}: {run:?}");

        let again = submit(&app, query, body).await;
        assert_eq!(again["unchanged"], 2, "{backend}: {again}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(
            latest().await.unwrap().id,
            run.id,
            "{backend}: nothing new was stored"
        );
        task.abort();
    }
}

#[tokio::test]
async fn a_quarantined_record_is_corrected_by_id_or_by_a_later_file() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let query = "registry=mdor_core&version=1.1";
        let mut broken = record(1, "L1");
        broken["procedure"]["urgency"] = json!("whenever");
        let mut also_broken = record(2, "L2");
        also_broken["patient"]["sex"] = json!("z");
        let job = submit(&app, query, ndjson(&[broken, also_broken])).await;
        assert_eq!(job["rejected"], 2, "{backend}: {job}");
        let entries = app.get("/api/v1/quarantine", Some(&app.provider)).await;
        let first = entries.body["entries"][0]["id"].as_i64().unwrap();

        // Another organisation cannot see or resubmit it.
        let refused = app
            .post(
                &format!("/api/v1/quarantine/{first}/resubmit"),
                &app.other_provider,
                &record(1, "L1"),
                None,
            )
            .await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.body);

        // Still wrong: rejected again, and the entry stays open.
        let mut still = record(1, "L1");
        still["procedure"]["urgency"] = json!("soon");
        let reply = app
            .post(
                &format!("/api/v1/quarantine/{first}/resubmit"),
                &app.provider,
                &still,
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.body["record"]["outcome"], "rejected");
        assert_eq!(
            reply.body["record"]["errors"][0]["field"],
            "procedure.urgency"
        );

        let reply = app
            .post(
                &format!("/api/v1/quarantine/{first}/resubmit"),
                &app.provider,
                &record(1, "L1"),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.body["record"]["outcome"], "accepted");
        assert_eq!(reply.body["record"]["effect"], "created");
        let again = app
            .post(
                &format!("/api/v1/quarantine/{first}/resubmit"),
                &app.provider,
                &record(1, "L1"),
                None,
            )
            .await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);

        // The other is corrected by sending its record again in a new file.
        submit(&app, query, ndjson(&[record(2, "L2")])).await;
        let open = app.get("/api/v1/quarantine", Some(&app.provider)).await;
        let open_ids: Vec<&Value> = open.body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["local_record_id"])
            .collect();
        // Only the resubmission that was rejected again is still open, and it names L1,
        // which has been accepted since: resolved too.
        assert!(open_ids.is_empty(), "{backend}: {}", open.body);
        let all = app
            .get(
                "/api/v1/quarantine?include_resolved=true",
                Some(&app.provider),
            )
            .await;
        assert_eq!(
            all.body["entries"].as_array().unwrap().len(),
            3,
            "{}",
            all.body
        );
    }
}

#[tokio::test]
async fn a_csv_file_uses_the_documented_columns() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let header = "patient.nhs_number,patient.date_of_birth,patient.sex,procedure.local_record_id,procedure.provider,procedure.consultant,procedure.date,procedure.opcs4_code,procedure.action,procedure.laterality,procedure.urgency,device1.udi,device1.role,device2.udi_di,device2.lot,device2.role,";
        let csv = format!(
            "{header}\n{},1950-03-02,F,C1,RA1,1234567,02/06/2024,W37.1,implant,L,elective,]d2010501234567890017270101,implanted,05012345678917,LOT9,implanted,\n\
             {},1950-03-02,F,C2,RA1,1234567,2024-06-02,W37.1,implant,left,elective,,implanted,,,,\n",
            nhs(1),
            nhs(2)
        );
        let job = submit(&app, "registry=mdor_core&format=csv", csv.into_bytes()).await;
        assert_eq!(job["accepted"], 1, "{backend}: {job}");
        assert_eq!(job["rejected"], 1);
        let lines = report(&app, &job).await;
        assert_eq!(lines[0]["line"], 2);
        assert_eq!(lines[1]["line"], 3);
        assert_eq!(lines[1]["errors"][0]["field"], "devices[0].udi");
        let id = lines[0]["procedure_id"].as_i64().unwrap();
        let versions = app
            .get(
                &format!("/api/v1/procedures/{id}/versions"),
                Some(&app.provider),
            )
            .await;
        assert_eq!(versions.body[0]["record"]["device2.lot"], "LOT9");
        let procedure = app
            .get(&format!("/api/v1/procedures/{id}"), Some(&app.provider))
            .await;
        assert_eq!(procedure.body["patient"]["family_name"], "not collected");
    }
}

#[tokio::test]
async fn only_the_submitting_organisation_sees_a_submissions_records_and_administrators_only_its_progress()
 {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let job = submit(&app, "registry=mdor_core", ndjson(&[record(1, "L1")])).await;
        let uri = format!("/api/v1/submissions/{}", job["id"]);
        assert_eq!(
            app.get(&uri, Some(&app.other_provider)).await.status,
            StatusCode::NOT_FOUND
        );
        // The regulator has no policy on submissions at all: refused, not hidden.
        assert_eq!(
            app.get(&uri, Some(&app.regulator)).await.status,
            StatusCode::FORBIDDEN
        );
        // Administrators follow a job's state and counts, which name no patient, but not its
        // records: its report and the quarantine are the provider's own.
        let progress = app.get(&uri, Some(&app.admin)).await;
        assert_eq!(progress.status, StatusCode::OK);
        assert_eq!(progress.body["accepted"], 1, "{}", progress.body);
        let (status, _) = get_text(&app, &format!("{uri}/report.csv"), &app.other_provider).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = get_text(&app, &format!("{uri}/report.csv"), &app.admin).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, body) = upload(&app, &app.regulator, "registry=mdor_core", vec![]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(
            app.get("/api/v1/quarantine", Some(&app.regulator))
                .await
                .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            app.get("/api/v1/quarantine", Some(&app.admin)).await.status,
            StatusCode::FORBIDDEN
        );
    }
}

#[tokio::test]
async fn bad_parameters_and_oversized_uploads_are_refused_with_a_clear_error() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let (status, body) = upload(&app, &app.provider, "registry=nope", vec![]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["field"], "registry");
        let (status, body) = upload(&app, &app.provider, "registry=bcir&version=9.9", vec![]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["field"], "version");
        assert!(
            body["message"].as_str().unwrap().contains("1.0, 1.1"),
            "{body}"
        );
        let (status, body) = upload(&app, &app.provider, "registry=bcir&format=xlsx", vec![]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["field"], "format");
        let (status, body) = upload(&app, &app.provider, "format=csv", vec![]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["field"], "registry");

        let dir = std::env::temp_dir().join(format!("mdor-web-limit-{}", std::process::id()));
        let settings = SubmissionSettings::new(
            dir.clone(),
            100,
            10,
            std::sync::Arc::new(mdor_service::shipped_catalogue().unwrap()),
        );
        let small = TestApp {
            router: mdor_web::router(mdor_web::AppState::new(
                app.ctx.clone().with_submissions(settings),
                mdor_web::WebSettings::default(),
            )),
            ..app
        };
        let (status, body) = upload(
            &small,
            &small.provider,
            "registry=mdor_core",
            ndjson(&[record(1, "L1")]),
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        assert_eq!(body["code"], "upload_too_large");
        // The partial spool file is gone.
        let left = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        assert_eq!(left, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test]
async fn the_worker_processes_queued_uploads_in_the_background() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let worker = tokio::spawn(mdor_service::run_submission_worker(app.ctx.clone()));
        let (status, job) = upload(
            &app,
            &app.provider,
            "registry=mdor_core",
            ndjson(&[record(1, "L1"), record(2, "L2")]),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let uri = format!("/api/v1/submissions/{}", job["id"]);
        let mut state = Value::Null;
        for _ in 0..200 {
            state = app.get(&uri, Some(&app.provider)).await.body;
            if state["state"] == "completed" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        worker.abort();
        assert_eq!(state["state"], "completed", "{backend}: {state}");
        assert_eq!(state["created"], 2);
    }
}
