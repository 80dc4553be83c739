//! The countywatch collector as a library: the binary in `main.rs` is only
//! the command line around these functions, and tests call them directly.
//!
//! - [`config`]: the configuration file, its defaults and validation.
//! - [`config_reload`]: SIGHUP and `POST /-/reload` without a restart.
//! - [`ca`]: the certificate authority that signs server and agent certificates.
//! - [`tls`]: rustls set-up; mutual TLS on the ingest listener.
//! - [`tls_files`], [`digest`]: the certificate/key file pair and SHA-256
//!   hex, leaf modules the layers above share.
//! - [`registry`]: SQLite state: tokens, agents, sequence numbers.
//! - [`event_log`]: the `events` table's one owner: append, read after a
//!   cursor, get, search, purge, and the free-text index's SQL.
//! - [`event_text_index`]: the task that keeps the free-text index caught up.
//! - [`serve`]: the accept loop all listeners share (limits, timeouts, shutdown).
//! - [`enroll`]: `POST /v1/enroll`, tokens in, client certificates out.
//! - [`renewal`]: `POST /v1/renew` on the ingest listener, agents renew
//!   their certificates over mutual TLS.
//! - [`ingest`]: `POST /v1/batches`, identity from the certificate, exactly-once storage.
//! - [`ingest_budget`]: the decompressed bytes all ingest requests may hold at once.
//! - [`response`]: the JSON responses enrolment and ingest answer with.
//! - [`host_binding`]: which hosts and devices an agent may speak for (`devices`).
//! - [`liveness`]: marks silent agents and records `agent_silent` events.
//! - [`metric_store`]: the latest metrics per agent and their exposition.
//! - [`http`]: the HTTP listener and everything it serves: `/metrics`
//!   (text and OpenMetrics), health endpoints, the status page, and the
//!   console (route table, authentication, CSRF, the JSON API, the pages).
//! - [`metrics_auth`]: the credentials `/metrics` requires.
//! - [`telemetry`]: the collector's own `countywatch_*` metrics.
//! - [`alerting`]: rule evaluation over agents' metrics (`countywatch-rules`).
//! - [`builtin_packs`]: the shipped rule packs, compiled in and on by default.
//! - [`rule_listing`]: `rules list`, every rule that would run and its origin.
//! - [`rule_alerts`]: hands the alerting rules' firing alerts to `notify`.
//! - [`detection_rules_in_force`]: the detection rules in force by id, for
//!   the console's texts; replaced on reload.
//! - [`detection`]: detection rules over stored events (`countywatch-detect`):
//!   alerts to `notify`, detections with evidence to a sink.
//! - [`output`]: scale-out outputs: remote_write and event forwarding.
//! - [`incident`]: the incident domain: incidents, users and sessions,
//!   decisions, retention.
//! - [`audit`]: the hash-chained audit trail every layer records into, its
//!   signed checkpoints and their external anchors.
//! - [`admin`]: the administrative commands (`token`, `agents`, `audit`,
//!   `backup`, `user`, `silence`), each recording its own audit entry.
//! - [`active_response`]: decisions from detections, the agents' decision
//!   feed on the ingest listener, `decisions add|list|delete`.
//! - [`history`]: `history.db`, the hourly availability and incident history
//!   the county report reads.
//! - [`report`]: the county report: its model, its forms (JSON, CSV, HTML)
//!   and the `report` command.
//!
//! Shared pieces live in crates of their own and are imported from there,
//! never through this crate: `countywatch_notify` (routing, grouping,
//! silences, the outbox, receivers, and `display`, the time zone and
//! language people read), `countywatch_net` (`backoff`, `secret`, the HTTP
//! client) and `countywatch_daemon::sqlite` (every database's pragmas).
//!
//! [`start`] binds the listeners and returns a [`Running`] collector whose
//! addresses tests can read; [`run`] is start-then-wait for the binary.

// The daemons never panic on purpose outside tests (clippy.toml allows it in
// tests); unwrap and expect are denied workspace-wide.
#![deny(clippy::panic, clippy::todo, clippy::unimplemented)]

