//! Nothing lost and nothing repeated in the crash windows the docs used to
//! admit (issue 21, item 13). The collector is started with the test-only
//! `COUNTYWATCH_FAILPOINT` (debug builds only), which makes it SIGKILL
//! itself at the named point, exactly inside the window; after a restart
//! the state is checked straight from the databases on disk.
//!
//! Window: an incident's transaction (incidents.db) and its
//! `incident_changed` announcement (collector.db's event log, which the
//! SIEM forwarding reads). Killed after the change commits, and again after
//! the announcement is relayed but before its outbox row is deleted.

use std::path::Path;
use std::time::Duration;

use countywatch_e2e::Collector;
use countywatch_e2e::http::request;
use countywatch_e2e::process::{add_user, api_token, wait_until};
use countywatch_wire::Event;

use crate::incidents::raise_brute_force_incident;

/// The statuses announced for incident `id` in collector.db, in order.
fn announced(data_dir: &Path, id: i64) -> Vec<String> {
    let database = rusqlite::Connection::open_with_flags(
        data_dir.join("collector.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut statement = database
        .prepare("SELECT body FROM events WHERE kind = 'incident_changed' ORDER BY id")
        .unwrap();
    statement
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .map(|body| serde_json::from_str::<Event>(&body.unwrap()).unwrap())
        .filter(|event| event.fields.incident_id == Some(id))
        .map(|event| event.fields.status.unwrap_or_default())
        .collect()
}

/// The incident's status and the announcements still queued, from
/// incidents.db.
fn incident_state(data_dir: &Path, id: i64) -> (String, i64) {
    let database = rusqlite::Connection::open_with_flags(
        data_dir.join("incidents.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let status = database
        .query_row("SELECT status FROM incidents WHERE id = ?1", [id], |row| {
            row.get(0)
        })
        .unwrap();
    let queued = database
        .query_row("SELECT COUNT(*) FROM announcements", [], |row| row.get(0))
        .unwrap();
    (status, queued)
}

#[test]
fn a_kill_between_an_incident_change_and_its_announcement_loses_and_repeats_nothing() {
    for (failpoint, announced_before_restart) in [
        ("incident.committed", 0),
        ("incident.announcement_relayed", 1),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let collector = Collector::start_in(dir, &data_dir, None, &[]);
        let id = raise_brute_force_incident(&data_dir);
        add_user(
            &data_dir,
            "officer1",
            "security_officer",
            "officer-password-1",
        );
        let token = api_token(&data_dir, "officer1");
        // The incident was opened outside the collector; its announcement
        // waits in the outbox until the next start relays it.
        let dir = collector.stop_keeping_data();
        let collector = Collector::start_in(dir, &data_dir, None, &[]);
        assert!(
            wait_until(Duration::from_secs(30), || announced(&data_dir, id)
                == ["open"]),
            "{failpoint}: the opening was not announced: {:?}",
            announced(&data_dir, id)
        );
        let dir = collector.stop_keeping_data();

        let variable = format!("COUNTYWATCH_FAILPOINT={failpoint}");
        let mut collector =
            Collector::start_wrapped(dir, &data_dir, None, &[], &["env", &variable]);
        // The answer never comes: the collector dies inside the window.
        let _ = request(
            collector.http_addr,
            "POST",
            &format!("/api/v1/incidents/{id}/transition"),
            &[
                &format!("Authorization: Bearer {token}"),
                "Content-Type: application/json",
            ],
            r#"{"status": "acknowledged"}"#,
        );
        assert!(
            wait_until(Duration::from_secs(30), || !collector.is_running()),
            "{failpoint}: the collector did not die at the failpoint"
        );
        let dir = collector.kill();
        let (status, _) = incident_state(&data_dir, id);
        assert_eq!(status, "acknowledged", "{failpoint}");
        let mut expected = vec!["open".to_string()];
        expected.extend(std::iter::repeat_n(
            "acknowledged".to_string(),
            announced_before_restart,
        ));
        assert_eq!(
            announced(&data_dir, id),
            expected,
            "{failpoint}: in the window"
        );

        // Restarted: the announcement is relayed once, and a second restart
        // relays nothing again.
        let collector = Collector::start_in(dir, &data_dir, None, &[]);
        assert!(
            wait_until(Duration::from_secs(30), || incident_state(&data_dir, id).1
                == 0),
            "{failpoint}: the outbox was not emptied"
        );
        assert_eq!(
            announced(&data_dir, id),
            ["open", "acknowledged"],
            "{failpoint}: after the restart"
        );
        let dir = collector.stop_keeping_data();
        let collector = Collector::start_in(dir, &data_dir, None, &[]);
        assert_eq!(
            announced(&data_dir, id),
            ["open", "acknowledged"],
            "{failpoint}: after a second restart"
        );
        drop(collector);
    }
}
