//! Following a log file across everything logrotate and admins do to it.
//!
//! A [`Position`] names what was read: the file's device and inode, the
//! byte offset after the last complete line, and a SHA-256 of the file's
//! first line (so a new file that happens to reuse the inode is told
//! apart). Each poll:
//!
//! - rotation by rename (logrotate's default): the path now names another
//!   inode. The old file is read to its end first, through the handle
//!   still open, then the new file from its start;
//! - `copytruncate` and plain truncation: same inode, but the file is now
//!   shorter than the offset, or its first line changed: read from 0;
//! - missing file: wait for it and read it from its start once it appears;
//! - a path that is a directory, a FIFO or a device: warn once and never
//!   open it (opening a FIFO would block);
//! - lines split across writes: only complete lines are consumed, so the
//!   rest is read again once its newline arrives;
//! - invalid UTF-8 is the caller's business (it converts lossily); over-long
//!   lines are cut by [`LineSplitter`].
//!
//! After a restart the persisted position is resumed; when the file was
//! rotated meanwhile, the rotated file is found by inode in the same
//! directory and finished first, so nothing is lost or repeated.

use std::fs::{File, Metadata};
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use countywatch_parse::line_splitter::LineSplitter;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How many bytes of the first line identify a file.
const IDENTITY_BYTES: usize = 1024;
/// Bytes read per `read` call.
const CHUNK: usize = 64 * 1024;

/// Where reading a file stopped, as persisted in the state directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Position {
    /// Device of the file.
    pub device: u64,
    /// Inode of the file.
    pub inode: u64,
    /// Bytes consumed: the offset after the last complete line read.
    pub offset: u64,
    /// SHA-256 (hex) of the first line, up to 1 KiB; empty until the file
    /// has a complete first line.
    #[serde(default)]
    pub first_line_sha256: String,
    /// Whether the offset is inside an over-long line being skipped.
    #[serde(default)]
    pub skipping: bool,
}

/// Why a poll could not read the file. The tailer logs it once per change
/// of state and keeps trying on later polls.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// The path is not a regular file.
    #[error("{path} is a {kind}, not a regular file; not reading it")]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// Reading failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// An open file and how far it was read.
struct Open {
    /// The handle, kept across rotations so the old file can be finished.
    file: File,
    /// What was consumed.
    position: Position,
}

/// Follows one path.
pub struct Tailer {
    /// The path followed.
    path: PathBuf,
    /// The file currently named by the path, once opened.
    current: Option<Open>,
    /// A rotated-away file still being finished.
    draining: Option<Open>,
    /// A persisted position not yet matched against the file on disk.
    resume: Option<Position>,
    /// Whether a file found on the first poll without a saved position is
    /// read from its start (`true`) or only for new lines.
    read_existing: bool,
    /// Whether the first poll happened.
    started: bool,
    /// The last error reported, so each is logged once.
    last_error: Option<String>,
}

impl Tailer {
    /// Follows `path`, resuming at `position` when given.
    pub fn new(path: PathBuf, position: Option<Position>, read_existing: bool) -> Self {
        Tailer {
            path,
            current: None,
            draining: None,
            resume: position,
            read_existing,
            started: false,
            last_error: None,
        }
    }

    /// The path followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The position to persist once everything read so far is delivered:
    /// the rotated file's while it is being finished, else the current one's.
    pub fn checkpoint(&self) -> Option<Position> {
        match (&self.draining, &self.current) {
            (Some(open), _) | (None, Some(open)) => Some(open.position.clone()),
            (None, None) => self.resume.clone(),
        }
    }

    /// Reads what is new, calling `emit(line, truncated)` per complete line
    /// until it returns `false`.
    pub fn poll(
        &mut self,
        max_line: usize,
        emit: &mut impl FnMut(&[u8], bool) -> bool,
    ) -> Result<(), TailError> {
        let result = self.poll_inner(max_line, emit);
        let message = result.as_ref().err().map(ToString::to_string);
        if message != self.last_error {
            match &message {
                Some(message) => tracing::warn!(path = %self.path.display(), "{message}"),
                None => tracing::info!(path = %self.path.display(), "reading the log file again"),
            }
            self.last_error = message;
        }
        result
    }

