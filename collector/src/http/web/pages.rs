//! The HTML of each page. maud escapes every `(value)`, so evidence (log
//! lines an attacker wrote) can only ever be text; nothing here uses
//! `PreEscaped`. Forms carry the session's CSRF token.

use std::collections::BTreeMap;

use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

use crate::http::csrf;
use crate::http::web::i18n::{self, Lang};
use crate::http::web::{PageContext, attack, rule_texts, silence_form};
use crate::incident::auth::Role;
use crate::incident::store::{
    self, EvidenceRecord, Incident, IncidentFilter, Status, TimelineEntry,
};

/// Severities, most severe first, as the queue counts them.
pub const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "info"];

/// Rows per page of the lists.
pub const PAGE_SIZE: u32 = 50;

/// A time cell in the display zone that does not wrap.
pub fn time_cell(context: &PageContext, ms: i64) -> Markup {
    html! { td.time { (context.time(ms)) } }
}

/// The navigation: path, text key, lowest role that sees it.
const NAVIGATION: &[(&str, &str, Role)] = &[
    ("/", "overview", Role::Viewer),
    ("/incidents", "incidents", Role::Viewer),
    ("/events", "events", Role::SecurityOfficer),
    ("/alerts", "alerts", Role::Viewer),
    ("/agents", "agents", Role::Viewer),
    ("/audit", "audit", Role::SecurityOfficer),
    ("/decisions", "decisions", Role::SecurityOfficer),
    ("/reports", "reports", Role::SecurityOfficer),
    ("/users", "users", Role::Admin),
];

