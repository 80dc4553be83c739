//! Label matchers in Alertmanager's syntax: `name="value"`, `name!="value"`,
//! `name=~"regex"`, `name!~"regex"`, alone or as a `{a="b", c=~"d"}` list,
//! parsed exactly as Alertmanager 0.25 parses them (see [`Matcher::parse`]
//! and [`parse_list`]), plus the legacy `match:`/`match_re:` maps.
//! Regexes are Go's RE2 syntax with Go's meaning (see
//! [`crate::go_regex`]), fully anchored (`^(?:re)$`), and a missing
//! label matches as the empty string.

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::alert::LabelSet;

/// How a matcher compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchType {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

/// Why a matcher (or a list of them) was refused; the texts are
/// Alertmanager's, and users read them in config-check output and in the
/// API's and silence form's 400 answers.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MatcherError {
    /// A name that is not a label name (`:` allowed).
    #[error("invalid label name {name:?}")]
    LabelName {
        /// The name as written.
        name: String,
    },
    /// Text that is not `name op value`.
    #[error("bad matcher format: {text}")]
    BadFormat {
        /// The matcher as written.
        text: String,
    },
    /// A value with a `"` that is neither escaped nor its closing quote.
    #[error("matcher value contains unescaped double quote: {value}")]
    UnescapedQuote {
        /// The value as written.
        value: String,
    },
    /// A regex Go would refuse, or one too large to compile.
    #[error("invalid regex {regex:?}: {problem}")]
    Regex {
        /// The regex as written.
        regex: String,
        /// Why.
        #[source]
        problem: RegexProblem,
    },
}

/// Why a matcher's regex cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegexProblem {
    /// Go's syntax refuses it.
    #[error(transparent)]
    Go(#[from] crate::go_regex::GoRegexError),
    /// The translated regex does not compile (its size, mostly).
    #[error(transparent)]
    Compile(#[from] regex::Error),
}

/// One label matcher.
#[derive(Clone, Debug)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The comparison.
    pub kind: MatchType,
    /// The value or the regex source, as written.
    pub value: String,
    /// The anchored regex for `=~` and `!~`.
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.kind == other.kind && self.value == other.value
    }
}

impl Matcher {
    /// Builds a matcher, compiling the regex (Go's RE2 syntax, anchored as
    /// Alertmanager anchors it) for regex kinds.
    pub fn new(name: &str, kind: MatchType, value: &str) -> Result<Matcher, MatcherError> {
        if !valid_matcher_name(name) {
            return Err(MatcherError::LabelName {
                name: name.to_string(),
            });
        }
        let regex = match kind {
            MatchType::Regex | MatchType::NotRegex => Some(compile_go_regex(value)?),
            MatchType::Equal | MatchType::NotEqual => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            kind,
            value: value.to_string(),
            regex,
        })
    }

    /// Parses one matcher such as `instance="web1"`, `job=~"node|db"` or
    /// `severity=critical`, exactly as Alertmanager 0.25's `ParseMatcher`:
    /// whitespace around the three parts is dropped, the value may be
    /// quoted, `\"`, `\\` and `\n` are escapes and any other backslash is
    /// kept as written (so `"node-\d{2}"` stays a regex for two digits).
    pub fn parse(text: &str) -> Result<Matcher, MatcherError> {
        let bad_format = || MatcherError::BadFormat {
            text: text.to_string(),
        };
        let rest = text.trim_start_matches(is_go_space);
        let name_end = rest
            .char_indices()
            .find(|(index, c)| {
                !(c.is_ascii_alphabetic()
                    || *c == '_'
                    || *c == ':'
                    || (*index > 0 && c.is_ascii_digit()))
            })
            .map_or(rest.len(), |(index, _)| index);
        if name_end == 0 {
            return Err(bad_format());
        }
        let name = &rest[..name_end];
        let rest = rest[name_end..].trim_start_matches(is_go_space);
        // `=~` comes before `=`, as in Alertmanager's expression.
        let (kind, rest) = if let Some(rest) = rest.strip_prefix("=~") {
            (MatchType::Regex, rest)
        } else if let Some(rest) = rest.strip_prefix('=') {
            (MatchType::Equal, rest)
        } else if let Some(rest) = rest.strip_prefix("!=") {
            (MatchType::NotEqual, rest)
        } else if let Some(rest) = rest.strip_prefix("!~") {
            (MatchType::NotRegex, rest)
        } else {
            return Err(bad_format());
        };
        let raw = rest
            .trim_start_matches(is_go_space)
            .trim_end_matches(is_go_space);
        let value = unescape(raw).ok_or_else(|| MatcherError::UnescapedQuote {
            value: raw.to_string(),
        })?;
        Matcher::new(name, kind, &value)
    }

    /// Whether the label set satisfies this matcher.
    pub fn matches(&self, labels: &LabelSet) -> bool {
        let value = labels.get(&self.name).map_or("", String::as_str);
        self.matches_value(value)
    }

    /// Whether a label value satisfies this matcher.
    pub fn matches_value(&self, value: &str) -> bool {
        match (&self.kind, &self.regex) {
            (MatchType::Equal, _) => value == self.value,
            (MatchType::NotEqual, _) => value != self.value,
            (MatchType::Regex, Some(regex)) => regex.is_match(value),
            (MatchType::NotRegex, Some(regex)) => !regex.is_match(value),
            // A regex kind always has its regex; refuse to match otherwise.
            (MatchType::Regex | MatchType::NotRegex, None) => false,
        }
    }

    /// Alertmanager's order of matchers: by name, then value, then kind
    /// (`=`, `!=`, `=~`, `!~`); routes show and compare matchers sorted.
    pub fn sort_key(&self) -> (&str, &str, u8) {
        let kind = match self.kind {
            MatchType::Equal => 0,
            MatchType::NotEqual => 1,
            MatchType::Regex => 2,
            MatchType::NotRegex => 3,
        };
        (&self.name, &self.value, kind)
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let operator = match self.kind {
            MatchType::Equal => "=",
            MatchType::NotEqual => "!=",
            MatchType::Regex => "=~",
            MatchType::NotRegex => "!~",
        };
        write!(f, "{}{operator}{}", self.name, quote(&self.value))
    }
}

