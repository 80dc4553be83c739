//! The county report's cost (issue 26): a month of 1,000 agents with 20
//! service probe targets each (21,000 series), batches every 5 minutes,
//! one target in a hundred flapping, folded into the collector's history
//! through `History::observe_batch` (what ingest calls for every stored
//! batch) and written hour by hour with `History::write` (what the
//! history task runs); then the report for that month gathered, built and
//! rendered as HTML, as `countywatch-collector report` does.
//!
//! Figures: the cost of folding one batch in; the write cost of one hour
//! (wall time, rows); `history.db`'s bytes per series, scaled to a year;
//! the report's generation time. The network path is not in these
//! figures (the `ingest` benchmark measures it). No peer.

use std::time::{Duration, Instant};

use countywatch_collector::history::History;
use countywatch_collector::incident::store::IncidentStore;
use countywatch_collector::registry::Registry;
use countywatch_collector::report::gather::{Range, Sources, gather};
use countywatch_notify::display::{Display, Language};
use countywatch_wire::{MetricFamily, MetricKind};

use super::{Benchmark, Figure};

/// Registration.
pub const BENCHMARK: Benchmark = Benchmark {
    name: "report_history",
    about: "history bytes per series per year, write cost per hour, report time: 1,000 agents x 20 services, one month",
    run,
};

const AGENTS: usize = 1_000;
const SERVICES: usize = 20;
const INTERVAL_MS: i64 = 5 * 60_000;
const HOUR_MS: i64 = 3_600_000;
/// November 2026 in Asia/Shanghai: 2026-11-01 00:00 +08:00.
const START_MS: i64 = 1_793_462_400_000;
const HOURS: i64 = 30 * 24;

fn batch(agent: usize, at: i64) -> Vec<MetricFamily> {
    let mut info = MetricFamily::new("countywatch_agent_info", "", MetricKind::Gauge);
    let department = format!("部门{}", agent % 12);
    info.push(&[("department", department.as_str())], 1.0);
    let mut success = MetricFamily::new("probe_success", "", MetricKind::Gauge);
    let mut status = MetricFamily::new("probe_http_status_code", "", MetricKind::Gauge);
    let mut expiry = MetricFamily::new("probe_ssl_earliest_cert_expiry", "", MetricKind::Gauge);
    for service in 0..SERVICES {
        let name = format!("svc-{service}");
        let labels = [
            ("name", name.as_str()),
            ("module", "http"),
            ("service", "政务服务网"),
        ];
        // One target in a hundred is down for the first 10 minutes of
        // every third hour.
        let flapping = (agent * SERVICES + service).is_multiple_of(100);
        let down = flapping && (at / HOUR_MS) % 3 == 0 && at % HOUR_MS < 10 * 60_000;
        success.push(&labels, if down { 0.0 } else { 1.0 });
        status.push(&labels, if down { 503.0 } else { 200.0 });
        expiry.push(&labels, (START_MS / 1000 + 90 * 86_400) as f64);
    }
    vec![info, success, status, expiry]
}

fn run() -> Vec<Figure> {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(
        dir.path(),
        Duration::from_secs(600),
        Duration::from_secs(400 * 86_400),
    )
    .unwrap();
    // The batches themselves are made outside the timed part.
    let mut observe = Duration::ZERO;
    let mut observed = 0_u64;
    let mut write = Duration::ZERO;
    let mut worst_write = Duration::ZERO;
    let mut rows = 0_usize;
    let mut writes = 0_u32;
    let batches: Vec<Vec<MetricFamily>> = (0..AGENTS).map(|agent| batch(agent, START_MS)).collect();
    let mut at = START_MS;
    while at < START_MS + HOURS * HOUR_MS {
        for (agent, metrics) in batches.iter().enumerate() {
            let fresh;
            let metrics = if (agent * SERVICES) % 100 < SERVICES {
                fresh = batch(agent, at);
                &fresh
            } else {
                metrics
            };
            let name = format!("agent-{agent:04}");
            let began = Instant::now();
            history.observe_batch(&name, at, at, metrics);
            observe += began.elapsed();
            observed += 1;
        }
        at += INTERVAL_MS;
        let began = Instant::now();
        let written = history.write(at, false).unwrap();
        let took = began.elapsed();
        if written > 0 {
            write += took;
            worst_write = worst_write.max(took);
            rows += written;
            writes += 1;
        }
    }
    history.write(at, true).unwrap();
    let series = (AGENTS * (SERVICES + 1)) as f64;
    let connection = rusqlite::Connection::open(dir.path().join("history.db")).unwrap();
    connection
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let bytes = std::fs::metadata(dir.path().join("history.db"))
        .unwrap()
        .len() as f64;
    let per_series_year = bytes / series / HOURS as f64 * 8_766.0;

    let display = Display::with_zone(
        jiff::tz::TimeZone::get("Asia/Shanghai").unwrap(),
        Language::Zh,
    );
    let store = IncidentStore::open(dir.path()).unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let sources = Sources {
        data_dir: dir.path(),
        store: &store,
        registry: &registry,
        silent_after: Duration::from_secs(600),
    };
    let range = Range::month("2026-11").unwrap();
    let began = Instant::now();
    let inputs = gather(&sources, &display, &range, None, START_MS + HOURS * HOUR_MS).unwrap();
    let report = countywatch_collector::report::build(&inputs, &display, Language::Zh);
    let page = countywatch_collector::report::html::render(
        &report,
        &countywatch_collector::report::texts::Texts::new(Language::Zh),
    );
    let report_time = began.elapsed();
    assert_eq!(report.services.len(), AGENTS * SERVICES);
    vec![
        Figure::new(
            "history_observe_per_batch",
            observe.as_secs_f64() * 1e6 / observed as f64,
            "us",
        ),
        Figure::new(
            "history_write_per_hour",
            write.as_secs_f64() * 1e3 / f64::from(writes.max(1)),
            "ms",
        ),
        Figure::new(
            "history_write_per_hour_worst",
            worst_write.as_secs_f64() * 1e3,
            "ms",
        ),
        Figure::new(
            "history_rows_per_hour",
            rows as f64 / f64::from(writes.max(1)),
            "rows",
        ),
        Figure::new(
            "history_bytes_per_series_per_year",
            per_series_year,
            "bytes",
        ),
        Figure::new("history_db_after_month", bytes / 1_048_576.0, "MiB"),
        Figure::new("report_month_1000_agents", report_time.as_secs_f64(), "s"),
        Figure::new("report_html_size", page.len() as f64 / 1_048_576.0, "MiB"),
    ]
}
