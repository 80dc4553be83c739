//! The tamper-evident audit trail (MLPS 2.0, GB/T 22239-2019 8.1.4.3): every
//! change is an entry with its time, actor, action, target and outcome, in
//! the `audit` table of `incidents.db`.
//!
//! Entries are hash-chained: each stores the SHA-256 of the previous
//! entry's hash and its own content, so editing, deleting or inserting a row
//! breaks every later link. Every `checkpoint_every` entries (and on demand)
//! the head hash is signed with an Ed25519 key kept in the data dir
//! (`audit-signing.pk8`, 0600), so that rewriting the whole chain from an
//! edited row onwards also needs the key. [`verify`] walks the chain and
//! reports the first broken link.
//!
//! Retention deletes the oldest entries; verification then starts at the
//! oldest one left and trusts its `prev_hash` (recorded in the
//! `audit_purged` entry the purge appends).

use std::path::{Path, PathBuf};

use anyhow::Context;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::digest::sha256_hex;
use crate::incident::store::{IncidentStore, connect};
use countywatch_daemon::clock::now_ms;

/// The signing key's file name in the data dir (PKCS#8).
pub const KEY_FILE: &str = "audit-signing.pk8";
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
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let transaction =
            connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let seq = append_in(
            &transaction,
            &self.key_path,
            self.checkpoint_every,
            &NewEntry {
                at_ms: now_ms(),
                actor,
                action,
                target,
                outcome,
                details,
            },
        )?;
        transaction.commit()?;
        Ok(seq)
    }

    /// Signs the head of the chain now (the daily checkpoint).
    pub fn checkpoint(&self) -> anyhow::Result<Option<i64>> {
        let connection = self
            .connection
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        checkpoint_head(&connection, &self.key_path)
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
    let checkpoint_every = crate::incident::config::IncidentsConfig::default().checkpoint_every;
    let appended = Audit::open(data_dir, checkpoint_every)
        .and_then(|audit| audit.append(actor, action, target, outcome, details));
    if let Err(error) = appended {
        tracing::error!(action, target, "cannot write the audit trail: {error:#}");
    }
}

