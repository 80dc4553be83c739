//! The latest metrics of every agent, and their exposition on `/metrics`.
//!
//! Each batch replaces its agent's previous metrics (agents send counters
//! since boot, not deltas, so the latest value is the whole truth): a series
//! the agent stops reporting is gone from the next scrape. An agent silent
//! for `metrics.stale_after` has all its series dropped (only its
//! `countywatch_agent_last_seen_timestamp_seconds` stays), so dashboards do
//! not show a dead host's frozen values. Families of the same name from
//! different agents are written together, as the text format requires,
//! each sample labelled with `instance` and `job` and stamped with the time
//! the agent collected it.
//!
//! A scrape renders from a snapshot: under the read lock it only copies
//! each agent's name and an `Arc` of its families, then formats with no lock
//! held, so ingest (which takes the write lock) never waits for the
//! formatting of a thousand agents' series.
//!
//! A network device's series (polled by an agent over SNMP) carries the
//! device as `instance` and the agent in `agent` (`exposed_labels`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use countywatch_wire::{
    LabelText, MetricFamily, MetricKind, write_agent_samples, write_family_header, write_samples_at,
};

/// The `job` label of every agent metric.
pub const JOB: &str = "countywatch";

/// What one agent last reported. Cheap to clone: the families are shared.
#[derive(Clone)]
struct AgentMetrics {
    /// Its families, as sent, shared with snapshots being rendered.
    families: Arc<Vec<MetricFamily>>,
    /// When its last batch arrived.
    received_at: SystemTime,
    /// When the agent collected the families, in milliseconds since the
    /// Unix epoch: the samples' timestamp on `/metrics`.
    collected_at_ms: i64,
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

