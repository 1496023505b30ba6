//! `mdor load DIR`: loads a dataset directory as written by `mdor synth` (providers,
//! consultants, device register, procedures, outcomes) through the service's bulk path.
//!
//! Procedure lines are parsed on a blocking thread while the previous batch is written, so
//! parsing and storage overlap on two cores. Every rejected line is written with its line
//! number and errors to `load-rejects.ndjson` in the dataset directory; nothing is dropped
//! silently.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use serde::Deserialize;

use mdor_domain::record::{RemovalKind, Submission};
use mdor_domain::{GmcNumber, NhsNumber, OdsCode, UdiDi};
use mdor_service::{
    BulkOutcomeRecord, Ctx, DeviceModelId, LoadSummary, NewOrganisation, OrganisationId,
    OrganisationKind,
};
use mdor_web::dto::ProcedureBody;

/// Procedures per transaction: large enough to amortise commits, small enough to bound memory.
const BATCH: usize = 10_000;

#[derive(Deserialize)]
struct ProviderRow {
    ods_code: String,
    name: String,
    region: String,
}

#[derive(Deserialize)]
struct ConsultantRow {
    gmc_number: String,
    family_name: String,
    given_name: String,
    specialty: String,
    provider_ods: String,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutcomeLine {
    Removal {
        kind: String,
        provider: String,
        local_record_id: String,
        device_index: i64,
        date: NaiveDate,
        reason: Option<String>,
        revising_provider: String,
    },
    Death {
        nhs_number: String,
        date: NaiveDate,
    },
}

/// Loads everything in `dir`; returns the totals.
pub async fn load_dataset(ctx: &Ctx, dir: &Path) -> anyhow::Result<LoadSummary> {
    let providers = read_providers(&dir.join("providers.csv"))?;
    let organisations = mdor_service::ensure_organisations(ctx, &providers).await?;
    load_consultants(ctx, &dir.join("consultants.csv"), &organisations).await?;
    let file = File::open(dir.join("devices.csv")).context("opening devices.csv")?;
    mdor_service::load_register_csv(ctx, file)
        .await
        .map_err(describe)
        .context("loading devices.csv")?;
    let register_udis = read_register_udis(&dir.join("devices.csv"))?;
    let register = mdor_service::register_index(ctx, &register_udis).await?;

    let rejects_path = dir.join("load-rejects.ndjson");
    let mut rejects =
        BufWriter::new(File::create(&rejects_path).context("creating load-rejects.ndjson")?);
    let mut summary = LoadSummary::default();
    // An initial load builds its secondary indexes and foreign keys once, at the end; they
    // are rebuilt whether the procedures load or fail, and start-up rebuilds them if this
    // process is killed first.
    let deferred = mdor_service::defer_load_schema(ctx).await?;
    let loaded = load_procedures(
        ctx,
        dir,
        &organisations,
        &register,
        &mut rejects,
        &mut summary,
    )
    .await;
    if deferred {
        let started = std::time::Instant::now();
        let restored = mdor_service::restore_load_schema(ctx)
            .await
            .map_err(describe)
            .context("rebuilding the indexes and foreign keys deferred for the load")?;
        tracing::info!(
            restored,
            seconds = started.elapsed().as_secs_f64(),
            "deferred indexes and foreign keys rebuilt"
        );
    }
    let n_rejected = loaded?;
    let outcomes_started = std::time::Instant::now();

    let outcomes = read_outcomes(&dir.join("outcomes.ndjson"))?;
    for chunk in outcomes.chunks(BATCH * 5) {
        let records: Vec<BulkOutcomeRecord> = chunk.iter().map(|(_, r)| r.clone()).collect();
        let report = mdor_service::bulk_outcomes(ctx, &organisations, &records)
            .await
            .map_err(describe)?;
        for &i in &report.unresolved {
            writeln!(
                rejects,
                "{}",
                serde_json::json!({ "file": "outcomes.ndjson", "line": chunk[i].0, "errors": "names no stored implant or patient" })
            )?;
        }
        for &i in &report.already_recorded {
            writeln!(
                rejects,
                "{}",
                serde_json::json!({ "file": "outcomes.ndjson", "line": chunk[i].0, "errors": "the implant already has a recorded removal; kept the stored one" })
            )?;
        }
        summary.unresolved_outcomes += report.unresolved.len() as u64;
        summary.duplicate_outcomes += report.already_recorded.len() as u64;
        for record in &records {
            match record {
                BulkOutcomeRecord::Removal { .. } => summary.removals += 1,
                BulkOutcomeRecord::Death { .. } => summary.deaths += 1,
            }
        }
    }
    tracing::info!(
        removals = summary.removals,
        deaths = summary.deaths,
        seconds = outcomes_started.elapsed().as_secs_f64(),
        "outcomes loaded"
    );
    rejects.flush()?;
    if n_rejected > 0 {
        tracing::warn!(rejected = n_rejected, file = %rejects_path.display(), "some procedure lines were rejected");
    }
    Ok(summary)
}

/// Loads `procedures.ndjson` in batches, parsing the next batch while the previous one is
/// written; returns how many lines were rejected (each written to `rejects`).
async fn load_procedures(
    ctx: &Ctx,
    dir: &Path,
    organisations: &HashMap<String, OrganisationId>,
    register: &HashMap<String, DeviceModelId>,
    rejects: &mut BufWriter<File>,
    summary: &mut LoadSummary,
) -> anyhow::Result<u64> {
    let today = ctx.today();
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<anyhow::Result<ParsedBatch>>(2);
    let procedures_path = dir.join("procedures.ndjson");
    let parser =
        tokio::task::spawn_blocking(move || parse_procedures(&procedures_path, today, &sender));
    let mut n_rejected = 0u64;
    let started = std::time::Instant::now();
    while let Some(batch) = receiver.recv().await {
        let batch = batch?;
        for (line, problem) in &batch.rejected {
            writeln!(
                rejects,
                "{}",
                serde_json::json!({ "file": "procedures.ndjson", "line": line, "errors": problem })
            )?;
        }
        n_rejected += batch.rejected.len() as u64;
        let lines = batch.lines;
        let outcome = mdor_service::bulk_load(ctx, organisations, register, batch.submissions)
            .await
            .map_err(describe)?;
        for &i in outcome.duplicates.iter() {
            writeln!(
                rejects,
                "{}",
                serde_json::json!({ "file": "procedures.ndjson", "line": lines[i], "errors": "duplicate provider and local_record_id; not loaded again" })
            )?;
        }
        for &i in outcome.patient_mismatches.iter() {
            writeln!(
                rejects,
                "{}",
                serde_json::json!({ "file": "procedures.ndjson", "line": lines[i], "errors": "nhs_number is stored with a different date_of_birth" })
            )?;
        }
        summary.add(&outcome);
        tracing::info!(
            procedures = summary.procedures,
            seconds = started.elapsed().as_secs_f64(),
            "procedures loaded"
        );
    }
    parser.await.context("procedure parser stopped")??;
    Ok(n_rejected)
}

struct ParsedBatch {
    submissions: Vec<Submission>,
    /// The file line of each submission, for reports.
    lines: Vec<usize>,
    rejected: Vec<(usize, serde_json::Value)>,
}

fn parse_procedures(
    path: &Path,
    today: NaiveDate,
    sender: &tokio::sync::mpsc::Sender<anyhow::Result<ParsedBatch>>,
) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut batch = ParsedBatch {
        submissions: Vec::with_capacity(BATCH),
        lines: Vec::with_capacity(BATCH),
        rejected: Vec::new(),
    };
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line_number = index + 1;
        let line = line.with_context(|| format!("reading procedures.ndjson line {line_number}"))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<ProcedureBody>(&line) {
            Ok(body) => match body.into_submission(today) {
                Ok(submission) => {
                    batch.submissions.push(submission);
                    batch.lines.push(line_number);
                }
                Err(errors) => batch
                    .rejected
                    .push((line_number, serde_json::to_value(&errors)?)),
            },
            Err(e) => batch
                .rejected
                .push((line_number, serde_json::Value::String(e.to_string()))),
        }
        if batch.submissions.len() == BATCH {
            let full = std::mem::replace(
                &mut batch,
                ParsedBatch {
                    submissions: Vec::with_capacity(BATCH),
                    lines: Vec::with_capacity(BATCH),
                    rejected: Vec::new(),
                },
            );
            if sender.blocking_send(Ok(full)).is_err() {
                return Ok(());
            }
        }
    }
    let _ = sender.blocking_send(Ok(batch));
    Ok(())
}

