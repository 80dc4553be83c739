//! `/audit`: the audit trail for security officers, newest first, filtered
//! by actor, action, target and time, with its CSV/JSON export (itself
//! audited), and the chain's verification status.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use maud::html;

use crate::audit::{self, AuditEntry, Outcome};
use crate::http::State;
use crate::http::routes::Endpoint;
use crate::http::web::i18n;
use crate::http::web::list_parts::{TimeRange, download, list_link, range_select, range_since};
use crate::http::web::overview::verification;
use crate::http::web::pages::{PAGE_SIZE, layout, pager, time_cell};
use crate::http::web::{PageContext, failure, html};
use crate::incident::export;

/// Most entries one export holds (newest first).
const EXPORT_LIMIT: u32 = 100_000;
/// The time ranges offered: query value, text key, length in ms.
const RANGES: &[TimeRange] = &[
    ("24h", "range_24h", 86_400_000),
    ("7d", "range_7d", 7 * 86_400_000),
    ("30d", "range_30d", 30 * 86_400_000),
];

/// Serves the page or the export.
pub fn serve(state: &State, context: &PageContext, endpoint: Endpoint) -> Response<Full<Bytes>> {
    let text = |name: &str| {
        context
            .query
            .get(name)
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty())
    };
    let contains = |name: &str| text(name).map(audit::TextMatch::Contains);
    let filter = audit::AuditFilter {
        since_ms: range_since(context, RANGES),
        actor: contains("actor"),
        action: contains("action"),
        target: contains("target"),
    };
    let result = match endpoint {
        Endpoint::AuditExport => audit::entries(&state.store, &filter, EXPORT_LIMIT, 0)
            .and_then(|entries| export_entries(state, context, &entries)),
        _ => page(state, context, &filter),
    };
    result.unwrap_or_else(|error| failure(context, &error))
}

fn page(
    state: &State,
    context: &PageContext,
    filter: &audit::AuditFilter,
) -> anyhow::Result<Response<Full<Bytes>>> {
    let lang = context.lang;
    let value = |name: &str| context.query.get(name).cloned().unwrap_or_default();
    let offset: u32 = context
        .query
        .get("offset")
        .and_then(|offset| offset.parse().ok())
        .unwrap_or(0);
    let shown = audit::entries(&state.store, filter, PAGE_SIZE, offset)?;
    let total = audit::count(&state.store, filter)?;
    let link = |base: &str, offset: Option<u32>| {
        list_link(
            context,
            base,
            &["actor", "action", "target", "range"],
            offset.map(|offset| ("offset", offset.to_string())),
        )
    };
    Ok(html(layout(
        context,
        lang.text("audit"),
        html! {
            h1 { (lang.text("audit")) }
            p #verification { strong { (lang.text("audit_verification")) ": " } (verification(state, context)) }
            form.filters method="get" action="/audit" {
                label { (lang.text("actor")) " " input #filter-actor type="text" name="actor" value=(value("actor")); }
                label { (lang.text("action")) " " input #filter-action type="text" name="action" value=(value("action")); }
                label { (lang.text("target")) " " input #filter-target type="text" name="target" value=(value("target")); }
                (range_select(context, RANGES))
                button #audit-filter type="submit" { (lang.text("filter")) }
                a #audit-csv href=(link("/audit/export.csv", None)) { (lang.text("export_csv")) }
                a #audit-json href=(link("/audit/export.json", None)) { (lang.text("export_json")) }
            }
            @if shown.is_empty() {
                p #empty { (lang.text("no_audit")) }
            } @else {
                table #audit {
                    thead { tr {
                        th { "#" } th { (lang.text("time")) } th { (lang.text("actor")) } th { (lang.text("action")) }
                        th { (lang.text("target")) } th { (lang.text("outcome")) } th { (lang.text("detail")) }
                    } }
                    tbody {
                        @for entry in &shown {
                            tr.audit-row {
                                td.num { (entry.seq) }
                                (time_cell(context, entry.at_ms))
                                td { (i18n::actor(lang, &entry.actor)) }
                                td { code { (entry.action) } }
                                td { (entry.target) }
                                td class={ "outcome-" (entry.outcome) } {
                                    @if entry.outcome == "success" { (lang.text("success")) } @else { (lang.text("failure")) }
                                }
                                td { (entry.details) }
                            }
                        }
                    }
                }
                (pager(lang, offset, shown.len(), total, |offset| link("/audit", Some(offset))))
            }
        },
    )))
}

fn export_entries(
    state: &State,
    context: &PageContext,
    entries: &[AuditEntry],
) -> anyhow::Result<Response<Full<Bytes>>> {
    let csv = context.path.ends_with(".csv");
    let user = context
        .principal
        .as_ref()
        .map_or("anonymous", |principal| principal.user.as_str());
    state.store.audit(
        user,
        "audit.exported",
        "audit",
        Outcome::Success,
        &format!(
            "{} entries as {}",
            entries.len(),
            if csv { "csv" } else { "json" }
        ),
    )?;
    if !csv {
        return Ok(download(
            false,
            "audit",
            serde_json::to_string_pretty(entries)?,
        ));
    }
    let body = export::csv_table(
        "seq,time,actor,action,target,outcome,details,prev_hash,hash",
        entries.iter().map(|entry| {
            vec![
                entry.seq.to_string(),
                export::rfc3339(entry.at_ms),
                entry.actor.clone(),
                entry.action.clone(),
                entry.target.clone(),
                entry.outcome.clone(),
                entry.details.clone(),
                entry.prev_hash.clone(),
                entry.hash.clone(),
            ]
        }),
    );
    Ok(download(true, "audit", body))
}
