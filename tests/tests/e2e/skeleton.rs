//! The walking skeleton: an agent's host metrics reach the collector's
//! `/metrics` with the right labels and this host's real values.

use std::time::Duration;

use countywatch_e2e::http::sample_value;
use countywatch_e2e::{Agent, Collector};

fn meminfo_total_bytes() -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text
        .lines()
        .find(|line| line.starts_with("MemTotal:"))
        .unwrap();
    let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024.0
}

#[test]
fn host_memory_reaches_metrics_with_instance_and_job() {
    let collector = Collector::start();
    let _agent = Agent::start_for("e2e-host", &collector);
    let value = collector.wait_for_series(
        "node_memory_MemTotal_bytes{instance=\"e2e-host\",job=\"countywatch\"}",
        Duration::from_secs(30),
    );
    assert_eq!(value, Some(meminfo_total_bytes()));
    let text = collector.metrics();
    for series in [
        "node_load1{instance=\"e2e-host\",job=\"countywatch\"}",
        "node_cpu_seconds_total{instance=\"e2e-host\",job=\"countywatch\",cpu=\"0\",mode=\"idle\"}",
        "node_filesystem_size_bytes{instance=\"e2e-host\",job=\"countywatch\",device=",
        "node_network_receive_bytes_total{instance=\"e2e-host\",job=\"countywatch\",device=\"lo\"}",
        "countywatch_agent_last_seen_timestamp_seconds{job=\"countywatch\",instance=\"e2e-host\"}",
        "countywatch_ingest_requests_total{result=\"accepted\"}",
    ] {
        assert!(
            text.lines().any(|line| line.starts_with(series)),
            "no {series} in\n{text}"
        );
    }
}

#[test]
fn promtool_finds_only_node_exporter_naming_lints() {
    let collector = Collector::start();
    let _agent = Agent::start_for("lint-host", &collector);
    collector
        .wait_for_series(
            "node_load1{instance=\"lint-host\",job=\"countywatch\"}",
            Duration::from_secs(30),
        )
        .unwrap();
    let text = collector.metrics();
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed by tests/run.sh");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // node_exporter's meminfo and netstat names (node_memory_MemTotal_bytes)
    // are camelCase, and promtool lints that even on node_exporter itself.
    // Those names are the compatibility we promise; anything else is a real
    // error.
    let other: Vec<&str> = report
        .lines()
        .filter(|line| !countywatch_e2e::peer::is_node_exporter_lint(line))
        .collect();
    assert!(other.is_empty(), "promtool found:\n{}", other.join("\n"));
    assert!(
        report.contains("node_memory_MemTotal_bytes"),
        "the lint we tolerate should be there: {report}"
    );
}

#[test]
fn both_daemons_stop_cleanly_on_sigterm() {
    let collector = Collector::start();
    let agent = Agent::start_for("stop-host", &collector);
    collector
        .wait_for_series(
            "node_load1{instance=\"stop-host\",job=\"countywatch\"}",
            Duration::from_secs(30),
        )
        .unwrap();
    let agent_status = agent.terminate().expect("agent exited after SIGTERM");
    assert!(agent_status.success(), "{agent_status:?}");
    let collector_status = collector
        .terminate()
        .expect("collector exited after SIGTERM");
    assert!(collector_status.success(), "{collector_status:?}");
}

#[test]
fn enrolling_with_the_wrong_ca_fingerprint_fails_and_sends_nothing() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let token = collector.token(None);
    let wrong = "00".repeat(32);
    let (code, _, stderr) = countywatch_e2e::enroll(
        &collector.enroll_url(),
        &token,
        &wrong,
        Some("pinned-host"),
        dir.path(),
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!(
            "did not present a CA certificate with SHA-256 {wrong}"
        )),
        "{stderr}"
    );
    assert!(!dir.path().join("identity/agent.crt").exists());
    // The token was not spent on the impostor check: it still enrols.
    let (code, _, stderr) = countywatch_e2e::enroll(
        &collector.enroll_url(),
        &token,
        &collector.ca_sha256,
        Some("pinned-host"),
        dir.path(),
    );
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn metrics_of_two_agents_are_kept_apart() {
    let collector = Collector::start();
    let _one = Agent::start_for("host-one", &collector);
    let _two = Agent::start_for("host-two", &collector);
    for name in ["host-one", "host-two"] {
        let series =
            format!("node_memory_MemTotal_bytes{{instance=\"{name}\",job=\"countywatch\"}}");
        assert_eq!(
            collector.wait_for_series(&series, Duration::from_secs(30)),
            Some(meminfo_total_bytes())
        );
    }
    let text = collector.metrics();
    let help_lines = text
        .lines()
        .filter(|line| *line == "# TYPE node_load1 gauge")
        .count();
    assert_eq!(help_lines, 1, "one family header for both agents");
    assert!(sample_value(&text, "countywatch_agents_reporting").is_some());
}

#[test]
fn the_collector_survives_sighup() {
    let mut collector = Collector::start();
    let pid = rustix::process::Pid::from_raw(collector.pid() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    assert!(
        collector
            .logs
            .wait_for("SIGHUP", std::time::Duration::from_secs(10))
    );
    assert!(
        collector.is_running(),
        "systemctl reload must not end the collector"
    );
    assert!(collector.metrics().contains("countywatch_build_info"));
}
