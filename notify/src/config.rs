//! The `notify:` section of the collector's config: Alertmanager's shape for
//! `route`, `receivers`, `inhibit_rules` and `time_intervals`, plus the
//! outbox, flap detection, the dead-man's switch and silence notices.
//!
//! Where we differ from Alertmanager: receivers are `*_configs` lists as
//! there, but email `to`/`cc` are lists, TLS is chosen with `tls:
//! starttls|implicit|none`, templates are mustache-style (see
//! [`crate::template`]), and time interval `location` also takes a
//! fixed offset (`+08:00`). `alertmanager_config` reads an unmodified
//! `alertmanager.yml` instead (see [`crate::alertmanager_file`]).
//!
//! A receiver kind's settings live in its file under [`crate::receiver`],
//! the time intervals' in [`crate::time_interval`]: this file only puts
//! the section together and checks what spans it (names that must exist).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use countywatch_config::config_file::{Problems, Spanned};
use countywatch_config::duration::PromDuration;
use serde::Deserialize;

use crate::display::Language;
use crate::matcher::Matcher;
use crate::receiver::{self, BuildContext, ReceiverConfig, Receivers};
use crate::template::TemplateDefaults;
use crate::time_interval::TimeIntervalConfig;

/// The whole `notify:` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Base URL of the collector's page, for links in notifications
    /// (`<external_url>/alerts/<fingerprint>`).
    pub external_url: String,
    /// Language of the default templates: `en` or `zh` (Simplified
    /// Chinese). Unset: `display.language`.
    pub language: Option<Language>,
    /// Where times in notifications are written and the default language,
    /// from the collector's `display:` section (not read from `notify:`).
    #[serde(skip)]
    pub display: crate::display::Display,
    /// A firing alert submitted without an end time and not submitted again
    /// for this long is considered resolved (Alertmanager's `resolve_timeout`).
    pub resolve_timeout: PromDuration,
    /// Accept alerts on `POST /api/v2/alerts` (Alertmanager's API), so that
    /// Prometheus or a script can send alerts to the collector. Off by
    /// default: the HTTP listener has no authentication yet.
    pub accept_alerts_api: bool,
    /// Accept silences on `POST`/`DELETE /api/v2/silences` (the CLI writes
    /// the database directly and needs no API).
    pub accept_silences_api: bool,
    /// An unmodified Alertmanager configuration file (`alertmanager.yml`)
    /// giving the route tree, receivers, inhibit rules, time intervals and
    /// `global.resolve_timeout` instead of the keys of the same names here
    /// (setting both is an error). Relative to the working directory.
    pub alertmanager_config: Option<Spanned<PathBuf>>,
    /// The routing tree; its root matches every alert.
    pub route: RouteConfig,
    /// Where notifications go, by name.
    pub receivers: Vec<ReceiverConfig>,
    /// Alerts that mute other alerts while they fire.
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    /// Named time intervals for `mute_time_intervals` and `active_time_intervals`.
    pub time_intervals: Vec<TimeIntervalConfig>,
    /// The persistent outbox: retries, backoff and the give-up deadline.
    pub outbox: OutboxConfig,
    /// The text of the `alertmanager_config` file as it was loaded.
    #[serde(skip)]
    pub alertmanager_text: Option<String>,
    /// Hold back alerts that change state too often.
    pub flap_detection: Option<FlapConfig>,
    /// The dead-man's switch: report when an always-firing alert stops arriving.
    pub heartbeat: Option<HeartbeatConfig>,
    /// Send a notice when a silence is created and when it expires.
    pub silence_notifications: Option<SilenceNotificationsConfig>,
}

