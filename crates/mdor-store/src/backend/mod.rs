//! Backend selection by URL scheme, and the bulk-load planning both backends share.

mod access_reviews;
mod accounts;
mod bulk;
mod data_quality;
mod keys;
mod named_index;
mod oidc;
mod postgres;
mod recall_cases;
mod references;
mod research;
mod sessions;
mod sqlite;
mod submissions;
mod timeline;
mod webauthn;

use std::sync::Arc;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use crate::Store;
use crate::error::StoreError;
use crate::field_crypto::KeyEncryptionKey;
use crate::types::{NewAuditEvent, OrganisationId, ProcedureRecord};

/// How to open a store.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Maximum pooled connections; SQLite readers share these, writes are serialised.
    pub max_connections: u32,
    /// Create the SQLite file when it does not exist.
    pub create_if_missing: bool,
    /// Rows per page when SQLite reads the large tables of an analysis extract. The default
    /// keeps a page to a few megabytes; tests set it small to cross page boundaries.
    pub extract_page_rows: u32,
    /// The key-encryption key that wraps the identifier data keys (`field_crypto`). Without
    /// it, every read or write of a patient's identifiers fails with `StoreError::Keys`.
    pub kek: Option<KeyEncryptionKey>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            max_connections: 8,
            create_if_missing: true,
            extract_page_rows: 100_000,
            kek: None,
        }
    }
}

/// Opens the store named by `url`: `sqlite://PATH`, `sqlite::memory:` or `postgres://…`.
/// Migrations are not applied here; call `Store::migrate` or `Store::check_migrations`.
pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        return Ok(Arc::new(SqliteStore::connect(url, options).await?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PostgresStore::connect(url, options).await?));
    }
    let scheme = url.split(':').next().unwrap_or_default();
    Err(StoreError::UnsupportedUrl(format!(
        "scheme '{scheme}' (use sqlite:// or postgres://)"
    )))
}

/// The audit entry for a procedure read and whether the record may be returned: only to its
/// own provider when `provider` is given.
pub(crate) fn procedure_read_audit(
    record: Option<&ProcedureRecord>,
    provider: Option<OrganisationId>,
    audit: &NewAuditEvent,
) -> (NewAuditEvent, bool) {
    let mut audit = audit.clone();
    audit.patient = record.map(|r| r.patient_id);
    let visible = match (record, provider) {
        (None, _) => {
            audit.outcome = "not_found";
            false
        }
        (Some(r), Some(provider)) if r.provider != provider => {
            audit.outcome = "denied";
            false
        }
        (Some(_), _) => true,
    };
    audit.record_count = u64::from(visible);
    (audit, visible)
}
