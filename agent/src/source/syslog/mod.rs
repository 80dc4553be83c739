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
//! Servers too old to run the agent (CentOS 5/6) forward their
//! authentication log here too: a message whose program is an auth program
//! (`countywatch_parse::forwarded_auth`) goes to the auth-log parsers
//! instead, and its events (`source: auth`) carry the sending server's
//! host name as `host` and `device` (the name in the header when it is a
//! plausible host name other than this agent's, else the sender's
//! address), and `path: syslog:ADDRESS`.
//!
//! Accounting: every message read off a socket is counted exactly once in
//! [`ReceiverStats`]: accepted into the inbox, or dropped with its reason.
//! Every accepted message becomes exactly one event in a later
//! [`SyslogSource::drain`], which the run loop spools at once, except a
//! forwarded auth line: its auth events, or none when it is understood and
//! means nothing (counted as ignored); one the auth parsers do not
//! understand still becomes its `syslog_message` event. Received messages
//! have no position to resume from, so what is still in the inbox when the
//! agent stops is lost (and was counted as accepted).

pub mod allow;
pub mod framing;
pub mod listener;

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use countywatch_parse::auth_line::{LineOutcome, LineParser};
use countywatch_parse::sanitize::escape_controls;
use countywatch_parse::syslog_message::{header_time, message_to_event};
use countywatch_wire::{Event, EventKind, MetricFamily, MetricKind};

use countywatch_config::config_file::{Problems, Spanned};
use serde::Deserialize;

use super::log_time::validate_timezone;
use super::{Position, Source, SourceSection, StartContext, StartError};

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

/// The syslog receiver for network devices (`docs/events.md`, `syslog`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogSourceConfig {
    /// UDP address to receive on, `ADDRESS:PORT` (`0.0.0.0:514`,
    /// `[::]:514`); none by default. Port 514 needs root or
    /// CAP_NET_BIND_SERVICE.
    pub udp: Option<Spanned<String>>,
    /// TCP address to receive on (RFC 6587: octet counting or one message
    /// per line); none by default.
    pub tcp: Option<Spanned<String>>,
    /// Senders accepted: CIDR blocks or single addresses (`192.0.2.0/24`,
    /// `10.1.1.1`, `2001:db8::/32`). Messages from anyone else are dropped
    /// and counted. Required when a listener is set; `0.0.0.0/0` and
    /// `::/0` accept everyone.
    pub allow: Vec<Spanned<String>>,
    /// Longest message accepted, in bytes; longer ones are dropped and
    /// counted (RFC 5424 receivers must take 480 and should take 2048).
    pub max_message_bytes: usize,
    /// Most messages waiting to become events. A flood beyond it is dropped
    /// and counted, so memory stays under `queue` × `max_message_bytes`.
    pub queue: usize,
    /// Most TCP connections open at once; more are closed and counted.
    pub max_connections: usize,
    /// The zone of zone-less timestamps (`Dec  6 10:00:01`) in lines that
    /// old servers forward (auth lines, `docs/events.md`): `local` (the
    /// default: this host's zone) or a tzdb name (`Asia/Shanghai`).
    pub timezone: Option<Spanned<String>>,
}

impl Default for SyslogSourceConfig {
    fn default() -> Self {
        SyslogSourceConfig {
            udp: None,
            tcp: None,
            allow: Vec::new(),
            max_message_bytes: 8 * 1024,
            queue: 20_000,
            max_connections: 256,
            timezone: None,
        }
    }
}

impl SyslogSourceConfig {
    /// Whether any listener is configured.
    pub fn enabled(&self) -> bool {
        self.udp.is_some() || self.tcp.is_some()
    }
}

