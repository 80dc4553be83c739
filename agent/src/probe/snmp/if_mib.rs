//! IF-MIB and SNMPv2-MIB: which OIDs a poll asks for, how the answers
//! become a [`DeviceWalk`], and how that becomes metric families named as
//! snmp_exporter's `if_mib` module names them. Pure: no IO, and any
//! answer (missing columns, wrong types, odd indexes) maps to something
//! without panicking.

use std::collections::BTreeMap;

use async_snmp::{Oid, Value, VarBind};
use countywatch_wire::{DEVICE_INSTANCE_LABEL, MetricFamily, MetricKind};

use super::config::ExtraType;

/// `system` scalars fetched with one GET.
pub const SYS_DESCR: &[u32] = &[1, 3, 6, 1, 2, 1, 1, 1, 0];
/// sysUpTime.0, in hundredths of a second.
pub const SYS_UPTIME: &[u32] = &[1, 3, 6, 1, 2, 1, 1, 3, 0];
/// sysName.0.
pub const SYS_NAME: &[u32] = &[1, 3, 6, 1, 2, 1, 1, 5, 0];

/// ifTable entry (`ifEntry`).
const IF_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 2, 2, 1];
/// ifXTable entry (`ifXEntry`).
const IFX_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1];

/// An IF-MIB column a poll walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Column {
    /// ifDescr (ifTable 2).
    Descr,
    /// ifAdminStatus (ifTable 7).
    AdminStatus,
    /// ifOperStatus (ifTable 8).
    OperStatus,
    /// ifInOctets (ifTable 10), only used without ifHCInOctets.
    InOctets,
    /// ifInDiscards (ifTable 13).
    InDiscards,
    /// ifInErrors (ifTable 14).
    InErrors,
    /// ifOutOctets (ifTable 16), only used without ifHCOutOctets.
    OutOctets,
    /// ifOutDiscards (ifTable 19).
    OutDiscards,
    /// ifOutErrors (ifTable 20).
    OutErrors,
    /// ifName (ifXTable 1).
    Name,
    /// ifHCInOctets (ifXTable 6).
    HcInOctets,
    /// ifHCOutOctets (ifXTable 10).
    HcOutOctets,
    /// ifHighSpeed (ifXTable 15).
    HighSpeed,
    /// ifAlias (ifXTable 18).
    Alias,
}

impl Column {
    /// Every column, in the order they are walked.
    pub const ALL: [Column; 14] = [
        Column::Descr,
        Column::AdminStatus,
        Column::OperStatus,
        Column::InOctets,
        Column::InDiscards,
        Column::InErrors,
        Column::OutOctets,
        Column::OutDiscards,
        Column::OutErrors,
        Column::Name,
        Column::HcInOctets,
        Column::HcOutOctets,
        Column::HighSpeed,
        Column::Alias,
    ];

    /// The column's OID (the table entry plus the column number).
    pub fn oid(self) -> Oid {
        let (entry, column) = self.position();
        Oid::new(entry.iter().copied().chain([column]))
    }

    fn position(self) -> (&'static [u32], u32) {
        match self {
            Column::Descr => (IF_ENTRY, 2),
            Column::AdminStatus => (IF_ENTRY, 7),
            Column::OperStatus => (IF_ENTRY, 8),
            Column::InOctets => (IF_ENTRY, 10),
            Column::InDiscards => (IF_ENTRY, 13),
            Column::InErrors => (IF_ENTRY, 14),
            Column::OutOctets => (IF_ENTRY, 16),
            Column::OutDiscards => (IF_ENTRY, 19),
            Column::OutErrors => (IF_ENTRY, 20),
            Column::Name => (IFX_ENTRY, 1),
            Column::HcInOctets => (IFX_ENTRY, 6),
            Column::HcOutOctets => (IFX_ENTRY, 10),
            Column::HighSpeed => (IFX_ENTRY, 15),
            Column::Alias => (IFX_ENTRY, 18),
        }
    }

