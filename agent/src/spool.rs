//! The durable spool: every batch is written here before it is sent and
//! deleted only when the collector acknowledges it, so nothing is lost when
//! the collector, the link, the agent or the host goes down.
//!
//! SQLite (bundled, WAL, synced commits) rather than a home-made
//! segment log: transactions give us, for free, the atomic "batch + source
//! positions" write that exactly-once delivery needs (see
//! [`Spool::push`]'s `positions`), crash recovery, and checksummed WAL
//! frames; ARCHITECTURE.md has the longer argument. Sequence numbers come
//! from `AUTOINCREMENT`, so they are never reused, even after deletes and
//! restarts.
//!
//! The main database file has no page checksums, so a damaged disk can
//! still hurt it. Each batch's index row (`batches`: kind, event count,
//! size, a checksum of the body) lives apart from its body (`bodies`), so
//! a damaged page of bodies loses those bodies but not the knowledge of
//! what they held. A body that fails its checksum is dropped and counted;
//! a database SQLite itself finds corrupt (`PRAGMA quick_check` at open, or
//! a corrupt-page error later) is salvaged into a fresh spool
//! (`spool/salvage.rs`), and what could not be read is counted as [`Loss`].
//!
//! What is synced: every write that adds to the spool (a batch, with its
//! source positions) is synced before [`Spool::push`] returns, so
//! security events and the read positions that skip them survive a power
//! cut. Deleting an acknowledged batch is not synced: a power cut can only
//! undo the delete, the batch is then sent again under its old sequence
//! number and the collector acknowledges it as a duplicate. That saves one
//! of the two `fsync`s per batch, which were 8% of the agent's CPU per
//! collection (docs/benchmarks.md, agent_footprint).
//!
//! A batch of metrics alone, carrying no source position, is not synced
//! either, for at most [`MAX_UNSYNCED_INSERTS`] in a row: a power cut may
//! lose the last few seconds of metrics, which the next collection
//! supersedes anyway. What such a loss must not do is give a sequence
//! number out again (the collector would take the next batch, perhaps
//! security events, for a duplicate and drop it). Only a crash of the
//! whole system loses an unsynced commit, and that changes the kernel's
//! boot id; so the spool keeps the boot id it last ran under, and when it
//! opens under another one it moves the sequence past every number the
//! lost commits could have used. A process crash loses nothing: in WAL
//! mode a commit is in the kernel's page cache once it returns. Without a
//! boot id to compare (no /proc), every insert is synced, as before.
//!
//! So the connection rests at `synchronous=NORMAL` (in WAL mode a commit
//! is written, not synced) and an insert that must be synced raises it to
//! `FULL` for its own commit ([`Spool::synced`]), whose sync covers every
//! unsynced commit before it. Most commits (acknowledgements, metric
//! batches) then change no setting; flipping it twice around each was 2%
//! of the agent's CPU per collection.
//! The statements of the per-batch path are prepared once per connection
//! and kept (`prepare_cached`): parsing them again for every batch was
//! about 4% of the agent's CPU per collection. The body just pushed is
//! kept in memory until it is taken for sending ([`Spool::oldest`]), so
//! the common case, a batch sent as soon as it is spooled, does not read
//! it back and hash it again.
//!
//! The spool is bounded (`spool.max_bytes`). When full, metric batches go
//! first (a newer one supersedes them anyway); security events go only when
//! nothing else is left. Every drop is counted and reported.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

mod salvage;

/// What a spooled batch carries; decides what is dropped first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchKind {
    /// Metric families only: dropped first when the spool is full.
    Metrics,
    /// Security events: kept as long as anything else can be dropped.
    Events,
}

impl BatchKind {
    fn as_str(self) -> &'static str {
        match self {
            BatchKind::Metrics => "metrics",
            BatchKind::Events => "events",
        }
    }
}

/// Batches dropped by one push to stay within the size bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overflow {
    /// Metric batches dropped.
    pub metrics: u64,
    /// Event batches dropped.
    pub events: u64,
}

/// Batches lost to a damaged spool file, not yet reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Loss {
    /// Times the database was found corrupt and salvaged.
    pub salvages: u64,
    /// Event batches lost.
    pub event_batches: u64,
    /// Metric batches lost.
    pub metric_batches: u64,
    /// Events in the lost batches whose index row was readable: exact.
    pub events: u64,
    /// Lost batches whose kind and event count are unknown (their index
    /// row was damaged too, or they were spooled before counts were kept).
    pub uncounted_batches: u64,
}

impl Loss {
    fn add(&mut self, other: Loss) {
        self.salvages += other.salvages;
        self.event_batches += other.event_batches;
        self.metric_batches += other.metric_batches;
        self.events += other.events;
        self.uncounted_batches += other.uncounted_batches;
    }

    /// Counts one lost batch from its index row.
    fn lost(&mut self, kind: &str, events: Option<i64>) {
        match (kind, events) {
            ("metrics", _) => self.metric_batches += 1,
            (_, Some(events)) => {
                self.event_batches += 1;
                self.events += u64::try_from(events).unwrap_or(0);
            }
            _ => self.uncounted_batches += 1,
        }
    }
}

/// Metric batches in a row whose insert is not synced; the next one is.
/// Also how far the sequence moves after a system crash (see the module
/// doc), so it bounds both the metrics a power cut can lose and the gap it
/// leaves in the sequence.
pub const MAX_UNSYNCED_INSERTS: u64 = 60;

