//! Agent certificates are short-lived and renewed over mutual TLS (issue
//! 21, item 12): an agent whose collector issues one-minute certificates
//! renews at two thirds of the lifetime with a new key, without a token,
//! keeps reporting across the switch, and the collector records the new
//! fingerprint and refuses the old certificate from then on. A renewal
//! request is bound to the certificate it arrives with: agent A cannot
//! obtain a certificate for agent B, whatever its request says.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use countywatch_e2e::http::{CurlIdentity, curl_post, empty_batch, post_batch, sample_value};
use countywatch_e2e::process::wait_until;
use countywatch_e2e::{Agent, Collector};
use countywatch_wire::RENEW_PATH;

/// A collector issuing agent certificates valid for a minute, the shortest
/// `agents.cert_lifetime` allows.
const SHORT_LIVED: &str = "agents:\n  cert_lifetime: 1m\n";

/// SHA-256 of the DER of the certificate in the PEM file `path`, lower-case
/// hex as the collector records it.
fn fingerprint(path: &Path) -> String {
    let output = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .rsplit_once('=')
        .unwrap()
        .1
        .replace(':', "")
        .to_lowercase()
}

/// The subject of the certificate in the PEM file `path`.
fn subject(path: &Path) -> String {
    let output = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-in"])
        .arg(path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// (cert_sha256, pending_cert_sha256) the collector records for `agent`.
fn recorded(collector: &Collector, agent: &str) -> (String, Option<String>) {
    collector
        .database()
        .query_row(
            "SELECT cert_sha256, pending_cert_sha256 FROM agents WHERE name = ?1",
            [agent],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap()
}

/// When the collector says `agent`'s current certificate expires.
fn recorded_expiry(collector: &Collector, agent: &str) -> i64 {
    collector
        .database()
        .query_row(
            "SELECT cert_expires_ms FROM agents WHERE name = ?1",
            [agent],
            |row| row.get(0),
        )
        .unwrap()
}

/// Copies the identity files under `from` (`<from>/identity/`) to a new
/// state directory, as an attacker keeping a stolen key would.
fn copy_identity(from: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(copy.path().join("identity")).unwrap();
    for file in ["agent.crt", "agent.key", "ca.crt"] {
        std::fs::copy(
            from.join("identity").join(file),
            copy.path().join("identity").join(file),
        )
        .unwrap();
    }
    copy
}

/// The actions and details of the audit entries about `target`.
fn audited(collector: &Collector, target: &str) -> Vec<(String, String, String)> {
    let connection = rusqlite::Connection::open(collector.data_dir.join("incidents.db")).unwrap();
    let mut statement = connection
        .prepare("SELECT actor, action, details FROM audit WHERE target = ?1 ORDER BY seq")
        .unwrap();
    statement
        .query_map([target], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn an_agent_renews_its_short_lived_certificate_keeps_reporting_and_the_old_one_is_refused() {
    let collector = Collector::start_with(Some(SHORT_LIVED), &[]);
    let agent = Agent::start_for("renewing-host", &collector);
    // The renewal is 40 s away: keep what an attacker would steal now.
    let state_dir = agent.state_dir.clone();
    let stolen = copy_identity(&state_dir);
    let certificate = state_dir.join("identity/agent.crt");
    let old_sha256 = fingerprint(&stolen.path().join("identity/agent.crt"));
    assert_eq!(recorded(&collector, "renewing-host").0, old_sha256);
    let old_expiry = recorded_expiry(&collector, "renewing-host");

    // Renewal comes at two thirds of the minute; give it room.
    let renewed = wait_until(Duration::from_secs(120), || {
        let on_disk = fingerprint(&certificate);
        let (current, pending) = recorded(&collector, "renewing-host");
        on_disk != old_sha256 && current == on_disk && pending.is_none()
    });
    assert!(
        renewed,
        "the agent did not renew (recorded {:?}); agent log:\n{}",
        recorded(&collector, "renewing-host"),
        agent.logs.all().join("\n")
    );
    assert!(
        recorded_expiry(&collector, "renewing-host") > old_expiry,
        "agents list shows the renewed certificate's expiry"
    );
    let key = std::fs::read_to_string(state_dir.join("identity/agent.key")).unwrap();
    let old_key = std::fs::read_to_string(stolen.path().join("identity/agent.key")).unwrap();
    assert_ne!(key, old_key, "a renewal makes a new key");

    // Batches keep arriving across the switch, with no restart.
    let last = *collector
        .batch_sequence_numbers("renewing-host")
        .last()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || {
            collector
                .batch_sequence_numbers("renewing-host")
                .last()
                .is_some_and(|seq| *seq > last + 2)
        }),
        "no batch after the renewal; agent log:\n{}",
        agent.logs.all().join("\n")
    );
    assert_eq!(agent.logs.count("\"agent started\""), 1);

    // The attacker with the old certificate and key is refused: batches
    // and renewals alike.
    let stolen_identity = CurlIdentity {
        state_dir: stolen.path(),
    };
    let batch = post_batch(
        collector.ingest_addr,
        stolen.path(),
        &empty_batch("renewing-host", 1_000_000),
    );
    assert_ne!(batch.status, 200, "{}", batch.body);
    let renewal = curl_post(
        collector.ingest_addr,
        RENEW_PATH,
        b"{\"csr_pem\": \"x\"}",
        &[],
        Some(&stolen_identity),
    );
    assert_ne!(renewal.status, 200, "{}", renewal.body);

    // Audited, and counted on both sides.
    let entries = audited(&collector, "agent/renewing-host");
    assert!(
        entries.iter().any(|(actor, action, details)| {
            actor == "agent:renewing-host"
                && action == "agent.certificate_renewed"
                && details.contains("SHA-256")
        }),
        "{entries:#?}"
    );
    let metrics = collector.metrics();
    assert!(
        sample_value(
            &metrics,
            "countywatch_enroll_requests_total{result=\"renewed\"}"
        )
        .is_some_and(|value| value >= 1.0),
        "{metrics}"
    );
    assert!(
        wait_until(Duration::from_secs(30), || {
            collector.metrics().lines().any(|line| {
                line.starts_with("countywatch_agent_cert_renewals_total{")
                    && line.contains("renewing-host")
                    && line.split(' ').nth(1).and_then(|v| v.parse::<f64>().ok()) >= Some(1.0)
            })
        }),
        "the agent does not report its renewals"
    );
}

#[test]
fn a_renewal_signed_by_one_agent_cannot_obtain_a_certificate_for_another() {
    let collector = Collector::start();
    let agent_a = collector.enrolled_identity("agent-a");
    let agent_b = collector.enrolled_identity("agent-b");
    let b_certificate = fingerprint(&agent_b.path().join("identity/agent.crt"));
    let a_identity = CurlIdentity {
        state_dir: agent_a.path(),
    };

    // A new key whose request names agent B, sent with A's certificate.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["agent-b".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "agent-b");
    let csr_pem = params.serialize_request(&key).unwrap().pem().unwrap();

    // A request that names B outright is refused.
    let naming_b = serde_json::json!({ "csr_pem": csr_pem, "agent": "agent-b" }).to_string();
    let refused = curl_post(
        collector.ingest_addr,
        RENEW_PATH,
        naming_b.as_bytes(),
        &[],
        Some(&a_identity),
    );
    assert_eq!(refused.status, 400, "{}", refused.body);

    // A request whose CSR names B gets a certificate for A.
    let body = serde_json::json!({ "csr_pem": csr_pem }).to_string();
    let answer = curl_post(
        collector.ingest_addr,
        RENEW_PATH,
        body.as_bytes(),
        &[],
        Some(&a_identity),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let answer: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(answer["agent"], "agent-a");
    let renewed = copy_identity(agent_a.path());
    std::fs::write(
        renewed.path().join("identity/agent.crt"),
        answer["certificate_pem"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(
        renewed.path().join("identity/agent.key"),
        key.serialize_pem(),
    )
    .unwrap();
    let new_certificate = renewed.path().join("identity/agent.crt");
    assert!(
        subject(&new_certificate).contains("agent-a"),
        "{}",
        subject(&new_certificate)
    );
    assert_eq!(
        recorded(&collector, "agent-b"),
        (b_certificate, None),
        "B is untouched"
    );
    assert_eq!(
        recorded(&collector, "agent-a").1.as_deref(),
        Some(fingerprint(&new_certificate).as_str())
    );

    // The new certificate speaks for A only; B's own still works.
    assert_eq!(
        post_batch(
            collector.ingest_addr,
            renewed.path(),
            &empty_batch("agent-b", 1)
        )
        .status,
        403
    );
    assert_eq!(
        post_batch(
            collector.ingest_addr,
            renewed.path(),
            &empty_batch("agent-a", 1)
        )
        .status,
        200
    );
    assert_eq!(
        post_batch(
            collector.ingest_addr,
            agent_b.path(),
            &empty_batch("agent-b", 1)
        )
        .status,
        200
    );
    // Using the new certificate confirmed it: A's old one is refused now.
    assert_eq!(
        post_batch(
            collector.ingest_addr,
            agent_a.path(),
            &empty_batch("agent-a", 2)
        )
        .status,
        403
    );
    assert_eq!(
        recorded(&collector, "agent-a"),
        (fingerprint(&new_certificate), None)
    );

    // Renewing again at once is refused, so an agent asking in a loop
    // cannot flood the audit trail with certificates.
    let again = curl_post(
        collector.ingest_addr,
        RENEW_PATH,
        body.as_bytes(),
        &[],
        Some(&CurlIdentity {
            state_dir: renewed.path(),
        }),
    );
    assert_eq!(again.status, 429, "{}", again.body);

    // Without a client certificate there is no renewal at all.
    let anonymous = curl_post(
        collector.ingest_addr,
        RENEW_PATH,
        body.as_bytes(),
        &[],
        None,
    );
    assert_ne!(anonymous.status, 200, "{}", anonymous.body);

    let entries = audited(&collector, "agent/agent-a");
    assert!(
        entries
            .iter()
            .filter(|(actor, action, _)| actor == "agent:agent-a"
                && action == "agent.certificate_renewed")
            .count()
            == 1,
        "{entries:#?}"
    );
    assert!(
        entries
            .iter()
            .any(|(_, action, _)| action == "agent.certificate_renewal_refused"),
        "{entries:#?}"
    );
}
