//! Which hosts an agent may speak for: its own name, and the network
//! devices bound to it. Owns the `devices` table of `collector.db`.
//!
//! The certificate names the agent; every event it sends is about that
//! agent (`host` is overwritten with its name), except events about a
//! network device it declares (source `syslog` or `snmp` with `device`
//! set) and metric samples labelled `device_instance`. A device name is
//! bound to the first agent that reports it (an admin moves it with
//! `agents devices move DEVICE --to AGENT`) and can never be `collector`
//! nor the name of an enrolled agent, so one agent's key cannot open
//! incidents on, or put series under, another host. What does not qualify
//! is kept but attributed to the sending agent (events) or dropped
//! (samples, which would otherwise sit beside the other host's real
//! series), counted in `countywatch_ingest_rehosted_total{reason}`.
//!
//! Batches carrying the collector's own metric families or event kinds are
//! refused whole ([`reserved_content`]); the ingest handler answers 400.

use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use countywatch_wire::{Batch, DEVICE_INSTANCE_LABEL, Event, EventKind, EventSource};
use prometheus::{IntCounterVec, Opts};
use rusqlite::{Connection, OptionalExtension, params};

/// The host name of events the collector records itself.
pub const COLLECTOR_HOST: &str = "collector";

/// Metric families the collector writes about agents, which an agent's
/// batch must not carry (they would duplicate the collector's own).
pub const COLLECTOR_FAMILIES: [&str; 2] = [
    "countywatch_agent_up",
    "countywatch_agent_last_seen_timestamp_seconds",
];

/// Event kinds only the collector records.
pub const COLLECTOR_KINDS: [EventKind; 4] = [
    EventKind::AgentSilent,
    EventKind::WebLoginFailed,
    EventKind::IncidentChanged,
    EventKind::AuditCheckpoint,
];

/// Why an event or sample was attributed to its sender instead.
pub const REASONS: [&str; 3] = ["claimed_host", "device_is_agent", "device_bound_elsewhere"];

/// What in a batch belongs to the collector alone, if anything.
pub fn reserved_content(batch: &Batch) -> Option<String> {
    if let Some(family) = batch
        .metrics
        .iter()
        .find(|family| COLLECTOR_FAMILIES.contains(&family.name.as_ref()))
    {
        return Some(format!(
            "metric family {} is the collector's own",
            family.name
        ));
    }
    batch
        .events
        .iter()
        .find(|event| COLLECTOR_KINDS.contains(&event.kind))
        .map(|event| format!("event kind {} is the collector's own", event.kind.as_str()))
}

/// The device an event declares, if it is a network-device event.
fn declared_device(event: &Event) -> Option<&str> {
    matches!(event.source, EventSource::Syslog | EventSource::Snmp)
        .then_some(event.fields.device.as_deref())
        .flatten()
}

/// The `devices` table and the rewrite counter.
pub struct HostBinding {
    /// Its own connection to `collector.db`.
    connection: Mutex<Connection>,
    /// Events and samples attributed to their sender, by reason.
    rehosted: IntCounterVec,
}

impl HostBinding {
    /// Opens `collector.db` (the registry has created and migrated it) and
    /// creates the table if needed.
    pub fn open(data_dir: &Path) -> anyhow::Result<HostBinding> {
        let connection = open_table(data_dir)?;
        let rehosted = IntCounterVec::new(
            Opts::new(
                "countywatch_ingest_rehosted_total",
                "Agents' events attributed to the sending agent, and device samples dropped, because they named a host the agent may not speak for, by reason.",
            ),
            &["reason"],
        )?;
        for reason in REASONS {
            rehosted.with_label_values(&[reason]);
        }
        Ok(HostBinding {
            connection: Mutex::new(connection),
            rehosted,
        })
    }

