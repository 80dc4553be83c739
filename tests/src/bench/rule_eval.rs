//! Evaluating the shipped host pack (`rules/packs/host.yaml`) over 1,000
//! simulated hosts with node_exporter-shaped series, against promtool.
//!
//! Both engines run the same generated unit-test file twice: once with one
//! evaluation interval per hour (2 evaluations) and once every minute
//! (61 evaluations). Subtracting the two timings removes process start and
//! loading, leaving the cost of 59 group evaluations; the figure is that
//! divided by 59. Memory per series and per sample is the countywatch
//! store's own accounting after loading one hour of 15 s samples: all of
//! it (labels, index, chunks) per series and per sample, and the
//! compressed sample data alone per sample.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use countywatch_rules::group::{EvalOptions, Group};
use countywatch_rules::rulefmt;
use countywatch_rules::storage::Storage;
use countywatch_rules::unittest::{self, notation};

use super::{Benchmark, Figure};

/// Registration.
pub const BENCHMARK: Benchmark = Benchmark {
    name: "rule_eval",
    about: "host pack over 1000 hosts x 1 h of 15 s samples, vs promtool test rules",
    run,
};

const HOSTS: usize = 1000;
/// One hour of 15 s samples is 241 points (0 to 60 m inclusive).
const STEPS: usize = 240;

/// `(series, values)` of one simulated host, in promtool notation.
fn host_series(host: usize) -> Vec<(String, String)> {
    let instance = format!("host{host:04}");
    let base = format!("instance=\"{instance}\", job=\"node\"");
    let mut series = Vec::new();
    for cpu in 0..2 {
        for (mode, step) in [("idle", 13.5), ("user", 1.0), ("system", 0.5)] {
            series.push((
                format!("node_cpu_seconds_total{{{base}, cpu=\"{cpu}\", mode=\"{mode}\"}}"),
                format!("{}+{step}x{STEPS}", host * 10),
            ));
        }
    }
    let available = if host.is_multiple_of(10) { 50 } else { 500 };
    series.push((
        format!("node_memory_MemAvailable_bytes{{{base}}}"),
        format!("{available}x{STEPS}"),
    ));
    series.push((
        format!("node_memory_MemTotal_bytes{{{base}}}"),
        format!("1000x{STEPS}"),
    ));
    for (mount, fstype) in [("/", "ext4"), ("/data", "xfs")] {
        let labels = format!("{base}, mountpoint=\"{mount}\", fstype=\"{fstype}\", device=\"sda\"");
        let falling = if host.is_multiple_of(7) {
            "100-0.1"
        } else {
            "900+0"
        };
        series.push((
            format!("node_filesystem_avail_bytes{{{labels}}}"),
            format!("{falling}x{STEPS}"),
        ));
        series.push((
            format!("node_filesystem_size_bytes{{{labels}}}"),
            format!("1000x{STEPS}"),
        ));
        series.push((
            format!("node_filesystem_readonly{{{labels}}}"),
            format!("0x{STEPS}"),
        ));
    }
    series.push((
        format!("node_load5{{{base}}}"),
        format!("{}x{STEPS}", host % 5),
    ));
    series.push((
        format!("node_timex_offset_seconds{{{base}}}"),
        format!("0.001x{STEPS}"),
    ));
    for unit in ["ssh.service", "cron.service", "nginx.service"] {
        let failed = if host.is_multiple_of(13) && unit == "nginx.service" {
            1
        } else {
            0
        };
        series.push((
            format!("node_systemd_unit_state{{{base}, name=\"{unit}\", state=\"failed\"}}"),
            format!("{failed}x{STEPS}"),
        ));
    }
    series.push((
        format!("node_vmstat_oom_kill{{{base}}}"),
        format!("0x{STEPS}"),
    ));
    series.push((
        format!("node_boot_time_seconds{{{base}}}"),
        format!("1700000000x{STEPS}"),
    ));
    series
}

