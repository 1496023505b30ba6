//! `mdor audit`: create the checkpoint signing key, sign checkpoints of the audit log, verify
//! the log against an exported checkpoint, and print the PostgreSQL privileges that keep the
//! application's own role from rewriting the audit.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine as _;
use clap::Subcommand;

use mdor_service::{CheckpointSigner, CheckpointVerifier, Ctx};

use crate::config::Config;
use crate::print;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Create a checkpoint signing key in FILE (mode 600) and its verifier key in FILE.pub.
    Keygen {
        /// The log's name (origin line of every checkpoint), e.g. registry.example.nhs.uk/audit.
        #[arg(long)]
        name: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign the current tree head with the key named by audit.signing_key, store it for
    /// reference and print the checkpoint (or write it to --out) for export.
    Checkpoint {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Verify the stored log against an exported checkpoint: signature, every entry, and
    /// that the log still extends the checkpointed one. Exits non-zero on any problem.
    Verify {
        #[arg(long)]
        checkpoint: PathBuf,
        /// Verifier key (default: audit.signing_key with .pub appended).
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
    /// Print the PostgreSQL statements that give an application role what it needs and
    /// nothing more: it may append to audit_event and audit_checkpoint but not change,
    /// delete, truncate or re-trigger them (run them as the schema owner).
    Grants {
        /// The role the application connects as.
        #[arg(long)]
        role: String,
    },
}

impl AuditCommand {
    /// Whether the command needs neither configuration nor a database.
    pub fn is_offline(&self) -> bool {
        matches!(
            self,
            AuditCommand::Keygen { .. } | AuditCommand::Grants { .. }
        )
    }
}

pub fn run_offline(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Keygen { name, out } => keygen(&name, &out),
        AuditCommand::Grants { role } => grants(&role),
        AuditCommand::Checkpoint { .. } | AuditCommand::Verify { .. } => {
            bail!("this audit command needs the database")
        }
    }
}

pub async fn run(ctx: &Ctx, config: &Config, command: AuditCommand) -> anyhow::Result<()> {
    ctx.check_ready().await?;
    match command {
        AuditCommand::Checkpoint { out } => {
            let key_path = config
                .audit_signing_key
                .as_deref()
                .context("audit.signing_key is not set (create a key with `mdor audit keygen`)")?;
            let signer = read_signer(key_path)?;
            let signed = mdor_service::create_audit_checkpoint(ctx, &signer)
                .await
                .map_err(crate::load::describe)?;
            match out {
                Some(path) => {
                    std::fs::write(&path, &signed.note)
                        .with_context(|| format!("writing {}", path.display()))?;
                    print(&format!(
                        "checkpoint of {} entries written to {}\n",
                        signed.checkpoint.head.size,
                        path.display()
                    ));
                }
                None => print(&signed.note),
            }
            Ok(())
        }
        AuditCommand::Verify {
            checkpoint,
            public_key,
        } => {
            let key_path = match (public_key, &config.audit_signing_key) {
                (Some(path), _) => path,
                (None, Some(signing)) => with_suffix(signing, ".pub"),
                (None, None) => {
                    bail!("give --public-key (or set audit.signing_key to use its .pub file)")
                }
            };
            let verifier_text = std::fs::read_to_string(&key_path)
                .with_context(|| format!("reading {}", key_path.display()))?;
            let verifier = CheckpointVerifier::parse(&verifier_text)?;
            let note = std::fs::read_to_string(&checkpoint)
                .with_context(|| format!("reading {}", checkpoint.display()))?;
            let started = std::time::Instant::now();
            let report = mdor_service::verify_audit_log(ctx, &note, &verifier)
                .await
                .map_err(crate::load::describe)?;
            let elapsed = started.elapsed().as_secs_f64();
            let base64 = base64::engine::general_purpose::STANDARD;
            let mut text = format!(
                "checkpoint: {} entries, root {} (signature valid)\nlog now: {} entries, root {}\nread and hashed in {elapsed:.2} s\n",
                report.checkpoint.head.size,
                base64.encode(report.checkpoint.head.root),
                report.current.size,
                base64.encode(report.current.root),
            );
            for problem in &report.problems {
                text.push_str(&format!("problem: {problem}\n"));
            }
            print(&text);
            if !report.is_intact() {
                bail!(
                    "the audit log does not match the checkpoint ({} problems)",
                    report.n_problems
                );
            }
            print("the audit log extends the checkpoint unchanged\n");
            Ok(())
        }
        AuditCommand::Keygen { .. } | AuditCommand::Grants { .. } => Ok(()),
    }
}

fn keygen(name: &str, out: &Path) -> anyhow::Result<()> {
    let signer = CheckpointSigner::generate(name)?;
    write_new_file(out, &signer.to_key_file(), 0o600)?;
    let public = with_suffix(out, ".pub");
    write_new_file(&public, &signer.verifier().to_key_file(), 0o644)?;
    print(&format!(
        "signing key written to {} (keep it off the database server)\nverifier key written to {}:\n{}",
        out.display(),
        public.display(),
        signer.verifier().to_key_file()
    ));
    Ok(())
}

fn read_signer(path: &Path) -> anyhow::Result<CheckpointSigner> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    CheckpointSigner::parse(&text)
        .with_context(|| format!("reading the signing key {}", path.display()))
}

/// Creates `path` with `mode`, refusing to overwrite an existing file (a lost key cannot be
/// recovered, and a replaced one would orphan earlier checkpoints).
pub(crate) fn write_new_file(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn grants(role: &str) -> anyhow::Result<()> {
    let valid = !role.is_empty()
        && role
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        bail!("role must be lower-case letters, digits and underscores");
    }
    print(&grants_sql(role));
    Ok(())
}

/// The privileges of an application role that does not own the schema (see docs/security.md).
pub fn grants_sql(role: &str) -> String {
    format!(
        "-- Run as the owner of the mdor schema (the role that ran `mdor migrate`).
-- The application role `{role}` reads and writes the registry's tables but may only append
-- to the audit: it cannot UPDATE, DELETE or TRUNCATE audit rows, and because it does not own
-- the tables it cannot drop or disable their triggers either. Audit writers serialise on a
-- transaction-level advisory lock, which needs no table privilege.
GRANT USAGE ON SCHEMA public TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};
REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES ON audit_event, audit_checkpoint FROM {role};
REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES ON _sqlx_migrations FROM {role};
REVOKE CREATE ON SCHEMA public FROM {role};
"
    )
}
