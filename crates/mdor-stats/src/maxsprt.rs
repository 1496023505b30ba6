//! Maximized sequential probability ratio tests (MaxSPRT) for safety surveillance: Poisson and
//! binomial, continuous and group-sequential, with exact critical values.
//!
//! **Poisson** (Kulldorff et al. 2011 §2). With `c` observed and `μ` expected events under the null,
//! `LLR = c log(c/μ) − (c − μ)` when `c > μ`, else 0. Surveillance runs until `μ = T` (the upper
//! limit on the length of surveillance, in expected events). A signal needs at least `M` events
//! and, with delay `D`, no signal is possible before `μ = D` (the test looks at `μ = D` first).
//!
//! **Binomial** (Kulldorff et al. 2011 §3). Each event is a case (exposed) or a control; with `z`
//! controls per case the null probability of a case is `p = 1/(1 + z)`. After `n` events with `c`
//! cases, `LLR = c log(c/(np)) + (n − c) log((n − c)/(n(1 − p)))` when `c/n > p`, else 0.
//! Surveillance runs until `n = N` events; a signal needs `n ≥ M`.
//!
//! **Exact critical values.** The test is written as a sequence of looks `(u_g, k_g)`: it signals
//! at look `g` when the count reaches `k_g`. Continuous Poisson surveillance is exactly such a
//! sequence, because between events the LLR only falls: with `μ_c` solving `LLR(c, μ) = CV` on
//! `(0, c)`, the chart signals iff the `c`-th event arrives by `μ_c`, so the looks are
//! `(μ_c, c)` for `c ≥ M` (after the delay), truncated at `T`. Group-sequential looks use
//! `k_g = min{c ≥ M : LLR(c, u_g) ≥ CV}`. The probability of a signal is computed exactly by
//! propagating the distribution of the count among not-yet-signalled paths from look to look
//! with Poisson (or binomial) increments, in `O(K²)` per look for counts below `K`. The critical
//! value is the smallest `CV` with signal probability at most `α`, found by bisection (for the
//! binomial test the probability is a step function and the result is conservative). Counts with
//! probability below 1e-20 are not propagated. Designs are limited to `T ≤ 1000` expected events
//! (Poisson) and `N ≤ 10000` events (binomial), which keeps the exact computation to about a
//! second; registry surveillance designs are far smaller.
//!
//! References: Kulldorff M., Davis R.L., Kolczak M., Lewis E., Lieu T., Platt R. (2011) A maximized
//! sequential probability ratio test for drug and vaccine safety surveillance. Sequential Analysis
//! 30:58–78; Silva I.R., Kulldorff M. (2015) Continuous versus group sequential analysis for
//! post-market drug and vaccine safety surveillance. Biometrics 71:851–858.

use crate::error::StatsError;
use crate::special::ln_gamma;

/// When the test looks at the data.
#[derive(Debug, Clone, PartialEq)]
pub enum Looks {
    /// After every event (continuous surveillance).
    Continuous,
    /// At the given cumulative expected counts (Poisson) or event counts (binomial), increasing;
    /// the last look must equal the upper limit.
    Group(Vec<f64>),
}

/// The design of a Poisson MaxSPRT.
#[derive(Debug, Clone, PartialEq)]
pub struct PoissonDesign {
    /// Upper limit on the length of surveillance, in expected events `T`.
    pub upper_limit: f64,
    /// Minimum number of events before a signal is possible, `M ≥ 1`.
    pub min_events: u64,
    /// Expected events before the first look, `D ≥ 0`.
    pub delay: f64,
    /// When the test looks.
    pub looks: Looks,
}

/// The design of a binomial MaxSPRT.
#[derive(Debug, Clone, PartialEq)]
pub struct BinomialDesign {
    /// Upper limit on the length of surveillance, in events `N`.
    pub upper_limit: u64,
    /// Controls per case `z > 0`.
    pub controls_per_case: f64,
    /// Minimum number of events before a signal is possible, `M ≥ 1`.
    pub min_events: u64,
    /// When the test looks (event counts for group looks).
    pub looks: Looks,
}

