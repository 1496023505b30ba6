//! The authorisation matrix, generated from the policy: every route that names an `Action` ×
//! every caller (a session of each of the nine account roles, and the three API token roles) ×
//! a record of the caller's own organisation and one of another, sent as real requests on one
//! shared setup per backend, each outcome checked against `mdor_service::policy`:
//!
//! - allowed: never 401, 403 or 404 (2xx, or 409 when an earlier allowed cell already made the
//!   same change), and a role limited to its own organisation gets nothing of the other's
//!   (its patients' NHS numbers and its ODS code appear nowhere in the response; a patient
//!   sees no NHS number but their own);
//! - allowed for the own organisation only, asked about another's: 404 where the route hides
//!   existence, else 403 (submitting for another provider, another provider's feedback report);
//! - reached only by breaking glass (administrators' identifiable reads) and not breaking it:
//!   403 `break_glass_required`; an action only a person may do, by an API token: 403;
//! - no row for the role at all: 403.
//!
//! Each cell whose role must state a purpose sends `Access-Purpose`; the same request without
//! it must be 422 `purpose_required`. On every route where some role may break glass, every
//! caller also sends `Break-Glass-Reason`: a person whose role may gets 2xx and exactly one new
//! review item; anyone else 403 and none.
//!
//! Provider roles' accounts belong to RA1, so RA1's records are their own and RB2's another's;
//! for every other role (regulator, registry, manufacturer, patient) both are another
//! organisation's. The patient's account is linked to RA1's fixture patient.

use std::time::Instant;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use mdor_domain::{NhsNumber, OdsCode};
use mdor_service::accounts::{AccountRequest, Username};
use mdor_service::policy::{self, Action, Relationship};
use mdor_service::{
    AccessReviewQuery, AccountRole, NewOrganisation, OrganisationKind, PatientId, SubmissionJobId,
};
use mdor_web::{ROUTE_POLICIES, RouteDeclaration, RoutePolicy, WebSettings};

use crate::support::{
    PERSON_PASSWORD, TestApp, backends, enrol_key_and_sign_in, new_person, nhs, procedure_body,
    spawn_app,
};

/// The usernames the account-administration cells act on, at RA1 and at RB2: nobody's
/// caller, so the cells cannot lock a caller out.
const ADMINISTERED: &str = "matrix.administered";
const ADMINISTERED_OTHER: &str = "matrix.administered-other";
/// The data managers the approver route designates.
const CANDIDATE: &str = "matrix.candidate";
const CANDIDATE_OTHER: &str = "matrix.candidate-other";

/// The research project naming the matrix's researcher, whose extract the research cells read.
const RESEARCH_PROJECT: &str = "MATRIX-1";

/// Every request happens at this instant: sessions stay fresh (no idle timeout, and the step-up
/// window of exports and administration is open) however long the matrix takes.
fn clock() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_768_478_400, 0).unwrap() // 2026-01-15T12:00:00Z
}

/// Whose records a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// RA1's.
    Own,
    /// RB2's.
    Other,
}

/// How a route's request relates to the organisations, as its use case asks the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relation {
    /// The record named belongs to RA1 or RB2.
    Record,
    /// The caller acts for its own organisation whatever it names (a revision of an implant
    /// done elsewhere, a new submission): always its own.
    ActsForOwn,
    /// A listing of the caller's own organisation's records (or everyone's): the same request
    /// for both targets, checked for leaks.
    Listing,
    /// No organisation's records in particular.
    Independent,
    /// The caller's own patient record (a patient's account's link): the same request for
    /// both targets, checked for leaks.
    OwnPatient,
}

/// The caller, with its credential.
struct Caller {
    label: String,
    role: AccountRole,
    /// RA1 for provider roles.
    in_ra1: bool,
    credential: Credential,
}

impl Caller {
    fn is_person(&self) -> bool {
        matches!(self.credential, Credential::Session { .. })
    }
}

enum Credential {
    Token(String),
    Session { cookie: String, csrf: String },
}

