//! `agents list|revoke` and `agents devices list|move`: enrolled agents and
//! the network devices bound to them.

use crate::config::Config;
use crate::host_binding;
use crate::registry::Registry;
use countywatch_daemon::clock::now_ms;
use countywatch_notify::display::{Language, ago};

/// Prints every enrolled agent: state, last contact, version, certificate
/// expiry, address and certificate fingerprint.
pub fn list(config: &Config) -> anyhow::Result<()> {
    let registry = Registry::open(&config.data_dir)?;
    let display = config.display();
    let now = now_ms();
    let silent_ms = i64::try_from(config.agents.silent_after.get().as_millis()).unwrap_or(i64::MAX);
    println!(
        "{:<32} {:<8} {:<42} {:<12} {:<26} {:<40} CERT SHA-256",
        "NAME",
        "STATE",
        format!("LAST SEEN ({})", display.zone_name()),
        "VERSION",
        "CERT EXPIRES",
        "ADDRESS"
    );
    for agent in registry.agents()? {
        let state = match (agent.revoked_ms, agent.last_seen_ms) {
            (Some(_), _) => "revoked",
            (None, Some(seen)) if now.saturating_sub(seen) <= silent_ms => "up",
            (None, _) => "down",
        };
        let seen = agent.last_seen_ms.map_or_else(
            || "never".to_string(),
            |ms| format!("{}, {}", ago(Language::En, now, ms), display.time(ms)),
        );
        println!(
            "{:<32} {:<8} {:<42} {:<12} {:<26} {:<40} {}",
            agent.name,
            state,
            seen,
            agent.last_version.as_deref().unwrap_or("-"),
            display.time(agent.certificate_expires_ms()),
            agent.last_address.as_deref().unwrap_or("-"),
            agent.cert_sha256
        );
    }
    Ok(())
}

/// Revokes the agent `name` (its certificate is refused from its next
/// request on) and audits it; an error when no unrevoked agent has that name.
pub fn revoke(config: &Config, name: &str) -> anyhow::Result<()> {
    let registry = Registry::open(&config.data_dir)?;
    if registry.revoke(name, now_ms())? {
        super::record(
            &config.data_dir,
            "agent.revoked",
            &format!("agent/{name}"),
            "",
        );
        println!("revoked {name}: its certificate is refused from its next request on");
        Ok(())
    } else {
        anyhow::bail!("no enrolled, unrevoked agent named {name:?}")
    }
}

/// Prints each device and the agent it is bound to.
pub fn devices_list(config: &Config) -> anyhow::Result<()> {
    for (device, agent) in host_binding::list(&config.data_dir)? {
        println!("{device}\t{agent}");
    }
    Ok(())
}

/// Binds `device` to the agent `to` and audits the move.
pub fn device_move(config: &Config, device: &str, to: &str) -> anyhow::Result<()> {
    let before = host_binding::move_device(&config.data_dir, device, to)?;
    super::record(
        &config.data_dir,
        "device.moved",
        &format!("device/{device}"),
        &format!("from {} to {to}", before.as_deref().unwrap_or("nobody")),
    );
    println!("{device} is bound to {to}");
    Ok(())
}