fn test_file(evaluation_interval: &str) -> String {
    let mut text = format!(
        "rule_files:\n  - host.yaml\nevaluation_interval: {evaluation_interval}\ntests:\n  - interval: 15s\n    input_series:\n"
    );
    for host in 0..HOSTS {
        for (series, values) in host_series(host) {
            let _ = writeln!(
                text,
                "      - series: '{series}'\n        values: '{values}'"
            );
        }
    }
    text.push_str("    promql_expr_test:\n      - expr: vector(1)\n        eval_time: 60m\n        exp_samples:\n          - labels: '{}'\n            value: 1\n");
    text
}

fn time(program: impl FnOnce() -> bool) -> f64 {
    let started = Instant::now();
    let passed = program();
    assert!(passed, "the benchmark's unit test failed");
    started.elapsed().as_secs_f64()
}

fn run() -> Vec<Figure> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."));
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("no temporary directory: {error}"));
    let pack = repo.join("rules/packs/host.yaml");
    std::fs::copy(&pack, dir.path().join("host.yaml")).unwrap_or_else(|error| panic!("{error}"));
    let sparse = dir.path().join("sparse.test.yaml");
    let dense = dir.path().join("dense.test.yaml");
    std::fs::write(&sparse, test_file("60m")).unwrap_or_else(|error| panic!("{error}"));
    std::fs::write(&dense, test_file("1m")).unwrap_or_else(|error| panic!("{error}"));

    let ours = |path: &Path| time(|| unittest::run_file(path).passed);
    let promtool = |path: &Path| {
        time(|| {
            Command::new("promtool")
                .args(["test", "rules"])
                .arg(path)
                .output()
                .map(|output| output.status.success())
                .unwrap_or(false)
        })
    };
    let our_per_evaluation = (ours(&dense) - ours(&sparse)) / 59.0;
    let promtool_per_evaluation = (promtool(&dense) - promtool(&sparse)) / 59.0;

    // Memory: the store after loading the same hour directly.
    let mut storage = Storage::default();
    for host in 0..HOSTS {
        for (series, values) in host_series(host) {
            let labels = unittest::parse_series(&series).unwrap_or_default();
            let slots = notation::expand(&values).unwrap_or_default();
            for (step, slot) in slots.into_iter().enumerate() {
                if let notation::Slot::Value(value) = slot {
                    let _ = storage.append(&labels, step as i64 * 15_000, value);
                }
            }
        }
    }
    let series = storage.series_count() as f64;
    let samples = storage.sample_count() as f64;
    let bytes = storage.approximate_bytes() as f64;
    let chunk_bytes = storage.chunk_bytes() as f64;

    // One evaluation of the pack at the end of the hour, in-process.
    let specs = rulefmt::load(&pack).unwrap_or_default();
    let mut groups: Vec<Group> = specs.into_iter().map(Group::new).collect();
    let options = EvalOptions::default();
    let started = Instant::now();
    let mut failures = 0;
    for group in &mut groups {
        failures += group.eval(&mut storage, 3_600_000, &options).len();
    }
    let full_hour = started.elapsed().as_secs_f64();
    assert_eq!(failures, 0, "rules failed during the benchmark");

    vec![
        Figure::new(
            "rule_eval_host_pack_per_evaluation",
            our_per_evaluation * 1e3,
            "ms",
        )
        .with_peer("promtool", promtool_per_evaluation * 1e3),
        Figure::new("rule_eval_host_pack_at_full_hour", full_hour * 1e3, "ms"),
        Figure::new("rule_store_series", series, "series"),
        Figure::new("rule_store_bytes_per_series", bytes / series, "bytes"),
        Figure::new("rule_store_bytes_per_sample", bytes / samples, "bytes"),
        Figure::new(
            "rule_store_chunk_bytes_per_sample",
            chunk_bytes / samples,
            "bytes",
        ),
    ]
}
