//! The udp_queues collector: bytes queued in the kernel for UDP sockets,
//! summed over /proc/net/udp and udp6, as node_exporter serves them
//! (`node_udp_queues{ip="v4",queue="rx"}`). A receive queue that grows is
//! a syslog or DNS daemon falling behind.

use std::path::Path;

use countywatch_wire::{MetricFamily, MetricKind};

use super::file_probe::FileProbe;
use super::parse_error::ProbeParseError;

/// The probe reading both tables (udp6 is absent without IPv6).
pub fn probe(procfs: &Path, _sysfs: &Path) -> FileProbe {
    FileProbe::new(
        "udp_queues",
        vec![procfs.join("net/udp"), procfs.join("net/udp6")],
        |texts| {
            let mut family = MetricFamily::new(
                "node_udp_queues",
                "Number of allocated memory in the kernel for UDP datagrams in bytes.",
                MetricKind::Gauge,
            );
            for (ip, text) in ["v4", "v6"].into_iter().zip(texts) {
                if let Some(text) = text {
                    let [tx, rx] = parse(text)?;
                    family.push(&[("ip", ip), ("queue", "tx")], tx);
                    family.push(&[("ip", ip), ("queue", "rx")], rx);
                }
            }
            Ok(vec![family])
        },
    )
}

/// Sums the `tx_queue:rx_queue` column (hex) of a /proc/net/udp table.
pub fn parse(text: &str) -> Result<[f64; 2], ProbeParseError> {
    let mut sums = [0.0; 2];
    for line in text.lines().skip(1).filter(|line| !line.trim().is_empty()) {
        let queues = line
            .split_whitespace()
            .nth(4)
            .ok_or_else(|| ProbeParseError::line("short line", line))?;
        let (tx, rx) = queues
            .split_once(':')
            .ok_or_else(|| ProbeParseError::value("invalid queues", queues))?;
        for (sum, value) in sums.iter_mut().zip([tx, rx]) {
            *sum += u64::from_str_radix(value, 16)
                .map_err(|_| ProbeParseError::value("invalid queue length", value))?
                as f64;
        }
    }
    Ok(sums)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_summed_over_sockets() {
        let text = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
  120: 00000000:0202 00000000:0000 07 00000000:00000a00 00:00000000 00000000     0        0 20123 2 0000000000000000 0\n\
  121: 0100007F:0035 00000000:0000 07 00000010:00000100 00:00000000 00000000     0        0 20124 2 0000000000000000 0\n";
        assert_eq!(parse(text).unwrap(), [16.0, 2816.0]);
        assert_eq!(parse("header\n").unwrap(), [0.0, 0.0]);
        assert!(parse("h\n 1: a b c\n").is_err());
    }
}
