//! A rule's active response: what the collector should do, beyond opening
//! an incident, when the rule fires.
//!
//! ```yaml
//! response: {action: block_source, duration: 1h, scope: host, mode: dry_run}
//! ```
//!
//! `block_source` asks for a decision blocking the detection's source
//! address for `duration`, on the hosts whose events are the evidence
//! (`host`) or on every agent (`county`). `mode` overrides the collector's
//! `response.mode` for this rule. The collector clamps the duration to its
//! `response.max_duration` and never blocks its `response.never_block`
//! addresses; this module only checks the shape, with positions.

use countywatch_config::config_file::{Problems, Spanned};
use countywatch_config::duration;
use countywatch_wire::ResponseMode;
use serde::{Deserialize, Serialize};

/// Shortest block a rule may ask for.
pub const MIN_DURATION_MS: i64 = 1_000;
/// Longest block a rule may ask for (the collector caps it lower with its
/// `response.max_duration`).
pub const MAX_DURATION_MS: i64 = 30 * 24 * 3600 * 1000;

/// `response:` as written in a rule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResponse {
    /// What to do: `block_source` is the only action.
    pub action: Spanned<String>,
    /// How long the block lasts, a Prometheus duration (`1h`).
    pub duration: Spanned<String>,
    /// `host` (the hosts in the evidence) or `county` (every agent).
    pub scope: Spanned<String>,
    /// `enforce` or `dry_run`; unset, the collector's `response.mode`.
    #[serde(default)]
    pub mode: Option<Spanned<String>>,
}

/// The action a response takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseAction {
    /// Block new connections from the detection's source address.
    BlockSource,
}

/// Where a block applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseScope {
    /// On the hosts whose events are the detection's evidence.
    Host,
    /// On every agent of the county.
    County,
}

impl ResponseScope {
    /// The name used in rule files, the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseScope::Host => "host",
            ResponseScope::County => "county",
        }
    }
}

/// A validated `response:`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseSpec {
    /// What to do.
    pub action: ResponseAction,
    /// How long, in milliseconds.
    pub duration_ms: i64,
    /// Where.
    pub scope: ResponseScope,
    /// The rule's own mode, overriding the collector's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ResponseMode>,
}

/// Checks a rule's `response:`, adding every problem with its position.
pub fn validate(problems: &mut Problems, raw: &RawResponse) -> Option<ResponseSpec> {
    let action = match raw.action.value.as_str() {
        "block_source" => Some(ResponseAction::BlockSource),
        other => {
            problems.at(
                &raw.action,
                format!("response action {other:?} is not one of: block_source"),
            );
            None
        }
    };
    let scope = match raw.scope.value.as_str() {
        "host" => Some(ResponseScope::Host),
        "county" => Some(ResponseScope::County),
        other => {
            problems.at(
                &raw.scope,
                format!("response scope {other:?} is not one of: host, county"),
            );
            None
        }
    };
    let mode = match raw.mode.as_ref().map(|mode| (mode, mode.value.as_str())) {
        None => Some(None),
        Some((_, "enforce")) => Some(Some(ResponseMode::Enforce)),
        Some((_, "dry_run")) => Some(Some(ResponseMode::DryRun)),
        Some((spanned, other)) => {
            problems.at(
                spanned,
                format!("response mode {other:?} is not one of: enforce, dry_run"),
            );
            None
        }
    };
    let duration_ms = match duration::parse(&raw.duration.value) {
        Ok(value) => {
            let ms = i64::try_from(value.as_millis()).unwrap_or(i64::MAX);
            if !(MIN_DURATION_MS..=MAX_DURATION_MS).contains(&ms) {
                problems.at(
                    &raw.duration,
                    format!(
                        "response duration {:?} must be between 1s and 30d",
                        raw.duration.value
                    ),
                );
                None
            } else {
                Some(ms)
            }
        }
        Err(error) => {
            problems.at(&raw.duration, format!("response duration: {error}"));
            None
        }
    };
    Some(ResponseSpec {
        action: action?,
        duration_ms: duration_ms?,
        scope: scope?,
        mode: mode?,
    })
}
