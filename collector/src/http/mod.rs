//! The HTTP listener's routes: `/metrics` for Prometheus, `/-/healthy` and
//! `/-/ready` for supervisors, and `/status`, a status page with the CA
//! fingerprint. The console (`/`, `/incidents`, `/api/v1/`, and every
//! `/api/v2/` path) is [`console::handle`], whose route table ([`routes`])
//! decides, matching paths exactly; the routes it lets through to the
//! notifier's API (`countywatch_notify::api`) are the only way there.
//!
//! `/metrics` answers in the text format 0.0.4, or in OpenMetrics 1.0.0
//! when the scraper's `Accept` asks for it (`openmetrics`). It may require a
//! bearer token or basic auth (`http.metrics_auth`); a request without them
//! gets a 401 and is counted in
//! `countywatch_metrics_scrapes_total{result="unauthorized"}`. It is
//! rendered on a blocking thread from snapshots (see `metric_store`), so a
//! scrape never holds up ingest.
//!
//! - [`console`]: the console's entry point: route, authenticate, check
//!   the role, audit refusals, dispatch.
//! - [`routes`]: the one route table: paths, roles, handlers.
//! - [`request`]: cookies, bodies, responses with the security headers.
//! - [`csrf`]: CSRF tokens for forms and the API.
//! - [`login_limiter`]: failed logins per address and account, and the
//!   argon2 memory password checks are lent.
//! - [`api`]: the JSON API under `/api/v1/` and its OpenAPI description.
//! - [`web`]: the server-rendered pages (maud), in Chinese and English.
//! - [`openmetrics`]: `/metrics` in OpenMetrics 1.0.0 for scrapers that ask
//!   for it.

pub mod api;
pub mod console;
pub mod csrf;
pub mod login_limiter;
pub mod openmetrics;
pub mod request;
pub mod routes;
pub mod web;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::active_response::config::ResponseConfig;
use crate::alerting::Alerting;
use crate::audit::Outcome;
use crate::config_reload::Reloader;
use crate::http::login_limiter::LoginLimiter;
use crate::http::routes::Route;
use crate::incident::auth::Principal;
use crate::incident::store::IncidentStore;
use crate::metric_store::{JOB, MetricStore};
use crate::metrics_auth::MetricsCredentials;
use crate::registry::Registry;
use crate::serve::Peer;
use crate::telemetry::Telemetry;
use countywatch_daemon::clock::now_ms;
use countywatch_notify::Notifier;
use countywatch_notify::display::Display;

/// Everything the HTTP listener's handlers read: the router, `/metrics`,
/// the status page and every console handler take this one struct.
pub struct State {
    /// The incident store (also users, sessions, audit).
    pub store: Arc<IncidentStore>,
    /// Enrolled agents and the raw events (`collector.db`), for
    /// `countywatch_agent_up` and the agents page.
    pub registry: Arc<Registry>,
    /// Agents' latest metrics: `/metrics` exposes them and the console
    /// shows the version each agent reports.
    pub metrics: Arc<MetricStore>,
    /// The collector's own metrics: `/metrics` appends them, and the
    /// overview reads the audit trail's last self-verification from them.
    pub telemetry: Arc<Telemetry>,
    /// Silences and the Alertmanager-compatible API.
    pub notifier: Arc<Notifier>,
    /// The rule engine, when rules are configured: its firing alerts for
    /// the console, its `ALERTS` and rule metrics for `/metrics`.
    pub alerting: Option<Arc<Alerting>>,
    /// SHA-256 of the CA certificate, shown on the status page for
    /// enrolling agents.
    pub ca_fingerprint: String,
    /// Credentials `/metrics` requires, if any.
    pub metrics_auth: Option<MetricsCredentials>,
    /// Failed logins per address.
    pub limiter: LoginLimiter,
    /// Cookies get `Secure` when the listener serves TLS.
    pub secure_cookies: bool,
    /// How long a session lasts.
    pub session_ttl: Duration,
    /// An agent not heard from for this long is down.
    pub silent_after: Duration,
    /// The data directory (for `collector.db` reads).
    pub data_dir: PathBuf,
    /// The detection rules' descriptions and guidance, per language.
    pub rule_texts: web::rule_texts::RuleTexts,
    /// The time zone and default language people read.
    pub display: Arc<Display>,
    /// The `response:` section: the decisions page says when it is a dry run.
    pub response: Arc<ResponseConfig>,
    /// Reloads the configuration on `POST /-/reload`.
    pub reloader: Arc<Reloader>,
    /// `http.open_alerts_read`: anonymous `GET /api/v2/alerts` lists the
    /// alerting-rule alerts.
    pub open_alerts_read: bool,
}

