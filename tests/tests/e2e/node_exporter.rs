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
//!
//! Issue 23's "done when" is the second test: every family node_exporter
//! serves on this host is served by the agent with the same type and label
//! names, except the [`NOT_SERVED`] list (each with its reason); the values
//! of the families both serve agree; and the share of Node Exporter Full's
//! families (tests/data/node-exporter-full-families.txt) that node_exporter
//! serves here and the agent serves too is printed and asserted.
//!
//! The third covers the collectors whose hardware no CI machine has (RAPL,
//! NVMe, Fibre Channel, InfiniBand, tape, IPVS, CPU throttling and
//! frequency, thermal zones, EDAC, md RAID, bonding, power supplies,
//! hardware sensors, DMI):
//! node_exporter
//! and the agent read the same fixture tree (`--path.sysfs`/`paths.sysfs`)
//! and must serve the same series, values, types and help.
//!
//! The fourth and fifth do the same for the collectors whose sources this
//! machine lacks (NFS client and server, ZFS, XFS, Btrfs, bcache, and
//! diskstats' udev families), on the trees in tests/data/node-fixtures and
//! node-fixtures-3.10, series by series and value by value.

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

/// Families node_exporter 1.5 serves (on some host) that the agent does
/// not, by name prefix, each with the reason. Everything else node_exporter
/// serves must be served by the agent.
const NOT_SERVED: &[(&str, &str)] = &[
    (
        "node_exporter_build_info",
        "node_exporter's own version; the agent's is countywatch_agent_build_info",
    ),
    (
        "node_systemd_",
        "Debian enables node_exporter's systemd collector (upstream has it off); the agent reports only the units in probes.systemd.units",
    ),
    (
        "node_btrfs_device_errors_total",
        "needs btrfs ioctls on a mounted filesystem (an unsafe call the agent does not make); so does node_btrfs_device_unused_bytes",
    ),
    (
        "node_btrfs_device_unused_bytes",
        "needs btrfs ioctls on a mounted filesystem (an unsafe call the agent does not make)",
    ),
];

/// The share of Node Exporter Full's families node_exporter serves here
/// that the agent serves too, at least: issue 23's 0.95. Measured 0.915 on
/// Debian 12 (188 families served here, 16 missing, all timex), again on
/// 2026-12-06 with hwmon, mdadm, cpufreq, powersupplyclass, schedstat and
/// dmi added (the CI machine, a container, has none of their sources, so
/// node_exporter serves none of those families here either; those
/// collectors are checked against fixture trees in their own files, and
/// their `node_scrape_collector_success` series agree here), and
/// 1.000 (188 of 188) on 2026-12-06 with timex added. The floor stays at
/// the figure rather than 1.0: on bare metal node_exporter serves
/// families of collectors the agent does not have yet ([`NOT_SERVED`]).
const DASHBOARD_SHARE_FLOOR: f64 = 0.95;

/// One exposition: each family's type, and each series' value keyed by
/// family and label set (without `instance` and `job`).
#[derive(Debug, Default)]
struct Exposition {
    /// Family name to `# TYPE` word.
    types: BTreeMap<String, String>,
    /// Family name to `# HELP` text, as written (escapes kept).
    helps: BTreeMap<String, String>,
    /// (family or sample name, labels) to value.
    series: BTreeMap<(String, BTreeMap<String, String>), f64>,
}

impl Exposition {
    /// Parses text format 0.0.4, keeping the samples whose `instance`
    /// label is `instance` (any sample when `None`).
    fn parse(text: &str, instance: Option<&str>) -> Exposition {
        let mut exposition = Exposition::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                exposition.helps.insert(name.to_string(), help.to_string());
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                exposition.types.insert(name.to_string(), kind.to_string());
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (name, labels, rest) = parse_series(line);
            if instance.is_some() && labels.get("instance").map(String::as_str) != instance {
                continue;
            }
            let value = rest.split_whitespace().next().unwrap();
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                "NaN" => f64::NAN,
                _ => value.parse().unwrap(),
            };
            let labels = labels
                .into_iter()
                .filter(|(label, _)| label != "instance" && label != "job")
                .collect();
            exposition.series.insert((name, labels), value);
        }
        exposition
    }

    /// The families that have samples, with the union of their label names.
    fn families(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut families: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, labels) in self.series.keys() {
            let names = families.entry(name.as_str()).or_default();
            for label in labels.keys() {
                if !names.contains(&label.as_str()) {
                    names.push(label);
                }
            }
        }
        for names in families.values_mut() {
            names.sort_unstable();
        }
        families
    }
}

/// Splits `name{a="b\"c",...} rest` with the format's escapes undone.
fn parse_series(line: &str) -> (String, BTreeMap<String, String>, &str) {
    let name_end = line.find(['{', ' ']).unwrap();
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(mut inner) = rest.strip_prefix('{') {
        loop {
            inner = inner.trim_start_matches([',', ' ']);
            if let Some(after) = inner.strip_prefix('}') {
                rest = after;
                break;
            }
            let (label, after) = inner.split_once("=\"").unwrap();
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                let (index, c) = chars.next().unwrap();
                match c {
                    '\\' => match chars.next().unwrap().1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => break index,
                    _ => value.push(c),
                }
            };
            labels.insert(label.to_string(), value);
            inner = &after[end + 1..];
        }
    }
    (name, labels, rest)
}

