//! Enrolment, mutual TLS, revocation, identity, replays and liveness, with
//! the real binaries on loopback.

use std::time::Duration;

use countywatch_e2e::http::{CurlIdentity, curl_post, sample_value};
use countywatch_e2e::process::wait_until;
use countywatch_e2e::{Agent, Collector, enroll};
use countywatch_wire::{
    Batch, Event, EventKind, EventSource, MetricFamily, MetricKind, WIRE_VERSION, encode_batch,
};

const GZIP: &str = "Content-Encoding: gzip";

fn batch(agent: &str, seq: u64, events: usize) -> Batch {
    Batch {
        version: WIRE_VERSION,
        agent: agent.to_string(),
        seq,
        collected_at_ms: 0,
        metrics: vec![MetricFamily::single(
            "node_load1",
            "1m load average.",
            MetricKind::Gauge,
            seq as f64,
        )],
        events: (0..events)
            .map(|index| {
                let mut event =
                    Event::new(index as i64, EventSource::Auth, EventKind::SshLoginFailed);
                event.raw = format!("line {index}");
                event
            })
            .collect(),
    }
}

fn count(collector: &Collector, result: &str) -> f64 {
    let series = format!("countywatch_ingest_requests_total{{result=\"{result}\"}}");
    sample_value(&collector.metrics(), &series).unwrap_or(-1.0)
}

#[test]
fn enrol_send_revoke_refuse_and_enrol_again() {
    let collector = Collector::start();
    let mut agent = Agent::start_for("web-01", &collector);
    let series = "node_load1{instance=\"web-01\",job=\"countywatch\"}";
    assert!(
        collector
            .wait_for_series(series, Duration::from_secs(30))
            .is_some()
    );
    assert_eq!(
        sample_value(
            &collector.metrics(),
            "countywatch_agent_up{job=\"countywatch\",instance=\"web-01\"}"
        ),
        Some(1.0)
    );

    collector.revoke("web-01");
    // Refused from the next request on, on the connection the agent already has open.
    assert!(wait_until(Duration::from_secs(30), || count(
        &collector,
        "unauthorized"
    ) >= 1.0));
    assert!(
        agent
            .logs
            .wait_for("cannot send to the collector", Duration::from_secs(30))
    );
    assert!(
        agent.is_running(),
        "a refused agent keeps its spool and retries"
    );
    let stored = collector.batch_sequence_numbers("web-01").len();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        collector.batch_sequence_numbers("web-01").len(),
        stored,
        "nothing stored after revocation"
    );

    // Re-enrolment with a new token replaces the certificate; the old one stays refused.
    let dir = tempfile::tempdir().unwrap();
    let token = collector.token(Some("web-01"));
    let (code, stdout, stderr) = enroll(
        &collector.enroll_url(),
        &token,
        &collector.ca_sha256,
        None,
        dir.path(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("enrolled as web-01"), "{stdout}");
    let identity = CurlIdentity {
        state_dir: &agent.state_dir,
    };
    let refused = curl_post(
        collector.ingest_addr,
        "/v1/batches",
        &encode_batch(&batch("web-01", 1_000_000, 0)),
        &[GZIP],
        Some(&identity),
    );
    assert_eq!(refused.status, 403, "{}", refused.body);
    // The new identity continues the name's sequence numbers, so its first
    // batch is not taken for a replay.
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("identity/enrollment.json")).unwrap(),
    )
    .unwrap();
    let first_seq = record["first_seq"].as_u64().unwrap();
    assert_eq!(
        first_seq,
        collector
            .batch_sequence_numbers("web-01")
            .last()
            .copied()
            .unwrap() as u64
            + 1
    );
    let fresh = CurlIdentity {
        state_dir: dir.path(),
    };
    let accepted = curl_post(
        collector.ingest_addr,
        "/v1/batches",
        &encode_batch(&batch("web-01", first_seq, 0)),
        &[GZIP],
        Some(&fresh),
    );
    assert_eq!(accepted.body, format!("{{\"accepted_seq\":{first_seq}}}"));
}

