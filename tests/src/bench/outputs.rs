//! Scale-out output throughput with the real receivers on loopback: how
//! fast the collector's remote_write output drains a backlog into Debian's
//! Prometheus (`--web.enable-remote-write-receiver`), and how fast event
//! forwarding drains one into Debian's rsyslog over plain TCP, measured
//! until rsyslog has written every event to its file.
//!
//! The backlog is built while each receiver is stopped, so the figure is
//! the output's sustained rate, not the ingest rate. Needs the release
//! collector: `cargo build --release --bins` first.

use std::time::{Duration, Instant, SystemTime};

use countywatch_wire::{
    Batch, Event, EventFields, EventKind, EventSource, MetricFamily, MetricKind, WIRE_VERSION,
};

use super::{Benchmark, Figure};
use crate::Collector;
use crate::http::{post_batch, sample_value};
use crate::peer::{Prometheus, Rsyslog};
use crate::process::wait_until;

/// Registration.
pub const BENCHMARK: Benchmark = Benchmark {
    name: "outputs",
    about: "remote_write into Prometheus and syslog forwarding into rsyslog, draining a backlog of 400k samples and 100k events",
    run,
};

const BATCHES: usize = 200;
const SAMPLES_PER_BATCH: usize = 2_000;
const EVENTS_PER_BATCH: usize = 500;

fn batch(seq: usize, at_ms: i64) -> Batch {
    let mut metrics = Vec::new();
    for family_index in 0..20 {
        let mut family = MetricFamily::new(
            format!("node_bench_{family_index}_total"),
            "help",
            MetricKind::Counter,
        );
        for device in 0..SAMPLES_PER_BATCH / 20 {
            family.push(
                &[("device", &format!("eth{device}"))],
                (seq * 1000 + device) as f64,
            );
        }
        metrics.push(family);
    }
    let events = (0..EVENTS_PER_BATCH)
        .map(|index| {
            let mut event = Event::new(at_ms, EventSource::Auth, EventKind::SshLoginFailed);
            event.fields = EventFields {
                user: Some(format!("user{index}")),
                src_ip: Some(std::net::IpAddr::from([127, 0, 0, 1])),
                ..EventFields::default()
            };
            event.raw = format!(
                "sshd[{index}]: Failed password for user{index} from 127.0.0.1 port 22 ssh2"
            );
            event
        })
        .collect();
    Batch {
        version: WIRE_VERSION,
        agent: "bench-host".to_string(),
        seq: seq as u64,
        collected_at_ms: at_ms,
        metrics,
        events,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn run() -> Vec<Figure> {
    let mut prometheus = Prometheus::start_receiver();
    let mut rsyslog = Rsyslog::start(None);
    let config = format!(
        "outputs:\n  remote_write:\n    - name: central\n      url: {}\n      external_labels:\n        county: M\n      min_backoff: 50ms\n      max_backoff: 200ms\n  forward:\n    - name: siem\n      syslog:\n        address: {}\n      max_backoff: 200ms\n",
        prometheus.remote_write_url(),
        rsyslog.addr
    );
    let collector = Collector::start_with(Some(&config), &[]);
    let identity = collector.enrolled_identity("bench-host");
    prometheus.stop();
    rsyslog.stop();

    let start_ms = now_ms() - BATCHES as i64;
    for seq in 1..=BATCHES {
        let response = post_batch(
            collector.ingest_addr,
            identity.path(),
            &batch(seq, start_ms + seq as i64),
        );
        assert_eq!(response.status, 200, "{}", response.body);
    }
    let pending = || {
        sample_value(
            &collector.metrics(),
            "countywatch_remote_write_pending_samples{output=\"central\"}",
        )
        .unwrap_or(-1.0)
    };
    let samples = (BATCHES * SAMPLES_PER_BATCH) as f64;
    assert_eq!(pending(), samples, "the whole backlog is queued");
    let queue_bytes: u64 = ["outputs.db", "outputs.db-wal"]
        .iter()
        .filter_map(|file| std::fs::metadata(collector.data_dir.join(file)).ok())
        .map(|metadata| metadata.len())
        .sum();

    prometheus.start_again();
    let started = Instant::now();
    assert!(wait_until(Duration::from_secs(600), || pending() == 0.0));
    let remote_write_seconds = started.elapsed().as_secs_f64();

    let events = BATCHES * EVENTS_PER_BATCH;
    rsyslog.start_again();
    let started = Instant::now();
    assert!(wait_until(Duration::from_secs(600), || rsyslog
        .line_count()
        >= events));
    let forward_seconds = started.elapsed().as_secs_f64();

    vec![
        Figure::new(
            "remote_write_samples_per_second",
            samples / remote_write_seconds,
            "samples/s",
        ),
        Figure::new(
            "remote_write_queue_bytes_per_sample",
            queue_bytes as f64 / samples,
            "bytes",
        ),
        Figure::new(
            "syslog_forward_events_per_second",
            events as f64 / forward_seconds,
            "events/s",
        ),
    ]
}
