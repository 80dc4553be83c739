//! The `response:` section of the collector's configuration: whether
//! decisions are enforced or only recorded, the addresses never blocked,
//! and how long blocks last (docs/configuration.md, docs/security.md).

use std::net::IpAddr;
use std::time::Duration;

use countywatch_config::config_file::{Problems, Spanned, unspanned};
use countywatch_config::duration::PromDuration;
use countywatch_wire::{Cidr, ResponseMode};
use serde::Deserialize;

/// Active response: decisions that block attacking addresses on agents.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseConfig {
    /// `dry_run` (the default): decisions are recorded, sent to agents and
    /// shown, but agents block nothing. `enforce`: agents block. A rule's
    /// own `response.mode` overrides this for its decisions.
    pub mode: ResponseMode,
    /// Addresses and CIDR blocks never blocked (management networks, the
    /// officers' own workstations): no decision is made for them, and a
    /// hand-made one is refused with an audit entry. Loopback, unspecified
    /// and multicast addresses are never blocked whatever this says.
    pub never_block: Vec<Spanned<String>>,
    /// How long a hand-made decision lasts when no duration is given.
    pub default_duration: Spanned<PromDuration>,
    /// The longest any decision lasts, repeat offenders included; longer
    /// requests are cut to it.
    pub max_duration: Spanned<PromDuration>,
    /// Each earlier decision against the same address within
    /// `repeat_window` that is over (expired or lifted: the address came
    /// back) multiplies a rule's duration by this factor (2: 1h, 2h,
    /// 4h...), up to `max_duration`. 1 turns escalation off.
    pub repeat_factor: u32,
    /// How far back earlier decisions against an address count as repeats.
    pub repeat_window: PromDuration,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        ResponseConfig {
            mode: ResponseMode::DryRun,
            never_block: Vec::new(),
            default_duration: unspanned(PromDuration(Duration::from_secs(3600))),
            max_duration: unspanned(PromDuration(Duration::from_secs(7 * 24 * 3600))),
            repeat_factor: 2,
            repeat_window: PromDuration(Duration::from_secs(24 * 3600)),
        }
    }
}

/// Most repeat factor accepted: beyond it one repeat reaches any cap.
const MAX_REPEAT_FACTOR: u32 = 100;

impl ResponseConfig {
    /// Adds every problem of this section to `problems`.
    pub fn validate(&self, problems: &mut Problems) {
        for entry in &self.never_block {
            if let Err(error) = Cidr::parse(&entry.value) {
                problems.at(
                    entry,
                    format!("response.never_block: {:?} {error}", entry.value),
                );
            }
        }
        if self.max_duration.value.get() < Duration::from_secs(1) {
            problems.at(
                &self.max_duration,
                "response.max_duration must be at least 1s",
            );
        }
        if self.default_duration.value.get().is_zero() {
            problems.at(
                &self.default_duration,
                "response.default_duration must be positive",
            );
        } else if self.default_duration.value > self.max_duration.value {
            problems.at(
                &self.default_duration,
                format!(
                    "response.default_duration {} is longer than response.max_duration {}",
                    self.default_duration.value, self.max_duration.value
                ),
            );
        }
        if self.repeat_factor == 0 || self.repeat_factor > MAX_REPEAT_FACTOR {
            problems.general(format!(
                "response.repeat_factor must be between 1 and {MAX_REPEAT_FACTOR}"
            ));
        }
    }

    /// The `never_block` blocks; entries that do not parse were refused by
    /// [`ResponseConfig::validate`].
    pub fn never_block(&self) -> Vec<Cidr> {
        self.never_block
            .iter()
            .filter_map(|entry| Cidr::parse(&entry.value).ok())
            .collect()
    }

    /// Why `address` may not be blocked, or `None` when it may.
    pub fn refusal(&self, address: IpAddr) -> Option<String> {
        let address = address.to_canonical();
        if address.is_loopback() || address.is_unspecified() || address.is_multicast() {
            return Some(format!(
                "{address} is a loopback, unspecified or multicast address"
            ));
        }
        self.never_block
            .iter()
            .find(|entry| Cidr::parse(&entry.value).is_ok_and(|cidr| cidr.contains(address)))
            .map(|entry| format!("{address} is in response.never_block ({})", entry.value))
    }

    /// The longest block, in milliseconds.
    pub fn max_duration_ms(&self) -> i64 {
        i64::try_from(self.max_duration.value.get().as_millis()).unwrap_or(i64::MAX)
    }

