//! The tamper-evident audit trail (MLPS 2.0, GB/T 22239-2019 8.1.4.3): every
//! change is an entry with its time, actor, action, target and outcome, in
//! the `audit` table of `incidents.db`.
//!
//! Entries are hash-chained: each stores the SHA-256 of the previous
//! entry's hash and its own content, so editing, deleting or inserting a row
//! breaks every later link. Sequence numbers start at 1 and are
//! contiguous; the oldest entry moves only by a retention purge, which
//! signs a purge record naming the first entry it kept and that entry's
//! hash (table `audit_purges`).
//!
//! Checkpoints (table `audit_checkpoints`) form a chain of their own: each
//! signs, with an Ed25519 key kept in the data dir (`audit-signing.pk8`,
//! 0600), its own number, the number of entries written so far, the head
//! entry's hash and the previous checkpoint's hash. One is signed by the
//! append that reaches `checkpoint_every` entries or 10 minutes since the
//! last one, by the collector every 10 minutes when there are new entries,
//! and at every clean shutdown, so [`verify`] can require the newest
//! checkpoint to lie within those bounds of the tail: deleting the newest
//! entries, emptying the table or rewriting it from an edited row onwards
//! then breaks a signature or a bound, and forging one needs the key.
//!
//! Whoever is root on the collector also holds the key, so every checkpoint
//! is also sent off the host as one line, [`ANCHOR_PREFIX`] followed by its
//! JSON (see [`anchor`]); [`verify_with`] checks the database
//! against such lines, which catches a truncated tail and a re-signed
//! trail.
//!
//! Every layer may call this module (listeners, tasks, the admin commands,
//! the console); it imports only the incident store, whose database holds
//! the trail, so that an entry can commit in the same transaction as the
//! change it records.
//!
//! - [`anchor`]: the `audit:` config, the checkpoint timer, external
//!   anchors (syslog, the SIEM) and the hourly self-verification.

pub mod anchor;

use std::path::{Path, PathBuf};

use anyhow::Context;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde::Serialize;

use crate::digest::sha256_hex;
use crate::incident::store::{IncidentStore, KEY_FILE, connect};
use countywatch_daemon::clock::now_ms;
use countywatch_daemon::sqlite::Conditions;

/// `prev_hash` of the first entry ever written.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Whether the audited action succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done.
    Success,
    /// Tried and refused or failed.
    Failure,
}

impl Outcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// One audit entry as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// Who: a user, `cli:$USER`, `detection`, `system`, or an address for
    /// anonymous requests.
    pub actor: String,
    /// What, e.g. `incident.created`, `login`, `silence.created`.
    pub action: String,
    /// What it was done to, e.g. `incident/12`.
    pub target: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// Free text: the comment, the reason, the refused role.
    pub details: String,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// SHA-256 of `prev_hash` and this entry's content.
    pub hash: String,
}

/// The audit trail of a data directory, for code outside the incident
/// store's transactions (CLI commands, enrolment, rule reloads).
pub struct Audit {
    /// Its own connection to `incidents.db`.
    connection: std::sync::Mutex<Connection>,
    /// The signing key's path.
    key_path: PathBuf,
    /// Checkpoint period in entries.
    checkpoint_every: u32,
}

impl Audit {
    /// Opens the audit trail of `data_dir` (creating the store if needed).
    pub fn open(data_dir: &Path, checkpoint_every: u32) -> anyhow::Result<Audit> {
        // Opening the store runs the migrations.
        drop(IncidentStore::open(data_dir)?);
        Ok(Audit {
            connection: std::sync::Mutex::new(connect(
                &data_dir.join(crate::incident::store::FILE_NAME),
            )?),
            key_path: data_dir.join(KEY_FILE),
            checkpoint_every,
        })
    }

    /// Appends an entry now.
    pub fn append(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        outcome: Outcome,
        details: &str,
    ) -> anyhow::Result<i64> {
        let mut connection = self.lock();
        let transaction =
            connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let seq = append_in(
            &transaction,
            &self.key_path,
            self.checkpoint_every,
            &NewEntry::now(actor, action, target, outcome, details),
        )?;
        transaction.commit()?;
        Ok(seq)
    }

    /// Signs the head of the chain now unless it is signed already (at
    /// shutdown, after a purge).
    pub fn checkpoint(&self) -> anyhow::Result<Option<Checkpoint>> {
        let connection = self.lock();
        checkpoint_head(&connection, &self.key_path, now_ms(), None)
    }

    /// Signs the head if it is unsigned and the newest checkpoint is 10
    /// minutes old (the collector's timer).
    pub fn checkpoint_if_due(&self, now: i64) -> anyhow::Result<Option<Checkpoint>> {
        let connection = self.lock();
        checkpoint_head(&connection, &self.key_path, now, Some(CHECKPOINT_PERIOD_MS))
    }

    /// Checkpoints from number `since` on, oldest first.
    pub fn checkpoints_since(&self, since: i64) -> anyhow::Result<Vec<Checkpoint>> {
        Ok(checkpoints_since(&self.lock(), since)?)
    }

