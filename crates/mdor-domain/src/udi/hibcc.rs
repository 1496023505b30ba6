//! HIBCC UDIs: HIBC Labeler Identification Code (LIC) primary and secondary data, in one
//! concatenated symbol or as a primary and a secondary symbol.
//!
//! What is implemented, after ANSI/HIBC 2.6 "The Health Industry Supplier Labeling
//! Standard" (HIBC LIC), from the standard's structure as widely documented; the text of
//! the standard itself was not available while writing this, so the decisions marked
//! "interpretation" below are ours:
//!
//! - Primary data: `+`, labeler identification code (4 characters, the first a letter, the
//!   others letters or digits), product or catalogue number (1 to 18 letters or digits),
//!   unit of measure (1 digit), check character.
//! - Secondary data, after `/` in a concatenated symbol or after `+` in a secondary symbol:
//!   - `$` lot;
//!   - `$$` MMYY lot (the month's first digit, 0 or 1, is the format flag);
//!   - `$$2` MMDDYY lot, `$$3` YYMMDD lot, `$$4` YYMMDDHH lot, `$$5` YYJJJ lot,
//!     `$$6` YYJJJHH lot, `$$7` lot (no expiry date);
//!   - `$$8` QQ then any of the date forms above (or nothing) then lot, `$$9` QQQQQ likewise;
//!   - `$+` serial, and `$$+` followed by the same date forms as `$$` (0/1 to 7) then serial;
//!   - the older form of a 5-digit Julian date YYJJJ followed by the lot (a secondary
//!     starting with a digit).
//! - Supplementary data after the secondary data, each introduced by `/`: `/14D` expiry
//!   YYYYMMDD, `/16D` manufacture date YYYYMMDD, `/S` serial (1 to 18 letters or digits),
//!   `/Q` quantity (interpretation: 1 to 5 digits, as the longest `$$9` quantity). Any
//!   other field is an error naming it.
//! - Check character: modulus 43 of the sum of the values of every character before it,
//!   `+` included, over `0`-`9` (0-9), `A`-`Z` (10-35), `-` `.` space `$` `/` `+` `%`
//!   (36-42); enforced on every symbol. A secondary symbol carries a link character before
//!   its check character, which must equal the primary symbol's check character.
//! - Lots and serials are 1 to 18 letters or digits (an empty lot after a `$$` date form is
//!   read as no lot). Lower-case letters are outside the HIBC character set and rejected.
//! - Interpretation: two-digit years use the same sliding window as GS1; an MMYY expiry is
//!   the last day of that month (as GS1's DD = 00), which is the conservative reading for a
//!   recall; the hour of `$$4`/`$$6` is checked (00-23) and then dropped because
//!   `ProductionIdentifiers` holds dates; a date or serial given both in the secondary data
//!   and in a supplementary field must agree.
//! - Code 39 start/stop `*` around a symbol (as printed in the human-readable line) are
//!   tolerated so that a typed-in label reads the same as a scan.

use chrono::NaiveDate;

use crate::udi::{
    ParsedUdi, ProductionIdentifiers, UdiDi, UdiError, char_positions, current_year,
    expand_two_digit_year, invalid, last_day_of_month, strip_symbology_identifier,
};

/// The HIBC character set in value order: the index of a character is its value for the
/// modulus 43 check character.
pub const CHARACTER_SET: &[u8; 43] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-. $/+%";

/// Longest lot or serial number.
const MAX_LOT_OR_SERIAL: usize = 18;

/// Reads HIBCC data starting with `+`; `offset` is the number of characters before `body`
/// in the original scan. Two symbols may be joined by CR, LF or GS.
pub fn parse(body: &str, offset: usize) -> Result<ParsedUdi, UdiError> {
    parse_at(body, offset, current_year())
}

