//! The collector's sustained ingest over mutual TLS on loopback: N
//! simulated agents (each with its own enrolled certificate and connection)
//! send realistic batches back to back for a fixed time; reports batches,
//! samples and events per second, and the collector's RSS per connected
//! agent. No peer is measured in the same run.
//!
//! Needs the release collector: `cargo build --release --bins` first.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use countywatch_agent::config::CollectorUrl;
use countywatch_agent::identity::IdentityFiles;
use countywatch_agent::transport::{Transport, mutual_tls};
use countywatch_wire::{
    Batch, Event, EventKind, EventSource, MetricFamily, MetricKind, WIRE_VERSION, encode_batch,
};

use super::{Benchmark, Figure};
use crate::Collector;

/// Registration.
pub const BENCHMARK: Benchmark = Benchmark {
    name: "ingest",
    about: "collector ingest over mTLS: 50 agents, 400 samples + 10 events per batch, 15 s",
    run,
};

const AGENTS: usize = 50;
const DURATION: Duration = Duration::from_secs(15);
const SAMPLES_PER_BATCH: usize = 400;
const EVENTS_PER_BATCH: usize = 10;

fn batch(agent: &str, seq: u64) -> Batch {
    let mut metrics = Vec::new();
    for family_index in 0..40 {
        let mut family = MetricFamily::new(
            format!("node_bench_{family_index}_total"),
            "help",
            MetricKind::Counter,
        );
        for device in 0..SAMPLES_PER_BATCH / 40 {
            family.push(
                &[("device", &format!("eth{device}"))],
                (seq * 1000 + device as u64) as f64,
            );
        }
        metrics.push(family);
    }
    let events = (0..EVENTS_PER_BATCH)
        .map(|index| {
            let mut event = Event::new(seq as i64, EventSource::Auth, EventKind::SshLoginFailed);
            event.fields.user = Some(format!("user{index}"));
            event.fields.src_ip = Some(std::net::IpAddr::from([127, 0, 0, 1]));
            event.raw = format!(
                "sshd[{index}]: Failed password for user{index} from 127.0.0.1 port 22 ssh2"
            );
            event
        })
        .collect();
    Batch {
        version: WIRE_VERSION,
        agent: agent.to_string(),
        seq,
        collected_at_ms: 0,
        metrics,
        events,
    }
}

fn rss_kib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| value.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0.0)
}

fn run() -> Vec<Figure> {
    let collector = Collector::start_with(Some("agents:\n  silent_after: 1h\n"), &[]);
    let pid = collector.pid();
    let identities: Vec<(String, tempfile::TempDir)> = (0..AGENTS)
        .map(|index| {
            let name = format!("bench-{index:03}");
            let dir = collector.enrolled_identity(&name);
            (name, dir)
        })
        .collect();
    let rss_idle = rss_kib(pid);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => panic!("cannot start a runtime: {error}"),
    };
    let batches = Arc::new(AtomicU64::new(0));
    let url = CollectorUrl::parse(&format!("https://{}", collector.ingest_addr))
        .unwrap_or_else(|error| panic!("{error}"));
    // Pre-encode a few bodies per agent: the benchmark measures the
    // collector, not the encoder.
    let mut bodies = Vec::new();
    for (name, dir) in &identities {
        let encoded: Vec<Bytes> = (1..=600u64)
            .map(|seq| Bytes::from(encode_batch(&batch(name, seq))))
            .collect();
        let tls =
            mutual_tls(&IdentityFiles::new(dir.path())).unwrap_or_else(|error| panic!("{error:#}"));
        bodies.push((encoded, tls));
    }
    let connected_rss = Arc::new(std::sync::Mutex::new(0.0));
    let elapsed = runtime.block_on(async {
        let barrier = Arc::new(tokio::sync::Barrier::new(AGENTS + 1));
        let mut tasks = Vec::new();
        for (encoded, tls) in bodies {
            let url = url.clone();
            let batches = Arc::clone(&batches);
            let barrier = Arc::clone(&barrier);
            tasks.push(tokio::spawn(async move {
                let mut transport = Transport::new(url, tls, Duration::from_secs(30));
                // Connect (and send batch 1) before the clock starts.
                let _ = transport
                    .post(
                        countywatch_wire::INGEST_PATH,
                        Some("gzip"),
                        encoded[0].clone(),
                    )
                    .await;
                barrier.wait().await;
                let started = Instant::now();
                let mut index = 1;
                while started.elapsed() < DURATION && index < encoded.len() {
                    if transport
                        .post(
                            countywatch_wire::INGEST_PATH,
                            Some("gzip"),
                            encoded[index].clone(),
                        )
                        .await
                        .is_ok()
                    {
                        batches.fetch_add(1, Ordering::Relaxed);
                    }
                    index += 1;
                }
            }));
        }
        barrier.wait().await;
        *connected_rss
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = rss_kib(pid);
        let started = Instant::now();
        for task in tasks {
            let _ = task.await;
        }
        started.elapsed()
    });
    let rss_connected = *connected_rss
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let rss_peak = rss_kib(pid).max(rss_connected);
    let seconds = elapsed.as_secs_f64().min(DURATION.as_secs_f64() + 1.0);
    let batches = batches.load(Ordering::Relaxed) as f64;
    vec![
        Figure::new("ingest_batches_per_second", batches / seconds, "batches/s"),
        Figure::new(
            "ingest_samples_per_second",
            batches * SAMPLES_PER_BATCH as f64 / seconds,
            "samples/s",
        ),
        Figure::new(
            "ingest_events_per_second",
            batches * EVENTS_PER_BATCH as f64 / seconds,
            "events/s",
        ),
        Figure::new("collector_rss_idle", rss_idle / 1024.0, "MiB"),
        Figure::new(
            "collector_rss_per_connected_agent",
            (rss_connected - rss_idle) / AGENTS as f64,
            "KiB",
        ),
        Figure::new("collector_rss_peak_under_load", rss_peak / 1024.0, "MiB"),
    ]
}
