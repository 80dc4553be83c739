//! Regexes written for Alertmanager (Go's RE2 syntax) compiled with Rust's
//! `regex` crate so that they match exactly what Go matches and are refused
//! where Go refuses them.
//!
//! The two syntaxes share most of their grammar; [`translate`] rewrites the
//! places where they part:
//! - `\d \w \s \b` and their negations are ASCII in Go and Unicode in Rust,
//!   so they become explicit ASCII classes (`web\d` must not match `web٣`);
//! - `\Q...\E` quotes literal text in Go and does not exist in Rust;
//! - octal escapes (`\012`) exist in Go only;
//! - a `{` that does not start a valid repetition is a literal in Go and an
//!   error in Rust; counts above 1000 are an error in Go only;
//! - inside a class, `[`, `&&`, `--` and `~~` are literals in Go and set
//!   operations in Rust;
//! - Go refuses what Rust accepts: `(?<name>...)`, the `x`, `u` and `R`
//!   flags, `\<`, `\>`, `\b{...}`, nested repetitions such as `a**`, and
//!   escapes of letters it does not know.
//!
//! Invariant: the output is only ever compiled, never shown to people; the
//! matcher keeps the source as written.

/// Largest repetition count Go accepts (`{1001}` is refused there).
const MAX_REPEAT: u32 = 1000;

/// Go's `\s`: space, tab, newline, form feed and carriage return (not `\v`).
const SPACE: &str = r"\t\n\x0C\r ";

/// Why Go would refuse a regex; the texts are Go's own messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoRegexError {
    /// A `\` as the last character.
    #[error("trailing backslash at end of expression")]
    TrailingBackslash,
    /// A repetition of a repetition (`a**`).
    #[error("invalid nested repetition operator in {pattern:?}")]
    NestedRepetition {
        /// The whole regex.
        pattern: String,
    },
    /// A repetition with nothing before it (`*a`).
    #[error("missing argument to repetition operator in {pattern:?}")]
    MissingArgument {
        /// The whole regex.
        pattern: String,
    },
    /// A `{n,m}` above 1000 or with `m` below `n`.
    #[error("invalid repeat count {count} in {pattern:?}")]
    RepeatCount {
        /// The repetition as written (`{1001}`).
        count: String,
        /// The whole regex.
        pattern: String,
    },
    /// `\1` to `\7`: a backreference, which RE2 does not have.
    #[error("invalid escape sequence \\{digit} (backreferences are not supported)")]
    Backreference {
        /// The digit.
        digit: char,
    },
    /// `\x{` or `\p{` without its `}`.
    #[error("invalid escape sequence \\{escape}{{ without }}")]
    UnclosedBrace {
        /// The escape's letter.
        escape: char,
    },
    /// An escape Go does not know, or one cut short by the end.
    #[error("invalid escape sequence \\{escape}")]
    InvalidEscape {
        /// The character after the backslash.
        escape: char,
    },
    /// A class without its `]`.
    #[error("missing closing ]")]
    MissingBracket,
    /// `(?)`.
    #[error("missing argument to repetition operator: (?)")]
    EmptyFlags,
    /// A group flag Go does not have (`(?x)`, `(?<name>`).
    #[error("invalid or unsupported Perl syntax: {text:?}")]
    PerlSyntax {
        /// The group's opening as written.
        text: String,
    },
}