#[test]
fn tokens_are_single_use_expire_and_bind_names() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let token = collector.token(None);
    let url = collector.enroll_url();
    let (code, _, stderr) = enroll(&url, &token, &collector.ca_sha256, Some("a"), dir.path());
    assert_eq!(code, 0, "{stderr}");
    let other = tempfile::tempdir().unwrap();
    let (code, _, stderr) = enroll(&url, &token, &collector.ca_sha256, Some("b"), other.path());
    assert_eq!(code, 1);
    assert!(
        stderr.contains("invalid, expired or already used token"),
        "{stderr}"
    );

    let output = std::process::Command::new(countywatch_e2e::binary("countywatch-collector"))
        .args(["token", "create", "--ttl", "1ms", "--data-dir"])
        .arg(&collector.data_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let expired = stdout
        .lines()
        .find_map(|line| line.strip_prefix("token: "))
        .unwrap();
    assert!(
        stdout.contains("countywatch-agent enroll --collector https://"),
        "{stdout}"
    );
    std::thread::sleep(Duration::from_millis(20));
    let (code, _, stderr) = enroll(&url, expired, &collector.ca_sha256, Some("c"), other.path());
    assert_eq!(code, 1);
    assert!(
        stderr.contains("invalid, expired or already used token"),
        "{stderr}"
    );

    let bound = collector.token(Some("db-01"));
    let (code, _, stderr) = enroll(
        &url,
        &bound,
        &collector.ca_sha256,
        Some("web-02"),
        other.path(),
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("created for agent \"db-01\""), "{stderr}");
}

#[test]
fn token_guessing_is_rate_limited() {
    let collector = Collector::start();
    let guess = br#"{"token":"cwt_0000","name":"x","csr_pem":"x"}"#;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(curl_post(collector.enroll_addr, "/v1/enroll", guess, &[], None).status);
    }
    assert_eq!(&statuses[..10], &[403; 10]);
    assert_eq!(&statuses[10..], &[429, 429]);
    // Even a valid token waits out the window from that address.
    let dir = tempfile::tempdir().unwrap();
    let token = collector.token(None);
    let (code, _, stderr) = enroll(
        &collector.enroll_url(),
        &token,
        &collector.ca_sha256,
        Some("x"),
        dir.path(),
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("429"), "{stderr}");
    let text = collector.metrics();
    assert_eq!(
        sample_value(
            &text,
            "countywatch_enroll_requests_total{result=\"invalid_token\"}"
        ),
        Some(10.0)
    );
    assert_eq!(
        sample_value(
            &text,
            "countywatch_enroll_requests_total{result=\"rate_limited\"}"
        ),
        Some(3.0)
    );
}

#[test]
fn ingest_refuses_connections_without_a_certificate_or_from_another_ca() {
    let collector = Collector::start();
    let anonymous = curl_post(
        collector.ingest_addr,
        "/v1/batches",
        &encode_batch(&batch("x", 1, 0)),
        &[GZIP],
        None,
    );
    assert_eq!(
        anonymous.status, 0,
        "the handshake itself must fail: {}",
        anonymous.body
    );

    let elsewhere = Collector::start();
    let foreign = elsewhere.enrolled_identity("x");
    let identity = CurlIdentity {
        state_dir: foreign.path(),
    };
    // Trust our collector's CA but present the other collector's certificate.
    let ours = collector.enrolled_identity("y");
    std::fs::copy(
        ours.path().join("identity/ca.crt"),
        foreign.path().join("identity/ca.crt"),
    )
    .unwrap();
    let refused = curl_post(
        collector.ingest_addr,
        "/v1/batches",
        &encode_batch(&batch("x", 1, 0)),
        &[GZIP],
        Some(&identity),
    );
    assert_eq!(refused.status, 0, "{}", refused.body);
    assert!(
        sample_value(
            &collector.metrics(),
            "countywatch_tls_handshake_failures_total{listener=\"ingest\"}"
        )
        .unwrap()
            >= 2.0
    );
    assert!(collector.batch_sequence_numbers("x").is_empty());
}

#[test]
fn an_expired_certificate_is_refused() {
    let collector = Collector::start();
    let dir = collector.enrolled_identity("old-host");
    // Re-issue the agent's certificate from the collector's CA with a
    // validity that has ended.
    let ca_key = rcgen::KeyPair::from_pem(
        &std::fs::read_to_string(collector.data_dir.join("ca/ca.key")).unwrap(),
    )
    .unwrap();
    let ca_pem = std::fs::read_to_string(collector.data_dir.join("ca/ca.crt")).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let agent_key = rcgen::KeyPair::from_pem(
        &std::fs::read_to_string(dir.path().join("identity/agent.key")).unwrap(),
    )
    .unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["old-host".to_string()]).unwrap();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(30);
    params.not_after = now - time::Duration::days(1);
    let expired = params.signed_by(&agent_key, &issuer).unwrap();
    std::fs::write(dir.path().join("identity/agent.crt"), expired.pem()).unwrap();
    let identity = CurlIdentity {
        state_dir: dir.path(),
    };
    let refused = curl_post(
        collector.ingest_addr,
        "/v1/batches",
        &encode_batch(&batch("old-host", 1, 0)),
        &[GZIP],
        Some(&identity),
    );
    assert_eq!(refused.status, 0, "{}", refused.body);
    assert!(collector.batch_sequence_numbers("old-host").is_empty());
}