/// Why a family node_exporter serves may be missing from the agent.
fn not_served_reason(family: &str) -> Option<&'static str> {
    NOT_SERVED
        .iter()
        .find(|(prefix, _)| family.starts_with(prefix))
        .map(|(_, reason)| *reason)
}

/// How far the agent's value may lie outside the two node_exporter reads
/// around it: (fraction of the larger, absolute floor). Counters read at
/// different moments differ by what happened in between, which the two
/// reads bracket; levels that move on their own (memory, load, sockets)
/// get room for that.
fn tolerance(family: &str) -> (f64, f64) {
    match family {
        "node_time_seconds" => (0.0, 30.0),
        // A collector whose source this host lacks (rapl, nvme, ipvs in a
        // container) fails in both: 1 against 0 is a real difference.
        "node_scrape_collector_success" => (0.0, 0.0),
        "node_boot_time_seconds" => (0.0, 1.0),
        // Runnable tasks at one instant: under a parallel test suite the
        // count jumps by tens between two reads a moment apart.
        "node_procs_running" | "node_procs_blocked" => (1.0, 64.0),
        "node_load1" | "node_load5" | "node_load15" => (0.2, 1.0),
        "node_entropy_available_bits" => (0.5, 64.0),
        "node_filefd_allocated" => (0.2, 500.0),
        // I/Os in flight at one instant: under parallel builds the agent
        // read 256 (a full virtio queue) between two node_exporter reads of
        // 0 a second apart (2026-12-06).
        "node_disk_io_now" => (0.0, 1024.0),
        // The clock's discipline: its mode, resolution and the PPS state
        // (no PPS source here) hold still between the reads, so they must
        // match; what chrony or timesyncd moves (the offset being slewed,
        // the frequency, the error bounds, which grow between its updates
        // and drop at each) must lie near the two reads.
        "node_timex_sync_status"
        | "node_timex_status"
        | "node_timex_tai_offset_seconds"
        | "node_timex_loop_time_constant"
        | "node_timex_tick_seconds" => (0.0, 0.0),
        "node_timex_frequency_adjustment_ratio" => (0.0, 1e-4),
        _ if family.starts_with("node_timex_pps_") => (0.0, 0.0),
        _ if family.starts_with("node_timex_") => (0.0, 0.1),
        _ if family.starts_with("node_memory_") => (0.05, 256e6),
        _ if family.starts_with("node_filesystem_") => (0.02, 256e6),
        _ if family.starts_with("node_pressure_") => (0.02, 5.0),
        _ if family.starts_with("node_cpu_") => (0.02, 5.0),
        // Socket buffer memory at one instant: the parallel suite's
        // connections move it by pages between the reads (seen: agent 0
        // between two node_exporter reads of 114688, 2026-12-06).
        "node_sockstat_TCP_mem_bytes" | "node_sockstat_UDP_mem_bytes" => (0.2, 16e6),
        _ if family.starts_with("node_sockstat_") => (0.2, 100.0),
        _ if family.starts_with("node_nf_conntrack_") => (0.2, 100.0),
        _ if family.starts_with("node_udp_queues") => (0.0, 1e6),
        _ if family.starts_with("node_netstat_") || family.starts_with("node_vmstat_") => {
            (0.05, 1000.0)
        }
        _ if family.starts_with("node_network_") || family.starts_with("node_disk_") => (0.05, 1e6),
        _ => (0.05, 1000.0),
    }
}

/// Whether the values of `family` are compared at all: the collector
/// timings are each implementation's own.
fn compares_values(family: &str) -> bool {
    family != "node_scrape_collector_duration_seconds"
}

