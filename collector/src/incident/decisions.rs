//! The decision store: active-response decisions (block this address on
//! these agents until then) and the append-only update log agents follow,
//! in `incidents.db` beside the incidents that cause them and the audit
//! trail that records them. This module owns the tables `decisions`,
//! `decision_hosts`, `decision_updates` and `decision_acks` (created by the
//! store's migrations, `store.rs`, like every table of `incidents.db`);
//! nothing else writes SQL over them.
//!
//! A decision is made once and lifted at most once; both are rows of
//! `decision_updates`, whose `AUTOINCREMENT` id is the agents' cursor
//! (never reused, even after rows are deleted). A decision's scope is
//! `county` (every agent) or `host` (the agents listed in
//! `decision_hosts`). One host can be taken out of a host-scoped decision
//! (`decisions delete ADDRESS --scope host:NAME`): its row leaves
//! `decision_hosts` and a removal update addressed to that host alone
//! (`decision_updates.host`) is appended; the decision itself ends when
//! its last host is taken out. The feed an agent reads holds the updates
//! after its cursor that concern it, leaving out decisions already expired
//! (never sent) and blocks already lifted (only their removal is sent).
//! Every add and removal commits in one transaction with its audit entry.
//!
//! Retention ([`IncidentStore::purge_ended_decisions`]) deletes decisions
//! that expired before the cutoff, with their hosts, updates and acks. No
//! agent can need those rows: their blocks left every kernel set by the
//! elements' own timeouts, and an agent whose cursor is older than the
//! oldest update kept reads every update kept, which is every decision
//! still in force that concerns it (a full resync). The end of the log is
//! read from `sqlite_sequence`, so a purge that empties the log does not
//! look like a replaced store to agents whose cursor is current.
//!
//! Writers in this process wake the long polls at once through
//! [`IncidentStore::decision_signal`]; the CLI writes from another process,
//! which the collector notices by polling [`IncidentStore::last_decision_update`].

use std::net::IpAddr;

use countywatch_wire::{
    DecisionAck, DecisionFeed, DecisionUpdate, LocalDecision, MAX_FEED_UPDATES, ResponseMode,
};
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};
use serde::Serialize;

use crate::audit::Outcome;
use crate::incident::store::{DECISION_LOG_END, IncidentStore};

/// Where a decision applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecisionScope {
    /// Every agent.
    County,
    /// These agents (host names, as agents are named).
    Hosts(Vec<String>),
}

impl DecisionScope {
    /// Reads `county` or `host:NAME` (the CLI's `--scope`).
    pub fn parse(text: &str) -> Option<DecisionScope> {
        match text {
            "county" => Some(DecisionScope::County),
            _ => text
                .strip_prefix("host:")
                .filter(|name| countywatch_wire::is_valid_agent_name(name))
                .map(|name| DecisionScope::Hosts(vec![name.to_string()])),
        }
    }

    /// `county`, or `host:` and the names, as lists and the audit show it.
    pub fn describe(&self) -> String {
        match self {
            DecisionScope::County => "county".to_string(),
            DecisionScope::Hosts(hosts) => format!("host:{}", hosts.join(",")),
        }
    }
}

/// A decision to record.
#[derive(Clone, Debug)]
pub struct NewDecision {
    /// The address to block.
    pub address: IpAddr,
    /// Where.
    pub scope: DecisionScope,
    /// The incident that caused it, for rule-made decisions.
    pub incident_id: Option<i64>,
    /// The rule that asked for it.
    pub rule: Option<String>,
    /// Why, for people and the agents' logs.
    pub reason: String,
    /// Who: `rule:ID`, `user:NAME` (console or CLI) or `agent:NAME`.
    pub made_by: String,
    /// When it starts, Unix milliseconds.
    pub start_ms: i64,
    /// When it ends, Unix milliseconds.
    pub expires_ms: i64,
    /// Enforce or dry run.
    pub mode: ResponseMode,
}

/// A decision as lists and pages show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DecisionRecord {
    /// Its number.
    pub id: i64,
    /// The blocked address.
    pub address: String,
    /// `county` or `host`.
    pub scope: String,
    /// For `host` scope, the agents it applies on.
    pub hosts: Vec<String>,
    /// The incident that caused it.
    pub incident_id: Option<i64>,
    /// The rule that asked for it.
    pub rule: Option<String>,
    /// Why.
    pub reason: String,
    /// Who made it.
    pub made_by: String,
    /// When it started, Unix milliseconds.
    pub start_ms: i64,
    /// When it ends, Unix milliseconds.
    pub expires_ms: i64,
    /// `enforce` or `dry_run`.
    pub mode: ResponseMode,
    /// When it was lifted, Unix milliseconds.
    pub removed_ms: Option<i64>,
    /// Who lifted it.
    pub removed_by: Option<String>,
    /// What each agent said about the block, by agent name.
    pub acks: Vec<AgentAnswer>,
}

impl DecisionRecord {
    /// Whether it still blocks (or, in dry run, would): not lifted, not expired.
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.removed_ms.is_none() && self.expires_ms > now_ms
    }
}

/// What one agent did with a decision's block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AgentAnswer {
    /// The agent.
    pub agent: String,
    /// Applied (or recorded, in dry run) rather than refused.
    pub applied: bool,
    /// The agent's reason for a refusal.
    pub reason: String,
    /// When it answered, Unix milliseconds.
    pub at_ms: i64,
}

/// Which decisions [`IncidentStore::decisions`] lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecisionFilter {
    /// Not lifted and not expired.
    Active,
    /// Every decision, newest first.
    All,
}

