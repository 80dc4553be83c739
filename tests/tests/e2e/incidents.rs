//! The incident store, audit trail, roles and API on a running collector.
//! Incidents come from a brute-force auth log replayed by the real
//! `countywatch-agent replay`; its events are stored through the
//! collector's registry (as ingest stores them) and handed to the store as
//! the detection engine will (`IncidentStore::record_detection`). The API
//! is driven over HTTP with tokens and sessions made by the CLI.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use countywatch_collector::incident::store::IncidentStore;
use countywatch_collector::registry::Registry;
use countywatch_detect::{Detection, Evidence, Severity};
use countywatch_e2e::http::{Response, request};
use countywatch_e2e::process::{add_user, api_token};
use countywatch_e2e::{Collector, binary};
use countywatch_wire::Event;
use serde_json::{Value, json};

/// The SSH user name an attacker chose: markup that must be shown, not run.
pub const SCRIPT_USER: &str = "<script>document.title=1</script>";
/// The brute-forcing address.
pub const ATTACKER: &str = "203.0.113.9";

/// A brute-force auth log as rsyslog writes it: five failed root
/// passwords, then an invalid user whose name is a script tag.
fn brute_force_log() -> String {
    let mut log = String::new();
    for attempt in 1..=5 {
        log.push_str(&format!(
            "Nov 28 02:50:0{attempt} county-web-01 sshd[4242]: Failed password for root from {ATTACKER} port 4000{attempt} ssh2\n"
        ));
    }
    log.push_str(&format!(
        "Nov 28 02:50:07 county-web-01 sshd[4243]: Failed password for invalid user {SCRIPT_USER} from {ATTACKER} port 40007 ssh2\n"
    ));
    log
}

