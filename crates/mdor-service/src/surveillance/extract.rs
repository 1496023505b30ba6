//! The analysis cohort: the store's extract turned, in one pass, into indexed columns with
//! follow-up times and exits already decided, so that every analysis groups by integer index
//! and never by string.
//!
//! **Time origin** is the procedure date. An implant's follow-up ends at the first of: its
//! removal (revision or explant: the event), the patient's death (censoring for Kaplan–Meier,
//! the competing event for Aalen–Johansen), and the analysis date (censoring). A removal on the
//! day of death counts as the event. Implants dated after the analysis date are left out, as
//! are implants whose UDI-DI is not in the register (they have no device type); their
//! procedures still count for provider and consultant outcomes.

use std::collections::HashMap;

use chrono::NaiveDate;

use mdor_domain::Sex;
use mdor_store::{AnalysisExtract, DeviceModel};

/// Days in a year for converting follow-up in days to years.
pub(crate) const DAYS_PER_YEAR: f64 = 365.25;

/// How an implant's (or a procedure's) follow-up ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Still under observation at the analysis date.
    Censored,
    /// Removed (revised or explanted).
    Revision,
    /// The patient died before any removal.
    Death,
}

impl Exit {
    /// The competing-risks cause code: 0 censored, 1 revision, 2 death.
    pub(crate) fn cause(self) -> u32 {
        match self {
            Exit::Censored => 0,
            Exit::Revision => 1,
            Exit::Death => 2,
        }
    }
}

/// One registered implant in the analysis.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CohortImplant {
    /// Index into `Cohort::procedures`.
    pub procedure: u32,
    /// Index into `Cohort::models`.
    pub model: u32,
    /// Index into `Cohort::lots`.
    pub lot: Option<u32>,
    /// Procedure date as a day number.
    pub start_day: i32,
    /// Day on which follow-up ended.
    pub exit_day: i32,
    pub exit: Exit,
}

impl CohortImplant {
    /// Follow-up in years.
    pub(crate) fn years(&self) -> f64 {
        f64::from(self.exit_day - self.start_day) / DAYS_PER_YEAR
    }
}

/// One procedure in the analysis.
#[derive(Debug, Clone)]
pub(crate) struct CohortProcedure {
    pub start_day: i32,
    /// Index into `Cohort::providers`.
    pub provider: u32,
    /// Index into `Cohort::consultants`.
    pub consultant: u32,
    pub age: f64,
    pub male: bool,
    /// Index into `Cohort::indications`; `None` when the dataset records no indication.
    pub indication: Option<u32>,
    /// Index into `Cohort::classes`: the device type of the procedure's first registered
    /// device (stem for hips, femoral component for knees), or the last class,
    /// `not_in_register`, when no device is registered.
    pub class: u32,
    /// The patient's death, if on or before the analysis date.
    pub death_day: Option<i32>,
    /// The first removal of any of its implants, if on or before the analysis date.
    pub first_removal_day: Option<i32>,
    /// Its registered implants, as a range of `Cohort::implants`.
    pub implants: std::ops::Range<u32>,
}

/// The cohort every analysis runs on.
#[derive(Debug, Clone)]
pub(crate) struct Cohort {
    pub as_of: NaiveDate,
    pub as_of_day: i32,
    pub models: Vec<DeviceModel>,
    /// Distinct device types; `model_type[m]` indexes this.
    pub device_types: Vec<String>,
    pub model_type: Vec<u32>,
    /// Procedure classes: the device types, then `not_in_register`.
    pub classes: Vec<String>,
    pub providers: Vec<String>,
    pub consultants: Vec<String>,
    pub lots: Vec<String>,
    /// Distinct indication codes.
    pub indications: Vec<String>,
    pub procedures: Vec<CohortProcedure>,
    /// Grouped by procedure, in procedure order.
    pub implants: Vec<CohortImplant>,
    /// Survivorship reports' Cox designs per class, built by the first report on the class.
    pub class_designs: crate::surveillance::class_design::ClassDesigns,
}

/// A date as a day number (days from the common era), the cohort's unit of time.
pub(crate) fn day_number(date: NaiveDate) -> i32 {
    chrono::Datelike::num_days_from_ce(&date)
}

/// The date of a day number; dates outside chrono's range cannot arise from stored dates.
pub(crate) fn date_of(day: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(day).unwrap_or(NaiveDate::MIN)
}

