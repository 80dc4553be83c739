//! Sending batches to the collector over HTTPS.
//!
//! The agent trusts exactly one server certificate, pinned by its SHA-256
//! fingerprint; no CA store is consulted. One HTTP/1.1 connection is kept
//! open and reused; any error drops it and the next send reconnects.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use countywatch_wire::{CONTENT_ENCODING_GZIP, INGEST_PATH};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::CollectorUrl;

/// Why a send failed. Every variant is worth retrying except
/// [`SendError::Rejected`] with a 4xx status, which means the batch itself
/// is bad and retrying it would fail forever.
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
    #[error("collector refused the batch: HTTP {status}: {body}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The start of the response body, which says why.
        body: String,
    },
}

impl SendError {
    /// Whether the same batch may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            SendError::Rejected { status, .. } => *status >= 500 || *status == 429,
            _ => true,
        }
    }
}

/// A reusable connection to the collector.
pub struct Transport {
    /// Where the collector is.
    url: CollectorUrl,
    /// TLS settings with the pinning verifier.
    connector: TlsConnector,
    /// The open connection, if any.
    connection: Option<SendRequest<Full<Bytes>>>,
    /// Upper bound on one send, connection set-up included.
    timeout: Duration,
}

impl Transport {
    /// A transport that trusts only the certificate with `pin` as SHA-256.
    pub fn new(url: CollectorUrl, pin: [u8; 32], timeout: Duration) -> Result<Self, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(PinnedCertificate {
            pin,
            algorithms: provider.signature_verification_algorithms,
        });
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Transport {
            url,
            connector: TlsConnector::from(Arc::new(config)),
            connection: None,
            timeout,
        })
    }

    fn address(&self) -> String {
        if self.url.host.contains(':') {
            format!("[{}]:{}", self.url.host, self.url.port)
        } else {
            format!("{}:{}", self.url.host, self.url.port)
        }
    }

    /// Sends one encoded batch and waits for the collector's answer.
    pub async fn send(&mut self, body: Bytes) -> Result<(), SendError> {
        let address = self.address();
        match tokio::time::timeout(self.timeout, self.send_inner(body)).await {
            Ok(Ok(())) => Ok(()),
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

    async fn send_inner(&mut self, body: Bytes) -> Result<(), SendError> {
        let address = self.address();
        let unreachable = |message: String| SendError::Unreachable {
            address: address.clone(),
            message,
        };
        let reusable = match &mut self.connection {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !reusable {
            self.connection = Some(self.connect().await.map_err(unreachable)?);
        }
        let Some(sender) = self.connection.as_mut() else {
            return Err(unreachable("no connection".to_string()));
        };
        let request = hyper::Request::post(INGEST_PATH)
            .header(hyper::header::HOST, &address)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::CONTENT_ENCODING, CONTENT_ENCODING_GZIP)
            .body(Full::new(body))
            .map_err(|error| unreachable(error.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| unreachable(error.to_string()))?;
        let status = response.status();
        // Read the body fully so the connection can be reused; cap what we keep.
        let body = response
            .into_body()
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        if status.is_success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&body[..body.len().min(512)])
            .trim()
            .to_string();
        Err(SendError::Rejected {
            status: status.as_u16(),
            body: text,
        })
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let tcp = TcpStream::connect((self.url.host.as_str(), self.url.port))
            .await
            .map_err(|error| error.to_string())?;
        let _ = tcp.set_nodelay(true);
        let server_name = ServerName::try_from(self.url.host.clone())
            .map_err(|error| format!("invalid server name: {error}"))?;
        let tls = self
            .connector
            .connect(server_name, tcp)
            .await
            .map_err(|error| format!("TLS handshake failed: {error}"))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|error| error.to_string())?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "collector connection closed");
            }
        });
        Ok(sender)
    }
}

/// Accepts exactly one server certificate, identified by the SHA-256 of its
/// DER encoding. Host names and validity dates are not checked: the pin is
/// the identity, as with an SSH host key.
#[derive(Debug)]
struct PinnedCertificate {
    /// SHA-256 of the one acceptable end-entity certificate.
    pin: [u8; 32],
    /// How to check the handshake signatures made with that certificate.
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if got == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "server certificate SHA-256 {} does not match the pinned {}",
                hex::encode(got),
                hex::encode(self.pin)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
