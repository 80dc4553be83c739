//! The web page for security officers, rendered on the server with maud
//! (every interpolated value is HTML-escaped by construction; evidence is
//! attacker-controlled text). No JavaScript: forms post and redirect.
//!
//! - [`i18n`]: Chinese and English strings and the language choice.
//! - [`pages`]: the layout, the incident list and page, agents, alerts.
//! - [`overview`]: `/`, how the county is doing, with inline SVG charts.
//! - [`events_page`]: `/events`, the raw events search and its export.
//! - [`audit_page`]: `/audit`, the audit trail with filters and export.
//! - [`list_parts`]: what those two lists share (ranges, links, downloads).
//! - [`rule_texts`]: detection rules' titles, descriptions and guidance
//!   in the page's language.
//! - [`attack`]: MITRE ATT&CK technique names.
//! - [`users_page`]: `/users`, users and tokens for admins.
//! - [`silence_form`]: silencing an alert and expiring a silence.
//! - [`decisions_page`]: `/decisions`, active-response blocks and unblocking.
//!
//! This file handles the requests: login (rate-limited; failures become
//! `web_login_failed` security events), logout, the forms (each checked
//! against the session's CSRF token), and which page to render.

pub mod alert_page;
pub mod attack;
pub mod audit_page;
pub mod decisions_page;
pub mod events_page;
pub mod i18n;
pub mod list_parts;
pub mod overview;
pub mod pages;
pub mod password;
pub mod reports_page;
pub mod rule_texts;
pub mod silence_form;
pub mod users_page;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use countywatch_wire::{Event, EventKind, EventSource};
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use maud::Markup;

