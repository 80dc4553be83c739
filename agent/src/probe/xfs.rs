//! The xfs collector: per-filesystem XFS runtime statistics from
//! `/sys/fs/xfs/<device>/stats/stats` (kernel 4.4 and later), as
//! node_exporter 1.5 serves them: 39 counters `node_xfs_*_total{device}`
//! for extent allocation, the allocation and block map B-trees, block
//! mapping, directory and inode operations, read and write calls and
//! vnodes. The device label is the directory's name (`sda1`, `dm-0`).
//!
//! The file is the format of /proc/fs/xfs/stat
//! (<https://xfs.org/index.php/Runtime_Stats>): a line per group, its name
//! and unsigned 32-bit counts (`xpc` holds 64-bit byte counts). As in
//! node_exporter, a known group with the wrong number of counts, or a
//! count that is not a number, fails the collection; groups it does not
//! know are checked as numbers and skipped.
//!
//! node_exporter reports success with no series on a host without XFS;
//! so does this collector, and where /sys/fs/xfs does not exist (the
//! module is not loaded) it does not look again.

use std::path::{Path, PathBuf};

use countywatch_wire::{MetricFamily, MetricKind};

use super::parse_error::ProbeParseError;
use super::{Probe, ProbeError};

/// Reads `<sysfs>/fs/xfs/*/stats/stats`.
pub struct XfsProbe {
    /// `<sysfs>/fs/xfs`.
    root: PathBuf,
    /// Set once the directory was found missing.
    absent: bool,
}

impl XfsProbe {
    /// A probe reading under `sysfs`.
    pub fn new(sysfs: &Path) -> Self {
        XfsProbe {
            root: sysfs.join("fs/xfs"),
            absent: false,
        }
    }
}

impl Probe for XfsProbe {
    fn name(&self) -> &'static str {
        "xfs"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["xfs"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let entries = match super::read_source_dir(&self.root, &mut self.absent) {
            Ok(entries) => entries,
            Err(ProbeError::Absent(_)) => return Ok(()),
            Err(error) => return Err(error),
        };
        let mut filesystems = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path().join("stats/stats");
            match super::read_pseudo_file(&path) {
                Ok(text) => {
                    filesystems.push((entry.file_name().to_string_lossy().into_owned(), text))
                }
                // The global `stats` directory and anything else without
                // a stats file of its own is not a filesystem.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotADirectory => {}
                Err(source) => return Err(ProbeError::Read { path, source }),
            }
        }
        filesystems.sort();
        let families = parse(&filesystems).map_err(|source| ProbeError::Parse {
            path: self.root.clone(),
            source,
        })?;
        out.extend(families);
        Ok(())
    }
}

/// A served counter: its stats group, its index in the group, and its
/// name and help as node_exporter gives them.
struct Counter {
    /// The group (line) name.
    group: &'static str,
    /// The count's index in the line.
    index: usize,
    /// The family name after `node_xfs_`.
    name: &'static str,
    /// The help text.
    help: &'static str,
}

/// Shorthand for the table.
const fn counter(
    group: &'static str,
    index: usize,
    name: &'static str,
    help: &'static str,
) -> Counter {
    Counter {
        group,
        index,
        name,
        help,
    }
}

