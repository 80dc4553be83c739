//! The IO edge the sysfs class collectors share (rapl, nvme, fibrechannel,
//! infiniband, tapestats): one class directory (`/sys/class/nvme`) listed
//! per collection in name order, as Go's `os.ReadDir` lists it for
//! node_exporter, and its attributes read the way node_exporter's procfs
//! library reads them (one read of at most 128 bytes, trimmed), so the
//! values and their failures match.
//!
//! Architecture invariant: a class directory found missing is never
//! listed again, so a collector the host has no hardware for costs one
//! failed `open` for the agent's whole life.

use std::path::{Path, PathBuf};

use super::parse_error::ProbeParseError;
use super::{ProbeError, read_attribute, read_source_dir};

/// node_exporter reads at most this much of a class attribute.
const ATTRIBUTE_BYTES: usize = 128;

/// One `/sys/class/<name>` directory and whether it was found missing.
#[derive(Debug)]
pub struct ClassDir {
    /// `<sysfs>/class/<name>`.
    pub root: PathBuf,
    /// Set once the directory was found missing: never look again.
    absent: bool,
}

impl ClassDir {
    /// The class directory `class` (`nvme`, `fc_host`) under `sysfs`.
    pub fn new(sysfs: &Path, class: &str) -> Self {
        ClassDir {
            root: sysfs.join("class").join(class),
            absent: false,
        }
    }

    /// The directory's entries as (name, path), sorted by name;
    /// [`ProbeError::Absent`] when it does not exist, now or before.
    pub fn entries(&mut self) -> Result<Vec<(String, PathBuf)>, ProbeError> {
        Ok(sorted_entries(read_source_dir(
            &self.root,
            &mut self.absent,
        )?))
    }

    /// Marks the class absent from now on: its attributes cannot be read
    /// by the agent's user (RAPL's energy counters are root's), and file
    /// modes in sysfs do not change while the host runs.
    pub fn give_up(&mut self) {
        self.absent = true;
    }
}

/// A listed directory's entries as (name, path), sorted by name.
pub fn sorted_entries(entries: std::fs::ReadDir) -> Vec<(String, PathBuf)> {
    let mut found: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|entry| {
            (
                entry.file_name().to_string_lossy().into_owned(),
                entry.path(),
            )
        })
        .collect();
    found.sort_unstable();
    found
}

/// Lists a directory inside a class entry (an InfiniBand device's
/// `ports`), sorted by name.
pub fn list(dir: &Path) -> Result<Vec<(String, PathBuf)>, ProbeError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ProbeError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(sorted_entries(entries))
}

/// An attribute's text, trimmed: what node_exporter's `SysReadFile` gives.
pub fn read_text(path: &Path) -> Result<String, ProbeError> {
    match read_attribute(path, ATTRIBUTE_BYTES) {
        Ok(text) => Ok(text.trim().to_string()),
        Err(source) => Err(ProbeError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// An attribute holding one unsigned number, in any base Go's
/// `ParseUint(s, 0, 64)` accepts (Fibre Channel statistics are `0x...`).
pub fn read_number(path: &Path) -> Result<u64, ProbeError> {
    let text = read_text(path)?;
    parse_unsigned(&text).ok_or_else(|| ProbeError::Parse {
        path: path.to_path_buf(),
        source: ProbeParseError::value("not an unsigned number:", &text),
    })
}

/// Whether a failed attribute read means "this attribute has no value"
/// rather than a broken device: write-only files, attributes the driver
/// lists but does not implement, counters root alone may read.
pub fn is_unreadable_attribute(error: &ProbeError) -> bool {
    let ProbeError::Read { source, .. } = error else {
        return false;
    };
    matches!(
        source.kind(),
        std::io::ErrorKind::NotFound
            | std::io::ErrorKind::PermissionDenied
            | std::io::ErrorKind::Unsupported
            | std::io::ErrorKind::InvalidInput
    ) || source.raw_os_error() == Some(EOPNOTSUPP)
}

/// `EOPNOTSUPP` on Linux, which std reports as an uncategorized error.
const EOPNOTSUPP: i32 = 95;

/// An unsigned number with Go's base prefixes: `0x` hexadecimal, `0b`
/// binary, `0o` or a leading `0` octal, otherwise decimal.
pub fn parse_unsigned(text: &str) -> Option<u64> {
    let lower = text.get(..2).map(str::to_ascii_lowercase);
    let (digits, radix) = match lower.as_deref() {
        Some("0x") => (&text[2..], 16),
        Some("0b") => (&text[2..], 2),
        Some("0o") => (&text[2..], 8),
        _ if text.len() > 1 && text.starts_with('0') => (&text[1..], 8),
        _ => (text, 10),
    };
    // from_str_radix accepts a leading '+', which Go does not.
    if digits.is_empty() || digits.starts_with('+') {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_every_base_go_reads() {
        for (text, expected) in [
            ("0", Some(0)),
            ("42", Some(42)),
            ("0x1F", Some(31)),
            ("0X1f", Some(31)),
            ("0b101", Some(5)),
            ("017", Some(15)),
            ("0o17", Some(15)),
            ("0xffffffffffffffff", Some(u64::MAX)),
            ("0x", None),
            ("+5", None),
            ("-1", None),
            ("N/A (no PMA)", None),
            ("", None),
        ] {
            assert_eq!(parse_unsigned(text), expected, "{text:?}");
        }
    }

    #[test]
    fn a_missing_class_is_listed_once() {
        let sysfs = tempfile::tempdir().unwrap();
        let mut class = ClassDir::new(sysfs.path(), "nvme");
        assert!(matches!(class.entries(), Err(ProbeError::Absent(_))));
        std::fs::create_dir_all(sysfs.path().join("class/nvme/nvme0")).unwrap();
        assert!(
            matches!(class.entries(), Err(ProbeError::Absent(_))),
            "not looked at again"
        );
        let mut fresh = ClassDir::new(sysfs.path(), "nvme");
        let names: Vec<String> = fresh.entries().unwrap().into_iter().map(|e| e.0).collect();
        assert_eq!(names, vec!["nvme0"]);
    }
}