fn read_providers(path: &Path) -> anyhow::Result<Vec<NewOrganisation>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let mut providers = Vec::new();
    for (index, row) in reader.deserialize::<ProviderRow>().enumerate() {
        let row = row.with_context(|| format!("providers.csv line {}", index + 2))?;
        let ods_code = OdsCode::parse(&row.ods_code)
            .with_context(|| format!("providers.csv line {}", index + 2))?;
        providers.push(NewOrganisation {
            ods_code,
            name: row.name,
            kind: OrganisationKind::Provider,
            region: Some(row.region),
        });
    }
    Ok(providers)
}

async fn load_consultants(
    ctx: &Ctx,
    path: &Path,
    organisations: &HashMap<String, mdor_service::OrganisationId>,
) -> anyhow::Result<()> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let mut consultants = Vec::new();
    for (index, row) in reader.deserialize::<ConsultantRow>().enumerate() {
        let at = || format!("consultants.csv line {}", index + 2);
        let row = row.with_context(at)?;
        let gmc_number = GmcNumber::parse(&row.gmc_number).with_context(at)?;
        let Some(&organisation) = organisations.get(&row.provider_ods) else {
            bail!(
                "{}: provider_ods {} is not in providers.csv",
                at(),
                row.provider_ods
            );
        };
        consultants.push(mdor_service::NewConsultant {
            gmc_number,
            family_name: Some(row.family_name),
            given_name: Some(row.given_name),
            specialty: Some(row.specialty),
            organisation: Some(organisation),
        });
    }
    mdor_service::upsert_consultants(ctx, &consultants)
        .await
        .map_err(describe)?;
    Ok(())
}

