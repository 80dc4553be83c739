//! The authorization matrix (issue 13): every route of the collector's
//! three listeners against every kind of caller (anonymous, the four user
//! roles with API tokens, an enrolled agent's certificate, a revoked one).
//!
//! `EXPECTED` below is the matrix written down by hand. The test first
//! checks it against the route tables the collector dispatches from
//! (`http::routes::ROUTES`, `http::OWN_ROUTES`, the ingest and enrolment
//! paths), in both directions: a route added to the code without a line here
//! fails, as does a line here for a route the code no longer has. Then it
//! calls every route as every caller and checks the status, and that every
//! refusal of the web listener left exactly one `access.denied` row in the
//! audit trail.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use countywatch_collector::http::routes::{Access, ROUTES};
use countywatch_e2e::Collector;
use countywatch_e2e::http::{CurlIdentity, curl_post};
use countywatch_e2e::process::{add_user, api_token, wait_until};

/// Who may call a route, as the matrix states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum May {
    /// Anyone, without credentials.
    Anyone,
    /// Users whose role is at least this one (index into `ROLES`).
    Role(usize),
    /// Only an enrolled, unrevoked agent certificate (the ingest listener).
    AgentCertificate,
    /// Anyone presenting an enrolment token (the enrolment listener, no
    /// client certificate).
    EnrolmentToken,
}

/// Which listener serves a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Listener {
    /// The HTTP listener; `true` for pages (anonymous callers are
    /// redirected to `/login`), `false` for the API (401).
    Web { page: bool },
    /// The mTLS ingest listener.
    Ingest,
    /// The enrolment listener.
    Enroll,
}

/// The user roles, lowest first (as `Role` orders them).
const ROLES: [&str; 4] = ["viewer", "operator", "security_officer", "admin"];
const VIEWER: May = May::Role(0);
const OPERATOR: May = May::Role(1);
const OFFICER: May = May::Role(2);
const ADMIN: May = May::Role(3);
const PAGE: Listener = Listener::Web { page: true };
const API: Listener = Listener::Web { page: false };

