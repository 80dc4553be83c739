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
//!
//! Free-text search reads a trigram index of each event's `raw` line
//! (`events_text`, SQLite FTS5, case-sensitive, rows only: `detail=none`).
//! The index is filled behind the log, in large chunks, by
//! [`EventLog::index_text`] (run by `event_text_index.rs`), not by
//! [`append`]: FTS5 writes a segment per transaction, and agents' batches
//! of ten events would cost ingest more than half its rate. A search reads
//! the index up to where it is filled and scans the rest, so it sees every
//! event either way; the index only makes it fast. An index hit is checked
//! against the line itself, so results are exactly "the raw line contains
//! the text".

use std::collections::BTreeMap;
use std::path::Path;

use countywatch_wire::Event;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use countywatch_daemon::sqlite::{self, Conditions, OpenError};

/// The free-text index's schema, a migration of `collector.db` (the
/// registry applies it in order with the rest). An existing log starts with
/// an empty index filled to row 0, and [`EventLog::index_text`] catches up
/// in the background; searches scan what is not indexed yet meanwhile.
pub const TEXT_INDEX_SCHEMA: &str = "
    CREATE VIRTUAL TABLE events_text USING fts5(
        raw, content = '', contentless_delete = 1, detail = none,
        tokenize = 'trigram case_sensitive 1'
    );
    CREATE TABLE events_text_filled (up_to INTEGER NOT NULL);
    INSERT INTO events_text_filled (up_to) VALUES (0);";

/// The text a free-text search looks in: the event's raw line. The index
/// holds this expression's trigrams, and every hit is checked against it.
const SEARCHED_TEXT: &str = "json_extract(events.body, '$.raw')";

/// The oldest and newest stored ids. Two subqueries, not `SELECT MIN(id),
/// MAX(id)`: SQLite reads a lone `MIN` or `MAX` of the row id from one end
/// of the table, but with both in one query it scans a whole index (227 ms
/// of CPU per overview at five million events).
const STORED_ID_RANGE: &str = "SELECT (SELECT MIN(id) FROM events), (SELECT MAX(id) FROM events)";

/// When the first event at or after an id was received: one row read,
/// the binary search's step.
const RECEIVED_AT_OR_AFTER_ID: &str =
    "SELECT received_ms FROM events WHERE id >= ?1 ORDER BY id LIMIT 1";

/// Milliseconds in an hour.
const HOUR_MS: i64 = 3_600_000;

