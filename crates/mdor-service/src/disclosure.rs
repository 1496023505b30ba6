//! Small-number suppression for aggregate outputs (feedback reports, manufacturer views):
//! counts of 1 to 7 are shown as `*`, every other count is rounded to the nearest 5, and a
//! table never leaves a suppressed count recoverable by subtraction.
//!
//! The rules, and why each is needed:
//! - **Primary suppression:** a count of 1–7 could identify a patient; it is shown as `*`.
//!   Zero is shown: "no revisions" discloses nobody.
//! - **Rounding:** every shown count, totals included, is rounded to the nearest 5 (halves
//!   up) from the *raw* value, never summed from rounded cells. Rounding is deterministic, so
//!   asking again, or asking another output that shows the same count, gives the same
//!   figure: nothing can be averaged away.
//! - **Secondary suppression:** within a group whose total is shown, a single suppressed cell
//!   could be recovered as the total minus the others. Rounding alone leaves only a ±2 band
//!   per cell, but with many cells the bands can still pin a small count, so a group never has
//!   exactly one suppressed cell: the smallest other non-zero cell is suppressed as well.
//! - **Rates:** a rate is shown only when its numerator and denominator are both shown, and
//!   is computed from the raw counts (a rate from rounded counts could be inverted).
//!
//! Differencing across outputs: because the same raw count always publishes the same value
//! and totals are rounded from raw values, publishing a subgroup in one report and the total
//! in another yields at best an interval, never the suppressed count (see the exhaustive
//! test below, which enumerates every raw table consistent with a published one).

use serde::Serialize;

/// Counts up to this are suppressed.
pub const SUPPRESS_AT_OR_BELOW: u64 = 7;
/// Shown counts are rounded to a multiple of this.
pub const ROUND_TO: u64 = 5;

/// A count as published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Published {
    Count(u64),
    #[serde(serialize_with = "star")]
    Suppressed,
}

fn star<S: serde::Serializer>(serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str("*")
}

impl std::fmt::Display for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Published::Count(n) => write!(f, "{n}"),
            Published::Suppressed => f.write_str("*"),
        }
    }
}

impl Published {
    pub fn is_suppressed(self) -> bool {
        self == Published::Suppressed
    }
}

/// Rounds to the nearest multiple of `ROUND_TO`, halves up.
fn round(n: u64) -> u64 {
    (n + ROUND_TO / 2) / ROUND_TO * ROUND_TO
}

/// One count on its own (primary suppression and rounding).
pub fn publish_count(n: u64) -> Published {
    match n {
        0 => Published::Count(0),
        1..=SUPPRESS_AT_OR_BELOW => Published::Suppressed,
        _ => Published::Count(round(n)),
    }
}

/// A group of cells with its total: the cells published with primary and secondary
/// suppression, and the total published from its raw value.
pub fn publish_group(cells: &[u64]) -> (Vec<Published>, Published) {
    let total: u64 = cells.iter().sum();
    let mut published: Vec<Published> = cells.iter().map(|&n| publish_count(n)).collect();
    let suppressed = published.iter().filter(|p| p.is_suppressed()).count();
    let total_published = publish_count(total);
    if suppressed == 1 && !total_published.is_suppressed() {
        // Suppress the smallest shown non-zero cell so that the lone `*` cannot be isolated.
        let partner = cells
            .iter()
            .enumerate()
            .filter(|(i, n)| **n > 0 && !published[*i].is_suppressed())
            .min_by_key(|(i, n)| (**n, *i))
            .map(|(i, _)| i);
        if let Some(i) = partner {
            published[i] = Published::Suppressed;
        }
    }
    (published, total_published)
}

