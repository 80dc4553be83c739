//! What the probe remembers about a device between polls, and the events
//! and counter corrections that follow from comparing a poll with it:
//! 32-bit counters extended across wraps, a reboot (sysUpTime going back)
//! resetting that, interfaces going down or up, the device going away or
//! coming back. Pure: time is a parameter, no IO.

use std::collections::BTreeMap;

use countywatch_wire::{Event, EventKind, EventSource};

use super::if_mib::{Counter, DeviceWalk, ExtraValue};

/// ifOperStatus and ifAdminStatus `up`.
const STATUS_UP: i64 = 1;

/// One 32-bit counter's history.
#[derive(Clone, Copy, Debug, Default)]
struct Wrapped {
    /// The last value the device sent.
    last_raw: u64,
    /// What is added to the raw value: 2^32 per wrap seen.
    offset: u64,
}

/// Which counter of which interface (or extra row).
type CounterKey = (u32, &'static str);

/// The probe's memory of one device.
#[derive(Debug, Default)]
pub struct DeviceState {
    /// Whether the last poll answered; `None` before the first poll.
    reachable: Option<bool>,
    /// sysUpTime at the last successful poll.
    last_uptime: Option<u32>,
    /// ifOperStatus by ifIndex at the last successful poll.
    oper_status: BTreeMap<u32, i64>,
    /// 32-bit counters of interfaces.
    counters: BTreeMap<CounterKey, Wrapped>,
    /// 32-bit counters of extra OIDs, by name and index.
    extra_counters: BTreeMap<(String, String), Wrapped>,
}

/// A uptime this close to 2^32 ticks (497 days) that comes back small is
/// a wrap, not a reboot: one day in hundredths of a second.
const UPTIME_WRAP_WINDOW: u32 = 8_640_000;

impl DeviceState {
    /// Takes a successful poll: extends the walk's 32-bit counters in place
    /// and returns the events it implies, stamped `now_ms`.
    pub fn observe(&mut self, device: &str, walk: &mut DeviceWalk, now_ms: i64) -> Vec<Event> {
        let mut events = Vec::new();
        if self.reachable == Some(false) {
            events.push(event(
                device,
                now_ms,
                EventKind::DeviceReachable,
                None,
                "device answers again",
            ));
        }
        self.reachable = Some(true);

        let rebooted = match (self.last_uptime, walk.sys_uptime) {
            (Some(before), Some(now)) => {
                now < before
                    && !(before > u32::MAX - UPTIME_WRAP_WINDOW && now < UPTIME_WRAP_WINDOW)
            }
            _ => false,
        };
        if rebooted {
            let before = self.last_uptime.unwrap_or_default();
            let now = walk.sys_uptime.unwrap_or_default();
            events.push(event(
                device,
                now_ms,
                EventKind::DeviceRebooted,
                None,
                &format!("sysUpTime went back from {before} to {now}"),
            ));
            // The device restarted its counters: Prometheus sees a reset,
            // which is the truth, so no offset carries over.
            self.counters.clear();
            self.extra_counters.clear();
        }
        if walk.sys_uptime.is_some() {
            self.last_uptime = walk.sys_uptime;
        }

        for (index, interface) in &mut walk.interfaces {
            let label = if interface.name.is_empty() {
                interface.descr.clone()
            } else {
                interface.name.clone()
            };
            if let Some(now) = interface.oper_status {
                let before = self.oper_status.insert(*index, now);
                let admin_up = interface.admin_status == Some(STATUS_UP);
                if let Some(before) = before
                    && admin_up
                    && before != now
                {
                    if before == STATUS_UP {
                        events.push(event(
                            device,
                            now_ms,
                            EventKind::InterfaceDown,
                            Some((&label, *index)),
                            &format!(
                                "ifOperStatus of {label} went from up to {}",
                                status_name(now)
                            ),
                        ));
                    } else if now == STATUS_UP {
                        events.push(event(
                            device,
                            now_ms,
                            EventKind::InterfaceUp,
                            Some((&label, *index)),
                            &format!(
                                "ifOperStatus of {label} went from {} to up",
                                status_name(before)
                            ),
                        ));
                    }
                }
            }
            let counters = &mut interface.counters;
            for (name, counter) in [
                ("in_octets", &mut counters.in_octets),
                ("out_octets", &mut counters.out_octets),
                ("in_errors", &mut counters.in_errors),
                ("out_errors", &mut counters.out_errors),
                ("in_discards", &mut counters.in_discards),
                ("out_discards", &mut counters.out_discards),
            ] {
                if let Some(Counter { value, wide: false }) = counter {
                    *value = extend(self.counters.entry((*index, name)).or_default(), *value);
                }
            }
        }
        // Interfaces that disappeared (a removed card) are forgotten.
        self.oper_status
            .retain(|index, _| walk.interfaces.contains_key(index));
        self.counters
            .retain(|(index, _), _| walk.interfaces.contains_key(index));

        for (name, (_, rows)) in &mut walk.extras {
            for (index, value) in rows.iter_mut() {
                if let ExtraValue::Counter32(raw) = value {
                    let key = (name.clone(), index.clone());
                    *raw = extend(self.extra_counters.entry(key).or_default(), *raw);
                }
            }
        }
        events
    }

    /// Takes a failed poll; returns `device_unreachable` when the device
    /// answered before (or had never been polled).
    pub fn unreachable(&mut self, device: &str, error: &str, now_ms: i64) -> Vec<Event> {
        let was = self.reachable.replace(false);
        if was == Some(false) {
            return Vec::new();
        }
        let mut unreachable = event(device, now_ms, EventKind::DeviceUnreachable, None, error);
        unreachable.fields.reason = Some(error.to_string());
        vec![unreachable]
    }
}

/// The monotonic value of a 32-bit counter: a value below the last one is
/// a wrap (a reboot cleared the history before this is called).
fn extend(history: &mut Wrapped, raw: u64) -> u64 {
    if raw < history.last_raw {
        history.offset += 1 << 32;
    }
    history.last_raw = raw;
    history.offset + raw
}

fn status_name(status: i64) -> &'static str {
    match status {
        1 => "up",
        2 => "down",
        3 => "testing",
        4 => "unknown",
        5 => "dormant",
        6 => "notPresent",
        7 => "lowerLayerDown",
        _ => "an unknown state",
    }
}

