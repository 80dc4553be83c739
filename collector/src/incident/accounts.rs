//! The user lifecycle around [`crate::incident::auth`]: the first admin a
//! fresh collector creates, password changes (a forced one at that admin's
//! first login), disabling, enabling and removing users, and listing and
//! revoking API tokens.
//!
//! Whenever a password is reset or a user disabled or removed, every
//! session and API token of that user ends with it ([`auth::revoke_credentials`]).
//!
//! The first admin: on a start with an empty user table the collector
//! creates `admin` with a random password, writes it to
//! `<data_dir>/initial-admin-password` (mode 0600) and logs the file's path,
//! never the password. That user can do nothing but choose a new password
//! until they have; the file is deleted then.

use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::audit::Outcome;
use crate::incident::auth::{self, Role, revoke_credentials};
use crate::incident::store::IncidentStore;

/// The first admin's user name.
pub const FIRST_ADMIN: &str = "admin";
/// The file in the data dir holding the first admin's generated password.
pub const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";
/// Letters and digits that cannot be mistaken for one another when read
/// off a screen and typed (no 0/O, 1/l/I).
const PASSWORD_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
/// Length of a generated password: 20 of 57 symbols is about 116 bits.
const GENERATED_PASSWORD_LENGTH: usize = 20;

/// A user as `user list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserRow {
    /// The name.
    pub name: String,
    /// The role's name.
    pub role: String,
    /// Whether the user is disabled.
    pub disabled: bool,
    /// Whether the user must set a new password before anything else.
    pub must_change_password: bool,
    /// Unix milliseconds.
    pub created_ms: i64,
    /// Unexpired web sessions.
    pub sessions: i64,
    /// API tokens (expired ones included until revoked).
    pub tokens: i64,
}

/// An API token as `user tokens` shows it (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenRow {
    /// The id `user revoke-token` takes.
    pub id: i64,
    /// Whom it acts as.
    pub user: String,
    /// What it is for.
    pub label: String,
    /// Unix milliseconds.
    pub created_ms: i64,
    /// Unix milliseconds; `None` for a token valid until revoked.
    pub expires_ms: Option<i64>,
}

/// Creates the first admin when the user table is empty; returns the
/// password file's path when it did.
pub fn ensure_first_admin(
    store: &IncidentStore,
    data_dir: &Path,
    now_ms: i64,
) -> anyhow::Result<Option<PathBuf>> {
    let users: i64 = store
        .read()
        .query_row("SELECT COUNT(*) FROM users", [], |row| row.get(0))?;
    if users > 0 {
        return Ok(None);
    }
    let password = generate_password();
    let hash = auth::hash_password(&password)?;
    let path = data_dir.join(INITIAL_PASSWORD_FILE);
    // The file first: a crash before the user exists leaves a password
    // nobody can use, and the next start writes a new one.
    countywatch_daemon::durable_file::replace(&path, format!("{password}\n").as_bytes(), 0o600)?;
    store.write().execute(
        "INSERT INTO users (name, role, password_hash, created_ms, must_change_password)
         VALUES (?1, ?2, ?3, ?4, 1)",
        params![FIRST_ADMIN, Role::Admin.as_str(), hash, now_ms],
    )?;
    store.audit(
        "system",
        "user.added",
        &format!("user/{FIRST_ADMIN}"),
        Outcome::Success,
        &format!("first admin; password in {}", path.display()),
    )?;
    Ok(Some(path))
}

fn generate_password() -> String {
    let mut password = String::with_capacity(GENERATED_PASSWORD_LENGTH);
    // Rejection sampling keeps every symbol equally likely.
    let limit = u8::try_from(256 - 256 % PASSWORD_ALPHABET.len()).unwrap_or(u8::MAX);
    while password.len() < GENERATED_PASSWORD_LENGTH {
        let byte = rand::random::<u8>();
        if byte < limit {
            password.push(char::from(
                PASSWORD_ALPHABET[usize::from(byte) % PASSWORD_ALPHABET.len()],
            ));
        }
    }
    password
}

