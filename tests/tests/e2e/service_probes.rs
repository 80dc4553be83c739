//! Service and process probes through the whole chain: an agent checks a
//! real web server (Python's http.server, started here on 127.0.0.1) and a
//! closed port, watches the server's process by name, and the results
//! reach the collector's `/metrics` under blackbox_exporter's names.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use countywatch_e2e::http::sample_value;
use countywatch_e2e::peer::free_port;
use countywatch_e2e::process::wait_until;
use countywatch_e2e::{Agent, Collector};

/// `python3 -m http.server` on a loopback port, killed when dropped.
struct PythonServer {
    /// The process.
    child: Child,
    /// Its port.
    port: u16,
    /// The directory it serves.
    _dir: tempfile::TempDir,
}

impl PythonServer {
    fn start() -> PythonServer {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("health"), "ok").unwrap();
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = ([127, 0, 0, 1], port).into();
        assert!(wait_until(Duration::from_secs(20), || {
            countywatch_e2e::http::get(addr, "/health").is_ok_and(|response| response.status == 200)
        }));
        PythonServer {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn service_checks_and_process_metrics_reach_the_collector() {
    let server = PythonServer::start();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let port = server.port;
    let config = format!(
        "probes:
  process:
    enabled: true
    names: [python3, no-such-daemon]
  service:
    targets:
      - name: health
        module: http
        target: http://127.0.0.1:{port}/health
      - name: missing
        module: http
        target: http://127.0.0.1:{port}/missing
      - name: listener
        module: tcp
        target: 127.0.0.1:{port}
      - name: closed
        module: tcp
        target: 127.0.0.1:{closed_port}
"
    );
    let collector = Collector::start();
    let agent = Agent::start_for_with("svc-host", &collector, &config);
    let prefix = "{instance=\"svc-host\",job=\"countywatch\",";
    let series = |family: &str, name: &str, module: &str, target: &str| {
        format!("{family}{prefix}name=\"{name}\",module=\"{module}\",target=\"{target}\"}}")
    };
    let health_url = format!("http://127.0.0.1:{port}/health");
    let first = series("probe_success", "health", "http", &health_url);
    assert_eq!(
        collector.wait_for_series(&first, Duration::from_secs(30)),
        Some(1.0),
        "agent log:\n{}\n{}",
        agent.logs.all().join("\n"),
        collector.metrics()
    );
    let text = collector.metrics();
    let missing_url = format!("http://127.0.0.1:{port}/missing");
    let listener = format!("127.0.0.1:{port}");
    let closed = format!("127.0.0.1:{closed_port}");
    for (series, expected) in [
        (
            series("probe_http_status_code", "health", "http", &health_url),
            200.0,
        ),
        (
            series("probe_success", "missing", "http", &missing_url),
            0.0,
        ),
        (
            series("probe_http_status_code", "missing", "http", &missing_url),
            404.0,
        ),
        (series("probe_success", "listener", "tcp", &listener), 1.0),
        (series("probe_success", "closed", "tcp", &closed), 0.0),
        (
            format!("namedprocess_namegroup_num_procs{prefix}groupname=\"no-such-daemon\"}}"),
            0.0,
        ),
    ] {
        assert_eq!(
            sample_value(&text, &series),
            Some(expected),
            "{series} in\n{text}"
        );
    }
    let python = sample_value(
        &text,
        &format!("namedprocess_namegroup_num_procs{prefix}groupname=\"python3\"}}"),
    );
    assert!(python.is_some_and(|count| count >= 1.0), "{text}");
    let rss = sample_value(
        &text,
        &format!(
            "namedprocess_namegroup_memory_bytes{prefix}groupname=\"python3\",memtype=\"resident\"}}"
        ),
    );
    assert!(rss.is_some_and(|bytes| bytes > 1e6), "{text}");
    // No pid anywhere: series are per name.
    assert!(!text.contains("pid="), "{text}");
    let findings = countywatch_e2e::peer::promtool_findings(&text);
    assert!(findings.is_empty(), "promtool: {}", findings.join("\n"));
}
