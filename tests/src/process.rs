//! Starting and stopping the real daemons.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Path of a workspace binary, next to the running test executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/e2e-<hash>, or target/<profile>/countywatch-bench.
    let mut dir = exe.parent().unwrap().to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (tests/run.sh does `cargo build --bins`)",
        path.display()
    );
    path
}

/// Lines a daemon wrote to stderr, collected by a reader thread.
#[derive(Clone, Default)]
pub struct LogLines(Arc<Mutex<Vec<String>>>);

impl LogLines {
    /// All lines so far.
    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Whether some line contains `needle`.
    pub fn contains(&self, needle: &str) -> bool {
        self.0
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains(needle))
    }

    /// How many lines contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains(needle))
            .count()
    }

    /// Waits until some line contains `needle`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.contains(needle))
    }
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spawn_logged(mut command: Command) -> (Child, LogLines, mpsc::Receiver<String>) {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = LogLines::default();
    let (sender, receiver) = mpsc::channel();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = sender.send(line.clone());
            sink.0.lock().unwrap().push(line);
        }
    });
    (child, lines, receiver)
}

fn terminate(child: &mut Child) -> Option<ExitStatus> {
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).ok()?)?;
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Data directories of the collectors started, by HTTP address, so that
/// helpers given only an address can provision an API token.
static DATA_DIRS: Mutex<std::collections::BTreeMap<SocketAddr, PathBuf>> =
    Mutex::new(std::collections::BTreeMap::new());
/// Operator tokens already created, by HTTP address.
static OPERATOR_TOKENS: Mutex<std::collections::BTreeMap<SocketAddr, String>> =
    Mutex::new(std::collections::BTreeMap::new());

