//! OpenID Connect sign-in for national identity providers (such as NHS CIS2): the
//! authorization code flow with PKCE, state and nonce, ending in the same server-side session
//! as a password sign-in (`sessions`).
//!
//! A sign-in under way is kept on the server only as hashes (`oidc_sign_in`): the state, which
//! comes back in the callback's URL; the nonce, which the ID token must carry; and the PKCE
//! verifier, which is never in a URL: the browser that started the sign-in holds it in a
//! cookie, so a callback made in another browser (login CSRF: a victim sent to the attacker's
//! own callback) fails, and an intercepted code cannot be redeemed without it. The callback
//! takes its sign-in by the state's hash before anything else, so a state works once.
//!
//! The ID token comes straight from the token endpoint and is checked with `openidconnect`:
//! issuer, audience (no other audience trusted, and `azp`, when present, must be this client),
//! signature by a key of the provider's JWKS with an asymmetric algorithm only (`alg=none` and
//! HMAC, which would let the public key or the client secret be used as a MAC key, are
//! refused), expiry and issue time within `CLOCK_SKEW`, the nonce (compared by hash) and the assurance level (`acr`) against the
//! configured list. There is no self sign-up: the (issuer, subject) must be linked to an
//! existing, enabled account by the operator (`link_oidc_identity`) or an administrator
//! (`administrator_link_oidc_identity`).
//!
//! This server authenticates itself at the token endpoint with its client secret or, where
//! the provider requires it (CIS2 does), with `private_key_jwt` (RFC 7523, OpenID Connect Core
//! §9): each token request carries a fresh JWT signed with this server's own RSA key, naming
//! the token endpoint as its audience, valid for a minute and with a random `jti` the
//! provider accepts once, so a captured assertion is worth little and no shared secret exists
//! to leak. The key is read once at start-up and never printed.
//!
//! Every refusal is audited like a password sign-in's (action `account.login`, purpose
//! `authentication`, the outcome naming the check that failed) and the caller always gets the
//! same `ServiceError::Unauthenticated`; nothing of the code, state, nonce or token is logged.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod,
    CoreErrorResponseType, CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet,
    CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreRsaPrivateSigningKey,
};
use openidconnect::{
    AuthType, AuthenticationContextClass, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, PrivateSigningKey, RedirectUrl, RequestTokenError, Scope,
    SignatureVerificationError, SigningError, TokenResponse,
};
use rand::RngCore;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey, LineEnding};
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use mdor_store::{
    Account, AccountId, NewOidcIdentity, NewOidcSignIn, SessionAssurance, SessionFactor,
};

use crate::accounts::{Administrator, SignedIn, Username, audit_event};
use crate::auth::Principal;
use crate::ctx::Ctx;
use crate::error::ServiceError;
use crate::policy::Action;
use crate::sessions::{SessionSecret, StartedSession, start_session};

/// How long a person has at the identity provider before the sign-in must start again.
pub const SIGN_IN_TIMEOUT: Duration = Duration::minutes(10);
/// How far the identity provider's clock may be from ours, for `exp` and `iat`.
pub const CLOCK_SKEW: Duration = Duration::seconds(60);
/// The discovery document (endpoints and keys) is fetched again after this long; the keys
/// also whenever a token names a key the cached set lacks (the provider rotated them).
const METADATA_MAX_AGE: StdDuration = StdDuration::from_secs(24 * 60 * 60);
/// Every request to the identity provider gives up after this long.
const PROVIDER_TIMEOUT: StdDuration = StdDuration::from_secs(10);
/// Signature algorithms an ID token may use: asymmetric ones only, so that neither the client
/// secret nor a public key can ever serve as an HMAC key.
const ASYMMETRIC_ALGORITHMS: [CoreJwsSigningAlgorithm; 8] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
];
const LINK_ACTION: &str = "account.link_oidc";
/// The error an `iat` in the future is reported with, told apart from an expired token.
const ISSUED_IN_FUTURE: &str = "issued in the future";
/// RFC 7523's `client_assertion_type`: the client assertion is a JWT.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long a client assertion is valid: enough to reach the provider over a slow network,
/// and short, so that a captured assertion is soon worthless even to a provider that did not
/// remember its `jti`.
const CLIENT_ASSERTION_LIFETIME: Duration = Duration::seconds(60);
/// The smallest client key accepted: providers (and NIST SP 800-131A) require 2048 bits.
const MIN_CLIENT_KEY_BITS: usize = 2048;
const CLIENT_KEY_SETTING: &str = "oidc.client_private_key_file";

/// The `[oidc]` settings as written, before they are checked.
pub struct OidcConfig {
    pub issuer: String,
    pub client_id: String,
    /// How this server authenticates at the token endpoint: `client_secret` (when `None`) or
    /// `private_key_jwt`.
    pub client_auth: Option<String>,
    /// The shared secret, with `client_secret` only.
    pub client_secret: Option<SecretString>,
    /// With `private_key_jwt` only: the PEM file of this server's RSA private key (PKCS#1 or
    /// PKCS#8, unencrypted), the `kid` the provider knows its public key by, and the
    /// assertion's algorithm (`RS256` when `None`; `RS384`, `RS512`).
    pub client_private_key_file: Option<PathBuf>,
    pub client_key_id: Option<String>,
    pub client_assertion_alg: Option<String>,
    pub redirect_url: String,
    /// Scopes besides `openid`, which is always asked for.
    pub scopes: Vec<String>,
    /// The assurance levels (`acr` values) a sign-in may have; any other is refused.
    pub accepted_acr_values: Vec<String>,
    /// Those of the accepted levels that only a phishing-resistant authenticator reaches
    /// (CIS2's smartcard levels, for example).
    pub phishing_resistant_acr_values: Vec<String>,
}

/// Checked OpenID Connect settings: absolute `https` URLs (plain `http` only on loopback, for
/// tests and development), a client id with its secret or its private key, and a non-empty
/// list of accepted assurance levels containing the phishing-resistant ones.
#[derive(Clone)]
pub struct OidcSettings {
    issuer: IssuerUrl,
    client_id: ClientId,
    client_auth: ClientAuth,
    redirect_url: RedirectUrl,
    scopes: Vec<Scope>,
    accepted_acr_values: Vec<String>,
    phishing_resistant_acr_values: Vec<String>,
}

/// How this server proves itself at the provider's token endpoint.
#[derive(Clone)]
enum ClientAuth {
    /// A shared secret: HTTP Basic (`client_secret_basic`), or in the body
    /// (`client_secret_post`) when the provider takes it only there.
    Secret(SecretString),
    /// A JWT signed with this server's own key (`private_key_jwt`); no secret is sent.
    PrivateKeyJwt(Arc<ClientKey>),
}

