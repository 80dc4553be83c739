//! Security-event forwarding: every event the registry stored, sent to a
//! SIEM or syslog relay as RFC 5424 syslog over TCP with octet-counting
//! framing (RFC 6587), over TLS (RFC 5425), or as JSON lines over HTTP(S).
//!
//! The registry's `events` table in `<data_dir>/collector.db` is the queue:
//! events are stored there exactly once before an agent's batch is
//! acknowledged, and their `id` only grows. Each output keeps a durable
//! cursor (the last id it delivered, table `forward_cursors` in
//! `<data_dir>/outputs.db`) and advances it only after a write succeeded,
//! so a receiver outage or a collector restart resends from the cursor:
//! at least once, never lost while the event is stored. This module reads
//! the events table through its own read-only connection and never writes
//! it.
//!
//! Plain TCP syslog has no acknowledgement: bytes accepted by the kernel
//! before the receiver dies are lost from the receiver's side too (RFC 5425
//! and 6587 share this); use `json_lines`, which waits for the HTTP answer,
//! where that matters.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use countywatch_wire::Event;
use prometheus::{IntCounterVec, Opts};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use crate::event_log::{EventCursor, EventLog, StoredEvent};
use crate::output::config::{ForwardConfig, HttpUrl, parse_host_port, severity_number};
use crate::output::connect;
use countywatch_net::backoff::backoff;
use countywatch_net::connect::{Connector, Stream};
use countywatch_net::http_client::HttpClient;
use countywatch_net::send_error::SendError;

/// The outcomes `countywatch_forward_events_total` is labelled with.
pub const RESULTS: [&str; 4] = ["sent", "filtered", "retried", "rejected"];

/// The SD-ID of the structured data element holding an event's own fields.
/// 32473 is the private enterprise number RFC 5612 reserves for
/// documentation; a deployment that registers its own can change it here.
pub const SD_EVENT: &str = "countywatch@32473";
/// The SD-ID of the element holding the event's typed fields.
pub const SD_FIELDS: &str = "fields@32473";

/// The forwarding metrics, labelled by output name.
#[derive(Clone)]
pub struct ForwardMetrics {
    /// Events by outcome: `sent`, `filtered` (skipped by the output's
    /// filter), `retried` (a failed attempt), `rejected` (a 4xx answer).
    pub events: IntCounterVec,
    /// The id of the last event delivered (the durable cursor).
    pub cursor: prometheus::IntGaugeVec,
    /// When a write last succeeded, Unix seconds.
    pub last_success: prometheus::GaugeVec,
}

impl ForwardMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let events = IntCounterVec::new(
            Opts::new(
                "countywatch_forward_events_total",
                "Security events handled by forwarding outputs, by outcome.",
            ),
            &["output", "result"],
        )?;
        let cursor = prometheus::IntGaugeVec::new(
            Opts::new(
                "countywatch_forward_cursor_event_id",
                "The id of the last event a forwarding output delivered.",
            ),
            &["output"],
        )?;
        let last_success = prometheus::GaugeVec::new(
            Opts::new(
                "countywatch_forward_last_success_timestamp_seconds",
                "When a forwarding output's last write succeeded, in Unix seconds.",
            ),
            &["output"],
        )?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(cursor.clone()))?;
        registry.register(Box::new(last_success.clone()))?;
        Ok(ForwardMetrics {
            events,
            cursor,
            last_success,
        })
    }
}

/// Where an output's events go.
enum Target {
    /// Syslog over TCP or TLS.
    Syslog {
        /// How to connect.
        connector: Connector,
        /// The open connection.
        stream: Option<Box<dyn Stream>>,
        /// Syslog facility.
        facility: u8,
    },
    /// JSON lines POSTed over HTTP(S).
    JsonLines {
        /// The client.
        client: HttpClient,
        /// `Authorization` header value, if configured.
        authorization: Option<String>,
    },
}

