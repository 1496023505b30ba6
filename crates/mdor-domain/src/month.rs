//! A calendar month (`YYYY-MM`), the unit in which providers' expected activity is stated and
//! data quality is reported.

use std::fmt;

use chrono::{Datelike, NaiveDate};

/// A month of the Gregorian calendar between 1900-01 and 9999-12.
/// Ordered chronologically, so ranges and map keys sort as the calendar does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    /// 1 to 12.
    month: u32,
}

impl Month {
    /// Parses exactly `YYYY-MM` (four-digit year, two-digit month), as the expected activity
    /// file and the API's `from` and `to` give it.
    pub fn parse(input: &str) -> Result<Month, MonthError> {
        let bytes = input.as_bytes();
        let well_formed = bytes.len() == 7
            && bytes[4] == b'-'
            && bytes[..4].iter().all(u8::is_ascii_digit)
            && bytes[5..].iter().all(u8::is_ascii_digit);
        if !well_formed {
            return Err(MonthError::Format);
        }
        let year: i32 = input[..4].parse().map_err(|_| MonthError::Format)?;
        let month: u32 = input[5..].parse().map_err(|_| MonthError::Format)?;
        if !(1..=12).contains(&month) {
            return Err(MonthError::OutOfRange);
        }
        if year < 1900 {
            return Err(MonthError::OutOfRange);
        }
        Ok(Month { year, month })
    }

    /// The month a date falls in.
    pub fn of(date: NaiveDate) -> Month {
        Month {
            year: date.year(),
            month: date.month(),
        }
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn month(self) -> u32 {
        self.month
    }

    /// The first day of the month.
    pub fn first_day(self) -> NaiveDate {
        // Month and year were checked on construction, so the 1st always exists.
        NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or(NaiveDate::MIN)
    }

    pub fn next(self) -> Month {
        match self.month {
            12 => Month {
                year: self.year + 1,
                month: 1,
            },
            m => Month {
                year: self.year,
                month: m + 1,
            },
        }
    }

    pub fn previous(self) -> Month {
        match self.month {
            1 => Month {
                year: self.year - 1,
                month: 12,
            },
            m => Month {
                year: self.year,
                month: m - 1,
            },
        }
    }

    /// How many months from `self` to `later`, counting both: 1 when they are equal, 0 when
    /// `later` is earlier.
    pub fn months_through(self, later: Month) -> u32 {
        let span = (later.year - self.year) * 12 + later.month as i32 - self.month as i32 + 1;
        span.max(0) as u32
    }

    /// Every month from `self` to `last`, both included; empty when `last` is earlier.
    pub fn through(self, last: Month) -> impl Iterator<Item = Month> {
        std::iter::successors(Some(self), |m| Some(m.next())).take_while(move |m| *m <= last)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl serde::Serialize for Month {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Why a month was refused; the messages read as the end of "month …".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MonthError {
    #[error("must be written YYYY-MM, e.g. 2026-04")]
    Format,
    #[error("must be a month 01 to 12 of a year from 1900")]
    OutOfRange,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_print_and_step_across_years() {
        let december = Month::parse("2025-12").unwrap();
        assert_eq!(december.to_string(), "2025-12");
        assert_eq!(december.next().to_string(), "2026-01");
        assert_eq!(december.next().previous(), december);
        assert_eq!(
            Month::of(NaiveDate::from_ymd_opt(2026, 2, 28).unwrap()).to_string(),
            "2026-02"
        );
        assert_eq!(
            december.months_through(Month::parse("2026-11").unwrap()),
            12
        );
        assert_eq!(december.months_through(december.previous()), 0);
        let months: Vec<String> = december
            .through(Month::parse("2026-02").unwrap())
            .map(|m| m.to_string())
            .collect();
        assert_eq!(months, ["2025-12", "2026-01", "2026-02"]);
    }

    #[test]
    fn malformed_and_impossible_months_are_refused() {
        for input in [
            "2026-4",
            "26-04",
            "2026/04",
            "2026-04-01",
            "",
            "abcd-ef",
            "+202-01",
        ] {
            assert_eq!(Month::parse(input), Err(MonthError::Format), "{input}");
        }
        for input in ["2026-00", "2026-13", "1899-12"] {
            assert_eq!(Month::parse(input), Err(MonthError::OutOfRange), "{input}");
        }
    }
}
