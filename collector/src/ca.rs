//! The collector's certificate authority: created on first start in the
//! data dir (or the operator's own CA), it signs the ingest server
//! certificate and every enrolled agent's client certificate.
//!
//! Agents pin the CA by its SHA-256 fingerprint when they enrol, so the CA
//! is generated once and kept; its key is written with mode 0600. Agent
//! certificates carry only the client-auth usage and server certificates
//! only the server-auth usage, so a stolen agent key cannot impersonate the
//! collector to other agents.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use countywatch_daemon::durable_file;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::digest::sha256_hex;
use crate::tls_files::TlsFiles;

/// How long an agent certificate is valid unless `agents.cert_lifetime`
/// says otherwise. Revocation, not expiry, is how an agent is cut off;
/// expiry bounds a stolen or forgotten key's life, and agents renew at two
/// thirds of it (`renewal.rs`).
pub const AGENT_CERT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// The shortest agent certificate lifetime `agents.cert_lifetime` accepts:
/// an agent renews at two thirds of it, and a renewal must have time to be
/// retried before the old certificate expires.
pub const MIN_AGENT_CERT_VALIDITY: Duration = Duration::from_secs(60);
/// How long the CA and server certificates are valid.
const CA_VALIDITY: Duration = Duration::from_secs(20 * 365 * 24 * 3600);

/// The CA, loaded and ready to sign.
pub struct CertificateAuthority {
    /// The CA certificate in DER, sent to agents at enrolment.
    certificate: CertificateDer<'static>,
    /// The CA certificate in PEM.
    certificate_pem: String,
    /// Signs with the CA key.
    issuer: Issuer<'static, KeyPair>,
    /// How long the agent certificates it signs are valid.
    agent_validity: Duration,
}

/// An agent certificate just issued.
pub struct IssuedCertificate {
    /// PEM of the certificate.
    pub pem: String,
    /// SHA-256 of its DER, which identifies the agent on every connection.
    pub sha256: String,
    /// When it expires, Unix milliseconds.
    pub not_after_ms: i64,
}

impl CertificateAuthority {
    /// Loads the CA from `files`, or from the data dir, creating it there on
    /// first start.
    pub fn load_or_create(data_dir: &Path, configured: Option<&TlsFiles>) -> anyhow::Result<Self> {
        let files = configured.cloned().unwrap_or_else(|| TlsFiles {
            cert_file: data_dir.join("ca/ca.crt"),
            key_file: data_dir.join("ca/ca.key"),
        });
        if configured.is_none() && !(files.cert_file.exists() && files.key_file.exists()) {
            create(&files)?;
        }
        let certificate_pem = std::fs::read_to_string(&files.cert_file).with_context(|| {
            format!(
                "cannot read the CA certificate {}",
                files.cert_file.display()
            )
        })?;
        let key_pem = std::fs::read_to_string(&files.key_file)
            .with_context(|| format!("cannot read the CA key {}", files.key_file.display()))?;
        let key = KeyPair::from_pem(&key_pem)
            .with_context(|| format!("invalid CA key in {}", files.key_file.display()))?;
        let certificate = CertificateDer::from_pem_slice(certificate_pem.as_bytes())
            .with_context(|| format!("invalid CA certificate in {}", files.cert_file.display()))?;
        let issuer = Issuer::from_ca_cert_der(&certificate, key)
            .with_context(|| format!("cannot use {} as a CA", files.cert_file.display()))?;
        Ok(CertificateAuthority {
            certificate,
            certificate_pem,
            issuer,
            agent_validity: AGENT_CERT_VALIDITY,
        })
    }

    /// How long the agent certificates it signs are valid.
    pub fn agent_validity(&self) -> Duration {
        self.agent_validity
    }

    /// The CA, signing agent certificates valid for `validity`.
    pub fn with_agent_validity(mut self, validity: Duration) -> Self {
        self.agent_validity = validity;
        self
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }

    /// The CA certificate in PEM.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// SHA-256 of the CA certificate, lower-case hex: what agents pin.
    pub fn fingerprint(&self) -> String {
        sha256_hex(self.certificate.as_ref())
    }

    /// Issues the server certificate for the ingest and enrolment listeners
    /// into the data dir, unless one is there already.
    pub fn ensure_server_certificate(
        &self,
        data_dir: &Path,
        names: &[String],
    ) -> anyhow::Result<TlsFiles> {
        let files = TlsFiles {
            cert_file: data_dir.join("tls/server.crt"),
            key_file: data_dir.join("tls/server.key"),
        };
        if files.cert_file.exists() && files.key_file.exists() {
            return Ok(files);
        }
        let mut params = CertificateParams::new(names.to_vec()).context("invalid server name")?;
        params.distinguished_name = name("countywatch collector");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        set_validity(&mut params, CA_VALIDITY);
        params.serial_number = Some(random_serial());
        let key = KeyPair::generate().context("cannot generate the server key")?;
        let certificate = params
            .signed_by(&key, &self.issuer)
            .context("cannot sign the server certificate")?;
        create_parent(&files.cert_file)?;
        durable_file::create_new(&files.key_file, key.serialize_pem().as_bytes(), 0o600)?;
        // The chain carries the CA so that enrolling agents can find the CA
        // they pinned by fingerprint.
        let chain = format!("{}{}", certificate.pem(), self.certificate_pem);
        durable_file::create_new(&files.cert_file, chain.as_bytes(), 0o644)?;
        tracing::info!(cert = %files.cert_file.display(), names = ?names, "issued the server certificate");
        Ok(files)
    }

