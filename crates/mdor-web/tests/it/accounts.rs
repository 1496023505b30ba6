//! Account administration over HTTP on every backend (issue 4 §1): an administrator's own
//! session, stepped up within 10 minutes, creates an account whose printed credentials sign
//! in, lists accounts without credentials, resets a holder's lost credentials (the old
//! password, codes, passkeys and sessions stop working), disables and re-enables an account;
//! an API token, a non-administrator and a stale step-up are refused; bad input names each
//! field; and every action is audited with the administrator, purpose and request. A
//! provider's data manager approves its own organisation's accounts only, with a key.

use std::sync::atomic::{AtomicI64, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use mdor_service::accounts::Username;
use mdor_service::{AccountRole, SignInRequest, StartedSession};
use mdor_web::WebSettings;

use crate::support::{
    PERSON_PASSWORD, Reply, TestApp, backends, enrol_key_and_sign_in, new_person, spawn_app,
};

const CLERK_PASSWORD: &str = "a clerk's own long passphrase";

static NOW: AtomicI64 = AtomicI64::new(0);

fn clock() -> DateTime<Utc> {
    DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap()
}

async fn as_session(
    app: &TestApp,
    session: &StartedSession,
    method: &str,
    uri: &str,
    body: Option<&Value>,
) -> Reply {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(
            "cookie",
            format!("{}={}", mdor_web::SESSION_COOKIE, session.secret.expose()),
        )
        .header("x-csrf-token", session.secret.csrf_token());
    let body = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    app.send(request.body(body).unwrap()).await
}

/// Signs in with the credentials an administrator handed over, choosing a password.
async fn first_sign_in(
    app: &TestApp,
    issued: &Value,
) -> Result<StartedSession, mdor_service::ServiceError> {
    mdor_service::sign_in(
        &app.ctx,
        &SignInRequest {
            username: issued["username"].as_str().unwrap(),
            password: issued["initial_password"].as_str().unwrap(),
            second_factor: issued["backup_codes"][0].as_str().unwrap(),
            new_password: Some(CLERK_PASSWORD),
        },
    )
    .await
}

async fn sign_in_with_own_password(
    app: &TestApp,
    code: &str,
) -> Result<StartedSession, mdor_service::ServiceError> {
    mdor_service::sign_in(
        &app.ctx,
        &SignInRequest {
            username: "new.clerk",
            password: CLERK_PASSWORD,
            second_factor: code,
            new_password: None,
        },
    )
    .await
}

#[tokio::test]
async fn an_administrator_creates_lists_resets_disables_and_reenables_accounts_each_audited() {
    for backend in backends() {
        NOW.store(Utc::now().timestamp(), Ordering::SeqCst);
        let app = spawn_app(backend)
            .await
            .with_accounts(WebSettings::default(), clock);
        let admin = new_person(
            &app.ctx,
            "an.admin",
            AccountRole::SystemAdmin,
            Some("MDOR"),
            None,
        )
        .await;
        let manager = new_person(
            &app.ctx,
            "a.manager",
            AccountRole::ProviderDataManager,
            Some("RA1"),
            None,
        )
        .await;

        // Creation: the credentials are shown once, never cached, and sign in.
        let new_clerk = json!({
            "username": "New.Clerk", "role": "provider_submitter", "organisation": "RA1"
        });
        let created = as_session(&app, &admin, "POST", "/api/v1/accounts", Some(&new_clerk)).await;
        assert_eq!(
            created.status,
            StatusCode::CREATED,
            "{backend}: {}",
            created.body
        );
        assert_eq!(created.headers["cache-control"], "no-store");
        assert_eq!(created.body["username"], "new.clerk");
        assert_eq!(created.body["backup_codes"].as_array().unwrap().len(), 10);
        let clerk = first_sign_in(&app, &created.body).await.unwrap();
        assert_eq!(clerk.role, AccountRole::ProviderSubmitter);

        // The same username again, and bad input naming each field.
        let again = as_session(&app, &admin, "POST", "/api/v1/accounts", Some(&new_clerk)).await;
        assert_eq!(again.status, StatusCode::CONFLICT);
        assert_eq!(again.body["code"], "username_taken");
        let bad = as_session(
            &app,
            &admin,
            "POST",
            "/api/v1/accounts",
            Some(&json!({ "username": "x", "role": "wizard", "organisation": "R-1" })),
        )
        .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
        let fields: Vec<&str> = bad.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["username", "role", "organisation"], "{}", bad.body);
        let mismatched = as_session(
            &app,
            &admin,
            "POST",
            "/api/v1/accounts",
            Some(&json!({ "username": "wrong.kind", "role": "regulator", "organisation": "RA1" })),
        )
        .await;
        assert_eq!(mismatched.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(mismatched.body["field"], "role", "{}", mismatched.body);

        // The list names every account, with no credential in it.
        let listed = as_session(&app, &admin, "GET", "/api/v1/accounts", None).await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
        let names: Vec<&str> = listed
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["username"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a.manager", "an.admin", "new.clerk"]);
        let text = listed.body.to_string();
        for secret in ["password_hash", "totp", "backup", "$argon2id"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }

        // Nobody else administers accounts: not a data manager signed in with a code (an
        // approver acts only with a key, even once designated), not an administrator's token.
        mdor_service::operator_set_approver(&app.ctx, &Username::parse("a.manager").unwrap(), true)
            .await
            .unwrap();
        let refused = as_session(&app, &manager, "GET", "/api/v1/accounts", None).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(refused.body["code"], "phishing_resistant_factor_required");
        let token = app
            .send(
                Request::post("/api/v1/accounts/new.clerk/reset")
                    .header("authorization", format!("Bearer {}", app.admin))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(token.status, StatusCode::FORBIDDEN, "{}", token.body);

        // A reset: the clerk's session ends, the old password and codes fail, the new work.
        let old_code = created.body["backup_codes"][1]
            .as_str()
            .unwrap()
            .to_string();
        let reset = as_session(
            &app,
            &admin,
            "POST",
            "/api/v1/accounts/new.clerk/reset",
            None,
        )
        .await;
        assert_eq!(reset.status, StatusCode::OK, "{}", reset.body);
        assert_eq!(reset.headers["cache-control"], "no-store");
        assert_ne!(
            reset.body["initial_password"],
            created.body["initial_password"]
        );
        assert_ne!(reset.body["totp_secret"], created.body["totp_secret"]);
        assert!(
            mdor_service::authenticate_session(&app.ctx, &clerk.secret)
                .await
                .is_err()
        );
        assert!(matches!(
            sign_in_with_own_password(&app, &old_code).await,
            Err(mdor_service::ServiceError::Unauthenticated)
        ));
        let clerk = first_sign_in(&app, &reset.body).await.unwrap();

        // A reset also revokes an administrator's passkeys: a lost key signs nobody in.
        let other_admin = new_person(
            &app.ctx,
            "other.admin",
            AccountRole::SystemAdmin,
            Some("MDOR"),
            None,
        )
        .await;
        let keys = app
            .store
            .webauthn_credentials(other_admin.account)
            .await
            .unwrap();
        assert_eq!(keys.len(), 1);
        let reset_admin = as_session(
            &app,
            &admin,
            "POST",
            "/api/v1/accounts/other.admin/reset",
            None,
        )
        .await;
        assert_eq!(reset_admin.status, StatusCode::OK);
        assert!(
            app.store
                .webauthn_credentials(other_admin.account)
                .await
                .unwrap()
                .is_empty()
        );

        // Disabled: signed out and refused; re-enabled: signs in again with the same
        // credentials.
        let disabled = as_session(
            &app,
            &admin,
            "POST",
            "/api/v1/accounts/new.clerk/disable",
            None,
        )
        .await;
        assert_eq!(disabled.status, StatusCode::NO_CONTENT);
        assert!(
            mdor_service::authenticate_session(&app.ctx, &clerk.secret)
                .await
                .is_err()
        );
        let code = reset.body["backup_codes"][1].as_str().unwrap();
        assert!(sign_in_with_own_password(&app, code).await.is_err());
        let enabled = as_session(
            &app,
            &admin,
            "POST",
            "/api/v1/accounts/new.clerk/enable",
            None,
        )
        .await;
        assert_eq!(enabled.status, StatusCode::NO_CONTENT);
        let code = reset.body["backup_codes"][2].as_str().unwrap();
        sign_in_with_own_password(&app, code).await.unwrap();
        let unknown = as_session(
            &app,
            &admin,
            "POST",
            "/api/v1/accounts/no.such.user/enable",
            None,
        )
        .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);

        // Eleven minutes after the administrator's last sign-in, administration needs a
        // step-up.
        NOW.fetch_add(11 * 60, Ordering::SeqCst);
        let stale = as_session(&app, &admin, "GET", "/api/v1/accounts", None).await;
        assert_eq!(stale.status, StatusCode::FORBIDDEN, "{}", stale.body);
        assert_eq!(stale.body["code"], "reauthentication_required");

        // The audit names the administrator, the account acted on and the request.
        let entries = app.store.audit_events(None, 10_000).await.unwrap();
        let administration: Vec<(&str, &str, &str, &str)> = entries
            .iter()
            .filter(|e| e.purpose == "administration" && e.role == "system_admin")
            .map(|e| {
                (
                    e.action.as_str(),
                    e.resource.as_str(),
                    e.outcome.as_str(),
                    e.organisation_ods.as_str(),
                )
            })
            .collect();
        let clerk_resource = format!("account/{}", clerk.account);
        let other_resource = format!("account/{}", other_admin.account);
        assert_eq!(
            administration,
            [
                ("account.create", clerk_resource.as_str(), "ok", "MDOR"),
                ("account.list", "account", "ok", "MDOR"),
                (
                    "account.reset_credentials",
                    clerk_resource.as_str(),
                    "ok",
                    "MDOR"
                ),
                (
                    "account.reset_credentials",
                    other_resource.as_str(),
                    "ok",
                    "MDOR"
                ),
                ("account.disable", clerk_resource.as_str(), "ok", "MDOR"),
                ("account.enable", clerk_resource.as_str(), "ok", "MDOR"),
            ],
            "{backend}"
        );
        assert!(
            entries
                .iter()
                .filter(|e| e.purpose == "administration" && e.role == "system_admin")
                .all(|e| e.request_id.is_some())
        );
        // The refusals of the manager, the token and the stale step-up are audited too.
        let denied: Vec<(&str, &str)> = entries
            .iter()
            .filter(|e| e.outcome != "ok" && e.purpose != "authentication")
            .map(|e| (e.role.as_str(), e.outcome.as_str()))
            .collect();
        assert_eq!(
            denied,
            [
                (
                    "provider_data_manager",
                    "phishing_resistant_factor_required"
                ),
                ("admin", "denied"),
                ("system_admin", "reauthentication_required")
            ],
            "{backend}"
        );
    }
}

/// An organisation's approver (a provider's data manager) administers its own staff's
/// accounts only: with a key, never with a code; creating accounts in its own organisation
/// and nowhere else (no administrators, no patients); listing only its own organisation's;
/// another organisation's account is absent to it; every refusal audited.
#[tokio::test]
async fn a_providers_data_manager_approves_its_own_organisations_accounts_and_no_others() {
    for backend in backends() {
        // The real clock: `NOW` belongs to the test above, which runs alongside.
        let app = spawn_app(backend)
            .await
            .with_accounts(WebSettings::default(), Utc::now);
        let with_code = new_person(
            &app.ctx,
            "ra1.approver",
            AccountRole::ProviderDataManager,
            Some("RA1"),
            None,
        )
        .await;
        new_person(
            &app.ctx,
            "rb2.clerk",
            AccountRole::ProviderSubmitter,
            Some("RB2"),
            None,
        )
        .await;
        let clerk = json!({
            "username": "ra1.clerk", "role": "provider_submitter", "organisation": "RA1"
        });
        mdor_service::operator_set_approver(
            &app.ctx,
            &Username::parse("ra1.approver").unwrap(),
            true,
        )
        .await
        .unwrap();

        // Signed in with a code: refused, whatever the account.
        let refused = as_session(&app, &with_code, "POST", "/api/v1/accounts", Some(&clerk)).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(refused.body["code"], "phishing_resistant_factor_required");

        // With a key, their own staff.
        let approver = enrol_key_and_sign_in(&app.ctx, &with_code, "ra1.approver", PERSON_PASSWORD)
            .await
            .0;
        let created = as_session(&app, &approver, "POST", "/api/v1/accounts", Some(&clerk)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        assert!(created.body["initial_password"].is_string());
        for (body, what) in [
            (
                json!({ "username": "rb2.new", "role": "provider_submitter", "organisation": "RB2" }),
                "another provider's account",
            ),
            (
                json!({ "username": "new.admin", "role": "system_admin", "organisation": "MDOR" }),
                "an administrator",
            ),
            (
                json!({ "username": "a.patient", "role": "patient" }),
                "a patient's account",
            ),
        ] {
            let refused =
                as_session(&app, &approver, "POST", "/api/v1/accounts", Some(&body)).await;
            assert_eq!(
                refused.status,
                StatusCode::FORBIDDEN,
                "{what}: {}",
                refused.body
            );
        }

        // Their organisation's accounts, and no other's.
        let listed = as_session(&app, &approver, "GET", "/api/v1/accounts", None).await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
        let listed: Vec<(&str, &str)> = listed
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["username"].as_str().unwrap(),
                    a["organisation"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(listed, [("ra1.approver", "RA1"), ("ra1.clerk", "RA1")]);

        // Another provider's account is absent; their own clerk's is theirs to manage.
        for action in ["disable", "enable", "reset"] {
            let hidden = as_session(
                &app,
                &approver,
                "POST",
                &format!("/api/v1/accounts/rb2.clerk/{action}"),
                None,
            )
            .await;
            assert_eq!(hidden.status, StatusCode::NOT_FOUND, "{action}");
            let own = as_session(
                &app,
                &approver,
                "POST",
                &format!("/api/v1/accounts/ra1.clerk/{action}"),
                None,
            )
            .await;
            assert!(own.status.is_success(), "{action}: {}", own.body);
        }

        // Every refusal is in the audit: the code-signed attempt, three creations and three
        // hidden accounts.
        let entries = app.store.audit_events(None, 500).await.unwrap();
        let refusals: Vec<(&str, &str)> = entries
            .iter()
            .filter(|e| e.role == "provider_data_manager" && e.outcome != "ok")
            .map(|e| (e.action.as_str(), e.outcome.as_str()))
            .collect();
        assert_eq!(
            refusals,
            [
                ("request.authorise", "phishing_resistant_factor_required"),
                ("account.create", "denied"),
                ("account.create", "denied"),
                ("account.create", "denied"),
                ("account.disable", "denied"),
                ("account.enable", "denied"),
                ("account.reset_credentials", "denied"),
            ],
            "{backend}"
        );
    }
}

/// Being a data manager is not enough: an administrator designates an organisation's
/// approvers (never an approver, not even themselves), a designation takes effect on the next
/// request and so does its withdrawal, only a data manager can be designated, and every
/// change and refusal is audited.
#[tokio::test]
async fn an_approver_acts_only_while_an_administrator_has_designated_them() {
    for backend in backends() {
        // The real clock: `NOW` belongs to the first test, which runs alongside.
        let app = spawn_app(backend)
            .await
            .with_accounts(WebSettings::default(), Utc::now);
        let admin = new_person(
            &app.ctx,
            "an.admin",
            AccountRole::SystemAdmin,
            Some("MDOR"),
            None,
        )
        .await;
        let with_code = new_person(
            &app.ctx,
            "ra1.manager",
            AccountRole::ProviderDataManager,
            Some("RA1"),
            None,
        )
        .await;
        let manager = enrol_key_and_sign_in(&app.ctx, &with_code, "ra1.manager", PERSON_PASSWORD)
            .await
            .0;
        new_person(
            &app.ctx,
            "ra1.clerk",
            AccountRole::ProviderSubmitter,
            Some("RA1"),
            None,
        )
        .await;
        let grant = json!({ "approver": true });
        let withdraw = json!({ "approver": false });
        let approver_route = "/api/v1/accounts/ra1.manager/approver";

        // Not designated: a data manager with a key and a fresh step-up is still refused.
        let listing = as_session(&app, &manager, "GET", "/api/v1/accounts", None).await;
        assert_eq!(listing.status, StatusCode::FORBIDDEN, "{backend}");
        assert!(
            listing.body["message"]
                .as_str()
                .unwrap()
                .contains("designates you your organisation's approver"),
            "{}",
            listing.body
        );
        // Nor can they designate themselves.
        let own = as_session(&app, &manager, "PUT", approver_route, Some(&grant)).await;
        assert_eq!(own.status, StatusCode::FORBIDDEN, "{backend}");

        // The administrator designates them; the listing shows it, and they act at once.
        let granted = as_session(&app, &admin, "PUT", approver_route, Some(&grant)).await;
        assert_eq!(granted.status, StatusCode::NO_CONTENT, "{}", granted.body);
        let listed = as_session(&app, &admin, "GET", "/api/v1/accounts", None).await;
        let approvers: Vec<&str> = listed
            .body
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["approver"] == json!(true))
            .map(|a| a["username"].as_str().unwrap())
            .collect();
        assert_eq!(approvers, ["ra1.manager"]);
        let disabled = as_session(
            &app,
            &manager,
            "POST",
            "/api/v1/accounts/ra1.clerk/disable",
            None,
        )
        .await;
        assert_eq!(disabled.status, StatusCode::NO_CONTENT, "{}", disabled.body);

        // Only a data manager can be one.
        let clerk = as_session(
            &app,
            &admin,
            "PUT",
            "/api/v1/accounts/ra1.clerk/approver",
            Some(&grant),
        )
        .await;
        assert_eq!(clerk.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            clerk.body["errors"][0]["field"], "username",
            "{}",
            clerk.body
        );
        assert_eq!(clerk.body["errors"][0]["code"], "not_a_data_manager");

        // Withdrawn, the same session is refused on its next request.
        let withdrawn = as_session(&app, &admin, "PUT", approver_route, Some(&withdraw)).await;
        assert_eq!(withdrawn.status, StatusCode::NO_CONTENT);
        let after = as_session(
            &app,
            &manager,
            "POST",
            "/api/v1/accounts/ra1.clerk/enable",
            None,
        )
        .await;
        assert_eq!(after.status, StatusCode::FORBIDDEN, "{backend}");

        let entries = app.store.audit_events(None, 500).await.unwrap();
        let trail: Vec<(&str, &str, &str)> = entries
            .iter()
            .filter(|e| e.purpose == "administration" && e.role != "operator")
            .map(|e| (e.role.as_str(), e.action.as_str(), e.outcome.as_str()))
            .collect();
        assert_eq!(
            trail,
            [
                ("provider_data_manager", "account.list", "denied"),
                ("provider_data_manager", "account.approver_grant", "denied"),
                ("system_admin", "account.approver_grant", "ok"),
                ("system_admin", "account.list", "ok"),
                ("provider_data_manager", "account.disable", "ok"),
                ("system_admin", "account.approver_revoke", "ok"),
                ("provider_data_manager", "account.enable", "denied"),
            ],
            "{backend}"
        );
    }
}
