//! The schedstat collector: per-CPU scheduler time from /proc/schedstat,
//! as node_exporter 1.5 serves it: seconds spent running tasks, seconds
//! tasks spent waiting for the CPU (the run-queue latency behind "CPU
//! saturation" panels) and timeslices, each `..._total{cpu}`.
//!
//! Kernels built without CONFIG_SCHEDSTATS have no /proc/schedstat: the
//! collector is absent there, as in node_exporter, and does not look again.

use std::path::Path;

use countywatch_wire::{MetricFamily, MetricKind};

use super::file_probe::FileProbe;

/// The probe reading `<procfs>/schedstat`.
pub fn probe(procfs: &Path, _sysfs: &Path) -> FileProbe {
    FileProbe::new("schedstat", vec![procfs.join("schedstat")], |texts| {
        Ok(parse(texts[0].as_deref().unwrap_or_default()))
    })
}

/// Each `cpuN` line has nine counters; the last three are the time spent
/// running and waiting (nanoseconds since CFS, whatever the kernel's
/// documentation says about jiffies) and the timeslices run. Lines that
/// are not `cpuN` followed by nine numbers (the version, the timestamp,
/// the scheduling domains) are skipped, as node_exporter skips them.
pub fn parse(text: &str) -> Vec<MetricFamily> {
    let mut running = MetricFamily::new(
        "node_schedstat_running_seconds_total",
        "Number of seconds CPU spent running a process.",
        MetricKind::Counter,
    );
    let mut waiting = MetricFamily::new(
        "node_schedstat_waiting_seconds_total",
        "Number of seconds spent by processing waiting for this CPU.",
        MetricKind::Counter,
    );
    let mut timeslices = MetricFamily::new(
        "node_schedstat_timeslices_total",
        "Number of timeslices executed by CPU.",
        MetricKind::Counter,
    );
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(cpu) = fields
            .next()
            .and_then(|first| first.strip_prefix("cpu"))
            .filter(|cpu| !cpu.is_empty() && cpu.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let numbers: Vec<u64> = fields.map_while(|field| field.parse().ok()).collect();
        if numbers.len() < 9 {
            continue;
        }
        let labels = [("cpu", cpu)];
        running.push(&labels, numbers[6] as f64 / 1e9);
        waiting.push(&labels, numbers[7] as f64 / 1e9);
        timeslices.push(&labels, numbers[8] as f64);
    }
    vec![running, waiting, timeslices]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lines_and_nothing_else() {
        // Version 15 (kernels 4.x to 6.x): a domain line under each CPU.
        let text = "version 15
timestamp 4297299139
cpu0 0 0 0 0 0 0 2501449390617 140234567891 812345
domain0 00000000,00000003 212 211 0 0 0 0 0 211 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
cpu1 0 0 0 0 0 0 2479612053 9200000000 44
cpu2 0 0 0
";
        let families = parse(text);
        assert_eq!(families[0].name, "node_schedstat_running_seconds_total");
        let running: Vec<(&str, f64)> = families[0]
            .samples
            .iter()
            .map(|sample| (sample.labels[0].1.as_ref(), sample.value))
            .collect();
        assert_eq!(running, vec![("0", 2501.449390617), ("1", 2.479612053)]);
        assert_eq!(families[1].samples[1].value, 9.2);
        assert_eq!(families[2].samples[0].value, 812345.0);
        assert_eq!(families[2].kind, MetricKind::Counter);
    }
}
