//! Kaplan–Meier against statsmodels and lifelines goldens, plus property tests of the curve.

use mdor_stats::{CiTransform, KaplanMeierOptions, SurvivalData, kaplan_meier};
use proptest::prelude::*;

use crate::golden::{assert_close, datasets, floats};

const EXACT: f64 = 1e-9;

fn options(transform: CiTransform) -> KaplanMeierOptions {
    KaplanMeierOptions {
        confidence_level: 0.95,
        transform,
    }
}

#[test]
fn survival_greenwood_errors_and_log_and_plain_intervals_match_statsmodels_on_every_dataset() {
    let sets = datasets();
    assert!(sets.len() >= 10);
    for set in sets {
        let reference = set.reference("kaplan_meier").unwrap();
        let data = set.survival_data();
        let log = kaplan_meier(&data, options(CiTransform::Log)).unwrap();
        let plain = kaplan_meier(&data, options(CiTransform::Plain)).unwrap();
        let times = floats(&reference["event_times"]);
        let survival = floats(&reference["survival"]);
        let se = floats(&reference["survival_std_error"]);
        let n_risk = floats(&reference["n_risk"]);
        let log_lower = floats(&reference["log_lower"]);
        let log_upper = floats(&reference["log_upper"]);
        let plain_lower = floats(&reference["plain_lower"]);
        let plain_upper = floats(&reference["plain_upper"]);
        assert_eq!(
            times.len(),
            log.n_event.iter().filter(|&&d| d > 0).count(),
            "{}",
            set.name
        );
        for (k, &t) in times.iter().enumerate() {
            let j = log.time.iter().position(|&x| x == t).unwrap();
            let what = format!("{} t={t}", set.name);
            assert_eq!(log.n_risk[j] as f64, n_risk[k], "{what} n_risk");
            assert_close(
                log.survival[j],
                survival[k],
                EXACT,
                &format!("{what} survival"),
            );
            if se[k].is_nan() || log.survival[j] == 0.0 {
                continue;
            }
            let se_s = log.survival[j] * log.std_err[j];
            assert_close(se_s, se[k], EXACT, &format!("{what} se"));
            assert_close(
                log.lower[j],
                log_lower[k],
                EXACT,
                &format!("{what} log lower"),
            );
            assert_close(
                log.upper[j],
                log_upper[k],
                EXACT,
                &format!("{what} log upper"),
            );
            assert_close(
                plain.lower[j],
                plain_lower[k],
                EXACT,
                &format!("{what} plain lower"),
            );
            assert_close(
                plain.upper[j],
                plain_upper[k],
                EXACT,
                &format!("{what} plain upper"),
            );
        }
    }
}

#[test]
fn counts_at_every_distinct_time_and_log_log_intervals_match_lifelines() {
    for set in datasets() {
        let reference = set.reference("kaplan_meier").unwrap();
        if reference.get("all_times").is_none() {
            continue;
        }
        let data = set.survival_data();
        let km = kaplan_meier(&data, options(CiTransform::LogLog)).unwrap();
        assert_eq!(km.time, floats(&reference["all_times"]), "{}", set.name);
        let as_u64 =
            |key: &str| -> Vec<u64> { floats(&reference[key]).iter().map(|&x| x as u64).collect() };
        assert_eq!(km.n_risk, as_u64("all_n_risk"), "{}", set.name);
        assert_eq!(km.n_event, as_u64("all_n_event"), "{}", set.name);
        assert_eq!(km.n_censor, as_u64("all_n_censor"), "{}", set.name);
        let times = floats(&reference["event_times"]);
        let lower = floats(&reference["loglog_lower"]);
        let upper = floats(&reference["loglog_upper"]);
        for (k, &t) in times.iter().enumerate() {
            let j = km.time.iter().position(|&x| x == t).unwrap();
            if km.survival[j] == 0.0 || lower[k].is_nan() {
                continue;
            }
            let what = format!("{} t={t}", set.name);
            assert_close(
                km.lower[j],
                lower[k],
                EXACT,
                &format!("{what} log-log lower"),
            );
            assert_close(
                km.upper[j],
                upper[k],
                EXACT,
                &format!("{what} log-log upper"),
            );
        }
    }
}

#[test]
fn median_confidence_limits_match_statsmodels_test_inversion_for_all_three_transforms() {
    for set in datasets() {
        let reference = set.reference("kaplan_meier").unwrap();
        let data = set.survival_data();
        for (method, transform) in [
            ("log", CiTransform::Log),
            ("linear", CiTransform::Plain),
            ("cloglog", CiTransform::LogLog),
        ] {
            let median = kaplan_meier(&data, options(transform)).unwrap().median();
            let limits = floats(&reference["median_ci"][method]);
            let what = format!("{} {method}", set.name);
            assert_eq!(
                median.lower.unwrap_or(f64::NAN).to_bits(),
                limits[0].to_bits(),
                "{what} lower"
            );
            // statsmodels reports an unbounded upper limit as infinity; we report none.
            let upper = median.upper.unwrap_or(f64::NAN);
            assert!(
                upper == limits[1] || (upper.is_nan() && limits[1].is_nan()),
                "{what} upper: {upper} vs {}",
                limits[1]
            );
        }
    }
}

