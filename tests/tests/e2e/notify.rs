//! Notifications end to end (issue 8): alerts posted to the collector's
//! Alertmanager-compatible API reach a real SMTP server (aiosmtpd, plain,
//! STARTTLS and implicit TLS, with AUTH), a recording HTTP server standing in
//! for webhooks and the DingTalk / WeCom / Feishu robots, and a real
//! Alertmanager; grouped, silenced, retried, and never lost across an SMTP
//! outage or a `kill -9` of the collector.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use countywatch_e2e::notify_peers::{
    AlertmanagerPeer, Recorder, Reply, SmtpMode, SmtpServer, TestPki, outbox_rows, post_alerts,
    request,
};
use countywatch_e2e::process::wait_until;
use countywatch_e2e::{Collector, binary};
use serde_json::{Value, json};

const OK_BOT: &str = r#"{"errcode":0,"errmsg":"ok","code":0,"msg":"success"}"#;

fn alert(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(name, value)| (name.to_string(), json!(value)))
        .collect();
    let annotations: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(name, value)| (name.to_string(), json!(value)))
        .collect();
    json!({"labels": labels, "annotations": annotations, "generatorURL": "http://rules.test/r/1"})
}

fn resolved(labels: &[(&str, &str)]) -> Value {
    let mut value = alert(labels, &[]);
    value["endsAt"] = json!("2000-01-01T00:00:00Z");
    value
}

/// A collector config accepting alerts on the API, with `notify` appended.
fn config(notify: &str) -> String {
    format!(
        "notify:\n  accept_alerts_api: true\n  accept_silences_api: true\n  external_url: http://collector.test\n{notify}"
    )
}

fn email_receiver(name: &str, smtp: &SmtpServer, extra: &str) -> String {
    format!(
        "  - name: {name}\n    email_configs:\n      - to: ['值班 <oncall@county.test>', ops@county.test]\n        cc: [chief@county.test]\n        from: 'countywatch <alerts@county.test>'\n        smarthost: {}\n        tls: none\n        timeout: 5s\n{extra}",
        smtp.addr
    )
}

fn metric(collector: &Collector, series: &str) -> f64 {
    countywatch_e2e::http::sample_value(&collector.metrics(), series).unwrap_or(-1.0)
}

