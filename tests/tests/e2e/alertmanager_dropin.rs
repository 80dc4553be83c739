//! Issue 25, the Alertmanager drop-in's operational side: the notification
//! configuration (an unmodified `alertmanager.yml` here) reloads on SIGHUP
//! and `POST /-/reload` as Alertmanager's does, keeping alerts and
//! silences, and a broken file keeps the running configuration; alerts
//! forwarded to Debian's Alertmanager carry `endsAt` as Prometheus sends
//! them.

use std::time::Duration;

use countywatch_e2e::Collector;
use countywatch_e2e::notify_peers::{
    AlertmanagerPeer, Recorded, Recorder, SmtpServer, post_alerts, request,
};
use countywatch_e2e::process::{add_user, api_token, wait_until};
use countywatch_notify::alert::parse_rfc3339;
use serde_json::json;

/// A collector config accepting alerts and silences on the API, reading
/// its notification configuration from `alertmanager_yml`.
fn collector_config(alertmanager_yml: &std::path::Path) -> String {
    format!(
        "notify:\n  accept_alerts_api: true\n  accept_silences_api: true\n  alertmanager_config: {}\n",
        alertmanager_yml.display()
    )
}

fn metric(collector: &Collector, series: &str) -> f64 {
    countywatch_e2e::http::sample_value(&collector.metrics(), series).unwrap_or(-1.0)
}

/// Whether the recorder got a notification on `path` naming `alertname`.
fn notified(hook: &Recorder, path: &str, alertname: &str) -> bool {
    hook.requests().iter().any(|recorded: &Recorded| {
        recorded.path == path
            && recorded.json()["alerts"].as_array().is_some_and(|alerts| {
                alerts
                    .iter()
                    .any(|alert| alert["labels"]["alertname"] == alertname)
            })
    })
}

const RELOAD_OK: &str = "countywatch_notify_config_last_reload_successful";

