//! The HTTP listener's routes: `/metrics` for Prometheus, `/-/healthy` and
//! `/-/ready` for supervisors, and `/`, a status page for people (the
//! incident review page replaces it in its own issue).

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::metric_store::MetricStore;
use crate::telemetry::Telemetry;

/// What the HTTP routes read.
pub struct HttpState {
    /// Agents' latest metrics.
    pub store: Arc<MetricStore>,
    /// Self-metrics.
    pub telemetry: Arc<Telemetry>,
    /// SHA-256 of the ingest certificate, shown on the status page so that
    /// an operator can copy it into an agent's config.
    pub ingest_fingerprint: String,
    /// The rule engine, whose `ALERTS` and rule metrics `/metrics` shows.
    pub alerting: Option<Arc<crate::alerting::Alerting>>,
}

/// Content type of the Prometheus text format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Handles one request on the HTTP listener.
pub async fn handle(
    state: Arc<HttpState>,
    request: Request<Incoming>,
    _peer: SocketAddr,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "use GET\n".to_string(),
        );
    }
    match request.uri().path() {
        "/metrics" => text(StatusCode::OK, PROMETHEUS_TEXT, render_metrics(&state)),
        "/-/healthy" | "/-/ready" => text(StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/" => text(
            StatusCode::OK,
            "text/html; charset=utf-8",
            status_page(&state),
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    }
}

/// The whole `/metrics` body: agents' metrics, then the collector's own.
pub fn render_metrics(state: &HttpState) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let fresh = state.store.write_text(&mut out, SystemTime::now());
    state.telemetry.agents_reporting.set(fresh as i64);
    let mut own = Vec::new();
    state.telemetry.write_text(&mut own);
    out.push_str(&String::from_utf8_lossy(&own));
    if let Some(alerting) = &state.alerting {
        alerting.write_text(&mut out);
    }
    out
}

fn status_page(state: &HttpState) -> String {
    let mut rows = String::new();
    let now = SystemTime::now();
    for (name, seen) in state.store.agents() {
        let ago = now.duration_since(seen).unwrap_or_default().as_secs();
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{ago} s ago</td></tr>",
            escape_html(&name)
        );
    }
    if rows.is_empty() {
        rows.push_str("<tr><td colspan=2>No agent has reported yet.</td></tr>");
    }
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>countywatch collector</title></head>\
         <body><h1>countywatch collector</h1>\
         <p>Prometheus metrics: <a href=\"/metrics\">/metrics</a></p>\
         <p>Ingest certificate SHA-256: <code>{}</code></p>\
         <table><thead><tr><th>Agent</th><th>Last batch</th></tr></thead><tbody>{rows}</tbody></table>\
         </body></html>\n",
        state.ingest_fingerprint
    )
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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
