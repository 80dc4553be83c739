//! YAML configuration files with located errors.
//!
//! Parsing goes through serde-saphyr (see ARCHITECTURE.md for why not
//! serde_yaml). A YAML syntax error stops parsing and is reported alone.
//! Otherwise every shape error (unknown keys, wrong types) is found: serde
//! stops at the first, so [`parse_lenient`] records it, blanks the entry it
//! is about (the line and the lines indented under it, keeping every other
//! line where it was, so later positions stay true) and parses again, until
//! the rest parses. Semantic checks then run over what parsed and add their
//! problems through [`Problems`]; all print in file order as
//! `file:line:column: message`, one per line.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::de::DeserializeOwned;

pub use serde_saphyr::{Location, Spanned};

/// Largest config file we accept. Configs are small; a huge file is a
/// mistake (or a hostile file) and must not exhaust memory.
const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// One problem found in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line, or 0 when the problem has no position (an unreadable file).
    pub line: u64,
    /// 1-based column, or 0 when the problem has no position.
    pub column: u64,
    /// What is wrong, as a lower-case phrase without a trailing period.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

/// Every problem found in one config file. Displays one problem per line.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
pub struct Problems {
    /// The problems in the order they were found.
    pub problems: Vec<Problem>,
    /// The file the problems are reported against.
    file: PathBuf,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl Problems {
    /// An empty collection for `file`, to which semantic checks add.
    pub fn new(file: impl Into<PathBuf>) -> Self {
        Problems {
            problems: Vec::new(),
            file: file.into(),
        }
    }

    /// Records a problem at the position of a spanned value.
    pub fn at<T>(&mut self, spanned: &Spanned<T>, message: impl Into<String>) {
        let location = spanned.referenced;
        self.problems.push(Problem {
            file: self.file.clone(),
            line: location.line(),
            column: location.column(),
            message: message.into(),
        });
    }

    /// Records a problem that has no position in the file (a flag, say).
    pub fn general(&mut self, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            line: 0,
            column: 0,
            message: message.into(),
        });
    }

    /// `Ok(())` when nothing was recorded, else all the problems in file
    /// order, the ones without a position last.
    pub fn into_result(mut self) -> Result<(), Problems> {
        self.problems
            .sort_by_key(|problem| (problem.line == 0, problem.line, problem.column));
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }

    /// Whether no problem was recorded.
    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }

    /// Prints every problem to standard error and returns the exit code of
    /// an invalid configuration: what a daemon refusing its config and
    /// `check-config` both end with.
    pub fn report(&self) -> ExitCode {
        eprintln!("{self}");
        ExitCode::from(EXIT_INVALID_CONFIG)
    }
}

/// The exit code of both daemons for an invalid configuration (0 is
/// success, 1 a runtime failure, 2 a usage error from clap).
pub const EXIT_INVALID_CONFIG: u8 = 3;

/// The `check-config` command of both daemons: `FILE: valid` and exit 0,
/// or every problem and [`EXIT_INVALID_CONFIG`].
pub fn check_command<T>(file: &Path, loaded: Result<T, Problems>) -> ExitCode {
    match loaded {
        Ok(_) => {
            println!("{}: valid", file.display());
            ExitCode::SUCCESS
        }
        Err(problems) => problems.report(),
    }
}

/// Wraps a value that did not come from a file (a default or a flag); its
/// problems print without a position.
pub fn unspanned<T>(value: T) -> Spanned<T> {
    Spanned::new(value, Location::UNKNOWN, Location::UNKNOWN)
}

/// Reads and parses a YAML config file into `T`, reporting every shape
/// problem.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, Problems> {
    match load_lenient(path) {
        (Some(value), problems) if problems.is_empty() => Ok(value),
        (_, problems) => Err(problems),
    }
}

/// Parses YAML text that came from `path` (used for the error positions),
/// reporting every shape problem.
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, Problems> {
    match parse_lenient(path, text) {
        (Some(value), problems) if problems.is_empty() => Ok(value),
        (_, problems) => Err(problems),
    }
}

/// [`load`], also returning what parsed once the entries with shape
/// problems were left out, so semantic checks can report theirs too.
pub fn load_lenient<T: DeserializeOwned>(path: &Path) -> (Option<T>, Problems) {
    match read_bounded(path) {
        Ok(text) => parse_lenient(path, &text),
        Err(error) => {
            let mut problems = Problems::new(path);
            problems.general(error.to_string());
            (None, problems)
        }
    }
}

