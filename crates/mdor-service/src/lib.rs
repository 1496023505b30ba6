//! Use cases shared by the web API and the CLI: register an implant procedure, record a
//! revision, explant or death, run a recall query, manage the device register and API tokens,
//! create accounts and sign people in (`accounts`, with passkeys and security keys in
//! `webauthn`, or through an OpenID Connect identity provider, `oidc`) to server-side sessions
//! (`sessions`), bulk-load prepared datasets, load the registries' dataset definitions, and
//! apply the purpose and break-glass rules of identifiable reads (`access`) with their review
//! (`access_reviews`).
//!
//! Invariant: every function takes the caller's `Principal` (or is an operator task run from
//! the CLI, or is sign-in itself, which establishes who the caller is) and asks the policy
//! (`policy::POLICIES`) what that principal may do before touching the store.

mod access;
mod access_reviews;
pub mod accounts;
mod audit_log;
mod auth;
mod bulk;
mod ctx;
mod data_quality;
pub mod disclosure;
mod error;
mod idempotency;
pub mod oidc;
mod outcomes;
pub mod policy;
mod procedures;
mod recall;
mod recall_cases;
mod refusals;
mod register;
pub mod registries;
pub mod research;
pub mod sessions;
mod submissions;
mod surveillance;
mod timeline;
pub mod webauthn;

pub use access::StatedAccess;
pub use access_reviews::{
    MAX_REVIEW_NOTE_CHARS, MAX_REVIEW_PAGE, access_reviews, decide_access_review,
};
pub use accounts::{
    AccountKey, AccountRequest, AccountSummary, Administrator, CreatedAccount, SignedIn,
    administrator_create_account, change_password, create_account, disable_account, enable_account,
    expire_idle_accounts, list_accounts, login, operator_disable_account, operator_enable_account,
    operator_reset_account_credentials, operator_set_approver, reset_account_credentials,
    set_approver,
};
pub use audit_log::{
    Checkpoint, CheckpointSigner, CheckpointVerifier, LogProblem, SignedCheckpoint, TreeHead,
    VerifyReport, create_audit_checkpoint, verify_audit_log,
};
pub use auth::{
    CreatedToken, Credential, Principal, authenticate, create_token, list_tokens, revoke_token,
};
pub use bulk::{
    BulkOutcomeRecord, LoadSummary, OutcomeLoadReport, bulk_load, bulk_outcomes, defer_load_schema,
    ensure_organisations, register_index, restore_load_schema, upsert_consultants,
};
pub use ctx::Ctx;
pub use data_quality::{
    COMPLETENESS_TARGET_PERCENT, Completeness, DEFAULT_REPORT_MONTHS, EXPECTED_ACTIVITY_HEADER,
    FieldErrorRate, MAX_REPORT_MONTHS, MonthQuality, MonthRange, ProviderDataQuality,
    data_quality_csv, load_expected_activity, provider_data_quality,
};
pub use error::{ServiceError, error_chain};
pub use idempotency::{IdempotencyRequest, Outcome};
pub use mdor_domain::{AccessPurpose, BreakGlassReason};
pub use oidc::{
    OidcBrowserBinding, OidcCallback, OidcConfig, OidcProvider, OidcSettings, OidcStart,
    administrator_link_oidc_identity, begin_oidc_reauthentication, begin_oidc_sign_in,
    finish_oidc_sign_in, link_oidc_identity,
};
pub use outcomes::{RemovalRequest, record_death, record_removal};
pub use procedures::{get_procedure, register_procedure};
pub use recall::recall;
pub use recall_cases::{
    MAX_WORK_PAGE, RecallCaseRequest, open_recall_case, recall_case, recall_worklist,
    refresh_recall_case, update_recall_status,
};
pub use refusals::{RefusalOutcome, RefusedCaller, audit_refusal};
pub use register::{device_lookup, load_register_csv, register_device, upsert_register};
pub use registries::{load_registries_dir, shipped_catalogue};
pub use sessions::{
    SessionCaller, SessionSecret, SignInRequest, StartedSession, authenticate_session,
    list_sessions, reauthenticate, revoke_session, sign_in, sign_out,
};
pub use submissions::{
    DEFAULT_CHUNK_RECORDS, DEFAULT_MAX_UPLOAD_BYTES, MAX_RECORD_BYTES, NAME_NOT_COLLECTED,
    SubmissionRequest, SubmissionSettings, SubmissionUpload, Submitter, begin_submission,
    operator_submission_report, procedure_history, process_submission, quarantine,
    resubmit_quarantined, run_submission_worker, submission_job, submission_report,
    submission_report_job, submit_file,
};
pub use surveillance::{
    COHORT_KEEP_WHILE_USED, COHORT_REFRESH, COHORT_REUSE, cached_cohorts, keep_cohorts_warm,
    refresh_cohorts, warm_cohorts,
};
pub use surveillance::{
    CompletenessRow, DeviceGrouping, DeviceRating, Estimate, FEEDBACK_YEARS, FeedbackReport,
    FeedbackSubject, FunnelOutlier, FunnelSummary, HazardRatio, HorizonRule, ImplantOutlier,
    IndicationAdjustment, OutlierConfig, OutlierReport, OverdispersionMethod, REPORT_YEARS,
    RatingConfig, RatingLevel, RatingOutcome, RevisionEstimate, RevisionRow, SignalConfig,
    SignalResult, SignalSummary, SurveillanceConfig, SurveillanceRun, SurvivorshipPoint,
    SurvivorshipReport, VolumeRow, device_survivorship, feedback_csv, feedback_report,
    latest_alerts, latest_surveillance_run, operator_feedback_report, operator_survivorship,
    run_surveillance, surveil_after_ingests, surveillance_alerts,
};
pub use timeline::{
    own_patient_access_log, own_patient_timeline, patient_access_log, patient_timeline,
};

// The store's records are the service's results; re-exported so callers need not name the
// store crate (the web layer must never reach the `Store` itself).
pub use mdor_store::{
    AccessReview, AccessReviewId, AccessReviewQuery, AccountId, AccountRole, ApiToken, AuditEvent,
    Backend, BulkLoadOutcome, Counts, DeviceModel, DeviceModelId, ImplantId, NewConsultant,
    NewOrganisation, OpenFlagCount, OrganisationId, OrganisationKind, PatientAccess, PatientId,
    PatientTimeline, ProcedureId, ProcedureRecord, ProcedureSourceVersion, QuarantineEntry,
    RecallCase, RecallCaseCriteria, RecallCaseGrowth, RecallCaseId, RecallCriteria, RecallEntry,
    RecallEntryId, RecallEntryImplant, RecallRow, RecallStatus, RecallWorkCount, RecordEffect,
    RecordOutcome, RemovalId, RequestId, ReviewDecision, Role, SessionAssurance, SessionFactor,
    SessionId, StoredAlert, StoredImplant, StoredRemoval, StoredSession, SubmissionCounts,
    SubmissionFormat, SubmissionJob, SubmissionJobId, SubmissionMonth, SubmissionRecord,
    SubmissionRecordId, SubmissionState, TimelineImplant, TimelineProcedure, TimelineRecall,
    TimelineRemoval, TokenId, WebauthnCredentialId,
};
