//! `threshold`: fire when `count` matches for one key fall within a sliding
//! `window`. Only the latest `count` hits are kept: count >= N within the
//! window exactly when the N-th latest hit is inside it.

use super::{Hit, expire, push_bounded};

/// Adds `hit`; returns the hits that fired (and forgets them) once `count`
/// are within `window_ms`.
pub fn on_match(hits: &mut Vec<Hit>, hit: Hit, count: usize, window_ms: i64) -> Option<Vec<Hit>> {
    expire(hits, |h| *h, hit.at_ms, window_ms);
    if hits.len() >= count {
        hits.drain(..=hits.len() - count);
    }
    // A key holds at most `count` hits, usually few: doubling up to that.
    push_bounded(hits, hit, count);
    (hits.len() >= count).then(|| std::mem::take(hits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(at_ms: i64) -> Hit {
        Hit { at_ms, id: at_ms }
    }

    #[test]
    fn fires_on_the_nth_hit_within_the_window_and_starts_over() {
        let mut hits = Vec::new();
        for at in [0, 10, 20] {
            assert_eq!(on_match(&mut hits, hit(at), 4, 100), None);
        }
        let fired = on_match(&mut hits, hit(30), 4, 100).unwrap();
        assert_eq!(fired.len(), 4);
        assert!(hits.is_empty());
        assert_eq!(on_match(&mut hits, hit(40), 4, 100), None);
    }

    #[test]
    fn hits_slide_out_of_the_window() {
        let mut hits = Vec::new();
        for at in [0, 50, 100, 160] {
            assert_eq!(on_match(&mut hits, hit(at), 4, 100), None);
        }
        // 0 and 50 are more than 100 ms before 170.
        assert_eq!(on_match(&mut hits, hit(170), 4, 100), None);
        assert_eq!(hits.len(), 3);
        assert!(on_match(&mut hits, hit(180), 4, 100).is_some());
    }
}
