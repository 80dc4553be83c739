//! The countywatch agent as a library: the binary in `main.rs` is only the
//! command line around these functions, and tests call them directly.
//!
//! - [`config`]: the configuration file, its defaults and validation.
//! - [`probe`]: host probes, one file each, node_exporter metric names.
//! - [`collection`]: runs the probes under timeouts, adds self-metrics.
//! - [`enroll`]: `countywatch-agent enroll`, a token in, a certificate out.
//! - [`identity`]: the key, certificates and enrolment record on disk.
//! - [`spool`]: the durable, bounded queue of batches (SQLite).
//! - [`transport`]: HTTPS to the collector, mutual TLS.
//!
//! [`run`] is the daemon: every interval the probes run and their batch is
//! written to the spool; a sender task delivers the spool oldest first,
//! deleting each batch only when the collector acknowledges it.

pub mod collection;
pub mod config;
pub mod enroll;
pub mod identity;
pub mod probe;
pub mod spool;
pub mod transport;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use countywatch_wire::{
    Batch, CONTENT_ENCODING_GZIP, Event, INGEST_PATH, MetricFamily, WIRE_VERSION, encode_batch,
};
use tokio::sync::Notify;

use crate::collection::{Collector, TransportStats};
use crate::config::{CollectorUrl, Config};
use crate::identity::IdentityFiles;
use crate::spool::{BatchKind, Overflow, Spool};
use crate::transport::{SendError, Transport};

/// Collects once and returns the families, as `countywatch-agent test` prints them.
pub async fn collect_once(config: &Config) -> Vec<MetricFamily> {
    let mut collector = Collector::new(
        probe::build(config),
        config.probes.timeout.get(),
        Arc::new(TransportStats::default()),
    );
    collector.collect().await
}

/// The spool and the signal that it has something new, shared by the
/// collection loop and the sender.
struct Outbox {
    /// The spool; a std mutex because every operation is a short SQLite call.
    spool: Mutex<Spool>,
    /// Wakes the sender when a batch is spooled.
    notify: Notify,
}

impl Outbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Spool> {
        self.spool
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// Runs the agent until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let identity = IdentityFiles::new(&config.state_dir);
    let enrollment = identity.read_enrollment()?;
    let name = enrollment.agent.clone();
    if let Some(configured) = &config.name
        && configured.value != name
    {
        tracing::warn!(
            configured = %configured.value,
            enrolled = %name,
            "the configured name differs from the enrolled one; the certificate's name is used"
        );
    }
    let url_text = config
        .collector
        .url
        .as_ref()
        .map(|url| url.value.clone())
        .unwrap_or_else(|| enrollment.ingest_url.clone());
    let url = CollectorUrl::parse(&url_text).map_err(anyhow::Error::msg)?;
    let tls = transport::mutual_tls(&identity)?;
    let transport = Transport::new(url, tls, config.collector.timeout.get());
    let spool = Spool::open(
        &config.state_dir,
        config.spool.max_bytes,
        enrollment.first_seq,
    )?;
    let stats = Arc::new(TransportStats::default());
    publish_spool_size(&spool, &stats);
    let outbox = Arc::new(Outbox {
        spool: Mutex::new(spool),
        notify: Notify::new(),
    });
    let pace = Duration::from_secs_f64(1.0 / config.collector.catch_up_rate);
    let sender = tokio::spawn(send_loop(
        transport,
        Arc::clone(&outbox),
        Arc::clone(&stats),
        pace,
    ));
    let mut collector = Collector::new(
        probe::build(&config),
        config.probes.timeout.get(),
        Arc::clone(&stats),
    );
    tracing::info!(agent = %name, collector = %url_text, interval = %config.interval, "agent started");
    countywatch_daemon::notify::ready();

    let mut ticker = tokio::time::interval(config.interval.get());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = ticker.tick() => {}
        }
        let metrics = collector.collect().await;
        spool_batch(
            &outbox,
            &stats,
            &name,
            BatchKind::Metrics,
            metrics,
            Vec::new(),
            &[],
        )?;
    }
    sender.abort();
    tracing::info!("agent stopped");
    Ok(())
}

