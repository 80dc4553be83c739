//! Rules in the running collector: an agent's metrics feed the configured
//! rule files, and firing alerts appear as `ALERTS` on `/metrics`.

use std::time::Duration;

use countywatch_e2e::http::sample_value;
use countywatch_e2e::{Agent, Collector};

#[test]
fn agent_metrics_fire_alerts_visible_on_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        r#"groups:
  - name: e2e
    interval: 1s
    rules:
      - record: instance:memory_total:bytes
        expr: sum by (instance) (node_memory_MemTotal_bytes)
      - alert: MemoryReported
        expr: instance:memory_total:bytes > 0
        labels:
          severity: info
        annotations:
          summary: "{{ $labels.instance }} has {{ $value | humanize }}B"
"#,
    )
    .unwrap();
    let config = format!(
        "rules:\n  files: [{:?}]\n  evaluation_interval: 1s\n",
        rules.display().to_string()
    );
    let collector = Collector::start_with(Some(&config), &[]);
    let _agent = Agent::start_for("e2e-rules", &collector);
    let value = collector.wait_for_series(
        "ALERTS{alertname=\"MemoryReported\",alertstate=\"firing\",instance=\"e2e-rules\",severity=\"info\"}",
        Duration::from_secs(30),
    );
    assert_eq!(value, Some(1.0), "{}", collector.metrics());
    let text = collector.metrics();
    assert!(
        text.contains("ALERTS_FOR_STATE{alertname=\"MemoryReported\",instance=\"e2e-rules\",severity=\"info\"}"),
        "{text}"
    );
    assert!(
        text.contains("countywatch_rule_evaluation_failures_total{file="),
        "{text}"
    );
}

#[test]
fn a_bad_rule_file_stops_the_collector_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("bad.yaml");
    std::fs::write(
        &rules,
        "groups:\n  - name: x\n    rules:\n      - alert: A\n        expr: rate(up[5m]\n",
    )
    .unwrap();
    let config = dir.path().join("collector.yaml");
    std::fs::write(
        &config,
        format!("rules:\n  files: [{:?}]\n", rules.display().to_string()),
    )
    .unwrap();
    let output = std::process::Command::new(countywatch_e2e::binary("countywatch-collector"))
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "rules.files: {}:5:15: group \"x\", alert \"A\": could not parse expression",
            rules.display()
        )),
        "{stderr}"
    );
}

#[test]
fn a_bad_rule_file_change_keeps_the_old_rules_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        "groups:\n  - name: always\n    interval: 1s\n    rules:\n      - alert: Always\n        expr: vector(1)\n",
    )
    .unwrap();
    let config = format!("rules:\n  files: [{:?}]\n", rules.display().to_string());
    let collector = Collector::start_with(Some(&config), &[]);
    assert_eq!(
        collector.wait_for_series(
            "ALERTS{alertname=\"Always\",alertstate=\"firing\"}",
            Duration::from_secs(30)
        ),
        Some(1.0)
    );
    // A broken edit: the collector notices the change, refuses the file,
    // keeps evaluating the old rules and reports the failed reload.
    std::fs::write(
        &rules,
        "groups:\n  - name: always\n    rules:\n      - alert: Always\n        expr: vector(\n",
    )
    .unwrap();
    let reload_failed = countywatch_e2e::process::wait_until(Duration::from_secs(30), || {
        sample_value(
            &collector.metrics(),
            "countywatch_rules_last_reload_successful",
        ) == Some(0.0)
    });
    assert!(reload_failed, "{}", collector.metrics());
    assert!(
        collector
            .logs
            .wait_for("rule reload failed", Duration::from_secs(5))
    );
    assert!(
        collector
            .metrics()
            .contains("ALERTS{alertname=\"Always\",alertstate=\"firing\"} 1")
    );
}

#[test]
fn a_firing_rule_reaches_a_real_smtp_server() {
    use countywatch_e2e::notify_peers::SmtpServer;
    let smtp = SmtpServer::plain();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        "groups:\n  - name: e2e\n    interval: 1s\n    rules:\n      - alert: HostReporting\n        expr: node_load1 >= 0\n        annotations:\n          summary: \"{{ $labels.instance }} reports\"\n",
    )
    .unwrap();
    let config = format!(
        "rules:\n  files: [{:?}]\n  evaluation_interval: 1s\nnotify:\n  route:\n    receiver: mail\n    group_by: [alertname, instance]\n    group_wait: 0s\n  receivers:\n  - name: mail\n    email_configs:\n      - to: [oncall@county.test]\n        from: countywatch@county.test\n        smarthost: {}\n        tls: none\n        timeout: 5s\n",
        rules.display().to_string(),
        smtp.addr
    );
    let collector = Collector::start_with(Some(&config), &[]);
    let _agent = Agent::start_for("mail-host", &collector);
    let messages = smtp.wait_for(1, Duration::from_secs(60));
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let text = messages[0].to_string();
    assert!(text.contains("HostReporting"), "{text}");
    assert!(text.contains("mail-host"), "{text}");
    // Re-submitted every few seconds while firing, it is not sent again.
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(
        smtp.messages().len(),
        1,
        "one email per group while it keeps firing"
    );
}
