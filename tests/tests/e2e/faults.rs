//! Fault injection (issue 13): full disks under the collector's data dir and
//! the agent's spool, a collector database locked by another process, the
//! agent's wall clock jumping, a torn spool WAL and a damaged spool page.
//! Each test counts every event it makes the "host" log and asserts that
//! exactly that many arrive, once each, or exactly that many minus what the
//! agent reports lost under its documented policy.
//!
//! Full disks are small tmpfs mounts the test makes (the suite runs as root,
//! as CI does); a filler file takes the rest of the space.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use countywatch_e2e::fake_clock::FakeClock;
use countywatch_e2e::http::sample_value;
use countywatch_e2e::process::wait_until;
use countywatch_e2e::{Agent, Collector};

use crate::events::{append_lines, config, start_agent, wait_for_events};

/// A tmpfs of `megabytes` at `path`, unmounted on drop.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(path: &Path, megabytes: u32) -> SmallDisk {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m")])
            .arg("countywatch-test")
            .arg(path)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        SmallDisk {
            path: path.to_path_buf(),
        }
    }

    fn filler(&self) -> PathBuf {
        self.path.join("filler")
    }

    /// Writes a file until the disk refuses more.
    fn fill(&self) {
        let mut file = std::fs::File::create(self.filler()).unwrap();
        let chunk = vec![0u8; 4096];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.filler()).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn ingest_results(collector: &Collector, result: &str) -> f64 {
    sample_value(
        &collector.metrics(),
        &format!("countywatch_ingest_requests_total{{result=\"{result}\"}}"),
    )
    .unwrap_or(0.0)
}

fn integrity(database: &Path) -> String {
    let connection = rusqlite::Connection::open(database).unwrap();
    connection
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap()
}

#[test]
fn a_full_collector_disk_refuses_ingest_with_503_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let disk = SmallDisk::mount(&data_dir, 16);
    let mut collector = Collector::start_in(dir, &data_dir, None, &[]);
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("auth.log");
    let config = config(&log);
    append_lines(&log, 0, 100);
    let mut agent = start_agent("full-disk", &collector, &config);
    assert_eq!(wait_for_events(&collector, "full-disk", 100), 100);

    disk.fill();
    // Enough lines to outgrow what SQLite can still write into the space
    // its files already hold.
    let mut written = 100;
    let refused = wait_until(Duration::from_secs(60), || {
        append_lines(&log, written, 200);
        written += 200;
        std::thread::sleep(Duration::from_millis(500));
        ingest_results(&collector, "error") >= 1.0
    });
    assert!(
        refused,
        "ingest never refused on a full disk; log:\n{}",
        collector.logs.all().join("\n")
    );
    assert!(
        collector.is_running(),
        "the collector must survive a full disk"
    );
    assert!(agent.is_running(), "the agent keeps spooling");

    disk.free();
    let expected = written as i64;
    assert_eq!(
        wait_for_events(&collector, "full-disk", expected),
        expected,
        "every line once the space is back"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        collector.event_count("full-disk", "ssh_login_failed"),
        expected
    );
    assert_eq!(integrity(&data_dir.join("collector.db")), "ok");
    drop(agent);
    drop(collector);
    drop(disk);
}

#[test]
fn a_full_spool_disk_stalls_the_agent_and_loses_nothing() {
    let collector = Collector::start();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("auth.log");
    let config = config(&log);
    append_lines(&log, 0, 50);
    // Enrol into a state dir on a small disk.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let disk = SmallDisk::mount(&state, 8);
    let (code, _, stderr) = countywatch_e2e::enroll(
        &collector.enroll_url(),
        &collector.token(None),
        &collector.ca_sha256,
        Some("full-spool"),
        &state,
    );
    assert_eq!(code, 0, "{stderr}");
    let mut agent = Agent::start_in(dir, &config);
    assert_eq!(wait_for_events(&collector, "full-spool", 50), 50);

    disk.fill();
    append_lines(&log, 50, 300);
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        agent.is_running(),
        "a full spool disk must not end the agent; log:\n{}",
        agent.logs.all().join("\n")
    );
    disk.free();
    assert_eq!(wait_for_events(&collector, "full-spool", 350), 350);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(collector.event_count("full-spool", "ssh_login_failed"), 350);
    drop(agent);
    drop(disk);
}

