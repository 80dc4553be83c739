//! The selinux collector: whether SELinux is on and its modes, as
//! node_exporter serves them (`node_selinux_enabled`, and where enabled
//! `node_selinux_config_mode` and `node_selinux_current_mode`: 1
//! enforcing, 0 permissive, -1 disabled in the config).
//!
//! SELinux is on when selinuxfs is mounted (`<sysfs>/fs/selinux/enforce`
//! exists). It cannot be turned on without a reboot, so a host found
//! without it is not looked at again.

use std::path::PathBuf;

use countywatch_wire::{MetricFamily, MetricKind};

use super::{Probe, ProbeError};

/// Reads selinuxfs and /etc/selinux/config.
pub struct SelinuxProbe {
    /// `<sysfs>/fs/selinux/enforce`.
    enforce: PathBuf,
    /// `/etc/selinux/config`.
    config: PathBuf,
    /// Set once selinuxfs was found missing.
    disabled: bool,
}

impl SelinuxProbe {
    /// A probe reading under `sysfs`.
    pub fn new(sysfs: &std::path::Path) -> Self {
        SelinuxProbe {
            enforce: sysfs.join("fs/selinux/enforce"),
            config: PathBuf::from("/etc/selinux/config"),
            disabled: false,
        }
    }
}

impl Probe for SelinuxProbe {
    fn name(&self) -> &'static str {
        "selinux"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["selinux"]
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let enforce = if self.disabled {
            None
        } else {
            super::read_pseudo_file(&self.enforce).ok()
        };
        self.disabled = enforce.is_none();
        let config = match enforce {
            Some(_) => super::read_pseudo_file(&self.config).ok(),
            None => None,
        };
        out.extend(parse(enforce.as_deref(), config.as_deref()));
        Ok(())
    }
}

/// The families from selinuxfs's `enforce` (None: SELinux is off) and
/// the config file's `SELINUX=` line.
pub fn parse(enforce: Option<&str>, config: Option<&str>) -> Vec<MetricFamily> {
    let enabled = |value| {
        MetricFamily::single(
            "node_selinux_enabled",
            "SELinux is enabled, 1 is true, 0 is false",
            MetricKind::Gauge,
            value,
        )
    };
    let Some(enforce) = enforce else {
        return vec![enabled(0.0)];
    };
    let current = if enforce.trim() == "1" { 1.0 } else { 0.0 };
    let configured = config
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().strip_prefix("SELINUX="))
        .next_back()
        .map(|mode| match mode.trim().trim_matches('"') {
            "enforcing" => 1.0,
            "permissive" => 0.0,
            _ => -1.0,
        })
        .unwrap_or(-1.0);
    vec![
        enabled(1.0),
        MetricFamily::single(
            "node_selinux_config_mode",
            "Configured SELinux enforcement mode",
            MetricKind::Gauge,
            configured,
        ),
        MetricFamily::single(
            "node_selinux_current_mode",
            "Current SELinux enforcement mode",
            MetricKind::Gauge,
            current,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::first_values as values;

    #[test]
    fn modes_as_node_exporter_reports_them() {
        assert_eq!(
            values(&parse(None, None)),
            vec![("node_selinux_enabled", 0.0)]
        );
        // A CentOS 7 host, permissive at runtime, enforcing in its config.
        let config =
            "# This file controls the state of SELinux\nSELINUX=enforcing\nSELINUXTYPE=targeted\n";
        assert_eq!(
            values(&parse(Some("0\n"), Some(config))),
            vec![
                ("node_selinux_enabled", 1.0),
                ("node_selinux_config_mode", 1.0),
                ("node_selinux_current_mode", 0.0),
            ]
        );
        assert_eq!(values(&parse(Some("1\n"), None))[1].1, -1.0);
    }

    #[test]
    fn a_host_without_selinuxfs_is_not_looked_at_again() {
        let sysfs = tempfile::tempdir().unwrap();
        let mut probe = SelinuxProbe::new(sysfs.path());
        let mut out = Vec::new();
        probe.collect(&mut out).unwrap();
        std::fs::create_dir_all(sysfs.path().join("fs/selinux")).unwrap();
        std::fs::write(sysfs.path().join("fs/selinux/enforce"), "1\n").unwrap();
        probe.collect(&mut out).unwrap();
        assert_eq!(values(&out), vec![("node_selinux_enabled", 0.0); 2]);
    }
}
