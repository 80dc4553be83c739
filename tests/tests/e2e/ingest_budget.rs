//! The collector-wide budget of decompressed bytes in flight (issue 21,
//! item 10): 24 enrolled agents each post a gzip bomb that inflates to
//! 59 MiB (just under the default 64 MiB cap) at the same moment, half of
//! them with a gzip trailer that claims 0 bytes. With the default 256 MiB
//! budget some are answered 503 with `Retry-After: 1`; each sender waits
//! that long and posts again, as the agent does, until every batch is
//! accepted. Every batch's one event is then stored exactly once, a real
//! agent reporting through the attack lost no batch, and the collector's
//! peak memory stayed under twice the budget.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use countywatch_e2e::http::sample_value;
use countywatch_e2e::{Agent, Collector};
use countywatch_wire::{Batch, Event, EventKind, EventSource, WIRE_VERSION};

use crate::abuse::peak_rss_kib;

/// Parallel senders, as in the issue.
const SENDERS: usize = 24;
/// What each bomb inflates to.
const INFLATED: usize = 59 * 1024 * 1024;
/// The default `ingest.max_inflight_decompressed_bytes`.
const BUDGET_MIB: u64 = 256;

/// A valid batch from `agent` with one event, padded with spaces to
/// [`INFLATED`] bytes of JSON and gzipped (by gzip(1): fast, unlike a
/// debug build). With `lying_trailer`, an empty second gzip member follows,
/// so the trailer at the end of the body claims 0 bytes while the decoder
/// still reads the whole first member.
fn bomb(agent: &str, lying_trailer: bool) -> Vec<u8> {
    let mut event = Event::new(1_000, EventSource::Auth, EventKind::SshLoginFailed);
    event.host = agent.to_string();
    event.raw = format!("bomb from {agent}");
    let batch = Batch {
        version: WIRE_VERSION,
        agent: agent.to_string(),
        seq: 1,
        collected_at_ms: 0,
        metrics: Vec::new(),
        events: vec![event],
    };
    let mut json = serde_json::to_vec(&batch).unwrap();
    json.resize(INFLATED, b' ');
    let mut gzip = Command::new("gzip")
        .args(["-9", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = gzip.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&json).unwrap());
    let mut body = gzip.wait_with_output().unwrap().stdout;
    writer.join().unwrap();
    if lying_trailer {
        let empty = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        body.extend(empty.finish().unwrap());
    }
    body
}

/// POSTs the body in `file` as the agent whose state dir is `state_dir`;
/// returns the status and the `Retry-After` header (empty when absent).
fn post(addr: std::net::SocketAddr, state_dir: &Path, file: &Path) -> (u16, String) {
    let identity = state_dir.join("identity");
    let output = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--max-time", "120"])
        .args(["-w", "%{http_code} %header{retry-after}"])
        .args(["-H", "Content-Encoding: gzip", "--data-binary"])
        .arg(format!("@{}", file.display()))
        .arg("--cert")
        .arg(identity.join("agent.crt"))
        .arg("--key")
        .arg(identity.join("agent.key"))
        .arg("--cacert")
        .arg(identity.join("ca.crt"))
        .arg(format!("https://{addr}{}", countywatch_wire::INGEST_PATH))
        .output()
        .expect("curl is installed by tests/run.sh");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (status, retry_after) = text.split_once(' ').unwrap_or((&text, ""));
    (status.parse().unwrap_or(0), retry_after.trim().to_string())
}

#[test]
fn twenty_four_agents_posting_gzip_bombs_at_once_get_503s_lose_nothing_and_memory_stays_bounded() {
    let collector = Collector::start();
    // A real agent reports all along; its batches must all arrive.
    let agent = Agent::start_for("steady-agent", &collector);
    let files = tempfile::tempdir().unwrap();
    let senders: Vec<(String, tempfile::TempDir, std::path::PathBuf)> = (0..SENDERS)
        .map(|index| {
            let name = format!("bomber-{index:02}");
            let identity = collector.enrolled_identity(&name);
            let file = files.path().join(&name);
            std::fs::write(&file, bomb(&name, index % 2 == 1)).unwrap();
            (name, identity, file)
        })
        .collect();
    let baseline_kib = peak_rss_kib(collector.pid());
    let start = Arc::new(Barrier::new(SENDERS));
    let addr = collector.ingest_addr;
    let threads: Vec<_> = senders
        .iter()
        .map(|(name, identity, file)| {
            let (name, state_dir, file) =
                (name.clone(), identity.path().to_path_buf(), file.clone());
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                let deadline = Instant::now() + Duration::from_secs(600);
                let mut busy = 0;
                loop {
                    let (status, retry_after) = post(addr, &state_dir, &file);
                    match status {
                        200 => return busy,
                        503 => {
                            assert_eq!(retry_after, "1", "{name}: a 503 says when to retry");
                            busy += 1;
                            std::thread::sleep(Duration::from_secs(1));
                        }
                        other => panic!("{name}: answered {other}"),
                    }
                    assert!(Instant::now() < deadline, "{name}: never accepted");
                }
            })
        })
        .collect();
    let busy: usize = threads
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .sum();
    let peak_kib = peak_rss_kib(collector.pid());
    println!(
        "{SENDERS} parallel 59 MiB gzip bombs: {busy} answered 503, peak RSS {} MiB (before {} MiB)",
        peak_kib / 1024,
        baseline_kib / 1024
    );
    assert!(busy > 0, "the budget never turned a request away");
    let metrics = collector.metrics();
    assert!(
        sample_value(
            &metrics,
            "countywatch_ingest_requests_total{result=\"busy\"}"
        )
        .unwrap_or(0.0)
            >= busy as f64,
        "{metrics}"
    );
    // Every accepted bomb was stored, once.
    for (name, _, _) in &senders {
        assert_eq!(collector.batch_sequence_numbers(name), [1], "{name}");
        assert_eq!(collector.event_count(name, "ssh_login_failed"), 1, "{name}");
    }
    assert!(
        peak_kib < 2 * BUDGET_MIB * 1024,
        "peak RSS {peak_kib} KiB with a {BUDGET_MIB} MiB budget"
    );
    // The steady agent's spool drains and the collector holds every batch
    // it numbered, without a gap.
    assert!(
        countywatch_e2e::process::wait_until(Duration::from_secs(60), || {
            let (waiting, last) = agent.spool_state();
            waiting == 0 && collector.batch_sequence_numbers("steady-agent").len() as i64 == last
        }),
        "the steady agent lost or still holds batches: {:?}",
        agent.spool_state()
    );
    let seqs = collector.batch_sequence_numbers("steady-agent");
    assert!(!seqs.is_empty());
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
}
