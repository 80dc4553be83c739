//! Suppression: what keeps a rule quiet although it matched. Allow-lists
//! (`allow:`, the bastion host's address) make the rule ignore an event
//! entirely, so it does not even count towards a threshold; `cooldown:`
//! keeps a key quiet for a while after it fired, so one attack is one alert
//! rather than one per ten failures.

use countywatch_wire::Event;

use crate::calendar::Calendar;
use crate::rulefmt::Rule;

/// Whether the rule's allow-list covers `event`.
pub fn is_allowed(rule: &Rule, event: &Event, calendar: &Calendar) -> bool {
    rule.allow
        .as_ref()
        .is_some_and(|allow| allow.matches(event, calendar))
}

/// Whether a key that last fired with quiet time until `quiet_until_ms` is
/// still quiet at `at_ms`.
pub fn is_cooling_down(quiet_until_ms: i64, at_ms: i64) -> bool {
    at_ms < quiet_until_ms
}

/// The end of the quiet time after firing at `at_ms`.
pub fn quiet_until(rule: &Rule, at_ms: i64) -> i64 {
    at_ms.saturating_add(rule.cooldown_ms)
}
