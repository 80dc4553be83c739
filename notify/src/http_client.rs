//! What every HTTP receiver sends with: its URL ([`Target`]), its TLS
//! trust (public roots plus an optional CA file) and one JSON POST per
//! connection through `countywatch-net`'s client, the whole exchange
//! bounded by the integration's timeout and the answer classified into
//! "accepted", "retry later" and "will never work".

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use countywatch_net::connect::Connector;
use countywatch_net::http_client::HttpClient;
use countywatch_net::send_error::SendError;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;

/// A receiver URL that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Not a URL at all.
    #[error("invalid URL {url:?}: {source}")]
    Invalid {
        /// The URL as configured.
        url: String,
        /// What the parser said.
        source: hyper::http::uri::InvalidUri,
    },
    /// A scheme other than `http` or `https`.
    #[error("URL {0:?} must start with http:// or https://")]
    Scheme(String),
    /// No host to connect to.
    #[error("URL {0:?} has no host")]
    NoHost(String),
}

/// A receiver's TLS settings that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// The CA file cannot be read or holds no PEM certificates.
    #[error("cannot read CA file {}: {source}", path.display())]
    ReadCa {
        /// The configured `ca_file`.
        path: std::path::PathBuf,
        /// Why.
        source: rustls::pki_types::pem::Error,
    },
    /// A certificate in the CA file is not a usable trust anchor.
    #[error("unusable CA in {}: {source}", path.display())]
    UnusableCa {
        /// The configured `ca_file`.
        path: std::path::PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
    /// rustls refused the protocol versions.
    #[error("cannot configure TLS: {0}")]
    Versions(rustls::Error),
}

/// TLS options of HTTP integrations.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpTlsConfig {
    /// Trust this CA file (PEM) in addition to the public roots.
    pub ca_file: Option<PathBuf>,
}

/// A parsed `http` or `https` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Whether TLS is used.
    pub https: bool,
    /// Host name or IP address (without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// `host:port` as written, for the Host header.
    pub authority: String,
    /// Path and query, at least `/`.
    pub path_and_query: String,
}

impl Target {
    /// Parses a URL; only `http` and `https` are accepted.
    pub fn parse(url: &str) -> Result<Target, TargetError> {
        let uri: hyper::Uri = url.parse().map_err(|source| TargetError::Invalid {
            url: url.to_string(),
            source,
        })?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(TargetError::Scheme(url.to_string())),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| TargetError::NoHost(url.to_string()))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        Ok(Target {
            https,
            host,
            port,
            authority: authority.as_str().to_string(),
            path_and_query: uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |path| path.as_str().to_string()),
        })
    }

    /// The same target with `extra` appended to the query string.
    pub fn with_query(&self, extra: &str) -> Target {
        let mut target = self.clone();
        let separator = if target.path_and_query.contains('?') {
            '&'
        } else {
            '?'
        };
        target.path_and_query = format!("{}{separator}{extra}", target.path_and_query);
        target
    }
}

/// A TLS client configuration with the public roots and, when given, a CA file.
pub fn tls_config(
    ca_file: Option<&std::path::Path>,
) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let certificates = CertificateDer::pem_file_iter(path)
            .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
            .map_err(|source| TlsConfigError::ReadCa {
                path: path.to_path_buf(),
                source,
            })?;
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|source| TlsConfigError::UnusableCa {
                    path: path.to_path_buf(),
                    source,
                })?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(TlsConfigError::Versions)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// POSTs `body` as JSON on a connection of its own and returns the status
/// and response body when the answer is 2xx. 5xx, 429, 408, connection
/// failures and the timeout are retryable; other statuses are not.
pub async fn post(
    target: &Target,
    headers: &[(&str, String)],
    body: Vec<u8>,
    tls: &Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<(u16, Bytes), SendError> {
    let tls = target.https.then(|| (Arc::clone(tls), target.host.clone()));
    let connector = Connector::new(&target.host, target.port, tls)
        .map_err(|error| SendError::Permanent(format!("invalid server name: {error}")))?;
    // Notifications are minutes apart: the client, and with it the
    // connection, lasts one request.
    let mut client = HttpClient::new(
        connector,
        target.authority.clone(),
        target.path_and_query.clone(),
        timeout,
    );
    let mut all_headers = vec![(hyper::header::CONTENT_TYPE.as_str(), "application/json")];
    all_headers.extend(headers.iter().map(|(name, value)| (*name, value.as_str())));
    client.post(&all_headers, Bytes::from(body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let target = Target::parse("https://oapi.dingtalk.com/robot/send?access_token=x").unwrap();
        assert!(target.https);
        assert_eq!(target.port, 443);
        assert_eq!(target.path_and_query, "/robot/send?access_token=x");
        assert_eq!(
            target.with_query("sign=y").path_and_query,
            "/robot/send?access_token=x&sign=y"
        );
        let local = Target::parse("http://[::1]:8080").unwrap();
        assert_eq!(
            (
                local.host.as_str(),
                local.port,
                local.path_and_query.as_str()
            ),
            ("::1", 8080, "/")
        );
        assert!(Target::parse("ftp://x/").is_err());
        assert!(Target::parse("not a url").is_err());
    }
}
