//! Notifications: from alerts to people, grouped, deduplicated,
//! silenceable and never lost.
//!
//! - [`alert`]: the input type both producers submit, and its fingerprint.
//! - [`matcher`]: label matchers (`=`, `!=`, `=~`, `!~`, anchored regexes).
//! - [`config`]: the `notify:` config section (Alertmanager's shape).
//! - [`route_tree`]: the routing tree.
//! - [`dispatch`]: grouping and the decision to notify (a pure state machine).
//! - [`inhibit`]: inhibition rules.
//! - [`silence`]: silences, persisted.
//! - [`time_interval`]: `mute_time_intervals` and `active_time_intervals`.
//! - [`notification`]: what is stored and sent for one group and receiver.
//! - [`redaction`]: `<secret>` in the configuration text the API shows.
//! - [`template`]: mustache-style templates, defaults in English and Chinese.
//! - [`go_template`]: the Go-template subset of `alertmanager.yml` files.
//! - [`outbox`]: the persistent outbox and the delivery tasks.
//! - [`receiver`]: email, webhook, DingTalk, WeCom, Feishu, Alertmanager.
//! - [`http_client`]: the HTTP client the HTTP receivers share.
//! - [`db`]: the SQLite file `notify.db` in the data directory.
//! - [`display`]: the time zone and language people read; the collector's
//!   pages, report and CLI use it too.
//! - [`api`]: `/api/v2/alerts` and `/api/v2/silences` (Alertmanager's API).
//! - [`cli`]: `silence add|list|expire` and `notify test`.
//! - [`metrics`]: `countywatch_notifications_total` and friends.
//!
//! The entry point is [`Notifier::submit`]: producers hand it alerts; a
//! dispatcher task groups them and writes notifications to the outbox; one
//! delivery task per integration sends them.
//!
//! **Architecture Invariant:** a notification exists in the outbox before
//! any attempt to send it, and leaves it only when its receiver accepted it
//! or after its deadline, counted and reported to the fallback receiver.
//!
//! **Architecture Invariant:** the crate knows nothing of the collector:
//! alerts come in through [`Notifier::submit`], the collector's router
//! calls [`api`], and the collector reads its own config file's `notify:`.

// The collector never panics on purpose outside tests (clippy.toml allows
// it in tests); unwrap and expect are denied workspace-wide.
#![deny(clippy::panic, clippy::todo, clippy::unimplemented)]

pub mod alert;
pub mod alertmanager_file;
pub mod api;
pub mod cli;
pub mod config;
pub mod db;
pub mod dispatch;
pub mod display;
pub mod go_regex;
pub mod go_template;
pub mod http_client;
pub mod inhibit;
pub mod matcher;
pub mod metrics;
pub mod notification;
pub mod outbox;
pub mod receiver;
pub mod redaction;
pub mod route_tree;
pub mod silence;
pub mod template;
pub mod time_interval;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rusqlite::params;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::alert::{Alert, Fingerprint};
use crate::config::NotifyConfig;
use crate::db::Db;
use crate::dispatch::{Dispatcher, Flushed, IntegrationPolicy, NflogEntry, NflogKey, Settings};
use crate::metrics::NotifyMetrics;
use crate::notification::{Kind, Notification};
use crate::outbox::Delivery;
use crate::silence::{Notice, SilenceStore};
use countywatch_daemon::clock::now_ms;

/// Alert batches queued between producers and the dispatcher; a full
/// queue makes `submit` wait, which slows producers instead of growing memory.
const QUEUE_BATCHES: usize = 1024;

/// What the dispatcher task is handed: alerts, or a reloaded configuration.
enum Input {
    /// A producer's batch.
    Alerts(Vec<Alert>),
    /// A reloaded configuration (boxed: it is large and rare).
    Reconfigure(Box<Reconfigured>),
}

