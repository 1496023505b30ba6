//! The service's integration tests: surveillance use cases over a real store, run on in-memory
//! SQLite and, when `MDOR_TEST_POSTGRES_URL` is set, on a fresh PostgreSQL database per test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed unwrap in a test is a test failure with a location"
)]

mod support;
mod surveillance;
mod synthetic;
