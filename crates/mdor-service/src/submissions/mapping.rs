//! A record that passed its dataset's validation, turned into the core record (patient,
//! procedure, implanted devices) that every registry shares.
//!
//! Datasets name the core fields alike (`patient.nhs_number`, `procedure.local_record_id`,
//! `procedure.provider`, `procedure.consultant`, `patient.date_of_birth`, `patient.sex`, the
//! definition's `implant_date` field, a `devices` group with `udi` scans); the mapping reads
//! those by name and the rest by type (the first laterality field gives the side, a code field
//! named `<section>.indication` the indication). Everything else a dataset collects (a breast
//! implant's plane, a hearing aid's aetiology) stays in the raw record kept beside the
//! procedure. The canonical values were already read by the engine, so parsing them again here
//! cannot fail for a valid record; when it does (a dataset that lacks a core field, or an
//! indication code that is not a lower-case code), the record is rejected naming the field.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};

use mdor_domain::dataset::{DatasetDefinition, FieldType, RecordInput};
use mdor_domain::record::{
    EntryType, FieldError, ImplantedDevice, LocalRecordId, Patient, PersonName, Procedure,
    Submission,
};
use mdor_domain::udi::{ProductionIdentifiers, UdiDi, parse_scan_at};
use mdor_domain::{
    GmcNumber, Indication, Laterality, NhsNumber, OdsCode, Opcs4Code, Postcode, Sex, SnomedCtId,
};

/// Stored as the patient's names when a dataset does not collect them; a patient's stored
/// names are never replaced by it.
pub const NAME_NOT_COLLECTED: &str = "not collected";

/// The group of devices that become implants; items whose `role` is `removed` do not.
const DEVICES: &str = "devices";
const REMOVED_ROLE: &str = "removed";

