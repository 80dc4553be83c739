//! The incident store: `<data_dir>/incidents.db` (SQLite, WAL), its schema
//! and migrations, and the read side (lists, details, filters).
//!
//! The raw security events are not copied here: `registry.rs` already writes
//! each accepted event exactly once into `collector.db`'s `events` table,
//! and the events search reads them there. Evidence is copied: an incident
//! keeps the full events that made it fire (with their raw lines) even after
//! retention purged the `events` table, and its row id in `events` for
//! cross-reference.
//!
//! Two connections: writes serialise on one (SQLite has one writer anyway),
//! reads use the other, so the page never waits behind a write transaction
//! (WAL readers see the last commit).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use countywatch_detect::Severity;
use countywatch_wire::Event;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::incident::config::IncidentsConfig;

/// Schema migrations, applied in order; the index + 1 is the version.
const MIGRATIONS: &[&str] = &[
    // Incidents, their evidence and timeline, the audit trail, users.
    "CREATE TABLE incidents (
        id INTEGER PRIMARY KEY,
        rule_id TEXT NOT NULL,
        title TEXT NOT NULL,
        severity TEXT NOT NULL,
        severity_rank INTEGER NOT NULL,
        status TEXT NOT NULL,
        group_key TEXT NOT NULL,
        first_seen_ms INTEGER NOT NULL,
        last_seen_ms INTEGER NOT NULL,
        hosts TEXT NOT NULL,
        labels TEXT NOT NULL,
        annotations TEXT NOT NULL,
        tags TEXT NOT NULL,
        assignee TEXT,
        reason TEXT,
        closed_ms INTEGER,
        evidence_count INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX incidents_by_key ON incidents (rule_id, group_key, id);
    CREATE INDEX incidents_by_last_seen ON incidents (last_seen_ms);
    CREATE INDEX incidents_by_status ON incidents (status, last_seen_ms);
    CREATE TABLE evidence (
        id INTEGER PRIMARY KEY,
        incident_id INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
        event_id INTEGER,
        timestamp_ms INTEGER NOT NULL,
        host TEXT NOT NULL,
        kind TEXT NOT NULL,
        event TEXT NOT NULL
    );
    CREATE INDEX evidence_by_incident ON evidence (incident_id, timestamp_ms);
    CREATE TABLE timeline (
        id INTEGER PRIMARY KEY,
        incident_id INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
        at_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX timeline_by_incident ON timeline (incident_id, at_ms);
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        outcome TEXT NOT NULL,
        details TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TABLE audit_checkpoints (
        seq INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        hash TEXT NOT NULL,
        public_key TEXT NOT NULL,
        signature TEXT NOT NULL
    );
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL
    );
    CREATE TABLE api_tokens (
        token_hash TEXT PRIMARY KEY,
        user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
        label TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER
    );",
    // The first admin's generated password must be replaced at first login.
    "ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;",
    // Version 2: checkpoints form their own signed chain and carry the
    // entry count; retention purges leave a signed record of where the
    // trail starts. Version-1 checkpoints signed only a head hash, so they
    // are dropped: the next entry signs the first checkpoint of the chain,
    // and the entries' own hash links are kept.
    "DROP TABLE audit_checkpoints;
    CREATE TABLE audit_checkpoints (
        seq INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        entries INTEGER NOT NULL,
        head_hash TEXT NOT NULL,
        prev_checkpoint_hash TEXT NOT NULL,
        key_id TEXT NOT NULL,
        signature TEXT NOT NULL,
        anchored INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE audit_purges (
        first_kept_seq INTEGER PRIMARY KEY,
        first_kept_hash TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        key_id TEXT NOT NULL,
        signature TEXT NOT NULL
    );",
    // The console: the events page links each event to the incidents it is
    // evidence of, and the overview counts the week's evidence by source
    // address and host.
    "CREATE INDEX evidence_by_event ON evidence (event_id);
    CREATE INDEX evidence_by_time ON evidence (timestamp_ms);",
    // Active response: decisions, their update log and agents' answers
    // (`decisions.rs` owns these tables).
    "CREATE TABLE decisions (
        id INTEGER PRIMARY KEY,
        address TEXT NOT NULL,
        scope TEXT NOT NULL,
        incident_id INTEGER,
        rule TEXT,
        reason TEXT NOT NULL,
        made_by TEXT NOT NULL,
        start_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        mode TEXT NOT NULL,
        removed_ms INTEGER,
        removed_by TEXT
    );
    CREATE INDEX decisions_by_address ON decisions (address, start_ms);
    CREATE INDEX decisions_by_incident ON decisions (incident_id);
    CREATE INDEX decisions_by_expiry ON decisions (expires_ms);
    CREATE TABLE decision_hosts (
        decision_id INTEGER NOT NULL REFERENCES decisions (id) ON DELETE CASCADE,
        host TEXT NOT NULL,
        PRIMARY KEY (decision_id, host)
    );
    CREATE INDEX decision_hosts_by_host ON decision_hosts (host, decision_id);
    CREATE TABLE decision_updates (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        decision_id INTEGER NOT NULL REFERENCES decisions (id) ON DELETE CASCADE,
        removed INTEGER NOT NULL,
        at_ms INTEGER NOT NULL
    );
    CREATE TABLE decision_acks (
        update_id INTEGER NOT NULL REFERENCES decision_updates (id) ON DELETE CASCADE,
        agent TEXT NOT NULL,
        applied INTEGER NOT NULL,
        reason TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        PRIMARY KEY (update_id, agent)
    );",
    // The outbox of `incident_changed` announcements: written in the
    // change's transaction, relayed to `collector.db`'s event log after.
    "CREATE TABLE announcements (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event TEXT NOT NULL
    );",
    // Active response: a removal that takes one host out of a host-scoped
    // decision is addressed to that host alone (NULL: every agent the
    // decision covers).
    "ALTER TABLE decision_updates ADD COLUMN host TEXT;",
    // The overview's top source addresses and hosts of the week, counted
    // as evidence is stored (issue 24): counting the evidence rows read
    // every event's JSON, about a second for 100,000 of them.
    "CREATE TABLE evidence_counts (
        field TEXT NOT NULL,
        hour INTEGER NOT NULL,
        value TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (field, hour, value)
    ) WITHOUT ROWID;
    INSERT INTO evidence_counts (field, hour, value, n)
        SELECT 'host', timestamp_ms / 3600000, host, COUNT(*) FROM evidence
        WHERE host IS NOT NULL AND host != '' GROUP BY 2, 3;
    INSERT INTO evidence_counts (field, hour, value, n)
        SELECT 'src_ip', timestamp_ms / 3600000, json_extract(event, '$.fields.src_ip') AS value,
            COUNT(*) FROM evidence
        WHERE value IS NOT NULL AND value != '' GROUP BY 2, 3;",
];

