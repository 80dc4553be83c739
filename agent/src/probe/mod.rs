//! Host probes: one file per probe, registered by one line in the probe
//! table below, which `registry.rs` turns into the modules, the config
//! sections ([`ProbesConfig`]), [`build`] and [`validate`].
//!
//! A probe reads one part of the host (the node_exporter "collector"
//! pattern) and appends metric families named exactly as node_exporter
//! names them, so existing dashboards and alert rules work unchanged.
//! Each probe has a pure `parse` function over the text it reads, tested
//! against fixtures at the bottom of its file, and a thin part doing IO.
//!
//! Probes are synchronous: the collection loop runs them in turn on a
//! blocking thread, each under a timeout, so a probe stuck in the kernel (a
//! hung NFS mount) cannot stall the others or the agent; probes that wait
//! on the network get a thread of their own ([`Probe::needs_own_thread`]).
//!
//! Each probe has its own config section (an enable flag, an interval where
//! it makes sense); sections with more than a flag are defined in the
//! probe's own file beside the code that reads them (implementing
//! [`toggle::ProbeSection`]), and checked by [`validate`].

mod cpu_throttle;
mod family_set;
mod file_probe;
mod kept_files;
pub mod parse_error;
#[macro_use]
mod registry;
mod sysfs_class;
pub mod toggle;

