//! `noise_day` (issue 22): how many incidents an ordinary county server's
//! busy day raises with the shipped detection packs (target: none), and
//! whether five real attacks added to that day raise exactly their five.
//!
//! What runs for real: the agent's auth-log parsers over the day's log
//! (`tests/fixtures/noise_day/day.log`, Monday 2026-11-30 in Shanghai time:
//! hourly cron sessions, monitoring checks, internet background scans
//! under every threshold, five admin sessions from the office network with
//! keys and passwords and one mistyped password, sudo, su to a service
//! account), read in Asia/Shanghai; the agent's ports source (`PortsSource`)
//! over a scripted `/proc` tree scanned once a minute (sshd, nginx,
//! PostgreSQL on loopback, chrony; a DNS client's unconnected UDP socket
//! on an ephemeral port every ten minutes; nginx restarted, rebinding port
//! 80); the agent's FIM (`Fim`) on a temporary tree holding the default
//! watched files, with a package update changing unwatched files under
//! `etc/`; and the collector's detection engine with `rules/detection`
//! through `countywatch-collector rules replay`. The attacks
//! (`attacks.log`, plus a port and a file): a brute force, password
//! spraying, a login at 03:00 on Sunday, a listener on port 4444, a new
//! key in root's `authorized_keys`.
//!
//! For comparison, `noise_day_incidents_as_before` replays the same day
//! the way the agent read it before issue 22: zone-less times as UTC and
//! every unconnected UDP socket a listener at once.
//!
//! Simplified against the issue: time is compressed by replaying (event
//! times are the script's, not the wall clock's), sockets are a scripted
//! `/proc` tree rather than a network namespace, and the count is of
//! detections from `rules replay`, which is what opens incidents.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use countywatch_agent::source::fim::Fim;
use countywatch_agent::source::ports::{PortsOptions, PortsSource};
use countywatch_parse::auth_replay::{ReplayOptions, replay};
use countywatch_wire::Event;

use super::{Benchmark, Figure};

pub const BENCHMARK: Benchmark = Benchmark {
    name: "noise_day",
    about: "incidents from an ordinary server's busy day (target 0) and from the same day with five attacks (target exactly those 5)",
    run,
};

/// 2026-11-30T00:00:00+08:00, the start of the scripted Monday.
const DAY_START_MS: i64 = 1_796_486_400_000;
/// "Now" for year inference: a week later.
const NOW_MS: i64 = DAY_START_MS + 7 * 86_400_000;
/// The attacks' rules, each to fire once.
const ATTACK_RULES: [&str; 5] = [
    "ssh_brute_force",
    "ssh_password_spraying",
    "ssh_login_outside_working_hours",
    "unexpected_listening_port",
    "sensitive_file_changed",
];

fn run() -> Vec<Figure> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/noise_day");
    let day = detections(&fixtures, false, Agent::Now);
    let attacked = detections(&fixtures, true, Agent::Now);
    let before = detections(&fixtures, false, Agent::Before);
    eprintln!("day as before issue 22: {before:?}");
    let day_total: usize = day.values().sum();
    eprintln!("day: {day:?}");
    eprintln!("day with attacks: {attacked:?}");
    let attack_hits = ATTACK_RULES
        .iter()
        .filter(|rule| attacked.get(**rule) == Some(&1))
        .count();
    let attacked_total: usize = attacked.values().sum();
    vec![
        Figure::new("noise_day_incidents", day_total as f64, "incidents"),
        Figure::new(
            "noise_day_attacks_raised",
            attack_hits as f64,
            "of 5 attacks",
        ),
        Figure::new(
            "noise_day_attacked_incidents",
            attacked_total as f64,
            "incidents",
        ),
        Figure::new(
            "noise_day_incidents_as_before",
            before.values().sum::<usize>() as f64,
            "incidents",
        ),
    ]
}

/// Which agent behaviour reads the day.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Agent {
    /// Zone-less times in the host's zone (Asia/Shanghai), UDP client
    /// sockets no listeners.
    Now,
    /// Zone-less times as UTC, every unconnected UDP socket a listener.
    Before,
}

/// Detections by rule for the day, with the attacks when `attacks`.
fn detections(fixtures: &Path, attacks: bool, agent: Agent) -> BTreeMap<String, usize> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let zone = match agent {
        Agent::Now => "Asia/Shanghai",
        Agent::Before => "UTC",
    };
    let mut events = auth_events(&fixtures.join("day.log"), zone);
    if attacks {
        events.extend(auth_events(&fixtures.join("attacks.log"), zone));
    }
    events.extend(port_events(dir.path(), attacks, agent));
    events.extend(file_events(dir.path(), attacks));
    for event in &mut events {
        event.host = "county-web".to_string();
    }
    events.sort_by_key(|event| event.timestamp_ms);
    let path = dir.path().join("events.jsonl");
    let mut file = std::fs::File::create(&path).expect("events file");
    for event in &events {
        serde_json::to_writer(&mut file, event).expect("event JSON");
        file.write_all(b"\n").expect("events file");
    }
    drop(file);
    let output = Command::new(crate::process::binary("countywatch-collector"))
        .args(["rules", "replay", "--json", "--events"])
        .arg(&path)
        .arg("--rules")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/detection"))
        .output()
        .expect("countywatch-collector rules replay");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut by_rule = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let detection: serde_json::Value = serde_json::from_str(line).expect("detection JSON");
        let rule = detection["rule_id"].as_str().unwrap_or("?").to_string();
        *by_rule.entry(rule).or_insert(0) += 1;
    }
    by_rule
}