/// Milliseconds in an hour, the unit of `evidence_counts`.
const HOUR_MS: i64 = 3_600_000;

/// Where an incident is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// New, nobody has looked at it.
    Open,
    /// Someone is on it.
    Acknowledged,
    /// Dealt with.
    Resolved,
    /// Not an attack: the rule matched something harmless.
    FalsePositive,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 4] = [
        Status::Open,
        Status::Acknowledged,
        Status::Resolved,
        Status::FalsePositive,
    ];

    /// The name stored and used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Acknowledged => "acknowledged",
            Status::Resolved => "resolved",
            Status::FalsePositive => "false_positive",
        }
    }

    /// The status with this name.
    pub fn parse(name: &str) -> Option<Status> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == name)
    }

    /// Whether the incident still needs work (dedup adds evidence to it).
    pub fn is_active(self) -> bool {
        matches!(self, Status::Open | Status::Acknowledged)
    }
}

/// The severity with this name.
pub fn parse_severity(name: &str) -> Option<Severity> {
    Severity::ALL
        .into_iter()
        .find(|severity| severity.as_str() == name)
}

/// An incident as lists and the detail page show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Incident {
    /// Its number.
    pub id: i64,
    /// The detection rule that raised it.
    pub rule_id: String,
    /// The rule's title.
    pub title: String,
    /// How bad.
    pub severity: Severity,
    /// Where it is in its lifecycle.
    pub status: Status,
    /// The rule's group key (`src_ip=...`); dedup is on rule and key.
    pub group_key: String,
    /// First evidence, Unix milliseconds.
    pub first_seen_ms: i64,
    /// Latest evidence, Unix milliseconds.
    pub last_seen_ms: i64,
    /// Hosts the evidence came from.
    pub hosts: Vec<String>,
    /// The detection's labels.
    pub labels: BTreeMap<String, String>,
    /// The detection's annotations (summary, description, runbook).
    pub annotations: BTreeMap<String, String>,
    /// The rule's tags (ATT&CK ids).
    pub tags: Vec<String>,
    /// Who is on it.
    pub assignee: Option<String>,
    /// Why it was resolved or marked false positive.
    pub reason: Option<String>,
    /// When it was resolved or marked false positive.
    pub closed_ms: Option<i64>,
    /// How many evidence events it holds.
    pub evidence_count: i64,
}

