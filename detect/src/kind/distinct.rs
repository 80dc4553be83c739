//! `distinct`: fire when `count` distinct values of a field (user names
//! tried by one address, say) fall within a sliding `window` for one key.
//! Values are kept as hashes with the latest hit of each.

use countywatch_config::config_file::{Problems, Spanned};
use countywatch_wire::Event;
use serde::Deserialize;

use super::{Hit, Kind, MatchContext, expire, push_bounded, stable_hash};
use crate::condition::Scope;
use crate::field::Field;
use crate::rulefmt::{MAX_COUNT, MAX_WINDOW, count, field, window};

/// `distinct:` as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    /// The field whose distinct values are counted.
    pub field: Spanned<String>,
    /// Distinct values needed.
    pub count: Spanned<u64>,
    /// Sliding window.
    pub window: Spanned<String>,
}

/// `count` distinct values of `field` within `window_ms`.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Counted field.
    pub field: Field,
    /// Distinct values needed.
    pub count: usize,
    /// Window, ms.
    pub window_ms: i64,
}

/// The distinct kind; a key remembers one hit per distinct value hash,
/// oldest first.
pub struct Distinct;

impl Kind for Distinct {
    type Raw = Raw;
    const EXAMPLE: &'static str = "{field: user, count: 3, window: 1m}";
    type Spec = Spec;
    type State = Vec<(u64, Hit)>;

    fn validate(problems: &mut Problems, _: &Scope, raw: &Raw) -> Option<Spec> {
        let counted = field(problems, &raw.field);
        let count = count(problems, "distinct count", &raw.count, MAX_COUNT);
        let window_ms = window(problems, "window", &raw.window, MAX_WINDOW);
        Some(Spec {
            field: counted?,
            count,
            window_ms,
        })
    }

    fn parameters(spec: &Spec) -> String {
        format!("{}/{}/{}", spec.field.name(), spec.count, spec.window_ms)
    }

    fn retention_ms(spec: &Spec) -> i64 {
        spec.window_ms
    }

    fn initial_state(_: &Spec, _: Hit) -> Vec<(u64, Hit)> {
        Vec::new()
    }

    fn on_match(
        spec: &Spec,
        values: &mut Vec<(u64, Hit)>,
        event: &Event,
        hit: Hit,
        context: &mut MatchContext<'_>,
    ) -> Option<Vec<Hit>> {
        // An event without the counted field is not a value.
        let value = spec.field.get(event)?;
        context.value_buffer.clear();
        value.write_to(context.value_buffer);
        let value_hash = stable_hash(context.value_buffer.as_bytes());
        on_match(values, value_hash, hit, spec.count, spec.window_ms)
    }

    fn first_heap_word(values: &Vec<(u64, Hit)>) -> Option<i64> {
        values.first().map(|(_, hit)| hit.at_ms)
    }

    fn heap_bytes(values: &Vec<(u64, Hit)>) -> usize {
        values.capacity() * size_of::<(u64, Hit)>()
    }
}

/// Adds `hit` with the hash of its value; returns one hit per distinct value
/// (and forgets them) once there are `count` within `window_ms`.
pub fn on_match(
    values: &mut Vec<(u64, Hit)>,
    value_hash: u64,
    hit: Hit,
    count: usize,
    window_ms: i64,
) -> Option<Vec<Hit>> {
    expire(values, |(_, h)| *h, hit.at_ms, window_ms);
    if let Some(index) = values.iter().position(|(hash, _)| *hash == value_hash) {
        // Keep the list oldest first: the value moves to the end.
        values.remove(index);
    }
    push_bounded(values, (value_hash, hit), count);
    (values.len() >= count).then(|| std::mem::take(values).into_iter().map(|(_, h)| h).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(at_ms: i64) -> Hit {
        Hit { at_ms, id: at_ms }
    }

    #[test]
    fn repeats_do_not_count_and_old_values_expire() {
        let mut values = Vec::new();
        assert_eq!(on_match(&mut values, 1, hit(0), 3, 100), None);
        assert_eq!(on_match(&mut values, 1, hit(10), 3, 100), None);
        assert_eq!(on_match(&mut values, 2, hit(20), 3, 100), None);
        assert_eq!(values.len(), 2);
        // Value 1 was last seen at 10: still inside at 105.
        let fired = on_match(&mut values, 3, hit(105), 3, 100).unwrap();
        assert_eq!(
            fired.iter().map(|h| h.at_ms).collect::<Vec<_>>(),
            vec![10, 20, 105]
        );
        let mut values = vec![(1, hit(0)), (2, hit(10))];
        assert_eq!(on_match(&mut values, 3, hit(200), 3, 100), None);
        assert_eq!(values.len(), 1);
    }
}
