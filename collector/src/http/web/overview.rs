//! `/`: how the county is doing at a glance, for everyone logged in:
//! agents up and down, open incidents by severity, new incidents per day
//! (30 days) and events per hour (24 hours) as inline SVG drawn here (no
//! script, no external asset), what attacked and what was attacked this
//! week (from incident evidence), firing alerts, and the audit trail's
//! last verification.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use maud::{Markup, html};

use crate::http::State;
use crate::http::api;
use crate::http::web::i18n::{self, Lang};
use crate::http::web::pages::{SEVERITIES, agent_state, layout, severity_text};
use crate::http::web::{PageContext, failure, html};
use crate::incident::auth::Role;
use crate::incident::event_search;
use crate::incident::store::{EvidenceField, IncidentFilter, QUEUE_STATUS};
use countywatch_daemon::clock::now_ms;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// The SVG charts' drawing size (they scale to their box).
const CHART_WIDTH: i64 = 600;
const CHART_HEIGHT: i64 = 150;
/// Firing alerts listed on the overview (the count shows how many fire).
const FIRING_LISTED: usize = 5;

/// Serves the overview.
pub fn serve(state: &State, context: &PageContext) -> Response<Full<Bytes>> {
    render(state, context).unwrap_or_else(|error| failure(context, &error))
}

/// The audit trail's last self-verification (hourly, by
/// `audit::anchor`), from its metrics: "not verified yet" until it
/// has run, else its result and when.
pub fn verification(state: &State, context: &PageContext) -> String {
    let gauge = |name: &str| {
        state
            .telemetry
            .registry()
            .gather()
            .into_iter()
            .find(|family| family.name() == name)
            .and_then(|family| {
                family
                    .get_metric()
                    .first()
                    .map(|metric| metric.get_gauge().get_value())
            })
    };
    let lang = context.lang;
    #[allow(clippy::cast_possible_truncation)]
    match (
        gauge("countywatch_audit_verify_timestamp_seconds"),
        gauge("countywatch_audit_verify_success"),
    ) {
        (Some(seconds), Some(success)) if seconds > 0.0 => format!(
            "{} ({})",
            if success >= 1.0 {
                lang.text("verified_ok")
            } else {
                lang.text("verified_failed")
            },
            context.time((seconds * 1000.0) as i64)
        ),
        _ => lang.text("not_verified").to_string(),
    }
}

fn render(state: &State, context: &PageContext) -> anyhow::Result<Response<Full<Bytes>>> {
    let lang = context.lang;
    let now = now_ms();
    let agents = api::agent_rows(state)?;
    let count_state = |state: &str| {
        agents
            .iter()
            .filter(|agent| agent_state(agent) == state)
            .count()
    };
    let open = state.store.counts_by_severity(&IncidentFilter {
        status: Some(QUEUE_STATUS.to_string()),
        ..IncidentFilter::default()
    })?;
    // Days are the display zone's: a day starts at its local midnight.
    let offset = context.display.offset_ms(now);
    let today = (now + offset).div_euclid(DAY_MS);
    let per_day = state
        .store
        .incidents_per_day((today - 29) * DAY_MS - offset, offset)?;
    let day_bars: Vec<(String, i64)> = (today - 29..=today)
        .map(|day| {
            let label = context
                .time(day * DAY_MS - offset)
                .get(5..10)
                .unwrap_or("")
                .to_string();
            (label, per_day.get(&day).copied().unwrap_or(0))
        })
        .collect();
    let this_hour = now.div_euclid(HOUR_MS);
    let per_hour = event_search::per_hour(&state.data_dir, (this_hour - 23) * HOUR_MS)?;
    let hour_bars: Vec<(String, i64)> = (this_hour - 23..=this_hour)
        .map(|hour| {
            let label = context
                .time(hour * HOUR_MS)
                .get(11..13)
                .unwrap_or("")
                .to_string();
            (label, per_hour.get(&hour).copied().unwrap_or(0))
        })
        .collect();
    let week_ago = now.saturating_sub(7 * DAY_MS);
    let sources = state
        .store
        .top_evidence(EvidenceField::SourceAddress, week_ago, 10)?;
    let hosts = state
        .store
        .top_evidence(EvidenceField::Host, week_ago, 10)?;
    let (firing_count, firing) = state.notifier.active_alerts_first(FIRING_LISTED);
    let officer = context.is_at_least(Role::SecurityOfficer);
    let body = html! {
        h1 { (lang.text("overview")) }
        div.panels {
            section.panel #agents-panel {
                h2 { a href="/agents" { (lang.text("agents")) } }
                p.counts {
                    span.chip.agent-up #agents-up { (lang.text("agents_up")) ": " (count_state("up")) }
                    span.chip #agents-down { (lang.text("agents_down")) ": " (count_state("silent") + count_state("down")) }
                    span.chip #agents-revoked { (lang.text("agents_revoked")) ": " (count_state("revoked")) }
                }
                ul {
                    @for agent in agents.iter().filter(|agent| matches!(agent_state(agent), "silent" | "down")).take(10) {
                        @let name = agent["name"].as_str().unwrap_or("");
                        li { a href={ "/agents#agent-" (name) } { (name) } " " span.agent-down { (lang.text(agent_state(agent))) } }
                    }
                }
            }
            section.panel #open-panel {
                h2 { a href="/incidents" { (lang.text("open_by_severity")) } }
                p.counts #open-counts {
                    @for severity in SEVERITIES {
                        a class={ "chip severity-" (severity) } data-severity=(severity) href={ "/incidents?severity=" (severity) } {
                            (severity_text(lang, severity)) ": " (open.get(severity).copied().unwrap_or(0))
                        }
                    }
                }
                h2 { a href="/alerts" { (lang.text("firing")) } " (" span #overview-firing { (firing_count) } ")" }
                @if firing.is_empty() { p { (lang.text("no_alerts")) } }
                ul {
                    @for alert in &firing {
                        li {
                            (i18n::localized_annotation(lang, &alert.annotations, "title")
                                .or_else(|| alert.labels.get("alertname"))
                                .map_or("", String::as_str))
                            " " small.muted { (alert.labels.get("instance").map_or("", String::as_str)) }
                        }
                    }
                }
                p #audit-verification { strong { (lang.text("audit_verification")) ": " }
                    @if officer { a href="/audit" { (verification(state, context)) } } @else { (verification(state, context)) }
                }
            }
            section.panel.wide #incidents-chart {
                h2 { (lang.text("incidents_per_day")) }
                (bar_chart(lang, &day_bars, 5))
            }
            section.panel.wide #events-chart {
                h2 { (lang.text("events_per_hour")) }
                (bar_chart(lang, &hour_bars, 3))
            }
            section.panel #top-sources {
                h2 { (lang.text("top_sources")) }
                (top_table(lang, "source", &sources, officer.then_some("/events?src_ip=")))
            }
            section.panel #top-hosts {
                h2 { (lang.text("top_hosts")) }
                (top_table(lang, "host", &hosts, Some("/incidents?status=all&host=")))
            }
        }
    };
    Ok(html(layout(context, lang.text("overview"), body)))
}

