//! The plain JSON responses the agent-facing listeners (enrolment and
//! ingest) answer with: a leaf of the HTTP layer, so that neither listener
//! imports the other for it. The web console's responses, with their
//! security headers, are `http::request`'s.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

/// A response with a JSON body.
pub fn json(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
