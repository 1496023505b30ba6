//! Kaplan–Meier survival with Greenwood variance, pointwise confidence intervals, median with
//! confidence interval, restricted mean, and cumulative revision `1 − S(t)`.
//!
//! **Estimator.** At the distinct exit times `t_j` with `n_j` records at risk and `d_j` events,
//! `S(t) = ∏_{t_j ≤ t} (1 − d_j / n_j)` (Kaplan & Meier 1958). Delayed entry is handled through the
//! risk set `n_j = #{i : entry_i < t_j ≤ time_i}`; at tied times events precede censorings.
//!
//! **Variance.** Greenwood's formula on the log scale,
//! `σ²(t) = Var(log S(t)) = Σ_{t_j ≤ t} d_j / (n_j (n_j − d_j))`; `std_err` is `σ(t)` (the same
//! quantity R's `survfit` reports as `std.err`), and `Var S(t) = S(t)² σ²(t)`.
//! Once `S` reaches zero `σ` is infinite and every interval collapses to `[0, 0]`; before the first
//! event `σ = 0` and the interval is `[1, 1]` (R reports both as missing).
//!
//! **Confidence intervals** at level `1 − α`, `z = Φ⁻¹(1 − α/2)` (Kalbfleisch & Prentice 2002, §1.4):
//! - plain: `S ± z S σ`, clamped to `[0, 1]`;
//! - log (the default, as R's `survfit`): `S exp(±z σ)`, upper clamped to 1;
//! - log-log: `exp(−exp(log(−log S) ∓ z σ / log S))` (lifelines' "exponential Greenwood").
//!
//! **Quantiles and median** follow R's `quantile.survfit`: the estimate is the first time at which
//! the curve falls to `1 − p` or below; where the curve equals `1 − p` exactly on an interval the
//! midpoint of that interval is taken. The confidence limits are the same quantile read off the
//! upper and lower confidence curves, which is the Brookmeyer & Crowley (1982) test-inversion
//! interval for the chosen transform.
//!
//! **Restricted mean** up to `τ`: `μ(τ) = ∫₀^τ S(u) du` with variance
//! `Σ_{t_j ≤ τ} A_j² d_j / (n_j (n_j − d_j))`, `A_j = ∫_{t_j}^τ S(u) du` (Klein & Moeschberger 2003,
//! §4.5; R's `print.survfit(rmean = τ)` without the `n/(n − 1)` correction). Beyond the last exit
//! time the curve is carried forward flat.
//!
//! References: Kaplan E.L., Meier P. (1958) JASA 53:457–481; Greenwood M. (1926) Reports on Public
//! Health 33; Brookmeyer R., Crowley J. (1982) Biometrics 38:29–41; Kalbfleisch J.D., Prentice R.L.
//! (2002) *The Statistical Analysis of Failure Time Data*, 2nd ed.

use crate::error::StatsError;
use crate::input::{SurvivalData, check_confidence_level, check_length};
use crate::risk_table::{GroupedKeys, RiskTable, risk_table};
use crate::special::normal_quantile;

/// How pointwise confidence intervals of a survival curve are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CiTransform {
    /// Symmetric on the survival scale.
    Plain,
    /// Symmetric on the log-survival scale (R's `survfit` default).
    #[default]
    Log,
    /// Symmetric on the log(−log survival) scale.
    LogLog,
}

/// Options of [`kaplan_meier`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KaplanMeierOptions {
    /// Confidence level of the pointwise intervals, strictly between 0 and 1.
    pub confidence_level: f64,
    /// Scale on which intervals are symmetric.
    pub transform: CiTransform,
}

impl Default for KaplanMeierOptions {
    fn default() -> Self {
        Self {
            confidence_level: 0.95,
            transform: CiTransform::Log,
        }
    }
}