/// This server's RSA key for client assertions, with the `kid` and algorithm they name.
/// Never printed: it has no `Debug`, and `OidcSettings` shows `***` in its place.
struct ClientKey {
    key: CoreRsaPrivateSigningKey,
    key_id: Option<String>,
    algorithm: AssertionAlgorithm,
}

/// The client assertion's signature algorithm: RSA PKCS#1 v1.5 only, which every provider
/// taking `private_key_jwt` accepts (CIS2 asks for RS512).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AssertionAlgorithm {
    Rs256,
    Rs384,
    Rs512,
}

impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("OidcSettings");
        debug
            .field("issuer", &self.issuer.as_str())
            .field("client_id", &self.client_id.as_str());
        match &self.client_auth {
            ClientAuth::Secret(_) => debug.field("client_secret", &"***"),
            ClientAuth::PrivateKeyJwt(key) => debug
                .field("client_private_key", &"***")
                .field("client_key_id", &key.key_id)
                .field("client_assertion_alg", &key.algorithm.name()),
        };
        debug
            .field("redirect_url", &self.redirect_url.as_str())
            .field("scopes", &self.scopes)
            .field("accepted_acr_values", &self.accepted_acr_values)
            .field(
                "phishing_resistant_acr_values",
                &self.phishing_resistant_acr_values,
            )
            .finish()
    }
}

impl OidcSettings {
    /// Checks the settings; each problem names its setting (`oidc.issuer`, …).
    pub fn new(config: OidcConfig) -> Result<OidcSettings, ServiceError> {
        let issuer = IssuerUrl::new(config.issuer.trim().to_string())
            .map_err(|_| invalid("oidc.issuer", "is not an absolute URL"))?;
        check_transport("oidc.issuer", issuer.url())?;
        if issuer.url().query().is_some() || issuer.url().fragment().is_some() {
            return Err(invalid(
                "oidc.issuer",
                "must have no query or fragment (OpenID Connect Discovery §2)",
            ));
        }
        let redirect_url = RedirectUrl::new(config.redirect_url.trim().to_string())
            .map_err(|_| invalid("oidc.redirect_url", "is not an absolute URL"))?;
        check_transport("oidc.redirect_url", redirect_url.url())?;
        let client_id = config.client_id.trim();
        if client_id.is_empty() {
            return Err(invalid("oidc.client_id", "must not be empty"));
        }
        let client_auth = client_auth(&config)?;
        let mut scopes = Vec::new();
        for scope in &config.scopes {
            let scope = scope.trim();
            if scope.is_empty() || scope.contains(char::is_whitespace) {
                return Err(invalid("oidc.scopes", "each scope is one non-empty word"));
            }
            // `openid` is always requested; asking twice would repeat it in the URL.
            if scope != "openid" {
                scopes.push(Scope::new(scope.to_string()));
            }
        }
        let accepted = trimmed(&config.accepted_acr_values);
        if accepted.is_empty() || accepted.iter().any(String::is_empty) {
            return Err(invalid(
                "oidc.accepted_acr_values",
                "must list at least one assurance level, none of them empty",
            ));
        }
        let phishing_resistant = trimmed(&config.phishing_resistant_acr_values);
        if let Some(unknown) = phishing_resistant.iter().find(|v| !accepted.contains(v)) {
            return Err(invalid(
                "oidc.phishing_resistant_acr_values",
                format!("'{unknown}' is not one of oidc.accepted_acr_values"),
            ));
        }
        Ok(OidcSettings {
            issuer,
            client_id: ClientId::new(client_id.to_string()),
            client_auth,
            redirect_url,
            scopes,
            accepted_acr_values: accepted,
            phishing_resistant_acr_values: phishing_resistant,
        })
    }

    /// The issuer exactly as configured: the ID token's `iss` must equal it, and identity
    /// links are stored under it.
    pub fn issuer(&self) -> &str {
        self.issuer.as_str()
    }
}

impl AssertionAlgorithm {
    /// The algorithm by its JOSE name, which is case-sensitive.
    fn parse(name: &str) -> Option<AssertionAlgorithm> {
        match name {
            "RS256" => Some(AssertionAlgorithm::Rs256),
            "RS384" => Some(AssertionAlgorithm::Rs384),
            "RS512" => Some(AssertionAlgorithm::Rs512),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            AssertionAlgorithm::Rs256 => "RS256",
            AssertionAlgorithm::Rs384 => "RS384",
            AssertionAlgorithm::Rs512 => "RS512",
        }
    }

    fn jws(self) -> CoreJwsSigningAlgorithm {
        match self {
            AssertionAlgorithm::Rs256 => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            AssertionAlgorithm::Rs384 => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
            AssertionAlgorithm::Rs512 => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
        }
    }
}

