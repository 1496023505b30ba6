//! Outliers: implants by the NJR rule on revisions per 100 component-years and by the
//! AOANJRR stage-1 screen, each against the model's device type; providers and consultants by
//! risk-adjusted observed/expected removal within the outcome window and 90-day mortality on
//! funnel plots (95% alert, 99.8% alarm) over 5- and 10-year windows, with overdispersion.
//!
//! Expected counts are sums of per-procedure risks from logistic models on age, sex,
//! procedure class and indication fitted to every eligible procedure nationally (`signals::logistic_risks`).
//! A procedure is eligible for a window when its date lies in the window and its outcome period
//! has passed by the analysis date.

use serde::Serialize;

use mdor_stats::{
    ComponentExposure, FunnelOptions, FunnelZone, LimitMethod, NjrLevel, Overdispersion,
    aoanjrr_stage1, funnel_ratios, njr_outliers,
};

use crate::error::ServiceError;
use crate::surveillance::extract::{Cohort, DAYS_PER_YEAR, Exit};
use crate::surveillance::signals::{ProcedureRisks, logistic_risks};

/// How the funnel limits allow for overdispersion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OverdispersionMethod {
    /// Limits from sampling variance alone.
    None,
    /// A multiplicative factor `φ` on the variance.
    Multiplicative,
    /// An additive between-unit variance `τ²` (DerSimonian–Laird).
    Additive,
}

/// Outlier thresholds; the defaults are explained in `docs/surveillance.md`.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierConfig {
    /// Funnel windows, in years before the analysis date.
    pub windows_years: Vec<u32>,
    /// The mortality outcome: death within this many days of the procedure.
    pub mortality_days: i32,
    pub overdispersion: OverdispersionMethod,
    /// Confidence level of the implant revision rates' intervals.
    pub confidence_level: f64,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            windows_years: vec![5, 10],
            mortality_days: 90,
            overdispersion: OverdispersionMethod::Additive,
            confidence_level: 0.95,
        }
    }
}

/// Everything the outlier rules flagged.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OutlierReport {
    /// Device models flagged by the NJR rule (either level) or the AOANJRR screen.
    pub implants: Vec<ImplantOutlier>,
    /// One entry per funnel (outcome × window × unit kind).
    pub funnels: Vec<FunnelSummary>,
    /// Units outside the 95% limits of a funnel.
    pub funnel_outliers: Vec<FunnelOutlier>,
    pub warnings: Vec<String>,
}

/// A device model flagged by an implant rule.
#[derive(Debug, Clone, Serialize)]
pub struct ImplantOutlier {
    pub udi_di: String,
    pub device_type: String,
    pub n_primaries: u64,
    pub n_revisions: u64,
    pub component_years: f64,
    /// Revisions per 100 component-years with its exact interval.
    pub rate: f64,
    pub rate_lower: f64,
    pub rate_upper: f64,
    /// The class's pooled rate (NJR comparator).
    pub class_rate: f64,
    pub ratio: f64,
    pub p_value: f64,
    /// `level_1`, `level_2` or `none`.
    pub njr: &'static str,
    pub aoanjrr_flagged: bool,
}

/// One funnel's overall figures.
#[derive(Debug, Clone, Serialize)]
pub struct FunnelSummary {
    /// `revision` or `mortality`.
    pub outcome: &'static str,
    pub window_years: u32,
    /// `provider` or `consultant`.
    pub subject_kind: &'static str,
    pub n_units: usize,
    pub phi: f64,
    pub tau_squared: f64,
    pub n_outside_95: usize,
    pub n_outside_998: usize,
}

/// A unit outside a funnel's 95% limits.
#[derive(Debug, Clone, Serialize)]
pub struct FunnelOutlier {
    pub outcome: &'static str,
    pub window_years: u32,
    pub subject_kind: &'static str,
    pub subject: String,
    pub n_procedures: u64,
    pub observed: u64,
    pub expected: f64,
    pub ratio: f64,
    /// `high_alarm` (beyond 99.8%), `high_alert` (beyond 95%), `low_alert` or `low_alarm`.
    pub zone: &'static str,
    pub upper_95: f64,
    pub upper_998: f64,
}

