//! The incident lifecycle: detections open incidents (or add evidence to the
//! open one of the same rule and group key, or reopen a recently resolved
//! one), and people move them open -> acknowledged -> resolved or
//! false_positive, with comments, an assignee and a reason. Every change,
//! its audit entry and its `incident_changed` announcement (in the
//! `announcements` outbox) commit in one transaction; the announcement is
//! then relayed to the event log in `collector.db` exactly once.

use countywatch_detect::Detection;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::audit::{NewEntry, Outcome, append_in};
use crate::incident::store::{IncidentStore, Status};

/// What an `incident_changed` event says about the incident it announces.
struct Change<'a> {
    id: i64,
    rule_id: &'a str,
    title: &'a str,
    severity: &'a str,
    status: &'a str,
    actor: &'a str,
    reason: Option<&'a str>,
    at_ms: i64,
}

/// The name the registry keeps the announcements' relay cursor under.
const ANNOUNCEMENTS_RELAY: &str = "incident_announcements";

impl IncidentStore {
    /// Announces this store's lifecycle changes as `incident_changed`
    /// events in `registry`, where event forwarding picks them up, starting
    /// with those a crash (or a change made while no collector ran) left in
    /// the outbox.
    pub fn announce_changes_to(&self, registry: std::sync::Arc<crate::registry::Registry>) {
        let _ = self.event_log.set(registry);
        self.relay_announcements();
    }

    /// Relays the outbox's announcements to the event log, oldest first.
    /// Each is appended once: the registry stores the last relayed outbox
    /// id in the transaction that appends the event, so a crash before the
    /// outbox row is deleted cannot repeat it. A failure is logged and the
    /// rest waits for the next change or the next start.
    pub(crate) fn relay_announcements(&self) {
        let Some(registry) = self.event_log.get() else {
            return;
        };
        let pending = {
            let connection = self.write();
            let rows = connection
                .prepare("SELECT id, event FROM announcements ORDER BY id")
                .and_then(|mut statement| {
                    statement
                        .query_map([], |row| {
                            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                        })?
                        .collect::<Result<Vec<_>, _>>()
                });
            match rows {
                Ok(rows) => rows,
                Err(error) => {
                    tracing::error!("cannot read the incident announcements outbox: {error:#}");
                    return;
                }
            }
        };
        let mut relayed = None;
        for (id, body) in pending {
            match serde_json::from_str::<countywatch_wire::Event>(&body) {
                Ok(event) => {
                    if let Err(error) = registry.relay_collector_event(
                        ANNOUNCEMENTS_RELAY,
                        id,
                        &event,
                        countywatch_daemon::clock::now_ms(),
                    ) {
                        tracing::error!(
                            outbox_id = id,
                            "cannot record an incident_changed event; it stays queued: {error:#}"
                        );
                        break;
                    }
                }
                // We wrote it; unreadable means a damaged row, which no
                // retry mends.
                Err(error) => tracing::error!(
                    outbox_id = id,
                    "dropping an unreadable incident announcement: {error}"
                ),
            }
            relayed = Some(id);
            countywatch_daemon::failpoint::hit("incident.announcement_relayed");
        }
        if let Some(last) = relayed
            && let Err(error) = self
                .write()
                .execute("DELETE FROM announcements WHERE id <= ?1", params![last])
        {
            tracing::warn!("cannot trim the incident announcements outbox: {error:#}");
        }
    }
}

/// Queues the `incident_changed` event for `change` in the outbox, inside
/// the transaction that makes the change, so that the change and its
/// announcement commit together.
fn queue_announcement(
    connection: &rusqlite::Connection,
    change: &Change<'_>,
) -> anyhow::Result<()> {
    let mut event = countywatch_wire::Event::new(
        change.at_ms,
        countywatch_wire::EventSource::Agent,
        countywatch_wire::EventKind::IncidentChanged,
    );
    event.host = "collector".to_string();
    event.fields.incident_id = Some(change.id);
    event.fields.rule_id = Some(change.rule_id.to_string());
    event.fields.severity = Some(change.severity.to_string());
    event.fields.status = Some(change.status.to_string());
    // Titles and reasons can carry attacker text (a templated user
    // name): cut well inside the wire's field limit.
    let clip = |text: &str| text.chars().take(1024).collect::<String>();
    event.fields.user = Some(clip(change.actor));
    event.fields.reason = change.reason.map(clip);
    event.fields.message = Some(clip(change.title));
    event.raw = format!(
        "incident {} ({}) is {} ({})",
        change.id, change.rule_id, change.status, change.actor
    );
    connection.execute(
        "INSERT INTO announcements (event) VALUES (?1)",
        params![serde_json::to_string(&event)?],
    )?;
    Ok(())
}