/// The matrix: method, path as the route table writes it, listener, who may.
const EXPECTED: &[(&str, &str, Listener, May)] = &[
    ("GET", "/login", PAGE, May::Anyone),
    ("POST", "/login", PAGE, May::Anyone),
    ("POST", "/logout", PAGE, VIEWER),
    ("GET", "/password", PAGE, VIEWER),
    ("POST", "/password", PAGE, VIEWER),
    ("GET", "/assets/style.css", PAGE, May::Anyone),
    ("GET", "/", PAGE, VIEWER),
    ("GET", "/incidents", PAGE, VIEWER),
    ("GET", "/incidents/export.csv", PAGE, OFFICER),
    ("GET", "/incidents/export.json", PAGE, OFFICER),
    ("GET", "/incidents/{id}", PAGE, VIEWER),
    ("POST", "/incidents/{id}/transition", PAGE, OFFICER),
    ("POST", "/incidents/{id}/comment", PAGE, OFFICER),
    ("GET", "/agents", PAGE, VIEWER),
    ("GET", "/alerts", PAGE, VIEWER),
    ("GET", "/alerts/{fingerprint}", PAGE, VIEWER),
    ("POST", "/alerts/{fingerprint}/silence", PAGE, OPERATOR),
    ("GET", "/events", PAGE, OFFICER),
    ("GET", "/events/export.csv", PAGE, OFFICER),
    ("GET", "/events/export.json", PAGE, OFFICER),
    ("GET", "/audit", PAGE, OFFICER),
    ("GET", "/audit/export.csv", PAGE, OFFICER),
    ("GET", "/audit/export.json", PAGE, OFFICER),
    ("GET", "/reports", PAGE, OFFICER),
    ("GET", "/reports/report.html", PAGE, OFFICER),
    ("GET", "/reports/report.json", PAGE, OFFICER),
    ("GET", "/reports/report.csv", PAGE, OFFICER),
    ("POST", "/alerts/silences", PAGE, OPERATOR),
    ("GET", "/decisions", PAGE, OFFICER),
    ("POST", "/decisions", PAGE, OFFICER),
    ("GET", "/users", PAGE, ADMIN),
    ("POST", "/users", PAGE, ADMIN),
    ("GET", "/api/v1/openapi.json", API, May::Anyone),
    ("GET", "/api/v1/whoami", API, VIEWER),
    ("GET", "/api/v1/incidents", API, VIEWER),
    ("GET", "/api/v1/incidents/export", API, OFFICER),
    ("GET", "/api/v1/incidents/{id}", API, VIEWER),
    ("POST", "/api/v1/incidents/{id}/transition", API, OFFICER),
    ("POST", "/api/v1/incidents/{id}/comments", API, OFFICER),
    ("GET", "/api/v1/events", API, OFFICER),
    ("GET", "/api/v1/agents", API, VIEWER),
    ("GET", "/api/v1/alerts", API, VIEWER),
    ("GET", "/api/v1/silences", API, VIEWER),
    ("GET", "/api/v1/audit", API, OFFICER),
    ("GET", "/api/v1/users", API, ADMIN),
    ("GET", "/api/v2/alerts", API, VIEWER),
    ("GET", "/api/v2/silences", API, VIEWER),
    ("POST", "/api/v2/alerts", API, OPERATOR),
    ("POST", "/api/v2/silences", API, OPERATOR),
    ("DELETE", "/api/v2/silence/{silence}", API, OPERATOR),
    ("GET", "/api/v2/status", API, ADMIN),
    ("POST", "/-/reload", API, ADMIN),
    ("GET", "/metrics", API, May::Anyone),
    ("GET", "/-/healthy", API, May::Anyone),
    ("GET", "/-/ready", API, May::Anyone),
    ("GET", "/status", PAGE, May::Anyone),
    (
        "POST",
        "/v1/batches",
        Listener::Ingest,
        May::AgentCertificate,
    ),
    ("POST", "/v1/enroll", Listener::Enroll, May::EnrolmentToken),
];

/// Routes in the table whose handler answers 404 to every caller let
/// through (none today: `GET /api/v2/alerts` was one until it was served).
/// The check below, that a let-through caller of a route without
/// placeholders never gets 404, holds for every other route; a route here
/// that starts answering fails the test too.
const UNSERVED: &[(&str, &str)] = &[];

/// Every route the collector's code dispatches, as `(method, path)`.
fn routes_in_code() -> BTreeSet<(String, String)> {
    let mut routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|route| (route.method.to_string(), route.path.to_string()))
        .collect();
    for (path, _) in countywatch_collector::http::OWN_ROUTES {
        routes.insert(("GET".to_string(), path.to_string()));
    }
    routes.insert((
        "POST".to_string(),
        countywatch_wire::INGEST_PATH.to_string(),
    ));
    routes.insert((
        "POST".to_string(),
        countywatch_collector::enroll::ENROLL_PATH.to_string(),
    ));
    routes
}

#[test]
fn the_matrix_lists_exactly_the_routes_the_code_dispatches() {
    let expected: BTreeSet<(String, String)> = EXPECTED
        .iter()
        .map(|(method, path, _, _)| (method.to_string(), path.to_string()))
        .collect();
    assert_eq!(expected.len(), EXPECTED.len(), "a route is listed twice");
    let code = routes_in_code();
    let missing: Vec<_> = code.difference(&expected).collect();
    let stale: Vec<_> = expected.difference(&code).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "routes without a line in EXPECTED: {missing:?}; lines for routes the code lacks: {stale:?}"
    );
    // And the table's access agrees with the matrix, route by route.
    for route in ROUTES {
        let (_, _, listener, may) = EXPECTED
            .iter()
            .find(|(method, path, _, _)| *method == route.method && *path == route.path)
            .unwrap();
        let stated = match route.access {
            Access::Public => May::Anyone,
            Access::AtLeast(role) => May::Role(
                ROLES
                    .iter()
                    .position(|name| *name == role.as_str())
                    .unwrap(),
            ),
        };
        assert_eq!(*may, stated, "{} {}", route.method, route.path);
        let page = route.surface == countywatch_collector::http::routes::Surface::Page;
        assert_eq!(
            *listener,
            Listener::Web { page },
            "{} {}",
            route.method,
            route.path
        );
    }
}