/// One evidence event of an incident.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvidenceRecord {
    /// Its row id here.
    pub id: i64,
    /// The event's row id in `collector.db`'s `events`, when known.
    pub event_id: Option<i64>,
    /// The full event with its raw line.
    pub event: Event,
}

/// One line of an incident's timeline: a transition, a comment, evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// Who (a user name, or `detection` for the engine).
    pub actor: String,
    /// What: `opened`, `evidence`, `reopened`, `acknowledged`, `comment`...
    pub action: String,
    /// The comment, reason or count.
    pub detail: String,
}

/// What [`IncidentStore::top_evidence`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvidenceField {
    /// The event's `src_ip`.
    SourceAddress,
    /// The host the event came from.
    Host,
}

impl EvidenceField {
    /// Every field counted.
    const ALL: [EvidenceField; 2] = [EvidenceField::SourceAddress, EvidenceField::Host];

    /// Its name in `evidence_counts`.
    fn name(self) -> &'static str {
        match self {
            EvidenceField::SourceAddress => "src_ip",
            EvidenceField::Host => "host",
        }
    }

    /// Its value in `event`, if the event has one.
    fn value(self, event: &Event) -> Option<String> {
        match self {
            EvidenceField::SourceAddress => event.fields.src_ip.map(|address| address.to_string()),
            EvidenceField::Host => Some(event.host.clone()),
        }
        .filter(|value| !value.is_empty())
    }
}

/// Counts `event`, just stored as evidence, in `evidence_counts` (through
/// `connection`, inside the caller's transaction).
pub(crate) fn count_evidence(connection: &Connection, event: &Event) -> rusqlite::Result<()> {
    let mut upsert = connection.prepare_cached(
        "INSERT INTO evidence_counts (field, hour, value, n) VALUES (?1, ?2, ?3, 1)
         ON CONFLICT (field, hour, value) DO UPDATE SET n = n + 1",
    )?;
    for field in EvidenceField::ALL {
        if let Some(value) = field.value(event) {
            upsert.execute(params![
                field.name(),
                event.timestamp_ms.div_euclid(HOUR_MS),
                value
            ])?;
        }
    }
    Ok(())
}

/// Filters of the incident list (all optional, combined with AND).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct IncidentFilter {
    /// Only this status; `queue` for open and acknowledged, `all` (or
    /// none) for every status.
    pub status: Option<String>,
    /// Only this severity.
    pub severity: Option<String>,
    /// Only incidents with evidence from this host.
    pub host: Option<String>,
    /// Only this rule.
    pub rule: Option<String>,
    /// Last seen at or after this time, Unix milliseconds.
    pub since_ms: Option<i64>,
    /// Last seen before this time, Unix milliseconds.
    pub until_ms: Option<i64>,
    /// Free text in the title, rule id, group key or hosts.
    pub q: Option<String>,
    /// Sort column: `last_seen` (default), `first_seen`, `severity`, `id`.
    pub sort: Option<String>,
    /// Ascending instead of the default descending.
    pub asc: Option<bool>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: Option<u32>,
}

impl IncidentFilter {
    /// Reads the filter from query-string pairs; malformed numbers are
    /// ignored rather than refused (the page's links can be edited by hand).
    pub fn from_query(query: &std::collections::HashMap<String, String>) -> IncidentFilter {
        let text = |name: &str| query.get(name).filter(|value| !value.is_empty()).cloned();
        let number = |name: &str| query.get(name).and_then(|value| value.parse().ok());
        IncidentFilter {
            status: text("status"),
            severity: text("severity"),
            host: text("host"),
            rule: text("rule"),
            since_ms: number("since_ms"),
            until_ms: number("until_ms"),
            q: text("q"),
            sort: text("sort"),
            asc: query
                .get("asc")
                .map(|value| value == "true" || value == "1"),
            limit: query.get("limit").and_then(|value| value.parse().ok()),
            offset: query.get("offset").and_then(|value| value.parse().ok()),
        }
    }
}

