//! The powersupplyclass collector: batteries, mains adapters and UPSes
//! the kernel knows under /sys/class/power_supply, as node_exporter 1.5
//! serves them: one family per property (`node_power_supply_online`,
//! `node_power_supply_capacity`, `node_power_supply_voltage_volt`, ...,
//! each `{power_supply}`), the kernel's micro-units turned into volts,
//! amperes, watts and watt-hours and its tenths of a degree into Celsius,
//! and `node_power_supply_info` labelled with the text properties.
//!
//! Servers usually have the directory and nothing in it: they report
//! nothing, successfully. A host without the directory reports the
//! collector as failed, as node_exporter does, and is not looked at again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use countywatch_wire::{MetricFamily, MetricKind};

use super::family_set::FamilySet;
use super::parse_error::ProbeParseError;
use super::{Probe, ProbeError, read_attribute, read_source_dir};

/// Numeric properties: the file, the family's name after
/// `node_power_supply_`, and the divisor to its unit.
const NUMBERS: [(&str, &str, f64); 49] = [
    ("authentic", "authentic", 1.0),
    ("calibrate", "calibrate", 1.0),
    ("capacity", "capacity", 1.0),
    ("capacity_alert_max", "capacity_alert_max", 1.0),
    ("capacity_alert_min", "capacity_alert_min", 1.0),
    ("cycle_count", "cyclecount", 1.0),
    ("online", "online", 1.0),
    ("present", "present", 1.0),
    ("time_to_empty_now", "time_to_empty_seconds", 1.0),
    ("time_to_full_now", "time_to_full_seconds", 1.0),
    ("current_boot", "current_boot", 1e6),
    ("current_max", "current_max", 1e6),
    ("current_now", "current_ampere", 1e6),
    ("energy_empty", "energy_empty", 1e6),
    ("energy_empty_design", "energy_empty_design", 1e6),
    ("energy_full", "energy_full", 1e6),
    ("energy_full_design", "energy_full_design", 1e6),
    ("energy_now", "energy_watthour", 1e6),
    ("voltage_boot", "voltage_boot", 1e6),
    ("voltage_max", "voltage_max", 1e6),
    ("voltage_max_design", "voltage_max_design", 1e6),
    ("voltage_min", "voltage_min", 1e6),
    ("voltage_min_design", "voltage_min_design", 1e6),
    ("voltage_now", "voltage_volt", 1e6),
    ("voltage_ocv", "voltage_ocv", 1e6),
    ("charge_control_limit", "charge_control_limit", 1e6),
    ("charge_control_limit_max", "charge_control_limit_max", 1e6),
    ("charge_counter", "charge_counter", 1e6),
    ("charge_empty", "charge_empty", 1e6),
    ("charge_empty_design", "charge_empty_design", 1e6),
    ("charge_full", "charge_full", 1e6),
    ("charge_full_design", "charge_full_design", 1e6),
    ("charge_now", "charge_ampere", 1e6),
    ("charge_term_current", "charge_term_current", 1e6),
    ("constant_charge_current", "constant_charge_current", 1e6),
    (
        "constant_charge_current_max",
        "constant_charge_current_max",
        1e6,
    ),
    ("constant_charge_voltage", "constant_charge_voltage", 1e6),
    (
        "constant_charge_voltage_max",
        "constant_charge_voltage_max",
        1e6,
    ),
    ("precharge_current", "precharge_current", 1e6),
    ("input_current_limit", "input_current_limit", 1e6),
    ("power_now", "power_watt", 1e6),
    ("temp", "temp_celsius", 10.0),
    ("temp_alert_max", "temp_alert_max_celsius", 10.0),
    ("temp_alert_min", "temp_alert_min_celsius", 10.0),
    ("temp_ambient", "temp_ambient_celsius", 10.0),
    ("temp_ambient_max", "temp_ambient_max_celsius", 10.0),
    ("temp_ambient_min", "temp_ambient_min_celsius", 10.0),
    ("temp_max", "temp_max_celsius", 10.0),
    ("temp_min", "temp_min_celsius", 10.0),
];

/// Text properties, each a label of `node_power_supply_info`.
const TEXTS: [&str; 11] = [
    "capacity_level",
    "charge_type",
    "health",
    "manufacturer",
    "model_name",
    "scope",
    "serial_number",
    "status",
    "technology",
    "type",
    "usb_type",
];

/// node_exporter reads at most this much of a property.
const PROPERTY_BYTES: usize = 128;

/// `ENODATA`: a battery that cannot answer a property right now.
const NO_DATA: i32 = 61;

/// Reads `<sysfs>/class/power_supply`.
pub struct PowerSupplyClassProbe {
    /// `<sysfs>/class/power_supply`.
    root: PathBuf,
    /// Set once the directory was found missing.
    absent: bool,
}

impl PowerSupplyClassProbe {
    /// A probe reading under `sysfs`.
    pub fn new(sysfs: &Path) -> Self {
        PowerSupplyClassProbe {
            root: sysfs.join("class/power_supply"),
            absent: false,
        }
    }
}

