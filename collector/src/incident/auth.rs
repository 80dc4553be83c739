//! Users, roles, web sessions and API tokens, all in `incidents.db`.
//!
//! Passwords are stored as argon2id PHC strings. Session ids and API tokens
//! are 32 random bytes shown once; only their SHA-256 is stored, so a copy
//! of the database does not let anyone log in. Each session carries its own
//! CSRF token, which every form posts back.
//!
//! Roles are ordered, each including the ones below it: `viewer` reads,
//! `operator` also manages silences and alerts, `security_officer` also
//! works incidents, evidence and exports, `admin` also manages users,
//! agents and tokens.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::digest::sha256_hex;
use crate::incident::store::IncidentStore;

/// What a user may do; each role includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads incidents, agents, alerts and silences.
    Viewer,
    /// Also creates and expires silences and posts alerts.
    Operator,
    /// Also acknowledges, comments, resolves incidents, reads the audit
    /// trail and exports.
    SecurityOfficer,
    /// Also manages users, agents and tokens.
    Admin,
}

impl Role {
    /// Every role, least privileged first.
    pub const ALL: [Role; 4] = [
        Role::Viewer,
        Role::Operator,
        Role::SecurityOfficer,
        Role::Admin,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::SecurityOfficer => "security_officer",
            Role::Admin => "admin",
        }
    }

    /// The role with this name.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }
}

/// Someone authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The user name.
    pub user: String,
    /// Their role.
    pub role: Role,
    /// The session's CSRF token (`None` for bearer tokens, which browsers
    /// never send by themselves).
    pub csrf: Option<String>,
}

/// Longest password accepted (argon2 takes time proportional to it).
const MAX_PASSWORD_BYTES: usize = 1024;

/// Creates or replaces a user.
pub fn add_user(
    store: &IncidentStore,
    name: &str,
    role: Role,
    password: &str,
    now_ms: i64,
) -> anyhow::Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        anyhow::bail!("user names are 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'");
    }
    if password.chars().count() < 12 || password.len() > MAX_PASSWORD_BYTES {
        anyhow::bail!("passwords must be 12 to 1024 characters long");
    }
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|error| anyhow::anyhow!("cannot make a salt: {error}"))?;
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|error| anyhow::anyhow!("cannot hash the password: {error}"))?
        .to_string();
    store.write().execute(
        "INSERT INTO users (name, role, password_hash, created_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name) DO UPDATE SET role = excluded.role, password_hash = excluded.password_hash,
            disabled = 0",
        params![name, role.as_str(), hash, now_ms],
    )?;
    Ok(())
}

/// Checks a password; `None` when the user is unknown, disabled or the
/// password is wrong (callers cannot tell which, nor can attackers).
pub fn check_password(
    store: &IncidentStore,
    name: &str,
    password: &str,
) -> anyhow::Result<Option<Role>> {
    let row: Option<(String, String)> = store
        .read()
        .query_row(
            "SELECT role, password_hash FROM users WHERE name = ?1 AND disabled = 0",
            params![name],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    if password.len() > MAX_PASSWORD_BYTES {
        return Ok(None);
    }
    let Some((role, hash)) = row else {
        // Spend the same time as for a real user, so that response times
        // do not tell which user names exist.
        let _ = dummy_hash().and_then(|dummy| {
            PasswordHash::new(dummy).ok().and_then(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .ok()
            })
        });
        return Ok(None);
    };
    let Ok(parsed) = PasswordHash::new(&hash) else {
        return Ok(None);
    };
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .ok()
        .and_then(|()| Role::parse(&role)))
}

/// A hash of a random password, made once, checked against when the user
/// does not exist.
fn dummy_hash() -> Option<&'static str> {
    static DUMMY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| {
            let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).ok()?;
            Argon2::default()
                .hash_password(&rand::random::<[u8; 16]>(), &salt)
                .ok()
                .map(|hash| hash.to_string())
        })
        .as_deref()
}

/// A fresh random secret, hex.
fn secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Starts a session; returns the session id for the cookie.
pub fn create_session(
    store: &IncidentStore,
    user: &str,
    ttl_ms: i64,
    now_ms: i64,
) -> anyhow::Result<String> {
    let token = secret();
    let connection = store.write();
    connection.execute(
        "DELETE FROM sessions WHERE expires_ms < ?1",
        params![now_ms],
    )?;
    connection.execute(
        "INSERT INTO sessions (token_hash, user, csrf, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![sha256_hex(token.as_bytes()), user, secret(), now_ms, now_ms.saturating_add(ttl_ms)],
    )?;
    Ok(token)
}

/// Ends a session.
pub fn end_session(store: &IncidentStore, token: &str) -> anyhow::Result<()> {
    store.write().execute(
        "DELETE FROM sessions WHERE token_hash = ?1",
        params![sha256_hex(token.as_bytes())],
    )?;
    Ok(())
}

