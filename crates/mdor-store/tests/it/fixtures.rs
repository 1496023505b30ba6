//! Test data builders: organisations, register entries, patients, submissions and tokens,
//! all with NHS numbers in the 999 test range and GTINs with valid check digits.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use mdor_domain::record::{
    EntryType, ImplantedDevice, LocalRecordId, Patient, PersonName, Procedure, Submission,
};
use mdor_domain::register::{RegisterEntry, RiskClass};
use mdor_domain::rules::follow_up_flags;
use mdor_domain::{
    GmcNumber, Indication, Laterality, NhsNumber, OdsCode, Opcs4Code, Postcode,
    ProductionIdentifiers, RegistryCode, Sex, Slug, SnomedCtId, UdiDi,
};
use mdor_store::{
    DeviceModelId, NewApiToken, NewIdempotencyRecord, NewOrganisation, OrganisationId,
    OrganisationKind, PreparedImplant, PreparedSubmission, Role, Store, TokenId,
};

/// The ASCII group separator a scanner sends for GS1 FNC1.
pub const GS: char = '\u{1d}';

/// A GS1 company prefix for test devices; the synthetic generator uses others.
const TEST_COMPANY_PREFIX: u32 = 5_012_345;

pub fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).unwrap()
}

/// A fixed instant with whole seconds, so that it reads back equal on every backend.
pub fn instant(year: i32, month: u32, day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, month, day, hour, 0, 0).unwrap()
}

/// The `k`th test NHS number: the first valid one of `999_000_000 + 10k + j` for j in 0..10
/// (at most one stem in ten has no valid check digit), so distinct `k` give distinct numbers.
pub fn nhs(k: u32) -> NhsNumber {
    (0..10)
        .find_map(|j| NhsNumber::from_first_nine(999_000_000 + 10 * k + j))
        .unwrap()
}

/// A GS1 UDI-DI with a valid check digit for item reference `item`.
pub fn udi(item: u32) -> UdiDi {
    UdiDi::parse(&mdor_synth::scan::gtin14(TEST_COMPANY_PREFIX, item)).unwrap()
}

pub fn ods(code: &str) -> OdsCode {
    OdsCode::parse(code).unwrap()
}

pub fn provider(code: &str, name: &str) -> NewOrganisation {
    NewOrganisation {
        ods_code: ods(code),
        name: name.to_string(),
        kind: OrganisationKind::Provider,
        region: Some("North East and Yorkshire".to_string()),
    }
}

/// Upserts a provider organisation and returns its id.
pub async fn add_provider(store: &dyn Store, code: &str) -> OrganisationId {
    store
        .upsert_organisation(&provider(code, &format!("{code} Hospitals NHS Trust")))
        .await
        .unwrap()
}

pub fn register_entry(udi_di: &UdiDi, model: &str) -> RegisterEntry {
    RegisterEntry {
        udi_di: udi_di.clone(),
        manufacturer: "Acme Orthopaedics".to_string(),
        brand: "Steadfast".to_string(),
        model: model.to_string(),
        device_type: Slug::parse("hip_stem").unwrap(),
        risk_class: RiskClass::III,
        registry: RegistryCode::parse("njr").unwrap(),
    }
}

/// Adds `udi_di` to the register and returns its id.
pub async fn add_device_model(store: &dyn Store, udi_di: &UdiDi) -> DeviceModelId {
    store
        .upsert_device_models(&[register_entry(udi_di, "Cemented stem size 3")])
        .await
        .unwrap();
    store.device_model(udi_di).await.unwrap().unwrap().id
}

pub fn patient(nhs_number: &NhsNumber, date_of_birth: NaiveDate) -> Patient {
    Patient {
        nhs_number: nhs_number.clone(),
        family_name: PersonName::parse("Testpatient", "family_name").unwrap(),
        given_name: PersonName::parse("Alex", "given_name").unwrap(),
        date_of_birth,
        sex: Sex::Female,
        postcode: Some(Postcode::parse("ls1 4ap").unwrap()),
    }
}

