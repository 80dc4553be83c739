//! Active response at the collector (issue 27), through the real collector
//! and its mTLS ingest listener, as enrolled agents speak to it: a brute
//! force reported by one agent becomes a host-scoped decision in that
//! agent's feed only (long poll and batch answer); hand-made county-wide
//! decisions from the CLI reach every agent, and their deletion reaches a
//! waiting long poll; expired decisions are never sent; `never_block`
//! addresses get no decision; acknowledgements and agent-made decisions
//! are recorded, listed and audited; the mode is dry run unless the
//! configuration says `enforce`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use countywatch_e2e::Collector;
use countywatch_e2e::http::{CurlIdentity, curl_get, curl_post, post_batch, sample_value};
use countywatch_e2e::process::wait_until;
use countywatch_wire::{
    Batch, DECISIONS_ACK_PATH, DECISIONS_AFTER_HEADER, DECISIONS_LOCAL_PATH, DecisionFeed, Event,
    EventKind, EventSource, INGEST_PATH, ResponseMode, WIRE_VERSION,
};

use crate::incidents::collector_cli;

/// `count` refused SSH logins from `src_ip` on `agent`, stamped now.
fn failures(agent: &str, seq: u64, src_ip: &str, count: usize) -> Batch {
    let now = now_ms();
    let events = (0..count)
        .map(|index| {
            let mut event = Event::new(
                now - 1_000 + index as i64,
                EventSource::Auth,
                EventKind::SshLoginFailed,
            );
            event.host = agent.to_string();
            event.fields.src_ip = src_ip.parse().ok();
            // One user name: ten names would be password spraying too.
            event.fields.user = Some("root".to_string());
            event.raw = format!("sshd[{index}]: Failed password for root from {src_ip}");
            event
        })
        .collect();
    Batch {
        version: WIRE_VERSION,
        agent: agent.to_string(),
        seq,
        collected_at_ms: now,
        metrics: Vec::new(),
        events,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The long poll as `identity`: the feed and how long the answer took.
fn poll(addr: SocketAddr, identity: &Path, after: u64, wait: u64) -> (DecisionFeed, Duration) {
    let started = Instant::now();
    let response = curl_get(
        addr,
        &format!("/v1/decisions?after={after}&wait={wait}"),
        &CurlIdentity {
            state_dir: identity,
        },
        u32::try_from(wait).unwrap() + 30,
    );
    assert_eq!(response.status, 200, "{}", response.body);
    let feed = serde_json::from_str(&response.body).unwrap();
    (feed, started.elapsed())
}

/// The addresses of a feed's updates, with their removed flags.
fn updates(feed: &DecisionFeed) -> Vec<(String, bool)> {
    feed.updates
        .iter()
        .map(|update| (update.address.to_string(), update.removed))
        .collect()
}

/// Posts `batch` as `identity` asking for decisions after 0; the answer's
/// `accepted_seq` and feed.
fn batch_answer(addr: SocketAddr, identity: &Path, batch: &Batch) -> (u64, DecisionFeed) {
    let answer = curl_post(
        addr,
        INGEST_PATH,
        &countywatch_wire::encode_batch(batch),
        &[
            "Content-Encoding: gzip",
            &format!("{DECISIONS_AFTER_HEADER}: 0"),
        ],
        Some(&CurlIdentity {
            state_dir: identity,
        }),
    );
    let answer: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    let feed = serde_json::from_value(answer["decisions"].clone()).unwrap();
    (answer["accepted_seq"].as_u64().unwrap(), feed)
}

/// The value of the first form field `name` in a page.
fn form_value<'a>(page: &'a str, name: &str) -> &'a str {
    page.split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
}

