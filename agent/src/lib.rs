//! The countywatch agent as a library: the binary in `main.rs` is only the
//! command line around these functions, and tests call them directly.
//!
//! - [`config`]: the configuration file, its defaults and validation.
//! - [`probe`]: host probes, one file each, node_exporter metric names.
//! - [`collection`]: runs the probes under timeouts, adds self-metrics.
//! - [`transport`]: HTTPS to the collector with a pinned certificate.
//! - [`sequence`]: the persisted batch sequence number.
//! - [`source`]: security event sources (auth logs, file integrity, ports).
//!
//! [`run`] is the daemon: collect every interval, queue the batch, and let a
//! sender task deliver the queue with backoff while the collector is away.

pub mod collection;
pub mod config;
pub mod probe;
pub mod sequence;
pub mod source;
pub mod transport;

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use countywatch_wire::{Batch, MetricFamily, WIRE_VERSION, encode_batch};
use tokio::sync::Notify;

use crate::collection::{Collector, TransportStats};
use crate::config::{CollectorUrl, Config, parse_fingerprint};
use crate::transport::Transport;

/// Collects once and returns the families, as `countywatch-agent test` prints them.
pub async fn collect_once(config: &Config) -> Vec<MetricFamily> {
    let mut collector = Collector::new(
        probe::build(config),
        config.probes.timeout.get(),
        Arc::new(TransportStats::default()),
    );
    collector.collect().await
}

/// An encoded batch waiting to be sent.
struct Pending {
    /// The batch's sequence number, for logs.
    seq: u64,
    /// The gzip body.
    body: Bytes,
    /// The event sources' positions after this batch's events, committed
    /// once the collector acknowledged the batch.
    checkpoint: Option<source::Checkpoint>,
}

/// The queue between the collection loop and the sender, bounded so that a
/// long outage costs bounded memory (the durable spool replaces it later).
struct Queue {
    /// Oldest first.
    batches: Mutex<VecDeque<Pending>>,
    /// Wakes the sender when a batch arrives.
    notify: Notify,
    /// Largest number of batches kept.
    capacity: usize,
}

/// Runs the agent until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let name = config.agent_name();
    let url = CollectorUrl::parse(&config.collector.url.value).map_err(anyhow::Error::msg)?;
    let pin = config.collector.server_sha256.as_ref().context(
        "collector.server_sha256 is not set: pass --collector-sha256 with the fingerprint \
             that `countywatch-collector fingerprint` prints",
    )?;
    let pin = parse_fingerprint(&pin.value).map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&config.state_dir).with_context(|| {
        format!(
            "cannot create state directory {}",
            config.state_dir.display()
        )
    })?;
    let mut sequence = sequence::Sequence::open(&config.state_dir)?;
    let transport = Transport::new(url.clone(), pin, config.collector.timeout.get())
        .context("cannot set up TLS")?;

    let stats = Arc::new(TransportStats::default());
    let queue = Arc::new(Queue {
        batches: Mutex::new(VecDeque::new()),
        notify: Notify::new(),
        capacity: config.collector.max_pending_batches,
    });
    let sender = tokio::spawn(send_loop(transport, Arc::clone(&queue), Arc::clone(&stats)));
    let mut collector = Collector::new(
        probe::build(&config),
        config.probes.timeout.get(),
        Arc::clone(&stats),
    );
    let mut sources = source::Sources::start(&config, name.clone());
    tracing::info!(
        agent = %name,
        collector = %config.collector.url.value,
        interval = %config.interval,
        "agent started"
    );

    let mut ticker = tokio::time::interval(config.interval.get());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = ticker.tick() => {}
        }
        let mut metrics = collector.collect().await;
        let (events, checkpoint) = sources.poll();
        metrics.extend(sources.metrics());
        let seq = sequence.advance()?;
        let batch = Batch {
            version: WIRE_VERSION,
            agent: name.clone(),
            seq,
            collected_at_ms: now_ms(),
            metrics,
            events,
        };
        enqueue(
            &queue,
            &stats,
            Pending {
                seq,
                body: Bytes::from(encode_batch(&batch)),
                checkpoint: Some(checkpoint),
            },
        );
    }
    sender.abort();
    tracing::info!("agent stopped");
    Ok(())
}

