//! The cpufreq collector: each CPU's current, minimum and maximum clock,
//! from the hardware (`cpuinfo_*_freq`) and from the scaling governor
//! (`scaling_*_freq`) under /sys/devices/system/cpu/cpuN/cpufreq, as
//! node_exporter 1.5 serves them (`node_cpu_frequency_hertz{cpu}`,
//! `node_cpu_scaling_frequency_hertz{cpu}`, each with `_min_`/`_max_`
//! variants), converted from the kernel's kHz to Hz.
//!
//! A file the kernel does not offer, or only to root (`cpuinfo_cur_freq`),
//! is left out. Virtual machines usually have no cpufreq directory at all:
//! they report nothing, successfully, as node_exporter does, and the CPUs
//! are not listed again.

use std::path::{Path, PathBuf};

use countywatch_wire::{MetricFamily, MetricKind};

use super::parse_error::ProbeParseError;
use super::{Probe, ProbeError};

/// The files read, in the order of [`CpuFrequencies::khz`], with the
/// family each becomes and its help.
const FILES: [(&str, &str, &str); 6] = [
    (
        "cpuinfo_cur_freq",
        "node_cpu_frequency_hertz",
        "Current cpu thread frequency in hertz.",
    ),
    (
        "cpuinfo_min_freq",
        "node_cpu_frequency_min_hertz",
        "Minimum cpu thread frequency in hertz.",
    ),
    (
        "cpuinfo_max_freq",
        "node_cpu_frequency_max_hertz",
        "Maximum cpu thread frequency in hertz.",
    ),
    (
        "scaling_cur_freq",
        "node_cpu_scaling_frequency_hertz",
        "Current scaled CPU thread frequency in hertz.",
    ),
    (
        "scaling_min_freq",
        "node_cpu_scaling_frequency_min_hertz",
        "Minimum scaled CPU thread frequency in hertz.",
    ),
    (
        "scaling_max_freq",
        "node_cpu_scaling_frequency_max_hertz",
        "Maximum scaled CPU thread frequency in hertz.",
    ),
];

/// Reads `<sysfs>/devices/system/cpu`.
pub struct CpufreqProbe {
    /// `<sysfs>/devices/system/cpu`.
    root: PathBuf,
    /// Set when the first look found no CPU with a cpufreq directory.
    none: bool,
}

impl CpufreqProbe {
    /// A probe reading under `sysfs`.
    pub fn new(sysfs: &Path) -> Self {
        CpufreqProbe {
            root: sysfs.join("devices/system/cpu"),
            none: false,
        }
    }
}

/// One CPU's frequencies in kHz, `None` where the file is missing.
#[derive(Debug, PartialEq)]
pub struct CpuFrequencies {
    /// `0` for cpu0.
    pub cpu: String,
    /// In the order of [`FILES`].
    pub khz: [Option<f64>; 6],
}

impl Probe for CpufreqProbe {
    fn name(&self) -> &'static str {
        "cpufreq"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["cpufreq"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        if self.none {
            return Ok(());
        }
        let mut cpus = Vec::new();
        for (cpu, dir) in cpu_directories(&self.root) {
            let cpufreq = dir.join("cpufreq");
            if !cpufreq.is_dir() {
                continue;
            }
            let mut khz = [None; 6];
            for (slot, (file, _, _)) in khz.iter_mut().zip(FILES) {
                *slot = read_khz(&cpufreq.join(file))?;
            }
            cpus.push(CpuFrequencies { cpu, khz });
        }
        self.none = cpus.is_empty();
        out.extend(families(&cpus));
        Ok(())
    }
}

