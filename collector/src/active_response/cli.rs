//! `countywatch-collector decisions add|list|delete`: decisions by hand,
//! written to the incident store while the collector runs (SQLite, WAL);
//! the running collector notices them within
//! [`POLL_INTERVAL`](crate::active_response::POLL_INTERVAL) and tells its
//! agents. Every add, refusal and removal is audited as `cli:$USER`.

use std::net::IpAddr;

use anyhow::Context;
use countywatch_wire::ResponseMode;

use crate::active_response::{HandDecisionError, decide_by_hand};
use crate::audit::cli_actor;
use crate::config::Config;
use crate::incident::config::IncidentsConfig;
use crate::incident::decisions::{DecisionFilter, DecisionScope, mode_name};
use crate::incident::store::IncidentStore;
use crate::registry::Registry;
use countywatch_notify::display::{Language, ago};

/// `decisions add`'s arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct AddArgs {
    /// The address to block (one IPv4 or IPv6 address).
    pub address: IpAddr,
    /// How long, e.g. 1h; `response.default_duration` without it, and at
    /// most `response.max_duration`.
    #[arg(long)]
    pub duration: Option<String>,
    /// `county` (every agent, the default) or `host:NAME` (one agent).
    #[arg(long, default_value = "county")]
    pub scope: String,
    /// Why; shown in the console, `decisions list` and the agents' logs.
    #[arg(long)]
    pub reason: Option<String>,
    /// `enforce` or `dry_run`; the configured `response.mode` without it.
    #[arg(long, value_parser = ["enforce", "dry_run"])]
    pub mode: Option<String>,
}

/// `decisions delete`'s arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct DeleteArgs {
    /// The blocked address.
    pub address: IpAddr,
    /// Only the county-wide decisions (`county`), or only on one host
    /// (`host:NAME`: that host is taken out of the host-scoped decisions
    /// that list it, the others keep the block); without it, every active
    /// decision against the address.
    #[arg(long)]
    pub scope: Option<String>,
}

/// Opens the store for one command: every entry the CLI writes is signed
/// at once, as `audit::record` does, since the daemon's checkpoint period
/// is not this process's to keep.
fn open_store(config: &Config) -> anyhow::Result<IncidentStore> {
    IncidentStore::open_with(
        &config.data_dir,
        &IncidentsConfig {
            checkpoint_every: 1,
            ..config.incidents.clone()
        },
    )
}

fn scope(text: &str) -> anyhow::Result<DecisionScope> {
    DecisionScope::parse(text)
        .with_context(|| format!("--scope {text:?} is neither county nor host:NAME"))
}