#[test]
fn a_batch_claiming_another_host_is_refused() {
    let collector = Collector::start();
    let dir = collector.enrolled_identity("honest");
    let identity = CurlIdentity {
        state_dir: dir.path(),
    };
    let forged = curl_post(
        collector.ingest_addr,
        "/v1/batches",
        &encode_batch(&batch("someone-else", 1, 1)),
        &[GZIP],
        Some(&identity),
    );
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(
        forged.body.contains("certificate is \\\"honest\\\"'s"),
        "{}",
        forged.body
    );
    assert_eq!(count(&collector, "forged_identity"), 1.0);
    assert!(!collector.metrics().contains("someone-else"));
}

#[test]
fn replayed_batches_are_acknowledged_but_stored_once() {
    let collector = Collector::start();
    let dir = collector.enrolled_identity("replayer");
    let identity = CurlIdentity {
        state_dir: dir.path(),
    };
    let post = |seq: u64, events: usize| {
        curl_post(
            collector.ingest_addr,
            "/v1/batches",
            &encode_batch(&batch("replayer", seq, events)),
            &[GZIP],
            Some(&identity),
        )
    };
    assert_eq!(post(5, 3).body, "{\"accepted_seq\":5}");
    assert_eq!(post(5, 3).body, "{\"accepted_seq\":5,\"duplicate\":true}");
    assert_eq!(post(2, 3).body, "{\"accepted_seq\":2,\"duplicate\":true}");
    assert_eq!(post(6, 1).status, 200);
    assert_eq!(collector.event_count("replayer", "ssh_login_failed"), 4);
    assert_eq!(collector.batch_sequence_numbers("replayer"), vec![5, 6]);
    // The replayed batch 2 carried an older load value; it did not overwrite 6's.
    assert_eq!(
        sample_value(
            &collector.metrics(),
            "node_load1{instance=\"replayer\",job=\"countywatch\"}"
        ),
        Some(6.0)
    );
    assert_eq!(count(&collector, "duplicate"), 2.0);
}

#[test]
fn a_silent_agent_is_down_and_gets_one_event() {
    let collector = Collector::start_with(Some("agents:\n  silent_after: 2s\n"), &[]);
    let agent = Agent::start_for("quiet-host", &collector);
    assert!(
        collector
            .wait_for_series(
                "node_load1{instance=\"quiet-host\",job=\"countywatch\"}",
                Duration::from_secs(30)
            )
            .is_some()
    );
    drop(agent.kill());
    let up = "countywatch_agent_up{job=\"countywatch\",instance=\"quiet-host\"}";
    assert!(wait_until(Duration::from_secs(30), || sample_value(
        &collector.metrics(),
        up
    ) == Some(0.0)));
    assert!(wait_until(Duration::from_secs(30), || collector
        .event_count("quiet-host", "agent_silent")
        == 1));
    assert!(
        collector
            .logs
            .wait_for("agent is silent", Duration::from_secs(5))
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        collector.event_count("quiet-host", "agent_silent"),
        1,
        "one event per silence, not one per check"
    );
}

/// The sequence numbers an agent's batches have reached: all stored, none twice.
fn assert_contiguous(sequence: &[i64]) {
    assert!(!sequence.is_empty());
    let expected: Vec<i64> = (sequence[0]..=sequence[sequence.len() - 1]).collect();
    assert_eq!(sequence, expected.as_slice(), "a gap means a lost batch");
    assert_eq!(sequence[0], 1);
}

