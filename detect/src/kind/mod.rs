//! The correlation kinds, one file each. Every kind is a pure function of a
//! group's state and one matching event (a [`Hit`]); it returns the hits
//! that made it fire, if it fired. The engine owns grouping, eviction,
//! cooldown and turning hits into a [`crate::Detection`].

pub mod absence;
pub mod distinct;
pub mod new_value;
pub mod sequence;
pub mod single;
pub mod threshold;

use serde::{Deserialize, Serialize};

/// One matching event, by reference: its time and the caller's id for it
/// (the `events` row id in the collector). Events themselves are not kept,
/// so a key's state stays a few dozen bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hit {
    /// Event time, ms since the epoch.
    pub at_ms: i64,
    /// The caller's id of the event.
    pub id: i64,
}

/// What one group key remembers, by kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupState {
    /// Nothing (single rules keep a key only for its cooldown).
    Empty,
    /// Threshold: the latest hits within the window, oldest first.
    Hits(Vec<Hit>),
    /// Distinct: one hit per distinct value hash, oldest first.
    Distinct(Vec<(u64, Hit)>),
    /// Sequence: the hits of each step reached so far.
    Sequence(Vec<Vec<Hit>>),
    /// New value: hashes of the values seen, oldest first.
    Seen(Vec<u64>),
    /// Absence: the last hit, and whether its silence was already reported.
    LastSeen {
        /// The latest matching event.
        hit: Hit,
        /// Whether the absence after it has fired.
        fired: bool,
    },
}

impl GroupState {
    /// The first word of the state's list, if it has one: reading it
    /// brings the list into the cache (see the engine's `prefetch`).
    pub fn first_heap_word(&self) -> Option<i64> {
        match self {
            GroupState::Empty | GroupState::LastSeen { .. } => None,
            GroupState::Hits(hits) => hits.first().map(|hit| hit.at_ms),
            GroupState::Distinct(values) => values.first().map(|(_, hit)| hit.at_ms),
            GroupState::Sequence(steps) => steps
                .first()
                .and_then(|step| step.first())
                .map(|hit| hit.at_ms),
            GroupState::Seen(values) => values.first().map(|value| *value as i64),
        }
    }

    /// Heap bytes the state holds, for the memory figure.
    pub fn heap_bytes(&self) -> usize {
        match self {
            GroupState::Empty | GroupState::LastSeen { .. } => 0,
            GroupState::Hits(hits) => hits.capacity() * size_of::<Hit>(),
            GroupState::Distinct(values) => values.capacity() * size_of::<(u64, Hit)>(),
            GroupState::Sequence(steps) => {
                steps.capacity() * size_of::<Vec<Hit>>()
                    + steps
                        .iter()
                        .map(|step| step.capacity() * size_of::<Hit>())
                        .sum::<usize>()
            }
            GroupState::Seen(values) => values.capacity() * size_of::<u64>(),
        }
    }
}

/// Drops hits older than `window_ms` before `now_ms` from the front of an
/// oldest-first list.
pub fn expire<T>(items: &mut Vec<T>, hit_of: impl Fn(&T) -> Hit, now_ms: i64, window_ms: i64) {
    let cutoff = now_ms.saturating_sub(window_ms);
    let stale = items
        .iter()
        .take_while(|item| hit_of(item).at_ms < cutoff)
        .count();
    if stale > 0 {
        items.drain(..stale);
    }
}

/// Appends `item` to a list that never holds more than `most` items,
/// growing it by doubling up to `most`: a handful of reallocations per key
/// instead of one per item (each realloc was a malloc, a copy and a free on
/// the hot path), and never more room than the list can use.
pub fn push_bounded<T>(items: &mut Vec<T>, item: T, most: usize) {
    if items.len() == items.capacity() {
        let wanted = items
            .len()
            .max(1)
            .min(most.saturating_sub(items.len()))
            .max(1);
        items.reserve_exact(wanted);
    }
    items.push(item);
}

/// FNV-1a over bytes: a hash that is the same in every run, so the hashes
/// in a snapshot still mean the same values after a restart.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_lists_grow_by_doubling_up_to_their_bound() {
        let mut items = Vec::new();
        let mut capacities = Vec::new();
        for item in 0..12 {
            push_bounded(&mut items, item, 10);
            capacities.push(items.capacity());
        }
        // Reallocations at 1, 2, 4, 8 and 10 items; past the bound (which
        // sequence steps can reach) one at a time.
        assert_eq!(capacities, vec![1, 2, 4, 4, 8, 8, 8, 8, 10, 10, 11, 12]);
        assert_eq!(items, (0..12).collect::<Vec<_>>());
    }
}