/// Where the kernel says which boot this is.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// The spool database.
pub struct Spool {
    /// The connection; the agent has one thread, so no pool.
    connection: Connection,
    /// `<state_dir>/spool.db`, kept to salvage it when a read finds damage.
    path: PathBuf,
    /// The sequence floor the spool was opened with, for a salvage.
    first_seq: u64,
    /// Bytes of batch bodies the spool may hold.
    max_bytes: u64,
    /// Bytes of batch bodies it holds now (kept in memory, set at open).
    bytes: u64,
    /// Batches it holds now.
    count: u64,
    /// Losses to damage since the caller last took them ([`Spool::take_loss`]).
    loss: Loss,
    /// Whether inserts of metrics alone may go unsynced: only when the
    /// spool could record this boot's id (see the module doc).
    may_defer_sync: bool,
    /// Inserts since the last synced commit.
    unsynced_inserts: u64,
    /// The last batch pushed, sequence number and body, until
    /// [`Spool::oldest`] hands it out or it is deleted: sending it then
    /// needs no read back.
    fresh: Option<(u64, Vec<u8>)>,
    /// `PRAGMA synchronous` as the last insert committed, for tests.
    #[cfg(test)]
    last_insert_synchronous: i64,
}

/// The tables. `batches` is the index (small rows, many to a page) and
/// owns the sequence; `bodies` holds the encoded batches on pages of their
/// own, so that damage to one side leaves the other readable.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS batches (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        events INTEGER,
        bytes INTEGER NOT NULL DEFAULT 0,
        checksum INTEGER
    );
    CREATE TABLE IF NOT EXISTS bodies (
        seq INTEGER PRIMARY KEY,
        body BLOB NOT NULL
    );
    CREATE TABLE IF NOT EXISTS positions (
        source TEXT PRIMARY KEY,
        position TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS boot (
        id TEXT NOT NULL
    );";

/// A spool written before bodies moved to their own table (one `batches`
/// table with a `body` column) is converted in place; its batches have no
/// event count or checksum (NULL), which a loss reports as uncounted.
const MIGRATE_SINGLE_TABLE: &str = "CREATE TABLE bodies (
        seq INTEGER PRIMARY KEY,
        body BLOB NOT NULL
    );
    INSERT INTO bodies (seq, body) SELECT seq, body FROM batches;
    ALTER TABLE batches ADD COLUMN events INTEGER;
    ALTER TABLE batches ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE batches ADD COLUMN checksum INTEGER;
    UPDATE batches SET bytes = LENGTH(body);
    ALTER TABLE batches DROP COLUMN body;";

/// The body's checksum as stored: the first eight bytes of its SHA-256.
/// SHA-256 rather than a CRC because the agent already links it; a batch
/// is hashed once when written and once when read.
fn checksum(body: &[u8]) -> i64 {
    let digest = Sha256::digest(body);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_le_bytes(first)
}

/// Whether an error means the database file is damaged (as opposed to a
/// full disk or a lock, which pass).
fn is_corruption(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<rusqlite::Error>(),
            Some(rusqlite::Error::SqliteFailure(failure, _))
                if matches!(
                    failure.code,
                    rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
                )
        )
    })
}

impl Spool {
    /// Opens or creates `<state_dir>/spool.db`. Sequence numbers continue
    /// from at least `first_seq` (what the collector expects after an
    /// enrolment), or above the last one handed out, whichever is higher.
    /// A damaged database is salvaged first (`spool/salvage.rs`); what that
    /// lost waits in [`Spool::take_loss`].
    pub fn open(state_dir: &Path, max_bytes: u64, first_seq: u64) -> anyhow::Result<Spool> {
        let boot_id = std::fs::read_to_string(BOOT_ID).ok();
        Spool::open_in_boot(state_dir, max_bytes, first_seq, boot_id.as_deref())
    }

    /// [`Spool::open`] in the boot `boot_id` names (`None`: unknown).
    fn open_in_boot(
        state_dir: &Path,
        max_bytes: u64,
        first_seq: u64,
        boot_id: Option<&str>,
    ) -> anyhow::Result<Spool> {
        let path = state_dir.join("spool.db");
        let mut loss = Loss::default();
        let connection = match open_checked(&path, first_seq) {
            Ok(connection) => connection,
            Err(error) if is_corruption(&error) => {
                let (connection, salvage_loss) = salvage::salvage(&path, first_seq, &error)?;
                loss.add(salvage_loss);
                connection
            }
            Err(error) => return Err(error),
        };
        let mut spool = Spool {
            connection,
            path,
            first_seq,
            max_bytes,
            bytes: 0,
            count: 0,
            loss,
            may_defer_sync: false,
            unsynced_inserts: 0,
            fresh: None,
            #[cfg(test)]
            last_insert_synchronous: 0,
        };
        spool.recount()?;
        if let Some(boot_id) = boot_id.map(str::trim).filter(|id| !id.is_empty()) {
            spool
                .guarded(|spool| spool.enter_boot(boot_id))
                .with_context(|| format!("cannot record the boot in {}", spool.path.display()))?;
            spool.may_defer_sync = true;
        }
        spool.rest_unsynced()?;
        Ok(spool)
    }

    /// Records `boot_id` as the boot the spool runs under. If the spool
    /// last ran under another boot, the system went down since, perhaps
    /// without syncing the last inserts: the sequence moves past every
    /// number they could have used. A spool that never recorded a boot
    /// (new, or written by an agent that synced every insert) has nothing
    /// to move past. Synced, like every change to the sequence.
    fn enter_boot(&mut self, boot_id: &str) -> anyhow::Result<()> {
        let transaction = self.connection.transaction()?;
        let last: Option<String> = transaction
            .query_row("SELECT id FROM boot", [], |row| row.get(0))
            .optional()?;
        if last.as_deref() == Some(boot_id) {
            return Ok(());
        }
        if last.is_some() {
            transaction.execute(
                "UPDATE sqlite_sequence SET seq = seq + ?1 WHERE name = 'batches'",
                params![MAX_UNSYNCED_INSERTS as i64],
            )?;
            tracing::info!(
                gap = MAX_UNSYNCED_INSERTS,
                "the system restarted since the spool was last open; batch numbers skip ahead past any unsynced metric batches a crash may have lost"
            );
        }
        transaction.execute("DELETE FROM boot", [])?;
        transaction.execute("INSERT INTO boot (id) VALUES (?1)", params![boot_id])?;
        transaction.commit()?;
        Ok(())
    }

