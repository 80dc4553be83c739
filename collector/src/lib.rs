//! The countywatch collector as a library: the binary in `main.rs` is only
//! the command line around these functions, and tests call them directly.
//!
//! - [`config`]: the configuration file, its defaults and validation.
//! - [`tls`]: the ingest certificate (generated once) and rustls set-up.
//! - [`serve`]: the accept loop both listeners share (limits, timeouts, shutdown).
//! - [`ingest`]: `POST /v1/batches`, decoding and validating agents' batches.
//! - [`metric_store`]: the latest metrics per agent and their exposition.
//! - [`http`]: `/metrics`, health endpoints and the status page.
//! - [`telemetry`]: the collector's own `countywatch_*` metrics.
//! - [`alerting`]: rule evaluation over agents' metrics (`countywatch-rules`).
//!
//! [`start`] binds both listeners and returns a [`Running`] collector whose
//! addresses tests can read; [`run`] is start-then-wait for the binary.

pub mod alerting;
pub mod config;
pub mod http;
pub mod ingest;
pub mod metric_store;
pub mod serve;
pub mod telemetry;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::config::Config;
use crate::metric_store::MetricStore;
use crate::serve::{ServeOptions, serve};
use crate::telemetry::Telemetry;

/// A started collector.
pub struct Running {
    /// Where the HTTP listener (`/metrics`) is bound.
    pub http_addr: SocketAddr,
    /// Where the ingest listener is bound.
    pub ingest_addr: SocketAddr,
    /// SHA-256 of the ingest certificate, for agents to pin.
    pub ingest_fingerprint: String,
    /// The rule engine, when rule files are configured; notifiers read its
    /// firing alerts.
    pub alerting: Option<Arc<alerting::Alerting>>,
    /// Turning this true stops both listeners.
    stop: watch::Sender<bool>,
    /// The listeners' tasks.
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Waits for `shutdown`, then stops both listeners, letting open
    /// connections finish within a grace period.
    pub async fn wait(self, shutdown: impl Future<Output = ()>) {
        shutdown.await;
        self.stop().await;
    }

    /// Stops both listeners now.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        tracing::info!("collector stopped");
    }
}

/// Binds the listeners and starts serving.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let telemetry = Arc::new(Telemetry::new().context("cannot register self-metrics")?);
    let store = Arc::new(MetricStore::new(config.metrics.stale_after.get()));

    let ingest_files = tls::ensure_ingest_identity(
        &config.data_dir,
        config.ingest.tls.as_ref(),
        &config.ingest.server_names,
    )?;
    let ingest_fingerprint = tls::fingerprint_of(&ingest_files)?;
    let ingest_tls = TlsAcceptor::from(tls::server_config(&ingest_files)?);
    let http_tls = match &config.http.tls {
        Some(files) => Some(TlsAcceptor::from(tls::server_config(files)?)),
        None => None,
    };

    let http_listen = config.http_listen()?;
    let ingest_listen = config.ingest_listen()?;
    let http_listener = TcpListener::bind(http_listen)
        .await
        .with_context(|| format!("cannot listen on {http_listen} (http.listen)"))?;
    let ingest_listener = TcpListener::bind(ingest_listen)
        .await
        .with_context(|| format!("cannot listen on {ingest_listen} (ingest.listen)"))?;
    let http_addr = http_listener.local_addr()?;
    let ingest_addr = ingest_listener.local_addr()?;
    let scheme = if http_tls.is_some() { "https" } else { "http" };
    if http_tls.is_none() && !http_addr.ip().is_loopback() {
        tracing::warn!(%http_addr, "serving plain HTTP on a non-loopback address (http.insecure_http is set)");
    }

    let (stop, stopped) = watch::channel(false);
    let rules = alerting::start(
        &config.rules,
        &config.data_dir,
        Arc::clone(&store),
        stopped.clone(),
    )?;
    let http_state = Arc::new(http::HttpState {
        alerting: rules.as_ref().map(|(engine, _)| Arc::clone(engine)),
        store: Arc::clone(&store),
        telemetry: Arc::clone(&telemetry),
        ingest_fingerprint: ingest_fingerprint.clone(),
    });
    let ingest_state = Arc::new(ingest::IngestState {
        store,
        telemetry: Arc::clone(&telemetry),
        max_body_bytes: config.ingest.max_body_bytes,
        max_decompressed_bytes: config.ingest.max_decompressed_bytes,
        request_timeout: config.ingest.request_timeout.get(),
    });
    let http_task = tokio::spawn(serve(
        http_listener,
        ServeOptions {
            name: "http",
            tls: http_tls,
            max_connections: 256,
            request_timeout: config.ingest.request_timeout.get(),
        },
        Arc::clone(&telemetry),
        move |request, peer| http::handle(Arc::clone(&http_state), request, peer),
        stopped.clone(),
    ));
    let ingest_task = tokio::spawn(serve(
        ingest_listener,
        ServeOptions {
            name: "ingest",
            tls: Some(ingest_tls),
            max_connections: config.ingest.max_connections,
            request_timeout: config.ingest.request_timeout.get(),
        },
        telemetry,
        move |request, peer| ingest::handle(Arc::clone(&ingest_state), request, peer),
        stopped,
    ));
    tracing::info!(
        listener = "http",
        addr = %http_addr,
        url = %format!("{scheme}://{http_addr}/metrics"),
        "listening"
    );
    tracing::info!(
        listener = "ingest",
        addr = %ingest_addr,
        fingerprint = %ingest_fingerprint,
        "listening"
    );
    let mut tasks = vec![http_task, ingest_task];
    let alerting = rules.map(|(engine, task)| {
        tasks.push(task);
        engine
    });
    Ok(Running {
        http_addr,
        ingest_addr,
        ingest_fingerprint,
        alerting,
        stop,
        tasks,
    })
}

/// Runs the collector until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let running = start(config).await?;
    running.wait(shutdown).await;
    Ok(())
}