/// Writes one batch to the spool, reports any overflow as a `spool_overflow`
/// event (itself spooled), and wakes the sender.
fn spool_batch(
    outbox: &Outbox,
    stats: &TransportStats,
    agent: &str,
    kind: BatchKind,
    metrics: Vec<MetricFamily>,
    events: Vec<Event>,
    positions: &[(String, String)],
) -> anyhow::Result<()> {
    let now = now_ms();
    let mut batch = Batch {
        version: WIRE_VERSION,
        agent: agent.to_string(),
        seq: 0,
        collected_at_ms: now,
        metrics,
        events,
    };
    let mut spool = outbox.lock();
    let (_, overflow) = spool
        .push(
            kind,
            now,
            |seq| {
                batch.seq = seq;
                encode_batch(&batch)
            },
            positions,
        )
        .context("cannot spool a batch")?;
    if overflow != Overflow::default() {
        stats
            .spool_dropped_metrics
            .fetch_add(overflow.metrics, Ordering::Relaxed);
        stats
            .spool_dropped_events
            .fetch_add(overflow.events, Ordering::Relaxed);
        tracing::warn!(
            metric_batches = overflow.metrics,
            event_batches = overflow.events,
            "spool full, dropped the oldest batches"
        );
        let mut fields = std::collections::BTreeMap::new();
        fields.insert("host".to_string(), agent.to_string());
        fields.insert(
            "dropped_metric_batches".to_string(),
            overflow.metrics.to_string(),
        );
        fields.insert(
            "dropped_event_batches".to_string(),
            overflow.events.to_string(),
        );
        let event = Event {
            timestamp_ms: now,
            source: "agent".to_string(),
            kind: "spool_overflow".to_string(),
            fields,
            raw: format!(
                "spool full: dropped {} metric and {} event batches",
                overflow.metrics, overflow.events
            ),
        };
        let mut report = Batch {
            version: WIRE_VERSION,
            agent: agent.to_string(),
            seq: 0,
            collected_at_ms: now,
            metrics: Vec::new(),
            events: vec![event],
        };
        // The report may itself push out a metric batch; that is counted
        // above on the next overflow, not reported again, to avoid a loop.
        let (_, again) = spool
            .push(
                BatchKind::Events,
                now,
                |seq| {
                    report.seq = seq;
                    encode_batch(&report)
                },
                &[],
            )
            .context("cannot spool a batch")?;
        stats
            .spool_dropped_metrics
            .fetch_add(again.metrics, Ordering::Relaxed);
        stats
            .spool_dropped_events
            .fetch_add(again.events, Ordering::Relaxed);
    }
    publish_spool_size(&spool, stats);
    drop(spool);
    outbox.notify.notify_one();
    Ok(())
}

fn publish_spool_size(spool: &Spool, stats: &TransportStats) {
    stats.pending_batches.store(spool.len(), Ordering::Relaxed);
    stats.spool_bytes.store(spool.bytes(), Ordering::Relaxed);
}