/// Rewrites a Go regex into Rust syntax with the same meaning, or says why
/// Go would refuse it.
pub fn translate(go: &str) -> Result<String, GoRegexError> {
    let characters: Vec<char> = go.chars().collect();
    let mut out = String::with_capacity(go.len() + 16);
    let mut index = 0;
    // Whether the last thing written was a repetition operator (and its
    // optional lazy `?`), so that a second one can be refused as Go does.
    let mut after_repeat = false;
    // Whether there is something a repetition operator could apply to.
    let mut have_operand = false;
    while index < characters.len() {
        let character = characters[index];
        match character {
            '\\' => {
                let next = *characters
                    .get(index + 1)
                    .ok_or(GoRegexError::TrailingBackslash)?;
                if next == 'Q' {
                    let end = find_quote_end(&characters, index + 2);
                    for literal in &characters[index + 2..end] {
                        out.push_str(&regex::escape(&literal.to_string()));
                    }
                    index = (end + 2).min(characters.len());
                } else {
                    index = escape_outside_class(&characters, index, &mut out)?;
                }
                after_repeat = false;
                have_operand = true;
            }
            '[' => {
                index = class(&characters, index, &mut out)?;
                after_repeat = false;
                have_operand = true;
            }
            '*' | '+' | '?' => {
                if after_repeat {
                    return Err(GoRegexError::NestedRepetition {
                        pattern: go.to_string(),
                    });
                }
                if !have_operand {
                    return Err(GoRegexError::MissingArgument {
                        pattern: go.to_string(),
                    });
                }
                out.push(character);
                index += 1;
                if characters.get(index) == Some(&'?') {
                    out.push('?');
                    index += 1;
                }
                after_repeat = true;
            }
            '{' => match repeat_count(&characters, index) {
                Some((text, low, high, end)) => {
                    if after_repeat {
                        return Err(GoRegexError::NestedRepetition {
                            pattern: go.to_string(),
                        });
                    }
                    if !have_operand {
                        return Err(GoRegexError::MissingArgument {
                            pattern: go.to_string(),
                        });
                    }
                    if low > MAX_REPEAT || high.is_some_and(|high| high > MAX_REPEAT) {
                        return Err(GoRegexError::RepeatCount {
                            count: text,
                            pattern: go.to_string(),
                        });
                    }
                    if high.is_some_and(|high| high < low) {
                        return Err(GoRegexError::RepeatCount {
                            count: text,
                            pattern: go.to_string(),
                        });
                    }
                    out.push_str(&text);
                    index = end;
                    if characters.get(index) == Some(&'?') {
                        out.push('?');
                        index += 1;
                    }
                    after_repeat = true;
                }
                None => {
                    // Not a repetition: Go takes the brace literally.
                    out.push_str(r"\{");
                    index += 1;
                    after_repeat = false;
                    have_operand = true;
                }
            },
            '}' => {
                out.push_str(r"\}");
                index += 1;
                after_repeat = false;
                have_operand = true;
            }
            '(' => {
                index = group_open(&characters, index, &mut out)?;
                after_repeat = false;
                have_operand = false;
            }
            '|' | '^' => {
                out.push(character);
                index += 1;
                after_repeat = false;
                have_operand = character == '^';
            }
            other => {
                out.push(other);
                index += 1;
                after_repeat = false;
                have_operand = true;
            }
        }
    }
    Ok(out)
}

/// Where `\Q` quoting ends: the index of the `\` of `\E`, or the end.
fn find_quote_end(characters: &[char], from: usize) -> usize {
    let mut index = from;
    while index < characters.len() {
        if characters[index] == '\\' && characters.get(index + 1) == Some(&'E') {
            return index;
        }
        index += 1;
    }
    characters.len()
}

/// Writes the Rust form of the escape at `index` (outside a class) and
/// returns the index after it.
fn escape_outside_class(
    characters: &[char],
    index: usize,
    out: &mut String,
) -> Result<usize, GoRegexError> {
    let next = characters[index + 1];
    let class = match next {
        'd' => Some("[0-9]".to_string()),
        'D' => Some("[^0-9]".to_string()),
        'w' => Some("[0-9A-Za-z_]".to_string()),
        'W' => Some("[^0-9A-Za-z_]".to_string()),
        's' => Some(format!("[{SPACE}]")),
        'S' => Some(format!("[^{SPACE}]")),
        'b' => Some(r"(?-u:\b)".to_string()),
        'B' => Some(r"(?-u:\B)".to_string()),
        'A' | 'z' => Some(format!("\\{next}")),
        _ => None,
    };
    if let Some(class) = class {
        out.push_str(&class);
        return Ok(index + 2);
    }
    common_escape(characters, index, out)
}

