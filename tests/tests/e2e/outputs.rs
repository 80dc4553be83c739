//! Scale-out outputs against the real receivers (issue 14): Debian's
//! Prometheus as a remote_write receiver, Debian's rsyslog as a syslog
//! receiver over TCP and TLS.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use countywatch_e2e::Collector;
use countywatch_e2e::http::{post_batch, sample_value};
use countywatch_e2e::peer::{Prometheus, Rsyslog, TlsFiles};
use countywatch_e2e::process::wait_until;
use countywatch_wire::{
    Batch, Event, EventFields, EventKind, EventSource, MetricFamily, MetricKind, WIRE_VERSION,
};

/// How long the remote_write receiver is down: the two minutes issue 14
/// asks for.
const OUTAGE: Duration = Duration::from_secs(120);

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn metric_batch(agent: &str, seq: u64, at_ms: i64) -> Batch {
    let mut gauge = MetricFamily::new("cw_test_value", "Test gauge.", MetricKind::Gauge);
    gauge.push(&[("place", "东区")], seq as f64);
    let mut counter = MetricFamily::new(
        "cw_test_requests_total",
        "Test counter.",
        MetricKind::Counter,
    );
    counter.push(&[("code", "200")], seq as f64 * 10.0);
    Batch {
        version: WIRE_VERSION,
        agent: agent.to_string(),
        seq,
        collected_at_ms: at_ms,
        metrics: vec![gauge, counter],
        events: Vec::new(),
    }
}

#[test]
fn remote_write_reaches_prometheus_with_external_labels_and_catches_up_after_an_outage() {
    let mut prometheus = Prometheus::start_receiver();
    let config = format!(
        "outputs:\n  remote_write:\n    - name: central\n      url: {}\n      external_labels:\n        county: M\n      min_backoff: 100ms\n      max_backoff: 2s\n",
        prometheus.remote_write_url()
    );
    let collector = Collector::start_with(Some(&config), &[]);
    let identity = collector.enrolled_identity("rw-host");
    let first_ms = now_ms();
    let mut seq = 0u64;
    let mut last_ms = first_ms;
    let send = |seq: u64| {
        let at = now_ms();
        let response = post_batch(
            collector.ingest_addr,
            identity.path(),
            &metric_batch("rw-host", seq, at),
        );
        assert_eq!(response.status, 200, "{}", response.body);
        at
    };
    for _ in 0..5 {
        seq += 1;
        last_ms = send(seq);
        std::thread::sleep(Duration::from_secs(1));
    }
    let gauge =
        "cw_test_value{county=\"M\",instance=\"rw-host\",job=\"countywatch\",place=\"东区\"}";
    let at = |ms: i64| ms as f64 / 1000.0;
    assert!(
        wait_until(Duration::from_secs(30), || {
            prometheus.query(gauge, at(last_ms)) == vec![(labels(gauge), 5.0)]
        }),
        "{:?}",
        prometheus.query(gauge, at(last_ms))
    );
    let counter = "cw_test_requests_total{code=\"200\",county=\"M\",instance=\"rw-host\",job=\"countywatch\"}";
    assert_eq!(
        prometheus.query(counter, at(last_ms)),
        vec![(labels(counter), 50.0)]
    );

    // The receiver goes away for the outage; the agent keeps reporting.
    prometheus.stop();
    let outage_started = Instant::now();
    while outage_started.elapsed() < OUTAGE {
        seq += 1;
        last_ms = send(seq);
        std::thread::sleep(Duration::from_secs(1));
    }
    let pending = sample_value(
        &collector.metrics(),
        "countywatch_remote_write_pending_samples{output=\"central\"}",
    )
    .unwrap();
    assert!(pending >= 2.0 * (seq - 6) as f64, "pending {pending}");
    assert_eq!(
        collector
            .logs
            .count("cannot write to the remote_write receiver"),
        1,
        "logged once per outage, not per attempt"
    );

    prometheus.start_again();
    assert!(
        wait_until(Duration::from_secs(60), || {
            sample_value(
                &collector.metrics(),
                "countywatch_remote_write_pending_samples{output=\"central\"}",
            ) == Some(0.0)
        }),
        "the queue should drain once the receiver is back"
    );
    assert!(collector.logs.wait_for(
        "remote_write receiver reachable again",
        Duration::from_secs(5)
    ));

    // No gap: one sample per batch over the whole run, each with its value.
    let window = (last_ms - first_ms) / 1000 + 5;
    let count = format!("count_over_time({gauge}[{window}s])");
    let sum = format!("sum_over_time({gauge}[{window}s])");
    assert!(
        wait_until(Duration::from_secs(30), || {
            prometheus
                .query(&count, at(last_ms) + 0.001)
                .first()
                .map(|(_, value)| *value)
                == Some(seq as f64)
        }),
        "{count}: {:?}, expected {seq}",
        prometheus.query(&count, at(last_ms) + 0.001)
    );
    assert_eq!(
        prometheus.query(&sum, at(last_ms) + 0.001)[0].1,
        (seq * (seq + 1) / 2) as f64
    );
    let text = collector.metrics();
    assert_eq!(
        sample_value(
            &text,
            "countywatch_remote_write_samples_total{output=\"central\",result=\"sent\"}"
        ),
        Some(2.0 * seq as f64),
        "{text}"
    );
    assert_eq!(
        sample_value(
            &text,
            "countywatch_remote_write_samples_total{output=\"central\",result=\"dropped\"}"
        ),
        Some(0.0)
    );
    assert!(
        sample_value(
            &text,
            "countywatch_remote_write_last_success_timestamp_seconds{output=\"central\"}"
        )
        .unwrap()
            >= at(last_ms) - 1.0
    );
}

