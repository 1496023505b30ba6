//! mdor-service's one integration-test binary; `datasets` checks the shipped registry
//! dataset definitions and the folder loader end to end, `audit_log` that verification
//! detects every kind of tampering with the audit on SQLite and PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed unwrap in a test is a test failure with a location"
)]

mod audit_log;
mod datasets;