    /// Checkpoints not yet sent off the host, oldest first.
    pub fn unanchored(&self) -> anyhow::Result<Vec<Checkpoint>> {
        let connection = self.lock();
        let mut statement = connection.prepare(&format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE anchored = 0 ORDER BY seq"
        ))?;
        let rows = statement.query_map([], checkpoint_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records that checkpoint `seq` was sent off the host.
    pub fn mark_anchored(&self, seq: i64) -> anyhow::Result<()> {
        self.lock().execute(
            "UPDATE audit_checkpoints SET anchored = 1 WHERE seq = ?1",
            params![seq],
        )?;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// Appends to the data dir's audit trail, logging instead of failing: for
/// callers (CLI commands, enrolment) whose own action already happened and
/// must not be undone because the audit store is unavailable.
pub fn record(data_dir: &Path, actor: &str, action: &str, target: &str, details: &str) {
    record_outcome(data_dir, actor, action, target, Outcome::Success, details);
}

/// [`record`] with an outcome.
pub fn record_outcome(
    data_dir: &Path,
    actor: &str,
    action: &str,
    target: &str,
    outcome: Outcome,
    details: &str,
) {
    // These callers do not know the configured checkpoint period, so each
    // of their (rare) entries is signed at once: the bound `verify` checks
    // then holds whatever `checkpoint_every` is configured.
    let appended = Audit::open(data_dir, 1)
        .and_then(|audit| audit.append(actor, action, target, outcome, details));
    if let Err(error) = appended {
        tracing::error!(action, target, "cannot write the audit trail: {error:#}");
    }
}

/// The actor name for command-line actions: `cli:` and the login user
/// (`$USER`, else the name of the process's real uid in `/etc/passwd`, as
/// under cron or `sudo -i` without it, else `uid:N`).
pub fn cli_actor() -> String {
    let user = std::env::var("USER")
        .ok()
        .filter(|user| !user.is_empty())
        .or_else(uid_name)
        .unwrap_or_else(|| "unknown".to_string());
    format!("cli:{user}")
}

/// The user name of the process's real uid.
fn uid_name() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid).then(|| name.to_string())
    });
    Some(name.unwrap_or_else(|| format!("uid:{uid}")))
}

/// An entry to append.
pub(crate) struct NewEntry<'a> {
    /// When.
    pub at_ms: i64,
    /// Who.
    pub actor: &'a str,
    /// What.
    pub action: &'a str,
    /// On what.
    pub target: &'a str,
    /// Success or failure.
    pub outcome: Outcome,
    /// Free text.
    pub details: &'a str,
}

impl<'a> NewEntry<'a> {
    /// An entry stamped with the current time.
    pub fn now(
        actor: &'a str,
        action: &'a str,
        target: &'a str,
        outcome: Outcome,
        details: &'a str,
    ) -> NewEntry<'a> {
        NewEntry {
            at_ms: now_ms(),
            actor,
            action,
            target,
            outcome,
            details,
        }
    }
}

/// The hashed fields of an entry.
pub struct Content<'a> {
    /// Position in the chain.
    pub seq: i64,
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// Who.
    pub actor: &'a str,
    /// What.
    pub action: &'a str,
    /// On what.
    pub target: &'a str,
    /// `success` or `failure`.
    pub outcome: &'a str,
    /// Free text.
    pub details: &'a str,
}

/// The hash of an entry: SHA-256 over the previous hash and the content as
/// a JSON array (unambiguous: no separator can be forged inside a field).
pub fn entry_hash(prev_hash: &str, content: &Content<'_>) -> String {
    let fields = serde_json::json!([
        content.seq,
        content.at_ms,
        content.actor,
        content.action,
        content.target,
        content.outcome,
        content.details
    ]);
    sha256_hex(format!("{prev_hash}\n{fields}").as_bytes())
}

/// Appends inside the caller's transaction (so an incident change and its
/// audit entry commit together), and signs a checkpoint in the same
/// transaction when one is due. The caller's transaction must hold the
/// write lock (IMMEDIATE, or having written already) so that two appenders
/// never read the same head.
pub(crate) fn append_in(
    connection: &Connection,
    key_path: &Path,
    checkpoint_every: u32,
    entry: &NewEntry<'_>,
) -> anyhow::Result<i64> {
    let (seq, prev_hash) = match head(connection)? {
        Some((seq, hash)) => (seq.saturating_add(1), hash),
        None => (1, GENESIS.to_string()),
    };
    let outcome = entry.outcome.as_str();
    let hash = entry_hash(
        &prev_hash,
        &Content {
            seq,
            at_ms: entry.at_ms,
            actor: entry.actor,
            action: entry.action,
            target: entry.target,
            outcome,
            details: entry.details,
        },
    );
    connection.execute(
        "INSERT INTO audit (seq, at_ms, actor, action, target, outcome, details, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            seq,
            entry.at_ms,
            entry.actor,
            entry.action,
            entry.target,
            outcome,
            entry.details,
            prev_hash,
            hash
        ],
    )?;
    // Due by count or by time: whatever wrote the entry (the daemon or a
    // CLI command while it is stopped) signs, so the bound `verify`
    // checks holds without the daemon's timer.
    let due = match latest_checkpoint(connection)? {
        None => true,
        Some(last) => {
            seq - last.entries >= i64::from(checkpoint_every.max(1))
                || entry.at_ms.saturating_sub(last.at) >= CHECKPOINT_PERIOD_MS
        }
    };
    if due {
        sign_checkpoint(connection, key_path, seq, &hash, entry.at_ms)?;
    }
    Ok(seq)
}

impl IncidentStore {
    /// Appends an entry stamped now inside `transaction`, one of this
    /// store's write transactions, so that the change it records and the
    /// entry commit together (see [`append_in`]); returns its sequence
    /// number.
    pub(crate) fn audit_in(
        &self,
        transaction: &Connection,
        actor: &str,
        action: &str,
        target: &str,
        outcome: Outcome,
        details: &str,
    ) -> anyhow::Result<i64> {
        append_in(
            transaction,
            &self.key_path,
            self.settings.checkpoint_every,
            &NewEntry::now(actor, action, target, outcome, details),
        )
    }
}

/// The newest entry's seq and hash.
fn head(connection: &Connection) -> rusqlite::Result<Option<(i64, String)>> {
    connection
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
}

/// The most time allowed between the newest checkpoint and a later entry:
/// 10 minutes.
pub const CHECKPOINT_PERIOD_MS: i64 = 10 * 60 * 1000;

/// The text before a checkpoint's JSON when it is sent off the host (to
/// syslog, to the SIEM) and printed by `audit checkpoints`.
pub const ANCHOR_PREFIX: &str = "countywatch-audit-checkpoint ";

