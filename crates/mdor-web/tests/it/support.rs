//! `spawn_app`: the real router on a fresh, migrated store, with organisations and tokens.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use mdor_domain::{NhsNumber, OdsCode};
use mdor_service::{Ctx, NewOrganisation, OrganisationKind, Role};
use mdor_store::{ConnectOptions, Store};

/// A running application and tokens for each kind of caller.
pub struct TestApp {
    pub router: Router,
    pub ctx: Ctx,
    /// The store under the router, for checking what requests wrote (the audit).
    pub store: Arc<dyn Store>,
    /// Provider RA1's submitter.
    pub provider: String,
    /// Provider RB2's submitter.
    pub other_provider: String,
    pub regulator: String,
    /// The registry administrator.
    pub admin: String,
    pub _postgres: Option<PostgresDatabase>,
}

/// Every route that needs a caller (all but the public ones, from `mdor_web::ROUTE_POLICIES`),
/// with a path naming record 1, a device or provider RA1: the authentication tests walk them
/// all, for tokens and sessions alike, so a route is covered as soon as it declares its policy.
pub fn authenticated_routes() -> Vec<(&'static str, String)> {
    mdor_web::ROUTE_POLICIES
        .iter()
        .filter(|r| r.policy != mdor_web::RoutePolicy::Public)
        .map(|r| (r.method, concrete_path(r.path)))
        .collect()
}

/// A route's path template with its parameters filled in.
pub fn concrete_path(template: &str) -> String {
    template
        .replace("{udi_di}", "05012345678900")
        .replace("{ods}", "RA1")
        .replace("{id}", "1")
        .replace("{entry}", "1")
}

/// Which backends the suite runs on: SQLite always, PostgreSQL when configured.
pub fn backends() -> Vec<&'static str> {
    let mut backends = vec!["sqlite"];
    if std::env::var("MDOR_TEST_POSTGRES_URL").is_ok() {
        backends.push("postgres");
    } else if std::env::var("MDOR_REQUIRE_POSTGRES").as_deref() == Ok("1") {
        panic!("MDOR_REQUIRE_POSTGRES=1 but MDOR_TEST_POSTGRES_URL is not set");
    }
    backends
}

/// A throwaway PostgreSQL database, dropped when the test ends.
pub struct PostgresDatabase {
    admin_url: String,
    name: String,
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Dropping needs a connection of its own; a fresh runtime on a thread avoids
        // blocking inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

async fn open(backend: &str) -> (Arc<dyn Store>, Option<PostgresDatabase>) {
    if backend == "sqlite" {
        let store = mdor_store::connect(
            "sqlite::memory:",
            &ConnectOptions {
                kek: Some(mdor_store::KeyEncryptionKey::random()),
                ..ConnectOptions::default()
            },
        )
        .await
        .unwrap();
        return (store, None);
    }
    use sqlx::Connection;
    let admin_url = std::env::var("MDOR_TEST_POSTGRES_URL").unwrap();
    let name = format!("mdor_web_{}", rand_suffix());
    let mut conn = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    let url = format!("{base}/{name}");
    let store = mdor_store::connect(
        &url,
        &ConnectOptions {
            max_connections: 4,
            create_if_missing: false,
            kek: Some(mdor_store::KeyEncryptionKey::random()),
            ..ConnectOptions::default()
        },
    )
    .await
    .unwrap();
    (store, Some(PostgresDatabase { admin_url, name }))
}

fn rand_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{:x}", nanos, std::process::id())
}

