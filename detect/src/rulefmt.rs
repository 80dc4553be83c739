//! The detection-rule file format and its validation.
//!
//! ```yaml
//! lists:
//!   bastions: [10.0.0.5, 10.0.0.6]
//! macros:
//!   ssh_password_failure: {kind: ssh_login_failed, method: password}
//! rules:
//!   - id: ssh_brute_force
//!     title: "SSH brute force from {{ $labels.src_ip }}"
//!     severity: high
//!     tags: [T1110.001]
//!     match: {macro: ssh_password_failure}
//!     allow: {src_ip: {in_list: bastions}}
//!     group_by: [src_ip]
//!     max_groups: 100000
//!     threshold: {count: 10, window: 2m}
//!     cooldown: 10m
//! ```
//!
//! Like the alerting rule format, loading has two layers: serde checks the
//! fixed shape and stops at the first error; then every rule is checked and
//! every problem reported at once, each with `file:line:column`. `docs/
//! detection.md` is the user documentation of every key.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use countywatch_config::config_file::{self, Problems, Spanned};
use countywatch_config::duration;
use countywatch_labels::template::Template;
use serde::Deserialize;

use crate::condition::{self, Condition, KindSet, Scope};
use crate::detection::Severity;
use crate::field::Field;
use crate::kind::{Kind, KindSpec, detection_kinds};
use crate::node::Node;
use crate::response::{self, RawResponse, ResponseSpec};

/// Shortest window: below a second, event timestamps are too coarse.
pub const MIN_WINDOW: Duration = Duration::from_secs(1);
/// Longest window: state for longer belongs in the incident store.
pub const MAX_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);
/// Longest `new_value` learning period.
pub const MAX_LEARNING: Duration = Duration::from_secs(365 * 24 * 3600);
/// Group keys a rule keeps when it groups by low-cardinality fields only.
pub const DEFAULT_MAX_GROUPS: usize = 10_000;
/// Most group keys any rule may keep.
pub const MAX_MAX_GROUPS: u64 = 10_000_000;
/// Most events kept as evidence per detection, by default.
pub const DEFAULT_EVIDENCE: usize = 20;
/// Most events kept as evidence per detection, at most.
pub const MAX_EVIDENCE: u64 = 1_000;
/// Largest count a threshold, distinct or sequence step may ask for: the
/// state keeps that many hits per key.
pub const MAX_COUNT: u64 = 10_000;

/// A detection-rule file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    /// Named lists of values, for `in_list:`.
    #[serde(default)]
    pub lists: Option<Spanned<Node>>,
    /// Named conditions, for `macro:`; a macro may use the ones above it.
    #[serde(default)]
    pub macros: Option<Spanned<Node>>,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<Spanned<RawRule>>,
}

