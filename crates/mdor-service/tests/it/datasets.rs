//! The shipped dataset definitions end to end: for each registry a valid record passes in
//! JSON and as a CSV row, each kind of rule rejects with the right code and path, records
//! keep validating under the version they were submitted in, a registry defined only in a
//! test fixture works through the folder loader, and broken definition files are rejected
//! with the file, field and problem named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde_json::{Value as Json, json};

use mdor_domain::dataset::{
    DatasetCatalogue, DatasetDefinition, DatasetVersion, FixedContext, ValidationReport,
};
use mdor_domain::{RegistryCode, Slug, UdiDi};
use mdor_service::{load_registries_dir, shipped_catalogue};

/// A GTIN that passes its check digit (the GS1 General Specifications example).
const GTIN: &str = "09506000134352";

fn scan() -> String {
    format!("(01){GTIN}(17)270101(10)LOT1")
}

fn catalogue() -> DatasetCatalogue {
    shipped_catalogue().unwrap_or_else(|e| panic!("{e}"))
}

fn definition(registry: &str, version: &str) -> DatasetDefinition {
    catalogue()
        .get(
            &RegistryCode::parse(registry).unwrap(),
            DatasetVersion::parse(version).unwrap(),
        )
        .unwrap_or_else(|| panic!("{registry} {version} is not shipped"))
        .clone()
}

/// The register knows `GTIN` as a device of `device_type`.
fn context(device_type: &str) -> FixedContext {
    let mut context = FixedContext::new(NaiveDate::from_ymd_opt(2025, 6, 1).unwrap());
    context.register.insert(
        UdiDi::parse(GTIN).unwrap(),
        Slug::parse(device_type).unwrap(),
    );
    context
}

fn patient() -> Json {
    json!({ "nhs_number": "999 000 0018", "date_of_birth": "1958-07-14", "sex": "F", "postcode": "LS1 4AP" })
}

fn procedure(opcs4: &str) -> Json {
    json!({
        "local_record_id": "TH-2024-0001",
        "provider": "RXX01",
        "consultant": "1234567",
        "date": "2024-05-01",
        "opcs4_code": opcs4
    })
}

/// A record with the common patient and procedure sections merged with `extra`.
fn record(opcs4: &str, extra: Json) -> Json {
    let mut record = json!({ "patient": patient(), "procedure": procedure(opcs4) });
    merge(&mut record, extra);
    record
}

