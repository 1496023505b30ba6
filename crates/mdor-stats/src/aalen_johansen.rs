//! Aalen–Johansen cumulative incidence for competing risks (e.g. revision versus death), exact with
//! tied times.
//!
//! **Estimator.** With `S` the all-cause Kaplan–Meier curve, `n_j` at risk and `d_kj` events of cause
//! `k` at distinct time `t_j`: `F_k(t) = Σ_{t_j ≤ t} S(t_{j−1}) d_kj / n_j` (Aalen & Johansen 1978).
//! Ties between causes and with censorings are handled exactly (no jittering): all causes at `t_j`
//! use the same `S(t_{j−1})`, and censorings at `t_j` stay in the risk set. Delayed entry uses the
//! risk set of [`mod@crate::kaplan_meier`]. `Σ_k F_k(t) = 1 − S(t)` holds exactly.
//!
//! **Variance.** The delta-method (Greenwood-type) estimator of Marubini & Valsecchi (1995, eq.
//! 10.14), identical to statsmodels' `CumIncidenceRight`: with `r_j = d_j / (n_j (n_j − d_j))`
//! (all-cause `d_j`),
//! `Var F_k(t) = Σ_{t_j ≤ t} [ (F_k(t) − F_k(t_j))² r_j + S(t_{j−1})² d_kj (n_j − d_kj) / n_j³
//!   − 2 (F_k(t) − F_k(t_j)) S(t_{j−1}) d_kj / n_j² ]`.
//! Terms with `n_j = d_j` (the risk set is exhausted) contribute zero to the first sum because
//! `F_k` cannot change afterwards.
//!
//! **Intervals** (level `1 − α`): plain `F ± z σ` clamped to `[0, 1]`; log `F exp(±z σ / F)`; and
//! log-log `F^{exp(±z σ / (F log F))}` (the `cmprsk` convention), chosen with [`CiTransform`].
//!
//! References: Aalen O.O., Johansen S. (1978) Scand. J. Statist. 5:141–150; Marubini E., Valsecchi
//! M.G. (1995) *Analysing Survival Data from Clinical Trials and Observational Studies*, Wiley;
//! Putter H., Fiocco M., Geskus R.B. (2007) Stat. Med. 26:2389–2430.

use crate::error::StatsError;
use crate::input::{check_confidence_level, check_length, check_times};
use crate::kaplan_meier::CiTransform;
use crate::special::normal_quantile;

/// Competing-risks data: exit times and the cause of each exit (`0` = censored, `1..=k` = causes).
#[derive(Debug, Clone, PartialEq)]
pub struct CompetingRisksData {
    time: Vec<f64>,
    cause: Vec<u32>,
    entry: Option<Vec<f64>>,
    n_causes: u32,
}

impl CompetingRisksData {
    /// Builds data from exit times and causes; times must be finite and non-negative, and causes
    /// at most 1024.
    pub fn new(time: &[f64], cause: &[u32]) -> Result<Self, StatsError> {
        check_times("time", time)?;
        check_length("cause", time.len(), cause.len())?;
        let n_causes = check_causes(cause)?;
        Ok(Self {
            time: time.to_vec(),
            cause: cause.to_vec(),
            entry: None,
            n_causes,
        })
    }

    /// Builds left-truncated data; each entry must be non-negative and before its exit time.
    pub fn with_entry(entry: &[f64], time: &[f64], cause: &[u32]) -> Result<Self, StatsError> {
        let events: Vec<bool> = cause.iter().map(|&c| c > 0).collect();
        crate::input::SurvivalData::with_entry(entry, time, &events)?;
        let n_causes = check_causes(cause)?;
        Ok(Self {
            time: time.to_vec(),
            cause: cause.to_vec(),
            entry: Some(entry.to_vec()),
            n_causes,
        })
    }

    /// The largest cause code present (the number of causes).
    pub fn n_causes(&self) -> u32 {
        self.n_causes
    }
}

/// The cumulative incidence of one cause.
#[derive(Debug, Clone, PartialEq)]
pub struct CauseIncidence {
    /// The cause code (1-based).
    pub cause: u32,
    /// Events of this cause at each time.
    pub n_event: Vec<u64>,
    /// Cumulative incidence just after each time.
    pub incidence: Vec<f64>,
    /// Delta-method standard error.
    pub std_err: Vec<f64>,
    /// Lower confidence limit.
    pub lower: Vec<f64>,
    /// Upper confidence limit.
    pub upper: Vec<f64>,
}

