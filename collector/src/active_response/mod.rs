//! Active response at the collector (issue 27): turning detections whose
//! rule carries a `response:` into decisions, and serving decisions to
//! agents. docs/security.md ("Active response") is the user documentation.
//!
//! - [`config`]: the `response:` section (mode, `never_block`, durations).
//! - [`feed`]: the agent-facing endpoints on the ingest listener: the long
//!   poll, acknowledgements, agent-made decisions, and the feed in batch
//!   answers.
//! - [`offline_rules`]: the host-scoped rules sent to agents for the time
//!   they cannot reach the collector.
//! - [`cli`]: `decisions add|list|delete`.
//! - [`metrics`]: `countywatch_response_*` counters.
//!
//! The decisions themselves are stored by `incident::decisions`, beside the
//! incidents that cause them and the audit trail.
//!
//! **Invariant:** no decision is ever made for an address in
//! `response.never_block`, a loopback, unspecified or multicast address;
//! each refusal is an audit entry. Every duration is cut to
//! `response.max_duration`.

pub mod cli;
pub mod config;
pub mod feed;
pub mod metrics;
pub mod offline_rules;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use countywatch_detect::Detection;
use countywatch_detect::response::{ResponseAction, ResponseScope};

use crate::active_response::config::ResponseConfig;
use crate::incident::decisions::{DecisionScope, NewDecision};
use crate::incident::lifecycle::{DETECTION_ACTOR, Recorded};
use crate::incident::store::IncidentStore;

/// How often the collector looks for updates written by another process
/// (the `decisions` CLI), so that its agents hear of them within 2 s.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// What [`decide`] did with a detection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decided {
    /// The rule has no response, or this recording of the incident needs
    /// no new decision (one is active, or an officer lifted it).
    Nothing,
    /// A decision with this id.
    Made(i64),
    /// The incident's host-scoped decision with this id now also blocks on
    /// the hosts the attack moved to.
    Extended(i64),
    /// Refused: the address may never be blocked; the reason (audited).
    Refused(String),
    /// The detection has no single source address to block.
    NoAddress,
}

impl Decided {
    /// The `outcome` label of `countywatch_response_decisions_total`.
    pub fn outcome(&self) -> Option<&'static str> {
        match self {
            Decided::Nothing => None,
            Decided::Made(_) => Some("made"),
            Decided::Extended(_) => Some("extended"),
            Decided::Refused(_) => Some("refused"),
            Decided::NoAddress => Some("no_address"),
        }
    }
}

