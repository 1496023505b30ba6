//! Records as the store writes and reads them: ids, prepared inputs and query results.

use crate::accounts::AccountId;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use mdor_domain::record::{RemovalKind, Submission};
use mdor_domain::rules::FollowUpFlag;
use mdor_domain::{OdsCode, UdiDi};

macro_rules! id_type {
    ($name:ident) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}
id_type!(OrganisationId);
id_type!(PatientId);
id_type!(ProcedureId);
id_type!(ImplantId);
id_type!(RemovalId);
id_type!(DeviceModelId);
id_type!(TokenId);

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What kind of body an organisation is; decides which roles its tokens may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrganisationKind {
    Provider,
    Regulator,
    Registry,
    Manufacturer,
}

impl OrganisationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OrganisationKind::Provider => "provider",
            OrganisationKind::Regulator => "regulator",
            OrganisationKind::Registry => "registry",
            OrganisationKind::Manufacturer => "manufacturer",
        }
    }

    pub fn parse(input: &str) -> Option<OrganisationKind> {
        match input {
            "provider" => Some(OrganisationKind::Provider),
            "regulator" => Some(OrganisationKind::Regulator),
            "registry" => Some(OrganisationKind::Registry),
            "manufacturer" => Some(OrganisationKind::Manufacturer),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewOrganisation {
    pub ods_code: OdsCode,
    pub name: String,
    pub kind: OrganisationKind,
    pub region: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Organisation {
    pub id: OrganisationId,
    pub ods_code: String,
    pub name: String,
    pub kind: OrganisationKind,
    pub region: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewConsultant {
    pub gmc_number: mdor_domain::GmcNumber,
    pub family_name: Option<String>,
    pub given_name: Option<String>,
    pub specialty: Option<String>,
    pub organisation: Option<OrganisationId>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeviceModel {
    pub id: DeviceModelId,
    pub udi_di: String,
    pub issuer: String,
    pub manufacturer: String,
    pub brand: String,
    pub model: String,
    pub device_type: String,
    pub risk_class: String,
    pub registry: String,
}

/// What the service decided about one device before storing it.
#[derive(Debug, Clone)]
pub struct PreparedImplant {
    pub device_model: Option<DeviceModelId>,
    pub flags: Vec<FollowUpFlag>,
}

/// A validated submission with the service's decisions attached.
/// `implants` must have one entry per device; the store refuses it otherwise.
#[derive(Debug, Clone)]
pub struct PreparedSubmission {
    pub submission: Submission,
    pub provider: OrganisationId,
    /// One per device, in the same order.
    pub implants: Vec<PreparedImplant>,
    pub received_at: DateTime<Utc>,
    /// The patient's identifiers already sealed (`FieldCipher::seal_patient`) by whoever
    /// prepared the submission, so that a bulk commit need not: a bulk submission seals them
    /// on the thread that checks records. The store re-seals them instead unless they carry
    /// this patient's blind index and the current key (`FieldCipher::presealed_or_seal`).
    pub sealed_patient: Option<crate::field_crypto::SealedPatient>,
}

impl PreparedSubmission {
    /// Refuses a submission whose decisions do not match its devices one to one, which
    /// would otherwise drop devices silently.
    pub(crate) fn check_shape(&self) -> Result<(), crate::StoreError> {
        let (devices, implants) = (self.submission.devices.len(), self.implants.len());
        if devices == implants {
            return Ok(());
        }
        Err(crate::StoreError::Corrupt(format!(
            "prepared submission has {implants} implant decisions for {devices} devices"
        )))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StoredImplant {
    pub id: ImplantId,
    pub position: i64,
    pub udi_di: String,
    pub device_model: Option<DeviceModelId>,
    pub lot: Option<String>,
    pub serial: Option<String>,
    pub expiry: Option<NaiveDate>,
    pub manufactured: Option<NaiveDate>,
    pub raw_scan: Option<String>,
    pub entry_type: String,
    pub flags: Vec<String>,
    pub removal: Option<StoredRemoval>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StoredRemoval {
    pub id: RemovalId,
    pub kind: String,
    pub removal_date: NaiveDate,
    pub reason: Option<String>,
    pub revising_provider: String,
}

/// A stored procedure with its patient and implants, as read back.
#[derive(Debug, Clone)]
pub struct ProcedureRecord {
    pub id: ProcedureId,
    pub provider: OrganisationId,
    pub provider_ods: String,
    pub patient_id: PatientId,
    pub nhs_number: String,
    pub family_name: String,
    pub given_name: String,
    pub date_of_birth: NaiveDate,
    pub sex: String,
    pub postcode: Option<String>,
    pub date_of_death: Option<NaiveDate>,
    pub consultant_gmc: String,
    pub procedure_date: NaiveDate,
    pub opcs4_code: Option<String>,
    pub opcs4_version: Option<String>,
    pub snomed_ct_id: Option<i64>,
    pub laterality: String,
    pub registry: String,
    pub local_record_id: String,
    pub created_at: DateTime<Utc>,
    /// Why it was done, when the dataset records it.
    pub indication: Option<String>,
    pub implants: Vec<StoredImplant>,
}

#[derive(Debug, Clone)]
pub struct ImplantContext {
    pub implant: ImplantId,
    pub procedure: ProcedureId,
    pub provider: OrganisationId,
    pub patient: PatientId,
    pub procedure_date: NaiveDate,
    pub date_of_death: Option<NaiveDate>,
    pub already_removed: bool,
}

#[derive(Debug, Clone)]
pub struct NewRemoval {
    pub implant: ImplantId,
    pub kind: RemovalKind,
    pub removal_date: NaiveDate,
    pub reason: Option<String>,
    pub revising_provider: OrganisationId,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct PatientBounds {
    pub patient: PatientId,
    /// Procedures the patient has, with the organisations that performed them.
    pub providers: Vec<OrganisationId>,
    pub latest_procedure: Option<NaiveDate>,
    pub latest_removal: Option<NaiveDate>,
    pub date_of_death: Option<NaiveDate>,
}

/// A recall's selection: one UDI-DI and optional narrowing criteria.
#[derive(Debug, Clone)]
pub struct RecallCriteria {
    pub udi_di: UdiDi,
    pub lot: Option<String>,
    pub serial: Option<String>,
    pub expiry_from: Option<NaiveDate>,
    pub expiry_to: Option<NaiveDate>,
    pub implanted_from: Option<NaiveDate>,
    pub implanted_to: Option<NaiveDate>,
    /// Only implants with id greater than this (keyset paging).
    pub after: Option<ImplantId>,
    pub limit: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecallRow {
    pub implant_id: ImplantId,
    pub procedure_id: ProcedureId,
    pub procedure_date: NaiveDate,
    pub udi_di: String,
    pub lot: Option<String>,
    pub serial: Option<String>,
    pub expiry: Option<NaiveDate>,
    pub nhs_number: String,
    pub family_name: String,
    pub given_name: String,
    pub date_of_birth: NaiveDate,
    pub postcode: Option<String>,
    pub date_of_death: Option<NaiveDate>,
    pub provider_ods: String,
    pub provider_name: String,
    pub removal_date: Option<NaiveDate>,
    /// The patient, by id: the audit names every patient a recall returned.
    pub patient: PatientId,
}

/// What a token may do. Roles beyond these arrive with staff accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    ProviderSubmitter,
    Regulator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ProviderSubmitter => "provider_submitter",
            Role::Regulator => "regulator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(input: &str) -> Option<Role> {
        match input {
            "provider_submitter" => Some(Role::ProviderSubmitter),
            "regulator" => Some(Role::Regulator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewApiToken {
    /// SHA-256 of the secret, hex; the secret itself is never stored.
    pub token_hash: String,
    pub organisation: OrganisationId,
    pub role: Role,
    pub label: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiToken {
    pub id: TokenId,
    pub organisation: OrganisationId,
    pub organisation_ods: String,
    pub role: Role,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewIdempotencyRecord {
    pub token: TokenId,
    pub key: String,
    pub request_hash: String,
    pub response_status: u16,
    pub response_body: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub request_hash: String,
    pub response_status: u16,
    pub response_body: String,
}

/// Pre-validated submissions for `bulk_load`.
#[derive(Debug, Clone, Default)]
pub struct BulkBatch {
    pub submissions: Vec<PreparedSubmission>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BulkLoadOutcome {
    pub procedures: u64,
    pub implants: u64,
    pub new_patients: u64,
    /// Indexes of records whose (provider, local record id) was already stored: skipped, not
    /// overwritten.
    pub duplicates: Vec<usize>,
    /// Indexes of records whose NHS number is stored with another date of birth: not loaded.
    pub patient_mismatches: Vec<usize>,
}

/// A removal that names the implant by where it was recorded.
#[derive(Debug, Clone)]
pub struct BulkRemoval {
    pub provider: OrganisationId,
    pub local_record_id: String,
    pub position: i64,
    pub kind: RemovalKind,
    pub removal_date: NaiveDate,
    pub reason: Option<String>,
    pub revising_provider: OrganisationId,
    pub recorded_at: DateTime<Utc>,
}

/// What happened to a batch of bulk removals, by index into the batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BulkRemovalReport {
    /// Removals naming no stored implant.
    pub unresolved: Vec<usize>,
    /// Removals of implants that already have one (e.g. the same dataset loaded twice):
    /// the stored removal is kept and the new one is not written.
    pub already_recorded: Vec<usize>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub organisations: i64,
    pub consultants: i64,
    pub device_models: i64,
    pub patients: i64,
    pub procedures: i64,
    pub implants: i64,
    pub removals: i64,
    pub deaths: i64,
    pub open_flags: i64,
}

id_type!(RecallCaseId);
id_type!(RecallEntryId);
id_type!(AuditEventId);

/// A recall or field safety case as the regulator opens it. A device's implants match when
/// their UDI-DI is one of `udi_dis` and every criterion given holds; lots and serials match
/// when listed or inside the range (compared as text), and an implant whose lot, serial,
/// expiry or manufacture date was not recorded matches too: a recall errs towards including.
#[derive(Debug, Clone)]
pub struct NewRecallCase {
    pub reference: String,
    pub title: String,
    pub reason: String,
    pub opened_by: OrganisationId,
    pub opened_at: DateTime<Utc>,
    pub criteria: RecallCaseCriteria,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RecallCaseCriteria {
    pub udi_dis: Vec<String>,
    pub lots: Vec<String>,
    pub lot_range: Option<(String, String)>,
    pub serials: Vec<String>,
    pub serial_range: Option<(String, String)>,
    pub expiry_from: Option<NaiveDate>,
    pub expiry_to: Option<NaiveDate>,
    pub manufactured_from: Option<NaiveDate>,
    pub manufactured_to: Option<NaiveDate>,
    pub implanted_from: Option<NaiveDate>,
    pub implanted_to: Option<NaiveDate>,
}

/// How many implants and patient work items a case creation or refresh added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RecallCaseGrowth {
    pub implants: u64,
    pub patients: u64,
}

/// Status of one patient's follow-up in a case, in the order work normally proceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecallStatus {
    Identified,
    ProviderNotified,
    PatientContacted,
    Reviewed,
    Explanted,
    NoAction,
}

impl RecallStatus {
    pub const ALL: [RecallStatus; 6] = [
        RecallStatus::Identified,
        RecallStatus::ProviderNotified,
        RecallStatus::PatientContacted,
        RecallStatus::Reviewed,
        RecallStatus::Explanted,
        RecallStatus::NoAction,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecallStatus::Identified => "identified",
            RecallStatus::ProviderNotified => "provider_notified",
            RecallStatus::PatientContacted => "patient_contacted",
            RecallStatus::Reviewed => "reviewed",
            RecallStatus::Explanted => "explanted",
            RecallStatus::NoAction => "no_action",
        }
    }

    pub fn parse(input: &str) -> Option<RecallStatus> {
        RecallStatus::ALL.into_iter().find(|s| s.as_str() == input)
    }

    /// Explanted and no action close a patient's follow-up.
    pub fn is_final(self) -> bool {
        matches!(self, RecallStatus::Explanted | RecallStatus::NoAction)
    }
}

/// A case with its criteria and how its work stands, per provider and status.
#[derive(Debug, Clone, Serialize)]
pub struct RecallCase {
    pub id: RecallCaseId,
    pub reference: String,
    pub title: String,
    pub reason: String,
    pub opened_by: String,
    pub opened_at: DateTime<Utc>,
    pub criteria: RecallCaseCriteria,
    pub implants: u64,
    pub work: Vec<RecallWorkCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecallWorkCount {
    pub provider_ods: String,
    pub provider_name: String,
    pub status: RecallStatus,
    pub patients: u64,
}

/// A page of a case's patient work items, optionally one provider's.
#[derive(Debug, Clone)]
pub struct RecallWorkQuery {
    pub case_id: RecallCaseId,
    pub provider: Option<OrganisationId>,
    pub after: Option<RecallEntryId>,
    pub limit: u32,
}

/// One patient to follow up, with the latest contact details the registry holds and the
/// affected implants that provider put in.
#[derive(Debug, Clone, Serialize)]
pub struct RecallEntry {
    pub id: RecallEntryId,
    pub status: RecallStatus,
    pub status_at: DateTime<Utc>,
    pub provider_ods: String,
    pub provider_name: String,
    pub nhs_number: String,
    pub family_name: String,
    pub given_name: String,
    pub date_of_birth: NaiveDate,
    pub postcode: Option<String>,
    pub date_of_death: Option<NaiveDate>,
    /// The patient, by id: the audit names every patient a work-list page showed.
    pub patient: PatientId,
    pub implants: Vec<RecallEntryImplant>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecallEntryImplant {
    pub implant_id: ImplantId,
    pub procedure_id: ProcedureId,
    pub procedure_date: NaiveDate,
    pub local_record_id: String,
    pub udi_di: String,
    pub lot: Option<String>,
    pub serial: Option<String>,
    pub expiry: Option<NaiveDate>,
    pub removal_date: Option<NaiveDate>,
}

/// Where a work item stands, for permission checks before a status change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecallEntryState {
    pub provider: OrganisationId,
    pub status: RecallStatus,
}

/// A status change, applied only if the entry is still in `from` (so two people updating
/// the same patient cannot overwrite each other unseen).
#[derive(Debug, Clone)]
pub struct RecallStatusChange {
    pub case_id: RecallCaseId,
    pub entry: RecallEntryId,
    pub from: RecallStatus,
    pub to: RecallStatus,
    pub note: Option<String>,
    pub at: DateTime<Utc>,
    pub by_organisation: OrganisationId,
    /// The role as the audit names it (`Principal::audit_role` in the service).
    pub by_role: &'static str,
}

/// One access to identifiable data. `record_count` is filled in by the store when the
/// access is a read whose size it only learns while reading.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    pub at: DateTime<Utc>,
    pub organisation: OrganisationId,
    /// The caller's role as stored: a token's role (`admin`, …) or an account's
    /// (`system_admin`, `consultant`, …).
    pub role: &'static str,
    pub token: Option<TokenId>,
    /// The account whose session made the access; `None` for an API token.
    pub account: Option<AccountId>,
    pub action: &'static str,
    pub resource: String,
    pub patient: Option<PatientId>,
    pub record_count: u64,
    pub purpose: &'static str,
    pub outcome: &'static str,
    /// Set on a break-glass access, the reason sealed with its commitment
    /// (`FieldCipher::seal_detail` for `Field::BreakGlassReason`): the store writes the review
    /// item (`access_review`), naming this entry and holding the sealed reason, in the same
    /// transaction as the entry, whose leaf hash includes the commitment (version 5).
    pub break_glass: Option<crate::field_crypto::SealedDetail>,
    /// The HTTP request that made the access; `None` for command-line and background work.
    pub request: Option<RequestId>,
    /// Every patient a multi-patient read returned (a recall query, a page of a recall work
    /// list or its export), so that the read appears in each one's access log: the store
    /// fills it from the rows it read, writes it to `audit_named_patient` with the entry and
    /// hashes it into the leaf (encoding version 4). Empty for every other entry.
    pub patients: Vec<PatientId>,
}

/// The id the web layer gives each HTTP request (a UUID it generates itself, never the
/// client's), carried by its tracing span, its `X-Request-Id` response header and every audit
/// entry the request writes, so that an entry leads to the request's log lines and back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// The longest id accepted: a UUID is 36 characters.
    pub const MAX_LEN: usize = 64;

    /// `text` as a request id: 1 to 64 ASCII letters, digits and hyphens, so that an id can
    /// never smuggle separators or control characters into the audit or a log line.
    pub fn parse(text: &str) -> Option<RequestId> {
        let fits = !text.is_empty()
            && text.len() <= RequestId::MAX_LEN
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        fits.then(|| RequestId(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    pub id: AuditEventId,
    pub at: DateTime<Utc>,
    pub organisation_ods: String,
    pub role: String,
    pub token: Option<TokenId>,
    pub action: String,
    pub resource: String,
    pub patient: Option<PatientId>,
    pub record_count: u64,
    pub purpose: String,
    pub outcome: String,
    /// The HTTP request behind the entry, when there was one.
    pub request_id: Option<String>,
}

/// One audit entry as the Merkle log sees it: the stored columns (organisation, token and
/// patient by id), its position `seq` (1, 2, 3, … with no gaps) and the leaf hash stored with
/// it, which is `None` only for entries written before leaf hashes were stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLogEntry {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub organisation: OrganisationId,
    pub role: String,
    pub token: Option<TokenId>,
    /// The account whose session made the access (encoding version 2 when present).
    pub account: Option<AccountId>,
    pub action: String,
    pub resource: String,
    pub patient: Option<PatientId>,
    pub record_count: u64,
    pub purpose: String,
    pub outcome: String,
    /// The HTTP request behind the entry (encoding version 3 when present); text as stored.
    pub request_id: Option<String>,
    /// The patients a multi-patient read named (encoding version 4 when any), ascending and
    /// without repeats.
    pub patients: Vec<PatientId>,
    /// The commitment to a text a person typed with this entry (a break-glass reason, a
    /// review decision and its note; `FieldCipher::seal_detail`): encoding version 5 when
    /// present. As stored: 32 bytes unless the row was tampered with.
    pub detail_digest: Option<Vec<u8>>,
    /// As stored: 32 bytes unless the row was tampered with.
    pub leaf_hash: Option<Vec<u8>>,
}

impl AuditLogEntry {
    /// The entry `event` becomes at position `seq`, its instant cut to whole microseconds
    /// as both engines store it; the leaf hash is computed from this, not stored in it.
    pub fn appended(seq: u64, event: &NewAuditEvent) -> AuditLogEntry {
        AuditLogEntry {
            seq,
            at: crate::audit_log::audit_instant(event.at),
            organisation: event.organisation,
            role: event.role.to_string(),
            token: event.token,
            account: event.account,
            action: event.action.to_string(),
            resource: event.resource.clone(),
            patient: event.patient,
            record_count: event.record_count,
            purpose: event.purpose.to_string(),
            outcome: event.outcome.to_string(),
            request_id: event.request.as_ref().map(|r| r.as_str().to_string()),
            patients: patients_named(&event.patients),
            detail_digest: event.break_glass.as_ref().map(|d| d.digest.to_vec()),
            leaf_hash: None,
        }
    }
}

/// Patients as an entry names them: ascending, each once.
pub fn patients_named(patients: &[PatientId]) -> Vec<PatientId> {
    let mut named = patients.to_vec();
    named.sort_unstable();
    named.dedup();
    named
}

/// A signed checkpoint of the audit log, kept in the database for reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditCheckpoint {
    pub tree_size: u64,
    pub root_hash: [u8; 32],
    pub created_at: DateTime<Utc>,
    pub key_name: String,
    /// The signed note exactly as exported.
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCheckpoint {
    pub id: i64,
    pub tree_size: u64,
    pub root_hash: [u8; 32],
    pub created_at: DateTime<Utc>,
    pub key_name: String,
    pub note: String,
}

/// One access to one patient's record, as the patient may see it: who (organisation and
/// role, never the token), what, why, when and with what result.
#[derive(Debug, Clone, Serialize)]
pub struct PatientAccess {
    pub at: DateTime<Utc>,
    pub organisation_ods: String,
    pub organisation_name: String,
    pub role: String,
    pub action: String,
    pub purpose: String,
    pub outcome: String,
    /// How many records the read returned, all patients' together.
    pub record_count: u64,
    /// How many patients a multi-patient read (a recall query, a work-list page or export)
    /// named, this one among them, so that its `record_count` is not taken for this patient's
    /// own; 0 for a read of this patient's record alone.
    pub patients_named: u64,
}

/// Everything the registry holds on one patient across every registry: the data behind an
/// implant card.
#[derive(Debug, Clone, Serialize)]
pub struct PatientTimeline {
    pub patient: PatientId,
    pub nhs_number: String,
    pub family_name: String,
    pub given_name: String,
    pub date_of_birth: NaiveDate,
    pub sex: String,
    pub postcode: Option<String>,
    pub date_of_death: Option<NaiveDate>,
    /// Oldest first.
    pub procedures: Vec<TimelineProcedure>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineProcedure {
    pub procedure_id: ProcedureId,
    pub procedure_date: NaiveDate,
    pub registry: String,
    pub provider_ods: String,
    pub provider_name: String,
    pub consultant_gmc: String,
    pub opcs4_code: Option<String>,
    pub snomed_ct_id: Option<i64>,
    pub laterality: String,
    pub local_record_id: String,
    pub implants: Vec<TimelineImplant>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineImplant {
    pub implant_id: ImplantId,
    pub position: i64,
    pub udi_di: String,
    /// From the register; absent when the UDI-DI is not (yet) in it.
    pub manufacturer: Option<String>,
    pub brand: Option<String>,
    pub model: Option<String>,
    pub device_type: Option<String>,
    pub lot: Option<String>,
    pub serial: Option<String>,
    pub expiry: Option<NaiveDate>,
    pub manufactured: Option<NaiveDate>,
    pub entry_type: String,
    pub removal: Option<TimelineRemoval>,
    /// Recall cases that include this implant, with the patient's follow-up status.
    pub recalls: Vec<TimelineRecall>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineRemoval {
    pub kind: String,
    pub removal_date: NaiveDate,
    pub reason: Option<String>,
    pub revising_provider: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineRecall {
    pub case_id: RecallCaseId,
    pub reference: String,
    pub title: String,
    pub status: RecallStatus,
}

id_type!(SubmissionJobId);
id_type!(SubmissionRecordId);

/// The format of a submitted file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubmissionFormat {
    Ndjson,
    Csv,
}

impl SubmissionFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            SubmissionFormat::Ndjson => "ndjson",
            SubmissionFormat::Csv => "csv",
        }
    }

    pub fn parse(input: &str) -> Option<SubmissionFormat> {
        match input {
            "ndjson" => Some(SubmissionFormat::Ndjson),
            "csv" => Some(SubmissionFormat::Csv),
            _ => None,
        }
    }
}

/// Where a job stands. Queued jobs wait for the server's worker; a processing job whose
/// process died is resumed from its last committed chunk when the server starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubmissionState {
    Queued,
    Processing,
    Completed,
    Failed,
}

impl SubmissionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SubmissionState::Queued => "queued",
            SubmissionState::Processing => "processing",
            SubmissionState::Completed => "completed",
            SubmissionState::Failed => "failed",
        }
    }

    pub fn parse(input: &str) -> Option<SubmissionState> {
        match input {
            "queued" => Some(SubmissionState::Queued),
            "processing" => Some(SubmissionState::Processing),
            "completed" => Some(SubmissionState::Completed),
            "failed" => Some(SubmissionState::Failed),
            _ => None,
        }
    }
}

/// A job as created when its file has been received in full.
#[derive(Debug, Clone)]
pub struct NewSubmissionJob {
    pub organisation: OrganisationId,
    pub token: Option<TokenId>,
    /// `token N` for an API upload, `operator` for the CLI.
    pub submitted_by: String,
    pub registry: String,
    pub dataset_version: String,
    pub format: SubmissionFormat,
    pub spool_path: String,
    pub file_bytes: u64,
    pub state: SubmissionState,
    /// The quarantined record this job's single record corrects, when resubmitted by id.
    pub resolves_quarantine: Option<SubmissionRecordId>,
    pub created_at: DateTime<Utc>,
}

/// Counts of what a job's records became, so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SubmissionCounts {
    pub accepted: u64,
    pub accepted_with_warnings: u64,
    pub rejected: u64,
    /// Accepted records that created a procedure.
    pub created: u64,
    /// Accepted records that changed a stored procedure (a new version).
    pub corrected: u64,
    /// Accepted records identical to the stored procedure: nothing changed.
    pub unchanged: u64,
}

impl SubmissionCounts {
    pub fn records(&self) -> u64 {
        self.accepted + self.accepted_with_warnings + self.rejected
    }

    pub fn add(&mut self, outcome: RecordOutcome, effect: RecordEffect) {
        match outcome {
            RecordOutcome::Accepted => self.accepted += 1,
            RecordOutcome::AcceptedWithWarnings => self.accepted_with_warnings += 1,
            RecordOutcome::Rejected => self.rejected += 1,
        }
        match effect {
            RecordEffect::Created => self.created += 1,
            RecordEffect::Corrected => self.corrected += 1,
            RecordEffect::Unchanged => self.unchanged += 1,
            RecordEffect::None => {}
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SubmissionJob {
    pub id: SubmissionJobId,
    pub organisation: OrganisationId,
    pub organisation_ods: String,
    pub token: Option<TokenId>,
    pub submitted_by: String,
    pub registry: String,
    pub dataset_version: String,
    pub format: SubmissionFormat,
    pub spool_path: String,
    pub file_bytes: u64,
    pub state: SubmissionState,
    /// Known once the file has been counted, before the first chunk.
    pub total_records: Option<u64>,
    pub records_done: u64,
    pub counts: SubmissionCounts,
    pub resume_offset: u64,
    pub resume_line: u64,
    pub resolves_quarantine: Option<SubmissionRecordId>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub failure: Option<String>,
}

/// Whether a record was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordOutcome {
    Accepted,
    AcceptedWithWarnings,
    Rejected,
}

impl RecordOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordOutcome::Accepted => "accepted",
            RecordOutcome::AcceptedWithWarnings => "accepted_with_warnings",
            RecordOutcome::Rejected => "rejected",
        }
    }

    pub fn parse(input: &str) -> Option<RecordOutcome> {
        match input {
            "accepted" => Some(RecordOutcome::Accepted),
            "accepted_with_warnings" => Some(RecordOutcome::AcceptedWithWarnings),
            "rejected" => Some(RecordOutcome::Rejected),
            _ => None,
        }
    }
}

/// What an accepted record did to the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordEffect {
    Created,
    Corrected,
    Unchanged,
    /// A rejected record changes nothing.
    None,
}

impl RecordEffect {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordEffect::Created => "created",
            RecordEffect::Corrected => "corrected",
            RecordEffect::Unchanged => "unchanged",
            RecordEffect::None => "none",
        }
    }

    pub fn parse(input: &str) -> Option<RecordEffect> {
        match input {
            "created" => Some(RecordEffect::Created),
            "corrected" => Some(RecordEffect::Corrected),
            "unchanged" => Some(RecordEffect::Unchanged),
            "none" => Some(RecordEffect::None),
            _ => None,
        }
    }
}

/// One chunk of a job's records, committed with the job's progress in one transaction.
#[derive(Debug, Clone)]
pub struct SubmissionChunk {
    pub job: SubmissionJobId,
    pub organisation: OrganisationId,
    pub token: Option<TokenId>,
    pub registry: String,
    pub dataset_version: String,
    pub received_at: DateTime<Utc>,
    /// The job's `resume_offset` this chunk starts at; the commit is refused (as a
    /// `Conflict`) when the job has moved on, so a chunk is never committed twice.
    pub from_offset: u64,
    /// Where the next chunk starts: byte offset in the spooled file and records read.
    pub to_offset: u64,
    pub to_line: u64,
    /// Set on the chunk that ends the file: the job is completed in the same transaction.
    pub last: bool,
    /// The local record ids are unique within a chunk (the service starts a new chunk
    /// otherwise), so that a later record of a file sees an earlier one as stored.
    pub records: Vec<ChunkRecord>,
}

#[derive(Debug, Clone)]
pub struct ChunkRecord {
    /// The record's line in the file (NDJSON), or its row number counting the header as 1 (CSV).
    pub line: u64,
    pub local_record_id: Option<String>,
    /// The record as received, as JSON text, packed (`PackedRecord::pack`) where it was
    /// checked, so that the commit only seals it.
    pub record: crate::PackedRecord,
    pub body: ChunkRecordBody,
}

#[derive(Debug, Clone)]
pub enum ChunkRecordBody {
    Valid {
        prepared: Box<PreparedSubmission>,
        /// Identifies the record's meaning: registry, version and canonical values.
        content_hash: String,
        /// Warnings as a JSON array, when there are any.
        warnings: Option<String>,
        /// The record names the patient; otherwise a correction keeps the stored names.
        names_given: bool,
    },
    /// Errors as a JSON array of `{field, code, message}`.
    Rejected { errors: String },
}

/// What became of one record of a chunk, in the chunk's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRecordResult {
    pub outcome: RecordOutcome,
    pub effect: RecordEffect,
    pub procedure: Option<ProcedureId>,
    /// Set when the store rejected a valid record (a patient's date of birth differs, a
    /// correction that would change devices with recorded removals): the errors as JSON.
    pub store_errors: Option<String>,
}

/// One line of a job's report.
#[derive(Debug, Clone, Serialize)]
pub struct SubmissionRecord {
    pub id: SubmissionRecordId,
    pub job: SubmissionJobId,
    pub line: u64,
    pub local_record_id: Option<String>,
    pub outcome: RecordOutcome,
    pub effect: RecordEffect,
    pub procedure: Option<ProcedureId>,
    /// Errors of a rejected record, warnings of an accepted one (JSON array).
    pub messages: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// A rejected record waiting in its organisation's quarantine (or resolved since).
#[derive(Debug, Clone, Serialize)]
pub struct QuarantineEntry {
    pub id: SubmissionRecordId,
    pub job: SubmissionJobId,
    pub line: u64,
    pub organisation: OrganisationId,
    pub organisation_ods: String,
    pub registry: String,
    pub dataset_version: String,
    pub local_record_id: Option<String>,
    /// The record as received (JSON text).
    pub record: String,
    /// The errors (JSON array).
    pub errors: String,
    pub received_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by_job: Option<SubmissionJobId>,
}

/// Which quarantine entries to list.
#[derive(Debug, Clone)]
pub struct QuarantineQuery {
    /// One organisation's entries, or all (administrators).
    pub organisation: Option<OrganisationId>,
    pub include_resolved: bool,
    pub after: Option<SubmissionRecordId>,
    pub limit: u32,
}

/// One version of a procedure's raw input and provenance: the current one first.
#[derive(Debug, Clone, Serialize)]
pub struct ProcedureSourceVersion {
    pub version: u64,
    pub current: bool,
    pub registry: Option<String>,
    pub dataset_version: Option<String>,
    /// The record as received (JSON text); absent for a version from the single-record API.
    pub record: Option<String>,
    /// The core record as it stood before it was corrected (JSON text); absent for the
    /// current version.
    pub core_record: Option<String>,
    pub warnings: Option<String>,
    pub job: Option<SubmissionJobId>,
    pub line: Option<u64>,
    pub organisation: Option<OrganisationId>,
    pub token: Option<TokenId>,
    pub received_at: Option<DateTime<Utc>>,
    pub superseded_at: Option<DateTime<Utc>>,
}

// ---- Data quality (issue 5 part 5) ----

/// How many procedures a provider is expected to perform in a month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedActivity {
    pub organisation: OrganisationId,
    pub month: mdor_domain::Month,
    /// At most 4,294,967,295: far above any provider's month, and it keeps the figure in a
    /// signed 64-bit column on both engines without checks.
    pub expected_procedures: u32,
}

/// One provider's figures over a range of months, read in one snapshot: the counts from which
/// the service computes its data quality report. Months without any row are absent from the
/// maps, not zero-filled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderActivity {
    /// Procedures stored for the provider, by the month of their procedure date, whichever
    /// route they came by (single-record API, bulk submission, load).
    pub procedures: std::collections::BTreeMap<mdor_domain::Month, u64>,
    /// Of those, the procedures with at least one open follow-up flag.
    pub procedures_with_open_flags: std::collections::BTreeMap<mdor_domain::Month, u64>,
    /// Bulk submission jobs by the month they were received (UTC), with what their records
    /// became.
    pub submissions: std::collections::BTreeMap<mdor_domain::Month, SubmissionMonth>,
    /// The expected procedure counts loaded for the provider.
    pub expected: std::collections::BTreeMap<mdor_domain::Month, u64>,
    /// Rejected records of jobs received in the range, counted once per field and code they
    /// had an error for; most frequent first, then by field and code.
    pub rejected_errors: Vec<FieldErrorCount>,
    /// Open follow-up flags of procedures dated in the range, by flag; ordered by flag.
    pub open_flags: Vec<OpenFlagCount>,
    /// Rejected records still in the provider's quarantine, whenever they were received.
    pub open_quarantine: u64,
}

/// The bulk submissions of one month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SubmissionMonth {
    pub jobs: u64,
    pub accepted: u64,
    pub accepted_with_warnings: u64,
    pub rejected: u64,
}

/// How many rejected records had an error with this field path and code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldErrorCount {
    pub field: String,
    pub code: String,
    pub records: u64,
}

