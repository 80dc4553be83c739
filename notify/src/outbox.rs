//! The persistent outbox: every notification is written to `notify.db`
//! before any attempt to send it and deleted only after its receiver
//! accepted it, so a crash or a restart loses nothing. One delivery task
//! per integration sends the oldest due entries (a few at once), retrying
//! with exponential backoff and full jitter until the entry's deadline;
//! then it gives up, counts the failure and raises a `notification_failed`
//! alert to the fallback receiver.
//!
//! Within one integration, notifications about the same group go out in
//! the order they were written (a later one waits while an earlier one is
//! in flight or backing off), so a receiver never sees a group resolve
//! before it saw it fire; different groups do not wait for each other.
//!
//! Delivery is at least once: a crash between the receiver's acceptance
//! and the delete repeats that one notification after restart; nothing is
//! ever dropped silently.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::OutboxConfig;
use crate::db::Db;
use crate::metrics::NotifyMetrics;
use crate::notification::{Kind, Notification};
use crate::receiver::{Integration, Receivers};
use countywatch_daemon::clock::now_ms;
use countywatch_net::backoff::backoff;
use countywatch_net::send_error::SendError;

/// One stored notification.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Row id, increasing in write order.
    pub id: i64,
    /// The receiver's name.
    pub receiver: String,
    /// Index of the integration within the receiver.
    pub integration: usize,
    /// What to send.
    pub notification: Notification,
    /// When it was written.
    pub created_ms: i64,
    /// When to give up.
    pub deadline_ms: i64,
    /// Attempts so far.
    pub attempts: u32,
}

/// Writes a notification in the caller's transaction.
pub fn insert(
    connection: &Connection,
    integration: usize,
    notification: &Notification,
    now_ms: i64,
    deadline: Duration,
) -> rusqlite::Result<()> {
    let payload = serde_json::to_string(notification)
        .map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))?;
    let deadline_ms =
        now_ms.saturating_add(i64::try_from(deadline.as_millis()).unwrap_or(i64::MAX / 2));
    connection.execute(
        "INSERT INTO outbox (receiver, integration, group_key, payload, created_ms, deadline_ms, next_attempt_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?5)",
        params![
            notification.receiver,
            integration as i64,
            notification.group_key,
            payload,
            now_ms,
            deadline_ms
        ],
    )?;
    Ok(())
}

/// Notifications waiting, all receivers.
pub fn pending(connection: &Connection) -> rusqlite::Result<i64> {
    connection.query_row("SELECT COUNT(*) FROM outbox", [], |row| row.get(0))
}

/// What the delivery tasks share.
pub struct Delivery {
    /// `notify.db`.
    pub db: Db,
    /// Every integration by receiver name.
    pub receivers: Receivers,
    /// Backoff, deadline and fallback.
    pub config: OutboxConfig,
    /// Metrics.
    pub metrics: NotifyMetrics,
    /// Bumped after every write to the outbox, waking delivery tasks.
    pub wake: watch::Sender<u64>,
    /// Base URL for links in `notification_failed` notices.
    pub external_url: String,
}