    /// Signs an agent's certificate request for `agent_name`. Only the
    /// request's public key is used: the name, usages and validity are ours,
    /// whatever the request asked for.
    pub fn sign_agent(&self, csr_pem: &str, agent_name: &str) -> anyhow::Result<IssuedCertificate> {
        let request = CertificateSigningRequestParams::from_pem(csr_pem)
            .context("invalid certificate signing request")?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(agent_name);
        params.subject_alt_names = match agent_name.to_string().try_into() {
            Ok(dns) => vec![SanType::DnsName(dns)],
            Err(_) => Vec::new(),
        };
        params.is_ca = IsCa::ExplicitNoCa;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        set_validity(&mut params, self.agent_validity);
        params.serial_number = Some(random_serial());
        let not_after_ms = params.not_after.unix_timestamp().saturating_mul(1000);
        let certificate = params
            .signed_by(&request.public_key, &self.issuer)
            .context("cannot sign the agent certificate")?;
        Ok(IssuedCertificate {
            not_after_ms,
            sha256: sha256_hex(certificate.der().as_ref()),
            pem: certificate.pem(),
        })
    }
}

fn create(files: &TlsFiles) -> anyhow::Result<()> {
    let mut params = CertificateParams::default();
    params.distinguished_name = name("countywatch collector CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    set_validity(&mut params, CA_VALIDITY);
    params.serial_number = Some(random_serial());
    let key = KeyPair::generate().context("cannot generate the CA key")?;
    let certificate = params
        .self_signed(&key)
        .context("cannot create the CA certificate")?;
    create_parent(&files.cert_file)?;
    durable_file::create_new(&files.key_file, key.serialize_pem().as_bytes(), 0o600)?;
    durable_file::create_new(&files.cert_file, certificate.pem().as_bytes(), 0o644)?;
    tracing::info!(
        cert = %files.cert_file.display(),
        fingerprint = %sha256_hex(certificate.der().as_ref()),
        "created the certificate authority"
    );
    Ok(())
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

fn set_validity(params: &mut CertificateParams, validity: Duration) {
    let now = time::OffsetDateTime::now_utc();
    // An hour of slack for clocks that run behind, common on county servers;
    // a tenth of a short lifetime, so that two thirds of the validity (when
    // agents renew) stays ahead of the moment of issue.
    let slack = Duration::from_secs(3600).min(validity / 10);
    params.not_before =
        now - time::Duration::seconds(i64::try_from(slack.as_secs()).unwrap_or(3600));
    params.not_after =
        now + time::Duration::seconds(i64::try_from(validity.as_secs()).unwrap_or(i64::MAX / 2));
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // A positive serial: the top bit of the first byte clear.
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn create_parent(path: &Path) -> anyhow::Result<()> {
    let directory = path.parent().map(Path::to_path_buf).unwrap_or_default();
    std::fs::create_dir_all(&directory)
        .with_context(|| format!("cannot create {}", directory.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_once_with_private_keys_and_stable_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::load_or_create(dir.path(), None).unwrap();
        let mode = std::fs::metadata(dir.path().join("ca/ca.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let again = CertificateAuthority::load_or_create(dir.path(), None).unwrap();
        assert_eq!(ca.fingerprint(), again.fingerprint());
        let files = ca
            .ensure_server_certificate(dir.path(), &["localhost".to_string()])
            .unwrap();
        let mode = std::fs::metadata(&files.key_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn agent_certificates_ignore_what_the_request_asks_for() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::load_or_create(dir.path(), None).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut wanted = CertificateParams::new(vec!["collector.county.gov".to_string()]).unwrap();
        wanted.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let csr = wanted.serialize_request(&key).unwrap().pem().unwrap();
        let issued = ca.sign_agent(&csr, "web-01").unwrap();
        assert_eq!(issued.sha256.len(), 64);
        let der = CertificateDer::from_pem_slice(issued.pem.as_bytes()).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        assert!(!parsed.is_ca());
        let cn: Vec<&str> = parsed
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .collect();
        assert_eq!(cn, vec!["web-01"]);
    }

    #[test]
    fn garbage_requests_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::load_or_create(dir.path(), None).unwrap();
        let error = ca.sign_agent(
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            "x",
        );
        assert!(error.is_err());
        assert!(ca.sign_agent("not pem at all", "x").is_err());
    }
}
