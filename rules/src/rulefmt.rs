//! The rule-file schema, exactly Prometheus's (`groups: [{name, interval,
//! limit, labels, rules: [{alert|record, expr, for, keep_firing_for,
//! labels, annotations}]}]`), and its validation.
//!
//! Loading has two layers, like Prometheus's `rulefmt`: serde checks the
//! shape (unknown keys, wrong types) and stops at the first error; then
//! [`validate`] checks every rule and reports every problem at once, each
//! with `file:line:column`. Evaluation lives elsewhere ([`crate::group`]).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use countywatch_config::config_file::{self, Problems, Spanned};
use countywatch_config::duration;
use promql_parser::parser::Expr;
use serde::Deserialize;

use crate::promql::parse_expr;
use countywatch_labels::template::Template;

/// A rule file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    /// The rule groups.
    #[serde(default, deserialize_with = "crate::rulefmt::null_as_default")]
    pub groups: Vec<RawGroup>,
}

/// A rule group as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    /// The group's name, unique within the file.
    pub name: Spanned<String>,
    /// How often the group runs; the global evaluation interval when absent.
    #[serde(default)]
    pub interval: Option<Spanned<String>>,
    /// Most alerts or series a rule may produce; 0 means no limit.
    #[serde(default)]
    pub limit: Option<Spanned<i64>>,
    /// Labels added to every rule's output (Prometheus 3.x).
    #[serde(default, deserialize_with = "crate::rulefmt::null_as_default")]
    pub labels: BTreeMap<String, Spanned<String>>,
    /// The rules, evaluated in order.
    #[serde(default, deserialize_with = "crate::rulefmt::null_as_default")]
    pub rules: Vec<Spanned<RawRule>>,
}

/// One rule as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// The name of the series a recording rule writes.
    #[serde(default)]
    pub record: Option<Spanned<String>>,
    /// The name of the alert an alerting rule raises.
    #[serde(default)]
    pub alert: Option<Spanned<String>>,
    /// The PromQL expression.
    #[serde(default)]
    pub expr: Option<Spanned<String>>,
    /// How long an alert stays pending before it fires.
    #[serde(default, rename = "for")]
    pub for_: Option<Spanned<String>>,
    /// How long an alert keeps firing after its condition cleared.
    #[serde(default)]
    pub keep_firing_for: Option<Spanned<String>>,
    /// Labels added to the output (templates for alerts).
    #[serde(default, deserialize_with = "crate::rulefmt::null_as_default")]
    pub labels: BTreeMap<String, Spanned<String>>,
    /// Annotations of an alert (templates).
    #[serde(default, deserialize_with = "crate::rulefmt::null_as_default")]
    pub annotations: BTreeMap<String, Spanned<String>>,
}

/// A validated rule group, ready to evaluate.
#[derive(Clone, Debug)]
pub struct GroupSpec {
    /// The group's name.
    pub name: String,
    /// Its own interval, if it sets one.
    pub interval: Option<Duration>,
    /// Most alerts or series per rule; 0 means no limit.
    pub limit: usize,
    /// Labels added to every rule's output.
    pub labels: Vec<(String, String)>,
    /// The rules in order.
    pub rules: Vec<RuleSpec>,
}

/// A validated rule.
#[derive(Clone, Debug)]
pub struct RuleSpec {
    /// Alert or record, with what only that kind has.
    pub kind: RuleKind,
    /// The expression's text, as written.
    pub expr_text: String,
    /// The parsed expression.
    pub expr: Expr,
    /// Output labels as templates (a recording rule's have no actions).
    pub labels: Vec<(String, Template)>,
    /// The line of the rule in its file (0 when unknown), so listings can
    /// say where a rule came from.
    pub line: u64,
}

/// What differs between the two kinds of rule.
#[derive(Clone, Debug)]
pub enum RuleKind {
    /// An alerting rule.
    Alert {
        /// The alert name.
        name: String,
        /// Pending time before firing.
        for_: Duration,
        /// Time to keep firing after the condition clears.
        keep_firing_for: Duration,
        /// Annotations as templates.
        annotations: Vec<(String, Template)>,
    },
    /// A recording rule.
    Record {
        /// The output metric name.
        name: String,
    },
}

impl RuleSpec {
    /// The rule's name (alert or recorded metric).
    pub fn name(&self) -> &str {
        match &self.kind {
            RuleKind::Alert { name, .. } | RuleKind::Record { name } => name,
        }
    }
}