/// A signed checkpoint: links the checkpoint chain and fixes the trail's
/// length and head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Its number in the checkpoint chain, from 1.
    pub seq: i64,
    /// When it was signed, Unix milliseconds.
    pub at: i64,
    /// How many entries the trail held (the head entry's seq).
    pub entries: i64,
    /// The head entry's hash.
    pub head_hash: String,
    /// The previous checkpoint's [`Checkpoint::hash`] ([`GENESIS`] for the first).
    pub prev_checkpoint_hash: String,
    /// The signing key's id: the first 16 hex digits of the SHA-256 of its
    /// public key.
    pub key_id: String,
    /// Ed25519 signature of [`Checkpoint::message`], hex.
    pub signature: String,
}

impl Checkpoint {
    /// The signed text: every field but the signature, one per line.
    pub fn message(&self) -> String {
        format!(
            "countywatch audit checkpoint v2\nseq={}\nat={}\nentries={}\nhead_hash={}\nprev_checkpoint_hash={}\nkey_id={}\n",
            self.seq, self.at, self.entries, self.head_hash, self.prev_checkpoint_hash, self.key_id
        )
    }

    /// This checkpoint's hash, which the next one signs.
    pub fn hash(&self) -> String {
        sha256_hex(self.message().as_bytes())
    }

    /// The one-line form sent to syslog and the SIEM.
    pub fn anchor_line(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        format!("{ANCHOR_PREFIX}{json}")
    }

    /// Reads a checkpoint from a line holding [`ANCHOR_PREFIX`] (anything
    /// before it, such as a syslog header, is skipped).
    pub fn from_anchor_line(line: &str) -> Option<Checkpoint> {
        let start = line.find(ANCHOR_PREFIX)? + ANCHOR_PREFIX.len();
        serde_json::from_str(line[start..].trim()).ok()
    }

    /// Whether the signature is valid for `public_key`.
    fn signed_by(&self, public_key: &[u8]) -> bool {
        hex::decode(&self.signature).is_ok_and(|signature| {
            UnparsedPublicKey::new(&ED25519, public_key)
                .verify(self.message().as_bytes(), &signature)
                .is_ok()
        })
    }
}

/// A retention purge's signed statement of where the trail now starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurgeRecord {
    /// The oldest entry kept.
    pub first_kept_seq: i64,
    /// Its hash.
    pub first_kept_hash: String,
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// The signing key's id.
    pub key_id: String,
    /// Ed25519 signature of [`PurgeRecord::message`], hex.
    pub signature: String,
}

impl PurgeRecord {
    /// The signed text.
    fn message(&self) -> String {
        format!(
            "countywatch audit purge v1\nfirst_kept_seq={}\nfirst_kept_hash={}\nat={}\nkey_id={}\n",
            self.first_kept_seq, self.first_kept_hash, self.at_ms, self.key_id
        )
    }
}

/// The id checkpoints name their key by.
fn key_id(public_key: &[u8]) -> String {
    sha256_hex(public_key).chars().take(16).collect()
}

/// The newest checkpoint.
pub(crate) fn latest_checkpoint(connection: &Connection) -> rusqlite::Result<Option<Checkpoint>> {
    connection
        .query_row(
            &format!(
                "SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY seq DESC LIMIT 1"
            ),
            [],
            checkpoint_row,
        )
        .optional()
}

/// The columns [`checkpoint_row`] reads.
const CHECKPOINT_COLUMNS: &str =
    "seq, at_ms, entries, head_hash, prev_checkpoint_hash, key_id, signature";

fn checkpoint_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Checkpoint> {
    Ok(Checkpoint {
        seq: row.get(0)?,
        at: row.get(1)?,
        entries: row.get(2)?,
        head_hash: row.get(3)?,
        prev_checkpoint_hash: row.get(4)?,
        key_id: row.get(5)?,
        signature: row.get(6)?,
    })
}

/// Every checkpoint from number `since` on, oldest first.
pub(crate) fn checkpoints_since(
    connection: &Connection,
    since: i64,
) -> rusqlite::Result<Vec<Checkpoint>> {
    let mut statement = connection.prepare(&format!(
        "SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE seq >= ?1 ORDER BY seq"
    ))?;
    let rows = statement.query_map(params![since], checkpoint_row)?;
    rows.collect()
}

/// Signs a checkpoint over the head `entries`/`head_hash`, chained to the
/// newest one.
fn sign_checkpoint(
    connection: &Connection,
    key_path: &Path,
    entries: i64,
    head_hash: &str,
    at_ms: i64,
) -> anyhow::Result<Checkpoint> {
    let key = load_or_create_key(key_path)?;
    let previous = latest_checkpoint(connection)?;
    let mut checkpoint = Checkpoint {
        seq: previous
            .as_ref()
            .map_or(1, |last| last.seq.saturating_add(1)),
        at: at_ms,
        entries,
        head_hash: head_hash.to_string(),
        prev_checkpoint_hash: previous
            .as_ref()
            .map_or_else(|| GENESIS.to_string(), Checkpoint::hash),
        key_id: key_id(key.public_key().as_ref()),
        signature: String::new(),
    };
    checkpoint.signature = hex::encode(key.sign(checkpoint.message().as_bytes()).as_ref());
    connection.execute(
        "INSERT INTO audit_checkpoints
         (seq, at_ms, entries, head_hash, prev_checkpoint_hash, key_id, signature, anchored)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)",
        params![
            checkpoint.seq,
            checkpoint.at,
            checkpoint.entries,
            checkpoint.head_hash,
            checkpoint.prev_checkpoint_hash,
            checkpoint.key_id,
            checkpoint.signature
        ],
    )?;
    Ok(checkpoint)
}

/// Signs the current head unless the newest checkpoint covers it already,
/// and, when `only_after_ms` is given, only if the newest checkpoint is
/// that old (the 10-minute rule).
fn checkpoint_head(
    connection: &Connection,
    key_path: &Path,
    now: i64,
    only_after_ms: Option<i64>,
) -> anyhow::Result<Option<Checkpoint>> {
    let Some((seq, hash)) = head(connection)? else {
        return Ok(None);
    };
    let last = latest_checkpoint(connection)?;
    if let Some(last) = &last {
        let old_enough = only_after_ms.is_none_or(|period| now.saturating_sub(last.at) >= period);
        if last.entries >= seq || !old_enough {
            return Ok(None);
        }
    }
    sign_checkpoint(connection, key_path, seq, &hash, now).map(Some)
}

