//! Revision rates per 100 component-years with exact Poisson limits, and the two registry
//! outlier rules built on them: the NJR implant-scrutiny levels and the AOANJRR stage-1 screen.
//!
//! **Rate.** `r = 100 O / T` for `O` revisions over `T` component-years. Exact (Garwood 1936)
//! limits at level `1 − α`: `lower = 100 χ²_{2O, α/2} / (2T)` (0 when `O = 0`),
//! `upper = 100 χ²_{2(O+1), 1−α/2} / (2T)`, computed as gamma quantiles.
//!
//! **Poisson test.** Against an expected count `E = r_group T / 100`, the one-sided exact p-value
//! is `P(X ≥ O | E) = P(O, E)`, the regularised lower incomplete gamma function (1 when `O = 0`).
//!
//! **NJR rule** (National Joint Registry Implant Scrutiny Committee, as specified for mdor): with
//! `ratio = r / r_class`, a component is a level-1 outlier when `ratio ≥ 2` and it has at least 100
//! primaries; a level-2 (lower-level) outlier when `ratio ≥ 2` with fewer than 100 primaries, or
//! `ratio ≥ 1.5` with at least 100 primaries.
//!
//! **AOANJRR stage-1 rule** (Australian Orthopaedic Association National Joint Replacement
//! Registry, Annual Report methods): the group rate is computed over the group's components,
//! leaving out any component with more than 25% of the group's primaries. A component is
//! flagged when its rate is more than twice the group rate, the exact Poisson p-value of its
//! revisions against the group rate is below 0.05, and either it has at least 10 primaries or at
//! least 75% of its primaries were revised with at least 2 revisions.
//!
//! References: Garwood F. (1936) Biometrika 28:437–442; Ulm K. (1990) Am. J. Epidemiol.
//! 131:373–375; de Steiger R.N. et al. (2013) Acta Orthop. 84:348–352 (AOANJRR method); NJR
//! Implant Scrutiny Committee outlier methodology (NJR Annual Report).

use crate::error::StatsError;
use crate::input::check_confidence_level;
use crate::special::{beta_quantile, gamma_p, gamma_quantile};

/// Exposure bounds: below a few milliseconds or above a trillion component-years the rates
/// overflow or lose all meaning, so such inputs are rejected.
const MIN_YEARS: f64 = 1e-9;
const MAX_YEARS: f64 = 1e12;

/// Revisions and exposure of one component (brand or combination).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ComponentExposure {
    /// Primary procedures using the component.
    pub n_primaries: u64,
    /// Revisions observed.
    pub n_revisions: u64,
    /// Total follow-up in component-years.
    pub component_years: f64,
}

/// A rate per 100 component-years with its exact interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Revisions per 100 component-years.
    pub rate: f64,
    /// Lower exact (Garwood) limit.
    pub lower: f64,
    /// Upper exact (Garwood) limit.
    pub upper: f64,
}

/// The NJR classification of one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NjrLevel {
    /// Not an outlier.
    NotOutlier,
    /// Lower-level outlier: ratio ≥ 2 with < 100 primaries, or ratio ≥ 1.5 with ≥ 100 primaries.
    Level2,
    /// Ratio ≥ 2 with ≥ 100 primaries.
    Level1,
}

/// A component assessed against its class or group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ComponentAssessment<L> {
    /// The component's rate and interval.
    pub rate: Rate,
    /// The comparator rate per 100 component-years.
    pub comparator_rate: f64,
    /// `rate / comparator_rate` (infinite if the comparator is zero and the rate is not).
    pub ratio: f64,
    /// One-sided exact Poisson p-value of the observed revisions against the comparator rate.
    pub p_value: f64,
    /// The rule's verdict.
    pub verdict: L,
}

/// The revision rate per 100 component-years with exact limits.
pub fn revision_rate(
    n_revisions: u64,
    component_years: f64,
    confidence_level: f64,
) -> Result<Rate, StatsError> {
    check_confidence_level(confidence_level)?;
    if !(MIN_YEARS..=MAX_YEARS).contains(&component_years) {
        return Err(StatsError::InvalidOption {
            option: "component_years",
            reason: "must lie between 1e-9 and 1e12",
        });
    }
    Ok(rate_unchecked(
        n_revisions,
        component_years,
        confidence_level,
    ))
}

/// One-sided exact Poisson p-value `P(X ≥ observed)` for a Poisson mean `expected ≥ 0`.
pub fn poisson_upper_p_value(observed: u64, expected: f64) -> f64 {
    if observed == 0 {
        return 1.0;
    }
    if expected <= 0.0 {
        return 0.0;
    }
    gamma_p(observed as f64, expected)
}

