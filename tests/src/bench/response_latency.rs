//! Active-response latency (issue 27): from the collector's decision (made
//! by the detection engine when `ssh_brute_force` fires, its `start_ms` in
//! incidents.db) to the attacked agent's kernel set holding the address
//! (the agent's `blocked` log line, written when `nft` has returned). The
//! agent runs in a network namespace of the benchmark's own with the
//! nftables backend; the failures are written to its tailed auth log, ten
//! per address for 1,000 addresses, 100 addresses a second. No peer is
//! measured in the same run (fail2ban's log-line-to-ban time is not done).
//! Then the cost of the set on accepted connections: 2,000 TCP connects
//! from the root namespace to a listener in the agent's, with the set
//! empty and with 10,000 elements.
//!
//! Needs root, iproute2 and nftables, and the binaries of the same profile.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use super::{Benchmark, Figure, percentile};
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

    let started = Instant::now();
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    for step in 0..ADDRESSES / PER_STEP {
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
        let mut text = String::new();
        for index in step * PER_STEP..(step + 1) * PER_STEP {
            for attempt in 0..10 {
                text.push_str(&format!(
                    "{stamp} {name} sshd[{index}]: Failed password for root from {} port {} ssh2\n",
                    address(index),
                    10_000 + attempt
                ));
            }
        }
        file.write_all(text.as_bytes()).unwrap();
        let due = STEP * (step as u32 + 1);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
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
    let blocked: HashMap<String, i64> = blocked_lines()
        .iter()
        .filter_map(|value| {
            Some((
                value["address"].as_str()?.to_string(),
                log_time_ms(value["timestamp"].as_str()?)?,
            ))
        })
        .collect();
    let incidents = rusqlite::Connection::open(collector.data_dir.join("incidents.db")).unwrap();
    let mut statement = incidents
        .prepare("SELECT address, start_ms FROM decisions")
        .unwrap();
    let decided: Vec<(String, i64)> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .filter_map(Result::ok)
        .collect();
    let mut latencies: Vec<f64> = decided
        .iter()
        .filter_map(|(address, start_ms)| Some((blocked.get(address)? - start_ms) as f64))
        .collect();
    latencies.sort_by(f64::total_cmp);
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
    let mut figures = vec![
        Figure::new("response_latency_p50", percentile(&latencies, 0.50), "ms"),
        Figure::new("response_latency_p99", percentile(&latencies, 0.99), "ms"),
        Figure::new(
            "response_latency_max",
            latencies.last().copied().unwrap_or(f64::NAN),
            "ms",
        ),
        Figure::new("response_decisions", decided.len() as f64, "decisions"),
        Figure::new("response_blocked", latencies.len() as f64, "blocks"),
        Figure::new("response_kernel_set_size", in_kernel as f64, "elements"),
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
