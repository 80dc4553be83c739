//! OpenMetrics 1.0.0 for `/metrics`, when the scraper's `Accept` header
//! asks for it (Prometheus does by default), rewritten from the text format
//! 0.0.4 that the rest of the collector writes.
//!
//! The two formats differ in a few places only, and this module owns
//! them: a counter family is named without its `_total` suffix in `# HELP`
//! and `# TYPE` (a counter whose samples lack the suffix is exposed as
//! `unknown`, which OpenMetrics allows with any name), `untyped` is called
//! `unknown`, a `"` in help text is escaped, timestamps are in seconds
//! rather than milliseconds, and the exposition ends with `# EOF`.

/// The content type of an OpenMetrics response.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether an `Accept` header value asks for OpenMetrics. A scraper that
/// lists it at all prefers it (Prometheus ranks it first by default).
pub fn is_requested(accept: &str) -> bool {
    accept.split(',').any(|item| {
        item.trim_start()
            .starts_with("application/openmetrics-text")
    })
}

/// Rewrites Prometheus text format 0.0.4 as OpenMetrics 1.0.0.
pub fn from_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let lines: Vec<&str> = text.lines().collect();
    let mut index = 0;
    while index < lines.len() {
        // A family: its comment lines, then its samples.
        let mut help: Option<(&str, &str)> = None;
        let mut kind: Option<(&str, &str)> = None;
        while index < lines.len() && lines[index].starts_with('#') {
            let line = lines[index];
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
                help = Some((name, text));
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind_word) = rest.split_once(' ').unwrap_or((rest, "untyped"));
                kind = Some((name, kind_word.trim()));
            }
            index += 1;
        }
        let first_sample = index;
        while index < lines.len() && !lines[index].starts_with('#') {
            index += 1;
        }
        let samples = &lines[first_sample..index];
        let name = kind.map(|(name, _)| name).or(help.map(|(name, _)| name));
        if let Some(name) = name {
            let declared = kind.map(|(_, word)| word).unwrap_or("untyped");
            let (family_name, family_kind) = match declared {
                "counter" => match name.strip_suffix("_total") {
                    Some(base) if samples.iter().all(|line| sample_name(line) == name) => {
                        (base, "counter")
                    }
                    _ => (name, "unknown"),
                },
                "gauge" | "histogram" | "summary" => (name, declared),
                _ => (name, "unknown"),
            };
            if let Some((_, text)) = help {
                out.push_str("# HELP ");
                out.push_str(family_name);
                out.push(' ');
                escape_help_quotes(&mut out, text);
                out.push('\n');
            }
            out.push_str("# TYPE ");
            out.push_str(family_name);
            out.push(' ');
            out.push_str(family_kind);
            out.push('\n');
        }
        for line in samples {
            if line.trim().is_empty() {
                continue;
            }
            write_sample(&mut out, line);
        }
    }
    out.push_str("# EOF\n");
    out
}

/// The metric name a sample line starts with.
fn sample_name(line: &str) -> &str {
    let end = line.find(['{', ' ']).unwrap_or(line.len());
    &line[..end]
}

/// Copies a sample line, turning a millisecond timestamp into seconds.
fn write_sample(out: &mut String, line: &str) {
    let after_labels = labels_end(line);
    let (series, rest) = line.split_at(after_labels);
    let mut fields = rest.split_whitespace();
    let value = fields.next().unwrap_or("NaN");
    out.push_str(series);
    out.push(' ');
    out.push_str(value);
    if let Some(milliseconds) = fields.next().and_then(|field| field.parse::<i64>().ok()) {
        let seconds = milliseconds.div_euclid(1000);
        let fraction = milliseconds.rem_euclid(1000);
        out.push_str(&format!(" {seconds}.{fraction:03}"));
    }
    out.push('\n');
}

/// Where the series (name and labels) of a sample line ends: after the
/// closing `}` outside any quoted label value, else at the first space.
fn labels_end(line: &str) -> usize {
    let Some(open) = line.find(['{', ' ']) else {
        return line.len();
    };
    if line.as_bytes()[open] == b' ' {
        return open;
    }
    let mut in_quotes = false;
    let mut escaped = false;
    for (offset, byte) in line.bytes().enumerate().skip(open) {
        match byte {
            _ if escaped => escaped = false,
            b'\\' if in_quotes => escaped = true,
            b'"' => in_quotes = !in_quotes,
            b'}' if !in_quotes => return offset + 1,
            _ => {}
        }
    }
    line.len()
}

/// Help text as OpenMetrics wants it: the 0.0.4 escapes (`\\`, `\n`) stay,
/// and a bare `"` is escaped too.
fn escape_help_quotes(out: &mut String, text: &str) {
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_lose_total_in_metadata_and_timestamps_become_seconds() {
        let text = "# HELP node_cpu_seconds_total Seconds the \"CPUs\" spent.\n\
                    # TYPE node_cpu_seconds_total counter\n\
                    node_cpu_seconds_total{instance=\"a b}\",cpu=\"0\"} 12.5 1700000000123\n\
                    # HELP node_load1 Load.\n\
                    # TYPE node_load1 gauge\n\
                    node_load1{instance=\"a\"} 0.5 1700000000005\n\
                    # HELP odd A counter without the suffix.\n\
                    # TYPE odd counter\n\
                    odd 3\n\
                    # HELP ALERTS Alerts.\n\
                    # TYPE ALERTS gauge\n";
        assert_eq!(
            from_text(text),
            "# HELP node_cpu_seconds Seconds the \\\"CPUs\\\" spent.\n\
             # TYPE node_cpu_seconds counter\n\
             node_cpu_seconds_total{instance=\"a b}\",cpu=\"0\"} 12.5 1700000000.123\n\
             # HELP node_load1 Load.\n\
             # TYPE node_load1 gauge\n\
             node_load1{instance=\"a\"} 0.5 1700000000.005\n\
             # HELP odd A counter without the suffix.\n\
             # TYPE odd unknown\n\
             odd 3\n\
             # HELP ALERTS Alerts.\n\
             # TYPE ALERTS gauge\n\
             # EOF\n"
        );
    }

    #[test]
    fn prometheus_default_accept_header_asks_for_openmetrics() {
        assert!(is_requested(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ));
        assert!(!is_requested("text/plain;version=0.0.4"));
        assert!(!is_requested("*/*"));
    }
}