/// The counters node_exporter serves, in its order.
#[rustfmt::skip]
const COUNTERS: [Counter; 39] = [
    counter("extent_alloc", 0, "extent_allocation_extents_allocated_total", "Number of extents allocated for a filesystem."),
    counter("extent_alloc", 1, "extent_allocation_blocks_allocated_total", "Number of blocks allocated for a filesystem."),
    counter("extent_alloc", 2, "extent_allocation_extents_freed_total", "Number of extents freed for a filesystem."),
    counter("extent_alloc", 3, "extent_allocation_blocks_freed_total", "Number of blocks freed for a filesystem."),
    counter("abt", 0, "allocation_btree_lookups_total", "Number of allocation B-tree lookups for a filesystem."),
    counter("abt", 1, "allocation_btree_compares_total", "Number of allocation B-tree compares for a filesystem."),
    counter("abt", 2, "allocation_btree_records_inserted_total", "Number of allocation B-tree records inserted for a filesystem."),
    counter("abt", 3, "allocation_btree_records_deleted_total", "Number of allocation B-tree records deleted for a filesystem."),
    counter("blk_map", 0, "block_mapping_reads_total", "Number of block map for read operations for a filesystem."),
    counter("blk_map", 1, "block_mapping_writes_total", "Number of block map for write operations for a filesystem."),
    counter("blk_map", 2, "block_mapping_unmaps_total", "Number of block unmaps (deletes) for a filesystem."),
    counter("blk_map", 3, "block_mapping_extent_list_insertions_total", "Number of extent list insertions for a filesystem."),
    counter("blk_map", 4, "block_mapping_extent_list_deletions_total", "Number of extent list deletions for a filesystem."),
    counter("blk_map", 5, "block_mapping_extent_list_lookups_total", "Number of extent list lookups for a filesystem."),
    counter("blk_map", 6, "block_mapping_extent_list_compares_total", "Number of extent list compares for a filesystem."),
    counter("bmbt", 0, "block_map_btree_lookups_total", "Number of block map B-tree lookups for a filesystem."),
    counter("bmbt", 1, "block_map_btree_compares_total", "Number of block map B-tree compares for a filesystem."),
    counter("bmbt", 2, "block_map_btree_records_inserted_total", "Number of block map B-tree records inserted for a filesystem."),
    counter("bmbt", 3, "block_map_btree_records_deleted_total", "Number of block map B-tree records deleted for a filesystem."),
    counter("dir", 0, "directory_operation_lookup_total", "Number of file name directory lookups which miss the operating systems directory name lookup cache."),
    counter("dir", 1, "directory_operation_create_total", "Number of times a new directory entry was created for a filesystem."),
    counter("dir", 2, "directory_operation_remove_total", "Number of times an existing directory entry was created for a filesystem."),
    counter("dir", 3, "directory_operation_getdents_total", "Number of times the directory getdents operation was performed for a filesystem."),
    counter("ig", 0, "inode_operation_attempts_total", "Number of times the OS looked for an XFS inode in the inode cache."),
    counter("ig", 1, "inode_operation_found_total", "Number of times the OS looked for and found an XFS inode in the inode cache."),
    counter("ig", 2, "inode_operation_recycled_total", "Number of times the OS found an XFS inode in the cache, but could not use it as it was being recycled."),
    counter("ig", 3, "inode_operation_missed_total", "Number of times the OS looked for an XFS inode in the cache, but did not find it."),
    counter("ig", 4, "inode_operation_duplicates_total", "Number of times the OS tried to add a missing XFS inode to the inode cache, but found it had already been added by another process."),
    counter("ig", 5, "inode_operation_reclaims_total", "Number of times the OS reclaimed an XFS inode from the inode cache to free memory for another purpose."),
    counter("ig", 6, "inode_operation_attribute_changes_total", "Number of times the OS explicitly changed the attributes of an XFS inode."),
    // The kernel writes `rw <write calls> <read calls>`.
    counter("rw", 1, "read_calls_total", "Number of read(2) system calls made to files in a filesystem."),
    counter("rw", 0, "write_calls_total", "Number of write(2) system calls made to files in a filesystem."),
    counter("vnodes", 0, "vnode_active_total", "Number of vnodes not on free lists for a filesystem."),
    counter("vnodes", 1, "vnode_allocate_total", "Number of times vn_alloc called for a filesystem."),
    counter("vnodes", 2, "vnode_get_total", "Number of times vn_get called for a filesystem."),
    counter("vnodes", 3, "vnode_hold_total", "Number of times vn_hold called for a filesystem."),
    counter("vnodes", 4, "vnode_release_total", "Number of times vn_rele called for a filesystem."),
    counter("vnodes", 5, "vnode_reclaim_total", "Number of times vn_reclaim called for a filesystem."),
    counter("vnodes", 6, "vnode_remove_total", "Number of times vn_remove called for a filesystem."),
];

/// The counts each group node_exporter knows must have (one or two
/// lengths: `vnodes` gained `free`, `qm` an unused count in 4.20).
const GROUP_LENGTHS: [(&str, usize, usize); 20] = [
    ("extent_alloc", 4, 4),
    ("abt", 4, 4),
    ("blk_map", 7, 7),
    ("bmbt", 4, 4),
    ("dir", 4, 4),
    ("trans", 3, 3),
    ("ig", 7, 7),
    ("log", 5, 5),
    ("push_ail", 10, 10),
    ("xstrat", 2, 2),
    ("rw", 2, 2),
    ("attr", 4, 4),
    ("icluster", 3, 3),
    ("vnodes", 7, 8),
    ("buf", 9, 9),
    ("abtb2", 15, 15),
    ("abtc2", 15, 15),
    ("bmbt2", 15, 15),
    ("ibt2", 15, 15),
    ("qm", 8, 9),
];