/// The user behind a session id, if it is valid.
pub fn session(
    store: &IncidentStore,
    token: &str,
    now_ms: i64,
) -> anyhow::Result<Option<Principal>> {
    let row: Option<(String, String, String)> = store
        .read()
        .query_row(
            "SELECT s.user, u.role, s.csrf FROM sessions s JOIN users u ON u.name = s.user
             WHERE s.token_hash = ?1 AND s.expires_ms > ?2 AND u.disabled = 0",
            params![sha256_hex(token.as_bytes()), now_ms],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    Ok(row.and_then(|(user, role, csrf)| {
        Role::parse(&role).map(|role| Principal {
            user,
            role,
            csrf: Some(csrf),
        })
    }))
}

/// Creates an API token for `user`; returns it (shown once).
pub fn create_token(
    store: &IncidentStore,
    user: &str,
    label: &str,
    now_ms: i64,
) -> anyhow::Result<String> {
    let exists: bool = store.read().query_row(
        "SELECT EXISTS (SELECT 1 FROM users WHERE name = ?1)",
        params![user],
        |row| row.get(0),
    )?;
    if !exists {
        anyhow::bail!("no user {user:?}: create it with `user add` first");
    }
    let token = format!("cwa_{}", secret());
    store.write().execute(
        "INSERT INTO api_tokens (token_hash, user, label, created_ms) VALUES (?1, ?2, ?3, ?4)",
        params![sha256_hex(token.as_bytes()), user, label, now_ms],
    )?;
    Ok(token)
}

/// The user behind a bearer token, if it is valid.
pub fn bearer(
    store: &IncidentStore,
    token: &str,
    now_ms: i64,
) -> anyhow::Result<Option<Principal>> {
    let row: Option<(String, String)> = store
        .read()
        .query_row(
            "SELECT t.user, u.role FROM api_tokens t JOIN users u ON u.name = t.user
             WHERE t.token_hash = ?1 AND (t.expires_ms IS NULL OR t.expires_ms > ?2) AND u.disabled = 0",
            params![sha256_hex(token.as_bytes()), now_ms],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    Ok(row.and_then(|(user, role)| {
        Role::parse(&role).map(|role| Principal {
            user,
            role,
            csrf: None,
        })
    }))
}

/// Failed logins allowed per address within [`FAILURE_WINDOW_MS`].
pub const MAX_FAILURES: u32 = 5;
/// The window failed logins are counted in.
pub const FAILURE_WINDOW_MS: i64 = 5 * 60 * 1000;
/// Most addresses tracked; beyond it the oldest windows are forgotten.
const MAX_TRACKED: usize = 10_000;

/// Counts failed logins per source address; refuses further attempts from
/// an address that failed [`MAX_FAILURES`] times within the window, so
/// passwords cannot be guessed at argon2's speed.
#[derive(Default)]
pub struct LoginLimiter {
    /// Address -> (window start, failures in it).
    failures: Mutex<HashMap<IpAddr, (i64, u32)>>,
}

impl LoginLimiter {
    /// Whether `address` may try now.
    pub fn allows(&self, address: IpAddr, now_ms: i64) -> bool {
        let failures = self
            .failures
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        match failures.get(&address) {
            Some((start, count)) => now_ms - start > FAILURE_WINDOW_MS || *count < MAX_FAILURES,
            None => true,
        }
    }

    /// Records a failure; returns the failures in the current window.
    pub fn failed(&self, address: IpAddr, now_ms: i64) -> u32 {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if failures.len() >= MAX_TRACKED {
            failures.retain(|_, (start, _)| now_ms - *start <= FAILURE_WINDOW_MS);
        }
        if failures.len() >= MAX_TRACKED {
            failures.clear();
        }
        let entry = failures.entry(address).or_insert((now_ms, 0));
        if now_ms - entry.0 > FAILURE_WINDOW_MS {
            *entry = (now_ms, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1
    }

    /// Forgets an address after a successful login.
    pub fn succeeded(&self, address: IpAddr) {
        self.failures
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .remove(&address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_sessions_and_tokens_authenticate_only_their_user() {
        let dir = tempfile::tempdir().unwrap();
        let store = IncidentStore::open(dir.path()).unwrap();
        assert!(add_user(&store, "alice", Role::SecurityOfficer, "short", 0).is_err());
        add_user(
            &store,
            "alice",
            Role::SecurityOfficer,
            "correct horse battery",
            0,
        )
        .unwrap();
        assert_eq!(
            check_password(&store, "alice", "correct horse battery").unwrap(),
            Some(Role::SecurityOfficer)
        );
        assert_eq!(check_password(&store, "alice", "wrong").unwrap(), None);
        assert_eq!(
            check_password(&store, "bob", "correct horse battery").unwrap(),
            None
        );

        let session_id = create_session(&store, "alice", 1_000, 10).unwrap();
        let principal = session(&store, &session_id, 500).unwrap().unwrap();
        assert_eq!(principal.role, Role::SecurityOfficer);
        assert!(principal.csrf.is_some());
        assert_eq!(session(&store, &session_id, 2_000).unwrap(), None);
        assert_eq!(session(&store, "forged", 500).unwrap(), None);

        let token = create_token(&store, "alice", "report script", 0).unwrap();
        assert_eq!(bearer(&store, &token, 1).unwrap().unwrap().user, "alice");
        assert!(create_token(&store, "nobody", "x", 0).is_err());
    }

    #[test]
    fn the_limiter_refuses_after_five_failures_until_the_window_passes() {
        let limiter = LoginLimiter::default();
        let address: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert!(limiter.allows(address, 1_000));
            limiter.failed(address, 1_000);
        }
        assert!(!limiter.allows(address, 1_000));
        assert!(limiter.allows("192.0.2.8".parse().unwrap(), 1_000));
        assert!(limiter.allows(address, 1_000 + FAILURE_WINDOW_MS + 1));
    }
}
