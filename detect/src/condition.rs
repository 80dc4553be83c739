//! `match:` conditions: tests on event fields combined with `all`, `any` and
//! `not`, named `lists` and `macros`, and time-of-day tests against the
//! calendar. Conditions are compiled once when a rule file is loaded (every
//! regex and glob included); evaluating one never allocates.
//!
//! A condition is a mapping; its entries must all hold:
//!
//! ```yaml
//! kind: [ssh_login_failed, ssh_invalid_user]   # a list means "in"
//! src_ip: {in: [10.0.0.0/8, 192.0.2.7]}       # CIDR blocks and addresses
//! user: {regex: '^(root|admin)$'}
//! not: {src_ip: {in_list: bastions}}
//! any: [{macro: ssh_failure}, {local_port: {lt: 1024}}]
//! working_hours: false
//! ```

use std::collections::{HashMap, HashSet};

use countywatch_config::config_file::{Problems, Spanned};
use countywatch_wire::{Cidr, Event, EventKind};
use regex::{Regex, RegexBuilder};

use crate::calendar::{Calendar, in_span, parse_clock};
use crate::field::{Field, FieldType, Value};
use crate::node::Node;

/// Largest compiled regex, in bytes: large enough for any sane pattern,
/// small enough that a hostile `a{1000}{1000}` is refused at load time.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// A set of event kinds, one bit per [`EventKind`].
pub type KindSet = u128;

/// Every kind.
pub const ALL_KINDS: KindSet = KindSet::MAX;

/// A compiled condition.
#[derive(Clone, Debug)]
pub enum Condition {
    /// Always holds (an empty mapping).
    True,
    /// Every part holds.
    All(Vec<Condition>),
    /// At least one part holds.
    Any(Vec<Condition>),
    /// The part does not hold.
    Not(Box<Condition>),
    /// The event's kind is in the set.
    Kinds(KindSet),
    /// A test on one field; an unset field fails every test but `exists: false`.
    Field(Field, Test),
    /// Whether the event's time is inside working hours.
    WorkingHours(bool),
    /// The event's local time is in `[from, to)` minutes after midnight.
    TimeOfDay {
        /// Start, minutes after local midnight.
        from: u32,
        /// End (exclusive), minutes after local midnight; may be before `from`.
        to: u32,
    },
}

/// A test on a field's value.
#[derive(Clone, Debug)]
pub enum Test {
    /// The field is set (or not).
    Exists(bool),
    /// Text equality.
    TextEq(String),
    /// Text in a set.
    TextIn(HashSet<String>),
    /// Text contains.
    Contains(String),
    /// Text starts with.
    StartsWith(String),
    /// Text ends with.
    EndsWith(String),
    /// A glob or a regex, compiled.
    Pattern(Regex),
    /// Number in a set (equality is a set of one).
    NumberIn(Vec<i64>),
    /// Number comparison.
    Compare(Comparison, i64),
    /// Address in a set of blocks (an address is a /32 or /128 block).
    IpIn(Vec<Cidr>),
    /// Flag equality.
    BoolEq(bool),
}

/// A numeric comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    /// `gt`
    Greater,
    /// `ge`
    GreaterOrEqual,
    /// `lt`
    Less,
    /// `le`
    LessOrEqual,
}

/// What conditions may refer to: the file's lists and the macros defined so
/// far (a macro may use the macros above it, so there are no cycles).
#[derive(Debug, Default)]
pub struct Scope {
    /// Named lists, as written.
    pub lists: HashMap<String, Vec<Spanned<Node>>>,
    /// Compiled macros.
    pub macros: HashMap<String, Condition>,
}

impl Condition {
    /// Whether `event` satisfies the condition.
    pub fn matches(&self, event: &Event, calendar: &Calendar) -> bool {
        match self {
            Condition::True => true,
            Condition::All(parts) => parts.iter().all(|part| part.matches(event, calendar)),
            Condition::Any(parts) => parts.iter().any(|part| part.matches(event, calendar)),
            Condition::Not(part) => !part.matches(event, calendar),
            Condition::Kinds(kinds) => kinds & kind_bit(event.kind) != 0,
            Condition::Field(field, test) => test.holds(field.get(event)),
            Condition::WorkingHours(wanted) => {
                calendar.is_working_time(event.timestamp_ms) == *wanted
            }
            Condition::TimeOfDay { from, to } => {
                in_span(calendar.local_minute(event.timestamp_ms), *from, *to)
            }
        }
    }

