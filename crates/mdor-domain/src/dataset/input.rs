//! One input shape for the engine, from a JSON record or a CSV row.
//!
//! JSON: nested objects are joined with dots (`{"breast": {"side": "L"}}` is `breast.side`;
//! the flat key `"breast.side"` means the same), a group is an array of objects, numbers and
//! booleans are read as their text, `null` and blank strings are absent, and a multi-valued
//! code field may be an array. CSV: top-level fields are columns named as the field, item `n`
//! (1-based) of a group is columns `<csv_prefix><n>.<field>`, blank cells are absent, and a
//! multi-valued code cell separates codes with `;`.
//!
//! Keys that name no field, values of the wrong shape, the same field given twice and groups
//! with more items than allowed are problems of the input itself, kept in `RecordInput` and
//! reported with the rest.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::dataset::definition::{DatasetDefinition, FieldType};
use crate::dataset::value::RawValue;
use crate::record::FieldError;

/// Objects nested deeper than this are not followed; no definition has sections this deep.
const MAX_DEPTH: usize = 6;
/// The path reported for a CSV column with a blank header, which has no name to show.
const UNNAMED_COLUMN: &str = "(unnamed column)";
/// The path reported for a top-level JSON key that is the empty string.
const EMPTY_KEY: &str = "\"\"";

/// A record normalised for one definition: raw values by field, group items by position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordInput {
    /// Top-level fields by index into `DatasetDefinition::fields`.
    pub(crate) fields: BTreeMap<usize, RawValue>,
    /// For each group, its items by 0-based position, each with fields by index.
    pub(crate) groups: Vec<BTreeMap<usize, BTreeMap<usize, RawValue>>>,
    /// Problems with the input's shape, found while normalising.
    pub(crate) problems: Vec<FieldError>,
    /// The input was not a record at all (JSON that is not an object).
    pub(crate) not_a_record: bool,
}

impl RecordInput {
    /// Normalises a JSON record; anything but an object is one `wrong_shape` problem.
    pub fn from_json(definition: &DatasetDefinition, record: &Json) -> RecordInput {
        let mut input = RecordInput::empty(definition);
        match record {
            Json::Object(map) => input.json_object(definition, map, "", 0),
            _ => {
                input.not_a_record = true;
                input.problem("", "wrong_shape", "The record must be a JSON object");
            }
        }
        input
    }

    /// Normalises one CSV row given as column name → cell.
    pub fn from_csv_row(
        definition: &DatasetDefinition,
        row: &BTreeMap<String, String>,
    ) -> RecordInput {
        let mut input = RecordInput::empty(definition);
        let mut too_many = vec![false; definition.groups().len()];
        for (column, cell) in row {
            let column = column.trim();
            let cell_is_blank = cell.trim().is_empty();
            // Spreadsheets often save trailing columns without a header; only a value in one
            // is a problem.
            if column.is_empty() {
                if !cell_is_blank {
                    input.problem(
                        UNNAMED_COLUMN,
                        "unknown_field",
                        "A column without a name has a value; name the column or remove it",
                    );
                }
                continue;
            }
            if let Some(index) = definition.top_field_index(column) {
                if !cell_is_blank {
                    let raw = text_value(definition.fields()[index].field_type(), cell);
                    input.fields.insert(index, raw);
                }
                continue;
            }
            match group_column(definition, column) {
                Some((group, item, Some(field))) => {
                    if cell_is_blank {
                        continue;
                    }
                    if item >= definition.groups()[group].max_items() {
                        too_many[group] = true;
                        continue;
                    }
                    let field_type = definition.groups()[group].fields()[field].field_type();
                    input.groups[group]
                        .entry(item)
                        .or_default()
                        .insert(field, text_value(field_type, cell));
                }
                _ => input.problem(
                    column,
                    "unknown_field",
                    format!("Column {column} is not a field of this dataset"),
                ),
            }
        }
        for (group, flagged) in too_many.into_iter().enumerate() {
            if flagged {
                input.too_many(definition, group);
            }
        }
        input
    }

    /// The positions of the items given for `group` (e.g. the devices of a record), in order.
    pub fn group_positions(&self, definition: &DatasetDefinition, group: &str) -> Vec<usize> {
        definition
            .group_index(group)
            .and_then(|g| self.groups.get(g))
            .map(|items| items.keys().copied().collect())
            .unwrap_or_default()
    }

    /// The text given for a field of a group item (group `devices`, item 0, field `udi`)
    /// exactly as received, or `None` when absent or not text. Callers need it where the
    /// canonical value drops information, as a scan's canonical value is its UDI-DI alone.
    pub fn group_text(
        &self,
        definition: &DatasetDefinition,
        group: &str,
        item: usize,
        field: &str,
    ) -> Option<&str> {
        let group_index = definition.group_index(group)?;
        let field_index = definition.groups()[group_index]
            .fields()
            .iter()
            .position(|f| f.name() == field)?;
        match self
            .groups
            .get(group_index)?
            .get(&item)?
            .get(&field_index)?
        {
            RawValue::Text(text) => Some(text.as_str()),
            RawValue::List(_) | RawValue::Malformed => None,
        }
    }

    fn empty(definition: &DatasetDefinition) -> RecordInput {
        RecordInput {
            fields: BTreeMap::new(),
            groups: vec![BTreeMap::new(); definition.groups().len()],
            problems: Vec::new(),
            not_a_record: false,
        }
    }

    fn problem(&mut self, field: &str, code: &'static str, message: impl Into<String>) {
        self.problems.push(FieldError::new(field, code, message));
    }

    fn too_many(&mut self, definition: &DatasetDefinition, group: usize) {
        let group = &definition.groups()[group];
        self.problem(
            group.name(),
            "too_many",
            format!(
                "At most {} {} entries may be given",
                group.max_items(),
                in_sentence(group.label())
            ),
        );
    }

