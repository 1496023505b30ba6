//! Writes a synthetic dataset from the command line, for timing and for trying the loader:
//! `cargo run --release -p mdor-synth --example write_dataset -- DIR SEED N_PROCEDURES`.

use std::path::PathBuf;
use std::process::ExitCode;

use mdor_synth::{SynthConfig, write_dataset};

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [dir, seed, n_procedures] = arguments.as_slice() else {
        eprintln!("usage: write_dataset DIR SEED N_PROCEDURES");
        return ExitCode::FAILURE;
    };
    let (Ok(seed), Ok(n_procedures)) = (seed.parse::<u64>(), n_procedures.parse::<u64>()) else {
        eprintln!("SEED and N_PROCEDURES must be whole numbers");
        return ExitCode::FAILURE;
    };
    let dir = PathBuf::from(dir);
    if let Err(error) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {error}", dir.display());
        return ExitCode::FAILURE;
    }
    let started = std::time::Instant::now();
    match write_dataset(&dir, &SynthConfig::new(seed, n_procedures)) {
        Ok(summary) => {
            eprintln!("{summary:#?}");
            eprintln!("written in {:.2} s", started.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}
