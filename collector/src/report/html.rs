//! The report as one self-contained HTML page: inline CSS (with print
//! rules for A4 and a page break before each section) and inline SVG
//! charts, no scripts, fonts, images or links to fetch, so the file can be
//! attached to a county's monthly report as it is or printed to PDF.
//! Every value goes through maud's escaping.

use maud::{DOCTYPE, Markup, html};

use super::csv::compliance_key;
use super::texts::Texts;
use super::{AvailabilityRow, Compliance, Durations, Report};

const STYLE: &str = "
@page { size: A4; margin: 14mm 12mm; }
body { font-family: 'Noto Sans CJK SC', 'Noto Sans SC', 'Source Han Sans SC', 'Microsoft YaHei', sans-serif;
  color: #1d2733; margin: 0 auto; max-width: 1100px; padding: 16px; font-size: 13px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; border-bottom: 2px solid #1f5fa8; padding-bottom: 3px; margin-top: 28px; }
.meta { color: #52606d; margin-bottom: 12px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 12px; }
th, td { border: 1px solid #c8d1da; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #eef3f8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #17683a; font-weight: bold; }
.fail { color: #b42318; font-weight: bold; }
.no_data { color: #6b7785; font-weight: bold; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { border: 1px solid #c8d1da; border-radius: 4px; padding: 8px 12px; min-width: 150px; }
.card b { display: block; font-size: 20px; }
svg text { font-size: 11px; fill: #1d2733; }
@media print {
  body { max-width: none; padding: 0; font-size: 10.5pt; }
  section { break-before: page; }
  section.first { break-before: auto; }
  tr, .card { break-inside: avoid; }
  thead { display: table-header-group; }
}
";

/// The whole page.
pub fn render(report: &Report, texts: &Texts) -> String {
    let word = |key: &str| texts.word(key);
    let page = html! {
        (DOCTYPE)
        html lang=(if report.language == "zh" { "zh-CN" } else { "en" }) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (word("title")) " " (report.period.from) }
                style { (STYLE) }
            }
            body { (sections(report, texts)) }
        }
    };
    page.into_string()
}

/// The report's sections, for the page above and the console's Reports
/// page (which has its own stylesheet).
pub fn sections(report: &Report, texts: &Texts) -> Markup {
    let word = |key: &str| texts.word(key);
    let department = report
        .department
        .clone()
        .unwrap_or_else(|| word("all_departments").to_string());
    html! {
                section.first id="summary" {
                    h1 { (word("title")) }
                    div.meta {
                        (word("period")) ": " (report.period.from) " — " (report.period.to)
                        " · " (word("timezone")) ": " (report.period.timezone)
                        " · " (word("department")) ": " (department)
                        " · " (word("generated")) ": " (report.generated_at)
                    }
                    div.cards {
                        @for row in &report.departments {
                            div.card {
                                (named(&row.department, texts))
                                b { (percent(row.availability_percent)) }
                                (word("downtime")) ": " (row.downtime_minutes)
                            }
                        }
                        div.card {
                            (word("incidents"))
                            b { (report.security.incidents) }
                            (word("previous")) ": " (report.security.previous.incidents)
                        }
                    }
                    h2 { (word("departments")) }
                    table {
                        thead { tr {
                            th { (word("department")) } th { (word("services_count")) }
                            th { (word("availability")) } th { (word("downtime")) } th { (word("outage_count")) }
                        } }
                        tbody { @for row in &report.departments { tr {
                            td { (named(&row.department, texts)) }
                            td.num { (row.services) }
                            td.num { (percent(row.availability_percent)) }
                            td.num { (row.downtime_minutes) }
                            td.num { (row.outages) }
                        } } }
                    }
                    (bar_chart(&report.services, texts))
                }
                section id="services" {
                    h2 { (word("services")) }
                    (availability_table(&report.services, texts, true))
                    h2 { (word("certificates")) }
                    @if report.certificates.is_empty() { p { (word("none")) } } @else {
                        table {
                            thead { tr {
                                th { (word("department")) } th { (word("service")) } th { (word("name")) }
                                th { (word("target")) } th { (word("expires")) } th { (word("days_left")) }
                            } }
                            tbody { @for row in &report.certificates { tr {
                                td { (named(&row.department, texts)) } td { (row.service) } td { (row.name) }
                                td { (row.target) } td { (row.expires) } td.num { (row.days_left) }
                            } } }
                        }
                    }
                }
                section id="outages" {
                    h2 { (word("outages")) }
                    @if report.outages.is_empty() { p { (word("none")) } } @else {
                        table {
                            thead { tr {
                                th { (word("kind")) } th { (word("department")) } th { (word("service")) }
                                th { (word("name")) } th { (word("target")) } th { (word("start")) }
                                th { (word("end")) } th { (word("minutes")) }
                            } }
                            tbody { @for row in &report.outages { tr {
                                td { (word(row.kind.as_str())) } td { (named(&row.department, texts)) }
                                td { (row.service) } td { (row.name) } td { (row.target) }
                                td { (row.start) }
                                td { (row.end.clone().unwrap_or_else(|| word("ongoing").to_string())) }
                                td.num { (row.minutes) }
                            } } }
                        }
                    }
                }
                section id="hosts" {
                    h2 { (word("hosts")) }
                    (availability_table(&report.hosts, texts, false))
                    h2 { (word("devices")) }
                    (availability_table(&report.devices, texts, false))
                }
                section id="security" {
                    h2 { (word("security")) }
                    (security(report, texts))
                }
                section id="compliance" {
                    h2 { (word("compliance")) }
                    table {
                        thead { tr { th { (word("requirement")) } th { (word("result")) } th { (word("evidence")) } } }
                        tbody { @for line in &report.compliance { tr {
                            td { (line.requirement) }
                            td class=(compliance_key(line.status)) { (status_word(line.status, texts)) }
                            td { (line.evidence) }
                        } } }
                    }
                }
    }
}

fn security(report: &Report, texts: &Texts) -> Markup {
    let word = |key: &str| texts.word(key);
    let security = &report.security;
    let change = security.incidents as i64 - security.previous.incidents as i64;
    let counts = |title: &str,
                  counts: &std::collections::BTreeMap<String, usize>,
                  translate: bool| {
        html! {
            table {
                thead { tr { th { (title) } th { (word("count")) } } }
                tbody { @for (name, count) in counts { tr {
                    td { @if translate && !word(name).is_empty() { (word(name)) } @else { (named(name, texts)) } }
                    td.num { (count) }
                } } }
            }
        }
    };
    let durations = |title: &str, now: &Durations, before: &Durations| {
        html! { tr {
            td { (title) }
            td.num { (minutes(now.median_minutes)) } td.num { (minutes(now.p90_minutes)) }
            td.num { (minutes(before.median_minutes)) } td.num { (minutes(before.p90_minutes)) }
        } }
    };
    html! {
        table {
            thead { tr { th { (word("metric")) } th { (word("value")) } th { (word("previous")) } th { (word("change")) } } }
            tbody { tr {
                td { (word("incidents")) } td.num { (security.incidents) }
                td.num { (security.previous.incidents) }
                td.num { (if change > 0 { format!("+{change}") } else { change.to_string() }) }
            } }
        }
        table {
            thead { tr {
                th { (word("metric")) } th { (word("median")) } th { (word("p90")) }
                th { (word("previous")) " " (word("median")) } th { (word("previous")) " " (word("p90")) }
            } }
            tbody {
                (durations(word("ack"), &security.time_to_acknowledge, &security.previous.time_to_acknowledge))
                (durations(word("resolve"), &security.time_to_resolve, &security.previous.time_to_resolve))
            }
        }
        (severity_chart(security, texts))
        (counts(word("severity"), &security.by_severity, true))
        (counts(word("status"), &security.by_status, true))
        (counts(word("rule"), &security.by_rule, false))
        (counts(word("department"), &security.by_department, false))
        table {
            thead { tr { th { (word("top_sources")) } th { (word("count")) } } }
            tbody { @for count in &security.top_sources { tr { td { (count.name) } td.num { (count.count) } } } }
        }
        table {
            thead { tr { th { (word("top_hosts")) } th { (word("count")) } } }
            tbody { @for count in &security.top_hosts { tr { td { (count.name) } td.num { (count.count) } } } }
        }
    }
}

fn availability_table(rows: &[AvailabilityRow], texts: &Texts, services: bool) -> Markup {
    let word = |key: &str| texts.word(key);
    html! {
        @if rows.is_empty() { p { (word("none")) } } @else {
            table {
                thead { tr {
                    @if !services { th { (word("kind")) } }
                    th { (word("department")) }
                    @if services { th { (word("service")) } }
                    th { (word("name")) }
                    @if services { th { (word("target")) } } @else { th { (word("target")) } }
                    th { (word("availability")) } th { (word("downtime")) } th { (word("outage_count")) }
                    th { (word("longest")) } th { (word("observed")) }
                    @if services { th { (word("http_status")) } }
                } }
                tbody { @for row in rows { tr {
                    @if !services { td { (word(row.kind.as_str())) } }
                    td { (named(&row.department, texts)) }
                    @if services { td { (row.service) } }
                    td { (row.name) }
                    td { (row.target) }
                    td.num { (percent(row.availability_percent)) }
                    td.num { (row.downtime_minutes) }
                    td.num { (row.outages) }
                    td.num { (row.longest_outage_minutes) }
                    td.num { (row.observed_hours) }
                    @if services { td.num { (row.http_status.map(|s| s.to_string()).unwrap_or_default()) } }
                } } }
            }
        }
    }
}

/// Horizontal bars of each service's availability, the axis from 90% so
/// that 99.5% and 99.9% look different.
fn bar_chart(rows: &[AvailabilityRow], texts: &Texts) -> Markup {
    const FLOOR: f64 = 90.0;
    let height = 22 * rows.len() + 24;
    html! {
        @if !rows.is_empty() {
            svg xmlns="http://www.w3.org/2000/svg" width="100%" height=(height)
                viewBox=(format!("0 0 760 {height}")) role="img" aria-label=(texts.word("services")) {
                @for (index, row) in rows.iter().enumerate() {
                    @let y = 22 * index + 4;
                    @let value = row.availability_percent.unwrap_or(0.0);
                    @let width = ((value - FLOOR).max(0.0) / (100.0 - FLOOR) * 420.0).round();
                    @let colour = if value >= 99.9 { "#2e8b57" } else if value >= 99.0 { "#d59a1c" } else { "#c0392b" };
                    text x="0" y=(y + 13) { (row.service) " · " (row.target) }
                    rect x="250" y=(y) width="420" height="16" fill="#eef3f8" {}
                    rect x="250" y=(y) width=(width) height="16" fill=(colour) {}
                    text x="676" y=(y + 13) { (percent(row.availability_percent)) }
                }
                text x="250" y=(height - 4) { (FLOOR) "%" }
                text x="650" y=(height - 4) { "100%" }
            }
        }
    }
}

/// Incidents by severity, this period and the one before.
fn severity_chart(security: &super::Security, texts: &Texts) -> Markup {
    let severities = ["critical", "high", "medium", "low", "info"];
    let most = severities
        .iter()
        .map(|severity| {
            let now = security.by_severity.get(*severity).copied().unwrap_or(0);
            let before = security
                .previous
                .by_severity
                .get(*severity)
                .copied()
                .unwrap_or(0);
            now.max(before)
        })
        .max()
        .unwrap_or(0)
        .max(1);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width="100%" height="150" viewBox="0 0 760 150"
            role="img" aria-label=(texts.word("severity")) {
            @for (index, severity) in severities.iter().enumerate() {
                @let x = 40 + index * 140;
                @let now = security.by_severity.get(*severity).copied().unwrap_or(0);
                @let before = security.previous.by_severity.get(*severity).copied().unwrap_or(0);
                @let now_height = now * 100 / most;
                @let before_height = before * 100 / most;
                rect x=(x) y=(115 - before_height) width="36" height=(before_height) fill="#aab7c4" {}
                rect x=(x + 40) y=(115 - now_height) width="36" height=(now_height) fill="#1f5fa8" {}
                text x=(x) y=(110 - before_height) { (before) }
                text x=(x + 40) y=(110 - now_height) { (now) }
                text x=(x) y="132" { (texts.word(severity)) }
            }
            rect x="40" y="138" width="10" height="10" fill="#aab7c4" {}
            text x="54" y="147" { (texts.word("previous")) }
            rect x="180" y="138" width="10" height="10" fill="#1f5fa8" {}
            text x="194" y="147" { (texts.word("period")) }
        }
    }
}

fn named(name: &str, texts: &Texts) -> String {
    if name.is_empty() {
        texts.word("unassigned").to_string()
    } else {
        name.to_string()
    }
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |value| format!("{value}%"))
}

fn minutes(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |value| value.to_string())
}

fn status_word(status: Compliance, texts: &Texts) -> &'static str {
    texts.word(compliance_key(status))
}
