//! Small pieces of HTTP the page and the API share: cookies, query strings,
//! bounded bodies, and responses that always carry the security headers
//! (a strict Content-Security-Policy: no script at all, styles only from
//! our own stylesheet, forms only to ourselves, no framing).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};

/// Largest form or JSON body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Time allowed to read a body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The Content-Security-Policy of every response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "cw_session";
/// The login form's double-submit CSRF cookie.
pub const LOGIN_CSRF_COOKIE: &str = "cw_login_csrf";
/// The language choice cookie.
pub const LANGUAGE_COOKIE: &str = "cw_lang";

/// The request's cookies (first value of each name wins).
pub fn cookies<B>(request: &Request<B>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for header in request.headers().get_all(hyper::header::COOKIE) {
        let Ok(text) = header.to_str() else {
            continue;
        };
        for pair in text.split(';') {
            if let Some((name, value)) = pair.trim().split_once('=') {
                out.entry(name.to_string())
                    .or_insert_with(|| value.to_string());
            }
        }
    }
    out
}

/// `application/x-www-form-urlencoded` or query text as pairs (last wins).
pub fn form(text: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(text).into_owned().collect()
}

/// The query string's pairs.
pub fn query<B>(request: &Request<B>) -> HashMap<String, String> {
    form(request.uri().query().unwrap_or("").as_bytes())
}

/// A header's value as text.
pub fn header<'a, B>(request: &'a Request<B>, name: &str) -> Option<&'a str> {
    request
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
}

/// Reads a body, at most [`MAX_BODY_BYTES`], within a deadline.
pub async fn body(body: Incoming) -> Result<Bytes, Response<Full<Bytes>>> {
    let collected =
        tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY_BYTES).collect()).await;
    match collected {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(_)) => Err(respond(
            StatusCode::PAYLOAD_TOO_LARGE,
            "text/plain; charset=utf-8",
            "request body too large or unreadable\n",
        )),
        Err(_) => Err(respond(
            StatusCode::REQUEST_TIMEOUT,
            "text/plain; charset=utf-8",
            "request body too slow\n",
        )),
    }
}

/// A response with the security headers.
pub fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    headers.insert(
        hyper::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        hyper::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        hyper::header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        hyper::header::X_FRAME_OPTIONS,
        HeaderValue::from_static("DENY"),
    );
    headers.insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    response
}

/// A JSON response.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    respond(status, "application/json", value.to_string())
}

/// A JSON error `{"error": message}`.
pub fn json_error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": message }))
}

/// `303 See Other` to `location` (after a form post, or to the login page).
pub fn redirect(location: &str) -> Response<Full<Bytes>> {
    let mut response = respond(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "");
    if let Ok(value) = HeaderValue::from_str(location) {
        response
            .headers_mut()
            .insert(hyper::header::LOCATION, value);
    }
    response
}

/// Adds a `Set-Cookie` header: HttpOnly, SameSite=Strict, Path=/, and
/// Secure when the listener serves TLS. An empty value with `max_age` 0
/// deletes the cookie.
pub fn set_cookie(
    response: &mut Response<Full<Bytes>>,
    name: &str,
    value: &str,
    max_age_s: Option<i64>,
    secure: bool,
) {
    let mut text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(max_age) = max_age_s {
        text.push_str(&format!("; Max-Age={max_age}"));
    }
    if secure {
        text.push_str("; Secure");
    }
    if let Ok(value) = HeaderValue::from_str(&text) {
        response
            .headers_mut()
            .append(hyper::header::SET_COOKIE, value);
    }
}

/// Adds a header to a response.
pub fn add_header(response: &mut Response<Full<Bytes>>, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(name), value);
    }
}

/// Compares secrets in constant time.
pub fn same_secret(left: &str, right: &str) -> bool {
    left.len() == right.len()
        && left
            .bytes()
            .zip(right.bytes())
            .fold(0_u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}