/// Deletes the entries older than `cutoff_ms` (never the newest), signs a
/// purge record naming the first one kept, and appends an `audit.purged`
/// entry, all in one transaction. Returns how many entries went.
pub(crate) fn purge_before(
    connection: &mut Connection,
    key_path: &Path,
    checkpoint_every: u32,
    cutoff_ms: i64,
) -> anyhow::Result<u64> {
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let first_kept: Option<(i64, String)> = transaction
        .query_row(
            "SELECT seq, hash FROM audit WHERE at_ms >= ?1 OR seq = (SELECT MAX(seq) FROM audit)
             ORDER BY seq LIMIT 1",
            params![cutoff_ms],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let Some((first_kept_seq, first_kept_hash)) = first_kept else {
        return Ok(0);
    };
    let deleted =
        transaction.execute("DELETE FROM audit WHERE seq < ?1", params![first_kept_seq])?;
    if deleted == 0 {
        return Ok(0);
    }
    let key = load_or_create_key(key_path)?;
    let now = now_ms();
    let mut record = PurgeRecord {
        first_kept_seq,
        first_kept_hash,
        at_ms: now,
        key_id: key_id(key.public_key().as_ref()),
        signature: String::new(),
    };
    record.signature = hex::encode(key.sign(record.message().as_bytes()).as_ref());
    transaction.execute(
        "INSERT OR REPLACE INTO audit_purges (first_kept_seq, first_kept_hash, at_ms, key_id, signature)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            record.first_kept_seq,
            record.first_kept_hash,
            record.at_ms,
            record.key_id,
            record.signature
        ],
    )?;
    append_in(
        &transaction,
        key_path,
        checkpoint_every,
        &NewEntry {
            at_ms: now,
            actor: "system",
            action: "audit.purged",
            target: "audit",
            outcome: Outcome::Success,
            details: &format!(
                "{deleted} entries older than {cutoff_ms}; the trail starts at entry {first_kept_seq}"
            ),
        },
    )?;
    transaction.commit()?;
    Ok(deleted as u64)
}

/// Loads the signing key, creating it (0600) on first use.
fn load_or_create_key(path: &Path) -> anyhow::Result<Ed25519KeyPair> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .map_err(|_| anyhow::anyhow!("cannot generate the audit signing key"))?;
            countywatch_daemon::durable_file::create_new(path, document.as_ref(), 0o600)?;
            document.as_ref().to_vec()
        }
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", path.display()));
        }
    };
    Ed25519KeyPair::from_pkcs8(&bytes)
        .map_err(|_| anyhow::anyhow!("{} is not an Ed25519 PKCS#8 key", path.display()))
}

/// Where a break was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BreakAt {
    /// At this entry.
    Entry(i64),
    /// At this checkpoint.
    Checkpoint(i64),
    /// The trail as a whole (empty, or not covered by any checkpoint).
    Trail,
}

impl std::fmt::Display for BreakAt {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BreakAt::Entry(seq) => write!(formatter, "entry {seq}"),
            BreakAt::Checkpoint(seq) => write!(formatter, "checkpoint {seq}"),
            BreakAt::Trail => formatter.write_str("the trail"),
        }
    }
}

/// The first problem [`verify`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Break {
    /// Where.
    pub at: BreakAt,
    /// What is wrong, as a sentence fragment.
    pub problem: String,
}

impl Break {
    fn new(at: BreakAt, problem: impl Into<String>) -> Break {
        Break {
            at,
            problem: problem.into(),
        }
    }
}

/// What [`verify`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verification {
    /// Entries checked.
    pub entries: i64,
    /// The oldest and newest entry present.
    pub range: Option<(i64, i64)>,
    /// Signed checkpoints checked.
    pub checkpoints: i64,
    /// The newest checkpoint.
    pub newest_checkpoint: Option<Checkpoint>,
    /// The newest purge record, when the trail no longer starts at 1.
    pub purge: Option<PurgeRecord>,
    /// Anchor lines checked against the database.
    pub anchors: usize,
    /// The newest anchored checkpoint's number.
    pub newest_anchor: Option<i64>,
    /// The first problem, if any.
    pub first_break: Option<Break>,
    /// The id of the key the checkpoints were verified with, to compare with
    /// a copy kept elsewhere.
    pub key_id: Option<String>,
}

impl Verification {
    /// What was proved and what cannot be without anchors, for people.
    pub fn report(&self) -> String {
        let mut lines = Vec::new();
        if let Some(key) = &self.key_id {
            lines.push(format!("checkpoint signing key id: {key}"));
        }
        let (Some((first, last)), Some(checkpoint)) = (self.range, &self.newest_checkpoint) else {
            return lines.join("\n");
        };
        lines.push(format!(
            "audit trail intact: {} entries, {} signed checkpoints",
            self.entries, self.checkpoints
        ));
        let start = match &self.purge {
            Some(purge) => format!(
                "the trail starts at entry {first}, where the retention purge signed at {} left it",
                format_ms(purge.at_ms)
            ),
            None => "the trail starts at entry 1".to_string(),
        };
        lines.push(format!(
            "proved: entries {first}..{} are present and unaltered ({start}), covered by checkpoint {} signed at {}",
            checkpoint.entries.min(last),
            checkpoint.seq,
            format_ms(checkpoint.at)
        ));
        lines.push(format!(
            "proved: checkpoints 1..{} form an unbroken signed chain",
            checkpoint.seq
        ));
        if last > checkpoint.entries {
            lines.push(format!(
                "not yet signed: entries {}..{last} follow the newest checkpoint within the allowed bound; they are hash-linked only, so they could be rewritten undetected until the next checkpoint",
                checkpoint.entries + 1
            ));
        }
        match self.newest_anchor {
            Some(anchor) => lines.push(format!(
                "proved with {} anchor lines: the database holds every anchored checkpoint up to {anchor}, unchanged and signed with the same key",
                self.anchors
            )),
            None => {
                lines.push(format!(
                    "cannot prove without anchors: that no entries or checkpoints newer than checkpoint {} were deleted, nor that the trail was not rewritten and re-signed by someone holding the signing key (root on this host); run `audit verify --anchors FILE` with the checkpoint lines your syslog server or SIEM received",
                    checkpoint.seq
                ));
            }
        }
        if self.newest_anchor.is_some() {
            lines.push(format!(
                "cannot prove from anchors: entries after the newest anchored checkpoint ({}..{last})",
                self.newest_anchor
                    .and_then(|anchor| (anchor == checkpoint.seq).then_some(checkpoint.entries + 1))
                    .unwrap_or(first)
            ));
        }
        lines.join("\n")
    }
}