pub fn procedure(
    provider_ods: &str,
    local_record_id: &str,
    procedure_date: NaiveDate,
) -> Procedure {
    Procedure {
        provider: ods(provider_ods),
        consultant: GmcNumber::parse("7654321").unwrap(),
        procedure_date,
        opcs4: Some(Opcs4Code::parse("W37.1", "4.10").unwrap()),
        snomed: None,
        laterality: Laterality::Left,
        registry: RegistryCode::parse("njr").unwrap(),
        local_record_id: LocalRecordId::parse(local_record_id, "local_record_id").unwrap(),
        indication: Some(Indication::parse("osteoarthritis").unwrap()),
    }
}

/// A hand-typed device with the given production identifiers.
pub fn manual_device(
    udi_di: &UdiDi,
    lot: Option<&str>,
    serial: Option<&str>,
    expiry: Option<NaiveDate>,
) -> ImplantedDevice {
    ImplantedDevice {
        udi_di: udi_di.clone(),
        production: ProductionIdentifiers {
            lot: lot.map(str::to_string),
            serial: serial.map(str::to_string),
            expiry,
            manufactured: None,
        },
        raw_scan: None,
        entry_type: EntryType::Manual,
    }
}

/// A scanned GS1 DataMatrix device: the raw scan keeps its GS separator between lot and
/// serial, and the production identifiers are those the scan encodes.
pub fn scanned_device(
    udi_di: &UdiDi,
    lot: &str,
    serial: &str,
    expiry: NaiveDate,
    manufactured: NaiveDate,
) -> ImplantedDevice {
    let raw_scan = format!(
        "]d201{}11{}17{}10{lot}{GS}21{serial}",
        udi_di.as_str(),
        mdor_synth::scan::yymmdd(manufactured),
        mdor_synth::scan::yymmdd(expiry),
    );
    ImplantedDevice {
        udi_di: udi_di.clone(),
        production: ProductionIdentifiers {
            lot: Some(lot.to_string()),
            serial: Some(serial.to_string()),
            expiry: Some(expiry),
            manufactured: Some(manufactured),
        },
        raw_scan: Some(raw_scan),
        entry_type: EntryType::Barcode,
    }
}

/// A valid submission; panics if the domain rejects it, which would be a fixture bug.
pub fn submission(
    patient: Patient,
    procedure: Procedure,
    devices: Vec<ImplantedDevice>,
) -> Submission {
    Submission::new(patient, procedure, devices, date(2026, 11, 1)).unwrap()
}

/// Attaches the service's decisions: the register match given for each device, and the
/// follow-up flags the domain rules raise for it.
pub fn prepare(
    submission: Submission,
    provider: OrganisationId,
    device_models: &[Option<DeviceModelId>],
) -> PreparedSubmission {
    assert_eq!(submission.devices.len(), device_models.len());
    let implants = submission
        .devices
        .iter()
        .zip(device_models)
        .map(|(device, model)| PreparedImplant {
            device_model: *model,
            flags: follow_up_flags(device, submission.procedure.procedure_date, model.is_some()),
        })
        .collect();
    PreparedSubmission {
        submission,
        provider,
        implants,
        received_at: instant(2026, 11, 1, 9),
        sealed_patient: None,
    }
}

/// The simplest stored procedure: patient `k` (born 1950-03-14) at `provider_ods`, one
/// manual device not in the register.
pub fn simple(
    k: u32,
    provider: OrganisationId,
    provider_ods: &str,
    local_record_id: &str,
    procedure_date: NaiveDate,
    udi_di: &UdiDi,
) -> PreparedSubmission {
    prepare(
        submission(
            patient(&nhs(k), date(1950, 3, 14)),
            procedure(provider_ods, local_record_id, procedure_date),
            vec![manual_device(udi_di, Some("LOT1"), Some("SER1"), None)],
        ),
        provider,
        &[None],
    )
}

pub fn snomed(input: &str) -> SnomedCtId {
    SnomedCtId::parse(input).unwrap()
}

/// Inserts an API token for `organisation` and returns its id.
pub async fn add_token(store: &dyn Store, organisation: OrganisationId, hash: &str) -> TokenId {
    store
        .insert_token(&NewApiToken {
            token_hash: hash.to_string(),
            organisation,
            role: Role::ProviderSubmitter,
            label: format!("theatre system {hash}"),
            created_at: instant(2026, 10, 1, 8),
        })
        .await
        .unwrap()
}

