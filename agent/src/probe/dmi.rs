//! The dmi collector: the firmware's description of the machine (BIOS,
//! board, chassis and product names, versions and serials) from
//! /sys/class/dmi/id, as node_exporter 1.5 serves it: one
//! `node_dmi_info` sample of value 1 labelled with every field the
//! firmware provides. Fields only root may read (serials, the product
//! UUID) are left out when the agent cannot read them.
//!
//! The fields do not change until the next boot, so they are read once,
//! at the first collection, as node_exporter reads them once at start.
//! Hosts without DMI (most ARM boards, some containers) report the
//! collector as failed, as node_exporter does.

use std::path::{Path, PathBuf};

use countywatch_wire::MetricFamily;

use super::{Probe, ProbeError, info_family, read_attribute};

/// The files read, each with its label, in label order. `sys_vendor` is
/// the one whose label differs from its file's name.
const FIELDS: [(&str, &str); 20] = [
    ("bios_date", "bios_date"),
    ("bios_release", "bios_release"),
    ("bios_vendor", "bios_vendor"),
    ("bios_version", "bios_version"),
    ("board_asset_tag", "board_asset_tag"),
    ("board_name", "board_name"),
    ("board_serial", "board_serial"),
    ("board_vendor", "board_vendor"),
    ("board_version", "board_version"),
    ("chassis_asset_tag", "chassis_asset_tag"),
    ("chassis_serial", "chassis_serial"),
    ("chassis_vendor", "chassis_vendor"),
    ("chassis_version", "chassis_version"),
    ("product_family", "product_family"),
    ("product_name", "product_name"),
    ("product_serial", "product_serial"),
    ("product_sku", "product_sku"),
    ("product_uuid", "product_uuid"),
    ("product_version", "product_version"),
    ("sys_vendor", "system_vendor"),
];

/// node_exporter reads at most this much of a field.
const FIELD_BYTES: usize = 128;

/// Reads `<sysfs>/class/dmi/id` once.
pub struct DmiProbe {
    /// `<sysfs>/class/dmi/id`.
    root: PathBuf,
    /// The labels read at the first collection; empty when the host has
    /// no DMI.
    labels: Option<Vec<(&'static str, String)>>,
}

impl DmiProbe {
    /// A probe reading under `sysfs`.
    pub fn new(sysfs: &Path) -> Self {
        DmiProbe {
            root: sysfs.join("class/dmi/id"),
            labels: None,
        }
    }
}

impl Probe for DmiProbe {
    fn name(&self) -> &'static str {
        "dmi"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["dmi"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let labels = match &self.labels {
            Some(labels) => labels,
            None => self.labels.insert(read_fields(&self.root)?),
        };
        if labels.is_empty() {
            return Err(ProbeError::Absent(self.root.clone()));
        }
        out.push(family(labels));
        Ok(())
    }
}

/// Reads every field the firmware provides; none when the directory is
/// missing. A field only root may read is left out.
fn read_fields(root: &Path) -> Result<Vec<(&'static str, String)>, ProbeError> {
    let mut labels = Vec::new();
    if !root.is_dir() {
        return Ok(labels);
    }
    for (file, label) in FIELDS {
        let path = root.join(file);
        match read_attribute(&path, FIELD_BYTES) {
            Ok(text) => labels.push((label, text.trim().to_string())),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ) => {}
            Err(source) => return Err(ProbeError::Read { path, source }),
        }
    }
    Ok(labels)
}

/// `node_dmi_info` with the fields as labels.
pub fn family(labels: &[(&'static str, String)]) -> MetricFamily {
    info_family(
        "node_dmi_info",
        "A metric with a constant '1' value labeled by bios_date, bios_release, bios_vendor, bios_version, board_asset_tag, board_name, board_serial, board_vendor, board_version, chassis_asset_tag, chassis_serial, chassis_vendor, chassis_version, product_family, product_name, product_serial, product_sku, product_uuid, product_version, system_vendor if provided by DMI.",
        labels,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixture_server_read_once() {
        let sysfs = tempfile::tempdir().unwrap();
        let id = sysfs.path().join("class/dmi/id");
        std::fs::create_dir_all(&id).unwrap();
        for (file, text) in [
            ("bios_date", "04/12/2023\n"),
            ("bios_vendor", "American Megatrends Inc.\n"),
            ("bios_version", "2.6\n"),
            ("board_name", "X11SCL-F\n"),
            ("chassis_type", "17\n"),
            ("product_name", "Super Server\n"),
            ("sys_vendor", "Supermicro\n"),
            ("modalias", "dmi:bvnAmerican\n"),
        ] {
            std::fs::write(id.join(file), text).unwrap();
        }
        let mut probe = DmiProbe::new(sysfs.path());
        let mut out = Vec::new();
        probe.collect(&mut out).unwrap();
        // Read once: a later change is not seen until the agent restarts.
        std::fs::write(id.join("bios_version"), "9.9\n").unwrap();
        probe.collect(&mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], out[1]);
        assert_eq!(out[0].name, "node_dmi_info");
        assert_eq!(out[0].samples[0].value, 1.0);
        let labels: Vec<(&str, &str)> = out[0].samples[0]
            .labels
            .iter()
            .map(|(name, value)| (name.as_ref(), value.as_ref()))
            .collect();
        assert_eq!(
            labels,
            vec![
                ("bios_date", "04/12/2023"),
                ("bios_vendor", "American Megatrends Inc."),
                ("bios_version", "2.6"),
                ("board_name", "X11SCL-F"),
                ("product_name", "Super Server"),
                ("system_vendor", "Supermicro"),
            ]
        );
    }

    #[test]
    fn a_host_without_dmi_is_absent() {
        let sysfs = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        let result = DmiProbe::new(sysfs.path()).collect(&mut out);
        assert!(matches!(result, Err(ProbeError::Absent(_))));
        assert!(out.is_empty());
    }
}
