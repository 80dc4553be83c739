//! The cpu collector's thermal throttle counters, as node_exporter 1.5
//! serves them: `node_cpu_package_throttles_total{package}` and
//! `node_cpu_core_throttles_total{package,core}` from
//! /sys/devices/system/cpu/cpu<N>/thermal_throttle (kernel documentation
//! `ABI/testing/sysfs-devices-system-cpu`), each package's and core's
//! count read from the first of its CPUs (in name order) that has it.
//! Only Intel bare metal has these files.
//!
//! Owned by the cpu probe, which reports one outcome for the `cpu`
//! collector. The CPUs' topology (package and core of each) is read at
//! the first collection and kept: it does not change while a CPU is
//! online, and a CPU taken offline just stops giving counts. A host where
//! no CPU has a thermal_throttle directory (every virtual machine) is not
//! looked at again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use countywatch_wire::{MetricFamily, MetricKind};

/// Reads the throttle counters under `<sysfs>/devices/system/cpu`.
#[derive(Debug)]
pub struct ThermalThrottle {
    /// `<sysfs>/devices/system/cpu`.
    root: PathBuf,
    /// Each CPU's (package, core, directory), in name order; `None` until
    /// the first collection.
    cpus: Option<Vec<(u64, u64, PathBuf)>>,
}

impl ThermalThrottle {
    /// Counters read under `sysfs`.
    pub fn new(sysfs: &Path) -> Self {
        ThermalThrottle {
            root: sysfs.join("devices/system/cpu"),
            cpus: None,
        }
    }

    /// Appends the two families, when any CPU has throttle counters.
    pub fn collect(&mut self, out: &mut Vec<MetricFamily>) {
        let root = &self.root;
        let cpus = self.cpus.get_or_insert_with(|| topology(root));
        if cpus.is_empty() {
            return;
        }
        let mut packages = BTreeMap::new();
        let mut cores = BTreeMap::new();
        for (package, core, dir) in cpus.iter() {
            let throttle = dir.join("thermal_throttle");
            // Cores first: some CPU and kernel pairs have core counters
            // and no package counters.
            if !cores.contains_key(&(*package, *core))
                && let Some(count) = read_count(&throttle.join("core_throttle_count"))
            {
                cores.insert((*package, *core), count);
            }
            if !packages.contains_key(package)
                && let Some(count) = read_count(&throttle.join("package_throttle_count"))
            {
                packages.insert(*package, count);
            }
        }
        out.extend(families(&packages, &cores));
    }
}

