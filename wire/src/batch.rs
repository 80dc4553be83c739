//! A batch: the unit an agent sends and the collector acknowledges.

use serde::{Deserialize, Serialize};

use crate::event::{Event, EventError};
use crate::metric::{MetricFamily, ValidationError};

/// The version of the wire format this build speaks. The collector refuses
/// batches of a version it does not know with a 400 that names both.
pub const WIRE_VERSION: u32 = 1;

/// What an agent sends in one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Wire format version, [`WIRE_VERSION`] for this build.
    pub version: u32,
    /// The agent's name, which becomes the `instance` label. (With mutual
    /// TLS the collector takes the name from the client certificate instead.)
    pub agent: String,
    /// Sequence number of this batch, increasing by one per batch an agent
    /// creates; the collector uses it to drop replays.
    pub seq: u64,
    /// When the agent collected the batch, in milliseconds since the Unix epoch.
    pub collected_at_ms: i64,
    /// Metric families sampled in this collection.
    #[serde(default)]
    pub metrics: Vec<MetricFamily>,
    /// Security events observed since the previous batch.
    #[serde(default)]
    pub events: Vec<Event>,
}

/// Upper bounds on what one batch may hold, so that one agent cannot make
/// the collector allocate without limit.
pub const MAX_FAMILIES: usize = 10_000;
/// See [`MAX_FAMILIES`].
pub const MAX_SAMPLES: usize = 200_000;
/// See [`MAX_FAMILIES`].
pub const MAX_EVENTS: usize = 50_000;
/// Longest accepted agent name.
pub const MAX_AGENT_NAME: usize = 253;

/// Why a batch was refused as a whole.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The batch speaks another version of the wire format.
    #[error("wire format version {got} is not supported (this collector speaks {WIRE_VERSION})")]
    Version {
        /// The version the batch claims.
        got: u32,
    },
    /// The agent name is empty, too long or holds characters a label value
    /// should not carry.
    #[error("invalid agent name {0:?}")]
    AgentName(String),
    /// Too many families, samples or events.
    #[error("batch too large: {0}")]
    TooLarge(String),
    /// A metric family is malformed.
    #[error(transparent)]
    Metric(#[from] ValidationError),
    /// An event is malformed.
    #[error(transparent)]
    Event(#[from] EventError),
}

/// Whether `name` is acceptable as an agent name: 1 to 253 characters of
/// letters, digits, `.`, `-` and `_` (a host name, possibly qualified).
pub fn is_valid_agent_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_AGENT_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

impl Batch {
    /// Checks everything the collector relies on before it stores a batch.
    pub fn validate(&self) -> Result<(), BatchError> {
        if self.version != WIRE_VERSION {
            return Err(BatchError::Version { got: self.version });
        }
        if !is_valid_agent_name(&self.agent) {
            return Err(BatchError::AgentName(self.agent.clone()));
        }
        if self.metrics.len() > MAX_FAMILIES {
            return Err(BatchError::TooLarge(format!(
                "{} metric families (limit {MAX_FAMILIES})",
                self.metrics.len()
            )));
        }
        let samples: usize = self.metrics.iter().map(|family| family.samples.len()).sum();
        if samples > MAX_SAMPLES {
            return Err(BatchError::TooLarge(format!(
                "{samples} samples (limit {MAX_SAMPLES})"
            )));
        }
        if self.events.len() > MAX_EVENTS {
            return Err(BatchError::TooLarge(format!(
                "{} events (limit {MAX_EVENTS})",
                self.events.len()
            )));
        }
        let mut names = std::collections::HashSet::with_capacity(self.metrics.len());
        for family in &self.metrics {
            family.validate()?;
            if !names.insert(family.name.as_ref()) {
                return Err(ValidationError::DuplicateFamily(family.name.to_string()).into());
            }
        }
        for (index, event) in self.events.iter().enumerate() {
            event.validate(index)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::MetricKind;

    fn batch() -> Batch {
        Batch {
            version: WIRE_VERSION,
            agent: "web-01.county.gov".to_string(),
            seq: 1,
            collected_at_ms: 0,
            metrics: vec![MetricFamily::single(
                "node_load1",
                "1m load",
                MetricKind::Gauge,
                0.5,
            )],
            events: Vec::new(),
        }
    }

    #[test]
    fn a_good_batch_validates() {
        assert_eq!(batch().validate(), Ok(()));
    }

    #[test]
    fn unknown_version_is_refused_with_both_versions() {
        let mut bad = batch();
        bad.version = 99;
        let error = bad.validate().err().map(|error| error.to_string());
        assert_eq!(
            error.as_deref(),
            Some("wire format version 99 is not supported (this collector speaks 1)")
        );
    }

    #[test]
    fn agent_names_with_label_breaking_characters_are_refused() {
        for name in ["", "a b", "x\"y", "a\nb", &"a".repeat(254)] {
            let mut bad = batch();
            bad.agent = name.to_string();
            assert!(
                matches!(bad.validate(), Err(BatchError::AgentName(_))),
                "{name:?}"
            );
        }
    }

    #[test]
    fn duplicate_families_are_refused() {
        let mut bad = batch();
        bad.metrics.push(bad.metrics[0].clone());
        assert!(matches!(bad.validate(), Err(BatchError::Metric(_))));
    }
}
