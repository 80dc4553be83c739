//! The nfs collector: the NFS client's RPC counters from /proc/net/rpc/nfs,
//! as node_exporter 1.5 serves them: `node_nfs_packets_total{protocol}`,
//! `node_nfs_connections_total`, `node_nfs_rpcs_total`, its retransmissions
//! and authentication refreshes, and `node_nfs_requests_total{proto,method}`
//! for every NFSv2, v3 and v4 procedure, zero where the kernel has no line
//! for a version. Also owns the line format the nfsd collector shares.
//!
//! The file is lines of a key and unsigned numbers (`net 18 0 18 2`); a
//! procedure line starts with its count (`proc3 22 0 12 ...`). As in
//! node_exporter, an unknown key, a count that disagrees with the numbers
//! or a line shorter than the kernel has ever written fails the collection
//! rather than report figures under the wrong names.
//!
//! A host that is not an NFS client has no /proc/net/rpc/nfs (the sunrpc
//! module is not loaded): the collector is absent there and does not look
//! again.

use std::path::Path;

use countywatch_wire::{MetricFamily, MetricKind};

use super::file_probe::FileProbe;
use super::parse_error::ProbeParseError;

/// NFSv2's procedures in the kernel's order, as node_exporter names them.
pub const V2_PROCEDURES: [&str; 18] = [
    "Null", "GetAttr", "SetAttr", "Root", "Lookup", "ReadLink", "Read", "WrCache", "Write",
    "Create", "Remove", "Rename", "Link", "SymLink", "MkDir", "RmDir", "ReadDir", "FsStat",
];

/// NFSv3's procedures in the kernel's order, as node_exporter names them.
pub const V3_PROCEDURES: [&str; 22] = [
    "Null",
    "GetAttr",
    "SetAttr",
    "Lookup",
    "Access",
    "ReadLink",
    "Read",
    "Write",
    "Create",
    "MkDir",
    "SymLink",
    "MkNod",
    "Remove",
    "RmDir",
    "Rename",
    "Link",
    "ReadDir",
    "ReadDirPlus",
    "FsStat",
    "FsInfo",
    "PathConf",
    "Commit",
];

/// The NFSv4 client's procedures in the kernel's order, as node_exporter
/// names them. Older kernels write fewer (a 3.10 kernel about 45); the
/// missing ones are reported as zero, as node_exporter does.
const V4_CLIENT_PROCEDURES: [&str; 59] = [
    "Null",
    "Read",
    "Write",
    "Commit",
    "Open",
    "OpenConfirm",
    "OpenNoattr",
    "OpenDowngrade",
    "Close",
    "Setattr",
    "FsInfo",
    "Renew",
    "SetClientID",
    "SetClientIDConfirm",
    "Lock",
    "Lockt",
    "Locku",
    "Access",
    "Getattr",
    "Lookup",
    "LookupRoot",
    "Remove",
    "Rename",
    "Link",
    "Symlink",
    "Create",
    "Pathconf",
    "StatFs",
    "ReadLink",
    "ReadDir",
    "ServerCaps",
    "DelegReturn",
    "GetACL",
    "SetACL",
    "FsLocations",
    "ReleaseLockowner",
    "Secinfo",
    "FsidPresent",
    "ExchangeID",
    "CreateSession",
    "DestroySession",
    "Sequence",
    "GetLeaseTime",
    "ReclaimComplete",
    "LayoutGet",
    "GetDeviceInfo",
    "LayoutCommit",
    "LayoutReturn",
    "SecinfoNoName",
    "TestStateID",
    "FreeStateID",
    "GetDeviceList",
    "BindConnToSession",
    "DestroyClientID",
    "Seek",
    "Allocate",
    "DeAllocate",
    "LayoutStats",
    "Clone",
];

/// The probe reading `<procfs>/net/rpc/nfs`.
pub fn probe(procfs: &Path, _sysfs: &Path) -> FileProbe {
    FileProbe::new("nfs", vec![procfs.join("net/rpc/nfs")], |texts| {
        parse(texts[0].as_deref().unwrap_or_default())
    })
}

