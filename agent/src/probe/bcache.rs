//! The bcache collector: cache sets from `/sys/fs/bcache/<uuid>`, as
//! node_exporter 1.5 serves them with its defaults (priority stats off,
//! since reading them makes the kernel walk every bucket): per set the
//! btree and journal figures `node_bcache_*{uuid}`, per backing device
//! (`bdev0`) the dirty data, writeback controller and lifetime hit and
//! bypass counters `{uuid,backing_device}`, and per cache device (`cache0`)
//! its errors and bytes written `{uuid,cache_device}`.
//!
//! sysfs writes sizes "humanized" (`1.5M`, `-3.2k`, `512`; bcache's own
//! format, whose fraction is in 1024ths written as tenths, so node_exporter
//! reads `1.5k` as 1 + 5/10.24 KiB); [`dehumanize`] reads them as
//! node_exporter does, so the figures agree. As in node_exporter, a missing
//! attribute reads as zero, while an unreadable one, a value that does not
//! parse, or a backing device without `writeback_rate_debug` fails the
//! collection. `btree_read_average_duration_us` is served as node_exporter
//! 1.5 serves it: multiplied by 1e-9, as if it were nanoseconds.
//!
//! A host without bcache sets reports success with no series; where
//! /sys/fs/bcache does not exist (no module) it is not looked at again.

use std::path::{Path, PathBuf};

use countywatch_wire::{MetricFamily, MetricKind};

use super::family_set::FamilySet;
use super::parse_error::ProbeParseError;
use super::{ATTRIBUTE_MAX, Probe, ProbeError, read_attribute};

/// Reads `<sysfs>/fs/bcache/*-*`.
pub struct BcacheProbe {
    /// `<sysfs>/fs/bcache`.
    root: PathBuf,
    /// Set once the directory was found missing.
    absent: bool,
}

impl BcacheProbe {
    /// A probe reading under `sysfs`.
    pub fn new(sysfs: &Path) -> Self {
        BcacheProbe {
            root: sysfs.join("fs/bcache"),
            absent: false,
        }
    }
}

impl Probe for BcacheProbe {
    fn name(&self) -> &'static str {
        "bcache"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["bcache"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let entries = match super::read_source_dir(&self.root, &mut self.absent) {
            Ok(entries) => entries,
            Err(ProbeError::Absent(_)) => return Ok(()),
            Err(error) => return Err(error),
        };
        // A set's directory is its UUID; `register` and the like are not.
        let mut sets: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().contains('-'))
            .map(|entry| entry.path())
            .collect();
        sets.sort();
        let mut families = FamilySet::default();
        for set in &sets {
            read_set(set, &mut families)?;
        }
        out.extend(families.into_families());
        Ok(())
    }
}

