//! Prometheus remote_write 1.0: every sample the collector accepts (and the
//! series it computes) written to a receiver such as Prometheus, Thanos
//! receive, Mimir or VictoriaMetrics.
//!
//! Samples are encoded at once as protobuf `TimeSeries` messages (written by
//! hand: the three messages of the 1.0 specification need no code
//! generator) and appended to a durable queue, the `remote_write_queue`
//! table of `<data_dir>/outputs.db`, in snappy-compressed chunks of at most
//! `max_samples_per_send` samples (labels repeat in every series, so
//! compression divides the disk a backlog needs several times). A sender task sends the oldest chunks as
//! one snappy-compressed `WriteRequest` (the concatenation of encoded
//! `TimeSeries` fields is itself a valid `WriteRequest`), deletes them on a
//! 2xx answer, retries 5xx, 429, 408 and network failures with exponential
//! backoff and jitter, and drops (counting) what the receiver refuses with
//! another 4xx, as the specification asks. Memory holds one request at a
//! time; the disk holds at most `max_pending_samples`, beyond which the
//! oldest chunks are dropped and counted.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use base64::Engine as _;
use bytes::Bytes;
use countywatch_wire::MetricFamily;
use prometheus::{IntCounterVec, IntGaugeVec, Opts};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{Notify, watch};

use crate::output::config::{HttpUrl, RemoteWriteConfig};
use crate::output::connect;
use countywatch_net::backoff::backoff;
use countywatch_net::secret::read_secret;
use countywatch_net::send_error::SendError;

/// The outcomes `countywatch_remote_write_samples_total` is labelled with.
pub const RESULTS: [&str; 4] = ["sent", "retried", "rejected", "dropped"];

/// The remote_write metrics, shared by every remote_write output and
/// labelled by output name.
#[derive(Clone)]
pub struct RemoteWriteMetrics {
    /// Samples by outcome: `sent` (acknowledged), `retried` (a failed
    /// attempt, counted per attempt), `rejected` (a 4xx answer), `dropped`
    /// (the queue was full or could not be written).
    pub samples: IntCounterVec,
    /// Samples waiting in the durable queue.
    pub pending: IntGaugeVec,
    /// When a request last succeeded, Unix seconds.
    pub last_success: prometheus::GaugeVec,
}

impl RemoteWriteMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let samples = IntCounterVec::new(
            Opts::new(
                "countywatch_remote_write_samples_total",
                "Samples handled by remote_write outputs, by outcome.",
            ),
            &["output", "result"],
        )?;
        let pending = IntGaugeVec::new(
            Opts::new(
                "countywatch_remote_write_pending_samples",
                "Samples waiting in a remote_write output's durable queue.",
            ),
            &["output"],
        )?;
        let last_success = prometheus::GaugeVec::new(
            Opts::new(
                "countywatch_remote_write_last_success_timestamp_seconds",
                "When a remote_write output's last request succeeded, in Unix seconds.",
            ),
            &["output"],
        )?;
        registry.register(Box::new(samples.clone()))?;
        registry.register(Box::new(pending.clone()))?;
        registry.register(Box::new(last_success.clone()))?;
        Ok(RemoteWriteMetrics {
            samples,
            pending,
            last_success,
        })
    }
}

/// One remote_write output: its queue and what its sender needs.
pub struct RemoteWrite {
    /// The output's config.
    config: RemoteWriteConfig,
    /// Its connection to `outputs.db`, serialised: enqueues come from the
    /// ingest path, peeks and deletes from the sender.
    queue: Mutex<Connection>,
    /// Samples in the queue, mirrored into the gauge.
    pending: AtomicU64,
    /// External labels, sorted, as protobuf-ready pairs.
    external_labels: Vec<(String, String)>,
    /// Wakes the sender when something was enqueued.
    wake: Notify,
    /// Its metrics.
    metrics: RemoteWriteMetrics,
}

/// One series to write: labels (any order; `__name__` included) and
/// samples as (value, Unix milliseconds).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Label pairs, including `__name__`.
    pub labels: Vec<(String, String)>,
    /// Samples, oldest first.
    pub samples: Vec<(f64, i64)>,
}

