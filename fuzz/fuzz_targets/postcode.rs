//! Fuzzes `Postcode::parse` and `Postcode::outward`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(postcode) = mdor_domain::Postcode::parse(text) {
            let _ = postcode.outward();
        }
    }
});
