//! The bridge from the rule engine to the notifier: every few seconds the
//! firing alerts of the alerting rules are submitted to the notification
//! pipeline, with a lease so that they resolve by themselves if the
//! collector stops re-submitting them, and an explicit resolution as soon as
//! an alert stops firing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use tokio::sync::watch;

use crate::alerting::{Alerting, FiringAlert};
use countywatch_daemon::clock::now_ms;
use countywatch_notify::Notifier;
use countywatch_notify::alert::{Alert, LabelSet};

/// How often firing alerts are re-submitted.
const PERIOD: Duration = Duration::from_secs(5);
/// How long a submission holds without a refresh: a few periods, so one
/// slow evaluation does not resolve anything.
const LEASE: Duration = Duration::from_secs(60);

fn to_alert(firing: &FiringAlert, ends_at_ms: i64) -> Alert {
    let millis = |time: std::time::SystemTime| {
        time.duration_since(UNIX_EPOCH)
            .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    };
    Alert {
        labels: firing.labels.iter().cloned().collect::<LabelSet>(),
        annotations: firing.annotations.iter().cloned().collect::<LabelSet>(),
        starts_at_ms: millis(firing.fired_at),
        ends_at_ms: Some(ends_at_ms),
        generator_url: String::new(),
        value: Some(firing.value.to_string()),
    }
}

/// What changed between two looks at the rule engine: the alerts to submit
/// as firing (all of them, refreshed) and those to submit as resolved.
fn diff(
    previous: &BTreeMap<LabelSet, Alert>,
    firing: &[FiringAlert],
    now: i64,
) -> (Vec<Alert>, BTreeMap<LabelSet, Alert>) {
    let lease = now.saturating_add(i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX));
    let mut current = BTreeMap::new();
    for alert in firing {
        let alert = to_alert(alert, lease);
        current.insert(alert.labels.clone(), alert);
    }
    let mut submissions: Vec<Alert> = current.values().cloned().collect();
    for (labels, alert) in previous {
        if !current.contains_key(labels) {
            let mut resolved = alert.clone();
            resolved.ends_at_ms = Some(now);
            submissions.push(resolved);
        }
    }
    (submissions, current)
}

/// Runs until `stopped` turns true.
pub async fn forward(
    alerting: Arc<Alerting>,
    notifier: Arc<Notifier>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut previous = BTreeMap::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = ticker.tick() => {}
        }
        let (submissions, current) = diff(&previous, &alerting.firing(), now_ms());
        previous = current;
        if notifier.submit(submissions).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn firing(name: &str) -> FiringAlert {
        FiringAlert {
            labels: vec![
                ("alertname".to_string(), name.to_string()),
                ("instance".to_string(), "h".to_string()),
            ],
            annotations: vec![("summary".to_string(), "s".to_string())],
            active_at: UNIX_EPOCH + Duration::from_secs(10),
            fired_at: UNIX_EPOCH + Duration::from_secs(20),
            value: 1.5,
        }
    }

    #[test]
    fn firing_alerts_are_refreshed_with_a_lease_and_resolved_when_gone() {
        let (first, previous) = diff(&BTreeMap::new(), &[firing("A"), firing("B")], 100_000);
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|alert| alert.ends_at_ms == Some(160_000)));
        assert_eq!(first[0].starts_at_ms, 20_000);
        assert_eq!(first[0].value.as_deref(), Some("1.5"));
        let (second, _) = diff(&previous, &[firing("B")], 105_000);
        assert_eq!(second.len(), 2);
        let resolved: Vec<&Alert> = second
            .iter()
            .filter(|alert| alert.ends_at_ms == Some(105_000))
            .collect();
        assert_eq!(resolved.len(), 1);
        assert_eq!(
            resolved[0].labels.get("alertname").map(String::as_str),
            Some("A")
        );
    }
}
