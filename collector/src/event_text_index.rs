//! Keeps the events' free-text index caught up with the log: a task that
//! adds the events stored since its last round to `events_text` (the SQL is
//! the event log's, see `event_log.rs`), in chunks of [`CHUNK`] events, and
//! waits [`PAUSE`] once it has caught up. A failed round is logged and
//! retried after the pause; searches stay correct meanwhile, because they
//! scan what the index does not hold.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

use crate::event_log::EventLog;

/// Events indexed per transaction: large, because FTS5 writes a segment per
/// transaction, and small enough that ingest waits at most a fraction of a
/// second for the write lock. (5,000 made a batch write wait past the 5 s
/// busy timeout once in the `incident_store` benchmark's sustained load,
/// when FTS5 merged segments inside the indexer's transaction.)
pub const CHUNK: i64 = 1_000;

/// Pause between chunks while catching up, so that ingest, which waits for
/// the same write lock, gets it between two chunks.
const BETWEEN_CHUNKS: Duration = Duration::from_millis(20);

/// Time between rounds once the index has caught up.
const PAUSE: Duration = Duration::from_millis(500);

/// Indexes until `stopped`.
pub async fn run(data_dir: PathBuf, mut stopped: watch::Receiver<bool>) {
    let mut log = match EventLog::open(&data_dir) {
        Ok(log) => log,
        Err(error) => {
            tracing::error!(
                error = %anyhow::Error::from(error),
                "cannot open the event log: free-text search scans the whole log"
            );
            return;
        }
    };
    loop {
        // The connection moves to the blocking pool and back each round.
        let round = tokio::task::spawn_blocking(move || {
            let added = log.index_text(CHUNK);
            (log, added)
        })
        .await;
        let added = match round {
            Ok((returned, added)) => {
                log = returned;
                added
            }
            Err(error) => {
                tracing::error!(%error, "the free-text indexer stopped: free-text search scans the newest events");
                return;
            }
        };
        match added {
            Ok(added) if added >= CHUNK => {
                tokio::select! {
                    _ = stopped.changed() => return,
                    () = tokio::time::sleep(BETWEEN_CHUNKS) => {}
                }
                continue;
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "cannot extend the events' free-text index; retrying");
            }
        }
        tokio::select! {
            _ = stopped.changed() => return,
            () = tokio::time::sleep(PAUSE) => {}
        }
    }
}
