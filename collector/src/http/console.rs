//! The console's entry point: [`handle`] finds the route, authenticates
//! (bearer token or session cookie), checks the role, and audits every
//! refusal before any handler runs; then it hands the request to the JSON
//! API ([`super::api`]), the pages ([`super::web`]), the notifier's
//! `/api/v2/` or the reload.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::audit::Outcome;
use crate::http::routes::{self, Access, Endpoint, Route, Surface};
use crate::http::{Authorized, State, api, csrf, refuse_audited, request, web};
use crate::incident::auth::{self, Principal};
use crate::serve::Peer;
use countywatch_daemon::clock::now_ms;

/// Whether the listener's router should hand this path to [`handle`]: every path of
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
    state: Arc<State>,
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
        let state = Arc::clone(&state);
        tokio::task::spawn_blocking(move || authorize(&state, &head, route, id, peer)).await
    };
    let authorized = match decided {
        Ok(Ok(authorized)) => authorized,
        Ok(Err(refusal)) => return *refusal,
        Err(error) => return internal_error(&error),
    };
    if route.endpoint == Endpoint::Alertmanager {
        return alertmanager(&state, request, &authorized).await;
    }
    if route.endpoint == Endpoint::Reload {
        return reload(&state, &authorized).await;
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
        Surface::Api => api::serve(&state, &request, &authorized),
        Surface::Page => web::serve(&state, &request, &authorized),
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
    state: &State,
    head: &Request<()>,
    route: &'static Route,
    id: Option<i64>,
    peer: Peer,
) -> Result<Authorized, Box<Response<Full<Bytes>>>> {
    let method = head.method().as_str();
    let path = head.uri().path();
    let principal = authenticate(state, head);
    // The one route a switch opens to anonymous callers (the handler then
    // lists alerting-rule alerts only).
    let opened = state.open_alerts_read
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
            refuse_audited(state, &actor, method, path, &reason);
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
            state,
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
fn authenticate<B>(state: &State, request: &Request<B>) -> Option<Principal> {
    let now = now_ms();
    let found = if let Some(token) =
        request::header(request, "authorization").and_then(|value| value.strip_prefix("Bearer "))
    {
        auth::bearer(&state.store, token.trim(), now)
    } else if let Some(session) = request::cookies(request).get(request::SESSION_COOKIE) {
        auth::session(&state.store, session, now)
    } else {
        Ok(None)
    };
    found.unwrap_or_else(|error| {
        tracing::error!("cannot authenticate: {error:#}");
        None
    })
}

/// `POST /-/reload`, as Alertmanager's: 200 when the configuration was
/// reloaded, 400 with the problems when it was refused (the previous one
/// keeps running).
async fn reload(state: &State, authorized: &Authorized) -> Response<Full<Bytes>> {
    let actor = authorized
        .principal
        .as_ref()
        .map_or("anonymous", |principal| principal.user.as_str());
    match state
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
    state: &State,
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
        countywatch_notify::api::handle(Arc::clone(&state.notifier), request, user.as_deref())
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
    let store = Arc::clone(&state.store);
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