/// Refuses a host scope naming an agent that is not enrolled (or was
/// revoked): such a decision would reach no agent, and a typo would look
/// like a block.
fn check_enrolled(config: &Config, hosts: &[String]) -> anyhow::Result<()> {
    let agents = Registry::open(&config.data_dir)?.agents()?;
    for host in hosts {
        match agents.iter().find(|agent| &agent.name == host) {
            None => anyhow::bail!(
                "--scope host:{host}: no agent named {host:?} is enrolled (`agents list` shows them)"
            ),
            Some(agent) if agent.revoked_ms.is_some() => {
                anyhow::bail!("--scope host:{host}: the agent {host:?} was revoked")
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// `decisions add`.
pub fn add(config: &Config, args: &AddArgs) -> anyhow::Result<()> {
    let duration = match &args.duration {
        Some(text) => countywatch_config::duration::parse(text)?,
        None => config.response.default_duration.value.get(),
    };
    let duration_ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
    let mode = args.mode.as_deref().map(|mode| match mode {
        "enforce" => ResponseMode::Enforce,
        _ => ResponseMode::DryRun,
    });
    let scope = scope(&args.scope)?;
    if let DecisionScope::Hosts(hosts) = &scope {
        check_enrolled(config, hosts)?;
    }
    let store = open_store(config)?;
    let now = countywatch_daemon::clock::now_ms();
    let decided = decide_by_hand(
        &store,
        &config.response,
        args.address,
        scope,
        duration_ms,
        mode,
        args.reason.as_deref().unwrap_or(""),
        &cli_actor(),
        now,
    );
    match decided {
        Ok((id, expires_ms)) => {
            let display = config.display();
            println!(
                "decision {id}: block {} on {} until {} ({})",
                args.address.to_canonical(),
                args.scope,
                display.time(expires_ms),
                mode_name(mode.unwrap_or(config.response.mode))
            );
            if duration_ms > config.response.max_duration_ms() {
                println!(
                    "the duration was cut to response.max_duration ({})",
                    config.response.max_duration.value
                );
            }
            Ok(())
        }
        Err(HandDecisionError::Refused(reason)) => anyhow::bail!("refused: {reason}"),
        Err(HandDecisionError::Storage(error)) => Err(error),
    }
}

/// `decisions list`: active decisions (every one with `all`), newest first.
pub fn list(config: &Config, all: bool) -> anyhow::Result<()> {
    let store = open_store(config)?;
    let display = config.display();
    let now = countywatch_daemon::clock::now_ms();
    let filter = match all {
        true => DecisionFilter::All,
        false => DecisionFilter::Active,
    };
    println!(
        "{:<6} {:<40} {:<24} {:<8} {:<44} {:<28} {:<9} ANSWERS",
        "ID",
        "ADDRESS",
        "SCOPE",
        "MODE",
        format!("EXPIRES ({})", display.zone_name()),
        "MADE BY",
        "INCIDENT",
    );
    for decision in store.decisions(filter, now, 10_000)? {
        let scope = match decision.scope.as_str() {
            "host" => format!("host:{}", decision.hosts.join(",")),
            other => other.to_string(),
        };
        let expires = match decision.removed_ms {
            Some(removed) => format!(
                "removed {} by {}",
                display.time(removed),
                decision.removed_by.as_deref().unwrap_or("-")
            ),
            None if decision.expires_ms <= now => {
                format!("expired {}", display.time(decision.expires_ms))
            }
            None => format!(
                "{} (in {})",
                display.time(decision.expires_ms),
                ago(Language::En, decision.expires_ms, now).trim_end_matches(" ago")
            ),
        };
        let answers: Vec<String> = decision
            .acks
            .iter()
            .map(|answer| match answer.applied {
                true => format!("{}:applied", answer.agent),
                false => format!("{}:refused ({})", answer.agent, answer.reason),
            })
            .collect();
        println!(
            "{:<6} {:<40} {:<24} {:<8} {:<44} {:<28} {:<9} {}",
            decision.id,
            decision.address,
            scope,
            mode_name(decision.mode),
            expires,
            decision.made_by,
            decision
                .incident_id
                .map_or_else(|| "-".to_string(), |id| id.to_string()),
            if answers.is_empty() {
                "-".to_string()
            } else {
                answers.join(" ")
            }
        );
    }
    Ok(())
}

/// `decisions delete`: lifts the active decisions against the address;
/// with `--scope host:NAME`, only on that host.
pub fn delete(config: &Config, args: &DeleteArgs) -> anyhow::Result<()> {
    let scope = args.scope.as_deref().map(scope).transpose()?;
    let store = open_store(config)?;
    let now = countywatch_daemon::clock::now_ms();
    let removed = store.remove_decisions(args.address, scope.as_ref(), &cli_actor(), now)?;
    if removed.is_empty() {
        anyhow::bail!(
            "no active decision against {}{}",
            args.address.to_canonical(),
            args.scope
                .as_deref()
                .map(|scope| format!(" with scope {scope}"))
                .unwrap_or_default()
        );
    }
    for lifted in removed {
        let address = args.address.to_canonical();
        match lifted.remaining.is_empty() {
            true => println!("decision {} removed: {address} unblocked", lifted.id),
            false => println!(
                "decision {}: {address} unblocked on {}, still blocked on {}",
                lifted.id,
                lifted.hosts.join(","),
                lifted.remaining.join(",")
            ),
        }
    }
    Ok(())
}
