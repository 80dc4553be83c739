//! Grouping and deciding what to send, as a pure state machine: the time is
//! always a parameter, so tests drive it without clocks, and the async task
//! in [`crate`] only feeds it alerts and writes its output.
//!
//! Alertmanager's semantics: an alert joins one group per matching route
//! (keyed by the route and its `group_by` labels); a new group is flushed
//! after `group_wait`, then every `group_interval`. A flush notifies an
//! integration when the group has firing alerts it was not told about,
//! when `repeat_interval` passed since it was last told, or (with
//! `send_resolved`) when alerts it was told were firing have resolved. What
//! each integration was told is the notification log (persisted with the
//! outbox, so a restart does not repeat notifications).
//!
//! Our additions: a resolved notice goes out for an alert that was
//! notified and later silenced or inhibited (Alertmanager #226); flapping
//! alerts are held back (#204); a dead-man's switch raises
//! `HeartbeatMissing` when the heartbeat alert stops (#1542).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::alert::{Alert, Fingerprint, LabelSet, labels};
use crate::inhibit::Inhibitor;
use crate::matcher::{Matcher, all_match};
use crate::notification::{AlertSnapshot, Kind, Notification};
use crate::route_tree::Route;
use crate::time_interval::TimeIntervals;

/// Key of a notification-log entry: group key, receiver, integration index.
pub type NflogKey = (String, String, usize);

/// What an integration was last told about a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NflogEntry {
    /// Alerts it was told are firing (and that have not resolved since).
    pub firing: BTreeSet<Fingerprint>,
    /// When it was last sent a notification.
    pub sent_ms: i64,
}

/// A notification to write to the outbox for one integration.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    /// Integration index within the receiver.
    pub integration: usize,
    /// The notification.
    pub notification: Notification,
}

/// The result of a flush round: notifications and notification-log
/// changes, to be written in one transaction.
#[derive(Debug, Default)]
pub struct Flushed {
    /// Notifications to send.
    pub outgoing: Vec<Outgoing>,
    /// New log entries (`None`: delete the entry).
    pub nflog: Vec<(NflogKey, Option<NflogEntry>)>,
}

/// What the dispatcher needs to know of one integration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IntegrationPolicy {
    /// Whether resolved-only notifications are wanted.
    pub send_resolved: bool,
    /// Firing alerts are sent again this often (at the group's
    /// `group_interval` at the earliest) whatever the route's
    /// `repeat_interval`, each send with `endsAt` four such cadences
    /// ahead: forwarders to an Alertmanager, as Prometheus sends.
    pub resend_ms: Option<i64>,
}

/// Settings the dispatcher needs beyond the route tree.
pub struct Settings {
    /// Receiver name to each integration's policy, in config order.
    pub integrations: BTreeMap<String, Vec<IntegrationPolicy>>,
    /// Alerts not re-submitted for this long resolve.
    pub resolve_timeout_ms: i64,
    /// Flap detection: (window, changes allowed).
    pub flap: Option<(i64, usize)>,
    /// Dead-man's switch: (heartbeat matchers, timeout).
    pub heartbeat: Option<(Vec<Matcher>, i64)>,
    /// Base URL for links.
    pub external_url: String,
}

/// Counts for `countywatch_alerts{state}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlertCounts {
    /// Firing and notified.
    pub active: usize,
    /// Firing but silenced, inhibited or flapping.
    pub suppressed: usize,
    /// Resolved, kept until their groups flushed.
    pub resolved: usize,
}

#[derive(Debug)]
struct Entry {
    alert: Alert,
    /// When it was last submitted.
    updated_ms: i64,
    /// Groups holding it.
    groups: usize,
    /// When it changed between firing and resolved, within the flap window.
    transitions: VecDeque<i64>,
}

#[derive(Debug)]
struct Group {
    route_id: String,
    labels: LabelSet,
    alerts: BTreeSet<Fingerprint>,
    next_flush_ms: i64,
    /// Whether the group has been flushed once (its group_wait is over).
    flushed: bool,
}

/// The grouping state machine.
pub struct Dispatcher {
    root: Route,
    routes: HashMap<String, Route>,
    intervals: TimeIntervals,
    inhibitor: Inhibitor,
    settings: Settings,
    alerts: HashMap<Fingerprint, Entry>,
    groups: HashMap<String, Group>,
    nflog: HashMap<NflogKey, NflogEntry>,
    last_heartbeat_ms: i64,
    heartbeat_missing: bool,
}

/// The alert the dead-man's switch raises.
pub const HEARTBEAT_MISSING: &str = "HeartbeatMissing";

impl Dispatcher {
    /// A dispatcher with the notification log loaded from storage.
    pub fn new(
        root: Route,
        intervals: TimeIntervals,
        inhibitor: Inhibitor,
        settings: Settings,
        nflog: HashMap<NflogKey, NflogEntry>,
        now_ms: i64,
    ) -> Dispatcher {
        let routes = root
            .walk()
            .into_iter()
            .map(|route| (route.id.clone(), route.clone()))
            .collect();
        Dispatcher {
            root,
            routes,
            intervals,
            inhibitor,
            settings,
            alerts: HashMap::new(),
            groups: HashMap::new(),
            nflog,
            last_heartbeat_ms: now_ms,
            heartbeat_missing: false,
        }
    }