    /// Reads the size and count of what is waiting.
    fn recount(&mut self) -> anyhow::Result<()> {
        let (bytes, count): (i64, i64) = self
            .connection
            .query_row(
                "SELECT COALESCE(SUM(bytes), 0), COUNT(*) FROM batches",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .with_context(|| format!("cannot read the spool {}", self.path.display()))?;
        self.bytes = u64::try_from(bytes).unwrap_or(0);
        self.count = u64::try_from(count).unwrap_or(0);
        Ok(())
    }

    /// Runs `operation`; if it finds the database corrupt, salvages it and
    /// runs `operation` once more on the fresh spool.
    fn guarded<T>(
        &mut self,
        mut operation: impl FnMut(&mut Spool) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        match operation(self) {
            Err(error) if is_corruption(&error) => {
                // The damaged connection must be closed before its files
                // move (see `salvage`); an in-memory one stands in.
                let placeholder =
                    Connection::open_in_memory().context("cannot open a placeholder")?;
                drop(std::mem::replace(&mut self.connection, placeholder));
                let (connection, loss) = match salvage::salvage(&self.path, self.first_seq, &error)
                {
                    Ok(salvaged) => salvaged,
                    Err(salvage_error) => {
                        // Back to the damaged file, so the next operation
                        // finds the damage and tries again.
                        self.connection = Connection::open(&self.path).with_context(|| {
                            format!("cannot reopen the spool {}", self.path.display())
                        })?;
                        return Err(salvage_error);
                    }
                };
                self.connection = connection;
                self.loss.add(loss);
                // The fresh file has no boot recorded, so a crash could not
                // be told apart later: sync every insert until restarted.
                self.may_defer_sync = false;
                self.fresh = None;
                self.recount()?;
                self.rest_unsynced()?;
                operation(self)
            }
            other => other,
        }
    }

    /// Spools a batch of `events` events (0 for metrics). `encode` gets the
    /// batch's sequence number and returns its body. `positions` (source
    /// name, serialised position) are saved in the same transaction, so a
    /// source's read position moves exactly when its events become
    /// durable: a crash either keeps both or neither. Returns the sequence
    /// number and what was dropped to make room.
    pub fn push(
        &mut self,
        kind: BatchKind,
        created_ms: i64,
        events: u64,
        mut encode: impl FnMut(u64) -> Vec<u8>,
        positions: &[(String, String)],
    ) -> anyhow::Result<(u64, Overflow)> {
        // After a salvage the batch is encoded again under the fresh
        // spool's next number (the failed transaction committed nothing).
        // Metrics alone may go unsynced (see the module doc); events and
        // source positions never.
        let defer = self.may_defer_sync
            && kind == BatchKind::Metrics
            && positions.is_empty()
            && self.unsynced_inserts < MAX_UNSYNCED_INSERTS;
        let (seq, size) = self.guarded(|spool| {
            if defer {
                spool.insert(kind, created_ms, events, &mut encode, positions)
            } else {
                spool.synced(|spool| spool.insert(kind, created_ms, events, &mut encode, positions))
            }
        })?;
        // A synced commit syncs the whole log before it, so every earlier
        // unsynced insert too.
        self.unsynced_inserts = if defer { self.unsynced_inserts + 1 } else { 0 };
        self.bytes += size;
        self.count += 1;
        let overflow = self.guarded(|spool| spool.enforce_bound(seq))?;
        Ok((seq, overflow))
    }

    /// One push's transaction; returns the sequence number and body size.
    fn insert(
        &mut self,
        kind: BatchKind,
        created_ms: i64,
        events: u64,
        encode: &mut impl FnMut(u64) -> Vec<u8>,
        positions: &[(String, String)],
    ) -> anyhow::Result<(u64, u64)> {
        let transaction = self
            .connection
            .transaction()
            .context("cannot write the spool")?;
        transaction
            .prepare_cached("INSERT INTO batches (kind, created_ms, events) VALUES (?1, ?2, ?3)")
            .and_then(|mut statement| {
                statement.execute(params![
                    kind.as_str(),
                    created_ms,
                    i64::try_from(events).unwrap_or(i64::MAX)
                ])
            })
            .context("cannot write the spool")?;
        let seq =
            u64::try_from(transaction.last_insert_rowid()).context("invalid sequence number")?;
        let body = encode(seq);
        let size = body.len() as u64;
        transaction
            .prepare_cached("UPDATE batches SET bytes = ?1, checksum = ?2 WHERE seq = ?3")
            .and_then(|mut statement| {
                statement.execute(params![size as i64, checksum(&body), seq as i64])
            })
            .context("cannot write the spool")?;
        transaction
            .prepare_cached("INSERT INTO bodies (seq, body) VALUES (?1, ?2)")
            .and_then(|mut statement| statement.execute(params![seq as i64, body]))
            .context("cannot write the spool")?;
        for (source, position) in positions {
            transaction
                .prepare_cached(
                    "INSERT INTO positions (source, position) VALUES (?1, ?2)
                     ON CONFLICT (source) DO UPDATE SET position = excluded.position",
                )
                .and_then(|mut statement| statement.execute(params![source, position]))
                .context("cannot save a source position")?;
        }
        #[cfg(test)]
        {
            self.last_insert_synchronous =
                transaction.query_row("PRAGMA synchronous", [], |row| row.get(0))?;
        }
        transaction.commit().context("cannot write the spool")?;
        self.fresh = Some((seq, body));
        Ok((seq, size))
    }

    /// Drops batches, metrics first and oldest first, until the spool fits,
    /// never dropping `keep` (the batch just written).
    fn enforce_bound(&mut self, keep: u64) -> anyhow::Result<Overflow> {
        let mut overflow = Overflow::default();
        while self.bytes > self.max_bytes {
            let victim: Option<(i64, String, i64)> = self
                .connection
                .prepare_cached(
                    "SELECT seq, kind, bytes FROM batches WHERE seq != ?1
                     ORDER BY (kind = 'events'), seq LIMIT 1",
                )
                .and_then(|mut statement| {
                    statement.query_row(params![keep as i64], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                    })
                })
                .optional()
                .context("cannot read the spool")?;
            let Some((seq, kind, size)) = victim else {
                break;
            };
            self.delete(seq as u64).context("cannot trim the spool")?;
            self.bytes = self.bytes.saturating_sub(u64::try_from(size).unwrap_or(0));
            self.count = self.count.saturating_sub(1);
            if kind == "events" {
                overflow.events += 1;
            } else {
                overflow.metrics += 1;
            }
        }
        Ok(overflow)
    }

