//! The command-line side of notifications: `silence add|list|expire`
//! (written straight to `notify.db`; the running collector notices within
//! a second) and `notify test`, which sends a test notification through
//! every integration of a receiver, bypassing the outbox, and reports each
//! result so an operator can check SMTP settings before an incident.

use std::path::Path;

use crate::notify::alert::rfc3339;
use crate::notify::config::NotifyConfig;
use crate::notify::db::Db;
use crate::notify::matcher::Matcher;
use crate::notify::notification::{Kind, Notification};
use crate::notify::silence::{SilenceState, SilenceStore};
use countywatch_daemon::clock::now_ms;

/// `silence add`: prints the new silence's id.
pub fn silence_add(
    data_dir: &Path,
    matchers: &[String],
    duration: &str,
    author: &str,
    comment: &str,
) -> anyhow::Result<()> {
    let duration = countywatch_daemon::duration::parse(duration)?;
    let mut parsed = Vec::new();
    for text in matchers {
        parsed.extend(crate::notify::matcher::parse_list(text).map_err(anyhow::Error::msg)?);
    }
    let store = SilenceStore::open(Db::open(data_dir)?)?;
    let now = now_ms();
    let ends = now.saturating_add(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 2));
    let id = store.add(parsed, now, ends, author, comment, now)?;
    println!("{id}");
    Ok(())
}

/// `silence list`: unexpired silences, or all with `all`.
pub fn silence_list(data_dir: &Path, all: bool) -> anyhow::Result<()> {
    let store = SilenceStore::open(Db::open(data_dir)?)?;
    let now = now_ms();
    println!(
        "{:<32} {:<8} {:<24} {:<24} {:<12} {:<40} COMMENT",
        "ID", "STATE", "STARTS", "ENDS", "AUTHOR", "MATCHERS"
    );
    for silence in store.list() {
        let state = silence.state(now);
        if !all && state == SilenceState::Expired {
            continue;
        }
        let matchers: Vec<String> = silence.matchers.iter().map(Matcher::to_string).collect();
        println!(
            "{:<32} {:<8} {:<24} {:<24} {:<12} {:<40} {}",
            silence.id,
            state.as_str(),
            rfc3339(silence.starts_at_ms),
            rfc3339(silence.ends_at_ms),
            silence.created_by,
            matchers.join(","),
            silence.comment
        );
    }
    Ok(())
}

/// `silence expire ID`.
pub fn silence_expire(data_dir: &Path, id: &str) -> anyhow::Result<()> {
    let store = SilenceStore::open(Db::open(data_dir)?)?;
    if store.expire(id, now_ms())? {
        println!("expired {id}");
        Ok(())
    } else {
        anyhow::bail!("no unexpired silence with id {id:?}")
    }
}

/// `notify test --receiver NAME`: one test notification per integration.
pub async fn notify_test(config: &NotifyConfig, receiver: &str) -> anyhow::Result<()> {
    let receivers = crate::notify::receiver::build(config)?;
    let Some(integrations) = receivers.get(receiver) else {
        anyhow::bail!(
            "no receiver named {receiver:?}; configured: {}",
            receivers.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    };
    if integrations.is_empty() {
        anyhow::bail!("receiver {receiver:?} has no integrations");
    }
    let notification = Notification::synthetic(
        Kind::Test,
        receiver,
        &[("alertname", "CountywatchTest"), ("severity", "none")],
        &[(
            "summary",
            "A test notification from countywatch-collector notify test: if you read this, the receiver works",
        )],
        &config.external_url,
        now_ms(),
    );
    let mut failures = 0;
    for (index, integration) in integrations.iter().enumerate() {
        match integration.send(&notification).await {
            Ok(()) => println!("{receiver}/{index} ({}): sent", integration.kind()),
            Err(error) => {
                failures += 1;
                let retry = if error.retryable() {
                    "temporary"
                } else {
                    "permanent"
                };
                println!(
                    "{receiver}/{index} ({}): failed ({retry}): {error}",
                    integration.kind()
                );
            }
        }
    }
    if failures > 0 {
        anyhow::bail!("{failures} of {} integrations failed", integrations.len());
    }
    Ok(())
}
