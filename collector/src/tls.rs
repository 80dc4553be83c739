//! TLS material of the collector: the ingest certificate generated on first
//! start (or the operator's own), and the rustls server configurations.
//!
//! Agents pin the ingest certificate by its SHA-256 fingerprint, so the
//! certificate is generated once and kept: regenerating it would cut every
//! agent off. The private key is written with mode 0600.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::config::TlsFiles;

/// File names of the generated ingest identity inside the data dir.
const CERT_FILE: &str = "tls/ingest.crt";
const KEY_FILE: &str = "tls/ingest.key";

/// Where the generated ingest certificate and key are kept.
pub fn generated_files(data_dir: &Path) -> TlsFiles {
    TlsFiles {
        cert_file: data_dir.join(CERT_FILE),
        key_file: data_dir.join(KEY_FILE),
    }
}

/// Returns the ingest certificate files: the configured ones, or those in
/// the data dir, generating them on first start.
pub fn ensure_ingest_identity(
    data_dir: &Path,
    configured: Option<&TlsFiles>,
    extra_names: &[String],
) -> anyhow::Result<TlsFiles> {
    if let Some(files) = configured {
        return Ok(files.clone());
    }
    let files = generated_files(data_dir);
    if files.cert_file.exists() && files.key_file.exists() {
        return Ok(files);
    }
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Some(host) = host_name() {
        names.push(host);
    }
    names.extend(extra_names.iter().cloned());
    names.sort();
    names.dedup();
    let certified = rcgen::generate_simple_self_signed(names.clone())
        .context("cannot generate the ingest certificate")?;
    let directory = files
        .cert_file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    std::fs::create_dir_all(&directory)
        .with_context(|| format!("cannot create {}", directory.display()))?;
    write_file(
        &files.key_file,
        certified.signing_key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write_file(&files.cert_file, certified.cert.pem().as_bytes(), 0o644)?;
    tracing::info!(
        cert = %files.cert_file.display(),
        names = ?names,
        "generated the ingest certificate"
    );
    Ok(files)
}

fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

fn write_file(path: &PathBuf, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

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

/// The SHA-256 fingerprint of a certificate, lower-case hex, as agents pin it.
pub fn fingerprint(certificate: &CertificateDer<'_>) -> String {
    hex::encode(Sha256::digest(certificate.as_ref()))
}

/// The fingerprint of the leaf certificate in `files`.
pub fn fingerprint_of(files: &TlsFiles) -> anyhow::Result<String> {
    let (chain, _) = load(files)?;
    chain
        .first()
        .map(fingerprint)
        .context("no certificate found")
}

/// A rustls server configuration (TLS 1.2 and 1.3, ring) for the files.
pub fn server_config(files: &TlsFiles) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (chain, key) = load(files)?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("cannot configure TLS versions")?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .context("the certificate and key do not form a usable pair")?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generates_once_with_a_private_key_and_a_stable_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let files =
            ensure_ingest_identity(dir.path(), None, &["collector.county".to_string()]).unwrap();
        let mode = std::fs::metadata(&files.key_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let first = fingerprint_of(&files).unwrap();
        assert_eq!(first.len(), 64);
        let again = ensure_ingest_identity(dir.path(), None, &[]).unwrap();
        assert_eq!(fingerprint_of(&again).unwrap(), first);
        assert!(server_config(&files).is_ok());
    }

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
}
