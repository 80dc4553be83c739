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
//! - [`sender`]: the spool glue and the delivery of the spool to the
//!   collector.
//! - [`transport`]: HTTPS to the collector, mutual TLS.
//! - [`tls_verifier`]: custom server-certificate checks with the
//!   handshake signatures always checked.
//! - [`response`]: active response: the blocks the collector decides on,
//!   their safety rules and the firewall that enforces them.
//! - [`wake_pacing`]: when a source's wake is polled for an events-only
//!   batch: at once after a quiet spell, at most ten a second in a flood.
//!
//! [`run`] is the daemon, and this file its run loop: every interval the
//! probes and sources run and their batch is written to the spool; between
//! two intervals, a source that sees new input wakes the loop, which spools
//! the sources' events alone, paced by [`wake_pacing`]. The [`sender`] task
//! delivers the spool oldest first, deleting each batch only when the
//! collector acknowledges it.

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
pub mod sender;
pub mod source;
pub mod spool;
pub mod tls_verifier;
pub mod transport;
pub mod wake_pacing;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use countywatch_daemon::clock::now_ms;
use countywatch_wire::{Event, MetricFamily};
use tokio::signal::unix::Signal;
use tokio::task::JoinHandle;

use crate::collection::{Collector, TransportStats};
use crate::config::{CollectorUrl, Config};
use crate::identity::{Enrollment, IdentityFiles};
use crate::sender::{Outbox, publish_spool_state, send_loop, spool_holding};
use crate::spool::{BatchKind, Spool};
use crate::transport::Transport;
use crate::wake_pacing::WakePacing;

/// Collects once and returns the families, as `countywatch-agent test` prints them.
pub async fn collect_once(config: &Config) -> Vec<MetricFamily> {
    let mut collector = Collector::new(
        probe::build(config),
        config.probes.timeout.get(),
        Arc::new(TransportStats::default()),
    );
    collector.collect().await.families
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
    let mut hangups = hangup_signals();
    let mut agent = Running::start(config)?;
    countywatch_daemon::notify::ready();
    tokio::pin!(shutdown);
    loop {
        let hangup = async {
            match hangups.as_mut() {
                Some(stream) => stream.recv().await,
                None => std::future::pending().await,
            }
        };
        let woken = tokio::select! {
            () = &mut shutdown => break,
            _ = agent.ticker.tick() => false,
            () = agent.wake.notified() => true,
            _ = hangup => {
                if let Some(reload) = reload.as_mut() {
                    apply_reload(
                        reload,
                        &mut agent.config,
                        &mut agent.collector,
                        &mut agent.ticker,
                        &agent.stats,
                    );
                }
                continue;
            }
        };
        let spooled = if woken {
            agent.spool_source_events(shutdown.as_mut()).await
        } else {
            agent.collect_and_spool(shutdown.as_mut()).await
        };
        if !spooled {
            break;
        }
    }
    drop(agent);
    tracing::info!("agent stopped");
    Ok(())
}

/// The SIGHUP stream, or `None` (with a warning) when it cannot be had.
fn hangup_signals() -> Option<Signal> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(stream) => Some(stream),
        Err(error) => {
            tracing::warn!(%error, "cannot install the SIGHUP handler; reload needs a restart");
            None
        }
    }
}

/// The tasks that run beside the run loop (the sender, the decisions' long
/// poll and upkeep, the certificate renewal); dropping this stops them.
struct BackgroundTasks(Vec<JoinHandle<()>>);

impl BackgroundTasks {
    /// Starts the decisions' long poll and upkeep, the certificate
    /// renewal and the sender (which takes `transport`; the others use
    /// siblings of it).
    fn spawn(
        config: &Config,
        transport: Transport,
        name: &str,
        responder: &Arc<response::Responder>,
        outbox: &Arc<Outbox>,
        stats: &Arc<TransportStats>,
    ) -> BackgroundTasks {
        let pace = Duration::from_secs_f64(1.0 / config.collector.catch_up_rate);
        BackgroundTasks(vec![
            tokio::spawn(response::delivery::poll_loop(
                transport.sibling(),
                Arc::clone(responder),
            )),
            tokio::spawn(response::delivery::upkeep_loop(
                transport.sibling(),
                Arc::clone(responder),
            )),
            tokio::spawn(renewal::renewal_loop(
                transport.sibling(),
                IdentityFiles::new(&config.state_dir),
                name.to_string(),
                Arc::clone(stats),
            )),
            tokio::spawn(send_loop(
                transport,
                Arc::clone(outbox),
                Arc::clone(stats),
                pace,
                name.to_string(),
                Arc::clone(responder),
            )),
        ])
    }
}

impl Drop for BackgroundTasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Everything the run loop holds between two turns.
struct Running {
    /// The configuration in force (replaced by a reload).
    config: Config,
    /// The enrolled name, which batches carry as `agent`.
    name: String,
    /// Runs the probes.
    collector: Collector,
    /// The security event sources.
    sources: source::Sources,
    /// Active response: offline evaluation and its metrics.
    responder: Arc<response::Responder>,
    /// The spool, shared with the sender.
    outbox: Arc<Outbox>,
    /// Self-metrics of the spool and the transport.
    stats: Arc<TransportStats>,
    /// The collection interval.
    ticker: tokio::time::Interval,
    /// New log lines, file changes and received syslog wake the loop for
    /// an early, events-only batch; metrics keep the interval.
    wake: Arc<tokio::sync::Notify>,
    /// When a wake is polled: at once after a quiet spell, paced in a flood.
    pacing: WakePacing,
    /// Whether the last poll left received syslog waiting (a full batch).
    backlog: bool,
    /// Stopped when the agent stops.
    _tasks: BackgroundTasks,
}