    /// Registers the counter.
    pub fn register(&self, registry: &prometheus::Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.rehosted.clone()))
    }

    /// Makes `agent`'s events and samples speak only for hosts it may
    /// speak for, binding devices it is the first to report.
    pub fn apply(
        &self,
        agent: &str,
        events: &mut [Event],
        metrics: &mut Vec<countywatch_wire::MetricFamily>,
        now_ms: i64,
    ) -> anyhow::Result<()> {
        let connection = self
            .connection
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut verdicts: std::collections::HashMap<String, Result<(), DeviceRefusal>> =
            Default::default();
        let mut verdict = |device: &str| -> anyhow::Result<Result<(), DeviceRefusal>> {
            if let Some(known) = verdicts.get(device) {
                return Ok(*known);
            }
            let decided = may_speak_for(&connection, agent, device, now_ms)?;
            verdicts.insert(device.to_string(), decided);
            Ok(decided)
        };
        for event in events.iter_mut() {
            let reason = match declared_device(event) {
                Some(device) => match verdict(device)? {
                    Ok(()) if event.host == device || event.host == agent => None,
                    Ok(()) => Some("claimed_host"),
                    Err(refusal) => Some(refusal.label()),
                },
                None if event.host == agent => None,
                None => Some("claimed_host"),
            };
            if let Some(reason) = reason {
                if !event.host.is_empty() {
                    self.rehosted.with_label_values(&[reason]).inc();
                }
                event.host = agent.to_string();
            }
        }
        for family in metrics.iter_mut() {
            let mut kept = Vec::with_capacity(family.samples.len());
            for sample in std::mem::take(&mut family.samples) {
                let device = sample
                    .labels
                    .iter()
                    .find(|(name, _)| name == DEVICE_INSTANCE_LABEL)
                    .map(|(_, value)| value.as_ref());
                match device.map(&mut verdict).transpose()? {
                    Some(Err(refusal)) => self.rehosted.with_label_values(&[refusal.label()]).inc(),
                    _ => kept.push(sample),
                }
            }
            family.samples = kept;
        }
        metrics.retain(|family| !family.samples.is_empty());
        Ok(())
    }
}

/// Why an agent may not speak for a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DeviceRefusal {
    /// The device is the collector or an enrolled agent.
    DeviceIsAgent,
    /// Another agent reported the device first.
    BoundElsewhere,
}

impl DeviceRefusal {
    /// The `reason` label of the rehosted counter.
    fn label(self) -> &'static str {
        match self {
            DeviceRefusal::DeviceIsAgent => "device_is_agent",
            DeviceRefusal::BoundElsewhere => "device_bound_elsewhere",
        }
    }
}

/// Whether `agent` may speak for `device`: never `collector` or an
/// enrolled agent's name (case-insensitively); otherwise whoever it is
/// bound to, binding it to `agent` if nobody reported it before.
fn may_speak_for(
    connection: &Connection,
    agent: &str,
    device: &str,
    now_ms: i64,
) -> anyhow::Result<Result<(), DeviceRefusal>> {
    if device.eq_ignore_ascii_case(COLLECTOR_HOST) {
        return Ok(Err(DeviceRefusal::DeviceIsAgent));
    }
    let is_agent: bool = connection.query_row(
        "SELECT EXISTS (SELECT 1 FROM agents WHERE lower(name) = lower(?1))",
        params![device],
        |row| row.get(0),
    )?;
    if is_agent {
        return Ok(Err(DeviceRefusal::DeviceIsAgent));
    }
    connection.execute(
        "INSERT OR IGNORE INTO devices (name, agent, bound_ms) VALUES (?1, ?2, ?3)",
        params![device, agent, now_ms],
    )?;
    Ok(match bound_agent(connection, device)? {
        Some(bound) if bound != agent => Err(DeviceRefusal::BoundElsewhere),
        _ => Ok(()),
    })
}

/// The agent `device` is bound to.
fn bound_agent(connection: &Connection, device: &str) -> rusqlite::Result<Option<String>> {
    connection
        .query_row(
            "SELECT agent FROM devices WHERE name = ?1",
            params![device],
            |row| row.get(0),
        )
        .optional()
}

