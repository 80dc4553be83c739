//! The filesystem probe: size, free space and inodes of mounted
//! filesystems, as node_exporter's filesystem collector reports them
//! (`node_filesystem_size_bytes{device,fstype,mountpoint}` and siblings),
//! with node_exporter's default excluded mount points and types.
//!
//! Each filesystem is stat'ed on its own thread under `stat_timeout`: a hung
//! NFS or CIFS server blocks `statvfs` in the kernel, possibly for ever. A
//! mount that does not answer in time is reported with
//! `node_filesystem_device_error 1` and is not stat'ed again until its
//! stuck thread returns, so one dead server costs one thread, not one per
//! collection (node_exporter's issues #244 and #1353). Local disk and
//! memory filesystems ([`ANSWERS_FROM_MEMORY`]) are stat'ed on the probe's
//! own thread instead: their `statvfs` reads counters the kernel keeps in
//! memory and cannot hang on a device or a server, and a thread per mount
//! per collection was a measurable part of the agent's CPU
//! (docs/benchmarks.md, agent_footprint). A local mount below a network
//! one still gets its own thread, since the path walk to it crosses the
//! network filesystem.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use countywatch_config::config_file::Problems;
use countywatch_config::duration::PromDuration;
use countywatch_wire::{MetricFamily, MetricKind};
use serde::Deserialize;

use super::kept_files::KeptFiles;
use super::toggle::{ProbeSection, ProbeToggle};
use super::{Probe, ProbeError};

/// The filesystem probe's config section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesystemConfig {
    /// Whether the probe runs.
    pub enabled: bool,
    /// How often the probe runs; defaults to the agent's interval.
    pub interval: Option<PromDuration>,
    /// How long one filesystem's `statvfs` may take before the mount is
    /// reported as failing and skipped until it answers. Must be shorter
    /// than `probes.timeout`.
    pub stat_timeout: PromDuration,
}

impl Default for FilesystemConfig {
    fn default() -> Self {
        FilesystemConfig {
            enabled: true,
            interval: None,
            stat_timeout: PromDuration(Duration::from_secs(2)),
        }
    }
}

impl ProbeSection for FilesystemConfig {
    fn toggle(&self) -> ProbeToggle {
        ProbeToggle {
            enabled: self.enabled,
            interval: self.interval,
        }
    }

    fn validate(&self, probe_timeout: Duration, problems: &mut Problems) {
        validate(self, probe_timeout, problems);
    }
}

/// Checks the section against the overall probe timeout.
pub fn validate(config: &FilesystemConfig, probe_timeout: Duration, problems: &mut Problems) {
    if config.stat_timeout.get() >= probe_timeout || config.stat_timeout.get().is_zero() {
        problems.general(format!(
            "probes.filesystem.stat_timeout {} must be above 0 and shorter than probes.timeout",
            config.stat_timeout
        ));
    }
}

/// Filesystem types node_exporter excludes by default
/// (`--collector.filesystem.fs-types-exclude`).
const EXCLUDED_FS_TYPES: [&str; 25] = [
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "procfs",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "erofs",
    "sysfs",
    "tracefs",
];

/// Mount points node_exporter excludes by default
/// (`--collector.filesystem.mount-points-exclude`): these directories and
/// everything below them.
const EXCLUDED_MOUNT_ROOTS: [&str; 4] = ["/dev", "/proc", "/sys", "/run/credentials/"];

/// Mount-point prefixes excluded only below them, not the directory itself.
const EXCLUDED_MOUNT_CHILDREN: [&str; 2] = ["/var/lib/docker/", "/var/lib/containers/storage/"];

/// Filesystem types whose `statvfs` answers from counters in memory,
/// without waiting on a device or a server.
const ANSWERS_FROM_MEMORY: [&str; 8] = [
    "ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "vfat", "f2fs",
];

/// One line of /proc/mounts that survived the exclusions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// The mounted device (`/dev/sda1`, `tmpfs`, `server:/export`).
    pub device: String,
    /// Where it is mounted, with the kernel's octal escapes decoded.
    pub mountpoint: String,
    /// The filesystem type.
    pub fstype: String,
    /// Whether it is mounted read-only.
    pub readonly: bool,
}

/// Reads `<procfs>/mounts` and stats each filesystem.
pub struct FilesystemProbe {
    /// procfs root, `/proc` unless configured.
    procfs: PathBuf,
    /// Time limit of one filesystem's stat.
    stat_timeout: Duration,
    /// The stat function; tests swap in one that hangs.
    stat: fn(&str) -> Option<Usage>,
    /// Mount points whose stat has not returned yet, with the channel its
    /// thread will answer on.
    stuck: HashMap<String, mpsc::Receiver<Option<Usage>>>,
    /// The files read each collection, kept open (`kept_files`).
    kept: KeptFiles,
}

