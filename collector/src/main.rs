//! `countywatch-collector`: the command line around the collector library.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 usage error (from clap),
//! 3 invalid configuration.

// The daemons never panic on purpose outside tests (clippy.toml allows it in
// tests); unwrap and expect are denied workspace-wide.
#![deny(clippy::panic, clippy::todo, clippy::unimplemented)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use countywatch_collector::config::{Config, unspanned};
use countywatch_collector::{active_response, admin};
use countywatch_config::config_file;
use countywatch_daemon::logging::{self, LogFormat};

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
    /// Print the SHA-256 fingerprint of the CA certificate that agents pin
    /// when they enrol, creating the CA if the data directory has none yet.
    Fingerprint {
        #[command(flatten)]
        location: StateLocation,
    },
    /// Enrolment tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Enrolled agents.
    Agents {
        #[command(subcommand)]
        command: AgentsCommand,
    },
    /// Silences: mute matching alerts for a while.
    Silence {
        #[command(subcommand)]
        command: SilenceCommand,
    },
    /// Notifications.
    Notify {
        #[command(subcommand)]
        command: NotifyCommand,
    },
    /// Rule files: `check` and `test` (drop-ins for promtool's, and the same
    /// for detection rules), and `replay` of recorded events through
    /// detection rules.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// The tamper-evident audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Copy the incident store (incidents, evidence, audit trail, users)
    /// to FILE with SQLite's online backup, while the collector runs.
    Backup {
        #[command(flatten)]
        location: StateLocation,
        /// Also copy the raw security events (collector.db) to this file.
        #[arg(long)]
        events: Option<PathBuf>,
        /// The backup file to write (must not exist).
        file: PathBuf,
    },
    /// Users of the web page and the API.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// The county report: service availability and security for a month
    /// or a range of days (docs/report.md).
    Report {
        #[command(flatten)]
        location: StateLocation,
        #[command(flatten)]
        args: countywatch_collector::report::cli::ReportArgs,
    },
    /// Active-response decisions: addresses blocked on agents (dry run
    /// until `response.mode: enforce`).
    Decisions {
        #[command(subcommand)]
        command: DecisionsCommand,
    },
}

