//! The system probe: what node_exporter's time, uname, os and filefd
//! collectors report: `node_time_seconds`, `node_uname_info`,
//! `node_os_info`, `node_os_version`, `node_filefd_allocated`,
//! `node_filefd_maximum`, and the clock sources of
//! /sys/devices/system/clocksource (`node_time_clocksource_available_info`,
//! `node_time_clocksource_current_info`), and the local zone's offset
//! (`node_time_zone_offset_seconds{time_zone}`, the zone's abbreviation as
//! Go names it: `UTC`, `CET`, `EDT`). (`node_boot_time_seconds` comes with /proc/stat,
//! in the cpu probe, as in node_exporter's stat collector.)

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use countywatch_wire::{MetricFamily, MetricKind};

use super::kept_files::KeptFiles;
use super::parse_error::ProbeParseError;
use super::{Probe, ProbeError, info_family};

/// The os-release keys node_exporter turns into `node_os_info` labels, in
/// its order (label name, os-release key).
const OS_LABELS: [(&str, &str); 12] = [
    ("build_id", "BUILD_ID"),
    ("id", "ID"),
    ("id_like", "ID_LIKE"),
    ("image_id", "IMAGE_ID"),
    ("image_version", "IMAGE_VERSION"),
    ("name", "NAME"),
    ("pretty_name", "PRETTY_NAME"),
    ("variant", "VARIANT"),
    ("variant_id", "VARIANT_ID"),
    ("version", "VERSION"),
    ("version_codename", "VERSION_CODENAME"),
    ("version_id", "VERSION_ID"),
];

/// Reads the clock, uname, os-release and `<procfs>/sys/fs/file-nr`.
pub struct SystemProbe {
    /// procfs root, `/proc` unless configured.
    procfs: PathBuf,
    /// sysfs root, `/sys` unless configured.
    sysfs: PathBuf,
    /// Where os-release may be, first found wins (the os-release(5) order).
    os_release: Vec<PathBuf>,
    /// The files read each collection, kept open (`kept_files`).
    kept: KeptFiles,
}

impl SystemProbe {
    /// A probe reading under `procfs`, `sysfs` and the host's os-release.
    pub fn new(procfs: PathBuf, sysfs: PathBuf) -> Self {
        SystemProbe {
            procfs,
            sysfs,
            os_release: vec![
                PathBuf::from("/etc/os-release"),
                PathBuf::from("/usr/lib/os-release"),
            ],
            kept: KeptFiles::default(),
        }
    }
}

impl Probe for SystemProbe {
    fn name(&self) -> &'static str {
        "system"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["time", "uname", "os", "filefd"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs_f64())
            .unwrap_or(0.0);
        out.push(MetricFamily::single(
            "node_time_seconds",
            "System time in seconds since epoch (1970).",
            MetricKind::Gauge,
            now,
        ));
        out.push(zone_family(
            &jiff::tz::TimeZone::system(),
            jiff::Timestamp::now(),
        ));
        out.extend(clocksource_families(&self.sysfs));
        let uname = rustix::system::uname();
        let text = |value: &std::ffi::CStr| value.to_string_lossy().into_owned();
        out.push(uname_family(&[
            ("domainname", text(uname.domainname())),
            ("machine", text(uname.machine())),
            ("nodename", text(uname.nodename())),
            ("release", text(uname.release())),
            ("sysname", text(uname.sysname())),
            ("version", text(uname.version())),
        ]));
        if let Some(text) = self
            .os_release
            .iter()
            .find_map(|path| super::read_pseudo_file(path).ok())
        {
            out.extend(os_families(&parse_os_release(&text)));
        }
        let (path, text) = self.kept.read_file(self.procfs.join("sys/fs/file-nr"))?;
        let [allocated, maximum] = parse_file_nr(&text).ok_or(ProbeError::Parse {
            path,
            source: ProbeParseError::Malformed("expected three numbers"),
        })?;
        out.push(MetricFamily::single(
            "node_filefd_allocated",
            "File descriptor statistics: allocated.",
            MetricKind::Gauge,
            allocated,
        ));
        out.push(MetricFamily::single(
            "node_filefd_maximum",
            "File descriptor statistics: maximum.",
            MetricKind::Gauge,
            maximum,
        ));
        Ok(())
    }
}

