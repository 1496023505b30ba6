//! The service context: the store and the clock every use case runs against.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

use mdor_store::{Backend, Counts, RequestId, Store};

use crate::accounts::AccountKey;
use crate::error::ServiceError;
use crate::submissions::SubmissionSettings;
use crate::webauthn::Relying;

/// Shared by all requests; cheap to clone.
#[derive(Clone)]
pub struct Ctx {
    pub(crate) store: Arc<dyn Store>,
    clock: fn() -> DateTime<Utc>,
    /// Analysis cohorts read recently, reused by survivorship reports for a short while.
    pub(crate) cohorts: Arc<crate::surveillance::CohortCache>,
    pub(crate) submissions: Arc<SubmissionSettings>,
    /// Seals TOTP secrets; accounts cannot be created or signed in to without it.
    account_key: Option<Arc<AccountKey>>,
    /// The WebAuthn relying party; passkeys and security keys need it.
    webauthn: Option<Arc<Relying>>,
    /// Raised when a bulk submission has stored or corrected records; the server's
    /// surveillance-after-ingest task waits on it. Notifications while a run is under way
    /// coalesce into one more run.
    pub(crate) ingested: Arc<tokio::sync::Notify>,
    /// The identity provider for OpenID Connect sign-in, when configured (`oidc`).
    pub(crate) oidc: Option<Arc<crate::oidc::OidcProvider>>,
    /// The HTTP request this context serves (`for_request`): every audit entry written
    /// through it names the request. `None` for the application's own context, the command
    /// line and background tasks.
    request: Option<RequestId>,
}

impl Ctx {
    pub fn new(store: Arc<dyn Store>) -> Ctx {
        Ctx {
            store,
            clock: Utc::now,
            cohorts: Arc::default(),
            submissions: Arc::new(SubmissionSettings::default()),
            account_key: None,
            webauthn: None,
            ingested: Arc::default(),
            oidc: None,
            request: None,
        }
    }

    /// This context for one HTTP request: the audit entries its use cases write name
    /// `request`. The web layer makes one per request; a clone costs a few reference counts.
    pub fn for_request(&self, request: RequestId) -> Ctx {
        Ctx {
            request: Some(request),
            ..self.clone()
        }
    }

    /// The request this context serves, for the audit entries it writes.
    pub(crate) fn request(&self) -> Option<RequestId> {
        self.request.clone()
    }

    /// The same context with these bulk submission settings (spool directory, upload limit,
    /// chunk size, dataset definitions).
    pub fn with_submissions(mut self, settings: SubmissionSettings) -> Ctx {
        self.submissions = Arc::new(settings);
        self
    }

    /// The same context with the key that seals accounts' TOTP secrets.
    pub fn with_account_key(mut self, key: AccountKey) -> Ctx {
        self.account_key = Some(Arc::new(key));
        self
    }

    pub(crate) fn account_key(&self) -> Result<Arc<AccountKey>, ServiceError> {
        self.account_key.clone().ok_or_else(|| {
            ServiceError::Input(
                "accounts need a key: set accounts.key_file in the configuration".into(),
            )
        })
    }

    /// The same context with the WebAuthn relying party.
    pub fn with_webauthn(mut self, relying: Relying) -> Ctx {
        self.webauthn = Some(Arc::new(relying));
        self
    }

    pub(crate) fn webauthn(&self) -> Result<Arc<Relying>, ServiceError> {
        self.webauthn.clone().ok_or_else(|| {
            ServiceError::Input(
                "passkeys need the registry's origin: set webauthn.relying_party_id and webauthn.origin in the configuration".into(),
            )
        })
    }

    pub fn submission_settings(&self) -> &SubmissionSettings {
        &self.submissions
    }

    /// A context whose clock is fixed, for tests of date rules.
    pub fn with_clock(store: Arc<dyn Store>, clock: fn() -> DateTime<Utc>) -> Ctx {
        Ctx {
            store,
            clock,
            cohorts: Arc::default(),
            submissions: Arc::new(SubmissionSettings::default()),
            account_key: None,
            webauthn: None,
            ingested: Arc::default(),
            oidc: None,
            request: None,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    pub fn today(&self) -> NaiveDate {
        self.now().date_naive()
    }

    pub fn backend(&self) -> Backend {
        self.store.backend()
    }

    /// Row counts, for start-up messages and health checks.
    pub async fn counts(&self) -> Result<Counts, ServiceError> {
        Ok(self.store.counts().await?)
    }

    /// Fails unless the schema is current; the server refuses to start otherwise.
    pub async fn check_ready(&self) -> Result<(), ServiceError> {
        Ok(self.store.check_migrations().await?)
    }

    pub async fn migrate(&self) -> Result<(), ServiceError> {
        Ok(self.store.migrate().await?)
    }

    /// Unwraps the identifier keys: the server checks them at start, so a missing or wrong
    /// key-encryption key stops it there rather than at the first patient read.
    pub async fn key_status(&self) -> Result<mdor_store::KeyStatus, ServiceError> {
        Ok(self.store.key_status().await?)
    }

    /// `mdor keys rotate`; see `Store::rotate_keys`.
    pub async fn rotate_keys(
        &self,
        new_kek: Option<mdor_store::KeyEncryptionKey>,
    ) -> Result<mdor_store::KeyRotation, ServiceError> {
        Ok(self.store.rotate_keys(new_kek).await?)
    }
}
