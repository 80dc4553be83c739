//! The fibrechannel collector: Fibre Channel host bus adapters under
//! /sys/class/fc_host (the kernel's scsi_transport_fc attributes), as
//! node_exporter 1.5 serves them: `node_fibrechannel_info{fc_host,...}`
//! with the port's speed, state, type, identifiers and supported classes,
//! and one counter family per statistic
//! (`node_fibrechannel_link_failure_total{fc_host}`, ...). The kernel
//! prints statistics in hexadecimal; a statistic the adapter's firmware
//! does not keep reads all ones and is left out, as node_exporter does.
//!
//! A host without Fibre Channel reports the collector as failed, as
//! node_exporter does, and is not looked at again.

use std::path::Path;

use countywatch_wire::{MetricFamily, MetricKind};

use super::sysfs_class::{ClassDir, is_unreadable_attribute, read_number, read_text};
use super::{Probe, ProbeError};

/// The info labels after `fc_host`, each the attribute of the same name.
const INFO: [&str; 10] = [
    "speed",
    "port_state",
    "port_type",
    "port_id",
    "port_name",
    "fabric_name",
    "symbolic_name",
    "supported_classes",
    "supported_speeds",
    "dev_loss_tmo",
];

/// Identifiers the kernel prints as `0x...`; node_exporter drops the
/// prefix.
const HEX_IDENTIFIERS: [&str; 3] = ["port_id", "port_name", "fabric_name"];

/// The statistics node_exporter serves: the file under `statistics/`, the
/// family's name after `node_fibrechannel_`, and its help.
const STATISTICS: [(&str, &str, &str); 14] = [
    (
        "dumped_frames",
        "dumped_frames_total",
        "Number of dumped frames",
    ),
    (
        "error_frames",
        "error_frames_total",
        "Number of errors in frames",
    ),
    (
        "invalid_crc_count",
        "invalid_crc_total",
        "Invalid Cyclic Redundancy Check count",
    ),
    ("rx_frames", "rx_frames_total", "Number of frames received"),
    (
        "rx_words",
        "rx_words_total",
        "Number of words received by host port",
    ),
    (
        "tx_frames",
        "tx_frames_total",
        "Number of frames transmitted by host port",
    ),
    (
        "tx_words",
        "tx_words_total",
        "Number of words transmitted by host port",
    ),
    (
        "seconds_since_last_reset",
        "seconds_since_last_reset_total",
        "Number of seconds since last host port reset",
    ),
    (
        "invalid_tx_word_count",
        "invalid_tx_words_total",
        "Number of invalid words transmitted by host port",
    ),
    (
        "link_failure_count",
        "link_failure_total",
        "Number of times the host port link has failed",
    ),
    (
        "loss_of_sync_count",
        "loss_of_sync_total",
        "Number of failures on either bit or transmission word boundaries",
    ),
    (
        "loss_of_signal_count",
        "loss_of_signal_total",
        "Number of times signal has been lost",
    ),
    (
        "nos_count",
        "nos_total",
        "Number Not_Operational Primitive Sequence received by host port",
    ),
    (
        "fcp_packet_aborts",
        "fcp_packet_aborts_total",
        "Number of aborted packets",
    ),
];

/// Reads `<sysfs>/class/fc_host`.
pub struct FibreChannelProbe {
    /// The class directory.
    class: ClassDir,
}

impl FibreChannelProbe {
    /// A probe reading under `sysfs`.
    pub fn new(sysfs: &Path) -> Self {
        FibreChannelProbe {
            class: ClassDir::new(sysfs, "fc_host"),
        }
    }
}

/// One adapter port.
#[derive(Debug, PartialEq)]
pub struct Host {
    /// `host0`.
    pub name: String,
    /// The [`INFO`] attributes, in that order, as node_exporter labels
    /// them.
    pub info: [String; 10],
    /// The [`STATISTICS`] values, in that order; 0 for a file the driver
    /// does not have, as in node_exporter.
    pub statistics: [u64; 14],
}

impl Probe for FibreChannelProbe {
    fn name(&self) -> &'static str {
        "fibrechannel"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["fibrechannel"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let mut hosts = Vec::new();
        for (name, dir) in self.class.entries()? {
            // node_exporter requires node_name too, though it serves it
            // nowhere: an adapter without it fails alike.
            read_text(&dir.join("node_name"))?;
            let mut info: [String; 10] = Default::default();
            for (value, attribute) in info.iter_mut().zip(INFO) {
                *value = label_value(attribute, read_text(&dir.join(attribute))?);
            }
            let statistics_dir = dir.join("statistics");
            if let Err(source) = std::fs::metadata(&statistics_dir) {
                return Err(ProbeError::Read {
                    path: statistics_dir,
                    source,
                });
            }
            let mut statistics = [0_u64; 14];
            for (value, (file, _, _)) in statistics.iter_mut().zip(STATISTICS) {
                match read_number(&statistics_dir.join(file)) {
                    Ok(number) => *value = number,
                    Err(error) if is_unreadable_attribute(&error) => {}
                    Err(error) => return Err(error),
                }
            }
            hosts.push(Host {
                name,
                info,
                statistics,
            });
        }
        out.extend(families(&hosts));
        Ok(())
    }
}

/// An info attribute as node_exporter labels it: identifiers lose `0x`.
pub fn label_value(attribute: &str, text: String) -> String {
    if HEX_IDENTIFIERS.contains(&attribute) && text.len() > 2 {
        text.get(2..).unwrap_or_default().to_string()
    } else {
        text
    }
}

