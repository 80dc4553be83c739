//! How block decisions reach the agent (`wire::decision`): the cursor goes
//! up with every batch in the `x-countywatch-decisions-after` header and
//! the answer's `"decisions"` feed is applied, and between batches one long
//! poll, `GET /v1/decisions?after=CURSOR&wait=25`, waits on a sibling of the
//! batch transport (same mTLS identity, its own connection, so a poll never
//! holds up a batch). After applying a feed the agent acknowledges it with
//! `POST /v1/decisions/ack`.
//!
//! Beside the poll, an upkeep task reconciles the kernel set with the
//! list every minute and, every two seconds, applies the updates that wait
//! for an SSH session to end, acknowledging them as applied (the collector
//! replaces the refusal it was sent first).
//!
//! A collector that does not know the endpoint (an older version answers
//! 404) is asked again every five minutes; the batch answers carry no feed
//! either, so nothing is applied meanwhile.
//!
//! Offline mode: the long poll names the offline rule set the agent holds
//! (`rules=VERSION`) and receives the collector's when it differs. Every
//! answer from the collector (batch, poll, report) tells the responder it
//! is reachable. Once it is, the upkeep task reports the decisions made
//! offline by `POST /v1/decisions/local` and forgets them when the
//! collector has recorded them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use countywatch_net::backoff::Backoff;
use countywatch_wire::{
    DECISIONS_ACK_PATH, DECISIONS_AFTER_HEADER, DECISIONS_LOCAL_PATH, DECISIONS_PATH, DecisionAck,
    DecisionFeed, LocalDecisions, RULES_QUERY,
};
use serde::Deserialize;

use super::Responder;
use crate::transport::{SendError, Transport};

/// How long the collector is asked to hold a long poll, in seconds.
pub const POLL_WAIT_SECONDS: u64 = 25;
/// How often the kernel set is reconciled with the list.
const RECONCILE_EVERY: Duration = Duration::from_secs(60);
/// How often updates waiting for an SSH session to end are tried again.
const RETRY_DEFERRED_EVERY: Duration = Duration::from_secs(2);
/// Most decisions made offline reported in one request, so that a long
/// outage's report stays far below the collector's body cap; the rest go
/// in the next rounds.
const REPORT_AT_ONCE: usize = 500;
/// How long to wait before asking a collector without the endpoint again.
const UNSUPPORTED_RETRY: Duration = Duration::from_secs(300);
/// The pause after a long poll answered at once with nothing new.
const IDLE_SPIN_PAUSE: Duration = Duration::from_secs(1);

/// What a long poll's answer brought, to tell progress from a collector
/// answering at once with nothing.
#[derive(Clone, Copy, Debug)]
struct PollAnswer {
    /// It carried updates.
    updates: bool,
    /// The collector has more after them.
    more: bool,
    /// It carried an offline rule set other than the one held (the answer
    /// to the first poll after a start, or after the collector's reload).
    new_rules: bool,
    /// How long the poll took.
    elapsed: Duration,
}

impl PollAnswer {
    /// Whether the poll came back within a second with nothing new: then
    /// the collector is not waiting (an older one, or one stopping), and
    /// asking again at once would spin. A new rule set is something: the
    /// next poll names it and waits at the collector, and pausing here
    /// would leave the decisions of the agent's first second to the batch
    /// answers.
    fn is_idle_spin(self) -> bool {
        !self.updates && !self.more && !self.new_rules && self.elapsed < IDLE_SPIN_PAUSE
    }
}

/// The part of a batch answer this module reads.
#[derive(Deserialize)]
struct BatchAnswer {
    /// The feed, present when the request carried the cursor header.
    #[serde(default)]
    decisions: Option<DecisionFeed>,
}

/// The header to send with a batch.
pub fn cursor_header(responder: &Responder) -> (&'static str, String) {
    (DECISIONS_AFTER_HEADER, responder.cursor().to_string())
}

/// Applies the feed in a batch answer, if any, and acknowledges it on the
/// same transport. A malformed answer is logged and skipped: the long
/// poll asks again from the same cursor.
pub async fn apply_batch_answer(
    answer: &[u8],
    responder: &Arc<Responder>,
    transport: &mut Transport,
) {
    let feed = match serde_json::from_slice::<BatchAnswer>(answer) {
        Ok(BatchAnswer {
            decisions: Some(feed),
        }) => feed,
        Ok(BatchAnswer { decisions: None }) => return,
        Err(error) => {
            tracing::warn!(%error, "cannot read the decisions in the batch answer");
            return;
        }
    };
    apply_and_acknowledge(feed, responder, transport).await;
}

/// Applies `feed` and posts the acknowledgement when there is anything to
/// acknowledge. Returns whether the collector has more waiting.
async fn apply_and_acknowledge(
    feed: DecisionFeed,
    responder: &Arc<Responder>,
    transport: &mut Transport,
) -> bool {
    let more = feed.more;
    if feed.updates.is_empty() && feed.offline_rules.is_none() {
        return more;
    }
    let ack = responder.apply(feed).await;
    acknowledge(&ack, transport).await;
    more
}

/// Posts `ack` unless it is empty. A lost acknowledgement is not retried:
/// the collector shows the decision as not yet confirmed, and the kernel
/// set is what counts.
async fn acknowledge(ack: &DecisionAck, transport: &mut Transport) {
    if *ack == DecisionAck::default() {
        return;
    }
    let body = match serde_json::to_vec(ack) {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "cannot encode the acknowledgement");
            return;
        }
    };
    if let Err(error) = transport
        .post(DECISIONS_ACK_PATH, None, Bytes::from(body))
        .await
    {
        tracing::warn!(%error, "cannot acknowledge decisions");
    }
}

