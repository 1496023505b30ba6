//! OpenID Connect sign-in through the web router against a local mock provider
//! (`oidc_provider`): a successful sign-in end to end starts the same session as a password
//! sign-in, and every refusal (`alg=none`, another key, HMAC with the public key or the client
//! secret, wrong issuer or audience or `azp`, wrong or missing nonce, expiry, an `iat` in the
//! future, low or missing assurance, reused, unknown or expired state, another browser, the
//! provider's error, an unlinked subject, a disabled account) gets the password sign-in's
//! single failure response and is audited with its own outcome. With `private_key_jwt`, the
//! provider verifies mdor's client assertion as a real one does; an assertion it refuses, or
//! a provider that does not offer the method, is a refusal like the others.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use mdor_domain::OdsCode;
use mdor_service::accounts::{AccountRequest, Username};
use mdor_service::{AccountRole, Ctx};
use mdor_store::SessionFactor;
use mdor_web::{RateLimit, WebSettings};

use crate::oidc_provider::{
    CLIENT_ID, CLIENT_KEY_ID, CLIENT_KEY_PKCS1, CLIENT_SECRET, ClientAuth, KEY_1, KEY_2, Provider,
    hmac_signed, public_jwk, signed, unsigned,
};
use crate::support::{Reply, TestApp, backends, new_person, spawn_app};

/// Settings with a sign-in limit no test here reaches, unless a test is about the limit.
fn roomy() -> WebSettings {
    WebSettings {
        sign_in_limit: RateLimit {
            burst: 10_000,
            refill_every: Duration::from_millis(1),
        },
        ..WebSettings::default()
    }
}

/// The app with accounts and OpenID Connect sign-in through `provider`, on this clock.
pub async fn app_with_provider(
    backend: &str,
    provider: &Provider,
    settings: WebSettings,
    clock: fn() -> chrono::DateTime<Utc>,
) -> TestApp {
    let app = spawn_app(backend)
        .await
        .with_accounts(settings.clone(), clock);
    with_provider(app, provider, settings, clock)
}

fn with_provider(
    app: TestApp,
    provider: &Provider,
    settings: WebSettings,
    clock: fn() -> chrono::DateTime<Utc>,
) -> TestApp {
    let ctx = Ctx::with_clock(Arc::clone(&app.store), clock)
        .with_account_key(crate::support::account_key())
        .with_webauthn(crate::support::relying())
        .with_oidc(mdor_service::OidcProvider::new(provider.settings()).unwrap());
    TestApp {
        router: mdor_web::router(mdor_web::AppState::new(ctx.clone(), settings)),
        ctx,
        ..app
    }
}

/// Creates an account of `role` in `ods` and links `subject` to it.
pub async fn linked_account(
    app: &TestApp,
    provider: &Provider,
    username: &str,
    role: AccountRole,
    ods: &str,
    subject: &str,
) {
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
    mdor_service::link_oidc_identity(
        &app.ctx,
        &provider.issuer,
        &Username::parse(username).unwrap(),
        subject,
    )
    .await
    .unwrap();
}

/// A sign-in started at mdor: what the browser was sent to the provider with, and its cookie.
pub struct Flow {
    pub state: String,
    pub nonce: String,
    pub challenge: String,
    /// `__Host-mdor_oidc=…`, as the browser sends it back.
    pub cookie: String,
    pub location: openidconnect::url::Url,
    pub set_cookie: String,
}

pub async fn start(app: &TestApp) -> Flow {
    flow_of(&app.get("/api/v1/session/oidc/start", None).await)
}

/// The flow a start (or a step-up) sent the browser off with.
pub fn flow_of(reply: &Reply) -> Flow {
    assert_eq!(reply.status, StatusCode::FOUND, "{}", reply.body);
    let location =
        openidconnect::url::Url::parse(reply.headers["location"].to_str().unwrap()).unwrap();
    let param = |name: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let set_cookie = reply.headers["set-cookie"].to_str().unwrap().to_string();
    Flow {
        state: param("state"),
        nonce: param("nonce"),
        challenge: param("code_challenge"),
        cookie: set_cookie.split(';').next().unwrap().to_string(),
        location,
        set_cookie,
    }
}

/// The callback as the browser makes it, with the binding cookie when `cookie` is given.
pub async fn callback(app: &TestApp, query: &str, cookie: Option<&str>) -> Reply {
    let mut request = Request::get(format!("/api/v1/session/oidc/callback?{query}"));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    app.send(request.body(Body::empty()).unwrap()).await
}

