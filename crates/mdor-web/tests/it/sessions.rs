//! People's sessions over HTTP: the cookie's attributes, a session acting as its account's
//! principal on record routes, CSRF on every state-changing request made with a cookie (and
//! not with a bearer token), listing, revoking, step-up and sign-out, one response for every
//! failed sign-in, the per-address limit (429 with Retry-After), and the security headers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use chrono::Utc;
use serde_json::{Value, json};

use mdor_domain::OdsCode;
use mdor_service::accounts::{AccountRequest, Username};
use mdor_service::{AccountRole, CreatedAccount, SignInRequest};
use mdor_web::{RateLimit, WebSettings};

use crate::support::{
    Reply, SoftKey, TestApp, backends, key_answer, nhs, procedure_body, soft_key, spawn_app,
};

const PASSWORD: &str = "correct horse battery staple 42";
const CSP: &str = "default-src 'self'; frame-ancestors 'none'";

/// The app with accounts, the real clock and these settings.
async fn app_with(backend: &str, settings: WebSettings) -> TestApp {
    spawn_app(backend).await.with_accounts(settings, Utc::now)
}

/// An account that has replaced its initial password (using its last backup code); backup
/// codes 0 to 8 are left for the test's sign-ins.
async fn person(app: &TestApp, username: &str, role: AccountRole, ods: &str) -> CreatedAccount {
    let account = mdor_service::create_account(
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
    let started = mdor_service::sign_in(
        &app.ctx,
        &SignInRequest {
            username,
            password: &account.initial_password,
            second_factor: &account.backup_codes[9],
            new_password: Some(PASSWORD),
        },
    )
    .await
    .unwrap();
    let caller = mdor_service::authenticate_session(&app.ctx, &started.secret)
        .await
        .unwrap();
    mdor_service::sign_out(&app.ctx, &caller).await.unwrap();
    account
}

fn from_address(mut request: Request<Body>, address: [u8; 4]) -> Request<Body> {
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((address, 50_000))));
    request
}

async fn sign_in_from(
    app: &TestApp,
    address: [u8; 4],
    username: &str,
    password: &str,
    second_factor: &str,
) -> Reply {
    let body =
        json!({ "username": username, "password": password, "second_factor": second_factor });
    let request = Request::post("/api/v1/session")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    app.send(from_address(request, address)).await
}

/// A signed-in session: the `Cookie` header value and the CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

async fn signed_in(app: &TestApp, account: &CreatedAccount, backup_code: usize) -> Session {
    let reply = sign_in_from(
        app,
        [192, 0, 2, 1],
        &account.username,
        PASSWORD,
        &account.backup_codes[backup_code],
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    session_of(&reply)
}

fn session_of(reply: &Reply) -> Session {
    let set_cookie = reply.headers["set-cookie"].to_str().unwrap();
    Session {
        cookie: set_cookie.split(';').next().unwrap().to_string(),
        csrf: reply.body["csrf_token"].as_str().unwrap().to_string(),
    }
}

/// Over HTTP: registers a new software key with `session` (signed in with a code within the
/// last 10 minutes), then signs in with the password and the key from another address. The
/// new session, and the key.
async fn enrol_key_and_sign_in(
    app: &TestApp,
    session: &Session,
    username: &str,
) -> (Session, SoftKey) {
    let mut key = soft_key();
    let begun = with_cookie(
        app,
        "POST",
        "/api/v1/session/credentials",
        &session.cookie,
        Some(&session.csrf),
        None,
    )
    .await;
    assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
    let answer = key_answer(&mut key, &begun.body["options"], true);
    let registered = with_cookie(
        app,
        "POST",
        "/api/v1/session/credentials/finish",
        &session.cookie,
        Some(&session.csrf),
        Some(&json!({ "ceremony": begun.body["ceremony"], "credential": answer, "label": "desk key" })),
    )
    .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.body
    );
    assert_eq!(registered.body["label"], "desk key");
    let session = key_sign_in(app, &mut key, username).await;
    (session, key)
}

