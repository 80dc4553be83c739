//! The rules an agent runs by itself while it cannot reach the collector
//! (offline mode, `wire::decision::OfflineRules`): the detection rules that
//! run here and carry a host-scoped `response:`, as the files they come
//! from, named by a digest so that an agent holding the same set is not
//! sent it again.
//!
//! The set is built at start from `detection:` as loaded (built-in packs,
//! `rule_files`, less `disabled`) and again whenever SIGHUP reloads the
//! detection rules ([`OfflineRulesCell`]), so agents get the new set on
//! their next long poll.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use countywatch_detect::response::ResponseScope;
use countywatch_detect::rulefmt::Rule;
use countywatch_wire::{OfflineRuleFile, OfflineRules};
use sha2::{Digest, Sha256};

use crate::active_response::config::ResponseConfig;
use crate::builtin_packs;

/// The offline rules in force, shared by the decision feed (which sends
/// them) and the detection task (which replaces them when SIGHUP reloads
/// the rules). A poisoned lock still holds a whole set: it is only ever
/// replaced, never edited in place.
#[derive(Debug, Default)]
pub struct OfflineRulesCell(RwLock<Arc<OfflineRules>>);

impl OfflineRulesCell {
    /// A cell holding `rules`.
    pub fn new(rules: OfflineRules) -> OfflineRulesCell {
        OfflineRulesCell(RwLock::new(Arc::new(rules)))
    }

    /// The set in force now.
    pub fn current(&self) -> Arc<OfflineRules> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts `rules` in force; agents holding another version get them on
    /// their next long poll.
    pub fn replace(&self, rules: OfflineRules) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(rules);
    }
}

/// The offline rules among `rules` (the detection rules in force), with `response`'s `max_duration` and
/// `never_block`, which bind the agent's own blocks too.
/// A rule file that cannot be read again is left out (logged); with no such
/// rules the set is empty, which tells agents to drop the ones they hold.
pub fn build(rules: &[Rule], response: &ResponseConfig) -> OfflineRules {
    let max_duration_ms = response.max_duration_ms();
    let never_block: Vec<String> = response
        .never_block
        .iter()
        .map(|entry| entry.value.clone())
        .collect();
    let mut by_file: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for rule in rules {
        if rule
            .response
            .as_ref()
            .is_some_and(|response| response.scope == ResponseScope::Host)
        {
            by_file
                .entry(rule.file.clone())
                .or_default()
                .push(rule.id.clone());
        }
    }
    let mut files = Vec::new();
    for (path, ids) in by_file {
        let builtin = builtin_packs::DETECTION
            .iter()
            .find(|pack| pack.origin() == path);
        let text = match builtin {
            Some(pack) => pack.text.to_string(),
            None => match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "offline rules: cannot read the rule file again, leaving its rules out");
                    continue;
                }
            },
        };
        files.push(OfflineRuleFile {
            name: path.display().to_string(),
            text,
            rules: ids,
        });
    }
    let mut digest = Sha256::new();
    digest.update(max_duration_ms.to_le_bytes());
    digest.update(never_block.join("\n").as_bytes());
    for file in &files {
        for part in [&file.name, &file.text, &file.rules.join("\n")] {
            digest.update((part.len() as u64).to_le_bytes());
            digest.update(part.as_bytes());
        }
    }
    OfflineRules {
        version: hex::encode(&digest.finalize()[..12]),
        files,
        max_duration_ms,
        never_block,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::DetectionConfig;

    fn loaded(config: &DetectionConfig) -> Vec<Rule> {
        config.load_rules().unwrap()
    }

    #[test]
    fn the_shipped_ssh_rules_are_offline_rules_and_the_version_follows_the_content() {
        let config = DetectionConfig::default();
        let response = ResponseConfig::default();
        let rules = build(&loaded(&config), &response);
        let ids: Vec<&str> = rules
            .files
            .iter()
            .flat_map(|file| file.rules.iter().map(String::as_str))
            .collect();
        assert!(ids.contains(&"ssh_brute_force"), "{ids:?}");
        assert!(ids.contains(&"ssh_password_spraying"), "{ids:?}");
        // Each file sent loads on its own, as the agent will load it.
        for file in &rules.files {
            let loaded =
                countywatch_detect::rulefmt::parse(std::path::Path::new(&file.name), &file.text);
            assert!(loaded.is_ok(), "{}", file.name);
        }
        assert_eq!(build(&loaded(&config), &response).version, rules.version);
        let guarded = ResponseConfig {
            never_block: vec![countywatch_config::config_file::unspanned(
                "10.0.0.0/8".to_string(),
            )],
            ..ResponseConfig::default()
        };
        let with_never_block = build(&loaded(&config), &guarded);
        assert_eq!(with_never_block.never_block, ["10.0.0.0/8"]);
        assert_ne!(with_never_block.version, rules.version);
        let disabled = DetectionConfig {
            disabled: vec![
                "ssh_brute_force".to_string(),
                "ssh_password_spraying".to_string(),
            ],
            ..DetectionConfig::default()
        };
        let fewer = build(&loaded(&disabled), &response);
        assert!(
            !fewer
                .files
                .iter()
                .any(|file| file.rules.iter().any(|id| id == "ssh_brute_force")),
        );
        assert_ne!(fewer.version, rules.version);
    }
}