/// Issues `id_token` for the flow at the provider and makes the callback with its code.
pub async fn finish(app: &TestApp, provider: &Provider, flow: &Flow, id_token: &str) -> Reply {
    let code = format!("code-{}", &flow.state[..12]);
    provider.issue(&code, &flow.challenge, id_token);
    callback(
        app,
        &format!("code={code}&state={}", flow.state),
        Some(&flow.cookie),
    )
    .await
}

/// Finishes `flow` with `claims` signed by the provider's current key, expecting success.
pub async fn finish_ok(app: &TestApp, provider: &Provider, flow: &Flow, claims: &Value) -> Reply {
    let reply = finish(app, provider, flow, &signed(claims, "key-1", KEY_1)).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{} (provider: {:?})",
        reply.body,
        provider.last_refusal()
    );
    reply
}

/// The password sign-in's failure, which every failed callback must equal.
async fn password_failure(app: &TestApp) -> Reply {
    let body = json!({ "username": "nobody", "password": "x", "second_factor": "123456" });
    let request = Request::post("/api/v1/session")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let reply = app.send(request).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    reply
}

async fn last_login_outcome(app: &TestApp) -> String {
    let events = app.store.audit_events(None, 10_000).await.unwrap();
    let event = events
        .iter()
        .rev()
        .find(|e| e.action == "account.login")
        .unwrap();
    assert_eq!(event.purpose, "authentication");
    event.outcome.clone()
}

