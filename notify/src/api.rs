//! The notifier's HTTP API on the collector's HTTP listener, in
//! Alertmanager's API v2 shapes so that its tools (amtool, Prometheus's
//! alerting config) work against the collector:
//!
//! - `POST /api/v2/alerts`: submit alerts (when `notify.accept_alerts_api`).
//! - `GET /api/v2/silences`: list silences.
//! - `POST /api/v2/silences`: create one (when `notify.accept_silences_api`),
//!   answers `{"silenceID": ...}`.
//! - `DELETE /api/v2/silence/{id}`: expire one (same switch).
//! - `GET /api/v2/status`: the configuration as Alertmanager configuration
//!   text, uptime and version, so that `amtool config show` and `amtool
//!   config routes test --alertmanager.url` work (admins only: the
//!   configuration names every receiver).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Notifier;
use crate::alert::{Alert, LabelSet, parse_rfc3339, rfc3339};
use crate::matcher::{MatchType, Matcher};
use crate::silence::{Silence, SilenceError};
use countywatch_daemon::clock::now_ms;

/// Largest request body: 10,000 alerts of a few hundred bytes each.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Time allowed to read a body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// An alert in Alertmanager's API v2 (`postableAlert`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert {
    labels: LabelSet,
    #[serde(default)]
    annotations: LabelSet,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: String,
}

/// A matcher in Alertmanager's API v2.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiMatcher {
    name: String,
    value: String,
    #[serde(default)]
    is_regex: bool,
    #[serde(default = "yes")]
    is_equal: bool,
}

fn yes() -> bool {
    true
}

/// A silence in Alertmanager's API v2 (`postableSilence`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableSilence {
    #[serde(default)]
    id: Option<String>,
    matchers: Vec<ApiMatcher>,
    starts_at: String,
    ends_at: String,
    created_by: String,
    #[serde(default)]
    comment: String,
}

/// Whether the path belongs to this API.
pub fn owns(path: &str) -> bool {
    path.starts_with("/api/v2/")
}

