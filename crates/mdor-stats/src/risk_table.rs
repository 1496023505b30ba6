//! The shared counting kernel: distinct exit times with numbers at risk, events and censorings.
//!
//! Each record becomes one `u64` key, `(time bits << 1) | event`: for non-negative finite times the
//! IEEE-754 bit pattern orders like the number, and the sign bit is free for the event flag. Keys
//! are sorted by an LSD radix sort that skips bytes which are constant across the keys (typically
//! five of eight for times in whole days), so sorting is linear in the number of records; entry
//! times are sorted the same way and merged in a single sweep. The table costs `O(n)` time and
//! memory. The risk set at time `t` is `#{i : entry_i < t ≤ time_i}`: records exiting at `t` are at
//! risk at `t`, records entering at `t` are not, and at tied times events are counted before
//! censorings (censored records stay in the risk set for the events at their own time).

use crate::input::SurvivalData;

/// Counts at each distinct exit time, in increasing time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RiskTable {
    pub time: Vec<f64>,
    pub n_risk: Vec<u64>,
    pub n_event: Vec<u64>,
    pub n_censor: Vec<u64>,
}

impl RiskTable {
    fn clear(&mut self) {
        self.time.clear();
        self.n_risk.clear();
        self.n_event.clear();
        self.n_censor.clear();
    }
}

/// Records laid out group by group as sortable keys, with reusable sort buffers.
#[derive(Debug, Default)]
pub(crate) struct GroupedKeys {
    /// Exit keys `(time bits << 1) | event`, contiguous per group.
    pub exits: Vec<u64>,
    /// Entry time bits, contiguous per group (empty without delayed entry).
    pub entries: Vec<u64>,
    /// Range of each group in `exits` and `entries`.
    pub ranges: Vec<std::ops::Range<usize>>,
    /// Group labels in increasing order.
    pub labels: Vec<u32>,
    buffer: Vec<u64>,
}

/// The sort key of one record.
fn exit_key(time: f64, event: bool) -> u64 {
    (time.to_bits() << 1) | u64::from(event)
}

impl GroupedKeys {
    /// Lays out all records as a single group.
    pub fn single(data: &SurvivalData) -> Self {
        let exits = data
            .time()
            .iter()
            .zip(data.event())
            .map(|(&t, &e)| exit_key(t, e))
            .collect();
        let entries = data
            .entry()
            .map(|entry| entry.iter().map(|e| e.to_bits()).collect())
            .unwrap_or_default();
        Self {
            exits,
            entries,
            ranges: std::iter::once(0..data.len()).collect(),
            labels: vec![0],
            buffer: Vec::new(),
        }
    }

    /// Lays out records group by group with one counting pass and one scatter pass.
    pub fn by_group(data: &SurvivalData, groups: &[u32]) -> Self {
        let (labels, offsets) = label_offsets(groups);
        let n = data.len();
        let mut next = offsets.clone();
        let mut exits = vec![0u64; n];
        let dense = |label: u32| -> usize {
            match &labels {
                Labels::Dense(index) => index[label as usize] as usize,
                Labels::Sparse(sorted) => sorted.partition_point(|&l| l < label),
            }
        };
        let mut slot = Vec::with_capacity(if data.entry().is_some() { n } else { 0 });
        for (i, &g) in groups.iter().enumerate() {
            let k = dense(g);
            let position = next[k];
            next[k] += 1;
            exits[position] = exit_key(data.time()[i], data.event()[i]);
            if data.entry().is_some() {
                slot.push(position);
            }
        }
        let mut entries = Vec::new();
        if let Some(entry) = data.entry() {
            entries = vec![0u64; n];
            for (i, &position) in slot.iter().enumerate() {
                entries[position] = entry[i].to_bits();
            }
        }
        let ranges = offsets.windows(2).map(|w| w[0]..w[1]).collect();
        let labels = match labels {
            Labels::Dense(index) => (0..index.len() as u32)
                .filter(|&l| index[l as usize] != u32::MAX)
                .collect(),
            Labels::Sparse(sorted) => sorted,
        };
        Self {
            exits,
            entries,
            ranges,
            labels,
            buffer: Vec::new(),
        }
    }

    /// Sorts group `k` and fills `out` with its risk table.
    pub fn fill(&mut self, k: usize, out: &mut RiskTable) {
        let range = self.ranges[k].clone();
        let has_entry = !self.entries.is_empty();
        radix_sort(&mut self.exits[range.clone()], &mut self.buffer, !1);
        if has_entry {
            radix_sort(&mut self.entries[range.clone()], &mut self.buffer, !0);
        }
        let exits = &self.exits[range.clone()];
        let entries = if has_entry {
            &self.entries[range]
        } else {
            &[][..]
        };
        out.clear();
        let n = exits.len();
        let mut i = 0;
        let mut exited = 0usize;
        let mut entered = 0usize;
        while i < n {
            let time_bits = exits[i] >> 1;
            let mut events = 0u64;
            let mut censored = 0u64;
            while i < n && exits[i] >> 1 == time_bits {
                if exits[i] & 1 == 1 {
                    events += 1;
                } else {
                    censored += 1;
                }
                i += 1;
            }
            let at_risk = if has_entry {
                // Bit patterns of non-negative floats compare like the floats.
                while entered < entries.len() && entries[entered] < time_bits {
                    entered += 1;
                }
                entered - exited
            } else {
                n - exited
            };
            out.time.push(f64::from_bits(time_bits));
            out.n_risk.push(at_risk as u64);
            out.n_event.push(events);
            out.n_censor.push(censored);
            exited += (events + censored) as usize;
        }
    }
}

