//! The command lines: help, version, config checking, clear errors.

use std::process::Command;

use countywatch_e2e::binary;

fn run(name: &str, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(binary(name)).args(args).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn help_and_version() {
    for name in ["countywatch-agent", "countywatch-collector"] {
        let (code, stdout, _) = run(name, &["--version"]);
        assert_eq!(code, 0);
        assert_eq!(
            stdout.trim(),
            format!("{name} {}", env!("CARGO_PKG_VERSION"))
        );
        let (code, stdout, _) = run(name, &["--help"]);
        assert_eq!(code, 0);
        for subcommand in ["run", "check-config"] {
            assert!(
                stdout.contains(subcommand),
                "{name} --help lacks {subcommand}:\n{stdout}"
            );
        }
    }
}

#[test]
fn check_config_reports_every_problem_with_position() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "http:\n  listen: 0.0.0.0:9780\ningest:\n  listen: nowhere\n",
    )
    .unwrap();
    let (code, _, stderr) = run(
        "countywatch-collector",
        &["check-config", bad.to_str().unwrap()],
    );
    assert_eq!(code, 3, "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("{}:2:11: http.listen 0.0.0.0:9780", bad.display())),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with(&format!("{}:4:11: ingest.listen", bad.display())),
        "{stderr}"
    );

    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "http:\n  listen: 0.0.0.0:9780\n  insecure_http: true\n",
    )
    .unwrap();
    let (code, stdout, _) = run(
        "countywatch-collector",
        &["check-config", good.to_str().unwrap()],
    );
    assert_eq!(code, 0);
    assert!(stdout.contains("valid"));
}

#[test]
fn agent_check_config_refuses_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("agent.yaml");
    std::fs::write(
        &bad,
        "interval: 15s\nprobes:\n  memroy:\n    enabled: false\n",
    )
    .unwrap();
    let (code, _, stderr) = run(
        "countywatch-agent",
        &["check-config", bad.to_str().unwrap()],
    );
    assert_eq!(code, 3);
    assert!(
        stderr.starts_with(&format!("{}:3:3: ", bad.display())),
        "{stderr}"
    );
    assert!(stderr.contains("memroy"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn missing_or_malformed_config_is_one_clear_line() {
    let (code, _, stderr) = run(
        "countywatch-agent",
        &["run", "--config", "/nonexistent/agent.yaml"],
    );
    assert_eq!(code, 3);
    assert_eq!(
        stderr.trim(),
        "/nonexistent/agent.yaml: cannot read: No such file or directory (os error 2)"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("c.yaml");
    std::fs::write(&bad, "data_dir: [unclosed\n").unwrap();
    let (code, _, stderr) = run(
        "countywatch-collector",
        &["run", "--config", bad.to_str().unwrap()],
    );
    assert_eq!(code, 3);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("{}:", bad.display())),
        "{stderr}"
    );
}

#[test]
fn bad_flags_are_config_errors() {
    let (code, _, stderr) = run(
        "countywatch-agent",
        &["run", "--collector", "http://x:1", "--name", "a b"],
    );
    assert_eq!(code, 3);
    assert!(
        stderr.contains("collector URL \"http://x:1\" must start with https://"),
        "{stderr}"
    );
    assert!(stderr.contains("name \"a b\" must be"), "{stderr}");
}

#[test]
fn an_agent_that_has_not_enrolled_says_how_to() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (code, _, stderr) = run(
        "countywatch-agent",
        &["run", "--state-dir", state.to_str().unwrap()],
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("this agent has not enrolled"), "{stderr}");
    assert!(
        stderr.contains("countywatch-collector token create"),
        "{stderr}"
    );
}

#[test]
fn agent_test_prints_prometheus_text_without_a_collector() {
    let (code, stdout, _) = run("countywatch-agent", &["test"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("# TYPE node_memory_MemTotal_bytes gauge"),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|line| line.starts_with("node_load1 ")),
        "{stdout}"
    );
    assert!(
        stdout.contains("countywatch_agent_probe_success{probe=\"filesystem\"} 1"),
        "{stdout}"
    );
}

#[test]
fn fingerprint_is_stable_and_matches_the_running_collector() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (code, first, stderr) = run(
        "countywatch-collector",
        &["fingerprint", "--data-dir", data.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(first.trim().len(), 64);
    let (_, second, _) = run(
        "countywatch-collector",
        &["fingerprint", "--data-dir", data.to_str().unwrap()],
    );
    assert_eq!(first, second);
    let collector = countywatch_e2e::Collector::start_in(dir, &data, None, &[]);
    assert_eq!(collector.ca_sha256, first.trim());
}

#[test]
fn shipped_example_configs_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (name, file) in [
        ("countywatch-collector", "deploy/collector.example.yaml"),
        ("countywatch-agent", "deploy/agent.example.yaml"),
    ] {
        let path = root.join(file);
        let (code, _, stderr) = run(name, &["check-config", path.to_str().unwrap()]);
        assert_eq!(code, 0, "{file}: {stderr}");
    }
}
