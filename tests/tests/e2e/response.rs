//! Active response end to end (issue 27): a real collector in the root
//! namespace, a real agent in a network namespace of the test's own (joined
//! to the collector by a veth pair, as the link-cut test does), and an
//! attacker namespace joined to the agent's by another veth pair, with
//! three addresses: the attacker, a bystander, and one the agent lists in
//! `response.never_block`. A listener in the agent's namespace answers
//! them; a block shows as the attacker's next TCP connect timing out.
//!
//! The agent enforces with Debian's `nftables` (and, in one test, iptables
//! with ipset), installed by tests/run.sh; every firewall change is inside
//! the namespaces, never the machine's own.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use countywatch_e2e::netns::{LinkedNs, NetNs};
use countywatch_e2e::process::wait_until;
use countywatch_e2e::{Agent, Collector, TEST_AGENT_CONFIG, binary, enroll};

/// The agent's address towards the attacker, where the listener is.
const SERVER: &str = "10.232.0.1";
/// The attacker.
const ATTACKER: &str = "10.232.0.2";
/// Another host beside the attacker, never blocked by the tests.
const BYSTANDER: &str = "10.232.0.3";
/// An address in the agent's `response.never_block`.
const PROTECTED: &str = "10.232.0.4";
/// The listener's port inside the agent's namespace.
const PORT: u16 = 8080;

/// What a TCP connect from the attacker's namespace did.
#[derive(Debug, PartialEq, Eq)]
enum Connect {
    /// The listener answered.
    Connected,
    /// No answer within the connect timeout: dropped by the firewall.
    TimedOut,
    /// Anything else (curl's exit code).
    Failed(i32),
}

/// A collector, an agent in its namespace, an attacker namespace and a
/// listener.
struct Site {
    collector: Collector,
    /// The agent; none while a test has it stopped.
    agent: Option<Agent>,
    /// The agent's name at the collector.
    name: String,
    /// The agent's namespace, joined to the collector.
    link: NetNs,
    /// The attacker's namespace, joined to the agent's.
    attackers: LinkedNs,
    /// The listener inside the agent's namespace.
    _listener: Stopped,
    /// The agent's config file, for `blocks list` and restarts.
    config_path: PathBuf,
    /// The agent's state directory.
    state_dir: PathBuf,
    /// The auth log the agent tails.
    log: PathBuf,
}

impl Site {
    /// Starts everything. `tag` (at most three characters) and `subnet`
    /// (the third octet of the collector link, 10.231.SUBNET.0/30) keep
    /// tests that run at once apart. `collector_config` is added to the
    /// collector's configuration, `response` is the agent's `response:`
    /// section.
    fn start(tag: &str, subnet: u8, collector_config: &str, response: &str) -> Site {
        let host_address = format!("10.231.{subnet}.1");
        let agent_address = format!("10.231.{subnet}.2");
        let link = NetNs::new(&format!("{tag}a"), &host_address, &agent_address);
        let attackers = LinkedNs::new(
            &format!("{tag}x"),
            &link,
            SERVER,
            &[ATTACKER, BYSTANDER, PROTECTED],
        );
        let listen = format!("{host_address}:0");
        let collector = Collector::start_with(
            Some(&format!(
                "ingest:\n  server_names: [\"{host_address}\"]\n{collector_config}"
            )),
            &["--ingest-listen", &listen, "--enroll-listen", &listen],
        );
        let name = format!("resp-{tag}");
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        let (code, _, stderr) = enroll(
            &collector.enroll_url(),
            &collector.token(Some(&name)),
            &collector.ca_sha256,
            Some(&name),
            &state_dir,
        );
        assert_eq!(code, 0, "enrolment failed: {stderr}");
        let log = dir.path().join("auth.log");
        std::fs::write(&log, "").unwrap();
        let config = format!(
            "{TEST_AGENT_CONFIG}sources:\n  auth:\n    paths: [{}]\n  fim:\n    enabled: false\n  ports:\n    enabled: false\nresponse:\n{response}",
            log.display()
        );
        let config_path = dir.path().join("agent.yaml");
        let agent = Agent::start_wrapped(dir, &config, &link.exec());
        let listener = Command::new("ip")
            .args(["netns", "exec", &link.name, "python3", "-m", "http.server"])
            .args([&PORT.to_string(), "--bind", SERVER])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let site = Site {
            collector,
            agent: Some(agent),
            name,
            link,
            attackers,
            _listener: Stopped(listener),
            config_path,
            state_dir,
            log,
        };
        assert!(
            wait_until(Duration::from_secs(30), || site.connect(BYSTANDER)
                == Connect::Connected),
            "the listener in the agent's namespace should answer"
        );
        let series = format!(
            "node_load1{{instance=\"{}\",job=\"countywatch\"}}",
            site.name
        );
        assert!(
            site.collector
                .wait_for_series(&series, Duration::from_secs(30))
                .is_some(),
            "the agent should report through the veth pair"
        );
        site
    }

