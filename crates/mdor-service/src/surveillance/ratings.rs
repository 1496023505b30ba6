//! ODEP-style benchmark ratings per device model at 3, 5, 7 and 10 years.
//!
//! **Rule.** At horizon `t`, a model with at least `min_at_risk` implants still at risk is
//! rated `A*` when the upper 95% limit of its cumulative revision (1 − Kaplan–Meier, log
//! interval) is below the class benchmark, and `A` when it is below the benchmark plus the
//! margin; otherwise it is not rated at that horizon, with the reason. The benchmark is fixed
//! (ODEP-like) for the classes listed in `fixed_benchmark_device_types` (hips and knees by
//! default) and is otherwise the class's own pooled cumulative revision at `t` (every model of
//! the device type together). The unit is the implant, so the construct-level ODEP figures are
//! lenient for a single component; see `docs/surveillance.md` for the choice of defaults.

use serde::Serialize;

use mdor_stats::{KaplanMeierOptions, SurvivalData, kaplan_meier_by_group};

use crate::error::ServiceError;
use crate::surveillance::extract::{Cohort, Exit};

/// The rule at one horizon.
#[derive(Debug, Clone, PartialEq)]
pub struct HorizonRule {
    pub years: u32,
    /// Fixed benchmark (a proportion) for the classes with one.
    pub benchmark: f64,
    /// Added to the benchmark for an `A` rating (a proportion).
    pub margin: f64,
    /// Implants at risk at the horizon needed for any rating.
    pub min_at_risk: u64,
}

/// Rating thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct RatingConfig {
    pub horizons: Vec<HorizonRule>,
    /// Device types rated against the fixed benchmarks; others against their class.
    pub fixed_benchmark_device_types: Vec<String>,
}

impl Default for RatingConfig {
    fn default() -> Self {
        let rule = |years, benchmark, margin, min_at_risk| HorizonRule {
            years,
            benchmark,
            margin,
            min_at_risk,
        };
        RatingConfig {
            horizons: vec![
                rule(3, 0.030, 0.005, 100),
                rule(5, 0.035, 0.005, 100),
                rule(7, 0.040, 0.010, 75),
                rule(10, 0.050, 0.015, 50),
            ],
            fixed_benchmark_device_types: [
                "hip_stem",
                "hip_cup",
                "hip_head",
                "hip_liner",
                "knee_femoral",
                "knee_tibial",
                "knee_insert",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// A rating level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RatingLevel {
    /// Upper limit below the benchmark.
    #[serde(rename = "A*")]
    AStar,
    /// Upper limit below the benchmark plus the margin.
    #[serde(rename = "A")]
    A,
}

/// One model's rating at one horizon.
#[derive(Debug, Clone, Serialize)]
pub struct RatingOutcome {
    pub years: u32,
    /// `None` when not rated; `reason` says why.
    pub level: Option<RatingLevel>,
    pub n_at_risk: u64,
    pub cumulative_revision: Option<f64>,
    pub upper_95: Option<f64>,
    pub benchmark: Option<f64>,
    /// `fixed` or `class`.
    pub benchmark_source: &'static str,
    pub reason: Option<String>,
}

/// A model's ratings at every horizon.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceRating {
    pub udi_di: String,
    pub device_type: String,
    pub n_implants: u64,
    pub horizons: Vec<RatingOutcome>,
}

pub(crate) fn check_config(config: &RatingConfig) -> Result<(), ServiceError> {
    for rule in &config.horizons {
        let ok = rule.years >= 1
            && (0.0..1.0).contains(&rule.benchmark)
            && (0.0..1.0).contains(&rule.margin);
        if !ok {
            return Err(ServiceError::invalid(
                "horizons",
                "out_of_range",
                format!(
                    "the rule at {} years needs a horizon of at least a year and benchmark and margin in [0, 1)",
                    rule.years
                ),
            ));
        }
    }
    Ok(())
}

pub(crate) fn rate(cohort: &Cohort, config: &RatingConfig) -> Vec<DeviceRating> {
    if cohort.implants.is_empty() || config.horizons.is_empty() {
        return Vec::new();
    }
    let time: Vec<f64> = cohort.implants.iter().map(|i| i.years()).collect();
    let event: Vec<bool> = cohort
        .implants
        .iter()
        .map(|i| i.exit == Exit::Revision)
        .collect();
    let models: Vec<u32> = cohort.implants.iter().map(|i| i.model).collect();
    let types: Vec<u32> = cohort
        .implants
        .iter()
        .map(|i| cohort.implant_type(i))
        .collect();
    let Ok(data) = SurvivalData::from_vecs(time, event) else {
        return Vec::new();
    };
    let (Ok(by_model), Ok(by_type)) = (
        kaplan_meier_by_group(&data, &models, KaplanMeierOptions::default()),
        kaplan_meier_by_group(&data, &types, KaplanMeierOptions::default()),
    ) else {
        return Vec::new();
    };
    let mut class_curve = vec![None; cohort.device_types.len()];
    for curve in &by_type {
        class_curve[curve.group as usize] = Some(&curve.curve);
    }
    let mut n_implants = vec![0u64; cohort.models.len()];
    for &m in &models {
        n_implants[m as usize] += 1;
    }
    by_model
        .iter()
        .map(|curve| {
            let m = curve.group as usize;
            let t = cohort.model_type[m] as usize;
            let device_type = &cohort.device_types[t];
            let fixed = config
                .fixed_benchmark_device_types
                .iter()
                .any(|d| d == device_type);
            let horizons = config
                .horizons
                .iter()
                .map(|rule| {
                    let years = f64::from(rule.years);
                    let (benchmark, source) = if fixed {
                        (Some(rule.benchmark), "fixed")
                    } else {
                        let class = class_curve[t]
                            .and_then(|c| c.cumulative_revision_at(&[years])[0])
                            .map(|p| p.estimate);
                        (class, "class")
                    };
                    let point = curve.curve.cumulative_revision_at(&[years])[0];
                    let n_at_risk = point.map_or(0, |p| p.n_risk);
                    let (level, reason) = match (point, benchmark) {
                        (None, _) => (None, Some(format!("no follow-up reaches {} years", rule.years))),
                        (_, None) => (None, Some("the class has no estimate at this horizon".to_string())),
                        (Some(_), Some(_)) if n_at_risk < rule.min_at_risk => (
                            None,
                            Some(format!(
                                "{n_at_risk} at risk, fewer than the {} required",
                                rule.min_at_risk
                            )),
                        ),
                        (Some(p), Some(b)) if p.upper < b => (Some(RatingLevel::AStar), None),
                        (Some(p), Some(b)) if p.upper < b + rule.margin => (Some(RatingLevel::A), None),
                        (Some(p), Some(b)) => (
                            None,
                            Some(format!(
                                "upper 95% limit {:.2}% is not below the benchmark {:.2}% plus margin {:.2}%",
                                100.0 * p.upper,
                                100.0 * b,
                                100.0 * rule.margin
                            )),
                        ),
                    };
                    RatingOutcome {
                        years: rule.years,
                        level,
                        n_at_risk,
                        cumulative_revision: point.map(|p| p.estimate),
                        upper_95: point.map(|p| p.upper),
                        benchmark,
                        benchmark_source: source,
                        reason,
                    }
                })
                .collect();
            DeviceRating {
                udi_di: cohort.models[m].udi_di.clone(),
                device_type: device_type.clone(),
                n_implants: n_implants[m],
                horizons,
            }
        })
        .collect()
}