/// A console request that passed routing and authorization.
pub struct Authorized {
    /// The route.
    pub route: &'static Route,
    /// The `{id}` in the path.
    pub id: Option<i64>,
    /// Who is calling (`None` on public routes without a session).
    pub principal: Option<Principal>,
    /// Where from.
    pub peer: Peer,
}

/// Logs and audits a refused request.
pub(crate) fn refuse_audited(state: &State, actor: &str, method: &str, path: &str, reason: &str) {
    tracing::warn!(actor, method, path, reason, "request refused");
    if let Err(error) = state.store.audit(
        actor,
        "access.denied",
        &format!("{method} {path}"),
        Outcome::Failure,
        reason,
    ) {
        tracing::error!("cannot audit a refused request: {error:#}");
    }
}

/// What this file serves itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnEndpoint {
    /// `/metrics`.
    Metrics,
    /// `/-/healthy` and `/-/ready`.
    Health,
    /// `/status`.
    Status,
}

/// The routes this file serves (GET and HEAD), all open to anyone:
/// `/metrics` asks for credentials only when `http.metrics_auth` is set.
/// The dispatcher answers only what is listed here, so this table (with
/// `routes::ROUTES`) is the whole HTTP listener's authorization
/// matrix, which `tests/tests/e2e/authorization.rs` walks.
pub const OWN_ROUTES: &[(&str, OwnEndpoint)] = &[
    ("/metrics", OwnEndpoint::Metrics),
    ("/-/healthy", OwnEndpoint::Health),
    ("/-/ready", OwnEndpoint::Health),
    ("/status", OwnEndpoint::Status),
];

/// The endpoint `OWN_ROUTES` lists for `path`.
fn own_endpoint(path: &str) -> Option<OwnEndpoint> {
    OWN_ROUTES
        .iter()
        .find(|(listed, _)| *listed == path)
        .map(|(_, endpoint)| *endpoint)
}

/// Content type of the Prometheus text format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Handles one request on the HTTP listener.
pub async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
    peer: Peer,
) -> Response<Full<Bytes>> {
    if console::owns(request.uri().path()) {
        return console::handle(state, request, peer).await;
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "use GET\n".to_string(),
        );
    }
    match own_endpoint(request.uri().path()) {
        Some(OwnEndpoint::Metrics) => {
            if let Some(credentials) = &state.metrics_auth {
                let header = request
                    .headers()
                    .get(hyper::header::AUTHORIZATION)
                    .map(|value| value.as_bytes());
                if !credentials.accepts(header) {
                    state.telemetry.metrics_scrape("unauthorized");
                    let mut response = text(
                        StatusCode::UNAUTHORIZED,
                        "text/plain",
                        "credentials required\n".to_string(),
                    );
                    response.headers_mut().insert(
                        hyper::header::WWW_AUTHENTICATE,
                        hyper::header::HeaderValue::from_static(credentials.challenge()),
                    );
                    return response;
                }
            }
            state.telemetry.metrics_scrape("ok");
            let openmetrics = request
                .headers()
                .get(hyper::header::ACCEPT)
                .and_then(|value| value.to_str().ok())
                .is_some_and(crate::http::openmetrics::is_requested);
            let rendered = tokio::task::spawn_blocking(move || {
                let body = render_metrics(&state);
                match openmetrics {
                    true => crate::http::openmetrics::from_text(&body),
                    false => body,
                }
            })
            .await;
            let content_type = match openmetrics {
                true => crate::http::openmetrics::CONTENT_TYPE,
                false => PROMETHEUS_TEXT,
            };
            match rendered {
                Ok(body) => text(StatusCode::OK, content_type, body),
                Err(_) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    "rendering failed\n".to_string(),
                ),
            }
        }
        Some(OwnEndpoint::Health) => text(StatusCode::OK, "text/plain", "ok\n".to_string()),
        Some(OwnEndpoint::Status) => text(
            StatusCode::OK,
            "text/html; charset=utf-8",
            status_page(&state),
        ),
        None => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    }
}

