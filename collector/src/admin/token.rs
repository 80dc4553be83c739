//! `token create`: single-use enrolment tokens for agents.

use crate::config::Config;
use countywatch_config::duration::{self, PromDuration};

/// Creates an enrolment token valid for `ttl` (a Prometheus duration),
/// bound to the agent `name` when given (`replace` lets it enrol over an
/// enrolled agent of that name), audits it and prints the token with the
/// command to run on the server being enrolled.
pub fn create(config: &Config, ttl: &str, name: Option<&str>, replace: bool) -> anyhow::Result<()> {
    let ttl = duration::parse(ttl)?;
    if let Some(name) = name
        && !countywatch_wire::is_valid_agent_name(name)
    {
        anyhow::bail!("invalid agent name {name:?}: use 1 to 253 letters, digits, '.', '-' or '_'");
    }
    let ca = crate::certificate_authority(config)?;
    let registry = crate::registry::Registry::open(&config.data_dir)?;
    let token = registry.create_token(name, replace, ttl, countywatch_daemon::clock::now_ms())?;
    super::record(
        &config.data_dir,
        "token.created",
        &name.map_or_else(|| "token".to_string(), |name| format!("agent/{name}")),
        &format!(
            "enrolment token valid {}{}{}",
            PromDuration(ttl),
            name.map(|name| format!(", bound to {name}"))
                .unwrap_or_else(|| ", for any name not enrolled".to_string()),
            if replace { ", may replace it" } else { "" }
        ),
    );
    let url = config.enroll_url()?;
    let name_flag = name
        .map(|name| format!(" --name {name}"))
        .unwrap_or_default();
    println!("token: {token}");
    println!("expires in: {}", PromDuration(ttl));
    println!("CA SHA-256: {}", ca.fingerprint());
    println!("enrol with:");
    println!(
        "  countywatch-agent enroll --collector {} --token {token} --ca-sha256 {}{name_flag}",
        url.as_deref().unwrap_or("https://COLLECTOR-ADDRESS:PORT"),
        ca.fingerprint()
    );
    if url.is_none() {
        println!(
            "(replace COLLECTOR-ADDRESS:PORT with the address agents reach the enrolment \
             listener at, or set enroll.public_url or ingest.server_names)"
        );
    }
    Ok(())
}
