//! The network probe: per-interface counters from /proc/net/dev, named as
//! node_exporter's netdev collector names them
//! (`node_network_receive_bytes_total{device}` and its siblings).

use std::path::PathBuf;

use countywatch_wire::{MetricFamily, MetricKind};

use super::{Probe, ProbeError, read_file};

/// The columns of /proc/net/dev after the interface name, in order.
const COLUMNS: [&str; 16] = [
    "receive_bytes",
    "receive_packets",
    "receive_errs",
    "receive_drop",
    "receive_fifo",
    "receive_frame",
    "receive_compressed",
    "receive_multicast",
    "transmit_bytes",
    "transmit_packets",
    "transmit_errs",
    "transmit_drop",
    "transmit_fifo",
    "transmit_colls",
    "transmit_carrier",
    "transmit_compressed",
];

/// Reads `<procfs>/net/dev`.
pub struct NetworkProbe {
    /// procfs root, `/proc` unless configured.
    procfs: PathBuf,
}

impl NetworkProbe {
    /// A probe reading under `procfs`.
    pub fn new(procfs: PathBuf) -> Self {
        NetworkProbe { procfs }
    }
}

impl Probe for NetworkProbe {
    fn name(&self) -> &'static str {
        "network"
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let (_, text) = read_file(self.procfs.join("net/dev"))?;
        out.extend(parse(&text));
        Ok(())
    }
}

/// Turns /proc/net/dev text into one counter family per column.
pub fn parse(text: &str) -> Vec<MetricFamily> {
    let mut families: Vec<MetricFamily> = COLUMNS
        .iter()
        .map(|column| {
            let (direction, what) = column.split_once('_').unwrap_or((column, ""));
            MetricFamily::new(
                format!("node_network_{column}_total"),
                format!("Network device statistic {direction}_{what}."),
                MetricKind::Counter,
            )
        })
        .collect();
    // The first two lines are headers; a data line is "  eth0: 1 2 3 ...".
    for line in text.lines().skip(2) {
        let Some((device, counters)) = line.split_once(':') else {
            continue;
        };
        let device = device.trim();
        if device.is_empty() {
            continue;
        }
        let values: Vec<f64> = counters
            .split_whitespace()
            .map_while(|value| value.parse::<f64>().ok())
            .collect();
        if values.len() != COLUMNS.len() {
            continue;
        }
        for (family, value) in families.iter_mut().zip(values) {
            family.push(&[("device", device)], value);
        }
    }
    families.retain(|family| !family.samples.is_empty());
    families
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_net_dev() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0\n  \
eth0: 2000 20 1 2 0 0 0 3 4000 40 5 6 0 7 0 0\n broken: 1 2\n";
        let families = parse(text);
        assert_eq!(families.len(), 16);
        assert_eq!(families[0].name, "node_network_receive_bytes_total");
        assert_eq!(families[0].help, "Network device statistic receive_bytes.");
        let eth0 = &families[0].samples[1];
        assert_eq!(
            eth0.labels,
            vec![("device".to_string(), "eth0".to_string())]
        );
        assert_eq!(eth0.value, 2000.0);
        assert_eq!(families[2].name, "node_network_receive_errs_total");
        assert_eq!(families[2].samples[1].value, 1.0);
        assert_eq!(families[13].name, "node_network_transmit_colls_total");
        assert_eq!(families[13].samples[1].value, 7.0);
    }
}
