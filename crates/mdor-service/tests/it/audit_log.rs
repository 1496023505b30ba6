//! Tampering with the audit log is detected against a signed checkpoint: an edit (with or
//! without a recomputed leaf hash, and of the request id), a deletion, a reordering and a
//! truncation, each done as the database owner would, by switching the append-only triggers
//! off and changing rows directly. Runs on a SQLite file always and on PostgreSQL when `MDOR_TEST_POSTGRES_URL` is
//! set (a fresh database per case).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{TimeZone, Utc};
use sqlx::Connection;

use mdor_service::{CheckpointSigner, Ctx, LogProblem, ServiceError};
use mdor_store::{
    ConnectOptions, NewAuditEvent, NewOrganisation, OrganisationKind, RequestId, Store,
};

/// The entries each case starts with; the checkpoint covers them all.
const ENTRIES: u64 = 8;

#[derive(Clone, Copy, Debug)]
enum Tampering {
    None,
    Append,
    Edit,
    EditWithRecomputedLeafHash,
    /// Another request id on an entry written for a request (encoding version 3).
    EditRequestId,
    /// An entry's request id removed, as if it had been written outside a request.
    ClearRequestId,
    /// A patient struck from a multi-patient read (encoding version 4).
    RemovePatient,
    /// A patient added to a multi-patient read.
    AddPatient,
    /// Another commitment to a break-glass reason (encoding version 5).
    EditDetailDigest,
    /// A break-glass access's commitment removed, as if no reason had been given.
    ClearDetailDigest,
    Delete,
    Reorder,
    Truncate,
}

/// A database of its own for one case.
enum Database {
    Sqlite { dir: std::path::PathBuf },
    Postgres { admin_url: String, name: String },
}

impl Database {
    async fn create(postgres: Option<&str>) -> Database {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!(
            "mdor_test_audit_{}_{n}_{}",
            std::process::id(),
            nanos % 1_000_000_000
        );
        match postgres {
            None => {
                let dir = std::env::temp_dir().join(&name);
                std::fs::create_dir_all(&dir).unwrap();
                Database::Sqlite { dir }
            }
            Some(admin_url) => {
                let mut admin = sqlx::PgConnection::connect(admin_url).await.unwrap();
                sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                admin.close().await.unwrap();
                Database::Postgres {
                    admin_url: admin_url.to_string(),
                    name,
                }
            }
        }
    }

    fn url(&self) -> String {
        match self {
            Database::Sqlite { dir } => format!("sqlite://{}", dir.join("mdor.db").display()),
            Database::Postgres { admin_url, name } => {
                let server = &admin_url[..admin_url.rfind('/').unwrap()];
                format!("{server}/{name}")
            }
        }
    }

