//! The notification subsystem's own SQLite file, `<data_dir>/notify.db`
//! (WAL): the outbox, the notification log and silences. It is kept apart
//! from `collector.db` so that its schema evolves with this module alone.
//!
//! One connection per process, behind a mutex: every statement is short
//! (single-row writes on indexed keys), and one connection lets a flush
//! write its notifications and its notification-log entries in one
//! transaction. Other processes (the `silence` CLI) open their own; WAL lets
//! them write while the daemon runs, and `PRAGMA data_version` tells the
//! daemon when they did.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context;
use rusqlite::Connection;

/// Schema migrations, applied in order; the index + 1 is the version.
const MIGRATIONS: &[&str] = &["CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        receiver TEXT NOT NULL,
        integration INTEGER NOT NULL,
        group_key TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        deadline_ms INTEGER NOT NULL,
        next_attempt_ms INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT
    );
    CREATE INDEX outbox_due ON outbox (receiver, integration, next_attempt_ms);
    CREATE INDEX outbox_group ON outbox (receiver, integration, group_key, id);
    CREATE TABLE nflog (
        group_key TEXT NOT NULL,
        receiver TEXT NOT NULL,
        firing TEXT NOT NULL,
        resolved TEXT NOT NULL,
        sent_ms INTEGER NOT NULL,
        PRIMARY KEY (group_key, receiver)
    ) WITHOUT ROWID;
    CREATE TABLE silences (
        id TEXT PRIMARY KEY,
        matchers TEXT NOT NULL,
        starts_ms INTEGER NOT NULL,
        ends_ms INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        comment TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        noticed_created INTEGER NOT NULL DEFAULT 0,
        noticed_expired INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;"];

/// The shared connection to `notify.db`.
#[derive(Clone)]
pub struct Db {
    /// The connection; see the module doc for why a single one.
    connection: Arc<Mutex<Connection>>,
}

impl Db {
    /// Opens (creating and migrating) `<data_dir>/notify.db`.
    pub fn open(data_dir: &Path) -> anyhow::Result<Db> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
        let path = data_dir.join("notify.db");
        // NORMAL in WAL mode: a killed process loses nothing committed (the
        // outbox's promise); only an operating-system crash could lose the
        // last transactions, and costs no fsync per notification.
        let connection = countywatch_daemon::sqlite::open(&path)?;
        migrate(&connection).with_context(|| format!("cannot migrate {}", path.display()))?;
        Ok(Db {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// The connection, for one short operation.
    pub fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent
        // (transactions roll back on drop), so a poisoned lock is usable.
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn migrate(connection: &Connection) -> rusqlite::Result<()> {
    let version: usize =
        connection.query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0))? as usize;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version) {
        connection.execute_batch(&format!(
            "BEGIN; {migration}; PRAGMA user_version = {}; COMMIT;",
            index + 1
        ))?;
    }
    Ok(())
}
