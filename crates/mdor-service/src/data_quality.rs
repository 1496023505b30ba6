//! Data quality for providers (issue 5 part 5): per provider and month, the procedures the
//! registry holds against the procedures the provider was expected to perform (completeness,
//! against the national target of 90%), its bulk submissions and what became of their
//! records, the fields its rejected records failed on, and the records with open follow-up
//! flags. Expected activity is loaded by the operator from a CSV file
//! (`load_expected_activity`, `mdor activity load`); the layout is in `docs/data-quality.md`.
//!
//! The report is the provider's own view of its data, not a publication: counts are exact,
//! without the small-number suppression of feedback reports, and only the provider itself,
//! regulators and administrators may read it.

use std::collections::HashMap;
use std::io::Read;

use chrono::NaiveDate;
use serde::Serialize;

use mdor_domain::record::FieldError;
use mdor_domain::{Month, OdsCode};
use mdor_store::{
    ExpectedActivity, FieldErrorCount, OpenFlagCount, OrganisationId, OrganisationKind,
    SubmissionMonth,
};

use crate::auth::Principal;
use crate::ctx::Ctx;
use crate::error::ServiceError;
use crate::policy::{self, Action};

/// The national target: providers should submit at least 90% of the procedures they perform.
pub const COMPLETENESS_TARGET_PERCENT: u32 = 90;
/// The months a report covers when none are asked for.
pub const DEFAULT_REPORT_MONTHS: u32 = 12;
/// The longest range one report covers (ten years), which bounds the response.
pub const MAX_REPORT_MONTHS: u32 = 120;
/// The expected activity file's header, exactly.
pub const EXPECTED_ACTIVITY_HEADER: [&str; 3] = ["ods_code", "month", "expected_procedures"];

/// The months a report covers, `from` to `to` inclusive: never empty and at most
/// `MAX_REPORT_MONTHS` long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthRange {
    from: Month,
    to: Month,
}

impl MonthRange {
    /// Checks the range; a bad one is `Invalid` naming `from` or `to`.
    pub fn new(from: Month, to: Month) -> Result<MonthRange, ServiceError> {
        if to < from {
            return Err(ServiceError::Invalid(vec![FieldError::new(
                "to",
                "range_reversed",
                format!("to ({to}) is before from ({from})"),
            )]));
        }
        if from.months_through(to) > MAX_REPORT_MONTHS {
            return Err(ServiceError::Invalid(vec![FieldError::new(
                "to",
                "range_too_long",
                format!(
                    "a report covers at most {MAX_REPORT_MONTHS} months; {from} to {to} is longer"
                ),
            )]));
        }
        Ok(MonthRange { from, to })
    }

    /// The `DEFAULT_REPORT_MONTHS` complete months before the one `today` is in: the current
    /// month is left out because its activity is still being submitted, and would always
    /// show as below target.
    pub fn last_complete_months(today: NaiveDate) -> MonthRange {
        let to = Month::of(today).previous();
        let mut from = to;
        for _ in 1..DEFAULT_REPORT_MONTHS {
            from = from.previous();
        }
        MonthRange { from, to }
    }

    /// The range a request asks for: `from` alone runs to the last complete month (or to
    /// `from` itself when that is later); `to` alone covers the twelve months ending there.
    pub fn requested(
        from: Option<Month>,
        to: Option<Month>,
        today: NaiveDate,
    ) -> Result<MonthRange, ServiceError> {
        let default = MonthRange::last_complete_months(today);
        match (from, to) {
            (None, None) => Ok(default),
            (Some(from), Some(to)) => MonthRange::new(from, to),
            (Some(from), None) => MonthRange::new(from, default.to.max(from)),
            (None, Some(to)) => {
                let mut from = to;
                for _ in 1..DEFAULT_REPORT_MONTHS {
                    from = from.previous();
                }
                MonthRange::new(from, to)
            }
        }
    }

    pub fn from(&self) -> Month {
        self.from
    }

    pub fn to(&self) -> Month {
        self.to
    }
}

