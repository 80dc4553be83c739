//! The `events` table of `collector.db`: every security event the
//! collector stored (agents' batches, `agent_silent`, the collector's own
//! observations). This module is the table's one owner; detection,
//! forwarding, the API and retention call it instead of writing SQL over
//! the table themselves.
//!
//! An event's row id is its place in the log: ids only grow, so an
//! [`EventCursor`] (the id of the last event a reader handled) is all a
//! reader needs to save to resume where it stopped. The table itself is
//! created by the registry's migrations, which own `collector.db`'s schema;
//! [`append`] writes inside the registry's transactions, so that a batch's
//! events and its sequence number are stored together or not at all.

use std::collections::BTreeMap;
use std::path::Path;

use countywatch_wire::Event;
use rusqlite::{Connection, OptionalExtension, params};

use crate::sqlite::{self, OpenError};

/// A reader's position in the log: the row id of the last event it handled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventCursor(i64);

impl EventCursor {
    /// Before the first event.
    pub const START: EventCursor = EventCursor(0);

    /// A cursor saved earlier as [`EventCursor::id`].
    pub fn from_id(id: i64) -> EventCursor {
        EventCursor(id)
    }

    /// The row id of the last event handled, for saving.
    pub fn id(self) -> i64 {
        self.0
    }
}

/// One stored event, its body not yet decoded: readers decide what an
/// undecodable body costs (a log line, a counted skip).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRow {
    /// The row id: increasing, the cursor's unit.
    pub id: i64,
    /// The agent it came from (`collector` for the collector's own).
    pub agent: String,
    /// When the collector stored it, Unix milliseconds.
    pub received_ms: i64,
    /// The event as JSON.
    pub body: String,
}

impl EventRow {
    /// The cursor just after this event.
    pub fn cursor(&self) -> EventCursor {
        EventCursor(self.id)
    }

    /// The event with its place in the log, or why its body does not
    /// decode.
    pub fn decode(&self) -> serde_json::Result<StoredEvent> {
        Ok(StoredEvent {
            id: self.id,
            agent: self.agent.clone(),
            received_ms: self.received_ms,
            event: serde_json::from_str(&self.body)?,
        })
    }
}

/// A stored event, decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    /// The row id: increasing, the cursor's unit.
    pub id: i64,
    /// The agent it came from (the syslog HOSTNAME when forwarded).
    pub agent: String,
    /// When the collector stored it, Unix milliseconds.
    pub received_ms: i64,
    /// The event itself.
    pub event: Event,
}

/// What the API's event search filters on; `None` filters nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventSearch {
    /// Only this agent's events.
    pub agent: Option<String>,
    /// Only events of this kind (`ssh_login_failed`, ...).
    pub kind: Option<String>,
    /// Events that happened at or after this time, Unix milliseconds.
    pub since_ms: Option<i64>,
    /// Events that happened before this time, Unix milliseconds.
    pub until_ms: Option<i64>,
    /// Events whose JSON body contains this text.
    pub text: Option<String>,
    /// Events whose `user` field is this.
    pub user: Option<String>,
    /// Events whose `src_ip` field is this.
    pub src_ip: Option<String>,
    /// Only ids below this one (the next page of a newest-first listing).
    pub before_id: Option<i64>,
    /// At most this many events.
    pub limit: i64,
}

/// Where a new event goes in its batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// At this index of its batch.
    At(i64),
    /// After the events already stored with the same agent and sequence
    /// number (the collector's own events, which share a millisecond).
    Next,
}

/// An event to append, with where it belongs.
pub struct NewEvent<'a> {
    /// The agent it came from.
    pub agent: &'a str,
    /// The batch's sequence number (negative for the collector's own
    /// events and `agent_silent`: the negated time).
    pub seq: i64,
    /// Its place in the batch.
    pub position: Position,
    /// When the collector stored it, Unix milliseconds.
    pub received_ms: i64,
    /// The event.
    pub event: &'a Event,
}

