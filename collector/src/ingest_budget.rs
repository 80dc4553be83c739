//! The collector-wide budget of decompressed bytes held by ingest requests
//! in flight (`ingest.max_inflight_decompressed_bytes`).
//!
//! `ingest.max_decompressed_bytes` caps one request; this caps them all
//! together, so that many agents (or one agent on many connections) posting
//! large batches at once cannot take the collector's memory: each request
//! reserves room before its buffer grows (the size the gzip trailer claims
//! first, then each growth) and keeps it until its batch is stored, since
//! the decoded batch is about the size of its JSON. A request that finds no
//! room stops decompressing at once and is answered 503 with `Retry-After`;
//! agents keep the batch and retry. The budget is a semaphore counted in
//! KiB, taken without waiting: a request never waits holding part of the
//! budget, so requests cannot deadlock each other.

use std::sync::Arc;

use countywatch_wire::{Batch, DecodeError, decode_batch_within};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes per permit: the budget counts KiB so one request's reservation
/// fits the semaphore's `u32` permit counts whatever the caps.
const PERMIT_BYTES: usize = 1024;

/// The seconds an agent is told to wait before retrying a request refused
/// for want of room: the time a large batch takes to be stored.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// The budget shared by every ingest connection.
pub struct InflightBudget {
    /// Free room, in KiB.
    semaphore: Arc<Semaphore>,
    /// The whole budget, in KiB, to report what is in use.
    total_kib: usize,
}

/// Room held by one request; dropping it gives the room back.
pub struct InflightPermit {
    /// What the request was granted, merged into one permit.
    _permit: Option<OwnedSemaphorePermit>,
}

impl InflightBudget {
    /// A budget of `bytes` decompressed bytes, rounded down to whole KiB
    /// (at least one) and to what a semaphore can count.
    pub fn new(bytes: usize) -> Self {
        let total_kib = (bytes / PERMIT_BYTES).clamp(1, Semaphore::MAX_PERMITS);
        InflightBudget {
            semaphore: Arc::new(Semaphore::new(total_kib)),
            total_kib,
        }
    }

    /// Bytes held by requests in flight now.
    pub fn in_use_bytes(&self) -> usize {
        self.total_kib
            .saturating_sub(self.semaphore.available_permits())
            .saturating_mul(PERMIT_BYTES)
    }

    /// Decodes a request body (see `countywatch_wire::decode_batch`) within
    /// the budget and returns the batch with the room it holds; without
    /// room, [`DecodeError::NoRoom`]. Blocking: call it off the runtime.
    pub fn decode(
        &self,
        body: &[u8],
        content_encoding: Option<&str>,
        max_decompressed: usize,
    ) -> Result<(Batch, InflightPermit), DecodeError> {
        let mut held: Option<OwnedSemaphorePermit> = None;
        let batch = decode_batch_within(body, content_encoding, max_decompressed, &mut |bytes| {
            let kib = u32::try_from(bytes.div_ceil(PERMIT_BYTES)).unwrap_or(u32::MAX);
            match Arc::clone(&self.semaphore).try_acquire_many_owned(kib) {
                Ok(permit) => {
                    match held.as_mut() {
                        Some(held) => held.merge(permit),
                        None => held = Some(permit),
                    }
                    true
                }
                Err(_) => false,
            }
        })?;
        Ok((batch, InflightPermit { _permit: held }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use countywatch_wire::WIRE_VERSION;

    /// A batch's JSON padded with spaces to `padding` more bytes, sent
    /// without compression: it reserves exactly its length.
    fn padded_body(padding: usize) -> Vec<u8> {
        let batch = Batch {
            version: WIRE_VERSION,
            agent: "a".to_string(),
            seq: 1,
            collected_at_ms: 1,
            metrics: Vec::new(),
            events: Vec::new(),
        };
        let mut json = serde_json::to_vec(&batch).unwrap();
        json.extend(std::iter::repeat_n(b' ', padding));
        json
    }

    #[test]
    fn requests_share_the_budget_and_give_it_back() {
        let budget = InflightBudget::new(3 << 20);
        let body = padded_body(1 << 20);
        let first = budget.decode(&body, None, 2 << 20).unwrap();
        let second = budget.decode(&body, None, 2 << 20).unwrap();
        assert!(
            budget.in_use_bytes() >= 2 << 20,
            "{}",
            budget.in_use_bytes()
        );
        let refused = budget.decode(&body, None, 2 << 20).err().unwrap();
        assert!(matches!(refused, DecodeError::NoRoom(_)), "{refused}");
        // A refusal gives back what it had taken.
        assert!(budget.in_use_bytes() < 3 << 20);
        drop((first, second));
        assert_eq!(budget.in_use_bytes(), 0);
        assert!(budget.decode(&body, None, 2 << 20).is_ok());
        assert_eq!(budget.in_use_bytes(), 0);
    }
}
