//! The netstat collector: the protocol counters of /proc/net/netstat,
//! /proc/net/snmp and /proc/net/snmp6 as node_exporter serves them,
//! `node_netstat_<Protocol>_<Field>` untyped, filtered by node_exporter's
//! default `--collector.netstat.fields` (TCP retransmits and resets, SYN
//! cookies, listen overflows, UDP and ICMP errors, IP octets).

use std::collections::BTreeMap;
use std::path::Path;

use countywatch_wire::{MetricFamily, MetricKind};

use super::file_probe::FileProbe;
use super::parse_error::ProbeParseError;

/// The probe reading the three tables; snmp6 is missing on hosts booted
/// with IPv6 disabled, which node_exporter accepts too.
pub fn probe(procfs: &Path, _sysfs: &Path) -> FileProbe {
    FileProbe::new(
        "netstat",
        vec![
            procfs.join("net/netstat"),
            procfs.join("net/snmp"),
            procfs.join("net/snmp6"),
        ],
        |texts| {
            let text = |index: usize| texts.get(index).and_then(Option::as_deref);
            parse(text(0).unwrap_or_default(), text(1), text(2))
        },
    )
}

/// node_exporter's default field filter
/// (`^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$`),
/// without a regex engine.
fn reported(protocol: &str, field: &str) -> bool {
    let key_ends_with = |suffix: &str| {
        field == suffix
            || field
                .strip_suffix(suffix)
                .is_some_and(|head| head.ends_with('_'))
    };
    if key_ends_with("InErrors") || key_ends_with("InErrs") {
        return true;
    }
    match protocol {
        "Ip" => field == "Forwarding",
        "Ip6" | "IpExt" => matches!(field, "InOctets" | "OutOctets"),
        "Icmp" | "Icmp6" => matches!(field, "InMsgs" | "OutMsgs"),
        "TcpExt" => {
            field.starts_with("Listen")
                || field.starts_with("Syncookies")
                || matches!(field, "TCPSynRetrans" | "TCPTimeouts")
        }
        "Tcp" => matches!(
            field,
            "ActiveOpens"
                | "InSegs"
                | "OutSegs"
                | "OutRsts"
                | "PassiveOpens"
                | "RetransSegs"
                | "CurrEstab"
        ),
        "Udp" | "Udp6" => matches!(
            field,
            "InDatagrams" | "OutDatagrams" | "NoPorts" | "RcvbufErrors" | "SndbufErrors"
        ),
        _ => false,
    }
}

/// Adds a header/value table (`Tcp: A B\nTcp: 1 2`, as in /proc/net/netstat
/// and /proc/net/snmp) to `stats`.
fn add_paired(
    text: &str,
    stats: &mut BTreeMap<String, (String, f64)>,
) -> Result<(), ProbeParseError> {
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let (Some((protocol, names)), Some((value_protocol, values))) =
            (names.split_once(':'), values.split_once(':'))
        else {
            return Err(ProbeParseError::line("line without a protocol:", names));
        };
        if protocol != value_protocol {
            return Err(ProbeParseError::ProtocolMismatch {
                header: protocol.to_string(),
                values: value_protocol.to_string(),
            });
        }
        let names: Vec<&str> = names.split_whitespace().collect();
        let values: Vec<&str> = values.split_whitespace().collect();
        if names.len() != values.len() {
            return Err(ProbeParseError::FieldCount {
                protocol: protocol.to_string(),
            });
        }
        for (field, value) in names.into_iter().zip(values) {
            add(stats, protocol, field, value)?;
        }
    }
    Ok(())
}

/// Adds /proc/net/snmp6 (`Ip6InOctets   123` lines) to `stats`: the
/// protocol is the name up to its first `6`.
fn add_snmp6(
    text: &str,
    stats: &mut BTreeMap<String, (String, f64)>,
) -> Result<(), ProbeParseError> {
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(name), Some(value)) = (fields.next(), fields.next()) else {
            continue;
        };
        if let Some(six) = name.find('6') {
            add(stats, &name[..=six], &name[six + 1..], value)?;
        }
    }
    Ok(())
}

fn add(
    stats: &mut BTreeMap<String, (String, f64)>,
    protocol: &str,
    field: &str,
    value: &str,
) -> Result<(), ProbeParseError> {
    if !reported(protocol, field) {
        return Ok(());
    }
    let value = value
        .parse::<f64>()
        .map_err(|_| ProbeParseError::FieldValue {
            field: format!("{protocol}{field}"),
            value: value.to_string(),
        })?;
    stats.insert(
        format!("{protocol}_{field}"),
        (format!("{protocol}{field}"), value),
    );
    Ok(())
}

