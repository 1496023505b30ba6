//! Tests of the validation engine against a definition that uses every field type and rule
//! kind, in JSON and CSV; and property tests that neither the parser nor the engine panics.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use proptest::prelude::*;
use serde_json::{Value as Json, json};

use crate::dataset::{DatasetDefinition, FixedContext, RecordInput, ValidationReport};
use crate::identifiers::Slug;
use crate::udi::UdiDi;

/// Every field type and rule kind, small enough to read.
const DEMO: &str = r#"
registry = "demo"
name = "Demonstration registry"
version = "1.0"
device_types = ["widget"]
implant_date = "procedure.date"

[[fields]]
name = "patient.nhs_number"
label = "NHS number"
type = "nhs_number"
required = true

[[fields]]
name = "patient.date_of_birth"
label = "Date of birth"
type = "date"
required = true
earliest = "1880-01-01"

[[fields]]
name = "patient.sex"
type = "sex"

[[fields]]
name = "patient.postcode"
type = "postcode"

[[fields]]
name = "procedure.provider"
type = "ods_code"
required = true

[[fields]]
name = "procedure.consultant"
type = "gmc_number"

[[fields]]
name = "procedure.date"
label = "Procedure date"
type = "date"
required = true

[[fields]]
name = "procedure.review_date"
type = "date"
allow_future = true

[[fields]]
name = "procedure.opcs4_code"
label = "OPCS-4 code"
type = "opcs4_code"

[[fields]]
name = "procedure.snomed_ct_id"
label = "SNOMED CT procedure"
type = "snomed_ct_id"

[[fields]]
name = "procedure.side"
label = "Side"
type = "laterality"

[[fields]]
name = "procedure.action"
label = "Action"
type = "code"
code_list = "action"
required = true

[[fields]]
name = "procedure.explant_reason"
label = "Explant reason"
type = "code"
code_list = "reason"

[[fields]]
name = "procedure.complications"
type = "code"
code_list = "complication"
multiple = true

[[fields]]
name = "procedure.notes"
type = "text"
max_length = 10

[[fields]]
name = "procedure.bmi"
label = "BMI"
type = "decimal"
min = 10
max = 80.5
plausible_max = 60

[[fields]]
name = "procedure.arrival_minutes"
type = "integer"
min = 0
max = 1000

[[fields]]
name = "procedure.theatre_minutes"
type = "integer"
min = 0
max = 1000
plausible_max = 900

[[fields]]
name = "procedure.spare_part"
type = "udi_di"

[[fields]]
name = "procedure.mesh_used"
type = "boolean"

[[groups]]
name = "devices"
label = "Device"
csv_prefix = "device"
min = 1
max = 3

[[groups.fields]]
name = "udi"
label = "UDI"
type = "udi_scan"
required = true

[[groups.fields]]
name = "lot"
type = "text"
max_length = 20

[[groups.fields]]
name = "removed"
type = "boolean"

[[groups.fields]]
name = "removal_date"
type = "date"

[[rules]]
kind = "required_if"
field = "procedure.explant_reason"
when = { field = "procedure.action", equals = "explant" }

[[rules]]
kind = "forbidden_unless"
field = "procedure.explant_reason"
when = { field = "procedure.action", equals = "explant" }

[[rules]]
kind = "at_least_one_of"
fields = ["procedure.opcs4_code", "procedure.snomed_ct_id"]

[[rules]]
kind = "date_order"
earlier = "patient.date_of_birth"
later = "procedure.date"

[[rules]]
kind = "compare"
left = "procedure.theatre_minutes"
op = ">="
right = "procedure.arrival_minutes"

[[rules]]
kind = "compare"
left = "procedure.bmi"
op = "!="
value = 13

[[rules]]
kind = "laterality_required"
field = "procedure.side"
device_types = ["widget"]

[[rules]]
kind = "age"
date_of_birth = "patient.date_of_birth"
on = "procedure.date"
max_years = 110

[[rules]]
kind = "required_if"
field = "devices.removal_date"
when = { field = "devices.removed", equals = true }

[[rules]]
kind = "date_order"
earlier = "procedure.date"
later = "devices.removal_date"

[[rules]]
kind = "forbidden_unless"
field = "procedure.spare_part"
when = { field = "devices", present = true }

[[code_lists.action]]
code = "implant"
label = "Implant"

[[code_lists.action]]
code = "explant"
label = "Explant"

[[code_lists.reason]]
code = "infection"
label = "Infection"