pub fn idempotency(token: TokenId, key: &str, body: &str) -> NewIdempotencyRecord {
    NewIdempotencyRecord {
        token,
        key: key.to_string(),
        request_hash: format!("sha256-of-{key}"),
        response_status: 201,
        response_body: body.to_string(),
        created_at: instant(2026, 11, 1, 9),
    }
}

/// The audit entry of an operator's action on an account (create, disable, enable, reset),
/// as the service writes it.
/// A recall of every implant of `udi_di`, first page of 1,000.
pub fn recall_of(udi_di: &UdiDi) -> mdor_store::RecallCriteria {
    mdor_store::RecallCriteria {
        udi_di: udi_di.clone(),
        lot: None,
        serial: None,
        expiry_from: None,
        expiry_to: None,
        implanted_from: None,
        implanted_to: None,
        after: None,
        limit: 1000,
    }
}

pub fn administration_audit(
    organisation: OrganisationId,
    action: &'static str,
    resource: String,
    at: DateTime<Utc>,
) -> mdor_store::NewAuditEvent {
    mdor_store::NewAuditEvent {
        patients: Vec::new(),
        at,
        organisation,
        role: "operator",
        token: None,
        account: None,
        action,
        resource,
        patient: None,
        record_count: 0,
        purpose: "administration",
        outcome: "ok",
        break_glass: None,
        request: None,
    }
}

/// An account with a fixed (test-only) password hash, TOTP secret and two backup codes.
pub fn new_account(
    username: &str,
    role: mdor_store::AccountRole,
    organisation: Option<OrganisationId>,
) -> mdor_store::NewAccount {
    mdor_store::NewAccount {
        username: username.to_string(),
        role,
        organisation,
        patient: None,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".to_string(),
        totp_secret_sealed: vec![7; 48],
        backup_code_hashes: vec!["aa".repeat(32), "bb".repeat(32)],
        created_at: instant(2026, 1, 1, 9),
    }
}

/// A consultant's break-glass access with `reason`, decided appropriate with `note` by an
/// administrator: the review item holds both sealed. The two accounts are created here.
pub async fn decided_break_glass(
    store: &dyn mdor_store::Store,
    organisation: OrganisationId,
    reason: &str,
    note: &str,
) {
    use mdor_store::{AccessReviewDecision, AccessReviewQuery, AccountRole, Field, ReviewDecision};
    let account = |username: &str, role| new_account(username, role, Some(organisation));
    let consultant = store
        .insert_account(&account("glass.breaker", AccountRole::Consultant), None)
        .await
        .unwrap();
    let reviewer = store
        .insert_account(&account("glass.reviewer", AccountRole::SystemAdmin), None)
        .await
        .unwrap();
    let cipher = store.identifier_cipher().await.unwrap();
    let mut access = administration_audit(
        organisation,
        "patient.timeline",
        "patient".into(),
        instant(2026, 2, 1, 3),
    );
    access.role = "consultant";
    access.account = Some(consultant);
    access.purpose = "break_glass:direct_care";
    access.break_glass = Some(cipher.seal_detail(Field::BreakGlassReason, reason).unwrap());
    store.append_audit(&access).await.unwrap();
    let review = store
        .access_reviews(&AccessReviewQuery {
            include_decided: false,
            after: None,
            limit: 1,
        })
        .await
        .unwrap()[0]
        .id;
    let mut decided = administration_audit(
        organisation,
        "access_review.decide",
        format!("access_review/{review}"),
        instant(2026, 2, 2, 3),
    );
    decided.account = Some(reviewer);
    let sealed = cipher
        .seal_detail(
            Field::ReviewDecision,
            &mdor_store::decision_detail(ReviewDecision::Appropriate, Some(note)),
        )
        .unwrap();
    let decision = AccessReviewDecision {
        review,
        decision: ReviewDecision::Appropriate,
        sealed,
        by: reviewer,
        at: instant(2026, 2, 2, 3),
    };
    assert!(
        store
            .decide_access_review(&decision, &decided)
            .await
            .unwrap()
    );
}