/// The id of the newest decision update ever written, the end of the
/// agents' feed: `sqlite_sequence` keeps it after retention deleted the row
/// (`MAX(id)` covers a store whose sequence row is missing). It lives here,
/// beside the schema, so that opening the store needs nothing from
/// `decisions`.
pub(crate) const DECISION_LOG_END: &str = "SELECT MAX(
        COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'decision_updates'), 0),
        COALESCE((SELECT MAX(id) FROM decision_updates), 0))";

/// The incidents database.
pub struct IncidentStore {
    /// Where the database file is (for `backup`).
    pub(crate) path: PathBuf,
    /// The one writer connection.
    writer: Mutex<Connection>,
    /// A reader, so lists never wait for a write transaction.
    reader: Mutex<Connection>,
    /// The audit signing key's path.
    pub(crate) key_path: PathBuf,
    /// Lifecycle and audit settings.
    pub(crate) settings: IncidentsConfig,
    /// Where lifecycle changes are announced as `incident_changed` events
    /// (the registry's `events` table, which event forwarding reads), once
    /// the collector has connected it; tools and tests run without.
    pub(crate) event_log: std::sync::OnceLock<std::sync::Arc<crate::registry::Registry>>,
    /// The newest decision update known, which wakes agents' long polls
    /// (`decisions.rs`).
    pub(crate) decision_signal: tokio::sync::watch::Sender<u64>,
}

/// The `status` filter value for the queue: open and acknowledged.
pub const QUEUE_STATUS: &str = "queue";
/// The `status` filter value for every status.
pub const ALL_STATUSES: &str = "all";

/// The database file name inside the data directory.
pub const FILE_NAME: &str = "incidents.db";

/// The audit trail's signing key (PKCS#8) inside the data directory. It is
/// named here, beside the database whose trail it signs, so that the store
/// can hand its path to the trail without importing the trail.
pub const KEY_FILE: &str = "audit-signing.pk8";

impl IncidentStore {
    /// Opens (creating and migrating) `<data_dir>/incidents.db`.
    pub fn open(data_dir: &Path) -> anyhow::Result<IncidentStore> {
        IncidentStore::open_with(data_dir, &IncidentsConfig::default())
    }

