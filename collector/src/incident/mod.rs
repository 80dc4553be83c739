//! Incidents: what detection rules found, the evidence, who looked at it and
//! what they decided, with a tamper-evident audit trail, and the web page
//! and API security officers work through them with. See docs/incidents.md.
//!
//! - [`config`]: the `incidents:` section (retention, reopen window, sessions).
//! - [`store`]: `incidents.db` (SQLite, WAL), its schema and the read side.
//! - [`lifecycle`]: detections in (dedup, reopen), transitions and comments.
//! - [`decisions`]: active-response decisions and the update log agents follow.
//! - [`detection_sink`]: the store as the detection task's sink, and the
//!   incident gauges on `/metrics`.
//! - [`audit`]: the hash-chained audit trail, signed checkpoints, `verify`.
//! - [`audit_anchor`]: the `audit:` config, the checkpoint timer, external
//!   anchors (syslog, the SIEM) and the hourly self-verification.
//! - [`retention`]: the daily purge in small transactions.
//! - [`auth`]: users (argon2), sessions, API tokens, roles, login rate limit.
//! - [`accounts`]: the first admin, password changes, disabling and
//!   removing users, listing and revoking tokens.
//! - [`csrf`]: CSRF tokens for forms and the API.
//! - [`routes`]: the one route table: paths, roles, handlers.
//! - [`request`]: cookies, bodies, responses with the security headers.
//! - [`api`]: the JSON API under `/api/v1/` and its OpenAPI description.
//! - [`web`]: the server-rendered pages (maud), in Chinese and English.
//! - [`export`]: CSV and JSON exports of incident lists.
//! - [`event_search`]: the raw events search over `collector.db`.
//! - [`report_records`]: incidents as the county report's history keeps them.
//!
//! [`handle`] is the one entry point from `http.rs`: it finds the route,
//! authenticates (bearer token or session cookie), checks the role, and
//! audits every refusal before any handler runs.

pub mod accounts;
pub mod api;
pub mod audit;
pub mod audit_anchor;
pub mod auth;
pub mod config;
pub mod csrf;
pub mod decisions;
pub mod detection_sink;
pub mod event_search;
pub mod export;
pub mod lifecycle;
pub mod report_records;
pub mod request;
pub mod retention;
pub mod routes;
pub mod store;
pub mod web;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::alerting::Alerting;
use crate::incident::audit::Outcome;
use crate::incident::auth::{LoginLimiter, Principal};
use crate::incident::routes::{Access, Endpoint, Route, Surface};
use crate::incident::store::IncidentStore;
use crate::registry::Registry;
use crate::serve::Peer;
use countywatch_daemon::clock::now_ms;
use countywatch_notify::Notifier;

/// What the page and the API work with.
pub struct Incidents {
    /// The incident store (also users, sessions, audit).
    pub store: Arc<IncidentStore>,
    /// Agents and the raw events (`collector.db`).
    pub registry: Arc<Registry>,
    /// Agents' latest metrics, for the version each reports.
    pub metrics: Arc<crate::metric_store::MetricStore>,
    /// Silences and the Alertmanager-compatible API.
    pub notifier: Arc<Notifier>,
    /// Firing alerts, when rules are configured.
    pub alerting: Option<Arc<Alerting>>,
    /// Failed logins per address.
    pub limiter: LoginLimiter,
    /// Cookies get `Secure` when the listener serves TLS.
    pub secure_cookies: bool,
    /// How long a session lasts.
    pub session_ttl: Duration,
    /// An agent not heard from for this long is shown down.
    pub silent_after: Duration,
    /// The data directory (for `collector.db` reads).
    pub data_dir: PathBuf,
    /// The detection rules' descriptions and guidance, per language.
    pub rule_texts: web::rule_texts::RuleTexts,
    /// The collector's own metrics, for the audit trail's last
    /// self-verification on the overview.
    pub telemetry: prometheus::Registry,
    /// The time zone and default language people read.
    pub display: Arc<countywatch_notify::display::Display>,
    /// The `response:` section: the decisions page says when it is a dry run.
    pub response: Arc<crate::active_response::config::ResponseConfig>,
    /// Reloads the configuration on `POST /-/reload`.
    pub reloader: Arc<crate::config_reload::Reloader>,
    /// `http.open_alerts_read`: anonymous `GET /api/v2/alerts` lists the
    /// alerting-rule alerts.
    pub open_alerts_read: bool,
}

