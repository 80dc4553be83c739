//! The ipvs collector: the kernel's IP Virtual Server (LVS load balancer)
//! from /proc/net/ip_vs_stats and /proc/net/ip_vs, as node_exporter 1.5
//! serves it with its default labels: the totals
//! (`node_ipvs_connections_total`, incoming and outgoing packets and
//! bytes) and per backend `node_ipvs_backend_connections_active`,
//! `..._inactive` and `node_ipvs_backend_weight`, labelled
//! `local_address`, `local_port`, `remote_address`, `remote_port`, `proto`
//! and `local_mark` (a firewall-mark service has a mark and no address).
//! Backends listed twice with the same labels are summed, as
//! node_exporter sums them.
//!
//! A host without the ip_vs module has no /proc/net/ip_vs_stats: the
//! collector is reported as failed, as node_exporter does, and does not
//! look again.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use countywatch_wire::{MetricFamily, MetricKind};

use super::file_probe::FileProbe;
use super::parse_error::ProbeParseError;

/// The probe reading `<procfs>/net/ip_vs_stats` and `<procfs>/net/ip_vs`.
pub fn probe(procfs: &Path, _sysfs: &Path) -> FileProbe {
    FileProbe::new(
        "ipvs",
        vec![procfs.join("net/ip_vs_stats"), procfs.join("net/ip_vs")],
        parse,
    )
}

/// The backend labels, node_exporter's default `--collector.ipvs.backend-labels`.
const BACKEND_LABELS: [&str; 6] = [
    "local_address",
    "local_port",
    "remote_address",
    "remote_port",
    "proto",
    "local_mark",
];

/// The totals: the family's name after `node_ipvs_` and its help, in the
/// order of ip_vs_stats' columns.
const TOTALS: [(&str, &str); 5] = [
    ("connections_total", "The total number of connections made."),
    (
        "incoming_packets_total",
        "The total number of incoming packets.",
    ),
    (
        "outgoing_packets_total",
        "The total number of outgoing packets.",
    ),
    ("incoming_bytes_total", "The total amount of incoming data."),
    ("outgoing_bytes_total", "The total amount of outgoing data."),
];

/// One backend (real server) line with its service's labels.
#[derive(Debug, PartialEq)]
pub struct Backend {
    /// The [`BACKEND_LABELS`] values, in that order.
    pub labels: [String; 6],
    /// `ActiveConn`.
    pub active: u64,
    /// `InActConn`.
    pub inactive: u64,
    /// `Weight`.
    pub weight: u64,
}

/// ip_vs_stats and ip_vs to the totals and the backend families.
pub fn parse(texts: &[Option<String>]) -> Result<Vec<MetricFamily>, ProbeParseError> {
    let stats = texts
        .first()
        .and_then(Option::as_ref)
        .ok_or(ProbeParseError::Malformed("no ip_vs_stats"))?;
    let table = texts
        .get(1)
        .and_then(Option::as_ref)
        .ok_or(ProbeParseError::Malformed(
            "could not get backend status: no /proc/net/ip_vs",
        ))?;
    let totals = totals(stats)?;
    let backends = backends(table)?;
    Ok(families(&totals, &backends))
}

/// The five totals: hexadecimal, on ip_vs_stats' third line.
pub fn totals(text: &str) -> Result<[u64; 5], ProbeParseError> {
    let mut lines = text.splitn(4, '\n');
    let line = lines
        .nth(2)
        .ok_or(ProbeParseError::Malformed("ip_vs_stats corrupt: too short"))?;
    if lines.next().is_none() {
        return Err(ProbeParseError::Malformed("ip_vs_stats corrupt: too short"));
    }
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(ProbeParseError::Malformed(
            "ip_vs_stats corrupt: unexpected number of fields",
        ));
    }
    let mut totals = [0_u64; 5];
    for (total, field) in totals.iter_mut().zip(fields) {
        *total = u64::from_str_radix(field, 16)
            .map_err(|_| ProbeParseError::not_a(field, "hexadecimal").in_part("ip_vs_stats"))?;
    }
    Ok(totals)
}

