//! Writing the small files a daemon must never leave half-written or
//! readable by others: private keys, certificates, the agent's enrolment
//! record. Each is written with its permission bits from the first byte
//! (no window where a key is world-readable) and synced before it counts.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Creates `path` with `mode` and `contents`, synced; refuses to overwrite
/// an existing file, so a second run can never replace a CA key.
pub fn create_new(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|error| context(error, "cannot create", path))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|error| context(error, "cannot write", path))
}

/// Replaces `path` atomically: the contents go to `path.tmp` with `mode`,
/// synced, then renamed over `path`, so a crash leaves the old file or the
/// new one, never a mix.
pub fn replace(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let temporary = path.with_extension("tmp");
    // A leftover from a crash would make create_new fail.
    let _ = std::fs::remove_file(&temporary);
    create_new(&temporary, contents, mode)?;
    std::fs::rename(&temporary, path).map_err(|error| context(error, "cannot write", path))
}

fn context(error: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(error.kind(), format!("{what} {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_files_keep_their_mode_and_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        create_new(&path, b"one", 0o600).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        let error = create_new(&path, b"two", 0o600).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        assert!(error.to_string().contains("key.pem"), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
    }

    #[test]
    fn replacing_swaps_the_whole_file_and_survives_a_leftover() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record.json");
        std::fs::write(path.with_extension("tmp"), b"a crash's leftover").unwrap();
        replace(&path, b"first", 0o644).unwrap();
        replace(&path, b"second", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(mode_of(&path), 0o600);
        assert!(!path.with_extension("tmp").exists());
    }
}
