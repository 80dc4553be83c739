//! The pressure probe: pressure stall information (PSI) from
//! /proc/pressure/{cpu,io,memory}, as node_exporter's pressure collector
//! reports it (`node_pressure_cpu_waiting_seconds_total` and siblings).
//!
//! Kernels without PSI (before 4.20, or booted with `psi=0`) have no such
//! files; the probe then reports nothing and succeeds, as node_exporter
//! does, because a missing feature is not a fault.

use std::path::PathBuf;

use countywatch_wire::{MetricFamily, MetricKind};

use super::kept_files::KeptFiles;
use super::{Probe, ProbeError};

/// Which line of which file becomes which metric (file, `some`/`full`,
/// metric name, help), exactly node_exporter's set.
const METRICS: [(&str, &str, &str, &str); 5] = [
    (
        "cpu",
        "some",
        "node_pressure_cpu_waiting_seconds_total",
        "Total time in seconds that processes have waited for CPU time",
    ),
    (
        "io",
        "some",
        "node_pressure_io_waiting_seconds_total",
        "Total time in seconds that processes have waited due to IO congestion",
    ),
    (
        "io",
        "full",
        "node_pressure_io_stalled_seconds_total",
        "Total time in seconds no process could make progress due to IO congestion",
    ),
    (
        "memory",
        "some",
        "node_pressure_memory_waiting_seconds_total",
        "Total time in seconds that processes have waited for memory",
    ),
    (
        "memory",
        "full",
        "node_pressure_memory_stalled_seconds_total",
        "Total time in seconds no process could make progress due to memory congestion",
    ),
];

/// Reads `<procfs>/pressure/*`.
pub struct PressureProbe {
    /// procfs root, `/proc` unless configured.
    procfs: PathBuf,
    /// The files read each collection, kept open (`kept_files`).
    kept: KeptFiles,
}

impl PressureProbe {
    /// A probe reading under `procfs`.
    pub fn new(procfs: PathBuf) -> Self {
        PressureProbe {
            procfs,
            kept: KeptFiles::default(),
        }
    }
}

impl Probe for PressureProbe {
    fn name(&self) -> &'static str {
        "pressure"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["pressure"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        for resource in ["cpu", "io", "memory"] {
            let path = self.procfs.join("pressure").join(resource);
            let text = match self.kept.read_whole(&path) {
                Ok(text) => text,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                // EOPNOTSUPP: the files exist but PSI is disabled at boot.
                Err(error) if error.raw_os_error() == Some(95) => continue,
                Err(source) => return Err(ProbeError::Read { path, source }),
            };
            out.extend(parse(resource, &text));
        }
        Ok(())
    }
}

/// Turns one pressure file into its families.
pub fn parse(resource: &str, text: &str) -> Vec<MetricFamily> {
    let mut families = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(kind) = fields.next() else {
            continue;
        };
        let Some((_, _, name, help)) = METRICS
            .iter()
            .find(|(file, line_kind, _, _)| *file == resource && *line_kind == kind)
        else {
            continue;
        };
        let total = fields
            .find_map(|field| field.strip_prefix("total="))
            .and_then(|value| value.parse::<f64>().ok());
        if let Some(microseconds) = total {
            families.push(MetricFamily::single(
                *name,
                *help,
                MetricKind::Counter,
                microseconds / 1e6,
            ));
        }
    }
    families
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPU: &str = "some avg10=91.68 avg60=42.96 avg300=13.07 total=53149282\n\
full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
    const IO: &str = "some avg10=0.00 avg60=0.00 avg300=0.00 total=4966682\n\
full avg10=0.00 avg60=0.00 avg300=0.00 total=3135315\n";

    #[test]
    fn totals_in_seconds_with_node_exporter_names() {
        let cpu = parse("cpu", CPU);
        assert_eq!(cpu.len(), 1, "node_exporter reports no cpu 'full' line");
        assert_eq!(cpu[0].name, "node_pressure_cpu_waiting_seconds_total");
        assert_eq!(cpu[0].samples[0].value, 53.149282);
        let io = parse("io", IO);
        let io: Vec<(&str, f64)> = io
            .iter()
            .map(|f| (f.name.as_ref(), f.samples[0].value))
            .collect();
        assert_eq!(
            io,
            vec![
                ("node_pressure_io_waiting_seconds_total", 4.966682),
                ("node_pressure_io_stalled_seconds_total", 3.135315),
            ]
        );
    }

    #[test]
    fn a_kernel_without_psi_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        PressureProbe::new(dir.path().to_path_buf())
            .collect(&mut out)
            .unwrap();
        assert!(out.is_empty());
    }
}
