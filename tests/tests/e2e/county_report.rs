//! The county report (issue 26) over a synthetic November 2026: three
//! agents, two service probe targets, a switch and its port go down and
//! come back at known times, and four SSH brute-force incidents are opened
//! (by the real detection rules from events sent through the real ingest
//! listener) and acknowledged and resolved through the real API, all at
//! known times. Time is injected with libfaketime (Debian's faketime, as
//! `faults.rs` uses it): the collector runs with its wall clock frozen at
//! the time written in a file, which the test moves forward step by step;
//! the monotonic clock, which timers use, stays real. No history row is
//! written by the test: every figure of the report must come out of the
//! collector's own history, and is checked against the known answer in
//! JSON, then found again in the HTML and CSV forms.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use countywatch_e2e::Collector;
use countywatch_e2e::http::{post_batch, request};
use countywatch_e2e::notify_peers::SmtpServer;
use countywatch_e2e::process::{binary, enroll, wait_until};
use countywatch_wire::{
    Batch, Event, EventKind, EventSource, MetricFamily, MetricKind, WIRE_VERSION,
};
use serde_json::{Value, json};

use crate::incidents::api;

const HOUR: i64 = 3_600_000;

/// Local time in Asia/Shanghai (the report's zone, +08:00 all year) as Unix
/// milliseconds.
fn local(text: &str) -> i64 {
    let civil: jiff::civil::DateTime = text.parse().unwrap();
    civil
        .to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8)))
        .unwrap()
        .timestamp()
        .as_millisecond()
}

/// The frozen clock the collector (and the CLI runs below) read.
struct FakeClock {
    clock: countywatch_e2e::fake_clock::FakeClock,
}

impl FakeClock {
    fn set(&self, ms: i64) {
        self.clock.set_ms(ms);
    }

    /// `env` arguments that run a program on this clock, in UTC.
    fn wrapper(&self) -> Vec<String> {
        let mut wrapper = self.clock.wrapper();
        wrapper.push("TZ=UTC".to_string());
        wrapper
    }

