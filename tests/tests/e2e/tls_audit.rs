//! The TLS audit (issue 13), done with the `openssl` command line as an
//! outside auditor would: old protocol versions and non-AEAD cipher suites
//! are refused by the collector itself (the client is told to allow them),
//! ingest refuses a client without a certificate, and the certificates carry
//! the chain, names and usages they should.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use countywatch_e2e::Collector;

/// What one `openssl s_client` handshake printed.
struct Handshake {
    /// stdout and stderr together.
    output: String,
}

impl Handshake {
    /// The cipher suite negotiated, if the handshake completed.
    fn cipher(&self) -> Option<&str> {
        self.output
            .lines()
            .find_map(|line| line.split_once(", Cipher is "))
            .map(|(_, cipher)| cipher.trim())
            .filter(|cipher| *cipher != "(NONE)")
    }

    /// The TLS alert the server sent, if any (`SSL alert number N`).
    fn server_alert(&self) -> Option<u32> {
        self.output.lines().find_map(|line| {
            line.split_once("SSL alert number ")
                .and_then(|(_, number)| number.trim().parse().ok())
        })
    }
}

/// Runs `openssl s_client` against `addr` with `args`, sending `request`
/// after the handshake (and then waiting for the server to close, which
/// `Connection: close` makes prompt). Callers lower the security level on
/// the client where they test a refusal, so that it can only come from the
/// server.
fn s_client(addr: SocketAddr, args: &[&str], request: &str) -> Handshake {
    let wait_for_close: &[&str] = if request.is_empty() {
        &[]
    } else {
        &["-ign_eof"]
    };
    let mut child = Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .args(wait_for_close)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed (tests/run.sh)");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(request.as_bytes()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    Handshake {
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

fn ca_file(collector: &Collector) -> String {
    collector
        .data_dir
        .join("ca/ca.crt")
        .to_string_lossy()
        .into_owned()
}

/// `openssl x509 -noout -ext EXTENSIONS` on a PEM file.
fn extensions(path: &Path, extensions: &str) -> String {
    let output = Command::new("openssl")
        .args(["x509", "-noout", "-ext", extensions, "-in"])
        .arg(path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn tls_1_0_and_1_1_are_refused_by_both_listeners() {
    let collector = Collector::start();
    let ca = ca_file(&collector);
    for (listener, addr) in [
        ("enroll", collector.enroll_addr),
        ("ingest", collector.ingest_addr),
    ] {
        for version in ["-tls1", "-tls1_1"] {
            let handshake = s_client(
                addr,
                &[version, "-cipher", "ALL:@SECLEVEL=0", "-CAfile", &ca],
                "",
            );
            assert_eq!(handshake.cipher(), None, "{listener} {version}");
            // 40 handshake_failure or 70 protocol_version: the server said no.
            assert!(
                matches!(handshake.server_alert(), Some(40 | 70)),
                "{listener} {version}: expected a refusal alert from the server:\n{}",
                handshake.output
            );
        }
        for version in ["-tls1_2", "-tls1_3"] {
            let handshake = s_client(addr, &[version, "-CAfile", &ca], "");
            assert!(
                handshake.cipher().is_some(),
                "{listener} {version} must be accepted:\n{}",
                handshake.output
            );
        }
    }
}

#[test]
fn only_aead_cipher_suites_are_negotiated() {
    let collector = Collector::start();
    let ca = ca_file(&collector);
    let listing = Command::new("openssl")
        .args(["ciphers", "-s", "-tls1_2", "ALL:@SECLEVEL=0"])
        .output()
        .unwrap();
    let offered: Vec<String> = String::from_utf8_lossy(&listing.stdout)
        .trim()
        .split(':')
        .filter(|name| !name.starts_with("TLS_"))
        .map(str::to_string)
        .collect();
    assert!(offered.len() > 20, "openssl offers {offered:?}");
    let mut accepted = Vec::new();
    for cipher in &offered {
        let handshake = s_client(
            collector.enroll_addr,
            &[
                "-tls1_2",
                "-cipher",
                &format!("{cipher}:@SECLEVEL=0"),
                "-CAfile",
                &ca,
            ],
            "",
        );
        if let Some(negotiated) = handshake.cipher() {
            assert_eq!(negotiated, cipher);
            accepted.push(cipher.clone());
        }
    }
    let aead = |name: &str| name.contains("GCM") || name.contains("CHACHA20");
    assert!(
        !accepted.is_empty(),
        "no TLS 1.2 suite accepted out of {offered:?}"
    );
    let weak: Vec<&String> = accepted.iter().filter(|name| !aead(name)).collect();
    assert!(weak.is_empty(), "non-AEAD suites accepted: {weak:?}");
    println!("TLS 1.2 suites accepted: {accepted:?}");

    // TLS 1.3 suites are all AEAD; check that the CCM ones (AEAD, but not
    // in rustls) fail cleanly and the others work.
    for (suite, expected) in [
        ("TLS_AES_128_GCM_SHA256", true),
        ("TLS_AES_256_GCM_SHA384", true),
        ("TLS_CHACHA20_POLY1305_SHA256", true),
        ("TLS_AES_128_CCM_SHA256", false),
    ] {
        let handshake = s_client(
            collector.enroll_addr,
            &["-tls1_3", "-ciphersuites", suite, "-CAfile", &ca],
            "",
        );
        assert_eq!(
            handshake.cipher() == Some(suite),
            expected,
            "{suite}:\n{}",
            handshake.output
        );
    }
}

#[test]
fn ingest_refuses_a_client_without_a_certificate_and_serves_one_with() {
    let collector = Collector::start();
    let ca = ca_file(&collector);
    let request = "GET /v1/batches HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    for version in ["-tls1_2", "-tls1_3"] {
        let anonymous = s_client(collector.ingest_addr, &[version, "-CAfile", &ca], request);
        // 116 certificate_required (TLS 1.3), 40 or 42 in TLS 1.2.
        assert!(
            matches!(anonymous.server_alert(), Some(116 | 40 | 42)),
            "{version}: no client certificate must be refused:\n{}",
            anonymous.output
        );
        assert!(
            !anonymous.output.contains("HTTP/1.1"),
            "{}",
            anonymous.output
        );
    }

    let identity = collector.enrolled_identity("audited-host");
    let certificate = identity.path().join("identity/agent.crt");
    let key = identity.path().join("identity/agent.key");
    let with_certificate = s_client(
        collector.ingest_addr,
        &[
            "-tls1_3",
            "-CAfile",
            &ca,
            "-cert",
            &certificate.to_string_lossy(),
            "-key",
            &key.to_string_lossy(),
        ],
        request,
    );
    assert!(
        with_certificate.output.contains("HTTP/1.1 405")
            || with_certificate.output.contains("HTTP/1.1 404"),
        "an enrolled client reaches HTTP:\n{}",
        with_certificate.output
    );
}

#[test]
fn certificates_carry_the_right_chain_names_and_usages() {
    let collector = Collector::start();
    let ca = ca_file(&collector);
    // The server presents its certificate and the CA, and verifies against
    // the CA for every name agents are told to use.
    for name in ["localhost", "127.0.0.1"] {
        let verify = if name.parse::<std::net::IpAddr>().is_ok() {
            "-verify_ip"
        } else {
            "-verify_hostname"
        };
        let handshake = s_client(
            collector.ingest_addr,
            &[
                "-tls1_3",
                "-CAfile",
                &ca,
                verify,
                name,
                "-verify_return_error",
                "-showcerts",
            ],
            "",
        );
        assert!(
            handshake.output.contains("Verify return code: 0 (ok)"),
            "{name}:\n{}",
            handshake.output
        );
        assert_eq!(
            handshake
                .output
                .matches("-----BEGIN CERTIFICATE-----")
                .count(),
            2,
            "server certificate and CA"
        );
    }
    let wrong_name = s_client(
        collector.ingest_addr,
        &[
            "-tls1_3",
            "-CAfile",
            &ca,
            "-verify_hostname",
            "attacker.example",
            "-verify_return_error",
        ],
        "",
    );
    assert!(
        !wrong_name.output.contains("Verify return code: 0 (ok)"),
        "{}",
        wrong_name.output
    );

    let server = collector.data_dir.join("tls/server.crt");
    let server_extensions = extensions(&server, "subjectAltName,extendedKeyUsage,basicConstraints");
    for expected in [
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:0:0:0:0:0:0:0:1",
        "TLS Web Server Authentication",
    ] {
        assert!(server_extensions.contains(expected), "{server_extensions}");
    }
    assert!(
        !server_extensions.contains("Client Authentication"),
        "{server_extensions}"
    );
    assert!(
        !server_extensions.contains("CA:TRUE"),
        "{server_extensions}"
    );

    let identity = collector.enrolled_identity("web-07");
    let agent = identity.path().join("identity/agent.crt");
    let agent_extensions = extensions(&agent, "subjectAltName,extendedKeyUsage,basicConstraints");
    assert!(
        agent_extensions.contains("DNS:web-07"),
        "{agent_extensions}"
    );
    assert!(
        agent_extensions.contains("TLS Web Client Authentication")
            && !agent_extensions.contains("Server Authentication"),
        "an agent certificate must not be usable as a server: {agent_extensions}"
    );
    let verified = Command::new("openssl")
        .args(["verify", "-CAfile", &ca, "-purpose", "sslclient"])
        .arg(&agent)
        .output()
        .unwrap();
    assert!(verified.status.success(), "{verified:?}");
    let as_server = Command::new("openssl")
        .args(["verify", "-CAfile", &ca, "-purpose", "sslserver"])
        .arg(&agent)
        .output()
        .unwrap();
    assert!(!as_server.status.success(), "{as_server:?}");
}
