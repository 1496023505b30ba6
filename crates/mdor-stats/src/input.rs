//! Validated survival input: follow-up times, event indicators and optional delayed entry times.
//!
//! Validation happens once, in the constructors; every estimator can then rely on times being
//! finite and non-negative, columns having equal lengths, and entry times preceding exit times.

use crate::error::StatsError;

/// Right-censored, optionally left-truncated survival data, one record per implant.
///
/// Record `i` is at risk on the interval `(entry[i], time[i]]` (R's `Surv(start, stop, event)`
/// convention); without entry times every record is at risk from time zero, inclusive.
#[derive(Debug, Clone, PartialEq)]
pub struct SurvivalData {
    time: Vec<f64>,
    event: Vec<bool>,
    entry: Option<Vec<f64>>,
}

impl SurvivalData {
    /// Builds data from follow-up times and event indicators (`true` = revision observed).
    ///
    /// Times must be finite and non-negative, and both columns must have the same, non-zero length.
    pub fn new(time: &[f64], event: &[bool]) -> Result<Self, StatsError> {
        check_times("time", time)?;
        check_length("event", time.len(), event.len())?;
        Ok(Self {
            time: positive_zero(time),
            event: event.to_vec(),
            entry: None,
        })
    }

    /// Builds data from owned columns without copying them; validation is the same as [`Self::new`].
    pub fn from_vecs(mut time: Vec<f64>, event: Vec<bool>) -> Result<Self, StatsError> {
        check_times("time", &time)?;
        check_length("event", time.len(), event.len())?;
        time.iter_mut().for_each(|t| *t += 0.0);
        Ok(Self {
            time,
            event,
            entry: None,
        })
    }

    /// Builds left-truncated data: record `i` enters the risk set after `entry[i]`.
    ///
    /// Each entry time must be finite, non-negative and strictly less than its exit time.
    pub fn with_entry(entry: &[f64], time: &[f64], event: &[bool]) -> Result<Self, StatsError> {
        check_times("time", time)?;
        check_length("event", time.len(), event.len())?;
        check_length("entry", time.len(), entry.len())?;
        for (index, (&start, &stop)) in entry.iter().zip(time).enumerate() {
            if !start.is_finite() || start < 0.0 {
                return Err(StatsError::InvalidValue {
                    field: "entry",
                    index,
                    reason: "must be finite and non-negative",
                });
            }
            if start >= stop {
                return Err(StatsError::InvalidValue {
                    field: "entry",
                    index,
                    reason: "must be strictly less than the exit time",
                });
            }
        }
        Ok(Self {
            time: positive_zero(time),
            event: event.to_vec(),
            entry: Some(positive_zero(entry)),
        })
    }

    /// Exit (event or censoring) times.
    pub fn time(&self) -> &[f64] {
        &self.time
    }

    /// Event indicators.
    pub fn event(&self) -> &[bool] {
        &self.event
    }

    /// Delayed entry times, if any.
    pub fn entry(&self) -> Option<&[f64]> {
        self.entry.as_deref()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.time.len()
    }

    /// Always false: construction rejects empty input.
    pub fn is_empty(&self) -> bool {
        self.time.is_empty()
    }

    /// Number of observed events.
    pub fn n_events(&self) -> usize {
        self.event.iter().filter(|&&e| e).count()
    }
}

/// Copies validated times, turning `-0.0` into `+0.0` so that bit patterns order like values.
fn positive_zero(values: &[f64]) -> Vec<f64> {
    values.iter().map(|&v| v + 0.0).collect()
}

pub(crate) fn check_times(field: &'static str, values: &[f64]) -> Result<(), StatsError> {
    if values.is_empty() {
        return Err(StatsError::Empty);
    }
    for (index, &value) in values.iter().enumerate() {
        if !value.is_finite() || value < 0.0 {
            return Err(StatsError::InvalidValue {
                field,
                index,
                reason: "must be finite and non-negative",
            });
        }
    }
    Ok(())
}

pub(crate) fn check_length(
    field: &'static str,
    expected: usize,
    found: usize,
) -> Result<(), StatsError> {
    if expected != found {
        return Err(StatsError::LengthMismatch {
            field,
            expected,
            found,
        });
    }
    Ok(())
}

pub(crate) fn check_confidence_level(level: f64) -> Result<(), StatsError> {
    if !(level > 0.0 && level < 1.0) {
        return Err(StatsError::InvalidOption {
            option: "confidence_level",
            reason: "must lie strictly between 0 and 1",
        });
    }
    Ok(())
}

/// Groups record indices by label with a counting sort when labels are dense, else a plain sort.
///
/// Returns the distinct labels in increasing order and, for each, the range into the returned
/// index permutation.
pub(crate) fn group_records(labels: &[u32]) -> (Vec<u32>, Vec<std::ops::Range<usize>>, Vec<usize>) {
    let max_label = labels.iter().copied().max().unwrap_or(0) as usize;
    let mut order: Vec<usize>;
    if max_label <= 4 * labels.len() + 1024 {
        let mut counts = vec![0usize; max_label + 2];
        for &label in labels {
            counts[label as usize + 1] += 1;
        }
        for k in 1..counts.len() {
            counts[k] += counts[k - 1];
        }
        let mut next = counts.clone();
        order = vec![0; labels.len()];
        for (i, &label) in labels.iter().enumerate() {
            order[next[label as usize]] = i;
            next[label as usize] += 1;
        }
    } else {
        order = (0..labels.len()).collect();
        order.sort_by_key(|&i| labels[i]);
    }
    let mut distinct = Vec::new();
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let label = labels[order[start]];
        let mut end = start;
        while end < order.len() && labels[order[end]] == label {
            end += 1;
        }
        distinct.push(label);
        ranges.push(start..end);
        start = end;
    }
    (distinct, ranges, order)
}
