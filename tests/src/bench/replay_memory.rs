//! Peak memory of `countywatch-collector rules replay` over a month of
//! recorded events (2,000,000, the agent's `replay` output format) through
//! every shipped detection pack, measured by `/usr/bin/time -v` (Debian's
//! `time` package) as the process's maximum resident set size.
//!
//! The replay streams its file, so its memory should not grow with the
//! file: the same replay over a tenth of the events runs beside it, and the
//! ratio of the two peaks is the figure to watch (near 1.0; the replay that
//! kept every event in memory grew linearly). No other tool backtests
//! countywatch rules, so that is the comparison.
//!
//! With `REPLAY_MEMORY_PEER=/path/to/countywatch-collector`, that binary
//! (another build, e.g. from before a change) replays the same month too and
//! is printed beside ours.
//!
//! Needs the collector binary built in the same profile (build with
//! `--release`) and `/usr/bin/time`; writes about 0.5 GB of events to a
//! temporary directory.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use countywatch_wire::{Event, EventKind, EventSource};

use super::{Benchmark, Figure};

/// Registration.
pub const BENCHMARK: Benchmark = Benchmark {
    name: "replay_memory",
    about: "rules replay of 2,000,000 recorded events (a month) through the shipped packs: peak RSS (vs 200,000 events)",
    run,
};

/// Events in the month.
const EVENTS: u32 = 2_000_000;
/// Events in the small run beside it.
const SMALL_EVENTS: u32 = 200_000;
/// Monday 2026-11-02 00:00 UTC.
const START_MS: i64 = 1_793_577_600_000;
/// Thirty days, spread evenly over the events.
const MONTH_MS: i64 = 30 * 86_400_000;

/// Event `index` of `count`: mostly refused SSH logins from 50,000
/// addresses (each failing in bursts, so brute-force rules fire), invalid
/// users, accepted logins and sudo failures, with the raw line the agent
/// keeps; in time order.
fn event(index: u32, count: u32) -> Event {
    let at = START_MS + MONTH_MS * i64::from(index) / i64::from(count);
    // Twelve consecutive events share an address: a burst.
    let address = (index / 12).wrapping_mul(2_654_435_761) % 50_000;
    let ip = format!(
        "10.{}.{}.{}",
        address >> 16,
        (address >> 8) & 255,
        address & 255
    );
    let port = 1024 + index % 60_000;
    let (kind, user, raw) = match index % 50 {
        0 => (
            EventKind::SshLoginAccepted,
            format!("user{}", index % 300),
            format!(
                "sshd[{port}]: Accepted publickey for user{} from {ip} port {port} ssh2",
                index % 300
            ),
        ),
        1 => (
            EventKind::SudoAuthFailed,
            format!("user{}", index % 300),
            format!(
                "sudo: pam_unix(sudo:auth): authentication failure; logname=user{0} uid=1000 euid=0 tty=/dev/pts/0 ruser=user{0} rhost=  user=user{0}",
                index % 300
            ),
        ),
        2..=9 => (
            EventKind::SshInvalidUser,
            format!("admin{}", index % 40),
            format!(
                "sshd[{port}]: Invalid user admin{} from {ip} port {port}",
                index % 40
            ),
        ),
        _ => (
            EventKind::SshLoginFailed,
            "root".to_string(),
            format!("sshd[{port}]: Failed password for root from {ip} port {port} ssh2"),
        ),
    };
    let mut event = Event::new(at, EventSource::Auth, kind);
    event.host = format!("web{}", index % 20);
    event.fields.user = Some(user);
    event.fields.process = Some(raw.split('[').next().unwrap_or("sshd").to_string());
    if kind != EventKind::SudoAuthFailed {
        event.fields.src_ip = Some(ip.parse().unwrap());
        event.fields.src_port = Some(port as u16);
    }
    event.raw = format!("2026-11-02T00:00:00Z {} {raw}", event.host);
    event
}