/// Creates a user with `countywatch-collector user add` (password on
/// standard input) in `data_dir`.
pub fn add_user(data_dir: &Path, name: &str, role: &str, password: &str) {
    use std::io::Write;
    let mut child = Command::new(binary("countywatch-collector"))
        .args(["user", "add", "--data-dir"])
        .arg(data_dir)
        .args([name, "--role", role])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "user add failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Creates an API token for `name` with `countywatch-collector user token`.
pub fn api_token(data_dir: &Path, name: &str) -> String {
    let output = Command::new(binary("countywatch-collector"))
        .args(["user", "token", "--data-dir"])
        .arg(data_dir)
        .arg(name)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "user token failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A bearer token with the operator role for the collector serving HTTP on
/// `http_addr` (created on first use): the Alertmanager-compatible write
/// routes need one.
pub fn operator_token(http_addr: SocketAddr) -> Option<String> {
    if let Some(token) = OPERATOR_TOKENS.lock().unwrap().get(&http_addr) {
        return Some(token.clone());
    }
    let data_dir = DATA_DIRS.lock().unwrap().get(&http_addr)?.clone();
    add_user(
        &data_dir,
        "test-operator",
        "operator",
        "test-operator-password",
    );
    let token = api_token(&data_dir, "test-operator");
    OPERATOR_TOKENS
        .lock()
        .unwrap()
        .insert(http_addr, token.clone());
    Some(token)
}

/// A running `countywatch-collector`.
pub struct Collector {
    /// The process.
    child: Child,
    /// Its stderr, JSON lines.
    pub logs: LogLines,
    /// Where `/metrics` is served.
    pub http_addr: SocketAddr,
    /// Where agents send batches.
    pub ingest_addr: SocketAddr,
    /// Where agents enrol.
    pub enroll_addr: SocketAddr,
    /// The CA certificate's SHA-256, which agents pin.
    pub ca_sha256: String,
    /// Data directory (kept alive as long as the collector).
    pub data_dir: PathBuf,
    /// Owns the temporary directory.
    dir: Option<tempfile::TempDir>,
}

impl Collector {
    /// Starts a collector with defaults on ephemeral loopback ports.
    pub fn start() -> Collector {
        Collector::start_with(None, &[])
    }

    /// Starts a collector with an optional config file text and extra flags.
    pub fn start_with(config: Option<&str>, extra_args: &[&str]) -> Collector {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        Collector::start_in(dir, &data_dir, config, extra_args)
    }

    /// Starts a collector whose data directory is `data_dir`, keeping `dir` alive.
    pub fn start_in(
        dir: tempfile::TempDir,
        data_dir: &Path,
        config: Option<&str>,
        extra_args: &[&str],
    ) -> Collector {
        Collector::start_wrapped(dir, data_dir, config, extra_args, &[])
    }

    /// Like [`Collector::start_in`], with the binary run through `wrapper`
    /// (e.g. `env LD_PRELOAD=...libfaketime...`).
    pub fn start_wrapped(
        dir: tempfile::TempDir,
        data_dir: &Path,
        config: Option<&str>,
        extra_args: &[&str],
        wrapper: &[&str],
    ) -> Collector {
        let mut command = match wrapper.split_first() {
            Some((program, arguments)) => {
                let mut command = Command::new(program);
                command.args(arguments).arg(binary("countywatch-collector"));
                command
            }
            None => Command::new(binary("countywatch-collector")),
        };
        command.args([
            "--log-format",
            "json",
            "run",
            "--http-listen",
            "127.0.0.1:0",
        ]);
        if !extra_args.contains(&"--ingest-listen") {
            command.args(["--ingest-listen", "127.0.0.1:0"]);
        }
        if !extra_args.contains(&"--enroll-listen") {
            command.args(["--enroll-listen", "127.0.0.1:0"]);
        }
        command.arg("--data-dir").arg(data_dir).args(extra_args);
        if let Some(text) = config {
            let path = dir.path().join("collector.yaml");
            std::fs::write(&path, text).unwrap();
            command.arg("--config").arg(path);
        }
        let (child, logs, receiver) = spawn_logged(command);
        let mut http_addr = None;
        let mut ingest = None;
        let mut enroll_addr = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_addr.is_none() || ingest.is_none() || enroll_addr.is_none() {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = receiver.recv_timeout(remaining) else {
                panic!(
                    "collector did not become ready; log:\n{}",
                    logs.all().join("\n")
                );
            };
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if value["message"] != "listening" {
                continue;
            }
            let addr: SocketAddr = value["addr"].as_str().unwrap().parse().unwrap();
            match value["listener"].as_str() {
                Some("http") => http_addr = Some(addr),
                Some("ingest") => {
                    ingest = Some((addr, value["ca_sha256"].as_str().unwrap().to_string()));
                }
                Some("enroll") => enroll_addr = Some(addr),
                _ => {}
            }
        }
        let (ingest_addr, ca_sha256) = ingest.unwrap();
        DATA_DIRS
            .lock()
            .unwrap()
            .insert(http_addr.unwrap(), data_dir.to_path_buf());
        Collector {
            child,
            logs,
            http_addr: http_addr.unwrap(),
            ingest_addr,
            enroll_addr: enroll_addr.unwrap(),
            ca_sha256,
            data_dir: data_dir.to_path_buf(),
            dir: Some(dir),
        }
    }

    /// Restarts a stopped collector on the same data directory and the same
    /// ingest and enrolment ports, with the same config.
    pub fn restart(
        dir: tempfile::TempDir,
        data_dir: &Path,
        ingest: SocketAddr,
        enroll: SocketAddr,
    ) -> Collector {
        let ingest = ingest.to_string();
        let enroll = enroll.to_string();
        let config = std::fs::read_to_string(dir.path().join("collector.yaml")).ok();
        Collector::start_in(
            dir,
            data_dir,
            config.as_deref(),
            &["--ingest-listen", &ingest, "--enroll-listen", &enroll],
        )
    }

    /// The collector's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Creates an enrolment token with `countywatch-collector token create`.
    pub fn token(&self, name: Option<&str>) -> String {
        let mut command = Command::new(binary("countywatch-collector"));
        command
            .args(["token", "create", "--data-dir"])
            .arg(&self.data_dir);
        if let Some(name) = name {
            command.args(["--name", name]);
        }
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "token create failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
            .lines()
            .find_map(|line| line.strip_prefix("token: "))
            .unwrap()
            .to_string()
    }

    /// Enrols an identity named `name` without running an agent and returns
    /// the directory holding it (`<dir>/identity/...`).
    pub fn enrolled_identity(&self, name: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let token = self.token(None);
        let (code, _, stderr) = enroll(
            &self.enroll_url(),
            &token,
            &self.ca_sha256,
            Some(name),
            dir.path(),
        );
        assert_eq!(code, 0, "{stderr}");
        dir
    }

    /// Runs `countywatch-collector agents revoke NAME`.
    pub fn revoke(&self, name: &str) {
        let output = Command::new(binary("countywatch-collector"))
            .args(["agents", "revoke", "--data-dir"])
            .arg(&self.data_dir)
            .arg(name)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "revoke failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Opens the collector's state database read-only (WAL allows it while
    /// the collector writes).
    pub fn database(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(
            self.data_dir.join("collector.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap()
    }

    /// The sequence numbers of every batch stored for `agent`, ascending.
    pub fn batch_sequence_numbers(&self, agent: &str) -> Vec<i64> {
        let database = self.database();
        let mut statement = database
            .prepare("SELECT seq FROM batches WHERE agent = ?1 ORDER BY seq")
            .unwrap();
        statement
            .query_map([agent], |row| row.get(0))
            .unwrap()
            .collect::<Result<Vec<i64>, _>>()
            .unwrap()
    }

    /// How many events of `kind` are stored for `agent`.
    pub fn event_count(&self, agent: &str, kind: &str) -> i64 {
        self.database()
            .query_row(
                "SELECT COUNT(*) FROM events WHERE agent = ?1 AND kind = ?2",
                [agent, kind],
                |row| row.get(0),
            )
            .unwrap()
    }

    /// The enrolment URL.
    pub fn enroll_url(&self) -> String {
        format!("https://{}", self.enroll_addr)
    }

    /// Kills the collector with SIGKILL and returns its directory, for a restart.
    pub fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.dir.take().unwrap()
    }

    /// Stops the collector with SIGTERM and returns its directory, for a restart.
    pub fn stop_keeping_data(mut self) -> tempfile::TempDir {
        terminate(&mut self.child);
        self.dir.take().unwrap()
    }

    /// Sends SIGHUP (`systemctl reload`).
    pub fn hangup(&self) {
        if let Some(pid) = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::HUP);
        }
    }

    /// The collector's `/metrics` text.
    pub fn metrics(&self) -> String {
        let response = crate::http::get(self.http_addr, "/metrics").unwrap();
        assert_eq!(response.status, 200);
        response.body
    }

    /// Waits until `/metrics` has a sample line starting with `series`.
    pub fn wait_for_series(&self, series: &str, timeout: Duration) -> Option<f64> {
        let mut found = None;
        wait_until(timeout, || {
            found = crate::http::sample_value(&self.metrics(), series);
            found.is_some()
        });
        found
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn terminate(mut self) -> Option<ExitStatus> {
        terminate(&mut self.child)
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `countywatch-agent`.
pub struct Agent {
    /// The process.
    child: Child,
    /// Its stderr, JSON lines.
    pub logs: LogLines,
    /// Its state directory.
    pub state_dir: PathBuf,
    /// Owns the state directory.
    dir: Option<tempfile::TempDir>,
}

/// Runs `countywatch-agent enroll` and returns (exit code, stdout, stderr).
pub fn enroll(
    url: &str,
    token: &str,
    ca_sha256: &str,
    name: Option<&str>,
    state_dir: &Path,
) -> (i32, String, String) {
    let mut command = Command::new(binary("countywatch-agent"));
    command
        .args([
            "enroll",
            "--collector",
            url,
            "--token",
            token,
            "--ca-sha256",
            ca_sha256,
            "--state-dir",
        ])
        .arg(state_dir);
    if let Some(name) = name {
        command.args(["--name", name]);
    }
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The agent config the tests use: collect every second, short timeouts.
pub const TEST_AGENT_CONFIG: &str =
    "interval: 1s\ncollector:\n  timeout: 2s\n  catch_up_rate: 200\n";

impl Agent {
    /// Enrols an agent named `name` with `collector` (a fresh token) and
    /// starts it, collecting every second.
    pub fn start_for(name: &str, collector: &Collector) -> Agent {
        Agent::start_for_with(name, collector, "")
    }

    /// Like [`Agent::start_for`], with `extra` appended to the test config
    /// (top-level YAML keys other than `interval` and `collector`, e.g. a
    /// `probes:` section).
    pub fn start_for_with(name: &str, collector: &Collector, extra: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        let token = collector.token(None);
        let (code, _, stderr) = enroll(
            &collector.enroll_url(),
            &token,
            &collector.ca_sha256,
            Some(name),
            &state_dir,
        );
        assert_eq!(code, 0, "enrolment failed: {stderr}");
        Agent::start_in(dir, &format!("{TEST_AGENT_CONFIG}{extra}"))
    }

    /// Starts an agent whose state is in `<dir>/state` (already enrolled),
    /// with the given config text.
    pub fn start_in(dir: tempfile::TempDir, config: &str) -> Agent {
        Agent::start_wrapped(dir, config, &[])
    }

    /// Like [`Agent::start_in`], with the binary run through `wrapper`
    /// (e.g. `ip netns exec NS`).
    pub fn start_wrapped(dir: tempfile::TempDir, config: &str, wrapper: &[&str]) -> Agent {
        let state_dir = dir.path().join("state");
        let config_path = dir.path().join("agent.yaml");
        // Tests never touch the test machine's own firewall: an agent in
        // the root namespace (not run through `ip netns exec`) has active
        // response off unless its config says otherwise (the response
        // tests run theirs in namespaces of their own).
        let in_namespace = wrapper.starts_with(&["ip", "netns"]);
        let config = if !in_namespace && !config.contains("response:") {
            format!("{config}\nresponse:\n  backend: off\n")
        } else {
            config.to_string()
        };
        std::fs::write(&config_path, config).unwrap();
        let mut command = match wrapper.split_first() {
            Some((program, arguments)) => {
                let mut command = Command::new(program);
                command.args(arguments).arg(binary("countywatch-agent"));
                command
            }
            None => Command::new(binary("countywatch-agent")),
        };
        command
            .args(["--log-format", "json", "run", "--config"])
            .arg(&config_path)
            .arg("--state-dir")
            .arg(&state_dir);
        let (child, logs, _) = spawn_logged(command);
        Agent {
            child,
            logs,
            state_dir,
            dir: Some(dir),
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The syslog receiver's (UDP, TCP) addresses, from the agent's
    /// `listening` log lines; panics when they do not appear in 30 s.
    pub fn syslog_addresses(&self) -> (SocketAddr, SocketAddr) {
        let mut found = (None, None);
        wait_until(Duration::from_secs(30), || {
            for line in self.logs.all() {
                let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if value["message"] != "listening" {
                    continue;
                }
                let addr = value["addr"].as_str().and_then(|addr| addr.parse().ok());
                match value["listener"].as_str() {
                    Some("syslog_udp") => found.0 = addr,
                    Some("syslog_tcp") => found.1 = addr,
                    _ => {}
                }
            }
            found.0.is_some() && found.1.is_some()
        });
        match found {
            (Some(udp), Some(tcp)) => (udp, tcp),
            _ => panic!(
                "the agent did not log its syslog listeners:\n{}",
                self.logs.all().join("\n")
            ),
        }
    }

    /// The process id, for reading its /proc entry (benchmarks).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn terminate(mut self) -> Option<ExitStatus> {
        terminate(&mut self.child)
    }

    /// The config file the agent was started with.
    pub fn config_path(&self) -> PathBuf {
        self.state_dir.with_file_name("agent.yaml")
    }

    /// Sends SIGHUP (reload).
    pub fn hangup(&self) {
        if let Some(pid) = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::HUP);
        }
    }

    /// From the agent's spool: (batches waiting, last sequence number handed out).
    pub fn spool_state(&self) -> (i64, i64) {
        let spool = rusqlite::Connection::open_with_flags(
            self.state_dir.join("spool.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let waiting = spool
            .query_row("SELECT COUNT(*) FROM batches", [], |row| row.get(0))
            .unwrap();
        let last = spool
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'batches'",
                [],
                |row| row.get(0),
            )
            .unwrap_or(0);
        (waiting, last)
    }

    /// Stops the agent with SIGTERM (it closes its spool, so every page is
    /// in `spool.db` rather than the WAL) and returns its directory, for a
    /// restart.
    pub fn stop_keeping_state(mut self) -> tempfile::TempDir {
        terminate(&mut self.child);
        self.dir.take().unwrap()
    }

    /// Kills the agent with SIGKILL and returns its directory, for a restart.
    pub fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.dir.take().unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
