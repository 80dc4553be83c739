//! Host probes: one file per probe, registered in [`build`].
//!
//! A probe reads one part of the host (the node_exporter "collector"
//! pattern) and appends metric families named exactly as node_exporter
//! names them, so existing dashboards and alert rules work unchanged.
//! Each probe has a pure `parse` function over the text it reads, tested
//! against fixtures at the bottom of its file, and a thin part doing IO.
//!
//! Probes are synchronous: the collection loop runs each one on a blocking
//! thread under a timeout, so a probe stuck in the kernel (a hung NFS mount)
//! cannot stall the others or the agent.

mod cpu;
mod filesystem;
mod load;
mod memory;
mod network;

use std::path::PathBuf;

use countywatch_wire::MetricFamily;

use crate::config::Config;

/// What every probe implements.
pub trait Probe: Send {
    /// The probe's name, used in self-metrics (`probe="cpu"`) and logs.
    fn name(&self) -> &'static str;

    /// Reads the host and appends metric families to `out`.
    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError>;
}

/// Why a probe produced nothing (or only part of its metrics).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A file the probe needs could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file had content the probe does not understand.
    #[error("cannot parse {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// A system interface (through sysinfo) failed.
    #[error("{0}")]
    System(String),
}

/// Reads a small pseudo-file completely.
pub(crate) fn read_file(path: PathBuf) -> Result<(PathBuf, String), ProbeError> {
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((path, text)),
        Err(source) => Err(ProbeError::Read { path, source }),
    }
}

/// Builds the enabled probes in a fixed order. Adding a probe means adding
/// its file and one line here.
pub fn build(config: &Config) -> Vec<Box<dyn Probe>> {
    let procfs = &config.paths.procfs;
    let probes = &config.probes;
    let mut built: Vec<Box<dyn Probe>> = Vec::new();
    if probes.cpu.enabled {
        built.push(Box::new(cpu::CpuProbe::new(procfs.clone())));
    }
    if probes.load.enabled {
        built.push(Box::new(load::LoadProbe::new(procfs.clone())));
    }
    if probes.memory.enabled {
        built.push(Box::new(memory::MemoryProbe::new(procfs.clone())));
    }
    if probes.filesystem.enabled {
        built.push(Box::new(filesystem::FilesystemProbe::new(procfs.clone())));
    }
    if probes.network.enabled {
        built.push(Box::new(network::NetworkProbe::new(procfs.clone())));
    }
    built
}
