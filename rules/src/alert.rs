//! One alerting rule and its state machine, as Prometheus's
//! `AlertingRule.Eval`: every result element is an alert that is pending
//! until it has been active for `for`, then firing; when its element
//! disappears it resolves (becomes inactive), unless `keep_firing_for`
//! holds it firing a while longer. Resolved alerts are kept 15 minutes so
//! that a notifier can report them resolved.

use std::collections::BTreeMap;

use crate::output_error::OutputError;
use crate::promql::Sample;
use crate::rulefmt::RuleSpec;
use crate::storage::Millis;
use countywatch_labels::labels::{FastMap, Labels, METRIC_NAME};
use countywatch_labels::template::{Data, Template};

/// How long a resolved alert is kept, as Prometheus's `resolvedRetention`.
pub const RESOLVED_RETENTION: Millis = 15 * 60 * 1000;

/// An alert's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Resolved: the condition no longer holds.
    Inactive,
    /// Active for less than `for`.
    Pending,
    /// Active for at least `for` (or held by `keep_firing_for`).
    Firing,
}

impl State {
    /// The `alertstate` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Inactive => "inactive",
            State::Pending => "pending",
            State::Firing => "firing",
        }
    }
}

/// One alert of a rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// Identifying labels: the result's (without the metric name), the
    /// rule's labels, and `alertname`.
    pub labels: Labels,
    /// Expanded annotations.
    pub annotations: Vec<(String, String)>,
    /// The state.
    pub state: State,
    /// When the alert became pending.
    pub active_at: Millis,
    /// When it started firing.
    pub fired_at: Option<Millis>,
    /// When it resolved.
    pub resolved_at: Option<Millis>,
    /// When its condition first went away while `keep_firing_for` held it.
    pub keep_firing_since: Option<Millis>,
    /// The last value of its result element.
    pub value: f64,
}

/// The state of one alerting rule across evaluations.
#[derive(Clone, Debug)]
pub struct AlertingRule {
    /// The alert name.
    pub name: String,
    /// Pending time before firing, in milliseconds.
    pub hold: Millis,
    /// How long to keep firing after the condition clears, in milliseconds.
    pub keep_firing_for: Millis,
    /// Label templates (group labels first, then the rule's).
    labels: Vec<(String, Template)>,
    /// Annotation templates.
    annotations: Vec<(String, Template)>,
    /// Alerts by their labels.
    active: FastMap<Labels, Alert>,
}

impl AlertingRule {
    /// A rule with no alerts yet; `None` for a recording rule spec.
    pub fn new(spec: &RuleSpec, group_labels: &[(String, String)]) -> Option<AlertingRule> {
        let crate::rulefmt::RuleKind::Alert {
            name,
            for_,
            keep_firing_for,
            annotations,
        } = &spec.kind
        else {
            return None;
        };
        let mut labels: Vec<(String, Template)> = group_labels
            .iter()
            .filter_map(|(name, value)| {
                Template::parse(value)
                    .ok()
                    .map(|template| (name.clone(), template))
            })
            .collect();
        labels.extend(spec.labels.iter().cloned());
        Some(AlertingRule {
            name: name.clone(),
            hold: millis(*for_),
            keep_firing_for: millis(*keep_firing_for),
            labels,
            annotations: annotations.clone(),
            active: FastMap::default(),
        })
    }