    fn poll_inner(
        &mut self,
        max_line: usize,
        emit: &mut impl FnMut(&[u8], bool) -> bool,
    ) -> Result<(), TailError> {
        let first_poll = !self.started;
        self.started = true;
        if let Some(mut old) = self.draining.take() {
            let finished = self.read(&mut old, max_line, emit)?;
            if !finished {
                self.draining = Some(old);
                return Ok(());
            }
        }
        let metadata = match std::fs::metadata(&self.path) {
            Ok(metadata) => Some(metadata),
            Err(error) if error.kind() == ErrorKind::NotFound => None,
            Err(source) => {
                return Err(TailError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        if let Some(metadata) = &metadata
            && !metadata.is_file()
        {
            // Keep finishing what we had; the path itself is unusable.
            if let Some(mut current) = self.current.take() {
                self.read(&mut current, max_line, emit)?;
                self.current = Some(current);
            }
            return Err(TailError::NotAFile {
                path: self.path.clone(),
                kind: file_kind(metadata),
            });
        }
        match (self.current.take(), metadata) {
            (Some(mut current), None) => {
                // Renamed away and not yet recreated: finish it, keep waiting.
                self.read(&mut current, max_line, emit)?;
                self.current = Some(current);
                Ok(())
            }
            (Some(mut current), Some(metadata)) => {
                if (metadata.dev(), metadata.ino())
                    != (current.position.device, current.position.inode)
                {
                    // Rotated: finish the old file, then start the new one.
                    let finished = self.read(&mut current, max_line, emit)?;
                    let new = self.open(0)?;
                    if !finished {
                        self.draining = Some(current);
                        self.current = new;
                        return Ok(());
                    }
                    self.current = new;
                    return match self.current.take() {
                        Some(mut new) => {
                            let result = self.read(&mut new, max_line, emit);
                            self.current = Some(new);
                            result.map(|_| ())
                        }
                        None => Ok(()),
                    };
                }
                if self.was_truncated(&mut current, &metadata)? {
                    tracing::info!(path = %self.path.display(), "log file was truncated, reading it from the start");
                    current.position.offset = 0;
                    current.position.skipping = false;
                    current.position.first_line_sha256.clear();
                }
                let result = self.read(&mut current, max_line, emit);
                self.current = Some(current);
                result.map(|_| ())
            }
            (None, None) => Ok(()),
            (None, Some(metadata)) => {
                let start = match self.resume.take() {
                    Some(saved) => self.resume_from(saved, &metadata, max_line, emit)?,
                    None if first_poll && !self.read_existing => metadata.len(),
                    None => 0,
                };
                self.current = self.open(start)?;
                match self.current.take() {
                    Some(mut current) => {
                        if self.draining.is_some() {
                            self.current = Some(current);
                            return Ok(());
                        }
                        let result = self.read(&mut current, max_line, emit);
                        self.current = Some(current);
                        result.map(|_| ())
                    }
                    None => Ok(()),
                }
            }
        }
    }

    /// Matches a persisted position against the file now at the path and
    /// returns the offset to start the current file at. When the saved file
    /// was rotated away, it is looked for in the same directory and, if
    /// found, finished first (it becomes `draining`).
    fn resume_from(
        &mut self,
        saved: Position,
        metadata: &Metadata,
        max_line: usize,
        emit: &mut impl FnMut(&[u8], bool) -> bool,
    ) -> Result<u64, TailError> {
        if (metadata.dev(), metadata.ino()) == (saved.device, saved.inode) {
            let mut probe = match self.open(0)? {
                Some(open) => open,
                None => return Ok(0),
            };
            let same = metadata.len() >= saved.offset
                && (saved.first_line_sha256.is_empty()
                    || first_line_hash(&mut probe.file, &self.path)?.as_deref()
                        == Some(saved.first_line_sha256.as_str()));
            return Ok(if same { saved.offset } else { 0 });
        }
        match self.find_rotated(&saved) {
            Some(file) => {
                tracing::info!(path = %self.path.display(), "finishing the rotated log file read before the restart");
                let mut old = Open {
                    file,
                    position: saved,
                };
                if !self.read(&mut old, max_line, emit)? {
                    self.draining = Some(old);
                }
            }
            None => {
                tracing::warn!(path = %self.path.display(), "the log file read before the restart is gone; its unread lines are lost");
            }
        }
        Ok(0)
    }

    /// Looks for the file with the saved inode next to the path
    /// (`auth.log.1`, `secure-20261128`...).
    fn find_rotated(&self, saved: &Position) -> Option<File> {
        let directory = self.path.parent()?;
        let name = self.path.file_name()?.to_string_lossy().into_owned();
        for entry in std::fs::read_dir(directory).ok()?.flatten() {
            if !entry.file_name().to_string_lossy().starts_with(&name) {
                continue;
            }
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if metadata.is_file() && (metadata.dev(), metadata.ino()) == (saved.device, saved.inode)
            {
                let mut file = open_nonblocking(&entry.path()).ok()?;
                let hash = first_line_hash(&mut file, &entry.path()).ok()?;
                if saved.first_line_sha256.is_empty()
                    || hash.as_deref() == Some(saved.first_line_sha256.as_str())
                {
                    return Some(file);
                }
            }
        }
        None
    }

    /// Opens the path at `offset`; `None` when it vanished meanwhile.
    fn open(&self, offset: u64) -> Result<Option<Open>, TailError> {
        let file = match open_nonblocking(&self.path) {
            Ok(file) => file,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(TailError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let metadata = file.metadata().map_err(|source| TailError::Io {
            path: self.path.clone(),
            source,
        })?;
        if !metadata.is_file() {
            return Err(TailError::NotAFile {
                path: self.path.clone(),
                kind: file_kind(&metadata),
            });
        }
        Ok(Some(Open {
            file,
            position: Position {
                device: metadata.dev(),
                inode: metadata.ino(),
                offset: offset.min(metadata.len()),
                first_line_sha256: String::new(),
                skipping: false,
            },
        }))
    }

    /// Whether the open file was truncated (and possibly rewritten past
    /// the offset) since the last read.
    fn was_truncated(&self, open: &mut Open, metadata: &Metadata) -> Result<bool, TailError> {
        if metadata.len() < open.position.offset {
            return Ok(true);
        }
        if open.position.offset == 0 || open.position.first_line_sha256.is_empty() {
            return Ok(false);
        }
        let hash = first_line_hash(&mut open.file, &self.path)?;
        Ok(hash.as_deref() != Some(open.position.first_line_sha256.as_str()))
    }

    /// Reads `open` from its offset to its end (or until `emit` says stop).
    /// Returns whether the end was reached.
    fn read(
        &self,
        open: &mut Open,
        max_line: usize,
        emit: &mut impl FnMut(&[u8], bool) -> bool,
    ) -> Result<bool, TailError> {
        let io_error = |source| TailError::Io {
            path: self.path.clone(),
            source,
        };
        if open.position.first_line_sha256.is_empty()
            && let Some(hash) = first_line_hash(&mut open.file, &self.path)?
        {
            open.position.first_line_sha256 = hash;
        }
        open.file
            .seek(SeekFrom::Start(open.position.offset))
            .map_err(io_error)?;
        let mut splitter = LineSplitter::new(max_line);
        splitter.skipping = open.position.skipping;
        let mut buffer = vec![0u8; CHUNK];
        let mut filled = 0;
        let stopped = std::cell::Cell::new(false);
        let mut go_on = |line: &[u8], truncated: bool| {
            let keep_going = emit(line, truncated);
            if !keep_going {
                stopped.set(true);
            }
            keep_going
        };
        loop {
            if filled == buffer.len() {
                buffer.resize(buffer.len() * 2, 0);
            }
            let read = match open.file.read(&mut buffer[filled..]) {
                Ok(read) => read,
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => return Err(io_error(error)),
            };
            if read == 0 {
                return Ok(true);
            }
            filled += read;
            let consumed = splitter.split(&buffer[..filled], &mut go_on);
            open.position.offset += consumed as u64;
            open.position.skipping = splitter.skipping;
            if stopped.get() {
                return Ok(false);
            }
            buffer.copy_within(consumed..filled, 0);
            filled -= consumed;
        }
    }
}

/// Opens without blocking, so a FIFO swapped in between `stat` and `open`
/// cannot hang the agent.
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
}

/// SHA-256 of the first line (up to [`IDENTITY_BYTES`]), or `None` while
/// the file has no complete first line.
fn first_line_hash(file: &mut File, path: &Path) -> Result<Option<String>, TailError> {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; IDENTITY_BYTES];
    let read = file.read_at(&mut head, 0).map_err(|source| TailError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let head = &head[..read];
    let line = match memchr::memchr(b'\n', head) {
        Some(end) => &head[..end],
        None if read == IDENTITY_BYTES => head,
        None => return Ok(None),
    };
    Ok(Some(hex::encode(Sha256::digest(line))))
}

fn file_kind(metadata: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let kind = metadata.file_type();
    if kind.is_dir() {
        "directory"
    } else if kind.is_fifo() {
        "FIFO"
    } else if kind.is_socket() {
        "socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "device"
    } else {
        "special file"
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A tailer over a file in a temporary directory, collecting lines.
    struct Fixture {
        dir: tempfile::TempDir,
        tailer: Tailer,
    }

    impl Fixture {
        fn new(read_existing: bool) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("auth.log");
            Fixture {
                tailer: Tailer::new(path, None, read_existing),
                dir,
            }
        }

        fn path(&self) -> PathBuf {
            self.dir.path().join("auth.log")
        }

        fn append(&self, text: &str) {
            self.append_bytes(text.as_bytes());
        }

        fn append_bytes(&self, bytes: &[u8]) {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.path())
                .unwrap();
            file.write_all(bytes).unwrap();
        }

        fn poll(&mut self) -> Vec<String> {
            poll_tailer(&mut self.tailer)
        }
    }

    fn poll_tailer(tailer: &mut Tailer) -> Vec<String> {
        let mut lines = Vec::new();
        let _ = tailer.poll(64, &mut |line, truncated| {
            let mut text = String::from_utf8_lossy(line).into_owned();
            if truncated {
                text.push_str(" [truncated]");
            }
            lines.push(text);
            true
        });
        lines
    }

    #[test]
    fn new_lines_partial_lines_and_invalid_utf8() {
        let mut fixture = Fixture::new(true);
        assert!(fixture.poll().is_empty(), "missing file: nothing yet");
        fixture.append("one\ntw");
        assert_eq!(fixture.poll(), vec!["one"]);
        fixture.append_bytes(b"o\n\xff\n");
        assert_eq!(
            fixture.poll(),
            vec!["two".to_string(), "\u{fffd}".to_string()]
        );
        assert!(fixture.poll().is_empty());
    }

    #[test]
    fn a_file_present_at_first_start_is_read_from_its_end_unless_asked() {
        let mut fixture = Fixture::new(false);
        fixture.append("old\n");
        assert!(fixture.poll().is_empty());
        fixture.append("new\n");
        assert_eq!(fixture.poll(), vec!["new"]);
        let mut fixture = Fixture::new(true);
        fixture.append("old\n");
        assert_eq!(fixture.poll(), vec!["old"]);
    }

    #[test]
    fn a_file_appearing_later_is_read_from_its_start() {
        let mut fixture = Fixture::new(false);
        assert!(fixture.poll().is_empty());
        fixture.append("first\n");
        assert_eq!(fixture.poll(), vec!["first"]);
    }

    #[test]
    fn rotation_by_rename_finishes_the_old_file_first() {
        let mut fixture = Fixture::new(true);
        fixture.append("a\n");
        assert_eq!(fixture.poll(), vec!["a"]);
        // Written after our last read, then rotated away.
        fixture.append("b\n");
        std::fs::rename(fixture.path(), fixture.dir.path().join("auth.log.1")).unwrap();
        assert_eq!(fixture.poll(), vec!["b"]);
        fixture.append("c\n");
        assert_eq!(fixture.poll(), vec!["c"]);
        // Rotation with the new file already written to.
        fixture.append("d\n");
        std::fs::rename(fixture.path(), fixture.dir.path().join("auth.log.2")).unwrap();
        fixture.append("e\n");
        assert_eq!(fixture.poll(), vec!["d", "e"]);
    }

    #[test]
    fn copytruncate_and_truncation_restart_at_zero() {
        let mut fixture = Fixture::new(true);
        fixture.append("first line\nsecond line\n");
        assert_eq!(fixture.poll().len(), 2);
        // copytruncate: copy away, truncate in place, new lines follow.
        std::fs::copy(fixture.path(), fixture.dir.path().join("auth.log.1")).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(fixture.path())
            .unwrap();
        fixture.append("x\n");
        assert_eq!(fixture.poll(), vec!["x"]);
        // Truncated and rewritten past the old offset before we looked:
        // the first line differs, so it is a new file.
        std::fs::write(fixture.path(), "REPLACED the first line entirely\nmore\n").unwrap();
        assert_eq!(
            fixture.poll(),
            vec!["REPLACED the first line entirely", "more"]
        );
    }

    #[test]
    fn long_lines_are_capped_and_marked() {
        let mut fixture = Fixture::new(true);
        fixture.append(&"y".repeat(200));
        fixture.append("\nshort\n");
        let lines = fixture.poll();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], format!("{} [truncated]", "y".repeat(64)));
        assert_eq!(lines[1], "short");
    }

    #[test]
    fn a_directory_or_fifo_in_place_of_the_file_is_refused_without_blocking() {
        let mut fixture = Fixture::new(true);
        std::fs::create_dir(fixture.path()).unwrap();
        let error = fixture.tailer.poll(64, &mut |_, _| true).unwrap_err();
        assert!(error.to_string().contains("is a directory"), "{error}");
        std::fs::remove_dir(fixture.path()).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            fixture.path(),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let error = fixture.tailer.poll(64, &mut |_, _| true).unwrap_err();
        assert!(error.to_string().contains("is a FIFO"), "{error}");
        std::fs::remove_file(fixture.path()).unwrap();
        fixture.append("back\n");
        assert_eq!(fixture.poll(), vec!["back"]);
    }

    #[test]
    fn a_restart_resumes_exactly_at_the_checkpoint() {
        let mut fixture = Fixture::new(true);
        fixture.append("1\n2\n");
        assert_eq!(fixture.poll(), vec!["1", "2"]);
        let committed = fixture.tailer.checkpoint().unwrap();
        // Read but never acknowledged: a crash loses the in-memory position.
        fixture.append("3\n");
        assert_eq!(fixture.poll(), vec!["3"]);
        fixture.append("4\n");
        let mut restarted = Tailer::new(fixture.path(), Some(committed), false);
        assert_eq!(poll_tailer(&mut restarted), vec!["3", "4"]);
        assert!(poll_tailer(&mut restarted).is_empty());
    }

    #[test]
    fn a_restart_after_a_rotation_finishes_the_rotated_file() {
        let mut fixture = Fixture::new(true);
        fixture.append("1\n");
        assert_eq!(fixture.poll(), vec!["1"]);
        let committed = fixture.tailer.checkpoint().unwrap();
        fixture.append("2\n");
        std::fs::rename(fixture.path(), fixture.dir.path().join("auth.log.1")).unwrap();
        fixture.append("3\n");
        let mut restarted = Tailer::new(fixture.path(), Some(committed.clone()), false);
        assert_eq!(poll_tailer(&mut restarted), vec!["2", "3"]);
        // When the rotated file is gone too, the new file is read whole.
        std::fs::remove_file(fixture.dir.path().join("auth.log.1")).unwrap();
        let mut restarted = Tailer::new(fixture.path(), Some(committed), false);
        assert_eq!(poll_tailer(&mut restarted), vec!["3"]);
    }

    #[test]
    fn a_stopped_poll_checkpoints_the_line_it_stopped_after() {
        let mut fixture = Fixture::new(true);
        fixture.append("a\nb\nc\n");
        let mut seen = Vec::new();
        fixture
            .tailer
            .poll(64, &mut |line, _| {
                seen.push(line.to_vec());
                seen.len() < 2
            })
            .unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(fixture.tailer.checkpoint().unwrap().offset, 4);
        assert_eq!(fixture.poll(), vec!["c"]);
    }
}