/// The actor name detections are recorded under.
pub const DETECTION_ACTOR: &str = "detection";

/// What [`IncidentStore::record_detection`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// A new incident with this id.
    Opened(i64),
    /// Evidence added to this open or acknowledged incident.
    Deduplicated(i64),
    /// This resolved incident recurred within `reopen_within` and is open again.
    Reopened(i64),
}

impl Recorded {
    /// The incident's id.
    pub fn id(self) -> i64 {
        match self {
            Recorded::Opened(id) | Recorded::Deduplicated(id) | Recorded::Reopened(id) => id,
        }
    }
}

/// Why a transition was refused.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    /// No such incident.
    #[error("incident {0} does not exist")]
    NotFound(i64),
    /// The lifecycle does not allow it.
    #[error("cannot go from {from} to {to}")]
    NotAllowed {
        /// Current status.
        from: &'static str,
        /// Requested status.
        to: &'static str,
    },
    /// Closing needs a reason.
    #[error("a reason is required to mark an incident {0}")]
    ReasonRequired(&'static str),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] anyhow::Error),
}

impl From<rusqlite::Error> for TransitionError {
    fn from(error: rusqlite::Error) -> Self {
        TransitionError::Storage(error.into())
    }
}

/// Whether the lifecycle allows `from` -> `to`. Closed incidents can be
/// reopened by hand; acknowledging twice (to change the assignee) is fine.
pub fn allowed(from: Status, to: Status) -> bool {
    use Status::*;
    matches!(
        (from, to),
        (Open, Acknowledged)
            | (Acknowledged, Acknowledged)
            | (Open | Acknowledged, Resolved | FalsePositive)
            | (Resolved | FalsePositive, Open)
            | (Acknowledged, Open)
    )
}

/// A requested change of status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The status to move to.
    pub to: Status,
    /// Who takes it (acknowledge); defaults to the actor.
    pub assignee: Option<String>,
    /// Why (required for resolved and false_positive); also kept as a
    /// comment on the timeline.
    pub reason: Option<String>,
}