/// Deserializes a missing or `null` value (`labels:` with nothing after
/// it) as the default, as Prometheus's YAML decoding does.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// Reads, parses and validates a rule file.
pub fn load(path: &Path) -> Result<Vec<GroupSpec>, Problems> {
    let raw: RawFile = config_file::load(path)?;
    validate(path, &raw)
}

/// Parses and validates rule-file text that came from `path`.
pub fn parse(path: &Path, text: &str) -> Result<Vec<GroupSpec>, Problems> {
    let raw: RawFile = config_file::parse(path, text)?;
    validate(path, &raw)
}

/// Checks every group and rule, collecting every problem.
pub fn validate(path: &Path, raw: &RawFile) -> Result<Vec<GroupSpec>, Problems> {
    let mut problems = Problems::new(path);
    let mut seen_groups: HashMap<&str, ()> = HashMap::new();
    let mut groups = Vec::new();
    for group in &raw.groups {
        let name = group.name.value.as_str();
        if name.is_empty() {
            problems.at(&group.name, "group name must not be empty");
        } else if seen_groups.insert(name, ()).is_some() {
            problems.at(
                &group.name,
                format!("group name {name:?} is repeated in the same file"),
            );
        }
        let interval = group
            .interval
            .as_ref()
            .and_then(|interval| parse_duration(&mut problems, "interval", interval));
        if let Some(interval) = interval
            && interval.is_zero()
            && let Some(spanned) = &group.interval
        {
            problems.at(spanned, "group interval must be positive");
        }
        let limit = match &group.limit {
            Some(limit) if limit.value < 0 => {
                problems.at(limit, "limit must not be negative");
                0
            }
            Some(limit) => usize::try_from(limit.value).unwrap_or(usize::MAX),
            None => 0,
        };
        let mut labels = Vec::new();
        for (label, value) in &group.labels {
            if !is_label_name(label) {
                problems.at(value, format!("invalid label name: {label}"));
            }
            labels.push((label.clone(), value.value.clone()));
        }
        let mut rules = Vec::new();
        for rule in &group.rules {
            if let Some(spec) = validate_rule(&mut problems, name, rule) {
                rules.push(spec);
            }
        }
        groups.push(GroupSpec {
            name: name.to_string(),
            interval,
            limit,
            labels,
            rules,
        });
    }
    problems.into_result().map(|()| groups)
}