[[code_lists.reason]]
code = "bia_alcl"
label = "BIA-ALCL"

[[code_lists.complication]]
code = "none"
label = "None"

[[code_lists.complication]]
code = "bleeding"
label = "Bleeding"

[[code_lists.complication]]
code = "infection"
label = "Infection"
"#;

/// A GS1 GTIN that passes its check digit (the GS1 General Specifications example).
const GTIN: &str = "09506000134352";
const OTHER_GTIN: &str = "05012345678900";

fn demo() -> DatasetDefinition {
    DatasetDefinition::parse("demo/1.0.toml", DEMO).unwrap_or_else(|e| panic!("{e}"))
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 6, 1).unwrap()
}

/// The register knows `GTIN` as a widget and `OTHER_GTIN` as a gadget.
fn context() -> FixedContext {
    let mut context = FixedContext::new(today());
    context
        .register
        .insert(UdiDi::parse(GTIN).unwrap(), Slug::parse("widget").unwrap());
    context.register.insert(
        UdiDi::parse(OTHER_GTIN).unwrap(),
        Slug::parse("gadget").unwrap(),
    );
    context
}

fn valid() -> Json {
    json!({
        "patient": {
            "nhs_number": "999 000 0018",
            "date_of_birth": "1960-03-01",
            "sex": "F",
            "postcode": "ls1 4ap"
        },
        "procedure": {
            "provider": "rxx01",
            "consultant": "1234567",
            "date": "2024-05-01",
            "opcs4_code": "W371",
            "side": "L",
            "action": "implant",
            "complications": ["none"],
            "bmi": 27.5,
            "arrival_minutes": 30,
            "theatre_minutes": 120,
            "mesh_used": "no"
        },
        "devices": [
            { "udi": format!("(01){GTIN}(17)270101(10)LOT1"), "lot": "LOT1" }
        ]
    })
}

/// `valid()` with `path` (dots for nesting, a number for an array index) set to `value`;
/// `Json::Null` removes the key.
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

fn report(record: &Json) -> ValidationReport {
    demo().validate_json(record, &context())
}

/// The (path, code) of every error.
fn errors(record: &Json) -> Vec<(String, &'static str)> {
    report(record)
        .errors
        .into_iter()
        .map(|e| (e.field, e.code))
        .collect()
}

fn warnings(record: &Json) -> Vec<(String, &'static str)> {
    report(record)
        .warnings
        .into_iter()
        .map(|e| (e.field, e.code))
        .collect()
}

fn check(record: Json, expected: &[(&str, &str)]) {
    let found = errors(&record);
    let expected: Vec<(String, &str)> = expected
        .iter()
        .map(|(path, code)| (path.to_string(), *code))
        .collect();
    assert_eq!(found, expected, "{:#?}", report(&record).errors);
}

#[test]
fn a_valid_record_has_no_errors_and_canonical_values() {
    let report = report(&valid());
    assert_eq!(report.errors, vec![]);
    assert_eq!(report.warnings, vec![]);
    assert_eq!(report.values["patient.nhs_number"], "9990000018");
    assert_eq!(report.values["patient.postcode"], "LS1 4AP");
    assert_eq!(report.values["patient.sex"], "female");
    assert_eq!(report.values["procedure.provider"], "RXX01");
    assert_eq!(report.values["procedure.opcs4_code"], "W37.1");
    assert_eq!(report.values["procedure.side"], "left");
    assert_eq!(report.values["procedure.mesh_used"], "false");
    assert_eq!(report.values["devices[0].udi"], GTIN);
}

#[test]
fn missing_required_fields_are_each_reported() {
    let record = with(valid(), "patient.nhs_number", Json::Null);
    let record = with(record, "procedure.provider", json!("  "));
    check(
        record,
        &[
            ("patient.nhs_number", "required"),
            ("procedure.provider", "required"),
        ],
    );
    let message = &report(&with(valid(), "patient.nhs_number", Json::Null)).errors[0].message;
    assert_eq!(message, "NHS number is required");
}

