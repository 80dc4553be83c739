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
pub(crate) fn append_failures(log: &Path, address: &str, count: u64) {
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
    // The change lands on the overview, signed in with a new session.
    assert_eq!(browser.url(), format!("{base}/"));
    assert_eq!(browser.find("#whoami").text(), "admin");
    let agents_up = browser.find("#agents-up").text();
    assert!(agents_up.contains(": "), "{agents_up}");
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

    // The API keeps epoch milliseconds and adds RFC 3339 in the same zone.
    let token = api_token(&data_dir, "officer");
    let (status, detail) = crate::incidents::api(
        collector.http_addr,
        "GET",
        &format!("/api/v1/incidents/{id}"),
        &token,
        &Value::Null,
    );
    assert_eq!(status, 200, "{detail}");
    let incident = &detail["incident"];
    let first_seen_ms = incident["first_seen_ms"].as_i64().unwrap();
    let first_seen_at = incident["first_seen_at"].as_str().unwrap();
    assert!(first_seen_at.ends_with("+08:00"), "{detail:#}");
    let parsed = time::OffsetDateTime::parse(
        first_seen_at,
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(
        parsed.unix_timestamp_nanos() / 1_000_000,
        i128::from(first_seen_ms),
        "{detail:#}"
    );
    let at = detail["timeline"][0]["at"].as_str().unwrap_or_default();
    assert!(at.ends_with("+08:00"), "{detail:#}");

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

#[test]
fn enrolment_prints_a_start_command_with_its_config_and_token_create_never_the_host_name() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let agent_config = dir.path().join("agent.yaml");
    std::fs::write(
        &agent_config,
        format!(
            "state_dir: {:?}\n",
            dir.path().join("state").display().to_string()
        ),
    )
    .unwrap();
    let output = Command::new(binary("countywatch-agent"))
        .args(["enroll", "--collector", &collector.enroll_url(), "--token"])
        .arg(collector.token(Some("web7")))
        .args(["--ca-sha256", &collector.ca_sha256, "--config"])
        .arg(&agent_config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "Start the agent with: countywatch-agent run --config {}",
            agent_config.display()
        )),
        "{stdout}"
    );

    // token create: enroll.public_url, else the first server name, never
    // the machine's host name.
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let data_dir = dir.path().join("data");
    for (config, expected) in [
        (
            "enroll:\n  public_url: https://cw.county.example:9443\n",
            "--collector https://cw.county.example:9443 ",
        ),
        (
            "ingest:\n  server_names: [collector.county.example]\nenroll:\n  listen: 0.0.0.0:9782\n",
            "--collector https://collector.county.example:9782 ",
        ),
        (
            "enroll:\n  listen: 0.0.0.0:9782\n",
            "--collector https://COLLECTOR-ADDRESS:PORT ",
        ),
    ] {
        let file = dir.path().join("collector.yaml");
        std::fs::write(
            &file,
            format!("data_dir: {:?}\n{config}", data_dir.display().to_string()),
        )
        .unwrap();
        let output = Command::new(binary("countywatch-collector"))
            .args(["token", "create", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains(expected), "{config}: {stdout}");
        assert!(
            !stdout.contains(&format!("https://{host_name}:")),
            "{config}: {stdout}"
        );
    }
}

/// The `Details: URL` links of an email's text.
fn detail_links(message: &Value) -> Vec<String> {
    message["text"]
        .as_str()
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Details: "))
        .map(str::to_string)
        .collect()
}

/// `GET path` with a session cookie; the status, the `location` header and
/// the body.
fn page(collector: &Collector, cookie: &str, path: &str) -> (u16, String, String) {
    let raw = crate::incidents::raw_request(collector.http_addr, "GET", path, &[cookie], "");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let location = head
        .lines()
        .find_map(|line| line.strip_prefix("location: "))
        .unwrap_or("")
        .to_string();
    (status, location, body.to_string())
}

