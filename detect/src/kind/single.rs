//! `single`: every match fires (subject to the rule's cooldown).

use super::Hit;

/// Fires with the one hit.
pub fn on_match(hit: Hit) -> Vec<Hit> {
    vec![hit]
}
