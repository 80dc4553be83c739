//! The agent-facing side of active response, on the ingest listener (mutual
//! TLS; `ingest.rs` identifies the agent from its certificate, reads the
//! body under the ingest caps and hands it here):
//!
//! - `GET /v1/decisions?after=N&wait=S`: the updates after cursor `N` that
//!   concern the agent, at once if there are any, else as soon as one is
//!   written (the store's signal, or the poll of other writers), else an
//!   empty feed after `S` seconds (at most
//!   [`MAX_DECISIONS_WAIT_SECONDS`]; `0` or no `wait` answers at once).
//!   With `rules=VERSION` naming another set than [`FeedState::offline_rules`]
//!   it answers at once, with the set (offline mode).
//! - `POST /v1/decisions/ack`: a [`DecisionAck`], recorded per agent and
//!   update; answers `{"recorded":N}`.
//! - `POST /v1/decisions/local`: [`LocalDecisions`] the agent made while
//!   offline, recorded as made by the agent and filed under an incident of
//!   their rule and group key (opened if the agent's events have not
//!   opened it yet); answers `{"recorded":N}`.
//! - `POST /v1/batches` with the [`DECISIONS_AFTER_HEADER`] header: the
//!   batch answer carries the feed under `"decisions"` ([`batch_feed`]).
//!
//! The wire types are `countywatch_wire::decision`'s; the store is
//! `incident::decisions`.

use std::sync::Arc;
use std::time::Duration;

use countywatch_daemon::clock::now_ms;
use countywatch_wire::{
    DECISIONS_ACK_PATH, DECISIONS_AFTER_HEADER, DECISIONS_LOCAL_PATH, DECISIONS_PATH, DecisionAck,
    DecisionFeed, LocalDecisions, MAX_DECISIONS_WAIT_SECONDS, OfflineRules, RULES_QUERY,
};
use hyper::{HeaderMap, Method, StatusCode};
use tokio::sync::{Semaphore, watch};

use crate::active_response::config::ResponseConfig;
use crate::active_response::offline_rules::OfflineRulesCell;
use crate::incident::store::IncidentStore;

/// What the decision endpoints need.
pub struct FeedState {
    /// Where decisions are kept.
    pub store: Arc<IncidentStore>,
    /// The `response:` section: the mode carried in feeds, the caps on
    /// agent-made decisions.
    pub config: Arc<ResponseConfig>,
    /// Turns true when the collector stops: long polls answer at once.
    pub stopped: watch::Receiver<bool>,
    /// Where agents' answers and decisions are counted.
    pub metrics: crate::active_response::metrics::ResponseMetrics,
    /// Feed reads allowed on the blocking pool at once. A decision wakes
    /// every waiting poll together, and the reads queue on the store's one
    /// reader connection anyway: without this bound a thousand polls grew
    /// the blocking pool to its 512 threads for nothing
    /// (docs/benchmarks.md, decision_polls).
    reads: Semaphore,
    /// The host-scoped rules agents run while offline
    /// (`active_response::offline_rules`), replaced on SIGHUP.
    pub offline_rules: Arc<OfflineRulesCell>,
}

/// How many feed reads run on the blocking pool at once: one on the
/// reader connection and one ready behind it.
const CONCURRENT_FEED_READS: usize = 2;

impl FeedState {
    /// The endpoints' state over `store`, sending `offline_rules` to
    /// agents that hold another set.
    pub fn new(
        store: Arc<IncidentStore>,
        config: Arc<ResponseConfig>,
        stopped: watch::Receiver<bool>,
        metrics: crate::active_response::metrics::ResponseMetrics,
        offline_rules: Arc<OfflineRulesCell>,
    ) -> FeedState {
        FeedState {
            store,
            config,
            stopped,
            metrics,
            reads: Semaphore::new(CONCURRENT_FEED_READS),
            offline_rules,
        }
    }
}

/// One of the decision endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// The long poll.
    Feed,
    /// Acknowledgements.
    Ack,
    /// Agent-made decisions.
    Local,
}

