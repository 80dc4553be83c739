//! What an anonymous caller on the HTTP listener can reach (issue 21, items
//! 6, 7 and 11): the Alertmanager-compatible reads need a viewer, a
//! silence is created by whoever authenticated, the open
//! status page names no agent, and paths the route table does not match
//! exactly (`/api/v2/silence//ID`, a trailing slash, an extra segment) are
//! answered 404 before they reach the notifier.

use countywatch_e2e::Collector;
use countywatch_e2e::http::{post_batch, request};
use countywatch_e2e::notify_peers;
use countywatch_e2e::process::{add_user, api_token};
use countywatch_wire::{Batch, WIRE_VERSION};
use serde_json::{Value, json};

#[test]
fn anonymous_callers_read_no_alerts_no_agent_names_and_reach_no_handler_by_a_crooked_path() {
    let collector = Collector::start_with(Some("notify:\n  accept_silences_api: true\n"), &[]);
    let addr = collector.http_addr;
    // An operator makes a silence through the API.
    let (status, body) = notify_peers::request(
        addr,
        "POST",
        "/api/v2/silences",
        &json!({
            "matchers": [{"name": "alertname", "value": "Disk.*", "isRegex": true}],
            "startsAt": "2000-01-01T00:00:00Z",
            "endsAt": "2999-01-01T00:00:00Z",
            "createdBy": "ops",
            "comment": "maintenance",
        })
        .to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["silenceID"]
        .as_str()
        .unwrap()
        .to_string();

    // Crooked paths are 404 from the route table, and the silence stays.
    for path in [
        format!("/api/v2/silence//{id}"),
        format!("/api/v2/silence/{id}/"),
        format!("/api/v2/silence/{id}/x"),
        format!("/api/v2/silence/x/{id}"),
    ] {
        let response = request(addr, "DELETE", &path, &[], "").unwrap();
        assert_eq!(response.status, 404, "{path}: {}", response.body);
    }
    // The exact path needs an operator; the refusal is audited.
    let response = request(addr, "DELETE", &format!("/api/v2/silence/{id}"), &[], "").unwrap();
    assert_eq!(response.status, 401, "{}", response.body);
    let (_, listed) = notify_peers::request(addr, "GET", "/api/v2/silences", "");
    let silences: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(silences[0]["status"]["state"], "active", "{listed}");
    // The body said "ops"; the silence names who authenticated (item 11).
    assert_eq!(silences[0]["createdBy"], "test-operator", "{listed}");
    let denied: i64 = rusqlite::Connection::open(collector.data_dir.join("incidents.db"))
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM audit WHERE action = 'access.denied' AND target LIKE 'DELETE /api/v2/silence/%'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(denied, 1);

    // Alerts and silences need a viewer.
    for path in ["/api/v2/alerts", "/api/v2/silences"] {
        let anonymous = request(addr, "GET", path, &[], "").unwrap();
        assert_eq!(anonymous.status, 401, "{path}: {}", anonymous.body);
    }
    add_user(
        &collector.data_dir,
        "viewer1",
        "viewer",
        "viewer-password-1",
    );
    let viewer = format!(
        "Authorization: Bearer {}",
        api_token(&collector.data_dir, "viewer1")
    );
    for path in ["/api/v2/alerts", "/api/v2/silences"] {
        let read = request(addr, "GET", path, &[&viewer], "").unwrap();
        assert_eq!(read.status, 200, "{path}: {}", read.body);
    }

    // The open status page counts agents without naming them.
    let identity = collector.enrolled_identity("county-finance-01");
    let batch = Batch {
        version: WIRE_VERSION,
        agent: "county-finance-01".to_string(),
        seq: 1,
        collected_at_ms: 0,
        metrics: Vec::new(),
        events: Vec::new(),
    };
    assert_eq!(
        post_batch(collector.ingest_addr, identity.path(), &batch).status,
        200
    );
    let status = request(addr, "GET", "/status", &[], "").unwrap();
    assert_eq!(status.status, 200);
    assert!(
        status.body.contains("1 agents have reported"),
        "{}",
        status.body
    );
    assert!(
        !status.body.contains("county-finance-01"),
        "{}",
        status.body
    );
    assert!(
        status.body.contains(&collector.ca_sha256),
        "{}",
        status.body
    );
}
