//! Real third-party peers the tests start on loopback: Debian's
//! `prometheus-node-exporter` (the reference our host metrics must match),
//! `prometheus` (which scrapes both and answers the dashboards' queries, or
//! receives remote_write), `rsyslog` (a syslog receiver over TCP or TLS
//! writing what it parsed to a file) and `snmpd` (net-snmp's agent, the
//! network device the SNMP probe polls, with `snmpget` to read it directly). Each listens on 127.0.0.1 only, keeps
//! its state in a temporary directory, and is killed when dropped.
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
    make: impl FnMut(SocketAddr) -> Command,
) -> (Child, SocketAddr) {
    start_listening_until(
        |addr| crate::http::get(addr, ready_path).is_ok_and(|response| response.status == 200),
        make,
    )
}

/// Like [`start_listening`], with readiness decided by `ready(addr)`.
fn start_listening_until(
    ready: impl Fn(SocketAddr) -> bool,
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
        let started = wait_until(Duration::from_secs(30), || {
            matches!(child.try_wait(), Ok(Some(_))) || ready(addr)
        });
        if started && matches!(child.try_wait(), Ok(None)) {
            return (child, addr);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!(
        "could not start {:?} on a free port",
        make(SocketAddr::from(([127, 0, 0, 1], 0)))
    );
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
        NodeExporter::start_with(&[])
    }

    /// Starts node_exporter with extra flags (`--path.sysfs=...`,
    /// `--collector.disable-defaults`, ...).
    pub fn start_with(flags: &[String]) -> NodeExporter {
        let (child, addr) = start_listening("/metrics", |addr| {
            let mut command = Command::new("prometheus-node-exporter");
            command.arg(format!("--web.listen-address={addr}"));
            command.args(flags);
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
    /// The process (`None` while stopped for an outage).
    child: Option<Child>,
    /// Where its HTTP API is.
    pub addr: SocketAddr,
    /// Owns the config file and the TSDB.
    _dir: tempfile::TempDir,
    /// The command-line arguments, to start it again on the same port and
    /// storage after [`Prometheus::kill`].
    args: Vec<String>,
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
        Prometheus::start_in(dir, &[])
    }

    /// Starts Prometheus with a whole configuration file's text and the
    /// files it refers to by relative path (rule files), written beside it.
    pub fn start_with_files(config: &str, files: &[(&str, &str)]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        Prometheus::start_in(dir, &[])
    }

    /// Runs an API GET (`/api/v1/...`) and returns its `data`. Panics
    /// unless the status is `success`.
    pub fn api(&self, path: &str) -> serde_json::Value {
        let response = crate::http::get(self.addr, path).unwrap();
        let body: serde_json::Value = serde_json::from_str(&response.body)
            .unwrap_or_else(|_| panic!("not JSON from {path}: {}", response.body));
        assert_eq!(body["status"], "success", "{path}: {}", response.body);
        body["data"].clone()
    }

    /// Starts Prometheus as a remote_write receiver
    /// (`--web.enable-remote-write-receiver`, `/api/v1/write`), scraping
    /// nothing.
    pub fn start_receiver() -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("prometheus.yml"),
            "global:\n  evaluation_interval: 1s\nscrape_configs: []\n",
        )
        .unwrap();
        Prometheus::start_in(dir, &["--web.enable-remote-write-receiver"])
    }

    /// Starts Prometheus as a remote_write receiver behind `web_config`
    /// (Prometheus's `--web.config.file`: TLS, client certificates, basic
    /// auth). Ready once it accepts TCP connections; remote writes before
    /// its storage is ready get a 503, which senders retry.
    pub fn start_receiver_with_web_config(web_config: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("prometheus.yml"),
            "global:\n  evaluation_interval: 1s\nscrape_configs: []\n",
        )
        .unwrap();
        let web = dir.path().join("web.yml");
        std::fs::write(&web, web_config).unwrap();
        let web = format!("--web.config.file={}", web.display());
        Prometheus::start_in(dir, &["--web.enable-remote-write-receiver", &web])
    }

    fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Prometheus {
        let mut args = vec![
            format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            "--log.level=warn".to_string(),
        ];
        args.extend(extra.iter().map(|arg| arg.to_string()));
        let behind_web_config = extra.iter().any(|arg| arg.starts_with("--web.config.file"));
        let ready = |addr: SocketAddr| match behind_web_config {
            true => std::net::TcpStream::connect(addr).is_ok(),
            false => {
                crate::http::get(addr, "/-/ready").is_ok_and(|response| response.status == 200)
            }
        };
        let (child, addr) = start_listening_until(ready, |addr| {
            let mut command = Command::new("prometheus");
            command
                .args(&args)
                .arg(format!("--web.listen-address={addr}"));
            command
        });
        Prometheus {
            child: Some(child),
            addr,
            _dir: dir,
            args,
        }
    }

    /// The remote_write endpoint URL.
    pub fn remote_write_url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }

    /// Stops Prometheus for an outage, keeping its storage. SIGTERM, so
    /// that its own WAL is flushed and what it received before stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            if !wait_until(Duration::from_secs(20), || {
                matches!(child.try_wait(), Ok(Some(_)))
            }) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }

    /// Starts a stopped Prometheus again on the same port and storage, and
    /// waits until it is ready.
    pub fn start_again(&mut self) {
        self.stop();
        let mut child = Command::new("prometheus")
            .args(&self.args)
            .arg(format!("--web.listen-address={}", self.addr))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = self.addr;
        let ready = wait_until(Duration::from_secs(60), || {
            matches!(child.try_wait(), Ok(Some(_)))
                || crate::http::get(addr, "/-/ready").is_ok_and(|response| response.status == 200)
        });
        assert!(
            ready && matches!(child.try_wait(), Ok(None)),
            "prometheus did not come back on {addr}"
        );
        self.child = Some(child);
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
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// TLS files for a TLS syslog receiver, PEM.
pub struct TlsFiles {
    /// The CA certificate clients trust.
    pub ca: std::path::PathBuf,
    /// The server certificate (for 127.0.0.1), signed by the CA.
    pub cert: std::path::PathBuf,
    /// Its key.
    pub key: std::path::PathBuf,
    /// A client certificate signed by the CA, for mutual TLS.
    pub client_cert: std::path::PathBuf,
    /// Its key.
    pub client_key: std::path::PathBuf,
}

impl TlsFiles {
    /// A fresh CA and a server certificate for 127.0.0.1 in `dir`.
    pub fn create(dir: &std::path::Path) -> TlsFiles {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test syslog CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "127.0.0.1");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let client_key = rcgen::KeyPair::generate().unwrap();
        let mut client_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "countywatch collector");
        client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();
        let files = TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        };
        std::fs::write(&files.ca, ca.pem()).unwrap();
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        std::fs::write(&files.client_cert, client_cert.pem()).unwrap();
        std::fs::write(&files.client_key, client_key.serialize_pem()).unwrap();
        files
    }
}

