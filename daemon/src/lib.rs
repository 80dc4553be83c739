//! Process plumbing shared by both countywatch daemons.
//!
//! - [`logging`]: `tracing` set-up, human on a terminal, JSON on request.
//! - [`clock`]: Unix milliseconds, the one timestamp both daemons record.
//! - [`shutdown`]: the future that resolves on SIGTERM or SIGINT.
//! - [`notify`]: systemd readiness (`READY=1` on `$NOTIFY_SOCKET`).
//! - [`durable_file`]: keys, certificates and records written whole, with
//!   their permissions from the first byte.
//! - [`private_files`]: the owner-only umask and tightening of older dirs.
//! - [`failpoint`]: test-only crash points (`COUNTYWATCH_FAILPOINT`), debug
//!   builds only.
//! - [`sqlite`]: opens every SQLite database with the pragmas it relies on.
//! - [`open_files`]: the soft open-file limit raised to the hard one.
//!
//! This crate knows nothing about metrics, events or the wire format; it
//! exists so that the agent and the collector do not depend on each other.
//! The config and rule file formats (YAML with located problems, durations)
//! are `countywatch-config`'s, so the engines need not depend on this crate.

pub mod clock;
pub mod durable_file;
pub mod failpoint;
pub mod logging;
pub mod notify;
pub mod open_files;
pub mod private_files;
pub mod shutdown;
pub mod sqlite;
