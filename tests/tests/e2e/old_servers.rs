//! Servers too old to run the agent (CentOS/RHEL 4-6): their log lines, in
//! the formats OpenSSH before 7.3 and RHEL 4-5's `NAME(pam_unix)` write,
//! reach a running agent both ways a county has them: in a tailed
//! `/var/log/secure`, and forwarded by a real util-linux `logger` to the
//! agent's syslog receiver (RFC 3164 over TCP, written in Shanghai time,
//! and RFC 5424 over UDP). Both give the same events, with the right kind,
//! user and address or host name; the forwarded ones carry the sending
//! server's host name as host and device, and their understood-and-ignored
//! lines are counted apart from the not understood.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use countywatch_e2e::Collector;
use countywatch_e2e::process::{TEST_AGENT_CONFIG, wait_until};

use crate::events::{rfc3164_stamp, start_agent, stored};
use crate::syslog::logger_in_zone;

/// (program, pid, message) as the old servers log them.
const LINES: &[(&str, u32, &str)] = &[
    ("sshd", 2412, "Invalid user oracle from 192.0.2.44"),
    (
        "sshd",
        2412,
        "Failed password for invalid user oracle from 192.0.2.44 port 51234 ssh2",
    ),
    (
        "sshd",
        2413,
        "Did not receive identification string from 192.0.2.44",
    ),
    (
        "sshd",
        2414,
        "Received disconnect from 192.0.2.44: 11: Bye Bye",
    ),
    (
        "sshd",
        2415,
        "reverse mapping checking getaddrinfo for host-44.example.net [192.0.2.44] failed - POSSIBLE BREAK-IN ATTEMPT!",
    ),
    (
        "sshd",
        2415,
        "Address 192.0.2.44 maps to host-44.example.net, but this does not map back to the address - POSSIBLE BREAK-IN ATTEMPT!",
    ),
    (
        "sshd(pam_unix)",
        2416,
        "authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=host-44.example.net user=root",
    ),
    ("sshd(pam_unix)", 2416, "check pass; user unknown"),
    (
        "sshd(pam_unix)",
        2416,
        "3 more authentication failures; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=192.0.2.44  user=root",
    ),
    (
        "su(pam_unix)",
        2500,
        "session opened for user root by alice(uid=500)",
    ),
    ("sshd(pam_unix)", 2600, "session closed for user alice"),
    (
        "login(pam_unix)",
        2700,
        "authentication failure; logname=LOGIN uid=0 euid=0 tty=tty1 ruser= rhost=  user=root",
    ),
    (
        "ftpd",
        2800,
        "authentication failure; logname= uid=0 euid=0 tty= ruser= rhost=192.0.2.45 user=ftp1",
    ),
];

/// The events LINES must give, sorted: (kind, user, src_ip or src_host).
fn expected() -> Vec<(String, String, String)> {
    let mut expected: Vec<(String, String, String)> = [
        ("ssh_invalid_user", "oracle", "192.0.2.44"),
        ("ssh_login_failed", "oracle", "192.0.2.44"),
        ("ssh_possible_break_in", "", "192.0.2.44"),
        ("ssh_possible_break_in", "", "192.0.2.44"),
        ("pam_auth_failed", "root", "host-44.example.net"),
        ("pam_auth_failed", "root", "192.0.2.44"),
        ("pam_auth_failed", "root", "192.0.2.44"),
        ("pam_auth_failed", "root", "192.0.2.44"),
        ("su", "alice", ""),
        ("pam_auth_failed", "root", ""),
        ("pam_auth_failed", "ftp1", "192.0.2.45"),
    ]
    .iter()
    .map(|(kind, user, remote)| (kind.to_string(), user.to_string(), remote.to_string()))
    .collect();
    expected.sort();
    expected
}

