//! The security officers' console in a real browser (issue 24): headless
//! Chromium at 1366x768 with Debian's CJK fonts logs in as each role and
//! loads every page it may see, in Chinese and in English. Incidents are
//! raised by the collector's own detection task running the shipped packs
//! over an auth log replayed by `countywatch-agent replay`, so the titles
//! are what the packs make. The test asserts the content (no English rule
//! titles on the Chinese incident list, local times with their offset,
//! severity chips whose text contrasts with their background by at least
//! 4.5:1 computed from the rendered styles) and saves a screenshot of
//! every page to a folder it prints, for people to look at.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use countywatch_collector::host_binding::HostBinding;
use countywatch_collector::registry::Registry;
use countywatch_e2e::process::{add_user, wait_until};
use countywatch_e2e::webdriver::Browser;
use countywatch_e2e::{Collector, binary};
use countywatch_wire::{Event, EventKind, EventSource};
use serde_json::Value;

/// The brute-forcing address.
const ATTACKER: &str = "203.0.113.9";
/// An address guessing user names.
const SCANNER: &str = "198.51.100.7";
/// The network devices whose syslog county-web-01 receives.
const NETWORK_DEVICES: [&str; 4] = ["core-sw1", "core-sw2", "access-sw1", "access-sw2"];

/// A syslog time (`Dec  6 02:50:10`, UTC) `seconds` after an hour ago,
/// so that the week's and the day's panels show the attack.
fn syslog_time(seconds: i64) -> String {
    let at = crate::outputs::now_ms() - 3_600_000 + seconds * 1000;
    let text = countywatch_collector::incident::export::rfc3339(at);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month: usize = text[5..7].parse().unwrap();
    let day: u32 = text[8..10].parse().unwrap();
    format!("{} {day:>2} {}", MONTHS[month - 1], &text[11..19])
}

/// An auth log of an attack: twelve refused root passwords from one
/// address, then its accepted login; a burst of invalid users from another.
fn attack_log() -> String {
    let mut log = String::new();
    for attempt in 0..12 {
        log.push_str(&format!(
            "{} county-web-01 sshd[4242]: Failed password for root from {ATTACKER} port {} ssh2\n",
            syslog_time(attempt),
            40000 + attempt
        ));
    }
    log.push_str(&format!(
        "{} county-web-01 sshd[4250]: Accepted password for root from {ATTACKER} port 40030 ssh2\n",
        syslog_time(20)
    ));
    for attempt in 0..12 {
        log.push_str(&format!(
            "{} county-web-01 sshd[4260]: Failed password for invalid user guest{attempt} from {SCANNER} port {} ssh2\n",
            syslog_time(40 + attempt),
            50000 + attempt
        ));
    }
    log
}

