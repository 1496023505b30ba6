//! GS1 element strings (placeholder until the GS1 parser lands on this branch).

use crate::udi::{ParsedUdi, UdiError};

pub fn parse(_body: &str, _offset: usize) -> Result<ParsedUdi, UdiError> {
    Err(UdiError::UnknownFormat)
}

pub fn parse_gtin(digits: &str, position: usize) -> Result<String, UdiError> {
    let padded = format!("{digits:0>14}");
    if padded.len() != 14 {
        return Err(UdiError::Invalid {
            field: "gtin".into(),
            position,
            problem: "must have 8, 12, 13 or 14 digits".into(),
        });
    }
    let b = padded.as_bytes();
    let sum: u32 = b[..13]
        .iter()
        .enumerate()
        .map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    if (10 - sum % 10) % 10 != u32::from(b[13] - b'0') {
        return Err(UdiError::Invalid {
            field: "gtin".into(),
            position,
            problem: "has invalid check digit".into(),
        });
    }
    Ok(padded)
}
