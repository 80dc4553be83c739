//! The infiniband collector: InfiniBand (and RoCE) adapters under
//! /sys/class/infiniband (kernel documentation
//! `ABI/stable/sysfs-class-infiniband`), as node_exporter 1.5 serves them:
//! `node_infiniband_info{device,board_id,firmware_version,hca_type}`, per
//! port `node_infiniband_state_id`, `..._physical_state_id` and
//! `..._rate_bytes_per_second` (`{device,port}`), and a counter family per
//! port counter in `counters/` and the legacy `counters_ext/`. The data
//! counters count 32-bit words per lane, so node_exporter (and the agent)
//! multiply them by 4 to give bytes; a counter the adapter cannot give
//! (`N/A (no PMA)`) is left out.
//!
//! A host without InfiniBand reports the collector as failed, as
//! node_exporter does, and is not looked at again.

use std::path::Path;

use countywatch_wire::{MetricFamily, MetricKind};

use super::parse_error::ProbeParseError;
use super::sysfs_class::{ClassDir, is_unreadable_attribute, list, parse_unsigned, read_text};
use super::{Probe, ProbeError, read_file};

/// A port counter: its directory, its file, the family's name after
/// `node_infiniband_`, its help, and whether it counts 4-byte words.
type CounterFile = (&'static str, &'static str, &'static str, &'static str, bool);

