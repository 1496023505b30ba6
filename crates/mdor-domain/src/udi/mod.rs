//! Unique Device Identifiers read from a raw barcode scan: GS1 and HIBCC.
//!
//! A scan yields the device identifier (UDI-DI, which names the model in the device register)
//! and the production identifiers (lot, serial, expiry, manufacture date) that single out the
//! physical unit, which is what a recall needs.
//! `parse_scan` decides the issuing agency from the first characters and hands over to
//! `gs1` or `hibcc`; both return the same `ParsedUdi`. `encode` renders a `ParsedUdi` back
//! into scans, for tests and synthetic data.
//!
//! Positions in errors are 0-based character offsets into the raw scan as given to
//! `parse_scan` (leading whitespace and symbology identifiers included), so that a message
//! can point at the exact character a person has to look at.
//!
//! Two-digit years are expanded by the GS1 sliding window (GS1 General Specifications
//! §7.12) relative to a current year; `parse_scan` takes it from the system clock and
//! `parse_scan_at` takes it as a parameter so that tests do not depend on the date.

pub mod encode;
pub mod gs1;
pub mod hibcc;

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

/// The agency that issued a UDI-DI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum UdiIssuer {
    Gs1,
    Hibcc,
}

impl UdiIssuer {
    pub fn as_str(self) -> &'static str {
        match self {
            UdiIssuer::Gs1 => "gs1",
            UdiIssuer::Hibcc => "hibcc",
        }
    }
}

/// A device identifier: a GTIN-14 (digits, valid mod-10 check digit) or a HIBCC primary
/// identifier written as labeler code + product code + unit of measure (no `+`, no check
/// character), e.g. `A123PROD1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UdiDi {
    issuer: UdiIssuer,
    value: String,
}

/// Production identifiers of one physical unit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductionIdentifiers {
    pub lot: Option<String>,
    pub serial: Option<String>,
    pub expiry: Option<NaiveDate>,
    pub manufactured: Option<NaiveDate>,
}

/// Everything read from one scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedUdi {
    pub di: UdiDi,
    pub production: ProductionIdentifiers,
    /// Quantity, when the symbol carries one (GS1 AI 30, HIBCC `$$8`/`$$9` or `/Q`).
    pub quantity: Option<u32>,
    /// GS1 elements read and checked that have no field above, keyed by application
    /// identifier: 22 (consumer product variant), 240 (additional product identification),
    /// 7240 (protocol id) and 8012 (software version, which matters for active implants).
    /// Always empty for HIBCC.
    pub other_elements: BTreeMap<String, String>,
}

/// Why a scan or an identifier could not be read.
/// `position` is the 0-based character offset in the input where the problem was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UdiError {
    #[error("udi is empty")]
    Empty,
    #[error("udi is not a recognised gs1 or hibcc format")]
    UnknownFormat,
    #[error("udi {field} at position {position}: {problem}")]
    Invalid {
        /// The element at fault, e.g. "gtin", "ai 17", "hibcc check character".
        field: String,
        position: usize,
        problem: String,
    },
}

impl UdiDi {
    /// Parses a bare UDI-DI as it appears in the device register or a manual entry:
    /// 14 digits (or 8, 12, 13, left-padded to 14) for GS1, or a HIBCC primary identifier
    /// `A123PROD1`, or `+A123PROD1` with or without its check character (see
    /// `hibcc::parse_primary_identifier`).
    pub fn parse(input: &str) -> Result<UdiDi, UdiError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(UdiError::Empty);
        }
        if trimmed.bytes().all(|b| b.is_ascii_digit()) {
            let leading = input[..input.len() - input.trim_start().len()]
                .chars()
                .count();
            return gs1::parse_gtin(trimmed, leading).map(UdiDi::gtin_unchecked);
        }
        hibcc::parse_primary_identifier(input)
    }

    /// Builds a GS1 UDI-DI from a GTIN-14 that has already been checked by `gs1::parse_gtin`.
    pub(crate) fn gtin_unchecked(gtin14: String) -> UdiDi {
        UdiDi {
            issuer: UdiIssuer::Gs1,
            value: gtin14,
        }
    }

    /// Builds a HIBCC UDI-DI from labeler + product + unit of measure already checked by
    /// the `hibcc` parser.
    pub(crate) fn hibcc_unchecked(value: String) -> UdiDi {
        UdiDi {
            issuer: UdiIssuer::Hibcc,
            value,
        }
    }

    pub fn issuer(&self) -> UdiIssuer {
        self.issuer
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }
}

