//! "Never panics on any input": every public entry point is fed arbitrary values, including NaN,
//! infinities, negatives, huge magnitudes, empty and mismatched columns, and must return a value
//! or an `Err`, never panic, and never put NaN into a successful result.

use mdor_stats::cusum::{average_run_length, limit_for_run_length, risk_adjusted_cusum, vlad};
use mdor_stats::maxsprt::{Looks, PoissonDesign, poisson_critical_value};
use mdor_stats::{
    CiTransform, CompetingRisksData, ComponentExposure, CoxOptions, FunnelOptions,
    KaplanMeierOptions, LogisticOptions, StatsError, SurvivalData, aalen_johansen, aoanjrr_stage1,
    cox_regression, funnel_proportions, funnel_ratios, kaplan_meier, kaplan_meier_by_group,
    logistic_regression, logrank_test, nelson_aalen, njr_outliers, revision_rate,
};
use proptest::prelude::*;

/// Any f64, with the awkward values over-represented.
fn awkward() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(0.0),
        Just(-1.0),
        Just(1e308),
        Just(f64::MIN_POSITIVE),
        0.0f64..50.0,
        prop::num::f64::ANY,
    ]
}

fn columns() -> impl Strategy<Value = (Vec<f64>, Vec<bool>, Vec<f64>, Vec<u32>)> {
    (
        prop::collection::vec(awkward(), 0..30),
        prop::collection::vec(any::<bool>(), 0..30),
        prop::collection::vec(awkward(), 0..30),
        prop::collection::vec(0u32..4, 0..30),
    )
}

