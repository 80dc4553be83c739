//! Label matchers in Alertmanager's syntax: `name="value"`, `name!="value"`,
//! `name=~"regex"`, `name!~"regex"`, alone or as a `{a="b", c=~"d"}` list.
//! Regexes are fully anchored (`^(?:re)$`), as in Alertmanager, and a
//! missing label matches as the empty string.

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::notify::alert::LabelSet;

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
    /// Builds a matcher, compiling the regex for regex kinds.
    pub fn new(name: &str, kind: MatchType, value: &str) -> Result<Matcher, String> {
        if !valid_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        let regex = match kind {
            MatchType::Regex | MatchType::NotRegex => Some(
                regex::RegexBuilder::new(&format!("^(?:{value})$"))
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|error| format!("invalid regex {value:?}: {error}"))?,
            ),
            MatchType::Equal | MatchType::NotEqual => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            kind,
            value: value.to_string(),
            regex,
        })
    }

    /// Parses one matcher such as `instance="web1"` or `job=~"node|db"`.
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let text = text.trim();
        let name_end = text
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or_else(|| format!("{text:?} has no operator; expected e.g. instance=\"web1\""))?;
        let name = &text[..name_end];
        let rest = text[name_end..].trim_start();
        let (kind, rest) = if let Some(rest) = rest.strip_prefix("=~") {
            (MatchType::Regex, rest)
        } else if let Some(rest) = rest.strip_prefix("!~") {
            (MatchType::NotRegex, rest)
        } else if let Some(rest) = rest.strip_prefix("!=") {
            (MatchType::NotEqual, rest)
        } else if let Some(rest) = rest.strip_prefix('=') {
            (MatchType::Equal, rest)
        } else {
            return Err(format!(
                "{text:?} has no operator (=, !=, =~, !~) after the label name"
            ));
        };
        let value = unquote(rest.trim()).ok_or_else(|| {
            format!("{text:?}: the value has an unterminated quote or a bad escape")
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

/// Parses a list: `{a="b", c!="d"}` or `a="b", c!="d"` (commas inside
/// quotes are part of the value).
pub fn parse_list(text: &str) -> Result<Vec<Matcher>, String> {
    let trimmed = text.trim();
    let inner = trimmed
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .unwrap_or(trimmed);
    let mut matchers = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut escaped = false;
    for character in inner.chars() {
        if escaped {
            escaped = false;
        } else if character == '\\' && in_quotes {
            escaped = true;
        } else if character == '"' {
            in_quotes = !in_quotes;
        } else if character == ',' && !in_quotes {
            if !current.trim().is_empty() {
                matchers.push(Matcher::parse(&current)?);
            }
            current.clear();
            continue;
        }
        current.push(character);
    }
    if !current.trim().is_empty() {
        matchers.push(Matcher::parse(&current)?);
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

fn unquote(text: &str) -> Option<String> {
    let Some(inner) = text.strip_prefix('"') else {
        // Unquoted values are allowed, as in Alertmanager's matchers.
        return Some(text.to_string());
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut characters = inner.chars();
    while let Some(character) = characters.next() {
        if character == '\\' {
            match characters.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                other => out.push(other),
            }
        } else if character == '"' {
            return None;
        } else {
            out.push(character);
        }
    }
    Some(out)
}

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
    use crate::notify::alert::labels;

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
}