impl std::fmt::Display for UdiDi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.value)
    }
}

impl Serialize for UdiDi {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.value)
    }
}

impl<'de> Deserialize<'de> for UdiDi {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        UdiDi::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Reads one raw scan (keyboard-wedge or scanner output) in any supported form, expanding
/// two-digit years relative to the current year of the system clock (UTC).
///
/// GS1: with or without an AIM symbology identifier (`]d2`, `]C1`, `]Q3`, `]e0`), element
/// strings separated by GS (0x1D) as FNC1, the human-readable form with parentheses, and GS1
/// Digital Link URIs. HIBCC: data starting with `+`, concatenated in one symbol, or a
/// primary and a secondary symbol read one after the other and joined by CR, LF or GS.
pub fn parse_scan(raw: &str) -> Result<ParsedUdi, UdiError> {
    parse_scan_at(raw, current_year())
}

/// `parse_scan` with the year that two-digit years are expanded against given explicitly.
pub fn parse_scan_at(raw: &str, current_year: i32) -> Result<ParsedUdi, UdiError> {
    let (trimmed, leading) = trim_scan(raw);
    if trimmed.is_empty() {
        return Err(UdiError::Empty);
    }
    let body = strip_symbology_identifier(trimmed);
    let offset = leading + (trimmed.len() - body.len());
    if body.starts_with('+') || body.starts_with("*+") {
        return hibcc::parse_at(body, offset, current_year);
    }
    gs1::parse_at(body, offset, current_year)
}

/// Reads a HIBCC primary and secondary symbol scanned one after the other (in either
/// order), or a single scan of any form when given one string.
///
/// Positions in errors count as if the scans had been joined with one newline, which is
/// how `parse_scan` sees them when a scanner sends both in one read.
pub fn parse_scans(scans: &[&str]) -> Result<ParsedUdi, UdiError> {
    parse_scans_at(scans, current_year())
}

/// `parse_scans` with the year that two-digit years are expanded against given explicitly.
pub fn parse_scans_at(scans: &[&str], current_year: i32) -> Result<ParsedUdi, UdiError> {
    match scans {
        [] => Err(UdiError::Empty),
        [single] => parse_scan_at(single, current_year),
        _ => {
            let mut symbols = Vec::with_capacity(scans.len());
            let mut offset = 0;
            for scan in scans {
                let (trimmed, leading) = trim_scan(scan);
                let body = strip_symbology_identifier(trimmed);
                let body_offset = offset + leading + (trimmed.len() - body.len());
                if !body.is_empty() {
                    if !body.starts_with('+') && !body.starts_with("*+") {
                        return Err(invalid(
                            "scan",
                            body_offset,
                            "only hibcc symbols can be combined from several scans",
                        ));
                    }
                    symbols.push((body, body_offset));
                }
                offset += scan.chars().count() + 1;
            }
            if symbols.is_empty() {
                return Err(UdiError::Empty);
            }
            hibcc::parse_symbols_at(&symbols, current_year)
        }
    }
}

/// Builds an `UdiError::Invalid`.
pub(crate) fn invalid(
    field: impl Into<String>,
    position: usize,
    problem: impl Into<String>,
) -> UdiError {
    UdiError::Invalid {
        field: field.into(),
        position,
        problem: problem.into(),
    }
}

/// The current calendar year (UTC) for the sliding century window.
pub(crate) fn current_year() -> i32 {
    chrono::Utc::now().year()
}

/// Expands a two-digit year by the GS1 sliding window (GS1 General Specifications §7.12):
/// a difference from the current two-digit year of 51 to 99 means the previous century,
/// -99 to -50 the next century, anything else the current century.
pub(crate) fn expand_two_digit_year(two_digit_year: u32, current_year: i32) -> i32 {
    let century = current_year.div_euclid(100) * 100;
    let current_two_digit = current_year.rem_euclid(100);
    // Two-digit years are 0..=99, so the cast is lossless.
    let difference = two_digit_year as i32 - current_two_digit;
    // Saturating: `current_year` is caller-supplied and must not be able to cause a panic.
    let century = match difference {
        51..=99 => century.saturating_sub(100),
        -99..=-50 => century.saturating_add(100),
        _ => century,
    };
    century.saturating_add(two_digit_year as i32)
}

/// The last day of a month, `None` for a month outside 1 to 12 or a year chrono cannot
/// represent.
pub(crate) fn last_day_of_month(year: i32, month: u32) -> Option<NaiveDate> {
    let (next_year, next_month) = if month == 12 {
        (year.checked_add(1)?, 1)
    } else {
        (year, month.checked_add(1)?)
    };
    if !(1..=12).contains(&month) {
        return None;
    }
    NaiveDate::from_ymd_opt(next_year, next_month, 1)?.pred_opt()
}

/// The character offset of every byte of `text` (and of its end), so that errors found
/// while walking bytes can report character positions even after multibyte characters.
pub(crate) fn char_positions(text: &str, offset: usize) -> Vec<usize> {
    let mut positions = Vec::with_capacity(text.len() + 1);
    let mut chars_before = offset;
    for c in text.chars() {
        for _ in 0..c.len_utf8() {
            positions.push(chars_before);
        }
        chars_before += 1;
    }
    positions.push(chars_before);
    positions
}

/// Splits off leading whitespace and trailing line ends; returns the rest and how many
/// characters were removed at the front. Trailing spaces are kept because a space is a
/// valid HIBCC check character.
fn trim_scan(raw: &str) -> (&str, usize) {
    let start = raw.trim_start_matches([' ', '\r', '\n', '\t']);
    let leading = raw.len() - start.len();
    (start.trim_end_matches(['\r', '\n', '\t']), leading)
}

/// Removes a leading AIM symbology identifier (`]` + code character + modifier).
pub(crate) fn strip_symbology_identifier(scan: &str) -> &str {
    let bytes = scan.as_bytes();
    if bytes.len() >= 3 && bytes[0] == b']' {
        // Slicing at 3 is safe: the first three bytes are ASCII when the first is ']' and
        // the next two are checked to be ASCII alphanumerics.
        if bytes[1].is_ascii_alphanumeric() && bytes[2].is_ascii_alphanumeric() {
            return &scan[3..];
        }
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    const YEAR: i32 = 2026;

    /// Renders a parse result compactly: the fields present, or the error message.
    fn render(result: Result<ParsedUdi, UdiError>) -> String {
        let udi = match result {
            Ok(udi) => udi,
            Err(error) => return error.to_string(),
        };
        let mut out = format!("{} {}", udi.di.issuer().as_str(), udi.di);
        let production = &udi.production;
        let mut field = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                out.push_str(&format!(" {name}={value}"));
            }
        };
        field("lot", production.lot.clone());
        field("serial", production.serial.clone());
        field("expiry", production.expiry.map(|d| d.to_string()));
        field(
            "manufactured",
            production.manufactured.map(|d| d.to_string()),
        );
        field("quantity", udi.quantity.map(|q| q.to_string()));
        for (ai, value) in &udi.other_elements {
            out.push_str(&format!(" ai{ai}={value}"));
        }
        out
    }

