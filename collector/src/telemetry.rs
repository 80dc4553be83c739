//! The collector's own metrics (`countywatch_*`), kept in a `prometheus`
//! registry and appended to `/metrics` after the agents' metrics: ingest,
//! TLS and connections, enrolment, security events by kind, incidents,
//! the sizes of the data dir's SQLite files (`countywatch_store_*`, read at
//! each scrape), the process (`process_*`) and `countywatch_build_info`.
//!
//! Naming follows Prometheus conventions: counters end in `_total`, units
//! are in the name, and outcomes are a bounded `result` label, never free
//! text, so a hostile peer cannot grow the series count. Label values come
//! from closed sets (event kinds, severities, rule names from the operator's
//! own files) or from enrolled agent names; never a source address or a
//! user name, which an attacker chooses.

use std::path::{Path, PathBuf};

use prometheus::{
    Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every self-metric, registered once at start.
pub struct Telemetry {
    /// The registry the metrics live in.
    registry: Registry,
    /// Ingest requests by outcome (see [`INGEST_RESULTS`]).
    pub ingest_requests: IntCounterVec,
    /// Samples accepted from agents.
    pub ingest_samples: IntCounter,
    /// Events accepted from agents.
    pub ingest_events: IntCounter,
    /// Compressed request bytes accepted.
    pub ingest_bytes: IntCounter,
    /// TLS handshakes that failed or timed out, by listener.
    pub tls_handshake_failures: IntCounterVec,
    /// Connections currently open, by listener.
    pub open_connections: prometheus::IntGaugeVec,
    /// Keep-alive connections closed to make room when the listener was
    /// at its connection cap, by listener.
    pub connections_shed: IntCounterVec,
    /// Agents whose metrics are currently exposed.
    pub agents_reporting: IntGauge,
    /// Enrolment requests by outcome.
    pub enroll_requests: IntCounterVec,
    /// `/metrics` requests by outcome (`ok`, `unauthorized`).
    metrics_scrapes: IntCounterVec,
    /// Security events stored, by agent (`instance`) and kind.
    security_events: IntCounterVec,
    /// Incidents by severity and status; set by the incident store.
    incidents: IntGaugeVec,
    /// Incidents opened, by rule and severity; counted by the incident store.
    incidents_opened: IntCounterVec,
    /// Size of each SQLite file in the data dir, refreshed at each scrape.
    store_size: IntGaugeVec,
    /// The data dir whose SQLite files `store_size` measures (none in tests
    /// that have no data dir).
    data_dir: Option<PathBuf>,
}

/// The outcomes `enroll_requests` is labelled with.
pub const ENROLL_RESULTS: [&str; 9] = [
    "enrolled",
    "renewed",
    "renewal_refused",
    "invalid_token",
    "name_taken",
    "bad_request",
    "rate_limited",
    "not_found",
    "error",
];

/// The outcomes `ingest_requests` is labelled with; pre-created so that
/// each series exists (at 0) from the start, which `rate()` needs.
pub const INGEST_RESULTS: [&str; 13] = [
    "accepted",
    "busy",
    "decisions",
    "reserved",
    "duplicate",
    "unauthorized",
    "forged_identity",
    "error",
    "bad_request",
    "too_large",
    "timeout",
    "not_found",
    "method_not_allowed",
];

impl Telemetry {
    /// Creates and registers every metric, measuring the SQLite files in
    /// `data_dir`.
    pub fn for_data_dir(data_dir: &Path) -> Result<Self, prometheus::Error> {
        let mut telemetry = Telemetry::new()?;
        telemetry.data_dir = Some(data_dir.to_path_buf());
        Ok(telemetry)
    }

    /// Creates and registers every metric, with no data dir to measure.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        // Process metrics (CPU, memory, file descriptors, start time) from
        // /proc/self, under the conventional `process_*` names.
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "countywatch_build_info",
                "The collector's version and the rustc that built it; always 1.",
            ),
            &["version", "component"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), "collector"])
            .set(1);
        registry.register(Box::new(build_info))?;
        let security_events = IntCounterVec::new(
            Opts::new(
                "countywatch_security_events_total",
                "Security events stored, by agent and kind (see docs/events.md for the kinds).",
            ),
            &["instance", "kind"],
        )?;
        let incidents = IntGaugeVec::new(
            Opts::new(
                "countywatch_incidents",
                "Incidents in the incident store, by severity and status.",
            ),
            &["severity", "status"],
        )?;
        let incidents_opened = IntCounterVec::new(
            Opts::new(
                "countywatch_incidents_opened_total",
                "Incidents opened, by the detection rule that opened them and severity.",
            ),
            &["rule", "severity"],
        )?;
        let store_size = IntGaugeVec::new(
            Opts::new(
                "countywatch_store_size_bytes",
                "Size of each SQLite file (database and write-ahead log) in the collector's data dir.",
            ),
            &["file"],
        )?;
        let metrics_scrapes = IntCounterVec::new(
            Opts::new(
                "countywatch_metrics_scrapes_total",
                "Requests for /metrics by outcome (ok, unauthorized).",
            ),
            &["result"],
        )?;
        for result in ["ok", "unauthorized"] {
            metrics_scrapes.with_label_values(&[result]);
        }
        registry.register(Box::new(metrics_scrapes.clone()))?;
        registry.register(Box::new(security_events.clone()))?;
        registry.register(Box::new(incidents.clone()))?;
        registry.register(Box::new(incidents_opened.clone()))?;
        registry.register(Box::new(store_size.clone()))?;
        let ingest_requests = IntCounterVec::new(
            Opts::new(
                "countywatch_ingest_requests_total",
                "Ingest requests by outcome.",
            ),
            &["result"],
        )?;
        for result in INGEST_RESULTS {
            ingest_requests.with_label_values(&[result]);
        }
        let ingest_samples = IntCounter::new(
            "countywatch_ingest_samples_total",
            "Metric samples accepted from agents.",
        )?;
        let ingest_events = IntCounter::new(
            "countywatch_ingest_events_total",
            "Security events accepted from agents.",
        )?;
        let ingest_bytes = IntCounter::new(
            "countywatch_ingest_received_bytes_total",
            "Compressed bytes of accepted ingest requests.",
        )?;
        let tls_handshake_failures = IntCounterVec::new(
            Opts::new(
                "countywatch_tls_handshake_failures_total",
                "TLS handshakes that failed or timed out, by listener.",
            ),
            &["listener"],
        )?;
        let open_connections = prometheus::IntGaugeVec::new(
            Opts::new(
                "countywatch_open_connections",
                "Connections currently open, by listener.",
            ),
            &["listener"],
        )?;
        let connections_shed = IntCounterVec::new(
            Opts::new(
                "countywatch_connections_shed_total",
                "Keep-alive connections told to close because the listener was at its connection cap and another peer was waiting, by listener.",
            ),
            &["listener"],
        )?;
        for listener in ["http", "ingest", "enroll"] {
            tls_handshake_failures.with_label_values(&[listener]);
            open_connections.with_label_values(&[listener]);
            connections_shed.with_label_values(&[listener]);
        }
        let agents_reporting = IntGauge::new(
            "countywatch_agents_reporting",
            "Agents whose metrics are currently exposed (reported within metrics.stale_after).",
        )?;
        let enroll_requests = IntCounterVec::new(
            Opts::new(
                "countywatch_enroll_requests_total",
                "Enrolment and certificate renewal requests by outcome (renewed, renewal_refused: renewals over mutual TLS).",
            ),
            &["result"],
        )?;
        for result in ENROLL_RESULTS {
            enroll_requests.with_label_values(&[result]);
        }
        registry.register(Box::new(enroll_requests.clone()))?;
        registry.register(Box::new(ingest_requests.clone()))?;
        registry.register(Box::new(ingest_samples.clone()))?;
        registry.register(Box::new(ingest_events.clone()))?;
        registry.register(Box::new(ingest_bytes.clone()))?;
        registry.register(Box::new(tls_handshake_failures.clone()))?;
        registry.register(Box::new(open_connections.clone()))?;
        registry.register(Box::new(connections_shed.clone()))?;
        registry.register(Box::new(agents_reporting.clone()))?;
        Ok(Telemetry {
            registry,
            ingest_requests,
            ingest_samples,
            ingest_events,
            ingest_bytes,
            tls_handshake_failures,
            open_connections,
            connections_shed,
            agents_reporting,
            enroll_requests,
            metrics_scrapes,
            security_events,
            incidents,
            incidents_opened,
            store_size,
            data_dir: None,
        })
    }

    /// Counts one `/metrics` request with the given outcome.
    pub fn metrics_scrape(&self, result: &str) {
        self.metrics_scrapes.with_label_values(&[result]).inc();
    }

    /// Counts `count` security events of `kind` stored for agent `instance`.
    pub fn security_events(&self, instance: &str, kind: &str, count: u64) {
        self.security_events
            .with_label_values(&[instance, kind])
            .inc_by(count);
    }

    /// Sets how many incidents have `severity` and `status`. The incident
    /// store calls it whenever an incident is opened, changes status or is
    /// removed, for every (severity, status) pair it knows, so that a pair
    /// that drops to zero reads 0 rather than its last value.
    pub fn set_incident_count(&self, severity: &str, status: &str, count: i64) {
        self.incidents
            .with_label_values(&[severity, status])
            .set(count);
    }

    /// Counts one incident opened by detection rule `rule` with `severity`.
    /// The incident store calls it once per new incident.
    pub fn incident_opened(&self, rule: &str, severity: &str) {
        self.incidents_opened
            .with_label_values(&[rule, severity])
            .inc();
    }

    /// Reads the sizes of the SQLite files in the data dir into
    /// `countywatch_store_size_bytes`. A file that disappeared (a WAL after
    /// a checkpoint) reads 0 rather than keeping its last size.
    fn refresh_store_sizes(&self) {
        let Some(data_dir) = &self.data_dir else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(data_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !is_sqlite_file(&name) {
                continue;
            }
            let size = entry.metadata().map(|metadata| metadata.len()).unwrap_or(0);
            self.store_size
                .with_label_values(&[&name])
                .set(i64::try_from(size).unwrap_or(i64::MAX));
        }
        use prometheus::core::Collector;
        for family in self.store_size.collect() {
            for metric in family.get_metric() {
                for label in metric.get_label() {
                    if !data_dir.join(label.value()).exists() {
                        self.store_size.with_label_values(&[label.value()]).set(0);
                    }
                }
            }
        }
    }

    /// Counts one ingest request with the given outcome.
    pub fn ingest_result(&self, result: &str) {
        self.ingest_requests.with_label_values(&[result]).inc();
    }

    /// Counts one enrolment request with the given outcome.
    pub fn enroll_result(&self, result: &str) {
        self.enroll_requests.with_label_values(&[result]).inc();
    }

    /// The registry, for subsystems that register their own metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Appends the self-metrics in the Prometheus text format.
    pub fn write_text(&self, out: &mut Vec<u8>) {
        self.refresh_store_sizes();
        let families = self.registry.gather();
        if let Err(error) = TextEncoder::new().encode(&families, out) {
            tracing::error!(%error, "cannot encode self-metrics");
        }
    }
}

