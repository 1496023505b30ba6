//! Survival and surveillance statistics for the medical device outcome registry, over plain data.
//!
//! Every routine is a pure function: validated input in, result or [`StatsError`] out. There is no
//! I/O, no logging, and no dependency on other workspace crates.
//!
//! ```
//! use mdor_stats::{KaplanMeierOptions, SurvivalData, kaplan_meier};
//!
//! // Years to revision (true) or end of follow-up (false) of six implants.
//! let data = SurvivalData::new(&[1.5, 2.0, 2.0, 4.0, 5.5, 7.0], &[true, true, false, false, true, false])?;
//! let curve = kaplan_meier(&data, KaplanMeierOptions::default())?;
//! let at_five = curve.cumulative_revision_at(&[5.0])[0].expect("5 years is within follow-up");
//! assert!((at_five.estimate - (1.0 - 5.0 / 6.0 * 4.0 / 5.0)).abs() < 1e-12);
//! # Ok::<(), mdor_stats::StatsError>(())
//! ```

pub mod aalen_johansen;
pub mod cox;
pub mod cusum;
pub mod error;
pub mod funnel;
pub mod input;
pub mod kaplan_meier;
mod linalg;
pub mod logistic;
pub mod logrank;
pub mod maxsprt;
pub mod nelson_aalen;
pub mod rates;
mod risk_table;
pub mod special;
#[cfg(test)]
mod test_data;

pub use aalen_johansen::{CauseIncidence, CompetingRisksData, CumulativeIncidence, aalen_johansen};
pub use cox::{ChiSquareTest, CoxDesign, CoxFit, CoxOptions, Ties, cox_regression};
pub use cusum::{
    CusumChart, average_run_length, bernoulli_cusum, false_alarm_probability,
    limit_for_false_alarm, limit_for_run_length, risk_adjusted_cusum, vlad,
};
pub use error::StatsError;
pub use funnel::{
    Funnel, FunnelOptions, FunnelUnit, FunnelZone, LimitMethod, Overdispersion, funnel_proportions,
    funnel_ratios,
};
pub use input::SurvivalData;
pub use kaplan_meier::{
    CiTransform, GroupCurve, KaplanMeier, KaplanMeierOptions, QuantileEstimate, RestrictedMean,
    SurvivalPoint, kaplan_meier, kaplan_meier_by_group,
};
pub use logistic::{LogisticFit, LogisticOptions, logistic_regression};
pub use logrank::{LogRankTest, logrank_test};
pub use maxsprt::{
    BinomialDesign, Looks, PoissonDesign, binomial_critical_value, binomial_signal_probability,
    poisson_critical_value, poisson_signal_probability,
};
pub use nelson_aalen::{NelsonAalen, nelson_aalen};
pub use rates::{
    ComponentAssessment, ComponentExposure, NjrLevel, Rate, aoanjrr_stage1, clopper_pearson,
    njr_outliers, poisson_upper_p_value, revision_rate,
};