/// One filesystem's stats text to its served counts, in [`COUNTERS`]'
/// order, zero where the kernel has no line.
pub fn counts(text: &str) -> Result<[u32; 39], ProbeParseError> {
    let mut found = [0_u32; 39];
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(group), Some(_)) = (fields.next(), fields.clone().next()) else {
            continue;
        };
        if group == "xpc" {
            let numbers: Result<Vec<u64>, _> = fields.map(str::parse::<u64>).collect();
            match numbers {
                Ok(numbers) if numbers.len() == 3 => continue,
                _ => return Err(ProbeParseError::line("invalid xpc line", line)),
            }
        }
        let numbers = fields
            .map(str::parse::<u32>)
            .collect::<Result<Vec<u32>, _>>()
            .map_err(|_| ProbeParseError::line("invalid count in the line", line))?;
        let expected = GROUP_LENGTHS
            .iter()
            .chain(&[("debug", 1, 1)])
            .find(|(name, _, _)| *name == group);
        if let Some((_, shortest, longest)) = expected
            && !(*shortest..=*longest).contains(&numbers.len())
        {
            return Err(ProbeParseError::GroupLength {
                group: group.to_string(),
                found: numbers.len(),
                expected: *shortest,
            });
        }
        for (slot, counter) in found.iter_mut().zip(&COUNTERS) {
            if counter.group == group {
                *slot = numbers[counter.index];
            }
        }
    }
    Ok(found)
}