/// Records the decision a detection's rule asks for, after the store
/// recorded the detection as `recorded`. A new or reopened incident always
/// gets one; an incident seen again gets one only when it has none active
/// and no officer lifted one (the attack outlasted the block), and its
/// active host-scoped one is extended to the detection's hosts it does not
/// list yet (the attacker moved to another server).
pub fn decide(
    store: &IncidentStore,
    config: &ResponseConfig,
    detection: &Detection,
    recorded: Recorded,
    now_ms: i64,
) -> anyhow::Result<Decided> {
    let Some(response) = &detection.response else {
        return Ok(Decided::Nothing);
    };
    let ResponseAction::BlockSource = response.action;
    let incident = recorded.id();
    if let Recorded::Deduplicated(_) = recorded {
        let (active, lifted) = store.incident_decision_state(incident, now_ms)?;
        if active
            && !lifted
            && response.scope == ResponseScope::Host
            && let Some(address) = detection.source_address()
            && let Some((id, hosts)) = store.extend_decision(
                incident,
                address,
                &detection.hosts,
                DETECTION_ACTOR,
                now_ms,
            )?
        {
            tracing::info!(
                incident,
                decision = id,
                %address,
                hosts = %hosts.join(","),
                "decision extended to the hosts the attack moved to"
            );
            return Ok(Decided::Extended(id));
        }
        if active || lifted {
            return Ok(Decided::Nothing);
        }
    }
    let Some(address) = detection.source_address() else {
        tracing::warn!(
            incident,
            rule = %detection.rule_id,
            "no decision: the detection has no single source address to block"
        );
        return Ok(Decided::NoAddress);
    };
    if let Some(reason) = config.refusal(address) {
        store.refuse_decision(
            address,
            DETECTION_ACTOR,
            &format!("incident {incident} ({}): {reason}", detection.rule_id),
        )?;
        tracing::warn!(incident, %address, "no decision: {reason}");
        return Ok(Decided::Refused(reason));
    }
    let scope = match response.scope {
        ResponseScope::County => DecisionScope::County,
        ResponseScope::Host => DecisionScope::Hosts(detection.hosts.clone()),
    };
    let window_ms = i64::try_from(config.repeat_window.get().as_millis()).unwrap_or(i64::MAX);
    let repeats = store.ended_decisions_since(address, now_ms.saturating_sub(window_ms), now_ms)?;
    let duration_ms = config.duration_ms(response.duration_ms, repeats);
    let decision = NewDecision {
        address,
        scope,
        incident_id: Some(incident),
        rule: Some(detection.rule_id.clone()),
        reason: format!("{} incident {incident}", detection.rule_id),
        made_by: format!("rule:{}", detection.rule_id),
        start_ms: now_ms,
        expires_ms: now_ms.saturating_add(duration_ms),
        mode: response.mode.unwrap_or(config.mode),
    };
    let id = store.add_decision(&decision, DETECTION_ACTOR)?;
    tracing::info!(
        incident,
        decision = id,
        %address,
        scope = %decision.scope.describe(),
        duration_ms,
        mode = crate::incident::decisions::mode_name(decision.mode),
        "decision made"
    );
    Ok(Decided::Made(id))
}

/// A decision made by hand (the CLI, the console) as `actor`: refused
/// (with an audit entry) for an address that may never be blocked, else
/// recorded for `duration_ms` cut to `response.max_duration`, in the
/// configured mode unless `mode` says otherwise. Returns the decision's id
/// and its expiry.
#[allow(clippy::too_many_arguments)]
pub fn decide_by_hand(
    store: &IncidentStore,
    config: &ResponseConfig,
    address: IpAddr,
    scope: DecisionScope,
    duration_ms: i64,
    mode: Option<countywatch_wire::ResponseMode>,
    reason: &str,
    actor: &str,
    now_ms: i64,
) -> Result<(i64, i64), HandDecisionError> {
    let address = address.to_canonical();
    if let Some(refusal) = config.refusal(address) {
        store
            .refuse_decision(address, actor, &refusal)
            .map_err(HandDecisionError::Storage)?;
        return Err(HandDecisionError::Refused(refusal));
    }
    let duration_ms = duration_ms.clamp(1, config.max_duration_ms());
    let reason = match reason.trim() {
        "" => format!("by {actor}"),
        text => format!("by {actor}: {text}"),
    };
    let expires_ms = now_ms.saturating_add(duration_ms);
    let decision = NewDecision {
        address,
        scope,
        incident_id: None,
        rule: None,
        reason,
        made_by: actor.to_string(),
        start_ms: now_ms,
        expires_ms,
        mode: mode.unwrap_or(config.mode),
    };
    let id = store
        .add_decision(&decision, actor)
        .map_err(HandDecisionError::Storage)?;
    Ok((id, expires_ms))
}

/// Why a hand-made decision was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum HandDecisionError {
    /// The address may never be blocked; the reason (audited).
    #[error("refused: {0}")]
    Refused(String),
    /// The store failed.
    #[error(transparent)]
    Storage(anyhow::Error),
}