/// Reconciles the kernel set every minute and applies the updates waiting
/// for SSH sessions to end, acknowledging them on `transport` (a sibling
/// of the batch transport, which connects only when there is something to
/// say).
pub async fn upkeep_loop(mut transport: Transport, responder: Arc<Responder>) {
    let mut ticker = tokio::time::interval(RETRY_DEFERRED_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_reconcile = tokio::time::Instant::now();
    loop {
        ticker.tick().await;
        if last_reconcile.elapsed() >= RECONCILE_EVERY {
            responder.reconcile().await;
            last_reconcile = tokio::time::Instant::now();
        }
        let ack = responder.retry_deferred().await;
        acknowledge(&ack, &mut transport).await;
        report_offline_decisions(&responder, &mut transport).await;
    }
}

/// Reports the decisions made offline once the collector is reachable, and
/// forgets them when it has recorded them. A collector that cannot read
/// them (an older one answers 400 or 404) never will: they are dropped,
/// counted. Other failures keep them for the next round.
async fn report_offline_decisions(responder: &Arc<Responder>, transport: &mut Transport) {
    if responder.is_offline() {
        return;
    }
    let mut decisions = responder.unreported();
    if decisions.is_empty() {
        return;
    }
    decisions.truncate(REPORT_AT_ONCE);
    let count = decisions.len();
    let body = match serde_json::to_vec(&LocalDecisions { decisions }) {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "cannot encode the decisions made offline");
            return;
        }
    };
    match transport
        .post(DECISIONS_LOCAL_PATH, None, Bytes::from(body))
        .await
    {
        Ok(_) => {
            responder.contact();
            tracing::info!(
                count,
                "reported the decisions made offline to the collector"
            );
            responder.reported(count, false).await;
        }
        Err(SendError::Rejected {
            status: status @ (400 | 404 | 405),
            ..
        }) => {
            tracing::error!(
                count,
                status,
                "the collector cannot record the decisions made offline; dropping the report"
            );
            responder.reported(count, true).await;
        }
        Err(error) => {
            tracing::warn!(%error, count, "cannot report the decisions made offline yet");
        }
    }
}

/// Keeps one long poll open for as long as the agent runs.
pub async fn poll_loop(mut transport: Transport, responder: Arc<Responder>) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    // Logged once per outage, not per attempt.
    let mut failing = false;
    loop {
        let rules_version = responder.offline_rules_version();
        let path = format!(
            "{DECISIONS_PATH}?after={}&wait={POLL_WAIT_SECONDS}&{RULES_QUERY}={rules_version}",
            responder.cursor(),
        );
        let started = tokio::time::Instant::now();
        let wait = Duration::from_secs(POLL_WAIT_SECONDS) + transport.timeout();
        match transport.get(&path, wait).await {
            Ok(body) => {
                responder.contact();
                failing = false;
                backoff.reset();
                let feed = match serde_json::from_slice::<DecisionFeed>(&body) {
                    Ok(feed) => feed,
                    Err(error) => {
                        tracing::warn!(%error, "cannot read the decision feed");
                        tokio::time::sleep(backoff.next_delay()).await;
                        continue;
                    }
                };
                let updates = !feed.updates.is_empty();
                let more = apply_and_acknowledge(feed, &responder, &mut transport).await;
                let answer = PollAnswer {
                    updates,
                    more,
                    new_rules: responder.offline_rules_version() != rules_version,
                    elapsed: started.elapsed(),
                };
                if answer.is_idle_spin() {
                    tokio::time::sleep(IDLE_SPIN_PAUSE).await;
                }
            }
            Err(SendError::Rejected {
                status: 404 | 405, ..
            }) => {
                tracing::info!(
                    "the collector has no decision endpoint; asking again in five minutes"
                );
                tokio::time::sleep(UNSUPPORTED_RETRY).await;
            }
            Err(error) => {
                let delay = backoff.next_delay();
                if !failing {
                    tracing::warn!(%error, retry_in = ?delay, "cannot poll for decisions");
                    failing = true;
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_quick_answer_with_nothing_new_pauses_the_long_poll() {
        let nothing = PollAnswer {
            updates: false,
            more: false,
            new_rules: false,
            elapsed: Duration::from_millis(5),
        };
        assert!(nothing.is_idle_spin());
        assert!(
            !PollAnswer {
                new_rules: true,
                ..nothing
            }
            .is_idle_spin(),
            "the first answer after a start brings the rule set: poll again at once"
        );
        assert!(
            !PollAnswer {
                updates: true,
                ..nothing
            }
            .is_idle_spin()
        );
        assert!(
            !PollAnswer {
                more: true,
                ..nothing
            }
            .is_idle_spin()
        );
        assert!(
            !PollAnswer {
                elapsed: Duration::from_secs(25),
                ..nothing
            }
            .is_idle_spin(),
            "a poll that waited its time is no spin"
        );
    }

    #[test]
    fn a_batch_answer_without_decisions_or_with_other_members_is_read() {
        let plain: BatchAnswer = serde_json::from_str("{\"accepted_seq\":5}").unwrap();
        assert!(plain.decisions.is_none());
        let with: BatchAnswer = serde_json::from_str(
            "{\"accepted_seq\":5,\"duplicate\":true,\"decisions\":{\"cursor\":9,\"updates\":[],\"mode\":\"enforce\"}}",
        )
        .unwrap();
        assert_eq!(with.decisions.map(|feed| feed.cursor), Some(9));
    }
}
