//! The subset of Go templates Prometheus rule labels and annotations use:
//! `{{ $labels.x }}`, `{{ $value }}`, `{{ $externalLabels.x }}` (and their
//! `.Labels`/`.Value`/`.ExternalLabels` spellings), pipelines, and the
//! functions `humanize`, `humanizePercentage`, `humanizeDuration` and
//! `printf`. Anything else (`if`, `range`, `query`, other functions) is
//! refused when the rule file is loaded, with a message naming it.

use std::collections::BTreeMap;

use crate::labels::Labels;

/// A parsed template.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    /// The text as written, for messages and duplicate detection.
    source: String,
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    Pipeline(Vec<Command>),
}

/// One command of a pipeline: a function applied to arguments, or a lone
/// value when `function` is `None`.
#[derive(Clone, Debug, PartialEq)]
struct Command {
    function: Option<Function>,
    args: Vec<Operand>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Function {
    Humanize,
    HumanizePercentage,
    HumanizeDuration,
    Printf,
}

#[derive(Clone, Debug, PartialEq)]
enum Operand {
    Label(String),
    ExternalLabel(String),
    AllLabels,
    Value,
    String(String),
    Number(f64),
}

/// What a template is expanded with.
#[derive(Clone, Debug)]
pub struct Data<'a> {
    /// The alert's labels (the query result's, before rule labels).
    pub labels: &'a Labels,
    /// The configured external labels.
    pub external_labels: &'a BTreeMap<String, String>,
    /// The query result's value.
    pub value: f64,
}

/// Why a template cannot be used: the rule's author must change it.
// Display is written out rather than derived with thiserror so that the
// label and template code needs no dependency of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// `{{` without its `}}`.
    UnclosedAction(String),
    /// `{{ }}`.
    EmptyAction,
    /// `{{ x | }}` and the like.
    MissingCommand(String),
    /// A function or keyword outside the supported subset.
    UnsupportedFunction(String),
    /// A value followed by arguments.
    UnexpectedArguments(String),
    /// A quote without its closing quote.
    UnterminatedString(String),
    /// An operand outside the supported subset.
    UnsupportedOperand(String),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::UnclosedAction(text) => write!(f, "unclosed action in template {text:?}"),
            ParseError::EmptyAction => write!(f, "empty action {{{{ }}}} in template"),
            ParseError::MissingCommand(action) => {
                write!(f, "missing command in pipeline {action:?}")
            }
            ParseError::UnsupportedFunction(word) => write!(
                f,
                "unsupported template function or keyword {word:?} (supported: $labels, $value, $externalLabels, humanize, humanizePercentage, humanizeDuration, printf)"
            ),
            ParseError::UnexpectedArguments(action) => {
                write!(f, "unexpected arguments in template action {action:?}")
            }
            ParseError::UnterminatedString(action) => {
                write!(f, "unterminated string in template action {action:?}")
            }
            ParseError::UnsupportedOperand(token) => write!(
                f,
                "unsupported template operand {token:?} (supported: $labels.NAME, $value, $externalLabels.NAME, strings, numbers)"
            ),
        }
    }
}

impl std::error::Error for ParseError {}

/// Why a parsed template could not be expanded for one alert: a function
/// was given input it cannot use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenderError {
    /// A command with nothing to work on.
    EmptyCommand,
    /// `printf` without a format string first.
    PrintfFormat,
    /// A one-argument function given another number of arguments.
    Arity(String),
    /// A text that does not read as a number where one is needed.
    NotANumber(String),
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenderError::EmptyCommand => write!(f, "empty command in template"),
            RenderError::PrintfFormat => {
                write!(f, "printf needs a format string as its first argument")
            }
            RenderError::Arity(function) => write!(f, "{function} takes exactly one argument"),
            RenderError::NotANumber(text) => write!(f, "cannot convert {text:?} to a number"),
        }
    }
}

impl std::error::Error for RenderError {}

/// A value while a pipeline runs.
#[derive(Clone, Debug)]
enum Runtime {
    Number(f64),
    Text(String),
}

