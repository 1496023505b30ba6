//! Log-rank tests against statsmodels `survdiff` and lifelines, plus relabelling invariance.

use mdor_stats::{SurvivalData, logrank_test};
use proptest::prelude::*;

use crate::golden::{assert_close, datasets};

const EXACT: f64 = 1e-9;

#[test]
fn chi_square_and_p_value_match_statsmodels_survdiff_including_delayed_entry() {
    for set in datasets() {
        let reference = set.reference("logrank").unwrap();
        let groups = set.labels("group").unwrap();
        let test = logrank_test(&set.survival_data(), &groups, None).unwrap();
        let chi = reference["chi_square"].as_f64().unwrap();
        assert_close(test.chi_square, chi, EXACT, &set.name);
        assert_close(
            test.p_value,
            reference["p_value"].as_f64().unwrap(),
            EXACT,
            &set.name,
        );
        assert_eq!(
            test.degrees_of_freedom as u64,
            reference["df"].as_u64().unwrap()
        );
        if let Some(lifelines) = reference.get("lifelines_chi_square") {
            assert_close(
                test.chi_square,
                lifelines.as_f64().unwrap(),
                EXACT,
                &set.name,
            );
        }
    }
}

#[test]
fn stratified_chi_square_matches_statsmodels_survdiff() {
    let mut checked = 0;
    for set in datasets() {
        let reference = set.reference("logrank").unwrap();
        let Some(expected) = reference.get("stratified_chi_square") else {
            continue;
        };
        checked += 1;
        let groups = set.labels("group").unwrap();
        let strata = set.labels("strata").unwrap();
        let test = logrank_test(&set.survival_data(), &groups, Some(&strata)).unwrap();
        assert_close(
            test.chi_square,
            expected.as_f64().unwrap(),
            EXACT,
            &set.name,
        );
        let p = reference["stratified_p_value"].as_f64().unwrap();
        assert_close(test.p_value, p, EXACT, &set.name);
    }
    assert!(checked >= 2);
}

proptest! {
    #[test]
    fn relabelling_groups_leaves_the_statistic_unchanged(
        rows in prop::collection::vec((0u32..20, any::<bool>(), 0u32..3), 6..60),
        permutation in Just([0u32, 1, 2]).prop_shuffle(),
        offset in 0u32..1000,
    ) {
        let time: Vec<f64> = rows.iter().map(|r| f64::from(r.0)).collect();
        let event: Vec<bool> = rows.iter().map(|r| r.1).collect();
        let groups: Vec<u32> = rows.iter().map(|r| r.2).collect();
        let relabelled: Vec<u32> = groups.iter().map(|&g| permutation[g as usize] * 7 + offset).collect();
        let data = SurvivalData::new(&time, &event).unwrap();
        match (logrank_test(&data, &groups, None), logrank_test(&data, &relabelled, None)) {
            (Ok(a), Ok(b)) => prop_assert!((a.chi_square - b.chi_square).abs() <= 1e-9 * a.chi_square.max(1.0)),
            (Err(a), Err(b)) => prop_assert_eq!(std::mem::discriminant(&a), std::mem::discriminant(&b)),
            (a, b) => prop_assert!(false, "one labelling failed: {:?} vs {:?}", a, b),
        }
    }
}

proptest! {
    #[test]
    fn stratified_statistic_pools_the_per_stratum_scores_and_variances_with_delayed_entry(
        rows in prop::collection::vec((1u32..20, any::<bool>(), 0u32..2, 0u32..3, 0u32..10), 10..80),
    ) {
        let time: Vec<f64> = rows.iter().map(|r| f64::from(r.0)).collect();
        let event: Vec<bool> = rows.iter().map(|r| r.1).collect();
        let groups: Vec<u32> = rows.iter().map(|r| r.2).collect();
        let strata: Vec<u32> = rows.iter().map(|r| r.3).collect();
        let entry: Vec<f64> = rows.iter().map(|r| (f64::from(r.4) + 0.5).min(f64::from(r.0) - 0.5)).collect();
        let data = SurvivalData::with_entry(&entry, &time, &event).unwrap();
        let Ok(pooled) = logrank_test(&data, &groups, Some(&strata)) else {
            return Ok(());
        };
        // Recompute U₀ and V₀₀ stratum by stratum with unstratified tests and add them up.
        let (mut u, mut v) = (0.0, 0.0);
        for s in 0..3 {
            let idx: Vec<usize> = (0..rows.len()).filter(|&i| strata[i] == s).collect();
            let pick = |c: &[f64]| idx.iter().map(|&i| c[i]).collect::<Vec<f64>>();
            let sub_event: Vec<bool> = idx.iter().map(|&i| event[i]).collect();
            let sub_groups: Vec<u32> = idx.iter().map(|&i| groups[i]).collect();
            if idx.is_empty() {
                continue;
            }
            let sub = SurvivalData::with_entry(&pick(&entry), &pick(&time), &sub_event).unwrap();
            if let Ok(test) = logrank_test(&sub, &sub_groups, None)
                && test.groups == vec![0, 1]
            {
                u += test.observed[0] - test.expected[0];
                v += test.variance[0];
            }
        }
        prop_assume!(v > 1e-9);
        prop_assert!((pooled.chi_square - u * u / v).abs() < 1e-9 * pooled.chi_square.max(1.0));
    }
}
