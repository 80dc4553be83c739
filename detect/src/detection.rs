//! What a detection rule produces when it fires: the contract between the
//! engine and its two consumers in the collector, the notifier (an alert) and
//! the incident store (an incident with its evidence).

use std::collections::BTreeMap;
use std::net::IpAddr;

use countywatch_wire::Event;
use serde::{Deserialize, Serialize};

/// How bad a detection is, in the order security officers triage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth recording, not worth waking anyone.
    Info,
    /// Review in the weekly pass.
    Low,
    /// Review today.
    Medium,
    /// Review now.
    High,
    /// Someone is probably inside.
    Critical,
}

impl Severity {
    /// Every severity, least severe first.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The name used in rule files, labels and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One event that made a rule fire, as the collector stored it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The event's row id in the collector's `events` table, when it came
    /// from there (`None` in `rules test` and `rules replay`).
    pub event_id: Option<i64>,
    /// The event itself, with its raw line.
    pub event: Event,
}

/// A rule fired for one group key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// The rule's `id`.
    pub rule_id: String,
    /// The rule's `title`, templates expanded.
    pub title: String,
    /// The rule's severity.
    pub severity: Severity,
    /// The group key in canonical form (`src_ip=203.0.113.9,host=web1`,
    /// fields in the rule's `group_by` order); empty for rules without one.
    /// The incident store deduplicates on `(rule_id, group_key)`.
    pub group_key: String,
    /// The rule's labels plus the group key's fields, plus `rule_id`,
    /// `severity` and `alertname` (the rule id), ready for the notifier.
    pub labels: BTreeMap<String, String>,
    /// The rule's annotations, templates expanded.
    pub annotations: BTreeMap<String, String>,
    /// The rule's tags (MITRE ATT&CK technique ids, for instance).
    pub tags: Vec<String>,
    /// The hosts the evidence came from, sorted, without duplicates.
    pub hosts: Vec<String>,
    /// When it fired: the time of the event that completed the match, in
    /// milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The events that made it fire, oldest first, capped per rule.
    pub evidence: Vec<Evidence>,
    /// The rule's active response, for the collector to make a decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<crate::response::ResponseSpec>,
}

impl Detection {
    /// The address the detection is about, for a `block_source` response:
    /// its `src_ip` label (the rule groups by it), else the one `src_ip`
    /// all its evidence shares. The collector and an agent working offline
    /// both block this address.
    pub fn source_address(&self) -> Option<IpAddr> {
        if let Some(label) = self.labels.get("src_ip") {
            return label.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
        }
        let mut addresses = self
            .evidence
            .iter()
            .filter_map(|evidence| evidence.event.fields.src_ip)
            .map(|ip| ip.to_canonical());
        let first = addresses.next()?;
        addresses.all(|other| other == first).then_some(first)
    }
}