    /// When an alert counts as resolved, if it does at `now_ms`.
    fn resolved_at(&self, entry: &Entry, now_ms: i64) -> Option<i64> {
        match entry.alert.ends_at_ms {
            Some(end) if end <= now_ms => Some(end),
            Some(_) => None,
            None if now_ms - entry.updated_ms > self.settings.resolve_timeout_ms => {
                Some(entry.updated_ms + self.settings.resolve_timeout_ms)
            }
            None => None,
        }
    }

    /// Takes in alerts from a producer.
    pub fn submit(&mut self, alerts: Vec<Alert>, now_ms: i64) {
        for alert in alerts {
            self.submit_one(alert, now_ms);
        }
    }

    fn submit_one(&mut self, mut alert: Alert, now_ms: i64) {
        let fingerprint = alert.fingerprint();
        if let Some(known) = self.alerts.get(&fingerprint)
            && self.resolved_at(known, now_ms).is_none()
        {
            alert.starts_at_ms = alert.starts_at_ms.min(known.alert.starts_at_ms);
        }
        // An end before the start is a producer's mistake; Alertmanager
        // (a receiver) refuses such alerts, so end it when it started.
        if let Some(end) = alert.ends_at_ms
            && end < alert.starts_at_ms
        {
            alert.ends_at_ms = Some(alert.starts_at_ms);
        }
        let firing = !alert.resolved_at(now_ms);
        if firing
            && let Some((matchers, _)) = &self.settings.heartbeat
            && all_match(matchers, &alert.labels)
        {
            self.last_heartbeat_ms = now_ms;
            if self.heartbeat_missing {
                self.heartbeat_missing = false;
                let mut resolved = heartbeat_alert(now_ms);
                resolved.ends_at_ms = Some(now_ms);
                self.submit_one(resolved, now_ms);
            }
        }
        let was_firing = self
            .alerts
            .get(&fingerprint)
            .map(|entry| self.resolved_at(entry, now_ms).is_none());
        let flap_window = self.settings.flap.map(|(window, _)| window);
        match self.alerts.get_mut(&fingerprint) {
            Some(entry) => {
                if was_firing == Some(true) {
                    // The same episode (still firing, or its resolution):
                    // keep when it started.
                    alert.starts_at_ms = alert.starts_at_ms.min(entry.alert.starts_at_ms);
                }
                if was_firing != Some(firing) && flap_window.is_some() {
                    entry.transitions.push_back(now_ms);
                }
                entry.alert = alert;
                entry.updated_ms = now_ms;
            }
            None => {
                self.alerts.insert(
                    fingerprint,
                    Entry {
                        alert,
                        updated_ms: now_ms,
                        groups: 0,
                        transitions: VecDeque::new(),
                    },
                );
            }
        }
        self.join_groups(fingerprint, now_ms);
    }

    /// Puts a known alert into the group of every route it matches.
    fn join_groups(&mut self, fingerprint: Fingerprint, now_ms: i64) {
        let Some(entry) = self.alerts.get(&fingerprint) else {
            return;
        };
        let routed: Vec<(String, String, LabelSet, i64)> = self
            .root
            .matching(&entry.alert.labels)
            .into_iter()
            .map(|route| {
                let group_labels = route.group_labels(&entry.alert.labels);
                let key = group_key(&route.id, &group_labels);
                let wait = i64::try_from(route.group_wait.as_millis()).unwrap_or(i64::MAX / 4);
                (key, route.id.clone(), group_labels, wait)
            })
            .collect();
        let starts_at_ms = entry.alert.starts_at_ms;
        let mut joined = 0;
        for (key, route_id, group_labels, wait) in routed {
            let group = self.groups.entry(key).or_insert_with(|| Group {
                route_id,
                labels: group_labels,
                alerts: BTreeSet::new(),
                next_flush_ms: now_ms + wait,
                flushed: false,
            });
            // As Alertmanager: an alert that started more than group_wait
            // ago makes a group that has not notified yet due at once.
            if !group.flushed && starts_at_ms.saturating_add(wait) < now_ms {
                group.next_flush_ms = group.next_flush_ms.min(now_ms);
            }
            if group.alerts.insert(fingerprint) {
                joined += 1;
            }
        }
        if let Some(entry) = self.alerts.get_mut(&fingerprint) {
            entry.groups += joined;
        }
    }

    /// Takes a reloaded configuration, as Alertmanager's reload does: the
    /// groups are formed again under the new route tree from the alerts
    /// known (firing ones, and resolved ones whose resolution is still to
    /// be told), while the alerts and the notification log are kept. A
    /// group that notified before under the same key and receiver is not
    /// notified again before its repeat interval; an alert that now routes
    /// to another receiver is notified there at once (it started more than
    /// `group_wait` ago, or gets its `group_wait`).
    pub fn reconfigure(
        &mut self,
        root: Route,
        intervals: TimeIntervals,
        inhibitor: Inhibitor,
        settings: Settings,
        now_ms: i64,
    ) {
        self.routes = root
            .walk()
            .into_iter()
            .map(|route| (route.id.clone(), route.clone()))
            .collect();
        self.root = root;
        self.intervals = intervals;
        self.inhibitor = inhibitor;
        self.settings = settings;
        self.groups.clear();
        let mut regroup: Vec<Fingerprint> = Vec::new();
        for (fingerprint, entry) in &self.alerts {
            if entry.groups > 0 || self.resolved_at(entry, now_ms).is_none() {
                regroup.push(*fingerprint);
            }
        }
        for entry in self.alerts.values_mut() {
            entry.groups = 0;
        }
        regroup.sort();
        for fingerprint in regroup {
            self.join_groups(fingerprint, now_ms);
        }
    }

