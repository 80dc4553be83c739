//! The collector's durable state in SQLite (`<data_dir>/collector.db`, WAL):
//! enrolment tokens, enrolled agents with their certificate and last
//! acknowledged sequence number, and every security event accepted.
//!
//! Accepting a batch's events and raising the agent's sequence number happen
//! in one transaction, so a batch is stored exactly once even when an agent
//! retries it after a lost acknowledgement, or the collector dies mid-way.
//! The schema is versioned in code; [`Registry::open`] migrates forward.
//!
//! After a transaction that appended events commits, the newest row id is
//! signalled on [`Registry::watch_appends`], so that the detection task
//! reads the events at once instead of at its next idle poll.
//!
//! Calls block on SQLite; async callers run them on the blocking pool.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use countywatch_daemon::sqlite::WriteGate;
use countywatch_wire::{Event, EventKind, EventSource};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::digest::sha256_hex;
use crate::event_log::{self, NewEvent, Position};

/// Schema migrations, applied in order; the index + 1 is the version.
pub(crate) const MIGRATIONS: &[&str] = &[
    "CREATE TABLE tokens (
        hash TEXT PRIMARY KEY,
        name TEXT,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        used_ms INTEGER,
        used_by TEXT
    );
    CREATE TABLE agents (
        name TEXT PRIMARY KEY,
        cert_sha256 TEXT NOT NULL UNIQUE,
        enrolled_ms INTEGER NOT NULL,
        revoked_ms INTEGER,
        last_seq INTEGER NOT NULL DEFAULT 0,
        last_seen_ms INTEGER,
        silent INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        agent TEXT NOT NULL,
        seq INTEGER NOT NULL,
        position INTEGER NOT NULL,
        received_ms INTEGER NOT NULL,
        timestamp_ms INTEGER NOT NULL,
        source TEXT NOT NULL,
        kind TEXT NOT NULL,
        body TEXT NOT NULL,
        UNIQUE (agent, seq, position)
    );
    CREATE INDEX events_by_agent ON events (agent, timestamp_ms);",
    // Every batch accepted, so that an operator (and the tests) can prove
    // that an agent's sequence has no gap and no repeat.
    "CREATE TABLE batches (
        agent TEXT NOT NULL,
        seq INTEGER NOT NULL,
        received_ms INTEGER NOT NULL,
        events INTEGER NOT NULL,
        PRIMARY KEY (agent, seq)
    ) WITHOUT ROWID;",
    // The address each agent last sent from, for the agents page.
    "ALTER TABLE agents ADD COLUMN last_address TEXT;",
    // The version each agent last reported, so `agents list` shows it
    // while the collector is stopped.
    "ALTER TABLE agents ADD COLUMN last_version TEXT;",
    // Tokens that may replace an enrolled agent of their bound name
    // (`token create --name NAME --replace`); others may not take a name
    // an enrolled agent holds.
    "ALTER TABLE tokens ADD COLUMN replace_existing INTEGER NOT NULL DEFAULT 0;",
    // Where each outbox relayed into the event log stopped (the incident
    // store's announcements): moved in the transaction that appends the
    // relayed event, so each is appended once.
    "CREATE TABLE relay_cursors (
        relay TEXT PRIMARY KEY,
        last_id INTEGER NOT NULL
    );",
    // The samples of stored batches that remote_write outputs must still
    // queue: written in the batch's transaction, relayed into outputs.db,
    // whose queues keep how far they took them (`output::Outputs`).
    "CREATE TABLE samples_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        agent TEXT NOT NULL,
        job TEXT NOT NULL,
        collected_at_ms INTEGER NOT NULL,
        families TEXT NOT NULL
    );",
    // The events' free-text index (issue 24), owned by the event log.
    event_log::TEXT_INDEX_SCHEMA,
    // The certificate an agent renewed to (`renewal.rs`) and has not yet
    // presented: both it and `cert_sha256` are accepted until the agent
    // connects with the new one, which then replaces the old for good.
    // With their expiry, for `agents list`: certificates last
    // `agents.cert_lifetime`, which may change between enrolments.
    "ALTER TABLE agents ADD COLUMN pending_cert_sha256 TEXT;
     ALTER TABLE agents ADD COLUMN pending_cert_expires_ms INTEGER;
     ALTER TABLE agents ADD COLUMN cert_expires_ms INTEGER;",
    // The events search by host or kind, newest first (issue 24): the
    // entries of an index on one column are in row id order within each
    // value, so the newest page is read without sorting all of a host's
    // events (`events_by_agent` orders them by time, for time ranges) or
    // scanning the whole log for a rare kind.
    "CREATE INDEX events_by_agent_newest ON events (agent);
     CREATE INDEX events_by_kind_newest ON events (kind);",
];

