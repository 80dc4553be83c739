//! The disk probe: block device I/O counters from /proc/diskstats, named
//! as node_exporter's diskstats collector names them
//! (`node_disk_read_bytes_total{device}` and its siblings), with its
//! default device exclusion (partitions, loop, ram and floppy devices),
//! and `node_disk_info{device,major,minor,path,wwn,model,serial,revision}`
//! with the identity udev recorded under /run/udev/data (`paths.udev_data`;
//! empty labels where
//! udev has none, as in a container). From the same udev record, as
//! node_exporter 1.5 does: `node_disk_filesystem_info` for a device holding
//! a filesystem udev identified, `node_disk_device_mapper_info` for a
//! device-mapper device (LVM volumes, dm-crypt), and for ATA disks
//! `node_disk_ata_write_cache`, `node_disk_ata_write_cache_enabled` and
//! `node_disk_ata_rotation_rate_rpm` (each only where udev recorded it).
//!
//! The kernel counts sectors of 512 bytes whatever the device's real sector
//! size, and times in milliseconds; both become bytes and seconds here.

use std::path::PathBuf;

use countywatch_wire::{MetricFamily, MetricKind};

use super::kept_files::KeptFiles;
use super::{Probe, ProbeError};

/// How one /proc/diskstats column (after major, minor and name) becomes a
/// metric: name, help, and the factor to base units.
const COLUMNS: [(&str, &str, f64); 17] = [
    (
        "node_disk_reads_completed_total",
        "The total number of reads completed successfully.",
        1.0,
    ),
    (
        "node_disk_reads_merged_total",
        "The total number of reads merged.",
        1.0,
    ),
    (
        "node_disk_read_bytes_total",
        "The total number of bytes read successfully.",
        SECTOR_BYTES,
    ),
    (
        "node_disk_read_time_seconds_total",
        "The total number of seconds spent by all reads.",
        0.001,
    ),
    (
        "node_disk_writes_completed_total",
        "The total number of writes completed successfully.",
        1.0,
    ),
    (
        "node_disk_writes_merged_total",
        "The number of writes merged.",
        1.0,
    ),
    (
        "node_disk_written_bytes_total",
        "The total number of bytes written successfully.",
        SECTOR_BYTES,
    ),
    (
        "node_disk_write_time_seconds_total",
        "This is the total number of seconds spent by all writes.",
        0.001,
    ),
    (
        "node_disk_io_now",
        "The number of I/Os currently in progress.",
        1.0,
    ),
    (
        "node_disk_io_time_seconds_total",
        "Total seconds spent doing I/Os.",
        0.001,
    ),
    (
        "node_disk_io_time_weighted_seconds_total",
        "The weighted # of seconds spent doing I/Os.",
        0.001,
    ),
    (
        "node_disk_discards_completed_total",
        "The total number of discards completed successfully.",
        1.0,
    ),
    (
        "node_disk_discards_merged_total",
        "The total number of discards merged.",
        1.0,
    ),
    (
        "node_disk_discarded_sectors_total",
        "The total number of sectors discarded successfully.",
        1.0,
    ),
    (
        "node_disk_discard_time_seconds_total",
        "This is the total number of seconds spent by all discards.",
        0.001,
    ),
    (
        "node_disk_flush_requests_total",
        "The total number of flush requests completed successfully",
        1.0,
    ),
    (
        "node_disk_flush_requests_time_seconds_total",
        "This is the total number of seconds spent by all flush requests.",
        0.001,
    ),
];

/// The udev properties of an ATA disk served as gauges, by property:
/// family name and help.
const ATA_PROPERTIES: [(&str, &str, &str); 3] = [
    (
        "ID_ATA_WRITE_CACHE",
        "node_disk_ata_write_cache",
        "ATA disk has a write cache.",
    ),
    (
        "ID_ATA_WRITE_CACHE_ENABLED",
        "node_disk_ata_write_cache_enabled",
        "ATA disk has its write cache enabled.",
    ),
    (
        "ID_ATA_ROTATION_RATE_RPM",
        "node_disk_ata_rotation_rate_rpm",
        "ATA disk rotation rate in RPMs (0 for SSDs).",
    ),
];

/// /proc/diskstats counts in 512-byte sectors regardless of the device.
const SECTOR_BYTES: f64 = 512.0;

/// Reads `<procfs>/diskstats` and `<udev_data>/b<major>:<minor>`.
pub struct DiskProbe {
    /// procfs root, `/proc` unless configured.
    procfs: PathBuf,
    /// udev's database, `/run/udev/data` unless configured.
    udev_data: PathBuf,
    /// The files read each collection, kept open (`kept_files`).
    kept: KeptFiles,
}