/// Builds the core record from a valid record's canonical values and its raw scans.
pub(crate) fn to_submission(
    definition: &DatasetDefinition,
    input: &RecordInput,
    values: &BTreeMap<String, String>,
    today: NaiveDate,
) -> Result<Submission, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut read = Reader {
        values,
        errors: &mut errors,
    };
    let date_field = definition
        .implant_date_field()
        .map_or("procedure.date", |f| f.name());
    let nhs_number = read.required("patient.nhs_number", |v| {
        NhsNumber::parse(v).map_err(|e| e.to_string())
    });
    let family_name = read.name("patient.family_name");
    let given_name = read.name("patient.given_name");
    let date_of_birth = read.required("patient.date_of_birth", parse_date);
    let sex = read.required("patient.sex", |v| Sex::parse(v).map_err(|e| e.to_string()));
    let postcode = read.optional("patient.postcode", |v| {
        Postcode::parse(v).map_err(|e| e.to_string())
    });
    let provider = read.required("procedure.provider", |v| {
        OdsCode::parse(v).map_err(|e| e.to_string())
    });
    let consultant = read.required("procedure.consultant", |v| {
        GmcNumber::parse(v).map_err(|e| e.to_string())
    });
    let procedure_date = read.required(date_field, parse_date);
    let opcs4_version = definition
        .fields()
        .iter()
        .find_map(|f| match f.field_type() {
            FieldType::Opcs4Code { version } if f.name() == "procedure.opcs4_code" => {
                Some(version.clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| Opcs4Code::DEFAULT_VERSION.to_string());
    let opcs4 = read.optional("procedure.opcs4_code", |v| {
        Opcs4Code::parse(v, &opcs4_version).map_err(|e| e.to_string())
    });
    let snomed = read.optional("procedure.snomed_ct_id", |v| {
        SnomedCtId::parse(v).map_err(|e| e.to_string())
    });
    let laterality = definition
        .fields()
        .iter()
        .filter(|f| matches!(f.field_type(), FieldType::Laterality))
        .find_map(|f| values.get(f.name()))
        .map_or(Ok(Laterality::NotApplicable), |v| Laterality::parse(v));
    let laterality = laterality
        .map_err(|e| errors_push(read.errors, "procedure.laterality", e.to_string()))
        .ok();
    // The indication is the first single-valued code field named `<section>.indication`
    // (`breast.indication`, `pelvic.indication`); datasets that record none leave it unknown.
    let indication = match definition.fields().iter().find(|f| {
        matches!(
            f.field_type(),
            FieldType::Code {
                multiple: false,
                ..
            }
        ) && f.name().rsplit('.').next() == Some("indication")
    }) {
        Some(field) => read.optional(field.name(), |v| {
            Indication::parse(v).map_err(|e| e.to_string())
        }),
        None => Some(None),
    };
    let local_record_id = read.required("procedure.local_record_id", |v| {
        LocalRecordId::parse(v, "procedure.local_record_id").map_err(|e| e.message)
    });
    let devices = devices(definition, input, values, today, &mut errors);
    let (
        Some(nhs_number),
        Some(date_of_birth),
        Some(sex),
        Some(provider),
        Some(consultant),
        Some(procedure_date),
        Some(laterality),
        Some(local_record_id),
        Some(family_name),
        Some(given_name),
        Some(indication),
    ) = (
        nhs_number,
        date_of_birth,
        sex,
        provider,
        consultant,
        procedure_date,
        laterality,
        local_record_id,
        family_name,
        given_name,
        indication,
    )
    else {
        return Err(errors);
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let patient = Patient {
        nhs_number,
        family_name,
        given_name,
        date_of_birth,
        sex,
        postcode: postcode.flatten(),
    };
    let procedure = Procedure {
        provider,
        consultant,
        procedure_date,
        opcs4: opcs4.flatten(),
        snomed: snomed.flatten(),
        laterality,
        registry: definition.registry().clone(),
        local_record_id,
        indication,
    };
    Submission::new(patient, procedure, devices, today).map_err(|errors| {
        errors
            .into_iter()
            .map(|mut e| {
                // The core record's own names for fields the dataset names differently.
                if e.field == "procedure.procedure_date" {
                    e.field = date_field.to_string();
                }
                if e.code == "required" && e.field == DEVICES {
                    e.message = "At least one implanted device is needed to store a record; \
                                 records of removals only cannot be stored through a submission yet"
                        .into();
                }
                e
            })
            .collect()
    })
}

/// True when the record gives the patient's names (so a correction may replace stored ones).
pub(crate) fn names_given(values: &BTreeMap<String, String>) -> bool {
    values.contains_key("patient.family_name") && values.contains_key("patient.given_name")
}

struct Reader<'a> {
    values: &'a BTreeMap<String, String>,
    errors: &'a mut Vec<FieldError>,
}

impl Reader<'_> {
    fn required<T>(&mut self, field: &str, parse: impl Fn(&str) -> Result<T, String>) -> Option<T> {
        match self.values.get(field) {
            Some(value) => parse(value)
                .map_err(|message| errors_push(self.errors, field, message))
                .ok(),
            None => {
                self.errors.push(FieldError::new(
                    field,
                    "required_by_core_record",
                    format!("{field} is needed to store the record in the registry"),
                ));
                None
            }
        }
    }

    fn optional<T>(
        &mut self,
        field: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Option<T>> {
        match self.values.get(field) {
            Some(value) => parse(value)
                .map(Some)
                .map_err(|message| errors_push(self.errors, field, message))
                .ok(),
            None => Some(None),
        }
    }

    fn name(&mut self, field: &str) -> Option<PersonName> {
        let text = self
            .values
            .get(field)
            .map_or(NAME_NOT_COLLECTED, String::as_str);
        PersonName::parse(text, field)
            .map_err(|e| self.errors.push(e))
            .ok()
    }
}

fn errors_push(errors: &mut Vec<FieldError>, field: &str, message: String) {
    errors.push(FieldError::new(field, "bad_format", message));
}

fn parse_date(value: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|e| format!("not a date: {e}"))
}

/// The implanted devices: items of the `devices` group with a scan (`udi`) or a typed
/// UDI-DI (`udi_di`), except those whose `role` is `removed`.
fn devices(
    definition: &DatasetDefinition,
    input: &RecordInput,
    values: &BTreeMap<String, String>,
    today: NaiveDate,
    errors: &mut Vec<FieldError>,
) -> Vec<ImplantedDevice> {
    let mut devices = Vec::new();
    // Only the items given: looking up every possible item built a key for each of them.
    for item in input.group_positions(definition, DEVICES) {
        let prefix = format!("{DEVICES}[{item}].");
        let value = |field: &str| values.get(&format!("{prefix}{field}"));
        if value("role").is_some_and(|role| role == REMOVED_ROLE) {
            continue;
        }
        let text = |field: &str| value(field).cloned();
        let typed_dates = || -> Result<(Option<NaiveDate>, Option<NaiveDate>), String> {
            let expiry = value("expiry").map(|d| parse_date(d)).transpose()?;
            let manufactured = value("manufactured").map(|d| parse_date(d)).transpose()?;
            Ok((expiry, manufactured))
        };
        let path = format!("{DEVICES}[{item}]");
        if let Some(scan) = input.group_text(definition, DEVICES, item, "udi") {
            match parse_scan_at(scan, today.year()) {
                Ok(parsed) => {
                    let production = ProductionIdentifiers {
                        lot: parsed.production.lot.or_else(|| text("lot")),
                        serial: parsed.production.serial.or_else(|| text("serial")),
                        expiry: parsed.production.expiry,
                        manufactured: parsed.production.manufactured,
                    };
                    devices.push(ImplantedDevice {
                        udi_di: parsed.di,
                        production,
                        raw_scan: Some(scan.trim().to_string()),
                        entry_type: EntryType::Barcode,
                    });
                }
                Err(e) => errors.push(FieldError::new(
                    format!("{path}.udi"),
                    "bad_format",
                    e.to_string(),
                )),
            }
        } else if let Some(di) = value("udi_di") {
            match (UdiDi::parse(di), typed_dates()) {
                (Ok(udi_di), Ok((expiry, manufactured))) => devices.push(ImplantedDevice {
                    udi_di,
                    production: ProductionIdentifiers {
                        lot: text("lot"),
                        serial: text("serial"),
                        expiry,
                        manufactured,
                    },
                    raw_scan: None,
                    entry_type: EntryType::Manual,
                }),
                (Err(e), _) => errors.push(FieldError::new(
                    format!("{path}.udi_di"),
                    "bad_format",
                    e.to_string(),
                )),
                (_, Err(message)) => {
                    errors.push(FieldError::new(path.clone(), "bad_format", message))
                }
            }
        }
    }
    devices
}
