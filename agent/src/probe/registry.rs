//! The probe registry: [`probe_kinds!`], the macro that turns the table in
//! `probe/mod.rs` into the probe modules, `ProbesConfig` and the list
//! [`build`] and [`validate`] read, so that adding a probe is its file and
//! one line in that table. It lives apart from `probe/mod.rs` so that the
//! probes never import the agent's config back through their parent.

use std::path::PathBuf;
use std::time::Duration;

use countywatch_config::config_file::Problems;

use super::toggle::{ProbeSection, ProbeToggle};
use super::*;
use crate::config::Config;

/// Generates, from one line per probe (its doc comment, the visibility of
/// its module, its config key, which is also its module's name, its
/// section's type and its constructor):
///
/// - the probe modules;
/// - `ProbesConfig`, one field per line in the table's order (serde's
///   "expected one of" lists them in that order), then `timeout`, and its
///   `Default`;
/// - `ProbesConfig::kinds`, the lines as [`ProbeKind`]s.
macro_rules! probe_kinds {
    ($(
        $(#[$doc:meta])*
        $visibility:vis $key:ident: $section:ty => $make:expr,
    )*) => {
        $($visibility mod $key;)*

        /// The probes: one section each, with its enable flag and interval.
        #[derive(Clone, Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct ProbesConfig {
            $(
                $(#[$doc])*
                pub $key: $section,
            )*
            /// How long one probe may run before the collection moves on without it.
            pub timeout: countywatch_config::duration::PromDuration,
        }

        impl Default for ProbesConfig {
            fn default() -> Self {
                ProbesConfig {
                    $($key: <$section>::default(),)*
                    timeout: countywatch_config::duration::PromDuration(
                        std::time::Duration::from_secs(5),
                    ),
                }
            }
        }

        impl ProbesConfig {
            /// Every line of the table, in its order, with this config's
            /// section.
            fn kinds(&self) -> Vec<registry::ProbeKind<'_>> {
                vec![$(
                    registry::ProbeKind {
                        key: stringify!($key),
                        section: &self.$key,
                        make: {
                            let make = registry::constructor::<$section, _, _>($make);
                            Box::new(move |host| Box::new(make(&self.$key, host)))
                        },
                    },
                )*]
            }
        }
    };
}

/// One line of the probe table, with its section of a config.
pub(super) struct ProbeKind<'a> {
    /// The config key, which is also the probe's name.
    pub(super) key: &'static str,
    /// The probe's section.
    pub(super) section: &'a dyn ProbeSection,
    /// Builds the probe from its section.
    pub(super) make: MakeProbe<'a>,
}

/// Builds a line's probe from its section of a config.
pub(super) type MakeProbe<'a> = Box<dyn Fn(&ProbeHost<'_>) -> Box<dyn Probe> + 'a>;

/// Gives a table line's constructor its argument types, so that the line
/// can be a bare closure returning the probe.
pub(super) fn constructor<Section, Made, Make>(make: Make) -> Make
where
    Make: Fn(&Section, &ProbeHost<'_>) -> Made,
    Made: Probe + 'static,
{
    make
}

/// What a probe's constructor may use besides its own section.
pub(super) struct ProbeHost<'a> {
    /// procfs mount point.
    pub(super) procfs: &'a PathBuf,
    /// sysfs mount point.
    pub(super) sysfs: &'a PathBuf,
    /// udev's device database.
    pub(super) udev_data: &'a PathBuf,
    /// How long one probe may run (`probes.timeout`).
    pub(super) probe_timeout: Duration,
    /// The agent's collection interval.
    pub(super) interval: Duration,
}