impl Template {
    /// Parses `text`, refusing unsupported constructs.
    pub fn parse(text: &str) -> Result<Template, ParseError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            let mut literal = rest[..open].to_string();
            let mut inner = &rest[open + 2..];
            if inner.starts_with('-') && inner[1..].starts_with(char::is_whitespace) {
                literal = literal.trim_end().to_string();
                inner = &inner[1..];
            }
            let Some(close) = inner.find("}}") else {
                return Err(ParseError::UnclosedAction(text.to_string()));
            };
            let mut action = &inner[..close];
            rest = &inner[close + 2..];
            if action.ends_with('-') && action[..action.len() - 1].ends_with(char::is_whitespace) {
                action = &action[..action.len() - 1];
                rest = rest.trim_start();
            }
            if !literal.is_empty() {
                parts.push(Part::Text(literal));
            }
            let action = action.trim();
            if action.starts_with("/*") {
                continue;
            }
            parts.push(Part::Pipeline(parse_pipeline(action)?));
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template {
            source: text.to_string(),
            parts,
        })
    }

    /// The template's text as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Expands the template; errors come from functions given bad input.
    pub fn render(&self, data: &Data<'_>) -> Result<String, RenderError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Pipeline(commands) => {
                    let mut piped: Option<Runtime> = None;
                    for command in commands {
                        piped = Some(run_command(command, piped, data)?);
                    }
                    match piped {
                        Some(Runtime::Number(value)) => out.push_str(&go_float_v(value)),
                        Some(Runtime::Text(text)) => out.push_str(&text),
                        None => {}
                    }
                }
            }
        }
        Ok(out)
    }
}

fn parse_pipeline(action: &str) -> Result<Vec<Command>, ParseError> {
    let tokens = tokenize(action)?;
    if tokens.is_empty() {
        return Err(ParseError::EmptyAction);
    }
    let mut commands = Vec::new();
    for segment in tokens.split(|token| token == "|") {
        let Some((first, args)) = segment.split_first() else {
            return Err(ParseError::MissingCommand(action.to_string()));
        };
        let function = match first.as_str() {
            "humanize" => Some(Function::Humanize),
            "humanizePercentage" => Some(Function::HumanizePercentage),
            "humanizeDuration" => Some(Function::HumanizeDuration),
            "printf" => Some(Function::Printf),
            word if word.starts_with(['$', '.', '"', '`']) || word.parse::<f64>().is_ok() => None,
            word => return Err(ParseError::UnsupportedFunction(word.to_string())),
        };
        let operands = if function.is_some() { args } else { segment };
        if function.is_none() && operands.len() != 1 {
            return Err(ParseError::UnexpectedArguments(action.to_string()));
        }
        let args = operands
            .iter()
            .map(|token| parse_operand(token))
            .collect::<Result<Vec<_>, _>>()?;
        commands.push(Command { function, args });
    }
    Ok(commands)
}

fn tokenize(action: &str) -> Result<Vec<String>, ParseError> {
    let mut tokens = Vec::new();
    let mut chars = action.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '|' {
            chars.next();
            tokens.push("|".to_string());
        } else if c == '"' || c == '`' {
            let quote = c;
            let mut token = String::from(c);
            chars.next();
            let mut closed = false;
            while let Some(next) = chars.next() {
                token.push(next);
                if next == '\\' && quote == '"' {
                    if let Some(escaped) = chars.next() {
                        token.push(escaped);
                    }
                } else if next == quote {
                    closed = true;
                    break;
                }
            }
            if !closed {
                return Err(ParseError::UnterminatedString(action.to_string()));
            }
            tokens.push(token);
        } else {
            let mut token = String::new();
            while let Some(&next) = chars.peek() {
                if next.is_whitespace() || next == '|' {
                    break;
                }
                token.push(next);
                chars.next();
            }
            tokens.push(token);
        }
    }
    Ok(tokens)
}

fn parse_operand(token: &str) -> Result<Operand, ParseError> {
    if let Some(name) = token
        .strip_prefix("$labels.")
        .or_else(|| token.strip_prefix(".Labels."))
    {
        return Ok(Operand::Label(name.to_string()));
    }
    if let Some(name) = token
        .strip_prefix("$externalLabels.")
        .or_else(|| token.strip_prefix(".ExternalLabels."))
    {
        return Ok(Operand::ExternalLabel(name.to_string()));
    }
    match token {
        "$value" | ".Value" => return Ok(Operand::Value),
        "$labels" | ".Labels" => return Ok(Operand::AllLabels),
        _ => {}
    }
    if let Some(inner) = token.strip_prefix('`').and_then(|t| t.strip_suffix('`')) {
        return Ok(Operand::String(inner.to_string()));
    }
    if let Some(inner) = token.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        return Ok(Operand::String(unescape(inner)));
    }
    if let Ok(number) = token.parse::<f64>() {
        return Ok(Operand::Number(number));
    }
    Err(ParseError::UnsupportedOperand(token.to_string()))
}

fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn run_command(
    command: &Command,
    piped: Option<Runtime>,
    data: &Data<'_>,
) -> Result<Runtime, RenderError> {
    let mut args: Vec<Runtime> = command.args.iter().map(|arg| resolve(arg, data)).collect();
    if let Some(piped) = piped {
        args.push(piped);
    }
    let Some(function) = command.function else {
        return args.pop().ok_or(RenderError::EmptyCommand);
    };
    if function == Function::Printf {
        let Some((Runtime::Text(format), rest)) = args.split_first() else {
            return Err(RenderError::PrintfFormat);
        };
        return Ok(Runtime::Text(printf(format, rest)));
    }
    let [arg] = args.as_slice() else {
        return Err(RenderError::Arity(format!("{function:?}")));
    };
    let value = match arg {
        Runtime::Number(value) => *value,
        Runtime::Text(text) => text
            .trim()
            .parse::<f64>()
            .map_err(|_| RenderError::NotANumber(text.clone()))?,
    };
    Ok(Runtime::Text(match function {
        Function::Humanize => humanize(value),
        Function::HumanizePercentage => format!("{}%", go_g(value * 100.0, 4)),
        Function::HumanizeDuration => humanize_duration(value),
        Function::Printf => String::new(),
    }))
}

fn resolve(operand: &Operand, data: &Data<'_>) -> Runtime {
    match operand {
        // A missing label expands to nothing, as in Prometheus (its
        // template data are maps of strings, whose zero value is "").
        Operand::Label(name) => Runtime::Text(data.labels.get(name).to_string()),
        Operand::ExternalLabel(name) => {
            Runtime::Text(data.external_labels.get(name).cloned().unwrap_or_default())
        }
        Operand::AllLabels => Runtime::Text(format!(
            "map[{}]",
            data.labels
                .iter()
                .map(|(name, value)| format!("{name}:{value}"))
                .collect::<Vec<_>>()
                .join(" ")
        )),
        Operand::Value => Runtime::Number(data.value),
        Operand::String(text) => Runtime::Text(text.clone()),
        Operand::Number(number) => Runtime::Number(*number),
    }
}

/// Prometheus's `humanize`: SI prefixes, four significant digits.
pub fn humanize(mut value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return go_g(value, 4);
    }
    let mut prefix = "";
    if value.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if value.abs() < 1000.0 {
                break;
            }
            prefix = p;
            value /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if value.abs() >= 1.0 {
                break;
            }
            prefix = p;
            value *= 1000.0;
        }
    }
    format!("{}{prefix}", go_g(value, 4))
}

/// Prometheus's `humanizeDuration`: `1d 2h 3m 4s`, or SI seconds below one.
pub fn humanize_duration(mut value: f64) -> String {
    if !value.is_finite() {
        return go_g(value, 4);
    }
    if value == 0.0 {
        return format!("{}s", go_g(value, 4));
    }
    if value.abs() >= 1.0 {
        let sign = if value < 0.0 { "-" } else { "" };
        value = value.abs();
        // Go's int64(v) on amd64 gives i64::MIN when v does not fit.
        let duration = if value < 9.2e18 {
            value as i64
        } else {
            i64::MIN
        };
        let (seconds, minutes) = (duration % 60, (duration / 60) % 60);
        let (hours, days) = ((duration / 3600) % 24, duration / 86_400);
        if days != 0 {
            return format!("{sign}{days}d {hours}h {minutes}m {seconds}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {minutes}m {seconds}s");
        }
        if minutes != 0 {
            return format!("{sign}{minutes}m {seconds}s");
        }
        return format!("{sign}{}s", go_g(value, 4));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if value.abs() >= 1.0 {
            break;
        }
        prefix = p;
        value *= 1000.0;
    }
    format!("{}{prefix}s", go_g(value, 4))
}

/// Go's `%.{precision}g`.
pub fn go_g(value: f64, precision: usize) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let precision = precision.max(1);
    let scientific = format!("{:.*e}", precision - 1, value);
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if exponent < -4 || exponent >= precision as i32 {
        format!("{}{}", trim_zeros(mantissa), go_exponent(exponent))
    } else {
        let decimals = (precision as i32 - 1 - exponent).max(0) as usize;
        trim_zeros(&format!("{value:.decimals$}"))
    }
}

/// Go's `%v` for a float64: shortest digits, exponent form below 1e-4 or
/// from 1e6 (strconv's `'g'` with precision -1).
pub fn go_float_v(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..6).contains(&exponent) {
        format!("{mantissa}{}", go_exponent(exponent))
    } else {
        format!("{value}")
    }
}