#[test]
fn the_details_link_of_a_real_email_opens_the_alert_or_the_detections_incident() {
    use countywatch_e2e::notify_peers::{SmtpServer, post_alerts};
    use countywatch_wire::{Batch, Event, EventKind, EventSource, WIRE_VERSION};

    let smtp = SmtpServer::plain();
    let config = format!(
        "display:\n  language: en\n  timezone: Asia/Shanghai\nnotify:\n  accept_alerts_api: true\n  external_url: http://countywatch.county.example:9780/\n  route:\n    receiver: mail\n    group_by: [alertname]\n    group_wait: 0s\n    group_interval: 1s\n  receivers:\n  - name: mail\n    email_configs:\n      - to: [soc@county.test]\n        from: countywatch@county.test\n        smarthost: {}\n        tls: none\n        timeout: 5s\n",
        smtp.addr
    );
    let collector = Collector::start_with(Some(&config), &[]);
    add_user(&collector.data_dir, "oper", "operator", "operator-password");
    let (status, session) =
        crate::incidents::login(collector.http_addr, "oper", "operator-password");
    assert_eq!(status, 303);
    let cookie = format!("Cookie: cw_session={}", session.unwrap());

    // An alert from outside (Alertmanager's API): its page, then a silence.
    post_alerts(
        collector.http_addr,
        &serde_json::json!([{
            "labels": {"alertname": "DiskAlmostFull", "instance": "web1"},
            "annotations": {"summary": "web1's /var is 97% full"},
        }]),
    );
    let messages = smtp.wait_for(1, Duration::from_secs(30));
    // `display:` sets the notifications' language and zone too.
    let started = messages[0]["text"]
        .as_str()
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.trim().strip_prefix("Started: "))
        .unwrap_or_else(|| panic!("{messages:#?}"))
        .to_string();
    assert!(has_shanghai_time(&format!("{started} ")), "{started}");
    assert!(started.ends_with(" +08:00"), "{started}");
    let links = detail_links(&messages[0]);
    assert_eq!(links.len(), 1, "{messages:#?}");
    let path = links[0]
        .strip_prefix("http://countywatch.county.example:9780")
        .unwrap_or_else(|| panic!("{links:?}"))
        .to_string();
    let (status, _, _) = page(&collector, "", &path);
    assert_eq!(status, 303, "not logged in: to the login page");
    let (status, _, body) = page(&collector, &cookie, &path);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("DiskAlmostFull"), "{body}");
    assert!(
        body.contains("web1&#39;s /var is 97% full") || body.contains("web1's /var is 97% full"),
        "{body}"
    );
    assert!(body.contains("id=\"silence\""), "{body}");
    // The receiver the email came from is listed with when, in the zone.
    let notified = body
        .split("id=\"alert-notified\"")
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .unwrap_or_else(|| panic!("{body}"));
    assert!(notified.contains("<td>mail</td>"), "{notified}");
    assert!(notified.contains(" +08:00"), "{notified}");
    let csrf = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let form = format!("csrf={csrf}&duration=1h&comment=disk+being+replaced");
    let response = crate::incidents::raw_request(
        collector.http_addr,
        "POST",
        &format!("{path}/silence"),
        &[&cookie, "Content-Type: application/x-www-form-urlencoded"],
        &form,
    );
    assert!(response.starts_with("HTTP/1.1 303"), "{response}");
    let (_, _, body) = page(&collector, &cookie, &path);
    assert!(body.contains("disk being replaced"), "{body}");
    assert!(body.contains(">silenced<"), "{body}");

    // A detection's alert: its link leads to the incident.
    let identity = collector.enrolled_identity("web2");
    let now = crate::outputs::now_ms();
    let events: Vec<Event> = (0..12)
        .map(|n| {
            let mut event = Event::new(
                now - 30_000 + n * 1_000,
                EventSource::Auth,
                EventKind::SshLoginFailed,
            );
            event.fields.user = Some("root".to_string());
            event.fields.src_ip = Some("198.51.100.44".parse().unwrap());
            event.raw = format!("Failed password for root from 198.51.100.44 port {n}");
            event
        })
        .collect();
    let batch = Batch {
        version: WIRE_VERSION,
        agent: "web2".into(),
        seq: 1,
        collected_at_ms: now,
        metrics: Vec::new(),
        events,
    };
    let response =
        countywatch_e2e::http::post_batch(collector.ingest_addr, identity.path(), &batch);
    assert_eq!(response.status, 200, "{}", response.body);
    let mut link = None;
    assert!(
        wait_until(Duration::from_secs(60), || {
            link = smtp
                .messages()
                .iter()
                .filter(|message| message.to_string().contains("ssh_brute_force"))
                .flat_map(detail_links)
                .next();
            link.is_some()
        }),
        "{:#?}",
        smtp.messages()
    );
    let path = link
        .unwrap()
        .strip_prefix("http://countywatch.county.example:9780")
        .unwrap()
        .to_string();
    let (status, location, _) = page(&collector, &cookie, &path);
    assert_eq!(status, 303);
    assert!(location.starts_with("/incidents/"), "{location}");
    let (status, _, body) = page(&collector, &cookie, &location);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("198.51.100.44"), "{body}");
}

#[test]
fn check_config_lists_three_positioned_problems_for_a_file_with_three() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("collector.yaml");
    // A bad value, a semantic problem and an unknown key, out of file order
    // in kind so the report's order is the file's.
    std::fs::write(
        &config,
        "ingest:\n  max_connections: many\nhttp:\n  listen: 0.0.0.0:9780\nnotify:\n  resolve_timeut: 5m\n",
    )
    .unwrap();
    let output = Command::new(binary("countywatch-collector"))
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    let file = config.display().to_string();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(lines[0].starts_with(&format!("{file}:2:20: ")), "{stderr}");
    assert!(
        lines[1].starts_with(&format!("{file}:4:11: http.listen")),
        "{stderr}"
    );
    assert!(lines[2].starts_with(&format!("{file}:6:3: ")), "{stderr}");
    assert!(lines[2].contains("resolve_timeut"), "{stderr}");
}
