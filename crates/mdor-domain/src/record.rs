//! The core record: a patient, an implant procedure, the devices implanted in it, and the
//! outcome events (revision, explant, death) that follow.
//!
//! Constructors check everything that can be checked without the database and report every
//! problem at once as `FieldError`s, each naming the field path (`devices[1].udi`).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::identifiers::{
    GmcNumber, Indication, Laterality, NhsNumber, OdsCode, Opcs4Code, Postcode, RegistryCode, Sex,
    SnomedCtId,
};
use crate::udi::{ProductionIdentifiers, UdiDi};

/// One problem with one field of a submitted record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Path of the field, e.g. `patient.date_of_birth` or `devices[0].udi`.
    pub field: String,
    /// Stable snake_case code, e.g. `invalid_check_digit`, `date_in_future`.
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

/// A personal name as recorded: 1 to 100 characters, no control characters.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonName(String);

impl std::fmt::Debug for PersonName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PersonName(<redacted>)")
    }
}

impl PersonName {
    pub fn parse(input: &str, field: &str) -> Result<PersonName, FieldError> {
        let name = input.trim();
        if name.is_empty() {
            return Err(FieldError::new(
                field,
                "required",
                format!("{field} is required"),
            ));
        }
        if name.chars().count() > 100 {
            return Err(FieldError::new(
                field,
                "too_long",
                format!("{field} is longer than 100 characters"),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(FieldError::new(
                field,
                "invalid_character",
                format!("{field} contains a control character"),
            ));
        }
        Ok(PersonName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The provider's own identifier for a procedure record (its theatre or PAS system's key):
/// 1 to 64 printable characters. Unique per provider.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LocalRecordId(String);

impl LocalRecordId {
    pub fn parse(input: &str, field: &str) -> Result<LocalRecordId, FieldError> {
        let id = input.trim();
        if id.is_empty() || id.len() > 64 || id.chars().any(|c| c.is_control()) {
            return Err(FieldError::new(
                field,
                "invalid_local_record_id",
                format!("{field} must be 1 to 64 printable characters"),
            ));
        }
        Ok(LocalRecordId(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A patient as identified to the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patient {
    pub nhs_number: NhsNumber,
    pub family_name: PersonName,
    pub given_name: PersonName,
    pub date_of_birth: NaiveDate,
    pub sex: Sex,
    pub postcode: Option<Postcode>,
}

/// How a device's identifiers reached the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryType {
    /// Read from the device's barcode; the raw scan is kept verbatim.
    Barcode,
    /// Typed in by hand from the label.
    Manual,
}

impl EntryType {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryType::Barcode => "barcode",
            EntryType::Manual => "manual",
        }
    }

    pub fn parse(input: &str) -> Option<EntryType> {
        match input {
            "barcode" => Some(EntryType::Barcode),
            "manual" => Some(EntryType::Manual),
            _ => None,
        }
    }
}

/// One device implanted during a procedure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImplantedDevice {
    pub udi_di: UdiDi,
    pub production: ProductionIdentifiers,
    /// The scan exactly as the scanner sent it, for barcode entries.
    pub raw_scan: Option<String>,
    pub entry_type: EntryType,
}

/// An implant procedure as submitted by a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Procedure {
    pub provider: OdsCode,
    pub consultant: GmcNumber,
    pub procedure_date: NaiveDate,
    pub opcs4: Option<Opcs4Code>,
    pub snomed: Option<SnomedCtId>,
    pub laterality: Laterality,
    pub registry: RegistryCode,
    pub local_record_id: LocalRecordId,
    /// Why it was done, when the dataset records it; survivorship adjusts for it.
    pub indication: Option<Indication>,
}

/// A patient, a procedure and its devices: the unit a provider submits and the registry
/// stores in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    pub patient: Patient,
    pub procedure: Procedure,
    pub devices: Vec<ImplantedDevice>,
}

/// The most devices one procedure may record; more is a data error, not a real operation.
pub const MAX_DEVICES_PER_PROCEDURE: usize = 50;

impl Submission {
    /// Checks the rules that involve more than one field. `today` is the submission date,
    /// passed in so that the rule stays pure.
    pub fn new(
        patient: Patient,
        procedure: Procedure,
        devices: Vec<ImplantedDevice>,
        today: NaiveDate,
    ) -> Result<Submission, Vec<FieldError>> {
        let mut errors = Vec::new();
        if patient.date_of_birth > today {
            errors.push(FieldError::new(
                "patient.date_of_birth",
                "date_in_future",
                "patient.date_of_birth is in the future",
            ));
        }
        if patient.date_of_birth < NaiveDate::from_ymd_opt(1880, 1, 1).unwrap_or(NaiveDate::MIN) {
            errors.push(FieldError::new(
                "patient.date_of_birth",
                "implausible_date",
                "patient.date_of_birth is before 1880",
            ));
        }
        if procedure.procedure_date > today {
            errors.push(FieldError::new(
                "procedure.procedure_date",
                "date_in_future",
                "procedure.procedure_date is in the future",
            ));
        }
        if procedure.procedure_date < patient.date_of_birth {
            errors.push(FieldError::new(
                "procedure.procedure_date",
                "before_birth",
                "procedure.procedure_date is before the patient's date of birth",
            ));
        }
        if procedure.opcs4.is_none() && procedure.snomed.is_none() {
            errors.push(FieldError::new(
                "procedure.opcs4_code",
                "required",
                "procedure needs an opcs4_code or a snomed_ct_id",
            ));
        }
        if devices.is_empty() {
            errors.push(FieldError::new(
                "devices",
                "required",
                "at least one implanted device is required",
            ));
        }
        if devices.len() > MAX_DEVICES_PER_PROCEDURE {
            errors.push(FieldError::new(
                "devices",
                "too_many",
                format!("at most {MAX_DEVICES_PER_PROCEDURE} devices per procedure"),
            ));
        }
        for (i, device) in devices.iter().enumerate() {
            let production = &device.production;
            if let (Some(made), Some(expiry)) = (production.manufactured, production.expiry)
                && made > expiry
            {
                errors.push(FieldError::new(
                    format!("devices[{i}].manufactured"),
                    "after_expiry",
                    "manufacture date is after the expiry date",
                ));
            }
            if production
                .manufactured
                .is_some_and(|made| made > procedure.procedure_date)
            {
                errors.push(FieldError::new(
                    format!("devices[{i}].manufactured"),
                    "after_procedure",
                    "device was manufactured after the procedure date",
                ));
            }
            if device.entry_type == EntryType::Barcode && device.raw_scan.is_none() {
                errors.push(FieldError::new(
                    format!("devices[{i}].raw_scan"),
                    "required",
                    "a barcode entry keeps its raw scan",
                ));
            }
        }
        if errors.is_empty() {
            Ok(Submission {
                patient,
                procedure,
                devices,
            })
        } else {
            Err(errors)
        }
    }
}

/// What ended an implant's life in the patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalKind {
    /// Removed and replaced, in part or whole: the registries' revision end point.
    Revision,
    /// Removed without replacement.
    Explant,
}

impl RemovalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RemovalKind::Revision => "revision",
            RemovalKind::Explant => "explant",
        }
    }

    pub fn parse(input: &str) -> Option<RemovalKind> {
        match input {
            "revision" => Some(RemovalKind::Revision),
            "explant" => Some(RemovalKind::Explant),
            _ => None,
        }
    }
}

/// Free-text reason for a revision or explant, 1 to 200 characters (e.g. `aseptic loosening`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovalReason(String);

impl RemovalReason {
    pub fn parse(input: &str) -> Result<RemovalReason, FieldError> {
        let reason = input.trim();
        if reason.is_empty() || reason.chars().count() > 200 || reason.chars().any(char::is_control)
        {
            return Err(FieldError::new(
                "reason",
                "invalid_reason",
                "reason must be 1 to 200 printable characters",
            ));
        }
        Ok(RemovalReason(reason.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