/// A reloaded configuration, as the dispatcher task needs it.
struct Reconfigured {
    /// The route tree.
    root: route_tree::Route,
    /// The named time intervals.
    intervals: time_interval::TimeIntervals,
    /// The inhibit rules.
    inhibitor: inhibit::Inhibitor,
    /// Everything else the dispatcher reads.
    settings: Settings,
    /// The receivers, for writing the outbox.
    delivery: Arc<Delivery>,
    /// Where silence notices go.
    notices_to: Option<String>,
}

/// The parts of the configuration the API shows, replaced as a whole on
/// a reload.
pub struct Shown {
    /// The configuration as Alertmanager configuration text, for
    /// `GET /api/v2/status` (amtool reads routes from it).
    pub config_original: String,
    /// The route tree, for `receivers` in `GET /api/v2/alerts`.
    pub routes: route_tree::Route,
    /// The inhibit rules, for `inhibitedBy` there.
    pub inhibitor: inhibit::Inhibitor,
}

/// The notification subsystem as producers and the API see it.
pub struct Notifier {
    /// Alert batches (and reloads) to the dispatcher task.
    sender: mpsc::Sender<Input>,
    /// Silences (the API reads and writes them).
    silences: Arc<SilenceStore>,
    /// Whether `POST /api/v2/alerts` is served.
    pub accept_alerts_api: bool,
    /// Whether silences may be changed through the API.
    pub accept_silences_api: bool,
    /// The latest submission of every alert not yet resolved, for
    /// `GET /api/v2/alerts`, with whether a detection raised it. Bounded
    /// like the dispatcher: an alert leaves when it resolves or its lease
    /// runs out.
    active: std::sync::Mutex<HashMap<Fingerprint, (Alert, Origin)>>,
    /// What the API shows of the configuration; a reload swaps it. A std
    /// lock: it is held only to clone the `Arc`, never across an await.
    shown: std::sync::RwLock<Arc<Shown>>,
    /// When the notifier started, Unix milliseconds (`uptime` there).
    pub started_ms: i64,
    /// `notify.db`, for the notification log the alert page reads.
    db: Db,
    /// The receivers the delivery tasks serve; a reload sends new ones and
    /// the supervising task restarts the delivery tasks on them.
    deliveries: watch::Sender<Arc<Delivery>>,
    /// The metrics, kept for reloads (new receivers' series, the reload
    /// gauges).
    metrics: NotifyMetrics,
}

/// Most alerts `GET /api/v2/alerts` keeps; beyond this, new fingerprints
/// are not listed (they are still notified).
const MAX_LISTED_ALERTS: usize = 100_000;

/// Who raised an alert, for who may read it (`http.open_alerts_read`
/// opens alerting-rule alerts only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// An alerting rule, the collector's or a Prometheus posting to the API.
    AlertingRule,
    /// A detection rule: its labels carry user names, addresses and hosts.
    Detection,
}

/// The dispatcher has stopped (the collector is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the notifier has stopped")]
pub struct Stopped;

impl Notifier {
    /// Hands alerts to the notifier. Producers call this on every
    /// evaluation with their firing alerts (and once with `ends_at` set when
    /// an alert resolves). Waits only when the queue is full.
    pub async fn submit(&self, alerts: Vec<Alert>) -> Result<(), Stopped> {
        self.submit_from(Origin::AlertingRule, alerts).await
    }

    /// [`Notifier::submit`] for alerts of the given origin.
    pub async fn submit_from(&self, origin: Origin, mut alerts: Vec<Alert>) -> Result<(), Stopped> {
        // An empty label value is an absent label, as in Alertmanager and
        // Prometheus: drop it so that it changes no group or fingerprint.
        for alert in &mut alerts {
            alert.labels.retain(|_, value| !value.is_empty());
        }
        alerts.retain(|alert| !alert.labels.is_empty());
        if alerts.is_empty() {
            return Ok(());
        }
        self.note_active(&alerts, origin);
        self.sender
            .send(Input::Alerts(alerts))
            .await
            .map_err(|_| Stopped)
    }

    /// What the API shows of the configuration now.
    pub fn shown(&self) -> Arc<Shown> {
        Arc::clone(
            &self
                .shown
                .read()
                .unwrap_or_else(|poison| poison.into_inner()),
        )
    }

