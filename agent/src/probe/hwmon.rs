//! The hwmon collector: every hardware monitoring chip under
//! /sys/class/hwmon (what lm-sensors reads: temperatures, fans, voltages,
//! currents, power, energy), as node_exporter 1.5 serves it:
//! `node_hwmon_temp_celsius{chip,sensor}`, `node_hwmon_fan_rpm`,
//! `node_hwmon_in_volts`, ..., `node_hwmon_chip_names{chip,chip_name}` and
//! `node_hwmon_sensor_label{chip,sensor,label}`.
//!
//! The family names come from the attribute files: `temp1_crit_alarm` is
//! sensor `temp1`, property `crit_alarm`, reported as
//! `node_hwmon_temp_crit_alarm_celsius` because node_exporter gives every
//! temperature property the Celsius unit. The `chip` label is derived from
//! the device the chip belongs to (`platform_coretemp_0`), else its `name`
//! file, else the hwmon directory's own name, as node_exporter does, so
//! dashboards join on the same values.
//!
//! Attributes are read with one short read each: some broken drivers
//! answer EAGAIN forever, and an attribute that cannot be read now is left
//! out rather than waited for. A host without /sys/class/hwmon (virtual
//! machines, containers) reports the collector as failed, as node_exporter
//! does, and is not looked at again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use countywatch_wire::{MetricFamily, MetricKind};

use super::family_set::FamilySet;
use super::parse_error::ProbeParseError;
use super::{Probe, ProbeError, read_attribute, read_source_dir};

/// The sensor types node_exporter reads; other attribute files are not
/// sensors (`name`, `uevent`, `subsystem`).
const SENSOR_TYPES: [&str; 13] = [
    "vrm",
    "beep_enable",
    "update_interval",
    "in",
    "cpu",
    "fan",
    "pwm",
    "temp",
    "curr",
    "power",
    "energy",
    "humidity",
    "intrusion",
];

/// node_exporter reads at most this much of an attribute.
const ATTRIBUTE_BYTES: usize = 128;

/// Reads `<sysfs>/class/hwmon`.
pub struct HwmonProbe {
    /// `<sysfs>/class/hwmon`.
    root: PathBuf,
    /// Set once the directory was found missing.
    absent: bool,
}

impl HwmonProbe {
    /// A probe reading under `sysfs`.
    pub fn new(sysfs: &Path) -> Self {
        HwmonProbe {
            root: sysfs.join("class/hwmon"),
            absent: false,
        }
    }
}

/// One sensor of a chip: its type and its properties' raw texts, keyed by
/// property (`""` for a file with none, such as `vrm`).
#[derive(Debug, Default, PartialEq)]
pub struct Sensor {
    /// `temp`, `fan`, `in`, ...
    pub kind: String,
    /// Property to the file's text without its newline.
    pub properties: BTreeMap<String, String>,
}

/// One chip's readings.
#[derive(Debug, PartialEq)]
pub struct Chip {
    /// The `chip` label.
    pub label: String,
    /// Its cleaned `name` file, for `node_hwmon_chip_names`.
    pub chip_name: Option<String>,
    /// Sensors by name (`temp1`, `fan2`).
    pub sensors: BTreeMap<String, Sensor>,
}

impl Probe for HwmonProbe {
    fn name(&self) -> &'static str {
        "hwmon"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["hwmon"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let entries = read_source_dir(&self.root, &mut self.absent)?;
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            // Entries are symbolic links into /sys/devices; follow them.
            .filter(|path| path.is_dir())
            .collect();
        dirs.sort();
        let mut set = FamilySet::default();
        // As in node_exporter, one unreadable chip fails the collector
        // but the others are still reported.
        let mut failure = None;
        for dir in dirs {
            match read_chip(&dir) {
                Ok(chip) => chip_families(&chip, &mut set),
                Err(error) => failure = Some(error),
            }
        }
        out.extend(set.into_families());
        failure.map_or(Ok(()), Err)
    }
}

/// Lowercases `text` and turns every character outside `[a-z0-9:_]` into
/// `_`, trimming `_` at both ends, as node_exporter cleans chip and
/// property names.
pub fn clean_name(text: &str) -> String {
    let replaced: String = text
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == ':' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    replaced.trim_matches('_').to_string()
}