/// Says in the detection's alert what its rule's response does, one line
/// per language (`response`, `response_zh` annotations, which the default
/// notification templates show): the block, its scope and mode, or why
/// there is none.
pub fn annotate(
    config: &ResponseConfig,
    detection: &Detection,
    alert: &mut countywatch_notify::alert::Alert,
) {
    let Some(response) = &detection.response else {
        return;
    };
    let Some(address) = detection.source_address() else {
        return;
    };
    let (en, zh) = match config.refusal(address) {
        Some(reason) => (format!("no block: {reason}"), format!("未封禁：{reason}")),
        None => {
            let duration = countywatch_config::duration::PromDuration(Duration::from_millis(
                u64::try_from(config.duration_ms(response.duration_ms, 0)).unwrap_or(0),
            ));
            let (scope_en, scope_zh) = match response.scope {
                ResponseScope::Host => (
                    format!("on {}", detection.hosts.join(", ")),
                    format!("在 {} 上", detection.hosts.join(", ")),
                ),
                ResponseScope::County => {
                    ("on every agent".to_string(), "在全县所有主机上".to_string())
                }
            };
            match response.mode.unwrap_or(config.mode) {
                countywatch_wire::ResponseMode::Enforce => (
                    format!("{address} blocked for {duration} {scope_en}"),
                    format!("{scope_zh}封禁 {address}，时长 {duration}"),
                ),
                countywatch_wire::ResponseMode::DryRun => (
                    format!(
                        "dry run: {address} would be blocked for {duration} {scope_en} (recorded only; response.mode is dry_run)"
                    ),
                    format!(
                        "演练：将{scope_zh}封禁 {address}，时长 {duration}（仅记录，未实际封禁；response.mode 为 dry_run）"
                    ),
                ),
            }
        }
    };
    alert.annotations.insert("response".to_string(), en);
    alert.annotations.insert("response_zh".to_string(), zh);
}