pub(crate) fn check_config(config: &OutlierConfig) -> Result<(), ServiceError> {
    if config.windows_years.is_empty() || config.windows_years.contains(&0) {
        return Err(ServiceError::invalid(
            "windows_years",
            "out_of_range",
            "funnel windows must be one year or more",
        ));
    }
    if config.mortality_days < 1 {
        return Err(ServiceError::invalid(
            "mortality_days",
            "out_of_range",
            "the mortality window must be at least one day",
        ));
    }
    if !(config.confidence_level > 0.0 && config.confidence_level < 1.0) {
        return Err(ServiceError::invalid(
            "confidence_level",
            "out_of_range",
            "the confidence level must lie strictly between 0 and 1",
        ));
    }
    Ok(())
}

pub(crate) fn detect(
    cohort: &Cohort,
    config: &OutlierConfig,
    revision_risks: Result<&ProcedureRisks, &String>,
    outcome_days: i32,
) -> OutlierReport {
    let mut report = OutlierReport::default();
    implant_outliers(cohort, config, &mut report);
    match revision_risks {
        Ok(risks) => {
            let window_ends: Vec<i32> = risks
                .cases
                .iter()
                .map(|&p| cohort.procedures[p as usize].start_day)
                .collect();
            funnels(
                cohort,
                config,
                "revision",
                &risks.cases,
                &risks.outcome,
                &risks.risk,
                &window_ends,
                outcome_days,
                &mut report,
            );
        }
        Err(warning) => report.warnings.push(format!("revision funnels: {warning}")),
    }
    let mortality_days = config.mortality_days;
    let cases: Vec<u32> = (0..cohort.procedures.len() as u32)
        .filter(|&p| cohort.procedures[p as usize].start_day + mortality_days <= cohort.as_of_day)
        .collect();
    let outcome: Vec<bool> = cases
        .iter()
        .map(|&p| {
            let procedure = &cohort.procedures[p as usize];
            procedure
                .death_day
                .is_some_and(|d| d <= procedure.start_day + mortality_days)
        })
        .collect();
    match logistic_risks(cohort, &cases, &outcome) {
        Ok(risks) => {
            let starts: Vec<i32> = cases
                .iter()
                .map(|&p| cohort.procedures[p as usize].start_day)
                .collect();
            funnels(
                cohort,
                config,
                "mortality",
                &cases,
                &outcome,
                &risks,
                &starts,
                mortality_days,
                &mut report,
            );
        }
        Err(warning) => report
            .warnings
            .push(format!("mortality funnels: {warning}")),
    }
    report
}

fn implant_outliers(cohort: &Cohort, config: &OutlierConfig, report: &mut OutlierReport) {
    let n_models = cohort.models.len();
    let mut exposure = vec![
        ComponentExposure {
            n_primaries: 0,
            n_revisions: 0,
            component_years: 0.0,
        };
        n_models
    ];
    // One unit per model per procedure, as for the signals: NJR and AOANJRR count primaries.
    for implant in &cohort.model_units() {
        let e = &mut exposure[implant.model as usize];
        e.n_primaries += 1;
        e.n_revisions += u64::from(implant.exit == Exit::Revision);
        e.component_years += implant.years();
    }
    for t in 0..cohort.device_types.len() as u32 {
        // Models with (almost) no follow-up have no rate; they are left out of the class.
        let members: Vec<usize> = (0..n_models)
            .filter(|&m| cohort.model_type[m] == t && exposure[m].component_years >= 0.01)
            .collect();
        if members.len() < 2 {
            continue;
        }
        let class: Vec<ComponentExposure> = members.iter().map(|&m| exposure[m]).collect();
        let njr = njr_outliers(&class, config.confidence_level);
        let aoanjrr = aoanjrr_stage1(&class, config.confidence_level);
        let (njr, aoanjrr) = match (njr, aoanjrr) {
            (Ok(njr), Ok(aoanjrr)) => (njr, aoanjrr),
            (Err(e), _) | (_, Err(e)) => {
                report.warnings.push(format!(
                    "implant outliers for {}: {e}",
                    cohort.device_types[t as usize]
                ));
                continue;
            }
        };
        for ((&m, n), a) in members.iter().zip(&njr).zip(&aoanjrr) {
            let level = match n.verdict {
                NjrLevel::Level1 => "level_1",
                NjrLevel::Level2 => "level_2",
                NjrLevel::NotOutlier => "none",
            };
            if level == "none" && !a.verdict {
                continue;
            }
            report.implants.push(ImplantOutlier {
                udi_di: cohort.models[m].udi_di.clone(),
                device_type: cohort.device_types[t as usize].clone(),
                n_primaries: exposure[m].n_primaries,
                n_revisions: exposure[m].n_revisions,
                component_years: exposure[m].component_years,
                rate: n.rate.rate,
                rate_lower: n.rate.lower,
                rate_upper: n.rate.upper,
                class_rate: n.comparator_rate,
                ratio: n.ratio,
                p_value: n.p_value,
                njr: level,
                aoanjrr_flagged: a.verdict,
            });
        }
    }
}