/// Splits an attribute file name into type, number and property:
/// `temp1_crit_alarm` is (`temp`, 1, `crit_alarm`), `vrm` is (`vrm`, 0, ``).
/// `None` for names that are not `<type><number>[_<property>]`.
pub fn sensor_file(name: &str) -> Option<(&str, u64, &str)> {
    let type_end = name
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(name.len());
    if type_end == 0 {
        return None;
    }
    let (kind, rest) = name.split_at(type_end);
    let digits_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (digits, rest) = rest.split_at(digits_end);
    let property = if rest.is_empty() {
        ""
    } else {
        rest.strip_prefix('_')
            .filter(|property| !property.is_empty())?
    };
    let number = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    Some((kind, number, property))
}

/// The families of one chip, added to `set`.
pub fn chip_families(chip: &Chip, set: &mut FamilySet) {
    if let Some(chip_name) = &chip.chip_name {
        set.push(
            "node_hwmon_chip_names",
            "Annotation metric for human-readable chip names",
            MetricKind::Gauge,
            &[("chip", &chip.label), ("chip_name", chip_name)],
            1.0,
        );
    }
    for (sensor_name, sensor) in &chip.sensors {
        sensor_families(&chip.label, sensor_name, sensor, set);
    }
}

/// The families of one sensor, named and scaled as node_exporter does.
fn sensor_families(chip: &str, sensor_name: &str, sensor: &Sensor, set: &mut FamilySet) {
    let labels = [("chip", chip), ("sensor", sensor_name)];
    let properties = &sensor.properties;
    let kind = sensor.kind.as_str();
    let gauge = MetricKind::Gauge;
    if let Some(label) = properties.get("label") {
        set.push(
            "node_hwmon_sensor_label",
            "Label for given chip and sensor",
            gauge,
            &[("chip", chip), ("sensor", sensor_name), ("label", label)],
            1.0,
        );
    }
    let bare = || properties.get("").and_then(|text| text.parse::<f64>().ok());
    match kind {
        "beep_enable" => {
            let enabled = properties.get("").is_some_and(|text| text == "1");
            let value = if enabled { 1.0 } else { 0.0 };
            set.push(
                "node_hwmon_beep_enabled",
                "Hardware beep enabled",
                gauge,
                &labels,
                value,
            );
            return;
        }
        "vrm" => {
            if let Some(value) = bare() {
                set.push(
                    "node_hwmon_voltage_regulator_version",
                    "Hardware voltage regulator",
                    gauge,
                    &labels,
                    value,
                );
            }
            return;
        }
        "update_interval" => {
            if let Some(value) = bare() {
                set.push(
                    "node_hwmon_update_interval_seconds",
                    "Hardware monitor update interval",
                    gauge,
                    &labels,
                    value * 0.001,
                );
            }
            return;
        }
        _ => {}
    }
    let prefix = format!("node_hwmon_{kind}");
    for (element, text) in properties {
        if element == "label" {
            continue;
        }
        let name = if element == "input" {
            // `temp1_input` is the value itself, unless a bare `temp1`
            // file holds it.
            if properties.contains_key("") {
                format!("{prefix}_input")
            } else {
                prefix.clone()
            }
        } else if element.is_empty() {
            prefix.clone()
        } else {
            format!("{prefix}_{}", clean_name(element))
        };
        let Ok(value) = text.parse::<f64>() else {
            continue;
        };
        let (name, help, kind_of, value) = match (kind, element.as_str()) {
            (_, "fault" | "alarm") => (
                name,
                format!("Hardware sensor {element} status ({kind})"),
                gauge,
                value,
            ),
            (_, "beep") => (
                format!("{name}_enabled"),
                "Hardware monitor sensor has beeping enabled".to_string(),
                gauge,
                value,
            ),
            ("in" | "cpu", _) => (
                format!("{name}_volts"),
                format!("Hardware monitor for voltage ({element})"),
                gauge,
                value * 0.001,
            ),
            ("temp", element) if element != "type" => {
                let element = if element.is_empty() { "input" } else { element };
                (
                    format!("{name}_celsius"),
                    format!("Hardware monitor for temperature ({element})"),
                    gauge,
                    value * 0.001,
                )
            }
            ("curr", _) => (
                format!("{name}_amps"),
                format!("Hardware monitor for current ({element})"),
                gauge,
                value * 0.001,
            ),
            ("energy", _) => (
                format!("{name}_joule_total"),
                format!("Hardware monitor for joules used so far ({element})"),
                MetricKind::Counter,
                value / 1e6,
            ),
            ("power", "accuracy") => (
                name,
                "Hardware monitor power meter accuracy, as a ratio".to_string(),
                gauge,
                value / 1e6,
            ),
            ("power", "average_interval" | "average_interval_min" | "average_interval_max") => (
                format!("{name}_seconds"),
                format!("Hardware monitor power usage update interval ({element})"),
                gauge,
                value * 0.001,
            ),
            ("power", _) => (
                format!("{name}_watt"),
                format!("Hardware monitor for power usage in watts ({element})"),
                gauge,
                value / 1e6,
            ),
            ("humidity", _) => (
                name,
                format!(
                    "Hardware monitor for humidity, as a ratio (multiply with 100.0 to get the humidity as a percentage) ({element})"
                ),
                gauge,
                value / 1e6,
            ),
            ("fan", "input" | "min" | "max" | "target") => (
                format!("{name}_rpm"),
                format!("Hardware monitor for fan revolutions per minute ({element})"),
                gauge,
                value,
            ),
            _ => (
                name,
                format!("Hardware monitor {kind} element {element}"),
                gauge,
                value,
            ),
        };
        set.push(&name, &help, kind_of, &labels, value);
    }
}