    fn check(input: &str, expected: &str) {
        assert_eq!(
            render(parse_scan_at(input, YEAR)),
            expected,
            "input {input:?}"
        );
    }

    const FULL: &str = "gs1 09506000134352 lot=ABC123 serial=XYZ expiry=2027-01-01";

    #[test]
    fn the_digital_link_example_reads_the_same_in_every_gs1_syntax() {
        check(
            "https://id.gs1.org/01/09506000134352/10/ABC123/21/XYZ?17=270101",
            FULL,
        );
        check("]d201095060001343521727010110ABC123\u{1d}21XYZ", FULL);
        check("]C101095060001343521727010110ABC123\u{1d}21XYZ", FULL);
        check(
            "]Q3010950600013435217270101\u{1d}10ABC123\u{1d}21XYZ\u{1d}",
            FULL,
        );
        check("010950600013435217270101\u{1d}10ABC123\u{1d}21XYZ", FULL);
        check(
            "\u{1d}010950600013435217270101\u{1d}10ABC123\u{1d}21XYZ",
            FULL,
        );
        check("(01)09506000134352(17)270101(10)ABC123(21)XYZ", FULL);
        check("  (01)09506000134352(21)XYZ(10)ABC123(17)270101\r\n", FULL);
        check(
            "HTTPS://example.com/01/09506000134352/10/ABC123/21/XYZ?17=270101",
            FULL,
        );
        check(
            "https://example.com/some/prefix/01/09506000134352/10/ABC%31%323/21/XYZ?linkType=gs1:pip&17=270101#frag",
            FULL,
        );
    }