    /// Opens the store with the configured reopen window and checkpoint period.
    pub fn open_with(data_dir: &Path, settings: &IncidentsConfig) -> anyhow::Result<IncidentStore> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let path = data_dir.join(FILE_NAME);
        let writer = connect(&path)?;
        countywatch_daemon::sqlite::migrate(&writer, MIGRATIONS)
            .with_context(|| format!("cannot migrate {}", path.display()))?;
        let reader = connect(&path)?;
        let last_update: i64 = reader.query_row(DECISION_LOG_END, [], |row| row.get(0))?;
        Ok(IncidentStore {
            path,
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            key_path: data_dir.join(KEY_FILE),
            settings: settings.clone(),
            event_log: std::sync::OnceLock::new(),
            decision_signal: tokio::sync::watch::Sender::new(
                u64::try_from(last_update).unwrap_or(0),
            ),
        })
    }

    /// The writer connection.
    pub(crate) fn write(&self) -> MutexGuard<'_, Connection> {
        self.writer
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The reader connection.
    pub(crate) fn read(&self) -> MutexGuard<'_, Connection> {
        self.reader
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// One incident.
    pub fn incident(&self, id: i64) -> anyhow::Result<Option<Incident>> {
        let connection = self.read();
        Ok(connection
            .query_row(
                &format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1"),
                params![id],
                incident_row,
            )
            .optional()?)
    }

    /// The newest incident whose detection raised the alert with this
    /// fingerprint (the alert's labels are the incident's), among the
    /// `recent` most recently seen: what a detection alert's notification
    /// link leads to.
    pub fn incident_for_alert(
        &self,
        fingerprint: countywatch_notify::alert::Fingerprint,
        recent: u32,
    ) -> anyhow::Result<Option<i64>> {
        let connection = self.read();
        let mut statement = connection.prepare_cached(
            "SELECT id, labels FROM incidents ORDER BY last_seen_ms DESC, id DESC LIMIT ?1",
        )?;
        let mut rows = statement.query(params![recent])?;
        while let Some(row) = rows.next()? {
            let labels: String = row.get(1)?;
            let Ok(labels) = serde_json::from_str::<countywatch_notify::alert::LabelSet>(&labels)
            else {
                continue;
            };
            if countywatch_notify::alert::fingerprint(&labels) == fingerprint {
                return Ok(Some(row.get(0)?));
            }
        }
        Ok(None)
    }

    /// An incident's evidence, oldest first, at most `limit`.
    pub fn evidence(&self, id: i64, limit: u32) -> anyhow::Result<Vec<EvidenceRecord>> {
        let connection = self.read();
        let mut statement = connection.prepare_cached(
            "SELECT id, event_id, event FROM evidence WHERE incident_id = ?1
             ORDER BY timestamp_ms, id LIMIT ?2",
        )?;
        let rows = statement.query_map(params![id, limit], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, Option<i64>>(1)?,
                row.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, event_id, body) = row?;
            let event = serde_json::from_str(&body)
                .with_context(|| format!("evidence {id} is not a valid event"))?;
            out.push(EvidenceRecord {
                id,
                event_id,
                event,
            });
        }
        Ok(out)
    }

    /// An incident's timeline, oldest first.
    pub fn timeline(&self, id: i64) -> anyhow::Result<Vec<TimelineEntry>> {
        let connection = self.read();
        let mut statement = connection.prepare_cached(
            "SELECT at_ms, actor, action, detail FROM timeline WHERE incident_id = ?1
             ORDER BY at_ms, id",
        )?;
        let rows = statement.query_map(params![id], |row| {
            Ok(TimelineEntry {
                at_ms: row.get(0)?,
                actor: row.get(1)?,
                action: row.get(2)?,
                detail: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Incidents matching `filter`, one page, and the total count.
    pub fn list(&self, filter: &IncidentFilter) -> anyhow::Result<(Vec<Incident>, i64)> {
        let (clause, values) = where_clause(filter);
        let order = match filter.sort.as_deref() {
            Some("first_seen") => "first_seen_ms",
            Some("severity") => "severity_rank",
            Some("id") => "id",
            _ => "last_seen_ms",
        };
        let direction = if filter.asc.unwrap_or(false) {
            "ASC"
        } else {
            "DESC"
        };
        let limit = filter.limit.unwrap_or(100).clamp(1, 1000);
        let offset = filter.offset.unwrap_or(0);
        let connection = self.read();
        let total: i64 = connection.query_row(
            &format!("SELECT COUNT(*) FROM incidents {clause}"),
            rusqlite::params_from_iter(values.iter()),
            |row| row.get(0),
        )?;
        let mut statement = connection.prepare_cached(&format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents {clause}
             ORDER BY {order} {direction}, id {direction} LIMIT {limit} OFFSET {offset}"
        ))?;
        let rows = statement.query_map(rusqlite::params_from_iter(values.iter()), incident_row)?;
        Ok((rows.collect::<Result<_, _>>()?, total))
    }

    /// Incidents per severity among those matching `filter`'s status (the
    /// queue's counters).
    pub fn counts_by_severity(
        &self,
        filter: &IncidentFilter,
    ) -> anyhow::Result<BTreeMap<String, i64>> {
        let (clause, values) = where_clause(&IncidentFilter {
            severity: None,
            ..filter.clone()
        });
        let connection = self.read();
        let mut statement = connection.prepare_cached(&format!(
            "SELECT severity, COUNT(*) FROM incidents {clause} GROUP BY severity"
        ))?;
        let rows = statement.query_map(rusqlite::params_from_iter(values.iter()), |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Incidents per (severity, status), for `countywatch_incidents`.
    pub fn counts_by_severity_and_status(&self) -> anyhow::Result<BTreeMap<(String, String), i64>> {
        let connection = self.read();
        let mut statement = connection.prepare_cached(
            "SELECT severity, status, COUNT(*) FROM incidents GROUP BY severity, status",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((
                (row.get::<_, String>(0)?, row.get::<_, String>(1)?),
                row.get::<_, i64>(2)?,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Other incidents last seen since `since_ms` with the same source
    /// address (in the group key) or one of the same hosts, newest first.
    pub fn related(
        &self,
        incident: &Incident,
        since_ms: i64,
        limit: u32,
    ) -> anyhow::Result<Vec<Incident>> {
        let mut conditions = Vec::new();
        let mut values = vec![Value::Integer(incident.id), Value::Integer(since_ms)];
        if let Some(address) = incident
            .labels
            .get("src_ip")
            .filter(|value| !value.is_empty())
        {
            conditions.push("instr(group_key, ?) > 0");
            values.push(Value::Text(format!("src_ip={address}")));
        }
        for host in incident.hosts.iter().take(10) {
            conditions.push("instr(hosts, ?) > 0");
            values.push(Value::Text(serde_json::to_string(host)?));
        }
        if conditions.is_empty() {
            return Ok(Vec::new());
        }
        let connection = self.read();
        let mut statement = connection.prepare_cached(&format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents
             WHERE id != ? AND last_seen_ms >= ? AND ({})
             ORDER BY last_seen_ms DESC LIMIT {limit}",
            conditions.join(" OR ")
        ))?;
        let rows = statement.query_map(rusqlite::params_from_iter(values.iter()), incident_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// New incidents per day since `since_ms`; days are counted since the
    /// epoch in a zone `offset_ms` ahead of UTC (the display zone's).
    pub fn incidents_per_day(
        &self,
        since_ms: i64,
        offset_ms: i64,
    ) -> anyhow::Result<BTreeMap<i64, i64>> {
        let connection = self.read();
        let mut statement = connection.prepare_cached(
            "SELECT (first_seen_ms + ?2) / 86400000, COUNT(*) FROM incidents
             WHERE first_seen_ms >= ?1 GROUP BY 1",
        )?;
        let rows = statement.query_map(params![since_ms, offset_ms], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The most frequent values of an evidence event's field (`src_ip`) or
    /// of its host (`host`) among evidence since the hour of `since_ms`:
    /// what attacks and what is attacked. Read from the hourly counts kept
    /// as evidence is stored, so the window starts at a whole hour.
    pub fn top_evidence(
        &self,
        field: EvidenceField,
        since_ms: i64,
        limit: u32,
    ) -> anyhow::Result<Vec<(String, i64)>> {
        let connection = self.read();
        let mut statement = connection.prepare_cached(
            "SELECT value, SUM(n) AS total FROM evidence_counts
             WHERE field = ?1 AND hour >= ?2
             GROUP BY value ORDER BY total DESC, value LIMIT ?3",
        )?;
        let rows = statement.query_map(
            params![field.name(), since_ms.div_euclid(HOUR_MS), limit],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The incidents each of these `events` rows is evidence of.
    pub fn incidents_of_events(
        &self,
        event_ids: &[i64],
    ) -> anyhow::Result<BTreeMap<i64, Vec<i64>>> {
        let mut found: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        if event_ids.is_empty() {
            return Ok(found);
        }
        let placeholders = vec!["?"; event_ids.len()].join(", ");
        let connection = self.read();
        let mut statement = connection.prepare(&format!(
            "SELECT DISTINCT event_id, incident_id FROM evidence
             WHERE event_id IN ({placeholders}) ORDER BY incident_id"
        ))?;
        let rows = statement.query_map(rusqlite::params_from_iter(event_ids.iter()), |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (event, incident) = row?;
            found.entry(event).or_default().push(incident);
        }
        Ok(found)
    }

    /// Copies the database to `destination` with SQLite's online backup API:
    /// a consistent snapshot while the collector keeps writing.
    pub fn backup(&self, destination: &Path) -> anyhow::Result<()> {
        backup_file(&self.path, destination)
    }
}

/// Copies the SQLite database `source` to `destination` with the online
/// backup API, 256 pages at a time so writers are never blocked for long.
pub fn backup_file(source: &Path, destination: &Path) -> anyhow::Result<()> {
    let source = connect(source)?;
    let mut target = Connection::open(destination)
        .with_context(|| format!("cannot create {}", destination.display()))?;
    let backup = rusqlite::backup::Backup::new(&source, &mut target)?;
    backup
        .run_to_completion(256, Duration::from_millis(5), None)
        .with_context(|| format!("backup to {} failed", destination.display()))?;
    Ok(())
}

/// Opens a connection with the store's settings.
pub(crate) fn connect(path: &Path) -> anyhow::Result<Connection> {
    // Foreign keys so that purging an incident drops its evidence.
    Ok(countywatch_daemon::sqlite::open_with_foreign_keys(path)?)
}

/// The columns [`incident_row`] reads, in order.
pub(crate) const INCIDENT_COLUMNS: &str = "id, rule_id, title, severity, status, group_key, \
     first_seen_ms, last_seen_ms, hosts, labels, annotations, tags, assignee, reason, closed_ms, \
     evidence_count";

/// Reads an incident from a row of [`INCIDENT_COLUMNS`]. Unknown names
/// (written by a newer version) read as the most cautious value.
pub(crate) fn incident_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Incident> {
    let severity: String = row.get(3)?;
    let status: String = row.get(4)?;
    let hosts: String = row.get(8)?;
    let labels: String = row.get(9)?;
    let annotations: String = row.get(10)?;
    let tags: String = row.get(11)?;
    Ok(Incident {
        id: row.get(0)?,
        rule_id: row.get(1)?,
        title: row.get(2)?,
        severity: parse_severity(&severity).unwrap_or(Severity::Critical),
        status: Status::parse(&status).unwrap_or(Status::Open),
        group_key: row.get(5)?,
        first_seen_ms: row.get(6)?,
        last_seen_ms: row.get(7)?,
        hosts: serde_json::from_str(&hosts).unwrap_or_default(),
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        annotations: serde_json::from_str(&annotations).unwrap_or_default(),
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        assignee: row.get(12)?,
        reason: row.get(13)?,
        closed_ms: row.get(14)?,
        evidence_count: row.get(15)?,
    })
}

/// The SQL `WHERE` for `filter` and its bound values. Values are always
/// bound, never spliced.
fn where_clause(filter: &IncidentFilter) -> (String, Vec<Value>) {
    let mut conditions = Vec::new();
    let mut values = Vec::new();
    let non_empty = |value: &Option<String>| value.clone().filter(|value| !value.is_empty());
    match non_empty(&filter.status).as_deref() {
        None | Some(ALL_STATUSES) => {}
        Some(QUEUE_STATUS) => conditions.push("status IN ('open', 'acknowledged')"),
        Some(status) => {
            conditions.push("status = ?");
            values.push(Value::Text(status.to_string()));
        }
    }
    if let Some(severity) = non_empty(&filter.severity) {
        conditions.push("severity = ?");
        values.push(Value::Text(severity));
    }
    if let Some(rule) = non_empty(&filter.rule) {
        conditions.push("rule_id = ?");
        values.push(Value::Text(rule));
    }
    if let Some(host) = non_empty(&filter.host) {
        // Hosts are stored as a JSON array of strings: match the quoted name.
        conditions.push("instr(hosts, ?) > 0");
        values.push(Value::Text(
            serde_json::to_string(&host).unwrap_or_default(),
        ));
    }
    if let Some(since) = filter.since_ms {
        conditions.push("last_seen_ms >= ?");
        values.push(Value::Integer(since));
    }
    if let Some(until) = filter.until_ms {
        conditions.push("last_seen_ms < ?");
        values.push(Value::Integer(until));
    }
    if let Some(text) = non_empty(&filter.q) {
        conditions.push("(instr(title, ?) > 0 OR instr(rule_id, ?) > 0 OR instr(group_key, ?) > 0 OR instr(hosts, ?) > 0)");
        for _ in 0..4 {
            values.push(Value::Text(text.clone()));
        }
    }
    let clause = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    (clause, values)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use countywatch_detect::{Detection, Evidence, Severity};
    use countywatch_wire::{Event, EventKind, EventSource};

    use super::*;

    /// A detection from `address` on `host` with evidence rows `event_ids`.
    fn detection(
        rule: &str,
        address: &str,
        host: &str,
        at_ms: i64,
        event_ids: &[i64],
    ) -> Detection {
        Detection {
            rule_id: rule.to_string(),
            title: format!("{rule} from {address}"),
            severity: Severity::High,
            group_key: format!("src_ip={address}"),
            labels: BTreeMap::from([("src_ip".to_string(), address.to_string())]),
            annotations: BTreeMap::new(),
            tags: Vec::new(),
            hosts: vec![host.to_string()],
            at_ms,
            evidence: event_ids
                .iter()
                .map(|&id| {
                    let mut event = Event::new(at_ms, EventSource::Auth, EventKind::SshLoginFailed);
                    event.host = host.to_string();
                    event.fields.src_ip = address.parse().ok();
                    Evidence {
                        event_id: Some(id),
                        event,
                    }
                })
                .collect(),
            response: None,
        }
    }

    #[test]
    fn the_console_s_reads_find_the_queue_related_incidents_and_evidence() {
        let dir = tempfile::tempdir().unwrap();
        let store = IncidentStore::open(dir.path()).unwrap();
        let record = |detection: &Detection| store.record_detection(detection).unwrap().id();
        let brute = record(&detection(
            "brute",
            "203.0.113.9",
            "web1",
            1_000,
            &[1, 2, 3],
        ));
        let spray = record(&detection("spray", "203.0.113.9", "db1", 2_000, &[4]));
        let other = record(&detection("brute", "198.51.100.7", "db1", 3_000, &[5, 6]));
        let unrelated = record(&detection("brute", "192.0.2.1", "mail1", 4_000, &[7]));
        store
            .transition(
                unrelated,
                &crate::incident::lifecycle::Transition {
                    to: Status::Resolved,
                    assignee: None,
                    reason: Some("blocked".to_string()),
                },
                "alice",
                5_000,
            )
            .unwrap();

        // The queue leaves out the resolved one; `all` keeps it.
        let queue = |status: &str| {
            store
                .list(&IncidentFilter {
                    status: Some(status.to_string()),
                    ..IncidentFilter::default()
                })
                .unwrap()
                .1
        };
        assert_eq!((queue(QUEUE_STATUS), queue(ALL_STATUSES)), (3, 4));

        // Related: the same source address, or one of the same hosts.
        let of = |id: i64| {
            let incident = store.incident(id).unwrap().unwrap();
            let mut ids: Vec<i64> = store
                .related(&incident, 0, 10)
                .unwrap()
                .iter()
                .map(|incident| incident.id)
                .collect();
            ids.sort_unstable();
            ids
        };
        assert_eq!(of(brute), vec![spray]);
        assert_eq!(of(spray), vec![brute, other]);
        assert!(of(unrelated).is_empty());

        let top = store
            .top_evidence(EvidenceField::SourceAddress, 0, 10)
            .unwrap();
        assert_eq!(top[0], ("203.0.113.9".to_string(), 4));
        // Counted per hour of the evidence: the window starts at its hour.
        let hosts = store.top_evidence(EvidenceField::Host, 2_500, 10).unwrap();
        assert_eq!(
            hosts,
            vec![
                ("db1".to_string(), 3),
                ("web1".to_string(), 3),
                ("mail1".to_string(), 1)
            ]
        );
        assert!(
            store
                .top_evidence(EvidenceField::Host, HOUR_MS, 10)
                .unwrap()
                .is_empty()
        );
        let linked = store.incidents_of_events(&[3, 4, 99]).unwrap();
        assert_eq!(linked.get(&3), Some(&vec![brute]));
        assert_eq!(linked.get(&4), Some(&vec![spray]));
        assert_eq!(linked.get(&99), None);
    }

    #[test]
    fn an_older_store_gets_its_evidence_counted_when_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let store = IncidentStore::open(dir.path()).unwrap();
        store
            .record_detection(&detection("brute", "203.0.113.9", "web1", 1_000, &[1, 2]))
            .unwrap();
        store
            .record_detection(&detection("brute", "198.51.100.7", "db1", HOUR_MS, &[3]))
            .unwrap();
        let counted = |store: &IncidentStore| {
            (
                store
                    .top_evidence(EvidenceField::SourceAddress, 0, 10)
                    .unwrap(),
                store
                    .top_evidence(EvidenceField::Host, HOUR_MS, 10)
                    .unwrap(),
            )
        };
        let expected = (
            vec![
                ("203.0.113.9".to_string(), 2),
                ("198.51.100.7".to_string(), 1),
            ],
            vec![("db1".to_string(), 1)],
        );
        assert_eq!(counted(&store), expected);
        drop(store);
        // The store as it was before the counts: the migration that adds
        // them counts the evidence already stored.
        let connection = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        connection
            .execute_batch(&format!(
                "DROP TABLE evidence_counts; UPDATE schema_version SET version = {};",
                MIGRATIONS.len() - 1
            ))
            .unwrap();
        drop(connection);
        let store = IncidentStore::open(dir.path()).unwrap();
        assert_eq!(counted(&store), expected);
    }
}