#[derive(Subcommand)]
enum DecisionsCommand {
    /// Block an address (county-wide unless --scope host:NAME); agents
    /// hear of it within 2 seconds while the collector runs.
    Add {
        #[command(flatten)]
        location: StateLocation,
        #[command(flatten)]
        args: active_response::cli::AddArgs,
    },
    /// List active decisions (with --all, lifted and expired ones too).
    List {
        #[command(flatten)]
        location: StateLocation,
        /// Include lifted and expired decisions.
        #[arg(long)]
        all: bool,
    },
    /// Unblock an address: every active decision against it, or those of
    /// --scope.
    Delete {
        #[command(flatten)]
        location: StateLocation,
        #[command(flatten)]
        args: active_response::cli::DeleteArgs,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Print audit entries, oldest first, with times in the display zone.
    List {
        #[command(flatten)]
        location: StateLocation,
        /// Only entries from this long ago on (`24h`, `7d`) or since this
        /// RFC 3339 time (`2026-12-06T09:00:00+08:00`).
        #[arg(long)]
        since: Option<String>,
        /// Only entries by this actor (`admin`, `cli:root`, `system`).
        #[arg(long)]
        actor: Option<String>,
        /// Only entries with this action (`login`, `user.added`), or with
        /// this prefix when it ends in `.` (`user.`).
        #[arg(long)]
        action: Option<String>,
    },
    /// Walk the hash chain and the signed checkpoint chain; print what was
    /// proved and what cannot be without anchors; exit 1 at the first
    /// broken entry.
    Verify {
        #[command(flatten)]
        location: StateLocation,
        /// A file of `countywatch-audit-checkpoint` lines received by syslog
        /// or the SIEM; the database must hold every one of them unchanged.
        #[arg(long)]
        anchors: Option<PathBuf>,
    },
    /// Print the signed checkpoints as the anchor lines sent off the host.
    Checkpoints {
        #[command(flatten)]
        location: StateLocation,
        /// Start at this checkpoint number.
        #[arg(long, default_value_t = 1)]
        since: i64,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user (or reset its role and password). The password is read
    /// from standard input (one line), so it never appears in `ps`.
    Add {
        #[command(flatten)]
        location: StateLocation,
        /// The user name.
        name: String,
        /// viewer, operator, security_officer or admin.
        #[arg(long)]
        role: String,
    },
    /// Create an API token for a user and print it (shown once).
    Token {
        #[command(flatten)]
        location: StateLocation,
        /// The user the token acts as.
        name: String,
        /// What the token is for, e.g. "monthly report script".
        #[arg(long, default_value = "api")]
        label: String,
        /// How long the token works, e.g. 90d; until revoked without it.
        #[arg(long)]
        ttl: Option<String>,
    },
    /// List users: role, state, sessions and tokens.
    List {
        #[command(flatten)]
        location: StateLocation,
    },
    /// Disable a user, ending their sessions and API tokens.
    Disable {
        #[command(flatten)]
        location: StateLocation,
        /// The user name.
        name: String,
    },
    /// Enable a disabled user again (they log in with their password).
    Enable {
        #[command(flatten)]
        location: StateLocation,
        /// The user name.
        name: String,
    },
    /// Remove a user with their sessions and API tokens.
    Remove {
        #[command(flatten)]
        location: StateLocation,
        /// The user name.
        name: String,
    },
    /// List API tokens (never the tokens themselves), of one user or all.
    Tokens {
        #[command(flatten)]
        location: StateLocation,
        /// Only this user's tokens.
        name: Option<String>,
    },
    /// Revoke one API token by the id `user tokens` shows.
    RevokeToken {
        #[command(flatten)]
        location: StateLocation,
        /// The token's id.
        id: i64,
    },
}

#[derive(Subcommand)]
enum SilenceCommand {
    /// Create a silence and print its id.
    Add {
        #[command(flatten)]
        location: StateLocation,
        /// A matcher such as 'instance="web1"' (=, !=, =~, !~); repeat for more.
        #[arg(long = "matcher", required = true)]
        matchers: Vec<String>,
        /// How long it lasts from now, e.g. 2h.
        #[arg(long)]
        duration: String,
        /// Why; shown in `silence list` and in the silence notices.
        #[arg(long)]
        comment: String,
        /// Who; defaults to $USER.
        #[arg(long)]
        author: Option<String>,
    },
    /// List silences that have not expired.
    List {
        #[command(flatten)]
        location: StateLocation,
        /// Include expired silences.
        #[arg(long)]
        all: bool,
    },
    /// Expire a silence now.
    Expire {
        #[command(flatten)]
        location: StateLocation,
        /// The silence's id.
        id: String,
    },
}

#[derive(Subcommand)]
enum NotifyCommand {
    /// Send a test notification through every integration of a receiver.
    Test {
        #[command(flatten)]
        location: StateLocation,
        /// The receiver's name in notify.receivers.
        #[arg(long)]
        receiver: String,
    },
    /// The routing tree, printed as `amtool config routes` prints it.
    Routes {
        #[command(subcommand)]
        command: RoutesCommand,
    },
}

/// `notify routes` subcommands (drop-ins for amtool's).
#[derive(Subcommand)]
enum RoutesCommand {
    /// Print the receivers the labels are routed to, comma-separated in
    /// tree order (exit 1 when --verify-receivers differs).
    Test {
        #[command(flatten)]
        source: RoutesSource,
        /// Print the matching part of the tree first.
        #[arg(long)]
        tree: bool,
        /// The expected receivers, comma-separated.
        #[arg(long)]
        verify_receivers: Option<String>,
        /// Labels as `name=value` or `name="value"`.
        labels: Vec<String>,
    },
    /// Print the whole routing tree.
    Show {
        #[command(flatten)]
        source: RoutesSource,
    },
}

/// Where `notify routes` reads the routes from.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct RoutesSource {
    /// The collector's configuration file (either notify form).
    #[arg(long)]
    config: Option<PathBuf>,
    /// An Alertmanager configuration file (alertmanager.yml).
    #[arg(long)]
    alertmanager_config: Option<PathBuf>,
}

/// Loads the route tree for `notify routes`, or the exit code of an invalid
/// configuration.
fn routes_tree(source: &RoutesSource) -> Result<countywatch_notify::route_tree::Route, ExitCode> {
    let config = match (&source.config, &source.alertmanager_config) {
        (Some(path), _) => Config::load(path).map(|config| config.notify),
        (None, Some(path)) => countywatch_notify::cli::load_alertmanager_routes(path),
        (None, None) => return Err(ExitCode::from(2)),
    }
    .map_err(|problems| problems.report())?;
    Ok(countywatch_notify::route_tree::Route::build(&config.route))
}

/// `rules` subcommands; exit 0 when everything passed, 1 otherwise.
#[derive(Subcommand)]
enum RulesCommand {
    /// Print every rule the configuration runs (built-in packs and rule
    /// files, less replaced and disabled ones): kind, name and origin.
    List {
        /// Configuration file (YAML), loaded as `run` loads it; without it
        /// the embedded defaults apply.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate rule files (alerting or detection, told apart by content),
    /// printing every problem with file:line:column (exit 1), and lint
    /// alerting rules as promtool does (exit 0, or 3 with --lint-fatal).
    Check {
        /// Rule files (YAML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Lint checks: duplicate-rules (same name and labels in a file),
        /// all, or none.
        #[arg(long, default_value = "duplicate-rules", value_parser = ["duplicate-rules", "all", "none"])]
        lint: String,
        /// Exit 3 when only lint problems were found.
        #[arg(long)]
        lint_fatal: bool,
    },
    /// Run rule unit-test files: promtool's format, or detection tests.
    Test {
        /// Unit-test files (YAML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run recorded events (`countywatch-agent replay` output, one JSON
    /// event per line) through detection rules and print what they raise.
    Replay {
        /// The events file; `-` for standard input.
        #[arg(long)]
        events: PathBuf,
        /// Detection rule files or directories of them.
        #[arg(long, default_value = "/etc/countywatch/detection")]
        rules: Vec<PathBuf>,
        /// Print each detection as one JSON object per line, with evidence.
        #[arg(long)]
        json: bool,
        /// Working hours for `working_hours`/`time_of_day` rules: a YAML
        /// file holding a `calendar:` mapping's fields (`timezone`,
        /// `workdays`, `start`, `end`, `holidays`, `extra_workdays`);
        /// Asia/Shanghai 09:00-18:00 Monday to Friday when absent.
        #[arg(long)]
        calendar: Option<PathBuf>,
        /// Configuration file (YAML) whose `display.timezone` the
        /// detections' times are printed in; without it the host's zone.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Where the collector's state is: a config file's data_dir, or a directory.
#[derive(clap::Args)]
struct StateLocation {
    /// Configuration file (YAML); its data_dir is used.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (overrides the config's data_dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a single-use enrolment token and print the command to run on
    /// the server being enrolled.
    Create {
        #[command(flatten)]
        location: StateLocation,
        /// How long the token stays valid.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Bind the token to this agent name.
        #[arg(long)]
        name: Option<String>,
        /// Let the token enrol over the enrolled agent of that name (a
        /// reinstalled server): its certificate stops working. Without it,
        /// a name an enrolled agent holds is refused.
        #[arg(long, requires = "name")]
        replace: bool,
    },
}

#[derive(Subcommand)]
enum AgentsCommand {
    /// List enrolled agents.
    List {
        #[command(flatten)]
        location: StateLocation,
    },
    /// Revoke an agent: its certificate is refused from the next request on.
    Revoke {
        #[command(flatten)]
        location: StateLocation,
        /// The agent's name.
        name: String,
    },
    /// Network devices and the agent each is bound to (the first to report
    /// it; only that agent's events and samples may name it).
    Devices {
        #[command(subcommand)]
        command: DevicesCommand,
    },
}

#[derive(Subcommand)]
enum DevicesCommand {
    /// List devices and their agents.
    List {
        #[command(flatten)]
        location: StateLocation,
    },
    /// Bind a device to another agent (audited).
    Move {
        #[command(flatten)]
        location: StateLocation,
        /// The device's name.
        device: String,
        /// The agent to bind it to.
        #[arg(long)]
        to: String,
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
    /// Enrolment listen address for agents (enroll.listen).
    #[arg(long)]
    enroll_listen: Option<String>,
    /// Data directory (data_dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    // Before anything is created: data files are owner-only.
    countywatch_daemon::private_files::restrict_umask();
    let cli = Cli::parse();
    logging::init(cli.log_format);
    match cli.command {
        Command::Rules { command } => rules_command(command),
        Command::CheckConfig { file } => config_file::check_command(&file, Config::load(&file)),
        Command::Fingerprint { location } => with_state(location, |config| {
            let ca = countywatch_collector::certificate_authority(config)?;
            println!("{}", ca.fingerprint());
            Ok(())
        }),
        Command::Token {
            command:
                TokenCommand::Create {
                    location,
                    ttl,
                    name,
                    replace,
                },
        } => with_state(location, |config| {
            admin::token::create(config, &ttl, name.as_deref(), replace)
        }),
        Command::Agents {
            command: AgentsCommand::List { location },
        } => with_state(location, admin::agents::list),
        Command::Agents {
            command: AgentsCommand::Revoke { location, name },
        } => with_state(location, |config| admin::agents::revoke(config, &name)),
        Command::Agents {
            command: AgentsCommand::Devices { command },
        } => devices(command),
        Command::Silence { command } => silence(command),
        Command::Audit {
            command: AuditCommand::Verify { location, anchors },
        } => with_state(location, |config| {
            admin::audit_trail::verify(config, anchors.as_deref())
        }),
        Command::Audit {
            command: AuditCommand::Checkpoints { location, since },
        } => with_state(location, |config| {
            admin::audit_trail::checkpoints(config, since)
        }),
        Command::Audit {
            command:
                AuditCommand::List {
                    location,
                    since,
                    actor,
                    action,
                },
        } => with_state(location, |config| {
            admin::audit_trail::list(
                config,
                since.as_deref(),
                actor.as_deref(),
                action.as_deref(),
            )
        }),
        Command::Backup {
            location,
            events,
            file,
        } => with_state(location, |config| {
            admin::backup::run(config, &file, events.as_deref())
        }),
        Command::User { command } => user(command),
        Command::Decisions { command } => match command {
            DecisionsCommand::Add { location, args } => {
                with_state(location, |config| active_response::cli::add(config, &args))
            }
            DecisionsCommand::List { location, all } => {
                with_state(location, |config| active_response::cli::list(config, all))
            }
            DecisionsCommand::Delete { location, args } => with_state(location, |config| {
                active_response::cli::delete(config, &args)
            }),
        },
        Command::Report { location, args } => with_state(location, |config| {
            countywatch_collector::report::cli::run(config, &args)
        }),
        Command::Notify {
            command: NotifyCommand::Routes { command },
        } => notify_routes(command),
        Command::Notify {
            command: NotifyCommand::Test { location, receiver },
        } => with_state(location, |config| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(countywatch_notify::cli::notify_test(
                &config.notify,
                &receiver,
            ))
        }),
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

/// `notify routes test|show`: amtool's output and exit codes.
fn notify_routes(command: RoutesCommand) -> ExitCode {
    match command {
        RoutesCommand::Test {
            source,
            tree,
            verify_receivers,
            labels,
        } => {
            let route = match routes_tree(&source) {
                Ok(route) => route,
                Err(code) => return code,
            };
            let labels = match countywatch_notify::cli::parse_label_arguments(&labels) {
                Ok(labels) => labels,
                Err(problem) => {
                    eprintln!("{problem}");
                    return ExitCode::FAILURE;
                }
            };
            let (text, verified) = countywatch_notify::cli::routes_test(
                &route,
                &labels,
                tree,
                verify_receivers.as_deref(),
            );
            print!("{text}");
            if verified {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        RoutesCommand::Show { source } => match routes_tree(&source) {
            Ok(route) => {
                print!("{}", countywatch_notify::cli::routes_show(&route));
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
    }
}

fn silence(command: SilenceCommand) -> ExitCode {
    match command {
        SilenceCommand::Add {
            location,
            matchers,
            duration,
            comment,
            author,
        } => with_state(location, |config| {
            admin::silence::add(config, &matchers, &duration, author, &comment)
        }),
        SilenceCommand::List { location, all } => with_state(location, |config| {
            countywatch_notify::cli::silence_list(&config.data_dir, all)
        }),
        SilenceCommand::Expire { location, id } => {
            with_state(location, |config| admin::silence::expire(config, &id))
        }
    }
}

/// Runs an administrative command against the state `location` names.
fn with_state(
    location: StateLocation,
    command: impl FnOnce(&Config) -> anyhow::Result<()>,
) -> ExitCode {
    let overrides = Overrides {
        http_listen: None,
        ingest_listen: None,
        enroll_listen: None,
        data_dir: location.data_dir,
    };
    let config = match load(location.config.as_ref(), overrides) {
        Ok(config) => config,
        Err(code) => return code,
    };
    match command(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

fn devices(command: DevicesCommand) -> ExitCode {
    match command {
        DevicesCommand::List { location } => with_state(location, admin::agents::devices_list),
        DevicesCommand::Move {
            location,
            device,
            to,
        } => with_state(location, |config| {
            admin::agents::device_move(config, &device, &to)
        }),
    }
}

fn user(command: UserCommand) -> ExitCode {
    match command {
        UserCommand::Add {
            location,
            name,
            role,
        } => with_state(location, |config| admin::user::add(config, &name, &role)),
        UserCommand::Token {
            location,
            name,
            label,
            ttl,
        } => with_state(location, |config| {
            admin::user::token(config, &name, &label, ttl.as_deref())
        }),
        UserCommand::List { location } => with_state(location, admin::user::list),
        UserCommand::Disable { location, name } => {
            with_state(location, |config| admin::user::disable(config, &name))
        }
        UserCommand::Enable { location, name } => {
            with_state(location, |config| admin::user::enable(config, &name))
        }
        UserCommand::Remove { location, name } => {
            with_state(location, |config| admin::user::remove(config, &name))
        }
        UserCommand::Tokens { location, name } => with_state(location, |config| {
            admin::user::tokens(config, name.as_deref())
        }),
        UserCommand::RevokeToken { location, id } => {
            with_state(location, |config| admin::user::revoke_token(config, id))
        }
    }
}

fn rules_command(command: RulesCommand) -> ExitCode {
    use std::io::Write;
    // Write errors (a closed pipe, as with `| head`) are ignored rather
    // than panicking as `print!` would; the exit code still tells.
    let mut stdout = std::io::stdout().lock();
    let passed = match command {
        RulesCommand::List { config } => {
            let location = StateLocation {
                config,
                data_dir: None,
            };
            return with_state(location, |config| {
                countywatch_collector::rule_listing::print(config, &mut stdout)
            });
        }
        RulesCommand::Check {
            files,
            lint,
            lint_fatal,
        } => {
            let lint = countywatch_rules::check::LintOptions {
                duplicate_rules: lint != "none",
                fatal: lint_fatal,
            };
            // promtool's exit codes: 1 when a file is invalid, else 3 when
            // a fatal lint found something, else 0.
            let mut exit_code = 0;
            for file in &files {
                let outcome = if countywatch_collector::detection::is_detection_rule_file(file) {
                    countywatch_collector::detection::check_file(file)
                } else {
                    countywatch_rules::check::check_files_with(std::slice::from_ref(file), lint)
                };
                let _ = write!(stdout, "{}", outcome.report);
                if exit_code != 1 && outcome.exit_code != 0 {
                    exit_code = outcome.exit_code;
                }
            }
            return ExitCode::from(exit_code);
        }
        RulesCommand::Test { files } => {
            let mut passed = true;
            for file in &files {
                let (report, file_passed) =
                    if countywatch_collector::detection::is_detection_test_file(file) {
                        let outcome = countywatch_detect::unittest::run_file(file);
                        (outcome.report, outcome.passed)
                    } else {
                        let outcome = countywatch_rules::unittest::run_file(file);
                        (outcome.report, outcome.passed)
                    };
                let _ = writeln!(stdout, "{report}");
                passed &= file_passed;
            }
            passed
        }
        RulesCommand::Replay {
            events,
            rules,
            json,
            calendar,
            config,
        } => {
            // Only the display settings are read: the rules and calendar
            // come from their own flags, as promtool-style tools expect.
            let display = match config {
                Some(path) => match load(
                    Some(&path),
                    Overrides {
                        http_listen: None,
                        ingest_listen: None,
                        enroll_listen: None,
                        data_dir: None,
                    },
                ) {
                    Ok(config) => Some(config.display()),
                    Err(code) => return code,
                },
                None => None,
            };
            match countywatch_collector::detection::replay_command(
                &events,
                &rules,
                calendar.as_deref(),
                display,
                json,
                &mut stdout,
                &mut std::io::stderr().lock(),
            ) {
                Ok(passed) => passed,
                Err(error) => {
                    eprintln!("{error:#}");
                    false
                }
            }
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
        Some(path) => Config::load(path).map_err(|problems| problems.report())?,
        None => Config::default(),
    };
    if let Some(listen) = overrides.http_listen {
        config.http.listen = unspanned(listen);
    }
    if let Some(listen) = overrides.ingest_listen {
        config.ingest.listen = unspanned(listen);
    }
    if let Some(listen) = overrides.enroll_listen {
        config.enroll.listen = unspanned(listen);
    }
    if let Some(data_dir) = overrides.data_dir {
        config.data_dir = data_dir;
    }
    let source = path.cloned().unwrap_or_else(|| PathBuf::from("<flags>"));
    config
        .validate(&source)
        .map_err(|problems| problems.report())?;
    // `notify test` writes times in the zone people read, as `run` does.
    config.notify.display = config.display();
    Ok(config)
}
