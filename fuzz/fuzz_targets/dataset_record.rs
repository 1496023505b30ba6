//! Fuzzes the validation engine with arbitrary records against every shipped dataset
//! definition (`registries/`): the first byte picks the definition, the rest is a JSON record
//! or, when it is not JSON, a CSV row of `column=cell` lines.
//! Checks that nothing panics, that validation is deterministic, and that every problem has a
//! code, a message and, except for a record that is not an object, a path.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::NaiveDate;
use libfuzzer_sys::fuzz_target;
use mdor_domain::dataset::{DatasetDefinition, DeviceTypes, FixedContext};
use mdor_domain::{Slug, UdiDi};

const SHIPPED: [(&str, &str); 7] = [
    ("bcir/1.0.toml", include_str!("../../registries/bcir/1.0.toml")),
    ("bcir/1.1.toml", include_str!("../../registries/bcir/1.1.toml")),
    ("mdor_core/1.0.toml", include_str!("../../registries/mdor_core/1.0.toml")),
    ("mtr/1.0.toml", include_str!("../../registries/mtr/1.0.toml")),
    ("nrhi/1.0.toml", include_str!("../../registries/nrhi/1.0.toml")),
    ("otr/1.0.toml", include_str!("../../registries/otr/1.0.toml")),
    ("pfr/1.0.toml", include_str!("../../registries/pfr/1.0.toml")),
];

/// Each shipped definition with a register that knows two GTINs as its first device type.
fn definitions() -> &'static Vec<(DatasetDefinition, FixedContext)> {
    static DEFINITIONS: OnceLock<Vec<(DatasetDefinition, FixedContext)>> = OnceLock::new();
    DEFINITIONS.get_or_init(|| {
        SHIPPED
            .iter()
            .map(|(file, text)| {
                let definition = DatasetDefinition::parse(file, text)
                    .unwrap_or_else(|error| panic!("shipped definition: {error}"));
                let mut context =
                    FixedContext::new(NaiveDate::from_ymd_opt(2025, 6, 1).unwrap_or_default());
                let device_type = match definition.device_types() {
                    DeviceTypes::Listed(types) => types[0].clone(),
                    DeviceTypes::Any => Slug::parse("hip_stem").unwrap_or_else(|e| panic!("{e}")),
                };
                for gtin in ["09506000134352", "05012345678900"] {
                    let di = UdiDi::parse(gtin).unwrap_or_else(|e| panic!("{e}"));
                    context.register.insert(di, device_type.clone());
                }
                (definition, context)
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let definitions = definitions();
    let (definition, context) = &definitions[usize::from(selector) % definitions.len()];
    let report = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(json) => {
            let report = definition.validate_json(&json, context);
            assert_eq!(report, definition.validate_json(&json, context));
            report
        }
        Err(_) => {
            let row: BTreeMap<String, String> = text
                .lines()
                .filter_map(|line| line.split_once('='))
                .map(|(column, cell)| (column.to_string(), cell.to_string()))
                .collect();
            definition.validate_csv_row(&row, context)
        }
    };
    for problem in report.errors.iter().chain(&report.warnings) {
        assert!(!problem.code.is_empty() && !problem.message.is_empty(), "{problem:?}");
        assert!(
            !problem.field.is_empty() || problem.code == "wrong_shape",
            "{problem:?}"
        );
    }
});
