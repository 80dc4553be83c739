//! Security events end to end: auth-log lines written on the "host" reach
//! the collector as events (`countywatch_ingest_events_total`), exactly
//! once, across an agent killed with SIGKILL mid-stream and a log rotation.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use countywatch_e2e::process::wait_until;
use countywatch_e2e::{Agent, Collector};

/// An agent config reading only `log`, with FIM and ports off so that
/// nothing on the test machine adds events to the exact count.
fn config(log: &Path) -> String {
    format!(
        "interval: 1s\ncollector:\n  timeout: 2s\nsources:\n  auth:\n    paths: [{}]\n    read_existing: true\n  fim:\n    enabled: false\n  ports:\n    enabled: false\n",
        log.display()
    )
}

fn append_lines(log: &Path, first: usize, count: usize) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut text = String::new();
    for index in first..first + count {
        text.push_str(&format!(
            "Nov 28 01:00:00 web-01 sshd[{index}]: Failed password for invalid user u{index} from 192.0.2.{} port {} ssh2\n",
            index % 250 + 1,
            1024 + index
        ));
        // A line no parser knows, counted by the agent, not sent.
        text.push_str("Nov 28 01:00:00 web-01 systemd-logind[1]: New session of user x.\n");
    }
    file.write_all(text.as_bytes()).unwrap();
}

fn events_at(collector: &Collector) -> f64 {
    countywatch_e2e::http::sample_value(&collector.metrics(), "countywatch_ingest_events_total")
        .unwrap_or(0.0)
}

fn wait_for_events(collector: &Collector, expected: f64) -> f64 {
    let mut seen = 0.0;
    wait_until(Duration::from_secs(60), || {
        seen = events_at(collector);
        seen >= expected
    });
    seen
}

#[test]
fn auth_events_reach_the_collector_and_unknown_lines_are_counted() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append_lines(&log, 0, 25);
    let _agent = Agent::start_with_state(
        "events-host",
        &collector,
        &config(&log),
        &dir.path().join("state"),
    );
    assert_eq!(wait_for_events(&collector, 25.0), 25.0);
    let unknown = collector.wait_for_series(
        "countywatch_agent_auth_lines_not_understood_total{instance=\"events-host\",job=\"countywatch\"}",
        Duration::from_secs(30),
    );
    assert_eq!(unknown, Some(25.0));
    let produced = collector.wait_for_series(
        "countywatch_agent_events_total{instance=\"events-host\",job=\"countywatch\",source=\"auth\",kind=\"ssh_login_failed\"}",
        Duration::from_secs(30),
    );
    assert_eq!(produced, Some(25.0));
}

/// The offset the agent committed for `log`, from its state file.
fn committed_offset(state: &Path, log: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(state.join("sources/auth-positions.json")).ok()?;
    let positions: serde_json::Value = serde_json::from_str(&text).ok()?;
    positions[log.to_str()?]["offset"].as_u64()
}

#[test]
fn a_killed_agent_neither_loses_nor_repeats_events_across_a_rotation() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let state = dir.path().join("state");
    append_lines(&log, 0, 100);
    let agent = Agent::start_with_state("kill-host", &collector, &config(&log), &state);
    assert_eq!(wait_for_events(&collector, 100.0), 100.0);
    // The collector counts a batch before the agent hears the answer and
    // commits the positions; wait for that commit.
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(wait_until(Duration::from_secs(30), || {
        committed_offset(&state, &log) == Some(size)
    }));

    // Lines arrive that the agent never gets to send: it dies without
    // warning (frozen first, so the point of death is known)...
    agent.freeze();
    append_lines(&log, 100, 50);
    agent.kill();
    append_lines(&log, 150, 50);
    // ...and the log is rotated before it comes back.
    std::fs::rename(&log, dir.path().join("auth.log.1")).unwrap();
    append_lines(&log, 200, 50);
    let _agent = Agent::start_with_state("kill-host", &collector, &config(&log), &state);
    assert_eq!(wait_for_events(&collector, 250.0), 250.0);
    // Give a duplicate time to show up before declaring there is none.
    std::thread::sleep(Duration::from_secs(3));
    // FIXME(issue 3): a kill between the collector counting a batch and
    // the agent committing its positions resends that batch after the
    // restart (at-least-once); the durable spool with sequence
    // deduplication makes that window exact too.
    assert_eq!(events_at(&collector), 250.0);
}
