//! The durable spool: every batch is written here before it is sent and
//! deleted only when the collector acknowledges it, so nothing is lost when
//! the collector, the link, the agent or the host goes down.
//!
//! SQLite (bundled, WAL, `synchronous=FULL`) rather than a home-made
//! segment log: transactions give us, for free, the atomic "batch + source
//! positions" write that exactly-once delivery needs (see
//! [`Spool::push`]'s `positions`), crash recovery, and checksummed pages;
//! ARCHITECTURE.md has the longer argument. Sequence numbers come from
//! `AUTOINCREMENT`, so they are never reused, even after deletes and restarts.
//!
//! The spool is bounded (`spool.max_bytes`). When full, metric batches go
//! first (a newer one supersedes them anyway); security events go only when
//! nothing else is left. Every drop is counted and reported.

use std::path::Path;

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

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

/// The spool database.
pub struct Spool {
    /// The connection; the agent has one thread, so no pool.
    connection: Connection,
    /// Bytes of batch bodies the spool may hold.
    max_bytes: u64,
    /// Bytes of batch bodies it holds now (kept in memory, set at open).
    bytes: u64,
    /// Batches it holds now.
    count: u64,
}

impl Spool {
    /// Opens or creates `<state_dir>/spool.db`. Sequence numbers continue
    /// from at least `first_seq` (what the collector expects after an
    /// enrolment), or above the last one handed out, whichever is higher.
    pub fn open(state_dir: &Path, max_bytes: u64, first_seq: u64) -> anyhow::Result<Spool> {
        let path = state_dir.join("spool.db");
        let connection = Connection::open(&path)
            .with_context(|| format!("cannot open the spool {}", path.display()))?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .and_then(|()| connection.pragma_update(None, "synchronous", "FULL"))
            .and_then(|()| {
                connection.execute_batch(
                    "CREATE TABLE IF NOT EXISTS batches (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        kind TEXT NOT NULL,
                        created_ms INTEGER NOT NULL,
                        body BLOB NOT NULL
                    );
                    CREATE TABLE IF NOT EXISTS positions (
                        source TEXT PRIMARY KEY,
                        position TEXT NOT NULL
                    );",
                )
            })
            .with_context(|| format!("cannot initialise the spool {}", path.display()))?;
        let floor = i64::try_from(first_seq.saturating_sub(1)).unwrap_or(i64::MAX);
        connection
            .execute(
                "INSERT INTO sqlite_sequence (name, seq) SELECT 'batches', ?1
                 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'batches')",
                params![floor],
            )
            .and_then(|_| {
                connection.execute(
                    "UPDATE sqlite_sequence SET seq = MAX(seq, ?1) WHERE name = 'batches'",
                    params![floor],
                )
            })
            .with_context(|| format!("cannot set the sequence of {}", path.display()))?;
        let (bytes, count): (i64, i64) = connection
            .query_row(
                "SELECT COALESCE(SUM(LENGTH(body)), 0), COUNT(*) FROM batches",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .with_context(|| format!("cannot read the spool {}", path.display()))?;
        Ok(Spool {
            connection,
            max_bytes,
            bytes: u64::try_from(bytes).unwrap_or(0),
            count: u64::try_from(count).unwrap_or(0),
        })
    }

    /// Spools a batch. `encode` gets the batch's sequence number and returns
    /// its body. `positions` (source name, serialised position) are saved in
    /// the same transaction, so a source's read position moves exactly when
    /// its events become durable: a crash either keeps both or neither.
    /// Returns the sequence number and what was dropped to make room.
    pub fn push(
        &mut self,
        kind: BatchKind,
        created_ms: i64,
        encode: impl FnOnce(u64) -> Vec<u8>,
        positions: &[(String, String)],
    ) -> anyhow::Result<(u64, Overflow)> {
        let transaction = self
            .connection
            .transaction()
            .context("cannot write the spool")?;
        transaction
            .execute(
                "INSERT INTO batches (kind, created_ms, body) VALUES (?1, ?2, x'')",
                params![kind.as_str(), created_ms],
            )
            .context("cannot write the spool")?;
        let seq =
            u64::try_from(transaction.last_insert_rowid()).context("invalid sequence number")?;
        let body = encode(seq);
        let size = body.len() as u64;
        transaction
            .execute(
                "UPDATE batches SET body = ?1 WHERE seq = ?2",
                params![body, seq as i64],
            )
            .context("cannot write the spool")?;
        for (source, position) in positions {
            transaction
                .execute(
                    "INSERT INTO positions (source, position) VALUES (?1, ?2)
                     ON CONFLICT (source) DO UPDATE SET position = excluded.position",
                    params![source, position],
                )
                .context("cannot save a source position")?;
        }
        transaction.commit().context("cannot write the spool")?;
        self.bytes += size;
        self.count += 1;
        let overflow = self.enforce_bound(seq)?;
        Ok((seq, overflow))
    }

    /// Drops batches, metrics first and oldest first, until the spool fits,
    /// never dropping `keep` (the batch just written).
    fn enforce_bound(&mut self, keep: u64) -> anyhow::Result<Overflow> {
        let mut overflow = Overflow::default();
        while self.bytes > self.max_bytes {
            let victim: Option<(i64, String, i64)> = self
                .connection
                .query_row(
                    "SELECT seq, kind, LENGTH(body) FROM batches WHERE seq != ?1
                     ORDER BY (kind = 'events'), seq LIMIT 1",
                    params![keep as i64],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()
                .context("cannot read the spool")?;
            let Some((seq, kind, size)) = victim else {
                break;
            };
            self.connection
                .execute("DELETE FROM batches WHERE seq = ?1", params![seq])
                .context("cannot trim the spool")?;
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

    /// The oldest unacknowledged batch.
    pub fn oldest(&self) -> anyhow::Result<Option<(u64, Vec<u8>)>> {
        self.connection
            .query_row(
                "SELECT seq, body FROM batches ORDER BY seq LIMIT 1",
                [],
                |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)),
            )
            .optional()
            .context("cannot read the spool")
            .map(|row| row.map(|(seq, body)| (u64::try_from(seq).unwrap_or(0), body)))
    }

    /// Deletes an acknowledged batch.
    pub fn acknowledge(&mut self, seq: u64) -> anyhow::Result<()> {
        let size: Option<i64> = self
            .connection
            .query_row(
                "SELECT LENGTH(body) FROM batches WHERE seq = ?1",
                params![seq as i64],
                |row| row.get(0),
            )
            .optional()
            .context("cannot read the spool")?;
        if let Some(size) = size {
            self.connection
                .execute("DELETE FROM batches WHERE seq = ?1", params![seq as i64])
                .context("cannot delete from the spool")?;
            self.bytes = self.bytes.saturating_sub(u64::try_from(size).unwrap_or(0));
            self.count = self.count.saturating_sub(1);
        }
        Ok(())
    }

    /// A source's saved position, if any.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn body(size: usize) -> impl FnOnce(u64) -> Vec<u8> {
        move |seq| {
            let mut body = seq.to_le_bytes().to_vec();
            body.resize(size, 0);
            body
        }
    }

    #[test]
    fn batches_survive_reopening_and_sequence_numbers_never_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20, 1).unwrap();
        let (first, _) = spool.push(BatchKind::Metrics, 0, body(10), &[]).unwrap();
        let (second, _) = spool
            .push(
                BatchKind::Events,
                0,
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
        let (third, _) = spool.push(BatchKind::Metrics, 0, body(10), &[]).unwrap();
        assert_eq!(third, 3, "the acknowledged number 2 is not reused");
    }

    #[test]
    fn sequence_numbers_start_where_the_collector_expects() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20, 41).unwrap();
        assert_eq!(
            spool.push(BatchKind::Metrics, 0, body(10), &[]).unwrap().0,
            41
        );
        drop(spool);
        // A lower floor never moves the sequence back.
        let mut spool = Spool::open(dir.path(), 1 << 20, 1).unwrap();
        assert_eq!(
            spool.push(BatchKind::Metrics, 0, body(10), &[]).unwrap().0,
            42
        );
    }

    #[test]
    fn when_full_metrics_go_first_then_the_oldest_events() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 300, 1).unwrap();
        spool.push(BatchKind::Events, 0, body(100), &[]).unwrap();
        spool.push(BatchKind::Metrics, 0, body(100), &[]).unwrap();
        spool.push(BatchKind::Metrics, 0, body(100), &[]).unwrap();
        let (_, overflow) = spool.push(BatchKind::Events, 0, body(100), &[]).unwrap();
        assert_eq!(
            overflow,
            Overflow {
                metrics: 1,
                events: 0
            }
        );
        let (_, overflow) = spool.push(BatchKind::Events, 0, body(100), &[]).unwrap();
        assert_eq!(
            overflow,
            Overflow {
                metrics: 1,
                events: 0
            }
        );
        let (_, overflow) = spool.push(BatchKind::Events, 0, body(100), &[]).unwrap();
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
}