#[test]
fn sighup_and_post_reload_route_to_the_new_receiver_and_a_broken_file_keeps_the_old() {
    let hook = Recorder::start("{}");
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("alertmanager.yml");
    // Every receiver exists in every version; only the route's choice
    // changes, as when an on-call rota moves.
    let routing = |receiver: &str| {
        format!(
            "route:\n  receiver: {receiver}\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 4h\nreceivers:\n- name: first\n  webhook_configs:\n  - url: '{}'\n- name: second\n  webhook_configs:\n  - url: '{}'\n- name: third\n  webhook_configs:\n  - url: '{}'\n",
            hook.url("/first"),
            hook.url("/second"),
            hook.url("/third")
        )
    };
    std::fs::write(&file, routing("first")).unwrap();
    let collector = Collector::start_with(Some(&collector_config(&file)), &[]);
    assert_eq!(metric(&collector, RELOAD_OK), 1.0);
    let alert = |name: &str| json!([{"labels": {"alertname": name, "instance": "web1"}}]);
    post_alerts(collector.http_addr, &alert("DiskFull"));
    assert!(
        wait_until(Duration::from_secs(30), || notified(
            &hook, "/first", "DiskFull"
        )),
        "{:?}",
        hook.requests()
    );
    let (status, body) = request(
        collector.http_addr,
        "POST",
        "/api/v2/silences",
        &json!({
            "matchers": [{"name": "alertname", "value": "Quiet", "isRegex": false}],
            "startsAt": "2020-01-01T00:00:00Z",
            "endsAt": "2099-01-01T00:00:00Z",
            "createdBy": "test",
            "comment": "kept across reloads",
        })
        .to_string(),
    );
    assert_eq!(status, 200, "{body}");

    // SIGHUP with the route moved: the firing alert, not posted again, is
    // kept and told to the new receiver.
    std::fs::write(&file, routing("second")).unwrap();
    collector.hangup();
    assert!(
        wait_until(Duration::from_secs(30), || notified(
            &hook, "/second", "DiskFull"
        )),
        "{:?}",
        hook.requests()
    );
    assert_eq!(metric(&collector, RELOAD_OK), 1.0);
    let reloaded_at = metric(
        &collector,
        "countywatch_notify_config_last_reload_success_timestamp_seconds",
    );
    assert!(reloaded_at > 1.7e9, "{reloaded_at}");

    // A broken file (a route to a receiver it does not define) is refused
    // with its position; the previous routing keeps working.
    std::fs::write(&file, routing("nowhere")).unwrap();
    collector.hangup();
    assert!(
        collector.logs.wait_for(
            "notification configuration not reloaded",
            Duration::from_secs(30)
        ),
        "{}",
        collector.logs.all().join("\n")
    );
    let logged = collector.logs.all().join("\n");
    assert!(logged.contains("nowhere"), "{logged}");
    assert!(
        logged.contains(&format!("{}:2:", file.display())),
        "the problem names the file and line: {logged}"
    );
    assert_eq!(metric(&collector, RELOAD_OK), 0.0);
    post_alerts(collector.http_addr, &alert("CpuHot"));
    assert!(
        wait_until(Duration::from_secs(30), || notified(
            &hook, "/second", "CpuHot"
        )),
        "{:?}",
        hook.requests()
    );

    // POST /-/reload, as an admin: the same, and its answer says how it went.
    add_user(&collector.data_dir, "chief", "admin", "chief-password");
    let admin = format!(
        "Authorization: Bearer {}",
        api_token(&collector.data_dir, "chief")
    );
    let reload = || {
        countywatch_e2e::http::request(collector.http_addr, "POST", "/-/reload", &[&admin], "")
            .unwrap()
    };
    let refused = reload();
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("nowhere"), "{}", refused.body);
    std::fs::write(&file, routing("third")).unwrap();
    let answered = reload();
    assert_eq!(answered.status, 200, "{}", answered.body);
    assert_eq!(metric(&collector, RELOAD_OK), 1.0);
    assert!(
        wait_until(Duration::from_secs(30), || notified(
            &hook, "/third", "DiskFull"
        ) && notified(
            &hook, "/third", "CpuHot"
        )),
        "{:?}",
        hook.requests()
    );
    // An operator may not reload.
    let (status, _) = request(collector.http_addr, "POST", "/-/reload", "");
    assert_eq!(status, 403);
    // The silence survived three reloads.
    let (status, body) = request(collector.http_addr, "GET", "/api/v2/silences", "");
    assert_eq!(status, 200);
    assert!(body.contains("kept across reloads"), "{body}");
    // The audit trail has the reloads, refused ones too.
    let trail = countywatch_e2e::http::request(
        collector.http_addr,
        "GET",
        "/api/v1/audit?action=notify.reloaded",
        &[&admin],
        "",
    )
    .unwrap();
    assert!(trail.body.contains("notify.reloaded"), "{}", trail.body);
    assert!(trail.body.contains("failure"), "{}", trail.body);
}

#[test]
fn a_forwarded_alert_outlives_alertmanagers_resolve_timeout_while_firing_and_ends_when_sends_stop()
{
    // The issue's case with shorter times: Alertmanager's resolve_timeout
    // is 10 s (1m in the issue) and the route's repeat_interval 4 h; the
    // collector resends every 5 s with endsAt four resends (20 s) ahead,
    // as Prometheus does with its resend delay. Without endsAt and
    // resends, Alertmanager would resolve the alert 10 s after the first
    // send.
    let alertmanager = AlertmanagerPeer::start_with_config(
        "global:\n  resolve_timeout: 10s\nroute:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n",
    );
    let collector = Collector::start_with(
        Some(&format!(
            "notify:\n  accept_alerts_api: true\n  route:\n    receiver: am\n    group_by: ['...']\n    group_wait: 0s\n    group_interval: 1s\n    repeat_interval: 4h\n  receivers:\n  - name: am\n    alertmanager_configs:\n      - url: http://{}\n        resend_interval: 5s\n",
            alertmanager.addr
        )),
        &[],
    );
    post_alerts(
        collector.http_addr,
        &json!([{"labels": {"alertname": "HostDown", "instance": "web7"}}]),
    );
    let active = || -> Option<i64> {
        let alerts = alertmanager.alerts();
        let alert = alerts.first()?;
        (alert["status"]["state"] == "active")
            .then(|| parse_rfc3339(alert["endsAt"].as_str()?).ok())
            .flatten()
    };
    assert!(wait_until(Duration::from_secs(20), || active().is_some()));
    let first_seen = std::time::Instant::now();
    // Three resolve_timeouts: still active at every look, and its endsAt
    // is the collector's lease, further ahead than resolve_timeout.
    while first_seen.elapsed() < Duration::from_secs(30) {
        let ends_at = active().expect("still active in Alertmanager");
        let now = countywatch_daemon::clock::now_ms();
        assert!(ends_at - now > 10_000, "endsAt {} ms ahead", ends_at - now);
        std::thread::sleep(Duration::from_secs(2));
    }
    // The collector stops sending (killed, as a crash): Alertmanager
    // resolves the alert by itself once the last endsAt passes.
    let stopped_at = std::time::Instant::now();
    let _ = collector.kill();
    assert!(active().is_some(), "still active right after the last send");
    assert!(wait_until(Duration::from_secs(60), || alertmanager
        .alerts()
        .is_empty()));
    assert!(stopped_at.elapsed() <= Duration::from_secs(30));
}

