//! Surveillance analytics: survivorship of any grouping of devices, benchmark ratings,
//! outlier detection for implants, providers and consultants, and sequential signals with
//! state kept between runs. Methods, rules and thresholds are in `docs/surveillance.md`.
//!
//! Every analysis reads one pseudonymous extract from the store (`Store::analysis_extract`),
//! builds the `extract::Cohort` once and calls `mdor-stats`; nothing here re-implements a
//! statistical method.
//!
//! Invariant: reports are for analysts: regulators and administrators may read them;
//! `run_surveillance` is an operator task (the CLI, or after a bulk load).

mod class_design;
mod extract;
mod feedback;
mod outliers;
mod ratings;
mod signals;
mod survivorship;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use serde::Serialize;

use mdor_store::{AnalysisScope, NewSurveillanceRun, SignalUpdate, StoredAlert};

use crate::auth::Principal;
use crate::ctx::Ctx;
use crate::error::ServiceError;
use crate::policy::{self, Action, Relationship};
use crate::surveillance::extract::Cohort;

pub use feedback::{
    CompletenessRow, FEEDBACK_YEARS, FeedbackReport, FeedbackSubject, RevisionEstimate,
    RevisionRow, VolumeRow, feedback_csv, feedback_report, operator_feedback_report,
};
pub use outliers::{
    FunnelOutlier, FunnelSummary, ImplantOutlier, OutlierConfig, OutlierReport,
    OverdispersionMethod,
};
pub use ratings::{DeviceRating, HorizonRule, RatingConfig, RatingLevel, RatingOutcome};
pub use signals::{SignalResult, SignalSummary};
pub use survivorship::{
    DeviceGrouping, Estimate, HazardRatio, IndicationAdjustment, REPORT_YEARS, SurvivorshipPoint,
    SurvivorshipReport,
};

/// How long a survivorship report may reuse a cohort read earlier for the same scope and
/// analysis date: reports may lag new records by this much, and in exchange a report on a
/// national registry takes milliseconds instead of a read of the whole class. Revision rates
/// at one to fifteen years do not move in ten minutes; a surveillance run reads afresh.
pub const COHORT_REUSE: Duration = Duration::from_secs(10 * 60);

/// How often the server's cohort keeper re-reads the cohorts in use, so that each is always
/// younger than [`COHORT_REUSE`] and no report waits for a read of its class.
/// Re-reading every class of a 1M-procedure registry takes 15–30 s on two cores, so a round
/// every few minutes costs a few per cent of one core.
pub const COHORT_REFRESH: Duration = Duration::from_secs(4 * 60);

/// A cohort no report has used for this long is dropped instead of refreshed.
pub const COHORT_KEEP_WHILE_USED: Duration = Duration::from_secs(15 * 60);

/// The cohorts read most recently, by scope and analysis date.
#[derive(Default)]
pub(crate) struct CohortCache {
    entries: Mutex<Vec<CachedCohort>>,
}

struct CachedCohort {
    scope: AnalysisScope,
    as_of: NaiveDate,
    read_at: Instant,
    /// When a report last used it; `None` for a cohort only warmed, which the keeper lets
    /// expire instead of re-reading (re-reading every class costs recalls their p99).
    used_at: Option<Instant>,
    cohort: Arc<Cohort>,
}

/// At most this many cohorts are kept (one per device type in use is plenty).
const MAX_CACHED_COHORTS: usize = 16;

