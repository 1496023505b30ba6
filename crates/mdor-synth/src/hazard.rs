//! The outcome model: Weibull revision hazards per procedure kind, a Gompertz mortality law,
//! and the random draws they need.
//!
//! Times are in years since the procedure. Every draw inverts a cumulative hazard in closed
//! form, so one exponential variate gives one event time with no rejection loop, which keeps
//! generation fast and the random stream easy to reason about.

use std::collections::BTreeMap;

use rand::Rng;
use serde::Serialize;

use crate::catalogue::ProcedureKind;

/// Days per year used to turn event times into dates.
pub(crate) const DAYS_PER_YEAR: f64 = 365.25;

/// A Weibull cumulative hazard `H(t) = (t / scale_years) ^ shape`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Weibull {
    pub shape: f64,
    pub scale_years: f64,
}

impl Weibull {
    pub fn cumulative_hazard(&self, years: f64) -> f64 {
        (years / self.scale_years).powf(self.shape)
    }

    /// The time at which the cumulative hazard reaches `target`.
    pub fn inverse_cumulative_hazard(&self, target: f64) -> f64 {
        self.scale_years * target.powf(1.0 / self.shape)
    }

    /// Fixes shape and the cumulative incidence at one time point: the probability of the
    /// event by `years` is `incidence`.
    pub(crate) fn calibrated(shape: f64, years: f64, incidence: f64) -> Weibull {
        let cumulative_hazard = -(1.0 - incidence).ln();
        Weibull {
            shape,
            scale_years: years / cumulative_hazard.powf(1.0 / shape),
        }
    }
}

/// Baseline revision hazard of one procedure kind, before frailties and multipliers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineHazard {
    pub procedure_kind: &'static str,
    /// Hazard of any revision of the construct.
    pub revision: Weibull,
    /// Cumulative incidence of revision implied by `revision` at 5 and 10 years, for readers.
    pub revised_by_5_years: f64,
    pub revised_by_10_years: f64,
    /// Pacemakers only: generator replacement for battery depletion, a second competing
    /// hazard on the generator alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub battery_depletion: Option<Weibull>,
    /// Share of the construct's hazard attributed to each component when choosing which
    /// component failed; the failed component decides what else is removed with it.
    /// Keyed by device type slug; the shares of one procedure kind sum to 1.
    pub component_share: BTreeMap<&'static str, f64>,
}

/// An indication of a procedure kind: its code, its share of the kind's procedures and its
/// revision hazard ratio against the kind's first (most common) indication.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct IndicationEffect {
    pub code: &'static str,
    pub share: f64,
    pub hazard_ratio: f64,
}

const fn indication(code: &'static str, share: f64, hazard_ratio: f64) -> IndicationEffect {
    IndicationEffect {
        code,
        share,
        hazard_ratio,
    }
}

/// Why each kind of procedure is done, with realistic mixes (NJR, BCIR and pelvic floor
/// registry reports) and hazard ratios of the order those registries publish: hips for a
/// fracture and breasts reconstructed after cancer revise more often. Cochlear implants have
/// none: the hearing registry's dataset does not record an indication. The codes are those of
/// the `mdor_core` 1.2 `indication` code list (and BCIR's and the pelvic floor registry's).
pub fn indications(kind: ProcedureKind) -> &'static [IndicationEffect] {
    const HIP: [IndicationEffect; 5] = [
        indication("osteoarthritis", 0.88, 1.0),
        indication("fracture", 0.06, 1.5),
        indication("avascular_necrosis", 0.03, 1.3),
        indication("inflammatory_arthritis", 0.02, 1.2),
        indication("developmental_dysplasia", 0.01, 1.3),
    ];
    const KNEE: [IndicationEffect; 3] = [
        indication("osteoarthritis", 0.95, 1.0),
        indication("inflammatory_arthritis", 0.04, 1.2),
        indication("post_traumatic_arthritis", 0.01, 1.6),
    ];
    const BREAST: [IndicationEffect; 3] = [
        indication("cosmetic", 0.72, 1.0),
        indication("reconstructive", 0.25, 1.6),
        indication("revision", 0.03, 1.8),
    ];
    const PACEMAKER: [IndicationEffect; 3] = [
        indication("sick_sinus_syndrome", 0.45, 1.0),
        indication("atrioventricular_block", 0.45, 1.0),
        indication("atrial_fibrillation_bradycardia", 0.10, 1.0),
    ];
    const MESH: [IndicationEffect; 3] = [
        indication("sui", 0.70, 1.0),
        indication("prolapse", 0.25, 1.4),
        indication("sui_and_prolapse", 0.05, 1.2),
    ];
    match kind {
        ProcedureKind::Hip => &HIP,
        ProcedureKind::Knee => &KNEE,
        ProcedureKind::Breast => &BREAST,
        ProcedureKind::Cochlear => &[],
        ProcedureKind::Pacemaker => &PACEMAKER,
        ProcedureKind::Mesh => &MESH,
    }
}