/// What [`IncidentStore::remove_decisions`] lifted from one decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lifted {
    /// The decision.
    pub id: i64,
    /// The hosts taken out of it (for a county-wide decision, none: it
    /// ended everywhere).
    pub hosts: Vec<String>,
    /// The hosts it still blocks on; when empty, the decision has ended.
    pub remaining: Vec<String>,
}

/// Longest agent-written text kept (refusal reasons, rule names).
const MAX_AGENT_TEXT: usize = 256;

const DECISION_COLUMNS: &str = "id, address, scope, incident_id, rule, reason, made_by, \
     start_ms, expires_ms, mode, removed_ms, removed_by";

impl IncidentStore {
    /// Records a decision and its first update, with its audit entry as
    /// `actor`; returns the decision's id. Wakes the long polls.
    pub fn add_decision(&self, decision: &NewDecision, actor: &str) -> anyhow::Result<i64> {
        let (id, update) = {
            let mut connection = self.write();
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (id, update) = insert_decision(&transaction, decision)?;
            self.audit_in(
                &transaction,
                actor,
                "decision.added",
                &format!("decision/{id}"),
                Outcome::Success,
                &format!(
                    "block {} on {} until {} ({}), {}",
                    decision.address.to_canonical(),
                    decision.scope.describe(),
                    decision.expires_ms,
                    mode_name(decision.mode),
                    decision.reason
                ),
            )?;
            transaction.commit()?;
            (id, update)
        };
        self.signal_decision_update(update);
        Ok(id)
    }

