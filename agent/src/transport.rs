//! HTTPS to the collector: mutual TLS for batches, CA pinning for enrolment.
//!
//! For batches the agent trusts only the collector's CA (received at
//! enrolment, never the system store) and presents its own client
//! certificate. For enrolment it has no CA yet: it accepts a server whose
//! chain contains a CA certificate with the SHA-256 the operator pasted,
//! and then verifies the chain against that CA as usual (names included).
//! One HTTP/1.1 connection per transport is kept open and reused (the
//! decisions' long poll has a sibling transport of its own, so that it never
//! holds up a batch); any error drops it and the next request reconnects.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerified;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::CollectorUrl;
use crate::identity::IdentityFiles;
use crate::tls_verifier::{self, ChainCheck, PresentedChain};

/// Why a send failed. Every variant is worth retrying except
/// [`SendError::Rejected`] with a status that says the request itself is
/// bad (most 4xx), so retrying it would fail forever.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// TCP connect, TLS handshake or HTTP exchange failed.
    #[error("cannot reach the collector at {address}: {message}")]
    Unreachable {
        /// `host:port` we tried.
        address: String,
        /// What went wrong.
        message: String,
    },
    /// The send took longer than the configured timeout.
    #[error("collector at {0} did not answer in time")]
    Timeout(String),
    /// The collector answered with an error status.
    #[error("collector refused the request (HTTP {status}): {body}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The start of the response body, which says why.
        body: String,
        /// How long the collector asked us to wait (`Retry-After` in
        /// seconds), when it said.
        retry_after: Option<Duration>,
    },
}

impl SendError {
    /// Whether the same batch may succeed later: a status is read the way
    /// every sender of countywatch reads it
    /// ([`countywatch_net::send_error::SendError::from_status`]).
    pub fn is_retryable(&self) -> bool {
        match self {
            SendError::Rejected { status, .. } => {
                countywatch_net::send_error::SendError::from_status(*status, String::new())
                    .retryable()
            }
            _ => true,
        }
    }

