//! The one route table of the web page and the API: method, path, who may
//! call it, and which handler serves it. Authorization is decided here and
//! nowhere else, so the table is the authorization matrix (and tests can
//! walk it).

use crate::incident::auth::Role;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (the login page, the stylesheet, the API description).
    Public,
    /// Users with this role or a higher one.
    AtLeast(Role),
}

/// How refusals are answered: pages redirect to the login page, the API
/// answers JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    /// A page for people (session cookie, CSRF token in forms).
    Page,
    /// The JSON API (bearer token, or the session cookie plus the
    /// `X-CSRF-Token` header for writes).
    Api,
}

/// What serves a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /login`.
    LoginPage,
    /// `POST /login`.
    Login,
    /// `POST /logout`.
    Logout,
    /// `GET /password`: the form to change one's own password.
    PasswordPage,
    /// `POST /password` (form).
    PasswordForm,
    /// `GET /assets/style.css`.
    Style,
    /// `GET /incidents`: the queue.
    QueuePage,
    /// `GET /`: the overview.
    OverviewPage,
    /// `GET /events`: the raw events search.
    EventsPage,
    /// `GET /events/export.csv` and `.json`.
    EventsExport,
    /// `GET /audit`: the audit trail.
    AuditPage,
    /// `GET /audit/export.csv` and `.json`.
    AuditExport,
    /// `GET /reports`: the county report.
    ReportsPage,
    /// `GET /reports/report.html`, `.json` and `.csv` (one section).
    ReportDownload,
    /// `POST /alerts/silences`: create or expire a silence (form).
    SilenceForm,
    /// `GET /users`: users and tokens.
    UsersPage,
    /// `POST /users`: a change to a user or token (form).
    UsersForm,
    /// `GET /decisions`: active-response decisions in force.
    DecisionsPage,
    /// `POST /decisions`: unblock one (form).
    DecisionsForm,
    /// `GET /incidents/{id}`.
    DetailPage,
    /// `POST /incidents/{id}/transition` (form).
    TransitionForm,
    /// `POST /incidents/{id}/comment` (form).
    CommentForm,
    /// `GET /agents`.
    AgentsPage,
    /// `GET /alerts`: firing alerts and silences.
    AlertsPage,
    /// `GET /alerts/{fingerprint}`: one alert, the link notifications carry
    /// (a detection's alert leads on to its incident).
    AlertPage,
    /// `POST /alerts/{fingerprint}/silence` (form): silence that alert.
    AlertSilenceForm,
    /// `GET /incidents/export.csv` and `.json` (page surface, for the link).
    ExportPage,
    /// `GET /api/v1/openapi.json`.
    OpenApi,
    /// `POST /-/reload`: reload the configuration, as Alertmanager's.
    Reload,
    /// `GET /api/v1/incidents`.
    ApiIncidents,
    /// `GET /api/v1/incidents/{id}`.
    ApiIncident,
    /// `POST /api/v1/incidents/{id}/transition`.
    ApiTransition,
    /// `POST /api/v1/incidents/{id}/comments`.
    ApiComment,
    /// `GET /api/v1/incidents/export`.
    ApiExport,
    /// `GET /api/v1/events`.
    ApiEvents,
    /// `GET /api/v1/agents`.
    ApiAgents,
    /// `GET /api/v1/alerts`.
    ApiAlerts,
    /// `GET /api/v1/silences`.
    ApiSilences,
    /// `GET /api/v1/audit`.
    ApiAudit,
    /// `GET /api/v1/users`.
    ApiUsers,
    /// `GET /api/v1/whoami`.
    ApiWhoami,
    /// `/api/v2/` routes of the notifier (Alertmanager's API), after the
    /// role check.
    Alertmanager,
}

/// One route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The HTTP method.
    pub method: &'static str,
    /// The path; `{id}` matches one segment of digits, `{fingerprint}` one
    /// of 16 lowercase hex digits.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Pages or API.
    pub surface: Surface,
    /// The handler.
    pub endpoint: Endpoint,
}

const fn route(
    method: &'static str,
    path: &'static str,
    access: Access,
    surface: Surface,
    endpoint: Endpoint,
) -> Route {
    Route {
        method,
        path,
        access,
        surface,
        endpoint,
    }
}

use Access::{AtLeast, Public};
use Role::{Admin, Operator, SecurityOfficer, Viewer};
use Surface::{Api, Page};

