//! Fuzzes `Opcs4Code::parse` with the input split into code and version at the first tab.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let (code, version) = text.split_once('\t').unwrap_or((text, "4.10"));
        let _ = mdor_domain::Opcs4Code::parse(code, version);
    }
});
