//! `distinct`: fire when `count` distinct values of a field (user names
//! tried by one address, say) fall within a sliding `window` for one key.
//! Values are kept as hashes with the latest hit of each.

use super::{Hit, expire, push_bounded};

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
