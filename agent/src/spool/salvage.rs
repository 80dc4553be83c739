//! Salvaging a damaged spool: every readable batch (with its sequence
//! number, so the collector's dedup still recognises what it already has)
//! and every readable source position go into a fresh database that
//! replaces the damaged one; the damaged file is kept beside it as
//! `spool.db.corrupt-<unix seconds>` for the security officer (the newest
//! [`KEEP_DAMAGED`] only, so a failing disk cannot fill the state
//! directory); what could not be read is counted as a [`Loss`].
//!
//! Rows are read by a rowid walk that steps over damage: an ordered read
//! that fails is retried from further and further ahead until one works,
//! then the first rowid past the damage is found by bisection. A damaged
//! leaf page thus costs the rows it held, nothing after it. Reading stops
//! at nothing short of the file being unreadable as a database.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Loss, SCHEMA, checksum, open_checked, set_sequence_floor};

/// Damaged spool files kept for inspection; older ones are deleted.
pub const KEEP_DAMAGED: usize = 2;

/// The most a salvaged body may decompress to when it has to be decoded
/// to be trusted (its index row was lost): far above any batch.
const MAX_DECODED_BYTES: usize = 256 << 20;

/// A batch's index row as read from the damaged file.
struct IndexRow {
    kind: String,
    created_ms: i64,
    events: Option<i64>,
    checksum: Option<i64>,
}

/// What a salvage copied.
#[derive(Default)]
struct Copied {
    /// Batches.
    batches: u64,
    /// Source positions.
    positions: usize,
}

/// Salvages the spool at `path`, whose connections must all be closed
/// (a connection left open would delete the fresh spool's WAL when it
/// closes). `cause` is what showed the damage, for the log. Returns the
/// fresh spool's connection and what was lost.
pub(super) fn salvage(
    path: &Path,
    first_seq: u64,
    cause: &anyhow::Error,
) -> anyhow::Result<(Connection, Loss)> {
    tracing::error!(
        spool = %path.display(),
        error = format!("{cause:#}"),
        "the spool database is damaged; salvaging every readable batch into a fresh one"
    );
    let fresh_path = sibling(path, ".salvage");
    remove_with_sidecars(&fresh_path);
    let mut loss = Loss {
        salvages: 1,
        ..Loss::default()
    };
    let mut fresh = Connection::open(&fresh_path)
        .with_context(|| format!("cannot create {}", fresh_path.display()))?;
    let copied = match Connection::open(path) {
        Ok(damaged) => copy_readable(&damaged, &mut fresh, first_seq, &mut loss),
        // Nothing is readable; the fresh spool still needs its tables.
        Err(_) => copy_readable(
            &Connection::open_in_memory()?,
            &mut fresh,
            first_seq,
            &mut loss,
        ),
    }
    .with_context(|| format!("cannot write {}", fresh_path.display()))?;
    drop(fresh);
    let kept = move_aside(path)?;
    std::fs::rename(&fresh_path, path)
        .with_context(|| format!("cannot move {} to {}", fresh_path.display(), path.display()))?;
    prune_damaged(path);
    tracing::error!(
        spool = %path.display(),
        kept = %kept.display(),
        salvaged_batches = copied.batches,
        salvaged_positions = copied.positions,
        lost_event_batches = loss.event_batches,
        lost_events = loss.events,
        lost_metric_batches = loss.metric_batches,
        lost_uncounted_batches = loss.uncounted_batches,
        "spool salvaged; the damaged file is kept for inspection"
    );
    let connection = open_checked(path, first_seq)?;
    Ok((connection, loss))
}

