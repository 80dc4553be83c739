//! Scale-out outputs: how a county collector feeds the platforms a city or
//! province already runs, instead of growing a cluster of its own.
//!
//! - [`remote_write`]: Prometheus remote_write 1.0 to a long-term store,
//!   through a durable, bounded queue in `<data_dir>/outputs.db`.
//! - [`event_forward`]: every stored security event to a SIEM as RFC 5424
//!   syslog (TCP or TLS) or JSON lines, at least once, from a durable cursor.
//! - [`connect`]: TCP/TLS connections and the HTTP client both use.
//! - [`config`]: the `outputs:` config section.
//!
//! [`Outputs`] is what the rest of the collector holds: ingest queues every
//! stored batch's samples in the registry's `samples_outbox` in the
//! batch's transaction and calls [`Outputs::relay_agent_samples`], and the
//! rule evaluator calls [`Outputs::enqueue_computed`] for the series it
//! computes (recording rules, `ALERTS`).
//!
//! **Architecture Invariant:** an output never slows or fails ingest beyond
//! one SQLite insert: a receiver that is down fills the bounded queue, whose
//! overflow is dropped and counted, never pushed back onto agents.

pub mod config;
pub mod connect;
pub mod event_forward;
pub mod remote_write;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rusqlite::Connection;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::output::config::OutputsConfig;
use crate::output::remote_write::{RemoteWrite, RemoteWriteMetrics, Series};

