//! The countywatch agent as a library: the binary in `main.rs` is only the
//! command line around these functions, and tests call them directly.
//!
//! - [`config`]: the configuration file, its defaults and validation.
//! - [`probe`]: host probes, one file each, node_exporter metric names.
//! - [`collection`]: runs the probes under timeouts, adds self-metrics.
//! - [`enroll`]: `countywatch-agent enroll`, a token in, a certificate out.
//! - [`identity`]: the key, certificates and enrolment record on disk.
//! - [`renewal`]: renews the client certificate at two thirds of its life.
//! - [`spool`]: the durable, bounded queue of batches (SQLite).
//! - [`source`]: security event sources (auth logs, file integrity, ports,
//!   syslog from network devices).
//! - [`transport`]: HTTPS to the collector, mutual TLS.
//! - [`response`]: active response: the blocks the collector decides on,
//!   their safety rules and the firewall that enforces them.
//!
//! [`run`] is the daemon: every interval the probes run and their batch is
//! written to the spool; a sender task delivers the spool oldest first,
//! deleting each batch only when the collector acknowledges it.

// The daemons never panic on purpose outside tests (clippy.toml allows it in
// tests); unwrap and expect are denied workspace-wide.
#![deny(clippy::panic, clippy::todo, clippy::unimplemented)]

pub mod collection;
pub mod config;
pub mod enroll;
pub mod identity;
pub mod probe;
pub mod renewal;
pub mod response;
pub mod source;
pub mod spool;
pub mod transport;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use countywatch_wire::{
    Batch, CONTENT_ENCODING_GZIP, Event, EventKind, EventSource, INGEST_PATH, MetricFamily,
    WIRE_VERSION, encode_batch,
};
use tokio::sync::Notify;

use crate::collection::{Collector, TransportStats};
use crate::config::{CollectorUrl, Config};
use crate::identity::IdentityFiles;
use crate::spool::{BatchKind, Loss, Overflow, Spool};
use crate::transport::{SendError, Transport};

/// Collects once and returns the families, as `countywatch-agent test` prints them.
pub async fn collect_once(config: &Config) -> Vec<MetricFamily> {
    let mut collector = Collector::new(
        probe::build(config),
        config.probes.timeout.get(),
        Arc::new(TransportStats::default()),
    );
    collector.collect().await.families
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

/// Re-reads the configuration on SIGHUP (`systemctl reload`): the binary
/// passes a function that loads the file and applies the command-line
/// overrides again.
pub type Reload =
    Box<dyn FnMut() -> Result<Config, countywatch_config::config_file::Problems> + Send>;

/// Runs the agent until `shutdown` resolves, without reloading.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    run_with_reload(config, shutdown, None).await
}

