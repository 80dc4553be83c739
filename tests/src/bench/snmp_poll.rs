//! SNMP polling throughput: how many device polls per second the agent's
//! SNMP probe completes against Debian's `snmpd` on loopback, side by side
//! with Debian's `prometheus-snmp-exporter` scraping the same snmpd with the
//! same `if_mib` module, the same number of devices at once.
//!
//! The probe is driven through the agent library (`SnmpProbe::collect`,
//! every device due every round), so the figure is the probe's, not the
//! agent's interval. One snmpd answers every "device", so both figures are
//! bounded by it; the ratio says whether our client side costs more than
//! snmp_exporter's. The work is not identical: the probe walks the 14
//! IF-MIB columns it reports, snmp_exporter walks both whole tables.
//!
//! Needs `snmpd` and, for the peer figure, `prometheus-snmp-exporter`
//! (`tests/run.sh` installs both).

use std::time::{Duration, Instant};

use countywatch_agent::probe::Probe;
use countywatch_agent::probe::snmp::SnmpProbe;

use super::{Benchmark, Figure};
use crate::peer::{SNMP_COMMUNITY, SnmpExporter, Snmpd};

/// Registration.
pub const BENCHMARK: Benchmark = Benchmark {
    name: "snmp_poll",
    about: "IF-MIB polls per second of 20 devices on one snmpd (vs snmp_exporter)",
    run,
};

/// Devices polled at once.
const DEVICES: usize = 20;
/// Rounds of polling every device.
const ROUNDS: usize = 10;

fn run() -> Vec<Figure> {
    let snmpd = Snmpd::start("bench-switch");
    let ours = probe_polls_per_second(&snmpd.address);
    let mut figure = Figure::new("snmp_polls_per_second", ours, "polls/s");
    if std::process::Command::new("prometheus-snmp-exporter")
        .arg("--version")
        .output()
        .is_ok()
    {
        let exporter = SnmpExporter::start();
        figure = figure.with_peer(
            "snmp_exporter",
            exporter_polls_per_second(&exporter, &snmpd),
        );
    }
    vec![figure]
}

/// Polls per second of the agent's probe, `DEVICES` at once.
fn probe_polls_per_second(address: &str) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let mut config = String::from("probes:\n  timeout: 30s\n  snmp:\n    devices:\n");
    for index in 0..DEVICES {
        config.push_str(&format!(
            "      - {{name: bench-{index}, address: \"{address}\", version: v2c, community: {SNMP_COMMUNITY}, timeout: 5s, retries: 1}}\n"
        ));
    }
    let path = dir.path().join("agent.yaml");
    std::fs::write(&path, config).unwrap();
    let config = countywatch_agent::config::Config::load(&path).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Every device is due at every collect: the interval is zero.
    let mut probe = SnmpProbe::new(&config.probes.snmp, Duration::from_secs(30), Duration::ZERO);
    runtime.block_on(async move {
        tokio::task::spawn_blocking(move || {
            let mut families = Vec::new();
            // One warm-up round: clients made, first answers cached by snmpd.
            probe.collect(&mut families).unwrap();
            let started = Instant::now();
            for _ in 0..ROUNDS {
                families.clear();
                probe.collect(&mut families).unwrap();
                let up = families
                    .iter()
                    .find(|family| family.name == "snmp_up")
                    .unwrap();
                assert!(
                    up.samples.iter().all(|sample| sample.value == 1.0),
                    "every device answered"
                );
            }
            (DEVICES * ROUNDS) as f64 / started.elapsed().as_secs_f64()
        })
        .await
        .unwrap()
    })
}

/// Scrapes per second of snmp_exporter's `if_mib` module, `DEVICES` at once.
fn exporter_polls_per_second(exporter: &SnmpExporter, snmpd: &Snmpd) -> f64 {
    let scrape_all = || {
        std::thread::scope(|scope| {
            let scrapes: Vec<_> = (0..DEVICES)
                .map(|_| scope.spawn(|| exporter.scrape(&snmpd.address)))
                .collect();
            for scrape in scrapes {
                let text = scrape.join().unwrap();
                assert!(text.contains("ifHCInOctets{"), "{text}");
            }
        });
    };
    scrape_all();
    let started = Instant::now();
    for _ in 0..ROUNDS {
        scrape_all();
    }
    (DEVICES * ROUNDS) as f64 / started.elapsed().as_secs_f64()
}
