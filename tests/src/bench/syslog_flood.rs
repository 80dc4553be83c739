//! A syslog flood: 100,000 messages/s for 10 s over UDP from one allowed
//! sender on loopback, to the agent's receiver (delivering to a real
//! collector) and, as the peer, to Debian's rsyslogd with `imudp` writing
//! every message to a file. Reported: peak RSS (VmHWM) of each, what each
//! received, and for the agent the accounting issue 10 asks for:
//! received = forwarded (events spooled) + counted drops, checked here
//! (the benchmark fails when it does not hold). Datagrams the kernel
//! dropped before either daemon read them show as the rise of
//! `RcvbufErrors` in /proc/net/snmp (system-wide, so the two runs are
//! sequential).
//!
//! `COUNTYWATCH_BENCH_SYSLOG_RATE` (messages/s, default 100000) and
//! `COUNTYWATCH_BENCH_SYSLOG_SECONDS` (default 10) shorten it.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Benchmark, Figure};
use crate::process::wait_until;
use crate::{Agent, Collector};

/// Registration.
pub const BENCHMARK: Benchmark = Benchmark {
    name: "syslog_flood",
    about: "100k syslog messages/s over UDP for 10 s to the agent vs rsyslogd (imudp): peak RSS, received, accounting",
    run,
};

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .filter(|value| *value > 0)
        .unwrap_or(default)
}

/// A mix of device messages: Cisco login failures and link changes,
/// Huawei link states, generic RFC 5424 lines.
fn message(index: u64) -> String {
    match index % 4 {
        0 => format!(
            "<188>{index}: *Nov 28 01:02:03.456: %SEC_LOGIN-4-LOGIN_FAILED: Login failed [user: u{index}] [Source: 192.0.2.{}] [localport: 22] [Reason: Login Authentication Failed] at 01:02:03 UTC Sat Nov 28 2026",
            index % 250 + 1
        ),
        1 => format!(
            "<189>{index}: *Nov 28 01:02:03.456: %LINK-3-UPDOWN: Interface GigabitEthernet1/0/{}, changed state to down",
            index % 48
        ),
        2 => format!(
            "<188>Nov 28 2026 01:02:03-08:00 HUAWEI %%01IFNET/4/LINK_STATE(l)[{index}]:The line protocol IP on the interface GigabitEthernet0/0/{} has entered the UP state.",
            index % 48
        ),
        _ => format!(
            "<134>1 2026-11-28T01:02:03.456Z fw-1 policy 77 RELOAD - policy reloaded {index}"
        ),
    }
}

