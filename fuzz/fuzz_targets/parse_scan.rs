//! Fuzzes `parse_scan_at` and `parse_scans_at` (GS1 and HIBCC scans) and checks that every
//! scan that parses renders back, through `encode`, to scans that parse the same.
#![no_main]

use chrono::Datelike;
use libfuzzer_sys::fuzz_target;
use mdor_domain::udi::{encode, parse_scan_at, parse_scans_at};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines: Vec<&str> = text.split('\n').collect();
    let _ = parse_scans_at(&lines, 2026);
    let Ok(udi) = parse_scan_at(text, 2026) else {
        return;
    };
    if let Some(element_string) = encode::gs1_element_string(&udi) {
        assert_eq!(
            parse_scan_at(&element_string, 2026),
            Ok(udi.clone()),
            "{element_string:?}"
        );
    }
    if let Some(bracketed) = encode::gs1_bracketed(&udi) {
        assert_eq!(
            parse_scan_at(&bracketed, 2026),
            Ok(udi.clone()),
            "{bracketed:?}"
        );
    }
    if let Some(link) = encode::gs1_digital_link(&udi, "id.gs1.org") {
        assert_eq!(parse_scan_at(&link, 2026), Ok(udi.clone()), "{link:?}");
    }
    // HIBCC expiry dates are re-encoded as YYMMDD, so only those inside the 2026 window
    // (1977 to 2076) can come back unchanged; `/14D` can carry any four-digit year.
    let expiry_fits = udi
        .production
        .expiry
        .is_none_or(|d| (1977..=2076).contains(&d.year()));
    if let (Some(concatenated), true) = (encode::hibcc_concatenated(&udi), expiry_fits) {
        assert_eq!(
            parse_scan_at(&concatenated, 2026),
            Ok(udi.clone()),
            "{concatenated:?}"
        );
    }
    if let (Some((primary, Some(secondary))), true) = (encode::hibcc_two_symbols(&udi), expiry_fits)
    {
        assert_eq!(
            parse_scans_at(&[&primary, &secondary], 2026),
            Ok(udi.clone()),
            "{secondary:?}"
        );
    }
});