fn finite_everywhere(values: &[f64]) -> bool {
    values.iter().all(|v| !v.is_nan())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn survival_estimators_return_values_or_errors_for_arbitrary_columns((time, event, other, groups) in columns()) {
        let data = SurvivalData::new(&time, &event);
        let truncated = SurvivalData::with_entry(&other, &time, &event);
        for data in [data, truncated].into_iter().flatten() {
            let km = kaplan_meier(&data, KaplanMeierOptions::default()).unwrap();
            prop_assert!(finite_everywhere(&km.survival) && finite_everywhere(&km.lower) && finite_everywhere(&km.upper));
            let _ = km.median();
            let _ = km.cumulative_revision_at(&other);
            let _ = km.restricted_mean(other.first().copied().unwrap_or(f64::NAN));
            let na = nelson_aalen(&data).unwrap();
            prop_assert!(finite_everywhere(&na.cumulative_hazard));
            let _ = kaplan_meier_by_group(&data, &groups, KaplanMeierOptions { confidence_level: 0.9, transform: CiTransform::LogLog });
            if let Ok(test) = logrank_test(&data, &groups, Some(&groups)) {
                prop_assert!(!test.chi_square.is_nan());
            }
            if let Ok(test) = logrank_test(&data, &groups, None) {
                prop_assert!(!test.chi_square.is_nan() && !test.p_value.is_nan());
            }
            let causes: Vec<u32> = groups.iter().zip(data.event()).map(|(&g, &e)| if e { g + 1 } else { 0 }).collect();
            if let Ok(competing) = CompetingRisksData::new(data.time(), &causes) {
                let ci = aalen_johansen(&competing, 0.95, CiTransform::Log).unwrap();
                for cause in &ci.causes {
                    prop_assert!(finite_everywhere(&cause.incidence) && finite_everywhere(&cause.std_err));
                }
            }
        }
    }

    #[test]
    fn regressions_never_return_nan_for_arbitrary_covariates(
        (time, event, covariates, strata) in columns(),
        n_covariates in 0usize..3,
    ) {
        if let Ok(data) = SurvivalData::new(&time, &event) {
            let x: Vec<f64> = covariates.iter().copied().cycle().take(data.len() * n_covariates).collect();
            for options in [CoxOptions::default(), CoxOptions { ties: mdor_stats::Ties::Breslow, max_iterations: 3, ..CoxOptions::default() }] {
                match cox_regression(&data, &x, n_covariates, Some(&strata), options) {
                    Ok(fit) => {
                        prop_assert!(fit.coefficients.iter().chain(&fit.std_errors).all(|v| v.is_finite()));
                        prop_assert!(!fit.likelihood_ratio.statistic.is_nan() && !fit.score.statistic.is_nan());
                    }
                    Err(error) => prop_assert!(!error.to_string().is_empty()),
                }
                match cox_regression(&data, &x, n_covariates, None, options) {
                    Ok(fit) => prop_assert!(fit.coefficients.iter().chain(&fit.std_errors).all(|v| v.is_finite())),
                    Err(error) => prop_assert!(!error.to_string().is_empty()),
                }
            }
        }
        match logistic_regression(&event, &covariates, n_covariates, LogisticOptions::default()) {
            Ok(fit) => prop_assert!(fit.coefficients.iter().chain(&fit.std_errors).all(|v| v.is_finite())),
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
    }

    #[test]
    fn monitoring_methods_return_values_or_errors_for_arbitrary_inputs(
        values in prop::collection::vec(awkward(), 0..12),
        counts in prop::collection::vec(0u64..50, 0..12),
        outcomes in prop::collection::vec(any::<bool>(), 0..12),
        scalar in awkward(),
    ) {
        let _ = revision_rate(counts.first().copied().unwrap_or(0), scalar, 0.95);
        let exposures: Vec<ComponentExposure> = counts.iter().zip(&values).map(|(&n, &y)| ComponentExposure {
            n_primaries: n,
            n_revisions: n / 3,
            component_years: y,
        }).collect();
        if let Ok(assessed) = njr_outliers(&exposures, 0.95) {
            prop_assert!(assessed.iter().all(|a| !a.rate.upper.is_nan() && !a.p_value.is_nan()));
        }
        let _ = aoanjrr_stage1(&exposures, 0.95);
        let events: Vec<u64> = counts.iter().map(|c| c / 2).collect();
        if let Ok(funnel) = funnel_proportions(&events, &counts, FunnelOptions::default()) {
            prop_assert!(funnel.units.iter().all(|u| !u.upper_998.is_nan() && !u.lower_998.is_nan()));
        }
        if let Ok(funnel) = funnel_ratios(&counts, &values, FunnelOptions::default()) {
            prop_assert!(funnel.units.iter().all(|u| !u.upper_998.is_nan() && !u.lower_998.is_nan()));
        }
        let _ = risk_adjusted_cusum(&outcomes, &values, scalar, scalar);
        let _ = vlad(&outcomes, &values);
        let _ = average_run_length(scalar, &values, 2.0, 1.0, 20);
        let _ = limit_for_run_length(scalar, &values, 2.0, 20);
        let design = PoissonDesign { upper_limit: scalar, min_events: counts.first().copied().unwrap_or(1), delay: 0.0, looks: Looks::Continuous };
        match poisson_critical_value(&design, 0.05) {
            Ok(cv) => prop_assert!(cv.is_finite()),
            Err(StatsError::InvalidOption { .. }) | Err(StatsError::NonConvergence { .. }) => {}
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }
}

#[test]
fn covariates_of_subnormal_scale_give_an_error_rather_than_an_infinite_standard_error() {
    // Found by the `survival` fuzz target: before covariates were standardised this returned a
    // coefficient of 8.9e149 with an infinite standard error.
    let time = [
        4.764275623748122e-308,
        7.0300472322e-313,
        7.709702913752989e-302,
        1.6830444344128311e212,
    ];
    let x = [
        4.186341030828609e-149,
        1.3917576236711866e-308,
        2.814998281926906e-188,
        6.63582094e-316,
    ];
    let event = [true, true, false, false];
    let strata = [0, 1, 1, 0];
    let data = SurvivalData::new(&time, &event).unwrap();
    for ties in [mdor_stats::Ties::Efron, mdor_stats::Ties::Breslow] {
        let options = CoxOptions {
            ties,
            ..CoxOptions::default()
        };
        match cox_regression(&data, &x, 1, Some(&strata), options) {
            Ok(fit) => assert!(
                fit.coefficients
                    .iter()
                    .chain(&fit.std_errors)
                    .all(|v| v.is_finite())
            ),
            Err(error) => assert!(matches!(
                error,
                StatsError::Separation { .. }
                    | StatsError::NumericalOverflow { .. }
                    | StatsError::Singular { .. }
            )),
        }
    }
}

#[test]
fn subnormal_exposure_is_rejected_rather_than_giving_a_nan_rate_ratio() {
    // Found by the `surveillance` fuzz target: 62 revisions over 1e-308 years made both the
    // component's and the class's rate infinite and their ratio NaN.
    let component = ComponentExposure {
        n_primaries: 251,
        n_revisions: 62,
        component_years: 1e-308,
    };
    assert!(matches!(
        njr_outliers(&[component], 0.95),
        Err(StatsError::InvalidValue {
            field: "component_years",
            index: 0,
            ..
        })
    ));
    assert!(matches!(
        revision_rate(62, 1e-308, 0.95),
        Err(StatsError::InvalidOption {
            option: "component_years",
            ..
        })
    ));
}
