//! One agent's certificate speaks for one host (issue 21, item 2): with
//! `mallory-host`'s key, events claiming another enrolled host, samples
//! labelled with its name, the collector's own metric families and event
//! kinds, and devices bound to another agent are all held to what the
//! certificate may say, through the real ingest listener.

use countywatch_e2e::Collector;
use countywatch_e2e::http::{post_batch, sample_value};
use countywatch_wire::{
    Batch, Event, EventKind, EventSource, MetricFamily, MetricKind, WIRE_VERSION,
};

use crate::incidents::collector_cli;

fn batch(agent: &str, seq: u64, metrics: Vec<MetricFamily>, events: Vec<Event>) -> Batch {
    Batch {
        version: WIRE_VERSION,
        agent: agent.to_string(),
        seq,
        collected_at_ms: 0,
        metrics,
        events,
    }
}

fn event(host: &str, source: EventSource, kind: EventKind, device: Option<&str>) -> Event {
    let mut event = Event::new(1_000, source, kind);
    event.host = host.to_string();
    event.fields.device = device.map(str::to_string);
    event.raw = format!("claimed {host}");
    event
}

/// The hosts of `agent`'s stored events, oldest first.
fn stored_hosts(collector: &Collector, agent: &str) -> Vec<String> {
    let database = collector.database();
    let mut statement = database
        .prepare("SELECT body FROM events WHERE agent = ?1 ORDER BY id")
        .unwrap();
    statement
        .query_map([agent], |row| row.get::<_, String>(0))
        .unwrap()
        .map(|body| {
            let event: Event = serde_json::from_str(&body.unwrap()).unwrap();
            event.host
        })
        .collect()
}

fn counter(collector: &Collector, series: &str) -> f64 {
    sample_value(&collector.metrics(), series).unwrap_or(-1.0)
}

#[test]
fn an_agent_cannot_speak_for_another_host_nor_as_the_collector() {
    let collector = Collector::start();
    let mallory = collector.enrolled_identity("mallory-host");
    let victim = collector.enrolled_identity("victim-host");

    // An event claiming the other enrolled host is stored as the sender's,
    // and so is one claiming the collector; a sample labelled with the
    // other host's name is dropped.
    let mut load = MetricFamily::new("node_load1", "1m load average.", MetricKind::Gauge);
    load.push(&[], 0.5);
    load.push(&[("device_instance", "victim-host")], 99.0);
    let spoofed = batch(
        "mallory-host",
        1,
        vec![load],
        vec![
            event(
                "victim-host",
                EventSource::Auth,
                EventKind::SshLoginFailed,
                None,
            ),
            event(
                "collector",
                EventSource::Auth,
                EventKind::SshLoginFailed,
                None,
            ),
        ],
    );
    let response = post_batch(collector.ingest_addr, mallory.path(), &spoofed);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        stored_hosts(&collector, "mallory-host"),
        ["mallory-host", "mallory-host"]
    );
    let metrics = collector.metrics();
    assert!(
        !metrics
            .lines()
            .any(|line| line.starts_with("node_load1{") && line.contains("victim-host")),
        "{metrics}"
    );
    assert_eq!(
        sample_value(
            &metrics,
            "node_load1{instance=\"mallory-host\",job=\"countywatch\"}"
        ),
        Some(0.5)
    );
    assert_eq!(
        counter(
            &collector,
            "countywatch_ingest_rehosted_total{reason=\"claimed_host\"}"
        ),
        2.0
    );
    assert_eq!(
        counter(
            &collector,
            "countywatch_ingest_rehosted_total{reason=\"device_is_agent\"}"
        ),
        1.0
    );

    // The collector's own families and kinds are refused whole, counted.
    let mut up = MetricFamily::new("countywatch_agent_up", "up", MetricKind::Gauge);
    up.push(&[("instance", "victim-host")], 0.0);
    let own_family = batch("mallory-host", 2, vec![up], Vec::new());
    let response = post_batch(collector.ingest_addr, mallory.path(), &own_family);
    assert_eq!(response.status, 400, "{}", response.body);
    assert!(
        response.body.contains("countywatch_agent_up"),
        "{}",
        response.body
    );
    let own_kind = batch(
        "mallory-host",
        3,
        Vec::new(),
        vec![event(
            "collector",
            EventSource::Auth,
            EventKind::WebLoginFailed,
            None,
        )],
    );
    let response = post_batch(collector.ingest_addr, mallory.path(), &own_kind);
    assert_eq!(response.status, 400, "{}", response.body);
    assert!(
        response.body.contains("web_login_failed"),
        "{}",
        response.body
    );
    assert_eq!(
        counter(
            &collector,
            "countywatch_ingest_requests_total{result=\"reserved\"}"
        ) + counter(
            &collector,
            "countywatch_ingest_requests_total{result=\"bad_request\"}"
        ),
        2.0
    );
    assert_eq!(collector.event_count("collector", "web_login_failed"), 0);

    // A device is bound to the first agent reporting it; the other agent's
    // events about it stay its own until an admin moves the device.
    let switch = |agent: &str, seq: u64| {
        batch(
            agent,
            seq,
            Vec::new(),
            vec![event(
                "core-sw1",
                EventSource::Snmp,
                EventKind::InterfaceDown,
                Some("core-sw1"),
            )],
        )
    };
    assert_eq!(
        post_batch(
            collector.ingest_addr,
            mallory.path(),
            &switch("mallory-host", 4)
        )
        .status,
        200
    );
    assert_eq!(
        post_batch(
            collector.ingest_addr,
            victim.path(),
            &switch("victim-host", 1)
        )
        .status,
        200
    );
    let listed = collector_cli(&collector.data_dir, &["agents", "devices", "list"]);
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        "core-sw1\tmallory-host\n"
    );
    let moved = collector_cli(
        &collector.data_dir,
        &[
            "agents",
            "devices",
            "move",
            "core-sw1",
            "--to",
            "victim-host",
        ],
    );
    assert!(moved.status.success(), "{moved:?}");
    assert_eq!(
        post_batch(
            collector.ingest_addr,
            victim.path(),
            &switch("victim-host", 2)
        )
        .status,
        200
    );
    assert_eq!(
        stored_hosts(&collector, "victim-host"),
        ["victim-host", "core-sw1"]
    );
    // A device may not take an enrolled agent's name.
    let refused = collector_cli(
        &collector.data_dir,
        &[
            "agents",
            "devices",
            "move",
            "mallory-host",
            "--to",
            "victim-host",
        ],
    );
    assert!(!refused.status.success());
    assert_eq!(
        counter(
            &collector,
            "countywatch_ingest_rehosted_total{reason=\"device_bound_elsewhere\"}"
        ),
        1.0
    );
}