/// One node of the routing tree. Unset fields inherit from the parent.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteConfig {
    /// The receiver notified for alerts this route handles.
    pub receiver: Option<Spanned<String>>,
    /// Labels that split alerts into groups; `...` groups by all labels.
    pub group_by: Option<Vec<String>>,
    /// Wait this long after a group's first alert before notifying, so
    /// that alerts arriving together go out together.
    pub group_wait: Option<PromDuration>,
    /// Wait this long before notifying about new alerts in a group that was
    /// already notified.
    pub group_interval: Option<PromDuration>,
    /// Wait this long before repeating a notification that already went out.
    pub repeat_interval: Option<PromDuration>,
    /// Every matcher must match for an alert to take this route; one
    /// entry may hold several (`'{a="x", b="y"}'`).
    #[serde(deserialize_with = "crate::matcher::deserialize_lists")]
    pub matchers: Vec<Matcher>,
    /// Alertmanager's deprecated `match:` map: label name to exact value.
    #[serde(
        rename = "match",
        deserialize_with = "crate::matcher::deserialize_legacy_equal"
    )]
    pub match_equal: Vec<Matcher>,
    /// Alertmanager's deprecated `match_re:` map: label name to regex.
    #[serde(deserialize_with = "crate::matcher::deserialize_legacy_regex")]
    pub match_re: Vec<Matcher>,
    /// Keep looking at the following sibling routes after this one matched.
    #[serde(rename = "continue")]
    pub continue_matching: bool,
    /// Child routes, tried in order.
    pub routes: Vec<RouteConfig>,
    /// Names of time intervals during which notifications are muted.
    pub mute_time_intervals: Vec<Spanned<String>>,
    /// Names of time intervals outside which notifications are muted.
    pub active_time_intervals: Vec<Spanned<String>>,
}

/// An inhibition rule: while a source alert fires, target alerts that have
/// the same values for the `equal` labels are muted.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRuleConfig {
    /// What makes an alert a source.
    #[serde(default, deserialize_with = "crate::matcher::deserialize_lists")]
    pub source_matchers: Vec<Matcher>,
    /// Alertmanager's deprecated `source_match:` map (exact values).
    #[serde(default, deserialize_with = "crate::matcher::deserialize_legacy_equal")]
    pub source_match: Vec<Matcher>,
    /// Alertmanager's deprecated `source_match_re:` map (regexes).
    #[serde(default, deserialize_with = "crate::matcher::deserialize_legacy_regex")]
    pub source_match_re: Vec<Matcher>,
    /// What makes an alert a target.
    #[serde(default, deserialize_with = "crate::matcher::deserialize_lists")]
    pub target_matchers: Vec<Matcher>,
    /// Alertmanager's deprecated `target_match:` map (exact values).
    #[serde(default, deserialize_with = "crate::matcher::deserialize_legacy_equal")]
    pub target_match: Vec<Matcher>,
    /// Alertmanager's deprecated `target_match_re:` map (regexes).
    #[serde(default, deserialize_with = "crate::matcher::deserialize_legacy_regex")]
    pub target_match_re: Vec<Matcher>,
    /// Labels whose values must be equal in source and target.
    #[serde(default)]
    pub equal: Vec<String>,
}

/// The persistent outbox.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// Wait after the first failed attempt; doubles after each further one.
    pub initial_backoff: PromDuration,
    /// Longest wait between attempts.
    pub max_backoff: PromDuration,
    /// Give up on a notification this long after it was written, count it
    /// in `countywatch_notifications_failed_total` and raise a
    /// `notification_failed` alert to `fallback_receiver`.
    pub deadline: PromDuration,
    /// Receiver for `notification_failed` alerts (never the failing one).
    pub fallback_receiver: Option<Spanned<String>>,
    /// Notifications sent at once to one integration.
    pub max_in_flight: usize,
}

/// Flap detection: an alert that changes between firing and resolved more
/// than `max_changes` times within `window` is held back until it has been
/// stable for a whole window.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlapConfig {
    /// The window the changes are counted in.
    pub window: PromDuration,
    /// Changes allowed within the window.
    pub max_changes: u32,
}

