//! Logistic regression against statsmodels `Logit`.

use mdor_stats::{LogisticOptions, StatsError, logistic_regression};

use crate::golden::{assert_close, datasets, floats};

#[test]
fn coefficients_and_standard_errors_match_statsmodels_logit_and_separation_is_reported() {
    for set in datasets() {
        let reference = set.reference("logistic").unwrap();
        let rows: Vec<Vec<f64>> = set.value["covariates"]
            .as_array()
            .unwrap()
            .iter()
            .map(floats)
            .collect();
        let p = rows[0].len();
        let x = rows.concat();
        let y = set.bools("event");
        let result = logistic_regression(&y, &x, p, LogisticOptions::default());
        if reference.get("separated").is_some() {
            assert_eq!(
                result,
                Err(StatsError::Separation { covariate: 0 }),
                "{}",
                set.name
            );
            continue;
        }
        let fit = result.unwrap();
        for (k, b) in floats(&reference["coefficients"]).into_iter().enumerate() {
            assert_close(
                fit.coefficients[k],
                b,
                1e-6,
                &format!("{} beta {k}", set.name),
            );
        }
        for (k, se) in floats(&reference["std_errors"]).into_iter().enumerate() {
            assert_close(fit.std_errors[k], se, 1e-6, &format!("{} se {k}", set.name));
        }
        assert_close(
            fit.log_likelihood,
            reference["log_likelihood"].as_f64().unwrap(),
            1e-9,
            &set.name,
        );
    }
}
