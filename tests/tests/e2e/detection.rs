//! Detection rules end to end (issue 7).
//!
//! - A synthetic OpenSSH auth log goes through the agent's parser
//!   (`countywatch-agent replay`) and the shipped packs
//!   (`countywatch-collector rules replay`): exactly the source addresses
//!   with >= 10 refused logins within 2 minutes raise `ssh_brute_force`.
//! - A collector with detection rules and a real agent tailing an auth log
//!   raises the alert through the notifier to a real SMTP server, and a
//!   collector restart in the middle of a 10-minute window still fires.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use countywatch_e2e::notify_peers::SmtpServer;
use countywatch_e2e::process::wait_until;
use countywatch_e2e::{Collector, binary};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A deterministic pseudo-random sequence (64-bit LCG), so the log is the
/// same in every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

/// `2026-11-02T10:MM:SS.000000+08:00` for `second` seconds after 10:00.
fn stamp(second: u64) -> String {
    format!(
        "2026-11-02T{:02}:{:02}:{:02}.000000+08:00",
        10 + second / 3600,
        second / 60 % 60,
        second % 60
    )
}

#[test]
fn replay_of_a_synthetic_openssh_log_raises_brute_force_for_exactly_the_addresses_over_the_threshold()
 {
    let mut random = Lcg(7);
    // (second, line) pairs, sorted into a chronological log afterwards.
    let mut lines: Vec<(u64, String)> = Vec::new();
    let mut failures: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for address_index in 0..120u64 {
        let address = format!("198.51.{}.{}", address_index / 200, address_index % 200 + 1);
        // Bursts of 5 to 14 failures, one to 25 seconds apart, some
        // addresses coming back for a second burst.
        let bursts = 1 + random.next(2);
        let mut second = random.next(3000);
        for _ in 0..bursts {
            for _ in 0..5 + random.next(10) {
                second += 1 + random.next(25);
                let port = 30_000 + random.next(30_000);
                let line = if random.next(3) == 0 {
                    format!(
                        "web1 sshd[{port}]: Failed password for invalid user guest{port} from {address} port {port} ssh2"
                    )
                } else {
                    format!(
                        "web1 sshd[{port}]: Failed password for root from {address} port {port} ssh2"
                    )
                };
                lines.push((second, line));
                failures.entry(address.clone()).or_default().push(second);
            }
            second += 600;
        }
        // Noise that is not a refused login: invalid-user probes and
        // closed connections.
        let noise = random.next(3000);
        lines.push((
            noise,
            format!("web1 sshd[9]: Invalid user oracle from {address} port 4242"),
        ));
        lines.push((noise, format!("web1 sshd[9]: Connection closed by authenticating user root {address} port 4243 [preauth]")));
    }
    // The trusted address fails a lot and must raise nothing.
    for second in 0..30 {
        lines.push((
            second,
            "web1 sshd[1]: Failed password for root from 127.0.0.1 port 5000 ssh2".to_string(),
        ));
    }
    lines.sort_by_key(|(second, _)| *second);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let mut text = String::new();
    for (second, line) in &lines {
        text.push_str(&format!("{} {line}\n", stamp(*second)));
    }
    std::fs::write(&log, text).unwrap();

    let expected: BTreeSet<String> = failures
        .iter()
        .filter(|(_, seconds)| seconds.windows(10).any(|run| run[9] - run[0] <= 120))
        .map(|(address, _)| address.clone())
        .collect();
    assert!(
        expected.len() >= 10 && expected.len() < failures.len(),
        "{} of {}",
        expected.len(),
        failures.len()
    );

    let events = dir.path().join("events.jsonl");
    let replayed = Command::new(binary("countywatch-agent"))
        .args(["replay", "--source", "auth"])
        .arg(&log)
        .stdout(std::fs::File::create(&events).unwrap())
        .output()
        .unwrap();
    assert!(
        replayed.status.success(),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    let output = Command::new(binary("countywatch-collector"))
        .args(["rules", "replay", "--json", "--events"])
        .arg(&events)
        .arg("--rules")
        .arg(repo().join("rules/detection"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let mut raised = BTreeSet::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let detection: serde_json::Value = serde_json::from_str(line).unwrap();
        if detection["rule_id"] == "ssh_brute_force" {
            let address = detection["labels"]["src_ip"].as_str().unwrap().to_string();
            assert_eq!(
                detection["evidence"].as_array().unwrap().len(),
                10,
                "{line}"
            );
            assert_eq!(detection["hosts"], serde_json::json!(["web1"]));
            raised.insert(address);
        }
    }
    assert_eq!(raised, expected, "{stderr}");
}

/// Appends refused logins from `address`, one second apart from `first`.
/// Appends `count` failed logins from `address`, the n-th stamped by
/// `stamp(first + n)`.
fn append_failures_stamped(
    log: &Path,
    address: &str,
    first: u64,
    count: u64,
    stamp: impl Fn(u64) -> String,
) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    for second in first..first + count {
        writeln!(
            file,
            "{} web1 sshd[{second}]: Failed password for root from {address} port {} ssh2",
            stamp(second),
            40_000 + second
        )
        .unwrap();
    }
}

/// An ISO-8601 UTC stamp `second` seconds after `start_unix`: for tests
/// whose events must be recent, because the collector's own events (audit
/// checkpoints) move the detection engine's clock to the present and a
/// window of last month's events would expire at once.
fn stamp_from(start_unix: i64, second: u64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(start_unix + second as i64).unwrap();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000000+00:00",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

fn detection_events_seen(collector: &Collector) -> f64 {
    countywatch_e2e::http::sample_value(&collector.metrics(), "countywatch_detection_events_total")
        .unwrap_or(0.0)
}

#[test]
fn a_detection_reaches_smtp_and_survives_a_collector_restart_mid_window() {
    let smtp = SmtpServer::plain();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("brute.yaml");
    // The shipped rule's shape with a 10-minute window.
    std::fs::write(
        &rules,
        "rules:\n  - id: ssh_brute_force_slow\n    title: 'SSH brute force from {{ $labels.src_ip }}'\n    severity: high\n    match: {kind: ssh_login_failed}\n    group_by: [src_ip]\n    max_groups: 1000\n    threshold: {count: 10, window: 10m}\n",
    )
    .unwrap();
    let config = format!(
        "detection:\n  builtin: false\n  rule_files: [{:?}]\n  save_every: 1s\n  from_beginning: true\nnotify:\n  route:\n    receiver: mail\n    group_by: [alertname, src_ip]\n    group_wait: 0s\n  receivers:\n  - name: mail\n    email_configs:\n      - to: [soc@county.test]\n        from: countywatch@county.test\n        smarthost: {}\n        tls: none\n        timeout: 5s\n",
        rules.display().to_string(),
        smtp.addr
    );
    let collector = Collector::start_with(Some(&config), &[]);
    let log = dir.path().join("auth.log");
    // Two minutes ago, so that the four below (two minutes after these)
    // are now: the window spans the restart in event time as in real life.
    let start = time::OffsetDateTime::now_utc().unix_timestamp() - 120;
    let recent = |second| stamp_from(start, second);
    append_failures_stamped(&log, "203.0.113.9", 0, 6, recent);
    let agent = crate::events::start_agent("detect-host", &collector, &crate::events::config(&log));
    assert!(
        wait_until(Duration::from_secs(60), || detection_events_seen(
            &collector
        ) >= 6.0),
        "{}",
        collector.metrics()
    );
    assert!(smtp.messages().is_empty());
    // Restart the collector: the six failures are in the saved window.
    let (ingest, enroll, data_dir) = (
        collector.ingest_addr,
        collector.enroll_addr,
        collector.data_dir.clone(),
    );
    let kept = collector.stop_keeping_data();
    let collector = Collector::restart(kept, &data_dir, ingest, enroll);
    assert!(
        collector
            .logs
            .wait_for("detection state restored", Duration::from_secs(10))
    );
    // The six events are behind the saved cursor: only the restored window
    // can make the next four fire.
    let restored = collector
        .logs
        .all()
        .into_iter()
        .find(|line| line.contains("detection state restored"))
        .unwrap();
    let restored: serde_json::Value = serde_json::from_str(&restored).unwrap();
    // The collector's own events (the first admin's audit checkpoint, sent
    // to the SIEM through the events table) share the ids, so the cursor is
    // at least the six failures, not exactly them.
    assert!(
        restored["cursor"]
            .as_i64()
            .is_some_and(|cursor| cursor >= 6)
            && restored["keys"].as_i64() == Some(1),
        "{restored}"
    );
    // Four more, minutes later but within the 10-minute window.
    append_failures_stamped(&log, "203.0.113.9", 120, 4, recent);
    let messages = smtp.wait_for(1, Duration::from_secs(90));
    assert_eq!(
        messages.len(),
        1,
        "{messages:#?}\n{}",
        collector.logs.all().join("\n")
    );
    let text = messages[0].to_string();
    assert!(text.contains("ssh_brute_force_slow"), "{text}");
    assert!(text.contains("203.0.113.9"), "{text}");
    // The incident with its evidence: all ten events, six from before the
    // restart, each linked to its stored event.
    let store = rusqlite::Connection::open(data_dir.join("incidents.db")).unwrap();
    let incidents: Vec<(i64, String, String)> = store
        .prepare("SELECT id, rule_id, group_key FROM incidents")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let (incident, rule, group_key) = &incidents[0];
    assert_eq!(rule, "ssh_brute_force_slow");
    assert_eq!(group_key, "src_ip=203.0.113.9");
    let (evidence, linked): (i64, i64) = store
        .query_row(
            "SELECT COUNT(*), COUNT(event_id) FROM evidence WHERE incident_id = ?1",
            [incident],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!((evidence, linked), (10, 10));
    let metrics = collector.metrics();
    assert!(
        metrics.contains(
            "countywatch_detections_total{rule=\"ssh_brute_force_slow\",severity=\"high\"} 1"
        ) && metrics.contains(
            "countywatch_incidents_opened_total{rule=\"ssh_brute_force_slow\",severity=\"high\"} 1"
        ) && metrics.contains("countywatch_incidents{severity=\"high\",status=\"open\"} 1"),
        "{metrics}"
    );
    drop(agent);
}

#[test]
fn rules_test_passes_for_every_shipped_detection_pack() {
    let dir = repo().join("rules/detection");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(".test.yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    let output = Command::new(binary("countywatch-collector"))
        .args(["rules", "test"])
        .args(&files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert_eq!(
        stdout.matches("  SUCCESS (").count(),
        files.len(),
        "{stdout}"
    );
    // The same command fails when a pack's expectation is wrong.
    let broken_dir = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join("ssh.yaml"), broken_dir.path().join("ssh.yaml")).unwrap();
    let test = std::fs::read_to_string(dir.join("ssh.test.yaml"))
        .unwrap()
        .replace("evidence: 10", "evidence: 9");
    std::fs::write(broken_dir.path().join("ssh.test.yaml"), test).unwrap();
    let output = Command::new(binary("countywatch-collector"))
        .args(["rules", "test"])
        .arg(broken_dir.path().join("ssh.test.yaml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("unexpected detection ssh_brute_force [src_ip=203.0.113.9]"),
        "{stdout}"
    );
}

#[test]
fn bad_detection_rules_are_refused_with_positions_by_check_and_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("bad.yaml");
    std::fs::write(
        &rules,
        "rules:\n  - id: a\n    title: t\n    severity: high\n    match: {kind: ssh_login_failed, colour: red}\n    group_by: [src_ip]\n    threshold: {count: 5, window: 0s}\n",
    )
    .unwrap();
    let output = Command::new(binary("countywatch-collector"))
        .args(["rules", "check"])
        .arg(&rules)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let path = rules.display().to_string();
    for expected in [
        format!("{path}:5:45: unknown field \"colour\""),
        format!("{path}:6:15: group_by src_ip can take very many values"),
        format!("{path}:7:35: window must be at least 1s"),
    ] {
        assert!(stdout.contains(&expected), "{expected}\n{stdout}");
    }
    let config = dir.path().join("collector.yaml");
    std::fs::write(&config, format!("detection:\n  rule_files: [{path:?}]\n")).unwrap();
    let output = Command::new(binary("countywatch-collector"))
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("detection.rule_files: {path}:5:45: unknown field")),
        "{stderr}"
    );
}

fn hangup(collector: &Collector) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(collector.pid()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
}

#[test]
fn detection_rules_reload_on_sighup_and_a_broken_file_keeps_the_running_rules() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    let rule = |id: &str| {
        format!(
            "rules:\n  - {{id: {id}, title: t, severity: low, match: {{kind: ssh_login_accepted}}}}\n"
        )
    };
    std::fs::write(&rules, rule("first")).unwrap();
    let config = format!(
        "detection:\n  rule_files: [{:?}]\n",
        rules.display().to_string()
    );
    let collector = Collector::start_with(Some(&config), &[]);
    std::fs::write(&rules, rule("second")).unwrap();
    hangup(&collector);
    assert!(
        collector
            .logs
            .wait_for("SIGHUP: detection rules reloaded", Duration::from_secs(10))
    );
    std::fs::write(
        &rules,
        "rules:\n  - {id: broken, title: t, severity: low, match: {colour: red}}\n",
    )
    .unwrap();
    hangup(&collector);
    assert!(
        collector
            .logs
            .wait_for("detection rules not reloaded", Duration::from_secs(10))
    );
    let failures = countywatch_e2e::http::sample_value(
        &collector.metrics(),
        "countywatch_detection_failures_total{stage=\"reload\"}",
    );
    assert_eq!(failures, Some(1.0));
    let line = collector
        .logs
        .all()
        .into_iter()
        .find(|line| line.contains("not reloaded"))
        .unwrap();
    assert!(line.contains("unknown field"), "{line}");
}

/// The `rules test` command runs the shipped packs' raw-line tests, and a
/// line that makes no event fails the file with its position (issue 7:
/// "raw log lines with their source parser").
#[test]
fn rules_test_reads_raw_log_lines_and_points_at_one_that_makes_no_event() {
    let packs = repo().join("rules/detection");
    let output = Command::new(binary("countywatch-collector"))
        .args(["rules", "test"])
        .arg(packs.join("ssh.test.yaml"))
        .arg(packs.join("network.test.yaml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert_eq!(stdout.matches("SUCCESS").count(), 2, "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let test_file = dir.path().join("typo.test.yaml");
    std::fs::write(
        &test_file,
        format!(
            "rule_files: [{:?}]\ntests:\n  - name: a typo in sshd's words\n    lines:\n      - {{parser: auth_log, text: \"sshd[1]: Faild password for root from 203.0.113.9 port 22 ssh2\"}}\n    expect: []\n",
            packs.join("ssh.yaml")
        ),
    )
    .unwrap();
    let output = Command::new(binary("countywatch-collector"))
        .args(["rules", "test"])
        .arg(&test_file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{}:5:9: test \"a typo in sshd's words\": auth_log line \"sshd[1]: Faild password",
            test_file.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("is not understood by the parser"),
        "{stdout}"
    );
}

/// `rules replay --calendar`: a login at 20:00 on a Monday in Shanghai is
/// outside the default working hours and inside a county's 08:00-21:00;
/// a bad line in between is reported by number and the rest replayed.
#[test]
fn rules_replay_backtests_with_the_countys_calendar_and_skips_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    // 2026-11-02T20:00:00+08:00 and five minutes later.
    let login = |at_ms: i64, user: &str| {
        format!(
            r#"{{"timestamp_ms":{at_ms},"host":"web1","source":"auth","kind":"ssh_login_accepted","fields":{{"user":"{user}","src_ip":"10.0.0.8"}}}}"#
        )
    };
    std::fs::write(
        &events,
        format!(
            "{}\n{{\"truncated\n{}\n",
            login(1_793_620_800_000, "alice"),
            login(1_793_621_100_000, "bob")
        ),
    )
    .unwrap();
    let calendar = dir.path().join("calendar.yaml");
    std::fs::write(
        &calendar,
        "timezone: Asia/Shanghai\nworkdays: [mon, tue, wed, thu, fri]\nstart: \"08:00\"\nend: \"21:00\"\n",
    )
    .unwrap();
    let replay_with = |calendar: Option<&Path>, config: Option<&Path>| {
        let mut command = Command::new(binary("countywatch-collector"));
        command
            .args(["rules", "replay", "--events"])
            .arg(&events)
            .arg("--rules")
            .arg(repo().join("rules/detection/ssh.yaml"));
        if let Some(calendar) = calendar {
            command.arg("--calendar").arg(calendar);
        }
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let output = command.output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let replay = |calendar: Option<&Path>| replay_with(calendar, None);
    let (code, stdout, stderr) = replay(None);
    let outside: Vec<&str> = stdout
        .lines()
        .filter(|line| line.contains("ssh_login_outside_working_hours"))
        .collect();
    assert_eq!(outside.len(), 2, "{stdout}");
    assert!(stderr.contains("line 2: not an event: "), "{stderr}");
    assert!(
        stderr.contains("2 events, 2 detections, 1 lines skipped"),
        "{stderr}"
    );
    assert_eq!(code, Some(1), "a skipped line makes the exit status 1");

    let (_, stdout, stderr) = replay(Some(&calendar));
    assert_eq!(stdout, "", "{stderr}");
    assert!(stderr.contains("2 events, 0 detections"), "{stderr}");

    // `--config`: times in its display zone (a zone no test host runs in,
    // so the host's cannot pass for it), the offset written.
    let config = dir.path().join("collector.yaml");
    std::fs::write(&config, "display:\n  timezone: America/Sao_Paulo\n").unwrap();
    let (code, stdout, stderr) = replay_with(None, Some(&config));
    assert_eq!(code, Some(1), "{stderr}");
    let first = stdout
        .lines()
        .find(|line| line.contains("ssh_login_outside_working_hours"))
        .unwrap_or_else(|| panic!("{stdout}{stderr}"));
    assert!(first.contains("2026-11-02 09:00:00 -03:00"), "{stdout}");
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "display:\n  timezone: Mars/Olympus\n").unwrap();
    let (code, stdout, stderr) = replay_with(None, Some(&broken));
    assert_ne!(code, Some(0), "{stdout}");
    assert!(stderr.contains("display.timezone"), "{stderr}");
}