    /// Applies a reloaded notification configuration (routes, receivers,
    /// inhibit rules, time intervals, templates) without losing alerts,
    /// silences or the notification log. Receivers are built first, so a
    /// receiver that cannot be built (a missing secret file, say) changes
    /// nothing. The outbox, the API switches and the data directory keep
    /// their values from the start.
    pub async fn reconfigure(&self, config: &NotifyConfig) -> anyhow::Result<()> {
        let receivers = config.build_receivers()?;
        let names: Vec<String> = receivers.keys().cloned().collect();
        self.metrics.add_receivers(&names);
        let settings = settings(config, &receivers);
        let old = Arc::clone(&self.deliveries.borrow());
        let delivery = Arc::new(Delivery {
            db: self.db.clone(),
            receivers,
            config: old.config.clone(),
            metrics: self.metrics.clone(),
            wake: watch::channel(0u64).0,
            external_url: config.external_url.clone(),
        });
        self.sender
            .send(Input::Reconfigure(Box::new(Reconfigured {
                root: route_tree::Route::build(&config.route),
                intervals: time_interval::TimeIntervals::build(&config.time_intervals),
                inhibitor: inhibit::Inhibitor::new(&config.inhibit_rules),
                settings,
                delivery: Arc::clone(&delivery),
                notices_to: notices_to(config),
            })))
            .await
            .map_err(|_| Stopped)?;
        self.deliveries.send_replace(delivery);
        *self
            .shown
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = Arc::new(shown(config));
        Ok(())
    }

    /// Sets `countywatch_notify_config_last_reload_successful` and, on
    /// success, its timestamp companion.
    pub fn note_reload(&self, successful: bool) {
        self.metrics.note_reload(successful);
    }

    /// Keeps the latest state of each submitted alert for the API.
    fn note_active(&self, alerts: &[Alert], origin: Origin) {
        let now = now_ms();
        let mut active = self
            .active
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        for alert in alerts {
            let fingerprint = alert.fingerprint();
            if alert.resolved_at(now) {
                active.remove(&fingerprint);
            } else if active.len() < MAX_LISTED_ALERTS || active.contains_key(&fingerprint) {
                active.insert(fingerprint, (alert.clone(), origin));
            }
        }
    }

    /// The alerts firing now (resolved ones and expired leases left out),
    /// sorted by fingerprint.
    pub fn active_alerts(&self) -> Vec<Alert> {
        self.active_alerts_from(None)
    }

    /// [`Notifier::active_alerts`] of one origin only, or of all.
    pub fn active_alerts_from(&self, origin: Option<Origin>) -> Vec<Alert> {
        let active = self.firing();
        // Sorted by the map's keys: `Alert::fingerprint` hashes the labels
        // again at every comparison, a second for 60,000 alerts.
        let mut alerts: Vec<(Fingerprint, Alert)> = active
            .iter()
            .filter(|(_, (_, from))| origin.is_none_or(|origin| origin == *from))
            .map(|(fingerprint, (alert, _))| (*fingerprint, alert.clone()))
            .collect();
        alerts.sort_unstable_by_key(|(fingerprint, _)| *fingerprint);
        alerts.into_iter().map(|(_, alert)| alert).collect()
    }

