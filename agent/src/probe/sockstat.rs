//! The sockstat collector: /proc/net/sockstat and sockstat6 as
//! node_exporter serves them: `node_sockstat_sockets_used` and
//! `node_sockstat_<PROTOCOL>_<state>` gauges (`TCP_inuse`, `TCP_tw`,
//! `UDP_mem`, ...), with `_mem_bytes` beside every `_mem` (pages).

use std::path::Path;

use countywatch_wire::{MetricFamily, MetricKind};

use super::file_probe::FileProbe;
use super::parse_error::ProbeParseError;

/// The states node_exporter reports; others are skipped as it does.
const STATES: [&str; 6] = ["inuse", "orphan", "tw", "alloc", "mem", "memory"];

/// The probe reading both tables (sockstat6 is absent without IPv6).
pub fn probe(procfs: &Path, _sysfs: &Path) -> FileProbe {
    FileProbe::new(
        "sockstat",
        vec![procfs.join("net/sockstat"), procfs.join("net/sockstat6")],
        |texts| {
            let page_size = rustix::param::page_size() as f64;
            let mut families = Vec::new();
            for text in texts.iter().flatten() {
                families.extend(parse(text, page_size)?);
            }
            Ok(families)
        },
    )
}

/// Turns one sockstat table into families, in file order.
pub fn parse(text: &str, page_size: f64) -> Result<Vec<MetricFamily>, ProbeParseError> {
    let mut families = Vec::new();
    for line in text.lines() {
        let Some((protocol, pairs)) = line.split_once(':') else {
            continue;
        };
        let fields: Vec<&str> = pairs.split_whitespace().collect();
        if !fields.len().is_multiple_of(2) {
            return Err(ProbeParseError::OddFields {
                protocol: protocol.to_string(),
            });
        }
        for pair in fields.chunks(2) {
            let (state, value) = (pair[0], pair[1]);
            let value = value
                .parse::<f64>()
                .map_err(|_| ProbeParseError::FieldValue {
                    field: format!("{protocol} {state}"),
                    value: value.to_string(),
                })?;
            if protocol == "sockets" {
                if state == "used" {
                    families.push(MetricFamily::single(
                        "node_sockstat_sockets_used",
                        "Number of IPv4 sockets in use.",
                        MetricKind::Gauge,
                        value,
                    ));
                }
                continue;
            }
            if !STATES.contains(&state) {
                continue;
            }
            let mut push = |state: &str, value: f64| {
                let name = format!("node_sockstat_{protocol}_{state}");
                if countywatch_wire::is_valid_metric_name(&name) {
                    families.push(MetricFamily::single(
                        name,
                        format!("Number of {protocol} sockets in state {state}."),
                        MetricKind::Gauge,
                        value,
                    ));
                }
            };
            push(state, value);
            if state == "mem" {
                push("mem_bytes", value * page_size);
            }
        }
    }
    Ok(families)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_as_node_exporter_names_them() {
        // A Debian 12 (6.1) host's table; 3.10 kernels have the same lines.
        let text = "sockets: used 16\nTCP: inuse 2 orphan 0 tw 2 alloc 2 mem 224\n\
UDP: inuse 0 mem 3\nFRAG: inuse 0 memory 0\nXDP: inuse 0 weird 9\n";
        let got: Vec<(String, f64)> = parse(text, 4096.0)
            .unwrap()
            .into_iter()
            .map(|family| (family.name.to_string(), family.samples[0].value))
            .collect();
        let want: Vec<(String, f64)> = [
            ("node_sockstat_sockets_used", 16.0),
            ("node_sockstat_TCP_inuse", 2.0),
            ("node_sockstat_TCP_orphan", 0.0),
            ("node_sockstat_TCP_tw", 2.0),
            ("node_sockstat_TCP_alloc", 2.0),
            ("node_sockstat_TCP_mem", 224.0),
            ("node_sockstat_TCP_mem_bytes", 917504.0),
            ("node_sockstat_UDP_inuse", 0.0),
            ("node_sockstat_UDP_mem", 3.0),
            ("node_sockstat_UDP_mem_bytes", 12288.0),
            ("node_sockstat_FRAG_inuse", 0.0),
            ("node_sockstat_FRAG_memory", 0.0),
            ("node_sockstat_XDP_inuse", 0.0),
        ]
        .iter()
        .map(|(name, value)| (name.to_string(), *value))
        .collect();
        assert_eq!(got, want);
        let six = parse("TCP6: inuse 1\nFRAG6: inuse 0 memory 0\n", 4096.0).unwrap();
        assert_eq!(six[0].name, "node_sockstat_TCP6_inuse");
        assert_eq!(six[0].help, "Number of TCP6 sockets in state inuse.");
        assert!(parse("TCP: inuse\n", 4096.0).is_err());
        assert!(parse("TCP: inuse x\n", 4096.0).is_err());
    }
}
