//! Crash safety of bulk submission: the real `mdor serve` is killed with SIGKILL at random
//! moments while it processes an upload, and restarted each time. However often it dies,
//! every record ends up stored exactly once (or reported as not processed yet, never
//! half-written), every job resumes on its own at start-up and completes, a file sent again
//! creates no duplicates, and SQLite's `PRAGMA integrity_check` passes.
//!
//! Scale: `MDOR_CRASH_RECORDS` records (100,000 by default, the size) and
//! `MDOR_CRASH_KILLS` kills (20 by default) per backend; PostgreSQL too when
//! `MDOR_TEST_POSTGRES_URL` is set. Set `MDOR_CRASH_RECORDS=5000` for a quick local run.
//! `MDOR_CRASH_BIN` runs another build of `mdor`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use mdor_domain::NhsNumber;

use crate::TempDir;

/// Every `INVALID_EVERY`th record has an impossible sex code and goes to quarantine.
const INVALID_EVERY: u64 = 50;
const CHUNK_RECORDS: &str = "250";

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn binary() -> String {
    std::env::var("MDOR_CRASH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_mdor").to_string())
}

/// A small deterministic generator: the kill moments differ between runs only by seed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound.max(1)
    }
}

fn mdor(dir: &Path, database: &str, args: &[&str]) -> String {
    let output = Command::new(binary())
        .args(["--database-url", database])
        .args(args)
        .current_dir(dir)
        .env_remove("MDOR_DATABASE__URL")
        .env("MDOR_KEYS__KEK", super::TEST_KEK)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "mdor {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Record `i` for patient `nhs` (each record its own patient).
fn record(i: u64, nhs: &str) -> Value {
    let sex = if i.is_multiple_of(INVALID_EVERY) {
        "z"
    } else {
        "female"
    };
    json!({
        "patient": {"nhs_number": nhs, "date_of_birth": "1950-03-02", "sex": sex, "family_name": "Crashtest", "given_name": "Ann"},
        "procedure": {"local_record_id": format!("K{i:07}"), "provider": "RA1", "consultant": "1234567",
            "date": "2024-06-01", "opcs4_code": "W37.1", "action": "implant", "laterality": "left", "urgency": "elective"},
        "devices": [
            {"udi": "]d2010501234567890017270101", "role": "implanted"},
            {"udi_di": "05012345678917", "lot": format!("LOT{}", i % 7), "role": "implanted"}
        ]
    })
}

struct Server {
    child: Child,
    port: u16,
}

fn start(dir: &Path, database: &str) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(binary())
        .args(["--database-url", database, "serve", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .current_dir(dir)
        .env_remove("MDOR_DATABASE__URL")
        .env("MDOR_KEYS__KEK", super::TEST_KEK)
        .env("MDOR_SUBMISSIONS__DATA_DIR", dir.join("spool"))
        .env("MDOR_SUBMISSIONS__CHUNK_RECORDS", CHUNK_RECORDS)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server { child, port };
    let started = Instant::now();
    while http(port, "GET", "/health", "", b"").is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

fn kill(mut server: Server) {
    // `Child::kill` is SIGKILL on Unix: no shutdown code runs.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

/// A minimal HTTP/1.1 exchange; returns the status and the body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn job(port: u16, token: &str, id: i64) -> Option<Value> {
    let (status, body) = http(
        port,
        "GET",
        &format!("/api/v1/submissions/{id}"),
        token,
        b"",
    )
    .ok()?;
    (status == 200)
        .then(|| serde_json::from_str(&body).ok())
        .flatten()
}

/// Runs the kill-and-restart loop on one database and checks the result.
fn crash_and_check(backend: &str, database: &str, dir: &Path, check: impl Fn(u64, u64)) {
    let n = setting("MDOR_CRASH_RECORDS", 100_000);
    let kills = setting("MDOR_CRASH_KILLS", 20);
    // Each start lives a random 0 to `window` ms, so that the kills spread over the whole
    // ingest (a debug build stores about 1,500 records a second) instead of its first
    // seconds: 6 s per start for 100,000 records, 1.5 s at least.
    let window = setting("MDOR_CRASH_WINDOW_MS", (n * 3 / 50).max(1_500));
    let mut rng = Lcg(setting("MDOR_CRASH_SEED", 20_260_522));
    mdor(dir, database, &["migrate"]);
    mdor(
        dir,
        database,
        &[
            "org",
            "add",
            "--ods",
            "RA1",
            "--name",
            "Crash test",
            "--kind",
            "provider",
        ],
    );
    let created = mdor(
        dir,
        database,
        &[
            "token",
            "create",
            "--org",
            "RA1",
            "--role",
            "provider_submitter",
        ],
    );
    let token = created
        .lines()
        .find(|l| l.starts_with("mdor_"))
        .unwrap()
        .to_string();
    std::fs::write(
        dir.join("register.csv"),
        "udi_di,manufacturer,brand,model,device_type,risk_class,registry\n\
         05012345678900,Acme Orthopaedics,Acme,Cup 52mm,hip_cup,III,njr\n\
         05012345678917,Acme Orthopaedics,Acme,Stem 12,hip_stem,III,njr\n",
    )
    .unwrap();
    mdor(dir, database, &["register", "load", "register.csv"]);
    let mut file = Vec::new();
    let mut numbers = (999_100_000..).filter_map(NhsNumber::from_first_nine);
    for i in 1..=n {
        let nhs = numbers.next().unwrap();
        file.extend_from_slice(record(i, nhs.as_str()).to_string().as_bytes());
        file.push(b'\n');
    }
    let path = "/api/v1/submissions?registry=mdor_core&version=1.2&format=ndjson";

    let started = Instant::now();
    let mut jobs: Vec<i64> = Vec::new();
    let mut killed_mid_job = 0;
    // Records done when each mid-job kill landed, to show the kills spread over the ingest.
    let mut kill_points: Vec<u64> = Vec::new();
    for _ in 0..kills {
        let server = start(dir, database);
        let running = jobs.last().and_then(|&id| job(server.port, &token, id));
        if running.is_none_or(|j| j["state"] == "completed") {
            // The previous file is done (or none was sent): send it again; a second pass
            // must find every record unchanged.
            let (status, body) = http(server.port, "POST", path, &token, &file).unwrap();
            assert_eq!(status, 202, "{body}");
            let job: Value = serde_json::from_str(&body).unwrap();
            jobs.push(job["id"].as_i64().unwrap());
        }
        std::thread::sleep(Duration::from_millis(rng.below(window)));
        let state = job(server.port, &token, *jobs.last().unwrap());
        if let Some(j) = state.filter(|j| j["state"] == "processing" || j["state"] == "queued") {
            killed_mid_job += 1;
            kill_points.push(j["records_done"].as_u64().unwrap_or(0));
        }
        kill(server);
    }
    // The last start: every job resumes and completes.
    let server = start(dir, database);
    let deadline = Instant::now() + Duration::from_secs(600);
    for &id in &jobs {
        loop {
            let state = job(server.port, &token, id).unwrap();
            if state["state"] == "completed" {
                assert_eq!(state["records_done"], n, "{backend}: {state}");
                assert_eq!(state["total_records"], n, "{backend}: {state}");
                let rejected = n / INVALID_EVERY;
                assert_eq!(state["rejected"], rejected, "{backend}: {state}");
                assert_eq!(
                    state["accepted"].as_u64().unwrap()
                        + state["accepted_with_warnings"].as_u64().unwrap(),
                    n - rejected,
                    "{backend}: {state}"
                );
                break;
            }
            assert_ne!(state["state"], "failed", "{backend}: {state}");
            assert!(
                Instant::now() < deadline,
                "{backend}: job {id} never completed"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    kill(server);
    eprintln!(
        "{backend}: {n} records, {kills} kills ({killed_mid_job} while a job was unfinished, \
         at records done {kill_points:?}), {} jobs, {:.1} s",
        jobs.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        killed_mid_job > 0,
        "{backend}: no kill landed during processing"
    );
    check(n, jobs.len() as u64);
}

/// Counts that must hold after any number of kills; `one` runs a query returning a count.
fn check_database(one: &dyn Fn(&str) -> u64, n: u64, jobs: u64) {
    let valid = n - n / INVALID_EVERY;
    assert_eq!(one("SELECT COUNT(*) FROM procedure"), valid);
    assert_eq!(
        one("SELECT COUNT(DISTINCT local_record_id) FROM procedure"),
        valid
    );
    // Never half-written: every procedure has both its devices and its raw record.
    assert_eq!(one("SELECT COUNT(*) FROM implant"), 2 * valid);
    assert_eq!(
        one(
            "SELECT COUNT(*) FROM procedure p WHERE (SELECT COUNT(*) FROM implant i WHERE i.procedure_id = p.id) <> 2"
        ),
        0
    );
    assert_eq!(one("SELECT COUNT(*) FROM procedure_source"), valid);
    assert_eq!(one("SELECT COUNT(*) FROM patient"), valid);
    // One report line per record and job, none twice.
    assert_eq!(one("SELECT COUNT(*) FROM submission_record"), n * jobs);
    assert_eq!(
        one("SELECT COUNT(*) FROM (SELECT DISTINCT job_id, line FROM submission_record) d"),
        n * jobs
    );
    assert_eq!(
        one("SELECT COUNT(*) FROM submission_record WHERE effect = 'created'"),
        valid
    );
    assert_eq!(
        one("SELECT COUNT(*) FROM submission_record WHERE effect = 'corrected'"),
        0
    );
}

#[test]
fn a_server_killed_during_bulk_submission_resumes_and_stores_every_record_once() {
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let dir = TempDir::new("crash-sqlite");
    let file = dir.0.join("mdor.db");
    let database = format!("sqlite://{}", file.display());
    crash_and_check("sqlite", &database, &dir.0, |n, jobs| {
        let pool = runtime
            .block_on(sqlx::SqlitePool::connect(&database))
            .unwrap();
        let integrity: String = runtime
            .block_on(sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&pool))
            .unwrap();
        assert_eq!(integrity, "ok");
        let broken_references = runtime
            .block_on(sqlx::query("PRAGMA foreign_key_check").fetch_all(&pool))
            .unwrap();
        assert!(broken_references.is_empty());
        let one = |sql: &str| -> u64 {
            let count: i64 = runtime
                .block_on(sqlx::query_scalar(sql).fetch_one(&pool))
                .unwrap();
            count as u64
        };
        check_database(&one, n, jobs);
    });

    let Ok(admin_url) = std::env::var("MDOR_TEST_POSTGRES_URL") else {
        return;
    };
    let name = format!(
        "mdor_crash_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    let database = format!("{base}/{name}");
    runtime.block_on(async {
        let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
    });
    let dir = TempDir::new("crash-postgres");
    crash_and_check("postgres", &database, &dir.0, |n, jobs| {
        let pool = runtime.block_on(sqlx::PgPool::connect(&database)).unwrap();
        let one = |sql: &str| -> u64 {
            let count: i64 = runtime
                .block_on(sqlx::query_scalar(sql).fetch_one(&pool))
                .unwrap();
            count as u64
        };
        check_database(&one, n, jobs);
        runtime.block_on(pool.close());
    });
    runtime.block_on(async {
        let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&admin)
            .await;
    });
}
