//! The agent's record of active response, `response.json` in its state
//! directory: the decision cursor (the last update it has seen) and the
//! blocks it holds, with their expiry, reason and mode.
//!
//! The file is replaced atomically (owner-only, 0600, like every file in
//! the state directory) after every change, after the firewall took the
//! change: a crash in between leaves the kernel set ahead of the file, and
//! the restarted agent adopts what it finds in its own set and is sent the
//! same updates again (its cursor did not move). `blocks list` reads it
//! while the daemon runs.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use countywatch_wire::ResponseMode;
use serde::{Deserialize, Serialize};

/// The file's name in the state directory.
pub const FILE: &str = "response.json";

/// Everything in the file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseState {
    /// The highest update id seen; sent to the collector as `after`.
    pub cursor: u64,
    /// The collector's `response.mode` as last received, for offline use.
    #[serde(default)]
    pub mode: ResponseMode,
    /// The blocks held (enforced or dry run), oldest first.
    #[serde(default)]
    pub blocks: Vec<Block>,
    /// Updates refused because their address had an open SSH session
    /// here, tried again when the session ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deferred: Vec<countywatch_wire::DecisionUpdate>,
    /// Decisions made offline so far, numbering the next one
    /// ([`LOCAL_DECISIONS_FROM`] plus this).
    #[serde(default)]
    pub next_local: u64,
    /// Decisions made offline and not yet applied (waiting for an SSH
    /// session to end), by their local id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub made_offline: Vec<MadeOffline>,
    /// Decisions made offline and applied, not yet reported to the
    /// collector, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreported: Vec<countywatch_wire::LocalDecision>,
}

/// Decisions the agent makes offline are numbered from here, above any id
/// the collector gives (SQLite row ids, below 2^63), so that they share the
/// block list and the safety checks with the collector's.
pub const LOCAL_DECISIONS_FROM: u64 = 1 << 63;

/// Whether a decision or update id is the agent's own.
pub fn is_local(id: u64) -> bool {
    id >= LOCAL_DECISIONS_FROM
}

/// A decision made offline that waits to be applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MadeOffline {
    /// Its local id (update and decision alike).
    pub id: u64,
    /// What the collector is told once it is applied.
    pub report: countywatch_wire::LocalDecision,
}

/// One block the agent holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Block {
    /// The blocked address.
    pub address: IpAddr,
    /// The collector's decision id, or the agent's own (at or above
    /// [`LOCAL_DECISIONS_FROM`]) for a block made offline; none for an
    /// element found in the agent's firewall set at start without a record
    /// (adopted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<u64>,
    /// When the agent applied it, in milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    /// When it ends, in milliseconds since the Unix epoch.
    pub expires_at_ms: i64,
    /// Enforced or only recorded.
    pub mode: ResponseMode,
    /// Why, as the collector said.
    pub reason: String,
}

/// Why the file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading failed (permissions, I/O).
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not what the agent writes (damaged, edited by hand).
    #[error("{path} is damaged: {source}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// The file's path in `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// Reads the file; a missing file is an empty state (a new agent).
pub fn load(state_dir: &Path) -> Result<ResponseState, StateError> {
    let path = path(state_dir);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(ResponseState::default());
        }
        Err(source) => return Err(StateError::Read { path, source }),
    };
    serde_json::from_slice(&text).map_err(|source| StateError::Damaged { path, source })
}

/// Replaces the file atomically, owner-only.
pub fn save(state_dir: &Path, state: &ResponseState) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    countywatch_daemon::durable_file::replace(&path(state_dir), &text, 0o600)
}

/// Moves a damaged file aside (kept for inspection as
/// `response.json.damaged-<ms>`) so the agent can start afresh.
pub fn set_aside(state_dir: &Path, now_ms: i64) -> std::io::Result<PathBuf> {
    let kept = state_dir.join(format!("{FILE}.damaged-{now_ms}"));
    std::fs::rename(path(state_dir), &kept)?;
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_state_round_trips_owner_only_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), ResponseState::default());
        let state = ResponseState {
            cursor: 42,
            mode: ResponseMode::Enforce,
            blocks: vec![
                Block {
                    address: "203.0.113.9".parse().unwrap(),
                    decision: Some(7),
                    started_at_ms: 1_000,
                    expires_at_ms: 3_601_000,
                    mode: ResponseMode::Enforce,
                    reason: "ssh_brute_force incident 3".to_string(),
                },
                Block {
                    address: "2001:db8::5".parse().unwrap(),
                    decision: None,
                    started_at_ms: 2_000,
                    expires_at_ms: 5_000,
                    mode: ResponseMode::DryRun,
                    reason: "adopted".to_string(),
                },
            ],
            ..ResponseState::default()
        };
        save(dir.path(), &state).unwrap();
        let mode = std::fs::metadata(path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load(dir.path()).unwrap(), state);
        let text = std::fs::read_to_string(path(dir.path())).unwrap();
        assert!(text.contains("\"dry_run\""), "{text}");
        assert!(!text.contains("\"decision\": null"), "{text}");
    }

    #[test]
    fn a_damaged_file_is_reported_and_can_be_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), "{\"cursor\": \"x\"").unwrap();
        let error = load(dir.path()).unwrap_err();
        assert!(matches!(error, StateError::Damaged { .. }), "{error}");
        assert!(error.to_string().contains("response.json"), "{error}");
        let kept = set_aside(dir.path(), 5).unwrap();
        assert!(kept.ends_with("response.json.damaged-5"));
        assert_eq!(load(dir.path()).unwrap(), ResponseState::default());
    }
}