#[test]
fn recording_rule_series_and_alerts_reach_prometheus_with_external_labels() {
    let prometheus = Prometheus::start_receiver();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        "groups:\n  - name: computed\n    interval: 1s\n    rules:\n      - record: place:cw_test_value:sum\n        expr: sum by (place) (cw_test_value)\n      - alert: CwTestValuePositive\n        expr: cw_test_value > 0\n        labels:\n          severity: info\n",
    )
    .unwrap();
    let config = format!(
        "rules:\n  files: [{:?}]\n  evaluation_interval: 1s\noutputs:\n  remote_write:\n    - name: central\n      url: {}\n      external_labels:\n        county: M\n      min_backoff: 100ms\n      max_backoff: 2s\n",
        rules.display().to_string(),
        prometheus.remote_write_url()
    );
    let collector = Collector::start_with(Some(&config), &[]);
    let identity = collector.enrolled_identity("rw-rules");
    let started_ms = now_ms();
    for seq in 1..=3 {
        let response = post_batch(
            collector.ingest_addr,
            identity.path(),
            &metric_batch("rw-rules", seq, now_ms()),
        );
        assert_eq!(response.status, 200, "{}", response.body);
        std::thread::sleep(Duration::from_secs(1));
    }
    // The last batch's gauge (3) stays the newest sample the rules read,
    // so every later evaluation records 3 and keeps the alert firing.
    let now = || now_ms() as f64 / 1000.0;
    let recorded = "place:cw_test_value:sum{county=\"M\",place=\"东区\"}";
    assert!(
        wait_until(Duration::from_secs(30), || {
            prometheus.query(recorded, now()) == vec![(labels(recorded), 3.0)]
        }),
        "{:?}",
        prometheus.query(recorded, now())
    );
    let alert = "ALERTS{alertname=\"CwTestValuePositive\",alertstate=\"firing\",county=\"M\",instance=\"rw-rules\",job=\"countywatch\",place=\"东区\",severity=\"info\"}";
    assert!(
        wait_until(Duration::from_secs(30), || {
            prometheus.query(alert, now()) == vec![(labels(alert), 1.0)]
        }),
        "{:?}",
        prometheus.query("ALERTS", now())
    );
    // ALERTS_FOR_STATE carries when the alert became active, in seconds:
    // after this test started, and before now.
    let for_state = prometheus.query(
        "ALERTS_FOR_STATE{alertname=\"CwTestValuePositive\",county=\"M\",instance=\"rw-rules\"}",
        now(),
    );
    assert_eq!(for_state.len(), 1, "{for_state:?}");
    let active_at = for_state[0].1;
    assert!(
        active_at >= (started_ms / 1000) as f64 && active_at <= now(),
        "active at {active_at}"
    );
    // Agent samples still arrive beside the computed ones.
    let gauge =
        "cw_test_value{county=\"M\",instance=\"rw-rules\",job=\"countywatch\",place=\"东区\"}";
    assert_eq!(prometheus.query(gauge, now()), vec![(labels(gauge), 3.0)]);
}

