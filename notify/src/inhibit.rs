//! Inhibition rules with Alertmanager's semantics: while a source alert
//! fires, a target alert whose `equal` labels have the same values (a
//! missing label counts as empty) is muted. An alert matching both sides of
//! a rule is not muted by alerts that also match both sides, so that a
//! rule like "critical inhibits warning on the same host" never lets two
//! alerts mute each other.

use std::collections::HashMap;

use crate::alert::{Fingerprint, LabelSet};
use crate::config::InhibitRuleConfig;
use crate::matcher::{Matcher, all_match};

/// The compiled rules.
#[derive(Clone, Debug, Default)]
pub struct Inhibitor {
    /// Rules in config order.
    rules: Vec<Rule>,
}

#[derive(Clone, Debug)]
struct Rule {
    source: Vec<Matcher>,
    target: Vec<Matcher>,
    equal: Vec<String>,
}

/// Firing sources of one rule by their `equal` label values: (source
/// fingerprint, whether the source also matches the target side).
type Sources = HashMap<Vec<String>, Vec<(Fingerprint, bool)>>;

/// Firing sources per rule, keyed by their `equal` label values; built
/// once per flush round from the current alerts.
#[derive(Debug, Default)]
pub struct InhibitIndex {
    /// Per rule: equal values to (source fingerprint, source also matches target).
    per_rule: Vec<Sources>,
}

impl Inhibitor {
    /// Compiles the config's rules.
    pub fn new(configs: &[InhibitRuleConfig]) -> Inhibitor {
        Inhibitor {
            rules: configs
                .iter()
                .map(|config| Rule {
                    source: config.source_matchers().collect(),
                    target: config.target_matchers().collect(),
                    equal: config.equal.clone(),
                })
                .collect(),
        }
    }

    /// Whether there are no rules (then nothing needs indexing).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Indexes the firing alerts that are sources of some rule.
    pub fn index<'a>(
        &self,
        firing: impl Iterator<Item = (Fingerprint, &'a LabelSet)>,
    ) -> InhibitIndex {
        let mut per_rule: Vec<Sources> = vec![HashMap::new(); self.rules.len()];
        if self.rules.is_empty() {
            return InhibitIndex { per_rule };
        }
        for (fingerprint, labels) in firing {
            for (rule, sources) in self.rules.iter().zip(per_rule.iter_mut()) {
                if all_match(&rule.source, labels) {
                    let key = equal_values(&rule.equal, labels);
                    let both = all_match(&rule.target, labels);
                    sources.entry(key).or_default().push((fingerprint, both));
                }
            }
        }
        InhibitIndex { per_rule }
    }

    /// Whether the alert is inhibited given the index of firing sources.
    pub fn inhibited(
        &self,
        index: &InhibitIndex,
        fingerprint: Fingerprint,
        labels: &LabelSet,
    ) -> bool {
        !self.inhibited_by(index, fingerprint, labels).is_empty()
    }

    /// The firing alerts inhibiting this one (for `inhibitedBy` in the
    /// API), sorted and without repeats; empty when it is not inhibited.
    pub fn inhibited_by(
        &self,
        index: &InhibitIndex,
        fingerprint: Fingerprint,
        labels: &LabelSet,
    ) -> Vec<Fingerprint> {
        let mut sources: Vec<Fingerprint> = Vec::new();
        for (rule, by_equal) in self.rules.iter().zip(&index.per_rule) {
            if !all_match(&rule.target, labels) {
                continue;
            }
            let two_sided = all_match(&rule.source, labels);
            if let Some(candidates) = by_equal.get(&equal_values(&rule.equal, labels)) {
                sources.extend(
                    candidates
                        .iter()
                        .filter(|(source, source_both)| {
                            *source != fingerprint && !(two_sided && *source_both)
                        })
                        .map(|(source, _)| *source),
                );
            }
        }
        sources.sort_unstable();
        sources.dedup();
        sources
    }
}

fn equal_values(names: &[String], labels: &LabelSet) -> Vec<String> {
    names
        .iter()
        .map(|name| labels.get(name).cloned().unwrap_or_default())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{fingerprint, labels};

    fn inhibitor(yaml: &str) -> Inhibitor {
        let configs: Vec<InhibitRuleConfig> =
            countywatch_config::config_file::parse(std::path::Path::new("i.yaml"), yaml).unwrap();
        Inhibitor::new(&configs)
    }

    fn muted(inhibitor: &Inhibitor, firing: &[LabelSet], target: &LabelSet) -> bool {
        let index = inhibitor.index(firing.iter().map(|set| (fingerprint(set), set)));
        inhibitor.inhibited(&index, fingerprint(target), target)
    }

    #[test]
    fn host_down_inhibits_that_hosts_other_alerts() {
        let rules = inhibitor(
            "- source_matchers: ['alertname=\"HostDown\"']\n  target_matchers: ['alertname!=\"HostDown\"']\n  equal: [instance]\n",
        );
        let down = labels([("alertname", "HostDown"), ("instance", "web1")]);
        let disk = labels([("alertname", "DiskFull"), ("instance", "web1")]);
        let other = labels([("alertname", "DiskFull"), ("instance", "web2")]);
        assert!(muted(&rules, &[down.clone(), disk.clone()], &disk));
        assert!(!muted(&rules, &[down.clone(), other.clone()], &other));
        assert!(
            !muted(&rules, std::slice::from_ref(&down), &down),
            "a source never mutes itself"
        );
        assert!(
            !muted(&rules, std::slice::from_ref(&disk), &disk),
            "no source firing"
        );
    }

    #[test]
    fn two_sided_matches_do_not_mute_each_other() {
        let rules = inhibitor(
            "- source_matchers: ['severity=~\"critical|warning\"']\n  target_matchers: ['severity=~\"critical|warning\"']\n  equal: [instance]\n",
        );
        let a = labels([
            ("alertname", "A"),
            ("severity", "critical"),
            ("instance", "h"),
        ]);
        let b = labels([
            ("alertname", "B"),
            ("severity", "warning"),
            ("instance", "h"),
        ]);
        assert!(!muted(&rules, &[a.clone(), b.clone()], &a));
        assert!(!muted(&rules, &[a.clone(), b.clone()], &b));
    }
}
