//! The detection rules in force, by id, for readers outside the detection
//! task: the console shows a rule's description and guidance beside each
//! incident. The detection sink replaces the set when SIGHUP reloads the
//! rules, so that the guidance an officer reads is the rule's current one,
//! not the one the collector started with.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use countywatch_detect::rulefmt::Rule;

/// The rules in force, replaced whole on a reload.
#[derive(Default)]
pub struct DetectionRulesInForce(RwLock<Arc<HashMap<String, Rule>>>);

impl DetectionRulesInForce {
    /// A set holding `rules`.
    pub fn new(rules: Vec<Rule>) -> DetectionRulesInForce {
        DetectionRulesInForce(RwLock::new(by_id(rules)))
    }

    /// The set in force now; a reload does not change a set already read.
    pub fn current(&self) -> Arc<HashMap<String, Rule>> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts `rules` in force.
    pub fn replace(&self, rules: Vec<Rule>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = by_id(rules);
    }
}

fn by_id(rules: Vec<Rule>) -> Arc<HashMap<String, Rule>> {
    Arc::new(
        rules
            .into_iter()
            .map(|rule| (rule.id.clone(), rule))
            .collect(),
    )
}