/// Stores the replayed attack log's events as agent `county-web-01`.
fn store_attack_events(data_dir: &Path) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(&log, attack_log()).unwrap();
    let output = Command::new(binary("countywatch-agent"))
        .args(["replay", "--source", "auth"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events: Vec<Event> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let registry = Registry::open(data_dir).unwrap();
    let now = crate::outputs::now_ms();
    registry
        .enrol("county-web-01", "test-certificate", now)
        .unwrap();
    registry
        .accept_batch("county-web-01", 1, &events, now)
        .unwrap();
    // The switches whose syslog it receives, bound to it as ingest binds
    // them, for the agents page's devices column.
    let mut device_events: Vec<Event> = NETWORK_DEVICES
        .iter()
        .map(|device| {
            let mut event = Event::new(now, EventSource::Syslog, EventKind::InterfaceDown);
            event.fields.device = Some(device.to_string());
            event
        })
        .collect();
    HostBinding::open(data_dir)
        .unwrap()
        .apply("county-web-01", &mut device_events, &mut Vec::new(), now)
        .unwrap();
    events.len()
}

/// WCAG's relative luminance of `rgb(r, g, b)` / `rgba(...)`.
fn luminance(css: &str) -> f64 {
    let inside = css
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not a CSS colour: {css}"));
    let channels: Vec<f64> = inside
        .split(',')
        .take(3)
        .map(|part| part.trim().parse::<f64>().unwrap() / 255.0)
        .collect();
    let linear = |c: f64| {
        if c <= 0.03928 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * linear(channels[0]) + 0.7152 * linear(channels[1]) + 0.0722 * linear(channels[2])
}

/// WCAG's contrast ratio of two CSS colours.
fn contrast(first: &str, second: &str) -> f64 {
    let (a, b) = (luminance(first), luminance(second));
    (a.max(b) + 0.05) / (a.min(b) + 0.05)
}

/// Every severity chip in `selector`: its text, colour and background as
/// the browser computed them.
fn chips(browser: &Browser, selector: &str) -> Vec<(String, String, String)> {
    let found = browser.execute(
        "return Array.from(document.querySelectorAll(arguments[0])).map(function (chip) {
             var style = getComputedStyle(chip);
             return [chip.innerText, style.color, style.backgroundColor];
         });",
        &[Value::String(selector.to_string())],
    );
    found
        .as_array()
        .unwrap()
        .iter()
        .map(|chip| {
            (
                chip[0].as_str().unwrap().to_string(),
                chip[1].as_str().unwrap().to_string(),
                chip[2].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Whether `text` has a CJK ideograph.
fn has_chinese(text: &str) -> bool {
    text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

/// Whether `text` holds a local time to the second with its offset
/// (`2026-12-06 10:30:05 +08:00`).
fn has_local_time(text: &str) -> bool {
    text.as_bytes().windows(26).any(|window| {
        let shape = "dddd-dd-dd dd:dd:dd +dd:dd";
        window
            .iter()
            .zip(shape.bytes())
            .all(|(byte, expected)| match expected {
                b'd' => byte.is_ascii_digit(),
                b'+' => *byte == b'+' || *byte == b'-',
                other => *byte == other,
            })
    })
}

/// The pages a role may load, least privileged first.
fn pages_for(role: &str) -> Vec<&'static str> {
    let mut pages = vec![
        "/",
        "/incidents",
        "/incidents?status=all",
        "/alerts",
        "/agents",
    ];
    if matches!(role, "security_officer" | "admin") {
        pages.extend(["/events", "/audit", "/decisions"]);
    }
    if role == "admin" {
        pages.push("/users");
    }
    pages
}

fn screenshot_dir() -> PathBuf {
    let dir = binary("countywatch-collector")
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("screenshots")
        .join("console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_role_reads_every_page_in_chinese_and_english_in_chromium() {
    let packs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules/detection");
    let config = format!(
        "detection:\n  rule_files: [{:?}]\n  save_every: 1s\n  from_beginning: true\n",
        packs.canonicalize().unwrap()
    );
    let collector = Collector::start_with(Some(&config), &[]);
    let data_dir = collector.data_dir.clone();
    assert!(store_attack_events(&data_dir) >= 25);
    for role in ["viewer", "operator", "security_officer", "admin"] {
        add_user(
            &data_dir,
            &format!("console-{role}"),
            role,
            "console-password",
        );
    }
    let base = format!("http://{}", collector.http_addr);

    // The detection task raises the incidents from the stored events.
    let incidents_db = data_dir.join("incidents.db");
    let mut rules: Vec<String> = Vec::new();
    assert!(
        wait_until(Duration::from_secs(60), || {
            let Ok(connection) = rusqlite::Connection::open(&incidents_db) else {
                return false;
            };
            rules = connection
                .prepare("SELECT DISTINCT rule_id FROM incidents ORDER BY rule_id")
                .and_then(|mut statement| {
                    statement
                        .query_map([], |row| row.get(0))
                        .and_then(Iterator::collect)
                })
                .unwrap_or_default();
            [
                "ssh_brute_force",
                "ssh_success_after_failures",
                "ssh_password_spraying",
            ]
            .iter()
            .all(|rule| rules.iter().any(|found| found == rule))
        }),
        "incidents raised: {rules:?}"
    );

    let dir = screenshot_dir();
    println!("console screenshots: {}", dir.display());
    let browser = Browser::start();
    browser.set_viewport(1366, 768);
    let viewport = browser.execute("return [window.innerWidth, window.innerHeight]", &[]);
    assert_eq!(viewport, serde_json::json!([1366, 768]));

    for role in ["viewer", "operator", "security_officer", "admin"] {
        browser.go(&format!("{base}/login?lang=zh"));
        browser
            .find("#username")
            .type_text(&format!("console-{role}"));
        browser.find("#password").type_text("console-password");
        browser.find("#login").click_and_wait();
        assert_eq!(
            browser.url(),
            format!("{base}/"),
            "{role} lands on the overview"
        );
        for lang in ["zh", "en"] {
            for page in pages_for(role) {
                let separator = if page.contains('?') { '&' } else { '?' };
                browser.go(&format!("{base}{page}{separator}lang={lang}"));
                let html = browser.source();
                assert!(html.contains(&format!(
                    "lang=\"{}\"",
                    if lang == "zh" { "zh-CN" } else { "en" }
                )));
                assert!(
                    browser.find_all("p.error").is_empty(),
                    "{role} {page} {lang}: {html}"
                );
                let name = page
                    .trim_start_matches('/')
                    .replace(['/', '?', '=', '&'], "_");
                let name = if name.is_empty() {
                    "overview".to_string()
                } else {
                    name
                };
                let path = dir.join(format!("{role}-{lang}-{name}.png"));
                std::fs::write(&path, browser.screenshot()).unwrap();
            }
            // The queue: Chinese titles for the shipped rules, local times,
            // readable chips.
            browser.go(&format!("{base}/incidents?lang={lang}"));
            let titles: Vec<String> = browser
                .find_all("td.incident-title")
                .iter()
                .map(|cell| cell.text())
                .collect();
            assert!(titles.len() >= 3, "{titles:?}");
            if lang == "zh" {
                for title in &titles {
                    assert!(
                        has_chinese(title),
                        "an English title on the Chinese list: {title}"
                    );
                }
            } else {
                assert!(
                    titles
                        .iter()
                        .any(|title| title.contains("SSH brute force from")),
                    "{titles:?}"
                );
            }
            let table = browser.find("#incidents").text();
            assert!(has_local_time(&table), "{table}");
            let counted = chips(&browser, "#counts .chip");
            assert_eq!(counted.len(), 5, "{counted:?}");
            for (text, color, background) in &counted {
                let ratio = contrast(color, background);
                assert!(
                    ratio >= 4.5,
                    "{text}: {color} on {background} is {ratio:.2}:1"
                );
            }
            assert!(
                counted
                    .iter()
                    .any(|(text, _, _)| text.ends_with(": 2") || text.ends_with(": 1")),
                "{counted:?}"
            );
        }
        // The incident page: guidance and ATT&CK names in Chinese.
        browser.go(&format!("{base}/incidents?lang=zh&rule=ssh_brute_force"));
        browser.find_all("a.incident-link")[0].click_and_wait();
        let guidance = browser.find("#guidance").text();
        assert!(guidance.contains("封禁"), "{guidance}");
        assert!(
            browser
                .find("#techniques")
                .text()
                .contains("T1110.001 暴力破解：密码猜测")
        );
        assert!(browser.find("#timeline").text().contains("检测引擎"));
        assert!(
            !browser.find_all("#evidence mark").is_empty(),
            "matched fields highlighted"
        );
        let officer = matches!(role, "security_officer" | "admin");
        assert_eq!(
            !browser.find_all("#ack-assignee").is_empty(),
            officer,
            "{role}"
        );
        let name = format!("{role}-zh-incident.png");
        std::fs::write(dir.join(&name), browser.screenshot()).unwrap();
        browser.go(&format!("{base}/incidents?lang=en&rule=ssh_brute_force"));
        browser.find_all("a.incident-link")[0].click_and_wait();
        std::fs::write(
            dir.join(format!("{role}-en-incident.png")),
            browser.screenshot(),
        )
        .unwrap();
        // Operators silence a firing alert (its labels prefilled) and
        // expire the silence; viewers get no such form.
        browser.go(&format!("{base}/alerts?lang=en"));
        let operator = role != "viewer";
        assert_eq!(
            !browser.find_all("button.silence").is_empty(),
            operator,
            "{role}"
        );
        if role == "operator" {
            browser.find_all("button.silence")[0].click_and_wait();
            assert_eq!(browser.find("#notice").text(), "Saved.");
            assert!(browser.find("#silences").text().contains("alertname=ssh_"));
            std::fs::write(
                dir.join("operator-en-alerts-silenced.png"),
                browser.screenshot(),
            )
            .unwrap();
            browser.find_all("button.expire")[0].click_and_wait();
            assert_eq!(browser.find("#notice").text(), "Saved.");
            assert!(browser.find_all("button.expire").is_empty());
            assert!(browser.find("#silences").text().contains("expired"));
            assert!(has_local_time(&browser.find("#silences").text()));
        }
        browser.find("#logout").click_and_wait();
    }

    // An officer searches the events by source address, and each links to
    // the incident it is evidence of.
    browser.go(&format!("{base}/login?lang=en"));
    browser
        .find("#username")
        .type_text("console-security_officer");
    browser.find("#password").type_text("console-password");
    browser.find("#login").click_and_wait();
    browser.go(&format!("{base}/events?src_ip={SCANNER}"));
    let rows = browser.find_all("tr.event-row");
    assert_eq!(rows.len(), 12);
    assert!(!browser.find_all("a.evidence-of").is_empty());
    // Free text (the raw line; the trigram index or the scan, the same
    // rows either way), and text under a trigram's length.
    browser.go(&format!("{base}/events?q=Failed+password+for+invalid+user"));
    assert_eq!(browser.find_all("tr.event-row").len(), 12);
    browser.go(&format!("{base}/events?q=guest1"));
    assert_eq!(browser.find_all("tr.event-row").len(), 3, "guest1, 10, 11");
    // The agents page names the devices each agent reports.
    browser.go(&format!("{base}/agents?lang=zh"));
    assert_eq!(
        browser.find("#agent-county-web-01 td.devices").text(),
        "access-sw1, access-sw2, core-sw1 等 4 台"
    );
    browser.go(&format!("{base}/agents?lang=en"));
    assert_eq!(
        browser.find("#agent-county-web-01 td.devices").text(),
        "access-sw1, access-sw2, core-sw1 and 1 more"
    );
    browser.go(&format!("{base}/audit?action=login"));
    assert!(
        browser
            .find("#audit")
            .text()
            .contains("console-security_officer")
    );
}
