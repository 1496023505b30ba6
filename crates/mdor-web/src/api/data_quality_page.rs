//! The HTML page of a provider's data quality (`?format=html`): a summary, a bar chart of
//! completeness per month against the 90% target drawn as inline SVG, and every figure in
//! tables. No script and no style attribute, so it renders under a `default-src 'self'`
//! content security policy; colour is never the only signal (the table says "below").

use askama::Template;

use mdor_service::ProviderDataQuality;

/// The chart's geometry, in SVG user units.
/// Room on the left for the axis labels (`target 90%`).
const LEFT: u32 = 80;
const TOP: u32 = 24;
const PLOT_HEIGHT: u32 = 160;
const BAR_STEP: u32 = 18;
const BAR_WIDTH: u32 = 12;

#[derive(Template)]
#[template(path = "data_quality.html")]
struct DataQualityPage {
    provider: String,
    provider_name: String,
    from: String,
    to: String,
    target: u32,
    overall: String,
    overall_below: bool,
    below_target: String,
    without_expected: String,
    records_submitted: u64,
    open_quarantine: u64,
    chart: Chart,
    months: Vec<MonthRow>,
    errors: Vec<(String, String, u64, String)>,
    flags: Vec<(String, u64, u64)>,
}

struct MonthRow {
    month: String,
    expected: String,
    received: u64,
    completeness: String,
    status: &'static str,
    flags: u64,
    jobs: u64,
    accepted: u64,
    warnings: u64,
    rejected: u64,
}

struct Chart {
    width: u32,
    height: u32,
    left: u32,
    right: u32,
    top: u32,
    bottom: u32,
    bar_width: u32,
    /// The percentage at the top of the plot: 120, or more when a month exceeds it.
    scale_top: u32,
    target_y: u32,
    bars: Vec<Bar>,
    /// Month labels along the axis: x and `YYYY-MM`, every third month at most.
    ticks: Vec<(u32, String)>,
}

struct Bar {
    x: u32,
    y: u32,
    height: u32,
    /// Whether the month has an expected figure; unknown months show a question mark.
    known: bool,
    below: bool,
    label: String,
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "unknown".into(), |p| format!("{p:.1}%"))
}

fn chart(report: &ProviderDataQuality) -> Chart {
    let highest = report
        .months
        .iter()
        .filter_map(|m| m.completeness_percent)
        .fold(0.0f64, f64::max);
    // Completeness may exceed 100% (more procedures than forecast); keep such bars on the
    // plot, rounded up to the next 20%, without letting one outlier flatten the rest.
    let scale_top = ((highest.min(300.0) / 20.0).ceil() as u32 * 20).max(120);
    let bottom = TOP + PLOT_HEIGHT;
    let y_of = |p: f64| {
        bottom
            - ((p.min(f64::from(scale_top)) / f64::from(scale_top)) * f64::from(PLOT_HEIGHT))
                .round() as u32
    };
    let bars = report
        .months
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let x = LEFT + 4 + i as u32 * BAR_STEP;
            let label = match (m.completeness_percent, m.expected_procedures) {
                (Some(p), Some(e)) => {
                    format!(
                        "{}: {p:.1}% ({} of {e} expected)",
                        m.month, m.procedures_received
                    )
                }
                _ => format!(
                    "{}: {} received, no expected activity loaded",
                    m.month, m.procedures_received
                ),
            };
            match m.completeness_percent {
                Some(p) => {
                    let y = y_of(p);
                    Bar {
                        x,
                        y,
                        height: bottom - y,
                        known: true,
                        below: m.below_target,
                        label,
                    }
                }
                None => Bar {
                    x,
                    y: bottom,
                    height: 0,
                    known: false,
                    below: false,
                    label,
                },
            }
        })
        .collect();
    let every = report.months.len().div_ceil(12).max(1);
    let ticks = report
        .months
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0)
        .map(|(i, m)| (LEFT + 4 + i as u32 * BAR_STEP, m.month.to_string()))
        .collect();
    let right = LEFT + 8 + report.months.len() as u32 * BAR_STEP;
    Chart {
        // Room for the last tick's label.
        width: right + 60,
        height: bottom + 24,
        left: LEFT,
        right,
        top: TOP,
        bottom,
        bar_width: BAR_WIDTH,
        scale_top,
        target_y: y_of(f64::from(report.completeness_target_percent)),
        bars,
        ticks,
    }
}

fn months_list(months: &[mdor_domain::Month]) -> String {
    if months.is_empty() {
        "none".into()
    } else {
        months
            .iter()
            .map(|m| m.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn page(report: &ProviderDataQuality) -> DataQualityPage {
    let overall = match report.overall.completeness_percent {
        Some(p) => format!(
            "{p:.1}% ({} received of {} expected)",
            report.overall.procedures_received, report.overall.expected_procedures
        ),
        None => "unknown: no expected activity is loaded for these months".into(),
    };
    DataQualityPage {
        provider: report.provider.clone(),
        provider_name: report.provider_name.clone(),
        from: report.from.to_string(),
        to: report.to.to_string(),
        target: report.completeness_target_percent,
        overall,
        overall_below: report.overall.below_target,
        below_target: months_list(&report.months_below_target),
        without_expected: months_list(&report.months_without_expected_activity),
        records_submitted: report.records_submitted,
        open_quarantine: report.open_quarantine,
        chart: chart(report),
        months: report
            .months
            .iter()
            .map(|m| MonthRow {
                month: m.month.to_string(),
                expected: m
                    .expected_procedures
                    .map_or_else(|| "not loaded".into(), |e| e.to_string()),
                received: m.procedures_received,
                completeness: percent(m.completeness_percent),
                status: match (m.completeness_percent, m.below_target) {
                    (None, _) => "unknown",
                    (Some(_), true) => "below",
                    (Some(_), false) => "met",
                },
                flags: m.procedures_with_open_flags,
                jobs: m.submissions.jobs,
                accepted: m.submissions.accepted,
                warnings: m.submissions.accepted_with_warnings,
                rejected: m.submissions.rejected,
            })
            .collect(),
        errors: report
            .errors_by_field
            .iter()
            .map(|e| {
                (
                    e.field.clone(),
                    e.code.clone(),
                    e.records,
                    percent(e.percent_of_submitted),
                )
            })
            .collect(),
        flags: report
            .open_flags
            .iter()
            .map(|f| (f.flag.clone(), f.procedures, f.implants))
            .collect(),
    }
}

/// Renders the report as an HTML page (askama escapes every value).
pub fn data_quality_html(report: &ProviderDataQuality) -> Result<String, askama::Error> {
    page(report).render()
}
