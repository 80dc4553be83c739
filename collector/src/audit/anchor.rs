//! The collector's side of the audit trail's promises: the `audit:`
//! configuration section, the 10-minute checkpoint timer, the external
//! anchors and the hourly self-verification.
//!
//! Every checkpoint the trail signs (by an append, by this timer, at
//! shutdown, or by a CLI command while the collector was stopped) is sent
//! off the host once, oldest first: as a syslog message to
//! `audit.anchor_syslog` (a Unix datagram socket, `/dev/log` by default)
//! and as an `audit_checkpoint` event in the registry's events table, which
//! every event-forwarding output delivers to the SIEM. Both carry the same
//! line, [`ANCHOR_PREFIX`] and the checkpoint's JSON, the format
//! `audit verify --anchors` reads. A checkpoint counts as anchored once its
//! event is stored (forwarding then retries until the SIEM has it); syslog
//! is a datagram with no acknowledgement, so its failures are logged and
//! counted in `countywatch_audit_anchor_failures_total{destination}`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use prometheus::{Gauge, IntCounterVec, Opts};
use serde::Deserialize;
use tokio::sync::watch;

use crate::audit::{ANCHOR_PREFIX, Audit, Checkpoint, VerifyOptions, verify_with};
use crate::registry::Registry;

/// The `audit:` section of the collector's configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The syslog socket every audit checkpoint is sent to, so that a copy
    /// lives outside the collector (point the local syslog daemon at a
    /// remote log server). Empty turns syslog anchoring off.
    pub anchor_syslog: PathBuf,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            anchor_syslog: PathBuf::from("/dev/log"),
        }
    }
}

/// How often pending checkpoints are sent and the 10-minute rule checked.
const TICK: Duration = Duration::from_secs(2);
/// How often the collector verifies its own trail.
const VERIFY_PERIOD: Duration = Duration::from_secs(3600);

/// The metrics this module keeps.
#[derive(Clone)]
struct AnchorMetrics {
    /// 1 if the last self-verification found the trail intact.
    verify_success: Gauge,
    /// When the last self-verification ran, Unix seconds.
    verify_timestamp: Gauge,
    /// Anchors that could not be sent, by destination.
    failures: IntCounterVec,
}

impl AnchorMetrics {
    fn register(registry: &prometheus::Registry) -> Result<AnchorMetrics, prometheus::Error> {
        let verify_success = Gauge::new(
            "countywatch_audit_verify_success",
            "1 if the collector's last verification of its audit trail found it intact, 0 if not.",
        )?;
        let verify_timestamp = Gauge::new(
            "countywatch_audit_verify_timestamp_seconds",
            "When the collector last verified its audit trail, in Unix seconds.",
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "countywatch_audit_anchor_failures_total",
                "Audit checkpoints that could not be sent to an external anchor, by destination.",
            ),
            &["destination"],
        )?;
        registry.register(Box::new(verify_success.clone()))?;
        registry.register(Box::new(verify_timestamp.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        Ok(AnchorMetrics {
            verify_success,
            verify_timestamp,
            failures,
        })
    }
}

/// Sends checkpoints off the host and keeps the timer's promises.
pub struct Anchoring {
    /// The trail, through its own connection.
    audit: Audit,
    /// Where the data dir is (for verification).
    data_dir: PathBuf,
    /// The configured checkpoint period in entries.
    checkpoint_every: u32,
    /// The syslog socket, if any.
    syslog: Option<PathBuf>,
    /// Where `audit_checkpoint` events are recorded for forwarding.
    event_log: Arc<Registry>,
    /// Its metrics.
    metrics: AnchorMetrics,
}

impl Anchoring {
    /// Opens the trail of `data_dir` and registers the metrics.
    pub fn new(
        config: &AuditConfig,
        data_dir: &Path,
        checkpoint_every: u32,
        event_log: Arc<Registry>,
        registry: &prometheus::Registry,
    ) -> anyhow::Result<Anchoring> {
        Ok(Anchoring {
            audit: Audit::open(data_dir, checkpoint_every)?,
            data_dir: data_dir.to_path_buf(),
            checkpoint_every,
            syslog: (!config.anchor_syslog.as_os_str().is_empty())
                .then(|| config.anchor_syslog.clone()),
            event_log,
            metrics: AnchorMetrics::register(registry)?,
        })
    }