/// The page around `body`: header with navigation, language switch, user.
pub fn layout(context: &PageContext, title: &str, body: Markup) -> Markup {
    let lang = context.lang;
    let current = |path: &str| {
        if path == "/" {
            context.path == "/"
        } else {
            context.path == path || context.path.starts_with(&format!("{path}/"))
        }
    };
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " - " (lang.text("app")) }
                link rel="stylesheet" href="/assets/style.css";
            }
            body {
                header {
                    strong { (lang.text("app")) }
                    @if let Some(principal) = &context.principal {
                        @for (path, key, role) in NAVIGATION {
                            @if principal.role >= *role {
                                a.current[current(path)] href=(path) { (lang.text(key)) }
                            }
                        }
                    }
                    span.who {
                        a #lang-zh href=(context.language_link("zh")) { "中文" }
                        " | "
                        a #lang-en href=(context.language_link("en")) { "English" }
                        @if let Some(principal) = &context.principal {
                            " · "
                            span #whoami title=(lang.text("signed_in_as")) { (principal.user) } " (" span #role { (i18n::role(lang, principal.role)) } ") "
                            form method="post" action="/logout" {
                                (csrf_field(context))
                                button type="submit" #logout { (lang.text("logout")) }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The session's CSRF token as a hidden form field.
pub fn csrf_field(context: &PageContext) -> Markup {
    let token = context
        .principal
        .as_ref()
        .and_then(|principal| principal.csrf.clone())
        .unwrap_or_default();
    html! { input type="hidden" name=(csrf::FIELD) value=(token); }
}

/// A page with one message.
pub fn message(context: &PageContext, text: &str) -> Markup {
    layout(context, text, html! { p.error { (text) } })
}

/// The login page.
pub fn login(context: &PageContext, token: &str, error: Option<&str>) -> Markup {
    let lang = context.lang;
    layout(
        context,
        lang.text("login"),
        html! {
            h1 { (lang.text("login")) }
            @if let Some(error) = error { p.error #login-error { (error) } }
            form method="post" action="/login" {
                input type="hidden" name=(csrf::FIELD) value=(token);
                p { label for="username" { (lang.text("username")) } " "
                    input #username type="text" name="username" autocomplete="username" required; }
                p { label for="password" { (lang.text("password")) } " "
                    input #password type="password" name="password" autocomplete="current-password" required; }
                p { button #login type="submit" { (lang.text("login")) } }
            }
        },
    )
}

/// The form to change one's own password (the only page a user whose
/// password someone else chose can reach).
pub fn password(context: &PageContext, error: Option<&str>) -> Markup {
    let lang = context.lang;
    let forced = context
        .principal
        .as_ref()
        .is_some_and(|principal| principal.must_change_password);
    layout(
        context,
        lang.text("change_password"),
        html! {
            h1 { (lang.text("change_password")) }
            @if forced { p #must-change { (lang.text("must_change_password")) } }
            @if let Some(error) = error { p.error #password-error { (error) } }
            form method="post" action="/password" {
                (csrf_field(context))
                p { label for="current" { (lang.text("current_password")) } " "
                    input #current type="password" name="current" autocomplete="current-password" required; }
                p { label for="new" { (lang.text("new_password")) } " "
                    input #new type="password" name="new" autocomplete="new-password" minlength="12" maxlength="1024" required; }
                p { label for="confirm" { (lang.text("confirm_password")) } " "
                    input #confirm type="password" name="confirm" autocomplete="new-password" minlength="12" maxlength="1024" required; }
                p { button #change-password type="submit" { (lang.text("change_password")) } }
            }
        },
    )
}

/// A status in `lang`.
pub fn status_text(lang: Lang, status: Status) -> &'static str {
    match status {
        Status::Open => lang.text("open"),
        Status::Acknowledged => lang.text("acknowledged"),
        Status::Resolved => lang.text("resolved"),
        Status::FalsePositive => lang.text("false_positive"),
    }
}

/// A severity in `lang`.
pub fn severity_text(lang: Lang, severity: &str) -> &'static str {
    match severity {
        "critical" => lang.text("critical"),
        "high" => lang.text("high"),
        "medium" => lang.text("medium"),
        "low" => lang.text("low"),
        _ => lang.text("info"),
    }
}

/// A queue URL with the current filter, changed by `change`.
fn queue_link(filter: &IncidentFilter, change: impl FnOnce(&mut IncidentFilter)) -> String {
    let mut filter = filter.clone();
    change(&mut filter);
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    let pairs = [
        ("status", &filter.status),
        ("severity", &filter.severity),
        ("host", &filter.host),
        ("rule", &filter.rule),
        ("q", &filter.q),
        ("sort", &filter.sort),
    ];
    for (name, value) in pairs {
        if let Some(value) = value {
            serializer.append_pair(name, value);
        }
    }
    if filter.asc == Some(true) {
        serializer.append_pair("asc", "1");
    }
    if let Some(offset) = filter.offset.filter(|offset| *offset > 0) {
        serializer.append_pair("offset", &offset.to_string());
    }
    format!("/incidents?{}", serializer.finish())
}

/// The queue sorted by `column`; again on the sorted column flips it.
fn sort_link(filter: &IncidentFilter, column: &str) -> String {
    queue_link(filter, |filter| {
        let ascending = filter.sort.as_deref() == Some(column) && !filter.asc.unwrap_or(false);
        filter.sort = Some(column.to_string());
        filter.asc = Some(ascending);
        filter.offset = None;
    })
}

fn export_link(filter: &IncidentFilter, extension: &str) -> String {
    let link = queue_link(filter, |filter| filter.offset = None);
    link.replacen("/incidents?", &format!("/incidents/export.{extension}?"), 1)
}

/// The sort mark of a column header.
fn sort_mark(filter: &IncidentFilter, column: &str) -> &'static str {
    let sorted = filter.sort.as_deref().unwrap_or("last_seen") == column;
    match (sorted, filter.asc.unwrap_or(false)) {
        (false, _) => "",
        (true, false) => " ▼",
        (true, true) => " ▲",
    }
}

/// Previous and next links around `offset` of `total` rows.
pub fn pager(
    lang: Lang,
    offset: u32,
    shown: usize,
    total: i64,
    link: impl Fn(u32) -> String,
) -> Markup {
    let first = if shown == 0 { 0 } else { i64::from(offset) + 1 };
    let last = i64::from(offset) + i64::try_from(shown).unwrap_or(0);
    html! {
        p.pager #pager {
            @if offset > 0 {
                a #previous href=(link(offset.saturating_sub(PAGE_SIZE))) { "« " (lang.text("previous")) }
            }
            span { (first) "–" (last) " / " span #total { (total) } }
            @if last < total {
                a #next href=(link(offset.saturating_add(PAGE_SIZE))) { (lang.text("next")) " »" }
            }
        }
    }
}

/// The incident queue.
pub fn queue(
    context: &PageContext,
    filter: &IncidentFilter,
    incidents: &[Incident],
    total: i64,
    counts: &BTreeMap<String, i64>,
) -> Markup {
    let lang = context.lang;
    let officer = context.is_at_least(Role::SecurityOfficer);
    let selected = |current: &Option<String>, value: &str| current.as_deref() == Some(value);
    let status_filter = filter.status.clone().unwrap_or_default();
    layout(
        context,
        lang.text("incidents"),
        html! {
            div.counts #counts {
                h1 { (lang.text("incidents")) }
                @for severity in SEVERITIES {
                    a class={ "chip severity-" (severity) } data-severity=(severity)
                        href=(queue_link(filter, |filter| { filter.severity = Some(severity.to_string()); filter.offset = None; })) {
                        (severity_text(lang, severity)) ": " (counts.get(severity).copied().unwrap_or(0))
                    }
                }
                @if status_filter == store::QUEUE_STATUS { span.muted { (lang.text("queue_hint")) } }
            }
            form.filters method="get" action="/incidents" {
                label { (lang.text("status")) " "
                    select name="status" {
                        option value=(store::QUEUE_STATUS) selected[status_filter == store::QUEUE_STATUS] { (lang.text("queue")) }
                        option value="all" selected[status_filter == "all"] { (lang.text("any")) }
                        @for status in Status::ALL {
                            option value=(status.as_str()) selected[selected(&filter.status, status.as_str())] { (status_text(lang, status)) }
                        }
                    }
                }
                label { (lang.text("severity")) " "
                    select name="severity" {
                        option value="" { (lang.text("any")) }
                        @for severity in SEVERITIES {
                            option value=(severity) selected[selected(&filter.severity, severity)] { (severity_text(lang, severity)) }
                        }
                    }
                }
                label { (lang.text("host")) " " input type="text" name="host" value=(filter.host.clone().unwrap_or_default()); }
                label { (lang.text("rule")) " " input type="text" name="rule" value=(filter.rule.clone().unwrap_or_default()); }
                label { (lang.text("search")) " " input type="search" name="q" value=(filter.q.clone().unwrap_or_default()); }
                button #filter type="submit" { (lang.text("filter")) }
                @if officer {
                    a #export-csv href=(export_link(filter, "csv")) { (lang.text("export_csv")) }
                    a #export-json href=(export_link(filter, "json")) { (lang.text("export_json")) }
                }
            }
            @if incidents.is_empty() {
                p #empty { (lang.text("none")) }
                span #total hidden { (total) }
            } @else {
                table #incidents {
                    thead { tr {
                        th { a href=(sort_link(filter, "id")) { "#" (sort_mark(filter, "id")) } }
                        th { a href=(sort_link(filter, "severity")) { (lang.text("severity")) (sort_mark(filter, "severity")) } }
                        th { (lang.text("status")) }
                        th { (lang.text("title")) }
                        th { (lang.text("host")) }
                        th { a href=(sort_link(filter, "first_seen")) { (lang.text("first_seen")) (sort_mark(filter, "first_seen")) } }
                        th { a href=(sort_link(filter, "last_seen")) { (lang.text("last_seen")) (sort_mark(filter, "last_seen")) } }
                        th { (lang.text("evidence")) }
                        th { (lang.text("assignee")) }
                    } }
                    tbody {
                        @for incident in incidents {
                            tr {
                                td { a.incident-link href={ "/incidents/" (incident.id) } { (incident.id) } }
                                td { span class={ "chip severity-" (incident.severity.as_str()) } { (severity_text(lang, incident.severity.as_str())) } }
                                td.time { (status_text(lang, incident.status)) }
                                td.incident-title { a href={ "/incidents/" (incident.id) } { (rule_texts::incident_title(lang, incident)) } }
                                td { (incident.hosts.join(", ")) }
                                (time_cell(context, incident.first_seen_ms))
                                (time_cell(context, incident.last_seen_ms))
                                td.num { (incident.evidence_count) }
                                td { (incident.assignee.clone().unwrap_or_default()) }
                            }
                        }
                    }
                }
                (pager(lang, filter.offset.unwrap_or(0), incidents.len(), total, |offset| queue_link(filter, |filter| filter.offset = Some(offset))))
            }
        },
    )
}

fn field_text(event: &Value, name: &str) -> String {
    match event.get("fields").and_then(|fields| fields.get(name)) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// What the incident page shows besides the incident.
pub struct DetailData<'a> {
    /// Its evidence, oldest first.
    pub evidence: &'a [EvidenceRecord],
    /// Its timeline, oldest first.
    pub timeline: &'a [TimelineEntry],
    /// Incidents with the same source address or host, last 30 days.
    pub related: &'a [Incident],
    /// Users who can be assigned (security officers and admins).
    pub assignable: &'a [String],
    /// The active-response decisions the incident caused, rendered by
    /// `decisions_page` (which uses this file's layout, so this file does
    /// not call it back).
    pub decisions: Markup,
    /// The rule's description in the page's language.
    pub description: String,
    /// The rule's guidance in the page's language.
    pub guidance: String,
    /// The `error` code of a refused change.
    pub error: Option<&'a str>,
}

/// Label values worth highlighting in evidence: the values the rule
/// grouped by and matched on (not its own id, name or severity).
fn highlight_terms(incident: &Incident) -> Vec<String> {
    let mut terms: Vec<String> = incident
        .labels
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "rule_id" | "alertname" | "severity"))
        .map(|(_, value)| value.clone())
        .filter(|value| value.chars().count() >= 2)
        .collect();
    // Longest first, so that a value inside another is not marked alone.
    terms.sort_by_key(|term| std::cmp::Reverse(term.len()));
    terms.dedup();
    terms
}

/// `text` with every occurrence of `terms` in `<mark>`; each piece is
/// still escaped by maud.
fn highlighted(text: &str, terms: &[String]) -> Markup {
    let mut pieces: Vec<(bool, &str)> = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let found = terms
            .iter()
            .filter_map(|term| rest.find(term.as_str()).map(|at| (at, term.len())))
            .min_by_key(|(at, length)| (*at, std::cmp::Reverse(*length)));
        match found {
            Some((at, length)) => {
                pieces.push((false, &rest[..at]));
                pieces.push((true, &rest[at..at + length]));
                rest = &rest[at + length..];
            }
            None => {
                pieces.push((false, rest));
                rest = "";
            }
        }
    }
    html! {
        @for (marked, piece) in pieces {
            @if marked { mark { (piece) } } @else { (piece) }
        }
    }
}

/// A refused change's code in `lang`.
fn error_text(lang: Lang, code: &str) -> &'static str {
    match code {
        "status" => lang.text("error_status"),
        "reason" => lang.text("error_reason"),
        "transition" => lang.text("error_transition"),
        _ => lang.text("error_failed"),
    }
}

/// One incident: what it is and what to do first (actions beside the
/// facts, above the fold), then evidence, related incidents, timeline.
pub fn detail(context: &PageContext, incident: &Incident, data: &DetailData<'_>) -> Markup {
    let lang = context.lang;
    let officer = context.is_at_least(Role::SecurityOfficer);
    let action = format!("/incidents/{}/transition", incident.id);
    let title = rule_texts::incident_title(lang, incident);
    let terms = highlight_terms(incident);
    let me = context
        .principal
        .as_ref()
        .map(|principal| principal.user.clone())
        .unwrap_or_default();
    let shown_annotations: Vec<(String, &String)> = incident
        .annotations
        .keys()
        .filter(|key| !key.starts_with("title_") && !key.ends_with("_zh"))
        .filter_map(|key| {
            i18n::localized_annotation(lang, &incident.annotations, key)
                .map(|value| (i18n::annotation_key(lang, key), value))
        })
        .collect();
    layout(
        context,
        title,
        html! {
            h1 #title { "#" (incident.id) " " (title) }
            @if let Some(code) = data.error { p.error #error { (error_text(lang, code)) } }
            div.top {
                div {
                    dl.facts {
                        dt { (lang.text("status")) } dd #status data-status=(incident.status.as_str()) { (status_text(lang, incident.status)) }
                        dt { (lang.text("severity")) } dd { span class={ "chip severity-" (incident.severity.as_str()) } { (severity_text(lang, incident.severity.as_str())) } }
                        dt { (lang.text("rule")) } dd { code { (incident.rule_id) } }
                        dt { (lang.text("group")) } dd { code { (incident.group_key) } }
                        dt { (lang.text("host")) } dd #hosts { (incident.hosts.join(", ")) }
                        dt { (lang.text("first_seen")) } dd.time { (context.time(incident.first_seen_ms)) }
                        dt { (lang.text("last_seen")) } dd.time { (context.time(incident.last_seen_ms)) }
                        dt { (lang.text("assignee")) } dd #assignee { (incident.assignee.clone().unwrap_or_default()) }
                        @if let Some(reason) = &incident.reason { dt { (lang.text("reason")) } dd { (reason) } }
                        @if !incident.tags.is_empty() {
                            dt { (lang.text("techniques")) }
                            dd #techniques {
                                @for tag in &incident.tags {
                                    span.technique {
                                        @match attack::technique_url(tag) {
                                            Some(url) => a href=(url) rel="noreferrer" { (tag) },
                                            None => (tag),
                                        }
                                        @if let Some(name) = attack::technique_name(lang, tag) { " " (name) }
                                    }
                                    br;
                                }
                            }
                        }
                    }
                    @if !data.guidance.is_empty() {
                        div.guidance #guidance { strong { (lang.text("guidance")) ": " } (data.guidance) }
                    }
                    @if !data.description.is_empty() {
                        p #description { strong { (lang.text("rule_description")) ": " } (data.description) }
                    }
                }
                @if officer {
                    div.actions #actions {
                        @if matches!(incident.status, Status::Open | Status::Acknowledged) {
                            form #acknowledge-form method="post" action=(action) {
                                (csrf_field(context))
                                input type="hidden" name="status" value="acknowledged";
                                label { (lang.text("assign_to")) " "
                                    select #ack-assignee name="assignee" {
                                        option value=(me) { (me) " (" (lang.text("myself")) ")" }
                                        @for user in data.assignable {
                                            @if *user != me {
                                                option value=(user) selected[incident.assignee.as_deref() == Some(user.as_str())] { (user) }
                                            }
                                        }
                                    }
                                }
                                label { (lang.text("comment")) textarea #ack-comment name="comment" {} }
                                button #ack-submit type="submit" { (lang.text("acknowledge")) }
                            }
                            form #resolve-form method="post" action=(action) {
                                (csrf_field(context))
                                label { (lang.text("reason")) textarea #resolve-reason name="reason" required {} }
                                button #resolve-submit type="submit" name="status" value="resolved" { (lang.text("resolve")) }
                                " "
                                button #false-positive-submit type="submit" name="status" value="false_positive" { (lang.text("false_positive")) }
                            }
                        } @else {
                            form #reopen-form method="post" action=(action) {
                                (csrf_field(context))
                                input type="hidden" name="status" value="open";
                                button #reopen-submit type="submit" { (lang.text("reopen")) }
                            }
                        }
                        form #comment-form method="post" action={ "/incidents/" (incident.id) "/comment" } {
                            (csrf_field(context))
                            label { (lang.text("comment")) textarea #comment-text name="text" required {} }
                            button #comment-submit type="submit" { (lang.text("add_comment")) }
                        }
                    }
                }
            }
            @if !shown_annotations.is_empty() {
                dl.facts #annotations {
                    @for (name, value) in &shown_annotations { dt { (name) } dd { (value) } }
                }
            }
            (data.decisions)
            h2 { (lang.text("evidence")) " (" (incident.evidence_count) ")" }
            table #evidence {
                thead { tr {
                    th { (lang.text("time")) } th { (lang.text("host")) } th { (lang.text("kind")) }
                    th { (lang.text("user")) } th { (lang.text("source")) } th { (lang.text("raw")) }
                } }
                tbody {
                    @for record in data.evidence {
                        @let event = serde_json::to_value(&record.event).unwrap_or(Value::Null);
                        tr.evidence-row {
                            (time_cell(context, record.event.timestamp_ms))
                            td.nowrap { (record.event.host) }
                            td { (record.event.kind.as_str()) }
                            td.evidence-user { (highlighted(&field_text(&event, "user"), &terms)) }
                            td.time { (highlighted(&field_text(&event, "src_ip"), &terms)) }
                            td { pre.evidence-raw { (highlighted(&record.event.raw, &terms)) } }
                        }
                    }
                }
            }
            h2 { (lang.text("related")) }
            @if data.related.is_empty() {
                p #no-related { (lang.text("no_related")) }
            } @else {
                table #related {
                    tbody {
                        @for other in data.related {
                            tr {
                                td { a href={ "/incidents/" (other.id) } { "#" (other.id) } }
                                td { span class={ "chip severity-" (other.severity.as_str()) } { (severity_text(lang, other.severity.as_str())) } }
                                td.time { (status_text(lang, other.status)) }
                                td { (rule_texts::incident_title(lang, other)) }
                                (time_cell(context, other.last_seen_ms))
                            }
                        }
                    }
                }
            }
            h2 { (lang.text("timeline")) }
            table #timeline {
                thead { tr { th { (lang.text("time")) } th { (lang.text("actor")) } th { (lang.text("action")) } th { (lang.text("detail")) } } }
                tbody {
                    @for entry in data.timeline {
                        tr {
                            (time_cell(context, entry.at_ms))
                            td { (i18n::actor(lang, &entry.actor)) }
                            td.time { (i18n::timeline_action(lang, &entry.action)) }
                            td { (i18n::timeline_detail(lang, &entry.action, &entry.detail)) }
                        }
                    }
                }
            }
        },
    )
}