/// A served figure: its attribute (a path under its directory), its name
/// after `node_bcache_`, help, type and the factor it is served with.
type Figure = (&'static str, &'static str, &'static str, MetricKind, f64);

/// A cache set's own figures.
#[rustfmt::skip]
const SET_FIGURES: [Figure; 10] = [
    ("average_key_size", "average_key_size_sectors", "Average data per key in the btree (sectors).", MetricKind::Gauge, 1.0),
    ("btree_cache_size", "btree_cache_size_bytes", "Amount of memory currently used by the btree cache.", MetricKind::Gauge, 1.0),
    ("cache_available_percent", "cache_available_percent", "Percentage of cache device without dirty data, usable for writeback (may contain clean cached data).", MetricKind::Gauge, 1.0),
    ("congested", "congested", "Congestion.", MetricKind::Gauge, 1.0),
    ("root_usage_percent", "root_usage_percent", "Percentage of the root btree node in use (tree depth increases if too high).", MetricKind::Gauge, 1.0),
    ("tree_depth", "tree_depth", "Depth of the btree.", MetricKind::Gauge, 1.0),
    ("internal/active_journal_entries", "active_journal_entries", "Number of journal entries that are newer than the index.", MetricKind::Gauge, 1.0),
    ("internal/btree_nodes", "btree_nodes", "Total nodes in the btree.", MetricKind::Gauge, 1.0),
    ("internal/btree_read_average_duration_us", "btree_read_average_duration_seconds", "Average btree read duration.", MetricKind::Gauge, 1e-9),
    ("internal/cache_read_races", "cache_read_races_total", "Counts instances where while data was being read from the cache, the bucket was reused and invalidated - i.e. where the pointer was stale after the read completed.", MetricKind::Counter, 1.0),
];

/// A backing device's lifetime counters, under `stats_total`.
const BACKING_TOTALS: [Figure; 7] = [
    (
        "stats_total/bypassed",
        "bypassed_bytes_total",
        "Amount of IO (both reads and writes) that has bypassed the cache.",
        MetricKind::Counter,
        1.0,
    ),
    (
        "stats_total/cache_hits",
        "cache_hits_total",
        "Hits counted per individual IO as bcache sees them.",
        MetricKind::Counter,
        1.0,
    ),
    (
        "stats_total/cache_misses",
        "cache_misses_total",
        "Misses counted per individual IO as bcache sees them.",
        MetricKind::Counter,
        1.0,
    ),
    (
        "stats_total/cache_bypass_hits",
        "cache_bypass_hits_total",
        "Hits for IO intended to skip the cache.",
        MetricKind::Counter,
        1.0,
    ),
    (
        "stats_total/cache_bypass_misses",
        "cache_bypass_misses_total",
        "Misses for IO intended to skip the cache.",
        MetricKind::Counter,
        1.0,
    ),
    (
        "stats_total/cache_miss_collisions",
        "cache_miss_collisions_total",
        "Instances where data insertion from cache miss raced with write (data already present).",
        MetricKind::Counter,
        1.0,
    ),
    (
        "stats_total/cache_readaheads",
        "cache_readaheads_total",
        "Count of times readahead occurred.",
        MetricKind::Counter,
        1.0,
    ),
];

/// A cache device's figures.
#[rustfmt::skip]
const CACHE_FIGURES: [Figure; 3] = [
    ("io_errors", "io_errors", "Number of errors that have occurred, decayed by io_error_halflife.", MetricKind::Gauge, 1.0),
    ("metadata_written", "metadata_written_bytes_total", "Sum of all non data writes (btree writes and all other metadata).", MetricKind::Counter, 1.0),
    ("written", "written_bytes_total", "Sum of all data that has been written to the cache.", MetricKind::Counter, 1.0),
];

/// The `writeback_rate_debug` lines served, their family names after
/// `node_bcache_` and help.
#[rustfmt::skip]
const WRITEBACK: [(&str, &str, &str); 5] = [
    ("target", "dirty_target_bytes", "Current dirty data target threshold for this backing device in bytes."),
    ("rate", "writeback_rate", "Current writeback rate for this backing device in bytes."),
    ("proportional", "writeback_rate_proportional_term", "Current result of proportional controller, part of writeback rate"),
    ("integral", "writeback_rate_integral_term", "Current result of integral controller, part of writeback rate"),
    ("change", "writeback_change", "Last writeback rate change step for this backing device."),
];

/// Reads a humanized attribute: zero when it is missing.
fn value(path: &Path) -> Result<f64, ProbeError> {
    match read_attribute(path, ATTRIBUTE_MAX) {
        Ok(text) => dehumanize(text.trim_end_matches('\n')).map_err(|source| ProbeError::Parse {
            path: path.to_path_buf(),
            source,
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0.0),
        Err(source) => Err(ProbeError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Adds `figures` read under `dir` with `labels`.
fn push_figures(
    families: &mut FamilySet,
    dir: &Path,
    figures: &[Figure],
    labels: &[(&'static str, &str)],
) -> Result<(), ProbeError> {
    for (attribute, name, help, kind, factor) in figures {
        let figure = value(&dir.join(attribute))? * factor;
        families.push(&format!("node_bcache_{name}"), help, *kind, labels, figure);
    }
    Ok(())
}

/// The subdirectories of `set` named `prefix<digit>...`, sorted.
fn members(set: &Path, prefix: &str) -> Result<Vec<String>, ProbeError> {
    let entries = std::fs::read_dir(set).map_err(|source| ProbeError::Read {
        path: set.to_path_buf(),
        source,
    })?;
    let mut found: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            name.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Reads one cache set into `families`.
fn read_set(set: &Path, families: &mut FamilySet) -> Result<(), ProbeError> {
    let uuid = set
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    push_figures(families, set, &SET_FIGURES, &[("uuid", &uuid)])?;
    for backing in members(set, "bdev")? {
        let dir = set.join(&backing);
        let labels = [
            ("uuid", uuid.as_str()),
            ("backing_device", backing.as_str()),
        ];
        families.push(
            "node_bcache_dirty_data_bytes",
            "Amount of dirty data for this backing device in the cache.",
            MetricKind::Gauge,
            &labels,
            value(&dir.join("dirty_data"))?,
        );
        let debug_path = dir.join("writeback_rate_debug");
        let debug = super::read_pseudo_file(&debug_path).map_err(|source| ProbeError::Read {
            path: debug_path.clone(),
            source,
        })?;
        let rates = writeback_rate_debug(&debug).map_err(|source| ProbeError::Parse {
            path: debug_path,
            source,
        })?;
        for ((_, name, help), rate) in WRITEBACK.iter().zip(rates) {
            let name = format!("node_bcache_{name}");
            families.push(&name, help, MetricKind::Gauge, &labels, rate);
        }
        push_figures(families, &dir, &BACKING_TOTALS, &labels)?;
    }
    for cache in members(set, "cache")? {
        let labels = [("uuid", uuid.as_str()), ("cache_device", cache.as_str())];
        push_figures(families, &set.join(&cache), &CACHE_FIGURES, &labels)?;
    }
    Ok(())
}

/// A humanized number as node_exporter reads it: a plain number, or a
/// mantissa and a binary unit letter (`k`, `M`, ... `Y`) whose fraction
/// digits count 1/10.24ths, truncated to a whole number. A leading `-` is
/// kept (the controller terms are signed).
pub fn dehumanize(text: &str) -> Result<f64, ProbeParseError> {
    let (negative, magnitude) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let Some(last) = magnitude.chars().last() else {
        return Err(ProbeParseError::Malformed("an empty value"));
    };
    // As in node_exporter, a last byte above `9` is a unit letter.
    let value = if last <= '9' {
        magnitude
            .parse::<f64>()
            .map_err(|_| ProbeParseError::value("not a number:", text))?
    } else {
        let exponent = "kMGTPEZY".find(last).map_or(0, |index| index + 1);
        // An unknown letter multiplies by zero in node_exporter.
        let multiplier = if exponent == 0 {
            0.0
        } else {
            1024_f64.powi(exponent as i32)
        };
        let mantissa = &magnitude[..magnitude.len() - last.len_utf8()];
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let parse = |part: &str| {
            part.parse::<f64>()
                .map_err(|_| ProbeParseError::value("not a number:", text))
        };
        let mut number = parse(whole)?;
        if mantissa.contains('.') {
            number += parse(fraction)? / 10.24;
        }
        number * multiplier
    };
    // node_exporter truncates to a whole number, a negative one to zero
    // unless it reads the value as signed.
    let whole = value.trunc();
    Ok(if negative { -whole } else { whole.max(0.0) })
}

/// `writeback_rate_debug` to (target, rate, proportional, integral,
/// change), zero for a line it lacks.
pub fn writeback_rate_debug(text: &str) -> Result<[f64; 5], ProbeParseError> {
    let mut found = [0.0; 5];
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let Some(slot) = WRITEBACK.iter().position(|(name, _, _)| *name == key) else {
            if key == "next io" {
                let value = rest.split_whitespace().last().unwrap_or_default();
                value
                    .trim_end_matches("ms")
                    .parse::<i64>()
                    .map_err(|_| ProbeParseError::line("not a number:", line))?;
            } else if key == "dirty" {
                dehumanize(rest.split_whitespace().last().unwrap_or_default())?;
            }
            continue;
        };
        let value = rest.split_whitespace().last().unwrap_or_default();
        found[slot] = dehumanize(value.trim_end_matches("/sec"))?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanized_numbers_as_node_exporter_reads_them() {
        for (text, expected) in [
            ("0", 0.0),
            ("512", 512.0),
            ("1.5k", 1524.0),
            ("2.0M", 2097152.0),
            ("-3.2k", -3272.0),
            ("7G", 7516192768.0),
            ("4x", 0.0),
        ] {
            assert_eq!(dehumanize(text), Ok(expected), "{text}");
        }
        for text in ["", "k", "1.xk", "abc"] {
            assert!(dehumanize(text).is_err(), "{text}");
        }
    }

    /// A 6.1 kernel's writeback_rate_debug.
    const DEBUG_6_1: &str = "rate:\t\t1.1M/sec
dirty:\t\t20.4G
target:\t\t20.4G
proportional:\t427.5k
integral:\t-3.5M
change:\t\t-1.1k/sec
next io:\t-45ms
";

    #[test]
    fn the_writeback_controller() {
        let [target, rate, proportional, integral, change] =
            writeback_rate_debug(DEBUG_6_1).unwrap();
        // The figures node_exporter 1.5 serves for this file.
        assert_eq!(target, 21894266880.0);
        assert_eq!(rate, 1150976.0);
        assert_eq!(proportional, 437748.0);
        assert_eq!(integral, -3657728.0);
        assert_eq!(change, -1124.0);
        assert!(writeback_rate_debug("next io: soon\n").is_err());
        assert!(writeback_rate_debug("rate: fast/sec\n").is_err());
    }

    #[test]
    fn a_fixture_cache_set_with_one_backing_and_one_cache_device() {
        let sysfs = tempfile::tempdir().unwrap();
        let set = sysfs
            .path()
            .join("fs/bcache/deaddd54-c735-46d5-868e-f331c5fd7c74");
        for (path, content) in [
            ("average_key_size", "0\n"),
            ("btree_cache_size", "0\n"),
            ("cache_available_percent", "100\n"),
            ("congested", "0\n"),
            ("root_usage_percent", "0\n"),
            ("tree_depth", "0\n"),
            ("internal/active_journal_entries", "1\n"),
            ("internal/btree_nodes", "2\n"),
            ("internal/btree_read_average_duration_us", "1305\n"),
            ("internal/cache_read_races", "0\n"),
            ("bdev0/dirty_data", "1.5k\n"),
            ("bdev0/writeback_rate_debug", DEBUG_6_1),
            ("bdev0/stats_total/bypassed", "4.2M\n"),
            ("bdev0/stats_total/cache_hits", "289\n"),
            ("bdev0/stats_total/cache_misses", "1778\n"),
            ("cache0/io_errors", "0\n"),
            ("cache0/metadata_written", "512\n"),
            ("cache0/written", "0\n"),
        ] {
            let path = set.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        std::fs::write(sysfs.path().join("fs/bcache/register"), "").unwrap();
        let mut probe = BcacheProbe::new(sysfs.path());
        let mut out = Vec::new();
        probe.collect(&mut out).unwrap();
        // 10 set, 6 + 7 backing device and 3 cache device families.
        assert_eq!(out.len(), 26);
        let get = |name: &str| {
            let family = out.iter().find(|family| family.name == name).unwrap();
            (family.samples[0].labels.clone(), family.samples[0].value)
        };
        let (labels, value) = get("node_bcache_btree_read_average_duration_seconds");
        assert_eq!(labels[0].1, "deaddd54-c735-46d5-868e-f331c5fd7c74");
        assert!((value - 1.305e-6).abs() < 1e-15);
        let (labels, value) = get("node_bcache_dirty_data_bytes");
        assert_eq!(
            (labels[1].0.to_string(), labels[1].1.to_string()),
            ("backing_device".to_string(), "bdev0".to_string())
        );
        assert_eq!(value, 1524.0);
        assert_eq!(get("node_bcache_cache_misses_total").1, 1778.0);
        assert_eq!(get("node_bcache_cache_readaheads_total").1, 0.0);
        let (labels, value) = get("node_bcache_metadata_written_bytes_total");
        assert_eq!(labels[1].1, "cache0");
        assert_eq!(value, 512.0);

        std::fs::remove_file(set.join("bdev0/writeback_rate_debug")).unwrap();
        assert!(probe.collect(&mut Vec::new()).is_err());
    }

    #[test]
    fn a_host_without_bcache() {
        let sysfs = tempfile::tempdir().unwrap();
        let mut probe = BcacheProbe::new(sysfs.path());
        let mut out = Vec::new();
        probe.collect(&mut out).unwrap();
        assert!(out.is_empty());
        assert!(probe.absent);
    }
}