#[test]
fn each_field_type_rejects_bad_values_with_its_code() {
    let cases: &[(&str, Json, &str)] = &[
        ("patient.nhs_number", json!("9990000019"), "bad_check_digit"),
        ("patient.nhs_number", json!("99900000"), "bad_format"),
        ("patient.date_of_birth", json!("1960-02-30"), "bad_date"),
        ("patient.date_of_birth", json!("1860-01-01"), "out_of_range"),
        ("patient.sex", json!("q"), "not_in_code_list"),
        ("patient.postcode", json!("12345"), "bad_format"),
        ("procedure.provider", json!("R-X"), "bad_format"),
        ("procedure.consultant", json!("123"), "bad_format"),
        ("procedure.date", json!("2030-01-01"), "date_in_future"),
        ("procedure.opcs4_code", json!("I37.1"), "bad_format"),
        (
            "procedure.snomed_ct_id",
            json!("80146003"),
            "bad_check_digit",
        ),
        ("procedure.side", json!("up"), "not_in_code_list"),
        ("procedure.action", json!("implnt"), "not_in_code_list"),
        (
            "procedure.complications",
            json!(["none", "ouch"]),
            "not_in_code_list",
        ),
        ("procedure.notes", json!("eleven chars"), "too_long"),
        ("procedure.notes", json!("bell\u{7}"), "invalid_character"),
        ("procedure.bmi", json!(80.6), "out_of_range"),
        ("procedure.bmi", json!("1e2"), "bad_number"),
        ("procedure.arrival_minutes", json!(1.5), "bad_number"),
        ("procedure.arrival_minutes", json!(-1), "out_of_range"),
        (
            "procedure.spare_part",
            json!("05012345678901"),
            "bad_check_digit",
        ),
        ("procedure.mesh_used", json!("perhaps"), "bad_boolean"),
        (
            "devices.0.udi",
            json!(format!("(01){}", &GTIN[..13])),
            "bad_format",
        ),
        (
            "devices.0.udi",
            json!("(01)09506000134353"),
            "bad_check_digit",
        ),
        ("devices.0.lot", json!("x".repeat(21)), "too_long"),
    ];
    for (path, value, code) in cases {
        let record = with(valid(), path, value.clone());
        let found = errors(&record);
        let json_path = path.replace("devices.0", "devices[0]");
        assert_eq!(
            found,
            vec![(json_path, *code)],
            "{path} = {value}: {:#?}",
            report(&record).errors
        );
    }
}

#[test]
fn messages_reuse_the_domain_parsers_words() {
    let record = with(valid(), "patient.nhs_number", json!("9990000019"));
    assert_eq!(
        report(&record).errors[0].message,
        "NHS number has invalid check digit"
    );
    let record = with(valid(), "devices.0.udi", json!("(01)09506000134353"));
    assert_eq!(
        report(&record).errors[0].message,
        "UDI of device 1: ai 01 at position 4 09506000134353 has invalid check digit"
    );
}

#[test]
fn explant_reason_is_required_when_the_action_is_explant() {
    let record = with(valid(), "procedure.action", json!("explant"));
    check(
        record.clone(),
        &[("procedure.explant_reason", "conditional_required")],
    );
    assert_eq!(
        report(&record).errors[0].message,
        "Explant reason is required when the action is explant"
    );
    let record = with(record, "procedure.explant_reason", json!("Infection"));
    check(record, &[]);
}

#[test]
fn explant_reason_is_forbidden_for_an_implant() {
    let record = with(valid(), "procedure.explant_reason", json!("infection"));
    check(record.clone(), &[("procedure.explant_reason", "forbidden")]);
    assert_eq!(
        report(&record).errors[0].message,
        "Explant reason must be left empty unless the action is explant"
    );
}

#[test]
fn a_rule_on_an_unreadable_field_stays_silent() {
    let record = with(valid(), "procedure.action", json!("explnt"));
    let record = with(record, "procedure.explant_reason", json!("infection"));
    check(record, &[("procedure.action", "not_in_code_list")]);
}

#[test]
fn at_least_one_procedure_code_is_required() {
    let record = with(valid(), "procedure.opcs4_code", Json::Null);
    check(
        record.clone(),
        &[("procedure.opcs4_code", "required_one_of")],
    );
    let record = with(record, "procedure.snomed_ct_id", json!("80146002"));
    check(record, &[]);
}

#[test]
fn dates_out_of_order_are_rejected_at_the_later_field() {
    let record = with(valid(), "patient.date_of_birth", json!("2024-05-02"));
    check(record.clone(), &[("procedure.date", "date_order")]);
    assert_eq!(
        report(&record).errors[0].message,
        "Procedure date 2024-05-01 must not be before the date of birth 2024-05-02"
    );
    assert_eq!(
        warnings(&record),
        vec![("patient.date_of_birth".to_string(), "implausible_age")]
    );
}

