//! `absence`: fire when a key that matched before has had no match for
//! `window` ("host web1 sent no heartbeat for 10 minutes"). Matches only
//! record the time; firing happens when the engine's clock advances.

use super::Hit;

/// Records a match: the key is alive again.
pub fn on_match(last: &mut Hit, fired: &mut bool, hit: Hit) {
    if hit.at_ms >= last.at_ms {
        *last = hit;
    }
    *fired = false;
}

/// Whether the key's silence, at `now_ms`, should fire now.
pub fn is_due(last: Hit, fired: bool, now_ms: i64, window_ms: i64) -> bool {
    !fired && now_ms.saturating_sub(last.at_ms) >= window_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_fires_once_until_the_key_is_heard_again() {
        let mut last = Hit { at_ms: 0, id: 1 };
        let mut fired = false;
        assert!(!is_due(last, fired, 50, 100));
        assert!(is_due(last, fired, 100, 100));
        fired = true;
        assert!(!is_due(last, fired, 500, 100));
        on_match(&mut last, &mut fired, Hit { at_ms: 600, id: 2 });
        assert!(!is_due(last, fired, 650, 100));
        assert!(is_due(last, fired, 700, 100));
    }
}
