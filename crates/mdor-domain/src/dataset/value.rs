//! Reading one raw field value into a typed value, with the error code and message a data
//! clerk sees when it cannot be read.
//!
//! Identifiers and UDIs are read by the parsers in `identifiers` and `udi`; their problem
//! texts are kept and prefixed with the field's label.

use chrono::{Datelike, NaiveDate};

use crate::dataset::definition::{CodeList, FieldDefinition, FieldType};
use crate::identifiers::{
    GmcNumber, IdentifierError, Laterality, NhsNumber, OdsCode, Opcs4Code, Postcode, Sex,
    SnomedCtId,
};
use crate::udi::{self, ParsedUdi, UdiDi, UdiError};

/// A field's raw value after normalisation of the input, before its type is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawValue {
    Text(String),
    /// The items of a multi-valued code field.
    List(Vec<String>),
    /// Something that could not be a value (an object where text was expected); already
    /// reported, so the field is neither absent nor valid.
    Malformed,
}

/// A field's value once read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// Text and the canonical text of identifiers (NHS number, ODS code, postcode, …).
    Text(String),
    /// One or more codes, canonical as in the code list.
    Codes(Vec<String>),
    Integer(i64),
    Decimal(f64),
    Date(NaiveDate),
    Boolean(bool),
    Laterality(Laterality),
    Udi(Box<ParsedUdi>),
    UdiDi(UdiDi),
}

impl Value {
    /// The canonical text, as conditions are written and values are reported.
    pub fn canonical(&self) -> String {
        match self {
            Value::Text(text) => text.clone(),
            Value::Codes(codes) => codes.join(";"),
            Value::Integer(i) => i.to_string(),
            Value::Decimal(d) => d.to_string(),
            Value::Date(date) => date.to_string(),
            Value::Boolean(b) => b.to_string(),
            Value::Laterality(l) => l.as_str().to_string(),
            Value::Udi(parsed) => parsed.di.to_string(),
            Value::UdiDi(di) => di.to_string(),
        }
    }

    /// True when the value is (or, for several codes, contains) one of `wanted`.
    pub fn matches_any(&self, wanted: &[String]) -> bool {
        match self {
            Value::Codes(codes) => codes.iter().any(|c| wanted.contains(c)),
            other => wanted.contains(&other.canonical()),
        }
    }

    pub fn number(&self) -> Option<f64> {
        match self {
            Value::Integer(i) => Some(*i as f64),
            Value::Decimal(d) => Some(*d),
            _ => None,
        }
    }

    pub fn date(&self) -> Option<NaiveDate> {
        match self {
            Value::Date(date) => Some(*date),
            _ => None,
        }
    }

    pub fn udi_di(&self) -> Option<&UdiDi> {
        match self {
            Value::Udi(parsed) => Some(&parsed.di),
            Value::UdiDi(di) => Some(di),
            _ => None,
        }
    }
}

/// Why a value could not be read: a stable code and a message naming the field by label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ValueProblem {
    pub code: &'static str,
    pub message: String,
}

fn problem(code: &'static str, message: String) -> ValueProblem {
    ValueProblem { code, message }
}

/// Codes listed in a message before it says "and N more".
const CODES_SHOWN: usize = 12;