/// Forwards events to one output until `stopped` turns true.
async fn forward_loop(
    mut cursor: Cursor,
    config: ForwardConfig,
    metrics: ForwardMetrics,
    mut stopped: watch::Receiver<bool>,
) {
    let name = config.name.clone();
    let mut target = match build_target(&config) {
        Ok(target) => target,
        Err(error) => {
            tracing::error!(output = %name, error = %format!("{error:#}"), "forwarding output disabled");
            return;
        }
    };
    for result in RESULTS {
        metrics.events.with_label_values(&[&name, result]);
    }
    metrics
        .cursor
        .with_label_values(&[&name])
        .set(cursor.position.id());
    let max_backoff = config.max_backoff.get();
    // Failures in a row, for the backoff.
    let mut failures = 0u32;
    let mut failing = false;
    let filter = Filter::new(&config);
    while !*stopped.borrow() {
        let limit = config.max_events_per_send;
        let (read_cursor, events) = match tokio::task::spawn_blocking(move || {
            let events = cursor.read(limit);
            (cursor, events)
        })
        .await
        {
            Ok(result) => result,
            Err(_) => return,
        };
        cursor = read_cursor;
        let events = match events {
            Ok(events) => events,
            Err(error) => {
                tracing::error!(output = %name, error = %format!("{error:#}"), "cannot read stored events");
                pause(&mut stopped, max_backoff).await;
                continue;
            }
        };
        let Some(last) = events.last().map(|event| EventCursor::from_id(event.id)) else {
            // Caught up: look again shortly. A query on the primary key
            // costs microseconds, so polling is cheaper than wiring a
            // notification through the ingest path.
            pause(&mut stopped, Duration::from_millis(200)).await;
            continue;
        };
        let selected: Vec<&StoredEvent> = events
            .iter()
            .filter(|event| filter.accepts(event))
            .collect();
        let filtered = (events.len() - selected.len()) as u64;
        let outcome = match selected.is_empty() {
            true => Ok(()),
            // A shutdown abandons the write; the cursor has not moved, so
            // these events are sent again on the next start.
            false => tokio::select! {
                outcome = send(&mut target, &selected) => outcome,
                _ = stopped.changed() => break,
            },
        };
        match outcome {
            Ok(()) | Err(SendFailure::Rejected(_)) => {
                if let Err(SendFailure::Rejected(message)) = &outcome {
                    tracing::warn!(output = %name, %message, events = selected.len(), "receiver refused events; skipping them");
                    count(&metrics, &name, "rejected", selected.len() as u64);
                } else {
                    count(&metrics, &name, "sent", selected.len() as u64);
                }
                count(&metrics, &name, "filtered", filtered);
                let saved = tokio::task::spawn_blocking(move || {
                    let saved = cursor.advance(last);
                    (cursor, saved)
                })
                .await;
                let Ok((saved_cursor, saved)) = saved else {
                    return;
                };
                cursor = saved_cursor;
                if let Err(error) = saved {
                    tracing::error!(output = %name, error = %format!("{error:#}"), "cannot save the forwarding cursor");
                }
                metrics.cursor.with_label_values(&[&name]).set(last.id());
                if !selected.is_empty() {
                    metrics
                        .last_success
                        .with_label_values(&[&name])
                        .set(unix_seconds());
                }
                if failing {
                    tracing::info!(output = %name, "forwarding receiver reachable again");
                    failing = false;
                }
                failures = 0;
            }
            Err(SendFailure::Retry(message)) => {
                count(&metrics, &name, "retried", selected.len() as u64);
                if !failing {
                    tracing::warn!(output = %name, %message, "cannot forward events, will retry with backoff");
                    failing = true;
                }
                failures = failures.saturating_add(1);
                let wait = backoff(failures, Duration::from_millis(100), max_backoff);
                pause(&mut stopped, wait).await;
            }
        }
    }
}

fn count(metrics: &ForwardMetrics, name: &str, result: &str, events: u64) {
    if events > 0 {
        metrics
            .events
            .with_label_values(&[name, result])
            .inc_by(events);
    }
}

fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Why a send failed.
enum SendFailure {
    /// Try the same events again later.
    Retry(String),
    /// The receiver refused them for good.
    Rejected(String),
}

fn build_target(config: &ForwardConfig) -> anyhow::Result<Target> {
    if let Some(syslog) = &config.syslog {
        let (host, port) = parse_host_port(&syslog.address.value)?;
        return Ok(Target::Syslog {
            connector: connect::connector(&host, port, syslog.tls.as_ref())?,
            stream: None,
            facility: syslog.facility,
        });
    }
    if let Some(json) = &config.json_lines {
        let url = HttpUrl::parse(&json.url.value)?;
        let authorization = match &json.bearer_token_file {
            Some(file) => Some(format!(
                "Bearer {}",
                countywatch_net::secret::read_secret(file)?
            )),
            None => None,
        };
        return Ok(Target::JsonLines {
            client: connect::http_client(&url, json.tls.as_ref(), Duration::from_secs(30))?,
            authorization,
        });
    }
    anyhow::bail!("no syslog or json_lines target")
}

async fn send(target: &mut Target, events: &[&StoredEvent]) -> Result<(), SendFailure> {
    match target {
        Target::Syslog {
            connector,
            stream,
            facility,
        } => {
            let mut frames = Vec::with_capacity(events.len() * 256);
            for event in events {
                let message = format_syslog(event, *facility);
                frames.extend_from_slice(format!("{} ", message.len()).as_bytes());
                frames.extend_from_slice(message.as_bytes());
            }
            // A receiver that closed the connection while we were idle
            // would otherwise swallow the next write: the kernel accepts it
            // and only the write after fails. Syslog receivers never send,
            // so anything readable (end of stream, an error) means closed.
            if let Some(open) = stream.as_mut()
                && !still_open(open).await
            {
                *stream = None;
            }
            if stream.is_none() {
                *stream = Some(
                    connector
                        .connect(Duration::from_secs(10))
                        .await
                        .map_err(|error| SendFailure::Retry(error.to_string()))?,
                );
            }
            let Some(open) = stream.as_mut() else {
                return Err(SendFailure::Retry("no connection".to_string()));
            };
            let written = tokio::time::timeout(Duration::from_secs(30), async {
                open.write_all(&frames).await?;
                open.flush().await
            })
            .await;
            match written {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => {
                    *stream = None;
                    Err(SendFailure::Retry(error.to_string()))
                }
                Err(_) => {
                    *stream = None;
                    Err(SendFailure::Retry("write timed out".to_string()))
                }
            }
        }
        Target::JsonLines {
            client,
            authorization,
        } => {
            let mut body = String::with_capacity(events.len() * 256);
            for event in events {
                body.push_str(&format_json_line(event));
                body.push('\n');
            }
            let mut headers = vec![("Content-Type", "application/x-ndjson")];
            if let Some(value) = authorization.as_deref() {
                headers.push(("Authorization", value));
            }
            client
                .post(&headers, Bytes::from(body))
                .await
                .map(|_| ())
                .map_err(|error| match error {
                    SendError::Retryable(message) => SendFailure::Retry(message),
                    SendError::Permanent(message) => SendFailure::Rejected(message),
                })
        }
    }
}

/// Whether an idle syslog connection is still open: a read that would
/// block means yes; end of stream, an error or unexpected data mean no.
async fn still_open(stream: &mut Box<dyn Stream>) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buffer = [0u8; 64];
    // `timeout` polls the read once before looking at the (zero) deadline.
    tokio::time::timeout(Duration::ZERO, stream.read(&mut buffer))
        .await
        .is_err()
}

async fn pause(stopped: &mut watch::Receiver<bool>, wait: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = stopped.changed() => {}
    }
}

/// An output's durable position in the event log.
struct Cursor {
    /// The event log, read-only.
    events: EventLog,
    /// Connection to `outputs.db`, where the cursor is saved.
    state: Connection,
    /// The output's name.
    name: String,
    /// The last event delivered.
    position: EventCursor,
}

