//! The syslog receiver: network devices (switches, routers, firewalls that
//! cannot run an agent) send their syslog to a nearby agent, which turns it
//! into events (`source: syslog`).
//!
//! - [`listener`]: UDP and TCP sockets, the allow-list check, the size cap.
//! - [`framing`]: RFC 6587 framing of TCP streams.
//! - [`allow`]: the CIDR allow-list.
//! - This file: the bounded [`Inbox`] between the listeners and the run
//!   loop, and [`message_to_event`], the pure conversion shared with
//!   `countywatch-agent replay --source syslog`.
//!
//! Accounting: every message read off a socket is counted exactly once in
//! [`ReceiverStats`]: accepted into the inbox, or dropped with its reason.
//! Every accepted message becomes exactly one event in a later
//! [`SyslogSource::drain`], which the run loop spools at once; received
//! messages have no position to resume from, so what is still in the inbox
//! when the agent stops is lost (and was counted as accepted).

pub mod allow;
pub mod framing;
pub mod listener;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use countywatch_wire::{
    Event, EventFields, EventKind, EventSource, MAX_RAW_BYTES, MetricFamily, MetricKind,
};

use super::auth_log::{cap, cap_fields, escape_controls};
use super::parse::{parse_device, syslog_header};

/// Most message bytes turned into events per poll. Each event carries its
/// message about twice (`raw` and `message`), so a batch stays near 7 MiB
/// of JSON, under the collector's default 8 MiB body cap even compressed
/// poorly and far under its 64 MiB decompression cap.
pub const MAX_DRAIN_BYTES: usize = 3 * 1024 * 1024;

/// One message as it came off a socket.
#[derive(Clone, Debug)]
pub struct Received {
    /// The sender's address (what the `device` field says).
    pub from: IpAddr,
    /// When it arrived, ms since the Unix epoch.
    pub received_ms: i64,
    /// The message, without framing; any bytes.
    pub bytes: Vec<u8>,
}

/// Counters of what the listeners did, shared with them.
#[derive(Debug, Default)]
pub struct ReceiverStats {
    /// Messages put in the inbox.
    pub accepted: AtomicU64,
    /// Messages dropped because the inbox was full.
    pub dropped_queue_full: AtomicU64,
    /// Messages (and TCP connections' worth of them) from senders outside
    /// the allow-list. A refused TCP connection counts once here.
    pub dropped_not_allowed: AtomicU64,
    /// Messages longer than `max_message_bytes`.
    pub dropped_oversize: AtomicU64,
    /// Empty datagrams and TCP frames with a bad length header.
    pub dropped_malformed: AtomicU64,
    /// Accepted messages that were not valid UTF-8 (kept with U+FFFD).
    pub invalid_utf8: AtomicU64,
    /// TCP connections refused because `max_connections` were open.
    pub connections_over_limit: AtomicU64,
    /// TCP connections accepted.
    pub connections_accepted: AtomicU64,
    /// TCP connections open now.
    pub connections_open: AtomicU64,
    /// Socket errors other than a closed connection.
    pub receive_errors: AtomicU64,
}