    /// The kinds of event this condition can possibly match: the engine
    /// only offers a rule the events of these kinds.
    pub fn kinds(&self) -> KindSet {
        match self {
            Condition::Kinds(kinds) => *kinds,
            Condition::All(parts) => parts.iter().fold(ALL_KINDS, |set, part| set & part.kinds()),
            Condition::Any(parts) => parts.iter().fold(0, |set, part| set | part.kinds()),
            _ => ALL_KINDS,
        }
    }
}

/// The bit of one kind in a [`KindSet`].
pub fn kind_bit(kind: EventKind) -> KindSet {
    1u128 << (kind as u32 % 128)
}

impl Test {
    fn holds(&self, value: Option<Value<'_>>) -> bool {
        let Some(value) = value else {
            return matches!(self, Test::Exists(false));
        };
        match value {
            Value::TextList(names) => match self {
                Test::Exists(wanted) => *wanted,
                _ => names.iter().any(|name| self.holds_text(name)),
            },
            Value::Text(text) => self.holds_text(text),
            Value::Number(number) => match self {
                Test::Exists(wanted) => *wanted,
                Test::NumberIn(set) => set.contains(&number),
                Test::Compare(comparison, bound) => match comparison {
                    Comparison::Greater => number > *bound,
                    Comparison::GreaterOrEqual => number >= *bound,
                    Comparison::Less => number < *bound,
                    Comparison::LessOrEqual => number <= *bound,
                },
                _ => false,
            },
            Value::Ip(address) => match self {
                Test::Exists(wanted) => *wanted,
                Test::IpIn(blocks) => blocks.iter().any(|block| block.contains(address)),
                _ => false,
            },
            Value::Bool(flag) => match self {
                Test::Exists(wanted) => *wanted,
                Test::BoolEq(wanted) => flag == *wanted,
                _ => false,
            },
        }
    }

    fn holds_text(&self, text: &str) -> bool {
        match self {
            Test::Exists(wanted) => *wanted,
            Test::TextEq(wanted) => text == wanted,
            Test::TextIn(set) => set.contains(text),
            Test::Contains(part) => text.contains(part.as_str()),
            Test::StartsWith(part) => text.starts_with(part.as_str()),
            Test::EndsWith(part) => text.ends_with(part.as_str()),
            Test::Pattern(regex) => regex.is_match(text),
            _ => false,
        }
    }
}

/// Compiles a glob (`*` any run, `?` one character) to an anchored regex.
pub fn glob_to_regex(glob: &str) -> String {
    let mut pattern = String::from("^");
    for c in glob.chars() {
        match c {
            '*' => pattern.push_str(".*"),
            '?' => pattern.push('.'),
            other => pattern.push_str(&regex::escape(&other.to_string())),
        }
    }
    pattern.push('$');
    pattern
}

/// Why a condition's regex (or glob) cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegexError {
    /// It compiles to more than the size limit.
    #[error("regex {pattern:?} is too large once compiled (limit {limit} bytes)")]
    TooLarge {
        /// The regex as compiled (a glob already translated).
        pattern: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// It does not parse; the message is the regex crate's reason, without
    /// its drawing of the pattern.
    #[error("invalid regex {pattern:?}: {}", first_line(&source.to_string()))]
    Invalid {
        /// The regex as compiled.
        pattern: String,
        /// The regex crate's error.
        source: regex::Error,
    },
}

/// Compiles a regex with the size limit.
pub fn compile_regex(pattern: &str) -> Result<Regex, RegexError> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|error| match error {
            regex::Error::CompiledTooBig(limit) => RegexError::TooLarge {
                pattern: pattern.to_string(),
                limit,
            },
            source => RegexError::Invalid {
                pattern: pattern.to_string(),
                source,
            },
        })
}

fn first_line(text: &str) -> String {
    // The regex crate's messages draw the pattern over several lines; the
    // last non-empty line is the reason.
    text.lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or(text)
        .trim()
        .to_string()
}

