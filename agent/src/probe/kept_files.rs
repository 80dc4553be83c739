//! Pseudo-files a probe reads every collection, kept open between
//! collections and read again from offset 0.
//!
//! The kernel makes a /proc or /sys file's text afresh on every read that
//! starts at offset 0, so an open file answers with the current figures
//! for as long as it stays open. Opening and closing each file every
//! collection was most of the agent's system calls: the network probe
//! alone read 23 attributes per interface, each an `openat`, a `read` and
//! a `close` with a path walk (docs/benchmarks.md, agent_footprint). A
//! kept file costs one `pread` instead.
//!
//! Only files on procfs and sysfs are kept (asked once, with `fstatfs`):
//! a regular file (a test fixture, udev's database) may be replaced by a
//! rename, and a kept descriptor would go on reading the old one. A sysfs
//! file whose device went away answers ENODEV; it is then opened again by
//! its path, once. Whoever owns a [`KeptFiles`] decides how long its files
//! live (the network probe drops an interface's files when the interface
//! goes or is replaced), and the whole agent keeps at most
//! [`MAX_KEPT`] descriptors, so a host with thousands of interfaces
//! does not run the agent out of them: past that, files are opened and
//! closed each time, as before.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Descriptors the agent keeps open at most, over every [`KeptFiles`].
pub const MAX_KEPT: usize = 256;

/// Descriptors kept now.
static KEPT: AtomicUsize = AtomicUsize::new(0);

/// procfs's `f_type` (linux/magic.h).
const PROC_SUPER_MAGIC: i64 = 0x9fa0;
/// sysfs's `f_type` (linux/magic.h).
const SYSFS_MAGIC: i64 = 0x6265_6572;

/// How much one read asks for (see [`super::read_pseudo_file`]).
const READ_SIZE: usize = super::PSEUDO_FILE_READ;

/// Files one probe keeps open, by path.
pub struct KeptFiles {
    /// Every path read so far and whether its file is kept.
    files: HashMap<PathBuf, Kept>,
    /// The count of descriptors kept, agent-wide ([`KEPT`]; tests bring
    /// their own).
    budget: &'static AtomicUsize,
}

impl Default for KeptFiles {
    fn default() -> Self {
        KeptFiles {
            files: HashMap::new(),
            budget: &KEPT,
        }
    }
}