/// Writes matchers as Alertmanager does: `{a="b",c=~"d"}`.
pub fn list_to_string(matchers: &[Matcher]) -> String {
    let written: Vec<String> = matchers.iter().map(Matcher::to_string).collect();
    format!("{{{}}}", written.join(","))
}

/// Parses a list exactly as Alertmanager 0.25's `ParseMatchers`: one
/// leading `{` and one trailing `}` are dropped, commas outside double
/// quotes separate matchers, and a trailing comma is allowed:
/// `{a="b", c!="d"}`, `a=b,c!=d`.
pub fn parse_list(text: &str) -> Result<Vec<Matcher>, MatcherError> {
    let inner = text.strip_prefix('{').unwrap_or(text);
    let inner = inner.strip_suffix('}').unwrap_or(inner);
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut escaped = false;
    for character in inner.chars() {
        match character {
            ',' if !in_quotes => {
                tokens.push(std::mem::take(&mut current));
                continue;
            }
            ',' => {}
            '"' => {
                if escaped {
                    escaped = false;
                } else {
                    in_quotes = !in_quotes;
                }
            }
            '\\' => escaped = !escaped,
            _ => escaped = false,
        }
        current.push(character);
    }
    let last = current.trim();
    if !last.is_empty() {
        tokens.push(last.to_string());
    }
    tokens.iter().map(|token| Matcher::parse(token)).collect()
}

/// Parses a YAML list of matcher strings, each of which may hold several
/// matchers (`['{a="x", b="y"}', 'c=~"z"']`), as Alertmanager's
/// `matchers:`, `source_matchers:` and `target_matchers:` are read.
pub fn deserialize_lists<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Matcher>, D::Error> {
    let lines = Vec::<String>::deserialize(deserializer)?;
    let mut matchers = Vec::new();
    for line in &lines {
        matchers.extend(parse_list(line).map_err(serde::de::Error::custom)?);
    }
    Ok(matchers)
}

/// Reads Alertmanager's legacy `match:` map (label name to exact value).
pub fn deserialize_legacy_equal<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Matcher>, D::Error> {
    legacy(deserializer, MatchType::Equal)
}

/// Reads Alertmanager's legacy `match_re:` map (label name to regex). The
/// value is kept anchored, `^(?:re)$`, as Alertmanager keeps and shows it.
pub fn deserialize_legacy_regex<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Matcher>, D::Error> {
    legacy(deserializer, MatchType::Regex)
}