/// One provider's data quality over a range of months.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderDataQuality {
    pub provider: String,
    pub provider_name: String,
    pub from: Month,
    pub to: Month,
    pub completeness_target_percent: u32,
    /// Every month of the range, oldest first, including months with no activity.
    pub months: Vec<MonthQuality>,
    /// Over the months that have an expected figure.
    pub overall: Completeness,
    /// Months whose completeness is below the target.
    pub months_below_target: Vec<Month>,
    /// Months with no expected figure loaded: their completeness is unknown, not 100%.
    pub months_without_expected_activity: Vec<Month>,
    /// Records submitted (accepted or rejected) in the range, the denominator of error rates.
    pub records_submitted: u64,
    /// Rejected records per field and code, most frequent first.
    pub errors_by_field: Vec<FieldErrorRate>,
    /// Open follow-up flags on procedures dated in the range, by flag.
    pub open_flags: Vec<OpenFlagCount>,
    /// Rejected records still awaiting correction in the quarantine, whenever received.
    pub open_quarantine: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MonthQuality {
    pub month: Month,
    /// Procedures held with a procedure date in this month, by any route.
    pub procedures_received: u64,
    pub expected_procedures: Option<u64>,
    /// Received ÷ expected, as a percentage to one decimal; `None` without an expected
    /// figure or when it is zero. May exceed 100.
    pub completeness_percent: Option<f64>,
    pub below_target: bool,
    pub procedures_with_open_flags: u64,
    /// Bulk submissions received this month and what their records became.
    pub submissions: SubmissionMonth,
}