/// Sends `rate` messages a second for `seconds` to `target`, in bursts
/// every millisecond; returns how many were sent.
fn flood(target: SocketAddr, rate: u64, seconds: u64) -> u64 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let messages: Vec<String> = (0..1000).map(message).collect();
    let total = rate * seconds;
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        let due = due.min(total);
        while sent < due {
            let text = &messages[(sent % 1000) as usize];
            if socket.send_to(text.as_bytes(), target).is_ok() {
                sent += 1;
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    sent
}

/// `Udp: ... RcvbufErrors` from /proc/net/snmp.
fn kernel_udp_drops() -> u64 {
    let text = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("Udp:"))
        .collect();
    let (Some(names), Some(values)) = (lines.first(), lines.get(1)) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "RcvbufErrors")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0)
}

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Sum of every sample of the agent's metric family `name` whose labels
/// start with `labels`, from the collector's /metrics.
fn agent_sum(collector: &Collector, name: &str, labels: &str) -> f64 {
    let prefix = format!("{name}{{instance=\"flood-bench\",job=\"countywatch\"{labels}");
    collector
        .metrics()
        .lines()
        .filter(|line| line.starts_with(&prefix))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// The agent's counts once they stop moving: (received, accepted,
/// dropped by reason, forwarded, waiting).
struct AgentCounts {
    accepted: f64,
    dropped: Vec<(&'static str, f64)>,
    forwarded: f64,
    waiting: f64,
}

fn agent_counts(collector: &Collector) -> AgentCounts {
    let messages = "countywatch_agent_syslog_messages_total";
    let dropped = [
        "dropped_queue_full",
        "dropped_not_allowed",
        "dropped_oversize",
        "dropped_malformed",
    ]
    .into_iter()
    .map(|result| {
        (
            result,
            agent_sum(collector, messages, &format!(",result=\"{result}\"")),
        )
    })
    .collect();
    AgentCounts {
        accepted: agent_sum(collector, messages, ",result=\"accepted\""),
        dropped,
        forwarded: agent_sum(
            collector,
            "countywatch_agent_events_total",
            ",source=\"syslog\"",
        ),
        waiting: agent_sum(collector, "countywatch_agent_syslog_queue_length", ""),
    }
}

fn measure_agent(rate: u64, seconds: u64) -> Vec<Figure> {
    let collector = Collector::start();
    let config = "sources:\n  auth:\n    enabled: false\n  fim:\n    enabled: false\n  ports:\n    enabled: false\n  syslog:\n    udp: 127.0.0.1:0\n    tcp: 127.0.0.1:0\n    allow: [127.0.0.1/32]\n";
    let agent = Agent::start_for_with("flood-bench", &collector, config);
    let (udp, _) = agent.syslog_addresses();
    let kernel_before = kernel_udp_drops();
    let sent = flood(udp, rate, seconds);
    let rss_flood = peak_rss_mib(agent.pid());
    // Wait for the inbox to empty and the counters to stop moving.
    let mut last = (-1.0, -1.0);
    let mut counts = agent_counts(&collector);
    wait_until(Duration::from_secs(120), || {
        std::thread::sleep(Duration::from_millis(1500));
        counts = agent_counts(&collector);
        let now = (counts.accepted, counts.forwarded);
        let settled = counts.waiting == 0.0 && now == last && counts.accepted > 0.0;
        last = now;
        settled
    });
    let kernel_drops = kernel_udp_drops().saturating_sub(kernel_before);
    let dropped: f64 = counts.dropped.iter().map(|(_, count)| count).sum();
    let received = counts.accepted + dropped;
    assert_eq!(
        counts.accepted,
        counts.forwarded + counts.waiting,
        "every accepted message is forwarded or still waiting"
    );
    // The collector stores what the spool delivers.
    let mut stored = 0;
    wait_until(Duration::from_secs(300), || {
        stored = collector
            .database()
            .query_row(
                "SELECT COUNT(*) FROM events WHERE agent = 'flood-bench' AND source = 'syslog'",
                [],
                |row| row.get::<_, i64>(0),
            )
            .unwrap_or(0);
        stored as f64 >= counts.forwarded
    });
    let rss_end = peak_rss_mib(agent.pid());
    let mut figures = vec![
        Figure::new("flood_sent", sent as f64, "messages"),
        Figure::new("agent_received", received, "messages"),
        Figure::new("agent_accepted", counts.accepted, "messages"),
        Figure::new("agent_forwarded", counts.forwarded, "events"),
    ];
    for (result, count) in &counts.dropped {
        figures.push(Figure::new(&format!("agent_{result}"), *count, "messages"));
    }
    figures.push(Figure::new(
        "agent_accounting_received_minus_forwarded_minus_drops",
        received - counts.forwarded - dropped,
        "messages",
    ));
    figures.push(Figure::new(
        "agent_kernel_udp_drops",
        kernel_drops as f64,
        "datagrams",
    ));
    figures.push(Figure::new("collector_stored", stored as f64, "events"));
    figures.push(Figure::new("agent_peak_rss_during_flood", rss_flood, "MiB"));
    figures.push(Figure::new("agent_peak_rss", rss_end, "MiB"));
    figures
}

/// rsyslogd with one `imudp` input writing every message to a file.
fn start_rsyslog(dir: &Path, port: u16) -> Child {
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let config = format!(
        "global(workDirectory=\"{}\")\n\
         module(load=\"imudp\")\n\
         template(name=\"line\" type=\"string\" string=\"%hostname% %syslogtag% %msg%\\n\")\n\
         ruleset(name=\"received\") {{ action(type=\"omfile\" file=\"{}\" template=\"line\") }}\n\
         input(type=\"imudp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"received\")\n",
        work.display(),
        dir.join("received.log").display()
    );
    let path = dir.join("rsyslog.conf");
    std::fs::write(&path, config).unwrap();
    Command::new("rsyslogd")
        .arg("-n")
        .arg("-f")
        .arg(&path)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rsyslogd is installed by tests/run.sh")
}

fn line_count(path: &Path) -> u64 {
    std::fs::read(path)
        .map(|bytes| bytes.iter().filter(|byte| **byte == b'\n').count() as u64)
        .unwrap_or(0)
}

/// (lines written, peak RSS MiB, kernel drops) for rsyslogd.
fn measure_rsyslog(rate: u64, seconds: u64) -> (f64, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = start_rsyslog(dir.path(), port);
    let target = SocketAddr::from(([127, 0, 0, 1], port));
    let output = dir.path().join("received.log");
    // Ready when a probe message comes out the other end.
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    let ready = wait_until(Duration::from_secs(20), || {
        let _ = probe.send_to(b"<13>Nov 28 01:02:03 h probe: ready", target);
        line_count(&output) > 0
    });
    assert!(ready, "rsyslogd did not start");
    let before = line_count(&output);
    let kernel_before = kernel_udp_drops();
    flood(target, rate, seconds);
    let mut last = 0;
    wait_until(Duration::from_secs(60), || {
        std::thread::sleep(Duration::from_millis(1000));
        let now = line_count(&output);
        let settled = now == last;
        last = now;
        settled
    });
    let kernel_drops = kernel_udp_drops().saturating_sub(kernel_before);
    let rss = peak_rss_mib(child.id());
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let _ = child.wait();
    ((last - before) as f64, rss, kernel_drops as f64)
}

fn run() -> Vec<Figure> {
    let rate = setting("COUNTYWATCH_BENCH_SYSLOG_RATE", 100_000);
    let seconds = setting("COUNTYWATCH_BENCH_SYSLOG_SECONDS", 10);
    let mut figures = measure_agent(rate, seconds);
    let (peer_received, peer_rss, peer_kernel_drops) = measure_rsyslog(rate, seconds);
    for figure in &mut figures {
        match figure.name.as_str() {
            // What each turned into output: events spooled, lines written.
            "agent_forwarded" => figure.peer = Some(("rsyslogd".into(), peer_received)),
            "agent_peak_rss" => figure.peer = Some(("rsyslogd".into(), peer_rss)),
            "agent_kernel_udp_drops" => {
                figure.peer = Some(("rsyslogd".into(), peer_kernel_drops));
            }
            _ => {}
        }
    }
    figures
}
