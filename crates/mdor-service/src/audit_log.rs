//! Signed checkpoints of the audit log and their verification, so that an edit, deletion,
//! reordering or truncation of audit entries is detected against a checkpoint kept off the
//! database (see `docs/security.md`).
//!
//! The log is a Merkle tree over the entries in position order (`mdor_store::audit_log`:
//! RFC 6962 hashing). A checkpoint is a C2SP signed note in the transparency-log checkpoint
//! format: the body is the origin line, the tree size in decimal and the base64 root hash,
//! each ending in a newline; then a blank line and one signature line
//! `— <key name> <base64(key hash ‖ Ed25519 signature of the body)>`. The key name is the
//! origin; the 4-byte key hash is the first bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key).
//! Keys are written as Go's `note` package writes them: `PRIVATE+KEY+<name>+<hash>+<base64>`
//! for the signing key and `<name>+<hash>+<base64>` for the verifier key, the base64 covering
//! 0x01 (Ed25519) followed by the 32-byte seed or public key.
//!
//! The private key lives in a file named in the configuration and never in the database;
//! the checkpoints the database keeps are for reference only, since whoever can change the
//! audit rows could change them too.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

use mdor_store::NewAuditCheckpoint;
use mdor_store::audit_log::{Hash, TreeBuilder, leaf_hash};

use crate::ctx::Ctx;
use crate::error::ServiceError;

/// Entries read per query while scanning the log.
const PAGE: u32 = 20_000;

/// At most this many problems are listed; the count covers all of them.
const MAX_LISTED_PROBLEMS: usize = 100;

/// Algorithm byte of an Ed25519 key in a signed note.
const ED25519: u8 = 0x01;

/// The size and root of the log's Merkle tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    pub size: u64,
    pub root: Hash,
}

/// A tree head as signed for one log (origin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub head: TreeHead,
}

/// The key that signs checkpoints; its name is the log's origin.
pub struct CheckpointSigner {
    name: String,
    key: SigningKey,
}

/// The public half, for verifying checkpoints away from the registry.
#[derive(Debug, Clone)]
pub struct CheckpointVerifier {
    name: String,
    key: VerifyingKey,
}

/// Something wrong with the stored log, found while scanning it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogProblem {
    /// The entry at this position carries another position: entries before it were
    /// deleted or moved, or positions were renumbered.
    OutOfSequence { position: u64, seq: u64 },
    /// The stored leaf hash is not the hash of the stored entry: the entry was edited.
    LeafMismatch { seq: u64 },
    /// The log holds fewer entries than the checkpoint: it was truncated.
    Truncated { entries: u64, checkpoint_size: u64 },
    /// The first `size` entries no longer hash to the checkpoint's root: an entry was edited,
    /// deleted, inserted or reordered.
    RootMismatch { size: u64 },
}

impl std::fmt::Display for LogProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogProblem::OutOfSequence { position, seq } => write!(
                f,
                "position {position} holds entry {seq}: entries were deleted, moved or renumbered"
            ),
            LogProblem::LeafMismatch { seq } => write!(
                f,
                "entry {seq} does not match its stored leaf hash: it was edited"
            ),
            LogProblem::Truncated {
                entries,
                checkpoint_size,
            } => write!(
                f,
                "the log holds {entries} entries but the checkpoint covers {checkpoint_size}: it was truncated"
            ),
            LogProblem::RootMismatch { size } => write!(
                f,
                "the first {size} entries do not hash to the checkpoint's root: the checkpointed log was changed"
            ),
        }
    }
}

/// What verifying the log against a checkpoint found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub checkpoint: Checkpoint,
    /// The whole log as stored now; it extends the checkpoint when there are no problems.
    pub current: TreeHead,
    /// The first problems found (at most 100).
    pub problems: Vec<LogProblem>,
    pub n_problems: usize,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.n_problems == 0
    }
}

/// A checkpoint just signed and stored.
#[derive(Debug, Clone)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    /// The signed note to export.
    pub note: String,
}

