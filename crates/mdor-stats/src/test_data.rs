//! Data sets shared by the unit tests of several estimators.

use crate::input::SurvivalData;

/// Freireich et al. (1963): remission times in weeks of the 21 patients on 6-MP
/// (`false` = censored).
pub(crate) const FREIREICH_6MP: [(f64, bool); 21] = [
    (6., true),
    (6., true),
    (6., true),
    (6., false),
    (7., true),
    (9., false),
    (10., true),
    (10., false),
    (11., false),
    (13., true),
    (16., true),
    (17., false),
    (19., false),
    (20., false),
    (22., true),
    (23., true),
    (25., false),
    (32., false),
    (32., false),
    (34., false),
    (35., false),
];

/// Freireich et al. (1963): remission times in weeks of the 21 patients on placebo, all
/// relapsed.
pub(crate) const FREIREICH_PLACEBO: [f64; 21] = [
    1., 1., 2., 2., 3., 4., 4., 5., 5., 8., 8., 8., 8., 11., 11., 12., 12., 15., 17., 22., 23.,
];

/// Both Freireich arms, 6-MP first; with, per row, whether the patient was on placebo.
// Tests may unwrap: the literal data are valid.
#[allow(clippy::unwrap_used)]
pub(crate) fn freireich() -> (SurvivalData, Vec<bool>) {
    let mut time: Vec<f64> = FREIREICH_6MP.iter().map(|r| r.0).collect();
    let mut event: Vec<bool> = FREIREICH_6MP.iter().map(|r| r.1).collect();
    time.extend(FREIREICH_PLACEBO);
    event.extend([true; 21]);
    let placebo = (0..42).map(|i| i >= 21).collect();
    (SurvivalData::new(&time, &event).unwrap(), placebo)
}
