//! Fuzzes the dataset definition parser and the validation engine together: the input is a
//! definition (TOML), optionally followed by a line `%%` and a record, which is validated as
//! JSON (when it parses as JSON) and as a CSV row of `column=cell` lines.
//! Checks that nothing panics, that every reported problem has a code and a message, and that
//! validation is deterministic.
#![no_main]

use std::collections::BTreeMap;

use chrono::NaiveDate;
use libfuzzer_sys::fuzz_target;
use mdor_domain::dataset::{DatasetDefinition, DeviceTypes, FixedContext, ValidationReport};
use mdor_domain::{Slug, UdiDi};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (definition_text, record_text) = text.split_once("\n%%\n").unwrap_or((text, ""));
    let definition = match DatasetDefinition::parse("fuzz/1.0.toml", definition_text) {
        Ok(definition) => definition,
        Err(error) => {
            assert!(!error.problems.is_empty());
            let _ = error.to_string();
            return;
        }
    };
    let Some(context) = context(&definition) else {
        return;
    };
    let _ = definition.csv_header(3);
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(record_text) {
        let report = definition.validate_json(&json, &context);
        check(&report);
        assert_eq!(report, definition.validate_json(&json, &context));
    }
    let row: BTreeMap<String, String> = record_text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(column, cell)| (column.to_string(), cell.to_string()))
        .collect();
    check(&definition.validate_csv_row(&row, &context));
});

/// A fixed date, and a register that knows two GTINs as the definition's first device type,
/// so that rules keyed on device types can fire.
fn context(definition: &DatasetDefinition) -> Option<FixedContext> {
    let mut context = FixedContext::new(NaiveDate::from_ymd_opt(2025, 6, 1)?);
    let device_type = match definition.device_types() {
        DeviceTypes::Listed(types) => types.first()?.clone(),
        DeviceTypes::Any => Slug::parse("widget").ok()?,
    };
    for gtin in ["09506000134352", "05012345678900"] {
        context.register.insert(UdiDi::parse(gtin).ok()?, device_type.clone());
    }
    Some(context)
}

fn check(report: &ValidationReport) {
    for problem in report.errors.iter().chain(&report.warnings) {
        assert!(!problem.code.is_empty(), "{problem:?}");
        assert!(!problem.message.is_empty(), "{problem:?}");
    }
}