impl FilesystemProbe {
    /// A probe reading under `procfs`.
    pub fn new(procfs: PathBuf, stat_timeout: Duration) -> Self {
        FilesystemProbe {
            procfs,
            stat_timeout,
            stat,
            stuck: HashMap::new(),
            kept: KeptFiles::default(),
        }
    }

    /// Stats every mount, those that could hang each on its own thread,
    /// and waits for those threads until the deadline. Mounts still stuck
    /// from earlier are not tried again.
    fn stat_all(&mut self, mounts: &[Mount]) -> Vec<Option<Usage>> {
        let (stuck, stat) = (&mut self.stuck, self.stat);
        let inline = answers_from_memory(mounts);
        let pending: Vec<Pending> = mounts
            .iter()
            .zip(inline)
            .map(|(mount, inline)| {
                if inline {
                    return Pending::Done(stat(&mount.mountpoint));
                }
                if let Some(receiver) = stuck.get(&mount.mountpoint) {
                    match receiver.try_recv() {
                        Err(mpsc::TryRecvError::Empty) => return Pending::Done(None),
                        Ok(_) | Err(mpsc::TryRecvError::Disconnected) => {
                            tracing::info!(mountpoint = %mount.mountpoint, "filesystem answers again");
                            stuck.remove(&mount.mountpoint);
                        }
                    }
                }
                let (sender, receiver) = mpsc::channel();
                let mountpoint = mount.mountpoint.clone();
                let spawned = std::thread::Builder::new()
                    .name("statvfs".to_string())
                    .stack_size(64 * 1024)
                    .spawn(move || {
                        let _ = sender.send(stat(&mountpoint));
                    });
                match spawned {
                    Ok(_) => Pending::Thread(receiver),
                    Err(_) => Pending::Done(None),
                }
            })
            .collect();
        let deadline = Instant::now() + self.stat_timeout;
        let mut usages = Vec::with_capacity(mounts.len());
        for (mount, pending) in mounts.iter().zip(pending) {
            let receiver = match pending {
                Pending::Done(usage) => {
                    usages.push(usage);
                    continue;
                }
                Pending::Thread(receiver) => receiver,
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(remaining) {
                Ok(usage) => usages.push(usage),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    tracing::warn!(
                        mountpoint = %mount.mountpoint,
                        timeout = ?self.stat_timeout,
                        "filesystem did not answer statvfs in time; skipping it until it does"
                    );
                    self.stuck.insert(mount.mountpoint.clone(), receiver);
                    usages.push(None);
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => usages.push(None),
            }
        }
        usages
    }
}

/// One mount's stat: done (on the probe's thread, or not tried because it
/// is still stuck), or running on its own thread.
enum Pending {
    /// The figures, or `None` when there are none to report.
    Done(Option<Usage>),
    /// The thread's answer will come on this channel.
    Thread(mpsc::Receiver<Option<Usage>>),
}

/// For each mount, whether it can be stat'ed without a thread: its type
/// answers from memory and no mount of another type lies on the path to
/// it.
fn answers_from_memory(mounts: &[Mount]) -> Vec<bool> {
    let is_local = |mount: &Mount| ANSWERS_FROM_MEMORY.contains(&mount.fstype.as_str());
    let crosses = |mount: &Mount, other: &Mount| {
        let ancestor = other.mountpoint.trim_end_matches('/');
        other.mountpoint != mount.mountpoint
            && mount
                .mountpoint
                .strip_prefix(ancestor)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    mounts
        .iter()
        .map(|mount| {
            is_local(mount)
                && !mounts
                    .iter()
                    .any(|other| !is_local(other) && crosses(mount, other))
        })
        .collect()
}

/// The statvfs figures of one filesystem, in bytes and inodes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Usage {
    /// Total size.
    pub size: f64,
    /// Free space, including what only root may use.
    pub free: f64,
    /// Space available to unprivileged users.
    pub avail: f64,
    /// Total inodes.
    pub files: f64,
    /// Free inodes.
    pub files_free: f64,
}

impl Probe for FilesystemProbe {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["filesystem"]
    }

    // A network filesystem answers statvfs at the network's pace.
    fn needs_own_thread(&self) -> bool {
        true
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let (_, text) = self.kept.read_file(self.procfs.join("mounts"))?;
        let mounts = parse_mounts(&text);
        let usages = self.stat_all(&mounts);
        out.extend(families(&mounts, &usages));
        Ok(())
    }
}

fn stat(mountpoint: &str) -> Option<Usage> {
    let stat = rustix::fs::statvfs(mountpoint).ok()?;
    // node_exporter multiplies by the block size (f_bsize); we do the same so
    // that the figures agree exactly.
    let block = stat.f_bsize as f64;
    Some(Usage {
        size: stat.f_blocks as f64 * block,
        free: stat.f_bfree as f64 * block,
        avail: stat.f_bavail as f64 * block,
        files: stat.f_files as f64,
        files_free: stat.f_ffree as f64,
    })
}