/// Why a password change was refused.
#[derive(Debug, thiserror::Error)]
pub enum PasswordChangeError {
    /// The current password was wrong.
    #[error("the current password is wrong")]
    WrongCurrentPassword,
    /// The new password is the current one.
    #[error("the new password must differ from the current one")]
    Unchanged,
    /// The new password is too short or too long.
    #[error("passwords must be 12 to 1024 characters long")]
    BadLength,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// Changes `user`'s own password after checking the current one; ends
/// every session and token of the user (the caller starts a new session),
/// clears the forced change and deletes the first admin's password file.
pub fn change_own_password(
    store: &IncidentStore,
    data_dir: &Path,
    user: &str,
    current: &str,
    new: &str,
    memory: &mut auth::HashMemory,
) -> Result<(), PasswordChangeError> {
    if auth::check_password(store, user, current, memory)?.is_none() {
        return Err(PasswordChangeError::WrongCurrentPassword);
    }
    if current == new {
        return Err(PasswordChangeError::Unchanged);
    }
    let hash = auth::hash_password(new).map_err(|_| PasswordChangeError::BadLength)?;
    {
        let connection = store.write();
        revoke_credentials(&connection, user).map_err(anyhow::Error::from)?;
        connection
            .execute(
                "UPDATE users SET password_hash = ?2, must_change_password = 0 WHERE name = ?1",
                params![user, hash],
            )
            .map_err(anyhow::Error::from)?;
    }
    if user == FIRST_ADMIN {
        forget_initial_password(data_dir);
    }
    Ok(())
}

/// Deletes the first admin's password file, if any: the password in it no
/// longer works once the admin's password was set.
pub fn forget_initial_password(data_dir: &Path) {
    let path = data_dir.join(INITIAL_PASSWORD_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => tracing::info!(path = %path.display(), "initial admin password file deleted"),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot delete the initial admin password file")
        }
    }
}