/// Copies every readable batch and position of `damaged` into `fresh`, in
/// one transaction, and counts the rest in `loss`. The index rows and
/// positions are small and read first; bodies are copied one at a time as
/// the walk reads them, so memory stays at one batch whatever the spool's
/// size.
fn copy_readable(
    damaged: &Connection,
    fresh: &mut Connection,
    first_seq: u64,
    loss: &mut Loss,
) -> anyhow::Result<Copied> {
    let mut copied = Copied::default();
    let sequence: Option<i64> = damaged
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'batches'",
            [],
            |row| row.get(0),
        )
        .ok();
    let columns: Vec<String> = damaged
        .prepare("SELECT name FROM pragma_table_info('batches')")
        .and_then(|mut statement| statement.query_map([], |row| row.get(0))?.collect())
        .unwrap_or_default();
    // A spool from before the split keeps its bodies in `batches`.
    let (bodies_table, events, stored) = if columns.iter().any(|column| column == "body") {
        ("batches", "NULL", "NULL")
    } else {
        ("bodies", "events", "checksum")
    };
    let mut index: BTreeMap<i64, IndexRow> = BTreeMap::new();
    walk(
        damaged,
        "batches",
        &format!("kind, created_ms, {events}, {stored}"),
        |row| {
            Ok(IndexRow {
                kind: row.get(1)?,
                created_ms: row.get(2)?,
                events: row.get(3)?,
                checksum: row.get(4)?,
            })
        },
        |seq, row| {
            index.insert(seq, row);
        },
    );
    let mut positions = Vec::new();
    walk(
        damaged,
        "positions",
        "source, position",
        |row| Ok((row.get::<_, String>(1)?, row.get::<_, String>(2)?)),
        |_, position| positions.push(position),
    );

    let transaction = fresh.transaction()?;
    transaction.execute_batch(SCHEMA)?;
    let mut salvaged: BTreeSet<i64> = BTreeSet::new();
    let mut highest_seen = index.keys().next_back().copied().unwrap_or(0);
    let mut write_error = None;
    walk(
        damaged,
        bodies_table,
        "body",
        |row| row.get::<_, Vec<u8>>(1),
        |seq, body| {
            highest_seen = highest_seen.max(seq);
            if write_error.is_some() {
                return;
            }
            let Some((kind, created_ms, events)) = trusted(index.get(&seq), seq, &body) else {
                if !index.contains_key(&seq) {
                    loss.uncounted_batches += 1;
                }
                return;
            };
            let inserted = transaction
                .execute(
                    "INSERT INTO batches (seq, kind, created_ms, events, bytes, checksum)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        seq,
                        kind,
                        created_ms,
                        events,
                        body.len() as i64,
                        checksum(&body)
                    ],
                )
                .and_then(|_| {
                    transaction.execute(
                        "INSERT INTO bodies (seq, body) VALUES (?1, ?2)",
                        params![seq, body],
                    )
                });
            match inserted {
                Ok(_) => {
                    salvaged.insert(seq);
                }
                Err(error) => write_error = Some(error),
            }
        },
    );
    if let Some(error) = write_error {
        return Err(error.into());
    }
    // An index row whose body was unreadable, missing or wrong: lost, and
    // the row says exactly what it held.
    for (seq, row) in &index {
        if !salvaged.contains(seq) {
            loss.lost(&row.kind, row.events);
        }
    }
    for (source, position) in &positions {
        transaction.execute(
            "INSERT OR REPLACE INTO positions (source, position) VALUES (?1, ?2)",
            params![source, position],
        )?;
    }
    // A sequence number must never be handed out twice: the collector
    // would take the new batch for one it already has. When the damaged
    // file no longer says how far it got, the clock in milliseconds is a
    // floor no agent reaches (one batch a millisecond for decades).
    let last_handed_out = sequence
        .unwrap_or_else(countywatch_daemon::clock::now_ms)
        .max(highest_seen);
    let floor = u64::try_from(last_handed_out)
        .unwrap_or(0)
        .max(first_seq.saturating_sub(1));
    set_sequence_floor(&transaction, floor)?;
    transaction.commit()?;
    copied.batches = salvaged.len() as u64;
    copied.positions = positions.len();
    Ok(copied)
}

/// Whether a body read back may be delivered, and with what index row:
/// with its own row if its checksum matches; without one (the row was
/// lost) only if it decodes (gzip's own CRC) as the batch of that number.
fn trusted(index: Option<&IndexRow>, seq: i64, body: &[u8]) -> Option<(String, i64, Option<i64>)> {
    if let Some(row) = index {
        return row
            .checksum
            .is_none_or(|stored| stored == checksum(body))
            .then(|| (row.kind.clone(), row.created_ms, row.events));
    }
    let batch = countywatch_wire::decode_batch(
        body,
        Some(countywatch_wire::CONTENT_ENCODING_GZIP),
        MAX_DECODED_BYTES,
    )
    .ok()?;
    if i64::try_from(batch.seq) != Ok(seq) {
        return None;
    }
    let kind = if batch.events.is_empty() {
        "metrics"
    } else {
        "events"
    };
    Some((
        kind.to_string(),
        batch.collected_at_ms,
        Some(batch.events.len() as i64),
    ))
}