impl Delivery {
    fn due(
        &self,
        receiver: &str,
        integration: usize,
        now: i64,
        busy: &HashSet<i64>,
        limit: usize,
    ) -> rusqlite::Result<Vec<Entry>> {
        let connection = self.db.lock();
        let mut statement = connection.prepare_cached(
            "SELECT id, payload, created_ms, deadline_ms, attempts FROM outbox
             WHERE receiver = ?1 AND integration = ?2 AND next_attempt_ms <= ?3
               AND NOT EXISTS (SELECT 1 FROM outbox AS earlier
                   WHERE earlier.receiver = outbox.receiver AND earlier.integration = outbox.integration
                     AND earlier.group_key = outbox.group_key AND earlier.id < outbox.id)
             ORDER BY id LIMIT ?4",
        )?;
        let rows = statement.query_map(
            params![
                receiver,
                integration as i64,
                now,
                (limit + busy.len()) as i64
            ],
            |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, i64>(4)?,
                ))
            },
        )?;
        let mut entries = Vec::new();
        let mut unreadable = Vec::new();
        for row in rows {
            let (id, payload, created_ms, deadline_ms, attempts) = row?;
            if busy.contains(&id) {
                continue;
            }
            match serde_json::from_str::<Notification>(&payload) {
                Ok(notification) => entries.push(Entry {
                    id,
                    receiver: receiver.to_string(),
                    integration,
                    notification,
                    created_ms,
                    deadline_ms,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                }),
                Err(_) => unreadable.push(id),
            }
            if entries.len() >= limit {
                break;
            }
        }
        drop(statement);
        for id in unreadable {
            // A row another version wrote and we cannot read cannot be sent.
            tracing::error!(id, receiver, "dropping an unreadable outbox entry");
            connection.execute("DELETE FROM outbox WHERE id = ?1", [id])?;
        }
        Ok(entries)
    }

    fn next_attempt(
        &self,
        receiver: &str,
        integration: usize,
        busy: &HashSet<i64>,
    ) -> rusqlite::Result<Option<i64>> {
        // In-flight rows have a next attempt in the past; skip them by
        // looking only at rows not being sent. Their number is small.
        let connection = self.db.lock();
        let mut statement = connection.prepare_cached(
            "SELECT id, next_attempt_ms FROM outbox WHERE receiver = ?1 AND integration = ?2
               AND NOT EXISTS (SELECT 1 FROM outbox AS earlier
                   WHERE earlier.receiver = outbox.receiver AND earlier.integration = outbox.integration
                     AND earlier.group_key = outbox.group_key AND earlier.id < outbox.id)
             ORDER BY next_attempt_ms LIMIT ?3",
        )?;
        let rows = statement.query_map(
            params![receiver, integration as i64, (busy.len() + 1) as i64],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)),
        )?;
        for row in rows {
            let (id, next) = row?;
            if !busy.contains(&id) {
                return Ok(Some(next));
            }
        }
        Ok(None)
    }

    fn delete(&self, id: i64) -> rusqlite::Result<()> {
        let connection = self.db.lock();
        connection.execute("DELETE FROM outbox WHERE id = ?1", [id])?;
        self.metrics.outbox_pending.set(pending(&connection)?);
        Ok(())
    }

    fn reschedule(&self, entry: &Entry, next_ms: i64, error: &str) -> rusqlite::Result<()> {
        self.db.lock().execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = ?2, last_error = ?3 WHERE id = ?1",
            params![entry.id, next_ms, error],
        )?;
        Ok(())
    }

    /// Gives up on an entry: deletes it, counts it, and tells the fallback
    /// receiver in the same transaction.
    fn give_up(&self, entry: &Entry, error: &SendError) -> rusqlite::Result<()> {
        let now = now_ms();
        self.metrics
            .failed
            .with_label_values(&[entry.receiver.as_str()])
            .inc();
        self.metrics
            .notifications
            .with_label_values(&[entry.receiver.as_str(), "failed"])
            .inc();
        tracing::error!(
            receiver = %entry.receiver,
            integration = entry.integration,
            attempts = entry.attempts + 1,
            group = %entry.notification.group_key,
            %error,
            "giving up on a notification"
        );
        let mut connection = self.db.lock();
        let transaction = connection.transaction()?;
        transaction.execute("DELETE FROM outbox WHERE id = ?1", [entry.id])?;
        let fallback = self
            .config
            .fallback_receiver
            .as_ref()
            .map(|name| name.value.as_str());
        // Never tell the failing receiver about itself, and never report a
        // failed failure report, so that this cannot loop.
        if let Some(fallback) = fallback
            && fallback != entry.receiver
            && entry.notification.kind != Kind::NotificationFailed
        {
            let integrations = self.receivers.get(fallback).map_or(0, Vec::len);
            let attempts = (entry.attempts + 1).to_string();
            let summary = format!(
                "A notification to receiver {} could not be delivered: {error}",
                entry.receiver
            );
            let notice = Notification::synthetic(
                Kind::NotificationFailed,
                fallback,
                &[
                    ("alertname", "notification_failed"),
                    ("severity", "critical"),
                    ("receiver", entry.receiver.as_str()),
                ],
                &[
                    ("summary", summary.as_str()),
                    ("group", entry.notification.group_key.as_str()),
                    ("attempts", attempts.as_str()),
                ],
                &self.external_url,
                now,
            );
            for index in 0..integrations {
                insert(
                    &transaction,
                    index,
                    &notice,
                    now,
                    self.config.deadline.get(),
                )?;
            }
        }
        transaction.commit()?;
        self.metrics.outbox_pending.set(pending(&connection)?);
        drop(connection);
        self.wake.send_modify(|version| *version += 1);
        Ok(())
    }
}

