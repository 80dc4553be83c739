//! Silences: matchers plus a time range, with an author and a comment,
//! persisted in `notify.db`. The daemon keeps them in memory and reloads
//! when another process (the `silence` CLI) changed the file.
//!
//! A silence is pending before `starts_at`, active until `ends_at`, expired
//! after. Expiring sets `ends_at` to now; expired silences are kept for
//! [`RETENTION`] so that `silence list` can show them, then deleted.

use std::sync::Mutex;
use std::time::Duration;

use rusqlite::params;
use serde::Serialize;

use crate::alert::LabelSet;
use crate::db::Db;
use crate::matcher::{Matcher, all_match};

/// How long expired silences are kept (Alertmanager keeps 120 h).
pub const RETENTION: Duration = Duration::from_secs(120 * 3600);

/// A silence's state at some instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    /// Not started yet.
    Pending,
    /// Muting matching alerts.
    Active,
    /// Over.
    Expired,
}

impl SilenceState {
    /// The label value in `countywatch_silences{state}`.
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

/// One silence.
#[derive(Clone, Debug, PartialEq)]
pub struct Silence {
    /// Random identifier, 32 hex digits.
    pub id: String,
    /// Every matcher must match for an alert to be silenced.
    pub matchers: Vec<Matcher>,
    /// Start, Unix milliseconds.
    pub starts_at_ms: i64,
    /// End, Unix milliseconds.
    pub ends_at_ms: i64,
    /// Who created it.
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// Last change (creation or expiry).
    pub updated_at_ms: i64,
}

impl Silence {
    /// Its state at `now_ms`.
    pub fn state(&self, now_ms: i64) -> SilenceState {
        if now_ms < self.starts_at_ms {
            SilenceState::Pending
        } else if now_ms < self.ends_at_ms {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }
}

/// A notice owed about a silence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// It was created.
    Created,
    /// It expired.
    Expired,
}

/// Why a silence was refused.
#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    /// The request itself is wrong; the message says how.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] rusqlite::Error),
}

/// Silences in memory, backed by `notify.db`.
pub struct SilenceStore {
    /// The database.
    db: Db,
    /// Every stored silence, and the `data_version` they were read at.
    cache: Mutex<(Vec<Silence>, i64)>,
}

