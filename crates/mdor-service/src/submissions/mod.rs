//! Bulk submission: a provider uploads a file of procedures (NDJSON or CSV, one procedure per
//! record) for one registry's dataset; the file is spooled to disk as it arrives, and a job
//! validates every record with the dataset engine and commits valid ones in chunks through
//! the bulk path. Rejected records go to the provider's quarantine with their errors, to be
//! corrected and sent again; a record sent again with the same local record id changes
//! nothing when identical and becomes a new version of the procedure when not.
//!
//! Lifecycle (see `docs/submissions.md`): `begin_submission` → `SubmissionUpload::write` …
//! → `finish` creates a queued job → the worker (`run_submission_worker`, started by
//! `mdor serve`) or the operator's `mdor submit` runs `process_submission`. Each chunk commits
//! with the job's progress, so a process killed at any point resumes from the last committed
//! chunk when the server starts again, and no record is written twice or half-written.

mod mapping;
mod reader;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use mdor_domain::OdsCode;
use mdor_domain::dataset::{
    DatasetCatalogue, DatasetDefinition, DatasetVersion, FixedContext, RecordInput,
    ValidationReport,
};
use mdor_domain::identifiers::{RegistryCode, Slug};
use mdor_domain::record::FieldError;
use mdor_domain::udi::UdiDi;
use mdor_store::{
    ChunkRecord, ChunkRecordBody, DeviceModelId, FieldCipher, NewSubmissionJob, OrganisationId,
    OrganisationKind, PackedRecord, ProcedureId, ProcedureSourceVersion, QuarantineEntry,
    QuarantineQuery, StoreError, SubmissionChunk, SubmissionFormat, SubmissionJob, SubmissionJobId,
    SubmissionRecord, SubmissionRecordId, SubmissionState, TokenId,
};

use crate::auth::{Credential, Principal};
use crate::ctx::Ctx;
use crate::error::{ServiceError, error_chain};
use crate::policy::{self, Action, Relationship};
use crate::procedures::prepare_with;

pub use mapping::NAME_NOT_COLLECTED;
pub use reader::MAX_RECORD_BYTES;

/// How submissions are received and processed; part of the service context.
#[derive(Debug)]
pub struct SubmissionSettings {
    /// Where uploads are spooled while they arrive and until their job completes.
    pub data_dir: PathBuf,
    /// The largest upload accepted, in bytes.
    pub max_upload_bytes: u64,
    /// Records per chunk (one transaction each).
    pub chunk_records: usize,
    /// The dataset definitions records are validated against.
    pub catalogue: Arc<DatasetCatalogue>,
    /// Wakes the worker when a job is queued.
    wakeup: Notify,
}

/// 1 GiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 1 << 30;
/// Each commit rewrites the index pages its records touch, so larger chunks write less per
/// record: 1,000,000 records took 96 s in chunks of 5,000 and 89 s in chunks of 10,000 on
/// SQLite (2026-12-04, `docs/benchmarks.md`). Memory grows with it: up to four chunks are
/// in flight (one being checked, two queued, one being committed), 435-440 MB at 10,000.
pub const DEFAULT_CHUNK_RECORDS: usize = 10_000;

/// Checked chunks waiting for the committer, besides the one the reader is checking or
/// blocked handing over.
const QUEUED_CHUNKS: usize = 2;

/// The most waiting chunks one transaction commits.
const CHUNKS_PER_COMMIT: usize = 2;

impl SubmissionSettings {
    pub fn new(
        data_dir: PathBuf,
        max_upload_bytes: u64,
        chunk_records: usize,
        catalogue: Arc<DatasetCatalogue>,
    ) -> SubmissionSettings {
        SubmissionSettings {
            data_dir,
            max_upload_bytes,
            chunk_records: chunk_records.max(1),
            catalogue,
            wakeup: Notify::new(),
        }
    }
}

impl Default for SubmissionSettings {
    /// Spools under the system's temporary directory and validates against the shipped
    /// definitions (which a test loads, so the fallback to an empty catalogue never happens).
    fn default() -> Self {
        SubmissionSettings::new(
            std::env::temp_dir().join("mdor-submissions"),
            DEFAULT_MAX_UPLOAD_BYTES,
            DEFAULT_CHUNK_RECORDS,
            Arc::new(crate::registries::shipped_catalogue().unwrap_or_default()),
        )
    }
}

