//! The shape most node_exporter collectors share: read a few pseudo-files
//! whole and hand their text to one pure parse function. [`FileProbe`]
//! owns the IO edge (reading, telling "absent" from "unreadable") so each
//! collector's file holds only its parse function, its fixtures and one
//! constructor.
//!
//! Architecture invariant: a collector whose source does not exist on the
//! host (no conntrack module, no bonding) looks once, reports
//! [`ProbeError::Absent`] and never touches the filesystem again, so it
//! costs nothing for the rest of the agent's life.

use std::path::PathBuf;

use countywatch_wire::MetricFamily;

use super::kept_files::KeptFiles;
use super::parse_error::ProbeParseError;
use super::{Probe, ProbeError};

/// A parse function: the text of each file (`None` where an optional file
/// is missing), in the order the probe lists them, to metric families.
pub type Parse = fn(&[Option<String>]) -> Result<Vec<MetricFamily>, ProbeParseError>;

/// A probe that reads files and parses their text.
pub struct FileProbe {
    /// node_exporter's collector name, also the probe's name.
    name: &'static str,
    /// The files; the first is the source itself, and its absence means
    /// the collector has nothing to report on this host. The others are
    /// optional (an IPv6 table on a host without IPv6).
    files: Vec<PathBuf>,
    /// Turns the texts into families.
    parse: Parse,
    /// Set once the first file was found missing: never look again.
    absent: bool,
    /// The files read each collection, kept open (`kept_files`).
    kept: KeptFiles,
}

impl FileProbe {
    /// A probe named `name` reading `files` (the first required).
    pub fn new(name: &'static str, files: Vec<PathBuf>, parse: Parse) -> Self {
        FileProbe {
            name,
            files,
            parse,
            absent: false,
            kept: KeptFiles::default(),
        }
    }
}

impl Probe for FileProbe {
    fn name(&self) -> &'static str {
        self.name
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec![self.name]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let Some(first) = self.files.first() else {
            return Ok(());
        };
        if self.absent {
            return Err(ProbeError::Absent(first.clone()));
        }
        let mut texts = Vec::with_capacity(self.files.len());
        for (index, path) in self.files.iter().enumerate() {
            match self.kept.read_whole(path) {
                Ok(text) => texts.push(Some(text)),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    if index == 0 {
                        self.absent = true;
                        return Err(ProbeError::Absent(path.clone()));
                    }
                    texts.push(None);
                }
                Err(source) => {
                    return Err(ProbeError::Read {
                        path: path.clone(),
                        source,
                    });
                }
            }
        }
        let families = (self.parse)(&texts).map_err(|source| ProbeError::Parse {
            path: first.clone(),
            source,
        })?;
        out.extend(families);
        Ok(())
    }
}

/// The one number in a /proc/sys style file (`256\n`), `None` when the
/// file is missing or holds something else.
pub fn number(text: Option<&String>) -> Option<f64> {
    text?.trim().parse().ok()
}