/// The counters node_exporter serves, in its order.
const COUNTERS: [CounterFile; 30] = [
    (
        "counters_ext",
        "port_multicast_rcv_packets",
        "legacy_multicast_packets_received_total",
        "Number of multicast packets received",
        false,
    ),
    (
        "counters_ext",
        "port_multicast_xmit_packets",
        "legacy_multicast_packets_transmitted_total",
        "Number of multicast packets transmitted",
        false,
    ),
    (
        "counters_ext",
        "port_rcv_data_64",
        "legacy_data_received_bytes_total",
        "Number of data octets received on all links",
        true,
    ),
    (
        "counters_ext",
        "port_rcv_packets_64",
        "legacy_packets_received_total",
        "Number of data packets received on all links",
        false,
    ),
    (
        "counters_ext",
        "port_unicast_rcv_packets",
        "legacy_unicast_packets_received_total",
        "Number of unicast packets received",
        false,
    ),
    (
        "counters_ext",
        "port_unicast_xmit_packets",
        "legacy_unicast_packets_transmitted_total",
        "Number of unicast packets transmitted",
        false,
    ),
    (
        "counters_ext",
        "port_xmit_data_64",
        "legacy_data_transmitted_bytes_total",
        "Number of data octets transmitted on all links",
        true,
    ),
    (
        "counters_ext",
        "port_xmit_packets_64",
        "legacy_packets_transmitted_total",
        // node_exporter's help says "received" here too.
        "Number of data packets received on all links",
        false,
    ),
    (
        "counters",
        "excessive_buffer_overrun_errors",
        "excessive_buffer_overrun_errors_total",
        "Number of times that OverrunErrors consecutive flow control update periods occurred, each having at least one overrun error.",
        false,
    ),
    (
        "counters",
        "link_downed",
        "link_downed_total",
        "Number of times the link failed to recover from an error state and went down",
        false,
    ),
    (
        "counters",
        "link_error_recovery",
        "link_error_recovery_total",
        "Number of times the link successfully recovered from an error state",
        false,
    ),
    (
        "counters",
        "local_link_integrity_errors",
        "local_link_integrity_errors_total",
        "Number of times that the count of local physical errors exceeded the threshold specified by LocalPhyErrors.",
        false,
    ),
    (
        "counters",
        "multicast_rcv_packets",
        "multicast_packets_received_total",
        "Number of multicast packets received (including errors)",
        false,
    ),
    (
        "counters",
        "multicast_xmit_packets",
        "multicast_packets_transmitted_total",
        "Number of multicast packets transmitted (including errors)",
        false,
    ),
    (
        "counters",
        "port_rcv_constraint_errors",
        "port_constraint_errors_received_total",
        "Number of packets received on the switch physical port that are discarded",
        false,
    ),
    (
        "counters",
        "port_xmit_constraint_errors",
        "port_constraint_errors_transmitted_total",
        "Number of packets not transmitted from the switch physical port",
        false,
    ),
    (
        "counters",
        "port_rcv_data",
        "port_data_received_bytes_total",
        "Number of data octets received on all links",
        true,
    ),
    (
        "counters",
        "port_xmit_data",
        "port_data_transmitted_bytes_total",
        "Number of data octets transmitted on all links",
        true,
    ),
    (
        "counters",
        "port_rcv_discards",
        "port_discards_received_total",
        "Number of inbound packets discarded by the port because the port is down or congested",
        false,
    ),
    (
        "counters",
        "port_xmit_discards",
        "port_discards_transmitted_total",
        "Number of outbound packets discarded by the port because the port is down or congested",
        false,
    ),
    (
        "counters",
        "port_rcv_errors",
        "port_errors_received_total",
        "Number of packets containing an error that were received on this port",
        false,
    ),
    (
        "counters",
        "port_rcv_packets",
        "port_packets_received_total",
        "Number of packets received on all VLs by this port (including errors)",
        false,
    ),
    (
        "counters",
        "port_xmit_packets",
        "port_packets_transmitted_total",
        "Number of packets transmitted on all VLs from this port (including errors)",
        false,
    ),
    (
        "counters",
        "port_xmit_wait",
        "port_transmit_wait_total",
        "Number of ticks during which the port had data to transmit but no data was sent during the entire tick",
        false,
    ),
    (
        "counters",
        "unicast_rcv_packets",
        "unicast_packets_received_total",
        "Number of unicast packets received (including errors)",
        false,
    ),
    (
        "counters",
        "unicast_xmit_packets",
        "unicast_packets_transmitted_total",
        "Number of unicast packets transmitted (including errors)",
        false,
    ),
    (
        "counters",
        "port_rcv_remote_physical_errors",
        "port_receive_remote_physical_errors_total",
        "Number of packets marked with the EBP (End of Bad Packet) delimiter received on the port.",
        false,
    ),
    (
        "counters",
        "port_rcv_switch_relay_errors",
        "port_receive_switch_relay_errors_total",
        "Number of packets that could not be forwarded by the switch.",
        false,
    ),
    (
        "counters",
        "symbol_error",
        "symbol_error_total",
        "Number of minor link errors detected on one or more physical lanes.",
        false,
    ),
    (
        "counters",
        "VL15_dropped",
        "vl15_dropped_total",
        "Number of incoming VL15 packets dropped due to resource limitations.",
        false,
    ),
];

/// Reads `<sysfs>/class/infiniband`.
pub struct InfinibandProbe {
    /// The class directory.
    class: ClassDir,
}

impl InfinibandProbe {
    /// A probe reading under `sysfs`.
    pub fn new(sysfs: &Path) -> Self {
        InfinibandProbe {
            class: ClassDir::new(sysfs, "infiniband"),
        }
    }
}

/// One adapter.
#[derive(Debug, PartialEq)]
pub struct Device {
    /// `mlx5_0`.
    pub name: String,
    /// `board_id`.
    pub board_id: String,
    /// `fw_ver`.
    pub firmware_version: String,
    /// `hca_type`; empty where the driver has none.
    pub hca_type: String,
    /// Its ports, by number.
    pub ports: Vec<Port>,
}

/// One port of an adapter.
#[derive(Debug, PartialEq)]
pub struct Port {
    /// The port's number, `1` for ports/1.
    pub number: u32,
    /// The number of `state` (`4: ACTIVE`).
    pub state: u32,
    /// The number of `phys_state` (`5: LinkUp`).
    pub physical_state: u32,
    /// `rate` in bytes per second.
    pub rate: u64,
    /// The [`COUNTERS`] values, in that order; `None` where the port has
    /// no such file or cannot give it.
    pub counters: [Option<u64>; 30],
}

