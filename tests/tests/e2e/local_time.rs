//! Log times on a server whose clock is local time: the real agent under
//! `TZ=Asia/Shanghai` reads an RFC 3164 `auth.log` line (no zone, no year)
//! as Shanghai time, so the stored event carries the true instant; the same
//! line read by an agent under `TZ=UTC` lies 8 hours in the future, so it
//! is stamped with the time it was read and counted as clock skew.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use countywatch_e2e::Collector;
use countywatch_e2e::process::wait_until;

use crate::events::{config, rfc3164_stamp, start_agent_wrapped, stored};

#[test]
fn an_agent_under_tz_asia_shanghai_stores_the_true_instant_and_one_under_utc_counts_skew() {
    let collector = Collector::start();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // Written an hour ago by a server whose clock is Shanghai time.
    let instant = now - 3_600;
    let line = format!(
        // Asia/Shanghai is UTC+8 all year (no summer time since 1991).
        "{} county-db sshd[4242]: Failed password for root from 203.0.113.9 port 40000 ssh2\n",
        rfc3164_stamp(instant, 8)
    );
    let mut agents = Vec::new();
    for (name, zone) in [("tz-shanghai", "Asia/Shanghai"), ("tz-utc", "UTC")] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("auth.log");
        std::fs::write(&log, &line).unwrap();
        let tz = format!("TZ={zone}");
        let agent = start_agent_wrapped(name, &collector, &config(&log), &["env", &tz]);
        agents.push((dir, agent));
    }
    let mut events = Vec::new();
    wait_until(Duration::from_secs(60), || {
        events = ["tz-shanghai", "tz-utc"]
            .map(|name| stored(&collector, name, "auth"))
            .to_vec();
        events.iter().all(|stored| !stored.is_empty())
    });
    assert_eq!(events[0].len(), 1, "{events:?}");
    assert_eq!(events[1].len(), 1, "{events:?}");
    assert_eq!(
        events[0][0]["timestamp_ms"].as_i64(),
        Some(instant * 1_000),
        "Shanghai: the true instant"
    );
    // Under UTC the line reads as 7 hours ahead: stamped when read.
    let read_at = events[1][0]["timestamp_ms"].as_i64().unwrap();
    assert!(
        (now * 1_000 - 5_000..now * 1_000 + 120_000).contains(&read_at),
        "UTC: stamped when read, not {read_at}"
    );
    assert_eq!(events[1][0]["raw"].as_str(), Some(line.trim_end()));
    let skew = |agent: &str| {
        countywatch_e2e::http::sample_value(
            &collector.metrics(),
            &format!(
                "countywatch_agent_events_clock_skew_total{{instance=\"{agent}\",job=\"countywatch\",source=\"auth\"}}"
            ),
        )
    };
    wait_until(Duration::from_secs(30), || {
        skew("tz-utc") == Some(1.0) && skew("tz-shanghai").is_some()
    });
    assert_eq!(skew("tz-utc"), Some(1.0));
    assert_eq!(skew("tz-shanghai"), Some(0.0));
    let (_, utc_agent) = &agents[1];
    assert!(
        utc_agent.logs.wait_for(
            "stamped more than 5 minutes in the future",
            Duration::from_secs(10)
        ),
        "the skew is logged"
    );
}