/// A rate per `per` (e.g. 100 for percent), shown only when both counts are shown; from raw
/// counts, to one decimal place.
pub fn publish_rate(numerator: u64, denominator: u64, per: f64) -> Option<f64> {
    if denominator == 0
        || publish_count(numerator).is_suppressed()
        || publish_count(denominator).is_suppressed()
    {
        return None;
    }
    Some((numerator as f64 / denominator as f64 * per * 10.0).round() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counts_are_suppressed_from_one_to_seven_and_rounded_to_fives() {
        let shown: Vec<String> = [0, 1, 7, 8, 10, 12, 13, 102, 103]
            .iter()
            .map(|&n| publish_count(n).to_string())
            .collect();
        assert_eq!(shown, ["0", "*", "*", "10", "10", "10", "15", "100", "105"]);
        assert_eq!(
            serde_json::to_string(&[publish_count(3), publish_count(9)]).unwrap_or_default(),
            "[\"*\",10]"
        );
    }

    #[test]
    fn a_lone_suppressed_cell_takes_the_smallest_other_with_it() {
        let (cells, total) = publish_group(&[40, 3, 12, 9, 0]);
        assert_eq!(total, Published::Count(65));
        assert_eq!(
            cells,
            [
                Published::Count(40),
                Published::Suppressed,
                Published::Count(10),
                Published::Suppressed,
                Published::Count(0)
            ]
        );
        // Two suppressed already: nothing more is hidden.
        let (cells, _) = publish_group(&[40, 3, 2, 9]);
        assert_eq!(cells.iter().filter(|c| c.is_suppressed()).count(), 2);
        // A suppressed total protects the cells itself.
        let (cells, total) = publish_group(&[3, 0]);
        assert_eq!(
            (cells[0], total),
            (Published::Suppressed, Published::Suppressed)
        );
    }

    #[test]
    fn rates_need_both_counts_shown() {
        assert_eq!(publish_rate(3, 100, 100.0), None);
        assert_eq!(publish_rate(12, 5, 100.0), None);
        assert_eq!(publish_rate(12, 400, 100.0), Some(3.0));
        assert_eq!(publish_rate(0, 0, 100.0), None);
    }

    /// Every raw group of `len` cells with values below `max` that publishes as `published`.
    fn consistent(published: &[Published], total: Published, max: u64) -> Vec<Vec<u64>> {
        let len = published.len();
        let mut found = Vec::new();
        let mut cells = vec![0u64; len];
        loop {
            if publish_group(&cells) == (published.to_vec(), total) {
                found.push(cells.clone());
            }
            let mut i = 0;
            loop {
                if i == len {
                    return found;
                }
                cells[i] += 1;
                if cells[i] < max {
                    break;
                }
                cells[i] = 0;
                i += 1;
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever an attacker knows of the published group and total, every suppressed cell
        /// stays ambiguous: at least two raw values are consistent with what was shown.
        #[test]
        fn no_suppressed_cell_can_be_recovered_by_differencing(cells in proptest::collection::vec(0u64..30, 2..4)) {
            let (published, total) = publish_group(&cells);
            let candidates = consistent(&published, total, 30);
            prop_assert!(candidates.contains(&cells));
            for (i, p) in published.iter().enumerate() {
                if p.is_suppressed() {
                    let values: std::collections::BTreeSet<u64> =
                        candidates.iter().map(|c| c[i]).collect();
                    prop_assert!(values.len() >= 2, "cell {} of {:?} is pinned to {:?}", i, cells, values);
                    prop_assert!(!values.contains(&0) || cells[i] == 0 || values.len() >= 2);
                }
            }
        }

        #[test]
        fn shown_counts_are_multiples_of_five_within_two_of_the_truth(n in 0u64..1_000_000) {
            match publish_count(n) {
                Published::Count(shown) => {
                    prop_assert_eq!(shown % ROUND_TO, 0);
                    prop_assert!(shown.abs_diff(n) <= 2);
                    prop_assert!(n == 0 || n > SUPPRESS_AT_OR_BELOW);
                }
                Published::Suppressed => prop_assert!((1..=SUPPRESS_AT_OR_BELOW).contains(&n)),
            }
        }
    }
}
