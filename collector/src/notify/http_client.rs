//! The HTTP client every HTTP receiver uses: one POST per connection over
//! hyper, TLS through rustls (public roots plus an optional CA file), the
//! whole exchange bounded by the integration's timeout, and the answer
//! classified into "accepted", "retry later" and "will never work".

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

use crate::send_error::SendError;

/// Largest response body read; receivers answer with a few bytes of JSON.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

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
    pub fn parse(url: &str) -> Result<Target, String> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|error| format!("invalid URL {url:?}: {error}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("URL {url:?} must start with http:// or https://")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("URL {url:?} has no host"))?;
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
pub fn tls_config(ca_file: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let certificates = CertificateDer::pem_file_iter(path)
            .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
            .map_err(|error| format!("cannot read CA file {}: {error}", path.display()))?;
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|error| format!("unusable CA in {}: {error}", path.display()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| format!("cannot configure TLS: {error}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// POSTs `body` and returns the status and response body when the answer
/// is 2xx. 5xx, 429, 408, connection failures and the timeout are
/// retryable; other statuses are not.
pub async fn post(
    target: &Target,
    headers: &[(&str, String)],
    body: Vec<u8>,
    tls: &Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<(u16, Bytes), SendError> {
    match tokio::time::timeout(timeout, exchange(target, headers, body, tls)).await {
        Ok(result) => result,
        Err(_) => Err(SendError::Retryable(format!(
            "no answer from {} within {}",
            target.authority,
            countywatch_daemon::duration::PromDuration(timeout)
        ))),
    }
}

async fn exchange(
    target: &Target,
    headers: &[(&str, String)],
    body: Vec<u8>,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<(u16, Bytes), SendError> {
    let retry = |what: &str, error: &dyn std::fmt::Display| {
        SendError::Retryable(format!("{what} {}: {error}", target.authority))
    };
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|error| retry("cannot connect to", &error))?;
    let _ = tcp.set_nodelay(true);
    let mut request = Request::post(target.path_and_query.as_str())
        .header(hyper::header::HOST, target.authority.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("countywatch/", env!("CARGO_PKG_VERSION")),
        );
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|error| SendError::Permanent(format!("cannot build the request: {error}")))?;
    let response = if target.https {
        let name = ServerName::try_from(target.host.clone())
            .map_err(|error| SendError::Permanent(format!("invalid server name: {error}")))?;
        let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
            .connect(name, tcp)
            .await
            .map_err(|error| retry("TLS handshake failed with", &error))?;
        send(TokioIo::new(stream), request).await
    } else {
        send(TokioIo::new(tcp), request).await
    }
    .map_err(|error| retry("HTTP exchange failed with", &error))?;
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    if (200..300).contains(&status) {
        return Ok((status, body));
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(300)])
        .trim()
        .to_string();
    Err(SendError::from_status(
        status,
        format!("{} answered {status}: {text}", target.authority),
    ))
}

async fn send<T>(
    io: TokioIo<T>,
    request: Request<Full<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, hyper::Error>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender.send_request(request).await;
    // The connection task ends with the sender; abort it so that a server
    // keeping the connection open costs nothing after the answer.
    if response.is_err() {
        driver.abort();
    }
    response
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