    #[test]
    fn gs1_dates_use_day_zero_as_month_end_and_the_sliding_window() {
        check("0109506000134352", "gs1 09506000134352");
        check(
            "010950600013435217280200",
            "gs1 09506000134352 expiry=2028-02-29",
        );
        check(
            "010950600013435217270200",
            "gs1 09506000134352 expiry=2027-02-28",
        );
        check(
            "010950600013435211251231",
            "gs1 09506000134352 manufactured=2025-12-31",
        );
        // 77 - 26 = 51: previous century; 76 - 26 = 50: current century.
        check(
            "010950600013435211770101",
            "gs1 09506000134352 manufactured=1977-01-01",
        );
        check(
            "010950600013435217760101",
            "gs1 09506000134352 expiry=2076-01-01",
        );
        assert_eq!(
            parse_scan_at("010950600013435217010101", 2099).map(|u| u.production.expiry),
            Ok(NaiveDate::from_ymd_opt(2101, 1, 1))
        );
        assert_eq!(
            parse_scan_at("010950600013435217500101", 2000).map(|u| u.production.expiry),
            Ok(NaiveDate::from_ymd_opt(2050, 1, 1))
        );
        assert_eq!(
            parse_scan_at("010950600013435217510101", 2000).map(|u| u.production.expiry),
            Ok(NaiveDate::from_ymd_opt(1951, 1, 1))
        );
    }

    #[test]
    fn gs1_other_elements_are_read_and_kept() {
        check(
            "01095060001343523012\u{1d}240REF-1\u{1d}7240PROT\u{1d}8012V1.2.3\u{1d}22VAR",
            "gs1 09506000134352 quantity=12 ai22=VAR ai240=REF-1 ai7240=PROT ai8012=V1.2.3",
        );
        check(
            "https://id.gs1.org/01/09506000134352/22/VAR?30=12&8012=V1.2.3",
            "gs1 09506000134352 quantity=12 ai22=VAR ai8012=V1.2.3",
        );
        check(
            "(01)09506000134352(10)A\\(B)C",
            "gs1 09506000134352 lot=A(B)C",
        );
        check(
            "https://id.gs1.org/01/9506000134352/10/A%2FB",
            "gs1 09506000134352 lot=A/B",
        );
    }