fn go_exponent(exponent: i32) -> String {
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("e{sign}{:02}", exponent.abs())
}

fn trim_zeros(text: &str) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text.to_string()
    }
}

/// The largest precision `printf` honours.
const MAX_PRECISION: usize = 100;

/// A small `fmt.Sprintf`: `%s %v %d %f %e %g` with optional precision, `%%`.
fn printf(format: &str, args: &[Runtime]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut digits = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
            // Capped: `%.999999999f` must not allocate a gigabyte.
            precision = Some(digits.parse::<usize>().unwrap_or(0).min(MAX_PRECISION));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let number = match arg {
            Runtime::Number(value) => Some(*value),
            Runtime::Text(_) => None,
        };
        match (verb, arg, number) {
            ('s' | 'v', Runtime::Text(text), _) => out.push_str(text),
            ('v', _, Some(value)) => out.push_str(&go_float_v(value)),
            ('f', _, Some(value)) => out.push_str(&format!("{value:.*}", precision.unwrap_or(6))),
            ('e', _, Some(value)) => {
                let text = format!("{value:.*e}", precision.unwrap_or(6));
                let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
                out.push_str(&format!(
                    "{mantissa}{}",
                    go_exponent(exponent.parse().unwrap_or(0))
                ));
            }
            ('g', _, Some(value)) => match precision {
                Some(precision) => out.push_str(&go_g(value, precision)),
                None => out.push_str(&go_float_v(value)),
            },
            ('d', _, Some(value)) => out.push_str(&format!("%!d(float64={})", go_float_v(value))),
            (verb, Runtime::Text(text), _) => out.push_str(&format!("%!{verb}(string={text})")),
            (verb, _, _) => out.push_str(&format!("%!{verb}(BADVERB)")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(text: &str, value: f64) -> Result<String, String> {
        let labels = Labels::from_pairs([("instance", "web1"), ("job", "node")]);
        let external = BTreeMap::from([("site".to_string(), "county".to_string())]);
        Template::parse(text)
            .map_err(|error| error.to_string())?
            .render(&Data {
                labels: &labels,
                external_labels: &external,
                value,
            })
            .map_err(|error| error.to_string())
    }

    #[test]
    fn errors_read_as_the_author_needs_them() {
        assert_eq!(
            Template::parse("{{ }}").unwrap_err().to_string(),
            "empty action {{ }} in template"
        );
        assert_eq!(
            Template::parse("{{ $value ").unwrap_err(),
            ParseError::UnclosedAction("{{ $value ".to_string())
        );
        assert_eq!(
            render("{{ \"abc\" | humanize }}", 0.0).unwrap_err(),
            "cannot convert \"abc\" to a number"
        );
        assert_eq!(
            render("{{ humanize 1 2 }}", 0.0).unwrap_err(),
            "Humanize takes exactly one argument"
        );
    }

    #[test]
    fn expands_the_documented_subset() {
        for (text, value, expected) in [
            ("{{ $labels.instance }} is down", 1.0, "web1 is down"),
            ("{{$value}}", 1e6, "1e+06"),
            ("{{ $value }}", 0.25, "0.25"),
            ("{{ $value | humanize }}", 1234567.0, "1.235M"),
            ("{{ humanize $value }}", 0.000123, "123u"),
            ("{{ $value | humanizePercentage }}", 0.1234, "12.34%"),
            ("{{ $value | humanizeDuration }}", 90061.0, "1d 1h 1m 1s"),
            ("{{ humanizeDuration 0.5 }}", 0.0, "500ms"),
            ("{{ printf \"%.2f\" $value }}", 12.3456, "12.35"),
            ("{{ $externalLabels.site }}", 0.0, "county"),
            ("{{ $labels.missing }}|{{ .Labels.instance }}", 0.0, "|web1"),
            ("a {{- \" b\" -}} c", 0.0, "a bc"),
            (
                "{{ printf \"%.99999999999f\" 1 }}",
                0.0,
                &format!("1.{}", "0".repeat(100)),
            ),
        ] {
            assert_eq!(render(text, value).as_deref(), Ok(expected), "{text}");
        }
    }

    #[test]
    fn refuses_the_rest_clearly() {
        let error = render("{{ if $value }}x{{ end }}", 0.0).unwrap_err();
        assert!(
            error.contains("unsupported template function or keyword \"if\""),
            "{error}"
        );
        assert!(render("{{ query \"up\" }}", 0.0).is_err());
        assert!(
            render("{{ $labels.x ", 0.0)
                .unwrap_err()
                .contains("unclosed")
        );
    }
}
