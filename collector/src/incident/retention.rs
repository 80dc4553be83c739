//! Retention: once a day, security events (in `collector.db`), closed
//! incidents, active-response decisions that expired (with their hosts,
//! updates and acks; `decisions.rs` says why no agent needs them) and audit
//! entries older than `incidents.retention` are deleted, a few hundred rows per transaction so ingest and the page never
//! wait long for the write lock. Open incidents are kept whatever their age.
//! The purge itself is audited, and the audit trail's own purge leaves a
//! signed record of its new start (see `audit.rs`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::audit::Outcome;
use crate::event_log::EventLog;
use crate::incident::store::IncidentStore;
use countywatch_daemon::sqlite::delete_in_batches;

/// Time between purges.
const PERIOD: Duration = Duration::from_secs(24 * 3600);

/// Rows deleted by one purge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Events deleted from `collector.db`.
    pub events: u64,
    /// Closed incidents deleted (with their evidence and timeline).
    pub incidents: u64,
    /// Decisions deleted (with their hosts, updates and acks).
    pub decisions: u64,
    /// Audit entries deleted.
    pub audit: u64,
}

/// Deletes everything older than `cutoff_ms`, in small transactions.
pub fn purge(store: &IncidentStore, data_dir: &Path, cutoff_ms: i64) -> anyhow::Result<Purged> {
    let mut purged = Purged::default();
    if data_dir.join("collector.db").exists() {
        purged.events = EventLog::open(data_dir)?.purge_before(cutoff_ms)?;
    }
    purged.incidents = delete_in_batches(
        &store.write(),
        "DELETE FROM incidents WHERE id IN (SELECT id FROM incidents
            WHERE status IN ('resolved', 'false_positive') AND last_seen_ms < ?1 LIMIT ?2)",
        cutoff_ms,
    )?;
    purged.decisions = store.purge_ended_decisions(cutoff_ms)?;
    // The overview's hourly evidence counts go with the evidence's hours
    // (an incident kept open keeps its evidence, but the overview only
    // counts the last week).
    delete_in_batches(
        &store.write(),
        "DELETE FROM evidence_counts WHERE (field, hour, value) IN
            (SELECT field, hour, value FROM evidence_counts WHERE hour < ?1 / 3600000 LIMIT ?2)",
        cutoff_ms,
    )?;
    // The newest entry is never purged: the chain must keep a head. The
    // audit purge is one transaction that also signs where the trail now
    // starts, so that no verification ever sees a start nobody signed.
    purged.audit = crate::audit::purge_before(
        &mut store.write(),
        &store.key_path,
        store.settings.checkpoint_every,
        cutoff_ms,
    )?;
    if purged != Purged::default() {
        store.audit(
            "system",
            "retention.purged",
            "store",
            Outcome::Success,
            &format!(
                "before {cutoff_ms}: {} events, {} incidents, {} decisions, {} audit entries",
                purged.events, purged.incidents, purged.decisions, purged.audit
            ),
        )?;
    }
    Ok(purged)
}

/// Purges once a day (first a minute after start) and signs an audit
/// checkpoint, until `stopped`.
pub async fn run(
    store: Arc<IncidentStore>,
    data_dir: std::path::PathBuf,
    retention: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let mut next = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        next += PERIOD;
        let store = Arc::clone(&store);
        let data_dir = data_dir.clone();
        let done = tokio::task::spawn_blocking(move || {
            let cutoff = countywatch_daemon::clock::now_ms()
                .saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
            let purged = purge(&store, &data_dir, cutoff)?;
            let audit = crate::audit::Audit::open(&data_dir, store.settings.checkpoint_every)?;
            audit.checkpoint()?;
            anyhow::Ok(purged)
        })
        .await;
        match done {
            Ok(Ok(purged)) => tracing::info!(?purged, "retention purge done"),
            Ok(Err(error)) => tracing::error!("retention purge failed: {error:#}"),
            Err(error) => tracing::error!(%error, "retention purge failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::lifecycle::Transition;
    use crate::incident::store::Status;

    /// A low-severity detection of `rule` at `at_ms`, with its hosts taken
    /// from `evidence`.
    fn detection(
        rule: &str,
        at_ms: i64,
        evidence: Vec<countywatch_detect::Evidence>,
    ) -> countywatch_detect::Detection {
        countywatch_detect::Detection {
            rule_id: rule.to_string(),
            title: rule.to_string(),
            severity: countywatch_detect::Severity::Low,
            group_key: String::new(),
            labels: Default::default(),
            annotations: Default::default(),
            tags: Vec::new(),
            hosts: evidence
                .iter()
                .map(|item| item.event.host.clone())
                .collect(),
            at_ms,
            evidence,
            response: None,
        }
    }

    #[test]
    fn purge_keeps_open_incidents_and_the_chain_head() {
        let dir = tempfile::tempdir().unwrap();
        let store = IncidentStore::open(dir.path()).unwrap();
        let open = store
            .record_detection(&detection("a", 1_000, Vec::new()))
            .unwrap()
            .id();
        let closed = store
            .record_detection(&detection("b", 1_000, Vec::new()))
            .unwrap()
            .id();
        store
            .transition(
                closed,
                &Transition {
                    to: Status::Resolved,
                    assignee: None,
                    reason: Some("done".to_string()),
                },
                "alice",
                2_000,
            )
            .unwrap();
        let expired = crate::incident::decisions::NewDecision {
            address: "192.0.2.1".parse().unwrap(),
            scope: crate::incident::decisions::DecisionScope::County,
            incident_id: Some(closed),
            rule: None,
            reason: "by hand".to_string(),
            made_by: "cli:root".to_string(),
            start_ms: 1_000,
            expires_ms: 2_000,
            mode: countywatch_wire::ResponseMode::DryRun,
        };
        store.add_decision(&expired, "cli:root").unwrap();
        let purged = purge(&store, dir.path(), i64::MAX).unwrap();
        assert_eq!(purged.incidents, 1);
        assert_eq!(
            purged.decisions, 1,
            "on the incidents' schedule and retention"
        );
        assert!(store.incident(open).unwrap().is_some());
        assert!(store.incident(closed).unwrap().is_none());
        assert!(purged.audit >= 2);
        // What is left still verifies from its oldest entry.
        let verification = crate::audit::verify(dir.path()).unwrap();
        assert_eq!(verification.first_break, None);
    }

    #[test]
    fn purge_drops_the_overviews_evidence_counts_of_the_hours_before_the_cutoff() {
        const HOUR_MS: i64 = 3_600_000;
        let dir = tempfile::tempdir().unwrap();
        let store = IncidentStore::open(dir.path()).unwrap();
        for (rule, host, at_ms) in [("a", "old-host", 1_000), ("b", "new-host", 2 * HOUR_MS)] {
            let mut event = countywatch_wire::Event::new(
                at_ms,
                countywatch_wire::EventSource::Auth,
                countywatch_wire::EventKind::SshLoginFailed,
            );
            event.host = host.to_string();
            let evidence = countywatch_detect::Evidence {
                event_id: None,
                event,
            };
            store
                .record_detection(&detection(rule, at_ms, vec![evidence]))
                .unwrap();
        }
        let hosts = || {
            store
                .top_evidence(crate::incident::store::EvidenceField::Host, 0, 10)
                .unwrap()
        };
        assert_eq!(hosts().len(), 2);
        purge(&store, dir.path(), 2 * HOUR_MS).unwrap();
        assert_eq!(hosts(), vec![("new-host".to_string(), 1)]);
    }
}