    /// The earliest time a group is due, if any group exists.
    pub fn next_flush_ms(&self) -> Option<i64> {
        self.groups.values().map(|group| group.next_flush_ms).min()
    }

    fn flapping(&self, entry: &Entry, now_ms: i64) -> bool {
        match self.settings.flap {
            Some((window, max_changes)) => {
                entry
                    .transitions
                    .iter()
                    .filter(|at| now_ms - **at < window)
                    .count()
                    > max_changes
            }
            None => false,
        }
    }

    /// Flushes every due group. `silenced` says whether an active silence
    /// matches a label set.
    pub fn flush_due(&mut self, now_ms: i64, silenced: &dyn Fn(&LabelSet) -> bool) -> Flushed {
        let mut flushed = Flushed::default();
        let mut due: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, group)| group.next_flush_ms <= now_ms)
            .map(|(key, _)| key.clone())
            .collect();
        if due.is_empty() {
            return flushed;
        }
        due.sort();
        let index = if self.inhibitor.is_empty() {
            None
        } else {
            let firing: Vec<(Fingerprint, &LabelSet)> = self
                .alerts
                .iter()
                .filter(|(_, entry)| self.resolved_at(entry, now_ms).is_none())
                .map(|(fingerprint, entry)| (*fingerprint, &entry.alert.labels))
                .collect();
            Some(self.inhibitor.index(firing.into_iter()))
        };
        for key in due {
            self.flush_group(&key, now_ms, silenced, index.as_ref(), &mut flushed);
        }
        flushed
    }

    fn flush_group(
        &mut self,
        key: &str,
        now_ms: i64,
        silenced: &dyn Fn(&LabelSet) -> bool,
        index: Option<&crate::inhibit::InhibitIndex>,
        flushed: &mut Flushed,
    ) {
        let Some(group) = self.groups.get(key) else {
            return;
        };
        let Some(route) = self.routes.get(&group.route_id) else {
            return;
        };
        let group_labels = group.labels.clone();
        let members: Vec<Fingerprint> = group.alerts.iter().copied().collect();
        let mut firing: Vec<(Fingerprint, AlertSnapshot)> = Vec::new();
        let mut suppressed: BTreeSet<Fingerprint> = BTreeSet::new();
        let mut resolved: Vec<(Fingerprint, AlertSnapshot)> = Vec::new();
        for fingerprint in &members {
            let Some(entry) = self.alerts.get(fingerprint) else {
                continue;
            };
            let mut snapshot = AlertSnapshot::of(&entry.alert, now_ms);
            if let Some(end) = self.resolved_at(entry, now_ms) {
                snapshot.status = "resolved".to_string();
                snapshot.ends_at_ms = Some(end);
                resolved.push((*fingerprint, snapshot));
                continue;
            }
            let inhibited = index.is_some_and(|index| {
                self.inhibitor
                    .inhibited(index, *fingerprint, &entry.alert.labels)
            });
            if inhibited || silenced(&entry.alert.labels) || self.flapping(entry, now_ms) {
                suppressed.insert(*fingerprint);
            } else {
                firing.push((*fingerprint, snapshot));
            }
        }
        let muted_by_time = route
            .mute_time_intervals
            .iter()
            .any(|name| self.intervals.contains(name, now_ms))
            || (!route.active_time_intervals.is_empty()
                && !route
                    .active_time_intervals
                    .iter()
                    .any(|name| self.intervals.contains(name, now_ms)));
        let firing_set: BTreeSet<Fingerprint> = firing.iter().map(|(fp, _)| *fp).collect();
        let repeat_ms = i64::try_from(route.repeat_interval.as_millis()).unwrap_or(i64::MAX / 4);
        let interval = i64::try_from(route.group_interval.as_millis()).unwrap_or(i64::MAX / 4);
        let receiver = route.receiver.clone();
        let notification_key = format!("{}:{}", route.key, go_label_set_string(&group_labels));
        let integrations = self
            .settings
            .integrations
            .get(&receiver)
            .cloned()
            .unwrap_or_default();
        if !muted_by_time {
            for (integration, policy) in integrations.into_iter().enumerate() {
                let send_resolved = policy.send_resolved;
                // A forwarder resends at its own cadence, quantised by the
                // group's flushes; endsAt covers four of those.
                let repeat_ms = policy
                    .resend_ms
                    .map_or(repeat_ms, |resend| resend.min(repeat_ms));
                let lease_ms = policy
                    .resend_ms
                    .map(|resend| resend.max(interval).saturating_mul(4));
                let log_key = (key.to_string(), receiver.clone(), integration);
                let previous = self.nflog.get(&log_key);
                let told: BTreeSet<Fingerprint> = previous
                    .map(|entry| entry.firing.clone())
                    .unwrap_or_default();
                let resolved_told: Vec<&(Fingerprint, AlertSnapshot)> = resolved
                    .iter()
                    .filter(|(fingerprint, _)| told.contains(fingerprint))
                    .collect();
                let new_firing = !firing_set.is_subset(&told);
                let repeat_due = !firing_set.is_empty()
                    && previous.is_some_and(|entry| now_ms - entry.sent_ms >= repeat_ms);
                let resolution_due = send_resolved && !resolved_told.is_empty();
                // Alerts told firing and now suppressed stay in the log,
                // so that their resolution is still announced.
                let still_told: BTreeSet<Fingerprint> = firing_set
                    .iter()
                    .copied()
                    .chain(told.intersection(&suppressed).copied())
                    .collect();
                if new_firing || repeat_due || resolution_due {
                    let mut alerts: Vec<AlertSnapshot> = firing
                        .iter()
                        .map(|(_, snapshot)| snapshot.clone())
                        .collect();
                    if send_resolved {
                        // As Alertmanager: every resolved alert still in
                        // the group is listed, told before or not.
                        alerts.extend(resolved.iter().map(|(_, snapshot)| snapshot.clone()));
                    }
                    alerts.sort_by(|left, right| alertmanager_order(&left.labels, &right.labels));
                    flushed.outgoing.push(Outgoing {
                        integration,
                        notification: Notification {
                            kind: Kind::Alerts,
                            receiver: receiver.clone(),
                            group_key: notification_key.clone(),
                            group_labels: group_labels.clone(),
                            alerts,
                            external_url: self.settings.external_url.clone(),
                            created_ms: now_ms,
                            lease_ms,
                        },
                    });
                    self.set_nflog(log_key, still_told, now_ms, flushed);
                } else if still_told != told {
                    let sent_ms = previous.map_or(now_ms, |entry| entry.sent_ms);
                    self.set_nflog(log_key, still_told, sent_ms, flushed);
                }
            }
        }
        let mut emptied = false;
        if let Some(group) = self.groups.get_mut(key) {
            group.next_flush_ms = now_ms + interval;
            group.flushed = true;
            for (fingerprint, _) in &resolved {
                if group.alerts.remove(fingerprint)
                    && let Some(entry) = self.alerts.get_mut(fingerprint)
                {
                    entry.groups = entry.groups.saturating_sub(1);
                }
            }
            emptied = group.alerts.is_empty();
        }
        if emptied {
            self.groups.remove(key);
        }
    }

    fn set_nflog(
        &mut self,
        key: NflogKey,
        firing: BTreeSet<Fingerprint>,
        sent_ms: i64,
        flushed: &mut Flushed,
    ) {
        if firing.is_empty() {
            self.nflog.remove(&key);
            flushed.nflog.push((key, None));
        } else {
            let entry = NflogEntry { firing, sent_ms };
            self.nflog.insert(key.clone(), entry.clone());
            flushed.nflog.push((key, Some(entry)));
        }
    }

    /// Periodic work: the dead-man's switch and forgetting alerts that no
    /// group holds any more (kept through the flap window when flap
    /// detection is on).
    pub fn housekeeping(&mut self, now_ms: i64) {
        if let Some((_, timeout)) = &self.settings.heartbeat
            && now_ms - self.last_heartbeat_ms > *timeout
        {
            // Re-submitted while missing so that resolve_timeout never
            // resolves it by itself.
            self.heartbeat_missing = true;
            let mut alert = heartbeat_alert(now_ms);
            alert.starts_at_ms = self.last_heartbeat_ms + *timeout;
            self.submit_one(alert, now_ms);
        }
        let keep_ms = self.settings.flap.map_or(0, |(window, _)| window);
        let forget: Vec<Fingerprint> = self
            .alerts
            .iter()
            .filter(|(_, entry)| entry.groups == 0)
            .filter(|(_, entry)| {
                self.resolved_at(entry, now_ms)
                    .is_some_and(|end| now_ms - end >= keep_ms)
            })
            .map(|(fingerprint, _)| *fingerprint)
            .collect();
        for fingerprint in forget {
            self.alerts.remove(&fingerprint);
        }
        if let Some((window, _)) = self.settings.flap {
            for entry in self.alerts.values_mut() {
                while entry
                    .transitions
                    .front()
                    .is_some_and(|at| now_ms - at >= window)
                {
                    entry.transitions.pop_front();
                }
            }
        }
    }

    /// Alerts by state, for the metrics.
    pub fn counts(&self, now_ms: i64, silenced: &dyn Fn(&LabelSet) -> bool) -> AlertCounts {
        let mut counts = AlertCounts::default();
        let index = if self.inhibitor.is_empty() {
            None
        } else {
            let firing: Vec<(Fingerprint, &LabelSet)> = self
                .alerts
                .iter()
                .filter(|(_, entry)| self.resolved_at(entry, now_ms).is_none())
                .map(|(fingerprint, entry)| (*fingerprint, &entry.alert.labels))
                .collect();
            Some(self.inhibitor.index(firing.into_iter()))
        };
        for (fingerprint, entry) in &self.alerts {
            if self.resolved_at(entry, now_ms).is_some() {
                counts.resolved += 1;
            } else if silenced(&entry.alert.labels)
                || self.flapping(entry, now_ms)
                || index.as_ref().is_some_and(|index| {
                    self.inhibitor
                        .inhibited(index, *fingerprint, &entry.alert.labels)
                })
            {
                counts.suppressed += 1;
            } else {
                counts.active += 1;
            }
        }
        counts
    }

    /// Groups currently held (tests and debugging).
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }
}

