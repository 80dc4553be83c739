//! The textfile collector: every `*.prom` file in `probes.textfile.directory`
//! (Prometheus text format, written by cron jobs: backup results, RAID
//! checks, certificate inventories) read at each collection and served as
//! node_exporter 1.5 serves it, with `node_textfile_mtime_seconds{file}`
//! for each file read and `node_textfile_scrape_error` (1 when any file
//! or the directory could not be used).
//!
//! A file is taken whole or not at all. It is refused, with
//! `node_textfile_scrape_error 1` and one log line per new reason, when it
//! does not parse, carries client timestamps, repeats a series, gives a
//! family a type another file gave differently, uses a summary or
//! histogram (the wire has no such types), names a family in the agent's
//! own `countywatch_` namespace, or sets a label the collector owns
//! (`instance`, `job`) or uses to route series (`device_instance`): a
//! file may add metrics, never override which host they belong to.
//! Parsing is defensive (the directory may be writable by more people
//! than the agent's config): sizes and sample counts are capped so one
//! file cannot make the batch too large for the collector.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use countywatch_wire::{MetricFamily, MetricKind};
use serde::Deserialize;

use super::toggle::{ProbeSection, ProbeToggle};
use super::{Probe, ProbeError};

/// Files larger than this are refused rather than read.
const MAX_FILE_BYTES: u64 = 4 << 20;

/// Samples all files together may add to a batch (the wire's batch limit
/// is 200 000 for everything the agent sends).
const MAX_SAMPLES: usize = 50_000;

/// Labels a file may not set.
const REFUSED_LABELS: [&str; 4] = [
    "instance",
    "job",
    countywatch_wire::DEVICE_INSTANCE_LABEL,
    countywatch_wire::POLLING_AGENT_LABEL,
];

/// The textfile collector's config section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TextfileConfig {
    /// Whether the collector runs.
    pub enabled: bool,
    /// How often it runs; defaults to the agent's interval.
    pub interval: Option<countywatch_config::duration::PromDuration>,
    /// The directory whose `*.prom` files are read (node_exporter's
    /// `--collector.textfile.directory`); the packages create it.
    pub directory: PathBuf,
}

impl Default for TextfileConfig {
    fn default() -> Self {
        TextfileConfig {
            enabled: true,
            interval: None,
            directory: PathBuf::from("/var/lib/countywatch/textfile"),
        }
    }
}

impl ProbeSection for TextfileConfig {
    fn toggle(&self) -> ProbeToggle {
        ProbeToggle {
            enabled: self.enabled,
            interval: self.interval,
        }
    }

    /// Last, so that a file naming a family another probe reports loses
    /// (the collection drops the later duplicate).
    fn runs_last(&self) -> bool {
        true
    }
}

/// Reads the directory at each collection.
pub struct TextfileProbe {
    /// The directory.
    directory: PathBuf,
    /// The last reason each file (or the directory) was refused, as the
    /// log line said it, so a reason is logged once, not at every
    /// collection.
    refusals: HashMap<PathBuf, String>,
}

impl TextfileProbe {
    /// A probe reading `directory`.
    pub fn new(directory: PathBuf) -> Self {
        TextfileProbe {
            directory,
            refusals: HashMap::new(),
        }
    }

    /// Logs a refusal when its reason is new.
    fn refuse(&mut self, path: &Path, reason: &TextfileError) {
        let reason = reason.to_string();
        if self.refusals.get(path) != Some(&reason) {
            tracing::warn!(path = %path.display(), %reason, "textfile refused");
            self.refusals.insert(path.to_path_buf(), reason);
        }
    }
}

