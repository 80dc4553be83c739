//! The tapestats collector: SCSI tape drives' I/O statistics under
//! /sys/class/scsi_tape/st<N>/stats (kernel documentation
//! `scsi/st.rst`, "Statistics"), as node_exporter 1.5 serves them:
//! `node_tape_io_now{device}`, the read, write and other command counts,
//! bytes, and the time spent on each in seconds (the kernel counts
//! nanoseconds). Only the `st<N>` entries are drives; the `nst<N>`
//! (no-rewind) and mode entries (`st0a`) are other names of the same ones.
//!
//! A host without tape drives reports the collector as failed, as
//! node_exporter does, and is not looked at again.

use std::path::Path;

use countywatch_wire::{MetricFamily, MetricKind};

use super::sysfs_class::{ClassDir, list, read_number};
use super::{Probe, ProbeError};

/// The statistics: the file under `stats/`, the family's name after
/// `node_tape_`, its help, its type, and the factor to its unit
/// (node_exporter multiplies nanoseconds by 1e-9 rather than dividing).
const STATISTICS: [(&str, &str, &str, MetricKind, f64); 10] = [
    (
        "in_flight",
        "io_now",
        "The number of I/Os currently outstanding to this device.",
        MetricKind::Gauge,
        1.0,
    ),
    (
        "io_ns",
        "io_time_seconds_total",
        "The amount of time spent waiting for all I/O to complete (including read and write). This includes tape movement commands such as seeking between file or set marks and implicit tape movement such as when rewind on close tape devices are used.",
        MetricKind::Counter,
        1e-9,
    ),
    (
        "other_cnt",
        "io_others_total",
        "The number of I/Os issued to the tape drive other than read or write commands. The time taken to complete these commands uses the following calculation io_time_seconds_total-read_time_seconds_total-write_time_seconds_total",
        MetricKind::Counter,
        1.0,
    ),
    (
        "read_byte_cnt",
        "read_bytes_total",
        "The number of bytes read from the tape drive.",
        MetricKind::Counter,
        1.0,
    ),
    (
        "read_cnt",
        "reads_completed_total",
        "The number of read requests issued to the tape drive.",
        MetricKind::Counter,
        1.0,
    ),
    (
        "read_ns",
        "read_time_seconds_total",
        "The amount of time spent waiting for read requests to complete.",
        MetricKind::Counter,
        1e-9,
    ),
    (
        "resid_cnt",
        "residual_total",
        "The number of times during a read or write we found the residual amount to be non-zero. This should mean that a program is issuing a read larger thean the block size on tape. For write not all data made it to tape.",
        MetricKind::Counter,
        1.0,
    ),
    (
        "write_byte_cnt",
        "written_bytes_total",
        "The number of bytes written to the tape drive.",
        MetricKind::Counter,
        1.0,
    ),
    (
        "write_cnt",
        "writes_completed_total",
        "The number of write requests issued to the tape drive.",
        MetricKind::Counter,
        1.0,
    ),
    (
        "write_ns",
        "write_time_seconds_total",
        "The amount of time spent waiting for write requests to complete.",
        MetricKind::Counter,
        1e-9,
    ),
];

/// Reads `<sysfs>/class/scsi_tape`.
pub struct TapestatsProbe {
    /// The class directory.
    class: ClassDir,
}

impl TapestatsProbe {
    /// A probe reading under `sysfs`.
    pub fn new(sysfs: &Path) -> Self {
        TapestatsProbe {
            class: ClassDir::new(sysfs, "scsi_tape"),
        }
    }
}

impl Probe for TapestatsProbe {
    fn name(&self) -> &'static str {
        "tapestats"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["tapestats"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let mut drives = Vec::new();
        for (name, dir) in self.class.entries()? {
            if !is_drive(&name) {
                continue;
            }
            // A statistic the kernel does not list is 0, as in
            // node_exporter.
            let mut statistics = [0_u64; 10];
            for (file, path) in list(&dir.join("stats"))? {
                if let Some(index) = STATISTICS.iter().position(|entry| entry.0 == file) {
                    statistics[index] = read_number(&path)?;
                }
            }
            drives.push((name, statistics));
        }
        out.extend(families(&drives));
        Ok(())
    }
}