#[test]
fn restricted_mean_and_cumulative_revision_match_lifelines() {
    for set in datasets() {
        let reference = set.reference("kaplan_meier").unwrap();
        if reference.get("rmst").is_none() {
            continue;
        }
        let km = kaplan_meier(&set.survival_data(), KaplanMeierOptions::default()).unwrap();
        let horizon = reference["rmst_horizon"].as_f64().unwrap();
        let rm = km.restricted_mean(horizon).unwrap();
        assert_close(
            rm.estimate,
            reference["rmst"].as_f64().unwrap(),
            EXACT,
            &set.name,
        );
        let times = floats(&reference["cumulative_revision_times"]);
        let expected = floats(&reference["cumulative_revision"]);
        for (point, expected) in km.cumulative_revision_at(&times).iter().zip(expected) {
            assert_close(point.unwrap().estimate, expected, EXACT, &set.name);
        }
    }
}

fn arbitrary_survival() -> impl Strategy<Value = (Vec<f64>, Vec<bool>)> {
    prop::collection::vec((0u32..40, any::<bool>()), 1..80).prop_map(|rows| {
        rows.into_iter()
            .map(|(t, e)| (f64::from(t) / 4.0, e))
            .unzip()
    })
}

proptest! {
    #[test]
    fn survival_is_non_increasing_and_within_the_unit_interval((time, event) in arbitrary_survival()) {
        let km = kaplan_meier(&SurvivalData::new(&time, &event).unwrap(), KaplanMeierOptions::default()).unwrap();
        let mut previous = 1.0;
        for j in 0..km.time.len() {
            prop_assert!(km.survival[j] <= previous);
            prop_assert!((0.0..=1.0).contains(&km.survival[j]));
            prop_assert!(km.lower[j] <= km.survival[j] && km.survival[j] <= km.upper[j]);
            previous = km.survival[j];
        }
    }

    #[test]
    fn without_censoring_survival_equals_one_minus_the_empirical_cdf(times in prop::collection::vec(0u32..30, 1..60)) {
        let time: Vec<f64> = times.iter().map(|&t| f64::from(t)).collect();
        let km = kaplan_meier(&SurvivalData::new(&time, &vec![true; time.len()]).unwrap(), KaplanMeierOptions::default()).unwrap();
        for (j, &t) in km.time.iter().enumerate() {
            let ecdf = time.iter().filter(|&&x| x <= t).count() as f64 / time.len() as f64;
            prop_assert!((km.survival[j] - (1.0 - ecdf)).abs() < 1e-12);
        }
    }

    #[test]
    fn construction_rejects_non_finite_or_negative_times_without_panicking(
        time in prop::collection::vec(prop::num::f64::ANY, 1..20),
        event in prop::collection::vec(any::<bool>(), 1..20),
    ) {
        let result = SurvivalData::new(&time, &event);
        let valid = time.len() == event.len() && time.iter().all(|t| t.is_finite() && *t >= 0.0);
        prop_assert_eq!(result.is_ok(), valid);
        if let Ok(data) = result {
            let km = kaplan_meier(&data, KaplanMeierOptions::default()).unwrap();
            prop_assert!(km.survival.iter().all(|s| s.is_finite()));
            let _ = km.median();
            prop_assert!(km.restricted_mean(1.0).unwrap().estimate.is_finite());
        }
    }
}

#[test]
fn median_matches_statsmodels_except_on_an_exact_half_where_r_takes_the_midpoint() {
    let mut midpoints = 0;
    for set in datasets() {
        let reference = set.reference("kaplan_meier").unwrap();
        let km = kaplan_meier(&set.survival_data(), KaplanMeierOptions::default()).unwrap();
        let ours = km.median().estimate;
        // statsmodels (like SAS) takes the first time with S < 1/2 strictly.
        let theirs = reference["median"].as_f64();
        let exact_half = (0..km.time.len()).find(|&j| (km.survival[j] - 0.5).abs() < 1e-12);
        match (exact_half, theirs) {
            (Some(j), Some(t)) => {
                midpoints += 1;
                let start = km.time[j];
                let next = (j..km.time.len())
                    .find(|&k| km.survival[k] < km.survival[j])
                    .map(|k| km.time[k])
                    .unwrap();
                assert_eq!(ours, Some(0.5 * (start + next)), "{}", set.name);
                // statsmodels lands on either end, depending on how its product rounds.
                assert!(t == start || t == next, "{}: statsmodels {t}", set.name);
            }
            (None, Some(t)) => assert_eq!(ours, Some(t), "{}", set.name),
            (_, None) => assert_eq!(ours, None, "{}", set.name),
        }
    }
    // The goldens exercise both branches.
    assert!(midpoints >= 1 && midpoints < datasets().len());
}