    /// Records, as `actor`, that a decision for `address` was refused and
    /// why (an address in `never_block`, say): nothing is stored but the
    /// audit entry.
    pub fn refuse_decision(
        &self,
        address: IpAddr,
        actor: &str,
        reason: &str,
    ) -> anyhow::Result<()> {
        let mut connection = self.write();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        self.audit_in(
            &transaction,
            actor,
            "decision.refused",
            &format!("address/{}", address.to_canonical()),
            Outcome::Failure,
            reason,
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// Lifts the active decisions against `address` as `actor`: every one
    /// without `scope`; with `county`, the county-wide ones; with
    /// `host:NAME`, that host out of each host-scoped decision that lists
    /// it (the decision ends when no host is left). Returns what was lifted.
    pub fn remove_decisions(
        &self,
        address: IpAddr,
        scope: Option<&DecisionScope>,
        actor: &str,
        now_ms: i64,
    ) -> anyhow::Result<Vec<Lifted>> {
        let address = address.to_canonical().to_string();
        let (lifted, last_update) = {
            let mut connection = self.write();
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut active = Vec::new();
            {
                let mut statement = transaction.prepare(
                    "SELECT id, scope FROM decisions
                     WHERE address = ?1 AND removed_ms IS NULL AND expires_ms > ?2 ORDER BY id",
                )?;
                let rows = statement.query_map(params![address, now_ms], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                })?;
                for row in rows {
                    active.push(row?);
                }
            }
            let mut lifted = Vec::new();
            let mut last_update = None;
            for (id, decision_scope) in active {
                let hosts = hosts_of(&transaction, id)?;
                let taken_out: Vec<String> = match scope {
                    None => hosts.clone(),
                    Some(DecisionScope::County) if decision_scope == "county" => Vec::new(),
                    Some(DecisionScope::Hosts(named)) if decision_scope == "host" => hosts
                        .iter()
                        .filter(|host| named.contains(host))
                        .cloned()
                        .collect(),
                    Some(_) => continue,
                };
                let remaining: Vec<String> = hosts
                    .into_iter()
                    .filter(|host| !taken_out.contains(host))
                    .collect();
                // A host-scoped decision that does not list the named host
                // is not this removal's.
                if scope.is_some() && decision_scope == "host" && taken_out.is_empty() {
                    continue;
                }
                if decision_scope == "county" || remaining.is_empty() {
                    last_update = Some(self.lift_in(&transaction, id, &address, actor, now_ms)?);
                } else {
                    for host in &taken_out {
                        last_update = Some(remove_host_in(&transaction, id, host, now_ms)?);
                        self.audit_in(
                            &transaction,
                            actor,
                            "decision.removed",
                            &format!("decision/{id}"),
                            Outcome::Success,
                            &format!(
                                "unblock {address} on host:{host}; still blocked on host:{}",
                                remaining.join(",")
                            ),
                        )?;
                    }
                }
                lifted.push(Lifted {
                    id,
                    hosts: taken_out,
                    remaining,
                });
            }
            transaction.commit()?;
            (lifted, last_update)
        };
        if let Some(update) = last_update {
            self.signal_decision_update(update);
        }
        Ok(lifted)
    }

    /// Adds `hosts` to incident `incident_id`'s active host-scoped decision
    /// against `address`, as `actor`: the attack reached them after the
    /// block was made. Each added host gets an update of its own in the
    /// feed and an audit entry. Returns the decision and the hosts added,
    /// or `None` when there is no such decision or it lists them all.
    pub fn extend_decision(
        &self,
        incident_id: i64,
        address: IpAddr,
        hosts: &[String],
        actor: &str,
        now_ms: i64,
    ) -> anyhow::Result<Option<(i64, Vec<String>)>> {
        let address = address.to_canonical().to_string();
        let (extended, last_update) = {
            let mut connection = self.write();
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let id: Option<i64> = transaction
                .query_row(
                    "SELECT id FROM decisions
                     WHERE incident_id = ?1 AND address = ?2 AND scope = 'host'
                       AND removed_ms IS NULL AND expires_ms > ?3
                     ORDER BY id DESC LIMIT 1",
                    params![incident_id, address, now_ms],
                    |row| row.get(0),
                )
                .optional()?;
            let Some(id) = id else {
                return Ok(None);
            };
            let listed = hosts_of(&transaction, id)?;
            let added: Vec<String> = hosts
                .iter()
                .filter(|host| !host.is_empty() && !listed.contains(host))
                .cloned()
                .collect();
            let mut last_update = None;
            for host in &added {
                transaction.execute(
                    "INSERT OR IGNORE INTO decision_hosts (decision_id, host) VALUES (?1, ?2)",
                    params![id, host],
                )?;
                last_update = Some(append_update(&transaction, id, false, now_ms, Some(host))?);
                self.audit_in(
                    &transaction,
                    actor,
                    "decision.extended",
                    &format!("decision/{id}"),
                    Outcome::Success,
                    &format!("block {address} on host:{host} too (incident {incident_id})"),
                )?;
            }
            transaction.commit()?;
            ((!added.is_empty()).then_some((id, added)), last_update)
        };
        if let Some(update) = last_update {
            self.signal_decision_update(update);
        }
        Ok(extended)
    }

    /// Lifts one decision by id as `actor` (the console's unblock button);
    /// false when it was not active.
    pub fn remove_decision(&self, id: i64, actor: &str, now_ms: i64) -> anyhow::Result<bool> {
        let update = {
            let mut connection = self.write();
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let address: Option<String> = transaction
                .query_row(
                    "SELECT address FROM decisions
                     WHERE id = ?1 AND removed_ms IS NULL AND expires_ms > ?2",
                    params![id, now_ms],
                    |row| row.get(0),
                )
                .optional()?;
            let Some(address) = address else {
                return Ok(false);
            };
            let update = self.lift_in(&transaction, id, &address, actor, now_ms)?;
            transaction.commit()?;
            update
        };
        self.signal_decision_update(update);
        Ok(true)
    }

    /// How many decisions against `address` started at or after
    /// `since_ms` and are over by `now_ms` (expired or lifted): the repeats
    /// that lengthen the next one. Decisions still in force do not count,
    /// so two rules firing on one attack do not double each other.
    pub fn ended_decisions_since(
        &self,
        address: IpAddr,
        since_ms: i64,
        now_ms: i64,
    ) -> anyhow::Result<u32> {
        let connection = self.read();
        let count: i64 = connection.query_row(
            "SELECT COUNT(*) FROM decisions WHERE address = ?1 AND start_ms >= ?2
                AND (expires_ms <= ?3 OR removed_ms IS NOT NULL)",
            params![address.to_canonical().to_string(), since_ms, now_ms],
            |row| row.get(0),
        )?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    /// Whether incident `incident_id` has an active decision, or had one an
    /// officer lifted (whose choice a later detection must not undo).
    pub fn incident_decision_state(
        &self,
        incident_id: i64,
        now_ms: i64,
    ) -> anyhow::Result<(bool, bool)> {
        let connection = self.read();
        Ok(connection.query_row(
            "SELECT
                EXISTS (SELECT 1 FROM decisions WHERE incident_id = ?1
                        AND removed_ms IS NULL AND expires_ms > ?2),
                EXISTS (SELECT 1 FROM decisions WHERE incident_id = ?1
                        AND removed_ms IS NOT NULL)",
            params![incident_id, now_ms],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?)
    }

    /// The updates after `after` that concern `agent`, at most
    /// [`MAX_FEED_UPDATES`], with the cursor to ask from next. `mode` is the
    /// collector's `response.mode`, carried in the feed. A cursor past the
    /// end of the log (the store was replaced) starts over from zero.
    pub fn decision_feed(
        &self,
        agent: &str,
        after: u64,
        now_ms: i64,
        mode: ResponseMode,
    ) -> anyhow::Result<DecisionFeed> {
        let mut connection = self.read();
        // One read transaction: the updates and the end of the log are
        // from the same commit.
        let transaction = connection.transaction()?;
        let last: i64 = transaction.query_row(DECISION_LOG_END, [], |row| row.get(0))?;
        let last = u64::try_from(last).unwrap_or(0);
        let after = if after > last { 0 } else { after };
        let mut updates = Vec::new();
        {
            let mut statement = transaction.prepare_cached(
                "SELECT u.id, u.decision_id, d.address, d.expires_ms, d.mode, d.reason, u.removed
                 FROM decision_updates u JOIN decisions d ON d.id = u.decision_id
                 WHERE u.id > ?1 AND u.id <= ?2 AND d.expires_ms > ?3
                   AND (u.host = ?4
                        OR (u.host IS NULL
                            AND (u.removed = 1 OR d.removed_ms IS NULL)
                            AND (d.scope = 'county' OR EXISTS (SELECT 1 FROM decision_hosts h
                                 WHERE h.decision_id = d.id AND h.host = ?4))))
                 ORDER BY u.id LIMIT ?5",
            )?;
            let rows = statement.query_map(
                params![
                    i64::try_from(after).unwrap_or(i64::MAX),
                    i64::try_from(last).unwrap_or(i64::MAX),
                    now_ms,
                    agent,
                    i64::try_from(MAX_FEED_UPDATES + 1).unwrap_or(i64::MAX),
                ],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, i64>(3)?,
                        row.get::<_, String>(4)?,
                        row.get::<_, String>(5)?,
                        row.get::<_, bool>(6)?,
                    ))
                },
            )?;
            for row in rows {
                let (id, decision, address, expires_at_ms, decision_mode, reason, removed) = row?;
                // Addresses were written from `IpAddr`; a row that does not
                // parse (edited by hand) is left out rather than sent.
                let Ok(address) = address.parse::<IpAddr>() else {
                    continue;
                };
                updates.push(DecisionUpdate {
                    id: u64::try_from(id).unwrap_or(0),
                    decision: u64::try_from(decision).unwrap_or(0),
                    address,
                    expires_at_ms,
                    mode: parse_mode(&decision_mode),
                    reason,
                    removed,
                });
            }
        }
        let more = updates.len() > MAX_FEED_UPDATES;
        updates.truncate(MAX_FEED_UPDATES);
        let cursor = match (more, updates.last()) {
            (true, Some(update)) => update.id,
            _ => last.max(after),
        };
        // An agent that was added to a decision after it was made (the
        // attack moved to it) and reads from before the decision gets both
        // the decision's first update and the one adding it; the last
        // update of each decision is its state for this agent.
        let mut seen = std::collections::HashSet::new();
        let mut newest_first: Vec<DecisionUpdate> = updates
            .into_iter()
            .rev()
            .filter(|update| seen.insert(update.decision))
            .collect();
        newest_first.reverse();
        let updates = newest_first;
        Ok(DecisionFeed {
            cursor,
            updates,
            mode,
            more,
            offline_rules: None,
        })
    }