impl ReceiverStats {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The bounded queue between the listeners and the run loop.
#[derive(Debug)]
pub struct Inbox {
    /// Waiting messages; a std mutex because every hold is a push or a
    /// short drain, never across an await.
    queue: Mutex<VecDeque<Received>>,
    /// Most messages waiting; beyond it new ones are dropped and counted.
    capacity: usize,
    /// What happened to every message.
    pub stats: ReceiverStats,
    /// Wakes the run loop when a message arrives.
    wake: Arc<tokio::sync::Notify>,
}

impl Inbox {
    /// An empty inbox holding at most `capacity` messages.
    pub fn new(capacity: usize, wake: Arc<tokio::sync::Notify>) -> Inbox {
        Inbox {
            queue: Mutex::new(VecDeque::new()),
            capacity,
            stats: ReceiverStats::default(),
            wake,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Received>> {
        self.queue
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Queues a message from an allowed sender, or counts it as dropped
    /// when the inbox is full.
    pub fn offer(&self, from: IpAddr, bytes: &[u8]) {
        let received_ms = countywatch_daemon::clock::now_ms();
        let mut queue = self.lock();
        if queue.len() >= self.capacity {
            drop(queue);
            ReceiverStats::add(&self.stats.dropped_queue_full);
            return;
        }
        queue.push_back(Received {
            from: from.to_canonical(),
            received_ms,
            bytes: bytes.to_vec(),
        });
        let first = queue.len() == 1;
        drop(queue);
        ReceiverStats::add(&self.stats.accepted);
        if first {
            self.wake.notify_one();
        }
    }

    /// Removes and returns up to `max` messages, oldest first, stopping
    /// before their bytes pass `max_bytes` (at least one is taken).
    pub fn take(&self, max: usize, max_bytes: usize) -> Vec<Received> {
        let mut queue = self.lock();
        let mut bytes = 0;
        let count = queue
            .iter()
            .take(max)
            .take_while(|received| {
                bytes += received.bytes.len();
                bytes <= max_bytes
            })
            .count();
        let count = if count == 0 {
            max.min(queue.len()).min(1)
        } else {
            count
        };
        queue.drain(..count).collect()
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The running receiver: its inbox and its listeners.
pub struct SyslogSource {
    /// Messages waiting to become events.
    pub inbox: Arc<Inbox>,
    /// The sockets; dropping them stops them.
    pub listeners: listener::Listeners,
}

impl SyslogSource {
    /// Binds the configured listeners (inside a tokio runtime) and starts
    /// receiving into a new inbox that signals `wake`.
    pub fn start(
        config: &crate::config::SyslogSourceConfig,
        wake: Arc<tokio::sync::Notify>,
    ) -> std::io::Result<SyslogSource> {
        let inbox = Arc::new(Inbox::new(config.queue, wake));
        let allow = allow::AllowList::new(config.allow.iter().map(|entry| entry.value.as_str()));
        let listeners = listener::Listeners::start(config, allow, Arc::clone(&inbox))?;
        Ok(SyslogSource { inbox, listeners })
    }

    /// Turns up to `budget` waiting messages into events appended to `out`,
    /// at most [`MAX_DRAIN_BYTES`] of them, so that a batch of the largest
    /// messages stays under the collector's body and decompression caps.
    pub fn drain(&self, budget: usize, out: &mut Vec<Event>) {
        for received in self.inbox.take(budget, MAX_DRAIN_BYTES) {
            let (event, lossy) = message_to_event(
                &received.bytes,
                &received.from.to_string(),
                received.received_ms,
                received.received_ms,
            );
            if lossy {
                ReceiverStats::add(&self.inbox.stats.invalid_utf8);
            }
            out.push(event);
        }
    }

    /// The receiver's self-metrics.
    pub fn metrics(&self) -> Vec<MetricFamily> {
        let stats = &self.inbox.stats;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed) as f64;
        let mut messages = MetricFamily::new(
            "countywatch_agent_syslog_messages_total",
            "Syslog messages read off the sockets, by what became of them: accepted (queued, each becomes one event) or dropped and why.",
            MetricKind::Counter,
        );
        for (result, counter) in [
            ("accepted", &stats.accepted),
            ("dropped_queue_full", &stats.dropped_queue_full),
            ("dropped_not_allowed", &stats.dropped_not_allowed),
            ("dropped_oversize", &stats.dropped_oversize),
            ("dropped_malformed", &stats.dropped_malformed),
        ] {
            messages.push(&[("result", result)], load(counter));
        }
        let mut connections = MetricFamily::new(
            "countywatch_agent_syslog_connections_total",
            "Syslog TCP connections, by result (refusals from outside the allow-list are counted in countywatch_agent_syslog_messages_total{result=\"dropped_not_allowed\"}).",
            MetricKind::Counter,
        );
        connections.push(&[("result", "accepted")], load(&stats.connections_accepted));
        connections.push(
            &[("result", "over_limit")],
            load(&stats.connections_over_limit),
        );
        vec![
            messages,
            connections,
            MetricFamily::single(
                "countywatch_agent_syslog_connections_open",
                "Syslog TCP connections open.",
                MetricKind::Gauge,
                load(&stats.connections_open),
            ),
            MetricFamily::single(
                "countywatch_agent_syslog_invalid_utf8_total",
                "Accepted syslog messages that were not valid UTF-8 (kept with replacement characters, raw flagged).",
                MetricKind::Counter,
                load(&stats.invalid_utf8),
            ),
            MetricFamily::single(
                "countywatch_agent_syslog_queue_length",
                "Syslog messages received and not yet turned into events.",
                MetricKind::Gauge,
                self.inbox.len() as f64,
            ),
            MetricFamily::single(
                "countywatch_agent_syslog_queue_capacity",
                "Most syslog messages waiting (sources.syslog.queue).",
                MetricKind::Gauge,
                self.inbox.capacity as f64,
            ),
            MetricFamily::single(
                "countywatch_agent_syslog_receive_errors_total",
                "Socket errors of the syslog listeners.",
                MetricKind::Counter,
                load(&stats.receive_errors),
            ),
        ]
    }
}

/// Prefix put before `raw` when the message was not valid UTF-8.
pub const INVALID_UTF8_MARK: &str = "[invalid UTF-8] ";

/// Turns one received message into its event: a device event when a
/// vendor parser knows the message, else `syslog_message`. `device` is the
/// sender; `received_ms` stamps the event; `now_ms` places RFC 3164 years.
/// Returns the event and whether the bytes were not valid UTF-8. Never
/// fails: every message becomes an event.
pub fn message_to_event(
    bytes: &[u8],
    device: &str,
    received_ms: i64,
    now_ms: i64,
) -> (Event, bool) {
    let text = String::from_utf8_lossy(bytes);
    let lossy = matches!(text, Cow::Owned(_));
    let text = escape_controls(&text);
    let header = syslog_header::parse(&text, year_of(now_ms));
    let device_message = parse_device(header.after_pri);
    let (kind, mut fields, msg_id, message) = match device_message {
        Some(found) => {
            let (kind, fields) = found
                .event
                .unwrap_or((EventKind::SyslogMessage, EventFields::default()));
            (kind, fields, Some(found.msg_id), found.text)
        }
        None => (
            EventKind::SyslogMessage,
            EventFields::default(),
            header.msg_id.map(str::to_string),
            header.message,
        ),
    };
    fields.device = Some(device.to_string());
    fields.facility = header.facility;
    fields.syslog_severity = header.severity;
    fields.app_name = header.app_name.map(str::to_string);
    fields.msg_id = msg_id;
    fields.message = Some(message.to_string());
    cap_fields(&mut fields);
    let mut event = Event::new(received_ms, EventSource::Syslog, kind);
    event.fields = fields;
    event.raw = if lossy {
        format!(
            "{INVALID_UTF8_MARK}{}",
            cap(&text, MAX_RAW_BYTES - INVALID_UTF8_MARK.len())
        )
    } else {
        cap(&text, MAX_RAW_BYTES).to_string()
    };
    if text.len() > MAX_RAW_BYTES {
        event.fields.truncated = true;
    }
    (event, lossy)
}

/// The UTC year of `now_ms`, which RFC 3164 timestamps lack.
fn year_of(now_ms: i64) -> i32 {
    use chrono::Datelike;
    chrono::DateTime::from_timestamp_millis(now_ms).map_or(1970, |time| time.year())
}

/// What `replay --source syslog` prints on stderr at the end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Messages read (non-empty lines).
    pub messages: u64,
    /// Events by kind (one per message).
    pub events: std::collections::BTreeMap<EventKind, u64>,
    /// Messages that were not valid UTF-8.
    pub invalid_utf8: u64,
}

impl std::fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "messages read: {}", self.messages)?;
        for (kind, count) in &self.events {
            writeln!(f, "  {}: {count}", kind.as_str())?;
        }
        write!(f, "not valid UTF-8: {}", self.invalid_utf8)
    }
}

/// Reads one message per line (as sent on the wire, `<PRI>` first, or as
/// a syslog daemon wrote it to a file) and writes one JSON event per line.
/// The header's own time stamps each event when it has one; `device` is
/// what the `device` field says.
pub fn replay(
    input: impl Read,
    out: &mut impl Write,
    max_line: usize,
    device: &str,
    now_ms: i64,
) -> std::io::Result<ReplaySummary> {
    let mut summary = ReplaySummary::default();
    let mut reader = std::io::BufReader::with_capacity(256 * 1024, input);
    let mut line = Vec::new();
    let mut json = Vec::with_capacity(1024);
    loop {
        line.clear();
        let read = std::io::BufRead::read_until(&mut reader, b'\n', &mut line)?;
        if read == 0 {
            break;
        }
        let message = framing::trim_line_end(&line);
        if message.is_empty() {
            continue;
        }
        let message = &message[..message.len().min(max_line)];
        let (mut event, lossy) = message_to_event(message, device, now_ms, now_ms);
        if let Some(stamp) = header_time(message, now_ms) {
            event.timestamp_ms = stamp;
        }
        summary.messages += 1;
        summary.invalid_utf8 += u64::from(lossy);
        *summary.events.entry(event.kind).or_default() += 1;
        json.clear();
        serde_json::to_writer(&mut json, &event)?;
        json.push(b'\n');
        out.write_all(&json)?;
    }
    out.flush()?;
    Ok(summary)
}

/// The header's own time, for replay.
fn header_time(message: &[u8], now_ms: i64) -> Option<i64> {
    let text = String::from_utf8_lossy(message);
    syslog_header::parse(&text, year_of(now_ms)).timestamp_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_867_200_000;

    fn event(text: &[u8]) -> Event {
        message_to_event(text, "192.0.2.1", NOW, NOW).0
    }

    #[test]
    fn device_messages_become_device_events_with_syslog_fields() {
        let event = event(b"<189>52: *Mar  1 00:01:02.345: %LINK-3-UPDOWN: Interface GigabitEthernet0/1, changed state to down");
        assert_eq!(event.source, EventSource::Syslog);
        assert_eq!(event.kind, EventKind::InterfaceDown);
        assert_eq!(event.timestamp_ms, NOW);
        let fields = &event.fields;
        assert_eq!(fields.device.as_deref(), Some("192.0.2.1"));
        assert_eq!(fields.interface.as_deref(), Some("GigabitEthernet0/1"));
        assert_eq!(
            (fields.facility, fields.syslog_severity),
            (Some(23), Some(5))
        );
        assert_eq!(fields.msg_id.as_deref(), Some("LINK-3-UPDOWN"));
        assert_eq!(
            fields.message.as_deref(),
            Some("Interface GigabitEthernet0/1, changed state to down")
        );
        let huawei = message_to_event(b"<188>Nov 28 2026 01:02:03-08:00 HUAWEI %%01SSH/5/SSH_USER_LOGIN_FAIL(s)[12]:The SSH user failed to login. (ServiceType=stelnet, FailedReason=Password authentication failed, UserName=admin, UserAddress=203.0.113.5, LocalAddress=192.0.2.1, VPNInstanceName=_public_)", "192.0.2.2", NOW, NOW).0;
        assert_eq!(huawei.kind, EventKind::DeviceLoginFailed);
        assert_eq!(huawei.fields.user.as_deref(), Some("admin"));
        assert_eq!(
            huawei.fields.msg_id.as_deref(),
            Some("SSH/5/SSH_USER_LOGIN_FAIL")
        );
    }

    #[test]
    fn everything_else_is_a_syslog_message_never_dropped() {
        let event = event(b"<38>1 2026-11-28T01:02:03Z fw-1 sshd 77 AUTH - hello");
        assert_eq!(event.kind, EventKind::SyslogMessage);
        assert_eq!(event.fields.app_name.as_deref(), Some("sshd"));
        assert_eq!(event.fields.msg_id.as_deref(), Some("AUTH"));
        assert_eq!(event.fields.message.as_deref(), Some("hello"));
        assert_eq!(
            (event.fields.facility, event.fields.syslog_severity),
            (Some(4), Some(6))
        );
        for garbage in [
            &b""[..],
            b"<",
            b"<999>x",
            b"\x00\x01\x02",
            b"%%",
            b"%%01A/1/B:(",
        ] {
            let event = message_to_event(garbage, "d", NOW, NOW).0;
            assert_eq!(event.kind, EventKind::SyslogMessage, "{garbage:?}");
            assert!(event.validate(0).is_ok());
        }
    }

    #[test]
    fn non_utf8_is_kept_lossily_and_flagged_and_controls_escaped() {
        let (event, lossy) = message_to_event(
            b"<13>Nov 28 01:02:03 h app: caf\xe9 \x1b[31mred\n",
            "d",
            NOW,
            NOW,
        );
        assert!(lossy);
        assert!(event.raw.starts_with(INVALID_UTF8_MARK), "{}", event.raw);
        assert!(event.raw.contains("caf\u{fffd}"), "{}", event.raw);
        assert!(event.raw.contains("\\x1b[31mred\\x0a"), "{}", event.raw);
        assert!(!event.fields.message.unwrap().contains('\x1b'));
    }

    #[test]
    fn huge_messages_are_capped_to_the_wire_limits() {
        let mut text = b"<13>Nov 28 01:02:03 h app: ".to_vec();
        text.extend(std::iter::repeat_n(b'x', 70_000));
        let (event, _) = message_to_event(&text, "d", NOW, NOW);
        assert!(event.validate(0).is_ok());
        assert!(event.fields.truncated);
    }

    #[test]
    fn no_prefix_or_mutation_of_a_device_message_panics() {
        let fixtures: [&[u8]; 6] = [
            b"<188>52: *Mar  1 00:01:02.345: %SEC_LOGIN-4-LOGIN_FAILED: Login failed [user: admin] [Source: 10.1.1.1] [localport: 22] [Reason: Login Authentication Failed] at 10:56:24 UTC Wed Mar 3 2010",
            b"<189>%SYS-5-CONFIG_I: Configured from console by admin on vty0 (192.0.2.10)",
            b"<188>Nov 28 2026 01:02:03-08:00 HUAWEI %%01SSH/5/SSH_USER_LOGIN_FAIL(s)[12]:The SSH user failed to login. (ServiceType=stelnet, FailedReason=x, UserName=admin, UserAddress=203.0.113.5, VPNInstanceName=)",
            b"<190>Nov 28 01:02:03:123 2026 H3C %%10SSHS/6/SSHS_LOG: Authentication failed for user root from 140.1.1.46 port 16266 because of invalid username or wrong password.",
            b"<188>%%01IFNET/2/linkDown_active(l):CID=0x1;The interface status changes. (ifName=GE1/0/1, ifIndex=7, Reason=down)",
            b"<134>1 2026-11-28T01:02:03.456Z fw-1 policy 77 RELOAD [a b=\"c\"] policy reloaded",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for fixture in fixtures {
            for end in 0..=fixture.len() {
                let event = message_to_event(&fixture[..end], "d", NOW, NOW).0;
                assert!(event.validate(0).is_ok());
            }
            for _ in 0..300 {
                let mut mutated = fixture.to_vec();
                for _ in 0..3 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let at = (seed % mutated.len() as u64) as usize;
                    mutated[at] = (seed >> 32) as u8;
                }
                let event = message_to_event(&mutated, "d", NOW, NOW).0;
                assert!(event.validate(0).is_ok());
            }
        }
    }

    #[test]
    fn a_full_inbox_drops_and_counts() {
        let inbox = Inbox::new(2, Arc::new(tokio::sync::Notify::new()));
        for _ in 0..5 {
            inbox.offer("127.0.0.1".parse().unwrap(), b"<13>x");
        }
        assert_eq!(inbox.stats.accepted.load(Ordering::Relaxed), 2);
        assert_eq!(inbox.stats.dropped_queue_full.load(Ordering::Relaxed), 3);
        assert_eq!(inbox.take(10, 5).len(), 1, "byte budget");
        assert_eq!(inbox.take(10, 1).len(), 1, "at least one");
        assert!(inbox.is_empty());
    }

    #[test]
    fn replay_prints_one_event_per_line_with_the_header_time() {
        let input = b"<13>Nov 28 01:02:03 h app: one\n\n<189>%SYS-5-CONFIG_I: Configured from console by admin on vty0 (10.0.0.1)\n";
        let mut out = Vec::new();
        let summary = replay(&input[..], &mut out, 8192, "sw-1", NOW).unwrap();
        assert_eq!(summary.messages, 2);
        assert_eq!(
            summary.events.get(&EventKind::DeviceConfigChanged),
            Some(&1)
        );
        let lines: Vec<Event> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines[0].timestamp_ms, 1_795_827_723_000);
        assert_eq!(lines[1].fields.device.as_deref(), Some("sw-1"));
    }
}
