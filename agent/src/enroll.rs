//! `countywatch-agent enroll`: get a client certificate from the collector
//! with a single-use token.
//!
//! The agent generates its key pair here and sends only a certificate
//! signing request; the private key never leaves the host. The collector is
//! trusted on first contact by the CA fingerprint the operator pasted from
//! `countywatch-collector token create`.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use serde::{Deserialize, Serialize};

use crate::config::{CollectorUrl, parse_fingerprint};
use crate::identity::{Enrollment, IdentityFiles};
use crate::transport::{Transport, pinned_ca_tls};

/// Where the collector takes enrolments.
const ENROLL_PATH: &str = "/v1/enroll";

/// The request body (mirrors the collector's `EnrollRequest`).
#[derive(Serialize)]
struct EnrollRequest<'a> {
    /// The token.
    token: &'a str,
    /// The name asked for explicitly.
    name: Option<&'a str>,
    /// The host name, used when neither the token nor `name` gives one.
    host_name: Option<&'a str>,
    /// The certificate signing request, PEM.
    csr_pem: String,
}

/// The answer (mirrors the collector's `EnrollResponse`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollResponse {
    /// The name the certificate is bound to.
    agent: String,
    /// The client certificate, PEM.
    certificate_pem: String,
    /// The CA certificate, PEM.
    ca_pem: String,
    /// The ingest port on the same host.
    ingest_port: u16,
    /// The first sequence number to use.
    first_seq: u64,
}

/// A new key pair and a certificate signing request for it, PEM. The
/// collector uses only the request's public key (the name is its own), at
/// enrolment and at renewal alike; `common_name` is for people reading it.
pub(crate) fn signing_request(common_name: &str) -> anyhow::Result<(KeyPair, String)> {
    let key = KeyPair::generate().context("cannot generate a key pair")?;
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, common_name);
    params.distinguished_name = subject;
    let csr_pem = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .context("cannot create the certificate signing request")?;
    Ok((key, csr_pem))
}

/// Enrols with the collector at `collector` (its enrolment URL) and writes
/// the identity into `state_dir`. Returns the enrolment record.
pub async fn enroll(
    collector: &str,
    token: &str,
    ca_sha256: &str,
    name: Option<&str>,
    host_name: &str,
    state_dir: &Path,
) -> anyhow::Result<Enrollment> {
    let url = CollectorUrl::parse(collector)?;
    let pin = parse_fingerprint(ca_sha256)?;
    if let Some(name) = name
        && !countywatch_wire::is_valid_agent_name(name)
    {
        anyhow::bail!("invalid agent name {name:?}: use 1 to 253 letters, digits, '.', '-' or '_'");
    }
    let host_name = Some(host_name).filter(|host| countywatch_wire::is_valid_agent_name(host));
    let (key, csr_pem) = signing_request(name.unwrap_or("countywatch-agent"))?;
    let body = serde_json::to_vec(&EnrollRequest {
        token,
        name,
        host_name,
        csr_pem,
    })
    .context("cannot encode the request")?;
    let mut transport = Transport::new(url.clone(), pinned_ca_tls(pin)?, Duration::from_secs(30));
    let answer = transport
        .post(ENROLL_PATH, None, Bytes::from(body))
        .await
        .context("enrolment failed")?;
    let answer: EnrollResponse =
        serde_json::from_slice(&answer).context("the collector's answer is not an enrolment")?;
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    let enrollment = Enrollment {
        agent: answer.agent,
        ingest_url: format!("https://{host}:{}", answer.ingest_port),
        first_seq: answer.first_seq,
    };
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("cannot create {}", state_dir.display()))?;
    IdentityFiles::new(state_dir).write(
        &key.serialize_pem(),
        &answer.certificate_pem,
        &answer.ca_pem,
        &enrollment,
    )?;
    Ok(enrollment)
}