/// What a web request got: status, `Location` header, body.
struct Answer {
    status: u16,
    location: String,
    body: String,
}

impl Answer {
    /// Whether this is the authorization check's refusal (as opposed to a
    /// handler's own 403, e.g. a disabled API or the login form's CSRF
    /// check, which the caller was let through to meet).
    fn is_refusal(&self) -> bool {
        (self.status == 401 || self.status == 403)
            && (self.body.contains("authentication required")
                || self.body.contains("may not do this"))
    }
}

/// Calls `method path` on the plain-HTTP listener, with a bearer token or
/// none.
fn call(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> Answer {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if method != "GET" {
        // A small, well-formed body: the write routes that let the caller
        // through may then refuse it (400, 404), which is not our concern.
        head.push_str("Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
    } else {
        head.push_str("\r\n");
    }
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let location = text
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("location")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Answer {
        status,
        location,
        body,
    }
}

/// The route's path with its placeholders filled.
fn concrete(path: &str) -> String {
    path.replace("{id}", "1")
        .replace("{silence}", "no-such-silence")
        .replace("{fingerprint}", "0123456789abcdef")
}

/// How many refusals of the authorization check the audit trail holds.
fn audited_refusals(collector: &Collector) -> i64 {
    let database = rusqlite::Connection::open_with_flags(
        collector.data_dir.join("incidents.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    database
        .query_row(
            "SELECT COUNT(*) FROM audit WHERE action = 'access.denied' \
             AND (details = 'authentication required' OR details LIKE 'role % may not do this%')",
            [],
            |row| row.get(0),
        )
        .unwrap()
}

#[test]
fn every_route_answers_every_caller_as_the_matrix_says() {
    // The Alertmanager write routes answer 403 themselves unless enabled.
    let collector = Collector::start_with(
        Some("notify:\n  accept_alerts_api: true\n  accept_silences_api: true\n"),
        &[],
    );
    let tokens: Vec<String> = ROLES
        .iter()
        .map(|role| {
            let name = format!("matrix-{role}");
            add_user(&collector.data_dir, &name, role, "a long enough password");
            api_token(&collector.data_dir, &name)
        })
        .collect();
    let agent = collector.enrolled_identity("matrix-agent");
    let revoked = collector.enrolled_identity("matrix-revoked");
    collector.revoke("matrix-revoked");
    let agent_identity = CurlIdentity {
        state_dir: agent.path(),
    };
    let revoked_identity = CurlIdentity {
        state_dir: revoked.path(),
    };
    let before = audited_refusals(&collector);
    let mut refusals = 0_i64;
    let mut failures = Vec::new();
    for &(method, path, listener, may) in EXPECTED {
        let target = concrete(path);
        match listener {
            Listener::Web { page } => {
                // Anonymous, then each role's bearer token.
                let callers = std::iter::once((None, "anonymous")).chain(
                    tokens
                        .iter()
                        .zip(ROLES)
                        .map(|(token, role)| (Some(token.as_str()), role)),
                );
                for (rank, (token, who)) in callers.enumerate() {
                    let answer = call(collector.http_addr, method, &target, token);
                    let status = answer.status;
                    let allowed = match may {
                        May::Anyone => true,
                        May::Role(least) => token.is_some() && rank > least,
                        May::AgentCertificate | May::EnrolmentToken => false,
                    };
                    let unserved = UNSERVED.contains(&(method, path));
                    if allowed && !path.contains('{') && (status == 404) != unserved {
                        failures.push(format!(
                            "{method} {target} as {who}: {status}, but it is {}in UNSERVED",
                            if unserved { "" } else { "not " }
                        ));
                    }
                    let ok = match (allowed, token) {
                        // Let through: whatever the handler makes of the
                        // request, it is not an authentication refusal.
                        // (Logging out redirects to /login too, so only an
                        // anonymous caller's redirect is a refusal.)
                        (true, token) => {
                            status != 0
                                && status != 401
                                && !answer.is_refusal()
                                && !(token.is_none() && answer.location == "/login")
                        }
                        (false, None) if page => status == 303 && answer.location == "/login",
                        (false, None) => status == 401 && answer.is_refusal(),
                        (false, Some(_)) => status == 403 && answer.is_refusal(),
                    };
                    if !allowed {
                        refusals += 1;
                    }
                    if !ok {
                        failures.push(format!(
                            "{method} {target} as {who}: {status} {} {} (allowed: {allowed})",
                            answer.location,
                            answer.body.chars().take(200).collect::<String>()
                        ));
                    }
                }
                // An agent certificate is no credential on the web
                // listener: it speaks plain HTTP, so a TLS client (with its
                // certificate) gets no HTTP answer at all.
                let response = curl_post(
                    collector.http_addr,
                    &target,
                    b"{}",
                    &[],
                    Some(&agent_identity),
                );
                if response.status != 0 {
                    failures.push(format!(
                        "{method} {target} with an agent certificate: {}",
                        response.status
                    ));
                }
            }
            Listener::Ingest => {
                assert_eq!(may, May::AgentCertificate);
                let batch = countywatch_wire::Batch {
                    version: countywatch_wire::WIRE_VERSION,
                    agent: "matrix-agent".to_string(),
                    seq: 1,
                    collected_at_ms: 1_700_000_000_000,
                    metrics: Vec::new(),
                    events: Vec::new(),
                };
                let body = countywatch_wire::encode_batch(&batch);
                let headers = ["Content-Encoding: gzip"];
                let as_agent = curl_post(
                    collector.ingest_addr,
                    &target,
                    &body,
                    &headers,
                    Some(&agent_identity),
                );
                assert_eq!(as_agent.status, 200, "{}", as_agent.body);
                let as_revoked = curl_post(
                    collector.ingest_addr,
                    &target,
                    &body,
                    &headers,
                    Some(&revoked_identity),
                );
                // A revoked certificate still chains to the CA; the
                // registry refuses it.
                assert_eq!(as_revoked.status, 403, "{}", as_revoked.body);
                // No certificate (anonymous, or a user's bearer token, which
                // means nothing here): the TLS handshake itself fails.
                for token in std::iter::once(None).chain(tokens.iter().map(Some)) {
                    let authorization = token.map(|token| format!("Authorization: Bearer {token}"));
                    let mut with: Vec<&str> = headers.to_vec();
                    with.extend(authorization.as_deref());
                    let response = curl_post(collector.ingest_addr, &target, &body, &with, None);
                    assert_eq!(response.status, 0, "ingest without a certificate answered");
                }
            }
            Listener::Enroll => {
                assert_eq!(may, May::EnrolmentToken);
                // Anyone reaches it (no client certificate); a wrong token
                // is refused, a right one is what `enrolled_identity` used.
                let response = curl_post(
                    collector.enroll_addr,
                    &target,
                    br#"{"token":"not-a-token","csr_pem":"x"}"#,
                    &["Content-Type: application/json"],
                    None,
                );
                assert!(
                    response.status == 403 || response.status == 400,
                    "enrolment with a bad token: {} {}",
                    response.status,
                    response.body
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every refusal on the web listener is in the audit trail, once. The
    // trail is written on the blocking pool; give it a moment.
    let mut audited = 0;
    wait_until(Duration::from_secs(10), || {
        audited = audited_refusals(&collector) - before;
        audited >= refusals
    });
    assert!(refusals > 40, "the matrix refused only {refusals} calls");
    assert_eq!(audited, refusals, "refusals audited");
}
