//! A cut link: the agent in a network namespace of its own, joined to the
//! collector by a veth pair the test creates, and the link set down for two
//! minutes while the agent keeps reading new log lines. Every batch and
//! every event it produced meanwhile must arrive, once.
//!
//! Needs root and iproute2 (`tests/run.sh` installs it); the addresses are
//! the test's own hosts, inside the namespace it made, never anyone else's.

use std::process::Command;
use std::time::Duration;

use countywatch_e2e::netns::NetNs;
use countywatch_e2e::process::wait_until;
use countywatch_e2e::{Agent, Collector, binary};

use crate::events::{append_lines, config, wait_for_events};

#[test]
fn a_link_cut_for_two_minutes_loses_nothing() {
    // Test-only addresses, on the veth pair this test owns.
    let (host_address, agent_address) = ("10.231.7.1", "10.231.7.2");
    let link = NetNs::new("agt", host_address, agent_address);
    let listen = format!("{host_address}:0");
    let collector = Collector::start_with(
        Some(&format!(
            "ingest:\n  server_names: [\"{host_address}\"]\nagents:\n  silent_after: 1h\n"
        )),
        &["--ingest-listen", &listen, "--enroll-listen", &listen],
    );
    let dir = tempfile::tempdir().unwrap();
    let token = collector.token(Some("far-office"));
    let output = Command::new("ip")
        .args(["netns", "exec", &link.name])
        .arg(binary("countywatch-agent"))
        .args([
            "enroll",
            "--collector",
            &collector.enroll_url(),
            "--token",
            &token,
            "--ca-sha256",
            &collector.ca_sha256,
            "--state-dir",
        ])
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The agent tails a log the test writes (the namespace shares the file
    // system), so events are produced on both sides of the cut.
    let log = dir.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    let agent = Agent::start_wrapped(dir, &config(&log), &link.exec());
    let series = "node_load1{instance=\"far-office\",job=\"countywatch\"}";
    assert!(
        collector
            .wait_for_series(series, Duration::from_secs(30))
            .is_some()
    );
    append_lines(&log, 0, 50);

    link.set_link(false);
    // Two minutes without a link, five lines a second.
    for second in 0..120 {
        append_lines(&log, 50 + second * 5, 5);
        std::thread::sleep(Duration::from_secs(1));
    }
    let (waiting, _) = agent.spool_state();
    assert!(
        waiting >= 100,
        "two minutes at one batch a second should be spooled: {waiting}"
    );
    link.set_link(true);
    append_lines(&log, 650, 50);

    let mut handed_out = 0;
    assert!(
        wait_until(Duration::from_secs(120), || {
            let (waiting, last) = agent.spool_state();
            handed_out = last;
            waiting == 0
        }),
        "the spool should drain once the link is back"
    );
    let stored = collector.batch_sequence_numbers("far-office");
    let expected: Vec<i64> = (1..=*stored.last().unwrap()).collect();
    assert_eq!(stored, expected, "every batch once, no gap");
    assert!(*stored.last().unwrap() >= handed_out);
    assert_eq!(wait_for_events(&collector, "far-office", 700), 700);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        collector.event_count("far-office", "ssh_login_failed"),
        700,
        "every event once"
    );
    drop(agent);
}
