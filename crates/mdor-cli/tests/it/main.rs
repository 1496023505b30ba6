//! The `mdor` binary end to end: synthetic data, migration, loading, organisations, tokens,
//! expected activity and accounts, run as an operator would on a temporary SQLite database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod crash;

/// The key-encryption key every command in these tests runs with (`MDOR_KEYS__KEK`); test
/// data only.
pub const TEST_KEK: &str = "be2fece56ed85bdd1e345ca4c41caeb253e83241918ee594a7e670e3ce991238";

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path =
            std::env::temp_dir().join(format!("mdor-cli-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mdor(dir: &Path, args: &[&str]) -> Output {
    let database = format!("sqlite://{}", dir.join("mdor.db").display());
    Command::new(env!("CARGO_BIN_EXE_mdor"))
        .args(["--database-url", &database])
        .args(args)
        .current_dir(dir)
        .env_remove("MDOR_DATABASE__URL")
        .env("MDOR_KEYS__KEK", TEST_KEK)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn a_synthetic_dataset_loads_completely_and_tokens_can_be_managed() {
    let dir = TempDir::new("load");
    let dataset = dir.0.join("dataset");
    stdout(&mdor(
        &dir.0,
        &[
            "synth",
            "--procedures",
            "3000",
            "--seed",
            "7",
            "--out",
            dataset.to_str().unwrap(),
        ],
    ));
    let refused = mdor(&dir.0, &["serve"]);
    assert!(
        !refused.status.success(),
        "serve refuses an unmigrated database"
    );
    let refused_text = String::from_utf8_lossy(&refused.stderr);
    assert!(refused_text.contains("mdor migrate"), "{refused_text}");
    stdout(&mdor(&dir.0, &["migrate"]));
    let loaded = stdout(&mdor(&dir.0, &["load", dataset.to_str().unwrap()]));
    let summary: serde_json::Value =
        serde_json::from_str(&loaded[..loaded.rfind('}').unwrap() + 1]).unwrap();
    assert_eq!(summary["procedures"], 3000, "{loaded}");
    assert_eq!(summary["duplicates"], 0);
    assert_eq!(summary["patient_mismatches"], 0);
    assert_eq!(summary["unresolved_outcomes"], 0);
    let rejects = std::fs::read_to_string(dataset.join("load-rejects.ndjson")).unwrap();
    assert_eq!(rejects, "", "every synthetic line loads");
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dataset.join("truth.json")).unwrap())
            .unwrap();
    assert_eq!(summary["implants"], truth["devices"]);

    // Surveillance runs over the loaded data; a second run finds the same signals and raises
    // no alert again.
    let first = stdout(&mdor(
        &dir.0,
        &["surveil", "--as-of", "2026-10-31", "--json"],
    ));
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["run_id"], 1);
    assert_eq!(first["n_procedures"], 3000);
    assert_eq!(
        first["n_implants"],
        summary["implants"].as_u64().unwrap()
            - truth["summary"]["n_devices_not_in_register"]
                .as_u64()
                .unwrap()
    );
    assert!(
        first["signal_summary"]["device_models_monitored"]
            .as_u64()
            .unwrap()
            > 300
    );
    let second = stdout(&mdor(&dir.0, &["surveil", "--as-of", "2026-10-31"]));
    assert!(
        second.starts_with("surveillance run 2 as of 2026-10-31: 3000 procedures"),
        "{second}"
    );
    assert!(second.contains("0 new alert(s)"), "{second}");

    // Loading the same dataset again adds nothing and reports every line as a duplicate.
    let again = stdout(&mdor(&dir.0, &["load", dataset.to_str().unwrap()]));
    let again: serde_json::Value =
        serde_json::from_str(&again[..again.rfind('}').unwrap() + 1]).unwrap();
    assert_eq!(again["procedures"], 0);
    assert_eq!(again["duplicates"], 3000);
    assert_eq!(again["duplicate_outcomes"], summary["removals"]);
    assert_eq!(again["unresolved_outcomes"], 0);

    stdout(&mdor(
        &dir.0,
        &[
            "org",
            "add",
            "--ods",
            "MHRA",
            "--name",
            "Regulator",
            "--kind",
            "regulator",
        ],
    ));
    let wrong_role = mdor(
        &dir.0,
        &[
            "token",
            "create",
            "--org",
            "MHRA",
            "--role",
            "provider_submitter",
        ],
    );
    assert!(!wrong_role.status.success());
    let created = stdout(&mdor(
        &dir.0,
        &[
            "token",
            "create",
            "--org",
            "MHRA",
            "--role",
            "regulator",
            "--label",
            "ci",
        ],
    ));
    assert!(
        created
            .lines()
            .any(|l| l.starts_with("mdor_") && l.len() == 69),
        "{created}"
    );
    let listed = stdout(&mdor(&dir.0, &["token", "list"]));
    assert!(listed.contains("MHRA\tregulator\tlive"), "{listed}");
    assert!(!listed.contains("mdor_"), "secrets are never listed");
    stdout(&mdor(&dir.0, &["token", "revoke", "1"]));
    assert!(stdout(&mdor(&dir.0, &["token", "list"])).contains("MHRA\tregulator\trevoked"));
}