fn merge(base: &mut Json, extra: Json) {
    match (base, extra) {
        (Json::Object(base), Json::Object(extra)) => {
            for (key, value) in extra {
                match base.get_mut(&key) {
                    Some(existing @ Json::Object(_)) if value.is_object() => merge(existing, value),
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, extra) => *base = extra,
    }
}

/// One valid record per shipped dataset, and the register device type of its devices.
fn valid(registry: &str) -> (Json, &'static str) {
    match registry {
        "mdor_core" => (
            record(
                "K60.1",
                json!({
                    "procedure": { "action": "implant", "urgency": "elective", "asa_grade": 2 },
                    "devices": [{ "udi": scan(), "role": "implanted" }]
                }),
            ),
            "pacemaker",
        ),
        "bcir" => (
            record(
                "B30.1",
                json!({
                    "procedure": { "side": "bilateral", "action": "primary" },
                    "breast": {
                        "indication": "cosmetic",
                        "incision_site": "inframammary",
                        "plane": "dual_plane",
                        "antibiotic_irrigation": "yes"
                    },
                    "devices": [
                        { "udi": scan(), "role": "inserted", "shape": "round", "surface": "smooth", "fill": "silicone", "volume_cc": 320 },
                        { "udi": scan(), "role": "inserted", "shape": "round", "surface": "smooth", "fill": "silicone", "volume_cc": 320 }
                    ]
                }),
            ),
            "breast_implant",
        ),
        "nrhi" => (
            record(
                "D24.1",
                json!({
                    "procedure": { "ear": "right", "action": "primary" },
                    "hearing": {
                        "device_kind": "cochlear",
                        "bilateral": "unilateral",
                        "aetiology": "age_related",
                        "preop_threshold_db_hl": 95,
                        "preop_bkb_percent": 30,
                        "electrode_insertion": "full"
                    },
                    "devices": [{ "udi": scan(), "component": "implant" }]
                }),
            ),
            "cochlear_implant",
        ),
        "pfr" => (
            record(
                "M53.3",
                json!({
                    "pelvic": {
                        "indication": "sui",
                        "route": "transvaginal",
                        "procedure_type": "tvt",
                        "mesh_used": true,
                        "urodynamics": true,
                        "complications": ["none"],
                        "blood_loss_ml": 50
                    },
                    "devices": [{ "udi": scan(), "product_kind": "tape" }]
                }),
            ),
            "mid_urethral_tape",
        ),
        "otr" => (
            record(
                "W19.1",
                json!({
                    "fracture": {
                        "injury_date": "2024-04-30",
                        "site": "proximal_femur",
                        "side": "L",
                        "ao_ota": "31A1",
                        "open": false
                    },
                    "fixation": { "type": "sliding_hip_screw", "injury_to_surgery_hours": 26.5 },
                    "devices": [{ "udi": scan() }]
                }),
            ),
            "sliding_hip_screw",
        ),
        "mtr" => (
            record(
                "W24.1",
                json!({
                    "patient": { "unidentified": false },
                    "injury": { "date": "2024-05-01", "mechanism": "fall_over_2m", "type": "blunt", "iss": 25 },
                    "arrival": { "gcs": 14, "systolic_bp": 110 },
                    "times": { "injury_to_arrival_minutes": 45, "injury_to_theatre_minutes": 300 },
                    "devices": [{ "udi": scan(), "body_region": "pelvis" }]
                }),
            ),
            "pelvic_fixation",
        ),
        other => panic!("no valid record for {other}"),
    }
}

/// `record` with `path` (dots; a number indexes a list) set to `value`; null removes it.
fn with(mut record: Json, path: &str, value: Json) -> Json {
    let parts: Vec<&str> = path.split('.').collect();
    let mut node = &mut record;
    for part in &parts[..parts.len() - 1] {
        node = match part.parse::<usize>() {
            Ok(i) => &mut node[i],
            Err(_) => &mut node[*part],
        };
    }
    let last = parts[parts.len() - 1];
    match (value, node) {
        (Json::Null, Json::Object(map)) => {
            map.remove(last);
        }
        (value, node) => node[last] = value,
    }
    record
}

fn problems(report: &ValidationReport) -> Vec<(String, &'static str)> {
    report
        .errors
        .iter()
        .map(|e| (e.field.clone(), e.code))
        .collect()
}

/// The same record as one CSV row: top-level fields by name, item `n` of a group as
/// `<csv_prefix><n>.<field>`, lists joined with `;`.
fn csv_row(definition: &DatasetDefinition, record: &Json) -> BTreeMap<String, String> {
    let cell = |value: &Json| match value {
        Json::String(s) => s.clone(),
        Json::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(";"),
        other => other.to_string(),
    };
    let mut row: BTreeMap<String, String> = definition
        .csv_header(2)
        .into_iter()
        .map(|column| (column, String::new()))
        .collect();
    for field in definition.fields() {
        let value = field
            .name()
            .split('.')
            .try_fold(record, |node, part| node.get(part));
        if let Some(value) = value {
            row.insert(field.name().to_string(), cell(value));
        }
    }
    for group in definition.groups() {
        let items = record[group.name()].as_array().cloned().unwrap_or_default();
        for (i, item) in items.iter().enumerate() {
            for field in group.fields() {
                if let Some(value) = item.get(field.name()) {
                    row.insert(
                        format!("{}{}.{}", group.csv_prefix(), i + 1, field.name()),
                        cell(value),
                    );
                }
            }
        }
    }
    row
}

const LATEST: [(&str, &str); 6] = [
    ("mdor_core", "1.0"),
    ("bcir", "1.1"),
    ("nrhi", "1.0"),
    ("pfr", "1.0"),
    ("otr", "1.0"),
    ("mtr", "1.0"),
];

#[test]
fn six_registries_are_shipped_and_bcir_has_two_versions() {
    let catalogue = catalogue();
    let codes: Vec<&str> = catalogue.registries().iter().map(|c| c.as_str()).collect();
    assert_eq!(codes, ["bcir", "mdor_core", "mtr", "nrhi", "otr", "pfr"]);
    let bcir = RegistryCode::parse("bcir").unwrap();
    let versions: Vec<String> = catalogue
        .versions(&bcir)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(versions, ["1.0", "1.1"]);
    assert_eq!(
        catalogue.latest(&bcir).unwrap().version().to_string(),
        "1.1"
    );
}

#[test]
fn a_valid_record_of_every_shipped_dataset_passes_as_json_and_as_csv() {
    for (registry, version) in LATEST {
        let definition = definition(registry, version);
        let (record, device_type) = valid(registry);
        let context = context(device_type);
        let from_json = definition.validate_json(&record, &context);
        assert_eq!(from_json.errors, vec![], "{registry} {version}");
        assert_eq!(from_json.warnings, vec![], "{registry} {version}");
        let from_csv = definition.validate_csv_row(&csv_row(&definition, &record), &context);
        assert_eq!(from_csv, from_json, "{registry} {version} as csv");
    }
}

#[test]
fn a_device_missing_from_the_register_is_a_warning_not_an_error() {
    for (registry, version) in LATEST {
        let definition = definition(registry, version);
        let (record, _) = valid(registry);
        let empty_register = FixedContext::new(NaiveDate::from_ymd_opt(2025, 6, 1).unwrap());
        let report = definition.validate_json(&record, &empty_register);
        // Laterality rules keyed on a device type cannot fire without the register.
        assert_eq!(report.errors, vec![], "{registry}");
        assert!(
            report
                .warnings
                .iter()
                .all(|w| w.code == "not_in_register" && w.field.starts_with("devices[")),
            "{registry}: {:?}",
            report.warnings
        );
        assert!(!report.warnings.is_empty(), "{registry}");
    }
}

/// One mistake in a registry's valid record: (registry, changes, expected (path, code) errors).
type Case = (
    &'static str,
    Vec<(&'static str, Json)>,
    &'static [(&'static str, &'static str)],
);

fn cases() -> Vec<Case> {
    vec![
        // mdor_core
        (
            "mdor_core",
            vec![("procedure.action", json!("explant"))],
            &[("procedure.explant_reason", "conditional_required")],
        ),
        (
            "mdor_core",
            vec![("procedure.explant_reason", json!("infection"))],
            &[("procedure.explant_reason", "forbidden")],
        ),
        (
            "mdor_core",
            vec![("procedure.asa_grade", json!(7))],
            &[("procedure.asa_grade", "out_of_range")],
        ),
        (
            "mdor_core",
            vec![("procedure.opcs4_code", Json::Null)],
            &[("procedure.opcs4_code", "required_one_of")],
        ),
        (
            "mdor_core",
            vec![("patient.nhs_number", json!("9990000019"))],
            &[("patient.nhs_number", "bad_check_digit")],
        ),
        (
            "mdor_core",
            vec![("procedure.urgency", json!("soon"))],
            &[("procedure.urgency", "not_in_code_list")],
        ),
        (
            "mdor_core",
            vec![("devices", json!([]))],
            &[("devices", "required")],
        ),
        (
            "mdor_core",
            vec![("devices.0.lot", json!("L".repeat(21)))],
            &[("devices[0].lot", "too_long")],
        ),
        (
            "mdor_core",
            vec![("patient.date_of_birth", json!("2024-05-02"))],
            &[("procedure.date", "date_order")],
        ),
        (
            "mdor_core",
            vec![("procedure.date", json!("2025-06-02"))],
            &[("procedure.date", "date_in_future")],
        ),
        (
            "mdor_core",
            vec![("procedure.date", json!("01/13/2024"))],
            &[("procedure.date", "bad_date")],
        ),
        (
            "mdor_core",
            vec![("procedure.colour", json!("blue"))],
            &[("procedure.colour", "unknown_field")],
        ),
        // bcir
        (
            "bcir",
            vec![("procedure.side", json!("N"))],
            &[("procedure.side", "laterality_required")],
        ),
        (
            "bcir",
            vec![("breast.indication", json!("reconstructive"))],
            &[("breast.reconstruction_reason", "conditional_required")],
        ),
        (
            "bcir",
            vec![("breast.reconstruction_reason", json!("cancer"))],
            &[("breast.reconstruction_reason", "forbidden")],
        ),
        (
            "bcir",
            vec![("procedure.action", json!("explant"))],
            &[("breast.explant_reason", "conditional_required")],
        ),
        (
            "bcir",
            vec![("breast.explant_reason", json!("rupture"))],
            &[("breast.explant_reason", "forbidden")],
        ),
        (
            "bcir",
            vec![
                ("procedure.action", json!("revision")),
                (
                    "breast.explant_reason",
                    json!("Capsular contracture; BIA-ALCL"),
                ),
            ],
            &[("breast.capsular_contracture_grade", "conditional_required")],
        ),
        (
            "bcir",
            vec![("breast.capsular_contracture_grade", json!(3))],
            &[("breast.capsular_contracture_grade", "forbidden")],
        ),
        (
            "bcir",
            vec![("breast.plane", Json::Null)],
            &[("breast.plane", "conditional_required")],
        ),
        (
            "bcir",
            vec![("breast.plane", json!("submuscular"))],
            &[("breast.plane", "not_in_code_list")],
        ),
        (
            "bcir",
            vec![("devices.1.volume_cc", json!(2000))],
            &[("devices[1].volume_cc", "out_of_range")],
        ),
        (
            "bcir",
            vec![("devices.0.surface", json!("velvet"))],
            &[("devices[0].surface", "not_in_code_list")],
        ),
        (
            "bcir",
            vec![("devices.1.shape", Json::Null)],
            &[("devices[1].shape", "conditional_required")],
        ),
        (
            "bcir",
            vec![("breast.antibiotic_irrigation", Json::Null)],
            &[("breast.antibiotic_irrigation", "required")],
        ),
        // nrhi
        (
            "nrhi",
            vec![("hearing.bilateral", json!("bilateral_sequential"))],
            &[("hearing.first_ear_implant_date", "conditional_required")],
        ),
        (
            "nrhi",
            vec![
                ("hearing.bilateral", json!("bilateral_sequential")),
                ("hearing.first_ear_implant_date", json!("2024-05-02")),
            ],
            &[("procedure.date", "date_order")],
        ),
        (
            "nrhi",
            vec![("hearing.first_ear_implant_date", json!("2020-01-01"))],
            &[("hearing.first_ear_implant_date", "forbidden")],
        ),
        (
            "nrhi",
            vec![("hearing.preop_threshold_db_hl", json!(140))],
            &[("hearing.preop_threshold_db_hl", "out_of_range")],
        ),
        (
            "nrhi",
            vec![("hearing.device_kind", json!("bone_conduction"))],
            &[("hearing.electrode_insertion", "forbidden")],
        ),
        (
            "nrhi",
            vec![("hearing.electrode_insertion", Json::Null)],
            &[("hearing.electrode_insertion", "conditional_required")],
        ),
        (
            "nrhi",
            vec![("procedure.ear", json!("not_applicable"))],
            &[("procedure.ear", "laterality_required")],
        ),
        (
            "nrhi",
            vec![
                ("hearing.aetiology", json!("Ménière's disease")),
                ("hearing.preop_bkb_percent", json!(101)),
            ],
            &[("hearing.preop_bkb_percent", "out_of_range")],
        ),
        // pfr
        (
            "pfr",
            vec![("pelvic.indication", json!("prolapse"))],
            &[
                ("pelvic.prolapse_compartment", "conditional_required"),
                ("pelvic.pop_q_stage", "conditional_required"),
            ],
        ),
        (
            "pfr",
            vec![("pelvic.prolapse_compartment", json!(["anterior"]))],
            &[("pelvic.prolapse_compartment", "forbidden")],
        ),
        (
            "pfr",
            vec![("pelvic.mesh_used", json!(false))],
            &[("devices", "forbidden")],
        ),
        (
            "pfr",
            vec![("devices", json!([]))],
            &[("devices", "conditional_required")],
        ),
        (
            "pfr",
            vec![("pelvic.urodynamics", Json::Null)],
            &[("pelvic.urodynamics", "conditional_required")],
        ),
        (
            "pfr",
            vec![("pelvic.complications", json!("bladder_injury;ouch"))],
            &[("pelvic.complications", "not_in_code_list")],
        ),
        (
            "pfr",
            vec![("pelvic.route", json!("vaginal"))],
            &[("pelvic.route", "not_in_code_list")],
        ),
        (
            "pfr",
            vec![("procedure.opcs4_code", Json::Null)],
            &[("procedure.opcs4_code", "required")],
        ),
        // otr
        (
            "otr",
            vec![("fracture.open", json!(true))],
            &[("fracture.gustilo_grade", "conditional_required")],
        ),
        (
            "otr",
            vec![("fracture.gustilo_grade", json!("IIIB"))],
            &[("fracture.gustilo_grade", "forbidden")],
        ),
        (
            "otr",
            vec![("fracture.side", Json::Null)],
            &[("fracture.side", "laterality_required")],
        ),
        (
            "otr",
            vec![
                ("fracture.site", json!("pelvis")),
                ("fracture.ao_ota", json!("61B")),
                ("fracture.side", Json::Null),
            ],
            &[],
        ),
        (
            "otr",
            vec![("fracture.injury_date", json!("2024-05-02"))],
            &[("procedure.date", "date_order")],
        ),
        (
            "otr",
            vec![("fracture.ao_ota", json!("31D"))],
            &[("fracture.ao_ota", "not_in_code_list")],
        ),
        (
            "otr",
            vec![("fixation.injury_to_surgery_hours", json!("twelve"))],
            &[("fixation.injury_to_surgery_hours", "bad_number")],
        ),
        // mtr
        (
            "mtr",
            vec![("injury.iss", json!(76))],
            &[("injury.iss", "out_of_range")],
        ),
        (
            "mtr",
            vec![("injury.iss", json!(0))],
            &[("injury.iss", "out_of_range")],
        ),
        (
            "mtr",
            vec![("arrival.gcs", json!(2))],
            &[("arrival.gcs", "out_of_range")],
        ),
        (
            "mtr",
            vec![("arrival.gcs", json!(16))],
            &[("arrival.gcs", "out_of_range")],
        ),
        (
            "mtr",
            vec![("times.injury_to_theatre_minutes", json!(30))],
            &[("times.injury_to_theatre_minutes", "comparison")],
        ),
        (
            "mtr",
            vec![("patient.nhs_number", Json::Null)],
            &[("patient.nhs_number", "conditional_required")],
        ),
        (
            "mtr",
            vec![("patient.unidentified", json!(true))],
            &[("patient.estimated_age_years", "conditional_required")],
        ),
        (
            "mtr",
            vec![("patient.estimated_age_years", json!(40))],
            &[("patient.estimated_age_years", "forbidden")],
        ),
        (
            "mtr",
            vec![("devices.0.body_region", json!("neck"))],
            &[("devices[0].body_region", "not_in_code_list")],
        ),
    ]
}

#[test]
fn each_rule_of_each_dataset_rejects_with_its_code_and_path() {
    for (registry, changes, expected) in cases() {
        let version = LATEST.iter().find(|(r, _)| *r == registry).unwrap().1;
        let definition = definition(registry, version);
        let (mut record, device_type) = valid(registry);
        for (path, value) in &changes {
            record = with(record, path, value.clone());
        }
        let report = definition.validate_json(&record, &context(device_type));
        let expected: Vec<(String, &str)> = expected
            .iter()
            .map(|(path, code)| (path.to_string(), *code))
            .collect();
        assert_eq!(
            problems(&report),
            expected,
            "{registry} {changes:?}: {:#?}",
            report.errors
        );
        // The same mistakes are found in the same places when the record comes as CSV,
        // except those only JSON can make (a key that is not a column is an unknown column).
        let from_csv =
            definition.validate_csv_row(&csv_row(&definition, &record), &context(device_type));
        let json_only = changes.iter().any(|(path, _)| path.ends_with("colour"));
        if !json_only {
            assert_eq!(
                problems(&from_csv),
                expected,
                "{registry} {changes:?} as csv"
            );
        }
    }
}

#[test]
fn messages_speak_to_a_data_clerk() {
    let definition = definition("mdor_core", "1.0");
    let (record, device_type) = valid("mdor_core");
    let record = with(record, "procedure.action", json!("explant"));
    let report = definition.validate_json(&record, &context(device_type));
    assert_eq!(
        report.errors[0].message,
        "Explant reason is required when the action is revision or explant"
    );
    let definition = definition_bcir_latest();
    let (record, device_type) = valid("bcir");
    let record = with(record, "devices.1.volume_cc", json!(2000));
    let report = definition.validate_json(&record, &context(device_type));
    assert_eq!(
        report.errors[0].message,
        "Volume (cc) of implant 2 must be between 50 and 1500; got 2000"
    );
}

fn definition_bcir_latest() -> DatasetDefinition {
    catalogue()
        .latest(&RegistryCode::parse("bcir").unwrap())
        .unwrap()
        .clone()
}

#[test]
fn laterality_is_required_when_the_register_says_the_device_is_for_a_paired_organ() {
    let definition = definition("mdor_core", "1.0");
    let (record, _) = valid("mdor_core");
    let report = definition.validate_json(&record, &context("hip_stem"));
    assert_eq!(
        problems(&report),
        [("procedure.laterality".to_string(), "laterality_required")]
    );
    assert_eq!(
        report.errors[0].message,
        "Laterality (left, right or bilateral) is required for a hip stem"
    );
    let record = with(record, "procedure.laterality", json!("R"));
    assert!(
        definition
            .validate_json(&record, &context("hip_stem"))
            .is_valid()
    );
}

#[test]
fn a_device_of_a_type_the_registry_does_not_cover_is_a_warning() {
    let definition = definition("bcir", "1.1");
    let (record, _) = valid("bcir");
    let report = definition.validate_json(&record, &context("cochlear_implant"));
    assert_eq!(report.errors, vec![]);
    let warnings: Vec<&str> = report.warnings.iter().map(|w| w.code).collect();
    assert_eq!(
        warnings,
        ["device_type_not_covered", "device_type_not_covered"]
    );
}

#[test]
fn a_record_submitted_under_bcir_1_0_keeps_validating_under_1_0() {
    let (record, device_type) = valid("bcir");
    let record = with(record, "breast.antibiotic_irrigation", Json::Null);
    let old = definition("bcir", "1.0");
    let new = definition("bcir", "1.1");
    assert!(old.validate_json(&record, &context(device_type)).is_valid());
    assert_eq!(
        problems(&new.validate_json(&record, &context(device_type))),
        [("breast.antibiotic_irrigation".to_string(), "required")]
    );
    // 1.1's new field and code are not part of 1.0.
    let with_new_field = with(record.clone(), "breast.antibiotic_irrigation", json!(true));
    assert_eq!(
        problems(&old.validate_json(&with_new_field, &context(device_type))),
        [("breast.antibiotic_irrigation".to_string(), "unknown_field")]
    );
    let late_seroma = with(record.clone(), "procedure.action", json!("revision"));
    let late_seroma = with(late_seroma, "breast.explant_reason", json!("late_seroma"));
    assert_eq!(
        problems(&old.validate_json(&late_seroma, &context(device_type))),
        [("breast.explant_reason".to_string(), "not_in_code_list")]
    );
}

#[test]
fn implausible_values_and_ages_are_warnings() {
    let definition = definition("mtr", "1.0");
    let (record, device_type) = valid("mtr");
    let record = with(record, "arrival.systolic_bp", json!(290));
    let record = with(record, "patient.date_of_birth", json!("1905-01-01"));
    let report = definition.validate_json(&record, &context(device_type));
    assert_eq!(report.errors, vec![]);
    let warnings: Vec<(String, &str)> = report
        .warnings
        .iter()
        .map(|w| (w.field.clone(), w.code))
        .collect();
    assert_eq!(
        warnings,
        [
            ("arrival.systolic_bp".to_string(), "implausible_value"),
            ("patient.date_of_birth".to_string(), "implausible_age"),
        ]
    );
}

fn fixture_registries() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/data/registries")
}

#[test]
fn a_registry_defined_only_in_a_fixture_folder_works_end_to_end() {
    let catalogue = load_registries_dir(&fixture_registries()).unwrap_or_else(|e| panic!("{e}"));
    let scsr = RegistryCode::parse("scsr").unwrap();
    let definition = catalogue.latest(&scsr).unwrap();
    assert_eq!(definition.name(), "Spinal Cord Stimulator Registry");
    let context = context("spinal_cord_stimulator");
    let record = json!({
        "patient": { "nhs_number": "9990000026", "date_of_birth": "1970-01-31" },
        "procedure": { "provider": "RXX", "date": "2024-05-01", "stage": "Permanent implant" },
        "pain": { "indication": "crps", "trial_relief_percent": 60 },
        "devices": [{ "udi": scan() }]
    });
    let report = definition.validate_json(&record, &context);
    assert_eq!(
        (report.errors.clone(), report.warnings.clone()),
        (vec![], vec![])
    );
    assert_eq!(report.values["procedure.stage"], "permanent");

    let record = with(record, "pain.trial_relief_percent", Json::Null);
    let report = definition.validate_json(&record, &context);
    assert_eq!(
        problems(&report),
        [(
            "pain.trial_relief_percent".to_string(),
            "conditional_required"
        )]
    );
    assert_eq!(
        report.errors[0].message,
        "Pain relief in the trial (%) is required when the stage is permanent implant"
    );
    let row = csv_row(definition, &record);
    assert_eq!(
        problems(&definition.validate_csv_row(&row, &context)),
        problems(&report)
    );
}

/// A fresh folder under the system temporary directory holding `files`.
fn temporary_registries(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mdor-registries-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

#[test]
fn broken_definition_files_are_rejected_naming_file_field_and_problem() {
    let good = std::fs::read_to_string(fixture_registries().join("scsr/1.0.toml")).unwrap();
    let unknown_type = good.replacen("type = \"ods_code\"", "type = \"ods\"", 1);
    let undefined_field = good.replacen(
        "field = \"pain.trial_relief_percent\"",
        "field = \"pain.relief\"",
        1,
    );
    let missing_code_list = good.replacen("code_list = \"stage\"", "code_list = \"stages\"", 1);
    let duplicate_field =
        format!("{good}\n[[fields]]\nname = \"procedure.date\"\ntype = \"date\"\n");
    let wrong_folder = good.clone();
    let dir = temporary_registries(
        "broken",
        &[
            ("scsr/1.0.toml", &unknown_type),
            (
                "scsr/1.1.toml",
                &undefined_field.replace("version = \"1.0\"", "version = \"1.1\""),
            ),
            (
                "scsr/1.2.toml",
                &missing_code_list.replace("version = \"1.0\"", "version = \"1.2\""),
            ),
            (
                "scsr/1.3.toml",
                &duplicate_field.replace("version = \"1.0\"", "version = \"1.3\""),
            ),
            ("other/1.0.toml", &wrong_folder),
            ("README.md", "not a definition"),
        ],
    );
    let error = load_registries_dir(&dir).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    let lines: Vec<String> = error
        .errors
        .iter()
        .map(|e| {
            let file = Path::new(&e.file);
            let parent = file
                .parent()
                .and_then(Path::file_name)
                .unwrap()
                .to_string_lossy();
            let name = file.file_name().unwrap().to_string_lossy();
            format!(
                "{parent}/{name}: {}",
                e.problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            "other/1.0.toml: registry scsr version 1.0 must be in the file scsr/1.0.toml",
            "scsr/1.0.toml: field procedure.provider: unknown field type 'ods'; expected one of code, integer, decimal, date, text, boolean, udi_scan, udi_di, nhs_number, ods_code, gmc_number, opcs4_code, snomed_ct_id, laterality, sex, postcode",
            "scsr/1.1.toml: rule 1 (required_if): 'field' names pain.relief, which is not a defined field",
            "scsr/1.2.toml: field procedure.stage: code list 'stages' is not defined; code list stage: is not used by any field",
            "scsr/1.3.toml: field procedure.date: is defined twice",
        ]
    );
    // The whole error, as an operator sees it at start-up, names the files in full.
    assert!(
        error
            .to_string()
            .contains(&format!("{}", Path::new("scsr").join("1.3.toml").display()))
    );
}

#[test]
fn docs_list_every_column_of_every_shipped_dataset() {
    let docs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/datasets.md"),
    )
    .unwrap();
    for definition in catalogue().definitions() {
        let heading = format!("### `{}` {}", definition.registry(), definition.version());
        let section = docs
            .split_once(&heading)
            .unwrap_or_else(|| panic!("docs/datasets.md has no section {heading}"))
            .1;
        let section = section.split("\n### ").next().unwrap_or_default();
        let mut columns: Vec<String> = definition
            .fields()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        for group in definition.groups() {
            for field in group.fields() {
                columns.push(format!("{}N.{}", group.csv_prefix(), field.name()));
            }
        }
        for column in columns {
            assert!(
                section.contains(&format!("| `{column}` |")),
                "docs/datasets.md {heading} does not list {column}"
            );
        }
    }
}

#[test]
fn an_unreadable_registries_folder_is_an_error_not_an_empty_catalogue() {
    let error = load_registries_dir(Path::new("/nonexistent/mdor/registries")).unwrap_err();
    assert_eq!(error.errors.len(), 1);
    assert!(
        error.errors[0].problems[0]
            .message
            .starts_with("cannot be read")
    );
}