/// Who submits: a provider's token, or the operator acting for a provider from the CLI.
#[derive(Debug, Clone)]
pub struct Submitter {
    organisation: OrganisationId,
    organisation_ods: String,
    token: Option<TokenId>,
    submitted_by: String,
}

impl Submitter {
    /// A provider submitting for itself through the API.
    pub fn from_principal(principal: &Principal) -> Result<Submitter, ServiceError> {
        policy::authorize(
            principal,
            Action::CreateSubmission,
            Relationship::OwnOrganisation,
        )?;
        Ok(Submitter::acting_for(principal))
    }

    /// The principal as a submitter for its own organisation, once the policy allowed it.
    fn acting_for(principal: &Principal) -> Submitter {
        Submitter {
            organisation: principal.organisation,
            organisation_ods: principal.organisation_ods.clone(),
            token: principal.token(),
            submitted_by: match &principal.credential {
                Credential::Token(token) => format!("token {token}"),
                Credential::Session { account, .. } => format!("account {account}"),
            },
        }
    }

    /// The organisation the records must name as their provider.
    pub fn organisation_ods(&self) -> &str {
        &self.organisation_ods
    }

    /// The operator submitting a provider's file from the command line.
    pub async fn operator_for(ctx: &Ctx, provider: &OdsCode) -> Result<Submitter, ServiceError> {
        let organisation = ctx
            .store
            .organisation_by_ods(provider)
            .await?
            .filter(|o| o.kind == OrganisationKind::Provider)
            .ok_or(ServiceError::NotFound {
                what: "provider organisation",
            })?;
        Ok(Submitter {
            organisation: organisation.id,
            organisation_ods: organisation.ods_code,
            token: None,
            submitted_by: "operator".into(),
        })
    }
}

/// What is being submitted.
#[derive(Debug, Clone)]
pub struct SubmissionRequest {
    pub registry: String,
    /// The dataset version; the registry's latest when absent.
    pub version: Option<String>,
    pub format: SubmissionFormat,
}

/// An upload being spooled. Dropping it before `finish` deletes the partial file.
pub struct SubmissionUpload {
    /// Written synchronously: a write lands in the page cache in microseconds, and the one
    /// slow step, the final fsync, runs on a blocking thread.
    file: Option<std::fs::File>,
    path: PathBuf,
    bytes: u64,
    max_bytes: u64,
    submitter: Submitter,
    registry: RegistryCode,
    version: DatasetVersion,
    format: SubmissionFormat,
    resolves_quarantine: Option<SubmissionRecordId>,
}

/// Checks the request and opens a spool file for the upload.
pub async fn begin_submission(
    ctx: &Ctx,
    submitter: &Submitter,
    request: &SubmissionRequest,
) -> Result<SubmissionUpload, ServiceError> {
    let definition = dataset(ctx, &request.registry, request.version.as_deref())?;
    open_upload(ctx, submitter, definition, request.format, None).await
}

impl SubmissionUpload {
    /// Appends a piece of the body; fails with `TooLarge` (and deletes the spool) past the
    /// limit.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), ServiceError> {
        self.bytes += bytes.len() as u64;
        if self.bytes > self.max_bytes {
            self.discard();
            return Err(ServiceError::TooLarge {
                limit: self.max_bytes,
            });
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io_failure("spool closed"))?;
        file.write_all(bytes)
            .map_err(|e| io_failure(&format!("writing the upload: {e}")))
    }

    /// Makes the spooled file durable and queues its job; the worker is woken.
    pub async fn finish(mut self, ctx: &Ctx) -> Result<SubmissionJob, ServiceError> {
        let id = self.finish_as(ctx, SubmissionState::Queued).await?;
        ctx.submissions.wakeup.notify_one();
        job_or_missing(ctx, id).await
    }

    async fn finish_as(
        &mut self,
        ctx: &Ctx,
        state: SubmissionState,
    ) -> Result<SubmissionJobId, ServiceError> {
        let mut file = self.file.take().ok_or_else(|| io_failure("spool closed"))?;
        tokio::task::spawn_blocking(move || file.flush().and_then(|()| file.sync_all()))
            .await
            .map_err(|e| io_failure(&format!("saving the upload: {e}")))?
            .map_err(|e| io_failure(&format!("saving the upload: {e}")))?;
        let id = ctx
            .store
            .create_submission_job(&NewSubmissionJob {
                organisation: self.submitter.organisation,
                token: self.submitter.token,
                submitted_by: self.submitter.submitted_by.clone(),
                registry: self.registry.as_str().to_string(),
                dataset_version: self.version.to_string(),
                format: self.format,
                spool_path: self.path.display().to_string(),
                file_bytes: self.bytes,
                state,
                resolves_quarantine: self.resolves_quarantine,
                created_at: ctx.now(),
            })
            .await;
        match id {
            Ok(id) => {
                // The job owns the file now.
                self.path = PathBuf::new();
                Ok(id)
            }
            Err(e) => {
                self.discard();
                Err(e.into())
            }
        }
    }

    fn discard(&mut self) {
        self.file = None;
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
            self.path = PathBuf::new();
        }
    }
}