    /// Puts the connection at its resting `synchronous=NORMAL` (see the
    /// module doc); opening and salvaging leave it at `FULL`.
    fn rest_unsynced(&mut self) -> anyhow::Result<()> {
        self.connection
            .prepare_cached("PRAGMA synchronous = NORMAL")
            .and_then(|mut statement| statement.execute([]))
            .with_context(|| format!("cannot set up the spool {}", self.path.display()))?;
        Ok(())
    }

    /// Runs `operation` with `synchronous=FULL`: its commit is synced
    /// before it returns, and with it every unsynced commit before it. The
    /// connection is back at rest before this returns, or the error says
    /// it could not be.
    fn synced<T>(
        &mut self,
        operation: impl FnOnce(&mut Spool) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.connection
            .prepare_cached("PRAGMA synchronous = FULL")
            .and_then(|mut statement| statement.execute([]))
            .context("cannot make the spool sync")?;
        let result = operation(self);
        self.rest_unsynced()
            .context("cannot set the spool's syncing back")?;
        result
    }

    /// Deletes a batch's index row and body together.
    fn delete(&mut self, seq: u64) -> anyhow::Result<()> {
        self.delete_returning_size(seq).map(|_| ())
    }

    /// [`Spool::delete`], returning the deleted batch's size (`None`: it
    /// was not there).
    fn delete_returning_size(&mut self, seq: u64) -> anyhow::Result<Option<u64>> {
        if self.fresh.as_ref().is_some_and(|(fresh, _)| *fresh == seq) {
            self.fresh = None;
        }
        let transaction = self.connection.transaction()?;
        let size: Option<i64> = transaction
            .prepare_cached("DELETE FROM batches WHERE seq = ?1 RETURNING bytes")?
            .query_row(params![seq as i64], |row| row.get(0))
            .optional()?;
        transaction
            .prepare_cached("DELETE FROM bodies WHERE seq = ?1")?
            .execute(params![seq as i64])?;
        transaction.commit()?;
        Ok(size.map(|size| u64::try_from(size).unwrap_or(0)))
    }

    /// The oldest unacknowledged batch whose body is intact. A body that is
    /// missing or fails its checksum is deleted and counted as lost (see
    /// [`Spool::take_loss`]); the next one is tried.
    pub fn oldest(&mut self) -> anyhow::Result<Option<(u64, Vec<u8>)>> {
        self.guarded(|spool| loop {
            type Index = (i64, String, Option<i64>, i64, Option<i64>);
            let index: Option<Index> = spool
                .connection
                .prepare_cached(
                    "SELECT seq, kind, events, bytes, checksum FROM batches ORDER BY seq LIMIT 1",
                )
                .and_then(|mut statement| {
                    statement.query_row([], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
                    })
                })
                .optional()
                .context("cannot read the spool")?;
            let Some((seq, kind, events, size, stored)) = index else {
                return Ok(None);
            };
            // The batch just pushed: its body is in memory, as written.
            if spool
                .fresh
                .as_ref()
                .is_some_and(|(fresh, _)| i64::try_from(*fresh) == Ok(seq))
            {
                return Ok(spool.fresh.take());
            }
            let body: Option<Vec<u8>> = spool
                .connection
                .prepare_cached("SELECT body FROM bodies WHERE seq = ?1")
                .and_then(|mut statement| statement.query_row(params![seq], |row| row.get(0)))
                .optional()
                .context("cannot read the spool")?;
            match body {
                Some(body) if stored.is_none_or(|stored| stored == checksum(&body)) => {
                    return Ok(Some((u64::try_from(seq).unwrap_or(0), body)));
                }
                _ => {
                    tracing::error!(
                        seq,
                        kind,
                        events,
                        "a spooled batch's body is missing or fails its checksum (a damaged spool file); dropping it"
                    );
                    spool.loss.lost(&kind, events);
                    spool.delete(seq as u64).context("cannot delete from the spool")?;
                    spool.bytes = spool.bytes.saturating_sub(u64::try_from(size).unwrap_or(0));
                    spool.count = spool.count.saturating_sub(1);
                }
            }
        })
    }

    /// Deletes an acknowledged batch. The delete is not synced to disk
    /// (see the module doc): a power cut may bring the batch back, and the
    /// collector then answers its resend as a duplicate.
    pub fn acknowledge(&mut self, seq: u64) -> anyhow::Result<()> {
        self.guarded(|spool| {
            let size = spool
                .delete_returning_size(seq)
                .context("cannot delete from the spool")?;
            if let Some(size) = size {
                spool.bytes = spool.bytes.saturating_sub(size);
                spool.count = spool.count.saturating_sub(1);
            }
            Ok(())
        })
    }

    /// A source's saved position, if any. Read at start, just after
    /// [`Spool::open`] checked the database, so not guarded.
    pub fn position(&self, source: &str) -> anyhow::Result<Option<String>> {
        self.connection
            .query_row(
                "SELECT position FROM positions WHERE source = ?1",
                params![source],
                |row| row.get(0),
            )
            .optional()
            .context("cannot read a source position")
    }

    /// What damage cost since the last call, and resets it.
    pub fn take_loss(&mut self) -> Loss {
        std::mem::take(&mut self.loss)
    }

    /// Bytes of batches waiting.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Batches waiting.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Opens the database, checks it (`PRAGMA quick_check`: cheap for a
