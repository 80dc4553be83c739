//! The one HTTP/1.1 client of everything the collector sends: POSTs to one
//! endpoint over a [`Connector`], the connection kept open between requests
//! (a sender that wants a connection per request drops the client), every
//! request bounded by a timeout, and each answer read into "accepted",
//! "retry later" or "will never work" ([`SendError`]).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::connect::Connector;
use crate::send_error::SendError;

/// Largest response body read: receivers answer with a few bytes of JSON,
/// and a receiver must not make the collector hold megabytes.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// How much of a refusal's body goes into its message.
const MAX_MESSAGE_BYTES: usize = 300;

/// An HTTP/1.1 client for one endpoint that keeps its connection open.
pub struct HttpClient {
    /// TCP or TLS to the endpoint's host.
    connector: Connector,
    /// The `Host` header: `host:port` as the URL wrote it.
    authority: String,
    /// The request target: path and query, at least `/`.
    path_and_query: String,
    /// The open connection, if any.
    connection: Option<SendRequest<Full<Bytes>>>,
    /// Time allowed per request: connecting, sending and the answer.
    timeout: Duration,
}

impl HttpClient {
    /// A client that POSTs to `path_and_query` at `authority` through
    /// `connector`, each request within `timeout`.
    pub fn new(
        connector: Connector,
        authority: String,
        path_and_query: String,
        timeout: Duration,
    ) -> HttpClient {
        HttpClient {
            connector,
            authority,
            path_and_query,
            connection: None,
            timeout,
        }
    }

    /// POSTs `body` with `headers`; the status and the answer's body (its
    /// first 64 KiB) when the answer is 2xx. 5xx, 429, 408, connection
    /// failures and the timeout are retryable; other statuses are not.
    pub async fn post(
        &mut self,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<(u16, Bytes), SendError> {
        match tokio::time::timeout(self.timeout, self.exchange(headers, body)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => {
                // A connection that failed may be half-used: start afresh.
                if error.retryable() {
                    self.connection = None;
                }
                Err(error)
            }
            Err(_) => {
                self.connection = None;
                Err(SendError::Retryable(format!(
                    "no answer from {} within {}",
                    self.connector.address(),
                    countywatch_config::duration::PromDuration(self.timeout)
                )))
            }
        }
    }

    async fn exchange(
        &mut self,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<(u16, Bytes), SendError> {
        let reusable = match &mut self.connection {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !reusable {
            let stream = self
                .connector
                .connect(self.timeout)
                .await
                .map_err(|error| SendError::Retryable(error.to_string()))?;
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|error| self.retryable("HTTP handshake failed with", &error))?;
            // The connection task ends when the sender is dropped (or the
            // peer closes), so a dropped client leaves nothing running.
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "outbound HTTP connection closed");
                }
            });
            self.connection = Some(sender);
        }
        let Some(sender) = self.connection.as_mut() else {
            return Err(SendError::Retryable("no connection".to_string()));
        };
        let mut request = hyper::Request::post(self.path_and_query.as_str())
            .header(hyper::header::HOST, self.authority.as_str())
            .header(
                hyper::header::USER_AGENT,
                concat!("countywatch/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|error| SendError::Permanent(format!("cannot build the request: {error}")))?;
        let response = sender.send_request(request).await;
        let response = match response {
            Ok(response) => response,
            Err(error) => return Err(self.retryable("HTTP exchange failed with", &error)),
        };
        let status = response.status().as_u16();
        // Read the body so the connection can be reused; a body past the
        // cap is left unread and the connection with it.
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        if (200..300).contains(&status) {
            return Ok((status, body));
        }
        let text = String::from_utf8_lossy(&body[..body.len().min(MAX_MESSAGE_BYTES)])
            .trim()
            .to_string();
        Err(SendError::from_status(
            status,
            format!("{} answered {status}: {text}", self.connector.address()),
        ))
    }

    /// A retryable failure saying `what` happened with the endpoint.
    fn retryable(&self, what: &str, error: &dyn std::fmt::Display) -> SendError {
        SendError::Retryable(format!("{what} {}: {error}", self.connector.address()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A loopback server answering every request on a connection with
    /// `status` and `body`, counting connections.
    async fn server(status: u16, body: &'static str) -> (u16, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 65536];
                    loop {
                        // Each test request fits in one read.
                        match socket.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        let answer = format!(
                            "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if socket.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (port, connections)
    }

    fn client(port: u16) -> HttpClient {
        let connector = Connector::new("127.0.0.1", port, None).unwrap();
        HttpClient::new(
            connector,
            format!("127.0.0.1:{port}"),
            "/push".to_string(),
            Duration::from_secs(10),
        )
    }

    #[tokio::test]
    async fn answers_are_read_and_the_connection_is_kept() {
        let (port, connections) = server(200, "{\"ok\":true}").await;
        let mut client = client(port);
        for _ in 0..3 {
            let (status, body) = client.post(&[], Bytes::from_static(b"x")).await.unwrap();
            assert_eq!((status, &body[..]), (200, &b"{\"ok\":true}"[..]));
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn refusals_say_whether_a_retry_can_help() {
        let (port, _) = server(400, "bad labels").await;
        let error = client(port).post(&[], Bytes::new()).await.unwrap_err();
        assert_eq!(
            error,
            SendError::Permanent(format!("127.0.0.1:{port} answered 400: bad labels"))
        );
        let (port, _) = server(503, "").await;
        assert!(
            client(port)
                .post(&[], Bytes::new())
                .await
                .unwrap_err()
                .retryable()
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_retryable() {
        // Bind and drop to find a port nothing listens on.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let error = client(port).post(&[], Bytes::new()).await.unwrap_err();
        assert!(error.retryable(), "{error}");
        assert!(
            error
                .to_string()
                .starts_with("cannot connect to 127.0.0.1:"),
            "{error}"
        );
    }
}
