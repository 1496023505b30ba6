//! Kaplan–Meier, log-rank and Aalen–Johansen against R's survival package (survfit,
//! quantile.survfit, print.survfit rmean, survdiff, multi-state survfit), the reference the
//! issue's conventions (log CI default, median rule) are taken from.

use mdor_stats::{
    CiTransform, CompetingRisksData, KaplanMeierOptions, aalen_johansen, kaplan_meier, logrank_test,
};

use crate::golden::{assert_close, datasets, floats};

const EXACT: f64 = 1e-9;

fn r_values(set: &crate::golden::Dataset, key: &str) -> Vec<Option<f64>> {
    set.reference("r_survival").unwrap()[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64())
        .collect()
}

#[test]
fn every_golden_data_set_carries_r_reference_values() {
    assert!(
        datasets()
            .iter()
            .all(|set| set.reference("r_survival").is_some())
    );
}

#[test]
fn survival_counts_errors_and_all_three_intervals_match_r_survfit() {
    for set in datasets() {
        let data = set.survival_data();
        let r_time: Vec<f64> = r_values(&set, "km_time")
            .into_iter()
            .map(Option::unwrap)
            .collect();
        for (key, transform) in [
            ("log", CiTransform::Log),
            ("plain", CiTransform::Plain),
            ("loglog", CiTransform::LogLog),
        ] {
            let km = kaplan_meier(
                &data,
                KaplanMeierOptions {
                    confidence_level: 0.95,
                    transform,
                },
            )
            .unwrap();
            // R prints 17 significant digits, which do not always round-trip the last bit.
            assert_eq!(km.time.len(), r_time.len(), "{}", set.name);
            for (ours, theirs) in km.time.iter().zip(&r_time) {
                assert_close(*ours, *theirs, 1e-15, &set.name);
            }
            let lower = r_values(&set, &format!("km_lower_{key}"));
            let upper = r_values(&set, &format!("km_upper_{key}"));
            let surv = r_values(&set, "km_surv");
            let std_err = r_values(&set, "km_std_err");
            let n_risk = r_values(&set, "km_n_risk");
            let n_censor = r_values(&set, "km_n_censor");
            for j in 0..km.time.len() {
                let what = format!("{} {key} t={}", set.name, km.time[j]);
                assert_eq!(Some(km.n_risk[j] as f64), n_risk[j], "{what}");
                assert_eq!(Some(km.n_censor[j] as f64), n_censor[j], "{what}");
                assert_close(km.survival[j], surv[j].unwrap(), EXACT, &what);
                // R reports missing limits where S is 0 or (log-log) 1; we report [0, 0] and [1, 1].
                if let (Some(lo), Some(hi), Some(se)) = (lower[j], upper[j], std_err[j])
                    && km.survival[j] > 0.0
                {
                    assert_close(km.std_err[j], se, EXACT, &what);
                    assert_close(km.lower[j], lo, EXACT, &what);
                    assert_close(km.upper[j], hi, EXACT, &what);
                }
            }
        }
    }
}

#[test]
fn medians_and_their_limits_follow_r_quantile_survfit_for_every_transform() {
    for set in datasets() {
        let data = set.survival_data();
        for (key, transform) in [
            ("log", CiTransform::Log),
            ("plain", CiTransform::Plain),
            ("loglog", CiTransform::LogLog),
        ] {
            let median = kaplan_meier(
                &data,
                KaplanMeierOptions {
                    confidence_level: 0.95,
                    transform,
                },
            )
            .unwrap()
            .median();
            let r = r_values(&set, &format!("km_median_{key}"));
            let what = format!("{} {key}", set.name);
            assert_eq!(median.estimate, r[0], "{what} estimate");
            assert_eq!(median.lower, r[1], "{what} lower");
            assert_eq!(median.upper, r[2], "{what} upper");
        }
    }
}

#[test]
fn restricted_mean_and_its_standard_error_match_r_print_survfit() {
    for set in datasets() {
        let km = kaplan_meier(&set.survival_data(), KaplanMeierOptions::default()).unwrap();
        let r = r_values(&set, "km_rmean");
        let rm = km.restricted_mean(r[0].unwrap()).unwrap();
        assert_close(rm.estimate, r[1].unwrap(), EXACT, &set.name);
        assert_close(rm.std_error, r[2].unwrap(), EXACT, &set.name);
    }
}

#[test]
fn log_rank_statistics_match_r_survdiff() {
    let mut stratified = 0;
    for set in datasets() {
        let reference = set.reference("r_survival").unwrap();
        let Some(chisq) = reference.get("logrank_chisq") else {
            continue;
        };
        let groups = set.labels("group").unwrap();
        let test = logrank_test(&set.survival_data(), &groups, None).unwrap();
        assert_close(test.chi_square, floats(chisq)[0], EXACT, &set.name);
        if let Some(chisq) = reference.get("logrank_stratified_chisq") {
            stratified += 1;
            let strata = set.labels("strata").unwrap();
            let test = logrank_test(&set.survival_data(), &groups, Some(&strata)).unwrap();
            assert_close(test.chi_square, floats(chisq)[0], EXACT, &set.name);
        }
    }
    assert!(stratified >= 2);
}

#[test]
fn aalen_johansen_incidences_match_r_multi_state_survfit_including_delayed_entry() {
    let mut checked = 0;
    let mut with_entry = 0;
    for set in datasets() {
        let reference = set.reference("r_survival").unwrap();
        let Some(times) = reference.get("aj_time") else {
            continue;
        };
        checked += 1;
        let cause = set.labels("cause").unwrap();
        let data = match set.entry() {
            Some(entry) => {
                with_entry += 1;
                CompetingRisksData::with_entry(&entry, &set.floats("time"), &cause).unwrap()
            }
            None => CompetingRisksData::new(&set.floats("time"), &cause).unwrap(),
        };
        let ci = aalen_johansen(&data, 0.95, CiTransform::LogLog).unwrap();
        let r_time = floats(times);
        assert_eq!(ci.time.len(), r_time.len(), "{}", set.name);
        for (ours, theirs) in ci.time.iter().zip(&r_time) {
            assert_close(*ours, *theirs, 1e-15, &set.name);
        }
        for (k, c) in ci.causes.iter().enumerate() {
            let expected = r_values(&set, &format!("aj_cause_{}", k + 1));
            assert_eq!(expected.len(), c.incidence.len(), "{}", set.name);
            for (j, (ours, theirs)) in c.incidence.iter().zip(&expected).enumerate() {
                let what = format!("{} cause {} j={j}", set.name, k + 1);
                assert_close(*ours, theirs.unwrap(), EXACT, &what);
            }
        }
    }
    assert!(checked >= 3 && with_entry >= 1);
}