/// The backends of /proc/net/ip_vs. A service line (`TCP  C0A80016:0CEA
/// wlc`, `FWM  10001000 wlc`) sets the labels of the `->` lines under it;
/// other lines (headers, protocols node_exporter does not know, such as
/// SCTP) are skipped, and the backends under an unknown protocol count
/// for the service before it, as node_exporter counts them.
pub fn backends(text: &str) -> Result<Vec<Backend>, ProbeParseError> {
    let mut found = Vec::new();
    let (mut proto, mut mark, mut address, mut port) =
        (String::new(), String::new(), String::new(), 0_u16);
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(&first), Some(&second)) = (fields.first(), fields.get(1)) else {
            continue;
        };
        match first {
            "IP" | "Prot" => {}
            _ if second == "RemoteAddress:Port" => {}
            "TCP" | "UDP" => {
                proto = first.to_string();
                mark.clear();
                (address, port) = address_and_port(second)?;
            }
            "FWM" => {
                proto = first.to_string();
                mark = second.to_string();
                address.clear();
                port = 0;
            }
            "->" if fields.len() >= 6 => {
                let (remote_address, remote_port) = address_and_port(second)?;
                let number = |index: usize| {
                    fields[index].parse::<u64>().map_err(|_| {
                        ProbeParseError::not_a(fields[index], "a number").in_part("ip_vs")
                    })
                };
                found.push(Backend {
                    labels: [
                        address.clone(),
                        port.to_string(),
                        remote_address,
                        remote_port.to_string(),
                        proto.clone(),
                        mark.clone(),
                    ],
                    weight: number(3)?,
                    active: number(4)?,
                    inactive: number(5)?,
                });
            }
            _ => {}
        }
    }
    Ok(found)
}

/// `C0A80016:0CEA` (IPv4 in hexadecimal) or
/// `[2620:0000:...:0001]:0050` (IPv6 written out) to the address as Go
/// prints it and the port.
pub fn address_and_port(text: &str) -> Result<(String, u16), ProbeParseError> {
    let unexpected = || ProbeParseError::AddressAndPort {
        text: text.to_string(),
    };
    let address = match text.len() {
        13 => {
            let bits = u32::from_str_radix(text.get(..8).ok_or_else(unexpected)?, 16)
                .map_err(|_| unexpected())?;
            Ipv4Addr::from(bits).to_string()
        }
        46 => {
            let inner = text.get(1..40).ok_or_else(unexpected)?;
            let address: Ipv6Addr = inner.parse().map_err(|_| ProbeParseError::Ipv6Address {
                text: inner.to_string(),
            })?;
            // Go prints an IPv4-mapped address in dotted form.
            match address.to_ipv4_mapped() {
                Some(mapped) => mapped.to_string(),
                None => address.to_string(),
            }
        }
        _ => return Err(unexpected()),
    };
    let port_text = text.get(text.len() - 4..).ok_or_else(unexpected)?;
    let port = u16::from_str_radix(port_text, 16).map_err(|_| unexpected())?;
    Ok((address, port))
}