/// A Unix millisecond time as RFC 3339 UTC.
fn format_ms(at_ms: i64) -> String {
    countywatch_notify::alert::rfc3339(at_ms)
}

/// How to verify.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// The configured checkpoint period in entries (the bound the newest
    /// checkpoint must meet).
    pub checkpoint_every: u32,
    /// Checkpoints received elsewhere (syslog, the SIEM), to check the
    /// database against.
    pub anchors: Option<Vec<Checkpoint>>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            checkpoint_every: crate::incident::config::IncidentsConfig::default().checkpoint_every,
            anchors: None,
        }
    }
}

/// Reads anchor lines (anything else in the file is skipped); errors if the
/// file holds none.
pub fn read_anchors(path: &Path) -> anyhow::Result<Vec<Checkpoint>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let anchors: Vec<Checkpoint> = text
        .lines()
        .filter_map(Checkpoint::from_anchor_line)
        .collect();
    if anchors.is_empty() {
        anyhow::bail!("{} holds no {ANCHOR_PREFIX}lines", path.display());
    }
    Ok(anchors)
}

/// [`verify_with`] with the default bound and no anchors.
pub fn verify(data_dir: &Path) -> anyhow::Result<Verification> {
    verify_with(data_dir, &VerifyOptions::default())
}

/// Walks the whole trail of `data_dir`: every entry's link and hash, the
/// start (entry 1 or a signed purge record), the checkpoint chain and its
/// signatures, every checkpoint's head against the entries, the newest
/// checkpoint's distance from the tail, and the anchors if given.
pub fn verify_with(data_dir: &Path, options: &VerifyOptions) -> anyhow::Result<Verification> {
    let path = data_dir.join(crate::incident::store::FILE_NAME);
    if !path.exists() {
        anyhow::bail!("{} does not exist", path.display());
    }
    let connection = connect(&path)?;
    let public_key = match std::fs::read(data_dir.join(KEY_FILE)) {
        Ok(bytes) => Some(
            Ed25519KeyPair::from_pkcs8(&bytes)
                .map_err(|_| anyhow::anyhow!("{KEY_FILE} is not an Ed25519 PKCS#8 key"))?
                .public_key()
                .as_ref()
                .to_vec(),
        ),
        Err(_) => None,
    };
    let mut result = Verification {
        key_id: public_key.as_deref().map(key_id),
        ..Verification::default()
    };
    result.first_break = check(&connection, public_key.as_deref(), options, &mut result)?;
    Ok(result)
}