    /// How long a block lasts: `requested_ms`, multiplied by
    /// `repeat_factor` once per earlier decision against the address
    /// (`repeats`), cut to `max_duration`.
    pub fn duration_ms(&self, requested_ms: i64, repeats: u32) -> i64 {
        let max = self.max_duration_ms();
        let factor = i64::from(self.repeat_factor.max(1));
        let mut duration = requested_ms.max(1);
        for _ in 0..repeats {
            if duration >= max {
                break;
            }
            duration = duration.saturating_mul(factor);
        }
        duration.min(max)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;
    use countywatch_config::config_file;

    use super::*;

    fn load(text: &str) -> Result<Config, String> {
        let config: Config =
            config_file::parse(Path::new("c.yaml"), text).map_err(|p| p.to_string())?;
        config
            .validate(Path::new("c.yaml"))
            .map_err(|p| p.to_string())?;
        Ok(config)
    }

    #[test]
    fn the_default_is_dry_run_with_a_one_hour_default_and_a_week_at_most() {
        let config = load("").unwrap();
        assert_eq!(config.response.mode, ResponseMode::DryRun);
        assert_eq!(config.response.max_duration_ms(), 7 * 24 * 3_600_000);
        let enforced = load("response: {mode: enforce}\n").unwrap();
        assert_eq!(enforced.response.mode, ResponseMode::Enforce);
    }

    #[test]
    fn every_mistake_in_the_section_is_reported_with_its_position() {
        let report = load(
            "response:\n  never_block: [10.0.0.0/8, 10.0.0.0/40, bastion]\n  default_duration: 2w\n  max_duration: 1d\n  repeat_factor: 0\n",
        )
        .unwrap_err();
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines.len(), 4, "{report}");
        assert!(
            lines[0].starts_with("c.yaml:2:29: response.never_block: \"10.0.0.0/40\" has a prefix"),
            "{report}"
        );
        assert!(
            lines[1].starts_with("c.yaml:2:42: response.never_block: \"bastion\" is not"),
            "{report}"
        );
        assert!(
            lines[2].starts_with("c.yaml:3:21: response.default_duration 336h is longer"),
            "{report}"
        );
        assert!(
            lines[3].contains("repeat_factor must be between 1"),
            "{report}"
        );
        let unknown = load("response:\n  mode: enforce\n  block_all: true\n").unwrap_err();
        assert!(unknown.starts_with("c.yaml:3:3: "), "{unknown}");
        let bad_mode = load("response:\n  mode: block\n").unwrap_err();
        assert!(bad_mode.starts_with("c.yaml:2:"), "{bad_mode}");
    }

    #[test]
    fn never_block_loopback_and_multicast_are_refused_with_a_reason() {
        let config = load("response:\n  never_block: [192.168.10.0/24, \"2001:db8::1\"]\n")
            .unwrap()
            .response;
        let refusal = |text: &str| config.refusal(text.parse().unwrap());
        assert!(
            refusal("192.168.10.77")
                .unwrap()
                .contains("response.never_block (192.168.10.0/24)")
        );
        assert!(refusal("::ffff:192.168.10.5").is_some(), "mapped IPv4");
        assert!(refusal("2001:db8::1").is_some());
        assert!(refusal("127.0.0.1").unwrap().contains("loopback"));
        assert!(refusal("::1").is_some());
        assert!(refusal("0.0.0.0").is_some());
        assert!(refusal("224.0.0.1").is_some());
        assert_eq!(refusal("203.0.113.9"), None);
        assert_eq!(refusal("192.168.11.1"), None);
    }

    #[test]
    fn repeat_offenders_get_doubled_durations_up_to_the_maximum() {
        let config = load("response: {max_duration: 5h, repeat_factor: 2}\n")
            .unwrap()
            .response;
        let hour = 3_600_000;
        assert_eq!(config.duration_ms(hour, 0), hour);
        assert_eq!(config.duration_ms(hour, 1), 2 * hour);
        assert_eq!(config.duration_ms(hour, 2), 4 * hour);
        assert_eq!(config.duration_ms(hour, 3), 5 * hour, "capped");
        assert_eq!(config.duration_ms(hour, 1_000_000), 5 * hour);
        assert_eq!(
            config.duration_ms(30 * hour, 0),
            5 * hour,
            "a long rule is cut"
        );
        let flat = load("response: {repeat_factor: 1}\n").unwrap().response;
        assert_eq!(flat.duration_ms(hour, 5), hour);
    }
}
