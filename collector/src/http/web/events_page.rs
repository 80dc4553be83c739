//! `/events`: the raw events search for security officers (host, kind,
//! user, source address, free text, time range), newest first, paged by
//! row id, each event linking to the incidents it is evidence of; and its
//! CSV/JSON export (audited).

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use maud::{Markup, html};
use serde_json::Value;

use crate::audit::Outcome;
use crate::event_log::EventSearch;
use crate::http::State;
use crate::http::routes::Endpoint;
use crate::http::web::list_parts::{TimeRange, download, list_link, range_select, range_since};
use crate::http::web::pages::{PAGE_SIZE, layout, time_cell};
use crate::http::web::{PageContext, failure, html};
use crate::incident::event_search::{self, EventRow};
use crate::incident::export;

/// Most events in one export.
const MAX_EXPORT: usize = 100_000;
/// The time ranges offered: query value, text key, length in ms.
const RANGES: &[TimeRange] = &[
    ("1h", "range_1h", 3_600_000),
    ("24h", "range_24h", 86_400_000),
    ("7d", "range_7d", 7 * 86_400_000),
    ("30d", "range_30d", 30 * 86_400_000),
];

/// The query parameters that filter the list.
const FILTERS: [&str; 8] = [
    "host", "kind", "user", "src_ip", "q", "range", "since_ms", "until_ms",
];

/// Serves the page or the export.
pub fn serve(state: &State, context: &PageContext, endpoint: Endpoint) -> Response<Full<Bytes>> {
    let mut query = event_search::from_query(&context.query);
    if let Some(since) = range_since(context, RANGES) {
        query.since_ms = Some(since);
    }
    let result = match endpoint {
        Endpoint::EventsExport => export_events(state, context, query),
        _ => page(state, context, query),
    };
    result.unwrap_or_else(|error| failure(context, &error))
}

fn page(
    state: &State,
    context: &PageContext,
    mut query: EventSearch,
) -> anyhow::Result<Response<Full<Bytes>>> {
    query.limit = i64::from(PAGE_SIZE);
    let rows = event_search::search(&state.data_dir, &query)?;
    let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
    let evidence_of = state.store.incidents_of_events(&ids)?;
    let lang = context.lang;
    let field = |row: &EventRow, name: &str| -> String {
        match &row.event["fields"][name] {
            Value::String(text) => text.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    };
    let value = |name: &str| context.query.get(name).cloned().unwrap_or_default();
    let link = |base: &str, before: Option<i64>| {
        list_link(
            context,
            base,
            &FILTERS,
            before.map(|before| ("before_id", before.to_string())),
        )
    };
    let body: Markup = html! {
        h1 { (lang.text("events")) }
        form.filters method="get" action="/events" {
            label { (lang.text("host")) " " input #filter-host type="text" name="host" value=(value("host")); }
            label { (lang.text("kind")) " " input #filter-kind type="text" name="kind" value=(value("kind")); }
            label { (lang.text("user")) " " input #filter-user type="text" name="user" value=(value("user")); }
            label { (lang.text("source")) " " input #filter-src type="text" name="src_ip" value=(value("src_ip")); }
            label { (lang.text("text")) " " input #filter-q type="search" name="q" value=(value("q")); }
            (range_select(context, RANGES))
            button #events-filter type="submit" { (lang.text("search")) }
            a #events-csv href=(link("/events/export.csv", None)) { (lang.text("export_csv")) }
            a #events-json href=(link("/events/export.json", None)) { (lang.text("export_json")) }
        }
        @if rows.is_empty() {
            p #empty { (lang.text("no_events")) }
        } @else {
            table #events {
                thead { tr {
                    th { (lang.text("time")) } th { (lang.text("host")) } th { (lang.text("kind")) }
                    th { (lang.text("user")) } th { (lang.text("source")) } th { (lang.text("raw")) }
                    th { (lang.text("evidence_of")) }
                } }
                tbody {
                    @for row in &rows {
                        tr.event-row {
                            (time_cell(context, row.event["timestamp_ms"].as_i64().unwrap_or(row.received_ms)))
                            td.nowrap { (row.event["host"].as_str().unwrap_or(&row.agent)) }
                            td { (row.event["kind"].as_str().unwrap_or("")) }
                            td { (field(row, "user")) }
                            td.time { (field(row, "src_ip")) }
                            td { pre { (row.event["raw"].as_str().unwrap_or("")) } }
                            td.time {
                                @for id in evidence_of.get(&row.id).map(Vec::as_slice).unwrap_or(&[]) {
                                    a.evidence-of href={ "/incidents/" (id) } { "#" (id) } " "
                                }
                            }
                        }
                    }
                }
            }
            p.pager #pager {
                @if query.before_id.is_some() { a #newest href=(link("/events", None)) { "« " (lang.text("newest")) } }
                @if rows.len() == PAGE_SIZE as usize {
                    @if let Some(last) = rows.last() {
                        a #next href=(link("/events", Some(last.id))) { (lang.text("older")) " »" }
                    }
                }
            }
        }
    };
    Ok(html(layout(context, lang.text("events"), body)))
}

fn export_events(
    state: &State,
    context: &PageContext,
    mut query: EventSearch,
) -> anyhow::Result<Response<Full<Bytes>>> {
    let csv = context.path.ends_with(".csv");
    query.limit = event_search::MAX_ROWS;
    let mut all: Vec<EventRow> = Vec::new();
    loop {
        let page = event_search::search(&state.data_dir, &query)?;
        let done = page.len() < event_search::MAX_ROWS as usize || all.len() >= MAX_EXPORT;
        query.before_id = page.last().map(|row| row.id);
        all.extend(page);
        if done || query.before_id.is_none() {
            break;
        }
    }
    all.truncate(MAX_EXPORT);
    let user = context
        .principal
        .as_ref()
        .map_or("anonymous", |principal| principal.user.as_str());
    state.store.audit(
        user,
        "events.exported",
        "events",
        Outcome::Success,
        &format!(
            "{} events as {}, filter {query:?}",
            all.len(),
            if csv { "csv" } else { "json" }
        ),
    )?;
    let text = |value: &Value| match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    if !csv {
        return Ok(download(
            false,
            "events",
            serde_json::to_string_pretty(&all)?,
        ));
    }
    let body = export::csv_table(
        "id,time,host,kind,user,src_ip,raw",
        all.iter().map(|row| {
            vec![
                row.id.to_string(),
                export::rfc3339(
                    row.event["timestamp_ms"]
                        .as_i64()
                        .unwrap_or(row.received_ms),
                ),
                text(&row.event["host"]),
                text(&row.event["kind"]),
                text(&row.event["fields"]["user"]),
                text(&row.event["fields"]["src_ip"]),
                text(&row.event["raw"]),
            ]
        }),
    );
    Ok(download(true, "events", body))
}
