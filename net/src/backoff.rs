//! The one retry schedule of everything countywatch sends (remote_write,
//! event forwarding, notifications, the agent's batches and decision
//! polls): exponential, capped, with jitter.

use std::time::Duration;

/// The wait before attempt `attempts + 1` (`attempts` failures so far, at
/// least one): `initial * 2^(attempts-1)` capped at `max`, then drawn
/// uniformly from its upper half. Jitter keeps many senders that lost the
/// same receiver (or many collectors) from retrying in lockstep.
pub fn backoff(attempts: u32, initial: Duration, max: Duration) -> Duration {
    let exponent = attempts.saturating_sub(1).min(30);
    let base = initial.saturating_mul(1u32 << exponent).min(max);
    let half = base / 2;
    half + half.mul_f64(rand::random::<f64>())
}

/// [`backoff`] for one sender that retries until it succeeds: it counts
/// the failures since the last success itself.
pub struct Backoff {
    /// First delay.
    initial: Duration,
    /// Largest delay.
    max: Duration,
    /// Failures since the last success.
    failures: u32,
}

impl Backoff {
    /// A schedule from `initial` doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            failures: 0,
        }
    }

    /// The delay before the next attempt, counting one more failure.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        backoff(self.failures, self.initial, self.max)
    }

    /// Back to the first delay after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let initial = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        for _ in 0..100 {
            let first = backoff(1, initial, max);
            assert!(
                first >= Duration::from_millis(500) && first <= initial,
                "{first:?}"
            );
            let fourth = backoff(4, initial, max);
            assert!(
                fourth >= Duration::from_secs(4) && fourth <= Duration::from_secs(8),
                "{fourth:?}"
            );
            let late = backoff(40, initial, max);
            assert!(late >= Duration::from_secs(30) && late <= max, "{late:?}");
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let first = backoff.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let second = backoff.next_delay();
        assert!(second >= Duration::from_millis(100) && second <= Duration::from_millis(200));
        for _ in 0..30 {
            assert!(backoff.next_delay() <= Duration::from_secs(1));
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
