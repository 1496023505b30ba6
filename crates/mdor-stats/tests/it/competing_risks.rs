//! Aalen–Johansen and Nelson–Aalen against statsmodels and lifelines goldens, plus invariants.

use mdor_stats::{
    CiTransform, CompetingRisksData, KaplanMeierOptions, SurvivalData, aalen_johansen,
    kaplan_meier, nelson_aalen,
};
use proptest::prelude::*;

use crate::golden::{assert_close, datasets, floats};

const EXACT: f64 = 1e-9;

#[test]
fn cumulative_incidence_and_its_standard_error_match_statsmodels_with_tied_times() {
    let mut checked = 0;
    for set in datasets() {
        let Some(reference) = set.reference("aalen_johansen") else {
            continue;
        };
        checked += 1;
        let time = set.floats("time");
        let cause = set.labels("cause").unwrap();
        let data = CompetingRisksData::new(&time, &cause).unwrap();
        let ci = aalen_johansen(&data, 0.95, CiTransform::LogLog).unwrap();
        assert_eq!(ci.time, floats(&reference["times"]), "{}", set.name);
        for (k, cause) in ci.causes.iter().enumerate() {
            let expected = floats(&reference["cinc"][k]);
            let expected_se = floats(&reference["cinc_se"][k]);
            for j in 0..ci.time.len() {
                let what = format!("{} cause {} j={j}", set.name, k + 1);
                assert_close(cause.incidence[j], expected[j], EXACT, &what);
                if expected_se[j].is_finite() {
                    assert_close(cause.std_err[j], expected_se[j], EXACT, &what);
                }
            }
        }
    }
    assert!(checked >= 2);
}

#[test]
fn nelson_aalen_hazard_and_binomial_variance_match_lifelines() {
    let mut checked = 0;
    for set in datasets() {
        let Some(reference) = set.reference("nelson_aalen") else {
            continue;
        };
        checked += 1;
        let na = nelson_aalen(&set.survival_data()).unwrap();
        let times = floats(&reference["event_times"]);
        let hazard = floats(&reference["cumulative_hazard"]);
        let variance = floats(&reference["variance_binomial"]);
        for (k, &t) in times.iter().enumerate() {
            let j = na.time.iter().position(|&x| x == t).unwrap();
            let what = format!("{} t={t}", set.name);
            assert_close(na.cumulative_hazard[j], hazard[k], EXACT, &what);
            assert_close(na.variance_binomial[j], variance[k], EXACT, &what);
        }
    }
    assert!(checked >= 8);
}

fn arbitrary_competing() -> impl Strategy<Value = (Vec<f64>, Vec<u32>, Vec<f64>)> {
    prop::collection::vec((0u32..30, 0u32..4, 0u32..10), 1..80).prop_map(|rows| {
        let mut time = Vec::new();
        let mut cause = Vec::new();
        let mut entry = Vec::new();
        for (t, c, e) in rows {
            let t = f64::from(t) + 1.0;
            time.push(t);
            cause.push(c);
            // Entries on a half-offset grid, always before the exit.
            entry.push((f64::from(e) + 0.5).min(t - 0.5));
        }
        (time, cause, entry)
    })
}

proptest! {
    #[test]
    fn incidences_of_all_causes_add_up_to_one_minus_all_cause_kaplan_meier(
        (time, cause, entry) in arbitrary_competing(),
        delayed in any::<bool>(),
    ) {
        let events: Vec<bool> = cause.iter().map(|&c| c > 0).collect();
        let (data, survival_data) = if delayed {
            (CompetingRisksData::with_entry(&entry, &time, &cause).unwrap(),
             SurvivalData::with_entry(&entry, &time, &events).unwrap())
        } else {
            (CompetingRisksData::new(&time, &cause).unwrap(), SurvivalData::new(&time, &events).unwrap())
        };
        let ci = aalen_johansen(&data, 0.95, CiTransform::LogLog).unwrap();
        let km = kaplan_meier(&survival_data, KaplanMeierOptions::default()).unwrap();
        prop_assert_eq!(&ci.time, &km.time);
        for j in 0..ci.time.len() {
            let total: f64 = ci.causes.iter().map(|c| c.incidence[j]).sum();
            prop_assert!((total - (1.0 - km.survival[j])).abs() < 1e-12);
            for c in &ci.causes {
                prop_assert!(c.std_err[j].is_finite());
                prop_assert!(c.lower[j] <= c.incidence[j] + 1e-15 && c.incidence[j] <= c.upper[j] + 1e-15);
            }
        }
    }
}
