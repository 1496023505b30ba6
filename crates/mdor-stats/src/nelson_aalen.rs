//! Nelson–Aalen cumulative hazard with Aalen's and the binomial (Greenwood-type) variance.
//!
//! **Estimator.** `H(t) = Σ_{t_j ≤ t} d_j / n_j` over distinct exit times with `n_j` at risk and
//! `d_j` events (Nelson 1972; Aalen 1978), with the same risk-set convention as
//! [`mod@crate::kaplan_meier`] (delayed entry, events before censorings at tied times).
//!
//! **Variance.** Two estimators are reported:
//! - `variance`: Aalen's Poisson-type `Σ d_j / n_j²` (R `survfit` `std.chaz`, Aalen 1978);
//! - `variance_binomial`: the Greenwood-type `Σ d_j (n_j − d_j) / n_j³` (Klein 1991; lifelines'
//!   `NelsonAalenFitter(nelson_aalen_smoothing=False)`), preferable with many ties.
//!
//! References: Nelson W. (1972) Technometrics 14:945–966; Aalen O. (1978) Ann. Statist. 6:701–726;
//! Klein J.P. (1991) Biometrics 47:233–239.

use crate::error::StatsError;
use crate::input::SurvivalData;
use crate::risk_table::risk_table;

/// The Nelson–Aalen cumulative hazard, one row per distinct exit time.
#[derive(Debug, Clone, PartialEq)]
pub struct NelsonAalen {
    /// Distinct exit times.
    pub time: Vec<f64>,
    /// Records at risk just before each time.
    pub n_risk: Vec<u64>,
    /// Events at each time.
    pub n_event: Vec<u64>,
    /// Cumulative hazard just after each time.
    pub cumulative_hazard: Vec<f64>,
    /// Aalen's variance `Σ d / n²`.
    pub variance: Vec<f64>,
    /// Greenwood-type variance `Σ d (n − d) / n³`.
    pub variance_binomial: Vec<f64>,
}

/// Estimates the Nelson–Aalen cumulative hazard of all records.
pub fn nelson_aalen(data: &SurvivalData) -> Result<NelsonAalen, StatsError> {
    let table = risk_table(data);
    let m = table.time.len();
    let mut cumulative_hazard = Vec::with_capacity(m);
    let mut variance = Vec::with_capacity(m);
    let mut variance_binomial = Vec::with_capacity(m);
    let (mut h, mut v, mut vb) = (0.0, 0.0, 0.0);
    for j in 0..m {
        let n = table.n_risk[j] as f64;
        let d = table.n_event[j] as f64;
        if d > 0.0 {
            h += d / n;
            v += d / (n * n);
            vb += d * (n - d) / (n * n * n);
        }
        cumulative_hazard.push(h);
        variance.push(v);
        variance_binomial.push(vb);
    }
    Ok(NelsonAalen {
        time: table.time,
        n_risk: table.n_risk,
        n_event: table.n_event,
        cumulative_hazard,
        variance,
        variance_binomial,
    })
}

#[cfg(test)]
// Tests may unwrap: a panic is the failure report.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hazard_increments_are_events_over_numbers_at_risk() {
        let data = SurvivalData::new(
            &[1.0, 2.0, 2.0, 3.0, 4.0],
            &[true, true, false, true, false],
        )
        .unwrap();
        let na = nelson_aalen(&data).unwrap();
        let expected = [
            1.0 / 5.0,
            1.0 / 5.0 + 1.0 / 4.0,
            1.0 / 5.0 + 1.0 / 4.0 + 1.0 / 2.0,
        ];
        for (j, h) in expected.iter().enumerate() {
            assert!((na.cumulative_hazard[j] - h).abs() < 1e-15);
        }
        assert!((na.variance[1] - (1.0 / 25.0 + 1.0 / 16.0)).abs() < 1e-15);
        assert!((na.variance_binomial[0] - 4.0 / 125.0).abs() < 1e-15);
    }
}
