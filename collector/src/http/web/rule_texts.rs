//! The detection rules' texts for the page: an incident's title,
//! description and guidance in the page's language. The engine renders a
//! rule's translated titles beside its own, as `title_<language>`
//! annotations (the fields of the event that fired are gone afterwards);
//! descriptions and guidance come from the rules in force (reloaded on
//! SIGHUP). Incidents raised
//! before a translation existed keep their stored title.

use std::sync::Arc;

use crate::detection_rules_in_force::DetectionRulesInForce;

use crate::http::web::i18n::Lang;
use crate::incident::store::Incident;

/// The incident's title in `lang`: the `title_<language>` annotation
/// the engine rendered from the rule's `i18n` title, else the stored
/// title.
pub fn incident_title(lang: Lang, incident: &Incident) -> &str {
    incident
        .annotations
        .get(&format!("title_{}", lang.rule_key()))
        .unwrap_or(&incident.title)
}

/// The detection rules in force, read for their texts.
#[derive(Clone, Default)]
pub struct RuleTexts {
    /// Replaced by the detection sink on a reload.
    rules: Arc<DetectionRulesInForce>,
}

impl RuleTexts {
    /// The texts of the rules `rules` holds, now and after reloads.
    pub fn new(rules: Arc<DetectionRulesInForce>) -> RuleTexts {
        RuleTexts { rules }
    }

    /// The rule's description in `lang` (empty for unknown rules).
    pub fn description(&self, lang: Lang, rule_id: &str) -> String {
        self.rules
            .current()
            .get(rule_id)
            .map(|rule| rule.description_in(lang.rule_key()).trim().to_string())
            .unwrap_or_default()
    }

    /// The rule's guidance in `lang` (empty for unknown rules).
    pub fn guidance(&self, lang: Lang, rule_id: &str) -> String {
        self.rules
            .current()
            .get(rule_id)
            .map(|rule| rule.guidance_in(lang.rule_key()).trim().to_string())
            .unwrap_or_default()
    }
}
