//! The latest metrics of every agent, and their exposition on `/metrics`.
//!
//! Each batch replaces its agent's previous metrics (agents send counters
//! since boot, not deltas, so the latest value is the whole truth). Families
//! of the same name from different agents are written together, as the
//! text format requires, each sample labelled with `instance` and `job`.
//! A network device's series (polled by an agent over SNMP) carries the
//! device as `instance` and the agent in `agent` (`exposed_labels`).

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;
use std::time::{Duration, SystemTime};

use countywatch_wire::{
    MetricFamily, MetricKind, write_agent_samples, write_family_header, write_samples,
};

/// The `job` label of every agent metric.
pub const JOB: &str = "countywatch";

/// What one agent last reported.
struct AgentMetrics {
    /// Its families, as sent.
    families: Vec<MetricFamily>,
    /// When its last batch arrived.
    received_at: SystemTime,
}

/// The latest metrics per agent.
pub struct MetricStore {
    /// Keyed by agent name (the `instance` label).
    agents: RwLock<HashMap<String, AgentMetrics>>,
    /// How long an agent's metrics stay exposed without a new batch.
    stale_after: Duration,
}

impl MetricStore {
    /// An empty store.
    pub fn new(stale_after: Duration) -> Self {
        MetricStore {
            agents: RwLock::new(HashMap::new()),
            stale_after,
        }
    }

    /// Replaces `agent`'s metrics with a new batch's.
    pub fn update(&self, agent: &str, families: Vec<MetricFamily>) {
        let mut agents = self
            .agents
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        agents.insert(
            agent.to_string(),
            AgentMetrics {
                families,
                received_at: SystemTime::now(),
            },
        );
    }

    /// Marks `agent` as heard from without replacing its metrics (a batch
    /// that carried only events).
    pub fn touch(&self, agent: &str) {
        let mut agents = self
            .agents
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        match agents.get_mut(agent) {
            Some(metrics) => metrics.received_at = SystemTime::now(),
            None => {
                agents.insert(
                    agent.to_string(),
                    AgentMetrics {
                        families: Vec::new(),
                        received_at: SystemTime::now(),
                    },
                );
            }
        }
    }