impl CohortCache {
    fn entries(&self) -> std::sync::MutexGuard<'_, Vec<CachedCohort>> {
        // A poisoned lock only means another report panicked; the entries are still whole.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, scope: &AnalysisScope, as_of: NaiveDate) -> Option<Arc<Cohort>> {
        let mut entries = self.entries();
        let entry = entries.iter_mut().find(|c| {
            &c.scope == scope && c.as_of == as_of && c.read_at.elapsed() < COHORT_REUSE
        })?;
        entry.used_at = Some(Instant::now());
        Some(Arc::clone(&entry.cohort))
    }

    /// Caches a cohort read at `read_at`; `for_report` when a report is waiting for it.
    fn put(
        &self,
        scope: AnalysisScope,
        as_of: NaiveDate,
        read_at: Instant,
        cohort: Arc<Cohort>,
        for_report: bool,
    ) {
        let mut entries = self.entries();
        let used_at = if for_report {
            Some(read_at)
        } else {
            entries
                .iter()
                .find(|c| c.scope == scope)
                .and_then(|c| c.used_at)
        };
        // An entry of another analysis date is yesterday's: the refreshed one replaces it.
        entries.retain(|c| c.scope != scope && c.read_at.elapsed() < COHORT_REUSE);
        if entries.len() >= MAX_CACHED_COHORTS {
            entries.remove(0);
        }
        entries.push(CachedCohort {
            scope,
            as_of,
            read_at,
            used_at,
            cohort,
        });
    }

    /// The scopes to re-read: used by a report within `keep_while_used` and read more than
    /// `older_than` ago. Cohorts unused for longer, and warmed ones past their reuse, are
    /// dropped.
    fn due(&self, older_than: Duration, keep_while_used: Duration) -> Vec<AnalysisScope> {
        let mut entries = self.entries();
        entries.retain(|c| match c.used_at {
            Some(used) => used.elapsed() < keep_while_used,
            None => c.read_at.elapsed() < COHORT_REUSE,
        });
        entries
            .iter()
            .filter(|c| c.used_at.is_some() && c.read_at.elapsed() >= older_than)
            .map(|c| c.scope.clone())
            .collect()
    }

    fn len(&self) -> usize {
        self.entries().len()
    }
}

/// Runs CPU-heavy analysis (building a cohort takes seconds at 1M procedures, a report tens
/// of milliseconds) on the blocking pool, so that it never holds one of the runtime's worker
/// threads: with two cores, a cohort refresh on a worker stalled recalls for up to 1.6 s.
async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServiceError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => Ok(value),
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => Err(ServiceError::Input(
            "the analysis was cancelled: the server is shutting down".into(),
        )),
    }
}

/// The cohort of `scope` as of `as_of`, reused when read within `COHORT_REUSE`.
async fn cohort(
    ctx: &Ctx,
    scope: AnalysisScope,
    as_of: NaiveDate,
) -> Result<Arc<Cohort>, ServiceError> {
    if let Some(cohort) = ctx.cohorts.get(&scope, as_of) {
        return Ok(cohort);
    }
    read_cohort(ctx, scope, as_of, true).await
}

/// Reads and caches the cohort of `scope` as of `as_of`; `for_report` when a report asked.
async fn read_cohort(
    ctx: &Ctx,
    scope: AnalysisScope,
    as_of: NaiveDate,
    for_report: bool,
) -> Result<Arc<Cohort>, ServiceError> {
    let read_at = Instant::now();
    let extract = ctx.store.analysis_extract(&scope).await?;
    let cohort = Arc::new(off_runtime(move || Cohort::build(extract, as_of)).await?);
    ctx.cohorts
        .put(scope, as_of, read_at, Arc::clone(&cohort), for_report);
    Ok(cohort)
}

/// Reads the cohort of every device type in the register, so that the first survivorship
/// report of each class does not wait for its read; returns how many were read.
pub async fn warm_cohorts(ctx: &Ctx) -> Result<usize, ServiceError> {
    let mut types: Vec<String> = ctx
        .store
        .register_device_types()
        .await?
        .into_iter()
        .map(|(_, device_type, _)| device_type)
        .collect();
    types.sort();
    types.dedup();
    types.truncate(MAX_CACHED_COHORTS);
    let scopes: Vec<AnalysisScope> = types
        .into_iter()
        .map(|t| AnalysisScope::DeviceTypes(vec![t]))
        .collect();
    read_cohorts(ctx, scopes, ctx.today()).await
}

/// Re-reads every cached cohort read at least `older_than` ago that a report used within
/// [`COHORT_KEEP_WHILE_USED`], as of today; returns how many were re-read.
pub async fn refresh_cohorts(ctx: &Ctx, older_than: Duration) -> Result<usize, ServiceError> {
    let due = ctx.cohorts.due(older_than, COHORT_KEEP_WHILE_USED);
    read_cohorts(ctx, due, ctx.today()).await
}

