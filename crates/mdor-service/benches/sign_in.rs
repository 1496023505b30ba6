//! The server's time for a password + TOTP sign-in (issue 4: ≤ 150 ms): `sessions::sign_in`
//! end to end — account lookup, argon2id verification at the production parameters
//! (m = 19 MiB, t = 2, p = 1), the TOTP check and the single-use consumption of its step, the
//! new session and the audit entry, committed — on a SQLite file with `synchronous=FULL`, and
//! on PostgreSQL when `MDOR_BENCH_POSTGRES_URL` names an empty database.
//!
//! Run with `cargo bench -p mdor-service --bench sign_in`. Each sign-in uses the next TOTP step
//! (the clock moves 30 s per iteration), as codes are accepted once only. HTTP parsing, the
//! part of server time not measured here, is microseconds.

// Benchmarks may unwrap: the set-up is valid by construction.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use divan::Bencher;

use mdor_domain::OdsCode;
use mdor_service::accounts::{AccountKey, AccountRequest, Username, code_at_step, time_step};
use mdor_service::{
    AccountRole, Ctx, NewOrganisation, OrganisationKind, SignInRequest, create_account, sign_in,
};
use mdor_store::{ConnectOptions, KeyEncryptionKey};

fn main() {
    divan::main();
}

/// The middle of a TOTP step; each iteration moves on by one step.
static NOW: AtomicI64 = AtomicI64::new(1_800_000_015);

fn clock() -> DateTime<Utc> {
    DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap()
}

const PASSWORD: &str = "correct horse battery staple 42";

struct SignedUp {
    ctx: Ctx,
    username: String,
    secret: Vec<u8>,
}

async fn sign_up(url: &str) -> SignedUp {
    let options = ConnectOptions {
        kek: Some(KeyEncryptionKey::random()),
        ..ConnectOptions::default()
    };
    let store = mdor_store::connect(url, &options).await.unwrap();
    store.migrate().await.unwrap();
    let ctx = Ctx::with_clock(store, clock)
        .with_account_key(AccountKey::parse(&"42".repeat(32)).unwrap());
    mdor_service::ensure_organisations(
        &ctx,
        &[NewOrganisation {
            ods_code: OdsCode::parse("RXR").unwrap(),
            name: "Bench Hospital".into(),
            kind: OrganisationKind::Provider,
            region: None,
        }],
    )
    .await
    .unwrap();
    let username = format!("bench.user.{}", std::process::id());
    let account = create_account(
        &ctx,
        &AccountRequest {
            username: Username::parse(&username).unwrap(),
            role: AccountRole::ProviderSubmitter,
            organisation: Some(OdsCode::parse("RXR").unwrap()),
            patient: None,
        },
    )
    .await
    .unwrap();
    let secret = totp_rs::Secret::Encoded(account.totp_secret.clone())
        .to_bytes()
        .unwrap();
    let signed_up = SignedUp {
        ctx,
        username,
        secret,
    };
    // The first sign-in replaces the generated password, as every holder must.
    sign_in_once(&signed_up, &account.initial_password, Some(PASSWORD)).await;
    signed_up
}

async fn sign_in_once(s: &SignedUp, password: &str, new_password: Option<&str>) {
    let now = NOW.fetch_add(30, Ordering::SeqCst) + 30;
    let code = code_at_step(&s.secret, 6, time_step(now as u64)).unwrap();
    sign_in(
        &s.ctx,
        &SignInRequest {
            username: &s.username,
            password,
            second_factor: &code,
            new_password,
        },
    )
    .await
    .unwrap();
}

fn bench_on(bencher: Bencher, url: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let signed_up = runtime.block_on(sign_up(url));
    bencher.bench_local(|| runtime.block_on(sign_in_once(&signed_up, PASSWORD, None)));
}

#[divan::bench(sample_count = 40, sample_size = 1)]
fn password_and_totp_sqlite_file(bencher: Bencher) {
    let dir = std::env::temp_dir().join(format!("mdor-bench-sign-in-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    bench_on(
        bencher,
        &format!("sqlite://{}", dir.join("bench.db").display()),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[divan::bench(sample_count = 40, sample_size = 1)]
fn password_and_totp_postgres(bencher: Bencher) {
    match std::env::var("MDOR_BENCH_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => bench_on(bencher, &url),
        _ => eprintln!("MDOR_BENCH_POSTGRES_URL is not set: PostgreSQL sign-in not measured"),
    }
}