    /// Replaces `agent`'s metrics with a new batch's, collected at
    /// `collected_at_ms` (milliseconds since the Unix epoch).
    pub fn update(&self, agent: &str, families: Vec<MetricFamily>, collected_at_ms: i64) {
        let metrics = AgentMetrics {
            families: Arc::new(families),
            received_at: SystemTime::now(),
            collected_at_ms,
        };
        let mut agents = self
            .agents
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        let previous = agents.insert(agent.to_string(), metrics);
        // Free the previous families after the lock, not under it (unless a
        // snapshot being rendered still shares them, then it frees them).
        drop(agents);
        drop(previous);
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
                        families: Arc::new(Vec::new()),
                        received_at: SystemTime::now(),
                        collected_at_ms: 0,
                    },
                );
            }
        }
    }

    /// Every agent's entry, sorted by name, copied under the read lock
    /// (names and `Arc`s only) so that rendering holds no lock.
    fn snapshot(&self) -> Vec<(String, AgentMetrics)> {
        let agents = self
            .agents
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut snapshot: Vec<(String, AgentMetrics)> = agents
            .iter()
            .map(|(name, metrics)| (name.clone(), metrics.clone()))
            .collect();
        drop(agents);
        snapshot.sort_by(|a, b| a.0.cmp(&b.0));
        snapshot
    }

    /// Writes every agent's metrics in the Prometheus text format and
    /// returns how many agents were fresh enough to be written.
    pub fn write_text(&self, out: &mut String, now: SystemTime) -> usize {
        let snapshot = self.snapshot();
        let fresh: Vec<&(String, AgentMetrics)> = snapshot
            .iter()
            .filter(|(_, metrics)| {
                now.duration_since(metrics.received_at).unwrap_or_default() <= self.stale_after
            })
            .collect();

        // Group families by name across agents. The first agent to report a
        // name fixes its type; a family of the same name but another type
        // from another agent is left out rather than producing invalid text.
        let mut by_name: BTreeMap<&str, Vec<(&str, i64, &MetricFamily)>> = BTreeMap::new();
        for (agent, metrics) in &fresh {
            for family in metrics.families.iter() {
                by_name.entry(family.name.as_ref()).or_default().push((
                    agent.as_str(),
                    metrics.collected_at_ms,
                    family,
                ));
            }
        }
        for (_, members) in by_name {
            let Some((_, _, first)) = members.first() else {
                continue;
            };
            write_family_header(out, first);
            for (agent, collected_at_ms, family) in &members {
                if family.kind == first.kind {
                    let timestamp = (*collected_at_ms > 0).then_some(*collected_at_ms);
                    write_agent_samples(out, family, agent, JOB, timestamp);
                }
            }
        }

        let mut last_seen = MetricFamily::new(
            "countywatch_agent_last_seen_timestamp_seconds",
            "When the collector last received a batch from the agent, in Unix seconds.",
            MetricKind::Gauge,
        );
        for (name, metrics) in &snapshot {
            let seconds = metrics
                .received_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_secs_f64())
                .unwrap_or(0.0);
            last_seen.samples.push(countywatch_wire::Sample {
                labels: vec![("instance".into(), name.clone().into())],
                value: seconds,
            });
        }
        if !last_seen.samples.is_empty() {
            write_family_header(out, &last_seen);
            write_samples_at(out, &last_seen, &[("job", JOB)], None);
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
        mut visit: impl FnMut(&str, SystemTime, &str, &[(LabelText, LabelText)], f64),
    ) {
        for (agent, metrics) in &self.snapshot() {
            let fresh =
                now.duration_since(metrics.received_at).unwrap_or_default() <= self.stale_after;
            if fresh {
                for family in metrics.families.iter() {
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

    /// For each agent (fresh or not), the value of `label` on the first
    /// sample of its `family`: e.g. the version in
    /// `countywatch_agent_build_info`. Skips other families whole, so the
    /// agents page costs one pass over family names, not over every sample.
    pub fn label_per_agent(&self, family: &str, label: &str) -> HashMap<String, String> {
        let mut values = HashMap::new();
        for (agent, metrics) in self.snapshot() {
            let value = metrics
                .families
                .iter()
                .filter(|candidate| candidate.name == family)
                .flat_map(|family| family.samples.first())
                .find_map(|sample| {
                    sample
                        .labels
                        .iter()
                        .find(|(name, _)| name == label)
                        .map(|(_, value)| value.to_string())
                });
            if let Some(value) = value {
                values.insert(agent, value);
            }
        }
        values
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
        MetricFamily::single(name.to_string(), "help", kind, value)
    }

    #[test]
    fn families_are_grouped_across_agents_and_labelled() {
        let store = MetricStore::new(Duration::from_secs(60));
        store.update("b", vec![family("node_load1", MetricKind::Gauge, 2.0)], 0);
        store.update(
            "a",
            vec![
                family("node_load1", MetricKind::Gauge, 1.0),
                family("up_x", MetricKind::Gauge, 1.0),
            ],
            0,
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
    fn a_label_per_agent_is_read_from_the_named_family_only() {
        let store = MetricStore::new(Duration::from_secs(60));
        let mut info = MetricFamily::new("countywatch_agent_build_info", "help", MetricKind::Gauge);
        info.push(&[("version", "1.2.3")], 1.0);
        let mut decoy = MetricFamily::new("other_info", "help", MetricKind::Gauge);
        decoy.push(&[("version", "9.9.9")], 1.0);
        store.update("a", vec![decoy.clone(), info], 0);
        store.update("b", vec![decoy], 0);
        let versions = store.label_per_agent("countywatch_agent_build_info", "version");
        assert_eq!(versions.get("a").map(String::as_str), Some("1.2.3"));
        assert_eq!(versions.get("b"), None);
    }

    #[test]
    fn a_conflicting_type_from_another_agent_is_left_out() {
        let store = MetricStore::new(Duration::from_secs(60));
        store.update("a", vec![family("x", MetricKind::Gauge, 1.0)], 0);
        store.update("b", vec![family("x", MetricKind::Counter, 5.0)], 0);
        let mut out = String::new();
        store.write_text(&mut out, SystemTime::now());
        assert!(out.contains("x{instance=\"a\",job=\"countywatch\"} 1"));
        assert!(!out.contains("instance=\"b\",job=\"countywatch\"} 5"));
    }

    #[test]
    fn stale_agents_disappear_but_keep_their_last_seen() {
        let store = MetricStore::new(Duration::from_secs(60));
        store.update("a", vec![family("node_load1", MetricKind::Gauge, 1.0)], 0);
        let mut out = String::new();
        let later = SystemTime::now() + Duration::from_secs(120);
        assert_eq!(store.write_text(&mut out, later), 0);
        assert!(!out.contains("node_load1"));
        assert!(out.contains(
            "countywatch_agent_last_seen_timestamp_seconds{job=\"countywatch\",instance=\"a\"}"
        ));
    }

    #[test]
    fn samples_carry_the_agents_collection_time() {
        let store = MetricStore::new(Duration::from_secs(60));
        store.update(
            "a",
            vec![family("node_load1", MetricKind::Gauge, 1.0)],
            1_700_000_000_500,
        );
        let mut out = String::new();
        store.write_text(&mut out, SystemTime::now());
        assert!(
            out.contains("node_load1{instance=\"a\",job=\"countywatch\"} 1 1700000000500\n"),
            "{out}"
        );
    }

    #[test]
    fn a_series_the_agent_stops_reporting_is_gone_from_the_next_scrape() {
        let store = MetricStore::new(Duration::from_secs(60));
        let mut disk = MetricFamily::new("node_disk_io_now", "help", MetricKind::Gauge);
        disk.push(&[("device", "sda")], 1.0);
        disk.push(&[("device", "sdb")], 2.0);
        store.update("a", vec![disk.clone()], 1);
        disk.samples.truncate(1);
        store.update("a", vec![disk], 2);
        let mut out = String::new();
        store.write_text(&mut out, SystemTime::now());
        assert!(out.contains("device=\"sda\"} 1 2\n"), "{out}");
        assert!(!out.contains("sdb"), "{out}");
    }
}
