//! Nothing lost and nothing repeated in the crash windows the docs used to
//! admit (issue 21, item 13). The collector is started with the test-only
//! `COUNTYWATCH_FAILPOINT` (debug builds only), which makes it SIGKILL
//! itself at the named point, exactly inside the window; after a restart
//! the state is checked straight from the databases on disk.
//!
//! Windows: an incident's transaction (incidents.db) and its
//! `incident_changed` announcement (collector.db's event log, which the
//! SIEM forwarding reads); a batch's transaction (collector.db) and the
//! remote_write queue of its samples (outputs.db). Each is killed after the
//! first commit, and again after the relay's commit but before its outbox
//! row is deleted.

use std::path::Path;
use std::time::Duration;

use countywatch_e2e::Collector;
use countywatch_e2e::http::{post_batch, request};
use countywatch_e2e::process::{add_user, api_token, wait_until};
use countywatch_wire::{Batch, Event, MetricFamily, MetricKind, WIRE_VERSION};

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

/// A remote_write output whose receiver never answers (nothing listens on
/// port 1), so its queue in outputs.db only grows; no rules, so nothing
/// but agents' samples is queued.
const REMOTE_WRITE: &str = "rules:\n  builtin: false\ndetection:\n  builtin: false\noutputs:\n  remote_write:\n    - name: lts\n      url: http://127.0.0.1:1/api/v1/write\n      max_backoff: 60s\n";

/// Samples in the output's queue, and rows left in the samples outbox.
fn queued_samples(data_dir: &Path) -> (i64, i64) {
    let open = |name: &str| {
        rusqlite::Connection::open_with_flags(
            data_dir.join(name),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap()
    };
    let queued = open("outputs.db")
        .query_row(
            "SELECT COALESCE(SUM(samples), 0) FROM remote_write_queue WHERE output = 'lts'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let outbox = open("collector.db")
        .query_row("SELECT COUNT(*) FROM samples_outbox", [], |row| row.get(0))
        .unwrap();
    (queued, outbox)
}

/// A batch of three samples.
fn three_samples(seq: u64) -> Batch {
    let metrics = ["node_load1", "node_load5", "node_load15"]
        .into_iter()
        .map(|name| MetricFamily::single(name, "Load average.", MetricKind::Gauge, 0.5))
        .collect();
    Batch {
        version: WIRE_VERSION,
        agent: "rw-crash".to_string(),
        seq,
        collected_at_ms: countywatch_daemon::clock::now_ms(),
        metrics,
        events: Vec::new(),
    }
}

#[test]
fn a_kill_between_a_stored_batch_and_its_remote_write_queue_loses_and_repeats_nothing() {
    for (failpoint, queued_before_restart) in
        [("ingest.batch_stored", 0), ("remote_write.relayed", 3)]
    {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let variable = format!("COUNTYWATCH_FAILPOINT={failpoint}");
        let mut collector =
            Collector::start_wrapped(dir, &data_dir, Some(REMOTE_WRITE), &[], &["env", &variable]);
        let identity = collector.enrolled_identity("rw-crash");
        // The answer never comes: the collector dies inside the window.
        let answer = post_batch(collector.ingest_addr, identity.path(), &three_samples(1));
        assert!(
            wait_until(Duration::from_secs(30), || !collector.is_running()),
            "{failpoint}: the collector did not die at the failpoint (answer {})",
            answer.status
        );
        let dir = collector.kill();
        let stored = rusqlite::Connection::open_with_flags(
            data_dir.join("collector.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM batches WHERE agent = 'rw-crash'",
            [],
            |row| row.get::<_, i64>(0),
        )
        .unwrap();
        assert_eq!(stored, 1, "{failpoint}: the batch was stored");
        assert_eq!(
            queued_samples(&data_dir),
            (queued_before_restart, 1),
            "{failpoint}: in the window"
        );

        // Restarted: the samples are queued once; a second restart queues
        // nothing again, and the next batch goes the usual way.
        let collector = Collector::start_in(dir, &data_dir, Some(REMOTE_WRITE), &[]);
        assert!(
            wait_until(Duration::from_secs(30), || queued_samples(&data_dir)
                == (3, 0)),
            "{failpoint}: after the restart {:?}",
            queued_samples(&data_dir)
        );
        let dir = collector.stop_keeping_data();
        let collector = Collector::start_in(dir, &data_dir, Some(REMOTE_WRITE), &[]);
        assert_eq!(
            queued_samples(&data_dir),
            (3, 0),
            "{failpoint}: second restart"
        );
        let answer = post_batch(collector.ingest_addr, identity.path(), &three_samples(2));
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(
            queued_samples(&data_dir),
            (6, 0),
            "{failpoint}: the next batch"
        );
    }
}