fn validate_rule(
    problems: &mut Problems,
    group: &str,
    rule: &Spanned<RawRule>,
) -> Option<RuleSpec> {
    let raw = &rule.value;
    // The rule is usable when validating it added no problem.
    let problems_before = problems.problems.len();
    let context = match (&raw.alert, &raw.record) {
        (Some(alert), _) => format!("group {group:?}, alert {:?}", alert.value),
        (None, Some(record)) => format!("group {group:?}, record {:?}", record.value),
        (None, None) => format!("group {group:?}"),
    };
    match (&raw.alert, &raw.record) {
        (Some(_), Some(_)) => problems.at(
            rule,
            format!("{context}: only one of 'record' and 'alert' must be set"),
        ),
        (None, None) => problems.at(
            rule,
            format!("{context}: one of 'record' or 'alert' must be set"),
        ),
        _ => {}
    }
    let expr = match &raw.expr {
        None => {
            problems.at(rule, format!("{context}: field 'expr' must be set in rule"));
            None
        }
        Some(text) if text.value.trim().is_empty() => {
            problems.at(rule, format!("{context}: field 'expr' must be set in rule"));
            None
        }
        Some(text) => match parse_expr(&text.value) {
            Ok(expr) => {
                if matches!(
                    expr,
                    Expr::StringLiteral(_) | Expr::MatrixSelector(_) | Expr::Subquery(_)
                ) {
                    problems.at(
                        text,
                        format!(
                            "{context}: expression must be of type instant vector or scalar, got {}",
                            expr.value_type()
                        ),
                    );
                    None
                } else {
                    Some(expr)
                }
            }
            Err(error) => {
                problems.at(
                    text,
                    format!("{context}: could not parse expression: {error}"),
                );
                None
            }
        },
    };
    let mut labels = Vec::new();
    for (name, value) in &raw.labels {
        if !is_label_name(name) || name == "__name__" {
            problems.at(value, format!("{context}: invalid label name: {name}"));
            continue;
        }
        match Template::parse(&value.value) {
            Ok(template) => labels.push((name.clone(), template)),
            Err(error) => {
                problems.at(
                    value,
                    format!("{context}: label {name}: template error: {error}"),
                );
            }
        }
    }
    let kind = if let Some(record) = &raw.record {
        if !is_metric_name(&record.value) {
            problems.at(
                record,
                format!("{context}: invalid recording rule name: {}", record.value),
            );
        }
        for (field, present) in [
            ("annotations", !raw.annotations.is_empty()),
            ("for", raw.for_.is_some()),
            ("keep_firing_for", raw.keep_firing_for.is_some()),
        ] {
            if present {
                problems.at(
                    rule,
                    format!("{context}: invalid field '{field}' in recording rule"),
                );
            }
        }
        for (name, value) in &raw.labels {
            if value.value.contains("{{") {
                problems.at(
                    value,
                    format!("{context}: label {name}: recording rule labels cannot be templates"),
                );
            }
        }
        RuleKind::Record {
            name: record.value.clone(),
        }
    } else {
        let name = raw
            .alert
            .as_ref()
            .map(|alert| alert.value.clone())
            .unwrap_or_default();
        if let Some(alert) = &raw.alert
            && alert.value.is_empty()
        {
            problems.at(alert, format!("{context}: alert name must not be empty"));
        }
        let for_ = raw
            .for_
            .as_ref()
            .and_then(|text| parse_duration(problems, "for", text))
            .unwrap_or_default();
        let keep_firing_for = raw
            .keep_firing_for
            .as_ref()
            .and_then(|text| parse_duration(problems, "keep_firing_for", text))
            .unwrap_or_default();
        let mut annotations = Vec::new();
        for (annotation, value) in &raw.annotations {
            if !is_label_name(annotation) {
                problems.at(
                    value,
                    format!("{context}: invalid annotation name: {annotation}"),
                );
                continue;
            }
            match Template::parse(&value.value) {
                Ok(template) => annotations.push((annotation.clone(), template)),
                Err(error) => {
                    problems.at(
                        value,
                        format!("{context}: annotation {annotation}: template error: {error}"),
                    );
                }
            }
        }
        RuleKind::Alert {
            name,
            for_,
            keep_firing_for,
            annotations,
        }
    };
    if problems.problems.len() != problems_before {
        return None;
    }
    let expr = expr?;
    Some(RuleSpec {
        line: rule.referenced.line(),
        kind,
        expr_text: raw
            .expr
            .as_ref()
            .map(|text| text.value.clone())
            .unwrap_or_default(),
        expr,
        labels,
    })
}

fn parse_duration(
    problems: &mut Problems,
    field: &str,
    text: &Spanned<String>,
) -> Option<Duration> {
    match duration::parse(&text.value) {
        Ok(parsed) => Some(parsed),
        Err(error) => {
            problems.at(text, format!("{field}: {error}"));
            None
        }
    }
}

/// Whether `name` matches `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `name` matches `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A rule's name and its labels as written, the identity promtool's
/// duplicate lint compares.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RuleIdentity {
    /// The alert name or the recorded metric.
    pub name: String,
    /// The rule's own labels (templates unexpanded), sorted by name.
    pub labels: Vec<(String, String)>,
}

/// Rules of a file, alerting or recording, that share a name and labels:
/// promtool 2.42's `checkDuplicates`, in its order (sorted by name, then
/// labels) and listing each duplicated identity once.
pub fn duplicate_rules(groups: &[GroupSpec]) -> Vec<RuleIdentity> {
    let mut rules: Vec<RuleIdentity> = groups
        .iter()
        .flat_map(|group| &group.rules)
        .map(|rule| {
            // `labels` is in file order; the identity is a set.
            let mut labels: Vec<(String, String)> = rule
                .labels
                .iter()
                .map(|(label, template)| (label.clone(), template.source().to_string()))
                .collect();
            labels.sort();
            RuleIdentity {
                name: rule.name().to_string(),
                labels,
            }
        })
        .collect();
    rules.sort();
    let mut duplicates: Vec<RuleIdentity> = Vec::new();
    for pair in rules.windows(2) {
        if pair[0] == pair[1] && duplicates.last() != Some(&pair[1]) {
            duplicates.push(pair[1].clone());
        }
    }
    duplicates
}
