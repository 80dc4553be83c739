//! An unbound token cannot take over a live agent (issue 21, items 4 and
//! 12): enrolling under an enrolled agent's name is refused unless the
//! token was made with `token create --name NAME --replace`; the refusal,
//! the replacement and every token's creation are in the audit trail, with
//! the CLI's user even when `$USER` is unset.

use std::process::Command;

use countywatch_e2e::http::{empty_batch, post_batch};
use countywatch_e2e::{Collector, binary, enroll};
use rusqlite::Connection;

/// (actor, action, target, outcome, details) of every audit entry.
fn trail(collector: &Collector) -> Vec<(String, String, String, String, String)> {
    let connection = Connection::open(collector.data_dir.join("incidents.db")).unwrap();
    let mut statement = connection
        .prepare("SELECT actor, action, target, outcome, details FROM audit ORDER BY seq")
        .unwrap();
    statement
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// `token create` with `args`, run without `$USER`; returns the token.
fn token_without_user(collector: &Collector, args: &[&str]) -> String {
    let output = Command::new(binary("countywatch-collector"))
        .env_remove("USER")
        .args(["token", "create", "--data-dir"])
        .arg(&collector.data_dir)
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("token: "))
        .unwrap()
        .to_string()
}

#[test]
fn an_unbound_token_cannot_take_over_an_enrolled_agent_and_a_replacement_is_audited() {
    let collector = Collector::start();
    let victim = collector.enrolled_identity("victim-host");
    assert_eq!(
        post_batch(
            collector.ingest_addr,
            victim.path(),
            &empty_batch("victim-host", 1)
        )
        .status,
        200
    );

    // The takeover: an unbound token and the victim's name.
    let token = token_without_user(&collector, &[]);
    let attacker = tempfile::tempdir().unwrap();
    let (code, _, stderr) = enroll(
        &collector.enroll_url(),
        &token,
        &collector.ca_sha256,
        Some("victim-host"),
        attacker.path(),
    );
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("--replace"), "{stderr}");
    // The real agent still reports.
    assert_eq!(
        post_batch(
            collector.ingest_addr,
            victim.path(),
            &empty_batch("victim-host", 2)
        )
        .status,
        200
    );

    // --replace needs a bound name.
    let unbound_replace = Command::new(binary("countywatch-collector"))
        .args(["token", "create", "--replace", "--data-dir"])
        .arg(&collector.data_dir)
        .output()
        .unwrap();
    assert!(!unbound_replace.status.success());

    // An admin replacing a reinstalled server: the old certificate stops.
    let replacing = token_without_user(&collector, &["--name", "victim-host", "--replace"]);
    let reinstalled = tempfile::tempdir().unwrap();
    let (code, _, stderr) = enroll(
        &collector.enroll_url(),
        &replacing,
        &collector.ca_sha256,
        Some("victim-host"),
        reinstalled.path(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        post_batch(
            collector.ingest_addr,
            victim.path(),
            &empty_batch("victim-host", 3)
        )
        .status,
        403
    );

    let entries = trail(&collector);
    let refused: Vec<_> = entries
        .iter()
        .filter(|entry| entry.1 == "agent.enrolment_refused")
        .collect();
    assert_eq!(refused.len(), 1, "{entries:#?}");
    assert_eq!(refused[0].3, "failure");
    assert!(
        refused[0].0.starts_with("anonymous@127.0.0.1") && refused[0].4.contains("victim-host"),
        "{refused:?}"
    );
    assert!(
        entries
            .iter()
            .any(|entry| entry.1 == "agent.replaced" && entry.2 == "agent/victim-host"),
        "{entries:#?}"
    );
    let created: Vec<_> = entries
        .iter()
        .filter(|entry| entry.1 == "token.created")
        .collect();
    // The harness's token for the victim, and the two made here.
    assert_eq!(created.len(), 3, "{entries:#?}");
    for entry in &created[1..] {
        assert!(
            entry.0.starts_with("cli:") && entry.0 != "cli:unknown",
            "{entry:?}"
        );
    }
    assert!(created[2].4.contains("may replace it"), "{created:?}");
}