/// The dead-man's switch.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatConfig {
    /// What identifies the heartbeat alert, e.g. `alertname="Watchdog"`.
    #[serde(deserialize_with = "crate::matcher::deserialize_lists")]
    pub matchers: Vec<Matcher>,
    /// When no firing heartbeat arrived for this long, a
    /// `HeartbeatMissing` alert fires and is routed like any other.
    pub timeout: PromDuration,
}

/// Silence notices.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceNotificationsConfig {
    /// The receiver told when a silence is created and when it expires.
    pub receiver: Spanned<String>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            external_url: "http://127.0.0.1:9780".to_string(),
            language: None,
            display: crate::display::Display::default(),
            resolve_timeout: PromDuration(Duration::from_secs(300)),
            accept_alerts_api: false,
            accept_silences_api: false,
            alertmanager_config: None,
            route: RouteConfig::default(),
            receivers: Vec::new(),
            inhibit_rules: Vec::new(),
            time_intervals: Vec::new(),
            outbox: OutboxConfig::default(),
            alertmanager_text: None,
            flap_detection: None,
            heartbeat: None,
            silence_notifications: None,
        }
    }
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            initial_backoff: PromDuration(Duration::from_secs(1)),
            max_backoff: PromDuration(Duration::from_secs(300)),
            deadline: PromDuration(Duration::from_secs(24 * 3600)),
            fallback_receiver: None,
            max_in_flight: 4,
        }
    }
}

impl RouteConfig {
    /// Whether nothing of the route was written (the default).
    pub fn is_unset(&self) -> bool {
        self.receiver.is_none()
            && self.group_by.is_none()
            && self.group_wait.is_none()
            && self.group_interval.is_none()
            && self.repeat_interval.is_none()
            && self.all_matchers().is_empty()
            && !self.continue_matching
            && self.routes.is_empty()
            && self.mute_time_intervals.is_empty()
            && self.active_time_intervals.is_empty()
    }

    /// Every matcher of this route, legacy `match`/`match_re` included,
    /// sorted as Alertmanager sorts them (by name, value, then kind).
    pub fn all_matchers(&self) -> Vec<Matcher> {
        let mut all: Vec<Matcher> = self
            .match_equal
            .iter()
            .chain(&self.match_re)
            .chain(&self.matchers)
            .cloned()
            .collect();
        all.sort_by(|left, right| left.sort_key().cmp(&right.sort_key()));
        all
    }
}

impl InhibitRuleConfig {
    /// The source matchers, legacy `source_match`/`source_match_re` included.
    pub fn source_matchers(&self) -> impl Iterator<Item = Matcher> + '_ {
        self.source_match
            .iter()
            .chain(&self.source_match_re)
            .chain(&self.source_matchers)
            .cloned()
    }

    /// The target matchers, legacy `target_match`/`target_match_re` included.
    pub fn target_matchers(&self) -> impl Iterator<Item = Matcher> + '_ {
        self.target_match
            .iter()
            .chain(&self.target_match_re)
            .chain(&self.target_matchers)
            .cloned()
    }
}

impl NotifyConfig {
    /// With `alertmanager_config` set, reads that file into the route,
    /// receivers, inhibit rules, time intervals and resolve timeout; its
    /// problems are reported against its own lines. Refuses a config that
    /// also sets those keys here.
    pub fn apply_alertmanager_file(&mut self, config_path: &Path) -> Result<(), Problems> {
        let Some(path) = &self.alertmanager_config else {
            return Ok(());
        };
        if !self.route.is_unset()
            || !self.receivers.is_empty()
            || !self.inhibit_rules.is_empty()
            || !self.time_intervals.is_empty()
        {
            let mut problems = Problems::new(config_path);
            problems.at(
                path,
                "notify.alertmanager_config is set together with notify.route, receivers, inhibit_rules or time_intervals; keep one of the two forms",
            );
            return Err(problems);
        }
        let converted = crate::alertmanager_file::load(&path.value)?;
        self.route = converted.route;
        self.receivers = converted.receivers;
        self.inhibit_rules = converted.inhibit_rules;
        self.time_intervals = converted.time_intervals;
        self.resolve_timeout = converted.resolve_timeout;
        self.alertmanager_text = Some(converted.text);
        Ok(())
    }