    /// Advances the state machine with the expression's result at `t`;
    /// returns the `ALERTS` and `ALERTS_FOR_STATE` samples to record.
    /// A `limit` above zero caps pending plus firing alerts.
    pub fn eval(
        &mut self,
        result: Vec<Sample>,
        t: Millis,
        external_labels: &BTreeMap<String, String>,
        limit: usize,
    ) -> Result<Vec<Sample>, OutputError> {
        let mut current: FastMap<Labels, Alert> =
            FastMap::with_capacity_and_hasher(result.len(), Default::default());
        for sample in result {
            let data = Data {
                labels: &sample.labels,
                external_labels,
                value: sample.value,
            };
            let expand = |template: &Template| {
                template
                    .render(&data)
                    .unwrap_or_else(|error| format!("<error expanding template: {error}>"))
            };
            let mut labels = sample.labels.without_name();
            for (name, template) in &self.labels {
                labels.set(name, &expand(template));
            }
            labels.set("alertname", &self.name);
            let annotations = self
                .annotations
                .iter()
                .map(|(name, template)| (name.clone(), expand(template)))
                .collect();
            if current.contains_key(&labels) {
                return Err(OutputError::DuplicateLabelset { applied: "alert" });
            }
            current.insert(
                labels.clone(),
                Alert {
                    labels,
                    annotations,
                    state: State::Pending,
                    active_at: t,
                    fired_at: None,
                    resolved_at: None,
                    keep_firing_since: None,
                    value: sample.value,
                },
            );
        }
        let current_keys: Vec<Labels> = current.keys().cloned().collect();
        for (labels, alert) in current {
            match self.active.get_mut(&labels) {
                Some(existing) if existing.state != State::Inactive => {
                    existing.value = alert.value;
                    existing.annotations = alert.annotations;
                }
                _ => {
                    self.active.insert(labels, alert);
                }
            }
        }
        let mut output = Vec::new();
        let mut active_count = 0;
        let mut deleted = Vec::new();
        for (labels, alert) in &mut self.active {
            if !current_keys.contains(labels) {
                let mut keep_firing = false;
                if alert.state == State::Firing && self.keep_firing_for > 0 {
                    let since = *alert.keep_firing_since.get_or_insert(t);
                    if t - since < self.keep_firing_for {
                        keep_firing = true;
                    }
                }
                if alert.state == State::Pending
                    || alert
                        .resolved_at
                        .is_some_and(|resolved| t - resolved > RESOLVED_RETENTION)
                {
                    deleted.push(labels.clone());
                }
                if alert.state != State::Inactive && !keep_firing {
                    alert.state = State::Inactive;
                    alert.resolved_at = Some(t);
                }
                if !keep_firing {
                    continue;
                }
            } else {
                alert.keep_firing_since = None;
            }
            active_count += 1;
            if alert.state == State::Pending && t - alert.active_at >= self.hold {
                alert.state = State::Firing;
                alert.fired_at = Some(t);
            }
            let mut series = alert.labels.clone();
            series.set(METRIC_NAME, "ALERTS");
            series.set("alertstate", alert.state.as_str());
            output.push(Sample {
                labels: series,
                value: 1.0,
                timestamp: t,
            });
            let mut for_state = alert.labels.clone();
            for_state.set(METRIC_NAME, "ALERTS_FOR_STATE");
            output.push(Sample {
                labels: for_state,
                value: (alert.active_at as f64 / 1000.0).floor(),
                timestamp: t,
            });
        }
        for labels in deleted {
            self.active.remove(&labels);
        }
        if limit > 0 && active_count > limit {
            self.active.clear();
            return Err(OutputError::LimitExceeded {
                limit,
                count: active_count,
                counted: "alerts",
            });
        }
        Ok(output)
    }

    /// Every alert the rule holds, in label order.
    pub fn alerts(&self) -> Vec<&Alert> {
        let mut alerts: Vec<&Alert> = self.active.values().collect();
        alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
        alerts
    }

    /// Puts back an alert saved before a restart (or kept across a
    /// reload), unless the rule already holds one with the same labels.
    /// Its `for` clock and firing state carry on, so a restart neither
    /// re-notifies nor restarts the pending time; if its condition no
    /// longer holds at the next evaluation it resolves as usual.
    pub fn restore(&mut self, alert: Alert) {
        if alert.state != State::Inactive {
            self.active.entry(alert.labels.clone()).or_insert(alert);
        }
    }

    /// Hands over every alert, for a reloaded rule of the same name.
    pub fn take_alerts(&mut self) -> Vec<Alert> {
        self.active.drain().map(|(_, alert)| alert).collect()
    }

    /// The alerts currently firing.
    pub fn firing(&self) -> Vec<&Alert> {
        self.alerts()
            .into_iter()
            .filter(|alert| alert.state == State::Firing)
            .collect()
    }
}

