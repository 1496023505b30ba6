//! Loads `tests/data/golden.json`, written by `scripts/stats/make_golden.py` from lifelines,
//! statsmodels and scipy, and offers tolerant comparisons against it.

use serde_json::Value;

/// One reference data set with its inputs and the reference results.
pub struct Dataset {
    pub name: String,
    pub value: Value,
}

impl Dataset {
    pub fn floats(&self, key: &str) -> Vec<f64> {
        floats(&self.value[key])
    }

    pub fn bools(&self, key: &str) -> Vec<bool> {
        self.value[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap() != 0)
            .collect()
    }

    pub fn labels(&self, key: &str) -> Option<Vec<u32>> {
        self.value.get(key).map(|v| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        })
    }

    pub fn entry(&self) -> Option<Vec<f64>> {
        self.value.get("entry").map(floats)
    }

    pub fn reference(&self, method: &str) -> Option<&Value> {
        self.value["reference"].get(method)
    }

    pub fn survival_data(&self) -> mdor_stats::SurvivalData {
        let time = self.floats("time");
        let event = self.bools("event");
        match self.entry() {
            Some(entry) => mdor_stats::SurvivalData::with_entry(&entry, &time, &event).unwrap(),
            None => mdor_stats::SurvivalData::new(&time, &event).unwrap(),
        }
    }
}

pub fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap_or(f64::NAN))
        .collect()
}

/// The whole golden document.
pub fn document() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/golden.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

pub fn datasets() -> Vec<Dataset> {
    let doc = document();
    assert!(doc["versions"]["lifelines"].is_string());
    doc["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| Dataset {
            name: d["name"].as_str().unwrap().to_string(),
            value: d.clone(),
        })
        .collect()
}

/// Asserts `|actual − expected| ≤ tolerance × max(1, |expected|)`.
#[track_caller]
pub fn assert_close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    let scale = expected.abs().max(1.0);
    assert!(
        (actual - expected).abs() <= tolerance * scale,
        "{what}: actual {actual}, expected {expected}, difference {}",
        (actual - expected).abs()
    );
}