#[test]
fn email_is_grouped_and_chinese_arrives_intact() {
    let smtp = SmtpServer::plain();
    let collector = Collector::start_with(
        Some(&config(&format!(
            "  language: zh\n  route:\n    receiver: mail\n    group_by: [alertname]\n    group_wait: 1s\n  receivers:\n{}",
            email_receiver("mail", &smtp, "")
        ))),
        &[],
    );
    let alerts: Vec<Value> = ["web1", "web2", "web3"]
        .iter()
        .map(|host| {
            alert(
                &[
                    ("alertname", "磁盘将满"),
                    ("instance", host),
                    ("department", "财政局"),
                ],
                &[
                    ("summary", "/var 分区剩余不足 5%"),
                    ("description", "请清理日志"),
                ],
            )
        })
        .collect();
    post_alerts(collector.http_addr, &json!(alerts));
    let messages = smtp.wait_for(1, Duration::from_secs(20));
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let message = &messages[0];
    assert_eq!(message["subject"], "【告警:3】alertname=磁盘将满");
    // On the wire the subject was RFC 2047-encoded, not raw UTF-8.
    assert!(
        message["raw_subject"]
            .as_str()
            .unwrap()
            .contains("=?utf-8?"),
        "{message:#?}"
    );
    assert_eq!(message["from"], "countywatch <alerts@county.test>");
    assert_eq!(message["to"], "值班 <oncall@county.test>, ops@county.test");
    assert_eq!(message["cc"], "chief@county.test");
    let mut recipients: Vec<&str> = message["rcpt_tos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|to| to.as_str().unwrap())
        .collect();
    recipients.sort();
    assert_eq!(
        recipients,
        ["chief@county.test", "oncall@county.test", "ops@county.test"]
    );
    assert_eq!(message["content_type"], "multipart/alternative");
    assert!(!message["date"].as_str().unwrap().is_empty());
    assert!(
        message["message_id"]
            .as_str()
            .unwrap()
            .ends_with("@countywatch>"),
        "{message:#?}"
    );
    let text = message["text"].as_str().unwrap();
    assert!(text.contains("告警：共 3 条"), "{text}");
    assert!(text.contains("摘要：/var 分区剩余不足 5%"), "{text}");
    assert!(text.contains("department=财政局"), "{text}");
    assert!(
        text.contains("详情：http://collector.test/alerts/"),
        "{text}"
    );
    let html = message["html"].as_str().unwrap();
    assert!(html.contains("<td>/var 分区剩余不足 5%</td>"), "{html}");
    // Re-sending the same alerts is not news: still exactly one message.
    post_alerts(collector.http_addr, &json!(alerts));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(
        metric(
            &collector,
            "countywatch_notifications_total{receiver=\"mail\",status=\"success\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&collector, "countywatch_alerts{state=\"active\"}"),
        3.0
    );
    assert_eq!(metric(&collector, "countywatch_outbox_pending"), 0.0);
}

#[test]
fn email_over_starttls_and_implicit_tls_with_auth() {
    let pki = TestPki::generate();
    let starttls = SmtpServer::start(SmtpMode::Starttls, Some(&pki), Some(("robot", "秘密pass")));
    let implicit = SmtpServer::start(SmtpMode::Implicit, Some(&pki), Some(("robot", "秘密pass")));
    let password_file = pki.dir.path().join("smtp-password");
    std::fs::write(&password_file, "秘密pass\n").unwrap();
    let integration = |server: &SmtpServer, tls: &str| {
        format!(
            "      - to: [ops@county.test]\n        from: alerts@county.test\n        smarthost: 127.0.0.1:{}\n        tls: {tls}\n        ca_file: {}\n        auth_username: robot\n        auth_password_file: {}\n        send_resolved: true\n",
            server.addr.port(),
            pki.ca_file.display(),
            password_file.display()
        )
    };
    let collector = Collector::start_with(
        Some(&config(&format!(
            "  language: en\n  route:\n    receiver: mail\n    group_wait: 0s\n    group_interval: 1s\n  receivers:\n  - name: mail\n    email_configs:\n{}{}",
            integration(&starttls, "starttls"),
            integration(&implicit, "implicit")
        ))),
        &[],
    );
    post_alerts(
        collector.http_addr,
        &json!([alert(
            &[("alertname", "HostDown"), ("instance", "db1")],
            &[("summary", "db1 is down")]
        )]),
    );
    for server in [&starttls, &implicit] {
        let messages = server.wait_for(1, Duration::from_secs(20));
        assert_eq!(messages.len(), 1, "{}", collector.logs.all().join("\n"));
        assert_eq!(messages[0]["tls"], true);
        assert_eq!(messages[0]["auth"], true);
        assert_eq!(
            messages[0]["subject"],
            "[FIRING:1] alertname=HostDown, instance=db1"
        );
        assert!(
            messages[0]["text"]
                .as_str()
                .unwrap()
                .contains("Summary: db1 is down")
        );
    }
    // send_resolved: the resolution is mailed too.
    post_alerts(
        collector.http_addr,
        &json!([resolved(&[("alertname", "HostDown"), ("instance", "db1")])]),
    );
    for server in [&starttls, &implicit] {
        let messages = server.wait_for(2, Duration::from_secs(20));
        assert_eq!(messages.len(), 2);
        assert_eq!(
            messages[1]["subject"],
            "[RESOLVED:1] alertname=HostDown, instance=db1"
        );
    }
}

#[test]
fn a_storm_of_10000_alerts_for_500_hosts_makes_one_email_per_group() {
    let smtp = SmtpServer::plain();
    let collector = Collector::start_with(
        Some(&config(&format!(
            "  language: en\n  route:\n    receiver: mail\n    group_by: [alertname, department]\n    group_wait: 5s\n    group_interval: 1h\n  receivers:\n{}",
            email_receiver("mail", &smtp, "")
        ))),
        &[],
    );
    let names = [
        "HighCpu",
        "DiskFull",
        "MemoryLow",
        "SshBruteForce",
        "ServiceDown",
    ];
    let departments = ["finance", "tax", "police", "health"];
    let mut alerts = Vec::new();
    for index in 0..10_000usize {
        let host = format!("host{:03}", index % 500);
        let department = departments[(index / 500) % 4];
        let name = names[(index / 2_000) % 5];
        let check = format!("check{index}");
        alerts.push(alert(
            &[
                ("alertname", name),
                ("instance", &host),
                ("department", department),
                ("check", &check),
            ],
            &[("summary", "storm")],
        ));
    }
    for chunk in alerts.chunks(1_000) {
        post_alerts(collector.http_addr, &json!(chunk));
    }
    let messages = smtp.wait_for(20, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    let messages_after = smtp.messages();
    assert_eq!(messages_after.len(), 20, "expected one email per group");
    assert_eq!(messages.len(), 20);
    let subjects: BTreeSet<String> = messages_after
        .iter()
        .map(|message| message["subject"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(subjects.len(), 20, "{subjects:#?}");
    assert!(
        subjects.contains("[FIRING:500] alertname=DiskFull, department=tax"),
        "{subjects:#?}"
    );
    // A storm message lists a bounded number of alerts and counts the rest.
    let text = messages_after[0]["text"].as_str().unwrap();
    assert!(text.contains("... and 470 more alert(s)."), "{text}");
    assert_eq!(
        metric(&collector, "countywatch_alerts{state=\"active\"}"),
        10_000.0
    );
}

#[test]
fn smtp_outage_then_back_delivers_every_notification_once() {
    // The issue's outage: 5 minutes, with the backoff capped at 10 s so the
    // test does not wait out a long final step once the server is back.
    let mut smtp = SmtpServer::plain();
    smtp.stop();
    let collector = Collector::start_with(
        Some(&config(&format!(
            "  outbox:\n    initial_backoff: 200ms\n    max_backoff: 10s\n  route:\n    receiver: mail\n    group_by: [instance]\n    group_wait: 0s\n  receivers:\n{}",
            email_receiver("mail", &smtp, "")
        ))),
        &[],
    );
    let alerts: Vec<Value> = (0..10)
        .map(|index| {
            alert(
                &[("alertname", "Down"), ("instance", &format!("web{index}"))],
                &[],
            )
        })
        .collect();
    post_alerts(collector.http_addr, &json!(alerts));
    assert!(wait_until(Duration::from_secs(20), || {
        metric(
            &collector,
            "countywatch_notifications_total{receiver=\"mail\",status=\"retry\"}",
        ) >= 10.0
    }));
    assert_eq!(metric(&collector, "countywatch_outbox_pending"), 10.0);
    std::thread::sleep(Duration::from_secs(300));
    assert_eq!(
        metric(&collector, "countywatch_outbox_pending"),
        10.0,
        "nothing given up during the outage"
    );
    smtp.resume();
    let messages = smtp.wait_for(10, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(smtp.messages().len(), 10, "{messages:#?}");
    let subjects: BTreeSet<String> = messages
        .iter()
        .map(|message| message["subject"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(subjects.len(), 10);
    assert_eq!(metric(&collector, "countywatch_outbox_pending"), 0.0);
    assert!(collector.logs.contains("notification failed, will retry"));
    assert!(
        collector
            .logs
            .contains("notification delivered after retries")
    );
}

#[test]
fn kill_9_with_50_notifications_in_the_outbox_loses_none_and_repeats_none() {
    let mut smtp = SmtpServer::plain();
    smtp.stop();
    let collector = Collector::start_with(
        Some(&config(&format!(
            "  outbox:\n    initial_backoff: 5s\n    max_backoff: 5s\n  route:\n    receiver: mail\n    group_by: [instance]\n    group_wait: 0s\n  receivers:\n{}",
            email_receiver("mail", &smtp, "")
        ))),
        &[],
    );
    let alerts: Vec<Value> = (0..50)
        .map(|index| {
            alert(
                &[
                    ("alertname", "Down"),
                    ("instance", &format!("host{index:02}")),
                ],
                &[],
            )
        })
        .collect();
    post_alerts(collector.http_addr, &json!(alerts));
    let data_dir = collector.data_dir.clone();
    let (ingest, enroll) = (collector.ingest_addr, collector.enroll_addr);
    assert!(wait_until(Duration::from_secs(20), || outbox_rows(
        &data_dir
    ) == 50));
    let dir = collector.kill();
    smtp.resume();
    let collector = Collector::restart(dir, &data_dir, ingest, enroll);
    let messages = smtp.wait_for(50, Duration::from_secs(30));
    // The producers re-submit the same alerts after the restart: the
    // persisted notification log knows they were already sent.
    post_alerts(collector.http_addr, &json!(alerts));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(smtp.messages().len(), 50, "{messages:#?}");
    let subjects: BTreeSet<String> = smtp
        .messages()
        .iter()
        .map(|message| message["subject"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(subjects.len(), 50, "every host once");
    assert!(wait_until(Duration::from_secs(10), || outbox_rows(
        &data_dir
    ) == 0));
}

#[test]
fn webhook_gets_alertmanagers_payload_and_is_retried_after_500() {
    let hook = Recorder::start("{}");
    hook.script(vec![
        Reply::Status(500, "busy".to_string()),
        Reply::Status(503, "still busy".to_string()),
    ]);
    let collector = Collector::start_with(
        Some(&config(&format!(
            "  outbox:\n    initial_backoff: 100ms\n    max_backoff: 500ms\n  route:\n    receiver: hook\n    group_by: [alertname]\n    group_wait: 0s\n    group_interval: 1s\n  receivers:\n  - name: hook\n    webhook_configs:\n      - url: {}\n        bearer_token: s3cret\n",
            hook.url("/alerts?source=countywatch")
        ))),
        &[],
    );
    post_alerts(
        collector.http_addr,
        &json!([alert(
            &[
                ("alertname", "DiskFull"),
                ("instance", "web1"),
                ("severity", "warning")
            ],
            &[("summary", "disk")]
        )]),
    );
    let requests = hook.wait_for(3, Duration::from_secs(20));
    assert_eq!(requests.len(), 3, "two refusals, then accepted");
    let last = &requests[2];
    assert_eq!(last.method, "POST");
    assert_eq!(last.path, "/alerts?source=countywatch");
    assert_eq!(last.header("authorization"), Some("Bearer s3cret"));
    assert_eq!(last.header("content-type"), Some("application/json"));
    let payload = last.json();
    assert_eq!(payload["version"], "4");
    assert_eq!(payload["status"], "firing");
    assert_eq!(payload["receiver"], "hook");
    assert_eq!(payload["groupLabels"], json!({"alertname": "DiskFull"}));
    assert_eq!(payload["commonLabels"]["instance"], "web1");
    assert_eq!(payload["commonAnnotations"], json!({"summary": "disk"}));
    assert_eq!(payload["externalURL"], "http://collector.test");
    assert_eq!(payload["truncatedAlerts"], 0);
    let first = &payload["alerts"][0];
    assert_eq!(first["status"], "firing");
    assert_eq!(first["generatorURL"], "http://rules.test/r/1");
    assert_eq!(first["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(first["fingerprint"].as_str().unwrap().len(), 16);
    assert!(first["startsAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        requests[0].body, requests[2].body,
        "a retry sends the same notification"
    );
    assert_eq!(
        metric(
            &collector,
            "countywatch_notifications_total{receiver=\"hook\",status=\"retry\"}"
        ),
        2.0
    );
    // Resolution: send_resolved is on by default for webhooks.
    post_alerts(
        collector.http_addr,
        &json!([resolved(&[
            ("alertname", "DiskFull"),
            ("instance", "web1"),
            ("severity", "warning")
        ])]),
    );
    let requests = hook.wait_for(4, Duration::from_secs(20));
    let payload = requests[3].json();
    assert_eq!(payload["status"], "resolved");
    // The end came before the start the collector knew; it is clamped to it.
    assert_eq!(
        payload["alerts"][0]["endsAt"],
        payload["alerts"][0]["startsAt"]
    );
}

#[test]
fn a_hanging_receiver_is_bounded_by_its_timeout_and_delays_no_other() {
    let hanging = Recorder::start("{}");
    hanging.set_default(Reply::Hang);
    let healthy = Recorder::start("{}");
    let collector = Collector::start_with(
        Some(&config(&format!(
            "  outbox:\n    initial_backoff: 100ms\n    max_backoff: 200ms\n  route:\n    receiver: healthy\n    group_by: [instance]\n    group_wait: 0s\n    routes:\n    - receiver: stuck\n      continue: true\n    - receiver: healthy\n  receivers:\n  - name: stuck\n    webhook_configs:\n      - url: {}\n        timeout: 1s\n  - name: healthy\n    webhook_configs:\n      - url: {}\n",
            hanging.url("/"),
            healthy.url("/")
        ))),
        &[],
    );
    for index in 0..3 {
        post_alerts(
            collector.http_addr,
            &json!([alert(
                &[("alertname", "Down"), ("instance", &format!("h{index}"))],
                &[]
            )]),
        );
        assert_eq!(
            healthy.wait_for(index + 1, Duration::from_secs(10)).len(),
            index + 1
        );
    }
    // The stuck receiver was tried, timed out after 1 s, and is tried again.
    assert!(wait_until(Duration::from_secs(20), || {
        metric(
            &collector,
            "countywatch_notifications_total{receiver=\"stuck\",status=\"retry\"}",
        ) >= 2.0
    }));
    assert!(hanging.requests().len() >= 2);
    assert!(collector.logs.contains("no answer from"));
}

#[test]
fn an_undeliverable_notification_is_counted_and_reported_to_the_fallback() {
    let broken = Recorder::start("{}");
    broken.set_default(Reply::Status(502, "bad gateway".to_string()));
    let fallback = Recorder::start("{}");
    let collector = Collector::start_with(
        Some(&config(&format!(
            "  outbox:\n    initial_backoff: 100ms\n    max_backoff: 300ms\n    deadline: 2s\n    fallback_receiver: fallback\n  route:\n    receiver: broken\n    group_wait: 0s\n  receivers:\n  - name: broken\n    webhook_configs:\n      - url: {}\n  - name: fallback\n    webhook_configs:\n      - url: {}\n",
            broken.url("/"),
            fallback.url("/")
        ))),
        &[],
    );
    post_alerts(
        collector.http_addr,
        &json!([alert(&[("alertname", "Down")], &[])]),
    );
    let reports = fallback.wait_for(1, Duration::from_secs(20));
    assert_eq!(reports.len(), 1);
    let payload = reports[0].json();
    assert_eq!(payload["commonLabels"]["alertname"], "notification_failed");
    assert_eq!(payload["commonLabels"]["receiver"], "broken");
    assert!(
        payload["commonAnnotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("502")
    );
    assert_eq!(
        metric(
            &collector,
            "countywatch_notifications_failed_total{receiver=\"broken\"}"
        ),
        1.0
    );
    assert!(broken.requests().len() >= 3);
    // The fallback's receiver has the report as soon as the request is
    // sent; the outbox forgets it only when the answer is back, a moment
    // later (a loaded machine showed 1 here).
    assert!(
        wait_until(Duration::from_secs(10), || metric(
            &collector,
            "countywatch_outbox_pending"
        ) == 0.0),
        "outbox_pending stays {}",
        metric(&collector, "countywatch_outbox_pending")
    );
}

fn verify_signature(python: &str) -> String {
    let output = Command::new("/usr/bin/python3")
        .args(["-c", python])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

#[test]
fn dingtalk_wecom_and_feishu_robots() {
    let bots = Recorder::start(OK_BOT);
    let collector = Collector::start_with(
        Some(&config(&format!(
            "  language: zh\n  route:\n    receiver: bots\n    group_wait: 0s\n  receivers:\n  - name: bots\n    dingtalk_configs:\n      - url: {}\n        secret: SECdingtalk\n    wecom_configs:\n      - url: {}\n    feishu_configs:\n      - url: {}\n        secret: feishu-secret\n",
            bots.url("/robot/send?access_token=abc"),
            bots.url("/cgi-bin/webhook/send?key=k"),
            bots.url("/open-apis/bot/v2/hook/h")
        ))),
        &[],
    );
    post_alerts(
        collector.http_addr,
        &json!([alert(
            &[("alertname", "暴力破解"), ("instance", "gw1")],
            &[("summary", "SSH 登录失败 300 次")]
        )]),
    );
    let requests = bots.wait_for(3, Duration::from_secs(20));
    assert_eq!(requests.len(), 3);
    let find = |prefix: &str| {
        requests
            .iter()
            .find(|request| request.path.starts_with(prefix))
            .unwrap()
    };

    let dingtalk = find("/robot/send");
    let body = dingtalk.json();
    assert_eq!(body["msgtype"], "markdown");
    assert_eq!(
        body["markdown"]["title"],
        "【告警:1】alertname=暴力破解, instance=gw1"
    );
    assert!(
        body["markdown"]["text"]
            .as_str()
            .unwrap()
            .contains("SSH 登录失败 300 次")
    );
    let query = dingtalk.path.split_once('?').unwrap().1;
    assert!(query.starts_with("access_token=abc&timestamp="), "{query}");
    let expected = verify_signature(&format!(
        "import base64,hashlib,hmac,urllib.parse\nq=dict(urllib.parse.parse_qsl('{query}'))\nt=q['timestamp']\ns='SECdingtalk'\nok=base64.b64encode(hmac.new(s.encode(),(t+'\\n'+s).encode(),hashlib.sha256).digest()).decode()==q['sign']\nprint(ok)"
    ));
    assert_eq!(expected, "True", "DingTalk signature");

    let wecom = find("/cgi-bin/webhook/send");
    let body = wecom.json();
    assert_eq!(body["msgtype"], "markdown");
    assert!(
        body["markdown"]["content"]
            .as_str()
            .unwrap()
            .contains("**【告警】暴力破解**")
    );

    let feishu = find("/open-apis/bot/v2/hook/h");
    let body = feishu.json();
    assert_eq!(body["msg_type"], "interactive");
    assert_eq!(
        body["card"]["header"]["title"]["content"],
        "【告警:1】alertname=暴力破解, instance=gw1"
    );
    assert!(
        body["card"]["elements"][0]["content"]
            .as_str()
            .unwrap()
            .contains("gw1")
    );
    let timestamp = body["timestamp"].as_str().unwrap();
    let sign = body["sign"].as_str().unwrap();
    let expected = verify_signature(&format!(
        "import base64,hashlib,hmac\nk='{timestamp}'+'\\n'+'feishu-secret'\nprint(base64.b64encode(hmac.new(k.encode(),b'',hashlib.sha256).digest()).decode()=='{sign}')"
    ));
    assert_eq!(expected, "True", "Feishu signature");
}

#[test]
fn alerts_are_forwarded_to_a_real_alertmanager() {
    let alertmanager = AlertmanagerPeer::start();
    let collector = Collector::start_with(
        Some(&config(&format!(
            "  route:\n    receiver: am\n    group_by: ['...']\n    group_wait: 0s\n    group_interval: 1s\n  receivers:\n  - name: am\n    alertmanager_configs:\n      - url: http://{}\n",
            alertmanager.addr
        ))),
        &[],
    );
    let labels = [
        ("alertname", "HostDown"),
        ("instance", "web7"),
        ("department", "民政局"),
    ];
    post_alerts(
        collector.http_addr,
        &json!([alert(&labels, &[("summary", "web7 down")])]),
    );
    let mut found = Vec::new();
    assert!(wait_until(Duration::from_secs(20), || {
        found = alertmanager.alerts();
        !found.is_empty()
    }));
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0]["labels"],
        json!({"alertname": "HostDown", "instance": "web7", "department": "民政局"})
    );
    assert_eq!(found[0]["annotations"]["summary"], "web7 down");
    assert_eq!(found[0]["generatorURL"], "http://rules.test/r/1");
    assert_eq!(found[0]["status"]["state"], "active");
    // The resolution is forwarded and Alertmanager drops the alert.
    post_alerts(collector.http_addr, &json!([resolved(&labels)]));
    assert!(wait_until(Duration::from_secs(20), || alertmanager
        .alerts()
        .is_empty()));
}

fn collector_command(collector: &Collector, arguments: &[&str]) -> (bool, String, String) {
    let output = Command::new(binary("countywatch-collector"))
        .args(arguments)
        .arg("--data-dir")
        .arg(&collector.data_dir)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn silences_from_the_cli_and_the_api_with_notices_and_metrics() {
    let team = Recorder::start("{}");
    let notices = Recorder::start("{}");
    let collector = Collector::start_with(
        Some(&config(&format!(
            "  silence_notifications:\n    receiver: notices\n  route:\n    receiver: team\n    group_by: [instance]\n    group_wait: 0s\n    group_interval: 1s\n  receivers:\n  - name: team\n    webhook_configs:\n      - url: {}\n  - name: notices\n    webhook_configs:\n      - url: {}\n",
            team.url("/"),
            notices.url("/")
        ))),
        &[],
    );
    let (ok, stdout, stderr) = collector_command(
        &collector,
        &[
            "silence",
            "add",
            "--matcher",
            "instance=\"web1\"",
            "--duration",
            "2h",
            "--comment",
            "maintenance",
            "--author",
            "zhang.wei",
        ],
    );
    assert!(ok, "{stderr}");
    let id = stdout.trim().to_string();
    assert_eq!(id.len(), 36, "a UUID, as Alertmanager gives: {stdout}");
    // The running collector notices the CLI's silence and announces it.
    let created = notices.wait_for(1, Duration::from_secs(10));
    let payload = created[0].json();
    assert_eq!(payload["commonLabels"]["alertname"], "SilenceCreated");
    assert_eq!(payload["commonLabels"]["silence_id"], id.as_str());
    assert_eq!(payload["commonAnnotations"]["created_by"], "zhang.wei");
    assert_eq!(payload["commonAnnotations"]["comment"], "maintenance");
    assert_eq!(
        payload["commonAnnotations"]["matchers"],
        "instance=\"web1\""
    );
    assert!(wait_until(Duration::from_secs(5), || {
        metric(&collector, "countywatch_silences{state=\"active\"}") == 1.0
    }));

    post_alerts(
        collector.http_addr,
        &json!([
            alert(&[("alertname", "Down"), ("instance", "web1")], &[]),
            alert(&[("alertname", "Down"), ("instance", "web2")], &[]),
        ]),
    );
    let delivered = team.wait_for(1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(team.requests().len(), 1, "web1 is silenced");
    assert_eq!(delivered[0].json()["commonLabels"]["instance"], "web2");
    assert!(wait_until(Duration::from_secs(5), || {
        metric(&collector, "countywatch_alerts{state=\"suppressed\"}") == 1.0
    }));

    let (ok, listing, _) = collector_command(&collector, &["silence", "list"]);
    assert!(ok);
    assert!(
        listing.contains(&id) && listing.contains("zhang.wei") && listing.contains("maintenance"),
        "{listing}"
    );
    let (status, body) = request(collector.http_addr, "GET", "/api/v2/silences", "");
    assert_eq!(status, 200);
    let silences: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(silences[0]["createdBy"], "zhang.wei");
    assert_eq!(silences[0]["status"]["state"], "active");
    assert_eq!(
        silences[0]["matchers"][0],
        json!({"name": "instance", "value": "web1", "isRegex": false, "isEqual": true})
    );

    let (ok, _, stderr) = collector_command(&collector, &["silence", "expire", &id]);
    assert!(ok, "{stderr}");
    let expired = notices.wait_for(2, Duration::from_secs(10));
    assert_eq!(
        expired[1].json()["commonLabels"]["alertname"],
        "SilenceExpired"
    );
    // web1 is no longer silenced: it is notified now.
    post_alerts(
        collector.http_addr,
        &json!([alert(&[("alertname", "Down"), ("instance", "web1")], &[])]),
    );
    let delivered = team.wait_for(2, Duration::from_secs(10));
    assert_eq!(delivered[1].json()["commonLabels"]["instance"], "web1");
    assert!(wait_until(Duration::from_secs(5), || {
        metric(&collector, "countywatch_silences{state=\"expired\"}") == 1.0
    }));

    // The API: create (Alertmanager's shape) and expire.
    let (status, body) = request(
        collector.http_addr,
        "POST",
        "/api/v2/silences",
        &json!({
            "matchers": [{"name": "alertname", "value": "Disk.*", "isRegex": true}],
            "startsAt": "2000-01-01T00:00:00Z",
            "endsAt": "2999-01-01T00:00:00Z",
            "createdBy": "api-user",
            "comment": "via API",
        })
        .to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let api_id = serde_json::from_str::<Value>(&body).unwrap()["silenceID"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = request(
        collector.http_addr,
        "DELETE",
        &format!("/api/v2/silence/{api_id}"),
        "",
    );
    assert_eq!(status, 200);
    let (status, _) = request(
        collector.http_addr,
        "DELETE",
        &format!("/api/v2/silence/{api_id}"),
        "",
    );
    assert_eq!(status, 404);
    // Refusals name the problem.
    let (ok, _, stderr) = collector_command(
        &collector,
        &[
            "silence",
            "add",
            "--matcher",
            "instance=~\".*\"",
            "--duration",
            "1h",
            "--comment",
            "x",
        ],
    );
    assert!(!ok);
    assert!(
        stderr.contains("must not match the empty string"),
        "{stderr}"
    );
}

#[test]
fn notify_test_sends_through_every_integration_of_the_receiver() {
    let smtp = SmtpServer::plain();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("collector.yaml");
    std::fs::write(
        &config_path,
        format!(
            "data_dir: {}\nnotify:\n  route:\n    receiver: mail\n  receivers:\n{}",
            dir.path().join("data").display(),
            email_receiver("mail", &smtp, "")
        ),
    )
    .unwrap();
    let output = Command::new(binary("countywatch-collector"))
        .args(["notify", "test", "--receiver", "mail", "--config"])
        .arg(&config_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("mail/0 (email): sent"), "{stdout}");
    let messages = smtp.wait_for(1, Duration::from_secs(10));
    assert!(
        messages[0]["text"]
            .as_str()
            .unwrap()
            .contains("CountywatchTest")
    );
    // An unknown receiver and an unreachable server fail with a message.
    let output = Command::new(binary("countywatch-collector"))
        .args(["notify", "test", "--receiver", "nobody", "--config"])
        .arg(&config_path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no receiver named \"nobody\""));
    drop(smtp);
    let output = Command::new(binary("countywatch-collector"))
        .args(["notify", "test", "--receiver", "mail", "--config"])
        .arg(&config_path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("failed (temporary)"));
}

#[test]
fn bad_notify_configs_are_refused_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        "notify:\n  route:\n    receiver: nobody\n    mute_time_intervals: [never]\n  receivers:\n  - name: mail\n    email_configs:\n    - to: [a@b.c]\n      from: x@y.z\n      smarthost: no-port\n",
    )
    .unwrap();
    let output = Command::new(binary("countywatch-collector"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("c.yaml:3:15: no receiver named \"nobody\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("c.yaml:4:27: no time interval named \"never\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("c.yaml:10:18: smarthost \"no-port\" is not HOST:PORT"),
        "{stderr}"
    );
    std::fs::write(&path, "notify:\n  route:\n    matchers: ['a=~\"(\"']\n").unwrap();
    let output = Command::new(binary("countywatch-collector"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("c.yaml:3:") && stderr.contains("invalid regex"),
        "{stderr}"
    );
}

#[test]
fn the_shipped_notify_example_is_valid() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/notify.example.yaml");
    let output = Command::new(binary("countywatch-collector"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn inhibition_the_dead_mans_switch_and_resolved_notices_for_silenced_alerts() {
    let hook = Recorder::start("{}");
    let collector = Collector::start_with(
        Some(&config(&format!(
            "  heartbeat:\n    matchers: ['alertname=\"Watchdog\"']\n    timeout: 3s\n  inhibit_rules:\n  - source_matchers: ['alertname=\"HostDown\"']\n    target_matchers: ['alertname!=\"HostDown\"']\n    equal: [instance]\n  route:\n    receiver: hook\n    group_by: ['...']\n    group_wait: 0s\n    group_interval: 1s\n    routes:\n    - matchers: ['alertname=\"Watchdog\"']\n      receiver: blackhole\n  receivers:\n  - name: blackhole\n  - name: hook\n    webhook_configs:\n      - url: {}\n",
            hook.url("/")
        ))),
        &[],
    );
    let names = |requests: &[countywatch_e2e::notify_peers::Recorded]| -> Vec<String> {
        requests
            .iter()
            .map(|request| {
                let payload = request.json();
                format!(
                    "{}:{}",
                    payload["commonLabels"]["alertname"].as_str().unwrap_or(""),
                    payload["status"].as_str().unwrap_or("")
                )
            })
            .collect()
    };
    // The heartbeat arrives, then stops: HeartbeatMissing after 3 s.
    post_alerts(
        collector.http_addr,
        &json!([alert(&[("alertname", "Watchdog")], &[])]),
    );
    let requests = hook.wait_for(1, Duration::from_secs(15));
    assert_eq!(names(&requests), ["HeartbeatMissing:firing"]);
    post_alerts(
        collector.http_addr,
        &json!([alert(&[("alertname", "Watchdog")], &[])]),
    );
    let requests = hook.wait_for(2, Duration::from_secs(10));
    assert_eq!(names(&requests[1..]), ["HeartbeatMissing:resolved"]);
    // Keep the heartbeat alive from here on.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let beating = {
        let stop = std::sync::Arc::clone(&stop);
        let addr = collector.http_addr;
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                post_alerts(addr, &json!([alert(&[("alertname", "Watchdog")], &[])]));
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    // A host that is down mutes its other alerts.
    post_alerts(
        collector.http_addr,
        &json!([
            alert(&[("alertname", "HostDown"), ("instance", "web1")], &[]),
            alert(&[("alertname", "DiskFull"), ("instance", "web1")], &[]),
        ]),
    );
    let requests = hook.wait_for(3, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(names(&hook.requests()[2..]), ["HostDown:firing"]);
    // An alert notified, then silenced, still gets its resolved notice.
    post_alerts(
        collector.http_addr,
        &json!([alert(&[("alertname", "CpuHot"), ("instance", "web2")], &[])]),
    );
    hook.wait_for(requests.len() + 1, Duration::from_secs(10));
    let (ok, _, stderr) = collector_command(
        &collector,
        &[
            "silence",
            "add",
            "--matcher",
            "alertname=CpuHot",
            "--duration",
            "1h",
            "--comment",
            "known",
        ],
    );
    assert!(ok, "{stderr}");
    std::thread::sleep(Duration::from_secs(2));
    post_alerts(
        collector.http_addr,
        &json!([resolved(&[("alertname", "CpuHot"), ("instance", "web2")])]),
    );
    let requests = hook.wait_for(5, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    beating.join().unwrap();
    assert_eq!(
        names(&hook.requests()[3..]),
        ["CpuHot:firing", "CpuHot:resolved"],
        "{requests:?}"
    );
}

#[test]
fn get_alerts_lists_firing_alerts_as_alertmanager_does() {
    let collector = Collector::start_with(
        Some(&config(
            "  route:\n    receiver: nobody\n    routes:\n    - matchers: [instance=~\"web-.*\"]\n      receiver: web\n      continue: true\n    - matchers: [severity=critical]\n      receiver: oncall\n  receivers:\n    - name: nobody\n    - name: web\n    - name: oncall\n  inhibit_rules:\n    - source_matchers: [severity=critical]\n      target_matchers: [severity=warning]\n      equal: [instance]\n",
        )),
        &[],
    );
    let labels = [
        ("alertname", "DiskFull"),
        ("instance", "web-01"),
        ("severity", "critical"),
    ];
    // Issue 25: an inhibited alert is listed suppressed, with the alert
    // inhibiting it, and every alert names its receivers in tree order.
    post_alerts(
        collector.http_addr,
        &json!([alert(
            &[
                ("alertname", "DiskSlow"),
                ("instance", "web-01"),
                ("severity", "warning")
            ],
            &[]
        )]),
    );
    post_alerts(
        collector.http_addr,
        &json!([
            alert(&labels, &[("summary", "磁盘已满")]),
            alert(&[("alertname", "LoadHigh"), ("instance", "web-02")], &[])
        ]),
    );
    let (status, body) = request(collector.http_addr, "GET", "/api/v2/alerts", "");
    assert_eq!(status, 200, "{body}");
    let listed: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(listed.len(), 3, "{body}");
    let find = |name: &str| {
        listed
            .iter()
            .find(|alert| alert["labels"]["alertname"] == name)
            .unwrap()
            .clone()
    };
    let disk = find("DiskFull");
    assert_eq!(disk["annotations"]["summary"], "磁盘已满");
    assert_eq!(disk["status"]["state"], "active");
    assert_eq!(disk["fingerprint"].as_str().unwrap().len(), 16);
    assert_eq!(
        disk["receivers"],
        json!([{"name": "web"}, {"name": "oncall"}])
    );
    let slow = find("DiskSlow");
    assert_eq!(slow["status"]["state"], "suppressed", "{body}");
    assert_eq!(slow["status"]["inhibitedBy"], json!([disk["fingerprint"]]));
    assert_eq!(find("LoadHigh")["receivers"], json!([{"name": "web"}]));

    // A silence suppresses it; a resolution removes the other.
    let silence = json!({
        "matchers": [{"name": "alertname", "value": "DiskFull", "isRegex": false}],
        "startsAt": "2000-01-01T00:00:00Z",
        "endsAt": "2999-01-01T00:00:00Z",
        "createdBy": "ops",
        "comment": "replacing the disk"
    });
    let (status, body) = request(
        collector.http_addr,
        "POST",
        "/api/v2/silences",
        &silence.to_string(),
    );
    assert_eq!(status, 200, "{body}");
    post_alerts(
        collector.http_addr,
        &json!([resolved(&[
            ("alertname", "LoadHigh"),
            ("instance", "web-02")
        ])]),
    );
    post_alerts(
        collector.http_addr,
        &json!([resolved(&[
            ("alertname", "DiskSlow"),
            ("instance", "web-01"),
            ("severity", "warning")
        ])]),
    );
    let (_, body) = request(collector.http_addr, "GET", "/api/v2/alerts", "");
    let listed: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(listed.len(), 1, "{body}");
    assert_eq!(listed[0]["status"]["state"], "suppressed", "{body}");
    assert_eq!(
        listed[0]["status"]["silencedBy"].as_array().unwrap().len(),
        1
    );
}

/// The Alertmanager configurations of the differential routing test.
fn alertmanager_testdata() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/alertmanager")
}

/// Runs a command and returns its exit status and standard output.
fn run_for_output(command: &mut Command) -> (Option<i32>, String) {
    let output = command.output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn routes_test_prints_what_amtool_prints_for_unmodified_alertmanager_files() {
    // Issue 25: Alertmanager's own routing test cases and three realistic
    // files, each label set fed to Debian's amtool and to the collector;
    // the matching trees and receiver lists must be identical.
    let directory = alertmanager_testdata();
    let cases = std::fs::read_to_string(directory.join("routes_cases.tsv")).unwrap();
    let mut compared = 0;
    let mut files = BTreeSet::new();
    for line in cases.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split('\t');
        let file = directory.join(fields.next().unwrap());
        let expected = fields.next().unwrap();
        let labels: Vec<&str> = fields.collect();
        let amtool = run_for_output(
            Command::new("amtool")
                .args(["config", "routes", "test", "--tree"])
                .arg(format!("--config.file={}", file.display()))
                .args(&labels),
        );
        let collector = run_for_output(
            Command::new(binary("countywatch-collector"))
                .args([
                    "notify",
                    "routes",
                    "test",
                    "--tree",
                    "--alertmanager-config",
                ])
                .arg(&file)
                .args(&labels),
        );
        // Label arguments amtool refuses (`msg=say "hi"`) must be refused
        // too: the exit status is compared with the output.
        assert_eq!(collector, amtool, "{line}");
        if expected != "-" {
            assert_eq!(amtool.1.lines().last(), Some(expected), "{line}");
        }
        files.insert(file);
        if amtool.0 == Some(0) {
            compared += 1;
        }
    }
    assert!(compared >= 100, "only {compared} label sets routed");
    for file in &files {
        let amtool = run_for_output(
            Command::new("amtool")
                .args(["config", "routes", "show"])
                .arg(format!("--config.file={}", file.display())),
        );
        let collector = run_for_output(
            Command::new(binary("countywatch-collector"))
                .args(["notify", "routes", "show", "--alertmanager-config"])
                .arg(file),
        );
        assert_eq!(collector, amtool, "routes show of {}", file.display());
    }
    // --verify-receivers fails as amtool's does, with its warning.
    let file = directory.join("route_test.yml");
    for receivers in ["notify-A", "notify-def"] {
        let amtool = run_for_output(
            Command::new("amtool")
                .args(["config", "routes", "test"])
                .arg(format!("--config.file={}", file.display()))
                .arg(format!("--verify.receivers={receivers}"))
                .arg("owner=team-A"),
        );
        let collector = run_for_output(
            Command::new(binary("countywatch-collector"))
                .args(["notify", "routes", "test", "--alertmanager-config"])
                .arg(&file)
                .args(["--verify-receivers", receivers, "owner=team-A"]),
        );
        assert_eq!(collector, amtool, "--verify-receivers {receivers}");
    }
}

#[test]
fn an_alertmanager_yml_groups_orders_and_keys_as_alertmanager_does() {
    // Issue 25: the same alertmanager.yml (apart from the webhook's path)
    // drives Debian's Alertmanager and the collector
    // (notify.alertmanager_config); the same alerts posted to both give
    // the same group, groupKey, alert order, labels (empty ones dropped),
    // fingerprints and truncation.
    let hook = Recorder::start("{}");
    let yaml = |path: &str| {
        format!(
            "global:\n  resolve_timeout: 5m\nroute:\n  receiver: default\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  routes:\n  - matchers: ['{{team=\"A\", severity=~\"warn.*\"}}']\n    receiver: team-a\n    group_by: [alertname, team]\n    routes:\n    - match: {{job: node}}\n      continue: true\nreceivers:\n- name: default\n- name: team-a\n  webhook_configs:\n  - url: '{}'\n    max_alerts: 2\n",
            hook.url(path)
        )
    };
    let alertmanager = AlertmanagerPeer::start_with_config(&yaml("/am"));
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("alertmanager.yml");
    std::fs::write(&file, yaml("/cw")).unwrap();
    let collector = Collector::start_with(
        Some(&config(&format!(
            "  alertmanager_config: {}\n",
            file.display()
        ))),
        &[],
    );
    let alerts: Vec<Value> = [
        ("web3", "node"),
        ("web1", "node"),
        ("db1", "mysql"),
        ("web2", ""),
        ("web0", "node"),
    ]
    .iter()
    .map(|(instance, job)| {
        alert(
            &[
                ("alertname", "DiskFull"),
                ("team", "A"),
                ("severity", "warning"),
                ("instance", instance),
                ("job", job),
                ("empty", ""),
            ],
            &[("summary", "disk")],
        )
    })
    .collect();
    post_alerts(collector.http_addr, &json!(alerts));
    let (status, body) = request(
        alertmanager.addr,
        "POST",
        "/api/v2/alerts",
        &json!(alerts).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    // Two groups each: job="node" alerts take the child route.
    let mut by_path: std::collections::BTreeMap<String, std::collections::BTreeMap<String, Value>> =
        Default::default();
    assert!(wait_until(Duration::from_secs(30), || {
        for recorded in hook.requests() {
            let payload = recorded.json();
            let key = payload["groupKey"].as_str().unwrap_or_default().to_string();
            by_path
                .entry(recorded.path.clone())
                .or_default()
                .entry(key)
                .or_insert(payload);
        }
        by_path.values().map(|groups| groups.len()).sum::<usize>() == 4
    }));
    let (am, cw) = (&by_path["/am"], &by_path["/cw"]);
    assert_eq!(
        am.keys().collect::<Vec<_>>(),
        [
            "{}/{severity=~\"warn.*\",team=\"A\"}/{job=\"node\"}:{alertname=\"DiskFull\", team=\"A\"}",
            "{}/{severity=~\"warn.*\",team=\"A\"}:{alertname=\"DiskFull\", team=\"A\"}"
        ]
    );
    assert_eq!(cw.keys().collect::<Vec<_>>(), am.keys().collect::<Vec<_>>());
    // Three node alerts, two sent: which two depends on the order.
    let node_group = am.values().next().unwrap();
    assert_eq!(node_group["truncatedAlerts"], 1);
    assert_eq!(node_group["alerts"][0]["labels"]["instance"], "web0");
    let summary = |payload: &Value| -> Vec<(Value, Value, Value)> {
        payload["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|alert| {
                (
                    alert["labels"].clone(),
                    alert["fingerprint"].clone(),
                    alert["status"].clone(),
                )
            })
            .collect()
    };
    let keys =
        |value: &Value| -> Vec<String> { value.as_object().unwrap().keys().cloned().collect() };
    for (group, am) in am {
        let cw = &cw[group];
        for key in [
            "receiver",
            "status",
            "groupLabels",
            "commonLabels",
            "truncatedAlerts",
        ] {
            assert_eq!(cw[key], am[key], "{key} of {group}");
        }
        assert_eq!(summary(cw), summary(am), "{group}");
        assert_eq!(keys(cw), keys(am), "{group}");
    }
    // All resolved: each group's resolved notification lists the same
    // alerts, in the same order, with the same truncation.
    let resolved_alerts: Vec<Value> = alerts
        .iter()
        .map(|alert| {
            let mut alert = alert.clone();
            alert["endsAt"] = json!("2000-01-01T00:00:00Z");
            alert
        })
        .collect();
    post_alerts(collector.http_addr, &json!(resolved_alerts));
    let (status, body) = request(
        alertmanager.addr,
        "POST",
        "/api/v2/alerts",
        &json!(resolved_alerts).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let mut resolved: std::collections::BTreeMap<(String, String), Value> = Default::default();
    assert!(wait_until(Duration::from_secs(30), || {
        for recorded in hook.requests() {
            let payload = recorded.json();
            if payload["status"] == "resolved" {
                let key = payload["groupKey"].as_str().unwrap_or_default().to_string();
                resolved.insert((recorded.path.clone(), key), payload);
            }
        }
        resolved.len() == 4
    }));
    for ((path, group), payload) in &resolved {
        if path != "/am" {
            continue;
        }
        let ours = &resolved[&("/cw".to_string(), group.clone())];
        assert_eq!(
            ours["truncatedAlerts"], payload["truncatedAlerts"],
            "{group}"
        );
        assert_eq!(summary(ours), summary(payload), "resolved {group}");
    }
}

#[test]
fn amtool_reads_routes_from_the_collectors_status_endpoint_as_an_admin() {
    // Issue 25: GET /api/v2/status serves the loaded alertmanager.yml, so
    // amtool's --alertmanager.url works against the collector; it is for
    // admins only, since the configuration names every receiver.
    let file = alertmanager_testdata().join("route_test.yml");
    let collector = Collector::start_with(
        Some(&config(&format!(
            "  alertmanager_config: {}\n",
            file.display()
        ))),
        &[],
    );
    let (status, _) = countywatch_e2e::http::get(collector.http_addr, "/api/v2/status")
        .map(|response| (response.status, response.body))
        .unwrap();
    assert_eq!(status, 401, "anonymous");
    countywatch_e2e::process::add_user(&collector.data_dir, "chief", "admin", "chief-password");
    let token = countywatch_e2e::process::api_token(&collector.data_dir, "chief");
    let http_config = collector.data_dir.join("amtool-http.yml");
    std::fs::write(
        &http_config,
        format!("authorization:\n  credentials: {token}\n"),
    )
    .unwrap();
    let remote = run_for_output(
        Command::new("amtool")
            .args(["config", "routes", "test"])
            .arg(format!("--alertmanager.url=http://{}", collector.http_addr))
            .arg(format!("--http.config.file={}", http_config.display()))
            .args(["owner=team-A", "env=production"]),
    );
    assert_eq!(
        remote,
        (
            Some(0),
            "notify-productionA,notify-productionB\n".to_string()
        )
    );
    let shown = run_for_output(
        Command::new("amtool")
            .args(["config", "show"])
            .arg(format!("--alertmanager.url=http://{}", collector.http_addr))
            .arg(format!("--http.config.file={}", http_config.display())),
    );
    assert_eq!(shown.0, Some(0));
    assert!(shown.1.contains("notify-productionB"), "{}", shown.1);
    // An operator may post alerts but not read the configuration.
    countywatch_e2e::process::add_user(&collector.data_dir, "duty", "operator", "duty-password");
    let operator = countywatch_e2e::process::api_token(&collector.data_dir, "duty");
    std::fs::write(
        &http_config,
        format!("authorization:\n  credentials: {operator}\n"),
    )
    .unwrap();
    let refused = run_for_output(
        Command::new("amtool")
            .args(["config", "routes", "test"])
            .arg(format!("--alertmanager.url=http://{}", collector.http_addr))
            .arg(format!("--http.config.file={}", http_config.display()))
            .arg("owner=team-A"),
    );
    assert_ne!(refused.0, Some(0));
}

#[test]
fn check_config_reports_an_alertmanager_yml_s_problems_at_its_own_lines() {
    // Issue 25: what countywatch lacks is an error at the file's line and
    // column, never ignored; a file using only what it has loads as is.
    let dir = tempfile::tempdir().unwrap();
    let alertmanager = dir.path().join("alertmanager.yml");
    std::fs::write(
        &alertmanager,
        "route:\n  receiver: team\n  routes:\n  - matchers: [severity=critical]\n    receiver: pager\nreceivers:\n- name: team\n  slack_configs:\n  - channel: '#ops'\n",
    )
    .unwrap();
    let collector_config = dir.path().join("c.yaml");
    std::fs::write(
        &collector_config,
        format!(
            "notify:\n  alertmanager_config: {}\n",
            alertmanager.display()
        ),
    )
    .unwrap();
    let check = |path: &std::path::Path| {
        let output = Command::new(binary("countywatch-collector"))
            .arg("check-config")
            .arg(path)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = check(&collector_config);
    assert_eq!(code, Some(3), "{stderr}");
    let at = |line: &str| format!("{}:{line}", alertmanager.display());
    assert!(
        stderr.contains(&at(
            "9:5: receiver \"team\": slack_configs: countywatch has no Slack integration"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&at("5:15: no receiver named \"pager\"")),
        "{stderr}"
    );
    std::fs::write(
        &collector_config,
        format!(
            "notify:\n  alertmanager_config: {}\n",
            alertmanager_testdata().join("simple.yml").display()
        ),
    )
    .unwrap();
    let (code, stderr) = check(&collector_config);
    assert_eq!(code, Some(0), "{stderr}");
}