fn millis(duration: std::time::Duration) -> Millis {
    Millis::try_from(duration.as_millis()).unwrap_or(Millis::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rulefmt;

    /// Runs an alerting rule over a sequence of evaluations: at each minute,
    /// whether its expression returned the element; checks the state after
    /// each step (`-` for no alert at all).
    fn check(rule_yaml: &str, present: &[bool], expected: &[&str]) {
        let text = format!("groups:\n  - name: g\n    rules:\n{rule_yaml}");
        let groups = rulefmt::parse(std::path::Path::new("t.yaml"), &text).unwrap();
        let mut rule = AlertingRule::new(&groups[0].rules[0], &[]).unwrap();
        let external = BTreeMap::new();
        for (step, (present, expected)) in present.iter().zip(expected).enumerate() {
            let t = step as Millis * 60_000;
            let result = if *present {
                vec![Sample {
                    labels: Labels::from_pairs([("__name__", "up"), ("instance", "a")]),
                    value: 0.0,
                    timestamp: t,
                }]
            } else {
                Vec::new()
            };
            rule.eval(result, t, &external, 0).unwrap();
            let state = rule
                .alerts()
                .first()
                .map(|alert| alert.state.as_str())
                .unwrap_or("-");
            assert_eq!(state, *expected, "step {step} of {rule_yaml}");
        }
    }

    #[test]
    fn for_holds_an_alert_pending() {
        check(
            "      - alert: A\n        expr: up == 0\n        for: 2m\n",
            &[true, true, true, true, false, true],
            &[
                "pending", "pending", "firing", "firing", "inactive", "pending",
            ],
        );
    }

    #[test]
    fn a_pending_alert_that_clears_is_forgotten() {
        check(
            "      - alert: A\n        expr: up == 0\n        for: 5m\n",
            &[true, false, true],
            &["pending", "-", "pending"],
        );
    }

    #[test]
    fn keep_firing_for_holds_a_cleared_alert() {
        check(
            "      - alert: A\n        expr: up == 0\n        keep_firing_for: 2m\n",
            &[true, false, false, false, true],
            &["firing", "firing", "firing", "inactive", "firing"],
        );
    }

    #[test]
    fn resolved_alerts_are_kept_fifteen_minutes() {
        let mut present = vec![true, false];
        let mut expected = vec!["firing", "inactive"];
        present.extend([false; 16]);
        expected.extend(["inactive"; 15]);
        expected.push("-");
        check(
            "      - alert: A\n        expr: up == 0\n",
            &present,
            &expected,
        );
    }

    #[test]
    fn labels_and_annotations_are_expanded_per_alert() {
        let text = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        labels:\n          where: \"{{ $labels.instance }}\"\n        annotations:\n          value: \"{{ $value }}\"\n";
        let groups = rulefmt::parse(std::path::Path::new("t.yaml"), text).unwrap();
        let mut rule = AlertingRule::new(&groups[0].rules[0], &[]).unwrap();
        let result = vec![Sample {
            labels: Labels::from_pairs([("__name__", "up"), ("instance", "a")]),
            value: 0.5,
            timestamp: 0,
        }];
        let output = rule.eval(result, 0, &BTreeMap::new(), 0).unwrap();
        let alert = rule.alerts()[0].clone();
        assert_eq!(
            alert.labels.to_string(),
            r#"{alertname="A", instance="a", where="a"}"#
        );
        assert_eq!(
            alert.annotations,
            vec![("value".to_string(), "0.5".to_string())]
        );
        assert_eq!(output.len(), 2, "ALERTS and ALERTS_FOR_STATE");
        assert_eq!(output[0].labels.name(), "ALERTS");
        assert_eq!(output[0].labels.get("alertstate"), "firing");
    }

    #[test]
    fn a_limit_above_zero_caps_alerts() {
        let text = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n";
        let groups = rulefmt::parse(std::path::Path::new("t.yaml"), text).unwrap();
        let mut rule = AlertingRule::new(&groups[0].rules[0], &[]).unwrap();
        let result: Vec<Sample> = ["a", "b", "c"]
            .iter()
            .map(|instance| Sample {
                labels: Labels::from_pairs([("instance", *instance)]),
                value: 1.0,
                timestamp: 0,
            })
            .collect();
        assert_eq!(
            rule.eval(result, 0, &BTreeMap::new(), 2),
            Err(OutputError::LimitExceeded {
                limit: 2,
                count: 3,
                counted: "alerts"
            })
        );
        assert!(rule.alerts().is_empty());
    }
}