/// Records of both providers, made once per backend.
struct Fixtures {
    procedure: [i64; 2],
    patient: [String; 2],
    /// Implants to revise, and their patients: RA1's fixture, and a procedure of RB2 kept for
    /// this alone (a revision by RA1 makes RA1 one of that patient's providers).
    removal_implant: [i64; 2],
    removal_patient: [String; 2],
    job: [i64; 2],
    quarantined: [i64; 2],
    /// A recall case with work at both providers, and one with work at RB2 only.
    case_both: i64,
    case_other_only: i64,
    /// Work items of `case_both`, at RA1 and at RB2.
    entry: [i64; 2],
    /// A review item of a break-glass access by a consultant of RB2, for deciding.
    review: i64,
}

impl Fixtures {
    fn index(target: Target) -> usize {
        match target {
            Target::Own => 0,
            Target::Other => 1,
        }
    }
}

/// A request of the matrix.
struct Sent {
    method: &'static str,
    uri: String,
    body: Option<Vec<u8>>,
    content_type: &'static str,
    headers: Vec<(&'static str, &'static str)>,
}

fn json_request(method: &'static str, uri: String, body: Option<Value>) -> Sent {
    Sent {
        method,
        uri,
        body: body.map(|b| b.to_string().into_bytes()),
        content_type: "application/json",
        headers: Vec::new(),
    }
}

/// How a cell states its access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Statement {
    /// As the policy asks of the role: a purpose when it reads beyond its organisation.
    AsRequired,
    /// The same, without the purpose the role must state.
    Unstated,
    /// Breaking glass, with a purpose when the role gives no direct care.
    BreakGlass,
}

/// The relation of each action's route, and the status a hidden record gets.
fn relation_of(action: Action) -> (Relation, StatusCode) {
    use Action::*;
    match action {
        RecordRemoval | CreateSubmission => (Relation::ActsForOwn, StatusCode::NOT_FOUND),
        ReadQuarantine => (Relation::Listing, StatusCode::NOT_FOUND),
        ReadOwnTimeline | ReadOwnAccessLog => (Relation::OwnPatient, StatusCode::NOT_FOUND),
        // The organisation is named in the request, so a refusal hides nothing.
        RegisterProcedure | ReadFeedbackReport | CreateAccount => {
            (Relation::Record, StatusCode::FORBIDDEN)
        }
        ListAccounts => (Relation::Listing, StatusCode::NOT_FOUND),
        action if action.is_independent() => (Relation::Independent, StatusCode::NOT_FOUND),
        _ => (Relation::Record, StatusCode::NOT_FOUND),
    }
}

/// The request a route's cell sends for `target`: the route's own method and path template,
/// its parameters naming RA1's or RB2's record, and the query and body its action needs.
fn request_for(
    route: &RouteDeclaration,
    action: Action,
    target: Target,
    caller: &Caller,
    f: &Fixtures,
    cell: usize,
    statement: Statement,
) -> Sent {
    let mut sent = request_body_for(route, action, target, f, cell);
    let gives_direct_care = policy::allows(caller.role, action, Relationship::OwnOrganisation);
    match statement {
        Statement::AsRequired if policy::needs_stated_purpose(caller.role, action) => {
            sent.headers.push(("access-purpose", "investigation"));
        }
        Statement::AsRequired | Statement::Unstated => {}
        Statement::BreakGlass => {
            sent.headers.push((
                "break-glass-reason",
                "emergency admission, implants unknown",
            ));
            if !gives_direct_care {
                sent.headers.push(("access-purpose", "investigation"));
            }
        }
    }
    sent
}

