//! The audit trail under attack (issue 21, item 1): a real collector writes
//! a trail, anchors every checkpoint to a syslog socket this test owns and
//! stops cleanly; then each tampering an intruder with the database (and no
//! signing key) would try is applied to its own copy of the data dir, with
//! the sqlite3 CLI or rusqlite as the intruder's tool, and
//! `countywatch-collector audit verify` must exit 1 naming where it broke.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use countywatch_collector::audit::{Content, GENESIS, entry_hash};
use countywatch_e2e::Collector;
use countywatch_e2e::http::request;
use rusqlite::{Connection, params};

use crate::incidents::collector_cli as cli;

/// Runs `audit verify` (with anchors if given) and returns the exit code
/// and both outputs together.
fn verify(data_dir: &Path, anchors: Option<&Path>) -> (i32, String) {
    let mut args = vec!["audit", "verify"];
    if let Some(anchors) = anchors {
        args.extend(["--anchors", anchors.to_str().unwrap()]);
    }
    let output = cli(data_dir, &args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

/// Copies the data dir's incident store and signing key to a fresh dir.
fn copy_of(data_dir: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for name in ["incidents.db", "audit-signing.pk8"] {
        std::fs::copy(data_dir.join(name), copy.path().join(name)).unwrap();
    }
    copy
}

/// Runs SQL on a copy's incident store with the sqlite3 CLI.
fn sqlite3(dir: &Path, sql: &str) {
    let status = Command::new("sqlite3")
        .arg(dir.join("incidents.db"))
        .arg(sql)
        .status()
        .expect("sqlite3 is installed by tests/run.sh");
    assert!(status.success(), "{sql}");
}

/// Renumbers every entry from 1 and recomputes every hash, as an intruder
/// who knows the (public) hash formula but not the key would after editing
/// or deleting rows.
fn rechain(dir: &Path) {
    let connection = Connection::open(dir.join("incidents.db")).unwrap();
    let rows: Vec<(i64, i64, String, String, String, String, String)> = connection
        .prepare(
            "SELECT seq, at_ms, actor, action, target, outcome, details FROM audit ORDER BY seq",
        )
        .unwrap()
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    connection.execute("DELETE FROM audit", []).unwrap();
    let mut prev = GENESIS.to_string();
    for (index, (_, at_ms, actor, action, target, outcome, details)) in rows.iter().enumerate() {
        let seq = index as i64 + 1;
        let hash = entry_hash(
            &prev,
            &Content {
                seq,
                at_ms: *at_ms,
                actor,
                action,
                target,
                outcome,
                details,
            },
        );
        connection
            .execute(
                "INSERT INTO audit (seq, at_ms, actor, action, target, outcome, details, prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![seq, at_ms, actor, action, target, outcome, details, prev, hash],
            )
            .unwrap();
        prev = hash;
    }
}

/// Asserts that verification of `dir` fails with `expected` in its message.
fn assert_broken(dir: &Path, anchors: Option<&Path>, tampering: &str, expected: &str) {
    let (code, text) = verify(dir, anchors);
    assert_eq!(code, 1, "{tampering} went unnoticed:\n{text}");
    assert!(
        text.contains("audit trail broken at") && text.contains(expected),
        "{tampering}: expected {expected:?} in\n{text}"
    );
}

#[test]
fn every_tampering_with_the_audit_database_is_detected_and_anchors_catch_the_truncated_tail() {
    let sockets = tempfile::tempdir().unwrap();
    let socket_path = sockets.path().join("log.sock");
    let syslog = UnixDatagram::bind(&socket_path).unwrap();
    syslog
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let config = format!(
        "incidents:\n  checkpoint_every: 8\naudit:\n  anchor_syslog: {}\n",
        socket_path.display()
    );
    let collector = Collector::start_with(Some(&config), &[]);
    // 60 anonymous reads of the incident list: each refusal is an
    // `access.denied` entry, the category an intruder would hide.
    for _ in 0..60 {
        let response = request(collector.http_addr, "GET", "/api/v1/incidents", &[], "").unwrap();
        assert_eq!(response.status, 401);
    }
    // The collector verifies its own trail as soon as it starts.
    assert_eq!(
        collector.wait_for_series("countywatch_audit_verify_success", Duration::from_secs(30)),
        Some(1.0),
        "{}",
        collector.logs.all().join("\n")
    );
    assert!(
        collector
            .wait_for_series(
                "countywatch_audit_verify_timestamp_seconds",
                Duration::from_secs(5)
            )
            .is_some_and(|seconds| seconds > 1.7e9)
    );
    let data_dir = collector.data_dir.clone();
    // A clean stop signs the last checkpoint and anchors it.
    let _kept = collector.stop_keeping_data();

    let mut received = Vec::new();
    let mut buffer = vec![0_u8; 65536];
    while let Ok(length) = syslog.recv(&mut buffer) {
        received.push(String::from_utf8_lossy(&buffer[..length]).to_string());
    }
    assert!(received.len() >= 8, "{received:#?}");
    assert!(
        received
            .iter()
            .all(|line| line.starts_with("<86>countywatch-collector[")
                && line.contains("]: countywatch-audit-checkpoint {")),
        "{received:#?}"
    );
    // `audit checkpoints` prints the same lines the socket received.
    let printed = cli(&data_dir, &["audit", "checkpoints"]);
    let printed = String::from_utf8_lossy(&printed.stdout).to_string();
    let anchored: Vec<&str> = received
        .iter()
        .map(|line| &line[line.find("countywatch-audit-checkpoint").unwrap()..])
        .collect();
    assert_eq!(printed.lines().collect::<Vec<_>>(), anchored);
    let since = cli(&data_dir, &["audit", "checkpoints", "--since", "3"]);
    assert_eq!(
        String::from_utf8_lossy(&since.stdout).lines().count(),
        anchored.len() - 2
    );
    let anchors = sockets.path().join("anchors.log");
    std::fs::write(&anchors, received.join("\n")).unwrap();

    // Untouched, it verifies, with and without anchors, and says what it
    // proved and what it could not.
    let (code, text) = verify(&data_dir, None);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("audit trail intact"), "{text}");
    assert!(text.contains("proved: entries 1.."), "{text}");
    assert!(text.contains("cannot prove without anchors"), "{text}");
    let (code, text) = verify(&data_dir, Some(&anchors));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("anchor lines"), "{text}");

    let tail: i64 = Connection::open(data_dir.join("incidents.db"))
        .unwrap()
        .query_row("SELECT MAX(seq) FROM audit", [], |row| row.get(0))
        .unwrap();
    assert!(tail > 60, "{tail}");

    // Deleting the newest entries, past the last signed checkpoint.
    let copy = copy_of(&data_dir);
    sqlite3(
        copy.path(),
        &format!("DELETE FROM audit WHERE seq > {};", tail - 3),
    );
    assert_broken(
        copy.path(),
        None,
        "deleting the newest entries",
        &format!("entry {}", tail - 2),
    );

    // The same, also deleting the checkpoints over them: the database alone
    // is consistent, the anchors are not.
    let copy = copy_of(&data_dir);
    sqlite3(
        copy.path(),
        "DELETE FROM audit WHERE seq > (SELECT entries FROM audit_checkpoints ORDER BY seq DESC LIMIT 1 OFFSET 1);
         DELETE FROM audit_checkpoints WHERE seq = (SELECT MAX(seq) FROM audit_checkpoints);",
    );
    let (code, text) = verify(copy.path(), None);
    assert_eq!(
        code, 0,
        "without anchors the truncation is invisible: {text}"
    );
    assert!(text.contains("cannot prove without anchors"), "{text}");
    assert_broken(
        copy.path(),
        Some(&anchors),
        "truncating the tail with its checkpoint",
        "truncated",
    );

    // Deleting the oldest 50 entries.
    let copy = copy_of(&data_dir);
    sqlite3(copy.path(), "DELETE FROM audit WHERE seq <= 50;");
    assert_broken(
        copy.path(),
        None,
        "deleting the oldest 50",
        "entries 1..50 are missing",
    );

    // Emptying the table.
    let copy = copy_of(&data_dir);
    sqlite3(copy.path(), "DELETE FROM audit;");
    assert_broken(copy.path(), None, "DELETE FROM audit", "the trail is empty");

    // Editing the newest entry (after the checkpoint before the last) and
    // recomputing the hashes that follow.
    let copy = copy_of(&data_dir);
    sqlite3(
        copy.path(),
        &format!("UPDATE audit SET actor = 'nobody' WHERE seq = {tail};"),
    );
    rechain(copy.path());
    assert_broken(
        copy.path(),
        None,
        "editing the newest entry and rehashing",
        &format!("entry {tail}"),
    );

    // Editing an old entry, rehashing everything, deleting the checkpoints.
    let copy = copy_of(&data_dir);
    sqlite3(
        copy.path(),
        "UPDATE audit SET actor = 'nobody' WHERE seq = 5;",
    );
    rechain(copy.path());
    sqlite3(copy.path(), "DELETE FROM audit_checkpoints;");
    assert_broken(
        copy.path(),
        None,
        "rehashing everything and deleting the checkpoints",
        "no signed checkpoint",
    );

    // Removing a category of entries (every refused access) and renumbering.
    let copy = copy_of(&data_dir);
    sqlite3(
        copy.path(),
        "DELETE FROM audit WHERE action = 'access.denied';",
    );
    rechain(copy.path());
    assert_broken(
        copy.path(),
        None,
        "removing every access.denied and renumbering",
        "checkpoint",
    );
}
