//! The arp collector: neighbour entries per device from /proc/net/arp, as
//! node_exporter serves them (`node_arp_entries{device}`).

use std::collections::BTreeMap;
use std::path::Path;

use countywatch_wire::{MetricFamily, MetricKind};

use super::file_probe::FileProbe;
use super::parse_error::ProbeParseError;

/// The probe reading `<procfs>/net/arp`.
pub fn probe(procfs: &Path, _sysfs: &Path) -> FileProbe {
    FileProbe::new("arp", vec![procfs.join("net/arp")], |texts| {
        parse(texts[0].as_deref().unwrap_or_default())
    })
}

/// Counts the table's rows by their last column (the device).
pub fn parse(text: &str) -> Result<Vec<MetricFamily>, ProbeParseError> {
    let mut counts: BTreeMap<&str, f64> = BTreeMap::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let columns: Vec<&str> = line.split_whitespace().collect();
        if columns.len() < 6 {
            return Err(ProbeParseError::Malformed("unexpected ARP table format"));
        }
        if columns[0] != "IP" {
            *counts.entry(columns[columns.len() - 1]).or_default() += 1.0;
        }
    }
    let mut entries = MetricFamily::new(
        "node_arp_entries",
        "ARP entries by device",
        MetricKind::Gauge,
    );
    for (device, count) in counts {
        entries.push(&[("device", device)], count);
    }
    Ok(vec![entries])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_by_device() {
        let text = "IP address       HW type     Flags       HW address            Mask     Device\n\
192.0.2.1        0x1         0x2         02:fc:00:00:00:05     *        eth0\n\
192.0.2.7        0x1         0x0         00:00:00:00:00:00     *        eth0\n\
198.51.100.1     0x1         0x2         02:fc:00:00:00:06     *        br-lan\n";
        let family = &parse(text).unwrap()[0];
        let got: Vec<(&str, f64)> = family
            .samples
            .iter()
            .map(|sample| (sample.labels[0].1.as_ref(), sample.value))
            .collect();
        assert_eq!(got, vec![("br-lan", 1.0), ("eth0", 2.0)]);
        assert!(parse("1 2 3\n").is_err());
    }
}
