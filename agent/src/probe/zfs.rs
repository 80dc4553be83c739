//! The zfs collector: OpenZFS kstats from /proc/spl/kstat/zfs, as
//! node_exporter 1.5 serves them on Linux: every unsigned 64-bit figure of
//! the module-wide kstat files (`arcstats` as `node_zfs_arc_<name>`,
//! `abdstats`, `dbuf_stats`, `dmu_tx`, `dnodestats`, `fm`,
//! `vdev_cache_stats`, `vdev_mirror_stats`, `xuio_stats`, `zfetchstats`,
//! `zil`) untyped with the kstat's path as help; per pool the `io` kstat
//! (`node_zfs_zpool_<field>{zpool}`, ZFS before 2.1), each dataset's
//! `objset-*` (`node_zfs_zpool_dataset_<name>{zpool,dataset}`) and the
//! pool's state (`node_zfs_zpool_state{zpool,state}`, one series per state
//! node_exporter knows, the current one 1).
//!
//! A kstat file is a header line, a `name type data` line, then a line
//! per figure: its name, its type number (4 is an unsigned 64-bit
//! integer; other types are skipped, as node_exporter skips them) and its
//! value. A file missing is a feature this ZFS version lacks and is
//! skipped; a file without the column line, a figure that is not a
//! number or a name that cannot be a metric name fails the collection.
//!
//! A host without the ZFS module has no /proc/spl/kstat/zfs: the collector
//! is absent there, as in node_exporter, and does not look again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use countywatch_wire::{MetricFamily, MetricKind};

use super::parse_error::ProbeParseError;
use super::{Probe, ProbeError};

/// The module-wide kstat files and the subsystem each is served under.
const KSTAT_FILES: [(&str, &str); 11] = [
    ("abdstats", "zfs_abd"),
    ("arcstats", "zfs_arc"),
    ("dbuf_stats", "zfs_dbuf"),
    ("dmu_tx", "zfs_dmu_tx"),
    ("dnodestats", "zfs_dnode"),
    ("fm", "zfs_fm"),
    ("vdev_cache_stats", "zfs_vdev_cache"),
    ("vdev_mirror_stats", "zfs_vdev_mirror"),
    ("xuio_stats", "zfs_xuio"),
    ("zfetchstats", "zfs_zfetch"),
    ("zil", "zfs_zil"),
];

/// The pool states node_exporter reports, lower case.
const POOL_STATES: [&str; 6] = [
    "online", "degraded", "faulted", "offline", "removed", "unavail",
];

/// The kstat type number of an unsigned 64-bit integer.
const KSTAT_UINT64: &str = "4";

/// Reads `<procfs>/spl/kstat/zfs`.
pub struct ZfsProbe {
    /// `<procfs>/spl/kstat/zfs`.
    root: PathBuf,
    /// Set once the directory was found missing.
    absent: bool,
}

impl ZfsProbe {
    /// A probe reading under `procfs`.
    pub fn new(procfs: &Path) -> Self {
        ZfsProbe {
            root: procfs.join("spl/kstat/zfs"),
            absent: false,
        }
    }
}

/// The families of a collection by name. Unlike `FamilySet` it does not
/// look for a repeated label set before adding a sample: every series here
/// is a different figure, pool or dataset (the kernel keeps those names
/// unique), so a file server with thousands of datasets costs no
/// quadratic search.
#[derive(Debug, Default)]
pub struct Families(BTreeMap<String, MetricFamily>);