/// Every user, by name.
pub fn list_users(store: &IncidentStore, now_ms: i64) -> anyhow::Result<Vec<UserRow>> {
    let connection = store.read();
    let mut statement = connection.prepare(
        "SELECT u.name, u.role, u.disabled, u.must_change_password, u.created_ms,
            (SELECT COUNT(*) FROM sessions s WHERE s.user = u.name AND s.expires_ms > ?1),
            (SELECT COUNT(*) FROM api_tokens t WHERE t.user = u.name)
         FROM users u ORDER BY u.name",
    )?;
    let rows = statement
        .query_map(params![now_ms], |row| {
            Ok(UserRow {
                name: row.get(0)?,
                role: row.get(1)?,
                disabled: row.get(2)?,
                must_change_password: row.get(3)?,
                created_ms: row.get(4)?,
                sessions: row.get(5)?,
                tokens: row.get(6)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Sets a new password someone else chose (an admin on the users page):
/// every session and token of the user ends, and the user must choose
/// their own at the next login. `false` when there is no such user.
pub fn reset_password(store: &IncidentStore, name: &str, password: &str) -> anyhow::Result<bool> {
    let hash = auth::hash_password(password)?;
    let connection = store.write();
    let changed = connection.execute(
        "UPDATE users SET password_hash = ?2, must_change_password = 1 WHERE name = ?1",
        params![name, hash],
    )?;
    if changed > 0 {
        revoke_credentials(&connection, name)?;
    }
    Ok(changed > 0)
}

/// Changes a user's role; `false` when there is no such user.
pub fn set_role(store: &IncidentStore, name: &str, role: Role) -> anyhow::Result<bool> {
    let changed = store.write().execute(
        "UPDATE users SET role = ?2 WHERE name = ?1",
        params![name, role.as_str()],
    )?;
    Ok(changed > 0)
}

/// Disables (ending its sessions and tokens) or enables a user; `false`
/// when there is no such user.
pub fn set_disabled(store: &IncidentStore, name: &str, disabled: bool) -> anyhow::Result<bool> {
    let connection = store.write();
    let changed = connection.execute(
        "UPDATE users SET disabled = ?2 WHERE name = ?1",
        params![name, disabled],
    )?;
    if changed > 0 && disabled {
        revoke_credentials(&connection, name)?;
    }
    Ok(changed > 0)
}

/// Removes a user with its sessions and tokens; `false` when there is no
/// such user.
pub fn remove_user(store: &IncidentStore, name: &str) -> anyhow::Result<bool> {
    let connection = store.write();
    revoke_credentials(&connection, name)?;
    Ok(connection.execute("DELETE FROM users WHERE name = ?1", params![name])? > 0)
}

/// API tokens, of one user or of all, oldest first.
pub fn list_tokens(store: &IncidentStore, user: Option<&str>) -> anyhow::Result<Vec<TokenRow>> {
    let connection = store.read();
    let mut statement = connection.prepare(
        "SELECT rowid, user, label, created_ms, expires_ms FROM api_tokens
         WHERE ?1 IS NULL OR user = ?1 ORDER BY rowid",
    )?;
    let rows = statement
        .query_map(params![user], |row| {
            Ok(TokenRow {
                id: row.get(0)?,
                user: row.get(1)?,
                label: row.get(2)?,
                created_ms: row.get(3)?,
                expires_ms: row.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Revokes one API token; returns whom it acted as, `None` when there is
/// no such token.
pub fn revoke_token(store: &IncidentStore, id: i64) -> anyhow::Result<Option<String>> {
    let connection = store.write();
    let user: Option<String> = connection
        .query_row(
            "SELECT user FROM api_tokens WHERE rowid = ?1",
            params![id],
            |row| row.get(0),
        )
        .optional()?;
    connection.execute("DELETE FROM api_tokens WHERE rowid = ?1", params![id])?;
    Ok(user)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_first_admin_gets_a_private_file_and_must_change_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let store = IncidentStore::open(dir.path()).unwrap();
        let path = ensure_first_admin(&store, dir.path(), 1).unwrap().unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let password = std::fs::read_to_string(&path).unwrap().trim().to_string();
        assert_eq!(password.len(), GENERATED_PASSWORD_LENGTH);
        // Only once: a second start leaves the user and the file alone.
        assert_eq!(ensure_first_admin(&store, dir.path(), 2).unwrap(), None);
        let pool = auth::HashMemoryPool::new(1);
        let mut memory = pool.lease().unwrap();
        assert_eq!(
            auth::check_password(&store, FIRST_ADMIN, &password, &mut memory).unwrap(),
            Some(Role::Admin)
        );
        let session = auth::create_session(&store, FIRST_ADMIN, 1_000_000, 1).unwrap();
        assert!(
            auth::session(&store, &session, 2)
                .unwrap()
                .unwrap()
                .must_change_password
        );

        assert!(matches!(
            change_own_password(
                &store,
                dir.path(),
                FIRST_ADMIN,
                "wrong-password!",
                "x",
                &mut memory
            ),
            Err(PasswordChangeError::WrongCurrentPassword)
        ));
        assert!(matches!(
            change_own_password(
                &store,
                dir.path(),
                FIRST_ADMIN,
                &password,
                "short",
                &mut memory
            ),
            Err(PasswordChangeError::BadLength)
        ));
        change_own_password(
            &store,
            dir.path(),
            FIRST_ADMIN,
            &password,
            "a county's own admin password",
            &mut memory,
        )
        .unwrap();
        assert!(!path.exists());
        assert_eq!(auth::session(&store, &session, 2).unwrap(), None);
        let session = auth::create_session(&store, FIRST_ADMIN, 1_000_000, 1).unwrap();
        assert!(
            !auth::session(&store, &session, 2)
                .unwrap()
                .unwrap()
                .must_change_password
        );
    }

    #[test]
    fn disabling_and_removing_end_sessions_and_tokens_and_tokens_can_be_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = IncidentStore::open(dir.path()).unwrap();
        auth::add_user(&store, "bob", Role::Viewer, "bob's long password", 0).unwrap();
        let first = auth::create_token(&store, "bob", "one", None, 0).unwrap();
        let second = auth::create_token(&store, "bob", "two", None, 0).unwrap();
        let tokens = list_tokens(&store, Some("bob")).unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!(
            revoke_token(&store, tokens[0].id).unwrap().as_deref(),
            Some("bob")
        );
        assert_eq!(revoke_token(&store, tokens[0].id).unwrap(), None);
        assert_eq!(auth::bearer(&store, &first, 1).unwrap(), None);
        assert!(auth::bearer(&store, &second, 1).unwrap().is_some());

        let session = auth::create_session(&store, "bob", 1_000, 0).unwrap();
        assert!(set_disabled(&store, "bob", true).unwrap());
        assert!(set_disabled(&store, "bob", false).unwrap());
        assert_eq!(auth::bearer(&store, &second, 1).unwrap(), None);
        assert_eq!(auth::session(&store, &session, 1).unwrap(), None);
        let users = list_users(&store, 1).unwrap();
        assert_eq!(users.len(), 1);
        assert_eq!((users[0].sessions, users[0].tokens), (0, 0));
        assert!(!set_disabled(&store, "nobody", true).unwrap());
        assert!(remove_user(&store, "bob").unwrap());
        assert!(list_users(&store, 1).unwrap().is_empty());
    }
}
