//! Real third-party peers the tests start on loopback: Debian's
//! `prometheus-node-exporter` (the reference our host metrics must match)
//! and `prometheus` (which scrapes both and answers the dashboards'
//! queries). Each listens on 127.0.0.1 only, keeps its state in a
//! temporary directory, and is killed when dropped.
//!
//! Neither can report a port it chose itself, so the test picks a free one
//! by binding port 0 and releasing it; startup retries with a new port if
//! another process took it in between.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::process::wait_until;

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Starts `make(port)` until it answers 200 on `ready_path`, trying a few
/// ports in case one was taken between picking and binding.
fn start_listening(
    ready_path: &str,
    mut make: impl FnMut(SocketAddr) -> Command,
) -> (Child, SocketAddr) {
    for _ in 0..5 {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut command = make(addr);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = command.spawn().unwrap_or_else(|error| {
            panic!("cannot start {command:?} (tests/run.sh installs it): {error}")
        });
        let ready = wait_until(Duration::from_secs(30), || {
            matches!(child.try_wait(), Ok(Some(_)))
                || crate::http::get(addr, ready_path).is_ok_and(|response| response.status == 200)
        });
        if ready && matches!(child.try_wait(), Ok(None)) {
            return (child, addr);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("could not start {ready_path} server on a free port");
}

/// A running `prometheus-node-exporter` with its default collectors.
pub struct NodeExporter {
    /// The process.
    child: Child,
    /// Where `/metrics` is served.
    pub addr: SocketAddr,
}

impl NodeExporter {
    /// Starts node_exporter on a free loopback port.
    pub fn start() -> NodeExporter {
        let (child, addr) = start_listening("/metrics", |addr| {
            let mut command = Command::new("prometheus-node-exporter");
            command.arg(format!("--web.listen-address={addr}"));
            command
        });
        NodeExporter { child, addr }
    }

    /// The process id, for reading its /proc entry (benchmarks).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `prometheus` with a temporary storage directory.
pub struct Prometheus {
    /// The process.
    child: Child,
    /// Where its HTTP API is.
    pub addr: SocketAddr,
    /// Owns the config file and the TSDB.
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus with `scrape_configs` (YAML list items, indented by
    /// two spaces), scraping every second.
    pub fn start(scrape_configs: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{scrape_configs}"
            ),
        )
        .unwrap();
        let storage = dir.path().join("data");
        let (child, addr) = start_listening("/-/ready", |addr| {
            let mut command = Command::new("prometheus");
            command
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", storage.display()))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--log.level=warn");
            command
        });
        Prometheus {
            child,
            addr,
            _dir: dir,
        }
    }

    /// Runs an instant query at `time` (seconds since the epoch) and returns
    /// each series' labels and value. Panics on an API error.
    pub fn query(&self, query: &str, time: f64) -> Vec<(BTreeMap<String, String>, f64)> {
        let path = format!(
            "/api/v1/query?query={}&time={time:.3}",
            percent_encode(query)
        );
        let response = crate::http::get(self.addr, &path).unwrap();
        let body: serde_json::Value = serde_json::from_str(&response.body)
            .unwrap_or_else(|_| panic!("not JSON from {path}: {}", response.body));
        assert_eq!(body["status"], "success", "{query}: {}", response.body);
        let result = &body["data"]["result"];
        let items = match body["data"]["resultType"].as_str() {
            Some("vector") => result.as_array().cloned().unwrap_or_default(),
            Some("scalar") => vec![serde_json::json!({"metric": {}, "value": result})],
            other => panic!("{query}: unexpected result type {other:?}"),
        };
        items
            .iter()
            .map(|item| {
                let labels = item["metric"]
                    .as_object()
                    .map(|map| {
                        map.iter()
                            .map(|(name, value)| {
                                (name.clone(), value.as_str().unwrap_or("").to_string())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let value = item["value"][1].as_str().unwrap().parse().unwrap();
                (labels, value)
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `promtool check metrics` on exposition text and returns its
/// findings, one per line, except the camelCase lint on node_exporter's
/// own meminfo names (`node_memory_MemTotal_bytes`), which are the
/// compatibility we promise and which promtool flags on node_exporter too.
pub fn promtool_findings(text: &str) -> Vec<String> {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed by tests/run.sh");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    report
        .lines()
        .filter(|line| {
            !(line.starts_with("node_memory_") && line.contains("'snake_case' not 'camelCase'"))
        })
        .map(str::to_string)
        .collect()
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}
