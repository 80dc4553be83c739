//! The rapl collector: the energy counters of Intel's Running Average
//! Power Limit zones under /sys/class/powercap (kernel documentation
//! `power/powercap/powercap.rst`), as node_exporter 1.5 serves them: one
//! counter family per zone name, `node_rapl_<name>_joules_total{index,path}`
//! (`node_rapl_package_joules_total`, `..._core_...`, `..._dram_...`), in
//! joules. A zone name ending in `-<n>` (`package-0`) gives its index;
//! other names are numbered in the order they repeat.
//!
//! Hosts without powercap (virtual machines, most AMD kernels of Debian
//! 12's age) report the collector as failed, as node_exporter does, and are
//! not looked at again. Since Linux 5.10 `energy_uj` is readable by root
//! only: the agent's user then gets the same failed collector as
//! node_exporter's, and stops trying.

use std::collections::BTreeMap;
use std::path::Path;

use countywatch_wire::{MetricFamily, MetricKind};

use super::family_set::FamilySet;
use super::sysfs_class::{ClassDir, read_number, read_text};
use super::{Probe, ProbeError};

/// Reads `<sysfs>/class/powercap`.
pub struct RaplProbe {
    /// The class directory.
    class: ClassDir,
}

impl RaplProbe {
    /// A probe reading under `sysfs`.
    pub fn new(sysfs: &Path) -> Self {
        RaplProbe {
            class: ClassDir::new(sysfs, "powercap"),
        }
    }
}

/// One zone's reading.
#[derive(Debug, PartialEq)]
pub struct Zone {
    /// The zone's name without its index (`package`, `dram`).
    pub name: String,
    /// Its index among zones of that name.
    pub index: u32,
    /// The zone's directory, node_exporter's `path` label.
    pub path: String,
    /// `energy_uj`.
    pub microjoules: u64,
}

impl Probe for RaplProbe {
    fn name(&self) -> &'static str {
        "rapl"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["rapl"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let mut seen = BTreeMap::new();
        let mut zones = Vec::new();
        for (_, dir) in self.class.entries()? {
            // The control type's own directory (`intel-rapl`) has no
            // name: only zones do.
            let Ok(raw_name) = read_text(&dir.join("name")) else {
                continue;
            };
            let microjoules = match read_number(&dir.join("energy_uj")) {
                Ok(value) => value,
                // Root's alone since Linux 5.10: node_exporter reports
                // no data, and file modes do not change while the host runs.
                Err(ProbeError::Read { source, .. })
                    if source.kind() == std::io::ErrorKind::PermissionDenied =>
                {
                    self.class.give_up();
                    return Err(ProbeError::Absent(dir.join("energy_uj")));
                }
                Err(error) => return Err(error),
            };
            let (name, index) = name_and_index(&mut seen, &raw_name);
            zones.push(Zone {
                name,
                index,
                path: dir.display().to_string(),
                microjoules,
            });
        }
        out.extend(families(&zones));
        Ok(())
    }
}

/// A zone's name and index: `package-0` is (`package`, 0); a name without
/// a numeric suffix (`core`, `dram`) takes the count of zones of that name
/// before it. `seen` holds, per name, the index the next one gets.
pub fn name_and_index(seen: &mut BTreeMap<String, u32>, raw: &str) -> (String, u32) {
    let mut parts = raw.split('-');
    let (name, index) = match (parts.next(), parts.next(), parts.next()) {
        (Some(name), Some(suffix), None) if suffix.parse::<u32>().is_ok() => {
            (name.to_string(), suffix.parse::<u32>().unwrap_or(0))
        }
        _ => (raw.to_string(), seen.get(raw).copied().unwrap_or(0)),
    };
    seen.insert(name.clone(), index.saturating_add(1));
    (name, index)
}

/// node_exporter's metric-name sanitizing: every run of characters other
/// than letters, digits and `_`, with the underscores around it, becomes
/// one `_`.
pub fn sanitize(name: &str) -> String {
    let mut sanitized = String::with_capacity(name.len());
    let mut pending = String::new();
    let mut in_invalid_run = false;
    for c in name.chars() {
        if c == '_' {
            pending.push(c);
        } else if c.is_ascii_alphanumeric() {
            if !in_invalid_run {
                sanitized.push_str(&pending);
            }
            pending.clear();
            in_invalid_run = false;
            sanitized.push(c);
        } else {
            // Underscores between two invalid runs end the first match
            // and the second starts its own.
            if !in_invalid_run || !pending.is_empty() {
                sanitized.push('_');
            }
            pending.clear();
            in_invalid_run = true;
        }
    }
    if !in_invalid_run {
        sanitized.push_str(&pending);
    }
    sanitized
}

