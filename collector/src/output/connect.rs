//! The outputs' side of outbound connections: their TLS settings
//! ([`ClientTls`]: only the configured CA, an optional client certificate)
//! turned into `countywatch-net` connectors and HTTP clients.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use countywatch_net::connect::Connector;
use countywatch_net::http_client::HttpClient;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::output::config::{ClientTls, HttpUrl};

/// A connector for `host:port`, with TLS when `tls` is given (verifying
/// `tls.server_name`, else `host`).
pub fn connector(host: &str, port: u16, tls: Option<&ClientTls>) -> anyhow::Result<Connector> {
    let tls = match tls {
        Some(options) => {
            let name = options
                .server_name
                .clone()
                .unwrap_or_else(|| host.to_string());
            Some((client_config(options)?, name))
        }
        None => None,
    };
    Ok(Connector::new(host, port, tls)?)
}

/// An HTTP client for `url`. `https://` URLs use `tls`, or without it an
/// empty trust store: outputs trust no system store, so such an output
/// fails until its `ca_file` is configured.
pub fn http_client(
    url: &HttpUrl,
    tls: Option<&ClientTls>,
    timeout: Duration,
) -> anyhow::Result<HttpClient> {
    let default_tls = ClientTls::default();
    let tls = match url.https {
        true => Some(tls.unwrap_or(&default_tls)),
        false => None,
    };
    Ok(HttpClient::new(
        connector(&url.host, url.port, tls)?,
        url.authority(),
        url.path.clone(),
        timeout,
    ))
}

/// The rustls client configuration for `options`: only the configured CA is
/// trusted, and the client certificate is presented when configured.
pub fn client_config(options: &ClientTls) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    if let Some(ca_file) = &options.ca_file {
        for certificate in read_certificates(ca_file)? {
            roots
                .add(certificate)
                .with_context(|| format!("unusable CA certificate in {}", ca_file.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot configure TLS versions")?
        .with_root_certificates(roots);
    let config = match (&options.cert_file, &options.key_file) {
        (Some(cert_file), Some(key_file)) => {
            let chain = read_certificates(cert_file)?;
            let key = PrivateKeyDer::from_pem_file(key_file).with_context(|| {
                format!("cannot read a private key from {}", key_file.display())
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .context("the output's client certificate and key do not form a usable pair")?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn read_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read certificates from {}", path.display()))
}