/// Reads `raw` as a value of `field`. `label` is the field's label as it should appear at the
/// start of a message (for group items, e.g. `UDI of device 2`); it is formatted only when a
/// message is written.
pub(crate) fn parse_value(
    field: &FieldDefinition,
    label: &dyn std::fmt::Display,
    raw: &RawValue,
    code_list: Option<&CodeList>,
    today: NaiveDate,
) -> Result<Value, ValueProblem> {
    let text = match raw {
        RawValue::Text(text) => text.trim(),
        RawValue::List(items) => {
            return match (field.field_type(), code_list) {
                (FieldType::Code { .. }, Some(list)) => parse_codes(label, items, list),
                _ => Err(problem(
                    "wrong_shape",
                    format!("{label} must be a single value, not a list"),
                )),
            };
        }
        RawValue::Malformed => {
            return Err(problem(
                "wrong_shape",
                format!("{label} must be a single value"),
            ));
        }
    };
    match field.field_type() {
        FieldType::Code { multiple, .. } => {
            let Some(list) = code_list else {
                return Err(problem(
                    "not_in_code_list",
                    format!("{label} has no code list"),
                ));
            };
            let items: Vec<String> = if *multiple {
                text.split(';').map(str::to_string).collect()
            } else {
                vec![text.to_string()]
            };
            parse_codes(label, &items, list)
        }
        FieldType::Integer { min, max, .. } => {
            let value: i64 = text.parse().map_err(|_| {
                problem(
                    "bad_number",
                    format!("{label} '{}' is not a whole number", shorten(text)),
                )
            })?;
            if value < *min || value > *max {
                return Err(problem(
                    "out_of_range",
                    format!("{label} must be between {min} and {max}; got {value}"),
                ));
            }
            Ok(Value::Integer(value))
        }
        FieldType::Decimal { min, max, .. } => {
            let value = parse_decimal(text).ok_or_else(|| {
                problem(
                    "bad_number",
                    format!("{label} '{}' is not a number", shorten(text)),
                )
            })?;
            if value < *min || value > *max {
                return Err(problem(
                    "out_of_range",
                    format!("{label} must be between {min} and {max}; got {value}"),
                ));
            }
            Ok(Value::Decimal(value))
        }
        FieldType::Date {
            allow_future,
            earliest,
        } => {
            let date = parse_date(text).ok_or_else(|| {
                problem(
                    "bad_date",
                    format!(
                        "{label} '{}' is not a date; write it as YYYY-MM-DD or DD/MM/YYYY",
                        shorten(text)
                    ),
                )
            })?;
            if !allow_future && date > today {
                return Err(problem(
                    "date_in_future",
                    format!("{label} {date} is in the future"),
                ));
            }
            if let Some(earliest) = earliest
                && date < *earliest
            {
                return Err(problem(
                    "out_of_range",
                    format!("{label} {date} is before {earliest}"),
                ));
            }
            Ok(Value::Date(date))
        }
        FieldType::Text { max_length } => {
            let length = text.chars().count();
            if length > *max_length {
                return Err(problem(
                    "too_long",
                    format!("{label} must be at most {max_length} characters; it has {length}"),
                ));
            }
            if text
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
            {
                return Err(problem(
                    "invalid_character",
                    format!("{label} contains a control character"),
                ));
            }
            Ok(Value::Text(text.to_string()))
        }
        FieldType::Boolean => parse_boolean(text).map(Value::Boolean).ok_or_else(|| {
            problem(
                "bad_boolean",
                format!("{label} '{}' must be yes or no", shorten(text)),
            )
        }),
        FieldType::UdiScan => udi::parse_scan_at(raw_text(raw), today.year())
            .map(|parsed| Value::Udi(Box::new(parsed)))
            .map_err(|e| udi_problem(label, &e)),
        FieldType::UdiDi => UdiDi::parse(text)
            .map(Value::UdiDi)
            .map_err(|e| udi_problem(label, &e)),
        FieldType::NhsNumber => NhsNumber::parse(text)
            .map(|n| Value::Text(n.as_str().to_string()))
            .map_err(|e| identifier_problem(label, &e)),
        FieldType::OdsCode => OdsCode::parse(text)
            .map(|c| Value::Text(c.as_str().to_string()))
            .map_err(|e| identifier_problem(label, &e)),
        FieldType::GmcNumber => GmcNumber::parse(text)
            .map(|c| Value::Text(c.as_str().to_string()))
            .map_err(|e| identifier_problem(label, &e)),
        FieldType::Opcs4Code { version } => Opcs4Code::parse(text, version)
            .map(|c| Value::Text(c.code().to_string()))
            .map_err(|e| identifier_problem(label, &e)),
        FieldType::SnomedCtId => SnomedCtId::parse(text)
            .map(|c| Value::Text(c.to_string()))
            .map_err(|e| identifier_problem(label, &e)),
        FieldType::Laterality => Laterality::parse(text)
            .map(Value::Laterality)
            .map_err(|e| problem("not_in_code_list", format!("{label} {}", e.problem))),
        FieldType::Sex => Sex::parse(text)
            .map(|s| Value::Text(s.as_str().to_string()))
            .map_err(|e| problem("not_in_code_list", format!("{label} {}", e.problem))),
        FieldType::Postcode => Postcode::parse(text)
            .map(|p| Value::Text(p.as_str().to_string()))
            .map_err(|e| identifier_problem(label, &e)),
    }
}

