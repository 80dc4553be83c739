//! Persisting source state (log positions, the FIM baseline, known
//! listeners) as small JSON files in the state directory.
//!
//! Writes are atomic (temporary file, fsync, rename, fsync of the
//! directory), so a crash leaves either the old or the new state, never a
//! torn file. A missing or unreadable file means "no state yet".

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Largest state file read back; ours are a few KiB.
const MAX_STATE_BYTES: u64 = 16 * 1024 * 1024;

/// Reads `path` as JSON; `None` (with a warning for anything but absence)
/// when it cannot be used.
pub fn load<T: DeserializeOwned>(path: &Path) -> Option<T> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot read source state, starting afresh");
            return None;
        }
    };
    if metadata.len() > MAX_STATE_BYTES {
        tracing::warn!(path = %path.display(), "source state file is too large, starting afresh");
        return None;
    }
    match std::fs::read(path).map(|bytes| serde_json::from_slice(&bytes)) {
        Ok(Ok(value)) => Some(value),
        Ok(Err(error)) => {
            tracing::warn!(path = %path.display(), %error, "source state file is corrupt, starting afresh");
            None
        }
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot read source state, starting afresh");
            None
        }
    }
}

/// Serialises `value` to JSON bytes (the form [`store_bytes`] writes).
pub fn to_bytes<T: Serialize>(value: &T) -> std::io::Result<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(std::io::Error::other)
}

/// Atomically replaces `path` with `bytes`.
pub fn store_bytes(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let directory = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(directory)?;
    let temporary = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(directory)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("x.json");
        assert_eq!(load::<Vec<u32>>(&path), None);
        store_bytes(&path, &to_bytes(&vec![1u32, 2]).unwrap()).unwrap();
        assert_eq!(load::<Vec<u32>>(&path), Some(vec![1, 2]));
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(load::<Vec<u32>>(&path), None);
    }
}
