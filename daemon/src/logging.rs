//! Logging set-up for the daemons and their subcommands.
//!
//! Logs go to stderr so that stdout stays free for what a subcommand prints
//! (`countywatch-agent test`, `token create`, ...). The filter comes from
//! `RUST_LOG` when set, else `info`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, coloured when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line, for journald or a log shipper.
    Json,
}

/// Installs the global `tracing` subscriber. Calling it twice is harmless:
/// the second call keeps the first subscriber.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        // The SNMP library logs every failed request of every poll; the
        // agent's SNMP probe logs each device's failure once per change.
        .unwrap_or_else(|_| EnvFilter::new("info,async_snmp=off"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A subscriber already set (tests that call `run` twice) is not an error.
    drop(result);
}