impl DiskProbe {
    /// A probe reading under `procfs` and `udev_data`.
    pub fn new(procfs: PathBuf, udev_data: PathBuf) -> Self {
        DiskProbe {
            procfs,
            udev_data,
            kept: KeptFiles::default(),
        }
    }
}

impl Probe for DiskProbe {
    fn name(&self) -> &'static str {
        "disk"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["diskstats"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let (_, text) = self.kept.read_file(self.procfs.join("diskstats"))?;
        out.extend(parse(&text, &|major, minor| {
            super::read_pseudo_file(self.udev_data.join(format!("b{major}:{minor}"))).ok()
        }));
        Ok(())
    }
}

/// Turns /proc/diskstats text into families. Older kernels have fewer
/// columns (no discard or flush counters); those families are then absent.
/// `udev` gives the udev database text of a device by major and minor.
pub fn parse(text: &str, udev: &dyn Fn(&str, &str) -> Option<String>) -> Vec<MetricFamily> {
    let mut info = MetricFamily::new(
        "node_disk_info",
        "Info of /sys/block/<block_device>.",
        MetricKind::Gauge,
    );
    let mut families: Vec<MetricFamily> = COLUMNS
        .iter()
        .map(|(name, help, _)| {
            let kind = if name.ends_with("_total") {
                MetricKind::Counter
            } else {
                MetricKind::Gauge
            };
            MetricFamily::new(*name, *help, kind)
        })
        .collect();
    let mut filesystem_info = MetricFamily::new(
        "node_disk_filesystem_info",
        "Info about disk filesystem.",
        MetricKind::Gauge,
    );
    let mut device_mapper_info = MetricFamily::new(
        "node_disk_device_mapper_info",
        "Info about disk device mapper.",
        MetricKind::Gauge,
    );
    let mut ata =
        ATA_PROPERTIES.map(|(_, name, help)| MetricFamily::new(name, help, MetricKind::Gauge));
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(major), Some(minor), Some(device)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if is_excluded(device) {
            continue;
        }
        let properties = udev(major, minor).unwrap_or_default();
        // The last record of a property wins, as in node_exporter's map.
        let property = |key: &str| {
            properties
                .lines()
                .rev()
                .filter_map(|line| line.strip_prefix("E:")?.split_once('='))
                .find(|(name, _)| *name == key)
                .map(|(_, value)| value)
                .unwrap_or("")
        };
        info.push(
            &[
                ("device", device),
                ("major", major),
                ("minor", minor),
                ("model", property("ID_MODEL")),
                ("path", property("ID_PATH")),
                ("revision", property("ID_REVISION")),
                ("serial", property("ID_SERIAL_SHORT")),
                ("wwn", property("ID_WWN")),
            ],
            1.0,
        );
        let values: Vec<f64> = fields.map_while(|value| value.parse().ok()).collect();
        for ((family, (_, _, factor)), value) in families.iter_mut().zip(COLUMNS).zip(values) {
            family.push(&[("device", device)], value * factor);
        }
        let filesystem_type = property("ID_FS_TYPE");
        if !filesystem_type.is_empty() {
            filesystem_info.push(
                &[
                    ("device", device),
                    ("type", filesystem_type),
                    ("usage", property("ID_FS_USAGE")),
                    ("uuid", property("ID_FS_UUID")),
                    ("version", property("ID_FS_VERSION")),
                ],
                1.0,
            );
        }
        let mapper_name = property("DM_NAME");
        if !mapper_name.is_empty() {
            device_mapper_info.push(
                &[
                    ("device", device),
                    ("name", mapper_name),
                    ("uuid", property("DM_UUID")),
                    ("vg_name", property("DM_VG_NAME")),
                    ("lv_name", property("DM_LV_NAME")),
                    ("lv_layer", property("DM_LV_LAYER")),
                ],
                1.0,
            );
        }
        if !property("ID_ATA").is_empty() {
            for (family, (key, _, _)) in ata.iter_mut().zip(ATA_PROPERTIES) {
                // A missing or unparsable property is left out, as
                // node_exporter leaves it out.
                if let Ok(value) = property(key).parse::<f64>() {
                    family.push(&[("device", device)], value);
                }
            }
        }
    }
    families.push(info);
    families.push(filesystem_info);
    families.push(device_mapper_info);
    families.extend(ata);
    families.retain(|family| !family.samples.is_empty());
    families
}