/// Exact (Clopper–Pearson 1934) interval for a proportion `events / n` at `confidence_level`:
/// `lower = B(α/2; x, n − x + 1)`, `upper = B(1 − α/2; x + 1, n − x)` (beta quantiles), with
/// `lower = 0` when `x = 0` and `upper = 1` when `x = n`.
pub fn clopper_pearson(
    events: u64,
    n: u64,
    confidence_level: f64,
) -> Result<(f64, f64), StatsError> {
    check_confidence_level(confidence_level)?;
    if n == 0 || events > n {
        return Err(StatsError::InvalidOption {
            option: "events",
            reason: "need 0 ≤ events ≤ n and n > 0",
        });
    }
    let alpha = 1.0 - confidence_level;
    let (x, n) = (events as f64, n as f64);
    let lower = if events == 0 {
        0.0
    } else {
        beta_quantile(alpha / 2.0, x, n - x + 1.0)
    };
    let upper = if x == n {
        1.0
    } else {
        beta_quantile(1.0 - alpha / 2.0, x + 1.0, n - x)
    };
    Ok((lower, upper))
}

/// Applies the NJR rule to every component of one class, against the pooled class rate.
pub fn njr_outliers(
    class: &[ComponentExposure],
    confidence_level: f64,
) -> Result<Vec<ComponentAssessment<NjrLevel>>, StatsError> {
    check_confidence_level(confidence_level)?;
    check_components(class)?;
    let comparator = pooled_rate(class.iter());
    Ok(class
        .iter()
        .map(|c| {
            let assessed = assess(c, comparator, confidence_level);
            let many = c.n_primaries >= 100;
            let verdict = if assessed.ratio >= 2.0 && many {
                NjrLevel::Level1
            } else if (assessed.ratio >= 2.0 && !many) || (assessed.ratio >= 1.5 && many) {
                NjrLevel::Level2
            } else {
                NjrLevel::NotOutlier
            };
            ComponentAssessment {
                rate: assessed.rate,
                comparator_rate: comparator,
                ratio: assessed.ratio,
                p_value: assessed.p_value,
                verdict,
            }
        })
        .collect())
}

/// Applies the AOANJRR stage-1 screen to every component of one group.
///
/// The verdict is `true` when the component is flagged for review.
pub fn aoanjrr_stage1(
    group: &[ComponentExposure],
    confidence_level: f64,
) -> Result<Vec<ComponentAssessment<bool>>, StatsError> {
    check_confidence_level(confidence_level)?;
    check_components(group)?;
    let total_primaries: u64 = group.iter().map(|c| c.n_primaries).sum();
    // Components with more than a quarter of the group's primaries would dominate the comparator.
    let comparator = pooled_rate(
        group
            .iter()
            .filter(|c| 4 * c.n_primaries <= total_primaries),
    );
    Ok(group
        .iter()
        .map(|c| {
            let assessed = assess(c, comparator, confidence_level);
            let enough_primaries = c.n_primaries >= 10;
            let mostly_revised = 4 * c.n_revisions >= 3 * c.n_primaries && c.n_revisions >= 2;
            let verdict = assessed.ratio > 2.0
                && assessed.p_value < 0.05
                && (enough_primaries || mostly_revised);
            ComponentAssessment {
                rate: assessed.rate,
                comparator_rate: comparator,
                ratio: assessed.ratio,
                p_value: assessed.p_value,
                verdict,
            }
        })
        .collect())
}

struct Assessed {
    rate: Rate,
    ratio: f64,
    p_value: f64,
}

fn assess(c: &ComponentExposure, comparator: f64, confidence_level: f64) -> Assessed {
    let rate = rate_unchecked(c.n_revisions, c.component_years, confidence_level);
    let ratio = if comparator > 0.0 {
        rate.rate / comparator
    } else if rate.rate > 0.0 {
        f64::INFINITY
    } else {
        1.0
    };
    let expected = comparator * c.component_years / 100.0;
    Assessed {
        rate,
        ratio,
        p_value: poisson_upper_p_value(c.n_revisions, expected),
    }
}

fn rate_unchecked(n_revisions: u64, component_years: f64, confidence_level: f64) -> Rate {
    let alpha = 1.0 - confidence_level;
    let o = n_revisions as f64;
    let lower = if n_revisions == 0 {
        0.0
    } else {
        gamma_quantile(alpha / 2.0, o)
    };
    let upper = gamma_quantile(1.0 - alpha / 2.0, o + 1.0);
    Rate {
        rate: 100.0 * o / component_years,
        lower: 100.0 * lower / component_years,
        upper: 100.0 * upper / component_years,
    }
}

fn pooled_rate<'a>(components: impl Iterator<Item = &'a ComponentExposure>) -> f64 {
    let (revisions, years) = components.fold((0.0, 0.0), |(r, y), c| {
        (r + c.n_revisions as f64, y + c.component_years)
    });
    if years > 0.0 {
        100.0 * revisions / years
    } else {
        0.0
    }
}

