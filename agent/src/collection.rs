//! One collection: run every probe under its own timeout and gather their
//! metric families, plus the agent's own `countywatch_agent_*` metrics,
//! and the events probes saw (the SNMP probe's device state changes).
//!
//! Probes run one after another on a blocking thread (a [`lane`]), those
//! that wait on the network each on a thread of their own. When a probe
//! overruns its timeout the collection goes on without it, the probes
//! queued behind it on a fresh thread; the probe stays parked until its
//! thread returns, and is skipped (and reported as failing) until then, so
//! a stuck mount costs one thread, never a pile of them.
//!
//! Beside the agent's own per-probe metrics, each collection reports
//! node_exporter's `node_scrape_collector_duration_seconds{collector}` and
//! `node_scrape_collector_success{collector}` under node_exporter's
//! collector names ([`Probe::collectors`]), so its dashboards' collector
//! panels work; a probe standing for several collectors reports its one
//! outcome under each name.
//!
//! A probe with its own interval runs only when due; in between, each batch
//! repeats its last families, because the collector replaces an agent's
//! metrics with every batch and the series must not blink out.

mod lane;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use countywatch_wire::{Event, MetricFamily, MetricKind};
use tokio::sync::mpsc::UnboundedReceiver;

use self::lane::{Finished, Lane, Outlet};
use crate::probe::{Probe, ProbeError};

/// Counters the sender updates and every batch reports.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Batches the collector acknowledged.
    pub batches_sent: AtomicU64,
    /// Send attempts that failed (each retry counts).
    pub send_failures: AtomicU64,
    /// Batches the collector refused as invalid (never retried).
    pub batches_dropped: AtomicU64,
    /// Compressed bytes the collector acknowledged.
    pub bytes_sent: AtomicU64,
    /// Batches waiting in the spool.
    pub pending_batches: AtomicU64,
    /// Bytes waiting in the spool.
    pub spool_bytes: AtomicU64,
    /// Metric batches dropped because the spool was full.
    pub spool_dropped_metrics: AtomicU64,
    /// Event batches dropped because the spool was full.
    pub spool_dropped_events: AtomicU64,
    /// Attempts to write the spool that failed (a full disk, an I/O error).
    pub spool_write_failures: AtomicU64,
    /// Times the spool database was found damaged and salvaged.
    pub spool_salvages: AtomicU64,
    /// Event batches lost to a damaged spool file.
    pub spool_damaged_event_batches: AtomicU64,
    /// Metric batches lost to a damaged spool file.
    pub spool_damaged_metric_batches: AtomicU64,
    /// Batches lost to a damaged spool file whose kind and size are unknown.
    pub spool_damaged_uncounted_batches: AtomicU64,
    /// Events in the event batches lost to a damaged spool file.
    pub spool_damaged_events: AtomicU64,
    /// Client certificates renewed (`renewal.rs`).
    pub cert_renewals: AtomicU64,
    /// Certificate renewal attempts that failed (each retry counts).
    pub cert_renewal_failures: AtomicU64,
    /// Whether the last attempt to write the spool failed, so that a run of
    /// failures is logged once.
    pub spool_failing: std::sync::atomic::AtomicBool,
}

impl TransportStats {
    /// Counts the batches a spool push dropped to stay within its bound.
    pub fn count_overflow(&self, overflow: crate::spool::Overflow) {
        self.spool_dropped_metrics
            .fetch_add(overflow.metrics, Ordering::Relaxed);
        self.spool_dropped_events
            .fetch_add(overflow.events, Ordering::Relaxed);
    }
}

/// `countywatch_agent_info`: the host's configured labels (`labels:` in
/// the config, e.g. its department) on one sample of value 1, the usual
/// Prometheus info metric, so dashboards join on `instance` to filter by
/// them. Reported even without labels, so the join never loses a host.
pub fn agent_info(
    labels: &std::collections::BTreeMap<String, countywatch_config::config_file::Spanned<String>>,
) -> MetricFamily {
    let mut family = MetricFamily::new(
        "countywatch_agent_info",
        "The agent's configured labels (department, ...); always 1.",
        MetricKind::Gauge,
    );
    let pairs: Vec<(&str, &str)> = labels
        .iter()
        .map(|(name, value)| (name.as_str(), value.value.as_str()))
        .collect();
    family.push_copied(&pairs, 1.0);
    family
}

