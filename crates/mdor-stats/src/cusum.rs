//! CUSUM charts for sequential monitoring of outcomes: the risk-adjusted CUSUM of Steiner et al.
//! (2000), the Bernoulli CUSUM as its constant-risk special case, control limits from the in-control
//! average run length or from a false-alarm probability over a horizon, and the VLAD.
//!
//! **Statistic.** For case `t` with predicted risk `p_t` and outcome `y_t ∈ {0, 1}`, testing odds
//! ratio `R_A` against `R_0 = 1`, the log-likelihood-ratio weight is
//! `W_t = y_t log R_A − log(1 − p_t + R_A p_t)` and `S_t = max(0, S_{t−1} + W_t)`, `S_0 = 0`; the
//! chart signals when `S_t ≥ h` and restarts at zero. With constant `p_t = p_0` this is the
//! Bernoulli CUSUM for a shift from `p_0` to `p_1 = R_A p_0 / (1 − p_0 + R_A p_0)`.
//!
//! **Run length** (Brook & Evans 1972; Steiner et al. 2000 appendix). `[0, h)` is split into `M`
//! states of width `Δ = h/M` with values `iΔ`; from state `i` the chart moves to
//! `x = max(0, iΔ + W)`, or is absorbed when `x ≥ h`. A transient `x` between grid values `jΔ` and
//! `(j + 1)Δ` is split between them in proportion to its distance (linear spreading rather than
//! rounding), so that the discretised increment has the right mean even for weights smaller than
//! `Δ`; mass that would go to `MΔ = h` stays absorbed. `W`'s distribution mixes the
//! two outcomes over the supplied risk mix (the empirical distribution of `p`), with outcome
//! probability `R p/(1 − p + R p)` under true odds ratio `R` (1 when in control). The average run
//! length from zero solves `(I − Q) a = 1`; the probability of a signal within `n` cases is
//! `1 − e₀ᵀ Qⁿ 1`. Limits are found by bisection on `h`. The approximation improves with `M`
//! (200 states is a good default; at most 500 are allowed, and the false-alarm computation needs
//! `horizon × states² ≤ 10⁹`).
//!
//! **VLAD** (Lovegrove et al. 1997): the cumulative sum of `p_t − y_t`, expected minus observed
//! failures.
//!
//! References: Page E.S. (1954) Biometrika 41:100–115; Brook D., Evans D.A. (1972) Biometrika
//! 59:539–549; Steiner S.H., Cook R.J., Farewell V.T., Treasure T. (2000) Biostatistics 1:441–452;
//! Lovegrove J. et al. (1997) Lancet 350:1128–1130.

use crate::error::StatsError;
use crate::input::check_length;

/// A CUSUM chart run over a sequence of cases.
#[derive(Debug, Clone, PartialEq)]
pub struct CusumChart {
    /// The statistic after each case (zero after a restart).
    pub statistic: Vec<f64>,
    /// Zero-based indices of the cases at which the chart signalled.
    pub signals: Vec<usize>,
}

/// Runs the risk-adjusted CUSUM over cases in order, restarting after each signal.
pub fn risk_adjusted_cusum(
    outcomes: &[bool],
    risks: &[f64],
    odds_ratio: f64,
    limit: f64,
) -> Result<CusumChart, StatsError> {
    check_length("risks", outcomes.len(), risks.len())?;
    check_risks(risks)?;
    check_odds_ratio(odds_ratio)?;
    check_limit(limit)?;
    let mut statistic = Vec::with_capacity(outcomes.len());
    let mut signals = Vec::new();
    let mut s: f64 = 0.0;
    for (t, (&y, &p)) in outcomes.iter().zip(risks).enumerate() {
        s = (s + weight(y, p, odds_ratio)).max(0.0);
        if s >= limit {
            signals.push(t);
            statistic.push(s);
            s = 0.0;
        } else {
            statistic.push(s);
        }
    }
    Ok(CusumChart { statistic, signals })
}