    /// Builds every receiver's integrations (reads password, token and
    /// template files, builds TLS configurations).
    pub fn build_receivers(&self) -> anyhow::Result<Receivers> {
        let defaults = TemplateDefaults {
            language: self.language.unwrap_or(self.display.language),
            display: self.display.clone(),
        };
        let context = BuildContext {
            defaults: &defaults,
            external_url: &self.external_url,
        };
        receiver::build(&self.receivers, &context)
    }

    /// Semantic checks: names that must exist, URLs, addresses, intervals.
    /// What came from an `alertmanager_config` file is reported against it.
    pub fn validate(&self, problems: &mut Problems) {
        match &self.alertmanager_config {
            Some(path) => {
                let mut file_problems = Problems::new(&path.value);
                self.validate_alerting(&mut file_problems);
                problems.problems.extend(file_problems.problems);
            }
            None => self.validate_alerting(problems),
        }
        self.validate_own_keys(problems);
    }

    /// The receiver names.
    fn receiver_names(&self) -> BTreeSet<&str> {
        self.receivers
            .iter()
            .map(|receiver| receiver.name.value.as_str())
            .collect()
    }

    /// Checks the keys an `alertmanager.yml` can give: receivers, time
    /// intervals, the route tree and inhibit rules.
    pub fn validate_alerting(&self, problems: &mut Problems) {
        let mut receivers = BTreeSet::new();
        for receiver in &self.receivers {
            if !receivers.insert(receiver.name.value.as_str()) {
                problems.at(
                    &receiver.name,
                    format!("notify.receivers: duplicate name {:?}", receiver.name.value),
                );
            }
            receiver.validate(problems);
        }
        let mut intervals = BTreeSet::new();
        for interval in &self.time_intervals {
            if !intervals.insert(interval.name.value.as_str()) {
                problems.at(
                    &interval.name,
                    format!(
                        "notify.time_intervals: duplicate name {:?}",
                        interval.name.value
                    ),
                );
            }
            for spec in &interval.time_intervals {
                if let Err(error) = crate::time_interval::Interval::build(spec) {
                    problems.at(&error.value, error.to_string());
                }
            }
        }
        match &self.route.receiver {
            None if !self.receivers.is_empty() => {
                problems.general("notify.route.receiver is required when receivers are configured");
            }
            _ => {}
        }
        validate_root_route(&self.route, problems);
        validate_route(&self.route, &receivers, &intervals, problems);
        for rule in &self.inhibit_rules {
            for label in &rule.equal {
                if !crate::matcher::valid_label_name(label) {
                    problems.general(format!(
                        "notify.inhibit_rules: invalid label name {label:?} in equal"
                    ));
                }
            }
        }
    }

    /// Checks countywatch's own keys beside the Alertmanager-shaped ones.
    fn validate_own_keys(&self, problems: &mut Problems) {
        let receivers = self.receiver_names();
        for name in [
            self.outbox.fallback_receiver.as_ref(),
            self.silence_notifications
                .as_ref()
                .map(|config| &config.receiver),
        ]
        .into_iter()
        .flatten()
        {
            if !receivers.contains(name.value.as_str()) {
                problems.at(name, format!("no receiver named {:?}", name.value));
            }
        }
        if self.outbox.max_in_flight == 0 {
            problems.general("notify.outbox.max_in_flight must be at least 1");
        }
        if self.outbox.initial_backoff.get() > self.outbox.max_backoff.get() {
            problems.general("notify.outbox.initial_backoff must not exceed max_backoff");
        }
        if let Some(flap) = &self.flap_detection
            && (flap.max_changes == 0 || flap.window.get().is_zero())
        {
            problems.general("notify.flap_detection needs a positive window and max_changes");
        }
        if self
            .heartbeat
            .as_ref()
            .is_some_and(|heartbeat| heartbeat.matchers.is_empty())
        {
            problems.general("notify.heartbeat.matchers must not be empty");
        }
    }
}