/// Builds the families from the mounts and their usage (`None` where the
/// filesystem could not be stat'ed, reported as a device error).
pub fn families(mounts: &[Mount], usages: &[Option<Usage>]) -> Vec<MetricFamily> {
    let gauge = |name: &'static str, help: &'static str| MetricFamily::new(name, help, MetricKind::Gauge);
    let mut size = gauge("node_filesystem_size_bytes", "Filesystem size in bytes.");
    let mut free = gauge(
        "node_filesystem_free_bytes",
        "Filesystem free space in bytes.",
    );
    let mut avail = gauge(
        "node_filesystem_avail_bytes",
        "Filesystem space available to non-root users in bytes.",
    );
    let mut files = gauge("node_filesystem_files", "Filesystem total file nodes.");
    let mut files_free = gauge(
        "node_filesystem_files_free",
        "Filesystem total free file nodes.",
    );
    let mut readonly = gauge("node_filesystem_readonly", "Filesystem read-only status.");
    let mut device_error = gauge(
        "node_filesystem_device_error",
        "Whether an error occurred while getting statistics for the given device.",
    );
    for (mount, usage) in mounts.iter().zip(usages) {
        let labels = [
            ("device", mount.device.as_str()),
            ("fstype", mount.fstype.as_str()),
            ("mountpoint", mount.mountpoint.as_str()),
        ];
        device_error.push(&labels, if usage.is_some() { 0.0 } else { 1.0 });
        let Some(usage) = usage else {
            continue;
        };
        size.push(&labels, usage.size);
        free.push(&labels, usage.free);
        avail.push(&labels, usage.avail);
        files.push(&labels, usage.files);
        files_free.push(&labels, usage.files_free);
        readonly.push(&labels, if mount.readonly { 1.0 } else { 0.0 });
    }
    let mut all = vec![size, free, avail, files, files_free, readonly, device_error];
    all.retain(|family| !family.samples.is_empty());
    all
}

/// Parses /proc/mounts, drops excluded mounts and keeps the last mount of
/// each mount point (a later mount hides an earlier one).
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    let mut by_mountpoint: BTreeMap<String, Mount> = BTreeMap::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(device), Some(mountpoint), Some(fstype), Some(options)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let mountpoint = unescape_octal(mountpoint);
        if is_excluded(&mountpoint, fstype) {
            continue;
        }
        let mount = Mount {
            device: unescape_octal(device),
            mountpoint: mountpoint.clone(),
            fstype: fstype.to_string(),
            readonly: options.split(',').any(|option| option == "ro"),
        };
        by_mountpoint.insert(mountpoint, mount);
    }
    by_mountpoint.into_values().collect()
}

fn is_excluded(mountpoint: &str, fstype: &str) -> bool {
    if EXCLUDED_FS_TYPES.contains(&fstype) {
        return true;
    }
    let under = |root: &str| {
        let root = root.trim_end_matches('/');
        mountpoint == root || mountpoint.starts_with(&format!("{root}/"))
    };
    EXCLUDED_MOUNT_ROOTS.iter().any(|root| {
        if root.ends_with('/') {
            mountpoint.starts_with(root) && mountpoint.len() > root.len()
        } else {
            under(root)
        }
    }) || EXCLUDED_MOUNT_CHILDREN
        .iter()
        .any(|prefix| mountpoint.starts_with(prefix) && mountpoint.len() > prefix.len())
}

