//! Funnel plots for comparing units (hospitals, surgeons, brands): control limits for proportions
//! and for standardised ratios O/E, with optional overdispersion, and a classification per unit.
//!
//! **Limits** at tail probability `p` (0.025/0.975 for 95%, 0.001/0.999 for 99.8%), target `θ₀`:
//! - proportions, normal: `θ₀ + z_p √(θ₀(1 − θ₀)/n)`;
//! - proportions, exact binomial with interpolation (Spiegelhalter 2005, appendix A.1.1): `r_p` is
//!   the smallest `r` with `P(R ≤ r) ≥ p` for `R ~ Bin(n, θ₀)`,
//!   `α = (P(R ≤ r_p) − p) / (P(R ≤ r_p) − P(R ≤ r_p − 1))`, limit `(r_p − α)/n`, clamped to `[0, 1]`;
//! - ratios O/E (target 1), normal: `1 + z_p / √E`; exact Poisson: the same interpolation with
//!   `R ~ Poisson(E)`, limit `(r_p − α)/E`, clamped below at 0.
//!
//! **Overdispersion** (Spiegelhalter 2005 §3; Spiegelhalter et al. 2012 JRSS A 175:1–47). Unit
//! z-scores `z_i = (y_i − θ₀)/s_i` (`s_i` the null standard error) are Winsorised at the `q` and
//! `1 − q` quantiles (default `q = 0.1`, quantiles by linear interpolation). Then
//! - multiplicative: `φ = Σ z_w² / I`; if `φ > 1` the limits become `θ₀ ± z_p √φ s`;
//! - additive (DerSimonian–Laird): `τ² = max(0, (I φ − (I − 1)) / (Σ w_i − Σ w_i² / Σ w_i))`,
//!   `w_i = 1/s_i²`; the limits become `θ₀ ± z_p √(s² + τ²)`.
//!
//! With overdispersion the limits are normal-based (exact limits assume no overdispersion).
//! Denominators `n` must lie in `[1, 10¹²]` and expected counts `E` in `[10⁻⁹, 10¹²]`.
//!
//! Each unit is classified by where its value falls: within the 95% limits, between the 95% and
//! 99.8% limits (alert), or beyond the 99.8% limits (alarm), high or low.
//!
//! Reference: Spiegelhalter D.J. (2005) Funnel plots for comparing institutional performance.
//! Stat. Med. 24:1185–1202.

use crate::error::StatsError;
use crate::special::{beta_inc, gamma_q, normal_quantile};

/// How control limits are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LimitMethod {
    /// Normal approximation.
    Normal,
    /// Exact binomial or Poisson quantiles, interpolated.
    #[default]
    Exact,
}

/// Overdispersion adjustment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overdispersion {
    /// Limits from the sampling variance alone.
    #[default]
    None,
    /// Multiplicative factor `φ` on the variance.
    Multiplicative,
    /// Additive between-unit variance `τ²` (DerSimonian–Laird).
    Additive,
}

/// Options of the funnel functions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FunnelOptions {
    /// Target value; `None` means the pooled proportion (proportions) or 1 (ratios).
    pub target: Option<f64>,
    /// Limit method when there is no overdispersion adjustment.
    pub method: LimitMethod,
    /// Overdispersion adjustment.
    pub overdispersion: Overdispersion,
    /// Winsorising fraction in each tail for the overdispersion estimate, in `[0, 0.5)`.
    pub winsorise: f64,
}

impl Default for FunnelOptions {
    fn default() -> Self {
        Self {
            target: None,
            method: LimitMethod::Exact,
            overdispersion: Overdispersion::None,
            winsorise: 0.1,
        }
    }
}

/// Where a unit falls on the funnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunnelZone {
    /// Below the lower 99.8% limit.
    LowAlarm,
    /// Below the lower 95% limit, within 99.8%.
    LowAlert,
    /// Within the 95% limits.
    Within,
    /// Above the upper 95% limit, within 99.8%.
    HighAlert,
    /// Above the upper 99.8% limit.
    HighAlarm,
}

/// One unit on the funnel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FunnelUnit {
    /// The unit's proportion or ratio.
    pub value: f64,
    /// Its precision parameter: `n` for proportions, `E` for ratios.
    pub precision: f64,
    /// Its (unadjusted) z-score.
    pub z_score: f64,
    /// Lower 95% limit at its precision.
    pub lower_95: f64,
    /// Upper 95% limit.
    pub upper_95: f64,
    /// Lower 99.8% limit.
    pub lower_998: f64,
    /// Upper 99.8% limit.
    pub upper_998: f64,
    /// Its classification.
    pub zone: FunnelZone,
}

