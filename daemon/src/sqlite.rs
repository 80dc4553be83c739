//! Opening the collector's SQLite databases (`collector.db`,
//! `incidents.db`, `notify.db`, `outputs.db`, `detection.db`): the one place
//! that sets the pragmas every one of them relies on.
//!
//! Every database is in WAL mode, so that readers (the page, the API, the
//! CLI, detection, forwarding) never wait for the daemon's writers and the
//! CLI can write while the daemon runs; `synchronous = NORMAL`, so that a
//! killed process loses nothing committed (the WAL is in the operating
//! system's hands) without an fsync per transaction; and a busy timeout, so
//! that a writer waits for another's transaction instead of failing.
//! [`WriteGate`] bounds that wait for a busy writer's followers: after one
//! write found the lock held by another process, the next ones are refused
//! at once for a moment.
//!
//! **Architecture Invariant:** a transaction that reads before it writes on
//! a database other connections write to is begun with
//! `TransactionBehavior::Immediate`: a deferred one fails at once with
//! `SQLITE_BUSY` when it upgrades to a write after another connection
//! committed, and the busy timeout does not help it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

/// How long a connection waits for another connection's write lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The file could not be opened or created.
    #[error("cannot open {}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's reason.
        #[source]
        source: rusqlite::Error,
    },
    /// The file opened but a pragma could not be set (often: not a
    /// database, or a read-only directory that cannot hold the WAL).
    #[error("cannot configure {}", path.display())]
    Configure {
        /// The database file.
        path: PathBuf,
        /// SQLite's reason.
        #[source]
        source: rusqlite::Error,
    },
}

/// Opens (creating) the database at `path` for reading and writing, in WAL
/// mode with NORMAL sync and the busy timeout.
pub fn open(path: &Path) -> Result<Connection, OpenError> {
    open_configured(path, false)
}

/// [`open`], with foreign keys enforced (the incident store relies on
/// cascading deletes).
pub fn open_with_foreign_keys(path: &Path) -> Result<Connection, OpenError> {
    open_configured(path, true)
}