impl ClientKey {
    /// A client assertion for one token request (RFC 7523 §3): issued by and about this
    /// client, for `token_endpoint`, from `now` (the service's clock) for
    /// `CLIENT_ASSERTION_LIFETIME`, with 256 random bits as its `jti`.
    fn assertion(
        &self,
        client_id: &ClientId,
        token_endpoint: &str,
        now: DateTime<Utc>,
    ) -> Result<String, SigningError> {
        let mut header = serde_json::json!({ "alg": self.algorithm.name(), "typ": "JWT" });
        if let Some(key_id) = &self.key_id {
            header["kid"] = serde_json::Value::from(key_id.as_str());
        }
        let mut jti = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut jti);
        let claims = serde_json::json!({
            "iss": client_id.as_str(),
            "sub": client_id.as_str(),
            "aud": token_endpoint,
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "iat": now.timestamp(),
            "exp": (now + CLIENT_ASSERTION_LIFETIME).timestamp(),
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.key.sign(&self.algorithm.jws(), input.as_bytes())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// The identity provider as this server knows it: its settings, an HTTP client that follows
/// no redirects, and the discovery document with its keys, fetched on first use and cached.
pub struct OidcProvider {
    settings: OidcSettings,
    http: openidconnect::reqwest::Client,
    discovered: tokio::sync::Mutex<Option<Discovered>>,
}

struct Discovered {
    metadata: CoreProviderMetadata,
    fetched_at: Instant,
}

/// A client of the provider with its authorization endpoint set (and its token endpoint as
/// the discovery document gave it).
type ProviderClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

impl OidcProvider {
    pub fn new(settings: OidcSettings) -> Result<OidcProvider, ServiceError> {
        // No redirects: a provider endpoint that redirects could otherwise send this server's
        // requests anywhere (the `openidconnect` documentation asks for this).
        let http = openidconnect::reqwest::ClientBuilder::new()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .map_err(|error| {
                ServiceError::Input(format!("building the OpenID Connect HTTP client: {error}"))
            })?;
        Ok(OidcProvider {
            settings,
            http,
            discovered: tokio::sync::Mutex::new(None),
        })
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// The discovery document and keys, from the cache unless they are a day old.
    async fn metadata(&self) -> Result<CoreProviderMetadata, ProviderFailure> {
        let mut discovered = self.discovered.lock().await;
        if let Some(cached) = discovered.as_ref()
            && cached.fetched_at.elapsed() < METADATA_MAX_AGE
        {
            return Ok(cached.metadata.clone());
        }
        let metadata =
            CoreProviderMetadata::discover_async(self.settings.issuer.clone(), &self.http)
                .await
                .map_err(|error| ProviderFailure::new("discovery", &error))?;
        *discovered = Some(Discovered {
            metadata: metadata.clone(),
            fetched_at: Instant::now(),
        });
        Ok(metadata)
    }

    /// Fetches the provider's keys again (a token named a key the cached set lacks).
    async fn refresh_keys(
        &self,
        metadata: &CoreProviderMetadata,
    ) -> Result<CoreProviderMetadata, ProviderFailure> {
        let keys = CoreJsonWebKeySet::fetch_async(metadata.jwks_uri(), &self.http)
            .await
            .map_err(|error| ProviderFailure::new("jwks", &error))?;
        let refreshed = metadata.clone().set_jwks(keys);
        let mut discovered = self.discovered.lock().await;
        *discovered = Some(Discovered {
            metadata: refreshed.clone(),
            fetched_at: Instant::now(),
        });
        Ok(refreshed)
    }

    /// A client of the provider authenticating as configured; a failure when the provider
    /// says it does not take `private_key_jwt` and that is configured.
    fn client(&self, metadata: &CoreProviderMetadata) -> Result<ProviderClient, ProviderFailure> {
        let methods = metadata.token_endpoint_auth_methods_supported();
        let (secret, in_body) = match &self.settings.client_auth {
            ClientAuth::Secret(secret) => {
                // The secret goes in the Authorization header (client_secret_basic, the
                // default) unless the provider says it takes it only in the body.
                let post_only = methods.is_some_and(|methods| {
                    methods.contains(&CoreClientAuthMethod::ClientSecretPost)
                        && !methods.contains(&CoreClientAuthMethod::ClientSecretBasic)
                });
                (
                    Some(ClientSecret::new(secret.expose_secret().to_string())),
                    post_only,
                )
            }
            ClientAuth::PrivateKeyJwt(_) => {
                // Discovery may leave the methods out (the default is client_secret_basic, but
                // a client registered for private_key_jwt is known to the provider anyway).
                if methods.is_some_and(|m| !m.contains(&CoreClientAuthMethod::PrivateKeyJwt)) {
                    return Err(ProviderFailure {
                        stage: "discovery",
                        detail: "the token endpoint does not offer private_key_jwt".to_string(),
                    });
                }
                // No secret and the request body: `client_id` goes in the form beside the
                // assertion, and no Authorization header is sent.
                (None, true)
            }
        };
        let client = CoreClient::from_provider_metadata(
            metadata.clone(),
            self.settings.client_id.clone(),
            secret,
        )
        .set_redirect_uri(self.settings.redirect_url.clone());
        Ok(if in_body {
            client.set_auth_type(AuthType::RequestBody)
        } else {
            client
        })
    }

    /// Verifies the ID token against these keys and the sign-in's nonce hash.
    fn verify(
        &self,
        metadata: &CoreProviderMetadata,
        id_token: &CoreIdToken,
        nonce_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedToken, ClaimsVerificationError> {
        let accepted = &self.settings.accepted_acr_values;
        // A public-client verifier: it never uses the client secret as an HMAC key, and the
        // allowed algorithms below are asymmetric anyway.
        let verifier = CoreIdTokenVerifier::new_public_client(
            self.settings.client_id.clone(),
            self.settings.issuer.clone(),
            metadata.jwks().clone(),
        )
        .set_allowed_algs(ASYMMETRIC_ALGORITHMS)
        // `exp` is compared with a clock set back by the skew, so a token is accepted until
        // `CLOCK_SKEW` after its expiry; an `iat` more than the skew ahead is refused.
        .set_time_fn(move || now - CLOCK_SKEW)
        .set_issue_time_verifier_fn(move |issued_at| {
            if issued_at > now + CLOCK_SKEW {
                Err(ISSUED_IN_FUTURE.to_string())
            } else {
                Ok(())
            }
        })
        .set_auth_context_verifier_fn(move |acr: Option<&AuthenticationContextClass>| match acr {
            Some(acr) if accepted.iter().any(|value| value == acr.as_str()) => Ok(()),
            _ => Err("assurance level not accepted".to_string()),
        });
        let nonce_verifier = |nonce: Option<&Nonce>| match nonce {
            Some(nonce) if hash_matches(&sha256_hex(nonce.secret()), nonce_hash) => Ok(()),
            Some(_) => Err("nonce does not match".to_string()),
            None => Err("nonce missing".to_string()),
        };
        let claims = id_token.claims(&verifier, nonce_verifier)?;
        if let Some(authorized_party) = claims.authorized_party()
            && authorized_party.as_str() != self.settings.client_id.as_str()
        {
            return Err(ClaimsVerificationError::InvalidAudience(
                "azp names another client".to_string(),
            ));
        }
        let acr = claims
            .auth_context_ref()
            .map(|acr| acr.as_str().to_string())
            .unwrap_or_default();
        Ok(VerifiedToken {
            subject: claims.subject().as_str().to_string(),
            phishing_resistant: self.settings.phishing_resistant_acr_values.contains(&acr),
            auth_time: claims.auth_time(),
        })
    }
}

/// The browser's half of a sign-in under way: the PKCE verifier, kept in a cookie and
/// checked against the stored hash at the callback. Never logged: `Debug` shows nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct OidcBrowserBinding(String);

impl OidcBrowserBinding {
    /// A binding as the browser presents it; `None` when it cannot be a PKCE verifier
    /// (RFC 7636 §4.1: 43 to 128 unreserved characters).
    pub fn parse(input: &str) -> Option<OidcBrowserBinding> {
        let well_formed = (43..=128).contains(&input.len())
            && input
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        well_formed.then(|| OidcBrowserBinding(input.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for OidcBrowserBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OidcBrowserBinding(..)")
    }
}

/// A sign-in sent to the identity provider: where to send the browser, and what it must
/// keep until the callback. `Debug` leaves out the URL, which carries the state and nonce.
pub struct OidcStart {
    pub authorization_url: String,
    pub browser_binding: OidcBrowserBinding,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for OidcStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcStart")
            .field("browser_binding", &self.browser_binding)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What the identity provider sent the browser back with. `Debug` says only which parts are
/// present: the code and state are bearer secrets until used.
#[derive(Default)]
pub struct OidcCallback<'a> {
    pub code: Option<&'a str>,
    pub state: Option<&'a str>,
    /// The provider's `error` parameter: it refused, or the person cancelled.
    pub error: Option<&'a str>,
    /// The binding from the browser's cookie, when it sent one.
    pub browser_binding: Option<&'a OidcBrowserBinding>,
}

impl std::fmt::Debug for OidcCallback<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcCallback")
            .field("code", &self.code.map(|_| ".."))
            .field("state", &self.state.map(|_| ".."))
            .field("error", &self.error)
            .field("browser_binding", &self.browser_binding)
            .finish()
    }
}

/// Starts a sign-in: a fresh state, nonce and PKCE verifier (256 random bits each), stored as
/// hashes, and the provider's authorization URL asking for the accepted assurance levels.
#[tracing::instrument(skip_all)]
pub async fn begin_oidc_sign_in(ctx: &Ctx) -> Result<OidcStart, ServiceError> {
    begin(ctx, None).await
}

/// Starts a step-up of the caller's own live session through the identity provider, which is
/// asked to authenticate the person again (`prompt=login`, `max_age=0`); the callback then
/// gives that session a new secret and a fresh re-authentication, as a step-up with a
/// password does (`sessions::reauthenticate`), if the ID token is for the session's own
/// account and says the person authenticated after the step-up began.
pub async fn begin_oidc_reauthentication(
    ctx: &Ctx,
    secret: &SessionSecret,
) -> Result<OidcStart, ServiceError> {
    begin(ctx, Some(secret.hash())).await
}

async fn begin(ctx: &Ctx, step_up_session_hash: Option<String>) -> Result<OidcStart, ServiceError> {
    let provider = ctx.oidc()?;
    let metadata = provider.metadata().await.map_err(|failure| {
        failure.log();
        ServiceError::IdentityProviderUnavailable
    })?;
    // Refused here too, rather than after the person has signed in at the provider.
    let client = provider.client(&metadata).map_err(|failure| {
        failure.log();
        ServiceError::IdentityProviderUnavailable
    })?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            || CsrfToken::new_random_len(32),
            || Nonce::new_random_len(32),
        )
        .set_pkce_challenge(challenge);
    for scope in &provider.settings.scopes {
        request = request.add_scope(scope.clone());
    }
    for acr in &provider.settings.accepted_acr_values {
        request = request.add_auth_context_value(AuthenticationContextClass::new(acr.clone()));
    }
    if step_up_session_hash.is_some() {
        // A step-up must be a fresh authentication, not the provider's own session.
        request = request
            .add_prompt(CoreAuthPrompt::Login)
            .set_max_age(StdDuration::ZERO);
    }
    let (url, state, nonce) = request.url();
    let now = ctx.now().trunc_subsecs(0);
    let expires_at = now + SIGN_IN_TIMEOUT;
    ctx.store
        .insert_oidc_sign_in(&NewOidcSignIn {
            state_hash: sha256_hex(state.secret()),
            nonce_hash: sha256_hex(nonce.secret()),
            verifier_hash: sha256_hex(verifier.secret()),
            created_at: now,
            expires_at,
            step_up_session_hash,
        })
        .await?;
    Ok(OidcStart {
        authorization_url: url.to_string(),
        browser_binding: OidcBrowserBinding(verifier.secret().clone()),
        expires_at,
    })
}

/// Finishes a sign-in at the callback: takes the sign-in by its state, exchanges the code,
/// verifies the ID token, finds the linked account and starts a session as a password
/// sign-in does, with factor `oidc`, phishing-resistant when the token's assurance level is
/// one of the configured phishing-resistant ones. Every refusal is audited and is the same
/// `Unauthenticated`; storage failures are errors of their own.
#[tracing::instrument(skip_all)]
pub async fn finish_oidc_sign_in(
    ctx: &Ctx,
    callback: &OidcCallback<'_>,
) -> Result<StartedSession, ServiceError> {
    let provider = ctx.oidc()?;
    let now = ctx.now();
    let verified = match check_callback(ctx, &provider, callback, now).await? {
        Ok(verified) => verified,
        Err(refusal) => return refuse(ctx, refusal.account.as_ref(), refusal.outcome, now).await,
    };
    let account = verified.account;
    // A step-up re-authenticates the live session that started it, for its own account only.
    let step_up = match &verified.step_up_session_hash {
        None => None,
        Some(hash) => match crate::sessions::live_session(ctx, hash).await {
            Ok(caller) if caller.session.account == account.id => Some(caller),
            Ok(_) => return refuse(ctx, Some(&account), "oidc_other_account", now).await,
            Err(ServiceError::Unauthenticated) => {
                return refuse(ctx, Some(&account), "oidc_session_ended", now).await;
            }
            Err(other) => return Err(other),
        },
    };
    let Some(audit) = audit_event(ctx, Some(&account), "ok", now).await? else {
        // No organisation to audit under: fail closed rather than sign in unaudited.
        return Err(ServiceError::Unauthenticated);
    };
    if !ctx.store.record_oidc_login(account.id, now, &audit).await? {
        // Disabled between the lookup and now.
        return refuse(ctx, Some(&account), "oidc_disabled", now).await;
    }
    tracing::info!("openid connect sign-in succeeded");
    let signed_in = SignedIn {
        account: account.id,
        role: account.role,
        organisation: account.organisation,
        organisation_ods: account.organisation_ods,
        patient: account.patient,
        // The password plays no part here: the identity provider authenticated the person.
        must_change_password: false,
        // Phishing-resistant when the provider asserted one of the configured levels (a CIS2
        // smartcard, say); a session of a role that needs one is limited otherwise.
        assurance: SessionAssurance {
            factor: SessionFactor::Oidc,
            phishing_resistant: verified.phishing_resistant,
        },
    };
    match step_up {
        Some(caller) => crate::sessions::rotate(ctx, &caller, signed_in.assurance).await,
        None => start_session(ctx, &signed_in).await,
    }
}

/// Links an identity provider subject, under the configured issuer, to an existing account
/// (the operator's `mdor account link-oidc`), audited as role `operator`, purpose
/// `administration`, under the registry's own organisation (or the account's). An unknown
/// username is `NotFound`; a subject already linked, or an account already linked at this
/// issuer, is a `Conflict`.
pub async fn link_oidc_identity(
    ctx: &Ctx,
    issuer: &str,
    username: &Username,
    subject: &str,
) -> Result<AccountId, ServiceError> {
    link(ctx, Administrator::Operator, issuer, username, subject).await
}

/// `link_oidc_identity` by an administrator's own session (stepped up within 10 minutes, as
/// all account administration), under the identity provider this server is configured with;
/// without one, `OidcNotConfigured`, as the sign-in routes answer.
pub async fn administrator_link_oidc_identity(
    ctx: &Ctx,
    principal: &Principal,
    username: &Username,
    subject: &str,
) -> Result<AccountId, ServiceError> {
    let by = Administrator::Person(principal);
    by.authorize(ctx, Action::LinkOidcIdentity, LINK_ACTION)
        .await?;
    let provider = ctx.oidc()?;
    link(ctx, by, provider.settings().issuer(), username, subject).await
}

async fn link(
    ctx: &Ctx,
    by: Administrator<'_>,
    issuer: &str,
    username: &Username,
    subject: &str,
) -> Result<AccountId, ServiceError> {
    // `by` was authorised by the caller: an administrator before the configuration is read.
    let subject = subject.trim();
    if subject.is_empty() || subject.len() > 255 {
        return Err(invalid("subject", "must be 1 to 255 characters"));
    }
    let account = ctx
        .store
        .account_by_username(username.as_str())
        .await?
        .ok_or(ServiceError::NotFound { what: "account" })?;
    let audit = by
        .audit(
            ctx,
            LINK_ACTION,
            format!("account/{}", account.id),
            account.organisation,
        )
        .await?;
    let identity = NewOidcIdentity {
        account: account.id,
        issuer: issuer.to_string(),
        subject: subject.to_string(),
        linked_at: ctx.now().trunc_subsecs(0),
    };
    ctx.store
        .link_oidc_identity(&identity, &audit)
        .await
        .map_err(|error| match error {
            mdor_store::StoreError::Conflict { .. } => ServiceError::Conflict {
                code: "oidc_identity_taken",
                field: Some("subject".into()),
                message: "this subject is linked to an account already, or this account has a subject at this issuer already".into(),
            },
            other => other.into(),
        })?;
    Ok(account.id)
}

struct Verified {
    account: Account,
    phishing_resistant: bool,
    /// The session a step-up re-authenticates; `None` for a sign-in.
    step_up_session_hash: Option<String>,
}

struct VerifiedToken {
    subject: String,
    phishing_resistant: bool,
    /// When the provider last authenticated the person (`auth_time`), if it said.
    auth_time: Option<DateTime<Utc>>,
}

/// Why a callback signs no one in: the audit outcome, and the account when one was found.
struct Refusal {
    outcome: &'static str,
    account: Option<Account>,
}

fn refused(outcome: &'static str) -> Result<Result<Verified, Refusal>, ServiceError> {
    Ok(Err(Refusal {
        outcome,
        account: None,
    }))
}

/// A request to the provider that failed for reasons of its own (unreachable, malformed),
/// logged without anything of the sign-in.
struct ProviderFailure {
    stage: &'static str,
    detail: String,
}

impl ProviderFailure {
    fn new(stage: &'static str, error: &dyn std::error::Error) -> ProviderFailure {
        ProviderFailure {
            stage,
            detail: crate::error::error_chain(error),
        }
    }

    fn log(&self) {
        tracing::warn!(stage = self.stage, detail = %self.detail, "openid connect provider request failed");
    }
}

/// Every check of the callback in order; the first that fails is the refusal.
async fn check_callback(
    ctx: &Ctx,
    provider: &OidcProvider,
    callback: &OidcCallback<'_>,
    now: DateTime<Utc>,
) -> Result<Result<Verified, Refusal>, ServiceError> {
    let Some(state) = callback.state else {
        return refused("oidc_unknown_state");
    };
    // Taken before anything else is looked at: whatever follows, this state is spent.
    let Some(pending) = ctx.store.take_oidc_sign_in(&sha256_hex(state)).await? else {
        return refused("oidc_unknown_state");
    };
    if now >= pending.expires_at {
        return refused("oidc_state_expired");
    }
    let binding = callback
        .browser_binding
        .filter(|binding| hash_matches(&sha256_hex(binding.expose()), &pending.verifier_hash));
    let Some(binding) = binding else {
        return refused("oidc_browser_mismatch");
    };
    if callback.error.is_some() {
        return refused("oidc_provider_refused");
    }
    let Some(code) = callback.code.filter(|code| !code.is_empty()) else {
        return refused("oidc_no_code");
    };
    let metadata = match provider.metadata().await {
        Ok(metadata) => metadata,
        Err(failure) => {
            failure.log();
            return refused("oidc_provider_unavailable");
        }
    };
    let client = match provider.client(&metadata) {
        Ok(client) => client,
        Err(failure) => {
            failure.log();
            return refused("oidc_provider_unavailable");
        }
    };
    let (Ok(exchange), Some(token_endpoint)) = (
        client.exchange_code(AuthorizationCode::new(code.to_string())),
        metadata.token_endpoint(),
    ) else {
        // The discovery document names no token endpoint.
        return refused("oidc_provider_unavailable");
    };
    let mut exchange =
        exchange.set_pkce_verifier(PkceCodeVerifier::new(binding.expose().to_string()));
    if let ClientAuth::PrivateKeyJwt(key) = &provider.settings.client_auth {
        let Ok(assertion) =
            key.assertion(&provider.settings.client_id, token_endpoint.as_str(), now)
        else {
            tracing::warn!("signing the openid connect client assertion failed");
            return refused("oidc_client_assertion_failed");
        };
        exchange = exchange
            .add_extra_param("client_assertion_type", JWT_BEARER)
            .add_extra_param("client_assertion", assertion);
    }
    let response = exchange.request_async(&provider.http).await;
    let response = match response {
        Ok(response) => response,
        // The provider did not accept this server as its client (a wrong or unregistered key
        // or secret), told apart from a code it would not redeem.
        Err(RequestTokenError::ServerResponse(error))
            if *error.error() == CoreErrorResponseType::InvalidClient =>
        {
            return refused("oidc_client_refused");
        }
        Err(RequestTokenError::ServerResponse(_)) => return refused("oidc_code_refused"),
        Err(RequestTokenError::Parse(_, _)) => return refused("oidc_token_response_invalid"),
        Err(error) => {
            ProviderFailure::new("token", &error).log();
            return refused("oidc_provider_unavailable");
        }
    };
    let Some(id_token) = response.id_token() else {
        return refused("oidc_no_id_token");
    };
    let mut verified = provider.verify(&metadata, id_token, &pending.nonce_hash, now);
    if let Err(ClaimsVerificationError::SignatureVerification(
        SignatureVerificationError::NoMatchingKey,
    )) = verified
    {
        // The provider may have rotated its keys since they were cached.
        match provider.refresh_keys(&metadata).await {
            Ok(refreshed) => {
                verified = provider.verify(&refreshed, id_token, &pending.nonce_hash, now);
            }
            Err(failure) => failure.log(),
        }
    }
    let token = match verified {
        Ok(token) => token,
        Err(error) => return refused(verification_outcome(&error)),
    };
    let Some(account) = ctx
        .store
        .account_by_oidc_identity(provider.settings.issuer(), &token.subject)
        .await?
    else {
        return refused("oidc_unlinked");
    };
    if account.disabled_at.is_some() {
        return Ok(Err(Refusal {
            outcome: "oidc_disabled",
            account: Some(account),
        }));
    }
    // A step-up needs the person authenticated after it began, not a remembered sign-in.
    let fresh = token
        .auth_time
        .is_some_and(|at| at >= pending.created_at - CLOCK_SKEW);
    if pending.step_up_session_hash.is_some() && !fresh {
        return Ok(Err(Refusal {
            outcome: "oidc_not_reauthenticated",
            account: Some(account),
        }));
    }
    Ok(Ok(Verified {
        account,
        phishing_resistant: token.phishing_resistant,
        step_up_session_hash: pending.step_up_session_hash,
    }))
}

/// The audit outcome of an ID token that failed verification.
fn verification_outcome(error: &ClaimsVerificationError) -> &'static str {
    match error {
        ClaimsVerificationError::InvalidIssuer(_) => "oidc_wrong_issuer",
        ClaimsVerificationError::InvalidAudience(_) => "oidc_wrong_audience",
        ClaimsVerificationError::Expired(message) if message == ISSUED_IN_FUTURE => {
            "oidc_issued_in_future"
        }
        ClaimsVerificationError::Expired(_) => "oidc_expired",
        ClaimsVerificationError::InvalidNonce(_) => "oidc_bad_nonce",
        ClaimsVerificationError::InvalidAuthContext(_) => "oidc_low_assurance",
        ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoSignature) => {
            "oidc_unsigned"
        }
        ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::DisallowedAlg(_),
        ) => "oidc_disallowed_algorithm",
        ClaimsVerificationError::SignatureVerification(_) => "oidc_bad_signature",
        _ => "oidc_invalid_token",
    }
}

/// A refusal: audited (not counted towards the password soft lock, which guards passwords),
/// logged without its reason, and the same `Unauthenticated` whatever it was.
async fn refuse<T>(
    ctx: &Ctx,
    account: Option<&Account>,
    outcome: &'static str,
    now: DateTime<Utc>,
) -> Result<T, ServiceError> {
    let audit = audit_event(ctx, account, outcome, now).await?;
    ctx.store
        .record_login_failure(None, now, audit.as_ref())
        .await?;
    tracing::info!("openid connect sign-in refused");
    Err(ServiceError::Unauthenticated)
}

/// The client authentication the settings describe; each problem names its setting, and
/// settings of the other method are refused rather than ignored, so that nobody believes a
/// secret (or a key) is in use when it is not.
fn client_auth(config: &OidcConfig) -> Result<ClientAuth, ServiceError> {
    let method = config.client_auth.as_deref().map(str::trim);
    match method {
        None | Some("client_secret") => {
            let key_settings = [
                (CLIENT_KEY_SETTING, config.client_private_key_file.is_some()),
                ("oidc.client_key_id", config.client_key_id.is_some()),
                (
                    "oidc.client_assertion_alg",
                    config.client_assertion_alg.is_some(),
                ),
            ];
            if let Some((setting, _)) = key_settings.iter().find(|(_, given)| *given) {
                return Err(invalid(
                    setting,
                    "is only used with client_auth = \"private_key_jwt\"",
                ));
            }
            match &config.client_secret {
                Some(secret) if !secret.expose_secret().trim().is_empty() => {
                    Ok(ClientAuth::Secret(secret.clone()))
                }
                _ => Err(invalid("oidc.client_secret", "must not be empty")),
            }
        }
        Some("private_key_jwt") => {
            if config.client_secret.is_some() {
                return Err(invalid(
                    "oidc.client_secret",
                    "must not be given with client_auth = \"private_key_jwt\", which uses no secret",
                ));
            }
            let algorithm = match config.client_assertion_alg.as_deref().map(str::trim) {
                None => AssertionAlgorithm::Rs256,
                Some(name) => AssertionAlgorithm::parse(name).ok_or_else(|| {
                    invalid(
                        "oidc.client_assertion_alg",
                        format!("must be RS256, RS384 or RS512 (got '{name}')"),
                    )
                })?,
            };
            let key_id = match config.client_key_id.as_deref().map(str::trim) {
                Some("") => {
                    return Err(invalid(
                        "oidc.client_key_id",
                        "must not be empty when given",
                    ));
                }
                Some(key_id) => Some(key_id.to_string()),
                None => None,
            };
            let Some(path) = &config.client_private_key_file else {
                return Err(invalid(
                    CLIENT_KEY_SETTING,
                    "must name the PEM file of the client's RSA private key",
                ));
            };
            Ok(ClientAuth::PrivateKeyJwt(Arc::new(ClientKey {
                key: read_client_key(path)?,
                key_id,
                algorithm,
            })))
        }
        Some(other) => Err(invalid(
            "oidc.client_auth",
            format!("must be client_secret or private_key_jwt (got '{other}')"),
        )),
    }
}

/// Reads the client's RSA key from a PEM file, PKCS#1 or PKCS#8 (which `openssl genpkey`
/// writes, and `CoreRsaPrivateSigningKey::from_pem` alone would refuse). No message carries
/// anything of the file's content.
fn read_client_key(path: &Path) -> Result<CoreRsaPrivateSigningKey, ServiceError> {
    let pem = std::fs::read_to_string(path)
        .map(SecretString::from)
        .map_err(|error| {
            invalid(
                CLIENT_KEY_SETTING,
                format!("cannot be read: {error} ({})", path.display()),
            )
        })?;
    let not_rsa = || {
        invalid(
            CLIENT_KEY_SETTING,
            format!(
                "is not an RSA private key in PEM (PKCS#1 or unencrypted PKCS#8) ({})",
                path.display()
            ),
        )
    };
    let pem = pem.expose_secret().trim();
    let key = rsa::RsaPrivateKey::from_pkcs1_pem(pem)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs8_pem(pem))
        .map_err(|_| not_rsa())?;
    if key.size() * 8 < MIN_CLIENT_KEY_BITS {
        return Err(invalid(
            CLIENT_KEY_SETTING,
            format!(
                "is an RSA key of fewer than {MIN_CLIENT_KEY_BITS} bits ({})",
                path.display()
            ),
        ));
    }
    // Re-encoded as PKCS#1 for `from_pem`; the text is wiped when dropped.
    let pkcs1 = key.to_pkcs1_pem(LineEnding::LF).map_err(|_| not_rsa())?;
    CoreRsaPrivateSigningKey::from_pem(&pkcs1, None).map_err(|_| not_rsa())
}