/// The actor name for command-line actions: `cli:` and the login user.
pub fn cli_actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".to_string())
    )
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
/// audit entry commit together). The caller's transaction must hold the
/// write lock (IMMEDIATE, or having written already) so that two appenders
/// never read the same head.
pub(crate) fn append_in(
    connection: &Connection,
    key_path: &Path,
    checkpoint_every: u32,
    entry: &NewEntry<'_>,
) -> anyhow::Result<i64> {
    let head: Option<(i64, String)> = connection
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let (seq, prev_hash) = match head {
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
    if seq % i64::from(checkpoint_every.max(1)) == 0 {
        sign_checkpoint(connection, key_path, seq, &hash, entry.at_ms)?;
    }
    Ok(seq)
}

/// Signs the current head unless it is signed already.
fn checkpoint_head(connection: &Connection, key_path: &Path) -> anyhow::Result<Option<i64>> {
    let head: Option<(i64, String)> = connection
        .query_row(
            "SELECT seq, hash FROM audit WHERE seq > COALESCE((SELECT MAX(seq) FROM audit_checkpoints), 0)
             ORDER BY seq DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let Some((seq, hash)) = head else {
        return Ok(None);
    };
    sign_checkpoint(connection, key_path, seq, &hash, now_ms())?;
    Ok(Some(seq))
}

fn sign_checkpoint(
    connection: &Connection,
    key_path: &Path,
    seq: i64,
    hash: &str,
    at_ms: i64,
) -> anyhow::Result<()> {
    let key = load_or_create_key(key_path)?;
    let signature = key.sign(checkpoint_message(seq, hash).as_bytes());
    connection.execute(
        "INSERT OR REPLACE INTO audit_checkpoints (seq, at_ms, hash, public_key, signature)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            seq,
            at_ms,
            hash,
            hex::encode(key.public_key().as_ref()),
            hex::encode(signature.as_ref())
        ],
    )?;
    Ok(())
}

fn checkpoint_message(seq: i64, hash: &str) -> String {
    format!("countywatch audit checkpoint v1\nseq={seq}\nhash={hash}\n")
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

/// What [`verify`] found.
#[derive(Debug, PartialEq, Eq)]
pub struct Verification {
    /// Entries checked.
    pub entries: i64,
    /// Signed checkpoints checked.
    pub checkpoints: i64,
    /// The first problem, if any: the entry's seq and what is wrong.
    pub first_break: Option<(i64, String)>,
    /// The public key checkpoints were verified with (hex), to compare with
    /// a copy kept elsewhere.
    pub public_key: Option<String>,
}

/// Walks the whole chain of `data_dir`'s audit trail and checks every
/// link, every hash and every checkpoint signature.
pub fn verify(data_dir: &Path) -> anyhow::Result<Verification> {
    let path = data_dir.join(crate::incident::store::FILE_NAME);
    if !path.exists() {
        anyhow::bail!("{} does not exist", path.display());
    }
    let connection = connect(&path)?;
    let key = match std::fs::read(data_dir.join(KEY_FILE)) {
        Ok(bytes) => Some(
            Ed25519KeyPair::from_pkcs8(&bytes)
                .map_err(|_| anyhow::anyhow!("{KEY_FILE} is not an Ed25519 PKCS#8 key"))?,
        ),
        Err(_) => None,
    };
    let public_key = key.as_ref().map(|key| key.public_key().as_ref().to_vec());
    let mut result = Verification {
        entries: 0,
        checkpoints: 0,
        first_break: None,
        public_key: public_key.as_ref().map(hex::encode),
    };
    let mut statement = connection.prepare(
        "SELECT seq, at_ms, actor, action, target, outcome, details, prev_hash, hash
         FROM audit ORDER BY seq",
    )?;
    let mut rows = statement.query([])?;
    let mut previous: Option<(i64, String)> = None;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let prev_hash: String = row.get(7)?;
        let hash: String = row.get(8)?;
        let computed = entry_hash(
            &prev_hash,
            &Content {
                seq,
                at_ms: row.get(1)?,
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
            None if seq == 1 && prev_hash != GENESIS => {
                Some("the first entry does not start from the genesis hash".to_string())
            }
            _ if computed != hash => {
                Some("content does not match its hash (the row was edited)".to_string())
            }
            _ => None,
        };
        if let Some(problem) = problem {
            result.first_break = Some((seq, problem));
            return Ok(result);
        }
        previous = Some((seq, hash));
    }
    drop(rows);
    let mut statement = connection.prepare(
        "SELECT c.seq, c.hash, c.signature, a.hash FROM audit_checkpoints c
         LEFT JOIN audit a ON a.seq = c.seq ORDER BY c.seq",
    )?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let signed_hash: String = row.get(1)?;
        let signature: String = row.get(2)?;
        let entry_hash: Option<String> = row.get(3)?;
        result.checkpoints += 1;
        let problem = if entry_hash.as_ref().is_some_and(|hash| hash != &signed_hash) {
            Some("the entry's hash differs from the signed checkpoint".to_string())
        } else if let Some(public_key) = &public_key {
            let valid = hex::decode(&signature).ok().is_some_and(|signature| {
                UnparsedPublicKey::new(&ED25519, public_key)
                    .verify(checkpoint_message(seq, &signed_hash).as_bytes(), &signature)
                    .is_ok()
            });
            (!valid).then(|| "the checkpoint's signature is not valid".to_string())
        } else {
            Some(format!(
                "{KEY_FILE} is missing: cannot check checkpoint signatures"
            ))
        };
        if let Some(problem) = problem {
            result.first_break = Some((seq, problem));
            return Ok(result);
        }
    }
    Ok(result)
}

/// The latest entries, newest first, optionally only those about `target`.
pub fn entries(
    store: &IncidentStore,
    target: Option<&str>,
    limit: u32,
) -> anyhow::Result<Vec<AuditEntry>> {
    let connection = store.read();
    let mut statement = connection.prepare_cached(
        "SELECT seq, at_ms, actor, action, target, outcome, details, prev_hash, hash FROM audit
         WHERE ?1 IS NULL OR target = ?1 ORDER BY seq DESC LIMIT ?2",
    )?;
    let rows = statement.query_map(params![target, limit], |row| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edited_entry_breaks_the_chain_at_that_entry() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::open(dir.path(), 2).unwrap();
        for index in 0..5 {
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
        let clean = verify(dir.path()).unwrap();
        assert_eq!(clean.entries, 5);
        assert_eq!(clean.checkpoints, 2);
        assert_eq!(clean.first_break, None);

        let connection = Connection::open(dir.path().join("incidents.db")).unwrap();
        connection
            .execute("UPDATE audit SET actor = 'mallory' WHERE seq = 3", [])
            .unwrap();
        let broken = verify(dir.path()).unwrap();
        assert_eq!(broken.first_break.map(|(seq, _)| seq), Some(3));
    }

    #[test]
    fn a_deleted_entry_is_reported_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::open(dir.path(), 100).unwrap();
        for _ in 0..4 {
            audit.append("a", "b", "c", Outcome::Failure, "d").unwrap();
        }
        let connection = Connection::open(dir.path().join("incidents.db")).unwrap();
        connection
            .execute("DELETE FROM audit WHERE seq = 2", [])
            .unwrap();
        let broken = verify(dir.path()).unwrap();
        let (seq, problem) = broken.first_break.unwrap();
        assert_eq!(seq, 3);
        assert!(problem.contains("entry 2 is missing"), "{problem}");
    }

    #[test]
    fn a_rewritten_chain_fails_the_signed_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::open(dir.path(), 2).unwrap();
        for _ in 0..2 {
            audit.append("a", "b", "c", Outcome::Success, "").unwrap();
        }
        // Rewrite entry 2 and recompute its hash, as someone without the
        // key would: the chain is consistent, the signature is not.
        let connection = Connection::open(dir.path().join("incidents.db")).unwrap();
        let prev: String = connection
            .query_row("SELECT prev_hash FROM audit WHERE seq = 2", [], |row| {
                row.get(0)
            })
            .unwrap();
        let at: i64 = connection
            .query_row("SELECT at_ms FROM audit WHERE seq = 2", [], |row| {
                row.get(0)
            })
            .unwrap();
        let forged = entry_hash(
            &prev,
            &Content {
                seq: 2,
                at_ms: at,
                actor: "mallory",
                action: "b",
                target: "c",
                outcome: "success",
                details: "",
            },
        );
        connection
            .execute(
                "UPDATE audit SET actor = 'mallory', hash = ?1 WHERE seq = 2",
                params![forged],
            )
            .unwrap();
        connection
            .execute(
                "UPDATE audit_checkpoints SET hash = ?1 WHERE seq = 2",
                params![forged],
            )
            .unwrap();
        let broken = verify(dir.path()).unwrap();
        assert_eq!(broken.entries, 2);
        let (seq, problem) = broken.first_break.unwrap();
        assert_eq!(seq, 2);
        assert!(problem.contains("signature"), "{problem}");
    }
}
