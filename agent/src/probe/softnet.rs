//! The softnet collector: /proc/net/softnet_stat as node_exporter serves
//! it, per CPU: packets processed, dropped (the backlog was full) and
//! times the softirq ran out of quota (`node_softnet_*_total{cpu}`).

use std::path::Path;

use countywatch_wire::{MetricFamily, MetricKind};

use super::file_probe::FileProbe;
use super::parse_error::ProbeParseError;

/// The probe reading `<procfs>/net/softnet_stat`.
pub fn probe(procfs: &Path, _sysfs: &Path) -> FileProbe {
    FileProbe::new("softnet", vec![procfs.join("net/softnet_stat")], |texts| {
        parse(texts[0].as_deref().unwrap_or_default())
    })
}

/// One line of hex columns per CPU: processed, dropped, time_squeezed
/// first. The `cpu` label is the line's index, as node_exporter 1.5 sets
/// it (later kernels add the CPU id as a column; 1.5 does not read it).
pub fn parse(text: &str) -> Result<Vec<MetricFamily>, ProbeParseError> {
    let mut processed = MetricFamily::new(
        "node_softnet_processed_total",
        "Number of processed packets",
        MetricKind::Counter,
    );
    let mut dropped = MetricFamily::new(
        "node_softnet_dropped_total",
        "Number of dropped packets",
        MetricKind::Counter,
    );
    let mut squeezed = MetricFamily::new(
        "node_softnet_times_squeezed_total",
        "Number of times processing packets ran out of quota",
        MetricKind::Counter,
    );
    for (cpu, line) in text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
    {
        let columns = line
            .split_whitespace()
            .take(3)
            .map(|column| u64::from_str_radix(column, 16).map(|value| value as f64))
            .collect::<Result<Vec<f64>, _>>()
            .map_err(|_| ProbeParseError::line("invalid line", line))?;
        let [processed_value, dropped_value, squeezed_value] = columns[..] else {
            return Err(ProbeParseError::line("fewer than 3 columns in", line));
        };
        let cpu = cpu.to_string();
        let labels = [("cpu", cpu.as_str())];
        processed.push(&labels, processed_value);
        dropped.push(&labels, dropped_value);
        squeezed.push(&labels, squeezed_value);
    }
    Ok(vec![processed, dropped, squeezed])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_cpu_hex_counters() {
        // 6.1 lines have 13 columns; a 3.10 kernel's have 10. Only the
        // first three are read.
        let text = "00000013 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n\
00000ceb 00000002 0000000a 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n";
        let families = parse(text).unwrap();
        assert_eq!(families[0].name, "node_softnet_processed_total");
        assert_eq!(families[0].samples[0].value, 19.0);
        assert_eq!(families[0].samples[1].value, 3307.0);
        assert_eq!(families[0].samples[1].labels[0].1, "1");
        assert_eq!(families[1].samples[1].value, 2.0);
        assert_eq!(families[2].samples[1].value, 10.0);
        assert!(parse("zz 1 2\n").is_err());
        assert!(parse("1 2\n").is_err());
    }
}
