//! The bonding collector: configured and active slaves of each bonding
//! master, as node_exporter serves them (`node_bonding_slaves{master}`,
//! `node_bonding_active{master}`; a slave is active when its MII status is
//! `up`). A host without the bonding driver has no
//! /sys/class/net/bonding_masters: the collector is absent there, as in
//! node_exporter, and does not look again.

use std::path::{Path, PathBuf};

use countywatch_wire::{MetricFamily, MetricKind};

use super::parse_error::ProbeParseError;
use super::{Probe, ProbeError};

/// Reads `<sysfs>/class/net`.
pub struct BondingProbe {
    /// `<sysfs>/class/net`.
    root: PathBuf,
    /// Set once bonding_masters was found missing.
    absent: bool,
}

impl BondingProbe {
    /// A probe reading under `sysfs`.
    pub fn new(sysfs: &Path) -> Self {
        BondingProbe {
            root: sysfs.join("class/net"),
            absent: false,
        }
    }
}

impl Probe for BondingProbe {
    fn name(&self) -> &'static str {
        "bonding"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["bonding"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let masters = self.root.join("bonding_masters");
        if self.absent {
            return Err(ProbeError::Absent(masters));
        }
        let read = |relative: &str| super::read_pseudo_file(self.root.join(relative)).ok();
        let Some(text) = read("bonding_masters") else {
            self.absent = true;
            return Err(ProbeError::Absent(masters));
        };
        let families = parse(&text, &read).map_err(|source| ProbeError::Parse {
            path: masters,
            source,
        })?;
        out.extend(families);
        Ok(())
    }
}

/// The families from bonding_masters' text; `read` gives the text of a
/// file under class/net by relative path.
pub fn parse(
    masters: &str,
    read: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<MetricFamily>, ProbeParseError> {
    let mut slaves = MetricFamily::new(
        "node_bonding_slaves",
        "Number of configured slaves per bonding interface.",
        MetricKind::Gauge,
    );
    let mut active = MetricFamily::new(
        "node_bonding_active",
        "Number of active slaves per bonding interface.",
        MetricKind::Gauge,
    );
    for master in masters.split_whitespace() {
        let list = read(&format!("{master}/bonding/slaves")).ok_or_else(|| {
            ProbeParseError::NoSlaveList {
                master: master.to_string(),
            }
        })?;
        let (mut configured, mut up) = (0.0, 0.0);
        for slave in list.split_whitespace() {
            // Newer kernels link lower_<slave>, some older ones slave_<slave>.
            let status = read(&format!("{master}/lower_{slave}/bonding_slave/mii_status"))
                .or_else(|| read(&format!("{master}/slave_{slave}/bonding_slave/mii_status")))
                .ok_or_else(|| ProbeParseError::NoMiiStatus {
                    slave: slave.to_string(),
                    master: master.to_string(),
                })?;
            configured += 1.0;
            if status.trim() == "up" {
                up += 1.0;
            }
        }
        slaves.push(&[("master", master)], configured);
        active.push(&[("master", master)], up);
    }
    Ok(vec![slaves, active])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn slaves_and_active_slaves_per_master() {
        let files: HashMap<&str, &str> = [
            ("bond0/bonding/slaves", "eth0 eth1\n"),
            ("bond0/lower_eth0/bonding_slave/mii_status", "up\n"),
            ("bond0/lower_eth1/bonding_slave/mii_status", "down\n"),
            // A 3.10 kernel's layout.
            ("bond1/bonding/slaves", "eth2\n"),
            ("bond1/slave_eth2/bonding_slave/mii_status", "up\n"),
        ]
        .into_iter()
        .collect();
        let read = |path: &str| files.get(path).map(|text| text.to_string());
        let families = parse("bond0 bond1\n", &read).unwrap();
        let values = |family: &MetricFamily| -> Vec<(String, f64)> {
            family
                .samples
                .iter()
                .map(|sample| (sample.labels[0].1.to_string(), sample.value))
                .collect()
        };
        assert_eq!(
            values(&families[0]),
            vec![("bond0".to_string(), 2.0), ("bond1".to_string(), 1.0)]
        );
        assert_eq!(
            values(&families[1]),
            vec![("bond0".to_string(), 1.0), ("bond1".to_string(), 1.0)]
        );
        assert!(parse("bond9\n", &read).is_err());
    }

    #[test]
    fn without_the_driver_the_collector_is_absent() {
        let sysfs = tempfile::tempdir().unwrap();
        let mut probe = BondingProbe::new(sysfs.path());
        let mut out = Vec::new();
        assert!(matches!(
            probe.collect(&mut out),
            Err(ProbeError::Absent(_))
        ));
        assert!(out.is_empty());
    }
}
