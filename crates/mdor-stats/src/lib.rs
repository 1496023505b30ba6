//! Survival and surveillance statistics for the medical device outcome registry, over plain data.
//!
//! Every routine is a pure function: validated input in, result or [`StatsError`] out. There is no
//! I/O, no logging, and no dependency on other workspace crates.

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

pub use aalen_johansen::{CauseIncidence, CompetingRisksData, CumulativeIncidence, aalen_johansen};
pub use cox::{ChiSquareTest, CoxFit, CoxOptions, Ties, cox_regression};
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
pub use nelson_aalen::{NelsonAalen, nelson_aalen};
pub use rates::{
    ComponentAssessment, ComponentExposure, NjrLevel, Rate, aoanjrr_stage1, clopper_pearson,
    njr_outliers, poisson_upper_p_value, revision_rate,
};