    /// The alerts kept for the API, resolved ones and expired leases
    /// dropped first.
    fn firing(&self) -> std::sync::MutexGuard<'_, HashMap<Fingerprint, (Alert, Origin)>> {
        let now = now_ms();
        let mut active = self
            .active
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        active.retain(|_, (alert, _)| !alert.resolved_at(now));
        active
    }

    /// How many alerts fire now, and the first `limit` of them by
    /// fingerprint (the overview's panel), without copying the others.
    pub fn active_alerts_first(&self, limit: usize) -> (usize, Vec<Alert>) {
        let active = self.firing();
        let mut fingerprints: Vec<Fingerprint> = active.keys().copied().collect();
        fingerprints.sort_unstable();
        let first = fingerprints
            .iter()
            .take(limit)
            .filter_map(|fingerprint| active.get(fingerprint).map(|(alert, _)| alert.clone()))
            .collect();
        (fingerprints.len(), first)
    }

    /// The silences.
    pub fn silences(&self) -> &SilenceStore {
        &self.silences
    }

    /// The receivers last told that `fingerprint` is firing, with when,
    /// newest first. The notification log keeps one entry per group and
    /// receiver (the latest notification, as Alertmanager's does) and
    /// forgets it when the group resolves, so this is not a full history.
    pub fn last_notified(&self, fingerprint: Fingerprint) -> anyhow::Result<Vec<(String, i64)>> {
        let mut latest: HashMap<String, i64> = HashMap::new();
        for ((_, receiver, _), entry) in load_nflog(&self.db)? {
            if entry.firing.contains(&fingerprint) {
                let sent = latest.entry(receiver).or_insert(entry.sent_ms);
                *sent = (*sent).max(entry.sent_ms);
            }
        }
        let mut notified: Vec<(String, i64)> = latest.into_iter().collect();
        notified.sort_by(|left, right| right.1.cmp(&left.1).then_with(|| left.0.cmp(&right.0)));
        Ok(notified)
    }
}

/// A started notifier and its tasks.
pub struct Started {
    /// Where producers submit alerts.
    pub notifier: Arc<Notifier>,
    /// The dispatcher and delivery tasks; they end when `stop` turns true.
    pub tasks: Vec<JoinHandle<()>>,
}

