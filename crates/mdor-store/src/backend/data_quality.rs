//! Providers' data quality figures and their expected activity, written once for both engines
//! (see `recall_cases` for why a macro expands the same bodies per connection type).
//!
//! Counts are grouped by day or read per job and bucketed into months in Rust: taking the month
//! of a date or timestamp is spelt differently by each engine (and on PostgreSQL depends on the
//! session's time zone), whereas comparing with bound dates and instants is portable. Only the
//! expansion of each rejected record's JSON error array differs, so each backend passes its own
//! `errors_by_field` statement.

/// Procedures of provider `$1` dated in [`$2`, `$3`), per procedure date.
pub(crate) const PROCEDURES_BY_DAY: &str = "SELECT procedure_date, COUNT(*) AS procedures \
     FROM procedure WHERE provider_id = $1 AND procedure_date >= $2 AND procedure_date < $3 \
     GROUP BY procedure_date";

/// Of those, the procedures with at least one open follow-up flag, per procedure date.
pub(crate) const FLAGGED_PROCEDURES_BY_DAY: &str = "SELECT p.procedure_date, \
       COUNT(DISTINCT p.id) AS procedures \
     FROM procedure p \
     JOIN implant i ON i.procedure_id = p.id \
     JOIN follow_up_flag f ON f.implant_id = i.id \
     WHERE p.provider_id = $1 AND p.procedure_date >= $2 AND p.procedure_date < $3 \
       AND f.resolved_at IS NULL \
     GROUP BY p.procedure_date";

/// Open follow-up flags of those procedures by flag, with the procedures and implants they are on.
pub(crate) const OPEN_FLAGS: &str = "SELECT f.flag, COUNT(DISTINCT p.id) AS procedures, \
       COUNT(DISTINCT i.id) AS implants \
     FROM procedure p \
     JOIN implant i ON i.procedure_id = p.id \
     JOIN follow_up_flag f ON f.implant_id = i.id \
     WHERE p.provider_id = $1 AND p.procedure_date >= $2 AND p.procedure_date < $3 \
       AND f.resolved_at IS NULL \
     GROUP BY f.flag ORDER BY f.flag";

/// Organisation `$1`'s jobs received in [`$2`, `$3`) with what their records became so far.
pub(crate) const JOBS: &str = "SELECT created_at, CAST(accepted AS BIGINT) AS accepted, \
       CAST(accepted_with_warnings AS BIGINT) AS accepted_with_warnings, \
       CAST(rejected AS BIGINT) AS rejected \
     FROM submission_job WHERE organisation_id = $1 AND created_at >= $2 AND created_at < $3";

pub(crate) const EXPECTED: &str = "SELECT month, CAST(expected_procedures AS BIGINT) AS expected \
     FROM expected_activity WHERE organisation_id = $1 AND month >= $2 AND month <= $3";

pub(crate) const OPEN_QUARANTINE: &str = "SELECT COUNT(*) FROM submission_record \
     WHERE organisation_id = $1 AND outcome = 'rejected' AND resolved_at IS NULL";

pub(crate) const EXPECTED_UPSERT: &str = "INSERT INTO expected_activity \
       (organisation_id, month, expected_procedures, loaded_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (organisation_id, month) DO UPDATE SET \
       expected_procedures = excluded.expected_procedures, loaded_at = excluded.loaded_at";

/// Rejected records of organisation `$1`'s jobs received in [`$2`, `$3`), counted once per
/// (field, code) of their errors, on SQLite (`json_each` over the stored array). A record's
/// organisation is its job's; filtering on the job lets both engines walk the organisation's
/// jobs by index and their records by `(job_id, line)`, where `submission_record` has no index
/// on the organisation alone.
pub(crate) const ERRORS_BY_FIELD_SQLITE: &str = "SELECT \
       json_extract(e.value, '$.field') AS field, json_extract(e.value, '$.code') AS code, \
       COUNT(DISTINCT r.id) AS records \
     FROM submission_record r \
     JOIN submission_job j ON j.id = r.job_id \
     JOIN json_each(r.messages) e \
     WHERE j.organisation_id = $1 AND r.outcome = 'rejected' \
       AND j.created_at >= $2 AND j.created_at < $3 \
     GROUP BY 1, 2 ORDER BY records DESC, field, code";

/// The same on PostgreSQL, where the array is text to be cast to `jsonb`.
pub(crate) const ERRORS_BY_FIELD_POSTGRES: &str = "SELECT \
       e ->> 'field' AS field, e ->> 'code' AS code, COUNT(DISTINCT r.id) AS records \
     FROM submission_record r \
     JOIN submission_job j ON j.id = r.job_id \
     CROSS JOIN LATERAL jsonb_array_elements(r.messages::jsonb) e \
     WHERE j.organisation_id = $1 AND r.outcome = 'rejected' \
       AND j.created_at >= $2 AND j.created_at < $3 \
     GROUP BY 1, 2 ORDER BY records DESC, field, code";

