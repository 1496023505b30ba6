//! Sequential signals: a Poisson MaxSPRT for every device model against its class and for
//! every lot against the other lots of its model, and a risk-adjusted CUSUM for every provider
//! and consultant. Each run recomputes every statistic over the whole history as of the
//! analysis date; `mod.rs` compares the result with the stored signal state.
//!
//! **Expected revisions** come from indirect standardisation with piecewise-constant hazards:
//! revisions per day of follow-up in cells of device type × years since implant
//! (0–1, 1–2, 2–3, 3–5, 5–10, 10+) × age group (< 40, 40–59, 60–74, 75+) × sex, estimated from
//! the rest of the class (the class's counts less the model's own). A model's expected count
//! by calendar day `d`, `μ(d)`, sums each implant's cell rates over its follow-up up to `d`; it
//! is built for every day with difference arrays in one pass over the implants. Lots use the
//! same construction with the rates of their model's other lots, by years since implant only.
//!
//! **MaxSPRT** (Kulldorff et al. 2011): at each revision the log-likelihood ratio
//! `c log(c/μ) − (c − μ)` is compared with the exact critical value of a continuous design with
//! upper limit `T` expected events and at least `M` events; between revisions it only falls, so
//! checking at revisions is exact. Surveillance of a model ends without a signal once `μ`
//! reaches `T`. The significance level is the family's α divided by the number of units
//! monitored (Bonferroni), so that the chance of any false alert in a family is at most α.
//!
//! **CUSUM** (Steiner et al. 2000): each provider's and consultant's procedures, in date order
//! and once their outcome window has passed, with outcome "removal within the window" and risk
//! from a logistic model on age, sex, procedure class and indication fitted to every procedure
//! nationally.
//! The chart tests odds ratio `R_A` against 1; its limit `h` is chosen per unit so that the
//! in-control chart signals within the unit's number of procedures with probability at most
//! α / units, using the geometric approximation `P ≈ 1 − exp(−n / ARL(h))` and the
//! Markov-chain ARL of the national risk mix. Because the limit bounds the chance of any
//! crossing over the whole history, a unit whose chart has crossed at any time is signalling,
//! from its first crossing.

use mdor_stats::maxsprt::poisson_llr;
use mdor_stats::{
    LogisticOptions, Looks, PoissonDesign, average_run_length, logistic_regression,
    poisson_critical_value, risk_adjusted_cusum,
};
use serde::Serialize;

use crate::surveillance::SignalConfig;
use crate::surveillance::extract::{Cohort, CohortImplant, DAYS_PER_YEAR, Exit, date_of};

/// Band edges in days since implant: 0–1, 1–2, 2–3, 3–5, 5–10 and 10+ years.
const BAND_EDGES: [i32; 7] = [0, 365, 730, 1096, 1826, 3653, i32::MAX];
const N_BANDS: usize = 6;
/// Age groups × sex.
const N_STRATA: usize = 8;
const N_CELLS: usize = N_BANDS * N_STRATA;

/// What a method concluded about one subject.
#[derive(Debug, Clone, Serialize)]
pub struct SignalResult {
    /// `maxsprt` or `cusum`.
    pub method: &'static str,
    /// `device_model`, `lot`, `provider` or `consultant`.
    pub subject_kind: &'static str,
    /// UDI-DI, `UDI-DI/lot`, ODS code or GMC number.
    pub subject: String,
    /// The data date on which the statistic crossed its critical value.
    pub since: chrono::NaiveDate,
    /// Observed events behind the signal.
    pub observed: f64,
    /// Expected events behind the signal.
    pub expected: f64,
    pub statistic: f64,
    pub critical_value: f64,
    pub explanation: String,
}

/// How many subjects each method monitored and at what level.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SignalSummary {
    pub device_models_monitored: usize,
    pub device_model_critical_value: f64,
    /// Models whose expected count reached the upper limit without a signal.
    pub device_models_completed: usize,
    pub lots_monitored: usize,
    pub lot_critical_value: f64,
    pub providers_monitored: usize,
    pub consultants_monitored: usize,
    /// Problems that stopped part of the surveillance (never silent).
    pub warnings: Vec<String>,
}

