//! A fresh, migrated store per test on each configured backend, with a fixed clock and
//! principals of every role.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};

use mdor_domain::OdsCode;
use mdor_service::{Credential, Ctx, NewOrganisation, OrganisationKind, Principal, Role, TokenId};
use mdor_store::{ConnectOptions, Store};

/// Which backends to run on: SQLite always, PostgreSQL when configured.
pub fn backends() -> Vec<&'static str> {
    let mut backends = vec!["sqlite"];
    if std::env::var("MDOR_TEST_POSTGRES_URL").is_ok_and(|url| !url.trim().is_empty()) {
        backends.push("postgres");
    } else if std::env::var("MDOR_REQUIRE_POSTGRES").as_deref() == Ok("1") {
        panic!("MDOR_REQUIRE_POSTGRES=1 but MDOR_TEST_POSTGRES_URL is not set");
    }
    backends
}

/// The analysis date of every test: the day after the synthetic data's cutoff.
pub fn test_clock() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, 31, 12, 0, 0).unwrap()
}

/// A store on one backend, dropping its PostgreSQL database when the test ends.
pub struct TestStore {
    pub ctx: Ctx,
    /// The context's store, for tests that set up rows no use case writes.
    pub store: Arc<dyn Store>,
    postgres: Option<(String, String)>,
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        // Dropping needs a connection of its own, on a runtime of its own.
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

pub async fn open(backend: &str) -> TestStore {
    open_with_clock(backend, test_clock).await
}

/// `open`, with the context's clock reading `clock`.
pub async fn open_with_clock(backend: &str, clock: fn() -> DateTime<Utc>) -> TestStore {
    let (store, postgres): (Arc<dyn Store>, _) = if backend == "sqlite" {
        let store = mdor_store::connect(
            "sqlite::memory:",
            &ConnectOptions {
                kek: Some(mdor_store::KeyEncryptionKey::random()),
                ..ConnectOptions::default()
            },
        )
        .await
        .unwrap();
        (store, None)
    } else {
        use sqlx::Connection;
        let admin_url = std::env::var("MDOR_TEST_POSTGRES_URL").unwrap();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("mdor_service_{nanos:x}_{}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        let store = mdor_store::connect(
            &format!("{base}/{name}"),
            &ConnectOptions {
                max_connections: 4,
                create_if_missing: false,
                kek: Some(mdor_store::KeyEncryptionKey::random()),
                ..ConnectOptions::default()
            },
        )
        .await
        .unwrap();
        (store, Some((admin_url, name)))
    };
    store.migrate().await.unwrap();
    TestStore {
        ctx: Ctx::with_clock(store.clone(), clock),
        store,
        postgres,
    }
}

/// Adds organisations and returns a principal with `role` (the token itself is not needed).
pub async fn principal(ctx: &Ctx, role: Role) -> Principal {
    let (ods, kind) = match role {
        Role::ProviderSubmitter => ("RZZ", OrganisationKind::Provider),
        Role::Regulator => ("MHRA", OrganisationKind::Regulator),
        Role::Admin => ("MDOR", OrganisationKind::Registry),
    };
    let ids = mdor_service::ensure_organisations(
        ctx,
        &[NewOrganisation {
            ods_code: OdsCode::parse(ods).unwrap(),
            name: format!("{ods} test"),
            kind,
            region: None,
        }],
    )
    .await
    .unwrap();
    Principal {
        credential: Credential::Token(TokenId(1)),
        organisation: ids[ods],
        organisation_ods: ods.to_string(),
        role: mdor_service::policy::policy_role(role),
        patient: None,
    }
}