/// Why an event could not be appended.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The event does not serialise (cannot happen with the wire types,
    /// but the body is written as JSON).
    #[error("cannot serialise an event")]
    Serialise(#[from] serde_json::Error),
    /// SQLite refused the row.
    #[error("cannot store an event")]
    Store(#[from] rusqlite::Error),
}

/// Appends `new` through `connection` (usually inside the caller's
/// transaction); returns its row id.
pub fn append(connection: &Connection, new: &NewEvent<'_>) -> Result<i64, AppendError> {
    let body = serde_json::to_string(new.event)?;
    let position = match new.position {
        Position::At(index) => Some(index),
        Position::Next => None,
    };
    let mut insert = connection.prepare_cached(
        "INSERT INTO events (agent, seq, position, received_ms, timestamp_ms, source, kind, body)
         VALUES (?1, ?2,
            COALESCE(?3, (SELECT MAX(position) + 1 FROM events WHERE agent = ?1 AND seq = ?2), 0),
            ?4, ?5, ?6, ?7, ?8)",
    )?;
    insert.execute(params![
        new.agent,
        new.seq,
        position,
        new.received_ms,
        new.event.timestamp_ms,
        new.event.source.as_str(),
        new.event.kind.as_str(),
        body
    ])?;
    Ok(connection.last_insert_rowid())
}

/// A connection to the log for reading, searching and purging.
pub struct EventLog {
    /// The connection to `collector.db`.
    connection: Connection,
}

impl EventLog {
    /// Opens `<data_dir>/collector.db` for reading and purging.
    pub fn open(data_dir: &Path) -> Result<EventLog, OpenError> {
        Ok(EventLog {
            connection: sqlite::open(&data_dir.join("collector.db"))?,
        })
    }

    /// Opens `<data_dir>/collector.db` read-only, for readers that must
    /// never write it (detection, forwarding).
    pub fn open_read_only(data_dir: &Path) -> Result<EventLog, OpenError> {
        Ok(EventLog {
            connection: sqlite::open_read_only(&data_dir.join("collector.db"))?,
        })
    }

    /// The cursor after the newest event: a reader starting here sees only
    /// what is stored from now on.
    pub fn end(&self) -> rusqlite::Result<EventCursor> {
        self.connection
            .query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |row| {
                row.get(0)
            })
            .map(EventCursor)
    }

    /// Up to `limit` events after `cursor`, oldest first.
    pub fn read_after(&self, cursor: EventCursor, limit: usize) -> rusqlite::Result<Vec<EventRow>> {
        let mut statement = self.connection.prepare_cached(
            "SELECT id, agent, received_ms, body FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = statement.query_map(
            params![cursor.0, i64::try_from(limit).unwrap_or(i64::MAX)],
            event_row,
        )?;
        rows.collect()
    }

    /// The event with row id `id`, if it is stored and decodes.
    pub fn get(&self, id: i64) -> Option<Event> {
        let body: String = self
            .connection
            .query_row(
                "SELECT body FROM events WHERE id = ?1",
                params![id],
                |row| row.get(0),
            )
            .ok()?;
        serde_json::from_str(&body).ok()
    }

    /// The events `search` selects, newest first.
    pub fn search(&self, search: &EventSearch) -> rusqlite::Result<Vec<EventRow>> {
        let mut statement = self.connection.prepare_cached(
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
                search.agent,
                search.kind,
                search.since_ms,
                search.until_ms,
                search.text,
                search.before_id,
                search.user,
                search.src_ip,
                search.limit
            ],
            event_row,
        )?;
        rows.collect()
    }

    /// Events received per hour (hours since the epoch) since `since_ms`.
    pub fn received_per_hour(&self, since_ms: i64) -> rusqlite::Result<BTreeMap<i64, i64>> {
        // Row ids grow in the order events were accepted: walk back from the
        // newest and stop at the window's start, so only the window is read
        // (there is no index on the time).
        let mut statement = self
            .connection
            .prepare_cached("SELECT received_ms FROM events ORDER BY id DESC")?;
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

    /// When the oldest event still kept was received, if any (the report's
    /// evidence of how long events are kept).
    pub fn oldest_received_ms(&self) -> rusqlite::Result<Option<i64>> {
        self.connection
            .query_row(
                "SELECT received_ms FROM events ORDER BY id LIMIT 1",
                [],
                |row| row.get(0),
            )
            .optional()
    }

    /// Deletes the events received before `cutoff_ms`, a few hundred per
    /// transaction so ingest never waits long for the write lock; returns
    /// how many were deleted.
    pub fn purge_before(&self, cutoff_ms: i64) -> rusqlite::Result<u64> {
        sqlite::delete_in_batches(
            &self.connection,
            "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE received_ms < ?1 LIMIT ?2)",
            cutoff_ms,
        )
    }
}