#[test]
fn every_node_exporter_family_is_served_alike_and_node_exporter_full_is_covered() {
    let textfiles = tempfile::tempdir().unwrap();
    let collector = Collector::start();
    let agent = countywatch_e2e::Agent::start_for_with(
        AGENT,
        &collector,
        &format!(
            "probes:\n  textfile:\n    directory: {}\n",
            textfiles.path().display()
        ),
    );
    let node_exporter = NodeExporter::start();
    let scrape_node_exporter = || {
        let response = countywatch_e2e::http::get(node_exporter.addr, "/metrics").unwrap();
        assert_eq!(response.status, 200);
        Exposition::parse(&response.body, None)
    };
    wait_for_two_batches(&collector, &agent, AGENT);
    let before = scrape_node_exporter();
    std::thread::sleep(Duration::from_millis(1500));
    let ours = Exposition::parse(&collector.metrics(), Some(AGENT));
    std::thread::sleep(Duration::from_millis(1500));
    let after = scrape_node_exporter();

    let theirs = before.families();
    let mine = ours.families();
    let mut problems = Vec::new();
    let mut excused = Vec::new();
    for (family, labels) in &theirs {
        if let Some(reason) = not_served_reason(family) {
            if !mine.contains_key(family) {
                excused.push(format!("{family}: {reason}"));
            }
            continue;
        }
        if family.starts_with("go_")
            || family.starts_with("process_")
            || family.starts_with("promhttp_")
        {
            continue;
        }
        let Some(our_labels) = mine.get(family) else {
            problems.push(format!("{family}: not served by the agent"));
            continue;
        };
        if our_labels != labels {
            problems.push(format!(
                "{family}: labels {our_labels:?}, node_exporter's {labels:?}"
            ));
        }
        let (their_type, our_type) = (before.types.get(*family), ours.types.get(*family));
        if their_type != our_type {
            problems.push(format!(
                "{family}: type {our_type:?}, node_exporter's {their_type:?}"
            ));
        }
    }

    // Values of the series both serve lie within the two reads around the
    // agent's, widened by the family's tolerance.
    let mut compared = 0;
    for ((family, labels), value) in &ours.series {
        if !theirs.contains_key(family.as_str()) || !compares_values(family) {
            continue;
        }
        let key = (family.clone(), labels.clone());
        let (Some(first), Some(second)) = (before.series.get(&key), after.series.get(&key)) else {
            continue;
        };
        compared += 1;
        let (fraction, floor) = tolerance(family);
        let slack = fraction * first.abs().max(second.abs()).max(value.abs()) + floor;
        let (low, high) = (first.min(*second) - slack, first.max(*second) + slack);
        let same_nan = value.is_nan() && first.is_nan();
        if !same_nan && !(low..=high).contains(value) {
            problems.push(format!(
                "{family}{labels:?}: agent {value}, node_exporter {first} then {second}"
            ));
        }
    }
    // Families both serve must share at least one series to compare.
    for family in theirs.keys() {
        if mine.contains_key(family)
            && !ours.series.keys().any(|(name, labels)| {
                name == family && before.series.contains_key(&(name.clone(), labels.clone()))
            })
        {
            problems.push(format!("{family}: no series in common"));
        }
    }

    // Node Exporter Full: the families it reads that node_exporter serves
    // here, and how many of them the agent serves.
    let list = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("data/node-exporter-full-families.txt"),
    )
    .unwrap();
    let dashboard: Vec<&str> = list
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .collect();
    let served_here: Vec<&str> = dashboard
        .iter()
        .copied()
        .filter(|family| theirs.contains_key(family))
        .collect();
    let missing: Vec<&str> = served_here
        .iter()
        .copied()
        .filter(|family| !mine.contains_key(family))
        .collect();
    let share = 1.0 - missing.len() as f64 / served_here.len().max(1) as f64;
    println!(
        "Node Exporter Full: {} families, {} served by node_exporter here, agent serves {:.3} of those; missing: {missing:?}",
        dashboard.len(),
        served_here.len(),
        share
    );
    println!(
        "node_exporter families: {}, agent families: {}, compared series: {compared}\nexcused:\n{}",
        theirs.len(),
        mine.len(),
        excused.join("\n")
    );
    assert!(
        served_here.len() > 100,
        "node_exporter serves only {} of the dashboard's families",
        served_here.len()
    );
    assert!(
        share >= DASHBOARD_SHARE_FLOOR,
        "share {share:.3} below {DASHBOARD_SHARE_FLOOR}"
    );
    assert!(compared > 200, "only {compared} series compared");
    assert!(problems.is_empty(), "problems:\n{}", problems.join("\n"));
}

/// Waits until the collector has two batches from the agent `name`: the
/// second carries the collection that followed a first one, so
/// interval-driven probes have reported.
fn wait_for_two_batches(collector: &Collector, agent: &Agent, name: &str) {
    let series = format!("countywatch_agent_batches_sent_total{{instance=\"{name}\"");
    assert!(
        wait_until(Duration::from_secs(60), || collector.metrics().lines().any(
            |line| line.starts_with(&series)
                && line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|value| value.parse::<f64>().ok())
                    .is_some_and(|sent| sent >= 2.0)
        )),
        "the agent sent no batches; agent log:\n{}",
        agent.logs.all().join("\n")
    );
}

/// The families of the collectors whose hardware no CI machine has, which
/// the fixture test below compares.
const FIXTURE_FAMILIES: [&str; 17] = [
    "node_hwmon_",
    "node_dmi_",
    "node_edac_",
    "node_md_",
    "node_bonding_",
    "node_power_supply_",
    "node_cpu_scaling_",
    "node_thermal_zone_",
    "node_cooling_device_",
    "node_rapl_",
    "node_nvme_",
    "node_fibrechannel_",
    "node_infiniband_",
    "node_tape_",
    "node_ipvs_",
    "node_cpu_core_throttles_total",
    "node_cpu_package_throttles_total",
];

