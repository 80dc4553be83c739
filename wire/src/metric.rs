//! Metric families as an agent reports them.
//!
//! The shape mirrors the Prometheus data model (a family has one name, help,
//! type and many labelled samples), so that the collector can expose them
//! unchanged in the Prometheus text format. The collector adds `instance`
//! and `job` itself; an agent may not set them.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The Prometheus type of a metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// A value that only goes up (it resets to zero when its source restarts).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A value of unknown type: node_exporter serves /proc/net/netstat and
    /// /proc/vmstat fields untyped, and dashboards see the type.
    Untyped,
}

impl MetricKind {
    /// The word the Prometheus text format uses in `# TYPE` lines.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Untyped => "untyped",
        }
    }
}

/// One metric family: every sample of one metric name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricFamily {
    /// The metric name, e.g. `node_memory_MemTotal_bytes`.
    pub name: LabelText,
    /// The help text shown in `# HELP`.
    pub help: LabelText,
    /// Counter, gauge or untyped.
    pub kind: MetricKind,
    /// The samples, one per distinct label set.
    pub samples: Vec<Sample>,
}

/// A label's name or value, or a family's name or help. An agent's label
/// names, family names and help, and many of its label values (a probe's
/// name, a CPU mode) are literals in its code: borrowing them instead of
/// copying each into a fresh `String` every collection spared the agent
/// 37% of its allocations per collection (docs/benchmarks.md,
/// agent_footprint). What is read from the wire or the host is owned.
pub type LabelText = Cow<'static, str>;

/// One labelled value of a metric family.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    /// Label pairs in the order the agent reports them; names are unique.
    #[serde(default)]
    pub labels: Vec<(LabelText, LabelText)>,
    /// The value. Non-finite values travel as the strings `NaN`, `+Inf`, `-Inf`.
    #[serde(
        serialize_with = "serialize_value",
        deserialize_with = "deserialize_value"
    )]
    pub value: f64,
}

impl Sample {
    /// The labels as owned strings: how tests and callers that keep them
    /// compare.
    pub fn owned_labels(&self) -> Vec<(String, String)> {
        self.labels
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }
}

impl MetricFamily {
    /// A family with no samples yet.
    pub fn new(name: impl Into<LabelText>, help: impl Into<LabelText>, kind: MetricKind) -> Self {
        MetricFamily {
            name: name.into(),
            help: help.into(),
            kind,
            samples: Vec::new(),
        }
    }

