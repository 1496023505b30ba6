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
    /// The database has migrations this binary does not know: it was migrated by a newer
    /// release, and running an older binary against it could misread its tables.
    #[error(
        "the database schema is newer than this binary (migration {0} is unknown); run the newer release"
    )]
    SchemaNewer(i64),
    #[error("unsupported database url: {0}")]
    UnsupportedUrl(String),
    #[error("stored value could not be read: {0}")]
    Corrupt(String),
    /// The identifier keys are missing, wrong or do not open a stored data key.
    #[error("identifier keys: {0}")]
    Keys(String),
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

/// Reads the outcome of querying `_sqlx_migrations`: a missing table means nothing was ever
/// migrated; any other failure (the server is down, a password is wrong) is reported as
/// itself, not as pending migrations, so that the operator is not told to migrate.
pub(crate) fn check_applied(
    applied: Result<Vec<i64>, sqlx::Error>,
    expected: &[i64],
) -> Result<(), StoreError> {
    let applied = match applied {
        Ok(applied) => applied,
        Err(sqlx::Error::Database(db))
            if db.code().as_deref() == Some("42P01") || db.message().contains("no such table") =>
        {
            return Err(StoreError::MigrationsPending);
        }
        Err(other) => return Err(StoreError::Backend(other)),
    };
    if let Some(unknown) = applied.iter().find(|v| !expected.contains(v)) {
        return Err(StoreError::SchemaNewer(*unknown));
    }
    if applied != expected {
        return Err(StoreError::MigrationsPending);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_missing_or_behind_schema_asks_for_migrate() {
        assert!(check_applied(Ok(vec![1, 2, 3]), &[1, 2, 3]).is_ok());
        assert!(matches!(
            check_applied(Ok(vec![1]), &[1, 2, 3]),
            Err(StoreError::MigrationsPending)
        ));
        assert!(matches!(
            check_applied(Ok(vec![1, 2, 3, 4]), &[1, 2, 3]),
            Err(StoreError::SchemaNewer(4))
        ));
        // A server that cannot be reached is reported as such, not as pending migrations.
        assert!(matches!(
            check_applied(Err(sqlx::Error::PoolTimedOut), &[1]),
            Err(StoreError::Backend(_))
        ));
    }
}