/// The CPUs (`cpu<digits>...` entries, in name order as node_exporter's
/// glob lists them) with a readable topology; none when no CPU has a
/// thermal_throttle directory.
fn topology(root: &Path) -> Vec<(u64, u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut dirs: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|entry| {
            (
                entry.file_name().to_string_lossy().into_owned(),
                entry.path(),
            )
        })
        .filter(|(name, _)| {
            name.strip_prefix("cpu")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect();
    dirs.sort_unstable();
    if !dirs
        .iter()
        .any(|(_, dir)| dir.join("thermal_throttle").is_dir())
    {
        return Vec::new();
    }
    dirs.into_iter()
        .filter_map(|(_, dir)| {
            let package = read_count(&dir.join("topology/physical_package_id"))?;
            let core = read_count(&dir.join("topology/core_id"))?;
            Some((package, core, dir))
        })
        .collect()
}

/// A file holding one unsigned decimal number; `None` when it is missing
/// or holds something else (node_exporter skips such a CPU silently).
fn read_count(path: &Path) -> Option<u64> {
    parse_count(&super::read_pseudo_file(path).ok()?)
}

/// The text of a count file to its number.
pub fn parse_count(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The package and core families; each left out when empty.
pub fn families(
    packages: &BTreeMap<u64, u64>,
    cores: &BTreeMap<(u64, u64), u64>,
) -> Vec<MetricFamily> {
    let mut package_family = MetricFamily::new(
        "node_cpu_package_throttles_total",
        "Number of times this CPU package has been throttled.",
        MetricKind::Counter,
    );
    for (package, count) in packages {
        package_family.push(&[("package", &package.to_string())], *count as f64);
    }
    let mut core_family = MetricFamily::new(
        "node_cpu_core_throttles_total",
        "Number of times this CPU core has been throttled.",
        MetricKind::Counter,
    );
    for ((package, core), count) in cores {
        core_family.push(
            &[
                ("package", &package.to_string()),
                ("core", &core.to_string()),
            ],
            *count as f64,
        );
    }
    [package_family, core_family]
        .into_iter()
        .filter(|family| !family.samples.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes one CPU: its topology and, when given, its counts.
    fn cpu(sysfs: &Path, name: &str, package: u64, core: u64, counts: Option<(u64, u64)>) {
        let dir = sysfs.join("devices/system/cpu").join(name);
        std::fs::create_dir_all(dir.join("topology")).unwrap();
        std::fs::write(
            dir.join("topology/physical_package_id"),
            format!("{package}\n"),
        )
        .unwrap();
        std::fs::write(dir.join("topology/core_id"), format!("{core}\n")).unwrap();
        if let Some((core_count, package_count)) = counts {
            std::fs::create_dir_all(dir.join("thermal_throttle")).unwrap();
            for (file, count) in [
                ("core_throttle_count", core_count),
                ("package_throttle_count", package_count),
            ] {
                std::fs::write(
                    dir.join("thermal_throttle").join(file),
                    format!("{count}\n"),
                )
                .unwrap();
            }
        }
    }

    fn series(family: &MetricFamily) -> Vec<(Vec<&str>, f64)> {
        family
            .samples
            .iter()
            .map(|sample| {
                (
                    sample
                        .labels
                        .iter()
                        .map(|(_, value)| value.as_ref())
                        .collect(),
                    sample.value,
                )
            })
            .collect()
    }

    #[test]
    fn two_packages_with_hyperthread_siblings() {
        let sysfs = tempfile::tempdir().unwrap();
        // cpu2 and cpu10 are hyperthread siblings of cpu0 and cpu1: the
        // first of each pair in name order gives the count.
        cpu(sysfs.path(), "cpu0", 0, 0, Some((5, 9)));
        cpu(sysfs.path(), "cpu1", 1, 0, Some((0, 2)));
        cpu(sysfs.path(), "cpu10", 1, 0, Some((77, 77)));
        cpu(sysfs.path(), "cpu2", 0, 0, Some((88, 88)));
        cpu(sysfs.path(), "cpu3", 0, 1, Some((3, 99)));
        // Neither CPUs: the cpufreq and cpuidle directories.
        std::fs::create_dir_all(sysfs.path().join("devices/system/cpu/cpufreq")).unwrap();
        std::fs::create_dir_all(sysfs.path().join("devices/system/cpu/cpuidle")).unwrap();
        let mut throttle = ThermalThrottle::new(sysfs.path());
        let mut out = Vec::new();
        throttle.collect(&mut out);
        assert_eq!(out[0].name, "node_cpu_package_throttles_total");
        assert_eq!(out[0].kind, MetricKind::Counter);
        assert_eq!(series(&out[0]), vec![(vec!["0"], 9.0), (vec!["1"], 2.0)]);
        assert_eq!(out[1].name, "node_cpu_core_throttles_total");
        assert_eq!(
            series(&out[1]),
            vec![
                (vec!["0", "0"], 5.0),
                (vec!["0", "1"], 3.0),
                (vec!["1", "0"], 0.0),
            ],
            "cpu1 comes before cpu10 in name order"
        );
    }

    #[test]
    fn a_virtual_machine_is_looked_at_once() {
        let sysfs = tempfile::tempdir().unwrap();
        cpu(sysfs.path(), "cpu0", 0, 0, None);
        let mut throttle = ThermalThrottle::new(sysfs.path());
        let mut out = Vec::new();
        throttle.collect(&mut out);
        assert!(out.is_empty());
        // Counters appearing later are not seen: the first look decided.
        cpu(sysfs.path(), "cpu1", 0, 1, Some((1, 1)));
        throttle.collect(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn counts_parse_as_unsigned_decimals() {
        assert_eq!(parse_count("42\n"), Some(42));
        assert_eq!(parse_count("-1"), None);
        assert_eq!(parse_count(""), None);
    }
}
