//! Fuzzes the survival estimators and regressions with arbitrary bytes decoded into records.
//!
//! Each 17-byte record is an exit time (f64), an entry time or covariate (f64) and a flag byte
//! (event bit, two group bits, two cause bits), so NaN, infinities, negatives and subnormals all
//! reach the validating constructors. Successful results must not contain NaN.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mdor_stats::{
    CiTransform, CompetingRisksData, CoxOptions, KaplanMeierOptions, LogisticOptions, SurvivalData,
    Ties, aalen_johansen, cox_regression, kaplan_meier, kaplan_meier_by_group, logistic_regression,
    logrank_test, nelson_aalen,
};

fuzz_target!(|bytes: &[u8]| {
    let mut time = Vec::new();
    let mut other = Vec::new();
    let mut event = Vec::new();
    let mut group = Vec::new();
    let mut cause = Vec::new();
    for record in bytes.chunks_exact(17) {
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&record[..8]);
        b.copy_from_slice(&record[8..16]);
        let flags = record[16];
        time.push(f64::from_le_bytes(a));
        other.push(f64::from_le_bytes(b));
        event.push(flags & 1 == 1);
        group.push(u32::from((flags >> 1) & 3));
        cause.push(if flags & 1 == 1 {
            u32::from((flags >> 3) & 3) + 1
        } else {
            0
        });
    }
    let plain = SurvivalData::new(&time, &event);
    let truncated = SurvivalData::with_entry(&other, &time, &event);
    for data in [plain, truncated].into_iter().flatten() {
        let km = kaplan_meier(&data, KaplanMeierOptions::default()).unwrap();
        assert!(
            km.survival
                .iter()
                .chain(&km.lower)
                .chain(&km.upper)
                .all(|v| !v.is_nan())
        );
        let _ = km.median();
        let _ = km.restricted_mean(other.first().copied().unwrap_or(1.0));
        let _ = km.cumulative_revision_at(&other);
        let grouped = kaplan_meier_by_group(
            &data,
            &group,
            KaplanMeierOptions {
                confidence_level: 0.9,
                transform: CiTransform::LogLog,
            },
        )
        .unwrap();
        assert!(
            grouped
                .iter()
                .all(|g| g.curve.upper.iter().all(|v| !v.is_nan()))
        );
        let na = nelson_aalen(&data).unwrap();
        assert!(na.cumulative_hazard.iter().all(|v| !v.is_nan()));
        if let Ok(test) = logrank_test(&data, &group, Some(&cause)) {
            assert!(!test.chi_square.is_nan() && !test.p_value.is_nan());
        }
        for ties in [Ties::Efron, Ties::Breslow] {
            let options = CoxOptions {
                ties,
                ..CoxOptions::default()
            };
            if let Ok(fit) = cox_regression(&data, &other, 1, Some(&group), options) {
                assert!(
                    fit.coefficients
                        .iter()
                        .chain(&fit.std_errors)
                        .all(|v| v.is_finite())
                );
                assert!(!fit.wald.statistic.is_nan() && !fit.score.statistic.is_nan());
            }
        }
        let competing = match data.entry() {
            Some(entry) => CompetingRisksData::with_entry(entry, data.time(), &cause),
            None => CompetingRisksData::new(data.time(), &cause),
        };
        if let Ok(competing) = competing {
            let ci = aalen_johansen(&competing, 0.95, CiTransform::Plain).unwrap();
            assert!(
                ci.causes
                    .iter()
                    .all(|c| c.incidence.iter().chain(&c.std_err).all(|v| !v.is_nan()))
            );
        }
    }
    if let Ok(fit) = logistic_regression(&event, &other, 1, LogisticOptions::default()) {
        assert!(
            fit.coefficients
                .iter()
                .chain(&fit.std_errors)
                .all(|v| v.is_finite())
        );
    }
});