impl SilenceStore {
    /// Loads the stored silences.
    pub fn open(db: Db) -> Result<SilenceStore, SilenceError> {
        let store = SilenceStore {
            db,
            cache: Mutex::new((Vec::new(), -1)),
        };
        store.reload()?;
        Ok(store)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, (Vec<Silence>, i64)> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn reload(&self) -> Result<(), SilenceError> {
        let connection = self.db.lock();
        let version: i64 = connection.query_row("PRAGMA data_version", [], |row| row.get(0))?;
        let mut statement = connection.prepare(
            "SELECT id, matchers, starts_ms, ends_ms, created_by, comment, updated_ms
             FROM silences ORDER BY created_ms, id",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, String>(5)?,
                row.get::<_, i64>(6)?,
            ))
        })?;
        let mut silences = Vec::new();
        for row in rows {
            let (id, matchers, starts_at_ms, ends_at_ms, created_by, comment, updated_at_ms) = row?;
            // A row another version wrote that we cannot read is skipped,
            // never allowed to stop the daemon.
            let Ok(texts) = serde_json::from_str::<Vec<String>>(&matchers) else {
                tracing::warn!(%id, "skipping a silence with unreadable matchers");
                continue;
            };
            let Ok(matchers) = texts.iter().map(|text| Matcher::parse(text)).collect() else {
                tracing::warn!(%id, "skipping a silence with invalid matchers");
                continue;
            };
            silences.push(Silence {
                id,
                matchers,
                starts_at_ms,
                ends_at_ms,
                created_by,
                comment,
                updated_at_ms,
            });
        }
        drop(statement);
        drop(connection);
        *self.cache() = (silences, version);
        Ok(())
    }

    /// Reloads when another process changed the database since the last load.
    pub fn refresh(&self) -> Result<(), SilenceError> {
        let version: i64 = self
            .db
            .lock()
            .query_row("PRAGMA data_version", [], |row| row.get(0))?;
        if version != self.cache().1 {
            self.reload()?;
        }
        Ok(())
    }

    /// Creates a silence and returns its id.
    pub fn add(
        &self,
        matchers: Vec<Matcher>,
        starts_at_ms: i64,
        ends_at_ms: i64,
        created_by: &str,
        comment: &str,
        now_ms: i64,
    ) -> Result<String, SilenceError> {
        if matchers.is_empty() {
            return Err(SilenceError::Invalid(
                "a silence needs at least one matcher".into(),
            ));
        }
        if matchers.iter().all(|matcher| matcher.matches_value("")) {
            return Err(SilenceError::Invalid(
                "at least one matcher must not match the empty string, or the silence would mute everything".into(),
            ));
        }
        if ends_at_ms <= starts_at_ms || ends_at_ms <= now_ms {
            return Err(SilenceError::Invalid(
                "the silence must end after it starts and in the future".into(),
            ));
        }
        if created_by.trim().is_empty() {
            return Err(SilenceError::Invalid("a silence needs an author".into()));
        }
        let id = uuid_v4(rand::random::<[u8; 16]>());
        let texts: Vec<String> = matchers.iter().map(ToString::to_string).collect();
        let matchers_json = serde_json::to_string(&texts).unwrap_or_else(|_| "[]".to_string());
        self.db.lock().execute(
            "INSERT INTO silences (id, matchers, starts_ms, ends_ms, created_by, comment, created_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            params![id, matchers_json, starts_at_ms, ends_at_ms, created_by, comment, now_ms],
        )?;
        self.cache().0.push(Silence {
            id: id.clone(),
            matchers,
            starts_at_ms,
            ends_at_ms,
            created_by: created_by.to_string(),
            comment: comment.to_string(),
            updated_at_ms: now_ms,
        });
        Ok(id)
    }

    /// Expires a silence now; false when there is no unexpired silence with that id.
    pub fn expire(&self, id: &str, now_ms: i64) -> Result<bool, SilenceError> {
        // A pending silence expires without ever starting.
        let changed = self.db.lock().execute(
            "UPDATE silences SET starts_ms = MIN(starts_ms, ?2), ends_ms = ?2, updated_ms = ?2
             WHERE id = ?1 AND ends_ms > ?2",
            params![id, now_ms],
        )?;
        if changed == 0 {
            return Ok(false);
        }
        for silence in self.cache().0.iter_mut().filter(|silence| silence.id == id) {
            silence.starts_at_ms = silence.starts_at_ms.min(now_ms);
            silence.ends_at_ms = now_ms;
            silence.updated_at_ms = now_ms;
        }
        Ok(true)
    }

    /// Every silence, oldest first.
    pub fn list(&self) -> Vec<Silence> {
        self.cache().0.clone()
    }

    /// The ids of the active silences muting an alert with these labels.
    pub fn silencing(&self, labels: &LabelSet, now_ms: i64) -> Vec<String> {
        self.cache()
            .0
            .iter()
            .filter(|silence| silence.state(now_ms) == SilenceState::Active)
            .filter(|silence| all_match(&silence.matchers, labels))
            .map(|silence| silence.id.clone())
            .collect()
    }

    /// How many silences are in each state.
    pub fn counts(&self, now_ms: i64) -> [(SilenceState, usize); 3] {
        let mut counts = [
            (SilenceState::Active, 0),
            (SilenceState::Pending, 0),
            (SilenceState::Expired, 0),
        ];
        for silence in &self.cache().0 {
            let state = silence.state(now_ms);
            for (counted, count) in &mut counts {
                if *counted == state {
                    *count += 1;
                }
            }
        }
        counts
    }

    /// Notices owed (created, expired) that were not marked given yet.
    pub fn owed_notices(&self, now_ms: i64) -> Result<Vec<(Silence, Notice)>, SilenceError> {
        let connection = self.db.lock();
        let mut statement = connection.prepare(
            "SELECT id, noticed_created, noticed_expired, ends_ms FROM silences
             WHERE noticed_created = 0 OR (noticed_expired = 0 AND ends_ms <= ?1)",
        )?;
        let owed: Vec<(String, bool, bool, i64)> = statement
            .query_map([now_ms], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })?
            .collect::<Result<_, _>>()?;
        drop(statement);
        drop(connection);
        let silences = self.list();
        let mut notices = Vec::new();
        for (id, created, expired, ends_ms) in owed {
            let Some(silence) = silences.iter().find(|silence| silence.id == id) else {
                continue;
            };
            if !created {
                notices.push((silence.clone(), Notice::Created));
            }
            if !expired && ends_ms <= now_ms {
                notices.push((silence.clone(), Notice::Expired));
            }
        }
        Ok(notices)
    }

    /// Records that a notice was given (or deliberately not).
    pub fn mark_noticed(
        connection: &rusqlite::Connection,
        id: &str,
        notice: Notice,
    ) -> rusqlite::Result<()> {
        let column = match notice {
            Notice::Created => "noticed_created",
            Notice::Expired => "noticed_expired",
        };
        connection.execute(
            &format!("UPDATE silences SET {column} = 1 WHERE id = ?1"),
            [id],
        )?;
        Ok(())
    }

    /// Deletes silences expired longer than [`RETENTION`] ago.
    pub fn collect_garbage(&self, now_ms: i64) -> Result<(), SilenceError> {
        let horizon = now_ms - i64::try_from(RETENTION.as_millis()).unwrap_or(i64::MAX / 2);
        let deleted = self.db.lock().execute(
            "DELETE FROM silences WHERE ends_ms < ?1 AND noticed_expired = 1",
            [horizon],
        )?;
        if deleted > 0 {
            self.cache()
                .0
                .retain(|silence| silence.ends_at_ms >= horizon);
        }
        Ok(())
    }

    /// The database, for callers that record notices in their own transaction.
    pub fn db(&self) -> &Db {
        &self.db
    }
}