    /// How long the collector asked us to wait before the next attempt.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::Rejected { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The longest `Retry-After` honoured: a collector (or something posing as
/// one on the path) must not park the agent's delivery for hours.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// A `Retry-After` header's delay, in its delta-seconds form (the form the
/// collector sends), capped at [`MAX_RETRY_AFTER`]; an HTTP date or garbage
/// is ignored and the usual backoff applies.
pub fn parse_retry_after(value: &[u8]) -> Option<Duration> {
    let seconds: u64 = std::str::from_utf8(value).ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// A reusable connection to the collector.
pub struct Transport {
    /// Where the collector is.
    url: CollectorUrl,
    /// TLS settings: mutual TLS for batches, CA pinning for enrolment.
    /// Shared with the siblings, so that a renewed certificate reaches
    /// every connection.
    tls: SharedTls,
    /// The open connection, if any, with the TLS generation it was made with.
    connection: Option<(u64, SendRequest<Full<Bytes>>)>,
    /// Upper bound on one send, connection set-up included.
    timeout: Duration,
}

/// The TLS settings a transport and its siblings share, with a generation
/// that [`Transport::replace_tls`] raises: a connection made with an older
/// generation is dropped before its next request, so a renewed client
/// certificate is used from the next request on, without a restart.
#[derive(Clone)]
struct SharedTls(Arc<std::sync::RwLock<(u64, TlsConnector)>>);

impl SharedTls {
    fn current(&self) -> (u64, TlsConnector) {
        let guard = self.0.read().unwrap_or_else(|poison| poison.into_inner());
        (guard.0, guard.1.clone())
    }

    fn generation(&self) -> u64 {
        self.0.read().unwrap_or_else(|poison| poison.into_inner()).0
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS configuration for sending batches: trust the collector's CA from
/// the identity files, present the agent's certificate.
pub fn mutual_tls(identity: &IdentityFiles) -> anyhow::Result<Arc<ClientConfig>> {
    let ca = CertificateDer::from_pem_file(identity.ca()).with_context(|| {
        format!(
            "cannot read the collector CA from {}",
            identity.ca().display()
        )
    })?;
    let chain = CertificateDer::pem_file_iter(identity.certificate())
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| {
            format!(
                "cannot read the agent certificate from {}",
                identity.certificate().display()
            )
        })?;
    let key = PrivateKeyDer::from_pem_file(identity.key()).with_context(|| {
        format!(
            "cannot read the agent key from {}",
            identity.key().display()
        )
    })?;
    let mut roots = RootCertStore::empty();
    roots
        .add(ca)
        .context("the collector CA certificate is unusable")?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("cannot configure TLS versions")?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .context("the agent certificate and key do not form a usable pair")?;
    Ok(Arc::new(config))
}

/// The TLS configuration for enrolling: trust the CA whose certificate has
/// SHA-256 `pin`, found in the chain the server presents.
pub fn pinned_ca_tls(pin: [u8; 32]) -> anyhow::Result<Arc<ClientConfig>> {
    let provider = provider();
    let check = PinnedCa {
        pin,
        provider: Arc::clone(&provider),
    };
    let config =
        tls_verifier::client_config(provider, check).context("cannot configure TLS versions")?;
    Ok(Arc::new(config))
}

impl Transport {
    /// A transport to `url` with the given TLS configuration.
    pub fn new(url: CollectorUrl, tls: Arc<ClientConfig>, timeout: Duration) -> Self {
        Transport {
            url,
            tls: SharedTls(Arc::new(std::sync::RwLock::new((
                0,
                TlsConnector::from(tls),
            )))),
            connection: None,
            timeout,
        }
    }

    /// Uses `tls` for every new connection of this transport and its
    /// siblings; their open connections are replaced before their next
    /// request.
    pub fn replace_tls(&self, tls: Arc<ClientConfig>) {
        let mut guard = self
            .tls
            .0
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        guard.0 = guard.0.wrapping_add(1);
        guard.1 = TlsConnector::from(tls);
    }

    fn address(&self) -> String {
        if self.url.host.contains(':') {
            format!("[{}]:{}", self.url.host, self.url.port)
        } else {
            format!("{}:{}", self.url.host, self.url.port)
        }
    }

    /// Another transport to the same collector with the same TLS identity
    /// and its own connection, for the decisions' long poll, which must
    /// not hold up batches.
    pub fn sibling(&self) -> Transport {
        Transport {
            url: self.url.clone(),
            tls: self.tls.clone(),
            connection: None,
            timeout: self.timeout,
        }
    }

    /// The configured upper bound on one send.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// POSTs `body` to `path` and returns the response body of a 2xx answer.
    pub async fn post(
        &mut self,
        path: &str,
        content_encoding: Option<&str>,
        body: Bytes,
    ) -> Result<Bytes, SendError> {
        self.post_with_headers(path, content_encoding, &[], body)
            .await
    }

    /// POSTs `body` to `path` with extra request `headers`.
    pub async fn post_with_headers(
        &mut self,
        path: &str,
        content_encoding: Option<&str>,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<Bytes, SendError> {
        let timeout = self.timeout;
        self.request(
            hyper::Method::POST,
            path,
            content_encoding,
            headers,
            body,
            timeout,
        )
        .await
    }

    /// GETs `path`, allowing `timeout` (a long poll waits longer than a
    /// send), and returns the response body of a 2xx answer.
    pub async fn get(&mut self, path: &str, timeout: Duration) -> Result<Bytes, SendError> {
        self.request(hyper::Method::GET, path, None, &[], Bytes::new(), timeout)
            .await
    }

    async fn request(
        &mut self,
        method: hyper::Method,
        path: &str,
        content_encoding: Option<&str>,
        headers: &[(&str, String)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, SendError> {
        let address = self.address();
        match tokio::time::timeout(
            timeout,
            self.request_inner(method, path, content_encoding, headers, body),
        )
        .await
        {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => {
                self.connection = None;
                Err(error)
            }
            Err(_) => {
                self.connection = None;
                Err(SendError::Timeout(address))
            }
        }
    }

    async fn request_inner(
        &mut self,
        method: hyper::Method,
        path: &str,
        content_encoding: Option<&str>,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<Bytes, SendError> {
        let address = self.address();
        let unreachable = |message: String| SendError::Unreachable {
            address: address.clone(),
            message,
        };
        let generation = self.tls.generation();
        let reusable = match &mut self.connection {
            Some((made_with, sender)) if *made_with == generation => sender.ready().await.is_ok(),
            _ => false,
        };
        if !reusable {
            self.connection = Some(self.connect().await?);
        }
        let Some((_, sender)) = self.connection.as_mut() else {
            return Err(unreachable("no connection".to_string()));
        };
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &address)
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(encoding) = content_encoding {
            request = request.header(hyper::header::CONTENT_ENCODING, encoding);
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|error| unreachable(error.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| unreachable(error.to_string()))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|value| parse_retry_after(value.as_bytes()));
        // Read the body fully so the connection can be reused; cap what we keep.
        let body = response
            .into_body()
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        if status.is_success() {
            return Ok(body);
        }
        // The collector explains refusals as {"error": "..."}; show that text
        // as it is, else the start of whatever came back.
        let text = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|value| value.get("error")?.as_str().map(str::to_string))
            .unwrap_or_else(|| {
                String::from_utf8_lossy(&body[..body.len().min(512)])
                    .trim()
                    .to_string()
            });
        Err(SendError::Rejected {
            status: status.as_u16(),
            body: text,
            retry_after,
        })
    }

    /// Opens a connection with the current TLS settings (and their
    /// generation); any failure says the collector is unreachable.
    async fn connect(&self) -> Result<(u64, SendRequest<Full<Bytes>>), SendError> {
        let unreachable = |message: String| SendError::Unreachable {
            address: self.address(),
            message,
        };
        let (generation, connector) = self.tls.current();
        let tcp = TcpStream::connect((self.url.host.as_str(), self.url.port))
            .await
            .map_err(|error| unreachable(error.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let server_name = ServerName::try_from(self.url.host.clone())
            .map_err(|error| unreachable(format!("invalid server name: {error}")))?;
        let tls = connector
            .connect(server_name, tcp)
            .await
            .map_err(|error| unreachable(format!("TLS handshake failed: {error}")))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|error| unreachable(error.to_string()))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "collector connection closed");
            }
        });
        Ok((generation, sender))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        assert_eq!(parse_retry_after(b"1"), Some(Duration::from_secs(1)));
        assert_eq!(parse_retry_after(b" 30 "), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after(b"999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after(b"Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after(b"-1"), None);
    }
}

/// Accepts a server whose presented chain contains the CA certificate with
/// SHA-256 `pin`, verified against that CA like any other chain (validity,
/// server-auth usage and host name included).
#[derive(Debug)]
struct PinnedCa {
    /// SHA-256 of the CA certificate the operator pasted.
    pin: [u8; 32],
    /// The crypto provider for the delegated verification.
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ChainCheck for PinnedCa {
    fn check_chain(&self, chain: &PresentedChain<'_>) -> Result<ServerCertVerified, rustls::Error> {
        let ca = chain
            .intermediates
            .iter()
            .find(|certificate| <[u8; 32]>::from(Sha256::digest(certificate.as_ref())) == self.pin)
            .ok_or_else(|| {
                rustls::Error::General(format!(
                    "the collector did not present a CA certificate with SHA-256 {}",
                    hex::encode(self.pin)
                ))
            })?;
        let mut roots = RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|error| rustls::Error::General(format!("pinned CA unusable: {error}")))?;
        let verifier = WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::clone(&self.provider),
        )
        .build()
        .map_err(|error| {
            rustls::Error::General(format!("cannot verify against the pinned CA: {error}"))
        })?;
        chain.verify_with(verifier.as_ref())
    }
}