/// `parse` with the year that two-digit years are expanded against given explicitly.
pub fn parse_at<'a>(
    body: &'a str,
    offset: usize,
    current_year: i32,
) -> Result<ParsedUdi, UdiError> {
    let mut symbols: Vec<(&str, usize)> = Vec::new();
    let mut start = 0;
    let mut symbol_offset = offset;
    let mut push = |symbol: &'a str, symbol_offset: usize| {
        // Each read may carry its own symbology identifier, e.g. `]C0` before each line.
        let stripped = strip_symbology_identifier(symbol);
        if !stripped.is_empty() {
            symbols.push((stripped, symbol_offset + (symbol.len() - stripped.len())));
        }
    };
    for (chars_before, (index, c)) in (offset..).zip(body.char_indices()) {
        if matches!(c, '\r' | '\n' | '\u{1d}') {
            push(&body[start..index], symbol_offset);
            start = index + 1;
            symbol_offset = chars_before + 1;
        }
    }
    push(&body[start..], symbol_offset);
    parse_symbols_at(&symbols, current_year)
}

/// Reads one symbol, or a primary and a secondary symbol in either order; each comes with
/// the character offset where it starts in the scan.
pub fn parse_symbols_at(
    symbols: &[(&str, usize)],
    current_year: i32,
) -> Result<ParsedUdi, UdiError> {
    let read: Vec<Symbol> = symbols
        .iter()
        .map(|(text, offset)| read_symbol(text, *offset, current_year))
        .collect::<Result<_, _>>()?;
    match read.as_slice() {
        [] => Err(UdiError::Empty),
        [Symbol::Primary { di, .. }] => Ok(parsed(di, Secondary::default())),
        [Symbol::Concatenated { di, secondary }] => Ok(parsed(di, secondary.clone())),
        [Symbol::Secondary { position, .. }] => Err(invalid(
            "hibcc primary data",
            *position,
            "is missing; a secondary symbol alone does not identify the device",
        )),
        [
            Symbol::Primary {
                di,
                check_character,
                ..
            },
            Symbol::Secondary {
                secondary,
                link_character,
                link_position,
                ..
            },
        ]
        | [
            Symbol::Secondary {
                secondary,
                link_character,
                link_position,
                ..
            },
            Symbol::Primary {
                di,
                check_character,
                ..
            },
        ] => {
            if link_character != check_character {
                return Err(invalid(
                    "hibcc link character",
                    *link_position,
                    format!(
                        "'{}' does not match the primary check character '{}'",
                        char::from(*link_character),
                        char::from(*check_character)
                    ),
                ));
            }
            Ok(parsed(di, secondary.clone()))
        }
        _ => Err(invalid(
            "hibcc symbols",
            symbols.first().map_or(0, |(_, offset)| *offset),
            format!(
                "expected one concatenated symbol or a primary and a secondary symbol, found {} symbols of those kinds",
                read.len()
            ),
        )),
    }
}

/// Parses a HIBCC primary identifier as entered in the device register: `A123PROD1`
/// (register form, never with a check character), or `+A123PROD1` with or without its
/// check character (symbol form).
///
/// In the symbol form a final digit is ambiguous (unit of measure, or a check character
/// that happens to be a digit): it is read as the check character when it matches the
/// check computed over the rest and the rest still ends in a unit-of-measure digit, so
/// `+A123X15` is `A123X1` with check `5`. Register entries should use the form without
/// `+`, which has no such ambiguity.
pub fn parse_primary_identifier(input: &str) -> Result<UdiDi, UdiError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(UdiError::Empty);
    }
    let leading = input[..input.len() - input.trim_start().len()]
        .chars()
        .count();
    let with_plus = if trimmed.starts_with('+') {
        trimmed.to_string()
    } else {
        format!("+{trimmed}")
    };
    let position_shift = usize::from(!trimmed.starts_with('+'));
    let bytes = with_plus.as_bytes();
    // Errors count characters of the input as given, without the `+` we may have added.
    let position = |index: usize| -> usize {
        let index = index.saturating_sub(position_shift);
        leading + trimmed.get(..index).map_or(index, |s| s.chars().count())
    };
    if let Some(index) = bytes.iter().position(|&b| value_of(b).is_none()) {
        return Err(invalid(
            "hibcc primary identifier",
            position(index),
            format!("contains {}; {}", describe(&with_plus, index), OUTSIDE_SET),
        ));
    }
    let last = bytes[bytes.len() - 1];
    let without_last = &bytes[..bytes.len() - 1];
    let with_check = if position_shift == 1 {
        false
    } else if !last.is_ascii_digit() {
        if check_character(without_last) != last {
            return Err(invalid(
                "hibcc check character",
                position(bytes.len() - 1),
                format!("'{}' does not match the data", char::from(last)),
            ));
        }
        true
    } else {
        without_last.last().is_some_and(u8::is_ascii_digit) && check_character(without_last) == last
    };
    let data = if with_check { without_last } else { bytes };
    let positions: Vec<usize> = (0..=data.len()).map(position).collect();
    read_primary(&data[1..], &positions[1..]).map(UdiDi::hibcc_unchecked)
}