/// The five totals and, when there are backends, their three families,
/// backends with equal labels summed.
pub fn families(totals: &[u64; 5], backends: &[Backend]) -> Vec<MetricFamily> {
    let mut families: Vec<MetricFamily> = TOTALS
        .iter()
        .zip(totals)
        .map(|((name, help), value)| {
            MetricFamily::single(
                format!("node_ipvs_{name}"),
                *help,
                MetricKind::Counter,
                *value as f64,
            )
        })
        .collect();
    let mut sums: BTreeMap<&[String; 6], [u64; 3]> = BTreeMap::new();
    for backend in backends {
        let sum = sums.entry(&backend.labels).or_default();
        sum[0] = sum[0].wrapping_add(backend.active);
        sum[1] = sum[1].wrapping_add(backend.inactive);
        sum[2] = sum[2].wrapping_add(backend.weight);
    }
    if sums.is_empty() {
        return families;
    }
    let mut backend_families = [
        (
            "node_ipvs_backend_connections_active",
            "The current active connections by local and remote address.",
        ),
        (
            "node_ipvs_backend_connections_inactive",
            "The current inactive connections by local and remote address.",
        ),
        (
            "node_ipvs_backend_weight",
            "The current backend weight by local and remote address.",
        ),
    ]
    .map(|(name, help)| MetricFamily::new(name, help, MetricKind::Gauge));
    for (labels, sum) in sums {
        let pairs: Vec<(&str, &str)> = BACKEND_LABELS
            .iter()
            .copied()
            .zip(labels.iter().map(String::as_str))
            .collect();
        for (family, value) in backend_families.iter_mut().zip(sum) {
            family.push(&pairs, value as f64);
        }
    }
    families.extend(backend_families);
    families
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ip_vs_stats as ip_vs_ctl.c prints it: two header lines, the
    /// totals, a blank line, then the rates.
    const STATS: &str = "   Total Incoming Outgoing         Incoming         Outgoing
   Conns  Packets  Packets            Bytes            Bytes
      16AA370 E33656E5        0    51D8C8883AB3        0

 Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s
       4 1FB3C           0          1282A8F                0
";

    /// A director with an IPv4 service (two real servers, one of them
    /// listed twice), an IPv6 service, a firewall-mark service and an
    /// SCTP service node_exporter does not know.
    const TABLE: &str = "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  C0A80016:0CEA wlc
  -> C0A85216:0CEA      Tunnel  100    248        2
  -> C0A85215:0CEA      Tunnel  100    248        1
  -> C0A85215:0CEA      Tunnel  50     2          1
TCP  [2620:0000:0000:0000:0000:0000:0000:0001]:0050 sed
  -> [2620:0000:0000:0000:0000:0000:0000:0002]:0050      Route   1      0          0
FWM  10001000 wlc
  -> C0A8321A:0CEA      Route   0      0          1
SCTP  C0A80017:0CEA wlc
  -> C0A8321B:0CEA      Route   5      7          0
";

    fn texts(stats: &str, table: &str) -> Vec<Option<String>> {
        vec![Some(stats.to_string()), Some(table.to_string())]
    }

    #[test]
    fn totals_and_backends_with_node_exporters_default_labels() {
        let families = parse(&texts(STATS, TABLE)).unwrap();
        assert_eq!(
            crate::probe::first_values(&families[..5]),
            vec![
                ("node_ipvs_connections_total", 23_765_872.0),
                ("node_ipvs_incoming_packets_total", 3_811_989_221.0),
                ("node_ipvs_outgoing_packets_total", 0.0),
                ("node_ipvs_incoming_bytes_total", 89_991_519_156_915.0),
                ("node_ipvs_outgoing_bytes_total", 0.0),
            ]
        );
        let active = &families[5];
        assert_eq!(active.name, "node_ipvs_backend_connections_active");
        let series: Vec<(Vec<&str>, f64)> = active
            .samples
            .iter()
            .map(|sample| {
                let names: Vec<&str> = sample.labels.iter().map(|l| l.0.as_ref()).collect();
                assert_eq!(names, BACKEND_LABELS);
                (
                    sample.labels.iter().map(|l| l.1.as_ref()).collect(),
                    sample.value,
                )
            })
            .collect();
        let expected: Vec<(Vec<&str>, f64)> = vec![
            (
                vec!["", "0", "192.168.50.26", "3306", "FWM", "10001000"],
                0.0,
            ),
            (
                vec!["", "0", "192.168.50.27", "3306", "FWM", "10001000"],
                7.0,
            ),
            (
                vec!["192.168.0.22", "3306", "192.168.82.21", "3306", "TCP", ""],
                250.0,
            ),
            (
                vec!["192.168.0.22", "3306", "192.168.82.22", "3306", "TCP", ""],
                248.0,
            ),
            (vec!["2620::1", "80", "2620::2", "80", "TCP", ""], 0.0),
        ];
        assert_eq!(series, expected);
        let weight = &families[7];
        assert_eq!(weight.name, "node_ipvs_backend_weight");
        assert_eq!(
            weight.samples[2].value, 150.0,
            "repeated backends are summed"
        );
        assert_eq!(families[6].samples[0].value, 1.0);
    }

    #[test]
    fn addresses_print_as_go_prints_them() {
        assert_eq!(
            address_and_port("0A000001:01BB"),
            Ok(("10.0.0.1".to_string(), 443))
        );
        assert_eq!(
            address_and_port("[0000:0000:0000:0000:0000:ffff:0a00:0001]:0050"),
            Ok(("10.0.0.1".to_string(), 80))
        );
        assert!(address_and_port("C0A80016").is_err());
        assert!(address_and_port("ZZZZZZZZ:0CEA").is_err());
    }

    #[test]
    fn a_director_without_services_serves_only_the_totals() {
        let table = "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n";
        let families = parse(&texts(STATS, table)).unwrap();
        assert_eq!(families.len(), 5);
    }

    #[test]
    fn corrupt_files_are_errors_not_panics() {
        assert!(parse(&texts("short\n", TABLE)).is_err());
        assert!(parse(&texts("a\nb\n1 2 3\n\n", TABLE)).is_err());
        assert!(parse(&texts(STATS, "TCP  nonsense wlc\n")).is_err());
        assert!(parse(&texts(STATS, "->\nTCP\n  -> C0A8321A:0CEA Route 1 0\n")).is_ok());
        assert!(parse(&texts(STATS, "  -> C0A8321A:0CEA Route x 0 1\n")).is_err());
        assert!(parse(&[Some(STATS.to_string()), None]).is_err());
    }
}