/// Hands every readable row of `table` to `visit`, in rowid order,
/// stepping over damage.
fn walk<T>(
    connection: &Connection,
    table: &str,
    columns: &str,
    read: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
    mut visit: impl FnMut(i64, T),
) {
    let sql =
        format!("SELECT rowid, {columns} FROM {table} WHERE rowid > ?1 ORDER BY rowid LIMIT 1");
    let point_sql = format!("SELECT rowid, {columns} FROM {table} WHERE rowid = ?1");
    let (Ok(mut statement), Ok(mut point)) =
        (connection.prepare(&sql), connection.prepare(&point_sql))
    else {
        return;
    };
    let mut next_after = |after: i64| -> rusqlite::Result<Option<(i64, T)>> {
        statement
            .query_row(params![after], |row| Ok((row.get(0)?, read(row)?)))
            .optional()
    };
    // Rowids of these tables are positive; the walk starts below them.
    let mut after = 0i64;
    loop {
        match next_after(after) {
            Ok(Some((rowid, value))) => {
                visit(rowid, value);
                after = rowid;
            }
            Ok(None) => break,
            Err(_) => match past_damage(after, |from| next_after(from).is_ok()) {
                Some(resume) => {
                    // An ordered read from `resume` skips the row `resume`
                    // itself, which may lie on the next, intact page.
                    if let Ok(Some((rowid, value))) = point
                        .query_row(params![resume], |row| Ok((row.get(0)?, read(row)?)))
                        .optional()
                    {
                        visit(rowid, value);
                    }
                    after = resume;
                }
                None => break,
            },
        }
    }
}

/// The smallest `from` above `after` (whose ordered read fails) from which
/// an ordered read works: found by galloping ahead, then bisecting, so a
/// damaged page costs a few dozen reads whatever its rowid range.
fn past_damage(after: i64, mut readable_from: impl FnMut(i64) -> bool) -> Option<i64> {
    let mut failing = after;
    let mut step = 1i64;
    let working = loop {
        let candidate = after.checked_add(step)?;
        if readable_from(candidate) {
            break candidate;
        }
        failing = candidate;
        step = step.checked_mul(2)?;
    };
    let (mut low, mut high) = (failing, working);
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if readable_from(middle) {
            high = middle;
        } else {
            low = middle;
        }
    }
    Some(high)
}

/// `spool.db` + `suffix`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

fn remove_with_sidecars(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(sibling(path, suffix));
    }
}

/// Renames the damaged database and its WAL (which SQLite will pair with
/// it under the new name) to `spool.db.corrupt-<unix seconds>`; the shared
/// memory index is only a cache and is removed.
fn move_aside(path: &Path) -> anyhow::Result<PathBuf> {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    let mut kept = sibling(path, &format!(".corrupt-{seconds}"));
    let mut attempt = 1;
    while kept.exists() {
        kept = sibling(path, &format!(".corrupt-{seconds}.{attempt}"));
        attempt += 1;
    }
    if path.exists() {
        std::fs::rename(path, &kept)
            .with_context(|| format!("cannot move the damaged spool to {}", kept.display()))?;
    }
    let wal = sibling(path, "-wal");
    if wal.exists() {
        std::fs::rename(&wal, sibling(&kept, "-wal"))
            .with_context(|| format!("cannot move {}", wal.display()))?;
    }
    let _ = std::fs::remove_file(sibling(path, "-shm"));
    Ok(kept)
}

/// Deletes all but the newest [`KEEP_DAMAGED`] damaged copies.
fn prune_damaged(path: &Path) {
    let (Some(directory), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!("{}.corrupt-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    // (seconds, attempt, path) of each kept database (not its WAL).
    let mut copies: Vec<(u64, u64, PathBuf)> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let stamp = file_name.strip_prefix(&prefix)?;
            if stamp.ends_with("-wal") || stamp.ends_with("-shm") {
                return None;
            }
            let (seconds, attempt) = stamp.split_once('.').unwrap_or((stamp, "0"));
            Some((seconds.parse().ok()?, attempt.parse().ok()?, entry.path()))
        })
        .collect();
    copies.sort();
    let excess = copies.len().saturating_sub(KEEP_DAMAGED);
    for (_, _, old) in copies.into_iter().take(excess) {
        remove_with_sidecars(&old);
        tracing::info!(removed = %old.display(), "an older damaged spool copy was deleted");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_damage_finds_the_first_readable_start() {
        // Reads fail from 10 up to 40 (a damaged page holding 11..=40).
        for damaged_end in [11, 40, 1_000_000] {
            let resume = past_damage(10, |from| from >= damaged_end).unwrap();
            assert_eq!(resume, damaged_end);
        }
        assert_eq!(past_damage(i64::MAX - 1, |_| false), None);
    }

    #[test]
    fn only_the_newest_damaged_copies_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool.db");
        for name in [
            "spool.db.corrupt-100",
            "spool.db.corrupt-100-wal",
            "spool.db.corrupt-300",
            "spool.db.corrupt-200",
            "spool.db.corrupt-200.1",
            "spool.db",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        prune_damaged(&spool);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["spool.db", "spool.db.corrupt-200.1", "spool.db.corrupt-300"]
        );
    }
}