    /// The column an OID is an instance of, with the interface index.
    fn of(oid: &[u32]) -> Option<(Column, u32)> {
        Column::ALL.into_iter().find_map(|column| {
            let (entry, number) = column.position();
            match oid.strip_prefix(entry)? {
                [found, index] if *found == number => Some((column, *index)),
                _ => None,
            }
        })
    }
}

/// Counters of one interface, as the device reported them. 32-bit ones
/// become monotonic across wraps in `state`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counters {
    /// ifHCInOctets (64-bit), else ifInOctets (32-bit).
    pub in_octets: Option<Counter>,
    /// ifHCOutOctets (64-bit), else ifOutOctets (32-bit).
    pub out_octets: Option<Counter>,
    /// ifInErrors.
    pub in_errors: Option<Counter>,
    /// ifOutErrors.
    pub out_errors: Option<Counter>,
    /// ifInDiscards.
    pub in_discards: Option<Counter>,
    /// ifOutDiscards.
    pub out_discards: Option<Counter>,
}

/// A counter value and its width on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter {
    /// The value (after wrap extension, once `state` has seen it).
    pub value: u64,
    /// Whether the device sent it as a 64-bit Counter64.
    pub wide: bool,
}

/// One row of the interface tables.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Interface {
    /// ifDescr.
    pub descr: String,
    /// ifName.
    pub name: String,
    /// ifAlias.
    pub alias: String,
    /// ifAdminStatus: 1 up, 2 down, 3 testing.
    pub admin_status: Option<i64>,
    /// ifOperStatus: 1 up, 2 down, 3 testing, 4 unknown, 5 dormant,
    /// 6 notPresent, 7 lowerLayerDown.
    pub oper_status: Option<i64>,
    /// ifHighSpeed, in Mbit/s.
    pub high_speed: Option<u64>,
    /// The traffic and error counters.
    pub counters: Counters,
}

/// The value of an extra OID's row.
#[derive(Clone, Debug, PartialEq)]
pub enum ExtraValue {
    /// A number (gauge, or a counter as sent).
    Number(f64),
    /// A 32-bit counter, extended across wraps by `state`.
    Counter32(u64),
    /// A string for an info metric.
    Text(String),
}

/// What one poll of a device found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceWalk {
    /// sysUpTime.0 in hundredths of a second.
    pub sys_uptime: Option<u32>,
    /// sysName.0.
    pub sys_name: Option<String>,
    /// sysDescr.0.
    pub sys_descr: Option<String>,
    /// Interfaces by ifIndex.
    pub interfaces: BTreeMap<u32, Interface>,
    /// Extra OIDs by metric name: their type and rows by index suffix.
    pub extras: BTreeMap<String, (ExtraType, BTreeMap<String, ExtraValue>)>,
}

/// Longest string kept from a device (ifAlias and sysDescr are free text an
/// operator, or an attacker with write access, typed).
const MAX_TEXT_BYTES: usize = 1024;