/// bounded spool, and it reads every page of both tables), creates or
/// converts the tables and sets the sequence floor.
fn open_checked(path: &Path, first_seq: u64) -> anyhow::Result<Connection> {
    let connection = Connection::open(path)
        .with_context(|| format!("cannot open the spool {}", path.display()))?;
    connection
        .pragma_update(None, "journal_mode", "WAL")
        .and_then(|()| connection.pragma_update(None, "synchronous", "FULL"))
        .with_context(|| format!("cannot initialise the spool {}", path.display()))?;
    let problems: Vec<String> = connection
        .prepare("PRAGMA quick_check(20)")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get::<_, String>(0))?
                .collect()
        })
        .with_context(|| format!("cannot check the spool {}", path.display()))?;
    if problems != ["ok"] {
        return Err(anyhow::Error::new(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            Some(problems.join("; ")),
        )))
        .with_context(|| format!("the spool {} is damaged", path.display()));
    }
    let single_table: bool = connection
        .query_row(
            "SELECT COUNT(*) FROM pragma_table_info('batches') WHERE name = 'body'",
            [],
            |row| row.get::<_, i64>(0),
        )
        .map(|count| count > 0)
        .with_context(|| format!("cannot read the spool {}", path.display()))?;
    if single_table {
        connection
            .execute_batch(&format!("BEGIN; {MIGRATE_SINGLE_TABLE} COMMIT;"))
            .with_context(|| format!("cannot convert the spool {}", path.display()))?;
    }
    connection
        .execute_batch(SCHEMA)
        .with_context(|| format!("cannot initialise the spool {}", path.display()))?;
    set_sequence_floor(&connection, first_seq.saturating_sub(1))
        .with_context(|| format!("cannot set the sequence of {}", path.display()))?;
    Ok(connection)
}

