//! `new_value`: fire the first time a combination of values is seen for a
//! key (a user logging in from an address never seen for them), once the
//! rule's learning period is over. Values are remembered as hashes, at most
//! `max_values` per key, oldest forgotten first.

use super::{Hit, push_bounded};

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
