//! The notification subsystem's metrics, registered in the collector's
//! self-metrics registry: `countywatch_notifications_total{receiver,status}`,
//! `countywatch_notifications_failed_total{receiver}`,
//! `countywatch_notification_latency_seconds{receiver}`,
//! `countywatch_alerts{state}`, `countywatch_outbox_pending` and
//! `countywatch_silences{state}`, and the reload gauges
//! `countywatch_notify_config_last_reload_successful` and
//! `countywatch_notify_config_last_reload_success_timestamp_seconds`
//! (named after Alertmanager's `alertmanager_config_last_reload_*`).
//! Receiver names come from the config, so the label sets are bounded.

use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Outcomes in `countywatch_notifications_total{status}`.
pub const STATUSES: [&str; 3] = ["success", "retry", "failed"];

/// Every notification metric.
#[derive(Clone)]
pub struct NotifyMetrics {
    /// Delivery attempts by receiver and outcome.
    pub notifications: IntCounterVec,
    /// Notifications given up on (deadline passed or permanent refusal).
    pub failed: IntCounterVec,
    /// From writing to the outbox to the receiver accepting.
    pub latency: HistogramVec,
    /// Alerts known, by state (`active`, `suppressed`, `resolved`).
    pub alerts: IntGaugeVec,
    /// Notifications waiting in the outbox.
    pub outbox_pending: IntGauge,
    /// Silences by state.
    pub silences: IntGaugeVec,
    /// Whether the last reload of the notification configuration worked.
    pub reload_successful: IntGauge,
    /// When the configuration was last loaded successfully, Unix seconds.
    pub reload_success_timestamp: Gauge,
}

impl NotifyMetrics {
    /// Creates the metrics, pre-creating each receiver's series at 0, and
    /// registers them when a registry is given.
    pub fn new(
        registry: Option<&Registry>,
        receivers: &[String],
    ) -> Result<NotifyMetrics, prometheus::Error> {
        let notifications = IntCounterVec::new(
            Opts::new(
                "countywatch_notifications_total",
                "Notification delivery attempts by receiver and outcome.",
            ),
            &["receiver", "status"],
        )?;
        let failed = IntCounterVec::new(
            Opts::new(
                "countywatch_notifications_failed_total",
                "Notifications given up on after their deadline or a permanent refusal.",
            ),
            &["receiver"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "countywatch_notification_latency_seconds",
                "Time from a notification entering the outbox to its receiver accepting it.",
            )
            .buckets(vec![
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0, 3600.0,
            ]),
            &["receiver"],
        )?;
        let alerts = IntGaugeVec::new(
            Opts::new(
                "countywatch_alerts",
                "Alerts known to the notifier, by state.",
            ),
            &["state"],
        )?;
        let outbox_pending = IntGauge::new(
            "countywatch_outbox_pending",
            "Notifications written to the outbox and not yet accepted by their receiver.",
        )?;
        let silences = IntGaugeVec::new(
            Opts::new("countywatch_silences", "Silences by state."),
            &["state"],
        )?;
        let reload_successful = IntGauge::new(
            "countywatch_notify_config_last_reload_successful",
            "Whether the last reload of the notification configuration worked (1) or kept the previous one (0).",
        )?;
        let reload_success_timestamp = Gauge::new(
            "countywatch_notify_config_last_reload_success_timestamp_seconds",
            "When the notification configuration was last loaded successfully.",
        )?;
        for state in ["active", "suppressed", "resolved"] {
            alerts.with_label_values(&[state]);
        }
        for state in ["active", "pending", "expired"] {
            silences.with_label_values(&[state]);
        }
        if let Some(registry) = registry {
            registry.register(Box::new(notifications.clone()))?;
            registry.register(Box::new(failed.clone()))?;
            registry.register(Box::new(latency.clone()))?;
            registry.register(Box::new(alerts.clone()))?;
            registry.register(Box::new(outbox_pending.clone()))?;
            registry.register(Box::new(silences.clone()))?;
            registry.register(Box::new(reload_successful.clone()))?;
            registry.register(Box::new(reload_success_timestamp.clone()))?;
        }
        let metrics = NotifyMetrics {
            notifications,
            failed,
            latency,
            alerts,
            outbox_pending,
            silences,
            reload_successful,
            reload_success_timestamp,
        };
        metrics.add_receivers(receivers);
        Ok(metrics)
    }

    /// Pre-creates each receiver's series at 0 (a reload may add receivers).
    pub fn add_receivers(&self, receivers: &[String]) {
        for receiver in receivers {
            for status in STATUSES {
                self.notifications
                    .with_label_values(&[receiver.as_str(), status]);
            }
            self.failed.with_label_values(&[receiver.as_str()]);
        }
    }

    /// Records the outcome of loading the configuration (at start or on a
    /// reload).
    pub fn note_reload(&self, successful: bool) {
        self.reload_successful.set(i64::from(successful));
        if successful {
            self.reload_success_timestamp
                .set(countywatch_daemon::clock::now_ms() as f64 / 1000.0);
        }
    }
}
