//! `countywatch-agent`: the command line around the agent library.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 usage error (from clap),
//! 3 invalid configuration.

// The daemons never panic on purpose outside tests (clippy.toml allows it in
// tests); unwrap and expect are denied workspace-wide.
#![deny(clippy::panic, clippy::todo, clippy::unimplemented)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use countywatch_agent::config::{Config, unspanned};
use countywatch_config::config_file;
use countywatch_daemon::logging::{self, LogFormat};

/// countywatch agent: reports this host's health and security events to a
/// countywatch collector.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent until SIGTERM or SIGINT.
    Run {
        /// Configuration file (YAML); without it the embedded defaults apply.
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Collect once and print what would be sent (metrics as Prometheus
    /// text, events as JSON lines), without a collector.
    Test {
        /// Configuration file (YAML); without it the embedded defaults apply.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Enrol with a collector: generate a key pair, send a certificate
    /// request with a single-use token, keep the certificate it returns.
    Enroll {
        /// The collector's enrolment URL, https://HOST:PORT (as `token create` prints it).
        #[arg(long)]
        collector: String,
        /// The single-use token from `countywatch-collector token create`.
        #[arg(long)]
        token: String,
        /// SHA-256 of the collector's CA certificate, from `token create`.
        #[arg(long)]
        ca_sha256: String,
        /// Name to enrol as; defaults to the token's name, else the host name.
        #[arg(long)]
        name: Option<String>,
        /// State directory (state_dir); defaults to the config's.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Configuration file (YAML), for its state_dir and name.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Active response: the addresses this host blocks.
    Blocks {
        #[command(subcommand)]
        command: BlocksCommand,
    },
    /// Check a configuration file: exit 0 when valid, else print every problem.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Read a log file through the event parsers: one JSON event per line on
    /// stdout, then a summary on stderr (lines read, events by kind, lines
    /// not understood). Checks the parsers against your own logs.
    Replay {
        /// Which source's parsers to use.
        #[arg(long, value_enum)]
        source: ReplaySource,
        /// Longest line kept, in bytes; longer lines are cut and marked.
        #[arg(long, default_value_t = 16 * 1024)]
        max_line_bytes: usize,
        /// `--source syslog`: what the events' `device` field says (live,
        /// it is the sender's address).
        #[arg(long, default_value = "replay")]
        device: String,
        /// The zone of zone-less timestamps (`Dec  6 10:00:01`): `local`
        /// (this host's: TZ, else /etc/localtime) or a tzdb name
        /// (Asia/Shanghai, UTC). ISO-8601 stamps keep their offset.
        #[arg(long, default_value = "local")]
        timezone: String,
        /// `--source auth`: examples printed for each shape of line not
        /// understood (the summary always counts them by shape).
        #[arg(long, default_value_t = 0)]
        unknown_samples: usize,
        /// The log file (`-` for standard input).
        file: PathBuf,
    },
}

/// `blocks` subcommands.
#[derive(Subcommand)]
enum BlocksCommand {
    /// Print the blocks held (address, expiry in local time, mode, whether
    /// the firewall set holds it, reason), from the agent's record and its
    /// firewall set; safe while the agent runs.
    List {
        /// Configuration file (YAML), for its state_dir and response.backend.
        #[arg(long)]
        config: Option<PathBuf>,
        /// State directory (state_dir); defaults to the config's.
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
}

/// Sources `replay` can read.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ReplaySource {
    /// Authentication logs (auth.log, secure).
    Auth,
    /// Syslog messages from network devices, one per line, as sent
    /// (`<PRI>...`) or as a syslog daemon wrote them.
    Syslog,
}

/// Flags that override the configuration file.
#[derive(clap::Args, Clone)]
struct Overrides {
    /// Collector ingest URL (collector.url), e.g. https://collector:9781;
    /// defaults to the one recorded at enrolment.
    #[arg(long)]
    collector: Option<String>,
    /// Name to report as (name); defaults to the host name.
    #[arg(long)]
    name: Option<String>,
    /// State directory (state_dir).
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    // Before anything is created: the state dir and spool are owner-only.
    countywatch_daemon::private_files::restrict_umask();
    let cli = Cli::parse();
    logging::init(cli.log_format);
    match cli.command {
        Command::Replay {
            source,
            max_line_bytes,
            device,
            timezone,
            unknown_samples,
            file,
        } => {
            let zone = match countywatch_agent::source::log_time::zone(Some(&timezone)) {
                Ok(zone) => zone,
                Err(error) => {
                    eprintln!("{error}");
                    return ExitCode::from(2);
                }
            };
            let options = countywatch_parse::auth_replay::ReplayOptions {
                max_line: max_line_bytes.clamp(1, countywatch_wire::MAX_RAW_BYTES),
                now_ms: countywatch_daemon::clock::now_ms(),
                zone,
                unknown_samples,
            };
            replay(source, &file, &options, &device)
        }
        Command::Blocks {
            command: BlocksCommand::List { config, state_dir },
        } => {
            let overrides = Overrides {
                collector: None,
                name: None,
                state_dir,
            };
            match load(config.as_ref(), Some(overrides)) {
                Ok(config) => list_blocks(&config),
                Err(code) => code,
            }
        }
        Command::CheckConfig { file } => config_file::check_command(&file, Config::load(&file)),
        Command::Test { config } => {
            let config = match load(config.as_ref(), None) {
                Ok(config) => config,
                Err(code) => return code,
            };
            let families = runtime().block_on(countywatch_agent::collect_once(&config));
            let mut text = String::new();
            let refs: Vec<_> = families.iter().collect();
            countywatch_wire::write_text(&mut text, &refs, &[]);
            print!("{text}");
            ExitCode::SUCCESS
        }
        Command::Enroll {
            collector,
            token,
            ca_sha256,
            name,
            state_dir,
            config,
        } => {
            let start_command = start_command(config.as_deref(), state_dir.as_deref());
            let overrides = Overrides {
                collector: None,
                name: None,
                state_dir,
            };
            let config = match load(config.as_ref(), Some(overrides)) {
                Ok(config) => config,
                Err(code) => return code,
            };
            // The token's bound name wins on the collector; without one, the
            // flag, the config's name, then the host name.
            let name = name.or_else(|| config.name.as_ref().map(|name| name.value.clone()));
            let enrolled = runtime().block_on(countywatch_agent::enroll::enroll(
                &collector,
                &token,
                &ca_sha256,
                name.as_deref(),
                &config.agent_name(),
                &config.state_dir,
            ));
            match enrolled {
                Ok(enrollment) => {
                    let start_command = start_command.unwrap_or_else(|| {
                        format!(
                            "countywatch-agent run --state-dir {}",
                            config.state_dir.display()
                        )
                    });
                    println!(
                        "enrolled as {}; batches go to {}. Start the agent with: {start_command}",
                        enrollment.agent, enrollment.ingest_url,
                    );
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("{error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run {
            config: path,
            overrides,
        } => {
            let config = match load(path.as_ref(), Some(overrides.clone())) {
                Ok(config) => config,
                Err(code) => return code,
            };
            // SIGHUP re-reads the same file with the same flags.
            let reload: countywatch_agent::Reload =
                Box::new(move || load_config(path.as_ref(), Some(overrides.clone())));
            let shutdown = countywatch_daemon::shutdown::signal();
            match runtime().block_on(countywatch_agent::run_with_reload(
                config,
                shutdown,
                Some(reload),
            )) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!("{error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `replay --source auth|syslog FILE`.
fn replay(
    source: ReplaySource,
    file: &PathBuf,
    options: &countywatch_parse::auth_replay::ReplayOptions,
    device: &str,
) -> ExitCode {
    use std::io::Write;
    let mut input: Box<dyn std::io::Read> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        match std::fs::File::open(file) {
            Ok(opened) => Box::new(opened),
            Err(error) => {
                eprintln!("cannot open {}: {error}", file.display());
                return ExitCode::FAILURE;
            }
        }
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let summary = match source {
        ReplaySource::Auth => countywatch_parse::auth_replay::replay(&mut input, &mut out, options)
            .map(|summary| summary.to_string()),
        ReplaySource::Syslog => {
            countywatch_agent::source::syslog::replay(input, &mut out, options, device)
                .map(|summary| summary.to_string())
        }
    };
    match summary {
        Ok(summary) => {
            let _ = out.flush();
            eprintln!("{summary}");
            ExitCode::SUCCESS
        }
        // `replay ... | head` closes stdout early; that is not a failure.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cannot replay {}: {error}", file.display());
            ExitCode::FAILURE
        }
    }
}

/// `blocks list`: one line per block, expiry in this host's time zone.
fn list_blocks(config: &Config) -> ExitCode {
    use countywatch_agent::response::{self, Firewall};
    let now = countywatch_daemon::clock::now_ms();
    let firewall = Firewall::choose(config.response.backend);
    let listed = match response::list_blocks(&config.state_dir, firewall, now) {
        Ok(listed) => listed,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let zone = jiff::tz::TimeZone::system();
    println!(
        "{:<39}  {:<26}  {:<7}  {:<8}  REASON",
        "ADDRESS", "EXPIRES", "MODE", "FIREWALL"
    );
    for entry in &listed {
        let block = &entry.block;
        let expires = jiff::Timestamp::from_millisecond(block.expires_at_ms)
            .map(|at| {
                at.to_zoned(zone.clone())
                    .strftime("%Y-%m-%d %H:%M:%S %:z")
                    .to_string()
            })
            .unwrap_or_else(|_| block.expires_at_ms.to_string());
        let mode = match block.mode {
            countywatch_wire::ResponseMode::Enforce => "enforce",
            countywatch_wire::ResponseMode::DryRun => "dry_run",
        };
        let firewall = match entry.in_kernel {
            Some(true) => "in set",
            Some(false) => "MISSING",
            None if block.mode == countywatch_wire::ResponseMode::DryRun => "-",
            None => "unknown",
        };
        println!(
            "{:<39}  {expires:<26}  {mode:<7}  {firewall:<8}  {}",
            block.address.to_string(),
            block.reason
        );
    }
    if listed.is_empty() {
        println!("(no blocks)");
    }
    ExitCode::SUCCESS
}

/// The agent runs on one thread: it sits on small county servers, and its
/// probes block on their own threads anyway (see `collection.rs`).
fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            std::process::exit(1);
        }
    }
}

/// Loads the configuration, printing every problem and turning them into
/// the configuration exit code.
fn load(path: Option<&PathBuf>, overrides: Option<Overrides>) -> Result<Config, ExitCode> {
    load_config(path, overrides).map_err(|problems| problems.report())
}

/// Loads the file (or the defaults), applies the flags, validates.
fn load_config(
    path: Option<&PathBuf>,
    overrides: Option<Overrides>,
) -> Result<Config, countywatch_config::config_file::Problems> {
    let mut config = match path {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(overrides) = overrides {
        if let Some(url) = overrides.collector {
            config.collector.url = Some(unspanned(url));
        }
        if let Some(name) = overrides.name {
            config.name = Some(unspanned(name));
        }
        if let Some(state_dir) = overrides.state_dir {
            config.state_dir = state_dir;
        }
    }
    let source = path.cloned().unwrap_or_else(|| PathBuf::from("<flags>"));
    config.validate(&source)?;
    Ok(config)
}

/// The `run` command that uses what `enroll` was given: the same
/// `--config` (so the agent runs with the file it enrolled with) and the
/// same `--state-dir` when one was given. `None` without a config file, for
/// the caller to name the state dir it used.
fn start_command(
    config: Option<&std::path::Path>,
    state_dir: Option<&std::path::Path>,
) -> Option<String> {
    let config = config?;
    let mut command = format!("countywatch-agent run --config {}", config.display());
    if let Some(state_dir) = state_dir {
        command.push_str(&format!(" --state-dir {}", state_dir.display()));
    }
    Some(command)
}