    fn json_object(
        &mut self,
        definition: &DatasetDefinition,
        map: &serde_json::Map<String, Json>,
        prefix: &str,
        depth: usize,
    ) {
        for (key, value) in map {
            let path = if prefix.is_empty() && key.is_empty() {
                EMPTY_KEY.to_string()
            } else if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            if prefix.is_empty()
                && let Some(group) = definition.group_index(key)
            {
                self.json_group(definition, group, value);
                continue;
            }
            if let Some(index) = definition.top_field_index(&path) {
                let field_type = definition.fields()[index].field_type();
                if let Some(raw) = self.json_value(field_type, &path, value) {
                    match self.fields.entry(index) {
                        std::collections::btree_map::Entry::Vacant(slot) => {
                            slot.insert(raw);
                        }
                        std::collections::btree_map::Entry::Occupied(_) => self.problem(
                            &path,
                            "duplicate_field",
                            format!("{path} is given twice (nested and with dots)"),
                        ),
                    }
                }
                continue;
            }
            match value {
                Json::Object(inner) if depth < MAX_DEPTH && definition.is_section(&path) => {
                    self.json_object(definition, inner, &path, depth + 1);
                }
                _ => self.problem(
                    &path,
                    "unknown_field",
                    format!("{path} is not a field of this dataset"),
                ),
            }
        }
    }

    fn json_group(&mut self, definition: &DatasetDefinition, group: usize, value: &Json) {
        let group_definition = &definition.groups()[group];
        let name = group_definition.name();
        let items = match value {
            Json::Null => return,
            Json::Array(items) => items,
            _ => {
                self.problem(
                    name,
                    "wrong_shape",
                    format!(
                        "{name} must be a list of {} items",
                        in_sentence(group_definition.label())
                    ),
                );
                return;
            }
        };
        if items.len() > group_definition.max_items() {
            self.too_many(definition, group);
        }
        for (position, item) in items.iter().enumerate().take(group_definition.max_items()) {
            let item_path = format!("{name}[{position}]");
            let Json::Object(fields) = item else {
                self.problem(
                    &item_path,
                    "wrong_shape",
                    format!("{item_path} must be an object"),
                );
                continue;
            };
            let mut values = BTreeMap::new();
            for (key, value) in fields {
                let path = format!("{item_path}.{key}");
                let Some(index) = group_definition
                    .fields()
                    .iter()
                    .position(|f| f.name() == key)
                else {
                    self.problem(
                        &path,
                        "unknown_field",
                        format!("{path} is not a field of this dataset"),
                    );
                    continue;
                };
                let field_type = group_definition.fields()[index].field_type();
                if let Some(raw) = self.json_value(field_type, &path, value) {
                    values.insert(index, raw);
                }
            }
            self.groups[group].insert(position, values);
        }
    }

    /// The raw value of one JSON leaf, or `None` when it is absent.
    fn json_value(&mut self, field_type: &FieldType, path: &str, value: &Json) -> Option<RawValue> {
        let multiple = matches!(field_type, FieldType::Code { multiple: true, .. });
        match value {
            Json::Null => None,
            Json::String(text) if text.trim().is_empty() => None,
            Json::String(text) => Some(text_value(field_type, text)),
            Json::Number(number) => Some(RawValue::Text(number.to_string())),
            Json::Bool(b) => Some(RawValue::Text(b.to_string())),
            Json::Array(items) if multiple => {
                let mut texts = Vec::new();
                for item in items {
                    match item {
                        Json::String(text) => texts.push(text.clone()),
                        Json::Number(number) => texts.push(number.to_string()),
                        _ => {
                            self.problem(
                                path,
                                "wrong_shape",
                                format!("{path} must be a list of codes"),
                            );
                            return Some(RawValue::Malformed);
                        }
                    }
                }
                (!texts.iter().all(|t| t.trim().is_empty())).then_some(RawValue::List(texts))
            }
            Json::Array(_) | Json::Object(_) => {
                self.problem(
                    path,
                    "wrong_shape",
                    format!("{path} must be a single value"),
                );
                Some(RawValue::Malformed)
            }
        }
    }
}

/// Text for a field: a multi-valued code field's text is split at `;`.
fn text_value(field_type: &FieldType, text: &str) -> RawValue {
    match field_type {
        FieldType::Code { multiple: true, .. } => {
            RawValue::List(text.split(';').map(str::to_string).collect())
        }
        _ => RawValue::Text(text.to_string()),
    }
}

/// Reads `device2.udi` as (group, item 1, field index of `udi`); the field is `None` when the
/// group has no such field. Item numbers start at 1 in CSV.
fn group_column(
    definition: &DatasetDefinition,
    column: &str,
) -> Option<(usize, usize, Option<usize>)> {
    let (head, field_name) = column.split_once('.')?;
    definition
        .groups()
        .iter()
        .enumerate()
        .find_map(|(group, g)| {
            let number = head.strip_prefix(g.csv_prefix())?;
            if number.is_empty()
                || number.len() > 4
                || !number.bytes().all(|b| b.is_ascii_digit())
                || number.starts_with('0')
            {
                return None;
            }
            let item = number.parse::<usize>().ok()?.checked_sub(1)?;
            let field = g.fields().iter().position(|f| f.name() == field_name);
            Some((group, item, field))
        })
}

/// A label inside a sentence: `Explant reason` → `explant reason`, `UDI` stays `UDI`.
pub(crate) fn in_sentence(label: &str) -> String {
    let mut chars = label.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(second)) if first.is_uppercase() && !second.is_uppercase() => {
            first.to_lowercase().chain(label.chars().skip(1)).collect()
        }
        _ => label.to_string(),
    }
}
