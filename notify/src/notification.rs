//! What the outbox stores and receivers send: one notification about one
//! group for one receiver, self-contained (the alerts are copied in), so
//! that it can be delivered after a restart without the alerts that caused it.

use serde::{Deserialize, Serialize};

use crate::alert::{Alert, LabelSet, labels, rfc3339};

/// What a notification is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A group's alerts.
    Alerts,
    /// A silence was created.
    SilenceCreated,
    /// A silence expired.
    SilenceExpired,
    /// `notify test`.
    Test,
    /// Another notification could not be delivered before its deadline.
    NotificationFailed,
}

/// A copy of an alert as it was when the notification was made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertSnapshot {
    /// `firing` or `resolved`.
    pub status: String,
    /// The alert's labels.
    pub labels: LabelSet,
    /// The alert's annotations.
    pub annotations: LabelSet,
    /// Start, Unix milliseconds.
    pub starts_at_ms: i64,
    /// End when resolved.
    pub ends_at_ms: Option<i64>,
    /// Link to the producer.
    pub generator_url: String,
    /// Fingerprint, 16 hex digits.
    pub fingerprint: String,
    /// The triggering value, if known.
    pub value: Option<String>,
}

impl AlertSnapshot {
    /// Copies an alert, resolved or firing as of `now_ms`.
    pub fn of(alert: &Alert, now_ms: i64) -> AlertSnapshot {
        let resolved = alert.resolved_at(now_ms);
        AlertSnapshot {
            status: if resolved { "resolved" } else { "firing" }.to_string(),
            labels: alert.labels.clone(),
            annotations: alert.annotations.clone(),
            starts_at_ms: alert.starts_at_ms,
            ends_at_ms: if resolved { alert.ends_at_ms } else { None },
            generator_url: alert.generator_url.clone(),
            fingerprint: alert.fingerprint().to_string(),
            value: alert.value.clone(),
        }
    }

    /// Whether it is firing.
    pub fn firing(&self) -> bool {
        self.status == "firing"
    }

    /// RFC 3339 start.
    pub fn starts_at(&self) -> String {
        rfc3339(self.starts_at_ms)
    }

    /// RFC 3339 end, or Go's zero time as Alertmanager writes for firing alerts.
    pub fn ends_at(&self) -> String {
        self.ends_at_ms
            .map_or_else(|| "0001-01-01T00:00:00Z".to_string(), rfc3339)
    }
}

/// One notification for one receiver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// What it is about.
    pub kind: Kind,
    /// The receiver's name.
    pub receiver: String,
    /// The group's key (route id and group labels).
    pub group_key: String,
    /// The group's labels.
    pub group_labels: LabelSet,
    /// The alerts, firing first.
    pub alerts: Vec<AlertSnapshot>,
    /// Base URL for links.
    pub external_url: String,
    /// When it was made, Unix milliseconds.
    pub created_ms: i64,
    /// For forwarding to an Alertmanager: firing alerts are sent with
    /// `endsAt` this long after the send (four times the resend cadence,
    /// as Prometheus does), so that the receiving Alertmanager keeps them
    /// until the next resend is overdue. Absent in rows written before.
    #[serde(default)]
    pub lease_ms: Option<i64>,
}

impl Notification {
    /// `firing` when any alert fires, else `resolved`.
    pub fn status(&self) -> &'static str {
        if self.alerts.iter().any(AlertSnapshot::firing) {
            "firing"
        } else {
            "resolved"
        }
    }

    /// Labels every alert shares.
    pub fn common_labels(&self) -> LabelSet {
        common(self.alerts.iter().map(|alert| &alert.labels))
    }

    /// Annotations every alert shares.
    pub fn common_annotations(&self) -> LabelSet {
        common(self.alerts.iter().map(|alert| &alert.annotations))
    }

    /// The link to an alert on the collector's page.
    pub fn alert_url(&self, alert: &AlertSnapshot) -> String {
        format!(
            "{}/alerts/{}",
            self.external_url.trim_end_matches('/'),
            alert.fingerprint
        )
    }

    /// A notification about one synthetic alert (notices, tests, self-alerts).
    pub fn synthetic(
        kind: Kind,
        receiver: &str,
        alert_labels: &[(&str, &str)],
        annotations: &[(&str, &str)],
        external_url: &str,
        now_ms: i64,
    ) -> Notification {
        let mut alert = Alert::firing(labels(alert_labels.iter().copied()), now_ms);
        alert.annotations = labels(annotations.iter().copied());
        let snapshot = AlertSnapshot::of(&alert, now_ms);
        Notification {
            kind,
            receiver: receiver.to_string(),
            group_key: format!("{kind:?}/{}", snapshot.fingerprint),
            group_labels: alert.labels.clone(),
            alerts: vec![snapshot],
            external_url: external_url.to_string(),
            created_ms: now_ms,
            lease_ms: None,
        }
    }
}

fn common<'a>(mut sets: impl Iterator<Item = &'a LabelSet>) -> LabelSet {
    let Some(first) = sets.next() else {
        return LabelSet::new();
    };
    let mut shared = first.clone();
    for set in sets {
        shared.retain(|name, value| set.get(name) == Some(value));
    }
    shared
}
