//! The routing tree with Alertmanager's semantics: an alert descends into
//! the first matching child (and further siblings while `continue` is set);
//! a node whose children all miss handles the alert itself. Unset settings
//! inherit from the parent; the root's defaults are Alertmanager's.

use std::time::Duration;

use crate::alert::LabelSet;
use crate::config::RouteConfig;
use crate::matcher::{Matcher, all_match};

/// How a route groups alerts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupBy {
    /// By these labels (none: one group for the route).
    Labels(Vec<String>),
    /// By all labels (`...`): every alert is its own group.
    All,
}

/// One compiled route.
#[derive(Clone, Debug)]
pub struct Route {
    /// Position in the tree, e.g. `0.2.1`; part of every group key, so
    /// that the same labels routed twice form two groups.
    pub id: String,
    /// Alertmanager's route key: the parent's key, `/`, and this route's
    /// sorted matchers (`{}/{owner="team-A"}`); the first part of the
    /// `groupKey` receivers see. Unlike `id` it need not be unique.
    pub key: String,
    /// The receiver notified.
    pub receiver: String,
    /// Grouping.
    pub group_by: GroupBy,
    /// Delay before a new group's first notification.
    pub group_wait: Duration,
    /// Delay between notifications about changes in a group.
    pub group_interval: Duration,
    /// Delay before an unchanged notification is repeated.
    pub repeat_interval: Duration,
    /// Conditions to enter this route.
    matchers: Vec<Matcher>,
    /// Whether siblings are tried after this one matched.
    continue_matching: bool,
    /// Children.
    routes: Vec<Route>,
    /// Time intervals muting this route's notifications.
    pub mute_time_intervals: Vec<String>,
    /// Time intervals outside which this route's notifications are muted.
    pub active_time_intervals: Vec<String>,
}

impl Route {
    /// Compiles the tree from its root config.
    pub fn build(config: &RouteConfig) -> Route {
        let root_defaults = Route {
            id: String::new(),
            key: String::new(),
            receiver: String::new(),
            group_by: GroupBy::Labels(Vec::new()),
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
            matchers: Vec::new(),
            continue_matching: false,
            routes: Vec::new(),
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
        };
        let mut root = Route::inherit(config, &root_defaults, "0".to_string());
        // The root matches everything, as in Alertmanager.
        root.matchers.clear();
        root.key = "{}".to_string();
        root
    }

    fn inherit(config: &RouteConfig, parent: &Route, id: String) -> Route {
        // As in Alertmanager: named labels replace the parent's grouping,
        // `...` alone groups by everything, and an empty list inherits.
        let named: Vec<String> = config
            .group_by
            .iter()
            .flatten()
            .filter(|label| *label != "...")
            .cloned()
            .collect();
        let group_by = if !named.is_empty() {
            GroupBy::Labels(named)
        } else if config.group_by.iter().flatten().any(|label| label == "...") {
            GroupBy::All
        } else {
            parent.group_by.clone()
        };
        let matchers = config.all_matchers();
        let own_key = crate::matcher::list_to_string(&matchers);
        let key = if parent.key.is_empty() {
            own_key
        } else {
            format!("{}/{own_key}", parent.key)
        };
        let mut route = Route {
            id: id.clone(),
            key,
            receiver: config.receiver.as_ref().map_or_else(
                || parent.receiver.clone(),
                |receiver| receiver.value.clone(),
            ),
            group_by,
            group_wait: config
                .group_wait
                .map_or(parent.group_wait, |value| value.get()),
            group_interval: config
                .group_interval
                .map_or(parent.group_interval, |value| value.get()),
            repeat_interval: config
                .repeat_interval
                .map_or(parent.repeat_interval, |value| value.get()),
            matchers,
            continue_matching: config.continue_matching,
            routes: Vec::new(),
            mute_time_intervals: config
                .mute_time_intervals
                .iter()
                .map(|name| name.value.clone())
                .collect(),
            active_time_intervals: config
                .active_time_intervals
                .iter()
                .map(|name| name.value.clone())
                .collect(),
        };
        route.routes = config
            .routes
            .iter()
            .enumerate()
            .map(|(index, child)| Route::inherit(child, &route, format!("{id}.{index}")))
            .collect();
        route
    }

    /// The routes that handle an alert with these labels, in tree order.
    pub fn matching(&self, labels: &LabelSet) -> Vec<&Route> {
        if !all_match(&self.matchers, labels) {
            return Vec::new();
        }
        let mut all = Vec::new();
        for child in &self.routes {
            let matched = child.matching(labels);
            let hit = !matched.is_empty();
            all.extend(matched);
            if hit && !child.continue_matching {
                break;
            }
        }
        if all.is_empty() {
            all.push(self);
        }
        all
    }

