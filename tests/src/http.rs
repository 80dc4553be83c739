//! A minimal HTTP/1.1 client over plain TCP, enough for `GET /metrics` on
//! loopback, so the tests depend on nothing but the daemons themselves.
//! HTTPS requests go through `curl`, a real client (see `tests/run.sh`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response: status and body.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Body as text.
    pub body: String,
}

/// `GET path` on `addr`, with `Connection: close`.
pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
    request(addr, "GET", path, &[], "")
}

/// `METHOD path` on `addr` with extra header lines (`Name: value`) and a
/// body, with `Connection: close`.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    if !body.is_empty() || method != "GET" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let raw = read_response(&mut stream)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(Response { status, body })
}

/// Reads a response: up to its `Content-Length` when it gives one (some
/// servers, chromedriver among them, keep the connection open despite
/// `Connection: close`), else to the end of the stream.
fn read_response(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut buffer = [0_u8; 16 * 1024];
    loop {
        if let Some(end) = raw.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head.lines().find_map(|line| {
                line.strip_prefix("content-length:")
                    .and_then(|value| value.trim().parse::<usize>().ok())
            });
            if let Some(length) = length {
                while raw.len() < end + 4 + length {
                    let read = stream.read(&mut buffer)?;
                    if read == 0 {
                        break;
                    }
                    raw.extend_from_slice(&buffer[..read]);
                }
                return Ok(raw);
            }
            stream.read_to_end(&mut raw)?;
            return Ok(raw);
        }
        let read = stream.read(&mut buffer)?;
        if read == 0 {
            return Ok(raw);
        }
        raw.extend_from_slice(&buffer[..read]);
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// A client identity for curl: an enrolled agent's state directory.
pub struct CurlIdentity<'a> {
    /// `<state_dir>` of an agent that ran `countywatch-agent enroll`.
    pub state_dir: &'a std::path::Path,
}

/// POSTs `body` to `https://addr/path` through curl. With an identity, curl
/// presents the agent's certificate and trusts only the collector's CA;
/// without one it presents none and trusts anything (to test refusals).
/// Returns the status (0 when no HTTP answer came) and the response body.
pub fn curl_post(
    addr: SocketAddr,
    path: &str,
    body: &[u8],
    headers: &[&str],
    identity: Option<&CurlIdentity<'_>>,
) -> Response {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    std::fs::write(&file, body).unwrap();
    let mut command = curl(identity, 30);
    command
        .arg("--data-binary")
        .arg(format!("@{}", file.display()));
    for header in headers {
        command.args(["-H", header]);
    }
    command.arg(format!("https://{addr}{path}"));
    run_curl(command)
}

/// GETs `https://addr/path` through curl as the enrolled agent `identity`
/// (the decisions long poll), waiting up to `max_seconds` for the answer.
pub fn curl_get(
    addr: SocketAddr,
    path: &str,
    identity: &CurlIdentity<'_>,
    max_seconds: u32,
) -> Response {
    let mut command = curl(Some(identity), max_seconds);
    command.arg(format!("https://{addr}{path}"));
    run_curl(command)
}

/// A curl command printing the body then the status, presenting
/// `identity` (or none, trusting anything).
fn curl(identity: Option<&CurlIdentity<'_>>, max_seconds: u32) -> std::process::Command {
    let mut command = std::process::Command::new("curl");
    command.args([
        "-s",
        "--max-time",
        &max_seconds.to_string(),
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
    ]);
    match identity {
        Some(identity) => {
            let files = identity.state_dir.join("identity");
            command
                .arg("--cert")
                .arg(files.join("agent.crt"))
                .arg("--key")
                .arg(files.join("agent.key"))
                .arg("--cacert")
                .arg(files.join("ca.crt"));
        }
        None => {
            command.arg("-k");
        }
    }
    command
}

fn run_curl(mut command: std::process::Command) -> Response {
    let output = command.output().expect("curl is installed by tests/run.sh");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    Response {
        status: status.trim().parse().unwrap_or(0),
        body: body.to_string(),
    }
}

/// Finds the value of the sample whose line starts with `series` (name and
/// labels exactly as exposed) in Prometheus text, ignoring the timestamp
/// that may follow the value.
pub fn sample_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(series)?
            .strip_prefix(' ')?
            .split(' ')
            .next()?
            .parse()
            .ok()
    })
}

/// A batch from `agent` with sequence number `seq` and nothing in it.
pub fn empty_batch(agent: &str, seq: u64) -> countywatch_wire::Batch {
    countywatch_wire::Batch {
        version: countywatch_wire::WIRE_VERSION,
        agent: agent.to_string(),
        seq,
        collected_at_ms: 0,
        metrics: Vec::new(),
        events: Vec::new(),
    }
}

/// POSTs `batch` (gzip JSON, as agents send it) to the collector's ingest
/// listener as the enrolled agent in `state_dir`; returns the status.
pub fn post_batch(
    addr: SocketAddr,
    state_dir: &std::path::Path,
    batch: &countywatch_wire::Batch,
) -> Response {
    curl_post(
        addr,
        countywatch_wire::INGEST_PATH,
        &countywatch_wire::encode_batch(batch),
        &["Content-Encoding: gzip"],
        Some(&CurlIdentity { state_dir }),
    )
}
