//! The rule packs shipped with countywatch (`rules/packs/*.yaml`, alerting
//! and recording rules; `rules/detection/*.yaml`, detection rules),
//! compiled into the binary so that a collector protects its county from
//! the first start, with or without a configuration file.
//!
//! The packs load beside the user's own rule files unless `rules.builtin:
//! false` / `detection.builtin: false`; a user rule with the same name
//! replaces the built-in one, and `rules.disabled` / `detection.disabled`
//! switch single rules off ([`crate::alerting`] and [`crate::detection`]
//! apply those). A built-in rule's origin reads `built-in packs/host.yaml`
//! or `built-in detection/ssh.yaml`: the path under `rules/` in the source
//! tree and under `/usr/share/countywatch/rules/` in the packages.

use std::path::{Path, PathBuf};

/// One embedded rule file.
#[derive(Clone, Copy, Debug)]
pub struct Pack {
    /// The file's path under `rules/`, e.g. `packs/host.yaml`.
    pub path: &'static str,
    /// The file's text.
    pub text: &'static str,
}

/// The prefix of a built-in pack's origin path, which no real file has.
pub const ORIGIN_PREFIX: &str = "built-in ";

impl Pack {
    /// The path problems and listings name the pack by.
    pub fn origin(&self) -> PathBuf {
        PathBuf::from(format!("{ORIGIN_PREFIX}{}", self.path))
    }
}

/// Whether `file` names a built-in pack rather than a file on disk.
pub fn is_builtin(file: &Path) -> bool {
    file.to_str()
        .is_some_and(|path| path.starts_with(ORIGIN_PREFIX))
}

/// The alerting and recording rule packs (`rules/packs/`).
pub const ALERTING: &[Pack] = &[
    Pack {
        path: "packs/agent.yaml",
        text: include_str!("../../rules/packs/agent.yaml"),
    },
    Pack {
        path: "packs/host.yaml",
        text: include_str!("../../rules/packs/host.yaml"),
    },
    Pack {
        path: "packs/network.yaml",
        text: include_str!("../../rules/packs/network.yaml"),
    },
    Pack {
        path: "packs/service.yaml",
        text: include_str!("../../rules/packs/service.yaml"),
    },
];

/// The detection rule packs (`rules/detection/`).
pub const DETECTION: &[Pack] = &[
    Pack {
        path: "detection/accounts.yaml",
        text: include_str!("../../rules/detection/accounts.yaml"),
    },
    Pack {
        path: "detection/agent.yaml",
        text: include_str!("../../rules/detection/agent.yaml"),
    },
    Pack {
        path: "detection/files.yaml",
        text: include_str!("../../rules/detection/files.yaml"),
    },
    Pack {
        path: "detection/network.yaml",
        text: include_str!("../../rules/detection/network.yaml"),
    },
    Pack {
        path: "detection/ports.yaml",
        text: include_str!("../../rules/detection/ports.yaml"),
    },
    Pack {
        path: "detection/ssh.yaml",
        text: include_str!("../../rules/detection/ssh.yaml"),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule files (tests and schemas excluded) in `rules/<folder>/`.
    fn shipped(folder: &str) -> Vec<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../rules")
            .join(folder);
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".yaml") && !name.ends_with(".test.yaml"))
            .map(|name| format!("{folder}/{name}"))
            .collect();
        files.sort();
        files
    }

    #[test]
    fn every_shipped_pack_is_embedded_and_valid() {
        let alerting: Vec<String> = ALERTING.iter().map(|p| p.path.to_string()).collect();
        assert_eq!(alerting, shipped("packs"));
        let detection: Vec<String> = DETECTION.iter().map(|p| p.path.to_string()).collect();
        assert_eq!(detection, shipped("detection"));
        for pack in ALERTING {
            let groups = countywatch_rules::rulefmt::parse(&pack.origin(), pack.text).unwrap();
            assert!(!groups.is_empty(), "{}", pack.path);
        }
        for pack in DETECTION {
            let rules = countywatch_detect::rulefmt::parse(&pack.origin(), pack.text).unwrap();
            assert!(!rules.is_empty(), "{}", pack.path);
        }
        assert!(is_builtin(&DETECTION[0].origin()));
        assert!(!is_builtin(Path::new("/etc/countywatch/rules/host.yaml")));
    }
}