/// How many procedures and implants have this follow-up flag open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenFlagCount {
    pub flag: String,
    pub procedures: u64,
    pub implants: u64,
}

/// The identifier keys of a database (`mdor keys status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyStatus {
    /// The fingerprint of the key-encryption key the data keys are wrapped by.
    pub kek_id: String,
    /// The field key new values are sealed under.
    pub current_field_key: i64,
    /// Field keys not yet retired: more than one means a rotation is unfinished.
    pub live_field_keys: i64,
    /// Patients whose identifiers were written before encryption and are not sealed yet.
    pub plain_patients: i64,
}

/// What one pass of re-sealing wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ResealReport {
    /// Patients sealed for the first time or moved to the current field key.
    pub patients: u64,
    /// Stored idempotency answers sealed or moved to the current field key.
    pub answers: u64,
    /// Raw submitted records, earlier core records and quarantined records sealed or moved.
    pub records: u64,
    /// Break-glass reasons and review decisions moved to the current field key.
    pub review_details: u64,
    /// Field keys retired because nothing is sealed under them any more.
    pub keys_retired: u64,
}

/// The outcome of `mdor keys rotate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRotation {
    /// An earlier, interrupted rotation was finished instead of a new one started.
    pub resumed: bool,
    /// The key-encryption key the data keys are now wrapped by.
    pub kek_id: String,
    pub current_field_key: i64,
    pub resealed: ResealReport,
}

