//! The probe registry: which probes the agent builds from its config, in
//! which order, and the checks of every probe section. It lives apart from
//! `probe/mod.rs` so that the probes, which `config.rs` names for their
//! sections, never import the config back through their parent.

use std::path::Path;
use std::time::Duration;

use countywatch_config::config_file::Problems;

use super::toggle::ProbeToggle;
use super::*;
use crate::config::{Config, ProbesConfig};

/// Builds a node_exporter collector that reads under procfs and sysfs.
type MakeProbe = fn(&Path, &Path) -> Box<dyn Probe>;

/// The node_exporter collectors that need nothing but the procfs and sysfs
/// roots, with their config sections: the one table [`build`] and
/// [`validate`] both read, so adding such a collector is its file, its
/// config field and one line here.
fn node_collectors(probes: &ProbesConfig) -> [(&'static str, &ProbeToggle, MakeProbe); 31] {
    [
        ("vmstat", &probes.vmstat, |procfs, sysfs| {
            Box::new(vmstat::probe(procfs, sysfs))
        }),
        ("netstat", &probes.netstat, |procfs, sysfs| {
            Box::new(netstat::probe(procfs, sysfs))
        }),
        ("sockstat", &probes.sockstat, |procfs, sysfs| {
            Box::new(sockstat::probe(procfs, sysfs))
        }),
        ("entropy", &probes.entropy, |procfs, sysfs| {
            Box::new(entropy::probe(procfs, sysfs))
        }),
        ("conntrack", &probes.conntrack, |procfs, sysfs| {
            Box::new(conntrack::probe(procfs, sysfs))
        }),
        ("softnet", &probes.softnet, |procfs, sysfs| {
            Box::new(softnet::probe(procfs, sysfs))
        }),
        ("arp", &probes.arp, |procfs, sysfs| {
            Box::new(arp::probe(procfs, sysfs))
        }),
        ("udp_queues", &probes.udp_queues, |procfs, sysfs| {
            Box::new(udp_queues::probe(procfs, sysfs))
        }),
        ("mdadm", &probes.mdadm, |procfs, sysfs| {
            Box::new(mdadm::probe(procfs, sysfs))
        }),
        ("schedstat", &probes.schedstat, |procfs, sysfs| {
            Box::new(schedstat::probe(procfs, sysfs))
        }),
        ("selinux", &probes.selinux, |_, sysfs| {
            Box::new(selinux::SelinuxProbe::new(sysfs))
        }),
        ("bonding", &probes.bonding, |_, sysfs| {
            Box::new(bonding::BondingProbe::new(sysfs))
        }),
        ("edac", &probes.edac, |_, sysfs| {
            Box::new(edac::EdacProbe::new(sysfs))
        }),
        ("thermal_zone", &probes.thermal_zone, |_, sysfs| {
            Box::new(thermal_zone::ThermalZoneProbe::new(sysfs))
        }),
        ("hwmon", &probes.hwmon, |_, sysfs| {
            Box::new(hwmon::HwmonProbe::new(sysfs))
        }),
        ("cpufreq", &probes.cpufreq, |_, sysfs| {
            Box::new(cpufreq::CpufreqProbe::new(sysfs))
        }),
        ("powersupplyclass", &probes.powersupplyclass, |_, sysfs| {
            Box::new(powersupplyclass::PowerSupplyClassProbe::new(sysfs))
        }),
        ("dmi", &probes.dmi, |_, sysfs| {
            Box::new(dmi::DmiProbe::new(sysfs))
        }),
        ("timex", &probes.timex, |_, _| Box::new(timex::TimexProbe)),
        ("rapl", &probes.rapl, |_, sysfs| {
            Box::new(rapl::RaplProbe::new(sysfs))
        }),
        ("nvme", &probes.nvme, |_, sysfs| {
            Box::new(nvme::NvmeProbe::new(sysfs))
        }),
        ("fibrechannel", &probes.fibrechannel, |_, sysfs| {
            Box::new(fibrechannel::FibreChannelProbe::new(sysfs))
        }),
        ("infiniband", &probes.infiniband, |_, sysfs| {
            Box::new(infiniband::InfinibandProbe::new(sysfs))
        }),
        ("tapestats", &probes.tapestats, |_, sysfs| {
            Box::new(tapestats::TapestatsProbe::new(sysfs))
        }),
        ("ipvs", &probes.ipvs, |procfs, sysfs| {
            Box::new(ipvs::probe(procfs, sysfs))
        }),
        ("nfs", &probes.nfs, |procfs, sysfs| {
            Box::new(nfs::probe(procfs, sysfs))
        }),
        ("nfsd", &probes.nfsd, |procfs, sysfs| {
            Box::new(nfsd::probe(procfs, sysfs))
        }),
        ("xfs", &probes.xfs, |_, sysfs| {
            Box::new(xfs::XfsProbe::new(sysfs))
        }),
        ("btrfs", &probes.btrfs, |_, sysfs| {
            Box::new(btrfs::BtrfsProbe::new(sysfs))
        }),
        ("bcache", &probes.bcache, |_, sysfs| {
            Box::new(bcache::BcacheProbe::new(sysfs))
        }),
        ("zfs", &probes.zfs, |procfs, _| {
            Box::new(zfs::ZfsProbe::new(procfs))
        }),
    ]
}

/// Builds the enabled probes in a fixed order. Adding a probe means adding
/// its file, its config section and one line here.
pub fn build(config: &Config) -> Vec<Box<dyn Probe>> {
    let procfs = &config.paths.procfs;
    let sysfs = &config.paths.sysfs;
    let probes = &config.probes;
    let mut built: Vec<Box<dyn Probe>> = Vec::new();
    let mut add = |toggle: &ProbeToggle, make: &dyn Fn() -> Box<dyn Probe>| {
        if !toggle.enabled {
            return;
        }
        let probe = make();
        match toggle.interval {
            Some(interval) => built.push(Box::new(Every {
                probe,
                interval: interval.get(),
            })),
            None => built.push(probe),
        }
    };
    add(&probes.cpu, &|| {
        Box::new(cpu::CpuProbe::new(procfs.clone(), sysfs))
    });
    add(&probes.load, &|| {
        Box::new(load::LoadProbe::new(procfs.clone()))
    });
    add(&probes.memory, &|| {
        Box::new(memory::MemoryProbe::new(procfs.clone()))
    });
    add(&probes.filesystem.toggle(), &|| {
        Box::new(filesystem::FilesystemProbe::new(
            procfs.clone(),
            probes.filesystem.stat_timeout.get(),
        ))
    });
    add(&probes.disk, &|| {
        Box::new(disk::DiskProbe::new(
            procfs.clone(),
            config.paths.udev_data.clone(),
        ))
    });
    add(&probes.network, &|| {
        Box::new(network::NetworkProbe::new(procfs.clone(), sysfs.clone()))
    });
    add(&probes.system, &|| {
        Box::new(system::SystemProbe::new(procfs.clone(), sysfs.clone()))
    });
    add(&probes.pressure, &|| {
        Box::new(pressure::PressureProbe::new(procfs.clone()))
    });
    for (_, toggle, make) in node_collectors(probes) {
        add(toggle, &|| make(procfs, sysfs));
    }
    // Without units there is nothing to ask systemd.
    if !probes.systemd.units.is_empty() {
        add(&probes.systemd.toggle(), &|| {
            Box::new(systemd::SystemdProbe::new(&probes.systemd))
        });
    }
    add(&probes.process.toggle(), &|| {
        Box::new(process::ProcessProbe::new(procfs.clone(), &probes.process))
    });
    if !probes.service.targets.is_empty() {
        add(&probes.service.toggle(), &|| {
            Box::new(service::ServiceProbe::new(&probes.service))
        });
    }
    if !probes.snmp.devices.is_empty() {
        add(&probes.snmp.toggle(), &|| {
            Box::new(snmp::SnmpProbe::new(
                &probes.snmp,
                probes.timeout.get(),
                config.interval.get(),
            ))
        });
    }
    // Last, so that a file naming a family another probe reports loses
    // (the collection drops the later duplicate).
    add(&probes.textfile.toggle(), &|| {
        Box::new(textfile::TextfileProbe::new(
            probes.textfile.directory.clone(),
        ))
    });
    built
}

/// Checks every probe section, adding each problem to `problems`.
pub fn validate(probes: &ProbesConfig, problems: &mut Problems) {
    let sections: [(&str, Option<_>); 12] = [
        ("cpu", probes.cpu.interval),
        ("load", probes.load.interval),
        ("memory", probes.memory.interval),
        ("filesystem", probes.filesystem.interval),
        ("disk", probes.disk.interval),
        ("network", probes.network.interval),
        ("system", probes.system.interval),
        ("pressure", probes.pressure.interval),
        ("systemd", probes.systemd.interval),
        ("process", probes.process.interval),
        ("service", probes.service.interval),
        ("textfile", probes.textfile.interval),
    ];
    let collector_sections =
        node_collectors(probes).map(|(name, toggle, _)| (name, toggle.interval));
    for (name, interval) in sections.into_iter().chain(collector_sections) {
        if let Some(interval) = interval
            && interval.get() < Duration::from_secs(1)
        {
            problems.general(format!(
                "probes.{name}.interval {interval} is shorter than 1s"
            ));
        }
    }
    if probes.timeout.get() < Duration::from_millis(100) {
        problems.general(format!(
            "probes.timeout {} is shorter than 100ms",
            probes.timeout
        ));
    }
    filesystem::validate(&probes.filesystem, probes.timeout.get(), problems);
    systemd::validate(&probes.systemd, problems);
    process::validate(&probes.process, problems);
    service::validate(&probes.service, probes.timeout.get(), problems);
    snmp::validate(&probes.snmp, probes.timeout.get(), problems);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_collector_is_named_after_its_config_key() {
        let probes = ProbesConfig::default();
        let (procfs, sysfs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        for (key, toggle, make) in node_collectors(&probes) {
            assert!(
                toggle.enabled,
                "{key} is on by default, as in node_exporter"
            );
            let probe = make(procfs.path(), sysfs.path());
            assert_eq!(probe.name(), key);
            assert_eq!(probe.collectors(), vec![key]);
            assert!(
                !probe.needs_own_thread(),
                "{key} reads only procfs and sysfs"
            );
        }
    }
}