    /// Adds a sample with the given labels: names written in the code,
    /// values copied.
    pub fn push(&mut self, labels: &[(&'static str, &str)], value: f64) {
        self.samples.push(Sample {
            labels: labels
                .iter()
                .map(|(name, value)| (Cow::Borrowed(*name), Cow::Owned((*value).to_string())))
                .collect(),
            value,
        });
    }

    /// Adds a sample whose label names and values are all written in the
    /// code; nothing is copied.
    pub fn push_static(&mut self, labels: &[(&'static str, &'static str)], value: f64) {
        self.samples.push(Sample {
            labels: labels
                .iter()
                .map(|(name, value)| (Cow::Borrowed(*name), Cow::Borrowed(*value)))
                .collect(),
            value,
        });
    }

    /// Adds a sample whose label names were read, not written in the code
    /// (a textfile's, an SNMP table's): names and values are copied.
    pub fn push_copied(&mut self, labels: &[(&str, &str)], value: f64) {
        self.samples.push(Sample {
            labels: labels
                .iter()
                .map(|(name, value)| {
                    (
                        Cow::Owned((*name).to_string()),
                        Cow::Owned((*value).to_string()),
                    )
                })
                .collect(),
            value,
        });
    }

    /// A family with one unlabelled sample.
    pub fn single(
        name: impl Into<LabelText>,
        help: impl Into<LabelText>,
        kind: MetricKind,
        value: f64,
    ) -> Self {
        let mut family = MetricFamily::new(name, help, kind);
        family.push(&[], value);
        family
    }
}

/// Labels the collector owns and attaches itself.
pub const RESERVED_LABELS: [&str; 2] = ["instance", "job"];

/// The parts of the collector's `countywatch_` namespace agents report
/// in: their own self-metrics and their SNMP probe's per-device figures.
pub const AGENT_METRIC_PREFIXES: [&str; 2] = ["countywatch_agent_", "countywatch_snmp_"];

/// Whether an agent may report a family named `name`: anything outside
/// `countywatch_`, and [`AGENT_METRIC_PREFIXES`] inside it (the rest is
/// the collector's own, which an agent must not shadow).
pub fn is_agent_metric_name(name: &str) -> bool {
    !name.starts_with("countywatch_")
        || AGENT_METRIC_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

/// The label an agent puts on the series of a network device it polls
/// (SNMP) rather than its own host. The collector exposes such a series
/// with `instance` set to this label's value and the agent's name in
/// [`POLLING_AGENT_LABEL`], as snmp_exporter's targets appear in
/// Prometheus; the label itself is not exposed.
pub const DEVICE_INSTANCE_LABEL: &str = "device_instance";

/// The label carrying the polling agent's name on a device's series.
pub const POLLING_AGENT_LABEL: &str = "agent";

/// The labels a sample that `agent` reported is exposed with, in order:
/// `instance`, `job`, then the sample's own labels. A device's sample (one
/// with [`DEVICE_INSTANCE_LABEL`]) gets the device as `instance` and the
/// agent in [`POLLING_AGENT_LABEL`], replacing any label of that name.
pub fn exposed_labels<'a>(
    agent: &'a str,
    job: &'a str,
    labels: &'a [(LabelText, LabelText)],
) -> Vec<(&'a str, &'a str)> {
    let device = labels
        .iter()
        .find(|(name, _)| name == DEVICE_INSTANCE_LABEL)
        .map(|(_, value)| value.as_ref());
    let mut exposed = Vec::with_capacity(labels.len() + 3);
    match device {
        Some(device) => {
            exposed.push(("instance", device));
            exposed.push(("job", job));
            exposed.push((POLLING_AGENT_LABEL, agent));
            exposed.extend(
                labels
                    .iter()
                    .filter(|(name, _)| {
                        name != DEVICE_INSTANCE_LABEL && name != POLLING_AGENT_LABEL
                    })
                    .map(|(name, value)| (name.as_ref(), value.as_ref())),
            );
        }
        None => {
            exposed.push(("instance", agent));
            exposed.push(("job", job));
            exposed.extend(
                labels
                    .iter()
                    .map(|(name, value)| (name.as_ref(), value.as_ref())),
            );
        }
    }
    exposed
}

/// Why a metric family was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The family name is not a valid Prometheus metric name.
    #[error("invalid metric name {0:?}")]
    MetricName(String),
    /// A label name is not valid, or is reserved.
    #[error("metric {metric}: invalid or reserved label name {label:?}")]
    LabelName {
        /// The metric the label is on.
        metric: String,
        /// The offending label name.
        label: String,
    },
    /// The same label name appears twice in one sample.
    #[error("metric {metric}: duplicate label {label:?}")]
    DuplicateLabel {
        /// The metric the label is on.
        metric: String,
        /// The repeated label name.
        label: String,
    },
    /// Two families in one batch share a name.
    #[error("metric {0}: reported twice in one batch")]
    DuplicateFamily(String),
}

/// Whether `name` matches `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) if first.is_ascii_alphabetic() || first == '_' || first == ':' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` matches `[a-zA-Z_][a-zA-Z0-9_]*` and is not reserved for
/// Prometheus's internal use (`__` prefix).
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) if first.is_ascii_alphabetic() || first == '_' => {}
        _ => return false,
    }
    !name.starts_with("__") && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl MetricFamily {
    /// Checks names and labels so that whatever the collector exposes is
    /// valid Prometheus text, whatever an agent sent.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !is_valid_metric_name(&self.name) {
            return Err(ValidationError::MetricName(self.name.to_string()));
        }
        for sample in &self.samples {
            for (index, (label, _)) in sample.labels.iter().enumerate() {
                if !is_valid_label_name(label) || RESERVED_LABELS.contains(&label.as_ref()) {
                    return Err(ValidationError::LabelName {
                        metric: self.name.to_string(),
                        label: label.to_string(),
                    });
                }
                if sample.labels[..index]
                    .iter()
                    .any(|(other, _)| other == label)
                {
                    return Err(ValidationError::DuplicateLabel {
                        metric: self.name.to_string(),
                        label: label.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

fn serialize_value<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_nan() {
        serializer.serialize_str("NaN")
    } else if value.is_infinite() {
        serializer.serialize_str(if *value > 0.0 { "+Inf" } else { "-Inf" })
    } else {
        serializer.serialize_f64(*value)
    }
}

fn deserialize_value<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Value {
        Number(f64),
        Text(String),
    }
    match Value::deserialize(deserializer)? {
        Value::Number(number) => Ok(number),
        Value::Text(text) => match text.as_str() {
            "NaN" => Ok(f64::NAN),
            "+Inf" => Ok(f64::INFINITY),
            "-Inf" => Ok(f64::NEG_INFINITY),
            other => Err(serde::de::Error::custom(format!(
                "invalid sample value {other:?}"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names() {
        for good in ["node_load1", "a:b_c", "_x", "node_memory_MemTotal_bytes"] {
            assert!(is_valid_metric_name(good), "{good}");
        }
        for bad in ["", "1abc", "a-b", "a b", "é"] {
            assert!(!is_valid_metric_name(bad), "{bad}");
        }
    }

    #[test]
    fn label_names() {
        assert!(is_valid_label_name("mountpoint"));
        for bad in ["", "__name__", "a:b", "9x"] {
            assert!(!is_valid_label_name(bad), "{bad}");
        }
    }

    #[test]
    fn reserved_and_duplicate_labels_are_refused() {
        let mut family = MetricFamily::new("x", "", MetricKind::Gauge);
        family.push(&[("instance", "forged")], 1.0);
        assert!(matches!(
            family.validate(),
            Err(ValidationError::LabelName { .. })
        ));
        let mut family = MetricFamily::new("x", "", MetricKind::Gauge);
        family.push(&[("a", "1"), ("a", "2")], 1.0);
        assert!(matches!(
            family.validate(),
            Err(ValidationError::DuplicateLabel { .. })
        ));
    }

    #[test]
    fn non_finite_values_round_trip() {
        let mut family = MetricFamily::new("x", "h", MetricKind::Gauge);
        family.push(&[], f64::NAN);
        family.push(&[], f64::INFINITY);
        family.push(&[], f64::NEG_INFINITY);
        family.push(&[], 1.5);
        let text = serde_json::to_string(&family).unwrap_or_default();
        let back: Result<MetricFamily, _> = serde_json::from_str(&text);
        let Ok(back) = back else {
            panic!("did not round-trip: {text}");
        };
        assert!(back.samples[0].value.is_nan());
        assert_eq!(back.samples[1].value, f64::INFINITY);
        assert_eq!(back.samples[2].value, f64::NEG_INFINITY);
        assert_eq!(back.samples[3].value, 1.5);
    }

    #[test]
    fn a_device_sample_is_exposed_with_the_device_as_instance() {
        let own = vec![("device".into(), "sda".into())];
        assert_eq!(
            exposed_labels("agent-1", "countywatch", &own),
            [
                ("instance", "agent-1"),
                ("job", "countywatch"),
                ("device", "sda")
            ]
        );
        let device = vec![
            ("ifIndex".into(), "1".into()),
            (DEVICE_INSTANCE_LABEL.into(), "switch-1".into()),
            (POLLING_AGENT_LABEL.into(), "forged".into()),
        ];
        assert_eq!(
            exposed_labels("agent-1", "countywatch", &device),
            [
                ("instance", "switch-1"),
                ("job", "countywatch"),
                ("agent", "agent-1"),
                ("ifIndex", "1")
            ]
        );
    }

    #[test]
    fn agents_report_outside_the_collectors_namespace_only() {
        for allowed in [
            "node_load1",
            "ifHCInOctets",
            "countywatch_agent_probe_success",
            "countywatch_snmp_scrape_duration_seconds",
        ] {
            assert!(is_agent_metric_name(allowed), "{allowed}");
        }
        for refused in [
            "countywatch_ingest_requests_total",
            "countywatch_snmpx",
            "countywatch_",
        ] {
            assert!(!is_agent_metric_name(refused), "{refused}");
        }
    }
}
