//! A local OpenID Connect provider for the sign-in tests: a real HTTP server (axum on
//! 127.0.0.1, port 0) serving the discovery document, its JWKS and a token endpoint, and ID
//! tokens signed with real RSA keys (the test-only keys in `data/`), or crafted to be wrong
//! in exactly one way.
//!
//! The token endpoint behaves as a provider must: it redeems each code once, only for this
//! client with its secret (HTTP Basic) and only with the PKCE verifier whose S256 challenge the
//! authorization request carried, so a sign-in that succeeds proves mdor sent all three.
//!
//! Started for `private_key_jwt` (`Provider::start_with`), it authenticates mdor as CIS2 does:
//! no secret and no Authorization header, and a client assertion (RFC 7523) signed with an
//! RSA algorithm by the key registered for the client, issued by and about the client, for
//! this token endpoint, unexpired and at most five minutes from expiry, with a `jti` it has
//! never seen; anything else is `401 invalid_client`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreHmacKey, CoreJsonWebKey, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey,
};
use openidconnect::{JsonWebKey, JsonWebKeyId, PrivateSigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "mdor-test-client";
pub const CLIENT_SECRET: &str = "Canary-client-secret-7f3a";
pub const KEY_1: &str = include_str!("data/oidc-test-rsa-1.pem");
pub const KEY_2: &str = include_str!("data/oidc-test-rsa-2.pem");
/// mdor's own key for `private_key_jwt` (PKCS#8, as `openssl genpkey` writes), by file for
/// mdor's settings and by content for the provider's registration and the log canaries.
pub const CLIENT_KEY_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/it/data/oidc-test-client-rsa.pem"
);
pub const CLIENT_KEY: &str = include_str!("data/oidc-test-client-rsa.pem");
/// The same key as PKCS#1, which `CoreRsaPrivateSigningKey::from_pem` (how the provider
/// derives a public key here) reads: what the provider registers for mdor.
pub const CLIENT_KEY_PKCS1: &str = include_str!("data/oidc-test-client-rsa-pkcs1.pem");
/// The `kid` mdor's assertions name in `private_key_jwt` mode.
pub const CLIENT_KEY_ID: &str = "mdor-client-1";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How the token endpoint authenticates mdor.
#[derive(Clone, Copy)]
pub enum ClientAuth {
    /// `CLIENT_SECRET` by HTTP Basic.
    Secret,
    /// `private_key_jwt`, verified against the public half of `registered` (a PEM private
    /// key, as the tests have it); mdor signs with `CLIENT_KEY` under RS512.
    PrivateKeyJwt { registered: &'static str },
}

/// A client assertion the token endpoint accepted.
#[derive(Clone, Debug)]
pub struct SeenAssertion {
    pub header: Value,
    pub claims: Value,
    pub raw: String,
}

/// A running mock provider.
pub struct Provider {
    pub issuer: String,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

struct Shared {
    client_auth: ClientAuth,
    /// `token_endpoint_auth_methods_supported` as discovery advertises it.
    auth_methods: Vec<&'static str>,
    /// Every client assertion's `jti` accepted so far, and the assertions themselves.
    seen_jtis: HashSet<String>,
    assertions: Vec<SeenAssertion>,
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
    /// Starts a provider publishing `KEY_1` as kid `key-1`, taking the client secret.
    pub async fn start() -> Provider {
        Provider::start_with(ClientAuth::Secret).await
    }