#[test]
fn the_status_endpoint_shows_a_pasted_files_secrets_as_secret_and_amtool_still_reads_it() {
    // Issue 21 item 6 / issue 25: /api/v2/status shows the loaded file as
    // Alertmanager does, every secret as `<secret>`.
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("alertmanager.yml");
    std::fs::write(
        &file,
        "global:\n  smtp_smarthost: '127.0.0.1:2525'\n  smtp_from: alerts@county.test\n  smtp_auth_username: alerts\n  smtp_auth_password: 'smtp-pass-secret'\nroute:\n  receiver: ops\n  routes:\n  - matchers: ['team=\"db\"']\n    receiver: robot\nreceivers:\n- name: ops\n  email_configs:\n  - to: ops@county.test\n    auth_password: 'email-pass-secret'\n- name: robot\n  webhook_configs:\n  - url: 'http://127.0.0.1:9/robot/send?access_token=robot-token-secret'\n    http_config:\n      authorization:\n        credentials: 'bearer-cred-secret'\n",
    )
    .unwrap();
    let collector = Collector::start_with(Some(&collector_config(&file)), &[]);
    add_user(&collector.data_dir, "chief", "admin", "chief-password");
    let token = api_token(&collector.data_dir, "chief");
    let status = countywatch_e2e::http::request(
        collector.http_addr,
        "GET",
        "/api/v2/status",
        &[&format!("Authorization: Bearer {token}")],
        "",
    )
    .unwrap();
    assert_eq!(status.status, 200);
    let original =
        serde_json::from_str::<serde_json::Value>(&status.body).unwrap()["config"]["original"]
            .as_str()
            .unwrap()
            .to_string();
    assert!(!original.contains("-secret"), "{original}");
    assert_eq!(original.matches("<secret>").count(), 4, "{original}");
    assert!(original.contains("smtp_auth_username"), "{original}");
    // amtool still reads the routes from it.
    let http_config = directory.path().join("amtool-http.yml");
    std::fs::write(
        &http_config,
        format!("authorization:\n  credentials: {token}\n"),
    )
    .unwrap();
    let output = std::process::Command::new("amtool")
        .args(["config", "routes", "test"])
        .arg(format!("--alertmanager.url=http://{}", collector.http_addr))
        .arg(format!("--http.config.file={}", http_config.display()))
        .arg("team=db")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "robot\n");
}

#[test]
fn open_alerts_read_shows_anonymous_callers_alerting_rule_alerts_and_never_detections() {
    // Issue 21 item 6: `http.open_alerts_read: true` opens GET
    // /api/v2/alerts as an Alertmanager's is open, for alerting-rule alerts
    // only; a detection's alert (user names, addresses) still needs a
    // viewer, and so does everything else.
    let collector = Collector::start_with(
        Some("http:\n  open_alerts_read: true\nnotify:\n  accept_alerts_api: true\n"),
        &[],
    );
    let addr = collector.http_addr;
    post_alerts(
        addr,
        &json!([{"labels": {"alertname": "DiskFull", "instance": "web1"}}]),
    );
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    crate::day_one::append_failures(&log, "203.0.113.77", 15);
    let agent = crate::events::start_agent("web1", &collector, &crate::events::config(&log));
    add_user(&collector.data_dir, "reader", "viewer", "reader-password-1");
    let viewer = format!(
        "Authorization: Bearer {}",
        api_token(&collector.data_dir, "reader")
    );
    let list = |headers: &[&str]| -> (u16, Vec<serde_json::Value>) {
        let response =
            countywatch_e2e::http::request(addr, "GET", "/api/v2/alerts", headers, "").unwrap();
        let alerts = serde_json::from_str(&response.body).unwrap_or_default();
        (response.status, alerts)
    };
    let mut seen = Vec::new();
    assert!(
        wait_until(Duration::from_secs(60), || {
            seen = list(&[&viewer]).1;
            seen.len() >= 2
        }),
        "a viewer sees the rule's and the detection's alerts: {seen:?}"
    );
    let (status, open) = list(&[]);
    assert_eq!(status, 200);
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["labels"]["alertname"], "DiskFull");
    assert!(!format!("{open:?}").contains("203.0.113.77"), "{open:?}");
    // Nothing else opens.
    for (method, path) in [
        ("GET", "/api/v2/silences"),
        ("GET", "/api/v2/status"),
        ("POST", "/api/v2/alerts"),
        ("POST", "/-/reload"),
    ] {
        let response = countywatch_e2e::http::request(addr, method, path, &[], "").unwrap();
        assert_eq!(response.status, 401, "{method} {path}");
    }
    drop(agent);
}

