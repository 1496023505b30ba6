//! Row structs decoded by both backends, and their conversion to the store's records.

use chrono::{DateTime, NaiveDate, Utc};

use crate::accounts::AccountId;
use crate::error::StoreError;
use crate::field_crypto::{Field, FieldCipher};
use crate::types::*;

/// A patient's identifiers, opened from their sealed columns.
pub struct OpenedIdentity {
    pub nhs_number: String,
    pub family_name: String,
    pub given_name: String,
    pub date_of_birth: NaiveDate,
    pub postcode: Option<String>,
}

/// Opens a patient's sealed identifiers; `index` is the row's blind index, which names the
/// row in every value's associated data.
pub fn open_identity(
    cipher: &FieldCipher,
    index: &str,
    nhs_number: &str,
    family_name: &str,
    given_name: &str,
    date_of_birth: &str,
    postcode: Option<&str>,
) -> Result<OpenedIdentity, StoreError> {
    let date_of_birth = cipher.open(Field::DateOfBirth, index, date_of_birth)?;
    Ok(OpenedIdentity {
        nhs_number: cipher.open(Field::NhsNumber, index, nhs_number)?,
        family_name: cipher.open(Field::FamilyName, index, family_name)?,
        given_name: cipher.open(Field::GivenName, index, given_name)?,
        date_of_birth: NaiveDate::parse_from_str(&date_of_birth, "%Y-%m-%d")
            .map_err(|_| StoreError::Corrupt("patient.date_of_birth".into()))?,
        postcode: cipher.open_optional(Field::Postcode, index, postcode)?,
    })
}

/// Pages of at least this many rows are opened on two threads. Opening a patient's five
/// sealed fields is five AEAD decryptions; a recall of a large lot (hundreds of implants) spent
/// milliseconds on them, most of the route's p99, while the second core idled.
const PARALLEL_OPEN_ROWS: usize = 64;

/// Opens a page of rows with `open`, in order; a large page is split across two threads.
pub fn open_all<T: Send, U: Send>(
    mut rows: Vec<T>,
    open: impl Fn(T) -> Result<U, StoreError> + Sync,
) -> Result<Vec<U>, StoreError> {
    if rows.len() < PARALLEL_OPEN_ROWS {
        return rows.into_iter().map(&open).collect();
    }
    let second = rows.split_off(rows.len() / 2);
    std::thread::scope(|scope| {
        let helper = scope.spawn(|| second.into_iter().map(&open).collect::<Result<Vec<U>, _>>());
        let first: Result<Vec<U>, StoreError> = rows.into_iter().map(&open).collect();
        let rest = helper
            .join()
            .map_err(|_| StoreError::Corrupt("a thread opening identifiers stopped".into()))?;
        let mut opened = first?;
        opened.extend(rest?);
        Ok(opened)
    })
}

/// The 15th of the month of birth: what analysis counts ages from (`birth_month_mid`).
pub fn birth_month_mid(date_of_birth: NaiveDate) -> NaiveDate {
    use chrono::Datelike;
    date_of_birth.with_day(15).unwrap_or(date_of_birth)
}

/// Opens a sealed date of birth (the check that a returning patient is the same person).
pub fn open_date_of_birth(
    cipher: &FieldCipher,
    index: &str,
    sealed: &str,
) -> Result<NaiveDate, StoreError> {
    let text = cipher.open(Field::DateOfBirth, index, sealed)?;
    NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .map_err(|_| StoreError::Corrupt("patient.date_of_birth".into()))
}

#[derive(sqlx::FromRow)]
pub struct OrganisationRow {
    pub id: i64,
    pub ods_code: String,
    pub name: String,
    pub kind: String,
    pub region: Option<String>,
}