/// Runs every signal method over the cohort; returns the subjects signalling now.
/// `risks` are the procedures' removal risks (`ProcedureRisks::fit`), shared with the funnels.
pub(crate) fn detect(
    cohort: &Cohort,
    config: &SignalConfig,
    risks: Result<&ProcedureRisks, &String>,
) -> (Vec<SignalResult>, SignalSummary) {
    let mut summary = SignalSummary::default();
    let mut signals = Vec::new();
    let phase = std::time::Instant::now();
    let units = cohort.model_units();
    let tallies = Tallies::count(cohort, &units);
    device_model_signals(cohort, &units, config, &tallies, &mut signals, &mut summary);
    tracing::debug!(
        seconds = phase.elapsed().as_secs_f64(),
        "device model MaxSPRT"
    );
    let phase = std::time::Instant::now();
    lot_signals(cohort, &units, config, &mut signals, &mut summary);
    tracing::debug!(seconds = phase.elapsed().as_secs_f64(), "lot MaxSPRT");
    let phase = std::time::Instant::now();
    match risks {
        Ok(risks) => {
            cusum_signals(
                cohort,
                config,
                risks,
                Unit::Provider,
                &mut signals,
                &mut summary,
            );
            cusum_signals(
                cohort,
                config,
                risks,
                Unit::Consultant,
                &mut signals,
                &mut summary,
            );
        }
        Err(warning) => summary.warnings.push(warning.clone()),
    }
    tracing::debug!(seconds = phase.elapsed().as_secs_f64(), "CUSUM");
    (signals, summary)
}

// --- Expected revisions ------------------------------------------------------------------

fn band_of(days_since_implant: i32) -> usize {
    BAND_EDGES[1..]
        .iter()
        .position(|&edge| days_since_implant < edge)
        .unwrap_or(N_BANDS - 1)
}

fn stratum_of(age: f64, male: bool) -> usize {
    let age_group = if age < 40.0 {
        0
    } else if age < 60.0 {
        1
    } else if age < 75.0 {
        2
    } else {
        3
    };
    age_group * 2 + usize::from(male)
}

/// Days of follow-up of `implant` in each band, up to (not including) day `until`.
fn exposure_by_band(implant: &CohortImplant, until: i32) -> [f64; N_BANDS] {
    let end = implant.exit_day.min(until) - implant.start_day;
    let mut out = [0.0; N_BANDS];
    for (b, slot) in out.iter_mut().enumerate() {
        let (lo, hi) = (BAND_EDGES[b], BAND_EDGES[b + 1]);
        if end > lo {
            *slot = f64::from(end.min(hi) - lo);
        }
    }
    out
}

/// Revisions and days of follow-up per cell, for each device type and each model.
pub(crate) struct Tallies {
    type_events: Vec<[f64; N_CELLS]>,
    type_days: Vec<[f64; N_CELLS]>,
    model_events: Vec<[f64; N_CELLS]>,
    model_days: Vec<[f64; N_CELLS]>,
}

impl Tallies {
    pub(crate) fn count(cohort: &Cohort, units: &[CohortImplant]) -> Tallies {
        let mut tallies = Tallies {
            type_events: vec![[0.0; N_CELLS]; cohort.device_types.len()],
            type_days: vec![[0.0; N_CELLS]; cohort.device_types.len()],
            model_events: vec![[0.0; N_CELLS]; cohort.models.len()],
            model_days: vec![[0.0; N_CELLS]; cohort.models.len()],
        };
        for implant in units {
            let procedure = &cohort.procedures[implant.procedure as usize];
            let stratum = stratum_of(procedure.age, procedure.male) * N_BANDS;
            let t = cohort.implant_type(implant) as usize;
            let m = implant.model as usize;
            let days = exposure_by_band(implant, i32::MAX);
            for (b, d) in days.iter().enumerate() {
                tallies.type_days[t][stratum + b] += d;
                tallies.model_days[m][stratum + b] += d;
            }
            if implant.exit == Exit::Revision {
                let b = band_of(implant.exit_day - implant.start_day);
                tallies.type_events[t][stratum + b] += 1.0;
                tallies.model_events[m][stratum + b] += 1.0;
            }
        }
        tallies
    }

    /// Revisions per day in each cell for the rest of `model`'s class, or `None` when the
    /// model is its whole class. A cell with no comparator follow-up takes the band's rate over
    /// all ages and sexes.
    fn comparator_rates(&self, model: usize, device_type: usize) -> Option<[f64; N_CELLS]> {
        let mut events = [0.0; N_CELLS];
        let mut days = [0.0; N_CELLS];
        for c in 0..N_CELLS {
            events[c] = (self.type_events[device_type][c] - self.model_events[model][c]).max(0.0);
            days[c] = (self.type_days[device_type][c] - self.model_days[model][c]).max(0.0);
        }
        if days.iter().sum::<f64>() <= 0.0 {
            return None;
        }
        let mut band_rate = [0.0; N_BANDS];
        for (b, rate) in band_rate.iter_mut().enumerate() {
            let e: f64 = (0..N_STRATA).map(|s| events[s * N_BANDS + b]).sum();
            let d: f64 = (0..N_STRATA).map(|s| days[s * N_BANDS + b]).sum();
            *rate = if d > 0.0 { e / d } else { 0.0 };
        }
        let mut rates = [0.0; N_CELLS];
        for c in 0..N_CELLS {
            rates[c] = if days[c] > 0.0 {
                events[c] / days[c]
            } else {
                band_rate[c % N_BANDS]
            };
        }
        Some(rates)
    }
}

