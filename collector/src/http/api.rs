//! The JSON API under `/api/v1/` (described in `openapi.json`, served at
//! `/api/v1/openapi.json`): incidents with filters, detail with evidence and
//! timeline, transitions, comments, exports, the raw events search, agents,
//! firing alerts, silences, the audit trail and users. Roles are checked
//! before these handlers run (see `routes.rs`).

use std::collections::HashMap;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::audit::Outcome;
use crate::http::request::{self, json_error};
use crate::http::routes::Endpoint;
use crate::http::{Authorized, State};
use crate::incident::event_search;
use crate::incident::export;
use crate::incident::lifecycle::{Transition, TransitionError};
use crate::incident::store::{IncidentFilter, Status};
use countywatch_daemon::clock::now_ms;
use countywatch_notify::display::Display;

/// The OpenAPI description of this API.
pub const OPENAPI: &str = include_str!("openapi.json");
/// Most evidence events returned with an incident.
pub const MAX_EVIDENCE: u32 = 1_000;
/// Most incidents in one export.
pub const MAX_EXPORT: u32 = 100_000;

/// The Unix-millisecond fields the API writes, each with the RFC 3339
/// sibling added next to it in the display zone's offset
/// (`first_seen_ms` and `first_seen_at`): scripts keep the numbers, people
/// and tools that parse dates read the strings. Only these names, so a
/// field an agent wrote into an event is never rewritten.
const TIME_FIELDS: &[(&str, &str)] = &[
    ("first_seen_ms", "first_seen_at"),
    ("last_seen_ms", "last_seen_at"),
    ("closed_ms", "closed_at"),
    ("at_ms", "at"),
    ("timestamp_ms", "timestamp"),
    ("received_ms", "received_at"),
    ("revoked_ms", "revoked_at"),
    ("enrolled_ms", "enrolled_at"),
    ("certificate_expires_ms", "certificate_expires_at"),
    ("active_at_ms", "active_at"),
    ("fired_at_ms", "fired_at"),
    ("created_ms", "created_at"),
];

/// Adds the RFC 3339 sibling of every [`TIME_FIELDS`] number in `value`,
/// at any depth; a sibling name already present is left as it is.
pub fn with_times(display: &Display, mut value: Value) -> Value {
    add_times(display, &mut value);
    value
}

fn add_times(display: &Display, value: &mut Value) {
    match value {
        Value::Object(object) => {
            for (millis, at) in TIME_FIELDS {
                if let Some(ms) = object.get(*millis).and_then(Value::as_i64)
                    && !object.contains_key(*at)
                {
                    object.insert((*at).to_string(), Value::String(display.rfc3339(ms)));
                }
            }
            for child in object.values_mut() {
                add_times(display, child);
            }
        }
        Value::Array(items) => {
            for item in items {
                add_times(display, item);
            }
        }
        _ => {}
    }
}

/// A transition request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransitionBody {
    /// `acknowledged`, `resolved`, `false_positive` or `open`.
    status: String,
    /// Who takes it (acknowledged).
    #[serde(default)]
    assignee: Option<String>,
    /// Why (required for resolved and false_positive).
    #[serde(default)]
    reason: Option<String>,
}

/// A comment request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommentBody {
    /// The comment.
    text: String,
}

/// Serves an authorized API request.
pub fn serve(
    state: &State,
    request: &Request<Bytes>,
    authorized: &Authorized,
) -> Response<Full<Bytes>> {
    let query = request::query(request);
    let user = authorized
        .principal
        .as_ref()
        .map_or("anonymous", |principal| principal.user.as_str())
        .to_string();
    let result = match authorized.route.endpoint {
        Endpoint::OpenApi => Ok(request::respond(
            StatusCode::OK,
            "application/json",
            OPENAPI,
        )),
        Endpoint::ApiWhoami => Ok(request::json(
            StatusCode::OK,
            &json!({
                "user": user,
                "role": authorized.principal.as_ref().map(|principal| principal.role.as_str()),
            }),
        )),
        Endpoint::ApiIncidents => list(state, &query),
        Endpoint::ApiIncident => detail(state, authorized.id.unwrap_or(0)),
        Endpoint::ApiTransition | Endpoint::ApiComment => {
            change(state, authorized, &user, request.body())
        }
        Endpoint::ApiExport => export_list(state, &query, &user),
        Endpoint::ApiEvents => events(state, &query),
        Endpoint::ApiAgents => agents(state),
        Endpoint::ApiAlerts => Ok(request::json(
            StatusCode::OK,
            &with_times(&state.display, alerts(state)),
        )),
        Endpoint::ApiSilences => {
            let now = now_ms();
            let silences: Vec<Value> = state
                .notifier
                .silences()
                .list()
                .iter()
                .map(|silence| countywatch_notify::api::silence_json(silence, now))
                .collect();
            Ok(request::json(StatusCode::OK, &Value::Array(silences)))
        }
        Endpoint::ApiAudit => {
            let limit = query
                .get("limit")
                .and_then(|limit| limit.parse().ok())
                .unwrap_or(200_u32)
                .min(10_000);
            let filter = crate::audit::AuditFilter {
                target: query
                    .get("target")
                    .map(|target| crate::audit::TextMatch::Is(target.clone())),
                ..Default::default()
            };
            crate::audit::entries(&state.store, &filter, limit, 0).map(|entries| {
                request::json(
                    StatusCode::OK,
                    &with_times(&state.display, json!({ "entries": entries })),
                )
            })
        }
        Endpoint::ApiUsers => users(state),
        _ => Ok(json_error(StatusCode::NOT_FOUND, "not found")),
    };
    result.unwrap_or_else(|error| {
        tracing::error!("API request failed: {error:#}");
        json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the collector's log",
        )
    })
}

