//! Logging set-up for the daemons and their subcommands.
//!
//! Logs go to stderr so that stdout stays free for what a subcommand prints
//! (`countywatch-agent test`, `token create`, ...). The filter comes from
//! `RUST_LOG` when set, else `info,async_snmp=off`.
//!
//! `RUST_LOG` is read as a list of `target=level` directives and a bare
//! default level (`warn,countywatch_agent::probe=debug`), tracing's
//! `filter::Targets` syntax: a target matches by module-path prefix. The
//! span and field filters of `EnvFilter` (`[span{field=value}]`) are not
//! supported: they pull a regular-expression engine into both daemons,
//! and the agent's resident memory is mostly its own code
//! (docs/benchmarks.md, agent_footprint). A `RUST_LOG` that does not parse
//! falls back to the default and says so in the log.

use std::io::IsTerminal;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The filter when `RUST_LOG` is unset. The SNMP library logs every failed
/// request of every poll; the agent's SNMP probe logs each device's failure
/// once per change.
const DEFAULT_FILTER: &str = "info,async_snmp=off";

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
    let requested = std::env::var("RUST_LOG").ok();
    let (filter, refused) = filter_for(requested.as_deref());
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .finish()
            .with(filter)
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .finish()
            .with(filter)
            .try_init(),
    };
    // A subscriber already set (tests that call `run` twice) is not an
    // error; only the one that was installed reports a refused RUST_LOG.
    if let (Ok(()), Some(refused)) = (result, refused) {
        tracing::warn!("RUST_LOG is not understood ({refused}); logging with {DEFAULT_FILTER}");
    }
}

/// The filter for `RUST_LOG`'s value (`None` when unset), and the parse
/// error when the value was refused and the default used instead.
fn filter_for(requested: Option<&str>) -> (Targets, Option<String>) {
    let default = || DEFAULT_FILTER.parse::<Targets>().unwrap_or_default();
    match requested.map(str::trim).filter(|value| !value.is_empty()) {
        None => (default(), None),
        Some(value) => match value.parse::<Targets>() {
            Ok(filter) => (filter, None),
            Err(error) => (default(), Some(error.to_string())),
        },
    }
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;

    #[test]
    fn the_default_logs_info_and_silences_the_snmp_library() {
        let (filter, refused) = filter_for(None);
        assert_eq!(refused, None);
        assert!(filter.would_enable("countywatch_agent::probe", &Level::INFO));
        assert!(!filter.would_enable("countywatch_agent::probe", &Level::DEBUG));
        assert!(!filter.would_enable("async_snmp::client", &Level::ERROR));
    }

    #[test]
    fn rust_log_sets_a_default_level_and_per_target_levels() {
        let (filter, refused) = filter_for(Some("warn,countywatch_agent::probe=debug"));
        assert_eq!(refused, None);
        assert!(filter.would_enable("countywatch_agent::probe::cpu", &Level::DEBUG));
        assert!(!filter.would_enable("countywatch_agent::spool", &Level::INFO));
        assert!(filter.would_enable("countywatch_agent::spool", &Level::WARN));
        // Without an async_snmp directive the library logs like the rest.
        assert!(filter.would_enable("async_snmp::client", &Level::WARN));
    }

    #[test]
    fn an_unreadable_or_empty_rust_log_falls_back_to_the_default() {
        let (filter, refused) = filter_for(Some("info,[span{field=1}]=debug=trace"));
        assert!(refused.is_some());
        assert!(filter.would_enable("countywatch_collector", &Level::INFO));
        assert!(!filter.would_enable("async_snmp", &Level::WARN));
        let (filter, refused) = filter_for(Some("  "));
        assert_eq!(refused, None);
        assert!(!filter.would_enable("countywatch_collector", &Level::DEBUG));
    }
}