#[derive(Debug, Clone, Serialize)]
pub struct Completeness {
    pub procedures_received: u64,
    pub expected_procedures: u64,
    pub completeness_percent: Option<f64>,
    pub below_target: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct FieldErrorRate {
    pub field: String,
    pub code: String,
    /// Rejected records with this error.
    pub records: u64,
    /// Of the records submitted in the range, as a percentage to one decimal.
    pub percent_of_submitted: Option<f64>,
}

/// The data quality report of provider `ods` over `range`. A provider's token reads only its
/// own provider's report; another provider's, like an unknown ODS code or an organisation that
/// is not a provider, is `NotFound`. Regulators, registry analysts and administrators read any
/// (`policy::POLICIES`, `ReadDataQuality`).
#[tracing::instrument(skip_all, fields(provider = ods.as_str(), from = %range.from, to = %range.to))]
pub async fn provider_data_quality(
    ctx: &Ctx,
    principal: &Principal,
    ods: &OdsCode,
    range: MonthRange,
) -> Result<ProviderDataQuality, ServiceError> {
    let not_found = ServiceError::NotFound { what: "provider" };
    policy::authorize_some(principal, Action::ReadDataQuality)?;
    let organisation = match ctx.store.organisation_by_ods(ods).await? {
        Some(o) if o.kind == OrganisationKind::Provider => o,
        _ => return Err(not_found),
    };
    if !principal.reaches(Action::ReadDataQuality, organisation.id) {
        return Err(not_found);
    }
    let activity = ctx
        .store
        .provider_activity(organisation.id, range.from, range.to)
        .await?;

    let mut months = Vec::new();
    let mut overall_received = 0;
    let mut overall_expected = 0;
    let mut months_below_target = Vec::new();
    let mut months_without_expected_activity = Vec::new();
    let mut records_submitted = 0;
    for month in range.from.through(range.to) {
        let received = activity.procedures.get(&month).copied().unwrap_or(0);
        let expected = activity.expected.get(&month).copied();
        let submissions = activity
            .submissions
            .get(&month)
            .copied()
            .unwrap_or_default();
        records_submitted +=
            submissions.accepted + submissions.accepted_with_warnings + submissions.rejected;
        match expected {
            Some(expected) => {
                overall_received += received;
                overall_expected += expected;
            }
            None => months_without_expected_activity.push(month),
        }
        let below_target = expected.is_some_and(|e| below_target(received, e));
        if below_target {
            months_below_target.push(month);
        }
        months.push(MonthQuality {
            month,
            procedures_received: received,
            expected_procedures: expected,
            completeness_percent: expected.and_then(|e| percent(received, e)),
            below_target,
            procedures_with_open_flags: activity
                .procedures_with_open_flags
                .get(&month)
                .copied()
                .unwrap_or(0),
            submissions,
        });
    }
    let errors_by_field = activity
        .rejected_errors
        .into_iter()
        .map(
            |FieldErrorCount {
                 field,
                 code,
                 records,
             }| FieldErrorRate {
                field,
                code,
                records,
                percent_of_submitted: percent(records, records_submitted),
            },
        )
        .collect();
    Ok(ProviderDataQuality {
        provider: organisation.ods_code,
        provider_name: organisation.name,
        from: range.from,
        to: range.to,
        completeness_target_percent: COMPLETENESS_TARGET_PERCENT,
        months,
        overall: Completeness {
            procedures_received: overall_received,
            expected_procedures: overall_expected,
            completeness_percent: percent(overall_received, overall_expected),
            below_target: below_target(overall_received, overall_expected),
        },
        months_below_target,
        months_without_expected_activity,
        records_submitted,
        errors_by_field,
        open_flags: activity.open_flags,
        open_quarantine: activity.open_quarantine,
    })
}

/// The report's months as CSV, one row per month and an `overall` row, for spreadsheets;
/// errors by field and open flags are in the JSON form only.
pub fn data_quality_csv(report: &ProviderDataQuality) -> String {
    let mut out = String::from(
        "provider,month,procedures_received,expected_procedures,completeness_percent,\
         target_percent,below_target,procedures_with_open_flags,jobs,records_accepted,\
         records_accepted_with_warnings,records_rejected\n",
    );
    let shown = |p: Option<f64>| p.map(|p| format!("{p:.1}")).unwrap_or_default();
    let target = report.completeness_target_percent;
    // The ODS code is 3 to 10 letters and digits, so it needs no quoting or escaping.
    let provider = &report.provider;
    for m in &report.months {
        let s = &m.submissions;
        out.push_str(&format!(
            "{provider},{},{},{},{},{target},{},{},{},{},{},{}\n",
            m.month,
            m.procedures_received,
            m.expected_procedures
                .map(|e| e.to_string())
                .unwrap_or_default(),
            shown(m.completeness_percent),
            m.below_target,
            m.procedures_with_open_flags,
            s.jobs,
            s.accepted,
            s.accepted_with_warnings,
            s.rejected,
        ));
    }
    let o = &report.overall;
    let total = |f: fn(&SubmissionMonth) -> u64| -> u64 {
        report.months.iter().map(|m| f(&m.submissions)).sum()
    };
    out.push_str(&format!(
        "{provider},overall,{},{},{},{target},{},{},{},{},{},{}\n",
        o.procedures_received,
        o.expected_procedures,
        shown(o.completeness_percent),
        o.below_target,
        report
            .months
            .iter()
            .map(|m| m.procedures_with_open_flags)
            .sum::<u64>(),
        total(|s| s.jobs),
        total(|s| s.accepted),
        total(|s| s.accepted_with_warnings),
        total(|s| s.rejected),
    ));
    out
}

/// Loads expected procedure counts from CSV (`ods_code,month,expected_procedures`, one
/// provider and month a row); an operator task. Every row is checked first and every problem
/// reported with its line and field; nothing is written unless all rows are good, and then
/// all are written in one transaction, each replacing any figure stored for its provider and
/// month. Returns how many figures were written.
#[tracing::instrument(skip_all)]
pub async fn load_expected_activity(ctx: &Ctx, input: impl Read) -> Result<u64, ServiceError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let header = reader
        .headers()
        .map_err(|e| ServiceError::Input(format!("expected activity csv header: {e}")))?
        .clone();
    if header.iter().collect::<Vec<_>>() != EXPECTED_ACTIVITY_HEADER {
        return Err(ServiceError::Input(format!(
            "expected activity csv header must be exactly: {}",
            EXPECTED_ACTIVITY_HEADER.join(",")
        )));
    }
    let mut providers: HashMap<String, Option<OrganisationId>> = HashMap::new();
    let mut first_line: HashMap<(OrganisationId, Month), usize> = HashMap::new();
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (index, record) in reader.records().enumerate() {
        // Line 1 is the header.
        let line = index + 2;
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                errors.push(FieldError::new(
                    format!("line {line}"),
                    "malformed_row",
                    e.to_string(),
                ));
                continue;
            }
        };
        let field = |name: &str| format!("line {line}: {name}");
        let organisation = match OdsCode::parse(&record[0]) {
            Err(e) => {
                errors.push(FieldError::new(
                    field("ods_code"),
                    "invalid_ods_code",
                    format!("ods code '{}' {}", &record[0], e.problem),
                ));
                None
            }
            Ok(ods) => {
                let known = match providers.get(ods.as_str()) {
                    Some(known) => *known,
                    None => {
                        let found = ctx
                            .store
                            .organisation_by_ods(&ods)
                            .await?
                            .filter(|o| o.kind == OrganisationKind::Provider)
                            .map(|o| o.id);
                        providers.insert(ods.as_str().to_string(), found);
                        found
                    }
                };
                if known.is_none() {
                    errors.push(FieldError::new(
                        field("ods_code"),
                        "unknown_provider",
                        format!("no provider with ods code {} is registered", ods.as_str()),
                    ));
                }
                known
            }
        };
        let month = match Month::parse(&record[1]) {
            Ok(month) => Some(month),
            Err(e) => {
                errors.push(FieldError::new(
                    field("month"),
                    "invalid_month",
                    format!("month '{}' {e}", &record[1]),
                ));
                None
            }
        };
        let count = &record[2];
        let expected = match count.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                let negative = count.parse::<i64>().is_ok_and(|n| n < 0);
                errors.push(if negative {
                    FieldError::new(
                        field("expected_procedures"),
                        "negative_count",
                        format!("expected procedures {count} is negative"),
                    )
                } else {
                    FieldError::new(
                        field("expected_procedures"),
                        "invalid_count",
                        format!("expected procedures '{count}' is not a whole number"),
                    )
                });
                None
            }
        };
        let (Some(organisation), Some(month), Some(expected_procedures)) =
            (organisation, month, expected)
        else {
            continue;
        };
        // Two figures for one provider and month in one file leave the intended one unclear.
        if let Some(earlier) = first_line.insert((organisation, month), line) {
            errors.push(FieldError::new(
                field("month"),
                "duplicate_month",
                format!("{} {month} is already given on line {earlier}", &record[0]),
            ));
            continue;
        }
        rows.push(ExpectedActivity {
            organisation,
            month,
            expected_procedures,
        });
    }
    if !errors.is_empty() {
        return Err(ServiceError::Invalid(errors));
    }
    Ok(ctx.store.upsert_expected_activity(&rows, ctx.now()).await?)
}

