//! Resource bounds under abuse (issue 13): 10,000 idle TCP connections to
//! ingest, slowloris on the HTTP listener, 1,000 agents connecting at once,
//! a 100 MB request body, a 1 GB log line. Each test prints the daemon's
//! peak memory (`VmHWM`) and the most file descriptors it held, asserts
//! both stay under a stated ceiling (which an unbounded daemon would
//! cross), and that the daemon still serves a normal request afterwards.
//! No assertion is about time.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use countywatch_e2e::Collector;
use countywatch_e2e::http::{CurlIdentity, curl_post, get, post_batch, sample_value};

/// The collector's listeners tightened so that each abuse runs its course
/// quickly: connections cut 2 s after accept without a handshake or head.
const TIGHT: &str = "ingest:\n  max_connections: 512\n  request_timeout: 2s\n";
/// The ingest connection cap every test here configures.
const INGEST_CAP: usize = 512;
/// The HTTP listener's connection cap (fixed in `collector/src/lib.rs`).
const HTTP_CAP: usize = 256;
/// File descriptors a daemon may hold beyond its connection cap: its
/// databases, logs, listeners, runtime.
const FD_MARGIN: usize = 64;

/// Peak resident memory of `pid` in KiB (`VmHWM`).
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Open file descriptors of `pid` (0 once it is gone).
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// Open file descriptors of `pid` other than /proc and /sys files: the
/// agent keeps those its probes read open between collections (a fixed
/// set, at most 256, `agent/src/probe/kept_files.rs`), which says nothing
/// about what an abuse leaked.
fn open_fds_besides_pseudo_files(pid: u32) -> usize {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            std::fs::read_link(entry.path()).map_or(true, |target| {
                !(target.starts_with("/proc") || target.starts_with("/sys"))
            })
        })
        .count()
}