/// Decodes the kernel's `\ooo` escapes (space is `\040`). Malformed escapes
/// are kept as they are.
fn unescape_octal(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\\'
            && index + 3 < bytes.len()
            && bytes[index + 1..index + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value = bytes[index + 1..index + 4]
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            if let Ok(byte) = u8::try_from(value) {
                decoded.push(byte);
                index += 4;
                continue;
            }
        }
        decoded.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "sysfs /sys sysfs rw,nosuid 0 0\n\
proc /proc proc rw 0 0\n\
/dev/vda1 / ext4 rw,relatime 0 0\n\
tmpfs /run tmpfs rw,nosuid 0 0\n\
/dev/vdb1 /srv/my\\040data xfs ro,relatime 0 0\n\
overlay /var/lib/docker/overlay2/abc/merged overlay rw 0 0\n\
/dev/vdc1 /var/lib/docker ext4 rw 0 0\n\
/dev/vdd1 /var/lib/docker/volumes/x ext4 rw 0 0\n\
none /run/credentials/systemd-sysctl.service ramfs ro 0 0\n\
cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n\
/dev/vde1 / ext4 rw 0 0\n\
short line\n";

    #[test]
    fn exclusions_and_escapes_follow_node_exporter() {
        let mounts = parse_mounts(MOUNTS);
        let got: Vec<(&str, &str, bool)> = mounts
            .iter()
            .map(|mount| {
                (
                    mount.device.as_str(),
                    mount.mountpoint.as_str(),
                    mount.readonly,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("/dev/vde1", "/", false),
                ("tmpfs", "/run", false),
                ("/dev/vdb1", "/srv/my data", true),
                ("/dev/vdc1", "/var/lib/docker", false),
            ]
        );
    }

    #[test]
    fn a_filesystem_that_cannot_be_stated_reports_a_device_error_only() {
        let mounts = parse_mounts("/dev/a / ext4 rw 0 0\nsrv:/x /mnt/nfs nfs4 rw 0 0\n");
        let usage = Usage {
            size: 100.0,
            free: 50.0,
            avail: 40.0,
            files: 10.0,
            files_free: 5.0,
        };
        let families = families(&mounts, &[Some(usage), None]);
        let names: Vec<&str> = families.iter().map(|family| family.name.as_ref()).collect();
        assert_eq!(names.len(), 7);
        let size = &families[0];
        assert_eq!(size.samples.len(), 1);
        assert_eq!(size.samples[0].value, 100.0);
        let errors = families
            .iter()
            .find(|f| f.name == "node_filesystem_device_error")
            .unwrap();
        let values: Vec<f64> = errors.samples.iter().map(|sample| sample.value).collect();
        assert_eq!(values, vec![0.0, 1.0]);
    }

    fn hangs_on_mnt(mountpoint: &str) -> Option<Usage> {
        if mountpoint == "/mnt/nfs" {
            std::thread::sleep(Duration::from_millis(600));
        }
        Some(Usage {
            size: 1.0,
            free: 1.0,
            avail: 1.0,
            files: 1.0,
            files_free: 1.0,
        })
    }

    fn device_errors(families: &[MetricFamily]) -> Vec<(String, f64)> {
        let errors = families
            .iter()
            .find(|f| f.name == "node_filesystem_device_error")
            .unwrap();
        errors
            .samples
            .iter()
            .map(|sample| (sample.labels[2].1.to_string(), sample.value))
            .collect()
    }

    #[test]
    fn a_hung_mount_is_reported_and_skipped_until_it_answers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("mounts"),
            "/dev/a / ext4 rw 0 0\nsrv:/x /mnt/nfs nfs4 rw 0 0\n",
        )
        .unwrap();
        let mut probe = FilesystemProbe::new(dir.path().to_path_buf(), Duration::from_millis(100));
        probe.stat = hangs_on_mnt;
        let mut out = Vec::new();
        let started = Instant::now();
        probe.collect(&mut out).unwrap();
        assert!(started.elapsed() < Duration::from_millis(500));
        let expected = vec![("/".to_string(), 0.0), ("/mnt/nfs".to_string(), 1.0)];
        assert_eq!(device_errors(&out), expected);
        // While it hangs the mount is not stat'ed again (no second thread).
        out.clear();
        probe.collect(&mut out).unwrap();
        assert_eq!(device_errors(&out), expected);
        assert_eq!(probe.stuck.len(), 1);
        std::thread::sleep(Duration::from_millis(700));
        // Once it answered, it is tried again (and hangs again here).
        out.clear();
        probe.collect(&mut out).unwrap();
        assert_eq!(device_errors(&out), expected);
    }

    #[test]
    fn only_local_mounts_off_any_network_path_are_stated_without_a_thread() {
        let mounts = parse_mounts(
            "/dev/a / ext4 rw 0 0\n\
             tmpfs /run tmpfs rw 0 0\n\
             srv:/x /mnt/nfs nfs4 rw 0 0\n\
             /dev/b /mnt/nfs/local xfs rw 0 0\n\
             /dev/c /mnt/nfs-like btrfs rw 0 0\n\
             fuse /mnt/fuse fuse.sshfs rw 0 0\n",
        );
        let inline: Vec<(&str, bool)> = mounts
            .iter()
            .map(|mount| mount.mountpoint.as_str())
            .zip(answers_from_memory(&mounts))
            .collect();
        assert_eq!(
            inline,
            vec![
                ("/", true),
                ("/mnt/fuse", false),
                ("/mnt/nfs", false),
                ("/mnt/nfs-like", true),
                ("/mnt/nfs/local", false),
                ("/run", true),
            ]
        );
    }

    #[test]
    fn root_filesystem_is_stated_for_real() {
        let usage = stat("/").unwrap();
        assert!(usage.size > 0.0 && usage.avail <= usage.free && usage.free <= usage.size);
    }
}