/// A request that passed routing and authorization.
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

/// Whether `http.rs` should hand this path to [`handle`]: every path of
/// the route table, and every path under the notifier's `/api/v2/`, so
/// that a path the table does not match exactly (`/api/v2/silence//ID`,
/// a trailing slash, an extra segment) is answered 404 here instead of
/// reaching the notifier without a role check.
pub fn owns(path: &str) -> bool {
    routes::known_path(path) || countywatch_notify::api::owns(path)
}

/// Serves one request of the page or the API. SQLite and argon2 work runs
/// on the blocking pool, never on the async workers.
pub async fn handle(
    incidents: Arc<Incidents>,
    request: Request<Incoming>,
    peer: Peer,
) -> Response<Full<Bytes>> {
    let Some((route, id)) = routes::find(request.method().as_str(), request.uri().path()) else {
        return match routes::known_path(request.uri().path()) {
            true => request::json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
            false => request::json_error(StatusCode::NOT_FOUND, "not found"),
        };
    };
    let mut head = Request::new(());
    *head.method_mut() = request.method().clone();
    *head.uri_mut() = request.uri().clone();
    *head.headers_mut() = request.headers().clone();
    let decided = {
        let incidents = Arc::clone(&incidents);
        tokio::task::spawn_blocking(move || authorize(&incidents, &head, route, id, peer)).await
    };
    let authorized = match decided {
        Ok(Ok(authorized)) => authorized,
        Ok(Err(refusal)) => return *refusal,
        Err(error) => return internal_error(&error),
    };
    if route.endpoint == Endpoint::Alertmanager {
        return alertmanager(&incidents, request, &authorized).await;
    }
    if route.endpoint == Endpoint::Reload {
        return reload(&incidents, &authorized).await;
    }
    let (parts, body) = request.into_parts();
    let body = match parts.method {
        hyper::Method::GET | hyper::Method::HEAD => Bytes::new(),
        _ => match request::body(body).await {
            Ok(body) => body,
            Err(response) => return response,
        },
    };
    let request = Request::from_parts(parts, body);
    let served = tokio::task::spawn_blocking(move || match route.surface {
        Surface::Api => api::serve(&incidents, &request, &authorized),
        Surface::Page => web::serve(&incidents, &request, &authorized),
    })
    .await;
    served.unwrap_or_else(|error| internal_error(&error))
}