/// Runs the Bernoulli CUSUM for a shift of the failure probability from `p0` to `p1 > p0`.
pub fn bernoulli_cusum(
    outcomes: &[bool],
    p0: f64,
    p1: f64,
    limit: f64,
) -> Result<CusumChart, StatsError> {
    let odds_ratio = bernoulli_odds_ratio(p0, p1)?;
    risk_adjusted_cusum(outcomes, &vec![p0; outcomes.len()], odds_ratio, limit)
}

/// The odds ratio `p1 (1 − p0) / (p0 (1 − p1))` of a Bernoulli shift.
pub fn bernoulli_odds_ratio(p0: f64, p1: f64) -> Result<f64, StatsError> {
    check_risks(&[p0, p1])?;
    Ok(p1 * (1.0 - p0) / (p0 * (1.0 - p1)))
}

/// The CUSUM weight of one case.
pub fn weight(outcome: bool, risk: f64, odds_ratio: f64) -> f64 {
    let y = if outcome { odds_ratio.ln() } else { 0.0 };
    y - (1.0 - risk + odds_ratio * risk).ln()
}

/// The average run length from zero by the Markov chain approximation with `states` states.
///
/// `true_odds_ratio = 1` gives the in-control run length; other values the out-of-control one.
pub fn average_run_length(
    limit: f64,
    risk_mix: &[f64],
    odds_ratio: f64,
    true_odds_ratio: f64,
    states: usize,
) -> Result<f64, StatsError> {
    check_limit(limit)?;
    check_chain(risk_mix, odds_ratio, true_odds_ratio, states)?;
    let weights = weight_distribution(risk_mix, odds_ratio, true_odds_ratio);
    let q = transition_matrix(limit, &weights, states);
    solve_run_length(q, states)
}

/// The probability that the in-control chart signals within `horizon` cases.
pub fn false_alarm_probability(
    limit: f64,
    risk_mix: &[f64],
    odds_ratio: f64,
    horizon: usize,
    states: usize,
) -> Result<f64, StatsError> {
    check_limit(limit)?;
    check_chain(risk_mix, odds_ratio, 1.0, states)?;
    check_horizon(horizon, states)?;
    let weights = weight_distribution(risk_mix, odds_ratio, 1.0);
    let q = transition_matrix(limit, &weights, states);
    Ok(signal_probability(&q, states, horizon))
}

/// The control limit `h` whose in-control average run length is `target_run_length`.
pub fn limit_for_run_length(
    target_run_length: f64,
    risk_mix: &[f64],
    odds_ratio: f64,
    states: usize,
) -> Result<f64, StatsError> {
    if !(target_run_length.is_finite() && target_run_length > 1.0) {
        return Err(StatsError::InvalidOption {
            option: "target_run_length",
            reason: "must be finite and greater than 1",
        });
    }
    check_chain(risk_mix, odds_ratio, 1.0, states)?;
    let weights = weight_distribution(risk_mix, odds_ratio, 1.0);
    bisect_limit(|h| {
        solve_run_length(transition_matrix(h, &weights, states), states)
            .map(|arl| arl >= target_run_length)
            .unwrap_or(true)
    })
}

/// The control limit `h` at which the in-control chart signals within `horizon` cases with
/// probability `probability`.
pub fn limit_for_false_alarm(
    probability: f64,
    horizon: usize,
    risk_mix: &[f64],
    odds_ratio: f64,
    states: usize,
) -> Result<f64, StatsError> {
    if !(probability > 0.0 && probability < 1.0) {
        return Err(StatsError::InvalidOption {
            option: "probability",
            reason: "must lie strictly between 0 and 1",
        });
    }
    check_chain(risk_mix, odds_ratio, 1.0, states)?;
    check_horizon(horizon, states)?;
    let weights = weight_distribution(risk_mix, odds_ratio, 1.0);
    bisect_limit(|h| {
        signal_probability(&transition_matrix(h, &weights, states), states, horizon) <= probability
    })
}