/// The filesystems' (device, stats text) to node_exporter's families.
pub fn parse(filesystems: &[(String, String)]) -> Result<Vec<MetricFamily>, ProbeParseError> {
    let mut families: Vec<MetricFamily> = COUNTERS
        .iter()
        .map(|counter| {
            MetricFamily::new(
                format!("node_xfs_{}", counter.name),
                counter.help,
                MetricKind::Counter,
            )
        })
        .collect();
    for (device, text) in filesystems {
        let found = counts(text).map_err(|problem| problem.in_part(device.as_str()))?;
        for (family, count) in families.iter_mut().zip(found) {
            family.push(&[("device", device)], f64::from(count));
        }
    }
    families.retain(|family| !family.samples.is_empty());
    Ok(families)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 6.1 kernel's file, with the groups node_exporter 1.5 does not
    /// know (`fibt2`, `rmapbt`, `refcntbt`, `defer_relog`).
    const STATS_6_1: &str = "extent_alloc 120 9632 40 3104
abt 0 0 0 0
blk_map 52311 8821 64 150 60 0 0
bmbt 0 0 0 0
dir 2210 180 96 7104
trans 0 15122 0
ig 0 3100 0 1410 0 1200 330
log 4109 65420 0 3304 3301
push_ail 19245 0 1011 880 0 25 0 12 0 20
xstrat 110 0
rw 70211 301882
attr 9410 0 0 0
icluster 600 420 1020
vnodes 210 0 0 0 1200 1200 1200 0
buf 30120 310 30100 12 0 20 0 40 410
abtb2 150 1200 12 10 0 0 0 30 0 0 0 0 0 0 160
abtc2 280 2300 20 18 0 0 0 52 0 0 0 0 0 0 300
bmbt2 4 12 1 0 0 0 0 1 0 0 0 0 0 0 4
ibt2 300 2400 5 3 0 0 0 14 0 0 0 0 0 0 310
fibt2 320 2500 5 3 0 0 0 14 0 0 0 0 0 0 330
rmapbt 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
refcntbt 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
qm 0 0 0 0 0 0 0 0 0
xpc 412438528 1248034816 5106118656
defer_relog 0
debug 0
";

    /// A 4.4 kernel's: `vnodes` without `free`, `qm` with eight counts.
    const STATS_4_4: &str = "extent_alloc 2 16 0 0
abt 0 0 0 0
blk_map 90 12 2 2 1 101 0
bmbt 0 0 0 0
dir 5 3 1 60
trans 5 48 0
ig 6 2 0 4 0 0 2
log 10 30 0 6000 5
push_ail 50 0 1200 17 0 2 0 2 0 2
xstrat 1 0
rw 31 20
attr 0 0 0 0
icluster 3 3 3
vnodes 5 0 0 0 2 2 2
buf 25 27 15 0 0 9 0 9 9
abtb2 1 1 0 0 0 0 0 0 0 0 0 0 0 0 0
abtc2 2 1 1 1 0 0 0 0 0 0 0 0 0 0 0
bmbt2 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
ibt2 3 3 0 0 0 0 0 0 0 0 0 0 0 0 0
qm 0 0 0 0 0 0 0 0
xpc 3571712 3568056 0
debug 0
";

    /// The global stats of the machine the tests were written on (a 6.18
    /// kernel, XFS loaded, nothing mounted): the newer B-tree groups, and
    /// `qm` with eight counts again.
    const STATS_6_18: &str = "extent_alloc 0 0 0 0
abt 0 0 0 0
blk_map 0 0 0 0 0 0 0
bmbt 0 0 0 0
dir 0 0 0 0
trans 0 0 0
ig 0 0 0 0 0 0 0
log 0 0 0 0 0
push_ail 0 0 0 0 0 0 0 0 0 0
xstrat 0 0
rw 0 0
attr 0 0 0 0
icluster 0 0 0
vnodes 0 0 0 0 0 0 0 0
buf 0 0 0 0 0 0 0 0 0
abtb2 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
abtc2 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
bmbt2 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
ibt2 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
fibt2 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
rmapbt 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
refcntbt 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
rmapbt_mem 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
rcbagbt 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
rtrmapbt 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
rtrmapbt_mem 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
rtrefcntbt 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
qm 0 0 0 0 0 0 0 0
xpc 0 0 0
defer_relog 0
debug 0
";

    #[test]
    fn this_machines_6_18_format_and_its_live_file() {
        assert_eq!(counts(STATS_6_18).unwrap(), [0; 39]);
        // The live file, where this host has XFS loaded.
        if let Ok(text) = crate::probe::read_pseudo_file("/sys/fs/xfs/stats/stats") {
            counts(&text).unwrap();
        }
    }

    fn sample(families: &[MetricFamily], name: &str, device: &str) -> Option<f64> {
        families
            .iter()
            .find(|family| family.name == name)?
            .samples
            .iter()
            .find(|sample| sample.labels[0].1 == device)
            .map(|sample| sample.value)
    }

    #[test]
    fn two_filesystems_of_two_kernels() {
        let families = parse(&[
            ("dm-0".to_string(), STATS_6_1.to_string()),
            ("sda1".to_string(), STATS_4_4.to_string()),
        ])
        .unwrap();
        assert_eq!(families.len(), 39);
        assert!(families.iter().all(|family| family.samples.len() == 2));
        for (name, dm, sda) in [
            (
                "node_xfs_extent_allocation_blocks_allocated_total",
                9632.0,
                16.0,
            ),
            ("node_xfs_block_mapping_reads_total", 52311.0, 90.0),
            ("node_xfs_directory_operation_getdents_total", 7104.0, 60.0),
            (
                "node_xfs_inode_operation_attribute_changes_total",
                330.0,
                2.0,
            ),
            ("node_xfs_read_calls_total", 301882.0, 20.0),
            ("node_xfs_write_calls_total", 70211.0, 31.0),
            ("node_xfs_vnode_remove_total", 1200.0, 2.0),
        ] {
            assert_eq!(sample(&families, name, "dm-0"), Some(dm), "{name}");
            assert_eq!(sample(&families, name, "sda1"), Some(sda), "{name}");
        }
        assert_eq!(families[0].kind, MetricKind::Counter);
    }

    #[test]
    fn malformed_groups_fail_and_unknown_ones_are_skipped() {
        assert!(counts("rw 1\n").is_err());
        assert!(counts("vnodes 1 2 3 4 5 6 7 8 9\n").is_err());
        assert!(counts("ig 1 2 3 4 5 6 x\n").is_err());
        assert!(counts("abt 4294967296 0 0 0\n").is_err());
        assert!(counts("xpc 1 2\n").is_err());
        assert!(counts("rmapbt x\n").is_err());
        assert_eq!(counts("rmapbt 1 2 3\nrw 7 8\nlonely\n").unwrap()[30], 8);
        assert!(parse(&[]).unwrap().is_empty());
    }

    #[test]
    fn a_fixture_tree_and_a_host_without_xfs() {
        let sysfs = tempfile::tempdir().unwrap();
        let xfs = sysfs.path().join("fs/xfs");
        // The global stats sit beside the filesystems and are not one.
        for (path, text) in [("stats/stats", STATS_6_1), ("sdb2/stats/stats", STATS_4_4)] {
            let path = xfs.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let mut probe = XfsProbe::new(sysfs.path());
        let mut out = Vec::new();
        probe.collect(&mut out).unwrap();
        assert_eq!(out.len(), 39);
        assert_eq!(out[0].samples.len(), 1);
        assert_eq!(out[0].samples[0].labels[0].1, "sdb2");

        let empty = tempfile::tempdir().unwrap();
        let mut probe = XfsProbe::new(empty.path());
        let mut out = Vec::new();
        probe.collect(&mut out).unwrap();
        assert!(probe.absent);
        std::fs::create_dir_all(empty.path().join("fs/xfs/sdc/stats")).unwrap();
        std::fs::write(empty.path().join("fs/xfs/sdc/stats/stats"), STATS_4_4).unwrap();
        probe.collect(&mut out).unwrap();
        assert!(out.is_empty(), "an absent source is not looked at again");
    }
}
