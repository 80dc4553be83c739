//! `threshold`: fire when `count` matches for one key fall within a sliding
//! `window`. Only the latest `count` hits are kept: count >= N within the
//! window exactly when the N-th latest hit is inside it.

use countywatch_config::config_file::{Problems, Spanned};
use countywatch_wire::Event;
use serde::Deserialize;

use super::{Hit, Kind, MatchContext, expire, push_bounded};
use crate::condition::Scope;
use crate::rulefmt::{MAX_COUNT, MAX_WINDOW, count, window};

/// `threshold:` as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    /// Matches needed.
    pub count: Spanned<u64>,
    /// Sliding window.
    pub window: Spanned<String>,
}

/// `count` matches within `window_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Matches needed.
    pub count: usize,
    /// Window, ms.
    pub window_ms: i64,
}

/// The threshold kind; a key remembers its latest hits within the window,
/// oldest first.
pub struct Threshold;

impl Kind for Threshold {
    type Raw = Raw;
    const EXAMPLE: &'static str = "{count: 3, window: 1m}";
    type Spec = Spec;
    type State = Vec<Hit>;

    fn validate(problems: &mut Problems, _: &Scope, raw: &Raw) -> Option<Spec> {
        let count = count(problems, "threshold count", &raw.count, MAX_COUNT);
        let window_ms = window(problems, "window", &raw.window, MAX_WINDOW);
        Some(Spec { count, window_ms })
    }

    fn parameters(spec: &Spec) -> String {
        format!("{}/{}", spec.count, spec.window_ms)
    }

    fn retention_ms(spec: &Spec) -> i64 {
        spec.window_ms
    }

    fn initial_state(_: &Spec, _: Hit) -> Vec<Hit> {
        Vec::new()
    }

    fn on_match(
        spec: &Spec,
        hits: &mut Vec<Hit>,
        _: &Event,
        hit: Hit,
        _: &mut MatchContext<'_>,
    ) -> Option<Vec<Hit>> {
        on_match(hits, hit, spec.count, spec.window_ms)
    }

    fn first_heap_word(hits: &Vec<Hit>) -> Option<i64> {
        hits.first().map(|hit| hit.at_ms)
    }

    fn heap_bytes(hits: &Vec<Hit>) -> usize {
        hits.capacity() * size_of::<Hit>()
    }
}

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