/// Opens `notify.db`, builds the receivers and starts the dispatcher and
/// one delivery task per integration.
pub fn start(
    config: &NotifyConfig,
    data_dir: &Path,
    registry: Option<&prometheus::Registry>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Started> {
    let db = Db::open(data_dir)?;
    let silences = Arc::new(SilenceStore::open(db.clone()).context("cannot load silences")?);
    let receivers = config.build_receivers()?;
    if receivers.is_empty() {
        tracing::info!("notify has no receivers: alerts are grouped but sent nowhere");
    }
    let names: Vec<String> = receivers.keys().cloned().collect();
    let metrics =
        NotifyMetrics::new(registry, &names).context("cannot register notification metrics")?;
    let nflog = load_nflog(&db).context("cannot load the notification log")?;
    let now = now_ms();
    let dispatcher = Dispatcher::new(
        route_tree::Route::build(&config.route),
        time_interval::TimeIntervals::build(&config.time_intervals),
        inhibit::Inhibitor::new(&config.inhibit_rules),
        settings(config, &receivers),
        nflog,
        now,
    );
    metrics.outbox_pending.set(outbox::pending(&db.lock())?);
    let (wake, _) = watch::channel(0u64);
    let delivery = Arc::new(Delivery {
        db: db.clone(),
        receivers,
        config: config.outbox.clone(),
        metrics: metrics.clone(),
        wake,
        external_url: config.external_url.clone(),
    });
    let (sender, queue) = mpsc::channel(QUEUE_BATCHES);
    let (deliveries, delivering) = watch::channel(Arc::clone(&delivery));
    let tasks = vec![
        tokio::spawn(supervise_delivery(delivering, stop.clone())),
        tokio::spawn(run_dispatcher(
            dispatcher,
            queue,
            delivery,
            Arc::clone(&silences),
            notices_to(config),
            stop,
        )),
    ];
    metrics.note_reload(true);
    Ok(Started {
        notifier: Arc::new(Notifier {
            sender,
            silences,
            accept_alerts_api: config.accept_alerts_api,
            accept_silences_api: config.accept_silences_api,
            active: std::sync::Mutex::new(HashMap::new()),
            shown: std::sync::RwLock::new(Arc::new(shown(config))),
            started_ms: now_ms(),
            db,
            deliveries,
            metrics,
        }),
        tasks,
    })
}

/// What the dispatcher needs beyond the route tree.
fn settings(config: &NotifyConfig, receivers: &receiver::Receivers) -> Settings {
    let integrations: BTreeMap<String, Vec<IntegrationPolicy>> = receivers
        .iter()
        .map(|(name, list)| {
            (
                name.clone(),
                list.iter()
                    .map(|integration| IntegrationPolicy {
                        send_resolved: integration.send_resolved(),
                        resend_ms: integration.resend_interval().map(millis),
                    })
                    .collect(),
            )
        })
        .collect();
    Settings {
        integrations,
        resolve_timeout_ms: millis(config.resolve_timeout.get()),
        flap: config
            .flap_detection
            .as_ref()
            .map(|flap| (millis(flap.window.get()), flap.max_changes as usize)),
        heartbeat: config
            .heartbeat
            .as_ref()
            .map(|heartbeat| (heartbeat.matchers.clone(), millis(heartbeat.timeout.get()))),
        external_url: config.external_url.clone(),
    }
}

/// The receiver silence notices go to, if any.
fn notices_to(config: &NotifyConfig) -> Option<String> {
    config
        .silence_notifications
        .as_ref()
        .map(|notices| notices.receiver.value.clone())
}

fn shown(config: &NotifyConfig) -> Shown {
    Shown {
        config_original: alertmanager_file::original_text(config),
        routes: route_tree::Route::build(&config.route),
        inhibitor: inhibit::Inhibitor::new(&config.inhibit_rules),
    }
}

/// Runs one delivery task per integration of the current receivers; when
/// a reload brings new ones, stops the old tasks (a send in flight is
/// abandoned, and its row goes out again from the new task) and starts
/// new ones. Ends when `stop` turns true.
async fn supervise_delivery(
    mut deliveries: watch::Receiver<Arc<Delivery>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let delivery = Arc::clone(&deliveries.borrow_and_update());
        let (generation_stop, generation_stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        for (name, list) in &delivery.receivers {
            for index in 0..list.len() {
                tasks.push(tokio::spawn(outbox::deliver(
                    Arc::clone(&delivery),
                    name.clone(),
                    index,
                    generation_stopped.clone(),
                )));
            }
        }
        let stopping = tokio::select! {
            changed = deliveries.changed() => changed.is_err(),
            _ = stop.changed() => true,
        };
        let _ = generation_stop.send(true);
        for task in tasks {
            let _ = task.await;
        }
        if stopping || *stop.borrow() {
            break;
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 4)
}

async fn run_dispatcher(
    mut dispatcher: Dispatcher,
    mut queue: mpsc::Receiver<Input>,
    mut delivery: Arc<Delivery>,
    silences: Arc<SilenceStore>,
    mut notices_to: Option<String>,
    mut stop: watch::Receiver<bool>,
) {
    let mut next_housekeeping = 0;
    loop {
        let now = now_ms();
        if now >= next_housekeeping {
            housekeeping(
                &mut dispatcher,
                &delivery,
                &silences,
                notices_to.as_deref(),
                now,
            );
            next_housekeeping = now + 1_000;
        }
        let flushed =
            dispatcher.flush_due(now, &|labels| !silences.silencing(labels, now).is_empty());
        if !flushed.outgoing.is_empty() || !flushed.nflog.is_empty() {
            write_flushed(&delivery, &flushed, now);
        }
        let wake_at = dispatcher
            .next_flush_ms()
            .map_or(next_housekeeping, |at| at.min(next_housekeeping));
        let sleep_ms = u64::try_from((wake_at - now_ms()).clamp(0, 1_000)).unwrap_or(1_000);
        tokio::select! {
            input = queue.recv() => {
                let Some(input) = input else {
                    break;
                };
                let now = now_ms();
                // Take whatever else is queued before flushing, so that a
                // burst is grouped in one pass.
                let mut next = Some(input);
                while let Some(input) = next {
                    match input {
                        Input::Alerts(alerts) => dispatcher.submit(alerts, now),
                        Input::Reconfigure(reconfigured) => {
                            let Reconfigured { root, intervals, inhibitor, settings, delivery: reloaded, notices_to: notices } = *reconfigured;
                            dispatcher.reconfigure(root, intervals, inhibitor, settings, now);
                            delivery = reloaded;
                            notices_to = notices;
                        }
                    }
                    next = queue.try_recv().ok();
                }
            }
            () = tokio::time::sleep(Duration::from_millis(sleep_ms)) => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
    }
}

/// Writes a flush's notifications and notification-log changes in one
/// transaction, then wakes the delivery tasks.
fn write_flushed(delivery: &Delivery, flushed: &Flushed, now: i64) {
    let result = (|| -> rusqlite::Result<i64> {
        let mut connection = delivery.db.lock();
        let transaction = connection.transaction()?;
        for outgoing in &flushed.outgoing {
            let wanted = delivery
                .receivers
                .get(&outgoing.notification.receiver)
                .and_then(|list| list.get(outgoing.integration))
                .is_some_and(|integration| {
                    outbox::wants(integration.as_ref(), &outgoing.notification)
                });
            if wanted {
                outbox::insert(
                    &transaction,
                    outgoing.integration,
                    &outgoing.notification,
                    now,
                    delivery.config.deadline.get(),
                )?;
            }
        }
        for ((group, receiver, integration), entry) in &flushed.nflog {
            let receiver_key = format!("{receiver}/{integration}");
            match entry {
                Some(entry) => {
                    let firing: Vec<u64> = entry
                        .firing
                        .iter()
                        .map(|fingerprint| fingerprint.0)
                        .collect();
                    transaction.execute(
                        "INSERT OR REPLACE INTO nflog (group_key, receiver, firing, resolved, sent_ms) VALUES (?1, ?2, ?3, '[]', ?4)",
                        params![group, receiver_key, serde_json::to_string(&firing).unwrap_or_default(), entry.sent_ms],
                    )?;
                }
                None => {
                    transaction.execute(
                        "DELETE FROM nflog WHERE group_key = ?1 AND receiver = ?2",
                        params![group, receiver_key],
                    )?;
                }
            }
        }
        transaction.commit()?;
        outbox::pending(&connection)
    })();
    match result {
        Ok(pending) => {
            delivery.metrics.outbox_pending.set(pending);
            delivery.wake.send_modify(|version| *version += 1);
        }
        // The database refused the write (disk full, say): these
        // notifications cannot be kept. Count each as failed, so that the
        // loss shows in countywatch_notifications_failed_total, and say so.
        // The in-memory log already counts them as sent, so they are not
        // repeated before repeat_interval.
        Err(error) => {
            for outgoing in &flushed.outgoing {
                delivery
                    .metrics
                    .failed
                    .with_label_values(&[outgoing.notification.receiver.as_str()])
                    .inc();
            }
            tracing::error!(%error, lost = flushed.outgoing.len(), "cannot write notifications to the outbox");
        }
    }
}

fn load_nflog(db: &Db) -> rusqlite::Result<HashMap<NflogKey, NflogEntry>> {
    let connection = db.lock();
    let mut statement =
        connection.prepare("SELECT group_key, receiver, firing, sent_ms FROM nflog")?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, i64>(3)?,
        ))
    })?;
    let mut log = HashMap::new();
    for row in rows {
        let (group, receiver_key, firing, sent_ms) = row?;
        let Some((receiver, integration)) = receiver_key.rsplit_once('/') else {
            continue;
        };
        let Ok(integration) = integration.parse::<usize>() else {
            continue;
        };
        let firing: Vec<u64> = serde_json::from_str(&firing).unwrap_or_default();
        log.insert(
            (group, receiver.to_string(), integration),
            NflogEntry {
                firing: firing.into_iter().map(Fingerprint).collect(),
                sent_ms,
            },
        );
    }
    Ok(log)
}

