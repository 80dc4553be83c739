//! `absence`: fire when a key that matched before has had no match for
//! `window` ("host web1 sent no heartbeat for 10 minutes"). Matches only
//! record the time; firing happens when the engine's clock advances.

use countywatch_config::config_file::{Problems, Spanned};
use countywatch_wire::Event;
use serde::{Deserialize, Serialize};

use super::{Hit, Kind, MatchContext};
use crate::condition::Scope;
use crate::rulefmt::{MAX_WINDOW, window};

/// `absence:` as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    /// How long without a match before firing.
    pub window: Spanned<String>,
}

/// No match for `window_ms` from a key seen before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Window, ms.
    pub window_ms: i64,
}

/// What a key remembers: its last hit, and whether its silence was
/// already reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSeen {
    /// The latest matching event.
    pub hit: Hit,
    /// Whether the absence after it has fired.
    pub fired: bool,
}

/// The absence kind.
pub struct Absence;

impl Kind for Absence {
    type Raw = Raw;
    const EXAMPLE: &'static str = "{window: 10m}";
    type Spec = Spec;
    type State = LastSeen;

    fn validate(problems: &mut Problems, _: &Scope, raw: &Raw) -> Option<Spec> {
        let window_ms = window(problems, "window", &raw.window, MAX_WINDOW);
        Some(Spec { window_ms })
    }

    fn parameters(spec: &Spec) -> String {
        format!("{}", spec.window_ms)
    }

    fn retention_ms(_: &Spec) -> i64 {
        // A silent key is the state itself.
        i64::MAX
    }

    fn initial_state(_: &Spec, first: Hit) -> LastSeen {
        LastSeen {
            hit: first,
            fired: false,
        }
    }

    fn on_match(
        _: &Spec,
        last: &mut LastSeen,
        _: &Event,
        hit: Hit,
        _: &mut MatchContext<'_>,
    ) -> Option<Vec<Hit>> {
        on_match(&mut last.hit, &mut last.fired, hit);
        None
    }

    fn first_heap_word(_: &LastSeen) -> Option<i64> {
        None
    }

    fn heap_bytes(_: &LastSeen) -> usize {
        0
    }

    const FIRES_ON_TIME: bool = true;

    fn fire_due(spec: &Spec, last: &mut LastSeen, now_ms: i64) -> Option<Hit> {
        if !is_due(last.hit, last.fired, now_ms, spec.window_ms) {
            return None;
        }
        last.fired = true;
        Some(last.hit)
    }
}

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
