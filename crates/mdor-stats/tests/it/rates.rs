//! Exact Poisson and binomial limits and Poisson p-values against scipy.

use mdor_stats::{clopper_pearson, poisson_upper_p_value, revision_rate};

use crate::golden::{assert_close, document};

#[test]
fn garwood_limits_per_100_component_years_match_scipy_chi_square_quantiles() {
    let doc = document();
    let cases = doc["exact_limits"]["garwood"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let k = case["revisions"].as_u64().unwrap();
        let years = case["years"].as_f64().unwrap();
        let level = case["level"].as_f64().unwrap();
        let rate = revision_rate(k, years, level).unwrap();
        let what = format!("{k} revisions over {years} years at {level}");
        assert_close(rate.rate, case["rate"].as_f64().unwrap(), 1e-12, &what);
        assert_close(rate.lower, case["lower"].as_f64().unwrap(), 1e-9, &what);
        assert_close(rate.upper, case["upper"].as_f64().unwrap(), 1e-9, &what);
    }
}

#[test]
fn poisson_upper_tail_p_values_match_scipy() {
    let doc = document();
    for case in doc["exact_limits"]["poisson_p_values"].as_array().unwrap() {
        let o = case["observed"].as_u64().unwrap();
        let e = case["expected"].as_f64().unwrap();
        let expected = case["p_value"].as_f64().unwrap();
        let actual = poisson_upper_p_value(o, e);
        assert!(
            (actual - expected).abs() <= 1e-12 + 1e-9 * expected,
            "O={o} E={e}: {actual} vs {expected}"
        );
    }
}

#[test]
fn clopper_pearson_limits_match_scipy_beta_quantiles() {
    let doc = document();
    for case in doc["exact_limits"]["clopper_pearson"].as_array().unwrap() {
        let x = case["events"].as_u64().unwrap();
        let n = case["n"].as_u64().unwrap();
        let level = case["level"].as_f64().unwrap();
        let (lower, upper) = clopper_pearson(x, n, level).unwrap();
        let what = format!("{x}/{n} at {level}");
        assert_close(lower, case["lower"].as_f64().unwrap(), 1e-9, &what);
        assert_close(upper, case["upper"].as_f64().unwrap(), 1e-9, &what);
    }
}

#[test]
fn interpolated_exact_funnel_limits_match_scipy_binomial_and_poisson_cdfs() {
    let doc = document();
    let limits = &doc["exact_limits"];
    for case in limits["funnel_binomial"].as_array().unwrap() {
        let n = case["n"].as_u64().unwrap();
        let target = case["target"].as_f64().unwrap();
        let p = case["p"].as_f64().unwrap();
        let actual = mdor_stats::funnel::binomial_limit(p, n, target);
        assert_close(
            actual,
            case["limit"].as_f64().unwrap(),
            1e-9,
            &format!("n={n} θ={target} p={p}"),
        );
    }
    for case in limits["funnel_poisson"].as_array().unwrap() {
        let e = case["expected"].as_f64().unwrap();
        let p = case["p"].as_f64().unwrap();
        let actual = mdor_stats::funnel::poisson_limit(p, e);
        assert_close(
            actual,
            case["limit"].as_f64().unwrap(),
            1e-9,
            &format!("E={e} p={p}"),
        );
    }
}
