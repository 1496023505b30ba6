//! Log-rank test for `k` groups, optionally stratified, with delayed entry.
//!
//! **Statistic.** At each distinct event time `t_j` (within a stratum) with `n_j` at risk, `d_j`
//! events, and `n_gj`, `d_gj` in group `g`: `U_g = Σ_j (d_gj − n_gj d_j / n_j)` and
//! `V_gh = Σ_j d_j (n_j − d_j) / (n_j − 1) · (n_gj / n_j) (δ_gh − n_hj / n_j)` (hypergeometric
//! variance, exact with ties; terms with `n_j = 1` vanish). Stratified: `U` and `V` are summed over
//! strata. `X² = Uᵀ V⁻¹ U` over the first `k − 1` groups, referred to χ² with `k − 1` degrees of
//! freedom (Mantel 1966; Peto & Peto 1972; Kalbfleisch & Prentice 2002, §7.2). This is R's
//! `survdiff` and statsmodels' `survdiff` with `weight_type=None`.
//!
//! The statistic does not depend on which group is dropped or on the group labels.
//!
//! References: Mantel N. (1966) Cancer Chemother. Rep. 50:163–170; Peto R., Peto J. (1972) JRSS A
//! 135:185–207.

use crate::error::StatsError;
use crate::input::{SurvivalData, check_length, group_records};
use crate::linalg::quadratic_form_inverse;
use crate::special::chi_square_sf;

/// The result of a log-rank test.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRankTest {
    /// Group labels in increasing order; the vectors below follow this order.
    pub groups: Vec<u32>,
    /// Observed events per group.
    pub observed: Vec<f64>,
    /// Expected events per group under the null hypothesis.
    pub expected: Vec<f64>,
    /// Covariance matrix of `observed − expected`, row-major `k × k`.
    pub variance: Vec<f64>,
    /// The chi-square statistic.
    pub chi_square: f64,
    /// Degrees of freedom, `k − 1`.
    pub degrees_of_freedom: usize,
    /// Upper-tail chi-square p-value.
    pub p_value: f64,
}

/// Tests equality of the survival curves of the groups labelled by `groups`.
///
/// With `strata`, the test is stratified: comparisons are made within strata and summed.
pub fn logrank_test(
    data: &SurvivalData,
    groups: &[u32],
    strata: Option<&[u32]>,
) -> Result<LogRankTest, StatsError> {
    check_length("groups", data.len(), groups.len())?;
    if let Some(strata) = strata {
        check_length("strata", data.len(), strata.len())?;
    }
    let (labels, _, _) = group_records(groups);
    let k = labels.len();
    if k < 2 {
        return Err(StatsError::InvalidOption {
            option: "groups",
            reason: "at least two groups are needed",
        });
    }
    let n_events = data.n_events();
    if n_events == 0 {
        return Err(StatsError::TooFewEvents {
            needed: 1,
            found: 0,
        });
    }
    // Dense group index per record.
    let group_index: Vec<usize> = groups
        .iter()
        .map(|g| labels.partition_point(|l| l < g))
        .collect();
    let all_strata = vec![0u32; data.len()];
    let (_, stratum_ranges, stratum_order) = group_records(strata.unwrap_or(&all_strata));

    let mut observed = vec![0.0; k];
    let mut expected = vec![0.0; k];
    let mut variance = vec![0.0; k * k];
    let mut at_risk = vec![0.0; k];
    let mut events = vec![0.0; k];
    let mut exits: Vec<(f64, bool, usize)> = Vec::new();
    let mut entries: Vec<(f64, usize)> = Vec::new();
    let time = data.time();
    let event = data.event();
    for range in stratum_ranges {
        let members = &stratum_order[range];
        exits.clear();
        exits.extend(members.iter().map(|&i| (time[i], event[i], group_index[i])));
        exits.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        entries.clear();
        at_risk.iter_mut().for_each(|x| *x = 0.0);
        match data.entry() {
            Some(entry) => {
                entries.extend(members.iter().map(|&i| (entry[i], group_index[i])));
                entries.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
            }
            None => {
                for &(_, _, g) in &exits {
                    at_risk[g] += 1.0;
                }
            }
        }
        let mut next_entry = 0;
        let mut i = 0;
        while i < exits.len() {
            let t = exits[i].0;
            while next_entry < entries.len() && entries[next_entry].0 < t {
                at_risk[entries[next_entry].1] += 1.0;
                next_entry += 1;
            }
            let start = i;
            events.iter_mut().for_each(|x| *x = 0.0);
            while i < exits.len() && exits[i].0 == t {
                if exits[i].1 {
                    events[exits[i].2] += 1.0;
                }
                i += 1;
            }
            let d: f64 = events.iter().sum();
            if d > 0.0 {
                let n: f64 = at_risk.iter().sum();
                for g in 0..k {
                    observed[g] += events[g];
                    expected[g] += at_risk[g] * d / n;
                }
                if n > 1.0 {
                    let factor = d * (n - d) / (n - 1.0);
                    for g in 0..k {
                        let pg = at_risk[g] / n;
                        for h in 0..k {
                            let delta = if g == h { 1.0 } else { 0.0 };
                            variance[g * k + h] += factor * pg * (delta - at_risk[h] / n);
                        }
                    }
                }
            }
            for &(_, _, g) in &exits[start..i] {
                at_risk[g] -= 1.0;
            }
        }
    }

    let reduced = k - 1;
    let u: Vec<f64> = (0..reduced).map(|g| observed[g] - expected[g]).collect();
    let mut v = vec![0.0; reduced * reduced];
    for g in 0..reduced {
        for h in 0..reduced {
            v[g * reduced + h] = variance[g * k + h];
        }
    }
    let chi_square = quadratic_form_inverse(&v, reduced, &u)?;
    Ok(LogRankTest {
        groups: labels,
        observed,
        expected,
        variance,
        chi_square,
        degrees_of_freedom: reduced,
        p_value: chi_square_sf(chi_square, reduced as f64),
    })
}

#[cfg(test)]
// Tests may unwrap: a panic is the failure report.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The Freireich data with 6-MP as group 0 and placebo as group 1.
    fn freireich() -> (SurvivalData, Vec<u32>) {
        let (data, placebo) = crate::test_data::freireich();
        (data, placebo.into_iter().map(u32::from).collect())
    }

    #[test]
    fn freireich_log_rank_statistic_is_the_textbook_16_79() {
        let (data, groups) = freireich();
        let test = logrank_test(&data, &groups, None).unwrap();
        // Kalbfleisch & Prentice; R survdiff: observed 9 and 21, expected 19.25 and 10.75, chisq 16.8.
        assert_eq!(test.observed, vec![9.0, 21.0]);
        assert!((test.expected[0] - 19.25).abs() < 0.005);
        assert!((test.chi_square - 16.79).abs() < 0.005);
        assert!((test.p_value - 4.17e-5).abs() < 1e-6);
        assert_eq!(test.degrees_of_freedom, 1);
    }

    #[test]
    fn a_single_group_is_rejected() {
        let (data, _) = freireich();
        assert!(matches!(
            logrank_test(&data, &[3; 42], None),
            Err(StatsError::InvalidOption {
                option: "groups",
                ..
            })
        ));
    }

    #[test]
    fn a_stratum_per_group_leaves_nothing_to_compare() {
        let (data, groups) = freireich();
        assert!(matches!(
            logrank_test(&data, &groups, Some(&groups)),
            Err(StatsError::Singular { .. })
        ));
    }
}