const OUTSIDE_SET: &str = "only 0-9, A-Z, '-', '.', space, '$', '/', '+' and '%' are allowed";

/// The modulus 43 check character over `data` (every byte must be in `CHARACTER_SET`;
/// others count as 0, which callers rule out beforehand).
pub fn check_character(data: &[u8]) -> u8 {
    let sum: usize = data
        .iter()
        .map(|&b| usize::from(value_of(b).unwrap_or(0)))
        .sum();
    CHARACTER_SET[sum % 43]
}

/// Secondary data read from a symbol.
#[derive(Debug, Clone, Default)]
struct Secondary {
    production: ProductionIdentifiers,
    quantity: Option<u32>,
}

/// One symbol, classified.
enum Symbol {
    Primary {
        di: String,
        check_character: u8,
    },
    Concatenated {
        di: String,
        secondary: Secondary,
    },
    Secondary {
        secondary: Secondary,
        link_character: u8,
        link_position: usize,
        position: usize,
    },
}

fn parsed(di: &str, secondary: Secondary) -> ParsedUdi {
    ParsedUdi {
        di: UdiDi::hibcc_unchecked(di.to_string()),
        production: secondary.production,
        quantity: secondary.quantity,
        other_elements: Default::default(),
    }
}

fn value_of(b: u8) -> Option<u8> {
    CHARACTER_SET
        .iter()
        .position(|&c| c == b)
        .and_then(|v| u8::try_from(v).ok())
}

/// Describes the character starting at byte `index` of `text` for an error message.
fn describe(text: &str, index: usize) -> String {
    match text.get(index..).and_then(|rest| rest.chars().next()) {
        Some(c) if c.is_control() => format!("control character U+{:04X}", u32::from(c)),
        Some(c) => format!("'{c}'"),
        None => "an invalid character".to_string(),
    }
}

fn read_symbol(text: &str, offset: usize, current_year: i32) -> Result<Symbol, UdiError> {
    let positions = char_positions(text, offset);
    let mut bytes = text.as_bytes();
    let mut positions = positions.as_slice();
    // Code 39 start/stop characters from a typed-in human-readable line.
    if bytes.len() >= 2 && bytes[0] == b'*' && bytes[bytes.len() - 1] == b'*' {
        bytes = &bytes[1..bytes.len() - 1];
        positions = &positions[1..positions.len() - 1];
    }
    if bytes.first() != Some(&b'+') {
        return Err(invalid("hibcc symbol", positions[0], "must start with '+'"));
    }
    if let Some(index) = bytes.iter().position(|&b| value_of(b).is_none()) {
        return Err(invalid(
            "hibcc symbol",
            positions[index],
            format!(
                "contains {}; {OUTSIDE_SET}",
                describe(
                    text,
                    index + usize::from(text.as_bytes().first() == Some(&b'*'))
                )
            ),
        ));
    }
    // From here every byte is one ASCII character: positions[i] is exact for byte i.
    if bytes.len() < 3 {
        return Err(invalid(
            "hibcc symbol",
            positions[0],
            "is too short to hold data and a check character",
        ));
    }
    let check_index = bytes.len() - 1;
    let check = bytes[check_index];
    if check_character(&bytes[..check_index]) != check {
        return Err(invalid(
            "hibcc check character",
            positions[check_index],
            format!("'{}' does not match the data", char::from(check)),
        ));
    }
    let data = &bytes[1..check_index];
    let data_positions = &positions[1..check_index + 1];
    let first = data[0];
    if first == b'$' || first.is_ascii_digit() {
        let link_index = data.len() - 1;
        let secondary = read_secondary(
            &data[..link_index],
            &data_positions[..=link_index],
            current_year,
        )?;
        return Ok(Symbol::Secondary {
            secondary,
            link_character: data[link_index],
            link_position: data_positions[link_index],
            position: positions[0],
        });
    }
    match data.iter().position(|&b| b == b'/') {
        None => Ok(Symbol::Primary {
            di: read_primary(data, data_positions)?,
            check_character: check,
        }),
        Some(slash) => {
            let di = read_primary(&data[..slash], &data_positions[..=slash])?;
            let secondary = read_secondary(
                &data[slash + 1..],
                &data_positions[slash + 1..],
                current_year,
            )?;
            Ok(Symbol::Concatenated { di, secondary })
        }
    }
}

