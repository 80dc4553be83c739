//! The nvme collector: each NVMe controller under /sys/class/nvme (kernel
//! documentation `ABI/testing/sysfs-class-nvme`), as node_exporter 1.5
//! serves it: `node_nvme_info{device,firmware_revision,model,serial,state}`
//! of value 1. A controller that is not `live` (`resetting`, `dead`) is
//! what an alert on this family looks for.
//!
//! A host without NVMe has no /sys/class/nvme: the collector is reported
//! as failed, as node_exporter does, and not looked at again.

use std::path::Path;

use countywatch_wire::{MetricFamily, MetricKind};

use super::sysfs_class::{ClassDir, read_text};
use super::{Probe, ProbeError};

/// The attributes read per controller, in the order of [`Controller`]'s
/// fields after its name.
const ATTRIBUTES: [&str; 4] = ["firmware_rev", "model", "serial", "state"];

/// Reads `<sysfs>/class/nvme`.
pub struct NvmeProbe {
    /// The class directory.
    class: ClassDir,
}

impl NvmeProbe {
    /// A probe reading under `sysfs`.
    pub fn new(sysfs: &Path) -> Self {
        NvmeProbe {
            class: ClassDir::new(sysfs, "nvme"),
        }
    }
}

/// One controller's identity and state, trimmed as sysfs gives them.
#[derive(Debug, PartialEq)]
pub struct Controller {
    /// `nvme0`.
    pub device: String,
    /// `firmware_rev`.
    pub firmware_revision: String,
    /// `model`.
    pub model: String,
    /// `serial`.
    pub serial: String,
    /// `state`: `live`, `resetting`, `connecting`, `deleting`, `dead`, ...
    pub state: String,
}

impl Probe for NvmeProbe {
    fn name(&self) -> &'static str {
        "nvme"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["nvme"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let mut controllers = Vec::new();
        for (device, dir) in self.class.entries()? {
            let [firmware_revision, model, serial, state] =
                ATTRIBUTES.map(|attribute| read_text(&dir.join(attribute)));
            controllers.push(Controller {
                device,
                firmware_revision: firmware_revision?,
                model: model?,
                serial: serial?,
                state: state?,
            });
        }
        out.extend(families(&controllers));
        Ok(())
    }
}

/// `node_nvme_info`, left out when there is no controller.
pub fn families(controllers: &[Controller]) -> Option<MetricFamily> {
    let mut info = MetricFamily::new(
        "node_nvme_info",
        "Non-numeric data from /sys/class/nvme/<device>, value is always 1.",
        MetricKind::Gauge,
    );
    for controller in controllers {
        info.push(
            &[
                ("device", &controller.device),
                ("firmware_revision", &controller.firmware_revision),
                ("model", &controller.model),
                ("serial", &controller.serial),
                ("state", &controller.state),
            ],
            1.0,
        );
    }
    (!info.samples.is_empty()).then_some(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes one controller's attributes as the kernel formats them
    /// (model and serial padded with spaces to their field widths).
    fn controller(sysfs: &Path, name: &str, state: &str) {
        let dir = sysfs.join("class/nvme").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (file, text) in [
            ("firmware_rev", "1B2QEXM7\n"),
            ("model", "Samsung SSD 970 PRO 512GB               \n"),
            ("serial", "S680HF8N190894I     \n"),
            ("state", &format!("{state}\n")),
            ("cntlid", "4\n"),
        ] {
            std::fs::write(dir.join(file), text).unwrap();
        }
    }

    #[test]
    fn each_controller_is_one_info_series() {
        let sysfs = tempfile::tempdir().unwrap();
        controller(sysfs.path(), "nvme1", "resetting");
        controller(sysfs.path(), "nvme0", "live");
        let mut probe = NvmeProbe::new(sysfs.path());
        let mut out = Vec::new();
        probe.collect(&mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, "node_nvme_info");
        assert_eq!(out[0].kind, MetricKind::Gauge);
        let labels: Vec<Vec<(&str, &str)>> = out[0]
            .samples
            .iter()
            .map(crate::probe::label_pairs)
            .collect();
        assert_eq!(
            labels[0],
            vec![
                ("device", "nvme0"),
                ("firmware_revision", "1B2QEXM7"),
                ("model", "Samsung SSD 970 PRO 512GB"),
                ("serial", "S680HF8N190894I"),
                ("state", "live"),
            ]
        );
        assert_eq!(labels[1][4], ("state", "resetting"));
        assert_eq!(out[0].samples[1].value, 1.0);
    }

    #[test]
    fn a_controller_missing_an_attribute_fails_the_collection() {
        let sysfs = tempfile::tempdir().unwrap();
        controller(sysfs.path(), "nvme0", "live");
        std::fs::remove_file(sysfs.path().join("class/nvme/nvme0/state")).unwrap();
        let mut out = Vec::new();
        let result = NvmeProbe::new(sysfs.path()).collect(&mut out);
        assert!(matches!(result, Err(ProbeError::Read { .. })));
    }

    #[test]
    fn a_host_without_nvme_fails_the_collector() {
        let sysfs = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        let result = NvmeProbe::new(sysfs.path()).collect(&mut out);
        assert!(matches!(result, Err(ProbeError::Absent(_))));
        assert!(out.is_empty());
    }
}
