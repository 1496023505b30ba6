//! Logistic regression by iteratively reweighted least squares, for per-patient expected risks
//! (the `p_t` of the risk-adjusted CUSUM and the expected counts `E` of O/E funnels).
//!
//! **Model.** `logit P(y_i = 1) = β₀ + x_iᵀβ`. **Fit.** Newton–Raphson, which for the canonical link
//! is IRLS: `β ← β + (XᵀWX)⁻¹ Xᵀ(y − μ)`, `W = diag(μ(1 − μ))`, from `β = 0`; a step that lowers
//! the log-likelihood is halved (up to 30 times). Convergence when the relative change of the
//! log-likelihood is below `tolerance` and no coefficient moves by more than `√tolerance`.
//! **Variance.** `(XᵀWX)⁻¹` at the estimate (model-based). Covariates are centred and scaled to unit
//! standard deviation for the fit; coefficients and covariance are converted back exactly.
//!
//! **Failures.** Outcomes that are all 0 or all 1 give [`StatsError::TooFewEvents`]; a covariate
//! whose coefficient diverges (`|β_k| sd(x_k) > 30`, i.e. complete or quasi-complete separation)
//! gives [`StatsError::Separation`]; a constant or collinear covariate gives
//! [`StatsError::Singular`]; running out of iterations gives [`StatsError::NonConvergence`]; an
//! estimate that overflows in the covariate's own units gives [`StatsError::NumericalOverflow`].
//!
//! References: McCullagh P., Nelder J.A. (1989) *Generalized Linear Models*, 2nd ed., §4.4;
//! Albert A., Anderson J.A. (1984) Biometrika 71:1–10 (separation).

use crate::error::StatsError;
use crate::input::check_length;
use crate::linalg::{Standardised, cholesky, cholesky_inverse, cholesky_solve, standardise};

/// A fitted logistic model; index 0 of each vector is the intercept, index `k + 1` covariate `k`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticFit {
    /// Coefficients, intercept first.
    pub coefficients: Vec<f64>,
    /// Model-based standard errors.
    pub std_errors: Vec<f64>,
    /// Log-likelihood at the estimate.
    pub log_likelihood: f64,
    /// Iterations used.
    pub iterations: usize,
}

/// Options of [`logistic_regression`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogisticOptions {
    /// Maximum iterations.
    pub max_iterations: usize,
    /// Relative log-likelihood change at convergence.
    pub tolerance: f64,
}

impl Default for LogisticOptions {
    fn default() -> Self {
        Self {
            max_iterations: 50,
            tolerance: 1e-12,
        }
    }
}

impl LogisticFit {
    /// The predicted probability for one row of covariates (without the intercept column); `None`
    /// if the row has the wrong length or non-finite values.
    pub fn predict(&self, row: &[f64]) -> Option<f64> {
        if row.len() + 1 != self.coefficients.len() || row.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let eta = self.coefficients[0]
            + row
                .iter()
                .zip(&self.coefficients[1..])
                .map(|(x, b)| x * b)
                .sum::<f64>();
        Some(logistic(eta))
    }
}

