//! The systemd probe: `node_systemd_unit_state{name,state,type}` for a
//! configured list of units, as node_exporter's systemd collector reports
//! it: one sample per possible state, 1 for the unit's current one.
//!
//! It asks `systemctl show` rather than D-Bus: one short-lived process per
//! run, no D-Bus client in the agent. Only the listed units are asked
//! about, so a host with hundreds of units costs nothing extra.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use countywatch_config::config_file::Problems;
use countywatch_config::duration::PromDuration;
use countywatch_wire::{MetricFamily, MetricKind};
use serde::Deserialize;

use super::toggle::{ProbeSection, ProbeToggle};
use super::{Probe, ProbeError};

/// The states node_exporter reports for every unit.
const STATES: [&str; 5] = ["activating", "active", "deactivating", "failed", "inactive"];

/// The systemd probe's config section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SystemdConfig {
    /// Whether the probe runs (it also needs at least one unit).
    pub enabled: bool,
    /// How often the probe runs; defaults to the agent's interval.
    pub interval: Option<PromDuration>,
    /// Units to report, with their suffix (`ssh.service`, `backup.timer`).
    pub units: Vec<String>,
    /// The `systemctl` program to run.
    pub systemctl: PathBuf,
}

impl Default for SystemdConfig {
    fn default() -> Self {
        SystemdConfig {
            enabled: true,
            interval: None,
            units: Vec::new(),
            systemctl: PathBuf::from("systemctl"),
        }
    }
}

impl ProbeSection for SystemdConfig {
    fn toggle(&self) -> ProbeToggle {
        ProbeToggle {
            enabled: self.enabled,
            interval: self.interval,
        }
    }

    /// Without units there is nothing to ask systemd.
    fn has_work(&self) -> bool {
        !self.units.is_empty()
    }

    fn validate(&self, _probe_timeout: Duration, problems: &mut Problems) {
        validate(self, problems);
    }
}

/// Unit names must be names, not options smuggled onto the command line.
pub fn validate(config: &SystemdConfig, problems: &mut Problems) {
    for unit in &config.units {
        let valid = !unit.is_empty()
            && !unit.starts_with('-')
            && unit.contains('.')
            && unit
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c));
        if !valid {
            problems.general(format!(
                "probes.systemd.units: {unit:?} is not a unit name with its suffix (e.g. ssh.service)"
            ));
        }
    }
}

/// Runs `systemctl show` for the configured units.
pub struct SystemdProbe {
    /// The units, as configured.
    units: Vec<String>,
    /// The program.
    systemctl: PathBuf,
}

impl SystemdProbe {
    /// A probe for the configured units.
    pub fn new(config: &SystemdConfig) -> Self {
        SystemdProbe {
            units: config.units.clone(),
            systemctl: config.systemctl.clone(),
        }
    }
}

impl Probe for SystemdProbe {
    fn name(&self) -> &'static str {
        "systemd"
    }

    fn collectors(&self) -> Vec<&'static str> {
        vec!["systemd"]
    }

    fn needs_own_thread(&self) -> bool {
        true
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let output = Command::new(&self.systemctl)
            .args([
                "show",
                "--no-pager",
                "--property=Id,Type,ActiveState,LoadState",
            ])
            .arg("--")
            .args(&self.units)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|source| ProbeError::Run {
                program: self.systemctl.clone(),
                source,
            })?;
        if !output.status.success() {
            return Err(ProbeError::ShowFailed {
                program: self.systemctl.clone(),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        out.push(family(&parse(&String::from_utf8_lossy(&output.stdout))));
        Ok(())
    }
}

/// One unit as `systemctl show` describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unit {
    /// `Id`, the unit's real name.
    pub name: String,
    /// `Type` (`simple`, `notify`, ...); empty for units without one.
    pub kind: String,
    /// `ActiveState`.
    pub active_state: String,
    /// `LoadState`: `loaded`, `not-found`, ...
    pub load_state: String,
}

/// Parses `systemctl show` output: one block of `Key=value` lines per
/// unit, blocks separated by a blank line.
pub fn parse(text: &str) -> Vec<Unit> {
    let mut units = Vec::new();
    let mut current = Unit::default();
    let mut any = false;
    for line in text.lines().chain([""]) {
        if line.trim().is_empty() {
            if any {
                units.push(std::mem::take(&mut current));
            }
            any = false;
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        any = true;
        let value = value.to_string();
        match key {
            "Id" => current.name = value,
            "Type" => current.kind = value,
            "ActiveState" => current.active_state = value,
            "LoadState" => current.load_state = value,
            _ => {}
        }
    }
    units
}

/// `node_systemd_unit_state` for every loaded unit; a unit systemd does not
/// know (`not-found`) has no state to report and is left out, as in
/// node_exporter, so an alert on `absent()` catches it.
pub fn family(units: &[Unit]) -> MetricFamily {
    let mut family =
        MetricFamily::new("node_systemd_unit_state", "Systemd unit", MetricKind::Gauge);
    for unit in units.iter().filter(|unit| unit.load_state == "loaded") {
        for state in STATES {
            let value = if unit.active_state == state { 1.0 } else { 0.0 };
            family.push(
                &[
                    ("name", unit.name.as_str()),
                    ("state", state),
                    ("type", unit.kind.as_str()),
                ],
                value,
            );
        }
    }
    family
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOW: &str = "Type=notify\nId=ssh.service\nLoadState=loaded\nActiveState=active\n\n\
Type=simple\nId=nope.service\nLoadState=not-found\nActiveState=inactive\n\n\
Id=backup.timer\nLoadState=loaded\nActiveState=failed\n";

    #[test]
    fn one_sample_per_state_for_loaded_units() {
        let units = parse(SHOW);
        assert_eq!(units.len(), 3);
        let family = family(&units);
        let got: Vec<(String, String, String, f64)> = family
            .samples
            .iter()
            .filter(|sample| sample.value == 1.0)
            .map(|sample| {
                (
                    sample.labels[0].1.to_string(),
                    sample.labels[1].1.to_string(),
                    sample.labels[2].1.to_string(),
                    sample.value,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("ssh.service".into(), "active".into(), "notify".into(), 1.0),
                ("backup.timer".into(), "failed".into(), String::new(), 1.0),
            ]
        );
        assert_eq!(family.samples.len(), 10);
    }

    #[test]
    fn runs_systemctl_for_real() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("systemctl");
        std::fs::write(
            &script,
            "#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/args\"\nprintf 'Id=ssh.service\\nType=notify\\nLoadState=loaded\\nActiveState=inactive\\n'\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut probe = SystemdProbe::new(&SystemdConfig {
            units: vec!["ssh.service".into()],
            systemctl: script,
            ..SystemdConfig::default()
        });
        let mut out = Vec::new();
        probe.collect(&mut out).unwrap();
        assert_eq!(out[0].samples.len(), 5);
        let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
        assert_eq!(
            args.trim(),
            "show --no-pager --property=Id,Type,ActiveState,LoadState -- ssh.service"
        );
        let missing = SystemdProbe::new(&SystemdConfig {
            units: vec!["ssh.service".into()],
            systemctl: dir.path().join("missing"),
            ..SystemdConfig::default()
        })
        .collect(&mut out);
        assert!(missing.is_err());
    }

    #[test]
    fn unit_names_are_checked() {
        let mut problems = Problems::new("a.yaml");
        let config = SystemdConfig {
            units: vec!["ssh.service".into(), "--all".into(), "ssh".into()],
            ..SystemdConfig::default()
        };
        validate(&config, &mut problems);
        assert_eq!(problems.problems.len(), 2);
    }
}
