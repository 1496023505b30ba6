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