/// Fits a logistic regression with intercept; `covariates` is row-major with `n_covariates`
/// columns (zero columns fits the intercept only).
pub fn logistic_regression(
    outcomes: &[bool],
    covariates: &[f64],
    n_covariates: usize,
    options: LogisticOptions,
) -> Result<LogisticFit, StatsError> {
    let n = outcomes.len();
    if n == 0 {
        return Err(StatsError::Empty);
    }
    check_length(
        "covariates",
        n.saturating_mul(n_covariates),
        covariates.len(),
    )?;
    for (index, value) in covariates.iter().enumerate() {
        if !value.is_finite() {
            return Err(StatsError::InvalidValue {
                field: "covariates",
                index,
                reason: "must be finite",
            });
        }
    }
    if !(options.tolerance > 0.0 && options.tolerance < 1.0) {
        return Err(StatsError::InvalidOption {
            option: "tolerance",
            reason: "must lie strictly between 0 and 1",
        });
    }
    let events = outcomes.iter().filter(|&&y| y).count();
    if events == 0 || events == n {
        return Err(StatsError::TooFewEvents {
            needed: 1,
            found: events.min(n - events),
        });
    }
    let p = n_covariates + 1;
    // Standardised design: an intercept column of ones, then covariates with mean 0 and SD 1.
    let standardised = if n_covariates > 0 {
        standardise(covariates, n_covariates)?
    } else {
        Standardised {
            x: Vec::new(),
            mean: Vec::new(),
            sd: Vec::new(),
        }
    };
    let design = |i: usize, k: usize| -> f64 {
        if k == 0 {
            1.0
        } else {
            standardised.x[i * n_covariates + k - 1]
        }
    };
    let evaluate = |beta: &[f64], score: &mut [f64], information: &mut [f64]| -> f64 {
        score.iter_mut().for_each(|v| *v = 0.0);
        information.iter_mut().for_each(|v| *v = 0.0);
        let mut log_likelihood = 0.0;
        for (i, &y) in outcomes.iter().enumerate() {
            let eta: f64 = (0..p).map(|k| design(i, k) * beta[k]).sum();
            let mu = logistic(eta);
            // log(1 + e^η) computed stably.
            let softplus = eta.max(0.0) + (-eta.abs()).exp().ln_1p();
            log_likelihood += if y { eta - softplus } else { -softplus };
            let residual = if y { 1.0 - mu } else { -mu };
            let w = mu * (1.0 - mu);
            for a in 0..p {
                let xa = design(i, a);
                score[a] += xa * residual;
                for b in 0..=a {
                    information[a * p + b] += w * xa * design(i, b);
                }
            }
        }
        for a in 0..p {
            for b in 0..a {
                information[b * p + a] = information[a * p + b];
            }
        }
        log_likelihood
    };

    let mut beta = vec![0.0; p];
    let mut score = vec![0.0; p];
    let mut information = vec![0.0; p * p];
    let mut log_likelihood = evaluate(&beta, &mut score, &mut information);
    let mut factor = cholesky(&information, p).map_err(|error| match error {
        StatsError::Singular { covariate } => StatsError::Singular {
            covariate: covariate.saturating_sub(1),
        },
        other => other,
    })?;
    let mut candidate_score = vec![0.0; p];
    let mut candidate_information = vec![0.0; p * p];
    let mut iterations = 0;
    loop {
        if iterations >= options.max_iterations {
            // A large coefficient that has not settled is the slow form of divergence.
            let largest = (1..p)
                .map(|k| (k - 1, beta[k].abs()))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((k, size)) = largest
                && size > 10.0
            {
                return Err(StatsError::Separation { covariate: k });
            }
            return Err(StatsError::NonConvergence { iterations });
        }
        iterations += 1;
        let step = cholesky_solve(&factor, p, &score);
        let mut candidate: Vec<f64> = beta.iter().zip(&step).map(|(b, s)| b + s).collect();
        let mut next = evaluate(&candidate, &mut candidate_score, &mut candidate_information);
        let mut halvings = 0;
        while !(next.is_finite() && next >= log_likelihood - 1e-12 * log_likelihood.abs()) {
            halvings += 1;
            if halvings > 30 {
                return Err(StatsError::NonConvergence { iterations });
            }
            for k in 0..p {
                candidate[k] = 0.5 * (candidate[k] + beta[k]);
            }
            next = evaluate(&candidate, &mut candidate_score, &mut candidate_information);
        }
        let largest_step = beta
            .iter()
            .zip(&candidate)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        let change = (next - log_likelihood).abs();
        beta = candidate;
        log_likelihood = next;
        std::mem::swap(&mut score, &mut candidate_score);
        std::mem::swap(&mut information, &mut candidate_information);
        if let Some(k) = (1..p).find(|&k| beta[k].abs() > 30.0) {
            return Err(StatsError::Separation { covariate: k - 1 });
        }
        factor = match cholesky(&information, p) {
            Ok(factor) => factor,
            Err(StatsError::Singular { covariate }) => {
                return Err(StatsError::Separation {
                    covariate: covariate.saturating_sub(1),
                });
            }
            Err(other) => return Err(other),
        };
        if change <= options.tolerance * log_likelihood.abs().max(1.0)
            && largest_step <= options.tolerance.sqrt()
        {
            break;
        }
    }
    // Back to the covariates' units: β = A β' with A₀ = (1, −mean_k/sd_k), A_k = e_k / sd_k, and
    // Cov β = A Cov β' Aᵀ.
    let standardised_covariance = cholesky_inverse(&factor, p);
    let transform = |row: usize, column: usize| -> f64 {
        match (row, column) {
            (0, 0) => 1.0,
            (0, c) => -standardised.mean[c - 1] / standardised.sd[c - 1],
            (r, c) if r == c => 1.0 / standardised.sd[r - 1],
            _ => 0.0,
        }
    };
    let mut coefficients = vec![0.0; p];
    let mut std_errors = vec![0.0; p];
    for r in 0..p {
        coefficients[r] = (0..p).map(|c| transform(r, c) * beta[c]).sum();
        let mut variance = 0.0;
        for a in 0..p {
            for b in 0..p {
                variance += transform(r, a) * standardised_covariance[a * p + b] * transform(r, b);
            }
        }
        std_errors[r] = variance.max(0.0).sqrt();
    }
    if let Some(k) = (0..p).find(|&k| !(coefficients[k].is_finite() && std_errors[k].is_finite())) {
        return Err(StatsError::NumericalOverflow {
            covariate: k.saturating_sub(1),
        });
    }
    Ok(LogisticFit {
        coefficients,
        std_errors,
        log_likelihood,
        iterations,
    })
}

