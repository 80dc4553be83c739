//! rustls server configurations for the collector's listeners.
//!
//! TLS 1.2 and 1.3 only, ring provider. The ingest listener requires a
//! client certificate signed by the collector's CA during the handshake;
//! the enrolment listener and the optional HTTPS listener do not.

use std::sync::Arc;

use anyhow::Context;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::tls_files::TlsFiles;

/// Reads a PEM certificate chain and private key.
pub fn load(
    files: &TlsFiles,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let chain = CertificateDer::pem_file_iter(&files.cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| {
            format!(
                "cannot read certificates from {}",
                files.cert_file.display()
            )
        })?;
    if chain.is_empty() {
        anyhow::bail!("no certificate in {}", files.cert_file.display());
    }
    let key = PrivateKeyDer::from_pem_file(&files.key_file).with_context(|| {
        format!(
            "cannot read the private key from {}",
            files.key_file.display()
        )
    })?;
    Ok((chain, key))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration without client authentication.
pub fn server_config(files: &TlsFiles) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (chain, key) = load(files)?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("cannot configure TLS versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and key do not form a usable pair")?;
    Ok(Arc::new(config))
}

/// A server configuration that requires a client certificate issued by
/// `client_ca`. Expired certificates and certificates of other CAs fail the
/// handshake; revocation is checked per request by the ingest handler.
pub fn mutual_server_config(
    files: &TlsFiles,
    client_ca: &CertificateDer<'static>,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (chain, key) = load(files)?;
    let mut roots = RootCertStore::empty();
    roots
        .add(client_ca.clone())
        .context("cannot use the CA certificate as a trust root")?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .context("cannot build the client certificate verifier")?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("cannot configure TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("the certificate and key do not form a usable pair")?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn missing_files_are_a_clear_error() {
        let files = TlsFiles {
            cert_file: PathBuf::from("/nonexistent/c.pem"),
            key_file: PathBuf::from("/nonexistent/k.pem"),
        };
        let error = format!("{:#}", server_config(&files).unwrap_err());
        assert!(
            error.starts_with("cannot read certificates from /nonexistent/c.pem"),
            "{error}"
        );
    }

    #[test]
    fn server_certificates_from_the_ca_load_with_and_without_client_auth() {
        let dir = tempfile::tempdir().unwrap();
        let ca = crate::ca::CertificateAuthority::load_or_create(dir.path(), None).unwrap();
        let files = ca
            .ensure_server_certificate(dir.path(), &["localhost".to_string()])
            .unwrap();
        assert!(server_config(&files).is_ok());
        assert!(mutual_server_config(&files, ca.certificate()).is_ok());
    }
}
