//! Synthetic national datasets for mdor: a device register, providers, consultants, implant
//! procedures and their outcomes, with known signals injected for analytics to find.
//!
//! Everything is deterministic per seed: `Generator::new(SynthConfig::new(seed, n))` gives
//! the same catalogue and the same stream of `PatientHistory` values on every machine, and
//! `write_dataset` writes them as the files the loader reads (see docs/synthetic-data.md).
//! Generation streams patient by patient, so memory does not grow with the dataset.
//! Every patient has an NHS number in the 999 test range, which the NHS never issues.

#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "a failed unwrap in a test is a test failure with a location"
    )
)]

pub mod catalogue;
pub mod dataset;
pub mod hazard;
pub mod history;
mod names;
pub mod scan;

pub use catalogue::{
    Catalogue, Consultant, DeviceModel, DeviceType, ProcedureKind, Provider, Specialty,
};
pub use dataset::{DatasetSummary, Truth, write_dataset};
pub use history::{
    CUTOFF_DATE, DeviceEntry, DeviceTruth, FaultyLot, Generator, OutcomeRecord, PatientDetails,
    PatientHistories, PatientHistory, ProcedureDetails, ProcedureRecord, SynthConfig,
};

use std::path::PathBuf;

/// Why a dataset could not be generated or written.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("cannot write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write csv file {path}")]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("cannot serialise a record for {path}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the 999 test range of nhs numbers ran out after {n_procedures_done} procedures; ask for fewer procedures"
    )]
    NhsNumbersExhausted { n_procedures_done: u64 },
}