/// Reads one hwmon directory: its label, its name and the sensors in it
/// and in its `device` directory (where older drivers put them).
fn read_chip(dir: &Path) -> Result<Chip, ProbeError> {
    let label = chip_label(dir)?;
    let mut sensors = BTreeMap::new();
    read_sensors(dir, &mut sensors)?;
    let device = dir.join("device");
    if device.exists() {
        read_sensors(&device, &mut sensors)?;
    }
    let chip_name = super::read_pseudo_file(dir.join("name"))
        .ok()
        .map(|text| clean_name(&text))
        .filter(|name| !name.is_empty());
    Ok(Chip {
        label,
        chip_name,
        sensors,
    })
}

/// The `chip` label: the device's bus and name, else the `name` file,
/// else the hwmon directory's own name.
fn chip_label(dir: &Path) -> Result<String, ProbeError> {
    if let Ok(device) = std::fs::canonicalize(dir.join("device")) {
        let clean = |part: Option<&std::ffi::OsStr>| {
            part.map(|part| clean_name(&part.to_string_lossy()))
                .unwrap_or_default()
        };
        let device_name = clean(device.file_name());
        let device_type = clean(device.parent().and_then(Path::file_name));
        if !device_type.is_empty() && !device_name.is_empty() {
            return Ok(format!("{device_type}_{device_name}"));
        }
        if !device_name.is_empty() {
            return Ok(device_name);
        }
    }
    if let Ok(text) = super::read_pseudo_file(dir.join("name")) {
        let name = clean_name(&text);
        if !name.is_empty() {
            return Ok(name);
        }
    }
    let real = std::fs::canonicalize(dir).map_err(|source| ProbeError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let name = real
        .file_name()
        .map(|name| clean_name(&name.to_string_lossy()))
        .unwrap_or_default();
    if name.is_empty() {
        return Err(ProbeError::Parse {
            path: dir.to_path_buf(),
            source: ProbeParseError::Malformed("cannot derive a chip name"),
        });
    }
    Ok(name)
}

/// Adds the sensor attributes in `dir` to `sensors`; a later directory's
/// value for the same property replaces an earlier one.
fn read_sensors(dir: &Path, sensors: &mut BTreeMap<String, Sensor>) -> Result<(), ProbeError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ProbeError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries.filter_map(Result::ok) {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        let Some((kind, number, property)) = sensor_file(file_name) else {
            continue;
        };
        if !SENSOR_TYPES.contains(&kind) {
            continue;
        }
        // Unreadable now (or a directory such as `power`): left out.
        let Ok(text) = read_attribute(&entry.path(), ATTRIBUTE_BYTES) else {
            continue;
        };
        let text = text.trim_matches('\n').to_string();
        let sensor = sensors
            .entry(format!("{kind}{number}"))
            .or_insert_with(|| Sensor {
                kind: kind.to_string(),
                properties: BTreeMap::new(),
            });
        sensor.properties.insert(property.to_string(), text);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::write_tree;

    fn symlink(target: &str, link: &Path) {
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, link).unwrap();
    }

    /// (family, chip, sensor, value) of every sample with those labels.
    fn samples(families: &[MetricFamily]) -> Vec<(String, String, String, f64)> {
        let mut found = Vec::new();
        for family in families {
            for sample in &family.samples {
                let label = |name: &str| {
                    sample
                        .labels
                        .iter()
                        .find(|(label, _)| label == name)
                        .map(|(_, value)| value.to_string())
                        .unwrap_or_default()
                };
                found.push((
                    family.name.to_string(),
                    label("chip"),
                    label("sensor"),
                    sample.value,
                ));
            }
        }
        found
    }

    #[test]
    fn attribute_file_names() {
        assert_eq!(sensor_file("temp1_input"), Some(("temp", 1, "input")));
        assert_eq!(
            sensor_file("pwm1_auto_point2_temp"),
            Some(("pwm", 1, "auto_point2_temp"))
        );
        assert_eq!(sensor_file("in0_max"), Some(("in", 0, "max")));
        assert_eq!(sensor_file("vrm"), Some(("vrm", 0, "")));
        assert_eq!(sensor_file("beep_enable"), Some(("beep_enable", 0, "")));
        assert_eq!(sensor_file("fan02"), Some(("fan", 2, "")));
        assert_eq!(sensor_file("temp1_"), None);
        assert_eq!(sensor_file("temp1x"), None);
        assert_eq!(sensor_file("1temp"), None);
        assert_eq!(clean_name("Coretemp.0\n"), "coretemp_0");
        assert_eq!(clean_name("pci0000:00"), "pci0000:00");
    }

    /// A coretemp chip on a platform device, shaped like node_exporter's
    /// fixture (temperatures with labels and limits), and a Super-I/O chip
    /// known only by its name file with fans, voltages and a beep switch.
    #[test]
    fn a_fixture_with_coretemp_and_a_super_io_chip() {
        let sysfs = tempfile::tempdir().unwrap();
        let root = sysfs.path();
        let coretemp = "devices/platform/coretemp.0/hwmon/hwmon0";
        write_tree(
            root,
            &[
                (&format!("{coretemp}/name"), "coretemp\n"),
                (&format!("{coretemp}/temp1_input"), "55000\n"),
                (&format!("{coretemp}/temp1_label"), "Physical id 0\n"),
                (&format!("{coretemp}/temp1_crit"), "100000\n"),
                (&format!("{coretemp}/temp1_crit_alarm"), "0\n"),
                (&format!("{coretemp}/temp2_input"), "-1500\n"),
                (&format!("{coretemp}/temp2_label"), "Core 0\n"),
                (&format!("{coretemp}/uevent"), "\n"),
                ("devices/platform/coretemp.0/uevent", "\n"),
                (
                    "devices/platform/nct6775.656/hwmon/hwmon1/name",
                    "nct6779\n",
                ),
                (
                    "devices/platform/nct6775.656/hwmon/hwmon1/fan2_input",
                    "1098\n",
                ),
                (
                    "devices/platform/nct6775.656/hwmon/hwmon1/fan2_alarm",
                    "0\n",
                ),
                ("devices/platform/nct6775.656/hwmon/hwmon1/fan2_beep", "0\n"),
                (
                    "devices/platform/nct6775.656/hwmon/hwmon1/fan2_pulses",
                    "2\n",
                ),
                (
                    "devices/platform/nct6775.656/hwmon/hwmon1/in0_input",
                    "792\n",
                ),
                (
                    "devices/platform/nct6775.656/hwmon/hwmon1/in0_max",
                    "1744\n",
                ),
                (
                    "devices/platform/nct6775.656/hwmon/hwmon1/beep_enable",
                    "1\n",
                ),
                (
                    "devices/platform/nct6775.656/hwmon/hwmon1/power1_input",
                    "12500000\n",
                ),
                (
                    "devices/platform/nct6775.656/hwmon/hwmon1/energy1_input",
                    "3000000\n",
                ),
                (
                    "devices/platform/nct6775.656/hwmon/hwmon1/temp1_type",
                    "4\n",
                ),
                // Not a number: left out.
                (
                    "devices/platform/nct6775.656/hwmon/hwmon1/temp1_input",
                    "n/a\n",
                ),
            ],
        );
        symlink("../../../coretemp.0", &root.join(coretemp).join("device"));
        symlink(
            "../../devices/platform/coretemp.0/hwmon/hwmon0",
            &root.join("class/hwmon/hwmon0"),
        );
        symlink(
            "../../devices/platform/nct6775.656/hwmon/hwmon1",
            &root.join("class/hwmon/hwmon1"),
        );
        let mut probe = HwmonProbe::new(root);
        let mut out = Vec::new();
        probe.collect(&mut out).unwrap();
        let found = samples(&out);
        let expect = |family: &str, chip: &str, sensor: &str, value: f64| {
            assert!(
                found
                    .iter()
                    .any(|sample| sample == &(family.into(), chip.into(), sensor.into(), value)),
                "{family}{{chip={chip},sensor={sensor}}} {value} not in {found:#?}"
            );
        };
        let coretemp = "platform_coretemp_0";
        expect("node_hwmon_chip_names", coretemp, "", 1.0);
        expect("node_hwmon_temp_celsius", coretemp, "temp1", 55.0);
        expect("node_hwmon_temp_celsius", coretemp, "temp2", -1.5);
        expect("node_hwmon_temp_crit_celsius", coretemp, "temp1", 100.0);
        expect("node_hwmon_temp_crit_alarm_celsius", coretemp, "temp1", 0.0);
        expect("node_hwmon_sensor_label", coretemp, "temp2", 1.0);
        // No device link: the name file names the chip.
        expect("node_hwmon_chip_names", "nct6779", "", 1.0);
        expect("node_hwmon_fan_rpm", "nct6779", "fan2", 1098.0);
        expect("node_hwmon_fan_alarm", "nct6779", "fan2", 0.0);
        expect("node_hwmon_fan_beep_enabled", "nct6779", "fan2", 0.0);
        expect("node_hwmon_fan_pulses", "nct6779", "fan2", 2.0);
        expect("node_hwmon_in_volts", "nct6779", "in0", 0.792);
        expect("node_hwmon_in_max_volts", "nct6779", "in0", 1.744);
        expect("node_hwmon_beep_enabled", "nct6779", "beep_enable0", 1.0);
        expect("node_hwmon_power_watt", "nct6779", "power1", 12.5);
        expect("node_hwmon_energy_joule_total", "nct6779", "energy1", 3.0);
        expect("node_hwmon_temp_type", "nct6779", "temp1", 4.0);
        assert!(
            !found
                .iter()
                .any(|sample| sample.0 == "node_hwmon_temp_celsius" && sample.1 == "nct6779")
        );
        let family = |name: &str| out.iter().find(|family| family.name == name).unwrap();
        let label = &family("node_hwmon_sensor_label").samples[0].labels;
        assert_eq!(
            &label.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect::<Vec<_>>(),
            &vec![
                ("chip".to_string(), coretemp.to_string()),
                ("sensor".to_string(), "temp1".to_string()),
                ("label".to_string(), "Physical id 0".to_string()),
            ]
        );
        assert_eq!(
            family("node_hwmon_temp_celsius").help,
            "Hardware monitor for temperature (input)"
        );
        assert_eq!(
            family("node_hwmon_fan_alarm").help,
            "Hardware sensor alarm status (fan)"
        );
        assert_eq!(
            family("node_hwmon_energy_joule_total").kind,
            MetricKind::Counter
        );
        assert_eq!(
            family("node_hwmon_chip_names").samples[0].owned_labels()[1],
            ("chip_name".to_string(), "coretemp".to_string())
        );
    }

    #[test]
    fn a_chip_with_neither_device_nor_name_is_named_after_its_directory() {
        let sysfs = tempfile::tempdir().unwrap();
        write_tree(
            sysfs.path(),
            &[
                ("class/hwmon/hwmon4/temp1_input", "30000\n"),
                ("class/hwmon/hwmon4/temp1_label", "foosensor\n"),
            ],
        );
        let mut out = Vec::new();
        HwmonProbe::new(sysfs.path()).collect(&mut out).unwrap();
        let found = samples(&out);
        assert!(found.contains(&(
            "node_hwmon_temp_celsius".into(),
            "hwmon4".into(),
            "temp1".into(),
            30.0
        )));
        assert!(
            !out.iter()
                .any(|family| family.name == "node_hwmon_chip_names")
        );
    }

    #[test]
    fn a_host_without_hwmon_is_absent_and_not_listed_again() {
        let sysfs = tempfile::tempdir().unwrap();
        let mut probe = HwmonProbe::new(sysfs.path());
        let mut out = Vec::new();
        assert!(matches!(
            probe.collect(&mut out),
            Err(ProbeError::Absent(_))
        ));
        write_tree(
            sysfs.path(),
            &[("class/hwmon/hwmon0/temp1_input", "1000\n")],
        );
        assert!(matches!(
            probe.collect(&mut out),
            Err(ProbeError::Absent(_))
        ));
        assert!(out.is_empty());
    }
}
