//! `user add|token|list|disable|enable|remove|tokens|revoke-token`: the
//! console's and the API's users, their roles and their API tokens.

use crate::config::Config;
use crate::incident::accounts;
use crate::incident::auth::{self, Role};
use crate::incident::store::IncidentStore;
use countywatch_config::duration::{self, PromDuration};
use countywatch_daemon::clock::now_ms;

/// Creates the user `name` with `role` (or resets its role and password),
/// the password read from standard input; audited as `user.added`.
pub fn add(config: &Config, name: &str, role: &str) -> anyhow::Result<()> {
    let Some(role) = Role::parse(role) else {
        anyhow::bail!("unknown role {role:?}: use viewer, operator, security_officer or admin");
    };
    let password = read_password()?;
    let store = IncidentStore::open_with(&config.data_dir, &config.incidents)?;
    auth::add_user(&store, name, role, &password, now_ms())?;
    super::record(
        &config.data_dir,
        "user.added",
        &format!("user/{name}"),
        role.as_str(),
    );
    if name == accounts::FIRST_ADMIN {
        accounts::forget_initial_password(&config.data_dir);
    }
    println!(
        "user {name} has role {}; any earlier sessions and API tokens of {name} are revoked",
        role.as_str()
    );
    Ok(())
}

/// Creates an API token for `name` labelled `label`, valid for `ttl` (a
/// Prometheus duration) or until revoked, and prints it (shown once).
pub fn token(config: &Config, name: &str, label: &str, ttl: Option<&str>) -> anyhow::Result<()> {
    let ttl = ttl.map(duration::parse).transpose()?;
    let store = IncidentStore::open_with(&config.data_dir, &config.incidents)?;
    let token = auth::create_token(&store, name, label, ttl, now_ms())?;
    let lifetime = ttl.map_or_else(
        || "until revoked".to_string(),
        |ttl| format!("for {}", PromDuration(ttl)),
    );
    super::record(
        &config.data_dir,
        "token.created",
        &format!("user/{name}"),
        &format!("{label}, valid {lifetime}"),
    );
    println!("{token}");
    Ok(())
}

/// Prints every user: role, state, sessions and API tokens.
pub fn list(config: &Config) -> anyhow::Result<()> {
    let store = IncidentStore::open_with(&config.data_dir, &config.incidents)?;
    let users = accounts::list_users(&store, now_ms())?;
    println!(
        "{:<24} {:<18} {:<22} {:>8} {:>6}",
        "NAME", "ROLE", "STATE", "SESSIONS", "TOKENS"
    );
    for user in users {
        let state = match (user.disabled, user.must_change_password) {
            (true, _) => "disabled",
            (false, true) => "must change password",
            (false, false) => "active",
        };
        println!(
            "{:<24} {:<18} {:<22} {:>8} {:>6}",
            user.name, user.role, state, user.sessions, user.tokens
        );
    }
    Ok(())
}

/// Disables `name`, revoking their sessions and API tokens.
pub fn disable(config: &Config, name: &str) -> anyhow::Result<()> {
    change(config, name, "user.disabled", |store| {
        accounts::set_disabled(store, name, true)
    })?;
    println!("user {name} disabled; their sessions and API tokens are revoked");
    Ok(())
}

/// Enables the disabled user `name` again.
pub fn enable(config: &Config, name: &str) -> anyhow::Result<()> {
    change(config, name, "user.enabled", |store| {
        accounts::set_disabled(store, name, false)
    })?;
    println!("user {name} enabled");
    Ok(())
}

/// Removes `name` with their sessions and API tokens.
pub fn remove(config: &Config, name: &str) -> anyhow::Result<()> {
    change(config, name, "user.removed", |store| {
        accounts::remove_user(store, name)
    })?;
    println!("user {name} removed with their sessions and API tokens");
    Ok(())
}

/// Prints the API tokens (never the tokens themselves) of `name`, or of all
/// users.
pub fn tokens(config: &Config, name: Option<&str>) -> anyhow::Result<()> {
    let store = IncidentStore::open_with(&config.data_dir, &config.incidents)?;
    println!(
        "{:>6} {:<24} {:<32} {:<14} EXPIRES (UNIX MS)",
        "ID", "USER", "LABEL", "CREATED (MS)"
    );
    for token in accounts::list_tokens(&store, name)? {
        let expires = token
            .expires_ms
            .map_or_else(|| "never".to_string(), |ms| ms.to_string());
        println!(
            "{:>6} {:<24} {:<32} {:<14} {expires}",
            token.id, token.user, token.label, token.created_ms
        );
    }
    Ok(())
}

/// Revokes the API token `id` and audits it against its user.
pub fn revoke_token(config: &Config, id: i64) -> anyhow::Result<()> {
    let store = IncidentStore::open_with(&config.data_dir, &config.incidents)?;
    let Some(user) = accounts::revoke_token(&store, id)? else {
        anyhow::bail!("no API token with id {id}; `user tokens` lists them");
    };
    super::record(
        &config.data_dir,
        "token.revoked",
        &format!("user/{user}"),
        &format!("token {id}"),
    );
    println!("token {id} of {user} revoked");
    Ok(())
}

/// Applies `change` to the user `name` and audits it as `action`; an error
/// when there is no such user.
fn change(
    config: &Config,
    name: &str,
    action: &str,
    change: impl FnOnce(&IncidentStore) -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let store = IncidentStore::open_with(&config.data_dir, &config.incidents)?;
    if !change(&store)? {
        anyhow::bail!("no user named {name:?}; `user list` shows them");
    }
    super::record(&config.data_dir, action, &format!("user/{name}"), "");
    Ok(())
}

/// One line from standard input; on a terminal, prompts and turns echo off.
fn read_password() -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    let terminal = std::io::stdin().is_terminal();
    if terminal {
        eprint!("password: ");
        let _ = std::io::stderr().flush();
        let _ = std::process::Command::new("stty").arg("-echo").status();
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if terminal {
        let _ = std::process::Command::new("stty").arg("echo").status();
        eprintln!();
    }
    read?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        anyhow::bail!("no password given on standard input");
    }
    Ok(password)
}
