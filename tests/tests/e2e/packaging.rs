//! Deployment: the glibc 2.17 binaries, the .deb installed into a real
//! Debian 12 root (debootstrap) and run there in a chroot, the .rpm listed
//! with rpm, the hardened systemd units through `systemd-analyze`, systemd
//! readiness (`READY=1`) from both daemons, `deploy/install-agent.sh` in the
//! Debian root against a real collector on loopback, and the compose and
//! Kubernetes files parsed.
//!
//! The packages come from `deploy/build-packages.sh` (tests/run.sh runs it
//! first, with every tool installed); these tests fail, not skip, when they
//! are missing, so a CI without them cannot pass silently. tests/run.sh runs
//! this module with `--nocapture` so that exposure scores and the time of
//! each heavy step show in the output.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use countywatch_e2e::{Collector, TEST_AGENT_CONFIG, binary};

/// The workspace root, where `target/` and `deploy/` are.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Where deploy/build-packages.sh leaves the glibc 2.17 build and the packages.
fn built(relative: &str) -> PathBuf {
    let path = workspace().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run deploy/build-packages.sh first (tests/run.sh does)",
        path.display()
    );
    path
}

/// Runs a command and returns its output, failing the test with both
/// streams when it does not succeed.
fn run_ok(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Parses `2.17` into `(2, 17)` for comparing symbol versions.
fn glibc_version(text: &str) -> (u32, u32) {
    let mut parts = text.split('.').map(|part| part.parse::<u32>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap_or(0))
}

/// The highest `GLIBC_x.y` symbol version a binary requires, from objdump -T.
fn highest_glibc(binary: &Path) -> (u32, u32) {
    let output = run_ok(Command::new("objdump").arg("-T").arg(binary));
    let text = stdout(&output);
    text.split("GLIBC_")
        .skip(1)
        .filter_map(|rest| {
            let version: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let version = version.trim_end_matches('.');
            (!version.is_empty()).then(|| glibc_version(version))
        })
        .max()
        .unwrap()
}

#[test]
fn glibc_217_binaries_need_nothing_newer() {
    for name in ["countywatch-agent", "countywatch-collector"] {
        let path = built(&format!(
            "target/glibc217/x86_64-unknown-linux-gnu/release/{name}"
        ));
        let (major, minor) = highest_glibc(&path);
        println!("packaging: {name} (glibc 2.17 build) needs at most GLIBC_{major}.{minor}");
        assert!(
            (major, minor) <= (2, 17),
            "{name} needs GLIBC_{major}.{minor}, newer than CentOS 7's 2.17"
        );
        let output = run_ok(Command::new(&path).arg("--version"));
        assert!(stdout(&output).starts_with(name), "{}", stdout(&output));
    }
}

/// Size and address of each section of an ELF file, from `readelf -SW`.
fn sections(binary: &Path) -> Vec<(String, u64, u64)> {
    let output = run_ok(Command::new("readelf").arg("-SW").arg(binary));
    stdout(&output)
        .lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once(']')?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let address = u64::from_str_radix(fields.get(2)?, 16).ok()?;
            let size = u64::from_str_radix(fields.get(4)?, 16).ok()?;
            Some((fields[0].to_string(), address, size))
        })
        .collect()
}

/// agent/link/hot_text.ld gathers the code the agent runs into one section
/// before `.text`, which is most of its footprint win (docs/benchmarks.md,
/// agent_footprint). If its patterns stopped matching (a new symbol
/// mangling, build.rs no longer passing the script, a linker ignoring it),
/// the binary would still work and only its memory would grow back, so the
/// packaged binary is checked here.
#[test]
fn the_packaged_agent_keeps_the_code_it_runs_together() {
    let agent = built("target/glibc217/x86_64-unknown-linux-gnu/release/countywatch-agent");
    let sections = sections(&agent);
    let find = |name: &str| {
        sections
            .iter()
            .find(|(section, _, _)| section == name)
            .unwrap_or_else(|| panic!("{} has no {name} section: {sections:?}", agent.display()))
    };
    let (_, hot_address, hot_size) = find(".text.hot_countywatch");
    let (_, text_address, text_size) = find(".text");
    println!("packaging: agent hot code {hot_size} bytes, the rest of .text {text_size} bytes");
    assert!(
        *hot_size >= 2_000_000,
        "only {hot_size} bytes matched agent/link/hot_text.ld's patterns (about 3 MB when made); \
         regenerate it with agent/link/hot_text.py"
    );
    assert!(
        hot_address < text_address,
        "the hot code is not before .text"
    );
}