/// The Poisson log-likelihood ratio for `observed` events with `expected` under the null.
pub fn poisson_llr(observed: u64, expected: f64) -> f64 {
    let c = observed as f64;
    if c <= expected || expected <= 0.0 {
        return if expected <= 0.0 && c > 0.0 {
            f64::INFINITY
        } else {
            0.0
        };
    }
    c * (c / expected).ln() - (c - expected)
}

/// The binomial log-likelihood ratio for `cases` among `events` with null case probability `p`.
pub fn binomial_llr(cases: u64, events: u64, p: f64) -> f64 {
    if events == 0 {
        return 0.0;
    }
    let (c, n) = (cases as f64, events as f64);
    if c / n <= p {
        return 0.0;
    }
    let case_term = c * (c / (n * p)).ln();
    let control_term = if cases < events {
        (n - c) * ((n - c) / (n * (1.0 - p))).ln()
    } else {
        0.0
    };
    case_term + control_term
}

/// The probability that the Poisson MaxSPRT with critical value `cv` signals when the true rate is
/// `relative_risk` times the null rate (1 gives the type I error, others the power).
pub fn poisson_signal_probability(
    design: &PoissonDesign,
    cv: f64,
    relative_risk: f64,
) -> Result<f64, StatsError> {
    check_poisson(design)?;
    if !(cv.is_finite() && cv >= 0.0) {
        return Err(StatsError::InvalidOption {
            option: "cv",
            reason: "must be finite and non-negative",
        });
    }
    if !(relative_risk.is_finite() && relative_risk > 0.0) {
        return Err(StatsError::InvalidOption {
            option: "relative_risk",
            reason: "must be finite and positive",
        });
    }
    let looks = poisson_looks(design, cv);
    Ok(signal_probability(&looks, |from, to, pmf| {
        poisson_pmf(relative_risk * (to - from), pmf)
    }))
}

/// The exact critical value of the Poisson MaxSPRT at significance level `alpha`.
pub fn poisson_critical_value(design: &PoissonDesign, alpha: f64) -> Result<f64, StatsError> {
    check_alpha(alpha)?;
    check_poisson(design)?;
    critical_value(alpha, |cv| {
        let looks = poisson_looks(design, cv);
        signal_probability(&looks, |from, to, pmf| poisson_pmf(to - from, pmf))
    })
}

/// The probability that the binomial MaxSPRT with critical value `cv` signals when the odds of a
/// case are `odds_ratio` times the null odds (1 gives the type I error).
pub fn binomial_signal_probability(
    design: &BinomialDesign,
    cv: f64,
    odds_ratio: f64,
) -> Result<f64, StatsError> {
    check_binomial(design)?;
    if !(cv.is_finite() && cv >= 0.0) {
        return Err(StatsError::InvalidOption {
            option: "cv",
            reason: "must be finite and non-negative",
        });
    }
    if !(odds_ratio.is_finite() && odds_ratio > 0.0) {
        return Err(StatsError::InvalidOption {
            option: "odds_ratio",
            reason: "must be finite and positive",
        });
    }
    let p0 = 1.0 / (1.0 + design.controls_per_case);
    let p = odds_ratio * p0 / (1.0 - p0 + odds_ratio * p0);
    let looks = binomial_looks(design, cv);
    Ok(signal_probability(&looks, |from, to, pmf| {
        binomial_pmf((to - from).round() as u64, p, pmf)
    }))
}

/// The exact critical value of the binomial MaxSPRT at significance level `alpha`.
pub fn binomial_critical_value(design: &BinomialDesign, alpha: f64) -> Result<f64, StatsError> {
    check_alpha(alpha)?;
    check_binomial(design)?;
    let p = 1.0 / (1.0 + design.controls_per_case);
    critical_value(alpha, |cv| {
        let looks = binomial_looks(design, cv);
        signal_probability(&looks, |from, to, pmf| {
            binomial_pmf((to - from).round() as u64, p, pmf)
        })
    })
}