/// Compiles a condition mapping, recording every problem; returns `None`
/// when there was one.
pub fn compile(problems: &mut Problems, scope: &Scope, node: &Spanned<Node>) -> Option<Condition> {
    let before = problems.problems.len();
    let condition = compile_node(problems, scope, node);
    (problems.problems.len() == before).then_some(condition)
}

fn compile_node(problems: &mut Problems, scope: &Scope, node: &Spanned<Node>) -> Condition {
    let Node::Map(entries) = &node.value else {
        problems.at(
            node,
            format!(
                "a condition must be a mapping, not {}",
                node.value.describe()
            ),
        );
        return Condition::True;
    };
    let mut parts = Vec::new();
    for (key, value) in entries {
        parts.push(compile_entry(problems, scope, key, value));
    }
    match parts.len() {
        0 => Condition::True,
        1 => parts.pop().unwrap_or(Condition::True),
        _ => Condition::All(parts),
    }
}

fn compile_list(
    problems: &mut Problems,
    scope: &Scope,
    key: &str,
    value: &Spanned<Node>,
) -> Vec<Condition> {
    match &value.value {
        Node::Seq(items) if !items.is_empty() => items
            .iter()
            .map(|item| compile_node(problems, scope, item))
            .collect(),
        _ => {
            problems.at(value, format!("{key} takes a non-empty list of conditions"));
            Vec::new()
        }
    }
}

fn compile_entry(
    problems: &mut Problems,
    scope: &Scope,
    key: &str,
    value: &Spanned<Node>,
) -> Condition {
    match key {
        "all" => Condition::All(compile_list(problems, scope, key, value)),
        "any" => Condition::Any(compile_list(problems, scope, key, value)),
        "not" => Condition::Not(Box::new(compile_node(problems, scope, value))),
        "macro" => {
            let names: Vec<&Spanned<Node>> = match &value.value {
                Node::Seq(items) => items.iter().collect(),
                _ => vec![value],
            };
            let mut parts = Vec::new();
            for name in names {
                let Node::Str(text) = &name.value else {
                    problems.at(name, "macro takes a macro name or a list of them");
                    continue;
                };
                match scope.macros.get(text) {
                    Some(condition) => parts.push(condition.clone()),
                    None => problems.at(
                        name,
                        format!("unknown macro {text:?} (a macro must be defined in the file's macros, above its first use)"),
                    ),
                }
            }
            Condition::All(parts)
        }
        "working_hours" => match value.value {
            Node::Bool(wanted) => Condition::WorkingHours(wanted),
            _ => {
                problems.at(value, "working_hours takes true or false");
                Condition::True
            }
        },
        "time_of_day" => compile_time_of_day(problems, value),
        name => match Field::from_name(name) {
            Some(Field::Kind) => compile_kinds(problems, scope, value),
            Some(field) => compile_field(problems, scope, field, value),
            None => {
                problems.at(
                    value,
                    format!("unknown field {name:?} (fields: {}; operators: all, any, not, macro, working_hours, time_of_day)", Field::names()),
                );
                Condition::True
            }
        },
    }
}

fn compile_time_of_day(problems: &mut Problems, value: &Spanned<Node>) -> Condition {
    let mut from = None;
    let mut to = None;
    if let Node::Map(entries) = &value.value {
        for (key, bound) in entries {
            let minute = match &bound.value {
                Node::Str(text) => parse_clock(text),
                _ => None,
            };
            let Some(minute) = minute else {
                problems.at(
                    bound,
                    format!("time_of_day {key} must be a local time \"HH:MM\""),
                );
                continue;
            };
            match key.as_str() {
                "from" => from = Some(minute),
                "to" => to = Some(minute),
                other => problems.at(
                    bound,
                    format!("unknown time_of_day key {other:?} (expected from, to)"),
                ),
            }
        }
    }
    match (from, to) {
        (Some(from), Some(to)) => Condition::TimeOfDay { from, to },
        _ => {
            problems.at(value, "time_of_day takes {from: \"HH:MM\", to: \"HH:MM\"}");
            Condition::True
        }
    }
}