impl Probe for TextfileProbe {
    fn name(&self) -> &'static str {
        "textfile"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["textfile"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let mut files: Vec<PathBuf> = Vec::new();
        let mut errored = false;
        match std::fs::read_dir(&self.directory) {
            Ok(entries) => {
                files.extend(
                    entries
                        .filter_map(Result::ok)
                        .map(|entry| entry.path())
                        .filter(|path| path.extension().is_some_and(|ext| ext == "prom")),
                );
                self.refusals.remove(&self.directory);
            }
            Err(error) => {
                errored = true;
                let directory = self.directory.clone();
                self.refuse(&directory, &TextfileError::ReadDirectory(error));
            }
        }
        files.sort();
        let mut merged = Merged::default();
        let mut mtimes = Vec::new();
        for path in files {
            match read(&path).and_then(|(text, mtime)| {
                let families = parse(&text)?;
                merged.add(&path, families)?;
                Ok(mtime)
            }) {
                Ok(mtime) => {
                    self.refusals.remove(&path);
                    mtimes.push((path, mtime));
                }
                Err(reason) => {
                    errored = true;
                    self.refuse(&path, &reason);
                }
            }
        }
        out.extend(merged.into_families());
        if !mtimes.is_empty() {
            let mut family = MetricFamily::new(
                "node_textfile_mtime_seconds",
                "Unixtime mtime of textfiles successfully read.",
                MetricKind::Gauge,
            );
            for (path, mtime) in &mtimes {
                family.push(&[("file", &path.to_string_lossy())], *mtime);
            }
            out.push(family);
        }
        out.push(MetricFamily::single(
            "node_textfile_scrape_error",
            "1 if there was an error opening or reading a file, 0 otherwise",
            MetricKind::Gauge,
            if errored { 1.0 } else { 0.0 },
        ));
        Ok(())
    }
}

/// Reads a file with its mtime in whole seconds (as node_exporter rounds
/// it), refusing oversized files.
fn read(path: &Path) -> Result<(String, f64), TextfileError> {
    let file = std::fs::File::open(path).map_err(TextfileError::Open)?;
    let metadata = file.metadata().map_err(TextfileError::Stat)?;
    if metadata.len() > MAX_FILE_BYTES {
        return Err(TextfileError::TooLarge {
            bytes: metadata.len(),
        });
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_FILE_BYTES), &mut text)
        .map_err(TextfileError::Read)?;
    let mtime = metadata
        .modified()
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map(|elapsed| elapsed.as_secs() as f64)
        .unwrap_or(0.0);
    Ok((text, mtime))
}

/// Why a file (or the directory) was refused; the text is the reason the
/// log line gives.
#[derive(Debug, thiserror::Error)]
pub enum TextfileError {
    /// The directory cannot be listed.
    #[error("cannot read the directory: {0}")]
    ReadDirectory(std::io::Error),
    /// The file cannot be opened.
    #[error("cannot open: {0}")]
    Open(std::io::Error),
    /// The file's metadata cannot be read.
    #[error("cannot stat: {0}")]
    Stat(std::io::Error),
    /// The file is larger than the agent reads.
    #[error("{bytes} bytes, more than the {MAX_FILE_BYTES} read")]
    TooLarge {
        /// Its size.
        bytes: u64,
    },
    /// The file cannot be read.
    #[error("cannot read: {0}")]
    Read(std::io::Error),
    /// A line of the file does not parse or is refused.
    #[error("line {line}: {problem}")]
    Line {
        /// The line's number, from 1.
        line: usize,
        /// What is wrong with it.
        problem: LineProblem,
    },
    /// A family in the agent's own `countywatch_` namespace.
    #[error("{name} is in the agent's own namespace")]
    OwnNamespace {
        /// The family.
        name: String,
    },
    /// A family another file gave a different type.
    #[error("{name} is a {kind} here but a {other_kind} in {other_files}")]
    KindConflict {
        /// The family.
        name: String,
        /// Its type in this file.
        kind: &'static str,
        /// Its type in the files read before.
        other_kind: &'static str,
        /// Those files, comma-separated.
        other_files: String,
    },
    /// A sample setting a label the agent or collector owns.
    #[error("{name} sets the label {label}, which the agent owns")]
    OwnedLabel {
        /// The family.
        name: String,
        /// The label.
        label: String,
    },
    /// A series given twice (in this file or one read before).
    #[error("{name}{labels:?} appears twice")]
    DuplicateSeries {
        /// The family.
        name: String,
        /// The series' labels, sorted.
        labels: Labels,
    },
    /// The file would pass the cap on samples all files may add.
    #[error("{added} samples would pass the {MAX_SAMPLES} all files may add")]
    TooManySamples {
        /// The file's samples.
        added: usize,
    },
}