/// Delivers one integration's queue until `stop` turns true.
pub async fn deliver(
    delivery: Arc<Delivery>,
    receiver: String,
    index: usize,
    mut stop: watch::Receiver<bool>,
) {
    let Some(integration) = delivery
        .receivers
        .get(&receiver)
        .and_then(|list| list.get(index))
    else {
        return;
    };
    let kind = integration.kind();
    let mut wake = delivery.wake.subscribe();
    let mut busy: HashSet<i64> = HashSet::new();
    let mut sending: JoinSet<(Entry, Result<(), SendError>)> = JoinSet::new();
    let max_in_flight = delivery.config.max_in_flight.max(1);
    let mut storage_failing = false;
    loop {
        if *stop.borrow() {
            break;
        }
        wake.borrow_and_update();
        let now = now_ms();
        let mut next = None;
        if busy.len() < max_in_flight {
            match delivery.due(&receiver, index, now, &busy, max_in_flight - busy.len()) {
                Ok(entries) => {
                    storage_failing = false;
                    for entry in entries {
                        busy.insert(entry.id);
                        let delivery = Arc::clone(&delivery);
                        let receiver = receiver.clone();
                        sending.spawn(async move {
                            let result = match delivery
                                .receivers
                                .get(&receiver)
                                .and_then(|list| list.get(index))
                            {
                                Some(integration) => integration.send(&entry.notification).await,
                                None => Err(SendError::Permanent(
                                    "integration removed from the config".into(),
                                )),
                            };
                            (entry, result)
                        });
                    }
                }
                Err(error) => {
                    if !storage_failing {
                        tracing::error!(%error, receiver, "cannot read the outbox");
                    }
                    storage_failing = true;
                }
            }
            next = delivery
                .next_attempt(&receiver, index, &busy)
                .ok()
                .flatten();
        }
        let sleep_ms = next.map_or(1_000, |next| (next - now).clamp(0, 1_000));
        tokio::select! {
            changed = stop.changed() => {
                // A dropped sender means the collector is gone: stop too.
                if changed.is_err() {
                    break;
                }
            }
            _ = wake.changed() => {}
            () = tokio::time::sleep(Duration::from_millis(u64::try_from(sleep_ms).unwrap_or(1_000))) => {}
            Some(joined) = sending.join_next(), if !sending.is_empty() => {
                if let Ok((entry, result)) = joined {
                    busy.remove(&entry.id);
                    settle(&delivery, kind, entry, result);
                }
            }
        }
    }
    // Sends in flight are abandoned; their rows stay and go out after restart.
    sending.abort_all();
}

fn settle(delivery: &Delivery, kind: &str, entry: Entry, result: Result<(), SendError>) {
    let now = now_ms();
    let outcome = match result {
        Ok(()) => {
            delivery
                .metrics
                .notifications
                .with_label_values(&[entry.receiver.as_str(), "success"])
                .inc();
            delivery
                .metrics
                .latency
                .with_label_values(&[entry.receiver.as_str()])
                .observe((now - entry.created_ms).max(0) as f64 / 1000.0);
            if entry.attempts > 0 {
                tracing::info!(receiver = %entry.receiver, integration = kind, attempts = entry.attempts + 1, "notification delivered after retries");
            }
            delivery.delete(entry.id)
        }
        Err(error) if error.retryable() && now < entry.deadline_ms => {
            delivery
                .metrics
                .notifications
                .with_label_values(&[entry.receiver.as_str(), "retry"])
                .inc();
            let wait = backoff(
                entry.attempts + 1,
                delivery.config.initial_backoff.get(),
                delivery.config.max_backoff.get(),
            );
            let next = (now + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 4))
                .min(entry.deadline_ms.max(now));
            // The first failure is a warning; repeats are debug, so that a
            // receiver down for an hour does not flood the log.
            if entry.attempts == 0 {
                tracing::warn!(receiver = %entry.receiver, integration = kind, %error, "notification failed, will retry");
            } else {
                tracing::debug!(receiver = %entry.receiver, integration = kind, %error, attempts = entry.attempts + 1, "notification failed again");
            }
            delivery.reschedule(&entry, next, &error.to_string())
        }
        Err(error) => delivery.give_up(&entry, &error),
    };
    if let Err(error) = outcome {
        tracing::error!(%error, "cannot update the outbox");
    }
}