/// Wakes the long polls for updates another process (the CLI) wrote: the
/// store's own writers signal at once; this notices the rest within
/// [`POLL_INTERVAL`].
pub async fn watch_other_writers(
    store: Arc<IncidentStore>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
        }
        let reader = Arc::clone(&store);
        match tokio::task::spawn_blocking(move || reader.last_decision_update()).await {
            Ok(Ok(last)) => store.signal_decision_update(last),
            Ok(Err(error)) => tracing::warn!("cannot read the decision log: {error:#}"),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use countywatch_detect::response::ResponseSpec;
    use countywatch_detect::{Evidence, Severity};
    use countywatch_wire::{Event, EventKind, EventSource, ResponseMode};

    use super::*;
    use crate::incident::decisions::DecisionFilter;

    fn detection(src_ip: &str, hosts: &[&str], scope: ResponseScope) -> Detection {
        let mut event = Event::new(1_000, EventSource::Auth, EventKind::SshLoginFailed);
        event.host = hosts[0].to_string();
        event.fields.src_ip = src_ip.parse().ok();
        Detection {
            rule_id: "ssh_brute_force".to_string(),
            title: "t".to_string(),
            severity: Severity::High,
            group_key: format!("src_ip={src_ip}"),
            labels: BTreeMap::from([("src_ip".to_string(), src_ip.to_string())]),
            annotations: BTreeMap::new(),
            tags: Vec::new(),
            hosts: hosts.iter().map(|host| host.to_string()).collect(),
            at_ms: 1_000,
            evidence: vec![Evidence {
                event_id: Some(1),
                event,
            }],
            response: Some(ResponseSpec {
                action: ResponseAction::BlockSource,
                duration_ms: 3_600_000,
                scope,
                mode: None,
            }),
        }
    }

    fn config(text: &str) -> ResponseConfig {
        let config: crate::config::Config =
            countywatch_config::config_file::parse(std::path::Path::new("c.yaml"), text).unwrap();
        config.response
    }

    #[test]
    fn an_attack_that_moves_to_another_host_extends_the_incident_s_host_decision_there() {
        let dir = tempfile::tempdir().unwrap();
        let store = IncidentStore::open(dir.path()).unwrap();
        let config = config("");
        let on_web1 = detection("203.0.113.9", &["web1"], ResponseScope::Host);
        let recorded = store.record_detection(&on_web1).unwrap();
        assert_eq!(
            decide(&store, &config, &on_web1, recorded, 10_000).unwrap(),
            Decided::Made(1)
        );
        let web2_cursor = store
            .decision_feed("web2", 0, 10_000, ResponseMode::DryRun)
            .unwrap()
            .cursor;

        // The engine fired again, inside its cooldown, for web2.
        let on_web2 = detection("203.0.113.9", &["web1", "web2"], ResponseScope::Host);
        let again = store.record_detection(&on_web2).unwrap();
        assert!(matches!(again, Recorded::Deduplicated(_)), "one incident");
        assert_eq!(
            decide(&store, &config, &on_web2, again, 20_000).unwrap(),
            Decided::Extended(1)
        );
        let listed = store.decisions(DecisionFilter::All, 20_000, 10).unwrap();
        assert_eq!(listed.len(), 1, "the same decision, not a second one");
        assert_eq!(listed[0].hosts, ["web1", "web2"]);
        // web2's agent hears of it after the cursor it already had.
        let feed = store
            .decision_feed("web2", web2_cursor, 20_000, ResponseMode::DryRun)
            .unwrap();
        assert_eq!(feed.updates.len(), 1, "{feed:?}");
        assert_eq!(feed.updates[0].address.to_string(), "203.0.113.9");
        assert!(!feed.updates[0].removed);
        // Read from the start (a restarted agent), the decision's first
        // update and the one adding web2 are one update, not two.
        let from_start = store
            .decision_feed("web2", 0, 20_000, ResponseMode::DryRun)
            .unwrap();
        assert_eq!(from_start.updates.len(), 1, "{from_start:?}");
        assert_eq!(from_start.cursor, feed.cursor);
        // Nothing new for web1, nor on a repeat for hosts already listed.
        let web1 = store
            .decision_feed("web1", 0, 20_000, ResponseMode::DryRun)
            .unwrap();
        assert_eq!(web1.updates.len(), 1, "{web1:?}");
        let repeat = store.record_detection(&on_web2).unwrap();
        assert_eq!(
            decide(&store, &config, &on_web2, repeat, 30_000).unwrap(),
            Decided::Nothing
        );
        // An officer's unblock stays: a later detection on a third host
        // does not extend a lifted decision.
        assert!(store.remove_decision(1, "officer", 40_000).unwrap());
        let on_web3 = detection("203.0.113.9", &["web3"], ResponseScope::Host);
        let later = store.record_detection(&on_web3).unwrap();
        assert_eq!(
            decide(&store, &config, &on_web3, later, 50_000).unwrap(),
            Decided::Nothing
        );
    }

    #[test]
    fn a_detection_with_a_response_makes_one_decision_per_incident_and_repeats_last_longer() {
        let dir = tempfile::tempdir().unwrap();
        let store = IncidentStore::open(dir.path()).unwrap();
        let config = config("");
        let hour = 3_600_000;
        let found = detection("203.0.113.9", &["web1", "web2"], ResponseScope::Host);
        let recorded = store.record_detection(&found).unwrap();
        assert_eq!(
            decide(&store, &config, &found, recorded, 10_000).unwrap(),
            Decided::Made(1)
        );
        let again = store.record_detection(&found).unwrap();
        assert!(matches!(again, Recorded::Deduplicated(_)));
        assert_eq!(
            decide(&store, &config, &found, again, 20_000).unwrap(),
            Decided::Nothing,
            "one active already"
        );
        let listed = store.decisions(DecisionFilter::All, 20_000, 10).unwrap();
        assert_eq!(listed[0].hosts, ["web1", "web2"]);
        assert_eq!(listed[0].mode, ResponseMode::DryRun);
        assert_eq!(listed[0].expires_ms - listed[0].start_ms, hour);
        // The block ran out while the attack went on: a second, longer one.
        let later = 10_000 + hour + 1;
        assert_eq!(
            decide(&store, &config, &found, again, later).unwrap(),
            Decided::Made(2)
        );
        let listed = store.decisions(DecisionFilter::All, later, 10).unwrap();
        assert_eq!(listed[0].expires_ms - listed[0].start_ms, 2 * hour);
        // Another rule firing on the same attack while that block is in
        // force gets the rule's own duration: no repeat yet.
        let mut spraying = found.clone();
        spraying.rule_id = "ssh_password_spraying".to_string();
        let sprayed = store.record_detection(&spraying).unwrap();
        assert!(matches!(
            decide(&store, &config, &spraying, sprayed, later).unwrap(),
            Decided::Made(3)
        ));
        let listed = store.decisions(DecisionFilter::All, later, 10).unwrap();
        assert_eq!(
            listed[0].expires_ms - listed[0].start_ms,
            2 * hour,
            "one ended decision before it"
        );
        // Once an officer lifted it, the incident gets no new block.
        store
            .remove_decisions("203.0.113.9".parse().unwrap(), None, "alice", later)
            .unwrap();
        assert_eq!(
            decide(&store, &config, &found, again, later + 1).unwrap(),
            Decided::Nothing
        );
    }

    #[test]
    fn the_notification_says_what_the_response_does_in_the_receiver_s_language() {
        use countywatch_notify::display::{Display, Language};
        use countywatch_notify::notification::{AlertSnapshot, Kind, Notification};
        use countywatch_notify::template::Templates;
        let rendered = |config: &ResponseConfig, language: Language| {
            let found = detection("203.0.113.9", &["web1"], ResponseScope::Host);
            let mut alert = crate::detection::to_alert(&found, 1_000);
            annotate(config, &found, &mut alert);
            let notification = Notification {
                kind: Kind::Alerts,
                receiver: "officers".to_string(),
                group_key: "0:{}".to_string(),
                group_labels: Default::default(),
                alerts: vec![AlertSnapshot::of(&alert, 1_000)],
                external_url: "http://collector:9780".to_string(),
                created_ms: 1_000,
                lease_ms: None,
            };
            let templates =
                Templates::new(language, &Default::default(), &Display::default()).unwrap();
            templates.render(&notification)
        };
        let dry = rendered(&config(""), Language::En);
        assert!(
            dry.text.contains(
                "  Response: dry run: 203.0.113.9 would be blocked for 1h on web1 (recorded only"
            ),
            "{}",
            dry.text
        );
        let zh = rendered(&config("response: {mode: enforce}\n"), Language::Zh);
        assert!(
            zh.text
                .contains("  响应：在 web1 上封禁 203.0.113.9，时长 1h\n"),
            "{}",
            zh.text
        );
        assert!(zh.markdown.contains("封禁 203.0.113.9"), "{}", zh.markdown);
        assert!(zh.html.contains("<br>在 web1 上封禁"), "{}", zh.html);
        let spared = rendered(
            &config("response: {never_block: [203.0.113.0/24]}\n"),
            Language::En,
        );
        assert!(
            spared
                .text
                .contains("Response: no block: 203.0.113.9 is in response.never_block"),
            "{}",
            spared.text
        );
    }

    #[test]
    fn never_block_addresses_get_no_decision_and_an_audit_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = IncidentStore::open(dir.path()).unwrap();
        let config = config("response: {mode: enforce, never_block: [10.0.0.0/8]}\n");
        let found = detection("10.1.2.3", &["web1"], ResponseScope::County);
        let recorded = store.record_detection(&found).unwrap();
        let decided = decide(&store, &config, &found, recorded, 10_000).unwrap();
        assert!(
            matches!(&decided, Decided::Refused(reason) if reason.contains("never_block")),
            "{decided:?}"
        );
        assert!(
            store
                .decisions(DecisionFilter::All, 10_000, 10)
                .unwrap()
                .is_empty()
        );
        let refused: i64 = store
            .read()
            .query_row(
                "SELECT COUNT(*) FROM audit WHERE action = 'decision.refused'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(refused, 1);
        let mut plain = detection("203.0.113.9", &["web1"], ResponseScope::County);
        plain.response = None;
        let recorded = store.record_detection(&plain).unwrap();
        assert_eq!(
            decide(&store, &config, &plain, recorded, 10_000).unwrap(),
            Decided::Nothing
        );
    }
}