/// (kind, user, src_ip or src_host) of stored events, sorted.
fn summary(events: &[&serde_json::Value]) -> Vec<(String, String, String)> {
    let text = |value: &serde_json::Value| value.as_str().unwrap_or_default().to_string();
    let mut summary: Vec<(String, String, String)> = events
        .iter()
        .map(|event| {
            let fields = &event["fields"];
            let remote = if fields["src_ip"].is_string() {
                text(&fields["src_ip"])
            } else {
                text(&fields["src_host"])
            };
            (text(&event["kind"]), text(&fields["user"]), remote)
        })
        .collect();
    summary.sort();
    summary
}

/// Sends one line with `logger` under `TZ=Asia/Shanghai`.
fn logger(address: SocketAddr, transport: &[&str], program: &str, pid: u32, message: &str) {
    let id = format!("--id={pid}");
    let mut arguments = transport.to_vec();
    arguments.extend(["-p", "authpriv.notice", "-t", program, &id]);
    logger_in_zone(address, "Asia/Shanghai", &arguments, message);
}

#[test]
fn old_openssh_and_rhel4_pam_lines_give_the_same_events_tailed_and_forwarded_by_logger() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let secure = dir.path().join("secure");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let stamp = rfc3164_stamp(now - 600, 0);
    let mut text = String::new();
    for (program, pid, message) in LINES {
        text.push_str(&format!("{stamp} old-db {program}[{pid}]: {message}\n"));
    }
    std::fs::write(&secure, text).unwrap();
    let config = format!(
        "{TEST_AGENT_CONFIG}sources:\n  auth:\n    paths: [{}]\n    read_existing: true\n    timezone: UTC\n  fim:\n    enabled: false\n  ports:\n    enabled: false\n  syslog:\n    udp: 127.0.0.1:0\n    tcp: 127.0.0.1:0\n    allow: [127.0.0.1/32]\n    timezone: Asia/Shanghai\n",
        secure.display()
    );
    let agent = start_agent("relay-host", &collector, &config);
    let (udp, tcp) = agent.syslog_addresses();
    for (index, (program, pid, message)) in LINES.iter().enumerate() {
        // Most as rsyslog's traditional forwarding (RFC 3164) over TCP,
        // every third as RFC 5424 over UDP.
        if index % 3 == 2 {
            logger(udp, &["-d", "--rfc5424"], program, *pid, message);
        } else {
            logger(tcp, &["-T", "--rfc3164"], program, *pid, message);
        }
    }
    let forwarded_from = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_ascii_lowercase();
    let mut events = Vec::new();
    wait_until(Duration::from_secs(60), || {
        events = stored(&collector, "relay-host", "auth");
        events.len() >= 2 * expected().len()
    });
    let (forwarded, tailed): (Vec<&serde_json::Value>, Vec<&serde_json::Value>) = events
        .iter()
        .partition(|event| event["fields"]["device"].is_string());
    assert_eq!(summary(&tailed), expected(), "tailed: {tailed:?}");
    assert_eq!(summary(&forwarded), expected(), "forwarded: {forwarded:?}");
    for event in &tailed {
        assert_eq!(event["timestamp_ms"].as_i64(), Some((now - 600) * 1_000));
    }
    for event in &forwarded {
        assert_eq!(
            event["fields"]["device"].as_str(),
            Some(forwarded_from.as_str()),
            "{event}"
        );
        assert!(
            event["fields"]["path"]
                .as_str()
                .is_some_and(|path| path.starts_with("syslog:127.0.0.1")),
            "{event}"
        );
        // Shanghai time read as Shanghai time: the true instant, never
        // restamped as clock skew.
        let stamp = event["timestamp_ms"].as_i64().unwrap();
        assert!(
            (now * 1_000 - 5_000..now * 1_000 + 120_000).contains(&stamp),
            "{event}"
        );
    }
    let metric = |series: &str| countywatch_e2e::http::sample_value(&collector.metrics(), series);
    let auth_lines = |result: &str| {
        metric(&format!(
            "countywatch_agent_syslog_auth_lines_total{{instance=\"relay-host\",job=\"countywatch\",result=\"{result}\"}}"
        ))
    };
    wait_until(Duration::from_secs(30), || {
        auth_lines("ignored") == Some(4.0)
    });
    assert_eq!(auth_lines("event"), Some(9.0));
    assert_eq!(auth_lines("ignored"), Some(4.0));
    assert_eq!(auth_lines("not_understood"), Some(0.0));
    assert_eq!(
        metric(
            "countywatch_agent_events_clock_skew_total{instance=\"relay-host\",job=\"countywatch\",source=\"syslog\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        metric(
            "countywatch_agent_auth_lines_ignored_total{instance=\"relay-host\",job=\"countywatch\"}"
        ),
        Some(4.0)
    );
    assert_eq!(
        metric(
            "countywatch_agent_auth_lines_not_understood_total{instance=\"relay-host\",job=\"countywatch\"}"
        ),
        Some(0.0)
    );
}