fn read_register_udis(path: &Path) -> anyhow::Result<Vec<UdiDi>> {
    let mut reader = csv::Reader::from_path(path)?;
    let mut udis = Vec::new();
    for row in reader.records() {
        let row = row?;
        if let Some(Ok(udi)) = row.get(0).map(UdiDi::parse) {
            udis.push(udi);
        }
    }
    Ok(udis)
}

fn read_outcomes(path: &Path) -> anyhow::Result<Vec<(usize, BulkOutcomeRecord)>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut records = Vec::new();
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line_number = index + 1;
        let at = || format!("outcomes.ndjson line {line_number}");
        let line = line.with_context(at)?;
        if line.trim().is_empty() {
            continue;
        }
        let record = match serde_json::from_str::<OutcomeLine>(&line).with_context(at)? {
            OutcomeLine::Removal {
                kind,
                provider,
                local_record_id,
                device_index,
                date,
                reason,
                revising_provider,
            } => BulkOutcomeRecord::Removal {
                provider: OdsCode::parse(&provider).with_context(at)?,
                local_record_id,
                device_index,
                kind: RemovalKind::parse(&kind)
                    .with_context(|| format!("{}: kind '{kind}'", at()))?,
                date,
                reason,
                revising_provider: OdsCode::parse(&revising_provider).with_context(at)?,
            },
            OutcomeLine::Death { nhs_number, date } => BulkOutcomeRecord::Death {
                nhs_number: NhsNumber::parse(&nhs_number).with_context(at)?,
                date,
            },
        };
        records.push((line_number, record));
    }
    Ok(records)
}

/// A service error with its validation details, for the operator's terminal.
pub fn describe(error: mdor_service::ServiceError) -> anyhow::Error {
    match error {
        mdor_service::ServiceError::Invalid(problems) => {
            let lines: Vec<String> = problems
                .iter()
                .take(20)
                .map(|p| format!("{}: {}", p.field, p.message))
                .collect();
            anyhow::anyhow!("{} problem(s):\n  {}", problems.len(), lines.join("\n  "))
        }
        // Wrapped, not formatted: `main` prints the whole source chain with `{:#}`, so
        // "storage failure" arrives with its cause.
        other => anyhow::Error::new(other),
    }
}
