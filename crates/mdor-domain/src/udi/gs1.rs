//! GS1 UDIs: element strings as scanned (FNC1 sent as GS), the bracketed human-readable
//! form, and GS1 Digital Link URIs, all read into one `ParsedUdi`.
//!
//! What is implemented, after the GS1 General Specifications and the GS1 Digital Link URI
//! Syntax standard (written from our knowledge of them; section numbers below are the
//! General Specifications' and should be checked against the current release):
//!
//! - Application identifiers 01 (GTIN, N14, mod-10 check digit), 11 (production date, N6),
//!   17 (expiration date, N6), 10 (batch/lot, X..20), 21 (serial, X..20), 22 (consumer
//!   product variant, X..20), 30 (variable count, N..8), 240 (additional product
//!   identification, X..30), 7240 (protocol id, X..20) and 8012 (software version, X..20).
//!   Any other AI is an error naming it: silently skipping data on an implant label could
//!   hide the element that singles out the unit. X means GS1 AI encodable character set 82.
//! - Element strings: a predefined-length element (01, 11, 17) ends after its fixed length;
//!   any other element runs to the next GS or the end of the data, as the General Specifications' section 7.8 specifies, so a
//!   missing GS after a lot merges the next element into the lot. That is only detectable
//!   when the merged value breaks the length or character rules, and the error then says a
//!   GS separator may be missing. A GS after a predefined-length element, one GS at the very
//!   start (FNC1 in first position sent as GS by some scanners) and one at the very end are
//!   tolerated because they cannot change the meaning.
//! - Human-readable form `(01)…(17)…(10)…`: a value runs to the next `(`; a `(` inside a
//!   value is written `\(`, as in the GS1 Barcode Syntax Engine's bracketed syntax.
//! - Digital Link: `http` or `https`, any host and any path prefix before `/01/`; after the
//!   GTIN the key qualifiers 22, 10 and 21 in that order; other AIs as query parameters
//!   (non-numeric query parameters such as `linkType` are ignored, as the standard allows);
//!   percent-encoding decoded in path and query; a fragment is ignored. The GTIN in a
//!   Digital Link may have 8, 12, 13 or 14 digits and is padded to 14.
//! - Dates YYMMDD: DD = 00 means the last day of the month (§7.12), the century comes from
//!   the sliding window in `super::expand_two_digit_year`.
//! - AI 01 is required. Repeating an AI with the same value is accepted; with a different
//!   value it is an error.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::udi::{
    ParsedUdi, ProductionIdentifiers, UdiDi, UdiError, char_positions, current_year,
    expand_two_digit_year, invalid, last_day_of_month,
};

pub use crate::udi::encode::gtin_check_digit;

/// The ASCII group separator that scanners send for FNC1.
pub const GS: u8 = 0x1D;

/// Reads GS1 data (after any symbology identifier); `offset` is the number of characters
/// before `body` in the original scan. Two-digit years are expanded against the system
/// clock's year.
pub fn parse(body: &str, offset: usize) -> Result<ParsedUdi, UdiError> {
    parse_at(body, offset, current_year())
}

/// `parse` with the year that two-digit years are expanded against given explicitly.
pub fn parse_at(body: &str, offset: usize, current_year: i32) -> Result<ParsedUdi, UdiError> {
    if body.is_empty() {
        return Err(UdiError::Empty);
    }
    let positions = char_positions(body, offset);
    let elements = if body.starts_with('(') {
        split_bracketed(body.as_bytes(), &positions)?
    } else if is_digital_link(body) {
        split_digital_link(body, &positions)?
    } else if body.as_bytes()[0].is_ascii_digit() || body.as_bytes()[0] == GS {
        split_element_string(body.as_bytes(), &positions)?
    } else {
        return Err(UdiError::UnknownFormat);
    };
    assemble(&elements, positions[0], current_year)
}