#[tokio::test]
async fn a_linked_account_signs_in_through_the_provider_to_the_same_session_as_a_password() {
    for backend in backends() {
        let provider = Provider::start().await;
        let app = app_with_provider(backend, &provider, roomy(), Utc::now).await;
        linked_account(
            &app,
            &provider,
            "r.cis2",
            AccountRole::Regulator,
            "MHRA",
            "uuid-r-1",
        )
        .await;

        let flow = start(&app).await;
        // The browser goes to the provider's authorization endpoint with a fresh state, nonce
        // and S256 challenge (256 bits each), asking for the accepted assurance levels.
        assert_eq!(
            flow.location.as_str().split('?').next().unwrap(),
            format!("{}/authorize", provider.issuer)
        );
        let param = |name: &str| {
            flow.location
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        assert_eq!(param("response_type").as_deref(), Some("code"));
        assert_eq!(param("client_id").as_deref(), Some("mdor-test-client"));
        assert_eq!(
            param("redirect_uri").as_deref(),
            Some("http://localhost/api/v1/session/oidc/callback")
        );
        assert_eq!(param("scope").as_deref(), Some("openid profile"));
        assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
        assert_eq!(param("acr_values").as_deref(), Some("AAL2_ANY AAL3_ANY"));
        assert!(
            flow.state.len() >= 43 && flow.nonce.len() >= 43,
            "256-bit values"
        );
        assert_ne!(flow.state, flow.nonce);
        // The PKCE verifier is only in the browser's cookie, bound to this browser.
        let attributes: Vec<&str> = flow.set_cookie.split(';').map(str::trim).collect();
        for expected in [
            "Path=/",
            "Secure",
            "HttpOnly",
            "SameSite=Lax",
            "Max-Age=600",
        ] {
            assert!(attributes.contains(&expected), "{}", flow.set_cookie);
        }
        let verifier = flow.cookie.strip_prefix("__Host-mdor_oidc=").unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
            flow.challenge
        );
        assert!(!flow.location.as_str().contains(verifier));

        let token = signed(
            &provider.claims("uuid-r-1", &flow.nonce, Utc::now()),
            "key-1",
            KEY_1,
        );
        let reply = finish(&app, &provider, &flow, &token).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{} (provider: {:?})",
            reply.body,
            provider.last_refusal()
        );
        assert_eq!(reply.headers["content-type"], "text/html; charset=utf-8");
        assert_eq!(reply.headers["cache-control"], "no-store");
        let cookies: Vec<&str> = reply
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert!(
            cookies
                .iter()
                .any(|c| c.starts_with("__Host-mdor_oidc=;") && c.contains("Max-Age=0")),
            "the binding is cleared: {cookies:?}"
        );
        let session_cookie = cookies
            .iter()
            .find(|c| c.starts_with("__Host-mdor_session=mdors_"))
            .unwrap();
        for expected in [
            "Path=/",
            "Secure",
            "HttpOnly",
            "SameSite=Strict",
            "Max-Age=43200",
        ] {
            assert!(
                session_cookie
                    .split(';')
                    .map(str::trim)
                    .any(|a| a == expected),
                "{session_cookie}"
            );
        }
        assert_eq!(last_login_outcome(&app).await, "ok");

        // The session is an ordinary one: it acts as the regulator account.
        let pair = session_cookie.split(';').next().unwrap();
        let current = app
            .send(
                Request::get("/api/v1/session")
                    .header("cookie", pair)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(current.status, StatusCode::OK, "{}", current.body);
        assert_eq!(current.body["role"], "regulator");
        assert_eq!(current.body["organisation"], "MHRA");
        let recall = app
            .send(
                Request::get("/api/v1/recall?udi_di=05012345678900")
                    .header("cookie", pair)
                    .header("access-purpose", "recall")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(recall.status, StatusCode::OK, "{}", recall.body);

        // The session records that the identity provider established it, at a level that
        // resists phishing (AAL3 is configured so); an AAL2 sign-in's does not.
        let account = mdor_service::AccountId(current.body["account"].as_i64().unwrap());
        let session_id = current.body["session"].as_i64().unwrap();
        let aal2_flow = start(&app).await;
        let aal2 = claim(
            provider.claims("uuid-r-1", &aal2_flow.nonce, Utc::now()),
            "acr",
            json!("AAL2_ANY"),
        );
        let reply = finish(&app, &provider, &aal2_flow, &signed(&aal2, "key-1", KEY_1)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        // A regulator must act through a phishing-resistant session: the AAL2 one reaches
        // only its own session.
        let aal2_pair = session_pair(&reply);
        let refused = app
            .send(
                Request::get("/api/v1/recall?udi_di=05012345678900")
                    .header("cookie", &aal2_pair)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
        assert_eq!(refused.body["code"], "phishing_resistant_factor_required");
        let sessions = app.store.account_sessions(account).await.unwrap();
        let assurance: Vec<(i64, SessionFactor, bool)> = sessions
            .iter()
            .map(|s| (s.id.0, s.assurance.factor, s.assurance.phishing_resistant))
            .collect();
        assert_eq!(assurance.len(), 2, "{assurance:?}");
        assert_eq!(assurance[0], (session_id, SessionFactor::Oidc, true));
        assert_eq!(
            (assurance[1].1, assurance[1].2),
            (SessionFactor::Oidc, false)
        );

        // The same callback again: the state is spent.
        let replay = finish(&app, &provider, &flow, &token).await;
        assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
        assert_eq!(last_login_outcome(&app).await, "oidc_unknown_state");
    }
}

/// What one refusal case does to an otherwise good sign-in.
enum Case {
    /// A token made from the good claims and the flow's nonce.
    Token(fn(&Provider, Value) -> String),
    /// The callback without the browser's binding cookie (another browser: login CSRF).
    NoCookie,
    /// The callback with a state mdor never issued.
    UnknownState,
    /// The provider sends the browser back with `error=access_denied`.
    ProviderError,
    /// The good token, for a subject linked to no account.
    Unlinked,
    /// The good token, for a disabled account.
    Disabled,
}

fn claim(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

#[tokio::test]
async fn every_refusal_gets_the_single_failure_response_and_its_own_audit_outcome() {
    let cases: Vec<(&str, Case, &str)> = vec![
        (
            "alg=none",
            Case::Token(|_, c| unsigned(&c)),
            "oidc_unsigned",
        ),
        (
            "another key under the provider's kid",
            Case::Token(|_, c| signed(&c, "key-1", KEY_2)),
            "oidc_bad_signature",
        ),
        (
            "another key under an unknown kid",
            Case::Token(|_, c| signed(&c, "key-x", KEY_2)),
            "oidc_bad_signature",
        ),
        (
            "HS256 with the provider's public key as the MAC key",
            Case::Token(|_, c| {
                hmac_signed(
                    &c,
                    "key-1",
                    public_jwk("key-1", KEY_1).to_string().as_bytes(),
                )
            }),
            "oidc_disallowed_algorithm",
        ),
        (
            "HS256 with the client secret",
            Case::Token(|_, c| hmac_signed(&c, "key-1", CLIENT_SECRET.as_bytes())),
            "oidc_disallowed_algorithm",
        ),
        (
            "wrong issuer",
            Case::Token(|_, c| {
                signed(
                    &claim(c, "iss", json!("https://evil.example")),
                    "key-1",
                    KEY_1,
                )
            }),
            "oidc_wrong_issuer",
        ),
        (
            "wrong audience",
            Case::Token(|_, c| signed(&claim(c, "aud", json!("another-client")), "key-1", KEY_1)),
            "oidc_wrong_audience",
        ),
        (
            "an untrusted second audience",
            Case::Token(|_, c| {
                let aud = json!(["mdor-test-client", "another-client"]);
                signed(&claim(c, "aud", aud), "key-1", KEY_1)
            }),
            "oidc_wrong_audience",
        ),
        (
            "azp naming another client",
            Case::Token(|_, c| signed(&claim(c, "azp", json!("another-client")), "key-1", KEY_1)),
            "oidc_wrong_audience",
        ),
        (
            "wrong nonce",
            Case::Token(|_, c| signed(&claim(c, "nonce", json!("not-the-nonce")), "key-1", KEY_1)),
            "oidc_bad_nonce",
        ),
        (
            "missing nonce",
            Case::Token(|_, c| signed(&without(c, "nonce"), "key-1", KEY_1)),
            "oidc_bad_nonce",
        ),
        (
            "expired beyond the clock skew",
            Case::Token(|_, c| {
                let past = Utc::now().timestamp() - 120;
                let c = claim(claim(c, "exp", json!(past)), "iat", json!(past - 300));
                signed(&c, "key-1", KEY_1)
            }),
            "oidc_expired",
        ),
        (
            "issued in the future beyond the clock skew",
            Case::Token(|_, c| {
                let future = Utc::now().timestamp() + 600;
                let c = claim(claim(c, "iat", json!(future)), "exp", json!(future + 300));
                signed(&c, "key-1", KEY_1)
            }),
            "oidc_issued_in_future",
        ),
        (
            "low assurance",
            Case::Token(|_, c| signed(&claim(c, "acr", json!("AAL1_ANY")), "key-1", KEY_1)),
            "oidc_low_assurance",
        ),
        (
            "no assurance level",
            Case::Token(|_, c| signed(&without(c, "acr"), "key-1", KEY_1)),
            "oidc_low_assurance",
        ),
        ("another browser", Case::NoCookie, "oidc_browser_mismatch"),
        ("unknown state", Case::UnknownState, "oidc_unknown_state"),
        (
            "the provider's error",
            Case::ProviderError,
            "oidc_provider_refused",
        ),
        ("unlinked subject", Case::Unlinked, "oidc_unlinked"),
        ("disabled account", Case::Disabled, "oidc_disabled"),
    ];
    for backend in backends() {
        let provider = Provider::start().await;
        let app = app_with_provider(backend, &provider, roomy(), Utc::now).await;
        linked_account(
            &app,
            &provider,
            "a.cis2",
            AccountRole::SystemAdmin,
            "MDOR",
            "uuid-a",
        )
        .await;
        linked_account(
            &app,
            &provider,
            "d.cis2",
            AccountRole::Regulator,
            "MHRA",
            "uuid-d",
        )
        .await;
        mdor_service::operator_disable_account(&app.ctx, &Username::parse("d.cis2").unwrap())
            .await
            .unwrap();
        let expected = password_failure(&app).await;
        for (name, case, outcome) in &cases {
            let flow = start(&app).await;
            let good = provider.claims("uuid-a", &flow.nonce, Utc::now());
            let reply = match case {
                Case::Token(make) => finish(&app, &provider, &flow, &make(&provider, good)).await,
                Case::NoCookie => {
                    provider.issue("code-x", &flow.challenge, &signed(&good, "key-1", KEY_1));
                    callback(&app, &format!("code=code-x&state={}", flow.state), None).await
                }
                Case::UnknownState => {
                    let state = URL_SAFE_NO_PAD.encode([7u8; 32]);
                    callback(&app, &format!("code=c&state={state}"), Some(&flow.cookie)).await
                }
                Case::ProviderError => {
                    let query = format!("error=access_denied&state={}", flow.state);
                    callback(&app, &query, Some(&flow.cookie)).await
                }
                Case::Unlinked => {
                    let claims = claim(good, "sub", json!("uuid-nobody"));
                    finish(&app, &provider, &flow, &signed(&claims, "key-1", KEY_1)).await
                }
                Case::Disabled => {
                    let claims = claim(good, "sub", json!("uuid-d"));
                    finish(&app, &provider, &flow, &signed(&claims, "key-1", KEY_1)).await
                }
            };
            assert_eq!(
                reply.status, expected.status,
                "{backend} {name}: {}",
                reply.body
            );
            assert_eq!(reply.body, expected.body, "{backend} {name}");
            assert!(
                reply
                    .headers
                    .get_all("set-cookie")
                    .iter()
                    .all(|c| !c.to_str().unwrap().starts_with("__Host-mdor_session")),
                "{backend} {name}: no session"
            );
            assert_eq!(
                last_login_outcome(&app).await,
                *outcome,
                "{backend} {name} (provider: {:?})",
                provider.last_refusal()
            );
        }
        // The unknown kid made mdor fetch the provider's keys again, once.
        assert_eq!(provider.jwks_fetches(), 2);
    }
}

#[tokio::test]
async fn a_rotated_provider_key_is_fetched_when_a_token_names_it() {
    for backend in backends() {
        let provider = Provider::start().await;
        let app = app_with_provider(backend, &provider, roomy(), Utc::now).await;
        linked_account(
            &app,
            &provider,
            "k.cis2",
            AccountRole::Consultant,
            "RA1",
            "uuid-k",
        )
        .await;
        let flow = start(&app).await;
        assert_eq!(provider.jwks_fetches(), 1);
        provider.publish(vec![("key-1", KEY_1), ("key-2", KEY_2)]);
        let claims = provider.claims("uuid-k", &flow.nonce, Utc::now());
        let reply = finish(&app, &provider, &flow, &signed(&claims, "key-2", KEY_2)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(provider.jwks_fetches(), 2);
        // The refreshed keys are kept: the next sign-in needs no fetch.
        let flow = start(&app).await;
        let claims = provider.claims("uuid-k", &flow.nonce, Utc::now());
        let reply = finish(&app, &provider, &flow, &signed(&claims, "key-2", KEY_2)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(provider.jwks_fetches(), 2);
    }
}

/// A provider taking `private_key_jwt` with mdor's own key registered.
const MDOR_KEY_REGISTERED: ClientAuth = ClientAuth::PrivateKeyJwt {
    registered: CLIENT_KEY_PKCS1,
};

#[tokio::test]
async fn a_sign_in_with_private_key_jwt_sends_a_fresh_assertion_the_provider_verifies() {
    for backend in backends() {
        let provider = Provider::start_with(MDOR_KEY_REGISTERED).await;
        let app = app_with_provider(backend, &provider, roomy(), Utc::now).await;
        linked_account(
            &app,
            &provider,
            "j.cis2",
            AccountRole::Consultant,
            "RA1",
            "uuid-j",
        )
        .await;
        for _ in 0..2 {
            let flow = start(&app).await;
            let claims = provider.claims("uuid-j", &flow.nonce, Utc::now());
            let reply = finish_ok(&app, &provider, &flow, &claims).await;
            assert!(
                reply.headers.get_all("set-cookie").iter().any(|c| c
                    .to_str()
                    .unwrap()
                    .starts_with("__Host-mdor_session=mdors_")),
                "{backend}: a session"
            );
            assert_eq!(last_login_outcome(&app).await, "ok", "{backend}");
        }
        // The provider accepted one assertion per token request (it refuses a header, a
        // secret, another key, a stale or far-off expiry and a used jti), and these are they.
        let seen = provider.assertions();
        assert_eq!(seen.len(), 2, "{backend}");
        for assertion in &seen {
            assert_eq!(
                assertion.header,
                json!({ "alg": "RS512", "typ": "JWT", "kid": CLIENT_KEY_ID }),
                "{backend}"
            );
            let claims = &assertion.claims;
            assert_eq!(claims["iss"], CLIENT_ID, "{backend}");
            assert_eq!(claims["sub"], CLIENT_ID, "{backend}");
            assert_eq!(claims["aud"], provider.token_endpoint(), "{backend}");
            assert_eq!(
                claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
                60,
                "{backend}"
            );
            let jti = URL_SAFE_NO_PAD
                .decode(claims["jti"].as_str().unwrap())
                .unwrap();
            assert!(jti.len() >= 16, "{backend}: 128 bits or more");
        }
        assert_ne!(seen[0].claims["jti"], seen[1].claims["jti"], "{backend}");
        // The provider refuses an assertion it has seen: replaying the first is useless.
        let form = [
            ("grant_type", "authorization_code"),
            ("code", "code-replayed"),
            ("client_id", CLIENT_ID),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", seen[0].raw.as_str()),
        ];
        let replay = openidconnect::reqwest::Client::new()
            .post(provider.token_endpoint())
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(replay.status().as_u16(), 401, "{backend}");
        assert_eq!(
            provider.last_refusal().as_deref(),
            Some("client assertion replayed (jti seen before)"),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn a_client_assertion_the_provider_refuses_is_the_usual_audited_sign_in_failure() {
    fn ten_minutes_ago() -> chrono::DateTime<Utc> {
        Utc::now() - chrono::Duration::minutes(10)
    }
    type Clock = fn() -> chrono::DateTime<Utc>;
    let cases: [(&str, ClientAuth, Clock, &str); 2] = [
        (
            "another key registered",
            ClientAuth::PrivateKeyJwt { registered: KEY_2 },
            Utc::now,
            "client assertion signature does not verify with the registered key",
        ),
        (
            // The assertion is dated by the service's clock, not the machine's.
            "a clock ten minutes slow",
            MDOR_KEY_REGISTERED,
            ten_minutes_ago,
            "client assertion expired",
        ),
    ];
    for backend in backends() {
        for (name, client_auth, clock, refusal) in cases {
            let provider = Provider::start_with(client_auth).await;
            let app = app_with_provider(backend, &provider, roomy(), clock).await;
            linked_account(
                &app,
                &provider,
                "w.cis2",
                AccountRole::Consultant,
                "RA1",
                "uuid-w",
            )
            .await;
            let expected = password_failure(&app).await;
            let flow = start(&app).await;
            let claims = provider.claims("uuid-w", &flow.nonce, clock());
            let reply = finish(&app, &provider, &flow, &signed(&claims, "key-1", KEY_1)).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{backend} {name}");
            assert_eq!(reply.body, expected.body, "{backend} {name}");
            assert_eq!(reply.body["code"], "sign_in_failed", "{backend} {name}");
            assert_eq!(
                provider.last_refusal().as_deref(),
                Some(refusal),
                "{backend} {name}"
            );
            assert_eq!(
                last_login_outcome(&app).await,
                "oidc_client_refused",
                "{backend} {name}"
            );
            assert!(provider.assertions().is_empty(), "{backend} {name}");
        }
    }
}

#[tokio::test]
async fn a_provider_not_offering_private_key_jwt_is_refused_as_unavailable() {
    for backend in backends() {
        let provider = Provider::start_with(MDOR_KEY_REGISTERED).await;
        let app = app_with_provider(backend, &provider, roomy(), Utc::now).await;
        linked_account(
            &app,
            &provider,
            "u.cis2",
            AccountRole::Consultant,
            "RA1",
            "uuid-u",
        )
        .await;
        let flow = start(&app).await;
        // The provider's discovery document changes while the person is at the provider; a
        // server that fetches it afresh refuses the callback without asking for a token.
        provider.advertise_auth_methods(vec!["client_secret_basic", "client_secret_post"]);
        let fresh = with_provider(app, &provider, roomy(), Utc::now);
        let claims = provider.claims("uuid-u", &flow.nonce, Utc::now());
        let reply = finish(&fresh, &provider, &flow, &signed(&claims, "key-1", KEY_1)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{backend}");
        assert_eq!(reply.body["code"], "sign_in_failed", "{backend}");
        assert_eq!(
            last_login_outcome(&fresh).await,
            "oidc_provider_unavailable",
            "{backend}"
        );
        assert!(provider.assertions().is_empty(), "{backend}");
        assert_eq!(provider.last_refusal(), None, "{backend}: no token request");
        // And a sign-in does not start, rather than fail after the person signed in there.
        let reply = fresh.get("/api/v1/session/oidc/start", None).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{backend}");
        assert_eq!(
            reply.body["code"], "identity_provider_unavailable",
            "{backend}"
        );
    }
}

#[tokio::test]
async fn a_state_older_than_ten_minutes_is_refused() {
    fn eleven_minutes_on() -> chrono::DateTime<Utc> {
        Utc::now() + chrono::Duration::minutes(11)
    }
    for backend in backends() {
        let provider = Provider::start().await;
        let app = app_with_provider(backend, &provider, roomy(), Utc::now).await;
        linked_account(
            &app,
            &provider,
            "e.cis2",
            AccountRole::Consultant,
            "RA1",
            "uuid-e",
        )
        .await;
        let flow = start(&app).await;
        let later = with_provider(app, &provider, roomy(), eleven_minutes_on);
        let claims = provider.claims("uuid-e", &flow.nonce, eleven_minutes_on());
        let reply = finish(&later, &provider, &flow, &signed(&claims, "key-1", KEY_1)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(reply.body["code"], "sign_in_failed");
        assert_eq!(last_login_outcome(&later).await, "oidc_state_expired");
    }
}

#[tokio::test]
async fn without_oidc_settings_both_routes_answer_oidc_not_configured() {
    let app = spawn_app("sqlite").await;
    for uri in [
        "/api/v1/session/oidc/start",
        "/api/v1/session/oidc/callback?code=c&state=s",
    ] {
        let reply = app.get(uri, None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(reply.body["code"], "oidc_not_configured", "{uri}");
    }
}

#[tokio::test]
async fn the_oidc_routes_share_the_per_address_sign_in_limit() {
    let provider = Provider::start().await;
    let tight = WebSettings {
        sign_in_limit: RateLimit {
            burst: 2,
            refill_every: Duration::from_secs(600),
        },
        ..WebSettings::default()
    };
    let app = app_with_provider("sqlite", &provider, tight, Utc::now).await;
    let flow = start(&app).await;
    let password = password_failure(&app).await;
    assert_eq!(password.status, StatusCode::UNAUTHORIZED);
    for reply in [
        app.get("/api/v1/session/oidc/start", None).await,
        callback(
            &app,
            &format!("code=c&state={}", flow.state),
            Some(&flow.cookie),
        )
        .await,
    ] {
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(reply.headers.contains_key("retry-after"));
    }
}

/// An administrator links a holder's subject over the API with their own stepped-up session:
/// the holder then signs in through the provider; a second link, an empty subject, an unknown
/// account and an API token are refused; the link is audited as the administrator's.
#[tokio::test]
async fn an_administrator_links_a_subject_over_the_api_and_its_holder_signs_in_with_it() {
    for backend in backends() {
        let provider = Provider::start().await;
        let app = app_with_provider(backend, &provider, roomy(), Utc::now).await;
        mdor_service::create_account(
            &app.ctx,
            &AccountRequest {
                username: Username::parse("r.linked").unwrap(),
                role: AccountRole::Regulator,
                organisation: Some(OdsCode::parse("MHRA").unwrap()),
                patient: None,
            },
        )
        .await
        .unwrap();
        let admin = new_person(
            &app.ctx,
            "an.admin",
            AccountRole::SystemAdmin,
            Some("MDOR"),
            None,
        )
        .await;
        let link = |username: &str, subject: &str, bearer: Option<&str>| {
            let mut request = Request::post(format!("/api/v1/accounts/{username}/oidc-identity"))
                .header("content-type", "application/json");
            request = match bearer {
                Some(token) => request.header("authorization", format!("Bearer {token}")),
                None => request
                    .header(
                        "cookie",
                        format!("{}={}", mdor_web::SESSION_COOKIE, admin.secret.expose()),
                    )
                    .header("x-csrf-token", admin.secret.csrf_token()),
            };
            request
                .body(Body::from(json!({ "subject": subject }).to_string()))
                .unwrap()
        };

        let linked = app.send(link("r.linked", "uuid-l-1", None)).await;
        assert_eq!(linked.status, StatusCode::NO_CONTENT, "{}", linked.body);
        let again = app.send(link("r.linked", "uuid-l-2", None)).await;
        assert_eq!(again.status, StatusCode::CONFLICT);
        assert_eq!(again.body["code"], "oidc_identity_taken");
        let empty = app.send(link("r.linked", " ", None)).await;
        assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(empty.body["field"], "subject");
        let unknown = app.send(link("no.one", "uuid-l-3", None)).await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        let token = app
            .send(link("r.linked", "uuid-l-4", Some(&app.admin)))
            .await;
        assert_eq!(token.status, StatusCode::FORBIDDEN);

        let entries: Vec<(String, String, String)> = app
            .store
            .audit_events(None, 10_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "account.link_oidc")
            .map(|e| (e.role, e.purpose, e.outcome))
            .collect();
        assert_eq!(
            entries,
            [
                (
                    "system_admin".to_string(),
                    "administration".to_string(),
                    "ok".to_string()
                ),
                (
                    "admin".to_string(),
                    "administration".to_string(),
                    "denied".to_string()
                )
            ]
        );

        // The holder signs in with the linked subject.
        let flow = start(&app).await;
        let claims = provider.claims("uuid-l-1", &flow.nonce, Utc::now());
        finish_ok(&app, &provider, &flow, &claims).await;
        assert_eq!(last_login_outcome(&app).await, "ok");
    }
}

/// The `name=value` pair of the session cookie a reply sets.
fn session_pair(reply: &Reply) -> String {
    reply
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("__Host-mdor_session=mdors_"))
        .unwrap_or_else(|| panic!("no session cookie: {:?}", reply.headers))
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

async fn get_with(app: &TestApp, uri: &str, cookie: &str) -> Reply {
    app.send(
        Request::get(uri)
            .header("cookie", cookie)
            .header("access-purpose", "recall")
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

/// A step-up through the provider: a regulator signed in at AAL2 (held to their own session)
/// steps up at AAL3; the provider is asked to authenticate again, and the same session gets a
/// new secret, a fresh re-authentication and the phishing-resistant factor, so its records
/// open and the old cookie is dead. A token without `auth_time`, one for another account,
/// and a step-up without a session are refused, and each refusal leaves the session as it was.
#[tokio::test]
async fn a_step_up_through_the_provider_renews_the_same_session_for_its_own_account_only() {
    for backend in backends() {
        let provider = Provider::start().await;
        let app = app_with_provider(backend, &provider, roomy(), Utc::now).await;
        linked_account(
            &app,
            &provider,
            "r.step",
            AccountRole::Regulator,
            "MHRA",
            "uuid-s-1",
        )
        .await;
        linked_account(
            &app,
            &provider,
            "r.other",
            AccountRole::Regulator,
            "MHRA",
            "uuid-s-2",
        )
        .await;

        // Signed in at AAL2: a regulator's session that reaches no record.
        let flow = start(&app).await;
        let aal2 = claim(
            provider.claims("uuid-s-1", &flow.nonce, Utc::now()),
            "acr",
            json!("AAL2_ANY"),
        );
        let first = session_pair(&finish_ok(&app, &provider, &flow, &aal2).await);
        let recall = "/api/v1/recall?udi_di=05012345678900";
        assert_eq!(
            get_with(&app, recall, &first).await.status,
            StatusCode::FORBIDDEN
        );
        let before = get_with(&app, "/api/v1/session", &first).await;
        assert_eq!(before.status, StatusCode::OK, "{}", before.body);

        // Without a session there is nothing to step up.
        let anonymous = app.get("/api/v1/session/oidc/reauthenticate", None).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

        // A step-up: the provider is asked to authenticate the person again.
        let begun = get_with(&app, "/api/v1/session/oidc/reauthenticate", &first).await;
        assert_eq!(begun.status, StatusCode::FOUND, "{}", begun.body);
        let flow = flow_of(&begun);
        let param = |name: &str| {
            flow.location
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        assert_eq!(param("prompt").as_deref(), Some("login"));
        assert_eq!(param("max_age").as_deref(), Some("0"));

        // Refused: no auth_time (a remembered sign-in); a token for another account.
        let stale = provider.claims("uuid-s-1", &flow.nonce, Utc::now());
        let reply = finish(&app, &provider, &flow, &signed(&stale, "key-1", KEY_1)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
        assert_eq!(last_login_outcome(&app).await, "oidc_not_reauthenticated");
        let flow = flow_of(&get_with(&app, "/api/v1/session/oidc/reauthenticate", &first).await);
        let other = claim(
            provider.claims("uuid-s-2", &flow.nonce, Utc::now()),
            "auth_time",
            json!(Utc::now().timestamp()),
        );
        let reply = finish(&app, &provider, &flow, &signed(&other, "key-1", KEY_1)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
        assert_eq!(last_login_outcome(&app).await, "oidc_other_account");
        // The session is as it was.
        let unchanged = get_with(&app, "/api/v1/session", &first).await;
        assert_eq!(unchanged.status, StatusCode::OK);
        assert_eq!(
            unchanged.body["reauthenticated_at"],
            before.body["reauthenticated_at"]
        );

        // Accepted: the same session, a new secret, a fresh re-authentication at AAL3.
        let flow = flow_of(&get_with(&app, "/api/v1/session/oidc/reauthenticate", &first).await);
        let fresh = claim(
            provider.claims("uuid-s-1", &flow.nonce, Utc::now()),
            "auth_time",
            json!(Utc::now().timestamp()),
        );
        let second = session_pair(&finish_ok(&app, &provider, &flow, &fresh).await);
        assert_ne!(second, first);
        let after = get_with(&app, "/api/v1/session", &second).await;
        assert_eq!(after.status, StatusCode::OK, "{}", after.body);
        assert_eq!(
            after.body["session"], before.body["session"],
            "the same session"
        );
        assert_eq!(
            get_with(&app, "/api/v1/session", &first).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(get_with(&app, recall, &second).await.status, StatusCode::OK);
    }
}
