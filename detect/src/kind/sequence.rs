//! `sequence`: steps that must match in order for one key, all within
//! `window` of the first step's earliest counted hit ("5 failures, then a
//! success from the same address"). Step 0 slides like a threshold; a later
//! step only counts once every step before it is complete.

use super::{Hit, expire, push_bounded};

/// Offers `hit`, which matched the steps whose indexes are in `matched`
/// (ascending), to a key's progress. Returns every counted hit when the
/// last step completes, and starts over.
pub fn on_match(
    progress: &mut Vec<Vec<Hit>>,
    matched: &[usize],
    hit: Hit,
    counts: &[usize],
    window_ms: i64,
) -> Option<Vec<Hit>> {
    if progress.len() != counts.len() {
        *progress = Vec::with_capacity(counts.len());
        progress.resize(counts.len(), Vec::new());
    }
    // A sequence that cannot finish in time is abandoned.
    let started = progress[0].first().map(|first| first.at_ms);
    if let Some(start) = started
        && hit.at_ms.saturating_sub(start) > window_ms
        && counts.len() > 1
        && progress[0].len() >= counts[0]
    {
        for step in progress.iter_mut().skip(1) {
            step.clear();
        }
    }
    expire(&mut progress[0], |h| *h, hit.at_ms, window_ms);
    // The latest step the hit can advance: later steps first, so one event
    // matching two steps completes the later one.
    for &step in matched.iter().rev() {
        let ready = (0..step).all(|before| progress[before].len() >= counts[before]);
        if !ready {
            continue;
        }
        if step == 0 && progress[0].len() >= counts[0] {
            // Keep only the latest `count` first-step hits.
            progress[0].remove(0);
        }
        push_bounded(&mut progress[step], hit, counts[step]);
        if step + 1 == counts.len() && progress[step].len() >= counts[step] {
            let fired = progress.iter_mut().flat_map(std::mem::take).collect();
            return Some(fired);
        }
        return None;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(at_ms: i64) -> Hit {
        Hit { at_ms, id: at_ms }
    }

    #[test]
    fn failures_then_success_fires_and_success_alone_does_not() {
        let counts = [3, 1];
        let mut progress = Vec::new();
        assert_eq!(on_match(&mut progress, &[1], hit(0), &counts, 100), None);
        for at in [10, 20, 30] {
            assert_eq!(on_match(&mut progress, &[0], hit(at), &counts, 100), None);
        }
        let fired = on_match(&mut progress, &[1], hit(40), &counts, 100).unwrap();
        assert_eq!(fired.len(), 4);
        assert_eq!(on_match(&mut progress, &[1], hit(50), &counts, 100), None);
    }

    #[test]
    fn a_late_last_step_does_not_fire() {
        let counts = [2, 1];
        let mut progress = Vec::new();
        on_match(&mut progress, &[0], hit(0), &counts, 100);
        on_match(&mut progress, &[0], hit(10), &counts, 100);
        assert_eq!(on_match(&mut progress, &[1], hit(500), &counts, 100), None);
    }
}
