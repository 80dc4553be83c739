//! `rules check`: validates rule files and reports like `promtool check
//! rules` (a `SUCCESS: N rules found` line, or every problem with its
//! position), so scripts written for promtool read it unchanged.

use std::fmt::Write as _;
use std::path::Path;

use crate::rulefmt;

/// The outcome of checking some files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOutcome {
    /// Whether every file was valid.
    pub passed: bool,
    /// The report to print.
    pub report: String,
}

/// Checks every file, reporting all of them even after a failure.
pub fn check_files<P: AsRef<Path>>(paths: &[P]) -> CheckOutcome {
    let mut passed = true;
    let mut report = String::new();
    for path in paths {
        let path = path.as_ref();
        let _ = writeln!(report, "Checking {}", path.display());
        match rulefmt::load(path) {
            Ok(groups) => {
                let count: usize = groups.iter().map(|group| group.rules.len()).sum();
                for name in rulefmt::duplicate_recording_rules(&groups) {
                    let _ = writeln!(report, "  WARNING: duplicate recording rule {name}");
                }
                let _ = writeln!(report, "  SUCCESS: {count} rules found\n");
            }
            Err(problems) => {
                passed = false;
                let _ = writeln!(report, "  FAILED:\n{problems}\n");
            }
        }
    }
    CheckOutcome { passed, report }
}