fn housekeeping(
    dispatcher: &mut Dispatcher,
    delivery: &Delivery,
    silences: &SilenceStore,
    notices_to: Option<&str>,
    now: i64,
) {
    if let Err(error) = silences.refresh() {
        tracing::error!(%error, "cannot reload silences");
    }
    match silences.owed_notices(now) {
        Ok(owed) if !owed.is_empty() => {
            if let Err(error) = give_notices(delivery, &owed, notices_to, now) {
                tracing::error!(%error, "cannot record silence notices");
            } else {
                delivery.wake.send_modify(|version| *version += 1);
            }
        }
        Ok(_) => {}
        Err(error) => tracing::error!(%error, "cannot read silences"),
    }
    if let Err(error) = silences.collect_garbage(now) {
        tracing::error!(%error, "cannot delete old silences");
    }
    dispatcher.housekeeping(now);
    let counts = dispatcher.counts(now, &|labels| !silences.silencing(labels, now).is_empty());
    let metrics = &delivery.metrics;
    metrics
        .alerts
        .with_label_values(&["active"])
        .set(counts.active as i64);
    metrics
        .alerts
        .with_label_values(&["suppressed"])
        .set(counts.suppressed as i64);
    metrics
        .alerts
        .with_label_values(&["resolved"])
        .set(counts.resolved as i64);
    for (state, count) in silences.counts(now) {
        metrics
            .silences
            .with_label_values(&[state.as_str()])
            .set(count as i64);
    }
}

