//! The collector's active-response counters: decisions by who asked and
//! what came of it (a refusal is counted as well as audited), and agents'
//! answers, unknown update ids among them (dropped, not stored).

use prometheus::{IntCounterVec, Opts};

/// `countywatch_response_*`.
#[derive(Clone)]
pub struct ResponseMetrics {
    /// Decisions by `made_by` (`rule`, `agent`) and `outcome` (`made`,
    /// `refused`: an address that may never be blocked, `no_address`: a
    /// detection without one source address).
    pub decisions: IntCounterVec,
    /// Agents' answers by `result`: `applied` and `refused` as the agents
    /// said them, and `unknown`: those of them about an update id that does
    /// not exist, dropped.
    pub answers: IntCounterVec,
}

impl ResponseMetrics {
    /// The counters, not registered anywhere (tests).
    pub fn new() -> Result<Self, prometheus::Error> {
        let decisions = IntCounterVec::new(
            Opts::new(
                "countywatch_response_decisions_total",
                "Active-response decisions by who asked (rule, agent) and outcome (made, refused, no_address).",
            ),
            &["made_by", "outcome"],
        )?;
        let answers = IntCounterVec::new(
            Opts::new(
                "countywatch_response_answers_total",
                "Agents' answers to decision updates as said (applied, refused), and unknown: those about an update that does not exist, dropped.",
            ),
            &["result"],
        )?;
        for (made_by, outcome) in [
            ("rule", "made"),
            ("rule", "refused"),
            ("rule", "no_address"),
            ("agent", "made"),
        ] {
            decisions.with_label_values(&[made_by, outcome]);
        }
        for result in ["applied", "refused", "unknown"] {
            answers.with_label_values(&[result]);
        }
        Ok(ResponseMetrics { decisions, answers })
    }

    /// The counters, registered in `registry`.
    pub fn register(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let metrics = ResponseMetrics::new()?;
        registry.register(Box::new(metrics.decisions.clone()))?;
        registry.register(Box::new(metrics.answers.clone()))?;
        Ok(metrics)
    }
}