/// The request of a route's cell before any statement of access.
fn request_body_for(
    route: &RouteDeclaration,
    action: Action,
    target: Target,
    f: &Fixtures,
    cell: usize,
) -> Sent {
    use Action::*;
    let i = Fixtures::index(target);
    let target_ods = ["RA1", "RB2"][i];
    let patient = f.patient[i].clone();
    let id = match action {
        ReadProcedure | ReadProcedureVersions => f.procedure[i],
        RecordRemoval => f.removal_implant[i],
        ReadSubmission | ReadSubmissionReport => f.job[i],
        ResubmitQuarantined => f.quarantined[i],
        ReadRecallCase => [f.case_both, f.case_other_only][i],
        RefreshRecallCase | ReadRecallWorklist | ExportRecallWorklist | UpdateRecallStatus => {
            f.case_both
        }
        DecideAccessReview => f.review,
        _ => {
            assert!(
                !route.path.contains("{id}"),
                "{action:?} needs a fixture for {}",
                route.path
            );
            0
        }
    };
    let path = route
        .path
        .replace("{id}", &id.to_string())
        .replace("{entry}", &f.entry[i].to_string())
        .replace("{udi_di}", "05012345678917")
        .replace(
            "{username}",
            if action == DesignateApprover {
                [CANDIDATE, CANDIDATE_OTHER][i]
            } else {
                [ADMINISTERED, ADMINISTERED_OTHER][i]
            },
        )
        .replace("{reference}", RESEARCH_PROJECT)
        .replace("{ods}", target_ods);
    let query = match action {
        RecallSearch => "?udi_di=05012345678917".to_string(),
        ReadFeedbackReport => format!("?kind=provider&subject={target_ods}"),
        CreateSubmission => "?registry=mdor_core&version=1.1&format=ndjson".to_string(),
        ReadRecallWorklist | ExportRecallWorklist => ["", "?provider=RB2"][i].to_string(),
        _ => String::new(),
    };
    let body = match action {
        RegisterProcedure => {
            let mut body = procedure_body(&nhs(500 + cell as u32), &format!("MATRIX-{cell}"));
            body["procedure"]["provider"] = json!(target_ods);
            Some(body)
        }
        RecordRemoval => Some(json!({
            "nhs_number": f.removal_patient[i], "kind": "revision", "removal_date": "2025-01-10",
            "reason": "loosening"
        })),
        RecordDeath => Some(json!({ "nhs_number": patient, "date_of_death": "2025-06-01" })),
        RegisterDevice => Some(json!({
            "udi_di": "05012345678924", "manufacturer": "Acme Orthopaedics", "brand": "Acme",
            "model": "Liner 52", "device_type": "hip_liner", "risk_class": "III",
            "registry": "njr"
        })),
        // The purpose travels in the `Access-Purpose` header, as for every identifiable read.
        ReadTimeline => Some(json!({ "nhs_number": patient })),
        ReadAccessLog => Some(json!({ "nhs_number": patient })),
        ResubmitQuarantined => Some(submission_record(700 + 10 * i as u32, target_ods)),
        OpenRecallCase => Some(case_body("FSN-MATRIX", &["LOT7"])),
        RefreshRecallCase => Some(json!({})),
        UpdateRecallStatus => Some(json!({ "status": "provider_notified" })),
        DecideAccessReview => Some(json!({ "decision": "appropriate" })),
        LinkOidcIdentity => Some(json!({ "subject": format!("matrix-subject-{cell}") })),
        DesignateApprover => Some(json!({ "approver": true })),
        CreateAccount => Some(json!({
            "username": format!("matrix.new-{cell}"), "role": "provider_submitter",
            "organisation": target_ods
        })),
        _ => None,
    };
    if action == CreateSubmission {
        let record = submission_record(600 + cell as u32, "RA1");
        return Sent {
            method: route.method,
            uri: format!("{path}{query}"),
            body: Some(format!("{record}\n").into_bytes()),
            content_type: "application/x-ndjson",
            headers: Vec::new(),
        };
    }
    json_request(route.method, format!("{path}{query}"), body)
}

/// A valid `mdor_core` 1.1 record of provider `ods`.
fn submission_record(k: u32, ods: &str) -> Value {
    json!({
        "patient": {
            "nhs_number": nhs(k), "family_name": "Testpatient", "given_name": "Ann",
            "date_of_birth": "1950-03-02", "sex": "female", "postcode": "LS1 4AP"
        },
        "procedure": {
            "local_record_id": format!("SUB-{k}"), "provider": ods, "consultant": "1234567",
            "date": "2024-06-01", "opcs4_code": "W37.1", "action": "implant",
            "laterality": "left", "urgency": "elective"
        },
        "devices": [
            { "udi": "]d2010501234567890017270101", "role": "implanted" },
            { "udi_di": "05012345678917", "lot": "LOT7", "expiry": "2030-01-01", "role": "implanted" }
        ]
    })
}