/// Builds the risk table of a whole data set.
pub(crate) fn risk_table(data: &SurvivalData) -> RiskTable {
    let mut keys = GroupedKeys::single(data);
    let mut table = RiskTable::default();
    keys.fill(0, &mut table);
    table
}

enum Labels {
    /// `index[label]` is the dense group index, or `u32::MAX` for absent labels.
    Dense(Vec<u32>),
    /// Distinct labels in increasing order, looked up by binary search.
    Sparse(Vec<u32>),
}

/// Dense group indices and the start offset of each group (plus the total at the end).
fn label_offsets(groups: &[u32]) -> (Labels, Vec<usize>) {
    let max_label = groups.iter().copied().max().unwrap_or(0) as usize;
    if max_label <= 4 * groups.len() + 1024 {
        let mut counts = vec![0usize; max_label + 1];
        for &g in groups {
            counts[g as usize] += 1;
        }
        let mut index = vec![u32::MAX; max_label + 1];
        let mut offsets = vec![0usize];
        for (label, &count) in counts.iter().enumerate() {
            if count > 0 {
                index[label] = (offsets.len() - 1) as u32;
                offsets.push(offsets[offsets.len() - 1] + count);
            }
        }
        (Labels::Dense(index), offsets)
    } else {
        let mut sorted = groups.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut counts = vec![0usize; sorted.len()];
        for &g in groups {
            counts[sorted.partition_point(|&l| l < g)] += 1;
        }
        let mut offsets = vec![0usize];
        for count in counts {
            offsets.push(offsets[offsets.len() - 1] + count);
        }
        (Labels::Sparse(sorted), offsets)
    }
}

/// Sorts `keys` by `key & mask` with a least-significant-digit radix sort on bytes, skipping bytes
/// that do not vary; short slices use the standard library's sort instead.
fn radix_sort(keys: &mut [u64], buffer: &mut Vec<u64>, mask: u64) {
    if keys.len() < 256 {
        keys.sort_unstable_by_key(|&k| k & mask);
        return;
    }
    let first = keys[0] & mask;
    let varying = keys.iter().fold(0u64, |acc, &k| acc | ((k & mask) ^ first));
    buffer.clear();
    buffer.resize(keys.len(), 0);
    let mut in_keys = true;
    for byte in 0..8 {
        let shift = byte * 8;
        if (varying >> shift) & 0xff == 0 {
            continue;
        }
        let (source, target): (&[u64], &mut [u64]) = if in_keys {
            (&*keys, &mut buffer[..])
        } else {
            (&buffer[..], &mut *keys)
        };
        let mut counts = [0usize; 257];
        for &k in source {
            counts[((k >> shift) & 0xff) as usize + 1] += 1;
        }
        for b in 1..257 {
            counts[b] += counts[b - 1];
        }
        for &k in source {
            let digit = ((k >> shift) & 0xff) as usize;
            target[counts[digit]] = k;
            counts[digit] += 1;
        }
        in_keys = !in_keys;
    }
    if !in_keys {
        keys.copy_from_slice(buffer);
    }
}

#[cfg(test)]
// Tests may unwrap: a panic is the failure report.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn radix_sort_orders_like_the_standard_sort_on_the_masked_key() {
        let mut state = 12345u64;
        let mut keys: Vec<u64> = (0..5000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                exit_key((state % 10_000) as f64 / 7.0, state & 1 == 1)
            })
            .collect();
        let mut expected = keys.clone();
        expected.sort_unstable_by_key(|&k| k >> 1);
        radix_sort(&mut keys, &mut Vec::new(), !1);
        let times: Vec<u64> = keys.iter().map(|k| k >> 1).collect();
        let expected_times: Vec<u64> = expected.iter().map(|k| k >> 1).collect();
        assert_eq!(times, expected_times);
    }

    #[test]
    fn sparse_labels_are_grouped_like_dense_ones() {
        let groups = [4_000_000_000u32, 7, 4_000_000_000, 7, 9];
        let data = SurvivalData::new(&[1.0, 2.0, 3.0, 4.0, 5.0], &[true; 5]).unwrap();
        let keys = GroupedKeys::by_group(&data, &groups);
        assert_eq!(keys.labels, vec![7, 9, 4_000_000_000]);
        assert_eq!(keys.ranges, vec![0..2, 2..3, 3..5]);
    }
}
