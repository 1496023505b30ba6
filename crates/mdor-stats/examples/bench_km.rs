//! Times grouped Kaplan–Meier (Greenwood variance, log intervals) on a data file written by
//! `scripts/stats/bench_vs_lifelines.py`, so the Rust and lifelines figures use identical input.
//!
//! Usage: `cargo run --release -p mdor-stats --example bench_km -- FILE [REPEATS]`.
//! File layout (little-endian): `n: u64`, `time: [f64; n]`, `event: [u8; n]`, `group: [u32; n]`.

// This is a command-line measuring tool: printing the figures is its purpose.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use mdor_stats::{KaplanMeierOptions, SurvivalData, kaplan_meier_by_group};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: bench_km FILE [REPEATS]")?;
    let repeats: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(5);
    let bytes = std::fs::read(path)?;
    let mut reader = Reader {
        bytes: &bytes,
        at: 0,
    };
    let n = reader.u64()? as usize;
    let time: Vec<f64> = (0..n).map(|_| reader.f64()).collect::<Result<_, _>>()?;
    let event: Vec<bool> = (0..n)
        .map(|_| reader.u8().map(|e| e != 0))
        .collect::<Result<_, _>>()?;
    let group: Vec<u32> = (0..n).map(|_| reader.u32()).collect::<Result<_, _>>()?;

    let mut seconds = Vec::new();
    let mut cpu_seconds = Vec::new();
    let mut n_curves = 0;
    let mut checksum = 0.0;
    for _ in 0..repeats {
        // The caller's columns are handed over, as the service layer does after loading a cohort.
        let (owned_time, owned_event) = (time.clone(), event.clone());
        let start = Instant::now();
        let cpu_start = process_cpu_seconds();
        let data = SurvivalData::from_vecs(owned_time, owned_event)?;
        let curves = kaplan_meier_by_group(&data, &group, KaplanMeierOptions::default())?;
        seconds.push(start.elapsed().as_secs_f64());
        cpu_seconds.push(process_cpu_seconds() - cpu_start);
        n_curves = curves.len();
        checksum = curves
            .iter()
            .map(|c| c.curve.survival.last().copied().unwrap_or(1.0))
            .sum();
    }
    seconds.sort_by(f64::total_cmp);
    cpu_seconds.sort_by(f64::total_cmp);
    println!(
        "records={n} groups={n_curves} repeats={repeats} min_seconds={:.4} median_seconds={:.4} min_cpu_seconds={:.4} checksum={checksum:.6}",
        seconds[0],
        seconds[seconds.len() / 2],
        cpu_seconds[0]
    );
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let slice = self
            .bytes
            .get(self.at..self.at + N)
            .ok_or("file is truncated")?;
        self.at += N;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }
    fn u64(&mut self) -> Result<u64, String> {
        self.take::<8>().map(u64::from_le_bytes)
    }
    fn f64(&mut self) -> Result<f64, String> {
        self.take::<8>().map(f64::from_le_bytes)
    }
    fn u32(&mut self) -> Result<u32, String> {
        self.take::<4>().map(u32::from_le_bytes)
    }
    fn u8(&mut self) -> Result<u8, String> {
        self.take::<1>().map(|b| b[0])
    }
}

/// User plus system CPU time of this process, from `/proc/self/stat` (Linux; 0 elsewhere), so that
/// figures on a busy shared machine can be compared without the time spent waiting for a core.
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let Some(rest) = stat.rsplit(')').next() else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    // Linux reports these in clock ticks of 1/100 s on every mainstream configuration.
    ticks / 100.0
}