/// One power supply's properties: file name to trimmed text.
pub type Properties = BTreeMap<String, String>;

impl Probe for PowerSupplyClassProbe {
    fn name(&self) -> &'static str {
        "powersupplyclass"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["powersupplyclass"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let entries = read_source_dir(&self.root, &mut self.absent)?;
        let mut supplies = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            supplies.push((name, read_properties(&entry.path())?));
        }
        supplies.sort();
        let families = families(&supplies).map_err(|source| ProbeError::Parse {
            path: self.root.clone(),
            source,
        })?;
        out.extend(families);
        Ok(())
    }
}

/// The regular files of one supply's directory (the entry is a symbolic
/// link into /sys/devices; subdirectories and links are skipped).
fn read_properties(dir: &Path) -> Result<Properties, ProbeError> {
    let read_error = |path: &Path, source| ProbeError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut properties = Properties::new();
    for entry in std::fs::read_dir(dir)
        .map_err(|source| read_error(dir, source))?
        .filter_map(Result::ok)
    {
        if !entry.file_type().is_ok_and(|kind| kind.is_file()) {
            continue;
        }
        let path = entry.path();
        match read_attribute(&path, PROPERTY_BYTES) {
            Ok(text) => {
                let name = entry.file_name().to_string_lossy().into_owned();
                properties.insert(name, text.trim().to_string());
            }
            // Properties the driver lists but cannot give (write-only
            // switches, a battery not answering now) are skipped.
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::NotFound
                        | std::io::ErrorKind::Unsupported
                        | std::io::ErrorKind::InvalidInput
                        | std::io::ErrorKind::PermissionDenied
                ) || error.raw_os_error() == Some(NO_DATA) => {}
            Err(source) => return Err(read_error(&path, source)),
        }
    }
    Ok(properties)
}

/// The families of every supply, by name. A numeric property that is not
/// a number fails the collection, as it does node_exporter's.
pub fn families(supplies: &[(String, Properties)]) -> Result<Vec<MetricFamily>, ProbeParseError> {
    let mut set = FamilySet::default();
    for (supply, properties) in supplies {
        let labels = [("power_supply", supply.as_str())];
        for (file, name, divisor) in NUMBERS {
            let Some(text) = properties.get(file) else {
                continue;
            };
            let value = parse_integer(text).ok_or_else(|| {
                ProbeParseError::value("not an integer:", text).in_part(format!("{supply}/{file}"))
            })?;
            set.push(
                &format!("node_power_supply_{name}"),
                &format!("{name} value of /sys/class/power_supply/<power_supply>."),
                MetricKind::Gauge,
                &labels,
                value as f64 / divisor,
            );
        }
        let mut info = vec![("power_supply", supply.as_str())];
        info.extend(TEXTS.iter().filter_map(|file| {
            let text = properties.get(*file)?;
            (!text.is_empty()).then_some((*file, text.as_str()))
        }));
        set.push(
            "node_power_supply_info",
            "info of /sys/class/power_supply/<power_supply>.",
            MetricKind::Gauge,
            &info,
            1.0,
        );
    }
    Ok(set.into_families())
}

