//! Scraping `/metrics` while agents report: the collector's `MetricStore`
//! holds 1,000 agents of 500 node_exporter-shaped samples each; one thread
//! renders the exposition back to back (a scrape that never stops) while
//! another replaces agents' metrics as ingest does, timing each update.
//!
//! The figures are the time to render all 1,000 agents and the update
//! latency (median, p99, max) with the scraper running, beside the same
//! latencies with no scrape running as the peer: the ratio says how much a
//! scrape holds up ingest. Rendering from a snapshot keeps it near 1; a
//! renderer that held the store's lock while formatting would put the whole
//! render time into the tail.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use countywatch_collector::metric_store::MetricStore;
use countywatch_wire::{MetricFamily, MetricKind};

use super::{Benchmark, Figure};

/// Registration.
pub const BENCHMARK: Benchmark = Benchmark {
    name: "metrics_scrape",
    about: "render /metrics for 1000 agents x 500 samples; ingest update latency during scrapes vs idle",
    run,
};

const AGENTS: usize = 1000;
/// Updates timed in each phase.
const UPDATES: usize = 20_000;

/// 500 samples: 2 CPUs x 8 modes, 4 disks x 17 counters, 8 filesystems x 6
/// gauges, 4 interfaces x 16 counters, and the rest single gauges.
fn agent_families(seed: f64) -> Vec<MetricFamily> {
    let mut families = Vec::new();
    let mut cpu = MetricFamily::new(
        "node_cpu_seconds_total",
        "CPU seconds.",
        MetricKind::Counter,
    );
    for core in 0..2 {
        for mode in [
            "idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice",
        ] {
            cpu.push(&[("cpu", &core.to_string()), ("mode", mode)], seed * 3.0);
        }
    }
    families.push(cpu);
    for counter in 0..17 {
        let mut disk = MetricFamily::new(
            format!("node_disk_counter_{counter}_total"),
            "Disk counter.",
            MetricKind::Counter,
        );
        for device in ["sda", "sdb", "nvme0n1", "dm-0"] {
            disk.push(&[("device", device)], seed + counter as f64);
        }
        families.push(disk);
    }
    for gauge in 0..6 {
        let mut filesystem = MetricFamily::new(
            format!("node_filesystem_gauge_{gauge}_bytes"),
            "Filesystem gauge.",
            MetricKind::Gauge,
        );
        for mount in 0..8 {
            filesystem.push(
                &[
                    ("device", &format!("/dev/sd{mount}")),
                    ("fstype", "ext4"),
                    ("mountpoint", &format!("/mnt/{mount}")),
                ],
                seed * 1e9,
            );
        }
        families.push(filesystem);
    }
    for counter in 0..16 {
        let mut network = MetricFamily::new(
            format!("node_network_counter_{counter}_total"),
            "Network counter.",
            MetricKind::Counter,
        );
        for device in ["lo", "eth0", "eth1", "wg0"] {
            network.push(&[("device", device)], seed * 1e6);
        }
        families.push(network);
    }
    let so_far: usize = families.iter().map(|family| family.samples.len()).sum();
    for gauge in so_far..500 {
        families.push(MetricFamily::single(
            format!("node_gauge_{gauge}"),
            "A gauge.",
            MetricKind::Gauge,
            seed,
        ));
    }
    families
}

/// Times `UPDATES` updates round-robin over the agents; returns the sorted
/// latencies in microseconds.
fn time_updates(store: &MetricStore, template: &[MetricFamily]) -> Vec<f64> {
    let mut latencies = Vec::with_capacity(UPDATES);
    for update in 0..UPDATES {
        // The clone is ingest's decoding, done before the store is touched.
        let families = template.to_vec();
        let agent = format!("host{:04}", update % AGENTS);
        let started = Instant::now();
        store.update(&agent, families, 1_700_000_000_000 + update as i64);
        latencies.push(started.elapsed().as_secs_f64() * 1e6);
    }
    latencies.sort_by(f64::total_cmp);
    latencies
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn run() -> Vec<Figure> {
    let store = Arc::new(MetricStore::new(Duration::from_secs(3600)));
    let template = agent_families(1.0);
    for agent in 0..AGENTS {
        store.update(
            &format!("host{agent:04}"),
            template.clone(),
            1_700_000_000_000,
        );
    }

    let idle = time_updates(&store, &template);

    let scraping = Arc::new(AtomicBool::new(true));
    let scraper = {
        let store = Arc::clone(&store);
        let scraping = Arc::clone(&scraping);
        std::thread::spawn(move || {
            let mut renders = Vec::new();
            let mut bytes = 0;
            while scraping.load(Ordering::Relaxed) {
                let started = Instant::now();
                let mut out = String::with_capacity(64 * 1024 * 1024);
                store.write_text(&mut out, SystemTime::now());
                renders.push(started.elapsed().as_secs_f64() * 1e3);
                bytes = out.len();
            }
            (renders, bytes)
        })
    };
    // Let the first render start before timing.
    std::thread::sleep(Duration::from_millis(50));
    let busy = time_updates(&store, &template);
    scraping.store(false, Ordering::Relaxed);
    let (mut renders, bytes) = scraper.join().unwrap_or_default();
    renders.sort_by(f64::total_cmp);

    vec![
        Figure::new(
            "render_1000_agents_ms_median",
            percentile(&renders, 0.5),
            "ms",
        ),
        Figure::new("renders_during_updates", renders.len() as f64, "renders"),
        Figure::new("exposition_size", bytes as f64 / 1024.0 / 1024.0, "MiB"),
        Figure::new("update_latency_median", percentile(&busy, 0.5), "us")
            .with_peer("no scrape running", percentile(&idle, 0.5)),
        Figure::new("update_latency_p99", percentile(&busy, 0.99), "us")
            .with_peer("no scrape running", percentile(&idle, 0.99)),
        Figure::new(
            "update_latency_max",
            busy.last().copied().unwrap_or(0.0),
            "us",
        )
        .with_peer("no scrape running", idle.last().copied().unwrap_or(0.0)),
    ]
}
