//! The SNMP probe's config section (`probes.snmp`): the devices to poll,
//! their credentials and limits, extra OIDs, and the checks on them.

use std::time::Duration;

use async_snmp::{Auth, AuthProtocol, Oid, PrivProtocol, UsmConfig};
use countywatch_config::config_file::{Problems, Spanned};
use countywatch_config::duration::PromDuration;
use serde::Deserialize;

use crate::probe::toggle::{ProbeSection, ProbeToggle};

/// The SNMP probe's config section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnmpConfig {
    /// Whether the probe runs (it also needs at least one device).
    pub enabled: bool,
    /// The network devices to poll.
    pub devices: Vec<DeviceConfig>,
}

impl Default for SnmpConfig {
    fn default() -> Self {
        SnmpConfig {
            enabled: true,
            devices: Vec::new(),
        }
    }
}

impl ProbeSection for SnmpConfig {
    fn toggle(&self) -> ProbeToggle {
        ProbeToggle {
            enabled: self.enabled,
            interval: None,
        }
    }

    fn has_work(&self) -> bool {
        !self.devices.is_empty()
    }

    fn validate(&self, probe_timeout: Duration, problems: &mut Problems) {
        validate(self, probe_timeout, problems);
    }
}

/// The SNMP version a device is polled with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnmpVersion {
    /// Community-based v2c.
    V2c,
    /// v3 with the user-based security model.
    V3,
}

/// SNMPv3 authentication protocols (net-snmp's `-a` names, lower case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthProtocolName {
    /// HMAC-MD5-96; old devices only.
    Md5,
    /// HMAC-SHA-96.
    Sha,
    /// HMAC-SHA-224 (RFC 7860).
    Sha224,
    /// HMAC-SHA-256 (RFC 7860).
    Sha256,
    /// HMAC-SHA-384 (RFC 7860).
    Sha384,
    /// HMAC-SHA-512 (RFC 7860).
    Sha512,
}

/// SNMPv3 privacy protocols (net-snmp's `-x` names, lower case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrivProtocolName {
    /// AES-128-CFB (RFC 3826).
    Aes,
    /// AES-192 with Blumenthal key extension.
    Aes192,
    /// AES-256 with Blumenthal key extension.
    Aes256,
    /// AES-192 with Reeder (Cisco) key extension.
    Aes192c,
    /// AES-256 with Reeder (Cisco) key extension.
    Aes256c,
    /// DES; old devices only.
    Des,
}

/// The kind of value an extra OID holds, which decides how it is exposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExtraType {
    /// A number that goes up and down.
    Gauge,
    /// A number that only goes up (a 32-bit one is extended across wraps).
    Counter,
    /// A string, exposed as the value of a label named like the metric
    /// on a sample of value 1 (snmp_exporter's DisplayString).
    Info,
}

/// One extra OID to walk on a device.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraOid {
    /// Metric name, e.g. `hwEntityCpuUsage`.
    pub name: Spanned<String>,
    /// Numeric OID, e.g. `1.3.6.1.4.1.2011.5.25.31.1.1.1.1.5`. Its subtree
    /// is walked; each row becomes a sample labelled `index` (the OID
    /// suffix); a scalar is fetched with GET when the walk finds nothing.
    pub oid: Spanned<String>,
    /// `gauge`, `counter` or `info`.
    #[serde(rename = "type")]
    pub kind: ExtraType,
}

