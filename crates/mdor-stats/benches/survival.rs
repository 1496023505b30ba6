//! Divan benchmarks of the hot paths at registry scale: grouped Kaplan–Meier on 10 million records,
//! Cox regression on 1 million records with 5 covariates, Aalen–Johansen and log-rank on 1 million.
//!
//! Run with `cargo bench -p mdor-stats -j 1 --bench survival`. Data are synthetic, generated from a
//! fixed seed: exponential failure and uniform censoring times in whole days up to 15 years.

// Benchmarks may unwrap: inputs are generated and valid by construction.
#![allow(clippy::unwrap_used)]

use divan::Bencher;
use mdor_stats::{
    CiTransform, CompetingRisksData, CoxDesign, CoxOptions, KaplanMeierOptions, SurvivalData,
    aalen_johansen, cox_regression, kaplan_meier_by_group, logrank_test,
};

fn main() {
    divan::main();
}

/// A small xorshift generator so the benchmarks need no random-number dependency.
struct Generator(u64);

impl Generator {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Days to revision or censoring, the event flag, and a group label per record.
fn registry(
    n: usize,
    groups: u32,
    linear: impl Fn(usize) -> f64,
) -> (Vec<f64>, Vec<bool>, Vec<u32>) {
    let mut rng = Generator(0x9E37_79B9_7F4A_7C15);
    let mut time = Vec::with_capacity(n);
    let mut event = Vec::with_capacity(n);
    let mut group = Vec::with_capacity(n);
    for i in 0..n {
        let fail = -(rng.uniform().ln()) * 365.25 * 40.0 * (-linear(i)).exp();
        let censor = 1.0 + rng.uniform() * 365.25 * 15.0;
        time.push(fail.min(censor).ceil());
        event.push(fail <= censor);
        group.push((rng.uniform() * f64::from(groups)) as u32);
    }
    (time, event, group)
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn kaplan_meier_10_million_records_in_1000_groups(bencher: Bencher) {
    let (time, event, group) = registry(10_000_000, 1000, |_| 0.0);
    let options = KaplanMeierOptions {
        confidence_level: 0.95,
        transform: CiTransform::Log,
    };
    bencher
        .with_inputs(|| (time.clone(), event.clone()))
        .bench_local_values(|(time, event)| {
            let data = SurvivalData::from_vecs(time, event).unwrap();
            kaplan_meier_by_group(&data, &group, options).unwrap()
        });
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn cox_efron_1_million_records_5_covariates(bencher: Bencher) {
    let p = 5;
    let mut rng = Generator(42);
    let x: Vec<f64> = (0..1_000_000 * p).map(|_| rng.normal()).collect();
    let beta = [0.5, 0.3, 0.1, -0.1, -0.3];
    let (time, event, _) = registry(1_000_000, 1, |i| {
        (0..p).map(|k| x[i * p + k] * beta[k]).sum()
    });
    let data = SurvivalData::new(&time, &event).unwrap();
    bencher.bench_local(|| cox_regression(&data, &x, p, None, CoxOptions::default()).unwrap());
}

/// The shape of a survivorship report's hazard ratio on a 2M-procedure registry: one class
/// of 500,000 implants, follow-up in whole days, a model indicator (1 in 10), age and sex.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn cox_efron_500k_records_model_age_sex(bencher: Bencher) {
    let p = 3;
    let n = 500_000;
    let mut rng = Generator(7);
    let mut x = Vec::with_capacity(n * p);
    for _ in 0..n {
        x.push(if rng.uniform() < 0.1 { 1.0 } else { 0.0 });
        x.push(55.0 + 12.0 * rng.normal());
        x.push(if rng.uniform() < 0.45 { 1.0 } else { 0.0 });
    }
    let beta = [0.4, -0.02, 0.2];
    let (time, event, _) = registry(n, 1, |i| (0..p).map(|k| x[i * p + k] * beta[k]).sum());
    let years: Vec<f64> = time.iter().map(|t| t / 365.25).collect();
    let data = SurvivalData::new(&years, &event).unwrap();
    bencher.bench_local(|| cox_regression(&data, &x, p, None, CoxOptions::default()).unwrap());
}

/// A survivorship report's hazard ratio on a hip-cup class of the 2M registry: 520,000 units,
/// one model's indicator fitted against a class design of age, sex and four indication
/// indicators (osteoarthritis the reference), as `mdor-service` fits it.
#[divan::bench(sample_count = 5, sample_size = 1)]
fn cox_design_520k_records_model_against_age_sex_4_indications(bencher: Bencher) {
    let n = 520_000;
    let base_p = 6;
    let mut rng = Generator(11);
    let mut base = Vec::with_capacity(n * base_p);
    let mut leading = Vec::with_capacity(n);
    let mut risk = Vec::with_capacity(n);
    for _ in 0..n {
        let age = 70.0 + 10.0 * rng.normal();
        let male = f64::from(u8::from(rng.uniform() < 0.4));
        let roll = rng.uniform();
        let level = [0.88, 0.94, 0.97, 0.99, 1.0]
            .iter()
            .position(|&c| roll < c)
            .unwrap_or(0);
        base.push(age);
        base.push(male);
        base.extend((1..=4).map(|l| f64::from(u8::from(level == l))));
        let model = f64::from(u8::from(rng.uniform() < 0.07));
        leading.push(model);
        risk.push(
            0.1 * model - 0.02 * (age - 70.0) + 0.15 * male + 0.4 * f64::from(u8::from(level > 0)),
        );
    }
    let (time, event, _) = registry(n, 1, |i| risk[i]);
    let years: Vec<f64> = time.iter().map(|t| t / 365.25).collect();
    let data = SurvivalData::new(&years, &event).unwrap();
    let design = CoxDesign::new(&data, &base, base_p, None).unwrap();
    bencher.bench_local(|| {
        design
            .fit_with_leading(&leading, CoxOptions::default())
            .unwrap()
    });
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn aalen_johansen_1_million_records_2_causes(bencher: Bencher) {
    let (time, event, group) = registry(1_000_000, 2, |_| 0.0);
    let cause: Vec<u32> = event
        .iter()
        .zip(&group)
        .map(|(&e, &g)| if e { g + 1 } else { 0 })
        .collect();
    let data = CompetingRisksData::new(&time, &cause).unwrap();
    bencher.bench_local(|| aalen_johansen(&data, 0.95, CiTransform::LogLog).unwrap());
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn logrank_1_million_records_in_10_groups(bencher: Bencher) {
    let (time, event, group) = registry(1_000_000, 10, |_| 0.0);
    let data = SurvivalData::new(&time, &event).unwrap();
    bencher.bench_local(|| logrank_test(&data, &group, None).unwrap());
}