    /// Records what `agent` did with the updates it received; ids it was
    /// never sent (unknown ones) are skipped. Returns how many were kept.
    pub fn record_decision_acks(
        &self,
        agent: &str,
        ack: &DecisionAck,
        now_ms: i64,
    ) -> anyhow::Result<usize> {
        let mut connection = self.write();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut kept = 0;
        {
            let mut statement = transaction.prepare_cached(
                "INSERT INTO decision_acks (update_id, agent, applied, reason, at_ms)
                 SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM decision_updates WHERE id = ?1)
                 ON CONFLICT (update_id, agent) DO UPDATE SET
                    applied = excluded.applied, reason = excluded.reason, at_ms = excluded.at_ms",
            )?;
            let applied = ack.applied.iter().map(|id| (*id, true, ""));
            let refused = ack
                .refused
                .iter()
                .map(|refusal| (refusal.id, false, refusal.reason.as_str()));
            for (id, applied, reason) in applied.chain(refused) {
                let Ok(id) = i64::try_from(id) else {
                    continue;
                };
                kept += statement.execute(params![id, agent, applied, clip(reason), now_ms])?;
            }
        }
        transaction.commit()?;
        Ok(kept)
    }

    /// Records the decisions `agent` made by itself while it could not
    /// reach the collector, as made by the agent (host scope, the agent
    /// only), each audited with the agent as actor and linked to the
    /// incident at the same index of `incidents`, if any. `refusal` says
    /// why an address may not be blocked: such a decision is recorded and
    /// lifted at once, so that the agent drops the block. Returns their ids.
    pub fn record_local_decisions(
        &self,
        agent: &str,
        decisions: &[LocalDecision],
        incidents: &[Option<i64>],
        max_duration_ms: i64,
        refusal: &dyn Fn(IpAddr) -> Option<String>,
        now_ms: i64,
    ) -> anyhow::Result<Vec<i64>> {
        let actor = format!("agent:{agent}");
        let mut ids = Vec::new();
        let mut last_update = None;
        {
            let mut connection = self.write();
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for (index, local) in decisions.iter().enumerate() {
                let rule = clip(&local.rule);
                // An agent's clock and its rules are its own: a block never
                // lasts longer here than the collector allows.
                let start_ms = local.started_at_ms.min(now_ms);
                let expires_ms = local
                    .expires_at_ms
                    .min(start_ms.saturating_add(max_duration_ms));
                let new = NewDecision {
                    address: local.address.to_canonical(),
                    scope: DecisionScope::Hosts(vec![agent.to_string()]),
                    incident_id: incidents.get(index).copied().flatten(),
                    rule: Some(rule.clone()),
                    reason: format!("{rule} on {agent} while offline"),
                    made_by: actor.clone(),
                    start_ms,
                    expires_ms,
                    mode: local.mode,
                };
                let (id, update) = insert_decision(&transaction, &new)?;
                last_update = Some(update);
                self.audit_in(
                    &transaction,
                    &actor,
                    "decision.added",
                    &format!("decision/{id}"),
                    Outcome::Success,
                    &format!(
                        "block {} on host:{agent} until {expires_ms} ({}), {}",
                        new.address,
                        mode_name(new.mode),
                        new.reason
                    ),
                )?;
                if let Some(reason) = refusal(new.address) {
                    last_update = Some(remove_in(&transaction, id, "system", now_ms)?);
                    self.audit_in(
                        &transaction,
                        "system",
                        "decision.removed",
                        &format!("decision/{id}"),
                        Outcome::Success,
                        &format!("unblock {}: {reason}", new.address),
                    )?;
                }
                ids.push(id);
            }
            transaction.commit()?;
        }
        if let Some(update) = last_update {
            self.signal_decision_update(update);
        }
        Ok(ids)
    }

    /// Decisions, newest first, at most `limit`, each with its agents'
    /// answers.
    pub fn decisions(
        &self,
        filter: DecisionFilter,
        now_ms: i64,
        limit: u32,
    ) -> anyhow::Result<Vec<DecisionRecord>> {
        let clause = match filter {
            DecisionFilter::Active => "WHERE removed_ms IS NULL AND expires_ms > ?1",
            DecisionFilter::All => "WHERE ?1 = ?1",
        };
        self.select_decisions(
            &format!("SELECT {DECISION_COLUMNS} FROM decisions {clause} ORDER BY id DESC LIMIT ?2"),
            params![now_ms, limit],
        )
    }

    /// The decisions incident `incident_id` caused, oldest first.
    pub fn decisions_of_incident(&self, incident_id: i64) -> anyhow::Result<Vec<DecisionRecord>> {
        self.select_decisions(
            &format!("SELECT {DECISION_COLUMNS} FROM decisions WHERE incident_id = ?1 ORDER BY id"),
            params![incident_id],
        )
    }

    /// The id of the newest update ever written, 0 when there is none.
    pub fn last_decision_update(&self) -> anyhow::Result<u64> {
        let connection = self.read();
        let last: i64 = connection.query_row(DECISION_LOG_END, [], |row| row.get(0))?;
        Ok(u64::try_from(last).unwrap_or(0))
    }

    /// Retention: deletes the decisions that expired before `cutoff_ms`,
    /// with their hosts, updates and acks (the schema's cascades), a few
    /// hundred per transaction; returns how many. A decision lifted early
    /// stays until its expiry is that old too: an agent that was offline
    /// when it was lifted still holds the element until the kernel's
    /// timeout, and must read the removal when it comes back.
    pub fn purge_ended_decisions(&self, cutoff_ms: i64) -> anyhow::Result<u64> {
        Ok(countywatch_daemon::sqlite::delete_in_batches(
            &self.write(),
            "DELETE FROM decisions WHERE id IN (SELECT id FROM decisions
                WHERE expires_ms < ?1 LIMIT ?2)",
            cutoff_ms,
        )?)
    }

    /// Tells the long polls that updates up to `update` exist.
    pub fn signal_decision_update(&self, update: u64) {
        self.decision_signal.send_if_modified(|last| {
            let newer = update > *last;
            if newer {
                *last = update;
            }
            newer
        });
    }

    /// A receiver that changes whenever a newer update is known.
    pub fn watch_decision_updates(&self) -> tokio::sync::watch::Receiver<u64> {
        self.decision_signal.subscribe()
    }

    fn select_decisions(
        &self,
        sql: &str,
        values: impl rusqlite::Params,
    ) -> anyhow::Result<Vec<DecisionRecord>> {
        let connection = self.read();
        let mut statement = connection.prepare_cached(sql)?;
        let rows = statement.query_map(values, |row| {
            Ok(DecisionRecord {
                id: row.get(0)?,
                address: row.get(1)?,
                scope: row.get(2)?,
                hosts: Vec::new(),
                incident_id: row.get(3)?,
                rule: row.get(4)?,
                reason: row.get(5)?,
                made_by: row.get(6)?,
                start_ms: row.get(7)?,
                expires_ms: row.get(8)?,
                mode: parse_mode(&row.get::<_, String>(9)?),
                removed_ms: row.get(10)?,
                removed_by: row.get(11)?,
                acks: Vec::new(),
            })
        })?;
        let mut records: Vec<DecisionRecord> = rows.collect::<Result<_, _>>()?;
        let mut hosts = connection.prepare_cached(
            "SELECT host FROM decision_hosts WHERE decision_id = ?1 ORDER BY host",
        )?;
        // An agent can answer a decision more than once (it was added to
        // it later, or read it again after a restart); its latest answer is
        // the one that holds. SQLite takes the bare columns from the row
        // holding the MAX.
        let mut answers = connection.prepare_cached(
            "SELECT a.agent, a.applied, a.reason, MAX(a.at_ms)
             FROM decision_acks a JOIN decision_updates u ON u.id = a.update_id
             WHERE u.decision_id = ?1 AND u.removed = 0
             GROUP BY a.agent ORDER BY a.agent",
        )?;
        for record in &mut records {
            record.hosts = hosts
                .query_map(params![record.id], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            record.acks = answers
                .query_map(params![record.id], |row| {
                    Ok(AgentAnswer {
                        agent: row.get(0)?,
                        applied: row.get(1)?,
                        reason: row.get(2)?,
                        at_ms: row.get(3)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
        }
        Ok(records)
    }

    /// Lifts decision `id` (against `address`) everywhere inside
    /// `transaction`, audited as `actor`; returns its removal update.
    fn lift_in(
        &self,
        transaction: &Transaction<'_>,
        id: i64,
        address: &str,
        actor: &str,
        now_ms: i64,
    ) -> anyhow::Result<u64> {
        let update = remove_in(transaction, id, actor, now_ms)?;
        self.audit_in(
            transaction,
            actor,
            "decision.removed",
            &format!("decision/{id}"),
            Outcome::Success,
            &format!("unblock {address}"),
        )?;
        Ok(update)
    }
}

/// Inserts a decision, its hosts and its first update; returns the
/// decision's id and the update's.
fn insert_decision(
    transaction: &Transaction<'_>,
    decision: &NewDecision,
) -> anyhow::Result<(i64, u64)> {
    let scope = match &decision.scope {
        DecisionScope::County => "county",
        DecisionScope::Hosts(_) => "host",
    };
    transaction.execute(
        "INSERT INTO decisions (address, scope, incident_id, rule, reason, made_by,
            start_ms, expires_ms, mode)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            decision.address.to_canonical().to_string(),
            scope,
            decision.incident_id,
            decision.rule,
            decision.reason,
            decision.made_by,
            decision.start_ms,
            decision.expires_ms,
            mode_name(decision.mode),
        ],
    )?;
    let id = transaction.last_insert_rowid();
    if let DecisionScope::Hosts(hosts) = &decision.scope {
        for host in hosts {
            transaction.execute(
                "INSERT OR IGNORE INTO decision_hosts (decision_id, host) VALUES (?1, ?2)",
                params![id, host],
            )?;
        }
    }
    let update = append_update(transaction, id, false, decision.start_ms, None)?;
    Ok((id, update))
}

/// Marks decision `id` lifted and appends its removal update.
fn remove_in(
    transaction: &Transaction<'_>,
    id: i64,
    actor: &str,
    now_ms: i64,
) -> anyhow::Result<u64> {
    transaction.execute(
        "UPDATE decisions SET removed_ms = ?2, removed_by = ?3 WHERE id = ?1",
        params![id, now_ms, actor],
    )?;
    append_update(transaction, id, true, now_ms, None)
}

/// Takes `host` out of host-scoped decision `id` and appends a removal
/// update addressed to that host alone.
fn remove_host_in(
    transaction: &Transaction<'_>,
    id: i64,
    host: &str,
    now_ms: i64,
) -> anyhow::Result<u64> {
    transaction.execute(
        "DELETE FROM decision_hosts WHERE decision_id = ?1 AND host = ?2",
        params![id, host],
    )?;
    append_update(transaction, id, true, now_ms, Some(host))
}

/// Appends an update of `decision`; `host` addresses it to that agent
/// alone, else it goes to every agent the decision's scope covers.
fn append_update(
    transaction: &Transaction<'_>,
    decision: i64,
    removed: bool,
    at_ms: i64,
    host: Option<&str>,
) -> anyhow::Result<u64> {
    transaction.execute(
        "INSERT INTO decision_updates (decision_id, removed, at_ms, host) VALUES (?1, ?2, ?3, ?4)",
        params![decision, removed, at_ms, host],
    )?;
    Ok(u64::try_from(transaction.last_insert_rowid()).unwrap_or(0))
}

fn hosts_of(transaction: &Transaction<'_>, id: i64) -> rusqlite::Result<Vec<String>> {
    let mut statement =
        transaction.prepare_cached("SELECT host FROM decision_hosts WHERE decision_id = ?1")?;
    let rows = statement.query_map(params![id], |row| row.get(0))?;
    rows.collect()
}

/// The mode's name as stored and shown.
pub fn mode_name(mode: ResponseMode) -> &'static str {
    match mode {
        ResponseMode::Enforce => "enforce",
        ResponseMode::DryRun => "dry_run",
    }
}

/// The stored mode; anything but `enforce` reads as dry run, the safe side.
fn parse_mode(text: &str) -> ResponseMode {
    match text {
        "enforce" => ResponseMode::Enforce,
        _ => ResponseMode::DryRun,
    }
}

fn clip(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_AGENT_TEXT)
        .collect()
}

