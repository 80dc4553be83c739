//! Syslog from network devices end to end: util-linux `logger` sends RFC
//! 3164 and RFC 5424 messages over UDP and TCP (newline and octet-counting
//! framing) to a real agent's receiver, and the events arrive in the real
//! collector's `events` table with their device fields. Senders outside the
//! allow-list (another loopback address) are dropped and counted, and a
//! flood larger than the agent's queue is accounted for message by message:
//! sent = accepted + counted drops, and every accepted message reaches the
//! collector. Oversized messages are dropped and counted; non-UTF-8 ones
//! are kept with replacement characters and flagged.

use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use countywatch_e2e::Collector;
use countywatch_e2e::process::{TEST_AGENT_CONFIG, wait_until};

use crate::events::start_agent;

/// The test agent config with only the syslog source, on loopback ports
/// the agent picks, accepting 127.0.0.1 only.
fn config(queue: usize) -> String {
    format!(
        "{TEST_AGENT_CONFIG}sources:\n  auth:\n    enabled: false\n  fim:\n    enabled: false\n  ports:\n    enabled: false\n  syslog:\n    udp: 127.0.0.1:0\n    tcp: 127.0.0.1:0\n    allow: [127.0.0.1/32]\n    queue: {queue}\n    max_message_bytes: 2048\n"
    )
}

/// Runs `logger` with `arguments` against `address`.
fn logger(address: SocketAddr, arguments: &[&str], message: &str) {
    logger_in_zone(address, "UTC", arguments, message);
}

