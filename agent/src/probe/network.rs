//! The network probe: per-interface counters from /proc/net/dev, named as
//! node_exporter's netdev collector names them
//! (`node_network_receive_bytes_total{device}` and its siblings), plus the
//! link attributes of /sys/class/net as its netclass collector reports them
//! (`node_network_up`, `node_network_info`, and one family per numeric
//! property: `node_network_carrier`, `node_network_speed_bytes`,
//! `node_network_mtu_bytes`, ...), and `node_network_receive_nohandler_total`
//! from each device's statistics (node_exporter reads it over netlink).
//!
//! A property the driver cannot report (reading `speed` of a virtual
//! device fails with EINVAL) is left out for that device, as node_exporter
//! leaves it out.

use std::collections::HashMap;
use std::os::unix::fs::DirEntryExt;
use std::path::{Path, PathBuf};

use countywatch_wire::{MetricFamily, MetricKind};

use super::kept_files::KeptFiles;
use super::{ATTRIBUTE_MAX, Probe, ProbeError};

/// The columns of /proc/net/dev after the interface name, in order.
const COLUMNS: [&str; 16] = [
    "receive_bytes",
    "receive_packets",
    "receive_errs",
    "receive_drop",
    "receive_fifo",
    "receive_frame",
    "receive_compressed",
    "receive_multicast",
    "transmit_bytes",
    "transmit_packets",
    "transmit_errs",
    "transmit_drop",
    "transmit_fifo",
    "transmit_colls",
    "transmit_carrier",
    "transmit_compressed",
];

/// The numeric properties of /sys/class/net/<device>/: file, the name
/// after `node_network_`, its type, and how its text is read.
const PROPERTIES: [(&str, &str, MetricKind, Number); 17] = [
    (
        "addr_assign_type",
        "address_assign_type",
        MetricKind::Gauge,
        Number::Decimal,
    ),
    ("carrier", "carrier", MetricKind::Gauge, Number::Decimal),
    (
        "carrier_changes",
        "carrier_changes_total",
        MetricKind::Counter,
        Number::Decimal,
    ),
    (
        "carrier_up_count",
        "carrier_up_changes_total",
        MetricKind::Counter,
        Number::Decimal,
    ),
    (
        "carrier_down_count",
        "carrier_down_changes_total",
        MetricKind::Counter,
        Number::Decimal,
    ),
    ("dev_id", "device_id", MetricKind::Gauge, Number::Hex),
    ("dormant", "dormant", MetricKind::Gauge, Number::Decimal),
    ("flags", "flags", MetricKind::Gauge, Number::Hex),
    ("ifindex", "iface_id", MetricKind::Gauge, Number::Decimal),
    ("iflink", "iface_link", MetricKind::Gauge, Number::Decimal),
    (
        "link_mode",
        "iface_link_mode",
        MetricKind::Gauge,
        Number::Decimal,
    ),
    ("mtu", "mtu_bytes", MetricKind::Gauge, Number::Decimal),
    (
        "name_assign_type",
        "name_assign_type",
        MetricKind::Gauge,
        Number::Decimal,
    ),
    (
        "netdev_group",
        "net_dev_group",
        MetricKind::Gauge,
        Number::Decimal,
    ),
    (
        "speed",
        "speed_bytes",
        MetricKind::Gauge,
        Number::MegabitsToBytes,
    ),
    (
        "tx_queue_len",
        "transmit_queue_length",
        MetricKind::Gauge,
        Number::Decimal,
    ),
    ("type", "protocol_type", MetricKind::Gauge, Number::Decimal),
];

/// How a property file's text becomes a value.
#[derive(Clone, Copy, Debug)]
enum Number {
    /// `1500`.
    Decimal,
    /// `0x1003`.
    Hex,
    /// `1000` (Mb/s) to bytes per second; `-1` (unknown) stays negative,
    /// as node_exporter reports it.
    MegabitsToBytes,
}

impl Number {
    fn read(self, text: &str) -> Option<f64> {
        let text = text.trim();
        match self {
            Number::Decimal => text.parse().ok(),
            Number::Hex => {
                let digits = text.strip_prefix("0x").unwrap_or(text);
                u64::from_str_radix(digits, 16)
                    .ok()
                    .map(|value| value as f64)
            }
            Number::MegabitsToBytes => text
                .parse::<f64>()
                .ok()
                .map(|megabits| megabits * 1_000_000.0 / 8.0),
        }
    }
}

/// Reads `<procfs>/net/dev` and `<sysfs>/class/net`.
pub struct NetworkProbe {
    /// procfs root, `/proc` unless configured.
    procfs: PathBuf,
    /// sysfs root, `/sys` unless configured.
    sysfs: PathBuf,
    /// /proc/net/dev, kept open.
    net_dev: KeptFiles,
    /// Each interface's attribute files, kept open.
    links: KeptLinks,
}

impl NetworkProbe {
    /// A probe reading under `procfs` and `sysfs`.
    pub fn new(procfs: PathBuf, sysfs: PathBuf) -> Self {
        NetworkProbe {
            procfs,
            sysfs,
            net_dev: KeptFiles::default(),
            links: KeptLinks::default(),
        }
    }
}