impl TryFrom<OrganisationRow> for Organisation {
    type Error = StoreError;
    fn try_from(row: OrganisationRow) -> Result<Self, StoreError> {
        let kind = OrganisationKind::parse(&row.kind)
            .ok_or_else(|| StoreError::Corrupt(format!("organisation kind '{}'", row.kind)))?;
        Ok(Organisation {
            id: OrganisationId(row.id),
            ods_code: row.ods_code,
            name: row.name,
            kind,
            region: row.region,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct DeviceModelRow {
    pub id: i64,
    pub udi_di: String,
    pub issuer: String,
    pub manufacturer: String,
    pub brand: String,
    pub model: String,
    pub device_type: String,
    pub risk_class: String,
    pub registry: String,
}

impl From<DeviceModelRow> for DeviceModel {
    fn from(row: DeviceModelRow) -> Self {
        DeviceModel {
            id: DeviceModelId(row.id),
            udi_di: row.udi_di,
            issuer: row.issuer,
            manufacturer: row.manufacturer,
            brand: row.brand,
            model: row.model,
            device_type: row.device_type,
            risk_class: row.risk_class,
            registry: row.registry,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct ProcedureRow {
    pub id: i64,
    pub provider_id: i64,
    pub provider_ods: String,
    pub patient_id: i64,
    pub nhs_number_index: String,
    pub nhs_number: String,
    pub family_name: String,
    pub given_name: String,
    pub date_of_birth: String,
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
    pub indication: Option<String>,
}

#[derive(sqlx::FromRow)]
pub struct ImplantRow {
    pub id: i64,
    pub position: i32,
    pub udi_di: String,
    pub device_model_id: Option<i64>,
    pub lot: Option<String>,
    pub serial: Option<String>,
    pub expiry: Option<NaiveDate>,
    pub manufactured: Option<NaiveDate>,
    pub raw_scan: Option<String>,
    pub entry_type: String,
    pub removal_id: Option<i64>,
    pub removal_kind: Option<String>,
    pub removal_date: Option<NaiveDate>,
    pub removal_reason: Option<String>,
    pub revising_provider: Option<String>,
}

#[derive(sqlx::FromRow)]
pub struct FlagRow {
    pub implant_id: i64,
    pub flag: String,
}

/// Assembles a procedure from its row, its implants and their open flags.
pub fn procedure_record(
    cipher: &FieldCipher,
    row: ProcedureRow,
    implants: Vec<ImplantRow>,
    flags: Vec<FlagRow>,
) -> Result<ProcedureRecord, StoreError> {
    let identity = open_identity(
        cipher,
        &row.nhs_number_index,
        &row.nhs_number,
        &row.family_name,
        &row.given_name,
        &row.date_of_birth,
        row.postcode.as_deref(),
    )?;
    let implants = implants
        .into_iter()
        .map(|i| {
            let removal = match (i.removal_id, i.removal_kind, i.removal_date) {
                (Some(id), Some(kind), Some(removal_date)) => Some(StoredRemoval {
                    id: RemovalId(id),
                    kind,
                    removal_date,
                    reason: i.removal_reason,
                    revising_provider: i.revising_provider.unwrap_or_default(),
                }),
                _ => None,
            };
            StoredImplant {
                id: ImplantId(i.id),
                position: i64::from(i.position),
                udi_di: i.udi_di,
                device_model: i.device_model_id.map(DeviceModelId),
                lot: i.lot,
                serial: i.serial,
                expiry: i.expiry,
                manufactured: i.manufactured,
                raw_scan: i.raw_scan,
                entry_type: i.entry_type,
                flags: flags
                    .iter()
                    .filter(|f| f.implant_id == i.id)
                    .map(|f| f.flag.clone())
                    .collect(),
                removal,
            }
        })
        .collect();
    Ok(ProcedureRecord {
        id: ProcedureId(row.id),
        provider: OrganisationId(row.provider_id),
        provider_ods: row.provider_ods,
        patient_id: PatientId(row.patient_id),
        nhs_number: identity.nhs_number,
        family_name: identity.family_name,
        given_name: identity.given_name,
        date_of_birth: identity.date_of_birth,
        sex: row.sex,
        postcode: identity.postcode,
        date_of_death: row.date_of_death,
        consultant_gmc: row.consultant_gmc,
        procedure_date: row.procedure_date,
        opcs4_code: row.opcs4_code,
        opcs4_version: row.opcs4_version,
        snomed_ct_id: row.snomed_ct_id,
        laterality: row.laterality,
        registry: row.registry,
        local_record_id: row.local_record_id,
        created_at: row.created_at,
        indication: row.indication,
        implants,
    })
}

#[derive(sqlx::FromRow)]
pub struct ImplantContextRow {
    pub id: i64,
    pub procedure_id: i64,
    pub provider_id: i64,
    pub patient_id: i64,
    pub procedure_date: NaiveDate,
    pub date_of_death: Option<NaiveDate>,
    pub removals: i64,
}

impl From<ImplantContextRow> for ImplantContext {
    fn from(row: ImplantContextRow) -> Self {
        ImplantContext {
            implant: ImplantId(row.id),
            procedure: ProcedureId(row.procedure_id),
            provider: OrganisationId(row.provider_id),
            patient: PatientId(row.patient_id),
            procedure_date: row.procedure_date,
            date_of_death: row.date_of_death,
            already_removed: row.removals > 0,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct PatientBoundsRow {
    pub id: i64,
    pub date_of_death: Option<NaiveDate>,
    pub latest_procedure: Option<NaiveDate>,
    pub latest_removal: Option<NaiveDate>,
}

#[derive(sqlx::FromRow, serde::Deserialize)]
pub struct RecallDbRow {
    pub implant_id: i64,
    pub procedure_id: i64,
    pub procedure_date: NaiveDate,
    pub udi_di: String,
    pub lot: Option<String>,
    pub serial: Option<String>,
    pub expiry: Option<NaiveDate>,
    pub nhs_number_index: String,
    pub nhs_number: String,
    pub family_name: String,
    pub given_name: String,
    pub date_of_birth: String,
    pub postcode: Option<String>,
    pub date_of_death: Option<NaiveDate>,
    pub provider_ods: String,
    pub provider_name: String,
    pub removal_date: Option<NaiveDate>,
    pub patient_id: i64,
}

impl RecallDbRow {
    pub fn open(self, cipher: &FieldCipher) -> Result<RecallRow, StoreError> {
        let r = self;
        let identity = open_identity(
            cipher,
            &r.nhs_number_index,
            &r.nhs_number,
            &r.family_name,
            &r.given_name,
            &r.date_of_birth,
            r.postcode.as_deref(),
        )?;
        Ok(RecallRow {
            implant_id: ImplantId(r.implant_id),
            procedure_id: ProcedureId(r.procedure_id),
            procedure_date: r.procedure_date,
            udi_di: r.udi_di,
            lot: r.lot,
            serial: r.serial,
            expiry: r.expiry,
            nhs_number: identity.nhs_number,
            family_name: identity.family_name,
            given_name: identity.given_name,
            date_of_birth: identity.date_of_birth,
            postcode: identity.postcode,
            date_of_death: r.date_of_death,
            provider_ods: r.provider_ods,
            provider_name: r.provider_name,
            removal_date: r.removal_date,
            patient: PatientId(r.patient_id),
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct TokenRow {
    pub id: i64,
    pub organisation_id: i64,
    pub organisation_ods: String,
    pub role: String,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<TokenRow> for ApiToken {
    type Error = StoreError;
    fn try_from(row: TokenRow) -> Result<Self, StoreError> {
        let role = Role::parse(&row.role)
            .ok_or_else(|| StoreError::Corrupt(format!("token role '{}'", row.role)))?;
        Ok(ApiToken {
            id: TokenId(row.id),
            organisation: OrganisationId(row.organisation_id),
            organisation_ods: row.organisation_ods,
            role,
            label: row.label,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct IdempotencyRow {
    pub request_hash: String,
    pub response_status: i32,
    pub response_body: String,
}

impl IdempotencyRow {
    /// The record with its answer opened (it is sealed for its token and key).
    pub fn open(
        self,
        cipher: &FieldCipher,
        token: TokenId,
        key: &str,
    ) -> Result<IdempotencyRecord, StoreError> {
        Ok(IdempotencyRecord {
            request_hash: self.request_hash,
            response_status: u16::try_from(self.response_status).unwrap_or(500),
            response_body: cipher.open_response(token.0, key, &self.response_body)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct CountsRow {
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

impl From<CountsRow> for Counts {
    fn from(r: CountsRow) -> Self {
        Counts {
            organisations: r.organisations,
            consultants: r.consultants,
            device_models: r.device_models,
            patients: r.patients,
            procedures: r.procedures,
            implants: r.implants,
            removals: r.removals,
            deaths: r.deaths,
            open_flags: r.open_flags,
        }
    }
}

/// A stored recall status; anything else in the column is corruption, not input.
pub(crate) fn recall_status(stored: &str) -> Result<RecallStatus, StoreError> {
    RecallStatus::parse(stored)
        .ok_or_else(|| StoreError::Corrupt(format!("recall status '{stored}'")))
}

#[derive(sqlx::FromRow)]
pub struct RecallCaseRow {
    pub id: i64,
    pub reference: String,
    pub title: String,
    pub reason: String,
    pub opened_by: String,
    pub opened_at: DateTime<Utc>,
    pub lot_from: Option<String>,
    pub lot_to: Option<String>,
    pub serial_from: Option<String>,
    pub serial_to: Option<String>,
    pub expiry_from: Option<NaiveDate>,
    pub expiry_to: Option<NaiveDate>,
    pub manufactured_from: Option<NaiveDate>,
    pub manufactured_to: Option<NaiveDate>,
    pub implanted_from: Option<NaiveDate>,
    pub implanted_to: Option<NaiveDate>,
}

impl RecallCaseRow {
    pub fn into_case(
        self,
        udi_dis: Vec<String>,
        lots: Vec<String>,
        serials: Vec<String>,
        implants: u64,
        work: Vec<RecallWorkCount>,
    ) -> RecallCase {
        let range = |from: Option<String>, to: Option<String>| from.zip(to);
        RecallCase {
            id: RecallCaseId(self.id),
            reference: self.reference,
            title: self.title,
            reason: self.reason,
            opened_by: self.opened_by,
            opened_at: self.opened_at,
            criteria: RecallCaseCriteria {
                udi_dis,
                lots,
                lot_range: range(self.lot_from, self.lot_to),
                serials,
                serial_range: range(self.serial_from, self.serial_to),
                expiry_from: self.expiry_from,
                expiry_to: self.expiry_to,
                manufactured_from: self.manufactured_from,
                manufactured_to: self.manufactured_to,
                implanted_from: self.implanted_from,
                implanted_to: self.implanted_to,
            },
            implants,
            work,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct RecallEntryRow {
    pub id: i64,
    pub status: String,
    pub status_at: DateTime<Utc>,
    pub provider_ods: String,
    pub provider_name: String,
    pub nhs_number_index: String,
    pub nhs_number: String,
    pub family_name: String,
    pub given_name: String,
    pub date_of_birth: String,
    pub postcode: Option<String>,
    pub date_of_death: Option<NaiveDate>,
    pub patient_id: i64,
}

impl RecallEntryRow {
    pub fn open(self, cipher: &FieldCipher) -> Result<RecallEntry, StoreError> {
        let row = self;
        let identity = open_identity(
            cipher,
            &row.nhs_number_index,
            &row.nhs_number,
            &row.family_name,
            &row.given_name,
            &row.date_of_birth,
            row.postcode.as_deref(),
        )?;
        Ok(RecallEntry {
            id: RecallEntryId(row.id),
            status: recall_status(&row.status)?,
            status_at: row.status_at,
            provider_ods: row.provider_ods,
            provider_name: row.provider_name,
            nhs_number: identity.nhs_number,
            family_name: identity.family_name,
            given_name: identity.given_name,
            date_of_birth: identity.date_of_birth,
            postcode: identity.postcode,
            date_of_death: row.date_of_death,
            patient: PatientId(row.patient_id),
            implants: Vec::new(),
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct RecallEntryImplantRow {
    pub entry_id: i64,
    pub implant_id: i64,
    pub procedure_id: i64,
    pub procedure_date: NaiveDate,
    pub local_record_id: String,
    pub udi_di: String,
    pub lot: Option<String>,
    pub serial: Option<String>,
    pub expiry: Option<NaiveDate>,
    pub removal_date: Option<NaiveDate>,
}

impl From<RecallEntryImplantRow> for RecallEntryImplant {
    fn from(row: RecallEntryImplantRow) -> Self {
        RecallEntryImplant {
            implant_id: ImplantId(row.implant_id),
            procedure_id: ProcedureId(row.procedure_id),
            procedure_date: row.procedure_date,
            local_record_id: row.local_record_id,
            udi_di: row.udi_di,
            lot: row.lot,
            serial: row.serial,
            expiry: row.expiry,
            removal_date: row.removal_date,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct AuditEventRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub organisation_ods: String,
    pub role: String,
    pub token_id: Option<i64>,
    pub action: String,
    pub resource: String,
    pub patient_id: Option<i64>,
    pub record_count: i64,
    pub purpose: String,
    pub outcome: String,
    pub request_id: Option<String>,
}

impl From<AuditEventRow> for AuditEvent {
    fn from(row: AuditEventRow) -> Self {
        AuditEvent {
            id: AuditEventId(row.id),
            at: row.at,
            organisation_ods: row.organisation_ods,
            role: row.role,
            token: row.token_id.map(TokenId),
            action: row.action,
            resource: row.resource,
            patient: row.patient_id.map(PatientId),
            record_count: row.record_count as u64,
            purpose: row.purpose,
            outcome: row.outcome,
            request_id: row.request_id,
        }
    }
}

/// One audit entry as each engine's page query writes it: a JSON array of the columns in
/// table order, the instant as text and the leaf hash in hex.
type AuditLogJson = (
    i64,
    String,
    i64,
    String,
    Option<i64>,
    String,
    String,
    Option<i64>,
    i64,
    String,
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Decodes a page of the audit log aggregated into one JSON array by the engine. Reading a
/// page as one value instead of one row per entry avoids sqlx's per-row and per-value costs,
/// which otherwise dominate verifying a million entries.
pub fn audit_log_page_from_json(json: Option<&str>) -> Result<Vec<AuditLogEntry>, StoreError> {
    let Some(json) = json else {
        return Ok(Vec::new());
    };
    let rows: Vec<AuditLogJson> = serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("audit log page: {e}")))?;
    let mut entries = rows
        .into_iter()
        .map(|row| {
            let (seq, at, organisation, role, token, action, resource, patient, count) = (
                row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8,
            );
            let at = DateTime::parse_from_rfc3339(&at.replacen(' ', "T", 1))
                .map_err(|e| StoreError::Corrupt(format!("audit entry {seq} time '{at}': {e}")))?
                .with_timezone(&Utc);
            let leaf_hash = row
                .11
                .map(|hex| decode_hex(&hex))
                .transpose()
                .map_err(|()| StoreError::Corrupt(format!("audit entry {seq} leaf hash")))?;
            // Aggregated in no particular order; an entry names its patients ascending.
            let patients = match &row.14 {
                None => Vec::new(),
                Some(ids) => ids
                    .split(',')
                    .map(|id| id.trim().parse().map(PatientId))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| {
                        StoreError::Corrupt(format!("audit entry {seq} patients '{ids}': {e}"))
                    })?,
            };
            let patients = crate::types::patients_named(&patients);
            let detail_digest = row
                .15
                .map(|hex| decode_hex(&hex))
                .transpose()
                .map_err(|()| StoreError::Corrupt(format!("audit entry {seq} detail digest")))?;
            Ok(AuditLogEntry {
                seq: seq as u64,
                at,
                organisation: OrganisationId(organisation),
                role,
                token: token.map(TokenId),
                account: row.12.map(AccountId),
                action,
                resource,
                patient: patient.map(PatientId),
                record_count: count as u64,
                purpose: row.9,
                outcome: row.10,
                request_id: row.13,
                patients,
                detail_digest,
                leaf_hash,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    // The engines aggregate in the subquery's order; sorting again costs nothing when it
    // did and keeps the page in position order whatever the plan.
    entries.sort_by_key(|e| e.seq);
    Ok(entries)
}

fn decode_hex(hex: &str) -> Result<Vec<u8>, ()> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(()),
    };
    let bytes = hex.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return Err(());
    }
    bytes
        .chunks(2)
        .map(|pair| Ok(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[derive(sqlx::FromRow)]
pub struct PatientAccessRow {
    pub at: DateTime<Utc>,
    pub organisation_ods: String,
    pub organisation_name: String,
    pub role: String,
    pub action: String,
    pub purpose: String,
    pub outcome: String,
    pub record_count: i64,
    pub patients_named: i64,
}

impl From<PatientAccessRow> for PatientAccess {
    fn from(row: PatientAccessRow) -> Self {
        PatientAccess {
            at: row.at,
            organisation_ods: row.organisation_ods,
            organisation_name: row.organisation_name,
            role: row.role,
            action: row.action,
            purpose: row.purpose,
            outcome: row.outcome,
            record_count: row.record_count as u64,
            patients_named: row.patients_named as u64,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct AuditCheckpointRow {
    pub id: i64,
    pub tree_size: i64,
    pub root_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub key_name: String,
    pub note: String,
}

impl TryFrom<AuditCheckpointRow> for AuditCheckpoint {
    type Error = StoreError;

    fn try_from(row: AuditCheckpointRow) -> Result<Self, StoreError> {
        let root_hash: [u8; 32] = row.root_hash.try_into().map_err(|_| {
            StoreError::Corrupt(format!("audit checkpoint {} root hash length", row.id))
        })?;
        Ok(AuditCheckpoint {
            id: row.id,
            tree_size: row.tree_size as u64,
            root_hash,
            created_at: row.created_at,
            key_name: row.key_name,
            note: row.note,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct TimelinePatientRow {
    pub id: i64,
    pub nhs_number_index: String,
    pub nhs_number: String,
    pub family_name: String,
    pub given_name: String,
    pub date_of_birth: String,
    pub sex: String,
    pub postcode: Option<String>,
    pub date_of_death: Option<NaiveDate>,
}

impl TimelinePatientRow {
    pub fn into_timeline(self, cipher: &FieldCipher) -> Result<PatientTimeline, StoreError> {
        let identity = open_identity(
            cipher,
            &self.nhs_number_index,
            &self.nhs_number,
            &self.family_name,
            &self.given_name,
            &self.date_of_birth,
            self.postcode.as_deref(),
        )?;
        Ok(PatientTimeline {
            patient: PatientId(self.id),
            nhs_number: identity.nhs_number,
            family_name: identity.family_name,
            given_name: identity.given_name,
            date_of_birth: identity.date_of_birth,
            sex: self.sex,
            postcode: identity.postcode,
            date_of_death: self.date_of_death,
            procedures: Vec::new(),
        })
    }
}

/// One implant of a patient with its procedure; consecutive rows share a procedure.
#[derive(sqlx::FromRow)]
pub struct TimelineImplantRow {
    pub procedure_id: i64,
    pub procedure_date: NaiveDate,
    pub registry: String,
    pub provider_ods: String,
    pub provider_name: String,
    pub consultant_gmc: String,
    pub opcs4_code: Option<String>,
    pub snomed_ct_id: Option<i64>,
    pub laterality: String,
    pub local_record_id: String,
    pub implant_id: i64,
    pub position: i64,
    pub udi_di: String,
    pub manufacturer: Option<String>,
    pub brand: Option<String>,
    pub model: Option<String>,
    pub device_type: Option<String>,
    pub lot: Option<String>,
    pub serial: Option<String>,
    pub expiry: Option<NaiveDate>,
    pub manufactured: Option<NaiveDate>,
    pub entry_type: String,
    pub removal_kind: Option<String>,
    pub removal_date: Option<NaiveDate>,
    pub removal_reason: Option<String>,
    pub revising_provider: Option<String>,
}

impl TimelineImplantRow {
    /// Appends this implant to the timeline, opening its procedure if it is a new one.
    pub fn push_into(self, timeline: &mut PatientTimeline) {
        let removal = match (self.removal_kind, self.removal_date, self.revising_provider) {
            (Some(kind), Some(removal_date), Some(revising_provider)) => Some(TimelineRemoval {
                kind,
                removal_date,
                reason: self.removal_reason,
                revising_provider,
            }),
            _ => None,
        };
        let implant = TimelineImplant {
            implant_id: ImplantId(self.implant_id),
            position: self.position,
            udi_di: self.udi_di,
            manufacturer: self.manufacturer,
            brand: self.brand,
            model: self.model,
            device_type: self.device_type,
            lot: self.lot,
            serial: self.serial,
            expiry: self.expiry,
            manufactured: self.manufactured,
            entry_type: self.entry_type,
            removal,
            recalls: Vec::new(),
        };
        match timeline.procedures.last_mut() {
            Some(last) if last.procedure_id.0 == self.procedure_id => last.implants.push(implant),
            _ => timeline.procedures.push(TimelineProcedure {
                procedure_id: ProcedureId(self.procedure_id),
                procedure_date: self.procedure_date,
                registry: self.registry,
                provider_ods: self.provider_ods,
                provider_name: self.provider_name,
                consultant_gmc: self.consultant_gmc,
                opcs4_code: self.opcs4_code,
                snomed_ct_id: self.snomed_ct_id,
                laterality: self.laterality,
                local_record_id: self.local_record_id,
                implants: vec![implant],
            }),
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct SubmissionJobRow {
    pub id: i64,
    pub organisation_id: i64,
    pub organisation_ods: String,
    pub token_id: Option<i64>,
    pub submitted_by: String,
    pub registry: String,
    pub dataset_version: String,
    pub format: String,
    pub spool_path: String,
    pub file_bytes: i64,
    pub state: String,
    pub total_records: Option<i64>,
    pub records_done: i64,
    pub accepted: i64,
    pub accepted_with_warnings: i64,
    pub rejected: i64,
    pub created: i64,
    pub corrected: i64,
    pub unchanged: i64,
    pub resume_offset: i64,
    pub resume_line: i64,
    pub resolves_quarantine: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub failure: Option<String>,
}

impl TryFrom<SubmissionJobRow> for SubmissionJob {
    type Error = StoreError;
    fn try_from(row: SubmissionJobRow) -> Result<Self, StoreError> {
        let format = SubmissionFormat::parse(&row.format)
            .ok_or_else(|| StoreError::Corrupt(format!("submission format '{}'", row.format)))?;
        let state = SubmissionState::parse(&row.state)
            .ok_or_else(|| StoreError::Corrupt(format!("submission state '{}'", row.state)))?;
        let count = |n: i64| n.max(0) as u64;
        Ok(SubmissionJob {
            id: SubmissionJobId(row.id),
            organisation: OrganisationId(row.organisation_id),
            organisation_ods: row.organisation_ods,
            token: row.token_id.map(TokenId),
            submitted_by: row.submitted_by,
            registry: row.registry,
            dataset_version: row.dataset_version,
            format,
            spool_path: row.spool_path,
            file_bytes: count(row.file_bytes),
            state,
            total_records: row.total_records.map(count),
            records_done: count(row.records_done),
            counts: SubmissionCounts {
                accepted: count(row.accepted),
                accepted_with_warnings: count(row.accepted_with_warnings),
                rejected: count(row.rejected),
                created: count(row.created),
                corrected: count(row.corrected),
                unchanged: count(row.unchanged),
            },
            resume_offset: count(row.resume_offset),
            resume_line: count(row.resume_line),
            resolves_quarantine: row.resolves_quarantine.map(SubmissionRecordId),
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            failure: row.failure,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct SubmissionRecordRow {
    pub id: i64,
    pub job_id: i64,
    pub line: i64,
    pub local_record_id: Option<String>,
    pub outcome: String,
    pub effect: String,
    pub procedure_id: Option<i64>,
    pub messages: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
}

impl TryFrom<SubmissionRecordRow> for SubmissionRecord {
    type Error = StoreError;
    fn try_from(row: SubmissionRecordRow) -> Result<Self, StoreError> {
        Ok(SubmissionRecord {
            id: SubmissionRecordId(row.id),
            job: SubmissionJobId(row.job_id),
            line: row.line.max(0) as u64,
            local_record_id: row.local_record_id,
            outcome: RecordOutcome::parse(&row.outcome)
                .ok_or_else(|| StoreError::Corrupt(format!("record outcome '{}'", row.outcome)))?,
            effect: RecordEffect::parse(&row.effect)
                .ok_or_else(|| StoreError::Corrupt(format!("record effect '{}'", row.effect)))?,
            procedure: row.procedure_id.map(ProcedureId),
            messages: row.messages,
            resolved_at: row.resolved_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct QuarantineRow {
    pub id: i64,
    pub job_id: i64,
    pub line: i64,
    pub organisation_id: i64,
    pub organisation_ods: String,
    pub registry: String,
    pub dataset_version: String,
    pub local_record_id: Option<String>,
    pub record: Option<String>,
    pub messages: Option<String>,
    pub received_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by_job: Option<i64>,
}

impl From<QuarantineRow> for QuarantineEntry {
    fn from(row: QuarantineRow) -> Self {
        QuarantineEntry {
            id: SubmissionRecordId(row.id),
            job: SubmissionJobId(row.job_id),
            line: row.line.max(0) as u64,
            organisation: OrganisationId(row.organisation_id),
            organisation_ods: row.organisation_ods,
            registry: row.registry,
            dataset_version: row.dataset_version,
            local_record_id: row.local_record_id,
            record: row.record.unwrap_or_default(),
            errors: row.messages.unwrap_or_else(|| "[]".into()),
            received_at: row.received_at,
            resolved_at: row.resolved_at,
            resolved_by_job: row.resolved_by_job.map(SubmissionJobId),
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct SourceVersionRow {
    pub version: i64,
    pub registry: Option<String>,
    pub dataset_version: Option<String>,
    pub record: Option<String>,
    pub core_record: Option<String>,
    pub warnings: Option<String>,
    pub job_id: Option<i64>,
    pub line: Option<i64>,
    pub organisation_id: Option<i64>,
    pub token_id: Option<i64>,
    pub received_at: Option<DateTime<Utc>>,
    pub superseded_at: Option<DateTime<Utc>>,
}

impl SourceVersionRow {
    pub fn into_version(self, current: bool) -> ProcedureSourceVersion {
        ProcedureSourceVersion {
            version: self.version.max(0) as u64,
            current,
            registry: self.registry,
            dataset_version: self.dataset_version,
            record: self.record,
            core_record: self.core_record,
            warnings: self.warnings,
            job: self.job_id.map(SubmissionJobId),
            line: self.line.map(|l| l.max(0) as u64),
            organisation: self.organisation_id.map(OrganisationId),
            token: self.token_id.map(TokenId),
            received_at: self.received_at,
            superseded_at: self.superseded_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_opened_in_order_whether_split_or_not() {
        for n in [0, 1, PARALLEL_OPEN_ROWS - 1, PARALLEL_OPEN_ROWS, 451] {
            let rows: Vec<usize> = (0..n).collect();
            let opened = open_all(rows, |k| Ok(k * 10)).unwrap();
            assert_eq!(
                opened,
                (0..n).map(|k| k * 10).collect::<Vec<_>>(),
                "{n} rows"
            );
        }
    }

    #[test]
    fn a_row_that_does_not_open_fails_the_page_in_either_half() {
        for bad in [0, 100, 199] {
            let outcome = open_all((0..200).collect(), |k: usize| {
                if k == bad {
                    Err(StoreError::Corrupt(format!("row {k}")))
                } else {
                    Ok(k)
                }
            });
            match outcome {
                Err(StoreError::Corrupt(message)) => assert_eq!(message, format!("row {bad}")),
                other => panic!("expected row {bad} to fail the page, got {other:?}"),
            }
        }
    }
}