impl RemoteWrite {
    /// Opens the output's queue in `data_dir`.
    pub fn open(
        data_dir: &Path,
        config: RemoteWriteConfig,
        metrics: RemoteWriteMetrics,
    ) -> anyhow::Result<RemoteWrite> {
        let queue = crate::output::open_database(data_dir)?;
        let pending: i64 = queue
            .query_row(
                "SELECT COALESCE(SUM(samples), 0) FROM remote_write_queue WHERE output = ?1",
                params![config.name],
                |row| row.get(0),
            )
            .context("cannot read the remote_write queue")?;
        let pending = u64::try_from(pending).unwrap_or(0);
        metrics
            .pending
            .with_label_values(&[&config.name])
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        for result in RESULTS {
            metrics.samples.with_label_values(&[&config.name, result]);
        }
        metrics.last_success.with_label_values(&[&config.name]);
        let external_labels = config
            .external_labels
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        Ok(RemoteWrite {
            config,
            queue: Mutex::new(queue),
            pending: AtomicU64::new(pending),
            external_labels,
            wake: Notify::new(),
            metrics,
        })
    }

    /// The output's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Samples waiting in the queue.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// How far this output queued the registry's `samples_outbox` (0:
    /// nothing yet).
    pub fn relayed_through(&self) -> anyhow::Result<i64> {
        Ok(self
            .lock()
            .query_row(
                "SELECT last_id FROM remote_write_relayed WHERE output = ?1",
                params![self.config.name],
                |row| row.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    /// Queues an agent's families as they were accepted (row `outbox_id`
    /// of the registry's `samples_outbox`), moving this output's relay
    /// cursor in the same transaction: each sample gets `instance` and
    /// `job` as on `/metrics`, and the batch's timestamp. Returns whether
    /// the row was taken (queued, or dropped and counted by the bound).
    /// Blocks on SQLite.
    pub fn enqueue_relayed(
        &self,
        outbox_id: i64,
        agent: &str,
        job: &str,
        timestamp_ms: i64,
        families: &[MetricFamily],
    ) -> bool {
        let series = families.iter().flat_map(|family| {
            family.samples.iter().map(move |sample| {
                let mut labels = Vec::with_capacity(sample.labels.len() + 3);
                labels.push(("__name__".to_string(), family.name.to_string()));
                labels.extend(
                    countywatch_wire::exposed_labels(agent, job, &sample.labels)
                        .into_iter()
                        .map(|(name, value)| (name.to_string(), value.to_string())),
                );
                Series {
                    labels,
                    samples: vec![(sample.value, timestamp_ms)],
                }
            })
        });
        self.enqueue_through(series, Some(outbox_id))
    }

    /// Queues series, encoded, in chunks of at most `max_samples_per_send`
    /// samples. What cannot be stored is counted as dropped. Blocks on SQLite.
    pub fn enqueue(&self, series: impl IntoIterator<Item = Series>) {
        self.enqueue_through(series, None);
    }

    /// [`RemoteWrite::enqueue`], moving the relay cursor to `relayed` (an
    /// outbox id) in the same transaction; returns whether it committed.
    fn enqueue_through(
        &self,
        series: impl IntoIterator<Item = Series>,
        relayed: Option<i64>,
    ) -> bool {
        let mut chunks: Vec<(Vec<u8>, u64)> = Vec::new();
        let mut current = Vec::new();
        let mut current_samples = 0u64;
        let limit = self.config.max_samples_per_send as u64;
        for one in series {
            if one.samples.is_empty() {
                continue;
            }
            if current_samples > 0 && current_samples + one.samples.len() as u64 > limit {
                chunks.push((std::mem::take(&mut current), current_samples));
                current_samples = 0;
            }
            current_samples += one.samples.len() as u64;
            encode_time_series(&mut current, &one, &self.external_labels);
        }
        if current_samples > 0 {
            chunks.push((current, current_samples));
        }
        if chunks.is_empty() && relayed.is_none() {
            return true;
        }
        let total: u64 = chunks.iter().map(|(_, samples)| samples).sum();
        let stored = self.store_chunks(&chunks, relayed);
        let taken = stored.is_ok();
        match stored {
            Ok(dropped) => {
                if dropped > 0 {
                    tracing::warn!(
                        output = %self.config.name,
                        dropped,
                        max_pending_samples = self.config.max_pending_samples,
                        "remote_write queue full: dropped the oldest samples"
                    );
                    self.count("dropped", dropped);
                }
            }
            Err(error) => {
                tracing::error!(output = %self.config.name, error = %format!("{error:#}"), "cannot queue samples for remote_write");
                // Relayed samples stay in the outbox for the next try.
                if relayed.is_none() {
                    self.count("dropped", total);
                }
            }
        }
        self.wake.notify_one();
        taken
    }

    /// Appends chunks and trims the oldest beyond the bound, in one
    /// transaction that also moves the relay cursor to `relayed`; returns
    /// how many samples were dropped.
    fn store_chunks(&self, chunks: &[(Vec<u8>, u64)], relayed: Option<i64>) -> anyhow::Result<u64> {
        let mut connection = self.lock();
        // Immediate for the same reason as in `remove_through`.
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let name = &self.config.name;
        {
            let mut insert = transaction.prepare_cached(
                "INSERT INTO remote_write_queue (output, samples, body) VALUES (?1, ?2, ?3)",
            )?;
            let mut encoder = snap::raw::Encoder::new();
            for (body, samples) in chunks {
                let compressed = encoder.compress_vec(body)?;
                insert.execute(params![name, i64::try_from(*samples)?, compressed])?;
            }
        }
        let mut pending = self.pending() + chunks.iter().map(|(_, samples)| samples).sum::<u64>();
        let mut dropped = 0u64;
        while pending > self.config.max_pending_samples {
            let oldest: Option<(i64, i64)> = transaction
                .query_row(
                    "SELECT id, samples FROM remote_write_queue WHERE output = ?1 ORDER BY id LIMIT 1",
                    params![name],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .ok();
            let Some((id, samples)) = oldest else {
                break;
            };
            transaction.execute("DELETE FROM remote_write_queue WHERE id = ?1", params![id])?;
            let samples = u64::try_from(samples).unwrap_or(0);
            pending = pending.saturating_sub(samples);
            dropped += samples;
        }
        if let Some(last_id) = relayed {
            transaction.execute(
                "INSERT INTO remote_write_relayed (output, last_id) VALUES (?1, ?2)
                 ON CONFLICT (output) DO UPDATE SET last_id = excluded.last_id",
                params![name, last_id],
            )?;
        }
        transaction.commit()?;
        self.set_pending(pending);
        Ok(dropped)
    }

    /// The oldest chunks, up to `max_samples_per_send` samples (at least one
    /// chunk): (last id, samples, concatenated uncompressed body). A chunk
    /// that does not decompress (a damaged file) is deleted and counted as
    /// dropped rather than blocking the queue.
    fn peek(&self) -> anyhow::Result<Option<(i64, u64, Vec<u8>)>> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "SELECT id, samples, body FROM remote_write_queue WHERE output = ?1 ORDER BY id LIMIT 64",
        )?;
        let mut rows = statement.query(params![self.config.name])?;
        let mut last_id = None;
        let mut samples = 0u64;
        let mut body = Vec::new();
        let mut damaged = Vec::new();
        let mut decoder = snap::raw::Decoder::new();
        while let Some(row) = rows.next()? {
            let row_samples = u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0);
            if last_id.is_some() && samples + row_samples > self.config.max_samples_per_send as u64
            {
                break;
            }
            let id = row.get::<_, i64>(0)?;
            match decoder.decompress_vec(row.get_ref(2)?.as_blob()?) {
                Ok(chunk) => body.extend_from_slice(&chunk),
                Err(error) => {
                    tracing::error!(output = %self.config.name, id, %error, "damaged remote_write chunk dropped");
                    damaged.push((id, row_samples));
                    continue;
                }
            }
            last_id = Some(id);
            samples += row_samples;
        }
        drop(rows);
        drop(statement);
        for (id, row_samples) in damaged {
            connection.execute("DELETE FROM remote_write_queue WHERE id = ?1", params![id])?;
            self.set_pending(self.pending().saturating_sub(row_samples));
            self.count("dropped", row_samples);
        }
        Ok(last_id.map(|id| (id, samples, body)))
    }

    /// Deletes the chunks up to `last_id`; returns how many samples left.
    fn remove_through(&self, last_id: i64) -> anyhow::Result<u64> {
        let mut connection = self.lock();
        // Immediate, not deferred: every output has its own connection to
        // `outputs.db`, and a deferred transaction that reads before it
        // writes fails at once with SQLITE_BUSY (the busy timeout does not
        // apply) when another output committed in between. A failed delete
        // left the chunks queued, so they were sent and counted again.
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let removed: i64 = transaction.query_row(
            "SELECT COALESCE(SUM(samples), 0) FROM remote_write_queue WHERE output = ?1 AND id <= ?2",
            params![self.config.name, last_id],
            |row| row.get(0),
        )?;
        transaction.execute(
            "DELETE FROM remote_write_queue WHERE output = ?1 AND id <= ?2",
            params![self.config.name, last_id],
        )?;
        transaction.commit()?;
        let removed = u64::try_from(removed).unwrap_or(0);
        self.set_pending(self.pending().saturating_sub(removed));
        Ok(removed)
    }

    fn set_pending(&self, pending: u64) {
        self.pending.store(pending, Ordering::Relaxed);
        self.metrics
            .pending
            .with_label_values(&[&self.config.name])
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
    }

    fn count(&self, result: &str, samples: u64) {
        self.metrics
            .samples
            .with_label_values(&[&self.config.name, result])
            .inc_by(samples);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.queue
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The headers every request carries, with the configured credentials.
    fn headers(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut headers = vec![
            ("Content-Encoding".to_string(), "snappy".to_string()),
            (
                "Content-Type".to_string(),
                "application/x-protobuf".to_string(),
            ),
            (
                "X-Prometheus-Remote-Write-Version".to_string(),
                "0.1.0".to_string(),
            ),
        ];
        if let Some(auth) = &self.config.basic_auth {
            let password = read_secret(&auth.password_file)?;
            let credentials = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{password}", auth.username));
            headers.push(("Authorization".to_string(), format!("Basic {credentials}")));
        }
        if let Some(file) = &self.config.bearer_token_file {
            let token = read_secret(file)?;
            headers.push(("Authorization".to_string(), format!("Bearer {token}")));
        }
        Ok(headers)
    }
}

/// Sends the queue to the receiver until `stopped` turns true.
pub async fn send_loop(output: std::sync::Arc<RemoteWrite>, mut stopped: watch::Receiver<bool>) {
    let name = output.config.name.clone();
    let url = match HttpUrl::parse(&output.config.url.value) {
        Ok(url) => url,
        Err(message) => {
            tracing::error!(output = %name, %message, "remote_write output disabled");
            return;
        }
    };
    let mut client = match connect::http_client(
        &url,
        output.config.tls.as_ref(),
        output.config.timeout.get(),
    ) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(output = %name, error = %format!("{error:#}"), "remote_write output disabled");
            return;
        }
    };
    let min_backoff = output.config.min_backoff.get();
    let max_backoff = output.config.max_backoff.get();
    // Failures in a row, for the backoff.
    let mut failures = 0u32;
    let mut failing = false;
    while !*stopped.borrow() {
        let peek_output = std::sync::Arc::clone(&output);
        let next = tokio::task::spawn_blocking(move || peek_output.peek()).await;
        let (last_id, samples, body) = match next {
            Ok(Ok(Some(next))) => next,
            Ok(Ok(None)) => {
                // Nothing queued: sleep until an enqueue wakes us (or a
                // second passes, so a missed wake-up costs little).
                tokio::select! {
                    _ = output.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stopped.changed() => {}
                }
                continue;
            }
            Ok(Err(error)) => {
                tracing::error!(output = %name, error = %format!("{error:#}"), "cannot read the remote_write queue");
                pause(&mut stopped, max_backoff).await;
                continue;
            }
            Err(_) => return,
        };
        let compressed = match snap::raw::Encoder::new().compress_vec(&body) {
            Ok(compressed) => compressed,
            Err(error) => {
                tracing::error!(output = %name, %error, "cannot compress a remote_write request; dropping it");
                output.count("dropped", samples);
                remove(&output, last_id).await;
                continue;
            }
        };
        let outcome = match output.headers() {
            Ok(headers) => {
                let headers: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_str()))
                    .collect();
                // A shutdown abandons the request; its chunks stay queued
                // and are sent again on the next start.
                tokio::select! {
                    outcome = client.post(&headers, Bytes::from(compressed)) => outcome,
                    _ = stopped.changed() => break,
                }
            }
            Err(error) => Err(SendError::Retryable(format!("{error:#}"))),
        };
        match outcome {
            Ok(_) => {
                remove(&output, last_id).await;
                output.count("sent", samples);
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64();
                output
                    .metrics
                    .last_success
                    .with_label_values(&[&name])
                    .set(now);
                if failing {
                    tracing::info!(output = %name, pending = output.pending(), "remote_write receiver reachable again");
                    failing = false;
                }
                failures = 0;
            }
            Err(SendError::Permanent(message)) => {
                tracing::warn!(output = %name, %message, samples, "remote_write receiver refused a request; dropping it");
                output.count("rejected", samples);
                remove(&output, last_id).await;
            }
            Err(SendError::Retryable(message)) => {
                output.count("retried", samples);
                if !failing {
                    tracing::warn!(output = %name, %message, "cannot write to the remote_write receiver, will retry with backoff");
                    failing = true;
                }
                failures = failures.saturating_add(1);
                pause(&mut stopped, backoff(failures, min_backoff, max_backoff)).await;
            }
        }
    }
}