/// Writes `count` events as JSON lines.
fn generate(path: &Path, count: u32) {
    let file = std::fs::File::create(path).unwrap();
    let mut out = std::io::BufWriter::new(file);
    for index in 0..count {
        serde_json::to_writer(&mut out, &event(index, count)).unwrap();
        out.write_all(b"\n").unwrap();
    }
    out.flush().unwrap();
}

/// What one replay took: peak RSS in KiB, wall seconds, detections.
struct Measured {
    peak_kib: f64,
    wall_seconds: f64,
    detections: usize,
}

/// Replays `events` through the shipped packs under `/usr/bin/time -v`
/// with the `collector` binary. Lines skipped are not a failure here (an
/// older collector may count them differently); no exit status is checked
/// beyond the process having run.
fn replay(collector: &Path, events: &Path) -> Measured {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/detection");
    let started = Instant::now();
    let output = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(collector)
        .args(["rules", "replay", "--events"])
        .arg(events)
        .arg("--rules")
        .arg(&rules)
        .stdin(Stdio::null())
        .output()
        .expect("/usr/bin/time is missing: install Debian's time package");
    let wall_seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code().is_some_and(|code| code <= 1),
        "rules replay failed: {stderr}"
    );
    let peak_kib = stderr
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|value| value.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no peak RSS in: {stderr}"));
    eprintln!(
        "{}: {}",
        events.display(),
        stderr
            .lines()
            .find(|line| line.contains(" events, "))
            .unwrap_or("")
    );
    Measured {
        peak_kib,
        wall_seconds,
        detections: String::from_utf8_lossy(&output.stdout).lines().count(),
    }
}

fn run() -> Vec<Figure> {
    let dir = tempfile::tempdir().unwrap();
    let month = dir.path().join("month.jsonl");
    let tenth = dir.path().join("tenth.jsonl");
    generate(&month, EVENTS);
    generate(&tenth, SMALL_EVENTS);
    let size = std::fs::metadata(&month).map_or(0, |metadata| metadata.len());
    eprintln!("{EVENTS} events, {} MiB of JSON lines", size >> 20);
    let collector = crate::binary("countywatch-collector");
    let big = replay(&collector, &month);
    let small = replay(&collector, &tenth);
    assert!(big.detections > 0, "the month raised no detection");
    let mut figures = vec![
        Figure::new("replay_peak_rss_2m_events", big.peak_kib / 1024.0, "MiB")
            .with_peer("200,000 events", small.peak_kib / 1024.0),
        Figure::new(
            "replay_events_per_second",
            f64::from(EVENTS) / big.wall_seconds,
            "events/s",
        ),
        Figure::new("replay_detections", big.detections as f64, "detections"),
    ];
    if let Some(peer) = std::env::var_os("REPLAY_MEMORY_PEER") {
        let peer = replay(Path::new(&peer), &month);
        figures.push(
            Figure::new("replay_peak_rss_2m_events", big.peak_kib / 1024.0, "MiB")
                .with_peer("REPLAY_MEMORY_PEER", peer.peak_kib / 1024.0),
        );
        figures.push(
            Figure::new(
                "replay_events_per_second",
                f64::from(EVENTS) / big.wall_seconds,
                "events/s",
            )
            .with_peer("REPLAY_MEMORY_PEER", f64::from(EVENTS) / peer.wall_seconds),
        );
    }
    figures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_events_are_valid_and_in_time_order() {
        let events: Vec<Event> = (0..1_000).map(|index| event(index, 1_000)).collect();
        for (index, event) in events.iter().enumerate() {
            assert!(event.validate(index).is_ok(), "{event:?}");
        }
        assert!(
            events
                .windows(2)
                .all(|pair| pair[0].timestamp_ms <= pair[1].timestamp_ms)
        );
        assert_eq!(events[999].timestamp_ms, START_MS + MONTH_MS * 999 / 1_000);
        assert_eq!(events[10].kind, EventKind::SshLoginFailed);
    }
}