/// A Kaplan–Meier curve: one row per distinct exit time (events or censorings), in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct KaplanMeier {
    /// Distinct exit times.
    pub time: Vec<f64>,
    /// Records at risk just before each time.
    pub n_risk: Vec<u64>,
    /// Events at each time.
    pub n_event: Vec<u64>,
    /// Censorings at each time.
    pub n_censor: Vec<u64>,
    /// Survival `S(t)` just after each time.
    pub survival: Vec<f64>,
    /// Greenwood standard error of `log S(t)` (infinite once `S` is zero).
    pub std_err: Vec<f64>,
    /// Lower confidence limit of `S(t)`.
    pub lower: Vec<f64>,
    /// Upper confidence limit of `S(t)`.
    pub upper: Vec<f64>,
    /// The options the curve was built with.
    pub options: KaplanMeierOptions,
}

/// A Kaplan–Meier curve for one group of records.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupCurve {
    /// The group's label.
    pub group: u32,
    /// The group's curve.
    pub curve: KaplanMeier,
}

/// The survival estimate and its interval at one requested time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SurvivalPoint {
    /// The requested time.
    pub time: f64,
    /// Estimate at that time.
    pub estimate: f64,
    /// Lower confidence limit.
    pub lower: f64,
    /// Upper confidence limit.
    pub upper: f64,
    /// Records at risk just after that time (R's `summary.survfit` `n.risk` is just before the next
    /// event; this is the number still under observation at the requested time).
    pub n_risk: u64,
}

/// A survival quantile with its confidence interval; `None` where the curve never gets that low.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantileEstimate {
    /// The probability `p`: the time by which a fraction `p` of records have failed.
    pub probability: f64,
    /// Point estimate.
    pub estimate: Option<f64>,
    /// Lower confidence limit.
    pub lower: Option<f64>,
    /// Upper confidence limit.
    pub upper: Option<f64>,
}

/// The restricted mean survival time up to a horizon.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestrictedMean {
    /// The horizon `τ`.
    pub horizon: f64,
    /// `∫₀^τ S(u) du`.
    pub estimate: f64,
    /// Its standard error.
    pub std_error: f64,
}

/// Estimates the Kaplan–Meier curve of all records.
pub fn kaplan_meier(
    data: &SurvivalData,
    options: KaplanMeierOptions,
) -> Result<KaplanMeier, StatsError> {
    check_confidence_level(options.confidence_level)?;
    Ok(curve_from_table(&risk_table(data), options))
}

/// Estimates one Kaplan–Meier curve per group label, sorting and counting each group once.
///
/// Groups are returned in increasing label order; labels need not be contiguous.
pub fn kaplan_meier_by_group(
    data: &SurvivalData,
    groups: &[u32],
    options: KaplanMeierOptions,
) -> Result<Vec<GroupCurve>, StatsError> {
    check_confidence_level(options.confidence_level)?;
    check_length("groups", data.len(), groups.len())?;
    let mut keys = GroupedKeys::by_group(data, groups);
    let mut table = RiskTable::default();
    let mut curves = Vec::with_capacity(keys.labels.len());
    for k in 0..keys.labels.len() {
        keys.fill(k, &mut table);
        curves.push(GroupCurve {
            group: keys.labels[k],
            curve: curve_from_table(&table, options),
        });
    }
    Ok(curves)
}

impl KaplanMeier {
    /// The estimate at time `t` (the step value at the last exit time ≤ `t`), or `None` when `t` is
    /// negative, not finite, or beyond the last exit time.
    pub fn survival_at(&self, t: f64) -> Option<SurvivalPoint> {
        let last = *self.time.last()?;
        if !t.is_finite() || t < 0.0 || t > last {
            return None;
        }
        let after = self.time.partition_point(|&x| x <= t);
        let n_risk = if after < self.time.len() {
            self.n_risk[after]
        } else {
            0
        };
        if after == 0 {
            return Some(SurvivalPoint {
                time: t,
                estimate: 1.0,
                lower: 1.0,
                upper: 1.0,
                n_risk,
            });
        }
        let j = after - 1;
        Some(SurvivalPoint {
            time: t,
            estimate: self.survival[j],
            lower: self.lower[j],
            upper: self.upper[j],
            n_risk,
        })
    }