/// The whole `/metrics` body: agents' metrics, then the collector's own.
pub fn render_metrics(state: &State) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let fresh = state.metrics.write_text(&mut out, SystemTime::now());
    state.telemetry.agents_reporting.set(fresh as i64);
    write_agent_up(state, &mut out);
    crate::incident::detection_sink::refresh_incident_counts(&state.store, &state.telemetry);
    let mut own = Vec::new();
    state.telemetry.write_text(&mut own);
    out.push_str(&String::from_utf8_lossy(&own));
    if let Some(alerting) = &state.alerting {
        alerting.write_text(&mut out);
    }
    out
}

/// `countywatch_agent_up{instance}` for every enrolled, unrevoked agent: 1
/// when it reported within `agents.silent_after`.
fn write_agent_up(state: &State, out: &mut String) {
    let agents = match state.registry.agents() {
        Ok(agents) => agents,
        Err(error) => {
            tracing::error!("{error:#}");
            return;
        }
    };
    let now = now_ms();
    let silent_ms = i64::try_from(state.silent_after.as_millis()).unwrap_or(i64::MAX);
    let mut up = countywatch_wire::MetricFamily::new(
        "countywatch_agent_up",
        "Whether the enrolled agent reported within agents.silent_after.",
        countywatch_wire::MetricKind::Gauge,
    );
    for agent in agents.iter().filter(|agent| agent.revoked_ms.is_none()) {
        let alive = agent
            .last_seen_ms
            .is_some_and(|seen| now.saturating_sub(seen) <= silent_ms);
        up.push(&[("instance", &agent.name)], if alive { 1.0 } else { 0.0 });
    }
    if !up.samples.is_empty() {
        countywatch_wire::write_family_header(out, &up);
        countywatch_wire::write_samples(out, &up, &[("job", JOB)]);
    }
}

/// The open status page: the CA fingerprint agents pin and how many agents
/// report. It is served to anyone, so it names no agent (the agents page
/// does, for viewers): a list of host names is a map for an intruder.
fn status_page(state: &State) -> String {
    let reporting = state.metrics.agents().len();
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>countywatch collector</title></head>\
         <body><h1>countywatch collector</h1>\
         <p>Prometheus metrics: <a href=\"/metrics\">/metrics</a></p>\
         <p>CA certificate SHA-256 (agents pin it when they enrol): <code>{}</code></p>\
         <p>{reporting} agents have reported; their names are on the <a href=\"/agents\">agents page</a> (sign in).</p>\
         </body></html>\n",
        state.ca_fingerprint
    )
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_routes_do_not_overlap_the_incident_and_notifier_routes() {
        for (path, _) in OWN_ROUTES {
            assert!(!console::owns(path), "{path}");
            assert!(!countywatch_notify::api::owns(path), "{path}");
        }
        assert_eq!(own_endpoint("/-/ready"), Some(OwnEndpoint::Health));
        assert_eq!(own_endpoint("/metrics/"), None);
    }
}
