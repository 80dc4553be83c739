//! Issue 4's "done when": with real Prometheus scraping the collector
//! (`honor_labels: true`) and a real node_exporter on the same host, the
//! queries behind Node Exporter Full's "Quick CPU / Mem / Disk" and "Basic
//! CPU / Mem / Net / Disk" rows return data for the agent's instance, and
//! the same numbers as for node_exporter's, within sampling error.
//!
//! The expressions are the dashboard's, with `$node`/`$job` filled in and
//! two deliberate changes: `$__rate_interval` becomes a fixed window, and
//! `irate` becomes `rate` over it. Both instances are scraped at different
//! moments, and `irate` compares two single seconds of a busy shared
//! machine; a 15 s `rate` compares like with like. Tolerances are sampling
//! tolerances, not performance assertions: exact where the value is a
//! constant of the host, small where it is a level read a second apart,
//! wide where it is a rate over a slightly different window.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use countywatch_e2e::peer::{NodeExporter, Prometheus};
use countywatch_e2e::process::wait_until;
use countywatch_e2e::{Agent, Collector};

/// The agent's name, hence its `instance` label.
const AGENT: &str = "e2e-node";

/// How two values may differ.
#[derive(Clone, Copy, Debug)]
enum Tolerance {
    /// Host constants: cores, totals.
    Exact,
    /// Absolute difference, in the query's unit.
    Absolute(f64),
    /// A fraction of the larger value, plus a floor for values near zero.
    Relative(f64, f64),
}

impl Tolerance {
    fn accepts(self, ours: f64, theirs: f64) -> bool {
        if ours.is_nan() && theirs.is_nan() {
            return true;
        }
        let difference = (ours - theirs).abs();
        match self {
            Tolerance::Exact => ours == theirs,
            Tolerance::Absolute(limit) => difference <= limit,
            Tolerance::Relative(fraction, floor) => {
                difference <= fraction * ours.abs().max(theirs.abs()) + floor
            }
        }
    }
}

/// One dashboard query: a panel name, the PromQL with `SEL` for the
/// instance selector, the label that tells its series apart (none for a
/// single value), and its tolerance.
struct Panel {
    /// Row and panel title as the dashboard shows them.
    title: &'static str,
    /// PromQL; `SEL` becomes `instance="...",job="..."`.
    query: &'static str,
    /// The label matching series between the two instances.
    key: Option<&'static str>,
    /// How close the values must be.
    tolerance: Tolerance,
}

const WINDOW: &str = "15s";