    #[test]
    fn gs1_errors_name_the_element_and_position() {
        check(
            "010950600013435217250229",
            "udi ai 17 at position 18: 250229 is not a valid date",
        );
        check(
            "]d2010950600013435217250229",
            "udi ai 17 at position 21: 250229 is not a valid date",
        );
        check(
            "0109506000134353",
            "udi ai 01 at position 2: 09506000134353 has invalid check digit",
        );
        check(
            "010950600013435299ABC",
            "udi ai 99 at position 16: is not a supported application identifier",
        );
        check(
            "0109506000134352710ABC",
            "udi ai 710 at position 16: is not a supported application identifier",
        );
        check(
            "(01)09506000134352(91)ABC",
            "udi ai 91 at position 18: is not a supported application identifier",
        );
        check(
            "10ABC",
            "udi ai 01 at position 0: is missing; a udi needs the gtin",
        );
        check(
            "0109506000134352\u{1d}10ABC\u{1d}10ABD",
            "udi ai 10 at position 23: appears twice with different values (first at position 17)",
        );
        check(
            "0109506000134352\u{1d}10ABC\u{1d}10ABC",
            "gs1 09506000134352 lot=ABC",
        );
        check(
            "010950600013435210ABC12345\u{1d}\u{1d}21X",
            "udi element string at position 27: has two gs separators in a row",
        );
        check(
            "010950600013435210ABC#",
            "udi ai 10 at position 21: contains '#'; it is not in gs1 character set 82",
        );
        check(
            "010950600013435210ÄBC",
            "udi ai 10 at position 18: contains a non-ascii character; it is not in gs1 character set 82",
        );
        check(
            "01095060001343521712345",
            "udi ai 17 at position 18: has 5 characters; expected exactly 6",
        );
        check(
            "0109506000134352\u{1d}10",
            "udi ai 10 at position 19: is empty",
        );
        check(
            "0109506000134352300000000001",
            "udi ai 30 at position 18: has 10 characters; expected at most 8 (is a gs separator missing?)",
        );
        check(
            "https://id.gs1.org/01/09506000134352/21/XYZ/10/ABC",
            "udi ai 10 at position 44: is out of order; the digital link path lists 22, 10 and 21 in that order",
        );
        check(
            "https://id.gs1.org/01/09506000134352/17/270101",
            "udi ai 17 at position 37: is not a key qualifier of the gtin; it belongs in the query string",
        );
        check(
            "https://id.gs1.org/10/ABC",
            "udi ai 01 at position 18: is missing from the digital link path; a udi needs the gtin",
        );
        check(
            "https://id.gs1.org/01/09506000134352/10/AB%4",
            "udi digital link at position 42: has '%' not followed by two hexadecimal digits",
        );
        check(
            "https://id.gs1.org/01/09506000134352?99=1",
            "udi ai 99 at position 37: is not a supported application identifier",
        );
        check(
            "https://id.gs1.org/01/09506000134352/10/é",
            "udi digital link at position 40: contains a non-ascii character; a uri must percent-encode it",
        );
        check("", "udi is empty");
        check(" \r\n", "udi is empty");
        check("ABC", "udi is not a recognised gs1 or hibcc format");
        check(
            "é0109506000134352",
            "udi is not a recognised gs1 or hibcc format",
        );
    }

    #[test]
    fn a_missing_gs_after_a_lot_merges_the_next_element_as_gs1_specifies() {
        // A variable-length element runs to GS or the end: without the GS the serial's AI
        // and value become part of the lot. Only a length or character rule can catch it.
        check(
            "010950600013435210ABC12321XYZ",
            "gs1 09506000134352 lot=ABC12321XYZ",
        );
        check(
            "010950600013435210ABC12345678921XYZ12345",
            "udi ai 10 at position 18: has 22 characters; expected at most 20 (is a gs separator missing?)",
        );
    }

    #[test]
    fn hibcc_symbols_are_read_in_every_form() {
        check("+A123BJC5D6E71G", "hibcc A123BJC5D6E71");
        check("*+A123BJC5D6E71G*", "hibcc A123BJC5D6E71");
        check("]C0+A123BJC5D6E71G", "hibcc A123BJC5D6E71");
        check("+Z999009993020351F", "hibcc Z999009993020351");
        check(
            "+A123BJC5D6E71/$$3270101LOT18",
            "hibcc A123BJC5D6E71 lot=LOT1 expiry=2027-01-01",
        );
        check(
            "+A123BJC5D6E71G\r\n+$$3270101LOT1G9",
            "hibcc A123BJC5D6E71 lot=LOT1 expiry=2027-01-01",
        );
        check(
            "+A123BJC5D6E71G\u{1d}+$$3270101LOT1G9",
            "hibcc A123BJC5D6E71 lot=LOT1 expiry=2027-01-01",
        );
        check(
            "]C0+A123BJC5D6E71G\r\n]C0+$$3270101LOT1G9",
            "hibcc A123BJC5D6E71 lot=LOT1 expiry=2027-01-01",
        );
        check(
            "+$$3270101LOT1G9\n+A123BJC5D6E71G",
            "hibcc A123BJC5D6E71 lot=LOT1 expiry=2027-01-01",
        );
        assert_eq!(
            render(parse_scans_at(
                &["+A123BJC5D6E71G", "]C0+$$3270101LOT1G9"],
                YEAR
            )),
            "hibcc A123BJC5D6E71 lot=LOT1 expiry=2027-01-01"
        );
    }