/// Characters in a trigram: shorter search text cannot use the index.
const TRIGRAM: usize = 3;

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
    /// Events whose raw line contains this text (case-sensitive).
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
    ///
    /// Only the filters given become SQL, so that SQLite can use the
    /// `(agent, timestamp_ms)` index. Free text of three characters or more
    /// reads the trigram index up to where it is filled and scans the
    /// events after that; shorter text scans.
    pub fn search(&self, search: &EventSearch) -> rusqlite::Result<Vec<EventRow>> {
        let mut filters = field_filters(search);
        let Some(text) = &search.text else {
            return self.scan(&filters, search.limit);
        };
        let (condition, uses) = text_condition(text);
        filters.add_with(&condition, vec![Value::Text(text.clone()); uses]);
        let Some(query) = trigram_query(text) else {
            return self.scan(&filters, search.limit);
        };
        let filled: i64 =
            self.connection
                .query_row("SELECT up_to FROM events_text_filled", [], |row| row.get(0))?;
        // Newest first: the events the index does not hold yet are the
        // newest ones.
        let mut tail = filters.clone();
        tail.add("events.id > ?", Some(Value::Integer(filled)));
        let mut rows = self.scan(&tail, search.limit)?;
        let wanted = search.limit - i64::try_from(rows.len()).unwrap_or(i64::MAX);
        if wanted <= 0 {
            return Ok(rows);
        }
        // The row id bound is given to the index itself, so that it starts
        // reading there instead of at its newest row.
        let below = search
            .before_id
            .map_or(filled + 1, |before| before.min(filled + 1));
        let mut indexed = filters;
        indexed.add("events_text.rowid < ?", Some(Value::Integer(below)));
        let sql = format!(
            "SELECT events.id, events.agent, events.received_ms, events.body
             FROM events_text JOIN events ON events.id = events_text.rowid
             WHERE events_text MATCH ? AND {}
             ORDER BY events_text.rowid DESC LIMIT ?",
            indexed.sql()
        );
        let mut values = vec![Value::Text(query)];
        values.extend(indexed.values_then(&[Value::Integer(wanted)]));
        let mut statement = self.connection.prepare_cached(&sql)?;
        let found = statement.query_map(params_from_iter(values), event_row)?;
        for row in found {
            rows.push(row?);
        }
        Ok(rows)
    }

    /// The newest `limit` events `filters` select, read from the table.
    fn scan(&self, filters: &Conditions, limit: i64) -> rusqlite::Result<Vec<EventRow>> {
        let mut statement = self.connection.prepare_cached(&scan_sql(filters))?;
        let values = filters.values_then(&[Value::Integer(limit)]);
        let rows = statement.query_map(params_from_iter(values), event_row)?;
        rows.collect()
    }

    /// Adds up to `limit` events after the filled part to the free-text
    /// index, in one transaction; returns how many it added (fewer than
    /// `limit`: the index has caught up).
    pub fn index_text(&self, limit: i64) -> rusqlite::Result<i64> {
        let transaction = rusqlite::Transaction::new_unchecked(
            &self.connection,
            rusqlite::TransactionBehavior::Immediate,
        )?;
        let filled: i64 =
            transaction.query_row("SELECT up_to FROM events_text_filled", [], |row| row.get(0))?;
        let (added, up_to): (i64, Option<i64>) = transaction.query_row(
            "SELECT COUNT(*), MAX(id) FROM
                (SELECT id FROM events WHERE id > ?1 ORDER BY id LIMIT ?2)",
            params![filled, limit],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        transaction.execute(
            &format!(
                "INSERT INTO events_text (rowid, raw)
                 SELECT events.id, {SEARCHED_TEXT} FROM events
                 WHERE events.id > ?1 AND events.id <= ?2"
            ),
            params![filled, up_to.unwrap_or(filled)],
        )?;
        transaction.execute(
            "UPDATE events_text_filled SET up_to = ?1",
            params![up_to.unwrap_or(filled)],
        )?;
        transaction.commit()?;
        Ok(added)
    }

    /// Events received per hour (hours since the epoch) since `since_ms`;
    /// hours without events are left out.
    ///
    /// Counted from row ids, without reading the rows: ids are given in
    /// the order events are stored, so they grow with the time received,
    /// and the stored ids are one unbroken range, because retention only
    /// ever deletes the oldest and a rolled-back insert leaves no gap. The
    /// events of an hour are then the ids from the first received in it to
    /// the first received after it, each found by a binary search over ids
    /// (a few hundred lookups instead of a million rows read). Batches
    /// stored concurrently may be a few milliseconds out of order, so an
    /// hour's edge can count an event to its neighbour.
    pub fn received_per_hour(&self, since_ms: i64) -> rusqlite::Result<BTreeMap<i64, i64>> {
        let (oldest, newest): (Option<i64>, Option<i64>) =
            self.connection
                .query_row(STORED_ID_RANGE, [], |row| Ok((row.get(0)?, row.get(1)?)))?;
        let (Some(oldest), Some(newest)) = (oldest, newest) else {
            return Ok(BTreeMap::new());
        };
        let mut statement = self.connection.prepare_cached(RECEIVED_AT_OR_AFTER_ID)?;
        let mut counts = BTreeMap::new();
        let mut start = first_received_from(&mut statement, (oldest, newest), since_ms)?;
        while start <= newest {
            // The hour of the next event: empty hours are skipped, not
            // searched.
            let received_ms: i64 = statement.query_row(params![start], |row| row.get(0))?;
            let hour = received_ms.div_euclid(HOUR_MS);
            let end = first_received_from(&mut statement, (oldest, newest), (hour + 1) * HOUR_MS)?;
            let end = end.max(start + 1);
            counts.insert(hour, end - start);
            start = end;
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
        let mut total = 0_u64;
        loop {
            let transaction = rusqlite::Transaction::new_unchecked(
                &self.connection,
                rusqlite::TransactionBehavior::Immediate,
            )?;
            let batch = "SELECT id FROM events WHERE received_ms < ?1 ORDER BY id LIMIT ?2";
            let bounds = params![cutoff_ms, sqlite::ROWS_PER_DELETE];
            transaction.execute(
                &format!("DELETE FROM events_text WHERE rowid IN ({batch})"),
                bounds,
            )?;
            let deleted = transaction
                .execute(&format!("DELETE FROM events WHERE id IN ({batch})"), bounds)?;
            // An emptied table gives out its ids again from 1, so the index
            // must start again from 1 too; in the same transaction, so that
            // no event can take a reused id in between.
            let emptied: bool =
                transaction.query_row("SELECT NOT EXISTS (SELECT 1 FROM events)", [], |row| {
                    row.get(0)
                })?;
            if emptied {
                transaction.execute_batch(
                    "INSERT INTO events_text (events_text) VALUES ('delete-all');
                     UPDATE events_text_filled SET up_to = 0;",
                )?;
            }
            transaction.commit()?;
            total += deleted as u64;
            if i64::try_from(deleted).unwrap_or(i64::MAX) < sqlite::ROWS_PER_DELETE {
                return Ok(total);
            }
        }
    }
}

/// The conditions of `search` other than its free text: only the filters
/// given become SQL, so that SQLite can use an index of `events`.
fn field_filters(search: &EventSearch) -> Conditions {
    let mut filters = Conditions::default();
    filters.add("events.agent = ?", search.agent.clone().map(Value::Text));
    filters.add("events.kind = ?", search.kind.clone().map(Value::Text));
    filters.add(
        "events.timestamp_ms >= ?",
        search.since_ms.map(Value::Integer),
    );
    filters.add(
        "events.timestamp_ms < ?",
        search.until_ms.map(Value::Integer),
    );
    filters.add("events.id < ?", search.before_id.map(Value::Integer));
    filters.add(
        "json_extract(events.body, '$.fields.user') = ?",
        search.user.clone().map(Value::Text),
    );
    filters.add(
        "json_extract(events.body, '$.fields.src_ip') = ?",
        search.src_ip.clone().map(Value::Text),
    );
    filters
}

/// The newest events `filters` select, up to a `LIMIT` given last.
fn scan_sql(filters: &Conditions) -> String {
    format!(
        "SELECT events.id, events.agent, events.received_ms, events.body FROM events
         WHERE {} ORDER BY events.id DESC LIMIT ?",
        filters.sql()
    )
}

/// The first id in `ids` (the stored range, oldest and newest) received at
/// or after `at_ms`, or the newest + 1: a binary search, `received` being
/// the statement that reads the time of the first event at or after an id.
fn first_received_from(
    received: &mut rusqlite::CachedStatement<'_>,
    (oldest, newest): (i64, i64),
    at_ms: i64,
) -> rusqlite::Result<i64> {
    let (mut low, mut high) = (oldest, newest + 1);
    while low < high {
        let middle = low + (high - low) / 2;
        let received_ms: i64 = received.query_row(params![middle], |row| row.get(0))?;
        match received_ms < at_ms {
            true => low = middle + 1,
            false => high = middle,
        }
    }
    Ok(low)
}

/// The condition that an event's raw line contains `text`, and how many
/// `?`s in it take the text. When JSON writes `text` as it is (no quote, backslash or control
/// character), a body without it cannot hold a line with it, so the body is
/// searched first: a scan of the events the index does not hold yet then
/// decodes only the bodies that may match (less than half the time).
fn text_condition(text: &str) -> (String, usize) {
    let escaped_in_json = text
        .chars()
        .any(|character| character == '"' || character == '\\' || character.is_control());
    match escaped_in_json {
        true => (format!("instr({SEARCHED_TEXT}, ?) > 0"), 1),
        false => (
            format!("(instr(events.body, ?) > 0 AND instr({SEARCHED_TEXT}, ?) > 0)"),
            2,
        ),
    }
}

/// The FTS5 query that finds every line containing `text` (and some that
/// do not: a `detail=none` index holds no positions, so it can only ask
/// for the text's trigrams, in any order), or `None` when `text` is too
/// short to have a trigram. Trigrams that start every third character, and
/// the last one, cover the text; each is quoted as an FTS5 string.
fn trigram_query(text: &str) -> Option<String> {
    let characters: Vec<char> = text.chars().collect();
    if characters.len() < TRIGRAM {
        return None;
    }
    let last = characters.len() - TRIGRAM;
    let mut starts: Vec<usize> = (0..=last).step_by(TRIGRAM).collect();
    if starts.last() != Some(&last) {
        starts.push(last);
    }
    let trigrams: Vec<String> = starts
        .into_iter()
        .map(|start| {
            let trigram: String = characters[start..start + TRIGRAM].iter().collect();
            format!("\"{}\"", trigram.replace('"', "\"\""))
        })
        .collect();
    Some(trigrams.join(" AND "))
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
        let from_the_middle = log.received_per_hour(1_001).unwrap();
        assert_eq!(
            from_the_middle.into_iter().collect::<Vec<_>>(),
            [(0, 2), (2, 1)]
        );
        assert!(log.received_per_hour(i64::MAX / 2).unwrap().is_empty());
    }

    /// SQLite's plan for `sql`, one line per step.
    fn query_plan(connection: &Connection, sql: &str) -> String {
        let mut statement = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        // The plan does not depend on the values, but each `?` needs one.
        let values = vec![Value::Null; statement.parameter_count()];
        let steps: Vec<String> = statement
            .query_map(params_from_iter(values), |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        steps.join("\n")
    }

    #[test]
    fn the_hourly_counts_look_up_single_rows_instead_of_scanning_the_log() {
        let (_dir, log) = log_with_events();
        // `SELECT MIN(id), MAX(id)` scanned a whole index of `events` on
        // every overview.
        for sql in [STORED_ID_RANGE, RECEIVED_AT_OR_AFTER_ID] {
            let plan = query_plan(&log.connection, sql);
            assert!(!plan.contains("SCAN events"), "{sql}:\n{plan}");
            assert!(plan.contains("SEARCH events"), "{sql}:\n{plan}");
        }
    }

    #[test]
    fn each_events_search_of_the_console_reads_an_index_of_its_filter() {
        let (_dir, log) = log_with_events();
        let host = Some("host-17".to_string());
        let kind = Some("ssh_login_failed".to_string());
        // Host or kind alone: the one-column indexes, whose entries are in
        // row id order, so the newest page is read without sorting. With
        // a time range: `events_by_agent` (agent, time), which only this
        // search needs; without it SQLite walks all of a host's events.
        for (search, index) in [
            (
                EventSearch {
                    agent: host.clone(),
                    ..EventSearch::default()
                },
                "INDEX events_by_agent_newest (agent=?)",
            ),
            (
                EventSearch {
                    kind: kind.clone(),
                    ..EventSearch::default()
                },
                "INDEX events_by_kind_newest (kind=?)",
            ),
            (
                EventSearch {
                    agent: host.clone(),
                    kind,
                    since_ms: Some(1),
                    until_ms: Some(2),
                    ..EventSearch::default()
                },
                "INDEX events_by_agent (agent=? AND timestamp_ms>? AND timestamp_ms<?)",
            ),
            (
                EventSearch {
                    agent: host,
                    before_id: Some(5),
                    ..EventSearch::default()
                },
                "INDEX events_by_agent_newest (agent=? AND rowid<?)",
            ),
        ] {
            let plan = query_plan(&log.connection, &scan_sql(&field_filters(&search)));
            assert!(
                plan.contains("SEARCH events USING") && plan.contains(index),
                "{search:?}:\n{plan}"
            );
        }
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

    fn append_raw(log: &EventLog, seq: i64, raw: &str) -> i64 {
        append(
            &log.connection,
            &NewEvent {
                agent: "web-2",
                seq,
                position: Position::At(0),
                received_ms: 10_000 + seq,
                event: &event(10_000 + seq, raw),
            },
        )
        .unwrap()
    }

    fn found(log: &EventLog, text: &str) -> Vec<String> {
        log.search(&EventSearch {
            text: Some(text.to_string()),
            limit: 10,
            ..EventSearch::default()
        })
        .unwrap()
        .iter()
        .map(|row| row.decode().unwrap().event.raw)
        .collect()
    }

    #[test]
    fn free_text_finds_the_same_lines_through_the_index_and_in_the_unindexed_tail() {
        let (_dir, log) = log_with_events();
        append_raw(&log, 2, "abc bcx");
        append_raw(
            &log,
            3,
            r#"sshd: Failed password for "admin" from 203.0.113.9"#,
        );
        append_raw(&log, 4, "用户 张三 登录失败");
        let everything = [
            ("bcx", vec!["abc bcx"]),
            // Both trigrams are in "abc bcx", but not the text.
            ("abcx", vec![]),
            (
                r#""admin""#,
                vec![r#"sshd: Failed password for "admin" from 203.0.113.9"#],
            ),
            ("登录失败", vec!["用户 张三 登录失败"]),
            ("hir", vec!["third"]),
            // Case-sensitive, as before the index.
            ("THIR", vec![]),
            // The host is in the body, not the raw line.
            ("web-1", vec![]),
        ];
        let check = |stage: &str| {
            for (text, expected) in &everything {
                assert_eq!(&found(&log, text), expected, "{stage}: {text}");
            }
        };
        check("nothing indexed");
        assert_eq!(log.index_text(4).unwrap(), 4);
        check("half indexed");
        assert_eq!(log.index_text(100).unwrap(), 2);
        assert_eq!(log.index_text(100).unwrap(), 0);
        check("all indexed");
        // Newest first across the index and the tail, and paged.
        append_raw(&log, 5, "fourth bcx");
        assert_eq!(found(&log, "bcx"), ["fourth bcx", "abc bcx"]);
        let newest = log
            .search(&EventSearch {
                text: Some("bcx".to_string()),
                limit: 1,
                ..EventSearch::default()
            })
            .unwrap();
        let next = log
            .search(&EventSearch {
                text: Some("bcx".to_string()),
                before_id: Some(newest[0].id),
                limit: 1,
                ..EventSearch::default()
            })
            .unwrap();
        assert_eq!(next[0].decode().unwrap().event.raw, "abc bcx");
    }

    #[test]
    fn purging_empties_the_index_too_and_reused_ids_are_indexed_again() {
        let (_dir, log) = log_with_events();
        assert_eq!(log.index_text(100).unwrap(), 3);
        let indexed = |log: &EventLog| -> i64 {
            log.connection
                .query_row("SELECT COUNT(*) FROM events_text", [], |row| row.get(0))
                .unwrap()
        };
        assert_eq!(indexed(&log), 3);
        assert_eq!(log.purge_before(1_001).unwrap(), 1);
        assert_eq!(indexed(&log), 2);
        assert_eq!(log.purge_before(i64::MAX).unwrap(), 2);
        assert_eq!(indexed(&log), 0);
        // An emptied log gives out its ids again.
        let id = append_raw(&log, 9, "after the purge");
        assert_eq!(id, 1);
        assert_eq!(found(&log, "purge"), ["after the purge"]);
        assert_eq!(log.index_text(100).unwrap(), 1);
        assert_eq!(found(&log, "purge"), ["after the purge"]);
        assert_eq!(indexed(&log), 1);
    }

    #[test]
    fn an_existing_log_gets_an_empty_index_that_catches_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collector.db");
        let before = crate::registry::MIGRATIONS.len() - 1;
        let old = sqlite::open(&path).unwrap();
        sqlite::migrate(&old, &crate::registry::MIGRATIONS[..before]).unwrap();
        append(
            &old,
            &NewEvent {
                agent: "web-1",
                seq: 1,
                position: Position::At(0),
                received_ms: 1,
                event: &event(1, "stored before the index existed"),
            },
        )
        .unwrap();
        drop(old);
        crate::registry::Registry::open(dir.path()).unwrap();
        let log = EventLog::open(dir.path()).unwrap();
        assert_eq!(found(&log, "before"), ["stored before the index existed"]);
        assert_eq!(log.index_text(100).unwrap(), 1);
        assert_eq!(found(&log, "before"), ["stored before the index existed"]);
    }

    #[test]
    fn trigram_queries_cover_the_text_and_quote_it() {
        assert_eq!(trigram_query("ab"), None);
        assert_eq!(trigram_query("abc").unwrap(), r#""abc""#);
        assert_eq!(
            trigram_query("abcdefg").unwrap(),
            r#""abc" AND "def" AND "efg""#
        );
        assert_eq!(trigram_query(r#"a"b"#).unwrap(), r#""a""b""#);
        assert_eq!(
            trigram_query("登录失败").unwrap(),
            r#""登录失" AND "录失败""#
        );
    }
}