// --- MaxSPRT for device models ------------------------------------------------------------

/// Where a MaxSPRT path ended.
enum Outcome {
    Signal {
        day: i32,
        observed: u64,
        expected: f64,
        llr: f64,
    },
    Completed,
    Monitoring,
}

/// Walks the revisions (sorted days) of one unit against its expected path `mu(day)`.
fn maxsprt_path(
    event_days: &[i32],
    mu: impl Fn(i32) -> f64,
    upper_limit: f64,
    min_events: u64,
    critical_value: f64,
    as_of_day: i32,
) -> Outcome {
    let mut observed = 0u64;
    let mut k = 0;
    while k < event_days.len() {
        let day = event_days[k];
        while k < event_days.len() && event_days[k] == day {
            observed += 1;
            k += 1;
        }
        let expected = mu(day);
        if expected >= upper_limit {
            return Outcome::Completed;
        }
        let llr = poisson_llr(observed, expected);
        if observed >= min_events && llr >= critical_value {
            return Outcome::Signal {
                day,
                observed,
                expected,
                llr,
            };
        }
    }
    if mu(as_of_day) >= upper_limit {
        Outcome::Completed
    } else {
        Outcome::Monitoring
    }
}

fn critical_value(upper_limit: f64, min_events: u64, alpha: f64) -> Result<f64, String> {
    let design = PoissonDesign {
        upper_limit,
        min_events,
        delay: 0.0,
        looks: Looks::Continuous,
    };
    poisson_critical_value(&design, alpha)
        .map_err(|e| format!("no MaxSPRT critical value for T {upper_limit}, alpha {alpha}: {e}"))
}

fn device_model_signals(
    cohort: &Cohort,
    units: &[CohortImplant],
    config: &SignalConfig,
    tallies: &Tallies,
    signals: &mut Vec<SignalResult>,
    summary: &mut SignalSummary,
) {
    let n_models = cohort.models.len();
    let mut rates: Vec<Option<[f64; N_CELLS]>> = vec![None; n_models];
    let mut has_implants = vec![false; n_models];
    for implant in units {
        has_implants[implant.model as usize] = true;
    }
    for m in 0..n_models {
        if has_implants[m] {
            rates[m] = tallies.comparator_rates(m, cohort.model_type[m] as usize);
        }
    }
    let monitored = rates.iter().filter(|r| r.is_some()).count();
    summary.device_models_monitored = monitored;
    if monitored == 0 {
        return;
    }
    let alpha = config.alpha / monitored as f64;
    let cv = match critical_value(config.maxsprt_upper_limit, config.maxsprt_min_events, alpha) {
        Ok(cv) => cv,
        Err(warning) => {
            summary.warnings.push(warning);
            return;
        }
    };
    summary.device_model_critical_value = cv;
    // Expected revisions per day, per model, as difference arrays over calendar days.
    let first_day = units
        .iter()
        .map(|i| i.start_day)
        .min()
        .unwrap_or(cohort.as_of_day);
    let n_days = (cohort.as_of_day - first_day + 2) as usize;
    let mut paths: Vec<Vec<f64>> = vec![Vec::new(); n_models];
    let mut events: Vec<Vec<i32>> = vec![Vec::new(); n_models];
    for implant in units {
        let m = implant.model as usize;
        let Some(model_rates) = &rates[m] else {
            continue;
        };
        let path = &mut paths[m];
        if path.is_empty() {
            *path = vec![0.0; n_days];
        }
        let procedure = &cohort.procedures[implant.procedure as usize];
        let stratum = stratum_of(procedure.age, procedure.male) * N_BANDS;
        for b in 0..N_BANDS {
            let from = implant.start_day.saturating_add(BAND_EDGES[b]);
            let to = implant
                .start_day
                .saturating_add(BAND_EDGES[b + 1])
                .min(implant.exit_day);
            if from < to {
                path[(from - first_day) as usize] += model_rates[stratum + b];
                path[(to - first_day) as usize] -= model_rates[stratum + b];
            }
        }
        if implant.exit == Exit::Revision {
            events[m].push(implant.exit_day);
        }
    }
    for (m, path) in paths.iter_mut().enumerate() {
        if path.is_empty() {
            continue;
        }
        // Difference array → rate per day → expected revisions by the end of each day.
        let mut rate = 0.0;
        let mut total = 0.0;
        for value in path.iter_mut() {
            rate += *value;
            total += rate;
            *value = total;
        }
        let path: &[f64] = path;
        let mu = |day: i32| path[((day - first_day).max(0) as usize).min(path.len() - 1)];
        let days = &mut events[m];
        days.sort_unstable();
        let outcome = maxsprt_path(
            days,
            mu,
            config.maxsprt_upper_limit,
            config.maxsprt_min_events,
            cv,
            cohort.as_of_day,
        );
        match outcome {
            Outcome::Signal {
                day,
                observed,
                expected,
                llr,
            } => {
                let model = &cohort.models[m];
                let now_observed = days.len();
                let now_expected = mu(cohort.as_of_day);
                signals.push(SignalResult {
                    method: "maxsprt",
                    subject_kind: "device_model",
                    subject: model.udi_di.clone(),
                    since: date_of(day),
                    observed: observed as f64,
                    expected,
                    statistic: llr,
                    critical_value: cv,
                    explanation: format!(
                        "device model {} ({} {} {}): {observed} revisions observed against {expected:.1} expected \
                         from the rest of the {} class by {} (O/E {:.2}); MaxSPRT log-likelihood ratio {llr:.2} \
                         reached the critical value {cv:.2} (alpha {alpha:.1e} for each of {monitored} models, \
                         upper limit {} expected revisions, at least {} revisions); signalling since {}. \
                         As of {}: {now_observed} observed against {now_expected:.1} expected.",
                        model.udi_di,
                        model.manufacturer,
                        model.brand,
                        model.model,
                        model.device_type,
                        date_of(day),
                        observed as f64 / expected.max(1e-12),
                        config.maxsprt_upper_limit,
                        config.maxsprt_min_events,
                        date_of(day),
                        cohort.as_of,
                    ),
                });
            }
            Outcome::Completed => summary.device_models_completed += 1,
            Outcome::Monitoring => {}
        }
    }
}