/// The baseline hazard of each procedure kind, calibrated to published registry orders of
/// magnitude (NJR, BCIR and NRHI annual reports): see docs/synthetic-data.md.
pub fn baseline_hazard(kind: ProcedureKind) -> BaselineHazard {
    let (revision, battery_depletion, component_share): (Weibull, Option<Weibull>, Vec<_>) =
        match kind {
            // Primary hips: about 2% revised at 5 years and 4.5% at 10.
            ProcedureKind::Hip => (
                Weibull::calibrated(1.15, 10.0, 0.045),
                None,
                vec![
                    ("hip_stem", 0.30),
                    ("hip_cup", 0.40),
                    ("hip_head", 0.10),
                    ("hip_liner", 0.20),
                ],
            ),
            // Knees revise relatively early (infection, instability): 2.6% at 5, 4.2% at 10.
            ProcedureKind::Knee => (
                Weibull::calibrated(0.7, 10.0, 0.042),
                None,
                vec![
                    ("knee_femoral", 0.35),
                    ("knee_tibial", 0.40),
                    ("knee_insert", 0.25),
                ],
            ),
            // Breast implants: about 10% revised or explanted at 10 years.
            ProcedureKind::Breast => (
                Weibull::calibrated(1.3, 10.0, 0.10),
                None,
                vec![("breast_implant", 1.0)],
            ),
            // Cochlear implants: device failure and infection, about 4% at 10 years.
            ProcedureKind::Cochlear => (
                Weibull::calibrated(1.0, 10.0, 0.04),
                None,
                vec![("cochlear_implant", 1.0)],
            ),
            // Pacemakers: early complications (lead displacement, pocket infection) about 3%
            // in the first year, levelling off; generators replaced for battery depletion
            // mostly between 8 and 12 years.
            ProcedureKind::Pacemaker => (
                Weibull::calibrated(0.3, 1.0, 0.03),
                Some(Weibull {
                    shape: 5.0,
                    scale_years: 11.0,
                }),
                vec![("pacemaker", 0.3), ("pacing_lead", 0.7)],
            ),
            // Pelvic mesh and tape: about 5% removed at 5 years, early-weighted.
            ProcedureKind::Mesh => (
                Weibull::calibrated(0.8, 5.0, 0.05),
                None,
                vec![("pelvic_mesh", 1.0)],
            ),
        };
    let incidence = |years: f64| 1.0 - (-revision.cumulative_hazard(years)).exp();
    BaselineHazard {
        procedure_kind: kind.as_str(),
        revised_by_5_years: round4(incidence(5.0)),
        revised_by_10_years: round4(incidence(10.0)),
        revision,
        battery_depletion,
        component_share: component_share.into_iter().collect(),
    }
}

/// Gompertz mortality `mu(age) = a * exp(b * age)` per year, times a sex multiplier.
///
/// With `a = 5.35e-5` and `b = ln(5) / 20` annual mortality is about 1% at 65 and 5% at 85,
/// close to the ONS national life tables averaged over sex.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Gompertz {
    pub level_per_year: f64,
    pub rate_per_year_of_age: f64,
    pub male_multiplier: f64,
    pub female_multiplier: f64,
}

pub const MORTALITY: Gompertz = Gompertz {
    level_per_year: 5.35e-5,
    rate_per_year_of_age: 0.080_47,
    male_multiplier: 1.25,
    female_multiplier: 0.80,
};

impl Gompertz {
    /// Years from `age_years` until death, given a unit exponential draw and the patient's
    /// overall multiplier. Inverts `H(t) = m a e^{b x} (e^{b t} - 1) / b`.
    pub(crate) fn years_until_death(&self, age_years: f64, multiplier: f64, unit_exp: f64) -> f64 {
        let b = self.rate_per_year_of_age;
        let scale = multiplier * self.level_per_year * (b * age_years).exp() / b;
        (1.0 + unit_exp / scale).ln() / b
    }
}