#[test]
fn bad_configuration_fails_at_start_up_with_the_setting_named() {
    let dir = TempDir::new("config");
    let output = Command::new(env!("CARGO_BIN_EXE_mdor"))
        .args(["migrate"])
        .current_dir(&dir.0)
        .env("MDOR_SERVER__LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("server.listen"));
    let example = Command::new(env!("CARGO_BIN_EXE_mdor"))
        .args(["config", "example"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&example.stdout).contains("[database]"));
}

/// The secondary indexes present in the SQLite database under `dir`, of those an initial
/// load defers.
fn deferrable_indexes_present(dir: &Path) -> Vec<String> {
    let url = format!("sqlite://{}", dir.join("mdor.db").display());
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'index' \
                 AND name IN ('implant_udi_lot', 'implant_udi_serial', 'procedure_patient') \
                 ORDER BY name",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap()
        })
}

#[test]
fn a_load_killed_midway_is_repaired_and_finished_by_the_next_load() {
    use std::io::{BufRead, BufReader};
    let dir = TempDir::new("killed");
    let dataset = dir.0.join("dataset");
    let dataset = dataset.to_str().unwrap();
    stdout(&mdor(
        &dir.0,
        &[
            "synth",
            "--procedures",
            "40000",
            "--seed",
            "11",
            "--out",
            dataset,
        ],
    ));
    stdout(&mdor(&dir.0, &["migrate"]));
    let all = vec![
        "implant_udi_lot".to_string(),
        "implant_udi_serial".to_string(),
        "procedure_patient".to_string(),
    ];
    assert_eq!(deferrable_indexes_present(&dir.0), all);

    let database = format!("sqlite://{}", dir.0.join("mdor.db").display());
    let mut load = Command::new(env!("CARGO_BIN_EXE_mdor"))
        .args(["--database-url", &database, "load", dataset])
        .env_remove("MDOR_DATABASE__URL")
        .env("MDOR_KEYS__KEK", TEST_KEK)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // SIGKILL as soon as the first batch has committed: the indexes are deferred and the
    // load has not finished.
    let stderr = load.stderr.take().unwrap();
    let first_batch = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("procedures loaded"));
    assert!(first_batch, "the load reported no committed batch");
    load.kill().unwrap();
    assert!(!load.wait().unwrap().success());
    assert!(
        deferrable_indexes_present(&dir.0).is_empty(),
        "the killed load had deferred its indexes"
    );

    let loaded = stdout(&mdor(&dir.0, &["load", dataset]));
    let summary: serde_json::Value =
        serde_json::from_str(&loaded[..loaded.rfind('}').unwrap() + 1]).unwrap();
    let procedures = summary["procedures"].as_u64().unwrap();
    let duplicates = summary["duplicates"].as_u64().unwrap();
    assert!(duplicates >= 10_000, "the first batch was kept: {loaded}");
    assert_eq!(procedures + duplicates, 40_000, "{loaded}");
    assert_eq!(deferrable_indexes_present(&dir.0), all);
}

fn mdor_with_key(dir: &Path, key: &Path, args: &[&str]) -> Output {
    let database = format!("sqlite://{}", dir.join("mdor.db").display());
    Command::new(env!("CARGO_BIN_EXE_mdor"))
        .args(["--database-url", &database])
        .args(args)
        .current_dir(dir)
        .env_remove("MDOR_DATABASE__URL")
        .env("MDOR_KEYS__KEK", TEST_KEK)
        .env("MDOR_AUDIT__SIGNING_KEY", key)
        .output()
        .unwrap()
}