/// Aalen–Johansen estimates of every cause, one row per distinct exit time.
#[derive(Debug, Clone, PartialEq)]
pub struct CumulativeIncidence {
    /// Distinct exit times.
    pub time: Vec<f64>,
    /// Records at risk just before each time.
    pub n_risk: Vec<u64>,
    /// Censorings at each time.
    pub n_censor: Vec<u64>,
    /// All-cause Kaplan–Meier survival just after each time.
    pub survival: Vec<f64>,
    /// One entry per cause `1..=k`, in order.
    pub causes: Vec<CauseIncidence>,
}

/// Estimates the cumulative incidence of every cause with intervals at `confidence_level`.
pub fn aalen_johansen(
    data: &CompetingRisksData,
    confidence_level: f64,
    transform: CiTransform,
) -> Result<CumulativeIncidence, StatsError> {
    check_confidence_level(confidence_level)?;
    let z = normal_quantile(1.0 - (1.0 - confidence_level) / 2.0);
    let k = data.n_causes as usize;
    let mut order: Vec<usize> = (0..data.time.len()).collect();
    order.sort_unstable_by(|&a, &b| data.time[a].total_cmp(&data.time[b]));
    let mut entries: Vec<f64> = data.entry.clone().unwrap_or_default();
    entries.sort_unstable_by(f64::total_cmp);

    let mut time = Vec::new();
    let mut n_risk = Vec::new();
    let mut n_censor = Vec::new();
    let mut survival = Vec::new();
    let mut counts: Vec<Vec<u64>> = vec![Vec::new(); k];
    let mut at_time = vec![0u64; k + 1];
    let n = order.len();
    let (mut i, mut exited, mut entered) = (0usize, 0usize, 0usize);
    while i < n {
        let t = data.time[order[i]];
        at_time.iter_mut().for_each(|c| *c = 0);
        while i < n && data.time[order[i]] == t {
            at_time[data.cause[order[i]] as usize] += 1;
            i += 1;
        }
        let risk = if data.entry.is_some() {
            while entered < entries.len() && entries[entered] < t {
                entered += 1;
            }
            entered - exited
        } else {
            n - exited
        };
        time.push(t);
        n_risk.push(risk as u64);
        n_censor.push(at_time[0]);
        for c in 0..k {
            counts[c].push(at_time[c + 1]);
        }
        exited += at_time.iter().sum::<u64>() as usize;
    }

    // All-cause survival before (`s_before`) and after each time, and the Greenwood increments.
    let m = time.len();
    let mut s_before = Vec::with_capacity(m);
    let mut ratio = Vec::with_capacity(m);
    let mut s = 1.0;
    for j in 0..m {
        let nj = n_risk[j] as f64;
        let dj: f64 = counts.iter().map(|c| c[j] as f64).sum();
        s_before.push(s);
        ratio.push(if dj > 0.0 && nj > dj {
            dj / (nj * (nj - dj))
        } else {
            0.0
        });
        if dj > 0.0 {
            s *= 1.0 - dj / nj;
        }
        survival.push(s);
    }

    let mut causes = Vec::with_capacity(k);
    for (c, n_event) in counts.into_iter().enumerate() {
        let mut incidence = Vec::with_capacity(m);
        let mut std_err = Vec::with_capacity(m);
        let mut lower = Vec::with_capacity(m);
        let mut upper = Vec::with_capacity(m);
        let mut f = 0.0;
        // Running sums of the expanded variance: Σ r, Σ F r, Σ F² r, Σ S²d(n−d)/n³, Σ S d/n², Σ F S d/n².
        let (mut a0, mut a1, mut a2, mut b, mut c0, mut c1) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        for j in 0..m {
            let nj = n_risk[j] as f64;
            let dk = n_event[j] as f64;
            if dk > 0.0 {
                f += s_before[j] * dk / nj;
            }
            let r = ratio[j];
            a0 += r;
            a1 += f * r;
            a2 += f * f * r;
            if dk > 0.0 {
                b += s_before[j] * s_before[j] * (nj - dk) * dk / (nj * nj * nj);
                let w = s_before[j] * dk / (nj * nj);
                c0 += w;
                c1 += f * w;
            }
            let variance = f * f * a0 - 2.0 * f * a1 + a2 + b - 2.0 * f * c0 + 2.0 * c1;
            let sigma = variance.max(0.0).sqrt();
            let (lo, hi) = incidence_interval(f, sigma, z, transform);
            incidence.push(f);
            std_err.push(sigma);
            lower.push(lo);
            upper.push(hi);
        }
        causes.push(CauseIncidence {
            cause: c as u32 + 1,
            n_event,
            incidence,
            std_err,
            lower,
            upper,
        });
    }
    Ok(CumulativeIncidence {
        time,
        n_risk,
        n_censor,
        survival,
        causes,
    })
}