/// A running `rsyslogd` (Debian's rsyslog) in the foreground with its own
/// config: one `imtcp` input on 127.0.0.1 (plain, or TLS through the `gtls`
/// driver of rsyslog-gnutls), writing every message it parsed as one JSON
/// object per line (RFC 5424 header fields, structured data, message).
pub struct Rsyslog {
    /// The process (`None` while stopped).
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Owns the config, work directory and output file.
    dir: tempfile::TempDir,
}

impl Rsyslog {
    /// Starts rsyslog on a free loopback port, with TLS when `tls` is given.
    pub fn start(tls: Option<&TlsFiles>) -> Rsyslog {
        let mut dir = tempfile::tempdir().unwrap();
        for _ in 0..5 {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            Rsyslog::write_config(dir.path(), addr, tls);
            let mut rsyslog = Rsyslog {
                child: None,
                addr,
                dir,
            };
            if rsyslog.try_start() {
                return rsyslog;
            }
            dir = rsyslog.into_dir();
        }
        panic!("could not start rsyslogd on a free port");
    }

    fn into_dir(mut self) -> tempfile::TempDir {
        self.stop();
        let placeholder = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, placeholder)
    }

    fn write_config(dir: &std::path::Path, addr: SocketAddr, tls: Option<&TlsFiles>) {
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let (global_tls, module) = match tls {
            Some(files) => (
                format!(
                    "global(DefaultNetstreamDriverCAFile=\"{}\" DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\")\n",
                    files.ca.display(),
                    files.cert.display(),
                    files.key.display()
                ),
                "module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"anon\")\n",
            ),
            None => (String::new(), "module(load=\"imtcp\")\n"),
        };
        let config = format!(
            "global(workDirectory=\"{work}\" maxMessageSize=\"64k\")\n\
             {global_tls}{module}\
             template(name=\"parsed\" type=\"list\" option.jsonf=\"on\") {{\n\
               property(outname=\"pri\" name=\"pri\" format=\"jsonf\")\n\
               property(outname=\"timestamp\" name=\"timereported\" dateFormat=\"rfc3339\" format=\"jsonf\")\n\
               property(outname=\"hostname\" name=\"hostname\" format=\"jsonf\")\n\
               property(outname=\"app\" name=\"app-name\" format=\"jsonf\")\n\
               property(outname=\"msgid\" name=\"msgid\" format=\"jsonf\")\n\
               property(outname=\"sd\" name=\"structured-data\" format=\"jsonf\")\n\
               property(outname=\"msg\" name=\"msg\" format=\"jsonf\")\n\
             }}\n\
             ruleset(name=\"received\") {{\n\
               action(type=\"omfile\" file=\"{output}\" template=\"parsed\")\n\
             }}\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"received\")\n",
            work = work.display(),
            output = dir.join("received.jsonl").display(),
            port = addr.port(),
        );
        std::fs::write(dir.join("rsyslog.conf"), config).unwrap();
    }

    fn try_start(&mut self) -> bool {
        let config = self.dir.path().join("rsyslog.conf");
        let mut child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&config)
            .arg("-i")
            .arg(self.dir.path().join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start rsyslogd (tests/run.sh installs rsyslog): {error}")
            });
        let addr = self.addr;
        let ready = wait_until(Duration::from_secs(20), || {
            matches!(child.try_wait(), Ok(Some(_)))
                || std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
        let running = matches!(child.try_wait(), Ok(None));
        self.child = Some(child);
        if !(ready && running) {
            self.stop();
            return false;
        }
        true
    }

    /// Stops rsyslog (SIGTERM, so it flushes its output file).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let exited = wait_until(Duration::from_secs(10), || {
                matches!(child.try_wait(), Ok(Some(_)))
            });
            if !exited {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }

    /// Starts a stopped rsyslog again on the same port and output file.
    pub fn start_again(&mut self) {
        self.stop();
        assert!(
            self.try_start(),
            "rsyslogd did not come back on {}",
            self.addr
        );
    }

    /// How many lines rsyslog has written so far.
    pub fn line_count(&self) -> usize {
        std::fs::read(self.dir.path().join("received.jsonl"))
            .map(|bytes| bytes.iter().filter(|byte| **byte == b'\n').count())
            .unwrap_or(0)
    }

    /// Every line received so far, each parsed as JSON.
    pub fn received(&self) -> Vec<serde_json::Value> {
        let text =
            std::fs::read_to_string(self.dir.path().join("received.jsonl")).unwrap_or_default();
        text.lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|error| panic!("rsyslog wrote non-JSON {line:?}: {error}"))
            })
            .collect()
    }

    /// The lines received so far other than the collector's audit
    /// checkpoints, which every SIEM output also gets (docs/security.md):
    /// what tests of event forwarding count.
    pub fn received_events(&self) -> Vec<serde_json::Value> {
        self.received()
            .into_iter()
            .filter(|line| line["msgid"] != "audit_checkpoint")
            .collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a `promtool check metrics` finding is one promtool reports on
/// node_exporter's own output: the camelCase of its meminfo and netstat
/// names (`node_memory_MemTotal_bytes`, `node_netstat_Tcp_InSegs`) and the
/// `bits` unit of its entropy gauges. Those names are the compatibility we
/// promise.
pub fn is_node_exporter_lint(finding: &str) -> bool {
    ((finding.starts_with("node_memory_") || finding.starts_with("node_netstat_"))
        && finding.contains("'snake_case' not 'camelCase'"))
        || (finding.starts_with("node_entropy_") && finding.contains("instead of \"bits\""))
}

/// Runs `promtool check metrics` on exposition text and returns its
/// findings, one per line, except [`is_node_exporter_lint`]'s.
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
        .filter(|line| !is_node_exporter_lint(line))
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

/// The v2c community [`Snmpd`] answers.
pub const SNMP_COMMUNITY: &str = "cw-community";
/// The SNMPv3 user [`Snmpd`] knows (SHA authentication, AES privacy).
pub const SNMP_USER: &str = "cwuser";
/// [`SNMP_USER`]'s authentication pass phrase.
pub const SNMP_AUTH_PASSWORD: &str = "cw-auth-pass";
/// [`SNMP_USER`]'s privacy pass phrase.
pub const SNMP_PRIV_PASSWORD: &str = "cw-priv-pass";

/// A running `snmpd` with its own config and persistent directory: a v2c
/// community and a v3 user, `sysName` set, every MIB readable.
pub struct Snmpd {
    /// The process.
    child: Child,
    /// `host:port` it answers on.
    pub address: String,
    /// The command prefix it runs under (e.g. `ip netns exec NS`), also
    /// used for `snmpget`.
    wrapper: Vec<String>,
    /// Its config and persistent state.
    _dir: tempfile::TempDir,
}

impl Snmpd {
    /// Starts snmpd on a free UDP port of 127.0.0.1.
    pub fn start(sys_name: &str) -> Snmpd {
        for _ in 0..5 {
            let port = std::net::UdpSocket::bind("127.0.0.1:0")
                .and_then(|socket| socket.local_addr())
                .unwrap()
                .port();
            if let Some(snmpd) = Snmpd::try_start(sys_name, &format!("127.0.0.1:{port}"), &[]) {
                return snmpd;
            }
        }
        panic!("could not start snmpd on a free port");
    }

    /// Starts snmpd on `address` (`ip:port`) under `wrapper`; `None` when
    /// it does not answer (the port was taken).
    pub fn try_start(sys_name: &str, address: &str, wrapper: &[&str]) -> Option<Snmpd> {
        let dir = tempfile::tempdir().unwrap();
        let persistent = dir.path().join("persist");
        std::fs::create_dir(&persistent).unwrap();
        let config = dir.path().join("snmpd.conf");
        std::fs::write(
            &config,
            format!(
                "[snmp] persistentDir {persistent}
agentAddress udp:{address}
rocommunity {SNMP_COMMUNITY} default
createUser {SNMP_USER} SHA \"{SNMP_AUTH_PASSWORD}\" AES \"{SNMP_PRIV_PASSWORD}\"
rouser {SNMP_USER} priv
sysName {sys_name}
sysLocation countywatch test
",
                persistent = persistent.display()
            ),
        )
        .unwrap();
        let wrapper: Vec<String> = wrapper.iter().map(|part| part.to_string()).collect();
        let mut command = wrapped(&wrapper, "snmpd");
        command
            .args(["-f", "-C", "-c"])
            .arg(&config)
            .arg("-Lf")
            .arg(dir.path().join("snmpd.log"))
            .arg("-p")
            .arg(dir.path().join("snmpd.pid"))
            // No MIB files are installed (Debian keeps them in non-free);
            // every OID here is numeric.
            .env("MIBS", "")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = command.spawn().unwrap_or_else(|error| {
            panic!("cannot start snmpd (tests/run.sh installs it): {error}")
        });
        let mut snmpd = Snmpd {
            child,
            address: address.to_string(),
            wrapper,
            _dir: dir,
        };
        let ready = wait_until(Duration::from_secs(20), || {
            matches!(snmpd.child.try_wait(), Ok(Some(_)))
                || snmpd.get("1.3.6.1.2.1.1.5.0").is_some()
        });
        if ready && matches!(snmpd.child.try_wait(), Ok(None)) {
            Some(snmpd)
        } else {
            None
        }
    }

    /// `snmpget -v2c` of one numeric OID: its value as snmpget prints it
    /// with `-Oqv` (strings without quotes), or `None` without an answer.
    pub fn get(&self, oid: &str) -> Option<String> {
        let output = self.snmp("snmpget", "-Oqvt", oid).output().ok()?;
        if !output.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
        Some(text.trim_matches('"').to_string())
    }

    /// `snmpwalk -v2c` of a numeric OID: (the last arc of each row's OID,
    /// the value).
    pub fn walk(&self, oid: &str) -> Vec<(u32, String)> {
        let output = self.snmp("snmpwalk", "-Oqn", oid).output().unwrap();
        assert!(output.status.success(), "snmpwalk {oid} failed");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| {
                let (name, value) = line.split_once(' ')?;
                let index = name.rsplit('.').next()?.parse().ok()?;
                Some((index, value.trim().trim_matches('"').to_string()))
            })
            .collect()
    }

    fn snmp(&self, program: &str, output_flags: &str, oid: &str) -> Command {
        let mut command = wrapped(&self.wrapper, program);
        command
            .args(["-m", "", "-v2c", "-c", SNMP_COMMUNITY, output_flags])
            .args(["-t", "1", "-r", "1"])
            .arg(&self.address)
            .arg(oid)
            .env("MIBS", "")
            .stdin(Stdio::null())
            .stderr(Stdio::null());
        command
    }
}

