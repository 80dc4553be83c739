//! The alerts page's silence forms, for operators: silence a firing alert
//! (its labels prefilled as equality matchers) for a chosen time, or
//! expire a silence. Both go through the notifier's silence store, as the
//! Alertmanager API does, and are audited with the user's name.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;

use crate::audit::Outcome;
use crate::http::State;
use crate::http::request;
use crate::incident::auth::Principal;
use countywatch_daemon::clock::now_ms;
use countywatch_notify::alert::LabelSet;
use countywatch_notify::matcher::{self, MatchType, Matcher, MatcherError};
use countywatch_notify::silence::SilenceError;

/// The durations offered: form value, text key, milliseconds.
pub const DURATIONS: &[(&str, &str, i64)] = &[
    ("1h", "for_1h", 3_600_000),
    ("24h", "for_24h", 86_400_000),
    ("7d", "for_7d", 7 * 86_400_000),
];

/// An alert's labels as the form's matchers (`{a="b",c="d"}`).
pub fn matchers_of(labels: &LabelSet) -> String {
    let matchers: Vec<Matcher> = labels
        .iter()
        .filter_map(|(name, value)| Matcher::new(name, MatchType::Equal, value).ok())
        .collect();
    matcher::list_to_string(&matchers)
}

/// Why a change from the form was refused; the text goes into the audit
/// entry.
#[derive(Debug, thiserror::Error)]
enum ChangeError {
    /// The silence to expire does not exist or has already ended.
    #[error("no such unexpired silence")]
    NoSuchSilence,
    /// The matchers typed into the form do not parse.
    #[error(transparent)]
    Matchers(MatcherError),
    /// The silence store refused the change.
    #[error(transparent)]
    Silences(SilenceError),
}

/// Applies the form (its CSRF token already checked) and returns to the
/// alerts page with the outcome.
pub fn change(
    state: &State,
    principal: &Principal,
    form: &HashMap<String, String>,
) -> Response<Full<Bytes>> {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("").trim();
    let now = now_ms();
    let silences = state.notifier.silences();
    let (action, target, result): (&str, String, Result<String, ChangeError>) =
        match field("action") {
            "expire" => {
                let id = field("id");
                (
                    "silence.expired",
                    format!("silence/{id}"),
                    match silences.expire(id, now) {
                        Ok(true) => Ok(String::new()),
                        Ok(false) => Err(ChangeError::NoSuchSilence),
                        Err(error) => Err(ChangeError::Silences(error)),
                    },
                )
            }
            _ => {
                let length = DURATIONS
                    .iter()
                    .find(|(value, _, _)| *value == field("duration"))
                    .map_or(3_600_000, |(_, _, length)| *length);
                let comment = match field("comment") {
                    "" => "silenced from the alerts page",
                    comment => comment,
                };
                let created = matcher::parse_list(field("matchers"))
                    .map_err(ChangeError::Matchers)
                    .and_then(|matchers| {
                        silences
                            .add(
                                matchers,
                                now,
                                now.saturating_add(length),
                                &principal.user,
                                comment,
                                now,
                            )
                            .map_err(ChangeError::Silences)
                    });
                match created {
                    Ok(id) => (
                        "silence.created",
                        format!("silence/{id}"),
                        Ok(format!("{} for {}", field("matchers"), field("duration"))),
                    ),
                    Err(error) => ("silence.created", "silences".to_string(), Err(error)),
                }
            }
        };
    let (outcome, details, done) = match &result {
        Ok(details) => (Outcome::Success, details.clone(), "ok"),
        Err(error) => (Outcome::Failure, error.to_string(), "refused"),
    };
    if let Err(error) = state
        .store
        .audit(&principal.user, action, &target, outcome, &details)
    {
        tracing::error!("cannot audit a silence change: {error:#}");
    }
    request::redirect(&format!("/alerts?done={done}"))
}