/// Runs `statements` on the SQLite database under `dir` (audit entries are written through
/// the store, so they carry their positions and leaf hashes).
fn with_store(dir: &Path, entries: u64, statements: &[&str]) {
    let url = format!("sqlite://{}", dir.join("mdor.db").display());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use sqlx::Connection;
            let store = mdor_store::connect(
                &url,
                &mdor_store::ConnectOptions {
                    kek: Some(mdor_store::KeyEncryptionKey::parse(TEST_KEK).unwrap()),
                    ..mdor_store::ConnectOptions::default()
                },
            )
            .await
            .unwrap();
            let regulator = store
                .upsert_organisation(&mdor_store::NewOrganisation {
                    ods_code: mdor_domain::OdsCode::parse("MHRA").unwrap(),
                    name: "Regulator".into(),
                    kind: mdor_store::OrganisationKind::Regulator,
                    region: None,
                })
                .await
                .unwrap();
            for i in 0..entries {
                store
                    .append_audit(&mdor_store::NewAuditEvent {
                        patients: Vec::new(),
                        request: None,
                        at: chrono::Utc::now(),
                        organisation: regulator,
                        role: "regulator",
                        token: None,
                        account: None,
                        action: "recall.query",
                        resource: format!("recall?udi_di=05012345678900&lot=L{i}"),
                        patient: None,
                        record_count: i,
                        purpose: "recall",
                        outcome: "ok",
                        break_glass: None,
                    })
                    .await
                    .unwrap();
            }
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            for statement in statements {
                sqlx::raw_sql(statement).execute(&mut conn).await.unwrap();
            }
        });
}

#[test]
fn audit_checkpoints_are_signed_exported_verified_and_an_edited_entry_fails_verification() {
    let dir = TempDir::new("audit");
    let key = dir.0.join("audit.key");
    stdout(&mdor(&dir.0, &["migrate"]));
    let created = stdout(&mdor(
        &dir.0,
        &[
            "audit",
            "keygen",
            "--name",
            "registry.example/audit",
            "--out",
            key.to_str().unwrap(),
        ],
    ));
    assert!(created.contains("registry.example/audit+"), "{created}");
    let again = mdor(
        &dir.0,
        &[
            "audit",
            "keygen",
            "--name",
            "x",
            "--out",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        !again.status.success(),
        "an existing key is never overwritten"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the signing key is readable by its owner only"
        );
    }
    with_store(&dir.0, 5, &[]);
    let checkpoint = dir.0.join("checkpoint.txt");
    stdout(&mdor_with_key(
        &dir.0,
        &key,
        &["audit", "checkpoint", "--out", checkpoint.to_str().unwrap()],
    ));
    let note = std::fs::read_to_string(&checkpoint).unwrap();
    assert!(note.starts_with("registry.example/audit\n5\n"), "{note}");
    with_store(&dir.0, 2, &[]);
    let public = dir.0.join("audit.key.pub");
    let verified = stdout(&mdor(
        &dir.0,
        &[
            "audit",
            "verify",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "--public-key",
            public.to_str().unwrap(),
        ],
    ));
    assert!(verified.contains("log now: 7 entries"), "{verified}");
    assert!(verified.contains("extends the checkpoint unchanged"));

    with_store(
        &dir.0,
        0,
        &[
            "DROP TRIGGER audit_event_no_update",
            "UPDATE audit_event SET outcome = 'denied' WHERE seq = 2",
        ],
    );
    let refused = mdor_with_key(
        &dir.0,
        &key,
        &[
            "audit",
            "verify",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
        ],
    );
    assert!(!refused.status.success());
    let report = String::from_utf8_lossy(&refused.stdout);
    assert!(
        report.contains("entry 2 does not match its stored leaf hash"),
        "{report}"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("does not match the checkpoint"));
    let resign = mdor_with_key(&dir.0, &key, &["audit", "checkpoint"]);
    assert!(!resign.status.success(), "a tampered log is not signed");
}

