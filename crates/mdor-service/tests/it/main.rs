//! mdor-service's one integration-test binary: `datasets` checks the shipped registry dataset
//! definitions and the folder loader end to end; the surveillance use cases run over a real
//! store; `audit_log` checks that verification detects every kind of tampering with the audit;
//! all on in-memory SQLite and, when `MDOR_TEST_POSTGRES_URL` is set, on a fresh PostgreSQL
//! database per test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed unwrap in a test is a test failure with a location"
)]

mod accounts;
mod audit_log;
mod data_quality;
mod datasets;
mod feedback;
mod indication;
mod sessions;
mod support;
mod surveillance;
mod synthetic;
mod webauthn;
