//! Survivorship of a group of devices: cumulative revision as 1 − Kaplan–Meier and as the
//! Aalen–Johansen cumulative incidence with death competing, at 1, 3, 5, 10 and 15 years with
//! 95% intervals and numbers at risk, and the hazard ratio against the rest of the class from
//! a Cox model adjusted for age, sex and indication.
//!
//! The unit is the implant for a model, brand, manufacturer or device type, and the construct
//! (the procedure's components of the combination's device types) for a combination; the
//! construct's event is the first removal of any of those components. The class is every
//! implant (construct) of the same device type(s). The Cox model adjusts for age, sex and the
//! procedure's indication where they vary (`class_design` says how indications are coded)
//! and, when the group spans several device types, is stratified by device type (separate
//! baseline hazards).

use serde::Serialize;

use std::sync::Arc;

use mdor_domain::UdiDi;
use mdor_stats::{
    CiTransform, CompetingRisksData, KaplanMeier, KaplanMeierOptions, SurvivalData, aalen_johansen,
    kaplan_meier,
};

use crate::error::ServiceError;
use crate::surveillance::class_design::{ClassDesign, ClassDesigns, ClassFit, Unit};
use crate::surveillance::extract::{Cohort, DAYS_PER_YEAR, Exit};

/// The years at which survivorship is reported.
pub const REPORT_YEARS: [u32; 5] = [1, 3, 5, 10, 15];

/// Below this many at risk an estimate is reported with a warning.
const FEW_AT_RISK: u64 = 20;

/// Which devices a survivorship report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceGrouping {
    /// One device model (UDI-DI).
    Model(UdiDi),
    /// Every model of one brand of one manufacturer.
    Brand { manufacturer: String, brand: String },
    /// Every model of one manufacturer.
    Manufacturer(String),
    /// Every model of one device type (the class itself: no hazard ratio).
    DeviceType(String),
    /// Procedures with a component matching each part (e.g. a stem model and a cup brand),
    /// followed as one construct. Parts cannot themselves be combinations.
    Combination(Vec<DeviceGrouping>),
}

/// A survivorship report.
#[derive(Debug, Clone, Serialize)]
pub struct SurvivorshipReport {
    /// What was analysed, in words.
    pub grouping: String,
    /// `implant` or `construct`.
    pub unit: &'static str,
    /// The device types making up the class.
    pub device_types: Vec<String>,
    /// The analysis date: follow-up is censored here.
    pub as_of: chrono::NaiveDate,
    pub n_units: u64,
    pub n_revisions: u64,
    /// Deaths before any revision (censored for Kaplan–Meier, competing for Aalen–Johansen).
    pub n_deaths: u64,
    /// One row per reported year.
    pub estimates: Vec<SurvivorshipPoint>,
    /// Against the rest of the class; `None` with a warning when it cannot be estimated.
    pub hazard_ratio: Option<HazardRatio>,
    /// Small numbers, estimates that could not be made, and why.
    pub warnings: Vec<String>,
}

/// Cumulative revision at one time.
#[derive(Debug, Clone, Serialize)]
pub struct SurvivorshipPoint {
    pub years: u32,
    /// Units still under observation at that time.
    pub n_at_risk: u64,
    /// `1 − S(t)` with its 95% interval (log transform); `None` beyond the last follow-up.
    pub kaplan_meier: Option<Estimate>,
    /// Aalen–Johansen cumulative incidence of revision with death competing.
    pub competing_risks: Option<Estimate>,
}

/// A proportion with its 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub estimate: f64,
    pub lower: f64,
    pub upper: f64,
}

/// The group's hazard of revision relative to the rest of its class.
#[derive(Debug, Clone, Serialize)]
pub struct HazardRatio {
    pub estimate: f64,
    pub lower: f64,
    pub upper: f64,
    /// Two-sided Wald p-value.
    pub p_value: f64,
    /// Units in the rest of the class.
    pub n_comparator: u64,
    pub n_comparator_revisions: u64,
    /// The covariates besides group membership: `age`, `sex`, `indication`, those that vary.
    pub adjusted_for: Vec<&'static str>,
    /// How indication was adjusted for; `None` when it was not.
    pub indication: Option<IndicationAdjustment>,
    /// Whether separate baseline hazards were fitted per device type.
    pub stratified_by_device_type: bool,
}