fn legacy<'de, D: Deserializer<'de>>(
    deserializer: D,
    kind: MatchType,
) -> Result<Vec<Matcher>, D::Error> {
    let map = std::collections::BTreeMap::<String, String>::deserialize(deserializer)?;
    let mut matchers = Vec::with_capacity(map.len());
    for (name, value) in map {
        if !valid_label_name(&name) {
            return Err(serde::de::Error::custom(format!(
                "invalid label name {name:?}"
            )));
        }
        let value = match kind {
            MatchType::Regex => format!("^(?:{value})$"),
            _ => value,
        };
        matchers.push(Matcher::new(&name, kind, &value).map_err(serde::de::Error::custom)?);
    }
    Ok(matchers)
}

/// Whether every matcher matches (an empty list matches everything).
pub fn all_match(matchers: &[Matcher], labels: &LabelSet) -> bool {
    matchers.iter().all(|matcher| matcher.matches(labels))
}

/// Prometheus label names: a letter or `_`, then letters, digits or `_`.
pub fn valid_label_name(name: &str) -> bool {
    let mut characters = name.chars();
    characters
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The names Alertmanager's matcher parser accepts: label names plus `:`.
fn valid_matcher_name(name: &str) -> bool {
    let mut characters = name.chars();
    characters
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == ':')
        && characters.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Compiles a Go regex anchored as Alertmanager anchors it.
fn compile_go_regex(value: &str) -> Result<Regex, MatcherError> {
    let invalid = |problem: RegexProblem| MatcherError::Regex {
        regex: value.to_string(),
        problem,
    };
    let translated =
        crate::go_regex::translate(value).map_err(|error| invalid(RegexProblem::Go(error)))?;
    regex::RegexBuilder::new(&format!("^(?:{translated})$"))
        .size_limit(1 << 22)
        .build()
        .map_err(|error| invalid(RegexProblem::Compile(error)))
}

/// Go's `\s` in Alertmanager's matcher expression.
fn is_go_space(character: char) -> bool {
    matches!(character, ' ' | '\t' | '\n' | '\x0C' | '\r')
}

/// Alertmanager's unescaping of a matcher value: an optional pair of
/// surrounding quotes, `\n`, `\"` and `\\` as escapes, any other backslash
/// literal, and no unescaped quote inside. `None` for a stray quote.
fn unescape(raw: &str) -> Option<String> {
    let (raw, mut expect_trailing_quote) = match raw.strip_prefix('"') {
        Some(inner) => (inner, true),
        None => (raw, false),
    };
    let mut out = String::with_capacity(raw.len());
    let mut escaped = false;
    for (index, character) in raw.char_indices() {
        if escaped {
            escaped = false;
            match character {
                'n' => out.push('\n'),
                '"' | '\\' => out.push(character),
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
            continue;
        }
        let last = index + character.len_utf8() == raw.len();
        match character {
            '\\' if !last => escaped = true,
            '"' => {
                if !expect_trailing_quote || !last {
                    return None;
                }
                expect_trailing_quote = false;
            }
            other => out.push(other),
        }
    }
    if expect_trailing_quote {
        return None;
    }
    Some(out)
}

/// Alertmanager's `openMetricsEscape` inside double quotes.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for character in value.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            other => out.push(other),
        }
    }
    out.push('"');
    out
}

impl Serialize for Matcher {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Matcher::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::labels;

    fn check(matcher: &str, set: &[(&str, &str)], expected: bool) {
        let parsed = Matcher::parse(matcher).unwrap();
        assert_eq!(
            parsed.matches(&labels(set.iter().copied())),
            expected,
            "{matcher} on {set:?}"
        );
    }