/// What one collection produced.
#[derive(Debug, Default)]
pub struct Collected {
    /// Every probe's families, self-metrics last.
    pub families: Vec<MetricFamily>,
    /// Events probes saw since the previous collection; a probe that
    /// overran keeps its events until its late result is taken back.
    pub events: Vec<Event>,
}

/// A probe and where it currently is.
enum Slot {
    /// Idle, ready to run.
    Ready(Box<dyn Probe>),
    /// Queued or running on a lane in this collection.
    Running,
    /// Still running from a collection that gave up waiting for it.
    Stuck,
    /// Its late result arrived; taken back at the next collection.
    Late(Box<Finished>),
    /// Lost: it panicked. Never happens with our probes, but a lost probe
    /// must not take the agent down.
    Lost,
}

/// The outcome of one probe in one collection.
struct ProbeOutcome {
    /// Probe name.
    name: &'static str,
    /// Whether it produced its metrics.
    success: bool,
    /// How long it ran (the timeout when it overran).
    duration: Duration,
}

/// When a probe last ran and what it produced, for probes that do not run
/// every collection.
struct Schedule {
    /// The probe's own interval; `None` means every collection.
    interval: Option<Duration>,
    /// When it was last started.
    last_started: Option<Instant>,
    /// Its families from the last run, repeated while it is not due.
    cached: Vec<MetricFamily>,
    /// The outcome of the last run, repeated with the families.
    last_success: bool,
    /// How long the last run took.
    last_duration: Duration,
}

impl Schedule {
    /// Whether the probe should run now. A quarter second of slack keeps a
    /// tick that fires a hair early from skipping a whole interval.
    fn is_due(&self, now: Instant) -> bool {
        match (self.interval, self.last_started) {
            (Some(interval), Some(last)) => {
                now.duration_since(last) + Duration::from_millis(250) >= interval
            }
            _ => true,
        }
    }
}

/// What one collection gathers per probe before putting it in order.
#[derive(Default)]
struct Gathered {
    /// Each probe's families, by probe index.
    families: Vec<Vec<MetricFamily>>,
    /// Each probe's events, by probe index.
    events: Vec<Vec<Event>>,
    /// Each probe's outcome, by probe index.
    outcomes: Vec<Option<ProbeOutcome>>,
}

/// Runs the probes and keeps per-probe state across collections.
pub struct Collector {
    /// The probes, in registration order.
    slots: Vec<(&'static str, Slot)>,
    /// The node_exporter collectors each probe stands for, parallel to
    /// `slots` (asked once: a stuck probe cannot be asked later).
    collectors: Vec<Vec<&'static str>>,
    /// Whether each probe asked for a thread of its own, parallel to
    /// `slots` (asked once, like `collectors`).
    own_thread: Vec<bool>,
    /// Whether each probe's source was found absent and that was logged.
    absent: Vec<bool>,
    /// Per-probe schedule, parallel to `slots`.
    schedules: Vec<Schedule>,
    /// Per-probe time limit.
    timeout: Duration,
    /// Where lanes send finished runs and say they ended; cloned into
    /// every lane.
    outlet: Outlet,
    /// Finished runs, this collection's and stuck probes' late ones.
    results: UnboundedReceiver<Finished>,
    /// Shared with the sender, reported in each batch.
    stats: Arc<TransportStats>,
    /// Cumulative errors per probe, reported as a counter.
    errors: Vec<u64>,
    /// Whether each probe failed last time, so a failure is logged once per
    /// change of state rather than every interval.
    failing: Vec<bool>,
    /// How long the previous collection took, reported in the next one.
    last_collection: Duration,
    /// Families dropped because an earlier probe reported the same name
    /// (a textfile naming `node_load1`): the collector refuses a batch
    /// with a name twice, so the later one goes, counted.
    duplicate_families: u64,
}

/// Room left after the probes' families for those appended after them:
/// the collection's self-metrics, then the run loop's (sources, response,
/// agent info). About 40 today; a guess too small only costs one
/// reallocation.
const SELF_FAMILIES: usize = 64;

impl Collector {
    /// A collector over `probes`.
    pub fn new(probes: Vec<Box<dyn Probe>>, timeout: Duration, stats: Arc<TransportStats>) -> Self {
        let count = probes.len();
        let schedules = probes
            .iter()
            .map(|probe| Schedule {
                interval: probe.interval(),
                last_started: None,
                cached: Vec::new(),
                last_success: true,
                last_duration: Duration::ZERO,
            })
            .collect();
        let (results_sender, results) = tokio::sync::mpsc::unbounded_channel();
        let outlet = Outlet {
            results: results_sender,
            lane_ended: Arc::new(tokio::sync::Notify::new()),
        };
        Collector {
            schedules,
            collectors: probes.iter().map(|probe| probe.collectors()).collect(),
            own_thread: probes
                .iter()
                .map(|probe| probe.needs_own_thread())
                .collect(),
            absent: vec![false; count],
            slots: probes
                .into_iter()
                .map(|probe| (probe.name(), Slot::Ready(probe)))
                .collect(),
            timeout,
            outlet,
            results,
            stats,
            errors: vec![0; count],
            failing: vec![false; count],
            last_collection: Duration::ZERO,
            duplicate_families: 0,
        }
    }

