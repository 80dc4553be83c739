//! Active-response latency (issue 27): from the collector's decision (made
//! by the detection engine when `ssh_brute_force` fires, its `start_ms` in
//! incidents.db) to the attacked agent's kernel set holding the address
//! (the agent's `blocked` log line, written when `nft` has returned). The
//! agent runs in a network namespace of the benchmark's own with the
//! nftables backend; the failures are written to its tailed auth log, ten
//! per address for 1,000 addresses, 100 addresses a second. No peer is
//! measured for this figure. Then log line to block, the same lines fed to
//! Debian's fail2ban (sshd jail settings, nftables action) in a namespace of
//! its own, measured to its `Ban` log line; and the stages before the
//! decision: from the lines to the collector storing an address's last
//! failure (`received_ms`: the agent's pacing, its POST, ingest), and from
//! there to the decision (the detection task); and what the flood costs
//! (batches a second, CPU of agent and collector, first line to last block).
//! Then the quiet case, for both: 20 more attackers one at a time, each
//! after half a second of silence, ten lines at once, log line to block.
//! Then 20 unblocks from the command line (`decisions delete`, one at a
//! time) to the agent's log line saying it lifted the block.
//! Then the cost of the set on accepted connections: 2,000 TCP connects
//! from the root namespace to a listener in the agent's, with the set
//! empty and with 10,000 elements.
//!
//! Needs root, iproute2 and nftables, and the binaries of the same profile.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{Benchmark, Figure, cpu_seconds, percentile};
use crate::netns::NetNs;
use crate::process::wait_until;
use crate::{Agent, Collector, TEST_AGENT_CONFIG, enroll};

/// Registration.
pub const BENCHMARK: Benchmark = Benchmark {
    name: "response_latency",
    about: "detection to kernel set entry on the attacked agent: p50/p99/max over 1,000 decisions",
    run,
};

const ADDRESSES: usize = 1_000;
/// Addresses written per step; a step every [`STEP`].
const PER_STEP: usize = 10;
const STEP: Duration = Duration::from_millis(100);
/// Blocks lifted from the command line, one after another.
const UNBLOCKS: usize = 20;
/// Attackers of the quiet case, one at a time after the flood.
const ALONE: usize = 20;
/// The quiet spell before each of them.
const QUIET: Duration = Duration::from_millis(500);

/// Milliseconds since the epoch of a tracing JSON timestamp
/// (`2026-12-06T08:01:02.123456Z`).
fn log_time_ms(text: &str) -> Option<i64> {
    let (date, clock) = text.trim_end_matches('Z').split_once('T')?;
    let mut date_parts = date.split('-').map(|part| part.parse::<i32>().ok());
    let (year, month, day) = (
        date_parts.next()??,
        date_parts.next()??,
        date_parts.next()??,
    );
    let (whole, fraction) = clock.split_once('.').unwrap_or((clock, "0"));
    let mut clock_parts = whole.split(':').map(|part| part.parse::<u8>().ok());
    let (hour, minute, second) = (
        clock_parts.next()??,
        clock_parts.next()??,
        clock_parts.next()??,
    );
    let micros: i64 = format!("{fraction:0<6}")[..6].parse().ok()?;
    let date = time::Date::from_calendar_date(
        year,
        time::Month::try_from(u8::try_from(month).ok()?).ok()?,
        u8::try_from(day).ok()?,
    )
    .ok()?;
    let at = date.with_hms(hour, minute, second).ok()?.assume_utc();
    Some(at.unix_timestamp() * 1000 + micros / 1000)
}

fn address(index: usize) -> String {
    format!("10.240.{}.{}", index / 250, index % 250 + 1)
}