    /// Signs the head if 10 minutes passed since the newest checkpoint and
    /// sends every checkpoint not yet sent.
    fn tick(&self) -> anyhow::Result<()> {
        self.audit
            .checkpoint_if_due(countywatch_daemon::clock::now_ms())?;
        self.send_pending()
    }

    /// Records the stop, signs the head and sends what is pending: the
    /// last thing a clean shutdown does.
    pub fn final_checkpoint(&self) -> anyhow::Result<()> {
        self.audit.append(
            "system",
            "collector.stopped",
            "collector",
            crate::audit::Outcome::Success,
            "",
        )?;
        self.audit.checkpoint()?;
        self.send_pending()
    }

    fn send_pending(&self) -> anyhow::Result<()> {
        for checkpoint in self.audit.unanchored()? {
            let line = checkpoint.anchor_line();
            if let Some(socket) = &self.syslog
                && let Err(error) = send_syslog(socket, &line)
            {
                self.metrics.failures.with_label_values(&["syslog"]).inc();
                tracing::warn!(
                    checkpoint = checkpoint.seq,
                    socket = %socket.display(),
                    "cannot send the audit checkpoint to syslog: {error}"
                );
            }
            self.record_event(&checkpoint, &line).inspect_err(|_| {
                self.metrics
                    .failures
                    .with_label_values(&["event_log"])
                    .inc();
            })?;
            self.audit.mark_anchored(checkpoint.seq)?;
        }
        Ok(())
    }

    fn record_event(&self, checkpoint: &Checkpoint, line: &str) -> anyhow::Result<()> {
        let mut event = countywatch_wire::Event::new(
            checkpoint.at,
            countywatch_wire::EventSource::Agent,
            countywatch_wire::EventKind::AuditCheckpoint,
        );
        event.host = "collector".to_string();
        event.fields.message = Some(line.to_string());
        event.raw = line.to_string();
        self.event_log
            .record_collector_event(&event, countywatch_daemon::clock::now_ms())?;
        Ok(())
    }

    /// Verifies the whole trail and sets the two gauges.
    fn self_verify(&self) {
        let options = VerifyOptions {
            checkpoint_every: self.checkpoint_every,
            anchors: None,
        };
        let intact = match verify_with(&self.data_dir, &options) {
            Ok(verification) => match verification.first_break {
                None => true,
                Some(broken) => {
                    tracing::error!("audit trail broken at {}: {}", broken.at, broken.problem);
                    false
                }
            },
            Err(error) => {
                tracing::error!("cannot verify the audit trail: {error:#}");
                false
            }
        };
        self.metrics
            .verify_success
            .set(if intact { 1.0 } else { 0.0 });
        self.metrics
            .verify_timestamp
            .set(countywatch_daemon::clock::now_ms() as f64 / 1000.0);
    }
}

/// Runs the timer, the anchoring and the hourly verification (the first
/// right away) until `stopped`.
pub async fn run(anchoring: Arc<Anchoring>, mut stopped: watch::Receiver<bool>) {
    let mut next_verify = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = ticks.tick() => {}
        }
        let verify_now = tokio::time::Instant::now() >= next_verify;
        if verify_now {
            next_verify += VERIFY_PERIOD;
        }
        let anchoring = Arc::clone(&anchoring);
        let done = tokio::task::spawn_blocking(move || {
            let ticked = anchoring.tick();
            if verify_now {
                anchoring.self_verify();
            }
            ticked
        })
        .await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!("audit checkpoint timer failed: {error:#}"),
            Err(error) => tracing::error!(%error, "audit checkpoint timer failed"),
        }
    }
}

/// Sends one line to a syslog socket as facility authpriv, severity info
/// (RFC 3164 framing, as libc's `syslog()` writes it). Datagram first, then
/// stream, since both kinds of `/dev/log` exist.
fn send_syslog(socket: &Path, line: &str) -> std::io::Result<()> {
    let message = format!("<86>countywatch-collector[{}]: {line}", std::process::id());
    debug_assert!(message.contains(ANCHOR_PREFIX));
    let datagram = std::os::unix::net::UnixDatagram::unbound()?;
    match datagram.send_to(message.as_bytes(), socket) {
        Ok(_) => Ok(()),
        Err(error) if error.raw_os_error() == Some(91) => {
            // EPROTOTYPE: the socket is a stream socket.
            use std::io::Write;
            let mut stream = std::os::unix::net::UnixStream::connect(socket)?;
            stream.write_all(format!("{message}\n").as_bytes())
        }
        Err(error) => Err(error),
    }
}