/// One network device.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// The device's name: its series' `instance` and its events' `device`.
    pub name: Spanned<String>,
    /// `host` or `host:port` (port 161 by default); IPv6 in brackets.
    pub address: Spanned<String>,
    /// `v2c` or `v3`.
    pub version: SnmpVersion,
    /// The v2c community.
    #[serde(default)]
    pub community: Option<String>,
    /// The v3 user name.
    #[serde(default)]
    pub user: Option<String>,
    /// The v3 authentication protocol; without it, noAuthNoPriv.
    #[serde(default)]
    pub auth_protocol: Option<AuthProtocolName>,
    /// The v3 authentication pass phrase (at least 8 characters).
    #[serde(default)]
    pub auth_password: Option<String>,
    /// The v3 privacy protocol; without it, authNoPriv.
    #[serde(default)]
    pub priv_protocol: Option<PrivProtocolName>,
    /// The v3 privacy pass phrase (at least 8 characters).
    #[serde(default)]
    pub priv_password: Option<String>,
    /// How long one request waits for its answer.
    #[serde(default = "default_timeout")]
    pub timeout: PromDuration,
    /// How many times an unanswered request is sent again.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// How often the device is polled; the agent's interval by default.
    #[serde(default)]
    pub interval: Option<PromDuration>,
    /// Rows asked for per GETBULK request in walks.
    #[serde(default = "default_max_repetitions")]
    pub max_repetitions: u32,
    /// More OIDs to walk beside IF-MIB.
    #[serde(default)]
    pub extra_oids: Vec<ExtraOid>,
    /// The department the device serves, reported as the `department`
    /// label of its `snmp_up`; the county report groups by it.
    #[serde(default)]
    pub department: Option<String>,
    /// What the device carries for people (`政务外网核心交换`), reported as
    /// the `service` label of its `snmp_up`.
    #[serde(default)]
    pub service: Option<String>,
}

fn default_timeout() -> PromDuration {
    PromDuration(Duration::from_secs(1))
}

fn default_retries() -> u32 {
    2
}

fn default_max_repetitions() -> u32 {
    25
}

/// Why a device's credentials are not usable: the user must fix the
/// device's section (checked at config load too).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A v2c device without a community.
    #[error("a v2c device needs a community")]
    NoCommunity,
    /// A v3 device without a user.
    #[error("a v3 device needs a user")]
    NoUser,
    /// A privacy protocol or password without authentication.
    #[error("privacy needs authentication")]
    PrivacyWithoutAuthentication,
    /// Only one of priv_protocol and priv_password.
    #[error("priv_protocol and priv_password go together")]
    PrivacyHalf,
    /// Only one of auth_protocol and auth_password.
    #[error("auth_protocol and auth_password go together")]
    AuthenticationHalf,
    /// The SNMP library refused the v3 credentials (a password too short,
    /// a protocol its crypto backend lacks).
    #[error("v3 credentials: {0}")]
    Credentials(async_snmp::v3::CryptoError),
}

impl DeviceConfig {
    /// The credentials as the SNMP library takes them.
    pub fn auth(&self) -> Result<Auth, AuthError> {
        match self.version {
            SnmpVersion::V2c => match &self.community {
                Some(community) => Ok(Auth::v2c(community.as_str())),
                None => Err(AuthError::NoCommunity),
            },
            SnmpVersion::V3 => {
                let Some(user) = &self.user else {
                    return Err(AuthError::NoUser);
                };
                let usm = UsmConfig::new(user.clone().into_bytes());
                let usm = match (self.auth_protocol, &self.auth_password) {
                    (None, None) => {
                        if self.priv_protocol.is_some() || self.priv_password.is_some() {
                            return Err(AuthError::PrivacyWithoutAuthentication);
                        }
                        usm
                    }
                    (Some(auth), Some(auth_password)) => {
                        match (self.priv_protocol, &self.priv_password) {
                            (None, None) => usm.auth(auth_protocol(auth), auth_password),
                            (Some(privacy), Some(priv_password)) => usm.auth_priv(
                                auth_protocol(auth),
                                auth_password,
                                priv_protocol(privacy),
                                priv_password,
                            ),
                            _ => {
                                return Err(AuthError::PrivacyHalf);
                            }
                        }
                        .map_err(AuthError::Credentials)?
                    }
                    _ => {
                        return Err(AuthError::AuthenticationHalf);
                    }
                };
                Ok(Auth::from(usm))
            }
        }
    }