/// node_exporter 1.5's default `--collector.diskstats.device-exclude`,
/// `^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$`, without a regex
/// engine: partitions of whole disks and virtual devices are left out.
/// (`zram` devices are reported: later node_exporters exclude them with
/// `z?ram`, Debian 12's 1.5 does not.)
pub fn is_excluded(device: &str) -> bool {
    // Every excluded name ends in digits after one of the prefixes.
    let stem = device.trim_end_matches(|c: char| c.is_ascii_digit());
    if stem.len() == device.len() {
        return false;
    }
    if matches!(stem, "ram" | "loop" | "fd") {
        return true;
    }
    // (h|s|v|xv)d[a-z] followed by digits: sda1, vdb2, xvda1.
    for prefix in ["hd", "sd", "vd", "xvd"] {
        if let Some(letter) = stem.strip_prefix(prefix)
            && letter.len() == 1
            && letter.chars().all(|c| c.is_ascii_lowercase())
        {
            return true;
        }
    }
    // nvme\d+n\d+p followed by digits: nvme0n1p1.
    if let Some(rest) = stem.strip_prefix("nvme")
        && let Some(rest) = rest.strip_suffix('p')
        && let Some((controller, namespace)) = rest.split_once('n')
    {
        let digits = |text: &str| !text.is_empty() && text.chars().all(|c| c.is_ascii_digit());
        return digits(controller) && digits(namespace);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const DISKSTATS: &str = "   7       0 loop0 12 0 24 1 0 0 0 0 0 4 1 0 0 0 0 0 0\n \
254       0 vda 95190 8291 7807130 74735 14216 41163 10510568 38732 0 9948 114347 6257 40 1155888 785 1404 93\n \
254       1 vda1 100 0 200 1 0 0 0 0 0 1 1 0 0 0 0 0 0\n \
259       0 nvme0n1 1 2 3 4 5 6 7 8 9 10 11\n \
259       1 nvme0n1p1 1 2 3 4 5 6 7 8 9 10 11\n \
253       0 dm-0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\n";

    #[test]
    fn units_and_exclusions_follow_node_exporter() {
        let families = parse(DISKSTATS, &|major, minor| {
            (major == "254" && minor == "0").then(|| {
                "S:disk/by-path/virtio-pci-0000:00:04.0\nE:ID_PATH=pci-0000:00:04.0\n\
E:ID_SERIAL_SHORT=abc123\nE:ID_MODEL=QEMU=DISK\n"
                    .to_string()
            })
        });
        let find = |name: &str| families.iter().find(|f| f.name == name).unwrap();
        let read = find("node_disk_read_bytes_total");
        let devices: Vec<&str> = read
            .samples
            .iter()
            .map(|sample| sample.labels[0].1.as_ref())
            .collect();
        assert_eq!(devices, vec!["vda", "nvme0n1", "dm-0"]);
        assert_eq!(read.samples[0].value, 7807130.0 * 512.0);
        assert_eq!(
            find("node_disk_reads_completed_total").samples[0].value,
            95190.0
        );
        assert_eq!(
            find("node_disk_writes_completed_total").samples[0].value,
            14216.0
        );
        assert_eq!(
            find("node_disk_written_bytes_total").samples[0].value,
            10510568.0 * 512.0
        );
        assert_eq!(
            find("node_disk_io_time_seconds_total").samples[0].value,
            9.948
        );
        assert_eq!(find("node_disk_io_now").kind, MetricKind::Gauge);
        let info = find("node_disk_info");
        let vda: Vec<(&str, &str)> = info.samples[0]
            .labels
            .iter()
            .map(|(name, value)| (name.as_ref(), value.as_ref()))
            .collect();
        assert_eq!(
            vda,
            vec![
                ("device", "vda"),
                ("major", "254"),
                ("minor", "0"),
                ("model", "QEMU=DISK"),
                ("path", "pci-0000:00:04.0"),
                ("revision", ""),
                ("serial", "abc123"),
                ("wwn", ""),
            ]
        );
        assert_eq!(
            info.samples[1].owned_labels()[4],
            ("path".to_string(), String::new())
        );
        // The old 11-column nvme line has no discard or flush counters.
        assert_eq!(find("node_disk_flush_requests_total").samples.len(), 1);
        assert_eq!(find("node_disk_discards_completed_total").samples.len(), 2);
    }

    /// A udev record of an LVM volume holding ext4, as systemd 252 writes it.
    const UDEV_LVM: &str = "S:disk/by-id/dm-name-vg0-root
S:mapper/vg0-root
I:2718302
E:DM_UDEV_DISABLE_LIBRARY_FALLBACK_FLAG=1
E:DM_UDEV_PRIMARY_SOURCE_FLAG=1
E:DM_UDEV_RULES_VSN=2
E:DM_NAME=vg0-root
E:DM_UUID=LVM-4wMbD4pfKbTnYB4X3bJ2Ck0aMwXeHTdkX0dNo1W6rEQ0tq7J1bnf6wrQ7F8YQOjZ
E:DM_SUSPENDED=0
E:DM_VG_NAME=vg0
E:DM_LV_NAME=root
E:ID_FS_UUID=a2b1c2d3-0f1e-4d5c-9b8a-112233445566
E:ID_FS_UUID_ENC=a2b1c2d3-0f1e-4d5c-9b8a-112233445566
E:ID_FS_VERSION=1.0
E:ID_FS_TYPE=ext4
E:ID_FS_USAGE=filesystem
G:systemd
Q:systemd
V:1
";

    /// A udev record of a SATA disk: a spinning one with a write cache.
    const UDEV_ATA: &str = "S:disk/by-id/ata-WDC_WD40EFRX-68N32N0_WD-WCC7K0XXXXXX
E:ID_ATA=1
E:ID_TYPE=disk
E:ID_BUS=ata
E:ID_MODEL=WDC_WD40EFRX-68N32N0
E:ID_REVISION=82.00A82
E:ID_SERIAL_SHORT=WD-WCC7K0XXXXXX
E:ID_ATA_WRITE_CACHE=1
E:ID_ATA_WRITE_CACHE_ENABLED=1
E:ID_ATA_ROTATION_RATE_RPM=5400
E:ID_ATA_SATA=1
E:ID_PART_TABLE_TYPE=gpt
E:ID_PATH=pci-0000:00:17.0-ata-1
";

    #[test]
    fn udev_filesystem_device_mapper_and_ata_properties() {
        let diskstats = "   8       0 sda 1 2 3 4 5 6 7 8 9 10 11
 253       0 dm-0 1 2 3 4 5 6 7 8 9 10 11
 253       1 dm-1 1 2 3 4 5 6 7 8 9 10 11
";
        let families = parse(diskstats, &|major, minor| match (major, minor) {
            ("8", "0") => Some(UDEV_ATA.to_string()),
            ("253", "0") => Some(UDEV_LVM.to_string()),
            // A device whose ATA record has a property that is no number.
            ("253", "1") => Some("E:ID_ATA=1\nE:ID_ATA_WRITE_CACHE=yes\n".to_string()),
            _ => None,
        });
        let labels = |name: &str| -> Vec<Vec<(String, String)>> {
            families
                .iter()
                .find(|family| family.name == name)
                .map(|family| family.samples.iter().map(|s| s.owned_labels()).collect())
                .unwrap_or_default()
        };
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            labels("node_disk_filesystem_info"),
            vec![pairs(&[
                ("device", "dm-0"),
                ("type", "ext4"),
                ("usage", "filesystem"),
                ("uuid", "a2b1c2d3-0f1e-4d5c-9b8a-112233445566"),
                ("version", "1.0"),
            ])]
        );
        assert_eq!(
            labels("node_disk_device_mapper_info"),
            vec![pairs(&[
                ("device", "dm-0"),
                ("name", "vg0-root"),
                (
                    "uuid",
                    "LVM-4wMbD4pfKbTnYB4X3bJ2Ck0aMwXeHTdkX0dNo1W6rEQ0tq7J1bnf6wrQ7F8YQOjZ"
                ),
                ("vg_name", "vg0"),
                ("lv_name", "root"),
                ("lv_layer", ""),
            ])]
        );
        for (name, value) in [
            ("node_disk_ata_write_cache", 1.0),
            ("node_disk_ata_write_cache_enabled", 1.0),
            ("node_disk_ata_rotation_rate_rpm", 5400.0),
        ] {
            let family = families.iter().find(|family| family.name == name).unwrap();
            assert_eq!(family.samples.len(), 1, "{name}: only sda");
            assert_eq!(family.samples[0].owned_labels(), pairs(&[("device", "sda")]));
            assert_eq!(family.samples[0].value, value);
        }
    }

    #[test]
    fn device_exclusion_matches_the_regex() {
        for excluded in [
            "sda1",
            "vdb12",
            "xvda1",
            "hdc3",
            "nvme0n1p1",
            "nvme10n2p3",
            "loop7",
            "ram0",
            "fd0",
        ] {
            assert!(is_excluded(excluded), "{excluded}");
        }
        for kept in [
            "sda", "vda", "nvme0n1", "dm-0", "md0", "sdaa1", "mmcblk0", "xvda", "loop", "zram0",
        ] {
            assert!(!is_excluded(kept), "{kept}");
        }
    }
}