/// The label set of a selector written as `name{a="b",...}`.
fn labels(selector: &str) -> BTreeMap<String, String> {
    let (name, rest) = selector.split_once('{').unwrap();
    let mut labels = BTreeMap::from([("__name__".to_string(), name.to_string())]);
    for pair in rest.trim_end_matches('}').split(',') {
        let (label, value) = pair.split_once('=').unwrap();
        labels.insert(label.to_string(), value.trim_matches('"').to_string());
    }
    labels
}

/// The `reason` every test event carries: quotes, a bracket, a backslash
/// and Chinese, everything RFC 5424 structured data must escape or keep.
const REASON: &str = "quotes \" brackets ] backslash \\ 中文";

fn auth_event(n: usize) -> Event {
    let mut event = Event::new(now_ms(), EventSource::Auth, EventKind::SshLoginFailed);
    event.fields = EventFields {
        user: Some(format!("张三{n}")),
        src_ip: Some("192.0.2.7".parse().unwrap()),
        reason: Some(REASON.to_string()),
        count: Some(n as u32),
        ..EventFields::default()
    };
    event.raw = format!("Failed password for 张三{n} from 192.0.2.7 port 22 ssh2 第{n}次");
    event
}

fn fim_event(n: usize) -> Event {
    let mut event = Event::new(now_ms(), EventSource::Fim, EventKind::FileChanged);
    event.fields = EventFields {
        path: Some("/etc/公文/passwd".to_string()),
        count: Some(n as u32),
        ..EventFields::default()
    };
    event
}

fn event_batch(seq: u64, events: Vec<Event>) -> Batch {
    Batch {
        version: WIRE_VERSION,
        agent: "fw-host".into(),
        seq,
        collected_at_ms: now_ms(),
        metrics: Vec::new(),
        events,
    }
}

/// Parses RFC 5424 structured data as rsyslog passes it on:
/// `[id k="v" ...][id ...]`, with `\"`, `\\` and `\]` escapes.
fn parse_structured_data(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut elements = BTreeMap::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        assert_eq!(c, '[', "{text}");
        let mut id = String::new();
        while let Some(&c) = chars.peek() {
            if c == ' ' || c == ']' {
                break;
            }
            id.push(c);
            chars.next();
        }
        let mut params = BTreeMap::new();
        loop {
            match chars.next() {
                Some(']') => break,
                Some(' ') => {
                    let mut name = String::new();
                    for c in chars.by_ref() {
                        if c == '=' {
                            break;
                        }
                        name.push(c);
                    }
                    assert_eq!(chars.next(), Some('"'), "{text}");
                    let mut value = String::new();
                    loop {
                        match chars.next().unwrap() {
                            '\\' => value.push(chars.next().unwrap()),
                            '"' => break,
                            c => value.push(c),
                        }
                    }
                    params.insert(name, value);
                }
                other => panic!("unexpected {other:?} in {text}"),
            }
        }
        elements.insert(id, params);
    }
    elements
}

/// Checks every line rsyslog wrote against the events sent and returns
/// the `n` field of each, asserting that no event id arrived twice.
fn check_received(lines: &[serde_json::Value], facility_and_severity: &str) -> Vec<usize> {
    let mut ids = BTreeSet::new();
    let mut numbers = Vec::new();
    for line in lines {
        assert_eq!(line["hostname"], "fw-host", "{line}");
        assert_eq!(line["app"], "countywatch", "{line}");
        assert_eq!(line["pri"], facility_and_severity, "{line}");
        let sd = parse_structured_data(line["sd"].as_str().unwrap());
        let own = &sd["countywatch@32473"];
        assert!(ids.insert(own["id"].clone()), "event {} twice", own["id"]);
        assert_eq!(own["agent"], "fw-host");
        assert_eq!(line["msgid"].as_str().unwrap(), own["kind"]);
        let fields = &sd["fields@32473"];
        let n: usize = fields["count"].parse().unwrap();
        let msg = line["msg"].as_str().unwrap().trim_start_matches('\u{feff}');
        match own["source"].as_str() {
            "auth" => {
                assert_eq!(fields["user"], format!("张三{n}"), "{line}");
                assert_eq!(fields["src_ip"], "192.0.2.7", "{line}");
                assert_eq!(fields["reason"], REASON, "{line}");
                assert_eq!(fields.len(), 4, "{line}");
                assert_eq!(msg, auth_event(n).raw, "{line}");
            }
            "fim" => assert_eq!(fields["path"], "/etc/公文/passwd"),
            other => panic!("unexpected source {other}"),
        }
        numbers.push(n);
    }
    numbers.sort_unstable();
    numbers
}