/// The `cpu<N>...` entries of the CPU directory (node_exporter's
/// `cpu[0-9]*` glob) as (the name without `cpu`, path), in name order.
fn cpu_directories(root: &Path) -> Vec<(String, PathBuf)> {
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(root)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let name = entry.file_name().into_string().ok()?;
                    let number = name.strip_prefix("cpu")?;
                    number
                        .starts_with(|c: char| c.is_ascii_digit())
                        .then(|| (number.to_string(), entry.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// One frequency file; `None` when it is missing or root-only.
fn read_khz(path: &Path) -> Result<Option<f64>, ProbeError> {
    match super::read_pseudo_file(path) {
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .map(|khz| Some(khz as f64))
            .map_err(|_| ProbeError::Parse {
                path: path.to_path_buf(),
                source: ProbeParseError::value("not a frequency:", text.trim()),
            }),
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            Ok(None)
        }
        Err(source) => Err(ProbeError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The six families, in Hz; empty ones are left out.
pub fn families(cpus: &[CpuFrequencies]) -> Vec<MetricFamily> {
    let mut families: Vec<MetricFamily> = FILES
        .iter()
        .map(|(_, name, help)| MetricFamily::new(*name, *help, MetricKind::Gauge))
        .collect();
    for cpu in cpus {
        for (family, khz) in families.iter_mut().zip(cpu.khz) {
            if let Some(khz) = khz {
                family.push(&[("cpu", cpu.cpu.as_str())], khz * 1000.0);
            }
        }
    }
    families.retain(|family| !family.samples.is_empty());
    families
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixture_with_two_cpus_one_without_the_root_only_file() {
        let sysfs = tempfile::tempdir().unwrap();
        let cpu = sysfs.path().join("devices/system/cpu");
        for (path, text) in [
            ("cpu0/cpufreq/cpuinfo_cur_freq", "1200195\n"),
            ("cpu0/cpufreq/cpuinfo_min_freq", "800000\n"),
            ("cpu0/cpufreq/cpuinfo_max_freq", "3300000\n"),
            ("cpu0/cpufreq/scaling_cur_freq", "1219917\n"),
            ("cpu0/cpufreq/scaling_min_freq", "800000\n"),
            ("cpu0/cpufreq/scaling_max_freq", "3300000\n"),
            ("cpu0/cpufreq/scaling_governor", "powersave\n"),
            ("cpu1/cpufreq/cpuinfo_min_freq", "800000\n"),
            ("cpu1/cpufreq/cpuinfo_max_freq", "3300000\n"),
            ("cpu1/cpufreq/scaling_cur_freq", "1200000\n"),
            ("cpu1/cpufreq/scaling_min_freq", "800000\n"),
            ("cpu1/cpufreq/scaling_max_freq", "3300000\n"),
            // Not CPUs.
            ("cpufreq/boost", "1\n"),
            ("cpuidle/current_driver", "intel_idle\n"),
            ("cpu2/online", "0\n"),
        ] {
            let path = cpu.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let mut out = Vec::new();
        CpufreqProbe::new(sysfs.path()).collect(&mut out).unwrap();
        let current = &out[0];
        assert_eq!(current.name, "node_cpu_frequency_hertz");
        assert_eq!(current.samples.len(), 1);
        assert_eq!(current.samples[0].value, 1_200_195_000.0);
        let scaling: Vec<(&str, f64)> = out[3]
            .samples
            .iter()
            .map(|sample| (sample.labels[0].1.as_ref(), sample.value))
            .collect();
        assert_eq!(out[3].name, "node_cpu_scaling_frequency_hertz");
        assert_eq!(
            scaling,
            vec![("0", 1_219_917_000.0), ("1", 1_200_000_000.0)]
        );
        assert_eq!(out.len(), 6);
    }

    #[test]
    fn a_virtual_machine_has_none_and_is_not_listed_again() {
        let sysfs = tempfile::tempdir().unwrap();
        let cpu = sysfs.path().join("devices/system/cpu/cpu0");
        std::fs::create_dir_all(&cpu).unwrap();
        let mut probe = CpufreqProbe::new(sysfs.path());
        let mut out = Vec::new();
        probe.collect(&mut out).unwrap();
        std::fs::create_dir_all(cpu.join("cpufreq")).unwrap();
        std::fs::write(cpu.join("cpufreq/scaling_cur_freq"), "1000\n").unwrap();
        probe.collect(&mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn a_frequency_that_is_not_a_number_fails_the_collector() {
        let sysfs = tempfile::tempdir().unwrap();
        let cpufreq = sysfs.path().join("devices/system/cpu/cpu0/cpufreq");
        std::fs::create_dir_all(&cpufreq).unwrap();
        std::fs::write(cpufreq.join("scaling_cur_freq"), "<unknown>\n").unwrap();
        let mut out = Vec::new();
        let result = CpufreqProbe::new(sysfs.path()).collect(&mut out);
        assert!(matches!(result, Err(ProbeError::Parse { .. })));
    }
}
