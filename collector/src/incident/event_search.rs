//! The raw events search for the API (`/api/v1/events`) and the page
//! (`/events`): the query string read into filters by host, kind, user,
//! source address, free text and time, newest first, paged by row id
//! (`before_id`), and the per-hour counts of the overview. The SQL is the
//! event log's (`event_log.rs`), the `events` table's one owner.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::event_log::{EventLog, EventSearch};

/// Most rows one search returns.
pub const MAX_ROWS: i64 = 1_000;

/// Reads the event log's search from query-string pairs (`host`, `kind`,
/// `user`, `src_ip`, `q`, `since_ms`, `until_ms`, `before_id`, `limit`);
/// malformed numbers are ignored.
pub fn from_query(query: &HashMap<String, String>) -> EventSearch {
    let text = |name: &str| {
        query
            .get(name)
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty())
    };
    let number = |name: &str| query.get(name).and_then(|value| value.parse::<i64>().ok());
    EventSearch {
        agent: text("host"),
        kind: text("kind"),
        user: text("user"),
        src_ip: text("src_ip"),
        text: text("q"),
        since_ms: number("since_ms"),
        until_ms: number("until_ms"),
        before_id: number("before_id"),
        limit: number("limit").unwrap_or(100).clamp(1, MAX_ROWS),
    }
}

/// One stored event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventRow {
    /// Its row id.
    pub id: i64,
    /// The agent that sent it.
    pub agent: String,
    /// When the collector accepted it, Unix milliseconds.
    pub received_ms: i64,
    /// The event as stored (JSON).
    pub event: Value,
}

/// The events matching `query`, newest first.
pub fn search(data_dir: &Path, query: &EventSearch) -> anyhow::Result<Vec<EventRow>> {
    let rows = EventLog::open(data_dir)?.search(query)?;
    Ok(rows
        .into_iter()
        .map(|row| EventRow {
            event: serde_json::from_str(&row.body).unwrap_or(Value::Null),
            id: row.id,
            agent: row.agent,
            received_ms: row.received_ms,
        })
        .collect())
}

/// Events accepted per hour (hours since the epoch) since `since_ms`.
pub fn per_hour(data_dir: &Path, since_ms: i64) -> anyhow::Result<BTreeMap<i64, i64>> {
    Ok(EventLog::open(data_dir)?.received_per_hour(since_ms)?)
}