/// Writes a bare-metal host's /sys and /proc files for [`FIXTURE_FAMILIES`]
/// under `root`, in the kernel's formats: two RAPL packages with subzones,
/// an NVMe controller, a Fibre Channel port (hexadecimal statistics, one
/// the firmware lacks), an InfiniBand adapter with a port, a tape drive,
/// two hyperthreaded CPUs with throttle counters and cpufreq, an IPVS
/// director, two thermal zones and cooling devices, a memory controller
/// with EDAC counts, a mirror and a recovering RAID 5 with a failed disk,
/// a bond with one slave down, a laptop's battery and mains adapter, two
/// sensor chips and a server's DMI fields.
fn write_bare_metal_tree(root: &std::path::Path) {
    let files: &[(&str, &str)] = &[
        ("sys/class/powercap/intel-rapl/enabled", "1"),
        ("sys/class/powercap/intel-rapl:0/name", "package-0"),
        ("sys/class/powercap/intel-rapl:0/energy_uj", "243354434855"),
        (
            "sys/class/powercap/intel-rapl:0/max_energy_range_uj",
            "262143328850",
        ),
        ("sys/class/powercap/intel-rapl:0:0/name", "core"),
        ("sys/class/powercap/intel-rapl:0:0/energy_uj", "128000123"),
        (
            "sys/class/powercap/intel-rapl:0:0/max_energy_range_uj",
            "262143328850",
        ),
        ("sys/class/powercap/intel-rapl:0:1/name", "dram"),
        ("sys/class/powercap/intel-rapl:0:1/energy_uj", "5000000"),
        (
            "sys/class/powercap/intel-rapl:0:1/max_energy_range_uj",
            "262143328850",
        ),
        ("sys/class/powercap/intel-rapl:1/name", "package-1"),
        ("sys/class/powercap/intel-rapl:1/energy_uj", "1000001"),
        (
            "sys/class/powercap/intel-rapl:1/max_energy_range_uj",
            "262143328850",
        ),
        ("sys/class/powercap/intel-rapl:1:0/name", "core"),
        ("sys/class/powercap/intel-rapl:1:0/energy_uj", "2500000"),
        (
            "sys/class/powercap/intel-rapl:1:0/max_energy_range_uj",
            "262143328850",
        ),
        ("sys/class/thermal/thermal_zone0/type", "acpitz"),
        ("sys/class/thermal/thermal_zone0/policy", "step_wise"),
        ("sys/class/thermal/thermal_zone0/temp", "27800"),
        ("sys/class/thermal/thermal_zone1/type", "x86_pkg_temp"),
        ("sys/class/thermal/thermal_zone1/policy", "step_wise"),
        ("sys/class/thermal/thermal_zone1/mode", "enabled"),
        ("sys/class/thermal/thermal_zone1/temp", "-1500"),
        ("sys/class/thermal/cooling_device0/type", "Processor"),
        ("sys/class/thermal/cooling_device0/cur_state", "0"),
        ("sys/class/thermal/cooling_device0/max_state", "3"),
        ("sys/class/thermal/cooling_device1/type", "intel_powerclamp"),
        ("sys/class/thermal/cooling_device1/cur_state", "-1"),
        ("sys/class/thermal/cooling_device1/max_state", "50"),
        ("sys/devices/system/edac/mc/mc0/ce_count", "3"),
        ("sys/devices/system/edac/mc/mc0/ue_count", "1"),
        ("sys/devices/system/edac/mc/mc0/ce_noinfo_count", "2"),
        ("sys/devices/system/edac/mc/mc0/ue_noinfo_count", "0"),
        ("sys/devices/system/edac/mc/mc0/csrow0/ce_count", "1"),
        ("sys/devices/system/edac/mc/mc0/csrow0/ue_count", "1"),
        ("sys/class/net/bonding_masters", "bond0"),
        ("sys/class/net/bond0/bonding/slaves", "eth0 eth1"),
        (
            "sys/class/net/bond0/lower_eth0/bonding_slave/mii_status",
            "up",
        ),
        (
            "sys/class/net/bond0/lower_eth1/bonding_slave/mii_status",
            "down",
        ),
        ("sys/class/power_supply/BAT0/type", "Battery"),
        ("sys/class/power_supply/BAT0/status", "Discharging"),
        ("sys/class/power_supply/BAT0/present", "1"),
        ("sys/class/power_supply/BAT0/technology", "Li-ion"),
        ("sys/class/power_supply/BAT0/capacity", "87"),
        ("sys/class/power_supply/BAT0/voltage_now", "12219000"),
        ("sys/class/power_supply/BAT0/energy_full", "41220000"),
        ("sys/class/power_supply/BAT0/energy_now", "35880000"),
        ("sys/class/power_supply/BAT0/manufacturer", "SMP"),
        ("sys/class/power_supply/AC/type", "Mains"),
        ("sys/class/power_supply/AC/online", "0"),
        (
            "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq",
            "1800000",
        ),
        (
            "sys/devices/system/cpu/cpu0/cpufreq/scaling_min_freq",
            "800000",
        ),
        (
            "sys/devices/system/cpu/cpu0/cpufreq/scaling_max_freq",
            "3500000",
        ),
        (
            "sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_min_freq",
            "800000",
        ),
        (
            "sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq",
            "3500000",
        ),
        (
            "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
            "powersave",
        ),
        (
            "sys/devices/system/cpu/cpu0/cpufreq/scaling_available_governors",
            "performance powersave",
        ),
        (
            "sys/devices/system/cpu/cpu0/cpufreq/scaling_driver",
            "intel_pstate",
        ),
        ("sys/devices/system/cpu/cpu0/cpufreq/related_cpus", "0"),
        (
            "sys/devices/system/cpu/cpu0/cpufreq/scaling_setspeed",
            "<unsupported>",
        ),
        (
            "sys/devices/system/cpu/cpu1/cpufreq/scaling_cur_freq",
            "2000000",
        ),
        (
            "sys/devices/system/cpu/cpu1/cpufreq/scaling_min_freq",
            "800000",
        ),
        (
            "sys/devices/system/cpu/cpu1/cpufreq/scaling_max_freq",
            "3500000",
        ),
        (
            "sys/devices/system/cpu/cpu1/cpufreq/scaling_governor",
            "powersave",
        ),
        (
            "sys/devices/system/cpu/cpu1/cpufreq/scaling_available_governors",
            "performance powersave",
        ),
        (
            "sys/devices/system/cpu/cpu1/cpufreq/scaling_driver",
            "intel_pstate",
        ),
        ("sys/devices/system/cpu/cpu1/cpufreq/related_cpus", "1"),
        (
            "sys/devices/system/cpu/cpu1/cpufreq/scaling_setspeed",
            "<unsupported>",
        ),
        (
            "proc/mdstat",
            "Personalities : [raid1] [raid6] [raid5] [raid4]\nmd0 : active raid1 sdb1[1] sda1[0]\n      1046528 blocks super 1.2 [2/2] [UU]\n\nmd1 : active raid5 sdd1[3](F) sdc1[2] sdb2[1] sda2[0]\n      2093056 blocks super 1.2 level 5, 512k chunk, algorithm 2 [3/3] [UUU]\n      [=>...................]  recovery =  8.5% (89024/1046528) finish=0.7min speed=22256K/sec\n\nunused devices: <none>\n",
        ),
        ("sys/class/hwmon/hwmon0/name", "coretemp"),
        ("sys/class/hwmon/hwmon0/temp1_input", "45000"),
        ("sys/class/hwmon/hwmon0/temp1_label", "Package id 0"),
        ("sys/class/hwmon/hwmon0/temp1_crit", "100000"),
        ("sys/class/hwmon/hwmon0/temp1_crit_alarm", "0"),
        ("sys/class/hwmon/hwmon0/temp1_max", "80000"),
        ("sys/class/hwmon/hwmon1/name", "nct6775"),
        ("sys/class/hwmon/hwmon1/fan1_input", "1200"),
        ("sys/class/hwmon/hwmon1/fan1_min", "300"),
        ("sys/class/hwmon/hwmon1/in0_input", "1056"),
        ("sys/class/hwmon/hwmon1/in0_label", "Vcore"),
        ("sys/class/hwmon/hwmon1/pwm1", "128"),
        ("sys/class/hwmon/hwmon1/intrusion0_alarm", "1"),
        ("sys/class/dmi/id/bios_vendor", "American Megatrends Inc."),
        ("sys/class/dmi/id/bios_version", "2.6"),
        ("sys/class/dmi/id/bios_date", "04/12/2023"),
        ("sys/class/dmi/id/sys_vendor", "Supermicro"),
        ("sys/class/dmi/id/product_name", "SYS-5019C-M"),
        ("sys/class/dmi/id/product_serial", "S123"),
        ("sys/class/dmi/id/board_vendor", "Supermicro"),
        ("sys/class/dmi/id/board_name", "X11SCM-F"),
        ("sys/class/dmi/id/chassis_type", "17"),
        ("sys/class/nvme/nvme0/firmware_rev", "1B2QEXM7"),
        (
            "sys/class/nvme/nvme0/model",
            "Samsung SSD 970 PRO 512GB               ",
        ),
        ("sys/class/nvme/nvme0/serial", "S463NF0M123456     "),
        ("sys/class/nvme/nvme0/state", "live"),
        ("sys/class/fc_host/host0/speed", "16 Gbit"),
        ("sys/class/fc_host/host0/port_state", "Online"),
        (
            "sys/class/fc_host/host0/port_type",
            "NPort (fabric via point-to-point)",
        ),
        ("sys/class/fc_host/host0/node_name", "0x2000e0071bce95f2"),
        ("sys/class/fc_host/host0/port_id", "0x000002"),
        ("sys/class/fc_host/host0/port_name", "0x1000e0071bce95f2"),
        ("sys/class/fc_host/host0/fabric_name", "0x0"),
        (
            "sys/class/fc_host/host0/symbolic_name",
            "QLE2742 FW:v8.08.204 DVR:v10.02.00.106-k",
        ),
        ("sys/class/fc_host/host0/supported_classes", "Class 3"),
        (
            "sys/class/fc_host/host0/supported_speeds",
            "4 Gbit, 8 Gbit, 16 Gbit",
        ),
        ("sys/class/fc_host/host0/dev_loss_tmo", "30"),
        (
            "sys/class/fc_host/host0/statistics/dumped_frames",
            "0xffffffffffffffff",
        ),
        ("sys/class/fc_host/host0/statistics/error_frames", "0x0"),
        (
            "sys/class/fc_host/host0/statistics/invalid_crc_count",
            "0x2",
        ),
        ("sys/class/fc_host/host0/statistics/rx_frames", "0x3b"),
        ("sys/class/fc_host/host0/statistics/rx_words", "0x100"),
        ("sys/class/fc_host/host0/statistics/tx_frames", "0x41"),
        ("sys/class/fc_host/host0/statistics/tx_words", "0x200"),
        (
            "sys/class/fc_host/host0/statistics/seconds_since_last_reset",
            "0x6d",
        ),
        (
            "sys/class/fc_host/host0/statistics/link_failure_count",
            "0x9",
        ),
        (
            "sys/class/fc_host/host0/statistics/loss_of_sync_count",
            "0x10",
        ),
        (
            "sys/class/fc_host/host0/statistics/loss_of_signal_count",
            "0x11",
        ),
        ("sys/class/fc_host/host0/statistics/nos_count", "0x12"),
        (
            "sys/class/fc_host/host0/statistics/fcp_packet_aborts",
            "0x13",
        ),
        ("sys/class/fc_host/host0/statistics/lip_count", "0x14"),
        ("sys/class/infiniband/mlx5_0/board_id", "MT_0000000010"),
        ("sys/class/infiniband/mlx5_0/fw_ver", "16.26.1040"),
        ("sys/class/infiniband/mlx5_0/hca_type", "MT4119"),
        ("sys/class/infiniband/mlx5_0/ports/1/state", "4: ACTIVE"),
        (
            "sys/class/infiniband/mlx5_0/ports/1/phys_state",
            "5: LinkUp",
        ),
        (
            "sys/class/infiniband/mlx5_0/ports/1/rate",
            "100 Gb/sec (4X EDR)",
        ),
        (
            "sys/class/infiniband/mlx5_0/ports/1/counters/port_rcv_data",
            "2221223609",
        ),
        (
            "sys/class/infiniband/mlx5_0/ports/1/counters/port_xmit_data",
            "26317850",
        ),
        (
            "sys/class/infiniband/mlx5_0/ports/1/counters/port_rcv_packets",
            "0x10",
        ),
        (
            "sys/class/infiniband/mlx5_0/ports/1/counters/link_downed",
            "1",
        ),
        (
            "sys/class/infiniband/mlx5_0/ports/1/counters/symbol_error",
            "0",
        ),
        (
            "sys/class/infiniband/mlx5_0/ports/1/counters/VL15_dropped",
            "N/A (no PMA)",
        ),
        (
            "sys/class/infiniband/mlx5_0/ports/1/counters_ext/port_rcv_data_64",
            "100",
        ),
        (
            "sys/class/infiniband/mlx5_0/ports/1/counters_ext/port_xmit_packets_64",
            "7",
        ),
        ("sys/class/scsi_tape/st0/stats/in_flight", "1"),
        ("sys/class/scsi_tape/st0/stats/io_ns", "9247011087720"),
        ("sys/class/scsi_tape/st0/stats/other_cnt", "1409"),
        ("sys/class/scsi_tape/st0/stats/read_byte_cnt", "979383912"),
        ("sys/class/scsi_tape/st0/stats/read_cnt", "3741"),
        ("sys/class/scsi_tape/st0/stats/read_ns", "33788355744"),
        ("sys/class/scsi_tape/st0/stats/resid_cnt", "19"),
        (
            "sys/class/scsi_tape/st0/stats/write_byte_cnt",
            "1496246784000",
        ),
        ("sys/class/scsi_tape/st0/stats/write_cnt", "53772916"),
        ("sys/class/scsi_tape/st0/stats/write_ns", "5650114400531"),
        ("sys/class/scsi_tape/nst0/stats/in_flight", "1"),
        (
            "sys/devices/system/cpu/cpu0/topology/physical_package_id",
            "0",
        ),
        ("sys/devices/system/cpu/cpu0/topology/core_id", "0"),
        (
            "sys/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count",
            "5",
        ),
        (
            "sys/devices/system/cpu/cpu0/thermal_throttle/package_throttle_count",
            "30",
        ),
        (
            "sys/devices/system/cpu/cpu1/topology/physical_package_id",
            "0",
        ),
        ("sys/devices/system/cpu/cpu1/topology/core_id", "1"),
        (
            "sys/devices/system/cpu/cpu1/thermal_throttle/core_throttle_count",
            "0",
        ),
        (
            "sys/devices/system/cpu/cpu1/thermal_throttle/package_throttle_count",
            "30",
        ),
        (
            "proc/stat",
            "cpu  200 0 100 3000 10 0 5 0 0 0\ncpu0 100 0 50 1500 5 0 3 0 0 0\ncpu1 100 0 50 1500 5 0 2 0 0 0\nintr 1000 0\nctxt 5000\nbtime 1700000000\nprocesses 900\nprocs_running 1\nprocs_blocked 0\nsoftirq 10 0 1 2 3 4 0 0 0 0 0\n",
        ),
        (
            "proc/net/ip_vs_stats",
            "   Total Incoming Outgoing         Incoming         Outgoing\n   Conns  Packets  Packets            Bytes            Bytes\n      16AA370 E33656E5        0    51D8C8883AB3        0\n\n Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s\n       4 1FB3C           0          1282A8F                0\n",
        ),
        (
            "proc/net/ip_vs",
            "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\nTCP  C0A80016:0CEA wlc\n  -> C0A85216:0CEA      Tunnel  100    248        2\n  -> C0A85215:0CEA      Tunnel  100    248        1\nTCP  [2620:0000:0000:0000:0000:0000:0000:0001]:0050 sed\n  -> [2620:0000:0000:0000:0000:0000:0000:0002]:0050      Route   1      0          0\nFWM  10001000 wlc\n  -> C0A8321A:0CEA      Route   0      0          1\n",
        ),
    ];
    for (file, text) in files {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("{text}\n")).unwrap();
    }
}

