//! The one retry schedule of everything the collector sends (remote_write,
//! event forwarding, notifications): exponential, capped, with jitter.

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
}
