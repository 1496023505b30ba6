//! Shared helpers: temporary dataset directories, file readers and a small GS1 scan
//! decoder that does not depend on the registry's parser (still being written).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chrono::NaiveDate;
use serde_json::Value;

use mdor_synth::{DatasetSummary, SynthConfig, write_dataset};

/// A dataset written into its own temporary directory, removed when dropped.
pub struct WrittenDataset {
    pub dir: PathBuf,
    pub summary: DatasetSummary,
}

impl WrittenDataset {
    pub fn write(name: &str, seed: u64, n_procedures: u64) -> WrittenDataset {
        let dir = std::env::temp_dir().join(format!(
            "mdor-synth-it-{name}-{seed}-{n_procedures}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let summary = write_dataset(&dir, &SynthConfig::new(seed, n_procedures)).unwrap();
        WrittenDataset { dir, summary }
    }

    pub fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(file)).unwrap()
    }

    pub fn json_lines(&self, file: &str) -> Vec<Value> {
        let text = String::from_utf8(self.read(file)).unwrap();
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    pub fn csv_rows(&self, file: &str) -> (Vec<String>, Vec<Vec<String>>) {
        csv_rows(&self.dir.join(file))
    }
}

impl Drop for WrittenDataset {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One 20,000-procedure dataset shared by the file-format tests, written once.
pub fn shared_dataset() -> &'static WrittenDataset {
    static DATASET: OnceLock<WrittenDataset> = OnceLock::new();
    DATASET.get_or_init(|| WrittenDataset::write("shared", 2026, 20_000))
}

fn csv_rows(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

pub fn date(value: &Value) -> NaiveDate {
    value.as_str().unwrap().parse().unwrap()
}

pub fn text(value: &Value) -> &str {
    value.as_str().unwrap()
}

/// The label fields of one device entry, from a scan or from manual fields.
#[derive(Debug, Default)]
pub struct DecodedDevice {
    pub udi_di: String,
    pub lot: Option<String>,
    pub serial: Option<String>,
    pub expiry: Option<NaiveDate>,
    pub manufactured: Option<NaiveDate>,
}

pub fn decode_device(entry: &Value) -> DecodedDevice {
    let Some(scan) = entry.get("scan") else {
        let optional = |key: &str| entry[key].as_str().map(str::to_string);
        let optional_date = |key: &str| entry[key].as_str().map(|s| s.parse().unwrap());
        return DecodedDevice {
            udi_di: text(&entry["udi_di"]).to_string(),
            lot: optional("lot"),
            serial: optional("serial"),
            expiry: optional_date("expiry"),
            manufactured: optional_date("manufactured"),
        };
    };
    let mut device = DecodedDevice::default();
    for (ai, value) in decode_scan(text(scan)) {
        match ai.as_str() {
            "01" => device.udi_di = value,
            "10" => device.lot = Some(value),
            "21" => device.serial = Some(value),
            "17" => device.expiry = Some(gs1_date(&value)),
            "11" => device.manufactured = Some(gs1_date(&value)),
            other => panic!("unexpected application identifier {other}"),
        }
    }
    device
}

/// GS1 YYMMDD, taking every year as 20YY (all synthetic dates are after 2000).
fn gs1_date(yymmdd: &str) -> NaiveDate {
    NaiveDate::parse_from_str(&format!("20{yymmdd}"), "%Y%m%d").unwrap()
}

/// (application identifier, value) pairs of a `]d2`/`]C1` GS-separated scan or a
/// parenthesised human-readable one; only the AIs the generator writes are understood.
pub fn decode_scan(scan: &str) -> Vec<(String, String)> {
    const GS: char = '\u{1d}';
    let mut elements = Vec::new();
    if let Some(body) = scan.strip_prefix('(') {
        for part in body.split('(') {
            let (ai, value) = part.split_once(')').unwrap();
            assert!(!value.contains(GS), "separator inside a parenthesised scan");
            elements.push((ai.to_string(), value.to_string()));
        }
        return elements;
    }
    let body = scan
        .strip_prefix("]d2")
        .or_else(|| scan.strip_prefix("]C1"))
        .unwrap_or_else(|| panic!("unknown scan form {scan:?}"));
    assert!(!body.ends_with(GS), "trailing separator in {scan:?}");
    let mut rest = body;
    while !rest.is_empty() {
        let (ai, after_ai) = rest.split_at(2);
        let fixed_length = match ai {
            "01" => Some(14),
            "11" | "17" => Some(6),
            "10" | "21" => None,
            other => panic!("unexpected ai {other} in {scan:?}"),
        };
        match fixed_length {
            Some(n) => {
                elements.push((ai.to_string(), after_ai[..n].to_string()));
                rest = &after_ai[n..];
            }
            None => {
                let end = after_ai.find(GS).unwrap_or(after_ai.len());
                elements.push((ai.to_string(), after_ai[..end].to_string()));
                rest = after_ai[end..].strip_prefix(GS).unwrap_or(&after_ai[end..]);
            }
        }
    }
    elements
}

/// Device register rows keyed by UDI-DI: (device_type, registry).
pub fn register(dataset: &WrittenDataset) -> HashMap<String, (String, String)> {
    let (_, rows) = dataset.csv_rows("devices.csv");
    rows.into_iter()
        .map(|row| (row[0].clone(), (row[4].clone(), row[6].clone())))
        .collect()
}