/// The looks `(u, k)` of a Poisson design at critical value `cv`.
fn poisson_looks(design: &PoissonDesign, cv: f64) -> Vec<(f64, u64)> {
    let t = design.upper_limit;
    let m = design.min_events.max(1);
    match &design.looks {
        Looks::Group(points) => points
            .iter()
            .filter(|&&u| u >= design.delay)
            .map(|&u| (u, poisson_threshold(u, m, cv)))
            .collect(),
        Looks::Continuous => {
            let mut looks = Vec::new();
            if design.delay > 0.0 {
                looks.push((design.delay, poisson_threshold(design.delay, m, cv)));
            }
            let mut c = m;
            loop {
                let boundary = boundary_time(c, cv);
                if boundary > design.delay {
                    if boundary >= t {
                        looks.push((t, c));
                        break;
                    }
                    looks.push((boundary, c));
                }
                c += 1;
            }
            looks
        }
    }
}

/// The looks `(n, k)` of a binomial design at critical value `cv`.
fn binomial_looks(design: &BinomialDesign, cv: f64) -> Vec<(f64, u64)> {
    let p = 1.0 / (1.0 + design.controls_per_case);
    let points: Vec<u64> = match &design.looks {
        Looks::Continuous => (1..=design.upper_limit).collect(),
        Looks::Group(points) => points.iter().map(|&u| u.round() as u64).collect(),
    };
    points
        .into_iter()
        .filter(|&n| n >= design.min_events.max(1))
        .map(|n| {
            // The smallest case count reaching cv: the LLR increases in c above np.
            let start = (n as f64 * p).floor() as u64;
            let threshold = (start..=n)
                .find(|&c| binomial_llr(c, n, p) >= cv)
                .unwrap_or(n + 1);
            (n as f64, threshold)
        })
        .collect()
}

/// The smallest count `c ≥ m` whose Poisson LLR at `u` reaches `cv`.
fn poisson_threshold(u: f64, m: u64, cv: f64) -> u64 {
    let mut c = m.max(u.floor() as u64 + 1);
    while poisson_llr(c, u) < cv {
        c += 1;
    }
    c
}