    /// Runs every probe once and returns all families, self-metrics last,
    /// with the events probes saw.
    ///
    /// The due probes run in registration order on one lane; those that
    /// asked for a thread of their own (they wait on the network) each get
    /// a lane. A probe that overruns the timeout is left behind as stuck
    /// and the probes queued after it move to a fresh lane.
    pub async fn collect(&mut self) -> Collected {
        let count = self.slots.len();
        let mut gathered = Gathered {
            families: (0..count).map(|_| Vec::new()).collect(),
            events: (0..count).map(|_| Vec::new()).collect(),
            outcomes: (0..count).map(|_| None).collect(),
        };
        // Late results of stuck probes that came back since last time.
        while let Ok(finished) = self.results.try_recv() {
            self.take_late(finished);
        }
        let started = Instant::now();
        let mut shared_queue = VecDeque::new();
        let mut lanes = Vec::new();
        let mut pending = 0;
        for index in 0..count {
            let name = self.slots[index].0;
            let schedule = &mut self.schedules[index];
            match std::mem::replace(&mut self.slots[index].1, Slot::Lost) {
                Slot::Ready(probe) if !schedule.is_due(started) => {
                    self.slots[index].1 = Slot::Ready(probe);
                    gathered.families[index] = schedule.cached.clone();
                    gathered.outcomes[index] = Some(ProbeOutcome {
                        name,
                        success: schedule.last_success,
                        duration: schedule.last_duration,
                    });
                }
                Slot::Ready(probe) => {
                    schedule.last_started = Some(started);
                    self.slots[index].1 = Slot::Running;
                    pending += 1;
                    if self.own_thread[index] {
                        let queue = VecDeque::from([(index, probe)]);
                        lanes.push(Lane::start(queue, self.outlet.clone()));
                    } else {
                        shared_queue.push_back((index, probe));
                    }
                }
                Slot::Late(finished) => {
                    schedule.last_started = Some(started);
                    self.finish(*finished, &mut gathered);
                }
                slot @ (Slot::Stuck | Slot::Lost) => {
                    self.slots[index].1 = slot;
                    self.record(index, Err(ProbeError::StillRunning));
                    gathered.outcomes[index] = Some(ProbeOutcome {
                        name,
                        success: false,
                        duration: self.timeout,
                    });
                }
                // Every run of the previous collection finished or was
                // left behind as stuck before it returned.
                Slot::Running => self.slots[index].1 = Slot::Running,
            }
        }
        if !shared_queue.is_empty() {
            lanes.push(Lane::start(shared_queue, self.outlet.clone()));
        }
        loop {
            // Every result sent so far; the lanes do not wake this task for
            // each (see `lane`), only when one ends.
            while let Ok(finished) = self.results.try_recv() {
                if matches!(self.slots[finished.index].1, Slot::Running) {
                    pending -= 1;
                    self.finish(finished, &mut gathered);
                } else {
                    self.take_late(finished);
                }
            }
            if pending == 0 {
                break;
            }
            let now = Instant::now();
            let wake = lanes
                .iter()
                .filter_map(|lane| lane.running_since())
                .min()
                .unwrap_or(now)
                + self.timeout;
            let lane_ended = self.outlet.lane_ended.notified();
            match tokio::time::timeout_at(wake.into(), lane_ended).await {
                // A lane ended (or an earlier one's permit was left):
                // take what arrived.
                Ok(()) => {}
                Err(_) => {
                    let now = Instant::now();
                    let mut fresh = Vec::new();
                    let mut abandoned = Vec::new();
                    for (position, lane) in lanes.iter().enumerate() {
                        let Some((index, rest)) = lane.abandon_overdue(self.timeout, now) else {
                            continue;
                        };
                        abandoned.push(position);
                        pending -= 1;
                        self.slots[index].1 = Slot::Stuck;
                        self.schedules[index].cached.clear();
                        self.record(index, Err(ProbeError::TimedOut(self.timeout)));
                        gathered.outcomes[index] = Some(ProbeOutcome {
                            name: self.slots[index].0,
                            success: false,
                            duration: self.timeout,
                        });
                        if !rest.is_empty() {
                            fresh.push(Lane::start(rest, self.outlet.clone()));
                        }
                    }
                    // An abandoned lane is not waited for again: its
                    // probe's result will come back as a late one.
                    for position in abandoned.into_iter().rev() {
                        lanes.swap_remove(position);
                    }
                    lanes.extend(fresh);
                }
            }
        }
        self.last_collection = started.elapsed();
        // Sized once: collecting a flattening iterator grows the vector
        // from nothing, a reallocation at every doubling.
        let probed: usize = gathered.families.iter().map(Vec::len).sum();
        let mut families: Vec<MetricFamily> = Vec::with_capacity(probed + SELF_FAMILIES);
        families.extend(gathered.families.into_iter().flatten());
        let events = gathered.events.into_iter().flatten().collect();
        let outcomes: Vec<ProbeOutcome> = gathered.outcomes.into_iter().flatten().collect();
        self.drop_duplicate_families(&mut families);
        families.extend(self.self_metrics(&outcomes));
        families.extend(
            self.scrape_metrics(&outcomes)
                .into_iter()
                .filter(|family| !family.samples.is_empty()),
        );
        Collected { families, events }
    }

