//! The shared counting kernel: distinct exit times with numbers at risk, events and censorings.
//!
//! Records are sorted once by exit time; entry times (if any) are sorted separately and merged in
//! a single sweep, so the table costs `O(n log n)` time and `O(n)` memory. The risk set at time `t`
//! is `#{i : entry_i < t ≤ time_i}`: records exiting at `t` are at risk at `t`, records entering at
//! `t` are not, and at tied times events are counted before censorings (censored records stay in
//! the risk set for the events at their own time).

/// Counts at each distinct exit time, in increasing time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RiskTable {
    pub time: Vec<f64>,
    pub n_risk: Vec<u64>,
    pub n_event: Vec<u64>,
    pub n_censor: Vec<u64>,
}

impl RiskTable {
    pub fn clear(&mut self) {
        self.time.clear();
        self.n_risk.clear();
        self.n_event.clear();
        self.n_censor.clear();
    }
}

/// Reusable scratch buffers so grouped estimators allocate once, not once per group.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    pub exits: Vec<(f64, bool)>,
    pub entries: Vec<f64>,
}

/// Sorts `scratch.exits` (and `scratch.entries` when `has_entry`) and fills `out`.
pub(crate) fn fill_risk_table(scratch: &mut Scratch, has_entry: bool, out: &mut RiskTable) {
    out.clear();
    scratch.exits.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    if has_entry {
        scratch.entries.sort_unstable_by(f64::total_cmp);
    }
    let exits = &scratch.exits;
    let entries = &scratch.entries;
    let n = exits.len();
    let mut i = 0;
    let mut exited = 0usize;
    let mut entered = 0usize;
    while i < n {
        let t = exits[i].0;
        let mut events = 0u64;
        let mut censored = 0u64;
        while i < n && exits[i].0 == t {
            if exits[i].1 {
                events += 1;
            } else {
                censored += 1;
            }
            i += 1;
        }
        let at_risk = if has_entry {
            while entered < entries.len() && entries[entered] < t {
                entered += 1;
            }
            entered - exited
        } else {
            n - exited
        };
        out.time.push(t);
        out.n_risk.push(at_risk as u64);
        out.n_event.push(events);
        out.n_censor.push(censored);
        exited += (events + censored) as usize;
    }
}

/// Builds the risk table of a whole data set.
pub(crate) fn risk_table(data: &crate::input::SurvivalData) -> RiskTable {
    let mut scratch = Scratch::default();
    load(&mut scratch, data, None);
    let mut table = RiskTable::default();
    fill_risk_table(&mut scratch, data.entry().is_some(), &mut table);
    table
}

/// Loads the records listed in `indices` (or all records) into the scratch buffers.
pub(crate) fn load(
    scratch: &mut Scratch,
    data: &crate::input::SurvivalData,
    indices: Option<&[usize]>,
) {
    scratch.exits.clear();
    scratch.entries.clear();
    let time = data.time();
    let event = data.event();
    match indices {
        None => {
            scratch
                .exits
                .extend(time.iter().copied().zip(event.iter().copied()));
            if let Some(entry) = data.entry() {
                scratch.entries.extend_from_slice(entry);
            }
        }
        Some(indices) => {
            scratch
                .exits
                .extend(indices.iter().map(|&i| (time[i], event[i])));
            if let Some(entry) = data.entry() {
                scratch.entries.extend(indices.iter().map(|&i| entry[i]));
            }
        }
    }
}
