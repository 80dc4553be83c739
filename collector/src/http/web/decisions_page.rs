//! `/decisions`: the active-response decisions in force, for security
//! officers and admins: the address, its incident, scope, mode, the agents
//! that applied or refused it, and the time left, with an unblock button
//! (a CSRF-checked form, audited with the officer's name). A banner says
//! when the collector is in dry run. Also the decisions section of an
//! incident's page.

use std::collections::HashMap;

use bytes::Bytes;
use countywatch_wire::ResponseMode;
use http_body_util::Full;
use hyper::Response;
use maud::{Markup, html};

use crate::http::State;
use crate::http::request;
use crate::http::web::i18n::Lang;
use crate::http::web::pages::{csrf_field, layout, time_cell};
use crate::http::web::{PageContext, failure, html};
use crate::incident::auth::Principal;
use crate::incident::decisions::{DecisionFilter, DecisionRecord};
use countywatch_daemon::clock::now_ms;
use countywatch_notify::display::{Language, span};

/// Most decisions listed.
const LIMIT: u32 = 1_000;

/// The page.
pub fn page(state: &State, context: &PageContext) -> Response<Full<Bytes>> {
    let now = now_ms();
    let decisions = match state.store.decisions(DecisionFilter::Active, now, LIMIT) {
        Ok(decisions) => decisions,
        Err(error) => return failure(context, &error),
    };
    let lang = context.lang;
    let done = context.query.get("done").map(String::as_str);
    html(layout(
        context,
        lang.text("decisions"),
        html! {
            h1 { (lang.text("decisions")) }
            @if state.response.mode == ResponseMode::DryRun {
                p.guidance #dry-run { (lang.text("decisions_dry_run")) " " code { "response: {mode: enforce}" } }
            }
            @match done {
                Some("ok") => p #done { (lang.text("decision_removed")) },
                Some(_) => p.error #done { (lang.text("error")) },
                None => {},
            }
            @if decisions.is_empty() {
                p #empty { (lang.text("no_decisions")) }
            } @else {
                (table(context, &decisions, now, true))
            }
        },
    ))
}

/// The decisions an incident caused, for its page (nothing when none).
pub fn incident_section(context: &PageContext, decisions: &[DecisionRecord]) -> Markup {
    let lang = context.lang;
    html! {
        @if !decisions.is_empty() {
            h2 { (lang.text("decisions")) }
            (table(context, decisions, now_ms(), false))
        }
    }
}

fn table(context: &PageContext, decisions: &[DecisionRecord], now: i64, linked: bool) -> Markup {
    let lang = context.lang;
    let officer = context.is_at_least(crate::incident::auth::Role::SecurityOfficer);
    html! {
        table #decisions {
            thead { tr {
                th { (lang.text("address")) } th { (lang.text("scope")) } th { (lang.text("mode")) }
                @if linked { th { (lang.text("incidents")) } }
                th { (lang.text("made_by")) } th { (lang.text("ends")) } th { (lang.text("applied_on")) }
                @if officer { th { (lang.text("actions")) } }
            } }
            tbody {
                @for decision in decisions {
                    tr.decision-row data-address=(decision.address) {
                        td { code { (decision.address) } }
                        td { (scope_text(lang, decision)) }
                        td data-mode=(crate::incident::decisions::mode_name(decision.mode)) {
                            @match decision.mode {
                                ResponseMode::Enforce => (lang.text("mode_enforce")),
                                ResponseMode::DryRun => (lang.text("mode_dry_run")),
                            }
                        }
                        @if linked {
                            td { @if let Some(id) = decision.incident_id { a href={ "/incidents/" (id) } { "#" (id) } } }
                        }
                        td { (decision.made_by) }
                        @if let Some(removed) = decision.removed_ms {
                            td { (lang.text("decision_lifted")) " " (context.time(removed)) " " (decision.removed_by.clone().unwrap_or_default()) }
                        } @else if decision.expires_ms <= now {
                            (time_cell(context, decision.expires_ms))
                        } @else {
                            td.time { (context.time(decision.expires_ms)) " (" (left(lang, now, decision.expires_ms)) ")" }
                        }
                        td.answers {
                            @for answer in &decision.acks {
                                @if answer.applied {
                                    span.applied { (answer.agent) } " "
                                } @else {
                                    span.refused title=(answer.reason) { (answer.agent) " (" (lang.text("refused")) ": " (answer.reason) ")" } " "
                                }
                            }
                        }
                        @if officer {
                            td {
                                @if decision.is_active(now) {
                                    form.unblock method="post" action="/decisions" {
                                        (csrf_field(context))
                                        input type="hidden" name="id" value=(decision.id);
                                        button.unblock type="submit" { (lang.text("unblock")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn scope_text(lang: Lang, decision: &DecisionRecord) -> String {
    match decision.scope.as_str() {
        "county" => lang.text("scope_county").to_string(),
        _ => decision.hosts.join(", "),
    }
}

/// Time left until `until`, in the page's language.
fn left(lang: Lang, now: i64, until: i64) -> String {
    match lang {
        Lang::Zh => format!("剩余 {}", span(Language::Zh, until - now)),
        Lang::En => format!("{} left", span(Language::En, until - now)),
    }
}

/// The unblock form (its CSRF token already checked): lifts the decision
/// as the officer, audited, and returns to the page.
pub fn unblock(
    state: &State,
    principal: &Principal,
    form: &HashMap<String, String>,
) -> Response<Full<Bytes>> {
    let id = form
        .get("id")
        .and_then(|id| id.trim().parse::<i64>().ok())
        .unwrap_or(0);
    let done = match state.store.remove_decision(id, &principal.user, now_ms()) {
        Ok(true) => "ok",
        Ok(false) => "gone",
        Err(error) => {
            tracing::error!(id, "cannot lift a decision: {error:#}");
            "failed"
        }
    };
    request::redirect(&format!("/decisions?done={done}"))
}
