//! The one error type of `mdor-stats`: every way a statistical routine can refuse its input or fail to converge.

use thiserror::Error;

/// Why a routine in this crate could not produce a result.
///
/// Non-failures (a small cohort, a survival curve that never reaches its median) are values in the
/// results, not errors.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum StatsError {
    /// The input holds no records at all.
    #[error("input is empty")]
    Empty,
    /// Two parallel input columns have different lengths.
    #[error("{field} has length {found}, expected {expected}")]
    LengthMismatch {
        /// The column whose length is wrong.
        field: &'static str,
        /// The length of the reference column.
        expected: usize,
        /// The length found.
        found: usize,
    },
    /// One value of an input column is out of its domain (not finite, negative, out of range).
    #[error("{field}[{index}] is invalid: {reason}")]
    InvalidValue {
        /// The column holding the value.
        field: &'static str,
        /// The position of the value in the column.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A scalar option (confidence level, horizon, tolerance) is out of its domain.
    #[error("option {option} is invalid: {reason}")]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The method needs more events than the data hold.
    #[error("too few events: needed {needed}, found {found}")]
    TooFewEvents {
        /// The minimum number of events the method needs.
        needed: usize,
        /// The number of events found.
        found: usize,
    },
    /// A risk set that the method needs is empty.
    #[error("empty risk set at time {time}")]
    EmptyRiskSet {
        /// The time at which no record was at risk.
        time: f64,
    },
    /// An iterative fit did not converge within its iteration limit.
    #[error("fit did not converge after {iterations} iterations")]
    NonConvergence {
        /// The number of iterations run.
        iterations: usize,
    },
    /// A covariate separates the outcome (monotone likelihood), so its estimate diverges to infinity.
    #[error("covariate {covariate} separates the outcome; its estimate diverges")]
    Separation {
        /// The zero-based column index of the offending covariate.
        covariate: usize,
    },
    /// A covariate's scale is so extreme that its coefficient or standard error, expressed in the
    /// covariate's own units, overflows the floating-point range.
    #[error("covariate {covariate} is on a scale where its estimate overflows; rescale it")]
    NumericalOverflow {
        /// The zero-based column index of the covariate.
        covariate: usize,
    },
    /// The information matrix is singular (collinear or constant covariates).
    #[error("information matrix is singular; covariate {covariate} is constant or collinear")]
    Singular {
        /// The zero-based column index at which the factorisation broke down.
        covariate: usize,
    },
}