impl Running {
    /// Starts the agent from its state directory: identity, transport,
    /// response, spool, the background tasks, the probes and the sources.
    fn start(config: Config) -> anyhow::Result<Running> {
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
        let name = enrolled_name(&config, &enrollment);
        let (url_text, url, transport) = open_transport(&config, &identity, &enrollment)?;
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
        let mut spool = Spool::open(
            &config.state_dir,
            config.spool.max_bytes,
            enrollment.first_seq,
        )?;
        let stats = Arc::new(TransportStats::default());
        publish_spool_state(&mut spool, &stats, &name);
        let outbox = Arc::new(Outbox::new(spool));
        let tasks = BackgroundTasks::spawn(&config, transport, &name, &responder, &outbox, &stats);
        let collector = Collector::new(
            probe::build(&config),
            config.probes.timeout.get(),
            Arc::clone(&stats),
        );
        let sources = start_sources(&config, &name, &outbox)?;
        tracing::info!(agent = %name, collector = %url_text, interval = %config.interval, "agent started");
        let mut ticker = tokio::time::interval(config.interval.get());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(Running {
            wake: sources.wake(),
            config,
            name,
            collector,
            sources,
            responder,
            outbox,
            stats,
            ticker,
            pacing: WakePacing::default(),
            backlog: false,
            _tasks: tasks,
        })
    }

    /// Woken by a source: spools its new events (and positions) as an
    /// events-only batch, when [`WakePacing`] says. Returns false if the
    /// agent was asked to stop while the spool could not be written.
    async fn spool_source_events<F: Future<Output = ()>>(
        &mut self,
        shutdown: std::pin::Pin<&mut F>,
    ) -> bool {
        let poll_at = self
            .pacing
            .poll_at(tokio::time::Instant::now(), self.backlog);
        tokio::time::sleep_until(poll_at).await;
        let polled = tokio::time::Instant::now();
        let (events, checkpoint) = self.poll_sources().await;
        let positions = checkpoint.positions();
        if events.is_empty() && positions.is_empty() {
            return true;
        }
        self.pacing.spooled(polled);
        spool_holding(
            &self.outbox,
            &self.stats,
            &self.name,
            BatchKind::Events,
            (Vec::new(), events),
            &positions,
            shutdown,
        )
        .await
    }

    /// On the interval: runs the probes, polls the sources and spools
    /// metrics and events as one batch. Returns false if the agent was
    /// asked to stop while the spool could not be written.
    async fn collect_and_spool<F: Future<Output = ()>>(
        &mut self,
        shutdown: std::pin::Pin<&mut F>,
    ) -> bool {
        let collected = self.collector.collect().await;
        let mut metrics = collected.families;
        // The events and the positions after them go into the spool in one
        // transaction: a crash keeps both or neither (exactly once). Probe
        // events (SNMP state changes) have no position and ride along.
        let (mut events, checkpoint) = self.sources.poll();
        events.extend(collected.events);
        self.note_backlog();
        self.responder.evaluate_offline(&events).await;
        metrics.extend(self.sources.metrics());
        metrics.extend(self.responder.metrics());
        metrics.push(collection::agent_info(&self.config.labels));
        let kind = if events.is_empty() {
            BatchKind::Metrics
        } else {
            BatchKind::Events
        };
        spool_holding(
            &self.outbox,
            &self.stats,
            &self.name,
            kind,
            (metrics, events),
            &checkpoint.positions(),
            shutdown,
        )
        .await
    }

    /// Polls the sources alone and lets the responder see their events.
    async fn poll_sources(&mut self) -> (Vec<Event>, source::Checkpoint) {
        let (events, checkpoint) = self.sources.poll();
        self.note_backlog();
        self.responder.evaluate_offline(&events).await;
        (events, checkpoint)
    }

    /// Remembers whether received syslog is still waiting, and if so wakes
    /// the loop again at once.
    fn note_backlog(&mut self) {
        self.backlog = self.sources.has_backlog();
        if self.backlog {
            self.wake.notify_one();
        }
    }
}

/// The enrolled name; a different configured one is warned about, since
/// the certificate's name is the one the collector knows.
fn enrolled_name(config: &Config, enrollment: &Enrollment) -> String {
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
    name
}

/// The transport to the collector (the configured URL, else the one from
/// enrolment) with the agent's certificate, once an interrupted renewal
/// is finished; and the URL, as written and parsed.
fn open_transport(
    config: &Config,
    identity: &IdentityFiles,
    enrollment: &Enrollment,
) -> anyhow::Result<(String, CollectorUrl, Transport)> {
    let url_text = config
        .collector
        .url
        .as_ref()
        .map(|url| url.value.clone())
        .unwrap_or_else(|| enrollment.ingest_url.clone());
    let url = CollectorUrl::parse(&url_text)?;
    identity.finish_renewal()?;
    let tls = transport::mutual_tls(identity)?;
    let transport = Transport::new(url.clone(), tls, config.collector.timeout.get());
    Ok((url_text, url, transport))
}

/// Starts the sources (the syslog receiver included) from the positions
/// stored in the spool.
fn start_sources(config: &Config, name: &str, outbox: &Outbox) -> anyhow::Result<source::Sources> {
    let spool = outbox.lock();
    let sources = source::Sources::start(
        &config.sources,
        &config.paths.procfs,
        name.to_string(),
        |source| spool.position(source).ok().flatten(),
    )?;
    Ok(sources)
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