/// Handles one API request that the route table let through; `user` is the
/// authenticated caller, recorded as a new silence's `createdBy` whatever
/// the body says.
pub async fn handle(
    notifier: Arc<Notifier>,
    request: Request<Incoming>,
    user: Option<&str>,
) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    match (method, path.as_str()) {
        (Method::POST, "/api/v2/alerts") if notifier.accept_alerts_api => {
            let body = match read_body(request).await {
                Ok(body) => body,
                Err(response) => return response,
            };
            post_alerts(&notifier, &body).await
        }
        (Method::POST, "/api/v2/alerts") => error(
            StatusCode::FORBIDDEN,
            "alerts are not accepted on this API; set notify.accept_alerts_api: true",
        ),
        (Method::GET, "/api/v2/alerts") => {
            let now = now_ms();
            // Only `http.open_alerts_read` lets an anonymous caller here,
            // and it opens alerting-rule alerts only: a detection's labels
            // tell an intruder whether they were noticed.
            let active =
                notifier.active_alerts_from(user.is_none().then_some(crate::Origin::AlertingRule));
            let shown = notifier.shown();
            let index = shown.inhibitor.index(
                active
                    .iter()
                    .map(|alert| (alert.fingerprint(), &alert.labels)),
            );
            let alerts: Vec<Value> = active
                .iter()
                .map(|alert| {
                    let inhibited_by: Vec<String> = shown
                        .inhibitor
                        .inhibited_by(&index, alert.fingerprint(), &alert.labels)
                        .iter()
                        .map(ToString::to_string)
                        .collect();
                    let receivers: Vec<&str> = shown
                        .routes
                        .matching(&alert.labels)
                        .iter()
                        .map(|route| route.receiver.as_str())
                        .collect();
                    alert_json(
                        alert,
                        &notifier.silences().silencing(&alert.labels, now),
                        &inhibited_by,
                        &receivers,
                    )
                })
                .collect();
            respond(StatusCode::OK, Value::Array(alerts))
        }
        (Method::GET, "/api/v2/status") => respond(
            StatusCode::OK,
            json!({
                "cluster": {"status": "disabled", "peers": []},
                "config": {"original": notifier.shown().config_original},
                "uptime": rfc3339(notifier.started_ms),
                "versionInfo": {
                    "branch": "",
                    "buildDate": "",
                    "buildUser": "",
                    "goVersion": "",
                    "revision": "",
                    "version": format!("countywatch-collector {}", env!("CARGO_PKG_VERSION")),
                },
            }),
        ),
        (Method::GET, "/api/v2/silences") => {
            let now = now_ms();
            let list: Vec<Value> = notifier
                .silences()
                .list()
                .iter()
                .map(|silence| silence_json(silence, now))
                .collect();
            respond(StatusCode::OK, Value::Array(list))
        }
        (Method::POST, "/api/v2/silences") if notifier.accept_silences_api => {
            let body = match read_body(request).await {
                Ok(body) => body,
                Err(response) => return response,
            };
            post_silence(&notifier, &body, user)
        }
        (Method::DELETE, path)
            if path.starts_with("/api/v2/silence/") && notifier.accept_silences_api =>
        {
            let id = &path["/api/v2/silence/".len()..];
            match notifier.silences().expire(id, now_ms()) {
                Ok(true) => {
                    tracing::info!(silence = id, "silence expired through the API");
                    respond(StatusCode::OK, json!({}))
                }
                Ok(false) => error(StatusCode::NOT_FOUND, "no unexpired silence with that id"),
                Err(storage) => {
                    tracing::error!(%storage, "cannot expire a silence");
                    error(StatusCode::INTERNAL_SERVER_ERROR, "storage error")
                }
            }
        }
        (Method::POST | Method::DELETE, "/api/v2/silences") | (Method::DELETE, _)
            if path.starts_with("/api/v2/silence") =>
        {
            error(
                StatusCode::FORBIDDEN,
                "silences cannot be changed on this API; set notify.accept_silences_api: true or use `countywatch-collector silence`",
            )
        }
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn read_body(request: Request<Incoming>) -> Result<Bytes, Response<Full<Bytes>>> {
    let body = Limited::new(request.into_body(), MAX_BODY_BYTES);
    match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(_)) => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body too large or broken",
        )),
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            "body not received in time",
        )),
    }
}

async fn post_alerts(notifier: &Notifier, body: &[u8]) -> Response<Full<Bytes>> {
    let posted: Vec<PostableAlert> = match serde_json::from_slice(body) {
        Ok(posted) => posted,
        Err(problem) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid alerts: {problem}"),
            );
        }
    };
    let now = now_ms();
    let mut alerts = Vec::with_capacity(posted.len());
    for mut item in posted {
        // Alertmanager drops empty label values on arrival: an empty label
        // is an absent one, so it must not split groups or fingerprints.
        item.labels.retain(|_, value| !value.is_empty());
        if item.labels.is_empty() {
            return error(StatusCode::BAD_REQUEST, "an alert needs at least one label");
        }
        if let Some(name) = item
            .labels
            .keys()
            .find(|name| !crate::matcher::valid_label_name(name))
        {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid label name {name:?}"),
            );
        }
        let starts_at_ms = match item
            .starts_at
            .as_deref()
            .filter(|text| !text.starts_with("0001-"))
        {
            Some(text) => match parse_rfc3339(text) {
                Ok(ms) => ms,
                Err(problem) => return error(StatusCode::BAD_REQUEST, &problem),
            },
            None => now,
        };
        let ends_at_ms = match item
            .ends_at
            .as_deref()
            .filter(|text| !text.starts_with("0001-"))
        {
            Some(text) => match parse_rfc3339(text) {
                Ok(ms) => Some(ms),
                Err(problem) => return error(StatusCode::BAD_REQUEST, &problem),
            },
            None => None,
        };
        alerts.push(Alert {
            labels: item.labels,
            annotations: item.annotations,
            starts_at_ms,
            ends_at_ms,
            generator_url: item.generator_url,
            value: None,
        });
    }
    match notifier.submit(alerts).await {
        Ok(()) => respond(StatusCode::OK, json!({})),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "the notifier is stopping"),
    }
}