#[cfg(test)]
mod tests {
    use countywatch_wire::RefusedUpdate;

    use super::*;

    fn decision(address: &str, scope: DecisionScope, expires_ms: i64) -> NewDecision {
        NewDecision {
            address: address.parse().unwrap(),
            scope,
            incident_id: Some(7),
            rule: Some("ssh_brute_force".to_string()),
            reason: "ssh_brute_force incident 7".to_string(),
            made_by: "rule:ssh_brute_force".to_string(),
            start_ms: 1_000,
            expires_ms,
            mode: ResponseMode::DryRun,
        }
    }

    /// The first column of every row `sql` selects, as text.
    fn column(store: &IncidentStore, sql: &str) -> Vec<String> {
        store
            .read()
            .prepare(sql)
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn addresses(feed: &DecisionFeed) -> Vec<(String, bool)> {
        feed.updates
            .iter()
            .map(|update| (update.address.to_string(), update.removed))
            .collect()
    }

    #[test]
    fn each_agent_reads_the_updates_that_concern_it_and_never_expired_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = IncidentStore::open(dir.path()).unwrap();
        let hosts = DecisionScope::Hosts(vec!["web1".to_string()]);
        store
            .add_decision(&decision("203.0.113.9", hosts, 10_000), "detection")
            .unwrap();
        store
            .add_decision(
                &decision("198.51.100.7", DecisionScope::County, 10_000),
                "cli:root",
            )
            .unwrap();
        store
            .add_decision(
                &decision("192.0.2.1", DecisionScope::County, 1_500),
                "cli:root",
            )
            .unwrap();
        let mode = ResponseMode::DryRun;
        let web1 = store.decision_feed("web1", 0, 2_000, mode).unwrap();
        assert_eq!(
            addresses(&web1),
            [
                ("203.0.113.9".to_string(), false),
                ("198.51.100.7".to_string(), false)
            ]
        );
        assert_eq!(web1.cursor, 3, "past the expired one too");
        let db1 = store.decision_feed("db1", 0, 2_000, mode).unwrap();
        assert_eq!(addresses(&db1), [("198.51.100.7".to_string(), false)]);
        assert!(
            store
                .decision_feed("db1", 3, 2_000, mode)
                .unwrap()
                .updates
                .is_empty()
        );
        let removed = store
            .remove_decisions("203.0.113.9".parse().unwrap(), None, "cli:root", 3_000)
            .unwrap();
        assert_eq!(removed.len(), 1);
        let after = store.decision_feed("web1", 3, 3_000, mode).unwrap();
        assert_eq!(addresses(&after), [("203.0.113.9".to_string(), true)]);
        assert_eq!(after.cursor, 4);
        // A newcomer is not told to block what was lifted already.
        let fresh = store.decision_feed("web1", 0, 3_000, mode).unwrap();
        assert_eq!(
            addresses(&fresh),
            [
                ("198.51.100.7".to_string(), false),
                ("203.0.113.9".to_string(), true)
            ]
        );
        // A cursor from a replaced store starts over.
        let reset = store.decision_feed("db1", 99, 3_000, mode).unwrap();
        assert_eq!(addresses(&reset), [("198.51.100.7".to_string(), false)]);
    }

