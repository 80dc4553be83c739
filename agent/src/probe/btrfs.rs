//! The btrfs collector: space allocation of mounted Btrfs filesystems from
//! `/sys/fs/btrfs/<uuid>`, as node_exporter 1.5 serves them from sysfs:
//! `node_btrfs_info{uuid,label}`, the global reserve, per block group type
//! (data, metadata, system) the reserved bytes and per layout (single,
//! dup, raid1, ...) the used and allocated bytes and allocation ratio, and
//! each device's size.
//!
//! node_exporter also asks a mounted filesystem's devices for their error
//! counters through btrfs ioctls (`node_btrfs_device_errors_total`,
//! `node_btrfs_device_unused_bytes`, and a `btrfs_dev_uuid` label on the
//! device size). This collector does not: it would add the workspace's
//! second `unsafe` call; it serves what node_exporter serves when those
//! ioctls fail (no permission, a mount it cannot see).
//!
//! As in node_exporter, a missing attribute reads as zero, and a missing
//! `devices`, `features` or allocation directory fails the collection. A
//! host without Btrfs reports success with no series; where /sys/fs/btrfs
//! does not exist (no module) it is not looked at again.

use std::path::{Path, PathBuf};

use countywatch_wire::{MetricFamily, MetricKind};

use super::{ATTRIBUTE_MAX, Probe, ProbeError, read_attribute};

/// Linux counts device sizes in 512-byte sectors, whatever the device's
/// block size.
const SECTOR_BYTES: u64 = 512;

/// The block group types, as sysfs and node_exporter name them.
const BLOCK_GROUP_TYPES: [&str; 3] = ["data", "metadata", "system"];

/// Reads `<sysfs>/fs/btrfs/*-*`.
pub struct BtrfsProbe {
    /// `<sysfs>/fs/btrfs`.
    root: PathBuf,
    /// Set once the directory was found missing.
    absent: bool,
}

impl BtrfsProbe {
    /// A probe reading under `sysfs`.
    pub fn new(sysfs: &Path) -> Self {
        BtrfsProbe {
            root: sysfs.join("fs/btrfs"),
            absent: false,
        }
    }
}

impl Probe for BtrfsProbe {
    fn name(&self) -> &'static str {
        "btrfs"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["btrfs"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let entries = match super::read_source_dir(&self.root, &mut self.absent) {
            Ok(entries) => entries,
            Err(ProbeError::Absent(_)) => return Ok(()),
            Err(error) => return Err(error),
        };
        // A filesystem's directory is its UUID; `features` is not one.
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().contains('-'))
            .map(|entry| entry.path())
            .collect();
        paths.sort();
        let filesystems = paths
            .iter()
            .map(|path| read_filesystem(path))
            .collect::<Result<Vec<_>, _>>()?;
        out.extend(families(&filesystems));
        Ok(())
    }
}

/// One filesystem's figures.
#[derive(Debug, Default)]
pub struct Filesystem {
    /// `metadata_uuid`, else the directory's name.
    pub uuid: String,
    /// `label`, empty when it has none.
    pub label: String,
    /// `allocation/global_rsv_size`.
    pub global_reserve: u64,
    /// Each device's name and size in bytes, by name.
    pub devices: Vec<(String, u64)>,
    /// Per block group type, in [`BLOCK_GROUP_TYPES`]' order.
    pub allocations: [Allocation; 3],
}

/// One block group type's space: reserved bytes, and each layout's name,
/// allocated and used bytes.
pub type Allocation = (u64, Vec<(String, u64, u64)>);

