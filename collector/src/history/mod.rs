//! The history the county report needs, kept by the collector itself in
//! `<data_dir>/history.db`; this module is that file's one owner.
//!
//! Ingest hands every stored batch to [`History::observe_batch`], which
//! folds it into an in-memory [`timeline::Timeline`] per series: each agent
//! (up while it reports, down once `agents.silent_after` passed without a
//! batch, as liveness decides), each service probe target
//! (`probe_success`, with the last `probe_http_status_code` and
//! `probe_ssl_earliest_cert_expiry`), each polled device (`snmp_up`) and
//! each administratively enabled interface (`ifOperStatus`), and each
//! host's time sync (`node_timex_sync_status`). Once an hour [`run`] writes
//! the finished hour of every series in one transaction (one row per series
//! per hour, never a row per sample) with the outages that started or ended,
//! copies the incident store's incidents into `incidents` (so that a year's
//! comparison survives the incident store's 180-day purge), and deletes what
//! is older than `report.retention`. At shutdown the hour in progress is
//! written too.
//!
//! Tables: `series` (what a series is: kind, name, target, agent,
//! department, service), `hours` (per series and hour: milliseconds up and
//! known, state changes, longest outage stretch, last HTTP status and
//! certificate expiry), `outages` (start, end or NULL while going on) and
//! `incidents` (one row per incident: rule, severity, status, department,
//! opened, acknowledged, closed, source address, hosts).
//!
//! **Architecture Invariant:** nothing is written per sample; the write
//! cost is one transaction per hour of (series + outages changed) rows, and
//! memory is one timeline per series, capped at [`MAX_SERIES`] (further
//! series are dropped and counted).

pub mod timeline;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use countywatch_wire::{LabelText, MetricFamily};
use rusqlite::{Connection, params};
use serde::Serialize;
use tokio::sync::watch;

use self::timeline::{AfterStale, HourStats, Outage, Timeline, hour_of};

/// The file's name in the data directory.
pub const FILE_NAME: &str = "history.db";

/// Most series tracked at once; a thousand agents with twenty services and
/// a few devices each stay far below it.
pub const MAX_SERIES: usize = 200_000;

const MIGRATIONS: &[&str] = &["CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        target TEXT NOT NULL,
        agent TEXT NOT NULL,
        department TEXT NOT NULL,
        service TEXT NOT NULL,
        last_ms INTEGER NOT NULL,
        UNIQUE (kind, name, target)
    );
    CREATE TABLE hours (
        series_id INTEGER NOT NULL,
        hour_ms INTEGER NOT NULL,
        up_ms INTEGER NOT NULL,
        known_ms INTEGER NOT NULL,
        changes INTEGER NOT NULL,
        longest_down_ms INTEGER NOT NULL,
        http_status INTEGER,
        tls_expiry_ms INTEGER,
        PRIMARY KEY (series_id, hour_ms)
    ) WITHOUT ROWID;
    CREATE TABLE outages (
        series_id INTEGER NOT NULL,
        start_ms INTEGER NOT NULL,
        end_ms INTEGER,
        PRIMARY KEY (series_id, start_ms)
    ) WITHOUT ROWID;
    CREATE TABLE incidents (
        id INTEGER PRIMARY KEY,
        rule_id TEXT NOT NULL,
        severity TEXT NOT NULL,
        status TEXT NOT NULL,
        department TEXT NOT NULL,
        opened_ms INTEGER NOT NULL,
        acknowledged_ms INTEGER,
        closed_ms INTEGER,
        source TEXT NOT NULL,
        hosts TEXT NOT NULL
    );
    CREATE INDEX incidents_by_opened ON incidents (opened_ms);"];

/// What a series watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SeriesKind {
    /// An agent: up while it reports.
    Agent,
    /// A service probe target (`probe_success`).
    Service,
    /// A network device polled over SNMP (`snmp_up`).
    Device,
    /// A device's interface (`ifOperStatus`), when administratively up.
    Interface,
    /// A host's clock in sync (`node_timex_sync_status`).
    TimeSync,
}

impl SeriesKind {
    /// The name stored in `series.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            SeriesKind::Agent => "agent",
            SeriesKind::Service => "service",
            SeriesKind::Device => "device",
            SeriesKind::Interface => "interface",
            SeriesKind::TimeSync => "time_sync",
        }
    }

    /// The kind stored as `name`.
    pub fn parse(name: &str) -> Option<SeriesKind> {
        [
            SeriesKind::Agent,
            SeriesKind::Service,
            SeriesKind::Device,
            SeriesKind::Interface,
            SeriesKind::TimeSync,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == name)
    }
}