// --- MaxSPRT for lots ---------------------------------------------------------------------

fn lot_signals(
    cohort: &Cohort,
    units: &[CohortImplant],
    config: &SignalConfig,
    signals: &mut Vec<SignalResult>,
    summary: &mut SignalSummary,
) {
    // Implants with a lot, grouped by (model, lot).
    let mut order: Vec<u32> = (0..units.len() as u32)
        .filter(|&i| units[i as usize].lot.is_some())
        .collect();
    order.sort_unstable_by_key(|&i| {
        let implant = &units[i as usize];
        (implant.model, implant.lot)
    });
    // Per model: revisions and days by band, to take each lot's own counts away from.
    let mut model_events = vec![[0.0f64; N_BANDS]; cohort.models.len()];
    let mut model_days = vec![[0.0; N_BANDS]; cohort.models.len()];
    for implant in units {
        let m = implant.model as usize;
        let days = exposure_by_band(implant, i32::MAX);
        for b in 0..N_BANDS {
            model_days[m][b] += days[b];
        }
        if implant.exit == Exit::Revision {
            model_events[m][band_of(implant.exit_day - implant.start_day)] += 1.0;
        }
    }
    let mut lots: Vec<&[u32]> = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let key = |i: u32| {
            let implant = &units[i as usize];
            (implant.model, implant.lot)
        };
        let mut end = start + 1;
        while end < order.len() && key(order[end]) == key(order[start]) {
            end += 1;
        }
        if (end - start) as u64 >= config.lot_min_implants {
            lots.push(&order[start..end]);
        }
        start = end;
    }
    summary.lots_monitored = lots.len();
    if lots.is_empty() {
        return;
    }
    let alpha = config.alpha / lots.len() as f64;
    let cv = match critical_value(config.lot_upper_limit, config.maxsprt_min_events, alpha) {
        Ok(cv) => cv,
        Err(warning) => {
            summary.warnings.push(warning);
            return;
        }
    };
    summary.lot_critical_value = cv;
    for lot in lots {
        let implants: Vec<&CohortImplant> = lot.iter().map(|&i| &units[i as usize]).collect();
        let mut event_days: Vec<i32> = implants
            .iter()
            .filter(|i| i.exit == Exit::Revision)
            .map(|i| i.exit_day)
            .collect();
        if (event_days.len() as u64) < config.maxsprt_min_events {
            continue;
        }
        event_days.sort_unstable();
        let m = implants[0].model as usize;
        let mut lot_events = [0.0f64; N_BANDS];
        let mut lot_days = [0.0; N_BANDS];
        for implant in &implants {
            let days = exposure_by_band(implant, i32::MAX);
            for b in 0..N_BANDS {
                lot_days[b] += days[b];
            }
            if implant.exit == Exit::Revision {
                lot_events[band_of(implant.exit_day - implant.start_day)] += 1.0;
            }
        }
        let mut rates = [0.0; N_BANDS];
        let mut comparator_days = 0.0;
        for b in 0..N_BANDS {
            let days = model_days[m][b] - lot_days[b];
            comparator_days += days.max(0.0);
            if days > 0.0 {
                rates[b] = (model_events[m][b] - lot_events[b]).max(0.0) / days;
            }
        }
        if comparator_days <= 0.0 {
            continue;
        }
        let mu = |day: i32| -> f64 {
            implants
                .iter()
                .map(|implant| {
                    let days = exposure_by_band(implant, day + 1);
                    days.iter().zip(&rates).map(|(d, r)| d * r).sum::<f64>()
                })
                .sum()
        };
        if let Outcome::Signal {
            day,
            observed,
            expected,
            llr,
        } = maxsprt_path(
            &event_days,
            mu,
            config.lot_upper_limit,
            config.maxsprt_min_events,
            cv,
            cohort.as_of_day,
        ) {
            let model = &cohort.models[m];
            let lot_code = implants[0]
                .lot
                .and_then(|l| cohort.lots.get(l as usize))
                .map_or("", String::as_str);
            signals.push(SignalResult {
                method: "maxsprt",
                subject_kind: "lot",
                subject: format!("{}/{lot_code}", model.udi_di),
                since: date_of(day),
                observed: observed as f64,
                expected,
                statistic: llr,
                critical_value: cv,
                explanation: format!(
                    "lot {lot_code} of device model {} ({} {} {}, {} implants): {observed} revisions observed \
                     against {expected:.1} expected from the model's other lots by {} (O/E {:.2}); MaxSPRT \
                     log-likelihood ratio {llr:.2} reached the critical value {cv:.2} (alpha {alpha:.1e} for each \
                     of {} lots with at least {} implants); signalling since {}. As of {}: {} observed.",
                    model.udi_di,
                    model.manufacturer,
                    model.brand,
                    model.model,
                    implants.len(),
                    date_of(day),
                    observed as f64 / expected.max(1e-12),
                    summary.lots_monitored,
                    config.lot_min_implants,
                    date_of(day),
                    cohort.as_of,
                    event_days.len(),
                ),
            });
        }
    }
}