    /// Cumulative revision `1 − S(t)` with its interval at each requested time (`None` where
    /// [`KaplanMeier::survival_at`] is `None`).
    pub fn cumulative_revision_at(&self, times: &[f64]) -> Vec<Option<SurvivalPoint>> {
        times
            .iter()
            .map(|&t| {
                self.survival_at(t).map(|p| SurvivalPoint {
                    time: t,
                    estimate: 1.0 - p.estimate,
                    lower: 1.0 - p.upper,
                    upper: 1.0 - p.lower,
                    n_risk: p.n_risk,
                })
            })
            .collect()
    }

    /// The median survival time and its confidence interval.
    pub fn median(&self) -> QuantileEstimate {
        self.quantile(0.5)
    }

    /// The time by which a fraction `probability` of records have failed, with its interval.
    ///
    /// A probability outside `(0, 1)` gives no estimate.
    pub fn quantile(&self, probability: f64) -> QuantileEstimate {
        if !(probability > 0.0 && probability < 1.0) {
            return QuantileEstimate {
                probability,
                estimate: None,
                lower: None,
                upper: None,
            };
        }
        let target = 1.0 - probability;
        QuantileEstimate {
            probability,
            estimate: curve_quantile(&self.time, &self.survival, target),
            lower: curve_quantile(&self.time, &self.lower, target),
            upper: curve_quantile(&self.time, &self.upper, target),
        }
    }

    /// The restricted mean survival time up to `horizon` and its standard error.
    pub fn restricted_mean(&self, horizon: f64) -> Result<RestrictedMean, StatsError> {
        if !horizon.is_finite() || horizon < 0.0 {
            return Err(StatsError::InvalidOption {
                option: "horizon",
                reason: "must be finite and non-negative",
            });
        }
        // Areas of the step function between consecutive event times, accumulated backwards.
        let mut estimate = 0.0;
        let mut previous_time = 0.0;
        let mut previous_survival = 1.0;
        for (j, &t) in self.time.iter().enumerate() {
            if t > horizon {
                break;
            }
            if self.n_event[j] > 0 {
                estimate += previous_survival * (t - previous_time);
                previous_time = t;
                previous_survival = self.survival[j];
            }
        }
        estimate += previous_survival * (horizon - previous_time);

        let mut variance = 0.0;
        let mut area_after = 0.0;
        let mut next_time = horizon;
        for j in (0..self.time.len()).rev() {
            let t = self.time[j];
            if t > horizon || self.n_event[j] == 0 {
                continue;
            }
            area_after += self.survival[j] * (next_time - t);
            next_time = t;
            let n = self.n_risk[j] as f64;
            let d = self.n_event[j] as f64;
            if n > d && area_after > 0.0 {
                variance += area_after * area_after * d / (n * (n - d));
            }
        }
        Ok(RestrictedMean {
            horizon,
            estimate,
            std_error: variance.sqrt(),
        })
    }
}

/// Turns counts into the survival curve with Greenwood errors and intervals.
fn curve_from_table(table: &RiskTable, options: KaplanMeierOptions) -> KaplanMeier {
    let m = table.time.len();
    let z = normal_quantile(1.0 - (1.0 - options.confidence_level) / 2.0);
    let mut survival = Vec::with_capacity(m);
    let mut std_err = Vec::with_capacity(m);
    let mut lower = Vec::with_capacity(m);
    let mut upper = Vec::with_capacity(m);
    let mut s = 1.0;
    let mut greenwood = 0.0;
    for j in 0..m {
        let n = table.n_risk[j] as f64;
        let d = table.n_event[j] as f64;
        if d > 0.0 {
            s *= 1.0 - d / n;
            greenwood += if n > d {
                d / (n * (n - d))
            } else {
                f64::INFINITY
            };
        }
        let sigma = greenwood.sqrt();
        let (lo, hi) = interval(s, sigma, z, options.transform);
        survival.push(s);
        std_err.push(sigma);
        lower.push(lo);
        upper.push(hi);
    }
    KaplanMeier {
        time: table.time.clone(),
        n_risk: table.n_risk.clone(),
        n_event: table.n_event.clone(),
        n_censor: table.n_censor.clone(),
        survival,
        std_err,
        lower,
        upper,
        options,
    }
}

