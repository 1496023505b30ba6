//! Unique Device Identifiers read from a raw barcode scan: GS1 and HIBCC.
//!
//! A scan yields the device identifier (UDI-DI, which names the model in the device register)
//! and the production identifiers (lot, serial, expiry, manufacture date) that single out the
//! physical unit, which is what a recall needs.
//! `parse_scan` decides the issuing agency from the first characters and hands over to
//! `gs1` or `hibcc`; both return the same `ParsedUdi`.

pub mod gs1;
pub mod hibcc;

use chrono::NaiveDate;
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
    /// 14 digits (or 8, 12, 13, left-padded to 14) for GS1, or a HIBCC primary identifier with
    /// or without its leading `+` and check character.
    pub fn parse(input: &str) -> Result<UdiDi, UdiError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(UdiError::Empty);
        }
        if trimmed.bytes().all(|b| b.is_ascii_digit()) {
            return gs1::parse_gtin(trimmed, 0).map(UdiDi::gtin_unchecked);
        }
        hibcc::parse_primary_identifier(trimmed)
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

/// Reads one raw scan (keyboard-wedge or scanner output) in any supported form.
///
/// GS1: with or without an AIM symbology identifier (`]d2`, `]C1`, `]Q3`, `]e0`), element
/// strings separated by GS (0x1D) as FNC1, the human-readable form with parentheses, and GS1
/// Digital Link URIs. HIBCC: data starting with `+`, concatenated or as separate symbols.
pub fn parse_scan(raw: &str) -> Result<ParsedUdi, UdiError> {
    let trimmed = raw.trim_matches(|c: char| c == ' ' || c == '\r' || c == '\n' || c == '\t');
    if trimmed.is_empty() {
        return Err(UdiError::Empty);
    }
    let body = strip_symbology_identifier(trimmed);
    if body.starts_with('+') {
        return hibcc::parse(body, trimmed.len() - body.len());
    }
    gs1::parse(body, trimmed.len() - body.len())
}

/// Removes a leading AIM symbology identifier (`]` + code character + modifier).
fn strip_symbology_identifier(scan: &str) -> &str {
    let bytes = scan.as_bytes();
    if bytes.len() >= 3 && bytes[0] == b']' {
        // Indexing at 3 is safe: the first three bytes are ASCII when the first is ']' and
        // the next two are checked to be ASCII alphanumerics.
        if bytes[1].is_ascii_alphanumeric() && bytes[2].is_ascii_alphanumeric() {
            return &scan[3..];
        }
    }
    scan
}
