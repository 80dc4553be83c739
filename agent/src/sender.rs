//! The sender side of the agent: the spool glue and the delivery to the
//! collector. The run loop hands each batch to [`spool_holding`], which
//! writes it (with the source positions it covers) to the spool in one
//! transaction and reports overflow and damage as events of the agent's
//! own; [`send_loop`] delivers the spool oldest first and deletes a batch
//! only when the collector acknowledges it, so a batch is sent at least
//! once and its events are spooled exactly once.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use countywatch_daemon::clock::now_ms;
use countywatch_net::backoff::Backoff;
use countywatch_wire::{
    Batch, CONTENT_ENCODING_GZIP, Event, EventKind, EventSource, INGEST_PATH, MetricFamily,
    WIRE_VERSION, encode_batch,
};
use tokio::sync::Notify;

use crate::collection::TransportStats;
use crate::response;
use crate::spool::{BatchKind, Loss, Overflow, Spool};
use crate::transport::{SendError, Transport};

/// The spool and the signal that it has something new, shared by the
/// collection loop and the sender.
pub struct Outbox {
    /// The spool; a std mutex because every operation is a short SQLite call.
    spool: Mutex<Spool>,
    /// Wakes the sender when a batch is spooled.
    notify: Notify,
}

impl Outbox {
    /// An outbox around an open spool.
    pub fn new(spool: Spool) -> Outbox {
        Outbox {
            spool: Mutex::new(spool),
            notify: Notify::new(),
        }
    }