/// Most shape problems reported before giving up on a file.
const MAX_SHAPE_PROBLEMS: usize = 100;

/// [`parse`], also returning what parsed once the entries with shape
/// problems were blanked (`None` after a syntax error, or when blanking
/// did not get the rest to parse).
pub fn parse_lenient<T: DeserializeOwned>(path: &Path, text: &str) -> (Option<T>, Problems) {
    let mut problems = Problems::new(path);
    // An empty file means "all defaults"; serde-saphyr treats it as null.
    let mut text = if text.trim().is_empty() {
        "{}".to_string()
    } else {
        text.to_string()
    };
    for _ in 0..MAX_SHAPE_PROBLEMS {
        match serde_saphyr::from_str::<T>(&text) {
            Ok(value) => return (Some(value), problems),
            Err(error) => {
                let line = error.location().map_or(0, |location| location.line());
                // A syntax error (the text does not parse as YAML at all,
                // at the same place) stops here: nothing after it can be
                // trusted.
                if let Err(syntax) = serde_saphyr::from_str::<serde::de::IgnoredAny>(&text)
                    && syntax.location().map(|location| location.line())
                        == error.location().map(|location| location.line())
                {
                    if problems.is_empty() {
                        push_error(&mut problems, path, &error);
                    }
                    return (None, problems);
                }
                // A required key missing only because an entry with a
                // problem was blanked is not a problem of its own.
                if !problems.is_empty() && plain_message(&error).starts_with("missing field") {
                    return (None, problems);
                }
                push_error(&mut problems, path, &error);
                match blank_entry(&text, line) {
                    Some(blanked) => text = blanked,
                    None => return (None, problems),
                }
            }
        }
    }
    (None, problems)
}

fn push_error(problems: &mut Problems, path: &Path, error: &serde_saphyr::Error) {
    let (line, column) = error
        .location()
        .map(|location| (location.line(), location.column()))
        .unwrap_or((0, 0));
    problems.problems.push(Problem {
        file: path.to_path_buf(),
        line,
        column,
        message: plain_message(error),
    });
}

/// `text` with line `line` (1-based) and the lines indented deeper under it
/// replaced by empty lines; `None` when there is no such line or it is
/// already blank (nothing left to take out).
fn blank_entry(text: &str, line: u64) -> Option<String> {
    let index = usize::try_from(line).ok()?.checked_sub(1)?;
    let lines: Vec<&str> = text.split('\n').collect();
    let first = lines.get(index)?;
    if first.trim().is_empty() {
        return None;
    }
    let indent = |line: &str| line.len() - line.trim_start_matches([' ', '-']).len();
    let depth = indent(first);
    let mut end = index + 1;
    while end < lines.len() && (lines[end].trim().is_empty() || indent(lines[end]) > depth) {
        end += 1;
    }
    // A parent left with no entry would read as null, which a section
    // refuses: it becomes an empty mapping, on its own line so that no
    // other position moves.
    let parent = (0..index)
        .rev()
        .find(|&number| !lines[number].trim().is_empty() && indent(lines[number]) < depth);
    let orphaned = parent.filter(|&parent| {
        lines[parent].trim_end().ends_with(':')
            && !lines[parent + 1..]
                .iter()
                .enumerate()
                .map(|(offset, line)| (parent + 1 + offset, line))
                .take_while(|(_, line)| {
                    line.trim().is_empty() || indent(line) > indent(lines[parent])
                })
                .any(|(number, line)| !(index..end).contains(&number) && !line.trim().is_empty())
    });
    let mut out = String::with_capacity(text.len());
    for (number, line) in lines.iter().enumerate() {
        if number > 0 {
            out.push('\n');
        }
        if !(index..end).contains(&number) {
            out.push_str(line);
        }
        if Some(number) == orphaned {
            out.push_str(" {}");
        }
    }
    Some(out)
}

/// The error's message alone, without serde-saphyr's own position suffix or
/// source snippet, since [`Problem`] prints the position itself.
fn plain_message(error: &serde_saphyr::Error) -> String {
    let options = serde_saphyr::render_options! {
        snippets: serde_saphyr::SnippetMode::Off,
    };
    let rendered = error.without_snippet().render_with_options(options);
    let first_line = rendered.lines().next().unwrap_or("invalid YAML").trim();
    // serde-saphyr appends " at line L, column C"; strip it when present.
    match first_line.rfind(" at line ") {
        Some(index) => first_line[..index].to_string(),
        None => first_line.to_string(),
    }
}