/// A stored batch's samples for the scale-out outputs, queued in the
/// `samples_outbox` in the batch's own transaction.
pub struct SamplesForOutputs<'a> {
    /// The `job` label they are exposed with.
    pub job: &'a str,
    /// The batch's collection time, their timestamp.
    pub collected_at_ms: i64,
    /// The families as accepted.
    pub families: &'a [countywatch_wire::MetricFamily],
}

/// One row of the `samples_outbox`.
pub struct OutboxSamples {
    /// Its id, in storage order.
    pub id: i64,
    /// The agent that sent them.
    pub agent: String,
    /// Their `job` label.
    pub job: String,
    /// Their timestamp.
    pub collected_at_ms: i64,
    /// The families.
    pub families: Vec<countywatch_wire::MetricFamily>,
}

/// An enrolled agent as `agents list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentRecord {
    /// Its name, the `instance` label.
    pub name: String,
    /// SHA-256 of its current client certificate.
    pub cert_sha256: String,
    /// When it enrolled, Unix milliseconds.
    pub enrolled_ms: i64,
    /// When it was revoked, if it was.
    pub revoked_ms: Option<i64>,
    /// Highest batch sequence number stored.
    pub last_seq: i64,
    /// When its last batch arrived.
    pub last_seen_ms: Option<i64>,
    /// The IP address its last batch came from.
    pub last_address: Option<String>,
    /// The version it last reported (`countywatch_agent_build_info`).
    pub last_version: Option<String>,
    /// When its current certificate expires, when that was recorded
    /// (certificates issued before renewal existed were not).
    pub cert_expires_ms: Option<i64>,
}

impl AgentRecord {
    /// When its current certificate expires: as recorded, else five years
    /// after enrolment, the validity of certificates issued before
    /// `agents.cert_lifetime` existed.
    pub fn certificate_expires_ms(&self) -> i64 {
        const LEGACY_VALIDITY_MS: i64 = 5 * 365 * 24 * 3600 * 1000;
        self.cert_expires_ms
            .unwrap_or_else(|| self.enrolled_ms.saturating_add(LEGACY_VALIDITY_MS))
    }
}

/// Why a token could not be redeemed. The messages are what the enrolling
/// agent sees, so they say what to do without revealing which tokens exist.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Unknown, used or expired: all look the same from outside.
    #[error(
        "invalid, expired or already used token; create a new one with `countywatch-collector token create`"
    )]
    Invalid,
    /// Neither the token nor the agent gave a name.
    #[error("no agent name given: pass --name")]
    NoName,
    /// The token was created for another name.
    #[error("this token was created for agent {bound:?}, not {requested:?}")]
    WrongName {
        /// The name the token is bound to.
        bound: String,
        /// The name the agent asked for.
        requested: String,
    },
    /// An enrolled agent has the name and the token was not made to
    /// replace it.
    #[error(
        "agent {0:?} is enrolled; to replace it, create a token with `countywatch-collector token create --name NAME --replace`"
    )]
    NameTaken(String),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] rusqlite::Error),
}

/// A redeemed token: the name to enrol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redeemed {
    /// The agent name.
    pub name: String,
    /// Whether it replaces an enrolled agent of that name (its certificate
    /// stops working).
    pub replaces: bool,
}

/// What happened to a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchOutcome {
    /// New: its events were stored.
    Stored,
    /// Already stored earlier (a retry or a replay): nothing was written.
    Duplicate,
}

/// The state database.
pub struct Registry {
    /// One connection, serialised: writes are short and SQLite serialises
    /// writers anyway.
    connection: Mutex<Connection>,
    /// The address and version each agent was last seen with, as stored:
    /// ingest notes them on every batch, and this lets the common case
    /// (unchanged) skip the UPDATE and SQLite's write lock. Bounded by the
    /// enrolled agents, since only authenticated batches reach it.
    last_senders: Mutex<HashMap<String, (String, Option<String>)>>,
    /// Refuses batches at once for a moment after one found `collector.db`
    /// locked by another process, so that retrying agents do not queue up
    /// behind the busy timeout.
    write_gate: WriteGate,
    /// The newest event row id appended through this registry, sent after
    /// its transaction commits (readers on other connections see the rows
    /// by then). Appends by other processes are not signalled.
    appended: tokio::sync::watch::Sender<i64>,
}

