//! Security events end to end: auth-log lines written on the "host" reach
//! the collector as stored events (`countywatch_ingest_events_total` and the
//! registry), exactly once, across an agent killed with SIGKILL mid-stream
//! and a log rotation while it was down.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use countywatch_e2e::process::{TEST_AGENT_CONFIG, enroll, wait_until};
use countywatch_e2e::{Agent, Collector};

/// The test agent config reading only `log`, with FIM and ports off so that
/// nothing else on the test machine adds events to the exact count.
pub(crate) fn config(log: &Path) -> String {
    format!(
        "{TEST_AGENT_CONFIG}sources:\n  auth:\n    paths: [{}]\n    read_existing: true\n  fim:\n    enabled: false\n  ports:\n    enabled: false\n",
        log.display()
    )
}

/// Enrols `name` with `collector` and starts it with `config`.
pub(crate) fn start_agent(name: &str, collector: &Collector, config: &str) -> Agent {
    start_agent_wrapped(name, collector, config, &[])
}

/// Like [`start_agent`], the binary run through `wrapper` (`env TZ=...`).
pub(crate) fn start_agent_wrapped(
    name: &str,
    collector: &Collector,
    config: &str,
    wrapper: &[&str],
) -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = enroll(
        &collector.enroll_url(),
        &collector.token(None),
        &collector.ca_sha256,
        Some(name),
        &dir.path().join("state"),
    );
    assert_eq!(code, 0, "enrolment failed: {stderr}");
    Agent::start_wrapped(dir, config, wrapper)
}

/// `Mmm dd hh:mm:ss` (RFC 3164, day space-padded) of `seconds` since the
/// epoch at UTC offset `hours`.
pub(crate) fn rfc3164_stamp(seconds: i64, hours: i8) -> String {
    let time = time::OffsetDateTime::from_unix_timestamp(seconds)
        .unwrap()
        .to_offset(time::UtcOffset::from_hms(hours, 0, 0).unwrap());
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[usize::from(u8::from(time.month())) - 1],
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

/// The stored events of `agent` from `source`, as JSON bodies, oldest first.
pub(crate) fn stored(collector: &Collector, agent: &str, source: &str) -> Vec<serde_json::Value> {
    let database = collector.database();
    let mut statement = database
        .prepare("SELECT body FROM events WHERE agent = ?1 AND source = ?2 ORDER BY id")
        .unwrap();
    statement
        .query_map([agent, source], |row| row.get::<_, String>(0))
        .unwrap()
        .map(|body| serde_json::from_str(&body.unwrap()).unwrap())
        .collect()
}

pub(crate) fn append_lines(log: &Path, first: usize, count: usize) {
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

pub(crate) fn wait_for_events(collector: &Collector, agent: &str, expected: i64) -> i64 {
    let mut seen = 0;
    wait_until(Duration::from_secs(60), || {
        seen = collector.event_count(agent, "ssh_login_failed");
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
    let _agent = start_agent("events-host", &collector, &config(&log));
    assert_eq!(wait_for_events(&collector, "events-host", 25), 25);
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
    let ingested = countywatch_e2e::http::sample_value(
        &collector.metrics(),
        "countywatch_ingest_events_total",
    );
    assert_eq!(ingested, Some(25.0));
}

#[test]
fn a_killed_agent_neither_loses_nor_repeats_events_across_a_rotation() {
    let collector = Collector::start();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("auth.log");
    let config = config(&log);
    append_lines(&log, 0, 100);
    let agent = start_agent("kill-host", &collector, &config);
    assert_eq!(wait_for_events(&collector, "kill-host", 100), 100);

    // Lines keep coming while the agent dies without warning, at whatever
    // point of reading, spooling or sending it happens to be...
    append_lines(&log, 100, 50);
    std::thread::sleep(Duration::from_millis(700));
    let dir = agent.kill();
    append_lines(&log, 150, 50);
    // ...and the log is rotated before it comes back.
    std::fs::rename(&log, logs.path().join("auth.log.1")).unwrap();
    append_lines(&log, 200, 50);
    let _agent = Agent::start_in(dir, &config);
    assert_eq!(wait_for_events(&collector, "kill-host", 250), 250);
    // Give a duplicate time to show up before declaring there is none.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(collector.event_count("kill-host", "ssh_login_failed"), 250);
    let users: i64 = collector
        .database()
        .query_row(
            "SELECT COUNT(DISTINCT json_extract(body, '$.fields.user')) FROM events WHERE agent = 'kill-host'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(users, 250, "every line exactly once");
}
