//! The raw events search over `collector.db`'s `events` table, for the API
//! (`/api/v1/events`) and the page (`/events`): filters by host, kind,
//! user, source address, free text and time, newest first, paged by row id
//! (`before_id`), and the per-hour counts of the overview. Reads only; the
//! registry writes the table.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rusqlite::params;
use serde::Serialize;
use serde_json::Value;

use crate::incident::store::connect;

/// Most rows one search returns.
pub const MAX_ROWS: i64 = 1_000;

/// What to search for; every filter is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// The agent (host) that sent the event.
    pub host: Option<String>,
    /// The event kind (`ssh_login_failed`).
    pub kind: Option<String>,
    /// The event's `user` field.
    pub user: Option<String>,
    /// The event's `src_ip` field.
    pub src_ip: Option<String>,
    /// Text anywhere in the event (its raw line included).
    pub q: Option<String>,
    /// The event's time at or after this, Unix milliseconds.
    pub since_ms: Option<i64>,
    /// The event's time before this, Unix milliseconds.
    pub until_ms: Option<i64>,
    /// Only rows older than this row id (the next page).
    pub before_id: Option<i64>,
    /// Rows per page.
    pub limit: i64,
}

impl EventQuery {
    /// Reads the query from query-string pairs; malformed numbers are
    /// ignored.
    pub fn from_query(query: &HashMap<String, String>) -> EventQuery {
        let text = |name: &str| {
            query
                .get(name)
                .map(|value| value.trim().to_string())
                .filter(|value| !value.is_empty())
        };
        let number = |name: &str| query.get(name).and_then(|value| value.parse::<i64>().ok());
        EventQuery {
            host: text("host"),
            kind: text("kind"),
            user: text("user"),
            src_ip: text("src_ip"),
            q: text("q"),
            since_ms: number("since_ms"),
            until_ms: number("until_ms"),
            before_id: number("before_id"),
            limit: number("limit").unwrap_or(100).clamp(1, MAX_ROWS),
        }
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
pub fn search(data_dir: &Path, query: &EventQuery) -> anyhow::Result<Vec<EventRow>> {
    let connection = connect(&data_dir.join("collector.db"))?;
    let mut statement = connection.prepare_cached(
        "SELECT id, agent, received_ms, body FROM events
         WHERE (?1 IS NULL OR agent = ?1) AND (?2 IS NULL OR kind = ?2)
           AND (?3 IS NULL OR timestamp_ms >= ?3) AND (?4 IS NULL OR timestamp_ms < ?4)
           AND (?5 IS NULL OR instr(body, ?5) > 0) AND (?6 IS NULL OR id < ?6)
           AND (?7 IS NULL OR json_extract(body, '$.fields.user') = ?7)
           AND (?8 IS NULL OR json_extract(body, '$.fields.src_ip') = ?8)
         ORDER BY id DESC LIMIT ?9",
    )?;
    let rows = statement.query_map(
        params![
            query.host,
            query.kind,
            query.since_ms,
            query.until_ms,
            query.q,
            query.before_id,
            query.user,
            query.src_ip,
            query.limit
        ],
        |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, String>(3)?,
            ))
        },
    )?;
    let mut out = Vec::new();
    for row in rows {
        let (id, agent, received_ms, body) = row?;
        out.push(EventRow {
            id,
            agent,
            received_ms,
            event: serde_json::from_str(&body).unwrap_or(Value::Null),
        });
    }
    Ok(out)
}

/// Events accepted per hour (hours since the epoch) since `since_ms`.
pub fn per_hour(data_dir: &Path, since_ms: i64) -> anyhow::Result<BTreeMap<i64, i64>> {
    let connection = connect(&data_dir.join("collector.db"))?;
    // Row ids grow in the order events were accepted: walk back from the
    // newest and stop at the window's start, so only the window is read
    // (there is no index on the time).
    let mut statement =
        connection.prepare_cached("SELECT received_ms FROM events ORDER BY id DESC")?;
    let mut rows = statement.query([])?;
    let mut counts = BTreeMap::new();
    while let Some(row) = rows.next()? {
        let received_ms: i64 = row.get(0)?;
        if received_ms < since_ms {
            break;
        }
        *counts.entry(received_ms / 3_600_000).or_insert(0) += 1;
    }
    Ok(counts)
}