pub mod active_response;
pub mod admin;
pub mod alerting;
pub mod audit;
pub mod builtin_packs;
pub mod ca;
pub mod config;
pub mod config_reload;
pub mod detection;
pub mod detection_rules_in_force;
pub mod digest;
pub mod enroll;
pub mod event_log;
pub mod event_text_index;
pub mod history;
pub mod host_binding;
pub mod http;
pub mod incident;
pub mod ingest;
pub mod ingest_budget;
pub mod liveness;
pub mod metric_store;
pub mod metrics_auth;
pub mod output;
pub mod registry;
pub mod renewal;
pub mod report;
pub mod response;
pub mod rule_alerts;
pub mod rule_listing;
pub mod serve;
pub mod telemetry;
pub mod tls;
pub mod tls_files;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::ca::CertificateAuthority;
use crate::config::Config;
use crate::metric_store::MetricStore;
use crate::registry::Registry;
use crate::serve::{ServeOptions, serve};
use crate::telemetry::Telemetry;

/// A started collector.
pub struct Running {
    /// Where the HTTP listener (`/metrics`) is bound.
    pub http_addr: SocketAddr,
    /// Where the ingest listener is bound.
    pub ingest_addr: SocketAddr,
    /// Where the enrolment listener is bound, when enabled.
    pub enroll_addr: Option<SocketAddr>,
    /// SHA-256 of the CA certificate, which agents pin when they enrol.
    pub ca_fingerprint: String,
    /// Where alerting and detection rules submit alerts.
    pub notifier: Arc<countywatch_notify::Notifier>,
    /// The rule engine, when rule files are configured; notifiers read its
    /// firing alerts.
    pub alerting: Option<Arc<alerting::Alerting>>,
    /// The incident store; detections go in through
    /// [`incident::store::IncidentStore::record_detection`].
    pub incidents: Arc<incident::store::IncidentStore>,
    /// Reloads the configuration (SIGHUP, `POST /-/reload`).
    pub reloader: Arc<config_reload::Reloader>,
    /// Signs and anchors the last audit checkpoint once every task stopped.
    audit_anchoring: Arc<audit::anchor::Anchoring>,
    /// Turning this true stops every listener.
    stop: watch::Sender<bool>,
    /// The listeners' and background tasks.
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Waits for `shutdown`, then stops the listeners, letting open
    /// connections finish within a grace period.
    pub async fn wait(self, shutdown: impl Future<Output = ()>) {
        shutdown.await;
        self.stop().await;
    }

    /// Stops every listener now.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        // Last, so that it covers every entry the stopping tasks wrote.
        let anchoring = self.audit_anchoring;
        match tokio::task::spawn_blocking(move || anchoring.final_checkpoint()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::error!("cannot sign the shutdown audit checkpoint: {error:#}")
            }
            Err(error) => tracing::error!(%error, "cannot sign the shutdown audit checkpoint"),
        }
        tracing::info!("collector stopped");
    }
}

/// The names the generated server certificate is valid for.
fn server_names(config: &Config) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_string());
        }
    }
    names.extend(config.ingest.server_names.iter().cloned());
    names.sort();
    names.dedup();
    names
}

/// The CA, creating it and the server certificate on first start. Also used
/// by the `token create` and `fingerprint` commands.
pub fn certificate_authority(config: &Config) -> anyhow::Result<CertificateAuthority> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    CertificateAuthority::load_or_create(&config.data_dir, config.ca.as_ref())
        .map(|ca| ca.with_agent_validity(config.agents.cert_lifetime.get()))
}

async fn bind(address: SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} ({key})"))
}

