//! The surveillance false-alert experiment: for each seed, generates a synthetic registry,
//! loads it into in-memory SQLite, runs surveillance as of the day after the data's cutoff, and
//! classifies every alert as the injected truth, collateral of it, or false.
//!
//! ```text
//! cargo run --release -j 1 -p mdor-service --example surveillance_seeds -- [PROCEDURES] [FIRST_SEED] [N_SEEDS]
//! ```
//!
//! Collateral alerts are those the injected problems cause in the data generated: a device
//! model that shares procedures with the injected cup or faulty lot (heads and liners are
//! removed with a failed cup), the faulty lot's model, and consultants of the injected
//! provider. A device model whose own hazard multiplier in `truth.json` is above 1 (the
//! generator's per-model frailty) truly revises more often than its class, so an alert on it
//! is counted as a detection of that frailty. Everything else is a false alert; with each
//! family tested at a family-wise alpha, false alerts per family should occur in about alpha
//! of the seeds.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "an experiment's driver: failures abort it and results go to standard output"
)]

#[path = "../tests/it/synthetic.rs"]
mod synthetic;

use std::collections::{HashMap, HashSet};

use chrono::{TimeZone, Utc};

use mdor_service::{Ctx, SurveillanceConfig};
use mdor_store::ConnectOptions;

fn clock() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, 31, 12, 0, 0).unwrap()
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numeric arguments"))
        .collect();
    let procedures = args.first().copied().unwrap_or(30_000);
    let first_seed = args.get(1).copied().unwrap_or(1);
    let n_seeds = args.get(2).copied().unwrap_or(10);
    let config = SurveillanceConfig::default();
    println!(
        "procedures {procedures}, seeds {first_seed}..{}, alpha {} per family",
        first_seed + n_seeds - 1,
        config.signals.alpha
    );
    let mut false_by_family: HashMap<&str, (u64, u64)> = HashMap::new();
    for seed in first_seed..first_seed + n_seeds {
        let store = mdor_store::connect(
            "sqlite::memory:",
            &ConnectOptions {
                kek: Some(mdor_store::KeyEncryptionKey::random()),
                ..ConnectOptions::default()
            },
        )
        .await
        .unwrap();
        store.migrate().await.unwrap();
        let ctx = Ctx::with_clock(store.clone(), clock);
        let started = std::time::Instant::now();
        let truth = synthetic::load(&ctx, seed, procedures).await;
        let loaded = started.elapsed().as_secs_f64();
        let run = mdor_service::run_surveillance(&ctx, &config).await.unwrap();
        let injected = &truth.injected;
        let lot = format!("{}/{}", injected.faulty_lot.udi_di, injected.faulty_lot.lot);
        let collateral = collateral(&*store, &truth).await;
        let mut found = (false, false, false);
        let mut false_alerts: HashMap<&str, Vec<String>> = HashMap::new();
        let mut n_collateral = 0;
        let mut frailties_found: Vec<String> = Vec::new();
        for alert in &run.new_alerts {
            let subject = alert.subject.as_str();
            match alert.subject_kind {
                "device_model" if subject == injected.device_model.udi_di => found.0 = true,
                "provider" if subject == injected.provider.ods_code => found.1 = true,
                "lot" if subject == lot => found.2 = true,
                kind if collateral.contains(&(kind.to_string(), subject.to_string())) => {
                    n_collateral += 1
                }
                "device_model"
                    if truth
                        .device_model_hazard_multipliers
                        .get(subject)
                        .is_some_and(|&m| m > 1.0) =>
                {
                    frailties_found.push(format!(
                        "{subject} x{:.2} O {} E {:.1}",
                        truth.device_model_hazard_multipliers[subject],
                        alert.observed,
                        alert.expected
                    ))
                }
                kind => false_alerts.entry(kind).or_default().push(format!(
                    "{subject} O {} E {:.1}",
                    alert.observed, alert.expected
                )),
            }
        }
        if std::env::var("SURVEILLANCE_DEBUG").is_ok() {
            println!("{:#?}", run.signal_summary);
            for f in &run.outliers.funnel_outliers {
                if f.subject == injected.provider.ods_code {
                    println!("{f:?}");
                }
            }
        }
        for family in ["device_model", "lot", "provider", "consultant"] {
            let entry = false_by_family.entry(family).or_default();
            let n = false_alerts.get(family).map_or(0, Vec::len) as u64;
            entry.0 += n;
            entry.1 += u64::from(n > 0);
        }
        println!(
            "seed {seed}: load {loaded:.1} s, read {:.2} s, analyse {:.2} s; found device {} provider {} lot {}; \
             {} alerts, {n_collateral} collateral, frailties {frailties_found:?}, false {:?}",
            run.seconds_reading,
            run.seconds_analysing,
            found.0,
            found.1,
            found.2,
            run.new_alerts.len(),
            false_alerts
        );
    }
    println!("false alerts per family over {n_seeds} seeds (alerts, seeds with any):");
    for family in ["device_model", "lot", "provider", "consultant"] {
        let (alerts, seeds) = false_by_family.get(family).copied().unwrap_or_default();
        println!("  {family}: {alerts} alerts, {seeds} of {n_seeds} seeds");
    }
}

/// Subjects the injected problems affect besides themselves.
async fn collateral(
    store: &dyn mdor_store::Store,
    truth: &mdor_synth::dataset::Truth,
) -> HashSet<(String, String)> {
    let extract = store
        .analysis_extract(&mdor_store::AnalysisScope::All)
        .await
        .unwrap();
    let injected = &truth.injected;
    let model_id = |udi: &str| {
        extract
            .device_models
            .iter()
            .find(|m| m.udi_di == udi)
            .map(|m| m.id)
    };
    let cup = model_id(&injected.device_model.udi_di);
    let femoral = model_id(&injected.faulty_lot.udi_di);
    let provider = extract
        .providers
        .iter()
        .find(|p| p.1 == injected.provider.ods_code)
        .map(|p| p.0);
    // Models implanted with the cup in at least a fifth of their procedures.
    let mut by_procedure: HashMap<i64, Vec<&mdor_store::AnalysisImplant>> = HashMap::new();
    for implant in &extract.implants {
        by_procedure
            .entry(implant.procedure.0)
            .or_default()
            .push(implant);
    }
    let mut with_cup: HashMap<i64, (u64, u64)> = HashMap::new();
    let mut consultants = HashSet::new();
    for implants in by_procedure.values() {
        let has_cup = implants.iter().any(|i| i.device_model == cup);
        for implant in implants {
            if let Some(m) = implant.device_model {
                let entry = with_cup.entry(m.0).or_default();
                entry.0 += u64::from(has_cup);
                entry.1 += 1;
            }
            if Some(implant.provider) == provider {
                consultants.insert(implant.consultant);
            }
        }
    }
    let mut out = HashSet::new();
    for model in &extract.device_models {
        let (cup_share, total) = with_cup.get(&model.id.0).copied().unwrap_or_default();
        if 5 * cup_share >= total && total > 0 || Some(model.id) == femoral {
            out.insert(("device_model".to_string(), model.udi_di.clone()));
        }
    }
    for (id, gmc) in &extract.consultants {
        if consultants.contains(id) {
            out.insert(("consultant".to_string(), gmc.clone()));
        }
    }
    out
}