/// The indication levels of a hazard ratio's model.
#[derive(Debug, Clone, Serialize)]
pub struct IndicationAdjustment {
    /// The level the others are compared with: the class's most common indication.
    pub reference: String,
    /// The levels with a coefficient of their own; `not_recorded` is the procedures whose
    /// dataset records no indication, `other` the pooled indications.
    pub levels: Vec<String>,
    /// Indications with too few revisions for a coefficient of their own, pooled into `other`
    /// (or into the reference when even pooled they are too few).
    pub pooled: Vec<String>,
}

/// Computes the report for `grouping` over the cohort.
pub(crate) fn survivorship(
    cohort: &Cohort,
    grouping: &DeviceGrouping,
) -> Result<SurvivorshipReport, ServiceError> {
    let started = std::time::Instant::now();
    let (units, class_types, unit) = match grouping {
        DeviceGrouping::Combination(parts) => {
            let (units, types) = construct_units(cohort, parts)?;
            (units, types, "construct")
        }
        single => {
            let (units, types) = implant_units(cohort, single)?;
            (units, types, "implant")
        }
    };
    let units_built = started.elapsed();
    let mut warnings = Vec::new();
    let group: Vec<&Unit> = units.iter().filter(|u| u.in_group).collect();
    let time: Vec<f64> = group.iter().map(|u| u.years).collect();
    let revised: Vec<bool> = group.iter().map(|u| u.exit == Exit::Revision).collect();
    let cause: Vec<u32> = group.iter().map(|u| u.exit.cause()).collect();
    let km = SurvivalData::from_vecs(time.clone(), revised.clone())
        .and_then(|data| kaplan_meier(&data, KaplanMeierOptions::default()))
        .map_err(|e| ServiceError::Input(format!("survival analysis failed: {e}")))?;
    let aj = CompetingRisksData::new(&time, &cause)
        .and_then(|data| aalen_johansen(&data, 0.95, CiTransform::Log))
        .map_err(|e| ServiceError::Input(format!("competing-risks analysis failed: {e}")))?;
    let curves_fitted = started.elapsed();
    let estimates = REPORT_YEARS
        .iter()
        .map(|&years| point(&km, &aj, years, &mut warnings))
        .collect();
    let hazard_ratio = match grouping {
        DeviceGrouping::DeviceType(_) => {
            warnings.push("the group is the whole class: no hazard ratio against it".into());
            None
        }
        // A construct's units are procedures chosen by its parts, so they have no class design
        // to share.
        DeviceGrouping::Combination(_) => hazard_ratio(
            &units,
            class_types.len() > 1,
            &cohort.indications,
            None,
            &mut warnings,
        ),
        _ => hazard_ratio(
            &units,
            class_types.len() > 1,
            &cohort.indications,
            Some((&cohort.class_designs, &class_types)),
            &mut warnings,
        ),
    };
    tracing::debug!(
        units = units.len(),
        units_ms = units_built.as_secs_f64() * 1e3,
        curves_ms = (curves_fitted - units_built).as_secs_f64() * 1e3,
        hazard_ratio_ms = (started.elapsed() - curves_fitted).as_secs_f64() * 1e3,
        "survivorship computed"
    );
    Ok(SurvivorshipReport {
        grouping: describe(cohort, grouping),
        unit,
        device_types: class_types
            .iter()
            .map(|&t| cohort.device_types[t as usize].clone())
            .collect(),
        as_of: cohort.as_of,
        n_units: group.len() as u64,
        n_revisions: revised.iter().filter(|&&r| r).count() as u64,
        n_deaths: cause.iter().filter(|&&c| c == 2).count() as u64,
        estimates,
        hazard_ratio,
        warnings,
    })
}

/// Which models a single (non-combination) grouping selects.
pub(crate) fn models_matching(
    cohort: &Cohort,
    grouping: &DeviceGrouping,
) -> Result<Vec<bool>, ServiceError> {
    let matches: Vec<bool> = cohort
        .models
        .iter()
        .map(|m| match grouping {
            DeviceGrouping::Model(udi) => m.udi_di == udi.as_str(),
            DeviceGrouping::Brand {
                manufacturer,
                brand,
            } => &m.manufacturer == manufacturer && &m.brand == brand,
            DeviceGrouping::Manufacturer(manufacturer) => &m.manufacturer == manufacturer,
            DeviceGrouping::DeviceType(device_type) => &m.device_type == device_type,
            DeviceGrouping::Combination(_) => false,
        })
        .collect();
    if matches!(grouping, DeviceGrouping::Combination(_)) {
        return Err(ServiceError::invalid(
            "grouping",
            "nested_combination",
            "a combination's parts cannot be combinations",
        ));
    }
    if !matches.iter().any(|&m| m) {
        return Err(ServiceError::NotFound {
            what: "device model",
        });
    }
    Ok(matches)
}