#[test]
fn group_rules_apply_item_by_item() {
    let mut record = valid();
    record["devices"] = json!([
        { "udi": format!("(01){GTIN}") },
        { "udi": format!("(01){GTIN}"), "removed": true },
        { "udi": format!("(01){GTIN}"), "removed": "yes", "removal_date": "2024-04-01" },
    ]);
    check(
        record.clone(),
        &[
            ("devices[1].removal_date", "conditional_required"),
            ("devices[2].removal_date", "date_order"),
        ],
    );
    assert_eq!(
        report(&record).errors[0].message,
        "Removal date of device 2 is required when the removed is yes"
    );
}

#[test]
fn numeric_comparisons_between_fields_and_with_values() {
    let record = with(valid(), "procedure.theatre_minutes", json!(20));
    check(
        record.clone(),
        &[("procedure.theatre_minutes", "comparison")],
    );
    assert_eq!(
        report(&record).errors[0].message,
        "Theatre minutes must be at least the arrival minutes (30); it is 20"
    );
    check(
        with(valid(), "procedure.bmi", json!("13.0")),
        &[("procedure.bmi", "comparison")],
    );
}

#[test]
fn laterality_is_required_for_a_registered_paired_device() {
    let record = with(valid(), "procedure.side", json!("N"));
    check(record.clone(), &[("procedure.side", "laterality_required")]);
    assert_eq!(
        report(&record).errors[0].message,
        "Side must be left, right or bilateral for a widget"
    );
    check(
        with(valid(), "procedure.side", Json::Null),
        &[("procedure.side", "laterality_required")],
    );
    // A device the register does not know cannot make laterality required.
    let mut record = with(valid(), "procedure.side", Json::Null);
    record["devices"][0]["udi"] = json!("(01)00000000000017");
    check(record, &[]);
}

#[test]
fn groups_are_counted() {
    check(
        with(valid(), "devices", Json::Null),
        &[("devices", "required")],
    );
    check(
        with(valid(), "devices", json!([])),
        &[("devices", "required")],
    );
    let udi = format!("(01){GTIN}");
    let four = json!([{ "udi": udi }, { "udi": udi }, { "udi": udi }, { "udi": udi }]);
    check(with(valid(), "devices", four), &[("devices", "too_many")]);
    check(
        with(valid(), "devices", json!([{ "udi": udi }, { "lot": "A" }])),
        &[("devices[1].udi", "required")],
    );
}

#[test]
fn a_group_can_be_a_rule_condition() {
    let record = with(valid(), "procedure.spare_part", json!(GTIN));
    check(record.clone(), &[]);
    let record = with(record, "devices", json!([]));
    check(
        record,
        &[
            ("devices", "required"),
            ("procedure.spare_part", "forbidden"),
        ],
    );
}

#[test]
fn unknown_and_misshapen_input_is_reported() {
    let mut record = valid();
    record["patient"]["shoe_size"] = json!(9);
    record["colour"] = json!({ "hue": 1 });
    record["procedure"]["notes"] = json!({ "text": "x" });
    record["devices"][0]["colour"] = json!("red");
    record["patient.nhs_number"] = json!("9990000026");
    check(
        record,
        &[
            ("colour", "unknown_field"),
            ("devices[0].colour", "unknown_field"),
            ("patient.shoe_size", "unknown_field"),
            ("patient.nhs_number", "duplicate_field"),
            ("procedure.notes", "wrong_shape"),
        ],
    );
    check(json!([1, 2]), &[("", "wrong_shape")]);
    check(
        with(valid(), "devices", json!("(01)09506000134352")),
        &[("devices", "wrong_shape"), ("devices", "required")],
    );
}

#[test]
fn device_warnings_are_kept_apart_from_errors() {
    let mut record = valid();
    record["devices"] = json!([
        { "udi": format!("(01){GTIN}(17)240430") },
        { "udi": format!("(01){OTHER_GTIN}") },
        { "udi": "(01)00000000000017" },
    ]);
    record["procedure"]["bmi"] = json!(61);
    record["patient"]["date_of_birth"] = json!("1900-01-01");
    assert_eq!(errors(&record), vec![]);
    assert_eq!(
        warnings(&record),
        vec![
            ("devices[0].udi".to_string(), "expired_at_implant"),
            ("devices[1].udi".to_string(), "device_type_not_covered"),
            ("devices[2].udi".to_string(), "not_in_register"),
            ("procedure.bmi".to_string(), "implausible_value"),
            ("patient.date_of_birth".to_string(), "implausible_age"),
        ]
    );
}