/// Reads labeler code + product number + unit of measure (no `+`, no check character);
/// `positions` has one entry per byte plus one for the end.
fn read_primary(data: &[u8], positions: &[usize]) -> Result<String, UdiError> {
    const MIN: usize = 4 + 1 + 1;
    if data.len() < MIN {
        return Err(invalid(
            "hibcc primary data",
            positions[0],
            format!(
                "has {} characters; expected a 4-character labeler code, a product number and a unit of measure digit",
                data.len()
            ),
        ));
    }
    let labeler = &data[..4];
    if !labeler[0].is_ascii_uppercase() {
        return Err(invalid(
            "hibcc labeler code",
            positions[0],
            "must start with a letter",
        ));
    }
    if let Some(index) = labeler.iter().position(|b| !b.is_ascii_alphanumeric()) {
        return Err(invalid(
            "hibcc labeler code",
            positions[index],
            "must contain only letters and digits",
        ));
    }
    let unit_index = data.len() - 1;
    let product = &data[4..unit_index];
    if product.len() > 18 {
        return Err(invalid(
            "hibcc product number",
            positions[4],
            format!("has {} characters; expected 1 to 18", product.len()),
        ));
    }
    if let Some(index) = product.iter().position(|b| !b.is_ascii_alphanumeric()) {
        return Err(invalid(
            "hibcc product number",
            positions[4 + index],
            "must contain only letters and digits",
        ));
    }
    if !data[unit_index].is_ascii_digit() {
        return Err(invalid(
            "hibcc unit of measure",
            positions[unit_index],
            "must be a digit",
        ));
    }
    Ok(data.iter().map(|&b| char::from(b)).collect())
}

/// A cursor over secondary data with the position of every byte.
struct Reader<'a> {
    data: &'a [u8],
    positions: &'a [usize],
    index: usize,
}

impl Reader<'_> {
    fn position(&self) -> usize {
        self.positions[self.index.min(self.positions.len() - 1)]
    }

    fn peek(&self) -> Option<u8> {
        self.data.get(self.index).copied()
    }

    fn eat(&mut self, prefix: &[u8]) -> bool {
        let matched = self.data[self.index..].starts_with(prefix);
        if matched {
            self.index += prefix.len();
        }
        matched
    }

    /// Takes exactly `n` digits.
    fn digits(&mut self, n: usize, field: &str) -> Result<&[u8], UdiError> {
        let start = self.index;
        let available = self.data.len() - start;
        if available < n {
            return Err(invalid(
                field,
                self.position(),
                format!("needs {n} digits; found {available} characters"),
            ));
        }
        let digits = &self.data[start..start + n];
        if let Some(index) = digits.iter().position(|b| !b.is_ascii_digit()) {
            return Err(invalid(
                field,
                self.positions[start + index],
                format!("must be {n} digits"),
            ));
        }
        self.index += n;
        Ok(digits)
    }

    fn rest(&mut self) -> (&[u8], usize) {
        let position = self.position();
        let rest = &self.data[self.index..];
        self.index = self.data.len();
        (rest, position)
    }
}

fn number(digits: &[u8]) -> u32 {
    digits.iter().fold(0u32, |acc, &b| {
        acc.saturating_mul(10)
            .saturating_add(u32::from(b.wrapping_sub(b'0')))
    })
}