async fn remove(output: &std::sync::Arc<RemoteWrite>, last_id: i64) {
    let output_for_delete = std::sync::Arc::clone(output);
    match tokio::task::spawn_blocking(move || output_for_delete.remove_through(last_id)).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            tracing::error!(output = %output.config.name, error = %format!("{error:#}"), "cannot delete sent samples from the queue");
        }
        Err(_) => {}
    }
}

/// Sleeps for `wait` or until stop, whichever comes first.
async fn pause(stopped: &mut watch::Receiver<bool>, wait: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = stopped.changed() => {}
    }
}

/// Appends one `WriteRequest.timeseries` field (number 1) holding `series`
/// with labels sorted by name, as receivers require, and external labels
/// added where the series lacks them.
pub fn encode_time_series(out: &mut Vec<u8>, series: &Series, external: &[(String, String)]) {
    let mut labels: BTreeMap<&str, &str> = series
        .labels
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    for (name, value) in external {
        labels.entry(name.as_str()).or_insert(value.as_str());
    }
    let mut message = Vec::with_capacity(64 + series.samples.len() * 20);
    for (name, value) in labels {
        // Label { string name = 1; string value = 2; }
        let mut label = Vec::with_capacity(name.len() + value.len() + 4);
        put_bytes(&mut label, 1, name.as_bytes());
        put_bytes(&mut label, 2, value.as_bytes());
        put_bytes(&mut message, 1, &label);
    }
    for (value, timestamp_ms) in &series.samples {
        // Sample { double value = 1; int64 timestamp = 2; }
        let mut sample = Vec::with_capacity(20);
        put_key(&mut sample, 1, 1);
        sample.extend_from_slice(&value.to_le_bytes());
        put_key(&mut sample, 2, 0);
        put_varint(&mut sample, *timestamp_ms as u64);
        put_bytes(&mut message, 2, &sample);
    }
    put_bytes(out, 1, &message);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal protobuf reader for the test: (field, wire type, payload).
    fn fields(mut bytes: &[u8]) -> Vec<(u64, u8, Vec<u8>)> {
        fn varint(bytes: &mut &[u8]) -> u64 {
            let mut value = 0u64;
            let mut shift = 0;
            loop {
                let byte = bytes[0];
                *bytes = &bytes[1..];
                value |= u64::from(byte & 0x7f) << shift;
                if byte < 0x80 {
                    return value;
                }
                shift += 7;
            }
        }
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let key = varint(&mut bytes);
            let wire_type = (key & 7) as u8;
            let payload = match wire_type {
                0 => varint(&mut bytes).to_le_bytes().to_vec(),
                1 => {
                    let (head, rest) = bytes.split_at(8);
                    bytes = rest;
                    head.to_vec()
                }
                2 => {
                    let length = varint(&mut bytes) as usize;
                    let (head, rest) = bytes.split_at(length);
                    bytes = rest;
                    head.to_vec()
                }
                other => panic!("wire type {other}"),
            };
            out.push((key >> 3, wire_type, payload));
        }
        out
    }

    #[test]
    fn time_series_encode_as_the_remote_write_spec_defines() {
        let series = Series {
            labels: vec![
                ("__name__".into(), "node_load1".into()),
                ("instance".into(), "web-1".into()),
                ("county".into(), "agent's own".into()),
            ],
            samples: vec![(0.5, 1_700_000_000_123)],
        };
        let mut out = Vec::new();
        encode_time_series(
            &mut out,
            &series,
            &[
                ("county".into(), "M".into()),
                ("region".into(), "东".into()),
            ],
        );
        let request = fields(&out);
        assert_eq!(request.len(), 1);
        assert_eq!((request[0].0, request[0].1), (1, 2));
        let time_series = fields(&request[0].2);
        let labels: Vec<(String, String)> = time_series
            .iter()
            .filter(|(field, _, _)| *field == 1)
            .map(|(_, _, label)| {
                let parts = fields(label);
                (
                    String::from_utf8(parts[0].2.clone()).unwrap(),
                    String::from_utf8(parts[1].2.clone()).unwrap(),
                )
            })
            .collect();
        let expected: Vec<(String, String)> = [
            ("__name__", "node_load1"),
            ("county", "agent's own"),
            ("instance", "web-1"),
            ("region", "东"),
        ]
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
        assert_eq!(labels, expected, "sorted, external labels never override");
        let sample = fields(&time_series.last().unwrap().2);
        assert_eq!(
            f64::from_le_bytes(sample[0].2.clone().try_into().unwrap()),
            0.5
        );
        assert_eq!(
            u64::from_le_bytes(sample[1].2.clone().try_into().unwrap()),
            1_700_000_000_123
        );
    }

    fn config(max_pending: u64, per_send: usize) -> RemoteWriteConfig {
        named_config("t", max_pending, per_send)
    }

    fn named_config(name: &str, max_pending: u64, per_send: usize) -> RemoteWriteConfig {
        let text = format!(
            "name: {name}\nurl: http://127.0.0.1:1/api/v1/write\nmax_pending_samples: {max_pending}\nmax_samples_per_send: {per_send}\n"
        );
        countywatch_config::config_file::parse(Path::new("t.yaml"), &text).unwrap()
    }

    fn series(n: usize) -> Vec<Series> {
        (0..n)
            .map(|i| Series {
                labels: vec![("__name__".into(), format!("m{i}"))],
                samples: vec![(i as f64, 1)],
            })
            .collect()
    }

    #[test]
    fn the_queue_survives_reopening_and_drops_the_oldest_beyond_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let registry = prometheus::Registry::new();
        let metrics = RemoteWriteMetrics::register(&registry).unwrap();
        let output = RemoteWrite::open(dir.path(), config(10, 4), metrics.clone()).unwrap();
        output.enqueue(series(9));
        assert_eq!(output.pending(), 9);
        let (_, samples, _) = output.peek().unwrap().unwrap();
        assert_eq!(
            samples, 4,
            "a second chunk of four would exceed one request"
        );
        drop(output);

        let output = RemoteWrite::open(dir.path(), config(10, 4), metrics.clone()).unwrap();
        assert_eq!(output.pending(), 9, "the queue is durable");
        output.enqueue(series(3));
        assert_eq!(output.pending(), 8, "the oldest chunk of four was dropped");
        assert_eq!(
            metrics.samples.with_label_values(&["t", "dropped"]).get(),
            4
        );
        let (last_id, samples, _) = output.peek().unwrap().unwrap();
        assert_eq!(samples, 4);
        assert_eq!(output.remove_through(last_id).unwrap(), 4);
        assert_eq!(output.pending(), 4, "the chunks of one and three are left");
        let (_, samples, body) = output.peek().unwrap().unwrap();
        assert_eq!(samples, 4, "both fit one request");
        assert_eq!(fields(&body).len(), 4, "four time series, decompressed");
    }

    #[test]
    fn basic_auth_is_sent_as_rfc_7617_base64_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "county-secret\n").unwrap();
        let text = format!(
            "name: t\nurl: http://127.0.0.1:1/api/v1/write\nbasic_auth:\n  username: countywatch\n  password_file: {}\n",
            password.display()
        );
        let config = countywatch_config::config_file::parse(Path::new("t.yaml"), &text).unwrap();
        let metrics = RemoteWriteMetrics::register(&prometheus::Registry::new()).unwrap();
        let output = RemoteWrite::open(dir.path(), config, metrics).unwrap();
        let headers = output.headers().unwrap();
        let authorization = headers
            .iter()
            .find(|(name, _)| name == "Authorization")
            .map(|(_, value)| value.as_str());
        // base64("countywatch:county-secret"), as `echo -n ... | base64` prints it.
        assert_eq!(
            authorization,
            Some("Basic Y291bnR5d2F0Y2g6Y291bnR5LXNlY3JldA==")
        );
    }

    #[test]
    fn sent_chunks_are_removed_while_another_output_writes_the_same_database() {
        // Two outputs share `outputs.db` through their own connections; the
        // second one's enqueues must never make the first one's delete fail
        // (a failed delete resends, and recounts, what was already sent).
        let dir = tempfile::tempdir().unwrap();
        let registry = prometheus::Registry::new();
        let metrics = RemoteWriteMetrics::register(&registry).unwrap();
        let sender = RemoteWrite::open(dir.path(), config(1_000_000, 4), metrics.clone()).unwrap();
        let other_config = named_config("other", 1_000, 4);
        let other = RemoteWrite::open(dir.path(), other_config, metrics).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        let failure = std::thread::scope(|scope| {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    other.enqueue(series(2));
                }
            });
            let mut failure = None;
            for round in 0..300 {
                sender.enqueue(series(2));
                let (last_id, samples, _) = sender.peek().unwrap().unwrap();
                match sender.remove_through(last_id) {
                    Ok(removed) if removed == samples => {}
                    Ok(removed) => {
                        failure = Some(format!("round {round}: {removed} of {samples} removed"));
                        break;
                    }
                    Err(error) => {
                        failure = Some(format!("round {round}: {error:#}"));
                        break;
                    }
                }
            }
            stop.store(true, Ordering::Relaxed);
            failure
        });
        assert_eq!(failure, None);
        assert_eq!(sender.pending(), 0);
    }

    #[test]
    fn a_damaged_chunk_is_dropped_and_counted_not_retried_forever() {
        let dir = tempfile::tempdir().unwrap();
        let registry = prometheus::Registry::new();
        let metrics = RemoteWriteMetrics::register(&registry).unwrap();
        let output = RemoteWrite::open(dir.path(), config(100, 2), metrics.clone()).unwrap();
        output.enqueue(series(4));
        output
            .lock()
            .execute(
                "UPDATE remote_write_queue SET body = x'ff00ff' WHERE id = (SELECT MIN(id) FROM remote_write_queue)",
                [],
            )
            .unwrap();
        let (_, samples, body) = output.peek().unwrap().unwrap();
        assert_eq!((samples, fields(&body).len()), (2, 2));
        assert_eq!(output.pending(), 2);
        assert_eq!(
            metrics.samples.with_label_values(&["t", "dropped"]).get(),
            2
        );
    }
}