// The probe table: one line per probe, in the order of its config
// sections (`probes.<key>`), which is also the order the probes are built
// and run in (textfile last, see `ProbeSection::runs_last`). A line gives
// the section's doc comment, the module's visibility, the key (the
// probe's module and name), the section's type (`ProbeToggle`, or the
// probe's own config struct implementing `ProbeSection`) and the
// constructor. Adding a probe is its file and one line here.
probe_kinds! {
    /// CPU time per mode and the /proc/stat counters.
    cpu: ProbeToggle => |_, host| cpu::CpuProbe::new(host.procfs.clone(), host.sysfs),
    /// Load averages.
    load: ProbeToggle => |_, host| load::LoadProbe::new(host.procfs.clone()),
    /// Every /proc/meminfo field.
    memory: ProbeToggle => |_, host| memory::MemoryProbe::new(host.procfs.clone()),
    /// Size and free space of mounted filesystems.
    pub filesystem: filesystem::FilesystemConfig =>
        |section, host| {
            filesystem::FilesystemProbe::new(host.procfs.clone(), section.stat_timeout.get())
        },
    /// Block device I/O counters from /proc/diskstats.
    disk: ProbeToggle =>
        |_, host| disk::DiskProbe::new(host.procfs.clone(), host.udev_data.clone()),
    /// Per-interface network counters, link state and addresses.
    network: ProbeToggle =>
        |_, host| network::NetworkProbe::new(host.procfs.clone(), host.sysfs.clone()),
    /// Clock, kernel and OS identity, file descriptor use.
    system: ProbeToggle =>
        |_, host| system::SystemProbe::new(host.procfs.clone(), host.sysfs.clone()),
    /// Pressure stall information, where the kernel has it.
    pressure: ProbeToggle => |_, host| pressure::PressureProbe::new(host.procfs.clone()),
    /// Paging, swapping, page faults and OOM kills from /proc/vmstat.
    vmstat: ProbeToggle => |_, host| vmstat::probe(host.procfs, host.sysfs),
    /// TCP, UDP, ICMP and IP protocol counters from /proc/net/netstat and snmp.
    netstat: ProbeToggle => |_, host| netstat::probe(host.procfs, host.sysfs),
    /// Sockets in use per protocol and state from /proc/net/sockstat.
    sockstat: ProbeToggle => |_, host| sockstat::probe(host.procfs, host.sysfs),
    /// The kernel's random pool.
    entropy: ProbeToggle => |_, host| entropy::probe(host.procfs, host.sysfs),
    /// The netfilter connection table's fill and limit (absent without the module).
    conntrack: ProbeToggle => |_, host| conntrack::probe(host.procfs, host.sysfs),
    /// Per-CPU packet processing and backlog drops from /proc/net/softnet_stat.
    softnet: ProbeToggle => |_, host| softnet::probe(host.procfs, host.sysfs),
    /// ARP entries per device.
    arp: ProbeToggle => |_, host| arp::probe(host.procfs, host.sysfs),
    /// Bytes queued in the kernel for UDP sockets.
    udp_queues: ProbeToggle => |_, host| udp_queues::probe(host.procfs, host.sysfs),
    /// Configured and active slaves of bonding interfaces.
    bonding: ProbeToggle => |_, host| bonding::BondingProbe::new(host.sysfs),
    /// Memory controller (EDAC) error counts.
    edac: ProbeToggle => |_, host| edac::EdacProbe::new(host.sysfs),
    /// Temperatures of thermal zones, states of cooling devices.
    thermal_zone: ProbeToggle => |_, host| thermal_zone::ThermalZoneProbe::new(host.sysfs),
    /// Whether SELinux is on, and its modes.
    selinux: ProbeToggle => |_, host| selinux::SelinuxProbe::new(host.sysfs),
    /// Hardware sensors (temperatures, fans, voltages) from /sys/class/hwmon.
    hwmon: ProbeToggle => |_, host| hwmon::HwmonProbe::new(host.sysfs),
    /// Software RAID arrays from /proc/mdstat.
    mdadm: ProbeToggle => |_, host| mdadm::probe(host.procfs, host.sysfs),
    /// CPU clock frequencies from cpufreq.
    cpufreq: ProbeToggle => |_, host| cpufreq::CpufreqProbe::new(host.sysfs),
    /// Batteries and power adapters from /sys/class/power_supply.
    powersupplyclass: ProbeToggle =>
        |_, host| powersupplyclass::PowerSupplyClassProbe::new(host.sysfs),
    /// Per-CPU scheduler running and waiting time from /proc/schedstat.
    schedstat: ProbeToggle => |_, host| schedstat::probe(host.procfs, host.sysfs),
    /// The firmware's machine description (DMI), read once.
    dmi: ProbeToggle => |_, host| dmi::DmiProbe::new(host.sysfs),
    /// The kernel clock's NTP discipline state (sync, offset, error) from
    /// adjtimex(2), read only.
    timex: ProbeToggle => |_, _| timex::TimexProbe,
    /// Energy counters of Intel RAPL power zones from /sys/class/powercap.
    rapl: ProbeToggle => |_, host| rapl::RaplProbe::new(host.sysfs),
    /// Identity and state of NVMe controllers from /sys/class/nvme.
    nvme: ProbeToggle => |_, host| nvme::NvmeProbe::new(host.sysfs),
    /// Fibre Channel adapters' state and error counters from /sys/class/fc_host.
    fibrechannel: ProbeToggle => |_, host| fibrechannel::FibreChannelProbe::new(host.sysfs),
    /// InfiniBand adapters' port state, rate and counters from /sys/class/infiniband.
    infiniband: ProbeToggle => |_, host| infiniband::InfinibandProbe::new(host.sysfs),
    /// SCSI tape drives' I/O statistics from /sys/class/scsi_tape.
    tapestats: ProbeToggle => |_, host| tapestats::TapestatsProbe::new(host.sysfs),
    /// IPVS (LVS load balancer) totals and backends from /proc/net/ip_vs.
    ipvs: ProbeToggle => |_, host| ipvs::probe(host.procfs, host.sysfs),
    /// The NFS client's RPC and per-procedure counters from /proc/net/rpc/nfs.
    nfs: ProbeToggle => |_, host| nfs::probe(host.procfs, host.sysfs),
    /// The kernel NFS server's counters from /proc/net/rpc/nfsd.
    nfsd: ProbeToggle => |_, host| nfsd::probe(host.procfs, host.sysfs),
    /// Per-filesystem XFS statistics from /sys/fs/xfs.
    xfs: ProbeToggle => |_, host| xfs::XfsProbe::new(host.sysfs),
    /// Space allocation of Btrfs filesystems from /sys/fs/btrfs.
    btrfs: ProbeToggle => |_, host| btrfs::BtrfsProbe::new(host.sysfs),
    /// bcache cache sets from /sys/fs/bcache (without the priority stats).
    bcache: ProbeToggle => |_, host| bcache::BcacheProbe::new(host.sysfs),
    /// OpenZFS kstats (ARC, pools, datasets) from /proc/spl/kstat/zfs.
    zfs: ProbeToggle => |_, host| zfs::ZfsProbe::new(host.procfs),
    /// Metrics from `*.prom` files that cron jobs and scripts write.
    pub textfile: textfile::TextfileConfig =>
        |section, _| textfile::TextfileProbe::new(section.directory.clone()),
    /// State of the listed systemd units.
    pub systemd: systemd::SystemdConfig => |section, _| systemd::SystemdProbe::new(section),
    /// Per-process CPU, memory and file descriptors (off by default).
    pub process: process::ProcessConfig =>
        |section, host| process::ProcessProbe::new(host.procfs.clone(), section),
    /// TCP, HTTP(S) and TLS checks of services (blackbox_exporter style).
    pub service: service::ServiceConfig => |section, _| service::ServiceProbe::new(section),
    /// SNMP polling of network devices (snmp_exporter's if_mib names).
    pub snmp: snmp::SnmpConfig =>
        |section, host| snmp::SnmpProbe::new(section, host.probe_timeout, host.interval),
}

