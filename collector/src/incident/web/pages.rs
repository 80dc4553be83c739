//! The HTML of each page. maud escapes every `(value)`, so evidence (log
//! lines an attacker wrote) can only ever be text; nothing here uses
//! `PreEscaped`. Forms carry the session's CSRF token.

use std::collections::BTreeMap;

use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

use crate::incident::auth::Role;
use crate::incident::csrf;
use crate::incident::store::{EvidenceRecord, Incident, IncidentFilter, Status, TimelineEntry};
use crate::incident::web::PageContext;
use crate::incident::web::i18n::Lang;

/// Severities, most severe first, as the queue counts them.
const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "info"];

fn layout(context: &PageContext, title: &str, body: Markup) -> Markup {
    let lang = context.lang;
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
                    @if context.principal.is_some() {
                        a href="/incidents" { (lang.text("incidents")) }
                        a href="/agents" { (lang.text("agents")) }
                        a href="/alerts" { (lang.text("alerts")) }
                    }
                    span.who {
                        a href={ (context.path) "?lang=zh" } { "中文" }
                        " | "
                        a href={ (context.path) "?lang=en" } { "English" }
                        @if let Some(principal) = &context.principal {
                            " · " (lang.text("signed_in_as")) ": "
                            span #whoami { (principal.user) } " (" (principal.role.as_str()) ") "
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

fn csrf_field(context: &PageContext) -> Markup {
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

fn status_text(lang: Lang, status: Status) -> &'static str {
    match status {
        Status::Open => lang.text("open"),
        Status::Acknowledged => lang.text("acknowledged"),
        Status::Resolved => lang.text("resolved"),
        Status::FalsePositive => lang.text("false_positive"),
    }
}

fn severity_text(lang: Lang, severity: &str) -> &'static str {
    match severity {
        "critical" => lang.text("critical"),
        "high" => lang.text("high"),
        "medium" => lang.text("medium"),
        "low" => lang.text("low"),
        _ => lang.text("info"),
    }
}

/// A queue URL with the current filter and another sort.
fn sort_link(filter: &IncidentFilter, column: &str) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    let pairs = [
        ("status", &filter.status),
        ("severity", &filter.severity),
        ("host", &filter.host),
        ("rule", &filter.rule),
        ("q", &filter.q),
    ];
    for (name, value) in pairs {
        if let Some(value) = value {
            serializer.append_pair(name, value);
        }
    }
    serializer.append_pair("sort", column);
    let ascending = filter.sort.as_deref() == Some(column) && !filter.asc.unwrap_or(false);
    serializer.append_pair("asc", if ascending { "1" } else { "0" });
    format!("/incidents?{}", serializer.finish())
}

fn export_link(filter: &IncidentFilter, extension: &str) -> String {
    let link = sort_link(filter, filter.sort.as_deref().unwrap_or("last_seen"));
    link.replacen("/incidents?", &format!("/incidents/export.{extension}?"), 1)
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
    let officer = context
        .principal
        .as_ref()
        .is_some_and(|principal| principal.role >= Role::SecurityOfficer);
    let selected = |current: &Option<String>, value: &str| current.as_deref() == Some(value);
    layout(
        context,
        lang.text("incidents"),
        html! {
            h1 { (lang.text("incidents")) }
            p.counts #counts {
                @for severity in SEVERITIES {
                    span class={ "severity-" (severity) } {
                        (severity_text(lang, severity)) ": " (counts.get(severity).copied().unwrap_or(0))
                    }
                }
                (lang.text("total")) ": " span #total { (total) }
            }
            form.filters method="get" action="/incidents" {
                label { (lang.text("status")) " "
                    select name="status" {
                        option value="" { (lang.text("any")) }
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
                button type="submit" { (lang.text("filter")) }
            }
            @if officer {
                p { a #export-csv href=(export_link(filter, "csv")) { (lang.text("export_csv")) } " · "
                    a #export-json href=(export_link(filter, "json")) { (lang.text("export_json")) } }
            }
            @if incidents.is_empty() {
                p #empty { (lang.text("none")) }
            } @else {
                table #incidents {
                    thead { tr {
                        th { a href=(sort_link(filter, "id")) { "#" } }
                        th { a href=(sort_link(filter, "severity")) { (lang.text("severity")) } }
                        th { (lang.text("status")) }
                        th { (lang.text("title")) }
                        th { (lang.text("host")) }
                        th { a href=(sort_link(filter, "first_seen")) { (lang.text("first_seen")) } }
                        th { a href=(sort_link(filter, "last_seen")) { (lang.text("last_seen")) } }
                        th { (lang.text("evidence")) }
                        th { (lang.text("assignee")) }
                    } }
                    tbody {
                        @for incident in incidents {
                            tr {
                                td { a.incident-link href={ "/incidents/" (incident.id) } { (incident.id) } }
                                td class={ "severity-" (incident.severity.as_str()) } { (severity_text(lang, incident.severity.as_str())) }
                                td { (status_text(lang, incident.status)) }
                                td { a href={ "/incidents/" (incident.id) } { (incident.title) } }
                                td { (incident.hosts.join(", ")) }
                                td { (context.time(incident.first_seen_ms)) }
                                td { (context.time(incident.last_seen_ms)) }
                                td { (incident.evidence_count) }
                                td { (incident.assignee.clone().unwrap_or_default()) }
                            }
                        }
                    }
                }
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

/// One incident: facts, evidence, timeline, actions.
pub fn detail(
    context: &PageContext,
    incident: &Incident,
    evidence: &[EvidenceRecord],
    timeline: &[TimelineEntry],
    error: Option<&str>,
) -> Markup {
    let lang = context.lang;
    let officer = context
        .principal
        .as_ref()
        .is_some_and(|principal| principal.role >= Role::SecurityOfficer);
    let action = format!("/incidents/{}/transition", incident.id);
    layout(
        context,
        &incident.title,
        html! {
            h1 #title { "#" (incident.id) " " (incident.title) }
            @if let Some(error) = error { p.error #error { (lang.text("error")) ": " (error) } }
            dl.facts {
                dt { (lang.text("status")) } dd #status data-status=(incident.status.as_str()) { (status_text(lang, incident.status)) }
                dt { (lang.text("severity")) } dd { span class={ "severity-" (incident.severity.as_str()) } { (severity_text(lang, incident.severity.as_str())) } }
                dt { (lang.text("rule")) } dd { code { (incident.rule_id) } }
                dt { (lang.text("group")) } dd { code { (incident.group_key) } }
                dt { (lang.text("host")) } dd #hosts { (incident.hosts.join(", ")) }
                dt { (lang.text("first_seen")) } dd { (context.time(incident.first_seen_ms)) }
                dt { (lang.text("last_seen")) } dd { (context.time(incident.last_seen_ms)) }
                dt { (lang.text("assignee")) } dd #assignee { (incident.assignee.clone().unwrap_or_default()) }
                @if let Some(reason) = &incident.reason { dt { (lang.text("reason")) } dd { (reason) } }
                @if !incident.tags.is_empty() { dt { (lang.text("tags")) } dd { (incident.tags.join(", ")) } }
                @for (name, value) in &incident.annotations { dt { (name) } dd { (value) } }
            }
            h2 { (lang.text("evidence")) " (" (incident.evidence_count) ")" }
            table #evidence {
                thead { tr {
                    th { (lang.text("time")) } th { (lang.text("host")) } th { (lang.text("kind")) }
                    th { (lang.text("user")) } th { (lang.text("source")) } th { (lang.text("raw")) }
                } }
                tbody {
                    @for record in evidence {
                        @let event = serde_json::to_value(&record.event).unwrap_or(Value::Null);
                        tr.evidence-row {
                            td { (context.time(record.event.timestamp_ms)) }
                            td { (record.event.host) }
                            td { (record.event.kind.as_str()) }
                            td.evidence-user { (field_text(&event, "user")) }
                            td { (field_text(&event, "src_ip")) }
                            td { pre.evidence-raw { (record.event.raw) } }
                        }
                    }
                }
            }
            h2 { (lang.text("timeline")) }
            table #timeline {
                thead { tr { th { (lang.text("time")) } th { (lang.text("actor")) } th { (lang.text("action")) } th { (lang.text("detail")) } } }
                tbody {
                    @for entry in timeline {
                        tr { td { (context.time(entry.at_ms)) } td { (entry.actor) } td { (entry.action) } td { (entry.detail) } }
                    }
                }
            }
            @if officer {
                h2 { (lang.text("actions")) }
                div.actions {
                    @if matches!(incident.status, Status::Open | Status::Acknowledged) {
                        form #acknowledge-form method="post" action=(action) {
                            (csrf_field(context))
                            input type="hidden" name="status" value="acknowledged";
                            label { (lang.text("assignee")) " " input #ack-assignee type="text" name="assignee"; }
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
        },
    )
}

/// The agents overview.
pub fn agents(context: &PageContext, agents: &[Value]) -> Markup {
    let lang = context.lang;
    let time = |value: &Value| time_value(context, value);
    layout(
        context,
        lang.text("agents"),
        html! {
            h1 { (lang.text("agents")) }
            table #agents {
                thead { tr { th { (lang.text("name")) } th { (lang.text("status")) } th { (lang.text("version")) } th { (lang.text("address")) } th { (lang.text("last_seen")) } th { (lang.text("cert_expiry")) } } }
                tbody {
                    @for agent in agents {
                        @let state = if !agent["revoked_ms"].is_null() { "revoked" } else if agent["up"].as_bool().unwrap_or(false) { "up" } else { "down" };
                        tr {
                            td { (agent["name"].as_str().unwrap_or("")) }
                            td class={ "agent-" (state) } { (lang.text(state)) }
                            td { (agent["version"].as_str().unwrap_or("")) }
                            td { (agent["address"].as_str().unwrap_or("")) }
                            td { (time(&agent["last_seen_ms"])) }
                            td { (time(&agent["certificate_expires_ms"])) }
                        }
                    }
                }
            }
        },
    )
}

/// Firing alerts and silences.
pub fn alerts(context: &PageContext, firing: &Value, silences: &[Value]) -> Markup {
    let lang = context.lang;
    let empty = Vec::new();
    let alerts = firing["alerts"].as_array().unwrap_or(&empty);
    let pairs = |value: &Value| -> String {
        value
            .as_object()
            .map(|map| {
                map.iter()
                    .map(|(name, value)| format!("{name}={}", value.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    layout(
        context,
        lang.text("alerts"),
        html! {
            h1 { (lang.text("firing")) }
            @if alerts.is_empty() { p { (lang.text("nothing")) } }
            @else {
                table #alerts { tbody {
                    @for alert in alerts {
                        tr { td { (pairs(&alert["labels"])) } td { (pairs(&alert["annotations"])) } td { (time_value(context, &alert["fired_at_ms"])) } }
                    }
                } }
            }
            h1 { (lang.text("silences")) }
            @if silences.is_empty() { p { (lang.text("nothing")) } }
            @else {
                table #silences {
                    thead { tr { th { (lang.text("matchers")) } th { (lang.text("status")) } th { (lang.text("ends")) } th { (lang.text("created_by")) } th { (lang.text("comment")) } } }
                    tbody {
                        @for silence in silences {
                            tr {
                                td { (silence["matchers"].as_array().map(|matchers| matchers.iter().map(|m| format!("{}={}", m["name"].as_str().unwrap_or(""), m["value"].as_str().unwrap_or(""))).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                                td { (silence["status"]["state"].as_str().unwrap_or("")) }
                                td { (silence["endsAt"].as_str().unwrap_or("")) }
                                td { (silence["createdBy"].as_str().unwrap_or("")) }
                                td { (silence["comment"].as_str().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn time_value(context: &PageContext, value: &Value) -> String {
    value
        .as_i64()
        .map(|ms| context.time(ms))
        .unwrap_or_default()
}
