//! The one integration-test binary of `mdor-stats`: golden comparisons and property tests.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod competing_risks;
mod cox;
mod golden;
mod kaplan_meier;
mod logistic;
mod logrank;
mod r_survival;
mod rates;
mod robustness;