/// Samples `pid`'s descriptor count every 50 ms until dropped; keeps the
/// largest.
struct FdWatch {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FdWatch {
    fn start(pid: u32) -> FdWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicUsize::new(open_fds(pid)));
        let thread = {
            let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(open_fds(pid), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        FdWatch {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    /// Stops sampling and returns the most descriptors seen.
    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

/// Prints and checks the daemon's figures after an abuse.
fn report(what: &str, pid: u32, peak_fds: usize, fd_ceiling: usize, rss_ceiling_mib: u64) {
    let rss_kib = peak_rss_kib(pid);
    println!(
        "{what}: peak RSS {} MiB (ceiling {rss_ceiling_mib} MiB), peak fds {peak_fds} (ceiling {fd_ceiling})",
        rss_kib / 1024
    );
    assert!(
        rss_kib < rss_ceiling_mib * 1024,
        "{what}: peak RSS {rss_kib} KiB"
    );
    assert!(peak_fds <= fd_ceiling, "{what}: {peak_fds} fds");
}

/// Raises this process's soft descriptor limit to its hard limit, for
/// tests that hold thousands of sockets.
fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// A batch as the enrolled agent `name` would send it.
fn batch(name: &str, seq: u64) -> countywatch_wire::Batch {
    countywatch_wire::Batch {
        version: countywatch_wire::WIRE_VERSION,
        agent: name.to_string(),
        seq,
        collected_at_ms: 1_700_000_000_000,
        metrics: Vec::new(),
        events: Vec::new(),
    }
}

/// The collector still answers on both listeners.
fn still_serves(collector: &Collector, identity: &std::path::Path, name: &str, seq: u64) {
    assert_eq!(get(collector.http_addr, "/-/healthy").unwrap().status, 200);
    let response = post_batch(collector.ingest_addr, identity, &batch(name, seq));
    assert_eq!(response.status, 200, "{}", response.body);
}

#[test]
fn ten_thousand_idle_connections_are_bounded_by_the_ingest_cap() {
    const CONNECTIONS: usize = 10_000;
    let limit = raise_fd_limit();
    assert!(
        limit > CONNECTIONS as u64 + 1_000,
        "RLIMIT_NOFILE {limit} is too low for {CONNECTIONS} sockets"
    );
    // A 1 s deadline: the collector works through the 10,000 in waves of
    // 512, one deadline each.
    let collector = Collector::start_with(
        Some("ingest:\n  max_connections: 512\n  request_timeout: 1s\n"),
        &[],
    );
    let identity = collector.enrolled_identity("idle-agent");
    let baseline_fds = open_fds(collector.pid());
    let watch = FdWatch::start(collector.pid());
    // Twenty openers; every socket stays open (and silent) until all are
    // made. Connections past the cap wait in the backlog (or in the
    // kernel's SYN retries); the collector drops each accepted one at the
    // handshake deadline.
    let addr = collector.ingest_addr;
    let openers: Vec<_> = (0..20)
        .map(|_| {
            std::thread::spawn(move || {
                let mut held = Vec::new();
                let mut failed = 0;
                for _ in 0..CONNECTIONS / 20 {
                    match TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
                        Ok(stream) => held.push(stream),
                        Err(_) => failed += 1,
                    }
                }
                (held, failed)
            })
        })
        .collect();
    let mut held = Vec::new();
    let mut failed = 0;
    for opener in openers {
        let (streams, failures) = opener.join().unwrap();
        held.extend(streams);
        failed += failures;
    }
    println!(
        "idle connections: {} opened, {failed} not accepted by the kernel in 10 s",
        held.len()
    );
    assert!(
        held.len() > CONNECTIONS / 2,
        "only {} connections opened",
        held.len()
    );
    // While they are all still open, the collector serves.
    still_serves(&collector, identity.path(), "idle-agent", 1);
    drop(held);
    let peak_fds = watch.finish();
    report(
        "10,000 idle connections",
        collector.pid(),
        peak_fds,
        baseline_fds + INGEST_CAP + FD_MARGIN,
        128,
    );
    still_serves(&collector, identity.path(), "idle-agent", 2);
}

#[test]
fn slowloris_on_the_http_listener_is_cut_off_by_the_head_deadline() {
    const CONNECTIONS: usize = 400;
    let collector = Collector::start_with(Some(TIGHT), &[]);
    let identity = collector.enrolled_identity("slow-agent");
    let baseline_fds = open_fds(collector.pid());
    let watch = FdWatch::start(collector.pid());
    // More slow clients than the HTTP listener's cap, each sending a
    // request head one byte every 200 ms and never finishing it.
    let mut streams: Vec<Option<TcpStream>> = (0..CONNECTIONS)
        .map(|_| {
            let mut stream = TcpStream::connect(collector.http_addr).unwrap();
            stream.set_nonblocking(true).unwrap();
            let _ = stream.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-Slow: ");
            Some(stream)
        })
        .collect();
    let mut trickled = vec![0_usize; CONNECTIONS];
    // The test's own budget: a collector without a head deadline would
    // keep them all open past it, and the assertion below fails.
    let give_up = Instant::now() + Duration::from_secs(40);
    while streams.iter().any(Option::is_some) && Instant::now() < give_up {
        for (index, slot) in streams.iter_mut().enumerate() {
            let Some(stream) = slot else { continue };
            let mut buffer = [0_u8; 512];
            let closed = match stream.read(&mut buffer) {
                Ok(0) => true,
                Ok(_) => false,
                Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
            };
            if closed || stream.write(b"a").is_err() {
                *slot = None;
            } else {
                trickled[index] += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let still_open = streams.iter().filter(|slot| slot.is_some()).count();
    let most = trickled.iter().max().copied().unwrap_or(0);
    println!("slowloris: {CONNECTIONS} connections, at most {most} bytes trickled into one");
    assert_eq!(still_open, 0, "slow connections the collector kept open");
    let peak_fds = watch.finish();
    report(
        "slowloris",
        collector.pid(),
        peak_fds,
        baseline_fds + HTTP_CAP + FD_MARGIN,
        128,
    );
    still_serves(&collector, identity.path(), "slow-agent", 1);
}

#[test]
fn idle_keep_alive_connections_make_room_for_a_waiting_agent() {
    const CAP: usize = 4;
    // A head deadline far past curl's 30 s: if the idle connections kept
    // their slots until it, the waiting agent's request would time out.
    let collector = Collector::start_with(
        Some(&format!(
            "ingest:\n  max_connections: {CAP}\n  request_timeout: 300s\n"
        )),
        &[],
    );
    let identity = collector.enrolled_identity("keepalive-agent");
    let files = identity.path().join("identity");
    let body = countywatch_wire::encode_batch(&batch("keepalive-agent", 1));
    // CAP clients that each send one batch over mutual TLS, read the
    // answer, and keep the connection open without a word more, as an
    // HTTP client with a connection pool does.
    let mut holders = Vec::new();
    for _ in 0..CAP {
        let mut child = std::process::Command::new("openssl")
            .args(["s_client", "-quiet", "-connect"])
            .arg(collector.ingest_addr.to_string())
            .arg("-cert")
            .arg(files.join("agent.crt"))
            .arg("-key")
            .arg(files.join("agent.key"))
            .arg("-CAfile")
            .arg(files.join("ca.crt"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("openssl is installed by tests/run.sh");
        let mut stdin = child.stdin.take().unwrap();
        write!(
            stdin,
            "POST {} HTTP/1.1\r\nHost: collector\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            countywatch_wire::INGEST_PATH,
            body.len()
        )
        .unwrap();
        stdin.write_all(&body).unwrap();
        stdin.flush().unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut status = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status:?}");
        // Kept: dropping stdin would end s_client's side.
        holders.push((child, stdin, stdout));
    }
    let metrics = collector.metrics();
    assert_eq!(
        sample_value(
            &metrics,
            "countywatch_open_connections{listener=\"ingest\"}"
        ),
        Some(CAP as f64),
        "{metrics}"
    );
    // Every slot is held by an idle connection; an agent arrives.
    still_serves(&collector, identity.path(), "keepalive-agent", 2);
    // The server closed the idle connections to make room: each s_client
    // saw the end of its connection and exited.
    assert!(
        countywatch_e2e::process::wait_until(Duration::from_secs(30), || {
            holders
                .iter_mut()
                .all(|(child, _, _)| child.try_wait().unwrap().is_some())
        }),
        "idle connections were left open"
    );
    let shed = sample_value(
        &collector.metrics(),
        "countywatch_connections_shed_total{listener=\"ingest\"}",
    )
    .unwrap_or(0.0);
    assert!(shed >= CAP as f64, "{shed} connections shed");
}

#[test]
fn a_thousand_agents_connecting_at_once_are_all_served() {
    const AGENTS: usize = 1_000;
    // curl's parallel transfers are capped at 300 per process.
    const PER_CURL: usize = 250;
    // A generous handshake deadline: this test is about bounds, and 1,000
    // handshakes on a busy machine take a while.
    let collector = Collector::start_with(
        Some("ingest:\n  max_connections: 512\n  request_timeout: 30s\n"),
        &[],
    );
    let identity = collector.enrolled_identity("crowd-agent");
    let baseline_fds = open_fds(collector.pid());
    let watch = FdWatch::start(collector.pid());
    let files = identity.path().join("identity");
    let url = format!(
        "https://{}{}",
        collector.ingest_addr,
        countywatch_wire::INGEST_PATH
    );
    // Every connection does what a reconnecting agent does: the mutual TLS
    // handshake, then its batch (the same one: the collector stores it
    // once and acknowledges every copy).
    let body_dir = tempfile::tempdir().unwrap();
    let body = body_dir.path().join("batch");
    std::fs::write(
        &body,
        countywatch_wire::encode_batch(&batch("crowd-agent", 1)),
    )
    .unwrap();
    let crowd = |count: usize| {
        let curls: Vec<_> = (0..count.div_ceil(PER_CURL))
            .map(|batch| {
                let mut command = std::process::Command::new("curl");
                command
                    .args(["-s", "--parallel", "--parallel-immediate"])
                    // One connection per agent, closed after its answer, as
                    // 1,000 separate agents would do (idle keep-alive
                    // connections are the next test's subject).
                    .args(["-H", "Connection: close"])
                    .args(["--parallel-max", &PER_CURL.to_string()])
                    .args(["--max-time", "120", "-w", "%{http_code} %{errormsg}\n"])
                    .arg("--cert")
                    .arg(files.join("agent.crt"))
                    .arg("--key")
                    .arg(files.join("agent.key"))
                    .arg("--cacert")
                    .arg(files.join("ca.crt"))
                    .args(["-H", "Content-Encoding: gzip", "--data-binary"])
                    .arg(format!("@{}", body.display()));
                for _ in 0..PER_CURL.min(count - batch * PER_CURL) {
                    command.args(["-o", "/dev/null", &url]);
                }
                command.stdout(std::process::Stdio::piped());
                command.spawn().expect("curl is installed by tests/run.sh")
            })
            .collect();
        let mut statuses = std::collections::BTreeMap::<String, usize>::new();
        for curl in curls {
            let output = curl.wait_with_output().unwrap();
            for line in String::from_utf8_lossy(&output.stdout).lines() {
                *statuses.entry(line.trim().to_string()).or_default() += 1;
            }
        }
        statuses
    };
    let started = Instant::now();
    let statuses = crowd(AGENTS);
    println!(
        "1,000 agents at once: {statuses:?} in {:?}",
        started.elapsed()
    );
    let served = statuses.get("200").copied().unwrap_or(0);
    // What failed may only have failed at the connection level (a reset
    // while the backlog overflowed), never with a wrong answer; agents
    // retry those, and every retry is served.
    for (status, count) in &statuses {
        assert!(
            status == "200" || status.starts_with("000"),
            "{count} connections answered {status}"
        );
    }
    assert!(served > AGENTS / 2, "{statuses:?}");
    let retried = crowd(AGENTS - served);
    println!("retrying the {} that failed: {retried:?}", AGENTS - served);
    assert_eq!(
        retried.get("200").copied().unwrap_or(0),
        AGENTS - served,
        "{retried:?}"
    );
    let peak_fds = watch.finish();
    report(
        "1,000 agents at once",
        collector.pid(),
        peak_fds,
        baseline_fds + INGEST_CAP + FD_MARGIN,
        128,
    );
    still_serves(&collector, identity.path(), "crowd-agent", 2);
}

#[test]
fn a_hundred_megabyte_body_is_refused_before_it_is_read() {
    const SIZE: usize = 100 * 1024 * 1024;
    let collector = Collector::start();
    let identity = collector.enrolled_identity("big-agent");
    let baseline_kib = peak_rss_kib(collector.pid());
    let watch = FdWatch::start(collector.pid());
    let body = vec![b'x'; SIZE];
    let state_dir = identity.path();
    let with_identity = CurlIdentity { state_dir };
    // Declared up front: refused on the Content-Length alone.
    let declared = curl_post(
        collector.ingest_addr,
        countywatch_wire::INGEST_PATH,
        &body,
        &["Content-Encoding: gzip"],
        Some(&with_identity),
    );
    assert_eq!(declared.status, 413, "{}", declared.body);
    // Chunked, with no length: read up to the cap, then refused.
    let chunked = curl_post(
        collector.ingest_addr,
        countywatch_wire::INGEST_PATH,
        &body,
        &["Content-Encoding: gzip", "Transfer-Encoding: chunked"],
        Some(&with_identity),
    );
    assert_eq!(chunked.status, 413, "{}", chunked.body);
    let peak_fds = watch.finish();
    println!("100 MB body: peak RSS before {} MiB", baseline_kib / 1024);
    // A collector that buffered the body would grow by 100 MB.
    report(
        "100 MB body",
        collector.pid(),
        peak_fds,
        open_fds(collector.pid()) + FD_MARGIN,
        baseline_kib / 1024 + 48,
    );
    still_serves(&collector, state_dir, "big-agent", 1);
}

#[test]
fn a_one_gigabyte_log_line_is_capped_and_the_next_line_still_counts() {
    const HUGE: u64 = 1 << 30;
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    crate::events::append_lines(&log, 0, 1);
    let mut agent =
        crate::events::start_agent("long-line-host", &collector, &crate::events::config(&log));
    assert_eq!(
        crate::events::wait_for_events(&collector, "long-line-host", 1),
        1
    );
    // A line of a program no parser knows, 1 GiB long: a prefix, then a
    // hole (read back as NUL bytes, so the test costs no disk), no newline
    // until the end.
    {
        let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        file.write_all(b"Nov 28 01:00:00 web-01 kernel: ").unwrap();
        let end = file.metadata().unwrap().len() + HUGE;
        file.set_len(end).unwrap();
        // Append mode writes at the new end, after the hole.
        file.write_all(b"\n").unwrap();
    }
    crate::events::append_lines(&log, 1, 1);
    let seen = crate::events::wait_for_events(&collector, "long-line-host", 2);
    assert_eq!(seen, 2, "the line after the long one became an event");
    assert!(agent.is_running(), "the agent survived the long line");
    let fds = open_fds_besides_pseudo_files(agent.pid());
    // The agent caps lines at sources.auth.max_line_bytes (16 KiB); one
    // that held the line would need 1 GiB.
    report("1 GiB log line (agent)", agent.pid(), fds, 64, 128);
    // Nothing more arrives: the long line was not turned into a login.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        collector.event_count("long-line-host", "ssh_login_failed"),
        2
    );
}
