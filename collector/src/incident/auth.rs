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

use std::sync::{Arc, Mutex};

use argon2::Argon2;
use argon2::password_hash::{self, PasswordHash, PasswordHasher, SaltString};
use rusqlite::{Connection, OptionalExtension, params};
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
    /// The user logged in with a password someone else chose (the first
    /// admin's) and may do nothing but set their own until they have.
    pub must_change_password: bool,
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
    let hash = hash_password(password)?;
    let connection = store.write();
    // A reset password ends every session and token the old one allowed.
    revoke_credentials(&connection, name)?;
    connection.execute(
        "INSERT INTO users (name, role, password_hash, created_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name) DO UPDATE SET role = excluded.role, password_hash = excluded.password_hash,
            disabled = 0, must_change_password = 0",
        params![name, role.as_str(), hash, now_ms],
    )?;
    Ok(())
}

/// Ends every session and API token of `user`; returns how many of each.
pub fn revoke_credentials(connection: &Connection, user: &str) -> rusqlite::Result<(usize, usize)> {
    let sessions = connection.execute("DELETE FROM sessions WHERE user = ?1", params![user])?;
    let tokens = connection.execute("DELETE FROM api_tokens WHERE user = ?1", params![user])?;
    Ok((sessions, tokens))
}

/// The argon2id PHC string of a password of 12 to 1024 characters.
pub(crate) fn hash_password(password: &str) -> anyhow::Result<String> {
    if password.chars().count() < 12 || password.len() > MAX_PASSWORD_BYTES {
        anyhow::bail!("passwords must be 12 to 1024 characters long");
    }
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|error| anyhow::anyhow!("cannot make a salt: {error}"))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|error| anyhow::anyhow!("cannot hash the password: {error}"))?
        .to_string())
}

/// Checks a password with argon2 work memory leased from
/// [`HashMemoryPool::lease`]; `None` when the user is unknown, disabled
/// or the password is wrong (callers cannot tell which, nor can attackers).
pub fn check_password(
    store: &IncidentStore,
    name: &str,
    password: &str,
    memory: &mut HashMemory,
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
        if let Some(dummy) = dummy_hash() {
            let _ = matches(password, dummy, memory);
        }
        return Ok(None);
    };
    Ok(matches(password, &hash, memory)
        .then(|| Role::parse(&role))
        .flatten())
}

/// Whether `password` matches the PHC string `stored`, computed in
/// `memory` rather than in a fresh allocation. A stored hash asking for
/// more memory than a lease holds never matches (this code never writes
/// one).
fn matches(password: &str, stored: &str, memory: &mut HashMemory) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        argon2::Algorithm::try_from(parsed.algorithm),
        argon2::Params::try_from(&parsed),
        parsed.salt,
        parsed.hash,
    ) else {
        return false;
    };
    let version = match parsed.version.map(argon2::Version::try_from) {
        None => argon2::Version::default(),
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let blocks = params.block_count();
    let Some(work) = memory.blocks.get_mut(..blocks) else {
        return false;
    };
    let mut salt_bytes = [0_u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut computed = vec![0_u8; expected.len()];
    let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.as_bytes(),
        salt,
        &mut computed,
        work,
    );
    // Output's equality is constant-time.
    hashed.is_ok()
        && password_hash::Output::new(&computed).is_ok_and(|computed| computed == expected)
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

/// The enabled users an incident can be assigned to (security officers
/// and admins), by name.
pub fn assignable_users(store: &IncidentStore) -> anyhow::Result<Vec<String>> {
    let connection = store.read();
    let mut statement = connection.prepare_cached(
        "SELECT name FROM users WHERE disabled = 0 AND role IN ('security_officer', 'admin')
         ORDER BY name",
    )?;
    let rows = statement.query_map([], |row| row.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
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
    let row: Option<(String, String, String, bool)> = store
        .read()
        .query_row(
            "SELECT s.user, u.role, s.csrf, u.must_change_password FROM sessions s
             JOIN users u ON u.name = s.user
             WHERE s.token_hash = ?1 AND s.expires_ms > ?2 AND u.disabled = 0",
            params![sha256_hex(token.as_bytes()), now_ms],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()?;
    Ok(row.and_then(|(user, role, csrf, must_change_password)| {
        Role::parse(&role).map(|role| Principal {
            user,
            role,
            csrf: Some(csrf),
            must_change_password,
        })
    }))
}

/// Creates an API token for `user`, valid for `ttl` when given (else until
/// revoked); returns it (shown once).
pub fn create_token(
    store: &IncidentStore,
    user: &str,
    label: &str,
    ttl: Option<std::time::Duration>,
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
    let expires_ms =
        ttl.map(|ttl| now_ms.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)));
    store.write().execute(
        "INSERT INTO api_tokens (token_hash, user, label, created_ms, expires_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            sha256_hex(token.as_bytes()),
            user,
            label,
            now_ms,
            expires_ms
        ],
    )?;
    Ok(token)
}