/// Every route of the page and the API. Exact paths come before patterns.
pub const ROUTES: &[Route] = &[
    route("GET", "/login", Public, Page, Endpoint::LoginPage),
    route("POST", "/login", Public, Page, Endpoint::Login),
    route("POST", "/logout", AtLeast(Viewer), Page, Endpoint::Logout),
    route(
        "GET",
        "/password",
        AtLeast(Viewer),
        Page,
        Endpoint::PasswordPage,
    ),
    route(
        "POST",
        "/password",
        AtLeast(Viewer),
        Page,
        Endpoint::PasswordForm,
    ),
    route("GET", "/assets/style.css", Public, Page, Endpoint::Style),
    route("GET", "/", AtLeast(Viewer), Page, Endpoint::OverviewPage),
    route(
        "GET",
        "/incidents",
        AtLeast(Viewer),
        Page,
        Endpoint::QueuePage,
    ),
    route(
        "GET",
        "/incidents/export.csv",
        AtLeast(SecurityOfficer),
        Page,
        Endpoint::ExportPage,
    ),
    route(
        "GET",
        "/incidents/export.json",
        AtLeast(SecurityOfficer),
        Page,
        Endpoint::ExportPage,
    ),
    route(
        "GET",
        "/incidents/{id}",
        AtLeast(Viewer),
        Page,
        Endpoint::DetailPage,
    ),
    route(
        "POST",
        "/incidents/{id}/transition",
        AtLeast(SecurityOfficer),
        Page,
        Endpoint::TransitionForm,
    ),
    route(
        "POST",
        "/incidents/{id}/comment",
        AtLeast(SecurityOfficer),
        Page,
        Endpoint::CommentForm,
    ),
    route(
        "GET",
        "/agents",
        AtLeast(Viewer),
        Page,
        Endpoint::AgentsPage,
    ),
    route(
        "GET",
        "/alerts",
        AtLeast(Viewer),
        Page,
        Endpoint::AlertsPage,
    ),
    route(
        "GET",
        "/alerts/{fingerprint}",
        AtLeast(Viewer),
        Page,
        Endpoint::AlertPage,
    ),
    route(
        "POST",
        "/alerts/{fingerprint}/silence",
        AtLeast(Operator),
        Page,
        Endpoint::AlertSilenceForm,
    ),
    route(
        "GET",
        "/events",
        AtLeast(SecurityOfficer),
        Page,
        Endpoint::EventsPage,
    ),
    route(
        "GET",
        "/events/export.csv",
        AtLeast(SecurityOfficer),
        Page,
        Endpoint::EventsExport,
    ),
    route(
        "GET",
        "/events/export.json",
        AtLeast(SecurityOfficer),
        Page,
        Endpoint::EventsExport,
    ),
    route(
        "GET",
        "/audit",
        AtLeast(SecurityOfficer),
        Page,
        Endpoint::AuditPage,
    ),
    route(
        "GET",
        "/audit/export.csv",
        AtLeast(SecurityOfficer),
        Page,
        Endpoint::AuditExport,
    ),
    route(
        "POST",
        "/alerts/silences",
        AtLeast(Operator),
        Page,
        Endpoint::SilenceForm,
    ),
    route(
        "GET",
        "/decisions",
        AtLeast(SecurityOfficer),
        Page,
        Endpoint::DecisionsPage,
    ),
    route(
        "POST",
        "/decisions",
        AtLeast(SecurityOfficer),
        Page,
        Endpoint::DecisionsForm,
    ),
    route("GET", "/users", AtLeast(Admin), Page, Endpoint::UsersPage),
    route("POST", "/users", AtLeast(Admin), Page, Endpoint::UsersForm),
    route(
        "GET",
        "/audit/export.json",
        AtLeast(SecurityOfficer),
        Page,
        Endpoint::AuditExport,
    ),
    route(
        "GET",
        "/reports",
        AtLeast(SecurityOfficer),
        Page,
        Endpoint::ReportsPage,
    ),
    route(
        "GET",
        "/reports/report.html",
        AtLeast(SecurityOfficer),
        Page,
        Endpoint::ReportDownload,
    ),
    route(
        "GET",
        "/reports/report.json",
        AtLeast(SecurityOfficer),
        Page,
        Endpoint::ReportDownload,
    ),
    route(
        "GET",
        "/reports/report.csv",
        AtLeast(SecurityOfficer),
        Page,
        Endpoint::ReportDownload,
    ),
    route(
        "GET",
        "/api/v1/openapi.json",
        Public,
        Api,
        Endpoint::OpenApi,
    ),
    route(
        "GET",
        "/api/v1/whoami",
        AtLeast(Viewer),
        Api,
        Endpoint::ApiWhoami,
    ),
    route(
        "GET",
        "/api/v1/incidents",
        AtLeast(Viewer),
        Api,
        Endpoint::ApiIncidents,
    ),
    route(
        "GET",
        "/api/v1/incidents/export",
        AtLeast(SecurityOfficer),
        Api,
        Endpoint::ApiExport,
    ),
    route(
        "GET",
        "/api/v1/incidents/{id}",
        AtLeast(Viewer),
        Api,
        Endpoint::ApiIncident,
    ),
    route(
        "POST",
        "/api/v1/incidents/{id}/transition",
        AtLeast(SecurityOfficer),
        Api,
        Endpoint::ApiTransition,
    ),
    route(
        "POST",
        "/api/v1/incidents/{id}/comments",
        AtLeast(SecurityOfficer),
        Api,
        Endpoint::ApiComment,
    ),
    route(
        "GET",
        "/api/v1/events",
        AtLeast(SecurityOfficer),
        Api,
        Endpoint::ApiEvents,
    ),
    route(
        "GET",
        "/api/v1/agents",
        AtLeast(Viewer),
        Api,
        Endpoint::ApiAgents,
    ),
    route(
        "GET",
        "/api/v1/alerts",
        AtLeast(Viewer),
        Api,
        Endpoint::ApiAlerts,
    ),
    route(
        "GET",
        "/api/v1/silences",
        AtLeast(Viewer),
        Api,
        Endpoint::ApiSilences,
    ),
    route(
        "GET",
        "/api/v1/audit",
        AtLeast(SecurityOfficer),
        Api,
        Endpoint::ApiAudit,
    ),
    route(
        "GET",
        "/api/v1/users",
        AtLeast(Admin),
        Api,
        Endpoint::ApiUsers,
    ),
    // The notifier's Alertmanager-compatible API. Reads need a viewer:
    // alerts carry what the detections know (user names, source addresses,
    // hosts), which an intruder must not be able to watch; amtool and
    // Grafana send a viewer's token (`--http.config.file`, a bearer token).
    // Writes need an operator.
    route(
        "GET",
        "/api/v2/alerts",
        AtLeast(Viewer),
        Api,
        Endpoint::Alertmanager,
    ),
    route(
        "GET",
        "/api/v2/silences",
        AtLeast(Viewer),
        Api,
        Endpoint::Alertmanager,
    ),
    // The notification configuration names every receiver: admins only.
    route(
        "GET",
        "/api/v2/status",
        AtLeast(Admin),
        Api,
        Endpoint::Alertmanager,
    ),
    route(
        "POST",
        "/api/v2/alerts",
        AtLeast(Operator),
        Api,
        Endpoint::Alertmanager,
    ),
    route(
        "POST",
        "/api/v2/silences",
        AtLeast(Operator),
        Api,
        Endpoint::Alertmanager,
    ),
    route(
        "DELETE",
        "/api/v2/silence/{silence}",
        AtLeast(Operator),
        Api,
        Endpoint::Alertmanager,
    ),
    // Alertmanager's and Prometheus's reload endpoint; it re-reads files
    // an admin controls, so admins only.
    route("POST", "/-/reload", AtLeast(Admin), Api, Endpoint::Reload),
];