/// The device types of the selected models, in index order.
fn types_of(cohort: &Cohort, selected: &[bool]) -> Vec<u32> {
    let mut present = vec![false; cohort.device_types.len()];
    for (m, &s) in selected.iter().enumerate() {
        if s {
            present[cohort.model_type[m] as usize] = true;
        }
    }
    (0..present.len() as u32)
        .filter(|&t| present[t as usize])
        .collect()
}

fn implant_units(
    cohort: &Cohort,
    grouping: &DeviceGrouping,
) -> Result<(Vec<Unit>, Vec<u32>), ServiceError> {
    let selected = models_matching(cohort, grouping)?;
    let class_types = types_of(cohort, &selected);
    let mut in_class = vec![false; cohort.device_types.len()];
    for &t in &class_types {
        in_class[t as usize] = true;
    }
    let units: Vec<Unit> = cohort
        .implants
        .iter()
        .filter(|i| in_class[cohort.implant_type(i) as usize])
        .map(|i| {
            let procedure = &cohort.procedures[i.procedure as usize];
            Unit {
                years: i.years(),
                exit: i.exit,
                age: procedure.age,
                male: procedure.male,
                indication: procedure.indication,
                in_group: selected[i.model as usize],
                stratum: cohort.implant_type(i),
            }
        })
        .collect();
    if !units.iter().any(|u| u.in_group) {
        return Err(ServiceError::NotFound { what: "implant" });
    }
    Ok((units, class_types))
}

fn construct_units(
    cohort: &Cohort,
    parts: &[DeviceGrouping],
) -> Result<(Vec<Unit>, Vec<u32>), ServiceError> {
    if parts.len() < 2 {
        return Err(ServiceError::invalid(
            "grouping",
            "too_few_parts",
            "a combination needs at least two parts",
        ));
    }
    let mut selected = Vec::with_capacity(parts.len());
    let mut part_types = Vec::with_capacity(parts.len());
    for part in parts {
        let s = models_matching(cohort, part)?;
        part_types.push(types_of(cohort, &s));
        selected.push(s);
    }
    let mut class_types: Vec<u32> = part_types.iter().flatten().copied().collect();
    class_types.sort_unstable();
    class_types.dedup();
    let mut in_construct = vec![false; cohort.device_types.len()];
    for &t in &class_types {
        in_construct[t as usize] = true;
    }
    let mut units = Vec::new();
    for procedure in &cohort.procedures {
        let implants =
            &cohort.implants[procedure.implants.start as usize..procedure.implants.end as usize];
        let has_type = |types: &[u32]| {
            implants
                .iter()
                .any(|i| types.contains(&cohort.implant_type(i)))
        };
        if !part_types.iter().all(|types| has_type(types)) {
            continue;
        }
        let in_group = selected
            .iter()
            .all(|s| implants.iter().any(|i| s[i.model as usize]));
        let components = implants
            .iter()
            .filter(|i| in_construct[cohort.implant_type(i) as usize]);
        let first_revision = components
            .filter(|i| i.exit == Exit::Revision)
            .map(|i| i.exit_day)
            .min();
        let (exit_day, exit) = match (first_revision, procedure.death_day) {
            (Some(r), Some(d)) if d < r => (d, Exit::Death),
            (Some(r), _) => (r, Exit::Revision),
            (None, Some(d)) => (d, Exit::Death),
            (None, None) => (cohort.as_of_day, Exit::Censored),
        };
        units.push(Unit {
            years: f64::from((exit_day - procedure.start_day).max(0)) / DAYS_PER_YEAR,
            exit,
            age: procedure.age,
            male: procedure.male,
            indication: procedure.indication,
            in_group,
            stratum: 0,
        });
    }
    if !units.iter().any(|u| u.in_group) {
        return Err(ServiceError::NotFound {
            what: "procedure with this combination",
        });
    }
    Ok((units, class_types))
}