/// `node_time_zone_offset_seconds` of `zone` at `now`.
fn zone_family(zone: &jiff::tz::TimeZone, now: jiff::Timestamp) -> MetricFamily {
    let info = zone.to_offset_info(now);
    let mut family = MetricFamily::new(
        "node_time_zone_offset_seconds",
        "System time zone offset in seconds.",
        MetricKind::Gauge,
    );
    family.push(
        &[("time_zone", info.abbreviation())],
        f64::from(info.offset().seconds()),
    );
    family
}

/// The clock sources of each `clocksource<N>` device, as node_exporter's
/// time collector reports them; nothing where sysfs has none.
fn clocksource_families(sysfs: &Path) -> Vec<MetricFamily> {
    let mut available = MetricFamily::new(
        "node_time_clocksource_available_info",
        "Available clocksources read from '/sys/devices/system/clocksource'.",
        MetricKind::Gauge,
    );
    let mut current = MetricFamily::new(
        "node_time_clocksource_current_info",
        "Current clocksource read from '/sys/devices/system/clocksource'.",
        MetricKind::Gauge,
    );
    let devices = super::numbered_entries(&sysfs.join("devices/system/clocksource"), "clocksource");
    for (device, path) in devices {
        let read = |file: &str| super::read_pseudo_file(path.join(file)).unwrap_or_default();
        for source in read("available_clocksource").split_whitespace() {
            available.push(&[("clocksource", source), ("device", &device)], 1.0);
        }
        if let Some(source) = read("current_clocksource").split_whitespace().next() {
            current.push(&[("clocksource", source), ("device", &device)], 1.0);
        }
    }
    let mut families = vec![available, current];
    families.retain(|family| !family.samples.is_empty());
    families
}

fn uname_family(labels: &[(&'static str, String)]) -> MetricFamily {
    info_family(
        "node_uname_info",
        "Labeled system information as provided by the uname system call.",
        labels,
    )
}

/// Parses os-release(5): `KEY=value` lines, values optionally in single or
/// double quotes with backslash escapes; comments and blank lines skipped.
pub fn parse_os_release(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let unquoted = match (value.chars().next(), value.chars().last()) {
            (Some(open @ ('"' | '\'')), Some(close)) if value.len() >= 2 && open == close => {
                &value[1..value.len() - 1]
            }
            _ => value,
        };
        let mut decoded = String::with_capacity(unquoted.len());
        let mut chars = unquoted.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(escaped) = chars.next() {
                    decoded.push(escaped);
                }
            } else {
                decoded.push(c);
            }
        }
        pairs.push((key.trim().to_string(), decoded));
    }
    pairs
}

/// `node_os_info` (every label present, empty when unset) and
/// `node_os_version` (the major.minor of `VERSION_ID`, when numeric).
pub fn os_families(pairs: &[(String, String)]) -> Vec<MetricFamily> {
    let get = |key: &str| {
        pairs
            .iter()
            .rev()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
            .unwrap_or("")
    };
    let mut info = MetricFamily::new(
        "node_os_info",
        "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, \
         image_version, name, pretty_name, variant, variant_id, version, version_codename, \
         version_id.",
        MetricKind::Gauge,
    );
    let labels: Vec<(&str, &str)> = OS_LABELS
        .iter()
        .map(|(label, key)| (*label, get(key)))
        .collect();
    info.push(&labels, 1.0);
    let mut families = vec![info];
    // "12" -> 12, "22.04" -> 22.04, "3.18.4" -> 3.18: node_exporter keeps
    // major.minor so the value is a float.
    let mut parts = get("VERSION_ID").split('.');
    let major_minor = match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => format!("{major}.{minor}"),
        (Some(major), None) => major.to_string(),
        _ => String::new(),
    };
    if let Ok(version) = major_minor.parse::<f64>() {
        let mut family = MetricFamily::new(
            "node_os_version",
            "Metric containing the major.minor part of the OS version.",
            MetricKind::Gauge,
        );
        family.push(
            &[
                ("id", get("ID")),
                ("id_like", get("ID_LIKE")),
                ("name", get("NAME")),
            ],
            version,
        );
        families.push(family);
    }
    families
}

/// Parses /proc/sys/fs/file-nr: allocated, unused (always 0), maximum.
pub fn parse_file_nr(text: &str) -> Option<[f64; 2]> {
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    let allocated = fields.next()?.ok()?;
    let _unused = fields.next()?.ok()?;
    let maximum = fields.next()?.ok()?;
    Some([allocated, maximum])
}

