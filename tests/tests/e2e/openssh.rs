//! `countywatch-agent replay` over a log a real OpenSSH server wrote: Debian's
//! sshd on a loopback port the test picks, real `ssh` clients failing and
//! succeeding, and the replayed events checked one by one.
//!
//! sshd writes its messages with `-E FILE` here because the test machine has
//! no syslog daemon on /dev/log; the test then gives each line the RFC 3164
//! prefix rsyslog writes into /var/log/auth.log (`Mon DD HH:MM:SS host
//! sshd[PID]: `). The message bodies, which the parsers read, are sshd's own.
//! No account is created: the failures use an unknown user and root's
//! password, the success root's public key from a key file the test owns.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use countywatch_e2e::binary;
use countywatch_e2e::process::wait_until;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ssh(port: u16, user: &str, password: Option<&str>, key: Option<&Path>) -> bool {
    let mut command = match password {
        Some(password) => {
            let mut command = Command::new("sshpass");
            command.args(["-p", password, "ssh"]);
            command
        }
        None => Command::new("ssh"),
    };
    command.args([
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=no",
        "-o",
        "NumberOfPasswordPrompts=1",
        "-o",
        "ConnectTimeout=10",
    ]);
    match key {
        Some(key) => {
            command
                .args([
                    "-o",
                    "PreferredAuthentications=publickey",
                    "-o",
                    "IdentitiesOnly=yes",
                    "-i",
                ])
                .arg(key);
        }
        None => {
            command.args([
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "PubkeyAuthentication=no",
            ]);
        }
    }
    command.args([
        "-p",
        &port.to_string(),
        &format!("{user}@127.0.0.1"),
        "true",
    ]);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

#[test]
fn replay_reports_what_a_real_sshd_logged() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    for (key, kind) in [("host_key", "ed25519"), ("client_key", "ed25519")] {
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", "", "-f"])
            .arg(path(key))
            .status()
            .expect("openssh-client is installed by tests/run.sh");
        assert!(status.success());
    }
    std::fs::copy(path("client_key.pub"), path("authorized_keys")).unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let port = free_port();
    std::fs::write(
        path("sshd_config"),
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\n\
             PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\n\
             StrictModes no\nLogLevel INFO\n",
            path("host_key").display(),
            path("sshd.pid").display(),
            path("authorized_keys").display(),
        ),
    )
    .unwrap();
    let mut sshd = Command::new("/usr/sbin/sshd")
        .args(["-D", "-f"])
        .arg(path("sshd_config"))
        .arg("-E")
        .arg(path("sshd.log"))
        .spawn()
        .expect("openssh-server is installed by tests/run.sh");
    assert!(wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(path("sshd.log")).is_ok_and(|log| log.contains("Server listening"))
    }));

    assert!(!ssh(port, "nosuchuser", Some("guess-1"), None));
    assert!(!ssh(port, "root", Some("guess-2"), None));
    assert!(
        ssh(port, "root", None, Some(&path("client_key"))),
        "public key login should succeed"
    );
    // sshd logs the disconnect after the client returns.
    assert!(wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(path("sshd.log"))
            .is_ok_and(|log| log.contains("Disconnected from user root"))
    }));
    let _ = sshd.kill();
    let _ = sshd.wait();

    // rsyslog's prefix, as in /var/log/auth.log.
    let pid = sshd.id();
    let auth_log: String = std::fs::read_to_string(path("sshd.log"))
        .unwrap()
        .lines()
        .map(|line| format!("Nov 28 02:50:00 county-web-01 sshd[{pid}]: {line}\n"))
        .collect();
    std::fs::write(path("auth.log"), &auth_log).unwrap();

    let output = Command::new(binary("countywatch-agent"))
        .args(["replay", "--source", "auth"])
        .arg(path("auth.log"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let find = |kind: &str, user: &str| {
        events
            .iter()
            .filter(|event| event["kind"] == kind && event["fields"]["user"] == user)
            .collect::<Vec<_>>()
    };
    let invalid = find("ssh_invalid_user", "nosuchuser");
    assert_eq!(invalid.len(), 1, "{auth_log}\n{events:#?}");
    assert_eq!(invalid[0]["fields"]["src_ip"], "127.0.0.1");
    let failed_invalid = find("ssh_login_failed", "nosuchuser");
    assert_eq!(failed_invalid.len(), 1, "{auth_log}");
    let failed_root = find("ssh_login_failed", "root");
    assert_eq!(failed_root.len(), 1, "{auth_log}");
    assert_eq!(failed_root[0]["fields"]["src_ip"], "127.0.0.1");
    assert_eq!(failed_root[0]["fields"]["method"], "password");
    let accepted = find("ssh_login_accepted", "root");
    assert_eq!(accepted.len(), 1, "{auth_log}");
    assert_eq!(accepted[0]["fields"]["method"], "publickey");
    assert_eq!(accepted[0]["fields"]["src_ip"], "127.0.0.1");
    // The port of each login is the client's real one, taken from the line.
    assert!(
        accepted[0]["fields"]["src_port"]
            .as_u64()
            .is_some_and(|port| port > 0),
        "{:?}",
        accepted[0]
    );
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(summary.contains("ssh_login_failed"), "{summary}");
}