#[test]
fn hardware_collectors_read_a_bare_metal_tree_as_node_exporter_does() {
    let tree = tempfile::tempdir().unwrap();
    write_bare_metal_tree(tree.path());
    let (procfs, sysfs) = (tree.path().join("proc"), tree.path().join("sys"));
    let collectors = [
        "rapl",
        "nvme",
        "fibrechannel",
        "infiniband",
        "tapestats",
        "ipvs",
        "cpu",
        "thermal_zone",
        "edac",
        "mdadm",
        "bonding",
        "powersupplyclass",
        "cpufreq",
        "hwmon",
        "dmi",
    ];
    let mut flags = vec![
        format!("--path.procfs={}", procfs.display()),
        format!("--path.sysfs={}", sysfs.display()),
        "--collector.disable-defaults".to_string(),
    ];
    flags.extend(collectors.iter().map(|name| format!("--collector.{name}")));
    let node_exporter = NodeExporter::start_with(&flags);
    let collector = Collector::start();
    let name = "e2e-bare-metal";
    let agent = Agent::start_for_with(
        name,
        &collector,
        &format!(
            "paths:\n  procfs: {}\n  sysfs: {}\n",
            procfs.display(),
            sysfs.display()
        ),
    );
    wait_for_two_batches(&collector, &agent, name);
    let ours = Exposition::parse(&collector.metrics(), Some(name));
    let response = countywatch_e2e::http::get(node_exporter.addr, "/metrics").unwrap();
    let theirs = Exposition::parse(&response.body, None);

    for collector in collectors {
        let key = (
            "node_scrape_collector_success".to_string(),
            BTreeMap::from([("collector".to_string(), collector.to_string())]),
        );
        assert_eq!(
            theirs.series.get(&key),
            Some(&1.0),
            "node_exporter's {collector}"
        );
        assert_eq!(ours.series.get(&key), Some(&1.0), "the agent's {collector}");
    }
    let fixture_series =
        |exposition: &Exposition| -> BTreeMap<(String, BTreeMap<String, String>), f64> {
            exposition
                .series
                .iter()
                .filter(|((family, _), _)| {
                    FIXTURE_FAMILIES
                        .iter()
                        .any(|prefix| family.starts_with(prefix))
                })
                .map(|(key, value)| (key.clone(), *value))
                .collect()
        };
    let (our_series, their_series) = (fixture_series(&ours), fixture_series(&theirs));
    for prefix in FIXTURE_FAMILIES {
        assert!(
            their_series
                .keys()
                .any(|(family, _)| family.starts_with(prefix)),
            "node_exporter serves no {prefix} from the tree"
        );
    }
    let only_theirs: Vec<_> = their_series
        .iter()
        .filter(|(key, value)| our_series.get(*key) != Some(*value))
        .collect();
    let only_ours: Vec<_> = our_series
        .iter()
        .filter(|(key, value)| their_series.get(*key) != Some(*value))
        .collect();
    assert!(
        only_theirs.is_empty() && only_ours.is_empty(),
        "node_exporter's series the agent lacks or differs on:\n{only_theirs:#?}\nthe agent's that node_exporter lacks or differs on:\n{only_ours:#?}"
    );
    println!(
        "{} series of {} families agree in value, type and help",
        their_series.len(),
        their_series
            .keys()
            .map(|(family, _)| family)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    );
    for (family, _) in their_series.keys() {
        assert_eq!(
            ours.types.get(family),
            theirs.types.get(family),
            "{family} type"
        );
        assert_eq!(
            ours.helps.get(family),
            theirs.helps.get(family),
            "{family} help"
        );
    }
}