use std::path::{Path, PathBuf};
use std::time::Duration;

use countywatch_wire::{Event, MetricFamily};

use parse_error::ProbeParseError;
use toggle::ProbeToggle;

pub use registry::{build, validate};

/// What every probe implements.
pub trait Probe: Send {
    /// The probe's name, used in self-metrics (`probe="cpu"`) and logs.
    fn name(&self) -> &'static str;

    /// The node_exporter collectors this probe stands for, as the
    /// `collector` label of `node_scrape_collector_*` names them. A probe
    /// covering several (cpu covers `cpu` and `stat`) reports its one
    /// outcome under each; a probe node_exporter has no collector for
    /// (service checks, SNMP) lists none. Asked once, when the agent starts.
    fn collectors(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// Reads the host and appends metric families to `out`.
    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError>;

    /// How often the probe runs, when not every collection.
    fn interval(&self) -> Option<Duration> {
        None
    }

    /// Whether the probe runs on a thread of its own instead of in turn
    /// with the others: probes that wait on the network or another daemon
    /// (service checks, SNMP, systemd, network filesystems) would delay
    /// every probe queued behind them. Asked once, when the agent starts.
    fn needs_own_thread(&self) -> bool {
        false
    }

    /// Takes the events the probe saw since it was last asked: state
    /// changes of the network devices it polls. Host probes see none. The
    /// collection returns them beside the families and the run loop spools
    /// them in the same batch, so a probe still never touches the spool.
    fn take_events(&mut self) -> Vec<Event> {
        Vec::new()
    }
}

/// A probe with its own interval, as its config section sets it.
struct Every {
    /// The probe.
    probe: Box<dyn Probe>,
    /// Its interval.
    interval: Duration,
}

impl Probe for Every {
    fn name(&self) -> &'static str {
        self.probe.name()
    }

    fn collectors(&self) -> Vec<&'static str> {
        self.probe.collectors()
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        self.probe.collect(out)
    }

    fn interval(&self) -> Option<Duration> {
        Some(self.interval)
    }

    fn needs_own_thread(&self) -> bool {
        self.probe.needs_own_thread()
    }

    fn take_events(&mut self) -> Vec<Event> {
        self.probe.take_events()
    }
}

/// Why a probe produced nothing (or only part of its metrics).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A file the probe needs could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file had content the probe does not understand.
    #[error("cannot parse {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        source: ProbeParseError,
    },
    /// The probe's source does not exist on this host (a kernel module not
    /// loaded, a feature not built): reported as a failed collector, as
    /// node_exporter does, but logged quietly and not counted as an error.
    #[error("{0} does not exist on this host")]
    Absent(PathBuf),
    /// The kernel's load averages could not be read (through sysinfo).
    #[error("{0}")]
    LoadAverage(sysinfo::Error),
    /// adjtimex(2) failed.
    #[error("adjtimex: {0}")]
    Adjtimex(std::io::Error),
    /// A command the probe runs could not be started.
    #[error("cannot run {}: {source}", program.display())]
    Run {
        /// The command.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `systemctl show` exited with a failure.
    #[error("{} show failed ({status}): {stderr}", program.display())]
    ShowFailed {
        /// The systemctl binary.
        program: PathBuf,
        /// How it exited.
        status: std::process::ExitStatus,
        /// What it wrote on standard error, trimmed.
        stderr: String,
    },
    /// A probe that needs the async runtime ran outside it.
    #[error("no async runtime: {0}")]
    NoRuntime(tokio::runtime::TryCurrentError),
    /// The probe panicked; its thread caught it.
    #[error("the probe panicked")]
    Panicked,
    /// The probe did not finish within the collection's timeout; it is
    /// abandoned on its thread and taken back when it returns.
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
    /// The probe timed out in an earlier collection (or was lost there)
    /// and has not come back, so this collection could not run it.
    #[error("still running from an earlier collection (timed out)")]
    StillRunning,
}

