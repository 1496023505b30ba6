//! The injected signals are strong enough to find in a 200,000-procedure sample, using the
//! in-process streaming API and its hidden truth.

use std::collections::HashMap;

use chrono::NaiveDate;

use mdor_synth::{CUTOFF_DATE, DeviceType, Generator, OutcomeRecord, SynthConfig};

/// Removals and implant-years at risk, accumulated per group.
#[derive(Debug, Default, Clone, Copy)]
struct Exposure {
    removals: f64,
    implant_years: f64,
}

impl Exposure {
    fn rate(self) -> f64 {
        self.removals / self.implant_years
    }
}

#[test]
fn injected_signals_stand_out_in_a_200k_sample() {
    let generator = Generator::new(SynthConfig::new(77, 200_000));
    let catalogue = generator.catalogue();
    let injected_model = catalogue
        .device_models
        .iter()
        .position(|m| m == catalogue.injected_device_model())
        .unwrap() as u16;
    let injected_provider = catalogue.injected_provider().ods_code.clone();
    let (mut injected_cups, mut other_cups) = (Exposure::default(), Exposure::default());
    let (mut at_injected_provider, mut elsewhere) = (Exposure::default(), Exposure::default());
    let (mut faulty_lot, mut other_femorals) = (Exposure::default(), Exposure::default());
    for history in generator.patient_histories() {
        let history = history.unwrap();
        let death = history.outcomes.iter().find_map(|o| match o {
            OutcomeRecord::Death { date, .. } => Some(*date),
            OutcomeRecord::Removal { .. } => None,
        });
        let mut removal_dates: HashMap<(&str, usize), NaiveDate> = HashMap::new();
        for outcome in &history.outcomes {
            if let OutcomeRecord::Removal {
                local_record_id,
                device_index,
                date,
                ..
            } = outcome
            {
                removal_dates.insert((local_record_id.as_str(), *device_index), *date);
            }
        }
        for procedure in &history.procedures {
            let implant = procedure.procedure.procedure_date;
            let local_id = procedure.procedure.local_record_id.as_str();
            let mut procedure_revised = false;
            for (index, truth) in procedure.device_truth.iter().enumerate() {
                let removal = removal_dates.get(&(local_id, index)).copied();
                procedure_revised |= removal.is_some();
                let end = removal.or(death).unwrap_or(CUTOFF_DATE);
                let years = (end - implant).num_days() as f64 / 365.25;
                let removed = f64::from(u8::from(removal.is_some()));
                let model = &catalogue.device_models[truth.model_index as usize];
                let group = match model.device_type {
                    DeviceType::HipCup if truth.model_index == injected_model => {
                        Some(&mut injected_cups)
                    }
                    DeviceType::HipCup => Some(&mut other_cups),
                    // The lot's fault shows in the first two years, so exposure is cut there.
                    DeviceType::KneeFemoral if truth.in_faulty_lot => Some(&mut faulty_lot),
                    DeviceType::KneeFemoral => Some(&mut other_femorals),
                    _ => None,
                };
                if let Some(group) = group {
                    let early = model.device_type == DeviceType::KneeFemoral;
                    let (years, removed) = if early && years > 2.0 {
                        (2.0, 0.0)
                    } else {
                        (years, removed)
                    };
                    group.removals += removed;
                    group.implant_years += years;
                }
            }
            // Compare joint replacements only, so that case mix (pacemaker battery
            // replacements, which do not depend on the provider) cannot mask the effect.
            if procedure.procedure.registry.as_str() != "njr" {
                continue;
            }
            let end = death.unwrap_or(CUTOFF_DATE);
            let years = (end - implant).num_days() as f64 / 365.25;
            let group = if procedure.procedure.provider == injected_provider {
                &mut at_injected_provider
            } else {
                &mut elsewhere
            };
            group.removals += f64::from(u8::from(procedure_revised));
            group.implant_years += years;
        }
    }
    // Shown with --nocapture, to compare with docs/synthetic-data.md.
    eprintln!(
        "cups {injected_cups:?} vs {other_cups:?}; provider {at_injected_provider:?} vs \
         {elsewhere:?}; lot {faulty_lot:?} vs {other_femorals:?}"
    );
    let model_ratio = injected_cups.rate() / other_cups.rate();
    assert!(
        model_ratio > 2.0,
        "injected cup rate ratio {model_ratio:.2}"
    );
    let provider_ratio = at_injected_provider.rate() / elsewhere.rate();
    assert!(
        provider_ratio > 1.5,
        "injected provider rate ratio {provider_ratio:.2}"
    );
    let lot_ratio = faulty_lot.rate() / other_femorals.rate();
    assert!(
        lot_ratio > 4.0,
        "faulty lot early rate ratio {lot_ratio:.2}"
    );
}