/// The privileges `mdor audit grants` prints apply cleanly to a migrated PostgreSQL schema
/// (granted to PUBLIC here, since the test role may not create roles).
#[test]
fn the_printed_postgres_grants_apply_to_the_migrated_schema() {
    let Ok(admin_url) = std::env::var("MDOR_TEST_POSTGRES_URL") else {
        eprintln!("postgres: skipped, MDOR_TEST_POSTGRES_URL is not set");
        return;
    };
    let grants = stdout(&mdor(
        Path::new("."),
        &["audit", "grants", "--role", "public"],
    ));
    assert!(grants.contains("REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES ON audit_event"));
    assert!(
        !mdor(Path::new("."), &["audit", "grants", "--role", "x; DROP"])
            .status
            .success()
    );
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use sqlx::Connection;
            let name = format!("mdor_cli_grants_{}", std::process::id());
            let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
            sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await
                .unwrap();
            let url = format!("{}/{name}", &admin_url[..admin_url.rfind('/').unwrap()]);
            let outcome = async {
                let store = mdor_store::connect(
                    &url,
                    &mdor_store::ConnectOptions {
                        kek: Some(mdor_store::KeyEncryptionKey::parse(TEST_KEK).unwrap()),
                        ..mdor_store::ConnectOptions::default()
                    },
                )
                .await
                .unwrap();
                store.migrate().await.unwrap();
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::raw_sql(&grants).execute(&mut conn).await
            }
            .await;
            // An autovacuum worker in the new database (the superuser's) can make the forced
            // drop fail for a moment; retry, and leave the database rather than fail the case.
            let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let mut dropped = false;
            for _ in 0..40 {
                if sqlx::raw_sql(&drop).execute(&mut admin).await.is_ok() {
                    dropped = true;
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            if !dropped {
                eprintln!("test database {name} left behind");
            }
            outcome.unwrap();
        });
}

/// The expected activity stored under `dir`, as `ods,month,expected` lines in order.
fn stored_expected_activity(dir: &Path) -> Vec<String> {
    let url = format!("sqlite://{}", dir.join("mdor.db").display());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let rows: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT o.ods_code, e.month, e.expected_procedures FROM expected_activity e \
                 JOIN organisation o ON o.id = e.organisation_id ORDER BY o.ods_code, e.month",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            rows.into_iter()
                .map(|(ods, month, n)| format!("{ods},{month},{n}"))
                .collect()
        })
}

#[test]
fn activity_load_names_each_bad_line_and_field_loads_nothing_and_a_reloaded_month_replaces_its_figure()
 {
    let dir = TempDir::new("activity");
    stdout(&mdor(&dir.0, &["migrate"]));
    for ods in ["RA1", "RB2"] {
        stdout(&mdor(
            &dir.0,
            &[
                "org", "add", "--ods", ods, "--name", "Trust", "--kind", "provider",
            ],
        ));
    }
    let file = dir.0.join("activity.csv");
    std::fs::write(
        &file,
        "ods_code,month,expected_procedures\n\
         RA1,2026-01,40\n\
         RA1,2026-1,40\n\
         RB2,2026-01,-3\n\
         RZZ,2026-01,5\n",
    )
    .unwrap();
    let refused = mdor(&dir.0, &["activity", "load", file.to_str().unwrap()]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    for expected in [
        "3 problem(s)",
        "line 3: month: month '2026-1' must be written YYYY-MM",
        "line 4: expected_procedures: expected procedures -3 is negative",
        "line 5: ods_code: no provider with ods code RZZ is registered",
    ] {
        assert!(stderr.contains(expected), "{expected} in {stderr}");
    }
    // Line 2 was good, but a file with a bad line loads nothing.
    assert!(stored_expected_activity(&dir.0).is_empty());

    std::fs::write(
        &file,
        "ods_code,month,expected_procedures\nRA1,2026-01,40\nRA1,2026-02,38\nRB2,2026-01,12\n",
    )
    .unwrap();
    let loaded = stdout(&mdor(&dir.0, &["activity", "load", file.to_str().unwrap()]));
    assert_eq!(loaded, "3 expected activity figures loaded\n");
    std::fs::write(
        &file,
        "ods_code,month,expected_procedures\nRA1,2026-02,41\n",
    )
    .unwrap();
    stdout(&mdor(&dir.0, &["activity", "load", file.to_str().unwrap()]));
    assert_eq!(
        stored_expected_activity(&dir.0),
        ["RA1,2026-01,40", "RA1,2026-02,41", "RB2,2026-01,12"]
    );
}

fn mdor_with_accounts_key(dir: &Path, key: &Path, args: &[&str]) -> Output {
    let database = format!("sqlite://{}", dir.join("mdor.db").display());
    Command::new(env!("CARGO_BIN_EXE_mdor"))
        .args(["--database-url", &database])
        .args(args)
        .current_dir(dir)
        .env_remove("MDOR_DATABASE__URL")
        .env("MDOR_KEYS__KEK", TEST_KEK)
        .env("MDOR_ACCOUNTS__KEY_FILE", key)
        .output()
        .unwrap()
}

/// The value after `label` on the line that starts with it.
fn printed<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.strip_prefix(label))
        .unwrap_or_else(|| panic!("no '{label}' in {text}"))
        .trim()
}

