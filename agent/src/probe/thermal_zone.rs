//! The thermal_zone collector: the kernel's thermal zones and cooling
//! devices under /sys/class/thermal, as node_exporter serves them
//! (`node_thermal_zone_temp{zone,type}` in Celsius,
//! `node_cooling_device_cur_state{name,type}` and `..._max_state`). A
//! zone whose temperature cannot be read at the moment (some ACPI zones
//! answer EAGAIN) is left out of that collection. Virtual machines have
//! none, and report nothing, successfully, as node_exporter does.

use std::path::{Path, PathBuf};

use countywatch_wire::{MetricFamily, MetricKind};

use super::{Probe, ProbeError, numbered_entries};

/// Reads `<sysfs>/class/thermal`.
pub struct ThermalZoneProbe {
    /// `<sysfs>/class/thermal`.
    root: PathBuf,
    /// Set when the first look found no zone and no cooling device:
    /// they are not hot-plugged, so the directory is not listed again.
    empty: bool,
}

impl ThermalZoneProbe {
    /// A probe reading under `sysfs`.
    pub fn new(sysfs: &Path) -> Self {
        ThermalZoneProbe {
            root: sysfs.join("class/thermal"),
            empty: false,
        }
    }
}

/// One zone: its number, type and temperature in millidegrees.
#[derive(Debug, PartialEq)]
pub struct Zone {
    /// `0` for thermal_zone0.
    pub number: String,
    /// `x86_pkg_temp`, `acpitz`, ...
    pub kind: String,
    /// Millidegrees Celsius.
    pub millicelsius: f64,
}

/// One cooling device: its number, type and throttle states.
#[derive(Debug, PartialEq)]
pub struct CoolingDevice {
    /// `0` for cooling_device0.
    pub number: String,
    /// `Processor`, `Fan`, ...
    pub kind: String,
    /// `cur_state`.
    pub current: f64,
    /// `max_state`.
    pub maximum: f64,
}

impl Probe for ThermalZoneProbe {
    fn name(&self) -> &'static str {
        "thermal_zone"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["thermal_zone"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        if self.empty {
            return Ok(());
        }
        let zone_dirs = numbered_entries(&self.root, "thermal_zone");
        let device_dirs = numbered_entries(&self.root, "cooling_device");
        self.empty = zone_dirs.is_empty() && device_dirs.is_empty();
        let read = |dir: &Path, file: &str| {
            super::read_pseudo_file(dir.join(file))
                .ok()
                .map(|text| text.trim().to_string())
        };
        let number = |dir: &Path, file: &str| read(dir, file)?.parse::<f64>().ok();
        let zones: Vec<Zone> = zone_dirs
            .into_iter()
            .filter_map(|(number_text, dir)| {
                Some(Zone {
                    number: number_text,
                    kind: read(&dir, "type")?,
                    millicelsius: number(&dir, "temp")?,
                })
            })
            .collect();
        let devices: Vec<CoolingDevice> = device_dirs
            .into_iter()
            .filter_map(|(number_text, dir)| {
                Some(CoolingDevice {
                    number: number_text,
                    kind: read(&dir, "type")?,
                    current: number(&dir, "cur_state")?,
                    maximum: number(&dir, "max_state")?,
                })
            })
            .collect();
        out.extend(families(&zones, &devices));
        Ok(())
    }
}

/// The three families; empty ones are left out.
pub fn families(zones: &[Zone], devices: &[CoolingDevice]) -> Vec<MetricFamily> {
    let mut temp = MetricFamily::new(
        "node_thermal_zone_temp",
        "Zone temperature in Celsius",
        MetricKind::Gauge,
    );
    for zone in zones {
        temp.push(
            &[("type", zone.kind.as_str()), ("zone", zone.number.as_str())],
            zone.millicelsius / 1000.0,
        );
    }
    let mut current = MetricFamily::new(
        "node_cooling_device_cur_state",
        "Current throttle state of the cooling device",
        MetricKind::Gauge,
    );
    let mut maximum = MetricFamily::new(
        "node_cooling_device_max_state",
        "Maximum throttle state of the cooling device",
        MetricKind::Gauge,
    );
    for device in devices {
        let labels = [
            ("name", device.number.as_str()),
            ("type", device.kind.as_str()),
        ];
        current.push(&labels, device.current);
        maximum.push(&labels, device.maximum);
    }
    let mut families = vec![temp, current, maximum];
    families.retain(|family| !family.samples.is_empty());
    families
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixture_laptop() {
        let sysfs = tempfile::tempdir().unwrap();
        let thermal = sysfs.path().join("class/thermal");
        for (dir, files) in [
            (
                "thermal_zone0",
                vec![("type", "acpitz\n"), ("temp", "27800\n")],
            ),
            (
                "thermal_zone1",
                vec![("type", "x86_pkg_temp\n"), ("temp", "-1500\n")],
            ),
            // Its temperature cannot be read now: left out.
            ("thermal_zone2", vec![("type", "iwlwifi_1\n")]),
            (
                "cooling_device0",
                vec![
                    ("type", "Processor\n"),
                    ("cur_state", "0\n"),
                    ("max_state", "3\n"),
                ],
            ),
        ] {
            std::fs::create_dir_all(thermal.join(dir)).unwrap();
            for (file, text) in files {
                std::fs::write(thermal.join(dir).join(file), text).unwrap();
            }
        }
        let mut probe = ThermalZoneProbe::new(sysfs.path());
        let mut out = Vec::new();
        probe.collect(&mut out).unwrap();
        assert_eq!(out[0].name, "node_thermal_zone_temp");
        let temps: Vec<(&str, &str, f64)> = out[0]
            .samples
            .iter()
            .map(|sample| {
                (
                    sample.labels[0].1.as_ref(),
                    sample.labels[1].1.as_ref(),
                    sample.value,
                )
            })
            .collect();
        assert_eq!(
            temps,
            vec![("acpitz", "0", 27.8), ("x86_pkg_temp", "1", -1.5)]
        );
        assert_eq!(out[1].name, "node_cooling_device_cur_state");
        assert_eq!(out[2].samples[0].value, 3.0);
        assert_eq!(
            out[2].samples[0].owned_labels(),
            vec![
                ("name".to_string(), "0".to_string()),
                ("type".to_string(), "Processor".to_string())
            ]
        );
    }

    #[test]
    fn a_virtual_machine_has_none_and_is_not_listed_again() {
        let sysfs = tempfile::tempdir().unwrap();
        let mut probe = ThermalZoneProbe::new(sysfs.path());
        let mut out = Vec::new();
        probe.collect(&mut out).unwrap();
        let zone = sysfs.path().join("class/thermal/thermal_zone0");
        std::fs::create_dir_all(&zone).unwrap();
        std::fs::write(zone.join("type"), "acpitz\n").unwrap();
        std::fs::write(zone.join("temp"), "1000\n").unwrap();
        probe.collect(&mut out).unwrap();
        assert!(out.is_empty());
    }
}