#[test]
fn events_reach_rsyslog_over_tcp_and_tls_once_each_with_fields_intact() {
    let tls_dir = tempfile::tempdir().unwrap();
    let tls = TlsFiles::create(tls_dir.path());
    let mut plain = Rsyslog::start(None);
    let secure = Rsyslog::start(Some(&tls));
    // The built-in detection packs stay off: the incident_changed events
    // they would add are forwarded too, and this test counts every line.
    let config = format!(
        "detection:\n  builtin: false\noutputs:\n  forward:\n    - name: siem-tcp\n      syslog:\n        address: {}\n      from_beginning: true\n      max_backoff: 1s\n    - name: siem-tls\n      syslog:\n        address: {}\n        facility: 13\n        tls:\n          ca_file: {}\n      filter:\n        sources: [auth]\n",
        plain.addr,
        secure.addr,
        tls.ca.display()
    );
    let collector = Collector::start_with(Some(&config), &[]);
    let identity = collector.enrolled_identity("fw-host");
    let mut events: Vec<Event> = (0..20).map(auth_event).collect();
    events.extend((20..25).map(fim_event));
    let response = post_batch(
        collector.ingest_addr,
        identity.path(),
        &event_batch(1, events),
    );
    assert_eq!(response.status, 200, "{}", response.body);

    assert!(
        wait_until(Duration::from_secs(30), || plain.received_events().len()
            >= 25
            && secure.received_events().len() >= 20),
        "plain {} secure {}",
        plain.received_events().len(),
        secure.received_events().len()
    );
    // authpriv (10) * 8 + warning (4); log audit (13) * 8 + warning.
    assert_eq!(
        check_received(&plain.received_events(), "84"),
        (0..25).collect::<Vec<_>>()
    );
    assert_eq!(
        check_received(&secure.received_events(), "108"),
        (0..20).collect::<Vec<_>>(),
        "the TLS output takes auth events only"
    );

    // The plain receiver goes away; events accepted meanwhile arrive once
    // it is back, and none twice.
    plain.stop();
    let response = post_batch(
        collector.ingest_addr,
        identity.path(),
        &event_batch(2, (25..35).map(auth_event).collect()),
    );
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(collector.logs.wait_for(
        "cannot forward events, will retry with backoff",
        Duration::from_secs(30)
    ));
    plain.start_again();
    assert!(
        wait_until(Duration::from_secs(30), || plain.received_events().len()
            >= 35),
        "{}",
        plain.received_events().len()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        check_received(&plain.received_events(), "84"),
        (0..35).collect::<Vec<_>>()
    );
    assert!(wait_until(Duration::from_secs(30), || secure
        .received_events()
        .len()
        >= 30));
    assert_eq!(
        check_received(&secure.received_events(), "108"),
        (0..20).chain(25..35).collect::<Vec<_>>()
    );
    // The TLS output also filters out the collector's audit checkpoints,
    // which the plain output (no filter) received.
    let checkpoints = plain.received().len() - plain.received_events().len();
    let text = collector.metrics();
    assert_eq!(
        sample_value(
            &text,
            "countywatch_forward_events_total{output=\"siem-tls\",result=\"filtered\"}"
        ),
        Some(5.0 + checkpoints as f64),
        "{text}"
    );
}

/// bcrypt of `county-secret` (cost 4), for Prometheus's `basic_auth_users`.
const PASSWORD_HASH: &str = "$2b$04$2hDEac6Hef3C8HNL15jsUOpHTD5n0VQkUvkIrnE5pYXNSPwMASESO";

