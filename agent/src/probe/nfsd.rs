//! The nfsd collector: the kernel NFS server's counters from
//! /proc/net/rpc/nfsd, as node_exporter 1.5 serves them: the reply cache,
//! stale file handles, bytes read and written, server threads, the read
//! ahead cache (kernels before 5.x; zero after), packets and connections,
//! RPC errors and `node_nfsd_requests_total{proto,method}` per NFSv2 and
//! v3 procedure and NFSv4 operation. The line format is the nfs
//! collector's ([`super::nfs::rpc_lines`]).
//!
//! A host that does not serve NFS has no /proc/net/rpc/nfsd: the collector
//! is absent there and does not look again.

use std::path::Path;

use countywatch_wire::{MetricFamily, MetricKind};

use super::file_probe::FileProbe;
use super::nfs::{V2_PROCEDURES, V3_PROCEDURES, exactly, procedures, push_procedures, rpc_lines};
use super::parse_error::ProbeParseError;

/// The NFSv4 operations in the kernel's order (`proc4ops`), as
/// node_exporter names them; the first 39 are all it reads.
const V4_OPERATIONS: [&str; 39] = [
    "Op0Unused",
    "Op1Unused",
    "Op2Future",
    "Access",
    "Close",
    "Commit",
    "Create",
    "DelegPurge",
    "DelegReturn",
    "GetAttr",
    "GetFH",
    "Link",
    "Lock",
    "Lockt",
    "Locku",
    "Lookup",
    "LookupRoot",
    "Nverify",
    "Open",
    "OpenAttr",
    "OpenConfirm",
    "OpenDgrd",
    "PutFH",
    "PutPubFH",
    "PutRootFH",
    "Read",
    "ReadDir",
    "ReadLink",
    "Remove",
    "Rename",
    "Renew",
    "RestoreFH",
    "SaveFH",
    "SecInfo",
    "SetAttr",
    "Verify",
    "Write",
    "RelLockOwner",
    // Only there to keep the count: node_exporter reads 39 and reports 33.
    "",
];

/// The operations node_exporter leaves out of `node_nfsd_requests_total`.
const V4_SKIPPED: [&str; 6] = [
    "Op0Unused",
    "Op1Unused",
    "Op2Future",
    "PutPubFH",
    "PutRootFH",
    "",
];

/// The probe reading `<procfs>/net/rpc/nfsd`.
pub fn probe(procfs: &Path, _sysfs: &Path) -> FileProbe {
    FileProbe::new("nfsd", vec![procfs.join("net/rpc/nfsd")], |texts| {
        parse(texts[0].as_deref().unwrap_or_default())
    })
}

/// The figures of the file, zero where it has no line.
#[derive(Debug, Default)]
struct Server {
    /// `rc`: hits, misses, non-cached.
    reply_cache: [u64; 3],
    /// `fh`: stale handles, then four counts the kernel no longer keeps.
    file_handles: [u64; 5],
    /// `io`: bytes read and written.
    io: [u64; 2],
    /// `th`: threads, then times all were busy.
    threads: [u64; 2],
    /// `ra`: cache size, ten histogram buckets, not found.
    read_ahead: [u64; 12],
    /// `net`: packets, UDP packets, TCP packets, TCP connections.
    network: [u64; 4],
    /// `rpc`: calls, bad calls, bad format, bad authentication, bad client.
    rpc: [u64; 5],
    /// `proc2` counts.
    v2: Vec<u64>,
    /// `proc3` counts.
    v3: Vec<u64>,
    /// `proc4ops` counts.
    v4_operations: Vec<u64>,
}