/// The checks of [`verify_with`]; fills `result` and returns the first break.
fn check(
    connection: &Connection,
    public_key: Option<&[u8]>,
    options: &VerifyOptions,
    result: &mut Verification,
) -> anyhow::Result<Option<Break>> {
    // The checkpoint chain first: it says how long the trail must be.
    let checkpoints = checkpoints_since(connection, 0)?;
    result.checkpoints = i64::try_from(checkpoints.len()).unwrap_or(i64::MAX);
    let mut previous_hash = GENESIS.to_string();
    let mut previous_entries = 0;
    for (index, checkpoint) in checkpoints.iter().enumerate() {
        let expected_seq = i64::try_from(index).unwrap_or(i64::MAX) + 1;
        let at = BreakAt::Checkpoint(checkpoint.seq);
        let Some(public_key) = public_key else {
            return Ok(Some(Break::new(
                at,
                format!("{KEY_FILE} is missing: cannot check checkpoint signatures"),
            )));
        };
        let problem = if checkpoint.seq != expected_seq {
            Some(format!("checkpoint {expected_seq} is missing"))
        } else if checkpoint.prev_checkpoint_hash != previous_hash {
            Some("it does not link to the previous checkpoint".to_string())
        } else if checkpoint.key_id != key_id(public_key) || !checkpoint.signed_by(public_key) {
            Some("its signature is not valid for this trail's key".to_string())
        } else if checkpoint.entries <= previous_entries {
            Some("it covers no more entries than the previous checkpoint".to_string())
        } else {
            None
        };
        if let Some(problem) = problem {
            return Ok(Some(Break::new(at, problem)));
        }
        previous_hash = checkpoint.hash();
        previous_entries = checkpoint.entries;
    }
    result.newest_checkpoint = checkpoints.last().cloned();

    // Where the trail may start: entry 1, or where the newest purge says.
    result.purge = connection
        .query_row(
            "SELECT first_kept_seq, first_kept_hash, at_ms, key_id, signature FROM audit_purges
             ORDER BY first_kept_seq DESC LIMIT 1",
            [],
            |row| {
                Ok(PurgeRecord {
                    first_kept_seq: row.get(0)?,
                    first_kept_hash: row.get(1)?,
                    at_ms: row.get(2)?,
                    key_id: row.get(3)?,
                    signature: row.get(4)?,
                })
            },
        )
        .optional()?;
    if let Some(purge) = &result.purge {
        let valid = public_key.is_some_and(|public_key| {
            purge.key_id == key_id(public_key)
                && hex::decode(&purge.signature).is_ok_and(|signature| {
                    UnparsedPublicKey::new(&ED25519, public_key)
                        .verify(purge.message().as_bytes(), &signature)
                        .is_ok()
                })
        });
        if !valid {
            return Ok(Some(Break::new(
                BreakAt::Entry(purge.first_kept_seq),
                "the purge record naming it as the first kept entry is not validly signed",
            )));
        }
    }

    // Every entry, in order.
    let heads: std::collections::BTreeMap<i64, &Checkpoint> = checkpoints
        .iter()
        .map(|checkpoint| (checkpoint.entries, checkpoint))
        .collect();
    let mut statement = connection.prepare(
        "SELECT seq, at_ms, actor, action, target, outcome, details, prev_hash, hash
         FROM audit ORDER BY seq",
    )?;
    let mut rows = statement.query([])?;
    let mut previous: Option<(i64, String)> = None;
    let mut tail_at_ms = 0;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let at_ms: i64 = row.get(1)?;
        let prev_hash: String = row.get(7)?;
        let hash: String = row.get(8)?;
        let computed = entry_hash(
            &prev_hash,
            &Content {
                seq,
                at_ms,
                actor: &row.get::<_, String>(2)?,
                action: &row.get::<_, String>(3)?,
                target: &row.get::<_, String>(4)?,
                outcome: &row.get::<_, String>(5)?,
                details: &row.get::<_, String>(6)?,
            },
        );
        result.entries += 1;
        let problem = match &previous {
            Some((previous_seq, _)) if seq != previous_seq + 1 => Some(format!(
                "entry {} is missing (found {seq} after {previous_seq})",
                previous_seq + 1
            )),
            Some((_, previous_hash)) if &prev_hash != previous_hash => {
                Some("prev_hash does not match the previous entry's hash".to_string())
            }
            None => start_problem(seq, &prev_hash, &hash, result.purge.as_ref()),
            _ if computed != hash => {
                Some("content does not match its hash (the row was edited)".to_string())
            }
            _ => None,
        };
        let problem = problem.or_else(|| {
            (computed != hash)
                .then(|| "content does not match its hash (the row was edited)".to_string())
        });
        let problem = problem.or_else(|| {
            heads
                .get(&seq)
                .filter(|checkpoint| checkpoint.head_hash != hash)
                .map(|checkpoint| {
                    format!(
                        "its hash differs from the one checkpoint {} signed: it or an entry before it was changed",
                        checkpoint.seq
                    )
                })
        });
        if let Some(problem) = problem {
            return Ok(Some(Break::new(BreakAt::Entry(seq), problem)));
        }
        if previous.is_none() {
            result.range = Some((seq, seq));
        }
        previous = Some((seq, hash));
        tail_at_ms = at_ms;
    }
    drop(rows);
    let Some((tail, _)) = previous else {
        return Ok(Some(Break::new(
            BreakAt::Trail,
            match &result.newest_checkpoint {
                Some(checkpoint) => format!(
                    "the trail is empty, but checkpoint {} signed {} entries",
                    checkpoint.seq, checkpoint.entries
                ),
                None => "the trail is empty".to_string(),
            },
        )));
    };
    if let Some((first, _)) = result.range {
        result.range = Some((first, tail));
    }

    // The newest checkpoint bounds the tail from both sides.
    let Some(newest) = result.newest_checkpoint.clone() else {
        return Ok(Some(Break::new(
            BreakAt::Trail,
            "no signed checkpoint covers the trail (the table of checkpoints was emptied)",
        )));
    };
    if newest.entries > tail {
        return Ok(Some(Break::new(
            BreakAt::Entry(tail + 1),
            format!(
                "entries {}..{} are missing: checkpoint {} signed {} entries",
                tail + 1,
                newest.entries,
                newest.seq,
                newest.entries
            ),
        )));
    }
    let unsigned = tail - newest.entries;
    if unsigned > i64::from(options.checkpoint_every.max(1)) {
        return Ok(Some(Break::new(
            BreakAt::Entry(newest.entries + 1),
            format!(
                "{unsigned} entries follow the newest checkpoint ({}), more than checkpoint_every ({}) allows: checkpoints after it were deleted",
                newest.seq, options.checkpoint_every
            ),
        )));
    }
    if unsigned > 0 && tail_at_ms.saturating_sub(newest.at) > CHECKPOINT_PERIOD_MS {
        return Ok(Some(Break::new(
            BreakAt::Entry(newest.entries + 1),
            format!(
                "entries follow the newest checkpoint ({}, signed at {}) by more than 10 minutes: checkpoints after it were deleted",
                newest.seq,
                format_ms(newest.at)
            ),
        )));
    }

    // Anchors: each must be in the database as it was sent.
    if let Some(anchors) = &options.anchors {
        result.anchors = anchors.len();
        for anchor in anchors {
            let at = BreakAt::Checkpoint(anchor.seq);
            let signed = public_key.is_some_and(|public_key| {
                anchor.key_id == key_id(public_key) && anchor.signed_by(public_key)
            });
            if !signed {
                return Ok(Some(Break::new(
                    at,
                    "the anchored checkpoint was not signed with this trail's key (the key was replaced and the trail re-signed?)",
                )));
            }
            match checkpoints.iter().find(|stored| stored.seq == anchor.seq) {
                None => {
                    return Ok(Some(Break::new(
                        at,
                        format!(
                            "anchored (signed at {} over {} entries) but missing from the database: the trail was truncated after checkpoint {} (entry {tail})",
                            format_ms(anchor.at),
                            anchor.entries,
                            newest.seq
                        ),
                    )));
                }
                Some(stored) if stored != anchor => {
                    return Ok(Some(Break::new(
                        at,
                        "differs from the anchored copy: the trail was rewritten and re-signed",
                    )));
                }
                Some(_) => {}
            }
            result.newest_anchor = result.newest_anchor.max(Some(anchor.seq));
        }
    }
    Ok(None)
}