impl Cursor {
    /// Loads the output's cursor, creating it at the start (or the current
    /// end) of the event log on first use.
    fn open(data_dir: &Path, name: &str, from_beginning: bool) -> anyhow::Result<Cursor> {
        let events = EventLog::open_read_only(data_dir).context("cannot read events")?;
        let state = crate::output::open_database(data_dir)?;
        let saved: Option<i64> = state
            .query_row(
                "SELECT last_id FROM forward_cursors WHERE output = ?1",
                params![name],
                |row| row.get(0),
            )
            .optional()?;
        let position = match saved {
            Some(last_id) => EventCursor::from_id(last_id),
            None => {
                let start = match from_beginning {
                    true => EventCursor::START,
                    false => events.end()?,
                };
                state.execute(
                    "INSERT INTO forward_cursors (output, last_id) VALUES (?1, ?2)",
                    params![name, start.id()],
                )?;
                start
            }
        };
        Ok(Cursor {
            events,
            state,
            name: name.to_string(),
            position,
        })
    }

    /// Up to `limit` events after the cursor, oldest first. A row whose
    /// body does not decode is skipped with a log line rather than
    /// blocking the output forever.
    fn read(&self, limit: usize) -> anyhow::Result<Vec<StoredEvent>> {
        let mut events = Vec::new();
        for row in self.events.read_after(self.position, limit)? {
            match row.decode() {
                Ok(event) => events.push(event),
                Err(error) => {
                    tracing::error!(output = %self.name, id = row.id, %error, "stored event does not decode; not forwarded");
                }
            }
        }
        Ok(events)
    }

    /// Saves `position` as delivered.
    fn advance(&mut self, position: EventCursor) -> anyhow::Result<()> {
        self.state.execute(
            "UPDATE forward_cursors SET last_id = ?2 WHERE output = ?1",
            params![self.name, position.id()],
        )?;
        self.position = position;
        Ok(())
    }
}

/// An output's filter, compiled.
struct Filter {
    /// Accepted sources; all when empty.
    sources: Vec<String>,
    /// Accepted kinds; all when empty.
    kinds: Vec<String>,
    /// Least severe accepted severity number.
    max_severity_number: u8,
}

impl Filter {
    fn new(config: &ForwardConfig) -> Filter {
        Filter {
            sources: config.filter.sources.clone(),
            kinds: config.filter.kinds.clone(),
            max_severity_number: config
                .filter
                .min_severity
                .as_ref()
                .and_then(|severity| severity_number(&severity.value))
                .unwrap_or(7),
        }
    }

    fn accepts(&self, stored: &StoredEvent) -> bool {
        let event = &stored.event;
        let source = event.source.as_str();
        let kind = event.kind.as_str();
        (self.sources.is_empty() || self.sources.iter().any(|wanted| wanted == source))
            && (self.kinds.is_empty() || self.kinds.iter().any(|wanted| wanted == kind))
            && severity(event) <= self.max_severity_number
    }
}

/// An event's syslog severity, from its kind: `err` for a likely attack in
/// progress, `warning` for failures and changes to accounts, files and
/// listening ports, `notice` for successful privileged access, `info` for
/// session ends; `notice` for kinds added later until they are placed here.
pub fn severity(event: &Event) -> u8 {
    match event.kind.as_str() {
        "ssh_possible_break_in" => 3,
        "ssh_login_failed"
        | "ssh_invalid_user"
        | "ssh_max_auth_attempts"
        | "sudo_auth_failed"
        | "su_failed"
        | "pam_auth_failed"
        | "user_added"
        | "user_deleted"
        | "user_modified"
        | "group_added"
        | "group_deleted"
        | "group_member_added"
        | "group_member_removed"
        | "passwd_changed"
        | "file_changed"
        | "file_created"
        | "file_deleted"
        | "file_mode_changed"
        | "port_opened"
        | "spool_overflow"
        | "spool_damaged"
        | "agent_silent" => 4,
        "ssh_connection_closed" | "ssh_disconnected" | "port_closed" => 6,
        _ => 5,
    }
}