impl IncidentStore {
    /// Records a detection: dedups on (rule_id, group_key) while the
    /// incident is open or acknowledged, reopens a resolved one within
    /// `reopen_within`, else opens a new incident. Evidence already stored
    /// for the incident (same event row id) is not added twice.
    pub fn record_detection(&self, detection: &Detection) -> anyhow::Result<Recorded> {
        let mut connection = self.write();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let latest: Option<(i64, String, Option<i64>)> = transaction
            .query_row(
                "SELECT id, status, closed_ms FROM incidents WHERE rule_id = ?1 AND group_key = ?2
                 ORDER BY id DESC LIMIT 1",
                params![detection.rule_id, detection.group_key],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        let reopen_ms =
            i64::try_from(self.settings.reopen_within.get().as_millis()).unwrap_or(i64::MAX);
        let hosts = serde_json::to_string(&detection.hosts)?;
        let recorded = match latest {
            Some((id, status, _)) if Status::parse(&status).is_some_and(Status::is_active) => {
                Recorded::Deduplicated(id)
            }
            Some((id, status, closed_ms))
                if status == Status::Resolved.as_str()
                    && closed_ms.is_some_and(|closed| {
                        detection.at_ms.saturating_sub(closed) <= reopen_ms
                    }) =>
            {
                transaction.execute(
                    "UPDATE incidents SET status = 'open', closed_ms = NULL, reason = NULL WHERE id = ?1",
                    params![id],
                )?;
                Recorded::Reopened(id)
            }
            _ => {
                transaction.execute(
                    "INSERT INTO incidents (rule_id, title, severity, severity_rank, status,
                        group_key, first_seen_ms, last_seen_ms, hosts, labels, annotations, tags)
                     VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?6, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        detection.rule_id,
                        detection.title,
                        detection.severity.as_str(),
                        detection.severity as i64,
                        detection.group_key,
                        detection.at_ms,
                        hosts,
                        serde_json::to_string(&detection.labels)?,
                        serde_json::to_string(&detection.annotations)?,
                        serde_json::to_string(&detection.tags)?,
                    ],
                )?;
                Recorded::Opened(transaction.last_insert_rowid())
            }
        };
        let id = recorded.id();
        let mut added = 0_i64;
        for evidence in &detection.evidence {
            if let Some(event_id) = evidence.event_id {
                let known: bool = transaction.query_row(
                    "SELECT EXISTS (SELECT 1 FROM evidence WHERE incident_id = ?1 AND event_id = ?2)",
                    params![id, event_id],
                    |row| row.get(0),
                )?;
                if known {
                    continue;
                }
            }
            transaction.execute(
                "INSERT INTO evidence (incident_id, event_id, timestamp_ms, host, kind, event)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    id,
                    evidence.event_id,
                    evidence.event.timestamp_ms,
                    evidence.event.host,
                    evidence.event.kind.as_str(),
                    serde_json::to_string(&evidence.event)?,
                ],
            )?;
            crate::incident::store::count_evidence(&transaction, &evidence.event)?;
            added += 1;
        }
        // Hosts: the union of what the incident had and what this adds.
        let existing_hosts: String = transaction.query_row(
            "SELECT hosts FROM incidents WHERE id = ?1",
            params![id],
            |row| row.get(0),
        )?;
        let mut all_hosts: Vec<String> = serde_json::from_str(&existing_hosts).unwrap_or_default();
        all_hosts.extend(detection.hosts.iter().cloned());
        all_hosts.sort();
        all_hosts.dedup();
        // The annotations describe the latest detection ("the last for user
        // root on web2"): a newer one replaces them, so the page does not
        // keep naming the first host after the attack moved on. The title
        // stays the first one's, since it names the incident.
        transaction.execute(
            "UPDATE incidents SET last_seen_ms = MAX(last_seen_ms, ?2), hosts = ?3,
                evidence_count = evidence_count + ?4,
                annotations = CASE WHEN ?2 >= last_seen_ms THEN ?5 ELSE annotations END
             WHERE id = ?1",
            params![
                id,
                detection.at_ms,
                serde_json::to_string(&all_hosts)?,
                added,
                serde_json::to_string(&detection.annotations)?,
            ],
        )?;
        let (action, timeline_action) = match recorded {
            Recorded::Opened(_) => ("incident.created", "opened"),
            Recorded::Deduplicated(_) => ("incident.evidence_added", "evidence"),
            Recorded::Reopened(_) => ("incident.reopened", "reopened"),
        };
        let detail = format!("{added} evidence event(s), rule {}", detection.rule_id);
        transaction.execute(
            "INSERT INTO timeline (incident_id, at_ms, actor, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, detection.at_ms, DETECTION_ACTOR, timeline_action, detail],
        )?;
        self.audit_in(
            &transaction,
            DETECTION_ACTOR,
            action,
            &format!("incident/{id}"),
            Outcome::Success,
            &format!("{detail}, group {}", detection.group_key),
        )?;
        let status = match recorded {
            Recorded::Opened(_) => Some("open"),
            Recorded::Reopened(_) => Some("reopened"),
            Recorded::Deduplicated(_) => None,
        };
        if let Some(status) = status {
            queue_announcement(
                &transaction,
                &Change {
                    id,
                    rule_id: &detection.rule_id,
                    title: &detection.title,
                    severity: detection.severity.as_str(),
                    status,
                    actor: DETECTION_ACTOR,
                    reason: None,
                    at_ms: detection.at_ms,
                },
            )?;
        }
        transaction.commit()?;
        drop(connection);
        countywatch_daemon::failpoint::hit("incident.committed");
        self.relay_announcements();
        Ok(recorded)
    }

    /// Moves an incident to another status as `actor`.
    pub fn transition(
        &self,
        id: i64,
        change: &Transition,
        actor: &str,
        now_ms: i64,
    ) -> Result<Status, TransitionError> {
        let reason = change
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|reason| !reason.is_empty());
        if matches!(change.to, Status::Resolved | Status::FalsePositive) && reason.is_none() {
            return Err(TransitionError::ReasonRequired(change.to.as_str()));
        }
        let mut connection = self.write();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: Option<(String, String, String, String)> = transaction
            .query_row(
                "SELECT status, rule_id, title, severity FROM incidents WHERE id = ?1",
                params![id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .optional()?;
        let Some((current, rule_id, title, severity)) = current else {
            return Err(TransitionError::NotFound(id));
        };
        let from = Status::parse(&current).unwrap_or(Status::Open);
        if !allowed(from, change.to) {
            return Err(TransitionError::NotAllowed {
                from: from.as_str(),
                to: change.to.as_str(),
            });
        }
        let closed = matches!(change.to, Status::Resolved | Status::FalsePositive);
        let assignee = match change.to {
            Status::Acknowledged => Some(
                change
                    .assignee
                    .clone()
                    .filter(|name| !name.trim().is_empty())
                    .unwrap_or_else(|| actor.to_string()),
            ),
            _ => None,
        };
        transaction.execute(
            "UPDATE incidents SET status = ?2, assignee = COALESCE(?3, assignee),
                reason = CASE WHEN ?4 THEN ?5 ELSE NULL END,
                closed_ms = CASE WHEN ?4 THEN ?6 ELSE NULL END
             WHERE id = ?1",
            params![id, change.to.as_str(), assignee, closed, reason, now_ms],
        )?;
        let detail = match (&assignee, reason) {
            (Some(assignee), Some(reason)) => format!("assignee {assignee}: {reason}"),
            (Some(assignee), None) => format!("assignee {assignee}"),
            (None, Some(reason)) => reason.to_string(),
            (None, None) => String::new(),
        };
        transaction.execute(
            "INSERT INTO timeline (incident_id, at_ms, actor, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, now_ms, actor, change.to.as_str(), detail],
        )?;
        append_in(
            &transaction,
            &self.key_path,
            self.settings.checkpoint_every,
            &NewEntry {
                at_ms: now_ms,
                actor,
                action: "incident.status_changed",
                target: &format!("incident/{id}"),
                outcome: Outcome::Success,
                details: &format!("{} -> {}: {detail}", from.as_str(), change.to.as_str()),
            },
        )?;
        queue_announcement(
            &transaction,
            &Change {
                id,
                rule_id: &rule_id,
                title: &title,
                severity: &severity,
                status: change.to.as_str(),
                actor,
                reason,
                at_ms: now_ms,
            },
        )?;
        transaction.commit()?;
        drop(connection);
        countywatch_daemon::failpoint::hit("incident.committed");
        self.relay_announcements();
        Ok(change.to)
    }

    /// Adds a comment to an incident's timeline as `actor`.
    pub fn comment(
        &self,
        id: i64,
        text: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<(), TransitionError> {
        let mut connection = self.write();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: bool = transaction.query_row(
            "SELECT EXISTS (SELECT 1 FROM incidents WHERE id = ?1)",
            params![id],
            |row| row.get(0),
        )?;
        if !exists {
            return Err(TransitionError::NotFound(id));
        }
        transaction.execute(
            "INSERT INTO timeline (incident_id, at_ms, actor, action, detail) VALUES (?1, ?2, ?3, 'comment', ?4)",
            params![id, now_ms, actor, text],
        )?;
        append_in(
            &transaction,
            &self.key_path,
            self.settings.checkpoint_every,
            &NewEntry {
                at_ms: now_ms,
                actor,
                action: "incident.commented",
                target: &format!("incident/{id}"),
                outcome: Outcome::Success,
                details: text,
            },
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// Appends an audit entry in the store's own transaction order.
    pub fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        outcome: Outcome,
        details: &str,
    ) -> anyhow::Result<i64> {
        let mut connection = self.write();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let seq = self.audit_in(&transaction, actor, action, target, outcome, details)?;
        transaction.commit()?;
        Ok(seq)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use countywatch_detect::{Evidence, Severity};
    use countywatch_wire::{Event, EventKind, EventSource};

    use super::*;
    use crate::incident::config::IncidentsConfig;

    fn detection(at_ms: i64, event_ids: &[i64]) -> Detection {
        Detection {
            rule_id: "ssh_brute_force".to_string(),
            title: "SSH brute force from 203.0.113.9".to_string(),
            severity: Severity::High,
            group_key: "src_ip=203.0.113.9".to_string(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            tags: vec!["T1110".to_string()],
            hosts: vec!["web1".to_string()],
            at_ms,
            evidence: event_ids
                .iter()
                .map(|&id| {
                    let mut event = Event::new(at_ms, EventSource::Auth, EventKind::SshLoginFailed);
                    event.host = "web1".to_string();
                    event.raw = format!("Failed password for root, attempt {id}");
                    Evidence {
                        event_id: Some(id),
                        event,
                    }
                })
                .collect(),
            response: None,
        }
    }

    fn resolve(store: &IncidentStore, id: i64, at_ms: i64) {
        store
            .transition(
                id,
                &Transition {
                    to: Status::Resolved,
                    assignee: None,
                    reason: Some("blocked".to_string()),
                },
                "alice",
                at_ms,
            )
            .unwrap();
    }

    #[test]
    fn a_repeat_while_open_adds_evidence_and_a_later_one_reopens_or_opens() {
        let dir = tempfile::tempdir().unwrap();
        let settings = IncidentsConfig {
            reopen_within: countywatch_config::duration::PromDuration(
                std::time::Duration::from_secs(3600),
            ),
            ..IncidentsConfig::default()
        };
        let store = IncidentStore::open_with(dir.path(), &settings).unwrap();
        let first = store.record_detection(&detection(1_000, &[1, 2])).unwrap();
        assert!(matches!(first, Recorded::Opened(_)));
        let id = first.id();
        // Event 2 again plus a new one: only the new one is added.
        let mut newer = detection(2_000, &[2, 3]);
        newer
            .annotations
            .insert("description".to_string(), "last on web2".to_string());
        let again = store.record_detection(&newer).unwrap();
        assert_eq!(again, Recorded::Deduplicated(id));
        let incident = store.incident(id).unwrap().unwrap();
        assert_eq!(incident.evidence_count, 3);
        assert_eq!(incident.last_seen_ms, 2_000);
        assert_eq!(incident.annotations["description"], "last on web2");
        // An older detection arriving late (a spool catching up) does not
        // replace the newer description.
        let late = store.record_detection(&detection(1_500, &[6])).unwrap();
        assert_eq!(late, Recorded::Deduplicated(id));
        let incident = store.incident(id).unwrap().unwrap();
        assert_eq!(incident.annotations["description"], "last on web2");

        resolve(&store, id, 10_000);
        let within = store.record_detection(&detection(20_000, &[4])).unwrap();
        assert_eq!(within, Recorded::Reopened(id));
        resolve(&store, id, 30_000);
        let after = store
            .record_detection(&detection(30_000 + 3_600_001, &[5]))
            .unwrap();
        assert!(matches!(after, Recorded::Opened(other) if other != id));
        assert!(
            crate::audit::verify(dir.path())
                .unwrap()
                .first_break
                .is_none()
        );
    }

    #[test]
    fn the_lifecycle_refuses_what_it_does_not_allow() {
        let dir = tempfile::tempdir().unwrap();
        let store = IncidentStore::open(dir.path()).unwrap();
        let id = store
            .record_detection(&detection(1_000, &[1]))
            .unwrap()
            .id();
        let no_reason = store.transition(
            id,
            &Transition {
                to: Status::FalsePositive,
                assignee: None,
                reason: Some("  ".to_string()),
            },
            "alice",
            2_000,
        );
        assert!(matches!(no_reason, Err(TransitionError::ReasonRequired(_))));
        store
            .transition(
                id,
                &Transition {
                    to: Status::Acknowledged,
                    assignee: None,
                    reason: None,
                },
                "alice",
                2_000,
            )
            .unwrap();
        assert_eq!(
            store.incident(id).unwrap().unwrap().assignee.as_deref(),
            Some("alice")
        );
        resolve(&store, id, 3_000);
        let acknowledge_closed = store.transition(
            id,
            &Transition {
                to: Status::Acknowledged,
                assignee: None,
                reason: None,
            },
            "bob",
            4_000,
        );
        assert!(matches!(
            acknowledge_closed,
            Err(TransitionError::NotAllowed { .. })
        ));
        store
            .comment(id, "checked the firewall", "bob", 5_000)
            .unwrap();
        let actions: Vec<String> = store
            .timeline(id)
            .unwrap()
            .into_iter()
            .map(|entry| entry.action)
            .collect();
        assert_eq!(actions, ["opened", "acknowledged", "resolved", "comment"]);
    }
}
