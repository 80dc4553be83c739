//! Detection rules over security events (issue 7): the YAML rule format,
//! the engine that runs every accepted event through the loaded rules, and
//! the [`Detection`] it produces for the collector's notifier and incident
//! store.
//!
//! Like `countywatch-rules`, this crate does no IO besides reading rule and
//! test files and has no clock: callers pass every event's time, so tests and
//! `rules replay` run days of events in milliseconds.

pub mod detection;

pub use detection::{Detection, Evidence, Severity};