impl Endpoint {
    /// The endpoint at `path`, if it is one of these.
    pub fn at(path: &str) -> Option<Endpoint> {
        match path {
            DECISIONS_PATH => Some(Endpoint::Feed),
            DECISIONS_ACK_PATH => Some(Endpoint::Ack),
            DECISIONS_LOCAL_PATH => Some(Endpoint::Local),
            _ => None,
        }
    }

    /// The method it answers.
    pub fn method(self) -> Method {
        match self {
            Endpoint::Feed => Method::GET,
            Endpoint::Ack | Endpoint::Local => Method::POST,
        }
    }
}

/// Why a decision request was refused.
#[derive(Debug)]
pub struct FeedError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The `countywatch_ingest_requests_total` result label.
    pub result: &'static str,
    /// One line for the log and the answer.
    pub message: String,
}

impl FeedError {
    fn bad_request(message: impl Into<String>) -> FeedError {
        FeedError {
            status: StatusCode::BAD_REQUEST,
            result: "bad_request",
            message: message.into(),
        }
    }

    fn storage(error: impl std::fmt::Display) -> FeedError {
        FeedError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            result: "error",
            message: error.to_string(),
        }
    }
}

/// The cursor a batch request carries, when it asks for decisions. An
/// unreadable value asks from the start: the batch itself is not refused
/// for it.
pub fn after_header(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(DECISIONS_AFTER_HEADER)?;
    Some(
        value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0),
    )
}

/// The feed for a batch answer, without waiting; `None` (logged) when the
/// store cannot be read, so that the stored batch is still acknowledged.
pub async fn batch_feed(state: &FeedState, agent: &str, after: u64) -> Option<DecisionFeed> {
    match read_feed(state, agent, after).await {
        Ok(feed) => Some(feed),
        Err(error) => {
            tracing::warn!(
                agent,
                "cannot read decisions for a batch answer: {}",
                error.message
            );
            None
        }
    }
}

/// Answers one decision request from `agent` with a JSON body.
pub async fn answer(
    state: &FeedState,
    agent: &str,
    endpoint: Endpoint,
    query: Option<&str>,
    body: &[u8],
) -> Result<String, FeedError> {
    match endpoint {
        Endpoint::Feed => {
            let query = query.unwrap_or("");
            let (after, mut wait) = feed_query(query)?;
            // An agent holding another rule set gets the current one at
            // once rather than at the end of its wait.
            let rules = state.offline_rules.current();
            let stale_rules = rules_query(query).is_some_and(|held| held != rules.version);
            if stale_rules {
                wait = Duration::ZERO;
            }
            let mut feed = long_poll(state, agent, after, wait).await?;
            if stale_rules {
                feed.offline_rules = Some(OfflineRules::clone(&rules));
            }
            serde_json::to_string(&feed).map_err(FeedError::storage)
        }
        Endpoint::Ack => {
            let ack: DecisionAck = serde_json::from_slice(body)
                .map_err(|error| FeedError::bad_request(format!("not a DecisionAck: {error}")))?;
            let store = Arc::clone(&state.store);
            let agent = agent.to_string();
            let (applied, refused) = (ack.applied.len(), ack.refused.len());
            let recorded = tokio::task::spawn_blocking(move || {
                store.record_decision_acks(&agent, &ack, now_ms())
            })
            .await
            .map_err(FeedError::storage)?
            .map_err(|error| FeedError::storage(format!("{error:#}")))?;
            let answers = &state.metrics.answers;
            answers
                .with_label_values(&["applied"])
                .inc_by(applied as u64);
            answers
                .with_label_values(&["refused"])
                .inc_by(refused as u64);
            answers
                .with_label_values(&["unknown"])
                .inc_by((applied + refused).saturating_sub(recorded) as u64);
            Ok(format!("{{\"recorded\":{recorded}}}"))
        }
        Endpoint::Local => {
            let local: LocalDecisions = serde_json::from_slice(body)
                .map_err(|error| FeedError::bad_request(format!("not LocalDecisions: {error}")))?;
            let store = Arc::clone(&state.store);
            let config = Arc::clone(&state.config);
            let agent = agent.to_string();
            let offline_rules = state.offline_rules.current();
            let recorded = tokio::task::spawn_blocking(move || {
                let incidents = local
                    .decisions
                    .iter()
                    .map(|decision| local_incident(&store, &offline_rules, &agent, decision))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let refusal = |address| config.refusal(address);
                store.record_local_decisions(
                    &agent,
                    &local.decisions,
                    &incidents,
                    config.max_duration_ms(),
                    &refusal,
                    now_ms(),
                )
            })
            .await
            .map_err(FeedError::storage)?
            .map_err(|error| FeedError::storage(format!("{error:#}")))?;
            state
                .metrics
                .decisions
                .with_label_values(&["agent", "made"])
                .inc_by(recorded.len() as u64);
            Ok(format!("{{\"recorded\":{}}}", recorded.len()))
        }
    }
}