/// Checks a GTIN given as 8, 12, 13 or 14 digits and returns it as GTIN-14 (left-padded
/// with zeros). `position` is where the digits start in the input, for errors.
pub fn parse_gtin(digits: &str, position: usize) -> Result<String, UdiError> {
    let bytes = digits.as_bytes();
    if let Some(index) = bytes.iter().position(|b| !b.is_ascii_digit()) {
        return Err(invalid(
            "gtin",
            position + digits[..index].chars().count(),
            "must contain only digits",
        ));
    }
    if ![8, 12, 13, 14].contains(&bytes.len()) {
        return Err(invalid(
            "gtin",
            position,
            format!("has {} digits; expected 8, 12, 13 or 14", bytes.len()),
        ));
    }
    let mut gtin14 = [b'0'; 14];
    gtin14[14 - bytes.len()..].copy_from_slice(bytes);
    let mut first_thirteen = [0u8; 13];
    first_thirteen.copy_from_slice(&gtin14[..13]);
    if gtin_check_digit(&first_thirteen) != gtin14[13] - b'0' {
        return Err(invalid("gtin", position, "has invalid check digit"));
    }
    Ok(gtin14.iter().map(|&b| char::from(b)).collect())
}

/// What an application identifier's value must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content {
    /// 14 digits whose last is the mod-10 check digit.
    Gtin,
    /// YYMMDD, DD = 00 allowed.
    Date,
    /// Digits only, read as a count.
    Count,
    /// GS1 AI encodable character set 82.
    CharacterSet82,
}

/// One row of the application identifier table.
#[derive(Debug)]
struct AiSpec {
    ai: &'static str,
    /// Predefined length (the General Specifications' table of predefined-length AIs): never followed by FNC1.
    predefined_length: bool,
    min_length: usize,
    max_length: usize,
    content: Content,
}

const AI_TABLE: [AiSpec; 10] = [
    AiSpec {
        ai: "01",
        predefined_length: true,
        min_length: 14,
        max_length: 14,
        content: Content::Gtin,
    },
    AiSpec {
        ai: "11",
        predefined_length: true,
        min_length: 6,
        max_length: 6,
        content: Content::Date,
    },
    AiSpec {
        ai: "17",
        predefined_length: true,
        min_length: 6,
        max_length: 6,
        content: Content::Date,
    },
    AiSpec {
        ai: "10",
        predefined_length: false,
        min_length: 1,
        max_length: 20,
        content: Content::CharacterSet82,
    },
    AiSpec {
        ai: "21",
        predefined_length: false,
        min_length: 1,
        max_length: 20,
        content: Content::CharacterSet82,
    },
    AiSpec {
        ai: "22",
        predefined_length: false,
        min_length: 1,
        max_length: 20,
        content: Content::CharacterSet82,
    },
    AiSpec {
        ai: "30",
        predefined_length: false,
        min_length: 1,
        max_length: 8,
        content: Content::Count,
    },
    AiSpec {
        ai: "240",
        predefined_length: false,
        min_length: 1,
        max_length: 30,
        content: Content::CharacterSet82,
    },
    AiSpec {
        ai: "7240",
        predefined_length: false,
        min_length: 1,
        max_length: 20,
        content: Content::CharacterSet82,
    },
    AiSpec {
        ai: "8012",
        predefined_length: false,
        min_length: 1,
        max_length: 20,
        content: Content::CharacterSet82,
    },
];

/// The Digital Link key qualifiers of AI 01, in the order the path must list them.
const GTIN_KEY_QUALIFIERS: [&str; 3] = ["22", "10", "21"];

/// One element as read from any of the three syntaxes, before its value is checked.
#[derive(Debug)]
struct Element {
    spec: &'static AiSpec,
    ai_position: usize,
    /// The value's bytes (percent-decoded for Digital Link, unescaped for brackets).
    value: Vec<u8>,
    /// The character position in the scan of each byte of `value`.
    value_positions: Vec<usize>,
    /// Where the value starts (or would start, when it is empty).
    value_position: usize,
    /// Whether a GS separator could have been forgotten here (element strings only).
    separator_hint: bool,
}

/// A checked value.
enum Value {
    Gtin(String),
    Date(NaiveDate),
    Count(u32),
    Text(String),
}

fn lookup(ai: &[u8]) -> Option<&'static AiSpec> {
    AI_TABLE.iter().find(|spec| spec.ai.as_bytes() == ai)
}

