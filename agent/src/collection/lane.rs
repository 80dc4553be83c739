//! A lane: probes queued for one blocking thread, which runs them one
//! after another and sends each result back as soon as it has it.
//!
//! Running the many small /proc and /sys readers in a row on one thread
//! costs one thread wake-up per collection instead of one per probe (the
//! agent's CPU per collection, docs/benchmarks.md, agent_footprint). For
//! the same reason a result sent does not wake the collection: it waits
//! for a lane to end ([`Outlet::lane_ended`]) or for the running probe's
//! time to run out, and then takes every result sent so far. What
//! a thread per probe gave, that a probe stuck in the kernel cannot stall
//! the others, the lane keeps with [`Lane::abandon_overdue`]: the
//! collection gives up on a probe that overran its timeout, takes back the
//! probes still queued behind it and starts them on a fresh lane. The
//! stuck probe's result still arrives, whenever it returns, on the same
//! channel, and the abandoned lane then ends.
//!
//! A probe that panics is caught here, reported as lost, and does not take
//! the rest of its lane with it.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use countywatch_wire::{Event, MetricFamily};
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;

use crate::probe::{Probe, ProbeError};

/// A probe and its place among the collection's probes.
pub type Queued = (usize, Box<dyn Probe>);

/// One probe run, sent back by the lane that ran it.
pub struct Finished {
    /// The probe's place among the collection's probes.
    pub index: usize,
    /// The probe, handed back; `None` when it panicked (it is lost).
    pub probe: Option<Box<dyn Probe>>,
    /// What it reported.
    pub families: Vec<MetricFamily>,
    /// The events it saw.
    pub events: Vec<Event>,
    /// Whether it succeeded.
    pub result: Result<(), ProbeError>,
    /// How long it ran.
    pub duration: Duration,
}

/// Where lanes hand their results: a channel the collection drains
/// without waiting on it, and the signal that a lane has run out of probes.
#[derive(Clone)]
pub struct Outlet {
    /// Each finished run, sent as soon as it is done.
    pub results: UnboundedSender<Finished>,
    /// Notified when a lane has run its last probe (or was abandoned and
    /// its stuck probe came back), after its results were sent.
    pub lane_ended: Arc<Notify>,
}

/// Probes waiting for one blocking thread, and the one it is running.
pub struct Lane {
    /// The queue and the running probe, under one lock so that giving up
    /// on the running probe and taking the queue is one step the thread
    /// cannot interleave with starting the next probe.
    state: Mutex<LaneState>,
}

/// What a lane holds.
struct LaneState {
    /// Probes not started yet, in order.
    queue: VecDeque<Queued>,
    /// The probe running now and when it started.
    running: Option<(usize, Instant)>,
}

impl Lane {
    /// Starts a blocking thread running `queue` in order, sending each
    /// result to `results`.
    pub fn start(queue: VecDeque<Queued>, outlet: Outlet) -> Arc<Lane> {
        let lane = Arc::new(Lane {
            state: Mutex::new(LaneState {
                queue,
                running: None,
            }),
        });
        let running = Arc::clone(&lane);
        tokio::task::spawn_blocking(move || {
            running.run(&outlet.results);
            outlet.lane_ended.notify_one();
        });
        lane
    }

    /// When the probe running now started, if one is.
    pub fn running_since(&self) -> Option<Instant> {
        self.lock().running.map(|(_, started)| started)
    }

    /// Gives up on the running probe if it has run for `limit` or longer
    /// by `now`: returns its index and the probes queued behind it, which
    /// this lane will then not run.
    pub fn abandon_overdue(
        &self,
        limit: Duration,
        now: Instant,
    ) -> Option<(usize, VecDeque<Queued>)> {
        let mut state = self.lock();
        let (index, started) = state.running?;
        if now.duration_since(started) < limit {
            return None;
        }
        Some((index, std::mem::take(&mut state.queue)))
    }

    fn lock(&self) -> MutexGuard<'_, LaneState> {
        // A panic never happens while the lock is held (probes run outside
        // it), so a poisoned lock still holds consistent state.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The thread's loop: take the next probe, run it, send the result.
    fn run(&self, results: &UnboundedSender<Finished>) {
        loop {
            let (index, mut probe) = {
                let mut state = self.lock();
                let Some(next) = state.queue.pop_front() else {
                    state.running = None;
                    return;
                };
                state.running = Some((next.0, Instant::now()));
                next
            };
            let started = Instant::now();
            let mut families = Vec::new();
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let result = probe.collect(&mut families);
                (result, probe.take_events())
            }));
            let duration = started.elapsed();
            let finished = match outcome {
                Ok((result, events)) => Finished {
                    index,
                    probe: Some(probe),
                    families,
                    events,
                    result,
                    duration,
                },
                Err(_) => Finished {
                    index,
                    probe: None,
                    families: Vec::new(),
                    events: Vec::new(),
                    result: Err(ProbeError::Panicked),
                    duration,
                },
            };
            self.lock().running = None;
            // The collector is gone (the agent reloaded or stopped): the
            // probes left are dropped with the lane.
            if results.send(finished).is_err() {
                return;
            }
        }
    }
}