/// Reads secondary data and any supplementary fields (without link or check character);
/// `positions` has one entry per byte plus one for the end.
fn read_secondary(
    data: &[u8],
    positions: &[usize],
    current_year: i32,
) -> Result<Secondary, UdiError> {
    let main_end = data.iter().position(|&b| b == b'/').unwrap_or(data.len());
    let mut reader = Reader {
        data: &data[..main_end],
        positions: &positions[..=main_end],
        index: 0,
    };
    let mut secondary = Secondary::default();
    let production = &mut secondary.production;
    if reader.peek().is_none() {
        return Err(invalid(
            "hibcc secondary data",
            reader.position(),
            "is empty",
        ));
    }
    if reader.eat(b"$$+") {
        production.expiry = read_date_field(&mut reader, current_year, false)?;
        let (serial, position) = reader.rest();
        production.serial = Some(lot_or_serial(serial, position, "hibcc serial number")?);
    } else if reader.eat(b"$$") {
        if reader.eat(b"8") {
            secondary.quantity = Some(number(reader.digits(2, "hibcc quantity")?));
            production.expiry = read_date_field(&mut reader, current_year, true)?;
        } else if reader.eat(b"9") {
            secondary.quantity = Some(number(reader.digits(5, "hibcc quantity")?));
            production.expiry = read_date_field(&mut reader, current_year, true)?;
        } else {
            production.expiry = read_date_field(&mut reader, current_year, false)?;
        }
        let (lot, position) = reader.rest();
        if !lot.is_empty() {
            production.lot = Some(lot_or_serial(lot, position, "hibcc lot")?);
        }
    } else if reader.eat(b"$+") {
        let (serial, position) = reader.rest();
        production.serial = Some(lot_or_serial(serial, position, "hibcc serial number")?);
    } else if reader.eat(b"$") {
        let (lot, position) = reader.rest();
        production.lot = Some(lot_or_serial(lot, position, "hibcc lot")?);
    } else if reader.peek().is_some_and(|b| b.is_ascii_digit()) {
        let position = reader.position();
        production.expiry = Some(julian_date(
            reader.digits(5, "hibcc julian date")?,
            position,
            current_year,
        )?);
        let (lot, position) = reader.rest();
        if !lot.is_empty() {
            production.lot = Some(lot_or_serial(lot, position, "hibcc lot")?);
        }
    } else {
        return Err(invalid(
            "hibcc secondary data",
            reader.position(),
            "must start with '$', '$$', '$+', '$$+' or a julian date",
        ));
    }
    read_supplementary(&data[main_end..], &positions[main_end..], &mut secondary)?;
    Ok(secondary)
}

/// Reads the date field that follows `$$`, `$$+`, `$$8QQ` or `$$9QQQQQ`.
/// After a quantity the field may be absent altogether.
fn read_date_field(
    reader: &mut Reader,
    current_year: i32,
    after_quantity: bool,
) -> Result<Option<NaiveDate>, UdiError> {
    const FIELD: &str = "hibcc expiry date";
    let position = reader.position();
    let Some(flag) = reader.peek() else {
        if after_quantity {
            return Ok(None);
        }
        return Err(invalid(FIELD, position, "is missing after '$$'"));
    };
    let date = match flag {
        b'0' | b'1' => {
            let digits = reader.digits(4, FIELD)?;
            let year = expand_two_digit_year(number(&digits[2..4]), current_year);
            last_day_of_month(year, number(&digits[0..2]))
        }
        b'2'..=b'6' => {
            reader.index += 1;
            let length = [6, 6, 8, 5, 7][usize::from(flag - b'2')];
            let digits = reader.digits(length, FIELD)?;
            let hour_ok = |hour: &[u8]| number(hour) <= 23;
            match flag {
                b'2' => ymd(&digits[4..6], &digits[0..2], &digits[2..4], current_year),
                b'3' => ymd(&digits[0..2], &digits[2..4], &digits[4..6], current_year),
                b'4' if hour_ok(&digits[6..8]) => {
                    ymd(&digits[0..2], &digits[2..4], &digits[4..6], current_year)
                }
                b'5' => return julian_date(digits, position, current_year).map(Some),
                b'6' if hour_ok(&digits[5..7]) => {
                    return julian_date(&digits[..5], position, current_year).map(Some);
                }
                _ => None,
            }
        }
        b'7' => {
            reader.index += 1;
            return Ok(None);
        }
        other => {
            return Err(invalid(
                FIELD,
                position,
                format!("format flag '{}' is not one of 0 to 7", char::from(other)),
            ));
        }
    };
    match date {
        Some(date) => Ok(Some(date)),
        None => Err(invalid(FIELD, position, "is not a valid date")),
    }
}

fn ymd(year: &[u8], month: &[u8], day: &[u8], current_year: i32) -> Option<NaiveDate> {
    let year = expand_two_digit_year(number(year), current_year);
    NaiveDate::from_ymd_opt(year, number(month), number(day))
}