/// Files a decision `agent` made offline under an incident, so that
/// officers see it: the incident of its rule and group key if the agent's
/// spooled events already opened it, else a new one, which the collector's
/// own engine then finds when those events arrive (and, seeing the
/// agent's decision active, makes none of its own). `None` (the decision
/// is still recorded, without an incident) unless the rule is one of the
/// offline rules sent to agents and the group key names the blocked
/// address: an agent cannot add itself to another rule's incidents.
fn local_incident(
    store: &IncidentStore,
    offline_rules: &OfflineRules,
    agent: &str,
    local: &countywatch_wire::LocalDecision,
) -> anyhow::Result<Option<i64>> {
    let known_rule = offline_rules
        .files
        .iter()
        .any(|file| file.rules.contains(&local.rule));
    let address = local.address.to_canonical().to_string();
    let names_address = local.group_key.split(',').any(|pair| {
        pair.split_once('=')
            .is_some_and(|(_, value)| value == address)
    });
    if !known_rule || !names_address {
        return Ok(None);
    }
    let clipped = |text: &str| text.chars().take(200).collect::<String>();
    let title = if local.title.is_empty() {
        format!("{} on {agent} (blocked offline)", local.rule)
    } else {
        clipped(&local.title)
    };
    let severity = crate::incident::store::parse_severity(&local.severity)
        .unwrap_or(countywatch_detect::Severity::Medium);
    let detection = countywatch_detect::Detection {
        rule_id: clipped(&local.rule),
        title,
        severity,
        group_key: clipped(&local.group_key),
        labels: [
            (
                "src_ip".to_string(),
                local.address.to_canonical().to_string(),
            ),
            ("rule_id".to_string(), clipped(&local.rule)),
            ("severity".to_string(), severity.as_str().to_string()),
        ]
        .into(),
        annotations: [(
            "offline".to_string(),
            format!("blocked by {agent} while it could not reach the collector"),
        )]
        .into(),
        tags: Vec::new(),
        hosts: vec![agent.to_string()],
        at_ms: local.started_at_ms.min(now_ms()),
        evidence: Vec::new(),
        response: None,
    };
    Ok(Some(store.record_detection(&detection)?.id()))
}

/// `after` and `wait` from the long poll's query string; `wait` is whole
/// seconds (`25`) or a duration (`25s`), cut to the maximum.
fn feed_query(query: &str) -> Result<(u64, Duration), FeedError> {
    let mut after = 0;
    let mut wait = Duration::ZERO;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "after" => {
                after = value.parse().map_err(|_| {
                    FeedError::bad_request(format!("after={value:?} is not a cursor"))
                })?;
            }
            "wait" => {
                wait = match value.parse::<u64>() {
                    Ok(seconds) => Duration::from_secs(seconds),
                    Err(_) => countywatch_config::duration::parse(&value).map_err(|_| {
                        FeedError::bad_request(format!("wait={value:?} is not a number of seconds"))
                    })?,
                };
            }
            _ => {}
        }
    }
    Ok((
        after,
        wait.min(Duration::from_secs(MAX_DECISIONS_WAIT_SECONDS)),
    ))
}

/// The offline rule version the long poll's query names, if it names one
/// (an agent that predates offline mode does not).
fn rules_query(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == RULES_QUERY)
        .map(|(_, value)| value.into_owned())
}

