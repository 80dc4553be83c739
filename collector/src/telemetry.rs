//! The collector's own metrics (`countywatch_*`), kept in a `prometheus`
//! registry and appended to `/metrics` after the agents' metrics.
//!
//! Naming follows Prometheus conventions: counters end in `_total`, units
//! are in the name, and outcomes are a bounded `result` label, never free
//! text, so a hostile peer cannot grow the series count.

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

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
    /// Agents whose metrics are currently exposed.
    pub agents_reporting: IntGauge,
    /// Enrolment requests by outcome.
    pub enroll_requests: IntCounterVec,
}

/// The outcomes `enroll_requests` is labelled with.
pub const ENROLL_RESULTS: [&str; 6] = [
    "enrolled",
    "invalid_token",
    "bad_request",
    "rate_limited",
    "not_found",
    "error",
];

/// The outcomes `ingest_requests` is labelled with; pre-created so that
/// each series exists (at 0) from the start, which `rate()` needs.
pub const INGEST_RESULTS: [&str; 10] = [
    "accepted",
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
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let build_info = prometheus::IntGaugeVec::new(
            Opts::new(
                "countywatch_collector_build_info",
                "The collector's version; always 1.",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        registry.register(Box::new(build_info))?;
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
        for listener in ["http", "ingest", "enroll"] {
            tls_handshake_failures.with_label_values(&[listener]);
            open_connections.with_label_values(&[listener]);
        }
        let agents_reporting = IntGauge::new(
            "countywatch_agents_reporting",
            "Agents whose metrics are currently exposed (reported within metrics.stale_after).",
        )?;
        let enroll_requests = IntCounterVec::new(
            Opts::new(
                "countywatch_enroll_requests_total",
                "Enrolment requests by outcome.",
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
        registry.register(Box::new(agents_reporting.clone()))?;
        Ok(Telemetry {
            registry,
            ingest_requests,
            ingest_samples,
            ingest_events,
            ingest_bytes,
            tls_handshake_failures,
            open_connections,
            agents_reporting,
            enroll_requests,
        })
    }

    /// Counts one ingest request with the given outcome.
    pub fn ingest_result(&self, result: &str) {
        self.ingest_requests.with_label_values(&[result]).inc();
    }

    /// Counts one enrolment request with the given outcome.
    pub fn enroll_result(&self, result: &str) {
        self.enroll_requests.with_label_values(&[result]).inc();
    }

    /// The registry, for modules that register their own metrics (outputs).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Appends the self-metrics in the Prometheus text format.
    pub fn write_text(&self, out: &mut Vec<u8>) {
        let families = self.registry.gather();
        if let Err(error) = TextEncoder::new().encode(&families, out) {
            tracing::error!(%error, "cannot encode self-metrics");
        }
    }
}