/// Reads and caches the cohorts of `scopes` (not for a waiting report): one scoped read for a
/// single scope; for several, one read of the whole registry split by scope, since each
/// scoped read scans every implant (at 2M procedures, 12 class reads took 112 s and one
/// whole read 11 s). Returns how many were read.
async fn read_cohorts(
    ctx: &Ctx,
    scopes: Vec<AnalysisScope>,
    as_of: NaiveDate,
) -> Result<usize, ServiceError> {
    let n = scopes.len();
    if n <= 1 {
        for scope in scopes {
            read_cohort(ctx, scope, as_of, false).await?;
        }
        return Ok(n);
    }
    let read_at = Instant::now();
    let whole = Arc::new(ctx.store.analysis_extract(&AnalysisScope::All).await?);
    for scope in scopes {
        let whole = Arc::clone(&whole);
        let part_scope = scope.clone();
        let cohort = off_runtime(move || Cohort::build(whole.restricted_to(&part_scope), as_of));
        ctx.cohorts
            .put(scope, as_of, read_at, Arc::new(cohort.await?), false);
    }
    Ok(n)
}

/// How many cohorts the context holds (for the server's logs and tests).
pub fn cached_cohorts(ctx: &Ctx) -> usize {
    ctx.cohorts.len()
}

/// The server's cohort keeper: warms every class's cohort (so each class's first report
/// within [`COHORT_REUSE`] of start-up answers from memory), then every [`COHORT_REFRESH`]
/// re-reads the cohorts reports have used within [`COHORT_KEEP_WHILE_USED`], so that a class
/// in use always answers from memory with data at most `COHORT_REFRESH` plus one read old.
/// Classes nobody asks about are not re-read: a round over every class reads the whole
/// registry (about 11 s at 2M procedures), and re-reading doubled recall p99 while it ran. Runs until the process ends; a failed read is logged
/// and retried on the next round (reports then read for themselves).
pub async fn keep_cohorts_warm(ctx: Ctx) {
    let started = Instant::now();
    match warm_cohorts(&ctx).await {
        Ok(n) => tracing::info!(
            cohorts = n,
            seconds = started.elapsed().as_secs_f64(),
            "survivorship cohorts warmed"
        ),
        Err(error) => {
            tracing::warn!(error = %crate::error::error_chain(&error), "warming survivorship cohorts failed")
        }
    }
    let mut ticks = tokio::time::interval(COHORT_REFRESH);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let started = Instant::now();
        match refresh_cohorts(&ctx, COHORT_REFRESH).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(
                cohorts = n,
                seconds = started.elapsed().as_secs_f64(),
                "survivorship cohorts refreshed"
            ),
            Err(error) => {
                tracing::warn!(error = %crate::error::error_chain(&error), "refreshing survivorship cohorts failed")
            }
        }
    }
}

/// Thresholds of the sequential signals; the defaults are explained in `docs/surveillance.md`.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalConfig {
    /// The chance of any false alert within one family (device models, lots, providers,
    /// consultants); each unit is tested at `alpha / units` (Bonferroni).
    pub alpha: f64,
    /// MaxSPRT upper limit `T` for a device model, in expected revisions.
    pub maxsprt_upper_limit: f64,
    /// Revisions needed before a MaxSPRT (model or lot) may signal, `M`.
    pub maxsprt_min_events: u64,
    /// MaxSPRT upper limit for a lot, in expected revisions.
    pub lot_upper_limit: f64,
    /// Lots with fewer implants are not monitored.
    pub lot_min_implants: u64,
    /// The odds ratio the CUSUM is tuned to detect, `R_A`.
    pub cusum_odds_ratio: f64,
    /// The CUSUM and funnel outcome: removal within this many days of the procedure.
    pub outcome_days: i32,
}

impl Default for SignalConfig {
    fn default() -> Self {
        SignalConfig {
            alpha: 0.05,
            maxsprt_upper_limit: 100.0,
            maxsprt_min_events: 3,
            lot_upper_limit: 20.0,
            lot_min_implants: 10,
            cusum_odds_ratio: 2.0,
            outcome_days: 730,
        }
    }
}