impl CheckpointSigner {
    /// A new random key for the log named `origin`.
    pub fn generate(origin: &str) -> Result<CheckpointSigner, ServiceError> {
        check_key_name(origin)?;
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        Ok(CheckpointSigner {
            name: origin.to_string(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Reads a `PRIVATE+KEY+…` key.
    pub fn parse(text: &str) -> Result<CheckpointSigner, ServiceError> {
        let bad = || ServiceError::Input("not an mdor checkpoint signing key".into());
        let rest = text.trim().strip_prefix("PRIVATE+KEY+").ok_or_else(bad)?;
        let (name, hash, key) = split_key(rest).ok_or_else(bad)?;
        let seed: [u8; 32] = key.try_into().map_err(|_| bad())?;
        let signer = CheckpointSigner {
            name: name.to_string(),
            key: SigningKey::from_bytes(&seed),
        };
        if signer.verifier().key_hash() != hash {
            return Err(ServiceError::Input(
                "the signing key's hash does not match its name and key".into(),
            ));
        }
        Ok(signer)
    }

    /// The key file's text; write it where only the operator can read it.
    pub fn to_key_file(&self) -> String {
        let mut key = vec![ED25519];
        key.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}\n",
            self.name,
            u32::from_be_bytes(self.verifier().key_hash()),
            BASE64.encode(key)
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier(&self) -> CheckpointVerifier {
        CheckpointVerifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// The signed note for `checkpoint`.
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        let body = checkpoint.body();
        let signature = self.key.sign(body.as_bytes());
        let mut signed = self.verifier().key_hash().to_vec();
        signed.extend_from_slice(&signature.to_bytes());
        format!("{body}\n\u{2014} {} {}\n", self.name, BASE64.encode(signed))
    }
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("name", &self.name)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl CheckpointVerifier {
    /// Reads a `<name>+<hash>+<base64>` verifier key.
    pub fn parse(text: &str) -> Result<CheckpointVerifier, ServiceError> {
        let bad = || ServiceError::Input("not an mdor checkpoint verifier key".into());
        let (name, hash, key) = split_key(text.trim()).ok_or_else(bad)?;
        let key: [u8; 32] = key.try_into().map_err(|_| bad())?;
        let verifier = CheckpointVerifier {
            name: name.to_string(),
            key: VerifyingKey::from_bytes(&key).map_err(|_| bad())?,
        };
        if verifier.key_hash() != hash {
            return Err(ServiceError::Input(
                "the verifier key's hash does not match its name and key".into(),
            ));
        }
        Ok(verifier)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn to_key_file(&self) -> String {
        let mut key = vec![ED25519];
        key.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{:08x}+{}\n",
            self.name,
            u32::from_be_bytes(self.key_hash()),
            BASE64.encode(key)
        )
    }

    /// First 4 bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key).
    fn key_hash(&self) -> [u8; 4] {
        let mut hasher = Sha256::new();
        hasher.update(self.name.as_bytes());
        hasher.update(b"\n");
        hasher.update([ED25519]);
        hasher.update(self.key.as_bytes());
        let digest = hasher.finalize();
        [digest[0], digest[1], digest[2], digest[3]]
    }

    /// The checkpoint in `note`, if this key signed it and its origin is this key's name.
    pub fn open(&self, note: &str) -> Result<Checkpoint, ServiceError> {
        let bad = |what: &str| ServiceError::Input(format!("checkpoint: {what}"));
        let split = note
            .find("\n\n")
            .ok_or_else(|| bad("no blank line before the signatures"))?;
        let (body, signatures) = (&note[..=split], &note[split + 2..]);
        let prefix = format!("\u{2014} {} ", self.name);
        let mut signed = false;
        for line in signatures.lines() {
            let Some(encoded) = line.strip_prefix(&prefix) else {
                continue;
            };
            let Ok(bytes) = BASE64.decode(encoded) else {
                continue;
            };
            if bytes.len() != 68 || bytes[..4] != self.key_hash() {
                continue;
            }
            let Ok(signature) = Signature::from_slice(&bytes[4..]) else {
                continue;
            };
            if self.key.verify(body.as_bytes(), &signature).is_ok() {
                signed = true;
            }
        }
        if !signed {
            return Err(bad(&format!(
                "no valid signature by key '{}': the checkpoint was altered or signed by another key",
                self.name
            )));
        }
        let checkpoint = Checkpoint::parse_body(body)?;
        if checkpoint.origin != self.name {
            return Err(bad(&format!(
                "origin '{}' is not the key's log '{}'",
                checkpoint.origin, self.name
            )));
        }
        Ok(checkpoint)
    }
}

impl Checkpoint {
    /// The signed body: origin, size and base64 root, one per line.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.head.size,
            BASE64.encode(self.head.root)
        )
    }

    fn parse_body(body: &str) -> Result<Checkpoint, ServiceError> {
        let bad = |what: &str| ServiceError::Input(format!("checkpoint: {what}"));
        let mut lines = body.lines();
        let origin = lines.next().filter(|o| !o.is_empty());
        let origin = origin.ok_or_else(|| bad("no origin line"))?;
        let size = lines.next().ok_or_else(|| bad("no tree size line"))?;
        let canonical = size == "0" || (!size.starts_with('0') && !size.starts_with('+'));
        let size: u64 = size
            .parse()
            .ok()
            .filter(|_| canonical)
            .ok_or_else(|| bad("tree size is not a decimal number"))?;
        let root = lines.next().ok_or_else(|| bad("no root hash line"))?;
        let root: Hash = BASE64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| bad("root hash is not 32 bytes of base64"))?;
        Ok(Checkpoint {
            origin: origin.to_string(),
            head: TreeHead { size, root },
        })
    }
}

/// Computes the current tree head after checking the log (every leaf, every position, and
/// consistency with the latest stored checkpoint), signs it, stores it for reference and
/// returns the note to export. A log that fails the check is not signed.
#[tracing::instrument(skip_all)]
pub async fn create_audit_checkpoint(
    ctx: &Ctx,
    signer: &CheckpointSigner,
) -> Result<SignedCheckpoint, ServiceError> {
    let previous = ctx.store.latest_audit_checkpoint().await?;
    let scan = scan_log(ctx, previous.as_ref().map(|p| p.tree_size)).await?;
    let mut problems = scan.problems;
    if let Some(previous) = &previous {
        match scan.prefix_root {
            None => problems.push(LogProblem::Truncated {
                entries: scan.head.size,
                checkpoint_size: previous.tree_size,
            }),
            Some(root) if root != previous.root_hash => problems.push(LogProblem::RootMismatch {
                size: previous.tree_size,
            }),
            Some(_) => {}
        }
    }
    if let Some(problem) = problems.first() {
        return Err(ServiceError::Input(format!(
            "the audit log fails verification ({} problems; first: {problem}); not signing it",
            problems.len()
        )));
    }
    let checkpoint = Checkpoint {
        origin: signer.name().to_string(),
        head: scan.head,
    };
    let note = signer.sign(&checkpoint);
    ctx.store
        .insert_audit_checkpoint(&NewAuditCheckpoint {
            tree_size: checkpoint.head.size,
            root_hash: checkpoint.head.root,
            created_at: ctx.now(),
            key_name: signer.name().to_string(),
            note: note.clone(),
        })
        .await?;
    Ok(SignedCheckpoint { checkpoint, note })
}

/// Checks the stored log against a signed checkpoint: the signature, every entry's leaf hash
/// and position, that the log is at least as long as the checkpoint, and that its first
/// `size` entries hash to the checkpoint's root (so the current log extends it).
#[tracing::instrument(skip_all)]
pub async fn verify_audit_log(
    ctx: &Ctx,
    note: &str,
    verifier: &CheckpointVerifier,
) -> Result<VerifyReport, ServiceError> {
    let checkpoint = verifier.open(note)?;
    let scan = scan_log(ctx, Some(checkpoint.head.size)).await?;
    let mut problems = scan.problems;
    match scan.prefix_root {
        None => problems.push(LogProblem::Truncated {
            entries: scan.head.size,
            checkpoint_size: checkpoint.head.size,
        }),
        Some(root) if root != checkpoint.head.root => problems.push(LogProblem::RootMismatch {
            size: checkpoint.head.size,
        }),
        Some(_) => {}
    }
    let n_problems = problems.len() + scan.unlisted;
    problems.truncate(MAX_LISTED_PROBLEMS);
    Ok(VerifyReport {
        checkpoint,
        current: scan.head,
        problems,
        n_problems,
    })
}

struct Scan {
    head: TreeHead,
    /// The root over the first `prefix` entries, when the log has that many.
    prefix_root: Option<Hash>,
    problems: Vec<LogProblem>,
    unlisted: usize,
}

/// One pass over the log in position order: recomputes each leaf, compares it with the
/// stored one, checks positions and builds the tree, noting the root at `prefix` entries.
async fn scan_log(ctx: &Ctx, prefix: Option<u64>) -> Result<Scan, ServiceError> {
    let mut tree = TreeBuilder::new();
    let mut prefix_root = (prefix == Some(0)).then(|| tree.root());
    let mut problems = Vec::new();
    let mut unlisted = 0;
    let mut note = |problem: LogProblem| {
        if problems.len() < MAX_LISTED_PROBLEMS {
            problems.push(problem);
        } else {
            unlisted += 1;
        }
    };
    // The next page is read while this one is hashed: the engine's work and the hashing
    // overlap, which on SQLite (a worker thread per connection) nearly halves the time.
    let mut page = ctx.store.audit_log_page(0, PAGE).await?;
    while let Some(last) = page.last() {
        let next = (page.len() == PAGE as usize).then(|| {
            let store = Arc::clone(&ctx.store);
            let after = last.seq;
            tokio::spawn(async move { store.audit_log_page(after, PAGE).await })
        });
        for entry in &page {
            let position = tree.size() + 1;
            if entry.seq != position {
                note(LogProblem::OutOfSequence {
                    position,
                    seq: entry.seq,
                });
            }
            let leaf = leaf_hash(entry);
            if entry
                .leaf_hash
                .as_deref()
                .is_some_and(|stored| stored != leaf)
            {
                note(LogProblem::LeafMismatch { seq: entry.seq });
            }
            tree.push(leaf);
            if Some(tree.size()) == prefix {
                prefix_root = Some(tree.root());
            }
        }
        let Some(next) = next else {
            break;
        };
        page = next
            .await
            .map_err(|e| ServiceError::Input(format!("reading the audit log: {e}")))??;
    }
    Ok(Scan {
        head: TreeHead {
            size: tree.size(),
            root: tree.root(),
        },
        prefix_root,
        problems,
        unlisted,
    })
}

/// A key's name becomes a line of the note and a `+`-separated key field.
fn check_key_name(name: &str) -> Result<(), ServiceError> {
    let valid = !name.is_empty()
        && !name.contains('+')
        && !name.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(())
    } else {
        Err(ServiceError::Input(
            "a checkpoint key name must be non-empty, without spaces or '+'".into(),
        ))
    }
}

/// `<name>+<hex hash>+<base64(0x01 ‖ key)>` → (name, hash, key bytes).
fn split_key(text: &str) -> Option<(&str, [u8; 4], Vec<u8>)> {
    // Base64 may contain '+', so the key is everything after the second separator.
    let mut parts = text.splitn(3, '+');
    let (name, hash, key) = (parts.next()?, parts.next()?, parts.next()?);
    if check_key_name(name).is_err() || hash.len() != 8 {
        return None;
    }
    let hash = u32::from_str_radix(hash, 16).ok()?.to_be_bytes();
    let key = BASE64.decode(key).ok()?;
    match key.split_first() {
        Some((&ED25519, rest)) => Some((name, hash, rest.to_vec())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "registry.example/audit".into(),
            head: TreeHead {
                size: 12,
                root: [7; 32],
            },
        }
    }

    #[test]
    fn a_signed_checkpoint_opens_with_its_key_and_round_trips_through_key_files() {
        let signer = CheckpointSigner::generate("registry.example/audit").unwrap();
        let note = signer.sign(&checkpoint());
        assert!(
            note.starts_with("registry.example/audit\n12\nBwcH"),
            "{note}"
        );
        assert!(note.contains("\n\n\u{2014} registry.example/audit "));
        let signer = CheckpointSigner::parse(&signer.to_key_file()).unwrap();
        let verifier = CheckpointVerifier::parse(&signer.verifier().to_key_file()).unwrap();
        assert_eq!(verifier.open(&note).unwrap(), checkpoint());
        // `PRIVATE+KEY+name+hash+key`: the key is the fifth field, and its base64 may itself
        // contain `+` (splitting at the last one made this test fail whenever a short tail
        // happened to appear in the debug text).
        let key_file = signer.to_key_file();
        let secret = key_file.splitn(5, '+').nth(4).unwrap().trim();
        assert_eq!(secret.len(), 44, "{key_file}");
        assert!(!format!("{signer:?}").contains(secret));
    }

    #[test]
    fn an_altered_checkpoint_or_another_key_is_refused() {
        let signer = CheckpointSigner::generate("registry.example/audit").unwrap();
        let verifier = signer.verifier();
        let note = signer.sign(&checkpoint());
        let grown = note.replacen("\n12\n", "\n13\n", 1);
        assert!(verifier.open(&grown).is_err());
        let other = CheckpointSigner::generate("registry.example/audit").unwrap();
        assert!(other.verifier().open(&note).is_err());
        let renamed = CheckpointSigner::generate("elsewhere").unwrap();
        assert!(renamed.verifier().open(&note).is_err());
        assert!(verifier.open("registry.example/audit\n12\n").is_err());
    }

    #[test]
    fn keys_whose_base64_holds_a_plus_sign_parse() {
        // About one key in three has a '+' in its base64; try enough to meet several.
        for _ in 0..32 {
            let signer = CheckpointSigner::generate("log").unwrap();
            let again = CheckpointSigner::parse(&signer.to_key_file()).unwrap();
            let verifier = CheckpointVerifier::parse(&again.verifier().to_key_file()).unwrap();
            assert!(verifier.open(&signer.sign(&checkpoint_of("log"))).is_ok());
        }
    }

    fn checkpoint_of(origin: &str) -> Checkpoint {
        Checkpoint {
            origin: origin.into(),
            ..checkpoint()
        }
    }

    #[test]
    fn malformed_keys_and_names_are_refused() {
        assert!(CheckpointSigner::generate("two words").is_err());
        assert!(CheckpointSigner::generate("a+b").is_err());
        let signer = CheckpointSigner::generate("log").unwrap();
        let public = signer.verifier().to_key_file();
        assert!(CheckpointSigner::parse(&public).is_err());
        assert!(CheckpointVerifier::parse(&signer.to_key_file()).is_err());
        let (name, rest) = public.split_once('+').unwrap();
        let tampered = format!("{name}+00000000{}", &rest[8..]);
        assert!(CheckpointVerifier::parse(&tampered).is_err());
    }
}