/// Delivers the spool oldest first, one batch at a time, retrying with
/// exponential backoff and jitter. Logs once when the collector becomes
/// unreachable and once when it is back, not on every attempt.
async fn send_loop(
    mut transport: Transport,
    outbox: Arc<Outbox>,
    stats: Arc<TransportStats>,
    pace: Duration,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
    let mut failing = false;
    loop {
        let next = outbox.lock().oldest();
        let (seq, body) = match next {
            Ok(Some(next)) => next,
            Ok(None) => {
                outbox.notify.notified().await;
                continue;
            }
            Err(error) => {
                tracing::error!("{error:#}");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        let size = body.len() as u64;
        match transport
            .post(INGEST_PATH, Some(CONTENT_ENCODING_GZIP), Bytes::from(body))
            .await
        {
            Ok(_) => {
                if failing {
                    tracing::info!("collector reachable again");
                    failing = false;
                }
                backoff.reset();
                stats.batches_sent.fetch_add(1, Ordering::Relaxed);
                stats.bytes_sent.fetch_add(size, Ordering::Relaxed);
                acknowledge(&outbox, &stats, seq);
                // Pace the catch-up after an outage; a live agent has at
                // most one batch waiting and does not sleep here.
                if !outbox.lock().is_empty() {
                    tokio::time::sleep(pace).await;
                }
            }
            Err(error) if !is_worth_retrying(&error) => {
                // The collector will never take this batch; keeping it would
                // block every later one.
                tracing::error!(seq, %error, "batch refused, dropping it");
                stats.send_failures.fetch_add(1, Ordering::Relaxed);
                stats.batches_dropped.fetch_add(1, Ordering::Relaxed);
                acknowledge(&outbox, &stats, seq);
            }
            Err(error) => {
                stats.send_failures.fetch_add(1, Ordering::Relaxed);
                let delay = backoff.next_delay();
                if !failing {
                    tracing::warn!(%error, retry_in = ?delay, "cannot send to the collector, will retry with backoff");
                    failing = true;
                } else {
                    tracing::debug!(%error, retry_in = ?delay, "send failed again");
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Whether to keep a batch after this error. A 401/403 (not enrolled,
/// revoked) keeps the spool intact: once the agent is re-enrolled, nothing
/// it recorded meanwhile is lost.
fn is_worth_retrying(error: &SendError) -> bool {
    match error {
        SendError::Rejected {
            status: 401 | 403, ..
        } => true,
        other => other.is_retryable(),
    }
}

fn acknowledge(outbox: &Outbox, stats: &TransportStats, seq: u64) {
    let mut spool = outbox.lock();
    if let Err(error) = spool.acknowledge(seq) {
        tracing::error!("{error:#}");
    }
    publish_spool_size(&spool, stats);
}

/// Exponential backoff with jitter between half and all of the step, so
/// that agents cut off together do not reconnect together.
pub struct Backoff {
    /// First delay.
    base: Duration,
    /// Largest delay.
    cap: Duration,
    /// Failures since the last success.
    attempts: u32,
}

impl Backoff {
    /// Backoff from `base` doubling up to `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            attempts: 0,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let step = self
            .base
            .saturating_mul(2u32.saturating_pow(self.attempts.min(20)))
            .min(self.cap);
        self.attempts = self.attempts.saturating_add(1);
        step.mul_f64(rand::random_range(0.5..=1.0))
    }

    /// Back to the first delay after a success.
    pub fn reset(&mut self) {
        self.attempts = 0;
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let first = backoff.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let second = backoff.next_delay();
        assert!(second >= Duration::from_millis(100) && second <= Duration::from_millis(200));
        for _ in 0..30 {
            assert!(backoff.next_delay() <= Duration::from_secs(1));
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn an_overflow_is_reported_as_an_event_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1024 * 1024, 1).unwrap();
        let outbox = Outbox {
            spool: Mutex::new(spool),
            notify: Notify::new(),
        };
        let stats = TransportStats::default();
        // Fill the spool with incompressible metric batches.
        let big = |seed: u64| {
            let mut family = MetricFamily::new("x", "h", countywatch_wire::MetricKind::Gauge);
            for index in 0..3000u64 {
                let label = format!(
                    "{:x}",
                    (seed * 1_000_003 + index).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                );
                family.push(&[("k", &label)], index as f64);
            }
            vec![family]
        };
        for seed in 0..40 {
            spool_batch(
                &outbox,
                &stats,
                "a",
                BatchKind::Metrics,
                big(seed),
                Vec::new(),
                &[],
            )
            .unwrap();
        }
        assert!(stats.spool_dropped_metrics.load(Ordering::Relaxed) > 0);
        assert_eq!(stats.spool_dropped_events.load(Ordering::Relaxed), 0);
        assert!(outbox.lock().bytes() <= 1024 * 1024 + 200_000);
        // The overflow reports are in the spool, as event batches.
        let mut reports = 0;
        let mut spool = outbox.lock();
        while let Some((seq, body)) = spool.oldest().unwrap() {
            let batch = countywatch_wire::decode_batch(&body, Some("gzip"), 64 << 20).unwrap();
            reports += batch
                .events
                .iter()
                .filter(|event| event.kind == "spool_overflow")
                .count();
            spool.acknowledge(seq).unwrap();
        }
        assert!(reports > 0);
    }
}
