//! A thousand agents' decision long polls at once (issue 27): what 1,000
//! concurrent `GET /v1/decisions?after=N&wait=25` cost a real collector
//! (RSS, threads, open file descriptors, against the same collector idle),
//! and how long one county-wide decision takes to reach all of them: from
//! the decision's `start_ms` in incidents.db (written by `decisions add`,
//! which the collector notices by polling the update log every 200 ms) to
//! each poll's answer, over [`ROUNDS`] decisions.
//!
//! The polls come from [`IDENTITIES`] enrolled identities, [`POLLS`] /
//! [`IDENTITIES`] connections each (enrolling 1,000 agents would take
//! minutes; the collector's cost per poll does not depend on the name):
//! each poll is its own mutual-TLS connection, as each agent's is. No peer
//! is measured. Needs the binaries of the same profile.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use countywatch_agent::config::CollectorUrl;
use countywatch_agent::identity::IdentityFiles;
use countywatch_agent::transport::{Transport, mutual_tls};
use countywatch_wire::{DECISIONS_PATH, DecisionFeed};

use super::{Benchmark, Figure, percentile};
use crate::Collector;

/// Registration.
pub const BENCHMARK: Benchmark = Benchmark {
    name: "decision_polls",
    about: "1,000 concurrent decision long polls: collector RSS, threads, fds, and one decision's wake latency to all",
    run,
};

/// Concurrent long polls.
const POLLS: usize = 1_000;
/// Enrolled identities the polls are spread over.
const IDENTITIES: usize = 20;
/// Decisions written, one after another, each waking every poll.
const ROUNDS: usize = 5;
/// What a poll asks the collector to wait.
const WAIT_SECONDS: u64 = 25;

/// What `/proc/PID` says about the collector.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    rss_kib: f64,
    threads: f64,
    fds: f64,
}

fn usage(pid: u32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|value| value.split_whitespace().next()?.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| entries.count() as f64)
        .unwrap_or(f64::NAN);
    Usage {
        rss_kib: field("VmRSS:"),
        threads: field("Threads:"),
        fds,
    }
}

/// One poll's answers: for each round, when it answered with the
/// round's decision (epoch ms).
type Answers = Arc<Mutex<Vec<Vec<i64>>>>;

