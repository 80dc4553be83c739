//! Outbound connections the outputs share: TCP or TLS (with optional client
//! certificate) to a receiver, and an HTTP/1.1 client that keeps one
//! connection open and tells retryable failures from final ones.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::output::config::{ClientTls, HttpUrl};
use crate::send_error::SendError;

/// A byte stream to a receiver, plain or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// How to reach one receiver.
#[derive(Clone)]
pub struct Connector {
    /// Host to connect to (name or IP address).
    host: String,
    /// TCP port.
    port: u16,
    /// TLS set-up and the name to verify, or `None` for plain TCP.
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl Connector {
    /// A connector for `host:port`, with TLS when `tls` is given.
    pub fn new(host: &str, port: u16, tls: Option<&ClientTls>) -> anyhow::Result<Connector> {
        let tls = match tls {
            Some(options) => {
                let name = options
                    .server_name
                    .clone()
                    .unwrap_or_else(|| host.to_string());
                let server_name = ServerName::try_from(name.clone())
                    .with_context(|| format!("{name:?} is not a valid TLS server name"))?;
                Some((TlsConnector::from(client_config(options)?), server_name))
            }
            None => None,
        };
        Ok(Connector {
            host: host.to_string(),
            port,
            tls,
        })
    }

    /// `host:port`, for log lines.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Opens a connection (and completes the TLS handshake) within `timeout`.
    pub async fn connect(&self, timeout: Duration) -> Result<Box<dyn Stream>, String> {
        let attempt = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|error| error.to_string())?;
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => Ok(Box::new(tcp) as Box<dyn Stream>),
                Some((connector, name)) => connector
                    .connect(name.clone(), tcp)
                    .await
                    .map(|stream| Box::new(stream) as Box<dyn Stream>)
                    .map_err(|error| format!("TLS handshake failed: {error}")),
            }
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .map_err(|_| "connection timed out".to_string())?
    }
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

/// An HTTP/1.1 client for one endpoint that keeps its connection open.
pub struct HttpClient {
    /// The endpoint.
    url: HttpUrl,
    /// TCP or TLS to its host.
    connector: Connector,
    /// The open connection, if any.
    connection: Option<SendRequest<Full<Bytes>>>,
    /// Time allowed per request.
    timeout: Duration,
}

impl HttpClient {
    /// A client for `url`; TLS options apply to `https://` URLs.
    pub fn new(url: HttpUrl, tls: Option<&ClientTls>, timeout: Duration) -> anyhow::Result<Self> {
        let default_tls = ClientTls::default();
        let tls = match url.https {
            true => Some(tls.unwrap_or(&default_tls)),
            false => None,
        };
        let connector = Connector::new(&url.host, url.port, tls)?;
        Ok(HttpClient {
            url,
            connector,
            connection: None,
            timeout,
        })
    }

    /// POSTs `body` with `headers`; `Ok` on a 2xx answer.
    pub async fn post(&mut self, headers: &[(&str, &str)], body: Bytes) -> Result<(), SendError> {
        match tokio::time::timeout(self.timeout, self.post_inner(headers, body)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                if matches!(error, SendError::Retryable(_)) {
                    self.connection = None;
                }
                Err(error)
            }
            Err(_) => {
                self.connection = None;
                Err(SendError::Retryable("request timed out".to_string()))
            }
        }
    }

    async fn post_inner(&mut self, headers: &[(&str, &str)], body: Bytes) -> Result<(), SendError> {
        let reusable = match &mut self.connection {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !reusable {
            let stream = self
                .connector
                .connect(self.timeout)
                .await
                .map_err(SendError::Retryable)?;
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|error| SendError::Retryable(error.to_string()))?;
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "output connection closed");
                }
            });
            self.connection = Some(sender);
        }
        let Some(sender) = self.connection.as_mut() else {
            return Err(SendError::Retryable("no connection".to_string()));
        };
        let mut request = hyper::Request::post(self.url.path.as_str())
            .header(hyper::header::HOST, self.url.authority())
            .header(
                hyper::header::USER_AGENT,
                concat!("countywatch-collector/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|error| SendError::Retryable(error.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| SendError::Retryable(error.to_string()))?;
        let status = response.status();
        // Read the body so the connection can be reused; keep only its start
        // for the log line.
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
        Err(SendError::from_status(
            status.as_u16(),
            format!("HTTP {}: {text}", status.as_u16()),
        ))
    }
}