#[test]
fn killing_the_collector_loses_nothing() {
    let collector = Collector::start();
    let agent = Agent::start_for("steady", &collector);
    assert!(
        collector
            .wait_for_series(
                "node_load1{instance=\"steady\",job=\"countywatch\"}",
                Duration::from_secs(30)
            )
            .is_some()
    );
    let (ingest, enroll_addr, data) = (
        collector.ingest_addr,
        collector.enroll_addr,
        collector.data_dir.clone(),
    );
    let dir = collector.kill();
    // The agent keeps collecting into its spool while the collector is dead.
    std::thread::sleep(Duration::from_secs(4));
    let (waiting, _) = agent.spool_state();
    assert!(
        waiting >= 3,
        "the outage should have spooled batches: {waiting}"
    );
    let collector = Collector::restart(dir, &data, ingest, enroll_addr);
    let mut handed_out = 0;
    assert!(wait_until(Duration::from_secs(60), || {
        let (waiting, last) = agent.spool_state();
        handed_out = last;
        waiting == 0
    }));
    let stored = collector.batch_sequence_numbers("steady");
    assert_contiguous(&stored);
    assert!(
        *stored.last().unwrap() >= handed_out,
        "{stored:?} vs {handed_out}"
    );
}

#[test]
fn killing_the_agent_loses_and_repeats_nothing() {
    let collector = Collector::start();
    let agent = Agent::start_for("restarted", &collector);
    assert!(
        collector
            .wait_for_series(
                "node_load1{instance=\"restarted\",job=\"countywatch\"}",
                Duration::from_secs(30)
            )
            .is_some()
    );
    std::thread::sleep(Duration::from_secs(2));
    let dir = agent.kill();
    let agent = Agent::start_in(dir, countywatch_e2e::TEST_AGENT_CONFIG);
    let count_before = collector.batch_sequence_numbers("restarted").len();
    assert!(wait_until(Duration::from_secs(30), || collector
        .batch_sequence_numbers("restarted")
        .len()
        >= count_before + 3));
    let (_, handed_out) = agent.spool_state();
    let stored = collector.batch_sequence_numbers("restarted");
    assert_contiguous(&stored);
    assert!(
        *stored.last().unwrap() >= handed_out - 1,
        "{stored:?} vs {handed_out}"
    );
}

/// Distinct user names among `agent`'s stored events: each line written
/// carries its own, so this equals the line count exactly when nothing was
/// lost and nothing stored twice.
fn distinct_users(collector: &Collector, agent: &str) -> i64 {
    collector
        .database()
        .query_row(
            "SELECT COUNT(DISTINCT json_extract(body, '$.fields.user')) FROM events WHERE agent = ?1 AND kind = 'ssh_login_failed'",
            [agent],
            |row| row.get(0),
        )
        .unwrap()
}

#[test]
fn five_agents_stream_events_through_a_collector_killed_for_20_seconds() {
    use crate::events::{append_lines, config, start_agent, wait_for_events};
    let collector = Collector::start();
    let logs = tempfile::tempdir().unwrap();
    let names: Vec<String> = (1..=5).map(|index| format!("stream-{index}")).collect();
    let agents: Vec<Agent> = names
        .iter()
        .map(|name| {
            let log = logs.path().join(format!("{name}.log"));
            std::fs::write(&log, "").unwrap();
            start_agent(name, &collector, &config(&log))
        })
        .collect();
    // 60 s of lines, 10 a second per agent; the collector is killed at 20 s
    // and restarted 20 s later on the same data and ports.
    let (ingest, enroll_addr, data) = (
        collector.ingest_addr,
        collector.enroll_addr,
        collector.data_dir.clone(),
    );
    let mut collector = Some(collector);
    let mut killed = None;
    let started = std::time::Instant::now();
    let mut written = 0;
    for second in 0..60 {
        for name in &names {
            append_lines(&logs.path().join(format!("{name}.log")), second * 10, 10);
        }
        written += 10;
        if second == 20 {
            killed = collector.take().map(Collector::kill);
        }
        if second == 40 {
            let dir = killed.take().unwrap();
            collector = Some(Collector::restart(dir, &data, ingest, enroll_addr));
        }
        let next = Duration::from_secs(second as u64 + 1);
        if let Some(wait) = next.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    let collector = collector.unwrap();
    for name in &names {
        assert_eq!(
            wait_for_events(&collector, name, written as i64),
            written as i64,
            "{name}"
        );
    }
    // Give a duplicate time to show up before declaring there is none.
    std::thread::sleep(Duration::from_secs(3));
    for name in &names {
        assert_eq!(
            collector.event_count(name, "ssh_login_failed"),
            written as i64,
            "{name}"
        );
        assert_eq!(
            distinct_users(&collector, name),
            written as i64,
            "{name}: every line exactly once"
        );
        assert_contiguous(&collector.batch_sequence_numbers(name));
    }
    drop(agents);
}