/// A URL setting must use HTTPS, except on the loopback interface (tests, development).
fn check_transport(setting: &str, url: &openidconnect::url::Url) -> Result<(), ServiceError> {
    let loopback = match url.host() {
        Some(openidconnect::url::Host::Domain(domain)) => domain == "localhost",
        Some(openidconnect::url::Host::Ipv4(address)) => address.is_loopback(),
        Some(openidconnect::url::Host::Ipv6(address)) => address.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(invalid(
            setting,
            "must be an https URL (plain http only on the loopback interface)",
        )),
    }
}

fn trimmed(values: &[String]) -> Vec<String> {
    values.iter().map(|v| v.trim().to_string()).collect()
}

fn invalid(field: &str, message: impl Into<String>) -> ServiceError {
    ServiceError::invalid(field, "invalid_oidc_setting", message)
}

fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn hash_matches(computed: &str, stored: &str) -> bool {
    computed.as_bytes().ct_eq(stored.as_bytes()).into()
}

impl Ctx {
    /// The same context with OpenID Connect sign-in enabled.
    pub fn with_oidc(mut self, provider: OidcProvider) -> Ctx {
        self.oidc = Some(Arc::new(provider));
        self
    }

    /// The configured identity provider; `OidcNotConfigured` when there is none.
    pub(crate) fn oidc(&self) -> Result<Arc<OidcProvider>, ServiceError> {
        self.oidc.clone().ok_or(ServiceError::OidcNotConfigured)
    }

