//! The batch sequence number, persisted in the state directory so that it
//! keeps increasing across restarts (the collector drops replays by it).

use std::path::{Path, PathBuf};

use anyhow::Context;

/// The next sequence number and where it is stored.
pub struct Sequence {
    /// `<state_dir>/sequence`.
    path: PathBuf,
    /// The last number handed out.
    last: u64,
}

impl Sequence {
    /// Loads the last number from `state_dir`, or starts at 0. A corrupt
    /// file is an error rather than a silent restart at 0, which would make
    /// the collector take new batches for replays.
    pub fn open(state_dir: &Path) -> anyhow::Result<Sequence> {
        let path = state_dir.join("sequence");
        let last = match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse::<u64>()
                .with_context(|| format!("corrupt sequence file {}", path.display()))?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        Ok(Sequence { path, last })
    }

    /// Hands out the next number and persists it (write, then rename, so a
    /// crash leaves either the old or the new number).
    pub fn advance(&mut self) -> anyhow::Result<u64> {
        let next = self.last.saturating_add(1);
        let temporary = self.path.with_extension("tmp");
        std::fs::write(&temporary, format!("{next}\n"))
            .and_then(|()| std::fs::rename(&temporary, &self.path))
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        self.last = next;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut sequence = Sequence::open(dir.path()).unwrap();
        assert_eq!(sequence.advance().unwrap(), 1);
        assert_eq!(sequence.advance().unwrap(), 2);
        let mut reopened = Sequence::open(dir.path()).unwrap();
        assert_eq!(reopened.advance().unwrap(), 3);
    }

    #[test]
    fn a_corrupt_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sequence"), "garbage").unwrap();
        let error = Sequence::open(dir.path())
            .err()
            .map(|error| error.to_string());
        assert!(
            error
                .unwrap_or_default()
                .starts_with("corrupt sequence file")
        );
    }
}
