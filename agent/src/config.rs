//! The agent's configuration: file format, embedded defaults, validation.
//!
//! Every field documents itself here; `docs/agent-config.md` shows a full
//! example. Command-line flags override the file (see `main.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use countywatch_config::config_file::{self, Problems, Spanned};
use countywatch_config::duration::PromDuration;
use serde::Deserialize;

pub use crate::probe::ProbesConfig;
pub use crate::source::SourcesConfig;

/// The whole agent configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Name this host reports as: the `instance` label of its metrics and the
    /// `host` of its events. Defaults to the host name.
    pub name: Option<Spanned<String>>,
    /// Directory for the agent's own state: its identity (key and
    /// certificates from enrolment), the spool, source positions. Created if
    /// missing.
    pub state_dir: PathBuf,
    /// How often the probes run and a batch is sent.
    pub interval: PromDuration,
    /// Where and how to reach the collector.
    pub collector: CollectorConfig,
    /// The durable spool batches wait in until the collector acknowledges them.
    pub spool: SpoolConfig,
    /// Where the host's pseudo-filesystems are mounted; tests point these at
    /// fixture trees, containers at the host's.
    pub paths: PathsConfig,
    /// Which probes run.
    pub probes: ProbesConfig,
    /// Security event sources: authentication logs, file integrity,
    /// listening ports (see `docs/events.md`).
    pub sources: SourcesConfig,
    /// Labels describing this host, such as `department: 财政局`, reported
    /// as `countywatch_agent_info{department="财政局"} 1` so that dashboards
    /// and rules can group and filter hosts by them
    /// (`* on (instance) group_left (department) countywatch_agent_info`).
    pub labels: std::collections::BTreeMap<String, Spanned<String>>,
    /// Active response: how this host enforces the blocks the collector
    /// decides on (`docs/configuration.md`, `response`).
    pub response: ResponseConfig,
}

/// Most labels an agent may describe itself with.
pub const MAX_AGENT_LABELS: usize = 16;
/// Longest agent label value, in bytes.
pub const MAX_AGENT_LABEL_BYTES: usize = 256;
/// Label names the collector sets itself, which an agent may not claim.
const RESERVED_LABELS: &[&str] = &["instance", "job", "agent", "device_instance"];

/// How the agent reaches the collector.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    /// The collector's ingest URL, `https://HOST:PORT`. Default: the one
    /// recorded at enrolment (the enrolment host with the ingest port).
    pub url: Option<Spanned<String>>,
    /// How long one send may take, connection included.
    pub timeout: PromDuration,
    /// Most batches sent per second while catching up after an outage, so
    /// that a thousand agents reconnecting at once do not flatten the
    /// collector. Batches go one at a time (the collector drops a sequence
    /// number below one it already has, so they must arrive in order).
    pub catch_up_rate: f64,
}

/// Active response on this host: the firewall backend that enforces the
/// collector's block decisions, and this host's own safety limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseConfig {
    /// Which firewall enforces blocks: `auto` (nftables when `nft` is
    /// installed, else iptables with ipset), `nftables`, `iptables`, or
    /// `off`, which never touches the firewall (blocks are refused and the
    /// refusal reported to the collector; dry runs are still recorded).
    pub backend: FirewallBackend,
    /// Addresses and CIDR blocks this host never blocks, in addition to
    /// loopback, the collector's addresses and the peers of open SSH
    /// sessions (`10.0.0.0/8`, `192.0.2.7`, `2001:db8::/32`).
    pub never_block: Vec<Spanned<String>>,
    /// Most blocks held at once; beyond it the oldest is lifted first.
    pub max_blocks: usize,
    /// Offline mode: once the agent has not reached the collector for
    /// longer than this, it runs its own security events through the
    /// host-scoped detection rules the collector sent it and applies their
    /// blocks itself, in the mode it last received, until the collector
    /// answers again. Keep it above `interval` and 25 s (the long poll),
    /// which are how often a healthy link is heard from.
    pub offline_after: PromDuration,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        ResponseConfig {
            backend: FirewallBackend::Auto,
            never_block: Vec::new(),
            max_blocks: 10_000,
            offline_after: PromDuration(Duration::from_secs(60)),
        }
    }
}