#[cfg(test)]
mod tests {
    use super::*;

    const OS_RELEASE: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n\
NAME=\"Debian GNU/Linux\"\n\
# a comment\n\
VERSION_ID=\"12\"\n\
VERSION='12 (bookworm)'\n\
VERSION_CODENAME=bookworm\n\
ID=debian\n\
HOME_URL=\"https://www.debian.org/\"\n\
VARIANT=\"with \\\"quotes\\\"\"\n";

    #[test]
    fn os_release_as_node_exporter_labels_it() {
        let families = os_families(&parse_os_release(OS_RELEASE));
        let info = &families[0];
        let labels: Vec<(&str, &str)> = info.samples[0]
            .labels
            .iter()
            .map(|(name, value)| (name.as_ref(), value.as_ref()))
            .collect();
        assert_eq!(
            labels,
            vec![
                ("build_id", ""),
                ("id", "debian"),
                ("id_like", ""),
                ("image_id", ""),
                ("image_version", ""),
                ("name", "Debian GNU/Linux"),
                ("pretty_name", "Debian GNU/Linux 12 (bookworm)"),
                ("variant", "with \"quotes\""),
                ("variant_id", ""),
                ("version", "12 (bookworm)"),
                ("version_codename", "bookworm"),
                ("version_id", "12"),
            ]
        );
        assert_eq!(families[1].name, "node_os_version");
        assert_eq!(families[1].samples[0].value, 12.0);
        let ubuntu = os_families(&parse_os_release("VERSION_ID=\"3.18.4\"\n"));
        assert_eq!(ubuntu[1].samples[0].value, 3.18);
        assert_eq!(os_families(&parse_os_release("ID=x\n")).len(), 1);
    }

    #[test]
    fn zone_offset_with_go_abbreviations() {
        let new_york = jiff::tz::TimeZone::get("America/New_York").unwrap();
        let july: jiff::Timestamp = "2026-07-01T12:00:00Z".parse().unwrap();
        let family = zone_family(&new_york, july);
        assert_eq!(
            family.samples[0].owned_labels(),
            vec![("time_zone".to_string(), "EDT".to_string())]
        );
        assert_eq!(family.samples[0].value, -14400.0);
        let utc = zone_family(&jiff::tz::TimeZone::UTC, july);
        assert_eq!(utc.samples[0].labels[0].1, "UTC");
        assert_eq!(utc.samples[0].value, 0.0);
    }

    #[test]
    fn file_nr() {
        assert_eq!(parse_file_nr("705\t0\t2466170\n"), Some([705.0, 2466170.0]));
        assert_eq!(parse_file_nr("705\n"), None);
    }

    #[test]
    fn reads_a_fixture_procfs_and_the_real_clock() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sys/fs")).unwrap();
        std::fs::write(dir.path().join("sys/fs/file-nr"), "10 0 100\n").unwrap();
        let clocksource = dir.path().join("devices/system/clocksource/clocksource0");
        std::fs::create_dir_all(&clocksource).unwrap();
        std::fs::write(
            clocksource.join("available_clocksource"),
            "tsc kvm-clock \n",
        )
        .unwrap();
        std::fs::write(clocksource.join("current_clocksource"), "tsc\n").unwrap();
        let mut probe = SystemProbe::new(dir.path().to_path_buf(), dir.path().to_path_buf());
        probe.os_release = vec![dir.path().join("missing")];
        let mut out = Vec::new();
        probe.collect(&mut out).unwrap();
        let names: Vec<&str> = out.iter().map(|f| f.name.as_ref()).collect();
        assert_eq!(
            names,
            vec![
                "node_time_seconds",
                "node_time_zone_offset_seconds",
                "node_time_clocksource_available_info",
                "node_time_clocksource_current_info",
                "node_uname_info",
                "node_filefd_allocated",
                "node_filefd_maximum"
            ]
        );
        assert!(out[0].samples[0].value > 1.6e9);
        assert_eq!(out[2].samples.len(), 2);
        assert_eq!(
            out[3].samples[0].owned_labels(),
            vec![
                ("clocksource".to_string(), "tsc".to_string()),
                ("device".to_string(), "0".to_string())
            ]
        );
        assert_eq!(
            out[4].samples[0].owned_labels()[4],
            ("sysname".to_string(), "Linux".to_string())
        );
    }
}