    /// Runs the collector's CLI at the fake time.
    fn cli(&self, data_dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
        let wrapper = self.wrapper();
        let mut command = Command::new(&wrapper[0]);
        command
            .args(&wrapper[1..])
            .arg(binary("countywatch-collector"))
            .args(args)
            .arg("--data-dir")
            .arg(data_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        if let Some(text) = stdin {
            use std::io::Write;
            writeln!(child.stdin.take().unwrap(), "{text}").unwrap();
        } else {
            drop(child.stdin.take());
        }
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }
}

/// What each agent reports at one step.
struct Agent {
    name: &'static str,
    identity: tempfile::TempDir,
    seq: u64,
}

fn gauge(name: &str, samples: &[(&[(&str, &str)], f64)]) -> MetricFamily {
    let mut family = MetricFamily::new(name.to_string(), "", MetricKind::Gauge);
    for (labels, value) in samples {
        family.push_copied(labels, *value);
    }
    family
}

fn within(at: i64, from: &str, to: &str) -> bool {
    (local(from)..local(to)).contains(&at)
}

/// The metrics `agent` reports at `at`, from the scenario's known outages.
fn metrics(agent: &str, at: i64) -> Vec<MetricFamily> {
    let department = match agent {
        "web-1" => "政务服务中心",
        "db-1" => "自然资源局",
        _ => "大数据中心",
    };
    let mut families = vec![gauge(
        "countywatch_agent_info",
        &[(&[("department", department)], 1.0)],
    )];
    match agent {
        "web-1" => {
            let portal_down = within(at, "2026-11-03T10:00", "2026-11-03T12:30")
                || within(at, "2026-11-20T09:00", "2026-11-20T09:45");
            let portal: &[(&str, &str)] = &[
                ("name", "portal"),
                ("module", "http"),
                ("target", "https://zwfw.example.gov.cn/"),
                ("department", "政务服务中心"),
                ("service", "政务服务网"),
            ];
            let estate: &[(&str, &str)] = &[
                ("name", "estate"),
                ("module", "http"),
                ("target", "https://bdc.example.gov.cn/"),
                ("department", "自然资源局"),
                ("service", "不动产登记"),
            ];
            families.push(gauge(
                "probe_success",
                &[(portal, if portal_down { 0.0 } else { 1.0 }), (estate, 1.0)],
            ));
            families.push(gauge(
                "probe_http_status_code",
                &[
                    (portal, if portal_down { 503.0 } else { 200.0 }),
                    (estate, 200.0),
                ],
            ));
            families.push(gauge(
                "probe_ssl_earliest_cert_expiry",
                &[
                    (portal, (local("2027-06-01T00:00") / 1000) as f64),
                    (estate, (local("2026-12-20T00:00") / 1000) as f64),
                ],
            ));
            families.push(gauge("node_timex_sync_status", &[(&[], 1.0)]));
        }
        "db-1" => families.push(gauge("node_timex_sync_status", &[(&[], 1.0)])),
        _ => {
            let device_down = within(at, "2026-11-15T02:00", "2026-11-15T03:00");
            let device: &[(&str, &str)] = &[
                ("device_instance", "core-sw"),
                ("department", "大数据中心"),
                ("service", "政务外网"),
            ];
            families.push(gauge(
                "snmp_up",
                &[(device, if device_down { 0.0 } else { 1.0 })],
            ));
            if !device_down {
                let port_down = within(at, "2026-11-22T16:00", "2026-11-22T17:30");
                let port: &[(&str, &str)] = &[
                    ("ifIndex", "1"),
                    ("ifName", "GE0/0/1"),
                    ("device_instance", "core-sw"),
                ];
                let unused: &[(&str, &str)] = &[
                    ("ifIndex", "2"),
                    ("ifName", "GE0/0/2"),
                    ("device_instance", "core-sw"),
                ];
                families.push(gauge(
                    "ifOperStatus",
                    &[(port, if port_down { 2.0 } else { 1.0 }), (unused, 2.0)],
                ));
                // GE0/0/2 is shut down by the operator: never an outage.
                families.push(gauge("ifAdminStatus", &[(port, 1.0), (unused, 2.0)]));
            }
        }
    }
    families
}

/// Ten refused SSH logins from `source` on `host` at `at`: one brute force.
fn brute_force(host: &str, source: &str, at: i64) -> Vec<Event> {
    (0..10)
        .map(|index| {
            let mut event = Event::new(at, EventSource::Auth, EventKind::SshLoginFailed);
            event.host = host.to_string();
            event.fields.user = Some("admin".to_string());
            event.fields.src_ip = Some(source.parse().unwrap());
            event.fields.src_port = Some(40_000 + index);
            event.raw = format!(
                "Failed password for admin from {source} port {} ssh2",
                40_000 + index
            );
            event
        })
        .collect()
}

struct Scenario {
    collector: Collector,
    clock: FakeClock,
    agents: Vec<Agent>,
    officer: String,
}

impl Scenario {
    /// Every agent reports at `at` (db-1 not while it is silent), with the
    /// events `attacks` names for its host.
    fn step(&mut self, at: i64, attacks: &[(&str, &str)]) {
        self.clock.set(at);
        for agent in &mut self.agents {
            if agent.name == "db-1" && within(at, "2026-11-10T08:30", "2026-11-10T14:00") {
                continue;
            }
            let events: Vec<Event> = attacks
                .iter()
                .filter(|(host, _)| *host == agent.name)
                .flat_map(|(host, source)| brute_force(host, source, at))
                .collect();
            agent.seq += 1;
            let batch = Batch {
                version: WIRE_VERSION,
                agent: agent.name.to_string(),
                seq: agent.seq,
                collected_at_ms: at,
                metrics: metrics(agent.name, at),
                events,
            };
            let response = post_batch(self.collector.ingest_addr, agent.identity.path(), &batch);
            assert_eq!(
                response.status, 200,
                "{} at {at}: {}",
                agent.name, response.body
            );
        }
    }