    /// Runs `statements` as the owner, with the append-only triggers out of the way.
    async fn as_owner(&self, statements: &[String]) {
        match self {
            Database::Sqlite { .. } => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url()).await.unwrap();
                sqlx::raw_sql(
                    "DROP TRIGGER IF EXISTS audit_event_no_update; \
                     DROP TRIGGER IF EXISTS audit_event_no_delete; \
                     DROP TRIGGER IF EXISTS audit_named_patient_no_update; \
                     DROP TRIGGER IF EXISTS audit_named_patient_no_delete;",
                )
                .execute(&mut conn)
                .await
                .unwrap();
                for statement in statements {
                    sqlx::raw_sql(statement).execute(&mut conn).await.unwrap();
                }
                conn.close().await.unwrap();
            }
            Database::Postgres { .. } => {
                let mut conn = sqlx::PgConnection::connect(&self.url()).await.unwrap();
                sqlx::raw_sql(
                    "ALTER TABLE audit_event DISABLE TRIGGER USER; \
                     ALTER TABLE audit_named_patient DISABLE TRIGGER USER;",
                )
                .execute(&mut conn)
                .await
                .unwrap();
                for statement in statements {
                    sqlx::raw_sql(statement).execute(&mut conn).await.unwrap();
                }
                conn.close().await.unwrap();
            }
        }
    }

    async fn remove(self) {
        match self {
            Database::Sqlite { dir } => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Database::Postgres { admin_url, name } => {
                // Cleanup only: a database left behind must not fail a test whose checks
                // have all passed, so a failure to drop it is reported, not raised.
                let dropped = async {
                    let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                    sqlx::raw_sql(&format!("DROP DATABASE {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await?;
                    admin.close().await
                }
                .await;
                if let Err(error) = dropped {
                    eprintln!("could not drop test database {name}: {error}");
                }
            }
        }
    }
}

/// Entry `i`; the odd ones are a person's (naming `account`), the even ones a system's, every
/// third was written for an HTTP request, the fifth is a recall that named patients 1 and 2,
/// and the first broke glass (its reason committed to by a digest; the first, since no
/// tampering below deletes or moves it, which its review item's reference would refuse), so
/// that the log holds all five encodings: version 1 (2, 4, 8), version 2 (7), version 3 (3
/// with an account, 6 without), version 4 (5) and version 5 (1).
fn entry(
    organisation: mdor_store::OrganisationId,
    account: mdor_store::AccountId,
    i: u64,
) -> NewAuditEvent {
    NewAuditEvent {
        request: i
            .is_multiple_of(3)
            .then(|| RequestId::parse(&format!("6f1c2d3e-4b5a-4c6d-8e7f-00000000000{i}")))
            .flatten(),
        at: Utc.timestamp_opt(1_795_000_000 + i as i64, 0).unwrap(),
        organisation,
        role: "regulator",
        token: None,
        account: (i % 2 == 1).then_some(account),
        action: "recall.query",
        resource: format!("recall?udi_di=05012345678900&lot=L{i}"),
        patient: None,
        record_count: i,
        purpose: "recall",
        outcome: "ok",
        // Only the commitment matters to the log; the review item holds the sealed value.
        break_glass: (i == 1).then(|| mdor_store::SealedDetail {
            sealed: "k1.not-opened-here".into(),
            digest: [7; 32],
        }),
        patients: if i == 5 {
            vec![mdor_store::PatientId(2), mdor_store::PatientId(1)]
        } else {
            Vec::new()
        },
    }
}

/// Writes `ENTRIES` entries, checkpoints them, tampers, and returns the verification result.
async fn tamper_and_verify(
    postgres: Option<&str>,
    tampering: Tampering,
) -> Result<mdor_service::VerifyReport, ServiceError> {
    let database = Database::create(postgres).await;
    let store: Arc<dyn Store> = mdor_store::connect(
        &database.url(),
        &ConnectOptions {
            kek: Some(mdor_store::KeyEncryptionKey::random()),
            ..ConnectOptions::default()
        },
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let ctx = Ctx::new(store.clone());
    let organisation = mdor_service::ensure_organisations(
        &ctx,
        &[NewOrganisation {
            ods_code: mdor_domain::OdsCode::parse("MHRA").unwrap(),
            name: "Regulator".into(),
            kind: OrganisationKind::Regulator,
            region: None,
        }],
    )
    .await
    .unwrap()
    .into_values()
    .next()
    .unwrap();
    let account = store
        .insert_account(
            &mdor_store::NewAccount {
                username: "regulator.one".into(),
                role: mdor_store::AccountRole::Regulator,
                organisation: Some(organisation),
                patient: None,
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
                    .into(),
                totp_secret_sealed: vec![0; 44],
                backup_code_hashes: Vec::new(),
                created_at: Utc.timestamp_opt(1_794_000_000, 0).unwrap(),
            },
            None,
        )
        .await
        .unwrap();
    // The patients entry 5 names (and a third); only their ids matter to the audit.
    database
        .as_owner(&[
            "INSERT INTO patient (id, nhs_number, family_name, given_name, \
                     date_of_birth, sex, created_at) VALUES \
                     (1, 'n1', 'f', 'g', 'd', 'U', '2026-01-01T00:00:00Z'), \
                     (2, 'n2', 'f', 'g', 'd', 'U', '2026-01-01T00:00:00Z'), \
                     (3, 'n3', 'f', 'g', 'd', 'U', '2026-01-01T00:00:00Z')"
                .to_string(),
        ])
        .await;
    for i in 1..=ENTRIES {
        store
            .append_audit(&entry(organisation, account, i))
            .await
            .unwrap();
    }
    let signer = CheckpointSigner::generate("registry.example/audit").unwrap();
    let signed = mdor_service::create_audit_checkpoint(&ctx, &signer)
        .await
        .unwrap();
    assert_eq!(signed.checkpoint.head.size, ENTRIES);
    let edited_leaf = {
        let mut edited = store.audit_log_page(2, 1).await.unwrap().remove(0);
        edited.outcome = "denied".into();
        let hash: String = mdor_store::audit_log::leaf_hash(&edited)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        hash
    };
    let hex_literal = match postgres {
        None => format!("X'{edited_leaf}'"),
        Some(_) => format!("'\\x{edited_leaf}'::bytea"),
    };
    let statements: Vec<String> = match tampering {
        Tampering::None => vec![],
        Tampering::Append => {
            store
                .append_audit(&entry(organisation, account, ENTRIES + 1))
                .await
                .unwrap();
            vec![]
        }
        Tampering::Edit => vec!["UPDATE audit_event SET outcome = 'denied' WHERE seq = 3".into()],
        Tampering::EditWithRecomputedLeafHash => vec![format!(
            "UPDATE audit_event SET outcome = 'denied', leaf_hash = {hex_literal} WHERE seq = 3"
        )],
        Tampering::EditRequestId => vec![
            "UPDATE audit_event SET request_id = '6f1c2d3e-4b5a-4c6d-8e7f-000000000009' \
             WHERE seq = 6"
                .into(),
        ],
        Tampering::ClearRequestId => {
            vec!["UPDATE audit_event SET request_id = NULL WHERE seq = 3".into()]
        }
        Tampering::RemovePatient => {
            vec!["DELETE FROM audit_named_patient WHERE audit_seq = 5 AND patient_id = 2".into()]
        }
        Tampering::AddPatient => {
            vec!["INSERT INTO audit_named_patient (audit_seq, patient_id) VALUES (5, 3)".into()]
        }
        Tampering::EditDetailDigest => vec![format!(
            "UPDATE audit_event SET detail_digest = {} WHERE seq = 1",
            match postgres {
                None => format!("X'{}'", "08".repeat(32)),
                Some(_) => format!("'\\x{}'::bytea", "08".repeat(32)),
            }
        )],
        Tampering::ClearDetailDigest => {
            vec!["UPDATE audit_event SET detail_digest = NULL WHERE seq = 1".into()]
        }
        Tampering::Delete => vec!["DELETE FROM audit_event WHERE seq = 4".into()],
        Tampering::Reorder => vec![
            "UPDATE audit_event SET seq = -1 WHERE seq = 2".into(),
            "UPDATE audit_event SET seq = 2 WHERE seq = 3".into(),
            "UPDATE audit_event SET seq = 3 WHERE seq = -1".into(),
        ],
        Tampering::Truncate => vec!["DELETE FROM audit_event WHERE seq > 5".into()],
    };
    database.as_owner(&statements).await;
    let report = mdor_service::verify_audit_log(&ctx, &signed.note, &signer.verifier()).await;
    // The next checkpoint is signed only over a log that still extends the stored one.
    let tampered = !matches!(tampering, Tampering::None | Tampering::Append);
    let resigned = mdor_service::create_audit_checkpoint(&ctx, &signer).await;
    assert_eq!(resigned.is_err(), tampered, "{tampering:?}: {resigned:?}");
    // A checkpoint whose signed text was altered is refused before the log is read.
    let forged = signed.note.replacen(&format!("\n{ENTRIES}\n"), "\n5\n", 1);
    assert!(matches!(
        mdor_service::verify_audit_log(&ctx, &forged, &signer.verifier()).await,
        Err(ServiceError::Input(message)) if message.contains("no valid signature")
    ));
    drop(ctx);
    drop(store);
    database.remove().await;
    report
}

async fn check_every_tampering_is_detected(postgres: Option<&str>) {
    let intact = tamper_and_verify(postgres, Tampering::None).await.unwrap();
    assert!(intact.is_intact(), "{:?}", intact.problems);
    assert_eq!(intact.current, intact.checkpoint.head);

    let grown = tamper_and_verify(postgres, Tampering::Append)
        .await
        .unwrap();
    assert!(grown.is_intact(), "{:?}", grown.problems);
    assert_eq!(grown.current.size, ENTRIES + 1);
    assert_ne!(grown.current.root, grown.checkpoint.head.root);

    let root_mismatch = LogProblem::RootMismatch { size: ENTRIES };
    let edited = tamper_and_verify(postgres, Tampering::Edit).await.unwrap();
    assert_eq!(
        edited.problems,
        [LogProblem::LeafMismatch { seq: 3 }, root_mismatch.clone()]
    );

    // The request id, the patients a multi-patient read named and the commitment to a
    // break-glass reason are hashed into the leaf: changing or removing the id, striking or
    // adding a patient, or changing or removing the commitment, is an edit.
    for (tampering, seq) in [
        (Tampering::EditRequestId, 6),
        (Tampering::ClearRequestId, 3),
        (Tampering::RemovePatient, 5),
        (Tampering::AddPatient, 5),
        (Tampering::EditDetailDigest, 1),
        (Tampering::ClearDetailDigest, 1),
    ] {
        let report = tamper_and_verify(postgres, tampering).await.unwrap();
        assert_eq!(
            report.problems,
            [LogProblem::LeafMismatch { seq }, root_mismatch.clone()],
            "{tampering:?}"
        );
    }

    let rehashed = tamper_and_verify(postgres, Tampering::EditWithRecomputedLeafHash)
        .await
        .unwrap();
    assert_eq!(rehashed.problems, std::slice::from_ref(&root_mismatch));

    let deleted = tamper_and_verify(postgres, Tampering::Delete)
        .await
        .unwrap();
    assert_eq!(deleted.current.size, ENTRIES - 1);
    assert_eq!(
        deleted.problems,
        [
            LogProblem::OutOfSequence {
                position: 4,
                seq: 5
            },
            LogProblem::OutOfSequence {
                position: 5,
                seq: 6
            },
            LogProblem::OutOfSequence {
                position: 6,
                seq: 7
            },
            LogProblem::OutOfSequence {
                position: 7,
                seq: 8
            },
            LogProblem::Truncated {
                entries: ENTRIES - 1,
                checkpoint_size: ENTRIES
            },
        ]
    );

    let reordered = tamper_and_verify(postgres, Tampering::Reorder)
        .await
        .unwrap();
    assert_eq!(
        reordered.problems,
        [
            LogProblem::LeafMismatch { seq: 2 },
            LogProblem::LeafMismatch { seq: 3 },
            root_mismatch,
        ]
    );

    let truncated = tamper_and_verify(postgres, Tampering::Truncate)
        .await
        .unwrap();
    assert_eq!(
        truncated.problems,
        [LogProblem::Truncated {
            entries: 5,
            checkpoint_size: ENTRIES
        }]
    );
    assert!(!truncated.is_intact());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_edits_deletions_reorderings_and_truncations_of_the_audit_are_detected() {
    check_every_tampering_is_detected(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_edits_deletions_reorderings_and_truncations_of_the_audit_are_detected() {
    let Ok(url) = std::env::var("MDOR_TEST_POSTGRES_URL") else {
        assert_ne!(
            std::env::var("MDOR_REQUIRE_POSTGRES").as_deref(),
            Ok("1"),
            "MDOR_REQUIRE_POSTGRES=1 but MDOR_TEST_POSTGRES_URL is not set"
        );
        eprintln!("postgres: skipped, MDOR_TEST_POSTGRES_URL is not set");
        return;
    };
    check_every_tampering_is_detected(Some(&url)).await;
}
