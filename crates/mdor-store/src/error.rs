//! Storage errors in the store's own vocabulary; constraint violations become `Conflict`.

/// A storage failure. Handlers never see SQL errors: the service maps these to its own.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// A uniqueness or consistency constraint refused the write.
    #[error("conflict on {constraint}")]
    Conflict { constraint: String },
    /// The same NHS number was submitted with a different date of birth.
    #[error("patient with this nhs_number has a different date_of_birth")]
    PatientMismatch,
    #[error("the database schema is behind this binary; run `mdor migrate`")]
    MigrationsPending,
    #[error("unsupported database url: {0}")]
    UnsupportedUrl(String),
    #[error("stored value could not be read: {0}")]
    Corrupt(String),
    #[error("database error")]
    Backend(#[source] sqlx::Error),
    /// The SQLite group-commit writer is gone (the runtime is shutting down).
    #[error("the database writer has stopped")]
    WriterStopped,
    #[error("migration error")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &error
            && (db.is_unique_violation()
                || db.is_foreign_key_violation()
                || db.is_check_violation())
        {
            let constraint = db
                .constraint()
                .map(str::to_string)
                .unwrap_or_else(|| db.message().to_string());
            return StoreError::Conflict { constraint };
        }
        StoreError::Backend(error)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(error)
    }
}