    /// The incident the brute force from `source` opened, once detection
    /// has recorded it.
    fn incident(&self, source: &str) -> i64 {
        let mut found = None;
        let appeared = wait_until(Duration::from_secs(60), || {
            let (_, list) = api(
                self.collector.http_addr,
                "GET",
                "/api/v1/incidents?limit=100",
                &self.officer,
                &Value::Null,
            );
            found = list["incidents"].as_array().and_then(|incidents| {
                incidents
                    .iter()
                    .find(|incident| incident["group_key"] == format!("src_ip={source}"))
                    .and_then(|incident| incident["id"].as_i64())
            });
            found.is_some()
        });
        assert!(appeared, "no incident from {source}");
        found.unwrap()
    }

    fn transition(&self, id: i64, at: i64, body: Value) {
        self.clock.set(at);
        let (status, answer) = api(
            self.collector.http_addr,
            "POST",
            &format!("/api/v1/incidents/{id}/transition"),
            &self.officer,
            &body,
        );
        assert_eq!(status, 200, "{answer}");
    }
}

/// The collector's log lines about the report, for a failure message.
fn report_lines(collector: &Collector) -> String {
    collector
        .logs
        .all()
        .into_iter()
        .filter(|line| line.contains("report"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_synthetic_month_of_outages_and_incidents_gives_the_known_report_in_json_html_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let start = local("2026-10-31T20:00");
    let clock = FakeClock {
        clock: countywatch_e2e::fake_clock::FakeClock::new(&dir.path().join("faketime"), "+0"),
    };
    clock.set(start);
    // agent_silent would open an incident at whatever time the liveness
    // tick saw db-1's silence; the scenario's incidents are the brute
    // forces only.
    // Last month's report is mailed on the 1st through `mail`'s settings
    // (alerts go nowhere: `nobody` has no integration).
    let smtp = SmtpServer::plain();
    let config = format!(
        "display:\n  timezone: Asia/Shanghai\n  language: zh\nagents:\n  silent_after: 2h\ndetection:\n  disabled: [agent_silent]\nnotify:\n  route:\n    receiver: nobody\n  receivers:\n  - name: nobody\n  - name: mail\n    email_configs:\n    - to: ['局领导 <chief@county.test>']\n      from: countywatch@county.test\n      smarthost: {}\n      tls: none\nreport:\n  schedule:\n    receiver: mail\n",
        smtp.addr
    );
    let wrapper = clock.wrapper();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let collector = Collector::start_wrapped(dir, &data_dir, Some(&config), &[], &wrapper);
    clock.cli(
        &data_dir,
        &["user", "add", "officer1", "--role", "security_officer"],
        Some("officer-password-1"),
    );
    let officer = String::from_utf8(
        clock
            .cli(&data_dir, &["user", "token", "officer1"], None)
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    // Tokens are made on the fake clock too, so that the audit trail's
    // times only move forward.
    let agents = ["web-1", "db-1", "net-1"]
        .into_iter()
        .map(|name| {
            let identity = tempfile::tempdir().unwrap();
            let created = clock.cli(&data_dir, &["token", "create"], None);
            let token = String::from_utf8_lossy(&created.stdout)
                .lines()
                .find_map(|line| line.strip_prefix("token: ").map(str::to_string))
                .unwrap();
            let (code, _, stderr) = enroll(
                &collector.enroll_url(),
                &token,
                &collector.ca_sha256,
                Some(name),
                identity.path(),
            );
            assert_eq!(code, 0, "{stderr}");
            Agent {
                name,
                identity,
                seq: 0,
            }
        })
        .collect();
    let mut scenario = Scenario {
        collector,
        clock,
        agents,
        officer,
    };

    // Steps: every hour, and the half hours where something comes back.
    let mut steps: Vec<i64> = (0..)
        .map(|hour| start + hour * HOUR)
        .take_while(|at| *at <= local("2026-12-01T00:00"))
        .collect();
    for extra in ["2026-11-03T12:30", "2026-11-20T09:45", "2026-11-22T17:30"] {
        steps.push(local(extra));
    }
    steps.sort_unstable();
    let attacks: BTreeMap<i64, (&str, &str)> = [
        (local("2026-10-31T21:00"), ("web-1", "203.0.113.5")),
        (local("2026-11-05T09:00"), ("web-1", "198.51.100.7")),
        (local("2026-11-12T22:00"), ("db-1", "198.51.100.8")),
        (local("2026-11-25T15:00"), ("db-1", "203.0.113.9")),
    ]
    .into_iter()
    .collect();
    // What officers do, and when: (after the step at, incident source,
    // at, new status).
    let handling: Vec<(i64, &str, i64, &str)> = vec![
        (
            local("2026-11-05T09:00"),
            "198.51.100.7",
            local("2026-11-05T09:30"),
            "acknowledged",
        ),
        (
            local("2026-11-05T09:00"),
            "198.51.100.7",
            local("2026-11-05T11:00"),
            "resolved",
        ),
        (
            local("2026-11-12T22:00"),
            "198.51.100.8",
            local("2026-11-13T08:00"),
            "acknowledged",
        ),
        (
            local("2026-11-12T22:00"),
            "198.51.100.8",
            local("2026-11-13T10:00"),
            "resolved",
        ),
        (
            local("2026-11-25T15:00"),
            "203.0.113.9",
            local("2026-11-25T15:10"),
            "acknowledged",
        ),
    ];
    let backup_at = local("2026-11-28T03:00");
    let backup_file = data_dir.parent().unwrap().join("backup.db");
    let mut previous = None;
    for at in steps {
        // Officers act between steps, at their own times.
        if let Some(last) = previous {
            for (after, source, when, status) in &handling {
                if *after <= last && *when > last && *when <= at {
                    let id = scenario.incident(source);
                    let body = match *status {
                        "resolved" => {
                            json!({"status": "resolved", "reason": "blocked at the firewall"})
                        }
                        other => json!({"status": other}),
                    };
                    scenario.transition(id, *when, body);
                }
            }
            if backup_at > last && backup_at <= at {
                scenario.clock.set(backup_at);
                scenario
                    .clock
                    .cli(&data_dir, &["backup", backup_file.to_str().unwrap()], None);
            }
        }
        let attack: Vec<(&str, &str)> = attacks.get(&at).into_iter().copied().collect();
        scenario.step(at, &attack);
        // October's report goes out on 1 November. The clock waits here
        // until it has: the schedule looks at the clock every 5 s, and a
        // send it tried while the clock raced through the day, and that
        // failed, would hold the next try (November's) for ten minutes.
        if at == local("2026-11-01T12:00") {
            let sent = wait_until(Duration::from_secs(60), || {
                smtp.messages()
                    .iter()
                    .any(|message| message["subject"] == "县级信息系统运行与安全月报 2026-10")
            });
            assert!(
                sent,
                "no October report mail on 1 November: {:?}; the collector's report lines:\n{}",
                smtp.messages(),
                report_lines(&scenario.collector)
            );
        }
        if let Some((_, source)) = attack.first() {
            scenario.incident(source);
        }
        previous = Some(at);
    }
    let (_, list) = api(
        scenario.collector.http_addr,
        "GET",
        "/api/v1/incidents?limit=100",
        &scenario.officer,
        &Value::Null,
    );
    assert_eq!(list["total"], 4, "only the scenario's incidents: {list}");

    // The console's Reports page: last month by default, the same figures,
    // the same downloads; for security officers and admins only.
    let page = |token: &str, path: &str| {
        let authorization = format!("Authorization: Bearer {token}");
        request(
            scenario.collector.http_addr,
            "GET",
            path,
            &[&authorization],
            "",
        )
        .unwrap()
    };
    let mut shown = String::new();
    let complete = wait_until(Duration::from_secs(60), || {
        shown = page(&scenario.officer, "/reports").body;
        shown.contains("99.549%")
    });
    assert!(
        complete,
        "the Reports page never showed November complete: {shown}"
    );
    for figure in [
        "2026-11-01 00:00:00 +08:00",
        "99.444%",
        "2026-11-22 17:30:00 +08:00",
        "/reports/report.csv?month=2026-11",
    ] {
        assert!(
            shown.contains(figure),
            "the Reports page lacks {figure}: {shown}"
        );
    }
    let downloaded = page(&scenario.officer, "/reports/report.json?month=2026-11");
    assert_eq!(downloaded.status, 200);
    let downloaded: Value = serde_json::from_str(&downloaded.body).unwrap();
    let section = page(
        &scenario.officer,
        "/reports/report.csv?month=2026-11&section=services",
    );
    assert!(
        section.body.contains("99.549,195,2,150"),
        "{}",
        section.body
    );
    let land = page(
        &scenario.officer,
        "/reports/report.html?month=2026-11&department=%E8%87%AA%E7%84%B6%E8%B5%84%E6%BA%90%E5%B1%80",
    );
    assert!(
        land.body.contains("不动产登记") && !land.body.contains("政务服务网"),
        "{}",
        land.body
    );
    scenario.clock.cli(
        &data_dir,
        &["user", "add", "viewer1", "--role", "viewer"],
        Some("viewer-password-1"),
    );
    let viewer = String::from_utf8(
        scenario
            .clock
            .cli(&data_dir, &["user", "token", "viewer1"], None)
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    assert_ne!(
        page(&viewer, "/reports").status,
        200,
        "viewers do not read the report"
    );

    // On 1 December, November's report arrives by mail, attached.
    let mut mailed = None;
    let arrived = wait_until(Duration::from_secs(60), || {
        mailed = smtp
            .messages()
            .into_iter()
            .find(|message| message["subject"] == "县级信息系统运行与安全月报 2026-11");
        mailed.is_some()
    });
    assert!(
        arrived,
        "no report mail: {:?}; the collector's report lines:\n{}",
        smtp.messages(),
        report_lines(&scenario.collector)
    );
    let mailed = mailed.unwrap();
    assert_eq!(mailed["attachments"], json!(["county-report-2026-11.html"]));
    assert_eq!(mailed["to"], "局领导 <chief@county.test>");
    let attached = mailed["html"].as_str().unwrap();
    for figure in [
        "99.549%",
        "99.444%",
        "2026-11-20 09:45:00 +08:00",
        "203.0.113.9",
    ] {
        assert!(
            attached.contains(figure),
            "the mailed report lacks {figure}"
        );
    }

    // The collector writes the hour in progress when it stops.
    scenario.clock.set(local("2026-12-01T00:30"));
    let Scenario {
        collector, clock, ..
    } = scenario;
    let _dir = collector.stop_keeping_data();

    let report = |args: &[&str]| {
        let config = data_dir.parent().unwrap().join("collector.yaml");
        let mut all = vec![
            "report",
            "--config",
            config.to_str().unwrap(),
            "--month",
            "2026-11",
        ];
        all.extend_from_slice(args);
        String::from_utf8(clock.cli(&data_dir, &all, None).stdout).unwrap()
    };
    let json: Value = serde_json::from_str(&report(&["--format", "json"])).unwrap();
    // Shown when an assertion fails.
    println!("{json:#}");
    check_json(&json);
    for section in [
        "departments",
        "services",
        "hosts",
        "devices",
        "outages",
        "certificates",
        "security",
    ] {
        assert_eq!(
            json[section], downloaded[section],
            "the page's {section} differ"
        );
    }

    // HTML (Chinese by default, from display.language) and CSV carry the
    // same figures.
    let html = report(&[]);
    assert!(
        html.contains("县级信息系统运行与安全月报"),
        "Chinese by default"
    );
    assert!(!html.contains("<script"), "no scripts");
    assert!(
        !html.contains(" src=") && !html.contains(" href=") && !html.contains("url("),
        "no external assets"
    );
    for figure in [
        "99.549%",
        "195",
        "150",
        "99.444%",
        "240",
        "99.861%",
        "99.792%",
        "2026-11-03 10:00:00 +08:00",
        "2026-11-03 12:30:00 +08:00",
        "2026-11-20 09:45:00 +08:00",
        "2026-12-20 00:00:00 +08:00",
        "198.51.100.8",
        "203.0.113.9",
        "政务服务网",
        "不动产登记",
    ] {
        assert!(html.contains(figure), "HTML lacks {figure}");
    }
    let english = report(&["--lang", "en"]);
    assert!(english.contains("County systems availability and security report"));
    assert!(english.contains("99.549%"));
    for (language, page) in [("zh", &html), ("en", &english)] {
        print_in_chromium(language, page);
    }
    let csv_dir = data_dir.parent().unwrap().join("csv");
    report(&["--format", "csv", "--out", csv_dir.to_str().unwrap()]);
    let services = std::fs::read_to_string(csv_dir.join("services.csv")).unwrap();
    assert!(
        services.contains("service,政务服务中心,政务服务网,web-1,portal,99.549,195,2,150,720,200"),
        "{services}"
    );
    let hosts = std::fs::read_to_string(csv_dir.join("hosts.csv")).unwrap();
    assert!(
        hosts.contains("agent,自然资源局,,db-1,,99.444,240,1,240,720,"),
        "{hosts}"
    );
    let outages = std::fs::read_to_string(csv_dir.join("outages.csv")).unwrap();
    assert_eq!(
        outages.lines().count(),
        6,
        "a header and five outages: {outages}"
    );
    assert!(outages.contains("interface,大数据中心,政务外网,core-sw,GE0/0/1,2026-11-22 16:00:00 +08:00,2026-11-22 17:30:00 +08:00,90"), "{outages}");
    let security = std::fs::read_to_string(csv_dir.join("security.csv")).unwrap();
    assert!(security.contains("事件数,3"), "{security}");
    assert!(security.contains("响应时间 (分钟) 中位数,30"), "{security}");
    assert!(
        security.contains("处置时间 (分钟) 90 分位,720"),
        "{security}"
    );
    let compliance = std::fs::read_to_string(csv_dir.join("compliance.csv")).unwrap();
    assert!(compliance.contains("实际留存 30 天"), "{compliance}");

    // One department: only its services, hosts and incidents.
    let land: Value =
        serde_json::from_str(&report(&["--format", "json", "--department", "自然资源局"])).unwrap();
    assert_eq!(land["services"].as_array().unwrap().len(), 1);
    assert_eq!(land["services"][0]["service"], "不动产登记");
    assert_eq!(land["hosts"].as_array().unwrap().len(), 1);
    assert_eq!(land["security"]["incidents"], 2);

    // A range of days: the first half of November has the first portal
    // outage, the db-1 silence and the device outage, not the later ones.
    let half: Value = serde_json::from_str(
        &String::from_utf8(
            clock
                .cli(
                    &data_dir,
                    &[
                        "report",
                        "--config",
                        data_dir
                            .parent()
                            .unwrap()
                            .join("collector.yaml")
                            .to_str()
                            .unwrap(),
                        "--from",
                        "2026-11-01",
                        "--to",
                        "2026-11-15",
                        "--format",
                        "json",
                    ],
                    None,
                )
                .stdout,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(half["period"]["to"], "2026-11-16 00:00:00 +08:00");
    assert_eq!(half["outages"].as_array().unwrap().len(), 3);
    assert_eq!(half["security"]["incidents"], 2);
}

/// Every figure of the November report against the scenario's answer.
fn check_json(report: &Value) {
    assert_eq!(report["period"]["from"], "2026-11-01 00:00:00 +08:00");
    assert_eq!(report["period"]["to"], "2026-12-01 00:00:00 +08:00");
    assert_eq!(report["period"]["timezone"], "Asia/Shanghai");
    assert_eq!(report["language"], "zh");
    assert_eq!(
        report["departments"],
        json!([
            {"department": "政务服务中心", "services": 1, "availability_percent": 99.549,
             "downtime_minutes": 195.0, "outages": 2},
            {"department": "自然资源局", "services": 1, "availability_percent": 100.0,
             "downtime_minutes": 0.0, "outages": 0},
        ])
    );
    let row = |kind: &str,
               department: &str,
               service: &str,
               name: &str,
               target: &str,
               availability: f64,
               downtime: f64,
               outages: u64,
               longest: f64,
               status: Value| {
        json!({"kind": kind, "department": department, "service": service, "name": name,
               "target": target, "availability_percent": availability,
               "downtime_minutes": downtime, "outages": outages,
               "longest_outage_minutes": longest, "observed_hours": 720.0,
               "http_status": status})
    };
    assert_eq!(
        report["services"],
        json!([
            row(
                "service",
                "政务服务中心",
                "政务服务网",
                "web-1",
                "portal",
                99.549,
                195.0,
                2,
                150.0,
                json!(200)
            ),
            row(
                "service",
                "自然资源局",
                "不动产登记",
                "web-1",
                "estate",
                100.0,
                0.0,
                0,
                0.0,
                json!(200)
            ),
        ])
    );
    assert_eq!(
        report["hosts"],
        json!([
            row(
                "agent",
                "大数据中心",
                "",
                "net-1",
                "",
                100.0,
                0.0,
                0,
                0.0,
                Value::Null
            ),
            row(
                "agent",
                "政务服务中心",
                "",
                "web-1",
                "",
                100.0,
                0.0,
                0,
                0.0,
                Value::Null
            ),
            row(
                "agent",
                "自然资源局",
                "",
                "db-1",
                "",
                99.444,
                240.0,
                1,
                240.0,
                Value::Null
            ),
        ])
    );
    assert_eq!(
        report["devices"],
        json!([
            row(
                "device",
                "大数据中心",
                "政务外网",
                "core-sw",
                "",
                99.861,
                60.0,
                1,
                60.0,
                Value::Null
            ),
            row(
                "interface",
                "大数据中心",
                "政务外网",
                "core-sw",
                "GE0/0/1",
                99.792,
                90.0,
                1,
                90.0,
                Value::Null
            ),
        ])
    );
    let outage = |kind: &str,
                  department: &str,
                  service: &str,
                  name: &str,
                  target: &str,
                  start: &str,
                  end: &str,
                  minutes: f64| {
        json!({"kind": kind, "department": department, "service": service, "name": name,
               "target": target, "start": format!("{start}:00 +08:00"),
               "end": format!("{end}:00 +08:00"), "minutes": minutes})
    };
    assert_eq!(
        report["outages"],
        json!([
            outage(
                "service",
                "政务服务中心",
                "政务服务网",
                "web-1",
                "portal",
                "2026-11-03 10:00",
                "2026-11-03 12:30",
                150.0
            ),
            outage(
                "agent",
                "自然资源局",
                "",
                "db-1",
                "",
                "2026-11-10 10:00",
                "2026-11-10 14:00",
                240.0
            ),
            outage(
                "device",
                "大数据中心",
                "政务外网",
                "core-sw",
                "",
                "2026-11-15 02:00",
                "2026-11-15 03:00",
                60.0
            ),
            outage(
                "service",
                "政务服务中心",
                "政务服务网",
                "web-1",
                "portal",
                "2026-11-20 09:00",
                "2026-11-20 09:45",
                45.0
            ),
            outage(
                "interface",
                "大数据中心",
                "政务外网",
                "core-sw",
                "GE0/0/1",
                "2026-11-22 16:00",
                "2026-11-22 17:30",
                90.0
            ),
        ])
    );
    assert_eq!(
        report["certificates"],
        json!([{"department": "自然资源局", "service": "不动产登记", "name": "web-1",
                "target": "estate", "expires": "2026-12-20 00:00:00 +08:00", "days_left": 19}])
    );
    let security = &report["security"];
    assert_eq!(security["incidents"], 3);
    assert_eq!(security["by_severity"], json!({"high": 3}));
    assert_eq!(
        security["by_status"],
        json!({"acknowledged": 1, "resolved": 2})
    );
    assert_eq!(security["by_rule"], json!({"ssh_brute_force": 3}));
    assert_eq!(
        security["by_department"],
        json!({"政务服务中心": 1, "自然资源局": 2})
    );
    assert_eq!(
        security["time_to_acknowledge"],
        json!({"count": 3, "median_minutes": 30.0, "p90_minutes": 600.0})
    );
    assert_eq!(
        security["time_to_resolve"],
        json!({"count": 2, "median_minutes": 120.0, "p90_minutes": 720.0})
    );
    assert_eq!(
        security["top_sources"],
        json!([{"name": "198.51.100.7", "count": 1}, {"name": "198.51.100.8", "count": 1},
               {"name": "203.0.113.9", "count": 1}])
    );
    assert_eq!(
        security["top_hosts"],
        json!([{"name": "db-1", "count": 2}, {"name": "web-1", "count": 1}])
    );
    assert_eq!(security["previous"]["from"], "2026-10-01 00:00:00 +08:00");
    assert_eq!(security["previous"]["incidents"], 1);
    assert_eq!(security["previous"]["by_severity"], json!({"high": 1}));
    assert_eq!(security["previous"]["time_to_acknowledge"]["count"], 0);
    let lines: BTreeMap<String, (String, String)> = report["compliance"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| {
            (
                line["id"].as_str().unwrap().to_string(),
                (
                    line["status"].as_str().unwrap().to_string(),
                    line["evidence"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect();
    assert_eq!(lines.len(), 5);
    let (status, evidence) = &lines["log_retention"];
    assert_eq!(status, "fail", "30 days kept, 180 required");
    assert!(
        evidence.starts_with("实际留存 30 天（要求 180 天）"),
        "{evidence}"
    );
    let (status, evidence) = &lines["audit_trail"];
    assert_eq!(status, "pass", "{evidence}");
    assert!(evidence.starts_with("audit verify 通过"), "{evidence}");
    assert_eq!(
        lines["agents_reporting"],
        ("pass".to_string(), "已纳管 3 台，正在上报 3 台".to_string())
    );
    assert_eq!(
        lines["time_sync"],
        (
            "pass".to_string(),
            "2 台主机中 2 台整个报告期时间同步".to_string()
        )
    );
    assert_eq!(
        lines["backups"],
        (
            "pass".to_string(),
            "审计记录中有 1 次备份，最近一次 2026-11-28 03:00:00 +08:00".to_string()
        )
    );
}

/// Prints the report to A4 PDF with headless Chromium (as a county would
/// attach it) and takes a 1366-wide screenshot into
/// target/screenshots/report/, for people to look at.
fn print_in_chromium(language: &str, page: &str) {
    let dir = binary("countywatch-collector")
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("screenshots")
        .join("report");
    std::fs::create_dir_all(&dir).unwrap();
    let html = dir.join(format!("report-{language}.html"));
    std::fs::write(&html, page).unwrap();
    let pdf = dir.join(format!("report-{language}.pdf"));
    let png = dir.join(format!("report-{language}.png"));
    let profile = tempfile::tempdir().unwrap();
    let chromium = |extra: &[String]| {
        let output = Command::new("/usr/bin/chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(format!("file://{}", html.display()))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    chromium(&[
        "--no-pdf-header-footer".to_string(),
        format!("--print-to-pdf={}", pdf.display()),
    ]);
    chromium(&[
        "--window-size=1366,2400".to_string(),
        "--hide-scrollbars".to_string(),
        format!("--screenshot={}", png.display()),
    ]);
    let bytes = std::fs::read(&pdf).unwrap();
    assert!(bytes.starts_with(b"%PDF-"), "{language}: not a PDF");
    let text = String::from_utf8_lossy(&bytes);
    // Each section starts a page: the summary, services, outages, hosts,
    // security and the checklist make six pages at least.
    let pages = text.matches("/Type /Page").count() - text.matches("/Type /Pages").count();
    assert!(pages >= 6, "{language}: {pages} pages");
    if language == "zh" {
        assert!(
            text.contains("NotoSansCJK") || text.contains("NotoSerifCJK"),
            "the Chinese text is set in Debian's Noto CJK"
        );
    }
    let screenshot = std::fs::read(&png).unwrap();
    assert!(
        screenshot.starts_with(b"\x89PNG"),
        "{language}: no screenshot"
    );
    // The PNG header's width: 1366 pixels, as asked.
    assert_eq!(
        u32::from_be_bytes(screenshot[16..20].try_into().unwrap()),
        1366
    );
}
