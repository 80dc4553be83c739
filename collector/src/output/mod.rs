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
//! [`Outputs`] is what the rest of the collector holds: ingest calls
//! [`Outputs::enqueue_agent_samples`] for every batch it stores, and the
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
use countywatch_wire::MetricFamily;
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
    );";

/// Opens (creating) `<data_dir>/outputs.db`.
pub fn open_database(data_dir: &Path) -> anyhow::Result<Connection> {
    let path = data_dir.join("outputs.db");
    // WAL so the sender reads while ingest appends.
    let connection = crate::sqlite::open(&path)?;
    connection
        .execute_batch(SCHEMA)
        .with_context(|| format!("cannot set up {}", path.display()))?;
    Ok(connection)
}

/// Every configured output.
pub struct Outputs {
    /// The remote_write outputs.
    remote_writes: Vec<Arc<RemoteWrite>>,
}

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
        Ok((Arc::new(Outputs { remote_writes }), tasks))
    }

    /// No outputs (tests, and collectors without an `outputs:` section).
    pub fn none() -> Arc<Outputs> {
        Arc::new(Outputs {
            remote_writes: Vec::new(),
        })
    }

    /// Queues the samples of a batch ingest just stored: labelled as on
    /// `/metrics` (`instance`, `job`), stamped with the batch's collection
    /// time. Runs on the blocking pool and hands the families back.
    pub async fn enqueue_agent_samples(
        self: &Arc<Self>,
        agent: &str,
        job: &'static str,
        collected_at_ms: i64,
        families: Vec<MetricFamily>,
    ) -> Vec<MetricFamily> {
        if self.remote_writes.is_empty() || families.is_empty() {
            return families;
        }
        let outputs = Arc::clone(self);
        let agent = agent.to_string();
        let task = tokio::task::spawn_blocking(move || {
            for output in &outputs.remote_writes {
                output.enqueue_agent_families(&agent, job, collected_at_ms, &families);
            }
            families
        });
        // A panic on the blocking pool would lose the families; they are
        // only needed for /metrics, which the next batch refreshes.
        task.await.unwrap_or_default()
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