/// Pointwise interval of a survival probability `s` whose log has standard error `sigma`.
pub(crate) fn interval(s: f64, sigma: f64, z: f64, transform: CiTransform) -> (f64, f64) {
    if s <= 0.0 || !sigma.is_finite() {
        return (0.0, 0.0);
    }
    if sigma == 0.0 {
        return (s, s);
    }
    match transform {
        CiTransform::Plain => {
            let half = z * s * sigma;
            ((s - half).max(0.0), (s + half).min(1.0))
        }
        CiTransform::Log => {
            let factor = (z * sigma).exp();
            (s / factor, (s * factor).min(1.0))
        }
        CiTransform::LogLog => {
            if s >= 1.0 {
                return (1.0, 1.0);
            }
            let log_s = s.ln();
            let centre = (-log_s).ln();
            let half = z * sigma / log_s;
            (
                (-(centre - half).exp()).exp(),
                (-(centre + half).exp()).exp(),
            )
        }
    }
}

/// R's `quantile.survfit` rule on one non-increasing step curve.
fn curve_quantile(time: &[f64], value: &[f64], target: f64) -> Option<f64> {
    let tolerance = f64::EPSILON.sqrt();
    // Only the first row of each run of equal values marks a step of the curve.
    let steps: Vec<usize> = (0..value.len())
        .filter(|&j| j == 0 || value[j] != value[j - 1])
        .collect();
    for (k, &j) in steps.iter().enumerate() {
        if value[j] <= target + tolerance {
            if (value[j] - target).abs() < tolerance {
                return Some(match steps.get(k + 1) {
                    Some(&next) => 0.5 * (time[j] + time[next]),
                    None => time[j],
                });
            }
            return Some(time[j]);
        }
    }
    None
}

