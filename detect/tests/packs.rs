//! Every shipped detection pack (`rules/detection/*.yaml`) loads, has a
//! test file, and passes it; each rule's tests make it fire at least once.

use std::collections::HashSet;
use std::path::PathBuf;

use countywatch_detect::rulefmt;
use countywatch_detect::unittest;

fn pack_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules/detection")
}

#[test]
fn every_pack_passes_its_tests_and_every_rule_fires_in_them() {
    let packs = rulefmt::rule_files(&[pack_dir()]).unwrap();
    assert!(packs.len() >= 6, "{packs:?}");
    let mut rule_ids = HashSet::new();
    for pack in &packs {
        let rules = rulefmt::load(pack).unwrap_or_else(|problems| panic!("{problems}"));
        rule_ids.extend(rules.iter().map(|rule| rule.id.clone()));
        let test_file = pack.with_extension("test.yaml");
        assert!(test_file.exists(), "{} has no test file", pack.display());
        let outcome = unittest::run_file(&test_file);
        assert!(outcome.passed, "{}", outcome.report);
        let text = std::fs::read_to_string(&test_file).unwrap();
        for rule in &rules {
            assert!(
                text.contains(&format!("rule: {}", rule.id)),
                "{} never expects {} to fire",
                test_file.display(),
                rule.id
            );
        }
        assert!(
            text.contains("expect: []"),
            "{} never shows a rule not firing",
            test_file.display()
        );
    }
    // The list, by rule id.
    for id in [
        "ssh_brute_force",
        "ssh_password_spraying",
        "ssh_success_after_failures",
        "ssh_root_login",
        "ssh_invalid_user_burst",
        "ssh_login_outside_working_hours",
        "ssh_login_from_new_address",
        "sudo_auth_failures",
        "account_changed",
        "privileged_group_changed",
        "collector_login_guessing",
        "sensitive_file_changed",
        "unexpected_listening_port",
        "device_login_failures",
        "device_config_changed",
        "interface_flapping",
        "agent_silent",
    ] {
        assert!(rule_ids.contains(id), "no shipped rule {id}");
    }
}

#[test]
fn all_packs_load_together_with_unique_ids() {
    let packs = rulefmt::rule_files(&[pack_dir()]).unwrap();
    let rules = rulefmt::load_all(&packs).unwrap_or_else(|failures| {
        panic!(
            "{}",
            failures
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    assert!(rules.len() >= 16);
}

/// The web page is Chinese first: every shipped rule says what to do, and
/// carries its title, description and guidance in Chinese, whose title
/// names the same labels as the English one (so it renders as fully).
#[test]
fn every_shipped_rule_has_guidance_and_chinese_texts() {
    let packs = rulefmt::rule_files(&[pack_dir()]).unwrap();
    for pack in &packs {
        for rule in rulefmt::load(pack).unwrap_or_else(|problems| panic!("{problems}")) {
            assert!(
                !rule.guidance.trim().is_empty(),
                "{} has no guidance",
                rule.id
            );
            let zh = rule
                .i18n
                .get("zh")
                .unwrap_or_else(|| panic!("{} has no i18n.zh", rule.id));
            let title = zh.title.as_ref().expect("a Chinese title").source();
            assert!(
                title
                    .chars()
                    .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                "{}: {title}",
                rule.id
            );
            for label in rule.title.source().split("$labels.").skip(1) {
                let name: String = label
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    title.contains(&format!("$labels.{name}")),
                    "{}: {title}",
                    rule.id
                );
            }
            assert!(
                zh.description
                    .as_deref()
                    .is_some_and(|text| !text.is_empty()),
                "{}",
                rule.id
            );
            assert!(
                zh.guidance.as_deref().is_some_and(|text| !text.is_empty()),
                "{}",
                rule.id
            );
        }
    }
}