#[test]
fn a_collector_database_locked_by_another_process_delays_but_loses_nothing() {
    let mut collector = Collector::start();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("auth.log");
    let config = config(&log);
    append_lines(&log, 0, 20);
    let agent = start_agent("locked-db", &collector, &config);
    assert_eq!(wait_for_events(&collector, "locked-db", 20), 20);

    // Another process (the sqlite3 shell, as an operator might leave it)
    // holds the write lock for longer than the collector's busy timeout.
    let probe = collector.enrolled_identity("locked-probe");
    let mut shell = Command::new("sqlite3")
        .arg(collector.data_dir.join("collector.db"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = shell.stdin.take().unwrap();
    writeln!(stdin, "BEGIN IMMEDIATE;").unwrap();
    writeln!(stdin, "SELECT 'locked';").unwrap();
    stdin.flush().unwrap();
    // The shell prints after it took the lock.
    let mut said = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(shell.stdout.take().unwrap()),
        &mut said,
    )
    .unwrap();
    assert_eq!(said.trim(), "locked");
    append_lines(&log, 20, 100);
    // A client that waits longer than the collector's busy timeout gets a
    // 503 (the agent's own 2 s timeout may give up first, so the test asks
    // directly); the agent keeps its batches and retries.
    let mut event = countywatch_wire::Event::new(
        1,
        countywatch_wire::EventSource::Auth,
        countywatch_wire::EventKind::SshLoginFailed,
    );
    event.raw = "probe".to_string();
    let batch = countywatch_wire::Batch {
        version: countywatch_wire::WIRE_VERSION,
        agent: "locked-probe".to_string(),
        seq: 1,
        collected_at_ms: 0,
        metrics: Vec::new(),
        events: vec![event],
    };
    let refused = countywatch_e2e::http::post_batch(collector.ingest_addr, probe.path(), &batch);
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(ingest_results(&collector, "error") >= 1.0);
    assert!(collector.is_running());
    writeln!(stdin, "ROLLBACK;").unwrap();
    drop(stdin);
    let _ = shell.wait();
    assert_eq!(wait_for_events(&collector, "locked-db", 120), 120);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(collector.event_count("locked-db", "ssh_login_failed"), 120);
    drop(agent);
}

#[test]
fn the_agents_clock_jumping_back_and_forward_loses_nothing() {
    let collector = Collector::start();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("auth.log");
    let config = config(&log);
    append_lines(&log, 0, 30);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (code, _, stderr) = countywatch_e2e::enroll(
        &collector.enroll_url(),
        &collector.token(None),
        &collector.ca_sha256,
        Some("clock-jump"),
        &state,
    );
    assert_eq!(code, 0, "{stderr}");
    // libfaketime (Debian's faketime) reads the offset from this file on
    // every call; the monotonic clock, which timers use, stays real.
    let clock = FakeClock::new(&logs.path().join("faketime"), "+0");
    let wrapper = clock.wrapper();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let mut agent = Agent::start_wrapped(dir, &config, &wrapper);
    assert_eq!(wait_for_events(&collector, "clock-jump", 30), 30);
    let mut expected = 30;
    for (jump, hours) in [("-2h", -2.0), ("+3h", 3.0), ("-10d", -240.0), ("+0", 0.0)] {
        clock.write(jump);
        // The fault is real: the agent's own clock reading moved.
        let moved = wait_until(Duration::from_secs(20), || {
            let real = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            sample_value(
                &collector.metrics(),
                "node_time_seconds{instance=\"clock-jump\",job=\"countywatch\"}",
            )
            .is_some_and(|agent_time| (agent_time - real - hours * 3600.0).abs() < 600.0)
        });
        assert!(moved, "the agent's clock did not jump by {jump}");
        append_lines(&log, expected, 40);
        expected += 40;
        assert_eq!(
            wait_for_events(&collector, "clock-jump", expected as i64),
            expected as i64,
            "after a jump of {jump}; agent log:\n{}",
            agent.logs.all().join("\n")
        );
        assert!(agent.is_running());
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        collector.event_count("clock-jump", "ssh_login_failed"),
        expected as i64
    );
}

#[test]
fn a_torn_spool_wal_tail_after_kill_9_is_skipped_and_the_rest_delivered() {
    let collector = Collector::start();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("auth.log");
    let config = config(&log);
    append_lines(&log, 0, 40);
    let agent = start_agent("torn-wal", &collector, &config);
    assert_eq!(wait_for_events(&collector, "torn-wal", 40), 40);
    // The collector goes away, the agent spools what it reads...
    let ingest = collector.ingest_addr;
    let enroll = collector.enroll_addr;
    let data_dir = collector.data_dir.clone();
    let collector_dir = collector.kill();
    append_lines(&log, 40, 60);
    assert!(wait_until(Duration::from_secs(20), || agent
        .spool_state()
        .0
        >= 1));
    std::thread::sleep(Duration::from_secs(2));
    // ...and dies mid-write: the WAL ends in a frame that was never
    // completed (random bytes where its header and checksum should be).
    let state_dir = agent.state_dir.clone();
    let agent_dir = agent.kill();
    let wal = state_dir.join("spool.db-wal");
    let mut tail = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&wal)
        .unwrap();
    let garbage: Vec<u8> = (0..10_000u32)
        .map(|index| (index.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    tail.write_all(&garbage).unwrap();
    drop(tail);

    let collector = Collector::restart(collector_dir, &data_dir, ingest, enroll);
    let agent = Agent::start_in(agent_dir, &config);
    assert_eq!(
        wait_for_events(&collector, "torn-wal", 100),
        100,
        "agent log:\n{}",
        agent.logs.all().join("\n")
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(collector.event_count("torn-wal", "ssh_login_failed"), 100);
    assert_eq!(integrity(&state_dir.join("spool.db")), "ok");
}

/// The rowids of the cells on a table b-tree leaf page (SQLite file
/// format: a header, then a big-endian u16 pointer per cell to a varint
/// payload size and a varint rowid).
fn leaf_rowids(page: &[u8]) -> Vec<i64> {
    fn varint(bytes: &[u8]) -> (i64, usize) {
        let mut value = 0i64;
        for (index, byte) in bytes.iter().take(9).enumerate() {
            if index == 8 {
                return ((value << 8) | i64::from(*byte), 9);
            }
            value = (value << 7) | i64::from(byte & 0x7f);
            if byte & 0x80 == 0 {
                return (value, index + 1);
            }
        }
        (value, 9)
    }
    assert_eq!(page[0], 0x0d, "not a table leaf page");
    let cells = usize::from(u16::from_be_bytes([page[3], page[4]]));
    (0..cells)
        .map(|cell| {
            let pointer = 8 + 2 * cell;
            let offset = usize::from(u16::from_be_bytes([page[pointer], page[pointer + 1]]));
            let (_, size_length) = varint(&page[offset..]);
            varint(&page[offset + size_length..]).0
        })
        .collect()
}

#[test]
fn a_damaged_spool_page_is_salvaged_and_exactly_its_events_are_reported_lost() {
    let collector = Collector::start();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("auth.log");
    let config = config(&log);
    append_lines(&log, 0, 20);
    let agent = start_agent("damaged-spool", &collector, &config);
    assert_eq!(wait_for_events(&collector, "damaged-spool", 20), 20);
    let state_dir = agent.state_dir.clone();
    let spool_path = state_dir.join("spool.db");
    let spooled_events = || -> i64 {
        rusqlite::Connection::open_with_flags(
            &spool_path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|spool| {
            spool.query_row("SELECT COALESCE(SUM(events), 0) FROM batches", [], |row| {
                row.get(0)
            })
        })
        .unwrap_or(-1)
    };
    // The first batch acknowledged too, so that only the events written
    // while the collector is away are in the spool.
    assert!(wait_until(Duration::from_secs(20), || spooled_events() == 0));
    // The collector goes away; the agent spools batch after batch (one
    // per burst of lines, at most ten a second, and metrics between).
    let (ingest, enroll, data_dir) = (
        collector.ingest_addr,
        collector.enroll_addr,
        collector.data_dir.clone(),
    );
    let collector_dir = collector.kill();
    let total: i64 = 20 + 12 * 30;
    for burst in 0..12 {
        append_lines(&log, 20 + burst * 30, 30);
        std::thread::sleep(Duration::from_millis(1_300));
    }
    assert!(
        wait_until(Duration::from_secs(30), || spooled_events() == total - 20),
        "the agent spooled {} of {} events",
        spooled_events(),
        total - 20
    );
    // A clean stop, so every page is in the main file, not the WAL.
    let agent_dir = agent.stop_keeping_state();
    let spool = rusqlite::Connection::open(&spool_path).unwrap();
    spool
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let page_size: usize = spool
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .unwrap();
    let events_by_seq: std::collections::BTreeMap<i64, i64> = spool
        .prepare("SELECT seq, events FROM batches")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let leaves: Vec<usize> = spool
        .prepare(
            "SELECT pageno FROM dbstat WHERE name = 'bodies' AND pagetype = 'leaf' ORDER BY pageno",
        )
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    drop(spool);
    let mut file = std::fs::read(&spool_path).unwrap();
    let page_bytes = |page: usize| (page - 1) * page_size..page * page_size;
    // The first leaf of batch bodies that holds events: the damage must
    // cost something for the test to show it is counted.
    let (page, destroyed) = leaves
        .iter()
        .map(|page| (*page, leaf_rowids(&file[page_bytes(*page)])))
        .find(|(_, rowids)| rowids.iter().any(|seq| events_by_seq[seq] > 0))
        .unwrap_or_else(|| panic!("no leaf page of bodies holds events: {leaves:?}"));
    let destroyed_events: i64 = destroyed.iter().map(|seq| events_by_seq[seq]).sum();
    assert!(destroyed_events > 0);
    for byte in &mut file[page_bytes(page)] {
        *byte = 0xa5;
    }
    std::fs::write(&spool_path, &file).unwrap();

    let collector = Collector::restart(collector_dir, &data_dir, ingest, enroll);
    let agent = Agent::start_in(agent_dir, &config);
    // The collector still shows the agent's last report before the damage
    // (0) until the restarted agent's first metrics arrive.
    let series = |name: &str| {
        sample_value(
            &collector.metrics(),
            &format!("{name}{{instance=\"damaged-spool\",job=\"countywatch\"}}"),
        )
    };
    let mut lost = None;
    wait_until(Duration::from_secs(60), || {
        lost = series("countywatch_agent_spool_damaged_events_total");
        lost.is_some_and(|lost| lost > 0.0)
    });
    assert_eq!(
        lost,
        Some(destroyed_events as f64),
        "the agent reports exactly the events on the damaged page ({destroyed:?}); agent log:\n{}",
        agent.logs.all().join("\n")
    );
    let delivered = total - destroyed_events;
    assert_eq!(
        wait_for_events(&collector, "damaged-spool", delivered),
        delivered,
        "agent log:\n{}",
        agent.logs.all().join("\n")
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        collector.event_count("damaged-spool", "ssh_login_failed") + destroyed_events,
        total,
        "delivered + reported lost = generated"
    );
    assert_eq!(series("countywatch_agent_spool_salvages_total"), Some(1.0));
    // And the officer gets an event saying so, with the exact count.
    let reported: Vec<i64> = collector
        .database()
        .prepare(
            "SELECT json_extract(body, '$.fields.count') FROM events
             WHERE agent = 'damaged-spool' AND kind = 'spool_damaged'",
        )
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(reported, [destroyed_events]);
    let kept: Vec<String> = std::fs::read_dir(&state_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("spool.db.corrupt-") && !name.ends_with("-wal"))
        .collect();
    assert_eq!(
        kept.len(),
        1,
        "the damaged file is kept for the officer: {kept:?}"
    );
    assert_eq!(integrity(&spool_path), "ok");
    drop(agent);
}