/// Makes the next sequence number at least `floor + 1`.
fn set_sequence_floor(connection: &Connection, floor: u64) -> rusqlite::Result<()> {
    let floor = i64::try_from(floor).unwrap_or(i64::MAX);
    connection.execute(
        "INSERT INTO sqlite_sequence (name, seq) SELECT 'batches', ?1
         WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'batches')",
        params![floor],
    )?;
    connection.execute(
        "UPDATE sqlite_sequence SET seq = MAX(seq, ?1) WHERE name = 'batches'",
        params![floor],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(size: usize) -> impl FnMut(u64) -> Vec<u8> {
        move |seq| {
            let mut body = seq.to_le_bytes().to_vec();
            body.resize(size, 0);
            body
        }
    }

    fn synchronous(spool: &Spool) -> i64 {
        spool
            .connection
            .query_row("PRAGMA synchronous", [], |row| row.get(0))
            .unwrap()
    }

    /// `PRAGMA synchronous` values.
    const NORMAL: i64 = 1;
    const FULL: i64 = 2;

    #[test]
    fn the_connection_rests_unsynced_and_a_synced_push_raises_it_for_its_commit_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20, 1).unwrap();
        assert_eq!(synchronous(&spool), NORMAL);
        // An events batch is synced: the setting is FULL for its commit.
        let (first, _) = spool.push(BatchKind::Events, 0, 1, body(10), &[]).unwrap();
        assert_eq!(spool.last_insert_synchronous, FULL);
        assert_eq!(synchronous(&spool), NORMAL, "back at rest");
        spool.acknowledge(first).unwrap();
        assert_eq!(synchronous(&spool), NORMAL);
        // Acknowledging a batch that is not there changes nothing either.
        spool.acknowledge(first).unwrap();
        assert_eq!(synchronous(&spool), NORMAL);
        drop(spool);
        // The unsynced delete still reached the database.
        let spool = Spool::open(dir.path(), 1 << 20, 1).unwrap();
        assert!(spool.is_empty());
    }

    #[test]
    fn metrics_alone_go_unsynced_a_bounded_number_of_times_and_events_never() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open_in_boot(dir.path(), 1 << 20, 1, Some("boot-a\n")).unwrap();
        for expected in 1..=3 {
            spool.push(BatchKind::Metrics, 0, 0, body(10), &[]).unwrap();
            assert_eq!(spool.unsynced_inserts, expected);
            assert_eq!(spool.last_insert_synchronous, NORMAL);
        }
        assert_eq!(synchronous(&spool), NORMAL, "at rest after each");
        // Events, and metrics carrying a source position, are synced, and
        // their sync covers the unsynced commits before them.
        spool.push(BatchKind::Events, 0, 1, body(10), &[]).unwrap();
        assert_eq!(spool.unsynced_inserts, 0);
        assert_eq!(spool.last_insert_synchronous, FULL);
        spool.push(BatchKind::Metrics, 0, 0, body(10), &[]).unwrap();
        let position = [("auth".to_string(), "7".to_string())];
        spool
            .push(BatchKind::Metrics, 0, 0, body(10), &position)
            .unwrap();
        assert_eq!(spool.unsynced_inserts, 0);
        assert_eq!(spool.last_insert_synchronous, FULL);
        // Never more than MAX_UNSYNCED_INSERTS in a row.
        for _ in 0..MAX_UNSYNCED_INSERTS {
            spool.push(BatchKind::Metrics, 0, 0, body(10), &[]).unwrap();
        }
        assert_eq!(spool.unsynced_inserts, MAX_UNSYNCED_INSERTS);
        spool.push(BatchKind::Metrics, 0, 0, body(10), &[]).unwrap();
        assert_eq!(spool.unsynced_inserts, 0, "the next one is synced");
        assert_eq!(spool.last_insert_synchronous, FULL);
        // Without a boot id, every insert is synced.
        let other = tempfile::tempdir().unwrap();
        let mut unknown = Spool::open_in_boot(other.path(), 1 << 20, 1, None).unwrap();
        unknown
            .push(BatchKind::Metrics, 0, 0, body(10), &[])
            .unwrap();
        assert_eq!(unknown.unsynced_inserts, 0);
        assert_eq!(unknown.last_insert_synchronous, FULL);
    }

    #[test]
    fn after_a_system_restart_the_sequence_skips_what_unsynced_inserts_could_have_used() {
        let dir = tempfile::tempdir().unwrap();
        let open = |boot: Option<&str>| Spool::open_in_boot(dir.path(), 1 << 20, 1, boot).unwrap();
        let next = |spool: &mut Spool| {
            spool
                .push(BatchKind::Metrics, 0, 0, body(10), &[])
                .unwrap()
                .0
        };
        // A spool that never recorded a boot (new, or an older agent's)
        // starts where it is.
        let mut spool = open(None);
        assert_eq!(next(&mut spool), 1);
        drop(spool);
        let mut spool = open(Some("boot-a"));
        assert_eq!(next(&mut spool), 2);
        drop(spool);
        // The agent restarting in the same boot loses nothing: no gap.
        let mut spool = open(Some("boot-a"));
        assert_eq!(next(&mut spool), 3);
        drop(spool);
        // Another boot: the last MAX_UNSYNCED_INSERTS numbers may have
        // been used by commits the crash lost; none is given out again.
        let mut spool = open(Some("boot-b"));
        assert_eq!(next(&mut spool), 4 + MAX_UNSYNCED_INSERTS);
        drop(spool);
        let mut spool = open(Some("boot-b"));
        assert_eq!(next(&mut spool), 5 + MAX_UNSYNCED_INSERTS);
    }

    #[test]
    fn batches_survive_reopening_and_sequence_numbers_never_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20, 1).unwrap();
        let (first, _) = spool.push(BatchKind::Metrics, 0, 0, body(10), &[]).unwrap();
        let (second, _) = spool
            .push(
                BatchKind::Events,
                0,
                1,
                body(10),
                &[("auth".into(), "pos-1".into())],
            )
            .unwrap();
        assert_eq!((first, second), (1, 2));
        spool.acknowledge(second).unwrap();
        drop(spool);
        let mut spool = Spool::open(dir.path(), 1 << 20, 1).unwrap();
        assert_eq!(spool.len(), 1);
        assert_eq!(spool.bytes(), 10);
        let (seq, stored) = spool.oldest().unwrap().unwrap();
        assert_eq!(seq, 1);
        assert_eq!(&stored[..8], &1u64.to_le_bytes());
        assert_eq!(spool.position("auth").unwrap().as_deref(), Some("pos-1"));
        let (third, _) = spool.push(BatchKind::Metrics, 0, 0, body(10), &[]).unwrap();
        assert_eq!(third, 3, "the acknowledged number 2 is not reused");
    }

    #[test]
    fn sequence_numbers_start_where_the_collector_expects() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20, 41).unwrap();
        assert_eq!(
            spool
                .push(BatchKind::Metrics, 0, 0, body(10), &[])
                .unwrap()
                .0,
            41
        );
        drop(spool);
        // A lower floor never moves the sequence back.
        let mut spool = Spool::open(dir.path(), 1 << 20, 1).unwrap();
        assert_eq!(
            spool
                .push(BatchKind::Metrics, 0, 0, body(10), &[])
                .unwrap()
                .0,
            42
        );
    }

    #[test]
    fn when_full_metrics_go_first_then_the_oldest_events() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 300, 1).unwrap();
        spool.push(BatchKind::Events, 0, 1, body(100), &[]).unwrap();
        spool
            .push(BatchKind::Metrics, 0, 0, body(100), &[])
            .unwrap();
        spool
            .push(BatchKind::Metrics, 0, 0, body(100), &[])
            .unwrap();
        let (_, overflow) = spool.push(BatchKind::Events, 0, 1, body(100), &[]).unwrap();
        assert_eq!(
            overflow,
            Overflow {
                metrics: 1,
                events: 0
            }
        );
        let (_, overflow) = spool.push(BatchKind::Events, 0, 1, body(100), &[]).unwrap();
        assert_eq!(
            overflow,
            Overflow {
                metrics: 1,
                events: 0
            }
        );
        let (_, overflow) = spool.push(BatchKind::Events, 0, 1, body(100), &[]).unwrap();
        assert_eq!(
            overflow,
            Overflow {
                metrics: 0,
                events: 1
            }
        );
        assert_eq!(spool.len(), 3);
        assert_eq!(
            spool.oldest().unwrap().unwrap().0,
            4,
            "event 1 was the oldest left"
        );
    }

    /// Bytes no page of the file holds by chance: a different stream per
    /// batch, so a body can be found in the file by its first bytes.
    fn distinct_body(size: usize) -> impl FnMut(u64) -> Vec<u8> {
        move |seq| {
            let mut state = seq.wrapping_mul(6_364_136_223_846_793_005) | 1;
            (0..size)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    (state >> 33) as u8
                })
                .collect()
        }
    }

    /// The page of `file` holding the start of `body`, given the page size.
    fn page_of(file: &[u8], body: &[u8], page_size: usize) -> usize {
        let needle = &body[..32];
        let offset = file
            .windows(needle.len())
            .position(|window| window == needle)
            .unwrap();
        offset / page_size
    }

    #[test]
    fn a_body_that_fails_its_checksum_is_dropped_and_counted_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20, 1).unwrap();
        for events in [5, 7, 11] {
            spool
                .push(BatchKind::Events, 0, events, distinct_body(100), &[])
                .unwrap();
        }
        // Bytes changed inside a body leave the page well-formed: only the
        // checksum can tell.
        Connection::open(dir.path().join("spool.db"))
            .unwrap()
            .execute("UPDATE bodies SET body = zeroblob(100) WHERE seq = 2", [])
            .unwrap();
        assert_eq!(spool.oldest().unwrap().unwrap().0, 1);
        spool.acknowledge(1).unwrap();
        assert_eq!(spool.oldest().unwrap().unwrap().0, 3);
        assert_eq!(
            spool.take_loss(),
            Loss {
                event_batches: 1,
                events: 7,
                ..Loss::default()
            }
        );
        assert_eq!((spool.len(), spool.bytes()), (1, 100));
    }

    #[test]
    fn the_batch_just_pushed_is_handed_out_from_memory_once_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20, 1).unwrap();
        let (seq, _) = spool
            .push(BatchKind::Events, 0, 4, distinct_body(100), &[])
            .unwrap();
        // The stored copy is damaged behind the spool's back; the first
        // hand-out is the body as pushed, from memory.
        Connection::open(dir.path().join("spool.db"))
            .unwrap()
            .execute("UPDATE bodies SET body = zeroblob(100) WHERE seq = 1", [])
            .unwrap();
        assert_eq!(
            spool.oldest().unwrap(),
            Some((seq, distinct_body(100)(seq)))
        );
        // Not acknowledged (a failed send): the next hand-out reads the
        // stored copy, whose checksum catches the damage.
        assert_eq!(spool.oldest().unwrap(), None);
        assert_eq!(spool.take_loss().events, 4);
        // A batch acknowledged before it was handed out leaves nothing
        // behind in memory.
        let (second, _) = spool
            .push(BatchKind::Metrics, 0, 0, distinct_body(50), &[])
            .unwrap();
        spool.acknowledge(second).unwrap();
        assert!(spool.fresh.is_none());
        assert_eq!(spool.oldest().unwrap(), None);
    }

    #[test]
    fn a_damaged_page_of_bodies_is_salvaged_keeping_numbers_and_counting_the_loss() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.db");
        let mut spool = Spool::open(dir.path(), 1 << 30, 1).unwrap();
        let mut bodies = Vec::new();
        for seq in 1..=40u64 {
            let (pushed, _) = spool
                .push(
                    BatchKind::Events,
                    0,
                    seq,
                    distinct_body(1500),
                    &[("auth".into(), format!("pos-{seq}"))],
                )
                .unwrap();
            assert_eq!(pushed, seq);
            bodies.push(distinct_body(1500)(seq));
        }
        drop(spool);
        let page_size: usize = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA page_size", [], |row| row.get(0))
            .unwrap();
        let mut file = std::fs::read(&path).unwrap();
        // The page holding the start of batch 20, and every batch that
        // starts on it: what the damage destroys.
        let page = page_of(&file, &bodies[19], page_size);
        let destroyed: Vec<u64> = (1..=40u64)
            .filter(|seq| page_of(&file, &bodies[*seq as usize - 1], page_size) == page)
            .collect();
        assert!(!destroyed.is_empty());
        for byte in &mut file[page * page_size..(page + 1) * page_size] {
            *byte = 0xa5;
        }
        std::fs::write(&path, &file).unwrap();

        let mut spool = Spool::open(dir.path(), 1 << 30, 1).unwrap();
        assert_eq!(
            spool.take_loss(),
            Loss {
                salvages: 1,
                event_batches: destroyed.len() as u64,
                events: destroyed.iter().sum(),
                ..Loss::default()
            }
        );
        assert_eq!(spool.len(), 40 - destroyed.len() as u64);
        // Every other batch, under its own number, intact.
        let mut delivered = Vec::new();
        while let Some((seq, body)) = spool.oldest().unwrap() {
            assert_eq!(body, bodies[seq as usize - 1]);
            delivered.push(seq);
            spool.acknowledge(seq).unwrap();
        }
        let expected: Vec<u64> = (1..=40).filter(|seq| !destroyed.contains(seq)).collect();
        assert_eq!(delivered, expected);
        assert_eq!(spool.take_loss(), Loss::default());
        assert_eq!(spool.position("auth").unwrap().as_deref(), Some("pos-40"));
        let (next, _) = spool
            .push(BatchKind::Events, 0, 1, distinct_body(10), &[])
            .unwrap();
        assert_eq!(next, 41, "no number is handed out twice");
        let kept: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("spool.db.corrupt-"))
            .collect();
        assert_eq!(kept.len(), 1, "the damaged file is kept: {kept:?}");
    }

    #[test]
    fn an_unreadable_file_becomes_an_empty_spool_with_numbers_past_any_used() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20, 1).unwrap();
        spool.push(BatchKind::Events, 0, 3, body(10), &[]).unwrap();
        drop(spool);
        std::fs::write(dir.path().join("spool.db"), vec![0x5a; 8192]).unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20, 1).unwrap();
        assert_eq!(spool.len(), 0);
        let loss = spool.take_loss();
        assert_eq!(loss.salvages, 1);
        // Nothing says how far the numbers got: the clock is the floor.
        let (next, _) = spool.push(BatchKind::Events, 0, 1, body(10), &[]).unwrap();
        assert!(next > 1_700_000_000_000, "{next}");
    }

    #[test]
    fn a_spool_from_before_the_split_is_converted_with_its_batches() {
        let dir = tempfile::tempdir().unwrap();
        let connection = Connection::open(dir.path().join("spool.db")).unwrap();
        connection
            .execute_batch(
                "CREATE TABLE batches (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
                     created_ms INTEGER NOT NULL, body BLOB NOT NULL);
                 CREATE TABLE positions (source TEXT PRIMARY KEY, position TEXT NOT NULL);
                 INSERT INTO batches (kind, created_ms, body) VALUES ('events', 0, x'0102');
                 INSERT INTO positions VALUES ('auth', 'p');",
            )
            .unwrap();
        drop(connection);
        let mut spool = Spool::open(dir.path(), 1 << 20, 1).unwrap();
        assert_eq!((spool.len(), spool.bytes()), (1, 2));
        assert_eq!(spool.oldest().unwrap(), Some((1, vec![1, 2])));
        assert_eq!(spool.position("auth").unwrap().as_deref(), Some("p"));
        assert_eq!(
            spool
                .push(BatchKind::Metrics, 0, 0, body(10), &[])
                .unwrap()
                .0,
            2
        );
    }

    #[test]
    fn damage_found_while_sending_is_salvaged_and_sending_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.db");
        let mut spool = Spool::open(dir.path(), 1 << 30, 1).unwrap();
        let mut bodies = Vec::new();
        for seq in 1..=40u64 {
            spool
                .push(BatchKind::Events, 0, 2, distinct_body(1500), &[])
                .unwrap();
            bodies.push(distinct_body(1500)(seq));
        }
        spool
            .connection
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let page_size: usize = spool
            .connection
            .query_row("PRAGMA page_size", [], |row| row.get(0))
            .unwrap();
        let mut file = std::fs::read(&path).unwrap();
        let page = page_of(&file, &bodies[29], page_size);
        for byte in &mut file[page * page_size..(page + 1) * page_size] {
            *byte = 0xa5;
        }
        std::fs::write(&path, &file).unwrap();
        // The running agent's page cache must not hide the damage.
        spool
            .connection
            .execute_batch("PRAGMA shrink_memory")
            .unwrap();
        let mut delivered = 0u64;
        while let Some((seq, body)) = spool.oldest().unwrap() {
            assert_eq!(body, bodies[seq as usize - 1]);
            delivered += 1;
            spool.acknowledge(seq).unwrap();
        }
        let loss = spool.take_loss();
        assert_eq!(loss.salvages, 1, "{loss:?}");
        assert!(loss.event_batches > 0);
        assert_eq!(delivered + loss.event_batches, 40);
        assert_eq!(loss.events, 2 * loss.event_batches);
        assert_eq!(
            spool
                .push(BatchKind::Events, 0, 1, distinct_body(10), &[])
                .unwrap()
                .0,
            41
        );
    }

    #[test]
    fn bodies_whose_index_page_is_damaged_are_kept_when_they_decode_as_their_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.db");
        let mut spool = Spool::open(dir.path(), 1 << 30, 1).unwrap();
        let batch = |seq: u64| {
            let mut event = countywatch_wire::Event::new(
                0,
                countywatch_wire::EventSource::Auth,
                countywatch_wire::EventKind::SshLoginFailed,
            );
            event.raw = format!("line {seq}");
            countywatch_wire::encode_batch(&countywatch_wire::Batch {
                version: countywatch_wire::WIRE_VERSION,
                agent: "a".into(),
                seq,
                collected_at_ms: 0,
                metrics: Vec::new(),
                events: vec![event; 3],
            })
        };
        for _ in 0..400 {
            spool.push(BatchKind::Events, 0, 3, batch, &[]).unwrap();
        }
        drop(spool);
        let connection = Connection::open(&path).unwrap();
        let (page, page_size): (usize, usize) = connection
            .query_row(
                "SELECT pageno, (SELECT page_size FROM pragma_page_size) FROM dbstat
                 WHERE name = 'batches' AND pagetype = 'leaf' ORDER BY pageno LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        drop(connection);
        let mut file = std::fs::read(&path).unwrap();
        for byte in &mut file[(page - 1) * page_size..page * page_size] {
            *byte = 0xa5;
        }
        std::fs::write(&path, &file).unwrap();

        let mut spool = Spool::open(dir.path(), 1 << 30, 1).unwrap();
        assert_eq!(
            spool.take_loss(),
            Loss {
                salvages: 1,
                ..Loss::default()
            },
            "every body decodes as its own batch: nothing lost"
        );
        assert_eq!(spool.len(), 400);
        let mut seq_expected = 1;
        while let Some((seq, body)) = spool.oldest().unwrap() {
            assert_eq!((seq, &body), (seq_expected, &batch(seq)));
            spool.acknowledge(seq).unwrap();
            seq_expected += 1;
        }
        assert_eq!(
            spool.push(BatchKind::Events, 0, 3, batch, &[]).unwrap().0,
            401
        );
    }
}
