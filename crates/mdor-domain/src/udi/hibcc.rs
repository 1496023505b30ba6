//! HIBCC (placeholder until the HIBCC parser lands on this branch).

use crate::udi::{ParsedUdi, UdiDi, UdiError};

pub fn parse(_body: &str, _offset: usize) -> Result<ParsedUdi, UdiError> {
    Err(UdiError::UnknownFormat)
}

pub fn parse_primary_identifier(_input: &str) -> Result<UdiDi, UdiError> {
    Err(UdiError::UnknownFormat)
}