    /// The conditions to enter this route, sorted as Alertmanager sorts them.
    pub fn matchers(&self) -> &[Matcher] {
        &self.matchers
    }

    /// Whether siblings are tried after this route matched.
    pub fn continues(&self) -> bool {
        self.continue_matching
    }

    /// The child routes, in order.
    pub fn children(&self) -> &[Route] {
        &self.routes
    }

    /// The labels of the group an alert belongs to on this route.
    pub fn group_labels(&self, labels: &LabelSet) -> LabelSet {
        match &self.group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => names
                .iter()
                .filter_map(|name| Some((name.clone(), labels.get(name)?.clone())))
                .collect(),
        }
    }

    /// Every route in the tree, depth first.
    pub fn walk(&self) -> Vec<&Route> {
        let mut out = vec![self];
        for child in &self.routes {
            out.extend(child.walk());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::labels;

    fn tree(yaml: &str) -> Route {
        let config: RouteConfig =
            countywatch_config::config_file::parse(std::path::Path::new("r.yaml"), yaml).unwrap();
        Route::build(&config)
    }

    fn receivers(route: &Route, set: &[(&str, &str)]) -> Vec<String> {
        route
            .matching(&labels(set.iter().copied()))
            .iter()
            .map(|route| format!("{}@{}", route.receiver, route.id))
            .collect()
    }

    const TREE: &str = r#"
receiver: default
group_by: [alertname]
group_wait: 10s
routes:
  - matchers: ['department="finance"']
    receiver: finance
    continue: true
  - matchers: ['severity=~"critical|page"']
    receiver: oncall
    group_wait: 0s
    routes:
      - matchers: ['instance="db1"']
        receiver: dba
  - matchers: ['severity="critical"']
    receiver: never
"#;

    #[test]
    fn first_match_wins_unless_continue() {
        let route = tree(TREE);
        assert_eq!(receivers(&route, &[("alertname", "X")]), ["default@0"]);
        assert_eq!(
            receivers(&route, &[("severity", "critical")]),
            ["oncall@0.1"]
        );
        assert_eq!(
            receivers(&route, &[("severity", "page"), ("instance", "db1")]),
            ["dba@0.1.0"]
        );
        assert_eq!(
            receivers(
                &route,
                &[("department", "finance"), ("severity", "critical")]
            ),
            ["finance@0.0", "oncall@0.1"]
        );
        assert_eq!(
            receivers(&route, &[("department", "finance")]),
            ["finance@0.0"]
        );
    }

    #[test]
    fn settings_inherit() {
        let route = tree(TREE);
        let dba = route.matching(&labels([("severity", "page"), ("instance", "db1")]))[0];
        assert_eq!(dba.group_wait, Duration::ZERO);
        assert_eq!(dba.group_interval, Duration::from_secs(300));
        assert_eq!(dba.group_by, GroupBy::Labels(vec!["alertname".to_string()]));
        assert_eq!(route.group_wait, Duration::from_secs(10));
        assert_eq!(route.walk().len(), 5);
    }

    #[test]
    fn route_keys_are_alertmanagers() {
        let route = tree(
            "receiver: r\nroutes:\n- match: {owner: team-A}\n  routes:\n  - match_re: {env: 'produ.*', job: '.*'}\n",
        );
        let keys: Vec<&str> = route
            .walk()
            .iter()
            .map(|route| route.key.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "{}",
                "{}/{owner=\"team-A\"}",
                "{}/{owner=\"team-A\"}/{env=~\"^(?:produ.*)$\",job=~\"^(?:.*)$\"}"
            ]
        );
    }

    #[test]
    fn group_by_inherits_as_in_alertmanager() {
        let route = tree(
            "receiver: r\ngroup_by: ['...']\nroutes:\n- matchers: [a=1]\n  group_by: []\n- matchers: [a=2]\n  group_by: [x]\n",
        );
        let first = route.matching(&labels([("a", "1")]))[0];
        // An empty list inherits, as Alertmanager reads it.
        assert_eq!(first.group_by, GroupBy::All);
        let second = route.matching(&labels([("a", "2")]))[0];
        assert_eq!(second.group_by, GroupBy::Labels(vec!["x".to_string()]));
    }

    #[test]
    fn group_labels() {
        let route = tree("receiver: r\ngroup_by: [alertname, department]\n");
        let set = labels([
            ("alertname", "A"),
            ("instance", "h1"),
            ("department", "tax"),
        ]);
        assert_eq!(
            route.group_labels(&set),
            labels([("alertname", "A"), ("department", "tax")])
        );
        let all = tree("receiver: r\ngroup_by: ['...']\n");
        assert_eq!(all.group_labels(&set), set);
    }
}
