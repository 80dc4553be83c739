//! The one door to `promql-parser`'s `parse`. That crate panics on some
//! input instead of refusing it (a bare-number duration beyond
//! `Duration`'s range, `up[1e40]`, reaches `Duration::from_secs_f64`;
//! found by the `promql_eval` fuzz target), and a rule file must never take
//! the collector or `rules check` down. So every parse goes through here:
//! bare-number durations are checked first (a clear error that names the
//! number, and no panic message on standard error), and any other panic
//! becomes a parse error too.

use std::panic::{AssertUnwindSafe, catch_unwind};

use lrpar::{Lexeme, Lexer};
use promql_parser::parser::{self, Expr};

/// The message for input the parser panicked on. Every known case is a
/// duration out of range, so that is what it says.
pub const PANIC_MESSAGE: &str = "invalid duration: out of range";

/// Largest bare-number duration in seconds: `Duration` holds `u64`
/// seconds, and a range of 30 billion years is a mistake anyway.
const MAX_SECONDS: f64 = 1e18;

/// Why an expression did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromqlParseError {
    /// The parser refused the text; `promql-parser` gives its reason only
    /// as text (`unexpected end of input`), which is kept as it is.
    #[error("{0}")]
    Parser(String),
    /// A number written as a duration that `Duration` cannot hold.
    #[error("invalid duration \"{token}\": out of range")]
    DurationOutOfRange {
        /// The number as written.
        token: String,
    },
    /// The parser panicked on the text.
    #[error("{}", PANIC_MESSAGE)]
    Panicked,
}

/// `promql_parser::parser::parse`, with a panic turned into an error.
pub fn parse(text: &str) -> Result<Expr, PromqlParseError> {
    check_bare_durations(text)?;
    // The parser is a pure function of `text`: a panic half-way leaves no
    // shared state behind, so unwinding out of it is safe.
    match catch_unwind(AssertUnwindSafe(|| parser::parse(text))) {
        Ok(parsed) => parsed.map_err(PromqlParseError::Parser),
        Err(_) => Err(PromqlParseError::Panicked),
    }
}

/// Refuses a number written as a duration inside `[...]` (`up[300]`,
/// `x[5m:1e40]`) that is not a finite count of seconds `Duration` can hold.
/// Input the lexer refuses is left to the parser, which reports it.
fn check_bare_durations(text: &str) -> Result<(), PromqlParseError> {
    let Ok(lexer) = parser::lexer(text) else {
        return Ok(());
    };
    let mut brackets = 0_usize;
    for lexeme in lexer.iter().filter_map(Result::ok) {
        let token = &text[lexeme.span().start()..lexeme.span().end()];
        match token {
            "[" => brackets += 1,
            "]" => brackets = brackets.saturating_sub(1),
            _ if brackets > 0 && token.starts_with(|c: char| c.is_ascii_digit() || c == '.') => {
                if let Ok(seconds) = token.parse::<f64>()
                    && !(seconds.is_finite() && seconds <= MAX_SECONDS)
                {
                    return Err(PromqlParseError::DurationOutOfRange {
                        token: token.to_string(),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_the_parser_panics_on_are_errors() {
        // The fuzz target's crash, then the other values that reach
        // Duration::from_secs_f64 unchecked (`Inf` and `NaN` are refused
        // by the lexer inside brackets).
        for text in [
            "avg_over_time(up[1044444444444444444444444444444444444444444444444444444444])",
            "rate(up[1e400])",
            "up[5m:1e40]",
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.starts_with("invalid duration \""), "{text}: {error}");
            assert!(error.ends_with("\": out of range"), "{text}: {error}");
        }
        assert!(parse("rate(up[300])").is_ok());
        assert!(parse("rate(up[5m:30])").is_ok());
    }
}