impl Drop for SubmissionUpload {
    fn drop(&mut self) {
        self.discard();
    }
}

/// Copies a local file into a job and processes it in this process: the operator's
/// `mdor submit`. Progress is reported to `progress` after each chunk.
pub async fn submit_file(
    ctx: &Ctx,
    submitter: &Submitter,
    request: &SubmissionRequest,
    file: &Path,
    progress: &(dyn Fn(&SubmissionJob) + Send + Sync),
) -> Result<SubmissionJob, ServiceError> {
    let mut upload = begin_submission(ctx, submitter, request).await?;
    let mut input = std::fs::File::open(file)
        .map_err(|e| ServiceError::Input(format!("opening {}: {e}", file.display())))?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = input
            .read(&mut buffer)
            .map_err(|e| ServiceError::Input(format!("reading {}: {e}", file.display())))?;
        if n == 0 {
            break;
        }
        upload.write(&buffer[..n]).await?;
    }
    let id = upload.finish_as(ctx, SubmissionState::Processing).await?;
    process_with_progress(ctx, id, progress).await
}

/// Runs a job to its end (or until another process takes it over); returns where it stands.
pub async fn process_submission(
    ctx: &Ctx,
    id: SubmissionJobId,
) -> Result<SubmissionJob, ServiceError> {
    process_with_progress(ctx, id, &|_| {}).await
}

/// Processes queued jobs as they arrive, after resuming those a killed process left
/// unfinished; runs until the process ends. Spool files of uploads that never finished are
/// deleted first.
pub async fn run_submission_worker(ctx: Ctx) {
    remove_abandoned_uploads(&ctx.submissions.data_dir);
    match ctx
        .store
        .submission_jobs_in_state(SubmissionState::Processing)
        .await
    {
        Ok(ids) => {
            for id in ids {
                tracing::info!(job = id.0, "resuming an interrupted submission");
                log_failure(id, process_submission(&ctx, id).await);
            }
        }
        Err(e) => tracing::error!(error = %error_chain(&e), "listing interrupted submissions"),
    }
    loop {
        match ctx
            .store
            .submission_jobs_in_state(SubmissionState::Queued)
            .await
        {
            Ok(ids) => {
                for id in ids {
                    log_failure(id, process_submission(&ctx, id).await);
                }
            }
            Err(e) => tracing::error!(error = %error_chain(&e), "listing queued submissions"),
        }
        // Also polls, for jobs queued by another process on the same database.
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            ctx.submissions.wakeup.notified(),
        )
        .await;
    }
}

/// A job, if the caller may see it: its own organisation's, or any for an administrator (a
/// job's state and counts name no patient).
#[tracing::instrument(skip_all, fields(job = id.0))]
pub async fn submission_job(
    ctx: &Ctx,
    principal: &Principal,
    id: SubmissionJobId,
) -> Result<SubmissionJob, ServiceError> {
    visible_job(ctx, principal, id, Action::ReadSubmission).await
}