/// What is wrong with one line of a file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LineProblem {
    /// A `# HELP`, `# TYPE` or sample line with an invalid metric name.
    #[error("invalid metric name {name:?}")]
    MetricName {
        /// The name as written.
        name: String,
    },
    /// A second `# HELP` for a family.
    #[error("second HELP line for {name}")]
    SecondHelp {
        /// The family.
        name: String,
    },
    /// A second `# TYPE` for a family.
    #[error("second TYPE line for {name}")]
    SecondType {
        /// The family.
        name: String,
    },
    /// A `# TYPE` after the family's first sample.
    #[error("TYPE line for {name} after its samples")]
    TypeAfterSamples {
        /// The family.
        name: String,
    },
    /// A summary or histogram, which the wire has no type for.
    #[error("{name} is a {kind}, which the agent does not carry")]
    UnsupportedType {
        /// The family.
        name: String,
        /// The type as written.
        kind: String,
    },
    /// A type the format does not have.
    #[error("unknown type {kind:?}")]
    UnknownType {
        /// The type as written.
        kind: String,
    },
    /// A sample without a value.
    #[error("{name} has no value")]
    NoValue {
        /// The family.
        name: String,
    },
    /// A sample value that is not a number.
    #[error("invalid value {value:?}")]
    InvalidValue {
        /// The value as written.
        value: String,
    },
    /// A sample with a timestamp after its value.
    #[error("{name} carries a client timestamp, which node_exporter refuses")]
    ClientTimestamp {
        /// The family.
        name: String,
    },
    /// A label without `=`.
    #[error("{name}: label without a value")]
    LabelWithoutValue {
        /// The family.
        name: String,
    },
    /// A label name that is not one.
    #[error("{name}: invalid label name {label:?}")]
    LabelName {
        /// The family.
        name: String,
        /// The label as written.
        label: String,
    },
    /// A label value without its opening quote.
    #[error("{name}: label {label} value is not quoted")]
    UnquotedValue {
        /// The family.
        name: String,
        /// The label.
        label: String,
    },
    /// A label value without its closing quote.
    #[error("{name}: label {label} value is not closed")]
    UnclosedValue {
        /// The family.
        name: String,
        /// The label.
        label: String,
    },
    /// A label given twice in one sample.
    #[error("{name}: duplicate label {label}")]
    DuplicateLabel {
        /// The family.
        name: String,
        /// The label.
        label: String,
    },
    /// Labels or name running into the value.
    #[error("{name}: no space before the value")]
    NoSpaceBeforeValue {
        /// The family.
        name: String,
    },
}

/// A sample's labels, sorted by name.
type Labels = Vec<(String, String)>;

/// One family as a file declares it.
#[derive(Debug, Default)]
struct Declared {
    /// `# HELP` text, when given.
    help: Option<String>,
    /// `# TYPE`, when given.
    kind: Option<MetricKind>,
    /// Samples: labels (sorted by name) and value.
    samples: Vec<(Labels, f64)>,
}