/// Reads `0109506000134352` GS `10ABC` … as sent by a scanner.
fn split_element_string(body: &[u8], positions: &[usize]) -> Result<Vec<Element>, UdiError> {
    let mut elements = Vec::new();
    let mut index = 0;
    if body.first() == Some(&GS) {
        index = 1;
    }
    while index < body.len() {
        let ai_position = positions[index];
        let rest = &body[index..];
        let Some(spec) = AI_TABLE
            .iter()
            .find(|spec| rest.starts_with(spec.ai.as_bytes()))
        else {
            return Err(unknown_ai_in_element_string(rest, ai_position));
        };
        index += spec.ai.len();
        let value_start = index;
        let limit = if spec.predefined_length {
            (index + spec.max_length).min(body.len())
        } else {
            body.len()
        };
        while index < limit && body[index] != GS {
            index += 1;
        }
        elements.push(Element {
            spec,
            ai_position,
            value: body[value_start..index].to_vec(),
            value_positions: positions[value_start..index].to_vec(),
            value_position: positions[value_start],
            separator_hint: !spec.predefined_length,
        });
        if index < body.len() && body[index] == GS {
            index += 1;
            if index < body.len() && body[index] == GS {
                return Err(invalid(
                    "element string",
                    positions[index],
                    "has two gs separators in a row",
                ));
            }
        }
    }
    Ok(elements)
}

/// Names what stands where an AI was expected in an element string.
fn unknown_ai_in_element_string(rest: &[u8], position: usize) -> UdiError {
    let Some(&first) = rest.first() else {
        return invalid("element string", position, "ends where an ai was expected");
    };
    if !first.is_ascii_digit() {
        return invalid(
            "element string",
            position,
            format!(
                "expected an application identifier, found {}",
                describe_byte(first)
            ),
        );
    }
    let digits: String = rest
        .iter()
        .take(ai_length_by_prefix(rest))
        .take_while(|b| b.is_ascii_digit())
        .map(|&b| char::from(b))
        .collect();
    invalid(
        format!("ai {digits}"),
        position,
        "is not a supported application identifier",
    )
}

/// How many digits an AI starting with these bytes has, after the first-two-digits table
/// of the GS1 General Specifications, so that an unknown AI can be named.
fn ai_length_by_prefix(rest: &[u8]) -> usize {
    let prefix = match rest {
        [a, b, ..] if a.is_ascii_digit() && b.is_ascii_digit() => (a - b'0') * 10 + (b - b'0'),
        _ => return 2,
    };
    match prefix {
        23..=29 | 40..=42 => 3,
        31..=36 | 39 | 43..=49 | 70..=89 => 4,
        _ => 2,
    }
}

/// Reads `(01)09506000134352(10)ABC` …
fn split_bracketed(body: &[u8], positions: &[usize]) -> Result<Vec<Element>, UdiError> {
    let mut elements = Vec::new();
    let mut index = 0;
    while index < body.len() {
        if body[index] != b'(' {
            return Err(invalid(
                "bracketed element string",
                positions[index],
                format!("expected '(', found {}", describe_byte(body[index])),
            ));
        }
        let ai_position = positions[index];
        let ai_start = index + 1;
        let Some(close) = body[ai_start..].iter().position(|&b| b == b')') else {
            return Err(invalid(
                "bracketed element string",
                ai_position,
                "has '(' without a closing ')'",
            ));
        };
        let ai = &body[ai_start..ai_start + close];
        if ai.is_empty() || ai.len() > 4 || !ai.iter().all(u8::is_ascii_digit) {
            return Err(invalid(
                "bracketed element string",
                ai_position,
                "expected 2 to 4 digits of an application identifier between '(' and ')'",
            ));
        }
        let Some(spec) = lookup(ai) else {
            let name: String = ai.iter().map(|&b| char::from(b)).collect();
            return Err(invalid(
                format!("ai {name}"),
                ai_position,
                "is not a supported application identifier",
            ));
        };
        index = ai_start + close + 1;
        let value_position = positions[index];
        let mut value = Vec::new();
        let mut value_positions = Vec::new();
        while index < body.len() && body[index] != b'(' {
            if body[index] == b'\\' && body.get(index + 1) == Some(&b'(') {
                index += 1;
            }
            value.push(body[index]);
            value_positions.push(positions[index]);
            index += 1;
        }
        elements.push(Element {
            spec,
            ai_position,
            value,
            value_positions,
            value_position,
            separator_hint: false,
        });
    }
    Ok(elements)
}