    /// Writes every agent's metrics in the Prometheus text format and
    /// returns how many agents were fresh enough to be written.
    pub fn write_text(&self, out: &mut String, now: SystemTime) -> usize {
        let agents = self
            .agents
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut fresh: Vec<(&String, &AgentMetrics)> = agents
            .iter()
            .filter(|(_, metrics)| {
                now.duration_since(metrics.received_at).unwrap_or_default() <= self.stale_after
            })
            .collect();
        fresh.sort_by(|a, b| a.0.cmp(b.0));

        // Group families by name across agents. The first agent to report a
        // name fixes its type; a family of the same name but another type
        // from another agent is left out rather than producing invalid text.
        let mut by_name: BTreeMap<&str, Vec<(&str, &MetricFamily)>> = BTreeMap::new();
        for (agent, metrics) in &fresh {
            for family in &metrics.families {
                by_name
                    .entry(family.name.as_str())
                    .or_default()
                    .push((agent.as_str(), family));
            }
        }
        for (_, members) in by_name {
            let Some((_, first)) = members.first() else {
                continue;
            };
            write_family_header(out, first);
            for (agent, family) in &members {
                if family.kind == first.kind {
                    write_agent_samples(out, family, agent, JOB);
                }
            }
        }

        let mut last_seen = MetricFamily::new(
            "countywatch_agent_last_seen_timestamp_seconds",
            "When the collector last received a batch from the agent, in Unix seconds.",
            MetricKind::Gauge,
        );
        let mut names: Vec<&String> = agents.keys().collect();
        names.sort();
        for name in names {
            if let Some(metrics) = agents.get(name) {
                let seconds = metrics
                    .received_at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|elapsed| elapsed.as_secs_f64())
                    .unwrap_or(0.0);
                last_seen.samples.push(countywatch_wire::Sample {
                    labels: vec![("instance".to_string(), name.clone())],
                    value: seconds,
                });
            }
        }
        if !last_seen.samples.is_empty() {
            write_family_header(out, &last_seen);
            write_samples(out, &last_seen, &[("job", JOB)]);
        }
        fresh.len()
    }

    /// Calls `visit` with every fresh agent's samples, for the rule
    /// engine's series store: the agent's name (the `instance` label), when
    /// its batch arrived, the family name, the sample's labels and value.
    /// Also visits each known agent's last-seen time under
    /// `countywatch_agent_last_seen_timestamp_seconds`, so that rules can
    /// alert on a silent agent.
    pub fn visit_samples(
        &self,
        now: SystemTime,
        mut visit: impl FnMut(&str, SystemTime, &str, &[(String, String)], f64),
    ) {
        let agents = self
            .agents
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        for (agent, metrics) in agents.iter() {
            let fresh =
                now.duration_since(metrics.received_at).unwrap_or_default() <= self.stale_after;
            if fresh {
                for family in &metrics.families {
                    for sample in &family.samples {
                        visit(
                            agent,
                            metrics.received_at,
                            &family.name,
                            &sample.labels,
                            sample.value,
                        );
                    }
                }
            }
            let seconds = metrics
                .received_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_secs_f64())
                .unwrap_or(0.0);
            visit(
                agent,
                now,
                "countywatch_agent_last_seen_timestamp_seconds",
                &[],
                seconds,
            );
        }
    }

    /// The agents known, with the time of their last batch, sorted by name.
    pub fn agents(&self) -> Vec<(String, SystemTime)> {
        let agents = self
            .agents
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut list: Vec<(String, SystemTime)> = agents
            .iter()
            .map(|(name, metrics)| (name.clone(), metrics.received_at))
            .collect();
        list.sort();
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(name: &str, kind: MetricKind, value: f64) -> MetricFamily {
        MetricFamily::single(name, "help", kind, value)
    }

    #[test]
    fn families_are_grouped_across_agents_and_labelled() {
        let store = MetricStore::new(Duration::from_secs(60));
        store.update("b", vec![family("node_load1", MetricKind::Gauge, 2.0)]);
        store.update(
            "a",
            vec![
                family("node_load1", MetricKind::Gauge, 1.0),
                family("up_x", MetricKind::Gauge, 1.0),
            ],
        );
        let mut out = String::new();
        let fresh = store.write_text(&mut out, SystemTime::now());
        assert_eq!(fresh, 2);
        let lines: Vec<&str> = out
            .lines()
            .filter(|line| !line.starts_with("countywatch_agent_last_seen"))
            .collect();
        assert_eq!(
            &lines[..6],
            &[
                "# HELP node_load1 help",
                "# TYPE node_load1 gauge",
                "node_load1{instance=\"a\",job=\"countywatch\"} 1",
                "node_load1{instance=\"b\",job=\"countywatch\"} 2",
                "# HELP up_x help",
                "# TYPE up_x gauge",
            ]
        );
    }

    #[test]
    fn a_conflicting_type_from_another_agent_is_left_out() {
        let store = MetricStore::new(Duration::from_secs(60));
        store.update("a", vec![family("x", MetricKind::Gauge, 1.0)]);
        store.update("b", vec![family("x", MetricKind::Counter, 5.0)]);
        let mut out = String::new();
        store.write_text(&mut out, SystemTime::now());
        assert!(out.contains("x{instance=\"a\",job=\"countywatch\"} 1"));
        assert!(!out.contains("instance=\"b\",job=\"countywatch\"} 5"));
    }

    #[test]
    fn stale_agents_disappear_but_keep_their_last_seen() {
        let store = MetricStore::new(Duration::from_secs(60));
        store.update("a", vec![family("node_load1", MetricKind::Gauge, 1.0)]);
        let mut out = String::new();
        let later = SystemTime::now() + Duration::from_secs(120);
        assert_eq!(store.write_text(&mut out, later), 0);
        assert!(!out.contains("node_load1"));
        assert!(out.contains(
            "countywatch_agent_last_seen_timestamp_seconds{job=\"countywatch\",instance=\"a\"}"
        ));
    }
}
