//! The service context: the store and the clock every use case runs against.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

use mdor_store::{Backend, Counts, Store};

use crate::error::ServiceError;
use crate::submissions::SubmissionSettings;

/// Shared by all requests; cheap to clone.
#[derive(Clone)]
pub struct Ctx {
    pub(crate) store: Arc<dyn Store>,
    clock: fn() -> DateTime<Utc>,
    /// Analysis cohorts read recently, reused by survivorship reports for a short while.
    pub(crate) cohorts: Arc<crate::surveillance::CohortCache>,
    pub(crate) submissions: Arc<SubmissionSettings>,
}

impl Ctx {
    pub fn new(store: Arc<dyn Store>) -> Ctx {
        Ctx {
            store,
            clock: Utc::now,
            cohorts: Arc::default(),
            submissions: Arc::new(SubmissionSettings::default()),
        }
    }

    /// The same context with these bulk submission settings (spool directory, upload limit,
    /// chunk size, dataset definitions).
    pub fn with_submissions(mut self, settings: SubmissionSettings) -> Ctx {
        self.submissions = Arc::new(settings);
        self
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
}