fn logistic(eta: f64) -> f64 {
    if eta >= 0.0 {
        1.0 / (1.0 + (-eta).exp())
    } else {
        let e = eta.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
// Tests may unwrap: a panic is the failure report.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_covariate_reproduces_the_log_odds_ratio_of_the_two_by_two_table() {
        // x = 0: 3 events of 10; x = 1: 6 events of 10.
        let mut y = Vec::new();
        let mut x = Vec::new();
        for (group, events) in [(0.0, 3), (1.0, 6)] {
            for i in 0..10 {
                y.push(i < events);
                x.push(group);
            }
        }
        let fit = logistic_regression(&y, &x, 1, LogisticOptions::default()).unwrap();
        let log_or = ((6.0 / 4.0) / (3.0 / 7.0_f64)).ln();
        assert!((fit.coefficients[0] - (3.0_f64 / 7.0).ln()).abs() < 1e-10);
        assert!((fit.coefficients[1] - log_or).abs() < 1e-10);
        // Woolf: se of the log odds ratio = √(1/3 + 1/7 + 1/6 + 1/4).
        let se = (1.0 / 3.0 + 1.0 / 7.0 + 1.0 / 6.0 + 1.0 / 4.0_f64).sqrt();
        assert!((fit.std_errors[1] - se).abs() < 1e-9);
        assert!((fit.predict(&[1.0]).unwrap() - 0.6).abs() < 1e-10);
    }

    #[test]
    fn complete_separation_is_an_error_not_an_infinite_coefficient() {
        let y = [false, false, false, true, true, true];
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(
            logistic_regression(&y, &x, 1, LogisticOptions::default()),
            Err(StatsError::Separation { covariate: 0 })
        );
    }

    #[test]
    fn outcomes_without_events_are_rejected() {
        assert!(matches!(
            logistic_regression(&[false, false], &[], 0, LogisticOptions::default()),
            Err(StatsError::TooFewEvents { .. })
        ));
    }
}
