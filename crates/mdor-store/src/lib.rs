//! Storage for the registry: one `Store` trait, with SQLite (embedded default) and PostgreSQL
//! (production) backends chosen by URL, per-backend migrations, and row ↔ domain conversion.
//!
//! Invariant: SQL lives only in this crate, and nothing here decides business rules; the
//! service layer prepares records (register matches, follow-up flags) and the store writes
//! them, each submission in one transaction.

mod access_reviews;
mod accounts;
mod analysis;
pub mod audit_log;
mod backend;
mod error;
pub mod field_crypto;
mod load_schema;
mod oidc;
mod packed_record;
mod rows;
mod sessions;
mod sql;
mod types;
mod webauthn;

pub use access_reviews::{
    AccessReview, AccessReviewDecision, AccessReviewId, AccessReviewQuery, ReviewDecision,
    decision_detail,
};
pub use accounts::{
    Account, AccountId, AccountRole, CredentialReset, LoginFailures, LoginSuccess, NewAccount,
    NewAccountAuditEvent, SecondFactorUse,
};
pub use analysis::{
    AnalysisExtract, AnalysisImplant, AnalysisScope, ConsultantId, NewSurveillanceRun,
    SignalUpdate, StoredAlert, StoredSignal, SurveillanceRunId, SurveillanceRunInfo,
};
pub use backend::{ConnectOptions, connect};
pub use error::StoreError;
pub use field_crypto::{Field, FieldCipher, KeyEncryptionKey, SealedDetail, SealedPatient};
pub use oidc::{NewOidcIdentity, NewOidcSignIn, PendingOidcSignIn};
pub use packed_record::{PackedRecord, UnpackError};
pub use sessions::{
    NewSession, SessionAccount, SessionAssurance, SessionEnd, SessionFactor, SessionId,
    StoredSession,
};
pub use types::*;
pub use webauthn::{
    CeremonyKind, NewWebauthnCeremony, NewWebauthnCredential, WebauthnCeremony, WebauthnCeremonyId,
    WebauthnCredential, WebauthnCredentialId, WebauthnUse,
};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use mdor_domain::register::RegisterEntry;
use mdor_domain::{NhsNumber, OdsCode, UdiDi};

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything the service layer needs from storage. Implemented by `SqliteStore` and
/// `PostgresStore`; the conformance suite in `tests/it` runs against both through `&dyn Store`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which engine this is, for diagnostics and benchmarks.
    fn backend(&self) -> Backend;

    /// Applies pending migrations.
    async fn migrate(&self) -> StoreResult<()>;

    /// Fails with `StoreError::MigrationsPending` when the schema is behind this binary.
    async fn check_migrations(&self) -> StoreResult<()>;

    /// Unwraps the identifier keys (creating the first ones in a new database) and reports
    /// them; fails with `StoreError::Keys` when the key-encryption key is missing or wrong,
    /// which `serve` checks at start rather than at the first patient read.
    async fn key_status(&self) -> StoreResult<KeyStatus>;

    /// The identifier cipher, so that a bulk submission can seal each record's patient where
    /// the record is checked, off the commit's path (`PreparedSubmission::sealed_patient`).
    /// The commit uses such a value only if it is sealed under the key current when it runs.
    async fn identifier_cipher(&self) -> StoreResult<std::sync::Arc<FieldCipher>>;

    /// Seals patients and stored answers written before encryption, moves those sealed
    /// under an older field key to the current one, then retires the older keys. Each batch
    /// is its own transaction, so a crash loses one batch of work and a rerun goes on.
    async fn reseal_identifiers(&self) -> StoreResult<ResealReport>;

    /// `mdor keys rotate`: re-wraps every data key under `new_kek` (or the current
    /// key-encryption key), adds a new field key, re-seals every identifier under it and
    /// retires the old ones. Rerun after a crash, it finishes the interrupted rotation.
    async fn rotate_keys(&self, new_kek: Option<KeyEncryptionKey>) -> StoreResult<KeyRotation>;

    /// Creates an approved research project with its own pseudonym key.
    async fn create_research_project(
        &self,
        project: &NewResearchProject,
    ) -> StoreResult<ResearchProjectId>;

    async fn research_project(&self, reference: &str) -> StoreResult<Option<ResearchProject>>;

    /// A page of a project's pseudonymised extract after implant `after` (`ResearchRow`),
    /// narrowed by `filter`, written with its audit entry in one transaction: no audit, no
    /// extract.
    async fn research_extract_page(
        &self,
        project: ResearchProjectId,
        filter: &ResearchFilter,
        after: i64,
        limit: u32,
        audit: &NewAuditEvent,
    ) -> StoreResult<Vec<ResearchRow>>;

    /// Names a researcher's account on a project, with the audit entry of the change, in one
    /// transaction; `Conflict` if it is already named.
    async fn add_research_member(
        &self,
        project: ResearchProjectId,
        account: AccountId,
        audit: &NewAuditEvent,
    ) -> StoreResult<()>;

    /// Removes an account from a project, with the audit entry of the change, in one
    /// transaction; false (and no entry) if it was not named on it.
    async fn remove_research_member(
        &self,
        project: ResearchProjectId,
        account: AccountId,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool>;

    /// The projects an account is named on, by reference.
    async fn research_projects_of(&self, account: AccountId) -> StoreResult<Vec<ResearchProject>>;

    /// Inserts the organisation or updates its name, kind and region; returns its id.
    async fn upsert_organisation(
        &self,
        organisation: &NewOrganisation,
    ) -> StoreResult<OrganisationId>;

    async fn organisation_by_ods(&self, ods_code: &OdsCode) -> StoreResult<Option<Organisation>>;

    async fn organisation(&self, id: OrganisationId) -> StoreResult<Option<Organisation>>;

    /// Inserts consultants not yet known and updates the details of known ones.
    async fn upsert_consultants(&self, consultants: &[NewConsultant]) -> StoreResult<()>;

    /// Inserts or updates device register entries; returns how many were written.
    async fn upsert_device_models(&self, entries: &[RegisterEntry]) -> StoreResult<u64>;

    async fn device_model(&self, udi_di: &UdiDi) -> StoreResult<Option<DeviceModel>>;

    /// Ids of those of `udi_dis` that are in the register.
    async fn device_model_ids(
        &self,
        udi_dis: &[&UdiDi],
    ) -> StoreResult<Vec<(String, DeviceModelId)>>;

    /// Writes a patient (created or matched by NHS number), a procedure and its implants with
    /// their follow-up flags in one transaction, with the idempotency record when one is given.
    async fn insert_submission(
        &self,
        submission: &PreparedSubmission,
        idempotency: Option<&NewIdempotencyRecord>,
    ) -> StoreResult<ProcedureId>;

    async fn procedure(&self, id: ProcedureId) -> StoreResult<Option<ProcedureRecord>>;

    async fn procedure_by_local_id(
        &self,
        provider: OrganisationId,
        local_record_id: &str,
    ) -> StoreResult<Option<ProcedureId>>;

    /// What a removal needs to be checked against: implant date, provider, patient's death.
    async fn implant_context(&self, id: ImplantId) -> StoreResult<Option<ImplantContext>>;

    /// Records revisions or explants, all or none.
    async fn insert_removals(
        &self,
        removals: &[NewRemoval],
        idempotency: Option<&NewIdempotencyRecord>,
    ) -> StoreResult<Vec<RemovalId>>;

    /// The facts a death is checked against.
    async fn patient_timeline_bounds(
        &self,
        nhs_number: &NhsNumber,
    ) -> StoreResult<Option<PatientBounds>>;

    async fn record_death(
        &self,
        patient: PatientId,
        date_of_death: NaiveDate,
        idempotency: Option<&NewIdempotencyRecord>,
    ) -> StoreResult<()>;

    /// Every implant matching a recall's criteria, with patient and provider, ordered by
    /// implant id and paged by `after`.
    async fn recall(&self, criteria: &RecallCriteria) -> StoreResult<Vec<RecallRow>>;

    async fn insert_token(&self, token: &NewApiToken) -> StoreResult<TokenId>;

    /// The live (not revoked) token with this hash.
    async fn token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiToken>>;

    async fn tokens(&self) -> StoreResult<Vec<ApiToken>>;

    /// Revokes a token; false when it did not exist or was already revoked.
    async fn revoke_token(&self, id: TokenId) -> StoreResult<bool>;

    async fn idempotency_record(
        &self,
        token: TokenId,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>>;

    /// Before a large load: when no procedure is stored yet, drops the secondary indexes
    /// (and on PostgreSQL the foreign-key triggers) that are cheaper to build once afterwards,
    /// and returns whether it did. The caller must call `restore_load_schema` when the load
    /// ends, however it ends; start-up calls it too, to repair a load that was killed.
    async fn defer_load_schema(&self) -> StoreResult<bool>;

    /// Recreates every deferred index and foreign key that is missing, validating the
    /// foreign keys against the stored rows; returns how many were recreated (0 when the
    /// schema is whole).
    async fn restore_load_schema(&self) -> StoreResult<usize>;

    /// The schema's tables, indexes and constraints as the engine describes them, sorted:
    /// lets tests check that a deferred and restored schema equals the migrated one.
    async fn schema_objects(&self) -> StoreResult<Vec<String>>;

    /// Loads a batch of pre-validated records in one transaction, for synthetic and
    /// migrated data: patients are matched by NHS number within and across batches.
    async fn bulk_load(&self, batch: &BulkBatch) -> StoreResult<BulkLoadOutcome>;

    /// Resolves removals given by the original procedure's provider, local record id and
    /// device position, then inserts them; unresolved and already recorded ones are reported,
    /// not dropped.
    async fn bulk_removals(&self, removals: &[BulkRemoval]) -> StoreResult<BulkRemovalReport>;

    /// Records deaths by NHS number; returns the indexes of unknown patients.
    async fn bulk_deaths(&self, deaths: &[(NhsNumber, NaiveDate)]) -> StoreResult<Vec<usize>>;

    async fn counts(&self) -> StoreResult<Counts>;

    // Recall and field safety cases, and the audit of access to them. Each identifiable
    // read or change writes its `audit` entry in the same transaction: no entry, no data.

    /// Opens a case, finds every matching implant, adds one work item per patient and
    /// implanting provider, and audits it, in one transaction. A reused reference is a
    /// `Conflict`.
    async fn create_recall_case(
        &self,
        case: &NewRecallCase,
        audit: &NewAuditEvent,
    ) -> StoreResult<(RecallCaseId, RecallCaseGrowth)>;

    /// Adds implants submitted since the case was opened (or last refreshed); `None` when
    /// there is no such case.
    async fn refresh_recall_case(
        &self,
        id: RecallCaseId,
        audit: &NewAuditEvent,
    ) -> StoreResult<Option<RecallCaseGrowth>>;

    /// The case's criteria and its work counts per provider and status (no identifiers).
    async fn recall_case(&self, id: RecallCaseId) -> StoreResult<Option<RecallCase>>;

    /// A page of work items with patient contact details, keyset-paged by entry id.
    async fn recall_entries(
        &self,
        query: &RecallWorkQuery,
        audit: &NewAuditEvent,
    ) -> StoreResult<Vec<RecallEntry>>;

    async fn recall_entry_state(
        &self,
        case_id: RecallCaseId,
        entry: RecallEntryId,
    ) -> StoreResult<Option<RecallEntryState>>;

    /// Applies the change if the entry is still in `change.from`; false otherwise.
    async fn set_recall_status(
        &self,
        change: &RecallStatusChange,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool>;

    /// Everything stored on one patient, read and audited in one transaction.
    async fn patient_timeline(
        &self,
        patient: PatientId,
        audit: &NewAuditEvent,
    ) -> StoreResult<Option<PatientTimeline>>;

    /// Writes an audit entry on its own, for accesses refused before any data was read (and
    /// its review item, when the entry is of a break-glass access).
    async fn append_audit(&self, event: &NewAuditEvent) -> StoreResult<()>;

    /// Audit entries after `after`, oldest first.
    async fn audit_events(
        &self,
        after: Option<AuditEventId>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>>;
    // ---- Surveillance (issue 6) ----

    /// A consistent, pseudonymous extract of every implant in `scope` with its procedure date,
    /// provider, consultant, patient age and sex, removal and death, and the dimension tables
    /// the implants refer to. Never holds NHS numbers, names, dates of birth or postcodes.
    async fn analysis_extract(&self, scope: &AnalysisScope) -> StoreResult<AnalysisExtract>;

    /// Every signal kept between surveillance runs.
    async fn surveillance_signals(&self) -> StoreResult<Vec<StoredSignal>>;

    /// Records a run, upserts its signal updates and inserts an alert for each update that
    /// raises one, in one transaction.
    async fn save_surveillance_run(
        &self,
        run: &NewSurveillanceRun,
    ) -> StoreResult<SurveillanceRunId>;

    /// The most recent alerts, newest first.
    async fn surveillance_alerts(&self, limit: u32) -> StoreResult<Vec<StoredAlert>>;

    /// The most recent surveillance run, if any: how fresh the signals are.
    async fn latest_surveillance_run(&self) -> StoreResult<Option<SurveillanceRunInfo>>;

    // Bulk submission: jobs, their reports and quarantine, and submitted procedures' raw
    // input and versions (see `backend/submissions.rs` for how a chunk commits).

    async fn create_submission_job(&self, job: &NewSubmissionJob) -> StoreResult<SubmissionJobId>;

    async fn submission_job(&self, id: SubmissionJobId) -> StoreResult<Option<SubmissionJob>>;

    /// The most recent jobs, newest first; one organisation's or all.
    async fn submission_jobs(
        &self,
        organisation: Option<OrganisationId>,
        limit: u32,
    ) -> StoreResult<Vec<SubmissionJob>>;

    /// Jobs in a state, oldest first: the worker's queue, and at start-up the jobs to resume.
    async fn submission_jobs_in_state(
        &self,
        state: SubmissionState,
    ) -> StoreResult<Vec<SubmissionJobId>>;

    /// Marks a queued or resumed job as processing and records its record count the first
    /// time; false when the job is finished (or absent).
    async fn start_submission_job(
        &self,
        id: SubmissionJobId,
        total_records: u64,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Marks an unfinished job as failed, with the reason; committed chunks stay committed.
    async fn fail_submission_job(
        &self,
        id: SubmissionJobId,
        failure: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Every register entry as (UDI-DI, device type, id), for validating a whole file.
    async fn register_device_types(&self) -> StoreResult<Vec<(String, String, DeviceModelId)>>;

    /// Commits consecutive chunks of one job, each with its new procedures through the bulk
    /// path, corrections with their previous versions kept, raw input and provenance, report
    /// rows, quarantine resolutions and the job's progress; returns each chunk's results in
    /// order. The chunks share a transaction where they can (fewer commits rewrite each hot
    /// index page fewer times); every chunk is in exactly one transaction with its progress.
    /// Refused with `Conflict` when the job is not at the first chunk's `from_offset`
    /// (another process committed it).
    async fn commit_submission_chunks(
        &self,
        chunks: &[SubmissionChunk],
    ) -> StoreResult<Vec<Vec<ChunkRecordResult>>>;

    /// A page of a job's report, by line.
    async fn submission_records(
        &self,
        job: SubmissionJobId,
        after_line: u64,
        limit: u32,
    ) -> StoreResult<Vec<SubmissionRecord>>;

    async fn quarantine(&self, query: &QuarantineQuery) -> StoreResult<Vec<QuarantineEntry>>;

    async fn quarantine_entry(
        &self,
        id: SubmissionRecordId,
    ) -> StoreResult<Option<QuarantineEntry>>;

    /// A procedure's raw input and provenance, current version first, then earlier ones.
    async fn procedure_history(
        &self,
        procedure: ProcedureId,
    ) -> StoreResult<Vec<ProcedureSourceVersion>>;

    /// Reads a procedure and audits the read, with the patient, outcome and record count
    /// filled in: with `provider` given, another provider's procedure is not returned and is
    /// audited `denied`; an absent one is audited `not_found`. The record is returned only
    /// once the audit entry is committed (on PostgreSQL in the same transaction as the read;
    /// on SQLite through the group-commit writer, see `SqliteStore`).
    async fn audited_procedure(
        &self,
        id: ProcedureId,
        provider: Option<OrganisationId>,
        audit: &NewAuditEvent,
    ) -> StoreResult<Option<ProcedureRecord>>;

    /// `recall`, audited with the number of rows returned, under the same guarantee.
    async fn audited_recall(
        &self,
        criteria: &RecallCriteria,
        audit: &NewAuditEvent,
    ) -> StoreResult<Vec<RecallRow>>;

    /// Who accessed one patient's record, oldest first; reading it is itself audited.
    async fn patient_access_log(
        &self,
        patient: PatientId,
        audit: &NewAuditEvent,
    ) -> StoreResult<Vec<PatientAccess>>;

    /// Brings the by-patient index of multi-patient reads up to date now and returns how many
    /// named patients it added. Access logs are complete without it: on SQLite the index is a
    /// file of its own that a background task fills every 30 s, and the log's newer entries
    /// are read by position (`backend/named_index.rs`); PostgreSQL maintains its index with
    /// each entry, so there it adds nothing.
    async fn index_named_patients(&self) -> StoreResult<u64>;

    // Data quality (see `backend/data_quality.rs`): providers' expected activity and the
    // figures their data quality report is computed from.

    /// Writes every figure in one transaction, replacing any stored for the same provider and
    /// month; returns how many were written. An unknown organisation is a `Conflict`.
    async fn upsert_expected_activity(
        &self,
        rows: &[ExpectedActivity],
        loaded_at: DateTime<Utc>,
    ) -> StoreResult<u64>;

    /// One organisation's procedures, bulk submissions, rejected records' errors, open
    /// follow-up flags and expected activity for the months `from` to `to`, read in one
    /// snapshot.
    async fn provider_activity(
        &self,
        organisation: OrganisationId,
        from: mdor_domain::Month,
        to: mdor_domain::Month,
    ) -> StoreResult<ProviderActivity>;

    // The audit as a Merkle log (`audit_log`): positions, leaf hashes and checkpoints.

    /// Up to `limit` entries with position greater than `after_seq`, in position order, as
    /// stored (tampered rows included: verification judges them).
    async fn audit_log_page(&self, after_seq: u64, limit: u32) -> StoreResult<Vec<AuditLogEntry>>;

    async fn insert_audit_checkpoint(&self, checkpoint: &NewAuditCheckpoint) -> StoreResult<()>;

    /// The checkpoint of the largest tree, if any was stored.
    async fn latest_audit_checkpoint(&self) -> StoreResult<Option<AuditCheckpoint>>;

    // Staff and patient accounts (`accounts`): credentials arrive prepared by the service.

    /// Inserts an account with its backup codes and, when given, the audit entry of its
    /// creation (its resource becomes `account/{id}` of the new account), in one transaction;
    /// a username in use is a `Conflict`.
    async fn insert_account(
        &self,
        account: &NewAccount,
        audit: Option<&NewAuditEvent>,
    ) -> StoreResult<AccountId>;

    async fn account_by_username(&self, username: &str) -> StoreResult<Option<Account>>;

    /// Every account, disabled or not, in username order.
    async fn accounts(&self) -> StoreResult<Vec<Account>>;

    /// Re-enables a disabled account, restarting its idle clock, and writes the audit entry,
    /// in one transaction; false, with nothing written, when it was not disabled.
    async fn reinstate_account(
        &self,
        account: AccountId,
        at: DateTime<Utc>,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool>;

    /// Designates a provider's data manager as its organisation's approver (or withdraws it)
    /// and writes the audit entry, in one transaction; false, with nothing written, when the
    /// account is no data manager or the designation is already as asked.
    async fn set_account_approver(
        &self,
        account: AccountId,
        approver: bool,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool>;

    /// Replaces an account's credentials, revokes its WebAuthn credentials, ends its
    /// sessions and forgets its failed sign-ins (`CredentialReset`), with the audit entry, in
    /// one transaction; false, with nothing written, when there is no such account.
    async fn reset_account_credentials(
        &self,
        reset: &CredentialReset,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool>;

    /// The account with this id, disabled or not.
    async fn account_by_id(&self, account: AccountId) -> StoreResult<Option<Account>>;

    /// How many sign-ins of `account` failed at or after `since`, and the latest.
    async fn login_failures_since(
        &self,
        account: AccountId,
        since: DateTime<Utc>,
    ) -> StoreResult<LoginFailures>;

    /// Records a failed sign-in (counted against the account when there is one) and its audit
    /// entry, in one transaction.
    async fn record_login_failure(
        &self,
        account: Option<AccountId>,
        at: DateTime<Utc>,
        audit: Option<&NewAccountAuditEvent>,
    ) -> StoreResult<()>;

    /// Consumes the sign-in's TOTP step or backup code, records the sign-in (and a rehashed
    /// password) and its audit entry, in one transaction; false, with nothing written, when
    /// the step or code was already used or the account is disabled.
    async fn record_login_success(
        &self,
        success: &LoginSuccess,
        audit: &NewAccountAuditEvent,
    ) -> StoreResult<bool>;

    /// Disables every live account not signed in to since `unused_since` (or, never signed
    /// in, created before it) and ends their sessions; returns their ids in order.
    async fn disable_idle_accounts(
        &self,
        unused_since: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<AccountId>>;

    /// Sets a password its holder chose (clearing `must_change_password`) and writes its
    /// audit entry, in one transaction; false, with nothing written, for a disabled account.
    async fn set_account_password(
        &self,
        account: AccountId,
        password_hash: &str,
        audit: &NewAccountAuditEvent,
    ) -> StoreResult<bool>;

    async fn unused_backup_codes(&self, account: AccountId) -> StoreResult<u64>;

    /// The registry's own organisation (lowest id of kind registry), if there is one.
    async fn registry_organisation(&self) -> StoreResult<Option<OrganisationId>>;

    /// Disables a live account, ends its sessions and writes the audit entry, in one
    /// transaction; false, with nothing written, when it was already disabled.
    async fn disable_account(
        &self,
        account: AccountId,
        at: DateTime<Utc>,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool>;

    // Review items of break-glass accesses (`access_reviews`): each is written with its
    // access's audit entry by every method that writes one (`NewAuditEvent::break_glass`).

    /// Review items, oldest first; open ones only unless `include_decided`.
    async fn access_reviews(&self, query: &AccessReviewQuery) -> StoreResult<Vec<AccessReview>>;

    async fn access_review(&self, id: AccessReviewId) -> StoreResult<Option<AccessReview>>;

    /// Records a decision on an open review item and writes its audit entry, in one
    /// transaction; false, with nothing written, when the item is absent, already decided or
    /// names the reviewer's own access.
    async fn decide_access_review(
        &self,
        decision: &AccessReviewDecision,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool>;

    // Sessions of accounts (`sessions`): the service decides when one has expired.

    async fn insert_session(&self, session: &NewSession) -> StoreResult<SessionId>;

    /// The live (not ended) session whose secret has this hash, with its account, disabled
    /// or not.
    async fn session_by_secret_hash(
        &self,
        secret_hash: &str,
    ) -> StoreResult<Option<SessionAccount>>;

    /// Records a use of a live session.
    async fn touch_session(&self, session: SessionId, at: DateTime<Utc>) -> StoreResult<()>;

    /// Ends a live session of `account` and writes the audit entry when there is one, in one
    /// transaction; false, with nothing written, when no live session of that account has
    /// this id.
    async fn end_session(
        &self,
        account: AccountId,
        session: SessionId,
        at: DateTime<Utc>,
        reason: SessionEnd,
        audit: Option<&NewAccountAuditEvent>,
    ) -> StoreResult<bool>;

    /// Replaces a live session's secret after its holder re-authenticated at `at`; false
    /// when the session has ended.
    async fn rotate_session(
        &self,
        session: SessionId,
        secret_hash: &str,
        at: DateTime<Utc>,
        assurance: SessionAssurance,
    ) -> StoreResult<bool>;

    /// The live sessions of an account, oldest first.
    async fn account_sessions(&self, account: AccountId) -> StoreResult<Vec<StoredSession>>;

    // WebAuthn credentials and ceremonies (`webauthn`): the service verifies, the store keeps
    // and enforces single use.

    async fn insert_webauthn_ceremony(
        &self,
        ceremony: &NewWebauthnCeremony,
    ) -> StoreResult<WebauthnCeremonyId>;

    /// The unfinished ceremony whose handle has this hash.
    async fn webauthn_ceremony(&self, handle_hash: &str) -> StoreResult<Option<WebauthnCeremony>>;

    /// An account's live credentials, oldest first.
    async fn webauthn_credentials(
        &self,
        account: AccountId,
    ) -> StoreResult<Vec<WebauthnCredential>>;

    /// Finishes a registration ceremony and stores the credential with its audit entry, in one
    /// transaction; `None`, with nothing written, when the ceremony was finished before. A
    /// credential id already registered (to any account) is `Conflict`.
    async fn register_webauthn_credential(
        &self,
        ceremony: WebauthnCeremonyId,
        credential: &NewWebauthnCredential,
        audit: &NewAccountAuditEvent,
    ) -> StoreResult<Option<WebauthnCredentialId>>;

    /// Revokes a live credential of `account` and writes the audit entry, in one transaction;
    /// false, with nothing written, when the account has no such live credential.
    async fn revoke_webauthn_credential(
        &self,
        account: AccountId,
        credential: WebauthnCredentialId,
        at: DateTime<Utc>,
        audit: &NewAccountAuditEvent,
    ) -> StoreResult<bool>;

    // OpenID Connect sign-in (`oidc`): the service hashes the secrets and judges the tokens.

    /// Purges sign-ins past their expiry, then stores a new one, in one transaction.
    async fn insert_oidc_sign_in(&self, sign_in: &NewOidcSignIn) -> StoreResult<()>;

    /// Takes (deletes and returns) the sign-in with this state hash, expired or not; of two
    /// callers with one state, exactly one gets it.
    async fn take_oidc_sign_in(&self, state_hash: &str) -> StoreResult<Option<PendingOidcSignIn>>;

    /// Links an identity provider's subject to an account and writes the audit entry of the
    /// administrator or operator who linked it, in one transaction; a subject already linked,
    /// or an account already linked at this issuer, is a `Conflict`.
    async fn link_oidc_identity(
        &self,
        identity: &NewOidcIdentity,
        audit: &NewAuditEvent,
    ) -> StoreResult<()>;

    /// The account linked to this issuer's subject, disabled or not.
    async fn account_by_oidc_identity(
        &self,
        issuer: &str,
        subject: &str,
    ) -> StoreResult<Option<Account>>;

    /// Records an OpenID Connect sign-in of a live account and its audit entry, in one
    /// transaction; false, with nothing written, when the account is disabled.
    async fn record_oidc_login(
        &self,
        account: AccountId,
        at: DateTime<Utc>,
        audit: &NewAccountAuditEvent,
    ) -> StoreResult<bool>;
}