/// The VLAD: cumulative expected minus observed failures.
pub fn vlad(outcomes: &[bool], risks: &[f64]) -> Result<Vec<f64>, StatsError> {
    check_length("risks", outcomes.len(), risks.len())?;
    check_risks(risks)?;
    let mut total = 0.0;
    Ok(outcomes
        .iter()
        .zip(risks)
        .map(|(&y, &p)| {
            total += p - if y { 1.0 } else { 0.0 };
            total
        })
        .collect())
}

/// Support points and probabilities of the weight `W` under true odds ratio `true_odds_ratio`.
fn weight_distribution(risk_mix: &[f64], odds_ratio: f64, true_odds_ratio: f64) -> Vec<(f64, f64)> {
    let share = 1.0 / risk_mix.len() as f64;
    let mut out = Vec::with_capacity(2 * risk_mix.len());
    for &p in risk_mix {
        let failure = true_odds_ratio * p / (1.0 - p + true_odds_ratio * p);
        out.push((weight(true, p, odds_ratio), share * failure));
        out.push((weight(false, p, odds_ratio), share * (1.0 - failure)));
    }
    out
}

/// Transient-state transition matrix `Q` (row-major `M × M`) of the discretised chart.
fn transition_matrix(limit: f64, weights: &[(f64, f64)], states: usize) -> Vec<f64> {
    let delta = limit / states as f64;
    let mut q = vec![0.0; states * states];
    for i in 0..states {
        let value = i as f64 * delta;
        for &(w, probability) in weights {
            let next = (value + w).max(0.0);
            if next >= limit {
                continue;
            }
            // Spreading the mass over the two neighbouring grid values keeps the expected
            // increment exact, which rounding to the nearest value would bias for small weights.
            let position = next / delta;
            let j = position.floor() as usize;
            let fraction = position - j as f64;
            q[i * states + j.min(states - 1)] += probability * (1.0 - fraction);
            if j + 1 < states {
                q[i * states + j + 1] += probability * fraction;
            }
        }
    }
    q
}

/// Solves `(I − Q) a = 1` by Gaussian elimination with partial pivoting and returns `a₀`.
fn solve_run_length(q: Vec<f64>, m: usize) -> Result<f64, StatsError> {
    let mut a = q;
    for (k, value) in a.iter_mut().enumerate() {
        *value = if k / m == k % m {
            1.0 - *value
        } else {
            -*value
        };
    }
    let mut b = vec![1.0; m];
    for col in 0..m {
        let pivot = (col..m)
            .max_by(|&x, &y| a[x * m + col].abs().total_cmp(&a[y * m + col].abs()))
            .unwrap_or(col);
        if a[pivot * m + col].abs() < 1e-300 {
            return Err(StatsError::Singular { covariate: col });
        }
        if pivot != col {
            for k in 0..m {
                a.swap(col * m + k, pivot * m + k);
            }
            b.swap(col, pivot);
        }
        for row in (col + 1)..m {
            let factor = a[row * m + col] / a[col * m + col];
            if factor != 0.0 {
                for k in col..m {
                    a[row * m + k] -= factor * a[col * m + k];
                }
                b[row] -= factor * b[col];
            }
        }
    }
    let mut x = vec![0.0; m];
    for row in (0..m).rev() {
        let mut sum = b[row];
        for k in (row + 1)..m {
            sum -= a[row * m + k] * x[k];
        }
        x[row] = sum / a[row * m + row];
    }
    let arl = x[0];
    if !arl.is_finite() || arl < 1.0 {
        return Err(StatsError::NonConvergence { iterations: m });
    }
    Ok(arl)
}

