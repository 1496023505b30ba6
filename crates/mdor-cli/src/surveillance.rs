//! `mdor surveil`: runs surveillance over the whole registry and prints what it found, as a
//! summary for an operator or as the run's JSON.

use anyhow::Context;
use chrono::NaiveDate;

use mdor_service::{Ctx, SurveillanceConfig};

use crate::print;

/// Runs surveillance as of `as_of` (today when `None`) with the default thresholds.
pub async fn run(ctx: &Ctx, as_of: Option<NaiveDate>, json: bool) -> anyhow::Result<()> {
    let config = SurveillanceConfig {
        as_of,
        ..SurveillanceConfig::default()
    };
    let run = mdor_service::run_surveillance(ctx, &config)
        .await
        .context("running surveillance")?;
    if json {
        print(&format!("{}\n", serde_json::to_string_pretty(&run)?));
        return Ok(());
    }
    let s = &run.signal_summary;
    let mut text = format!(
        "surveillance run {} as of {}: {} procedures, {} implants (read {:.1} s, analysed {:.1} s)\n\
         monitored: {} device models (MaxSPRT critical value {:.2}), {} lots ({:.2}), {} providers, {} consultants (CUSUM)\n",
        run.run_id,
        run.as_of,
        run.n_procedures,
        run.n_implants,
        run.seconds_reading,
        run.seconds_analysing,
        s.device_models_monitored,
        s.device_model_critical_value,
        s.lots_monitored,
        s.lot_critical_value,
        s.providers_monitored,
        s.consultants_monitored,
    );
    for warning in &s.warnings {
        text.push_str(&format!("warning: {warning}\n"));
    }
    text.push_str(&format!(
        "{} new alert(s), {} subject(s) signalling, {} cleared\n",
        run.new_alerts.len(),
        run.signalling.len(),
        run.cleared.len()
    ));
    for alert in &run.new_alerts {
        text.push_str(&format!(
            "ALERT {} {} {}: {}\n",
            alert.method, alert.subject_kind, alert.subject, alert.explanation
        ));
    }
    for cleared in &run.cleared {
        text.push_str(&format!("cleared: {cleared}\n"));
    }
    let o = &run.outliers;
    text.push_str(&format!(
        "outliers: {} implant model(s) by the NJR or AOANJRR rule, {} funnel point(s) outside 95% limits\n",
        o.implants.len(),
        o.funnel_outliers.len()
    ));
    for warning in &o.warnings {
        text.push_str(&format!("warning: {warning}\n"));
    }
    let rated = run
        .ratings
        .iter()
        .filter(|r| r.horizons.iter().any(|h| h.level.is_some()))
        .count();
    text.push_str(&format!(
        "ratings: {rated} of {} device models rated at one horizon or more\n",
        run.ratings.len()
    ));
    print(&text);
    Ok(())
}