fn give_notices(
    delivery: &Delivery,
    owed: &[(silence::Silence, Notice)],
    notices_to: Option<&str>,
    now: i64,
) -> rusqlite::Result<()> {
    let mut connection = delivery.db.lock();
    let transaction = connection.transaction()?;
    for (silence, notice) in owed {
        if let Some(receiver) = notices_to {
            let (kind, name, verb) = match notice {
                Notice::Created => (Kind::SilenceCreated, "SilenceCreated", "created"),
                Notice::Expired => (Kind::SilenceExpired, "SilenceExpired", "expired"),
            };
            let matchers = silence
                .matchers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            let summary = format!(
                "Silence {} {verb}: {{{matchers}}} by {}: {}",
                silence.id, silence.created_by, silence.comment
            );
            let starts = alert::rfc3339(silence.starts_at_ms);
            let ends = alert::rfc3339(silence.ends_at_ms);
            let notification = Notification::synthetic(
                kind,
                receiver,
                &[("alertname", name), ("silence_id", silence.id.as_str())],
                &[
                    ("summary", summary.as_str()),
                    ("matchers", matchers.as_str()),
                    ("created_by", silence.created_by.as_str()),
                    ("comment", silence.comment.as_str()),
                    ("starts_at", starts.as_str()),
                    ("ends_at", ends.as_str()),
                ],
                &delivery.external_url,
                now,
            );
            let integrations = delivery.receivers.get(receiver).map_or(0, Vec::len);
            for index in 0..integrations {
                outbox::insert(
                    &transaction,
                    index,
                    &notification,
                    now,
                    delivery.config.deadline.get(),
                )?;
            }
        }
        SilenceStore::mark_noticed(&transaction, &silence.id, *notice)?;
    }
    transaction.commit()?;
    delivery
        .metrics
        .outbox_pending
        .set(outbox::pending(&connection)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::LabelSet;

    #[tokio::test]
    async fn the_firing_alerts_are_listed_by_fingerprint_and_the_first_few_counted_apart() {
        let dir = tempfile::tempdir().unwrap();
        let (_stop, stopped) = watch::channel(false);
        let started = start(&NotifyConfig::default(), dir.path(), None, stopped).unwrap();
        let alerts: Vec<Alert> = (0..50)
            .map(|index| Alert {
                labels: LabelSet::from([("alertname".to_string(), format!("rule_{index}"))]),
                annotations: LabelSet::new(),
                starts_at_ms: now_ms(),
                ends_at_ms: None,
                generator_url: String::new(),
                value: None,
            })
            .collect();
        started.notifier.submit(alerts).await.unwrap();
        let listed = started.notifier.active_alerts();
        let fingerprints: Vec<Fingerprint> = listed.iter().map(Alert::fingerprint).collect();
        let mut sorted = fingerprints.clone();
        sorted.sort_unstable();
        assert_eq!((listed.len(), &fingerprints), (50, &sorted));
        let (count, first) = started.notifier.active_alerts_first(5);
        assert_eq!((count, first.as_slice()), (50, &listed[..5]));
    }
}