    /// A result for a probe this collection is not waiting for: a stuck
    /// probe came back. It is taken back at the next collection.
    fn take_late(&mut self, finished: Finished) {
        let index = finished.index;
        if matches!(self.slots[index].1, Slot::Stuck) {
            self.slots[index].1 = Slot::Late(Box::new(finished));
        }
    }

    /// Takes a probe's run: the probe back into its slot, its families,
    /// events and outcome into `gathered`.
    fn finish(&mut self, finished: Finished, gathered: &mut Gathered) {
        let index = finished.index;
        let name = self.slots[index].0;
        self.slots[index].1 = match finished.probe {
            Some(probe) => Slot::Ready(probe),
            None => Slot::Lost,
        };
        let success = finished.result.is_ok();
        let schedule = &mut self.schedules[index];
        if schedule.interval.is_some() {
            schedule.cached.clone_from(&finished.families);
        }
        schedule.last_success = success;
        schedule.last_duration = finished.duration;
        gathered.families[index] = finished.families;
        gathered.events[index] = finished.events;
        match finished.result {
            Err(ProbeError::Absent(path)) => self.record_absent(index, &path),
            result => self.record(index, result),
        }
        gathered.outcomes[index] = Some(ProbeOutcome {
            name,
            success,
            duration: finished.duration,
        });
    }

    fn record(&mut self, index: usize, result: Result<(), ProbeError>) {
        let name = self.slots[index].0;
        match result {
            Ok(()) => {
                if self.failing[index] {
                    tracing::info!(probe = name, "probe recovered");
                }
                self.failing[index] = false;
            }
            Err(error) => {
                self.errors[index] += 1;
                if !self.failing[index] {
                    tracing::warn!(probe = name, %error, "probe failed");
                }
                self.failing[index] = true;
            }
        }
    }

    /// Keeps the first family of each name, counting the others.
    fn drop_duplicate_families(&mut self, families: &mut Vec<MetricFamily>) {
        let keep: Vec<bool> = {
            let mut seen = std::collections::HashSet::with_capacity(families.len());
            families
                .iter()
                .map(|family| seen.insert(family.name.as_ref()))
                .collect()
        };
        let before = families.len();
        let mut keep = keep.into_iter();
        families.retain(|_| keep.next().unwrap_or(true));
        let dropped = before - families.len();
        if dropped > 0 {
            if self.duplicate_families == 0 {
                tracing::warn!(
                    dropped,
                    "probes reported a metric family name twice; the later ones are dropped"
                );
            }
            self.duplicate_families += dropped as u64;
        }
    }