/// Whether a scsi_tape entry is a drive's primary name, `st<N>`.
pub fn is_drive(name: &str) -> bool {
    name.strip_prefix("st")
        .is_some_and(|number| !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()))
}

/// The ten families of the drives' statistics (in [`STATISTICS`] order);
/// none without a drive.
pub fn families(drives: &[(String, [u64; 10])]) -> Vec<MetricFamily> {
    if drives.is_empty() {
        return Vec::new();
    }
    STATISTICS
        .iter()
        .enumerate()
        .map(|(index, (_, name, help, kind, factor))| {
            let mut family = MetricFamily::new(format!("node_tape_{name}"), *help, *kind);
            for (device, statistics) in drives {
                family.push(&[("device", device)], statistics[index] as f64 * factor);
            }
            family
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One LTO drive after a backup: its st0 entry with statistics, and
    /// the no-rewind and mode names the class lists beside it.
    fn fixture(sysfs: &Path) {
        let class = sysfs.join("class/scsi_tape");
        for name in ["nst0", "st0a", "nst0l"] {
            std::fs::create_dir_all(class.join(name).join("stats")).unwrap();
        }
        for (file, value) in [
            ("in_flight", "1"),
            ("io_ns", "9247011087720"),
            ("other_cnt", "1409"),
            ("read_byte_cnt", "979383912"),
            ("read_cnt", "3741"),
            ("read_ns", "33788355744"),
            ("resid_cnt", "19"),
            ("write_byte_cnt", "1496246784000"),
            ("write_cnt", "53772916"),
        ] {
            let path = class.join("st0/stats").join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, format!("{value}\n")).unwrap();
        }
    }

    #[test]
    fn a_drive_gives_its_ten_statistics_in_node_exporters_units() {
        let sysfs = tempfile::tempdir().unwrap();
        fixture(sysfs.path());
        let mut out = Vec::new();
        TapestatsProbe::new(sysfs.path()).collect(&mut out).unwrap();
        let got: Vec<(&str, usize, f64)> = out
            .iter()
            .map(|family| {
                assert_eq!(family.samples[0].labels[0].1, "st0");
                (
                    family.name.as_ref(),
                    family.samples.len(),
                    family.samples[0].value,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("node_tape_io_now", 1, 1.0),
                ("node_tape_io_time_seconds_total", 1, 9247011087720.0 * 1e-9),
                ("node_tape_io_others_total", 1, 1409.0),
                ("node_tape_read_bytes_total", 1, 979383912.0),
                ("node_tape_reads_completed_total", 1, 3741.0),
                ("node_tape_read_time_seconds_total", 1, 33788355744.0 * 1e-9),
                ("node_tape_residual_total", 1, 19.0),
                ("node_tape_written_bytes_total", 1, 1496246784000.0),
                ("node_tape_writes_completed_total", 1, 53772916.0),
                ("node_tape_write_time_seconds_total", 1, 0.0),
            ]
        );
        assert_eq!(out[0].kind, MetricKind::Gauge);
        assert_eq!(out[1].kind, MetricKind::Counter);
    }

    #[test]
    fn only_primary_names_are_drives() {
        assert!(is_drive("st0"));
        assert!(is_drive("st12"));
        for other in ["nst0", "st0a", "st", "st0l", "sta"] {
            assert!(!is_drive(other), "{other}");
        }
    }

    #[test]
    fn a_kernel_before_4_2_without_tape_statistics_fails_the_collection() {
        // CentOS 7's 3.10 kernel lists the drives but has no stats/.
        let sysfs = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(sysfs.path().join("class/scsi_tape/st0")).unwrap();
        let mut out = Vec::new();
        let result = TapestatsProbe::new(sysfs.path()).collect(&mut out);
        assert!(matches!(result, Err(ProbeError::Read { .. })));
        assert!(out.is_empty());
    }

    #[test]
    fn a_host_without_tape_drives_fails_the_collector() {
        let sysfs = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        let result = TapestatsProbe::new(sysfs.path()).collect(&mut out);
        assert!(matches!(result, Err(ProbeError::Absent(_))));
    }
}
