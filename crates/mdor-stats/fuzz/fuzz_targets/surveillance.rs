//! Fuzzes rates, funnels, CUSUM and MaxSPRT with arbitrary bytes decoded into counts and reals.
//!
//! Sizes that only make the exact computations slow (Markov states, MaxSPRT horizons) are folded
//! into small ranges so that the fuzzer looks for panics and NaN, not for long run times.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mdor_stats::{
    BinomialDesign, ComponentExposure, FunnelOptions, LimitMethod, Looks, Overdispersion,
    PoissonDesign, aoanjrr_stage1, average_run_length, binomial_critical_value, clopper_pearson,
    funnel_proportions, funnel_ratios, limit_for_run_length, njr_outliers, poisson_critical_value,
    revision_rate, risk_adjusted_cusum, vlad,
};

fuzz_target!(|bytes: &[u8]| {
    let mut reals = Vec::new();
    let mut counts = Vec::new();
    for record in bytes.chunks_exact(10) {
        let mut a = [0u8; 8];
        a.copy_from_slice(&record[..8]);
        reals.push(f64::from_le_bytes(a));
        counts.push(u64::from(u16::from_le_bytes([record[8], record[9]])));
    }
    let first = reals.first().copied().unwrap_or(1.0);
    let count = counts.first().copied().unwrap_or(0);
    if let Ok(rate) = revision_rate(count, first, 0.95) {
        assert!(!rate.lower.is_nan() && !rate.upper.is_nan());
    }
    let _ = clopper_pearson(count / 2, count, 0.998);
    let exposures: Vec<ComponentExposure> = counts
        .iter()
        .zip(&reals)
        .map(|(&n, &years)| ComponentExposure {
            n_primaries: n,
            n_revisions: n / 4,
            component_years: years,
        })
        .collect();
    if let Ok(all) = njr_outliers(&exposures, 0.95) {
        assert!(all.iter().all(|a| !a.ratio.is_nan() && !a.p_value.is_nan()));
    }
    let _ = aoanjrr_stage1(&exposures, 0.95);
    let events: Vec<u64> = counts.iter().map(|&n| n / 3).collect();
    for overdispersion in [
        Overdispersion::None,
        Overdispersion::Multiplicative,
        Overdispersion::Additive,
    ] {
        for method in [LimitMethod::Exact, LimitMethod::Normal] {
            let options = FunnelOptions {
                overdispersion,
                method,
                ..FunnelOptions::default()
            };
            if let Ok(f) = funnel_proportions(&events, &counts, options) {
                assert!(
                    f.units
                        .iter()
                        .all(|u| !u.lower_998.is_nan() && !u.upper_998.is_nan())
                );
            }
            if let Ok(f) = funnel_ratios(&counts, &reals, options) {
                assert!(
                    f.units
                        .iter()
                        .all(|u| !u.lower_998.is_nan() && !u.upper_998.is_nan())
                );
            }
        }
    }
    let outcomes: Vec<bool> = counts.iter().map(|c| c % 2 == 1).collect();
    let risks: Vec<f64> = reals.iter().map(|r| r.fract().abs()).collect();
    let _ = risk_adjusted_cusum(&outcomes, &risks, first, first);
    let _ = vlad(&outcomes, &reals);
    let states = 10 + (count % 40) as usize;
    if let Ok(arl) = average_run_length(first.abs().min(20.0), &risks, 2.0, 1.0, states) {
        assert!(!arl.is_nan());
    }
    let _ = limit_for_run_length(
        first.abs().min(1e4),
        &risks[..risks.len().min(3)],
        2.0,
        states,
    );
    let design = PoissonDesign {
        upper_limit: first.abs().min(60.0),
        min_events: 1 + count % 5,
        delay: reals.get(1).copied().unwrap_or(0.0).abs().min(10.0),
        looks: if count % 2 == 0 {
            Looks::Continuous
        } else {
            Looks::Group(reals.iter().map(|r| r.abs().min(60.0)).collect())
        },
    };
    if let Ok(cv) = poisson_critical_value(&design, 0.05) {
        assert!(cv.is_finite());
    }
    let binomial = BinomialDesign {
        upper_limit: 1 + count % 200,
        controls_per_case: reals.get(2).copied().unwrap_or(1.0),
        min_events: 1 + count % 7,
        looks: Looks::Continuous,
    };
    if let Ok(cv) = binomial_critical_value(&binomial, 0.05) {
        assert!(cv.is_finite());
    }
});