    /// The extra OIDs, parsed.
    pub fn extra_oids(&self) -> Vec<(String, Oid, ExtraType)> {
        self.extra_oids
            .iter()
            .filter_map(|extra| {
                let oid = parse_oid(&extra.oid.value)?;
                Some((extra.name.value.clone(), oid, extra.kind))
            })
            .collect()
    }
}

/// A numeric OID (`1.3.6.1...`, a leading dot allowed) of at least two
/// arcs; names are not resolved (no MIB files on the agent).
fn parse_oid(text: &str) -> Option<Oid> {
    let arcs: Vec<u32> = text
        .strip_prefix('.')
        .unwrap_or(text)
        .split('.')
        .map(|arc| arc.parse().ok())
        .collect::<Option<_>>()?;
    (arcs.len() >= 2).then(|| Oid::new(arcs))
}

fn auth_protocol(name: AuthProtocolName) -> AuthProtocol {
    match name {
        AuthProtocolName::Md5 => AuthProtocol::Md5,
        AuthProtocolName::Sha => AuthProtocol::Sha1,
        AuthProtocolName::Sha224 => AuthProtocol::Sha224,
        AuthProtocolName::Sha256 => AuthProtocol::Sha256,
        AuthProtocolName::Sha384 => AuthProtocol::Sha384,
        AuthProtocolName::Sha512 => AuthProtocol::Sha512,
    }
}

fn priv_protocol(name: PrivProtocolName) -> PrivProtocol {
    match name {
        PrivProtocolName::Aes => PrivProtocol::Aes128,
        PrivProtocolName::Aes192 => PrivProtocol::Aes192Blumenthal,
        PrivProtocolName::Aes256 => PrivProtocol::Aes256Blumenthal,
        PrivProtocolName::Aes192c => PrivProtocol::Aes192Reeder,
        PrivProtocolName::Aes256c => PrivProtocol::Aes256Reeder,
        PrivProtocolName::Des => PrivProtocol::Des,
    }
}

/// Most a device's whole poll may take: a margin under the collection's
/// probe timeout, so a slow device never makes the probe overrun and cost
/// every other device its metrics.
pub fn poll_deadline(probe_timeout: Duration) -> Duration {
    probe_timeout.mul_f64(0.9)
}