fn case_body(reference: &str, lots: &[&str]) -> Value {
    json!({
        "reference": reference,
        "title": "Stem 12 taper corrosion",
        "reason": "Field safety notice FSN-2026-077",
        "udi_dis": ["05012345678917"],
        "lots": lots
    })
}

impl TestApp {
    async fn send_as(&self, caller: &Caller, sent: &Sent) -> (StatusCode, String) {
        let mut request = Request::builder()
            .method(sent.method)
            .uri(&sent.uri)
            .header("content-type", sent.content_type);
        for (name, value) in &sent.headers {
            request = request.header(*name, *value);
        }
        match &caller.credential {
            Credential::Token(token) => {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            Credential::Session { cookie, csrf } => {
                request = request
                    .header("cookie", cookie.as_str())
                    .header("x-csrf-token", csrf.as_str());
            }
        }
        let body = sent
            .body
            .clone()
            .map(Body::from)
            .unwrap_or_else(Body::empty);
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// A session of a new account `username` of `role` (in `ods`, or none for a patient, who is
/// linked to `patient`), signed in as its holder would (`support::new_person`).
async fn session_of(
    app: &TestApp,
    username: &str,
    role: AccountRole,
    ods: Option<&str>,
    patient: Option<PatientId>,
) -> Credential {
    let mut started = new_person(&app.ctx, username, role, ods, patient).await;
    // A data manager approves their organisation's accounts only once designated, and with a
    // key, as people do.
    if role == AccountRole::ProviderDataManager {
        mdor_service::operator_set_approver(&app.ctx, &Username::parse(username).unwrap(), true)
            .await
            .unwrap();
        started = enrol_key_and_sign_in(&app.ctx, &started, username, PERSON_PASSWORD)
            .await
            .0;
    }
    Credential::Session {
        cookie: format!("{}={}", mdor_web::SESSION_COOKIE, started.secret.expose()),
        csrf: started.secret.csrf_token(),
    }
}

fn organisation_of(role: AccountRole) -> Option<&'static str> {
    match role {
        AccountRole::ProviderSubmitter
        | AccountRole::ProviderDataManager
        | AccountRole::Consultant => Some("RA1"),
        AccountRole::Regulator => Some("MHRA"),
        AccountRole::Manufacturer => Some("ACME"),
        AccountRole::RegistryAnalyst | AccountRole::Researcher | AccountRole::SystemAdmin => {
            Some("MDOR")
        }
        AccountRole::Patient => None,
    }
}

async fn callers(app: &TestApp, f: &Fixtures) -> Vec<Caller> {
    // The patient's account is linked to RA1's fixture patient.
    let own_record = app
        .store
        .patient_timeline_bounds(&NhsNumber::parse(&f.patient[0]).unwrap())
        .await
        .unwrap()
        .unwrap()
        .patient;
    let mut callers = Vec::new();
    for role in AccountRole::ALL {
        let ods = organisation_of(role);
        let username = format!("matrix.{}", role.as_str().replace('_', "-"));
        let patient = (role == AccountRole::Patient).then_some(own_record);
        callers.push(Caller {
            label: format!("{} session", role.as_str()),
            role,
            in_ra1: ods == Some("RA1"),
            credential: session_of(app, &username, role, ods, patient).await,
        });
    }
    for (role, token) in [
        (AccountRole::ProviderSubmitter, &app.provider),
        (AccountRole::Regulator, &app.regulator),
        (AccountRole::SystemAdmin, &app.admin),
    ] {
        callers.push(Caller {
            label: format!("{} token", role.as_str()),
            role,
            in_ra1: role == AccountRole::ProviderSubmitter,
            credential: Credential::Token(token.clone()),
        });
    }
    callers
}

/// Procedures, submissions, quarantined records and recall work at RA1 and RB2.
async fn fixtures(app: &TestApp) -> Fixtures {
    // The accounts the account-administration routes disable, enable, reset and designate.
    for (username, ods, role) in [
        (ADMINISTERED, "RA1", AccountRole::ProviderSubmitter),
        (ADMINISTERED_OTHER, "RB2", AccountRole::ProviderSubmitter),
        (CANDIDATE, "RA1", AccountRole::ProviderDataManager),
        (CANDIDATE_OTHER, "RB2", AccountRole::ProviderDataManager),
    ] {
        mdor_service::create_account(
            &app.ctx,
            &AccountRequest {
                username: Username::parse(username).unwrap(),
                role,
                organisation: Some(OdsCode::parse(ods).unwrap()),
                patient: None,
            },
        )
        .await
        .unwrap();
    }
    mdor_service::research::create_research_project(
        &app.ctx,
        &mdor_service::research::ResearchProjectRequest {
            reference: RESEARCH_PROJECT.into(),
            title: "Matrix project".into(),
            organisation: OdsCode::parse("MDOR").unwrap(),
            registry: None,
            approved_by: "Data Access Committee".into(),
            expires_on: None,
        },
    )
    .await
    .unwrap();
    let tokens = [&app.provider, &app.other_provider];
    let mut procedure = [0; 2];
    let mut implant = [0; 2];
    // Ten apart: `nhs(k)` skips numbers without a valid check digit, so neighbours can meet.
    let patient = [nhs(401), nhs(411)];
    let removal_patient = [nhs(401), nhs(421)];
    let mut job = [0; 2];
    let mut quarantined = [0; 2];
    for (i, ods) in ["RA1", "RB2"].into_iter().enumerate() {
        let mut body = procedure_body(&patient[i], &format!("FIXTURE-{ods}"));
        body["procedure"]["provider"] = json!(ods);
        body["devices"][1]["lot"] = json!(["LOT7", "LOT8"][i]);
        let created = app.post("/api/v1/procedures", tokens[i], &body, None).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        procedure[i] = created.body["id"].as_i64().unwrap();
        implant[i] = created.body["implants"][0]["id"].as_i64().unwrap();

        // One accepted record and one rejected into the quarantine.
        // RB2's second patient, whose implant RA1's roles revise.
        if ods == "RB2" {
            let mut body = procedure_body(&removal_patient[1], "FIXTURE-RB2-REVISED");
            body["procedure"]["provider"] = json!("RB2");
            body["devices"][1]["lot"] = json!("LOT9");
            let created = app.post("/api/v1/procedures", tokens[i], &body, None).await;
            assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
            implant[i] = created.body["implants"][0]["id"].as_i64().unwrap();
        }

        let mut broken = submission_record(431 + 10 * i as u32, ods);
        broken["procedure"]["urgency"] = json!("whenever");
        let upload = format!(
            "{}\n{}\n",
            submission_record(451 + 10 * i as u32, ods),
            broken
        );
        let request =
            Request::post("/api/v1/submissions?registry=mdor_core&version=1.1&format=ndjson")
                .header("authorization", format!("Bearer {}", tokens[i]))
                .header("content-type", "application/x-ndjson")
                .body(Body::from(upload))
                .unwrap();
        let reply = app.send(request).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
        job[i] = reply.body["id"].as_i64().unwrap();
        mdor_service::process_submission(&app.ctx, SubmissionJobId(job[i]))
            .await
            .unwrap();
        let entries = app.get("/api/v1/quarantine", Some(tokens[i])).await;
        quarantined[i] = entries.body["entries"][0]["id"].as_i64().unwrap();
    }
    let open = |reference: &'static str, lots: &'static [&'static str]| async move {
        let reply = app
            .post(
                "/api/v1/recall-cases",
                &app.regulator,
                &case_body(reference, lots),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["id"].as_i64().unwrap()
    };
    let case_both = open("FSN-BOTH", &["LOT7", "LOT8"]).await;
    let case_other_only = open("FSN-RB2", &["LOT8"]).await;
    let mut entry = [0; 2];
    for (i, ods) in ["RA1", "RB2"].into_iter().enumerate() {
        let page = app
            .get_for(
                &format!("/api/v1/recall-cases/{case_both}/patients?provider={ods}"),
                &app.regulator,
                "recall",
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        entry[i] = page.body["entries"][0]["id"].as_i64().unwrap();
    }
    // A consultant of RB2 breaks glass on RB2's own procedure (kept away from RA1's patient,
    // whose access log the patient's cells read): a review item to decide.
    let Credential::Session { cookie, csrf } = session_of(
        app,
        "matrix.fixture-consultant",
        AccountRole::Consultant,
        Some("RB2"),
        None,
    )
    .await
    else {
        unreachable!("a session");
    };
    let broke = app
        .send(
            Request::get(format!("/api/v1/procedures/{}", procedure[1]))
                .header("cookie", cookie)
                .header("x-csrf-token", csrf)
                .header("break-glass-reason", "fixture")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(broke.status, StatusCode::OK, "{}", broke.body);
    let review = app
        .store
        .access_reviews(&all_reviews())
        .await
        .unwrap()
        .last()
        .unwrap()
        .id
        .0;
    Fixtures {
        procedure,
        patient,
        removal_implant: implant,
        removal_patient,
        job,
        quarantined,
        case_both,
        case_other_only,
        entry,
        review,
    }
}

fn all_reviews() -> AccessReviewQuery {
    AccessReviewQuery {
        include_decided: true,
        after: None,
        limit: 500,
    }
}

/// Another organisation's data in a response, if any: RB2's ODS code or one of its patients'
/// NHS numbers; for a patient, any NHS number but their own.
fn leak_in(text: &str, caller: &Caller, f: &Fixtures, leaks: &[String]) -> Option<String> {
    if let Some(leak) = leaks.iter().find(|l| text.contains(l.as_str())) {
        return Some(leak.clone());
    }
    if caller.role != AccountRole::Patient {
        return None;
    }
    // Test NHS numbers are 999 and seven more digits, standing alone.
    let bytes = text.as_bytes();
    let digit = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_digit);
    (0..bytes.len().saturating_sub(9))
        .filter(|&i| bytes[i..i + 3] == *b"999" && (i..i + 10).all(digit))
        .filter(|&i| (i == 0 || !digit(i - 1)) && !digit(i + 10))
        .map(|i| String::from_utf8_lossy(&bytes[i..i + 10]).into_owned())
        .find(|number| *number != f.patient[0])
}

#[tokio::test]
async fn every_route_answers_every_role_for_its_own_and_another_organisation_as_the_policy_says() {
    for backend in backends() {
        let started = Instant::now();
        let app = spawn_app(backend)
            .await
            .with_accounts(WebSettings::default(), clock);
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
        let fixtures = fixtures(&app).await;
        let callers = callers(&app, &fixtures).await;
        // The approval names the matrix's researcher, as the operator records it.
        mdor_service::research::add_research_member(
            &app.ctx,
            RESEARCH_PROJECT,
            &Username::parse("matrix.researcher").unwrap(),
        )
        .await
        .unwrap();
        let set_up = started.elapsed();
        // What another organisation's records would show if they leaked: RB2's ODS code and
        // its patients' NHS numbers (RB2's procedure, quarantined and accepted records).
        let leaks = ["RB2".to_string(), nhs(411), nhs(441), nhs(461)];
        let reviews = || async {
            app.store
                .access_reviews(&all_reviews())
                .await
                .unwrap()
                .len()
        };

        let mut failures = Vec::new();
        let mut cells = 0;
        // Cells allowed, hidden (own organisation only) and forbidden.
        let mut counts = [0; 3];
        // Cells refused for want of a purpose; break-glass cells allowed and refused.
        let mut unstated_cells = 0;
        let mut break_glass = [0; 2];
        for route in ROUTE_POLICIES {
            let RoutePolicy::Action(action) = route.policy else {
                continue;
            };
            let (relation, hidden) = relation_of(action);
            let anyone_breaks_glass = AccountRole::ALL
                .into_iter()
                .any(|role| policy::allows_break_glass(role, action));
            for caller in &callers {
                for target in [Target::Own, Target::Other] {
                    cells += 1;
                    let relationship = match relation {
                        Relation::Independent => Relationship::Independent,
                        Relation::OwnPatient => Relationship::OwnPatientRecord,
                        Relation::ActsForOwn | Relation::Listing => Relationship::OwnOrganisation,
                        Relation::Record if caller.in_ra1 && target == Target::Own => {
                            Relationship::OwnOrganisation
                        }
                        Relation::Record => Relationship::OtherOrganisation,
                    };
                    let send = |statement| {
                        let sent =
                            request_for(route, action, target, caller, &fixtures, cells, statement);
                        let app = &app;
                        async move {
                            let (status, text) = app.send_as(caller, &sent).await;
                            let cell = format!(
                                "{} {} {:?} as {} for {target:?}: {status} {}",
                                sent.method,
                                sent.uri,
                                sent.headers,
                                caller.label,
                                text.chars().take(200).collect::<String>()
                            );
                            (status, text, cell)
                        }
                    };
                    let (status, text, cell) = send(Statement::AsRequired).await;
                    let own_only =
                        !policy::allows(caller.role, action, Relationship::OtherOrganisation);
                    let allowed = policy::allows(caller.role, action, relationship);
                    if allowed && (caller.is_person() || !action.needs_a_person()) {
                        counts[0] += 1;
                        // The matrix's registry has no identity provider: a link that gets
                        // as far as saying so was let through by the policy.
                        let unconfigured = action == Action::LinkOidcIdentity
                            && status == StatusCode::NOT_FOUND
                            && text.contains("\"oidc_not_configured\"");
                        let ok =
                            status.is_success() || status == StatusCode::CONFLICT || unconfigured;
                        if !ok {
                            failures.push(format!("allowed, refused: {cell}"));
                        }
                        if own_only
                            && relation != Relation::Independent
                            && let Some(leak) = leak_in(&text, caller, &fixtures, &leaks)
                        {
                            failures.push(format!("leaks {leak}: {cell}"));
                        }
                    } else if allowed {
                        counts[2] += 1;
                        if status != StatusCode::FORBIDDEN {
                            failures.push(format!("a person's action, expected 403: {cell}"));
                        }
                    } else if policy::only_by_break_glass(caller.role, action) {
                        counts[2] += 1;
                        if status != StatusCode::FORBIDDEN || !text.contains("break_glass_required")
                        {
                            failures.push(format!("expected 403 break_glass_required: {cell}"));
                        }
                    } else if policy::allows_some(caller.role, action) {
                        counts[1] += 1;
                        if status != hidden {
                            failures.push(format!("expected {hidden}: {cell}"));
                        }
                    } else {
                        counts[2] += 1;
                        if status != StatusCode::FORBIDDEN {
                            failures.push(format!("expected 403: {cell}"));
                        }
                    }

                    // Without the purpose it must state, the same request reads nothing.
                    if allowed && policy::needs_stated_purpose(caller.role, action) {
                        unstated_cells += 1;
                        let (status, text, cell) = send(Statement::Unstated).await;
                        if status != StatusCode::UNPROCESSABLE_ENTITY
                            || !text.contains("\"purpose_required\"")
                        {
                            failures.push(format!("expected 422 purpose_required: {cell}"));
                        }
                    }

                    // Breaking glass: a person whose role may gets the record and raises one
                    // review item; anyone else is refused and raises none.
                    if anyone_breaks_glass {
                        let before = reviews().await;
                        let (status, _, cell) = send(Statement::BreakGlass).await;
                        let raised = reviews().await - before;
                        if policy::allows_break_glass(caller.role, action) && caller.is_person() {
                            break_glass[0] += 1;
                            if !status.is_success() || raised != 1 {
                                failures.push(format!(
                                    "break-glass allowed, expected 2xx and one review ({raised}): {cell}"
                                ));
                            }
                        } else {
                            break_glass[1] += 1;
                            if status != StatusCode::FORBIDDEN || raised != 0 {
                                failures.push(format!(
                                    "break-glass refused, expected 403 and no review ({raised}): {cell}"
                                ));
                            }
                        }
                    }
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{backend}: {} of {cells} cells wrong:\n{}",
            failures.len(),
            failures.join("\n")
        );
        assert!(counts.iter().all(|&n| n > 0), "{counts:?}");
        assert!(unstated_cells > 0 && break_glass.iter().all(|&n| n > 0));
        eprintln!(
            "{backend}: {cells} cells ({} allowed, {} hidden, {} forbidden); {unstated_cells} \
             refused without their purpose; {} break-glass allowed, {} refused; set-up {:.1} s, \
             all {:.1} s",
            counts[0],
            counts[1],
            counts[2],
            break_glass[0],
            break_glass[1],
            set_up.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
    }
}