/// The file's text to node_exporter's families.
pub fn parse(text: &str) -> Result<Vec<MetricFamily>, ProbeParseError> {
    let mut server = Server::default();
    for line in rpc_lines(text) {
        let (key, numbers) = line?;
        let fixed: &mut [u64] = match key {
            "rc" => &mut server.reply_cache,
            "fh" => &mut server.file_handles,
            "io" => &mut server.io,
            "th" => &mut server.threads,
            "ra" => &mut server.read_ahead,
            "net" => &mut server.network,
            "rpc" => &mut server.rpc,
            "proc2" => {
                server.v2 = procedures(key, &numbers, V2_PROCEDURES.len())?.to_vec();
                continue;
            }
            "proc3" => {
                server.v3 = procedures(key, &numbers, V3_PROCEDURES.len())?.to_vec();
                continue;
            }
            // NULL and COMPOUND: checked as node_exporter does, not served.
            "proc4" => {
                procedures(key, &numbers, 2).and_then(|counts| exactly(key, counts, 2))?;
                continue;
            }
            "proc4ops" => {
                server.v4_operations = procedures(key, &numbers, V4_OPERATIONS.len())?.to_vec();
                continue;
            }
            _ => return Err(ProbeParseError::line("unknown NFSd line", key)),
        };
        exactly(key, &numbers, fixed.len())?;
        fixed.copy_from_slice(&numbers);
    }
    Ok(families(&server))
}

