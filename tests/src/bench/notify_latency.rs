//! Notification latency: from an alert reaching the notifier's entry point
//! (the collector's `POST /api/v2/alerts`, which calls the same
//! `Notifier::submit` the rule engines call) to a real SMTP server
//! (aiosmtpd) accepting the email, with `group_wait: 0s` and every alert
//! its own group. 1,000 alerts paced at 50/s give p50/p99/max; then a
//! burst of 1,000 alerts in one request gives the sustained email rate.
//! No peer is measured in the same run.
//!
//! Needs the release binaries: `cargo build --release --bins` first.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::{Benchmark, Figure, percentile};
use crate::Collector;
use crate::notify_peers::{SmtpServer, post_alerts};
use crate::process::wait_until;

/// Registration.
pub const BENCHMARK: Benchmark = Benchmark {
    name: "notify_latency",
    about: "alert to SMTP acceptance: p50/p99 over 1,000 alerts at 50/s, then a 1,000-alert burst",
    run,
};

const ALERTS: usize = 1_000;
const PACE: Duration = Duration::from_millis(20);

fn unix_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs_f64())
        .unwrap_or(0.0)
}

/// The instance label from a subject `[FIRING:1] alertname=..., instance=X`.
fn instance(message: &serde_json::Value) -> Option<String> {
    let subject = message["subject"].as_str()?;
    let start = subject.find("instance=")? + "instance=".len();
    Some(subject[start..].split(',').next()?.trim().to_string())
}

fn run() -> Vec<Figure> {
    let smtp = SmtpServer::plain();
    let config = format!(
        "notify:\n  accept_alerts_api: true\n  route:\n    receiver: mail\n    group_by: ['...']\n    group_wait: 0s\n  receivers:\n  - name: mail\n    email_configs:\n    - to: [ops@county.test]\n      from: alerts@county.test\n      smarthost: {}\n      tls: none\n",
        smtp.addr
    );
    let collector = Collector::start_with(Some(&config), &[]);
    let mut sent_at: HashMap<String, f64> = HashMap::new();
    let started = Instant::now();
    for index in 0..ALERTS {
        let host = format!("paced{index:04}");
        let alert = json!([{"labels": {"alertname": "BenchLatency", "instance": host}}]);
        sent_at.insert(host, unix_seconds());
        post_alerts(collector.http_addr, &alert);
        let due = PACE * (index as u32 + 1);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    wait_until(Duration::from_secs(120), || smtp.messages().len() >= ALERTS);
    let mut latencies: Vec<f64> = smtp
        .messages()
        .iter()
        .filter_map(|message| {
            let sent = sent_at.get(&instance(message)?)?;
            Some((message["received_at"].as_f64()? - sent) * 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let delivered = latencies.len();

    let burst: Vec<serde_json::Value> = (0..ALERTS)
        .map(|index| json!({"labels": {"alertname": "BenchBurst", "instance": format!("burst{index:04}")}}))
        .collect();
    let burst_started = Instant::now();
    post_alerts(collector.http_addr, &json!(burst));
    wait_until(Duration::from_secs(300), || {
        smtp.messages().len() >= delivered + ALERTS
    });
    let burst_seconds = burst_started.elapsed().as_secs_f64();
    let burst_delivered = smtp.messages().len() - delivered;

    vec![
        Figure::new("notify_latency_p50", percentile(&latencies, 0.50), "ms"),
        Figure::new("notify_latency_p99", percentile(&latencies, 0.99), "ms"),
        Figure::new(
            "notify_latency_max",
            latencies.last().copied().unwrap_or(f64::NAN),
            "ms",
        ),
        Figure::new("notify_paced_delivered", delivered as f64, "emails"),
        Figure::new(
            "notify_burst_emails_per_second",
            burst_delivered as f64 / burst_seconds,
            "emails/s",
        ),
        Figure::new("notify_burst_delivered", burst_delivered as f64, "emails"),
    ]
}