impl Registry {
    /// Opens (creating and migrating) the database in `data_dir`.
    pub fn open(data_dir: &Path) -> anyhow::Result<Registry> {
        let path = data_dir.join("collector.db");
        // WAL lets the CLI (token create, agents revoke) write while the
        // daemon runs; NORMAL sync costs no fsync per batch.
        let connection = countywatch_daemon::sqlite::open(&path)?;
        countywatch_daemon::sqlite::migrate(&connection, MIGRATIONS)
            .with_context(|| format!("cannot migrate {}", path.display()))?;
        Ok(Registry {
            connection: Mutex::new(connection),
            last_senders: Mutex::new(HashMap::new()),
            write_gate: WriteGate::default(),
            appended: tokio::sync::watch::Sender::new(0),
        })
    }

    /// Changes when events were appended through this registry, to the
    /// newest one's row id.
    pub fn watch_appends(&self) -> tokio::sync::watch::Receiver<i64> {
        self.appended.subscribe()
    }

    /// Signals, after the commit, that events up to row id `newest` were
    /// appended.
    fn signal_appended(&self, newest: i64) {
        self.appended.send_if_modified(|signalled| {
            let newer = newest > *signalled;
            if newer {
                *signalled = newest;
            }
            newer
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Creates a single-use token valid for `ttl`, optionally bound to an
    /// agent name, and returns it. Only its hash is stored. A token made
    /// with `replace` (which needs a name) may enrol over an enrolled agent
    /// of that name; no other token may.
    pub fn create_token(
        &self,
        name: Option<&str>,
        replace: bool,
        ttl: Duration,
        now_ms: i64,
    ) -> anyhow::Result<String> {
        if replace && name.is_none() {
            anyhow::bail!("only a token bound to a name (--name) may replace an agent");
        }
        let secret: [u8; 24] = rand::random();
        let token = format!("cwt_{}", hex::encode(secret));
        let expires = now_ms.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        self.lock()
            .execute(
                "INSERT INTO tokens (hash, name, created_ms, expires_ms, replace_existing)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![sha256_hex(token.as_bytes()), name, now_ms, expires, replace],
            )
            .context("cannot store the token")?;
        Ok(token)
    }

    /// Redeems a token and returns the name to enrol: the token's bound
    /// name, else `requested`, else `fallback` (the agent's host name). A
    /// `requested` name other than the bound one is refused, and so is the
    /// name of an enrolled, unrevoked agent unless the token was made to
    /// replace it (then the token is not used up). The token is used up.
    pub fn redeem_token(
        &self,
        token: &str,
        requested: Option<&str>,
        fallback: Option<&str>,
        now_ms: i64,
    ) -> Result<Redeemed, TokenError> {
        let mut connection = self.lock();
        // Immediate, like every read-then-write here: the CLI and the host
        // binding write this file too, and a deferred transaction that has
        // read would fail at once with SQLITE_BUSY instead of waiting.
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row: Option<(Option<String>, i64, Option<i64>, bool)> = transaction
            .query_row(
                "SELECT name, expires_ms, used_ms, replace_existing FROM tokens WHERE hash = ?1",
                params![sha256_hex(token.as_bytes())],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .optional()?;
        let Some((bound, expires_ms, used_ms, replace)) = row else {
            return Err(TokenError::Invalid);
        };
        if used_ms.is_some() || expires_ms < now_ms {
            return Err(TokenError::Invalid);
        }
        let name = match (bound, requested) {
            (Some(bound), Some(requested)) if bound != requested => {
                return Err(TokenError::WrongName {
                    bound,
                    requested: requested.to_string(),
                });
            }
            (Some(bound), _) => bound,
            (None, Some(requested)) => requested.to_string(),
            (None, None) => match fallback {
                Some(fallback) => fallback.to_string(),
                None => return Err(TokenError::NoName),
            },
        };
        let taken: bool = transaction.query_row(
            "SELECT EXISTS (SELECT 1 FROM agents WHERE name = ?1 AND revoked_ms IS NULL)",
            params![name],
            |row| row.get(0),
        )?;
        if taken && !replace {
            return Err(TokenError::NameTaken(name));
        }
        transaction.execute(
            "UPDATE tokens SET used_ms = ?1, used_by = ?2 WHERE hash = ?3",
            params![now_ms, name, sha256_hex(token.as_bytes())],
        )?;
        transaction.commit()?;
        Ok(Redeemed {
            name,
            replaces: taken,
        })
    }

    /// Records an agent's new certificate and returns the first sequence
    /// number its batches must use. Re-enrolling a name replaces its
    /// certificate (the old one stops working at once) and clears a
    /// revocation; its sequence numbers continue where they were, so that a
    /// re-installed agent's batches are not taken for replays.
    pub fn enrol(&self, name: &str, cert_sha256: &str, now_ms: i64) -> anyhow::Result<u64> {
        let connection = self.lock();
        connection
            .execute(
                "INSERT INTO agents (name, cert_sha256, enrolled_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET cert_sha256 = excluded.cert_sha256,
                    enrolled_ms = excluded.enrolled_ms, revoked_ms = NULL, silent = 0,
                    pending_cert_sha256 = NULL",
                params![name, cert_sha256, now_ms],
            )
            .context("cannot record the agent")?;
        let last_seq: i64 = connection
            .query_row(
                "SELECT last_seq FROM agents WHERE name = ?1",
                params![name],
                |row| row.get(0),
            )
            .context("cannot read the agent")?;
        Ok(u64::try_from(last_seq).unwrap_or(0) + 1)
    }

    /// The agent a client certificate belongs to, if it is current and not
    /// revoked. Called on every request, so revocation is immediate.
    ///
    /// A renewed certificate presented for the first time is the agent's
    /// confirmation that it holds the new key: it becomes the agent's
    /// certificate, and the one it replaces is refused from then on.
    pub fn identify(&self, cert_sha256: &str) -> anyhow::Result<Option<String>> {
        let connection = self.lock();
        let found: Option<(String, bool)> = connection
            .query_row(
                "SELECT name, cert_sha256 = ?1 FROM agents
                 WHERE (cert_sha256 = ?1 OR pending_cert_sha256 = ?1) AND revoked_ms IS NULL",
                params![cert_sha256],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .context("cannot look up the agent")?;
        let Some((name, current)) = found else {
            return Ok(None);
        };
        if !current {
            connection
                .execute(
                    "UPDATE agents SET cert_sha256 = pending_cert_sha256, pending_cert_sha256 = NULL,
                        cert_expires_ms = pending_cert_expires_ms, pending_cert_expires_ms = NULL
                     WHERE name = ?1 AND pending_cert_sha256 = ?2",
                    params![name, cert_sha256],
                )
                .context("cannot retire the renewed certificate")?;
            tracing::info!(agent = %name, cert_sha256, "agent switched to its renewed certificate; the old one is refused from now on");
        }
        Ok(Some(name))
    }

    /// Records a renewed certificate for `name`, accepted beside the
    /// current one until the agent presents it ([`Registry::identify`]).
    /// A second renewal before that replaces the first. Returns false when
    /// no such agent is enrolled or it is revoked.
    pub fn offer_renewal(
        &self,
        name: &str,
        cert_sha256: &str,
        expires_ms: i64,
    ) -> anyhow::Result<bool> {
        let changed = self
            .lock()
            .execute(
                "UPDATE agents SET pending_cert_sha256 = ?2, pending_cert_expires_ms = ?3
                 WHERE name = ?1 AND revoked_ms IS NULL",
                params![name, cert_sha256, expires_ms],
            )
            .context("cannot record the renewed certificate")?;
        Ok(changed > 0)
    }

    /// Records when the certificate `name` just enrolled with expires.
    pub fn record_cert_expiry(&self, name: &str, expires_ms: i64) -> anyhow::Result<()> {
        self.lock()
            .execute(
                "UPDATE agents SET cert_expires_ms = ?2 WHERE name = ?1",
                params![name, expires_ms],
            )
            .context("cannot record the certificate's expiry")?;
        Ok(())
    }

    /// Revokes an agent; returns false when no such agent is enrolled.
    pub fn revoke(&self, name: &str, now_ms: i64) -> anyhow::Result<bool> {
        let changed = self
            .lock()
            .execute(
                "UPDATE agents SET revoked_ms = ?1 WHERE name = ?2 AND revoked_ms IS NULL",
                params![now_ms, name],
            )
            .context("cannot revoke the agent")?;
        Ok(changed > 0)
    }

    /// Every enrolled agent, by name.
    pub fn agents(&self) -> anyhow::Result<Vec<AgentRecord>> {
        let connection = self.lock();
        let mut statement = connection.prepare(
            "SELECT name, cert_sha256, enrolled_ms, revoked_ms, last_seq, last_seen_ms, last_address,
                last_version, cert_expires_ms
             FROM agents ORDER BY name",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(AgentRecord {
                name: row.get(0)?,
                cert_sha256: row.get(1)?,
                enrolled_ms: row.get(2)?,
                revoked_ms: row.get(3)?,
                last_seq: row.get(4)?,
                last_seen_ms: row.get(5)?,
                last_address: row.get(6)?,
                last_version: row.get(7)?,
                cert_expires_ms: row.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Records the address `agent` sent from and the version it reported
    /// (`None` keeps the stored one: not every batch carries metrics).
    /// Written only when something changed, so the usual batch costs a
    /// lookup, not a write.
    pub fn note_sender(
        &self,
        agent: &str,
        address: &str,
        version: Option<&str>,
    ) -> anyhow::Result<()> {
        let mut known = self
            .last_senders
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let version = version
            .map(str::to_owned)
            .or_else(|| known.get(agent).and_then(|(_, version)| version.clone()));
        if known
            .get(agent)
            .is_some_and(|last| last.0 == address && last.1 == version)
        {
            return Ok(());
        }
        self.lock().execute(
            "UPDATE agents SET last_address = ?2, last_version = COALESCE(?3, last_version)
             WHERE name = ?1",
            params![agent, address, version],
        )?;
        known.insert(agent.to_owned(), (address.to_owned(), version));
        Ok(())
    }

    /// Stores a batch's events unless its sequence number is not above the
    /// agent's last one, and marks the agent seen. One transaction.
    pub fn accept_batch(
        &self,
        agent: &str,
        seq: u64,
        events: &[Event],
        now_ms: i64,
    ) -> anyhow::Result<BatchOutcome> {
        self.accept_batch_for_outputs(agent, seq, events, None, now_ms)
    }

    /// [`Registry::accept_batch`], queuing `samples` in the
    /// `samples_outbox` in the same transaction, so that a batch stored is
    /// a batch the outputs will get, whatever happens after the commit.
    pub fn accept_batch_for_outputs(
        &self,
        agent: &str,
        seq: u64,
        events: &[Event],
        samples: Option<&SamplesForOutputs<'_>>,
        now_ms: i64,
    ) -> anyhow::Result<BatchOutcome> {
        let seq = i64::try_from(seq).context("sequence number out of range")?;
        self.write_gate.check()?;
        let mut connection = self.lock();
        // A batch that waited for the connection behind one that found the
        // database locked is refused without waiting again.
        self.write_gate.check()?;
        // Immediate: it reads before it writes, and retention and the CLI
        // write `collector.db` through connections of their own.
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .inspect_err(|error| {
                self.write_gate.observe(error);
            })?;
        let last_seq: i64 = transaction
            .query_row(
                "SELECT last_seq FROM agents WHERE name = ?1",
                params![agent],
                |row| row.get(0),
            )
            .optional()?
            .unwrap_or(0);
        transaction.execute(
            "UPDATE agents SET last_seen_ms = ?1, silent = 0 WHERE name = ?2",
            params![now_ms, agent],
        )?;
        if seq <= last_seq {
            transaction.commit()?;
            return Ok(BatchOutcome::Duplicate);
        }
        let mut newest = None;
        for (position, event) in events.iter().enumerate() {
            newest = Some(event_log::append(
                &transaction,
                &NewEvent {
                    agent,
                    seq,
                    position: Position::At(i64::try_from(position).unwrap_or(i64::MAX)),
                    received_ms: now_ms,
                    event,
                },
            )?);
        }
        transaction.execute(
            "INSERT INTO batches (agent, seq, received_ms, events) VALUES (?1, ?2, ?3, ?4)",
            params![
                agent,
                seq,
                now_ms,
                i64::try_from(events.len()).unwrap_or(i64::MAX)
            ],
        )?;
        transaction.execute(
            "UPDATE agents SET last_seq = ?1 WHERE name = ?2",
            params![seq, agent],
        )?;
        if let Some(samples) = samples.filter(|samples| !samples.families.is_empty()) {
            transaction.execute(
                "INSERT INTO samples_outbox (agent, job, collected_at_ms, families)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    agent,
                    samples.job,
                    samples.collected_at_ms,
                    serde_json::to_string(samples.families)?
                ],
            )?;
        }
        transaction.commit()?;
        if let Some(newest) = newest {
            self.signal_appended(newest);
        }
        Ok(BatchOutcome::Stored)
    }

    /// Up to `limit` rows of the `samples_outbox` after id `after`, oldest
    /// first. A row that no longer parses (a damaged page) is skipped with
    /// a log line: no retry would mend it.
    pub fn samples_outbox_after(
        &self,
        after: i64,
        limit: usize,
    ) -> anyhow::Result<Vec<OutboxSamples>> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "SELECT id, agent, job, collected_at_ms, families FROM samples_outbox
             WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = statement
            .query_map(
                params![after, i64::try_from(limit).unwrap_or(i64::MAX)],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, i64>(3)?,
                        row.get::<_, String>(4)?,
                    ))
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .map(|(id, agent, job, collected_at_ms, families)| {
                let families = serde_json::from_str(&families).unwrap_or_else(|error| {
                    tracing::error!(
                        outbox_id = id,
                        "dropping unreadable samples from the outbox: {error}"
                    );
                    Vec::new()
                });
                OutboxSamples {
                    id,
                    agent,
                    job,
                    collected_at_ms,
                    families,
                }
            })
            .collect())
    }

    /// Deletes the `samples_outbox` rows up to id `through`, which every
    /// output has queued.
    pub fn trim_samples_outbox(&self, through: i64) -> anyhow::Result<()> {
        self.lock().execute(
            "DELETE FROM samples_outbox WHERE id <= ?1",
            params![through],
        )?;
        Ok(())
    }

    /// Marks agents silent when their last batch is older than `silent_after`
    /// and records one `agent_silent` event for each; returns their names.
    pub fn mark_silent(&self, silent_after: Duration, now_ms: i64) -> anyhow::Result<Vec<String>> {
        let cutoff =
            now_ms.saturating_sub(i64::try_from(silent_after.as_millis()).unwrap_or(i64::MAX));
        let mut connection = self.lock();
        // Immediate for the same reason as in `accept_batch`.
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let names: Vec<(String, Option<i64>)> = {
            let mut statement = transaction.prepare(
                "SELECT name, last_seen_ms FROM agents WHERE revoked_ms IS NULL AND silent = 0
                 AND COALESCE(last_seen_ms, enrolled_ms) < ?1",
            )?;
            let rows =
                statement.query_map(params![cutoff], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        let mut newest = None;
        for (name, last_seen_ms) in &names {
            let mut event = Event::new(now_ms, EventSource::Agent, EventKind::AgentSilent);
            event.host.clone_from(name);
            event.fields.last_seen_ms = *last_seen_ms;
            event.raw = format!("no batch from agent {name} for {}s", silent_after.as_secs());
            newest = Some(event_log::append(
                &transaction,
                &NewEvent {
                    agent: name,
                    seq: -now_ms,
                    position: Position::At(0),
                    received_ms: now_ms,
                    event: &event,
                },
            )?);
            transaction.execute(
                "UPDATE agents SET silent = 1 WHERE name = ?1",
                params![name],
            )?;
        }
        transaction.commit()?;
        if let Some(newest) = newest {
            self.signal_appended(newest);
        }
        Ok(names.into_iter().map(|(name, _)| name).collect())
    }

    /// Stores an event the collector itself observed (a failed login to its
    /// web page), under the agent name `collector`, so detection rules and
    /// outputs see it like any agent's event. Returns its row id.
    pub fn record_collector_event(&self, event: &Event, now_ms: i64) -> anyhow::Result<i64> {
        let id = event_log::append(&self.lock(), &collector_event(event, now_ms))?;
        self.signal_appended(id);
        Ok(id)
    }

    /// Records one of the collector's own events relayed from another
    /// database's outbox, where it has id `outbox_id`, unless the relay
    /// named `relay` already passed that id: the event and the relay's
    /// cursor commit together, so a relay repeated after a crash appends
    /// nothing twice. Returns whether it was appended.
    pub fn relay_collector_event(
        &self,
        relay: &str,
        outbox_id: i64,
        event: &Event,
        now_ms: i64,
    ) -> anyhow::Result<bool> {
        let mut connection = self.lock();
        let transaction =
            connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let last: Option<i64> = transaction
            .query_row(
                "SELECT last_id FROM relay_cursors WHERE relay = ?1",
                params![relay],
                |row| row.get(0),
            )
            .optional()?;
        if last.is_some_and(|last| outbox_id <= last) {
            return Ok(false);
        }
        let id = event_log::append(&transaction, &collector_event(event, now_ms))?;
        transaction.execute(
            "INSERT INTO relay_cursors (relay, last_id) VALUES (?1, ?2)
             ON CONFLICT (relay) DO UPDATE SET last_id = excluded.last_id",
            params![relay, outbox_id],
        )?;
        transaction.commit()?;
        self.signal_appended(id);
        Ok(true)
    }

    /// Number of stored events of `agent` with `kind` (all kinds when `None`).
    pub fn count_events(&self, agent: &str, kind: Option<&str>) -> anyhow::Result<i64> {
        Ok(self.lock().query_row(
            "SELECT COUNT(*) FROM events WHERE agent = ?1 AND (?2 IS NULL OR kind = ?2)",
            params![agent, kind],
            |row| row.get(0),
        )?)
    }
}

/// One of the collector's own events as the event log stores it.
fn collector_event(event: &Event, now_ms: i64) -> NewEvent<'_> {
    // seq is the negated time, as for `agent_silent`; position counts
    // events within the same millisecond, keeping (agent, seq, position)
    // unique.
    NewEvent {
        agent: "collector",
        seq: -now_ms,
        position: Position::Next,
        received_ms: now_ms,
        event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind) -> Event {
        let mut event = Event::new(1, EventSource::Auth, kind);
        event.raw = "raw".to_string();
        event
    }

    #[test]
    fn batches_are_refused_at_once_after_one_found_the_database_locked() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        let holder = countywatch_daemon::sqlite::open(&dir.path().join("collector.db")).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let events = [event(EventKind::SshLoginFailed)];
        let first = registry.accept_batch("a", 1, &events, 1).unwrap_err();
        assert!(
            first
                .downcast_ref::<countywatch_daemon::sqlite::WriteLocked>()
                .is_none(),
            "the first batch asks SQLite and waits: {first:#}"
        );
        let second = registry.accept_batch("a", 1, &events, 2).unwrap_err();
        assert!(
            second
                .downcast_ref::<countywatch_daemon::sqlite::WriteLocked>()
                .is_some(),
            "the next one is refused without waiting: {second:#}"
        );
        holder.execute_batch("ROLLBACK").unwrap();
        assert_eq!(registry.count_events("a", None).unwrap(), 0);
    }

    #[test]
    fn appends_are_signalled_after_the_commit_and_duplicates_and_empty_batches_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry.enrol("a", "cert-a", 0).unwrap();
        let mut appends = registry.watch_appends();
        let reader = crate::event_log::EventLog::open_read_only(dir.path()).unwrap();
        let events = [
            event(EventKind::SshLoginFailed),
            event(EventKind::SshLoginFailed),
        ];
        registry.accept_batch("a", 1, &events, 1).unwrap();
        assert!(appends.has_changed().unwrap());
        let newest = *appends.borrow_and_update();
        // Signalled after the commit: another connection reads the rows.
        let rows = reader
            .read_after(crate::event_log::EventCursor::START, 10)
            .unwrap();
        assert_eq!(rows.last().map(|row| row.id), Some(newest));
        assert_eq!(rows.len(), 2);
        registry.accept_batch("a", 1, &events, 2).unwrap();
        registry.accept_batch("a", 2, &[], 3).unwrap();
        assert!(
            !appends.has_changed().unwrap(),
            "a duplicate and a batch of metrics alone append nothing"
        );
        let id = registry
            .record_collector_event(&event(EventKind::WebLoginFailed), 4)
            .unwrap();
        assert!(appends.has_changed().unwrap());
        assert_eq!(*appends.borrow_and_update(), id);
        assert!(id > newest);
    }

    #[test]
    fn a_relayed_event_is_appended_once_per_outbox_id() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        let announcement = event(EventKind::IncidentChanged);
        // (relay, outbox id, appended): a relay repeated after a crash and
        // an older id append nothing; another relay has its own cursor.
        let steps = [
            ("r", 1, true),
            ("r", 1, false),
            ("r", 2, true),
            ("r", 1, false),
            ("other", 1, true),
        ];
        for (now_ms, (relay, id, appended)) in (10..).zip(steps) {
            let result = registry.relay_collector_event(relay, id, &announcement, now_ms);
            assert_eq!(result.unwrap(), appended, "{relay} {id}");
        }
        let stored = registry
            .count_events("collector", Some("incident_changed"))
            .unwrap();
        assert_eq!(stored, 3);
    }

    #[test]
    fn tokens_are_single_use_expire_and_bind_names() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        let token = registry
            .create_token(None, false, Duration::from_secs(60), 1_000)
            .unwrap();
        assert_eq!(
            registry
                .redeem_token(&token, Some("a"), None, 2_000)
                .unwrap()
                .name,
            "a"
        );
        assert!(matches!(
            registry.redeem_token(&token, Some("a"), None, 2_000),
            Err(TokenError::Invalid)
        ));
        let expired = registry
            .create_token(None, false, Duration::from_secs(1), 1_000)
            .unwrap();
        assert!(matches!(
            registry.redeem_token(&expired, Some("a"), None, 5_000),
            Err(TokenError::Invalid)
        ));
        let bound = registry
            .create_token(Some("web-01"), false, Duration::from_secs(60), 1_000)
            .unwrap();
        assert!(matches!(
            registry.redeem_token(&bound, Some("db-01"), None, 2_000),
            Err(TokenError::WrongName { .. })
        ));
        assert_eq!(
            registry
                .redeem_token(&bound, None, Some("host"), 2_000)
                .unwrap()
                .name,
            "web-01"
        );
        let unbound = registry
            .create_token(None, false, Duration::from_secs(60), 1_000)
            .unwrap();
        assert_eq!(
            registry
                .redeem_token(&unbound, None, Some("host"), 2_000)
                .unwrap()
                .name,
            "host"
        );
        // An enrolled name is taken unless the token replaces it.
        registry.enrol("host", "cert", 3_000).unwrap();
        let takeover = registry
            .create_token(None, false, Duration::from_secs(60), 3_000)
            .unwrap();
        assert!(matches!(
            registry.redeem_token(&takeover, Some("host"), None, 3_000),
            Err(TokenError::NameTaken(_))
        ));
        assert!(
            registry
                .create_token(None, true, Duration::from_secs(60), 3_000)
                .is_err()
        );
        let replacing = registry
            .create_token(Some("host"), true, Duration::from_secs(60), 3_000)
            .unwrap();
        assert_eq!(
            registry
                .redeem_token(&replacing, None, None, 3_000)
                .unwrap(),
            Redeemed {
                name: "host".to_string(),
                replaces: true
            }
        );
        assert!(matches!(
            registry.redeem_token("cwt_guess", Some("a"), None, 2_000),
            Err(TokenError::Invalid)
        ));
    }