/// Escapes valid both inside and outside a class: octal, hex, Unicode
/// classes, control characters and escaped punctuation.
fn common_escape(
    characters: &[char],
    index: usize,
    out: &mut String,
) -> Result<usize, GoRegexError> {
    let next = characters[index + 1];
    match next {
        '1'..='7'
            if !characters
                .get(index + 2)
                .is_some_and(|c| ('0'..='7').contains(c)) =>
        {
            Err(GoRegexError::Backreference { digit: next })
        }
        '0'..='7' => {
            let mut value = next.to_digit(8).unwrap_or(0);
            let mut end = index + 2;
            while end < index + 4 {
                match characters.get(end).and_then(|c| c.to_digit(8)) {
                    Some(digit) => value = value * 8 + digit,
                    None => break,
                }
                end += 1;
            }
            out.push_str(&format!("\\x{{{value:X}}}"));
            Ok(end)
        }
        'x' | 'p' | 'P' => {
            // The same syntax in both: `\x41`, `\x{263a}`, `\pL`, `\p{Greek}`.
            out.push('\\');
            out.push(next);
            let mut end = index + 2;
            match characters.get(end) {
                Some('{') => {
                    while end < characters.len() && characters[end] != '}' {
                        out.push(characters[end]);
                        end += 1;
                    }
                    if end == characters.len() {
                        return Err(GoRegexError::UnclosedBrace { escape: next });
                    }
                    out.push('}');
                    end += 1;
                }
                Some(&single) => {
                    out.push(single);
                    end += 1;
                    if next == 'x' {
                        let Some(&second) = characters.get(end) else {
                            return Err(GoRegexError::InvalidEscape { escape: 'x' });
                        };
                        out.push(second);
                        end += 1;
                    }
                }
                None => return Err(GoRegexError::InvalidEscape { escape: next }),
            }
            Ok(end)
        }
        'a' | 'f' | 't' | 'n' | 'r' | 'v' => {
            out.push('\\');
            out.push(next);
            Ok(index + 2)
        }
        punctuation if punctuation.is_ascii() && !punctuation.is_ascii_alphanumeric() => {
            // Go takes any escaped ASCII punctuation literally; `\<` and `\>`
            // are word boundaries in Rust, so write the literal instead.
            out.push_str(&regex::escape(&punctuation.to_string()));
            Ok(index + 2)
        }
        other => Err(GoRegexError::InvalidEscape { escape: other }),
    }
}

/// Writes a bracketed class starting at `index` and returns the index after
/// its closing `]`.
fn class(characters: &[char], index: usize, out: &mut String) -> Result<usize, GoRegexError> {
    let mut position = index + 1;
    out.push('[');
    if characters.get(position) == Some(&'^') {
        out.push('^');
        position += 1;
    }
    // A `]` right after the opening (or `^`) is a literal in both syntaxes.
    if characters.get(position) == Some(&']') {
        out.push_str(r"\]");
        position += 1;
    }
    while let Some(&character) = characters.get(position) {
        match character {
            ']' => {
                out.push(']');
                return Ok(position + 1);
            }
            '[' if characters.get(position + 1) == Some(&':') => {
                // A POSIX class such as `[:alpha:]`: the same in both.
                let rest: String = characters[position..].iter().collect();
                let Some(end) = rest.find(":]") else {
                    out.push_str(r"\[");
                    position += 1;
                    continue;
                };
                let length = rest[..end + 2].chars().count();
                out.push_str(&rest[..end + 2]);
                position += length;
            }
            '[' | '&' | '~' => {
                out.push('\\');
                out.push(character);
                position += 1;
            }
            '-' if characters.get(position + 1) == Some(&'-') => {
                // `--` is set difference in Rust; Go reads a range or literal.
                out.push_str(r"\-");
                position += 1;
            }
            '\\' => {
                let Some(&next) = characters.get(position + 1) else {
                    return Err(GoRegexError::MissingBracket);
                };
                let inside = match next {
                    'd' => Some("0-9".to_string()),
                    'D' => Some("[^0-9]".to_string()),
                    'w' => Some("0-9A-Za-z_".to_string()),
                    'W' => Some("[^0-9A-Za-z_]".to_string()),
                    's' => Some(SPACE.to_string()),
                    'S' => Some(format!("[^{SPACE}]")),
                    _ => None,
                };
                match inside {
                    Some(text) => {
                        out.push_str(&text);
                        position += 2;
                    }
                    None => position = common_escape(characters, position, out)?,
                }
            }
            other => {
                out.push(other);
                position += 1;
            }
        }
    }
    Err(GoRegexError::MissingBracket)
}

/// A repetition `{n}`, `{n,}` or `{n,m}` at `index`: its text, bounds and
/// the index after it; `None` when the brace is a literal in Go.
fn repeat_count(characters: &[char], index: usize) -> Option<(String, u32, Option<u32>, usize)> {
    let close = characters[index..].iter().position(|c| *c == '}')? + index;
    let inner: String = characters[index + 1..close].iter().collect();
    let digits = |text: &str| -> Option<u32> {
        if text.is_empty() || !text.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        // Go refuses counts it cannot hold as well as those above 1000.
        Some(text.parse::<u32>().unwrap_or(u32::MAX))
    };
    let (low, high) = match inner.split_once(',') {
        None => {
            let count = digits(&inner)?;
            (count, Some(count))
        }
        Some((low, "")) => (digits(low)?, None),
        Some((low, high)) => (digits(low)?, Some(digits(high)?)),
    };
    Some((format!("{{{inner}}}"), low, high, close + 1))
}