fn cli(collector: &Collector, args: &[&str]) -> (bool, String) {
    let output = collector_cli(&collector.data_dir, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The `decisions list` line of `address`, once it appears.
fn listed(collector: &Collector, args: &[&str], address: &str) -> Option<String> {
    let mut line = None;
    wait_until(Duration::from_secs(30), || {
        let (_, text) = cli(collector, args);
        line = text
            .lines()
            .find(|line| line.split_whitespace().nth(1) == Some(address))
            .map(str::to_string);
        line.is_some()
    });
    line
}

/// The collector's configuration file, for CLI commands that must read its
/// `response:` section (the mode of a hand-made decision).
fn config_of(collector: &Collector) -> String {
    collector
        .data_dir
        .parent()
        .unwrap()
        .join("collector.yaml")
        .display()
        .to_string()
}

/// Asserts that one audit line about decisions holds every needle.
fn assert_audited(collector: &Collector, needles: &[&str]) {
    let trail = audit(collector);
    assert!(
        trail
            .lines()
            .any(|line| needles.iter().all(|needle| line.contains(needle))),
        "{needles:?} not in:\n{trail}"
    );
}

fn audit(collector: &Collector) -> String {
    cli(collector, &["audit", "list", "--action", "decision."]).1
}

#[test]
fn a_brute_force_from_one_agent_is_blocked_on_that_agent_only_in_dry_run_by_default() {
    let collector = Collector::start();
    let web1 = collector.enrolled_identity("web1");
    let web2 = collector.enrolled_identity("web2");
    let addr = collector.ingest_addr;

    // Both agents wait for decisions before the attack.
    let web1_path = web1.path().to_path_buf();
    let web1_poll = std::thread::spawn(move || poll(addr, &web1_path, 0, 40));
    let web2_path = web2.path().to_path_buf();
    let web2_poll = std::thread::spawn(move || poll(addr, &web2_path, 0, 8));
    std::thread::sleep(Duration::from_millis(500));
    let attack = failures("web1", 1, "203.0.113.9", 12);
    let attacked = Instant::now();
    let response = post_batch(addr, web1.path(), &attack);
    assert_eq!(response.status, 200, "{}", response.body);

    let (feed, took) = web1_poll.join().unwrap();
    // For the record, not asserted (timing belongs to benchmarks): from
    // the batch's POST to the long poll's answer.
    eprintln!(
        "batch to decision at the long poll: {:?}",
        attacked.elapsed()
    );
    assert_eq!(updates(&feed), [("203.0.113.9".to_string(), false)]);
    assert!(
        took < Duration::from_secs(30),
        "the long poll answered when the decision was made, not at the end of its wait ({took:?})"
    );
    let update = &feed.updates[0];
    assert_eq!(update.mode, ResponseMode::DryRun, "dry run by default");
    assert_eq!(feed.mode, ResponseMode::DryRun);
    assert!(
        update.reason.contains("ssh_brute_force"),
        "{}",
        update.reason
    );
    assert!(
        update.expires_at_ms > now_ms() + 50 * 60_000,
        "about an hour"
    );
    assert_eq!(feed.cursor, update.id);
    let (other, _) = web2_poll.join().unwrap();
    assert!(other.updates.is_empty(), "host scope: {other:?}");

    // The batch answer carries the feed when the agent sends its cursor,
    // and keeps accepted_seq.
    let (seq, in_batch) = batch_answer(addr, web2.path(), &failures("web2", 1, "198.51.100.1", 1));
    assert_eq!(seq, 1);
    assert!(in_batch.updates.is_empty(), "{in_batch:?}");
    let (_, in_batch) = batch_answer(addr, web1.path(), &failures("web1", 2, "198.51.100.1", 1));
    assert_eq!(updates(&in_batch), [("203.0.113.9".to_string(), false)]);
    let plain = post_batch(addr, web1.path(), &failures("web1", 3, "198.51.100.1", 1));
    assert!(!plain.body.contains("decisions"), "{}", plain.body);

    // The agent's acknowledgement shows in `decisions list`.
    let ack = serde_json::json!({ "applied": [update.id, 9_999] }).to_string();
    let acked = curl_post(
        addr,
        DECISIONS_ACK_PATH,
        ack.as_bytes(),
        &[],
        Some(&CurlIdentity {
            state_dir: web1.path(),
        }),
    );
    assert_eq!(acked.status, 200, "{}", acked.body);
    assert_eq!(acked.body, "{\"recorded\":1}");
    let line = listed(&collector, &["decisions", "list"], "203.0.113.9").unwrap();
    assert!(line.contains("host:web1 "), "{line}");
    assert!(line.contains("dry_run"), "{line}");
    assert!(line.contains("rule:ssh_brute_force"), "{line}");
    assert!(line.contains("web1:applied"), "{line}");
    assert_audited(&collector, &["detection", "decision.added", "203.0.113.9"]);
    let metrics = collector.metrics();
    for (series, value) in [
        (
            "countywatch_response_decisions_total{made_by=\"rule\",outcome=\"made\"}",
            1.0,
        ),
        (
            "countywatch_response_answers_total{result=\"applied\"}",
            2.0,
        ),
        (
            "countywatch_response_answers_total{result=\"unknown\"}",
            1.0,
        ),
    ] {
        assert_eq!(sample_value(&metrics, series), Some(value), "{series}");
    }
}

/// Journey 4.2: the address that attacked web1 then tries web2 while the
/// rule is in its cooldown. The same incident takes the new evidence and
/// its host-scoped decision now also blocks on web2, whose long poll hears
/// of it, without a second incident or decision.
#[test]
fn an_attacker_moving_to_a_second_server_is_blocked_there_too_in_the_same_incident() {
    let collector = Collector::start();
    let web1 = collector.enrolled_identity("web1");
    let web2 = collector.enrolled_identity("web2");
    let addr = collector.ingest_addr;

    let response = post_batch(addr, web1.path(), &failures("web1", 1, "203.0.113.77", 12));
    assert_eq!(response.status, 200, "{}", response.body);
    let line = listed(&collector, &["decisions", "list"], "203.0.113.77").unwrap();
    assert!(line.contains("host:web1 "), "{line}");
    // web2 has heard everything there is so far: nothing for it.
    let (before, _) = poll(addr, web2.path(), 0, 0);
    assert!(before.updates.is_empty(), "{before:?}");

    let web2_path = web2.path().to_path_buf();
    let cursor = before.cursor;
    let web2_poll = std::thread::spawn(move || poll(addr, &web2_path, cursor, 40));
    std::thread::sleep(Duration::from_millis(500));
    let moved = Instant::now();
    let response = post_batch(addr, web2.path(), &failures("web2", 1, "203.0.113.77", 12));
    assert_eq!(response.status, 200, "{}", response.body);
    let (feed, took) = web2_poll.join().unwrap();
    eprintln!(
        "second server's batch to the extended decision at its long poll: {:?}",
        moved.elapsed()
    );
    assert_eq!(updates(&feed), [("203.0.113.77".to_string(), false)]);
    assert!(
        took < Duration::from_secs(30),
        "the long poll answered when the decision was extended ({took:?})"
    );
    assert!(
        feed.updates[0].reason.contains("ssh_brute_force"),
        "{}",
        feed.updates[0].reason
    );

    let line = listed(&collector, &["decisions", "list"], "203.0.113.77").unwrap();
    assert!(line.contains("host:web1,web2 "), "{line}");
    let (_, all) = cli(&collector, &["decisions", "list", "--all"]);
    assert_eq!(
        all.lines()
            .filter(|line| line.split_whitespace().nth(1) == Some("203.0.113.77"))
            .count(),
        1,
        "one decision: {all}"
    );
    assert_audited(
        &collector,
        &["decision.extended", "203.0.113.77", "host:web2"],
    );
    let metrics = collector.metrics();
    for (series, value) in [
        (
            "countywatch_incidents_opened_total{rule=\"ssh_brute_force\",severity=\"high\"}",
            1.0,
        ),
        (
            "countywatch_response_decisions_total{made_by=\"rule\",outcome=\"made\"}",
            1.0,
        ),
        (
            "countywatch_response_decisions_total{made_by=\"rule\",outcome=\"extended\"}",
            1.0,
        ),
    ] {
        assert_eq!(sample_value(&metrics, series), Some(value), "{series}");
    }
}

#[test]
fn a_county_decision_from_the_cli_reaches_every_agent_and_its_deletion_wakes_the_long_poll() {
    let collector = Collector::start_with(Some("response: {mode: enforce}\n"), &[]);
    let web1 = collector.enrolled_identity("web1");
    let web2 = collector.enrolled_identity("web2");
    let addr = collector.ingest_addr;

    let config = config_of(&collector);
    let (added, text) = cli(
        &collector,
        &[
            "decisions",
            "add",
            "198.51.100.7",
            "--duration",
            "1h",
            "--reason",
            "scanner",
            "--config",
            &config,
        ],
    );
    assert!(added, "{text}");
    for identity in [&web1, &web2] {
        let (feed, _) = poll(addr, identity.path(), 0, 0);
        assert_eq!(updates(&feed), [("198.51.100.7".to_string(), false)]);
        assert_eq!(feed.updates[0].mode, ResponseMode::Enforce);
        assert_eq!(feed.mode, ResponseMode::Enforce);
        assert!(feed.updates[0].reason.contains("scanner"));
    }
    let (feed, _) = poll(addr, web1.path(), 0, 0);

    // An unblock from the CLI wakes the waiting poll (the collector sees
    // the other process's write by polling the log).
    let web1_path = web1.path().to_path_buf();
    let cursor = feed.cursor;
    let waiting = std::thread::spawn(move || poll(addr, &web1_path, cursor, 40));
    std::thread::sleep(Duration::from_millis(500));
    let unblocked = Instant::now();
    let (deleted, text) = cli(&collector, &["decisions", "delete", "198.51.100.7"]);
    assert!(deleted, "{text}");
    let (removal, took) = waiting.join().unwrap();
    eprintln!(
        "decisions delete (the CLI's whole run) to removal at the long poll: {:?}",
        unblocked.elapsed()
    );
    assert_eq!(updates(&removal), [("198.51.100.7".to_string(), true)]);
    assert!(
        took < Duration::from_secs(30),
        "woken by the removal, not the end of the wait ({took:?})"
    );
    let (again, text) = cli(&collector, &["decisions", "delete", "198.51.100.7"]);
    assert!(!again && text.contains("no active decision"), "{text}");
    assert_audited(&collector, &["cli:", "decision.added"]);
    assert_audited(&collector, &["cli:", "decision.removed"]);
}

#[test]
fn expired_decisions_are_never_sent_and_never_block_addresses_get_none() {
    let collector =
        Collector::start_with(Some("response:\n  never_block: [203.0.113.0/24]\n"), &[]);
    let web1 = collector.enrolled_identity("web1");
    let addr = collector.ingest_addr;

    let (added, text) = cli(
        &collector,
        &["decisions", "add", "198.51.100.8", "--duration", "1s"],
    );
    assert!(added, "{text}");
    std::thread::sleep(Duration::from_millis(1_500));
    let (feed, _) = poll(addr, web1.path(), 0, 0);
    assert!(feed.updates.is_empty(), "expired: {feed:?}");
    assert!(feed.cursor >= 1, "the cursor still moves past it");

    let config = config_of(&collector);
    let (refused, text) = cli(
        &collector,
        &["decisions", "add", "203.0.113.50", "--config", &config],
    );
    assert!(!refused && text.contains("response.never_block"), "{text}");
    let response = post_batch(addr, web1.path(), &failures("web1", 1, "203.0.113.9", 12));
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(
        wait_until(Duration::from_secs(30), || {
            audit(&collector)
                .lines()
                .any(|line| line.contains("decision.refused") && line.contains("203.0.113.9"))
        }),
        "{}",
        audit(&collector)
    );
    let (_, all) = cli(&collector, &["decisions", "list", "--all"]);
    assert!(!all.contains("203.0.113."), "{all}");
    assert_eq!(
        sample_value(
            &collector.metrics(),
            "countywatch_response_decisions_total{made_by=\"rule\",outcome=\"refused\"}"
        ),
        Some(1.0)
    );
    // Even a decision written without the collector's configuration (so
    // without its never_block) is never sent.
    let (added, text) = cli(&collector, &["decisions", "add", "203.0.113.51"]);
    assert!(added, "{text}");
    let (feed, _) = poll(addr, web1.path(), 0, 0);
    assert!(feed.updates.is_empty(), "{feed:?}");
}

#[test]
fn decisions_an_agent_made_offline_are_recorded_as_its_own_and_audited() {
    let collector = Collector::start();
    let web1 = collector.enrolled_identity("web1");
    let now = now_ms();
    let local = serde_json::json!({
        "decisions": [{
            "address": "192.0.2.44",
            "rule": "ssh_brute_force",
            "started_at_ms": now - 10_000,
            "expires_at_ms": now + 3_600_000,
            "mode": "enforce",
        }]
    })
    .to_string();
    let response = curl_post(
        collector.ingest_addr,
        DECISIONS_LOCAL_PATH,
        local.as_bytes(),
        &[],
        Some(&CurlIdentity {
            state_dir: web1.path(),
        }),
    );
    assert_eq!(response.status, 200, "{}", response.body);
    let line = listed(&collector, &["decisions", "list"], "192.0.2.44").unwrap();
    assert!(line.contains("agent:web1"), "{line}");
    assert!(line.contains("host:web1"), "{line}");
    assert!(line.contains("enforce"), "{line}");
    assert_audited(&collector, &["agent:web1", "decision.added"]);
    // A body that is not the contract is refused with 400, not stored.
    let bad = curl_post(
        collector.ingest_addr,
        DECISIONS_LOCAL_PATH,
        b"{\"decisions\":[{\"address\":\"not an address\"}]}",
        &[],
        Some(&CurlIdentity {
            state_dir: web1.path(),
        }),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    // Without a client certificate nothing is answered.
    let anonymous = curl_post(collector.ingest_addr, DECISIONS_ACK_PATH, b"{}", &[], None);
    assert_ne!(anonymous.status, 200, "{}", anonymous.body);
}

#[test]
fn an_officer_sees_the_dry_run_decision_on_the_console_and_unblocks_it() {
    use crate::incidents::{login, raw_request};
    let collector = Collector::start();
    let web1 = collector.enrolled_identity("web1");
    countywatch_e2e::process::add_user(
        &collector.data_dir,
        "officer1",
        "security_officer",
        "officer-password-1",
    );
    let response = post_batch(
        collector.ingest_addr,
        web1.path(),
        &failures("web1", 1, "203.0.113.9", 12),
    );
    assert_eq!(response.status, 200, "{}", response.body);
    let line = listed(&collector, &["decisions", "list"], "203.0.113.9").unwrap();
    let incident = line
        .split_whitespace()
        .skip_while(|word| *word != "rule:ssh_brute_force")
        .nth(1)
        .unwrap()
        .to_string();
    assert!(incident.parse::<i64>().is_ok(), "{line}");

    let (status, session) = login(collector.http_addr, "officer1", "officer-password-1");
    assert_eq!(status, 303);
    let cookie = format!("Cookie: cw_session={}", session.unwrap());
    let page = raw_request(
        collector.http_addr,
        "GET",
        "/decisions?lang=en",
        &[&cookie],
        "",
    );
    assert!(page.contains("Active response is in dry run"), "{page}");
    assert!(page.contains("data-address=\"203.0.113.9\""), "{page}");
    assert!(page.contains("data-mode=\"dry_run\""), "{page}");
    assert!(
        page.contains(&format!("href=\"/incidents/{incident}\"")),
        "{page}"
    );
    let zh = raw_request(
        collector.http_addr,
        "GET",
        "/decisions?lang=zh",
        &[&cookie],
        "",
    );
    assert!(zh.contains("解除封禁"), "{zh}");
    let detail = raw_request(
        collector.http_addr,
        "GET",
        &format!("/incidents/{incident}?lang=en"),
        &[&cookie],
        "",
    );
    assert!(detail.contains("data-address=\"203.0.113.9\""), "{detail}");

    let csrf = form_value(&page, "csrf");
    let id = form_value(&page, "id");
    let form = format!("csrf={csrf}&id={id}");
    let forged = raw_request(
        collector.http_addr,
        "POST",
        "/decisions",
        &[&cookie, "Content-Type: application/x-www-form-urlencoded"],
        &format!("csrf=wrong&id={id}"),
    );
    assert!(forged.starts_with("HTTP/1.1 403"), "{forged}");
    let posted = raw_request(
        collector.http_addr,
        "POST",
        "/decisions",
        &[&cookie, "Content-Type: application/x-www-form-urlencoded"],
        &form,
    );
    assert!(posted.contains("location: /decisions?done=ok"), "{posted}");
    let (_, active) = cli(&collector, &["decisions", "list"]);
    assert!(!active.contains("203.0.113.9"), "{active}");
    let (feed, _) = poll(collector.ingest_addr, web1.path(), 0, 0);
    assert_eq!(updates(&feed), [("203.0.113.9".to_string(), true)]);
    assert_audited(&collector, &["officer1", "decision.removed"]);
}

#[test]
fn deleting_one_host_of_a_host_decision_lifts_it_there_only_and_a_host_scope_must_be_enrolled() {
    let collector = Collector::start();
    let web1 = collector.enrolled_identity("web1");
    let web2 = collector.enrolled_identity("web2");
    let addr = collector.ingest_addr;

    // One address attacks both agents: the rule fires on the tenth failure
    // with evidence from both, so its decision blocks on both.
    for (identity, name, count) in [(&web1, "web1", 5), (&web2, "web2", 7)] {
        let response = post_batch(
            addr,
            identity.path(),
            &failures(name, 1, "203.0.113.9", count),
        );
        assert_eq!(response.status, 200, "{}", response.body);
    }
    let line = listed(&collector, &["decisions", "list"], "203.0.113.9").unwrap();
    assert!(line.contains("host:web1,web2 "), "{line}");
    let (web1_feed, _) = poll(addr, web1.path(), 0, 0);
    assert_eq!(updates(&web1_feed), [("203.0.113.9".to_string(), false)]);
    let (web2_feed, _) = poll(addr, web2.path(), 0, 0);
    assert_eq!(updates(&web2_feed), [("203.0.113.9".to_string(), false)]);

    // Taking web1 out wakes web1's poll with the removal; web2 keeps it.
    let web1_path = web1.path().to_path_buf();
    let cursor = web1_feed.cursor;
    let waiting = std::thread::spawn(move || poll(addr, &web1_path, cursor, 40));
    std::thread::sleep(Duration::from_millis(500));
    let (deleted, text) = cli(
        &collector,
        &["decisions", "delete", "203.0.113.9", "--scope", "host:web1"],
    );
    assert!(deleted, "{text}");
    assert!(
        text.contains("203.0.113.9 unblocked on web1, still blocked on web2"),
        "{text}"
    );
    let (removal, took) = waiting.join().unwrap();
    assert_eq!(updates(&removal), [("203.0.113.9".to_string(), true)]);
    assert!(took < Duration::from_secs(30), "woken ({took:?})");
    let (untouched, _) = poll(addr, web2.path(), web2_feed.cursor, 0);
    assert!(untouched.updates.is_empty(), "{untouched:?}");
    let line = listed(&collector, &["decisions", "list"], "203.0.113.9").unwrap();
    assert!(line.contains("host:web2 "), "{line}");
    assert_audited(
        &collector,
        &[
            "decision.removed",
            "on host:web1; still blocked on host:web2",
        ],
    );

    // Taking out the last host ends the decision, and only web2 is told.
    let (deleted, text) = cli(
        &collector,
        &["decisions", "delete", "203.0.113.9", "--scope", "host:web2"],
    );
    assert!(deleted, "{text}");
    assert!(text.contains("removed: 203.0.113.9 unblocked"), "{text}");
    let (lifted, _) = poll(addr, web2.path(), untouched.cursor, 0);
    assert_eq!(updates(&lifted), [("203.0.113.9".to_string(), true)]);
    let (quiet, _) = poll(addr, web1.path(), removal.cursor, 0);
    assert!(quiet.updates.is_empty(), "{quiet:?}");
    let (_, active) = cli(&collector, &["decisions", "list"]);
    assert!(!active.contains("203.0.113.9"), "{active}");

    // A host scope must name an enrolled agent.
    let (added, text) = cli(
        &collector,
        &["decisions", "add", "198.51.100.3", "--scope", "host:web9"],
    );
    assert!(!added, "{text}");
    assert!(
        text.contains("no agent named \"web9\" is enrolled"),
        "{text}"
    );
    let (_, all) = cli(&collector, &["decisions", "list", "--all"]);
    assert!(!all.contains("198.51.100.3"), "nothing recorded: {all}");
    let (added, text) = cli(
        &collector,
        &["decisions", "add", "198.51.100.3", "--scope", "host:web1"],
    );
    assert!(added, "{text}");
    let (for_web1, _) = poll(addr, web1.path(), quiet.cursor, 0);
    assert_eq!(updates(&for_web1), [("198.51.100.3".to_string(), false)]);
    let (for_web2, _) = poll(addr, web2.path(), lifted.cursor, 0);
    assert!(for_web2.updates.is_empty(), "{for_web2:?}");
}