/// Makes [`RawRule`], with one key per correlation kind of the table in
/// `kind/mod.rs`, and `validate_kind`, which reads whichever is set.
macro_rules! raw_rule {
    ($($(#[doc = $doc:literal])* $key:ident: $variant:ident($kind:ty) as $state:literal,)*) => {
        /// One rule as written.
        #[derive(Clone, Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct RawRule {
            /// Unique id across all loaded files; the alert name.
            pub id: Spanned<String>,
            /// One-line summary; a template.
            pub title: Spanned<String>,
            /// What the rule detects and what to do about it.
            #[serde(default)]
            pub description: Option<String>,
            /// `info`, `low`, `medium`, `high` or `critical`.
            pub severity: Severity,
            /// What a security officer should do when the rule fires.
            #[serde(default)]
            pub guidance: Option<String>,
            /// The title, description and guidance per language (`zh`, `en`), for
            /// the web page; the fields above are the default.
            #[serde(default)]
            pub i18n: BTreeMap<String, Spanned<RawRuleText>>,
            /// Free tags, MITRE ATT&CK technique ids for instance.
            #[serde(default)]
            pub tags: Vec<String>,
            /// Labels added to the alert.
            #[serde(default)]
            pub labels: BTreeMap<String, Spanned<String>>,
            /// Annotations of the alert; templates.
            #[serde(default)]
            pub annotations: BTreeMap<String, Spanned<String>>,
            /// Which events the rule looks at (optional for `sequence`).
            #[serde(default, rename = "match")]
            pub match_: Option<Spanned<Node>>,
            /// Events matching this are ignored by the rule (allow-lists).
            #[serde(default)]
            pub allow: Option<Spanned<Node>>,
            /// Fields whose values make the group key.
            #[serde(default)]
            pub group_by: Option<Spanned<Vec<Spanned<String>>>>,
            /// Most group keys kept; the oldest is evicted (and counted) beyond it.
            #[serde(default)]
            pub max_groups: Option<Spanned<u64>>,
            /// After firing for a key, stay quiet for that key this long.
            #[serde(default)]
            pub cooldown: Option<Spanned<String>>,
            /// Most events kept as evidence.
            #[serde(default)]
            pub evidence: Option<Spanned<u64>>,
            $(
                $(#[doc = $doc])*
                #[serde(default)]
                pub $key: Option<Spanned<<$kind as Kind>::Raw>>,
            )*
            /// Block the source address when the rule fires (`response.rs`).
            #[serde(default)]
            pub response: Option<Spanned<RawResponse>>,
        }

        /// The rule's correlation: the one kind key that is set, else
        /// `single`.
        fn validate_kind(
            problems: &mut Problems,
            scope: &Scope,
            rule: &Spanned<RawRule>,
        ) -> Option<KindSpec> {
            let raw = &rule.value;
            let given = [$(raw.$key.is_some()),*]
                .iter()
                .filter(|set| **set)
                .count();
            if given > 1 {
                problems.at(
                    rule,
                    format!(
                        "rule {:?}: set at most one of {}",
                        raw.id.value,
                        KindSpec::KEYS.join(", ")
                    ),
                );
                return None;
            }
            $(
                if let Some(section) = &raw.$key {
                    return <$kind as Kind>::validate(problems, scope, &section.value)
                        .map(KindSpec::$variant);
                }
            )*
            Some(KindSpec::Single)
        }
    };
}

detection_kinds!(raw_rule);

/// One language's texts of a rule, as written under `i18n:`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuleText {
    /// The title in this language; a template like `title`.
    #[serde(default)]
    pub title: Option<Spanned<String>>,
    /// The description in this language.
    #[serde(default)]
    pub description: Option<String>,
    /// The guidance in this language.
    #[serde(default)]
    pub guidance: Option<String>,
}

/// A validated rule, ready for the engine.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The rule's id.
    pub id: String,
    /// The file it came from.
    pub file: PathBuf,
    /// The line of its `id` in that file, so listings can say where a rule
    /// came from.
    pub line: u64,
    /// Title template.
    pub title: Template,
    /// Description.
    pub description: String,
    /// Severity.
    pub severity: Severity,
    /// What to do when it fires.
    pub guidance: String,
    /// Title, description and guidance per language code.
    pub i18n: BTreeMap<String, RuleText>,
    /// Tags.
    pub tags: Vec<String>,
    /// Static labels.
    pub labels: Vec<(String, String)>,
    /// Annotation templates.
    pub annotations: Vec<(String, Template)>,
    /// Which events the rule looks at.
    pub condition: Condition,
    /// Events the rule ignores.
    pub allow: Option<Condition>,
    /// Group-key fields.
    pub group_by: Vec<Field>,
    /// Most group keys kept.
    pub max_groups: usize,
    /// Quiet time per key after firing, ms.
    pub cooldown_ms: i64,
    /// Most evidence events.
    pub evidence: usize,
    /// The correlation.
    pub kind: KindSpec,
    /// The event kinds that can reach the rule.
    pub kinds: KindSet,
    /// A summary of what the state means (kind, windows, group key): state
    /// restored from a snapshot is kept only when this is unchanged.
    pub signature: String,
    /// What the collector does beyond an incident when the rule fires.
    pub response: Option<ResponseSpec>,
}

/// One language's texts of a rule (each falls back to the rule's own).
#[derive(Clone, Debug)]
pub struct RuleText {
    /// Title template.
    pub title: Option<Template>,
    /// Description.
    pub description: Option<String>,
    /// Guidance.
    pub guidance: Option<String>,
}