/// The lines of an rpc statistics file as (key, numbers), in order.
pub fn rpc_lines(text: &str) -> impl Iterator<Item = Result<(&str, Vec<u64>), ProbeParseError>> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut fields = line.split_whitespace();
            let key = fields.next().unwrap_or_default();
            // nfsd's `th` line ends in floats; only its first two numbers are read.
            let count = if key == "th" { 2 } else { usize::MAX };
            let numbers = fields
                .take(count)
                .map(|field| field.parse::<u64>())
                .collect::<Result<Vec<u64>, _>>()
                .map_err(|_| ProbeParseError::line("invalid number in the line", line))?;
            if numbers.is_empty() || (key == "th" && numbers.len() < 2) {
                return Err(ProbeParseError::line("too few numbers in the line", line));
            }
            Ok((key, numbers))
        })
}

/// Checks a line holds exactly `count` numbers.
pub fn exactly(key: &str, numbers: &[u64], count: usize) -> Result<(), ProbeParseError> {
    if numbers.len() == count {
        Ok(())
    } else {
        Err(ProbeParseError::NumberCount {
            key: key.to_string(),
            found: numbers.len(),
            expected: count,
        })
    }
}

/// The counts of a procedure line (`22 0 12 ...`: its count, then that
/// many counts), which must hold at least `minimum`.
pub fn procedures<'a>(
    key: &str,
    numbers: &'a [u64],
    minimum: usize,
) -> Result<&'a [u64], ProbeParseError> {
    let (declared, counts) = numbers.split_first().unwrap_or((&0, &[]));
    if usize::try_from(*declared).ok() != Some(counts.len()) || counts.len() < minimum {
        return Err(ProbeParseError::ProcedureCount {
            key: key.to_string(),
            declared: *declared,
            found: counts.len(),
        });
    }
    Ok(counts)
}

/// Adds `names[i]` = `counts[i]` to `requests` under `proto`, zero where
/// the kernel wrote fewer counts, skipping the names in `skip`.
pub fn push_procedures(
    requests: &mut MetricFamily,
    proto: &str,
    names: &[&str],
    counts: &[u64],
    skip: &[&str],
) {
    for (index, name) in names.iter().enumerate() {
        if !skip.contains(name) {
            let count = counts.get(index).copied().unwrap_or(0);
            requests.push(&[("proto", proto), ("method", name)], count as f64);
        }
    }
}

