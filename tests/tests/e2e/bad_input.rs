//! Hostile or broken peers: the collector answers with the right status,
//! counts the refusal and keeps serving; the agent keeps retrying.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use countywatch_e2e::http::{CurlIdentity, curl_post, sample_value};
use countywatch_e2e::{Agent, Collector, TEST_AGENT_CONFIG};
use countywatch_wire::{Batch, MetricFamily, MetricKind, WIRE_VERSION, encode_batch};

fn valid_batch(agent: &str) -> Batch {
    Batch {
        version: WIRE_VERSION,
        agent: agent.to_string(),
        seq: 1,
        collected_at_ms: 0,
        metrics: vec![MetricFamily::single(
            "node_load1",
            "1m load average.",
            MetricKind::Gauge,
            0.5,
        )],
        events: Vec::new(),
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn garbage_oversized_and_bombs_are_refused_and_counted() {
    let collector = Collector::start_with(
        Some("ingest:\n  max_body_bytes: 65536\n  max_decompressed_bytes: 1048576\n"),
        &[],
    );
    let addr = collector.ingest_addr;
    let gzip_header = "Content-Encoding: gzip";
    let dir = collector.enrolled_identity("x");
    let identity = CurlIdentity {
        state_dir: dir.path(),
    };
    let post = |path: &str, body: &[u8], headers: &[&str]| {
        curl_post(addr, path, body, headers, Some(&identity))
    };

    let garbage = post("/v1/batches", b"\x00\x01garbage", &[gzip_header]);
    assert_eq!(garbage.status, 400, "{}", garbage.body);
    assert!(
        garbage.body.contains("corrupt gzip body"),
        "{}",
        garbage.body
    );

    let not_json = post("/v1/batches", b"hello", &[]);
    assert_eq!(not_json.status, 400);
    assert!(
        not_json.body.contains("invalid batch JSON"),
        "{}",
        not_json.body
    );

    // A client announcing a large body waits for the verdict before sending
    // it (Expect: 100-continue); without that, the collector still refuses
    // but closes the connection under the upload, which curl may report as
    // a reset rather than the 413.
    let oversized = post(
        "/v1/batches",
        &vec![b'x'; 200_000],
        &["Expect: 100-continue"],
    );
    assert_eq!(oversized.status, 413, "{}", oversized.body);

    let bomb = gzip(&vec![b' '; 8 * 1024 * 1024]);
    assert!(
        bomb.len() < 65536,
        "the bomb fits the body cap: {}",
        bomb.len()
    );
    let bombed = post("/v1/batches", &bomb, &[gzip_header]);
    assert_eq!(bombed.status, 413, "{}", bombed.body);
    assert!(
        bombed
            .body
            .contains("decompressed body exceeds 1048576 bytes"),
        "{}",
        bombed.body
    );

    let mut future = valid_batch("x");
    future.version = 2;
    let versioned = post("/v1/batches", &encode_batch(&future), &[gzip_header]);
    assert_eq!(versioned.status, 400);
    assert!(
        versioned
            .body
            .contains("wire format version 2 is not supported"),
        "{}",
        versioned.body
    );

    let mut forged = valid_batch("x");
    forged.metrics[0].push(&[("instance", "someone-else")], 1.0);
    let forged = post("/v1/batches", &encode_batch(&forged), &[gzip_header]);
    assert_eq!(forged.status, 400);
    assert!(
        forged.body.contains("reserved label name \\\"instance\\\""),
        "{}",
        forged.body
    );

    let mut shadow = valid_batch("x");
    shadow.metrics.push(MetricFamily::single(
        "countywatch_ingest_samples_total",
        "h",
        MetricKind::Counter,
        1e9,
    ));
    let shadow = post("/v1/batches", &encode_batch(&shadow), &[gzip_header]);
    assert_eq!(shadow.status, 400);

    let wrong_path = post("/v2/other", b"{}", &[]);
    assert_eq!(wrong_path.status, 404);

    // After all that, a valid batch is still accepted and exposed.
    let accepted = post(
        "/v1/batches",
        &encode_batch(&valid_batch("x")),
        &[gzip_header],
    );
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    assert_eq!(accepted.body, "{\"accepted_seq\":1}");
    let text = collector.metrics();
    assert_eq!(
        sample_value(&text, "node_load1{instance=\"x\",job=\"countywatch\"}"),
        Some(0.5)
    );
    assert_eq!(
        sample_value(
            &text,
            "countywatch_ingest_requests_total{result=\"bad_request\"}"
        ),
        Some(5.0)
    );
    assert_eq!(
        sample_value(
            &text,
            "countywatch_ingest_requests_total{result=\"too_large\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        sample_value(
            &text,
            "countywatch_ingest_requests_total{result=\"not_found\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample_value(
            &text,
            "countywatch_ingest_requests_total{result=\"accepted\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn a_silent_connection_is_cut_off_and_costs_others_nothing() {
    let collector = Collector::start_with(Some("ingest:\n  request_timeout: 1s\n"), &[]);
    // Slowloris: connect and never complete the TLS handshake.
    let mut idle = TcpStream::connect(collector.ingest_addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // Meanwhile a real request goes through.
    let dir = collector.enrolled_identity("meanwhile");
    let accepted = curl_post(
        collector.ingest_addr,
        "/v1/batches",
        &encode_batch(&valid_batch("meanwhile")),
        &["Content-Encoding: gzip"],
        Some(&CurlIdentity {
            state_dir: dir.path(),
        }),
    );
    assert_eq!(accepted.status, 200);
    let started = Instant::now();
    let mut buffer = [0u8; 16];
    let read = idle.read(&mut buffer);
    assert!(
        matches!(read, Ok(0)) || read.is_err(),
        "the collector should close the idle connection: {read:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    let text = collector.metrics();
    assert!(
        sample_value(
            &text,
            "countywatch_tls_handshake_failures_total{listener=\"ingest\"}"
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{text}"
    );
}

#[test]
fn an_agent_retries_until_the_collector_comes_back() {
    let collector = Collector::start();
    let dir = collector.enrolled_identity("late-host");
    let (ingest, enroll_addr, data) = (
        collector.ingest_addr,
        collector.enroll_addr,
        collector.data_dir.clone(),
    );
    let collector_dir = collector.stop_keeping_data();
    let state = tempfile::tempdir().unwrap();
    std::fs::rename(dir.path(), state.path().join("state")).unwrap();
    let mut agent = Agent::start_in(state, TEST_AGENT_CONFIG);
    assert!(agent.logs.wait_for(
        "cannot send to the collector, will retry with backoff",
        Duration::from_secs(30)
    ));
    std::thread::sleep(Duration::from_secs(3));
    assert!(agent.is_running());
    assert_eq!(
        agent.logs.count("cannot send to the collector"),
        1,
        "logged once, not per attempt"
    );
    let collector = Collector::restart(collector_dir, &data, ingest, enroll_addr);
    let value = collector.wait_for_series(
        "node_load1{instance=\"late-host\",job=\"countywatch\"}",
        Duration::from_secs(60),
    );
    assert!(
        value.is_some(),
        "the agent should deliver once the collector is up"
    );
    assert!(
        agent
            .logs
            .wait_for("collector reachable again", Duration::from_secs(10))
    );
}
