//! Offline mode's rules: the host-scoped detection rules with a `response:`
//! that the collector sends in the long poll ([`OfflineRules`]), kept in
//! `offline_rules.json` (0600) beside `response.json` so that a restarted
//! agent still has them, and the detection engine (`countywatch-detect`,
//! the collector's own) that runs the agent's events through them while
//! the collector cannot be reached.
//!
//! Memory stays bounded as at the collector: each rule keeps at most its
//! `max_groups` keys, each a few hits (never events); evidence is looked
//! up only among the events of the batch being evaluated. The rules are
//! parsed and the engine built only when an outage begins, fresh for each
//! one: an agent that never loses its collector never runs (nor pages in)
//! the rule parser, the regular expressions or the engine.
//!
//! What to do with a detection (the safety checks, the firewall, the
//! report to the collector) is `response::Response`'s.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use countywatch_detect::Detection;
use countywatch_detect::calendar::Calendar;
use countywatch_detect::engine::Engine;
use countywatch_detect::response::ResponseScope;
use countywatch_detect::rulefmt;
use countywatch_wire::{Cidr, Event, OfflineRules};

/// The file's name in the state directory.
pub const FILE: &str = "offline_rules.json";

/// The rules held and their engine.
pub struct OfflineRuleSet {
    /// The set as the collector sent it; its version goes up with every
    /// long poll.
    rules: OfflineRules,
    /// The engine over the set's rules, built at the first evaluation of
    /// an outage; none before, or when no rule loads.
    engine: Option<Engine>,
    /// Whether `engine` was built for this outage.
    built: bool,
    /// The collector's `never_block`, parsed (an entry that does not parse
    /// is logged and left out).
    never_block: Vec<(String, Cidr)>,
}

impl OfflineRuleSet {
    /// The set kept in `state_dir`; empty when there is none yet, or when
    /// the file is damaged (logged; the collector sends it again, since
    /// the empty set's version differs).
    pub fn load(state_dir: &Path) -> OfflineRuleSet {
        let path = path(state_dir);
        let rules = match std::fs::read(&path) {
            Ok(text) => serde_json::from_slice(&text).unwrap_or_else(|error| {
                tracing::error!(path = %path.display(), %error, "offline rules damaged; waiting for the collector to send them again");
                OfflineRules::default()
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => OfflineRules::default(),
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "cannot read the offline rules");
                OfflineRules::default()
            }
        };
        OfflineRuleSet::new(rules)
    }

    /// A set over `rules`, with no engine yet.
    pub fn new(rules: OfflineRules) -> OfflineRuleSet {
        let never_block = rules
            .never_block
            .iter()
            .filter_map(|entry| match Cidr::parse(entry) {
                Ok(block) => Some((entry.clone(), block)),
                Err(error) => {
                    tracing::error!(entry, %error, "offline rules: a never_block entry from the collector does not parse");
                    None
                }
            })
            .collect();
        OfflineRuleSet {
            rules,
            engine: None,
            built: false,
            never_block,
        }
    }

    /// Forgets the engine and its state: the next evaluation builds it
    /// afresh (a new outage).
    pub fn start_outage(&mut self) {
        self.engine = None;
        self.built = false;
    }

    /// The engine over the set's rules. Rules that do not load (a
    /// collector newer than the agent may send a form it does not know)
    /// are left out, logged.
    fn build_engine(rules: &OfflineRules) -> Option<Engine> {
        let mut loaded = Vec::new();
        for file in &rules.files {
            let wanted: HashSet<&str> = file.rules.iter().map(String::as_str).collect();
            match rulefmt::parse(Path::new(&file.name), &file.text) {
                Ok(file_rules) => loaded.extend(file_rules.into_iter().filter(|rule| {
                    wanted.contains(rule.id.as_str())
                        && rule
                            .response
                            .as_ref()
                            .is_some_and(|response| response.scope == ResponseScope::Host)
                })),
                Err(problems) => {
                    tracing::error!(file = %file.name, %problems, "offline rules: cannot load a rule file the collector sent")
                }
            }
        }
        tracing::info!(rules = loaded.len(), "offline rules loaded");
        (!loaded.is_empty()).then(|| Engine::new(loaded, Calendar::default()))
    }

    /// Replaces the set with `rules` and keeps them in `state_dir`.
    pub fn replace(&mut self, state_dir: &Path, rules: OfflineRules) {
        let text = serde_json::to_vec(&rules).map_err(std::io::Error::other);
        if let Err(error) = text.and_then(|text| {
            countywatch_daemon::durable_file::replace(&path(state_dir), &text, 0o600)
        }) {
            tracing::error!(%error, "cannot save the offline rules; they hold until the agent restarts");
        }
        *self = OfflineRuleSet::new(rules);
        tracing::info!(
            rules = self.rule_count(),
            version = %self.rules.version,
            "offline rules received"
        );
    }

    /// The version held, for the long poll.
    pub fn version(&self) -> &str {
        &self.rules.version
    }