/// A random UUID (version 4) as Alertmanager gives silences, written
/// `8-4-4-4-12` in lower-case hex. Silences created before UUIDs keep
/// their 32-hex-digit IDs; IDs are only ever compared as strings.
fn uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::labels;
    use crate::matcher::parse_list;

    #[test]
    fn silences_mute_persist_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = SilenceStore::open(Db::open(dir.path()).unwrap()).unwrap();
        let id = store
            .add(
                parse_list(r#"instance="web1""#).unwrap(),
                1_000,
                10_000,
                "ops",
                "maintenance",
                500,
            )
            .unwrap();
        let web1 = labels([("alertname", "Down"), ("instance", "web1")]);
        let web2 = labels([("alertname", "Down"), ("instance", "web2")]);
        assert!(store.silencing(&web1, 900).is_empty(), "pending");
        assert_eq!(store.silencing(&web1, 5_000), std::slice::from_ref(&id));
        assert!(store.silencing(&web2, 5_000).is_empty());

        // Another process (the CLI) sees it and expires it; we notice.
        let other = SilenceStore::open(Db::open(dir.path()).unwrap()).unwrap();
        assert_eq!(other.list().len(), 1);
        assert!(other.expire(&id, 6_000).unwrap());
        assert!(!other.expire(&id, 6_000).unwrap(), "already expired");
        store.refresh().unwrap();
        assert!(store.silencing(&web1, 6_500).is_empty());
        assert_eq!(store.list()[0].state(6_500), SilenceState::Expired);
        assert_eq!(store.list()[0].created_by, "ops");
    }

    #[test]
    fn ids_are_uuids_and_old_ids_keep_working() {
        assert_eq!(uuid_v4([0xff; 16]), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let dir = tempfile::tempdir().unwrap();
        let store = SilenceStore::open(Db::open(dir.path()).unwrap()).unwrap();
        let id = store
            .add(parse_list("job=db").unwrap(), 0, 2_000, "ops", "", 0)
            .unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        // A silence stored before UUIDs, with its 32-digit ID.
        let old = "0123456789abcdef0123456789abcdef";
        store
            .db()
            .lock()
            .execute(
                "UPDATE silences SET id = ?1 WHERE id = ?2",
                params![old, id],
            )
            .unwrap();
        let reopened = SilenceStore::open(Db::open(dir.path()).unwrap()).unwrap();
        let set = labels([("job", "db")]);
        assert_eq!(reopened.silencing(&set, 1_000), [old.to_string()]);
        assert!(reopened.expire(old, 1_000).unwrap());
    }

    #[test]
    fn notices_are_owed_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SilenceStore::open(Db::open(dir.path()).unwrap()).unwrap();
        let id = store
            .add(parse_list("job=db").unwrap(), 0, 2_000, "ops", "", 0)
            .unwrap();
        let owed = store.owed_notices(1_000).unwrap();
        assert_eq!(owed.len(), 1);
        assert_eq!(owed[0].1, Notice::Created);
        SilenceStore::mark_noticed(&store.db().lock(), &id, Notice::Created).unwrap();
        assert!(store.owed_notices(1_000).unwrap().is_empty());
        let owed = store.owed_notices(3_000).unwrap();
        assert_eq!(owed.len(), 1);
        assert_eq!(owed[0].1, Notice::Expired);
    }

    #[test]
    fn refusals() {
        let dir = tempfile::tempdir().unwrap();
        let store = SilenceStore::open(Db::open(dir.path()).unwrap()).unwrap();
        for (matchers, ends, author) in [
            ("", 10, "ops"),
            (r#"job=~".*""#, 10, "ops"),
            ("job=db", 0, "ops"),
            ("job=db", 10, " "),
        ] {
            let result = store.add(parse_list(matchers).unwrap(), 0, ends, author, "", 1);
            assert!(result.is_err(), "{matchers} {ends} {author:?}");
        }
    }
}
