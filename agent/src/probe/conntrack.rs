//! The conntrack collector: the netfilter connection table as
//! node_exporter serves it: `node_nf_conntrack_entries`, its limit, and
//! the per-CPU statistics of /proc/net/stat/nf_conntrack summed
//! (`node_nf_conntrack_stat_drop`, `..._early_drop`, ...). A full table
//! drops new connections, which is why the limit matters. Without the
//! nf_conntrack module the collector is absent.

use std::path::Path;

use countywatch_wire::{MetricFamily, MetricKind};

use super::file_probe::{FileProbe, number};
use super::parse_error::ProbeParseError;

/// The statistics columns node_exporter reports, with their help texts.
const STATS: [(&str, &str); 8] = [
    ("found", "Number of searched entries which were successful."),
    (
        "invalid",
        "Number of packets seen which can not be tracked.",
    ),
    (
        "ignore",
        "Number of packets seen which are already connected to a conntrack entry.",
    ),
    ("insert", "Number of entries inserted into the list."),
    (
        "insert_failed",
        "Number of entries for which list insertion was attempted but failed.",
    ),
    (
        "drop",
        "Number of packets dropped due to conntrack failure.",
    ),
    (
        "early_drop",
        "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached.",
    ),
    (
        "search_restart",
        "Number of conntrack table lookups which had to be restarted due to hashtable resizes.",
    ),
];

/// The probe reading the count, the limit and the statistics.
pub fn probe(procfs: &Path, _sysfs: &Path) -> FileProbe {
    let netfilter = procfs.join("sys/net/netfilter");
    FileProbe::new(
        "conntrack",
        vec![
            netfilter.join("nf_conntrack_count"),
            netfilter.join("nf_conntrack_max"),
            procfs.join("net/stat/nf_conntrack"),
        ],
        parse,
    )
}

/// The three files' texts to families; the statistics table is optional.
pub fn parse(texts: &[Option<String>]) -> Result<Vec<MetricFamily>, ProbeParseError> {
    let text = |index: usize| texts.get(index).and_then(Option::as_ref);
    let mut families = vec![MetricFamily::single(
        "node_nf_conntrack_entries",
        "Number of currently allocated flow entries for connection tracking.",
        MetricKind::Gauge,
        number(text(0)).ok_or(ProbeParseError::Malformed(
            "nf_conntrack_count is not a number",
        ))?,
    )];
    if let Some(limit) = number(text(1)) {
        families.push(MetricFamily::single(
            "node_nf_conntrack_entries_limit",
            "Maximum size of connection tracking table.",
            MetricKind::Gauge,
            limit,
        ));
    }
    if let Some(table) = text(2) {
        families.extend(parse_stat(table)?);
    }
    Ok(families)
}

/// Sums /proc/net/stat/nf_conntrack (a header line, then one line of hex
/// counters per CPU) over the CPUs.
pub fn parse_stat(text: &str) -> Result<Vec<MetricFamily>, ProbeParseError> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or(ProbeParseError::Malformed("empty statistics table"))?
        .split_whitespace()
        .collect();
    let mut sums = vec![0.0; header.len()];
    for line in lines.filter(|line| !line.trim().is_empty()) {
        let values: Vec<&str> = line.split_whitespace().collect();
        if values.len() != header.len() {
            return Err(ProbeParseError::Malformed(
                "statistics row and header differ in length",
            ));
        }
        for (sum, value) in sums.iter_mut().zip(values) {
            *sum += u64::from_str_radix(value, 16)
                .map_err(|_| ProbeParseError::value("invalid counter", value))?
                as f64;
        }
    }
    Ok(STATS
        .iter()
        .filter_map(|(column, help)| {
            let index = header.iter().position(|name| name == column)?;
            Some(MetricFamily::single(
                format!("node_nf_conntrack_stat_{column}"),
                *help,
                MetricKind::Gauge,
                sums[index],
            ))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{Probe, ProbeError};

    // The 6.1 layout; 3.10 kernels have more columns (searched, new,
    // delete, delete_list) in another order, found by name all the same.
    const STAT: &str = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n\
00000000  00000000 00000001 00000000 00000002 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000  00000000 00000000 00000000 0000000a\n\
00000000  00000000 00000001 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000010 00000000 00000000  00000000 00000000 00000000 00000000\n";

    #[test]
    fn count_limit_and_summed_statistics() {
        let families = parse(&[
            Some("7\n".into()),
            Some("262144\n".into()),
            Some(STAT.into()),
        ])
        .unwrap();
        let got = crate::probe::first_values(&families);
        assert_eq!(
            got,
            vec![
                ("node_nf_conntrack_entries", 7.0),
                ("node_nf_conntrack_entries_limit", 262144.0),
                ("node_nf_conntrack_stat_found", 2.0),
                ("node_nf_conntrack_stat_invalid", 2.0),
                ("node_nf_conntrack_stat_ignore", 0.0),
                ("node_nf_conntrack_stat_insert", 0.0),
                ("node_nf_conntrack_stat_insert_failed", 0.0),
                ("node_nf_conntrack_stat_drop", 16.0),
                ("node_nf_conntrack_stat_early_drop", 0.0),
                ("node_nf_conntrack_stat_search_restart", 10.0),
            ]
        );
        assert_eq!(parse(&[Some("1".into()), None, None]).unwrap().len(), 1);
        assert!(parse_stat("a b\n1\n").is_err());
        assert!(parse_stat("a\nzz\n").is_err());
    }

    #[test]
    fn without_the_module_the_collector_is_absent_and_stops_looking() {
        let procfs = tempfile::tempdir().unwrap();
        let mut probe = probe(procfs.path(), procfs.path());
        let mut out = Vec::new();
        let first = probe.collect(&mut out);
        assert!(matches!(first, Err(ProbeError::Absent(_))));
        // Created later, it is still not read: absence is decided once.
        let netfilter = procfs.path().join("sys/net/netfilter");
        std::fs::create_dir_all(&netfilter).unwrap();
        std::fs::write(netfilter.join("nf_conntrack_count"), "1\n").unwrap();
        assert!(probe.collect(&mut out).is_err());
        assert!(out.is_empty());
    }
}
