//! `audit list|verify|checkpoints`: reading and proving the audit trail.

use std::path::Path;

use crate::audit;
use crate::config::Config;
use crate::incident::store::IncidentStore;

/// Prints the entries from `since` (a duration ago or an RFC 3339 time) on,
/// of `actor` and of `action` (a family when it ends in `.`), oldest first,
/// with times in the display zone.
pub fn list(
    config: &Config,
    since: Option<&str>,
    actor: Option<&str>,
    action: Option<&str>,
) -> anyhow::Result<()> {
    let now = countywatch_daemon::clock::now_ms();
    let since_ms = match since {
        None => None,
        Some(text) => Some(match countywatch_config::duration::parse(text) {
            Ok(ago) => now.saturating_sub(i64::try_from(ago.as_millis()).unwrap_or(i64::MAX)),
            Err(_) => countywatch_notify::alert::parse_rfc3339(text).map_err(|error| {
                anyhow::anyhow!(
                    "--since {text:?}: give a duration like 24h or an RFC 3339 time ({error})"
                )
            })?,
        }),
    };
    let store = IncidentStore::open_with(&config.data_dir, &config.incidents)?;
    let display = config.display();
    // `--action user.` is every action of the `user.` family.
    let filter = audit::AuditFilter {
        since_ms,
        actor: actor.map(|actor| audit::TextMatch::Is(actor.to_string())),
        action: action.map(|action| match action.ends_with('.') {
            true => audit::TextMatch::StartsWith(action.to_string()),
            false => audit::TextMatch::Is(action.to_string()),
        }),
        target: None,
    };
    let mut entries = audit::entries(&store, &filter, u32::MAX, 0)?;
    entries.reverse();
    println!(
        "{:>6} {:<27} {:<20} {:<22} {:<28} {:<8} DETAILS",
        "SEQ",
        format!("TIME ({})", display.zone_name()),
        "ACTOR",
        "ACTION",
        "TARGET",
        "OUTCOME"
    );
    for entry in entries {
        println!(
            "{:>6} {:<27} {:<20} {:<22} {:<28} {:<8} {}",
            entry.seq,
            display.time(entry.at_ms),
            entry.actor,
            entry.action,
            entry.target,
            entry.outcome,
            entry.details
        );
    }
    Ok(())
}

/// Walks the hash chain and the checkpoint chain (and the `anchors` file's
/// lines when given); prints what was proved, or fails at the first break.
pub fn verify(config: &Config, anchors: Option<&Path>) -> anyhow::Result<()> {
    let options = audit::VerifyOptions {
        checkpoint_every: config.incidents.checkpoint_every,
        anchors: anchors.map(audit::read_anchors).transpose()?,
    };
    let verification = audit::verify_with(&config.data_dir, &options)?;
    match verification.first_break {
        None => {
            println!("{}", verification.report());
            Ok(())
        }
        Some(broken) => {
            anyhow::bail!(
                "audit trail broken at {}: {} ({} entries checked)",
                broken.at,
                broken.problem,
                verification.entries
            )
        }
    }
}

/// Prints the signed checkpoints from number `since` on as anchor lines.
pub fn checkpoints(config: &Config, since: i64) -> anyhow::Result<()> {
    let audit = audit::Audit::open(&config.data_dir, config.incidents.checkpoint_every)?;
    for checkpoint in audit.checkpoints_since(since)? {
        println!("{}", checkpoint.anchor_line());
    }
    Ok(())
}
