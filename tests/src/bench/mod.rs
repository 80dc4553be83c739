//! The benchmark harness: each benchmark is one file here, registered in
//! [`ALL`], and prints its figures as `NAME: VALUE UNIT`, followed by
//! `(PEER: VALUE UNIT, ratio R)` when it measured a peer in the same run.
//!
//! Benchmarks are never part of the test suite's pass or fail; their
//! figures go into `docs/benchmarks.md` with the machine, date and command.

mod agent_footprint;
mod auth_replay;
mod decision_polls;
mod detect_engine;
mod incident_store;
mod ingest;
mod metrics_scrape;
mod noise_day;
mod notify_latency;
mod outputs;
mod replay_memory;
mod report_history;
mod response_latency;
mod rule_eval;
mod snmp_poll;
mod syslog_flood;
mod wire_codec;

use std::fmt;

/// One measured figure, with its peer's figure when one was measured.
pub struct Figure {
    /// What was measured, e.g. `ingest_batches_per_second`.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit, e.g. `batches/s`, `MiB`, `ms`.
    pub unit: String,
    /// The same figure for the peer (name, value), same unit.
    pub peer: Option<(String, f64)>,
}

impl Figure {
    /// A figure without a peer.
    pub fn new(name: &str, value: f64, unit: &str) -> Figure {
        Figure {
            name: name.to_string(),
            value,
            unit: unit.to_string(),
            peer: None,
        }
    }

    /// Adds the peer's value for the same figure.
    pub fn with_peer(mut self, peer: &str, value: f64) -> Figure {
        self.peer = Some((peer.to_string(), value));
        self
    }
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} {}", self.name, round(self.value), self.unit)?;
        if let Some((peer, value)) = &self.peer {
            let ratio = if *value == 0.0 {
                f64::NAN
            } else {
                self.value / value
            };
            write!(
                f,
                " ({peer}: {} {}, ratio {:.3})",
                round(*value),
                self.unit,
                ratio
            )?;
        }
        Ok(())
    }
}

fn round(value: f64) -> String {
    if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
    }
}

/// The value at `fraction` (0.5, 0.99) of `sorted` (nearest rank), NaN
/// when there is none.
pub(crate) fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The user plus system CPU time process `pid` has used so far, seconds
/// (fields 14 and 15 of proc(5)'s `/proc/PID/stat`, clock ticks).
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // fields[0] is field 3.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / rustix::param::clock_ticks_per_second() as f64
}

/// A benchmark: its name and the function that runs it.
pub struct Benchmark {
    /// Name given on the command line.
    pub name: &'static str,
    /// One line saying what it measures.
    pub about: &'static str,
    /// Runs it and returns its figures.
    pub run: fn() -> Vec<Figure>,
}

/// Every benchmark. Adding one means adding a file and one line here.
pub const ALL: &[Benchmark] = &[
    wire_codec::BENCHMARK,
    ingest::BENCHMARK,
    agent_footprint::BENCHMARK,
    auth_replay::BENCHMARK,
    notify_latency::BENCHMARK,
    rule_eval::BENCHMARK,
    outputs::BENCHMARK,
    metrics_scrape::BENCHMARK,
    incident_store::BENCHMARK,
    syslog_flood::BENCHMARK,
    snmp_poll::BENCHMARK,
    detect_engine::BENCHMARK,
    replay_memory::BENCHMARK,
    noise_day::BENCHMARK,
    report_history::BENCHMARK,
    response_latency::BENCHMARK,
    decision_polls::BENCHMARK,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_print_with_peer_and_ratio() {
        let figure = Figure::new("rss_peak", 10.0, "MiB").with_peer("node_exporter", 20.0);
        assert_eq!(
            figure.to_string(),
            "rss_peak: 10.000 MiB (node_exporter: 20.000 MiB, ratio 0.500)"
        );
        assert_eq!(
            Figure::new("x", 1234.4, "lines/s").to_string(),
            "x: 1234 lines/s"
        );
    }
}