impl DeviceWalk {
    /// Builds a walk from the system GET and the column walks' bindings.
    /// Bindings of unexpected OIDs or types are skipped.
    pub fn from_varbinds<'a>(varbinds: impl IntoIterator<Item = &'a VarBind>) -> DeviceWalk {
        let mut walk = DeviceWalk::default();
        for varbind in varbinds {
            walk.add(varbind.oid.arcs(), &varbind.value);
        }
        walk
    }

    fn add(&mut self, oid: &[u32], value: &Value) {
        if oid == SYS_UPTIME {
            self.sys_uptime = value.as_u32();
            return;
        }
        if oid == SYS_NAME {
            self.sys_name = text(value);
            return;
        }
        if oid == SYS_DESCR {
            self.sys_descr = text(value);
            return;
        }
        let Some((column, index)) = Column::of(oid) else {
            return;
        };
        let interface = self.interfaces.entry(index).or_default();
        let counters = &mut interface.counters;
        match column {
            Column::Descr => interface.descr = text(value).unwrap_or_default(),
            Column::Name => interface.name = text(value).unwrap_or_default(),
            Column::Alias => interface.alias = text(value).unwrap_or_default(),
            Column::AdminStatus => interface.admin_status = value.as_i32().map(i64::from),
            Column::OperStatus => interface.oper_status = value.as_i32().map(i64::from),
            Column::HighSpeed => interface.high_speed = value.as_u64(),
            Column::HcInOctets => counters.in_octets = wide(value).or(counters.in_octets),
            Column::HcOutOctets => counters.out_octets = wide(value).or(counters.out_octets),
            // The 32-bit octet counters fill in only where the 64-bit ones
            // are missing, whichever the device sent first.
            Column::InOctets => {
                if !counters.in_octets.is_some_and(|counter| counter.wide) {
                    counters.in_octets = narrow(value);
                }
            }
            Column::OutOctets => {
                if !counters.out_octets.is_some_and(|counter| counter.wide) {
                    counters.out_octets = narrow(value);
                }
            }
            Column::InErrors => counters.in_errors = narrow(value),
            Column::OutErrors => counters.out_errors = narrow(value),
            Column::InDiscards => counters.in_discards = narrow(value),
            Column::OutDiscards => counters.out_discards = narrow(value),
        }
    }

    /// Adds the bindings of an extra OID walk under `name`.
    pub fn add_extra(&mut self, name: &str, kind: ExtraType, base: &Oid, varbinds: &[VarBind]) {
        let (_, rows) = self
            .extras
            .entry(name.to_string())
            .or_insert_with(|| (kind, BTreeMap::new()));
        for varbind in varbinds {
            let Some(suffix) = varbind.oid.arcs().strip_prefix(base.arcs()) else {
                continue;
            };
            let index = suffix
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(".");
            let value = match kind {
                ExtraType::Info => text(&varbind.value).map(ExtraValue::Text),
                ExtraType::Counter => match varbind.value {
                    Value::Counter32(raw) => Some(ExtraValue::Counter32(u64::from(raw))),
                    _ => number(&varbind.value).map(ExtraValue::Number),
                },
                ExtraType::Gauge => number(&varbind.value).map(ExtraValue::Number),
            };
            if let Some(value) = value {
                rows.insert(index, value);
            }
        }
    }
}

fn wide(value: &Value) -> Option<Counter> {
    match value {
        Value::Counter64(raw) => Some(Counter {
            value: *raw,
            wide: true,
        }),
        _ => None,
    }
}

fn narrow(value: &Value) -> Option<Counter> {
    match value {
        Value::Counter32(raw) => Some(Counter {
            value: u64::from(*raw),
            wide: false,
        }),
        _ => None,
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Integer(number) => Some(f64::from(*number)),
        _ => value.as_u64().map(|number| number as f64),
    }
}

/// A device string as UTF-8 (lossy), cut at [`MAX_TEXT_BYTES`].
fn text(value: &Value) -> Option<String> {
    let bytes = value.as_bytes()?;
    let mut text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_TEXT_BYTES)]).into_owned();
    // A cut in the middle of a character leaves a replacement character.
    text.retain(|c| !c.is_control());
    Some(text)
}