/// The job if the policy lets the principal do `action` on it; another organisation's job
/// it may not reach is `NotFound`, like an absent one.
async fn visible_job(
    ctx: &Ctx,
    principal: &Principal,
    id: SubmissionJobId,
    action: Action,
) -> Result<SubmissionJob, ServiceError> {
    policy::authorize_some(principal, action)?;
    let job = ctx
        .store
        .submission_job(id)
        .await?
        .ok_or(ServiceError::NotFound { what: "submission" })?;
    if !principal.reaches(action, job.organisation) {
        return Err(ServiceError::NotFound { what: "submission" });
    }
    Ok(job)
}

/// The job whose report the caller may read: checked before a streamed report's response
/// starts, under the report's own action (an administrator may follow a job's progress but
/// not read its records' report).
pub async fn submission_report_job(
    ctx: &Ctx,
    principal: &Principal,
    id: SubmissionJobId,
) -> Result<SubmissionJob, ServiceError> {
    visible_job(ctx, principal, id, Action::ReadSubmissionReport).await
}

/// A page of report lines of a visible job after `after_line`.
pub async fn submission_report(
    ctx: &Ctx,
    principal: &Principal,
    id: SubmissionJobId,
    after_line: u64,
    limit: u32,
) -> Result<Vec<SubmissionRecord>, ServiceError> {
    visible_job(ctx, principal, id, Action::ReadSubmissionReport).await?;
    Ok(ctx
        .store
        .submission_records(id, after_line, limit.clamp(1, 10_000))
        .await?)
}

/// A page of any job's report, for the operator's `mdor submit --report` (no principal: an
/// operator task run from the CLI on the registry's own machine).
pub async fn operator_submission_report(
    ctx: &Ctx,
    id: SubmissionJobId,
    after_line: u64,
    limit: u32,
) -> Result<Vec<SubmissionRecord>, ServiceError> {
    Ok(ctx
        .store
        .submission_records(id, after_line, limit.clamp(1, 10_000))
        .await?)
}

/// The caller's own organisation's quarantine, oldest first, keyset-paged.
pub async fn quarantine(
    ctx: &Ctx,
    principal: &Principal,
    include_resolved: bool,
    after: Option<SubmissionRecordId>,
    limit: u32,
) -> Result<Vec<QuarantineEntry>, ServiceError> {
    policy::authorize_some(principal, Action::ReadQuarantine)?;
    let organisation = principal.scope(Action::ReadQuarantine);
    Ok(ctx
        .store
        .quarantine(&QuarantineQuery {
            organisation,
            include_resolved,
            after,
            limit: limit.clamp(1, 1_000),
        })
        .await?)
}

/// Sends a corrected record for a quarantined one: validated against the dataset version the
/// original was submitted under, as a job of one record that resolves the entry when the
/// record is accepted. Returns the job and the record's report line.
pub async fn resubmit_quarantined(
    ctx: &Ctx,
    principal: &Principal,
    id: SubmissionRecordId,
    record: &serde_json::Value,
) -> Result<(SubmissionJob, SubmissionRecord), ServiceError> {
    policy::authorize_some(principal, Action::ResubmitQuarantined)?;
    let entry = ctx
        .store
        .quarantine_entry(id)
        .await?
        .filter(|e| principal.reaches(Action::ResubmitQuarantined, e.organisation))
        .ok_or(ServiceError::NotFound {
            what: "quarantine entry",
        })?;
    if entry.resolved_at.is_some() {
        return Err(ServiceError::Conflict {
            code: "quarantine_entry_resolved",
            field: None,
            message: "this quarantined record was already resolved by a later submission".into(),
        });
    }
    // The entry is the caller's own organisation's: it resubmits for itself.
    let submitter = Submitter::acting_for(principal);
    let definition = dataset(ctx, &entry.registry, Some(&entry.dataset_version))?;
    let mut upload = open_upload(
        ctx,
        &submitter,
        definition,
        SubmissionFormat::Ndjson,
        Some(id),
    )
    .await?;
    let mut line = serde_json::to_vec(record)
        .map_err(|e| ServiceError::Input(format!("serialising a record: {e}")))?;
    line.push(b'\n');
    upload.write(&line).await?;
    let job_id = upload.finish_as(ctx, SubmissionState::Processing).await?;
    let job = process_submission(ctx, job_id).await?;
    let report = ctx
        .store
        .submission_records(job_id, 0, 1)
        .await?
        .into_iter()
        .next()
        .ok_or(ServiceError::NotFound {
            what: "submission record",
        })?;
    Ok((job, report))
}