/// Binds the listeners and starts serving.
pub async fn start(mut config: Config) -> anyhow::Result<Running> {
    // Notifications write times in the zone people read.
    config.notify.display = config.display();
    let ca = Arc::new(certificate_authority(&config)?);
    // A data dir from an older version or made by hand may be readable by
    // others; the files in it never should be.
    countywatch_daemon::private_files::tighten_dir(&config.data_dir)
        .with_context(|| format!("cannot make {} owner-only", config.data_dir.display()))?;
    // Every agent's connection is an open file; a collector started by
    // hand gets the hard limit rather than a login shell's 1,024.
    let files = countywatch_daemon::open_files::raise_to_hard_limit();
    if files
        .now
        .is_some_and(|limit| limit < config.ingest.max_connections as u64 + 256)
    {
        tracing::warn!(
            open_files = files.now,
            max_connections = config.ingest.max_connections,
            "the open-file limit is below ingest.max_connections; raise LimitNOFILE or ulimit -n"
        );
    }
    let registry = Arc::new(Registry::open(&config.data_dir)?);
    let telemetry = Arc::new(
        Telemetry::for_data_dir(&config.data_dir).context("cannot register self-metrics")?,
    );
    let store = Arc::new(MetricStore::new(config.metrics.stale_after.get()));

    let server_files = match &config.ingest.tls {
        Some(files) => files.clone(),
        None => ca.ensure_server_certificate(&config.data_dir, &server_names(&config))?,
    };
    let ingest_tls = TlsAcceptor::from(tls::mutual_server_config(&server_files, ca.certificate())?);
    let enroll_tls = TlsAcceptor::from(tls::server_config(&server_files)?);
    let http_tls = match &config.http.tls {
        Some(files) => Some(TlsAcceptor::from(tls::server_config(files)?)),
        None => None,
    };

    let http_listener = bind(config.http_listen()?, "http.listen").await?;
    let ingest_listener = bind(config.ingest_listen()?, "ingest.listen").await?;
    let enroll_listener = match config.enroll.enabled {
        true => Some(bind(config.enroll_listen()?, "enroll.listen").await?),
        false => None,
    };
    let http_addr = http_listener.local_addr()?;
    let ingest_addr = ingest_listener.local_addr()?;
    let enroll_addr = match &enroll_listener {
        Some(listener) => Some(listener.local_addr()?),
        None => None,
    };
    let scheme = if http_tls.is_some() { "https" } else { "http" };
    if http_tls.is_none() && !http_addr.ip().is_loopback() {
        tracing::warn!(%http_addr, "serving plain HTTP on a non-loopback address (http.insecure_http is set)");
    }
    let request_timeout = config.ingest.request_timeout.get();
    let ca_fingerprint = ca.fingerprint();

    let (stop, stopped) = watch::channel(false);
    let (outputs, mut tasks) = output::Outputs::start(
        &config.outputs,
        &config.data_dir,
        telemetry.registry(),
        &stopped,
    )?;
    // Samples of batches stored just before a crash, not yet queued.
    outputs.relay_agent_samples(&registry);
    let countywatch_notify::Started {
        notifier,
        tasks: notify_tasks,
    } = countywatch_notify::start(
        &config.notify,
        &config.data_dir,
        Some(telemetry.registry()),
        stopped.clone(),
    )?;
    tasks.extend(notify_tasks);
    let rules = alerting::start(
        &config.rules,
        &config.data_dir,
        Arc::clone(&store),
        Arc::clone(&outputs),
        stopped.clone(),
    )?;
    let alerting = rules.map(|(engine, task)| {
        tasks.push(task);
        engine
    });
    if let Some(engine) = &alerting {
        tasks.push(tokio::spawn(rule_alerts::forward(
            Arc::clone(engine),
            Arc::clone(&notifier),
            stopped.clone(),
        )));
    }
    let metrics_auth = match &config.http.metrics_auth {
        Some(auth) => Some(metrics_auth::MetricsCredentials::load(auth)?),
        None => None,
    };
    let incident_store = Arc::new(incident::store::IncidentStore::open_with(
        &config.data_dir,
        &config.incidents,
    )?);
    if let Some(reason) = &config.incidents.retention_override_reason
        && config.incidents.retention.value.get() < incident::config::MINIMUM_RETENTION
    {
        incident_store.audit(
            "system",
            "retention.override",
            "config",
            audit::Outcome::Success,
            &format!("retention {}: {reason}", config.incidents.retention.value),
        )?;
    }
    if let Some(path) = incident::accounts::ensure_first_admin(
        &incident_store,
        &config.data_dir,
        countywatch_daemon::clock::now_ms(),
    )? {
        tracing::warn!(
            user = incident::accounts::FIRST_ADMIN,
            path = %path.display(),
            "no user existed: created the first admin; its password is in this file \
             (readable by this service's user only), and its first login must change it"
        );
    }
    incident_store.announce_changes_to(Arc::clone(&registry));
    // Starts and clean stops are in the trail (MLPS 8.1.4.3 asks for
    // them), and a started collector's trail is never empty.
    incident_store.audit(
        "system",
        "collector.started",
        "collector",
        audit::Outcome::Success,
        &format!("version {}", env!("CARGO_PKG_VERSION")),
    )?;
    let audit_anchoring = Arc::new(audit::anchor::Anchoring::new(
        &config.audit,
        &config.data_dir,
        config.incidents.checkpoint_every,
        Arc::clone(&registry),
        telemetry.registry(),
    )?);
    tasks.push(tokio::spawn(audit::anchor::run(
        Arc::clone(&audit_anchoring),
        stopped.clone(),
    )));
    tasks.push(tokio::spawn(event_text_index::run(
        config.data_dir.clone(),
        stopped.clone(),
    )));
    tasks.push(tokio::spawn(incident::retention::run(
        Arc::clone(&incident_store),
        config.data_dir.clone(),
        config.incidents.retention.value.get(),
        stopped.clone(),
    )));
    let response = Arc::new(config.response.clone());
    let response_metrics =
        active_response::metrics::ResponseMetrics::register(telemetry.registry())
            .context("cannot register the active-response metrics")?;
    tasks.push(tokio::spawn(active_response::watch_other_writers(
        Arc::clone(&incident_store),
        stopped.clone(),
    )));
    let reloader = Arc::new(config_reload::Reloader::new(
        &config,
        Arc::clone(&notifier),
        alerting.clone(),
    ));
    // Loaded once for the engine, the agents' offline set and the console;
    // rules that failed to load were refused with the configuration.
    let detection_rules = config.detection.load_rules()?;
    let offline_rules = Arc::new(active_response::offline_rules::OfflineRulesCell::new(
        active_response::offline_rules::build(&detection_rules, &response),
    ));
    let rules_in_force = Arc::new(detection_rules_in_force::DetectionRulesInForce::new(
        detection_rules.clone(),
    ));
    if let Some(task) = detection::start(
        &config.detection,
        detection_rules,
        &config.data_dir,
        Arc::new(incident::detection_sink::IncidentSink {
            store: Arc::clone(&incident_store),
            telemetry: Arc::clone(&telemetry),
            response: Arc::clone(&response),
            response_metrics: response_metrics.clone(),
            offline_rules: Arc::clone(&offline_rules),
            rules_in_force: Arc::clone(&rules_in_force),
        }),
        Arc::clone(&notifier),
        telemetry.registry(),
        detection::Wakes {
            appended: registry.watch_appends(),
            stopped: stopped.clone(),
        },
    )? {
        tasks.push(task);
    }
    let http_state = Arc::new(http::State {
        store: Arc::clone(&incident_store),
        registry: Arc::clone(&registry),
        metrics: Arc::clone(&store),
        telemetry: Arc::clone(&telemetry),
        notifier: Arc::clone(&notifier),
        alerting: alerting.clone(),
        ca_fingerprint: ca_fingerprint.clone(),
        metrics_auth,
        limiter: http::login_limiter::LoginLimiter::default(),
        secure_cookies: http_tls.is_some(),
        session_ttl: config.incidents.session_ttl.get(),
        silent_after: config.agents.silent_after.get(),
        data_dir: config.data_dir.clone(),
        rule_texts: http::web::rule_texts::RuleTexts::new(Arc::clone(&rules_in_force)),
        display: Arc::new(config.display()),
        response: Arc::clone(&response),
        reloader: Arc::clone(&reloader),
        open_alerts_read: config.http.open_alerts_read,
    });
    tasks.push(tokio::spawn(serve(
        http_listener,
        ServeOptions {
            name: "http",
            tls: http_tls,
            max_connections: 256,
            request_timeout,
        },
        Arc::clone(&telemetry),
        move |request, peer| http::handle(Arc::clone(&http_state), request, peer),
        stopped.clone(),
    )));
    let hosts = Arc::new(host_binding::HostBinding::open(&config.data_dir)?);
    hosts
        .register(telemetry.registry())
        .context("cannot register the host binding counter")?;
    let history = Arc::new(history::History::open(
        &config.data_dir,
        config.agents.silent_after.get(),
        config.report.retention.get(),
    )?);
    history
        .register(telemetry.registry())
        .context("cannot register the history counter")?;
    if let Some(schedule) = &config.report.schedule {
        let display = config.display();
        let defaults = countywatch_notify::template::TemplateDefaults {
            language: display.language,
            display: display.clone(),
        };
        let emails = config
            .notify
            .receivers
            .iter()
            .filter(|receiver| receiver.name.value == schedule.receiver.value)
            .flat_map(|receiver| &receiver.email_configs)
            .map(|email| countywatch_notify::receiver::email::Email::new(email, &defaults))
            .collect::<Result<Vec<_>, _>>()
            .context("report.schedule")?;
        tasks.push(tokio::spawn(report::schedule::run(
            Arc::new(report::schedule::Schedule {
                emails,
                display,
                data_dir: config.data_dir.clone(),
                store: Arc::clone(&incident_store),
                registry: Arc::clone(&registry),
                history: Arc::clone(&history),
                silent_after: config.agents.silent_after.get(),
            }),
            stopped.clone(),
        )));
    }
    tasks.push(tokio::spawn(history::run(
        Arc::clone(&history),
        Arc::clone(&incident_store),
        stopped.clone(),
    )));
    let ingest_state = Arc::new(ingest::IngestState {
        store,
        hosts,
        history,
        registry: Arc::clone(&registry),
        telemetry: Arc::clone(&telemetry),
        outputs,
        decisions: Arc::new(active_response::feed::FeedState::new(
            Arc::clone(&incident_store),
            Arc::clone(&response),
            stopped.clone(),
            response_metrics,
            offline_rules,
        )),
        max_body_bytes: config.ingest.max_body_bytes,
        max_decompressed_bytes: config.ingest.max_decompressed_bytes,
        budget: Arc::new(ingest_budget::InflightBudget::new(
            config.ingest.max_inflight_decompressed_bytes,
        )),
        request_timeout,
        renewal: renewal::Renewal {
            ca: Arc::clone(&ca),
            registry: Arc::clone(&registry),
            telemetry: Arc::clone(&telemetry),
            audit_dir: Some(config.data_dir.clone()),
            last_renewed: Default::default(),
        },
    });
    tasks.push(tokio::spawn(serve(
        ingest_listener,
        ServeOptions {
            name: "ingest",
            tls: Some(ingest_tls),
            max_connections: config.ingest.max_connections,
            request_timeout,
        },
        Arc::clone(&telemetry),
        move |request, peer| ingest::handle(Arc::clone(&ingest_state), request, peer),
        stopped.clone(),
    )));
    if let Some(listener) = enroll_listener {
        let mut enroll_state = enroll::EnrollState::new(
            Arc::clone(&ca),
            Arc::clone(&registry),
            Arc::clone(&telemetry),
            ingest_addr.port(),
        );
        enroll_state.audit_dir = Some(config.data_dir.clone());
        let enroll_state = Arc::new(enroll_state);
        tasks.push(tokio::spawn(serve(
            listener,
            ServeOptions {
                name: "enroll",
                tls: Some(enroll_tls),
                max_connections: 64,
                request_timeout,
            },
            Arc::clone(&telemetry),
            move |request, peer| enroll::handle(Arc::clone(&enroll_state), request, peer),
            stopped.clone(),
        )));
    }
    tasks.push(tokio::spawn(liveness::watch(
        registry,
        config.agents.silent_after.get(),
        stopped,
    )));

    tracing::info!(listener = "http", addr = %http_addr, url = %format!("{scheme}://{http_addr}/metrics"), "listening");
    tracing::info!(listener = "ingest", addr = %ingest_addr, ca_sha256 = %ca_fingerprint, "listening");
    if let Some(addr) = enroll_addr {
        tracing::info!(listener = "enroll", addr = %addr, ca_sha256 = %ca_fingerprint, "listening");
    }
    Ok(Running {
        http_addr,
        ingest_addr,
        enroll_addr,
        ca_fingerprint,
        notifier,
        alerting,
        incidents: incident_store,
        reloader,
        audit_anchoring,
        stop,
        tasks,
    })
}

/// Runs the collector until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    // `systemctl reload` sends SIGHUP, whose default action would end the
    // process. The handler is installed before the listeners exist, so no
    // SIGHUP can arrive unhandled once the collector says it listens. Rule
    // files reload on it (see `alerting`), the notification configuration
    // here (see `config_reload`); everything else needs a restart.
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    let running = start(config).await?;
    countywatch_daemon::notify::ready();
    let reloader = Arc::clone(&running.reloader);
    let hangups = tokio::spawn(async move {
        let Ok(mut hangups) = hangups else {
            return;
        };
        while hangups.recv().await.is_some() {
            // The outcome is logged, audited and in the metrics.
            let _ = reloader
                .reload(config_reload::Trigger::Hangup, "system")
                .await;
        }
    });
    running.wait(shutdown).await;
    hangups.abort();
    Ok(())
}
