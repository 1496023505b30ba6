//! Reading a spooled submission file one record at a time from a byte offset, so that a job
//! resumes where its last committed chunk ended and memory stays bounded whatever the file's
//! size: NDJSON line by line (a line longer than `MAX_RECORD_BYTES` is rejected, not held),
//! CSV with the header row read first and then a seek.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;

use mdor_domain::record::FieldError;
use mdor_store::SubmissionFormat;

/// The longest record read; a longer line is reported as too long instead of being held.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Where reading stands: bytes from the start of the file and lines (NDJSON) or CSV lines
/// read so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    pub offset: u64,
    pub line: u64,
}

/// One record as read, before validation.
pub(crate) enum RawRecord {
    /// One NDJSON line.
    Json(String),
    /// One CSV row as column → cell; cells past the header are under a blank column name.
    Csv(BTreeMap<String, String>),
    /// Something that could not be read as a record at all; `raw` is JSON text for the
    /// quarantine (a JSON string holding what was read).
    Unreadable { raw: String, error: FieldError },
}

pub(crate) struct ReadRecord {
    /// The line the record starts on, 1-based (a CSV header is line 1).
    pub line: u64,
    /// Where reading stands after this record.
    pub after: Mark,
    pub raw: RawRecord,
}

/// Counts the records of a file, for progress (`records_done` of `total_records`).
pub(crate) fn count_records(path: &Path, format: SubmissionFormat) -> std::io::Result<u64> {
    let mut count = 0;
    read_records(path, format, Mark { offset: 0, line: 0 }, |_| {
        count += 1;
        Ok(true)
    })?;
    Ok(count)
}

/// Calls `visit` with each record from `start`; `visit` returns false to stop. Returns where
/// reading ended.
pub(crate) fn read_records(
    path: &Path,
    format: SubmissionFormat,
    start: Mark,
    visit: impl FnMut(ReadRecord) -> std::io::Result<bool>,
) -> std::io::Result<Mark> {
    match format {
        SubmissionFormat::Ndjson => read_ndjson(path, start, visit),
        SubmissionFormat::Csv => read_csv(path, start, visit),
    }
}

fn read_ndjson(
    path: &Path,
    start: Mark,
    mut visit: impl FnMut(ReadRecord) -> std::io::Result<bool>,
) -> std::io::Result<Mark> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(start.offset))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut mark = start;
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        let mut consumed = 0usize;
        let mut too_long = false;
        loop {
            let available = reader.fill_buf()?;
            if available.is_empty() {
                break;
            }
            let (take, done) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            if !too_long {
                buffer.extend_from_slice(&available[..take]);
                if buffer.len() > MAX_RECORD_BYTES {
                    too_long = true;
                    buffer.clear();
                }
            }
            reader.consume(take);
            consumed += take;
            if done {
                break;
            }
        }
        if consumed == 0 {
            return Ok(mark);
        }
        mark = Mark {
            offset: mark.offset + consumed as u64,
            line: mark.line + 1,
        };
        let raw = if too_long {
            RawRecord::Unreadable {
                raw: serde_json::Value::String("(not kept: longer than 1 MiB)".into()).to_string(),
                error: FieldError::new(
                    "",
                    "record_too_long",
                    format!("The line is longer than {MAX_RECORD_BYTES} bytes"),
                ),
            }
        } else {
            while buffer.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                buffer.pop();
            }
            if buffer.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match String::from_utf8(std::mem::take(&mut buffer)) {
                Ok(text) => RawRecord::Json(text),
                Err(e) => RawRecord::Unreadable {
                    raw: serde_json::Value::String(String::from_utf8_lossy(e.as_bytes()).into())
                        .to_string(),
                    error: FieldError::new(
                        "",
                        "invalid_encoding",
                        "The line is not valid UTF-8 text",
                    ),
                },
            }
        };
        let record = ReadRecord {
            line: mark.line,
            after: mark,
            raw,
        };
        if !visit(record)? {
            return Ok(mark);
        }
    }
}

fn read_csv(
    path: &Path,
    start: Mark,
    mut visit: impl FnMut(ReadRecord) -> std::io::Result<bool>,
) -> std::io::Result<Mark> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(File::open(path)?);
    let headers: Vec<String> = reader
        .byte_headers()
        .map_err(csv_error)?
        .iter()
        .map(|h| {
            String::from_utf8_lossy(h)
                .trim_start_matches('\u{feff}')
                .to_string()
        })
        .collect();
    if start.offset > 0 {
        let mut position = csv::Position::new();
        position.set_byte(start.offset).set_line(start.line + 1);
        reader.seek(position).map_err(csv_error)?;
    }
    let mut record = csv::ByteRecord::new();
    loop {
        let position = reader.position();
        let before = Mark {
            offset: position.byte(),
            line: position.line().saturating_sub(1),
        };
        if !reader.read_byte_record(&mut record).map_err(csv_error)? {
            return Ok(before);
        }
        let line = record.position().map_or(before.line + 1, |p| p.line());
        let position = reader.position();
        let after = Mark {
            offset: position.byte(),
            line: position.line().saturating_sub(1),
        };
        let mut row = BTreeMap::new();
        let mut unreadable = None;
        for (i, cell) in record.iter().enumerate() {
            let column = headers.get(i).cloned().unwrap_or_default();
            match std::str::from_utf8(cell) {
                Ok(text) if column.is_empty() && text.trim().is_empty() => {}
                Ok(text) => {
                    // Cells past the header share the blank name; keep one with a value.
                    row.insert(column, text.to_string());
                }
                Err(_) => {
                    unreadable = Some(FieldError::new(
                        column.clone(),
                        "invalid_encoding",
                        format!("Column {column} is not valid UTF-8 text"),
                    ))
                }
            }
        }
        let raw = match unreadable {
            Some(error) => {
                let lossy: BTreeMap<String, String> = headers
                    .iter()
                    .cloned()
                    .zip(
                        record
                            .iter()
                            .map(|c| String::from_utf8_lossy(c).into_owned()),
                    )
                    .collect();
                RawRecord::Unreadable {
                    raw: serde_json::to_string(&lossy).unwrap_or_else(|_| "{}".into()),
                    error,
                }
            }
            None => RawRecord::Csv(row),
        };
        if !visit(ReadRecord { line, after, raw })? {
            return Ok(after);
        }
    }
}

fn csv_error(error: csv::Error) -> std::io::Error {
    std::io::Error::other(format!("reading the CSV file: {error}"))
}