fn is_digital_link(body: &str) -> bool {
    let starts_with_ignoring_case = |prefix: &str| {
        body.len() >= prefix.len()
            && body.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    };
    starts_with_ignoring_case("http://") || starts_with_ignoring_case("https://")
}

/// Reads `https://id.gs1.org/01/09506000134352/10/ABC?17=270101`.
fn split_digital_link(body: &str, positions: &[usize]) -> Result<Vec<Element>, UdiError> {
    const FIELD: &str = "digital link";
    let bytes = body.as_bytes();
    if let Some(index) = bytes
        .iter()
        .position(|b| !b.is_ascii() || b.is_ascii_control())
    {
        return Err(invalid(
            FIELD,
            positions[index],
            format!(
                "contains {}; a uri must percent-encode it",
                describe_byte(bytes[index])
            ),
        ));
    }
    // The whole URI is ASCII from here on, so byte offsets are character offsets and
    // slicing `body` at any byte index is safe.
    let end = bytes.iter().position(|&b| b == b'#').unwrap_or(bytes.len());
    let scheme_end = bytes.iter().position(|&b| b == b':').unwrap_or(0) + 3;
    let Some(path_start) = bytes[scheme_end.min(end)..end]
        .iter()
        .position(|&b| b == b'/')
        .map(|i| i + scheme_end)
    else {
        return Err(invalid(FIELD, positions[0], "has no path"));
    };
    let query_start = bytes[path_start..end]
        .iter()
        .position(|&b| b == b'?')
        .map_or(end, |i| i + path_start);

    // Path segments with the index of their first byte.
    let mut segments: Vec<(usize, &[u8])> = Vec::new();
    let mut segment_start = path_start + 1;
    for index in path_start + 1..=query_start {
        if index == query_start || bytes[index] == b'/' {
            segments.push((segment_start, &bytes[segment_start..index]));
            segment_start = index + 1;
        }
    }
    if segments.last().is_some_and(|(_, s)| s.is_empty()) {
        segments.pop();
    }
    let Some(gtin_segment) = segments.iter().position(|(_, s)| *s == b"01") else {
        return Err(invalid(
            "ai 01",
            positions[path_start],
            "is missing from the digital link path; a udi needs the gtin",
        ));
    };
    let mut elements = Vec::new();
    let mut qualifiers_seen = 0;
    let pairs = &segments[gtin_segment..];
    for (pair_index, pair) in pairs.chunks(2).enumerate() {
        let (ai_start, ai) = pair[0];
        let Some(&(value_start, raw_value)) = pair.get(1) else {
            return Err(invalid(
                format!("ai {}", String::from_utf8_lossy(ai)),
                positions[ai_start],
                "has no value in the digital link path",
            ));
        };
        let name = percent_decode(ai, ai_start, positions)?.0;
        let Some(spec) = lookup(&name) else {
            return Err(invalid(
                format!("ai {}", String::from_utf8_lossy(&name)),
                positions[ai_start],
                "is not a supported application identifier",
            ));
        };
        if pair_index > 0 {
            let rank = GTIN_KEY_QUALIFIERS.iter().position(|q| *q == spec.ai);
            match rank {
                Some(rank) if rank >= qualifiers_seen => qualifiers_seen = rank + 1,
                Some(_) => {
                    return Err(invalid(
                        format!("ai {}", spec.ai),
                        positions[ai_start],
                        "is out of order; the digital link path lists 22, 10 and 21 in that order",
                    ));
                }
                None => {
                    return Err(invalid(
                        format!("ai {}", spec.ai),
                        positions[ai_start],
                        "is not a key qualifier of the gtin; it belongs in the query string",
                    ));
                }
            }
        }
        let (mut value, mut value_positions) = percent_decode(raw_value, value_start, positions)?;
        let short_gtin = spec.content == Content::Gtin
            && [8, 12, 13].contains(&value.len())
            && value.iter().all(u8::is_ascii_digit);
        if short_gtin {
            // Digital Link allows GTIN-8, -12 and -13 in the path; padding to 14 digits
            // lets the check digit and duplicate checks work on one form. The padding
            // zeros are attributed to the value's first character.
            let mut padded = vec![b'0'; 14 - value.len()];
            padded.extend_from_slice(&value);
            value = padded;
            value_positions = vec![positions[value_start]; 14];
        }
        elements.push(Element {
            spec,
            ai_position: positions[ai_start],
            value,
            value_positions,
            value_position: positions[value_start],
            separator_hint: false,
        });
    }

    if query_start < end {
        let mut parameter_start = query_start + 1;
        for index in query_start + 1..=end {
            if index < end && bytes[index] != b'&' {
                continue;
            }
            let parameter = &bytes[parameter_start..index];
            let start = parameter_start;
            parameter_start = index + 1;
            if parameter.is_empty() {
                continue;
            }
            let (key, value_offset) = match parameter.iter().position(|&b| b == b'=') {
                Some(eq) => (&parameter[..eq], Some(eq + 1)),
                None => (parameter, None),
            };
            let (name, _) = percent_decode(key, start, positions)?;
            if name.is_empty() || !name.iter().all(u8::is_ascii_digit) {
                // Not an AI: Digital Link allows other query parameters (e.g. linkType).
                continue;
            }
            let label = format!("ai {}", String::from_utf8_lossy(&name));
            let Some(spec) = lookup(&name) else {
                return Err(invalid(
                    label,
                    positions[start],
                    "is not a supported application identifier",
                ));
            };
            let Some(value_offset) = value_offset else {
                return Err(invalid(
                    label,
                    positions[start],
                    "has no value in the query string",
                ));
            };
            let value_start = start + value_offset;
            let (value, value_positions) =
                percent_decode(&parameter[value_offset..], value_start, positions)?;
            elements.push(Element {
                spec,
                ai_position: positions[start],
                value,
                value_positions,
                value_position: positions[value_start],
                separator_hint: false,
            });
        }
    }
    Ok(elements)
}