use crate::audit::Outcome;
use crate::http::request::{self, LANGUAGE_COOKIE, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use crate::http::routes::Endpoint;
use crate::http::{Authorized, State, refuse_audited};
use crate::http::{api, csrf, login_limiter};
use crate::incident::auth::{self, Principal};
use crate::incident::lifecycle::Transition;
use crate::incident::store::{IncidentFilter, Status};
use countywatch_daemon::clock::now_ms;

use self::i18n::Lang;

/// The stylesheet.
const STYLE: &str = include_str!("style.css");
/// How far back related incidents are looked for.
const RELATED_WINDOW_MS: i64 = 30 * 24 * 3600 * 1000;
/// Longest user name kept in a security event.
const MAX_LOGGED_USER: usize = 128;

/// What a page needs besides its data.
pub struct PageContext {
    /// The language.
    pub lang: Lang,
    /// Who is logged in.
    pub principal: Option<Principal>,
    /// The path, for the language switch and the navigation.
    pub path: String,
    /// The query, for the language switch.
    pub query: HashMap<String, String>,
    /// The time zone times are shown in.
    pub display: Arc<countywatch_notify::display::Display>,
}

impl PageContext {
    /// Unix milliseconds as people read them, in the display zone.
    pub fn time(&self, ms: i64) -> String {
        self.display.time(ms)
    }

    /// Whether the user's role is at least `role`.
    pub fn is_at_least(&self, role: auth::Role) -> bool {
        self.principal
            .as_ref()
            .is_some_and(|principal| principal.role >= role)
    }

    /// This page in language `code`, with its query.
    pub fn language_link(&self, code: &str) -> String {
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        let mut pairs: Vec<(&String, &String)> = self
            .query
            .iter()
            .filter(|(name, _)| name.as_str() != "lang")
            .collect();
        pairs.sort();
        for (name, value) in pairs {
            serializer.append_pair(name, value);
        }
        serializer.append_pair("lang", code);
        format!("{}?{}", self.path, serializer.finish())
    }
}

/// Serves an authorized page request.
pub fn serve(
    state: &State,
    request: &Request<Bytes>,
    authorized: &Authorized,
) -> Response<Full<Bytes>> {
    let query = request::query(request);
    let cookies = request::cookies(request);
    let lang = Lang::choose(
        &query,
        cookies.get(LANGUAGE_COOKIE),
        request::header(request, "accept-language"),
        state.display.page_language,
    );
    let context = PageContext {
        lang,
        principal: authorized.principal.clone(),
        path: request.uri().path().to_string(),
        query: query.clone(),
        display: Arc::clone(&state.display),
    };
    let mut response = match authorized.route.endpoint {
        Endpoint::Style => request::respond(StatusCode::OK, "text/css; charset=utf-8", STYLE),
        Endpoint::LoginPage => login_page(&context, None, StatusCode::OK, state.secure_cookies),
        Endpoint::PasswordPage => html(pages::password(&context, None)),
        Endpoint::AlertPage => alert_page::show(state, &context),
        Endpoint::Login => login(
            state,
            &context,
            &cookies,
            request.body(),
            authorized.peer.addr.ip(),
        ),
        Endpoint::Logout
        | Endpoint::TransitionForm
        | Endpoint::CommentForm
        | Endpoint::PasswordForm
        | Endpoint::AlertSilenceForm
        | Endpoint::UsersForm
        | Endpoint::DecisionsForm
        | Endpoint::SilenceForm => {
            let form = request::form(request.body());
            let Some(principal) = &authorized.principal else {
                return request::redirect("/login");
            };
            if !csrf::valid(principal, form.get(csrf::FIELD).map(String::as_str)) {
                refuse_audited(
                    state,
                    &principal.user,
                    authorized.route.method,
                    &context.path,
                    "missing or wrong CSRF token",
                );
                return request::respond(
                    StatusCode::FORBIDDEN,
                    "text/plain; charset=utf-8",
                    "missing or wrong CSRF token; reload the page\n",
                );
            }
            post_form(state, authorized, principal, &form, &cookies, &context)
        }
        Endpoint::ExportPage => {
            let mut query = query.clone();
            let format = if context.path.ends_with(".csv") {
                "csv"
            } else {
                "json"
            };
            query.insert("format".to_string(), format.to_string());
            let user = authorized
                .principal
                .as_ref()
                .map_or("anonymous", |principal| principal.user.as_str());
            api::export_list(state, &query, user).unwrap_or_else(|error| failure(&context, &error))
        }
        Endpoint::OverviewPage => overview::serve(state, &context),
        Endpoint::UsersPage => users_page::page(state, &context),
        Endpoint::DecisionsPage => decisions_page::page(state, &context),
        Endpoint::EventsPage | Endpoint::EventsExport => {
            events_page::serve(state, &context, authorized.route.endpoint)
        }
        Endpoint::AuditPage | Endpoint::AuditExport => {
            audit_page::serve(state, &context, authorized.route.endpoint)
        }
        Endpoint::ReportsPage | Endpoint::ReportDownload => {
            reports_page::serve(state, &context, authorized.route.endpoint)
        }
        Endpoint::QueuePage => {
            let filter = queue_filter(&query);
            state
                .store
                .list(&filter)
                .and_then(|(list, total)| {
                    let counts = state.store.counts_by_severity(&filter)?;
                    Ok(html(pages::queue(&context, &filter, &list, total, &counts)))
                })
                .unwrap_or_else(|error| failure(&context, &error))
        }
        Endpoint::DetailPage => {
            let id = authorized.id.unwrap_or(0);
            detail(state, &context, id, query.get("error").map(String::as_str))
                .unwrap_or_else(|error| failure(&context, &error))
        }
        Endpoint::AgentsPage => api::agent_rows(state)
            .map(|agents| html(pages::agents(&context, &agents, now_ms())))
            .unwrap_or_else(|error| failure(&context, &error)),
        Endpoint::AlertsPage => {
            let now = now_ms();
            let silences: Vec<serde_json::Value> = state
                .notifier
                .silences()
                .list()
                .iter()
                .map(|silence| countywatch_notify::api::silence_json(silence, now))
                .collect();
            let mut firing = state.notifier.active_alerts();
            firing.sort_by_key(|alert| std::cmp::Reverse(alert.starts_at_ms));
            html(pages::alerts(&context, &firing, &silences))
        }
        _ => request::respond(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n",
        ),
    };
    if let Some(code) = query
        .get("lang")
        .filter(|code| matches!(code.as_str(), "zh" | "en"))
    {
        request::set_cookie(
            &mut response,
            LANGUAGE_COOKIE,
            code,
            Some(365 * 24 * 3600),
            state.secure_cookies,
        );
    }
    response
}

/// The queue's filter: without a `status`, the queue (open and
/// acknowledged); `status=all` for every status.
fn queue_filter(query: &HashMap<String, String>) -> IncidentFilter {
    let mut filter = IncidentFilter::from_query(query);
    if filter.status.is_none() {
        filter.status = Some(crate::incident::store::QUEUE_STATUS.to_string());
    }
    filter.limit = Some(pages::PAGE_SIZE);
    filter
}

/// A page's response.
pub(crate) fn html(markup: Markup) -> Response<Full<Bytes>> {
    request::respond(
        StatusCode::OK,
        "text/html; charset=utf-8",
        markup.into_string(),
    )
}

/// The error page (the details go to the log, not to the browser).
pub(crate) fn failure(context: &PageContext, error: &anyhow::Error) -> Response<Full<Bytes>> {
    tracing::error!("page failed: {error:#}");
    let mut response = html(pages::message(context, context.lang.text("error")));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

/// The login page with a fresh double-submit CSRF token in its form and
/// cookie (`secure` when the listener serves TLS).
fn login_page(
    context: &PageContext,
    error: Option<&str>,
    status: StatusCode,
    secure: bool,
) -> Response<Full<Bytes>> {
    let token = csrf::login_token();
    let mut response = html(pages::login(context, &token, error));
    *response.status_mut() = status;
    request::set_cookie(&mut response, LOGIN_CSRF_COOKIE, &token, Some(3600), secure);
    response
}

fn login(
    state: &State,
    context: &PageContext,
    cookies: &HashMap<String, String>,
    body: &[u8],
    address: IpAddr,
) -> Response<Full<Bytes>> {
    let form = request::form(body);
    if !csrf::login_valid(cookies, &form) {
        refuse_audited(
            state,
            &format!("anonymous@{address}"),
            "POST",
            "/login",
            "login form without its CSRF cookie",
        );
        return login_page(
            context,
            Some(context.lang.text("error")),
            StatusCode::FORBIDDEN,
            state.secure_cookies,
        );
    }
    let user = form.get("username").cloned().unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    let now = now_ms();
    // The attempt counts before its password is checked, so that parallel
    // requests cannot all pass the limit before any failure is counted.
    let Some(count) = state.limiter.reserve(address, now) else {
        login_failed(
            state,
            &user,
            address,
            "rate limited",
            login_limiter::MAX_FAILURES,
        );
        return login_page(
            context,
            Some(context.lang.text("login_limited")),
            StatusCode::TOO_MANY_REQUESTS,
            state.secure_cookies,
        );
    };
    // Then per account (backoff) and overall (the global budget), so many
    // addresses cannot share the guessing of one password.
    if let Err(reason) = state.limiter.reserve_account(&user, now) {
        login_failed(state, &user, address, &reason.to_string(), count);
        return login_page(
            context,
            Some(context.lang.text("login_limited")),
            StatusCode::TOO_MANY_REQUESTS,
            state.secure_cookies,
        );
    }
    // At most CONCURRENT_PASSWORD_CHECKS argon2 runs hold memory; others
    // are turned away at once rather than queued with theirs. The attempt
    // stays counted: a flood from one address uses up its own limit.
    let Some(mut memory) = state.limiter.lease_memory() else {
        login_failed(state, &user, address, "server busy", count);
        let mut response = login_page(
            context,
            Some(context.lang.text("login_limited")),
            StatusCode::SERVICE_UNAVAILABLE,
            state.secure_cookies,
        );
        response.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("1"),
        );
        return response;
    };
    // argon2 takes tens of milliseconds of CPU; this runs on the blocking
    // pool (see `console::handle`).
    let role = auth::check_password(&state.store, &user, &password, &mut memory);
    drop(memory);
    let role = match role {
        Ok(role) => role,
        Err(error) => return failure(context, &error),
    };
    if role.is_none() {
        login_failed(state, &user, address, "wrong user name or password", count);
        return login_page(
            context,
            Some(context.lang.text("login_failed")),
            StatusCode::UNAUTHORIZED,
            state.secure_cookies,
        );
    }
    state.limiter.succeeded(address, &user);
    let mut response = match start_session(state, &user, now, "/") {
        Ok(response) => response,
        Err(error) => return failure(context, &error),
    };
    if let Err(error) = state.store.audit(
        &user,
        "login",
        &format!("user/{user}"),
        Outcome::Success,
        &format!("from {address}"),
    ) {
        tracing::error!("cannot audit a login: {error:#}");
    }
    tracing::info!(user, %address, "login");
    request::set_cookie(
        &mut response,
        LOGIN_CSRF_COOKIE,
        "",
        Some(0),
        state.secure_cookies,
    );
    response
}

/// Starts a session for `user` (a login, or a password change that ended
/// the others): the redirect to `location` that sets its cookie.
pub(crate) fn start_session(
    state: &State,
    user: &str,
    now_ms: i64,
    location: &str,
) -> anyhow::Result<Response<Full<Bytes>>> {
    let ttl_ms = i64::try_from(state.session_ttl.as_millis()).unwrap_or(i64::MAX);
    let session = auth::create_session(&state.store, user, ttl_ms, now_ms)?;
    let mut response = request::redirect(location);
    request::set_cookie(
        &mut response,
        SESSION_COOKIE,
        &session,
        Some(ttl_ms / 1000),
        state.secure_cookies,
    );
    Ok(response)
}

/// A failed login: logged, audited, and stored as a `web_login_failed`
/// security event so detection rules can see password guessing.
fn login_failed(state: &State, user: &str, address: IpAddr, reason: &str, count: u32) {
    let user: String = user.chars().take(MAX_LOGGED_USER).collect();
    tracing::warn!(user, %address, reason, "login failed");
    let now = now_ms();
    let mut event = Event::new(now, EventSource::Auth, EventKind::WebLoginFailed);
    event.host = "collector".to_string();
    event.fields.user = Some(user.clone());
    event.fields.src_ip = Some(address);
    event.fields.reason = Some(reason.to_string());
    event.fields.count = Some(count);
    event.fields.service = Some("countywatch-collector".to_string());
    event.raw = format!("web login failed for {user:?} from {address}: {reason}");
    if let Err(error) = state.registry.record_collector_event(&event, now) {
        tracing::error!("cannot record a login failure event: {error:#}");
    }
    if let Err(error) = state.store.audit(
        &format!("anonymous@{address}"),
        "login",
        &format!("user/{user}"),
        Outcome::Failure,
        reason,
    ) {
        tracing::error!("cannot audit a login failure: {error:#}");
    }
}

fn post_form(
    state: &State,
    authorized: &Authorized,
    principal: &Principal,
    form: &HashMap<String, String>,
    cookies: &HashMap<String, String>,
    context: &PageContext,
) -> Response<Full<Bytes>> {
    let now = now_ms();
    let id = authorized.id.unwrap_or(0);
    let back = format!("/incidents/{id}");
    let field = |name: &str| {
        form.get(name)
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty())
    };
    let result = match authorized.route.endpoint {
        Endpoint::PasswordForm => return password::change(state, principal, form, context),
        Endpoint::AlertSilenceForm => {
            return alert_page::silence(state, principal, form, context);
        }
        Endpoint::UsersForm => return users_page::change(state, principal, form),
        Endpoint::SilenceForm => return silence_form::change(state, principal, form),
        Endpoint::DecisionsForm => return decisions_page::unblock(state, principal, form),
        Endpoint::Logout => {
            if let Some(session) = cookies.get(SESSION_COOKIE)
                && let Err(error) = auth::end_session(&state.store, session)
            {
                return failure(context, &error);
            }
            let mut response = request::redirect("/login");
            request::set_cookie(
                &mut response,
                SESSION_COOKIE,
                "",
                Some(0),
                state.secure_cookies,
            );
            return response;
        }
        Endpoint::CommentForm => match field("text") {
            Some(text) => state.store.comment(id, &text, &principal.user, now),
            None => return request::redirect(&back),
        },
        _ => {
            let Some(to) = form.get("status").and_then(|status| Status::parse(status)) else {
                return request::redirect(&format!("{back}?error=status"));
            };
            let changed = state.store.transition(
                id,
                &Transition {
                    to,
                    assignee: field("assignee"),
                    reason: field("reason"),
                },
                &principal.user,
                now,
            );
            match (changed, field("comment")) {
                (Ok(_), Some(comment)) => state.store.comment(id, &comment, &principal.user, now),
                (Ok(_), None) => Ok(()),
                (Err(error), _) => Err(error),
            }
        }
    };
    match result {
        Ok(()) => request::redirect(&back),
        Err(error) => {
            tracing::warn!(
                user = principal.user,
                id,
                "incident change refused: {error}"
            );
            let code = match error {
                crate::incident::lifecycle::TransitionError::ReasonRequired(_) => "reason",
                crate::incident::lifecycle::TransitionError::NotAllowed { .. } => "transition",
                _ => "failed",
            };
            request::redirect(&format!("{back}?error={code}"))
        }
    }
}

fn detail(
    state: &State,
    context: &PageContext,
    id: i64,
    error: Option<&str>,
) -> anyhow::Result<Response<Full<Bytes>>> {
    let Some(incident) = state.store.incident(id)? else {
        let mut response = html(pages::message(context, context.lang.text("not_found")));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return Ok(response);
    };
    let evidence = state.store.evidence(id, api::MAX_EVIDENCE)?;
    let timeline = state.store.timeline(id)?;
    let related = state
        .store
        .related(&incident, now_ms().saturating_sub(RELATED_WINDOW_MS), 20)?;
    let assignable = auth::assignable_users(&state.store)?;
    let decisions = state.store.decisions_of_incident(id)?;
    let lang = context.lang;
    Ok(html(pages::detail(
        context,
        &incident,
        &pages::DetailData {
            evidence: &evidence,
            timeline: &timeline,
            related: &related,
            assignable: &assignable,
            decisions: decisions_page::incident_section(context, &decisions),
            description: state.rule_texts.description(lang, &incident.rule_id),
            guidance: state.rule_texts.guidance(lang, &incident.rule_id),
            error,
        },
    )))
}