fn run() -> Vec<Figure> {
    let collector = Collector::start_with(Some("agents:\n  silent_after: 1h\n"), &[]);
    let pid = collector.pid();
    let identities: Vec<tempfile::TempDir> = (0..IDENTITIES)
        .map(|index| collector.enrolled_identity(&format!("poll-{index:02}")))
        .collect();
    let tls: Vec<_> = identities
        .iter()
        .map(|dir| {
            mutual_tls(&IdentityFiles::new(dir.path())).unwrap_or_else(|error| panic!("{error:#}"))
        })
        .collect();
    let url = CollectorUrl::parse(&format!("https://{}", collector.ingest_addr))
        .unwrap_or_else(|error| panic!("{error}"));
    std::thread::sleep(Duration::from_secs(2));
    let idle = usage(pid);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => panic!("cannot start a runtime: {error}"),
    };
    let answers: Answers = Arc::new(Mutex::new(vec![Vec::new(); ROUNDS]));
    let failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for index in 0..POLLS {
        let mut transport = Transport::new(
            url.clone(),
            Arc::clone(&tls[index % IDENTITIES]),
            Duration::from_secs(30),
        );
        let answers = Arc::clone(&answers);
        let failures = Arc::clone(&failures);
        tasks.push(runtime.spawn(async move {
            let mut cursor = 0;
            let mut round = 0;
            let deadline = Instant::now() + Duration::from_secs(60 * ROUNDS as u64);
            while round < ROUNDS && Instant::now() < deadline {
                let path = format!("{DECISIONS_PATH}?after={cursor}&wait={WAIT_SECONDS}");
                let wait = Duration::from_secs(WAIT_SECONDS + 30);
                let feed = match transport.get(&path, wait).await {
                    Ok(body) => serde_json::from_slice::<DecisionFeed>(&body).ok(),
                    Err(_) => None,
                };
                let Some(feed) = feed else {
                    failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                };
                let at = countywatch_daemon::clock::now_ms();
                cursor = feed.cursor;
                if !feed.updates.is_empty() {
                    if let Ok(mut answers) = answers.lock() {
                        answers[round].push(at);
                    }
                    round += 1;
                }
            }
        }));
    }
    // Every poll connected and waiting: a descriptor each at the collector.
    let connected = crate::process::wait_until(Duration::from_secs(120), || {
        usage(pid).fds >= idle.fds + POLLS as f64
    });
    std::thread::sleep(Duration::from_secs(2));
    let waiting = usage(pid);

    // Sample the collector while the decisions wake the polls.
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = Arc::clone(&sampling);
        std::thread::spawn(move || {
            let mut peak = Usage::default();
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                let now = usage(pid);
                peak.rss_kib = peak.rss_kib.max(now.rss_kib);
                peak.threads = peak.threads.max(now.threads);
                peak.fds = peak.fds.max(now.fds);
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        })
    };
    let incidents = rusqlite::Connection::open(collector.data_dir.join("incidents.db"))
        .unwrap_or_else(|error| panic!("{error}"));
    let mut started = Vec::new();
    for round in 0..ROUNDS {
        let address = format!("198.51.100.{}", round + 1);
        let added = std::process::Command::new(crate::binary("countywatch-collector"))
            .args([
                "decisions",
                "add",
                &address,
                "--duration",
                "1h",
                "--data-dir",
            ])
            .arg(&collector.data_dir)
            .output()
            .unwrap_or_else(|error| panic!("{error}"));
        assert!(added.status.success(), "{added:?}");
        let start_ms: i64 = incidents
            .query_row(
                "SELECT start_ms FROM decisions WHERE address = ?1",
                [&address],
                |row| row.get(0),
            )
            .unwrap_or_else(|error| panic!("{error}"));
        started.push(start_ms);
        crate::process::wait_until(Duration::from_secs(60), || {
            answers
                .lock()
                .map(|answers| answers[round].len() >= POLLS)
                .unwrap_or(true)
        });
        // Let the polls settle back into waiting before the next one.
        std::thread::sleep(Duration::from_secs(3));
    }
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap_or_default();
    for task in tasks {
        task.abort();
    }
    runtime.shutdown_timeout(Duration::from_secs(5));

    let answers = answers
        .lock()
        .map(|answers| answers.clone())
        .unwrap_or_default();
    let mut wake: Vec<f64> = Vec::new();
    let mut last_of_round: Vec<f64> = Vec::new();
    for (round, times) in answers.iter().enumerate() {
        let mut round_wake: Vec<f64> = times
            .iter()
            .map(|at| (at - started[round]) as f64)
            .collect();
        round_wake.sort_by(f64::total_cmp);
        if let Some(last) = round_wake.last() {
            last_of_round.push(*last);
        }
        wake.extend(round_wake);
    }
    wake.sort_by(f64::total_cmp);
    last_of_round.sort_by(f64::total_cmp);
    let per_poll = |waiting: f64, idle: f64| (waiting - idle) / POLLS as f64;
    vec![
        Figure::new(
            "decision_polls_connected",
            f64::from(u8::from(connected)),
            "yes",
        ),
        Figure::new(
            "decision_polls_rss_waiting",
            waiting.rss_kib / 1024.0,
            "MiB",
        )
        .with_peer("idle", idle.rss_kib / 1024.0),
        Figure::new(
            "decision_polls_rss_per_poll",
            per_poll(waiting.rss_kib, idle.rss_kib),
            "KiB",
        ),
        Figure::new("decision_polls_rss_peak", peak.rss_kib / 1024.0, "MiB"),
        Figure::new("decision_polls_threads_waiting", waiting.threads, "threads")
            .with_peer("idle", idle.threads),
        Figure::new("decision_polls_threads_peak", peak.threads, "threads"),
        Figure::new("decision_polls_fds_waiting", waiting.fds, "fds").with_peer("idle", idle.fds),
        Figure::new("decision_polls_wake_p50", percentile(&wake, 0.50), "ms"),
        Figure::new("decision_polls_wake_p99", percentile(&wake, 0.99), "ms"),
        Figure::new(
            "decision_polls_wake_max",
            wake.last().copied().unwrap_or(f64::NAN),
            "ms",
        ),
        Figure::new(
            "decision_polls_all_woken_worst_round",
            last_of_round.last().copied().unwrap_or(f64::NAN),
            "ms",
        ),
        Figure::new("decision_polls_answers", wake.len() as f64, "answers"),
        Figure::new(
            "decision_polls_failed_requests",
            failures.load(std::sync::atomic::Ordering::Relaxed) as f64,
            "requests",
        ),
    ]
}