    /// A probe whose source does not exist: node_exporter reports it as a
    /// failed collector, but it is the host's shape, not a fault, so it is
    /// logged once at info level and not counted in the errors.
    fn record_absent(&mut self, index: usize, path: &std::path::Path) {
        if !self.absent[index] {
            tracing::info!(
                probe = self.slots[index].0,
                path = %path.display(),
                "probe source does not exist on this host; not looking again"
            );
            self.absent[index] = true;
        }
    }

    /// node_exporter's `node_scrape_collector_*` families.
    fn scrape_metrics(&self, outcomes: &[ProbeOutcome]) -> [MetricFamily; 2] {
        let mut duration = MetricFamily::new(
            "node_scrape_collector_duration_seconds",
            "node_exporter: Duration of a collector scrape.",
            MetricKind::Gauge,
        );
        let mut success = MetricFamily::new(
            "node_scrape_collector_success",
            "node_exporter: Whether a collector succeeded.",
            MetricKind::Gauge,
        );
        for (outcome, collectors) in outcomes.iter().zip(&self.collectors) {
            for collector in collectors {
                let labels = [("collector", *collector)];
                duration.push_static(&labels, outcome.duration.as_secs_f64());
                success.push_static(&labels, if outcome.success { 1.0 } else { 0.0 });
            }
        }
        [duration, success]
    }

    fn self_metrics(&self, outcomes: &[ProbeOutcome]) -> Vec<MetricFamily> {
        let mut build = MetricFamily::new(
            "countywatch_agent_build_info",
            "The agent's version; always 1.",
            MetricKind::Gauge,
        );
        build.push_static(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);
        let mut duration = MetricFamily::new(
            "countywatch_agent_probe_duration_seconds",
            "How long each probe took in the last collection.",
            MetricKind::Gauge,
        );
        let mut success = MetricFamily::new(
            "countywatch_agent_probe_success",
            "Whether each probe succeeded in the last collection.",
            MetricKind::Gauge,
        );
        let mut errors = MetricFamily::new(
            "countywatch_agent_probe_errors_total",
            "Collections in which each probe failed.",
            MetricKind::Counter,
        );
        for (index, outcome) in outcomes.iter().enumerate() {
            let labels = [("probe", outcome.name)];
            duration.push_static(&labels, outcome.duration.as_secs_f64());
            success.push_static(&labels, if outcome.success { 1.0 } else { 0.0 });
            errors.push_static(&labels, self.errors.get(index).copied().unwrap_or(0) as f64);
        }
        let stats = &self.stats;
        let mut spool_dropped = MetricFamily::new(
            "countywatch_agent_spool_dropped_batches_total",
            "Batches dropped because the spool was full, by kind.",
            MetricKind::Counter,
        );
        spool_dropped.push_static(
            &[("kind", "metrics")],
            stats.spool_dropped_metrics.load(Ordering::Relaxed) as f64,
        );
        spool_dropped.push_static(
            &[("kind", "events")],
            stats.spool_dropped_events.load(Ordering::Relaxed) as f64,
        );
        let mut spool_damaged = MetricFamily::new(
            "countywatch_agent_spool_damaged_batches_total",
            "Batches lost to a damaged spool file, by kind (unknown: neither the index row nor the body was readable as a batch).",
            MetricKind::Counter,
        );
        for (kind, value) in [
            ("events", &stats.spool_damaged_event_batches),
            ("metrics", &stats.spool_damaged_metric_batches),
            ("unknown", &stats.spool_damaged_uncounted_batches),
        ] {
            spool_damaged.push_static(&[("kind", kind)], value.load(Ordering::Relaxed) as f64);
        }
        let counter = |name: &'static str, help: &'static str, value: &AtomicU64| {
            MetricFamily::single(
                name,
                help,
                MetricKind::Counter,
                value.load(Ordering::Relaxed) as f64,
            )
        };
        vec![
            build,
            MetricFamily::single(
                "countywatch_agent_collection_duration_seconds",
                "How long the previous collection took, all probes together.",
                MetricKind::Gauge,
                self.last_collection.as_secs_f64(),
            ),
            duration,
            success,
            errors,
            counter(
                "countywatch_agent_batches_sent_total",
                "Batches the collector acknowledged.",
                &stats.batches_sent,
            ),
            counter(
                "countywatch_agent_cert_renewals_total",
                "Client certificates renewed over mutual TLS.",
                &stats.cert_renewals,
            ),
            counter(
                "countywatch_agent_cert_renewal_failures_total",
                "Certificate renewal attempts that failed; the old certificate stays in use and the renewal is retried.",
                &stats.cert_renewal_failures,
            ),
            counter(
                "countywatch_agent_send_failures_total",
                "Attempts to send a batch that failed.",
                &stats.send_failures,
            ),
            counter(
                "countywatch_agent_batches_refused_total",
                "Batches the collector refused as invalid, dropped without retry.",
                &stats.batches_dropped,
            ),
            counter(
                "countywatch_agent_sent_bytes_total",
                "Compressed bytes of batches the collector acknowledged.",
                &stats.bytes_sent,
            ),
            counter(
                "countywatch_agent_spool_write_failures_total",
                "Attempts to write a batch to the spool that failed (a full disk, an I/O error); the batch is held and retried.",
                &stats.spool_write_failures,
            ),
            MetricFamily::single(
                "countywatch_agent_spool_batches",
                "Batches waiting in the spool for the collector's acknowledgement.",
                MetricKind::Gauge,
                stats.pending_batches.load(Ordering::Relaxed) as f64,
            ),
            MetricFamily::single(
                "countywatch_agent_spool_bytes",
                "Bytes of batches waiting in the spool.",
                MetricKind::Gauge,
                stats.spool_bytes.load(Ordering::Relaxed) as f64,
            ),
            spool_dropped,
            spool_damaged,
            MetricFamily::single(
                "countywatch_agent_duplicate_families_total",
                "Metric families dropped because an earlier probe reported the same name (a textfile naming a family the agent serves).",
                MetricKind::Counter,
                self.duplicate_families as f64,
            ),
            counter(
                "countywatch_agent_spool_damaged_events_total",
                "Events in the event batches lost to a damaged spool file (exact: each batch's count is kept apart from its body).",
                &stats.spool_damaged_events,
            ),
            counter(
                "countywatch_agent_spool_salvages_total",
                "Times the spool database was found damaged and its readable batches moved to a fresh one.",
                &stats.spool_salvages,
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sleepy {
        delay: Duration,
    }

    impl Probe for Sleepy {
        fn name(&self) -> &'static str {
            "sleepy"
        }
        fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
            std::thread::sleep(self.delay);
            out.push(MetricFamily::single(
                "sleepy_value",
                "h",
                MetricKind::Gauge,
                1.0,
            ));
            Ok(())
        }
    }

    struct Quick;

    impl Probe for Quick {
        fn name(&self) -> &'static str {
            "quick"
        }
        fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
            out.push(MetricFamily::single(
                "quick_value",
                "h",
                MetricKind::Gauge,
                2.0,
            ));
            Ok(())
        }
    }