/// The firewall backend of active response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FirewallBackend {
    /// nftables when `nft` is installed, else iptables with ipset.
    Auto,
    /// nftables: the agent's own table `inet countywatch`.
    Nftables,
    /// iptables with ipset (CentOS 7 and other hosts without nftables).
    Iptables,
    /// Never touch the firewall.
    Off,
}

/// The durable spool.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Most bytes of batches kept. When full, the oldest metric batches are
    /// dropped first; security events only when nothing else is left. Every
    /// drop is counted and reported in a `spool_overflow` event.
    pub max_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Roots of the pseudo-filesystems the probes read.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathsConfig {
    /// procfs mount point (node_exporter's `--path.procfs`).
    pub procfs: PathBuf,
    /// sysfs mount point (node_exporter's `--path.sysfs`).
    pub sysfs: PathBuf,
    /// udev's device database, read for the disks' identities
    /// (node_exporter's `--path.udev.data`).
    pub udev_data: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: None,
            state_dir: PathBuf::from(".countywatch/agent"),
            interval: PromDuration(Duration::from_secs(15)),
            collector: CollectorConfig::default(),
            spool: SpoolConfig::default(),
            paths: PathsConfig::default(),
            probes: ProbesConfig::default(),
            sources: SourcesConfig::default(),
            labels: std::collections::BTreeMap::new(),
            response: ResponseConfig::default(),
        }
    }
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            url: None,
            timeout: PromDuration(Duration::from_secs(10)),
            catch_up_rate: 20.0,
        }
    }
}

impl Default for PathsConfig {
    fn default() -> Self {
        PathsConfig {
            procfs: PathBuf::from("/proc"),
            sysfs: PathBuf::from("/sys"),
            udev_data: PathBuf::from("/run/udev/data"),
        }
    }
}

pub use countywatch_config::config_file::unspanned;

/// A parsed collector URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectorUrl {
    /// Host name or IP address, without brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// Why a collector URL is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CollectorUrlError {
    /// Not `https://`.
    #[error("collector URL {0:?} must start with https://")]
    NotHttps(String),
    /// A path, query or user part.
    #[error("collector URL {0:?} must be https://HOST:PORT without a path")]
    HasPath(String),
    /// `[` without `]`.
    #[error("collector URL {0:?} has an unclosed '['")]
    UnclosedBracket(String),
    /// Nothing before the port.
    #[error("collector URL {0:?} has no host")]
    NoHost(String),
    /// Not a port number from 1 to 65535.
    #[error("collector URL {0:?} has an invalid port")]
    InvalidPort(String),
}

impl CollectorUrl {
    /// Parses `https://HOST:PORT` with an optional trailing `/`.
    pub fn parse(text: &str) -> Result<CollectorUrl, CollectorUrlError> {
        let rest = text
            .strip_prefix("https://")
            .ok_or_else(|| CollectorUrlError::NotHttps(text.to_string()))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('?') || rest.contains('@') {
            return Err(CollectorUrlError::HasPath(text.to_string()));
        }
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| CollectorUrlError::UnclosedBracket(text.to_string()))?;
            (host, after.strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(CollectorUrlError::NoHost(text.to_string()));
        }
        let port = match port {
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|port| *port != 0)
                .ok_or_else(|| CollectorUrlError::InvalidPort(text.to_string()))?,
            None => 443,
        };
        Ok(CollectorUrl {
            host: host.to_string(),
            port,
        })
    }
}

/// Why a pasted CA fingerprint is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    /// Something other than hex digits and colons.
    #[error("fingerprint {0:?} is not hexadecimal")]
    NotHex(String),
    /// Hex, but not a SHA-256.
    #[error("fingerprint {0:?} is not 32 bytes (64 hex digits)")]
    WrongLength(String),
}

/// Parses a hex SHA-256 fingerprint, with or without colons.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], FingerprintError> {
    let hex_only: String = text.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(&hex_only).map_err(|_| FingerprintError::NotHex(text.to_string()))?;
    bytes
        .try_into()
        .map_err(|_| FingerprintError::WrongLength(text.to_string()))
}

