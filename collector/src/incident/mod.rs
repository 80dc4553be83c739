//! Incidents: what detection rules found, the evidence, who looked at it and
//! what they decided. This is the domain only (the audit trail every layer
//! records into is [`crate::audit`]); the web page and API security officers work through it with are
//! in [`crate::http`], which imports this module and never the reverse. See
//! docs/incidents.md.
//!
//! - [`config`]: the `incidents:` section (retention, reopen window, sessions).
//! - [`store`]: `incidents.db` (SQLite, WAL), its schema and the read side.
//! - [`lifecycle`]: detections in (dedup, reopen), transitions and comments.
//! - [`decisions`]: active-response decisions and the update log agents follow.
//! - [`detection_sink`]: the store as the detection task's sink, and the
//!   incident gauges on `/metrics`.
//! - [`retention`]: the daily purge in small transactions.
//! - [`auth`]: users (argon2), sessions, API tokens, roles.
//! - [`accounts`]: the first admin, password changes, disabling and
//!   removing users, listing and revoking tokens.
//! - [`export`]: CSV and JSON exports of incident lists.
//! - [`event_search`]: the raw events search over `collector.db`.
//! - [`report_records`]: incidents as the county report's history keeps them.

pub mod accounts;
pub mod auth;
pub mod config;
pub mod decisions;
pub mod detection_sink;
pub mod event_search;
pub mod export;
pub mod lifecycle;
pub mod report_records;
pub mod retention;
pub mod store;