/// `true`/`false`, `yes`/`no`, `y`/`n`, `1`/`0`, ignoring case.
pub(crate) fn parse_boolean(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" => Some(true),
        "false" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// A UDI scan is read untrimmed: a trailing space can be a HIBCC check character.
fn raw_text(raw: &RawValue) -> &str {
    match raw {
        RawValue::Text(text) => text,
        _ => "",
    }
}

fn parse_codes(
    label: &dyn std::fmt::Display,
    items: &[String],
    list: &CodeList,
) -> Result<Value, ValueProblem> {
    let mut codes: Vec<String> = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    for item in items.iter().map(|i| i.trim()).filter(|i| !i.is_empty()) {
        match list.find(item) {
            Some(code) if !codes.contains(&code.code) => codes.push(code.code.clone()),
            Some(_) => {}
            None => unknown.push(format!("'{}'", shorten(item))),
        }
    }
    if !unknown.is_empty() {
        let all = list.codes();
        let mut shown: Vec<&str> = all
            .iter()
            .take(CODES_SHOWN)
            .map(|c| c.code.as_str())
            .collect();
        let more = all.len().saturating_sub(CODES_SHOWN);
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        if shown.is_empty() {
            shown.push("(none)");
        }
        return Err(problem(
            "not_in_code_list",
            format!(
                "{label} {} is not in the list: {}{tail}",
                unknown.join(", "),
                shown.join(", ")
            ),
        ));
    }
    if codes.is_empty() {
        return Err(problem("required", format!("{label} is required")));
    }
    Ok(Value::Codes(codes))
}

/// Digits with at most one point and an optional sign; `f64::from_str` alone would take
/// `inf`, `NaN` and exponents.
fn parse_decimal(text: &str) -> Option<f64> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    let shape_ok = !digits.is_empty()
        && digits.len() <= 30
        && digits.bytes().any(|b| b.is_ascii_digit())
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().filter(|&b| b == b'.').count() <= 1;
    if !shape_ok {
        return None;
    }
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// `YYYY-MM-DD` or `DD/MM/YYYY`, exactly.
fn parse_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    let digits_at = |positions: &[usize]| positions.iter().all(|&i| b[i].is_ascii_digit());
    if b.len() != 10 {
        return None;
    }
    if b[4] == b'-' && b[7] == b'-' && digits_at(&[0, 1, 2, 3, 5, 6, 8, 9]) {
        return NaiveDate::parse_from_str(text, "%Y-%m-%d").ok();
    }
    if b[2] == b'/' && b[5] == b'/' && digits_at(&[0, 1, 3, 4, 6, 7, 8, 9]) {
        return NaiveDate::parse_from_str(text, "%d/%m/%Y").ok();
    }
    None
}

fn identifier_problem(label: &dyn std::fmt::Display, error: &IdentifierError) -> ValueProblem {
    let code = if error.problem.contains("check digit") {
        "bad_check_digit"
    } else {
        "bad_format"
    };
    problem(code, format!("{label} {}", error.problem))
}

fn udi_problem(label: &dyn std::fmt::Display, error: &UdiError) -> ValueProblem {
    match error {
        UdiError::Empty => problem("required", format!("{label} is required")),
        UdiError::UnknownFormat => problem(
            "bad_format",
            format!("{label} is not a recognised GS1 or HIBCC barcode"),
        ),
        UdiError::Invalid {
            field,
            position,
            problem: text,
        } => {
            let code = if field.contains("check") || text.contains("check digit") {
                "bad_check_digit"
            } else {
                "bad_format"
            };
            problem(
                code,
                format!("{label}: {field} at position {position} {text}"),
            )
        }
    }
}

/// Echoed input is cut to 40 characters so that a pasted document cannot flood a message.
fn shorten(text: &str) -> String {
    if text.chars().count() <= 40 {
        text.to_string()
    } else {
        let head: String = text.chars().take(40).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_iso_or_day_month_year_only() {
        let d = |s: &str| parse_date(s).map(|d| d.to_string());
        assert_eq!(d("2024-02-29"), Some("2024-02-29".into()));
        assert_eq!(d("29/02/2024"), Some("2024-02-29".into()));
        assert_eq!(d("2023-02-29"), None);
        assert_eq!(d("2024-2-9"), None);
        assert_eq!(d("02/29/2024"), None);
        assert_eq!(d("+2024-01-01"), None);
        assert_eq!(d("2024-01-01T00:00:00Z"), None);
    }

    #[test]
    fn decimals_reject_what_people_do_not_mean_as_numbers() {
        assert_eq!(parse_decimal("12.5"), Some(12.5));
        assert_eq!(parse_decimal("-0.5"), Some(-0.5));
        for text in ["inf", "NaN", "1e3", "1.2.3", ".", "-", "1,5", ""] {
            assert_eq!(parse_decimal(text), None, "{text}");
        }
    }

    #[test]
    fn booleans_take_the_usual_spellings() {
        assert_eq!(parse_boolean("Yes"), Some(true));
        assert_eq!(parse_boolean("0"), Some(false));
        assert_eq!(parse_boolean("maybe"), None);
    }
}