fn heartbeat_alert(now_ms: i64) -> Alert {
    let mut alert = Alert::firing(
        labels([("alertname", HEARTBEAT_MISSING), ("severity", "critical")]),
        now_ms,
    );
    alert.annotations.insert(
        "summary".to_string(),
        "The heartbeat alert stopped arriving: the alerting pipeline may be broken".to_string(),
    );
    alert
}

/// Alertmanager's order of alerts in a notification: by `job`, then
/// `instance` (an alert having the label first), then by the label sets
/// (fewer labels first, then name by name).
pub fn alertmanager_order(left: &LabelSet, right: &LabelSet) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    for name in ["job", "instance"] {
        match (left.get(name), right.get(name)) {
            (None, None) => continue,
            (None, Some(_)) => return Ordering::Greater,
            (Some(_), None) => return Ordering::Less,
            (Some(a), Some(b)) if a != b => return a.cmp(b),
            (Some(_), Some(_)) => {}
        }
    }
    if left.len() != right.len() {
        return left.len().cmp(&right.len());
    }
    let names: BTreeSet<&String> = left.keys().chain(right.keys()).collect();
    for name in names {
        match (left.get(name), right.get(name)) {
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(a), Some(b)) if a != b => return a.cmp(b),
            _ => {}
        }
    }
    Ordering::Equal
}