    #[test]
    fn batches_are_stored_once_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry.enrol("a", "cert-a", 0).unwrap();
        let events = [
            event(EventKind::SshLoginFailed),
            event(EventKind::SshLoginFailed),
        ];
        assert_eq!(
            registry.accept_batch("a", 1, &events, 10).unwrap(),
            BatchOutcome::Stored
        );
        assert_eq!(
            registry.accept_batch("a", 1, &events, 11).unwrap(),
            BatchOutcome::Duplicate
        );
        assert_eq!(
            registry.accept_batch("a", 2, &events[..1], 12).unwrap(),
            BatchOutcome::Stored
        );
        drop(registry);
        let registry = Registry::open(dir.path()).unwrap();
        assert_eq!(
            registry.accept_batch("a", 2, &events, 13).unwrap(),
            BatchOutcome::Duplicate
        );
        assert_eq!(
            registry
                .count_events("a", Some("ssh_login_failed"))
                .unwrap(),
            3
        );
        assert_eq!(registry.agents().unwrap()[0].last_seq, 2);
    }

    #[test]
    fn revocation_and_reenrolment() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry.enrol("a", "cert-1", 0).unwrap();
        assert_eq!(registry.identify("cert-1").unwrap().as_deref(), Some("a"));
        assert!(registry.revoke("a", 5).unwrap());
        assert_eq!(registry.identify("cert-1").unwrap(), None);
        assert!(!registry.revoke("nobody", 5).unwrap());
        registry.enrol("a", "cert-2", 6).unwrap();
        assert_eq!(
            registry.identify("cert-1").unwrap(),
            None,
            "the old certificate stays refused"
        );
        assert_eq!(registry.identify("cert-2").unwrap().as_deref(), Some("a"));
    }

    #[test]
    fn the_last_address_follows_the_agent_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry.enrol("a", "cert-1", 0).unwrap();
        let address = |registry: &Registry| registry.agents().unwrap()[0].last_address.clone();
        let version = |registry: &Registry| registry.agents().unwrap()[0].last_version.clone();
        registry
            .note_sender("a", "192.0.2.1", Some("0.1.0"))
            .unwrap();
        registry.note_sender("a", "192.0.2.1", None).unwrap();
        assert_eq!(address(&registry).as_deref(), Some("192.0.2.1"));
        assert_eq!(version(&registry).as_deref(), Some("0.1.0"));
        registry.note_sender("a", "192.0.2.7", None).unwrap();
        assert_eq!(address(&registry).as_deref(), Some("192.0.2.7"));
        assert_eq!(version(&registry).as_deref(), Some("0.1.0"));
        drop(registry);
        let registry = Registry::open(dir.path()).unwrap();
        assert_eq!(address(&registry).as_deref(), Some("192.0.2.7"));
        // A fresh process has no memory of the address and writes the
        // same value again without harm, keeping the stored version.
        registry.note_sender("a", "192.0.2.7", None).unwrap();
        assert_eq!(address(&registry).as_deref(), Some("192.0.2.7"));
        assert_eq!(version(&registry).as_deref(), Some("0.1.0"));
        registry
            .note_sender("a", "192.0.2.7", Some("0.2.0"))
            .unwrap();
        assert_eq!(version(&registry).as_deref(), Some("0.2.0"));
    }

    #[test]
    fn silent_agents_get_one_event_until_they_report_again() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry.enrol("a", "cert-a", 0).unwrap();
        registry.accept_batch("a", 1, &[], 1_000).unwrap();
        assert!(
            registry
                .mark_silent(Duration::from_secs(60), 30_000)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            registry
                .mark_silent(Duration::from_secs(60), 100_000)
                .unwrap(),
            vec!["a"]
        );
        assert!(
            registry
                .mark_silent(Duration::from_secs(60), 200_000)
                .unwrap()
                .is_empty()
        );
        assert_eq!(registry.count_events("a", Some("agent_silent")).unwrap(), 1);
        registry.accept_batch("a", 2, &[], 210_000).unwrap();
        assert_eq!(
            registry
                .mark_silent(Duration::from_secs(60), 300_000)
                .unwrap(),
            vec!["a"]
        );
    }
}