/// The funnel of all units.
#[derive(Debug, Clone, PartialEq)]
pub struct Funnel {
    /// The target value.
    pub target: f64,
    /// Estimated multiplicative overdispersion `φ` (reported whatever the adjustment).
    pub phi: f64,
    /// Estimated additive between-unit variance `τ²` (reported whatever the adjustment).
    pub tau_squared: f64,
    /// The units, in input order.
    pub units: Vec<FunnelUnit>,
}

/// Funnel of proportions `events[i] / n[i]`.
pub fn funnel_proportions(
    events: &[u64],
    n: &[u64],
    options: FunnelOptions,
) -> Result<Funnel, StatsError> {
    crate::input::check_length("n", events.len(), n.len())?;
    if events.is_empty() {
        return Err(StatsError::Empty);
    }
    for (index, (&y, &m)) in events.iter().zip(n).enumerate() {
        if m == 0 || m > 1_000_000_000_000 {
            return Err(StatsError::InvalidValue {
                field: "n",
                index,
                reason: "must lie between 1 and 1e12",
            });
        }
        if y > m {
            return Err(StatsError::InvalidValue {
                field: "events",
                index,
                reason: "cannot exceed n",
            });
        }
    }
    check_options(&options)?;
    let total_events: f64 = events.iter().map(|&y| y as f64).sum();
    let total: f64 = n.iter().map(|&m| m as f64).sum();
    let target = options.target.unwrap_or(total_events / total);
    if !(target > 0.0 && target < 1.0) {
        return Err(StatsError::InvalidOption {
            option: "target",
            reason: "the target proportion must lie strictly between 0 and 1",
        });
    }
    let units: Vec<(f64, f64, f64)> = events
        .iter()
        .zip(n)
        .map(|(&y, &m)| {
            let m = m as f64;
            (y as f64 / m, m, (target * (1.0 - target) / m).sqrt())
        })
        .collect();
    Ok(build(&units, target, options, 1.0, |p, precision| {
        binomial_limit(p, precision as u64, target)
    }))
}

/// Funnel of standardised ratios `observed[i] / expected[i]` against a target of 1 (or the
/// given target), with Poisson limits.
pub fn funnel_ratios(
    observed: &[u64],
    expected: &[f64],
    options: FunnelOptions,
) -> Result<Funnel, StatsError> {
    crate::input::check_length("expected", observed.len(), expected.len())?;
    if observed.is_empty() {
        return Err(StatsError::Empty);
    }
    for (index, &e) in expected.iter().enumerate() {
        if !(1e-9..=1e12).contains(&e) {
            return Err(StatsError::InvalidValue {
                field: "expected",
                index,
                reason: "must lie between 1e-9 and 1e12",
            });
        }
    }
    check_options(&options)?;
    let target = options.target.unwrap_or(1.0);
    if !(target.is_finite() && target > 0.0) {
        return Err(StatsError::InvalidOption {
            option: "target",
            reason: "the target ratio must be finite and positive",
        });
    }
    let units: Vec<(f64, f64, f64)> = observed
        .iter()
        .zip(expected)
        .map(|(&o, &e)| (o as f64 / e, e, (target / e).sqrt()))
        .collect();
    Ok(build(
        &units,
        target,
        options,
        f64::INFINITY,
        |p, precision| poisson_limit(p, precision * target) / precision,
    ))
}

/// Exact interpolated binomial limit for a proportion at tail probability `p` (as a proportion).
pub fn binomial_limit(p: f64, n: u64, target: f64) -> f64 {
    let cdf = |r: i64| -> f64 {
        if r < 0 {
            0.0
        } else if r as u64 >= n {
            1.0
        } else {
            beta_inc((n - r as u64) as f64, r as f64 + 1.0, 1.0 - target)
        }
    };
    let r = integer_quantile(p, n as i64, cdf);
    let alpha = interpolation(p, cdf(r), cdf(r - 1));
    ((r as f64 - alpha) / n as f64).clamp(0.0, 1.0)
}