id_type!(ResearchProjectId);

/// An approved research project, created by the registry's operator.
#[derive(Debug, Clone)]
pub struct NewResearchProject {
    pub reference: String,
    pub title: String,
    pub organisation: OrganisationId,
    pub registry: Option<String>,
    pub approved_by: String,
    pub created_at: DateTime<Utc>,
    /// The approval's last day; `None` when it has no end date.
    pub expires_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResearchProject {
    pub id: ResearchProjectId,
    pub reference: String,
    pub title: String,
    pub organisation: OrganisationId,
    pub organisation_ods: String,
    pub registry: Option<String>,
    pub approved_by: String,
    pub created_at: DateTime<Utc>,
    /// The approval's last day: after it the extract is closed.
    pub expires_on: Option<NaiveDate>,
}

/// What a researcher narrowed a project's extract to, within its approval: procedures
/// implanted in a date range (inclusive) and devices of one type of the register. The default
/// narrows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResearchFilter {
    pub implanted_from: Option<NaiveDate>,
    pub implanted_to: Option<NaiveDate>,
    pub device_type: Option<String>,
}

impl ResearchFilter {
    /// The filter as a query string (`implanted_from=2024-01-01&device_type=hip_cup`), empty
    /// when it narrows nothing: the audit records what was asked for.
    pub fn query_text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(from) = self.implanted_from {
            parts.push(format!("implanted_from={from}"));
        }
        if let Some(to) = self.implanted_to {
            parts.push(format!("implanted_to={to}"));
        }
        if let Some(device_type) = &self.device_type {
            parts.push(format!("device_type={device_type}"));
        }
        parts.join("&")
    }
}