impl Rule {
    /// The title template in `language`, else the rule's own.
    pub fn title_in(&self, language: &str) -> &Template {
        self.i18n
            .get(language)
            .and_then(|text| text.title.as_ref())
            .unwrap_or(&self.title)
    }

    /// The description in `language`, else the rule's own.
    pub fn description_in(&self, language: &str) -> &str {
        self.i18n
            .get(language)
            .and_then(|text| text.description.as_deref())
            .unwrap_or(&self.description)
    }

    /// The guidance in `language`, else the rule's own.
    pub fn guidance_in(&self, language: &str) -> &str {
        self.i18n
            .get(language)
            .and_then(|text| text.guidance.as_deref())
            .unwrap_or(&self.guidance)
    }
}

/// Reads, parses and validates one rule file.
pub fn load(path: &Path) -> Result<Vec<Rule>, Problems> {
    let raw: RawFile = config_file::load(path)?;
    validate(path, &raw)
}

/// Parses and validates rule-file text that came from `path`.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Rule>, Problems> {
    let raw: RawFile = config_file::parse(path, text)?;
    validate(path, &raw)
}

/// The rule files among `paths`: files as given, directories' `*.yaml` and
/// `*.yml` files except tests (`*.test.yaml`), sorted.
pub fn rule_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            for entry in std::fs::read_dir(path)? {
                let entry_path = entry?.path();
                let name = entry_path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("");
                let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
                let test = name.ends_with(".test.yaml") || name.ends_with(".test.yml");
                if yaml && !test && entry_path.is_file() {
                    found.push(entry_path);
                }
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// Loads several files; rule ids must be unique across them. Returns every
/// file's problems.
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<Rule>, Vec<Problems>> {
    let mut rules: Vec<Rule> = Vec::new();
    let mut failures = Vec::new();
    for path in paths {
        match load(path) {
            Ok(loaded) => rules.extend(loaded),
            Err(problems) => failures.push(problems),
        }
    }
    let mut seen = HashSet::new();
    for rule in &rules {
        if !seen.insert(rule.id.clone()) {
            let mut problems = Problems::new(&rule.file);
            problems.general(format!(
                "rule id {:?} is defined in more than one file",
                rule.id
            ));
            failures.push(problems);
        }
    }
    if failures.is_empty() {
        Ok(rules)
    } else {
        Err(failures)
    }
}

/// Checks every rule of a parsed file, collecting every problem.
pub fn validate(path: &Path, raw: &RawFile) -> Result<Vec<Rule>, Problems> {
    let mut problems = Problems::new(path);
    let scope = build_scope(&mut problems, raw);
    let mut rules = Vec::new();
    let mut ids = HashSet::new();
    for rule in &raw.rules {
        let before = problems.problems.len();
        let id = &rule.value.id;
        if !is_rule_id(&id.value) {
            problems.at(
                id,
                format!(
                    "rule id {:?} must be letters, digits, '_', '-' or '.'",
                    id.value
                ),
            );
        } else if !ids.insert(id.value.clone()) {
            problems.at(
                id,
                format!("rule id {:?} is repeated in the same file", id.value),
            );
        }
        let validated = validate_rule(&mut problems, &scope, path, rule);
        if problems.problems.len() == before
            && let Some(validated) = validated
        {
            rules.push(validated);
        }
    }
    problems.into_result().map(|()| rules)
}

fn is_rule_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn build_scope(problems: &mut Problems, raw: &RawFile) -> Scope {
    let mut scope = Scope::default();
    if let Some(lists) = &raw.lists {
        match &lists.value {
            Node::Map(entries) => {
                for (name, value) in entries {
                    match &value.value {
                        Node::Seq(items) => {
                            scope.lists.insert(name.clone(), items.clone());
                        }
                        other => problems.at(
                            value,
                            format!("list {name:?} must be a list, not {}", other.describe()),
                        ),
                    }
                }
            }
            Node::Null => {}
            other => problems.at(
                lists,
                format!(
                    "lists must be a mapping of names to lists, not {}",
                    other.describe()
                ),
            ),
        }
    }
    if let Some(macros) = &raw.macros {
        match &macros.value {
            Node::Map(entries) => {
                for (name, value) in entries {
                    if let Some(compiled) = condition::compile(problems, &scope, value) {
                        scope.macros.insert(name.clone(), compiled);
                    }
                }
            }
            Node::Null => {}
            other => problems.at(
                macros,
                format!(
                    "macros must be a mapping of names to conditions, not {}",
                    other.describe()
                ),
            ),
        }
    }
    scope
}

pub(crate) fn window(
    problems: &mut Problems,
    what: &str,
    text: &Spanned<String>,
    max: Duration,
) -> i64 {
    match duration::parse(&text.value) {
        Ok(value) if value < MIN_WINDOW => {
            problems.at(
                text,
                format!("{what} must be at least {}s", MIN_WINDOW.as_secs()),
            );
            0
        }
        Ok(value) if value > max => {
            problems.at(
                text,
                format!(
                    "{what} {:?} is longer than the {}-day limit",
                    text.value,
                    max.as_secs() / 86_400
                ),
            );
            0
        }
        Ok(value) => i64::try_from(value.as_millis()).unwrap_or(i64::MAX),
        Err(error) => {
            problems.at(text, error.to_string());
            0
        }
    }
}

pub(crate) fn count(problems: &mut Problems, what: &str, value: &Spanned<u64>, max: u64) -> usize {
    if value.value == 0 || value.value > max {
        problems.at(value, format!("{what} must be between 1 and {max}"));
    }
    usize::try_from(value.value.min(max)).unwrap_or(1)
}

pub(crate) fn field(problems: &mut Problems, name: &Spanned<String>) -> Option<Field> {
    let found = Field::from_name(&name.value);
    if found.is_none() {
        problems.at(
            name,
            format!(
                "unknown field {:?} (fields: {})",
                name.value,
                Field::names()
            ),
        );
    }
    found
}

fn template(problems: &mut Problems, text: &Spanned<String>) -> Option<Template> {
    Template::parse(&text.value)
        .map_err(|message| problems.at(text, message.to_string()))
        .ok()
}

fn validate_rule(
    problems: &mut Problems,
    scope: &Scope,
    path: &Path,
    rule: &Spanned<RawRule>,
) -> Option<Rule> {
    let raw = &rule.value;
    let title = template(problems, &raw.title);
    let mut i18n = BTreeMap::new();
    for (language, text) in &raw.i18n {
        if language.is_empty()
            || language.len() > 8
            || !language
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte == b'-')
        {
            problems.at(
                text,
                format!("i18n: {language:?} is not a language code such as zh or en"),
            );
        }
        let title = text
            .value
            .title
            .as_ref()
            .and_then(|title| template(problems, title));
        i18n.insert(
            language.clone(),
            RuleText {
                title,
                description: text.value.description.clone(),
                guidance: text.value.guidance.clone(),
            },
        );
    }
    let mut annotations = Vec::new();
    for (name, text) in &raw.annotations {
        annotations.extend(template(problems, text).map(|parsed| (name.clone(), parsed)));
    }
    let mut labels = Vec::new();
    for (name, value) in &raw.labels {
        if !is_label_name(name) {
            problems.at(value, format!("invalid label name {name:?}"));
        }
        labels.push((name.clone(), value.value.clone()));
    }
    let condition = match &raw.match_ {
        Some(node) => condition::compile(problems, scope, node),
        None if raw.sequence.is_some() => Some(Condition::True),
        None => {
            problems.at(rule, format!("rule {:?}: match must be set", raw.id.value));
            None
        }
    };
    let allow = raw
        .allow
        .as_ref()
        .and_then(|node| condition::compile(problems, scope, node));
    let mut group_by = Vec::new();
    let mut high_cardinality = None;
    if let Some(fields) = &raw.group_by {
        for name in &fields.value {
            if let Some(found) = field(problems, name) {
                if found.high_cardinality() && high_cardinality.is_none() {
                    high_cardinality = Some(found);
                }
                group_by.push(found);
            }
        }
    }
    let max_groups = match (&raw.max_groups, high_cardinality) {
        (Some(max), _) => count(problems, "max_groups", max, MAX_MAX_GROUPS),
        (None, Some(found)) => {
            if let Some(fields) = &raw.group_by {
                problems.at(
                    fields,
                    format!("group_by {} can take very many values (an attacker chooses them): set max_groups to bound the rule's memory", found.name()),
                );
            }
            DEFAULT_MAX_GROUPS
        }
        (None, None) => DEFAULT_MAX_GROUPS,
    };
    let cooldown_ms = raw
        .cooldown
        .as_ref()
        .map_or(0, |text| window(problems, "cooldown", text, MAX_WINDOW));
    let evidence = raw.evidence.as_ref().map_or(DEFAULT_EVIDENCE, |value| {
        count(problems, "evidence", value, MAX_EVIDENCE)
    });
    let response = raw
        .response
        .as_ref()
        .and_then(|raw_response| response::validate(problems, &raw_response.value));
    let kind = validate_kind(problems, scope, rule)?;
    let condition = condition?;
    let title = title?;
    let mut kinds = condition.kinds();
    if let Some(steps) = kind.steps() {
        kinds &= steps.iter().fold(0, |set, (step, _)| set | step.kinds());
    }
    let signature = format!(
        "{}|{:?}|{}",
        kind.name(),
        group_by
            .iter()
            .map(|field| field.name())
            .collect::<Vec<_>>(),
        kind.parameters()
    );
    Some(Rule {
        id: raw.id.value.clone(),
        file: path.to_path_buf(),
        line: raw.id.referenced.line(),
        title,
        description: raw.description.clone().unwrap_or_default(),
        severity: raw.severity,
        guidance: raw.guidance.clone().unwrap_or_default(),
        i18n,
        tags: raw.tags.clone(),
        labels,
        annotations,
        condition,
        allow,
        group_by,
        max_groups,
        cooldown_ms,
        evidence,
        kind,
        kinds,
        signature,
        response,
    })
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> String {
        parse(Path::new("r.yaml"), text)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_complete_file_loads() {
        let text = r#"
lists:
  bastions: [10.0.0.5]
macros:
  failure: {kind: [ssh_login_failed, ssh_invalid_user]}
rules:
  - id: ssh_brute_force
    title: "SSH brute force from {{ $labels.src_ip }}"
    severity: high
    tags: [T1110.001]
    match: {macro: failure}
    allow: {src_ip: {in_list: bastions}}
    group_by: [src_ip]
    max_groups: 1000
    threshold: {count: 10, window: 2m}
    cooldown: 10m
  - id: root_login
    title: root logged in
    severity: critical
    match: {kind: ssh_login_accepted, user: root}
"#;
        let rules = parse(Path::new("r.yaml"), text).unwrap();
        assert_eq!(rules.len(), 2);
        assert!(matches!(
            rules[0].kind,
            KindSpec::Threshold(crate::kind::threshold::Spec {
                count: 10,
                window_ms: 120_000
            })
        ));
        assert_eq!(rules[0].cooldown_ms, 600_000);
        assert_eq!(rules[0].group_by, vec![Field::SrcIp]);
        assert!(matches!(rules[1].kind, KindSpec::Single));
    }

    #[test]
    fn texts_per_language_fall_back_to_the_rule_s_own() {
        let text = r#"
rules:
  - id: root_login
    title: "root logged in on {{ $labels.host }}"
    description: A root login.
    guidance: Ask who it was.
    i18n:
      zh:
        title: "{{ $labels.host }} 上有 root 登录"
        guidance: 询问是谁登录的。
    severity: critical
    match: {kind: ssh_login_accepted, user: root}
"#;
        let rules = parse(Path::new("r.yaml"), text).unwrap();
        let rule = &rules[0];
        assert_eq!(
            rule.title_in("zh").source(),
            "{{ $labels.host }} 上有 root 登录"
        );
        assert_eq!(rule.title_in("en").source(), rule.title.source());
        assert_eq!(rule.guidance_in("zh"), "询问是谁登录的。");
        assert_eq!(rule.description_in("zh"), "A root login.");
        assert_eq!(rule.guidance_in("fr"), "Ask who it was.");
        let bad = problems(
            r#"rules:
  - id: a
    title: t
    severity: low
    i18n:
      Chinese: {title: "{{ oops"}
    match: {kind: ssh_login_failed}
"#,
        );
        assert!(bad.contains("\"Chinese\" is not a language code"), "{bad}");
        assert!(bad.contains("unclosed action"), "{bad}");
    }

    #[test]
    fn every_problem_is_reported_with_its_position() {
        let text = r#"rules:
  - id: a
    title: t
    severity: high
    match: {kind: ssh_login_failed, colour: red}
    group_by: [src_ip]
    threshold: {count: 0, window: 0s}
  - id: b
    title: t
    severity: low
    match: {user: {regex: '('}}
    distinct: {field: nope, count: 3, window: 3y}
"#;
        let report = problems(text);
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines.len(), 7, "{report}");
        assert!(
            lines[0].starts_with("r.yaml:5:45: unknown field \"colour\""),
            "{report}"
        );
        assert!(
            lines[1].starts_with("r.yaml:6:15: group_by src_ip can take very many values"),
            "{report}"
        );
        assert!(
            lines[2].starts_with("r.yaml:7:24: threshold count must be between 1 and"),
            "{report}"
        );
        assert!(
            lines[3].starts_with("r.yaml:7:35: window must be at least 1s"),
            "{report}"
        );
        assert!(
            lines[4].starts_with("r.yaml:11:27: invalid regex"),
            "{report}"
        );
        assert!(lines[5].contains("unknown field \"nope\""), "{report}");
        assert!(
            lines[6].contains("longer than the 30-day limit"),
            "{report}"
        );
        let huge = problems(
            "rules:\n  - {id: c, title: t, severity: low, match: {}, absence: {window: 3y}}\n",
        );
        assert!(huge.contains("longer than the 30-day limit"), "{huge}");
    }

    #[test]
    fn shape_errors_stop_at_the_first_with_a_position() {
        let report =
            problems("rules:\n  - id: a\n    title: t\n    severity: severe\n    match: {}\n");
        assert!(report.starts_with("r.yaml:4:"), "{report}");
        let report = problems("rules:\n  - id: a\n    titel: t\n");
        assert!(report.contains("titel"), "{report}");
    }

    #[test]
    fn a_response_is_read_and_its_mistakes_are_reported_at_their_positions() {
        let text = r#"rules:
  - id: a
    title: t
    severity: high
    match: {kind: ssh_login_failed}
    response: {action: block_source, duration: 1h, scope: host}
  - id: b
    title: t
    severity: high
    match: {kind: ssh_login_failed}
    response: {action: block_source, duration: 2h, scope: county, mode: enforce}
"#;
        let rules = parse(Path::new("r.yaml"), text).unwrap();
        let first = rules[0].response.as_ref().unwrap();
        assert_eq!(first.duration_ms, 3_600_000);
        assert_eq!(first.scope, crate::response::ResponseScope::Host);
        assert_eq!(first.mode, None);
        let second = rules[1].response.as_ref().unwrap();
        assert_eq!(second.scope, crate::response::ResponseScope::County);
        assert_eq!(second.mode, Some(countywatch_wire::ResponseMode::Enforce));
        let report = problems(
            r#"rules:
  - id: a
    title: t
    severity: high
    match: {kind: ssh_login_failed}
    response: {action: reboot, duration: 0s, scope: world, mode: maybe}
"#,
        );
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines.len(), 4, "{report}");
        assert!(
            lines[0].starts_with("r.yaml:6:24: response action \"reboot\""),
            "{report}"
        );
        assert!(
            lines[1].starts_with("r.yaml:6:42: response duration \"0s\" must be between"),
            "{report}"
        );
        assert!(
            lines[2].starts_with("r.yaml:6:53: response scope \"world\""),
            "{report}"
        );
        assert!(
            lines[3].starts_with("r.yaml:6:66: response mode \"maybe\""),
            "{report}"
        );
        let missing = problems(
            "rules:\n  - {id: a, title: t, severity: low, match: {}, response: {action: block_source}}\n",
        );
        assert!(missing.contains("duration"), "{missing}");
    }

    #[test]
    fn two_kinds_in_one_rule_are_refused() {
        let report = problems(
            "rules:\n  - id: a\n    title: t\n    severity: low\n    match: {}\n    threshold: {count: 2, window: 1m}\n    absence: {window: 1m}\n",
        );
        assert!(report.contains("at most one of"), "{report}");
    }
}