impl SourceSection for SyslogSourceConfig {
    fn validate(&self, problems: &mut Problems) {
        for address in self.udp.iter().chain(&self.tcp) {
            if address.value.parse::<std::net::SocketAddr>().is_err() {
                problems.at(
                    address,
                    format!(
                        "syslog listen address {:?} must be ADDRESS:PORT (0.0.0.0:514, [::]:514)",
                        address.value
                    ),
                );
            }
        }
        for entry in &self.allow {
            if let Err(error) = countywatch_wire::Cidr::parse(&entry.value) {
                problems.at(entry, format!("allow-list entry {:?} {error}", entry.value));
            }
        }
        if self.enabled() && self.allow.is_empty() {
            problems.general(
                "sources.syslog.allow must list the senders (CIDR blocks) when a syslog listener is set",
            );
        }
        if !(480..=65_535).contains(&self.max_message_bytes) {
            problems.general("sources.syslog.max_message_bytes must be between 480 and 65535");
        }
        if !(1..=1_000_000).contains(&self.queue) {
            problems.general("sources.syslog.queue must be between 1 and 1000000");
        }
        if !(1..=10_000).contains(&self.max_connections) {
            problems.general("sources.syslog.max_connections must be between 1 and 10000");
        }
        validate_timezone(self.timezone.as_ref(), problems);
    }
}

/// Binds the syslog listeners when `sources.syslog` sets any (inside a
/// tokio runtime).
pub fn start(context: &mut StartContext<'_>) -> Result<Option<Box<dyn Source>>, StartError> {
    let settings = &context.sources.syslog;
    if !settings.enabled() {
        return Ok(None);
    }
    let source = SyslogSource::start(
        settings,
        Arc::clone(context.wake),
        context.host.to_string(),
        super::source_zone("syslog", settings.timezone.as_ref()),
    )
    .map_err(|source| StartError {
        what: "syslog receiver",
        source,
    })?;
    Ok(Some(Box::new(source)))
}

impl Source for SyslogSource {
    fn poll(&mut self, _now_ms: i64, budget: usize, out: &mut Vec<Event>) -> Option<Position> {
        self.drain(budget.saturating_sub(out.len()), out);
        None
    }

    fn clock_skew(&self) -> Option<u64> {
        Some(self.auth_parser.stats.events_clock_skew)
    }

    fn has_backlog(&self) -> bool {
        !self.inbox.is_empty()
    }

    fn self_metrics(&self) -> Vec<MetricFamily> {
        SyslogSource::metrics(self)
    }
}

/// The running receiver: its inbox and its listeners.
pub struct SyslogSource {
    /// Messages waiting to become events.
    pub inbox: Arc<Inbox>,
    /// The sockets; dropping them stops them.
    pub listeners: listener::Listeners,
    /// The auth-log parsers for forwarded auth lines (zone-less times in
    /// `sources.syslog.timezone`), and their counts.
    pub auth_parser: LineParser,
    /// This agent's name, which a forwarded line may not claim as its host.
    own_host: String,
}

impl SyslogSource {
    /// Binds the configured listeners (inside a tokio runtime) and starts
    /// receiving into a new inbox that signals `wake`. `own_host` is this
    /// agent's name; `zone` the zone of forwarded lines' zone-less times.
    pub fn start(
        config: &SyslogSourceConfig,
        wake: Arc<tokio::sync::Notify>,
        own_host: String,
        zone: jiff::tz::TimeZone,
    ) -> std::io::Result<SyslogSource> {
        let inbox = Arc::new(Inbox::new(config.queue, wake));
        let allow = allow::AllowList::new(config.allow.iter().map(|entry| entry.value.as_str()));
        let listeners = listener::Listeners::start(config, allow, Arc::clone(&inbox))?;
        Ok(SyslogSource {
            inbox,
            listeners,
            auth_parser: LineParser::new(zone),
            own_host,
        })
    }

