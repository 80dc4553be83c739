//! `new_value`: fire the first time a combination of values is seen for a
//! key (a user logging in from an address never seen for them), once the
//! rule's learning period is over. Values are remembered as hashes, at most
//! `max_values` per key, oldest forgotten first.

use countywatch_config::config_file::{Problems, Spanned};
use countywatch_wire::Event;
use serde::Deserialize;

use super::{Hit, Kind, MatchContext, push_bounded, stable_hash};
use crate::condition::Scope;
use crate::field::Field;
use crate::rulefmt::{MAX_COUNT, MAX_LEARNING, count, field, window};

/// `new_value:` as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    /// The fields whose combination is remembered per key.
    pub fields: Spanned<Vec<Spanned<String>>>,
    /// After the rule's first event, only learn for this long.
    #[serde(default)]
    pub learning: Option<Spanned<String>>,
    /// Most values remembered per key (oldest forgotten first).
    #[serde(default)]
    pub max_values: Option<Spanned<u64>>,
}

/// A new combination of `fields` for the key.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Remembered fields.
    pub fields: Vec<Field>,
    /// Learning period, ms.
    pub learning_ms: i64,
    /// Most values per key.
    pub max_values: usize,
}

/// The new-value kind; a key remembers the hashes of the values seen,
/// oldest first.
pub struct NewValue;

impl Kind for NewValue {
    type Raw = Raw;
    const EXAMPLE: &'static str = "{fields: [user]}";
    type Spec = Spec;
    type State = Vec<u64>;

    fn validate(problems: &mut Problems, _: &Scope, raw: &Raw) -> Option<Spec> {
        let mut fields = Vec::new();
        for name in &raw.fields.value {
            fields.extend(field(problems, name));
        }
        if raw.fields.value.is_empty() {
            problems.at(&raw.fields, "new_value needs at least one field");
        }
        let learning_ms = match &raw.learning {
            Some(text) if text.value == "0" => 0,
            Some(text) => window(problems, "learning", text, MAX_LEARNING),
            None => 0,
        };
        let max_values = raw
            .max_values
            .as_ref()
            .map_or(100, |value| count(problems, "max_values", value, MAX_COUNT));
        Some(Spec {
            fields,
            learning_ms,
            max_values,
        })
    }

    fn parameters(spec: &Spec) -> String {
        format!(
            "{:?}",
            spec.fields
                .iter()
                .map(|field| field.name())
                .collect::<Vec<_>>()
        )
    }

    fn retention_ms(_: &Spec) -> i64 {
        // Remembered values are the state itself.
        i64::MAX
    }

    fn initial_state(_: &Spec, _: Hit) -> Vec<u64> {
        Vec::new()
    }

    fn on_match(
        spec: &Spec,
        seen: &mut Vec<u64>,
        event: &Event,
        hit: Hit,
        context: &mut MatchContext<'_>,
    ) -> Option<Vec<Hit>> {
        let value = &mut *context.value_buffer;
        value.clear();
        for field in &spec.fields {
            if let Some(found) = field.get(event) {
                found.write_to(value);
            }
            value.push('\u{1f}');
        }
        let learning_until = context.first_event_ms.saturating_add(spec.learning_ms);
        on_match(
            seen,
            stable_hash(value.as_bytes()),
            hit,
            learning_until,
            spec.max_values,
        )
    }

    fn first_heap_word(seen: &Vec<u64>) -> Option<i64> {
        seen.first().map(|value| *value as i64)
    }

    fn heap_bytes(seen: &Vec<u64>) -> usize {
        seen.capacity() * size_of::<u64>()
    }
}

/// Remembers `value_hash`; fires when it was new and learning is over.
pub fn on_match(
    seen: &mut Vec<u64>,
    value_hash: u64,
    hit: Hit,
    learning_until_ms: i64,
    max_values: usize,
) -> Option<Vec<Hit>> {
    if let Some(index) = seen.iter().position(|hash| *hash == value_hash) {
        // Recently used values are forgotten last.
        seen.remove(index);
        seen.push(value_hash);
        return None;
    }
    if seen.len() >= max_values {
        seen.remove(0);
    }
    push_bounded(seen, value_hash, max_values);
    (hit.at_ms >= learning_until_ms).then(|| vec![hit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_values_fire_after_learning_only() {
        let mut seen = Vec::new();
        let hit = |at_ms| Hit { at_ms, id: 0 };
        assert_eq!(on_match(&mut seen, 1, hit(10), 100, 2), None);
        assert_eq!(on_match(&mut seen, 1, hit(200), 100, 2), None);
        assert!(on_match(&mut seen, 2, hit(200), 100, 2).is_some());
        // 1 is forgotten when 3 arrives (capacity 2), so it is new again.
        assert!(on_match(&mut seen, 3, hit(300), 100, 2).is_some());
        assert!(on_match(&mut seen, 1, hit(300), 100, 2).is_some());
    }
}
