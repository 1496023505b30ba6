//! Writes a generated dataset as files: the three catalogue CSVs, the procedures and
//! outcomes as newline-delimited JSON, and `truth.json` describing what was injected.
//!
//! The column and field layouts are the contract with the loader and are documented in
//! docs/synthetic-data.md; change both together.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::SynthError;
use crate::catalogue::{
    INJECTED_DEVICE_MODEL_HAZARD_RATIO, INJECTED_PROVIDER_HAZARD_RATIO, MODEL_FRAILTY_SIGMA,
    PROVIDER_FRAILTY_SIGMA,
};
use crate::hazard::{BaselineHazard, Gompertz, MORTALITY};
use crate::history::{CUTOFF_DATE, Generator, OutcomeRecord, SynthConfig};

/// Counts of what `write_dataset` wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DatasetSummary {
    pub n_device_models: u64,
    pub n_providers: u64,
    pub n_consultants: u64,
    pub n_patients: u64,
    pub n_procedures: u64,
    pub n_devices: u64,
    pub n_removals: u64,
    pub n_deaths: u64,
    pub n_devices_expired_at_implant: u64,
    pub n_devices_not_in_register: u64,
    pub n_injected_device_model_implants: u64,
    pub n_injected_provider_procedures: u64,
    pub n_faulty_lot_implants: u64,
}

/// The contents of `truth.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Truth {
    pub seed: u64,
    pub procedures: u64,
    pub devices: u64,
    pub patients: u64,
    pub cutoff_date: chrono::NaiveDate,
    pub injected: InjectedTruth,
    /// Keyed by procedure kind (`hip`, `knee`, `breast`, `cochlear`, `pacemaker`, `mesh`).
    pub baseline: BTreeMap<&'static str, BaselineHazard>,
    pub model_frailty_sigma: f64,
    pub provider_frailty_sigma: f64,
    /// Every device model's revision hazard multiplier (its frailty; the injected model's is
    /// the injected hazard ratio), by UDI-DI. A construct's hazard multiplies those of its
    /// models, so a model above 1 genuinely revises more often than its class's average and
    /// an alert on it is a detection, not a false alert.
    pub device_model_hazard_multipliers: BTreeMap<String, f64>,
    pub mortality: Gompertz,
    pub summary: DatasetSummary,
}

/// The three injected signals, as written under `injected` in `truth.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InjectedTruth {
    pub device_model: InjectedDeviceModel,
    pub provider: InjectedProvider,
    pub faulty_lot: InjectedFaultyLot,
}

/// A device model whose constructs have `hazard_ratio` times the revision hazard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InjectedDeviceModel {
    pub udi_di: String,
    pub device_type: &'static str,
    pub hazard_ratio: f64,
    pub implants: u64,
}

/// A provider whose procedures have `hazard_ratio` times the revision hazard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InjectedProvider {
    pub ods_code: String,
    pub hazard_ratio: f64,
    pub procedures: u64,
}

/// A lot whose constructs have `hazard_ratio` times the revision hazard for the first
/// `window_years` after implant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InjectedFaultyLot {
    pub udi_di: String,
    pub device_type: &'static str,
    pub lot: String,
    pub hazard_ratio: f64,
    pub window_years: f64,
    pub manufactured_from: chrono::NaiveDate,
    pub manufactured_until: chrono::NaiveDate,
    pub implants: u64,
}

/// Generates the dataset for `config` and writes it into `dir`, which must exist.
/// Files already there are overwritten.
pub fn write_dataset(dir: &Path, config: &SynthConfig) -> Result<DatasetSummary, SynthError> {
    let generator = Generator::new(*config);
    let catalogue = generator.catalogue();
    let mut summary = DatasetSummary {
        n_device_models: catalogue.device_models.len() as u64,
        n_providers: catalogue.providers.len() as u64,
        n_consultants: catalogue.consultants.len() as u64,
        ..DatasetSummary::default()
    };
    write_catalogue(dir, &generator)?;

    let procedures_path = dir.join("procedures.ndjson");
    let outcomes_path = dir.join("outcomes.ndjson");
    let mut procedures = create(&procedures_path)?;
    let mut outcomes = create(&outcomes_path)?;
    let injected_model_index = catalogue.injected_device_model;
    let injected_provider = catalogue.injected_provider().ods_code.clone();
    for history in generator.patient_histories() {
        let history = history?;
        summary.n_patients += 1;
        for record in &history.procedures {
            write_json_line(&mut procedures, &procedures_path, record)?;
            summary.n_procedures += 1;
            summary.n_devices += record.devices.len() as u64;
            if record.procedure.provider == injected_provider {
                summary.n_injected_provider_procedures += 1;
            }
            for truth in &record.device_truth {
                summary.n_devices_expired_at_implant += u64::from(truth.expired_at_implant);
                summary.n_devices_not_in_register += u64::from(truth.not_in_register);
                summary.n_faulty_lot_implants += u64::from(truth.in_faulty_lot);
                summary.n_injected_device_model_implants +=
                    u64::from(truth.model_index as usize == injected_model_index);
            }
        }
        for outcome in &history.outcomes {
            write_json_line(&mut outcomes, &outcomes_path, outcome)?;
            match outcome {
                OutcomeRecord::Removal { .. } => summary.n_removals += 1,
                OutcomeRecord::Death { .. } => summary.n_deaths += 1,
            }
        }
    }
    finish(procedures, &procedures_path)?;
    finish(outcomes, &outcomes_path)?;

    let truth = truth(&generator, &summary);
    let truth_path = dir.join("truth.json");
    let mut truth_file = create(&truth_path)?;
    serde_json::to_writer_pretty(&mut truth_file, &truth).map_err(|source| SynthError::Json {
        path: truth_path.clone(),
        source,
    })?;
    truth_file
        .write_all(b"\n")
        .map_err(|source| io_error(&truth_path, source))?;
    finish(truth_file, &truth_path)?;
    Ok(summary)
}

