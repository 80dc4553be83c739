//! A wall clock the tests move by hand: Debian's libfaketime, preloaded into
//! a daemon or a CLI run, reads the time (or an offset from the real time)
//! from a file on every call, while the monotonic clock, which timers use,
//! stays real.
//!
//! The file is replaced by a rename, never rewritten in place: libfaketime
//! rereads it on every clock call, and a reader that opened it between the
//! truncation and the write of `std::fs::write` would see an empty file and
//! fall back to the real time for that one call. A single read of the real
//! date in the middle of a synthetic month was enough to make the county
//! report test see an agent report from the future.
//!
//! The preloaded library is the package's thread-safe build,
//! `libfaketimeMT`. The plain `libfaketime` rereads the file into one
//! static buffer that it first resets to `+0` (the real time), with no
//! lock: in a daemon whose threads read the clock at once, a thread that
//! parses the buffer inside that window gets the real time. A C program
//! with four threads reading the clock saw the real date 6 to 9 times in
//! 800,000 reads with the plain build and never with the MT build; in the
//! county report test one such read by the history writer (on its own
//! thread) wrote every hour up to today's real date, and the rest of the
//! synthetic month was lost.

use std::path::{Path, PathBuf};

/// The preloaded library of Debian's `libfaketime` package, the build
/// that serialises clock reads (see above).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// The file a faked clock reads and the `env` arguments that fake it.
pub struct FakeClock {
    file: PathBuf,
}

impl FakeClock {
    /// A clock read from `file`, which starts at `initial` (libfaketime's
    /// syntax: `+0`, `-2h`, or an absolute `YYYY-MM-DD hh:mm:ss`).
    pub fn new(file: &Path, initial: &str) -> FakeClock {
        let clock = FakeClock {
            file: file.to_path_buf(),
        };
        clock.write(initial);
        clock
    }

    /// Sets the clock to `text` (libfaketime's syntax) atomically.
    pub fn write(&self, text: &str) {
        let staging = self.file.with_extension("next");
        std::fs::write(&staging, format!("{text}\n")).unwrap();
        std::fs::rename(&staging, &self.file).unwrap();
    }

    /// Sets the clock to the instant `ms` (Unix milliseconds), read as UTC.
    pub fn set_ms(&self, ms: i64) {
        let utc = jiff::Timestamp::from_millisecond(ms)
            .unwrap()
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string();
        self.write(&utc);
    }

    /// The `env` arguments that run a program on this clock.
    pub fn wrapper(&self) -> Vec<String> {
        vec![
            "env".to_string(),
            format!("LD_PRELOAD={LIBFAKETIME}"),
            format!("FAKETIME_TIMESTAMP_FILE={}", self.file.display()),
            "FAKETIME_NO_CACHE=1".to_string(),
            "DONT_FAKE_MONOTONIC=1".to_string(),
        ]
    }
}
