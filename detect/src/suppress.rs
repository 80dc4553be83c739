//! Suppression: what keeps a rule quiet although it matched. Allow-lists
//! (`allow:`, the bastion host's address) make the rule ignore an event
//! entirely, so it does not even count towards a threshold; `cooldown:`
//! keeps a key quiet for a while after it fired, so one attack is one alert
//! rather than one per ten failures. One exception: a rule that blocks its
//! source on the hosts it saw attacked fires again inside its cooldown when
//! the attack reaches a host it has not fired for, so that the block
//! follows the attacker to the next server (the collector adds that host to
//! the incident's decision) instead of waiting out the cooldown.

use countywatch_wire::Event;

use crate::calendar::Calendar;
use crate::response::ResponseScope;
use crate::rulefmt::Rule;

/// Most hosts a key remembers firing for within one cooldown. An attack on
/// more servers than this keeps firing only at the cooldown's pace, which
/// bounds both the memory per key and the detections one key can make.
pub const MAX_HOSTS_FOLLOWED: usize = 32;

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

/// Whether the rule blocks its source on the hosts of its evidence, so its
/// cooldown follows the attack to new hosts.
pub fn blocks_per_host(rule: &Rule) -> bool {
    rule.response
        .as_ref()
        .is_some_and(|response| response.scope == ResponseScope::Host)
}

/// Whether a key cooling down fires anyway for the host hashed `host`: it
/// has not fired for that host yet, and follows fewer than
/// [`MAX_HOSTS_FOLLOWED`].
pub fn follows_to(fired_on: &[u64], host: u64) -> bool {
    fired_on.len() < MAX_HOSTS_FOLLOWED && !fired_on.contains(&host)
}

/// Remembers firing for `host`; a firing outside a cooldown starts the
/// list again, since a new cooldown starts with it.
pub fn remember_host(fired_on: &mut Vec<u64>, host: u64, cooling_down: bool) {
    if !cooling_down {
        fired_on.clear();
    }
    if !fired_on.contains(&host) {
        fired_on.push(host);
    }
}