fn point(
    km: &KaplanMeier,
    aj: &mdor_stats::CumulativeIncidence,
    years: u32,
    warnings: &mut Vec<String>,
) -> SurvivorshipPoint {
    let t = f64::from(years);
    let km_point = km.cumulative_revision_at(&[t])[0];
    let n_at_risk = km_point.map_or(0, |p| p.n_risk);
    let competing_risks = incidence_at(aj, t);
    match km_point {
        None => warnings.push(format!("no follow-up reaches {years} years")),
        Some(_) if n_at_risk < FEW_AT_RISK => warnings.push(format!(
            "only {n_at_risk} at risk at {years} years: the estimate is imprecise"
        )),
        Some(_) => {}
    }
    SurvivorshipPoint {
        years,
        n_at_risk,
        kaplan_meier: km_point.map(|p| Estimate {
            estimate: p.estimate,
            lower: p.lower,
            upper: p.upper,
        }),
        competing_risks,
    }
}

/// The cumulative incidence of revision (cause 1) at `t`, or `None` beyond the last exit time.
pub(crate) fn incidence_at(aj: &mdor_stats::CumulativeIncidence, t: f64) -> Option<Estimate> {
    let last = *aj.time.last()?;
    if t > last {
        return None;
    }
    let after = aj.time.partition_point(|&x| x <= t);
    let Some(revision) = aj.causes.first() else {
        // No cause was observed at all: nothing was revised.
        return Some(Estimate {
            estimate: 0.0,
            lower: 0.0,
            upper: 0.0,
        });
    };
    if after == 0 {
        return Some(Estimate {
            estimate: 0.0,
            lower: 0.0,
            upper: 0.0,
        });
    }
    let j = after - 1;
    Some(Estimate {
        estimate: revision.incidence[j],
        lower: revision.lower[j],
        upper: revision.upper[j],
    })
}

fn hazard_ratio(
    units: &[Unit],
    stratified: bool,
    indications: &[String],
    shared: Option<(&ClassDesigns, &[u32])>,
    warnings: &mut Vec<String>,
) -> Option<HazardRatio> {
    let comparator: Vec<&Unit> = units.iter().filter(|u| !u.in_group).collect();
    if comparator.is_empty() {
        warnings.push("no other devices in the class: no hazard ratio".into());
        return None;
    }
    // Built (or found) only once a comparator is known to exist.
    let design = match shared {
        Some((designs, class_types)) => {
            designs.get_or_build(class_types, stratified, units, indications)
        }
        None => Arc::new(ClassDesign::new(units, stratified, indications)),
    };
    let leading: Vec<f64> = units
        .iter()
        .map(|u| if u.in_group { 1.0 } else { 0.0 })
        .collect();
    let fitted = design
        .as_ref()
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|d| d.fit(&leading));
    match fitted {
        Ok(ClassFit {
            fit,
            adjusted_for,
            indication,
            warning,
        }) => {
            tracing::debug!(
                iterations = fit.iterations,
                covariates = fit.coefficients.len(),
                "hazard ratio fitted"
            );
            warnings.extend(warning);
            Some(HazardRatio {
                estimate: fit.hazard_ratios[0],
                lower: fit.hazard_ratio_lower[0],
                upper: fit.hazard_ratio_upper[0],
                p_value: fit.p_values[0],
                n_comparator: comparator.len() as u64,
                n_comparator_revisions: comparator
                    .iter()
                    .filter(|u| u.exit == Exit::Revision)
                    .count() as u64,
                adjusted_for,
                indication: indication.map(|coding| IndicationAdjustment {
                    reference: coding.reference,
                    levels: coding.levels,
                    pooled: coding.pooled,
                }),
                stratified_by_device_type: stratified,
            })
        }
        Err(error) => {
            warnings.push(format!("hazard ratio not estimated: {error}"));
            None
        }
    }
}

fn describe(cohort: &Cohort, grouping: &DeviceGrouping) -> String {
    match grouping {
        DeviceGrouping::Model(udi) => match cohort.models.iter().find(|m| m.udi_di == udi.as_str())
        {
            Some(m) => format!(
                "model {} ({} {} {}, {})",
                m.udi_di, m.manufacturer, m.brand, m.model, m.device_type
            ),
            None => format!("model {}", udi.as_str()),
        },
        DeviceGrouping::Brand {
            manufacturer,
            brand,
        } => format!("brand {brand} ({manufacturer})"),
        DeviceGrouping::Manufacturer(manufacturer) => format!("manufacturer {manufacturer}"),
        DeviceGrouping::DeviceType(device_type) => format!("device type {device_type}"),
        DeviceGrouping::Combination(parts) => {
            let parts: Vec<String> = parts.iter().map(|p| describe(cohort, p)).collect();
            format!("combination of {}", parts.join(" + "))
        }
    }
}