#[test]
fn an_administrator_creates_an_account_whose_printed_credentials_sign_in() {
    use std::os::unix::fs::PermissionsExt as _;

    let dir = TempDir::new("accounts");
    let key = dir.0.join("accounts.key");
    let keygen = ["account", "keygen", "--out", key.to_str().unwrap()];
    stdout(&mdor(&dir.0, &keygen));
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(std::fs::read_to_string(&key).unwrap().trim().len(), 64);
    assert!(
        !mdor(&dir.0, &keygen).status.success(),
        "keygen must not overwrite a key"
    );

    stdout(&mdor(&dir.0, &["migrate"]));
    stdout(&mdor(
        &dir.0,
        &[
            "org",
            "add",
            "--ods",
            "RXR",
            "--name",
            "RXR Trust",
            "--kind",
            "provider",
        ],
    ));
    let create = [
        "account",
        "create",
        "--org",
        "RXR",
        "--role",
        "consultant",
        "--username",
        "J.Smith",
    ];
    let keyless = mdor(&dir.0, &create);
    assert!(!keyless.status.success());
    assert!(String::from_utf8_lossy(&keyless.stderr).contains("accounts.key_file"));

    let text = stdout(&mdor_with_accounts_key(&dir.0, &key, &create));
    assert!(text.contains("j.smith as consultant"), "{text}");
    let password = printed(&text, "initial password:").to_string();
    assert!(printed(&text, "authenticator uri:").starts_with("otpauth://totp/mdor:j.smith?"));
    let codes: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("  "))
        .map(str::trim)
        .collect();
    assert_eq!(codes.len(), 10, "{text}");

    let again = mdor_with_accounts_key(&dir.0, &key, &create);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("username"));

    // Only a data manager can be made its organisation's approver, and the operator can
    // withdraw it again.
    let manager = stdout(&mdor_with_accounts_key(
        &dir.0,
        &key,
        &[
            "account",
            "create",
            "--org",
            "RXR",
            "--role",
            "provider_data_manager",
            "--username",
            "d.manager",
        ],
    ));
    assert!(
        manager.contains("d.manager as provider_data_manager"),
        "{manager}"
    );
    let granted = stdout(&mdor(
        &dir.0,
        &["account", "approver", "--username", "d.manager"],
    ));
    assert!(
        granted.contains("(d.manager) is now its organisation's approver"),
        "{granted}"
    );
    let withdrawn = stdout(&mdor(
        &dir.0,
        &["account", "approver", "--username", "d.manager", "--revoke"],
    ));
    assert!(
        withdrawn.contains("(d.manager) is no longer its organisation's approver"),
        "{withdrawn}"
    );
    let consultant = mdor(&dir.0, &["account", "approver", "--username", "J.Smith"]);
    assert!(!consultant.status.success());
    assert!(
        String::from_utf8_lossy(&consultant.stderr).contains("only a provider_data_manager"),
        "{}",
        String::from_utf8_lossy(&consultant.stderr)
    );
    let bad_role = mdor_with_accounts_key(
        &dir.0,
        &key,
        &[
            "account",
            "create",
            "--org",
            "RXR",
            "--role",
            "admin",
            "--username",
            "x.y.z",
        ],
    );
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("system_admin"));
    let expired = stdout(&mdor(&dir.0, &["account", "expire-idle"]));
    assert!(expired.starts_with("0 account(s)"), "{expired}");

    // Linking the holder's subject at the identity provider needs [oidc]; a subject and an
    // account link once.
    let link = [
        "account",
        "link-oidc",
        "--username",
        "J.Smith",
        "--subject",
        "uuid-js-1",
    ];
    let unconfigured = mdor(&dir.0, &link);
    assert!(!unconfigured.status.success());
    assert!(String::from_utf8_lossy(&unconfigured.stderr).contains("[oidc] is not configured"));
    std::fs::write(
        dir.0.join("mdor.toml"),
        "[oidc]\nissuer = \"https://idp.example\"\nclient_id = \"mdor\"\n\
         client_secret = \"test-only\"\n\
         redirect_url = \"https://mdor.example/api/v1/session/oidc/callback\"\n\
         accepted_acr_values = [\"AAL3_ANY\"]\n",
    )
    .unwrap();
    let linked = stdout(&mdor(&dir.0, &link));
    assert!(
        linked.contains("(j.smith) may now sign in through https://idp.example"),
        "{linked}"
    );
    let twice = mdor(&dir.0, &link);
    assert!(!twice.status.success());
    assert!(String::from_utf8_lossy(&twice.stderr).contains("linked to an account already"));
    let nobody = [
        "account",
        "link-oidc",
        "--username",
        "nobody",
        "--subject",
        "s",
    ];
    assert!(!mdor(&dir.0, &nobody).status.success());

    // The printed password and a printed backup code sign in through the service.
    let url = format!("sqlite://{}", dir.0.join("mdor.db").display());
    let key_text = std::fs::read_to_string(&key).unwrap();
    let signed_in = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = mdor_store::connect(
                &url,
                &mdor_store::ConnectOptions {
                    kek: Some(mdor_store::KeyEncryptionKey::parse(TEST_KEK).unwrap()),
                    ..mdor_store::ConnectOptions::default()
                },
            )
            .await
            .unwrap();
            let ctx = mdor_service::Ctx::new(store)
                .with_account_key(mdor_service::AccountKey::parse(&key_text).unwrap());
            mdor_service::login(&ctx, "j.smith", &password, codes[0]).await
        })
        .unwrap();
    assert_eq!(signed_in.role, mdor_service::AccountRole::Consultant);

    // Disabling the account ends its sessions and refuses the next sign-in.
    let disabled = stdout(&mdor(
        &dir.0,
        &["account", "disable", "--username", "J.Smith"],
    ));
    assert!(disabled.contains("(j.smith) disabled"), "{disabled}");
    assert!(
        !mdor(&dir.0, &["account", "disable", "--username", "nobody"])
            .status
            .success()
    );
    let refused = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = mdor_store::connect(
                &url,
                &mdor_store::ConnectOptions {
                    kek: Some(mdor_store::KeyEncryptionKey::parse(TEST_KEK).unwrap()),
                    ..mdor_store::ConnectOptions::default()
                },
            )
            .await
            .unwrap();
            let ctx = mdor_service::Ctx::new(store)
                .with_account_key(mdor_service::AccountKey::parse(&key_text).unwrap());
            mdor_service::login(&ctx, "j.smith", &password, codes[1]).await
        });
    assert!(matches!(
        refused,
        Err(mdor_service::ServiceError::Unauthenticated)
    ));

    // Re-enabled, the same credentials sign in; reset, the old ones fail and the printed new
    // ones sign in.
    let enabled = stdout(&mdor(
        &dir.0,
        &["account", "enable", "--username", "j.smith"],
    ));
    assert!(enabled.contains("(j.smith) enabled"), "{enabled}");
    let reset_args = ["account", "reset", "--username", "j.smith"];
    assert!(
        !mdor(&dir.0, &reset_args).status.success(),
        "a reset needs the accounts key"
    );
    let reset = stdout(&mdor_with_accounts_key(&dir.0, &key, &reset_args));
    assert!(reset.contains("(j.smith): new credentials"), "{reset}");
    let new_password = printed(&reset, "initial password:").to_string();
    let new_code = reset
        .lines()
        .skip_while(|l| !l.starts_with("backup codes"))
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    let (old_refused, new_accepted, entries) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = mdor_store::connect(
                &url,
                &mdor_store::ConnectOptions {
                    kek: Some(mdor_store::KeyEncryptionKey::parse(TEST_KEK).unwrap()),
                    ..mdor_store::ConnectOptions::default()
                },
            )
            .await
            .unwrap();
            let ctx = mdor_service::Ctx::new(store.clone())
                .with_account_key(mdor_service::AccountKey::parse(&key_text).unwrap());
            let old = mdor_service::login(&ctx, "j.smith", &password, codes[2]).await;
            let new = mdor_service::login(&ctx, "j.smith", &new_password, &new_code).await;
            let entries: Vec<(String, String)> = store
                .audit_events(None, 1000)
                .await
                .unwrap()
                .into_iter()
                .filter(|e| e.purpose == "administration")
                .map(|e| (e.action, e.role))
                .collect();
            (old, new, entries)
        });
    assert!(matches!(
        old_refused,
        Err(mdor_service::ServiceError::Unauthenticated)
    ));
    assert!(new_accepted.unwrap().must_change_password);
    let operator = |action: &str| (action.to_string(), "operator".to_string());
    assert_eq!(
        entries,
        [
            operator("account.create"),
            operator("account.create"),
            operator("account.approver_grant"),
            operator("account.approver_revoke"),
            operator("account.link_oidc"),
            operator("account.disable"),
            operator("account.enable"),
            operator("account.reset_credentials"),
        ]
    );
}

