//! SNMP responses as a device (or anyone who can send UDP to the agent's
//! port with a guessed request id) answers a poll: the bytes through
//! async-snmp's public message decoder (v1, v2c and v3 envelopes, BER,
//! every value type; the lenient default and the strict configuration),
//! then the decoded bindings through what the SNMP probe makes of them:
//! the IF-MIB walk, extra OIDs of every type, the per-device state across
//! two polls (counter wraps, reboots, interface changes) and the metric
//! families.
//!
//! Input: a big-endian u16 length, the first response, then the second.
#![no_main]

use async_snmp::compatibility::DecodeConfig;
use async_snmp::message::Message;
use async_snmp::{Oid, VarBind};
use countywatch_agent::probe::snmp::ExtraType;
use countywatch_agent::probe::snmp::if_mib::{self, DeviceWalk};
use countywatch_agent::probe::snmp::state::DeviceState;
use libfuzzer_sys::fuzz_target;

/// Decodes one response and returns its bindings, if it had any.
fn decode(bytes: &[u8]) -> Vec<VarBind> {
    let _ = Message::decode(bytes.to_vec().into(), DecodeConfig::STRICT);
    match Message::decode(bytes.to_vec().into(), DecodeConfig::default()) {
        Ok(outcome) => outcome
            .value
            .into_pdu()
            .map(|pdu| pdu.into_varbinds())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// One poll's mapping, as `SnmpProbe::collect` does it after a poll.
fn poll(state: &mut DeviceState, varbinds: &[VarBind], now_ms: i64) {
    let mut walk = DeviceWalk::from_varbinds(varbinds);
    // Extra OIDs under the subtrees a seed answers, and the root, so that
    // every binding is some extra's row.
    for (name, base, kind) in [
        (
            "fuzz_gauge",
            &[1u32, 3, 6, 1, 2, 1, 2, 2, 1][..],
            ExtraType::Gauge,
        ),
        (
            "fuzz_counter",
            &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1][..],
            ExtraType::Counter,
        ),
        ("fuzz_info", &[1, 3, 6, 1, 2, 1, 1][..], ExtraType::Info),
        ("fuzz_any", &[1, 3][..], ExtraType::Counter),
    ] {
        walk.add_extra(name, kind, &Oid::from_slice(base), varbinds);
    }
    let _ = state.observe("fuzz-device", &mut walk, now_ms);
    let mut families = Vec::new();
    if_mib::families("fuzz-device", &walk, &mut families);
    for family in &families {
        for sample in &family.samples {
            assert!(
                sample.labels.iter().all(|(name, _)| !name.is_empty()),
                "a sample of {} has a label without a name",
                family.name
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((length, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let at = usize::from(u16::from_be_bytes(*length)).min(rest.len());
    let (first, second) = rest.split_at(at);
    let mut state = DeviceState::default();
    poll(&mut state, &decode(first), 1_790_000_000_000);
    let _ = state.unreachable("fuzz-device", "poll failed", 1_790_000_030_000);
    poll(&mut state, &decode(second), 1_790_000_060_000);
});