impl Probe for InfinibandProbe {
    fn name(&self) -> &'static str {
        "infiniband"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["infiniband"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let mut devices = Vec::new();
        for (name, dir) in self.class.entries()? {
            let hca_type = match read_text(&dir.join("hca_type")) {
                Ok(text) => text,
                Err(ProbeError::Read { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    String::new()
                }
                Err(error) => return Err(error),
            };
            let mut device = Device {
                name,
                board_id: read_text(&dir.join("board_id"))?,
                firmware_version: read_text(&dir.join("fw_ver"))?,
                hca_type,
                ports: Vec::new(),
            };
            for (number, port_dir) in list(&dir.join("ports"))? {
                device.ports.push(read_port(&number, &port_dir)?);
            }
            device.ports.sort_by_key(|port| port.number);
            devices.push(device);
        }
        out.extend(families(&devices));
        Ok(())
    }
}

/// Reads one port's state, rate and counters.
fn read_port(number: &str, dir: &Path) -> Result<Port, ProbeError> {
    let parse_error = |path: &Path, source: ProbeParseError| ProbeError::Parse {
        path: path.to_path_buf(),
        source,
    };
    let number = number.parse().map_err(|_| {
        let port = number.to_string();
        parse_error(dir, ProbeParseError::PortNumber { port })
    })?;
    let (state_path, state) = read_file(dir.join("state"))?;
    let (phys_path, physical_state) = read_file(dir.join("phys_state"))?;
    let (rate_path, rate) = read_file(dir.join("rate"))?;
    let mut port = Port {
        number,
        state: parse_state(&state).map_err(|message| parse_error(&state_path, message))?,
        physical_state: parse_state(&physical_state)
            .map_err(|message| parse_error(&phys_path, message))?,
        rate: parse_rate(&rate).map_err(|message| parse_error(&rate_path, message))?,
        counters: [None; 30],
    };
    for directory in ["counters", "counters_ext"] {
        let entries = match list(&dir.join(directory)) {
            Ok(entries) => entries,
            // Only older drivers have the legacy counters.
            Err(ProbeError::Read { source, .. })
                if directory == "counters_ext" && source.kind() == std::io::ErrorKind::NotFound =>
            {
                continue;
            }
            Err(error) => return Err(error),
        };
        for (file, path) in entries {
            let Some(index) = COUNTERS
                .iter()
                .position(|(dir_name, name, ..)| *dir_name == directory && *name == file)
            else {
                continue;
            };
            let text = match read_text(&path) {
                Ok(text) => text,
                Err(error) if is_unreadable_attribute(&error) => continue,
                Err(error) => return Err(error),
            };
            port.counters[index] = parse_counter(&text, COUNTERS[index].4)
                .map_err(|message| parse_error(&path, message))?;
        }
    }
    Ok(port)
}

/// A `state` or `phys_state` file (`4: ACTIVE`) to its number.
pub fn parse_state(text: &str) -> Result<u32, ProbeParseError> {
    let mut parts = text.split(':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(number), Some(_), None) => number
            .trim()
            .parse()
            .map_err(|_| ProbeParseError::not_a(number.trim(), "a state number")),
        _ => Err(ProbeParseError::NotIdAndName {
            text: text.to_string(),
        }),
    }
}

/// A `rate` file (`100 Gb/sec (4X EDR)`) to bytes per second. The number
/// is read at single precision, as node_exporter reads it, so that odd
/// rates (`2.5 Gb/sec`) give its figure exactly.
pub fn parse_rate(text: &str) -> Result<u64, ProbeParseError> {
    let Some((number, _)) = text.split_once(' ') else {
        return Err(ProbeParseError::value("cannot split", text));
    };
    let gigabits: f32 = number
        .trim()
        .parse()
        .map_err(|_| ProbeParseError::not_a(number, "a number"))?;
    Ok((f64::from(gigabits) * 125_000_000.0) as u64)
}

/// A counter file's text: its value (times 4 for a word counter), `None`
/// for a counter the adapter has no performance agent for.
pub fn parse_counter(text: &str, words: bool) -> Result<Option<u64>, ProbeParseError> {
    match parse_unsigned(text) {
        Some(value) if words => Ok(Some(value.wrapping_mul(4))),
        Some(value) => Ok(Some(value)),
        None if text.contains("N/A (no PMA)") => Ok(None),
        None => Err(ProbeParseError::not_a(text, "a counter")),
    }
}

/// The info family, the three port gauges and the counters; families
/// without a series are left out.
pub fn families(devices: &[Device]) -> Vec<MetricFamily> {
    let gauge = |name: &str, help: &'static str| {
        MetricFamily::new(format!("node_infiniband_{name}"), help, MetricKind::Gauge)
    };
    let mut info = gauge(
        "info",
        "Non-numeric data from /sys/class/infiniband/<device>, value is always 1.",
    );
    let mut state = gauge(
        "state_id",
        "State of the InfiniBand port (0: no change, 1: down, 2: init, 3: armed, 4: active, 5: act defer)",
    );
    let mut physical_state = gauge(
        "physical_state_id",
        "Physical state of the InfiniBand port (0: no change, 1: sleep, 2: polling, 3: disable, 4: shift, 5: link up, 6: link error recover, 7: phytest)",
    );
    let mut rate = gauge("rate_bytes_per_second", "Maximum signal transfer rate");
    let mut counters = COUNTERS.map(|(_, _, name, help, _)| {
        MetricFamily::new(format!("node_infiniband_{name}"), help, MetricKind::Counter)
    });
    for device in devices {
        info.push(
            &[
                ("device", &device.name),
                ("board_id", &device.board_id),
                ("firmware_version", &device.firmware_version),
                ("hca_type", &device.hca_type),
            ],
            1.0,
        );
        for port in &device.ports {
            let number = port.number.to_string();
            let labels = [("device", device.name.as_str()), ("port", &number)];
            state.push(&labels, f64::from(port.state));
            physical_state.push(&labels, f64::from(port.physical_state));
            rate.push(&labels, port.rate as f64);
            for (family, value) in counters.iter_mut().zip(port.counters) {
                if let Some(value) = value {
                    family.push(&labels, value as f64);
                }
            }
        }
    }
    [info, state, physical_state, rate]
        .into_iter()
        .chain(counters)
        .filter(|family| !family.samples.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ConnectX-5 with one active EDR port (counters and the legacy
    /// counters_ext, one counter without a performance agent), and an
    /// older card without hca_type whose port is down.
    fn fixture(sysfs: &Path) {
        let class = sysfs.join("class/infiniband");
        for (file, text) in [
            ("mlx5_0/board_id", "MT_0000000010"),
            ("mlx5_0/fw_ver", "16.26.1040"),
            ("mlx5_0/hca_type", "MT4119"),
            ("mlx5_0/ports/1/state", "4: ACTIVE"),
            ("mlx5_0/ports/1/phys_state", "5: LinkUp"),
            ("mlx5_0/ports/1/rate", "100 Gb/sec (4X EDR)"),
            ("mlx5_0/ports/1/counters/port_rcv_data", "2221223609"),
            ("mlx5_0/ports/1/counters/port_xmit_data", "26317850"),
            ("mlx5_0/ports/1/counters/symbol_error", "0"),
            ("mlx5_0/ports/1/counters/VL15_dropped", "N/A (no PMA)"),
            ("mlx5_0/ports/1/counters/link_downed", "1"),
            ("mlx5_0/ports/1/counters/port_rcv_packets", "0x10"),
            ("mlx5_0/ports/1/counters_ext/port_rcv_data_64", "100"),
            ("mthca0/board_id", "MT_0070000001"),
            ("mthca0/fw_ver", "1.2.0"),
            ("mthca0/ports/1/state", "1: DOWN"),
            ("mthca0/ports/1/phys_state", "2: Polling"),
            ("mthca0/ports/1/rate", "2.5 Gb/sec (1X SDR)"),
            ("mthca0/ports/1/counters/link_downed", "7"),
        ] {
            let path = class.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, format!("{text}\n")).unwrap();
        }
    }

    fn values(families: &[MetricFamily], name: &str) -> Vec<(String, f64)> {
        let family = families
            .iter()
            .find(|family| family.name == name)
            .unwrap_or_else(|| panic!("no {name}"));
        family
            .samples
            .iter()
            .map(|sample| (sample.labels[0].1.to_string(), sample.value))
            .collect()
    }

    #[test]
    fn two_adapters_give_info_port_gauges_and_counters() {
        let sysfs = tempfile::tempdir().unwrap();
        fixture(sysfs.path());
        let mut out = Vec::new();
        InfinibandProbe::new(sysfs.path())
            .collect(&mut out)
            .unwrap();
        let info = &out[0];
        assert_eq!(info.name, "node_infiniband_info");
        assert_eq!(info.samples[0].labels[3].1, "MT4119");
        assert_eq!(info.samples[1].labels[3], ("hca_type".into(), "".into()));
        assert_eq!(
            values(&out, "node_infiniband_state_id"),
            vec![("mlx5_0".into(), 4.0), ("mthca0".into(), 1.0)]
        );
        assert_eq!(
            values(&out, "node_infiniband_physical_state_id")[1],
            ("mthca0".into(), 2.0)
        );
        assert_eq!(
            values(&out, "node_infiniband_rate_bytes_per_second"),
            vec![("mlx5_0".into(), 12.5e9), ("mthca0".into(), 312_500_000.0)]
        );
        assert_eq!(
            values(&out, "node_infiniband_port_data_received_bytes_total"),
            vec![("mlx5_0".into(), 8884894436.0)],
            "word counters are multiplied by 4"
        );
        assert_eq!(
            values(&out, "node_infiniband_legacy_data_received_bytes_total"),
            vec![("mlx5_0".into(), 400.0)]
        );
        assert_eq!(
            values(&out, "node_infiniband_port_packets_received_total"),
            vec![("mlx5_0".into(), 16.0)]
        );
        assert_eq!(
            values(&out, "node_infiniband_link_downed_total"),
            vec![("mlx5_0".into(), 1.0), ("mthca0".into(), 7.0)]
        );
        assert!(
            !out.iter()
                .any(|family| family.name == "node_infiniband_vl15_dropped_total"),
            "a counter without a performance agent is left out"
        );
        let port_labels = &out[1].samples[0].labels;
        assert_eq!(port_labels[1], ("port".into(), "1".into()));
    }

    #[test]
    fn states_rates_and_counters_parse_as_node_exporter_reads_them() {
        assert_eq!(parse_state("4: ACTIVE\n"), Ok(4));
        assert!(parse_state("ACTIVE").is_err());
        assert!(parse_state("x: y").is_err());
        assert_eq!(parse_rate("56 Gb/sec (4X FDR)\n"), Ok(7_000_000_000));
        assert_eq!(parse_rate("10 Gb/sec (4X)"), Ok(1_250_000_000));
        assert!(parse_rate("fast").is_err());
        assert_eq!(parse_counter("12", true), Ok(Some(48)));
        assert_eq!(parse_counter("N/A (no PMA)", false), Ok(None));
        assert!(parse_counter("many", false).is_err());
    }

    #[test]
    fn a_host_without_infiniband_fails_the_collector() {
        let sysfs = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        let result = InfinibandProbe::new(sysfs.path()).collect(&mut out);
        assert!(matches!(result, Err(ProbeError::Absent(_))));
    }
}