/// Expands, inside a backend module, `provider_activity` and `upsert_expected_activity` for
/// `$conn`, with the backend's statement for counting rejected records' errors by field.
macro_rules! data_quality_queries {
    ($conn:ty, $errors_by_field:expr) => {
        use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
        use mdor_domain::Month;

        use $crate::backend::data_quality as dq;

        /// Reads every figure of `organisation` for the months `from` to `to`; the caller
        /// runs it in one transaction so that the figures agree with each other.
        pub(super) async fn provider_activity(
            conn: &mut $conn,
            organisation: OrganisationId,
            from: Month,
            to: Month,
        ) -> StoreResult<ProviderActivity> {
            let first_day = from.first_day();
            let end_day = to.next().first_day();
            let start =
                DateTime::<Utc>::from_naive_utc_and_offset(first_day.and_time(NaiveTime::MIN), Utc);
            let end =
                DateTime::<Utc>::from_naive_utc_and_offset(end_day.and_time(NaiveTime::MIN), Utc);
            let mut activity = ProviderActivity::default();

            let days: Vec<(NaiveDate, i64)> = sqlx::query_as(dq::PROCEDURES_BY_DAY)
                .bind(organisation.0)
                .bind(first_day)
                .bind(end_day)
                .fetch_all(&mut *conn)
                .await?;
            for (day, n) in days {
                *activity.procedures.entry(Month::of(day)).or_default() += count(n)?;
            }
            let days: Vec<(NaiveDate, i64)> = sqlx::query_as(dq::FLAGGED_PROCEDURES_BY_DAY)
                .bind(organisation.0)
                .bind(first_day)
                .bind(end_day)
                .fetch_all(&mut *conn)
                .await?;
            for (day, n) in days {
                *activity
                    .procedures_with_open_flags
                    .entry(Month::of(day))
                    .or_default() += count(n)?;
            }
            let flags: Vec<(String, i64, i64)> = sqlx::query_as(dq::OPEN_FLAGS)
                .bind(organisation.0)
                .bind(first_day)
                .bind(end_day)
                .fetch_all(&mut *conn)
                .await?;
            for (flag, procedures, implants) in flags {
                activity.open_flags.push(OpenFlagCount {
                    flag,
                    procedures: count(procedures)?,
                    implants: count(implants)?,
                });
            }

            let jobs: Vec<(DateTime<Utc>, i64, i64, i64)> = sqlx::query_as(dq::JOBS)
                .bind(organisation.0)
                .bind(start)
                .bind(end)
                .fetch_all(&mut *conn)
                .await?;
            for (received, accepted, with_warnings, rejected) in jobs {
                let month = activity
                    .submissions
                    .entry(Month::of(received.date_naive()))
                    .or_default();
                month.jobs += 1;
                month.accepted += count(accepted)?;
                month.accepted_with_warnings += count(with_warnings)?;
                month.rejected += count(rejected)?;
            }
            let errors: Vec<(Option<String>, Option<String>, i64)> =
                sqlx::query_as($errors_by_field)
                    .bind(organisation.0)
                    .bind(start)
                    .bind(end)
                    .fetch_all(&mut *conn)
                    .await?;
            for (field, code, records) in errors {
                activity.rejected_errors.push(FieldErrorCount {
                    // Every error the service writes has both; an empty string marks one
                    // that somehow lacks them rather than dropping its count.
                    field: field.unwrap_or_default(),
                    code: code.unwrap_or_default(),
                    records: count(records)?,
                });
            }
            let open: i64 = sqlx::query_scalar(dq::OPEN_QUARANTINE)
                .bind(organisation.0)
                .fetch_one(&mut *conn)
                .await?;
            activity.open_quarantine = count(open)?;

            let expected: Vec<(String, i64)> = sqlx::query_as(dq::EXPECTED)
                .bind(organisation.0)
                .bind(from.to_string())
                .bind(to.to_string())
                .fetch_all(&mut *conn)
                .await?;
            for (month, n) in expected {
                let month = Month::parse(&month).map_err(|e| {
                    StoreError::Corrupt(format!("expected_activity month '{month}' {e}"))
                })?;
                activity.expected.insert(month, count(n)?);
            }
            Ok(activity)
        }

        /// Inserts each figure, replacing the one stored for the same provider and month.
        pub(super) async fn upsert_expected_activity(
            conn: &mut $conn,
            rows: &[ExpectedActivity],
            loaded_at: DateTime<Utc>,
        ) -> StoreResult<u64> {
            for row in rows {
                sqlx::query(dq::EXPECTED_UPSERT)
                    .bind(row.organisation.0)
                    .bind(row.month.to_string())
                    .bind(i64::from(row.expected_procedures))
                    .bind(loaded_at)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(rows.len() as u64)
        }

        /// Counts come back as signed integers; a negative one means a corrupt row.
        fn count(n: i64) -> StoreResult<u64> {
            u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("negative count {n}")))
        }
    };
}

pub(crate) use data_quality_queries;