/// Runs the agent until `shutdown` resolves. On SIGHUP, `reload` (when
/// given) produces a new configuration: a valid one replaces the probes,
/// their settings and the interval at once; an invalid one is logged,
/// problem by problem, and the running configuration stays. Settings that
/// need a restart (collector, spool, sources, state directory) are reported
/// when they changed.
pub async fn run_with_reload(
    config: Config,
    shutdown: impl Future<Output = ()>,
    mut reload: Option<Reload>,
) -> anyhow::Result<()> {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(stream) => Some(stream),
        Err(error) => {
            tracing::warn!(%error, "cannot install the SIGHUP handler; reload needs a restart");
            None
        }
    };
    let mut config = config;
    // A state dir from an older version may be readable by others; the
    // spool in it holds raw auth-log lines.
    countywatch_daemon::private_files::tighten_dir(&config.state_dir).map_err(|error| {
        anyhow::anyhow!(
            "cannot make {} owner-only: {error}",
            config.state_dir.display()
        )
    })?;
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
    identity.finish_renewal()?;
    let tls = transport::mutual_tls(&identity)?;
    let transport = Transport::new(url.clone(), tls, config.collector.timeout.get());
    let responder = response::Responder::new(
        response::Response::open(
            &config.response,
            url,
            &config.paths.procfs,
            &config.state_dir,
            now_ms(),
        ),
        config.response.offline_after.get(),
    );
    let poller = tokio::spawn(response::delivery::poll_loop(
        transport.sibling(),
        Arc::clone(&responder),
    ));
    let upkeep = tokio::spawn(response::delivery::upkeep_loop(
        transport.sibling(),
        Arc::clone(&responder),
    ));
    let mut spool = Spool::open(
        &config.state_dir,
        config.spool.max_bytes,
        enrollment.first_seq,
    )?;
    let stats = Arc::new(TransportStats::default());
    publish_spool_state(&mut spool, &stats, &name);
    let renewer = tokio::spawn(renewal::renewal_loop(
        transport.sibling(),
        IdentityFiles::new(&config.state_dir),
        name.clone(),
        Arc::clone(&stats),
    ));
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
        name.clone(),
        Arc::clone(&responder),
    ));
    let mut collector = Collector::new(
        probe::build(&config),
        config.probes.timeout.get(),
        Arc::clone(&stats),
    );
    let mut sources = {
        let spool = outbox.lock();
        source::Sources::start(&config, name.clone(), |source| {
            spool.position(source).ok().flatten()
        })
    };
    sources
        .start_syslog(&config)
        .context("cannot start the syslog receiver")?;
    tracing::info!(agent = %name, collector = %url_text, interval = %config.interval, "agent started");
    countywatch_daemon::notify::ready();

    let mut ticker = tokio::time::interval(config.interval.get());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    // New log lines and file changes wake the loop for an early,
    // events-only batch, at most one a second; metrics keep the interval.
    let wake = sources.wake();
    let mut last_source_poll = tokio::time::Instant::now();
    // Whether the last poll left received syslog waiting (a full batch).
    let mut backlog = false;
    loop {
        let hangup = async {
            match hangups.as_mut() {
                Some(stream) => stream.recv().await,
                None => std::future::pending().await,
            }
        };
        let woken = tokio::select! {
            () = &mut shutdown => break,
            _ = ticker.tick() => false,
            () = wake.notified() => true,
            _ = hangup => {
                if let Some(reload) = reload.as_mut() {
                    apply_reload(reload, &mut config, &mut collector, &mut ticker, &stats);
                }
                continue;
            }
        };
        if woken {
            // Let a burst of writes settle into one batch, unless received
            // syslog is still waiting after a full batch: then keep
            // draining, or a flood would be dropped from the queue.
            if !backlog {
                tokio::time::sleep_until(last_source_poll + Duration::from_secs(1)).await;
            }
            last_source_poll = tokio::time::Instant::now();
            let (events, checkpoint) = sources.poll();
            backlog = sources.has_backlog();
            if backlog {
                wake.notify_one();
            }
            responder.evaluate_offline(&events).await;
            let positions = checkpoint.positions();
            if (!events.is_empty() || !positions.is_empty())
                && !spool_holding(
                    &outbox,
                    &stats,
                    &name,
                    BatchKind::Events,
                    (Vec::new(), events),
                    &positions,
                    shutdown.as_mut(),
                )
                .await
            {
                break;
            }
            continue;
        }
        last_source_poll = tokio::time::Instant::now();
        let collected = collector.collect().await;
        let mut metrics = collected.families;
        // The events and the positions after them go into the spool in one
        // transaction: a crash keeps both or neither (exactly once). Probe
        // events (SNMP state changes) have no position and ride along.
        let (mut events, checkpoint) = sources.poll();
        events.extend(collected.events);
        backlog = sources.has_backlog();
        if backlog {
            wake.notify_one();
        }
        responder.evaluate_offline(&events).await;
        metrics.extend(sources.metrics());
        metrics.extend(responder.metrics());
        metrics.push(collection::agent_info(&config.labels));
        let kind = if events.is_empty() {
            BatchKind::Metrics
        } else {
            BatchKind::Events
        };
        if !spool_holding(
            &outbox,
            &stats,
            &name,
            kind,
            (metrics, events),
            &checkpoint.positions(),
            shutdown.as_mut(),
        )
        .await
        {
            break;
        }
    }
    sender.abort();
    poller.abort();
    upkeep.abort();
    renewer.abort();
    tracing::info!("agent stopped");
    Ok(())
}

/// Loads the new configuration and, if valid, rebuilds the probes and the
/// interval from it.
fn apply_reload(
    reload: &mut Reload,
    config: &mut Config,
    collector: &mut Collector,
    ticker: &mut tokio::time::Interval,
    stats: &Arc<TransportStats>,
) {
    match reload() {
        Ok(new) => {
            let restart_needed: Vec<&str> = [
                (
                    "collector",
                    format!("{:?}", new.collector) != format!("{:?}", config.collector),
                ),
                (
                    "spool",
                    format!("{:?}", new.spool) != format!("{:?}", config.spool),
                ),
                (
                    "sources",
                    format!("{:?}", new.sources) != format!("{:?}", config.sources),
                ),
                ("state_dir", new.state_dir != config.state_dir),
                (
                    "response",
                    format!("{:?}", new.response) != format!("{:?}", config.response),
                ),
                (
                    "name",
                    format!("{:?}", new.name.as_ref().map(|name| &name.value))
                        != format!("{:?}", config.name.as_ref().map(|name| &name.value)),
                ),
            ]
            .into_iter()
            .filter_map(|(section, changed)| changed.then_some(section))
            .collect();
            if !restart_needed.is_empty() {
                tracing::warn!(sections = ?restart_needed, "these settings changed and take effect at the next restart");
            }
            *collector = Collector::new(
                probe::build(&new),
                new.probes.timeout.get(),
                Arc::clone(stats),
            );
            if new.interval != config.interval {
                *ticker = tokio::time::interval(new.interval.get());
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            }
            tracing::info!(interval = %new.interval, "configuration reloaded");
            *config = new;
        }
        Err(problems) => {
            for problem in &problems.problems {
                tracing::error!(%problem, "configuration not reloaded");
            }
        }
    }
}

/// Spools a batch and, while the spool cannot be written (a full disk, an
/// I/O error), holds it and retries every second instead of ending the
/// agent. Only one batch is ever held: the run loop polls no source
/// meanwhile, and source positions are saved only with their batch, so even
/// a stop while holding loses nothing (a restart re-reads those lines). A
/// batch of metrics alone is not worth waiting for: it is dropped and
/// counted. Returns false if the agent was asked to stop while holding.
async fn spool_holding<F: Future<Output = ()>>(
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
fn publish_spool_state(spool: &mut Spool, stats: &TransportStats, agent: &str) {
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
/// unreachable and once when it is back, not on every attempt.
async fn send_loop(
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

pub use countywatch_daemon::clock::now_ms;

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
    }

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