    /// Turns up to `budget` waiting messages into events appended to `out`,
    /// at most [`MAX_DRAIN_BYTES`] of them, so that a batch of the largest
    /// messages stays under the collector's body and decompression caps.
    pub fn drain(&mut self, budget: usize, out: &mut Vec<Event>) {
        for received in self.inbox.take(budget, MAX_DRAIN_BYTES) {
            let lossy = message_events(
                &mut self.auth_parser,
                &received.bytes,
                &received.from.to_string(),
                received.received_ms,
                &self.own_host,
                out,
            );
            if lossy {
                ReceiverStats::add(&self.inbox.stats.invalid_utf8);
            }
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
        let auth = &self.auth_parser.stats;
        let mut auth_lines = MetricFamily::new(
            "countywatch_agent_syslog_auth_lines_total",
            "Forwarded authentication log lines (an auth program's messages), by what the auth parsers made of them: events, understood and ignored (no event), or not understood (kept as a syslog_message event).",
            MetricKind::Counter,
        );
        for (result, count) in [
            ("event", auth.lines_with_events),
            ("ignored", auth.lines_ignored),
            ("not_understood", auth.lines_unknown),
        ] {
            auth_lines.push(&[("result", result)], count as f64);
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
            auth_lines,
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

/// Turns one received message into its events, appended to `out`: a
/// forwarded auth line through `parser`, anything else its one event.
/// `sender` is the sender's address (or replay's `--device`), `own_host`
/// this agent's name. Returns whether the bytes were not valid UTF-8.
fn message_events(
    parser: &mut LineParser,
    bytes: &[u8],
    sender: &str,
    received_ms: i64,
    own_host: &str,
    out: &mut Vec<Event>,
) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let lossy = matches!(text, std::borrow::Cow::Owned(_));
    let escaped = escape_controls(&text);
    let first = out.len();
    match parser.parse_forwarded(&escaped, received_ms, out) {
        Some(LineOutcome::Events(_)) => {
            for event in &mut out[first..] {
                let server = server_name(&event.host, sender, own_host);
                event.fields.device = Some(server.clone());
                event.fields.path = Some(format!("syslog:{sender}"));
                event.host = server;
            }
            return lossy;
        }
        Some(LineOutcome::Ignored) => return lossy,
        Some(LineOutcome::Unknown) | None => {}
    }
    let (event, lossy) = message_to_event(bytes, sender, received_ms, received_ms);
    out.push(event);
    lossy
}

/// The name a forwarded line's events carry as their host: the host name
/// in its header (lower-cased), unless that is not a plausible host name
/// or is this agent's own name, then the sender's address.
fn server_name(claimed: &str, sender: &str, own_host: &str) -> String {
    let plausible = !claimed.is_empty()
        && claimed.len() <= 253
        && claimed
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_'));
    if plausible && !claimed.eq_ignore_ascii_case(own_host) {
        claimed.to_ascii_lowercase()
    } else {
        sender.to_string()
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
    /// The auth parsers' counts of forwarded auth lines.
    pub auth: countywatch_parse::auth_line::ParseStats,
}

impl std::fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "messages read: {}", self.messages)?;
        for (kind, count) in &self.events {
            writeln!(f, "  {}: {count}", kind.as_str())?;
        }
        writeln!(
            f,
            "forwarded auth lines: {} ({} with events, {} ignored, {} not understood)",
            self.auth.lines,
            self.auth.lines_with_events,
            self.auth.lines_ignored,
            self.auth.lines_unknown
        )?;
        write!(f, "not valid UTF-8: {}", self.invalid_utf8)
    }
}

/// Reads one message per line (as sent on the wire, `<PRI>` first, or as
/// a syslog daemon wrote it to a file) and writes one JSON event per line.
/// The header's own time stamps each event when it has one (zone-less
/// forwarded auth lines in `options.zone`); `device` is what the `device`
/// field says of network devices' messages.
pub fn replay(
    input: impl Read,
    out: &mut impl Write,
    options: &countywatch_parse::auth_replay::ReplayOptions,
    device: &str,
) -> std::io::Result<ReplaySummary> {
    let (max_line, now_ms) = (options.max_line, options.now_ms);
    let mut parser = LineParser::new(options.zone.clone());
    let mut events = Vec::new();
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
        events.clear();
        let lossy = message_events(&mut parser, message, device, now_ms, "", &mut events);
        summary.messages += 1;
        summary.invalid_utf8 += u64::from(lossy);
        for event in &mut events {
            if event.source == countywatch_wire::EventSource::Syslog
                && let Some(stamp) = header_time(message, now_ms, &options.zone)
            {
                event.timestamp_ms = stamp;
            }
            *summary.events.entry(event.kind).or_default() += 1;
            json.clear();
            serde_json::to_writer(&mut json, &*event)?;
            json.push(b'\n');
            out.write_all(&json)?;
        }
    }
    out.flush()?;
    summary.auth = parser.stats;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_867_200_000;