/// What is known of one path.
enum Kept {
    /// Open, counted in the budget it holds.
    Open(File, &'static AtomicUsize),
    /// Opened and closed on each read: not a pseudo-file, no room left, or
    /// the file cannot be read at an offset.
    Reopen,
}

impl Drop for Kept {
    fn drop(&mut self) {
        if let Kept::Open(_, budget) = self {
            budget.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// How much of a file to read.
#[derive(Clone, Copy)]
enum Extent {
    /// Up to the end.
    Whole,
    /// One read of at most this many bytes: a sysfs attribute, which the
    /// kernel hands over whole in the first read.
    Attribute(usize),
}

impl KeptFiles {
    /// The file's whole text, as [`super::read_pseudo_file`] reads it.
    pub fn read_whole(&mut self, path: &Path) -> std::io::Result<String> {
        self.read(path, Extent::Whole)
    }

    /// [`super::read_file`] through the kept file: the path and its text,
    /// or the error a probe reports.
    pub fn read_file(&mut self, path: PathBuf) -> Result<(PathBuf, String), super::ProbeError> {
        match self.read_whole(&path) {
            Ok(text) => Ok((path, text)),
            Err(source) => Err(super::ProbeError::Read { path, source }),
        }
    }

    /// A sysfs attribute's text in one read of at most `limit` bytes (up
    /// to [`super::ATTRIBUTE_MAX`]), as [`super::read_attribute`] reads it.
    pub fn read_attribute(&mut self, path: &Path, limit: usize) -> std::io::Result<String> {
        self.read(path, Extent::Attribute(limit.min(super::ATTRIBUTE_MAX)))
    }

    /// Files kept open now by this owner.
    #[cfg(test)]
    fn open_count(&self) -> usize {
        self.files
            .values()
            .filter(|kept| matches!(kept, Kept::Open(..)))
            .count()
    }

    fn read(&mut self, path: &Path, extent: Extent) -> std::io::Result<String> {
        match self.files.get(path) {
            Some(Kept::Open(file, _)) => match read_at_start(file, extent) {
                // The device behind a sysfs file went away (or was
                // replaced under the same name): open it again by path.
                Err(error) if is_stale(&error) => {
                    self.files.remove(path);
                }
                result => return result,
            },
            Some(Kept::Reopen) => return read_once(File::open(path)?, extent),
            None => {}
        }
        let file = File::open(path)?;
        if !is_pseudo_file(&file) || !take_room(self.budget) {
            self.files.insert(path.to_path_buf(), Kept::Reopen);
            return read_once(file, extent);
        }
        match read_at_start(&file, extent) {
            Ok(text) => {
                self.files
                    .insert(path.to_path_buf(), Kept::Open(file, self.budget));
                Ok(text)
            }
            Err(error) => {
                if error.raw_os_error() == Some(rustix::io::Errno::SPIPE.raw_os_error()) {
                    self.budget.fetch_sub(1, Ordering::Relaxed);
                    // A file that cannot be read at an offset (opened
                    // non-seekable by its driver): read it as a stream,
                    // from a fresh open each time.
                    self.files.insert(path.to_path_buf(), Kept::Reopen);
                    return read_once(File::open(path)?, extent);
                }
                // An attribute that fails (`speed` of a virtual device
                // answers EINVAL, a link down too) is asked again through
                // the same file: each read asks the driver afresh.
                self.files
                    .insert(path.to_path_buf(), Kept::Open(file, self.budget));
                Err(error)
            }
        }
    }
}

/// Whether an error means the file's kernel object is gone.
fn is_stale(error: &std::io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(code) if code == rustix::io::Errno::NODEV.raw_os_error()
            || code == rustix::io::Errno::STALE.raw_os_error()
    )
}

/// Whether the open file lives on procfs or sysfs.
fn is_pseudo_file(file: &File) -> bool {
    rustix::fs::fstatfs(file).is_ok_and(|stat| {
        // `f_type` is a C long: i64 here, i32 on 32-bit targets.
        #[allow(clippy::unnecessary_cast)]
        let kind = stat.f_type as i64;
        kind == PROC_SUPER_MAGIC || kind == SYSFS_MAGIC
    })
}

/// Counts one more kept descriptor, if there is room.
fn take_room(budget: &AtomicUsize) -> bool {
    budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |kept| {
            (kept < MAX_KEPT).then_some(kept + 1)
        })
        .is_ok()
}

// A scratch buffer per thread for `read_at_start`: zeroed once, not at
// every read (a 16 KiB array on the stack was cleared for each of the
// hundred-odd reads per collection), and big enough for the whole text,
// which is then copied out in one allocation of its exact size instead
// of a buffer grown page by page.
thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A scratch buffer that grew past this (a /proc/net table on a busy
/// server) goes back to [`READ_SIZE`] after the read, so a probe thread
/// does not hold on to the largest file it ever read.
const SCRATCH_KEPT: usize = 4 * READ_SIZE;

/// Reads from offset 0, which makes the kernel produce the text afresh.
fn read_at_start(file: &File, extent: Extent) -> std::io::Result<String> {
    SCRATCH.with_borrow_mut(|scratch| {
        let wanted = match extent {
            Extent::Whole => READ_SIZE,
            Extent::Attribute(limit) => limit,
        };
        let mut filled = 0;
        let result = loop {
            if scratch.len() < filled + wanted {
                scratch.resize(filled + wanted, 0);
            }
            let read = match file.read_at(&mut scratch[filled..filled + wanted], filled as u64) {
                Ok(read) => read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => break Err(error),
            };
            filled += read;
            if read == 0 || matches!(extent, Extent::Attribute(_)) {
                break Ok(super::text_from_slice(&scratch[..filled]));
            }
        };
        if scratch.len() > SCRATCH_KEPT {
            scratch.truncate(READ_SIZE);
            scratch.shrink_to_fit();
        }
        result
    })
}

/// Reads a freshly opened file as a stream and closes it.
fn read_once(file: File, extent: Extent) -> std::io::Result<String> {
    match extent {
        Extent::Whole => super::read_stream(file),
        Extent::Attribute(limit) => super::read_attribute_from(file, limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_proc_file_answers_with_fresh_figures_on_every_read() {
        let mut kept = KeptFiles::default();
        let path = Path::new("/proc/self/stat");
        let first = kept.read_whole(path).unwrap();
        assert_eq!(kept.open_count(), 1, "procfs files are kept");
        // Burn some CPU so the process's own counters move.
        let mut spin = 0_u64;
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(50) {
            spin = spin.wrapping_add(std::hint::black_box(1));
        }
        std::hint::black_box(spin);
        let second = kept.read_whole(path).unwrap();
        assert_eq!(kept.open_count(), 1, "read again through the same file");
        assert_ne!(first, second, "the kernel made the text afresh");
        // Same as a fresh read, field for field up to the fault counts.
        let fresh = super::super::read_pseudo_file(path).unwrap();
        assert_eq!(
            second.split(' ').take(9).collect::<Vec<_>>(),
            fresh.split(' ').take(9).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_kept_sysfs_attribute_is_read_like_a_fresh_one() {
        let mut kept = KeptFiles::default();
        let path = Path::new("/sys/class/net/lo/mtu");
        for _ in 0..3 {
            assert_eq!(
                kept.read_attribute(path, 64).unwrap(),
                super::super::read_attribute(path, 64).unwrap()
            );
        }
        assert_eq!(kept.open_count(), 1);
        // An attribute that fails is kept too, and fails the same way
        // each time.
        let speed = Path::new("/sys/class/net/lo/speed");
        for _ in 0..2 {
            let error = kept.read_attribute(speed, 64).unwrap_err();
            let fresh = super::super::read_attribute(speed, 64).unwrap_err();
            assert_eq!(error.raw_os_error(), fresh.raw_os_error());
        }
        assert_eq!(kept.open_count(), 2);
    }

    #[test]
    fn regular_files_are_not_kept_so_a_replaced_file_is_read_anew() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meminfo");
        std::fs::write(&path, "MemTotal: 1 kB\n").unwrap();
        let mut kept = KeptFiles::default();
        assert_eq!(kept.read_whole(&path).unwrap(), "MemTotal: 1 kB\n");
        assert_eq!(kept.open_count(), 0);
        // Replaced by a rename, as udev and cron jobs replace files.
        let next = dir.path().join("next");
        std::fs::write(&next, "MemTotal: 2 kB\n").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert_eq!(kept.read_whole(&path).unwrap(), "MemTotal: 2 kB\n");
        std::fs::remove_file(&path).unwrap();
        let missing = kept.read_whole(&path).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn a_text_larger_than_the_scratch_buffer_is_read_whole_and_the_buffer_shrinks_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("large");
        let text: String = (0..20_000).map(|line| format!("line {line}\n")).collect();
        assert!(text.len() > 2 * SCRATCH_KEPT);
        std::fs::write(&path, &text).unwrap();
        let file = File::open(&path).unwrap();
        assert_eq!(read_at_start(&file, Extent::Whole).unwrap(), text);
        assert!(SCRATCH.with_borrow(Vec::capacity) <= SCRATCH_KEPT);
        // Read again through the same buffer: nothing of the first read
        // is left over, and an attribute read stops at its limit.
        std::fs::write(&path, "short\n").unwrap();
        assert_eq!(read_at_start(&file, Extent::Whole).unwrap(), "short\n");
        assert_eq!(read_at_start(&file, Extent::Attribute(3)).unwrap(), "sho");
    }

    #[test]
    fn the_agent_keeps_at_most_max_kept_and_gives_them_back_when_dropped() {
        static BUDGET: AtomicUsize = AtomicUsize::new(MAX_KEPT - 1);
        let mut kept = KeptFiles {
            files: HashMap::new(),
            budget: &BUDGET,
        };
        kept.read_whole(Path::new("/proc/loadavg")).unwrap();
        assert_eq!(BUDGET.load(Ordering::Relaxed), MAX_KEPT);
        // No room left: read all the same, opened and closed each time.
        let uptime = kept.read_whole(Path::new("/proc/uptime")).unwrap();
        assert!(uptime.ends_with('\n'));
        kept.read_whole(Path::new("/proc/uptime")).unwrap();
        assert_eq!(kept.open_count(), 1);
        assert_eq!(BUDGET.load(Ordering::Relaxed), MAX_KEPT);
        drop(kept);
        assert_eq!(BUDGET.load(Ordering::Relaxed), MAX_KEPT - 1);
    }
}