/// The file's text to node_exporter's families.
pub fn parse(text: &str) -> Result<Vec<MetricFamily>, ProbeParseError> {
    let (mut network, mut rpc) = ([0_u64; 4], [0_u64; 3]);
    let (mut v2, mut v3, mut v4) = (Vec::new(), Vec::new(), Vec::new());
    for line in rpc_lines(text) {
        let (key, numbers) = line?;
        match key {
            "net" => {
                exactly(key, &numbers, 4)?;
                network.copy_from_slice(&numbers);
            }
            "rpc" => {
                exactly(key, &numbers, 3)?;
                rpc.copy_from_slice(&numbers);
            }
            "proc2" => v2 = procedures(key, &numbers, V2_PROCEDURES.len())?.to_vec(),
            "proc3" => v3 = procedures(key, &numbers, V3_PROCEDURES.len())?.to_vec(),
            "proc4" => v4 = procedures(key, &numbers, 0)?.to_vec(),
            _ => return Err(ProbeParseError::line("unknown NFS line", key)),
        }
    }
    let counter = MetricKind::Counter;
    let mut packets = MetricFamily::new(
        "node_nfs_packets_total",
        "Total NFSd network packets (sent+received) by protocol type.",
        counter,
    );
    packets.push(&[("protocol", "udp")], network[1] as f64);
    packets.push(&[("protocol", "tcp")], network[2] as f64);
    let mut requests = MetricFamily::new(
        "node_nfs_requests_total",
        "Number of NFS procedures invoked.",
        counter,
    );
    push_procedures(&mut requests, "2", &V2_PROCEDURES, &v2, &[]);
    push_procedures(&mut requests, "3", &V3_PROCEDURES, &v3, &[]);
    push_procedures(&mut requests, "4", &V4_CLIENT_PROCEDURES, &v4, &[]);
    Ok(vec![
        packets,
        MetricFamily::single(
            "node_nfs_connections_total",
            "Total number of NFSd TCP connections.",
            counter,
            network[3] as f64,
        ),
        MetricFamily::single(
            "node_nfs_rpcs_total",
            "Total number of RPCs performed.",
            counter,
            rpc[0] as f64,
        ),
        MetricFamily::single(
            "node_nfs_rpc_retransmissions_total",
            "Number of RPC transmissions performed.",
            counter,
            rpc[1] as f64,
        ),
        MetricFamily::single(
            "node_nfs_rpc_authentication_refreshes_total",
            "Number of RPC authentication refreshes performed.",
            counter,
            rpc[2] as f64,
        ),
        requests,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 6.1 kernel's client file: no proc2 line, 59 NFSv4 procedures.
    const CLIENT_6_1: &str = "net 18 0 18 2
rpc 1218 3 1
proc3 22 1 60 0 22 41 0 830 70 1 0 0 0 2 0 0 0 0 9 1 2 0 3
proc4 59 0 5 6 7 1 0 0 0 1 2 1 0 0 0 0 0 0 4 120 44 1 0 0 0 0 0 0 3 0 0 2 0 0 0 0 0 0 1 1 1 1 900 1 1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 0
";

    /// A 3.10 kernel's (CentOS 7): a proc2 line, 45 NFSv4 procedures.
    const CLIENT_3_10: &str = "net 70 70 0 0
rpc 70 0 0
proc2 18 2 69 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
proc3 22 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
proc4 45 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 9
";

    fn request(families: &[MetricFamily], proto: &str, method: &str) -> Option<f64> {
        families
            .iter()
            .find(|family| family.name == "node_nfs_requests_total")?
            .samples
            .iter()
            .find(|sample| sample.labels[0].1 == proto && sample.labels[1].1 == method)
            .map(|sample| sample.value)
    }

    #[test]
    fn a_6_1_client_with_every_version_reported() {
        let families = parse(CLIENT_6_1).unwrap();
        assert_eq!(
            super::super::first_values(&families),
            vec![
                ("node_nfs_packets_total", 0.0),
                ("node_nfs_connections_total", 2.0),
                ("node_nfs_rpcs_total", 1218.0),
                ("node_nfs_rpc_retransmissions_total", 3.0),
                ("node_nfs_rpc_authentication_refreshes_total", 1.0),
                ("node_nfs_requests_total", 0.0),
            ]
        );
        assert_eq!(families[0].samples[1].labels[0].1, "tcp");
        assert_eq!(families[0].samples[1].value, 18.0);
        // 18 + 22 + 59 series, whatever lines the kernel wrote.
        assert_eq!(families[5].samples.len(), 99);
        assert_eq!(request(&families, "2", "FsStat"), Some(0.0));
        assert_eq!(request(&families, "3", "Read"), Some(830.0));
        assert_eq!(request(&families, "3", "Commit"), Some(3.0));
        assert_eq!(request(&families, "4", "Getattr"), Some(120.0));
        assert_eq!(request(&families, "4", "Sequence"), Some(900.0));
    }

    #[test]
    fn a_3_10_client_with_fewer_v4_procedures_reports_the_rest_as_zero() {
        let families = parse(CLIENT_3_10).unwrap();
        assert_eq!(families[0].samples[0].value, 70.0);
        assert_eq!(request(&families, "2", "GetAttr"), Some(69.0));
        assert_eq!(request(&families, "4", "Null"), Some(1.0));
        assert_eq!(request(&families, "4", "LayoutGet"), Some(9.0));
        assert_eq!(request(&families, "4", "Clone"), Some(0.0));
    }

    #[test]
    fn malformed_files_fail_the_collection() {
        for text in [
            "net 1 2 3\n",
            "rpc 1 2 3 4\n",
            "proc3 21 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
            "proc4 3 1 2\n",
            "proc2 x\n",
            "net\n",
            "wdeleg 1\n",
        ] {
            assert!(parse(text).is_err(), "{text:?}");
        }
        // An empty file reports every family at zero, as node_exporter does.
        assert_eq!(parse("").unwrap().len(), 6);
    }
}
