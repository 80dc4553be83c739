//! Detection rules over security events: the YAML rule format,
//! the engine that runs every accepted event through the loaded rules, and
//! the [`Detection`] it produces for the collector's notifier and incident
//! store.
//!
//! - [`node`]: YAML values with positions, for the open-shaped parts.
//! - [`field`]: event fields by name, their types and values.
//! - [`condition`]: `match:` conditions, lists and macros, compiled once.
//! - [`calendar`]: working hours and time zone.
//! - [`rulefmt`]: the rule-file format and its validation with positions.
//! - [`kind`]: the correlation kinds, one file each.
//! - [`suppress`]: allow-lists and cooldowns.
//! - [`engine`]: state per rule and key, bounded, with snapshot/restore.
//! - [`unittest`]: the detection test-file format and its runner.
//! - [`test_lines`]: raw log lines in tests, through the agent's parsers
//!   (`countywatch-parse`).
//! - [`replay`]: recorded events through the rules, for backtesting.
//! - [`detection`]: what a firing rule produces.
//! - [`response`]: a rule's `response:` (block the source address).
//!
//! Like `countywatch-rules`, this crate does no IO besides reading rule and
//! test files and has no clock: callers pass every event's time, so tests and
//! `rules replay` run days of events in milliseconds.

pub mod calendar;
pub mod condition;
pub mod detection;
pub mod engine;
pub mod field;
pub mod kind;
pub mod node;
pub mod replay;
pub mod response;
pub mod rulefmt;
pub mod suppress;
pub mod test_lines;
pub mod unittest;

pub use detection::{Detection, Evidence, Severity};
