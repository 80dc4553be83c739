//! Issue 11's "done when": the shipped Grafana dashboards (`dashboards/`)
//! work on first import. Debian's `prometheus` runs with the shipped scrape
//! config and recording rules (`deploy/prometheus/`), ports substituted,
//! against a collector fed by a real agent that reads a replayed attack log,
//! watches a directory (FIM), sees a new listener and probes two services.
//! Every panel target of every dashboard, template variables filled with
//! real values from Prometheus's own label API, must parse, and each panel
//! must return at least one series. Prometheus asks for OpenMetrics, so
//! that format is proven by the same scrapes. Other tests lint the JSON
//! without Prometheus, run `promtool check metrics` on a real scrape (text
//! format 0.0.4), and scrape over TLS with a bearer token.
//!
//! Grafana itself is not in Debian's archive, so what is proven here is
//! what Grafana would send to Prometheus, not how it draws it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use countywatch_e2e::Collector;
use countywatch_e2e::peer::{Prometheus, SNMP_COMMUNITY, Snmpd, percent_encode, promtool_findings};
use countywatch_e2e::process::{TEST_AGENT_CONFIG, wait_until};

/// The agent's name, hence its `instance` label.
const AGENT: &str = "dash-host";

/// What Grafana puts for `$__rate_interval` with a 1 s scrape interval is
/// at least four scrapes; a minute covers the whole test's history.
const RATE_INTERVAL: &str = "1m";