/// One implant of a research extract: no direct identifier, no date that could single a
/// patient out (ages in whole years, the month of the procedure, intervals in days), and the
/// patient named only by the project's pseudonym.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResearchRow {
    /// Where the next page starts; not part of the extract.
    #[serde(skip)]
    pub cursor: i64,
    /// The patient's research pseudonym: HMAC-SHA256 of their blind index under the
    /// project's key, 128 bits in hex; the same patient has the same one within a project.
    pub pseudonym: String,
    pub sex: String,
    /// Whole years from the middle of the birth month to the procedure.
    pub age_at_procedure: i64,
    /// `YYYY-MM`.
    pub procedure_month: String,
    pub provider_ods: String,
    pub registry: String,
    pub laterality: String,
    pub udi_di: String,
    pub removal_kind: Option<String>,
    pub days_to_removal: Option<i64>,
    pub days_to_death: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::RequestId;

    #[test]
    fn a_request_id_is_1_to_64_ascii_letters_digits_and_hyphens() {
        let uuid = "3f2b8c1e-0d4a-4e6b-9a57-1c2d3e4f5a6b";
        assert_eq!(
            RequestId::parse(uuid).map(|id| id.to_string()),
            Some(uuid.into())
        );
        assert!(RequestId::parse(&"a".repeat(64)).is_some());
        for refused in [
            "",
            &"a".repeat(65),
            "id with spaces",
            "id;outcome=ok",
            "id\nforged line",
            "idé",
            "id_underscore",
        ] {
            assert_eq!(RequestId::parse(refused), None, "{refused:?}");
        }
    }
}