    #[test]
    fn a_scoped_removal_lifts_only_that_scope_and_everything_is_audited() {
        let dir = tempfile::tempdir().unwrap();
        let store = IncidentStore::open(dir.path()).unwrap();
        let address: IpAddr = "203.0.113.9".parse().unwrap();
        let hosts = DecisionScope::Hosts(vec!["web1".to_string(), "web2".to_string()]);
        store
            .add_decision(&decision("203.0.113.9", hosts, 10_000), "detection")
            .unwrap();
        store
            .add_decision(
                &decision("203.0.113.9", DecisionScope::County, 10_000),
                "cli:root",
            )
            .unwrap();
        let county = store
            .remove_decisions(address, Some(&DecisionScope::County), "cli:root", 2_000)
            .unwrap();
        assert_eq!(
            county,
            [Lifted {
                id: 2,
                hosts: vec![],
                remaining: vec![]
            }]
        );
        let other_host = DecisionScope::parse("host:db1").unwrap();
        assert!(
            store
                .remove_decisions(address, Some(&other_host), "cli:root", 2_000)
                .unwrap()
                .is_empty()
        );
        let active = store.decisions(DecisionFilter::Active, 2_000, 100).unwrap();
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].hosts, ["web1", "web2"]);
        let (open, lifted) = store.incident_decision_state(7, 2_000).unwrap();
        assert!(open && lifted);
        assert_eq!(
            column(&store, "SELECT action FROM audit ORDER BY seq"),
            ["decision.added", "decision.added", "decision.removed"]
        );
    }

    #[test]
    fn one_host_taken_out_of_a_decision_hears_its_removal_alone_and_the_last_one_ends_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = IncidentStore::open(dir.path()).unwrap();
        let address: IpAddr = "203.0.113.9".parse().unwrap();
        let mode = ResponseMode::DryRun;
        let hosts = DecisionScope::Hosts(vec!["web1".to_string(), "web2".to_string()]);
        store
            .add_decision(&decision("203.0.113.9", hosts, 10_000), "detection")
            .unwrap();
        let web1 = DecisionScope::parse("host:web1").unwrap();
        let lifted = store
            .remove_decisions(address, Some(&web1), "cli:root", 2_000)
            .unwrap();
        assert_eq!(
            lifted,
            [Lifted {
                id: 1,
                hosts: vec!["web1".to_string()],
                remaining: vec!["web2".to_string()]
            }]
        );
        // web1 reads the removal; web2 reads nothing new and keeps the block.
        let web1_feed = store.decision_feed("web1", 1, 2_000, mode).unwrap();
        assert_eq!(addresses(&web1_feed), [("203.0.113.9".to_string(), true)]);
        assert!(
            store
                .decision_feed("web2", 1, 2_000, mode)
                .unwrap()
                .updates
                .is_empty()
        );
        // From the start, web2 is told to block and web1 only to lift.
        let fresh_web2 = store.decision_feed("web2", 0, 2_000, mode).unwrap();
        assert_eq!(addresses(&fresh_web2), [("203.0.113.9".to_string(), false)]);
        let fresh_web1 = store.decision_feed("web1", 0, 2_000, mode).unwrap();
        assert_eq!(addresses(&fresh_web1), [("203.0.113.9".to_string(), true)]);
        let active = store.decisions(DecisionFilter::Active, 2_000, 10).unwrap();
        assert_eq!(active.len(), 1, "the decision still holds on web2");
        assert_eq!(active[0].hosts, ["web2"]);
        // Taking web1 out again finds nothing; taking web2 out ends it.
        assert!(
            store
                .remove_decisions(address, Some(&web1), "cli:root", 2_000)
                .unwrap()
                .is_empty()
        );
        let web2 = DecisionScope::parse("host:web2").unwrap();
        let ended = store
            .remove_decisions(address, Some(&web2), "cli:root", 3_000)
            .unwrap();
        assert!(ended[0].remaining.is_empty());
        assert!(
            store
                .decisions(DecisionFilter::Active, 3_000, 10)
                .unwrap()
                .is_empty()
        );
        let web2_feed = store.decision_feed("web2", 2, 3_000, mode).unwrap();
        assert_eq!(addresses(&web2_feed), [("203.0.113.9".to_string(), true)]);
        assert!(
            store
                .decision_feed("web1", 3, 3_000, mode)
                .unwrap()
                .updates
                .is_empty(),
            "web1 is not told twice"
        );
        assert_eq!(
            column(
                &store,
                "SELECT details FROM audit WHERE action = 'decision.removed' ORDER BY seq"
            ),
            [
                "unblock 203.0.113.9 on host:web1; still blocked on host:web2",
                "unblock 203.0.113.9"
            ]
        );
    }

    #[test]
    fn retention_deletes_expired_decisions_and_an_old_cursor_still_reads_every_block_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let store = IncidentStore::open(dir.path()).unwrap();
        let mode = ResponseMode::DryRun;
        let web1 = || DecisionScope::Hosts(vec!["web1".to_string()]);
        // 1: expired long ago, acknowledged; 2: lifted long ago but in
        // force until 50,000; 3: in force until 900,000.
        store
            .add_decision(&decision("192.0.2.1", web1(), 5_000), "detection")
            .unwrap();
        let ack = DecisionAck {
            applied: vec![1],
            refused: vec![],
        };
        store.record_decision_acks("web1", &ack, 2_000).unwrap();
        store
            .add_decision(&decision("192.0.2.2", web1(), 50_000), "detection")
            .unwrap();
        store
            .remove_decisions("192.0.2.2".parse().unwrap(), None, "cli:root", 3_000)
            .unwrap();
        store
            .add_decision(&decision("192.0.2.3", web1(), 900_000), "detection")
            .unwrap();
        let end = store.last_decision_update().unwrap();
        assert_eq!(end, 4);

        assert_eq!(store.purge_ended_decisions(40_000).unwrap(), 1);
        let count = |table: &str| -> i64 {
            store
                .read()
                .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
                    row.get(0)
                })
                .unwrap()
        };
        assert_eq!(count("decisions"), 2);
        assert_eq!(count("decision_hosts"), 2);
        assert_eq!(count("decision_updates"), 3);
        assert_eq!(count("decision_acks"), 0, "the ack went with its decision");
        // An agent that has been away since before the purged rows reads
        // the lift it missed and the block in force.
        let away = store.decision_feed("web1", 0, 45_000, mode).unwrap();
        assert_eq!(
            addresses(&away),
            [
                ("192.0.2.2".to_string(), true),
                ("192.0.2.3".to_string(), false)
            ]
        );
        // Once everything has expired and been purged, a current cursor is
        // still current (not taken for a replaced store), and the next
        // update continues the numbering.
        assert_eq!(store.purge_ended_decisions(i64::MAX).unwrap(), 2);
        assert_eq!(count("decision_updates"), 0);
        assert_eq!(store.last_decision_update().unwrap(), end);
        let current = store.decision_feed("web1", end, 1_000_000, mode).unwrap();
        assert_eq!(current.cursor, end);
        assert!(current.updates.is_empty());
        store
            .add_decision(
                &decision("192.0.2.4", DecisionScope::County, 2_000_000),
                "cli:root",
            )
            .unwrap();
        let next = store.decision_feed("web1", end, 1_000_000, mode).unwrap();
        assert_eq!(addresses(&next), [("192.0.2.4".to_string(), false)]);
        assert_eq!(next.cursor, end + 1);
        // A reopened store starts its long polls from the same end.
        drop(store);
        let reopened = IncidentStore::open(dir.path()).unwrap();
        assert_eq!(*reopened.watch_decision_updates().borrow(), end + 1);
    }

    #[test]
    fn acks_are_kept_per_agent_and_shown_with_the_decision() {
        let dir = tempfile::tempdir().unwrap();
        let store = IncidentStore::open(dir.path()).unwrap();
        store
            .add_decision(
                &decision("203.0.113.9", DecisionScope::County, 10_000),
                "cli:root",
            )
            .unwrap();
        let ack = DecisionAck {
            applied: vec![1, 42],
            refused: vec![],
        };
        assert_eq!(store.record_decision_acks("web1", &ack, 2_000).unwrap(), 1);
        let refused = DecisionAck {
            applied: vec![],
            refused: vec![RefusedUpdate {
                id: 1,
                reason: "an SSH session's peer\u{1b}[31m".to_string(),
            }],
        };
        store.record_decision_acks("db1", &refused, 2_000).unwrap();
        let listed = store.decisions(DecisionFilter::All, 2_000, 10).unwrap();
        let answers: Vec<(&str, bool, &str)> = listed[0]
            .acks
            .iter()
            .map(|a| (a.agent.as_str(), a.applied, a.reason.as_str()))
            .collect();
        assert_eq!(
            answers,
            [
                ("db1", false, "an SSH session's peer[31m"),
                ("web1", true, "")
            ]
        );
    }

    #[test]
    fn an_agent_s_own_decisions_are_capped_and_lifted_when_never_block_covers_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = IncidentStore::open(dir.path()).unwrap();
        let local = |address: &str| LocalDecision {
            address: address.parse().unwrap(),
            rule: "ssh_brute_force".to_string(),
            started_at_ms: 1_000,
            expires_at_ms: 1_000_000_000,
            mode: ResponseMode::Enforce,
            group_key: String::new(),
            title: String::new(),
            severity: String::new(),
        };
        let refusal = |address: IpAddr| {
            (address.to_string() == "10.0.0.5").then(|| "in never_block".to_string())
        };
        let ids = store
            .record_local_decisions(
                "web1",
                &[local("203.0.113.9"), local("10.0.0.5")],
                &[],
                3_600_000,
                &refusal,
                5_000,
            )
            .unwrap();
        assert_eq!(ids.len(), 2);
        let all = store.decisions(DecisionFilter::All, 5_000, 10).unwrap();
        let kept = all.iter().find(|d| d.address == "203.0.113.9").unwrap();
        assert_eq!(kept.made_by, "agent:web1");
        assert_eq!(kept.expires_ms, 1_000 + 3_600_000);
        assert_eq!(kept.hosts, ["web1"]);
        let lifted = all.iter().find(|d| d.address == "10.0.0.5").unwrap();
        assert_eq!(lifted.removed_by.as_deref(), Some("system"));
        let feed = store
            .decision_feed("web1", 0, 5_000, ResponseMode::DryRun)
            .unwrap();
        assert_eq!(
            addresses(&feed),
            [
                ("203.0.113.9".to_string(), false),
                ("10.0.0.5".to_string(), true)
            ]
        );
    }
}