/// Grafana's `$__range` for the dashboards' default "last 6 hours".
const RANGE: &str = "6h";

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Every shipped dashboard: file name and parsed JSON.
fn dashboards() -> Vec<(String, serde_json::Value)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(repository().join("dashboards")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            found.push((
                path.file_name().unwrap().to_string_lossy().into_owned(),
                json,
            ));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// Every panel that draws data (rows left out), nested row panels included.
fn panels(dashboard: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().cloned().unwrap_or_default() {
        if panel["type"] == "row" {
            all.extend(panel["panels"].as_array().cloned().unwrap_or_default());
        } else {
            all.push(panel);
        }
    }
    all
}

/// The query variables: name and `label_values(...)` query, in order.
fn query_variables(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    dashboard["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|variable| variable["type"] == "query")
        .map(|variable| {
            let query = variable["query"]["query"]
                .as_str()
                .or_else(|| variable["query"].as_str())
                .unwrap_or_default()
                .to_string();
            (variable["name"].as_str().unwrap().to_string(), query)
        })
        .collect()
}

/// Replaces `$name` and `${name}` with each value, longest names first
/// so that `$instance` does not eat `$instances`, then Grafana's own
/// interval variables.
fn substitute(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = text
        .replace("$__rate_interval", RATE_INTERVAL)
        .replace("$__range", RANGE);
    let mut names: Vec<&String> = values.keys().collect();
    names.sort_by_key(|name| std::cmp::Reverse(name.len()));
    for name in names {
        out = out
            .replace(&format!("${{{name}}}"), &values[name])
            .replace(&format!("${name}"), &values[name]);
    }
    out
}

/// `label_values(selector, label)` split into its selector and label.
fn parse_label_values(query: &str) -> (String, String) {
    let inner = query
        .trim()
        .strip_prefix("label_values(")
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not label_values(...): {query}"));
    let (selector, label) = inner.rsplit_once(',').unwrap();
    (selector.trim().to_string(), label.trim().to_string())
}

/// The values of `label` on series matching `selector`, as Grafana's
/// `label_values` asks Prometheus for them.
fn label_values(prometheus: &Prometheus, selector: &str, label: &str) -> Vec<String> {
    let data = prometheus.api(&format!(
        "/api/v1/series?match[]={}&start={}",
        percent_encode(selector),
        now() - 600.0
    ));
    let values: BTreeSet<String> = data
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|series| series[label].as_str().map(str::to_string))
        .collect();
    values.into_iter().collect()
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Runs an instant query; `Err` carries Prometheus's error (a parse error).
fn query(prometheus: &Prometheus, expr: &str) -> Result<usize, String> {
    let path = format!(
        "/api/v1/query?query={}&time={:.3}",
        percent_encode(expr),
        now()
    );
    let response = countywatch_e2e::http::get(prometheus.addr, &path).map_err(|e| e.to_string())?;
    let body: serde_json::Value =
        serde_json::from_str(&response.body).map_err(|_| response.body.clone())?;
    if body["status"] != "success" {
        return Err(format!("{}: {}", body["errorType"], body["error"]));
    }
    Ok(match body["data"]["resultType"].as_str() {
        Some("vector") | Some("matrix") => {
            body["data"]["result"].as_array().map(Vec::len).unwrap_or(0)
        }
        _ => 1,
    })
}

/// A replayed SSH brute force with one success and a failed sudo, in the
/// formats the agent's auth parser reads.
fn attack_log() -> String {
    let mut log = String::new();
    for attempt in 0..12 {
        log.push_str(&format!(
            "Nov 28 03:00:{attempt:02} web-01 sshd[{}]: Failed password for invalid user admin{attempt} from 203.0.113.7 port {} ssh2\n",
            4000 + attempt,
            40000 + attempt
        ));
    }
    log.push_str("Nov 28 03:00:20 web-01 sshd[4100]: Accepted password for alice from 203.0.113.7 port 41000 ssh2\n");
    log.push_str("Nov 28 03:00:30 web-01 sudo: pam_unix(sudo:auth): authentication failure; logname=alice uid=1000 euid=0 tty=/dev/pts/0 ruser=alice rhost=  user=alice\n");
    log
}

/// A collector with the shipped rule packs and a webhook receiver (so that
/// rule and notification series exist), an agent reading an attack log,
/// watching a directory, probing the collector's HTTP and TLS listeners and
/// its own process, and Prometheus with the shipped configuration.
struct Fixture {
    collector: Collector,
    _agent: countywatch_e2e::Agent,
    prometheus: Prometheus,
    _files: tempfile::TempDir,
    _listener: TcpListener,
    /// The network device the network dashboard shows: a real snmpd the
    /// agent polls over SNMP v2c.
    _snmpd: Snmpd,
}

fn start_fixture() -> Fixture {
    let packs = repository().join("rules/packs");
    let rule_files: Vec<String> = ["agent", "host", "service", "network"]
        .iter()
        .map(|pack| format!("    - {}", packs.join(format!("{pack}.yaml")).display()))
        .collect();
    let unreachable = TcpListener::bind("127.0.0.1:0").unwrap();
    let webhook_port = unreachable.local_addr().unwrap().port();
    drop(unreachable);
    let collector_config = format!(
        "detection:\n  rule_files:\n    - {}\nrules:\n  files:\n{}\nnotify:\n  route:\n    receiver: ops\n  receivers:\n    - name: ops\n      webhook_configs:\n        - url: http://127.0.0.1:{webhook_port}/hook\n",
        repository().join("rules/detection").display(),
        rule_files.join("\n")
    );
    let collector = Collector::start_with(Some(&collector_config), &[]);

    let files = tempfile::tempdir().unwrap();
    let auth_log = files.path().join("auth.log");
    std::fs::write(&auth_log, attack_log()).unwrap();
    let watched = files.path().join("etc");
    std::fs::create_dir(&watched).unwrap();
    std::fs::write(watched.join("passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    let ca_file = collector.data_dir.join("ca/ca.crt");
    let snmpd = Snmpd::start("dash-switch");
    let agent_config = format!(
        "{TEST_AGENT_CONFIG}labels:
  department: 财政局
sources:
  auth:
    paths: [{auth}]
    read_existing: true
  fim:
    enabled: true
    paths: [{watched}]
    rescan_interval: 1s
  ports:
    enabled: true
probes:
  process:
    enabled: true
    names: [countywatch-age, countywatch-col]
  service:
    targets:
      - name: collector-http
        module: http
        target: http://{http}/-/healthy
      - name: collector-enroll
        module: http
        target: https://{enroll}/
        ca_file: {ca}
  snmp:
    devices:
      - name: dash-switch
        address: \"{snmp}\"
        version: v2c
        community: {community}
",
        snmp = snmpd.address,
        community = SNMP_COMMUNITY,
        auth = auth_log.display(),
        watched = watched.display(),
        http = collector.http_addr,
        enroll = collector.enroll_addr,
        ca = ca_file.display(),
    );
    let agent = crate::events::start_agent(AGENT, &collector, &agent_config);

    let config = std::fs::read_to_string(repository().join("deploy/prometheus/prometheus.yml"))
        .unwrap()
        .replace("127.0.0.1:9780", &collector.http_addr.to_string())
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("scrape_timeout: 10s", "scrape_timeout: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s");
    assert!(config.contains("honor_labels: true"));
    let rules = std::fs::read_to_string(
        repository().join("deploy/prometheus/countywatch-recording-rules.yml"),
    )
    .unwrap();
    let prometheus =
        Prometheus::start_with_files(&config, &[("countywatch-recording-rules.yml", &rules)]);

    // Events that only happen after the agent has started: a changed
    // watched file and a new listener.
    assert!(
        wait_until(Duration::from_secs(60), || {
            countywatch_e2e::http::sample_value(
                &collector.metrics(),
                &format!("node_load1{{instance=\"{AGENT}\",job=\"countywatch\"}}"),
            )
            .is_some()
        }),
        "the agent never reported; agent log:\n{}\ncollector log:\n{}",
        agent.logs.all().join("\n"),
        collector.logs.all().join("\n")
    );
    std::fs::write(watched.join("passwd"), "root:x:0:0::/root:/bin/bash\n").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    Fixture {
        collector,
        _agent: agent,
        prometheus,
        _files: files,
        _listener: listener,
        _snmpd: snmpd,
    }
}

#[test]
fn every_panel_of_every_dashboard_returns_data_from_a_real_prometheus() {
    let fixture = start_fixture();
    let prometheus = &fixture.prometheus;
    // Two scrapes at least, history for rates, and every security kind the
    // dashboards chart before querying.
    let ready = wait_until(Duration::from_secs(120), || {
        let scrapes = query(
            prometheus,
            "count_over_time(up{job=\"countywatch\"}[1m]) >= 5",
        );
        let kinds = ["ssh_login_failed", "file_changed", "port_opened"]
            .iter()
            .all(|kind| {
                query(
                    prometheus,
                    &format!("countywatch_security_events_total{{kind=\"{kind}\"}}"),
                ) == Ok(1)
            });
        scrapes == Ok(1) && kinds
    });
    assert!(
        ready,
        "no scrapes or no security series; /metrics:\n{}",
        fixture.collector.metrics()
    );
    // Recording rules need an evaluation after the data arrived.
    let recorded = wait_until(Duration::from_secs(60), || {
        [
            "instance:node_cpu_utilisation:rate5m",
            "instance:node_memory_utilisation:ratio",
            "instance:node_filesystem_usage:max_ratio",
            "instance:node_load5_per_cpu:ratio",
            "instance:node_network_transmit_receive_bytes:rate5m",
            // The device's counters need two SNMP polls, which run on a
            // thread of their own and can trail the host's samples.
            "interface:ifHCInOctets:rate5m",
            "interface:ifHCOutOctets:rate5m",
            "instance_kind:countywatch_security_events:increase1h",
            "collector:countywatch_ingest_samples:rate5m",
        ]
        .iter()
        .all(|name| query(prometheus, name).is_ok_and(|count| count > 0))
    });
    assert!(recorded, "recording rules produced nothing");

    let mut failures = Vec::new();
    let mut checked = 0;
    for (file, dashboard) in dashboards() {
        let mut values = BTreeMap::new();
        for (name, variable_query) in query_variables(&dashboard) {
            let (selector, label) = parse_label_values(&substitute(&variable_query, &values));
            let found = label_values(prometheus, &selector, &label);
            let value = match found.first() {
                Some(value) => value.clone(),
                None => {
                    failures.push(format!(
                        "{file}: variable {name}: no values for {variable_query}"
                    ));
                    "none".to_string()
                }
            };
            // A host variable must find the test agent among its values.
            if name == "instance" && !found.contains(&AGENT.to_string()) {
                failures.push(format!("{file}: variable {name} lacks {AGENT}: {found:?}"));
            }
            values.insert(name, value);
        }
        for panel in panels(&dashboard) {
            let title = panel["title"].as_str().unwrap_or_default().to_string();
            let mut panel_series = 0;
            for target in panel["targets"].as_array().cloned().unwrap_or_default() {
                let expr = substitute(target["expr"].as_str().unwrap_or_default(), &values);
                checked += 1;
                match query(prometheus, &expr) {
                    Ok(count) => panel_series += count,
                    Err(error) => failures.push(format!("{file} / {title}: {expr}: {error}")),
                }
            }
            if panel_series == 0 {
                failures.push(format!("{file} / {title}: no series"));
            }
        }
    }
    assert!(checked >= 50, "only {checked} targets found");
    assert!(
        failures.is_empty(),
        "{} problems:\n{}\n\n/metrics:\n{}",
        failures.len(),
        failures.join("\n"),
        fixture.collector.metrics()
    );
}

#[test]
fn promtool_check_metrics_finds_nothing_on_a_real_scrape() {
    let fixture = start_fixture();
    let ready = wait_until(Duration::from_secs(60), || {
        let text = fixture.collector.metrics();
        text.contains("countywatch_security_events_total{")
            && text.contains("probe_success{")
            && text.contains("ALERTS_FOR_STATE")
    });
    let text = fixture.collector.metrics();
    assert!(ready, "series missing:\n{text}");
    // snmp_exporter's if_mib names (`ifHCInOctets{ifIndex=...}`) are
    // camelCase counters without `_total` by design, and the issue asks for
    // exactly those names so that existing network dashboards work;
    // promtool's lint says the same of snmp_exporter's own output. Those
    // findings, on those families only, are the ones allowed.
    const SNMP_EXPORTER_FAMILIES: &[&str] = &[
        "ifOperStatus",
        "ifAdminStatus",
        "ifHCInOctets",
        "ifHCOutOctets",
        "ifInErrors",
        "ifOutErrors",
        "ifInDiscards",
        "ifOutDiscards",
        "ifHighSpeed",
        "sysUpTime",
        "sysName",
        "sysDescr",
    ];
    const SNMP_EXPORTER_FINDINGS: &[&str] = &[
        "label names should be written in 'snake_case' not 'camelCase'",
        "metric names should be written in 'snake_case' not 'camelCase'",
        "counter metrics should have \"_total\" suffix",
    ];
    let findings: Vec<String> = promtool_findings(&text)
        .into_iter()
        .filter(|finding| {
            let (family, complaint) = finding.split_once(' ').unwrap_or_default();
            let family = family.trim_end_matches("_info");
            !(SNMP_EXPORTER_FAMILIES.contains(&family)
                && SNMP_EXPORTER_FINDINGS.contains(&complaint))
        })
        .collect();
    assert!(findings.is_empty(), "promtool:\n{}", findings.join("\n"));
    assert!(
        text.contains("ifOperStatus{"),
        "the SNMP series are part of the check"
    );
    // Every family has HELP, and samples carry the agent's timestamp.
    for line in text.lines().filter(|line| line.starts_with("# TYPE ")) {
        let name = line.split(' ').nth(2).unwrap();
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no HELP for {name}"
        );
    }
    let load = text
        .lines()
        .find(|line| line.starts_with(&format!("node_load1{{instance=\"{AGENT}\"")))
        .unwrap();
    let stamp: f64 = load.split(' ').nth(2).unwrap().parse().unwrap();
    assert!((stamp / 1000.0 - now()).abs() < 60.0, "{load}");
    // Prometheus's own Accept header gets OpenMetrics (the Prometheus in
    // the dashboards test scrapes it that way and must parse every sample).
    let output = std::process::Command::new("curl")
        .args(["-s", "-i", "-H"])
        .arg("Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
        .arg(format!("http://{}/metrics", fixture.collector.http_addr))
        .output()
        .unwrap();
    let openmetrics = String::from_utf8_lossy(&output.stdout);
    assert!(
        openmetrics
            .to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{openmetrics}"
    );
    assert!(openmetrics.ends_with("# EOF\n"));
    assert!(openmetrics.contains("# TYPE countywatch_security_events counter\n"));
    let plain = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{content_type}"])
        .arg(format!("http://{}/metrics", fixture.collector.http_addr))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&plain.stdout),
        "text/plain; version=0.0.4; charset=utf-8"
    );
}

/// Panels whose thresholds are an alert rule's: (dashboard, panel title,
/// threshold value, rule pack, alert name, the literal in its expr).
const THRESHOLDS_FROM_RULES: &[(&str, &str, f64, &str, &str, &str)] = &[
    (
        "fleet-overview.json",
        "Time since each agent's last batch",
        120.0,
        "agent",
        "AgentSilent",
        "> 120",
    ),
    (
        "fleet-overview.json",
        "Time since each agent's last batch",
        3600.0,
        "agent",
        "AgentGone",
        "> 3600",
    ),
    (
        "fleet-overview.json",
        "CPU busy, top 10 hosts",
        0.9,
        "host",
        "HostHighCpuLoad",
        "> 0.9",
    ),
    (
        "fleet-overview.json",
        "Memory used, top 10 hosts",
        0.9,
        "host",
        "HostOutOfMemory",
        "< 0.10",
    ),
    (
        "fleet-overview.json",
        "Fullest filesystem, top 10 hosts",
        0.95,
        "host",
        "HostOutOfDiskSpace",
        "< 0.05",
    ),
    (
        "fleet-overview.json",
        "Load per core",
        2.0,
        "host",
        "HostHighLoad",
        "> 2",
    ),
    (
        "host-detail.json",
        "CPU busy",
        0.9,
        "host",
        "HostHighCpuLoad",
        "> 0.9",
    ),
    (
        "host-detail.json",
        "Load per core",
        2.0,
        "host",
        "HostHighLoad",
        "> 2",
    ),
    (
        "host-detail.json",
        "Memory used",
        0.9,
        "host",
        "HostOutOfMemory",
        "< 0.10",
    ),
    (
        "host-detail.json",
        "Filesystem used",
        0.95,
        "host",
        "HostOutOfDiskSpace",
        "< 0.05",
    ),
    (
        "host-detail.json",
        "Probe success",
        1.0,
        "service",
        "EndpointDown",
        "probe_success == 0",
    ),
    (
        "host-detail.json",
        "HTTP status",
        500.0,
        "service",
        "EndpointHttpError",
        ">= 500",
    ),
    (
        "host-detail.json",
        "Certificate expires in",
        1_209_600.0,
        "service",
        "CertificateExpiringSoon",
        "14 * 86400",
    ),
    (
        "host-detail.json",
        "Certificate expires in",
        0.0,
        "service",
        "CertificateExpired",
        "<= 0",
    ),
    (
        "network-devices.json",
        "Errors",
        1.0,
        "network",
        "InterfaceErrorsRising",
        "> 1",
    ),
    (
        "network-devices.json",
        "Interface status",
        2.0,
        "network",
        "InterfaceDown",
        "ifOperStatus == 2",
    ),
];

#[test]
fn panel_thresholds_are_the_shipped_alert_rules() {
    let dashboards = dashboards();
    let mut problems = Vec::new();
    for (file, title, value, pack, alert, literal) in THRESHOLDS_FROM_RULES {
        let rules =
            std::fs::read_to_string(repository().join(format!("rules/packs/{pack}.yaml"))).unwrap();
        let rule = rules
            .split_once(&format!("alert: {alert}\n"))
            .map(|(_, rest)| rest.split("- alert:").next().unwrap_or(rest))
            .unwrap_or_default();
        if !rule.contains(literal) {
            problems.push(format!("{pack}.yaml {alert}: no {literal:?} in its rule"));
        }
        let panel = dashboards
            .iter()
            .filter(|(name, _)| name == file)
            .flat_map(|(_, dashboard)| panels(dashboard))
            .find(|panel| panel["title"] == *title);
        let Some(panel) = panel else {
            problems.push(format!("{file}: no panel {title:?}"));
            continue;
        };
        let steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !steps
            .iter()
            .any(|step| step["value"].as_f64() == Some(*value))
        {
            problems.push(format!(
                "{file} / {title}: no threshold at {value} ({alert})"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn dashboards_lint_clean() {
    let dashboards = dashboards();
    let names: Vec<&str> = dashboards.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "countywatch-self.json",
            "fleet-overview.json",
            "host-detail.json",
            "network-devices.json",
            "security.json"
        ]
    );
    let readme = std::fs::read_to_string(repository().join("dashboards/README.md")).unwrap();
    let mut problems = Vec::new();
    let mut uids = BTreeSet::new();
    for (file, dashboard) in &dashboards {
        let mut problem = |text: String| problems.push(format!("{file}: {text}"));
        if dashboard["schemaVersion"].as_i64().unwrap_or(0) < 39 {
            problem("schemaVersion below 39".to_string());
        }
        if !uids.insert(dashboard["uid"].as_str().unwrap_or_default().to_string()) {
            problem("duplicate or missing uid".to_string());
        }
        if !readme.contains(&format!("`{file}`")) {
            problem("no line in dashboards/README.md".to_string());
        }
        let variables = dashboard["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !variables
            .iter()
            .any(|variable| variable["name"] == "datasource" && variable["type"] == "datasource")
        {
            problem("no ${datasource} variable".to_string());
        }
        for (name, query) in query_variables(dashboard) {
            if !query.starts_with("label_values(") {
                problem(format!("variable {name} is not label_values(...): {query}"));
            }
        }
        let mut ids = BTreeSet::new();
        let all_panels: Vec<serde_json::Value> =
            dashboard["panels"].as_array().cloned().unwrap_or_default();
        for panel in &all_panels {
            if !ids.insert(panel["id"].as_i64().unwrap_or(-1)) {
                problem(format!("panel id {} repeats or is missing", panel["id"]));
            }
        }
        for panel in panels(dashboard) {
            let title = panel["title"].as_str().unwrap_or_default();
            if panel["datasource"]["uid"] != "${datasource}" {
                problem(format!("{title}: datasource is not ${{datasource}}"));
            }
            if panel["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .is_none_or(str::is_empty)
            {
                problem(format!("{title}: no unit"));
            }
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            if targets.is_empty() {
                problem(format!("{title}: no targets"));
            }
            for target in targets {
                let expr = target["expr"].as_str().unwrap_or_default();
                if target["datasource"]["uid"] != "${datasource}" {
                    problem(format!(
                        "{title}: a target's datasource is not ${{datasource}}"
                    ));
                }
                // No hard-coded host: instance is only ever matched by a variable.
                for (index, _) in expr.match_indices("instance") {
                    let rest = &expr[index + "instance".len()..];
                    let value = rest
                        .strip_prefix("=~\"")
                        .or_else(|| rest.strip_prefix("=\""))
                        .or_else(|| rest.strip_prefix("!=\""));
                    if value.is_some_and(|value| !value.starts_with('$')) {
                        problem(format!("{title}: hard-coded instance in {expr}"));
                    }
                }
                // Windows come from Grafana, except recorded rates.
                for (index, _) in expr.match_indices('[') {
                    let window = &expr[index..];
                    if !window.starts_with("[$__rate_interval]")
                        && !window.starts_with("[$__range]")
                    {
                        problem(format!("{title}: fixed range window in {expr}"));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn prometheus_scrapes_metrics_over_tls_with_a_bearer_token_and_others_get_401() {
    let dir = tempfile::tempdir().unwrap();
    let tls = countywatch_e2e::peer::TlsFiles::create(dir.path());
    let token = dir.path().join("metrics.token");
    std::fs::write(&token, "scrape-secret\n").unwrap();
    let collector = Collector::start_with(
        Some(&format!(
            "http:\n  tls:\n    cert_file: {}\n    key_file: {}\n  metrics_auth:\n    bearer_token_file: {}\n",
            tls.cert.display(),
            tls.key.display(),
            token.display()
        )),
        &[],
    );
    let prometheus = Prometheus::start(&format!(
        "  - job_name: countywatch\n    honor_labels: true\n    scheme: https\n    tls_config:\n      ca_file: {}\n    authorization:\n      type: Bearer\n      credentials_file: {}\n    static_configs:\n      - targets: ['{}']\n",
        tls.ca.display(),
        token.display(),
        collector.http_addr
    ));
    let scraped = wait_until(Duration::from_secs(60), || {
        query(
            &prometheus,
            "countywatch_build_info{component=\"collector\"} and on (instance) up{job=\"countywatch\"} == 1",
        ) == Ok(1)
    });
    assert!(scraped, "Prometheus did not scrape over TLS with the token");
    let curl = |extra: &[&str]| {
        let output = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&tls.ca)
            .args(extra)
            .arg(format!("https://{}/metrics", collector.http_addr))
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    assert_eq!(curl(&[]), "401");
    assert_eq!(curl(&["-H", "Authorization: Bearer wrong-secret"]), "401");
    assert_eq!(curl(&["-H", "Authorization: Bearer scrape-secret"]), "200");
    // The two refusals are counted (asked of the collector directly: the
    // last Prometheus scrape may predate them).
    let text = std::process::Command::new("curl")
        .args(["-s", "--cacert"])
        .arg(&tls.ca)
        .args(["-H", "Authorization: Bearer scrape-secret"])
        .arg(format!("https://{}/metrics", collector.http_addr))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert_eq!(
        countywatch_e2e::http::sample_value(
            &text,
            "countywatch_metrics_scrapes_total{result=\"unauthorized\"}"
        ),
        Some(2.0),
        "{text}"
    );
}

#[test]
fn shipped_prometheus_files_pass_promtool_and_the_collectors_rules_check() {
    let prometheus_dir = repository().join("deploy/prometheus");
    let rules = prometheus_dir.join("countywatch-recording-rules.yml");
    for (program, args) in [
        (
            PathBuf::from("promtool"),
            vec!["check".into(), "rules".into(), rules.clone()],
        ),
        (
            PathBuf::from("promtool"),
            vec![
                "check".into(),
                "config".into(),
                prometheus_dir.join("prometheus.yml"),
            ],
        ),
        (
            countywatch_e2e::process::binary("countywatch-collector"),
            vec!["rules".into(), "check".into(), rules.clone()],
        ),
    ] {
        let output = std::process::Command::new(&program)
            .args(&args)
            .output()
            .unwrap();
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success() && report.contains("SUCCESS: 9 rules found"),
            "{} {args:?}:\n{report}",
            program.display()
        );
    }
}
