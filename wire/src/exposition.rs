//! The Prometheus text exposition format (version 0.0.4), written from
//! metric families.
//!
//! Both daemons write it: the agent for `countywatch-agent test`, the
//! collector for `/metrics`. Escaping lives here once so that no label value
//! an attacker managed to put into a metric can break the output.

use std::fmt::Write;

use crate::metric::{MetricFamily, exposed_labels};

/// Writes `families` as Prometheus text. `extra_labels` are prepended to
/// every sample (the collector's `instance` and `job`). Families must have
/// distinct names; samples of one family stay together as the format
/// requires.
pub fn write_text(out: &mut String, families: &[&MetricFamily], extra_labels: &[(&str, &str)]) {
    for family in families {
        write_family_header(out, family);
        write_samples(out, family, extra_labels);
    }
}

/// Writes the `# HELP` and `# TYPE` lines of a family.
pub fn write_family_header(out: &mut String, family: &MetricFamily) {
    let _ = writeln!(out, "# HELP {} {}", family.name, escape_help(&family.help));
    let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind.as_str());
}

/// Writes the sample lines of an agent's family with the labels
/// [`exposed_labels`] gives each sample (`instance`, `job`, and `agent` on a
/// device's series), each stamped with `timestamp_ms` when given.
pub fn write_agent_samples(
    out: &mut String,
    family: &MetricFamily,
    agent: &str,
    job: &str,
    timestamp_ms: Option<i64>,
) {
    for sample in &family.samples {
        write_sample(
            out,
            &family.name,
            exposed_labels(agent, job, &sample.labels),
            sample.value,
            timestamp_ms,
        );
    }
}

/// Writes the sample lines of a family, each with `extra_labels` first.
pub fn write_samples(out: &mut String, family: &MetricFamily, extra_labels: &[(&str, &str)]) {
    write_samples_at(out, family, extra_labels, None);
}

/// Like [`write_samples`], with `timestamp_ms` (milliseconds since the Unix
/// epoch) after every value: the collector passes the time the agent took
/// the samples, so that Prometheus records when they were measured rather
/// than when it scraped the collector.
pub fn write_samples_at(
    out: &mut String,
    family: &MetricFamily,
    extra_labels: &[(&str, &str)],
    timestamp_ms: Option<i64>,
) {
    for sample in &family.samples {
        let labels = extra_labels.iter().copied().chain(
            sample
                .labels
                .iter()
                .map(|(name, value)| (name.as_ref(), value.as_ref())),
        );
        write_sample(out, &family.name, labels, sample.value, timestamp_ms);
    }
}

/// Writes one sample line, with a timestamp in milliseconds if given.
fn write_sample<'a>(
    out: &mut String,
    name: &str,
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    value: f64,
    timestamp_ms: Option<i64>,
) {
    out.push_str(name);
    let mut first = true;
    for (label, label_value) in labels {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(label);
        out.push_str("=\"");
        escape_label_value_into(out, label_value);
        out.push('"');
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
    write_value(out, value);
    if let Some(timestamp_ms) = timestamp_ms {
        let _ = write!(out, " {timestamp_ms}");
    }
    out.push('\n');
}

fn write_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{value}");
    }
}

fn escape_help(help: &str) -> String {
    let mut escaped = String::with_capacity(help.len());
    for c in help.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

fn escape_label_value_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::MetricKind;

    #[test]
    fn writes_families_with_extra_labels_and_escapes() {
        let mut family = MetricFamily::new(
            "node_filesystem_avail_bytes",
            "Avail\nbytes \\",
            MetricKind::Gauge,
        );
        family.push(&[("mountpoint", "/a \"b\"\n\\c")], 1024.0);
        let mut load = MetricFamily::new("node_load1", "1m load average.", MetricKind::Gauge);
        load.push(&[], 0.25);
        let mut up = MetricFamily::new("x_total", "x", MetricKind::Counter);
        up.push(&[], f64::NAN);
        let mut out = String::new();
        write_text(
            &mut out,
            &[&family, &load, &up],
            &[("instance", "h1"), ("job", "countywatch")],
        );
        assert_eq!(
            out,
            "# HELP node_filesystem_avail_bytes Avail\\nbytes \\\\\n\
             # TYPE node_filesystem_avail_bytes gauge\n\
             node_filesystem_avail_bytes{instance=\"h1\",job=\"countywatch\",mountpoint=\"/a \\\"b\\\"\\n\\\\c\"} 1024\n\
             # HELP node_load1 1m load average.\n\
             # TYPE node_load1 gauge\n\
             node_load1{instance=\"h1\",job=\"countywatch\"} 0.25\n\
             # HELP x_total x\n\
             # TYPE x_total counter\n\
             x_total{instance=\"h1\",job=\"countywatch\"} NaN\n"
        );
    }

    #[test]
    fn a_timestamp_follows_the_value() {
        let family = MetricFamily::single("node_load1", "h", MetricKind::Gauge, 0.5);
        let mut out = String::new();
        write_samples_at(
            &mut out,
            &family,
            &[("instance", "a")],
            Some(1_700_000_000_123),
        );
        assert_eq!(out, "node_load1{instance=\"a\"} 0.5 1700000000123\n");
    }

    #[test]
    fn no_labels_means_no_braces() {
        let family = MetricFamily::single("node_load1", "h", MetricKind::Gauge, 1e21);
        let mut out = String::new();
        write_samples(&mut out, &family, &[]);
        assert_eq!(out, "node_load1 1000000000000000000000\n");
    }
}