/// Turns the three tables into families, sorted by name.
pub fn parse(
    netstat: &str,
    snmp: Option<&str>,
    snmp6: Option<&str>,
) -> Result<Vec<MetricFamily>, ProbeParseError> {
    let mut stats = BTreeMap::new();
    add_paired(netstat, &mut stats)?;
    add_paired(snmp.unwrap_or_default(), &mut stats)?;
    add_snmp6(snmp6.unwrap_or_default(), &mut stats)?;
    Ok(stats
        .into_iter()
        .map(|(key, (statistic, value))| {
            MetricFamily::single(
                format!("node_netstat_{key}"),
                format!("Statistic {statistic}."),
                MetricKind::Untyped,
                value,
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Abridged from a Debian 12 (6.1) host. A CentOS 7 (3.10) kernel has
    // fewer columns (no Ip OutTransmits, no TcpExt TCPMigrateReq*) but the
    // same layout, which is all the parser relies on.
    const NETSTAT: &str = "TcpExt: SyncookiesSent SyncookiesRecv ListenOverflows ListenDrops TCPTimeouts TCPSynRetrans PruneCalled\n\
TcpExt: 1 2 3 4 5 6 7\n\
IpExt: InNoRoutes InOctets OutOctets\n\
IpExt: 0 1000 2000\n";
    const SNMP: &str = "Ip: Forwarding DefaultTTL InReceives\nIp: 2 64 3320\n\
Icmp: InMsgs InErrors OutMsgs\nIcmp: 1 0 9\n\
Tcp: RtoAlgorithm ActiveOpens PassiveOpens CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts\n\
Tcp: 1 10 11 2 100 200 3 0 4\n\
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors\n\
Udp: 50 1 0 60 0 0 0\n\
UdpLite: InDatagrams InErrors\nUdpLite: 0 0\n";
    const SNMP6: &str = "Ip6InReceives                   \t1\nIp6InOctets \t 700\n\
Icmp6InMsgs 3\nUdp6InDatagrams 8\nUdpLite6InErrors 0\n";

    #[test]
    fn default_fields_from_the_three_tables() {
        let families = parse(NETSTAT, Some(SNMP), Some(SNMP6)).unwrap();
        let got = crate::probe::first_values(&families);
        assert_eq!(
            got,
            vec![
                ("node_netstat_Icmp6_InMsgs", 3.0),
                ("node_netstat_Icmp_InErrors", 0.0),
                ("node_netstat_Icmp_InMsgs", 1.0),
                ("node_netstat_Icmp_OutMsgs", 9.0),
                ("node_netstat_Ip6_InOctets", 700.0),
                ("node_netstat_IpExt_InOctets", 1000.0),
                ("node_netstat_IpExt_OutOctets", 2000.0),
                ("node_netstat_Ip_Forwarding", 2.0),
                ("node_netstat_TcpExt_ListenDrops", 4.0),
                ("node_netstat_TcpExt_ListenOverflows", 3.0),
                ("node_netstat_TcpExt_SyncookiesRecv", 2.0),
                ("node_netstat_TcpExt_SyncookiesSent", 1.0),
                ("node_netstat_TcpExt_TCPSynRetrans", 6.0),
                ("node_netstat_TcpExt_TCPTimeouts", 5.0),
                ("node_netstat_Tcp_ActiveOpens", 10.0),
                ("node_netstat_Tcp_CurrEstab", 2.0),
                ("node_netstat_Tcp_InErrs", 0.0),
                ("node_netstat_Tcp_InSegs", 100.0),
                ("node_netstat_Tcp_OutRsts", 4.0),
                ("node_netstat_Tcp_OutSegs", 200.0),
                ("node_netstat_Tcp_PassiveOpens", 11.0),
                ("node_netstat_Tcp_RetransSegs", 3.0),
                ("node_netstat_Udp6_InDatagrams", 8.0),
                ("node_netstat_UdpLite6_InErrors", 0.0),
                ("node_netstat_UdpLite_InErrors", 0.0),
                ("node_netstat_Udp_InDatagrams", 50.0),
                ("node_netstat_Udp_InErrors", 0.0),
                ("node_netstat_Udp_NoPorts", 1.0),
                ("node_netstat_Udp_OutDatagrams", 60.0),
                ("node_netstat_Udp_RcvbufErrors", 0.0),
                ("node_netstat_Udp_SndbufErrors", 0.0),
            ]
        );
        assert_eq!(families[0].help, "Statistic Icmp6InMsgs.");
        assert_eq!(families[0].kind, MetricKind::Untyped);
        // Without IPv6 the other two tables still count.
        assert_eq!(parse(NETSTAT, Some(SNMP), None).unwrap().len(), 27);
    }

    #[test]
    fn a_mismatched_table_fails_the_collector() {
        assert!(parse("Tcp: A B\nTcp: 1\n", None, None).is_err());
        assert!(parse("Tcp: A\nUdp: 1\n", None, None).is_err());
        assert!(parse("Tcp: ActiveOpens\nTcp: x\n", None, None).is_err());
    }
}