/// The route for `method path`, and the `{id}` it captured (a number).
pub fn find(method: &str, path: &str) -> Option<(&'static Route, Option<i64>)> {
    ROUTES.iter().find_map(|route| {
        if route.method != method {
            return None;
        }
        matches(route.path, path).map(|id| (route, id))
    })
}

/// Whether any route has this path (for 405 versus 404).
pub fn known_path(path: &str) -> bool {
    ROUTES
        .iter()
        .any(|route| matches(route.path, path).is_some())
}

/// Matches `path` against `pattern`; `Some(id)` on a match, where `id` is
/// the `{id}` segment (`None` inside when the pattern has none).
fn matches(pattern: &str, path: &str) -> Option<Option<i64>> {
    let mut id = None;
    let mut pattern_segments = pattern.split('/');
    let mut path_segments = path.split('/');
    loop {
        match (pattern_segments.next(), path_segments.next()) {
            (None, None) => return Some(id),
            (Some("{id}"), Some(segment)) => {
                if segment.is_empty() || !segment.bytes().all(|byte| byte.is_ascii_digit()) {
                    return None;
                }
                id = Some(segment.parse().ok()?);
            }
            (Some("{silence}"), Some(segment)) if !segment.is_empty() => {}
            (Some("{fingerprint}"), Some(segment))
                if segment.len() == 16
                    && segment
                        .bytes()
                        .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)) => {}
            (Some(expected), Some(segment)) if expected == segment => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_their_routes_and_capture_ids() {
        let (route, id) = find("GET", "/incidents/42").unwrap();
        assert_eq!(route.endpoint, Endpoint::DetailPage);
        assert_eq!(id, Some(42));
        assert_eq!(
            find("GET", "/incidents/export.csv").unwrap().0.endpoint,
            Endpoint::ExportPage
        );
        assert!(find("GET", "/incidents/4x2").is_none());
        assert!(find("DELETE", "/incidents/42").is_none());
        assert!(known_path("/incidents/42"));
        assert_eq!(
            find("DELETE", "/api/v2/silence/abc").unwrap().0.access,
            Access::AtLeast(Role::Operator)
        );
        assert!(find("GET", "/api/v1/incidents/1/../../x").is_none());
        assert_eq!(
            find("GET", "/alerts/0123456789abcdef").unwrap().0.endpoint,
            Endpoint::AlertPage
        );
        assert!(find("GET", "/alerts/0123456789ABCDEF").is_none());
        assert!(find("GET", "/alerts/0123").is_none());
        for path in [
            "/api/v2/silence//abc",
            "/api/v2/silence/abc/",
            "/api/v2/silence/x/y",
        ] {
            assert!(find("DELETE", path).is_none(), "{path}");
            assert!(crate::http::console::owns(path), "{path}");
        }
    }

    #[test]
    fn every_write_needs_a_role_except_login() {
        for route in ROUTES {
            if route.method != "GET" && route.endpoint != Endpoint::Login {
                assert_ne!(route.access, Access::Public, "{route:?}");
            }
        }
    }
}
