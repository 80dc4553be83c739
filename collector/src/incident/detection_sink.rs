//! Where detection rules' findings become incidents: the incident store as
//! the detection task's [`DetectionSink`], counting each new incident in
//! `countywatch_incidents_opened_total` and making the decision a rule's
//! `response:` asks for (`active_response`).

use std::sync::Arc;

use countywatch_detect::Detection;
use countywatch_detect::rulefmt::Rule;

use crate::detection::DetectionSink;
use crate::incident::lifecycle::Recorded;
use crate::incident::store::IncidentStore;
use crate::telemetry::Telemetry;

/// Records detections as incidents (deduplicated per rule and group key).
pub struct IncidentSink {
    /// The store the incidents go to.
    pub store: Arc<IncidentStore>,
    /// Where new incidents are counted.
    pub telemetry: Arc<Telemetry>,
    /// The `response:` section, for rules that ask for a block.
    pub response: Arc<crate::active_response::config::ResponseConfig>,
    /// Where decisions are counted.
    pub response_metrics: crate::active_response::metrics::ResponseMetrics,
    /// The rules agents run while offline, rebuilt when SIGHUP reloads the
    /// detection rules.
    pub offline_rules: Arc<crate::active_response::offline_rules::OfflineRulesCell>,
    /// The rules whose descriptions and guidance the console shows,
    /// replaced when SIGHUP reloads the detection rules.
    pub rules_in_force: Arc<crate::detection_rules_in_force::DetectionRulesInForce>,
}

impl DetectionSink for IncidentSink {
    fn record(&self, detection: &Detection) -> anyhow::Result<()> {
        // Only a new incident is counted as opened: evidence added to an
        // open one, or a reopened one, is the same incident.
        let recorded = self.store.record_detection(detection)?;
        if let Recorded::Opened(_) = recorded {
            self.telemetry
                .incident_opened(&detection.rule_id, detection.severity.as_str());
        }
        let decided = crate::active_response::decide(
            &self.store,
            &self.response,
            detection,
            recorded,
            countywatch_daemon::clock::now_ms(),
        )?;
        if let Some(outcome) = decided.outcome() {
            self.response_metrics
                .decisions
                .with_label_values(&["rule", outcome])
                .inc();
        }
        Ok(())
    }

    fn annotate(&self, detection: &Detection, alert: &mut countywatch_notify::alert::Alert) {
        crate::active_response::annotate(&self.response, detection, alert);
    }

    fn rules_reloaded(&self, rules: &[Rule]) {
        let offline = crate::active_response::offline_rules::build(rules, &self.response);
        tracing::info!(version = %offline.version, "SIGHUP: offline rules for agents rebuilt");
        self.offline_rules.replace(offline);
        self.rules_in_force.replace(rules.to_vec());
    }
}

/// Sets `countywatch_incidents{severity,status}` from the store, every
/// combination included, so that a count that drops to zero reads zero.
pub fn refresh_incident_counts(store: &IncidentStore, telemetry: &Telemetry) {
    let counts = match store.counts_by_severity_and_status() {
        Ok(counts) => counts,
        Err(error) => {
            tracing::error!("cannot count incidents: {error:#}");
            return;
        }
    };
    for severity in countywatch_detect::Severity::ALL {
        for status in crate::incident::store::Status::ALL {
            let key = (severity.as_str().to_string(), status.as_str().to_string());
            let count = counts.get(&key).copied().unwrap_or(0);
            telemetry.set_incident_count(severity.as_str(), status.as_str(), count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::active_response::offline_rules::OfflineRulesCell;
    use crate::detection::DetectionConfig;
    use crate::detection_rules_in_force::DetectionRulesInForce;

    #[test]
    fn a_reload_puts_the_reloaded_rules_offline_set_and_texts_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let cell = Arc::new(OfflineRulesCell::default());
        let texts = Arc::new(DetectionRulesInForce::default());
        let sink = IncidentSink {
            store: Arc::new(IncidentStore::open(dir.path()).unwrap()),
            telemetry: Arc::new(Telemetry::new().unwrap()),
            response: Arc::default(),
            response_metrics: crate::active_response::metrics::ResponseMetrics::new().unwrap(),
            offline_rules: Arc::clone(&cell),
            rules_in_force: Arc::clone(&texts),
        };
        assert!(cell.current().files.is_empty());
        let mut config = DetectionConfig::default();
        sink.rules_reloaded(&config.load_rules().unwrap());
        let with_builtin = cell.current();
        assert!(!with_builtin.files.is_empty());
        // The console's guidance follows the reload too.
        assert!(texts.current().contains_key("ssh_brute_force"));
        // Without the shipped packs there is no host-scoped rule with a
        // response left: the empty set tells agents to drop theirs.
        config.builtin = false;
        sink.rules_reloaded(&config.load_rules().unwrap());
        assert!(cell.current().files.is_empty());
        assert!(!texts.current().contains_key("ssh_brute_force"));
        assert_ne!(cell.current().version, with_builtin.version);
    }
}