#[cfg(test)]
// Tests may unwrap: a panic is the failure report.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Freireich et al. (1963) 6-MP arm, remission times in weeks (`false` = censored).
    fn six_mp() -> SurvivalData {
        let time: Vec<f64> = crate::test_data::FREIREICH_6MP
            .iter()
            .map(|r| r.0)
            .collect();
        let event: Vec<bool> = crate::test_data::FREIREICH_6MP
            .iter()
            .map(|r| r.1)
            .collect();
        SurvivalData::new(&time, &event).unwrap()
    }

    #[test]
    fn six_mp_curve_matches_the_hand_computed_product_limit() {
        let km = kaplan_meier(&six_mp(), KaplanMeierOptions::default()).unwrap();
        let at = |t: f64| km.survival_at(t).unwrap().estimate;
        let s6 = 18.0 / 21.0;
        let s7 = s6 * 16.0 / 17.0;
        let s10 = s7 * 14.0 / 15.0;
        let s13 = s10 * 11.0 / 12.0;
        let s16 = s13 * 10.0 / 11.0;
        let s22 = s16 * 6.0 / 7.0;
        let s23 = s22 * 5.0 / 6.0;
        for (t, s) in [
            (6., s6),
            (7., s7),
            (10., s10),
            (13., s13),
            (16., s16),
            (22., s22),
            (23., s23),
        ] {
            assert!((at(t) - s).abs() < 1e-15, "t = {t}");
        }
        // Textbook values (Klein & Moeschberger Table 4.1A): 0.857, 0.807, 0.753, 0.690, 0.627, 0.538, 0.448.
        assert!((at(23.0) - 0.448).abs() < 5e-4);
        assert_eq!(km.n_risk[0], 21);
        assert_eq!(km.n_event[0], 3);
        assert_eq!(km.n_censor[0], 1);
    }

    #[test]
    fn six_mp_greenwood_errors_match_the_textbook() {
        let km = kaplan_meier(&six_mp(), KaplanMeierOptions::default()).unwrap();
        // Standard errors of S(t) from Klein & Moeschberger Table 4.1A.
        let expected = [
            (6.0, 0.0764),
            (7.0, 0.0869),
            (10.0, 0.0963),
            (13.0, 0.1068),
            (16.0, 0.1141),
            (22.0, 0.1282),
            (23.0, 0.1346),
        ];
        for (t, se) in expected {
            let j = km.time.iter().position(|&x| x == t).unwrap();
            let se_s = km.survival[j] * km.std_err[j];
            assert!((se_s - se).abs() < 5e-5, "t = {t}: {se_s}");
        }
        let sigma2_6: f64 = 3.0 / (21.0 * 18.0);
        assert!((km.std_err[0] - sigma2_6.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn six_mp_median_is_23_weeks_with_a_log_interval_from_16_weeks_and_no_upper_limit() {
        let km = kaplan_meier(&six_mp(), KaplanMeierOptions::default()).unwrap();
        let median = km.median();
        assert_eq!(median.estimate, Some(23.0));
        // R prints median 23, 0.95LCL 16, 0.95UCL NA for this arm: the lower curve first reaches
        // one half at 16 weeks (0.627 × exp(−1.96 × 0.182) = 0.439), while the upper curve is still
        // 0.448 × exp(1.96 × 0.300) = 0.807 at the last event.
        let j = km.time.iter().position(|&t| t == 23.0).unwrap();
        assert!((km.upper[j] - 0.807).abs() < 1e-3);
        assert_eq!(median.lower, Some(16.0));
        assert_eq!(median.upper, None);
    }

    #[test]
    fn a_flat_stretch_exactly_at_one_half_puts_the_median_at_the_midpoint() {
        let data = SurvivalData::new(&[1.0, 2.0, 3.0, 4.0], &[true; 4]).unwrap();
        let km = kaplan_meier(&data, KaplanMeierOptions::default()).unwrap();
        assert_eq!(km.median().estimate, Some(2.5));
    }

    #[test]
    fn log_interval_at_six_weeks_is_s_times_exp_of_plus_minus_z_sigma() {
        let km = kaplan_meier(&six_mp(), KaplanMeierOptions::default()).unwrap();
        let s = 18.0 / 21.0;
        let sigma = (3.0_f64 / (21.0 * 18.0)).sqrt();
        let z = 1.959_963_984_540_054;
        assert!((km.lower[0] - s * (-z * sigma).exp()).abs() < 1e-14);
        assert_eq!(km.upper[0], 1.0);
        // R prints 0.720 for the lower limit.
        assert!((km.lower[0] - 0.720).abs() < 5e-4);
    }

    #[test]
    fn plain_and_log_log_intervals_contain_the_estimate() {
        for transform in [CiTransform::Plain, CiTransform::LogLog] {
            let options = KaplanMeierOptions {
                confidence_level: 0.9,
                transform,
            };
            let km = kaplan_meier(&six_mp(), options).unwrap();
            for j in 0..km.time.len() {
                assert!(km.lower[j] <= km.survival[j] && km.survival[j] <= km.upper[j]);
                assert!(km.lower[j] >= 0.0 && km.upper[j] <= 1.0);
            }
        }
    }

    #[test]
    fn restricted_mean_of_a_complete_sample_is_the_mean_of_truncated_times() {
        let times = [1.0, 2.0, 4.0, 7.0, 9.0];
        let data = SurvivalData::new(&times, &[true; 5]).unwrap();
        let km = kaplan_meier(&data, KaplanMeierOptions::default()).unwrap();
        let rm = km.restricted_mean(8.0).unwrap();
        let expected = times.iter().map(|&t: &f64| t.min(8.0)).sum::<f64>() / 5.0;
        assert!((rm.estimate - expected).abs() < 1e-14);
        // Without censoring the Greenwood-type variance equals Σ(min(T, τ) − μ)² / n².
        let var: f64 = times
            .iter()
            .map(|&t: &f64| (t.min(8.0) - expected).powi(2))
            .sum::<f64>()
            / 25.0;
        assert!(
            (rm.std_error - var.sqrt()).abs() < 1e-12,
            "{} vs {}",
            rm.std_error,
            var.sqrt()
        );
    }

    #[test]
    fn cumulative_revision_is_one_minus_survival_with_swapped_limits() {
        let km = kaplan_meier(&six_mp(), KaplanMeierOptions::default()).unwrap();
        let points = km.cumulative_revision_at(&[0.0, 10.0, 12.5, 40.0]);
        assert_eq!(points[0].unwrap().estimate, 0.0);
        let s10 = km.survival_at(10.0).unwrap();
        let p10 = points[1].unwrap();
        assert!((p10.estimate - (1.0 - s10.estimate)).abs() < 1e-15);
        assert!((p10.lower - (1.0 - s10.upper)).abs() < 1e-15);
        assert_eq!(points[2].unwrap().estimate, p10.estimate);
        assert_eq!(points[3], None);
    }

    #[test]
    fn delayed_entry_removes_late_entrants_from_early_risk_sets() {
        let data = SurvivalData::with_entry(
            &[0.0, 0.0, 2.5, 0.0],
            &[1.0, 3.0, 4.0, 5.0],
            &[true, true, true, false],
        )
        .unwrap();
        let km = kaplan_meier(&data, KaplanMeierOptions::default()).unwrap();
        assert_eq!(km.n_risk, vec![3, 3, 2, 1]);
        let expected = (2.0 / 3.0) * (2.0 / 3.0) * 0.5;
        assert!((km.survival[2] - expected).abs() < 1e-15);
    }

    #[test]
    fn events_at_a_censoring_time_see_the_censored_record_at_risk() {
        let data = SurvivalData::new(&[2.0, 2.0, 2.0, 3.0], &[true, false, false, true]).unwrap();
        let km = kaplan_meier(&data, KaplanMeierOptions::default()).unwrap();
        assert_eq!(km.n_risk[0], 4);
        assert!((km.survival[0] - 0.75).abs() < 1e-15);
    }

    #[test]
    fn grouped_curves_equal_curves_fitted_group_by_group() {
        let data = six_mp();
        let groups: Vec<u32> = (0..data.len() as u32).map(|i| (i * 7) % 3 + 10).collect();
        let curves = kaplan_meier_by_group(&data, &groups, KaplanMeierOptions::default()).unwrap();
        assert_eq!(curves.len(), 3);
        for g in curves {
            let idx: Vec<usize> = (0..data.len()).filter(|&i| groups[i] == g.group).collect();
            let t: Vec<f64> = idx.iter().map(|&i| data.time()[i]).collect();
            let e: Vec<bool> = idx.iter().map(|&i| data.event()[i]).collect();
            let single = kaplan_meier(
                &SurvivalData::new(&t, &e).unwrap(),
                KaplanMeierOptions::default(),
            )
            .unwrap();
            assert_eq!(g.curve, single);
        }
    }

    #[test]
    fn a_confidence_level_of_one_is_rejected() {
        let options = KaplanMeierOptions {
            confidence_level: 1.0,
            transform: CiTransform::Log,
        };
        assert!(matches!(
            kaplan_meier(&six_mp(), options),
            Err(StatsError::InvalidOption {
                option: "confidence_level",
                ..
            })
        ));
    }
}