// --- Risk-adjusted CUSUM for providers and consultants -------------------------------------

/// Each procedure's outcome within the window and its predicted risk, for procedures whose
/// window has passed.
pub(crate) struct ProcedureRisks {
    /// Indices into `Cohort::procedures`, in date order.
    pub cases: Vec<u32>,
    pub outcome: Vec<bool>,
    pub risk: Vec<f64>,
    /// The day each outcome became known.
    pub known_day: Vec<i32>,
}

impl ProcedureRisks {
    /// Fits the logistic risk model of removal within `outcome_days` on age, sex and
    /// procedure class; fails with a warning when there is nothing to fit.
    pub(crate) fn fit(cohort: &Cohort, outcome_days: i32) -> Result<ProcedureRisks, String> {
        let mut cases: Vec<u32> = (0..cohort.procedures.len() as u32)
            .filter(|&p| cohort.procedures[p as usize].start_day + outcome_days <= cohort.as_of_day)
            .collect();
        cases.sort_by_key(|&p| (cohort.procedures[p as usize].start_day, p));
        let mut outcome = Vec::with_capacity(cases.len());
        let mut known_day = Vec::with_capacity(cases.len());
        for &p in &cases {
            let procedure = &cohort.procedures[p as usize];
            let window_end = procedure.start_day + outcome_days;
            match procedure.first_removal_day {
                Some(r) if r <= window_end => {
                    outcome.push(true);
                    known_day.push(r);
                }
                _ => {
                    outcome.push(false);
                    known_day.push(window_end);
                }
            }
        }
        let risk = logistic_risks(cohort, &cases, &outcome)?;
        Ok(ProcedureRisks {
            cases,
            outcome,
            risk,
            known_day,
        })
    }
}

/// The most cases a risk model is fitted to.
const MAX_FIT_CASES: usize = 200_000;