#[test]
fn a_device_made_after_the_implant_date_is_an_error() {
    let record = with(
        valid(),
        "devices.0.udi",
        json!(format!("(01){GTIN}(11)240502")),
    );
    check(record, &[("devices[0].udi", "manufactured_after_implant")]);
}

fn csv_row(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn valid_csv() -> BTreeMap<String, String> {
    let scan = format!("(01){GTIN}(17)270101(10)LOT1");
    csv_row(&[
        ("patient.nhs_number", "999 000 0018"),
        ("patient.date_of_birth", "01/03/1960"),
        ("patient.sex", "F"),
        ("patient.postcode", "ls1 4ap"),
        ("procedure.provider", "rxx01"),
        ("procedure.consultant", "1234567"),
        ("procedure.date", "2024-05-01"),
        ("procedure.opcs4_code", "W371"),
        ("procedure.snomed_ct_id", ""),
        ("procedure.side", "L"),
        ("procedure.action", "implant"),
        ("procedure.explant_reason", ""),
        ("procedure.complications", "none"),
        ("procedure.bmi", "27.5"),
        ("procedure.arrival_minutes", "30"),
        ("procedure.theatre_minutes", "120"),
        ("procedure.mesh_used", "no"),
        ("device1.udi", &scan),
        ("device1.lot", "LOT1"),
        ("device2.udi", ""),
        ("device2.lot", ""),
    ])
}

#[test]
fn a_csv_row_reads_like_the_same_json_record() {
    let definition = demo();
    let from_csv = definition.validate_csv_row(&valid_csv(), &context());
    let from_json = definition.validate_json(&valid(), &context());
    assert_eq!(from_csv, from_json);
}

#[test]
fn csv_problems_name_the_columns_and_item_paths() {
    let definition = demo();
    let mut row = valid_csv();
    row.insert("device3.lot".into(), "X".into());
    row.insert("device4.udi".into(), "(01)09506000134352".into());
    row.insert("device0.udi".into(), "x".into());
    row.insert("patient.shoe_size".into(), "".into());
    row.insert(
        "procedure.complications".into(),
        "none;bleeding;ouch".into(),
    );
    let report = definition.validate_csv_row(&row, &context());
    let found: Vec<(String, &str)> = report
        .errors
        .into_iter()
        .map(|e| (e.field, e.code))
        .collect();
    assert_eq!(
        found,
        vec![
            ("device0.udi".to_string(), "unknown_field"),
            ("patient.shoe_size".to_string(), "unknown_field"),
            ("devices".to_string(), "too_many"),
            ("procedure.complications".to_string(), "not_in_code_list"),
            ("devices[2].udi".to_string(), "required"),
        ]
    );
}

#[test]
fn a_blank_csv_header_is_ignored_unless_its_cell_has_a_value() {
    // Found by fuzzing: a blank column was reported with an empty path, which the engine
    // took for "not a record" and stopped checking the rest of the row.
    let definition = demo();
    let mut row = valid_csv();
    row.insert(" ".into(), "".into());
    assert!(definition.validate_csv_row(&row, &context()).is_valid());
    row.insert("".into(), "x".into());
    row.insert("procedure.action".into(), "explant".into());
    let report = definition.validate_csv_row(&row, &context());
    let found: Vec<(String, &str)> = report
        .errors
        .into_iter()
        .map(|e| (e.field, e.code))
        .collect();
    assert_eq!(
        found,
        [
            ("(unnamed column)".to_string(), "unknown_field"),
            (
                "procedure.explant_reason".to_string(),
                "conditional_required"
            ),
        ]
    );
}

#[test]
fn an_empty_json_key_is_unknown_and_the_rest_is_still_checked() {
    let mut record = with(valid(), "procedure.action", json!("explant"));
    record[""] = json!(1);
    check(
        record,
        &[
            ("\"\"", "unknown_field"),
            ("procedure.explant_reason", "conditional_required"),
        ],
    );
}

#[test]
fn header_lists_top_level_fields_then_numbered_items() {
    let header = demo().csv_header(2);
    assert_eq!(header[0], "patient.nhs_number");
    assert_eq!(
        &header[header.len() - 8..],
        [
            "device1.udi",
            "device1.lot",
            "device1.removed",
            "device1.removal_date",
            "device2.udi",
            "device2.lot",
            "device2.removed",
            "device2.removal_date",
        ]
    );
    // Asking for more items than the group allows stops at its maximum.
    assert_eq!(demo().csv_header(10).len(), demo().csv_header(3).len());
}

#[test]
fn multiple_codes_accept_a_list_or_semicolons_and_drop_repeats() {
    let record = with(
        valid(),
        "procedure.complications",
        json!("bleeding; Infection;bleeding"),
    );
    assert_eq!(
        report(&record).values["procedure.complications"],
        "bleeding;infection"
    );
    let record = with(valid(), "procedure.complications", json!(["bleeding", 7]));
    check(record, &[("procedure.complications", "not_in_code_list")]);
}

#[test]
fn an_empty_record_lists_every_required_field() {
    let found = errors(&json!({}));
    let codes: Vec<&str> = found.iter().map(|(_, c)| *c).collect();
    assert_eq!(
        found.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
        [
            "patient.nhs_number",
            "patient.date_of_birth",
            "procedure.provider",
            "procedure.date",
            "procedure.action",
            "devices",
            "procedure.opcs4_code"
        ]
    );
    assert!(
        codes
            .iter()
            .all(|c| *c == "required" || *c == "required_one_of")
    );
}

#[test]
fn normalised_input_can_be_reused_for_several_checks() {
    let definition = demo();
    let input = RecordInput::from_json(&definition, &valid());
    assert_eq!(
        definition.validate(&input, &context()),
        definition.validate(&input, &context())
    );
}

/// Arbitrary JSON whose keys are often the demo's own names, so that the engine's deeper
/// paths are reached.
fn arbitrary_json() -> impl Strategy<Value = Json> {
    let key = prop_oneof![
        Just("patient".to_string()),
        Just("procedure".to_string()),
        Just("devices".to_string()),
        Just("udi".to_string()),
        Just("nhs_number".to_string()),
        Just("date".to_string()),
        Just("action".to_string()),
        Just("explant_reason".to_string()),
        Just("complications".to_string()),
        Just("bmi".to_string()),
        Just("side".to_string()),
        Just("removed".to_string()),
        Just("removal_date".to_string()),
        Just("patient.nhs_number".to_string()),
        "\\PC{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        any::<f64>().prop_map(Json::from),
        "\\PC{0,30}".prop_map(Json::String),
        Just(json!("explant")),
        Just(json!("2024-05-01")),
        Just(json!("(01)09506000134352(17)240430")),
        Just(json!("9990000018")),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|map| Json::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn the_engine_never_panics_on_arbitrary_json(record in arbitrary_json()) {
        let definition = demo();
        let report = definition.validate_json(&record, &context());
        for problem in report.errors.iter().chain(&report.warnings) {
            prop_assert!(!problem.code.is_empty() && !problem.message.is_empty());
        }
    }

    #[test]
    fn the_engine_never_panics_on_arbitrary_csv_cells(
        cells in prop::collection::vec("\\PC{0,40}", 25),
        extra_column in "\\PC{0,12}",
    ) {
        let definition = demo();
        let mut row: BTreeMap<String, String> = definition
            .csv_header(2)
            .into_iter()
            .zip(cells.iter().cloned())
            .collect();
        row.insert(extra_column, cells[0].clone());
        let _ = definition.validate_csv_row(&row, &context());
    }

    #[test]
    fn changing_one_valid_field_to_arbitrary_text_never_panics(
        index in 0usize..21,
        text in "\\PC{0,40}",
    ) {
        let definition = demo();
        let mut row = valid_csv();
        let column = row.keys().nth(index).cloned().unwrap_or_default();
        row.insert(column, text);
        let _ = definition.validate_csv_row(&row, &context());
    }

    #[test]
    fn the_definition_parser_never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
        let _ = DatasetDefinition::parse("x.toml", &text);
    }

    #[test]
    fn the_definition_parser_never_panics_on_a_damaged_definition(
        start in 0usize..DEMO.len(),
        length in 0usize..40,
        replacement in "\\PC{0,10}",
    ) {
        let mut text = DEMO.to_string();
        let start = (0..=start).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        let end = (start + length).min(text.len());
        let end = (end..=text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
        text.replace_range(start..end, &replacement);
        if let Ok(definition) = DatasetDefinition::parse("demo/1.0.toml", &text) {
            let _ = definition.validate_json(&valid(), &context());
            let _ = definition.validate_csv_row(&valid_csv(), &context());
        }
    }
}
