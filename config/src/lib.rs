//! The file formats countywatch's configuration and rule files share.
//!
//! - [`config_file`]: YAML loading through serde-saphyr with every problem
//!   reported as `file:line:column: message`, and the `check-config`
//!   command's output and exit code.
//! - [`duration`]: Prometheus-style durations (`15s`, `1m30s`) in configs
//!   and rule files.
//!
//! This crate does no IO beyond reading the file it is asked to load, and
//! knows nothing about daemons (logging, shutdown, systemd): the rule and
//! detection engines read their rule files through it without depending on
//! the daemon crate.

pub mod config_file;
pub mod duration;
