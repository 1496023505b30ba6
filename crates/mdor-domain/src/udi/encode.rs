//! Renders a `ParsedUdi` back into scans: GS1 element strings (GS-separated), bracketed
//! human-readable text and Digital Link URIs, and HIBCC concatenated or two-symbol data.
//!
//! Used by the parsers' round-trip tests and by synthetic data generation, so that
//! generated scans are exactly what a scanner would send for a real label.

use chrono::{Datelike, NaiveDate};

use crate::udi::{ParsedUdi, UdiIssuer, hibcc};

/// The GS1 mod-10 check digit (0-9) of the first 13 digits of a GTIN-14, given as ASCII
/// digits. Bytes other than ASCII digits make the result meaningless but never panic.
pub fn gtin_check_digit(first_thirteen: &[u8; 13]) -> u8 {
    // Weights alternate 3, 1 from the left of a GTIN-14 (3 on the digit next to the check).
    let sum: u32 = first_thirteen
        .iter()
        .enumerate()
        .map(|(i, &d)| u32::from(d.wrapping_sub(b'0') % 10) * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    // `sum % 10` is below 10, so the result fits in a u8.
    ((10 - sum % 10) % 10) as u8
}

/// The element string a scanner sends for a GS1 UDI, without symbology identifier:
/// predefined-length elements first (01, 11, 17), then variable-length ones separated by
/// GS. `None` when the UDI-DI is not a GTIN.
pub fn gs1_element_string(udi: &ParsedUdi) -> Option<String> {
    let elements = gs1_elements(udi)?;
    let mut out = String::new();
    let mut previous_variable = false;
    for (ai, value) in elements {
        if previous_variable {
            out.push('\u{1d}');
        }
        out.push_str(ai);
        out.push_str(&value);
        previous_variable = !matches!(ai, "01" | "11" | "17");
    }
    Some(out)
}

/// The human-readable interpretation `(01)…(11)…(17)…(10)…`; a `(` inside a value is
/// written `\(`. `None` when the UDI-DI is not a GTIN.
pub fn gs1_bracketed(udi: &ParsedUdi) -> Option<String> {
    let elements = gs1_elements(udi)?;
    let mut out = String::new();
    for (ai, value) in elements {
        out.push('(');
        out.push_str(ai);
        out.push(')');
        out.push_str(&value.replace('(', "\\("));
    }
    Some(out)
}

/// A GS1 Digital Link URI on `host` (e.g. `id.gs1.org`): GTIN and key qualifiers 22, 10,
/// 21 in the path, other elements in the query string, values percent-encoded.
/// `None` when the UDI-DI is not a GTIN.
pub fn gs1_digital_link(udi: &ParsedUdi, host: &str) -> Option<String> {
    let elements = gs1_elements(udi)?;
    let mut path = String::new();
    let mut query = Vec::new();
    for qualifier in ["01", "22", "10", "21"] {
        if let Some((_, value)) = elements.iter().find(|(ai, _)| *ai == qualifier) {
            path.push_str(&format!("/{qualifier}/{}", percent_encode(value)));
        }
    }
    for (ai, value) in &elements {
        if !matches!(*ai, "01" | "22" | "10" | "21") {
            query.push(format!("{ai}={}", percent_encode(value)));
        }
    }
    let mut uri = format!("https://{host}{path}");
    if !query.is_empty() {
        uri.push('?');
        uri.push_str(&query.join("&"));
    }
    Some(uri)
}

/// A HIBCC concatenated symbol: primary data, `/`, secondary data, check character; just
/// the primary symbol when there is no production data. `None` when the UDI-DI is not
/// HIBCC or the data cannot be written in HIBCC (see `hibcc_secondary_data`).
pub fn hibcc_concatenated(udi: &ParsedUdi) -> Option<String> {
    if udi.di.issuer() != UdiIssuer::Hibcc {
        return None;
    }
    let secondary = hibcc_secondary_data(udi)?;
    let data = if secondary.is_empty() {
        format!("+{}", udi.di.as_str())
    } else {
        format!("+{}/{secondary}", udi.di.as_str())
    };
    Some(with_check_character(data))
}

/// A HIBCC primary symbol and secondary symbol (the latter `None` when there is no
/// production data), linked by the primary's check character.
pub fn hibcc_two_symbols(udi: &ParsedUdi) -> Option<(String, Option<String>)> {
    if udi.di.issuer() != UdiIssuer::Hibcc {
        return None;
    }
    let primary = with_check_character(format!("+{}", udi.di.as_str()));
    let secondary = hibcc_secondary_data(udi)?;
    if secondary.is_empty() {
        return Some((primary, None));
    }
    let link = char::from(*primary.as_bytes().last()?);
    Some((
        primary,
        Some(with_check_character(format!("+{secondary}{link}"))),
    ))
}

/// Secondary data (without `+`, link or check character) for the production data:
/// `$$9QQQQQ3YYMMDDlot` / `$$3YYMMDDlot` / `$lot` / `$+serial`, a serial after a lot as
/// `/S`, manufacture date as `/16D`. Empty when there is nothing to write; `None` when a
/// value cannot be written (lot or serial not 1 to 18 letters and digits, quantity above
/// 99999, expiry year outside the two-digit window).
pub fn hibcc_secondary_data(udi: &ParsedUdi) -> Option<String> {
    let production = &udi.production;
    let valid = |s: &str| {
        (1..=18).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    };
    if production.lot.as_deref().is_some_and(|s| !valid(s))
        || production.serial.as_deref().is_some_and(|s| !valid(s))
        || udi.quantity.is_some_and(|q| q > 99_999)
    {
        return None;
    }
    let date = production.expiry.map(|d| format!("3{}", yymmdd(d)));
    let mut out = String::new();
    match (&production.lot, &production.serial, udi.quantity, &date) {
        // Supplementary fields cannot stand alone: `$$7` (no lot, no date) introduces them.
        (None, None, None, None) if production.manufactured.is_some() => out.push_str("$$7"),
        (None, None, None, None) => {}
        (None, Some(serial), None, None) => out.push_str(&format!("$+{serial}")),
        (None, Some(serial), None, Some(date)) => out.push_str(&format!("$$+{date}{serial}")),
        (lot, _, quantity, date) => {
            out.push_str("$$");
            if let Some(quantity) = quantity {
                out.push_str(&format!("9{quantity:05}"));
            }
            match date {
                Some(date) => out.push_str(date),
                None => out.push('7'),
            }
            if let Some(lot) = lot {
                out.push_str(lot);
            }
        }
    }
    let serial_written = production.lot.is_none() && udi.quantity.is_none();
    if let (Some(serial), false) = (&production.serial, serial_written) {
        out.push_str(&format!("/S{serial}"));
    }
    if let Some(manufactured) = production.manufactured {
        out.push_str(&format!(
            "/16D{:04}{:02}{:02}",
            manufactured.year(),
            manufactured.month(),
            manufactured.day()
        ));
    }
    Some(out)
}

/// Appends the HIBCC modulus 43 check character.
pub fn with_check_character(data: String) -> String {
    let check = hibcc::check_character(data.as_bytes());
    let mut out = data;
    out.push(char::from(check));
    out
}

fn gs1_elements(udi: &ParsedUdi) -> Option<Vec<(&'static str, String)>> {
    if udi.di.issuer() != UdiIssuer::Gs1 {
        return None;
    }
    let production = &udi.production;
    let mut elements = vec![("01", udi.di.as_str().to_string())];
    if let Some(date) = production.manufactured {
        elements.push(("11", yymmdd(date)));
    }
    if let Some(date) = production.expiry {
        elements.push(("17", yymmdd(date)));
    }
    let other = |ai: &str| udi.other_elements.get(ai).cloned();
    let optional = [
        ("22", other("22")),
        ("10", production.lot.clone()),
        ("21", production.serial.clone()),
        ("30", udi.quantity.map(|q| q.to_string())),
        ("240", other("240")),
        ("7240", other("7240")),
        ("8012", other("8012")),
    ];
    for (ai, value) in optional {
        if let Some(value) = value {
            elements.push((ai, value));
        }
    }
    Some(elements)
}

fn yymmdd(date: NaiveDate) -> String {
    format!(
        "{:02}{:02}{:02}",
        date.year().rem_euclid(100),
        date.month(),
        date.day()
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::udi::{ProductionIdentifiers, UdiDi, parse_scan_at, parse_scans_at};

    const YEAR: i32 = 2026;

    #[test]
    fn gtin_check_digits_of_the_gs1_examples_are_computed() {
        assert_eq!(gtin_check_digit(b"0950600013435"), 2);
        // GS1 General Specifications check digit example: GTIN-13 629104150021 has check 3.
        assert_eq!(gtin_check_digit(b"0629104150021"), 3);
    }

    fn example_gs1() -> ParsedUdi {
        ParsedUdi {
            di: UdiDi::gtin_unchecked("09506000134352".into()),
            production: ProductionIdentifiers {
                lot: Some("AB(1)/2".into()),
                serial: Some("XYZ".into()),
                expiry: NaiveDate::from_ymd_opt(2027, 1, 1),
                manufactured: NaiveDate::from_ymd_opt(2025, 6, 30),
            },
            quantity: Some(5),
            other_elements: [("8012".to_string(), "1.0".to_string())].into(),
        }
    }

    #[test]
    fn gs1_renderings_match_the_hand_written_scans() {
        let udi = example_gs1();
        assert_eq!(
            gs1_element_string(&udi).as_deref(),
            Some("0109506000134352112506301727010110AB(1)/2\u{1d}21XYZ\u{1d}305\u{1d}80121.0")
        );
        assert_eq!(
            gs1_bracketed(&udi).as_deref(),
            Some("(01)09506000134352(11)250630(17)270101(10)AB\\(1)/2(21)XYZ(30)5(8012)1.0")
        );
        assert_eq!(
            gs1_digital_link(&udi, "id.gs1.org").as_deref(),
            Some(
                "https://id.gs1.org/01/09506000134352/10/AB%281%29%2F2/21/XYZ?11=250630&17=270101&30=5&8012=1.0"
            )
        );
        assert_eq!(hibcc_concatenated(&udi), None);
    }

    #[test]
    fn hibcc_renderings_match_the_hand_written_scans() {
        let udi = ParsedUdi {
            di: UdiDi::hibcc_unchecked("A123BJC5D6E71".into()),
            production: ProductionIdentifiers {
                lot: Some("LOT1".into()),
                expiry: NaiveDate::from_ymd_opt(2027, 1, 1),
                ..Default::default()
            },
            quantity: None,
            other_elements: Default::default(),
        };
        assert_eq!(
            hibcc_concatenated(&udi).as_deref(),
            Some("+A123BJC5D6E71/$$3270101LOT18")
        );
        assert_eq!(
            hibcc_two_symbols(&udi),
            Some((
                "+A123BJC5D6E71G".to_string(),
                Some("+$$3270101LOT1G9".to_string())
            ))
        );
        assert_eq!(gs1_element_string(&udi), None);
    }

    fn gtin() -> impl Strategy<Value = String> {
        "[0-9]{13}".prop_map(|stem| {
            let mut digits = [0u8; 13];
            digits.copy_from_slice(stem.as_bytes());
            format!("{stem}{}", gtin_check_digit(&digits))
        })
    }

    /// Dates a two-digit year can carry relative to 2026 under the sliding window.
    fn window_date() -> impl Strategy<Value = NaiveDate> {
        (1977i32..=2076, 1u32..=366).prop_filter_map("day exists", |(year, day)| {
            NaiveDate::from_yo_opt(year, day)
        })
    }

    const CSET82: &str = "[!\"%&'()*+,\\-./0-9:;<=>?A-Z_a-z]";

    fn gs1_udi() -> impl Strategy<Value = ParsedUdi> {
        let text = |max: usize| {
            proptest::option::of(
                proptest::string::string_regex(&format!("{CSET82}{{1,{max}}}"))
                    .unwrap_or_else(|_| unreachable!()),
            )
        };
        (
            gtin(),
            text(20),
            text(20),
            proptest::option::of(window_date()),
            proptest::option::of(window_date()),
            proptest::option::of(0u32..=99_999_999),
            (text(20), text(30), text(20), text(20)),
        )
            .prop_map(
                |(gtin, lot, serial, expiry, manufactured, quantity, others)| {
                    let (variant, additional, protocol, software) = others;
                    let other_elements = [
                        ("22", variant),
                        ("240", additional),
                        ("7240", protocol),
                        ("8012", software),
                    ]
                    .into_iter()
                    .filter_map(|(ai, value)| Some((ai.to_string(), value?)))
                    .collect();
                    ParsedUdi {
                        di: UdiDi::gtin_unchecked(gtin),
                        production: ProductionIdentifiers {
                            lot,
                            serial,
                            expiry,
                            manufactured,
                        },
                        quantity,
                        other_elements,
                    }
                },
            )
    }

    fn hibcc_udi() -> impl Strategy<Value = ParsedUdi> {
        let code = |max: usize| {
            proptest::option::of(
                proptest::string::string_regex(&format!("[A-Z0-9]{{1,{max}}}"))
                    .unwrap_or_else(|_| unreachable!()),
            )
        };
        (
            "[A-Z][A-Z0-9]{3}[A-Z0-9]{1,18}[0-9]",
            code(18),
            code(18),
            proptest::option::of(window_date()),
            proptest::option::of(
                (1000i32..=9999, 1u32..=365)
                    .prop_filter_map("day exists", |(y, d)| NaiveDate::from_yo_opt(y, d)),
            ),
            proptest::option::of(0u32..=99_999),
        )
            .prop_map(
                |(di, lot, serial, expiry, manufactured, quantity)| ParsedUdi {
                    di: UdiDi::hibcc_unchecked(di),
                    production: ProductionIdentifiers {
                        lot,
                        serial,
                        expiry,
                        manufactured,
                    },
                    quantity,
                    other_elements: Default::default(),
                },
            )
    }

    proptest! {
        #[test]
        fn every_gs1_syntax_parses_to_the_same_udi(udi in gs1_udi()) {
            let element_string = gs1_element_string(&udi).unwrap_or_default();
            prop_assert_eq!(parse_scan_at(&element_string, YEAR), Ok(udi.clone()));
            prop_assert_eq!(parse_scan_at(&format!("]d2{element_string}"), YEAR), Ok(udi.clone()));
            let bracketed = gs1_bracketed(&udi).unwrap_or_default();
            prop_assert_eq!(parse_scan_at(&bracketed, YEAR), Ok(udi.clone()));
            let link = gs1_digital_link(&udi, "id.gs1.org").unwrap_or_default();
            prop_assert_eq!(parse_scan_at(&link, YEAR), Ok(udi.clone()));
            prop_assert_eq!(parse_scan_at(&format!("]Q1{link}"), YEAR), Ok(udi));
        }

        #[test]
        fn changing_one_gtin_digit_is_always_detected(udi in gs1_udi(), index in 2usize..16, delta in 1u8..10) {
            let mut bytes = gs1_element_string(&udi).unwrap_or_default().into_bytes();
            bytes[index] = b'0' + (bytes[index] - b'0' + delta) % 10;
            let mutated = String::from_utf8(bytes).unwrap_or_default();
            prop_assert!(parse_scan_at(&mutated, YEAR).is_err(), "{:?}", mutated);
        }

        #[test]
        fn hibcc_symbols_round_trip(udi in hibcc_udi()) {
            let concatenated = hibcc_concatenated(&udi).unwrap_or_default();
            prop_assert_eq!(parse_scan_at(&concatenated, YEAR), Ok(udi.clone()));
            let (primary, secondary) = hibcc_two_symbols(&udi).unwrap_or_default();
            let mut scans = vec![primary.as_str()];
            scans.extend(secondary.as_deref());
            prop_assert_eq!(parse_scans_at(&scans, YEAR), Ok(udi.clone()));
            prop_assert_eq!(parse_scan_at(&scans.join("\r\n"), YEAR), Ok(udi.clone()));
            prop_assert_eq!(UdiDi::parse(&primary), Ok(udi.di.clone()));
        }

        #[test]
        fn changing_one_hibcc_character_is_always_detected(
            udi in hibcc_udi(),
            index_seed in 0usize..1000,
            replacement_index in 0usize..43,
        ) {
            let concatenated = hibcc_concatenated(&udi).unwrap_or_default();
            let mut bytes = concatenated.clone().into_bytes();
            let index = 1 + index_seed % (bytes.len() - 1);
            let replacement = hibcc::CHARACTER_SET[replacement_index];
            prop_assume!(bytes[index] != replacement);
            bytes[index] = replacement;
            let mutated = String::from_utf8(bytes).unwrap_or_default();
            prop_assert!(parse_scan_at(&mutated, YEAR).is_err(), "{:?} from {:?}", mutated, concatenated);
        }

        #[test]
        fn parsers_never_panic_on_arbitrary_text(text in any::<String>()) {
            let _ = parse_scan_at(&text, YEAR);
            let _ = UdiDi::parse(&text);
            let _ = parse_scans_at(&[&text, &text], YEAR);
        }

        #[test]
        fn parsers_never_panic_on_near_miss_scans(
            prefix in prop::sample::select(vec!["", "]d2", "+", "*+", "(", "https://h/01/", "01095060001343521", "+A123PROD1/$$", "\u{1d}"]),
            body in "[0-9A-Z()\u{1d}+$/%:?=&. *#\\\\éß€\r\n-]{0,40}",
            year in 0i32..10_000,
        ) {
            let scan = format!("{prefix}{body}");
            let _ = parse_scan_at(&scan, year);
            let _ = UdiDi::parse(&scan);
            let _ = parse_scans_at(&scan.split('\n').collect::<Vec<_>>(), year);
        }
    }
}