fn check_components(components: &[ComponentExposure]) -> Result<(), StatsError> {
    if components.is_empty() {
        return Err(StatsError::Empty);
    }
    for (index, c) in components.iter().enumerate() {
        if !(MIN_YEARS..=MAX_YEARS).contains(&c.component_years) {
            return Err(StatsError::InvalidValue {
                field: "component_years",
                index,
                reason: "must lie between 1e-9 and 1e12",
            });
        }
        if c.n_revisions > c.n_primaries {
            return Err(StatsError::InvalidValue {
                field: "n_revisions",
                index,
                reason: "cannot exceed the number of primaries",
            });
        }
    }
    Ok(())
}

#[cfg(test)]
// Tests may unwrap: a panic is the failure report.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn component(n_primaries: u64, n_revisions: u64, component_years: f64) -> ComponentExposure {
        ComponentExposure {
            n_primaries,
            n_revisions,
            component_years,
        }
    }

    #[test]
    fn zero_revisions_give_a_zero_lower_limit_and_the_rule_of_three_upper_limit() {
        let rate = revision_rate(0, 100.0, 0.95).unwrap();
        assert_eq!(rate.rate, 0.0);
        assert_eq!(rate.lower, 0.0);
        // −ln(0.025) = 3.689 events per 100 years.
        assert!((rate.upper - 3.688_879_454_113_936).abs() < 1e-9);
    }

    #[test]
    fn poisson_p_value_of_one_event_is_one_minus_exp_of_minus_the_mean() {
        assert!((poisson_upper_p_value(1, 0.3) - (1.0 - (-0.3_f64).exp())).abs() < 1e-15);
        assert_eq!(poisson_upper_p_value(0, 0.3), 1.0);
    }

    #[test]
    fn njr_levels_follow_the_ratio_and_the_number_of_primaries() {
        // Class rate: 20 revisions over 2000 years = 1 per 100 component-years.
        let class = [
            component(1000, 12, 1500.0), // 0.8: not an outlier
            component(200, 4, 200.0),    // 2.0 with 200 primaries: level 1
            component(50, 2, 100.0),     // 2.0 with 50 primaries: level 2
            component(150, 2, 200.0),    // 1.0: not an outlier
        ];
        let total: f64 = 100.0 * 20.0 / 2000.0;
        let verdicts: Vec<NjrLevel> = njr_outliers(&class, 0.95)
            .unwrap()
            .iter()
            .map(|a| a.verdict)
            .collect();
        assert_eq!(
            verdicts,
            vec![
                NjrLevel::NotOutlier,
                NjrLevel::Level1,
                NjrLevel::Level2,
                NjrLevel::NotOutlier
            ]
        );
        assert!((njr_outliers(&class, 0.95).unwrap()[0].comparator_rate - total).abs() < 1e-15);
        let lower_level = [component(1000, 10, 1000.0), component(100, 3, 200.0)];
        // Class rate 13/1200; the second component's ratio is 1.5/1.0833 = 1.385 < 1.5.
        assert_eq!(
            njr_outliers(&lower_level, 0.95).unwrap()[1].verdict,
            NjrLevel::NotOutlier
        );
        let level2 = [component(1000, 10, 1000.0), component(100, 4, 200.0)];
        // Ratio 2.0 / (14/1200 × 100 = 1.1667) = 1.71 with 100 primaries: level 2.
        assert_eq!(
            njr_outliers(&level2, 0.95).unwrap()[1].verdict,
            NjrLevel::Level2
        );
    }

    #[test]
    fn aoanjrr_leaves_a_dominant_component_out_of_the_group_rate() {
        let group = [
            component(5000, 10, 10_000.0), // > 25% of primaries: excluded from the comparator
            component(600, 12, 1000.0),
            component(600, 12, 1000.0),
            component(600, 12, 1000.0),
            component(40, 10, 100.0), // 10 per 100 years against 1.2: flagged
            component(3, 3, 5.0),     // 100% revised with 3 revisions: eligible despite 3 primaries
        ];
        let result = aoanjrr_stage1(&group, 0.95).unwrap();
        let comparator = 100.0 * (12.0 * 3.0 + 10.0 + 3.0) / 3105.0;
        assert!((result[0].comparator_rate - comparator).abs() < 1e-12);
        let flagged: Vec<bool> = result.iter().map(|a| a.verdict).collect();
        assert_eq!(flagged, vec![false, false, false, false, true, true]);
    }

    #[test]
    fn more_revisions_than_primaries_are_rejected() {
        assert!(matches!(
            njr_outliers(&[component(1, 2, 1.0)], 0.95),
            Err(StatsError::InvalidValue {
                field: "n_revisions",
                index: 0,
                ..
            })
        ));
    }
}