fn internal_error(error: &tokio::task::JoinError) -> Response<Full<Bytes>> {
    tracing::error!(%error, "request handler failed");
    request::json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// Authenticates and checks the route's role (and, for API writes made with
/// a session, the CSRF header); every refusal is logged and audited.
fn authorize(
    incidents: &Incidents,
    head: &Request<()>,
    route: &'static Route,
    id: Option<i64>,
    peer: Peer,
) -> Result<Authorized, Box<Response<Full<Bytes>>>> {
    let method = head.method().as_str();
    let path = head.uri().path();
    let principal = authenticate(incidents, head);
    // The one route a switch opens to anonymous callers (the handler then
    // lists alerting-rule alerts only).
    let opened = incidents.open_alerts_read
        && route.endpoint == Endpoint::Alertmanager
        && method == "GET"
        && path == "/api/v2/alerts";
    if let Access::AtLeast(role) = route.access {
        let refusal = match &principal {
            None if opened => None,
            None => Some((
                StatusCode::UNAUTHORIZED,
                "authentication required".to_string(),
            )),
            Some(principal) if principal.role < role => Some((
                StatusCode::FORBIDDEN,
                format!(
                    "role {} may not do this (needs {})",
                    principal.role.as_str(),
                    role.as_str()
                ),
            )),
            Some(_) => None,
        };
        if let Some((status, reason)) = refusal {
            let actor = principal.as_ref().map_or_else(
                || format!("anonymous@{}", peer.addr.ip()),
                |p| p.user.clone(),
            );
            refuse_audited(incidents, &actor, method, path, &reason);
            return Err(Box::new(match (route.surface, status) {
                (Surface::Page, StatusCode::UNAUTHORIZED) => request::redirect("/login"),
                _ => request::json_error(status, &reason),
            }));
        }
    }
    // A user whose password someone else chose (the first admin) may only
    // choose their own, or leave.
    if let Some(principal) = &principal
        && principal.must_change_password
        && !matches!(
            route.endpoint,
            Endpoint::PasswordPage | Endpoint::PasswordForm | Endpoint::Logout | Endpoint::Style
        )
    {
        return Err(Box::new(match route.surface {
            Surface::Page => request::redirect("/password"),
            Surface::Api => request::json_error(
                StatusCode::FORBIDDEN,
                "set a new password first, on the page's /password",
            ),
        }));
    }
    // API writes with a session cookie must carry its CSRF token; forms
    // are checked by the page handlers once the body is read.
    if route.surface == Surface::Api
        && method != "GET"
        && let Some(principal) = &principal
        && !csrf::valid(principal, request::header(head, csrf::HEADER))
    {
        refuse_audited(
            incidents,
            &principal.user,
            method,
            path,
            "missing or wrong CSRF token",
        );
        return Err(Box::new(request::json_error(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token",
        )));
    }
    Ok(Authorized {
        route,
        id,
        principal,
        peer,
    })
}

/// The caller, from a bearer token or else the session cookie.
fn authenticate<B>(incidents: &Incidents, request: &Request<B>) -> Option<Principal> {
    let now = now_ms();
    let found = if let Some(token) =
        request::header(request, "authorization").and_then(|value| value.strip_prefix("Bearer "))
    {
        auth::bearer(&incidents.store, token.trim(), now)
    } else if let Some(session) = request::cookies(request).get(request::SESSION_COOKIE) {
        auth::session(&incidents.store, session, now)
    } else {
        Ok(None)
    };
    found.unwrap_or_else(|error| {
        tracing::error!("cannot authenticate: {error:#}");
        None
    })
}

/// Logs and audits a refused request.
pub(crate) fn refuse_audited(
    incidents: &Incidents,
    actor: &str,
    method: &str,
    path: &str,
    reason: &str,
) {
    tracing::warn!(actor, method, path, reason, "request refused");
    if let Err(error) = incidents.store.audit(
        actor,
        "access.denied",
        &format!("{method} {path}"),
        Outcome::Failure,
        reason,
    ) {
        tracing::error!("cannot audit a refused request: {error:#}");
    }
}

/// `POST /-/reload`, as Alertmanager's: 200 when the configuration was
/// reloaded, 400 with the problems when it was refused (the previous one
/// keeps running).
async fn reload(incidents: &Incidents, authorized: &Authorized) -> Response<Full<Bytes>> {
    let actor = authorized
        .principal
        .as_ref()
        .map_or("anonymous", |principal| principal.user.as_str());
    match incidents
        .reloader
        .reload(crate::config_reload::Trigger::Http, actor)
        .await
    {
        Ok(()) => request::json(StatusCode::OK, &serde_json::json!({"status": "reloaded"})),
        Err(error) => request::json_error(
            StatusCode::BAD_REQUEST,
            &format!("failed to reload config: {error}"),
        ),
    }
}

/// The notifier's `/api/v2/` routes after the role check; silence changes
/// are audited with the caller's name.
async fn alertmanager(
    incidents: &Incidents,
    request: Request<Incoming>,
    authorized: &Authorized,
) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let user = authorized
        .principal
        .as_ref()
        .map(|principal| principal.user.clone());
    let response =
        countywatch_notify::api::handle(Arc::clone(&incidents.notifier), request, user.as_deref())
            .await;
    let action = match (method.as_str(), path.as_str()) {
        ("POST", "/api/v2/silences") => "silence.created",
        ("DELETE", _) => "silence.expired",
        _ => return response,
    };
    let actor = authorized
        .principal
        .as_ref()
        .map_or("anonymous", |principal| principal.user.as_str());
    let outcome = match response.status().is_success() {
        true => Outcome::Success,
        false => Outcome::Failure,
    };
    let store = Arc::clone(&incidents.store);
    let actor = actor.to_string();
    let details = format!("HTTP {}", response.status().as_u16());
    let audited =
        tokio::task::spawn_blocking(move || store.audit(&actor, action, &path, outcome, &details))
            .await;
    if let Ok(Err(error)) = audited {
        tracing::error!("cannot audit a silence change: {error:#}");
    }
    response
}