/// The log through the agent's parsers, zone-less times read in `zone`.
fn auth_events(log: &Path, zone: &str) -> Vec<Event> {
    let options = ReplayOptions {
        max_line: 16 * 1024,
        now_ms: NOW_MS,
        zone: countywatch_agent::source::log_time::zone(Some(zone)).expect("tzdata"),
        unknown_samples: 0,
    };
    let mut out = Vec::new();
    let mut input = std::fs::File::open(log).expect("fixture");
    replay(&mut input, &mut out, &options).expect("replay");
    String::from_utf8_lossy(&out)
        .lines()
        .map(|line| serde_json::from_str(line).expect("event"))
        .collect()
}

const TCP_HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
const UDP_HEADER: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n";

/// One `/proc/net` row: `address` and `port` in the kernel's hex form.
fn row(address: &str, port: u16, state: &str, remote: &str, inode: u64) -> String {
    format!(
        "   0: {address}:{port:04X} {remote} {state} 00000000:00000000 00:00000000 00000000     0        0 {inode} 1 0000000000000000 100 0 0 10 0\n"
    )
}

/// The ports source over a scripted `/proc` scanned once a minute.
fn port_events(dir: &Path, attacks: bool, agent: Agent) -> Vec<Event> {
    let procfs = dir.join("proc");
    std::fs::create_dir_all(procfs.join("net")).expect("proc tree");
    std::fs::create_dir_all(procfs.join("sys/net/ipv4")).expect("proc tree");
    std::fs::write(
        procfs.join("sys/net/ipv4/ip_local_port_range"),
        "32768\t60999\n",
    )
    .expect("proc tree");
    let options = PortsOptions {
        allow: Vec::new(),
        udp_grace_ms: if agent == Agent::Now { 300_000 } else { 0 },
        own_pid: None,
    };
    let mut source = PortsSource::new(procfs.clone(), options, None);
    let mut events = Vec::new();
    let any = "00000000";
    let unconnected = "00000000:0000";
    for minute in 0..24 * 60 {
        let mut tcp = String::from(TCP_HEADER);
        tcp.push_str(&row(any, 22, "0A", unconnected, 100));
        // nginx restarted at 10:15: its port gone for a minute, rebound.
        if minute != 10 * 60 + 15 {
            let inode = if minute < 10 * 60 + 15 { 101 } else { 201 };
            tcp.push_str(&row(any, 80, "0A", unconnected, inode));
        }
        tcp.push_str(&row("0100007F", 5432, "0A", unconnected, 102));
        // An admin's SSH session, established (never a listener).
        if (9 * 60 + 5..9 * 60 + 20).contains(&minute) {
            tcp.push_str(&row(any, 22, "01", "0F01140A:C350", 103));
        }
        if attacks && minute >= 2 * 60 + 10 {
            tcp.push_str(&row(any, 4444, "0A", unconnected, 666));
        }
        let mut udp = String::from(UDP_HEADER);
        udp.push_str(&row(any, 123, "07", unconnected, 110));
        udp.push_str(&row("3500007F", 53, "07", unconnected, 111));
        // A DNS client's unconnected socket for a minute every ten.
        if minute % 10 == 3 {
            let port = 33_000 + (minute as u16 % 20_000);
            udp.push_str(&row(any, port, "07", unconnected, 5_000 + minute as u64));
        }
        // chrony's client socket, connected to its server.
        udp.push_str(&row(any, 45_123, "01", "0101A8C0:007B", 112));
        std::fs::write(procfs.join("net/tcp"), tcp).expect("proc tree");
        std::fs::write(procfs.join("net/udp"), udp).expect("proc tree");
        source.poll(DAY_START_MS + minute * 60_000, &mut events);
    }
    events
}

/// The agent's FIM on a temporary tree holding the default watched files.
fn file_events(dir: &Path, attacks: bool) -> Vec<Event> {
    let root = dir.join("root-fs");
    let watched = [
        "etc/passwd",
        "etc/shadow",
        "etc/group",
        "etc/sudoers",
        "etc/ssh/sshd_config",
        "root/.ssh/authorized_keys",
        "etc/crontab",
    ];
    for file in watched {
        write(&root.join(file), &format!("# {file}\n"));
    }
    std::fs::create_dir_all(root.join("etc/sudoers.d")).expect("tree");
    std::fs::create_dir_all(root.join("etc/cron.d")).expect("tree");
    let mut paths: Vec<PathBuf> = watched.iter().map(|file| root.join(file)).collect();
    paths.push(root.join("etc/sudoers.d"));
    paths.push(root.join("etc/cron.d"));
    let fim = Fim::new(paths, None, std::time::Duration::ZERO, None);
    let mut events = Vec::new();
    let mut take = |at_ms: i64| {
        let (found, _) = fim.poll();
        for mut event in found {
            event.timestamp_ms = at_ms;
            if let Some(path) = &mut event.fields.path {
                let relative = path
                    .strip_prefix(root.to_string_lossy().as_ref())
                    .unwrap_or(path)
                    .to_string();
                *path = relative;
            }
            events.push(event);
        }
    };
    // 03:25 the nightly package update: nginx's and logrotate's files.
    write(
        &root.join("etc/nginx/nginx.conf"),
        "worker_processes auto;\n",
    );
    write(
        &root.join("etc/logrotate.d/nginx"),
        "/var/log/nginx/*.log {}\n",
    );
    take(DAY_START_MS + (3 * 60 + 25) * 60_000);
    if attacks {
        // 02:40 a new key for root.
        write(
            &root.join("root/.ssh/authorized_keys"),
            "# root/.ssh/authorized_keys\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOattacker intruder\n",
        );
        take(DAY_START_MS + (2 * 60 + 40) * 60_000);
    }
    events
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("tree");
    }
    std::fs::write(path, text).expect("tree");
}