    /// The collector's `response.max_duration`, in milliseconds.
    pub fn max_duration_ms(&self) -> i64 {
        self.rules.max_duration_ms
    }

    /// The collector's `never_block` entry covering `address`, if any.
    pub fn never_block(&self, address: std::net::IpAddr) -> Option<&str> {
        self.never_block
            .iter()
            .find(|(_, block)| block.contains(address))
            .map(|(text, _)| text.as_str())
    }

    /// How many rules the collector listed.
    pub fn rule_count(&self) -> usize {
        self.rules.files.iter().map(|file| file.rules.len()).sum()
    }

    /// Runs `events` through the rules and returns what fired.
    pub fn evaluate(&mut self, events: &[Event]) -> Vec<Detection> {
        let mut detections = Vec::new();
        if !self.built {
            self.engine = OfflineRuleSet::build_engine(&self.rules);
            self.built = true;
        }
        let Some(engine) = self.engine.as_mut() else {
            return detections;
        };
        let mut lookup = |id: i64| {
            usize::try_from(id)
                .ok()
                .and_then(|index| events.get(index))
                .cloned()
        };
        for (index, event) in events.iter().enumerate() {
            let id = i64::try_from(index).unwrap_or(i64::MAX);
            engine.process(event, id, &mut lookup, &mut detections);
        }
        detections
    }
}

/// The file's path in `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::os::unix::fs::PermissionsExt;

    use countywatch_wire::{EventFields, EventKind, EventSource, OfflineRuleFile};

    use super::*;

    /// A host-scoped rule and a county-scoped one in the same file, with a
    /// list the first uses.
    const RULES: &str = "
lists:
  ignored: [192.0.2.99]
rules:
  - id: local_brute_force
    title: 'brute force from {{ $labels.src_ip }}'
    severity: high
    match: {kind: ssh_login_failed}
    allow: {src_ip: {in_list: ignored}}
    group_by: [src_ip]
    max_groups: 100
    threshold: {count: 3, window: 2m}
    response: {action: block_source, duration: 1h, scope: host}
  - id: county_brute_force
    title: county
    severity: high
    match: {kind: ssh_login_failed}
    group_by: [src_ip]
    max_groups: 100
    threshold: {count: 3, window: 2m}
    response: {action: block_source, duration: 1h, scope: county}
";

    pub(crate) fn rules() -> OfflineRules {
        OfflineRules {
            version: "v1".to_string(),
            files: vec![OfflineRuleFile {
                name: "built-in detection/test.yaml".to_string(),
                text: RULES.to_string(),
                rules: vec![
                    "local_brute_force".to_string(),
                    "county_brute_force".to_string(),
                ],
            }],
            max_duration_ms: 600_000,
            never_block: vec!["198.51.100.0/24".to_string(), "bastion".to_string()],
        }
    }

    pub(crate) fn failure(at_ms: i64, address: &str) -> Event {
        Event {
            timestamp_ms: at_ms,
            host: "web1".to_string(),
            source: EventSource::Auth,
            kind: EventKind::SshLoginFailed,
            fields: EventFields {
                src_ip: address.parse().ok(),
                user: Some("root".to_string()),
                ..EventFields::default()
            },
            raw: "Failed password for root".to_string(),
        }
    }

    #[test]
    fn only_host_scoped_rules_run_and_they_survive_a_restart_in_an_owner_only_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(rulefmt::parse(Path::new("t.yaml"), RULES).unwrap().len(), 2);
        let mut set = OfflineRuleSet::load(dir.path());
        assert_eq!(set.version(), "");
        set.replace(dir.path(), rules());
        assert_eq!(set.rule_count(), 2);
        let mode = std::fs::metadata(path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut again = OfflineRuleSet::load(dir.path());
        assert_eq!(again.version(), "v1");
        assert_eq!(again.max_duration_ms(), 600_000);
        let events: Vec<Event> = (0..3)
            .map(|n| failure(1_000 + n, "203.0.113.9"))
            .chain((0..3).map(|n| failure(2_000 + n, "192.0.2.99")))
            .collect();
        let fired = again.evaluate(&events);
        // Only the host-scoped rule runs, though both were listed.
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].rule_id, "local_brute_force");
        assert_eq!(
            fired[0].source_address(),
            "203.0.113.9".parse().ok(),
            "{fired:?}"
        );
        assert_eq!(
            again.never_block("198.51.100.7".parse().unwrap()),
            Some("198.51.100.0/24")
        );
        assert_eq!(again.never_block("203.0.113.9".parse().unwrap()), None);
        // A new outage starts with empty state: two more failures do not
        // complete a count begun in the last one.
        again.start_outage();
        assert!(again.evaluate(&events[..2]).is_empty());
        std::fs::write(path(dir.path()), b"{not json").unwrap();
        assert_eq!(OfflineRuleSet::load(dir.path()).version(), "");
    }
}