/// Parses one file's Prometheus text format (0.0.4), with node_exporter's
/// refusals. Families come out in the order the file first names them.
fn parse(text: &str) -> Result<Vec<(String, Declared)>, TextfileError> {
    let mut families: Vec<(String, Declared)> = Vec::new();
    let mut index_of: HashMap<String, usize> = HashMap::new();
    let mut family = |name: &str| -> usize {
        *index_of.entry(name.to_string()).or_insert_with(|| {
            families.push((name.to_string(), Declared::default()));
            families.len() - 1
        })
    };
    let mut declared = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let at = |problem: LineProblem| TextfileError::Line {
            line: number + 1,
            problem,
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, [' ', '\t']);
            let keyword = words.next().unwrap_or_default();
            if keyword != "HELP" && keyword != "TYPE" {
                continue;
            }
            let name = words.next().unwrap_or_default();
            if !countywatch_wire::is_valid_metric_name(name) {
                return Err(at(LineProblem::MetricName {
                    name: name.to_string(),
                }));
            }
            let rest = words.next().unwrap_or_default();
            let slot = family(name);
            declared.resize_with(slot + 1, Default::default);
            let target: &mut Declared = &mut declared[slot];
            if keyword == "HELP" {
                if target.help.is_some() {
                    return Err(at(LineProblem::SecondHelp {
                        name: name.to_string(),
                    }));
                }
                target.help = Some(unescape(rest, false));
            } else {
                if target.kind.is_some() {
                    return Err(at(LineProblem::SecondType {
                        name: name.to_string(),
                    }));
                }
                if !target.samples.is_empty() {
                    return Err(at(LineProblem::TypeAfterSamples {
                        name: name.to_string(),
                    }));
                }
                target.kind = Some(match rest.trim() {
                    "counter" => MetricKind::Counter,
                    "gauge" => MetricKind::Gauge,
                    "untyped" => MetricKind::Untyped,
                    "summary" | "histogram" => {
                        return Err(at(LineProblem::UnsupportedType {
                            name: name.to_string(),
                            kind: rest.trim().to_string(),
                        }));
                    }
                    other => {
                        return Err(at(LineProblem::UnknownType {
                            kind: other.to_string(),
                        }));
                    }
                });
            }
            continue;
        }
        let (name, labels, rest) = parse_sample(line).map_err(at)?;
        let mut values = rest.split_whitespace();
        let value = values
            .next()
            .ok_or_else(|| at(LineProblem::NoValue { name: name.clone() }))?;
        let value = parse_value(value).ok_or_else(|| {
            at(LineProblem::InvalidValue {
                value: value.to_string(),
            })
        })?;
        if values.next().is_some() {
            return Err(at(LineProblem::ClientTimestamp { name }));
        }
        let slot = family(&name);
        declared.resize_with(slot + 1, Default::default);
        declared[slot].samples.push((labels, value));
    }
    declared.resize_with(families.len(), Default::default);
    for ((_, slot), parsed) in families.iter_mut().zip(declared) {
        *slot = parsed;
    }
    Ok(families)
}

/// Splits `name{a="b",...} rest` into its parts, labels sorted by name.
fn parse_sample(line: &str) -> Result<(String, Labels, &str), LineProblem> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if !countywatch_wire::is_valid_metric_name(name) {
        return Err(LineProblem::MetricName {
            name: name.to_string(),
        });
    }
    let sample = || name.to_string();
    let mut rest = &line[name_end..];
    let mut labels: Labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = after;
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (label, after) = rest
                .split_once('=')
                .ok_or_else(|| LineProblem::LabelWithoutValue { name: sample() })?;
            let label = label.trim();
            if !countywatch_wire::is_valid_label_name(label) {
                return Err(LineProblem::LabelName {
                    name: sample(),
                    label: label.to_string(),
                });
            }
            let after =
                after
                    .trim_start()
                    .strip_prefix('"')
                    .ok_or_else(|| LineProblem::UnquotedValue {
                        name: sample(),
                        label: label.to_string(),
                    })?;
            let close = closing_quote(after).ok_or_else(|| LineProblem::UnclosedValue {
                name: sample(),
                label: label.to_string(),
            })?;
            if labels.iter().any(|(other, _)| other == label) {
                return Err(LineProblem::DuplicateLabel {
                    name: sample(),
                    label: label.to_string(),
                });
            }
            labels.push((label.to_string(), unescape(&after[..close], true)));
            rest = after[close + 1..].trim_start();
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    if !rest.starts_with(char::is_whitespace) {
        return Err(LineProblem::NoSpaceBeforeValue { name: sample() });
    }
    labels.sort();
    Ok((name.to_string(), labels, rest))
}

/// The index of the unescaped `"` ending a label value.
fn closing_quote(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (index, c) in text.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(index),
            _ => escaped = false,
        }
    }
    None
}

