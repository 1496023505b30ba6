//! mdor-service's one integration-test binary; `datasets` checks the shipped registry
//! dataset definitions and the folder loader end to end.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed unwrap in a test is a test failure with a location"
)]

mod datasets;
