//! Prometheus-compatible alerting and recording rules for countywatch.
//!
//! - [`storage`]: the in-memory series store rules read from.
//! - [`promql`]: PromQL parsing (via `promql-parser`) and instant evaluation.
//! - [`rulefmt`]: the rule-file schema and its validation with positions.
//! - [`alert`]: one alerting rule's state machine.
//! - [`recording`]: one recording rule.
//! - [`output_error`]: why a rule's result at one evaluation was refused.
//! - [`group`]: a rule group evaluated in order, feeding results back.
//! - [`check`]: `rules check`, promtool-style rule-file validation.
//! - [`unittest`]: promtool's rule unit-test format and its runner.
//!
//! Label sets and templates live in `countywatch-labels`, shared with the
//! detection engine, which must not link PromQL.
//!
//! **Architecture Invariant:** nothing here does network IO or spawns
//! tasks; the collector owns the clock and the loop, tests own time.

pub mod alert;
pub mod check;
pub mod group;
pub mod output_error;
pub mod promql;
pub mod recording;
pub mod rulefmt;
pub mod storage;
pub mod unittest;
