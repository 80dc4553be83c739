//! Detection rule files (YAML, conditions, field paths, regexes, globs, IP
//! blocks, calendars) through loading and validation, then hostile events
//! through the engine that runs whatever rules loaded: conditions on
//! odd-typed fields, every correlation kind, time going back and jumping,
//! absences, and a snapshot/restore round trip (a restore of mangled
//! snapshot bytes as well).
//!
//! Input: rule YAML, a NUL byte, then the event stream. Without a NUL the
//! whole input is both, so the seed rule files drive the engine at once.
//! Each event takes a few bytes: a kind, a source, a time step, then short
//! fields cut from the input (attacker-typed text in the real collector).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use countywatch_detect::calendar::Calendar;
use countywatch_detect::engine::Engine;
use countywatch_wire::{Event, EventKind, EventSource};
use libfuzzer_sys::fuzz_target;

/// The most events one input runs, so one input stays fast.
const MAX_EVENTS: usize = 256;

const SOURCES: [EventSource; 6] = [
    EventSource::Auth,
    EventSource::Fim,
    EventSource::Ports,
    EventSource::Syslog,
    EventSource::Snmp,
    EventSource::Agent,
];

/// Values rule files test for, so that matches happen without the fuzzer
/// having to discover them; the input's own bytes supply the hostile rest.
const WORDS: [&str; 12] = [
    "root",
    "eve",
    "sudo",
    "sshd",
    "10.0.0.1",
    "/etc/passwd",
    "*",
    "",
    "web1",
    "0",
    "-1",
    "1e309",
];

/// Reads the event stream.
struct Bytes<'a> {
    data: &'a [u8],
}

impl Bytes<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.data.split_first()?;
        self.data = rest;
        Some(first)
    }

    /// A short string: a known word, or up to 15 bytes of the input.
    fn text(&mut self) -> Option<String> {
        let selector = self.byte()?;
        if selector & 0x80 == 0 {
            return Some(WORDS[usize::from(selector) % WORDS.len()].to_string());
        }
        let length = usize::from(selector & 0x0f).min(self.data.len());
        let (taken, rest) = self.data.split_at(length);
        self.data = rest;
        Some(String::from_utf8_lossy(taken).into_owned())
    }

    fn address(&mut self) -> Option<IpAddr> {
        let selector = self.byte()?;
        if selector & 1 == 0 {
            let octets = [self.byte()?, self.byte()?, self.byte()?, self.byte()?];
            Some(IpAddr::V4(Ipv4Addr::from(octets)))
        } else {
            let mut octets = [0u8; 16];
            octets[0] = 0xfe;
            octets[1] = 0x80;
            octets[15] = self.byte()?;
            octets[7] = selector;
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        }
    }

    /// One event at `*clock`, which it moves by a byte-sized step (mostly
    /// forward, sometimes back, sometimes by hours).
    fn event(&mut self, clock: &mut i64) -> Option<Event> {
        let kind = EventKind::ALL[usize::from(self.byte()?) % EventKind::ALL.len()];
        let source = SOURCES[usize::from(self.byte()?) % SOURCES.len()];
        let step = self.byte()?;
        *clock = match step {
            0..=199 => clock.saturating_add(i64::from(step) * 1_000),
            200..=239 => clock.saturating_sub(i64::from(step - 199) * 1_000),
            240..=254 => clock.saturating_add(i64::from(step - 239) * 3_600_000),
            255 => clock.saturating_add(86_400_000 * 40),
        };
        let mut event = Event::new(*clock, source, kind);
        let present = self.byte()?;
        event.host = self.text()?;
        let fields = &mut event.fields;
        if present & 1 != 0 {
            fields.user = Some(self.text()?);
        }
        if present & 2 != 0 {
            fields.src_ip = Some(self.address()?);
            fields.src_port = Some(u16::from(self.byte()?) << 8);
        }
        if present & 4 != 0 {
            fields.command = Some(self.text()?);
            fields.target_user = Some(self.text()?);
        }
        if present & 8 != 0 {
            fields.path = Some(self.text()?);
            fields.process = Some(self.text()?);
        }
        if present & 16 != 0 {
            fields.count = Some(u32::from(self.byte()?) * 1_000_000);
            fields.pid = Some(u32::from(self.byte()?));
            fields.uid = Some(u32::from(self.byte()?));
        }
        if present & 32 != 0 {
            fields.group = Some(self.text()?);
            fields.service = Some(self.text()?);
            fields.method = Some(self.text()?);
        }
        if present & 64 != 0 {
            fields.device = Some(self.text()?);
            fields.interface = Some(self.text()?);
            fields.reason = Some(self.text()?);
        }
        if present & 128 != 0 {
            event.raw = self.text()?;
            fields.users_changed = vec![self.text()?, self.text()?];
        }
        Some(event)
    }
}

fuzz_target!(|data: &[u8]| {
    let (rules_bytes, event_bytes) = match data.iter().position(|&byte| byte == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, data),
    };
    let text = String::from_utf8_lossy(rules_bytes);
    let Ok(rules) = countywatch_detect::rulefmt::parse(Path::new("fuzz.yaml"), &text) else {
        return;
    };
    let mut engine = Engine::new(rules, Calendar::default());
    let mut stream = Bytes { data: event_bytes };
    let mut events: Vec<Event> = Vec::new();
    let mut detections = Vec::new();
    let mut clock = 1_790_000_000_000i64;
    while events.len() < MAX_EVENTS {
        let Some(event) = stream.event(&mut clock) else {
            break;
        };
        let id = events.len() as i64;
        events.push(event);
        let mut lookup = |id: i64| {
            usize::try_from(id)
                .ok()
                .and_then(|at| events.get(at).cloned())
        };
        engine.process(
            &events[id as usize].clone(),
            id,
            &mut lookup,
            &mut detections,
        );
        if id % 16 == 15 {
            engine.fire_absences(clock.saturating_add(600_000), &mut lookup, &mut detections);
        }
    }
    let mut lookup = |id: i64| {
        usize::try_from(id)
            .ok()
            .and_then(|at| events.get(at).cloned())
    };
    engine.advance(
        clock.saturating_add(3_600_000),
        &mut lookup,
        &mut detections,
    );
    let _ = engine.rule_stats();
    let _ = engine.state_bytes();
    // Our own snapshot must restore into a fresh engine over the same rules;
    // a mangled one must be refused or restored, never crash.
    let snapshot = engine.snapshot();
    let rules: Vec<_> = engine.rules().cloned().collect();
    let mut restored = Engine::new(rules.clone(), Calendar::default());
    if let Err(error) = restored.restore(&snapshot) {
        panic!("our own snapshot did not restore: {error}");
    }
    assert_eq!(
        restored.group_count(),
        engine.group_count(),
        "a restore lost or invented groups"
    );
    let mut mangled = snapshot;
    for (index, byte) in data.iter().take(8).enumerate() {
        if let Some(at) = mangled.len().checked_sub(1 + index * 7) {
            mangled[at] ^= byte;
        }
    }
    let mut other = Engine::new(rules, Calendar::default());
    let _ = other.restore(&mangled);
    other.advance(
        clock.saturating_add(7_200_000),
        &mut lookup,
        &mut detections,
    );
});