/// Replays the brute-force log with `countywatch-agent replay`, stores its
/// events in the collector's `events` table as agent `county-web-01`, and
/// records the detection a brute-force rule makes of them. Returns the
/// incident's id.
pub fn raise_brute_force_incident(data_dir: &Path) -> i64 {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(&log, brute_force_log()).unwrap();
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
    let mut events: Vec<Event> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    events.retain(|event| event.kind.as_str() == "ssh_login_failed");
    assert_eq!(events.len(), 6, "{events:#?}");
    assert!(
        events
            .iter()
            .any(|event| event.fields.user.as_deref() == Some(SCRIPT_USER)),
        "{events:#?}"
    );

    let registry = Registry::open(data_dir).unwrap();
    let now = countywatch_daemon::clock::now_ms();
    registry
        .enrol("county-web-01", "test-certificate", now)
        .unwrap();
    registry
        .accept_batch("county-web-01", 1, &events, now)
        .unwrap();
    let connection = rusqlite::Connection::open(data_dir.join("collector.db")).unwrap();
    let ids: Vec<i64> = connection
        .prepare("SELECT id FROM events WHERE agent = 'county-web-01' ORDER BY id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ids.len(), events.len());

    let detection = Detection {
        rule_id: "ssh_brute_force".to_string(),
        title: format!("SSH brute force from {ATTACKER}"),
        severity: Severity::High,
        group_key: format!("src_ip={ATTACKER}"),
        labels: BTreeMap::from([("src_ip".to_string(), ATTACKER.to_string())]),
        annotations: BTreeMap::from([(
            "summary".to_string(),
            "6 failed SSH passwords within a minute".to_string(),
        )]),
        tags: vec!["T1110.001".to_string()],
        hosts: vec!["county-web-01".to_string()],
        at_ms: events.last().unwrap().timestamp_ms,
        evidence: ids
            .iter()
            .zip(&events)
            .map(|(id, event)| Evidence {
                event_id: Some(*id),
                event: Event {
                    host: "county-web-01".to_string(),
                    ..event.clone()
                },
            })
            .collect(),
        response: None,
    };
    IncidentStore::open(data_dir)
        .unwrap()
        .record_detection(&detection)
        .unwrap()
        .id()
}

/// `GET`/`POST` with a bearer token; the body parsed as JSON.
pub fn api(addr: SocketAddr, method: &str, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let authorization = format!("Authorization: Bearer {token}");
    let text = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let Response { status, body } = request(
        addr,
        method,
        path,
        &[&authorization, "Content-Type: application/json"],
        &text,
    )
    .unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// The audit entries about `target`, oldest first, as (actor, action).
pub fn audit_trail(addr: SocketAddr, token: &str, target: &str) -> Vec<(String, String, String)> {
    let (status, body) = api(
        addr,
        "GET",
        &format!("/api/v1/audit?target={target}"),
        token,
        &Value::Null,
    );
    assert_eq!(status, 200, "{body}");
    let mut entries: Vec<(String, String, String)> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["actor"].as_str().unwrap().to_string(),
                entry["action"].as_str().unwrap().to_string(),
                entry["details"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    entries.reverse();
    entries
}

/// Runs a `countywatch-collector` command on `data_dir`.
pub fn collector_cli(data_dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(binary("countywatch-collector"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap()
}

/// Posts the login form the way a browser does (double-submit cookie);
/// returns the status and the session cookie when one was set.
pub fn login(addr: SocketAddr, user: &str, password: &str) -> (u16, Option<String>) {
    let page = request(addr, "GET", "/login", &[], "").unwrap();
    assert_eq!(page.status, 200);
    let token = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", &token)
        .append_pair("username", user)
        .append_pair("password", password)
        .finish();
    let cookie = format!("Cookie: cw_login_csrf={token}");
    let response = raw_request(
        addr,
        "POST",
        "/login",
        &[&cookie, "Content-Type: application/x-www-form-urlencoded"],
        &body,
    );
    let session = response
        .lines()
        .find_map(|line| line.strip_prefix("set-cookie: cw_session="))
        .and_then(|rest| rest.split(';').next())
        .filter(|value| !value.is_empty())
        .map(str::to_string);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, session)
}

/// A request whose whole response (head included) is returned as text.
pub(crate) fn raw_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    String::from_utf8_lossy(&raw).into_owned()
}

#[test]
fn roles_gate_the_api_and_every_refusal_is_audited() {
    let collector = Collector::start_with(Some("notify:\n  accept_silences_api: true\n"), &[]);
    let data_dir = collector.data_dir.clone();
    let id = raise_brute_force_incident(&data_dir);
    add_user(&data_dir, "viewer1", "viewer", "viewer-password-1");
    add_user(
        &data_dir,
        "officer1",
        "security_officer",
        "officer-password-1",
    );
    let viewer = api_token(&data_dir, "viewer1");
    let officer = api_token(&data_dir, "officer1");
    let addr = collector.http_addr;

    // Anonymous: nothing but the description and the login page.
    let (status, _) = api(addr, "GET", "/api/v1/incidents", "nonsense", &Value::Null);
    assert_eq!(status, 401);
    let (status, description) = api(addr, "GET", "/api/v1/openapi.json", "", &Value::Null);
    assert_eq!(status, 200);
    assert!(description["paths"]["/api/v1/incidents"].is_object());

    // The viewer reads, filtered, but cannot act.
    let (status, list) = api(
        addr,
        "GET",
        &format!("/api/v1/incidents?status=open&severity=high&host=county-web-01&q={ATTACKER}"),
        &viewer,
        &Value::Null,
    );
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total"], 1);
    assert_eq!(list["incidents"][0]["id"], id);
    assert_eq!(list["counts_by_severity"]["high"], 1);
    let (_, none) = api(
        addr,
        "GET",
        "/api/v1/incidents?severity=low",
        &viewer,
        &Value::Null,
    );
    assert_eq!(none["total"], 0);
    let (status, _) = api(
        addr,
        "POST",
        &format!("/api/v1/incidents/{id}/transition"),
        &viewer,
        &json!({"status": "acknowledged"}),
    );
    assert_eq!(status, 403);
    let (status, _) = api(addr, "GET", "/api/v1/audit", &viewer, &Value::Null);
    assert_eq!(status, 403);
    let (status, _) = api(addr, "POST", "/api/v2/silences", &viewer, &json!({}));
    assert_eq!(status, 403, "silences need an operator");

    // The officer works the incident through the API.
    let (status, detail) = api(
        addr,
        "GET",
        &format!("/api/v1/incidents/{id}"),
        &officer,
        &Value::Null,
    );
    assert_eq!(status, 200);
    assert_eq!(detail["evidence"].as_array().unwrap().len(), 6);
    assert!(
        detail["evidence"][0]["event"]["raw"]
            .as_str()
            .unwrap()
            .contains("Failed password")
    );
    let (status, refused) = api(
        addr,
        "POST",
        &format!("/api/v1/incidents/{id}/transition"),
        &officer,
        &json!({"status": "resolved"}),
    );
    assert_eq!(status, 409, "resolving needs a reason: {refused}");
    let (status, done) = api(
        addr,
        "POST",
        &format!("/api/v1/incidents/{id}/transition"),
        &officer,
        &json!({"status": "false_positive", "reason": "penetration test"}),
    );
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["incident"]["status"], "false_positive");
    let (status, events) = api(
        addr,
        "GET",
        "/api/v1/events?host=county-web-01&kind=ssh_login_failed",
        &officer,
        &Value::Null,
    );
    assert_eq!(status, 200);
    assert_eq!(events["events"].as_array().unwrap().len(), 6);
    let (status, agents) = api(addr, "GET", "/api/v1/agents", &viewer, &Value::Null);
    assert_eq!(status, 200);
    assert_eq!(agents["agents"][0]["name"], "county-web-01");
    assert!(
        agents["agents"][0]["certificate_expires_ms"]
            .as_i64()
            .unwrap()
            > 0
    );

    // The other pages, with a bearer token and in Chinese by Accept-Language.
    let bearer = format!("Authorization: Bearer {viewer}");
    let agents_page = request(
        addr,
        "GET",
        "/agents",
        &[&bearer, "Accept-Language: zh-CN,zh;q=0.9"],
        "",
    )
    .unwrap();
    assert_eq!(agents_page.status, 200);
    assert!(
        agents_page.body.contains("county-web-01"),
        "{}",
        agents_page.body
    );
    assert!(agents_page.body.contains("探针"), "{}", agents_page.body);
    let alerts_page = request(addr, "GET", "/alerts", &[&bearer], "").unwrap();
    assert_eq!(alerts_page.status, 200);
    let export_page = request(addr, "GET", "/incidents/export.csv", &[&bearer], "").unwrap();
    assert_eq!(export_page.status, 403, "exports are for security officers");

    // Export, as CSV, of the filtered list.
    let csv = request(
        addr,
        "GET",
        "/api/v1/incidents/export?format=csv&rule=ssh_brute_force",
        &[&format!("Authorization: Bearer {officer}")],
        "",
    )
    .unwrap();
    assert_eq!(csv.status, 200);
    assert!(csv.body.contains("ssh_brute_force"), "{}", csv.body);
    assert!(csv.body.contains("penetration test"), "{}", csv.body);

    // Refusals are in the audit trail with who and what.
    let denied = audit_trail(
        addr,
        &officer,
        &format!("POST%20/api/v1/incidents/{id}/transition"),
    );
    assert!(
        denied
            .iter()
            .any(|(actor, action, _)| actor == "viewer1" && action == "access.denied"),
        "{denied:?}"
    );
    let trail = audit_trail(addr, &officer, &format!("incident/{id}"));
    let actions: Vec<&str> = trail.iter().map(|(_, action, _)| action.as_str()).collect();
    assert_eq!(
        actions,
        ["incident.created", "incident.status_changed"],
        "{trail:?}"
    );
    assert_eq!(trail[1].0, "officer1");
}

#[test]
fn forms_need_the_session_csrf_token_and_failed_logins_become_events() {
    let collector = Collector::start();
    let data_dir = collector.data_dir.clone();
    let id = raise_brute_force_incident(&data_dir);
    add_user(
        &data_dir,
        "officer2",
        "security_officer",
        "officer-password-2",
    );
    let addr = collector.http_addr;

    let (status, session) = login(addr, "officer2", "officer-password-2");
    assert_eq!(status, 303);
    let session = session.expect("a session cookie");
    let cookie = format!("Cookie: cw_session={session}");
    let page = request(addr, "GET", &format!("/incidents/{id}"), &[&cookie], "").unwrap();
    assert_eq!(page.status, 200);
    // Attacker-chosen text is escaped in the page.
    assert!(
        page.body
            .contains("&lt;script&gt;document.title=1&lt;/script&gt;")
    );
    assert!(!page.body.contains(SCRIPT_USER));
    // A forged form (no token) is refused; the same form with it works.
    let forged = request(
        addr,
        "POST",
        &format!("/incidents/{id}/comment"),
        &[&cookie, "Content-Type: application/x-www-form-urlencoded"],
        "text=forged",
    )
    .unwrap();
    assert_eq!(forged.status, 403);
    let token = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    let posted = request(
        addr,
        "POST",
        &format!("/incidents/{id}/comment"),
        &[&cookie, "Content-Type: application/x-www-form-urlencoded"],
        &format!("csrf={token}&text=checked"),
    )
    .unwrap();
    assert_eq!(posted.status, 303);

    // Password guessing: refused, then the account backs off (three free
    // attempts, then 1 s, 2 s... apart), and visible to detection.
    for attempt in 0..5 {
        let (status, session) = login(addr, "officer2", &format!("guess-{attempt}"));
        assert_eq!(status, if attempt < 3 { 401 } else { 429 }, "{attempt}");
        assert!(session.is_none());
    }
    let (status, _) = login(addr, "officer2", "officer-password-2");
    assert_eq!(
        status, 429,
        "the right password is refused while rate-limited"
    );
    assert_eq!(collector.event_count("collector", "web_login_failed"), 6);
    let connection = collector.database();
    let body: String = connection
        .query_row(
            "SELECT body FROM events WHERE kind = 'web_login_failed' ORDER BY id LIMIT 1",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["fields"]["user"], "officer2");
    assert_eq!(event["fields"]["src_ip"], "127.0.0.1");
}

#[test]
fn audit_verify_finds_the_row_edited_with_sqlite3_and_backup_copies_the_store() {
    let collector = Collector::start();
    let data_dir = collector.data_dir.clone();
    let id = raise_brute_force_incident(&data_dir);
    add_user(&data_dir, "admin1", "admin", "admin-password-1");
    let token = api_token(&data_dir, "admin1");
    // Entries from the API too: a transition by the admin.
    let (status, _) = api(
        collector.http_addr,
        "POST",
        &format!("/api/v1/incidents/{id}/transition"),
        &token,
        &json!({"status": "acknowledged"}),
    );
    assert_eq!(status, 200);
    collector.revoke("county-web-01");
    let _identity = collector.enrolled_identity("county-web-02");
    let enrolled = audit_trail(collector.http_addr, &token, "agent/county-web-02");
    assert_eq!(enrolled.len(), 1, "{enrolled:?}");
    assert_eq!(enrolled[0].0, "agent:county-web-02");
    assert_eq!(enrolled[0].1, "agent.enrolled");

    let verified = collector_cli(&data_dir, &["audit", "verify"]);
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(stdout.contains("audit trail intact"), "{stdout}");

    let backup = tempfile::tempdir().unwrap();
    let copy = backup.path().join("incidents-backup.db");
    let output = collector_cli(&data_dir, &["backup", copy.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let counted = Command::new("sqlite3")
        .arg(&copy)
        .arg("SELECT COUNT(*) FROM evidence;")
        .output()
        .expect("sqlite3 is installed by tests/run.sh");
    assert_eq!(String::from_utf8_lossy(&counted.stdout).trim(), "6");

    // Which entry recorded the revocation, then edit it as an intruder would.
    let seq = Command::new("sqlite3")
        .arg(data_dir.join("incidents.db"))
        .arg("SELECT seq FROM audit WHERE action = 'agent.revoked';")
        .output()
        .unwrap();
    let seq = String::from_utf8_lossy(&seq.stdout).trim().to_string();
    assert!(!seq.is_empty());
    let edited = Command::new("sqlite3")
        .arg(data_dir.join("incidents.db"))
        .arg(format!(
            "UPDATE audit SET actor = 'nobody' WHERE seq = {seq};"
        ))
        .status()
        .unwrap();
    assert!(edited.success());
    let verified = collector_cli(&data_dir, &["audit", "verify"]);
    let stderr = String::from_utf8_lossy(&verified.stderr);
    assert_eq!(verified.status.code(), Some(1));
    assert!(
        stderr.contains(&format!("broken at entry {seq}")),
        "{stderr}"
    );
}

#[test]
fn the_agents_list_shows_each_agents_version_and_address() {
    let collector = Collector::start();
    let agent = countywatch_e2e::Agent::start_for("listed-host", &collector);
    assert!(
        collector
            .wait_for_series(
                "countywatch_agent_build_info{instance=\"listed-host\",job=\"countywatch\",version=\"0.1.0\"}",
                std::time::Duration::from_secs(30)
            )
            .is_some(),
        "{}",
        agent.logs.all().join("\n")
    );
    add_user(
        &collector.data_dir,
        "viewer1",
        "viewer",
        "viewer-password-1",
    );
    let token = api_token(&collector.data_dir, "viewer1");
    let response = request(
        collector.http_addr,
        "GET",
        "/api/v1/agents",
        &[&format!("Authorization: Bearer {token}")],
        "",
    )
    .unwrap();
    assert_eq!(response.status, 200, "{}", response.body);
    let body: Value = serde_json::from_str(&response.body).unwrap();
    let listed = body["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["name"] == "listed-host")
        .cloned()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(listed["address"], "127.0.0.1", "{listed}");
    assert_eq!(listed["version"], env!("CARGO_PKG_VERSION"), "{listed}");
    assert_eq!(listed["up"], true, "{listed}");
    assert!(
        listed["certificate_expires_ms"].as_i64().unwrap()
            > listed["enrolled_ms"].as_i64().unwrap()
    );
}