/// Reads an attribute's number: zero when it is missing or not a number,
/// as node_exporter reads it.
fn value(path: &Path) -> Result<u64, ProbeError> {
    match read_attribute(path, ATTRIBUTE_MAX) {
        Ok(text) => Ok(text.trim().parse().unwrap_or(0)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(source) => Err(ProbeError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// An attribute's text, trimmed; empty when it is missing.
fn text(path: &Path) -> Result<String, ProbeError> {
    match read_attribute(path, ATTRIBUTE_MAX) {
        Ok(text) => Ok(text.trim().to_string()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(ProbeError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The names in a directory that must exist, sorted; with `directories`
/// only the subdirectories.
fn names(dir: &Path, directories: bool) -> Result<Vec<String>, ProbeError> {
    let read_error = |source| ProbeError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        if !directories || entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found.sort();
    Ok(found)
}

/// Reads one filesystem's directory.
fn read_filesystem(path: &Path) -> Result<Filesystem, ProbeError> {
    let mut filesystem = Filesystem::default();
    for device in names(&path.join("devices"), false)? {
        let size = value(&path.join("devices").join(&device).join("size"))?;
        filesystem
            .devices
            .push((device, size.saturating_mul(SECTOR_BYTES)));
    }
    filesystem.label = text(&path.join("label"))?;
    filesystem.uuid = text(&path.join("metadata_uuid"))?;
    if filesystem.uuid.is_empty() {
        filesystem.uuid = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    // Read only to fail as node_exporter does when it is missing.
    names(&path.join("features"), false)?;
    let allocation = path.join("allocation");
    filesystem.global_reserve = value(&allocation.join("global_rsv_size"))?;
    for (slot, kind) in filesystem.allocations.iter_mut().zip(BLOCK_GROUP_TYPES) {
        let dir = allocation.join(kind);
        slot.0 = value(&dir.join("bytes_reserved"))?;
        for layout in names(&dir, true)? {
            let total = value(&dir.join(&layout).join("total_bytes"))?;
            let used = value(&dir.join(&layout).join("used_bytes"))?;
            slot.1.push((layout, total, used));
        }
    }
    Ok(filesystem)
}

/// How many bytes of disk a byte of a layout takes, as node_exporter
/// computes it from the number of devices; zero for layouts it does not
/// know (raid1c3, raid1c4).
pub fn allocation_ratio(layout: &str, devices: usize) -> f64 {
    let devices = devices as f64;
    match layout {
        "single" | "raid0" => 1.0,
        "dup" | "raid1" | "raid10" => 2.0,
        "raid5" => devices / (devices - 1.0),
        "raid6" => devices / (devices - 2.0),
        _ => 0.0,
    }
}

/// The filesystems' families, node_exporter's names and help.
pub fn families(filesystems: &[Filesystem]) -> Vec<MetricFamily> {
    let gauge = MetricKind::Gauge;
    let mut info = MetricFamily::new("node_btrfs_info", "Filesystem information", gauge);
    let mut reserve = MetricFamily::new(
        "node_btrfs_global_rsv_size_bytes",
        "Size of global reserve.",
        gauge,
    );
    let mut reserved = MetricFamily::new(
        "node_btrfs_reserved_bytes",
        "Amount of space reserved for a data type",
        gauge,
    );
    let mut used = MetricFamily::new(
        "node_btrfs_used_bytes",
        "Amount of used space by a layout/data type",
        gauge,
    );
    let mut size = MetricFamily::new(
        "node_btrfs_size_bytes",
        "Amount of space allocated for a layout/data type",
        gauge,
    );
    let mut ratio = MetricFamily::new(
        "node_btrfs_allocation_ratio",
        "Data allocation ratio for a layout/data type",
        gauge,
    );
    let mut device_size = MetricFamily::new(
        "node_btrfs_device_size_bytes",
        "Size of a device that is part of the filesystem.",
        gauge,
    );
    for filesystem in filesystems {
        let uuid = filesystem.uuid.as_str();
        info.push(&[("uuid", uuid), ("label", &filesystem.label)], 1.0);
        reserve.push(&[("uuid", uuid)], filesystem.global_reserve as f64);
        for (kind, (reserved_bytes, layouts)) in
            BLOCK_GROUP_TYPES.iter().zip(&filesystem.allocations)
        {
            reserved.push(
                &[("uuid", uuid), ("block_group_type", kind)],
                *reserved_bytes as f64,
            );
            for (layout, total, used_bytes) in layouts {
                let labels = [("uuid", uuid), ("block_group_type", kind), ("mode", layout)];
                used.push(&labels, *used_bytes as f64);
                size.push(&labels, *total as f64);
                ratio.push(&labels, allocation_ratio(layout, filesystem.devices.len()));
            }
        }
        for (device, bytes) in &filesystem.devices {
            device_size.push(&[("uuid", uuid), ("device", device)], *bytes as f64);
        }
    }
    let mut families = vec![info, reserve, reserved, used, size, ratio, device_size];
    families.retain(|family| !family.samples.is_empty());
    families
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{sample_value, write_tree};

    /// A two-device RAID 1 filesystem as a 6.1 kernel lays it out (the
    /// devices are symlinks to block devices there; directories here).
    fn raid1(root: &Path) {
        let fs = "fs/btrfs/6e2f1f1d-8b2c-4c9e-9c55-0a6a1bb0e1f4";
        let files: Vec<(String, &str)> = [
            ("label", "backups\n"),
            ("metadata_uuid", "6e2f1f1d-8b2c-4c9e-9c55-0a6a1bb0e1f4\n"),
            ("features/mixed_backref", "0\n"),
            ("devices/sdb/size", "20971520\n"),
            ("devices/sdc/size", "20971520\n"),
            ("allocation/global_rsv_size", "16777216\n"),
            ("allocation/data/bytes_reserved", "0\n"),
            ("allocation/data/raid1/total_bytes", "2147483648\n"),
            ("allocation/data/raid1/used_bytes", "1073741824\n"),
            ("allocation/metadata/bytes_reserved", "131072\n"),
            ("allocation/metadata/raid1/total_bytes", "268435456\n"),
            ("allocation/metadata/raid1/used_bytes", "1163264\n"),
            ("allocation/system/bytes_reserved", "0\n"),
            ("allocation/system/raid1/total_bytes", "8388608\n"),
            ("allocation/system/raid1/used_bytes", "16384\n"),
        ]
        .iter()
        .map(|(path, content)| (format!("{fs}/{path}"), *content))
        .collect();
        let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
        write_tree(root, &files);
    }

    #[test]
    fn a_raid1_filesystem_and_a_3_10_single_device_one_without_metadata_uuid() {
        let sysfs = tempfile::tempdir().unwrap();
        raid1(sysfs.path());
        // 3.10 has no metadata_uuid and no label file when none was set;
        // its data lives in `single`, its metadata in `dup`.
        let old = "fs/btrfs/0a1b2c3d-0000-4000-8000-000000000001";
        write_tree(
            sysfs.path(),
            &[
                ("fs/btrfs/features/raid56", "0\n"),
                (&format!("{old}/features/extended_iref"), "0\n"),
                (&format!("{old}/devices/vda2/size"), "41943040\n"),
                (&format!("{old}/allocation/global_rsv_size"), "4194304\n"),
                (
                    &format!("{old}/allocation/data/single/total_bytes"),
                    "1000\n",
                ),
                (&format!("{old}/allocation/data/single/used_bytes"), "600\n"),
                (&format!("{old}/allocation/metadata/dup/used_bytes"), "60\n"),
                (&format!("{old}/allocation/system/dup/used_bytes"), "1\n"),
            ],
        );
        let mut probe = BtrfsProbe::new(sysfs.path());
        let mut out = Vec::new();
        probe.collect(&mut out).unwrap();
        let names: Vec<&str> = out.iter().map(|family| family.name.as_ref()).collect();
        assert_eq!(
            names,
            vec![
                "node_btrfs_info",
                "node_btrfs_global_rsv_size_bytes",
                "node_btrfs_reserved_bytes",
                "node_btrfs_used_bytes",
                "node_btrfs_size_bytes",
                "node_btrfs_allocation_ratio",
                "node_btrfs_device_size_bytes",
            ]
        );
        let new = "6e2f1f1d-8b2c-4c9e-9c55-0a6a1bb0e1f4";
        let old = "0a1b2c3d-0000-4000-8000-000000000001";
        assert_eq!(
            sample_value(&out, "node_btrfs_info", &[new, "backups"]),
            Some(1.0)
        );
        assert_eq!(sample_value(&out, "node_btrfs_info", &[old, ""]), Some(1.0));
        assert_eq!(
            sample_value(&out, "node_btrfs_used_bytes", &[new, "metadata", "raid1"]),
            Some(1163264.0)
        );
        assert_eq!(
            sample_value(&out, "node_btrfs_allocation_ratio", &[new, "data", "raid1"]),
            Some(2.0)
        );
        assert_eq!(
            sample_value(&out, "node_btrfs_size_bytes", &[old, "metadata", "dup"]),
            Some(0.0)
        );
        assert_eq!(
            sample_value(&out, "node_btrfs_device_size_bytes", &[new, "sdc"]),
            Some(10737418240.0)
        );
        assert_eq!(
            sample_value(&out, "node_btrfs_reserved_bytes", &[new, "metadata"]),
            Some(131072.0)
        );
        assert_eq!(out[0].samples.len(), 2);
    }

    #[test]
    fn ratios_and_missing_directories() {
        assert_eq!(allocation_ratio("raid5", 3), 1.5);
        assert_eq!(allocation_ratio("raid6", 4), 2.0);
        assert_eq!(allocation_ratio("raid1c3", 3), 0.0);
        // A filesystem without its devices directory fails, as in
        // node_exporter; a host with only `features` has none.
        let sysfs = tempfile::tempdir().unwrap();
        write_tree(sysfs.path(), &[("fs/btrfs/features/raid56", "0\n")]);
        let mut probe = BtrfsProbe::new(sysfs.path());
        let mut out = Vec::new();
        probe.collect(&mut out).unwrap();
        assert!(out.is_empty());
        write_tree(sysfs.path(), &[("fs/btrfs/a-b/label", "x\n")]);
        assert!(probe.collect(&mut out).is_err());

        let none = tempfile::tempdir().unwrap();
        let mut probe = BtrfsProbe::new(none.path());
        probe.collect(&mut out).unwrap();
        raid1(none.path());
        probe.collect(&mut out).unwrap();
        assert!(out.is_empty(), "an absent source is not looked at again");
    }
}