/// Everything a surveillance run can be told.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SurveillanceConfig {
    /// The analysis date; the context's clock when `None`.
    pub as_of: Option<NaiveDate>,
    pub signals: SignalConfig,
    pub outliers: OutlierConfig,
    pub ratings: RatingConfig,
}

/// What one surveillance run found.
#[derive(Debug, Clone, Serialize)]
pub struct SurveillanceRun {
    pub run_id: i64,
    pub as_of: NaiveDate,
    pub n_implants: usize,
    pub n_procedures: usize,
    /// Signals raised by this run (new, or renewed after being cleared).
    pub new_alerts: Vec<SignalResult>,
    /// Every subject signalling now, including those already alerted in earlier runs.
    pub signalling: Vec<SignalResult>,
    /// Subjects that were signalled before and no longer are, as `kind subject`.
    pub cleared: Vec<String>,
    pub signal_summary: SignalSummary,
    pub outliers: OutlierReport,
    pub ratings: Vec<DeviceRating>,
    /// Seconds spent reading the extract, and analysing.
    pub seconds_reading: f64,
    pub seconds_analysing: f64,
}

/// The survivorship report of a grouping of devices, as of the context's clock, from data read
/// at most `COHORT_REUSE` ago.
#[tracing::instrument(skip_all)]
pub async fn device_survivorship(
    ctx: &Ctx,
    principal: &Principal,
    grouping: &DeviceGrouping,
) -> Result<SurvivorshipReport, ServiceError> {
    policy::authorize(
        principal,
        Action::ReadSurvivorship,
        Relationship::Independent,
    )?;
    let scope = scope_of(ctx, grouping).await?;
    let cohort = cohort(ctx, scope, ctx.today()).await?;
    let grouping = grouping.clone();
    off_runtime(move || survivorship::survivorship(&cohort, &grouping)).await?
}

/// The survivorship report for an operator (the CLI), who has no token.
pub async fn operator_survivorship(
    ctx: &Ctx,
    grouping: &DeviceGrouping,
) -> Result<SurvivorshipReport, ServiceError> {
    let scope = scope_of(ctx, grouping).await?;
    let cohort = cohort(ctx, scope, ctx.today()).await?;
    let grouping = grouping.clone();
    off_runtime(move || survivorship::survivorship(&cohort, &grouping)).await?
}

/// The narrowest extract a grouping needs: its device type for a model or a type.
async fn scope_of(ctx: &Ctx, grouping: &DeviceGrouping) -> Result<AnalysisScope, ServiceError> {
    Ok(match grouping {
        DeviceGrouping::Model(udi_di) => {
            let model = ctx
                .store
                .device_model(udi_di)
                .await?
                .ok_or(ServiceError::NotFound {
                    what: "device model",
                })?;
            AnalysisScope::DeviceTypes(vec![model.device_type])
        }
        DeviceGrouping::DeviceType(device_type) => {
            AnalysisScope::DeviceTypes(vec![device_type.clone()])
        }
        _ => AnalysisScope::All,
    })
}

/// The most recent alerts, newest first, for the regulator or an administrator.
pub async fn surveillance_alerts(
    ctx: &Ctx,
    principal: &Principal,
    limit: u32,
) -> Result<Vec<StoredAlert>, ServiceError> {
    policy::authorize(
        principal,
        Action::ReadSurveillanceAlerts,
        Relationship::Independent,
    )?;
    Ok(ctx.store.surveillance_alerts(limit.clamp(1, 1000)).await?)
}

/// The most recent alerts for an operator (the CLI).
pub async fn latest_alerts(ctx: &Ctx, limit: u32) -> Result<Vec<StoredAlert>, ServiceError> {
    Ok(ctx.store.surveillance_alerts(limit.clamp(1, 1000)).await?)
}

/// When surveillance last ran, if ever: how fresh the signals are (operators and tests).
pub async fn latest_surveillance_run(
    ctx: &Ctx,
) -> Result<Option<mdor_store::SurveillanceRunInfo>, ServiceError> {
    Ok(ctx.store.latest_surveillance_run().await?)
}