#[test]
fn remote_write_over_mutual_tls_with_basic_auth_and_refusals_counted() {
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsFiles::create(dir.path());
    let prometheus = Prometheus::start_receiver_with_web_config(&format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\nbasic_auth_users:\n  countywatch: {PASSWORD_HASH}\n",
        tls.cert.display(),
        tls.key.display(),
        tls.ca.display()
    ));
    let password = dir.path().join("password");
    std::fs::write(&password, "county-secret\n").unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "guess\n").unwrap();
    let output = |name: &str, password_file: &std::path::Path| {
        format!(
            "    - name: {name}\n      url: https://{}/api/v1/write\n      external_labels:\n        county: M\n      basic_auth:\n        username: countywatch\n        password_file: {}\n      tls:\n        ca_file: {}\n        cert_file: {}\n        key_file: {}\n      min_backoff: 100ms\n      max_backoff: 1s\n",
            prometheus.addr,
            password_file.display(),
            tls.ca.display(),
            tls.client_cert.display(),
            tls.client_key.display()
        )
    };
    let config = format!(
        "outputs:\n  remote_write:\n{}{}",
        output("secure", &password),
        output("wrong-password", &wrong)
    );
    let collector = Collector::start_with(Some(&config), &[]);
    let identity = collector.enrolled_identity("tls-host");
    let mut last_ms = 0;
    for seq in 1..=3 {
        last_ms = now_ms();
        let response = post_batch(
            collector.ingest_addr,
            identity.path(),
            &metric_batch("tls-host", seq, last_ms),
        );
        assert_eq!(response.status, 200, "{}", response.body);
        std::thread::sleep(Duration::from_millis(200));
    }
    let counted = |output: &str, result: &str| {
        sample_value(
            &collector.metrics(),
            &format!(
                "countywatch_remote_write_samples_total{{output=\"{output}\",result=\"{result}\"}}"
            ),
        )
    };
    assert!(
        // At least once: under load a request whose answer came too late is
        // sent again and counted again, so "sent" may exceed 6; the query
        // below checks what Prometheus actually holds.
        wait_until(Duration::from_secs(60), || counted("secure", "sent")
            .is_some_and(|sent| sent >= 6.0)
            && counted("wrong-password", "rejected") == Some(6.0)),
        "sent {:?} rejected {:?}",
        counted("secure", "sent"),
        counted("wrong-password", "rejected")
    );
    assert!(
        collector
            .logs
            .contains("remote_write receiver refused a request")
    );

    // Read it back through the same TLS and authentication, with curl.
    let query = countywatch_e2e::peer::percent_encode(
        "cw_test_value{county=\"M\",instance=\"tls-host\",job=\"countywatch\"}",
    );
    let output = std::process::Command::new("curl")
        .args(["-s", "--max-time", "10", "-u", "countywatch:county-secret"])
        .arg("--cacert")
        .arg(&tls.ca)
        .arg("--cert")
        .arg(&tls.client_cert)
        .arg("--key")
        .arg(&tls.client_key)
        .arg(format!(
            "https://{}/api/v1/query?query={query}&time={:.3}",
            prometheus.addr,
            last_ms as f64 / 1000.0
        ))
        .output()
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&output.stdout)));
    assert_eq!(body["data"]["result"][0]["value"][1], "3", "{body}");
    assert_eq!(
        body["data"]["result"][0]["metric"]["place"], "东区",
        "{body}"
    );
}

#[test]
fn events_stored_while_the_receiver_is_down_survive_a_collector_restart() {
    let mut rsyslog = Rsyslog::start(None);
    // The built-in detection packs stay off: the incident_changed events
    // they would add are forwarded too, and this test counts every line.
    let config = format!(
        "detection:\n  builtin: false\noutputs:\n  forward:\n    - name: siem\n      syslog:\n        address: {}\n      max_backoff: 1s\n",
        rsyslog.addr
    );
    let collector = Collector::start_with(Some(&config), &[]);
    let identity = collector.enrolled_identity("fw-host");
    rsyslog.stop();
    let response = post_batch(
        collector.ingest_addr,
        identity.path(),
        &event_batch(1, (0..10).map(auth_event).collect()),
    );
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(collector.logs.wait_for(
        "cannot forward events, will retry with backoff",
        Duration::from_secs(30)
    ));
    let (ingest, enroll, data_dir) = (
        collector.ingest_addr,
        collector.enroll_addr,
        collector.data_dir.clone(),
    );
    let dir = collector.stop_keeping_data();

    rsyslog.start_again();
    let collector = Collector::restart(dir, &data_dir, ingest, enroll);
    let response = post_batch(
        collector.ingest_addr,
        identity.path(),
        &event_batch(2, (10..15).map(auth_event).collect()),
    );
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(
        wait_until(Duration::from_secs(30), || rsyslog.received_events().len()
            >= 15),
        "{}",
        rsyslog.received_events().len()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        check_received(&rsyslog.received_events(), "84"),
        (0..15).collect::<Vec<_>>(),
        "every event once, across the restart"
    );
}

