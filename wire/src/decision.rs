//! Active-response decisions as they cross from the collector to an agent,
//! and the agent's answers about them.
//!
//! The collector keeps the decisions (block this address until then) and
//! every agent keeps a cursor: the highest [`DecisionUpdate::id`] it has
//! seen. An agent learns the updates after its cursor in two ways, so that
//! no new listener is needed on the agent: in the answer to every batch it
//! posts (it sends its cursor in the [`DECISIONS_AFTER_HEADER`] request
//! header, and the answer carries a [`DecisionFeed`] under `"decisions"`),
//! and between batches by a long poll, `GET` [`DECISIONS_PATH`]`?after=N&wait=S`,
//! whose answer is a [`DecisionFeed`] as soon as there is something after
//! `N`, or an empty one after `S` seconds. It tells the collector what it
//! did with them by `POST` [`DECISIONS_ACK_PATH`] with a [`DecisionAck`].
//! Decisions it made by itself while it could not reach the collector go up
//! in a [`LocalDecisions`] to [`DECISIONS_LOCAL_PATH`].
//!
//! Updates are ordered by id and an id is never reused, so an agent that
//! was offline catches up by asking for everything after its cursor.
//! A removal is an update too ([`DecisionUpdate::removed`]).
//!
//! For the time it cannot reach the collector, an agent keeps the
//! host-scoped detection rules that carry a `response:` ([`OfflineRules`]).
//! It names the set it holds in the long poll (`rules=VERSION`, see
//! [`RULES_QUERY`]); the collector answers with the set only when it holds
//! another one, so the rules cross the link once per change. A collector
//! that predates offline mode ignores the parameter, and an agent that
//! predates it never sends one and is never sent rules.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Long-poll path on the collector's mTLS listener.
pub const DECISIONS_PATH: &str = "/v1/decisions";
/// Where agents acknowledge what they applied.
pub const DECISIONS_ACK_PATH: &str = "/v1/decisions/ack";
/// Where agents report decisions they made while offline.
pub const DECISIONS_LOCAL_PATH: &str = "/v1/decisions/local";
/// Request header on `POST /v1/batches` carrying the agent's cursor; when it
/// is present the answer holds a `"decisions"` member with a [`DecisionFeed`].
pub const DECISIONS_AFTER_HEADER: &str = "x-countywatch-decisions-after";
/// Longest long poll the collector honours, in seconds.
pub const MAX_DECISIONS_WAIT_SECONDS: u64 = 60;
/// Most updates in one feed; an agent further behind asks again.
pub const MAX_FEED_UPDATES: usize = 10_000;
/// The long poll's query parameter naming the [`OfflineRules::version`] the
/// agent holds (empty for none).
pub const RULES_QUERY: &str = "rules";

/// Whether a decision blocks or only records what it would block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    /// Enforce: the agent puts the address into its firewall set.
    Enforce,
    /// Dry run: the agent records what it would have blocked and blocks
    /// nothing. The default, so that nothing is blocked until a county
    /// turns enforcement on.
    #[default]
    DryRun,
}

/// One change to the set of blocked addresses an agent should hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionUpdate {
    /// Position in the collector's update log; increases by at least one per
    /// update and is never reused.
    pub id: u64,
    /// The collector's identifier of the decision this update is about
    /// (several updates, such as a block and later its removal, share it).
    pub decision: u64,
    /// The address to block (a single address; IPv4-mapped IPv6 addresses
    /// are sent as the IPv4 address).
    pub address: IpAddr,
    /// When the block ends, in milliseconds since the Unix epoch. An agent
    /// never applies an update whose expiry has passed.
    pub expires_at_ms: i64,
    /// Enforce or dry run, as decided at the collector (the collector's
    /// `response.mode`, or the rule's own).
    pub mode: ResponseMode,
    /// Why, for the agent's `blocks list` and its log: the rule name and
    /// incident id, or the officer who added it by hand.
    pub reason: String,
    /// True when this update lifts the decision instead of making it.
    #[serde(default)]
    pub removed: bool,
}

/// What the collector answers an agent's request for updates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionFeed {
    /// The cursor to send next time: the id of the last update included,
    /// or the cursor the agent sent when there was nothing new.
    pub cursor: u64,
    /// Updates after the agent's cursor that concern this agent, in id order.
    #[serde(default)]
    pub updates: Vec<DecisionUpdate>,
    /// The collector's `response.mode`, which an agent working offline
    /// honours for the blocks it makes by itself.
    #[serde(default)]
    pub mode: ResponseMode,
    /// True when more updates are waiting than one feed holds.
    #[serde(default)]
    pub more: bool,
    /// The rules for offline mode, present only in a long poll's answer
    /// whose [`RULES_QUERY`] named another version than the collector's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_rules: Option<OfflineRules>,
}