/// The time `μ_c < c` at which `LLR(c, μ) = cv` (the LLR falls from ∞ to 0 on `(0, c)`).
fn boundary_time(c: u64, cv: f64) -> f64 {
    let c_f = c as f64;
    let (mut lo, mut hi) = (0.0_f64, c_f);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if c_f * (c_f / mid).ln() - (c_f - mid) >= cv {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Probability of reaching some look's threshold, propagating the count distribution of the
/// not-yet-signalled paths; `increment(from, to, pmf)` fills the increment's probabilities.
fn signal_probability(looks: &[(f64, u64)], increment: impl Fn(f64, f64, &mut Vec<f64>)) -> f64 {
    let mut alive = vec![1.0];
    let mut next = Vec::new();
    let mut pmf = Vec::new();
    let mut signalled = 0.0;
    let mut previous = 0.0;
    for &(u, threshold) in looks {
        let limit = threshold as usize;
        increment(previous, u, &mut pmf);
        next.clear();
        next.resize(limit.max(1), 0.0);
        let mut total_alive = 0.0;
        for (i, &mass) in alive.iter().enumerate() {
            total_alive += mass;
            // Counts carrying less than 1e-20 of probability cannot move the result at any
            // usable α; skipping them keeps the work near the bulk of the distribution.
            if mass < 1e-20 {
                continue;
            }
            for (d, &q) in pmf.iter().enumerate() {
                let j = i + d;
                if j >= limit {
                    break;
                }
                next[j] += mass * q;
            }
        }
        let survived: f64 = next.iter().sum();
        signalled += (total_alive - survived).max(0.0);
        std::mem::swap(&mut alive, &mut next);
        previous = u;
    }
    signalled.clamp(0.0, 1.0)
}

/// Smallest critical value whose signal probability is at most `alpha`.
fn critical_value(alpha: f64, probability: impl Fn(f64) -> f64) -> Result<f64, StatsError> {
    let mut lo = 0.0;
    let mut hi = 1.0;
    let mut doublings = 0;
    while probability(hi) > alpha {
        lo = hi;
        hi *= 2.0;
        doublings += 1;
        if doublings > 10 {
            return Err(StatsError::NonConvergence {
                iterations: doublings,
            });
        }
    }
    for _ in 0..100 {
        if hi - lo < 1e-10 {
            break;
        }
        let mid = 0.5 * (lo + hi);
        if probability(mid) > alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(hi)
}

/// Poisson probabilities `P(X = k)`, `X ~ Poisson(mean)`, up to negligible mass.
fn poisson_pmf(mean: f64, out: &mut Vec<f64>) {
    out.clear();
    if mean <= 0.0 {
        out.push(1.0);
        return;
    }
    let upper = (mean + 12.0 * mean.sqrt() + 30.0).ceil() as usize;
    for k in 0..=upper {
        let kf = k as f64;
        out.push((kf * mean.ln() - mean - ln_gamma(kf + 1.0)).exp());
    }
}

/// Binomial probabilities `P(X = k)`, `X ~ Bin(n, p)`.
fn binomial_pmf(n: u64, p: f64, out: &mut Vec<f64>) {
    out.clear();
    let nf = n as f64;
    for k in 0..=n {
        let kf = k as f64;
        let log = ln_gamma(nf + 1.0) - ln_gamma(kf + 1.0) - ln_gamma(nf - kf + 1.0)
            + kf * p.ln()
            + (nf - kf) * (1.0 - p).ln();
        out.push(log.exp());
    }
}

fn check_alpha(alpha: f64) -> Result<(), StatsError> {
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(StatsError::InvalidOption {
            option: "alpha",
            reason: "must lie strictly between 0 and 1",
        });
    }
    Ok(())
}

fn check_poisson(design: &PoissonDesign) -> Result<(), StatsError> {
    if !(design.upper_limit.is_finite() && design.upper_limit > 0.0 && design.upper_limit <= 1000.0)
    {
        return Err(StatsError::InvalidOption {
            option: "upper_limit",
            reason: "must be positive and at most 1000 expected events",
        });
    }
    if !(design.delay.is_finite() && design.delay >= 0.0 && design.delay < design.upper_limit) {
        return Err(StatsError::InvalidOption {
            option: "delay",
            reason: "must be non-negative and below the upper limit",
        });
    }
    if design.min_events == 0 || design.min_events > 100_000 {
        return Err(StatsError::InvalidOption {
            option: "min_events",
            reason: "must be between 1 and 100000",
        });
    }
    if let Looks::Group(points) = &design.looks {
        check_group_looks(points, design.upper_limit)?;
    }
    Ok(())
}

fn check_binomial(design: &BinomialDesign) -> Result<(), StatsError> {
    if design.upper_limit == 0 || design.upper_limit > 10_000 {
        return Err(StatsError::InvalidOption {
            option: "upper_limit",
            reason: "must be between 1 and 10000 events",
        });
    }
    let z = design.controls_per_case;
    if !(z.is_finite() && z > 0.0) {
        return Err(StatsError::InvalidOption {
            option: "controls_per_case",
            reason: "must be finite and positive",
        });
    }
    if design.min_events == 0 || design.min_events > design.upper_limit {
        return Err(StatsError::InvalidOption {
            option: "min_events",
            reason: "must be between 1 and the upper limit",
        });
    }
    if let Looks::Group(points) = &design.looks {
        check_group_looks(points, design.upper_limit as f64)?;
        if points.iter().any(|p| p.fract() != 0.0) {
            return Err(StatsError::InvalidOption {
                option: "looks",
                reason: "binomial looks must be whole event counts",
            });
        }
    }
    Ok(())
}

fn check_group_looks(points: &[f64], upper_limit: f64) -> Result<(), StatsError> {
    let increasing = points.windows(2).all(|w| w[0] < w[1]);
    let valid = points.iter().all(|p| p.is_finite() && *p > 0.0);
    if points.is_empty() || !increasing || !valid || points[points.len() - 1] != upper_limit {
        return Err(StatsError::InvalidOption {
            option: "looks",
            reason: "must be positive, increasing, and end at the upper limit",
        });
    }
    Ok(())
}

#[cfg(test)]
// Tests may unwrap: a panic is the failure report.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::special::gamma_p;

    fn continuous(upper_limit: f64, min_events: u64, delay: f64) -> PoissonDesign {
        PoissonDesign {
            upper_limit,
            min_events,
            delay,
            looks: Looks::Continuous,
        }
    }

    #[test]
    fn a_single_look_signals_with_the_poisson_tail_probability() {
        let design = PoissonDesign {
            upper_limit: 5.0,
            min_events: 1,
            delay: 0.0,
            looks: Looks::Group(vec![5.0]),
        };
        let cv = 2.0;
        let k = poisson_threshold(5.0, 1, cv);
        let expected = gamma_p(k as f64, 5.0);
        let actual = poisson_signal_probability(&design, cv, 1.0).unwrap();
        assert!((actual - expected).abs() < 1e-13);
        assert!(poisson_llr(k, 5.0) >= cv && poisson_llr(k - 1, 5.0) < cv);
    }

    #[test]
    fn the_critical_value_gives_exactly_alpha() {
        let design = continuous(10.0, 1, 0.0);
        let cv = poisson_critical_value(&design, 0.05).unwrap();
        let alpha = poisson_signal_probability(&design, cv, 1.0).unwrap();
        assert!((alpha - 0.05).abs() < 1e-6, "cv {cv} alpha {alpha}");
        // Power rises with the relative risk.
        let power = poisson_signal_probability(&design, cv, 2.0).unwrap();
        assert!(power > 0.5 && power < 1.0);
    }

    #[test]
    fn continuous_poisson_type_one_error_agrees_with_a_seeded_simulation() {
        let design = continuous(4.0, 2, 0.5);
        let cv = 2.5;
        let exact = poisson_signal_probability(&design, cv, 1.0).unwrap();
        let mut state = 0x1234_5678_9ABC_DEF1u64;
        let mut uniform = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let runs = 40_000;
        let mut signals = 0;
        for _ in 0..runs {
            let mut t = 0.0;
            let mut c = 0u64;
            let mut arrivals = Vec::new();
            loop {
                t += -uniform().ln();
                if t > 4.0 {
                    break;
                }
                arrivals.push(t);
            }
            // Look at the delay, then at every later event.
            let at_delay = arrivals.iter().filter(|&&a| a <= 0.5).count() as u64;
            let mut signal = at_delay >= 2 && poisson_llr(at_delay, 0.5) >= cv;
            for &a in &arrivals {
                c += 1;
                if a > 0.5 && c >= 2 && poisson_llr(c, a) >= cv {
                    signal = true;
                }
            }
            if signal {
                signals += 1;
            }
        }
        let simulated = signals as f64 / runs as f64;
        let se = (exact * (1.0 - exact) / runs as f64).sqrt();
        assert!(
            (simulated - exact).abs() < 4.0 * se,
            "exact {exact} simulated {simulated}"
        );
    }

    #[test]
    fn binomial_critical_value_is_conservative_and_tight() {
        let design = BinomialDesign {
            upper_limit: 60,
            controls_per_case: 1.0,
            min_events: 3,
            looks: Looks::Continuous,
        };
        let cv = binomial_critical_value(&design, 0.05).unwrap();
        let at = binomial_signal_probability(&design, cv, 1.0).unwrap();
        let below = binomial_signal_probability(&design, cv - 1e-6, 1.0).unwrap();
        assert!(at <= 0.05 && below > 0.05, "cv {cv}: {at} {below}");
    }

    #[test]
    fn binomial_one_look_equals_the_binomial_tail() {
        let design = BinomialDesign {
            upper_limit: 20,
            controls_per_case: 3.0,
            min_events: 1,
            looks: Looks::Group(vec![20.0]),
        };
        let cv = 3.0;
        let k = (0..=20).find(|&c| binomial_llr(c, 20, 0.25) >= cv).unwrap();
        let tail: f64 = (k..=20)
            .map(|c| {
                let mut pmf = Vec::new();
                binomial_pmf(20, 0.25, &mut pmf);
                pmf[c as usize]
            })
            .sum();
        let actual = binomial_signal_probability(&design, cv, 1.0).unwrap();
        assert!((actual - tail).abs() < 1e-13);
    }

    #[test]
    fn group_looks_that_do_not_end_at_the_upper_limit_are_rejected() {
        let design = PoissonDesign {
            upper_limit: 5.0,
            min_events: 1,
            delay: 0.0,
            looks: Looks::Group(vec![1.0, 3.0]),
        };
        assert!(matches!(
            poisson_critical_value(&design, 0.05),
            Err(StatsError::InvalidOption {
                option: "looks",
                ..
            })
        ));
    }
}
