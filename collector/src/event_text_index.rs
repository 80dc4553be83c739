//! Keeps the events' free-text index caught up with the log: a task that
//! adds the events stored since its last round to `events_text` (the SQL is
//! the event log's, see `event_log.rs`), in chunks sized by [`next_chunk`],
//! and waits [`PAUSE`] once it has caught up. A failed round is logged and
//! retried after the pause; searches stay correct meanwhile, because they
//! scan what the index does not hold.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::event_log::EventLog;

/// The smallest chunk, events per transaction: the size the indexer starts
/// with.
const MIN_CHUNK: i64 = 1_000;

/// The largest chunk. FTS5 writes a segment per transaction, and indexing
/// costs less per event in larger ones: on the 2-core benchmark machine,
/// chunks of 1,000 indexed 11,000 events/s and chunks of 5,000 25,600,
/// against a sustained ingest of 20,000 events/s. So the chunk grows while
/// the index is behind, as long as a transaction stays short.
const MAX_CHUNK: i64 = 16_000;

/// How long one chunk's transaction may take: ingest waits for the same
/// write lock. A chunk that took longer (a busy machine, a wait for
/// ingest's lock, or FTS5 merging segments inside it) halves the next; one
/// that took less than half of this doubles it. (A fixed 5,000 once made a
/// batch write wait past the 5 s busy timeout under sustained load, during
/// a merge with `automerge` 16; FTS5's default, 4, merges in smaller
/// steps.)
const CHUNK_TIME: Duration = Duration::from_millis(400);

/// Pause between chunks while catching up, so that ingest, which waits for
/// the same write lock, gets it between two chunks: as long as the longest
/// sleep of SQLite's busy handler (100 ms), so that a batch that started
/// waiting during a chunk wakes up inside the pause instead of sleeping
/// through it into the next chunk.
const BETWEEN_CHUNKS: Duration = Duration::from_millis(100);

/// Time between rounds once the index has caught up.
const PAUSE: Duration = Duration::from_millis(500);

/// The chunk after one of `chunk` events that added `added` in `took`:
/// larger while full chunks are quick, smaller when one is slow, unchanged
/// when the index caught up (a short chunk says nothing about its cost).
pub fn next_chunk(chunk: i64, added: i64, took: Duration) -> i64 {
    if took > CHUNK_TIME {
        return (chunk / 2).max(MIN_CHUNK);
    }
    if added >= chunk && took < CHUNK_TIME / 2 {
        return (chunk * 2).min(MAX_CHUNK);
    }
    chunk
}

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
    let mut chunk = MIN_CHUNK;
    loop {
        // The connection moves to the blocking pool and back each round.
        let round = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let added = log.index_text(chunk);
            (log, added, started.elapsed())
        })
        .await;
        let (added, took) = match round {
            Ok((returned, added, took)) => {
                log = returned;
                (added, took)
            }
            Err(error) => {
                tracing::error!(%error, "the free-text indexer stopped: free-text search scans the newest events");
                return;
            }
        };
        match added {
            Ok(added) => {
                let behind = added >= chunk;
                chunk = next_chunk(chunk, added, took);
                if behind {
                    tokio::select! {
                        _ = stopped.changed() => return,
                        () = tokio::time::sleep(BETWEEN_CHUNKS) => {}
                    }
                    continue;
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_grow_while_quick_and_full_and_shrink_when_slow() {
        let quick = CHUNK_TIME / 4;
        let slow = CHUNK_TIME * 2;
        assert_eq!(next_chunk(MIN_CHUNK, MIN_CHUNK, quick), 2 * MIN_CHUNK);
        assert_eq!(next_chunk(MAX_CHUNK, MAX_CHUNK, quick), MAX_CHUNK);
        // Caught up: a short chunk was quick because it was short.
        assert_eq!(next_chunk(4_000, 10, quick), 4_000);
        // Neither quick nor slow.
        assert_eq!(next_chunk(4_000, 4_000, CHUNK_TIME), 4_000);
        assert_eq!(next_chunk(4_000, 4_000, slow), 2_000);
        assert_eq!(next_chunk(4_000, 10, slow), 2_000);
        assert_eq!(next_chunk(MIN_CHUNK, MIN_CHUNK, slow), MIN_CHUNK);
    }
}