#[test]
fn incident_transitions_are_forwarded_to_rsyslog() {
    let rsyslog = Rsyslog::start(None);
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/detection");
    let config = format!(
        "detection:\n  rule_files: [{:?}]\n  save_every: 1s\noutputs:\n  forward:\n    - name: siem\n      syslog:\n        address: {}\n      max_backoff: 1s\n      filter:\n        kinds: [incident_changed]\n",
        rules.display(),
        rsyslog.addr
    );
    let collector = Collector::start_with(Some(&config), &[]);
    let identity = collector.enrolled_identity("fw-host");
    // Twelve refused SSH passwords from one address within a minute: the
    // shipped ssh_brute_force rule opens one incident.
    let now = now_ms();
    let events: Vec<Event> = (0..12)
        .map(|n| {
            let mut event = Event::new(
                now - 60_000 + n * 1_000,
                EventSource::Auth,
                EventKind::SshLoginFailed,
            );
            // One user name, so that password spraying (distinct users)
            // stays quiet and exactly one rule fires.
            event.fields.user = Some("admin".to_string());
            event.fields.src_ip = Some("198.51.100.23".parse().unwrap());
            event.raw = format!("Failed password for admin from 198.51.100.23 port {n}");
            event
        })
        .collect();
    let response = post_batch(
        collector.ingest_addr,
        identity.path(),
        &event_batch(1, events),
    );
    assert_eq!(response.status, 200, "{}", response.body);
    let forwarded = |status: &str| {
        rsyslog
            .received_events()
            .iter()
            .filter(|line| line["msgid"] == "incident_changed")
            .filter_map(|line| {
                let sd = parse_structured_data(line["sd"].as_str()?);
                let fields = sd.get("fields@32473")?.clone();
                (fields.get("status").map(String::as_str) == Some(status)).then_some(fields)
            })
            .collect::<Vec<_>>()
    };
    assert!(
        wait_until(Duration::from_secs(60), || !forwarded("open").is_empty()),
        "no incident_changed arrived; collector log:\n{}",
        collector.logs.all().join("\n")
    );
    let opened = forwarded("open");
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(opened[0]["rule_id"], "ssh_brute_force");
    assert_eq!(opened[0]["severity"], "high");
    assert_eq!(opened[0]["user"], "detection");
    let incident: i64 = opened[0]["incident_id"].parse().unwrap();

    // An officer acknowledges it through the API: that transition follows.
    countywatch_e2e::process::add_user(
        &collector.data_dir,
        "officer",
        "security_officer",
        "pw-officer-1",
    );
    let token = countywatch_e2e::process::api_token(&collector.data_dir, "officer");
    let response = countywatch_e2e::http::request(
        collector.http_addr,
        "POST",
        &format!("/api/v1/incidents/{incident}/transition"),
        &[
            &format!("Authorization: Bearer {token}"),
            "Content-Type: application/json",
        ],
        r#"{"status":"acknowledged"}"#,
    )
    .unwrap();
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(
        wait_until(Duration::from_secs(30), || !forwarded("acknowledged")
            .is_empty()),
        "the acknowledgement was not forwarded"
    );
    let acknowledged = forwarded("acknowledged");
    assert_eq!(acknowledged.len(), 1, "{acknowledged:?}");
    assert_eq!(acknowledged[0]["user"], "officer");
    assert_eq!(acknowledged[0]["incident_id"], incident.to_string());
    assert_eq!(forwarded("open").len(), 1, "nothing twice");
}
