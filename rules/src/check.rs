//! `rules check`: validates rule files and reports like `promtool check
//! rules` 2.42 (a `SUCCESS: N rules found` line, or every problem with its
//! position, and the duplicate-rule lint), with the same exit codes, so
//! scripts written for promtool read it unchanged.

use std::fmt::Write as _;
use std::path::Path;

use crate::rulefmt;

/// Exit code when a file has errors, as promtool's.
pub const EXIT_FAILED: u8 = 1;
/// Exit code when only lint problems were found and they are fatal
/// (`--lint-fatal`), as promtool's.
pub const EXIT_LINT: u8 = 3;

/// promtool's `--lint` and `--lint-fatal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LintOptions {
    /// Report rules with the same name and labels in one file
    /// (`--lint=duplicate-rules` or `all`, promtool's default).
    pub duplicate_rules: bool,
    /// Exit with [`EXIT_LINT`] when only lint problems were found
    /// (promtool exits 0 then unless `--lint-fatal` is given).
    pub fatal: bool,
}

impl Default for LintOptions {
    fn default() -> Self {
        LintOptions {
            duplicate_rules: true,
            fatal: false,
        }
    }
}

/// The outcome of checking some files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOutcome {
    /// Whether every file was valid and free of lint problems.
    pub passed: bool,
    /// The process exit code promtool would give: 0, [`EXIT_FAILED`] or
    /// [`EXIT_LINT`].
    pub exit_code: u8,
    /// The report to print.
    pub report: String,
}

/// Checks every file with promtool's default lint, reporting all of them
/// even after a failure.
pub fn check_files<P: AsRef<Path>>(paths: &[P]) -> CheckOutcome {
    check_files_with(paths, LintOptions::default())
}

/// Checks every file with the given lint options.
pub fn check_files_with<P: AsRef<Path>>(paths: &[P], lint: LintOptions) -> CheckOutcome {
    let mut failed = false;
    let mut lint_failed = false;
    let mut report = String::new();
    for path in paths {
        let path = path.as_ref();
        let _ = writeln!(report, "Checking {}", path.display());
        match rulefmt::load(path) {
            Ok(groups) => {
                let duplicates = if lint.duplicate_rules {
                    rulefmt::duplicate_rules(&groups)
                } else {
                    Vec::new()
                };
                if duplicates.is_empty() {
                    let count: usize = groups.iter().map(|group| group.rules.len()).sum();
                    let _ = writeln!(report, "  SUCCESS: {count} rules found\n");
                } else {
                    lint_failed = true;
                    let _ = writeln!(
                        report,
                        "  FAILED:\nlint error {} duplicate rule(s) found.",
                        duplicates.len()
                    );
                    for duplicate in &duplicates {
                        let _ = writeln!(report, "Metric: {}\nLabel(s):", duplicate.name);
                        for (name, value) in &duplicate.labels {
                            let _ = writeln!(report, "\t{name}: {value}");
                        }
                    }
                    let _ = writeln!(
                        report,
                        "Might cause inconsistency while recording expressions\n"
                    );
                }
            }
            Err(problems) => {
                failed = true;
                let _ = writeln!(report, "  FAILED:\n{problems}\n");
            }
        }
    }
    let exit_code = if failed {
        EXIT_FAILED
    } else if lint_failed && lint.fatal {
        EXIT_LINT
    } else {
        0
    };
    CheckOutcome {
        passed: !failed && !lint_failed,
        exit_code,
        report,
    }
}