/// A procedure's raw input and provenance, current version first, for those who may read the
/// procedure's versions (with a stated purpose, or by breaking glass, as `get_procedure`).
pub async fn procedure_history(
    ctx: &Ctx,
    principal: &Principal,
    id: ProcedureId,
    stated: &crate::access::StatedAccess,
) -> Result<Vec<ProcedureSourceVersion>, ServiceError> {
    crate::procedures::read_procedure(ctx, principal, id, Action::ReadProcedureVersions, stated)
        .await?;
    Ok(ctx.store.procedure_history(id).await?)
}

fn dataset<'a>(
    ctx: &'a Ctx,
    registry: &str,
    version: Option<&str>,
) -> Result<&'a DatasetDefinition, ServiceError> {
    let catalogue = &ctx.submissions.catalogue;
    let code = RegistryCode::parse(registry).map_err(|e| {
        ServiceError::invalid("registry", "unknown_dataset", format!("registry {e}"))
    })?;
    let definition = match version {
        None => catalogue.latest(&code),
        Some(text) => {
            let version = DatasetVersion::parse(text).map_err(|e| {
                ServiceError::invalid("version", "unknown_dataset", format!("version: {e}"))
            })?;
            catalogue.get(&code, version)
        }
    };
    definition.ok_or_else(|| {
        let known: Vec<String> = catalogue
            .versions(&code)
            .iter()
            .map(|v| v.to_string())
            .collect();
        let message = if known.is_empty() {
            format!("no dataset is defined for registry {registry}")
        } else {
            format!(
                "registry {registry} has no version {}; defined: {}",
                version.unwrap_or_default(),
                known.join(", ")
            )
        };
        let field = if known.is_empty() {
            "registry"
        } else {
            "version"
        };
        ServiceError::invalid(field, "unknown_dataset", message)
    })
}

async fn open_upload(
    ctx: &Ctx,
    submitter: &Submitter,
    definition: &DatasetDefinition,
    format: SubmissionFormat,
    resolves_quarantine: Option<SubmissionRecordId>,
) -> Result<SubmissionUpload, ServiceError> {
    let dir = &ctx.submissions.data_dir;
    std::fs::create_dir_all(dir)
        .map_err(|e| io_failure(&format!("creating {}: {e}", dir.display())))?;
    let mut name = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut name);
    let path = dir.join(format!(
        "{}.{}{UPLOAD_SUFFIX}",
        hex::encode(name),
        format.as_str()
    ));
    let file = std::fs::File::create(&path)
        .map_err(|e| io_failure(&format!("creating {}: {e}", path.display())))?;
    Ok(SubmissionUpload {
        file: Some(file),
        path,
        bytes: 0,
        max_bytes: ctx.submissions.max_upload_bytes,
        submitter: submitter.clone(),
        registry: definition.registry().clone(),
        version: definition.version(),
        format,
        resolves_quarantine,
    })
}

/// Spool files are named `<random>.<format>.spool`.
const UPLOAD_SUFFIX: &str = ".spool";

/// Deletes spool files that no unfinished job names (uploads cut off, finished jobs whose
/// file could not be removed).
fn remove_abandoned_uploads(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let cutoff = std::time::SystemTime::now() - std::time::Duration::from_secs(24 * 3600);
    for entry in entries.flatten() {
        let path = entry.path();
        let is_spool = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(UPLOAD_SUFFIX));
        // Only old files: a file being uploaded right now is young, and one of an unfinished
        // job is kept while the job exists (its job deletes it when complete).
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified < cutoff);
        if is_spool && old {
            tracing::info!(file = %path.display(), "removing an abandoned upload");
            let _ = std::fs::remove_file(&path);
        }
    }
}

async fn job_or_missing(ctx: &Ctx, id: SubmissionJobId) -> Result<SubmissionJob, ServiceError> {
    ctx.store
        .submission_job(id)
        .await?
        .ok_or(ServiceError::NotFound { what: "submission" })
}

fn io_failure(message: &str) -> ServiceError {
    ServiceError::Input(message.to_string())
}

fn log_failure(id: SubmissionJobId, result: Result<SubmissionJob, ServiceError>) {
    if let Err(e) = result {
        tracing::error!(job = id.0, error = %error_chain(&e), "submission failed");
    }
}