/// Decodes `%HH` escapes; returns the bytes with the position of the character each came
/// from. `start` is the byte index of `raw` in the URI.
fn percent_decode(
    raw: &[u8],
    start: usize,
    positions: &[usize],
) -> Result<(Vec<u8>, Vec<usize>), UdiError> {
    let mut decoded = Vec::with_capacity(raw.len());
    let mut decoded_positions = Vec::with_capacity(raw.len());
    let mut index = 0;
    while index < raw.len() {
        let position = positions[start + index];
        if raw[index] == b'%' {
            let high = raw.get(index + 1).and_then(|&b| hex_value(b));
            let low = raw.get(index + 2).and_then(|&b| hex_value(b));
            let (Some(high), Some(low)) = (high, low) else {
                return Err(invalid(
                    "digital link",
                    position,
                    "has '%' not followed by two hexadecimal digits",
                ));
            };
            decoded.push(high * 16 + low);
            index += 3;
        } else {
            decoded.push(raw[index]);
            index += 1;
        }
        decoded_positions.push(position);
    }
    Ok((decoded, decoded_positions))
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Checks every element and builds the `ParsedUdi`.
fn assemble(
    elements: &[Element],
    start_position: usize,
    current_year: i32,
) -> Result<ParsedUdi, UdiError> {
    let mut seen: BTreeMap<&str, (&[u8], usize)> = BTreeMap::new();
    let mut gtin = None;
    let mut production = ProductionIdentifiers::default();
    let mut quantity = None;
    let mut other_elements = BTreeMap::new();
    for element in elements {
        let value = check_value(element, current_year)?;
        let ai = element.spec.ai;
        if let Some((previous, previous_position)) = seen.get(ai) {
            if *previous != element.value.as_slice() {
                return Err(invalid(
                    format!("ai {ai}"),
                    element.ai_position,
                    format!(
                        "appears twice with different values (first at position {previous_position})"
                    ),
                ));
            }
            continue;
        }
        seen.insert(ai, (&element.value, element.ai_position));
        match (ai, value) {
            (_, Value::Gtin(value)) => gtin = Some(value),
            ("11", Value::Date(date)) => production.manufactured = Some(date),
            (_, Value::Date(date)) => production.expiry = Some(date),
            (_, Value::Count(count)) => quantity = Some(count),
            ("10", Value::Text(text)) => production.lot = Some(text),
            ("21", Value::Text(text)) => production.serial = Some(text),
            (_, Value::Text(text)) => {
                other_elements.insert(ai.to_string(), text);
            }
        }
    }
    let Some(gtin) = gtin else {
        return Err(invalid(
            "ai 01",
            start_position,
            "is missing; a udi needs the gtin",
        ));
    };
    Ok(ParsedUdi {
        di: UdiDi::gtin_unchecked(gtin),
        production,
        quantity,
        other_elements,
    })
}

/// Checks one element's length and characters and interprets its value.
fn check_value(element: &Element, current_year: i32) -> Result<Value, UdiError> {
    let spec = element.spec;
    let field = format!("ai {}", spec.ai);
    let value = &element.value;
    if value.is_empty() {
        return Err(invalid(field, element.value_position, "is empty"));
    }
    if value.len() > spec.max_length || value.len() < spec.min_length {
        let expected = if spec.min_length == spec.max_length {
            format!("exactly {}", spec.max_length)
        } else {
            format!("at most {}", spec.max_length)
        };
        let hint = if element.separator_hint && value.len() > spec.max_length {
            " (is a gs separator missing?)"
        } else {
            ""
        };
        return Err(invalid(
            field,
            element.value_position,
            format!("has {} characters; expected {expected}{hint}", value.len()),
        ));
    }
    let numeric = spec.content != Content::CharacterSet82;
    for (index, &b) in value.iter().enumerate() {
        let allowed = if numeric {
            b.is_ascii_digit()
        } else {
            in_character_set_82(b)
        };
        if !allowed {
            let set = if numeric {
                "only digits are allowed"
            } else {
                "it is not in gs1 character set 82"
            };
            return Err(invalid(
                field,
                element.value_positions[index],
                format!("contains {}; {set}", describe_byte(b)),
            ));
        }
    }
    // Every byte is ASCII from here on.
    let text: String = value.iter().map(|&b| char::from(b)).collect();
    match spec.content {
        Content::Gtin => {
            parse_gtin(&text, element.value_position).map_err(|_| {
                invalid(
                    field,
                    element.value_position,
                    format!("{text} has invalid check digit"),
                )
            })?;
            Ok(Value::Gtin(text))
        }
        Content::Date => parse_date(value, current_year)
            .map(Value::Date)
            .ok_or_else(|| {
                invalid(
                    field,
                    element.value_position,
                    format!("{text} is not a valid date"),
                )
            }),
        Content::Count => text.parse::<u32>().map(Value::Count).map_err(|_| {
            invalid(
                field,
                element.value_position,
                format!("{text} is not a count"),
            )
        }),
        Content::CharacterSet82 => Ok(Value::Text(text)),
    }
}

/// Reads YYMMDD digits; DD = 00 means the last day of the month.
fn parse_date(digits: &[u8], current_year: i32) -> Option<NaiveDate> {
    let number = |range: std::ops::Range<usize>| {
        digits.get(range)?.iter().try_fold(0u32, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
        })
    };
    let year = expand_two_digit_year(number(0..2)?, current_year);
    let month = number(2..4)?;
    let day = number(4..6)?;
    if day == 0 {
        return last_day_of_month(year, month);
    }
    NaiveDate::from_ymd_opt(year, month, day)
}

/// GS1 AI encodable character set 82 (GS1 General Specifications section 7.11).
pub(crate) fn in_character_set_82(b: u8) -> bool {
    matches!(b,
        b'!' | b'"' | b'%' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'-' | b'.'
        | b'/' | b'0'..=b'9' | b':' | b';' | b'<' | b'=' | b'>' | b'?' | b'A'..=b'Z' | b'_'
        | b'a'..=b'z')
}

/// Describes a byte for an error message without echoing control or non-ASCII bytes raw.
fn describe_byte(b: u8) -> String {
    match b {
        GS => "a gs separator".to_string(),
        b' ' => "a space".to_string(),
        0x21..=0x7E => format!("'{}'", char::from(b)),
        0x00..=0x1F | 0x7F => format!("control character 0x{b:02x}"),
        _ => "a non-ascii character".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtin_check_digit_of_the_gs1_example_is_accepted() {
        assert_eq!(parse_gtin("09506000134352", 0), Ok("09506000134352".into()));
        assert_eq!(
            parse_gtin("95060001343", 0).map_err(|e| e.to_string()),
            Err("udi gtin at position 0: has 11 digits; expected 8, 12, 13 or 14".into())
        );
    }
}
