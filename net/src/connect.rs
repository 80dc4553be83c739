//! A byte stream to one receiver: TCP, or TLS over it with the caller's
//! client configuration, opened (handshake included) within a deadline.

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A byte stream to a receiver, plain or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The TCP connection failed (refused, unreachable, no such host).
    #[error("cannot connect to {address}: {source}")]
    Tcp {
        /// `host:port`.
        address: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// The TLS handshake failed (untrusted certificate, wrong name).
    #[error("TLS handshake failed with {address}: {source}")]
    Tls {
        /// `host:port`.
        address: String,
        /// What rustls said.
        source: std::io::Error,
    },
    /// Nothing within the deadline.
    #[error("no connection to {address} within {}", countywatch_config::duration::PromDuration(*.timeout))]
    Timeout {
        /// `host:port`.
        address: String,
        /// The deadline.
        timeout: Duration,
    },
}

/// The TLS name to verify is not a DNS name or an IP address.
#[derive(Debug, thiserror::Error)]
#[error("{name:?} is not a valid TLS server name")]
pub struct InvalidServerName {
    /// The name as given.
    pub name: String,
}

/// How to reach one receiver.
#[derive(Clone)]
pub struct Connector {
    /// Host to connect to (name or IP address, without brackets).
    host: String,
    /// TCP port.
    port: u16,
    /// TLS set-up and the name to verify, or `None` for plain TCP.
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl Connector {
    /// A connector for `host:port`; with `tls`, a TLS client configuration
    /// and the name the receiver's certificate must carry.
    pub fn new(
        host: &str,
        port: u16,
        tls: Option<(Arc<ClientConfig>, String)>,
    ) -> Result<Connector, InvalidServerName> {
        let tls = match tls {
            Some((config, name)) => {
                let server_name =
                    ServerName::try_from(name.clone()).map_err(|_| InvalidServerName { name })?;
                Some((TlsConnector::from(config), server_name))
            }
            None => None,
        };
        Ok(Connector {
            host: host.to_string(),
            port,
            tls,
        })
    }

    /// `host:port` (IPv6 addresses in brackets), for messages.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Opens a connection (and completes the TLS handshake) within `timeout`.
    pub async fn connect(&self, timeout: Duration) -> Result<Box<dyn Stream>, ConnectError> {
        let attempt = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|source| ConnectError::Tcp {
                    address: self.address(),
                    source,
                })?;
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => Ok(Box::new(tcp) as Box<dyn Stream>),
                Some((connector, name)) => connector
                    .connect(name.clone(), tcp)
                    .await
                    .map(|stream| Box::new(stream) as Box<dyn Stream>)
                    .map_err(|source| ConnectError::Tls {
                        address: self.address(),
                        source,
                    }),
            }
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .map_err(|_| ConnectError::Timeout {
                address: self.address(),
                timeout,
            })?
    }
}
