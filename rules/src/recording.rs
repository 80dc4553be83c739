//! One recording rule: the expression's result renamed to the rule's
//! metric name with its labels applied, as Prometheus's
//! `RecordingRule.Eval`.

use crate::output_error::OutputError;
use crate::promql::Sample;
use crate::rulefmt::{RuleKind, RuleSpec};
use crate::storage::Millis;
use countywatch_labels::labels::{Labels, METRIC_NAME};

/// A recording rule ready to run.
#[derive(Clone, Debug)]
pub struct RecordingRule {
    /// The metric name written.
    pub name: String,
    /// Static labels set on every output series (group labels first).
    labels: Vec<(String, String)>,
}

impl RecordingRule {
    /// The rule for a spec; `None` for an alerting rule spec.
    pub fn new(spec: &RuleSpec, group_labels: &[(String, String)]) -> Option<RecordingRule> {
        let RuleKind::Record { name } = &spec.kind else {
            return None;
        };
        let mut labels = group_labels.to_vec();
        labels.extend(
            spec.labels
                .iter()
                .map(|(name, template)| (name.clone(), template.source().to_string())),
        );
        Some(RecordingRule {
            name: name.clone(),
            labels,
        })
    }

    /// Renames and relabels the expression's result at `t`.
    pub fn eval(
        &self,
        result: Vec<Sample>,
        t: Millis,
        limit: usize,
    ) -> Result<Vec<Sample>, OutputError> {
        let mut output = Vec::with_capacity(result.len());
        let mut seen = countywatch_labels::labels::FastSet::with_capacity_and_hasher(
            result.len(),
            Default::default(),
        );
        for sample in result {
            let mut labels: Labels = sample.labels;
            labels.set(METRIC_NAME, &self.name);
            for (name, value) in &self.labels {
                labels.set(name, value);
            }
            if !seen.insert(labels.clone()) {
                return Err(OutputError::DuplicateLabelset { applied: "rule" });
            }
            output.push(Sample {
                labels,
                value: sample.value,
                timestamp: t,
            });
        }
        if limit > 0 && output.len() > limit {
            return Err(OutputError::LimitExceeded {
                limit,
                count: output.len(),
                counted: "series",
            });
        }
        Ok(output)
    }
}