fn event_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        id: row.get(0)?,
        agent: row.get(1)?,
        received_ms: row.get(2)?,
        body: row.get(3)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use countywatch_wire::{EventKind, EventSource};

    fn event(at_ms: i64, raw: &str) -> Event {
        let mut event = Event::new(at_ms, EventSource::Auth, EventKind::SshLoginFailed);
        event.host = "web-1".to_string();
        event.raw = raw.to_string();
        event
    }

    fn log_with_events() -> (tempfile::TempDir, EventLog) {
        let dir = tempfile::tempdir().unwrap();
        // The registry creates the table.
        crate::registry::Registry::open(dir.path()).unwrap();
        let log = EventLog::open(dir.path()).unwrap();
        for (index, raw) in ["first", "second", "third"].iter().enumerate() {
            let index = i64::try_from(index).unwrap();
            append(
                &log.connection,
                &NewEvent {
                    agent: "web-1",
                    seq: 1,
                    position: Position::At(index),
                    received_ms: 1_000 + index,
                    event: &event(100 + index, raw),
                },
            )
            .unwrap();
        }
        (dir, log)
    }

    #[test]
    fn readers_resume_after_their_cursor_and_start_at_the_end_when_new() {
        let (_dir, log) = log_with_events();
        let first_two = log.read_after(EventCursor::START, 2).unwrap();
        let raws: Vec<String> = first_two
            .iter()
            .map(|row| row.decode().unwrap().event.raw)
            .collect();
        assert_eq!(raws, ["first", "second"]);
        let rest = log.read_after(first_two[1].cursor(), 10).unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].decode().unwrap().event.raw, "third");
        assert_eq!(log.end().unwrap(), rest[0].cursor());
        assert!(log.read_after(log.end().unwrap(), 10).unwrap().is_empty());
        assert_eq!(log.get(rest[0].id).unwrap().raw, "third");
        assert_eq!(log.get(999), None);
    }

    #[test]
    fn the_collectors_own_events_in_one_millisecond_take_the_next_positions() {
        let (_dir, log) = log_with_events();
        for raw in ["a", "b"] {
            append(
                &log.connection,
                &NewEvent {
                    agent: "collector",
                    seq: -5_000,
                    position: Position::Next,
                    received_ms: 5_000,
                    event: &event(5_000, raw),
                },
            )
            .unwrap();
        }
        let positions: Vec<i64> = log
            .connection
            .prepare("SELECT position FROM events WHERE agent = 'collector' ORDER BY id")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(positions, [0, 1]);
    }

    #[test]
    fn search_filters_on_user_and_source_and_counts_per_hour() {
        let (_dir, log) = log_with_events();
        let mut login = event(200, "from a user");
        login.fields.user = Some("张三".to_string());
        login.fields.src_ip = Some("203.0.113.9".parse().unwrap());
        append(
            &log.connection,
            &NewEvent {
                agent: "web-1",
                seq: 2,
                position: Position::At(0),
                received_ms: 3_600_000 * 2 + 5,
                event: &login,
            },
        )
        .unwrap();
        for search in [
            EventSearch {
                user: Some("张三".to_string()),
                limit: 10,
                ..EventSearch::default()
            },
            EventSearch {
                src_ip: Some("203.0.113.9".to_string()),
                limit: 10,
                ..EventSearch::default()
            },
        ] {
            let found = log.search(&search).unwrap();
            assert_eq!(found.len(), 1, "{search:?}");
            assert_eq!(found[0].decode().unwrap().event.raw, "from a user");
        }
        let per_hour = log.received_per_hour(0).unwrap();
        assert_eq!(per_hour.into_iter().collect::<Vec<_>>(), [(0, 3), (2, 1)]);
        assert_eq!(log.received_per_hour(3_600_000).unwrap().len(), 1);
    }

    #[test]
    fn search_filters_newest_first_and_purge_deletes_only_the_old() {
        let (_dir, log) = log_with_events();
        let found = log
            .search(&EventSearch {
                text: Some("ir".to_string()),
                limit: 10,
                ..EventSearch::default()
            })
            .unwrap();
        let raws: Vec<String> = found
            .iter()
            .map(|row| row.decode().unwrap().event.raw)
            .collect();
        assert_eq!(raws, ["third", "first"]);
        let page = log
            .search(&EventSearch {
                agent: Some("web-1".to_string()),
                since_ms: Some(101),
                before_id: Some(found[0].id),
                limit: 10,
                ..EventSearch::default()
            })
            .unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].decode().unwrap().event.raw, "second");
        assert_eq!(log.purge_before(1_001).unwrap(), 1);
        let left = log.read_after(EventCursor::START, 10).unwrap();
        assert_eq!(left.len(), 2);
        assert_eq!(left[0].decode().unwrap().event.raw, "second");
    }
}