/// Over HTTP: signs in with the password and `key`.
async fn key_sign_in(app: &TestApp, key: &mut SoftKey, username: &str) -> Session {
    let post = |uri: &'static str, body: Value| {
        let request = Request::post(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        app.send(from_address(request, [192, 0, 2, 77]))
    };
    let begun = post(
        "/api/v1/session/webauthn",
        json!({ "username": username, "password": PASSWORD }),
    )
    .await;
    assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
    let answer = key_answer(key, &begun.body["options"], false);
    let signed_in = post(
        "/api/v1/session/webauthn/finish",
        json!({ "ceremony": begun.body["ceremony"], "credential": answer }),
    )
    .await;
    assert_eq!(signed_in.status, StatusCode::CREATED, "{}", signed_in.body);
    assert_eq!(signed_in.body["factor"], "webauthn");
    assert_eq!(signed_in.body["phishing_resistant"], true);
    session_of(&signed_in)
}

/// A request with the session's cookie and, when given, an `X-CSRF-Token`.
async fn with_cookie(
    app: &TestApp,
    method: &str,
    uri: &str,
    cookie: &str,
    csrf: Option<&str>,
    body: Option<&Value>,
) -> Reply {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("cookie", cookie);
    if let Some(csrf) = csrf {
        request = request.header("x-csrf-token", csrf);
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

#[tokio::test]
async fn sign_in_sets_a_host_only_secure_http_only_strict_cookie_and_the_session_acts_as_its_account()
 {
    for backend in backends() {
        let app = app_with(backend, WebSettings::default()).await;
        let account = person(&app, "p.jones", AccountRole::ProviderSubmitter, "RA1").await;
        let reply = sign_in_from(
            &app,
            [192, 0, 2, 1],
            "p.jones",
            PASSWORD,
            &account.backup_codes[0],
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        let set_cookie = reply.headers["set-cookie"].to_str().unwrap();
        let (pair, attributes) = set_cookie.split_once(';').unwrap();
        let secret = pair.strip_prefix("__Host-mdor_session=").unwrap();
        assert!(
            secret.starts_with("mdors_") && secret.len() == 6 + 64,
            "{secret}"
        );
        let attributes: Vec<&str> = attributes.split(';').map(str::trim).collect();
        for expected in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
            assert!(attributes.contains(&expected), "{set_cookie}");
        }
        assert!(
            !set_cookie.to_ascii_lowercase().contains("domain"),
            "{set_cookie}"
        );
        assert!(attributes.contains(&"Max-Age=43200"), "{set_cookie}");
        assert_eq!(reply.headers["cache-control"], "no-store");
        // The body names the session and its CSRF token, never the secret.
        assert_eq!(reply.body["role"], "provider_submitter");
        assert_eq!(reply.body["organisation"], "RA1");
        assert_eq!(reply.body["idle_timeout_seconds"], 1800);
        assert_eq!(reply.body["csrf_token"].as_str().unwrap().len(), 64);
        assert!(!reply.body.to_string().contains(secret));
        let session = session_of(&reply);

        let current =
            with_cookie(&app, "GET", "/api/v1/session", &session.cookie, None, None).await;
        assert_eq!(current.status, StatusCode::OK);
        assert_eq!(current.body["session"], reply.body["session"]);
        assert_eq!(current.body["csrf_token"], session.csrf.as_str());

        // The session acts as RA1's provider submitter on the record routes.
        let created = with_cookie(
            &app,
            "POST",
            "/api/v1/procedures",
            &session.cookie,
            Some(&session.csrf),
            Some(&procedure_body(&nhs(1), "S-1")),
        )
        .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let id = created.body["id"].as_i64().unwrap();
        let read = with_cookie(
            &app,
            "GET",
            &format!("/api/v1/procedures/{id}"),
            &session.cookie,
            None,
            None,
        )
        .await;
        assert_eq!(read.status, StatusCode::OK, "{}", read.body);
        assert_eq!(read.body, created.body);
        // And is refused what a provider submitter is refused, like a token.
        let register = with_cookie(
            &app,
            "POST",
            "/api/v1/devices",
            &session.cookie,
            Some(&session.csrf),
            Some(&json!({})),
        )
        .await;
        assert_eq!(
            register.status,
            app.post("/api/v1/devices", &app.provider, &json!({}), None)
                .await
                .status
        );
        // The audit names the role, with no token.
        let events = app.store.audit_events(None, 1000).await.unwrap();
        let read_event = events
            .iter()
            .rev()
            .find(|e| e.action == "procedure.read")
            .unwrap();
        assert_eq!(read_event.token, None);
        assert_eq!(read_event.role, "provider_submitter");
        // And the person: the log entry names the account whose session read the record.
        let log = app.store.audit_log_page(0, 10_000).await.unwrap();
        let read_entry = log
            .iter()
            .rev()
            .find(|e| e.action == "procedure.read")
            .unwrap();
        assert_eq!(read_entry.account, Some(account.id), "{backend}");
        assert_eq!(read_entry.token, None);
        // A token's read names no account.
        let by_token = app
            .get(&format!("/api/v1/procedures/{id}"), Some(&app.provider))
            .await;
        assert_eq!(by_token.status, StatusCode::OK);
        let log = app.store.audit_log_page(0, 10_000).await.unwrap();
        let token_entry = log.last().unwrap();
        assert_eq!(token_entry.action, "procedure.read");
        assert_eq!(token_entry.account, None);
        assert!(token_entry.token.is_some());
    }
}

#[tokio::test]
async fn a_cookie_needs_its_csrf_token_to_change_anything_and_a_bearer_token_does_not() {
    for backend in backends() {
        let app = app_with(backend, WebSettings::default()).await;
        let account = person(&app, "p.jones", AccountRole::ProviderSubmitter, "RA1").await;
        let session = signed_in(&app, &account, 0).await;
        let other = signed_in(&app, &account, 1).await;
        let body = procedure_body(&nhs(2), "C-1");
        for csrf in [None, Some("0".repeat(64)), Some(other.csrf.clone())] {
            let reply = with_cookie(
                &app,
                "POST",
                "/api/v1/procedures",
                &session.cookie,
                csrf.as_deref(),
                Some(&body),
            )
            .await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{csrf:?}");
            assert_eq!(
                reply.body,
                json!({
                    "code": "csrf_token_invalid",
                    "message": "a request that changes data with a session must carry its X-CSRF-Token",
                    "field": "X-CSRF-Token"
                })
            );
        }
        for (method, uri) in [
            ("DELETE", "/api/v1/session".to_string()),
            ("DELETE", format!("/api/v1/sessions/{}", 1)),
            ("POST", "/api/v1/session/reauthenticate".to_string()),
        ] {
            let reply =
                with_cookie(&app, method, &uri, &session.cookie, None, Some(&json!({}))).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {uri}");
            assert_eq!(reply.body["code"], "csrf_token_invalid");
        }
        // Nothing was written by the refused requests.
        let listed =
            with_cookie(&app, "GET", "/api/v1/sessions", &session.cookie, None, None).await;
        assert_eq!(listed.body["sessions"].as_array().unwrap().len(), 2);

        let accepted = with_cookie(
            &app,
            "POST",
            "/api/v1/procedures",
            &session.cookie,
            Some(&session.csrf),
            Some(&body),
        )
        .await;
        assert_eq!(accepted.status, StatusCode::CREATED, "{}", accepted.body);
        // Idempotency keys are remembered per API token; a session has none.
        let keyed = Request::post("/api/v1/procedures")
            .header("cookie", &session.cookie)
            .header("x-csrf-token", &session.csrf)
            .header("idempotency-key", "k-1")
            .header("content-type", "application/json")
            .body(Body::from(procedure_body(&nhs(4), "C-3").to_string()))
            .unwrap();
        let keyed = app.send(keyed).await;
        assert_eq!(keyed.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            keyed.body["errors"][0]["code"],
            "idempotency_key_needs_token"
        );

        // A bearer token needs no CSRF token, and a stray cookie beside it changes nothing.
        let request = Request::post("/api/v1/procedures")
            .header("authorization", format!("Bearer {}", app.provider))
            .header("cookie", &session.cookie)
            .header("content-type", "application/json")
            .body(Body::from(procedure_body(&nhs(3), "C-2").to_string()))
            .unwrap();
        assert_eq!(app.send(request).await.status, StatusCode::CREATED);

        // Signing out needs the token too, then ends the session and clears the cookie.
        let out = with_cookie(
            &app,
            "DELETE",
            "/api/v1/session",
            &session.cookie,
            Some(&session.csrf),
            None,
        )
        .await;
        assert_eq!(out.status, StatusCode::NO_CONTENT);
        let cleared = out.headers["set-cookie"].to_str().unwrap();
        assert!(cleared.starts_with("__Host-mdor_session=;") && cleared.contains("Max-Age=0"));
        let after = with_cookie(&app, "GET", "/api/v1/session", &session.cookie, None, None).await;
        assert_eq!(after.status, StatusCode::UNAUTHORIZED);
        assert_eq!(after.body["code"], "unauthenticated");
        let read = with_cookie(
            &app,
            "GET",
            "/api/v1/procedures/1",
            &session.cookie,
            None,
            None,
        )
        .await;
        assert_eq!(read.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn holders_list_and_revoke_their_sessions_and_step_up_replaces_the_cookie() {
    for backend in backends() {
        let app = app_with(backend, WebSettings::default()).await;
        let account = person(&app, "p.jones", AccountRole::ProviderSubmitter, "RA1").await;
        let other_person = person(&app, "o.other", AccountRole::ProviderSubmitter, "RB2").await;
        let laptop = signed_in(&app, &account, 0).await;
        let phone = signed_in(&app, &account, 1).await;
        let theirs = signed_in(&app, &other_person, 0).await;

        let listed = with_cookie(&app, "GET", "/api/v1/sessions", &laptop.cookie, None, None).await;
        assert_eq!(listed.status, StatusCode::OK);
        assert_eq!(listed.headers["cache-control"], "no-store");
        let sessions = listed.body["sessions"].as_array().unwrap();
        assert_eq!(sessions.len(), 2);
        assert_eq!(sessions[0]["current"], true);
        assert_eq!(sessions[1]["current"], false);
        let phone_id = sessions[1]["id"].as_i64().unwrap();
        let their_id = with_cookie(&app, "GET", "/api/v1/session", &theirs.cookie, None, None)
            .await
            .body["session"]
            .as_i64()
            .unwrap();

        // Another account's session looks absent.
        let refused = with_cookie(
            &app,
            "DELETE",
            &format!("/api/v1/sessions/{their_id}"),
            &laptop.cookie,
            Some(&laptop.csrf),
            None,
        )
        .await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND);
        assert_eq!(refused.body["code"], "session_not_found");
        let revoked = with_cookie(
            &app,
            "DELETE",
            &format!("/api/v1/sessions/{phone_id}"),
            &laptop.cookie,
            Some(&laptop.csrf),
            None,
        )
        .await;
        assert_eq!(revoked.status, StatusCode::NO_CONTENT);
        assert!(!revoked.headers.contains_key("set-cookie"));
        let gone = with_cookie(&app, "GET", "/api/v1/session", &phone.cookie, None, None).await;
        assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
        let still = with_cookie(&app, "GET", "/api/v1/session", &theirs.cookie, None, None).await;
        assert_eq!(still.status, StatusCode::OK);

        // Step-up with a wrong password fails like a sign-in and leaves the session alone.
        let wrong = with_cookie(
            &app,
            "POST",
            "/api/v1/session/reauthenticate",
            &laptop.cookie,
            Some(&laptop.csrf),
            Some(&json!({ "password": "not the password!", "second_factor": account.backup_codes[2] })),
        )
        .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert_eq!(wrong.body["code"], "sign_in_failed");
        let stepped = with_cookie(
            &app,
            "POST",
            "/api/v1/session/reauthenticate",
            &laptop.cookie,
            Some(&laptop.csrf),
            Some(&json!({ "password": PASSWORD, "second_factor": account.backup_codes[3] })),
        )
        .await;
        assert_eq!(stepped.status, StatusCode::OK, "{}", stepped.body);
        let renewed = session_of(&stepped);
        assert_ne!(renewed.cookie, laptop.cookie);
        assert_ne!(renewed.csrf, laptop.csrf);
        assert_eq!(stepped.body["session"], sessions[0]["id"]);
        let old = with_cookie(&app, "GET", "/api/v1/session", &laptop.cookie, None, None).await;
        assert_eq!(old.status, StatusCode::UNAUTHORIZED);
        let new = with_cookie(&app, "GET", "/api/v1/session", &renewed.cookie, None, None).await;
        assert_eq!(new.status, StatusCode::OK);
        assert_eq!(
            new.body["reauthenticated_at"],
            stepped.body["reauthenticated_at"]
        );

        // Revoking the current session clears its cookie.
        let own = with_cookie(
            &app,
            "DELETE",
            &format!("/api/v1/sessions/{}", sessions[0]["id"]),
            &renewed.cookie,
            Some(&renewed.csrf),
            None,
        )
        .await;
        assert_eq!(own.status, StatusCode::NO_CONTENT);
        assert!(
            own.headers["set-cookie"]
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
    }
}

#[tokio::test]
async fn an_unknown_user_a_wrong_password_and_a_locked_or_disabled_account_get_one_response() {
    for backend in backends() {
        let app = app_with(backend, WebSettings::default()).await;
        let good = person(&app, "good.user", AccountRole::ProviderSubmitter, "RA1").await;
        let locked = person(&app, "locked.user", AccountRole::ProviderSubmitter, "RA1").await;
        let disabled = person(&app, "gone.user", AccountRole::ProviderSubmitter, "RA1").await;
        // A hundred failures in the last hour lock the account.
        for _ in 0..mdor_service::accounts::LOCK_AFTER_FAILURES {
            app.store
                .record_login_failure(Some(locked.id), Utc::now(), None)
                .await
                .unwrap();
        }
        mdor_service::operator_disable_account(&app.ctx, &Username::parse("gone.user").unwrap())
            .await
            .unwrap();

        let attempts = [
            ("nobody.here", PASSWORD, good.backup_codes[0].as_str()),
            (
                "good.user",
                "not the password!",
                good.backup_codes[0].as_str(),
            ),
            ("good.user", PASSWORD, "000000"),
            ("locked.user", PASSWORD, locked.backup_codes[0].as_str()),
            ("gone.user", PASSWORD, disabled.backup_codes[0].as_str()),
        ];
        let mut replies = Vec::new();
        for (username, password, code) in attempts {
            let reply = sign_in_from(&app, [192, 0, 2, 7], username, password, code).await;
            let mut names: Vec<String> = reply
                .headers
                .keys()
                .map(|name| name.as_str().to_string())
                .filter(|name| name != "x-request-id")
                .collect();
            names.sort();
            replies.push((reply.status, reply.body, names));
        }
        for reply in &replies[1..] {
            assert_eq!(reply, &replies[0]);
        }
        assert_eq!(replies[0].0, StatusCode::UNAUTHORIZED);
        assert_eq!(replies[0].1["code"], "sign_in_failed");
        assert!(!replies[0].2.contains(&"set-cookie".to_string()));
        // The audit keeps the reasons the responses do not show.
        let outcomes: Vec<String> = app
            .store
            .audit_events(None, 1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "account.login")
            .map(|e| e.outcome)
            .collect();
        for reason in [
            "unknown_account",
            "bad_password",
            "bad_second_factor",
            "locked",
            "disabled",
        ] {
            assert!(
                outcomes.iter().any(|o| o == reason),
                "{reason}: {outcomes:?}"
            );
        }
    }
}

#[tokio::test]
async fn sign_in_attempts_beyond_the_burst_from_one_address_get_429_with_retry_after() {
    for backend in backends() {
        let settings = WebSettings {
            sign_in_limit: RateLimit {
                burst: 3,
                refill_every: Duration::from_secs(60),
            },
            ..WebSettings::default()
        };
        let app = app_with(backend, settings).await;
        let account = person(&app, "p.jones", AccountRole::ProviderSubmitter, "RA1").await;
        for _ in 0..3 {
            let reply = sign_in_from(&app, [198, 51, 100, 1], "nobody", PASSWORD, "123456").await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        }
        // The fourth, even with the right credentials, is refused before they are looked at.
        let limited = sign_in_from(
            &app,
            [198, 51, 100, 1],
            "p.jones",
            PASSWORD,
            &account.backup_codes[0],
        )
        .await;
        assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.body["code"], "too_many_requests");
        let retry_after: u64 = limited.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        assert!(!limited.headers.contains_key("set-cookie"));
        // The backup code was not spent, and another address is not limited.
        let other = sign_in_from(
            &app,
            [198, 51, 100, 2],
            "p.jones",
            PASSWORD,
            &account.backup_codes[0],
        )
        .await;
        assert_eq!(other.status, StatusCode::CREATED, "{}", other.body);
    }
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_api_responses_are_never_cached() {
    for backend in backends() {
        let app = app_with(backend, WebSettings::default()).await;
        let account = person(&app, "p.jones", AccountRole::ProviderSubmitter, "RA1").await;
        let session = signed_in(&app, &account, 0).await;
        let replies = [
            app.get("/health", None).await,
            app.get("/api/v1/openapi.json", None).await,
            app.get("/api/v1/procedures/1", None).await,
            app.get("/api/v1/no-such-route", Some(&app.provider)).await,
            app.get("/api/v1/devices/05012345678900", Some(&app.provider))
                .await,
            with_cookie(&app, "GET", "/api/v1/sessions", &session.cookie, None, None).await,
        ];
        for (i, reply) in replies.iter().enumerate() {
            assert_eq!(reply.headers["content-security-policy"], CSP, "{i}");
            assert_eq!(reply.headers["x-content-type-options"], "nosniff", "{i}");
            assert_eq!(reply.headers["referrer-policy"], "no-referrer", "{i}");
            // Served over plain HTTP with no trusted proxy: no HSTS.
            assert!(
                !reply.headers.contains_key("strict-transport-security"),
                "{i}"
            );
        }
        for reply in &replies[1..] {
            assert_eq!(reply.headers["cache-control"], "no-store");
        }

        // Behind a trusted proxy, HSTS on requests the proxy received over HTTPS only.
        let proxied = app_with(
            backend,
            WebSettings {
                trusted_proxy: true,
                ..WebSettings::default()
            },
        )
        .await;
        let over = |proto: &'static str| {
            Request::get("/health")
                .header("x-forwarded-proto", proto)
                .body(Body::empty())
                .unwrap()
        };
        let https = proxied.send(over("https")).await;
        assert_eq!(
            https.headers["strict-transport-security"],
            "max-age=63072000; includeSubDomains"
        );
        assert!(
            !proxied
                .send(over("http"))
                .await
                .headers
                .contains_key("strict-transport-security")
        );
        // Without a trusted proxy the header is the client's own word, and ignored.
        assert!(
            !app.send(over("https"))
                .await
                .headers
                .contains_key("strict-transport-security")
        );
    }
}

#[tokio::test]
async fn every_account_role_is_judged_by_the_policy_and_keeps_its_session() {
    for backend in backends() {
        let app = app_with(backend, WebSettings::default()).await;
        let account = person(&app, "dr.who", AccountRole::Consultant, "RA1").await;
        let session = signed_in(&app, &account, 0).await;
        // A consultant reads its own provider's procedures (none here) but runs no recall.
        let read = with_cookie(
            &app,
            "GET",
            "/api/v1/procedures/1",
            &session.cookie,
            None,
            None,
        )
        .await;
        assert_eq!(read.status, StatusCode::NOT_FOUND);
        let recall = with_cookie(
            &app,
            "GET",
            "/api/v1/recall?udi_di=05012345678900",
            &session.cookie,
            None,
            None,
        )
        .await;
        assert_eq!(recall.status, StatusCode::FORBIDDEN);
        assert_eq!(recall.body["code"], "forbidden");
        let own = with_cookie(&app, "GET", "/api/v1/session", &session.cookie, None, None).await;
        assert_eq!(own.status, StatusCode::OK);
        assert_eq!(own.body["role"], "consultant");
    }
}

#[tokio::test]
async fn administration_and_exports_need_a_step_up_within_ten_minutes_with_a_session_but_not_with_a_token()
 {
    static NOW: AtomicI64 = AtomicI64::new(0);
    fn clock() -> chrono::DateTime<Utc> {
        chrono::DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap()
    }
    let start = Utc::now().timestamp();
    for backend in backends() {
        NOW.store(start, Ordering::SeqCst);
        let app = spawn_app(backend)
            .await
            .with_accounts(WebSettings::default(), clock);
        let admin = person(&app, "the.admin", AccountRole::SystemAdmin, "MDOR").await;
        let provider = person(&app, "p.jones", AccountRole::ProviderSubmitter, "RA1").await;
        // An administrator acts only through a session signed in with a passkey.
        let admin_code_session = signed_in(&app, &admin, 0).await;
        let (admin_session, mut admin_key) =
            enrol_key_and_sign_in(&app, &admin_code_session, "the.admin").await;
        let provider_session = signed_in(&app, &provider, 0).await;
        let entry = json!({
            "udi_di": "05012345678924", "manufacturer": "Acme Orthopaedics", "brand": "Acme",
            "model": "Liner 52", "device_type": "hip_liner", "risk_class": "III", "registry": "njr"
        });
        async fn register(app: &TestApp, session: &Session, entry: &Value) -> Reply {
            with_cookie(
                app,
                "POST",
                "/api/v1/devices",
                &session.cookie,
                Some(&session.csrf),
                Some(entry),
            )
            .await
        }
        // Within ten minutes of the sign-in, administration is allowed.
        NOW.store(start + 9 * 60, Ordering::SeqCst);
        assert_eq!(
            register(&app, &admin_session, &entry).await.status,
            StatusCode::CREATED
        );

        NOW.store(start + 11 * 60, Ordering::SeqCst);
        let refused = register(&app, &admin_session, &entry).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(refused.body["code"], "reauthentication_required");
        let export = with_cookie(
            &app,
            "GET",
            "/api/v1/recall-cases/1/worklist.csv",
            &provider_session.cookie,
            None,
            None,
        )
        .await;
        assert_eq!(export.status, StatusCode::FORBIDDEN);
        assert_eq!(export.body["code"], "reauthentication_required");
        // A token is never asked to step up.
        assert_eq!(
            app.post("/api/v1/devices", &app.admin, &entry, None)
                .await
                .status,
            StatusCode::CREATED
        );

        // A step-up with a code renews the window but leaves an administrator's session
        // without a phishing-resistant factor: still refused.
        let stepped = with_cookie(
            &app,
            "POST",
            "/api/v1/session/reauthenticate",
            &admin_session.cookie,
            Some(&admin_session.csrf),
            Some(&json!({ "password": PASSWORD, "second_factor": admin.backup_codes[1] })),
        )
        .await;
        assert_eq!(stepped.status, StatusCode::OK, "{}", stepped.body);
        assert_eq!(stepped.body["factor"], "backup_code");
        let renewed = session_of(&stepped);
        let refused = register(&app, &renewed, &entry).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(refused.body["code"], "phishing_resistant_factor_required");

        // A step-up with the key: administration again.
        let begun = with_cookie(
            &app,
            "POST",
            "/api/v1/session/reauthenticate/webauthn",
            &renewed.cookie,
            Some(&renewed.csrf),
            Some(&json!({ "password": PASSWORD })),
        )
        .await;
        assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
        let answer = key_answer(&mut admin_key, &begun.body["options"], false);
        let stepped = with_cookie(
            &app,
            "POST",
            "/api/v1/session/reauthenticate/webauthn/finish",
            &renewed.cookie,
            Some(&renewed.csrf),
            Some(&json!({ "ceremony": begun.body["ceremony"], "credential": answer })),
        )
        .await;
        assert_eq!(stepped.status, StatusCode::OK, "{}", stepped.body);
        assert_eq!(stepped.body["factor"], "webauthn");
        let renewed = session_of(&stepped);
        assert_eq!(
            register(&app, &renewed, &entry).await.status,
            StatusCode::CREATED
        );
    }
}

#[tokio::test]
async fn every_record_route_refuses_an_unknown_or_ended_session_even_with_its_csrf_token() {
    for backend in backends() {
        let app = app_with(backend, WebSettings::default()).await;
        let account = person(&app, "p.jones", AccountRole::ProviderSubmitter, "RA1").await;
        let ended = signed_in(&app, &account, 0).await;
        let out = with_cookie(
            &app,
            "DELETE",
            "/api/v1/session",
            &ended.cookie,
            Some(&ended.csrf),
            None,
        )
        .await;
        assert_eq!(out.status, StatusCode::NO_CONTENT);
        let forged_secret =
            mdor_service::SessionSecret::parse(&format!("mdors_{}", "ab".repeat(32))).unwrap();
        let forged = Session {
            cookie: format!("__Host-mdor_session={}", forged_secret.expose()),
            csrf: forged_secret.csrf_token(),
        };
        let routes = crate::support::authenticated_routes();
        for session in [&ended, &forged] {
            for (method, uri) in &routes {
                let method = *method;
                let body = (method != "GET").then(|| json!({}));
                let reply = with_cookie(
                    &app,
                    method,
                    uri,
                    &session.cookie,
                    Some(&session.csrf),
                    body.as_ref(),
                )
                .await;
                assert_eq!(
                    reply.status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {uri} with {}",
                    session.cookie
                );
                assert_eq!(reply.body["code"], "unauthenticated");
            }
        }
    }
}

#[tokio::test]
async fn administrators_regulators_and_researchers_signed_in_with_a_code_reach_only_their_own_session()
 {
    for backend in backends() {
        let app = app_with(backend, WebSettings::default()).await;
        let people = [
            ("the.admin", AccountRole::SystemAdmin, "MDOR"),
            ("the.regulator", AccountRole::Regulator, "MHRA"),
            ("the.researcher", AccountRole::Researcher, "MDOR"),
        ];
        for (username, role, ods) in people {
            let account = person(&app, username, role, ods).await;
            let session = signed_in(&app, &account, 0).await;
            let own =
                with_cookie(&app, "GET", "/api/v1/session", &session.cookie, None, None).await;
            assert_eq!(own.status, StatusCode::OK);
            assert_eq!(own.body["phishing_resistant"], false);
            // Every route that touches records refuses the session, before its handler runs.
            for declared in mdor_web::ROUTE_POLICIES {
                let mdor_web::RoutePolicy::Action(_) = declared.policy else {
                    continue;
                };
                let uri = crate::support::concrete_path(declared.path);
                let body = (declared.method != "GET").then(|| json!({}));
                let reply = with_cookie(
                    &app,
                    declared.method,
                    &uri,
                    &session.cookie,
                    Some(&session.csrf),
                    body.as_ref(),
                )
                .await;
                assert_eq!(
                    (reply.status, reply.body["code"].as_str()),
                    (
                        StatusCode::FORBIDDEN,
                        Some("phishing_resistant_factor_required")
                    ),
                    "{} {uri} as {username}: {}",
                    declared.method,
                    reply.body
                );
            }
            // Its own session and credentials stay reachable: it can enrol a key and, signed
            // in with it, act.
            let listed = with_cookie(
                &app,
                "GET",
                "/api/v1/session/credentials",
                &session.cookie,
                None,
                None,
            )
            .await;
            assert_eq!(listed.status, StatusCode::OK);
            assert_eq!(listed.body["credentials"], json!([]));
            let (with_key, _key) = enrol_key_and_sign_in(&app, &session, username).await;
            let device = with_cookie(
                &app,
                "GET",
                "/api/v1/devices/05012345678900",
                &with_key.cookie,
                None,
                None,
            )
            .await;
            assert_eq!(device.status, StatusCode::OK, "{username}: {}", device.body);
        }
    }
}