/// Each interface's attribute files, kept open between collections
/// (`kept_files`), with the inode of its /sys/class/net entry: a new
/// device under an old name (a VLAN deleted and made again, a veth moved
/// away and another given its name) has a new entry, and is read through
/// files of its own, never the old device's.
#[derive(Default)]
pub struct KeptLinks {
    /// By interface name: the entry's inode and the files.
    links: HashMap<String, (u64, KeptFiles)>,
}

/// The attributes of one interface under /sys/class/net/<device>/.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    /// Interface name.
    pub device: String,
    /// `up`, `down`, `unknown`, ...
    pub operstate: String,
    /// Hardware address.
    pub address: String,
    /// Broadcast address.
    pub broadcast: String,
    /// `full`, `half`, or empty where the driver has none (reading it fails).
    pub duplex: String,
    /// Administrator's alias.
    pub ifalias: String,
    /// The numeric properties that could be read, by index in
    /// [`PROPERTIES`].
    pub properties: [Option<f64>; PROPERTIES.len()],
    /// `statistics/rx_nohandler`, when the kernel has it.
    pub receive_nohandler: Option<f64>,
}

/// Reads every interface's attributes; an unreadable attribute is empty,
/// as in node_exporter. Interfaces gone since the last call give their
/// kept files back.
pub fn read_links(sysfs: &Path, kept: &mut KeptLinks) -> Vec<Link> {
    let class = sysfs.join("class/net");
    let Ok(entries) = std::fs::read_dir(&class) else {
        kept.links.clear();
        return Vec::new();
    };
    let mut still_here = HashMap::with_capacity(kept.links.len());
    let mut links: Vec<Link> = entries
        .filter_map(Result::ok)
        .map(|entry| {
            let device = entry.file_name().to_string_lossy().into_owned();
            let inode = entry.ino();
            let mut files = match kept.links.remove(&device) {
                Some((known, files)) if known == inode => files,
                _ => KeptFiles::default(),
            };
            let dir = entry.path();
            // An interface gone since the listing reads as all empty, as
            // each of its attributes would.
            let mut read = |name: &str| {
                files
                    .read_attribute(&dir.join(name), ATTRIBUTE_MAX)
                    .map(|text| text.trim().to_string())
                    .unwrap_or_default()
            };
            let link = Link {
                device: device.clone(),
                operstate: read("operstate"),
                address: read("address"),
                broadcast: read("broadcast"),
                duplex: read("duplex"),
                ifalias: read("ifalias"),
                properties: PROPERTIES.map(|(file, _, _, number)| number.read(&read(file))),
                receive_nohandler: Number::Decimal.read(&read("statistics/rx_nohandler")),
            };
            still_here.insert(device, (inode, files));
            link
        })
        .collect();
    kept.links = still_here;
    links.sort_by(|a, b| a.device.cmp(&b.device));
    links
}

/// `node_network_up`, `node_network_info`, one family per property and
/// `node_network_receive_nohandler_total`.
pub fn link_families(links: &[Link]) -> Vec<MetricFamily> {
    let mut up = MetricFamily::new(
        "node_network_up",
        "Value is 1 if operstate is 'up', 0 otherwise.",
        MetricKind::Gauge,
    );
    let mut info = MetricFamily::new(
        "node_network_info",
        "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
        MetricKind::Gauge,
    );
    let mut properties: Vec<MetricFamily> = PROPERTIES
        .iter()
        .map(|(_, name, kind, _)| {
            MetricFamily::new(
                format!("node_network_{name}"),
                format!("Network device property: {name}"),
                *kind,
            )
        })
        .collect();
    let mut nohandler = MetricFamily::new(
        "node_network_receive_nohandler_total",
        "Network device statistic receive_nohandler.",
        MetricKind::Counter,
    );
    for link in links {
        let device = [("device", link.device.as_str())];
        up.push(&device, if link.operstate == "up" { 1.0 } else { 0.0 });
        info.push(
            &[
                ("address", link.address.as_str()),
                ("broadcast", link.broadcast.as_str()),
                ("device", link.device.as_str()),
                ("duplex", link.duplex.as_str()),
                ("ifalias", link.ifalias.as_str()),
                ("operstate", link.operstate.as_str()),
            ],
            1.0,
        );
        for (family, value) in properties.iter_mut().zip(link.properties) {
            if let Some(value) = value {
                family.push(&device, value);
            }
        }
        if let Some(value) = link.receive_nohandler {
            nohandler.push(&device, value);
        }
    }
    let mut families = vec![up, info];
    families.extend(properties);
    families.push(nohandler);
    families.retain(|family| !family.samples.is_empty());
    families
}

impl Probe for NetworkProbe {
    fn name(&self) -> &'static str {
        "network"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["netdev", "netclass"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let (_, text) = self.net_dev.read_file(self.procfs.join("net/dev"))?;
        out.extend(parse(&text));
        out.extend(link_families(&read_links(&self.sysfs, &mut self.links)));
        Ok(())
    }
}