/// Opens an existing database read-only, with the busy timeout. WAL mode is
/// the writer's to set; a reader only needs to wait politely.
pub fn open_read_only(path: &Path) -> Result<Connection, OpenError> {
    let connection =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|source| {
            OpenError::Open {
                path: path.to_path_buf(),
                source,
            }
        })?;
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .map_err(|source| OpenError::Configure {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(connection)
}

fn open_configured(path: &Path, foreign_keys: bool) -> Result<Connection, OpenError> {
    let connection = Connection::open(path).map_err(|source| OpenError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    connection
        .pragma_update(None, "journal_mode", "WAL")
        .and_then(|()| connection.pragma_update(None, "synchronous", "NORMAL"))
        .and_then(|()| match foreign_keys {
            true => connection.pragma_update(None, "foreign_keys", "ON"),
            false => Ok(()),
        })
        .and_then(|()| connection.busy_timeout(BUSY_TIMEOUT))
        .map_err(|source| OpenError::Configure {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(connection)
}

/// Refuses writes at once, for a while, after one waited out the busy
/// timeout: another process (an operator's `sqlite3` shell, a backup tool)
/// holds the database's write lock.
///
/// Without it every caller waits the whole [`BUSY_TIMEOUT`] in turn behind
/// the connection's mutex, and a client that gives up and retries (an
/// agent) adds another wait each time, so the queue grows for as long as
/// the lock is held and even a patient client's answer comes too late. With
/// it, one write per window asks SQLite and the others are refused at once,
/// so every caller learns within about one busy timeout and can retry.
#[derive(Debug)]
pub struct WriteGate {
    /// How long writes are refused after a busy one.
    window: Duration,
    /// When the last write failed for the lock, if it did.
    tripped_at: std::sync::Mutex<Option<std::time::Instant>>,
}

/// A write refused because the database's write lock was held by another
/// process moments ago.
#[derive(Debug, thiserror::Error)]
#[error("the database's write lock is held by another process (a write waited {}s moments ago); retry later", BUSY_TIMEOUT.as_secs())]
pub struct WriteLocked;

impl WriteGate {
    /// How long writes are refused after one found the lock held, unless
    /// told otherwise: long enough for the callers queued behind the busy
    /// one to be refused, short enough that the lock's release is seen soon.
    pub const WINDOW: Duration = Duration::from_secs(2);

    /// A gate that refuses for `window` after a busy write.
    pub fn new(window: Duration) -> WriteGate {
        WriteGate {
            window,
            tripped_at: std::sync::Mutex::new(None),
        }
    }

    /// `Err` while a write found the lock held less than the window ago.
    pub fn check(&self) -> Result<(), WriteLocked> {
        let tripped_at = *self
            .tripped_at
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        match tripped_at {
            Some(at) if at.elapsed() < self.window => Err(WriteLocked),
            _ => Ok(()),
        }
    }

    /// Notes `error`: when it says the database was busy or locked, writes
    /// are refused for the window from now. Returns whether it did.
    pub fn observe(&self, error: &rusqlite::Error) -> bool {
        let busy = matches!(
            error.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        );
        if busy {
            *self
                .tripped_at
                .lock()
                .unwrap_or_else(|poison| poison.into_inner()) = Some(std::time::Instant::now());
        }
        busy
    }
}

impl Default for WriteGate {
    fn default() -> WriteGate {
        WriteGate::new(WriteGate::WINDOW)
    }
}

/// Rows deleted per transaction by [`delete_in_batches`]: small enough that
/// ingest and the page never wait long for the write lock.
pub const ROWS_PER_DELETE: i64 = 500;

/// Runs `sql` (a `DELETE` taking the cutoff as `?1` and a row limit as
/// `?2`) until it deletes fewer than [`ROWS_PER_DELETE`] rows, each run its
/// own transaction; returns how many rows were deleted.
pub fn delete_in_batches(
    connection: &Connection,
    sql: &str,
    cutoff_ms: i64,
) -> rusqlite::Result<u64> {
    let mut total = 0_u64;
    loop {
        let deleted = connection.execute(sql, rusqlite::params![cutoff_ms, ROWS_PER_DELETE])?;
        total += deleted as u64;
        if (deleted as i64) < ROWS_PER_DELETE {
            return Ok(total);
        }
    }
}

/// The `WHERE` of a search built from the filters given, so that SQLite
/// sees only real conditions and can use its indexes (a fixed statement of
/// `(?1 IS NULL OR column = ?1)` conditions reads every row): conditions
/// with `?` placeholders, and their values in order.
#[derive(Clone, Debug, Default)]
pub struct Conditions {
    /// The conditions, joined by `AND`.
    clauses: Vec<String>,
    /// The value of each `?`, in order.
    values: Vec<Value>,
}

impl Conditions {
    /// Adds `clause` with one `?` when `value` is given.
    pub fn add(&mut self, clause: &str, value: Option<Value>) {
        if let Some(value) = value {
            self.add_with(clause, vec![value]);
        }
    }

    /// Adds `clause` with the values of its `?`s.
    pub fn add_with(&mut self, clause: &str, values: Vec<Value>) {
        self.clauses.push(clause.to_string());
        self.values.extend(values);
    }

    /// The conditions as SQL (`1` when there are none).
    pub fn sql(&self) -> String {
        match self.clauses.is_empty() {
            true => "1".to_string(),
            false => self.clauses.join(" AND "),
        }
    }

    /// The values, followed by `more` (a `LIMIT`, an `OFFSET`).
    pub fn values_then(&self, more: &[Value]) -> Vec<Value> {
        self.values.iter().chain(more).cloned().collect()
    }
}

/// Brings a database's schema up to date: `migrations[n]` takes it from
/// version `n` to `n + 1`, the version kept in a one-row `schema_version`
/// table. Each migration commits with its version or not at all.
pub fn migrate(connection: &Connection, migrations: &[&str]) -> rusqlite::Result<()> {
    connection
        .execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let version: i64 = connection
        .query_row("SELECT version FROM schema_version", [], |row| row.get(0))
        .optional()?
        .unwrap_or(0);
    for (index, migration) in migrations.iter().enumerate() {
        let target = i64::try_from(index).unwrap_or(i64::MAX).saturating_add(1);
        if target <= version {
            continue;
        }
        let transaction = connection.unchecked_transaction()?;
        transaction.execute_batch(migration)?;
        transaction.execute("DELETE FROM schema_version", [])?;
        transaction.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            rusqlite::params![target],
        )?;
        transaction.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn databases_open_in_wal_mode_and_readers_see_what_writers_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let writer = open_with_foreign_keys(&path).unwrap();
        let mode: String = writer
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let foreign_keys: i64 = writer
            .query_row("PRAGMA foreign_keys", [], |row| row.get(0))
            .unwrap();
        assert_eq!(foreign_keys, 1);
        let plain = open(&path).unwrap();
        let synchronous: i64 = plain
            .query_row("PRAGMA synchronous", [], |row| row.get(0))
            .unwrap();
        assert_eq!(synchronous, 1, "NORMAL");
        writer
            .execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (7);")
            .unwrap();
        let reader = open_read_only(&path).unwrap();
        let x: i64 = reader
            .query_row("SELECT x FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(x, 7);
        assert!(reader.execute("INSERT INTO t VALUES (8)", []).is_err());
    }

    #[test]
    fn migrations_run_once_each_in_order_and_a_failed_one_leaves_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let connection = open(&dir.path().join("m.db")).unwrap();
        let first = ["CREATE TABLE a (x INTEGER)"];
        migrate(&connection, &first).unwrap();
        migrate(&connection, &first).unwrap();
        let both = ["CREATE TABLE a (x INTEGER)", "ALTER TABLE a ADD COLUMN y"];
        migrate(&connection, &both).unwrap();
        let version: i64 = connection
            .query_row("SELECT version FROM schema_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, 2);
        let broken = [both[0], both[1], "CREATE TABLE b (z); THIS IS NOT SQL"];
        assert!(migrate(&connection, &broken).is_err());
        let version: i64 = connection
            .query_row("SELECT version FROM schema_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, 2, "the failed migration rolled back");
        let b_exists: i64 = connection
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'b'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(b_exists, 0);
    }

    #[test]
    fn a_missing_database_is_an_open_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.db");
        let error = open_read_only(&path).unwrap_err();
        assert!(matches!(error, OpenError::Open { .. }));
        assert!(error.to_string().contains("absent.db"), "{error}");
    }

    #[test]
    fn a_write_that_finds_the_lock_held_closes_the_gate_for_its_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.db");
        let holder = open(&path).unwrap();
        holder.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let writer = open(&path).unwrap();
        writer.busy_timeout(Duration::from_millis(10)).unwrap();
        let gate = WriteGate::new(Duration::from_secs(3600));
        assert!(gate.check().is_ok(), "open until a write is busy");
        let other = rusqlite::Error::QueryReturnedNoRows;
        assert!(!gate.observe(&other), "only busy and locked close it");
        assert!(gate.check().is_ok());
        let busy = writer.execute("INSERT INTO t VALUES (1)", []).unwrap_err();
        assert!(gate.observe(&busy), "{busy}");
        let refused = gate.check().unwrap_err();
        assert!(refused.to_string().contains("another process"), "{refused}");
        holder.execute_batch("ROLLBACK").unwrap();

        // A gate whose window has passed lets writes ask SQLite again.
        let brief = WriteGate::new(Duration::ZERO);
        assert!(brief.observe(&busy));
        assert!(brief.check().is_ok());
        writer.execute("INSERT INTO t VALUES (1)", []).unwrap();
    }
}