/// Predicted risks from a logistic model on age, sex, procedure class and indication for
/// `cases` with `outcome`. Classes (and indications) with fewer than five events or five
/// non-events join the reference (the largest), so that none separates the outcome; procedures
/// whose dataset records no indication are a level of their own. Indication matters to
/// providers and consultants as it does to devices: one that takes the fractures or the
/// reconstructions should not be expected to revise like one that does elective cases only.
pub(crate) fn logistic_risks(
    cohort: &Cohort,
    cases: &[u32],
    outcome: &[bool],
) -> Result<Vec<f64>, String> {
    let n_events = outcome.iter().filter(|&&y| y).count();
    if cases.is_empty() || n_events == 0 || n_events == cases.len() {
        return Err(format!(
            "risk model not fitted: {n_events} events among {} eligible procedures",
            cases.len()
        ));
    }
    let class = |p: u32| cohort.procedures[p as usize].class as usize;
    // Indications by index, with `None` (not recorded) as the last level.
    let n_levels = cohort.indications.len() + 1;
    let level = |p: u32| -> usize {
        cohort.procedures[p as usize]
            .indication
            .map_or(n_levels - 1, |i| i as usize)
    };
    let (dummy_of, n_class_dummies) =
        indicator_columns(cases, outcome, cohort.classes.len(), class, 0);
    let (level_dummy_of, n_level_dummies) =
        indicator_columns(cases, outcome, n_levels, level, n_class_dummies);
    let n_covariates = 2 + n_class_dummies + n_level_dummies;
    let row = |p: u32| -> Vec<f64> {
        let procedure = &cohort.procedures[p as usize];
        let mut row = vec![0.0; n_covariates];
        row[0] = procedure.age;
        row[1] = if procedure.male { 1.0 } else { 0.0 };
        if let Some(k) = dummy_of[procedure.class as usize] {
            row[2 + k] = 1.0;
        }
        if let Some(k) = level_dummy_of[level(p)] {
            row[2 + k] = 1.0;
        }
        row
    };
    let mut covariates = Vec::with_capacity(cases.len() * n_covariates);
    for &p in cases {
        covariates.extend(row(p));
    }
    // Sex is constant in some cohorts (one specialty only); drop constant columns.
    let constant: Vec<bool> = (0..n_covariates)
        .map(|k| {
            let first = covariates[k];
            covariates
                .iter()
                .skip(k)
                .step_by(n_covariates)
                .all(|&v| v == first)
        })
        .collect();
    let kept: Vec<usize> = (0..n_covariates).filter(|&k| !constant[k]).collect();
    let design: Vec<f64> = covariates
        .chunks(n_covariates)
        .flat_map(|r| kept.iter().map(move |&k| r[k]))
        .collect();
    // Beyond `MAX_FIT_CASES` the model is fitted to an evenly spaced sample of the cases (in
    // date order), which estimates a handful of coefficients as well and bounds the cost.
    let stride = cases.len().div_ceil(MAX_FIT_CASES);
    let fit = if stride > 1 {
        let sample_outcome: Vec<bool> = outcome.iter().step_by(stride).copied().collect();
        let sample_design: Vec<f64> = design
            .chunks(kept.len().max(1))
            .step_by(stride)
            .flatten()
            .copied()
            .collect();
        logistic_regression(
            &sample_outcome,
            &sample_design,
            kept.len(),
            LogisticOptions::default(),
        )
    } else {
        logistic_regression(outcome, &design, kept.len(), LogisticOptions::default())
    }
    .map_err(|e| format!("risk model not fitted: {e}"))?;
    let clamp = |p: Option<f64>| p.unwrap_or(0.5).clamp(1e-6, 1.0 - 1e-6);
    if kept.is_empty() {
        return Ok(vec![clamp(fit.predict(&[])); cases.len()]);
    }
    Ok(design
        .chunks(kept.len())
        .map(|r| clamp(fit.predict(r)))
        .collect())
}

/// Indicator columns of a categorical covariate for the risk model: every level but the
/// largest with at least five events and five non-events gets a column, numbered from
/// `first_column`; the others share the largest's baseline. Returns each level's column and
/// the number of columns.
fn indicator_columns(
    cases: &[u32],
    outcome: &[bool],
    n_levels: usize,
    level_of: impl Fn(u32) -> usize,
    first_column: usize,
) -> (Vec<Option<usize>>, usize) {
    let mut events = vec![0usize; n_levels];
    let mut totals = vec![0usize; n_levels];
    for (&p, &y) in cases.iter().zip(outcome) {
        let level = level_of(p);
        totals[level] += 1;
        events[level] += usize::from(y);
    }
    let reference = (0..n_levels).max_by_key(|&l| totals[l]).unwrap_or(0);
    let mut column_of = vec![None; n_levels];
    let mut n_columns = 0;
    for l in 0..n_levels {
        if l != reference && events[l] >= 5 && totals[l] - events[l] >= 5 {
            column_of[l] = Some(first_column + n_columns);
            n_columns += 1;
        }
    }
    (column_of, n_columns)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Provider,
    Consultant,
}

/// The in-control ARL of the CUSUM at a grid of limits, from the national risk mix.
struct RunLengthTable {
    limits: Vec<f64>,
    log_arl: Vec<f64>,
}

