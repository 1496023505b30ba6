//! `mdor submit FILE`: the operator submits a provider's file through the same service path
//! as `POST /api/v1/submissions`, processed in this process with progress on standard error;
//! and `mdor synth --submission-provider`, which turns a synthetic dataset into such a file.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

use mdor_domain::OdsCode;
use mdor_service::{Ctx, SubmissionFormat, SubmissionJob, SubmissionRequest, Submitter};

use crate::load::describe;

pub struct Request {
    pub file: PathBuf,
    pub registry: String,
    pub version: Option<String>,
    pub provider: String,
    pub format: Option<String>,
    pub report: Option<PathBuf>,
}

pub async fn run(ctx: &Ctx, request: &Request) -> anyhow::Result<()> {
    let provider = OdsCode::parse(&request.provider).context("--provider")?;
    let format = match request.format.as_deref() {
        Some(text) => SubmissionFormat::parse(text)
            .with_context(|| format!("--format must be ndjson or csv (got {text})"))?,
        None if request
            .file
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv")) =>
        {
            SubmissionFormat::Csv
        }
        None => SubmissionFormat::Ndjson,
    };
    let submitter = Submitter::operator_for(ctx, &provider)
        .await
        .map_err(describe)
        .with_context(|| format!("provider {provider}"))?;
    let started = std::time::Instant::now();
    let progress = move |job: &SubmissionJob| {
        tracing::info!(
            job = job.id.0,
            done = job.records_done,
            total = job.total_records.unwrap_or_default(),
            rejected = job.counts.rejected,
            seconds = started.elapsed().as_secs_f64(),
            "submission progress"
        );
    };
    let job = mdor_service::submit_file(
        ctx,
        &submitter,
        &SubmissionRequest {
            registry: request.registry.clone(),
            version: request.version.clone(),
            format,
        },
        &request.file,
        &progress,
    )
    .await
    .map_err(describe)?;
    if let Some(path) = &request.report {
        write_report(ctx, &job, path).await?;
    }
    crate::print(&format!(
        "{}\nsubmitted in {:.1} s\n",
        serde_json::to_string_pretty(&summary(&job))?,
        started.elapsed().as_secs_f64()
    ));
    if let Some(failure) = &job.failure {
        bail!("submission {} failed: {failure}", job.id);
    }
    Ok(())
}

fn summary(job: &SubmissionJob) -> Value {
    json!({
        "submission": job.id.0,
        "provider": job.organisation_ods,
        "registry": job.registry,
        "dataset_version": job.dataset_version,
        "state": job.state,
        "total_records": job.total_records,
        "records_done": job.records_done,
        "accepted": job.counts.accepted,
        "accepted_with_warnings": job.counts.accepted_with_warnings,
        "rejected": job.counts.rejected,
        "created": job.counts.created,
        "corrected": job.counts.corrected,
        "unchanged": job.counts.unchanged,
    })
}

async fn write_report(ctx: &Ctx, job: &SubmissionJob, path: &Path) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(file);
    let mut after = 0;
    loop {
        let page = mdor_service::operator_submission_report(ctx, job.id, after, 10_000)
            .await
            .map_err(describe)?;
        for record in &page {
            let messages: Value = record
                .messages
                .as_deref()
                .and_then(|m| serde_json::from_str(m).ok())
                .unwrap_or(Value::Null);
            writeln!(
                out,
                "{}",
                json!({
                    "line": record.line,
                    "local_record_id": record.local_record_id,
                    "outcome": record.outcome,
                    "effect": record.effect,
                    "procedure_id": record.procedure,
                    "messages": messages,
                })
            )?;
        }
        match page.last() {
            Some(last) if page.len() == 10_000 => after = last.line,
            _ => break,
        }
    }
    out.flush()?;
    Ok(())
}

/// Writes `dir/submission.ndjson` from `dir/procedures.ndjson`: each synthetic procedure as an
/// `mdor_core` 1.2 record from `provider` (local record ids stay unique: they start with the
/// original provider's code). Returns how many records were written.
pub fn write_synthetic_submission(dir: &Path, provider: &str) -> anyhow::Result<u64> {
    let provider = OdsCode::parse(provider).context("--submission-provider")?;
    let input = File::open(dir.join("procedures.ndjson")).context("opening procedures.ndjson")?;
    let output =
        File::create(dir.join("submission.ndjson")).context("creating submission.ndjson")?;
    let mut out = BufWriter::new(output);
    let mut written = 0;
    for (index, line) in BufReader::new(input).lines().enumerate() {
        let line = line.with_context(|| format!("procedures.ndjson line {}", index + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(&line)
            .with_context(|| format!("procedures.ndjson line {}", index + 1))?;
        let record = core_record(&value, provider.as_str());
        serde_json::to_writer(&mut out, &record)?;
        out.write_all(b"\n")?;
        written += 1;
    }
    out.flush()?;
    Ok(written)
}

fn core_record(synthetic: &Value, provider: &str) -> Value {
    let p = &synthetic["procedure"];
    let mut procedure = Map::new();
    for (to, from) in [
        ("local_record_id", "local_record_id"),
        ("consultant", "consultant"),
        ("date", "procedure_date"),
        ("opcs4_code", "opcs4_code"),
        ("snomed_ct_id", "snomed_ct_id"),
        ("laterality", "laterality"),
        ("indication", "indication"),
    ] {
        if !p[from].is_null() {
            procedure.insert(to.into(), p[from].clone());
        }
    }
    procedure.insert("provider".into(), json!(provider));
    procedure.insert("action".into(), json!("implant"));
    procedure.insert("urgency".into(), json!("elective"));
    let devices: Vec<Value> = synthetic["devices"]
        .as_array()
        .map(|devices| {
            devices
                .iter()
                .map(|d| {
                    let mut device = Map::new();
                    match d.get("scan") {
                        Some(scan) => {
                            device.insert("udi".into(), scan.clone());
                        }
                        None => {
                            for field in ["udi_di", "lot", "serial", "expiry", "manufactured"] {
                                if !d[field].is_null() {
                                    device.insert(field.into(), d[field].clone());
                                }
                            }
                        }
                    }
                    device.insert("role".into(), json!("implanted"));
                    Value::Object(device)
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "patient": synthetic["patient"],
        "procedure": procedure,
        "devices": devices,
    })
}
