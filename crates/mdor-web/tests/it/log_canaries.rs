//! No NHS number, name, postcode, token, password, one-time code, session secret, OpenID
//! Connect secret or break-glass reason reaches a log line. Requests carrying planted canary
//! values (a patient's identifiers, valid and invalid bearer tokens, a malformed NHS number, a
//! person's credentials and session, a reason for breaking glass, and the code, state, nonce,
//! PKCE verifier, ID token and client secret of sign-ins through a local identity provider,
//! and the private key and client assertion of one authenticated by `private_key_jwt`)
//! go through the real router with every log event and span, at TRACE level from every crate
//! (sqlx and tower-http included), written to a buffer; then every line is searched.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use axum::http::StatusCode;
use serde_json::json;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::support::{backends, procedure_body, spawn_app};

/// Everything every test in this binary logs, once the capture is installed.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

/// Installs the process-wide TRACE subscriber (global, so that events from sqlx's SQLite
/// worker thread and spawned tasks are captured too) and returns its buffer.
fn capture() -> Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let capture = Capture::default();
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_span_events(FmtSpan::FULL)
                .with_ansi(false)
                .with_writer(capture.clone())
                .try_init()
                .unwrap();
            capture
        })
        .clone()
}

#[tokio::test]
async fn planted_identifiers_and_tokens_never_appear_in_any_log_line() {
    let capture = capture();
    let canary_nhs = "9434765919";
    let canaries = [
        canary_nhs.to_string(),
        "943 476 5919".to_string(),
        "Canaryfamilyxq".to_string(),
        "Canarygivenzq".to_string(),
        "ZZ9 9ZZ".to_string(),
        "9434765918".to_string(),
        "mdor_c4a4a7c4a4a7c4a4a7c4a4a7c4a4a7c4a4a7c4a4a7c4a4a7c4a4a7c4a4a7c4a4".to_string(),
        "Canaryreasonxq".to_string(),
    ];
    let mut secrets = Vec::new();
    for backend in backends() {
        let app = spawn_app(backend).await;
        secrets.extend([
            app.provider.clone(),
            app.other_provider.clone(),
            app.regulator.clone(),
            app.admin.clone(),
        ]);
        let mut body = procedure_body(canary_nhs, "CANARY-1");
        body["patient"]["family_name"] = json!("Canaryfamilyxq");
        body["patient"]["given_name"] = json!("Canarygivenzq");
        body["patient"]["postcode"] = json!("ZZ9 9ZZ");
        let created = app
            .post(
                "/api/v1/procedures",
                &app.provider,
                &body,
                Some("canary-key"),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let id = created.body["id"].as_i64().unwrap();
        let replay = app
            .post(
                "/api/v1/procedures",
                &app.provider,
                &body,
                Some("canary-key"),
            )
            .await;
        assert_eq!(replay.status, StatusCode::CREATED);
        let mut conflict = body.clone();
        conflict["patient"]["date_of_birth"] = json!("1951-01-01");
        conflict["procedure"]["local_record_id"] = json!("CANARY-2");
        let refused = app
            .post("/api/v1/procedures", &app.provider, &conflict, None)
            .await;
        assert_eq!(refused.status, StatusCode::CONFLICT);
        for token in [&app.provider, &app.other_provider] {
            app.get(&format!("/api/v1/procedures/{id}"), Some(token))
                .await;
        }
        app.get_for(
            &format!("/api/v1/procedures/{id}"),
            &app.regulator,
            "investigation",
        )
        .await;
        app.get_for(
            "/api/v1/recall?udi_di=05012345678917&lot=LOT7",
            &app.regulator,
            "recall",
        )
        .await;
        let timeline = json!({ "nhs_number": canary_nhs, "purpose": "investigation" });
        let read = app
            .post("/api/v1/patients/timeline", &app.regulator, &timeline, None)
            .await;
        assert_eq!(read.status, StatusCode::OK);
        app.post(
            "/api/v1/patients/timeline",
            &app.other_provider,
            &json!({ "nhs_number": canary_nhs }),
            None,
        )
        .await;
        let log = app
            .post(
                "/api/v1/patients/access-log",
                &app.admin,
                &json!({ "nhs_number": canary_nhs }),
                None,
            )
            .await;
        assert_eq!(log.status, StatusCode::OK);
        let invalid = app
            .post(
                "/api/v1/patients/timeline",
                &app.regulator,
                &json!({ "nhs_number": "9434765918", "purpose": "recall" }),
                None,
            )
            .await;
        assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
        let death = json!({ "nhs_number": canary_nhs, "date_of_death": "2025-01-01" });
        app.post("/api/v1/deaths", &app.provider, &death, None)
            .await;
        let unknown_token = app
            .get(
                "/api/v1/procedures/1",
                Some("mdor_c4a4a7c4a4a7c4a4a7c4a4a7c4a4a7c4a4a7c4a4a7c4a4a7c4a4a7c4a4a7c4a4"),
            )
            .await;
        assert_eq!(unknown_token.status, StatusCode::UNAUTHORIZED);

        // A person's sign-ins, session use, step-up and sign-out: no password, code, session
        // secret or CSRF token may be logged either.
        let app = app.with_accounts(mdor_web::WebSettings::default(), chrono::Utc::now);
        let account = mdor_service::create_account(
            &app.ctx,
            &mdor_service::AccountRequest {
                username: mdor_service::accounts::Username::parse("canary.person").unwrap(),
                role: mdor_service::AccountRole::ProviderSubmitter,
                organisation: Some(mdor_domain::OdsCode::parse("RA1").unwrap()),
                patient: None,
            },
        )
        .await
        .unwrap();
        let new_password = "Canarypasswordxq 2026";
        secrets.extend([
            account.initial_password.clone(),
            account.totp_secret.clone(),
            new_password.to_string(),
        ]);
        secrets.extend(account.backup_codes.iter().cloned());
        let sign_in = |second_factor: &str, new: Option<&str>| {
            let mut body = json!({
                "username": "canary.person",
                "password": if new.is_some() { account.initial_password.as_str() } else { new_password },
                "second_factor": second_factor,
            });
            if let Some(new) = new {
                body["new_password"] = json!(new);
            }
            axum::http::Request::post("/api/v1/session")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body.to_string()))
                .unwrap()
        };
        let started = app
            .send(sign_in(&account.backup_codes[0], Some(new_password)))
            .await;
        assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
        let failed = app.send(sign_in(&account.backup_codes[0], None)).await;
        assert_eq!(failed.status, StatusCode::UNAUTHORIZED);
        let cookie = started.headers["set-cookie"].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_string();
        let csrf = started.body["csrf_token"].as_str().unwrap().to_string();
        secrets.extend([
            cookie
                .trim_start_matches("__Host-mdor_session=")
                .to_string(),
            csrf.clone(),
        ]);
        let with_cookie = |method: &str, uri: &str, csrf: &str, body: serde_json::Value| {
            axum::http::Request::builder()
                .method(method)
                .uri(uri)
                .header("cookie", &cookie)
                .header("x-csrf-token", csrf)
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body.to_string()))
                .unwrap()
        };
        let read = app
            .send(with_cookie(
                "GET",
                &format!("/api/v1/procedures/{id}"),
                "",
                json!({}),
            ))
            .await;
        assert_eq!(read.status, StatusCode::OK);
        let forged = app
            .send(with_cookie(
                "POST",
                "/api/v1/deaths",
                &"0".repeat(64),
                death.clone(),
            ))
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        let stepped = app
            .send(with_cookie(
                "POST",
                "/api/v1/session/reauthenticate",
                &csrf,
                json!({ "password": new_password, "second_factor": account.backup_codes[1] }),
            ))
            .await;
        assert_eq!(stepped.status, StatusCode::OK, "{}", stepped.body);
        let renewed = stepped.headers["set-cookie"].to_str().unwrap();
        secrets.push(
            renewed
                .split(';')
                .next()
                .unwrap()
                .trim_start_matches("__Host-mdor_session=")
                .to_string(),
        );
        secrets.push(stepped.body["csrf_token"].as_str().unwrap().to_string());

        // A consultant of another provider breaks glass on the canary patient's procedure and
        // timeline; an administrator lists the review items: the reason is never logged.
        let consultant = mdor_service::create_account(
            &app.ctx,
            &mdor_service::AccountRequest {
                username: mdor_service::accounts::Username::parse("canary.consultant").unwrap(),
                role: mdor_service::AccountRole::Consultant,
                organisation: Some(mdor_domain::OdsCode::parse("RB2").unwrap()),
                patient: None,
            },
        )
        .await
        .unwrap();
        secrets.extend([
            consultant.initial_password.clone(),
            consultant.totp_secret.clone(),
        ]);
        let started = app
            .send(
                axum::http::Request::post("/api/v1/session")
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(
                        json!({
                            "username": "canary.consultant",
                            "password": consultant.initial_password,
                            "second_factor": consultant.backup_codes[0],
                            "new_password": new_password,
                        })
                        .to_string(),
                    ))
                    .unwrap(),
            )
            .await;
        assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
        let cookie = started.headers["set-cookie"].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_string();
        let csrf = started.body["csrf_token"].as_str().unwrap().to_string();
        secrets.extend([
            cookie
                .trim_start_matches("__Host-mdor_session=")
                .to_string(),
            csrf.clone(),
        ]);
        let reason = "Canaryreasonxq unconscious in ED, implants unknown";
        let broken = app
            .send(
                axum::http::Request::get(format!("/api/v1/procedures/{id}"))
                    .header("cookie", &cookie)
                    .header("break-glass-reason", reason)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(broken.status, StatusCode::OK, "{}", broken.body);
        let timeline = app
            .send(
                axum::http::Request::post("/api/v1/patients/timeline")
                    .header("cookie", &cookie)
                    .header("x-csrf-token", &csrf)
                    .header("content-type", "application/json")
                    .header("break-glass-reason", reason)
                    .body(axum::body::Body::from(
                        json!({ "nhs_number": canary_nhs }).to_string(),
                    ))
                    .unwrap(),
            )
            .await;
        assert_eq!(timeline.status, StatusCode::OK, "{}", timeline.body);
        let reviews = app.get("/api/v1/access-reviews", Some(&app.admin)).await;
        assert_eq!(reviews.status, StatusCode::OK, "{}", reviews.body);
        assert_eq!(reviews.body["reviews"][0]["reason"], reason);

        // OpenID Connect sign-ins against the local provider, one succeeding and one refused
        // for its nonce: the code, state, nonce, PKCE verifier, ID tokens, client secret and
        // subject must not be logged either.
        let provider = crate::oidc_provider::Provider::start().await;
        let app = crate::oidc::app_with_provider(
            backend,
            &provider,
            mdor_web::WebSettings::default(),
            chrono::Utc::now,
        )
        .await;
        let subject = "canary-subject-5d1c";
        crate::oidc::linked_account(
            &app,
            &provider,
            "canary.oidc",
            mdor_service::AccountRole::Regulator,
            "MHRA",
            subject,
        )
        .await;
        secrets.extend([
            crate::oidc_provider::CLIENT_SECRET.to_string(),
            subject.to_string(),
            "canary-access-token-0b1e".to_string(),
        ]);
        for nonce_is_right in [true, false] {
            let flow = crate::oidc::start(&app).await;
            let nonce = if nonce_is_right {
                flow.nonce.clone()
            } else {
                "canary-wrong-nonce-77a0".to_string()
            };
            let token = crate::oidc_provider::signed(
                &provider.claims(subject, &nonce, chrono::Utc::now()),
                "key-1",
                crate::oidc_provider::KEY_1,
            );
            let reply = crate::oidc::finish(&app, &provider, &flow, &token).await;
            let expected = if nonce_is_right {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            };
            assert_eq!(reply.status, expected, "{}", reply.body);
            secrets.extend([
                flow.state.clone(),
                flow.nonce.clone(),
                nonce,
                flow.challenge.clone(),
                flow.cookie
                    .trim_start_matches("__Host-mdor_oidc=")
                    .to_string(),
                format!("code-{}", &flow.state[..12]),
                token.clone(),
                // The signature alone, in case a token is logged in parts.
                token.rsplit('.').next().unwrap().to_string(),
            ]);
        }

        // A sign-in authenticated by `private_key_jwt`: no line of the client's private key
        // (in either encoding) and nothing of its assertion may be logged.
        let provider = crate::oidc_provider::Provider::start_with(
            crate::oidc_provider::ClientAuth::PrivateKeyJwt {
                registered: crate::oidc_provider::CLIENT_KEY_PKCS1,
            },
        )
        .await;
        let app = crate::oidc::app_with_provider(
            backend,
            &provider,
            mdor_web::WebSettings::default(),
            chrono::Utc::now,
        )
        .await;
        crate::oidc::linked_account(
            &app,
            &provider,
            "canary.jwt",
            mdor_service::AccountRole::Regulator,
            "MHRA",
            subject,
        )
        .await;
        let flow = crate::oidc::start(&app).await;
        let claims = provider.claims(subject, &flow.nonce, chrono::Utc::now());
        crate::oidc::finish_ok(&app, &provider, &flow, &claims).await;
        for pem in [
            crate::oidc_provider::CLIENT_KEY,
            crate::oidc_provider::CLIENT_KEY_PKCS1,
        ] {
            secrets.extend(
                pem.lines()
                    .filter(|line| !line.starts_with("-----"))
                    .map(str::to_string),
            );
        }
        for assertion in provider.assertions() {
            secrets.extend([
                assertion.raw.clone(),
                assertion.raw.rsplit('.').next().unwrap().to_string(),
                assertion.claims["jti"].as_str().unwrap().to_string(),
            ]);
        }
        assert_eq!(provider.assertions().len(), 1);
    }
    let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.lines().count() > 100 && text.contains("request_id") && text.contains("sqlx::query"),
        "the capture saw the requests: {text}"
    );
    for line in text.lines() {
        for canary in canaries.iter().chain(&secrets) {
            assert!(
                !line.contains(canary.as_str()),
                "a log line holds a planted value: {line}"
            );
        }
    }
}