/// A standard normal draw by the Box–Muller transform (rand 0.8 without rand_distr has none).
pub(crate) fn standard_normal(rng: &mut impl Rng) -> f64 {
    // 1 - gen() lies in (0, 1], so the logarithm is finite.
    let u1: f64 = 1.0 - rng.r#gen::<f64>();
    let u2: f64 = rng.r#gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A unit exponential draw.
pub(crate) fn unit_exponential(rng: &mut impl Rng) -> f64 {
    -(1.0 - rng.r#gen::<f64>()).ln()
}

/// A normal draw clamped to `[low, high]`; clamping rather than resampling keeps the number
/// of random draws per record fixed.
pub(crate) fn clamped_normal(rng: &mut impl Rng, mean: f64, sd: f64, low: f64, high: f64) -> f64 {
    (mean + sd * standard_normal(rng)).clamp(low, high)
}

/// A lognormal frailty with mean 1: `exp(sigma Z - sigma^2 / 2)`.
pub(crate) fn lognormal_frailty(rng: &mut impl Rng, sigma: f64) -> f64 {
    (sigma * standard_normal(rng) - sigma * sigma / 2.0).exp()
}

/// Time to revision under a hazard that is `early_multiplier` times `multiplier * H0` up to
/// `early_years` and `multiplier * H0` after, for a unit exponential draw.
///
/// `H(t) = m (E H0(min(t, w)) + H0(t) - H0(min(t, w)))`, inverted piece by piece.
pub(crate) fn years_until_revision(
    baseline: &Weibull,
    multiplier: f64,
    early_multiplier: f64,
    early_years: f64,
    unit_exp: f64,
) -> f64 {
    let target = unit_exp / multiplier;
    let early_total = early_multiplier * baseline.cumulative_hazard(early_years);
    if target <= early_total {
        return baseline.inverse_cumulative_hazard(target / early_multiplier);
    }
    let after = target - early_total + baseline.cumulative_hazard(early_years);
    baseline.inverse_cumulative_hazard(after)
}

fn round4(value: f64) -> f64 {
    (value * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kinds_indications_are_a_mix_against_its_most_common() {
        for kind in ProcedureKind::ALL {
            let mix = indications(kind);
            if mix.is_empty() {
                continue;
            }
            let total: f64 = mix.iter().map(|i| i.share).sum();
            assert!((total - 1.0).abs() < 1e-9, "{kind:?} shares sum to {total}");
            assert_eq!(mix[0].hazard_ratio, 1.0, "{kind:?}");
            assert!(mix.iter().all(|i| i.share <= mix[0].share), "{kind:?}");
        }
    }

    #[test]
    fn calibrated_weibull_hits_its_calibration_point() {
        let hips = baseline_hazard(ProcedureKind::Hip);
        assert!((hips.revised_by_10_years - 0.045).abs() < 1e-4);
        assert!((0.015..0.025).contains(&hips.revised_by_5_years));
        let breast = baseline_hazard(ProcedureKind::Breast);
        assert!((breast.revised_by_10_years - 0.10).abs() < 1e-4);
    }

    #[test]
    fn gompertz_gives_about_one_percent_at_65_and_five_at_85() {
        let annual =
            |age: f64| MORTALITY.level_per_year * (MORTALITY.rate_per_year_of_age * age).exp();
        assert!((annual(65.0) - 0.01).abs() < 0.001);
        assert!((annual(85.0) - 0.05).abs() < 0.005);
    }

    #[test]
    fn death_time_inverts_the_gompertz_cumulative_hazard() {
        let t = MORTALITY.years_until_death(70.0, 1.0, 0.5);
        let b = MORTALITY.rate_per_year_of_age;
        let h = MORTALITY.level_per_year * (b * 70.0).exp() * ((b * t).exp() - 1.0) / b;
        assert!((h - 0.5).abs() < 1e-9);
    }

    #[test]
    fn revision_time_is_continuous_at_the_end_of_the_early_window() {
        let baseline = Weibull::calibrated(1.0, 10.0, 0.1);
        let at_window = 10.0 * baseline.cumulative_hazard(2.0);
        let t = years_until_revision(&baseline, 1.0, 10.0, 2.0, at_window);
        assert!((t - 2.0).abs() < 1e-9);
        let later = years_until_revision(&baseline, 1.0, 10.0, 2.0, at_window + 0.01);
        assert!(later > 2.0);
    }
}
