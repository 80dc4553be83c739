//! Positions for PromQL parse errors. The `promql-parser` crate reports a
//! syntax error as a bare "invalid promql query" and a lexer error without
//! its place, so this module finds where the expression goes wrong and
//! prints it as Prometheus does: `LINE:COLUMN: parse error: MESSAGE`, the
//! line and byte column counted inside the expression.
//!
//! How: a lexer error is placed at the first character whose prefix of the
//! text already fails with the same message (an unclosed parenthesis at the
//! parenthesis). A syntax error is placed at the first token after which
//! no completion from a small set of endings (a number, a name, a string,
//! a duration, closing brackets, a parenthesised operand) parses: that
//! token cannot start anything the grammar accepts there. Errors from the
//! grammar's checks (types, unknown functions) point at the word they name.
//! This runs only when parsing failed, so its cost (a few hundred parses
//! of prefixes) never touches evaluation.

use lrpar::{Lexeme, Lexer};
use promql_parser::parser;

/// The message `promql-parser` gives for every grammar (syntax) error.
const INVALID_QUERY: &str = "invalid promql query";

/// Longest expression located token by token; beyond it the error points
/// at the start rather than spending seconds on prefixes.
const MAX_LOCATED_BYTES: usize = 4096;

/// Ends tried after a prefix of tokens, before its brackets are closed.
const OPERAND_ENDINGS: &[&str] = &["", " 1", " x", " \"a\"", " 1m", "=\"a\"", " 1)", " (x) (x)"];
/// Ends tried after the brackets are closed (`sum by (job)` needs an
/// operand after its closed label list).
const TRAILING_ENDINGS: &[&str] = &["", " (x)", " 1"];

/// `message`, from parsing `text`, with the position of the error in
/// Prometheus's form: `1:6: parse error: unexpected "by"`.
pub fn describe(text: &str, message: &str) -> String {
    let (offset, message) = locate(text, message);
    format!("{}: parse error: {message}", position(text, offset))
}

/// The byte offset in `text` the error belongs to, and the message to print.
fn locate(text: &str, message: &str) -> (usize, String) {
    if text.len() > MAX_LOCATED_BYTES {
        return (0, message.to_string());
    }
    let Ok(lexer) = parser::lexer(text) else {
        return (lexer_error_offset(text, message), message.to_string());
    };
    if message != INVALID_QUERY {
        return (named_word_offset(text, message), message.to_string());
    }
    let tokens: Vec<(usize, usize)> = lexer
        .iter()
        .filter_map(Result::ok)
        .map(|lexeme| (lexeme.span().start(), lexeme.span().end()))
        .collect();
    let mut open = Vec::new();
    for &(start, end) in &tokens {
        let token = &text[start..end];
        match token {
            "(" | "{" | "[" => open.push(token),
            ")" | "}" | "]" => {
                open.pop();
            }
            _ => {}
        }
        if !viable(&text[..end], &open) {
            return (start, format!("unexpected {token:?}"));
        }
    }
    (text.len(), "unexpected end of input".to_string())
}

/// Whether `prefix` (with `open` brackets unclosed) can begin a valid
/// expression: some ending from the sets above makes it parse, or fail only
/// in the grammar's later checks, which run on syntactically valid input.
fn viable(prefix: &str, open: &[&str]) -> bool {
    let closers: String = open
        .iter()
        .rev()
        .map(|bracket| match *bracket {
            "(" => ")",
            "{" => "}",
            _ => "]",
        })
        .collect();
    OPERAND_ENDINGS.iter().any(|operand| {
        TRAILING_ENDINGS.iter().any(|trailing| {
            let candidate = format!("{prefix}{operand}{closers}{trailing}");
            parser::lexer(&candidate).is_ok()
                && !matches!(
                    super::parse_guard::parse(&candidate),
                    Err(super::parse_guard::PromqlParseError::Parser(message))
                        if message == INVALID_QUERY
                )
        })
    })
}