/// Builds the enabled probes in the table's order, except that a probe
/// whose section [`ProbeSection::runs_last`] comes after all others.
pub fn build(config: &Config) -> Vec<Box<dyn Probe>> {
    let host = ProbeHost {
        procfs: &config.paths.procfs,
        sysfs: &config.paths.sysfs,
        udev_data: &config.paths.udev_data,
        probe_timeout: config.probes.timeout.get(),
        interval: config.interval.get(),
    };
    let (last, first): (Vec<_>, Vec<_>) = config
        .probes
        .kinds()
        .into_iter()
        .partition(|kind| kind.section.runs_last());
    first
        .into_iter()
        .chain(last)
        .filter(|kind| kind.section.toggle().enabled && kind.section.has_work())
        .map(|kind| scheduled(kind.section.toggle(), (kind.make)(&host)))
        .collect()
}

/// The probe under its section's interval, when it has one.
fn scheduled(toggle: ProbeToggle, probe: Box<dyn Probe>) -> Box<dyn Probe> {
    match toggle.interval {
        Some(interval) => Box::new(Every {
            probe,
            interval: interval.get(),
        }),
        None => probe,
    }
}

/// Checks every probe section, adding each problem to `problems`: every
/// section's interval, the overall timeout, then each section's own checks.
pub fn validate(probes: &ProbesConfig, problems: &mut Problems) {
    let kinds = probes.kinds();
    for kind in &kinds {
        if let Some(interval) = kind.section.toggle().interval
            && interval.get() < Duration::from_secs(1)
        {
            problems.general(format!(
                "probes.{}.interval {interval} is shorter than 1s",
                kind.key
            ));
        }
    }
    if probes.timeout.get() < Duration::from_millis(100) {
        problems.general(format!(
            "probes.timeout {} is shorter than 100ms",
            probes.timeout
        ));
    }
    for kind in &kinds {
        kind.section.validate(probes.timeout.get(), problems);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines that are not node_exporter collectors reading only procfs
    /// and sysfs under their own name: probes covering several collectors,
    /// probes with their own config, probes waiting on other programs.
    const NOT_PLAIN_NODE_COLLECTORS: [&str; 13] = [
        "cpu",
        "load",
        "memory",
        "filesystem",
        "disk",
        "network",
        "system",
        "pressure",
        "textfile",
        "systemd",
        "process",
        "service",
        "snmp",
    ];

    #[test]
    fn every_probe_in_the_table_builds_and_is_named_after_its_config_key() {
        let probes = ProbesConfig::default();
        let (procfs, sysfs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (procfs, sysfs) = (procfs.path().to_path_buf(), sysfs.path().to_path_buf());
        let host = ProbeHost {
            procfs: &procfs,
            sysfs: &sysfs,
            udev_data: &sysfs,
            probe_timeout: Duration::from_secs(5),
            interval: Duration::from_secs(15),
        };
        let kinds = probes.kinds();
        let mut node_collectors = 0;
        for kind in &kinds {
            let probe = (kind.make)(&host);
            assert_eq!(probe.name(), kind.key);
            if NOT_PLAIN_NODE_COLLECTORS.contains(&kind.key) {
                continue;
            }
            node_collectors += 1;
            let key = kind.key;
            assert!(
                kind.section.toggle().enabled,
                "{key} is on by default, as in node_exporter"
            );
            assert_eq!(probe.collectors(), vec![key]);
            assert!(
                !probe.needs_own_thread(),
                "{key} reads only procfs and sysfs"
            );
        }
        assert_eq!(node_collectors, 31);
        assert_eq!(kinds.len(), 31 + NOT_PLAIN_NODE_COLLECTORS.len());
    }

    #[test]
    fn the_default_build_keeps_the_table_order_with_textfile_last() {
        let config = Config::default();
        let names: Vec<&str> = build(&config).iter().map(|probe| probe.name()).collect();
        let expected: Vec<&str> = config
            .probes
            .kinds()
            .iter()
            .map(|kind| kind.key)
            // Off by default, or nothing to poll without a list.
            .filter(|key| !["systemd", "process", "service", "snmp", "textfile"].contains(key))
            .chain(["textfile"])
            .collect();
        assert_eq!(names, expected);
    }
}
