//! Times a Cox fit (Efron ties) on a data file written by `scripts/stats/bench_vs_lifelines.py`,
//! so the Rust and lifelines figures use identical input.
//!
//! Usage: `cargo run --release -p mdor-stats --example bench_cox -- FILE [REPEATS]`.
//! File layout (little-endian): `n: u64`, `p: u64`, `time: [f64; n]`, `event: [u8; n]`,
//! `x: [f64; n × p]` row-major.

// This is a command-line measuring tool: printing the figures is its purpose.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use mdor_stats::{CoxOptions, SurvivalData, cox_regression};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: bench_cox FILE [REPEATS]")?;
    let repeats: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(3);
    let bytes = std::fs::read(path)?;
    let read_u64 = |at: usize| -> Result<u64, String> {
        let slice = bytes.get(at..at + 8).ok_or("file is truncated")?;
        let mut b = [0u8; 8];
        b.copy_from_slice(slice);
        Ok(u64::from_le_bytes(b))
    };
    let n = read_u64(0)? as usize;
    let p = read_u64(8)? as usize;
    let mut at = 16;
    let mut floats = |count: usize| -> Result<Vec<f64>, String> {
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(f64::from_bits(read_u64(at)?));
            at += 8;
        }
        Ok(out)
    };
    let time = floats(n)?;
    let event_bytes = bytes
        .get(16 + 8 * n..16 + 9 * n)
        .ok_or("file is truncated")?;
    let event: Vec<bool> = event_bytes.iter().map(|&e| e != 0).collect();
    let x_start = 16 + 9 * n;
    let x: Vec<f64> = bytes
        .get(x_start..x_start + 8 * n * p)
        .ok_or("file is truncated")?
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            f64::from_le_bytes(b)
        })
        .collect();

    let mut seconds = Vec::new();
    let mut cpu_seconds = Vec::new();
    let mut coefficients = Vec::new();
    let mut iterations = 0;
    for _ in 0..repeats {
        let start = Instant::now();
        let cpu_start = process_cpu_seconds();
        let data = SurvivalData::new(&time, &event)?;
        let fit = cox_regression(&data, &x, p, None, CoxOptions::default())?;
        seconds.push(start.elapsed().as_secs_f64());
        cpu_seconds.push(process_cpu_seconds() - cpu_start);
        coefficients = fit.coefficients;
        iterations = fit.iterations;
    }
    seconds.sort_by(f64::total_cmp);
    cpu_seconds.sort_by(f64::total_cmp);
    println!(
        "records={n} covariates={p} repeats={repeats} iterations={iterations} min_seconds={:.4} median_seconds={:.4} min_cpu_seconds={:.4} coefficients={coefficients:?}",
        seconds[0],
        seconds[seconds.len() / 2],
        cpu_seconds[0]
    );
    Ok(())
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