fn list(state: &State, query: &HashMap<String, String>) -> anyhow::Result<Response<Full<Bytes>>> {
    let filter = IncidentFilter::from_query(query);
    let (list, total) = state.store.list(&filter)?;
    let counts = state.store.counts_by_severity(&filter)?;
    Ok(request::json(
        StatusCode::OK,
        &with_times(
            &state.display,
            json!({ "total": total, "counts_by_severity": counts, "incidents": list }),
        ),
    ))
}

fn detail(state: &State, id: i64) -> anyhow::Result<Response<Full<Bytes>>> {
    let Some(incident) = state.store.incident(id)? else {
        return Ok(json_error(StatusCode::NOT_FOUND, "no such incident"));
    };
    let evidence = state.store.evidence(id, MAX_EVIDENCE)?;
    let timeline = state.store.timeline(id)?;
    Ok(request::json(
        StatusCode::OK,
        &with_times(
            &state.display,
            json!({ "incident": incident, "evidence": evidence, "timeline": timeline }),
        ),
    ))
}

fn change(
    state: &State,
    authorized: &Authorized,
    user: &str,
    body: &[u8],
) -> anyhow::Result<Response<Full<Bytes>>> {
    let id = authorized.id.unwrap_or(0);
    let now = now_ms();
    let done = if authorized.route.endpoint == Endpoint::ApiComment {
        let Ok(comment) = serde_json::from_slice::<CommentBody>(body) else {
            return Ok(json_error(
                StatusCode::BAD_REQUEST,
                "expected {\"text\": ...}",
            ));
        };
        if comment.text.trim().is_empty() || comment.text.len() > 16 * 1024 {
            return Ok(json_error(
                StatusCode::BAD_REQUEST,
                "a comment is 1 to 16384 bytes",
            ));
        }
        state.store.comment(id, &comment.text, user, now)
    } else {
        let Ok(body) = serde_json::from_slice::<TransitionBody>(body) else {
            return Ok(json_error(
                StatusCode::BAD_REQUEST,
                "expected {\"status\": ..., \"assignee\"?: ..., \"reason\"?: ...}",
            ));
        };
        let Some(to) = Status::parse(&body.status) else {
            return Ok(json_error(StatusCode::BAD_REQUEST, "unknown status"));
        };
        state
            .store
            .transition(
                id,
                &Transition {
                    to,
                    assignee: body.assignee,
                    reason: body.reason,
                },
                user,
                now,
            )
            .map(|_| ())
    };
    Ok(match done {
        Ok(()) => detail(state, id)?,
        Err(TransitionError::NotFound(_)) => json_error(StatusCode::NOT_FOUND, "no such incident"),
        Err(TransitionError::Storage(error)) => return Err(error),
        Err(refused) => json_error(StatusCode::CONFLICT, &refused.to_string()),
    })
}

/// Every incident matching the filter (paged internally), as CSV or JSON.
pub fn export_list(
    state: &State,
    query: &HashMap<String, String>,
    user: &str,
) -> anyhow::Result<Response<Full<Bytes>>> {
    let mut filter = IncidentFilter::from_query(query);
    let mut all = Vec::new();
    filter.offset = Some(0);
    filter.limit = Some(1_000);
    loop {
        let (page, _) = state.store.list(&filter)?;
        let done = page.len() < 1_000 || all.len() + page.len() >= MAX_EXPORT as usize;
        all.extend(page);
        if done {
            break;
        }
        filter.offset = Some(filter.offset.unwrap_or(0).saturating_add(1_000));
    }
    let format = query.get("format").map_or("json", String::as_str);
    state.store.audit(
        user,
        "incidents.exported",
        "incidents",
        Outcome::Success,
        &format!(
            "{} incidents as {format}, filter {}",
            all.len(),
            describe(query)
        ),
    )?;
    let mut response = match format {
        "csv" => request::respond(StatusCode::OK, "text/csv; charset=utf-8", export::csv(&all)),
        _ => request::respond(StatusCode::OK, "application/json", export::json(&all)?),
    };
    let extension = if format == "csv" { "csv" } else { "json" };
    request::add_header(
        &mut response,
        "content-disposition",
        &format!("attachment; filename=\"state.{extension}\""),
    );
    Ok(response)
}

fn describe(query: &HashMap<String, String>) -> String {
    let mut pairs: Vec<String> = query
        .iter()
        .filter(|(name, _)| name.as_str() != "format")
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    pairs.sort();
    pairs.join("&")
}