/// A templates file in the style of Alertmanager's documentation
/// (`notification_examples.md`) as a county would keep it.
const COUNTY_TMPL: &str = r#"{{ define "county.subject" }}[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] {{ .GroupLabels.SortedPairs.Values | join " " }} ({{ .CommonLabels.department }}){{ end }}

{{ define "county.text" -}}
{{ range .Alerts -}}
Alert: {{ .Labels.alertname }} on {{ .Labels.instance }}
{{- if .Annotations.summary }}
Summary: {{ .Annotations.summary }}
{{- end }}
{{ end -}}
See {{ .ExternalURL }}
{{- end }}

{{ define "county.html" }}<h1>{{ template "county.subject" . }}</h1>
{{ range .Alerts }}<p>{{ .Labels.instance | title }}: {{ .Annotations.summary }}</p>
{{ end }}{{ end }}
"#;

#[test]
fn an_alertmanager_yml_s_go_templates_write_the_email() {
    // Issue 25: `templates:` files with `define` blocks, called from the
    // email's headers.Subject, text and html, render a real email.
    let smtp = SmtpServer::plain();
    let directory = tempfile::tempdir().unwrap();
    std::fs::create_dir(directory.path().join("templates")).unwrap();
    std::fs::write(directory.path().join("templates/county.tmpl"), COUNTY_TMPL).unwrap();
    let file = directory.path().join("alertmanager.yml");
    std::fs::write(
        &file,
        format!(
            "global:\n  smtp_smarthost: '{}'\n  smtp_from: alerts@county.test\n  smtp_require_tls: false\ntemplates: ['templates/*.tmpl']\nroute:\n  receiver: mail\n  group_by: [alertname]\n  group_wait: 1s\nreceivers:\n- name: mail\n  email_configs:\n  - to: ops@county.test\n    headers:\n      Subject: '{{{{ template \"county.subject\" . }}}}'\n    text: '{{{{ template \"county.text\" . }}}}'\n    html: '{{{{ template \"county.html\" . }}}}'\n",
            smtp.addr
        ),
    )
    .unwrap();
    let collector = Collector::start_with(
        Some(&format!(
            "notify:\n  accept_alerts_api: true\n  external_url: http://collector.test\n  alertmanager_config: {}\n",
            file.display()
        )),
        &[],
    );
    post_alerts(
        collector.http_addr,
        &json!(
            ["web1", "web2"]
                .iter()
                .map(|host| json!({
                    "labels": {"alertname": "DiskFull", "instance": host, "department": "财政局"},
                    "annotations": {"summary": format!("{host} <disk> full")},
                }))
                .collect::<Vec<_>>()
        ),
    );
    let messages = smtp.wait_for(1, Duration::from_secs(30));
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let message = &messages[0];
    assert_eq!(message["subject"], "[FIRING:2] DiskFull (财政局)");
    assert_eq!(
        message["text"]
            .as_str()
            .unwrap()
            .replace("\r\n", "\n")
            .trim_end(),
        "Alert: DiskFull on web1\nSummary: web1 <disk> full\nAlert: DiskFull on web2\nSummary: web2 <disk> full\nSee http://collector.test"
    );
    let html = message["html"].as_str().unwrap();
    assert!(
        html.contains("<h1>[FIRING:2] DiskFull (财政局)</h1>")
            && html.contains("<p>Web1: web1 &lt;disk&gt; full</p>"),
        "{html}"
    );
}