    #[test]
    fn operators() {
        check(r#"instance="web1""#, &[("instance", "web1")], true);
        check(r#"instance="web1""#, &[("instance", "web10")], false);
        check(r#"instance!="web1""#, &[("instance", "web2")], true);
        check(r#"instance=~"web.""#, &[("instance", "web1")], true);
        // Fully anchored: a prefix match is not a match.
        check(r#"instance=~"web.""#, &[("instance", "web10")], false);
        check(r#"instance=~"web|db""#, &[("instance", "db")], true);
        check(r#"instance!~"web.*""#, &[("instance", "db1")], true);
        // A missing label is the empty string.
        check(r#"team="""#, &[], true);
        check(r#"team!="""#, &[], false);
        check(r#"team=~".*""#, &[], true);
        check("severity=critical", &[("severity", "critical")], true);
        check(r#"city="北京""#, &[("city", "北京")], true);
    }

    #[test]
    fn refusals() {
        for text in [
            "instance",
            "=\"x\"",
            "1a=\"x\"",
            r#"a=~"(""#,
            r#"a="x"#,
            r#"a="x"y""#,
        ] {
            assert!(Matcher::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn lists_and_round_trip() {
        let list = parse_list(r#"{alertname="HostDown", instance=~"a,b|c"}"#).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].value, "a,b|c");
        let written = list[1].to_string();
        assert_eq!(Matcher::parse(&written).unwrap(), list[1]);
        assert_eq!(
            Matcher::parse(r#"msg="say \"hi\"""#).unwrap().value,
            "say \"hi\""
        );
        assert!(parse_list("").unwrap().is_empty());
    }

    fn parsed(text: &str) -> Vec<String> {
        parse_list(text)
            .unwrap()
            .iter()
            .map(|matcher| format!("{}|{:?}|{}", matcher.name, matcher.kind, matcher.value))
            .collect()
    }

    #[test]
    fn alertmanagers_parser_keeps_unknown_escapes() {
        // The issue's mis-routing: `\d` and `\.` must reach the regex.
        assert_eq!(
            parsed(r#"instance=~"node-\d{2}\.example\.com:9100""#),
            [r"instance|Regex|node-\d{2}\.example\.com:9100"]
        );
        check(
            r#"instance=~"node-\d{2}\.example\.com:9100""#,
            &[("instance", "node-01.example.com:9100")],
            true,
        );
        check(
            r#"instance=~"node-\d{2}\.example\.com:9100""#,
            &[("instance", "node-dd.example.com:9100")],
            false,
        );
        check(r#"instance=~"web\d+""#, &[("instance", "web٣")], false);
        assert_eq!(parsed(r#"a="x\ny\"z\\""#), ["a|Equal|x\ny\"z\\"]);
        assert_eq!(parsed(r#"a="x\ty""#), [r"a|Equal|x\ty"]);
        // A backslash as the last character is literal.
        assert_eq!(parsed(r"a=x\"), [r"a|Equal|x\"]);
        assert_eq!(parsed(r#"a=~"\Qa.b\E""#), [r"a|Regex|\Qa.b\E"]);
    }

    #[test]
    fn alertmanagers_parser_lists_and_unquoted_values() {
        assert_eq!(
            parsed(r#"{foo = "bar", dings != "bums", }"#),
            ["foo|Equal|bar", "dings|NotEqual|bums"]
        );
        assert_eq!(
            parsed("foo=bar,dings!=bums"),
            ["foo|Equal|bar", "dings|NotEqual|bums"]
        );
        assert_eq!(
            parsed(r#"{quote="She said: \"Hi, ladies! That's gender-neutral…\""}"#),
            [r#"quote|Equal|She said: "Hi, ladies! That's gender-neutral…""#]
        );
        assert_eq!(parsed("statuscode=~5.."), ["statuscode|Regex|5.."]);
        assert_eq!(parsed("  a  =~  b c  "), ["a|Regex|b c"]);
        assert_eq!(parsed("a="), ["a|Equal|"]);
        assert_eq!(parsed("job:rate=x"), ["job:rate|Equal|x"]);
        assert_eq!(parsed(r#"a=~"x,y""#), ["a|Regex|x,y"]);
        // An equals sign inside an unquoted value is part of the value.
        assert_eq!(parsed("a=b=c"), ["a|Equal|b=c"]);
        assert_eq!(parsed("a=~=b"), ["a|Regex|=b"]);
    }

    #[test]
    fn alertmanagers_parser_refusals() {
        for text in [
            r#"x=y"z"#,
            r#"a="x"#,
            r#"a=x""#,
            r#"a="x"y""#,
            "a=b,,c=d",
            " {a=b}",
            "a",
            "1a=b",
            r#"a=~"web\d{1001}""#,
            r#"a=~"(?<n>x)""#,
        ] {
            assert!(parse_list(text).is_err(), "{text} must be refused");
        }
    }

    #[test]
    fn display_sorts_and_escapes_as_alertmanager() {
        let mut list = parse_list(r#"b="2",a!="x",a="x",a=~"x""#).unwrap();
        list.sort_by(|left, right| left.sort_key().cmp(&right.sort_key()));
        assert_eq!(list_to_string(&list), r#"{a="x",a!="x",a=~"x",b="2"}"#);
        let matcher = Matcher::parse(r#"a=~"x\\d""#).unwrap();
        assert_eq!(matcher.to_string(), r#"a=~"x\\d""#);
    }
}