/// The feed after `after`, waiting up to `wait` for a first update.
async fn long_poll(
    state: &FeedState,
    agent: &str,
    after: u64,
    wait: Duration,
) -> Result<DecisionFeed, FeedError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut updates = state.store.watch_decision_updates();
    let mut stopped = state.stopped.clone();
    loop {
        // Marked seen before reading, so that an update written during the
        // read wakes the wait below instead of being missed.
        updates.borrow_and_update();
        let feed = read_feed(state, agent, after).await?;
        if !feed.updates.is_empty() || *stopped.borrow() {
            return Ok(feed);
        }
        tokio::select! {
            changed = updates.changed() => {
                if changed.is_err() {
                    return Ok(feed);
                }
            }
            _ = stopped.changed() => return Ok(feed),
            _ = tokio::time::sleep_until(deadline) => return Ok(feed),
        }
    }
}

/// The feed after `after`, less any block of an address this collector's
/// `never_block` covers: a decision written by a CLI run without the
/// collector's `--config` (so without its `never_block`) is still never
/// sent.
async fn read_feed(state: &FeedState, agent: &str, after: u64) -> Result<DecisionFeed, FeedError> {
    let store = Arc::clone(&state.store);
    let agent = agent.to_string();
    let mode = state.config.mode;
    let _permit = state.reads.acquire().await.map_err(FeedError::storage)?;
    let mut feed =
        tokio::task::spawn_blocking(move || store.decision_feed(&agent, after, now_ms(), mode))
            .await
            .map_err(FeedError::storage)?
            .map_err(|error| FeedError::storage(format!("{error:#}")))?;
    feed.updates
        .retain(|update| update.removed || state.config.refusal(update.address).is_none());
    Ok(feed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offline_decision_opens_one_incident_per_rule_and_key_and_only_for_known_rules() {
        let dir = tempfile::tempdir().unwrap();
        let store = IncidentStore::open(dir.path()).unwrap();
        let rules = OfflineRules {
            files: vec![countywatch_wire::OfflineRuleFile {
                rules: vec!["ssh_brute_force".to_string()],
                ..Default::default()
            }],
            ..OfflineRules::default()
        };
        let local = |rule: &str, group_key: &str| countywatch_wire::LocalDecision {
            address: "203.0.113.9".parse().unwrap(),
            rule: rule.to_string(),
            started_at_ms: 1_000,
            expires_at_ms: 3_601_000,
            mode: countywatch_wire::ResponseMode::Enforce,
            group_key: group_key.to_string(),
            title: "SSH brute force from 203.0.113.9".to_string(),
            severity: "high".to_string(),
        };
        let first = local_incident(
            &store,
            &rules,
            "web1",
            &local("ssh_brute_force", "src_ip=203.0.113.9"),
        )
        .unwrap()
        .unwrap();
        let again = local_incident(
            &store,
            &rules,
            "web1",
            &local("ssh_brute_force", "src_ip=203.0.113.9"),
        )
        .unwrap();
        assert_eq!(again, Some(first));
        let incident = store.incident(first).unwrap().unwrap();
        assert_eq!(incident.rule_id, "ssh_brute_force");
        assert_eq!(incident.hosts, ["web1"]);
        assert_eq!(
            local_incident(
                &store,
                &rules,
                "web1",
                &local("other_rule", "src_ip=203.0.113.9")
            )
            .unwrap(),
            None
        );
        assert_eq!(
            local_incident(
                &store,
                &rules,
                "web1",
                &local("ssh_brute_force", "src_ip=198.51.100.1")
            )
            .unwrap(),
            None
        );
    }

    #[test]
    fn the_rules_version_is_read_from_the_query_only_when_named() {
        assert_eq!(rules_query("after=1&wait=25"), None);
        assert_eq!(rules_query("after=1&rules="), Some(String::new()));
        assert_eq!(rules_query("rules=ab12&after=1"), Some("ab12".to_string()));
    }

    #[test]
    fn the_long_poll_query_reads_cursor_and_wait_and_caps_the_wait() {
        assert_eq!(feed_query("").unwrap(), (0, Duration::ZERO));
        assert_eq!(
            feed_query("after=12&wait=25").unwrap(),
            (12, Duration::from_secs(25))
        );
        assert_eq!(
            feed_query("wait=25s&after=3").unwrap(),
            (3, Duration::from_secs(25))
        );
        assert_eq!(
            feed_query("after=1&wait=1h").unwrap().1,
            Duration::from_secs(MAX_DECISIONS_WAIT_SECONDS)
        );
        assert_eq!(
            feed_query("after=-1").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert!(feed_query("wait=soon").is_err());
    }

    #[test]
    fn the_batch_header_asks_from_its_cursor_or_from_the_start() {
        let mut headers = HeaderMap::new();
        assert_eq!(after_header(&headers), None);
        headers.insert(DECISIONS_AFTER_HEADER, "41".parse().unwrap());
        assert_eq!(after_header(&headers), Some(41));
        headers.insert(DECISIONS_AFTER_HEADER, "soon".parse().unwrap());
        assert_eq!(after_header(&headers), Some(0));
    }

    #[tokio::test]
    async fn a_poll_holding_an_older_rule_set_gets_the_one_a_reload_put_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(IncidentStore::open(dir.path()).unwrap());
        let (_stop, stopped) = watch::channel(false);
        let set = |version: &str| OfflineRules {
            version: version.to_string(),
            ..OfflineRules::default()
        };
        let cell = Arc::new(OfflineRulesCell::new(set("first")));
        let state = FeedState::new(
            store,
            Arc::new(ResponseConfig::default()),
            stopped,
            crate::active_response::metrics::ResponseMetrics::new().unwrap(),
            Arc::clone(&cell),
        );
        let poll = |held: &'static str| {
            let state = &state;
            async move {
                let query = format!("after=0&wait=0&{RULES_QUERY}={held}");
                let body = answer(state, "web1", Endpoint::Feed, Some(&query), b"")
                    .await
                    .unwrap();
                serde_json::from_str::<DecisionFeed>(&body)
                    .unwrap()
                    .offline_rules
                    .map(|rules| rules.version)
            }
        };
        assert_eq!(poll("first").await, None);
        cell.replace(set("second"));
        assert_eq!(poll("first").await.as_deref(), Some("second"));
        assert_eq!(poll("second").await, None);
    }

    #[tokio::test]
    async fn every_waiting_poll_answers_as_soon_as_a_decision_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(IncidentStore::open(dir.path()).unwrap());
        let (_stop, stopped) = watch::channel(false);
        let state = Arc::new(FeedState::new(
            Arc::clone(&store),
            Arc::new(ResponseConfig::default()),
            stopped,
            crate::active_response::metrics::ResponseMetrics::new().unwrap(),
            Arc::default(),
        ));
        // Many polls wait at once; their reads take turns
        // (CONCURRENT_FEED_READS) and none is left behind.
        let polls: Vec<_> = (0..200)
            .map(|index| {
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    let agent = format!("web{index}");
                    answer(&state, &agent, Endpoint::Feed, Some("after=0&wait=30"), b"")
                        .await
                        .unwrap()
                })
            })
            .collect();
        let writer = Arc::clone(&store);
        let write = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            tokio::task::spawn_blocking(move || {
                writer.add_decision(
                    &crate::incident::decisions::NewDecision {
                        address: "203.0.113.9".parse().unwrap(),
                        scope: crate::incident::decisions::DecisionScope::County,
                        incident_id: None,
                        rule: None,
                        reason: "by hand".to_string(),
                        made_by: "user:alice".to_string(),
                        start_ms: now_ms(),
                        expires_ms: now_ms() + 60_000,
                        mode: countywatch_wire::ResponseMode::Enforce,
                    },
                    "alice",
                )
            })
            .await
            .unwrap()
            .unwrap();
        });
        write.await.unwrap();
        for poll in polls {
            let body = poll.await.unwrap();
            let feed: DecisionFeed = serde_json::from_str(&body).unwrap();
            assert_eq!(feed.updates.len(), 1, "{body}");
            assert_eq!(feed.cursor, 1);
            assert_eq!(feed.mode, countywatch_wire::ResponseMode::DryRun);
        }
    }
}