/// Why a config file could not be read as text.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file is missing or unreadable.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// A directory, a device, a socket.
    #[error("cannot read: not a regular file")]
    NotAFile,
    /// Larger than the 4 MiB a config file may have.
    #[error("cannot read: file is {size} bytes, larger than the {MAX_CONFIG_BYTES} byte limit")]
    TooLarge {
        /// The file's size.
        size: u64,
    },
    /// Not UTF-8 text.
    #[error("cannot read: not UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 {
        /// Where the first invalid byte is.
        offset: usize,
    },
}

/// Reads a config file whole, refusing what is not a small UTF-8 file.
pub fn read_bounded(path: &Path) -> Result<String, ReadError> {
    let metadata = std::fs::metadata(path)?;
    if !metadata.is_file() {
        return Err(ReadError::NotAFile);
    }
    if metadata.len() > MAX_CONFIG_BYTES {
        return Err(ReadError::TooLarge {
            size: metadata.len(),
        });
    }
    let bytes = std::fs::read(path)?;
    String::from_utf8(bytes).map_err(|error| ReadError::NotUtf8 {
        offset: error.utf8_error().valid_up_to(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[serde(default)]
        name: String,
        #[serde(default)]
        port: Option<Spanned<u16>>,
    }

    #[test]
    fn every_shape_problem_is_reported_and_a_syntax_error_alone() {
        let text = "prot: 80\nname: a\nport: eighty\ncolour: red\n";
        assert_eq!(
            blank_entry("a:\n  b: 1\nc: 2\n", 2).as_deref(),
            Some("a: {}\n\nc: 2\n")
        );
        let (parsed, problems) = parse_lenient::<Sample>(Path::new("c.yaml"), text);
        let report = problems.to_string();
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines.len(), 3, "{report}");
        assert!(lines[0].starts_with("c.yaml:1:1: "), "{report}");
        assert!(lines[1].starts_with("c.yaml:3:7: "), "{report}");
        assert!(lines[2].starts_with("c.yaml:4:1: "), "{report}");
        assert_eq!(parsed.map(|sample| sample.name).as_deref(), Some("a"));

        let (parsed, problems) =
            parse_lenient::<Sample>(Path::new("c.yaml"), "prot: 80\nname: [a\n");
        assert!(parsed.is_none());
        assert_eq!(problems.problems.len(), 1, "{problems}");
    }

    #[test]
    fn unknown_key_is_an_error_with_position() {
        let error = parse::<Sample>(Path::new("c.yaml"), "name: a\nprot: 80\n")
            .err()
            .map(|problems| problems.to_string())
            .unwrap_or_default();
        assert!(error.starts_with("c.yaml:2:1: "), "{error}");
        assert!(error.contains("prot"), "{error}");
    }

    #[test]
    fn wrong_type_names_the_position() {
        let error = parse::<Sample>(Path::new("c.yaml"), "name: a\nport: lots\n")
            .err()
            .map(|problems| problems.to_string())
            .unwrap_or_default();
        assert!(error.starts_with("c.yaml:2:7: "), "{error}");
    }

    #[test]
    fn empty_file_means_defaults() {
        let parsed = parse::<Sample>(Path::new("c.yaml"), "\n");
        assert!(matches!(parsed, Ok(Sample { ref name, port: None }) if name.is_empty()));
    }

    #[test]
    fn semantic_problems_are_all_reported_with_positions() {
        let parsed = parse::<Sample>(Path::new("c.yaml"), "name: a\nport: 0\n");
        let Ok(sample) = parsed else {
            panic!("valid YAML was refused");
        };
        let mut problems = Problems::new("c.yaml");
        if let Some(port) = &sample.port {
            problems.at(port, "port must not be 0");
        }
        problems.general("second problem");
        assert_eq!(
            problems.to_string(),
            "c.yaml:2:7: port must not be 0\nc.yaml: second problem"
        );
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let error = load::<Sample>(Path::new("/nonexistent/c.yaml"))
            .err()
            .map(|problems| problems.to_string());
        assert_eq!(
            error.as_deref(),
            Some("/nonexistent/c.yaml: cannot read: No such file or directory (os error 2)")
        );
    }

    #[test]
    fn syntax_error_is_located() {
        let error = parse::<Sample>(Path::new("c.yaml"), "name: [a\n")
            .err()
            .map(|problems| problems.to_string())
            .unwrap_or_default();
        assert!(error.starts_with("c.yaml:"), "{error}");
        assert!(!error.starts_with("c.yaml: "), "no position in {error}");
    }
}