/// The detection rules an agent evaluates by itself while it cannot reach
/// the collector: those whose `response:` is host-scoped, as rule files the
/// agent's detection engine loads (a rule may use its file's lists and
/// macros, so a file is sent whole, with the ids to keep from it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineRules {
    /// Names this set: a digest of everything below, sent back by the agent
    /// so that an unchanged set is not sent again.
    pub version: String,
    /// The files holding such rules.
    #[serde(default)]
    pub files: Vec<OfflineRuleFile>,
    /// The collector's `response.max_duration`, in milliseconds: no block
    /// made offline lasts longer.
    pub max_duration_ms: i64,
    /// The collector's `response.never_block` entries (addresses and CIDR
    /// blocks): the agent never blocks them offline either.
    #[serde(default)]
    pub never_block: Vec<String>,
}

/// One detection rule file for offline mode.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineRuleFile {
    /// Where the collector loaded it from, for the agent's messages.
    pub name: String,
    /// The file's text.
    pub text: String,
    /// The ids of the rules to run from it; the file's other rules are not
    /// run (they have no response, a county scope, or were replaced or
    /// disabled at the collector).
    pub rules: Vec<String>,
}

/// What an agent did with the updates it received.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionAck {
    /// Updates put into the firewall (or, in dry run, recorded), by update id.
    #[serde(default)]
    pub applied: Vec<u64>,
    /// Updates the agent refused, with its reason (loopback, `never_block`,
    /// an SSH session's peer, expired, firewall error, `backend: off`).
    #[serde(default)]
    pub refused: Vec<RefusedUpdate>,
}

/// One refused update and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefusedUpdate {
    /// The update's id.
    pub id: u64,
    /// A short reason in English, shown to officers.
    pub reason: String,
}

/// A decision an agent made by itself while it could not reach the collector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalDecision {
    /// The blocked address.
    pub address: IpAddr,
    /// The detection rule that fired on the agent.
    pub rule: String,
    /// When the agent applied it, in milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    /// When it expires, in milliseconds since the Unix epoch.
    pub expires_at_ms: i64,
    /// The mode the agent honoured (the one it last received).
    pub mode: ResponseMode,
    /// The detection's group key (`src_ip=203.0.113.9`), so that the
    /// collector files it under the incident its own engine opens for the
    /// same rule and key when the agent's spooled events arrive.
    #[serde(default)]
    pub group_key: String,
    /// The detection's title, templates expanded.
    #[serde(default)]
    pub title: String,
    /// The rule's severity (`low`, `medium`, `high`, `critical`).
    #[serde(default)]
    pub severity: String,
}

/// The body of `POST /v1/decisions/local`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalDecisions {
    /// Decisions made since the agent last reported.
    pub decisions: Vec<LocalDecision>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feed_round_trips_through_json_and_mode_defaults_to_dry_run() {
        let feed = DecisionFeed {
            cursor: 7,
            updates: vec![DecisionUpdate {
                id: 7,
                decision: 3,
                address: "203.0.113.9".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
                expires_at_ms: 1_000,
                mode: ResponseMode::Enforce,
                reason: "ssh_brute_force incident 12".to_string(),
                removed: false,
            }],
            mode: ResponseMode::Enforce,
            more: false,
            offline_rules: None,
        };
        let text = serde_json::to_string(&feed).unwrap_or_default();
        assert!(text.contains("\"mode\":\"enforce\""), "{text}");
        let back: DecisionFeed = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back, feed);
        let empty: DecisionFeed = serde_json::from_str("{\"cursor\":0}").unwrap_or_default();
        assert_eq!(empty.mode, ResponseMode::DryRun);
        // A feed without offline rules reads as it did before offline
        // mode, so an agent that predates it still accepts it.
        assert!(!text.contains("offline_rules"), "{text}");
    }

    #[test]
    fn offline_rules_ride_in_the_feed_and_local_decisions_read_without_their_new_fields() {
        let feed = DecisionFeed {
            cursor: 1,
            offline_rules: Some(OfflineRules {
                version: "v1".to_string(),
                files: vec![OfflineRuleFile {
                    name: "builtin/ssh.yaml".to_string(),
                    text: "rules: []\n".to_string(),
                    rules: vec!["ssh_brute_force".to_string()],
                }],
                max_duration_ms: 3_600_000,
                never_block: vec!["10.0.0.0/8".to_string()],
            }),
            ..DecisionFeed::default()
        };
        let text = serde_json::to_string(&feed).unwrap_or_default();
        let back: DecisionFeed = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back, feed);
        let old = "{\"decisions\":[{\"address\":\"192.0.2.1\",\"rule\":\"r\",\"started_at_ms\":1,\"expires_at_ms\":2,\"mode\":\"enforce\"}]}";
        let local: LocalDecisions = serde_json::from_str(old).unwrap_or_default();
        assert_eq!(local.decisions.len(), 1);
        assert_eq!(local.decisions[0].group_key, "");
    }
}
