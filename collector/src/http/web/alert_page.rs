//! `/alerts/{fingerprint}`: the page every notification's details link
//! opens. An alert raised by a detection rule leads on to its incident
//! (found by the alert's labels, which are the incident's, so the link
//! keeps working after the alert's short lease ends). Any other alert shows
//! its labels, annotations, state, start, the receivers last notified of
//! it and the silences that match it, with a form to silence it (operators
//! and above).

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use maud::html;

use crate::audit::Outcome;
use crate::http::State;
use crate::http::request;
use crate::http::web::pages::{csrf_field, layout};
use crate::http::web::{PageContext, failure, html};
use crate::incident::auth::{Principal, Role};
use countywatch_daemon::clock::now_ms;
use countywatch_notify::alert::{Alert, Fingerprint};
use countywatch_notify::matcher::{MatchType, Matcher, MatcherError, all_match};
use countywatch_notify::silence::SilenceState;

/// How many recent incidents are searched for a detection alert's.
const RECENT_INCIDENTS: u32 = 10_000;
/// How long a silence made from the page lasts unless the form says.
const DEFAULT_SILENCE: &str = "2h";

/// The fingerprint in `/alerts/{fingerprint}[/silence]`.
pub fn fingerprint_in(path: &str) -> Option<Fingerprint> {
    let text = path.strip_prefix("/alerts/")?.split('/').next()?;
    u64::from_str_radix(text, 16).ok().map(Fingerprint)
}

fn active(state: &State, fingerprint: Fingerprint) -> Option<Alert> {
    state
        .notifier
        .active_alerts()
        .into_iter()
        .find(|alert| alert.fingerprint() == fingerprint)
}

/// `GET /alerts/{fingerprint}`.
pub fn show(state: &State, context: &PageContext) -> Response<Full<Bytes>> {
    let Some(fingerprint) = fingerprint_in(&context.path) else {
        return not_found(context);
    };
    match state
        .store
        .incident_for_alert(fingerprint, RECENT_INCIDENTS)
    {
        Ok(Some(id)) => return request::redirect(&format!("/incidents/{id}")),
        Ok(None) => {}
        Err(error) => return failure(context, &error),
    }
    let Some(alert) = active(state, fingerprint) else {
        return not_found(context);
    };
    let lang = context.lang;
    let now = now_ms();
    let silences: Vec<_> = state
        .notifier
        .silences()
        .list()
        .into_iter()
        .filter(|silence| silence.state(now) != SilenceState::Expired)
        .filter(|silence| all_match(&silence.matchers, &alert.labels))
        .collect();
    let silenced = silences
        .iter()
        .any(|silence| silence.state(now) == SilenceState::Active);
    // A page without the log is still useful: the failure is logged.
    let notified = state
        .notifier
        .last_notified(fingerprint)
        .unwrap_or_else(|error| {
            tracing::error!("cannot read the notification log: {error:#}");
            Vec::new()
        });
    let may_silence = context
        .principal
        .as_ref()
        .is_some_and(|principal| principal.role >= Role::Operator);
    let name = alert.name().to_string();
    html(layout(
        context,
        &name,
        html! {
            h1 #alert-name { (name) }
            dl {
                dt { (lang.text("status")) }
                dd #alert-state { @if silenced { "silenced" } @else { "firing" } }
                dt { (lang.text("first_seen")) }
                dd #alert-start { (context.time(alert.starts_at_ms)) }
                dt { "fingerprint" } dd { (fingerprint) }
            }
            h2 { "labels" }
            table #alert-labels { tbody { @for (label, value) in &alert.labels { tr { th { (label) } td { (value) } } } } }
            h2 { "annotations" }
            table #alert-annotations { tbody { @for (annotation, value) in &alert.annotations { tr { th { (annotation) } td { (value) } } } } }
            h2 { (lang.text("alerts")) }
            table #alert-silences {
                tbody {
                    @for silence in &silences {
                        tr {
                            td { (silence.id) }
                            td { (silence.matchers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
                            td { (context.time(silence.starts_at_ms)) " - " (context.time(silence.ends_at_ms)) }
                            td { (silence.created_by) }
                            td { (silence.comment) }
                        }
                    }
                }
            }
            h2 { "notified" }
            table #alert-notified {
                tbody {
                    @for (receiver, sent_ms) in &notified {
                        tr { td { (receiver) } td.time { (context.time(*sent_ms)) } }
                    }
                }
            }
            @if may_silence {
                form method="post" action={ "/alerts/" (fingerprint) "/silence" } {
                    (csrf_field(context))
                    p { label for="duration" { "duration" } " "
                        input #duration type="text" name="duration" value=(DEFAULT_SILENCE) required; }
                    p { label for="comment" { (lang.text("comment")) } " "
                        input #comment type="text" name="comment" required; }
                    p { button #silence type="submit" { "silence" } }
                }
            }
        },
    ))
}

/// `POST /alerts/{fingerprint}/silence` (CSRF token already checked):
/// silences exactly this alert's labels for the form's duration.
pub fn silence(
    state: &State,
    principal: &Principal,
    form: &HashMap<String, String>,
    context: &PageContext,
) -> Response<Full<Bytes>> {
    let Some(fingerprint) = fingerprint_in(&context.path) else {
        return not_found(context);
    };
    let Some(alert) = active(state, fingerprint) else {
        return not_found(context);
    };
    let back = format!("/alerts/{fingerprint}");
    let comment = form.get("comment").map_or("", |text| text.trim());
    let duration = form
        .get("duration")
        .map_or(DEFAULT_SILENCE, |text| text.trim());
    let Ok(duration) = countywatch_config::duration::parse(duration) else {
        return request::redirect(&format!("{back}?error=duration"));
    };
    if comment.is_empty() || duration.is_zero() {
        return request::redirect(&format!("{back}?error=comment"));
    }
    let matchers: Result<Vec<Matcher>, MatcherError> = alert
        .labels
        .iter()
        .map(|(name, value)| Matcher::new(name, MatchType::Equal, value))
        .collect();
    let now = now_ms();
    let ends = now.saturating_add(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX));
    let added = matchers.map_err(anyhow::Error::from).and_then(|matchers| {
        state
            .notifier
            .silences()
            .add(matchers, now, ends, &principal.user, comment, now)
            .map_err(anyhow::Error::from)
    });
    let id = match added {
        Ok(id) => id,
        Err(error) => return failure(context, &error),
    };
    if let Err(error) = state.store.audit(
        &principal.user,
        "silence.created",
        &format!("silence/{id}"),
        Outcome::Success,
        &format!(
            "alert {fingerprint} for {}: {comment}",
            countywatch_config::duration::PromDuration(duration)
        ),
    ) {
        tracing::error!("cannot audit a silence: {error:#}");
    }
    request::redirect(&back)
}

fn not_found(context: &PageContext) -> Response<Full<Bytes>> {
    let mut response = html(crate::http::web::pages::message(
        context,
        "404: this alert is not active (it resolved, or its details expired)",
    ));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}