/// The entries `<prefix><N>` of a sysfs directory (`mc0`, `csrow10`,
/// `clocksource0`) as (N, path), sorted by N; none when it cannot be read.
pub(crate) fn numbered_entries(dir: &Path, prefix: &str) -> Vec<(String, PathBuf)> {
    let mut found: Vec<(u32, String, PathBuf)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let number = name.strip_prefix(prefix)?;
                    let parsed = number.parse::<u32>().ok()?;
                    Some((parsed, number.to_string(), entry.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
        .into_iter()
        .map(|(_, number, path)| (number, path))
        .collect()
}

/// The most a sysfs attribute holds: the kernel formats one into a page.
pub(crate) const ATTRIBUTE_MAX: usize = 4096;

/// Reads a sysfs attribute with one read of at most `limit` bytes (up to
/// [`ATTRIBUTE_MAX`]): open, read, close. sysfs hands an attribute over
/// whole in the first read, so this skips the size lookup and the second
/// read to find the end that `read_to_string` makes, for probes that read
/// dozens of attributes per collection (netclass reads 23 per interface).
/// A driver that answers EAGAIN (some hwmon chips) gets no second try.
/// Invalid UTF-8 is replaced, as node_exporter does.
pub(crate) fn read_attribute(path: &Path, limit: usize) -> std::io::Result<String> {
    read_attribute_from(std::fs::File::open(path)?, limit)
}

/// One read of at most `limit` bytes from an open attribute.
pub(crate) fn read_attribute_from(
    mut file: std::fs::File,
    limit: usize,
) -> std::io::Result<String> {
    use std::io::Read;
    let mut buffer = [0_u8; ATTRIBUTE_MAX];
    let limit = limit.min(ATTRIBUTE_MAX);
    let length = file.read(&mut buffer[..limit])?;
    Ok(String::from_utf8_lossy(&buffer[..length]).into_owned())
}

/// How much one read of a pseudo-file asks for. /proc hands over at most
/// a page per read whatever is asked; asking for more costs nothing and
/// takes a sysfs attribute or a short /proc file in one go.
pub(crate) const PSEUDO_FILE_READ: usize = 16 * 1024;

/// Reads a /proc or /sys file whole, as `std::fs::read_to_string` would,
/// for less: pseudo-files report a size of 0, so the standard reader asks
/// the kernel for the size (a `statx`), then reads 32 bytes to find out
/// whether the file is empty, then grows its buffer read by read. This
/// reads in large pieces into a buffer on the stack and allocates the
/// text once. The end is still found by a read that returns nothing: a
/// short read from /proc does not mean the end. Invalid UTF-8 is
/// replaced, as node_exporter does.
pub(crate) fn read_pseudo_file(path: impl AsRef<Path>) -> std::io::Result<String> {
    read_stream(std::fs::File::open(path)?)
}

/// [`read_pseudo_file`] on a file just opened: reads it to the end.
pub(crate) fn read_stream(mut file: std::fs::File) -> std::io::Result<String> {
    use std::io::Read;
    let mut chunk = [0_u8; PSEUDO_FILE_READ];
    let mut text: Vec<u8> = Vec::new();
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => text.extend_from_slice(&chunk[..read]),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(text_from_bytes(text))
}

/// Bytes read from the kernel as text, invalid UTF-8 replaced.
pub(crate) fn text_from_bytes(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(invalid) => String::from_utf8_lossy(invalid.as_bytes()).into_owned(),
    }
}

/// [`text_from_bytes`] from a borrowed buffer: one allocation, of the
/// text's size.
pub(crate) fn text_from_slice(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Lists a collector's source directory (/sys/class/hwmon): once it was
/// found missing, `absent` is set and the directory is not looked at
/// again, so a collector the host has no hardware for costs nothing.
pub(crate) fn read_source_dir(
    dir: &Path,
    absent: &mut bool,
) -> Result<std::fs::ReadDir, ProbeError> {
    if *absent {
        return Err(ProbeError::Absent(dir.to_path_buf()));
    }
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            *absent = true;
            Err(ProbeError::Absent(dir.to_path_buf()))
        }
        Err(source) => Err(ProbeError::Read {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// An info family: one sample of value 1 carrying `labels`
/// (`node_uname_info`, `node_dmi_info`).
pub(crate) fn info_family(
    name: &'static str,
    help: &'static str,
    labels: &[(&'static str, String)],
) -> MetricFamily {
    let mut family = MetricFamily::new(name, help, countywatch_wire::MetricKind::Gauge);
    let pairs: Vec<(&'static str, &str)> = labels
        .iter()
        .map(|(label, value)| (*label, value.as_str()))
        .collect();
    family.push(&pairs, 1.0);
    family
}

/// Reads a small pseudo-file completely.
pub(crate) fn read_file(path: PathBuf) -> Result<(PathBuf, String), ProbeError> {
    match read_pseudo_file(&path) {
        Ok(text) => Ok((path, text)),
        Err(source) => Err(ProbeError::Read { path, source }),
    }
}

/// For tests: each family's name and its first sample's value, the shape
/// most probes' single-sample families are checked in.
#[cfg(test)]
pub(crate) fn first_values(families: &[MetricFamily]) -> Vec<(&str, f64)> {
    families
        .iter()
        .map(|family| (family.name.as_ref(), family.samples[0].value))
        .collect()
}

/// For tests: a sample's labels as (name, value) pairs.
#[cfg(test)]
pub(crate) fn label_pairs(sample: &countywatch_wire::Sample) -> Vec<(&str, &str)> {
    sample
        .labels
        .iter()
        .map(|(name, value)| (name.as_ref(), value.as_ref()))
        .collect()
}

/// For tests: writes `files` (relative path, text) under `root`, creating
/// the directories.
#[cfg(test)]
pub(crate) fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (relative, text) in files {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// For tests: the value of the first sample of family `name` that carries
/// every label value in `label_values`, whatever the label names.
#[cfg(test)]
pub(crate) fn sample_value(
    families: &[MetricFamily],
    name: &str,
    label_values: &[&str],
) -> Option<f64> {
    families
        .iter()
        .find(|family| family.name == name)?
        .samples
        .iter()
        .find(|sample| {
            label_values
                .iter()
                .all(|wanted| sample.labels.iter().any(|(_, value)| value == wanted))
        })
        .map(|sample| sample.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pseudo_file_is_read_whole_in_any_size_and_bad_bytes_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        // Several reads' worth, not a multiple of the read size.
        let long: String = (0..9_000).map(|line| format!("line {line}\n")).collect();
        assert!(long.len() > 4 * PSEUDO_FILE_READ);
        std::fs::write(dir.path().join("long"), &long).unwrap();
        assert_eq!(read_pseudo_file(dir.path().join("long")).unwrap(), long);
        std::fs::write(dir.path().join("empty"), "").unwrap();
        assert_eq!(read_pseudo_file(dir.path().join("empty")).unwrap(), "");
        std::fs::write(dir.path().join("bad"), b"eth\xff0\n").unwrap();
        assert_eq!(
            read_pseudo_file(dir.path().join("bad")).unwrap(),
            "eth\u{fffd}0\n"
        );
        let missing = read_pseudo_file(dir.path().join("missing")).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        // A real seq_file, which reports a size of 0 and hands over a
        // page per read.
        let meminfo = read_pseudo_file("/proc/meminfo").unwrap();
        assert!(meminfo.starts_with("MemTotal:") && meminfo.ends_with('\n'));
    }
}