impl rusqlite::types::FromSql for SeriesKind {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let name = value.as_str()?;
        SeriesKind::parse(name).ok_or_else(|| {
            rusqlite::types::FromSqlError::Other(format!("unknown series kind {name:?}").into())
        })
    }
}

/// Which series: its kind, the agent or device, and the target within it
/// (a probe's name, an interface's name; empty for agents and devices).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SeriesKey {
    kind: SeriesKind,
    name: String,
    target: String,
}

/// What the report groups a series by.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct SeriesMeta {
    /// The agent that reported it.
    agent: String,
    /// The `department` label (the agent's, or the target's own).
    department: String,
    /// The `service` label: the human name of what a target serves.
    service: String,
}

struct Tracked {
    meta: SeriesMeta,
    timeline: Timeline,
}

/// One series' hours and outages taken out for writing, with what the
/// `series` row says about it and its last sample's time.
type Pending = (
    SeriesKey,
    SeriesMeta,
    i64,
    Vec<(i64, HourStats)>,
    Vec<Outage>,
);

/// The series being followed and the hour written last.
#[derive(Default)]
struct Tracker {
    series: HashMap<SeriesKey, Tracked>,
    /// Every hour before this one has been written.
    written_before_ms: i64,
}

/// The history writer: timelines in memory, written once an hour.
pub struct History {
    /// The writer connection to `history.db`.
    connection: Mutex<Connection>,
    /// The timelines; a std mutex because it is held only to fold a batch
    /// in or take an hour out, never across IO.
    tracker: Mutex<Tracker>,
    /// `agents.silent_after`: when an agent counts as down and a series as
    /// unknown.
    stale_ms: i64,
    /// `report.retention`.
    retention_ms: i64,
    /// Series not followed because [`MAX_SERIES`] was reached
    /// (`countywatch_history_series_dropped_total`).
    dropped_series: prometheus::IntCounter,
}

/// One series over a range, summed from its hours.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SeriesSummary {
    /// What it watches.
    pub kind: SeriesKind,
    /// The agent or device.
    pub name: String,
    /// The probe's or interface's name; empty for agents and devices.
    pub target: String,
    /// The agent that reported it.
    pub agent: String,
    /// Its department, empty when none was configured.
    pub department: String,
    /// Its service name, empty when none was configured.
    pub service: String,
    /// Milliseconds up in the range.
    pub up_ms: i64,
    /// Milliseconds whose state is known in the range.
    pub known_ms: i64,
    /// State changes in the range.
    pub changes: i64,
    /// The last HTTP status in the range.
    pub http_status: Option<i64>,
    /// The last certificate expiry in the range, Unix milliseconds.
    pub tls_expiry_ms: Option<i64>,
}

/// One outage of one series, as kept.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutageRecord {
    /// What went down.
    pub kind: SeriesKind,
    /// The agent or device.
    pub name: String,
    /// The probe's or interface's name.
    pub target: String,
    /// Its department.
    pub department: String,
    /// Its service name.
    pub service: String,
    /// When it went down.
    pub start_ms: i64,
    /// When it came back; `None` while down.
    pub end_ms: Option<i64>,
}

/// One incident as the history keeps it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IncidentRecord {
    /// The incident's number.
    pub id: i64,
    /// The rule that raised it.
    pub rule_id: String,
    /// Its severity.
    pub severity: String,
    /// Its status when last copied.
    pub status: String,
    /// The department of its first host, empty when unknown.
    pub department: String,
    /// Its first evidence, Unix milliseconds.
    pub opened_ms: i64,
    /// When it was first acknowledged.
    pub acknowledged_ms: Option<i64>,
    /// When it was resolved or marked a false positive.
    pub closed_ms: Option<i64>,
    /// The source address, empty when the rule groups by none.
    pub source: String,
    /// The hosts of its evidence.
    pub hosts: Vec<String>,
}

/// Opens `history.db` in `data_dir`, bringing its schema up to date.
pub fn open(data_dir: &Path) -> anyhow::Result<Connection> {
    let connection = countywatch_daemon::sqlite::open(&data_dir.join(FILE_NAME))?;
    countywatch_daemon::sqlite::migrate(&connection, MIGRATIONS)?;
    Ok(connection)
}