/// Exact interpolated Poisson limit for a count with mean `mean` at tail probability `p` (as a
/// count; divide by the expected count to get a ratio).
pub fn poisson_limit(p: f64, mean: f64) -> f64 {
    let cdf = |r: i64| -> f64 {
        if r < 0 {
            0.0
        } else {
            gamma_q(r as f64 + 1.0, mean)
        }
    };
    // Inputs are capped at 1e12 expected events, so the bracket never overflows.
    let mut upper = (mean + 10.0 * mean.sqrt() + 10.0).ceil() as i64;
    while cdf(upper) < p && upper < i64::MAX / 4 {
        upper *= 2;
    }
    let r = integer_quantile(p, upper, cdf);
    let alpha = interpolation(p, cdf(r), cdf(r - 1));
    (r as f64 - alpha).max(0.0)
}

fn interpolation(p: f64, at: f64, below: f64) -> f64 {
    if at > below {
        (at - p) / (at - below)
    } else {
        0.0
    }
}

/// The smallest integer `r` in `[0, upper]` with `cdf(r) ≥ p`.
fn integer_quantile(p: f64, upper: i64, cdf: impl Fn(i64) -> f64) -> i64 {
    let (mut lo, mut hi) = (0i64, upper);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if cdf(mid) >= p {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

fn check_options(options: &FunnelOptions) -> Result<(), StatsError> {
    if !(options.winsorise >= 0.0 && options.winsorise < 0.5) {
        return Err(StatsError::InvalidOption {
            option: "winsorise",
            reason: "must lie in [0, 0.5)",
        });
    }
    Ok(())
}

/// Builds the funnel from `(value, precision, null standard error)` per unit; limits are clamped
/// to `[0, ceiling]`.
fn build(
    units: &[(f64, f64, f64)],
    target: f64,
    options: FunnelOptions,
    ceiling: f64,
    exact: impl Fn(f64, f64) -> f64,
) -> Funnel {
    let z: Vec<f64> = units.iter().map(|&(v, _, s)| (v - target) / s).collect();
    let winsorised = winsorise(&z, options.winsorise);
    let count = units.len() as f64;
    let phi = winsorised.iter().map(|z| z * z).sum::<f64>() / count;
    let weights: Vec<f64> = units.iter().map(|&(_, _, s)| 1.0 / (s * s)).collect();
    let sum_w: f64 = weights.iter().sum();
    let sum_w2: f64 = weights.iter().map(|w| w * w).sum();
    let denominator = sum_w - sum_w2 / sum_w;
    let tau_squared = if denominator > 0.0 {
        ((count * phi - (count - 1.0)) / denominator).max(0.0)
    } else {
        0.0
    };
    let quantiles = [0.001, 0.025, 0.975, 0.999];
    let z_values = quantiles.map(normal_quantile);
    let funnel_units = units
        .iter()
        .zip(&z)
        .map(|(&(value, precision, s), &z_score)| {
            let limit = |k: usize| -> f64 {
                match options.overdispersion {
                    Overdispersion::None => match options.method {
                        LimitMethod::Exact => exact(quantiles[k], precision),
                        LimitMethod::Normal => target + z_values[k] * s,
                    },
                    Overdispersion::Multiplicative => {
                        target + z_values[k] * s * phi.max(1.0).sqrt()
                    }
                    Overdispersion::Additive => target + z_values[k] * (s * s + tau_squared).sqrt(),
                }
            };
            let clamp = |x: f64| x.clamp(0.0, ceiling);
            let (lower_998, lower_95, upper_95, upper_998) = (
                clamp(limit(0)),
                clamp(limit(1)),
                clamp(limit(2)),
                clamp(limit(3)),
            );
            let zone = if value < lower_998 {
                FunnelZone::LowAlarm
            } else if value < lower_95 {
                FunnelZone::LowAlert
            } else if value > upper_998 {
                FunnelZone::HighAlarm
            } else if value > upper_95 {
                FunnelZone::HighAlert
            } else {
                FunnelZone::Within
            };
            FunnelUnit {
                value,
                precision,
                z_score,
                lower_95,
                upper_95,
                lower_998,
                upper_998,
                zone,
            }
        })
        .collect();
    Funnel {
        target,
        phi,
        tau_squared,
        units: funnel_units,
    }
}

/// Replaces values below the `q` quantile and above the `1 − q` quantile by those quantiles.
fn winsorise(values: &[f64], q: f64) -> Vec<f64> {
    if q <= 0.0 {
        return values.to_vec();
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    let quantile = |p: f64| -> f64 {
        let h = (sorted.len() - 1) as f64 * p;
        let below = h.floor() as usize;
        let above = h.ceil() as usize;
        sorted[below] + (h - below as f64) * (sorted[above] - sorted[below])
    };
    let (lo, hi) = (quantile(q), quantile(1.0 - q));
    // Infinite z-scores make the interpolation NaN; leave such values unwinsorised.
    if lo.is_nan() || hi.is_nan() || lo > hi {
        return values.to_vec();
    }
    values.iter().map(|&v| v.clamp(lo, hi)).collect()
}

#[cfg(test)]
// Tests may unwrap: a panic is the failure report.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn exact_binomial_limit_interpolates_between_attainable_counts() {
        // n = 10, θ₀ = 0.5: P(R ≤ 2) = 56/1024 ≥ 0.025 > P(R ≤ 1) = 11/1024.
        let limit = binomial_limit(0.025, 10, 0.5);
        let alpha = (56.0 / 1024.0 - 0.025) / (45.0 / 1024.0);
        assert!((limit - (2.0 - alpha) / 10.0).abs() < 1e-12);
    }

    #[test]
    fn exact_poisson_limit_for_mean_one_matches_the_hand_computation() {
        // P(R ≤ 3 | 1) = 0.98101 ≥ 0.975 > P(R ≤ 2 | 1) = 0.91970.
        let e = (-1.0_f64).exp();
        let (c2, c3) = (e * 2.5, e * (2.5 + 1.0 / 6.0));
        let expected = 3.0 - (c3 - 0.975) / (c3 - c2);
        assert!((poisson_limit(0.975, 1.0) - expected).abs() < 1e-12);
    }

    #[test]
    fn a_unit_far_above_target_is_a_high_alarm_and_the_rest_are_within() {
        let events = [10, 12, 9, 11, 40];
        let n = [100, 100, 100, 100, 100];
        let options = FunnelOptions {
            target: Some(0.1),
            ..FunnelOptions::default()
        };
        let funnel = funnel_proportions(&events, &n, options).unwrap();
        let zones: Vec<FunnelZone> = funnel.units.iter().map(|u| u.zone).collect();
        assert_eq!(zones[..4], [FunnelZone::Within; 4]);
        assert_eq!(zones[4], FunnelZone::HighAlarm);
    }

    #[test]
    fn normal_limits_for_proportions_are_target_plus_z_times_the_binomial_error() {
        let options = FunnelOptions {
            target: Some(0.2),
            method: LimitMethod::Normal,
            ..FunnelOptions::default()
        };
        let funnel = funnel_proportions(&[20], &[100], options).unwrap();
        let s = (0.2_f64 * 0.8 / 100.0).sqrt();
        assert!((funnel.units[0].upper_95 - (0.2 + 1.959_963_984_540_054 * s)).abs() < 1e-14);
    }

    #[test]
    fn overdispersion_factor_is_the_mean_squared_winsorised_z_score() {
        let observed = [5, 20, 8, 15, 30, 2, 12, 9, 11, 25];
        let expected = [10.0; 10];
        let options = FunnelOptions {
            overdispersion: Overdispersion::Multiplicative,
            ..FunnelOptions::default()
        };
        let funnel = funnel_ratios(&observed, &expected, options).unwrap();
        let z: Vec<f64> = observed
            .iter()
            .map(|&o| (o as f64 / 10.0 - 1.0) / (0.1_f64).sqrt())
            .collect();
        // Ten values: the 10% and 90% quantiles interpolate between the two smallest and largest.
        let mut sorted = z.clone();
        sorted.sort_by(f64::total_cmp);
        let lo = sorted[0] + 0.9 * (sorted[1] - sorted[0]);
        let hi = sorted[8] + 0.1 * (sorted[9] - sorted[8]);
        let phi = z.iter().map(|v| v.clamp(lo, hi).powi(2)).sum::<f64>() / 10.0;
        assert!((funnel.phi - phi).abs() < 1e-12);
        let s = (0.1_f64).sqrt();
        assert!(
            (funnel.units[0].upper_95 - (1.0 + 1.959_963_984_540_054 * s * phi.sqrt())).abs()
                < 1e-12
        );
        // Equal weights: τ² = (Iφ − (I − 1)) / (Σw − Σw²/Σw) with w = 10.
        let tau2 = ((10.0 * phi - 9.0) / (100.0 - 1000.0 / 100.0)).max(0.0);
        assert!((funnel.tau_squared - tau2).abs() < 1e-12);
    }

    #[test]
    fn zero_expected_counts_are_rejected() {
        assert!(matches!(
            funnel_ratios(&[1, 2], &[1.0, 0.0], FunnelOptions::default()),
            Err(StatsError::InvalidValue {
                field: "expected",
                index: 1,
                ..
            })
        ));
    }
}
