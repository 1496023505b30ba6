//! Integration tests of mdor-synth: the written files honour the loader contract in
//! docs/synthetic-data.md, generation is deterministic, and the injected signals are there.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed unwrap in a test is a test failure with a location"
)]

mod files;
mod signals;
mod support;
