//! Hostile or broken peers: the collector answers with the right status,
//! counts the refusal and keeps serving; the agent keeps retrying.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use countywatch_e2e::http::{curl_post, sample_value};
use countywatch_e2e::{Agent, Collector};
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

    let garbage = curl_post(addr, "/v1/batches", b"\x00\x01garbage", &[gzip_header]);
    assert_eq!(garbage.status, 400, "{}", garbage.body);
    assert!(
        garbage.body.contains("corrupt gzip body"),
        "{}",
        garbage.body
    );

    let not_json = curl_post(addr, "/v1/batches", b"hello", &[]);
    assert_eq!(not_json.status, 400);
    assert!(
        not_json.body.contains("invalid batch JSON"),
        "{}",
        not_json.body
    );

    let oversized = curl_post(addr, "/v1/batches", &vec![b'x'; 200_000], &[]);
    assert_eq!(oversized.status, 413, "{}", oversized.body);

    let bomb = gzip(&vec![b' '; 8 * 1024 * 1024]);
    assert!(
        bomb.len() < 65536,
        "the bomb fits the body cap: {}",
        bomb.len()
    );
    let bombed = curl_post(addr, "/v1/batches", &bomb, &[gzip_header]);
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
    let versioned = curl_post(addr, "/v1/batches", &encode_batch(&future), &[gzip_header]);
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
    let forged = curl_post(addr, "/v1/batches", &encode_batch(&forged), &[gzip_header]);
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
    let shadow = curl_post(addr, "/v1/batches", &encode_batch(&shadow), &[gzip_header]);
    assert_eq!(shadow.status, 400);

    let wrong_path = curl_post(addr, "/v2/other", b"{}", &[]);
    assert_eq!(wrong_path.status, 404);

    // After all that, a valid batch is still accepted and exposed.
    let accepted = curl_post(
        addr,
        "/v1/batches",
        &encode_batch(&valid_batch("still-ok")),
        &[gzip_header],
    );
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    assert_eq!(accepted.body, "{\"accepted_seq\":1}");
    let text = collector.metrics();
    assert_eq!(
        sample_value(
            &text,
            "node_load1{instance=\"still-ok\",job=\"countywatch\"}"
        ),
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
    let accepted = curl_post(
        collector.ingest_addr,
        "/v1/batches",
        &encode_batch(&valid_batch("meanwhile")),
        &["Content-Encoding: gzip"],
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
fn an_agent_retries_until_the_collector_appears() {
    // Reserve a port, then free it so that nothing listens there yet.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The fingerprint command generates the certificate the collector will use.
    let output = std::process::Command::new(countywatch_e2e::binary("countywatch-collector"))
        .args(["fingerprint", "--data-dir", data.to_str().unwrap()])
        .output()
        .unwrap();
    let fingerprint = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let mut agent = Agent::start(
        "late-host",
        &format!("https://127.0.0.1:{port}"),
        &fingerprint,
    );
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
    let listen = format!("127.0.0.1:{port}");
    let collector = Collector::start_in(dir, &data, None, &["--ingest-listen", &listen]);
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