    fn success_of(families: &[MetricFamily], probe: &str) -> Option<f64> {
        let family = families
            .iter()
            .find(|f| f.name == "countywatch_agent_probe_success")?;
        family
            .samples
            .iter()
            .find(|sample| sample.labels.iter().any(|(_, value)| value == probe))
            .map(|sample| sample.value)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stuck_probe_does_not_stall_the_others_and_comes_back() {
        let probes: Vec<Box<dyn Probe>> = vec![
            Box::new(Sleepy {
                delay: Duration::from_millis(400),
            }),
            Box::new(Quick),
        ];
        let mut collector = Collector::new(
            probes,
            Duration::from_millis(100),
            Arc::new(TransportStats::default()),
        );
        let first = collector.collect().await.families;
        assert!(first.iter().any(|f| f.name == "quick_value"));
        assert!(!first.iter().any(|f| f.name == "sleepy_value"));
        assert_eq!(success_of(&first, "sleepy"), Some(0.0));
        assert_eq!(success_of(&first, "quick"), Some(1.0));
        // While the first run is still sleeping the probe is skipped, not restarted.
        let second = collector.collect().await.families;
        assert_eq!(success_of(&second, "sleepy"), Some(0.0));
        tokio::time::sleep(Duration::from_millis(400)).await;
        // Its late result is taken back with the probe.
        let third = collector.collect().await.families;
        assert!(third.iter().any(|f| f.name == "sleepy_value"));
        assert_eq!(success_of(&third, "sleepy"), Some(1.0));
    }

    struct Panicking;

    impl Probe for Panicking {
        fn name(&self) -> &'static str {
            "panicking"
        }
        fn collect(&mut self, _out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
            panic!("a probe bug");
        }
    }

