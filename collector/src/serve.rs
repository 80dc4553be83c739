//! The accept loop every listener shares (HTTP, ingest, enrolment): optional TLS, HTTP/1.1 through
//! hyper, a cap on concurrent connections, timeouts against slow peers, and
//! graceful shutdown.
//!
//! Invariant: nothing a peer sends can make this loop stop or grow without
//! bound. Accept errors back off; handshakes and request heads have
//! deadlines; past the cap, one accepted connection waits for a slot and the
//! rest wait in the kernel's backlog.
//!
//! At the cap, idle keep-alive connections are what usually fill it (a
//! client that keeps finished connections open holds its slot until the
//! head deadline). So when a peer is waiting and no slot is free, every
//! open connection is told to close after its current request: idle ones
//! close at once, busy ones answer first. Nothing in flight is lost, and
//! the waiting agent gets a slot in milliseconds instead of a deadline.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::telemetry::Telemetry;

/// How long open connections get to finish after shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Who is on the other end of a connection.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The remote address.
    pub addr: SocketAddr,
    /// SHA-256 (hex) of the client certificate, when the peer presented one
    /// that the listener's verifier accepted.
    pub certificate_sha256: Option<String>,
}

/// How one listener serves.
pub struct ServeOptions {
    /// `http` or `ingest`, for logs and metric labels.
    pub name: &'static str,
    /// TLS, or plain HTTP when `None`.
    pub tls: Option<TlsAcceptor>,
    /// Most connections served at once.
    pub max_connections: usize,
    /// Deadline for the TLS handshake and for each request head.
    pub request_timeout: Duration,
}

/// Serves `listener` with `handler` until `shutdown` turns true.
pub async fn serve<H, F>(
    listener: TcpListener,
    options: ServeOptions,
    telemetry: Arc<Telemetry>,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(Request<Incoming>, Peer) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let options = Arc::new(options);
    let semaphore = Arc::new(Semaphore::new(options.max_connections));
    let pressure = Arc::new(Notify::new());
    let mut connections = JoinSet::new();
    let mut accept_backoff = Duration::from_millis(5);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually EMFILE: wait for connections to close.
                    tracing::warn!(listener = options.name, %error, "accept failed");
                    tokio::time::sleep(accept_backoff).await;
                    accept_backoff = (accept_backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
        };
        accept_backoff = Duration::from_millis(5);
        let permit = match Arc::clone(&semaphore).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // At the cap with a peer waiting: make room (see the module
                // comment), then wait for the first slot to free up.
                pressure.notify_waiters();
                tokio::select! {
                    _ = shutdown.changed() => break,
                    permit = Arc::clone(&semaphore).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                }
            }
        };
        while connections.try_join_next().is_some() {}
        let options = Arc::clone(&options);
        let telemetry = Arc::clone(&telemetry);
        let handler = handler.clone();
        let shutdown = shutdown.clone();
        let pressure = Arc::clone(&pressure);
        connections.spawn(async move {
            let gauge = telemetry
                .open_connections
                .with_label_values(&[options.name]);
            gauge.inc();
            let context = Context {
                options: &options,
                telemetry: &telemetry,
                pressure: &pressure,
            };
            serve_connection(stream, peer, &context, handler, shutdown).await;
            gauge.dec();
            drop(permit);
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            listener = options.name,
            "connections still open after the grace period, closing them"
        );
        connections.abort_all();
    }
}

/// What every connection of a listener shares.
struct Context<'a> {
    /// The listener's options.
    options: &'a ServeOptions,
    /// Where handshake failures and shed connections are counted.
    telemetry: &'a Telemetry,
    /// Notified when the listener is at its cap and a peer is waiting.
    pressure: &'a Notify,
}

async fn serve_connection<H, F>(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    context: &Context<'_>,
    handler: H,
    shutdown: watch::Receiver<bool>,
) where
    H: Fn(Request<Incoming>, Peer) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let options = context.options;
    let telemetry = context.telemetry;
    let _ = stream.set_nodelay(true);
    match &options.tls {
        Some(acceptor) => {
            let handshake =
                tokio::time::timeout(options.request_timeout, acceptor.accept(stream)).await;
            match handshake {
                Ok(Ok(tls)) => {
                    let certificate_sha256 = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|leaf| crate::digest::sha256_hex(leaf.as_ref()));
                    let peer = Peer {
                        addr: peer,
                        certificate_sha256,
                    };
                    serve_http(TokioIo::new(tls), peer, context, handler, shutdown).await;
                }
                Ok(Err(error)) => {
                    telemetry
                        .tls_handshake_failures
                        .with_label_values(&[options.name])
                        .inc();
                    tracing::debug!(listener = options.name, %peer, %error, "TLS handshake failed");
                }
                Err(_) => {
                    telemetry
                        .tls_handshake_failures
                        .with_label_values(&[options.name])
                        .inc();
                    tracing::debug!(listener = options.name, %peer, "TLS handshake timed out");
                }
            }
        }
        None => {
            let peer = Peer {
                addr: peer,
                certificate_sha256: None,
            };
            serve_http(TokioIo::new(stream), peer, context, handler, shutdown).await;
        }
    }
}

async fn serve_http<I, H, F>(
    io: I,
    peer: Peer,
    context: &Context<'_>,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    H: Fn(Request<Incoming>, Peer) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let options = context.options;
    let addr = peer.addr;
    let service = hyper::service::service_fn(move |request| {
        let response = handler(request, peer.clone());
        async move { Ok::<_, Infallible>(response.await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(options.request_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = shutdown.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
        () = context.pressure.notified() => {
            context
                .telemetry
                .connections_shed
                .with_label_values(&[options.name])
                .inc();
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(listener = options.name, peer = %addr, %error, "connection ended with an error");
    }
}