fn check_causes(cause: &[u32]) -> Result<u32, StatsError> {
    let mut n_causes = 0;
    for (index, &c) in cause.iter().enumerate() {
        if c > 1024 {
            return Err(StatsError::InvalidValue {
                field: "cause",
                index,
                reason: "cause codes must be at most 1024",
            });
        }
        n_causes = n_causes.max(c);
    }
    Ok(n_causes)
}

fn incidence_interval(f: f64, sigma: f64, z: f64, transform: CiTransform) -> (f64, f64) {
    if f <= 0.0 || sigma == 0.0 {
        return (f, f);
    }
    match transform {
        CiTransform::Plain => ((f - z * sigma).max(0.0), (f + z * sigma).min(1.0)),
        CiTransform::Log => (
            f * (-z * sigma / f).exp(),
            (f * (z * sigma / f).exp()).min(1.0),
        ),
        CiTransform::LogLog => {
            if f >= 1.0 {
                return (1.0, 1.0);
            }
            let w = z * sigma / (f * f.ln());
            (
                f.powf(w.exp().max((-w).exp())),
                f.powf(w.exp().min((-w).exp())),
            )
        }
    }
}

#[cfg(test)]
// Tests may unwrap: a panic is the failure report.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tied_competing_events_share_the_survival_just_before_their_time() {
        // Times 1 (cause 1), 2 (cause 1), 2 (cause 2), 2 (censored), 3 (cause 2).
        let data = CompetingRisksData::new(&[1.0, 2.0, 2.0, 2.0, 3.0], &[1, 1, 2, 0, 2]).unwrap();
        let ci = aalen_johansen(&data, 0.95, CiTransform::LogLog).unwrap();
        assert_eq!(ci.n_risk, vec![5, 4, 1]);
        // S(1) = 4/5; at t = 2 each cause takes S(1) × 1/4 = 1/5.
        let f1 = &ci.causes[0].incidence;
        let f2 = &ci.causes[1].incidence;
        assert!((f1[0] - 0.2).abs() < 1e-15);
        assert!((f1[1] - 0.4).abs() < 1e-15);
        assert!((f2[1] - 0.2).abs() < 1e-15);
        // S(2) = 4/5 × 2/4 = 2/5; the last record fails of cause 2.
        assert!((f2[2] - 0.6).abs() < 1e-15);
        for j in 0..3 {
            assert!((f1[j] + f2[j] - (1.0 - ci.survival[j])).abs() < 1e-15);
        }
    }

    #[test]
    fn with_a_single_cause_the_variance_is_greenwoods() {
        let time = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let cause = [1, 0, 1, 1, 0, 1];
        let data = CompetingRisksData::new(&time, &cause).unwrap();
        let ci = aalen_johansen(&data, 0.95, CiTransform::Plain).unwrap();
        let events: Vec<bool> = cause.iter().map(|&c| c == 1).collect();
        let km = crate::kaplan_meier(
            &crate::SurvivalData::new(&time, &events).unwrap(),
            crate::KaplanMeierOptions::default(),
        )
        .unwrap();
        for j in 0..4 {
            let se_s = km.survival[j] * km.std_err[j];
            assert!((ci.causes[0].std_err[j] - se_s).abs() < 1e-12, "j = {j}");
        }
    }

    #[test]
    fn a_cause_code_above_1024_is_rejected() {
        assert!(matches!(
            CompetingRisksData::new(&[1.0], &[5000]),
            Err(StatsError::InvalidValue {
                field: "cause",
                index: 0,
                ..
            })
        ));
    }
}