/// What Alertmanager refuses on the root route, which is the fallback for
/// every alert and so must match everything, always.
fn validate_root_route(root: &RouteConfig, problems: &mut Problems) {
    if !root.all_matchers().is_empty() {
        problems.general("notify.route: root route must not have any matchers");
    }
    if let Some(name) = root.mute_time_intervals.first() {
        problems.at(
            name,
            "notify.route: root route must not have any mute time intervals",
        );
    }
    if let Some(name) = root.active_time_intervals.first() {
        problems.at(
            name,
            "notify.route: root route must not have any active time intervals",
        );
    }
    if root.continue_matching {
        problems.general("notify.route: cannot have continue in root route");
    }
}

fn validate_route(
    route: &RouteConfig,
    receivers: &BTreeSet<&str>,
    intervals: &BTreeSet<&str>,
    problems: &mut Problems,
) {
    if let Some(receiver) = &route.receiver
        && !receivers.contains(receiver.value.as_str())
    {
        problems.at(receiver, format!("no receiver named {:?}", receiver.value));
    }
    for name in route
        .mute_time_intervals
        .iter()
        .chain(&route.active_time_intervals)
    {
        if !intervals.contains(name.value.as_str()) {
            problems.at(name, format!("no time interval named {:?}", name.value));
        }
    }
    if let Some(group_by) = &route.group_by {
        let mut seen = BTreeSet::new();
        for label in group_by {
            if label != "..." && !crate::matcher::valid_label_name(label) {
                problems.general(format!(
                    "notify.route: invalid label name {label:?} in group_by list"
                ));
            }
            if label != "..." && !seen.insert(label.as_str()) {
                problems.general(format!(
                    "notify.route: duplicated label {label:?} in group_by"
                ));
            }
        }
        if !seen.is_empty() && group_by.iter().any(|label| label == "...") {
            problems.general(
                "notify.route: cannot have wildcard group_by (`...`) and other labels at the same time",
            );
        }
    }
    if route
        .group_interval
        .is_some_and(|interval| interval.get().is_zero())
    {
        problems.general("notify.route: group_interval must be positive");
    }
    if route
        .repeat_interval
        .is_some_and(|interval| interval.get().is_zero())
    {
        problems.general("notify.route: repeat_interval must be positive");
    }
    for child in &route.routes {
        validate_route(child, receivers, intervals, problems);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn problems_of(text: &str) -> String {
        let config: NotifyConfig =
            match countywatch_config::config_file::parse(Path::new("n.yaml"), text) {
                Ok(config) => config,
                Err(problems) => return problems.to_string(),
            };
        let mut problems = Problems::new("n.yaml");
        config.validate(&mut problems);
        problems
            .into_result()
            .err()
            .map(|p| p.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn defaults_and_the_shipped_example_are_valid() {
        assert_eq!(problems_of(""), "");
        let example = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/notify.example.yaml"
        ))
        .unwrap();
        let section = example.split_once("notify:\n").unwrap().1;
        let unindented: String = section
            .lines()
            .map(|line| line.strip_prefix("  ").unwrap_or(line))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(problems_of(&unindented), "");
    }

    #[test]
    fn every_problem_is_reported_with_its_position() {
        let problems = problems_of(
            "route:\n  receiver: nobody\n  routes:\n  - active_time_intervals: [never]\nreceivers:\n- name: a\n  webhook_configs:\n  - url: ftp://x/\n- name: a\n  email_configs:\n  - to: []\n    from: not an address\n    smarthost: mail:25\n    tls: none\n    auth_username: u\noutbox:\n  fallback_receiver: ghost\n",
        );
        let lines: Vec<&str> = problems.lines().collect();
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with("n.yaml:2:13: no receiver named \"nobody\"")),
            "{problems}"
        );
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with("n.yaml:4:29: no time interval named \"never\"")),
            "{problems}"
        );
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with("n.yaml:8:10: URL \"ftp://x/\" must start with http")),
            "{problems}"
        );
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with("n.yaml:9:9: notify.receivers: duplicate name \"a\"")),
            "{problems}"
        );
        assert!(
            lines
                .iter()
                .any(|line| line.contains("`to` must name at least one address")),
            "{problems}"
        );
        assert!(
            lines
                .iter()
                .any(|line| line.contains("invalid address \"not an address\"")),
            "{problems}"
        );
        assert!(
            lines
                .iter()
                .any(|line| line.contains("auth_username needs tls")),
            "{problems}"
        );
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with("n.yaml:17:22: no receiver named \"ghost\"")),
            "{problems}"
        );
    }

    #[test]
    fn what_alertmanager_refuses_is_refused() {
        for (yaml, expected) in [
            (
                "route:\n  group_by: ['...', foo]\n",
                "cannot have wildcard group_by",
            ),
            (
                "route:\n  group_by: [a, b, a]\n",
                "duplicated label \"a\" in group_by",
            ),
            (
                "route:\n  matchers: [a=b]\n",
                "root route must not have any matchers",
            ),
            (
                "route:\n  match: {a: b}\n",
                "root route must not have any matchers",
            ),
            (
                "route:\n  continue: true\n",
                "cannot have continue in root route",
            ),
            (
                "route:\n  routes:\n  - matchers: ['x=y\"z']\n",
                "unescaped double quote",
            ),
            (
                "route:\n  routes:\n  - match: {1a: b}\n",
                "invalid label name",
            ),
            (
                "route:\n  routes:\n  - match_re: {a: '('}\n",
                "invalid regex",
            ),
            (
                "route:\n  routes:\n  - match_re: {a: 'x{1001}'}\n",
                "invalid repeat count",
            ),
        ] {
            let problems = problems_of(yaml);
            assert!(problems.contains(expected), "{yaml}: {problems}");
        }
    }

    #[test]
    fn legacy_match_and_lists_in_one_string_are_read() {
        let config: NotifyConfig = countywatch_config::config_file::parse(
            Path::new("n.yaml"),
            "route:\n  routes:\n  - match: {service: db, b: x}\n    match_re: {team: 'a|b'}\n    matchers: ['{z=\"1\", c=~\"2\"}', 'c=3']\ninhibit_rules:\n- source_match: {severity: critical}\n  target_match_re: {severity: 'warn.*'}\n  equal: [x]\n",
        )
        .unwrap();
        let written: Vec<String> = config.route.routes[0]
            .all_matchers()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            written,
            [
                "b=\"x\"",
                "c=~\"2\"",
                "c=\"3\"",
                "service=\"db\"",
                "team=~\"^(?:a|b)$\"",
                "z=\"1\""
            ]
        );
        let rule = &config.inhibit_rules[0];
        assert_eq!(rule.source_matchers().count(), 1);
        assert_eq!(
            rule.target_matchers()
                .map(|m| m.to_string())
                .collect::<Vec<_>>(),
            ["severity=~\"^(?:warn.*)$\""]
        );
    }

    #[test]
    fn shape_errors_name_the_position() {
        assert!(problems_of("route:\n  matchers: ['a=~\"(\"']\n").starts_with("n.yaml:2:"));
        assert!(problems_of("route:\n  group_wait: soon\n").starts_with("n.yaml:2:15:"));
        assert!(problems_of("language: fr\n").starts_with("n.yaml:1:"));
    }
}