fn enqueue(queue: &Queue, stats: &TransportStats, pending: Pending) {
    let mut batches = queue
        .batches
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    batches.push_back(pending);
    while batches.len() > queue.capacity {
        if let Some(dropped) = batches.pop_front() {
            stats.batches_dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                seq = dropped.seq,
                "pending queue full, dropped the oldest batch"
            );
        }
    }
    stats
        .pending_batches
        .store(batches.len() as u64, Ordering::Relaxed);
    drop(batches);
    queue.notify.notify_one();
}

/// Delivers queued batches oldest first, retrying with exponential backoff
/// and jitter. Logs once when the collector becomes unreachable and once
/// when it is back, not on every attempt.
async fn send_loop(mut transport: Transport, queue: Arc<Queue>, stats: Arc<TransportStats>) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
    let mut failing = false;
    loop {
        let next = {
            let batches = queue
                .batches
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            batches
                .front()
                .map(|pending| (pending.seq, pending.body.clone()))
        };
        let Some((seq, body)) = next else {
            queue.notify.notified().await;
            continue;
        };
        let size = body.len() as u64;
        match transport.send(body).await {
            Ok(()) => {
                if failing {
                    tracing::info!("collector reachable again");
                    failing = false;
                }
                backoff.reset();
                stats.batches_sent.fetch_add(1, Ordering::Relaxed);
                stats.bytes_sent.fetch_add(size, Ordering::Relaxed);
                pop_front(&queue, &stats, seq);
            }
            Err(error) if !error.is_retryable() => {
                // The collector will never take this batch; keeping it would
                // block every later one.
                tracing::error!(seq, %error, "batch refused, dropping it");
                stats.send_failures.fetch_add(1, Ordering::Relaxed);
                stats.batches_dropped.fetch_add(1, Ordering::Relaxed);
                pop_front(&queue, &stats, seq);
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

/// Removes the batch that was just delivered (or refused for good) and
/// commits its event sources' checkpoint: a refused batch would be refused
/// again after a restart, so its events are not kept either.
fn pop_front(queue: &Queue, stats: &TransportStats, seq: u64) {
    let mut batches = queue
        .batches
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    // The batch may already have been dropped for space while we sent it.
    let delivered = if batches.front().is_some_and(|pending| pending.seq == seq) {
        batches.pop_front()
    } else {
        None
    };
    stats
        .pending_batches
        .store(batches.len() as u64, Ordering::Relaxed);
    drop(batches);
    if let Some(checkpoint) = delivered.and_then(|pending| pending.checkpoint) {
        // Failures are logged and counted by the checkpoint itself.
        let _ = checkpoint.commit();
    }
}

/// Exponential backoff with "full jitter" between half and all of the step,
/// so that agents cut off together do not reconnect together.
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

fn now_ms() -> i64 {
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
    fn a_full_queue_drops_the_oldest_and_counts_it() {
        let queue = Queue {
            batches: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            capacity: 2,
        };
        let stats = TransportStats::default();
        for seq in 1..=3 {
            enqueue(
                &queue,
                &stats,
                Pending {
                    seq,
                    body: Bytes::new(),
                    checkpoint: None,
                },
            );
        }
        let seqs: Vec<u64> = queue
            .batches
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.seq)
            .collect();
        assert_eq!(seqs, vec![2, 3]);
        assert_eq!(stats.batches_dropped.load(Ordering::Relaxed), 1);
        assert_eq!(stats.pending_batches.load(Ordering::Relaxed), 2);
    }
}