/// What was injected and the baseline model, for `truth.json`.
pub fn truth(generator: &Generator, summary: &DatasetSummary) -> Truth {
    let catalogue = generator.catalogue();
    let model = catalogue.injected_device_model();
    let provider = catalogue.injected_provider();
    let faulty_lot = generator.faulty_lot();
    let faulty_model = catalogue.faulty_lot_model();
    Truth {
        seed: generator.config().seed,
        procedures: summary.n_procedures,
        devices: summary.n_devices,
        patients: summary.n_patients,
        cutoff_date: CUTOFF_DATE,
        injected: InjectedTruth {
            device_model: InjectedDeviceModel {
                udi_di: model.udi_di.as_str().to_string(),
                device_type: model.device_type.as_str(),
                hazard_ratio: INJECTED_DEVICE_MODEL_HAZARD_RATIO,
                implants: summary.n_injected_device_model_implants,
            },
            provider: InjectedProvider {
                ods_code: provider.ods_code.as_str().to_string(),
                hazard_ratio: INJECTED_PROVIDER_HAZARD_RATIO,
                procedures: summary.n_injected_provider_procedures,
            },
            faulty_lot: InjectedFaultyLot {
                udi_di: faulty_model.udi_di.as_str().to_string(),
                device_type: faulty_model.device_type.as_str(),
                lot: faulty_lot.lot.clone(),
                hazard_ratio: faulty_lot.hazard_ratio,
                window_years: faulty_lot.window_years,
                manufactured_from: faulty_lot.manufactured_from,
                manufactured_until: faulty_lot.manufactured_until,
                implants: summary.n_faulty_lot_implants,
            },
        },
        baseline: generator
            .baseline_hazards()
            .iter()
            .map(|baseline| (baseline.procedure_kind, baseline.clone()))
            .collect(),
        model_frailty_sigma: MODEL_FRAILTY_SIGMA,
        provider_frailty_sigma: PROVIDER_FRAILTY_SIGMA,
        device_model_hazard_multipliers: catalogue
            .device_models
            .iter()
            .map(|m| (m.udi_di.as_str().to_string(), m.hazard_multiplier))
            .collect(),
        mortality: MORTALITY,
        summary: summary.clone(),
    }
}

fn write_catalogue(dir: &Path, generator: &Generator) -> Result<(), SynthError> {
    let catalogue = generator.catalogue();

    let path = dir.join("devices.csv");
    let mut writer = csv_writer(&path)?;
    let csv_error = |source| SynthError::Csv {
        path: path.clone(),
        source,
    };
    writer
        .write_record([
            "udi_di",
            "manufacturer",
            "brand",
            "model",
            "device_type",
            "risk_class",
            "registry",
        ])
        .map_err(csv_error)?;
    for model in &catalogue.device_models {
        writer
            .write_record([
                model.udi_di.as_str(),
                &model.manufacturer,
                &model.brand,
                &model.model,
                model.device_type.as_str(),
                model.risk_class.as_str(),
                model.registry.as_str(),
            ])
            .map_err(csv_error)?;
    }
    writer.flush().map_err(|source| io_error(&path, source))?;

    let path = dir.join("providers.csv");
    let mut writer = csv_writer(&path)?;
    let csv_error = |source| SynthError::Csv {
        path: path.clone(),
        source,
    };
    writer
        .write_record(["ods_code", "name", "region"])
        .map_err(csv_error)?;
    for provider in &catalogue.providers {
        writer
            .write_record([provider.ods_code.as_str(), &provider.name, provider.region])
            .map_err(csv_error)?;
    }
    writer.flush().map_err(|source| io_error(&path, source))?;

    let path = dir.join("consultants.csv");
    let mut writer = csv_writer(&path)?;
    let csv_error = |source| SynthError::Csv {
        path: path.clone(),
        source,
    };
    writer
        .write_record([
            "gmc_number",
            "family_name",
            "given_name",
            "specialty",
            "provider_ods",
        ])
        .map_err(csv_error)?;
    for consultant in &catalogue.consultants {
        writer
            .write_record([
                consultant.gmc_number.as_str(),
                &consultant.family_name,
                &consultant.given_name,
                consultant.specialty.as_str(),
                catalogue.providers[consultant.provider_index]
                    .ods_code
                    .as_str(),
            ])
            .map_err(csv_error)?;
    }
    writer.flush().map_err(|source| io_error(&path, source))?;
    Ok(())
}

fn csv_writer(path: &Path) -> Result<csv::Writer<File>, SynthError> {
    csv::Writer::from_path(path).map_err(|source| SynthError::Csv {
        path: path.to_path_buf(),
        source,
    })
}

fn create(path: &Path) -> Result<BufWriter<File>, SynthError> {
    let file = File::create(path).map_err(|source| io_error(path, source))?;
    Ok(BufWriter::with_capacity(1 << 20, file))
}

fn write_json_line(
    writer: &mut BufWriter<File>,
    path: &Path,
    value: &impl Serialize,
) -> Result<(), SynthError> {
    serde_json::to_writer(&mut *writer, value).map_err(|source| SynthError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    writer
        .write_all(b"\n")
        .map_err(|source| io_error(path, source))
}

fn finish(mut writer: BufWriter<File>, path: &Path) -> Result<(), SynthError> {
    writer.flush().map_err(|source| io_error(path, source))
}

fn io_error(path: &Path, source: std::io::Error) -> SynthError {
    SynthError::Io {
        path: PathBuf::from(path),
        source,
    }
}