impl Config {
    /// Loads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, Problems> {
        let config: Config = config_file::load(path)?;
        config.validate(path)?;
        Ok(config)
    }

    /// Checks what the types cannot, reporting every problem at once.
    pub fn validate(&self, path: &Path) -> Result<(), Problems> {
        let mut problems = Problems::new(path);
        if self.labels.len() > MAX_AGENT_LABELS {
            problems.general(format!(
                "labels: {} labels, at most {MAX_AGENT_LABELS}",
                self.labels.len()
            ));
        }
        for (name, value) in &self.labels {
            if !countywatch_wire::is_valid_label_name(name) || name.starts_with("__") {
                problems.at(
                    value,
                    format!("label name {name:?} is not a valid Prometheus label name"),
                );
            } else if RESERVED_LABELS.contains(&name.as_str()) {
                problems.at(
                    value,
                    format!("label {name:?} is set by the collector; choose another name"),
                );
            }
            if value.value.is_empty() || value.value.len() > MAX_AGENT_LABEL_BYTES {
                problems.at(
                    value,
                    format!(
                        "label {name:?} must have a value of 1 to {MAX_AGENT_LABEL_BYTES} bytes"
                    ),
                );
            }
        }
        if let Some(name) = &self.name
            && !countywatch_wire::is_valid_agent_name(&name.value)
        {
            problems.at(
                name,
                format!(
                    "name {:?} must be 1 to 253 letters, digits, '.', '-' or '_'",
                    name.value
                ),
            );
        }
        if let Some(url) = &self.collector.url
            && let Err(error) = CollectorUrl::parse(&url.value)
        {
            problems.at(url, error.to_string());
        }
        if !self.collector.catch_up_rate.is_finite() || self.collector.catch_up_rate <= 0.0 {
            problems
                .general("collector.catch_up_rate must be a positive number of batches per second");
        }
        if self.spool.max_bytes < 1024 * 1024 {
            problems.general("spool.max_bytes must be at least 1 MiB");
        }
        if self.interval.get() < Duration::from_secs(1) {
            problems.general(format!("interval {} is shorter than 1s", self.interval));
        }
        crate::probe::validate(&self.probes, &mut problems);
        for entry in &self.response.never_block {
            if let Err(error) = countywatch_wire::Cidr::parse(&entry.value) {
                problems.at(
                    entry,
                    format!("response.never_block entry {:?} {error}", entry.value),
                );
            }
        }
        if !(1..=1_000_000).contains(&self.response.max_blocks) {
            problems.general("response.max_blocks must be between 1 and 1000000");
        }
        if self.response.offline_after.get() < Duration::from_secs(1) {
            problems.general("response.offline_after must be at least 1s");
        }
        self.sources.validate(&mut problems);
        problems.into_result()
    }

    /// The name to report as: the configured one, else the host name.
    pub fn agent_name(&self) -> String {
        match &self.name {
            Some(name) => name.value.clone(),
            None => sysinfo::System::host_name()
                .ok()
                .filter(|name| countywatch_wire::is_valid_agent_name(name))
                .unwrap_or_else(|| "localhost".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_urls() {
        assert_eq!(
            CollectorUrl::parse("https://collector.county.gov:9781/"),
            Ok(CollectorUrl {
                host: "collector.county.gov".into(),
                port: 9781
            })
        );
        assert_eq!(
            CollectorUrl::parse("https://[::1]:9781"),
            Ok(CollectorUrl {
                host: "::1".into(),
                port: 9781
            })
        );
        assert_eq!(
            CollectorUrl::parse("https://h").map(|url| url.port),
            Ok(443)
        );
        for bad in [
            "http://h:1",
            "https://:1",
            "https://h:0",
            "https://h:1/x",
            "https://[::1",
        ] {
            assert!(CollectorUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fingerprints() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_fingerprint(&hex), Ok([0xab; 32]));
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_fingerprint(&colons), Ok([0xab; 32]));
        assert!(parse_fingerprint("abcd").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn all_semantic_problems_are_reported_with_positions() {
        let text = "name: \"bad name\"\ncollector:\n  url: http://x:1\n  catch_up_rate: 0\n";
        let config: Config = config_file::parse(Path::new("a.yaml"), text).unwrap();
        let problems = config
            .validate(Path::new("a.yaml"))
            .unwrap_err()
            .to_string();
        let lines: Vec<&str> = problems.lines().collect();
        assert_eq!(lines.len(), 3, "{problems}");
        assert!(
            lines[0].starts_with("a.yaml:1:7: name \"bad name\""),
            "{problems}"
        );
        assert!(
            lines[1].starts_with("a.yaml:3:8: collector URL"),
            "{problems}"
        );
        assert!(
            lines[2].starts_with("a.yaml: collector.catch_up_rate"),
            "{problems}"
        );
    }

    #[test]
    fn source_settings_are_checked_with_positions() {
        let text =
            "sources:\n  ports:\n    allow: [tcp/22, \"sctp/9\"]\n  max_events_per_batch: 0\n";
        let problems = Config::load_from_text(text).unwrap_err().to_string();
        let lines: Vec<&str> = problems.lines().collect();
        assert_eq!(lines.len(), 2, "{problems}");
        assert!(
            lines[0].starts_with("a.yaml:3:21: port allow-list entry \"sctp/9\""),
            "{problems}"
        );
        assert!(lines[1].contains("max_events_per_batch"), "{problems}");
        let config =
            Config::load_from_text("sources:\n  auth:\n    paths: [/tmp/x.log]\n").unwrap();
        assert_eq!(config.sources.auth.paths, vec![PathBuf::from("/tmp/x.log")]);
        assert!(
            config
                .sources
                .fim
                .paths
                .contains(&PathBuf::from("/etc/shadow"))
        );
    }

    #[test]
    fn time_zones_must_be_known_to_the_tzdb() {
        let text = "sources:\n  auth:\n    timezone: Asia/Shanghai\n  syslog:\n    timezone: Mars/Olympus\n";
        let problems = Config::load_from_text(text).unwrap_err().to_string();
        assert!(
            problems.starts_with("a.yaml:5:15: time zone \"Mars/Olympus\""),
            "{problems}"
        );
        assert_eq!(problems.lines().count(), 1, "{problems}");
        let config = Config::load_from_text("sources:\n  auth:\n    timezone: local\n").unwrap();
        assert_eq!(
            config
                .sources
                .auth
                .timezone
                .map(|zone| zone.value)
                .as_deref(),
            Some("local")
        );
    }

    #[test]
    fn the_syslog_section_is_checked_with_positions() {
        let config = Config::load_from_text(
            "sources:\n  syslog:\n    udp: 0.0.0.0:514\n    tcp: \"[::]:6514\"\n    allow: [192.0.2.0/24, 10.1.1.1]\n",
        )
        .unwrap();
        assert!(config.sources.syslog.enabled());
        assert_eq!(config.sources.syslog.allow.len(), 2);
        assert!(!Config::default().sources.syslog.enabled());
        let bad = "sources:\n  syslog:\n    udp: nowhere\n    allow: [10.0.0.0/40]\n    max_message_bytes: 10\n    queue: 0\n";
        let problems = Config::load_from_text(bad).unwrap_err().to_string();
        let lines: Vec<&str> = problems.lines().collect();
        assert_eq!(lines.len(), 4, "{problems}");
        assert!(
            lines[0].starts_with("a.yaml:3:10: syslog listen address \"nowhere\""),
            "{problems}"
        );
        assert!(
            lines[1].starts_with("a.yaml:4:13: allow-list entry \"10.0.0.0/40\""),
            "{problems}"
        );
        assert!(problems.contains("max_message_bytes"), "{problems}");
        assert!(problems.contains("sources.syslog.queue"), "{problems}");
        let open = Config::load_from_text("sources:\n  syslog:\n    tcp: 127.0.0.1:0\n")
            .unwrap_err()
            .to_string();
        assert!(open.contains("sources.syslog.allow must list"), "{open}");
    }

    #[test]
    fn host_labels_are_checked_with_positions_and_reported_as_an_info_metric() {
        let config =
            Config::load_from_text("labels:\n  department: 财政局\n  site: town-3\n").unwrap();
        let info = crate::collection::agent_info(&config.labels);
        assert_eq!(info.name, "countywatch_agent_info");
        assert_eq!(
            info.samples[0].owned_labels(),
            vec![
                ("department".to_string(), "财政局".to_string()),
                ("site".to_string(), "town-3".to_string())
            ]
        );
        let bad = "labels:\n  instance: web\n  9bad: x\n  empty: \"\"\n";
        let problems = Config::load_from_text(bad).unwrap_err().to_string();
        let lines: Vec<&str> = problems.lines().collect();
        assert_eq!(lines.len(), 3, "{problems}");
        assert!(
            problems.contains("a.yaml:2:13: label \"instance\" is set by the collector"),
            "{problems}"
        );
        assert!(
            problems.contains("a.yaml:3:9: label name \"9bad\""),
            "{problems}"
        );
        assert!(
            problems.contains("label \"empty\" must have a value"),
            "{problems}"
        );
    }

    #[test]
    fn every_probe_section_parses_and_is_checked() {
        let text = "probes:
  disk:
    interval: 30s
  filesystem:
    stat_timeout: 1s
  systemd:
    units: [ssh.service, cron.service]
  process:
    enabled: true
    top: 5
  service:
    interval: 1m
    targets:
      - name: portal
        module: http
        target: https://portal.example.invalid/
        expect_status: [200, 301]
      - name: db
        module: tcp
        target: 127.0.0.1:5432
";
        let config = Config::load_from_text(text).unwrap();
        assert_eq!(config.probes.service.targets.len(), 2);
        assert_eq!(config.probes.process.top, 5);
        let bad = "probes:
  cpu:
    interval: 100ms
  filesystem:
    stat_timeout: 10s
  service:
    targets:
      - name: x
        module: tcp
        target: nohost
";
        let problems = Config::load_from_text(bad).unwrap_err().to_string();
        let lines: Vec<&str> = problems.lines().collect();
        assert_eq!(lines.len(), 3, "{problems}");
        assert!(
            problems.contains("a.yaml:10:17: target \"nohost\" must be host:port"),
            "{problems}"
        );
    }

    #[test]
    fn the_response_section_is_checked_with_positions() {
        let config = Config::load_from_text(
            "response:\n  backend: nftables\n  never_block: [10.0.0.0/8, 192.0.2.7]\n  max_blocks: 50\n",
        )
        .unwrap();
        assert_eq!(config.response.backend, FirewallBackend::Nftables);
        assert_eq!(config.response.never_block.len(), 2);
        assert_eq!(config.response.max_blocks, 50);
        assert_eq!(Config::default().response.backend, FirewallBackend::Auto);
        assert_eq!(Config::default().response.max_blocks, 10_000);
        assert_eq!(
            Config::default().response.offline_after.get(),
            Duration::from_secs(60)
        );
        let bad = "response:\n  never_block: [10.0.0.0/33]\n  max_blocks: 0\n";
        let problems = Config::load_from_text(bad).unwrap_err().to_string();
        let lines: Vec<&str> = problems.lines().collect();
        assert_eq!(lines.len(), 2, "{problems}");
        assert!(
            lines[0].starts_with("a.yaml:2:17: response.never_block entry \"10.0.0.0/33\""),
            "{problems}"
        );
        assert!(lines[1].contains("response.max_blocks"), "{problems}");
        let unknown = Config::load_from_text("response:\n  backend: pf\n")
            .unwrap_err()
            .to_string();
        assert!(unknown.starts_with("a.yaml:2:"), "{unknown}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let text = "probes:\n  cpu:\n    enabeld: true\n";
        let problems = Config::load_from_text(text).unwrap_err().to_string();
        assert!(problems.starts_with("a.yaml:3:5: "), "{problems}");
        assert!(problems.contains("enabeld"), "{problems}");
    }

    #[test]
    fn unknown_section_keys_list_the_sections_in_config_order() {
        let probes = Config::load_from_text("probes:\n  cpus: {}\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            probes.trim_end(),
            "a.yaml:2:3: unknown field `cpus`, expected one of cpu, load, memory, filesystem, \
             disk, network, system, pressure, vmstat, netstat, sockstat, entropy, conntrack, \
             softnet, arp, udp_queues, bonding, edac, thermal_zone, selinux, hwmon, mdadm, \
             cpufreq, powersupplyclass, schedstat, dmi, timex, rapl, nvme, fibrechannel, \
             infiniband, tapestats, ipvs, nfs, nfsd, xfs, btrfs, bcache, zfs, textfile, systemd, \
             process, service, snmp, timeout"
        );
        let sources = Config::load_from_text("sources:\n  journal: {}\n")
            .unwrap_err()
            .to_string();
        assert!(
            sources.contains("expected one of auth, fim, ports, syslog, max_events_per_batch"),
            "{sources}"
        );
    }

    impl Config {
        fn load_from_text(text: &str) -> Result<Config, Problems> {
            let config: Config = config_file::parse(Path::new("a.yaml"), text)?;
            config.validate(Path::new("a.yaml"))?;
            Ok(config)
        }
    }
}