/// Whether `name` is one of the collector's SQLite files: a database
/// (`*.db`) or its write-ahead log or shared-memory file.
fn is_sqlite_file(name: &str) -> bool {
    name.ends_with(".db") || name.ends_with(".db-wal") || name.ends_with(".db-shm")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(telemetry: &Telemetry) -> String {
        let mut out = Vec::new();
        telemetry.write_text(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn store_sizes_process_and_build_info_are_exposed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("collector.db"), vec![0u8; 4096]).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a database").unwrap();
        let telemetry = Telemetry::for_data_dir(dir.path()).unwrap();
        let out = text(&telemetry);
        assert!(
            out.contains("countywatch_store_size_bytes{file=\"collector.db\"} 4096"),
            "{out}"
        );
        assert!(!out.contains("notes.txt"), "{out}");
        assert!(out.contains("process_resident_memory_bytes "), "{out}");
        assert!(
            out.contains("countywatch_build_info{component=\"collector\""),
            "{out}"
        );
        std::fs::remove_file(dir.path().join("collector.db")).unwrap();
        assert!(
            text(&telemetry).contains("countywatch_store_size_bytes{file=\"collector.db\"} 0"),
            "a removed file must read 0"
        );
    }

    #[test]
    fn security_events_and_incidents_are_counted_by_bounded_labels() {
        let telemetry = Telemetry::new().unwrap();
        telemetry.security_events("web-01", "ssh_login_failed", 3);
        telemetry.set_incident_count("critical", "open", 2);
        telemetry.incident_opened("ssh_brute_force", "critical");
        let out = text(&telemetry);
        assert!(out.contains(
            "countywatch_security_events_total{instance=\"web-01\",kind=\"ssh_login_failed\"} 3"
        ));
        assert!(out.contains("countywatch_incidents{severity=\"critical\",status=\"open\"} 2"));
        assert!(out.contains(
            "countywatch_incidents_opened_total{rule=\"ssh_brute_force\",severity=\"critical\"} 1"
        ));
    }
}