fn mdor_with_kek(dir: &Path, kek: &str, args: &[&str]) -> Output {
    let database = format!("sqlite://{}", dir.join("mdor.db").display());
    Command::new(env!("CARGO_BIN_EXE_mdor"))
        .args(["--database-url", &database])
        .args(args)
        .current_dir(dir)
        .env_remove("MDOR_DATABASE__URL")
        .env("MDOR_KEYS__KEK", kek)
        .output()
        .unwrap()
}

/// Whether the SQLite database under `dir` or its write-ahead log holds `needle` anywhere.
fn database_bytes_contain(dir: &Path, needle: &str) -> bool {
    let mut bytes = std::fs::read(dir.join("mdor.db")).unwrap();
    bytes.extend(std::fs::read(dir.join("mdor.db-wal")).unwrap_or_default());
    bytes
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// Canary identifiers go in through bulk submission: accepted, rejected into quarantine and
/// corrected (which keeps the earlier version). Not one of them is in the database file or its
/// log, before or after `mdor keys rotate`; rotating to a new key-encryption key leaves the
/// old one refused by name.
#[test]
fn submitted_identifiers_never_reach_the_database_file_in_clear_and_keys_rotate() {
    let dir = TempDir::new("identifiers");
    stdout(&mdor(&dir.0, &["migrate"]));
    stdout(&mdor(
        &dir.0,
        &[
            "org",
            "add",
            "--ods",
            "RA1",
            "--name",
            "Canary Trust",
            "--kind",
            "provider",
        ],
    ));
    std::fs::write(
        dir.0.join("register.csv"),
        "udi_di,manufacturer,brand,model,device_type,risk_class,registry\n\
         05012345678917,Acme Orthopaedics,Acme,Stem 12,hip_stem,III,njr\n",
    )
    .unwrap();
    stdout(&mdor(&dir.0, &["register", "load", "register.csv"]));
    let canaries = [
        (
            "9990000018",
            "Quillfeatherstonehaugh",
            "Wenceslaus",
            "1937-07-23",
            "ZE2 9QX",
            "female",
        ),
        (
            "9990000026",
            "Marjoribanksworth",
            "Perpetua",
            "1941-11-05",
            "KW17 2PX",
            "z",
        ),
    ];
    let record =
        |(nhs, family, given, born, postcode, sex): (&str, &str, &str, &str, &str, &str),
         local: &str,
         lot: &str| {
            serde_json::json!({
                "patient": {"nhs_number": nhs, "family_name": family, "given_name": given,
                    "date_of_birth": born, "sex": sex, "postcode": postcode},
                "procedure": {"local_record_id": local, "provider": "RA1", "consultant": "1234567",
                    "date": "2024-06-01", "opcs4_code": "W37.1", "action": "implant",
                    "laterality": "left", "urgency": "elective"},
                "devices": [{"udi_di": "05012345678917", "lot": lot, "role": "implanted"}]
            })
            .to_string()
        };
    std::fs::write(
        dir.0.join("first.ndjson"),
        format!(
            "{}\n{}\n",
            record(canaries[0], "CAN-1", "LOT1"),
            record(canaries[1], "CAN-2", "LOT1")
        ),
    )
    .unwrap();
    let submit = |file: &str| {
        stdout(&mdor(
            &dir.0,
            &[
                "submit",
                file,
                "--registry",
                "mdor_core",
                "--provider",
                "RA1",
            ],
        ))
    };
    let first = submit("first.ndjson");
    assert!(first.contains("rejected"), "{first}");
    // The same procedure with another lot: a correction, the first version kept.
    std::fs::write(
        dir.0.join("second.ndjson"),
        format!("{}\n", record(canaries[0], "CAN-1", "LOT2")),
    )
    .unwrap();
    let second = submit("second.ndjson");
    assert!(second.contains("corrected"), "{second}");

    let scan = |when: &str| {
        // The search finds what is stored in clear, so it would find a leak.
        assert!(database_bytes_contain(&dir.0, "Acme Orthopaedics"));
        assert!(database_bytes_contain(&dir.0, "CAN-1"));
        for (nhs, family, given, born, postcode, _) in canaries {
            for canary in [nhs, family, given, born, postcode] {
                assert!(
                    !database_bytes_contain(&dir.0, canary),
                    "{canary} is in the database file {when}"
                );
            }
        }
    };
    scan("after submission");
    let status = stdout(&mdor(&dir.0, &["keys", "status"]));
    assert!(status.contains("\"plain_patients\": 0"), "{status}");

    let rotated = stdout(&mdor(&dir.0, &["keys", "rotate"]));
    assert!(rotated.contains("\"current_field_key\": 3"), "{rotated}");
    // Two versions of the accepted record's source (current and earlier, with its core
    // record) and the quarantined one were sealed again.
    assert!(rotated.contains("\"records\": 3"), "{rotated}");
    scan("after rotation");

    // A research project's extract: pseudonymised, written 0600, audited.
    stdout(&mdor(
        &dir.0,
        &[
            "research",
            "create",
            "--reference",
            "DAC-1",
            "--title",
            "Stem survival",
            "--org",
            "RA1",
            "--approved-by",
            "Data Access Committee",
        ],
    ));
    let written = stdout(&mdor(
        &dir.0,
        &[
            "research",
            "extract",
            "--project",
            "DAC-1",
            "--out",
            "extract.ndjson",
        ],
    ));
    assert!(written.contains("1 rows"), "{written}");
    // Naming a researcher checks the account and names the field; removing one not named fails.
    for (command, expected) in [
        ("add-member", "username: no account no.one exists"),
        ("remove-member", "not found"),
    ] {
        let refused = mdor(
            &dir.0,
            &[
                "research",
                command,
                "--project",
                "DAC-1",
                "--username",
                "no.one",
            ],
        );
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(expected), "{command}: {stderr}");
    }
    let extract = std::fs::read_to_string(dir.0.join("extract.ndjson")).unwrap();
    let row: serde_json::Value = serde_json::from_str(extract.trim()).unwrap();
    assert_eq!(row["pseudonym"].as_str().map(str::len), Some(32));
    assert_eq!(row["age_at_procedure"], 86);
    for (nhs, family, given, born, postcode, _) in canaries {
        for canary in [nhs, family, given, born, postcode, "CAN-1"] {
            assert!(
                !extract.contains(canary),
                "{canary} is in the research extract"
            );
        }
    }
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir.0.join("extract.ndjson"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = mdor(
        &dir.0,
        &[
            "research",
            "extract",
            "--project",
            "DAC-1",
            "--out",
            "extract.ndjson",
        ],
    );
    assert!(
        !again.status.success(),
        "an existing extract is never overwritten"
    );
    // A narrower extract: nothing implanted in the next century; a reversed range is
    // refused naming its field before any file is created.
    let later = stdout(&mdor(
        &dir.0,
        &[
            "research",
            "extract",
            "--project",
            "DAC-1",
            "--out",
            "later.ndjson",
            "--implanted-from",
            "2100-01-01",
        ],
    ));
    assert!(later.contains("0 rows"), "{later}");
    let reversed = mdor(
        &dir.0,
        &[
            "research",
            "extract",
            "--project",
            "DAC-1",
            "--out",
            "reversed.ndjson",
            "--implanted-from",
            "2025-02-01",
            "--implanted-to",
            "2025-01-01",
        ],
    );
    assert!(!reversed.status.success());
    assert!(
        String::from_utf8_lossy(&reversed.stderr).contains("implanted_to"),
        "{}",
        String::from_utf8_lossy(&reversed.stderr)
    );
    assert!(!dir.0.join("reversed.ndjson").exists());

    let new_key = dir.0.join("new.kek");
    stdout(&mdor(&dir.0, &["keys", "keygen", "--out", "new.kek"]));
    let new_kek = std::fs::read_to_string(&new_key).unwrap();
    let moved = stdout(&mdor(
        &dir.0,
        &[
            "keys",
            "rotate",
            "--new-kek-file",
            new_key.to_str().unwrap(),
        ],
    ));
    assert!(moved.contains("set keys.kek_file"), "{moved}");
    let refused = mdor(&dir.0, &["keys", "status"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("wrapped by key-encryption key"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let status = stdout(&mdor_with_kek(&dir.0, new_kek.trim(), &["keys", "status"]));
    assert!(status.contains("\"live_field_keys\": 1"), "{status}");
    scan("after moving to a new key-encryption key");
}