/// Funnels of one outcome for every window and for providers and consultants.
#[allow(clippy::too_many_arguments)]
fn funnels(
    cohort: &Cohort,
    config: &OutlierConfig,
    outcome_name: &'static str,
    cases: &[u32],
    outcome: &[bool],
    risk: &[f64],
    start_days: &[i32],
    outcome_days: i32,
    report: &mut OutlierReport,
) {
    let overdispersion = match config.overdispersion {
        OverdispersionMethod::None => Overdispersion::None,
        OverdispersionMethod::Multiplicative => Overdispersion::Multiplicative,
        OverdispersionMethod::Additive => Overdispersion::Additive,
    };
    for &window in &config.windows_years {
        let from = cohort.as_of_day - (f64::from(window) * DAYS_PER_YEAR).round() as i32;
        let until = cohort.as_of_day - outcome_days;
        for subject_kind in ["provider", "consultant"] {
            let n_units = if subject_kind == "provider" {
                cohort.providers.len()
            } else {
                cohort.consultants.len()
            };
            let mut observed = vec![0u64; n_units];
            let mut expected = vec![0.0; n_units];
            let mut counts = vec![0u64; n_units];
            for k in 0..cases.len() {
                if start_days[k] < from || start_days[k] > until {
                    continue;
                }
                let procedure = &cohort.procedures[cases[k] as usize];
                let u = if subject_kind == "provider" {
                    procedure.provider
                } else {
                    procedure.consultant
                } as usize;
                observed[u] += u64::from(outcome[k]);
                expected[u] += risk[k];
                counts[u] += 1;
            }
            let units: Vec<usize> = (0..n_units)
                .filter(|&u| counts[u] > 0 && expected[u] >= 1e-9)
                .collect();
            if units.is_empty() {
                continue;
            }
            let o: Vec<u64> = units.iter().map(|&u| observed[u]).collect();
            let e: Vec<f64> = units.iter().map(|&u| expected[u]).collect();
            let funnel = funnel_ratios(
                &o,
                &e,
                FunnelOptions {
                    target: None,
                    method: LimitMethod::Exact,
                    overdispersion,
                    winsorise: 0.1,
                },
            );
            let funnel = match funnel {
                Ok(funnel) => funnel,
                Err(error) => {
                    report.warnings.push(format!(
                        "{outcome_name} funnel over {window} years for {subject_kind}s: {error}"
                    ));
                    continue;
                }
            };
            let mut n_outside_95 = 0;
            let mut n_outside_998 = 0;
            for (k, unit) in funnel.units.iter().enumerate() {
                let zone = match unit.zone {
                    FunnelZone::Within => continue,
                    FunnelZone::HighAlert => "high_alert",
                    FunnelZone::HighAlarm => "high_alarm",
                    FunnelZone::LowAlert => "low_alert",
                    FunnelZone::LowAlarm => "low_alarm",
                };
                n_outside_95 += 1;
                n_outside_998 += usize::from(matches!(
                    unit.zone,
                    FunnelZone::HighAlarm | FunnelZone::LowAlarm
                ));
                let u = units[k];
                report.funnel_outliers.push(FunnelOutlier {
                    outcome: outcome_name,
                    window_years: window,
                    subject_kind,
                    subject: if subject_kind == "provider" {
                        cohort.providers[u].clone()
                    } else {
                        cohort.consultants[u].clone()
                    },
                    n_procedures: counts[u],
                    observed: observed[u],
                    expected: expected[u],
                    ratio: unit.value,
                    zone,
                    upper_95: unit.upper_95,
                    upper_998: unit.upper_998,
                });
            }
            report.funnels.push(FunnelSummary {
                outcome: outcome_name,
                window_years: window,
                subject_kind,
                n_units: units.len(),
                phi: funnel.phi,
                tau_squared: funnel.tau_squared,
                n_outside_95,
                n_outside_998,
            });
        }
    }
}