/// An agent's state for the page: `up`, `silent` (not heard from within
/// `agents.silent_after`), `down` (never heard from) or `revoked`.
pub fn agent_state(agent: &Value) -> &'static str {
    if !agent["revoked_ms"].is_null() {
        "revoked"
    } else if agent["up"].as_bool().unwrap_or(false) {
        "up"
    } else if agent["last_seen_ms"].is_null() {
        "down"
    } else {
        "silent"
    }
}

/// The agents.
pub fn agents(context: &PageContext, agents: &[Value], now_ms: i64) -> Markup {
    let lang = context.lang;
    layout(
        context,
        lang.text("agents"),
        html! {
            h1 { (lang.text("agents")) }
            @if agents.is_empty() {
                p #empty { (lang.text("no_agents")) }
            } @else {
                table #agents {
                    thead { tr { th { (lang.text("name")) } th { (lang.text("status")) } th { (lang.text("version")) } th { (lang.text("address")) } th { (lang.text("last_seen")) } th { (lang.text("cert_expiry")) } th { (lang.text("devices")) } } }
                    tbody {
                        @for agent in agents {
                            @let state = agent_state(agent);
                            tr id={ "agent-" (agent["name"].as_str().unwrap_or("")) } {
                                td { (agent["name"].as_str().unwrap_or("")) }
                                td class={ "agent-" (state) } { (lang.text(state)) }
                                td { (agent["version"].as_str().unwrap_or("")) }
                                td { (agent["address"].as_str().unwrap_or("")) }
                                td.time {
                                    @if let Some(seen) = agent["last_seen_ms"].as_i64() {
                                        (countywatch_notify::display::ago(lang.language(), now_ms, seen)) " · " span.muted { (context.time(seen)) }
                                    }
                                }
                                td.time { (agent["certificate_expires_ms"].as_i64().map(|ms| context.time(ms)).unwrap_or_default()) }
                                td.devices { (device_list(lang, &agent["devices"])) }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// Devices shown by name on the agents page before the rest are counted.
const DEVICES_NAMED: usize = 3;

/// An agent's devices (a JSON array of names): the first few by name and
/// how many more, or a dash when it reports none.
fn device_list(lang: Lang, devices: &Value) -> String {
    let names: Vec<&str> = devices
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if names.is_empty() {
        return "—".to_string();
    }
    let shown = names[..names.len().min(DEVICES_NAMED)].join(", ");
    match names.len().saturating_sub(DEVICES_NAMED) {
        0 => shown,
        more => match lang {
            Lang::Zh => format!("{shown} 等 {} 台", names.len()),
            Lang::En => format!("{shown} and {more} more"),
        },
    }
}

/// A silence's state (`active`, `pending`, `expired`) in `lang`.
fn silence_state(lang: Lang, state: &str) -> &str {
    match state {
        "active" => lang.text("silence_active"),
        "pending" => lang.text("silence_pending"),
        "expired" => lang.text("silence_expired"),
        other => other,
    }
}

/// `name=value` pairs, comma-separated, without those the table shows in
/// their own columns.
fn pairs(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "alertname" | "severity" | "rule_id"))
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Firing alerts, from alerting and detection rules, and silences.
pub fn alerts(
    context: &PageContext,
    firing: &[countywatch_notify::alert::Alert],
    silences: &[Value],
) -> Markup {
    let lang = context.lang;
    let operator = context.is_at_least(Role::Operator);
    let done = context.query.get("done").map(String::as_str);
    layout(
        context,
        lang.text("alerts"),
        html! {
            @match done {
                Some("ok") => p #notice { (lang.text("saved")) },
                Some(_) => p.error #notice { (lang.text("error")) },
                None => {},
            }
            h1 { (lang.text("firing")) " (" span #firing-count { (firing.len()) } ")" }
            @if firing.is_empty() { p #no-alerts { (lang.text("no_alerts")) } }
            @else {
                table #alerts {
                    thead { tr {
                        th { (lang.text("alertname")) } th { (lang.text("severity")) } th { (lang.text("origin")) }
                        th { (lang.text("summary")) } th { (lang.text("labels")) } th { (lang.text("fired_at")) }
                        @if operator { th { (lang.text("silence_this")) } }
                    } }
                    tbody {
                        @for alert in firing {
                            @let severity = alert.labels.get("severity").map_or("", String::as_str);
                            tr.alert-row {
                                td { (alert.labels.get("alertname").map_or("", String::as_str)) }
                                td { @if !severity.is_empty() { span class={ "chip severity-" (severity) } { (severity_text(lang, severity)) } } }
                                td.time { @if alert.labels.contains_key("rule_id") { (lang.text("origin_detection")) } @else { (lang.text("origin_alerting")) } }
                                td.summary {
                                    (i18n::localized_annotation(lang, &alert.annotations, "title")
                                        .or_else(|| i18n::localized_annotation(lang, &alert.annotations, "summary"))
                                        .cloned()
                                        .unwrap_or_default())
                                }
                                td { small { (pairs(&alert.labels)) } }
                                (time_cell(context, alert.starts_at_ms))
                                @if operator {
                                    td.nowrap {
                                        form.inline method="post" action="/alerts/silences" {
                                            (csrf_field(context))
                                            input type="hidden" name="action" value="create";
                                            input type="hidden" name="matchers" value=(silence_form::matchers_of(&alert.labels));
                                            select name="duration" {
                                                @for (value, key, _) in silence_form::DURATIONS {
                                                    option value=(value) { (lang.text(key)) }
                                                }
                                            }
                                            " " button.silence type="submit" { (lang.text("silence_this")) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h1 { (lang.text("silences")) }
            @if silences.is_empty() { p #no-silences { (lang.text("no_silences")) } }
            @else {
                table #silences {
                    thead { tr { th { (lang.text("matchers")) } th { (lang.text("status")) } th { (lang.text("ends")) } th { (lang.text("created_by")) } th { (lang.text("comment")) } @if operator { th {} } } }
                    tbody {
                        @for silence in silences {
                            tr {
                                td { (silence["matchers"].as_array().map(|matchers| matchers.iter().map(|m| format!("{}={}", m["name"].as_str().unwrap_or(""), m["value"].as_str().unwrap_or(""))).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                                td.time { (silence_state(lang, silence["status"]["state"].as_str().unwrap_or(""))) }
                                td.time {
                                    @let ends = silence["endsAt"].as_str().unwrap_or("");
                                    (ends.parse::<jiff::Timestamp>().map_or_else(|_| ends.to_string(), |at| context.time(at.as_millisecond())))
                                }
                                td { (silence["createdBy"].as_str().unwrap_or("")) }
                                td { (silence["comment"].as_str().unwrap_or("")) }
                                @if operator {
                                    td {
                                        @if silence["status"]["state"].as_str() != Some("expired") {
                                            form.inline method="post" action="/alerts/silences" {
                                                (csrf_field(context))
                                                input type="hidden" name="action" value="expire";
                                                input type="hidden" name="id" value=(silence["id"].as_str().unwrap_or(""));
                                                button.expire type="submit" { (lang.text("expire")) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}
