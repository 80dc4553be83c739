//! Day one (issue 20): a collector installed and started as a newcomer
//! would, with no configuration file at all, protects the county from the
//! first start (the shipped packs run), can be logged into, and reads
//! local times.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use countywatch_e2e::process::{add_user, api_token, wait_until};
use countywatch_e2e::{Collector, binary};
use serde_json::Value;

/// Appends `count` refused SSH logins from `address`, one second apart.
fn append_failures(log: &Path, address: &str, count: u64) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    for second in 0..count {
        writeln!(
            file,
            "2026-12-06T18:30:{second:02}.000000+08:00 web1 sshd[{}]: Failed password for root from {address} port {} ssh2",
            4000 + second,
            40_000 + second
        )
        .unwrap();
    }
}

#[test]
fn a_collector_without_any_configuration_opens_ssh_brute_force_from_the_built_in_packs() {
    // `Collector::start` passes no --config: the embedded defaults apply.
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append_failures(&log, "203.0.113.77", 15);
    let agent = crate::events::start_agent("web1", &collector, &crate::events::config(&log));
    add_user(&collector.data_dir, "reader", "viewer", "reader-password-1");
    let token = api_token(&collector.data_dir, "reader");
    let mut incidents = Value::Null;
    let opened = wait_until(Duration::from_secs(60), || {
        let (status, body) = crate::incidents::api(
            collector.http_addr,
            "GET",
            "/api/v1/incidents",
            &token,
            &Value::Null,
        );
        assert_eq!(status, 200, "{body}");
        incidents = body;
        incidents.to_string().contains("ssh_brute_force")
    });
    assert!(opened, "{incidents:#}\n{}", collector.logs.all().join("\n"));
    assert!(
        incidents.to_string().contains("203.0.113.77"),
        "{incidents:#}"
    );
    drop(agent);
}