fn panels() -> Vec<Panel> {
    use Tolerance::{Absolute, Exact, Relative};
    let panel = |title, query, key, tolerance| Panel {
        title,
        query,
        key,
        tolerance,
    };
    vec![
        // Quick CPU / Mem / Disk.
        panel(
            "Quick/Pressure CPU",
            "rate(node_pressure_cpu_waiting_seconds_total{SEL}[W])",
            None,
            Absolute(0.35),
        ),
        panel(
            "Quick/Pressure Memory",
            "rate(node_pressure_memory_waiting_seconds_total{SEL}[W])",
            None,
            Absolute(0.35),
        ),
        panel(
            "Quick/Pressure I/O",
            "rate(node_pressure_io_waiting_seconds_total{SEL}[W])",
            None,
            Absolute(0.35),
        ),
        panel(
            "Quick/CPU Busy",
            "100 * (1 - avg(rate(node_cpu_seconds_total{mode=\"idle\",SEL}[W])))",
            None,
            Absolute(20.0),
        ),
        panel(
            "Quick/Sys Load (5m)",
            "avg(node_load5{SEL}) / count(count(node_cpu_seconds_total{SEL}) by (cpu)) * 100",
            None,
            Absolute(10.0),
        ),
        panel(
            "Quick/Sys Load (15m)",
            "avg(node_load15{SEL}) / count(count(node_cpu_seconds_total{SEL}) by (cpu)) * 100",
            None,
            Absolute(10.0),
        ),
        panel(
            "Quick/RAM Used",
            "100 - ((node_memory_MemAvailable_bytes{SEL} * 100) / node_memory_MemTotal_bytes{SEL})",
            None,
            Absolute(5.0),
        ),
        panel(
            "Quick/SWAP Used",
            "((node_memory_SwapTotal_bytes{SEL} - node_memory_SwapFree_bytes{SEL}) / (node_memory_SwapTotal_bytes{SEL})) * 100",
            None,
            Absolute(5.0),
        ),
        panel(
            "Quick/Root FS Used",
            "100 - ((node_filesystem_avail_bytes{SEL,mountpoint=\"/\",fstype!=\"rootfs\"} * 100) / node_filesystem_size_bytes{SEL,mountpoint=\"/\",fstype!=\"rootfs\"})",
            None,
            Absolute(1.0),
        ),
        panel(
            "Quick/CPU Cores",
            "count(count(node_cpu_seconds_total{SEL}) by (cpu))",
            None,
            Exact,
        ),
        panel(
            "Quick/Uptime",
            "node_time_seconds{SEL} - node_boot_time_seconds{SEL}",
            None,
            Absolute(5.0),
        ),
        panel(
            "Quick/RootFS Total",
            "node_filesystem_size_bytes{SEL,mountpoint=\"/\",fstype!=\"rootfs\"}",
            None,
            Exact,
        ),
        panel(
            "Quick/RAM Total",
            "node_memory_MemTotal_bytes{SEL}",
            None,
            Exact,
        ),
        panel(
            "Quick/SWAP Total",
            "node_memory_SwapTotal_bytes{SEL}",
            None,
            Exact,
        ),
        // Basic CPU / Mem / Net / Disk: CPU Basic, per mode group.
        panel(
            "Basic/CPU Busy System",
            "sum(rate(node_cpu_seconds_total{SEL,mode=\"system\"}[W])) / scalar(count(count(node_cpu_seconds_total{SEL}) by (cpu)))",
            None,
            Absolute(0.2),
        ),
        panel(
            "Basic/CPU Busy User",
            "sum(rate(node_cpu_seconds_total{SEL,mode=\"user\"}[W])) / scalar(count(count(node_cpu_seconds_total{SEL}) by (cpu)))",
            None,
            Absolute(0.2),
        ),
        panel(
            "Basic/CPU Busy Iowait",
            "sum(rate(node_cpu_seconds_total{SEL,mode=\"iowait\"}[W])) / scalar(count(count(node_cpu_seconds_total{SEL}) by (cpu)))",
            None,
            Absolute(0.2),
        ),
        panel(
            "Basic/CPU Busy IRQs",
            "sum(rate(node_cpu_seconds_total{SEL,mode=~\".*irq\"}[W])) / scalar(count(count(node_cpu_seconds_total{SEL}) by (cpu)))",
            None,
            Absolute(0.2),
        ),
        panel(
            "Basic/CPU Busy Other",
            "sum(rate(node_cpu_seconds_total{SEL,mode!='idle',mode!='user',mode!='system',mode!='iowait',mode!='irq',mode!='softirq'}[W])) / scalar(count(count(node_cpu_seconds_total{SEL}) by (cpu)))",
            None,
            Absolute(0.2),
        ),
        panel(
            "Basic/CPU Idle",
            "sum(rate(node_cpu_seconds_total{SEL,mode=\"idle\"}[W])) / scalar(count(count(node_cpu_seconds_total{SEL}) by (cpu)))",
            None,
            Absolute(0.2),
        ),
        // Memory Basic.
        panel(
            "Basic/RAM Total",
            "node_memory_MemTotal_bytes{SEL}",
            None,
            Exact,
        ),
        panel(
            "Basic/RAM Used",
            "node_memory_MemTotal_bytes{SEL} - node_memory_MemFree_bytes{SEL} - (node_memory_Cached_bytes{SEL} + node_memory_Buffers_bytes{SEL} + node_memory_SReclaimable_bytes{SEL})",
            None,
            Relative(0.1, 256e6),
        ),
        panel(
            "Basic/RAM Cache + Buffer",
            "node_memory_Cached_bytes{SEL} + node_memory_Buffers_bytes{SEL} + node_memory_SReclaimable_bytes{SEL}",
            None,
            Relative(0.1, 256e6),
        ),
        panel(
            "Basic/RAM Free",
            "node_memory_MemFree_bytes{SEL}",
            None,
            Relative(0.1, 256e6),
        ),
        panel(
            "Basic/SWAP Used",
            "(node_memory_SwapTotal_bytes{SEL} - node_memory_SwapFree_bytes{SEL})",
            None,
            Relative(0.1, 64e6),
        ),
        // Network Traffic Basic, per device (bits per second).
        panel(
            "Basic/Network recv",
            "rate(node_network_receive_bytes_total{SEL}[W])*8",
            Some("device"),
            Relative(0.5, 200e3),
        ),
        panel(
            "Basic/Network trans",
            "rate(node_network_transmit_bytes_total{SEL}[W])*8",
            Some("device"),
            Relative(0.5, 200e3),
        ),
        // Disk Space Used Basic, per mount point.
        panel(
            "Basic/Disk Space Used",
            "100 - ((node_filesystem_avail_bytes{SEL,device!~'rootfs'} * 100) / node_filesystem_size_bytes{SEL,device!~'rootfs'})",
            Some("mountpoint"),
            Absolute(1.0),
        ),
        // Not in the two rows, but the disk metrics: I/O rates per device.
        // The two exporters sample a second apart, and CI compiles while this
        // runs (bursts of tens of MB/s), so disk rates get wide margins: the
        // check is that the same devices report the same order of magnitude.
        panel(
            "Disk/Read bytes",
            "rate(node_disk_read_bytes_total{SEL}[W])",
            Some("device"),
            Relative(0.5, 3e7),
        ),
        panel(
            "Disk/Written bytes",
            "rate(node_disk_written_bytes_total{SEL}[W])",
            Some("device"),
            Relative(0.5, 3e7),
        ),
        panel(
            "Disk/IO time",
            "rate(node_disk_io_time_seconds_total{SEL}[W])",
            Some("device"),
            Absolute(0.6),
        ),
    ]
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The query's series keyed by `key`'s value ("" for a single value).
fn by_key(
    results: Vec<(BTreeMap<String, String>, f64)>,
    key: Option<&str>,
) -> BTreeMap<String, f64> {
    results
        .into_iter()
        .map(|(labels, value)| {
            let name = key
                .and_then(|key| labels.get(key).cloned())
                .unwrap_or_default();
            (name, value)
        })
        .collect()
}

#[test]
fn node_exporter_full_rows_match_a_real_node_exporter() {
    let collector = Collector::start();
    let _agent = Agent::start_for(AGENT, &collector);
    let node_exporter = NodeExporter::start();
    let prometheus = Prometheus::start(&format!(
        "  - job_name: countywatch\n    honor_labels: true\n    static_configs:\n      - targets: ['{}']\n  - job_name: node\n    static_configs:\n      - targets: ['{}']\n",
        collector.http_addr, node_exporter.addr
    ));
    let ours = format!("instance=\"{AGENT}\",job=\"countywatch\"");
    let theirs = format!("instance=\"{}\",job=\"node\"", node_exporter.addr);
    // Enough history for a full rate window on both sides.
    let history = |selector: &str| {
        let query = format!("count_over_time(node_load1{{{selector}}}[20s])");
        prometheus
            .query(&query, now())
            .first()
            .is_some_and(|(_, count)| *count >= 16.0)
    };
    assert!(
        wait_until(Duration::from_secs(90), || history(&ours)
            && history(&theirs)),
        "no 20 s of history for both instances; collector log:\n{}",
        collector.logs.all().join("\n")
    );
    let at = now() - 1.0;
    let mut report = Vec::new();
    let mut mismatches = Vec::new();
    for panel in panels() {
        let query = |selector: &str| {
            let text = panel
                .query
                .replace("SEL", selector)
                .replace("[W]", &format!("[{WINDOW}]"));
            by_key(prometheus.query(&text, at), panel.key)
        };
        let (mine, reference) = (query(&ours), query(&theirs));
        if mine.is_empty() {
            mismatches.push(format!("{}: no data for the agent", panel.title));
            continue;
        }
        if reference.is_empty() {
            mismatches.push(format!("{}: no data for node_exporter", panel.title));
            continue;
        }
        // Series both report (node_exporter's Debian defaults exclude a few
        // devices and mount points upstream keeps, e.g. `lo` and /run).
        let mut compared = 0;
        for (key, value) in &mine {
            let Some(expected) = reference.get(key) else {
                continue;
            };
            compared += 1;
            let line = format!(
                "{} {key}: agent {value} node_exporter {expected}",
                panel.title
            );
            if !panel.tolerance.accepts(*value, *expected) {
                mismatches.push(format!("{line} (tolerance {:?})", panel.tolerance));
            }
            report.push(line);
        }
        if compared == 0 {
            mismatches.push(format!(
                "{}: no series in common: agent {mine:?}, node_exporter {reference:?}",
                panel.title
            ));
        }
    }
    // Shown with --nocapture: the figures behind the verdict.
    println!("{}", report.join("\n"));
    assert!(
        mismatches.is_empty(),
        "mismatches:\n{}\n\nall comparisons:\n{}",
        mismatches.join("\n"),
        report.join("\n")
    );
}