impl History {
    /// Opens the history of `data_dir`.
    pub fn open(
        data_dir: &Path,
        silent_after: Duration,
        retention: Duration,
    ) -> anyhow::Result<History> {
        Ok(History {
            connection: Mutex::new(open(data_dir)?),
            tracker: Mutex::new(Tracker::default()),
            stale_ms: millis(silent_after),
            retention_ms: millis(retention),
            dropped_series: prometheus::IntCounter::new(
                "countywatch_history_series_dropped_total",
                "Series the report history did not follow because it follows the most it may.",
            )?,
        })
    }

    /// Registers the dropped-series counter.
    pub fn register(&self, registry: &prometheus::Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.dropped_series.clone()))
    }

    /// Folds one stored batch in: the agent reported at `received_ms`; its
    /// samples were collected at `collected_at_ms` (the receive time when
    /// the agent gave none).
    pub fn observe_batch(
        &self,
        agent: &str,
        received_ms: i64,
        collected_at_ms: i64,
        metrics: &[MetricFamily],
    ) {
        let at_ms = if collected_at_ms > 0 {
            collected_at_ms
        } else {
            received_ms
        };
        let samples = batch_samples(agent, metrics);
        let mut tracker = self.lock();
        let agent_department = metrics
            .iter()
            .find(|family| family.name == "countywatch_agent_info")
            .and_then(|family| family.samples.first())
            .and_then(|sample| label(&sample.labels, "department"))
            .map(str::to_string);
        let agent_key = SeriesKey {
            kind: SeriesKind::Agent,
            name: agent.to_string(),
            target: String::new(),
        };
        let known_department = tracker
            .series
            .get(&agent_key)
            .map(|tracked| tracked.meta.department.clone());
        let department = agent_department.or(known_department).unwrap_or_default();
        let meta = SeriesMeta {
            agent: agent.to_string(),
            department: department.clone(),
            service: String::new(),
        };
        self.observe(&mut tracker, agent_key, meta, received_ms, true);
        for sample in samples {
            let meta = SeriesMeta {
                agent: agent.to_string(),
                department: sample.department.unwrap_or_else(|| department.clone()),
                service: sample.service,
            };
            let Some(tracked) = self.observe(&mut tracker, sample.key, meta, at_ms, sample.up)
            else {
                continue;
            };
            if sample.http_status.is_some() || sample.tls_expiry_ms.is_some() {
                tracked
                    .timeline
                    .note_values(at_ms, sample.http_status, sample.tls_expiry_ms);
            }
        }
    }

    fn observe<'a>(
        &self,
        tracker: &'a mut Tracker,
        key: SeriesKey,
        meta: SeriesMeta,
        at_ms: i64,
        up: bool,
    ) -> Option<&'a mut Tracked> {
        let full = tracker.series.len() >= MAX_SERIES;
        let after_stale = match key.kind {
            SeriesKind::Agent => AfterStale::Down,
            _ => AfterStale::Unknown,
        };
        match tracker.series.entry(key) {
            std::collections::hash_map::Entry::Occupied(entry) => {
                let tracked = entry.into_mut();
                tracked.timeline.observe(at_ms, up);
                tracked.meta = meta;
                Some(tracked)
            }
            std::collections::hash_map::Entry::Vacant(_) if full => {
                self.dropped_series.inc();
                None
            }
            std::collections::hash_map::Entry::Vacant(entry) => Some(entry.insert(Tracked {
                meta,
                timeline: Timeline::new(at_ms, up, self.stale_ms, after_stale),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tracker> {
        self.tracker
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Writes every hour that ended by `now_ms` (all of them, the one in
    /// progress too, when `everything`), then the retention purge. Returns
    /// how many hour rows were written.
    pub fn write(&self, now_ms: i64, everything: bool) -> anyhow::Result<usize> {
        let before = hour_of(now_ms);
        let pending: Vec<Pending> = {
            let mut tracker = self.lock();
            if !everything && before <= tracker.written_before_ms {
                return Ok(0);
            }
            tracker.written_before_ms = tracker.written_before_ms.max(before);
            tracker
                .series
                .iter_mut()
                .filter_map(|(key, tracked)| {
                    let (hours, outages) = if everything {
                        tracked.timeline.settle(now_ms);
                        tracked.timeline.take_all()
                    } else {
                        tracked.timeline.settle(before);
                        tracked.timeline.take(before)
                    };
                    (!hours.is_empty() || !outages.is_empty()).then(|| {
                        (
                            key.clone(),
                            tracked.meta.clone(),
                            tracked.timeline.last_seen_ms(),
                            hours,
                            outages,
                        )
                    })
                })
                .collect()
        };
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let transaction = connection.transaction()?;
        let mut rows = 0;
        {
            let mut upsert_series = transaction.prepare_cached(
                "INSERT INTO series (kind, name, target, agent, department, service, last_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (kind, name, target) DO UPDATE SET agent = excluded.agent,
                    department = excluded.department, service = excluded.service,
                    last_ms = MAX(last_ms, excluded.last_ms)
                 RETURNING id",
            )?;
            let mut upsert_hour = transaction.prepare_cached(
                "INSERT INTO hours (series_id, hour_ms, up_ms, known_ms, changes, longest_down_ms,
                    http_status, tls_expiry_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (series_id, hour_ms) DO UPDATE SET up_ms = up_ms + excluded.up_ms,
                    known_ms = known_ms + excluded.known_ms,
                    changes = changes + excluded.changes,
                    longest_down_ms = MAX(longest_down_ms, excluded.longest_down_ms),
                    http_status = COALESCE(excluded.http_status, http_status),
                    tls_expiry_ms = COALESCE(excluded.tls_expiry_ms, tls_expiry_ms)",
            )?;
            let mut upsert_outage = transaction.prepare_cached(
                "INSERT INTO outages (series_id, start_ms, end_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (series_id, start_ms) DO UPDATE SET end_ms = excluded.end_ms",
            )?;
            for (key, meta, last_ms, hours, outages) in pending {
                let id: i64 = upsert_series.query_row(
                    params![
                        key.kind.as_str(),
                        key.name,
                        key.target,
                        meta.agent,
                        meta.department,
                        meta.service,
                        last_ms
                    ],
                    |row| row.get(0),
                )?;
                for (hour_ms, stats) in hours {
                    upsert_hour.execute(params![
                        id,
                        hour_ms,
                        stats.up_ms,
                        stats.known_ms,
                        stats.changes,
                        stats.longest_down_ms,
                        stats.http_status,
                        stats.tls_expiry_ms
                    ])?;
                    rows += 1;
                }
                for outage in outages {
                    upsert_outage.execute(params![id, outage.start_ms, outage.end_ms])?;
                }
            }
        }
        transaction.commit()?;
        self.purge(&connection, now_ms)?;
        Ok(rows)
    }

    /// Deletes what is older than the retention, in small transactions.
    fn purge(&self, connection: &Connection, now_ms: i64) -> rusqlite::Result<()> {
        let cutoff = now_ms.saturating_sub(self.retention_ms);
        for sql in [
            "DELETE FROM outages WHERE (series_id, start_ms) IN (SELECT series_id, start_ms
                FROM outages WHERE end_ms < ?1 LIMIT ?2)",
            "DELETE FROM incidents WHERE id IN (SELECT id FROM incidents WHERE opened_ms < ?1 LIMIT ?2)",
        ] {
            countywatch_daemon::sqlite::delete_in_batches(connection, sql, cutoff)?;
        }
        // Hours go series by series through the primary key, so the purge
        // never scans the whole table.
        let ids: Vec<i64> = connection
            .prepare_cached("SELECT id FROM series")?
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        let mut delete =
            connection.prepare_cached("DELETE FROM hours WHERE series_id = ?1 AND hour_ms < ?2")?;
        for id in ids {
            delete.execute(params![id, cutoff])?;
        }
        connection.execute(
            "DELETE FROM series WHERE last_ms < ?1
               AND NOT EXISTS (SELECT 1 FROM hours WHERE series_id = series.id)",
            params![cutoff],
        )?;
        Ok(())
    }

    /// Copies incidents into the history (new ones added, changed ones
    /// updated), each with the department of its first host.
    pub fn copy_incidents(&self, incidents: &[IncidentRecord]) -> anyhow::Result<()> {
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        copy_incidents(&mut connection, incidents)
    }
}

/// [`History::copy_incidents`] on a connection of its own (the report
/// command, while the daemon runs).
pub fn copy_incidents(
    connection: &mut Connection,
    incidents: &[IncidentRecord],
) -> anyhow::Result<()> {
    let transaction = connection.transaction()?;
    {
        let mut department = transaction
            .prepare_cached("SELECT department FROM series WHERE kind = 'agent' AND name = ?1")?;
        let mut upsert = transaction.prepare_cached(
            "INSERT INTO incidents (id, rule_id, severity, status, department, opened_ms,
                acknowledged_ms, closed_ms, source, hosts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (id) DO UPDATE SET status = excluded.status,
                department = excluded.department, acknowledged_ms = excluded.acknowledged_ms,
                closed_ms = excluded.closed_ms, hosts = excluded.hosts",
        )?;
        for incident in incidents {
            let found: Option<String> = match incident.hosts.first() {
                Some(host) => {
                    use rusqlite::OptionalExtension;
                    department
                        .query_row(params![host], |row| row.get(0))
                        .optional()?
                }
                None => None,
            };
            upsert.execute(params![
                incident.id,
                incident.rule_id,
                incident.severity,
                incident.status,
                found.unwrap_or_else(|| incident.department.clone()),
                incident.opened_ms,
                incident.acknowledged_ms,
                incident.closed_ms,
                incident.source,
                serde_json::to_string(&incident.hosts)?,
            ])?;
        }
    }
    transaction.commit()?;
    Ok(())
}

/// Every series with known time in `[from_ms, to_ms)`, summed.
pub fn series_summaries(
    connection: &Connection,
    from_ms: i64,
    to_ms: i64,
) -> rusqlite::Result<Vec<SeriesSummary>> {
    // The series are the outer loop so that hours are read through their
    // primary key, one range per series.
    let mut statement = connection.prepare_cached(
        "SELECT s.kind, s.name, s.target, s.agent, s.department, s.service,
            SUM(h.up_ms), SUM(h.known_ms), SUM(h.changes),
            (SELECT http_status FROM hours WHERE series_id = s.id AND hour_ms >= ?1
                AND hour_ms < ?2 AND http_status IS NOT NULL ORDER BY hour_ms DESC LIMIT 1),
            (SELECT tls_expiry_ms FROM hours WHERE series_id = s.id AND hour_ms >= ?1
                AND hour_ms < ?2 AND tls_expiry_ms IS NOT NULL ORDER BY hour_ms DESC LIMIT 1)
         FROM series s CROSS JOIN hours h ON h.series_id = s.id
         WHERE h.hour_ms >= ?1 AND h.hour_ms < ?2
         GROUP BY s.id ORDER BY s.kind, s.department, s.service, s.name, s.target",
    )?;
    let rows = statement.query_map(params![from_ms, to_ms], |row| {
        Ok(SeriesSummary {
            kind: row.get(0)?,
            name: row.get(1)?,
            target: row.get(2)?,
            agent: row.get(3)?,
            department: row.get(4)?,
            service: row.get(5)?,
            up_ms: row.get(6)?,
            known_ms: row.get(7)?,
            changes: row.get(8)?,
            http_status: row.get(9)?,
            tls_expiry_ms: row.get(10)?,
        })
    })?;
    rows.collect()
}

/// Every outage overlapping `[from_ms, to_ms)`, oldest first.
pub fn outages(
    connection: &Connection,
    from_ms: i64,
    to_ms: i64,
) -> rusqlite::Result<Vec<OutageRecord>> {
    let mut statement = connection.prepare_cached(
        "SELECT s.kind, s.name, s.target, s.department, s.service, o.start_ms, o.end_ms
         FROM outages o JOIN series s ON s.id = o.series_id
         WHERE o.start_ms < ?2 AND (o.end_ms IS NULL OR o.end_ms > ?1)
         ORDER BY o.start_ms, s.kind, s.name, s.target",
    )?;
    let rows = statement.query_map(params![from_ms, to_ms], |row| {
        Ok(OutageRecord {
            kind: row.get(0)?,
            name: row.get(1)?,
            target: row.get(2)?,
            department: row.get(3)?,
            service: row.get(4)?,
            start_ms: row.get(5)?,
            end_ms: row.get(6)?,
        })
    })?;
    rows.collect()
}

/// Incidents opened in `[from_ms, to_ms)`, oldest first.
pub fn incidents(
    connection: &Connection,
    from_ms: i64,
    to_ms: i64,
) -> rusqlite::Result<Vec<IncidentRecord>> {
    let mut statement = connection.prepare_cached(
        "SELECT id, rule_id, severity, status, department, opened_ms, acknowledged_ms,
            closed_ms, source, hosts FROM incidents
         WHERE opened_ms >= ?1 AND opened_ms < ?2 ORDER BY opened_ms, id",
    )?;
    let rows = statement.query_map(params![from_ms, to_ms], |row| {
        let hosts: String = row.get(9)?;
        Ok(IncidentRecord {
            id: row.get(0)?,
            rule_id: row.get(1)?,
            severity: row.get(2)?,
            status: row.get(3)?,
            department: row.get(4)?,
            opened_ms: row.get(5)?,
            acknowledged_ms: row.get(6)?,
            closed_ms: row.get(7)?,
            source: row.get(8)?,
            hosts: serde_json::from_str(&hosts).unwrap_or_default(),
        })
    })?;
    rows.collect()
}

/// Writes the finished hours as time passes and everything at shutdown;
/// `incidents` gives the incident store's incidents to copy each hour.
pub async fn run(
    history: std::sync::Arc<History>,
    incidents: std::sync::Arc<crate::incident::store::IncidentStore>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let everything = tokio::select! {
            _ = stopped.changed() => true,
            _ = ticker.tick() => false,
        };
        let history = std::sync::Arc::clone(&history);
        let incidents = std::sync::Arc::clone(&incidents);
        let written = tokio::task::spawn_blocking(move || {
            let now = countywatch_daemon::clock::now_ms();
            let rows = history.write(now, everything)?;
            if rows > 0 || everything {
                history.copy_incidents(&incidents.report_records()?)?;
            }
            anyhow::Ok(rows)
        })
        .await;
        match written {
            Ok(Ok(rows)) if rows > 0 => tracing::debug!(rows, "history hour written"),
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::error!("cannot write the report history: {error:#}"),
            Err(error) => tracing::error!(%error, "history writer failed"),
        }
        if everything {
            return;
        }
    }
}

/// One sample the history follows, read from a batch.
struct HistorySample {
    key: SeriesKey,
    up: bool,
    department: Option<String>,
    service: String,
    http_status: Option<i64>,
    tls_expiry_ms: Option<i64>,
}

/// The samples of a batch the history follows, by series.
fn batch_samples(agent: &str, metrics: &[MetricFamily]) -> Vec<HistorySample> {
    let family = |name: &str| metrics.iter().find(|family| family.name == name);
    let mut samples = Vec::new();
    let probe_value = |family_name: &str, probe: &str| {
        family(family_name).and_then(|family| {
            family
                .samples
                .iter()
                .find(|sample| label(&sample.labels, "name") == Some(probe))
                .map(|sample| sample.value)
        })
    };
    if let Some(success) = family("probe_success") {
        for sample in &success.samples {
            let Some(name) = label(&sample.labels, "name") else {
                continue;
            };
            samples.push(HistorySample {
                key: SeriesKey {
                    kind: SeriesKind::Service,
                    name: agent.to_string(),
                    target: name.to_string(),
                },
                up: sample.value >= 1.0,
                department: label(&sample.labels, "department").map(str::to_string),
                service: label(&sample.labels, "service").unwrap_or(name).to_string(),
                http_status: probe_value("probe_http_status_code", name).map(|v| v as i64),
                tls_expiry_ms: probe_value("probe_ssl_earliest_cert_expiry", name)
                    .map(|seconds| (seconds * 1000.0) as i64),
            });
        }
    }
    if let Some(up) = family("snmp_up") {
        for sample in &up.samples {
            let Some(device) = label(&sample.labels, "device_instance") else {
                continue;
            };
            samples.push(HistorySample {
                key: SeriesKey {
                    kind: SeriesKind::Device,
                    name: device.to_string(),
                    target: String::new(),
                },
                up: sample.value >= 1.0,
                department: label(&sample.labels, "department").map(str::to_string),
                service: label(&sample.labels, "service").unwrap_or("").to_string(),
                http_status: None,
                tls_expiry_ms: None,
            });
        }
    }
    if let Some(status) = family("ifOperStatus") {
        let admin = family("ifAdminStatus");
        // Interfaces are grouped as their device is (the agent puts the
        // grouping on `snmp_up` only).
        let groupings: HashMap<String, (Option<String>, String)> = samples
            .iter()
            .filter(|sample| sample.key.kind == SeriesKind::Device)
            .map(|sample| {
                (
                    sample.key.name.clone(),
                    (sample.department.clone(), sample.service.clone()),
                )
            })
            .collect();
        let grouping = |device: &str| groupings.get(device).cloned().unwrap_or_default();
        for sample in &status.samples {
            let Some(device) = label(&sample.labels, "device_instance") else {
                continue;
            };
            let index = label(&sample.labels, "ifIndex");
            // An interface an operator shut down is not an outage.
            let shut = admin.is_some_and(|admin| {
                admin.samples.iter().any(|other| {
                    label(&other.labels, "device_instance") == Some(device)
                        && label(&other.labels, "ifIndex") == index
                        && other.value != 1.0
                })
            });
            if shut {
                continue;
            }
            let name = label(&sample.labels, "ifName")
                .filter(|name| !name.is_empty())
                .or(label(&sample.labels, "ifDescr"))
                .or(index)
                .unwrap_or("");
            let (department, service) = grouping(device);
            samples.push(HistorySample {
                key: SeriesKey {
                    kind: SeriesKind::Interface,
                    name: device.to_string(),
                    target: name.to_string(),
                },
                up: sample.value == 1.0,
                department,
                service,
                http_status: None,
                tls_expiry_ms: None,
            });
        }
    }
    if let Some(sync) = family("node_timex_sync_status")
        && let Some(sample) = sync.samples.first()
    {
        samples.push(HistorySample {
            key: SeriesKey {
                kind: SeriesKind::TimeSync,
                name: agent.to_string(),
                target: String::new(),
            },
            up: sample.value == 1.0,
            department: None,
            service: String::new(),
            http_status: None,
            tls_expiry_ms: None,
        });
    }
    samples
}

fn label<'a>(labels: &'a [(LabelText, LabelText)], name: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|(label, _)| label == name)
        .map(|(_, value)| value.as_ref())
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::timeline::HOUR_MS;
    use countywatch_wire::MetricKind;

    fn probe(up: f64, status: f64) -> Vec<MetricFamily> {
        let labels = [
            ("name", "portal"),
            ("department", "政务服务中心"),
            ("service", "政务服务网"),
        ];
        let mut success = MetricFamily::new("probe_success", "", MetricKind::Gauge);
        success.push(&labels, up);
        let mut code = MetricFamily::new("probe_http_status_code", "", MetricKind::Gauge);
        code.push(&labels, status);
        vec![success, code]
    }

    #[test]
    fn a_day_of_batches_becomes_hour_rows_outages_and_summaries() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(
            dir.path(),
            Duration::from_secs(600),
            Duration::from_secs(86_400 * 400),
        )
        .unwrap();
        let start = 1_800_000_000_000 - 1_800_000_000_000 % HOUR_MS;
        for minute in (0..24 * 60).step_by(5) {
            let at = start + minute * 60_000;
            // The portal answers 503 from 10:00 to 10:30.
            let down = (600..630).contains(&minute);
            let metrics = probe(
                if down { 0.0 } else { 1.0 },
                if down { 503.0 } else { 200.0 },
            );
            history.observe_batch("web-1", at, at, &metrics);
            history.write(at, false).unwrap();
        }
        let end = start + 24 * HOUR_MS;
        history.write(end, true).unwrap();
        let connection = open(dir.path()).unwrap();
        let summaries = series_summaries(&connection, start, end).unwrap();
        let portal = summaries
            .iter()
            .find(|summary| summary.kind == SeriesKind::Service)
            .unwrap();
        assert_eq!(portal.service, "政务服务网");
        assert_eq!(portal.department, "政务服务中心");
        assert_eq!(portal.known_ms - portal.up_ms, 30 * 60_000);
        assert_eq!(portal.changes, 2);
        assert_eq!(portal.http_status, Some(200));
        let outages = outages(&connection, start, end).unwrap();
        assert_eq!(outages.len(), 1);
        assert_eq!(outages[0].start_ms, start + 600 * 60_000);
        assert_eq!(outages[0].end_ms, Some(start + 630 * 60_000));
        let rows: i64 = connection
            .query_row("SELECT COUNT(*) FROM hours", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 48, "one row per series and hour: agent and portal");
    }
}