/// The event's fields as flat (name, text) pairs, sorted by name:
/// nested file states become `before.size` and the like, lists are joined
/// with commas, booleans and numbers are written as JSON writes them.
pub fn flat_fields(event: &Event) -> Vec<(String, String)> {
    fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match value {
            serde_json::Value::Object(map) => {
                for (name, inner) in map {
                    let name = match prefix.is_empty() {
                        true => name.clone(),
                        false => format!("{prefix}.{name}"),
                    };
                    flatten(&name, inner, out);
                }
            }
            serde_json::Value::Array(items) => {
                let texts: Vec<String> = items
                    .iter()
                    .map(|item| match item {
                        serde_json::Value::String(text) => text.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                out.push((prefix.to_string(), texts.join(",")));
            }
            serde_json::Value::String(text) => out.push((prefix.to_string(), text.clone())),
            serde_json::Value::Null => {}
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    if let Ok(value) = serde_json::to_value(&event.fields) {
        flatten("", &value, &mut out);
    }
    out
}

/// One RFC 5424 message (without framing):
/// `<PRI>1 TIMESTAMP HOSTNAME countywatch - KIND [countywatch@32473 ...][fields@32473 ...] BOM RAW`.
/// HOSTNAME is the agent the event is about; the structured data carries
/// the event id, agent, source, kind and receive time, then every field.
pub fn format_syslog(stored: &StoredEvent, facility: u8) -> String {
    let event = &stored.event;
    let priority = u16::from(facility) * 8 + u16::from(severity(event));
    let mut out = String::with_capacity(256 + event.raw.len());
    out.push_str(&format!(
        "<{priority}>1 {} {} countywatch - {} [{SD_EVENT}",
        rfc3339_ms(event.timestamp_ms),
        header_field(&stored.agent, 255),
        header_field(event.kind.as_str(), 32),
    ));
    for (name, value) in [
        ("id", stored.id.to_string()),
        ("agent", stored.agent.clone()),
        ("source", event.source.as_str().to_string()),
        ("kind", event.kind.as_str().to_string()),
        ("received", rfc3339_ms(stored.received_ms)),
    ] {
        push_param(&mut out, name, &value);
    }
    out.push(']');
    let fields = flat_fields(event);
    if !fields.is_empty() {
        out.push('[');
        out.push_str(SD_FIELDS);
        for (name, value) in &fields {
            push_param(&mut out, &sd_name(name), value);
        }
        out.push(']');
    }
    if !event.raw.is_empty() {
        out.push(' ');
        out.push('\u{feff}');
        out.push_str(&event.raw);
    }
    out
}

/// One JSON object for the JSON-lines output.
pub fn format_json_line(stored: &StoredEvent) -> String {
    let event = &stored.event;
    serde_json::json!({
        "id": stored.id,
        "agent": stored.agent,
        "received_ms": stored.received_ms,
        "timestamp_ms": event.timestamp_ms,
        "severity": crate::output::config::SEVERITIES[usize::from(severity(event))],
        "source": event.source,
        "kind": event.kind,
        "fields": event.fields,
        "raw": event.raw,
    })
    .to_string()
}

fn push_param(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        // RFC 5424 6.3.3: '"', '\' and ']' are escaped with a backslash.
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// A header field: printable US-ASCII only, at most `max` characters, `-`
/// when empty (RFC 5424 NILVALUE).
fn header_field(text: &str, max: usize) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(max)
        .collect();
    if cleaned.is_empty() {
        "-".to_string()
    } else {
        cleaned
    }
}

/// An SD-NAME: printable US-ASCII except `=`, space, `]` and `"`, at most 32.
fn sd_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '=' | ']' | '"') {
                c
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    if cleaned.is_empty() {
        "_".to_string()
    } else {
        cleaned
    }
}

/// Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339_ms(unix_ms: i64) -> String {
    let seconds = unix_ms.div_euclid(1000);
    let millis = unix_ms.rem_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let in_day = seconds.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    )
}