impl Cohort {
    /// Builds the cohort from an extract (implants in any order) as of `as_of`.
    pub(crate) fn build(extract: AnalysisExtract, as_of: NaiveDate) -> Cohort {
        let as_of_day = day_number(as_of);
        let AnalysisExtract {
            device_models,
            providers,
            consultants,
            lots,
            indications,
            mut implants,
        } = extract;
        let model_index: HashMap<i64, u32> = device_models
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.0, i as u32))
            .collect();
        let mut device_types: Vec<String> = Vec::new();
        let mut type_index: HashMap<&str, u32> = HashMap::new();
        let mut model_type = Vec::with_capacity(device_models.len());
        for model in &device_models {
            let next = type_index.len() as u32;
            let t = *type_index.entry(model.device_type.as_str()).or_insert(next);
            if t == next {
                device_types.push(model.device_type.clone());
            }
            model_type.push(t);
        }
        let mut classes = device_types.clone();
        classes.push("not_in_register".to_string());
        let not_in_register = (classes.len() - 1) as u32;
        let provider_index: HashMap<i64, u32> = providers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.0.0, i as u32))
            .collect();
        let consultant_index: HashMap<i64, u32> = consultants
            .iter()
            .enumerate()
            .map(|(i, c)| (c.0.0, i as u32))
            .collect();
        let mut provider_names: Vec<String> = providers.into_iter().map(|p| p.1).collect();
        let mut consultant_names: Vec<String> = consultants.into_iter().map(|c| c.1).collect();

        implants.sort_unstable_by_key(|i| (i.procedure, i.position));
        let mut procedures: Vec<CohortProcedure> = Vec::new();
        let mut cohort_implants: Vec<CohortImplant> = Vec::with_capacity(implants.len());
        let mut start = 0;
        while start < implants.len() {
            let first = &implants[start];
            let mut end = start + 1;
            while end < implants.len() && implants[end].procedure == first.procedure {
                end += 1;
            }
            let group = &implants[start..end];
            start = end;
            let start_day = day_number(first.procedure_date);
            if start_day > as_of_day {
                continue;
            }
            let death_day = first
                .date_of_death
                .map(day_number)
                .filter(|&d| d <= as_of_day);
            // An organisation or consultant missing from the dimension tables (it cannot be, as
            // the store reads them in the same snapshot) gets an entry of its own.
            let provider = match provider_index.get(&first.provider.0) {
                Some(&p) => p,
                None => {
                    provider_names.push(format!("organisation {}", first.provider.0));
                    (provider_names.len() - 1) as u32
                }
            };
            let consultant = match consultant_index.get(&first.consultant.0) {
                Some(&c) => c,
                None => {
                    consultant_names.push(format!("consultant {}", first.consultant.0));
                    (consultant_names.len() - 1) as u32
                }
            };
            let procedure_index = procedures.len() as u32;
            let implants_start = cohort_implants.len() as u32;
            let mut class = not_in_register;
            let mut first_removal_day: Option<i32> = None;
            for implant in group {
                let removal_day = implant
                    .removal
                    .map(|(date, _)| day_number(date))
                    .filter(|&d| d <= as_of_day);
                if let Some(r) = removal_day {
                    first_removal_day = Some(first_removal_day.map_or(r, |f| f.min(r)));
                }
                let Some(&model) = implant.device_model.and_then(|m| model_index.get(&m.0)) else {
                    continue;
                };
                if class == not_in_register {
                    class = model_type[model as usize];
                }
                let (exit_day, exit) = match (removal_day, death_day) {
                    (Some(r), Some(d)) if d < r => (d, Exit::Death),
                    (Some(r), _) => (r, Exit::Revision),
                    (None, Some(d)) => (d, Exit::Death),
                    (None, None) => (as_of_day, Exit::Censored),
                };
                cohort_implants.push(CohortImplant {
                    procedure: procedure_index,
                    model,
                    lot: implant.lot,
                    start_day,
                    exit_day: exit_day.max(start_day),
                    exit,
                });
            }
            procedures.push(CohortProcedure {
                start_day,
                provider,
                consultant,
                age: first.age_at_procedure,
                male: first.sex == Sex::Male,
                indication: first.indication,
                class,
                death_day,
                first_removal_day,
                implants: implants_start..cohort_implants.len() as u32,
            });
        }
        Cohort {
            as_of,
            as_of_day,
            models: device_models,
            device_types,
            model_type,
            classes,
            providers: provider_names,
            consultants: consultant_names,
            lots,
            indications,
            procedures,
            implants: cohort_implants,
            class_designs: Default::default(),
        }
    }

    /// One implant per model per procedure: where a procedure holds several implants of one
    /// model (bilateral breast implants, dual-chamber leads), they are one unit whose event is
    /// the earliest removal. Removals of such pairs are not independent, so counting them
    /// separately would make Poisson tests overstate the evidence.
    pub(crate) fn model_units(&self) -> Vec<CohortImplant> {
        let mut units = Vec::with_capacity(self.implants.len());
        for procedure in &self.procedures {
            let start = units.len();
            for implant in
                &self.implants[procedure.implants.start as usize..procedure.implants.end as usize]
            {
                let same = units[start..]
                    .iter()
                    .position(|u: &CohortImplant| u.model == implant.model);
                match same {
                    None => units.push(*implant),
                    Some(k) => {
                        let unit = &mut units[start + k];
                        let earlier_revision = implant.exit == Exit::Revision
                            && (unit.exit != Exit::Revision || implant.exit_day < unit.exit_day);
                        if earlier_revision {
                            *unit = *implant;
                        }
                    }
                }
            }
        }
        units
    }

    /// The device type index of an implant.
    pub(crate) fn implant_type(&self, implant: &CohortImplant) -> u32 {
        self.model_type[implant.model as usize]
    }
}