    /// Starts a provider publishing `KEY_1` as kid `key-1`, authenticating mdor as `auth`
    /// says and advertising that method alone.
    pub async fn start_with(client_auth: ClientAuth) -> Provider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let auth_methods = match client_auth {
            ClientAuth::Secret => vec!["client_secret_basic"],
            ClientAuth::PrivateKeyJwt { .. } => vec!["private_key_jwt"],
        };
        let shared = Arc::new(Mutex::new(Shared {
            client_auth,
            auth_methods,
            seen_jtis: HashSet::new(),
            assertions: Vec::new(),
            published: vec![("key-1".to_string(), KEY_1)],
            codes: HashMap::new(),
            jwks_fetches: 0,
            last_refusal: None,
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

    /// mdor's settings for this provider: AAL2 and AAL3 accepted, AAL3 phishing-resistant;
    /// the client secret, or `CLIENT_KEY` under RS512 when the provider takes
    /// `private_key_jwt`.
    pub fn settings(&self) -> mdor_service::OidcSettings {
        let client_auth = self.shared.lock().unwrap().client_auth;
        let (secret, key_file, key_id, alg) = match client_auth {
            ClientAuth::Secret => (
                Some(secrecy::SecretString::from(CLIENT_SECRET.to_string())),
                None,
                None,
                None,
            ),
            ClientAuth::PrivateKeyJwt { .. } => (
                None,
                Some(std::path::PathBuf::from(CLIENT_KEY_FILE)),
                Some(CLIENT_KEY_ID.to_string()),
                Some("RS512".to_string()),
            ),
        };
        mdor_service::OidcSettings::new(mdor_service::OidcConfig {
            issuer: self.issuer.clone(),
            client_id: CLIENT_ID.to_string(),
            client_auth: matches!(client_auth, ClientAuth::PrivateKeyJwt { .. })
                .then(|| "private_key_jwt".to_string()),
            client_secret: secret,
            client_private_key_file: key_file,
            client_key_id: key_id,
            client_assertion_alg: alg,
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

    /// Advertises these token endpoint authentication methods from now on.
    pub fn advertise_auth_methods(&self, methods: Vec<&'static str>) {
        self.shared.lock().unwrap().auth_methods = methods;
    }

    /// The client assertions the token endpoint accepted, oldest first.
    pub fn assertions(&self) -> Vec<SeenAssertion> {
        self.shared.lock().unwrap().assertions.clone()
    }

    /// The token endpoint, as discovery names it.
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer)
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

async fn discovery(State((issuer, shared)): ProviderState) -> Response {
    let auth_methods = shared.lock().unwrap().auth_methods.clone();
    axum::Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": auth_methods,
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

async fn token(
    State((issuer, shared)): ProviderState,
    headers: HeaderMap,
    body: String,
) -> Response {
    let form: HashMap<String, String> = openidconnect::url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let mut shared = shared.lock().unwrap();
    // The client first, as a provider authenticates it before looking at the grant.
    let authenticated = match shared.client_auth {
        ClientAuth::Secret => check_client_secret(&headers),
        ClientAuth::PrivateKeyJwt { registered } => {
            check_client_assertion(&mut shared, &issuer, registered, &headers, &form)
        }
    };
    if let Err(reason) = authenticated {
        shared.last_refusal = Some(reason);
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": "invalid_client" })),
        )
            .into_response();
    }
    let refusal = check_token_request(&mut shared, &form);
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

fn check_client_secret(headers: &HeaderMap) -> Result<(), String> {
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
        return Err("client authentication".into());
    }
    Ok(())
}

/// RFC 7523 §3 and OpenID Connect Core §9, as a provider checks a client assertion.
fn check_client_assertion(
    shared: &mut Shared,
    issuer: &str,
    registered: &str,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<(), String> {
    if headers.contains_key("authorization") {
        return Err("an Authorization header beside a client assertion".into());
    }
    if form.contains_key("client_secret") {
        return Err("a client secret beside a client assertion".into());
    }
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return Err("client_id".into());
    }
    if form.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
        return Err("client_assertion_type".into());
    }
    let raw = form.get("client_assertion").ok_or("no client_assertion")?;
    let parts: Vec<&str> = raw.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err("client assertion is not a compact JWS".into());
    };
    let decode = |part: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| "client assertion is not base64url")?;
        serde_json::from_slice(&bytes).map_err(|_| "client assertion is not JSON".to_string())
    };
    let header_json = decode(header)?;
    let claims_json = decode(claims)?;
    // RSA only: never `none`, and never HMAC, which would make the public key a MAC key.
    let alg = match header_json["alg"].as_str() {
        Some("RS256") => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        Some("RS384") => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
        Some("RS512") => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
        other => return Err(format!("client assertion alg {other:?} not accepted")),
    };
    let key: CoreJsonWebKey = serde_json::from_value(public_jwk("client", registered)).unwrap();
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| "client assertion signature is not base64url")?;
    key.verify_signature(&alg, format!("{header}.{claims}").as_bytes(), &signature)
        .map_err(|_| "client assertion signature does not verify with the registered key")?;
    if claims_json["iss"] != CLIENT_ID || claims_json["sub"] != CLIENT_ID {
        return Err("client assertion iss and sub must be the client id".into());
    }
    if claims_json["aud"] != format!("{issuer}/token") {
        return Err("client assertion aud is not this token endpoint".into());
    }
    let now = Utc::now().timestamp();
    let exp = claims_json["exp"]
        .as_i64()
        .ok_or("client assertion has no exp")?;
    if exp <= now {
        return Err("client assertion expired".into());
    }
    if exp > now + 300 {
        return Err("client assertion expires more than five minutes from now".into());
    }
    let jti = claims_json["jti"]
        .as_str()
        .filter(|jti| !jti.is_empty())
        .ok_or("client assertion has no jti")?;
    if !shared.seen_jtis.insert(jti.to_string()) {
        return Err("client assertion replayed (jti seen before)".into());
    }
    shared.assertions.push(SeenAssertion {
        header: header_json,
        claims: claims_json,
        raw: raw.clone(),
    });
    Ok(())
}

fn check_token_request(
    shared: &mut Shared,
    form: &HashMap<String, String>,
) -> Result<String, String> {
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