/// Probability of absorption within `horizon` steps from state 0.
fn signal_probability(q: &[f64], m: usize, horizon: usize) -> f64 {
    let mut distribution = vec![0.0; m];
    distribution[0] = 1.0;
    let mut next = vec![0.0; m];
    for _ in 0..horizon {
        next.iter_mut().for_each(|v| *v = 0.0);
        for i in 0..m {
            let mass = distribution[i];
            if mass == 0.0 {
                continue;
            }
            for j in 0..m {
                next[j] += mass * q[i * m + j];
            }
        }
        std::mem::swap(&mut distribution, &mut next);
    }
    (1.0 - distribution.iter().sum::<f64>()).clamp(0.0, 1.0)
}

/// Smallest `h` (to 1e-6) for which `accept(h)` holds, `accept` being monotone in `h`.
fn bisect_limit(accept: impl Fn(f64) -> bool) -> Result<f64, StatsError> {
    let mut lo = 0.0;
    let mut hi = 1.0;
    let mut doublings = 0;
    while !accept(hi) {
        lo = hi;
        hi *= 2.0;
        doublings += 1;
        if doublings > 20 {
            return Err(StatsError::NonConvergence {
                iterations: doublings,
            });
        }
    }
    for _ in 0..60 {
        if hi - lo < 1e-6 {
            break;
        }
        let mid = 0.5 * (lo + hi);
        if accept(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

fn check_risks(risks: &[f64]) -> Result<(), StatsError> {
    if risks.is_empty() {
        return Err(StatsError::Empty);
    }
    for (index, &p) in risks.iter().enumerate() {
        if !(p > 0.0 && p < 1.0) {
            return Err(StatsError::InvalidValue {
                field: "risks",
                index,
                reason: "must lie strictly between 0 and 1",
            });
        }
    }
    Ok(())
}

fn check_odds_ratio(odds_ratio: f64) -> Result<(), StatsError> {
    if !(odds_ratio.is_finite() && odds_ratio > 0.0 && odds_ratio != 1.0) {
        return Err(StatsError::InvalidOption {
            option: "odds_ratio",
            reason: "must be finite, positive and different from 1",
        });
    }
    Ok(())
}

fn check_limit(limit: f64) -> Result<(), StatsError> {
    if !(limit.is_finite() && limit > 0.0) {
        return Err(StatsError::InvalidOption {
            option: "limit",
            reason: "must be finite and positive",
        });
    }
    Ok(())
}

/// The false-alarm computation costs `horizon × states²`; it is capped at 10⁹ (about a second).
fn check_horizon(horizon: usize, states: usize) -> Result<(), StatsError> {
    if horizon == 0 || horizon.saturating_mul(states * states) > 1_000_000_000 {
        return Err(StatsError::InvalidOption {
            option: "horizon",
            reason: "must be at least one case, with horizon × states² at most 1e9",
        });
    }
    Ok(())
}

fn check_chain(
    risk_mix: &[f64],
    odds_ratio: f64,
    true_odds_ratio: f64,
    states: usize,
) -> Result<(), StatsError> {
    check_risks(risk_mix)?;
    check_odds_ratio(odds_ratio)?;
    if !(true_odds_ratio.is_finite() && true_odds_ratio > 0.0) {
        return Err(StatsError::InvalidOption {
            option: "true_odds_ratio",
            reason: "must be finite and positive",
        });
    }
    if !(10..=500).contains(&states) {
        return Err(StatsError::InvalidOption {
            option: "states",
            reason: "must lie between 10 and 500",
        });
    }
    Ok(())
}

#[cfg(test)]
// Tests may unwrap: a panic is the failure report.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_the_log_likelihood_ratio_of_the_two_hypotheses() {
        let (p, r) = (0.1, 2.0);
        let p1 = r * p / (1.0 - p + r * p);
        assert!((weight(true, p, r) - (p1 / p).ln()).abs() < 1e-15);
        assert!((weight(false, p, r) - ((1.0 - p1) / (1.0 - p)).ln()).abs() < 1e-15);
    }

    #[test]
    fn the_chart_accumulates_clips_at_zero_and_restarts_after_a_signal() {
        let r: f64 = 2.0;
        let p: f64 = 0.5;
        let up = r.ln() - (1.0 - p + r * p).ln();
        let down = -(1.0 - p + r * p).ln();
        let outcomes = [false, true, true, true, false];
        let chart = risk_adjusted_cusum(&outcomes, &[p; 5], r, 2.0 * up - 1e-12).unwrap();
        assert_eq!(chart.statistic[0], 0.0);
        assert!((chart.statistic[1] - up).abs() < 1e-15);
        assert_eq!(chart.signals, vec![2]);
        assert!((chart.statistic[3] - up).abs() < 1e-15);
        // A survival after the restart pulls the statistic back down, clipped at zero.
        assert!((chart.statistic[4] - (up + down).max(0.0)).abs() < 1e-15);
    }

    #[test]
    fn markov_run_length_agrees_with_a_seeded_simulation_within_three_percent() {
        let risks = [0.02, 0.05, 0.1, 0.2];
        let h = 3.0;
        let arl = average_run_length(h, &risks, 2.0, 1.0, 400).unwrap();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut uniform = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let runs = 4000;
        let mut total = 0.0;
        for _ in 0..runs {
            let mut s: f64 = 0.0;
            let mut n = 0;
            loop {
                n += 1;
                let p = risks[(uniform() * 4.0) as usize % 4];
                s = (s + weight(uniform() < p, p, 2.0)).max(0.0);
                if s >= h {
                    break;
                }
            }
            total += n as f64;
        }
        let simulated = total / runs as f64;
        assert!(
            (arl / simulated - 1.0).abs() < 0.03,
            "markov {arl} simulated {simulated}"
        );
    }

    #[test]
    fn limit_for_a_run_length_reproduces_that_run_length() {
        let risks = [0.05, 0.1];
        let h = limit_for_run_length(1000.0, &risks, 2.0, 200).unwrap();
        let arl = average_run_length(h, &risks, 2.0, 1.0, 200).unwrap();
        assert!((arl / 1000.0 - 1.0).abs() < 1e-3, "h {h} arl {arl}");
        let out_of_control = average_run_length(h, &risks, 2.0, 2.0, 200).unwrap();
        assert!(out_of_control < arl / 5.0);
    }

    #[test]
    fn limit_for_a_false_alarm_probability_reproduces_that_probability() {
        let h = limit_for_false_alarm(0.05, 200, &[0.1], 2.0, 100).unwrap();
        let probability = false_alarm_probability(h, &[0.1], 2.0, 200, 100).unwrap();
        assert!((probability - 0.05).abs() < 1e-4, "h {h} p {probability}");
    }

    #[test]
    fn bernoulli_cusum_is_the_risk_adjusted_cusum_at_constant_risk() {
        let outcomes = [true, false, true, true, false, true];
        let r = bernoulli_odds_ratio(0.1, 0.2).unwrap();
        let a = bernoulli_cusum(&outcomes, 0.1, 0.2, 2.0).unwrap();
        let b = risk_adjusted_cusum(&outcomes, &[0.1; 6], r, 2.0).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn vlad_is_expected_minus_observed() {
        let v = vlad(&[false, true, false], &[0.1, 0.2, 0.3]).unwrap();
        let expected = [0.1, 0.1 + 0.2 - 1.0, 0.1 + 0.2 - 1.0 + 0.3];
        for (a, b) in v.iter().zip(expected) {
            assert!((a - b).abs() < 1e-15);
        }
    }

    #[test]
    fn a_risk_of_one_is_rejected() {
        assert!(matches!(
            vlad(&[true], &[1.0]),
            Err(StatsError::InvalidValue {
                field: "risks",
                index: 0,
                ..
            })
        ));
    }
}