    fn options() -> countywatch_parse::auth_replay::ReplayOptions {
        countywatch_parse::auth_replay::ReplayOptions {
            max_line: 8192,
            now_ms: NOW,
            zone: jiff::tz::TimeZone::UTC,
            unknown_samples: 0,
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
    fn forwarded_auth_lines_become_auth_events_of_the_sending_server() {
        let mut parser = LineParser::default();
        let mut events = Vec::new();
        let send = |parser: &mut LineParser, events: &mut Vec<Event>, text: &str| {
            message_events(parser, text.as_bytes(), "192.0.2.7", NOW, "agent-1", events);
        };
        send(
            &mut parser,
            &mut events,
            "<38>Nov 28 11:50:00 OLD-DB sshd[2412]: Invalid user oracle from 192.0.2.44",
        );
        send(
            &mut parser,
            &mut events,
            "<38>Nov 28 11:50:01 agent-1 sshd[2413]: Invalid user claim from 192.0.2.44",
        );
        send(
            &mut parser,
            &mut events,
            "<38>Nov 28 11:50:02 bad/name sshd[2414]: Invalid user odd from 192.0.2.44",
        );
        send(
            &mut parser,
            &mut events,
            "<86>Nov 28 11:50:03 old-db sshd(pam_unix)[2415]: session closed for user root",
        );
        send(
            &mut parser,
            &mut events,
            "<38>Nov 28 11:50:04 old-db sshd[2416]: a line nobody knows",
        );
        send(
            &mut parser,
            &mut events,
            "<13>Nov 28 11:50:05 old-db ntpd[1]: synchronized",
        );
        let summary: Vec<(&str, &str, Option<&str>)> = events
            .iter()
            .map(|event| {
                (
                    event.kind.as_str(),
                    event.host.as_str(),
                    event.fields.device.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("ssh_invalid_user", "old-db", Some("old-db")),
                ("ssh_invalid_user", "192.0.2.7", Some("192.0.2.7")),
                ("ssh_invalid_user", "192.0.2.7", Some("192.0.2.7")),
                ("syslog_message", "", Some("192.0.2.7")),
                ("syslog_message", "", Some("192.0.2.7")),
            ]
        );
        assert_eq!(events[0].source, countywatch_wire::EventSource::Auth);
        assert_eq!(events[0].fields.path.as_deref(), Some("syslog:192.0.2.7"));
        assert_eq!(events[0].timestamp_ms, NOW - 10 * 60_000);
        assert_eq!(
            (
                parser.stats.lines_with_events,
                parser.stats.lines_ignored,
                parser.stats.lines_unknown
            ),
            (3, 1, 1)
        );
    }

    #[test]
    fn replay_prints_one_event_per_line_with_the_header_time() {
        let input = b"<13>Nov 28 01:02:03 h app: one\n\n<189>%SYS-5-CONFIG_I: Configured from console by admin on vty0 (10.0.0.1)\n";
        let mut out = Vec::new();
        let summary = replay(&input[..], &mut out, &options(), "sw-1").unwrap();
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

    #[test]
    fn replay_reads_forwarded_auth_lines_in_the_given_zone() {
        let input = b"<86>Nov 28 19:10:01 old-db su(pam_unix)[2500]: session opened for user root by alice(uid=500)\n";
        let mut options = options();
        options.zone = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        let mut out = Vec::new();
        let summary = replay(&input[..], &mut out, &options, "sw-1").unwrap();
        let event: Event = serde_json::from_slice(&out).unwrap();
        assert_eq!(event.kind, EventKind::Su);
        assert_eq!(event.host, "old-db");
        assert_eq!(event.timestamp_ms, NOW - 50 * 60_000 + 1_000);
        assert_eq!(summary.auth.lines_with_events, 1);
        assert!(
            summary
                .to_string()
                .contains("forwarded auth lines: 1 (1 with events")
        );
    }
}