impl Families {
    /// Adds a sample to the family `name`, creating it with the help
    /// `help` makes (once per family) if it is new.
    fn push(
        &mut self,
        name: String,
        help: impl FnOnce() -> String,
        kind: MetricKind,
        labels: &[(&'static str, &str)],
        value: f64,
    ) {
        self.0
            .entry(name)
            .or_insert_with_key(|name| MetricFamily::new(name.clone(), help(), kind))
            .push(labels, value);
    }

    /// The families, in name order.
    pub fn into_families(self) -> Vec<MetricFamily> {
        self.0.into_values().collect()
    }
}

/// A file's text, `None` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, ProbeError> {
    match super::read_pseudo_file(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ProbeError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

impl Probe for ZfsProbe {
    fn name(&self) -> &'static str {
        "zfs"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["zfs"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let entries = super::read_source_dir(&self.root, &mut self.absent)?;
        let mut pools: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
            .map(|entry| entry.path())
            .collect();
        pools.sort();
        let mut families = Families::default();
        let parse_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ProbeError::Parse { path, source }
        };
        for (file, subsystem) in KSTAT_FILES {
            let path = self.root.join(file);
            if let Some(text) = read_optional(&path)? {
                kstat(&text, subsystem, file, &mut families).map_err(parse_error(&path))?;
            }
        }
        for pool_path in &pools {
            let pool = pool_path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            let io_path = pool_path.join("io");
            if let Some(text) = read_optional(&io_path)? {
                pool_io(&text, &pool, &mut families).map_err(parse_error(&io_path))?;
            }
            let mut objsets: Vec<PathBuf> = std::fs::read_dir(pool_path)
                .map_err(|source| ProbeError::Read {
                    path: pool_path.clone(),
                    source,
                })?
                .filter_map(Result::ok)
                .filter(|entry| entry.file_name().to_string_lossy().starts_with("objset-"))
                .map(|entry| entry.path())
                .collect();
            objsets.sort();
            for path in objsets {
                if let Some(text) = read_optional(&path)? {
                    objset(&text, &pool, &mut families).map_err(parse_error(&path))?;
                }
            }
            if let Some(text) = read_optional(&pool_path.join("state"))? {
                pool_state(&text, &pool, &mut families);
            }
        }
        out.extend(families.into_families());
        Ok(())
    }
}

/// The figure lines after a kstat file's `name type data` line as (name,
/// type, value text); an error when the file has no such line.
fn kstat_lines(text: &str) -> Result<impl Iterator<Item = (&str, &str, &str)>, ProbeParseError> {
    let mut lines = text.lines();
    lines
        .by_ref()
        .find(|line| line.split_whitespace().eq(["name", "type", "data"]))
        .ok_or(ProbeParseError::Malformed("no `name type data` line"))?;
    Ok(lines.filter_map(|line| {
        let mut fields = line.split_whitespace();
        Some((fields.next()?, fields.next()?, fields.next()?))
    }))
}

/// A kstat figure's family name: `node_<subsystem>_<name>`, dashes as
/// underscores; an error when that is not a metric name.
fn family_name(subsystem: &str, name: &str) -> Result<String, ProbeParseError> {
    let family = format!("node_{subsystem}_{}", name.replace('-', "_"));
    if countywatch_wire::is_valid_metric_name(&family) {
        Ok(family)
    } else {
        Err(ProbeParseError::MetricName {
            name: name.to_string(),
        })
    }
}

/// A figure's value.
fn number(name: &str, value: &str) -> Result<f64, ProbeParseError> {
    value
        .parse::<u64>()
        .map(|value| value as f64)
        .map_err(|_| ProbeParseError::NotUnsigned {
            field: name.to_string(),
            value: value.to_string(),
        })
}

/// A module-wide kstat file (`arcstats`) into `families`.
pub fn kstat(
    text: &str,
    subsystem: &str,
    file: &str,
    families: &mut Families,
) -> Result<(), ProbeParseError> {
    for (name, kind, value) in kstat_lines(text)? {
        if kind == KSTAT_UINT64 {
            let help = || format!("kstat.zfs.misc.{file}.{name}");
            families.push(
                family_name(subsystem, name)?,
                help,
                MetricKind::Untyped,
                &[],
                number(name, value)?,
            );
        }
    }
    Ok(())
}

/// A pool's `io` kstat (a line of field names starting with `nread`, then
/// a line of values) into `families`.
pub fn pool_io(text: &str, pool: &str, families: &mut Families) -> Result<(), ProbeParseError> {
    let mut lines = text.lines();
    let Some(header) = lines.by_ref().find(|line| {
        let mut fields = line.split_whitespace();
        fields.next() == Some("nread") && fields.count() >= 11
    }) else {
        return Ok(());
    };
    for line in lines {
        let values: Vec<&str> = line.split_whitespace().collect();
        for (index, field) in header.split_whitespace().enumerate() {
            let value = values.get(index).ok_or_else(|| ProbeParseError::NoValue {
                field: field.to_string(),
                line: line.to_string(),
            })?;
            let help = || format!("kstat.zfs.misc.io.{field}");
            families.push(
                family_name("zfs_zpool", field)?,
                help,
                MetricKind::Untyped,
                &[("zpool", pool)],
                number(field, value)?,
            );
        }
    }
    Ok(())
}

/// A dataset's `objset-*` kstat into `families`, labelled by the
/// `dataset_name` it names.
pub fn objset(text: &str, pool: &str, families: &mut Families) -> Result<(), ProbeParseError> {
    let mut dataset = "";
    for (name, kind, value) in kstat_lines(text)? {
        if name == "dataset_name" {
            dataset = value;
        } else if kind == KSTAT_UINT64 {
            let help = || format!("kstat.zfs.misc.objset.{name}");
            let labels = [("zpool", pool), ("dataset", dataset)];
            families.push(
                family_name("zfs_zpool_dataset", name)?,
                help,
                MetricKind::Untyped,
                &labels,
                number(name, value)?,
            );
        }
    }
    Ok(())
}

/// A pool's `state` file (`ONLINE`) into one series per known state.
pub fn pool_state(text: &str, pool: &str, families: &mut Families) {
    let current = text.lines().next().unwrap_or_default().to_lowercase();
    for state in POOL_STATES {
        families.push(
            "node_zfs_zpool_state".to_string(),
            || "kstat.zfs.misc.state".to_string(),
            MetricKind::Gauge,
            &[("zpool", pool), ("state", state)],
            if current == state { 1.0 } else { 0.0 },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::sample_value;

    /// The start of an OpenZFS 2.1 arcstats, with a figure of another type.
    const ARCSTATS: &str = "13 1 0x01 123 33456 5101245712 889135473204
name                            type data
hits                            4    8772612
misses                          4    604635
demand_data_hits                4    7221032
c_min                           4    33554432
arc_no_grow                     4    0
memory_available_bytes          3    -1200000
l2_write_buffer_bytes_scanned   4    0
";

    /// An OpenZFS 2.1 dataset kstat.
    const OBJSET: &str = "48 1 0x01 7 2160 5214003127 877463470512
name                            type data
dataset_name                    7    pool0/home
writes                          4    4
nwritten                        4    2048
reads                           4    20
nread                           4    11264
nunlinks                        4    0
nunlinked                       4    0
";

    /// A ZFS 0.7 pool `io` kstat (removed in 2.1).
    const POOL_IO: &str = "12 3 0x00 1 80 2225326830828 32953699592196
nread    nwritten reads    writes   wtime    wlentime wupdate  rtime    rlentime rupdate  wcnt     rcnt
1884160  3206144  22       132      7155162  104112268 25347565 24721035 1001112 3203426 0        0
";

    #[test]
    fn module_pool_and_dataset_kstats() {
        let mut families = Families::default();
        kstat(ARCSTATS, "zfs_arc", "arcstats", &mut families).unwrap();
        pool_io(POOL_IO, "pool0", &mut families).unwrap();
        objset(OBJSET, "pool0", &mut families).unwrap();
        pool_state("DEGRADED\n", "pool0", &mut families);
        let families = families.into_families();
        let hits = families
            .iter()
            .find(|family| family.name == "node_zfs_arc_hits")
            .unwrap();
        assert_eq!(hits.help, "kstat.zfs.misc.arcstats.hits");
        assert_eq!(hits.kind, MetricKind::Untyped);
        assert_eq!(hits.samples[0].value, 8772612.0);
        assert_eq!(
            sample_value(&families, "node_zfs_arc_c_min", &[]),
            Some(33554432.0)
        );
        assert_eq!(
            sample_value(&families, "node_zfs_arc_memory_available_bytes", &[]),
            None
        );
        assert_eq!(
            sample_value(&families, "node_zfs_zpool_nwritten", &["pool0"]),
            Some(3206144.0)
        );
        assert_eq!(
            sample_value(&families, "node_zfs_zpool_rupdate", &["pool0"]),
            Some(3203426.0)
        );
        assert_eq!(
            sample_value(
                &families,
                "node_zfs_zpool_dataset_nread",
                &["pool0", "pool0/home"]
            ),
            Some(11264.0)
        );
        assert_eq!(
            sample_value(&families, "node_zfs_zpool_dataset_dataset_name", &[]),
            None
        );
        assert_eq!(
            sample_value(&families, "node_zfs_zpool_state", &["degraded"]),
            Some(1.0)
        );
        assert_eq!(
            sample_value(&families, "node_zfs_zpool_state", &["online"]),
            Some(0.0)
        );
        let states = families
            .iter()
            .find(|family| family.name == "node_zfs_zpool_state")
            .unwrap();
        assert_eq!(states.samples.len(), 6);
        assert_eq!(states.kind, MetricKind::Gauge);
    }

    #[test]
    fn malformed_kstats_fail() {
        let mut families = Families::default();
        assert!(
            kstat(
                "13 1 0x01\nhits 4 1\n",
                "zfs_arc",
                "arcstats",
                &mut families
            )
            .is_err()
        );
        assert!(
            kstat(
                "name type data\nhits 4 -1\n",
                "zfs_arc",
                "arcstats",
                &mut families
            )
            .is_err()
        );
        assert!(
            kstat(
                "name type data\nh{i}ts 4 1\n",
                "zfs_arc",
                "arcstats",
                &mut families
            )
            .is_err()
        );
        assert!(pool_io("nread a b c d e f g h i j k\n1 2\n", "p", &mut families).is_err());
        assert!(objset("dataset_name 7 x\n", "p", &mut families).is_err());
    }

    #[test]
    fn a_fixture_tree_and_a_host_without_zfs() {
        let procfs = tempfile::tempdir().unwrap();
        let root = procfs.path().join("spl/kstat/zfs");
        for (path, text) in [
            ("arcstats", ARCSTATS),
            ("pool0/objset-0x36", OBJSET),
            ("pool0/state", "ONLINE\n"),
            ("pool1/state", "FAULTED\n"),
        ] {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let mut probe = ZfsProbe::new(procfs.path());
        let mut out = Vec::new();
        probe.collect(&mut out).unwrap();
        assert_eq!(
            sample_value(&out, "node_zfs_arc_misses", &[]),
            Some(604635.0)
        );
        assert_eq!(
            sample_value(&out, "node_zfs_zpool_dataset_writes", &["pool0/home"]),
            Some(4.0)
        );
        assert_eq!(
            sample_value(&out, "node_zfs_zpool_state", &["pool1", "faulted"]),
            Some(1.0)
        );

        let empty = tempfile::tempdir().unwrap();
        let mut probe = ZfsProbe::new(empty.path());
        assert!(matches!(
            probe.collect(&mut out),
            Err(ProbeError::Absent(_))
        ));
        std::fs::create_dir_all(empty.path().join("spl/kstat/zfs")).unwrap();
        assert!(matches!(
            probe.collect(&mut out),
            Err(ProbeError::Absent(_))
        ));
    }
}
