//! The detection engine (`countywatch-detect`) with every shipped pack
//! (`rules/detection/`) on one core: events per second with 100,000
//! distinct source addresses attacking, and the memory the window state
//! takes per active group key.
//!
//! Throughput is events per second of this thread's CPU time (the machine
//! is shared, so wall time is printed too but measures the neighbours).
//! The stream is mostly refused SSH logins (what a host under attack
//! produces), each address failing a few times within a two-minute window
//! so that every key stays active, mixed with accepted logins, sudo
//! failures, file, port and network-device events. No peer runs here:
//! CrowdSec and Wazuh need their hubs and managers, which the test machine
//! does not have; the figures stand against the targets
//! (>= 500,000 events/s, <= 200 bytes per key).

use std::path::Path;
use std::time::Instant;

use countywatch_detect::calendar::Calendar;
use countywatch_detect::engine::Engine;
use countywatch_detect::rulefmt;
use countywatch_wire::{Event, EventKind, EventSource};

use super::{Benchmark, Figure};

/// Registration.
pub const BENCHMARK: Benchmark = Benchmark {
    name: "detect_engine",
    about: "shipped detection packs, 100,000 source addresses, events/s on one core and state bytes per key",
    run,
};

const ADDRESSES: u32 = 100_000;
const EVENTS: u32 = 2_000_000;

fn event(index: u32, start_ms: i64) -> Event {
    // 2 M events over 100 s: every address fails about 18 times, all
    // within the brute-force window of its first failure's neighbours.
    let at = start_ms + i64::from(index / 20);
    let address = index.wrapping_mul(2_654_435_761) % ADDRESSES;
    let octets = [
        10,
        (address >> 16) as u8,
        (address >> 8) as u8,
        address as u8,
    ];
    let mut event = match index % 100 {
        0 => {
            let mut event = Event::new(at, EventSource::Auth, EventKind::SshLoginAccepted);
            event.fields.user = Some(format!("user{}", index % 500));
            event
        }
        1 => {
            let mut event = Event::new(at, EventSource::Auth, EventKind::SudoAuthFailed);
            event.fields.user = Some(format!("user{}", index % 500));
            event
        }
        2 => {
            let mut event = Event::new(at, EventSource::Fim, EventKind::FileChanged);
            event.fields.path = Some(
                if index % 200 == 2 {
                    "/etc/passwd"
                } else {
                    "/var/www/index.html"
                }
                .to_string(),
            );
            event
        }
        3 => {
            let mut event = Event::new(at, EventSource::Ports, EventKind::PortOpened);
            event.fields.local_port = Some((index % 60_000) as u16);
            event.fields.local_ip = Some([0, 0, 0, 0].into());
            event
        }
        4 => {
            let mut event = Event::new(at, EventSource::Syslog, EventKind::DeviceLoginFailed);
            event.fields.device = Some(format!("sw{}", index % 50));
            event
        }
        5..=14 => {
            let mut event = Event::new(at, EventSource::Auth, EventKind::SshInvalidUser);
            event.fields.user = Some(format!("guest{}", index % 1000));
            event
        }
        _ => {
            let mut event = Event::new(at, EventSource::Auth, EventKind::SshLoginFailed);
            event.fields.user = Some("root".to_string());
            event.fields.method = Some("password".to_string());
            event
        }
    };
    event.host = format!("web{}", index % 20);
    if matches!(
        event.kind,
        EventKind::SshLoginAccepted | EventKind::SshLoginFailed | EventKind::SshInvalidUser
    ) {
        event.fields.src_ip = Some(octets.into());
        event.fields.src_port = Some(40_000);
    }
    event
}

/// CPU time this thread has run, in seconds (`/proc/thread-self/schedstat`,
/// nanoseconds): on a machine other builds share, wall time would measure
/// them too.
fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|text| {
            text.split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<f64>().ok())
        })
        .map_or(0.0, |ns| ns / 1e9)
}

fn rss_bytes() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib * 1024.0)
}

fn run() -> Vec<Figure> {
    let packs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/detection");
    let files = rulefmt::rule_files(&[packs]).unwrap_or_default();
    let Ok(rules) = rulefmt::load_all(&files) else {
        eprintln!("the shipped packs do not load");
        return Vec::new();
    };
    let rule_count = rules.len();
    // 2026-11-02 10:00 Shanghai: a working day, so logins are not
    // "outside working hours" and only attacks fire.
    let start_ms = 1_793_584_800_000;
    let events: Vec<Event> = (0..EVENTS).map(|index| event(index, start_ms)).collect();
    let mut engine = Engine::new(rules, Calendar::default());
    let rss_before = rss_bytes();
    let mut detections = Vec::new();
    let mut lookup = |id: i64| {
        usize::try_from(id)
            .ok()
            .and_then(|id| events.get(id))
            .cloned()
    };
    let mut fired = 0usize;
    let started = Instant::now();
    let cpu_started = thread_cpu_seconds();
    for (id, event) in events.iter().enumerate() {
        engine.process(event, id as i64, &mut lookup, &mut detections);
        fired += detections.len();
        detections.clear();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = thread_cpu_seconds() - cpu_started;
    let rss_after = rss_bytes();
    let keys = engine.group_count().max(1);
    let evictions: u64 = engine
        .rule_stats()
        .iter()
        .map(|stats| stats.evictions)
        .sum();
    eprintln!(
        "{rule_count} rules, {EVENTS} events, {fired} detections, {keys} active keys, {evictions} evictions, {elapsed:.2} s wall, {cpu:.2} s CPU"
    );
    vec![
        Figure::new(
            "detect_events_per_cpu_second",
            f64::from(EVENTS) / cpu.max(1e-9),
            "events/s",
        ),
        Figure::new(
            "detect_events_per_wall_second",
            f64::from(EVENTS) / elapsed,
            "events/s",
        ),
        Figure::new(
            "detect_state_bytes_per_key",
            engine.state_bytes() as f64 / keys as f64,
            "bytes",
        ),
        Figure::new(
            "detect_rss_growth_per_key",
            (rss_after - rss_before).max(0.0) / keys as f64,
            "bytes",
        ),
        Figure::new("detect_active_keys", keys as f64, "keys"),
    ]
}