    #[test]
    fn hibcc_secondary_formats_are_read() {
        check(
            "+Z999009993020351/$$09053C001Y",
            "hibcc Z999009993020351 lot=3C001 expiry=2005-09-30",
        );
        check(
            "+A123PROD1/$$0227LOT6",
            "hibcc A123PROD1 lot=LOT expiry=2027-02-28",
        );
        check(
            "+A123PROD1/$$2013127LOTB",
            "hibcc A123PROD1 lot=LOT expiry=2027-01-31",
        );
        check(
            "+A123PROD1/$$527031LOTD",
            "hibcc A123PROD1 lot=LOT expiry=2027-01-31",
        );
        check(
            "+A123PROD1/$$427010123LOTF",
            "hibcc A123PROD1 lot=LOT expiry=2027-01-01",
        );
        check(
            "+A123PROD1/$$62700112Q",
            "hibcc A123PROD1 expiry=2027-01-01",
        );
        check("+A123PROD1/$$7LOT2", "hibcc A123PROD1 lot=LOT");
        check(
            "+A123PROD1/$$9001003270101LOTJ",
            "hibcc A123PROD1 lot=LOT expiry=2027-01-01 quantity=100",
        );
        check(
            "+A123PROD1/$$8242013127LOT/Q24B",
            "hibcc A123PROD1 lot=LOT expiry=2027-01-31 quantity=24",
        );
        check("+A123PROD1/$$+7SER94", "hibcc A123PROD1 serial=SER9");
        check(
            "+A123PROD1/$$+0227SN5T",
            "hibcc A123PROD1 serial=SN5 expiry=2027-02-28",
        );
        check(
            "+A123PROD1/$+SN1/14D202701013",
            "hibcc A123PROD1 serial=SN1 expiry=2027-01-01",
        );
        check(
            "+A123PROD1/$3C001/16D20240115/S0001%",
            "hibcc A123PROD1 lot=3C001 serial=0001 manufactured=2024-01-15",
        );
        check(
            "+A123PROD1/05271LOTI",
            "hibcc A123PROD1 lot=LOT expiry=2005-09-28",
        );
    }

    #[test]
    fn hibcc_errors_name_the_element_and_position() {
        check(
            "+A123BJC5D6E71H",
            "udi hibcc check character at position 14: 'H' does not match the data",
        );
        check(
            "+A123BJC5D6E71G\n+$$3270101LOT1HA",
            "udi hibcc link character at position 30: 'H' does not match the primary check character 'G'",
        );
        check(
            "+A123PROD1/$$427010124LOTG",
            "udi hibcc expiry date at position 13: is not a valid date",
        );
        check(
            "+A123PROD1/$$2022927LOTJ",
            "udi hibcc expiry date at position 13: is not a valid date",
        );
        check(
            "+A123PROD1/$$3270101LOT/16D20270101/14D20270102P",
            "udi hibcc supplementary expiry date /14D at position 35: disagrees with the same data given earlier in the symbol",
        );
        check(
            "+a123PROD1I",
            "udi hibcc symbol at position 1: contains 'a'; only 0-9, A-Z, '-', '.', space, '$', '/', '+' and '%' are allowed",
        );
        check(
            "+A123PROD1/XYZV",
            "udi hibcc secondary data at position 11: must start with '$', '$$', '$+', '$$+' or a julian date",
        );
        check(
            "+$$3270101LOT1G9",
            "udi hibcc primary data at position 0: is missing; a secondary symbol alone does not identify the device",
        );
    }