impl RunLengthTable {
    fn new(risks: &[f64], odds_ratio: f64) -> Result<RunLengthTable, String> {
        let mut sorted = risks.to_vec();
        sorted.sort_by(f64::total_cmp);
        // 200 quantiles represent the mix; the Markov chain's cost grows with its size.
        let mix: Vec<f64> = (0..200)
            .map(|k| sorted[((2 * k + 1) * sorted.len()) / 400])
            .collect();
        let mut limits = Vec::new();
        let mut log_arl = Vec::new();
        let mut h = 0.5;
        while h <= 25.0 {
            let arl = average_run_length(h, &mix, odds_ratio, 1.0, 150)
                .map_err(|e| format!("CUSUM run length not computed: {e}"))?;
            limits.push(h);
            log_arl.push(arl.ln());
            h += 0.25;
        }
        Ok(RunLengthTable { limits, log_arl })
    }

    /// The smallest limit whose ARL is at least `target`, by linear interpolation of log ARL.
    fn limit_for(&self, target: f64) -> f64 {
        let goal = target.max(1.0).ln();
        for k in 0..self.limits.len() {
            if self.log_arl[k] >= goal {
                if k == 0 {
                    return self.limits[0];
                }
                let (a, b) = (self.log_arl[k - 1], self.log_arl[k]);
                let fraction = if b > a { (goal - a) / (b - a) } else { 1.0 };
                return self.limits[k - 1] + fraction * (self.limits[k] - self.limits[k - 1]);
            }
        }
        *self.limits.last().unwrap_or(&25.0)
    }
}