/// Checks every device, reporting each problem at its position.
pub fn validate(config: &SnmpConfig, probe_timeout: Duration, problems: &mut Problems) {
    let mut names: Vec<&str> = Vec::new();
    for device in &config.devices {
        let name = &device.name;
        if name.value.is_empty() || name.value.len() > 253 {
            problems.at(name, "device name must be 1 to 253 characters");
        } else if name
            .value
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
        {
            problems.at(
                name,
                "device name must not contain spaces or control characters",
            );
        }
        if names.contains(&name.value.as_str()) {
            problems.at(name, format!("device {:?} is listed twice", name.value));
        }
        names.push(&name.value);
        if device.address.value.trim().is_empty() {
            problems.at(&device.address, "device address is empty");
        }
        if let Err(error) = device.auth() {
            problems.at(name, format!("device {}: {error}", name.value));
        }
        if device.version == SnmpVersion::V2c
            && (device.user.is_some()
                || device.auth_protocol.is_some()
                || device.priv_protocol.is_some())
        {
            problems.at(
                name,
                format!(
                    "device {}: user, auth and priv settings are for v3",
                    name.value
                ),
            );
        }
        if device.version == SnmpVersion::V3 && device.community.is_some() {
            problems.at(name, format!("device {}: community is for v2c", name.value));
        }
        let per_request = device.timeout.get().saturating_mul(device.retries + 1);
        if device.timeout.get().is_zero() || per_request >= poll_deadline(probe_timeout) {
            problems.at(
                name,
                format!(
                    "device {}: timeout {} with {} retries must be above 0 and fit in 90% of probes.timeout ({})",
                    name.value,
                    device.timeout,
                    device.retries,
                    PromDuration(probe_timeout)
                ),
            );
        }
        if device.retries > 10 {
            problems.at(name, format!("device {}: at most 10 retries", name.value));
        }
        if let Some(interval) = device.interval
            && interval.get() < Duration::from_secs(1)
        {
            problems.at(
                name,
                format!(
                    "device {}: interval {interval} is shorter than 1s",
                    name.value
                ),
            );
        }
        if device.max_repetitions == 0 || device.max_repetitions > 200 {
            problems.at(
                name,
                format!("device {}: max_repetitions must be 1 to 200", name.value),
            );
        }
        for extra in &device.extra_oids {
            if !countywatch_wire::is_valid_metric_name(&extra.name.value) {
                problems.at(
                    &extra.name,
                    format!("{:?} is not a valid metric name", extra.name.value),
                );
            }
            if parse_oid(&extra.oid.value).is_none() {
                problems.at(
                    &extra.oid,
                    format!("{:?} is not a numeric OID", extra.oid.value),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use countywatch_config::config_file;

    use super::*;

    fn problems_of(text: &str) -> String {
        let config: SnmpConfig = config_file::parse(Path::new("a.yaml"), text).unwrap();
        let mut problems = Problems::new(Path::new("a.yaml"));
        validate(&config, Duration::from_secs(5), &mut problems);
        problems.to_string()
    }

    #[test]
    fn good_devices_pass() {
        let text = "devices:
  - name: core-sw
    address: 10.0.0.1
    version: v2c
    community: public
    extra_oids:
      - {name: hwCpu, oid: .1.3.6.1.4.1.2011.5.25.31.1.1.1.1.5, type: gauge}
  - name: fw
    address: \"[2001:db8::1]:1161\"
    version: v3
    user: monitor
    auth_protocol: sha256
    auth_password: long-enough
    priv_protocol: aes
    priv_password: long-enough
    interval: 30s
";
        assert_eq!(problems_of(text), "");
        let config: SnmpConfig = config_file::parse(Path::new("a.yaml"), text).unwrap();
        assert_eq!(config.devices[0].extra_oids()[0].1.arcs()[6], 2011);
        assert!(config.devices[1].auth().is_ok());
    }

    #[test]
    fn every_problem_is_reported_at_its_device() {
        let text = "devices:
  - name: a
    address: 10.0.0.1
    version: v2c
  - name: a
    address: 10.0.0.2
    version: v3
    user: u
    auth_protocol: sha
    auth_password: short
    community: public
    timeout: 2s
    retries: 2
    max_repetitions: 0
    extra_oids:
      - {name: 9bad, oid: not.an.oid, type: counter}
";
        let problems = problems_of(text);
        for expected in [
            "a.yaml:2:11: device a: a v2c device needs a community",
            "a.yaml:5:11: device \"a\" is listed twice",
            "a.yaml:5:11: device a: v3 credentials:",
            "a.yaml:5:11: device a: community is for v2c",
            "a.yaml:5:11: device a: timeout 2s with 2 retries must be above 0 and fit in 90% of probes.timeout (5s)",
            "a.yaml:5:11: device a: max_repetitions must be 1 to 200",
            "a.yaml:16:16: \"9bad\" is not a valid metric name",
            "a.yaml:16:27: \"not.an.oid\" is not a numeric OID",
        ] {
            assert!(
                problems.contains(expected),
                "missing {expected:?} in\n{problems}"
            );
        }
    }

    #[test]
    fn unknown_keys_and_protocols_are_refused() {
        for text in [
            "devices:\n  - {name: a, address: b, version: v2c, comunity: x}\n",
            "devices:\n  - {name: a, address: b, version: v1}\n",
            "devices:\n  - {name: a, address: b, version: v3, user: u, auth_protocol: sha3}\n",
        ] {
            assert!(
                config_file::parse::<SnmpConfig>(Path::new("a.yaml"), text).is_err(),
                "{text}"
            );
        }
    }
}