    #[test]
    fn hibcc_check_characters_that_are_space_or_slash_survive_trimming_and_splitting() {
        // Regression: the first parse_scan trimmed trailing spaces, which destroyed a
        // space check character.
        check("+A123PROX1 ", "hibcc A123PROX1");
        check("+A123PROX1 \r\n", "hibcc A123PROX1");
        check("+A123PROZ1/", "hibcc A123PROZ1");
        check(
            "+A123PROZ1/\n+$$3270101LOT1/X",
            "hibcc A123PROZ1 lot=LOT1 expiry=2027-01-01",
        );
        check(
            "+A123PROX1 \r\n+$$3270101LOT1 V",
            "hibcc A123PROX1 lot=LOT1 expiry=2027-01-01",
        );
    }

    #[test]
    fn gtins_with_non_digits_or_odd_lengths_are_errors_not_panics() {
        // Regression: the placeholder parse_gtin subtracted b'0' from every byte and padded
        // any length to 14, so "9506000134a52" panicked and "9" was read as a GTIN.
        let gtin = |s: &str| gs1::parse_gtin(s, 5).map_err(|e| e.to_string());
        assert_eq!(
            gtin("9506000134a52"),
            Err("udi gtin at position 15: must contain only digits".into())
        );
        assert_eq!(
            gtin("9"),
            Err("udi gtin at position 5: has 1 digits; expected 8, 12, 13 or 14".into())
        );
        assert_eq!(
            gtin("é"),
            Err("udi gtin at position 5: must contain only digits".into())
        );
        assert_eq!(gtin("96385074"), Ok("00000096385074".into()));
    }

    #[test]
    fn bare_udi_dis_parse_for_both_issuers() {
        let di = |s: &str| UdiDi::parse(s).map(|d| (d.issuer(), d.to_string()));
        assert_eq!(
            di("09506000134352"),
            Ok((UdiIssuer::Gs1, "09506000134352".into()))
        );
        assert_eq!(
            di("9506000134352"),
            Ok((UdiIssuer::Gs1, "09506000134352".into()))
        );
        assert_eq!(di("A123PROD1"), Ok((UdiIssuer::Hibcc, "A123PROD1".into())));
        assert_eq!(di("+A123PROD1"), Ok((UdiIssuer::Hibcc, "A123PROD1".into())));
        assert_eq!(
            di("+A123PROD1I"),
            Ok((UdiIssuer::Hibcc, "A123PROD1".into()))
        );
        assert_eq!(
            di("+A123BJC5D6E71G"),
            Ok((UdiIssuer::Hibcc, "A123BJC5D6E71".into()))
        );
        assert_eq!(
            di("+A123PROD1J").map_err(|e| e.to_string()),
            Err("udi hibcc check character at position 10: 'J' does not match the data".into())
        );
        assert_eq!(
            di("09506000134353").map_err(|e| e.to_string()),
            Err("udi gtin at position 0: has invalid check digit".into())
        );
        assert_eq!(
            di("0950600013435").map_err(|e| e.to_string()),
            Err("udi gtin at position 0: has invalid check digit".into())
        );
        // Symbol form: a final digit matching the check is the check character.
        assert_eq!(di("+A123X15"), Ok((UdiIssuer::Hibcc, "A123X1".into())));
        // Register form never carries a check character.
        assert_eq!(di("A123X15"), Ok((UdiIssuer::Hibcc, "A123X15".into())));
        assert_eq!(
            di("A123PROD1I").map_err(|e| e.to_string()),
            Err("udi hibcc unit of measure at position 9: must be a digit".into())
        );
        assert_eq!(
            di("  09506000134353").map_err(|e| e.to_string()),
            Err("udi gtin at position 2: has invalid check digit".into())
        );
        assert_eq!(
            di("\tA123PROD1I").map_err(|e| e.to_string()),
            Err("udi hibcc unit of measure at position 10: must be a digit".into())
        );
        assert_eq!(di(""), Err(UdiError::Empty));
        assert!(di("1A23PROD1").is_err());
        assert!(di("A123PROD").is_err());
    }
}