/// Runs `logger` under `TZ=zone` (its RFC 3164 stamps are local time) with
/// `arguments` against `address`.
pub(crate) fn logger_in_zone(address: SocketAddr, zone: &str, arguments: &[&str], message: &str) {
    let port = address.port().to_string();
    let output = Command::new("logger")
        .env("TZ", zone)
        .args(["-n", "127.0.0.1", "-P", &port])
        .args(arguments)
        .arg(message)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "logger failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The stored syslog events of `agent`, as JSON bodies, oldest first.
fn stored(collector: &Collector, agent: &str) -> Vec<serde_json::Value> {
    crate::events::stored(collector, agent, "syslog")
}

fn agent_counter(collector: &Collector, agent: &str, result: &str) -> Option<f64> {
    countywatch_e2e::http::sample_value(
        &collector.metrics(),
        &format!(
            "countywatch_agent_syslog_messages_total{{instance=\"{agent}\",job=\"countywatch\",result=\"{result}\"}}"
        ),
    )
}

#[test]
fn logger_messages_over_udp_and_tcp_arrive_as_device_events() {
    let collector = Collector::start();
    let agent = start_agent("syslog-host", &collector, &config(20_000));
    let (udp, tcp) = agent.syslog_addresses();

    logger(
        udp,
        &["--udp", "--rfc3164", "-t", "cisco", "-p", "local7.warning"],
        "%SEC_LOGIN-4-LOGIN_FAILED: Login failed [user: admin] [Source: 203.0.113.5] [localport: 22] [Reason: Login Authentication Failed] at 10:56:24 UTC Wed Mar 3 2010",
    );
    logger(
        tcp,
        &[
            "--tcp",
            "--rfc5424",
            "-t",
            "vrp",
            "-p",
            "local7.notice",
            "--msgid",
            "IFNET",
        ],
        "%%01IFNET/4/LINK_STATE(l)[2]:The line protocol IP on the interface GigabitEthernet0/0/1 has entered the DOWN state.",
    );
    logger(
        tcp,
        &[
            "--tcp",
            "--octet-count",
            "--rfc5424",
            "-t",
            "ios",
            "-p",
            "local7.notice",
        ],
        "%SYS-5-CONFIG_I: Configured from console by ops on vty0 (192.0.2.10)",
    );
    logger(
        udp,
        &[
            "--udp",
            "--rfc5424",
            "-t",
            "firewall",
            "-p",
            "daemon.err",
            "--msgid",
            "POLICY",
        ],
        "policy reloaded",
    );
    logger(
        tcp,
        &["--tcp", "--rfc3164", "-t", "comware", "-p", "local6.info"],
        "%%10SSHS/6/SSHS_LOG: Authentication failed for user root from 198.51.100.7 port 16266 because of invalid username or wrong password.",
    );

    // Senders on another loopback address are outside the allow-list.
    let spoofed = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    spoofed
        .send_to(
            b"<13>Nov 28 01:02:03 x y: %SYS-5-CONFIG_I: Configured from console by eve",
            udp,
        )
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut stream = socket.connect(tcp).await.unwrap();
        // The agent closes the connection unread; the write may or may not
        // see that yet.
        let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, b"<13>x y: nope\n").await;
    });

    let mut events = Vec::new();
    wait_until(Duration::from_secs(60), || {
        events = stored(&collector, "syslog-host");
        events.len() >= 5
    });
    assert_eq!(events.len(), 5, "{events:#?}");
    let by_kind = |kind: &str| {
        events
            .iter()
            .filter(|event| event["kind"] == kind)
            .cloned()
            .collect::<Vec<_>>()
    };
    let failed = by_kind("device_login_failed");
    assert_eq!(failed.len(), 2, "{events:#?}");
    let cisco = failed
        .iter()
        .find(|event| event["fields"]["msg_id"] == "SEC_LOGIN-4-LOGIN_FAILED")
        .unwrap();
    assert_eq!(cisco["host"], "syslog-host");
    assert_eq!(cisco["fields"]["device"], "127.0.0.1");
    assert_eq!(cisco["fields"]["user"], "admin");
    assert_eq!(cisco["fields"]["src_ip"], "203.0.113.5");
    assert_eq!(cisco["fields"]["facility"], 23);
    assert_eq!(cisco["fields"]["syslog_severity"], 4);
    assert_eq!(cisco["fields"]["app_name"], "cisco");
    let h3c = failed
        .iter()
        .find(|event| event["fields"]["msg_id"] == "SSHS/6/SSHS_LOG")
        .unwrap();
    assert_eq!(h3c["fields"]["src_ip"], "198.51.100.7");
    assert_eq!(h3c["fields"]["src_port"], 16266);
    let down = by_kind("interface_down");
    assert_eq!(down.len(), 1);
    assert_eq!(down[0]["fields"]["interface"], "GigabitEthernet0/0/1");
    assert_eq!(down[0]["fields"]["msg_id"], "IFNET/4/LINK_STATE");
    let changed = by_kind("device_config_changed");
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["fields"]["user"], "ops");
    assert_eq!(changed[0]["fields"]["src_ip"], "192.0.2.10");
    let generic = by_kind("syslog_message");
    assert_eq!(generic.len(), 1);
    assert_eq!(generic[0]["fields"]["message"], "policy reloaded");
    assert_eq!(generic[0]["fields"]["msg_id"], "POLICY");
    assert_eq!(generic[0]["fields"]["app_name"], "firewall");
    assert_eq!(generic[0]["fields"]["facility"], 3);
    assert_eq!(generic[0]["fields"]["syslog_severity"], 3);

    // The spoofed datagram and connection were dropped and counted, not stored.
    let mut counts = (None, None);
    wait_until(Duration::from_secs(30), || {
        counts = (
            agent_counter(&collector, "syslog-host", "dropped_not_allowed"),
            agent_counter(&collector, "syslog-host", "accepted"),
        );
        counts == (Some(2.0), Some(5.0))
    });
    assert_eq!(counts, (Some(2.0), Some(5.0)));
    assert!(
        stored(&collector, "syslog-host")
            .iter()
            .all(|event| event["fields"]["user"] != "eve")
    );
}

