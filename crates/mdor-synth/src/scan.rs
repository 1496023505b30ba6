//! GS1 encoding of device identifiers as a scanner would send them: GTIN-14 check digits,
//! element strings with FNC1 as GS (0x1D), and the parenthesised human-readable form.
//!
//! The registry's own scan parser lives in `mdor_domain::udi`; this module only writes scans,
//! so that the synthetic data exercises every form the parser must read.

use chrono::{Datelike, NaiveDate};

/// The ASCII group separator that stands for FNC1 between GS1 element strings.
pub const GROUP_SEPARATOR: char = '\u{1d}';

/// How a scanner presented a GS1 barcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanForm {
    /// GS1 DataMatrix with its AIM symbology identifier `]d2`, FNC1 sent as GS.
    DataMatrix,
    /// GS1-128 with its AIM symbology identifier `]C1`, FNC1 sent as GS.
    Gs1_128,
    /// The human-readable interpretation, application identifiers in parentheses.
    HumanReadable,
}

/// What a label carries: the UDI-DI and the production identifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelData<'a> {
    pub gtin14: &'a str,
    pub expiry: Option<NaiveDate>,
    pub manufactured: Option<NaiveDate>,
    pub lot: Option<&'a str>,
    pub serial: Option<&'a str>,
}

/// The GS1 mod-10 check digit of the first 13 digits of a GTIN-14 (weights 3,1,3,1… from the
/// left, which is 3 on the rightmost data digit as the standard states).
pub fn gtin_check_digit(first_thirteen: &[u8; 13]) -> u8 {
    let sum: u32 = first_thirteen
        .iter()
        .enumerate()
        .map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// A GTIN-14 with indicator digit 0 from a 7-digit GS1 company prefix and a 5-digit item
/// reference, check digit appended.
pub fn gtin14(company_prefix: u32, item_reference: u32) -> String {
    let stem = format!("0{company_prefix:07}{item_reference:05}");
    let mut digits = [0u8; 13];
    digits.copy_from_slice(&stem.as_bytes()[..13]);
    let check = gtin_check_digit(&digits);
    format!("{stem}{check}")
}

/// Writes a label's data as a scanner would send it, in the given form.
///
/// Element order follows common implant labels: (01) GTIN, (11) manufacture date, (17)
/// expiry, (10) lot, (21) serial. The fixed-length elements need no separator; a GS follows
/// a variable-length element (lot) only when another element comes after it.
pub fn encode_scan(label: &LabelData<'_>, form: ScanForm) -> String {
    let mut out = String::with_capacity(64);
    let parenthesised = form == ScanForm::HumanReadable;
    match form {
        ScanForm::DataMatrix => out.push_str("]d2"),
        ScanForm::Gs1_128 => out.push_str("]C1"),
        ScanForm::HumanReadable => {}
    }
    push_element(&mut out, "01", label.gtin14, parenthesised);
    if let Some(made) = label.manufactured {
        push_element(&mut out, "11", &yymmdd(made), parenthesised);
    }
    if let Some(expiry) = label.expiry {
        push_element(&mut out, "17", &yymmdd(expiry), parenthesised);
    }
    if let Some(lot) = label.lot {
        push_element(&mut out, "10", lot, parenthesised);
        if label.serial.is_some() && !parenthesised {
            out.push(GROUP_SEPARATOR);
        }
    }
    if let Some(serial) = label.serial {
        push_element(&mut out, "21", serial, parenthesised);
    }
    out
}

/// GS1 dates are YYMMDD; the century is implied (GS1 General Specifications 7.12).
pub fn yymmdd(date: NaiveDate) -> String {
    format!(
        "{:02}{:02}{:02}",
        date.year().rem_euclid(100),
        date.month(),
        date.day()
    )
}

fn push_element(out: &mut String, application_identifier: &str, value: &str, parenthesised: bool) {
    if parenthesised {
        out.push('(');
        out.push_str(application_identifier);
        out.push(')');
    } else {
        out.push_str(application_identifier);
    }
    out.push_str(value);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The elements read back from an encoded scan: (application identifier, value) pairs.
    /// A deliberately small decoder for the four AIs this module writes, so these tests do not
    /// depend on the registry's parser.
    pub(crate) fn decode_scan(scan: &str) -> Vec<(String, String)> {
        let mut elements = Vec::new();
        if scan.starts_with('(') {
            for part in scan.split('(').skip(1) {
                let (ai, value) = part.split_once(')').unwrap();
                elements.push((ai.to_string(), value.to_string()));
            }
            return elements;
        }
        let body = scan
            .strip_prefix("]d2")
            .or_else(|| scan.strip_prefix("]C1"))
            .unwrap();
        let mut rest = body;
        while !rest.is_empty() {
            let (ai, after_ai) = rest.split_at(2);
            let fixed_length = match ai {
                "01" => Some(14),
                "11" | "17" => Some(6),
                "10" | "21" => None,
                other => panic!("unexpected ai {other}"),
            };
            match fixed_length {
                Some(n) => {
                    elements.push((ai.to_string(), after_ai[..n].to_string()));
                    rest = &after_ai[n..];
                }
                None => {
                    let end = after_ai.find(GROUP_SEPARATOR).unwrap_or(after_ai.len());
                    elements.push((ai.to_string(), after_ai[..end].to_string()));
                    rest = after_ai[end..].trim_start_matches(GROUP_SEPARATOR);
                }
            }
        }
        elements
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn gtin_check_digit_matches_a_hand_worked_example() {
        // 0501234567890: 0*3+5+0*3+1+2*3+3+4*3+5+6*3+7+8*3+9+0*3 = 90; (10 - 0) % 10 = 0.
        assert_eq!(gtin14(5_012_345, 67_890), "05012345678900");
        assert!(mdor_domain::UdiDi::parse(&gtin14(5_012_345, 67_890)).is_ok());
        assert!(mdor_domain::UdiDi::parse(&gtin14(5_099_001, 12)).is_ok());
    }

    #[test]
    fn data_matrix_scan_separates_the_lot_from_a_following_serial() {
        let label = LabelData {
            gtin14: "05012345678900",
            expiry: Some(date("2027-01-01")),
            manufactured: None,
            lot: Some("LOT123"),
            serial: Some("SER456"),
        };
        assert_eq!(
            encode_scan(&label, ScanForm::DataMatrix),
            "]d201050123456789001727010110LOT123\u{1d}21SER456"
        );
        assert_eq!(
            encode_scan(&label, ScanForm::HumanReadable),
            "(01)05012345678900(17)270101(10)LOT123(21)SER456"
        );
    }

    #[test]
    fn a_last_variable_length_element_has_no_trailing_separator() {
        let label = LabelData {
            gtin14: "05012345678900",
            expiry: Some(date("2027-01-01")),
            manufactured: Some(date("2024-02-29")),
            lot: Some("L2409A"),
            serial: None,
        };
        let scan = encode_scan(&label, ScanForm::Gs1_128);
        assert!(!scan.ends_with(GROUP_SEPARATOR));
        assert_eq!(
            decode_scan(&scan),
            vec![
                ("01".to_string(), "05012345678900".to_string()),
                ("11".to_string(), "240229".to_string()),
                ("17".to_string(), "270101".to_string()),
                ("10".to_string(), "L2409A".to_string()),
            ]
        );
    }
}