#[test]
fn rules_list_names_every_built_in_rule_with_its_origin_and_honours_disabled() {
    let output = Command::new(binary("countywatch-collector"))
        .args(["rules", "list"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{listed}");
    let line = listed
        .lines()
        .find(|line| line.contains(" ssh_brute_force "))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(line.starts_with("detection/threshold"), "{line}");
    assert!(line.contains("built-in detection/ssh.yaml:"), "{line}");
    assert!(listed.contains("countywatch-agent/AgentSilent"), "{listed}");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("collector.yaml");
    std::fs::write(
        &config,
        "rules:\n  builtin: false\ndetection:\n  disabled: [ssh_brute_force]\n",
    )
    .unwrap();
    let output = Command::new(binary("countywatch-collector"))
        .args(["rules", "list", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{listed}");
    assert!(!listed.contains("ssh_brute_force "), "{listed}");
    assert!(!listed.contains("AgentSilent"), "{listed}");
    assert!(listed.contains("ssh_password_spraying"), "{listed}");

    // A disabled name that matches no rule is a configuration problem.
    std::fs::write(&config, "detection:\n  disabled: [ssh_brute_forse]\n").unwrap();
    let output = Command::new(binary("countywatch-collector"))
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("\"ssh_brute_forse\""), "{stderr}");
}

#[test]
fn the_first_admin_logs_in_with_the_generated_password_and_must_change_it_first() {
    use std::os::unix::fs::PermissionsExt;

    let collector = Collector::start();
    let file = collector.data_dir.join("initial-admin-password");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let password = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert!(password.len() >= 12, "{password:?}");
    // The log says where the password is, never the password.
    assert!(
        collector.logs.contains("initial-admin-password"),
        "{}",
        collector.logs.all().join("\n")
    );
    assert!(!collector.logs.contains(&password));

    let base = format!("http://{}", collector.http_addr);
    let browser = countywatch_e2e::webdriver::Browser::start();
    browser.go(&format!("{base}/"));
    assert!(browser.url().ends_with("/login"), "{}", browser.url());
    browser.find("#username").type_text("admin");
    browser.find("#password").type_text(&password);
    browser.find("#login").click_and_wait();
    // Every page leads to the password form until the password is changed.
    assert!(browser.url().ends_with("/password"), "{}", browser.url());
    assert!(browser.find("#must-change").text().len() > 5);
    browser.go(&format!("{base}/agents"));
    assert!(browser.url().ends_with("/password"), "{}", browser.url());
    browser.go(&format!("{base}/password"));
    browser.find("#current").type_text(&password);
    browser
        .find("#new")
        .type_text("our county's own admin password");
    browser
        .find("#confirm")
        .type_text("our county's own admin password");
    browser.find("#change-password").click_and_wait();
    assert!(browser.url().ends_with("/incidents"), "{}", browser.url());
    assert_eq!(browser.find("#whoami").text(), "admin");
    assert!(
        !file.exists(),
        "the initial password file outlived the change"
    );

    // The old password no longer works; the new one does, straight to the
    // overview.
    browser.find("#logout").click_and_wait();
    browser.find("#username").type_text("admin");
    browser.find("#password").type_text(&password);
    browser.find("#login").click_and_wait();
    assert!(browser.url().ends_with("/login"), "{}", browser.url());
    browser.find("#username").type_text("admin");
    browser
        .find("#password")
        .type_text("our county's own admin password");
    browser.find("#login").click_and_wait();
    // Login lands on the overview.
    assert_eq!(browser.url(), format!("{base}/"));

    // A restart with users present creates no new admin file.
    let (ingest, enroll, data_dir) = (
        collector.ingest_addr,
        collector.enroll_addr,
        collector.data_dir.clone(),
    );
    let kept = collector.stop_keeping_data();
    let _collector = Collector::restart(kept, &data_dir, ingest, enroll);
    assert!(!file.exists());
}

fn collector_cli(data_dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(binary("countywatch-collector"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[test]
fn resetting_disabling_and_revoking_end_sessions_and_tokens_and_tokens_can_expire() {
    let collector = Collector::start();
    let data_dir = collector.data_dir.clone();
    let whoami = |token: &str| {
        crate::incidents::api(
            collector.http_addr,
            "GET",
            "/api/v1/whoami",
            token,
            &Value::Null,
        )
        .0
    };
    add_user(&data_dir, "clerk", "viewer", "clerk-password-1");
    let token = api_token(&data_dir, "clerk");
    assert_eq!(whoami(&token), 200);

    // A password reset revokes the token.
    add_user(&data_dir, "clerk", "viewer", "clerk-password-2");
    assert_eq!(whoami(&token), 401);

    // A token with --ttl shows its expiry and can be revoked by id.
    let (ok, output) = collector_cli(
        &data_dir,
        &[
            "user", "token", "clerk", "--label", "report", "--ttl", "90d",
        ],
    );
    assert!(ok, "{output}");
    let expiring = output.trim().to_string();
    assert_eq!(whoami(&expiring), 200);
    let (ok, listing) = collector_cli(&data_dir, &["user", "tokens", "clerk"]);
    assert!(ok, "{listing}");
    let row = listing
        .lines()
        .find(|line| line.contains(" report "))
        .unwrap_or_else(|| panic!("{listing}"));
    assert!(!row.ends_with("never"), "{row}");
    let id = row.split_whitespace().next().unwrap();
    let (ok, output) = collector_cli(&data_dir, &["user", "revoke-token", id]);
    assert!(ok, "{output}");
    assert_eq!(whoami(&expiring), 401);

    // Disabling revokes tokens; enabling does not bring them back.
    let token = api_token(&data_dir, "clerk");
    let (ok, output) = collector_cli(&data_dir, &["user", "disable", "clerk"]);
    assert!(ok, "{output}");
    assert_eq!(whoami(&token), 401);
    let (ok, output) = collector_cli(&data_dir, &["user", "enable", "clerk"]);
    assert!(ok, "{output}");
    assert_eq!(whoami(&token), 401);
    let (ok, users) = collector_cli(&data_dir, &["user", "list"]);
    assert!(ok, "{users}");
    assert!(
        users
            .lines()
            .any(|line| line.starts_with("admin ") && line.contains("must change password")),
        "{users}"
    );
    assert!(
        users
            .lines()
            .any(|line| line.starts_with("clerk ") && line.contains("active")),
        "{users}"
    );
    let (ok, output) = collector_cli(&data_dir, &["user", "remove", "clerk"]);
    assert!(ok, "{output}");
    let (ok, output) = collector_cli(&data_dir, &["user", "disable", "clerk"]);
    assert!(!ok, "{output}");

    // Each change is in the audit trail.
    let (ok, output) = collector_cli(&data_dir, &["audit", "verify"]);
    assert!(ok, "{output}");
    let audit = rusqlite::Connection::open(data_dir.join("incidents.db")).unwrap();
    let actions: Vec<String> = audit
        .prepare("SELECT action FROM audit WHERE target = 'user/clerk' ORDER BY seq")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for action in [
        "user.added",
        "token.created",
        "token.revoked",
        "user.disabled",
        "user.enabled",
        "user.removed",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
}

/// Whether `text` holds a time as people read it in Shanghai:
/// `2026-12-06 18:30:05 +08:00` (seconds, no milliseconds, the offset).
fn has_shanghai_time(text: &str) -> bool {
    text.match_indices(" +08:00").any(|(index, _)| {
        let Some(stamp) = index
            .checked_sub(19)
            .and_then(|start| text.get(start..index))
        else {
            return false;
        };
        stamp
            .bytes()
            .enumerate()
            .all(|(position, byte)| match position {
                4 | 7 => byte == b'-',
                10 => byte == b' ',
                13 | 16 => byte == b':',
                _ => byte.is_ascii_digit(),
            })
    })
}

#[test]
fn the_page_and_the_cli_show_times_in_the_display_zone_with_the_offset() {
    let collector = Collector::start_with(
        Some("display:\n  timezone: Asia/Shanghai\n  language: en\n"),
        &[],
    );
    let data_dir = collector.data_dir.clone();
    let id = crate::incidents::raise_brute_force_incident(&data_dir);
    add_user(&data_dir, "officer", "security_officer", "officer-password");
    let (status, session) =
        crate::incidents::login(collector.http_addr, "officer", "officer-password");
    assert_eq!(status, 303);
    let cookie = format!("Cookie: cw_session={}", session.unwrap());
    for path in ["/incidents".to_string(), format!("/incidents/{id}")] {
        let page =
            countywatch_e2e::http::request(collector.http_addr, "GET", &path, &[&cookie], "")
                .unwrap();
        assert_eq!(page.status, 200, "{path}");
        assert!(has_shanghai_time(&page.body), "{path}: {}", page.body);
        assert!(
            !page.body.contains("Z</td>"),
            "{path}: UTC left: {}",
            page.body
        );
        // `language: en` is the default when the browser states none.
        assert!(page.body.contains("Incidents"), "{}", page.body);
    }

    // `audit list` reads the same zone from the same configuration.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("collector.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {:?}\ndisplay:\n  timezone: Asia/Shanghai\n",
            data_dir.display().to_string()
        ),
    )
    .unwrap();
    let output = Command::new(binary("countywatch-collector"))
        .args([
            "audit", "list", "--since", "1h", "--action", "user.", "--config",
        ])
        .arg(&config)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{listed}");
    assert!(
        listed.starts_with("   SEQ TIME (Asia/Shanghai)"),
        "{listed}"
    );
    let officer = listed
        .lines()
        .find(|line| line.contains("user/officer"))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(has_shanghai_time(officer), "{officer}");
    assert!(officer.contains("user.added"), "{officer}");
    assert!(
        !listed.lines().any(|line| line.contains(" login ")),
        "--action user. keeps only user.* entries: {listed}"
    );
}