/// Undoes the format's escapes: `\\` and `\n`, and `\"` in label values.
fn unescape(text: &str, quotes: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            Some('"') if quotes => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// A sample value: a float, `NaN`, `+Inf` or `-Inf`.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

/// The families of every accepted file, merged by name.
#[derive(Default)]
struct Merged {
    /// Families by name: kind, help, the files that named them, samples.
    families: BTreeMap<String, MergedFamily>,
    /// Samples accepted so far.
    samples: usize,
}

/// One family across files.
struct MergedFamily {
    /// Its type (untyped when no file gave one).
    kind: MetricKind,
    /// The first file's help text, if any gave one.
    help: Option<String>,
    /// Files that contributed, for the default help text.
    files: Vec<String>,
    /// Samples with sorted labels.
    samples: Vec<(Labels, f64)>,
}

impl Merged {
    /// Adds one file's families, or refuses the whole file and changes
    /// nothing.
    fn add(&mut self, path: &Path, families: Vec<(String, Declared)>) -> Result<(), TextfileError> {
        let mut added = 0;
        for (name, declared) in &families {
            if name.starts_with("countywatch_") {
                return Err(TextfileError::OwnNamespace { name: name.clone() });
            }
            let kind = declared.kind.unwrap_or(MetricKind::Untyped);
            if let Some(existing) = self.families.get(name)
                && existing.kind != kind
            {
                return Err(TextfileError::KindConflict {
                    name: name.clone(),
                    kind: kind.as_str(),
                    other_kind: existing.kind.as_str(),
                    other_files: existing.files.join(", "),
                });
            }
            let mut seen: Vec<&Labels> = self
                .families
                .get(name)
                .map(|existing| existing.samples.iter().map(|(labels, _)| labels).collect())
                .unwrap_or_default();
            for (labels, _) in &declared.samples {
                if let Some((label, _)) = labels
                    .iter()
                    .find(|(label, _)| REFUSED_LABELS.contains(&label.as_str()))
                {
                    return Err(TextfileError::OwnedLabel {
                        name: name.clone(),
                        label: label.clone(),
                    });
                }
                if seen.contains(&labels) {
                    return Err(TextfileError::DuplicateSeries {
                        name: name.clone(),
                        labels: labels.clone(),
                    });
                }
                seen.push(labels);
            }
            added += declared.samples.len();
        }
        if self.samples + added > MAX_SAMPLES {
            return Err(TextfileError::TooManySamples { added });
        }
        self.samples += added;
        let file = path.to_string_lossy().into_owned();
        for (name, declared) in families {
            let family = self.families.entry(name).or_insert_with(|| MergedFamily {
                kind: declared.kind.unwrap_or(MetricKind::Untyped),
                help: None,
                files: Vec::new(),
                samples: Vec::new(),
            });
            if family.help.is_none() {
                family.help = declared.help;
            }
            family.files.push(file.clone());
            family.samples.extend(declared.samples);
        }
        Ok(())
    }

    /// The wire families: every sample of a family carries every label
    /// name any of its samples has (empty where missing), as node_exporter
    /// fills them in.
    fn into_families(self) -> Vec<MetricFamily> {
        self.families
            .into_iter()
            .filter(|(_, family)| !family.samples.is_empty())
            .map(|(name, family)| {
                let help = family
                    .help
                    .unwrap_or_else(|| format!("Metric read from {}", family.files.join(", ")));
                let mut names: Vec<&str> = family
                    .samples
                    .iter()
                    .flat_map(|(labels, _)| labels.iter().map(|(label, _)| label.as_str()))
                    .collect();
                names.sort_unstable();
                names.dedup();
                let mut out = MetricFamily::new(name.clone(), help, family.kind);
                for (labels, value) in &family.samples {
                    let full: Vec<(&str, &str)> = names
                        .iter()
                        .map(|label| {
                            let value = labels
                                .iter()
                                .find(|(name, _)| name == label)
                                .map(|(_, value)| value.as_str())
                                .unwrap_or("");
                            (*label, value)
                        })
                        .collect();
                    out.push_copied(&full, *value);
                }
                out
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect_dir(files: &[(&str, &str)]) -> (tempfile::TempDir, Vec<MetricFamily>) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let mut probe = TextfileProbe::new(dir.path().to_path_buf());
        let mut out = Vec::new();
        probe.collect(&mut out).unwrap();
        (dir, out)
    }

    fn find<'a>(families: &'a [MetricFamily], name: &str) -> Option<&'a MetricFamily> {
        families.iter().find(|family| family.name == name)
    }

    fn scrape_error(families: &[MetricFamily]) -> f64 {
        find(families, "node_textfile_scrape_error")
            .unwrap()
            .samples[0]
            .value
    }

    #[test]
    fn good_files_are_served_with_their_mtimes() {
        let (dir, out) = collect_dir(&[
            (
                "backup.prom",
                "# HELP backup_last_success_seconds When the backup last succeeded.\n\
# TYPE backup_last_success_seconds gauge\n\
backup_last_success_seconds{job_name=\"nightly\", target=\"/srv\"} 1.7e9\n\
backup_last_success_seconds{job_name=\"weekly\"} 1.6e9\n\
# a comment\n\n\
raid_degraded{array=\"md0\",note=\"say \\\"hi\\\"\\n\"} 0\n",
            ),
            ("ignored.txt", "not_read 1\n"),
            (
                "certs.prom",
                "raid_degraded{array=\"md1\"} 1\ncert_expiry_seconds NaN\n",
            ),
        ]);
        let backup = find(&out, "backup_last_success_seconds").unwrap();
        assert_eq!(backup.kind, MetricKind::Gauge);
        assert_eq!(backup.help, "When the backup last succeeded.");
        // The missing label is filled in empty, as node_exporter does.
        assert_eq!(
            backup.samples[1].owned_labels(),
            vec![
                ("job_name".to_string(), "weekly".to_string()),
                ("target".to_string(), String::new())
            ]
        );
        assert_eq!(backup.samples[0].value, 1.7e9);
        let raid = find(&out, "raid_degraded").unwrap();
        assert_eq!(raid.kind, MetricKind::Untyped);
        assert_eq!(raid.samples.len(), 2, "merged across files");
        let certs = dir.path().join("certs.prom").to_string_lossy().into_owned();
        let backup_path = dir
            .path()
            .join("backup.prom")
            .to_string_lossy()
            .into_owned();
        assert_eq!(
            raid.help,
            format!("Metric read from {backup_path}, {certs}")
        );
        assert_eq!(raid.samples[0].labels[1].1, "say \"hi\"\n");
        assert!(find(&out, "not_read").is_none());
        let mtimes = find(&out, "node_textfile_mtime_seconds").unwrap();
        assert_eq!(mtimes.samples.len(), 2);
        assert_eq!(mtimes.samples[0].labels[0].1, backup_path);
        assert!(mtimes.samples[0].value > 1.6e9);
        assert_eq!(scrape_error(&out), 0.0);
    }

    #[test]
    fn each_bad_file_is_refused_whole_and_flags_the_error() {
        let bad = [
            "x{instance=\"other-host\"} 1\n",
            "x{job=\"node\"} 1\n",
            "x{device_instance=\"switch\"} 1\n",
            "x 1 1700000000000\n",
            "x{a=\"1\"} 1\nx{a=\"1\"} 2\n",
            "x{a=\"1\",a=\"2\"} 1\n",
            "# TYPE x gauge\n# TYPE x counter\nx 1\n",
            "x 1\n# TYPE x gauge\n",
            "# TYPE x summary\nx_sum 1\n",
            "# TYPE x widget\nx 1\n",
            "9x 1\n",
            "x{a=1} 1\n",
            "x{a=\"1} 1\n",
            "x one\n",
            "countywatch_agent_build_info 1\n",
            "good 1\nbad-name 2\n",
        ];
        for text in bad {
            let (_dir, out) = collect_dir(&[("bad.prom", text)]);
            assert_eq!(scrape_error(&out), 1.0, "{text:?} was accepted");
            assert!(
                find(&out, "x").is_none() && find(&out, "good").is_none(),
                "{text:?} was partly served"
            );
            assert!(find(&out, "node_textfile_mtime_seconds").is_none());
        }
        // A type conflicting with an earlier file refuses the later file only.
        let (_dir, out) = collect_dir(&[
            ("a.prom", "# TYPE x counter\nx 1\n"),
            ("b.prom", "# TYPE x gauge\nx{b=\"1\"} 2\ny 3\n"),
        ]);
        assert_eq!(scrape_error(&out), 1.0);
        assert_eq!(find(&out, "x").unwrap().samples.len(), 1);
        assert!(find(&out, "y").is_none());
        // The same series in two files refuses the second too.
        let (_dir, out) = collect_dir(&[("a.prom", "x 1\n"), ("b.prom", "x 2\n")]);
        assert_eq!(scrape_error(&out), 1.0);
        assert_eq!(find(&out, "x").unwrap().samples[0].value, 1.0);
    }

    #[test]
    fn a_missing_directory_is_an_error_and_nothing_else() {
        let mut probe = TextfileProbe::new(PathBuf::from("/nonexistent/countywatch/textfile"));
        let mut out = Vec::new();
        probe.collect(&mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(scrape_error(&out), 1.0);
    }
}