/// An integer the way the kernel's sysfs attributes may write it (and
/// node_exporter reads it, base prefixes included): `-1500`, `0x1f`.
fn parse_integer(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let magnitude = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(binary) = digits
        .strip_prefix("0b")
        .or_else(|| digits.strip_prefix("0B"))
    {
        i64::from_str_radix(binary, 2).ok()?
    } else if let Some(octal) = digits
        .strip_prefix("0o")
        .or_else(|| digits.strip_prefix("0O"))
    {
        i64::from_str_radix(octal, 8).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse::<i64>().ok()?
    };
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A laptop's battery and mains adapter, shaped like the kernel's
    /// power_supply class documentation (µV, µA, µWh, tenths of °C).
    #[test]
    fn a_fixture_battery_and_adapter() {
        let sysfs = tempfile::tempdir().unwrap();
        let root = sysfs.path();
        for (path, text) in [
            (
                "devices/LNXSYSTM:00/ACPI0003:00/power_supply/AC/online",
                "0\n",
            ),
            (
                "devices/LNXSYSTM:00/ACPI0003:00/power_supply/AC/type",
                "Mains\n",
            ),
            (
                "devices/LNXSYSTM:00/PNP0C0A:00/power_supply/BAT0/capacity",
                "81\n",
            ),
            (
                "devices/LNXSYSTM:00/PNP0C0A:00/power_supply/BAT0/capacity_level",
                "Normal\n",
            ),
            (
                "devices/LNXSYSTM:00/PNP0C0A:00/power_supply/BAT0/cycle_count",
                "0\n",
            ),
            (
                "devices/LNXSYSTM:00/PNP0C0A:00/power_supply/BAT0/energy_now",
                "45070000\n",
            ),
            (
                "devices/LNXSYSTM:00/PNP0C0A:00/power_supply/BAT0/voltage_now",
                "12229000\n",
            ),
            (
                "devices/LNXSYSTM:00/PNP0C0A:00/power_supply/BAT0/power_now",
                "4830000\n",
            ),
            (
                "devices/LNXSYSTM:00/PNP0C0A:00/power_supply/BAT0/temp",
                "295\n",
            ),
            (
                "devices/LNXSYSTM:00/PNP0C0A:00/power_supply/BAT0/manufacturer",
                "LGC\n",
            ),
            (
                "devices/LNXSYSTM:00/PNP0C0A:00/power_supply/BAT0/model_name",
                "LNV-45N1\n",
            ),
            (
                "devices/LNXSYSTM:00/PNP0C0A:00/power_supply/BAT0/serial_number",
                "\n",
            ),
            (
                "devices/LNXSYSTM:00/PNP0C0A:00/power_supply/BAT0/status",
                "Discharging\n",
            ),
            (
                "devices/LNXSYSTM:00/PNP0C0A:00/power_supply/BAT0/technology",
                "Li-ion\n",
            ),
            (
                "devices/LNXSYSTM:00/PNP0C0A:00/power_supply/BAT0/type",
                "Battery\n",
            ),
            (
                "devices/LNXSYSTM:00/PNP0C0A:00/power_supply/BAT0/uevent",
                "POWER_SUPPLY_NAME=BAT0\n",
            ),
            (
                "devices/LNXSYSTM:00/PNP0C0A:00/power_supply/BAT0/power/control",
                "auto\n",
            ),
        ] {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let class = root.join("class/power_supply");
        std::fs::create_dir_all(&class).unwrap();
        std::os::unix::fs::symlink(
            "../../devices/LNXSYSTM:00/ACPI0003:00/power_supply/AC",
            class.join("AC"),
        )
        .unwrap();
        std::os::unix::fs::symlink(
            "../../devices/LNXSYSTM:00/PNP0C0A:00/power_supply/BAT0",
            class.join("BAT0"),
        )
        .unwrap();
        let mut out = Vec::new();
        PowerSupplyClassProbe::new(root).collect(&mut out).unwrap();
        let value = |name: &str, supply: &str| {
            out.iter()
                .find(|family| family.name == name)
                .and_then(|family| {
                    family
                        .samples
                        .iter()
                        .find(|sample| sample.labels[0].1 == supply)
                })
                .map(|sample| sample.value)
        };
        assert_eq!(value("node_power_supply_online", "AC"), Some(0.0));
        assert_eq!(value("node_power_supply_capacity", "BAT0"), Some(81.0));
        assert_eq!(value("node_power_supply_cyclecount", "BAT0"), Some(0.0));
        assert_eq!(
            value("node_power_supply_energy_watthour", "BAT0"),
            Some(45.07)
        );
        assert_eq!(
            value("node_power_supply_voltage_volt", "BAT0"),
            Some(12.229)
        );
        assert_eq!(value("node_power_supply_power_watt", "BAT0"), Some(4.83));
        assert_eq!(value("node_power_supply_temp_celsius", "BAT0"), Some(29.5));
        assert_eq!(value("node_power_supply_online", "BAT0"), None);
        let capacity = out
            .iter()
            .find(|family| family.name == "node_power_supply_capacity")
            .unwrap();
        assert_eq!(
            capacity.help,
            "capacity value of /sys/class/power_supply/<power_supply>."
        );
        let info = out
            .iter()
            .find(|family| family.name == "node_power_supply_info")
            .unwrap();
        let battery: Vec<(&str, &str)> = info.samples[1]
            .labels
            .iter()
            .map(|(name, value)| (name.as_ref(), value.as_ref()))
            .collect();
        // The empty serial number is left out.
        assert_eq!(
            battery,
            vec![
                ("power_supply", "BAT0"),
                ("capacity_level", "Normal"),
                ("manufacturer", "LGC"),
                ("model_name", "LNV-45N1"),
                ("status", "Discharging"),
                ("technology", "Li-ion"),
                ("type", "Battery"),
            ]
        );
    }

    #[test]
    fn a_server_with_no_supply_and_a_host_without_the_class() {
        let sysfs = tempfile::tempdir().unwrap();
        let mut probe = PowerSupplyClassProbe::new(sysfs.path());
        let mut out = Vec::new();
        assert!(matches!(
            probe.collect(&mut out),
            Err(ProbeError::Absent(_))
        ));
        let sysfs = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(sysfs.path().join("class/power_supply")).unwrap();
        PowerSupplyClassProbe::new(sysfs.path())
            .collect(&mut out)
            .unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn integers_as_node_exporter_reads_them_and_a_bad_one_fails() {
        assert_eq!(parse_integer("-1500"), Some(-1500));
        assert_eq!(parse_integer("0x1f"), Some(31));
        assert_eq!(parse_integer("010"), Some(8));
        assert_eq!(parse_integer("0"), Some(0));
        assert_eq!(parse_integer("1.5"), None);
        let mut properties = Properties::new();
        properties.insert("capacity".into(), "full".into());
        assert!(families(&[("BAT0".into(), properties)]).is_err());
    }
}