/// Writes a group opening at `index` after checking its flags as Go does,
/// and returns the index after it.
fn group_open(characters: &[char], index: usize, out: &mut String) -> Result<usize, GoRegexError> {
    if characters.get(index + 1) != Some(&'?') {
        out.push('(');
        return Ok(index + 1);
    }
    if characters.get(index + 2) == Some(&'P') && characters.get(index + 3) == Some(&'<') {
        out.push_str("(?P<");
        return Ok(index + 4);
    }
    let mut position = index + 2;
    let mut saw_flag = false;
    let mut negated = false;
    out.push_str("(?");
    while let Some(&character) = characters.get(position) {
        match character {
            'i' | 'm' | 's' | 'U' => {
                saw_flag = true;
                out.push(character);
            }
            '-' if !negated => {
                negated = true;
                saw_flag = false;
                out.push('-');
            }
            ')' | ':' if saw_flag || !negated => {
                if !saw_flag && !negated && character == ')' {
                    return Err(GoRegexError::EmptyFlags);
                }
                out.push(character);
                return Ok(position + 1);
            }
            _ => break,
        }
        position += 1;
    }
    let shown: String = characters[index..(position + 1).min(characters.len())]
        .iter()
        .collect();
    Err(GoRegexError::PerlSyntax { text: shown })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the Go regex, anchored as Alertmanager anchors it, matches.
    fn go_match(pattern: &str, value: &str) -> bool {
        let translated = translate(pattern).unwrap();
        regex::Regex::new(&format!("^(?:{translated})$"))
            .unwrap()
            .is_match(value)
    }

    fn refused(pattern: &str) -> bool {
        translate(pattern)
            .map_err(|e| e.to_string())
            .and_then(|translated| {
                regex::Regex::new(&format!("^(?:{translated})$")).map_err(|e| e.to_string())
            })
            .is_err()
    }

    #[test]
    fn perl_classes_are_ascii_as_in_go() {
        assert!(go_match(r"web\d+", "web01"));
        assert!(!go_match(r"web\d+", "web٣"));
        assert!(go_match(r"web\D", "web٣"));
        assert!(!go_match(r"\w+", "北京"));
        assert!(go_match(r"\W+", "北京"));
        assert!(go_match(r"[\d.]+", "10.0.0.1"));
        assert!(!go_match(r"[\d]", "٣"));
        assert!(go_match(r"[\D]", "٣"));
        assert!(go_match(r"a\sb", "a b"));
        assert!(!go_match(r"a\sb", "a\u{a0}b"));
        assert!(!go_match(r"a\sb", "a\u{b}b"));
        assert!(go_match(r".*\bx\b.*", "a x b"));
        assert!(go_match(r".*é\bx.*", "éx"));
    }

    #[test]
    fn quoting_octal_and_literal_braces() {
        // As in Go, a repetition after `\E` applies to the last quoted character.
        assert!(go_match(r"\Qa.b*\E+", "a.b**"));
        assert!(!go_match(r"\Qa.b\E", "axb"));
        assert!(go_match(r"x\Q(y", "x(y"));
        assert!(go_match(r"\101", "A"));
        assert!(go_match(r"\0", "\0"));
        assert!(go_match(r"a{", "a{"));
        assert!(go_match(r"a{x}", "a{x}"));
        assert!(go_match(r"a{2}", "aa"));
        assert!(go_match(r"a{,2}", "a{,2}"));
        assert!(go_match(r"[a[]+", "[a["));
        assert!(go_match(r"[a&&b]+", "&ab"));
        assert!(go_match(r"\<x\>", "<x>"));
        assert!(go_match(r"[[:digit:]]+", "42"));
        assert!(go_match(r"[]a]+", "]a"));
    }

    #[test]
    fn what_go_refuses_is_refused() {
        for pattern in [
            r"a{1001}",
            r"a{2,1}",
            r"a**",
            r"a{2}{3}",
            r"a*??",
            r"(?<name>x)",
            r"(?x)a b",
            r"\1",
            r"\8",
            r"\e",
            r"\é",
            r"\C",
            "*a",
            "a\\",
            "(",
            "[a",
            r"\Z",
        ] {
            assert!(refused(pattern), "{pattern} must be refused");
        }
        for pattern in [
            r"a*?",
            r"(?i)ab",
            r"(?i:a)b",
            r"(?-s:.)",
            r"(?P<n>x)",
            r"a{1000}",
            "^a$",
        ] {
            assert!(!refused(pattern), "{pattern} must be accepted");
        }
    }
}
