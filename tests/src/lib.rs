//! The harness end-to-end tests and benchmarks share: start the real
//! `countywatch-collector` and `countywatch-agent` binaries on loopback
//! ports they choose themselves, wait until they are ready, talk to them
//! over HTTP, and stop them.
//!
//! The daemons bind port 0 and report the address in a JSON log line, so no
//! test ever guesses a free port. Binaries are looked up next to the test
//! executable (`target/<profile>/`); `tests/run.sh` builds them first.
//! Third-party peers ([`peer`]: node_exporter, Prometheus) cannot report a
//! port they chose, so for them the harness picks a free one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod bench;
pub mod fake_clock;
pub mod http;
pub mod netns;
pub mod notify_peers;
pub mod peer;
pub mod process;
pub mod webdriver;

pub use process::{Agent, Collector, TEST_AGENT_CONFIG, binary, enroll};