/// The collectors whose sources this machine lacks, checked on the fixture
/// trees in tests/data/node-fixtures instead, with their families' prefix.
const FIXTURE_COLLECTORS: [(&str, &str); 7] = [
    ("nfs", "node_nfs_"),
    ("nfsd", "node_nfsd_"),
    // Its udev families: an ATA disk and an LVM volume holding ext4.
    ("diskstats", "node_disk_"),
    ("xfs", "node_xfs_"),
    ("btrfs", "node_btrfs_"),
    ("bcache", "node_bcache_"),
    ("zfs", "node_zfs_"),
];

#[test]
fn nfs_nfsd_diskstats_xfs_btrfs_bcache_and_zfs_serve_node_exporters_series_from_the_same_fixture_trees()
 {
    same_series_on_fixture_tree("node-fixtures", &FIXTURE_COLLECTORS);
}

#[test]
fn nfs_and_nfsd_serve_node_exporters_series_from_a_3_10_kernels_files() {
    // CentOS 7's: a proc2 line, 45 NFSv4 client procedures padded with
    // zeros, the server's read-ahead cache line.
    same_series_on_fixture_tree("node-fixtures-3.10", &FIXTURE_COLLECTORS[..2]);
}

/// Points node_exporter (with only `collectors` on) and an agent at the
/// procfs, sysfs and udev database under tests/data/`tree`, and requires
/// the same series, help, types and values of those collectors from both,
/// each reporting success.
fn same_series_on_fixture_tree(tree: &str, collectors: &[(&str, &str)]) {
    let agent_name = format!("e2e-{tree}");
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(tree);
    let (procfs, sysfs, udev) = (
        fixtures.join("proc"),
        fixtures.join("sys"),
        fixtures.join("udev"),
    );
    let collector = Collector::start();
    let agent = countywatch_e2e::Agent::start_for_with(
        &agent_name,
        &collector,
        &format!(
            "paths:\n  procfs: {}\n  sysfs: {}\n  udev_data: {}\n",
            procfs.display(),
            sysfs.display(),
            udev.display()
        ),
    );
    let mut flags = vec![
        format!("--path.procfs={}", procfs.display()),
        format!("--path.sysfs={}", sysfs.display()),
        format!("--path.udev.data={}", udev.display()),
        "--collector.disable-defaults".to_string(),
    ];
    flags.extend(
        collectors
            .iter()
            .map(|(name, _)| format!("--collector.{name}")),
    );
    let node_exporter = NodeExporter::start_with(&flags);
    let response = countywatch_e2e::http::get(node_exporter.addr, "/metrics").unwrap();
    assert_eq!(response.status, 200);
    let theirs = Exposition::parse(&response.body, None);
    wait_for_two_batches(&collector, &agent, &agent_name);
    let ours = Exposition::parse(&collector.metrics(), Some(&agent_name));

    let mut problems = Vec::new();
    for &(collector_name, prefix) in collectors {
        let pick = |exposition: &Exposition| -> BTreeMap<(String, BTreeMap<String, String>), f64> {
            exposition
                .series
                .iter()
                .filter(|((name, _), _)| name.starts_with(prefix))
                .map(|(key, value)| (key.clone(), *value))
                .collect()
        };
        let (their_series, our_series) = (pick(&theirs), pick(&ours));
        assert!(
            !their_series.is_empty(),
            "node_exporter served no {prefix} series from the fixtures"
        );
        for (key, value) in &their_series {
            match our_series.get(key) {
                None => problems.push(format!("{key:?}: not served by the agent")),
                // Equal but for the last bit: the agent's figures reach the
                // collector's /metrics one rounding away (1722.311 where
                // node_exporter writes 1722.3110000000001).
                Some(ours)
                    if (ours - value).abs() > 1e-12 * ours.abs().max(value.abs())
                        && !(ours.is_nan() && value.is_nan()) =>
                {
                    problems.push(format!("{key:?}: agent {ours}, node_exporter {value}"))
                }
                Some(_) => {}
            }
            if theirs.helps.get(&key.0) != ours.helps.get(&key.0) {
                problems.push(format!(
                    "{}: help {:?}, node_exporter's {:?}",
                    key.0,
                    ours.helps.get(&key.0),
                    theirs.helps.get(&key.0)
                ));
            }
            if theirs.types.get(&key.0) != ours.types.get(&key.0) {
                problems.push(format!(
                    "{}: type {:?}, node_exporter's {:?}",
                    key.0,
                    ours.types.get(&key.0),
                    theirs.types.get(&key.0)
                ));
            }
        }
        for key in our_series.keys() {
            if !their_series.contains_key(key) {
                problems.push(format!("{key:?}: served by the agent only"));
            }
        }
        let success = |exposition: &Exposition| {
            let labels = BTreeMap::from([("collector".to_string(), collector_name.to_string())]);
            exposition
                .series
                .get(&("node_scrape_collector_success".to_string(), labels))
                .copied()
        };
        if success(&theirs) != Some(1.0) || success(&ours) != Some(1.0) {
            problems.push(format!(
                "{collector_name}: success agent {:?}, node_exporter {:?}",
                success(&ours),
                success(&theirs)
            ));
        }
    }
    problems.dedup();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
