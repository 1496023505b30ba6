//! Feedback reports for a provider, a consultant or a manufacturer: volumes, data
//! completeness, cumulative revision against the national figure for the same device types,
//! and current surveillance signals. Aggregate only, with small-number suppression
//! (`crate::disclosure`): every count is published, never raw, and an estimate is shown only
//! when enough implants are at risk and its events are not a suppressible count.
//!
//! "National" is every registered implant of the same device type in the registry,
//! the subject's own included, as registries report it.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use mdor_stats::{KaplanMeierOptions, SurvivalData, kaplan_meier};
use mdor_store::AnalysisScope;

use super::extract::{Cohort, Exit, date_of};
use crate::auth::Principal;
use crate::ctx::Ctx;
use crate::disclosure::{Published, publish_count, publish_rate};
use crate::error::ServiceError;
use crate::policy::{self, Action, Relationship};

/// Horizons of the revision table, in years.
pub const FEEDBACK_YEARS: [u32; 4] = [1, 3, 5, 10];

/// Whose report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedbackSubject {
    /// A provider, by ODS code.
    Provider(String),
    /// A consultant, by GMC number.
    Consultant(String),
    /// A manufacturer, by name as in the device register.
    Manufacturer(String),
}

impl FeedbackSubject {
    pub fn kind(&self) -> &'static str {
        match self {
            FeedbackSubject::Provider(_) => "provider",
            FeedbackSubject::Consultant(_) => "consultant",
            FeedbackSubject::Manufacturer(_) => "manufacturer",
        }
    }

    pub fn name(&self) -> &str {
        match self {
            FeedbackSubject::Provider(s)
            | FeedbackSubject::Consultant(s)
            | FeedbackSubject::Manufacturer(s) => s,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FeedbackReport {
    pub subject_kind: &'static str,
    pub subject: String,
    pub as_of: NaiveDate,
    pub volumes: Vec<VolumeRow>,
    pub completeness: Vec<CompletenessRow>,
    pub revision: Vec<RevisionRow>,
    /// Surveillance signals currently raised for the subject (or, for a manufacturer, its
    /// models and lots), with their explanations.
    pub signals: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VolumeRow {
    pub year: i32,
    pub procedures: Published,
    pub implants: Published,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompletenessRow {
    pub measure: &'static str,
    /// Percentage, when both counts may be shown.
    pub percent: Option<f64>,
    pub of: Published,
}

/// Cumulative revision (1 − Kaplan–Meier, %) of one device type at one horizon.
#[derive(Debug, Clone, Serialize)]
pub struct RevisionRow {
    pub device_type: String,
    pub years: u32,
    pub subject: Option<RevisionEstimate>,
    pub national: Option<RevisionEstimate>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RevisionEstimate {
    /// `None` when suppressed (fewer than 8 at risk, or 1 to 7 revisions so far).
    pub percent: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub at_risk: Published,
    pub revisions: Published,
}

/// The report for `subject`: a provider's roles may read their own provider's, a
/// manufacturer its own devices' (its organisation's name is the register's manufacturer);
/// regulators, registry analysts and administrators any (`policy::POLICIES`,
/// `ReadFeedbackReport`). A consultant's report is another organisation's to everyone:
/// accounts do not yet say which consultant they are. Refusals are `Forbidden`: reports are
/// aggregates whose subjects are public, so there is nothing to hide. The report holds
/// counts, percentages and signals only, never a patient or a record (`FeedbackReport`).
pub async fn feedback_report(
    ctx: &Ctx,
    principal: &Principal,
    subject: &FeedbackSubject,
) -> Result<FeedbackReport, ServiceError> {
    use mdor_store::AccountRole;
    let provider_role = matches!(
        principal.role,
        AccountRole::ProviderSubmitter | AccountRole::ProviderDataManager | AccountRole::Consultant
    );
    let relationship = match subject {
        FeedbackSubject::Provider(ods) if provider_role && *ods == principal.organisation_ods => {
            Relationship::OwnOrganisation
        }
        FeedbackSubject::Manufacturer(name)
            if principal.role == AccountRole::Manufacturer
                && own_manufacturer(ctx, principal).await?.as_deref() == Some(name.as_str()) =>
        {
            Relationship::OwnOrganisation
        }
        _ => Relationship::OtherOrganisation,
    };
    policy::authorize(principal, Action::ReadFeedbackReport, relationship)?;
    operator_feedback_report(ctx, subject).await
}

/// The register's manufacturer a manufacturer's organisation stands for: its name, exactly
/// as the register spells it (`mdor org add --kind manufacturer --name …`).
async fn own_manufacturer(
    ctx: &Ctx,
    principal: &Principal,
) -> Result<Option<String>, ServiceError> {
    let Ok(ods) = mdor_domain::OdsCode::parse(&principal.organisation_ods) else {
        return Ok(None);
    };
    Ok(ctx
        .store
        .organisation_by_ods(&ods)
        .await?
        .filter(|organisation| organisation.kind == mdor_store::OrganisationKind::Manufacturer)
        .map(|organisation| organisation.name))
}

/// The report for an operator (the CLI), who has no token.
pub async fn operator_feedback_report(
    ctx: &Ctx,
    subject: &FeedbackSubject,
) -> Result<FeedbackReport, ServiceError> {
    let cohort = super::cohort(ctx, AnalysisScope::All, ctx.today()).await?;
    let signals = ctx.store.surveillance_signals().await?;
    let report = build(&cohort, subject)?;
    let own_models: Vec<&str> = match subject {
        FeedbackSubject::Manufacturer(name) => cohort
            .models
            .iter()
            .filter(|m| m.manufacturer == *name)
            .map(|m| m.udi_di.as_str())
            .collect(),
        _ => Vec::new(),
    };
    let signals = signals
        .iter()
        .filter(|s| s.state == "signalled")
        .filter(|s| match subject {
            FeedbackSubject::Provider(ods) => s.subject_kind == "provider" && s.subject == *ods,
            FeedbackSubject::Consultant(gmc) => s.subject_kind == "consultant" && s.subject == *gmc,
            FeedbackSubject::Manufacturer(_) => own_models
                .iter()
                .any(|udi| s.subject == *udi || s.subject.starts_with(&format!("{udi}/"))),
        })
        .map(|s| {
            format!(
                "{} {} since {}: {}",
                s.method, s.subject, s.since, s.explanation
            )
        })
        .collect();
    Ok(FeedbackReport { signals, ..report })
}

/// Computes the report from a cohort; fails only when the subject has no procedures.
pub(crate) fn build(
    cohort: &Cohort,
    subject: &FeedbackSubject,
) -> Result<FeedbackReport, ServiceError> {
    let index_of = |names: &[String], wanted: &str| names.iter().position(|n| n == wanted);
    let in_subject: Box<dyn Fn(usize, usize) -> bool> = match subject {
        FeedbackSubject::Provider(ods) => {
            let p = index_of(&cohort.providers, ods);
            Box::new(move |procedure, _| {
                p.is_some_and(|p| cohort.procedures[procedure].provider as usize == p)
            })
        }
        FeedbackSubject::Consultant(gmc) => {
            let c = index_of(&cohort.consultants, gmc);
            Box::new(move |procedure, _| {
                c.is_some_and(|c| cohort.procedures[procedure].consultant as usize == c)
            })
        }
        FeedbackSubject::Manufacturer(name) => {
            let name = name.clone();
            Box::new(move |_, model| cohort.models[model].manufacturer == name)
        }
    };

    // Volumes by year and completeness: one pass over the implants.
    let mut by_year: BTreeMap<i32, (u64, u64)> = BTreeMap::new();
    let (mut implants, mut with_lot) = (0u64, 0u64);
    let mut subject_types: Vec<bool> = vec![false; cohort.device_types.len()];
    for (pi, procedure) in cohort.procedures.iter().enumerate() {
        let mut counted = false;
        for implant in
            &cohort.implants[procedure.implants.start as usize..procedure.implants.end as usize]
        {
            if !in_subject(pi, implant.model as usize) {
                continue;
            }
            let year = date_of(procedure.start_day).year();
            let entry = by_year.entry(year).or_default();
            if !counted {
                entry.0 += 1;
                counted = true;
            }
            entry.1 += 1;
            implants += 1;
            with_lot += u64::from(implant.lot.is_some());
            subject_types[cohort.model_type[implant.model as usize] as usize] = true;
        }
    }
    if implants == 0 {
        return Err(ServiceError::NotFound {
            what: "feedback subject",
        });
    }
    let volumes = by_year
        .into_iter()
        .map(|(year, (procedures, implants))| VolumeRow {
            year,
            procedures: publish_count(procedures),
            implants: publish_count(implants),
        })
        .collect();
    let completeness = vec![CompletenessRow {
        measure: "implants with a lot number recorded",
        percent: publish_rate(with_lot, implants, 100.0),
        of: publish_count(implants),
    }];

    // Revision per device type: the subject's implants against every implant of the type.
    let mut revision = Vec::new();
    for (t, device_type) in cohort.device_types.iter().enumerate() {
        if !subject_types[t] {
            continue;
        }
        let (mut own, mut all) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
        for (pi, procedure) in cohort.procedures.iter().enumerate() {
            for implant in
                &cohort.implants[procedure.implants.start as usize..procedure.implants.end as usize]
            {
                if cohort.model_type[implant.model as usize] as usize != t {
                    continue;
                }
                let years = implant.years();
                let revised = implant.exit == Exit::Revision;
                all.0.push(years);
                all.1.push(revised);
                if in_subject(pi, implant.model as usize) {
                    own.0.push(years);
                    own.1.push(revised);
                }
            }
        }
        let own = estimates(own.0, own.1);
        let national = estimates(all.0, all.1);
        for (i, &years) in FEEDBACK_YEARS.iter().enumerate() {
            revision.push(RevisionRow {
                device_type: device_type.clone(),
                years,
                subject: own.as_ref().and_then(|e| e[i].clone()),
                national: national.as_ref().and_then(|e| e[i].clone()),
            });
        }
    }
    Ok(FeedbackReport {
        subject_kind: subject.kind(),
        subject: subject.name().to_string(),
        as_of: cohort.as_of,
        volumes,
        completeness,
        revision,
        signals: Vec::new(),
    })
}

/// Published cumulative revision at each of `FEEDBACK_YEARS`; `None` for an empty group.
fn estimates(time: Vec<f64>, revised: Vec<bool>) -> Option<Vec<Option<RevisionEstimate>>> {
    let events_by = |t: f64| {
        time.iter()
            .zip(&revised)
            .filter(|(x, r)| **r && **x <= t)
            .count() as u64
    };
    let counts: Vec<u64> = FEEDBACK_YEARS
        .iter()
        .map(|&y| events_by(f64::from(y)))
        .collect();
    let curve = SurvivalData::from_vecs(time, revised)
        .and_then(|data| kaplan_meier(&data, KaplanMeierOptions::default()))
        .ok()?;
    let times: Vec<f64> = FEEDBACK_YEARS.iter().map(|&y| f64::from(y)).collect();
    Some(
        curve
            .cumulative_revision_at(&times)
            .into_iter()
            .zip(counts)
            .map(|(point, revisions)| {
                let point = point?;
                let at_risk = publish_count(point.n_risk);
                let revisions_shown = publish_count(revisions);
                // An estimate on fewer than 8 at risk, or on 1 to 7 revisions, would let a
                // reader work back to individual patients.
                let shown = point.n_risk > 7 && !revisions_shown.is_suppressed();
                let pct = |v: f64| (v * 1000.0).round() / 10.0;
                Some(RevisionEstimate {
                    percent: shown.then(|| pct(point.estimate)),
                    lower: shown.then(|| pct(point.lower)),
                    upper: shown.then(|| pct(point.upper)),
                    at_risk,
                    revisions: revisions_shown,
                })
            })
            .collect(),
    )
}

/// The report as CSV, one measure per row: `section,group,year_or_horizon,measure,value`.
pub fn feedback_csv(report: &FeedbackReport) -> String {
    let mut out = String::from("section,group,period,measure,value\n");
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "*".into());
    for v in &report.volumes {
        out.push_str(&format!("volume,,{},procedures,{}\n", v.year, v.procedures));
        out.push_str(&format!("volume,,{},implants,{}\n", v.year, v.implants));
    }
    for c in &report.completeness {
        out.push_str(&format!(
            "completeness,,,{},{}\n",
            c.measure,
            opt(c.percent)
        ));
    }
    for r in &report.revision {
        for (who, e) in [("subject", &r.subject), ("national", &r.national)] {
            if let Some(e) = e {
                let g = &r.device_type;
                let y = r.years;
                out.push_str(&format!(
                    "revision,{g},{y}y,{who}_percent,{}\n",
                    opt(e.percent)
                ));
                out.push_str(&format!("revision,{g},{y}y,{who}_lower,{}\n", opt(e.lower)));
                out.push_str(&format!("revision,{g},{y}y,{who}_upper,{}\n", opt(e.upper)));
                out.push_str(&format!("revision,{g},{y}y,{who}_at_risk,{}\n", e.at_risk));
            }
        }
    }
    for s in &report.signals {
        out.push_str(&format!("signal,,,\"{}\",\n", s.replace('"', "\"\"")));
    }
    out
}
