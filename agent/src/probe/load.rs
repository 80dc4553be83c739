//! The load probe: `node_load1`, `node_load5`, `node_load15`.
//!
//! The values come from sysinfo, which reads /proc/loadavg exactly as
//! node_exporter does; the configured procfs root is honoured by reading
//! the file directly when it is not `/proc`.

use std::path::PathBuf;

use countywatch_wire::{MetricFamily, MetricKind};

use super::kept_files::KeptFiles;
use super::parse_error::ProbeParseError;
use super::{Probe, ProbeError};

/// Reports the 1, 5 and 15 minute load averages.
pub struct LoadProbe {
    /// procfs root, `/proc` unless configured.
    procfs: PathBuf,
    /// The files read each collection, kept open (`kept_files`).
    kept: KeptFiles,
}

impl LoadProbe {
    /// A probe reading under `procfs`.
    pub fn new(procfs: PathBuf) -> Self {
        LoadProbe {
            procfs,
            kept: KeptFiles::default(),
        }
    }
}

impl Probe for LoadProbe {
    fn name(&self) -> &'static str {
        "load"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["loadavg"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let loads = if self.procfs == std::path::Path::new("/proc") {
            let load = sysinfo::System::load_average().map_err(ProbeError::LoadAverage)?;
            [load.one, load.five, load.fifteen]
        } else {
            let (path, text) = self.kept.read_file(self.procfs.join("loadavg"))?;
            parse(&text).ok_or(ProbeError::Parse {
                path,
                source: ProbeParseError::Malformed("expected three load averages"),
            })?
        };
        for (name, minutes, value) in [
            ("node_load1", 1, loads[0]),
            ("node_load5", 5, loads[1]),
            ("node_load15", 15, loads[2]),
        ] {
            let help = format!("{minutes}m load average.");
            out.push(MetricFamily::single(name, help, MetricKind::Gauge, value));
        }
        Ok(())
    }
}

/// Parses the first three fields of /proc/loadavg.
pub fn parse(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    Some([
        fields.next()?.ok()?,
        fields.next()?.ok()?,
        fields.next()?.ok()?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_loadavg() {
        assert_eq!(
            parse("0.52 0.58 0.59 1/467 12345\n"),
            Some([0.52, 0.58, 0.59])
        );
        assert_eq!(parse("0.52 x"), None);
    }

    #[test]
    fn reads_a_fixture_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("loadavg"), "1.5 2.5 3.5 1/2 3\n").unwrap();
        let mut out = Vec::new();
        LoadProbe::new(dir.path().to_path_buf())
            .collect(&mut out)
            .unwrap();
        let got: Vec<(&str, f64)> = out
            .iter()
            .map(|f| (f.name.as_ref(), f.samples[0].value))
            .collect();
        assert_eq!(
            got,
            vec![
                ("node_load1", 1.5),
                ("node_load5", 2.5),
                ("node_load15", 3.5)
            ]
        );
    }
}