    #[tokio::test]
    async fn a_panicking_probe_is_lost_and_the_probes_after_it_still_run() {
        let probes: Vec<Box<dyn Probe>> = vec![Box::new(Panicking), Box::new(Quick)];
        let mut collector = Collector::new(
            probes,
            Duration::from_secs(5),
            Arc::new(TransportStats::default()),
        );
        for _ in 0..2 {
            let families = collector.collect().await.families;
            assert!(families.iter().any(|f| f.name == "quick_value"));
            assert_eq!(success_of(&families, "panicking"), Some(0.0));
            assert_eq!(success_of(&families, "quick"), Some(1.0));
        }
    }

    /// Stands for two node_exporter collectors, like the cpu probe.
    struct Twofold;

    impl Probe for Twofold {
        fn name(&self) -> &'static str {
            "twofold"
        }
        fn collectors(&self) -> Vec<&'static str> {
            vec!["cpu", "stat"]
        }
        fn collect(&mut self, _out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
            Ok(())
        }
    }

    /// A collector whose source the host does not have.
    struct Missing;

    impl Probe for Missing {
        fn name(&self) -> &'static str {
            "conntrack"
        }
        fn collectors(&self) -> Vec<&'static str> {
            vec!["conntrack"]
        }
        fn collect(&mut self, _out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
            Err(ProbeError::Absent("/proc/sys/net/netfilter".into()))
        }
    }

    fn scrape_series(families: &[MetricFamily], name: &str) -> Vec<(String, f64)> {
        families
            .iter()
            .filter(|family| family.name == name)
            .flat_map(|family| &family.samples)
            .map(|sample| (sample.labels[0].1.to_string(), sample.value))
            .collect()
    }

    #[tokio::test]
    async fn node_exporter_collector_names_and_absent_sources() {
        let probes: Vec<Box<dyn Probe>> =
            vec![Box::new(Twofold), Box::new(Missing), Box::new(Quick)];
        let mut collector = Collector::new(
            probes,
            Duration::from_secs(5),
            Arc::new(TransportStats::default()),
        );
        collector.collect().await;
        let families = collector.collect().await.families;
        assert_eq!(
            scrape_series(&families, "node_scrape_collector_success"),
            vec![
                ("cpu".to_string(), 1.0),
                ("stat".to_string(), 1.0),
                ("conntrack".to_string(), 0.0)
            ],
            "a probe with no node_exporter collector (quick) has no series"
        );
        assert_eq!(
            scrape_series(&families, "node_scrape_collector_duration_seconds").len(),
            3
        );
        // Quick's family twice: the batch would be refused, so one goes.
        let mut twice = vec![MetricFamily::single("quick_value", "h", MetricKind::Gauge, 1.0); 2];
        collector.drop_duplicate_families(&mut twice);
        assert_eq!(twice.len(), 1);
        assert_eq!(collector.duplicate_families, 1);
        // Absent is node_exporter's failed collector, but not an agent error.
        let errors = families
            .iter()
            .find(|family| family.name == "countywatch_agent_probe_errors_total")
            .unwrap();
        assert!(errors.samples.iter().all(|sample| sample.value == 0.0));
    }

    struct Counting {
        runs: u32,
    }

    impl Probe for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }
        fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
            self.runs += 1;
            out.push(MetricFamily::single(
                "runs_total",
                "h",
                MetricKind::Counter,
                f64::from(self.runs),
            ));
            Ok(())
        }
        fn interval(&self) -> Option<Duration> {
            Some(Duration::from_secs(3600))
        }
    }

    #[tokio::test]
    async fn a_probe_not_due_repeats_its_last_families() {
        let mut collector = Collector::new(
            vec![Box::new(Counting { runs: 0 })],
            Duration::from_secs(1),
            Arc::new(TransportStats::default()),
        );
        for _ in 0..3 {
            let families = collector.collect().await.families;
            let runs = families.iter().find(|f| f.name == "runs_total").unwrap();
            assert_eq!(runs.samples[0].value, 1.0, "ran once, repeated since");
            assert_eq!(success_of(&families, "counting"), Some(1.0));
        }
    }
}