/// Opens `collector.db` with the `devices` table.
fn open_table(data_dir: &Path) -> anyhow::Result<Connection> {
    let path = data_dir.join("collector.db");
    let connection =
        Connection::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    connection.execute_batch(
        "CREATE TABLE IF NOT EXISTS devices (
            name TEXT PRIMARY KEY,
            agent TEXT NOT NULL,
            bound_ms INTEGER NOT NULL
        )",
    )?;
    Ok(connection)
}

/// The devices and the agent each is bound to, by name.
pub fn list(data_dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let connection = open_table(data_dir)?;
    let mut statement = connection.prepare("SELECT name, agent FROM devices ORDER BY name")?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Binds `device` to `agent` (an enrolled, unrevoked agent); returns the
/// agent it was bound to before, if any.
pub fn move_device(data_dir: &Path, device: &str, agent: &str) -> anyhow::Result<Option<String>> {
    let connection = open_table(data_dir)?;
    let enrolled: bool = connection.query_row(
        "SELECT EXISTS (SELECT 1 FROM agents WHERE name = ?1 AND revoked_ms IS NULL)",
        params![agent],
        |row| row.get(0),
    )?;
    if !enrolled {
        anyhow::bail!("no enrolled, unrevoked agent named {agent:?}");
    }
    if may_speak_for(&connection, agent, device, 0)? == Err(DeviceRefusal::DeviceIsAgent) {
        anyhow::bail!("{device:?} is the collector's or an enrolled agent's name, not a device");
    }
    let before = bound_agent(&connection, device)?;
    connection.execute(
        "UPDATE devices SET agent = ?2 WHERE name = ?1",
        params![device, agent],
    )?;
    Ok(before.filter(|before| before != agent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn event(host: &str, source: EventSource, device: Option<&str>) -> Event {
        let mut event = Event::new(1, source, EventKind::SshLoginFailed);
        event.host = host.to_string();
        event.fields.device = device.map(str::to_string);
        event
    }

    #[test]
    fn an_agent_speaks_for_itself_and_the_devices_it_reported_first() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry.enrol("web1", "a", 1).unwrap();
        registry.enrol("web2", "b", 1).unwrap();
        let binding = HostBinding::open(dir.path()).unwrap();
        let mut events = vec![
            event("web2", EventSource::Auth, None),
            event("core-sw1", EventSource::Snmp, Some("core-sw1")),
            event("web2", EventSource::Syslog, Some("web2")),
            event("", EventSource::Syslog, Some("core-sw1")),
        ];
        binding
            .apply("web1", &mut events, &mut Vec::new(), 1)
            .unwrap();
        let hosts: Vec<&str> = events.iter().map(|event| event.host.as_str()).collect();
        assert_eq!(hosts, ["web1", "core-sw1", "web1", "web1"]);
        // core-sw1 is web1's now; web2 reporting it is attributed to web2.
        let mut theirs = vec![event("core-sw1", EventSource::Snmp, Some("core-sw1"))];
        binding
            .apply("web2", &mut theirs, &mut Vec::new(), 2)
            .unwrap();
        assert_eq!(theirs[0].host, "web2");
        assert_eq!(
            move_device(dir.path(), "core-sw1", "web2").unwrap(),
            Some("web1".to_string())
        );
        binding
            .apply("web2", &mut theirs, &mut Vec::new(), 3)
            .unwrap();
        let mut again = vec![event("core-sw1", EventSource::Snmp, Some("core-sw1"))];
        binding
            .apply("web2", &mut again, &mut Vec::new(), 3)
            .unwrap();
        assert_eq!(again[0].host, "core-sw1");
        assert!(move_device(dir.path(), "web1", "web2").is_err());
        assert_eq!(
            binding
                .rehosted
                .with_label_values(&["device_is_agent"])
                .get(),
            1
        );
    }
}
