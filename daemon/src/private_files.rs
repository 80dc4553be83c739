//! Owner-only files for both daemons: the collector's data dir holds
//! password hashes, sessions and evidence, the agent's spool holds raw
//! auth-log lines (which `/var/log/auth.log` keeps 0640, and which sometimes
//! carry a password typed as a user name).
//!
//! [`restrict_umask`] runs first thing in both binaries, so every file and
//! directory they create (SQLite databases and the WAL/SHM files SQLite
//! creates beside them, `backup` output, keys, spools) is owner-only
//! whatever umask the process was started with. [`tighten_dir`] brings a
//! directory made by an older version, or by hand, down to the same modes
//! at start.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The umask both daemons run with: no bits for group or others, so new
/// directories are 0700 and new files 0600.
pub const UMASK: u32 = 0o077;

/// Sets the process umask to [`UMASK`].
pub fn restrict_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(UMASK));
}

/// Makes `dir` 0700 and every file and directory inside it (one level of
/// subdirectories deep, as both daemons lay them out) owner-only, removing
/// group and other bits and keeping the owner's. A missing `dir` or entry
/// is skipped (nothing to protect yet); anything else that fails is
/// returned.
pub fn tighten_dir(dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    tighten(dir)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_type = entry.file_type()?;
        if file_type.is_symlink() {
            continue;
        }
        tighten(&entry.path())?;
        if file_type.is_dir() {
            for inner in std::fs::read_dir(entry.path())? {
                let inner = inner?;
                if !inner.file_type()?.is_symlink() {
                    tighten(&inner.path())?;
                }
            }
        }
    }
    Ok(())
}

/// Removes group and other bits from one path.
fn tighten(path: &Path) -> std::io::Result<()> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    let mode = metadata.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tightening_removes_group_and_other_bits_one_level_down() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("ca");
        std::fs::create_dir(&inner).unwrap();
        let file = inner.join("ca.crt");
        std::fs::write(&file, "x").unwrap();
        for path in [dir.path(), inner.as_path(), file.as_path()] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        tighten_dir(dir.path()).unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&inner), 0o700);
        assert_eq!(mode(&file), 0o700);
        tighten_dir(&dir.path().join("missing")).unwrap();
    }
}
