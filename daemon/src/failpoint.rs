//! Test-only crash points: `COUNTYWATCH_FAILPOINT=NAME` makes the process
//! kill itself with SIGKILL when it reaches the point called `NAME`, so
//! that fault-injection tests can stop a daemon inside a window between two
//! durable writes exactly as `kill -9` would, without timing races.
//!
//! Compiled only into debug builds (the ones the tests run): in a release
//! build [`hit`] is empty and the variable is never read, so a packaged
//! daemon cannot be made to crash through its environment.

/// The environment variable naming the point to die at.
pub const FAILPOINT_ENV: &str = "COUNTYWATCH_FAILPOINT";

/// Kills the process with SIGKILL if `COUNTYWATCH_FAILPOINT` is `name`
/// (debug builds only).
pub fn hit(name: &str) {
    #[cfg(debug_assertions)]
    if std::env::var(FAILPOINT_ENV).is_ok_and(|wanted| wanted == name) {
        tracing::error!(failpoint = name, "failpoint reached: killing the process");
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}