/// The schema of `<data_dir>/outputs.db`, created if missing. Kept apart
/// from `collector.db` so that a large remote_write backlog never slows the
/// registry's transactions, and can be deleted on its own.
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS remote_write_queue (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        output TEXT NOT NULL,
        samples INTEGER NOT NULL,
        body BLOB NOT NULL
    );
    CREATE INDEX IF NOT EXISTS remote_write_queue_by_output ON remote_write_queue (output, id);
    CREATE TABLE IF NOT EXISTS forward_cursors (
        output TEXT PRIMARY KEY,
        last_id INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS remote_write_relayed (
        output TEXT PRIMARY KEY,
        last_id INTEGER NOT NULL
    );";

/// Opens (creating) `<data_dir>/outputs.db`.
pub fn open_database(data_dir: &Path) -> anyhow::Result<Connection> {
    let path = data_dir.join("outputs.db");
    // WAL so the sender reads while ingest appends.
    let connection = countywatch_daemon::sqlite::open(&path)?;
    connection
        .execute_batch(SCHEMA)
        .with_context(|| format!("cannot set up {}", path.display()))?;
    Ok(connection)
}

/// Every configured output.
pub struct Outputs {
    /// The remote_write outputs.
    remote_writes: Vec<Arc<RemoteWrite>>,
    /// Held while relaying the samples outbox: one relay at a time takes
    /// the rows in id order, so no output's cursor passes a row it has not
    /// queued.
    relaying: std::sync::Mutex<()>,
    /// The outbox id through which rows were deleted, so that rows every
    /// output queued just before a crash are deleted once, at the first
    /// relay after it.
    trimmed_through: std::sync::atomic::AtomicI64,
}

/// Outbox rows relayed per read.
const RELAY_ROWS: usize = 64;

impl Outputs {
    /// Opens every output's durable state, registers the metrics in
    /// `registry` and starts the senders, which stop when `stopped` turns
    /// true.
    pub fn start(
        config: &OutputsConfig,
        data_dir: &Path,
        registry: &prometheus::Registry,
        stopped: &watch::Receiver<bool>,
    ) -> anyhow::Result<(Arc<Outputs>, Vec<JoinHandle<()>>)> {
        let mut tasks = Vec::new();
        let mut remote_writes = Vec::new();
        if !config.remote_write.is_empty() {
            let metrics = RemoteWriteMetrics::register(registry)
                .context("cannot register remote_write metrics")?;
            for output in &config.remote_write {
                let output = Arc::new(RemoteWrite::open(
                    data_dir,
                    output.clone(),
                    metrics.clone(),
                )?);
                tracing::info!(output = %output.name(), pending_samples = output.pending(), "remote_write output started");
                tasks.push(tokio::spawn(remote_write::send_loop(
                    Arc::clone(&output),
                    stopped.clone(),
                )));
                remote_writes.push(output);
            }
        }
        if !config.forward.is_empty() {
            let metrics = event_forward::ForwardMetrics::register(registry)
                .context("cannot register forwarding metrics")?;
            tasks.extend(event_forward::spawn_all(
                data_dir,
                &config.forward,
                &metrics,
                stopped,
            )?);
        }
        Ok((
            Arc::new(Outputs {
                remote_writes,
                relaying: std::sync::Mutex::new(()),
                trimmed_through: std::sync::atomic::AtomicI64::new(0),
            }),
            tasks,
        ))
    }

    /// No outputs (tests, and collectors without an `outputs:` section).
    pub fn none() -> Arc<Outputs> {
        Arc::new(Outputs {
            remote_writes: Vec::new(),
            relaying: std::sync::Mutex::new(()),
            trimmed_through: std::sync::atomic::AtomicI64::new(0),
        })
    }

    /// Whether any output takes the samples of agents' batches, so that
    /// ingest queues them in the registry's `samples_outbox`.
    pub fn wants_agent_samples(&self) -> bool {
        !self.remote_writes.is_empty()
    }

    /// Relays the registry's `samples_outbox` into every remote_write
    /// queue: labelled as on `/metrics` (`instance`, `job`), stamped with
    /// the batch's collection time. Each output moves its cursor in the
    /// transaction that queues a row's samples, so a relay repeated after a
    /// crash queues nothing twice; rows every output has passed are then
    /// deleted. Ingest calls it after each stored batch, and the collector
    /// at start for what a crash left. Blocks on SQLite.
    pub fn relay_agent_samples(&self, registry: &crate::registry::Registry) {
        if self.remote_writes.is_empty() {
            return;
        }
        let _relaying = self
            .relaying
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        loop {
            let cursors: anyhow::Result<Vec<i64>> = self
                .remote_writes
                .iter()
                .map(|output| output.relayed_through())
                .collect();
            let (cursors, rows) = match cursors.and_then(|cursors| {
                let from = cursors.iter().copied().min().unwrap_or(0);
                Ok((cursors, registry.samples_outbox_after(from, RELAY_ROWS)?))
            }) {
                Ok(found) => found,
                Err(error) => {
                    tracing::error!("cannot read the samples outbox; relaying later: {error:#}");
                    return;
                }
            };
            let from = cursors.iter().copied().min().unwrap_or(0);
            let Some(last) = rows.last().map(|row| row.id) else {
                self.trim_outbox(registry, from);
                return;
            };
            for row in &rows {
                for (output, cursor) in self.remote_writes.iter().zip(&cursors) {
                    if row.id > *cursor
                        && !output.enqueue_relayed(
                            row.id,
                            &row.agent,
                            &row.job,
                            row.collected_at_ms,
                            &row.families,
                        )
                    {
                        // Kept in the outbox; the next relay tries again.
                        return;
                    }
                }
                countywatch_daemon::failpoint::hit("remote_write.relayed");
            }
            self.trim_outbox(registry, last);
        }
    }

    /// Deletes the outbox rows through `through`, every output having
    /// queued them, unless that was done already.
    fn trim_outbox(&self, registry: &crate::registry::Registry, through: i64) {
        use std::sync::atomic::Ordering;
        if through <= self.trimmed_through.load(Ordering::Relaxed) {
            return;
        }
        match registry.trim_samples_outbox(through) {
            Ok(()) => self.trimmed_through.store(through, Ordering::Relaxed),
            Err(error) => tracing::warn!("cannot trim the samples outbox: {error:#}"),
        }
    }

    /// Whether any output takes the series the collector computes, so that
    /// the rule engine collects them only when someone will send them.
    pub fn wants_computed(&self) -> bool {
        !self.remote_writes.is_empty()
    }

    /// Queues series the collector computes (recording rules' outputs,
    /// `ALERTS`, `ALERTS_FOR_STATE`, and their staleness markers): each
    /// written with exactly the labels it carries (`__name__` included, no
    /// `instance`/`job` added) plus the external labels. Blocks on SQLite:
    /// call it from the blocking pool or a blocking evaluation thread.
    pub fn enqueue_computed(&self, series: &[Series]) {
        for output in &self.remote_writes {
            output.enqueue(series.iter().cloned());
        }
    }
}