    /// The configured identity provider's settings, if OpenID Connect is on.
    pub fn oidc_settings(&self) -> Option<&OidcSettings> {
        self.oidc.as_deref().map(OidcProvider::settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OidcConfig {
        OidcConfig {
            issuer: "https://idp.example/realm".into(),
            client_id: "mdor".into(),
            client_auth: None,
            client_secret: Some(SecretString::from("s3cret-client".to_string())),
            client_private_key_file: None,
            client_key_id: None,
            client_assertion_alg: None,
            redirect_url: "https://mdor.example/api/v1/session/oidc/callback".into(),
            scopes: vec!["openid".into(), "profile".into()],
            accepted_acr_values: vec!["AAL2_ANY".into(), "AAL3_ANY".into()],
            phishing_resistant_acr_values: vec!["AAL3_ANY".into()],
        }
    }

    fn problem(config: OidcConfig) -> String {
        match OidcSettings::new(config) {
            Err(ServiceError::Invalid(errors)) => errors[0].field.clone(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn settings_need_https_urls_a_client_and_accepted_levels_containing_the_phishing_resistant_ones()
     {
        let settings = OidcSettings::new(config()).unwrap();
        assert_eq!(settings.issuer(), "https://idp.example/realm");
        assert_eq!(settings.scopes, vec![Scope::new("profile".into())]);
        assert!(!format!("{settings:?}").contains("s3cret-client"));
        let loopback = OidcConfig {
            issuer: "http://127.0.0.1:9999".into(),
            redirect_url: "http://localhost:8080/api/v1/session/oidc/callback".into(),
            ..config()
        };
        assert!(OidcSettings::new(loopback).is_ok());
        type Change = fn(&mut OidcConfig);
        let cases: [(Change, &str); 7] = [
            (|c| c.issuer = "http://idp.example".into(), "oidc.issuer"),
            (|c| c.issuer = "idp.example".into(), "oidc.issuer"),
            (
                |c| c.issuer = "https://idp.example/?x=1".into(),
                "oidc.issuer",
            ),
            (
                |c| c.redirect_url = "http://mdor.example/cb".into(),
                "oidc.redirect_url",
            ),
            (|c| c.client_id = " ".into(), "oidc.client_id"),
            (
                |c| c.accepted_acr_values.clear(),
                "oidc.accepted_acr_values",
            ),
            (
                |c| c.phishing_resistant_acr_values = vec!["AAL9".into()],
                "oidc.phishing_resistant_acr_values",
            ),
        ];
        for (change, setting) in cases {
            let mut changed = config();
            change(&mut changed);
            assert_eq!(problem(changed), setting);
        }
        let mut empty_secret = config();
        empty_secret.client_secret = Some(SecretString::from(String::new()));
        assert_eq!(problem(empty_secret), "oidc.client_secret");
        let mut no_secret = config();
        no_secret.client_secret = None;
        assert_eq!(problem(no_secret), "oidc.client_secret");
    }

    /// A test key file (`tests/it/data/`, test-only keys, see its README).
    fn key_file(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/it/data")
            .join(name)
    }

    /// `config()` switched to `private_key_jwt` with the PKCS#8 test key under RS512.
    fn key_config() -> OidcConfig {
        OidcConfig {
            client_auth: Some("private_key_jwt".into()),
            client_secret: None,
            client_private_key_file: Some(key_file("oidc-client-rsa-pkcs8.pem")),
            client_key_id: Some("mdor-2025".into()),
            client_assertion_alg: Some("RS512".into()),
            ..config()
        }
    }

    /// The whole message of a refused configuration: its setting and what is wrong.
    fn message(config: OidcConfig) -> String {
        match OidcSettings::new(config) {
            Err(ServiceError::Invalid(errors)) => {
                format!("{}: {}", errors[0].field, errors[0].message)
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn private_key_jwt_needs_a_readable_rsa_key_a_known_algorithm_and_no_secret() {
        for file in ["oidc-client-rsa-pkcs8.pem", "oidc-client-rsa-pkcs1.pem"] {
            let settings = OidcSettings::new(OidcConfig {
                client_private_key_file: Some(key_file(file)),
                ..key_config()
            })
            .unwrap();
            assert!(
                matches!(&settings.client_auth, ClientAuth::PrivateKeyJwt(key) if key.algorithm == AssertionAlgorithm::Rs512),
                "{file}"
            );
        }
        let default_alg = OidcSettings::new(OidcConfig {
            client_assertion_alg: None,
            client_key_id: None,
            ..key_config()
        })
        .unwrap();
        assert!(
            matches!(&default_alg.client_auth, ClientAuth::PrivateKeyJwt(key) if key.algorithm == AssertionAlgorithm::Rs256 && key.key_id.is_none())
        );
        type Change = fn(&mut OidcConfig);
        let cases: [(Change, &str); 11] = [
            (
                |c| c.client_private_key_file = Some(key_file("no-such-key.pem")),
                "oidc.client_private_key_file: cannot be read: ",
            ),
            (
                |c| c.client_private_key_file = None,
                "oidc.client_private_key_file: must name",
            ),
            (
                // Not PEM at all.
                |c| c.client_private_key_file = Some(key_file("README.md")),
                "oidc.client_private_key_file: is not an RSA private key in PEM",
            ),
            (
                |c| c.client_private_key_file = Some(key_file("oidc-client-ec.pem")),
                "oidc.client_private_key_file: is not an RSA private key in PEM",
            ),
            (
                |c| c.client_private_key_file = Some(key_file("oidc-client-rsa-1024.pem")),
                "oidc.client_private_key_file: is an RSA key of fewer than 2048 bits",
            ),
            (
                |c| c.client_assertion_alg = Some("HS256".into()),
                "oidc.client_assertion_alg: must be RS256, RS384 or RS512 (got 'HS256')",
            ),
            (
                |c| c.client_assertion_alg = Some("rs512".into()),
                "oidc.client_assertion_alg: ",
            ),
            (
                |c| c.client_assertion_alg = Some("none".into()),
                "oidc.client_assertion_alg: ",
            ),
            (
                |c| c.client_key_id = Some(" ".into()),
                "oidc.client_key_id: ",
            ),
            (
                |c| c.client_secret = Some(SecretString::from("s3cret-client".to_string())),
                "oidc.client_secret: must not be given with client_auth = \"private_key_jwt\"",
            ),
            (
                |c| c.client_auth = Some("private_key".into()),
                "oidc.client_auth: must be client_secret or private_key_jwt",
            ),
        ];
        for (change, expected) in cases {
            let mut changed = key_config();
            change(&mut changed);
            let message = message(changed);
            assert!(message.starts_with(expected), "{message}");
        }
        // The key's settings are refused, not ignored, beside a client secret.
        for (setting, change) in [
            (
                "oidc.client_private_key_file",
                (|c| c.client_private_key_file = Some(key_file("oidc-client-rsa-pkcs8.pem")))
                    as Change,
            ),
            ("oidc.client_key_id", |c| c.client_key_id = Some("k".into())),
            ("oidc.client_assertion_alg", |c| {
                c.client_assertion_alg = Some("RS256".into())
            }),
        ] {
            let mut changed = config();
            change(&mut changed);
            assert_eq!(problem(changed), setting);
        }
    }

    #[test]
    fn the_client_key_is_never_printed() {
        let settings = OidcSettings::new(key_config()).unwrap();
        let printed = format!("{settings:?}");
        assert!(printed.contains("client_private_key: \"***\""), "{printed}");
        assert!(
            printed.contains("RS512") && printed.contains("mdor-2025"),
            "{printed}"
        );
        // No line of the key's base64 body appears, whichever encoding it was read from.
        for file in ["oidc-client-rsa-pkcs8.pem", "oidc-client-rsa-pkcs1.pem"] {
            let pem = std::fs::read_to_string(key_file(file)).unwrap();
            for line in pem.lines().filter(|line| !line.starts_with("-----")) {
                assert!(!printed.contains(line), "{file}: {printed}");
            }
        }
    }

    #[test]
    fn a_client_assertion_is_a_fresh_signed_jwt_for_the_token_endpoint() {
        use openidconnect::JsonWebKey;
        let settings = OidcSettings::new(key_config()).unwrap();
        let ClientAuth::PrivateKeyJwt(key) = &settings.client_auth else {
            panic!("private_key_jwt expected");
        };
        let now = DateTime::parse_from_rfc3339("2025-03-01T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let endpoint = "https://idp.example/realm/token";
        let assertion = key.assertion(&settings.client_id, endpoint, now).unwrap();
        let parts: Vec<&str> = assertion.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |part: &str| -> serde_json::Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
        };
        assert_eq!(
            decode(parts[0]),
            serde_json::json!({ "alg": "RS512", "typ": "JWT", "kid": "mdor-2025" })
        );
        let claims = decode(parts[1]);
        assert_eq!(claims["iss"], "mdor");
        assert_eq!(claims["sub"], "mdor");
        assert_eq!(claims["aud"], endpoint);
        assert_eq!(claims["iat"], now.timestamp());
        assert_eq!(claims["exp"], now.timestamp() + 60);
        let jti = URL_SAFE_NO_PAD
            .decode(claims["jti"].as_str().unwrap())
            .unwrap();
        assert_eq!(jti.len(), 32);
        // Verified with the public half of the key file, under the named algorithm only.
        let public = key.key.as_verification_key();
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        public
            .verify_signature(
                &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
                input.as_bytes(),
                &signature,
            )
            .unwrap();
        assert!(
            public
                .verify_signature(
                    &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                    input.as_bytes(),
                    &signature,
                )
                .is_err()
        );
        let again = key.assertion(&settings.client_id, endpoint, now).unwrap();
        assert_ne!(
            decode(again.split('.').nth(1).unwrap())["jti"],
            claims["jti"]
        );
    }

    #[test]
    fn a_callback_never_prints_its_code_or_state() {
        let callback = OidcCallback {
            code: Some("secret-code-1"),
            state: Some("secret-state-2"),
            ..OidcCallback::default()
        };
        let printed = format!("{callback:?}");
        assert!(!printed.contains("secret-code-1") && !printed.contains("secret-state-2"));
    }

    #[test]
    fn a_browser_binding_is_a_pkce_verifier_and_never_printed() {
        let (_, verifier) = PkceCodeChallenge::new_random_sha256();
        let binding = OidcBrowserBinding::parse(verifier.secret()).unwrap();
        assert_eq!(binding.expose(), verifier.secret());
        assert_eq!(format!("{binding:?}"), "OidcBrowserBinding(..)");
        for bad in [
            "",
            "short",
            &"a".repeat(129),
            &format!("{}!", "a".repeat(43)),
        ] {
            assert!(OidcBrowserBinding::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn each_failed_check_has_its_own_audit_outcome() {
        let cases = [
            (
                ClaimsVerificationError::InvalidIssuer(String::new()),
                "oidc_wrong_issuer",
            ),
            (
                ClaimsVerificationError::Expired(ISSUED_IN_FUTURE.into()),
                "oidc_issued_in_future",
            ),
            (
                ClaimsVerificationError::Expired("ID token expired".into()),
                "oidc_expired",
            ),
            (
                ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::CryptoError(String::new()),
                ),
                "oidc_bad_signature",
            ),
            (
                ClaimsVerificationError::InvalidSubject(String::new()),
                "oidc_invalid_token",
            ),
        ];
        for (error, outcome) in cases {
            assert_eq!(verification_outcome(&error), outcome);
        }
    }
}