/// `kind:` tests become a set of kinds, computed by applying the test to
/// every kind name, so that the engine can index rules by kind; a name that
/// is not a kind is refused.
fn compile_kinds(problems: &mut Problems, scope: &Scope, value: &Spanned<Node>) -> Condition {
    let mut check_names = |items: &[Spanned<Node>]| {
        for item in items {
            if let Some(name) = item.value.scalar_text()
                && !EventKind::ALL.iter().any(|kind| kind.as_str() == name)
            {
                problems.at(
                    item,
                    format!(
                        "unknown event kind {name:?} (kinds: {})",
                        EventKind::ALL
                            .iter()
                            .map(|kind| kind.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
    };
    match &value.value {
        Node::Str(_) => check_names(std::slice::from_ref(value)),
        Node::Seq(items) => check_names(items),
        Node::Map(entries) => {
            for (key, operand) in entries {
                if key == "in" || key == "eq" {
                    match &operand.value {
                        Node::Seq(items) => check_names(items),
                        _ => check_names(std::slice::from_ref(operand)),
                    }
                }
            }
        }
        _ => {}
    }
    let test = compile_field(problems, scope, Field::Kind, value);
    let mut kinds = 0;
    for kind in EventKind::ALL {
        if let Condition::Field(_, test) = &test
            && test.holds(Some(Value::Text(kind.as_str())))
        {
            kinds |= kind_bit(*kind);
        }
    }
    Condition::Kinds(kinds)
}

fn compile_field(
    problems: &mut Problems,
    scope: &Scope,
    field: Field,
    value: &Spanned<Node>,
) -> Condition {
    let mut tests = Vec::new();
    match &value.value {
        Node::Map(entries) => {
            for (operator, operand) in entries {
                if let Some(test) = compile_operator(problems, scope, field, operator, operand) {
                    tests.push(test);
                }
            }
            if entries.is_empty() {
                problems.at(value, format!("no test given for field {}", field.name()));
            }
        }
        Node::Seq(items) => {
            if let Some(test) = compile_in(problems, field, items, value) {
                tests.push(test);
            }
        }
        _ => {
            if let Some(test) = compile_eq(problems, field, value) {
                tests.push(test);
            }
        }
    }
    let mut conditions: Vec<Condition> = tests
        .into_iter()
        .map(|test| Condition::Field(field, test))
        .collect();
    match conditions.len() {
        1 => conditions.pop().unwrap_or(Condition::True),
        _ => Condition::All(conditions),
    }
}

fn compile_operator(
    problems: &mut Problems,
    scope: &Scope,
    field: Field,
    operator: &str,
    operand: &Spanned<Node>,
) -> Option<Test> {
    let field_type = field.field_type();
    let textual = matches!(field_type, FieldType::Text | FieldType::TextList);
    let wrong_type = |problems: &mut Problems| {
        problems.at(
            operand,
            format!(
                "{operator} does not apply to {} ({})",
                field.name(),
                field_type.as_str()
            ),
        );
        None
    };
    match operator {
        "eq" => compile_eq(problems, field, operand),
        "in" => match &operand.value {
            Node::Seq(items) => compile_in(problems, field, items, operand),
            _ => {
                problems.at(operand, "in takes a list");
                None
            }
        },
        "in_list" => {
            let Node::Str(name) = &operand.value else {
                problems.at(operand, "in_list takes the name of a list");
                return None;
            };
            match scope.lists.get(name) {
                Some(items) => compile_in(problems, field, items, operand),
                None => {
                    problems.at(operand, format!("unknown list {name:?}"));
                    None
                }
            }
        }
        "exists" => match operand.value {
            Node::Bool(wanted) => Some(Test::Exists(wanted)),
            _ => {
                problems.at(operand, "exists takes true or false");
                None
            }
        },
        "gt" | "ge" | "lt" | "le" => {
            if field_type != FieldType::Number {
                return wrong_type(problems);
            }
            let Node::Int(bound) = operand.value else {
                problems.at(operand, format!("{operator} takes an integer"));
                return None;
            };
            let comparison = match operator {
                "gt" => Comparison::Greater,
                "ge" => Comparison::GreaterOrEqual,
                "lt" => Comparison::Less,
                _ => Comparison::LessOrEqual,
            };
            Some(Test::Compare(comparison, bound))
        }
        "glob" | "regex" | "contains" | "starts_with" | "ends_with" => {
            if !textual {
                return wrong_type(problems);
            }
            let Node::Str(text) = &operand.value else {
                problems.at(operand, format!("{operator} takes a string"));
                return None;
            };
            match operator {
                "contains" => Some(Test::Contains(text.clone())),
                "starts_with" => Some(Test::StartsWith(text.clone())),
                "ends_with" => Some(Test::EndsWith(text.clone())),
                _ => {
                    let pattern = if operator == "glob" {
                        glob_to_regex(text)
                    } else {
                        text.clone()
                    };
                    match compile_regex(&pattern) {
                        Ok(regex) => Some(Test::Pattern(regex)),
                        Err(error) => {
                            problems.at(operand, error.to_string());
                            None
                        }
                    }
                }
            }
        }
        other => {
            problems.at(
                operand,
                format!("unknown test {other:?} on field {} (tests: eq, in, in_list, exists, gt, ge, lt, le, glob, regex, contains, starts_with, ends_with)", field.name()),
            );
            None
        }
    }
}

fn compile_eq(problems: &mut Problems, field: Field, value: &Spanned<Node>) -> Option<Test> {
    compile_in(problems, field, std::slice::from_ref(value), value)
}

/// Equality with any of `items`, typed by the field.
fn compile_in(
    problems: &mut Problems,
    field: Field,
    items: &[Spanned<Node>],
    at: &Spanned<Node>,
) -> Option<Test> {
    if items.is_empty() {
        problems.at(at, "an empty list matches nothing");
        return None;
    }
    let before = problems.problems.len();
    let test = match field.field_type() {
        FieldType::Text | FieldType::TextList => {
            let mut set = HashSet::new();
            for item in items {
                match item.value.scalar_text() {
                    Some(text) => {
                        set.insert(text);
                    }
                    None => problems.at(
                        item,
                        format!(
                            "expected a value for {}, not {}",
                            field.name(),
                            item.value.describe()
                        ),
                    ),
                }
            }
            if set.len() == 1 {
                set.into_iter().next().map(Test::TextEq)
            } else {
                Some(Test::TextIn(set))
            }
        }
        FieldType::Number => {
            let mut numbers = Vec::new();
            for item in items {
                match item.value {
                    Node::Int(number) => numbers.push(number),
                    _ => problems.at(
                        item,
                        format!(
                            "{} is a number; expected an integer, not {}",
                            field.name(),
                            item.value.describe()
                        ),
                    ),
                }
            }
            Some(Test::NumberIn(numbers))
        }
        FieldType::Ip => {
            let mut blocks = Vec::new();
            for item in items {
                match item.value.scalar_text().as_deref().and_then(|text| Cidr::parse(text).ok()) {
                    Some(block) => blocks.push(block),
                    None => problems.at(item, format!("{} is an IP address; expected an address or a CIDR block like 10.0.0.0/8", field.name())),
                }
            }
            Some(Test::IpIn(blocks))
        }
        FieldType::Bool => match (items, &items[0].value) {
            ([_], Node::Bool(flag)) => Some(Test::BoolEq(*flag)),
            _ => {
                problems.at(at, format!("{} takes true or false", field.name()));
                None
            }
        },
    };
    (problems.problems.len() == before)
        .then_some(test)
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use countywatch_config::config_file;
    use countywatch_wire::EventSource;
    use std::path::Path;

    fn condition(yaml: &str) -> Result<Condition, String> {
        let node: Spanned<Node> =
            config_file::parse(Path::new("t.yaml"), yaml).map_err(|p| p.to_string())?;
        let mut scope = Scope::default();
        let list: Spanned<Node> =
            config_file::parse(Path::new("t.yaml"), "[10.1.2.3, 192.168.0.0/16]").unwrap();
        if let Node::Seq(items) = list.value {
            scope.lists.insert("bastions".into(), items);
        }
        let mut problems = Problems::new("t.yaml");
        let compiled = compile(&mut problems, &scope, &node);
        problems.into_result().map_err(|p| p.to_string())?;
        Ok(compiled.unwrap())
    }

    fn failed(ip: &str, user: &str) -> Event {
        let mut event = Event::new(0, EventSource::Auth, EventKind::SshLoginFailed);
        event.fields.src_ip = ip.parse().ok();
        event.fields.user = Some(user.into());
        event.fields.src_port = Some(40_000);
        event
    }

    fn check(yaml: &str, event: &Event) -> bool {
        condition(yaml)
            .unwrap()
            .matches(event, &Calendar::default())
    }

    #[test]
    fn equality_lists_and_kinds() {
        let event = failed("203.0.113.9", "root");
        assert!(check("{kind: ssh_login_failed, user: root}", &event));
        assert!(!check("{kind: ssh_login_accepted}", &event));
        assert!(check(
            "{kind: [ssh_login_accepted, ssh_login_failed]}",
            &event
        ));
        assert!(check("{user: {in: [admin, root]}}", &event));
        assert!(!check("{user: [admin, oracle]}", &event));
        assert!(check("{kind: {glob: 'ssh_*'}}", &event));
    }

    #[test]
    fn numbers_addresses_and_patterns() {
        let event = failed("10.1.2.3", "oracle");
        assert!(check("{src_port: {gt: 1024, le: 40000}}", &event));
        assert!(!check("{src_port: {lt: 1024}}", &event));
        assert!(check("{src_ip: {in: [10.0.0.0/8]}}", &event));
        assert!(check("{src_ip: 10.1.2.3}", &event));
        assert!(!check("{src_ip: 10.1.2.4}", &event));
        assert!(check("{src_ip: {in_list: bastions}}", &event));
        assert!(check("{user: {glob: 'ora*'}}", &event));
        assert!(check("{user: {regex: '^o.+e$'}}", &event));
        assert!(!check("{user: {regex: '^root$'}}", &event));
        assert!(check(
            "{user: {starts_with: or, ends_with: cle, contains: acl}}",
            &event
        ));
    }

    #[test]
    fn combinators_and_missing_fields() {
        let event = failed("203.0.113.9", "root");
        assert!(check("{not: {src_ip: {in_list: bastions}}}", &event));
        assert!(check("{any: [{user: admin}, {user: root}]}", &event));
        assert!(!check("{all: [{user: admin}, {user: root}]}", &event));
        // An unset field fails its tests, and `not` of that holds.
        assert!(!check("{command: {glob: '*'}}", &event));
        assert!(check("{not: {command: {glob: '*'}}}", &event));
        assert!(check("{command: {exists: false}}", &event));
        assert!(check("{users_changed: {exists: false}}", &event));
    }

    #[test]
    fn kind_sets_narrow_through_all_and_widen_through_any() {
        let all = condition("{all: [{kind: [su, su_failed]}, {kind: su}]}").unwrap();
        assert_eq!(all.kinds(), kind_bit(EventKind::Su));
        let any = condition("{any: [{kind: su}, {kind: su_failed}]}").unwrap();
        assert_eq!(
            any.kinds(),
            kind_bit(EventKind::Su) | kind_bit(EventKind::SuFailed)
        );
        assert_eq!(condition("{user: root}").unwrap().kinds(), ALL_KINDS);
    }

    #[test]
    fn bad_conditions_are_reported_with_positions() {
        let error = condition("user: root\ncolour: red\n").unwrap_err();
        assert!(
            error.starts_with("t.yaml:2:9: unknown field \"colour\""),
            "{error}"
        );
        let error = condition("kind: ssh_logn_failed\n").unwrap_err();
        assert!(
            error.starts_with("t.yaml:1:7: unknown event kind \"ssh_logn_failed\""),
            "{error}"
        );
        let error = condition("user: {regex: '(unclosed'}\n").unwrap_err();
        assert!(error.starts_with("t.yaml:1:15: invalid regex"), "{error}");
        let error = condition("user: {regex: '\\w{1000}{1000}'}\n").unwrap_err();
        assert!(error.contains("too large once compiled"), "{error}");
        let error = condition("src_ip: not-an-address\n").unwrap_err();
        assert!(error.contains("CIDR"), "{error}");
        let error = condition("user: {gt: 3}\nsrc_port: {glob: '2*'}\n").unwrap_err();
        assert_eq!(error.lines().count(), 2, "{error}");
        let error = condition("macro: nope\n").unwrap_err();
        assert!(error.contains("unknown macro"), "{error}");
    }
}