#[test]
fn a_flood_over_tcp_is_accounted_for_message_by_message() {
    const SENT: u64 = 30_000;
    let collector = Collector::start();
    // A queue far smaller than the flood, so that some of it is dropped.
    let agent = start_agent("flood-host", &collector, &config(500));
    let (_, tcp) = agent.syslog_addresses();
    let mut stream = std::net::TcpStream::connect(tcp).unwrap();
    let mut text = Vec::new();
    for index in 0..SENT {
        let message = format!("<134>1 2026-11-28T01:02:03Z sw-1 flood - - - message {index}");
        text.extend_from_slice(format!("{} {message}", message.len()).as_bytes());
    }
    stream.write_all(&text).unwrap();
    drop(stream);
    // Every message read off the socket is accepted or dropped, counted.
    let mut accepted = 0.0;
    let mut dropped = 0.0;
    let counted = wait_until(Duration::from_secs(60), || {
        accepted = agent_counter(&collector, "flood-host", "accepted").unwrap_or(0.0);
        dropped = agent_counter(&collector, "flood-host", "dropped_queue_full").unwrap_or(0.0);
        accepted + dropped == SENT as f64
    });
    assert!(
        counted,
        "accepted {accepted} + dropped {dropped} != sent {SENT}"
    );
    for result in [
        "dropped_not_allowed",
        "dropped_oversize",
        "dropped_malformed",
    ] {
        assert_eq!(
            agent_counter(&collector, "flood-host", result),
            Some(0.0),
            "{result}"
        );
    }
    assert!(dropped > 0.0, "the queue of 500 should have overflowed");
    // Every accepted message reached the collector, exactly once.
    let mut events = 0;
    wait_until(Duration::from_secs(60), || {
        events = collector.event_count("flood-host", "syslog_message");
        events as f64 >= accepted
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        collector.event_count("flood-host", "syslog_message") as f64,
        accepted
    );
}

#[test]
fn replay_reads_device_messages_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("devices.log");
    std::fs::write(
        &file,
        "<189>52: *Mar  1 00:01:02.345: %LINK-3-UPDOWN: Interface GigabitEthernet0/1, changed state to down\n\
         <188>Nov 28 2026 01:02:03-08:00 HUAWEI %%01SSH/5/SSH_USER_LOGIN(s)[4]:The SSH user succeeded in logging in. (ServiceType=stelnet, UserName=ops, IPAddress=10.0.0.8, VpnInstanceName=_public_)\n\
         Nov 28 01:02:03 sw-9 something the parsers do not know\n",
    )
    .unwrap();
    let output = Command::new(countywatch_e2e::binary("countywatch-agent"))
        .args(["replay", "--source", "syslog", "--device", "sw-1"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(output.status.success());
    let events: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|event| event["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["interface_down", "device_login_succeeded", "syslog_message"]
    );
    assert!(
        events
            .iter()
            .all(|event| event["fields"]["device"] == "sw-1")
    );
    assert_eq!(events[1]["fields"]["src_ip"], "10.0.0.8");
    let summary = String::from_utf8(output.stderr).unwrap();
    assert!(summary.contains("messages read: 3"), "{summary}");
}

#[test]
fn oversized_and_non_utf8_messages_are_counted_and_kept_flagged() {
    let collector = Collector::start();
    let agent = start_agent("bad-syslog-host", &collector, &config(20_000));
    let (udp, tcp) = agent.syslog_addresses();
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // Over max_message_bytes (2048): dropped, counted.
    let mut oversized = b"<13>Nov 28 01:02:03 h app: ".to_vec();
    oversized.extend(std::iter::repeat_n(b'x', 3000));
    sender.send_to(&oversized, udp).unwrap();
    // Latin-1 bytes and an ANSI escape: kept, flagged, escaped.
    sender
        .send_to(b"<13>Nov 28 01:02:03 h app: caf\xe9 \x1b[31mred", udp)
        .unwrap();
    // The same over TCP, with an oversized octet-counted frame in between.
    let mut stream = std::net::TcpStream::connect(tcp).unwrap();
    let mut frames = format!("{} ", oversized.len()).into_bytes();
    frames.extend_from_slice(&oversized);
    frames.extend_from_slice(b"<13>Nov 28 01:02:03 h app: after\n");
    stream.write_all(&frames).unwrap();
    drop(stream);

    let mut events = Vec::new();
    wait_until(Duration::from_secs(60), || {
        events = stored(&collector, "bad-syslog-host");
        events.len() >= 2
    });
    assert_eq!(events.len(), 2, "{events:#?}");
    let lossy = events
        .iter()
        .find(|event| {
            event["raw"]
                .as_str()
                .unwrap()
                .starts_with("[invalid UTF-8] ")
        })
        .unwrap();
    let raw = lossy["raw"].as_str().unwrap();
    assert!(raw.contains("caf\u{fffd}"), "{raw}");
    assert!(raw.contains("\\x1b[31mred"), "{raw}");
    assert!(
        events
            .iter()
            .any(|event| event["fields"]["message"] == "after")
    );
    let mut counts = (None, None);
    wait_until(Duration::from_secs(30), || {
        counts = (
            agent_counter(&collector, "bad-syslog-host", "dropped_oversize"),
            countywatch_e2e::http::sample_value(
                &collector.metrics(),
                "countywatch_agent_syslog_invalid_utf8_total{instance=\"bad-syslog-host\",job=\"countywatch\"}",
            ),
        );
        counts == (Some(2.0), Some(1.0))
    });
    assert_eq!(counts, (Some(2.0), Some(1.0)));
}