pub async fn spawn_app(backend: &str) -> TestApp {
    let (store, postgres) = open(backend).await;
    store.migrate().await.unwrap();
    let ctx = Ctx::new(Arc::clone(&store));
    let organisations = [
        ("RA1", OrganisationKind::Provider),
        ("RB2", OrganisationKind::Provider),
        ("MHRA", OrganisationKind::Regulator),
        ("MDOR", OrganisationKind::Registry),
    ];
    for (ods, kind) in organisations {
        let org = NewOrganisation {
            ods_code: OdsCode::parse(ods).unwrap(),
            name: format!("{ods} test"),
            kind,
            region: None,
        };
        mdor_service::ensure_organisations(&ctx, &[org])
            .await
            .unwrap();
    }
    let token = |ods: &'static str, role| {
        let ctx = ctx.clone();
        async move {
            mdor_service::create_token(&ctx, &OdsCode::parse(ods).unwrap(), role, "test")
                .await
                .ok()
                .unwrap()
                .secret
        }
    };
    let provider = token("RA1", Role::ProviderSubmitter).await;
    let other_provider = token("RB2", Role::ProviderSubmitter).await;
    let regulator = token("MHRA", Role::Regulator).await;
    let admin = token("MDOR", Role::Admin).await;
    let csv = "udi_di,manufacturer,brand,model,device_type,risk_class,registry\n\
               05012345678900,Acme Orthopaedics,Acme,Cup 52mm,hip_cup,III,njr\n\
               05012345678917,Acme Orthopaedics,Acme,Stem 12,hip_stem,III,njr\n";
    mdor_service::load_register_csv(&ctx, csv.as_bytes())
        .await
        .unwrap();
    let router = mdor_web::router(mdor_web::AppState::new(
        ctx.clone(),
        mdor_web::WebSettings::default(),
    ));
    TestApp {
        router,
        ctx,
        store,
        provider,
        other_provider,
        regulator,
        admin,
        _postgres: postgres,
    }
}

/// The origin the web tests' passkeys are bound to.
pub const WEBAUTHN_ORIGIN: &str = "https://registry.test";

/// The WebAuthn relying party of the web tests.
pub fn relying() -> mdor_service::webauthn::Relying {
    mdor_service::webauthn::Relying::new(&mdor_service::webauthn::WebauthnSettings {
        relying_party_id: "registry.test".into(),
        origin: url::Url::parse(WEBAUTHN_ORIGIN).unwrap(),
    })
    .unwrap()
}

/// A software authenticator (webauthn-authenticator-rs) that signs real WebAuthn answers,
/// claiming user verification as a key with a PIN would.
pub type SoftKey = webauthn_authenticator_rs::WebauthnAuthenticator<
    webauthn_authenticator_rs::softpasskey::SoftPasskey,
>;

pub fn soft_key() -> SoftKey {
    webauthn_authenticator_rs::WebauthnAuthenticator::new(
        webauthn_authenticator_rs::softpasskey::SoftPasskey::new(true),
    )
}

/// `key`'s answer to a ceremony's options, as JSON the browser would send.
pub fn key_answer(key: &mut SoftKey, options: &Value, registration: bool) -> Value {
    let origin = url::Url::parse(WEBAUTHN_ORIGIN).unwrap();
    if registration {
        let answer = key
            .do_registration(origin, serde_json::from_value(options.clone()).unwrap())
            .unwrap();
        serde_json::to_value(&answer).unwrap()
    } else {
        let answer = key
            .do_authentication(origin, serde_json::from_value(options.clone()).unwrap())
            .unwrap();
        serde_json::to_value(&answer).unwrap()
    }
}

/// Through the service: registers a new software key with `session` (signed in with a code
/// within the last 10 minutes), then signs in again with `password` and the key. Returns the
/// new, phishing-resistant session and the key.
pub async fn enrol_key_and_sign_in(
    ctx: &Ctx,
    session: &mdor_service::StartedSession,
    username: &str,
    password: &str,
) -> (mdor_service::StartedSession, SoftKey) {
    use mdor_service::webauthn;
    let caller = mdor_service::authenticate_session(ctx, &session.secret)
        .await
        .unwrap();
    let mut key = soft_key();
    let started = webauthn::begin_registration(ctx, &caller).await.unwrap();
    let answer = key_answer(&mut key, &started.options, true);
    webauthn::finish_registration(ctx, &caller, &started.ceremony, &answer, "test key")
        .await
        .unwrap();
    let started = webauthn::begin_sign_in(ctx, username, password)
        .await
        .unwrap();
    let answer = key_answer(&mut key, &started.options, false);
    let signed_in = webauthn::finish_sign_in(ctx, &started.ceremony, &answer)
        .await
        .unwrap();
    (signed_in, key)
}

/// The password every test person chooses when first signing in.
pub const PERSON_PASSWORD: &str = "correct horse battery staple 42";