/// Kills the rsyslogd this test started when the test ends, pass or fail.
struct Rsyslogd(std::process::Child);

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_two_line_rsyslog_forwarding_of_docs_deploy_reaches_the_agent() {
    let collector = Collector::start();
    let config = format!(
        "{TEST_AGENT_CONFIG}sources:\n  auth:\n    enabled: false\n  fim:\n    enabled: false\n  ports:\n    enabled: false\n  syslog:\n    udp: 127.0.0.1:0\n    tcp: 127.0.0.1:0\n    allow: [127.0.0.1/32]\n    timezone: Asia/Shanghai\n"
    );
    let agent = start_agent("rsyslog-relay", &collector, &config);
    let (_, tcp) = agent.syslog_addresses();
    // rsyslog stands in for the old server: it takes local messages on a
    // UDP port (as its /dev/log would) and forwards with the two lines
    // docs/deploy.md gives, in its default (traditional) format.
    let dir = tempfile::tempdir().unwrap();
    let input = countywatch_e2e::peer::free_port();
    let conf = dir.path().join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            "$WorkDirectory {}\nmodule(load=\"imudp\")\ninput(type=\"imudp\" address=\"127.0.0.1\" port=\"{input}\")\n$ActionQueueType LinkedList\nauthpriv.*;auth.*  @@127.0.0.1:{}\n",
            dir.path().display(),
            tcp.port()
        ),
    )
    .unwrap();
    let _rsyslogd = Rsyslogd(
        Command::new("rsyslogd")
            .env("TZ", "Asia/Shanghai")
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("rsyslogd (tests/run.sh installs rsyslog)"),
    );
    let to_rsyslog = SocketAddr::from(([127, 0, 0, 1], input));
    let mut events = Vec::new();
    // rsyslog may take a moment to bind: send until the events arrive
    // (the agent's counts below say how many sends got through).
    let sent = wait_until(Duration::from_secs(60), || {
        logger(
            to_rsyslog,
            &["-d", "--rfc3164"],
            "sshd(pam_unix)",
            3100,
            "2 more authentication failures; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=host-44.example.net  user=root",
        );
        logger(
            to_rsyslog,
            &["-d", "--rfc3164"],
            "sshd",
            3101,
            "Invalid user oracle from 192.0.2.44",
        );
        std::thread::sleep(Duration::from_millis(500));
        events = stored(&collector, "rsyslog-relay", "auth");
        events.len() >= 3
    });
    assert!(sent, "nothing forwarded by rsyslog reached the collector");
    let first: Vec<&serde_json::Value> = events.iter().take(3).collect();
    let mut kinds: Vec<&str> = first
        .iter()
        .map(|event| event["kind"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["pam_auth_failed", "pam_auth_failed", "ssh_invalid_user"],
        "{events:?}"
    );
    for event in &first {
        assert!(event["fields"]["device"].is_string(), "{event}");
        let stamp = event["timestamp_ms"].as_i64().unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert!((now - 120_000..now + 5_000).contains(&stamp), "{event}");
    }
}