/// `program` run under `wrapper` (nothing, or e.g. `ip netns exec NS`).
fn wrapped(wrapper: &[String], program: &str) -> Command {
    match wrapper.split_first() {
        Some((first, rest)) => {
            let mut command = Command::new(first);
            command.args(rest).arg(program);
            command
        }
        None => Command::new(program),
    }
}

impl Drop for Snmpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `prometheus-snmp-exporter` with an `if_mib` module written
/// here: Debian ships no `snmp.yml` (the generator needs MIB files it
/// cannot ship), so the module lists by number the OIDs, names, types and
/// `ifIndex` lookups that the upstream generator's `if_mib` module has.
pub struct SnmpExporter {
    /// The process.
    child: Child,
    /// Where `/snmp` is served.
    pub addr: SocketAddr,
    /// Its config.
    _dir: tempfile::TempDir,
}

/// snmp_exporter's `if_mib` metrics: (name, OID, type), per interface.
const IF_MIB_COLUMNS: [(&str, &str, &str); 11] = [
    ("ifAdminStatus", "1.3.6.1.2.1.2.2.1.7", "gauge"),
    ("ifOperStatus", "1.3.6.1.2.1.2.2.1.8", "gauge"),
    ("ifInDiscards", "1.3.6.1.2.1.2.2.1.13", "counter"),
    ("ifInErrors", "1.3.6.1.2.1.2.2.1.14", "counter"),
    ("ifOutDiscards", "1.3.6.1.2.1.2.2.1.19", "counter"),
    ("ifOutErrors", "1.3.6.1.2.1.2.2.1.20", "counter"),
    ("ifHCInOctets", "1.3.6.1.2.1.31.1.1.1.6", "counter"),
    ("ifHCOutOctets", "1.3.6.1.2.1.31.1.1.1.10", "counter"),
    ("ifHighSpeed", "1.3.6.1.2.1.31.1.1.1.15", "gauge"),
    ("ifInOctets", "1.3.6.1.2.1.2.2.1.10", "counter"),
    ("ifOutOctets", "1.3.6.1.2.1.2.2.1.16", "counter"),
];

