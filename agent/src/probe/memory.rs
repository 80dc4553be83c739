//! The memory probe: every /proc/meminfo field, named as node_exporter's
//! meminfo collector names them (`node_memory_MemTotal_bytes`,
//! `node_memory_Active_anon_bytes`, `node_memory_HugePages_Total`).

use std::path::PathBuf;

use countywatch_wire::{MetricFamily, MetricKind};

use super::kept_files::KeptFiles;
use super::parse_error::ProbeParseError;
use super::{Probe, ProbeError};

/// Reads `<procfs>/meminfo`.
pub struct MemoryProbe {
    /// procfs root, `/proc` unless configured.
    procfs: PathBuf,
    /// The files read each collection, kept open (`kept_files`).
    kept: KeptFiles,
}

impl MemoryProbe {
    /// A probe reading under `procfs`.
    pub fn new(procfs: PathBuf) -> Self {
        MemoryProbe {
            procfs,
            kept: KeptFiles::default(),
        }
    }
}

impl Probe for MemoryProbe {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["meminfo"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let (path, text) = self.kept.read_file(self.procfs.join("meminfo"))?;
        let families = parse(&text);
        if families.is_empty() {
            return Err(ProbeError::Parse {
                path,
                source: ProbeParseError::Malformed("no fields found"),
            });
        }
        out.extend(families);
        Ok(())
    }
}

/// Turns meminfo text into one gauge family per field. Lines that do not
/// parse are skipped rather than failing the whole probe.
pub fn parse(text: &str) -> Vec<MetricFamily> {
    let mut families = Vec::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some(key) = key.strip_suffix(':') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        // node_exporter turns "Active(anon)" into "Active_anon".
        let key = key.replace('(', "_").replace(')', "");
        let (name, value) = match parts.next() {
            Some("kB") => (format!("node_memory_{key}_bytes"), value * 1024.0),
            _ => (format!("node_memory_{key}"), value),
        };
        if !countywatch_wire::is_valid_metric_name(&name) {
            continue;
        }
        let help = format!(
            "Memory information field {}.",
            &name["node_memory_".len()..]
        );
        families.push(MetricFamily::single(name, help, MetricKind::Gauge, value));
    }
    families
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_units_follow_node_exporter() {
        let text = "MemTotal:       16303836 kB\nActive(anon):     123 kB\nHugePages_Total:       0\nHugepagesize:       2048 kB\ngarbage\n";
        let families = parse(text);
        let got = crate::probe::first_values(&families);
        assert_eq!(
            got,
            vec![
                ("node_memory_MemTotal_bytes", 16303836.0 * 1024.0),
                ("node_memory_Active_anon_bytes", 123.0 * 1024.0),
                ("node_memory_HugePages_Total", 0.0),
                ("node_memory_Hugepagesize_bytes", 2048.0 * 1024.0),
            ]
        );
        assert_eq!(families[0].help, "Memory information field MemTotal_bytes.");
    }
}