/// A label set written as Alertmanager writes it in a `groupKey`:
/// `{alertname="X", instance="y"}`, values quoted as Go quotes them.
pub fn go_label_set_string(labels: &LabelSet) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|(name, value)| format!("{name}={}", countywatch_labels::labels::quote(value)))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

/// A group's key: the route's position and the group's labels.
pub fn group_key(route_id: &str, labels: &LabelSet) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|(name, value)| format!("{name}={value:?}"))
        .collect();
    format!("{route_id}:{{{}}}", inner.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{InhibitRuleConfig, RouteConfig};
    use crate::time_interval::TimeIntervalConfig;

    const S: i64 = 1_000;

    struct Harness {
        dispatcher: Dispatcher,
        silenced: Vec<(String, String)>,
    }

    impl Harness {
        fn new(route: &str) -> Harness {
            Harness::with(route, "[]", "[]", None, None)
        }

        fn with(
            route: &str,
            inhibit: &str,
            intervals: &str,
            flap: Option<(i64, usize)>,
            heartbeat: Option<(Vec<Matcher>, i64)>,
        ) -> Harness {
            let parse = |text: &str| std::path::Path::new(text).to_path_buf();
            let route: RouteConfig =
                countywatch_config::config_file::parse(&parse("r"), route).unwrap();
            let inhibit: Vec<InhibitRuleConfig> =
                countywatch_config::config_file::parse(&parse("i"), inhibit).unwrap();
            let intervals: Vec<TimeIntervalConfig> =
                countywatch_config::config_file::parse(&parse("t"), intervals).unwrap();
            let settings = Settings {
                integrations: [
                    ("mail".to_string(), vec![false]),
                    ("hook".to_string(), vec![true]),
                    ("both".to_string(), vec![false, true]),
                ]
                .into_iter()
                .map(|(name, list)| {
                    let policies = list
                        .into_iter()
                        .map(|send_resolved| IntegrationPolicy {
                            send_resolved,
                            resend_ms: None,
                        })
                        .collect();
                    (name, policies)
                })
                .chain([(
                    "forward".to_string(),
                    vec![IntegrationPolicy {
                        send_resolved: true,
                        resend_ms: Some(60 * S),
                    }],
                )])
                .collect(),
                resolve_timeout_ms: 300 * S,
                flap,
                heartbeat,
                external_url: "http://c".to_string(),
            };
            Harness {
                dispatcher: Dispatcher::new(
                    Route::build(&route),
                    TimeIntervals::build(&intervals),
                    Inhibitor::new(&inhibit),
                    settings,
                    HashMap::new(),
                    0,
                ),
                silenced: Vec::new(),
            }
        }

        fn fire(&mut self, set: &[(&str, &str)], now: i64) {
            self.dispatcher
                .submit(vec![Alert::firing(labels(set.iter().copied()), now)], now);
        }

        fn resolve(&mut self, set: &[(&str, &str)], now: i64) {
            let mut alert = Alert::firing(labels(set.iter().copied()), 0);
            alert.ends_at_ms = Some(now);
            self.dispatcher.submit(vec![alert], now);
        }

        /// Flushes at `now` and describes each notification as
        /// `receiver/integration: status [alertname:status ...]`.
        fn flush(&mut self, now: i64) -> Vec<String> {
            let silenced = self.silenced.clone();
            let is_silenced = move |set: &LabelSet| {
                silenced
                    .iter()
                    .any(|(name, value)| set.get(name) == Some(value))
            };
            let flushed = self.dispatcher.flush_due(now, &is_silenced);
            flushed
                .outgoing
                .iter()
                .map(|out| {
                    let alerts: Vec<String> = out
                        .notification
                        .alerts
                        .iter()
                        .map(|alert| {
                            format!(
                                "{}:{}",
                                alert
                                    .labels
                                    .get("instance")
                                    .or(alert.labels.get("alertname"))
                                    .cloned()
                                    .unwrap_or_default(),
                                &alert.status[..1]
                            )
                        })
                        .collect();
                    format!(
                        "{}/{}: {}",
                        out.notification.receiver,
                        out.integration,
                        alerts.join(" ")
                    )
                })
                .collect()
        }
    }

    #[test]
    fn a_resolved_notification_lists_every_resolved_alert_of_the_group() {
        let mut h = Harness::new("receiver: hook\ngroup_wait: 0s\ngroup_interval: 1m\n");
        h.fire(&[("alertname", "Down"), ("instance", "a")], 0);
        assert_eq!(h.flush(0), ["hook/0: a:f"]);
        // b fires and resolves between two flushes; a resolves too. As in
        // Alertmanager, both are listed, though b was never notified.
        h.fire(&[("alertname", "Down"), ("instance", "b")], 10 * S);
        h.resolve(&[("alertname", "Down"), ("instance", "b")], 20 * S);
        h.resolve(&[("alertname", "Down"), ("instance", "a")], 30 * S);
        assert_eq!(h.flush(60 * S), ["hook/0: a:r b:r"]);
    }

    #[test]
    fn a_reloaded_route_tree_keeps_alerts_and_tells_only_a_new_receiver() {
        let mut h = Harness::new(
            "receiver: mail\ngroup_by: [alertname]\ngroup_wait: 30s\nrepeat_interval: 4h\n",
        );
        h.fire(&[("alertname", "Down"), ("instance", "a")], 0);
        assert_eq!(h.flush(30 * S), ["mail/0: a:f"]);
        // The same tree again: the group is formed anew but was told.
        let same = Harness::new(
            "receiver: mail\ngroup_by: [alertname]\ngroup_wait: 30s\nrepeat_interval: 4h\n",
        );
        let (root, settings) = (same.dispatcher.root, same.dispatcher.settings);
        h.dispatcher.reconfigure(
            root,
            same.dispatcher.intervals,
            same.dispatcher.inhibitor,
            settings,
            60 * S,
        );
        assert_eq!(h.dispatcher.group_count(), 1);
        assert!(h.flush(60 * S).is_empty(), "no repeat before 4h");
        // Routed to another receiver: the firing alert, never re-submitted,
        // is told there at once (it started more than group_wait ago).
        let moved = Harness::new("receiver: hook\ngroup_by: [alertname]\ngroup_wait: 30s\n");
        h.dispatcher.reconfigure(
            moved.dispatcher.root,
            moved.dispatcher.intervals,
            moved.dispatcher.inhibitor,
            moved.dispatcher.settings,
            90 * S,
        );
        assert_eq!(h.flush(90 * S), ["hook/0: a:f"]);
        h.resolve(&[("alertname", "Down"), ("instance", "a")], 100 * S);
        assert_eq!(h.flush(400 * S), ["hook/0: a:r"]);
    }

    #[test]
    fn a_forwarder_resends_firing_alerts_with_a_lease_of_four_cadences() {
        let mut h = Harness::new(
            "receiver: forward\ngroup_wait: 0s\ngroup_interval: 30s\nrepeat_interval: 4h\n",
        );
        h.fire(&[("alertname", "Down")], 0);
        let leases = |flushed: Flushed| -> Vec<Option<i64>> {
            flushed
                .outgoing
                .iter()
                .map(|out| out.notification.lease_ms)
                .collect()
        };
        let never = |_: &LabelSet| false;
        // Resent every minute (its resend_interval, longer than the
        // group_interval), not every 4 h, each with four minutes' lease.
        assert_eq!(leases(h.dispatcher.flush_due(0, &never)), [Some(240 * S)]);
        assert!(h.dispatcher.flush_due(30 * S, &never).outgoing.is_empty());
        assert_eq!(
            leases(h.dispatcher.flush_due(60 * S, &never)),
            [Some(240 * S)]
        );
        // Other integrations keep the route's repeat_interval and no lease.
        let mut mail = Harness::new("receiver: mail\ngroup_wait: 0s\ngroup_interval: 30s\n");
        mail.fire(&[("alertname", "Down")], 0);
        assert_eq!(leases(mail.dispatcher.flush_due(0, &never)), [None]);
        assert!(
            mail.dispatcher
                .flush_due(60 * S, &never)
                .outgoing
                .is_empty()
        );
    }

    #[test]
    fn alerts_that_started_before_group_wait_are_notified_at_once() {
        let mut h = Harness::new("receiver: mail\ngroup_by: [alertname]\ngroup_wait: 30s\n");
        // Started 10 minutes before it reached the collector (Prometheus
        // restarted, or the collector did): its group is already due.
        let mut alert = Alert::firing(labels([("alertname", "Old")]), 0);
        alert.starts_at_ms = 0;
        h.dispatcher.submit(vec![alert], 600 * S);
        assert_eq!(h.flush(600 * S), ["mail/0: Old:f"]);
        // A fresh alert still waits.
        h.fire(&[("alertname", "New")], 600 * S);
        assert!(h.flush(601 * S).is_empty());
        assert_eq!(h.flush(630 * S), ["mail/0: New:f"]);
    }

    #[test]
    fn group_wait_then_group_interval_then_repeat() {
        let mut h = Harness::new(
            "receiver: mail\ngroup_by: [alertname]\ngroup_wait: 30s\ngroup_interval: 5m\nrepeat_interval: 4h\n",
        );
        h.fire(&[("alertname", "Down"), ("instance", "a")], 0);
        h.fire(&[("alertname", "Down"), ("instance", "b")], 10 * S);
        assert!(h.flush(29 * S).is_empty(), "still waiting");
        assert_eq!(h.flush(30 * S), ["mail/0: a:f b:f"]);
        // A third alert waits for the group interval.
        h.fire(&[("alertname", "Down"), ("instance", "c")], 60 * S);
        assert!(h.flush(100 * S).is_empty());
        // Producers re-submit firing alerts on every evaluation.
        h.fire(&[("alertname", "Down"), ("instance", "a")], 300 * S);
        h.fire(&[("alertname", "Down"), ("instance", "b")], 300 * S);
        assert_eq!(h.flush(330 * S), ["mail/0: a:f b:f c:f"]);
        // Nothing new: nothing sent, until the repeat interval.
        for step in 1..48 {
            let now = 330 * S + step * 300 * S;
            for instance in ["a", "b", "c"] {
                h.fire(&[("alertname", "Down"), ("instance", instance)], now);
            }
            assert!(h.flush(now).is_empty(), "step {step}");
        }
        let now = 330 * S + 48 * 300 * S;
        for instance in ["a", "b", "c"] {
            h.fire(&[("alertname", "Down"), ("instance", instance)], now);
        }
        assert_eq!(h.flush(now), ["mail/0: a:f b:f c:f"]);
    }

    #[test]
    fn resolved_notices_follow_send_resolved() {
        let mut h = Harness::new("receiver: both\ngroup_wait: 0s\ngroup_interval: 1m\n");
        h.fire(&[("alertname", "A"), ("instance", "a")], 0);
        assert_eq!(h.flush(0), ["both/0: a:f", "both/1: a:f"]);
        h.resolve(&[("alertname", "A"), ("instance", "a")], 30 * S);
        assert_eq!(h.flush(60 * S), ["both/1: a:r"]);
        assert!(h.flush(120 * S).is_empty());
        assert_eq!(h.dispatcher.group_count(), 0);
        // Firing again after resolution is news again, for both.
        h.fire(&[("alertname", "A"), ("instance", "a")], 130 * S);
        assert_eq!(h.flush(130 * S), ["both/0: a:f", "both/1: a:f"]);
    }

    #[test]
    fn alerts_without_renewal_resolve_after_resolve_timeout() {
        let mut h = Harness::new("receiver: hook\ngroup_wait: 0s\ngroup_interval: 1m\n");
        h.fire(&[("alertname", "A")], 0);
        assert_eq!(h.flush(0), ["hook/0: A:f"]);
        assert!(h.flush(240 * S).is_empty());
        assert_eq!(h.flush(360 * S), ["hook/0: A:r"]);
    }

    #[test]
    fn a_storm_makes_one_notification_per_group() {
        let mut h =
            Harness::new("receiver: mail\ngroup_by: [alertname, department]\ngroup_wait: 10s\n");
        let mut alerts = Vec::new();
        for index in 0..10_000 {
            let host = format!("host{:03}", index % 500);
            let name = format!("Alert{}", index % 5);
            let department = format!("dept{}", (index / 5) % 4);
            alerts.push(Alert::firing(
                labels([
                    ("alertname", name.as_str()),
                    ("instance", host.as_str()),
                    ("department", department.as_str()),
                    ("n", &index.to_string()),
                ]),
                0,
            ));
        }
        h.dispatcher.submit(alerts, 0);
        let sent = h.flush(10 * S);
        assert_eq!(sent.len(), 20);
        assert!(h.flush(11 * S).is_empty());
    }

    #[test]
    fn silenced_alerts_are_held_and_their_resolution_still_announced() {
        let mut h = Harness::new("receiver: hook\ngroup_wait: 0s\ngroup_interval: 1m\n");
        h.fire(&[("alertname", "A"), ("instance", "web1")], 0);
        assert_eq!(h.flush(0), ["hook/0: web1:f"]);
        // Silenced after being notified, then resolved: the resolution is
        // still told (Alertmanager #226).
        h.silenced.push(("instance".into(), "web1".into()));
        h.fire(&[("alertname", "A"), ("instance", "web1")], 60 * S);
        assert!(h.flush(60 * S).is_empty());
        h.resolve(&[("alertname", "A"), ("instance", "web1")], 70 * S);
        assert_eq!(h.flush(120 * S), ["hook/0: web1:r"]);
        // An alert silenced from the start is never told, nor its resolution.
        h.fire(&[("alertname", "B"), ("instance", "web1")], 130 * S);
        assert!(h.flush(180 * S).is_empty());
        h.resolve(&[("alertname", "B"), ("instance", "web1")], 190 * S);
        assert!(h.flush(240 * S).is_empty());
    }

    #[test]
    fn inhibition_mutes_targets_while_the_source_fires() {
        let mut h = Harness::with(
            "receiver: mail\ngroup_by: ['...']\ngroup_wait: 0s\ngroup_interval: 1m\n",
            "- source_matchers: ['alertname=HostDown']\n  target_matchers: ['alertname!=HostDown']\n  equal: [instance]\n",
            "[]",
            None,
            None,
        );
        h.fire(&[("alertname", "HostDown"), ("instance", "web1")], 0);
        h.fire(&[("alertname", "DiskFull"), ("instance", "web1")], 0);
        h.fire(&[("alertname", "DiskFull"), ("instance", "web2")], 0);
        let mut sent = h.flush(0);
        sent.sort();
        assert_eq!(sent, ["mail/0: web1:f", "mail/0: web2:f"]);
        assert_eq!(
            h.dispatcher.counts(0, &|_| false),
            AlertCounts {
                active: 2,
                suppressed: 1,
                resolved: 0
            }
        );
    }

    #[test]
    fn mute_and_active_time_intervals() {
        let intervals = "- name: nights\n  time_intervals:\n  - times:\n    - start_time: \"00:00\"\n      end_time: \"06:00\"\n";
        let mut h = Harness::with(
            "receiver: mail\ngroup_wait: 0s\ngroup_interval: 1m\nroutes:\n- matchers: [team=a]\n  mute_time_intervals: [nights]\n- matchers: [team=b]\n  active_time_intervals: [nights]\n",
            "[]",
            intervals,
            None,
            None,
        );
        // 01:00 UTC: team a muted, team b active.
        let one_am = 3_600 * S;
        h.fire(&[("alertname", "X"), ("team", "a")], one_am);
        h.fire(&[("alertname", "Y"), ("team", "b")], one_am);
        assert_eq!(h.flush(one_am), ["mail/0: Y:f"]);
        // 07:00: team a is told now.
        let seven = 7 * 3_600 * S;
        h.fire(&[("alertname", "X"), ("team", "a")], seven);
        h.fire(&[("alertname", "Y"), ("team", "b")], seven);
        assert_eq!(h.flush(seven), ["mail/0: X:f"]);
    }

    #[test]
    fn flapping_alerts_are_held_back_until_stable() {
        let mut h = Harness::with(
            "receiver: hook\ngroup_wait: 0s\ngroup_interval: 10s\n",
            "[]",
            "[]",
            Some((600 * S, 3)),
            None,
        );
        let alert = [("alertname", "Flappy")];
        h.fire(&alert, 0);
        assert_eq!(h.flush(0), ["hook/0: Flappy:f"]);
        let mut now = 0;
        for _ in 0..2 {
            now += 10 * S;
            h.resolve(&alert, now);
            h.flush(now);
            now += 10 * S;
            h.fire(&alert, now);
            h.flush(now);
        }
        // Four changes within the window: now flapping, held back.
        now += 10 * S;
        h.resolve(&alert, now);
        h.flush(now);
        now += 10 * S;
        h.fire(&alert, now);
        assert!(h.flush(now).is_empty(), "flapping");
        // Stable for a whole window: told again.
        now += 600 * S;
        h.dispatcher.housekeeping(now);
        h.fire(&alert, now);
        assert_eq!(h.flush(now), ["hook/0: Flappy:f"]);
    }

    #[test]
    fn dead_mans_switch() {
        let heartbeat = (
            crate::matcher::parse_list("alertname=Watchdog").unwrap(),
            60 * S,
        );
        let mut h = Harness::with(
            "receiver: hook\ngroup_wait: 0s\ngroup_interval: 10s\nroutes:\n- matchers: [alertname=Watchdog]\n  receiver: mail\n  repeat_interval: 1y\n",
            "[]",
            "[]",
            None,
            Some(heartbeat),
        );
        h.fire(&[("alertname", "Watchdog")], 0);
        assert_eq!(h.flush(0), ["mail/0: Watchdog:f"]);
        h.dispatcher.housekeeping(50 * S);
        assert!(h.flush(50 * S).is_empty());
        h.dispatcher.housekeeping(61 * S);
        assert_eq!(h.flush(61 * S), [format!("hook/0: {HEARTBEAT_MISSING}:f")]);
        h.fire(&[("alertname", "Watchdog")], 70 * S);
        assert_eq!(h.flush(71 * S), [format!("hook/0: {HEARTBEAT_MISSING}:r")]);
    }

    #[test]
    fn persisted_log_prevents_repeats_after_restart() {
        let mut h = Harness::new("receiver: hook\ngroup_wait: 0s\n");
        h.fire(&[("alertname", "A")], 0);
        h.dispatcher.submit(Vec::new(), 0);
        let flushed = h.dispatcher.flush_due(0, &|_| false);
        assert_eq!(flushed.outgoing.len(), 1);
        let log: HashMap<NflogKey, NflogEntry> = flushed
            .nflog
            .into_iter()
            .filter_map(|(key, entry)| Some((key, entry?)))
            .collect();
        let route: RouteConfig = countywatch_config::config_file::parse(
            std::path::Path::new("r"),
            "receiver: hook\ngroup_wait: 0s\n",
        )
        .unwrap();
        let mut restarted = Dispatcher::new(
            Route::build(&route),
            TimeIntervals::default(),
            Inhibitor::default(),
            Settings {
                integrations: [(
                    "hook".to_string(),
                    vec![IntegrationPolicy {
                        send_resolved: true,
                        resend_ms: None,
                    }],
                )]
                .into_iter()
                .collect(),
                resolve_timeout_ms: 300 * S,
                flap: None,
                heartbeat: None,
                external_url: String::new(),
            },
            log,
            10 * S,
        );
        restarted.submit(vec![Alert::firing(labels([("alertname", "A")]), 0)], 10 * S);
        assert!(restarted.flush_due(10 * S, &|_| false).outgoing.is_empty());
    }
}
