//! The incident page in a real browser: headless Chromium (Debian's
//! `chromium` and `chromium-driver`) logs in as a security officer, opens
//! the incident a replayed brute-force log raised, reads the evidence
//! (where an SSH user name is a `<script>` tag that must show as text and
//! never run), acknowledges it with a comment, resolves it, and the audit
//! trail is then checked through the API. A screenshot of the incident page
//! is saved under `target/` for people to look at.

use std::time::Duration;

use countywatch_e2e::process::{add_user, api_token, wait_until};
use countywatch_e2e::webdriver::Browser;
use countywatch_e2e::{Collector, binary};

use crate::incidents::{ATTACKER, SCRIPT_USER, audit_trail, raise_brute_force_incident};

#[test]
fn an_officer_works_a_brute_force_incident_in_chromium() {
    let collector = Collector::start();
    let data_dir = collector.data_dir.clone();
    let id = raise_brute_force_incident(&data_dir);
    add_user(&data_dir, "officer", "security_officer", "officer-password");
    let base = format!("http://{}", collector.http_addr);

    let browser = Browser::start();
    // Not logged in: the queue sends the browser to the login page, in
    // `display.language` (Chinese by default) although Chromium here asks
    // for en-US; English by choice, and the choice is kept.
    browser.go(&format!("{base}/incidents"));
    assert!(browser.url().ends_with("/login"), "{}", browser.url());
    assert_eq!(browser.find("#login").text(), "登录");
    browser.find("#lang-en").click_and_wait();
    assert_eq!(browser.find("#login").text(), "Log in");
    browser.go(&format!("{base}/login"));
    assert_eq!(browser.find("#login").text(), "Log in", "the cookie");
    browser.find("#username").type_text("officer");
    browser.find("#password").type_text("officer-password");
    browser.find("#login").click_and_wait();
    assert_eq!(
        browser.url(),
        format!("{base}/"),
        "the overview after login"
    );
    assert_eq!(browser.find("#whoami").text(), "officer");
    browser.go(&format!("{base}/incidents"));
    assert!(
        browser.find("#counts").text().contains("high: 1"),
        "{}",
        browser.find("#counts").text()
    );

    // The queue lists the incident; open it.
    let links = browser.find_all("a.incident-link");
    assert_eq!(links.len(), 1);
    links[0].click_and_wait();
    assert!(
        browser.url().ends_with(&format!("/incidents/{id}")),
        "{}",
        browser.url()
    );
    assert!(browser.find("#title").text().contains(ATTACKER));
    assert_eq!(browser.find("#status").text(), "open");

    // The evidence, with the attacker's markup shown as text, not run.
    let users: Vec<String> = browser
        .find_all(".evidence-user")
        .iter()
        .map(|cell| cell.text())
        .collect();
    assert_eq!(users.len(), 6);
    assert_eq!(users.iter().filter(|user| *user == "root").count(), 5);
    assert!(users.iter().any(|user| user == SCRIPT_USER), "{users:?}");
    let raw: Vec<String> = browser
        .find_all(".evidence-raw")
        .iter()
        .map(|cell| cell.text())
        .collect();
    assert!(
        raw.iter()
            .all(|line| line.contains(&format!("from {ATTACKER}"))),
        "{raw:?}"
    );
    assert!(!browser.title().starts_with('1'), "the injected script ran");
    assert!(!browser.has_dialog());

    // Acknowledge with a comment, then resolve.
    browser
        .find("#ack-comment")
        .type_text("Blocking 203.0.113.9 at the county firewall");
    browser.find("#ack-submit").click_and_wait();
    assert_eq!(browser.find("#status").text(), "acknowledged");
    assert_eq!(browser.find("#assignee").text(), "officer");
    assert!(
        browser
            .find("#timeline")
            .text()
            .contains("Blocking 203.0.113.9")
    );
    browser
        .find("#resolve-reason")
        .type_text("Source blocked; no login succeeded");
    browser.find("#resolve-submit").click_and_wait();
    assert_eq!(browser.find("#status").text(), "resolved");

    // The screenshot, next to the binaries' target directory.
    let target = binary("countywatch-collector")
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("screenshots");
    std::fs::create_dir_all(&target).unwrap();
    let path = target.join("incident_web.png");
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG"));
    std::fs::write(&path, png).unwrap();
    println!("screenshot of the incident page: {}", path.display());

    // The language switch.
    browser.go(&format!("{base}/incidents/{id}?lang=zh"));
    assert_eq!(browser.find("#status").text(), "已解决");
    drop(browser);

    // The audit trail through the API: who did what, in order.
    let token = api_token(&data_dir, "officer");
    let mut trail = Vec::new();
    assert!(wait_until(Duration::from_secs(5), || {
        trail = audit_trail(collector.http_addr, &token, &format!("incident/{id}"));
        trail.len() >= 4
    }));
    let actions: Vec<(&str, &str)> = trail
        .iter()
        .map(|(actor, action, _)| (actor.as_str(), action.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("detection", "incident.created"),
            ("officer", "incident.status_changed"),
            ("officer", "incident.commented"),
            ("officer", "incident.status_changed"),
        ],
        "{trail:?}"
    );
    assert!(trail[1].2.contains("open -> acknowledged"), "{trail:?}");
    assert!(trail[2].2.contains("county firewall"), "{trail:?}");
    assert!(trail[3].2.contains("acknowledged -> resolved"), "{trail:?}");
    let logins = audit_trail(collector.http_addr, &token, "user/officer");
    assert!(
        logins
            .iter()
            .any(|(actor, action, _)| actor == "officer" && action == "login")
    );
}