/// One counter family per zone name, in name order.
pub fn families(zones: &[Zone]) -> Vec<MetricFamily> {
    let mut set = FamilySet::default();
    for zone in zones {
        let index = zone.index.to_string();
        set.push(
            &format!("node_rapl_{}_joules_total", sanitize(&zone.name)),
            &format!("Current RAPL {} value in joules", zone.name),
            MetricKind::Counter,
            &[("index", &index), ("path", &zone.path)],
            zone.microjoules as f64 / 1e6,
        );
    }
    set.into_families()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-socket host: the control type's directory, two packages with
    /// their core and dram subzones (sysfs lists them all flat, as links).
    fn fixture(sysfs: &Path) {
        let class = sysfs.join("class/powercap");
        std::fs::create_dir_all(class.join("intel-rapl")).unwrap();
        std::fs::write(class.join("intel-rapl/enabled"), "1\n").unwrap();
        for (dir, name, energy) in [
            ("intel-rapl:0", "package-0", "243354434855"),
            ("intel-rapl:0:0", "core", "128000000"),
            ("intel-rapl:0:1", "dram", "5000000"),
            ("intel-rapl:1", "package-1", "1000000"),
            ("intel-rapl:1:0", "core", "2500000"),
        ] {
            let zone = class.join(dir);
            std::fs::create_dir_all(&zone).unwrap();
            std::fs::write(zone.join("name"), format!("{name}\n")).unwrap();
            std::fs::write(zone.join("energy_uj"), format!("{energy}\n")).unwrap();
            std::fs::write(zone.join("max_energy_range_uj"), "262143328850\n").unwrap();
        }
    }

    #[test]
    fn a_two_socket_fixture_gives_a_family_per_zone_name() {
        let sysfs = tempfile::tempdir().unwrap();
        fixture(sysfs.path());
        let mut probe = RaplProbe::new(sysfs.path());
        let mut out = Vec::new();
        probe.collect(&mut out).unwrap();
        let names: Vec<&str> = out.iter().map(|family| family.name.as_ref()).collect();
        assert_eq!(
            names,
            vec![
                "node_rapl_core_joules_total",
                "node_rapl_dram_joules_total",
                "node_rapl_package_joules_total",
            ]
        );
        let package = &out[2];
        assert_eq!(package.help, "Current RAPL package value in joules");
        assert_eq!(package.kind, MetricKind::Counter);
        assert_eq!(package.samples[0].value, 243354.434855);
        let root = sysfs.path().join("class/powercap");
        assert_eq!(
            package.samples[1].owned_labels(),
            vec![
                ("index".to_string(), "1".to_string()),
                (
                    "path".to_string(),
                    root.join("intel-rapl:1").display().to_string()
                ),
            ]
        );
        let core_indexes: Vec<&str> = out[0]
            .samples
            .iter()
            .map(|sample| sample.labels[0].1.as_ref())
            .collect();
        assert_eq!(core_indexes, vec!["0", "1"], "repeated names are counted");
        assert_eq!(out[0].samples[1].value, 2.5);
    }

    #[test]
    fn names_and_indexes_follow_node_exporter() {
        let mut seen = BTreeMap::new();
        let got: Vec<(String, u32)> = ["package-0", "core", "core", "package-1", "psys", "a-b-2"]
            .iter()
            .map(|raw| name_and_index(&mut seen, raw))
            .collect();
        let expected = [
            ("package", 0),
            ("core", 0),
            ("core", 1),
            ("package", 1),
            ("psys", 0),
            ("a-b-2", 0),
        ];
        let expected: Vec<(String, u32)> = expected
            .iter()
            .map(|(name, index)| (name.to_string(), *index))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn metric_names_are_sanitized_as_node_exporter_does() {
        assert_eq!(sanitize("package"), "package");
        assert_eq!(sanitize("my zone"), "my_zone");
        assert_eq!(sanitize("a_.-_b"), "a_b");
        assert_eq!(sanitize("x__y"), "x__y");
        assert_eq!(sanitize("z."), "z_");
        assert_eq!(sanitize("a._.b"), "a__b");
    }

    #[test]
    fn a_zone_without_its_counter_fails_the_collection_until_it_has_one() {
        let sysfs = tempfile::tempdir().unwrap();
        let zone = sysfs.path().join("class/powercap/intel-rapl:0");
        std::fs::create_dir_all(&zone).unwrap();
        std::fs::write(zone.join("name"), "package-0\n").unwrap();
        let mut probe = RaplProbe::new(sysfs.path());
        let mut out = Vec::new();
        assert!(matches!(
            probe.collect(&mut out),
            Err(ProbeError::Read { .. })
        ));
        assert!(out.is_empty());
        std::fs::write(zone.join("energy_uj"), "1\n").unwrap();
        probe.collect(&mut out).unwrap();
        assert_eq!(out[0].samples[0].value, 1e-6);
    }

    #[test]
    fn a_host_without_powercap_fails_the_collector() {
        let sysfs = tempfile::tempdir().unwrap();
        let mut probe = RaplProbe::new(sysfs.path());
        let mut out = Vec::new();
        assert!(matches!(
            probe.collect(&mut out),
            Err(ProbeError::Absent(_))
        ));
        assert!(out.is_empty());
    }
}