/// Starts forwarding for every configured output. Each cursor is opened
/// (on first use, placed) here, before the ingest listener accepts
/// anything, so that no event stored after start-up can fall before it.
pub fn spawn_all(
    data_dir: &Path,
    outputs: &[ForwardConfig],
    metrics: &ForwardMetrics,
    stopped: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    for config in outputs {
        let cursor = Cursor::open(data_dir, &config.name, config.from_beginning)
            .with_context(|| format!("forwarding output {:?}", config.name))?;
        tracing::info!(output = %config.name, cursor = cursor.position.id(), "forwarding output started");
        tasks.push(tokio::spawn(forward_loop(
            cursor,
            config.clone(),
            metrics.clone(),
            stopped.clone(),
        )));
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use countywatch_wire::{EventFields, EventKind, EventSource, FileState};
    use tokio::io::AsyncWriteExt;

    fn stored(kind: EventKind, fields: EventFields, raw: &str) -> StoredEvent {
        let mut event = Event::new(1_764_295_675_123, EventSource::Auth, kind);
        event.fields = fields;
        event.raw = raw.into();
        StoredEvent {
            id: 42,
            agent: "web-1".into(),
            received_ms: 1_764_295_675_500,
            event,
        }
    }

    fn failed_login() -> StoredEvent {
        stored(
            EventKind::SshLoginFailed,
            EventFields {
                user: Some("张三".into()),
                reason: Some("a \"quoted\" ] \\ value".into()),
                src_ip: Some("192.0.2.7".parse().unwrap()),
                ..EventFields::default()
            },
            "Failed password for 张三",
        )
    }

    #[test]
    fn syslog_messages_follow_rfc5424_with_escaped_structured_data() {
        assert_eq!(
            format_syslog(&failed_login(), 10),
            "<84>1 2025-11-28T02:07:55.123Z web-1 countywatch - ssh_login_failed \
             [countywatch@32473 id=\"42\" agent=\"web-1\" source=\"auth\" kind=\"ssh_login_failed\" received=\"2025-11-28T02:07:55.500Z\"]\
             [fields@32473 reason=\"a \\\"quoted\\\" \\] \\\\ value\" src_ip=\"192.0.2.7\" user=\"张三\"] \
             \u{feff}Failed password for 张三"
        );
    }

    #[test]
    fn nested_and_list_fields_are_flattened() {
        let event = stored(
            EventKind::FileChanged,
            EventFields {
                path: Some("/etc/公文".into()),
                after: Some(FileState {
                    size: 3,
                    mode: 0o100644,
                    ..FileState::default()
                }),
                users_changed: vec!["a".into(), "b".into()],
                ..EventFields::default()
            },
            "",
        );
        let fields = flat_fields(&event.event);
        let names: Vec<&str> = fields.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "after.gid",
                "after.mode",
                "after.mtime_ms",
                "after.size",
                "after.uid",
                "path",
                "users_changed"
            ]
        );
        assert!(fields.contains(&("users_changed".into(), "a,b".into())));
        assert!(fields.contains(&("after.size".into(), "3".into())));
    }

    #[test]
    fn timestamps_convert_across_leap_years_and_before_1970() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_001), "2000-02-29T00:00:00.001Z");
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn filters_match_source_kind_and_severity() {
        let config: ForwardConfig = countywatch_config::config_file::parse(
            Path::new("f.yaml"),
            "name: f\nsyslog:\n  address: 127.0.0.1:1\nfilter:\n  sources: [auth]\n  min_severity: warning\n",
        )
        .unwrap();
        let filter = Filter::new(&config);
        let accepted = stored(EventKind::SshLoginAccepted, EventFields::default(), "");
        assert!(
            !filter.accepts(&accepted),
            "notice is less severe than warning"
        );
        assert!(filter.accepts(&failed_login()));
        let mut other = failed_login();
        other.event.source = EventSource::Fim;
        assert!(!filter.accepts(&other));
    }

    /// Reads one HTTP/1.1 request (head and Content-Length body) and
    /// answers `status`; returns the body.
    async fn answer_one(stream: &mut tokio::net::TcpStream, status: &str) -> String {
        use tokio::io::AsyncReadExt;
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let read = stream.read(&mut buffer).await.unwrap();
            assert!(read > 0, "connection closed mid-request");
            request.extend_from_slice(&buffer[..read]);
            let text = String::from_utf8_lossy(&request).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text[..end]
                    .lines()
                    .find_map(|line| {
                        line.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(|value| value.trim().parse().unwrap())
                    })
                    .unwrap();
                if request.len() >= end + 4 + length {
                    let body = String::from_utf8(request[end + 4..end + 4 + length].to_vec());
                    stream
                        .write_all(
                            format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes(),
                        )
                        .await
                        .unwrap();
                    return body.unwrap();
                }
            }
        }
    }

    #[tokio::test]
    async fn json_lines_are_posted_once_and_the_cursor_survives_in_outputs_db() {
        let dir = tempfile::tempdir().unwrap();
        let registry = crate::registry::Registry::open(dir.path()).unwrap();
        let event = |n: u32| {
            let source = match n.is_multiple_of(2) {
                true => EventSource::Auth,
                false => EventSource::Fim,
            };
            let mut event = Event::new(1, source, EventKind::SshLoginFailed);
            event.fields.count = Some(n);
            event.raw = "日志".into();
            event
        };
        let events: Vec<Event> = (0..6).map(event).collect();
        registry.accept_batch("a", 1, &events, 5).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config: ForwardConfig = countywatch_config::config_file::parse(
            Path::new("f.yaml"),
            &format!(
                "name: j\njson_lines:\n  url: http://{}/ingest\nfrom_beginning: true\nfilter:\n  sources: [auth]\n",
                listener.local_addr().unwrap()
            ),
        )
        .unwrap();
        let metrics = ForwardMetrics::register(&prometheus::Registry::new()).unwrap();
        let (stop, stopped) = watch::channel(false);
        let tasks = spawn_all(
            dir.path(),
            std::slice::from_ref(&config),
            &metrics,
            &stopped,
        )
        .unwrap();
        let (mut stream, _) = listener.accept().await.unwrap();
        // The first answer is a 503: the client drops the connection and
        // the same events must come again on a new one.
        let first = answer_one(&mut stream, "503 Service Unavailable").await;
        drop(stream);
        let (mut stream, _) = listener.accept().await.unwrap();
        assert_eq!(
            answer_one(&mut stream, "200 OK").await,
            first,
            "retried as they were"
        );
        let lines: Vec<serde_json::Value> = first
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let numbers: Vec<u64> = lines
            .iter()
            .map(|line| line["fields"]["count"].as_u64().unwrap())
            .collect();
        assert_eq!(numbers, [0, 2, 4], "only auth events, in order");
        assert_eq!(lines[0]["raw"], "日志");
        assert!(wait_for(|| metrics.cursor.with_label_values(&["j"]).get() == 6).await);
        assert_eq!(
            metrics.events.with_label_values(&["j", "filtered"]).get(),
            3
        );
        assert_eq!(metrics.events.with_label_values(&["j", "retried"]).get(), 3);
        let _ = stop.send(true);
        for task in tasks {
            task.await.unwrap();
        }
        drop(stream.shutdown().await);

        // A restart resumes after the last delivered event.
        let cursor = Cursor::open(dir.path(), "j", true).unwrap();
        assert_eq!(cursor.position, EventCursor::from_id(6));
        assert!(cursor.read(10).unwrap().is_empty());
    }

    async fn wait_for(mut condition: impl FnMut() -> bool) -> bool {
        for _ in 0..200 {
            if condition() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[test]
    fn json_lines_carry_every_field() {
        let line = format_json_line(&failed_login());
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["fields"]["user"], "张三");
        assert_eq!(value["severity"], "warning");
        assert_eq!(value["kind"], "ssh_login_failed");
        assert_eq!(value["id"], 42);
    }
}