/// Where a lexer error starts: the end of the shortest prefix that already
/// fails with the same message ("unclosed left parenthesis" at the
/// parenthesis, "unexpected character" at the character).
fn lexer_error_offset(text: &str, message: &str) -> usize {
    if message == "unclosed left parenthesis" {
        return unclosed_parenthesis(text).unwrap_or(0);
    }
    text.char_indices()
        .map(|(offset, character)| (offset, offset + character.len_utf8()))
        .find(|(_, end)| matches!(parser::lexer(&text[..*end]), Err(found) if found == message))
        .map(|(offset, _)| offset)
        .unwrap_or(0)
}

/// The offset of the first `(` never closed, skipping quoted strings.
fn unclosed_parenthesis(text: &str) -> Option<usize> {
    let mut open = Vec::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (offset, character) in text.char_indices() {
        match quote {
            Some(symbol) => {
                if escaped {
                    escaped = false;
                } else if character == '\\' && symbol != '`' {
                    escaped = true;
                } else if character == symbol {
                    quote = None;
                }
            }
            None => match character {
                '"' | '\'' | '`' => quote = Some(character),
                '(' => open.push(offset),
                ')' => {
                    open.pop();
                }
                _ => {}
            },
        }
    }
    open.first().copied()
}

/// Where the first quoted word of `message` (`function "rate"`, `name
/// 'rat'`) stands in `text` as a whole word, or 0.
fn named_word_offset(text: &str, message: &str) -> usize {
    ['"', '\'']
        .into_iter()
        .flat_map(|quote| message.split(quote).skip(1).step_by(2))
        .filter(|word| !word.is_empty())
        .find_map(|word| {
            text.match_indices(word)
                .map(|(offset, _)| offset)
                .find(|&offset| {
                    let before = text[..offset].chars().next_back();
                    let after = text[offset + word.len()..].chars().next();
                    let is_word =
                        |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
                    !is_word(before) && !is_word(after)
                })
        })
        .unwrap_or(0)
}

/// `LINE:COLUMN` of byte `offset`, both from 1, as Prometheus's
/// `PositionRange.StartPosInput` counts them.
fn position(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|index| index + 1).unwrap_or(0);
    format!("{line}:{}", offset - line_start + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: &str) {
        let message = match parser::parse(text) {
            Ok(_) => panic!("{text:?} parsed"),
            Err(message) => message,
        };
        assert_eq!(describe(text, &message), expected, "{text:?}");
    }

    #[test]
    fn syntax_errors_point_at_the_offending_token() {
        check("foo bar", "1:5: parse error: unexpected \"bar\"");
        check("up == == 1", "1:7: parse error: unexpected \"==\"");
        check(
            "sum(rate(x[5m])) by",
            "1:20: parse error: unexpected end of input",
        );
        check("rate(x[5m]) +\n  * 2", "2:3: parse error: unexpected \"*\"");
        check("x{job=}", "1:7: parse error: unexpected \"}\"");
    }

    #[test]
    fn lexer_errors_point_at_the_character() {
        check("rate(up[5m]", "1:5: parse error: unclosed left parenthesis");
        check(
            "sum(up) + (1",
            "1:11: parse error: unclosed left parenthesis",
        );
        check("up $ 1", "1:4: parse error: unexpected character: '$'");
        check(
            "x{job=\"a}",
            "1:7: parse error: unterminated quoted string \"",
        );
    }

    #[test]
    fn grammar_check_errors_point_at_the_word_they_name() {
        check(
            "sum(up) + rat(x)",
            "1:11: parse error: unknown function with name 'rat'",
        );
        let text = "sum(up) + rate(x)";
        let message = parser::parse(text).err().unwrap();
        assert!(
            describe(text, &message).starts_with("1:11: parse error: expected type matrix"),
            "{}",
            describe(text, &message)
        );
    }
}
