//! `countywatch-collector`: the command line around the collector library.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 usage error (from clap),
//! 3 invalid configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use countywatch_collector::config::{Config, unspanned};
use countywatch_daemon::logging::{self, LogFormat};

/// Exit code for an invalid configuration.
const EXIT_CONFIG: u8 = 3;

/// countywatch collector: receives agents' reports, exposes them to
/// Prometheus, evaluates rules and sends alerts.
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
    /// Run the collector until SIGTERM or SIGINT.
    Run {
        /// Configuration file (YAML); without it the embedded defaults apply.
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Check a configuration file: exit 0 when valid, else print every problem.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Print the SHA-256 fingerprint of the ingest certificate that agents
    /// pin, generating the certificate if the data directory has none yet.
    Fingerprint {
        /// Configuration file (YAML); without it the embedded defaults apply.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Prometheus rule files: `check` and `test`, drop-ins for promtool's.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
}

/// `rules` subcommands; exit 0 when everything passed, 1 otherwise.
#[derive(Subcommand)]
enum RulesCommand {
    /// Validate rule files, printing every problem with file:line:column.
    Check {
        /// Rule files (YAML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run promtool-format rule unit-test files.
    Test {
        /// Unit-test files (YAML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Flags that override the configuration file.
#[derive(clap::Args)]
struct Overrides {
    /// HTTP listen address for /metrics (http.listen).
    #[arg(long)]
    http_listen: Option<String>,
    /// Ingest listen address for agents (ingest.listen).
    #[arg(long)]
    ingest_listen: Option<String>,
    /// Data directory (data_dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    match cli.command {
        Command::Rules { command } => rules_command(command),
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(_) => {
                println!("{}: valid", file.display());
                ExitCode::SUCCESS
            }
            Err(problems) => {
                eprintln!("{problems}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Fingerprint { config, data_dir } => {
            let overrides = Overrides {
                http_listen: None,
                ingest_listen: None,
                data_dir,
            };
            let config = match load(config.as_ref(), overrides) {
                Ok(config) => config,
                Err(code) => return code,
            };
            let fingerprint = countywatch_collector::tls::ensure_ingest_identity(
                &config.data_dir,
                config.ingest.tls.as_ref(),
                &config.ingest.server_names,
            )
            .and_then(|files| countywatch_collector::tls::fingerprint_of(&files));
            match fingerprint {
                Ok(fingerprint) => {
                    println!("{fingerprint}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("{error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run { config, overrides } => {
            let config = match load(config.as_ref(), overrides) {
                Ok(config) => config,
                Err(code) => return code,
            };
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("cannot start the async runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            let shutdown = countywatch_daemon::shutdown::signal();
            match runtime.block_on(countywatch_collector::run(config, shutdown)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!("{error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn rules_command(command: RulesCommand) -> ExitCode {
    use std::io::Write;
    // Write errors (a closed pipe, as with `| head`) are ignored rather
    // than panicking as `print!` would; the exit code still tells.
    let mut stdout = std::io::stdout().lock();
    let passed = match command {
        RulesCommand::Check { files } => {
            let outcome = countywatch_rules::check::check_files(&files);
            let _ = write!(stdout, "{}", outcome.report);
            outcome.passed
        }
        RulesCommand::Test { files } => {
            let mut passed = true;
            for file in &files {
                let outcome = countywatch_rules::unittest::run_file(file);
                let _ = writeln!(stdout, "{}", outcome.report);
                passed &= outcome.passed;
            }
            passed
        }
    };
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn load(path: Option<&PathBuf>, overrides: Overrides) -> Result<Config, ExitCode> {
    let mut config = match path {
        Some(path) => Config::load(path).map_err(|problems| {
            eprintln!("{problems}");
            ExitCode::from(EXIT_CONFIG)
        })?,
        None => Config::default(),
    };
    if let Some(listen) = overrides.http_listen {
        config.http.listen = unspanned(listen);
    }
    if let Some(listen) = overrides.ingest_listen {
        config.ingest.listen = unspanned(listen);
    }
    if let Some(data_dir) = overrides.data_dir {
        config.data_dir = data_dir;
    }
    let source = path.cloned().unwrap_or_else(|| PathBuf::from("<flags>"));
    config.validate(&source).map_err(|problems| {
        eprintln!("{problems}");
        ExitCode::from(EXIT_CONFIG)
    })?;
    Ok(config)
}