fn event(
    device: &str,
    now_ms: i64,
    kind: EventKind,
    interface: Option<(&str, u32)>,
    raw: &str,
) -> Event {
    let mut event = Event::new(now_ms, EventSource::Snmp, kind);
    event.host = device.to_string();
    event.fields.device = Some(device.to_string());
    if let Some((name, index)) = interface {
        event.fields.interface = Some(name.to_string());
        event.fields.if_index = Some(index);
    }
    event.raw = format!("{device}: {raw}");
    event
}

#[cfg(test)]
mod tests {
    use super::super::if_mib::tests::switch_walk;
    use super::*;
    use async_snmp::{Oid, Value, VarBind};

    fn walk_with(changes: &[(&str, Value)]) -> DeviceWalk {
        let mut binds = switch_walk();
        for (oid, value) in changes {
            let oid = Oid::parse(oid).unwrap();
            match binds.iter_mut().find(|bind| bind.oid == oid) {
                Some(bind) => bind.value = value.clone(),
                None => binds.push(VarBind {
                    oid,
                    value: value.clone(),
                }),
            }
        }
        DeviceWalk::from_varbinds(&binds)
    }

    fn kinds(events: &[Event]) -> Vec<&'static str> {
        events.iter().map(|event| event.kind.as_str()).collect()
    }

    const OPER_1: &str = "1.3.6.1.2.1.2.2.1.8.1";
    const ADMIN_1: &str = "1.3.6.1.2.1.2.2.1.7.1";
    const UPTIME: &str = "1.3.6.1.2.1.1.3.0";
    const IN_OCTETS_2: &str = "1.3.6.1.2.1.2.2.1.10.2";

    #[test]
    fn an_admin_up_interface_going_down_and_up_gives_events() {
        let mut state = DeviceState::default();
        assert!(
            state.observe("sw", &mut walk_with(&[]), 1).is_empty(),
            "first poll"
        );
        let down = state.observe("sw", &mut walk_with(&[(OPER_1, Value::Integer(7))]), 2);
        assert_eq!(kinds(&down), ["interface_down"]);
        assert_eq!(down[0].fields.device.as_deref(), Some("sw"));
        assert_eq!(down[0].fields.interface.as_deref(), Some("GE0/0/1"));
        assert_eq!(down[0].fields.if_index, Some(1));
        assert_eq!(down[0].host, "sw");
        assert!(down[0].raw.contains("lowerLayerDown"), "{}", down[0].raw);
        assert!(
            state
                .observe("sw", &mut walk_with(&[(OPER_1, Value::Integer(2))]), 3)
                .is_empty()
        );
        let up = state.observe("sw", &mut walk_with(&[]), 4);
        assert_eq!(kinds(&up), ["interface_up"]);
    }

    #[test]
    fn an_interface_shut_by_the_operator_gives_no_event() {
        let mut state = DeviceState::default();
        state.observe("sw", &mut walk_with(&[]), 1);
        let shut = [(OPER_1, Value::Integer(2)), (ADMIN_1, Value::Integer(2))];
        assert!(state.observe("sw", &mut walk_with(&shut), 2).is_empty());
    }

    #[test]
    fn a_32_bit_counter_is_extended_across_a_wrap_and_reset_by_a_reboot() {
        let mut state = DeviceState::default();
        let in_octets = |walk: &DeviceWalk| walk.interfaces[&2].counters.in_octets.unwrap().value;
        let mut first = walk_with(&[]);
        state.observe("sw", &mut first, 1);
        assert_eq!(in_octets(&first), 4_000_000_000);
        let mut wrapped = walk_with(&[
            (IN_OCTETS_2, Value::Counter32(100)),
            (UPTIME, Value::TimeTicks(200_000)),
        ]);
        assert!(state.observe("sw", &mut wrapped, 2).is_empty());
        assert_eq!(in_octets(&wrapped), (1 << 32) + 100);
        let mut later = walk_with(&[
            (IN_OCTETS_2, Value::Counter32(500)),
            (UPTIME, Value::TimeTicks(300_000)),
        ]);
        state.observe("sw", &mut later, 3);
        assert_eq!(in_octets(&later), (1 << 32) + 500);
        // The 64-bit counter is passed through.
        assert_eq!(
            later.interfaces[&1].counters.in_octets.unwrap().value,
            10_000_000_000
        );
        let mut rebooted = walk_with(&[
            (IN_OCTETS_2, Value::Counter32(50)),
            (UPTIME, Value::TimeTicks(1_000)),
        ]);
        let events = state.observe("sw", &mut rebooted, 4);
        assert_eq!(kinds(&events), ["device_rebooted"]);
        assert!(
            events[0].raw.contains("from 300000 to 1000"),
            "{}",
            events[0].raw
        );
        assert_eq!(in_octets(&rebooted), 50, "a reboot is a real reset");
    }

    #[test]
    fn an_uptime_wrap_is_not_a_reboot() {
        let mut state = DeviceState::default();
        state.observe(
            "sw",
            &mut walk_with(&[(UPTIME, Value::TimeTicks(u32::MAX - 100))]),
            1,
        );
        let events = state.observe("sw", &mut walk_with(&[(UPTIME, Value::TimeTicks(400))]), 2);
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn reachability_changes_once_per_transition() {
        let mut state = DeviceState::default();
        let first = state.unreachable("sw", "no answer", 1);
        assert_eq!(kinds(&first), ["device_unreachable"]);
        assert_eq!(first[0].fields.reason.as_deref(), Some("no answer"));
        assert!(state.unreachable("sw", "no answer", 2).is_empty());
        let back = state.observe("sw", &mut walk_with(&[]), 3);
        assert_eq!(kinds(&back), ["device_reachable"]);
        assert!(state.observe("sw", &mut walk_with(&[]), 4).is_empty());
        assert_eq!(
            kinds(&state.unreachable("sw", "timeout", 5)),
            ["device_unreachable"]
        );
    }
}