/// The raw events search over the event log.
fn events(state: &State, query: &HashMap<String, String>) -> anyhow::Result<Response<Full<Bytes>>> {
    let rows = event_search::search(&state.data_dir, &event_search::from_query(query))?;
    Ok(request::json(
        StatusCode::OK,
        &with_times(&state.display, json!({ "events": rows })),
    ))
}

/// Agents as the API and the agents page show them.
pub fn agent_rows(state: &State) -> anyhow::Result<Vec<Value>> {
    let now = now_ms();
    let silent_ms = i64::try_from(state.silent_after.as_millis()).unwrap_or(i64::MAX);
    // The version each agent reports in countywatch_agent_build_info.
    let versions = state
        .metrics
        .label_per_agent("countywatch_agent_build_info", "version");
    // The network devices each agent reports (syslog senders, SNMP
    // targets), as bound to it on first report.
    let mut devices: HashMap<String, Vec<String>> = HashMap::new();
    for (device, agent) in crate::host_binding::list(&state.data_dir)? {
        devices.entry(agent).or_default().push(device);
    }
    Ok(state
        .registry
        .agents()?
        .into_iter()
        .map(|agent| {
            let up = agent.revoked_ms.is_none()
                && agent
                    .last_seen_ms
                    .is_some_and(|seen| now.saturating_sub(seen) <= silent_ms);
            json!({
                "version": versions.get(&agent.name),
                "address": agent.last_address,
                "name": agent.name,
                "up": up,
                "revoked_ms": agent.revoked_ms,
                "enrolled_ms": agent.enrolled_ms,
                "last_seen_ms": agent.last_seen_ms,
                "last_seq": agent.last_seq,
                "certificate_sha256": agent.cert_sha256,
                "certificate_expires_ms": agent.certificate_expires_ms(),
                "devices": devices.remove(&agent.name).unwrap_or_default(),
            })
        })
        .collect())
}

fn agents(state: &State) -> anyhow::Result<Response<Full<Bytes>>> {
    Ok(request::json(
        StatusCode::OK,
        &with_times(&state.display, json!({ "agents": agent_rows(state)? })),
    ))
}

/// The alerting rules' firing alerts.
pub fn alerts(state: &State) -> Value {
    let millis = |time: std::time::SystemTime| {
        time.duration_since(UNIX_EPOCH).map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
    };
    let firing: Vec<Value> = state
        .alerting
        .as_ref()
        .map(|alerting| alerting.firing())
        .unwrap_or_default()
        .into_iter()
        .map(|alert| {
            let labels: serde_json::Map<String, Value> = alert
                .labels
                .into_iter()
                .map(|(name, value)| (name, Value::String(value)))
                .collect();
            let annotations: serde_json::Map<String, Value> = alert
                .annotations
                .into_iter()
                .map(|(name, value)| (name, Value::String(value)))
                .collect();
            json!({
                "labels": labels,
                "annotations": annotations,
                "active_at_ms": millis(alert.active_at),
                "fired_at_ms": millis(alert.fired_at),
                "value": alert.value,
            })
        })
        .collect();
    json!({ "alerts": firing })
}

fn users(state: &State) -> anyhow::Result<Response<Full<Bytes>>> {
    let connection = state.store.read();
    let mut statement = connection
        .prepare_cached("SELECT name, role, created_ms, disabled FROM users ORDER BY name")?;
    let rows = statement.query_map([], |row| {
        Ok(json!({
            "name": row.get::<_, String>(0)?,
            "role": row.get::<_, String>(1)?,
            "created_ms": row.get::<_, i64>(2)?,
            "disabled": row.get::<_, bool>(3)?,
        }))
    })?;
    let users = rows.collect::<Result<Vec<_>, _>>()?;
    Ok(request::json(
        StatusCode::OK,
        &with_times(&state.display, json!({ "users": users })),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use countywatch_notify::display::Language;

    #[test]
    fn known_millisecond_fields_get_an_rfc3339_sibling_at_any_depth() {
        let shanghai = Display::with_zone(
            countywatch_detect::calendar::parse_zone("Asia/Shanghai").unwrap(),
            Language::En,
        );
        let value = with_times(
            &shanghai,
            json!({
                "incident": {"first_seen_ms": 1_796_553_005_123_i64, "closed_ms": null},
                "timeline": [{"at_ms": 0}],
                "event": {"fields": {"duration_ms": 5}, "timestamp_ms": 0, "timestamp": "kept"},
            }),
        );
        assert_eq!(
            value["incident"]["first_seen_at"],
            "2026-12-06T18:30:05.123+08:00"
        );
        assert!(value["incident"].get("closed_at").is_none(), "{value}");
        assert_eq!(value["timeline"][0]["at"], "1970-01-01T08:00:00.000+08:00");
        assert_eq!(value["event"]["timestamp"], "kept");
        assert!(
            value["event"]["fields"].get("duration_at").is_none(),
            "{value}"
        );
        assert_eq!(value["incident"]["first_seen_ms"], 1_796_553_005_123_i64);
    }
}