fn top_table(lang: Lang, key: &'static str, rows: &[(String, i64)], link: Option<&str>) -> Markup {
    html! {
        @if rows.is_empty() { p { (lang.text("nothing")) } }
        @else {
            table {
                thead { tr { th { (lang.text(key)) } th { (lang.text("count")) } } }
                tbody {
                    @for (value, count) in rows {
                        tr {
                            td {
                                @match link {
                                    Some(link) => a href={ (link) (form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>()) } { (value) },
                                    None => (value),
                                }
                            }
                            td.num { (count) }
                        }
                    }
                }
            }
        }
    }
}

/// A bar chart of `bars` (label, value) as inline SVG; every
/// `label_every`-th bar is labelled under the axis, the largest value
/// above it, and each bar has its value as a tooltip.
fn bar_chart(lang: Lang, bars: &[(String, i64)], label_every: usize) -> Markup {
    let top = 14;
    let bottom = 16;
    let plot = CHART_HEIGHT - top - bottom;
    let max = bars
        .iter()
        .map(|(_, value)| *value)
        .max()
        .unwrap_or(0)
        .max(1);
    let count = i64::try_from(bars.len()).unwrap_or(1).max(1);
    let slot = CHART_WIDTH / count;
    let view_box = format!("0 0 {CHART_WIDTH} {CHART_HEIGHT}");
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" viewBox=(view_box) role="img" {
            text x="0" y="10" { (lang.text("max")) " " (max) }
            line x1="0" y1=(top + plot) x2=(CHART_WIDTH) y2=(top + plot) stroke="#8a93a3" {}
            @for (index, (label, value)) in bars.iter().enumerate() {
                @let position = i64::try_from(index).unwrap_or(0);
                @let height = if *value > 0 { (value * plot / max).max(1) } else { 0 };
                rect.bar x=(position * slot + 1) y=(top + plot - height) width=((slot - 2).max(1)) height=(height) {
                    title { (label) ": " (value) }
                }
                @if index % label_every.max(1) == 0 {
                    text x=(position * slot) y=(CHART_HEIGHT - 3) { (label) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_value() {
        let svg = bar_chart(
            Lang::En,
            &[
                ("a".to_string(), 0),
                ("b".to_string(), 5),
                ("c".to_string(), 10),
            ],
            1,
        )
        .into_string();
        assert!(svg.contains("max 10"), "{svg}");
        // The plot is 120 high: 10 fills it, 5 half of it, 0 draws nothing.
        assert!(svg.contains(r#"height="120""#), "{svg}");
        assert!(svg.contains(r#"height="60""#), "{svg}");
        assert!(svg.contains(r#"height="0""#), "{svg}");
        assert!(svg.contains("<title>b: 5</title>"), "{svg}");
    }
}