/// What the reading thread needs to check records: all owned, so it can run off the runtime.
struct RecordCheck {
    definition: DatasetDefinition,
    context: FixedContext,
    register: HashMap<String, DeviceModelId>,
    organisation: OrganisationId,
    organisation_ods: String,
    now: DateTime<Utc>,
    today: NaiveDate,
    /// Seals each valid record's patient here, beside the commit rather than in it (about a
    /// tenth of a chunk's commit). Without keys the commit fails with the reason anyway.
    cipher: Option<Arc<FieldCipher>>,
}

/// A chunk as read, before it is committed.
struct PlannedChunk {
    records: Vec<ChunkRecord>,
    from: reader::Mark,
    to: reader::Mark,
    last: bool,
}

async fn process_with_progress(
    ctx: &Ctx,
    id: SubmissionJobId,
    progress: &(dyn Fn(&SubmissionJob) + Send + Sync),
) -> Result<SubmissionJob, ServiceError> {
    let job = job_or_missing(ctx, id).await?;
    if matches!(
        job.state,
        SubmissionState::Completed | SubmissionState::Failed
    ) {
        return Ok(job);
    }
    let result = run_job(ctx, &job, progress).await;
    match result {
        Ok(()) => {}
        Err(ServiceError::Store(StoreError::Conflict { constraint }))
            if constraint == "submission_job.resume_offset" =>
        {
            tracing::info!(job = id.0, "another process is running this submission");
        }
        Err(error) => {
            let message = match &error {
                ServiceError::Store(_) => "storage failure; see the server log".to_string(),
                other => other.to_string(),
            };
            tracing::error!(job = id.0, error = %error_chain(&error), "submission failed");
            ctx.store
                .fail_submission_job(id, &message, ctx.now())
                .await?;
        }
    }
    let job = job_or_missing(ctx, id).await?;
    if job.state == SubmissionState::Completed {
        let _ = std::fs::remove_file(&job.spool_path);
        if job.counts.created + job.counts.corrected > 0 {
            ctx.ingested.notify_one();
        }
    }
    Ok(job)
}