/// Turns /proc/net/dev text into one counter family per column.
pub fn parse(text: &str) -> Vec<MetricFamily> {
    let mut families: Vec<MetricFamily> = COLUMNS
        .iter()
        .map(|column| {
            let (direction, what) = column.split_once('_').unwrap_or((column, ""));
            MetricFamily::new(
                format!("node_network_{column}_total"),
                format!("Network device statistic {direction}_{what}."),
                MetricKind::Counter,
            )
        })
        .collect();
    // The first two lines are headers; a data line is "  eth0: 1 2 3 ...".
    for line in text.lines().skip(2) {
        let Some((device, counters)) = line.split_once(':') else {
            continue;
        };
        let device = device.trim();
        if device.is_empty() {
            continue;
        }
        let values: Vec<f64> = counters
            .split_whitespace()
            .map_while(|value| value.parse::<f64>().ok())
            .collect();
        if values.len() != COLUMNS.len() {
            continue;
        }
        for (family, value) in families.iter_mut().zip(values) {
            family.push(&[("device", device)], value);
        }
    }
    families.retain(|family| !family.samples.is_empty());
    families
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_net_dev() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0\n  \
eth0: 2000 20 1 2 0 0 0 3 4000 40 5 6 0 7 0 0\n broken: 1 2\n";
        let families = parse(text);
        assert_eq!(families.len(), 16);
        assert_eq!(families[0].name, "node_network_receive_bytes_total");
        assert_eq!(families[0].help, "Network device statistic receive_bytes.");
        let eth0 = &families[0].samples[1];
        assert_eq!(
            eth0.owned_labels(),
            vec![("device".to_string(), "eth0".to_string())]
        );
        assert_eq!(eth0.value, 2000.0);
        assert_eq!(families[2].name, "node_network_receive_errs_total");
        assert_eq!(families[2].samples[1].value, 1.0);
        assert_eq!(families[13].name, "node_network_transmit_colls_total");
        assert_eq!(families[13].samples[1].value, 7.0);
    }

    #[test]
    fn link_attributes_from_a_fixture_sysfs() {
        let sysfs = tempfile::tempdir().unwrap();
        for (device, operstate, duplex) in [("eth0", "up", Some("full")), ("lo", "unknown", None)] {
            let dir = sysfs.path().join("class/net").join(device);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("operstate"), format!("{operstate}\n")).unwrap();
            std::fs::write(dir.join("address"), "02:fc:00:00:00:01\n").unwrap();
            std::fs::write(dir.join("broadcast"), "ff:ff:ff:ff:ff:ff\n").unwrap();
            std::fs::write(dir.join("ifalias"), "\n").unwrap();
            std::fs::write(dir.join("mtu"), "1500\n").unwrap();
            std::fs::write(dir.join("flags"), "0x1003\n").unwrap();
            if let Some(duplex) = duplex {
                std::fs::write(dir.join("duplex"), duplex).unwrap();
                // Only the real NIC has a speed and statistics; `lo`'s
                // speed fails to read, so it has no speed_bytes series.
                std::fs::write(dir.join("speed"), "1000\n").unwrap();
                std::fs::create_dir_all(dir.join("statistics")).unwrap();
                std::fs::write(dir.join("statistics/rx_nohandler"), "7\n").unwrap();
            }
        }
        let families = link_families(&read_links(sysfs.path(), &mut KeptLinks::default()));
        let up = &families[0];
        assert_eq!(up.name, "node_network_up");
        let values: Vec<(&str, f64)> = up
            .samples
            .iter()
            .map(|sample| (sample.labels[0].1.as_ref(), sample.value))
            .collect();
        assert_eq!(values, vec![("eth0", 1.0), ("lo", 0.0)]);
        let info = &families[1];
        assert_eq!(
            info.samples[1].owned_labels()[3],
            ("duplex".to_string(), String::new())
        );
        assert_eq!(
            info.samples[0].owned_labels()[5],
            ("operstate".to_string(), "up".to_string())
        );
        let family = |name: &str| {
            families
                .iter()
                .find(|family| family.name == name)
                .unwrap_or_else(|| panic!("no {name}"))
        };
        let mtu = family("node_network_mtu_bytes");
        assert_eq!(mtu.help, "Network device property: mtu_bytes");
        assert_eq!(mtu.samples[0].value, 1500.0);
        assert_eq!(family("node_network_flags").samples[1].value, 4099.0);
        let speed = family("node_network_speed_bytes");
        assert_eq!(speed.samples.len(), 1);
        assert_eq!(speed.samples[0].value, 125_000_000.0);
        assert_eq!(
            family("node_network_receive_nohandler_total").samples[0].value,
            7.0
        );
        assert!(
            families
                .iter()
                .all(|family| family.name != "node_network_carrier")
        );
        assert_eq!(Number::MegabitsToBytes.read("-1\n"), Some(-125000.0));
        assert_eq!(Number::Hex.read("0x0"), Some(0.0));
    }
}
