//! The cpu probe: /proc/stat as node_exporter's cpu and stat collectors
//! report it: `node_cpu_seconds_total{cpu,mode}`, `node_boot_time_seconds`,
//! `node_context_switches_total`, `node_intr_total`, `node_forks_total`,
//! `node_procs_running`, `node_procs_blocked`.
//!
//! On Intel bare metal it also serves the collector's thermal throttle
//! counters ([`super::cpu_throttle`]).
//!
//! Values are the kernel's counters since boot (not deltas), converted from
//! clock ticks to seconds, so `rate()` in PromQL works as with node_exporter.

use std::path::{Path, PathBuf};

use countywatch_wire::{MetricFamily, MetricKind};

use super::kept_files::KeptFiles;
use super::cpu_throttle::ThermalThrottle;
use super::parse_error::ProbeParseError;
use super::{Probe, ProbeError};

/// The modes of a `cpu` line, in the kernel's column order. Guest time is
/// already included in user and nice, so node_exporter reports it apart,
/// in `node_cpu_guest_seconds_total`, and never in `node_cpu_seconds_total`.
const MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

/// Reads `<procfs>/stat`.
pub struct CpuProbe {
    /// procfs root, `/proc` unless configured.
    procfs: PathBuf,
    /// Clock ticks per second (USER_HZ), read once.
    ticks_per_second: f64,
    /// The thermal throttle counters under sysfs.
    throttle: ThermalThrottle,
    /// The files read each collection, kept open (`kept_files`).
    kept: KeptFiles,
}

impl CpuProbe {
    /// A probe reading under `procfs` and `sysfs`.
    pub fn new(procfs: PathBuf, sysfs: &Path) -> Self {
        let ticks = rustix::param::clock_ticks_per_second();
        CpuProbe {
            procfs,
            ticks_per_second: if ticks == 0 { 100.0 } else { ticks as f64 },
            throttle: ThermalThrottle::new(sysfs),
            kept: KeptFiles::default(),
        }
    }
}

impl Probe for CpuProbe {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["cpu", "stat"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let (path, text) = self.kept.read_file(self.procfs.join("stat"))?;
        let families = parse(&text, self.ticks_per_second);
        if families.is_empty() {
            return Err(ProbeError::Parse {
                path,
                source: ProbeParseError::Malformed("no per-CPU lines found"),
            });
        }
        out.extend(families);
        self.throttle.collect(out);
        Ok(())
    }
}

/// Turns /proc/stat text into metric families.
pub fn parse(text: &str, ticks_per_second: f64) -> Vec<MetricFamily> {
    let mut cpu_seconds = MetricFamily::new(
        "node_cpu_seconds_total",
        "Seconds the CPUs spent in each mode.",
        MetricKind::Counter,
    );
    let mut guest_seconds = MetricFamily::new(
        "node_cpu_guest_seconds_total",
        "Seconds the CPUs spent in guests (VMs) for each mode.",
        MetricKind::Counter,
    );
    let mut singles = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(key) = fields.next() else {
            continue;
        };
        if let Some(index) = key.strip_prefix("cpu") {
            // The aggregate "cpu" line is not reported, as in node_exporter.
            if index.is_empty() || index.parse::<u32>().is_err() {
                continue;
            }
            let values: Vec<f64> = fields.map_while(|value| value.parse().ok()).collect();
            for (mode, ticks) in MODES.iter().zip(&values) {
                cpu_seconds.push(&[("cpu", index), ("mode", mode)], ticks / ticks_per_second);
            }
            // Columns 9 and 10: guest and guest_nice (kernels since 2.6.33).
            for (mode, ticks) in ["user", "nice"].iter().zip(values.iter().skip(MODES.len())) {
                guest_seconds.push(&[("cpu", index), ("mode", mode)], ticks / ticks_per_second);
            }
            continue;
        }
        let (name, help, kind) = match key {
            "ctxt" => (
                "node_context_switches_total",
                "Total number of context switches.",
                MetricKind::Counter,
            ),
            "intr" => (
                "node_intr_total",
                "Total number of interrupts serviced.",
                MetricKind::Counter,
            ),
            "processes" => (
                "node_forks_total",
                "Total number of forks.",
                MetricKind::Counter,
            ),
            "btime" => (
                "node_boot_time_seconds",
                "Node boot time, in unixtime.",
                MetricKind::Gauge,
            ),
            "procs_running" => (
                "node_procs_running",
                "Number of processes in runnable state.",
                MetricKind::Gauge,
            ),
            "procs_blocked" => (
                "node_procs_blocked",
                "Number of processes blocked waiting for I/O to complete.",
                MetricKind::Gauge,
            ),
            _ => continue,
        };
        if let Some(Ok(value)) = fields.next().map(str::parse::<f64>) {
            singles.push(MetricFamily::single(name, help, kind, value));
        }
    }
    if cpu_seconds.samples.is_empty() {
        return Vec::new();
    }
    let mut families = vec![cpu_seconds];
    if !guest_seconds.samples.is_empty() {
        families.push(guest_seconds);
    }
    families.extend(singles);
    families
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  10 20 30 40 50 60 70 80 90 100\n\
cpu0 100 0 200 300 4 5 6 7\n\
cpu1 1 2 3 4 5 6 7 8 9 10\n\
intr 12345 1 2 3\n\
ctxt 999\n\
btime 1700000000\n\
processes 4242\n\
procs_running 3\n\
procs_blocked 1\n\
softirq 1 2 3\n";

    #[test]
    fn counters_and_seconds_follow_node_exporter() {
        let families = parse(STAT, 100.0);
        let cpu = &families[0];
        assert_eq!(cpu.name, "node_cpu_seconds_total");
        assert_eq!(cpu.samples.len(), 16);
        assert_eq!(
            cpu.samples[0].owned_labels(),
            vec![
                ("cpu".to_string(), "0".to_string()),
                ("mode".to_string(), "user".to_string())
            ]
        );
        assert_eq!(cpu.samples[0].value, 1.0);
        assert_eq!(cpu.samples[3].value, 3.0);
        let guest = &families[1];
        assert_eq!(guest.name, "node_cpu_guest_seconds_total");
        assert_eq!(guest.samples.len(), 2, "cpu0 has no guest columns");
        assert_eq!(guest.samples[0].labels[0].1, "1");
        assert_eq!(guest.samples[1].value, 0.1);
        let singles: Vec<(&str, f64)> = families[2..]
            .iter()
            .map(|family| (family.name.as_ref(), family.samples[0].value))
            .collect();
        assert_eq!(
            singles,
            vec![
                ("node_intr_total", 12345.0),
                ("node_context_switches_total", 999.0),
                ("node_boot_time_seconds", 1700000000.0),
                ("node_forks_total", 4242.0),
                ("node_procs_running", 3.0),
                ("node_procs_blocked", 1.0),
            ]
        );
    }

    #[test]
    fn garbage_yields_nothing() {
        assert!(parse("\u{0}\u{1}cpuX 1 2\nnonsense\n", 100.0).is_empty());
    }
}