/// YYJJJ: year and day of the year.
fn julian_date(digits: &[u8], position: usize, current_year: i32) -> Result<NaiveDate, UdiError> {
    let year = expand_two_digit_year(number(&digits[0..2]), current_year);
    NaiveDate::from_yo_opt(year, number(&digits[2..5])).ok_or_else(|| {
        invalid(
            "hibcc expiry date",
            position,
            "is not a valid julian date (day of the year must exist)",
        )
    })
}

fn lot_or_serial(value: &[u8], position: usize, field: &str) -> Result<String, UdiError> {
    if value.is_empty() {
        return Err(invalid(field, position, "is empty"));
    }
    if value.len() > MAX_LOT_OR_SERIAL {
        return Err(invalid(
            field,
            position,
            format!(
                "has {} characters; expected at most {MAX_LOT_OR_SERIAL}",
                value.len()
            ),
        ));
    }
    if let Some(index) = value.iter().position(|b| !b.is_ascii_alphanumeric()) {
        return Err(invalid(
            field,
            position + index,
            format!(
                "contains '{}'; only letters and digits are allowed",
                char::from(value[index])
            ),
        ));
    }
    Ok(value.iter().map(|&b| char::from(b)).collect())
}

/// Reads `/14D…`, `/16D…`, `/S…`, `/Q…` fields; `data` starts at the first `/` or is empty.
fn read_supplementary(
    data: &[u8],
    positions: &[usize],
    secondary: &mut Secondary,
) -> Result<(), UdiError> {
    let mut start = 0;
    while start < data.len() {
        // `data[start]` is a '/' here.
        let field_start = start + 1;
        let end = data[field_start..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(data.len(), |i| i + field_start);
        let field = &data[field_start..end];
        let position = positions[start];
        let value_of_field = |prefix_length: usize| {
            (
                &field[prefix_length..],
                positions[field_start + prefix_length],
            )
        };
        if field.starts_with(b"14D") || field.starts_with(b"16D") {
            let (digits, value_position) = value_of_field(3);
            let label = if field[1] == b'4' {
                "hibcc supplementary expiry date /14D"
            } else {
                "hibcc supplementary manufacture date /16D"
            };
            if digits.len() != 8 || !digits.iter().all(u8::is_ascii_digit) {
                return Err(invalid(label, value_position, "must be 8 digits YYYYMMDD"));
            }
            let year = i32::try_from(number(&digits[0..4])).unwrap_or(0);
            let Some(date) =
                NaiveDate::from_ymd_opt(year, number(&digits[4..6]), number(&digits[6..8]))
            else {
                return Err(invalid(label, value_position, "is not a valid date"));
            };
            let slot = if field[1] == b'4' {
                &mut secondary.production.expiry
            } else {
                &mut secondary.production.manufactured
            };
            agree(slot, date, label, position)?;
        } else if field.starts_with(b"S") {
            let (serial, value_position) = value_of_field(1);
            let serial = lot_or_serial(serial, value_position, "hibcc supplementary serial /S")?;
            agree(
                &mut secondary.production.serial,
                serial,
                "hibcc supplementary serial /S",
                position,
            )?;
        } else if field.starts_with(b"Q") {
            let (digits, value_position) = value_of_field(1);
            if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
                return Err(invalid(
                    "hibcc supplementary quantity /Q",
                    value_position,
                    "must be 1 to 5 digits",
                ));
            }
            agree(
                &mut secondary.quantity,
                number(digits),
                "hibcc supplementary quantity /Q",
                position,
            )?;
        } else {
            let name: String = field.iter().take(3).map(|&b| char::from(b)).collect();
            return Err(invalid(
                "hibcc supplementary data",
                position,
                format!("field '/{name}' is not one of /14D, /16D, /S, /Q"),
            ));
        }
        start = end;
    }
    Ok(())
}

/// Stores `value` in `slot` unless it already holds a different value.
fn agree<T: PartialEq>(
    slot: &mut Option<T>,
    value: T,
    field: &str,
    position: usize,
) -> Result<(), UdiError> {
    match slot {
        Some(existing) if *existing != value => Err(invalid(
            field,
            position,
            "disagrees with the same data given earlier in the symbol",
        )),
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}
