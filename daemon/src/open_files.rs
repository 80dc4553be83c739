//! The open-file limit a daemon runs under. Every connection is a file, so
//! a collector with thousands of agents needs more than the 1,024 files a
//! login shell's soft limit allows. The systemd units raise it
//! (`LimitNOFILE=`); a daemon started by hand raises its own soft limit to
//! the hard limit, as Go programs (Prometheus, Alertmanager) do at start,
//! so that it behaves the same under both.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// The soft limit before and after [`raise_to_hard_limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFileLimit {
    /// The soft limit the process started with (`None`: unlimited).
    pub before: Option<u64>,
    /// The soft limit now (`None`: unlimited).
    pub now: Option<u64>,
}

/// Raises the soft limit on open files to the hard limit. A refusal leaves
/// the limit as it was: the daemon still runs, with fewer connections.
pub fn raise_to_hard_limit() -> OpenFileLimit {
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        // Refused only by a seccomp filter or an odd kernel; the limit we
        // read back below says what we got.
        let _ = setrlimit(Resource::Nofile, raised);
    }
    OpenFileLimit {
        before,
        now: getrlimit(Resource::Nofile).current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        // Lower the soft limit first, so that the raise has work to do.
        let start = getrlimit(Resource::Nofile);
        let lowered = start.maximum.map_or(1024, |hard| hard.min(1024));
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(lowered),
                maximum: start.maximum,
            },
        )
        .unwrap();
        let limit = raise_to_hard_limit();
        assert_eq!(limit.before, Some(lowered));
        assert_eq!(limit.now, start.maximum);
        assert_eq!(getrlimit(Resource::Nofile).current, start.maximum);
    }
}