fn cusum_signals(
    cohort: &Cohort,
    config: &SignalConfig,
    risks: &ProcedureRisks,
    unit: Unit,
    signals: &mut Vec<SignalResult>,
    summary: &mut SignalSummary,
) {
    let n_units = match unit {
        Unit::Provider => cohort.providers.len(),
        Unit::Consultant => cohort.consultants.len(),
    };
    let unit_of = |p: u32| {
        let procedure = &cohort.procedures[p as usize];
        match unit {
            Unit::Provider => procedure.provider as usize,
            Unit::Consultant => procedure.consultant as usize,
        }
    };
    // Case positions (into `risks`) per unit, in date order.
    let mut by_unit: Vec<Vec<u32>> = vec![Vec::new(); n_units];
    for (k, &p) in risks.cases.iter().enumerate() {
        by_unit[unit_of(p)].push(k as u32);
    }
    let monitored = by_unit.iter().filter(|cases| !cases.is_empty()).count();
    match unit {
        Unit::Provider => summary.providers_monitored = monitored,
        Unit::Consultant => summary.consultants_monitored = monitored,
    }
    if monitored == 0 {
        return;
    }
    let table = match RunLengthTable::new(&risks.risk, config.cusum_odds_ratio) {
        Ok(table) => table,
        Err(warning) => {
            summary.warnings.push(warning);
            return;
        }
    };
    let alpha = config.alpha / monitored as f64;
    // P(signal within n) ≈ 1 − exp(−n / ARL) ≤ alpha  ⇔  ARL ≥ n / −ln(1 − alpha).
    let per_case = -(1.0 - alpha).ln();
    let window_years = f64::from(config.outcome_days) / DAYS_PER_YEAR;
    for (u, cases) in by_unit.iter().enumerate() {
        if cases.is_empty() {
            continue;
        }
        let outcomes: Vec<bool> = cases.iter().map(|&k| risks.outcome[k as usize]).collect();
        let unit_risks: Vec<f64> = cases.iter().map(|&k| risks.risk[k as usize]).collect();
        let limit = table.limit_for(cases.len() as f64 / per_case);
        let Ok(chart) = risk_adjusted_cusum(&outcomes, &unit_risks, config.cusum_odds_ratio, limit)
        else {
            continue;
        };
        // Once crossed, a chart stays signalled: its limit bounds the chance of any crossing
        // over the unit's whole history, so every crossing is evidence however old.
        let (Some(&first), Some(&last)) = (chart.signals.first(), chart.signals.last()) else {
            continue;
        };
        let known = |t: usize| risks.known_day[cases[t] as usize];
        let since = known(first);
        // The run of cases behind the first crossing: from the chart's last zero before it.
        let mut from = first;
        while from > 0 && chart.statistic[from - 1] > 0.0 {
            from -= 1;
        }
        let observed = outcomes[from..=first].iter().filter(|&&y| y).count();
        let expected: f64 = unit_risks[from..=first].iter().sum();
        let all_observed = outcomes.iter().filter(|&&y| y).count();
        let all_expected: f64 = unit_risks.iter().sum();
        let first_date =
            date_of(cohort.procedures[risks.cases[cases[from] as usize] as usize].start_day);
        let last_date =
            date_of(cohort.procedures[risks.cases[cases[last] as usize] as usize].start_day);
        let (kind, subject, label) = match unit {
            Unit::Provider => ("provider", cohort.providers[u].clone(), "provider"),
            Unit::Consultant => (
                "consultant",
                cohort.consultants[u].clone(),
                "consultant (GMC)",
            ),
        };
        signals.push(SignalResult {
            method: "cusum",
            subject_kind: kind,
            subject: subject.clone(),
            since: date_of(since),
            observed: observed as f64,
            expected,
            statistic: chart.statistic[first],
            critical_value: limit,
            explanation: format!(
                "{label} {subject}: {observed} removals within {window_years:.1} years observed against \
                 {expected:.1} expected (risk-adjusted for age, sex, procedure class and indication) among the {} procedures \
                 from {first_date} to {last_date}; risk-adjusted CUSUM {:.2} reached its limit {limit:.2} \
                 (odds ratio {} against 1; in-control chance of any signal over its {} procedures at most \
                 {alpha:.1e}, for each of {monitored} units); signalling since {}. {} crossing(s) in all, the \
                 latest on {}; over all its procedures {all_observed} observed against {all_expected:.1} expected.",
                first - from + 1,
                chart.statistic[first],
                config.cusum_odds_ratio,
                cases.len(),
                date_of(since),
                chart.signals.len(),
                date_of(known(last)),
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::surveillance::extract::CohortProcedure;

    /// `n` hip procedures: every third a fracture (`Some(1)`) or, without `recorded`, no
    /// indication at all; fractures have removal within the window one time in five,
    /// osteoarthritis one time in twenty; ages and sexes vary without effect.
    fn hips(n: u32, recorded: bool) -> (Cohort, Vec<bool>) {
        let fracture = |k: u32| k.is_multiple_of(3);
        let procedures = (0..n)
            .map(|k| CohortProcedure {
                start_day: 700_000,
                provider: 0,
                consultant: 0,
                age: 50.0 + f64::from(k % 37),
                male: k.is_multiple_of(2),
                indication: recorded.then_some(u32::from(fracture(k))),
                class: 0,
                death_day: None,
                first_removal_day: None,
                implants: 0..0,
            })
            .collect();
        let outcome = (0..n)
            .map(|k| {
                let i = k / 3;
                if fracture(k) {
                    i.is_multiple_of(5)
                } else {
                    k % 20 == 1
                }
            })
            .collect();
        let cohort = Cohort {
            as_of: date_of(701_000),
            as_of_day: 701_000,
            models: Vec::new(),
            device_types: vec!["hip_stem".into()],
            model_type: Vec::new(),
            classes: vec!["hip_stem".into(), "not_in_register".into()],
            providers: vec!["RA1".into()],
            consultants: vec!["1234567".into()],
            lots: Vec::new(),
            indications: vec!["osteoarthritis".into(), "fracture".into()],
            procedures,
            implants: Vec::new(),
            class_designs: Default::default(),
        };
        (cohort, outcome)
    }

    fn mean_risk(risks: &[f64], which: impl Fn(u32) -> bool) -> f64 {
        let chosen: Vec<f64> = (0..risks.len() as u32)
            .filter(|&k| which(k))
            .map(|k| risks[k as usize])
            .collect();
        chosen.iter().sum::<f64>() / chosen.len() as f64
    }

    #[test]
    fn the_risk_model_expects_more_removals_after_a_riskier_indication() {
        let (cohort, outcome) = hips(6_000, true);
        let cases: Vec<u32> = (0..6_000).collect();
        let risks = logistic_risks(&cohort, &cases, &outcome).unwrap();
        let observed = |which: &dyn Fn(u32) -> bool| {
            let chosen: Vec<bool> = (0..6_000u32)
                .filter(|&k| which(k))
                .map(|k| outcome[k as usize])
                .collect();
            chosen.iter().filter(|&&y| y).count() as f64 / chosen.len() as f64
        };
        let fractures = |k: u32| k.is_multiple_of(3);
        let others = |k: u32| !k.is_multiple_of(3);
        // A logistic model with an intercept reproduces each level's observed rate on average.
        assert!((mean_risk(&risks, fractures) - observed(&fractures)).abs() < 0.005);
        assert!((mean_risk(&risks, others) - observed(&others)).abs() < 0.005);
        assert!(mean_risk(&risks, fractures) > 3.0 * mean_risk(&risks, others));

        // Without indications the two groups are expected alike.
        let (cohort, outcome) = hips(6_000, false);
        let risks = logistic_risks(&cohort, &cases, &outcome).unwrap();
        assert!((mean_risk(&risks, fractures) - mean_risk(&risks, others)).abs() < 0.01);
    }
}