/// The info family and the statistics' counters; families without a
/// series are left out.
pub fn families(hosts: &[Host]) -> Vec<MetricFamily> {
    let mut info = MetricFamily::new(
        "node_fibrechannel_info",
        "Non-numeric data from /sys/class/fc_host/<host>, value is always 1.",
        MetricKind::Gauge,
    );
    let mut counters = STATISTICS.map(|(_, name, help)| {
        MetricFamily::new(
            format!("node_fibrechannel_{name}"),
            help,
            MetricKind::Counter,
        )
    });
    for host in hosts {
        let mut labels = vec![("fc_host", host.name.as_str())];
        labels.extend(
            INFO.iter()
                .copied()
                .zip(host.info.iter().map(String::as_str)),
        );
        info.push(&labels, 1.0);
        for (family, value) in counters.iter_mut().zip(host.statistics) {
            // All ones: the firmware does not keep this statistic.
            if value != u64::MAX {
                family.push(&[("fc_host", &host.name)], value as f64);
            }
        }
    }
    std::iter::once(info)
        .chain(counters)
        .filter(|family| !family.samples.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One qla2xxx port as the kernel shows it: identifiers and counters
    /// in hexadecimal, a statistic the firmware lacks as all ones, and a
    /// write-only `reset_statistics`.
    fn host(sysfs: &Path) {
        let dir = sysfs.join("class/fc_host/host0");
        std::fs::create_dir_all(dir.join("statistics")).unwrap();
        for (file, text) in [
            ("speed", "16 Gbit"),
            ("port_state", "Online"),
            ("port_type", "NPort (fabric via point-to-point)"),
            ("node_name", "0x2000e0071bce95f2"),
            ("port_id", "0x000002"),
            ("port_name", "0x1000e0071bce95f2"),
            ("fabric_name", "0x0"),
            ("symbolic_name", "QLE2742 FW:v8.08.204 DVR:v10.02.00.106-k"),
            ("supported_classes", "Class 3"),
            ("supported_speeds", "4 Gbit, 8 Gbit, 16 Gbit"),
            ("dev_loss_tmo", "30"),
            ("statistics/dumped_frames", "0xffffffffffffffff"),
            ("statistics/error_frames", "0x0"),
            ("statistics/invalid_crc_count", "0x2"),
            ("statistics/rx_frames", "0x3b"),
            ("statistics/rx_words", "0x100"),
            ("statistics/tx_frames", "0x41"),
            ("statistics/tx_words", "0x200"),
            ("statistics/seconds_since_last_reset", "0x6d"),
            ("statistics/invalid_tx_word_count", "0x8"),
            ("statistics/link_failure_count", "0x9"),
            ("statistics/loss_of_sync_count", "0x10"),
            ("statistics/loss_of_signal_count", "0x11"),
            ("statistics/nos_count", "0x12"),
            ("statistics/lip_count", "0x13"),
        ] {
            std::fs::write(dir.join(file), format!("{text}\n")).unwrap();
        }
    }

    #[test]
    fn one_port_gives_its_info_and_counters() {
        let sysfs = tempfile::tempdir().unwrap();
        host(sysfs.path());
        let mut out = Vec::new();
        FibreChannelProbe::new(sysfs.path())
            .collect(&mut out)
            .unwrap();
        let info = &out[0];
        assert_eq!(info.name, "node_fibrechannel_info");
        assert_eq!(
            crate::probe::label_pairs(&info.samples[0]),
            vec![
                ("fc_host", "host0"),
                ("speed", "16 Gbit"),
                ("port_state", "Online"),
                ("port_type", "NPort (fabric via point-to-point)"),
                ("port_id", "000002"),
                ("port_name", "1000e0071bce95f2"),
                ("fabric_name", "0"),
                ("symbolic_name", "QLE2742 FW:v8.08.204 DVR:v10.02.00.106-k"),
                ("supported_classes", "Class 3"),
                ("supported_speeds", "4 Gbit, 8 Gbit, 16 Gbit"),
                ("dev_loss_tmo", "30"),
            ]
        );
        let counters: Vec<(&str, f64)> = out[1..]
            .iter()
            .map(|family| {
                assert_eq!(family.kind, MetricKind::Counter);
                (family.name.as_ref(), family.samples[0].value)
            })
            .collect();
        assert_eq!(counters.len(), 13, "dumped_frames is not kept");
        assert_eq!(counters[0], ("node_fibrechannel_error_frames_total", 0.0));
        assert_eq!(counters[1], ("node_fibrechannel_invalid_crc_total", 2.0));
        assert_eq!(
            counters[10],
            ("node_fibrechannel_loss_of_signal_total", 17.0)
        );
        assert_eq!(
            counters[12],
            ("node_fibrechannel_fcp_packet_aborts_total", 0.0),
            "a statistic the driver lacks is 0, as in node_exporter"
        );
    }

    #[test]
    fn a_counter_that_is_not_a_number_fails_the_collection() {
        let sysfs = tempfile::tempdir().unwrap();
        host(sysfs.path());
        let file = sysfs
            .path()
            .join("class/fc_host/host0/statistics/nos_count");
        std::fs::write(file, "lots\n").unwrap();
        let mut out = Vec::new();
        let result = FibreChannelProbe::new(sysfs.path()).collect(&mut out);
        assert!(matches!(result, Err(ProbeError::Parse { .. })));
    }

    #[test]
    fn a_host_without_fibre_channel_fails_the_collector() {
        let sysfs = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        let result = FibreChannelProbe::new(sysfs.path()).collect(&mut out);
        assert!(matches!(result, Err(ProbeError::Absent(_))));
    }
}