/// The families of a server's figures.
fn families(server: &Server) -> Vec<MetricFamily> {
    let (counter, gauge) = (MetricKind::Counter, MetricKind::Gauge);
    let single = |name: &'static str, help: &'static str, kind, value: u64| {
        MetricFamily::single(name, help, kind, value as f64)
    };
    let mut packets = MetricFamily::new(
        "node_nfsd_packets_total",
        "Total NFSd network packets (sent+received) by protocol type.",
        counter,
    );
    packets.push(&[("proto", "udp")], server.network[1] as f64);
    packets.push(&[("proto", "tcp")], server.network[2] as f64);
    let mut errors = MetricFamily::new(
        "node_nfsd_rpc_errors_total",
        "Total number of NFSd RPC errors by error type.",
        counter,
    );
    for (kind, value) in [
        ("fmt", server.rpc[2]),
        ("auth", server.rpc[3]),
        ("cInt", server.rpc[4]),
    ] {
        errors.push(&[("error", kind)], value as f64);
    }
    let mut requests = MetricFamily::new(
        "node_nfsd_requests_total",
        "Total number NFSd Requests by method and protocol.",
        counter,
    );
    push_procedures(&mut requests, "2", &V2_PROCEDURES, &server.v2, &["Null"]);
    push_procedures(&mut requests, "3", &V3_PROCEDURES, &server.v3, &["Null"]);
    push_procedures(
        &mut requests,
        "4",
        &V4_OPERATIONS,
        &server.v4_operations,
        &V4_SKIPPED,
    );
    vec![
        single(
            "node_nfsd_reply_cache_hits_total",
            "Total number of NFSd Reply Cache hits (client lost server response).",
            counter,
            server.reply_cache[0],
        ),
        single(
            "node_nfsd_reply_cache_misses_total",
            "Total number of NFSd Reply Cache an operation that requires caching (idempotent).",
            counter,
            server.reply_cache[1],
        ),
        single(
            "node_nfsd_reply_cache_nocache_total",
            "Total number of NFSd Reply Cache non-idempotent operations (rename/delete/…).",
            counter,
            server.reply_cache[2],
        ),
        single(
            "node_nfsd_file_handles_stale_total",
            "Total number of NFSd stale file handles",
            counter,
            server.file_handles[0],
        ),
        single(
            "node_nfsd_disk_bytes_read_total",
            "Total NFSd bytes read.",
            counter,
            server.io[0],
        ),
        single(
            "node_nfsd_disk_bytes_written_total",
            "Total NFSd bytes written.",
            counter,
            server.io[1],
        ),
        single(
            "node_nfsd_server_threads",
            "Total number of NFSd kernel threads that are running.",
            gauge,
            server.threads[0],
        ),
        single(
            "node_nfsd_read_ahead_cache_size_blocks",
            "How large the read ahead cache is in blocks.",
            gauge,
            server.read_ahead[0],
        ),
        single(
            "node_nfsd_read_ahead_cache_not_found_total",
            "Total number of NFSd read ahead cache not found.",
            counter,
            server.read_ahead[11],
        ),
        packets,
        single(
            "node_nfsd_connections_total",
            "Total number of NFSd TCP connections.",
            counter,
            server.network[3],
        ),
        errors,
        single(
            "node_nfsd_server_rpcs_total",
            "Total number of NFSd RPCs.",
            counter,
            server.rpc[0],
        ),
        requests,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::sample_value;

    /// A 6.1 kernel's server file: no `ra` line, a `th` line of two
    /// numbers, 76 NFSv4 operations.
    const SERVER_6_1: &str = "rc 0 4116 21
fh 3 0 0 0 0
io 1048576 2097152
th 8 0 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000
net 4137 0 4137 12
rpc 4137 1 0 1 0
proc3 22 2 310 4 180 200 0 1500 2000 10 2 0 0 3 1 5 0 8 40 9 2 1 50
proc4 2 3 4123
proc4ops 76 0 0 0 61 70 12 3 0 9 900 120 0 4 2 4 88 0 0 71 0 0 2 1000 0 1 620 14 0 5 6 33 3 1 0 50 0 700 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
";

    /// A 3.10 kernel's (CentOS 7): an `ra` line, a proc2 line, 59 NFSv4
    /// operations, and the `th` line's busy histogram.
    const SERVER_3_10: &str = "rc 0 31 0
fh 0 0 0 0 0
io 0 24
th 8 0 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000
ra 32 0 0 0 0 0 0 0 0 0 0 7
net 32 0 32 4
rpc 32 0 0 0 0
proc2 18 2 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
proc3 22 2 6 0 0 0 0 0 12 0 0 0 0 0 0 0 0 0 1 1 0 0 0
proc4 2 2 28
proc4ops 59 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 26 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
";

    #[test]
    fn a_6_1_server() {
        let families = parse(SERVER_6_1).unwrap();
        assert_eq!(families.len(), 14);
        let one = |name| sample_value(&families, name, &[]);
        assert_eq!(one("node_nfsd_reply_cache_misses_total"), Some(4116.0));
        assert_eq!(one("node_nfsd_file_handles_stale_total"), Some(3.0));
        assert_eq!(one("node_nfsd_disk_bytes_written_total"), Some(2097152.0));
        assert_eq!(one("node_nfsd_server_threads"), Some(8.0));
        assert_eq!(one("node_nfsd_read_ahead_cache_size_blocks"), Some(0.0));
        assert_eq!(one("node_nfsd_connections_total"), Some(12.0));
        assert_eq!(one("node_nfsd_server_rpcs_total"), Some(4137.0));
        assert_eq!(
            sample_value(&families, "node_nfsd_packets_total", &["tcp"]),
            Some(4137.0)
        );
        assert_eq!(
            sample_value(&families, "node_nfsd_rpc_errors_total", &["auth"]),
            Some(1.0)
        );
        let requests =
            |proto, method| sample_value(&families, "node_nfsd_requests_total", &[proto, method]);
        assert_eq!(requests("3", "Read"), Some(1500.0));
        assert_eq!(requests("3", "Commit"), Some(50.0));
        assert_eq!(requests("3", "Null"), None);
        assert_eq!(requests("2", "GetAttr"), Some(0.0));
        assert_eq!(requests("4", "Access"), Some(61.0));
        assert_eq!(requests("4", "PutFH"), Some(1000.0));
        assert_eq!(requests("4", "Write"), Some(700.0));
        assert_eq!(requests("4", "RelLockOwner"), Some(1.0));
        assert_eq!(requests("4", "PutRootFH"), None);
        // 17 + 21 + 33 series.
        let count = families.last().map(|family| family.samples.len());
        assert_eq!(count, Some(71));
    }

    #[test]
    fn a_3_10_server_with_a_read_ahead_cache() {
        let families = parse(SERVER_3_10).unwrap();
        let one = |name| sample_value(&families, name, &[]);
        assert_eq!(one("node_nfsd_read_ahead_cache_size_blocks"), Some(32.0));
        assert_eq!(one("node_nfsd_read_ahead_cache_not_found_total"), Some(7.0));
        assert_eq!(one("node_nfsd_disk_bytes_written_total"), Some(24.0));
        let requests =
            |proto, method| sample_value(&families, "node_nfsd_requests_total", &[proto, method]);
        assert_eq!(requests("3", "Write"), Some(12.0));
        assert_eq!(requests("4", "PutFH"), Some(26.0));
    }

    #[test]
    fn malformed_files_fail_the_collection() {
        for text in [
            "rc 1 2\n",
            "th 8\n",
            "ra 32 0 0\n",
            "proc4 3 1 2 3\n",
            "proc4ops 38 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
            "io 1 -2\n",
            "wdeleg_getattr 0\n",
        ] {
            assert!(parse(text).is_err(), "{text:?}");
        }
    }
}
