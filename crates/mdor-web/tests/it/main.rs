//! The web API's integration tests: one binary, the real router on a fresh store, requests
//! sent with `Router::oneshot`.
//!
//! Each test runs on in-memory SQLite, and again on PostgreSQL when `MDOR_TEST_POSTGRES_URL`
//! is set (a fresh database per test).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod accounts;
mod api;
mod audit;
mod data_quality;
mod identifier_free;
mod log_canaries;
mod oidc;
mod oidc_provider;
mod policy_matrix;
mod recall_cases;
mod refusals;
mod reports;
mod request_ids;
mod research;
mod route_policies;
mod sessions;
mod submissions;
mod support;
mod timeline;
