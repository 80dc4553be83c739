//! `sequence`: steps that must match in order for one key, all within
//! `window` of the first step's earliest counted hit ("5 failures, then a
//! success from the same address"). Step 0 slides like a threshold; a later
//! step only counts once every step before it is complete.

use countywatch_config::config_file::{Problems, Spanned};
use countywatch_wire::Event;
use serde::Deserialize;

use super::{Hit, Kind, MatchContext, expire, push_bounded};
use crate::condition::{self, Condition, Scope};
use crate::node::Node;
use crate::rulefmt::{MAX_COUNT, MAX_WINDOW, count, window};

/// `sequence:` as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    /// From the first step's first counted match to the last step's match.
    pub window: Spanned<String>,
    /// The steps, in order.
    pub steps: Spanned<Vec<Spanned<RawStep>>>,
}

/// One step of a sequence.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    /// Which events make the step.
    #[serde(rename = "match")]
    pub match_: Spanned<Node>,
    /// How many matches the step needs (1 by default).
    #[serde(default)]
    pub count: Option<Spanned<u64>>,
}

/// Steps in order within `window_ms`.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Window, ms.
    pub window_ms: i64,
    /// Each step's condition and count.
    pub steps: Vec<(Condition, usize)>,
}

/// Most steps in a sequence: the engine matches them without allocating.
pub const MAX_STEPS: usize = 8;

/// The sequence kind; a key remembers the hits of each step reached so far.
pub struct Sequence;

impl Kind for Sequence {
    type Raw = Raw;
    const EXAMPLE: &'static str = "{window: 5m, steps: [{match: {kind: ssh_login_failed}, count: 2}, {match: {kind: ssh_login_accepted}}]}";
    type Spec = Spec;
    type State = Vec<Vec<Hit>>;

    fn validate(problems: &mut Problems, scope: &Scope, raw: &Raw) -> Option<Spec> {
        let window_ms = window(problems, "window", &raw.window, MAX_WINDOW);
        let raw_steps = &raw.steps;
        if raw_steps.value.len() < 2 || raw_steps.value.len() > MAX_STEPS {
            problems.at(raw_steps, "a sequence needs between 2 and 8 steps");
        }
        let mut steps = Vec::new();
        for step in &raw_steps.value {
            let step_count = step
                .value
                .count
                .as_ref()
                .map_or(1, |value| count(problems, "step count", value, MAX_COUNT));
            if let Some(compiled) = condition::compile(problems, scope, &step.value.match_) {
                steps.push((compiled, step_count));
            }
        }
        Some(Spec { window_ms, steps })
    }

    fn parameters(spec: &Spec) -> String {
        format!(
            "{}/{:?}",
            spec.window_ms,
            spec.steps
                .iter()
                .map(|(_, count)| *count)
                .collect::<Vec<_>>()
        )
    }

    fn retention_ms(spec: &Spec) -> i64 {
        spec.window_ms
    }

    fn initial_state(_: &Spec, _: Hit) -> Vec<Vec<Hit>> {
        Vec::new()
    }

    fn on_match(
        spec: &Spec,
        progress: &mut Vec<Vec<Hit>>,
        _: &Event,
        hit: Hit,
        context: &mut MatchContext<'_>,
    ) -> Option<Vec<Hit>> {
        // At most 8 steps (checked at load): no allocation.
        let mut counts = [0usize; MAX_STEPS];
        for (slot, (_, count)) in counts.iter_mut().zip(&spec.steps) {
            *slot = *count;
        }
        on_match(
            progress,
            context.matched_steps,
            hit,
            &counts[..spec.steps.len().min(counts.len())],
            spec.window_ms,
        )
    }

    fn first_heap_word(progress: &Vec<Vec<Hit>>) -> Option<i64> {
        progress
            .first()
            .and_then(|step| step.first())
            .map(|hit| hit.at_ms)
    }

    fn heap_bytes(progress: &Vec<Vec<Hit>>) -> usize {
        progress.capacity() * size_of::<Vec<Hit>>()
            + progress
                .iter()
                .map(|step| step.capacity() * size_of::<Hit>())
                .sum::<usize>()
    }

    fn steps(spec: &Spec) -> Option<&[(Condition, usize)]> {
        Some(&spec.steps)
    }
}

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