/// A unit file rewritten to run `binary` instead of /usr/bin/..., so that
/// `systemd-analyze verify` finds the executable it checks for.
fn unit_with_binary(unit: &str, binary: &Path, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(workspace().join("deploy/systemd").join(unit)).unwrap();
    let program = format!("/usr/bin/{}", unit.trim_end_matches(".service"));
    let text = text.replace(&program, &binary.display().to_string());
    let path = dir.join(unit);
    std::fs::write(&path, text).unwrap();
    path
}

/// `systemd-analyze security --offline` score of a unit file.
fn exposure(unit_file: &Path) -> f64 {
    let output = run_ok(
        Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(unit_file),
    );
    let text = stdout(&output);
    let line = text
        .lines()
        .find(|line| line.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    let after = line.rsplit(':').next().unwrap().trim();
    after.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn hardened_units_pass_verify_and_meet_exposure_targets() {
    let dir = tempfile::tempdir().unwrap();
    for (unit, program, target) in [
        ("countywatch-agent.service", "countywatch-agent", 3.0),
        (
            "countywatch-collector.service",
            "countywatch-collector",
            2.5,
        ),
    ] {
        let file = unit_with_binary(unit, &binary(program), dir.path());
        let output = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stderr.trim().is_empty(),
            "systemd-analyze verify {unit}: {}\n{stderr}",
            output.status
        );
        let score = exposure(&file);
        println!(
            "packaging: {unit}: systemd-analyze verify ok, exposure {score:.1} (target <= {target})"
        );
        assert!(score <= target, "{unit} exposure {score} above {target}");
        // The agent may change its own firewall sets (active response) and
        // nothing more; the collector holds no capability at all.
        let capabilities = if program == "countywatch-agent" {
            "CAP_NET_ADMIN CAP_NET_RAW"
        } else {
            ""
        };
        for setting in ["CapabilityBoundingSet", "AmbientCapabilities"] {
            let line = format!("\n{setting}={capabilities}\n");
            assert!(
                std::fs::read_to_string(&file).unwrap().contains(&line),
                "{unit} must say {line:?}"
            );
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for setting in [
            "Type=notify",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "PrivateTmp=yes",
            "CapabilityBoundingSet=",
            "AmbientCapabilities=",
            "RestrictAddressFamilies=",
            "SystemCallFilter=@system-service",
            "Restart=on-failure",
            "ExecReload=/bin/kill -HUP $MAINPID",
        ] {
            assert!(text.contains(setting), "{unit} lacks {setting}");
        }
    }
}

/// Binds a notification socket the way systemd does and returns it with
/// its path, inside `dir`.
fn notify_socket(dir: &Path) -> (UnixDatagram, PathBuf) {
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    (socket, path)
}

fn receive(socket: &UnixDatagram) -> String {
    let mut buffer = [0u8; 256];
    let length = socket.recv(&mut buffer).expect("no READY=1 within 30s");
    String::from_utf8_lossy(&buffer[..length]).into_owned()
}

#[test]
fn collector_notifies_systemd_after_binding_its_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, path) = notify_socket(dir.path());
    let log = dir.path().join("collector.log");
    let mut child = Command::new(binary("countywatch-collector"))
        .args(["--log-format", "json", "run"])
        .args(["--http-listen", "127.0.0.1:0"])
        .args(["--ingest-listen", "127.0.0.1:0"])
        .args(["--enroll-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("NOTIFY_SOCKET", &path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let message = receive(&socket);
    // The listeners were bound (and logged) before readiness was sent.
    let logged = std::fs::read_to_string(&log).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(message, "READY=1\n");
    for listener in ["http", "ingest", "enroll"] {
        assert!(
            logged.contains(&format!("\"listener\":\"{listener}\"")),
            "READY=1 before the {listener} listener was up:\n{logged}"
        );
    }
}

#[test]
fn agent_notifies_systemd_once_started() {
    let collector = Collector::start();
    let state = collector.enrolled_identity("notify-agent");
    let (socket, path) = notify_socket(state.path());
    let config = state.path().join("agent.yaml");
    // Active response off: this agent runs in the machine's own namespace.
    std::fs::write(
        &config,
        format!("{TEST_AGENT_CONFIG}response:\n  backend: off\n"),
    )
    .unwrap();
    let mut child = Command::new(binary("countywatch-agent"))
        .args(["--log-format", "json", "run", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(state.path())
        .env("NOTIFY_SOCKET", &path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let message = receive(&socket);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(message, "READY=1\n");
}

#[test]
fn rpm_packages_list_the_expected_files() {
    for (name, user) in [("agent", "countywatch-agent"), ("collector", "countywatch")] {
        let package = built(&format!(
            "target/packages/countywatch-{name}-0.1.0-1.x86_64.rpm"
        ));
        let started = Instant::now();
        let listing = stdout(&run_ok(Command::new("rpm").arg("-qlvp").arg(&package)));
        println!(
            "packaging: rpm -qlvp countywatch-{name} ({:.1}s):\n{listing}",
            started.elapsed().as_secs_f64()
        );
        for path in [
            format!("/usr/bin/countywatch-{name}"),
            format!("/etc/countywatch/{name}.yaml"),
            format!("/usr/lib/systemd/system/countywatch-{name}.service"),
        ] {
            assert!(listing.contains(&path), "{path} not in the rpm");
        }
        if name == "collector" {
            for path in [
                "/usr/share/countywatch/rules/packs/host.yaml",
                "/usr/share/countywatch/rules/detection/ssh.yaml",
                "/usr/share/countywatch/dashboards/fleet-overview.json",
            ] {
                assert!(listing.contains(path), "{path} not in the rpm");
            }
        }
        let config_line = listing
            .lines()
            .find(|line| line.ends_with(&format!("/etc/countywatch/{name}.yaml")))
            .unwrap();
        assert!(config_line.starts_with("-rw-r-----"), "{config_line}");
        let configs = stdout(&run_ok(Command::new("rpm").arg("-qcp").arg(&package)));
        assert!(configs.contains(&format!("/etc/countywatch/{name}.yaml")));
        let scripts = stdout(&run_ok(
            Command::new("rpm")
                .arg("-qp")
                .arg("--scripts")
                .arg(&package),
        ));
        assert!(
            scripts.contains(&format!("useradd --system --gid {user}")),
            "{scripts}"
        );
        let requires = stdout(&run_ok(
            Command::new("rpm")
                .arg("-qp")
                .arg("--requires")
                .arg(&package),
        ));
        assert!(!requires.contains("GLIBC_2.18"), "{requires}");
    }
}

/// A Debian 12 (bookworm) minbase root, made once with debootstrap from
/// the mirror apt uses here and cached as a tarball under target/, then
/// unpacked fresh for each use (the tests install into it).
fn debian_root() -> tempfile::TempDir {
    static CACHE: Mutex<()> = Mutex::new(());
    let _guard = CACHE.lock().unwrap_or_else(|poison| poison.into_inner());
    let cache_dir = workspace().join("target/packaging");
    std::fs::create_dir_all(&cache_dir).unwrap();
    let tarball = cache_dir.join("debian12-minbase.tar.gz");
    if !tarball.exists() {
        let started = Instant::now();
        let build = tempfile::tempdir_in(&cache_dir).unwrap();
        run_ok(
            Command::new("debootstrap")
                .args(["--variant=minbase", "bookworm"])
                .arg(build.path())
                .arg(debian_mirror()),
        );
        let partial = cache_dir.join("debian12-minbase.tar.gz.partial");
        run_ok(
            Command::new("tar")
                .arg("-czf")
                .arg(&partial)
                .arg("-C")
                .arg(build.path())
                .arg("."),
        );
        std::fs::rename(&partial, &tarball).unwrap();
        println!(
            "packaging: debootstrap --variant=minbase bookworm and cache: {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
    let started = Instant::now();
    let root = tempfile::tempdir_in(&cache_dir).unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(root.path()),
    );
    println!(
        "packaging: unpack the cached Debian 12 root: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    root
}

/// The Debian mirror apt is configured with on this machine, so that
/// debootstrap downloads from the same place as apt-get.
fn debian_mirror() -> String {
    let mut texts = vec![std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default()];
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for entry in entries.flatten() {
            texts.push(std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    for text in &texts {
        for line in text.lines().map(str::trim) {
            let candidate = line.strip_prefix("URIs:").map(str::trim).or_else(|| {
                line.strip_prefix("deb ")
                    .and_then(|rest| rest.split_whitespace().find(|word| word.contains("://")))
            });
            if let Some(uri) = candidate
                && uri.ends_with("/debian")
            {
                return uri.to_string();
            }
        }
    }
    "http://deb.debian.org/debian".to_string()
}

fn chroot(root: &Path, args: &[&str]) -> Output {
    run_ok(Command::new("chroot").arg(root).args(args))
}

/// `owner:group mode` of a path inside the root.
fn stat(root: &Path, path: &str) -> String {
    stdout(&chroot(root, &["stat", "-c", "%U:%G %a", path]))
        .trim()
        .to_string()
}

#[test]
fn deb_packages_install_and_run_in_a_debian_12_root() {
    let agent_deb = built("target/packages/countywatch-agent_0.1.0-1_amd64.deb");
    let collector_deb = built("target/packages/countywatch-collector_0.1.0-1_amd64.deb");
    let root = debian_root();
    let root = root.path();
    std::fs::copy(&agent_deb, root.join("tmp/agent.deb")).unwrap();
    std::fs::copy(&collector_deb, root.join("tmp/collector.deb")).unwrap();

    let started = Instant::now();
    chroot(
        root,
        &["dpkg", "-i", "/tmp/agent.deb", "/tmp/collector.deb"],
    );
    println!(
        "packaging: dpkg -i both packages in the chroot: {:.1}s",
        started.elapsed().as_secs_f64()
    );

    for name in ["agent", "collector"] {
        let program = format!("countywatch-{name}");
        let version = stdout(&chroot(root, &[&program, "--version"]));
        assert_eq!(version.trim(), format!("{program} 0.1.0"));
        let config = format!("/etc/countywatch/{name}.yaml");
        let checked = stdout(&chroot(root, &[&program, "check-config", &config]));
        assert!(checked.contains("valid"), "{checked}");
        println!(
            "packaging: chroot {program} --version: {}; check-config {config}: {}",
            version.trim(),
            checked.trim()
        );
    }

    // The packaged config runs the built-in packs, and the packs and
    // dashboards are installed for users to copy.
    let listed = stdout(&chroot(
        root,
        &[
            "countywatch-collector",
            "rules",
            "list",
            "--config",
            "/etc/countywatch/collector.yaml",
        ],
    ));
    for rule in ["ssh_brute_force", "countywatch-agent/AgentSilent"] {
        assert!(listed.contains(rule), "{rule} not listed:\n{listed}");
    }
    assert!(listed.contains("built-in detection/ssh.yaml:"), "{listed}");
    for path in [
        "/usr/share/countywatch/rules/packs/host.yaml",
        "/usr/share/countywatch/rules/detection/ssh.yaml",
        "/usr/share/countywatch/dashboards/fleet-overview.json",
    ] {
        assert_eq!(stat(root, path), "root:root 644", "{path}");
    }

    // Ownership and modes: binaries and units root's, configs readable by
    // the service's group only, state private to the service user.
    for (path, expected) in [
        ("/usr/bin/countywatch-agent", "root:root 755"),
        ("/usr/bin/countywatch-collector", "root:root 755"),
        (
            "/lib/systemd/system/countywatch-agent.service",
            "root:root 644",
        ),
        (
            "/lib/systemd/system/countywatch-collector.service",
            "root:root 644",
        ),
        ("/etc/countywatch/agent.yaml", "root:countywatch-agent 640"),
        ("/etc/countywatch/collector.yaml", "root:countywatch 640"),
        ("/var/lib/countywatch", "root:root 755"),
        // State dirs are owner-only (docs/security.md): the spool holds raw
        // auth-log lines, the collector's databases hold password hashes.
        (
            "/var/lib/countywatch/agent",
            "countywatch-agent:countywatch-agent 700",
        ),
        (
            "/var/lib/countywatch/collector",
            "countywatch:countywatch 700",
        ),
        // The textfile collector's directory: root's cron jobs write it.
        ("/var/lib/countywatch/textfile", "root:root 755"),
    ] {
        assert_eq!(stat(root, path), expected, "{path}");
    }
    let groups = stdout(&chroot(root, &["id", "-nG", "countywatch-agent"]));
    assert!(
        groups.split_whitespace().any(|group| group == "adm"),
        "{groups}"
    );
    let shell = stdout(&chroot(root, &["getent", "passwd", "countywatch-agent"]));
    assert!(shell.trim_end().ends_with("/usr/sbin/nologin"), "{shell}");

    // Conffiles survive an upgrade (here a reinstall of the same package).
    let agent_config = root.join("etc/countywatch/agent.yaml");
    let mut edited = std::fs::read_to_string(&agent_config).unwrap();
    edited.push_str("# edited by the operator\n");
    std::fs::write(&agent_config, &edited).unwrap();
    chroot(root, &["dpkg", "-i", "--force-confold", "/tmp/agent.deb"]);
    assert_eq!(std::fs::read_to_string(&agent_config).unwrap(), edited);
    assert_eq!(
        stat(root, "/etc/countywatch/agent.yaml"),
        "root:countywatch-agent 640"
    );
    let conffiles = stdout(&chroot(
        root,
        &["dpkg-query", "-W", "-f=${Conffiles}", "countywatch-agent"],
    ));
    assert!(
        conffiles.contains("/etc/countywatch/agent.yaml"),
        "{conffiles}"
    );

    // Purge removes the state and the user.
    chroot(root, &["dpkg", "--purge", "countywatch-agent"]);
    assert!(!root.join("var/lib/countywatch/agent").exists());
    assert!(!root.join("var/lib/countywatch/textfile").exists());
    let output = Command::new("chroot")
        .arg(root)
        .args(["getent", "passwd", "countywatch-agent"])
        .output()
        .unwrap();
    assert!(!output.status.success(), "the user outlived a purge");
}

#[test]
fn install_agent_script_enrols_idempotently_and_uninstalls() {
    let agent_deb = built("target/packages/countywatch-agent_0.1.0-1_amd64.deb");
    let root = debian_root();
    let root = root.path();
    std::fs::copy(&agent_deb, root.join("tmp/agent.deb")).unwrap();
    std::fs::copy(
        workspace().join("deploy/install-agent.sh"),
        root.join("tmp/install-agent.sh"),
    )
    .unwrap();
    // The chroot shares this machine's loopback, so the agent inside enrols
    // with a real collector outside.
    let collector = Collector::start();
    let token = collector.token(Some("chroot-agent"));
    let enroll_url = collector.enroll_url();
    let install = [
        "sh",
        "/tmp/install-agent.sh",
        "--package",
        "/tmp/agent.deb",
        "--collector",
        &enroll_url,
        "--token",
        &token,
        "--ca-sha256",
        &collector.ca_sha256,
    ];
    let started = Instant::now();
    let first = stdout(&chroot(root, &install));
    println!(
        "packaging: install-agent.sh in the chroot ({:.1}s):\n{first}",
        started.elapsed().as_secs_f64()
    );
    assert!(first.contains("no systemd here"), "{first}");
    let identity = root.join("var/lib/countywatch/agent/identity/enrollment.json");
    assert!(identity.exists());
    // Enrolled as the agent's user, so the service can read its own key.
    let owner = stat(root, "/var/lib/countywatch/agent/identity");
    assert!(
        owner.starts_with("countywatch-agent:countywatch-agent "),
        "{owner}"
    );
    // Again, with the now used token: nothing to redo, nothing fails.
    let second = stdout(&chroot(root, &install));
    assert!(second.contains("already enrolled"), "{second}");

    let removed = stdout(&chroot(
        root,
        &["sh", "/tmp/install-agent.sh", "--uninstall", "--purge"],
    ));
    assert!(removed.contains("uninstalled"), "{removed}");
    assert!(!root.join("usr/bin/countywatch-agent").exists());
    assert!(!identity.exists());
}

/// Every YAML document in a file, parsed.
fn yaml_documents(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.split("\n---")
        .filter(|document| {
            document
                .lines()
                .any(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        })
        .map(|document| {
            serde_saphyr::from_str::<serde_json::Value>(document)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        })
        .collect()
}

#[test]
fn compose_stack_parses_and_names_its_services() {
    let dir = workspace().join("deploy/compose");
    let compose = &yaml_documents(&dir.join("compose.yaml"))[0];
    for service in ["collector", "prometheus", "grafana", "alertmanager"] {
        assert!(
            compose["services"][service].is_object(),
            "no {service} service"
        );
    }
    for file in [
        "prometheus.yml",
        "alertmanager.yml",
        "grafana/provisioning/datasources/prometheus.yaml",
        "grafana/provisioning/dashboards/countywatch.yaml",
        "collector.yaml",
    ] {
        assert!(
            !yaml_documents(&dir.join(file)).is_empty(),
            "{file} is empty"
        );
    }
    let checked = run_ok(
        Command::new(binary("countywatch-collector"))
            .arg("check-config")
            .arg(dir.join("collector.yaml")),
    );
    assert!(stdout(&checked).contains("valid"));
    run_ok(
        Command::new("promtool")
            .args(["check", "config"])
            .arg(dir.join("prometheus.yml")),
    );
    // `docker compose config` validates fully; only the client is needed,
    // and only where the compose plugin is installed.
    let plugin = Command::new("docker").args(["compose", "version"]).output();
    if plugin.is_ok_and(|output| output.status.success()) {
        run_ok(
            Command::new("docker")
                .args(["compose", "-f"])
                .arg(dir.join("compose.yaml"))
                .args(["config", "--quiet"]),
        );
        println!("packaging: docker compose config: ok");
    } else {
        println!("packaging: docker compose plugin absent; compose.yaml checked as YAML only");
    }
}

#[test]
fn kubernetes_manifests_parse_with_kinds_and_names() {
    let dir = workspace().join("deploy/kubernetes");
    let mut kinds = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|extension| extension != "yaml") {
            continue;
        }
        for document in yaml_documents(&path) {
            let kind = document["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: a document without kind", path.display()));
            assert!(
                document["apiVersion"].is_string(),
                "{}: {kind} without apiVersion",
                path.display()
            );
            assert!(
                document["metadata"]["name"].is_string(),
                "{}: {kind} without a name",
                path.display()
            );
            if kind == "Deployment" || kind == "DaemonSet" {
                let containers = document["spec"]["template"]["spec"]["containers"]
                    .as_array()
                    .unwrap();
                assert!(!containers.is_empty());
                let labels = &document["spec"]["template"]["metadata"]["labels"];
                for (key, value) in document["spec"]["selector"]["matchLabels"]
                    .as_object()
                    .unwrap()
                {
                    assert_eq!(
                        &labels[key], value,
                        "{kind}: selector does not match the pod labels"
                    );
                }
            }
            kinds.push(kind.to_string());
        }
    }
    for kind in [
        "Deployment",
        "PersistentVolumeClaim",
        "DaemonSet",
        "Service",
        "ConfigMap",
    ] {
        assert!(
            kinds.iter().any(|found| found == kind),
            "no {kind} in {kinds:?}"
        );
    }
}

/// The system calls the units' filter lets through: `@system-service`
/// without `@privileged` and `@resources`, expanded by systemd-analyze.
fn unit_filter_allows() -> std::collections::BTreeSet<String> {
    let output = run_ok(Command::new("systemd-analyze").arg("syscall-filter"));
    let text = stdout(&output);
    let mut groups: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut current = None;
    for line in text.lines() {
        if line.starts_with('@') {
            let name = line.split_whitespace().next().unwrap().to_string();
            groups.insert(name.clone(), Vec::new());
            current = Some(name);
        } else if let Some(group) = &current {
            let entry = line.trim();
            if !entry.is_empty() && !entry.starts_with('#') {
                let entry = entry.split_whitespace().next().unwrap().to_string();
                groups.get_mut(group).unwrap().push(entry);
            }
        }
    }
    fn expand(
        groups: &std::collections::BTreeMap<String, Vec<String>>,
        group: &str,
        into: &mut std::collections::BTreeSet<String>,
    ) {
        for entry in groups.get(group).into_iter().flatten() {
            if entry.starts_with('@') {
                expand(groups, entry, into);
            } else {
                into.insert(entry.clone());
            }
        }
    }
    let mut allowed = Default::default();
    expand(&groups, "@system-service", &mut allowed);
    let mut denied = Default::default();
    expand(&groups, "@privileged", &mut denied);
    expand(&groups, "@resources", &mut denied);
    allowed.difference(&denied).cloned().collect()
}

/// Names of the system calls in an `strace -f` output file.
fn traced_calls(trace: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_to_string(trace)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let rest = line.split_once(' ')?.1.trim_start();
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty() && rest[name.len()..].starts_with('(')).then_some(name)
        })
        .collect()
}

/// Runs `args` under strace as the unprivileged user `nobody` (as the units
/// run the daemons under their own users) for `seconds`, and returns the
/// system calls made.
fn trace_as_nobody(
    dir: &Path,
    label: &str,
    args: &[&std::ffi::OsStr],
    seconds: u64,
) -> std::collections::BTreeSet<String> {
    use std::os::unix::process::CommandExt;
    let trace = dir.join(format!("{label}.trace"));
    let mut child = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&trace)
        .args(args)
        .uid(65534)
        .gid(65534)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(seconds));
    // strace blocks fatal signals when it runs a command, so stop the
    // daemon itself (the pid on the trace's first line) with SIGTERM: its
    // shutdown path is traced too, and strace exits after it.
    let text = std::fs::read_to_string(&trace).unwrap_or_default();
    let daemon = text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    let _ = Command::new("kill").arg(&daemon).status();
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = Command::new("kill").args(["-KILL", &daemon]).status();
            let _ = child.kill();
            let _ = child.wait();
            panic!("{label} did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    traced_calls(&trace)
}

#[test]
fn daemons_stay_within_the_units_system_call_filter() {
    // The filter modelled here is the one both units set.
    for unit in ["countywatch-agent.service", "countywatch-collector.service"] {
        let text = std::fs::read_to_string(workspace().join("deploy/systemd").join(unit)).unwrap();
        assert!(
            text.contains(
                "SystemCallFilter=@system-service\nSystemCallFilter=~@privileged @resources\n"
            ),
            "{unit}"
        );
    }
    let allowed = unit_filter_allows();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
    let collector_data = dir.path().join("collector");
    let collector_calls = trace_as_nobody(
        dir.path(),
        "collector",
        &[
            binary("countywatch-collector").as_os_str(),
            "run".as_ref(),
            "--http-listen".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--ingest-listen".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--enroll-listen".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--data-dir".as_ref(),
            collector_data.as_os_str(),
        ],
        3,
    );

    // An agent enrolled with a real collector, its state then handed to
    // nobody, runs every probe including systemd and process.
    let collector = Collector::start();
    let state = collector.enrolled_identity("filter-agent");
    let config = state.path().join("agent.yaml");
    std::fs::write(
        &config,
        format!(
            "{TEST_AGENT_CONFIG}probes:\n  systemd: {{enabled: true, units: [ssh.service]}}\n  process: {{enabled: true, top: 3}}\n"
        ),
    )
    .unwrap();
    run_ok(
        Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(state.path()),
    );
    let agent_calls = trace_as_nobody(
        dir.path(),
        "agent",
        &[
            binary("countywatch-agent").as_os_str(),
            "run".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--state-dir".as_ref(),
            state.path().as_os_str(),
        ],
        4,
    );
    // The agent's unit adds back the clock reads of its timex probe after
    // the deny list (a later allow-list line adds to the filter).
    let agent_unit =
        std::fs::read_to_string(workspace().join("deploy/systemd/countywatch-agent.service"))
            .unwrap();
    assert!(agent_unit.contains("SystemCallFilter=clock_adjtime adjtimex\n"));
    let mut agent_allowed = allowed.clone();
    agent_allowed.extend(["clock_adjtime".to_string(), "adjtimex".to_string()]);
    for (daemon, calls, allowed) in [
        ("collector", collector_calls, &allowed),
        ("agent", agent_calls, &agent_allowed),
    ] {
        let outside: Vec<_> = calls.difference(allowed).collect();
        println!(
            "packaging: {daemon} as an unprivileged user made {} distinct system calls, outside the units' filter: {outside:?}",
            calls.len()
        );
        assert!(
            calls.len() > 20,
            "{daemon}: too few calls traced: {calls:?}"
        );
        assert!(
            outside.is_empty(),
            "{daemon} needs {outside:?}, which the unit's SystemCallFilter refuses"
        );
    }
}

/// Active response runs `nft`, or `ipset` and `iptables`, as children of
/// the agent, under the same system call filter: each of them, doing what
/// the agent asks of it, stays within it. They run inside a network
/// namespace of the test's own, so the machine's firewall is not touched.
#[test]
fn the_firewall_programs_of_active_response_stay_within_the_agent_units_filter() {
    use countywatch_agent::response::{Change, iptables, nftables};
    let allowed = unit_filter_allows();
    let dir = tempfile::tempdir().unwrap();
    let namespace = countywatch_e2e::netns::NetNs::new("sysf", "10.231.9.1", "10.231.9.2");
    let block = [Change::Block {
        address: "10.231.9.1".parse().unwrap(),
        timeout: Duration::from_secs(60),
    }];
    let nft_script = dir.path().join("nft");
    std::fs::write(
        &nft_script,
        format!(
            "{}{}",
            nftables::setup_script(),
            nftables::update_script(&block)
        ),
    )
    .unwrap();
    let ipset_script = dir.path().join("ipset");
    std::fs::write(
        &ipset_script,
        format!(
            "{}{}",
            iptables::create_script(),
            iptables::update_script(&block)
        ),
    )
    .unwrap();
    let nft_script = nft_script.display().to_string();
    let ipset_script = ipset_script.display().to_string();
    let runs: [(&str, Vec<&str>); 5] = [
        ("nft", vec!["nft", "-f", &nft_script]),
        (
            "nft-list",
            vec!["nft", "-j", "list", "table", "inet", "countywatch"],
        ),
        (
            "ipset",
            vec!["ipset", "-exist", "restore", "-f", &ipset_script],
        ),
        (
            "iptables",
            vec![
                "iptables",
                "-w",
                "-I",
                "INPUT",
                "1",
                "-m",
                "conntrack",
                "--ctstate",
                "NEW",
                "-m",
                "set",
                "--match-set",
                "countywatch4",
                "src",
                "-j",
                "DROP",
            ],
        ),
        (
            "ipset-list",
            vec!["ipset", "list", "countywatch4", "-output", "save"],
        ),
    ];
    for (label, command) in runs {
        let trace = dir.path().join(format!("{label}.trace"));
        let output = Command::new("ip")
            .args([
                "netns",
                "exec",
                &namespace.name,
                "strace",
                "-f",
                "-qq",
                "-o",
            ])
            .arg(&trace)
            .args(&command)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{command:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let calls = traced_calls(&trace);
        let outside: Vec<_> = calls.difference(&allowed).collect();
        println!(
            "packaging: {label} made {} distinct system calls, outside the agent unit's filter: {outside:?}",
            calls.len()
        );
        assert!(calls.len() > 10, "{label}: too few calls traced: {calls:?}");
        assert!(
            outside.is_empty(),
            "{label} needs {outside:?}, which the agent unit's SystemCallFilter refuses"
        );
    }
}