impl SnmpExporter {
    /// Starts snmp_exporter on a free loopback port with an `if_mib`
    /// module using [`SNMP_COMMUNITY`].
    pub fn start() -> SnmpExporter {
        let dir = tempfile::tempdir().unwrap();
        let lookups = "    lookups:
    - labels: [ifIndex]
      labelname: ifAlias
      oid: 1.3.6.1.2.1.31.1.1.1.18
      type: DisplayString
    - labels: [ifIndex]
      labelname: ifDescr
      oid: 1.3.6.1.2.1.2.2.1.2
      type: DisplayString
    - labels: [ifIndex]
      labelname: ifName
      oid: 1.3.6.1.2.1.31.1.1.1.1
      type: DisplayString
";
        let mut config = format!(
            "if_mib:
  version: 2
  auth:
    community: {SNMP_COMMUNITY}
  walk:
  - 1.3.6.1.2.1.2.2.1
  - 1.3.6.1.2.1.31.1.1.1
  get:
  - 1.3.6.1.2.1.1.3.0
  - 1.3.6.1.2.1.1.5.0
  metrics:
  - name: sysUpTime
    oid: 1.3.6.1.2.1.1.3
    type: gauge
    help: sysUpTime
  - name: sysName
    oid: 1.3.6.1.2.1.1.5
    type: DisplayString
    help: sysName
"
        );
        for (name, oid, kind) in IF_MIB_COLUMNS {
            config.push_str(&format!(
                "  - name: {name}
    oid: {oid}
    type: {kind}
    help: {name}
    indexes:
    - labelname: ifIndex
      type: gauge
{lookups}"
            ));
        }
        let config_path = dir.path().join("snmp.yml");
        std::fs::write(&config_path, config).unwrap();
        let (child, addr) = start_listening("/", |addr| {
            let mut command = Command::new("prometheus-snmp-exporter");
            command
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!("--web.listen-address={addr}"));
            command
        });
        SnmpExporter {
            child,
            addr,
            _dir: dir,
        }
    }

    /// The `if_mib` module's answer for `target` (`host:port`).
    pub fn scrape(&self, target: &str) -> String {
        let response =
            crate::http::get(self.addr, &format!("/snmp?module=if_mib&target={target}")).unwrap();
        assert_eq!(response.status, 200, "{}", response.body);
        response.body
    }
}

impl Drop for SnmpExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