/// Runs every surveillance method over the whole registry, compares the signals with the
/// state kept from earlier runs, and records the run with any new alerts. An operator task:
/// run from the CLI, or after a bulk load.
#[tracing::instrument(skip_all)]
pub async fn run_surveillance(
    ctx: &Ctx,
    config: &SurveillanceConfig,
) -> Result<SurveillanceRun, ServiceError> {
    check_config(config)?;
    let started_at = ctx.now();
    let as_of = config.as_of.unwrap_or_else(|| ctx.today());
    let clock = Instant::now();
    let extract = ctx.store.analysis_extract(&AnalysisScope::All).await?;
    let seconds_reading = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    // Seconds of CPU: on the blocking pool, so that a run inside the server (after an ingest)
    // never holds one of the runtime's worker threads.
    let analysis_config = config.clone();
    let Analysis {
        cohort,
        signalling,
        signal_summary,
        outliers,
        ratings,
    } = off_runtime(move || analyse(extract, as_of, &analysis_config)).await?;
    let seconds_analysing = clock.elapsed().as_secs_f64();
    tracing::info!(
        implants = cohort.implants.len(),
        signalling = signalling.len(),
        seconds_reading,
        seconds_analysing,
        "surveillance analysed"
    );

    let stored = ctx.store.surveillance_signals().await?;
    let mut previous: HashMap<(String, String, String), String> = stored
        .iter()
        .map(|s| {
            (
                (s.method.clone(), s.subject_kind.clone(), s.subject.clone()),
                s.state.clone(),
            )
        })
        .collect();
    let mut updates = Vec::new();
    let mut new_alerts = Vec::new();
    for signal in &signalling {
        let key = (
            signal.method.to_string(),
            signal.subject_kind.to_string(),
            signal.subject.clone(),
        );
        let raise_alert = previous.remove(&key).as_deref() != Some("signalled");
        if raise_alert {
            new_alerts.push(signal.clone());
        }
        updates.push(SignalUpdate {
            method: signal.method.to_string(),
            subject_kind: signal.subject_kind.to_string(),
            subject: signal.subject.clone(),
            state: "signalled".into(),
            since: signal.since,
            observed: signal.observed,
            expected: signal.expected,
            statistic: signal.statistic,
            critical_value: signal.critical_value,
            explanation: signal.explanation.clone(),
            raise_alert,
        });
    }
    let mut cleared = Vec::new();
    for s in stored.iter().filter(|s| s.state == "signalled") {
        let key = (s.method.clone(), s.subject_kind.clone(), s.subject.clone());
        if previous.contains_key(&key) {
            cleared.push(format!("{} {}", s.subject_kind, s.subject));
            updates.push(SignalUpdate {
                method: s.method.clone(),
                subject_kind: s.subject_kind.clone(),
                subject: s.subject.clone(),
                state: "cleared".into(),
                since: s.since,
                observed: s.observed,
                expected: s.expected,
                statistic: s.statistic,
                critical_value: s.critical_value,
                explanation: format!("no longer signalling as of {as_of}; was: {}", s.explanation),
                raise_alert: false,
            });
        }
    }
    let mut run = SurveillanceRun {
        run_id: 0,
        as_of,
        n_implants: cohort.implants.len(),
        n_procedures: cohort.procedures.len(),
        new_alerts,
        signalling,
        cleared,
        signal_summary,
        outliers,
        ratings,
        seconds_reading,
        seconds_analysing,
    };
    let summary = serde_json::json!({
        "as_of": run.as_of,
        "n_implants": run.n_implants,
        "n_procedures": run.n_procedures,
        "signal_summary": run.signal_summary,
        "signalling": run.signalling.len(),
        "new_alerts": run.new_alerts.len(),
        "cleared": run.cleared,
        "outliers": run.outliers,
    });
    let id = ctx
        .store
        .save_surveillance_run(&NewSurveillanceRun {
            started_at,
            finished_at: ctx.now(),
            as_of,
            n_implants: run.n_implants as i64,
            summary: summary.to_string(),
            signals: updates,
        })
        .await?;
    run.run_id = id.0;
    Ok(run)
}