/// The user behind a bearer token, if it is valid.
pub fn bearer(
    store: &IncidentStore,
    token: &str,
    now_ms: i64,
) -> anyhow::Result<Option<Principal>> {
    let row: Option<(String, String, bool)> = store
        .read()
        .query_row(
            "SELECT t.user, u.role, u.must_change_password FROM api_tokens t
             JOIN users u ON u.name = t.user
             WHERE t.token_hash = ?1 AND (t.expires_ms IS NULL OR t.expires_ms > ?2) AND u.disabled = 0",
            params![sha256_hex(token.as_bytes()), now_ms],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    Ok(row.and_then(|(user, role, must_change_password)| {
        Role::parse(&role).map(|role| Principal {
            user,
            role,
            csrf: None,
            must_change_password,
        })
    }))
}

/// argon2id's memory in KiB blocks for checking a password: 19 MiB, the
/// parameters `Argon2::default()` hashes with (m=19456, t=2, p=1, OWASP's
/// recommended minimum for argon2id), so existing hashes still verify. Two
/// leases (38 MiB) fit any county server; more memory per hash would buy
/// little against an offline attacker who already needs the database.
pub const HASH_MEMORY_BLOCKS: usize = argon2::Params::DEFAULT_M_COST as usize;

/// One password check's argon2 work memory, leased from a [`HashMemoryPool`]
/// and returned to it when dropped, so it is allocated once and reused rather
/// than left to the allocator after every login.
pub struct HashMemory {
    /// The blocks argon2 works in.
    blocks: Vec<argon2::Block>,
    /// Where the blocks go back.
    pool: Arc<Mutex<Vec<Vec<argon2::Block>>>>,
}

impl Drop for HashMemory {
    fn drop(&mut self) {
        let blocks = std::mem::take(&mut self.blocks);
        self.pool
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .push(blocks);
    }
}

/// Argon2 work memory for a fixed number of password checks at once, so
/// that however many logins arrive together, checking their passwords
/// costs at most that many times [`HASH_MEMORY_BLOCKS`] KiB.
pub struct HashMemoryPool {
    /// Idle memories (empty until first lent), shared with the lent ones
    /// so that they can come back when dropped.
    idle: Arc<Mutex<Vec<Vec<argon2::Block>>>>,
}

impl HashMemoryPool {
    /// A pool lending at most `checks` memories at once.
    pub fn new(checks: usize) -> HashMemoryPool {
        let idle = (0..checks).map(|_| Vec::new()).collect::<Vec<_>>();
        HashMemoryPool {
            idle: Arc::new(Mutex::new(idle)),
        }
    }

    /// Memory for one password check, or `None` when every one is lent.
    /// The memory is allocated on first use and kept.
    pub fn lease(&self) -> Option<HashMemory> {
        let mut blocks = self
            .idle
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .pop()?;
        if blocks.len() < HASH_MEMORY_BLOCKS {
            blocks = vec![argon2::Block::default(); HASH_MEMORY_BLOCKS];
        }
        Some(HashMemory {
            blocks,
            pool: Arc::clone(&self.idle),
        })
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
        let pool = HashMemoryPool::new(1);
        let mut memory = pool.lease().unwrap();
        assert_eq!(
            check_password(&store, "alice", "correct horse battery", &mut memory).unwrap(),
            Some(Role::SecurityOfficer)
        );
        assert_eq!(
            check_password(&store, "alice", "wrong", &mut memory).unwrap(),
            None
        );
        assert_eq!(
            check_password(&store, "bob", "correct horse battery", &mut memory).unwrap(),
            None
        );

        let session_id = create_session(&store, "alice", 1_000, 10).unwrap();
        let principal = session(&store, &session_id, 500).unwrap().unwrap();
        assert_eq!(principal.role, Role::SecurityOfficer);
        assert!(principal.csrf.is_some());
        assert_eq!(session(&store, &session_id, 2_000).unwrap(), None);
        assert_eq!(session(&store, "forged", 500).unwrap(), None);

        let token = create_token(&store, "alice", "report script", None, 0).unwrap();
        assert_eq!(bearer(&store, &token, 1).unwrap().unwrap().user, "alice");
        assert!(create_token(&store, "nobody", "x", None, 0).is_err());

        // A token with a lifetime stops working when it ends.
        let brief = create_token(
            &store,
            "alice",
            "brief",
            Some(std::time::Duration::from_secs(1)),
            0,
        )
        .unwrap();
        assert!(bearer(&store, &brief, 999).unwrap().is_some());
        assert_eq!(bearer(&store, &brief, 1_000).unwrap(), None);

        // Resetting the password ends every session and token.
        add_user(
            &store,
            "alice",
            Role::SecurityOfficer,
            "another horse battery",
            0,
        )
        .unwrap();
        assert_eq!(bearer(&store, &token, 1).unwrap(), None);
        let session_id = create_session(&store, "alice", 1_000, 10).unwrap();
        add_user(&store, "alice", Role::Viewer, "a third horse battery", 0).unwrap();
        assert_eq!(session(&store, &session_id, 500).unwrap(), None);
    }
}