/// Appends ten failures for each of the [`ADDRESSES`] addresses to `log`,
/// [`PER_STEP`] addresses every [`STEP`], stamped now in the rsyslog ISO
/// format, and returns when each address's lines were written (epoch ms).
fn write_attack(log: &Path, host: &str) -> HashMap<String, i64> {
    let started = Instant::now();
    let mut written = HashMap::new();
    let mut file = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    for step in 0..ADDRESSES / PER_STEP {
        let text: String = (step * PER_STEP..(step + 1) * PER_STEP)
            .map(|index| failures(host, index))
            .collect();
        let at = countywatch_daemon::clock::now_ms();
        file.write_all(text.as_bytes()).unwrap();
        for index in step * PER_STEP..(step + 1) * PER_STEP {
            written.insert(address(index), at);
        }
        let due = STEP * (step as u32 + 1);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    written
}

/// The ten `Failed password` lines of attacker `index`, stamped now in the
/// rsyslog ISO format.
fn failures(host: &str, index: usize) -> String {
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000000+00:00",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    (0..10)
        .map(|attempt| {
            format!(
                "{stamp} {host} sshd[{index}]: Failed password for root from {} port {} ssh2\n",
                address(index),
                10_000 + attempt
            )
        })
        .collect()
}

/// The quiet case: [`ALONE`] attackers after the flood's, one at a time,
/// each after a [`QUIET`] spell: its ten lines are written at once, then
/// `blocked(address)` is awaited (30 s at most). Returns when each
/// address's lines were written (epoch ms).
fn write_alone(log: &Path, host: &str, blocked: impl Fn(&str) -> bool) -> HashMap<String, i64> {
    let mut file = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    let mut written = HashMap::new();
    for index in ADDRESSES..ADDRESSES + ALONE {
        std::thread::sleep(QUIET);
        let text = failures(host, index);
        written.insert(address(index), countywatch_daemon::clock::now_ms());
        file.write_all(text.as_bytes()).unwrap();
        wait_until(Duration::from_secs(30), || blocked(&address(index)));
    }
    written
}

/// Milliseconds from each address's lines being written to its block,
/// sorted.
fn latencies(written: &HashMap<String, i64>, blocked: &HashMap<String, i64>) -> Vec<f64> {
    let mut millis: Vec<f64> = written
        .iter()
        .filter_map(|(address, at)| Some((blocked.get(address)? - at) as f64))
        .collect();
    millis.sort_by(f64::total_cmp);
    millis
}

/// Debian's fail2ban (1.0, sshd filter, pyinotify backend, nftables
/// action, `maxretry = 10`, `findtime = 2m`) in a namespace of its own, fed
/// the same lines: milliseconds from each address's lines to its `Ban`
/// log line, for the flood and for the attackers alone. None when
/// fail2ban is not installed.
fn fail2ban_log_to_ban() -> Option<(Vec<f64>, Vec<f64>)> {
    if Command::new("fail2ban-server")
        .arg("--version")
        .output()
        .is_err()
    {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    for linked in ["filter.d", "action.d"] {
        std::os::unix::fs::symlink(Path::new("/etc/fail2ban").join(linked), conf.join(linked))
            .unwrap();
    }
    std::fs::write(
        conf.join("fail2ban.conf"),
        format!(
            "[Definition]\nloglevel = INFO\nlogtarget = {}\nsocket = {}\npidfile = {}\ndbfile = :memory:\n",
            path("f2b.log"),
            path("f2b.sock"),
            path("f2b.pid")
        ),
    )
    .unwrap();
    std::fs::write(
        conf.join("jail.conf"),
        format!(
            "[sshd]\nenabled = true\nfilter = sshd\nlogpath = {}\nbackend = pyinotify\nmaxretry = 10\nfindtime = 2m\nbantime = 1h\naction = nftables-allports[name=sshd]\n",
            path("auth.log")
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("auth.log"), "").unwrap();
    let namespace = NetNs::new("bf2b", "10.231.31.1", "10.231.31.2");
    let started = Command::new("ip")
        .args(["netns", "exec", &namespace.name, "env", "TZ=UTC"])
        .args(["fail2ban-server", "-b", "-x", "-c"])
        .arg(&conf)
        .args(["-s", &path("f2b.sock"), "-p", &path("f2b.pid")])
        .output()
        .unwrap();
    assert!(started.status.success(), "{started:?}");
    std::thread::sleep(Duration::from_secs(3));
    let written = write_attack(&dir.path().join("auth.log"), "bench-response");
    let bans = || -> HashMap<String, i64> {
        std::fs::read_to_string(path("f2b.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                // `2026-12-06 08:04:07,886 fail2ban.actions [N]: NOTICE [sshd] Ban ADDRESS`
                let address = line.split_once("] Ban ")?.1.trim();
                let stamp = format!(
                    "{}Z",
                    line.get(..23)?.replacen(' ', "T", 1).replace(',', ".")
                );
                Some((address.to_string(), log_time_ms(&stamp)?))
            })
            .collect()
    };
    wait_until(Duration::from_secs(300), || bans().len() >= ADDRESSES);
    let alone = write_alone(&dir.path().join("auth.log"), "bench-response", |address| {
        bans().contains_key(address)
    });
    let banned = bans();
    let _ = Command::new("fail2ban-client")
        .args(["-s", &path("f2b.sock"), "stop"])
        .output();
    Some((latencies(&written, &banned), latencies(&alone, &banned)))
}

fn run() -> Vec<Figure> {
    let (host_address, agent_address) = ("10.231.30.1", "10.231.30.2");
    let link = NetNs::new("bre", host_address, agent_address);
    let listen = format!("{host_address}:0");
    let collector = Collector::start_with(
        Some(&format!(
            "ingest:\n  server_names: [\"{host_address}\"]\nresponse:\n  mode: enforce\n"
        )),
        &["--ingest-listen", &listen, "--enroll-listen", &listen],
    );
    let name = "bench-response";
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = enroll(
        &collector.enroll_url(),
        &collector.token(Some(name)),
        &collector.ca_sha256,
        Some(name),
        &dir.path().join("state"),
    );
    assert_eq!(code, 0, "{stderr}");
    let log = dir.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    let config = format!(
        "{TEST_AGENT_CONFIG}sources:\n  auth:\n    paths: [{}]\n  fim:\n    enabled: false\n  ports:\n    enabled: false\nresponse:\n  backend: nftables\n",
        log.display()
    );
    let agent = Agent::start_wrapped(dir, &config, &link.exec());
    let series = format!("node_load1{{instance=\"{name}\",job=\"countywatch\"}}");
    assert!(
        collector
            .wait_for_series(&series, Duration::from_secs(60))
            .is_some()
    );

    // What the flood costs, from the first line to the last block: CPU
    // of both daemons and the batches the agent sent.
    let cpu_before = (cpu_seconds(agent.pid()), cpu_seconds(collector.pid()));
    let written = write_attack(&log, name);
    let blocked_lines = || -> Vec<serde_json::Value> {
        agent
            .logs
            .all()
            .iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|value| value["message"] == "blocked")
            .collect()
    };
    wait_until(Duration::from_secs(300), || {
        blocked_lines().len() >= ADDRESSES
    });
    let cpu_after = (cpu_seconds(agent.pid()), cpu_seconds(collector.pid()));
    // When each address was blocked, by the agent's log.
    let blocked_at = || -> HashMap<String, i64> {
        blocked_lines()
            .iter()
            .filter_map(|value| {
                Some((
                    value["address"].as_str()?.to_string(),
                    log_time_ms(value["timestamp"].as_str()?)?,
                ))
            })
            .collect()
    };
    let blocked = blocked_at();
    let incidents = rusqlite::Connection::open(collector.data_dir.join("incidents.db")).unwrap();
    let mut statement = incidents
        .prepare("SELECT address, start_ms FROM decisions")
        .unwrap();
    let decided: Vec<(String, i64)> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .filter_map(Result::ok)
        .collect();
    let mut decision_to_block: Vec<f64> = decided
        .iter()
        .filter_map(|(address, start_ms)| Some((blocked.get(address)? - start_ms) as f64))
        .collect();
    decision_to_block.sort_by(f64::total_cmp);
    let log_to_block = latencies(&written, &blocked);
    // The stages before the decision: when the collector stored each
    // address's last failure (the agent's pacing, its POST and ingest),
    // and from there to the decision (the detection task).
    let events = rusqlite::Connection::open_with_flags(
        collector.data_dir.join("collector.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let stored: HashMap<String, i64> = events
        .prepare(
            "SELECT json_extract(body, '$.fields.src_ip'), MAX(received_ms) FROM events
             WHERE kind = 'ssh_login_failed' GROUP BY 1",
        )
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .filter_map(Result::ok)
        .collect();
    let log_to_stored = latencies(&written, &stored);
    let flood_ms = (
        written.values().min().copied().unwrap_or(0),
        blocked.values().max().copied().unwrap_or(0),
    );
    let flood_batches: i64 = events
        .query_row(
            "SELECT COUNT(*) FROM batches WHERE agent = ?1 AND received_ms BETWEEN ?2 AND ?3",
            rusqlite::params![name, flood_ms.0, flood_ms.1],
            |row| row.get(0),
        )
        .unwrap();
    let flood_seconds = (flood_ms.1 - flood_ms.0) as f64 / 1000.0;
    let mut stored_to_decision: Vec<f64> = decided
        .iter()
        .filter_map(|(address, start_ms)| Some((start_ms - stored.get(address)?) as f64))
        .collect();
    stored_to_decision.sort_by(f64::total_cmp);
    let kernel = std::process::Command::new("ip")
        .args(["netns", "exec", &link.name])
        .args([
            "nft",
            "-j",
            "list",
            "set",
            "inet",
            "countywatch",
            "blocked4",
        ])
        .output()
        .unwrap();
    let in_kernel =
        countywatch_agent::response::nftables::parse_list(&String::from_utf8_lossy(&kernel.stdout))
            .len();
    // Unblocks from the command line, one at a time: from starting
    // `decisions delete` to the agent's log line saying it lifted the block
    // (after `nft` returned).
    let mut unblock: Vec<f64> = (0..UNBLOCKS)
        .filter_map(|index| {
            let target = address(index);
            let started_ms = countywatch_daemon::clock::now_ms();
            let deleted = Command::new(crate::binary("countywatch-collector"))
                .args(["decisions", "delete", &target, "--data-dir"])
                .arg(&collector.data_dir)
                .output()
                .ok()?;
            assert!(deleted.status.success(), "{deleted:?}");
            let lifted = || {
                agent.logs.all().iter().find_map(|line| {
                    let value = serde_json::from_str::<serde_json::Value>(line).ok()?;
                    (value["message"] == "block lifted by the collector"
                        && value["address"] == target.as_str())
                    .then(|| log_time_ms(value["timestamp"].as_str()?))
                    .flatten()
                })
            };
            wait_until(Duration::from_secs(30), || lifted().is_some());
            Some((lifted()? - started_ms) as f64)
        })
        .collect();
    unblock.sort_by(f64::total_cmp);
    // The quiet case, after the flood: one attacker at a time.
    let alone = write_alone(&log, name, |address| blocked_at().contains_key(address));
    let alone_to_block = latencies(&alone, &blocked_at());
    let mut figures = vec![
        Figure::new(
            "response_latency_p50",
            percentile(&decision_to_block, 0.50),
            "ms",
        ),
        Figure::new(
            "response_latency_p99",
            percentile(&decision_to_block, 0.99),
            "ms",
        ),
        Figure::new(
            "response_latency_max",
            decision_to_block.last().copied().unwrap_or(f64::NAN),
            "ms",
        ),
        Figure::new(
            "response_log_to_stored_p50",
            percentile(&log_to_stored, 0.50),
            "ms",
        ),
        Figure::new(
            "response_log_to_stored_p99",
            percentile(&log_to_stored, 0.99),
            "ms",
        ),
        Figure::new(
            "response_stored_to_decision_p50",
            percentile(&stored_to_decision, 0.50),
            "ms",
        ),
        Figure::new(
            "response_stored_to_decision_p99",
            percentile(&stored_to_decision, 0.99),
            "ms",
        ),
        Figure::new(
            "response_flood_batches_per_second",
            flood_batches as f64 / flood_seconds,
            "batches/s",
        ),
        Figure::new(
            "response_flood_agent_cpu",
            (cpu_after.0 - cpu_before.0) / flood_seconds * 100.0,
            "% of a core",
        ),
        Figure::new(
            "response_flood_collector_cpu",
            (cpu_after.1 - cpu_before.1) / flood_seconds * 100.0,
            "% of a core",
        ),
        Figure::new("response_decisions", decided.len() as f64, "decisions"),
        Figure::new("response_blocked", decision_to_block.len() as f64, "blocks"),
        Figure::new("response_kernel_set_size", in_kernel as f64, "elements"),
        Figure::new("response_unblock_p50", percentile(&unblock, 0.50), "ms"),
        Figure::new(
            "response_unblock_max",
            unblock.last().copied().unwrap_or(f64::NAN),
            "ms",
        ),
    ];
    // The cost of a full set on accepted connections: the agent is
    // stopped (it would lift elements it does not hold), then connects from
    // the root namespace to a listener in the agent's are timed with the
    // set empty and with 10,000 elements.
    drop(agent);
    let nft = |script: &str| {
        let mut child = std::process::Command::new("ip")
            .args(["netns", "exec", &link.name, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "nft {script:.200}");
    };
    let mut listener = std::process::Command::new("ip")
        .args(["netns", "exec", &link.name, "python3", "-c"])
        .arg(format!(
            "import socket\ns = socket.socket()\ns.bind(('{agent_address}', 8081))\ns.listen(4096)\nwhile True:\n    s.accept()[0].close()\n"
        ))
        .spawn()
        .unwrap();
    let target: std::net::SocketAddr = format!("{agent_address}:8081").parse().unwrap();
    wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect_timeout(&target, Duration::from_secs(1)).is_ok()
    });
    let connects = |count: usize| -> Vec<f64> {
        let mut millis: Vec<f64> = (0..count)
            .filter_map(|_| {
                let started = Instant::now();
                let stream =
                    std::net::TcpStream::connect_timeout(&target, Duration::from_secs(2)).ok()?;
                let elapsed = started.elapsed().as_secs_f64() * 1000.0;
                drop(stream);
                Some(elapsed)
            })
            .collect();
        millis.sort_by(f64::total_cmp);
        millis
    };
    nft("flush set inet countywatch blocked4\n");
    let empty = connects(2_000);
    let mut fill = String::new();
    for index in 0..10_000 {
        fill.push_str(&format!(
            "add element inet countywatch blocked4 {{ 10.250.{}.{} timeout 1h }}\n",
            index / 250,
            index % 250 + 1
        ));
    }
    nft(&fill);
    let full = connects(2_000);
    let _ = listener.kill();
    let _ = listener.wait();
    figures.extend([
        Figure::new(
            "response_connect_p50_set_10000",
            percentile(&full, 0.50),
            "ms",
        )
        .with_peer("empty set", percentile(&empty, 0.50)),
        Figure::new(
            "response_connect_p99_set_10000",
            percentile(&full, 0.99),
            "ms",
        )
        .with_peer("empty set", percentile(&empty, 0.99)),
        Figure::new("response_connects_timed", full.len() as f64, "connects")
            .with_peer("empty set", empty.len() as f64),
    ]);
    // Log line to block, next to fail2ban on the same lines (run after the
    // agent has stopped, so the two do not share the machine).
    let fail2ban = fail2ban_log_to_ban();
    let cases = [
        (
            "response_log_to_block",
            &log_to_block,
            fail2ban.as_ref().map(|(flood, _)| flood),
            [("p50", 0.50), ("p99", 0.99)],
        ),
        (
            "response_alone_log_to_block",
            &alone_to_block,
            fail2ban.as_ref().map(|(_, alone)| alone),
            [("p50", 0.50), ("max", 1.0)],
        ),
    ];
    for (prefix, ours, fail2ban, points) in cases {
        for (name, fraction) in points {
            let figure = Figure::new(
                &format!("{prefix}_{name}"),
                percentile(ours, fraction),
                "ms",
            );
            figures.push(match fail2ban {
                Some(fail2ban) => figure.with_peer("fail2ban", percentile(fail2ban, fraction)),
                None => figure,
            });
        }
    }
    figures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracing_timestamps_are_read_to_the_millisecond() {
        assert_eq!(
            log_time_ms("1970-01-01T00:00:01.250999Z"),
            Some(1_250),
            "microseconds are cut to milliseconds"
        );
        assert_eq!(log_time_ms("2026-12-06T00:00:00Z"), Some(1_796_515_200_000));
        assert_eq!(log_time_ms("yesterday"), None);
    }
}