/// The oldest entry's age in milliseconds, for `notify test` and tests.
pub fn oldest_ms(connection: &Connection) -> rusqlite::Result<Option<i64>> {
    connection
        .query_row("SELECT MIN(created_ms) FROM outbox", [], |row| {
            row.get::<_, Option<i64>>(0)
        })
        .optional()
        .map(Option::flatten)
}

/// Whether an integration wants a notification: resolved-only ones only
/// when it sends resolved notices; notices and tests always.
pub fn wants(integration: &dyn Integration, notification: &Notification) -> bool {
    notification.kind != Kind::Alerts
        || notification.status() == "firing"
        || integration.send_resolved()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::receiver::SendFuture;

    /// An integration that answers from a script and records what it got.
    struct Scripted {
        answers: Mutex<Vec<Result<(), SendError>>>,
        received: Received,
    }

    impl Integration for Scripted {
        fn kind(&self) -> &'static str {
            "scripted"
        }
        fn send_resolved(&self) -> bool {
            true
        }
        fn send<'a>(&'a self, notification: &'a Notification) -> SendFuture<'a> {
            Box::pin(async move {
                self.received.lock().unwrap().push(notification.clone());
                let mut answers = self.answers.lock().unwrap();
                if answers.is_empty() {
                    Ok(())
                } else {
                    answers.remove(0)
                }
            })
        }
    }

    /// What a scripted integration received.
    type Received = Arc<Mutex<Vec<Notification>>>;

    fn delivery(
        dir: &std::path::Path,
        scripts: Vec<(&str, Vec<Result<(), SendError>>)>,
        deadline: Duration,
    ) -> (Arc<Delivery>, Vec<Received>) {
        let mut receivers = Receivers::new();
        let mut logs = Vec::new();
        for (name, answers) in scripts {
            let received = Arc::new(Mutex::new(Vec::new()));
            logs.push(Arc::clone(&received));
            let integration: Box<dyn Integration> = Box::new(Scripted {
                answers: Mutex::new(answers),
                received,
            });
            receivers.insert(name.to_string(), vec![integration]);
        }
        let config = OutboxConfig {
            initial_backoff: Duration::from_millis(10).into(),
            max_backoff: Duration::from_millis(20).into(),
            deadline: deadline.into(),
            fallback_receiver: Some(countywatch_config::config_file::unspanned(
                "fallback".to_string(),
            )),
            ..OutboxConfig::default()
        };
        let names: Vec<String> = receivers.keys().cloned().collect();
        let (wake, _) = watch::channel(0);
        let delivery = Delivery {
            db: Db::open(dir).unwrap(),
            receivers,
            config,
            metrics: NotifyMetrics::new(None, &names).unwrap(),
            wake,
            external_url: String::new(),
        };
        (Arc::new(delivery), logs)
    }

    fn enqueue(delivery: &Delivery, receiver: &str, deadline: Duration) {
        let notification = Notification::synthetic(
            Kind::Alerts,
            receiver,
            &[("alertname", "A")],
            &[],
            "",
            now_ms(),
        );
        insert(&delivery.db.lock(), 0, &notification, now_ms(), deadline).unwrap();
    }

    async fn drain(delivery: &Arc<Delivery>, receivers: &[&str]) {
        let (stop, stopped) = watch::channel(false);
        let tasks: Vec<_> = receivers
            .iter()
            .map(|name| {
                tokio::spawn(deliver(
                    Arc::clone(delivery),
                    name.to_string(),
                    0,
                    stopped.clone(),
                ))
            })
            .collect();
        for _ in 0..200 {
            if pending(&delivery.db.lock()).unwrap() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = stop.send(true);
        for task in tasks {
            let _ = task.await;
        }
    }

    #[tokio::test]
    async fn retries_then_delivers_once() {
        let dir = tempfile::tempdir().unwrap();
        let retry = || Err(SendError::Retryable("down".into()));
        let (delivery, logs) = delivery(
            dir.path(),
            vec![("mail", vec![retry(), retry()])],
            Duration::from_secs(60),
        );
        enqueue(&delivery, "mail", Duration::from_secs(60));
        drain(&delivery, &["mail"]).await;
        assert_eq!(pending(&delivery.db.lock()).unwrap(), 0);
        assert_eq!(logs[0].lock().unwrap().len(), 3);
        let counted = |status: &str| {
            delivery
                .metrics
                .notifications
                .with_label_values(&["mail", status])
                .get()
        };
        assert_eq!(
            (counted("retry"), counted("success"), counted("failed")),
            (2, 1, 0)
        );
    }

    #[tokio::test]
    async fn a_permanent_refusal_is_given_up_and_reported_to_the_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let (delivery, logs) = delivery(
            dir.path(),
            vec![
                (
                    "mail",
                    vec![Err(SendError::Permanent("550 no such user".into()))],
                ),
                ("fallback", vec![]),
            ],
            Duration::from_secs(60),
        );
        enqueue(&delivery, "mail", Duration::from_secs(60));
        drain(&delivery, &["mail", "fallback"]).await;
        assert_eq!(logs[0].lock().unwrap().len(), 1, "never retried");
        let reports = logs[1].lock().unwrap().clone();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].kind, Kind::NotificationFailed);
        assert_eq!(reports[0].alerts[0].labels["receiver"], "mail");
        assert!(reports[0].alerts[0].annotations["summary"].contains("550 no such user"));
        assert_eq!(
            delivery.metrics.failed.with_label_values(&["mail"]).get(),
            1
        );
    }

    #[tokio::test]
    async fn one_groups_notifications_keep_their_order_through_retries() {
        let dir = tempfile::tempdir().unwrap();
        let retry = || Err(SendError::Retryable("down".into()));
        let (delivery, logs) = delivery(
            dir.path(),
            vec![("mail", vec![retry(), retry(), retry()])],
            Duration::from_secs(60),
        );
        let mut firing = Notification::synthetic(
            Kind::Alerts,
            "mail",
            &[("alertname", "A")],
            &[],
            "",
            now_ms(),
        );
        let mut resolved = firing.clone();
        resolved.alerts[0].status = "resolved".into();
        let other = Notification::synthetic(
            Kind::Alerts,
            "mail",
            &[("alertname", "B")],
            &[],
            "",
            now_ms(),
        );
        firing.group_key = "g".into();
        resolved.group_key = "g".into();
        for notification in [&firing, &resolved, &other] {
            insert(
                &delivery.db.lock(),
                0,
                notification,
                now_ms(),
                Duration::from_secs(60),
            )
            .unwrap();
        }
        drain(&delivery, &["mail"]).await;
        let received = logs[0].lock().unwrap().clone();
        let statuses: Vec<(String, String)> = received
            .iter()
            .filter(|notification| notification.group_key == "g")
            .map(|notification| {
                (
                    notification.group_key.clone(),
                    notification.alerts[0].status.clone(),
                )
            })
            .collect();
        let first_resolved = statuses
            .iter()
            .position(|(_, status)| status == "resolved")
            .unwrap();
        assert!(
            statuses[..first_resolved]
                .iter()
                .all(|(_, status)| status == "firing")
        );
        assert_eq!(statuses.last().unwrap().1, "resolved");
        assert_eq!(
            statuses
                .iter()
                .filter(|(_, status)| status == "resolved")
                .count(),
            1,
            "{statuses:?}"
        );
    }

    #[tokio::test]
    async fn retryable_failures_stop_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let answers = (0..1000)
            .map(|_| Err(SendError::Retryable("down".into())))
            .collect();
        let (delivery, _) = delivery(
            dir.path(),
            vec![("mail", answers), ("fallback", vec![])],
            Duration::from_millis(100),
        );
        enqueue(&delivery, "mail", Duration::from_millis(100));
        drain(&delivery, &["mail", "fallback"]).await;
        assert_eq!(pending(&delivery.db.lock()).unwrap(), 0);
        assert_eq!(
            delivery.metrics.failed.with_label_values(&["mail"]).get(),
            1
        );
        assert!(
            delivery
                .metrics
                .notifications
                .with_label_values(&["mail", "retry"])
                .get()
                >= 2
        );
    }
}
