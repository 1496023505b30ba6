//! A local OpenID Connect provider for the sign-in tests: a real HTTP server (axum on
//! 127.0.0.1, port 0) serving the discovery document, its JWKS and a token endpoint, and ID
//! tokens signed with real RSA keys (the test-only keys in `data/`), or crafted to be wrong
//! in exactly one way.
//!
//! The token endpoint behaves as a provider must: it redeems each code once, only for this
//! client with its secret (HTTP Basic) and only with the PKCE verifier whose S256 challenge the
//! authorization request carried, so a sign-in that succeeds proves mdor sent all three.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use openidconnect::core::{CoreHmacKey, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey};
use openidconnect::{JsonWebKeyId, PrivateSigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "mdor-test-client";
pub const CLIENT_SECRET: &str = "Canary-client-secret-7f3a";
pub const KEY_1: &str = include_str!("data/oidc-test-rsa-1.pem");
pub const KEY_2: &str = include_str!("data/oidc-test-rsa-2.pem");

/// A running mock provider.
pub struct Provider {
    pub issuer: String,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Shared {
    /// The keys the JWKS publishes: (kid, PEM).
    published: Vec<(String, &'static str)>,
    /// Codes not yet redeemed: the ID token to answer with and the PKCE challenge to check.
    codes: HashMap<String, Issued>,
    jwks_fetches: usize,
    /// Why the token endpoint refused its last request, for test failures.
    last_refusal: Option<String>,
}

struct Issued {
    id_token: String,
    challenge: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Provider {
    /// Starts a provider publishing `KEY_1` as kid `key-1`.
    pub async fn start() -> Provider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Mutex::new(Shared {
            published: vec![("key-1".to_string(), KEY_1)],
            ..Shared::default()
        }));
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/token", post(token))
            .with_state((issuer.clone(), shared.clone()));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Provider {
            issuer,
            shared,
            server,
        }
    }

    /// mdor's settings for this provider: AAL2 and AAL3 accepted, AAL3 phishing-resistant.
    pub fn settings(&self) -> mdor_service::OidcSettings {
        mdor_service::OidcSettings::new(mdor_service::OidcConfig {
            issuer: self.issuer.clone(),
            client_id: CLIENT_ID.to_string(),
            client_secret: secrecy::SecretString::from(CLIENT_SECRET.to_string()),
            redirect_url: "http://localhost/api/v1/session/oidc/callback".to_string(),
            scopes: vec!["profile".to_string()],
            accepted_acr_values: vec!["AAL2_ANY".to_string(), "AAL3_ANY".to_string()],
            phishing_resistant_acr_values: vec!["AAL3_ANY".to_string()],
        })
        .unwrap()
    }

    /// Publishes these keys from now on (a key rotation).
    pub fn publish(&self, keys: Vec<(&str, &'static str)>) {
        self.shared.lock().unwrap().published =
            keys.into_iter().map(|(k, p)| (k.to_string(), p)).collect();
    }

    pub fn jwks_fetches(&self) -> usize {
        self.shared.lock().unwrap().jwks_fetches
    }

    pub fn last_refusal(&self) -> Option<String> {
        self.shared.lock().unwrap().last_refusal.clone()
    }

    /// Makes `code` redeemable once for `id_token`, by the holder of the verifier of
    /// `challenge`.
    pub fn issue(&self, code: &str, challenge: &str, id_token: &str) {
        self.shared.lock().unwrap().codes.insert(
            code.to_string(),
            Issued {
                id_token: id_token.to_string(),
                challenge: challenge.to_string(),
            },
        );
    }

    /// The claims of a good ID token for `subject` and `nonce`, at assurance level AAL3.
    pub fn claims(&self, subject: &str, nonce: &str, now: DateTime<Utc>) -> Value {
        json!({
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "sub": subject,
            "nonce": nonce,
            "acr": "AAL3_ANY",
            "iat": now.timestamp(),
            "exp": now.timestamp() + 300,
        })
    }
}

/// A compact JWS of `claims` signed with the RSA key `pem` under RS256, naming `kid`.
pub fn signed(claims: &Value, kid: &str, pem: &str) -> String {
    let key =
        CoreRsaPrivateSigningKey::from_pem(pem, Some(JsonWebKeyId::new(kid.to_string()))).unwrap();
    let header = json!({ "alg": "RS256", "typ": "JWT", "kid": kid });
    let input = signing_input(&header, claims);
    let signature = key
        .sign(
            &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            input.as_bytes(),
        )
        .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// `claims` with `alg: none` and no signature.
pub fn unsigned(claims: &Value) -> String {
    format!(
        "{}.",
        signing_input(&json!({ "alg": "none", "typ": "JWT" }), claims)
    )
}

/// `claims` under HS256 with `secret` as the MAC key: the algorithm-confusion attack when the
/// secret is the provider's public key (which anyone can fetch), or the client secret.
pub fn hmac_signed(claims: &Value, kid: &str, secret: &[u8]) -> String {
    let header = json!({ "alg": "HS256", "typ": "JWT", "kid": kid });
    let input = signing_input(&header, claims);
    let signature = CoreHmacKey::new(secret.to_vec())
        .sign(&CoreJwsSigningAlgorithm::HmacSha256, input.as_bytes())
        .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// The public JWK of the RSA key `pem`, as the JWKS publishes it.
pub fn public_jwk(kid: &str, pem: &str) -> Value {
    let key =
        CoreRsaPrivateSigningKey::from_pem(pem, Some(JsonWebKeyId::new(kid.to_string()))).unwrap();
    let mut jwk = serde_json::to_value(key.as_verification_key()).unwrap();
    jwk["use"] = json!("sig");
    jwk
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

type ProviderState = State<(String, Arc<Mutex<Shared>>)>;

async fn discovery(State((issuer, _)): ProviderState) -> Response {
    axum::Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
        "acr_values_supported": ["AAL1_ANY", "AAL2_ANY", "AAL3_ANY"],
    }))
    .into_response()
}

async fn jwks(State((_, shared)): ProviderState) -> Response {
    let mut shared = shared.lock().unwrap();
    shared.jwks_fetches += 1;
    let keys: Vec<Value> = shared
        .published
        .iter()
        .map(|(kid, pem)| public_jwk(kid, pem))
        .collect();
    axum::Json(json!({ "keys": keys })).into_response()
}

async fn token(State((_, shared)): ProviderState, headers: HeaderMap, body: String) -> Response {
    let form: HashMap<String, String> = openidconnect::url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let mut shared = shared.lock().unwrap();
    let refusal = check_token_request(&mut shared, &headers, &form);
    match refusal {
        Ok(id_token) => axum::Json(json!({
            "access_token": "canary-access-token-0b1e",
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        }))
        .into_response(),
        Err(reason) => {
            shared.last_refusal = Some(reason);
            (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": "invalid_grant" })),
            )
                .into_response()
        }
    }
}

fn check_token_request(
    shared: &mut Shared,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<String, String> {
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
        return Err("client authentication".into());
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return Err("grant_type".into());
    }
    if form.get("redirect_uri").map(String::as_str)
        != Some("http://localhost/api/v1/session/oidc/callback")
    {
        return Err("redirect_uri".into());
    }
    let code = form.get("code").ok_or("no code")?;
    // A code is redeemed once, whatever happens next.
    let issued = shared.codes.remove(code).ok_or("unknown or used code")?;
    let verifier = form.get("code_verifier").ok_or("no code_verifier")?;
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if challenge != issued.challenge {
        return Err("PKCE verifier does not match the challenge".into());
    }
    Ok(issued.id_token)
}
