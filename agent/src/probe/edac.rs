//! The edac collector: memory controller error counts from
//! /sys/devices/system/edac/mc, as node_exporter serves them
//! (`node_edac_correctable_errors_total{controller}`, the uncorrectable
//! ones, and per chip-select row `node_edac_csrow_*_errors_total{controller,csrow}`,
//! with the errors no row was known for under `csrow="unknown"`). A host
//! without EDAC (virtual machines) reports nothing, successfully, as
//! node_exporter does, and is not looked at again.

use std::path::{Path, PathBuf};

use countywatch_wire::{MetricFamily, MetricKind};

use super::parse_error::ProbeParseError;
use super::{Probe, ProbeError, numbered_entries};

/// Reads `<sysfs>/devices/system/edac/mc`.
pub struct EdacProbe {
    /// `<sysfs>/devices/system/edac/mc`.
    root: PathBuf,
    /// Set once the directory was found missing.
    absent: bool,
}

impl EdacProbe {
    /// A probe reading under `sysfs`.
    pub fn new(sysfs: &Path) -> Self {
        EdacProbe {
            root: sysfs.join("devices/system/edac/mc"),
            absent: false,
        }
    }
}

impl Probe for EdacProbe {
    fn name(&self) -> &'static str {
        "edac"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["edac"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        if self.absent {
            return Ok(());
        }
        if !self.root.is_dir() {
            self.absent = true;
            return Ok(());
        }
        let read = |path: PathBuf| -> Result<f64, ProbeError> {
            let text = super::read_pseudo_file(&path).map_err(|source| ProbeError::Read {
                path: path.clone(),
                source,
            })?;
            text.trim().parse().map_err(|_| ProbeError::Parse {
                path,
                source: ProbeParseError::Malformed("not a number"),
            })
        };
        let mut controllers = Vec::new();
        for (controller, path) in numbered_entries(&self.root, "mc") {
            let mut counts = Counts {
                controller,
                correctable: read(path.join("ce_count"))?,
                uncorrectable: read(path.join("ue_count"))?,
                rows: vec![(
                    "unknown".to_string(),
                    read(path.join("ce_noinfo_count"))?,
                    read(path.join("ue_noinfo_count"))?,
                )],
            };
            for (row, row_path) in numbered_entries(&path, "csrow") {
                counts.rows.push((
                    row,
                    read(row_path.join("ce_count"))?,
                    read(row_path.join("ue_count"))?,
                ));
            }
            controllers.push(counts);
        }
        out.extend(families(&controllers));
        Ok(())
    }
}

/// One memory controller's counts.
#[derive(Debug)]
pub struct Counts {
    /// The controller's number (`0` for mc0).
    pub controller: String,
    /// `ce_count`.
    pub correctable: f64,
    /// `ue_count`.
    pub uncorrectable: f64,
    /// Per row: its number (or `unknown`), correctable, uncorrectable.
    pub rows: Vec<(String, f64, f64)>,
}

/// The four families of the controllers' counts.
pub fn families(controllers: &[Counts]) -> Vec<MetricFamily> {
    let mut correctable = MetricFamily::new(
        "node_edac_correctable_errors_total",
        "Total correctable memory errors.",
        MetricKind::Counter,
    );
    let mut uncorrectable = MetricFamily::new(
        "node_edac_uncorrectable_errors_total",
        "Total uncorrectable memory errors.",
        MetricKind::Counter,
    );
    let mut row_correctable = MetricFamily::new(
        "node_edac_csrow_correctable_errors_total",
        "Total correctable memory errors for this csrow.",
        MetricKind::Counter,
    );
    let mut row_uncorrectable = MetricFamily::new(
        "node_edac_csrow_uncorrectable_errors_total",
        "Total uncorrectable memory errors for this csrow.",
        MetricKind::Counter,
    );
    for counts in controllers {
        let controller = [("controller", counts.controller.as_str())];
        correctable.push(&controller, counts.correctable);
        uncorrectable.push(&controller, counts.uncorrectable);
        for (row, ce, ue) in &counts.rows {
            let labels = [("controller", counts.controller.as_str()), ("csrow", row)];
            row_correctable.push(&labels, *ce);
            row_uncorrectable.push(&labels, *ue);
        }
    }
    let mut families = vec![
        correctable,
        uncorrectable,
        row_correctable,
        row_uncorrectable,
    ];
    families.retain(|family| !family.samples.is_empty());
    families
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixture_controller_with_two_rows() {
        let sysfs = tempfile::tempdir().unwrap();
        let mc = sysfs.path().join("devices/system/edac/mc/mc0");
        for (file, value) in [
            ("ce_count", "3"),
            ("ue_count", "1"),
            ("ce_noinfo_count", "2"),
            ("ue_noinfo_count", "0"),
            ("csrow0/ce_count", "1"),
            ("csrow0/ue_count", "1"),
            ("csrow10/ce_count", "0"),
            ("csrow10/ue_count", "0"),
        ] {
            let path = mc.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, format!("{value}\n")).unwrap();
        }
        let mut probe = EdacProbe::new(sysfs.path());
        let mut out = Vec::new();
        probe.collect(&mut out).unwrap();
        assert_eq!(out[0].name, "node_edac_correctable_errors_total");
        assert_eq!(out[0].samples[0].value, 3.0);
        assert_eq!(out[1].samples[0].value, 1.0);
        let rows: Vec<(&str, f64)> = out[2]
            .samples
            .iter()
            .map(|sample| (sample.labels[1].1.as_ref(), sample.value))
            .collect();
        assert_eq!(rows, vec![("unknown", 2.0), ("0", 1.0), ("10", 0.0)]);
    }

    #[test]
    fn a_host_without_edac_succeeds_with_nothing() {
        let sysfs = tempfile::tempdir().unwrap();
        let mut probe = EdacProbe::new(sysfs.path());
        let mut out = Vec::new();
        probe.collect(&mut out).unwrap();
        probe.collect(&mut out).unwrap();
        assert!(out.is_empty());
    }
}