/// Whether `received` of `expected` misses the target, in integers so that exactly 90% is
/// on target. Nothing expected is never below target.
fn below_target(received: u64, expected: u64) -> bool {
    u128::from(received) * 100 < u128::from(expected) * u128::from(COMPLETENESS_TARGET_PERCENT)
}

/// `part` of `whole` as a percentage rounded to one decimal; `None` when `whole` is zero.
fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 * 1000.0 / whole as f64).round() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn month(text: &str) -> Month {
        Month::parse(text).unwrap()
    }

    #[test]
    fn exactly_ninety_percent_is_on_target_and_one_fewer_is_below() {
        assert!(!below_target(9, 10));
        assert!(below_target(89, 99));
        assert!(!below_target(90, 100));
        assert!(below_target(899, 1000));
        assert!(!below_target(0, 0));
        assert_eq!(percent(2, 3), Some(66.7));
        assert_eq!(percent(11, 10), Some(110.0));
        assert_eq!(percent(1, 0), None);
    }

    #[test]
    fn the_default_range_is_the_twelve_complete_months_before_today() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let range = MonthRange::last_complete_months(today);
        assert_eq!(
            (range.from(), range.to()),
            (month("2025-11"), month("2026-10"))
        );
        let range = MonthRange::requested(None, Some(month("2026-03")), today).unwrap();
        assert_eq!(
            (range.from(), range.to()),
            (month("2025-04"), month("2026-03"))
        );
        let range = MonthRange::requested(Some(month("2026-06")), None, today).unwrap();
        assert_eq!(
            (range.from(), range.to()),
            (month("2026-06"), month("2026-10"))
        );
    }

    #[test]
    fn reversed_and_overlong_ranges_are_refused_naming_to() {
        for (from, to, code) in [
            ("2026-05", "2026-04", "range_reversed"),
            ("2016-01", "2026-01", "range_too_long"),
        ] {
            match MonthRange::new(month(from), month(to)) {
                Err(ServiceError::Invalid(errors)) => {
                    assert_eq!(errors[0].field, "to");
                    assert_eq!(errors[0].code, code);
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(MonthRange::new(month("2016-02"), month("2026-01")).is_ok());
    }
}