/// What is wrong with the oldest entry present, if anything: it must be
/// entry 1 starting from [`GENESIS`], or the entry a signed purge record
/// names, with the hash it names.
fn start_problem(
    seq: i64,
    prev_hash: &str,
    hash: &str,
    purge: Option<&PurgeRecord>,
) -> Option<String> {
    match purge {
        None if seq != 1 => Some(format!(
            "entries 1..{} are missing and no purge record says retention removed them",
            seq - 1
        )),
        None if prev_hash != GENESIS => {
            Some("the first entry does not start from the genesis hash".to_string())
        }
        None => None,
        Some(purge) if purge.first_kept_seq != seq => Some(format!(
            "the trail starts at entry {seq}, but the last retention purge kept entries from {}",
            purge.first_kept_seq
        )),
        Some(purge) if purge.first_kept_hash != hash => {
            Some("its hash differs from the one the purge record signed".to_string())
        }
        Some(_) => None,
    }
}

/// When entries with `action` were written in `[from_ms, to_ms)`, oldest
/// first (the report's evidence of backups).
pub fn times_of_action(
    store: &IncidentStore,
    action: &str,
    from_ms: i64,
    to_ms: i64,
) -> anyhow::Result<Vec<i64>> {
    let connection = store.read();
    let mut statement = connection.prepare_cached(
        "SELECT at_ms FROM audit WHERE action = ?1 AND at_ms >= ?2 AND at_ms < ?3 ORDER BY seq",
    )?;
    let rows = statement.query_map(params![action, from_ms, to_ms], |row| row.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How a filter of the trail matches a field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TextMatch {
    /// The field is this text.
    Is(String),
    /// The field starts with this text (`audit list --action user.`).
    StartsWith(String),
    /// The field contains this text (the page's filters).
    Contains(String),
}

impl TextMatch {
    /// `column`'s condition and its values.
    fn add_to(&self, conditions: &mut Conditions, column: &str) {
        let text = |value: &String| Value::Text(value.clone());
        match self {
            TextMatch::Is(value) => conditions.add(&format!("{column} = ?"), Some(text(value))),
            TextMatch::StartsWith(value) => conditions.add_with(
                &format!("substr({column}, 1, length(?)) = ?"),
                vec![text(value), text(value)],
            ),
            TextMatch::Contains(value) => {
                conditions.add(&format!("instr({column}, ?) > 0"), Some(text(value)));
            }
        }
    }
}

/// Which entries of the trail to read; `None` filters nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Entries at or after this time, Unix milliseconds.
    pub since_ms: Option<i64>,
    /// By who did it.
    pub actor: Option<TextMatch>,
    /// By what was done.
    pub action: Option<TextMatch>,
    /// By what it was done to.
    pub target: Option<TextMatch>,
}

impl AuditFilter {
    fn conditions(&self) -> Conditions {
        let mut conditions = Conditions::default();
        conditions.add("at_ms >= ?", self.since_ms.map(Value::Integer));
        for (column, filter) in [
            ("actor", &self.actor),
            ("action", &self.action),
            ("target", &self.target),
        ] {
            if let Some(filter) = filter {
                filter.add_to(&mut conditions, column);
            }
        }
        conditions
    }
}

/// The entries `filter` selects, newest first: `limit` of them after
/// skipping `offset`.
pub fn entries(
    store: &IncidentStore,
    filter: &AuditFilter,
    limit: u32,
    offset: u32,
) -> anyhow::Result<Vec<AuditEntry>> {
    let conditions = filter.conditions();
    let connection = store.read();
    let mut statement = connection.prepare_cached(&format!(
        "SELECT seq, at_ms, actor, action, target, outcome, details, prev_hash, hash FROM audit
         WHERE {} ORDER BY seq DESC LIMIT ? OFFSET ?",
        conditions.sql()
    ))?;
    let values = conditions.values_then(&[Value::from(limit), Value::from(offset)]);
    let rows = statement.query_map(params_from_iter(values), |row| {
        Ok(AuditEntry {
            seq: row.get(0)?,
            at_ms: row.get(1)?,
            actor: row.get(2)?,
            action: row.get(3)?,
            target: row.get(4)?,
            outcome: row.get(5)?,
            details: row.get(6)?,
            prev_hash: row.get(7)?,
            hash: row.get(8)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How many entries `filter` selects.
pub fn count(store: &IncidentStore, filter: &AuditFilter) -> anyhow::Result<i64> {
    let conditions = filter.conditions();
    let connection = store.read();
    let mut statement = connection.prepare_cached(&format!(
        "SELECT COUNT(*) FROM audit WHERE {}",
        conditions.sql()
    ))?;
    Ok(
        statement.query_row(params_from_iter(conditions.values_then(&[])), |row| {
            row.get(0)
        })?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trail(entries: usize, checkpoint_every: u32) -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::open(dir.path(), checkpoint_every).unwrap();
        for index in 0..entries {
            audit
                .append(
                    "alice",
                    "test",
                    &format!("thing/{index}"),
                    Outcome::Success,
                    "",
                )
                .unwrap();
        }
        let connection = Connection::open(dir.path().join("incidents.db")).unwrap();
        (dir, connection)
    }

    fn broken_at(dir: &Path) -> Option<Break> {
        verify_with(
            dir,
            &VerifyOptions {
                checkpoint_every: 2,
                anchors: None,
            },
        )
        .unwrap()
        .first_break
    }

    #[test]
    fn an_edited_entry_breaks_the_chain_at_that_entry() {
        let (dir, connection) = trail(5, 2);
        let clean = verify(dir.path()).unwrap();
        assert_eq!(clean.entries, 5);
        // The first entry signs one, then every second: 1, 2, 4.
        assert_eq!(clean.checkpoints, 3);
        assert_eq!(clean.first_break, None);
        connection
            .execute("UPDATE audit SET actor = 'mallory' WHERE seq = 3", [])
            .unwrap();
        assert_eq!(broken_at(dir.path()).unwrap().at, BreakAt::Entry(3));
    }

    #[test]
    fn a_deleted_entry_is_reported_as_missing() {
        let (dir, connection) = trail(4, 100);
        connection
            .execute("DELETE FROM audit WHERE seq = 2", [])
            .unwrap();
        let broken = verify(dir.path()).unwrap().first_break.unwrap();
        assert_eq!(broken.at, BreakAt::Entry(3));
        assert!(broken.problem.contains("entry 2 is missing"), "{broken:?}");
    }

    #[test]
    fn a_rewritten_chain_fails_the_signed_checkpoint() {
        let (dir, connection) = trail(3, 2);
        // Rewrite entry 3 (which checkpoint 2 signs) and recompute its hash, as someone without the
        // key would: the chain is consistent, the signed head is not.
        let (prev, at): (String, i64) = connection
            .query_row(
                "SELECT prev_hash, at_ms FROM audit WHERE seq = 3",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        let forged = entry_hash(
            &prev,
            &Content {
                seq: 3,
                at_ms: at,
                actor: "mallory",
                action: "test",
                target: "thing/2",
                outcome: "success",
                details: "",
            },
        );
        connection
            .execute(
                "UPDATE audit SET actor = 'mallory', hash = ?1 WHERE seq = 3",
                params![forged],
            )
            .unwrap();
        let broken = broken_at(dir.path()).unwrap();
        assert_eq!(broken.at, BreakAt::Entry(3));
        assert!(broken.problem.contains("checkpoint 2 signed"), "{broken:?}");
    }

    #[test]
    fn a_purge_signs_the_new_start_and_deleting_more_is_caught() {
        let (dir, connection) = trail(6, 2);
        let key = dir.path().join(KEY_FILE);
        let mut writer = connect(&dir.path().join("incidents.db")).unwrap();
        // Everything older than entry 4 goes.
        let cutoff: i64 = connection
            .query_row("SELECT at_ms FROM audit WHERE seq = 4", [], |row| {
                row.get(0)
            })
            .unwrap();
        connection
            .execute("UPDATE audit SET at_ms = at_ms - 1 WHERE seq < 4", [])
            .unwrap();
        // Editing at_ms broke entries 1..3, which the purge removes.
        assert_eq!(purge_before(&mut writer, &key, 2, cutoff).unwrap(), 3);
        let after = verify(dir.path()).unwrap();
        assert_eq!(after.first_break, None, "{after:?}");
        assert_eq!(after.range, Some((4, 7)));
        connection
            .execute("DELETE FROM audit WHERE seq = 4", [])
            .unwrap();
        let broken = broken_at(dir.path()).unwrap();
        assert_eq!(broken.at, BreakAt::Entry(5));
        assert!(broken.problem.contains("kept entries from 4"), "{broken:?}");
    }

    #[test]
    fn anchors_catch_a_truncated_tail_and_survive_a_round_trip() {
        let (dir, connection) = trail(5, 2);
        let audit = Audit::open(dir.path(), 2).unwrap();
        let lines: Vec<String> = audit
            .checkpoints_since(1)
            .unwrap()
            .iter()
            .map(|checkpoint| format!("Dec  6 04:50:00 host x[1]: {}", checkpoint.anchor_line()))
            .collect();
        let anchors: Vec<Checkpoint> = lines
            .iter()
            .filter_map(|line| Checkpoint::from_anchor_line(line))
            .collect();
        assert_eq!(anchors.len(), 3);
        let with_anchors = VerifyOptions {
            checkpoint_every: 2,
            anchors: Some(anchors),
        };
        assert_eq!(
            verify_with(dir.path(), &with_anchors).unwrap().first_break,
            None
        );
        // Drop the last two entries and the checkpoint over them: the
        // database alone still looks whole, the anchors do not.
        connection
            .execute("DELETE FROM audit WHERE seq > 3", [])
            .unwrap();
        connection
            .execute("DELETE FROM audit_checkpoints WHERE seq = 3", [])
            .unwrap();
        assert_eq!(broken_at(dir.path()), None);
        let broken = verify_with(dir.path(), &with_anchors)
            .unwrap()
            .first_break
            .unwrap();
        assert_eq!(broken.at, BreakAt::Checkpoint(3));
        assert!(broken.problem.contains("truncated"), "{broken:?}");
    }

    #[test]
    fn filters_select_in_sql_with_limit_offset_and_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = IncidentStore::open(dir.path()).unwrap();
        for (actor, action, target) in [
            ("alice", "user.created", "user/bob"),
            ("alice", "user.disabled", "user/bob"),
            ("bob", "login", "user/bob"),
            ("alice", "users.listed", "users"),
            ("carol", "incident.acknowledged", "incident/12"),
        ] {
            store
                .audit(actor, action, target, Outcome::Success, "")
                .unwrap();
        }
        let actions = |filter: &AuditFilter, limit: u32, offset: u32| -> Vec<String> {
            entries(&store, filter, limit, offset)
                .unwrap()
                .into_iter()
                .map(|entry| entry.action)
                .collect()
        };
        let family = AuditFilter {
            action: Some(TextMatch::StartsWith("user.".to_string())),
            ..AuditFilter::default()
        };
        assert_eq!(actions(&family, 10, 0), ["user.disabled", "user.created"]);
        assert_eq!(count(&store, &family).unwrap(), 2);
        assert_eq!(actions(&family, 1, 1), ["user.created"]);
        let contains = AuditFilter {
            actor: Some(TextMatch::Contains("li".to_string())),
            target: Some(TextMatch::Contains("bob".to_string())),
            ..AuditFilter::default()
        };
        assert_eq!(actions(&contains, 10, 0), ["user.disabled", "user.created"]);
        let exact = AuditFilter {
            actor: Some(TextMatch::Is("bob".to_string())),
            ..AuditFilter::default()
        };
        assert_eq!(actions(&exact, 10, 0), ["login"]);
        let future = AuditFilter {
            since_ms: Some(i64::MAX),
            ..AuditFilter::default()
        };
        assert_eq!(count(&store, &future).unwrap(), 0);
        assert!(count(&store, &AuditFilter::default()).unwrap() >= 5);
    }
}
