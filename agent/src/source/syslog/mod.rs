//! The syslog receiver: network devices (switches, routers, firewalls that
//! cannot run an agent) send their syslog to a nearby agent, which turns it
//! into events (`source: syslog`).
//!
//! - [`listener`]: UDP and TCP sockets, the allow-list check, the size cap.
//! - [`framing`]: RFC 6587 framing of TCP streams.
//! - [`allow`]: the CIDR allow-list.
//! - This file: the bounded [`Inbox`] between the listeners and the run
//!   loop, and `countywatch-agent replay --source syslog`. Turning a
//!   message into its event is `countywatch_parse::syslog_message`.
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

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use countywatch_parse::syslog_message::{header_time, message_to_event};
use countywatch_wire::{Event, EventKind, MetricFamily, MetricKind};

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

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_867_200_000;

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