/// Appends the walk's families for `device`, named as snmp_exporter's
/// `if_mib` module names them, each sample labelled with the device.
pub fn families(device: &str, walk: &DeviceWalk, out: &mut Vec<MetricFamily>) {
    let device_label = (DEVICE_INSTANCE_LABEL, device);
    let gauge = |name: &'static str, help: &'static str| MetricFamily::new(name, help, MetricKind::Gauge);
    let counter = |name: &'static str, help: &'static str| MetricFamily::new(name, help, MetricKind::Counter);
    if let Some(uptime) = walk.sys_uptime {
        let mut family = gauge(
            "sysUpTime",
            "The time (in hundredths of a second) since the network management portion of the system was last re-initialized. - 1.3.6.1.2.1.1.3",
        );
        family.push(&[device_label], f64::from(uptime));
        out.push(family);
    }
    if let Some(name) = &walk.sys_name {
        let mut family = gauge(
            "sysName",
            "An administratively-assigned name for this managed node. - 1.3.6.1.2.1.1.5",
        );
        family.push(&[("sysName", name), device_label], 1.0);
        out.push(family);
    }
    if let Some(descr) = &walk.sys_descr {
        let mut family = gauge(
            "sysDescr",
            "A textual description of the entity. - 1.3.6.1.2.1.1.1",
        );
        family.push(&[("sysDescr", descr), device_label], 1.0);
        out.push(family);
    }

    let mut admin = gauge(
        "ifAdminStatus",
        "The desired state of the interface (1 up, 2 down, 3 testing). - 1.3.6.1.2.1.2.2.1.7",
    );
    let mut oper = gauge(
        "ifOperStatus",
        "The current operational state of the interface (1 up, 2 down, 3 testing, 4 unknown, 5 dormant, 6 notPresent, 7 lowerLayerDown). - 1.3.6.1.2.1.2.2.1.8",
    );
    let mut speed = gauge(
        "ifHighSpeed",
        "An estimate of the interface's current bandwidth in units of 1,000,000 bits per second. - 1.3.6.1.3.6.1.2.1.31.1.1.1.15",
    );
    let mut hc_in = counter(
        "ifHCInOctets",
        "The total number of octets received on the interface, including framing characters (64-bit). - 1.3.6.1.2.1.31.1.1.1.6",
    );
    let mut hc_out = counter(
        "ifHCOutOctets",
        "The total number of octets transmitted out of the interface, including framing characters (64-bit). - 1.3.6.1.2.1.31.1.1.1.10",
    );
    let mut in_octets = counter(
        "ifInOctets",
        "The total number of octets received on the interface, for interfaces without ifHCInOctets (32-bit, extended across wraps). - 1.3.6.1.2.1.2.2.1.10",
    );
    let mut out_octets = counter(
        "ifOutOctets",
        "The total number of octets transmitted out of the interface, for interfaces without ifHCOutOctets (32-bit, extended across wraps). - 1.3.6.1.2.1.2.2.1.16",
    );
    let mut in_errors = counter(
        "ifInErrors",
        "Inbound packets that contained errors preventing them from being deliverable to a higher-layer protocol. - 1.3.6.1.2.1.2.2.1.14",
    );
    let mut out_errors = counter(
        "ifOutErrors",
        "Outbound packets that could not be transmitted because of errors. - 1.3.6.1.2.1.2.2.1.20",
    );
    let mut in_discards = counter(
        "ifInDiscards",
        "Inbound packets discarded even though no errors had been detected. - 1.3.6.1.2.1.2.2.1.13",
    );
    let mut out_discards = counter(
        "ifOutDiscards",
        "Outbound packets discarded even though no errors had been detected. - 1.3.6.1.2.1.2.2.1.19",
    );
    for (index, interface) in &walk.interfaces {
        let index = index.to_string();
        let labels = [
            ("ifIndex", index.as_str()),
            ("ifName", interface.name.as_str()),
            ("ifAlias", interface.alias.as_str()),
            ("ifDescr", interface.descr.as_str()),
            device_label,
        ];
        let put = |family: &mut MetricFamily, value: Option<f64>| {
            if let Some(value) = value {
                family.push(&labels, value);
            }
        };
        put(
            &mut admin,
            interface.admin_status.map(|status| status as f64),
        );
        put(&mut oper, interface.oper_status.map(|status| status as f64));
        put(&mut speed, interface.high_speed.map(|mbits| mbits as f64));
        let counters = &interface.counters;
        let value = |counter: Option<Counter>| counter.map(|counter| counter.value as f64);
        match counters.in_octets {
            Some(counter) if counter.wide => put(&mut hc_in, Some(counter.value as f64)),
            other => put(&mut in_octets, value(other)),
        }
        match counters.out_octets {
            Some(counter) if counter.wide => put(&mut hc_out, Some(counter.value as f64)),
            other => put(&mut out_octets, value(other)),
        }
        put(&mut in_errors, value(counters.in_errors));
        put(&mut out_errors, value(counters.out_errors));
        put(&mut in_discards, value(counters.in_discards));
        put(&mut out_discards, value(counters.out_discards));
    }
    for family in [
        admin,
        oper,
        speed,
        hc_in,
        hc_out,
        in_octets,
        out_octets,
        in_errors,
        out_errors,
        in_discards,
        out_discards,
    ] {
        if !family.samples.is_empty() {
            out.push(family);
        }
    }

    for (name, (kind, rows)) in &walk.extras {
        let kind = match kind {
            ExtraType::Counter => MetricKind::Counter,
            ExtraType::Gauge | ExtraType::Info => MetricKind::Gauge,
        };
        let mut family =
            MetricFamily::new(name.clone(), "An extra OID from the agent's config.", kind);
        for (index, value) in rows {
            let mut labels: Vec<(&str, &str)> = Vec::with_capacity(3);
            if !index.is_empty() {
                labels.push(("index", index));
            }
            labels.push(device_label);
            match value {
                ExtraValue::Number(number) => family.push_copied(&labels, *number),
                ExtraValue::Counter32(number) => family.push_copied(&labels, *number as f64),
                ExtraValue::Text(text) => {
                    labels.insert(0, (name.as_str(), text.as_str()));
                    family.push_copied(&labels, 1.0);
                }
            }
        }
        if !family.samples.is_empty() {
            out.push(family);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::Bytes;

    fn bind(oid: &str, value: Value) -> VarBind {
        VarBind {
            oid: Oid::parse(oid).unwrap(),
            value,
        }
    }

    fn string(text: &str) -> Value {
        Value::OctetString(Bytes::copy_from_slice(text.as_bytes()))
    }

    /// A walk of a small switch: two interfaces, one with 64-bit counters,
    /// one old port with only 32-bit ones.
    pub(crate) fn switch_walk() -> Vec<VarBind> {
        vec![
            bind(
                "1.3.6.1.2.1.1.1.0",
                string("Huawei Versatile Routing Platform"),
            ),
            bind("1.3.6.1.2.1.1.3.0", Value::TimeTicks(123_456)),
            bind("1.3.6.1.2.1.1.5.0", string("core-sw1")),
            bind("1.3.6.1.2.1.2.2.1.2.1", string("GigabitEthernet0/0/1")),
            bind("1.3.6.1.2.1.2.2.1.2.2", string("Ethernet0/0/2")),
            bind("1.3.6.1.2.1.2.2.1.7.1", Value::Integer(1)),
            bind("1.3.6.1.2.1.2.2.1.7.2", Value::Integer(1)),
            bind("1.3.6.1.2.1.2.2.1.8.1", Value::Integer(1)),
            bind("1.3.6.1.2.1.2.2.1.8.2", Value::Integer(2)),
            bind("1.3.6.1.2.1.2.2.1.10.1", Value::Counter32(5)),
            bind("1.3.6.1.2.1.2.2.1.10.2", Value::Counter32(4_000_000_000)),
            bind("1.3.6.1.2.1.2.2.1.14.1", Value::Counter32(3)),
            bind("1.3.6.1.2.1.2.2.1.16.2", Value::Counter32(77)),
            bind("1.3.6.1.2.1.31.1.1.1.1.1", string("GE0/0/1")),
            bind("1.3.6.1.2.1.31.1.1.1.1.2", string("E0/0/2")),
            bind("1.3.6.1.2.1.31.1.1.1.6.1", Value::Counter64(10_000_000_000)),
            bind(
                "1.3.6.1.2.1.31.1.1.1.10.1",
                Value::Counter64(20_000_000_000),
            ),
            bind("1.3.6.1.2.1.31.1.1.1.15.1", Value::Gauge32(1000)),
            bind("1.3.6.1.2.1.31.1.1.1.18.1", string("uplink to county\u{7}")),
        ]
    }

    fn exposition(walk: &DeviceWalk) -> String {
        let mut families = Vec::new();
        super::families("core-sw1", walk, &mut families);
        let refs: Vec<&MetricFamily> = families.iter().collect();
        let mut text = String::new();
        countywatch_wire::write_text(&mut text, &refs, &[]);
        text
    }

    #[test]
    fn a_switch_walk_maps_to_snmp_exporter_names() {
        let walk = DeviceWalk::from_varbinds(&switch_walk());
        let text = exposition(&walk);
        let port1 = r#"ifIndex="1",ifName="GE0/0/1",ifAlias="uplink to county",ifDescr="GigabitEthernet0/0/1",device_instance="core-sw1""#;
        let port2 = r#"ifIndex="2",ifName="E0/0/2",ifAlias="",ifDescr="Ethernet0/0/2",device_instance="core-sw1""#;
        for line in [
            "sysUpTime{device_instance=\"core-sw1\"} 123456".to_string(),
            "sysName{sysName=\"core-sw1\",device_instance=\"core-sw1\"} 1".to_string(),
            format!("ifOperStatus{{{port1}}} 1"),
            format!("ifOperStatus{{{port2}}} 2"),
            format!("ifAdminStatus{{{port2}}} 1"),
            format!("ifHCInOctets{{{port1}}} 10000000000"),
            format!("ifHCOutOctets{{{port1}}} 20000000000"),
            format!("ifHighSpeed{{{port1}}} 1000"),
            format!("ifInErrors{{{port1}}} 3"),
            // The 64-bit counter wins; the port without one falls back.
            format!("ifInOctets{{{port2}}} 4000000000"),
            format!("ifOutOctets{{{port2}}} 77"),
            "# TYPE ifHCInOctets counter".to_string(),
            "# TYPE ifOperStatus gauge".to_string(),
        ] {
            assert!(text.contains(&line), "missing {line} in\n{text}");
        }
        assert!(!text.contains(&format!("ifInOctets{{{port1}}}")), "{text}");
    }

    #[test]
    fn odd_answers_are_skipped_not_fatal() {
        let walk = DeviceWalk::from_varbinds(&[
            // Wrong types, an index with extra arcs, a foreign OID.
            bind("1.3.6.1.2.1.2.2.1.8.1", string("up")),
            bind("1.3.6.1.2.1.2.2.1.10.1", Value::Counter64(5)),
            bind("1.3.6.1.2.1.2.2.1.8.1.9", Value::Integer(1)),
            bind("1.3.6.1.4.1.9.9.9", Value::Integer(1)),
            bind("1.3.6.1.2.1.1.3.0", string("yesterday")),
            bind(
                "1.3.6.1.2.1.31.1.1.1.1.7",
                Value::OctetString(Bytes::from_static(b"\xff\xfeport")),
            ),
        ]);
        assert_eq!(walk.sys_uptime, None);
        assert_eq!(walk.interfaces[&1].oper_status, None);
        assert_eq!(walk.interfaces[&1].counters.in_octets, None);
        assert_eq!(walk.interfaces[&7].name, "\u{fffd}\u{fffd}port");
        assert_eq!(walk.interfaces.len(), 2);
        let text = exposition(&walk);
        assert!(!text.contains("ifOperStatus"), "{text}");
    }

    #[test]
    fn extra_oids_become_labelled_samples() {
        let mut walk = DeviceWalk::default();
        let base = Oid::parse("1.3.6.1.4.1.2011.5.25.31.1.1.1.1.5").unwrap();
        walk.add_extra(
            "hwEntityCpuUsage",
            ExtraType::Gauge,
            &base,
            &[bind(
                "1.3.6.1.4.1.2011.5.25.31.1.1.1.1.5.16842753",
                Value::Integer(12),
            )],
        );
        let location = Oid::parse("1.3.6.1.2.1.1.6.0").unwrap();
        walk.add_extra(
            "sysLocation",
            ExtraType::Info,
            &location,
            &[bind("1.3.6.1.2.1.1.6.0", string("county hall"))],
        );
        let text = exposition(&walk);
        assert!(
            text.contains("hwEntityCpuUsage{index=\"16842753\",device_instance=\"core-sw1\"} 12"),
            "{text}"
        );
        assert!(
            text.contains(
                "sysLocation{sysLocation=\"county hall\",device_instance=\"core-sw1\"} 1"
            ),
            "{text}"
        );
    }
}