async fn run_job(
    ctx: &Ctx,
    job: &SubmissionJob,
    progress: &(dyn Fn(&SubmissionJob) + Send + Sync),
) -> Result<(), ServiceError> {
    let registry = RegistryCode::parse(&job.registry)
        .map_err(|e| ServiceError::Input(format!("job registry: {e}")))?;
    let version = DatasetVersion::parse(&job.dataset_version)
        .map_err(|e| ServiceError::Input(format!("job dataset version: {e}")))?;
    let definition = ctx
        .submissions
        .catalogue
        .get(&registry, version)
        .ok_or_else(|| {
            ServiceError::Input(format!(
                "dataset {} {} is no longer defined",
                job.registry, job.dataset_version
            ))
        })?
        .clone();
    let path = PathBuf::from(&job.spool_path);
    let total = match job.total_records {
        Some(total) => total,
        None => {
            let (path, format) = (path.clone(), job.format);
            tokio::task::spawn_blocking(move || reader::count_records(&path, format))
                .await
                .map_err(|e| io_failure(&format!("counting records: {e}")))?
                .map_err(|e| io_failure(&format!("reading the upload: {e}")))?
        }
    };
    if !ctx
        .store
        .start_submission_job(job.id, total, ctx.now())
        .await?
    {
        return Ok(());
    }
    let mut context = FixedContext::new(ctx.today());
    let mut register = HashMap::new();
    for (udi, device_type, id) in ctx.store.register_device_types().await? {
        if let (Ok(udi_di), Ok(slug)) = (UdiDi::parse(&udi), Slug::parse(&device_type)) {
            context.register.insert(udi_di, slug);
        }
        register.insert(udi, id);
    }
    let check = RecordCheck {
        definition,
        context,
        register,
        organisation: job.organisation,
        organisation_ods: job.organisation_ods.clone(),
        now: ctx.now(),
        today: ctx.today(),
        cipher: ctx.store.identifier_cipher().await.ok(),
    };
    let start = reader::Mark {
        offset: job.resume_offset,
        line: job.resume_line,
    };
    let chunk_records = ctx.submissions.chunk_records;
    let format = job.format;
    // Chunks queue while the committer works, and it takes every chunk waiting (up to
    // `CHUNKS_PER_COMMIT`) into one transaction: each commit rewrites the hot index pages its
    // records touch, so fewer, larger commits write less per record, without holding more
    // chunks in memory than the queue already does. Checking comes in bursts, and the commit
    // must never wait for it.
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<PlannedChunk>(QUEUED_CHUNKS);
    let reading = tokio::task::spawn_blocking(move || {
        read_chunks(&path, format, start, chunk_records, &check, &sender)
    });
    let mut failure = None;
    // Where the time goes, for the debug log: committing here, and (in the reader) checking
    // and waiting for the committer; whichever stage waits less is the bottleneck.
    let mut committing = std::time::Duration::ZERO;
    let mut commits = 0_u64;
    while let Some(first) = receiver.recv().await {
        let mut planned = vec![first];
        while planned.len() < CHUNKS_PER_COMMIT {
            match receiver.try_recv() {
                Ok(next) => planned.push(next),
                Err(_) => break,
            }
        }
        let chunks: Vec<SubmissionChunk> = planned
            .into_iter()
            .map(|planned| SubmissionChunk {
                job: job.id,
                organisation: job.organisation,
                token: job.token,
                registry: job.registry.clone(),
                dataset_version: job.dataset_version.clone(),
                received_at: ctx.now(),
                from_offset: planned.from.offset,
                to_offset: planned.to.offset,
                to_line: planned.to.line,
                last: planned.last,
                records: planned.records,
            })
            .collect();
        let started = std::time::Instant::now();
        let committed = ctx.store.commit_submission_chunks(&chunks).await;
        committing += started.elapsed();
        commits += 1;
        drop(chunks);
        if let Err(e) = committed {
            failure = Some(ServiceError::from(e));
            break;
        }
        if let Ok(Some(job)) = ctx.store.submission_job(job.id).await {
            progress(&job);
        }
    }
    // Dropping the receiver stops the reader at its next chunk.
    drop(receiver);
    let read = reading
        .await
        .map_err(|e| io_failure(&format!("reading the upload: {e}")))?;
    if let Ok(stages) = &read {
        tracing::debug!(
            job = job.id.0,
            seconds_reading_and_checking = stages.busy.as_secs_f64(),
            seconds_waiting_for_commits = stages.waiting.as_secs_f64(),
            seconds_committing = committing.as_secs_f64(),
            commits,
            "submission stages"
        );
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    read.map(|_| ())
        .map_err(|e| io_failure(&format!("reading the upload: {e}")))
}

/// How the reader spent its time: reading and checking records, and blocked handing chunks
/// to the committer.
struct ReaderStages {
    busy: std::time::Duration,
    waiting: std::time::Duration,
}

/// Reads from `start`, checks each record and sends chunks; a chunk also ends before a
/// record whose local record id it already holds, so that the later record is compared with
/// the stored earlier one.
fn read_chunks(
    path: &Path,
    format: SubmissionFormat,
    start: reader::Mark,
    chunk_records: usize,
    check: &RecordCheck,
    sender: &tokio::sync::mpsc::Sender<PlannedChunk>,
) -> std::io::Result<ReaderStages> {
    let started = std::time::Instant::now();
    let mut waiting = std::time::Duration::ZERO;
    let mut chunk = PlannedChunk {
        records: Vec::with_capacity(chunk_records),
        from: start,
        to: start,
        last: false,
    };
    let mut local_ids: HashSet<String> = HashSet::new();
    let mut stopped = false;
    let end = reader::read_records(path, format, start, |read| {
        let record = check_record(check, read.line, read.raw);
        let repeated = record
            .local_record_id
            .as_ref()
            .is_some_and(|id| local_ids.contains(id));
        if repeated || chunk.records.len() >= chunk_records {
            // The next chunk starts where this one ended, so that the job's progress moves
            // from one committed chunk to the next without a gap.
            let next = PlannedChunk {
                records: Vec::with_capacity(chunk_records),
                from: chunk.to,
                to: chunk.to,
                last: false,
            };
            let full = std::mem::replace(&mut chunk, next);
            local_ids.clear();
            let blocked = std::time::Instant::now();
            let sent = sender.blocking_send(full);
            waiting += blocked.elapsed();
            if sent.is_err() {
                stopped = true;
                return Ok(false);
            }
        }
        if let Some(id) = &record.local_record_id {
            local_ids.insert(id.clone());
        }
        chunk.records.push(record);
        chunk.to = read.after;
        Ok(true)
    })?;
    if !stopped {
        chunk.to = end;
        chunk.last = true;
        let blocked = std::time::Instant::now();
        let _ = sender.blocking_send(chunk);
        waiting += blocked.elapsed();
    }
    Ok(ReaderStages {
        busy: started.elapsed() - waiting,
        waiting,
    })
}

/// Validates one record and prepares it for storing, or rejects it with every problem.
fn check_record(check: &RecordCheck, line: u64, raw: reader::RawRecord) -> ChunkRecord {
    let definition = &check.definition;
    let (input, record) = match raw {
        reader::RawRecord::Unreadable { raw, error } => {
            return rejected(line, None, raw, &[error]);
        }
        reader::RawRecord::Json(text) => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(value) => (RecordInput::from_json(definition, &value), text),
            Err(e) => {
                let error = FieldError::new(
                    "",
                    "malformed_json",
                    format!("The line is not valid JSON: {e}"),
                );
                return rejected(
                    line,
                    None,
                    serde_json::Value::String(text).to_string(),
                    &[error],
                );
            }
        },
        reader::RawRecord::Csv(row) => {
            let text = serde_json::to_string(&row).unwrap_or_else(|_| "{}".into());
            (RecordInput::from_csv_row(definition, &row), text)
        }
    };
    let mut report: ValidationReport = definition.validate(&input, &check.context);
    let local_record_id = report.values.get("procedure.local_record_id").cloned();
    if let Some(provider) = report.values.get("procedure.provider")
        && provider != &check.organisation_ods
    {
        report.errors.push(FieldError::new(
            "procedure.provider",
            "not_your_organisation",
            format!(
                "Records can be submitted only for your own organisation ({}); this record names {provider}",
                check.organisation_ods
            ),
        ));
    }
    if !report.errors.is_empty() {
        return rejected(line, local_record_id, record, &report.errors);
    }
    let submission = match mapping::to_submission(definition, &input, &report.values, check.today) {
        Ok(submission) => submission,
        Err(errors) => return rejected(line, local_record_id, record, &errors),
    };
    let mut prepared = prepare_with(&check.register, check.organisation, submission, check.now);
    // A seal that fails here is made again, and its failure reported, by the commit.
    prepared.sealed_patient = check
        .cipher
        .as_ref()
        .and_then(|cipher| cipher.seal_patient(&prepared.submission.patient).ok());
    ChunkRecord {
        line,
        local_record_id,
        body: ChunkRecordBody::Valid {
            prepared: Box::new(prepared),
            content_hash: content_hash(definition, &report.values),
            warnings: (!report.warnings.is_empty()).then(|| messages_json(&report.warnings)),
            names_given: mapping::names_given(&report.values),
        },
        // Packed here, on the checking thread, so that the commit's thread only seals it.
        record: PackedRecord::pack(&record),
    }
}

fn rejected(
    line: u64,
    local_record_id: Option<String>,
    record: String,
    errors: &[FieldError],
) -> ChunkRecord {
    ChunkRecord {
        line,
        local_record_id,
        record: PackedRecord::pack(&record),
        body: ChunkRecordBody::Rejected {
            errors: messages_json(errors),
        },
    }
}

fn messages_json(errors: &[FieldError]) -> String {
    serde_json::to_string(errors).unwrap_or_else(|_| "[]".into())
}

/// A record's meaning: the dataset, its version and every canonical value, so that the same
/// record sent again (as JSON or CSV, with fields in any order) is recognised as unchanged.
fn content_hash(definition: &DatasetDefinition, values: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(definition.registry().as_str().as_bytes());
    hasher.update([0]);
    hasher.update(definition.version().to_string().as_bytes());
    for (path, value) in values {
        hasher.update([0]);
        hasher.update(path.as_bytes());
        hasher.update([1]);
        hasher.update(value.as_bytes());
    }
    hex::encode(hasher.finalize())
}