    /// The spool, for one short operation.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Spool> {
        self.spool
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// Spools a batch and, while the spool cannot be written (a full disk, an
/// I/O error), holds it and retries every second instead of ending the
/// agent. Only one batch is ever held: the run loop polls no source
/// meanwhile, and source positions are saved only with their batch, so even
/// a stop while holding loses nothing (a restart re-reads those lines). A
/// batch of metrics alone is not worth waiting for: it is dropped and
/// counted. Returns false if the agent was asked to stop while holding.
pub async fn spool_holding<F: Future<Output = ()>>(
    outbox: &Outbox,
    stats: &TransportStats,
    agent: &str,
    kind: BatchKind,
    (mut metrics, mut events): (Vec<MetricFamily>, Vec<Event>),
    positions: &[(String, String)],
    mut shutdown: std::pin::Pin<&mut F>,
) -> bool {
    loop {
        let Err(error) = spool_batch(
            outbox,
            stats,
            agent,
            kind,
            (&mut metrics, &mut events),
            positions,
        ) else {
            if stats.spool_failing.swap(false, Ordering::Relaxed) {
                tracing::info!("the spool is writable again");
            }
            return true;
        };
        stats.spool_write_failures.fetch_add(1, Ordering::Relaxed);
        if !stats.spool_failing.swap(true, Ordering::Relaxed) {
            tracing::error!(
                error = format!("{error:#}"),
                "cannot write the spool; holding the batch and retrying every second"
            );
        }
        if events.is_empty() && positions.is_empty() {
            stats.spool_dropped_metrics.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        tokio::select! {
            () = shutdown.as_mut() => return false,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Writes one batch to the spool, reports any overflow as a `spool_overflow`
/// event (itself spooled), and wakes the sender. On failure the metrics and
/// events are given back, so the caller can try again.
fn spool_batch(
    outbox: &Outbox,
    stats: &TransportStats,
    agent: &str,
    kind: BatchKind,
    (metrics, events): (&mut Vec<MetricFamily>, &mut Vec<Event>),
    positions: &[(String, String)],
) -> anyhow::Result<()> {
    let now = now_ms();
    let mut batch = Batch {
        version: WIRE_VERSION,
        agent: agent.to_string(),
        seq: 0,
        collected_at_ms: now,
        metrics: std::mem::take(metrics),
        events: std::mem::take(events),
    };
    let mut spool = outbox.lock();
    let event_count = batch.events.len() as u64;
    let pushed = spool.push(
        kind,
        now,
        event_count,
        |seq| {
            batch.seq = seq;
            encode_batch(&batch)
        },
        positions,
    );
    let (_, overflow) = match pushed {
        Ok(pushed) => pushed,
        Err(error) => {
            *metrics = batch.metrics;
            *events = batch.events;
            return Err(error).context("cannot spool a batch");
        }
    };
    if overflow != Overflow::default() {
        stats.count_overflow(overflow);
        tracing::warn!(
            metric_batches = overflow.metrics,
            event_batches = overflow.events,
            "spool full, dropped the oldest batches"
        );
        let mut event = Event::new(now, EventSource::Agent, EventKind::SpoolOverflow);
        event.host = agent.to_string();
        event.fields.dropped_metric_batches = Some(overflow.metrics);
        event.fields.dropped_event_batches = Some(overflow.events);
        event.raw = format!(
            "spool full: dropped {} metric and {} event batches",
            overflow.metrics, overflow.events
        );
        // The report may itself push out a metric batch; that is counted,
        // not reported again, to avoid a loop.
        let again = spool_own_event(&mut spool, agent, event).context("cannot spool a batch")?;
        stats.count_overflow(again);
    }
    publish_spool_state(&mut spool, stats, agent);
    drop(spool);
    outbox.notify.notify_one();
    Ok(())
}

/// Publishes the spool's size, and counts and reports what damage to it
/// cost since the last call: the spool has logged each loss; the counters
/// feed `countywatch_agent_spool_damaged_*`, and a `spool_damaged` event,
/// itself spooled, tells the security officer.
pub fn publish_spool_state(spool: &mut Spool, stats: &TransportStats, agent: &str) {
    let loss = spool.take_loss();
    if loss != Loss::default() {
        stats
            .spool_salvages
            .fetch_add(loss.salvages, Ordering::Relaxed);
        stats
            .spool_damaged_event_batches
            .fetch_add(loss.event_batches, Ordering::Relaxed);
        stats
            .spool_damaged_metric_batches
            .fetch_add(loss.metric_batches, Ordering::Relaxed);
        stats
            .spool_damaged_uncounted_batches
            .fetch_add(loss.uncounted_batches, Ordering::Relaxed);
        stats
            .spool_damaged_events
            .fetch_add(loss.events, Ordering::Relaxed);
        match spool_own_event(spool, agent, spool_damage_event(agent, loss)) {
            // Room for the report may push out a batch: counted, not
            // reported again.
            Ok(overflow) => stats.count_overflow(overflow),
            Err(error) => tracing::error!(
                error = format!("{error:#}"),
                "cannot spool the spool_damaged event; the loss is in the metrics only"
            ),
        }
    }
    stats.pending_batches.store(spool.len(), Ordering::Relaxed);
    stats.spool_bytes.store(spool.bytes(), Ordering::Relaxed);
}

/// A `spool_damaged` event describing `loss`.
fn spool_damage_event(agent: &str, loss: Loss) -> Event {
    let now = now_ms();
    let mut event = Event::new(now, EventSource::Agent, EventKind::SpoolDamaged);
    event.host = agent.to_string();
    event.fields.dropped_event_batches = Some(loss.event_batches);
    event.fields.dropped_metric_batches = Some(loss.metric_batches);
    event.fields.count = Some(u32::try_from(loss.events).unwrap_or(u32::MAX));
    event.raw = format!(
        "spool damaged: lost {} events in {} event batches, {} metric batches and {} batches of unknown kind; the damaged file is kept in the state directory as spool.db.corrupt-<time>",
        loss.events, loss.event_batches, loss.metric_batches, loss.uncounted_batches
    );
    event
}

/// Spools one event of the agent's own (a spool overflow or damage
/// report) as a batch of its own, and returns what making room for it
/// dropped.
fn spool_own_event(spool: &mut Spool, agent: &str, event: Event) -> anyhow::Result<Overflow> {
    let now = event.timestamp_ms;
    let mut report = Batch {
        version: WIRE_VERSION,
        agent: agent.to_string(),
        seq: 0,
        collected_at_ms: now,
        metrics: Vec::new(),
        events: vec![event],
    };
    let (_, overflow) = spool.push(
        BatchKind::Events,
        now,
        1,
        |seq| {
            report.seq = seq;
            encode_batch(&report)
        },
        &[],
    )?;
    Ok(overflow)
}

/// Delivers the spool oldest first, one batch at a time, retrying with
/// exponential backoff and jitter. Logs once when the collector becomes
/// unreachable and once when it is back, not on every attempt. Sends start
/// at least `pace` apart (`collector.catch_up_rate`); a batch spooled
/// later than that after the previous send began goes at once.
pub async fn send_loop(
    mut transport: Transport,
    outbox: Arc<Outbox>,
    stats: Arc<TransportStats>,
    pace: Duration,
    agent: String,
    responder: Arc<response::Responder>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
    let mut failing = false;
    loop {
        let next = {
            let mut spool = outbox.lock();
            let next = spool.oldest();
            publish_spool_state(&mut spool, &stats, &agent);
            next
        };
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
        let started = tokio::time::Instant::now();
        // The cursor rides along, so the answer carries any decisions.
        let cursor = response::delivery::cursor_header(&responder);
        match transport
            .post_with_headers(
                INGEST_PATH,
                Some(CONTENT_ENCODING_GZIP),
                &[cursor],
                Bytes::from(body),
            )
            .await
        {
            Ok(answer) => {
                responder.contact();
                if failing {
                    tracing::info!("collector reachable again");
                    failing = false;
                }
                backoff.reset();
                stats.batches_sent.fetch_add(1, Ordering::Relaxed);
                stats.bytes_sent.fetch_add(size, Ordering::Relaxed);
                acknowledge(&outbox, &stats, &agent, seq);
                response::delivery::apply_batch_answer(&answer, &responder, &mut transport).await;
                // Pace the catch-up after an outage. The pace counts from
                // this send's start, not its end: a live agent's next
                // batch, spooled while this one was on its way (a flood
                // spools one every `wake_pacing::MIN_GAP`), has usually
                // waited long enough already and goes at once.
                if !outbox.lock().is_empty() {
                    tokio::time::sleep_until(started + pace).await;
                }
            }
            Err(error) if !is_worth_retrying(&error) => {
                // The collector will never take this batch; keeping it would
                // block every later one.
                tracing::error!(seq, %error, "batch refused, dropping it");
                stats.send_failures.fetch_add(1, Ordering::Relaxed);
                stats.batches_dropped.fetch_add(1, Ordering::Relaxed);
                acknowledge(&outbox, &stats, &agent, seq);
            }
            Err(error) => {
                stats.send_failures.fetch_add(1, Ordering::Relaxed);
                let delay = retry_delay(backoff.next_delay(), error.retry_after());
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

/// The wait before retrying the same batch: the backoff's, or longer when
/// the collector asked for longer (a 503 from its ingest budget says
/// `Retry-After`); the batch stays in the spool meanwhile.
fn retry_delay(backoff: Duration, retry_after: Option<Duration>) -> Duration {
    retry_after.map_or(backoff, |asked| asked.max(backoff))
}

fn acknowledge(outbox: &Outbox, stats: &TransportStats, agent: &str, seq: u64) {
    let mut spool = outbox.lock();
    if let Err(error) = spool.acknowledge(seq) {
        tracing::error!("{error:#}");
    }
    publish_spool_state(&mut spool, stats, agent);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_lengthens_the_backoff_and_never_shortens_it() {
        let second = Duration::from_secs(1);
        assert_eq!(
            retry_delay(Duration::from_millis(300), Some(second)),
            second
        );
        assert_eq!(
            retry_delay(Duration::from_secs(8), Some(second)),
            Duration::from_secs(8)
        );
        assert_eq!(
            retry_delay(Duration::from_millis(300), None),
            Duration::from_millis(300)
        );
        let busy = SendError::Rejected {
            status: 503,
            body: String::new(),
            retry_after: Some(second),
        };
        assert!(is_worth_retrying(&busy), "a 503 keeps the batch");
        let slow = SendError::Rejected {
            status: 408,
            body: String::new(),
            retry_after: None,
        };
        assert!(
            is_worth_retrying(&slow),
            "a 408 (the body did not arrive in time) keeps the batch"
        );
        let bad = SendError::Rejected {
            status: 400,
            body: String::new(),
            retry_after: None,
        };
        assert!(!is_worth_retrying(&bad), "a 400 drops the batch");
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
                (&mut big(seed), &mut Vec::new()),
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
                .filter(|event| event.kind == EventKind::SpoolOverflow)
                .count();
            spool.acknowledge(seq).unwrap();
        }
        assert!(reports > 0);
    }
}