fn post_silence(notifier: &Notifier, body: &[u8], user: Option<&str>) -> Response<Full<Bytes>> {
    let mut posted: PostableSilence = match serde_json::from_slice(body) {
        Ok(posted) => posted,
        Err(problem) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid silence: {problem}"),
            );
        }
    };
    if posted.id.as_deref().is_some_and(|id| !id.is_empty()) {
        return error(
            StatusCode::BAD_REQUEST,
            "updating a silence is not supported: expire it and create a new one",
        );
    }
    let mut matchers = Vec::new();
    for matcher in &posted.matchers {
        let kind = match (matcher.is_regex, matcher.is_equal) {
            (false, true) => MatchType::Equal,
            (false, false) => MatchType::NotEqual,
            (true, true) => MatchType::Regex,
            (true, false) => MatchType::NotRegex,
        };
        match Matcher::new(&matcher.name, kind, &matcher.value) {
            Ok(matcher) => matchers.push(matcher),
            Err(problem) => return error(StatusCode::BAD_REQUEST, &problem),
        }
    }
    let (starts, ends) = match (
        parse_rfc3339(&posted.starts_at),
        parse_rfc3339(&posted.ends_at),
    ) {
        (Ok(starts), Ok(ends)) => (starts, ends),
        (Err(problem), _) | (_, Err(problem)) => return error(StatusCode::BAD_REQUEST, &problem),
    };
    // Who made a silence is who authenticated, not what the body claims.
    if let Some(user) = user {
        posted.created_by = user.to_string();
    }
    let now = now_ms();
    match notifier.silences().add(
        matchers,
        starts.max(now),
        ends,
        &posted.created_by,
        &posted.comment,
        now,
    ) {
        Ok(id) => {
            tracing::info!(silence = %id, created_by = %posted.created_by, "silence created through the API");
            respond(StatusCode::OK, json!({"silenceID": id}))
        }
        Err(SilenceError::Invalid(problem)) => error(StatusCode::BAD_REQUEST, &problem),
        Err(SilenceError::Storage(storage)) => {
            tracing::error!(%storage, "cannot store a silence");
            error(StatusCode::INTERNAL_SERVER_ERROR, "storage error")
        }
    }
}

/// An alert in Alertmanager's API v2 shape (`gettableAlert`); silenced
/// alerts are `suppressed` with the silences' ids.
fn alert_json(
    alert: &Alert,
    silenced_by: &[String],
    inhibited_by: &[String],
    receivers: &[&str],
) -> Value {
    let state = if silenced_by.is_empty() && inhibited_by.is_empty() {
        "active"
    } else {
        "suppressed"
    };
    let receivers: Vec<Value> = receivers.iter().map(|name| json!({"name": name})).collect();
    json!({
        "labels": alert.labels,
        "annotations": alert.annotations,
        "startsAt": rfc3339(alert.starts_at_ms),
        "endsAt": alert.ends_at_ms.map(rfc3339),
        "updatedAt": rfc3339(now_ms()),
        "generatorURL": alert.generator_url,
        "fingerprint": alert.fingerprint().to_string(),
        "receivers": receivers,
        "status": {"state": state, "silencedBy": silenced_by, "inhibitedBy": inhibited_by},
    })
}

/// A silence in Alertmanager's API v2 shape (`gettableSilence`).
pub fn silence_json(silence: &Silence, now: i64) -> Value {
    let matchers: Vec<Value> = silence
        .matchers
        .iter()
        .map(|matcher| {
            json!({
                "name": matcher.name,
                "value": matcher.value,
                "isRegex": matches!(matcher.kind, MatchType::Regex | MatchType::NotRegex),
                "isEqual": matches!(matcher.kind, MatchType::Equal | MatchType::Regex),
            })
        })
        .collect();
    json!({
        "id": silence.id,
        "matchers": matchers,
        "startsAt": rfc3339(silence.starts_at_ms),
        "endsAt": rfc3339(silence.ends_at_ms),
        "updatedAt": rfc3339(silence.updated_at_ms),
        "createdBy": silence.created_by,
        "comment": silence.comment,
        "status": {"state": silence.state(now).as_str()},
    })
}

fn respond(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response<Full<Bytes>> {
    respond(status, json!({"error": message.to_string()}))
}