    /// A TCP connect (an HTTP GET) from `source` to the listener.
    fn connect(&self, source: &str) -> Connect {
        let status = Command::new("ip")
            .args(["netns", "exec", &self.attackers.name, "curl", "-s"])
            .args(["-o", "/dev/null", "--connect-timeout", "2", "--interface"])
            .arg(source)
            .arg(format!("http://{SERVER}:{PORT}/"))
            .status()
            .unwrap();
        match status.code() {
            Some(0) => Connect::Connected,
            Some(28) => Connect::TimedOut,
            other => Connect::Failed(other.unwrap_or(-1)),
        }
    }

    /// `countywatch-collector decisions ARGS` on the collector's data.
    fn decisions(&self, args: &[&str]) -> String {
        let output = Command::new(binary("countywatch-collector"))
            .arg("decisions")
            .args(args)
            .arg("--data-dir")
            .arg(&self.collector.data_dir)
            .output()
            .unwrap();
        assert_success(&output, &format!("decisions {args:?}"));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits until `decisions list` shows `answer` (an agent's
    /// acknowledgement, `NAME:applied` or `NAME:refused (REASON`).
    fn wait_for_answer(&self, answer: &str) {
        let mut listed = String::new();
        assert!(
            wait_until(Duration::from_secs(30), || {
                listed = self.decisions(&["list"]);
                listed.contains(answer)
            }),
            "no {answer:?} in {listed}"
        );
    }

    /// Blocks `address` on this agent for `duration`, in `mode`.
    fn block(&self, address: &str, duration: &str, mode: &str) {
        let scope = format!("host:{}", self.name);
        self.decisions(&[
            "add",
            address,
            "--duration",
            duration,
            "--scope",
            &scope,
            "--mode",
            mode,
        ]);
    }

    /// `countywatch-agent blocks list` inside the agent's namespace.
    fn blocks_list(&self) -> String {
        let output = Command::new("ip")
            .args(["netns", "exec", &self.link.name])
            .arg(binary("countywatch-agent"))
            .args(["blocks", "list", "--config"])
            .arg(&self.config_path)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .output()
            .unwrap();
        assert_success(&output, "blocks list");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The line of `blocks list` about `address`, if any.
    fn listed(&self, address: &str) -> Option<String> {
        self.blocks_list()
            .lines()
            .find(|line| line.split_whitespace().next() == Some(address))
            .map(str::to_string)
    }

    /// The line of `blocks list` about `address` once it is there: the agent
    /// writes its state file just after the kernel set, so a connect that
    /// already times out can beat the list by a moment.
    fn listed_soon(&self, address: &str) -> Option<String> {
        let mut line = None;
        wait_until(Duration::from_secs(30), || {
            line = self.listed(address);
            line.is_some()
        });
        line
    }

    /// The text of `nft list table inet countywatch` in the agent's namespace.
    fn kernel_table(&self) -> String {
        let output = Command::new("ip")
            .args(["netns", "exec", &self.link.name])
            .args(["nft", "list", "table", "inet", "countywatch"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits until the agent's metrics at the collector hold a sample of
    /// `name` with `label` and value `value`; fails the test with the
    /// samples of `name` seen if they never do.
    fn wait_for_agent_metric(&self, name: &str, label: &str, value: &str) {
        let instance = format!("instance=\"{}\"", self.name);
        let mut seen = Vec::new();
        let found = wait_until(Duration::from_secs(30), || {
            seen = self
                .collector
                .metrics()
                .lines()
                .filter(|line| line.starts_with(name) && line.contains(&instance))
                .map(str::to_string)
                .collect();
            seen.iter().any(|line| {
                // `series value timestamp`; the labels hold no spaces.
                line.contains(label) && line.split_whitespace().nth(1) == Some(value)
            })
        });
        assert!(found, "no {name} {label} {value} in {seen:#?}");
    }

    /// Waits, generously, until a connect from `source` does `expected`.
    fn wait_for_connect(&self, source: &str, expected: Connect) -> bool {
        wait_until(Duration::from_secs(60), || self.connect(source) == expected)
    }
}

/// Runs a Python `script` inside `namespace`, until the test ends.
fn python_in(namespace: &str, script: &str) -> Stopped {
    Stopped(
        Command::new("ip")
            .args(["netns", "exec", namespace, "python3", "-c", script])
            .spawn()
            .unwrap(),
    )
}

/// A helper process, killed when the test ends, passed or not (deleting a
/// namespace does not end the processes in it).
struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Twelve refused SSH logins from the attacker on `host`, stamped now, as
/// sshd logs them (ISO timestamps); `pid` numbers the sshd processes, so
/// that two tests' lines differ.
fn failed_logins(host: &str, pid: u32) -> String {
    let now = time::OffsetDateTime::now_utc();
    let mut text = String::new();
    for attempt in 0..12 {
        text.push_str(&format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000000+00:00 {host} sshd[{}]: Failed password for root from {ATTACKER} port {} ssh2\n",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
            pid + attempt,
            40_000 + attempt,
        ));
    }
    text
}

/// The agent's `response:` section for most tests.
const NFTABLES: &str = "  backend: nftables\n  never_block: [10.232.0.4/32]\n";

#[test]
fn a_block_drops_the_attackers_new_connections_only_never_a_protected_address_and_an_unblock_lifts_it()
 {
    let site = Site::start("blk", 21, "", NFTABLES);
    site.block(ATTACKER, "1h", "enforce");
    site.block(PROTECTED, "1h", "enforce");
    assert!(
        site.wait_for_connect(ATTACKER, Connect::TimedOut),
        "the attacker's connect should time out once the block arrives"
    );
    assert_eq!(site.connect(BYSTANDER), Connect::Connected);
    assert_eq!(site.connect(PROTECTED), Connect::Connected);
    site.wait_for_agent_metric(
        "countywatch_agent_response_refused_total",
        "reason=\"never_block\"",
        "1",
    );
    assert_eq!(site.connect(PROTECTED), Connect::Connected);
    let listed = site.listed_soon(ATTACKER).expect("the block is listed");
    assert!(
        listed.contains("enforce") && listed.contains("in set"),
        "{listed}"
    );
    assert!(site.listed(PROTECTED).is_none(), "{}", site.blocks_list());
    let table = site.kernel_table();
    assert!(table.contains(ATTACKER), "{table}");
    assert!(!table.contains(PROTECTED), "{table}");
    // The agent's acknowledgements reach the collector: one applied, one
    // refused with the agent's reason.
    let applied = format!("{}:applied", site.name);
    let refused = format!("{}:refused (in response.never_block", site.name);
    let mut listed = String::new();
    assert!(
        wait_until(Duration::from_secs(30), || {
            listed = site.decisions(&["list"]);
            listed
                .lines()
                .any(|line| line.contains(ATTACKER) && line.contains(&applied))
                && listed
                    .lines()
                    .any(|line| line.contains(PROTECTED) && line.contains(&refused))
        }),
        "{listed}"
    );

    // An unblock from the collector's command line lifts it.
    site.decisions(&["delete", ATTACKER]);
    assert!(
        site.wait_for_connect(ATTACKER, Connect::Connected),
        "decisions delete should lift the block"
    );
    assert!(!site.kernel_table().contains(ATTACKER));
    site.wait_for_agent_metric("countywatch_agent_response_lifted_total", "", "1");
}

#[test]
fn a_short_block_expires_by_the_kernels_own_timeout() {
    let site = Site::start("exp", 22, "", NFTABLES);
    let started = Instant::now();
    site.block(ATTACKER, "6s", "enforce");
    assert!(site.wait_for_connect(ATTACKER, Connect::TimedOut));
    // The element carries its own timeout of at most the six seconds.
    let table = site.kernel_table();
    let element = table
        .split(ATTACKER)
        .nth(1)
        .unwrap_or_else(|| panic!("no element for the attacker: {table}"));
    assert!(
        element.trim_start().starts_with("timeout ") && !element.contains("timeout 1h"),
        "{table}"
    );
    assert!(
        site.wait_for_connect(ATTACKER, Connect::Connected),
        "the block should expire"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "the block lasted its duration"
    );
    assert!(!site.kernel_table().contains(ATTACKER));
    assert!(
        wait_until(Duration::from_secs(30), || site.listed(ATTACKER).is_none()),
        "{}",
        site.blocks_list()
    );
}

#[test]
fn a_kill_9_leaves_the_kernel_set_and_the_restarted_agent_owns_it() {
    let mut site = Site::start("kil", 23, "", NFTABLES);
    site.block(ATTACKER, "1h", "enforce");
    assert!(site.wait_for_connect(ATTACKER, Connect::TimedOut));
    // The kill comes after the state file names the block, as it would
    // for any block older than a moment.
    assert!(
        site.listed_soon(ATTACKER).is_some(),
        "{}",
        site.blocks_list()
    );
    let dir = site.agent.take().unwrap().kill();
    // Nothing flushed the set: the attacker stays blocked with no agent.
    assert!(site.kernel_table().contains(ATTACKER));
    assert_eq!(site.connect(ATTACKER), Connect::TimedOut);
    let listed = site.listed(ATTACKER).expect("listed from the state file");
    assert!(listed.contains("in set"), "{listed}");

    let config = std::fs::read_to_string(&site.config_path).unwrap();
    site.agent = Some(Agent::start_wrapped(dir, &config, &site.link.exec()));
    // The restarted agent holds the block and still lifts it when told.
    site.wait_for_agent_metric(
        "countywatch_agent_response_active_blocks",
        "mode=\"enforce\"",
        "1",
    );
    assert!(site.kernel_table().contains(ATTACKER));
    site.decisions(&["delete", ATTACKER]);
    assert!(
        site.wait_for_connect(ATTACKER, Connect::Connected),
        "the restarted agent should lift the block it resumed"
    );
    // The agent lifts the kernel element first and then rewrites its state
    // file, so the connect can succeed a moment before the list is empty.
    assert!(
        wait_until(Duration::from_secs(30), || site.listed(ATTACKER).is_none()),
        "{}",
        site.blocks_list()
    );
}

#[test]
fn dry_run_blocks_nothing_and_records_everything() {
    // The collector's default mode is dry_run: no --mode given.
    let site = Site::start("dry", 24, "", NFTABLES);
    let scope = format!("host:{}", site.name);
    site.decisions(&["add", ATTACKER, "--duration", "1h", "--scope", &scope]);
    assert!(
        wait_until(Duration::from_secs(60), || site.listed(ATTACKER).is_some()),
        "the dry run should be recorded: {}",
        site.blocks_list()
    );
    let listed = site.listed_soon(ATTACKER).unwrap();
    assert!(listed.contains("dry_run"), "{listed}");
    site.wait_for_agent_metric(
        "countywatch_agent_response_applied_total",
        "mode=\"dry_run\"",
        "1",
    );
    assert_eq!(site.connect(ATTACKER), Connect::Connected);
    assert!(!site.kernel_table().contains(ATTACKER));
    assert!(
        site.agent
            .as_ref()
            .unwrap()
            .logs
            .contains("dry run: would block")
    );
}

#[test]
fn ssh_failures_in_the_agents_log_block_the_attacker_through_detection_and_the_cli_unblocks() {
    // The shipped ssh_brute_force rule carries a host-scoped 1h block;
    // the county turns enforcement on in one line.
    let site = Site::start("det", 25, "response:\n  mode: enforce\n", NFTABLES);
    assert_eq!(site.connect(ATTACKER), Connect::Connected);
    std::fs::write(&site.log, failed_logins(&site.name, 4000)).unwrap();
    assert!(
        site.wait_for_connect(ATTACKER, Connect::TimedOut),
        "detection should block the attacker"
    );
    assert_eq!(site.connect(BYSTANDER), Connect::Connected);
    let listed = site.listed_soon(ATTACKER).unwrap();
    assert!(listed.contains("ssh_brute_force"), "{listed}");
    site.decisions(&["delete", ATTACKER]);
    assert!(site.wait_for_connect(ATTACKER, Connect::Connected));
}

#[test]
fn the_iptables_and_ipset_fallback_blocks_and_unblocks() {
    let site = Site::start(
        "ipt",
        26,
        "",
        "  backend: iptables\n  never_block: [10.232.0.4/32]\n",
    );
    site.block(ATTACKER, "1h", "enforce");
    assert!(site.wait_for_connect(ATTACKER, Connect::TimedOut));
    assert_eq!(site.connect(BYSTANDER), Connect::Connected);
    let output = Command::new("ip")
        .args(["netns", "exec", &site.link.name])
        .args(["ipset", "list", "countywatch4", "-output", "save"])
        .output()
        .unwrap();
    let saved = String::from_utf8_lossy(&output.stdout);
    assert!(
        saved.contains(&format!("add countywatch4 {ATTACKER} timeout")),
        "{saved}"
    );
    let listed = site.listed_soon(ATTACKER).unwrap();
    assert!(listed.contains("in set"), "{listed}");
    site.decisions(&["delete", ATTACKER]);
    assert!(site.wait_for_connect(ATTACKER, Connect::Connected));
}

#[test]
fn the_peer_of_an_open_ssh_session_is_blocked_only_once_the_session_ends() {
    let site = Site::start("ssh", 27, "", NFTABLES);
    // A listener on port 22 in the agent's namespace stands for sshd (the
    // agent counts port 22 as sshd's whoever listens there); it holds
    // every connection open.
    let _sshd = python_in(
        &site.link.name,
        &format!(
            "import socket\ns = socket.socket()\ns.bind(('{SERVER}', 22))\ns.listen(16)\nheld = []\nwhile True:\n    held.append(s.accept()[0])\n"
        ),
    );
    let session = || {
        python_in(
            &site.attackers.name,
            &format!(
                "import socket, time\ns = socket.create_connection(('{SERVER}', 22), source_address=('{ATTACKER}', 0))\ntime.sleep(600)\n"
            ),
        )
    };
    let established = || {
        let output = Command::new("ip")
            .args(["netns", "exec", &site.link.name])
            .args(["ss", "-Htn", "state", "established"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).contains(&format!("{ATTACKER}:"))
    };
    let mut open = session();
    assert!(
        wait_until(Duration::from_secs(30), || {
            if !established() {
                // The listener may not have been up yet.
                if matches!(open.0.try_wait(), Ok(Some(_))) {
                    open = session();
                }
                return false;
            }
            true
        }),
        "the SSH session should be established"
    );
    site.block(ATTACKER, "1h", "enforce");
    site.wait_for_answer(&format!(
        "{}:refused (peer of an open SSH session",
        site.name
    ));
    assert_eq!(site.connect(ATTACKER), Connect::Connected);
    assert!(!site.kernel_table().contains(ATTACKER));

    // The session ends: the block applies and is acknowledged as applied.
    drop(open);
    assert!(
        site.wait_for_connect(ATTACKER, Connect::TimedOut),
        "the block should apply once the session is gone"
    );
    site.wait_for_answer(&format!("{}:applied", site.name));
    assert_eq!(site.connect(BYSTANDER), Connect::Connected);
}

#[test]
fn with_its_link_cut_the_agent_blocks_a_brute_force_by_itself_and_the_collector_takes_over_when_it_is_back()
 {
    // Offline mode after three seconds without the collector, so that the
    // test need not wait the default minute.
    let site = Site::start(
        "off",
        29,
        "response:\n  mode: enforce\n",
        "  backend: nftables\n  never_block: [10.232.0.4/32]\n  offline_after: 3s\n",
    );
    // The first long poll brings the offline rules and the mode in force.
    let rules_file = site.state_dir.join("offline_rules.json");
    let state_file = site.state_dir.join("response.json");
    assert!(
        wait_until(Duration::from_secs(30), || {
            std::fs::read_to_string(&rules_file).is_ok_and(|text| text.contains("ssh_brute_force"))
                && std::fs::read_to_string(&state_file)
                    .is_ok_and(|text| text.contains("\"mode\": \"enforce\""))
        }),
        "the agent should hold the offline rules and the enforce mode"
    );
    assert_eq!(site.connect(ATTACKER), Connect::Connected);

    site.link.set_link(false);
    // Past offline_after with a margin: the agent is on its own.
    std::thread::sleep(Duration::from_secs(5));
    let text = failed_logins(&site.name, 5000);
    // All twelve failures land at once: the tenth is written now.
    let tenth_failure = Instant::now();
    std::fs::write(&site.log, text).unwrap();
    let in_set = wait_until(Duration::from_secs(60), || {
        site.kernel_table().contains(ATTACKER)
    });
    let elapsed = tenth_failure.elapsed();
    assert!(in_set, "the agent should block by itself while cut off");
    println!("offline: tenth failure to kernel set entry {elapsed:?}");
    assert_eq!(site.connect(ATTACKER), Connect::TimedOut);
    assert_eq!(site.connect(BYSTANDER), Connect::Connected);
    let listed = site.listed_soon(ATTACKER).unwrap();
    assert!(listed.contains("offline"), "{listed}");

    // The link comes back: the agent reports its decision, the collector
    // records it as the agent's, under an incident.
    site.link.set_link(true);
    let made_by = format!("agent:{}", site.name);
    let mut listed = String::new();
    let mut line = None;
    assert!(
        wait_until(Duration::from_secs(60), || {
            listed = site.decisions(&["list"]);
            line = listed
                .lines()
                .find(|line| line.contains(ATTACKER) && line.contains(&made_by))
                .map(str::to_string);
            line.is_some()
        }),
        "no decision by {made_by} in {listed}"
    );
    let line = line.unwrap_or_default();
    let incident = line
        .split_whitespace()
        .skip_while(|word| *word != made_by)
        .nth(1)
        .unwrap_or("-");
    assert!(
        incident.parse::<i64>().is_ok(),
        "the agent's decision should have an incident: {line}"
    );
    // The collector's decisions take over: deleting them lifts the block
    // the agent made by itself.
    site.decisions(&["delete", ATTACKER]);
    assert!(
        site.wait_for_connect(ATTACKER, Connect::Connected),
        "the collector's delete should lift the agent's own block"
    );
}