/// Everything a run computes from the extract.
struct Analysis {
    cohort: Cohort,
    signalling: Vec<SignalResult>,
    signal_summary: SignalSummary,
    outliers: OutlierReport,
    ratings: Vec<DeviceRating>,
}

fn analyse(
    extract: mdor_store::AnalysisExtract,
    as_of: NaiveDate,
    config: &SurveillanceConfig,
) -> Analysis {
    let phase = Instant::now();
    let cohort = Cohort::build(extract, as_of);
    tracing::debug!(seconds = phase.elapsed().as_secs_f64(), "cohort built");
    let phase = Instant::now();
    let risks = signals::ProcedureRisks::fit(&cohort, config.signals.outcome_days);
    tracing::debug!(seconds = phase.elapsed().as_secs_f64(), "risk model fitted");
    let phase = Instant::now();
    let (signalling, signal_summary) = signals::detect(&cohort, &config.signals, risks.as_ref());
    tracing::debug!(seconds = phase.elapsed().as_secs_f64(), "signals detected");
    let phase = Instant::now();
    let outliers = outliers::detect(
        &cohort,
        &config.outliers,
        risks.as_ref(),
        config.signals.outcome_days,
    );
    tracing::debug!(seconds = phase.elapsed().as_secs_f64(), "outliers detected");
    let phase = Instant::now();
    let ratings = ratings::rate(&cohort, &config.ratings);
    tracing::debug!(seconds = phase.elapsed().as_secs_f64(), "ratings made");
    Analysis {
        cohort,
        signalling,
        signal_summary,
        outliers,
        ratings,
    }
}

/// The server's surveillance-after-ingest task: whenever a bulk submission has stored or
/// corrected records, runs surveillance over the whole registry (as `mdor surveil`, with
/// `config`), so that a signal in newly submitted data is raised without waiting for an
/// operator. Submissions completing while a run is under way lead to one more run, not one
/// each. Runs until the process ends; a failed run is logged and the next ingest retries.
pub async fn surveil_after_ingests(ctx: Ctx, config: SurveillanceConfig) {
    loop {
        ctx.ingested.notified().await;
        match run_surveillance(&ctx, &config).await {
            Ok(run) => tracing::info!(
                run = run.run_id,
                new_alerts = run.new_alerts.len(),
                signalling = run.signalling.len(),
                "surveillance after ingest"
            ),
            Err(error) => {
                tracing::warn!(error = %crate::error::error_chain(&error), "surveillance after ingest failed")
            }
        }
    }
}

fn check_config(config: &SurveillanceConfig) -> Result<(), ServiceError> {
    let s = &config.signals;
    let problems = [
        (
            "alpha",
            s.alpha > 0.0 && s.alpha < 1.0,
            "alpha must lie strictly between 0 and 1",
        ),
        (
            "maxsprt_upper_limit",
            s.maxsprt_upper_limit > 0.0 && s.maxsprt_upper_limit <= 1000.0,
            "the MaxSPRT upper limit must lie in (0, 1000] expected events",
        ),
        (
            "lot_upper_limit",
            s.lot_upper_limit > 0.0 && s.lot_upper_limit <= 1000.0,
            "the lot MaxSPRT upper limit must lie in (0, 1000] expected events",
        ),
        (
            "maxsprt_min_events",
            s.maxsprt_min_events >= 1,
            "at least one event is needed before a signal",
        ),
        (
            "cusum_odds_ratio",
            s.cusum_odds_ratio > 1.0 && s.cusum_odds_ratio.is_finite(),
            "the CUSUM odds ratio must be greater than 1",
        ),
        (
            "outcome_days",
            s.outcome_days >= 1,
            "the outcome window must be at least one day",
        ),
    ];
    for (field, ok, message) in problems {
        if !ok {
            return Err(ServiceError::invalid(field, "out_of_range", message));
        }
    }
    outliers::check_config(&config.outliers)?;
    ratings::check_config(&config.ratings)
}
