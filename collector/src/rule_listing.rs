//! `countywatch-collector rules list`: every rule that would run under a
//! configuration (built-in packs and rule files, less replaced and
//! disabled rules), its kind and where it came from. Whether a rule is
//! firing is the web page's and the API's business, not this listing's.

use std::io::Write;
use std::path::Path;

use countywatch_rules::rulefmt::RuleKind;

use crate::config::Config;

/// One rule that would run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedRule {
    /// `alert`, `record` or `detection/<correlation kind>`.
    pub kind: String,
    /// The alert or record name (`GROUP/NAME`), or the detection rule id.
    pub name: String,
    /// `built-in packs/host.yaml:13` or `/etc/countywatch/rules/x.yaml:7`.
    pub origin: String,
}

/// The rules `config` runs, alerting rules first, each in load order.
pub fn rules(config: &Config) -> anyhow::Result<Vec<ListedRule>> {
    let mut listed = Vec::new();
    let groups = crate::alerting::rule_groups(&config.rules).map_err(|failures| {
        let text: Vec<String> = failures.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("invalid rule files:\n{}", text.join("\n"))
    })?;
    for group in groups {
        for rule in &group.spec.rules {
            let kind = match rule.kind {
                RuleKind::Alert { .. } => "alert",
                RuleKind::Record { .. } => "record",
            };
            listed.push(ListedRule {
                kind: kind.to_string(),
                name: format!("{}/{}", group.spec.name, rule.name()),
                origin: origin(&group.file, rule.line),
            });
        }
    }
    let detection = config
        .detection
        .load_rules()
        .map_err(|problems| anyhow::anyhow!("invalid detection rules:\n{problems}"))?;
    for rule in detection {
        listed.push(ListedRule {
            kind: format!("detection/{}", rule.kind.name()),
            name: rule.id.clone(),
            origin: origin(&rule.file, rule.line),
        });
    }
    Ok(listed)
}

/// Prints [`rules`] as a table.
pub fn print(config: &Config, out: &mut impl Write) -> anyhow::Result<()> {
    let rules = rules(config)?;
    writeln!(out, "{:<20} {:<56} ORIGIN", "KIND", "NAME")?;
    for rule in &rules {
        writeln!(out, "{:<20} {:<56} {}", rule.kind, rule.name, rule.origin)?;
    }
    Ok(())
}

fn origin(file: &Path, line: u64) -> String {
    if line == 0 {
        file.display().to_string()
    } else {
        format!("{}:{line}", file.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_list_the_built_in_packs_with_their_lines_and_files_replace_them() {
        let listed = rules(&Config::default()).unwrap();
        let brute_force = listed
            .iter()
            .find(|rule| rule.name == "ssh_brute_force")
            .unwrap();
        assert_eq!(brute_force.kind, "detection/threshold");
        assert!(
            brute_force
                .origin
                .starts_with("built-in detection/ssh.yaml:"),
            "{brute_force:?}"
        );
        let silent = listed
            .iter()
            .find(|rule| rule.name == "countywatch-agent/AgentSilent")
            .unwrap();
        assert_eq!(silent.kind, "alert");
        assert_eq!(silent.origin, "built-in packs/agent.yaml:7");

        let dir = tempfile::tempdir().unwrap();
        let mine = dir.path().join("ssh.yaml");
        std::fs::write(
            &mine,
            "rules:\n  - id: ssh_brute_force\n    title: mine\n    severity: low\n    match: {kind: ssh_login_failed}\n",
        )
        .unwrap();
        let mut config = Config::default();
        config.detection.rule_files = vec![mine.clone()];
        config.detection.disabled = vec!["ssh_root_login".to_string()];
        let listed = rules(&config).unwrap();
        let brute_force: Vec<&ListedRule> = listed
            .iter()
            .filter(|rule| rule.name == "ssh_brute_force")
            .collect();
        assert_eq!(brute_force.len(), 1, "{listed:?}");
        assert_eq!(brute_force[0].origin, format!("{}:2", mine.display()));
        assert_eq!(brute_force[0].kind, "detection/single");
        assert!(!listed.iter().any(|rule| rule.name == "ssh_root_login"));
        assert!(
            listed
                .iter()
                .any(|rule| rule.name == "ssh_password_spraying")
        );
    }
}