/// A new account `username` of `role` (in `ods`; none for a patient, who may be linked to
/// `patient`), created by the operator and signed in as its holder would: the initial password
/// and a backup code, a new password (`PERSON_PASSWORD`) and, for administrators, regulators
/// and researchers, a passkey enrolled and signed in with.
pub async fn new_person(
    ctx: &Ctx,
    username: &str,
    role: mdor_service::AccountRole,
    ods: Option<&str>,
    patient: Option<mdor_service::PatientId>,
) -> mdor_service::StartedSession {
    let created = mdor_service::create_account(
        ctx,
        &mdor_service::accounts::AccountRequest {
            username: mdor_service::accounts::Username::parse(username).unwrap(),
            role,
            organisation: ods.map(|o| OdsCode::parse(o).unwrap()),
            patient,
        },
    )
    .await
    .unwrap();
    let started = mdor_service::sign_in(
        ctx,
        &mdor_service::SignInRequest {
            username,
            password: &created.initial_password,
            second_factor: &created.backup_codes[0],
            new_password: Some(PERSON_PASSWORD),
        },
    )
    .await
    .unwrap();
    if mdor_service::policy::needs_phishing_resistant_factor(role) {
        enrol_key_and_sign_in(ctx, &started, username, PERSON_PASSWORD)
            .await
            .0
    } else {
        started
    }
}

/// The key that seals TOTP secrets in tests with accounts.
pub fn account_key() -> mdor_service::AccountKey {
    mdor_service::AccountKey::parse(&"42".repeat(32)).unwrap()
}

impl TestApp {
    /// The same store served with the accounts key, these web settings and this clock.
    pub fn with_accounts(
        self,
        settings: mdor_web::WebSettings,
        clock: fn() -> chrono::DateTime<chrono::Utc>,
    ) -> TestApp {
        let ctx = Ctx::with_clock(Arc::clone(&self.store), clock)
            .with_account_key(account_key())
            .with_webauthn(relying());
        TestApp {
            router: mdor_web::router(mdor_web::AppState::new(ctx.clone(), settings)),
            ctx,
            ..self
        }
    }
}

/// A response: status, headers and parsed JSON body (Null when empty or not JSON).
pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

impl TestApp {
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, uri: &str, token: Option<&str>) -> Reply {
        let mut request = Request::get(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    /// A GET with extra headers, such as `Access-Purpose` and `Break-Glass-Reason`.
    pub async fn get_with(&self, uri: &str, token: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = Request::get(uri).header("authorization", format!("Bearer {token}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    /// A GET stating its purpose, as an identifiable read beyond the caller's own
    /// organisation must (a regulator's).
    pub async fn get_for(&self, uri: &str, token: &str, purpose: &str) -> Reply {
        self.get_with(uri, token, &[("access-purpose", purpose)])
            .await
    }

    pub async fn post(
        &self,
        uri: &str,
        token: &str,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Reply {
        self.post_raw(uri, token, body.to_string().into_bytes(), idempotency_key)
            .await
    }

    pub async fn post_raw(
        &self,
        uri: &str,
        token: &str,
        body: Vec<u8>,
        idempotency_key: Option<&str>,
    ) -> Reply {
        let mut request = Request::post(uri)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json");
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        self.send(request.body(Body::from(body)).unwrap()).await
    }
}

/// The `k`th valid NHS number in the 999 test range.
pub fn nhs(k: u32) -> String {
    (k..)
        .find_map(|i| NhsNumber::from_first_nine(999_000_000 + i))
        .unwrap()
        .to_string()
}

/// A valid procedure body for provider RA1, with one scanned and one typed device.
pub fn procedure_body(nhs_number: &str, local_record_id: &str) -> Value {
    json!({
        "patient": {
            "nhs_number": nhs_number, "family_name": "Testpatient", "given_name": "Ann",
            "date_of_birth": "1950-03-02", "sex": "female", "postcode": "LS1 4AP"
        },
        "procedure": {
            "provider": "RA1", "consultant": "1234567", "procedure_date": "2024-06-01",
            "opcs4_code": "W37.1", "opcs4_version": "4.10", "snomed_ct_id": null,
            "laterality": "left", "registry": "njr", "local_record_id": local_record_id
        },
        "devices": [
            { "scan": "]d2010501234567890017270101" },
            { "udi_di": "05012345678917", "lot": "LOT7", "serial": "SER1", "expiry": "2024-05-01", "manufactured": null }
        ]
    })
}
