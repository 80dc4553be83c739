//! Real peers for the notification tests: an SMTP server (Debian's
//! python3-aiosmtpd, plain, STARTTLS or implicit TLS, optional AUTH) that
//! stores each delivered message as JSON with its decoded headers and
//! bodies; a recording HTTP server for webhooks and chat bots that can
//! answer 500 or hang; a real Alertmanager (Debian's
//! prometheus-alertmanager); and a tiny HTTP client for the collector's
//! API.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::process::wait_until;

/// The SMTP server: aiosmtpd's `SMTP` protocol on an asyncio server.
const SMTP_SERVER: &str = r#"
import asyncio, email, email.policy, json, os, ssl, sys, time
from aiosmtpd.smtp import SMTP, AuthResult

out_dir, mode, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
cert, key = (sys.argv[4], sys.argv[5]) if len(sys.argv) > 5 else (None, None)
user, password = os.environ.get("SMTP_USER"), os.environ.get("SMTP_PASSWORD")

class Handler:
    def __init__(self):
        self.count = 0
    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        raw = envelope.original_content or envelope.content
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        legacy = email.message_from_bytes(raw)
        text = html = None
        for part in parsed.walk():
            kind = part.get_content_type()
            if kind == "text/plain" and text is None:
                text = part.get_content()
            elif kind == "text/html" and html is None:
                html = part.get_content()
        record = {
            "received_at": time.time(),
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(parsed["subject"]),
            "raw_subject": str(legacy["subject"]),
            "from": str(parsed["from"]),
            "to": str(parsed["to"]),
            "cc": str(parsed["cc"] or ""),
            "date": str(parsed["date"] or ""),
            "message_id": str(parsed["message-id"] or ""),
            "content_type": parsed.get_content_type(),
            "text": text,
            "html": html,
            "attachments": [part.get_filename() for part in parsed.walk() if part.get_filename()],
            # Implicit TLS leaves session.ssl unset; ask the transport.
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "auth": session.authenticated,
        }
        path = os.path.join(out_dir, "%06d-%d.json" % (self.count, os.getpid()))
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False)
        os.rename(path + ".tmp", path)
        return "250 OK"

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login.decode() == user and auth_data.password.decode() == password
    return AuthResult(success=ok)

context = None
if cert:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
handler = Handler()

def factory():
    options = {"hostname": "smtp.test"}
    if mode == "starttls":
        options.update(tls_context=context, require_starttls=True)
    if user:
        # aiosmtpd only sees STARTTLS as TLS; with implicit TLS the whole
        # connection is encrypted, so AUTH needs no further upgrade.
        options.update(authenticator=authenticator, auth_required=True, auth_require_tls=(mode == "starttls"))
    return SMTP(handler, **options)

loop = asyncio.new_event_loop()
server = loop.run_until_complete(loop.create_server(
    factory, host="127.0.0.1", port=port, ssl=context if mode == "implicit" else None))
print(server.sockets[0].getsockname()[1], flush=True)
loop.run_forever()
"#;

/// How the SMTP server secures connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpMode {
    /// No TLS.
    Plain,
    /// STARTTLS required.
    Starttls,
    /// TLS from the first byte.
    Implicit,
}

/// A certificate authority and a server certificate for 127.0.0.1 and localhost.
pub struct TestPki {
    /// Holds the files.
    pub dir: tempfile::TempDir,
    /// The CA certificate (PEM), for the client's `ca_file`.
    pub ca_file: PathBuf,
    /// The server certificate (PEM).
    pub cert_file: PathBuf,
    /// The server key (PEM).
    pub key_file: PathBuf,
}

impl TestPki {
    /// Creates a CA and a server certificate signed by it.
    pub fn generate() -> TestPki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test smtp ca");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::from_ca_cert_pem(&ca.pem(), ca_key).unwrap();
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server_params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        let server = server_params.signed_by(&server_key, &issuer).unwrap();
        let ca_file = dir.path().join("ca.pem");
        let cert_file = dir.path().join("server.pem");
        let key_file = dir.path().join("server.key");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        std::fs::write(&cert_file, server.pem()).unwrap();
        std::fs::write(&key_file, server_key.serialize_pem()).unwrap();
        TestPki {
            dir,
            ca_file,
            cert_file,
            key_file,
        }
    }
}

/// A running aiosmtpd server.
pub struct SmtpServer {
    /// The Python process.
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where delivered messages are stored, one JSON file each.
    pub out_dir: PathBuf,
    /// The script and the messages.
    dir: tempfile::TempDir,
    /// How it was started, for a restart.
    mode: SmtpMode,
    /// Certificate files for TLS modes.
    tls: Option<(PathBuf, PathBuf)>,
    /// AUTH credentials required, if any.
    auth: Option<(String, String)>,
}

impl SmtpServer {
    /// Starts a plain SMTP server on a port it picks.
    pub fn plain() -> SmtpServer {
        SmtpServer::start(SmtpMode::Plain, None, None)
    }

    /// Starts a server; TLS modes need the PKI's files.
    pub fn start(mode: SmtpMode, pki: Option<&TestPki>, auth: Option<(&str, &str)>) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let out_dir = dir.path().join("messages");
        std::fs::create_dir_all(&out_dir).unwrap();
        std::fs::write(dir.path().join("smtp_server.py"), SMTP_SERVER).unwrap();
        let mut server = SmtpServer {
            child: None,
            addr: "127.0.0.1:0".parse().unwrap(),
            out_dir,
            dir,
            mode,
            tls: pki.map(|pki| (pki.cert_file.clone(), pki.key_file.clone())),
            auth: auth.map(|(user, password)| (user.to_string(), password.to_string())),
        };
        server.spawn(0);
        server
    }

    fn spawn(&mut self, port: u16) {
        let mode = match self.mode {
            SmtpMode::Plain => "plain",
            SmtpMode::Starttls => "starttls",
            SmtpMode::Implicit => "implicit",
        };
        // Debian's python3-aiosmtpd is installed for the system interpreter,
        // which a PATH python3 (pyenv, venv) may not be.
        let mut command = Command::new("/usr/bin/python3");
        command
            .arg(self.dir.path().join("smtp_server.py"))
            .arg(&self.out_dir)
            .arg(mode)
            .arg(port.to_string());
        if let Some((cert, key)) = &self.tls {
            command.arg(cert).arg(key);
        }
        if let Some((user, password)) = &self.auth {
            command
                .env("SMTP_USER", user)
                .env("SMTP_PASSWORD", password);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd is installed by tests/run.sh");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the SMTP server did not start: {line:?}"));
        self.addr = SocketAddr::from(([127, 0, 0, 1], port));
        self.child = Some(child);
    }

    /// Stops the server (connections are refused until [`SmtpServer::resume`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn resume(&mut self) {
        self.spawn(self.addr.port());
    }

    /// Every message delivered so far, in arrival order.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.out_dir)
            .unwrap()
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|path| serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap())
            .collect()
    }

    /// Waits until at least `count` messages arrived; returns them all.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<serde_json::Value> {
        wait_until(timeout, || self.messages().len() >= count);
        self.messages()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One request the recorder received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `POST`, ...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl Recorded {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// How the recorder answers.
#[derive(Clone, Debug)]
pub enum Reply {
    /// This status and body.
    Status(u16, String),
    /// Never answer (until the client gives up).
    Hang,
}

/// A recording HTTP server on loopback.
pub struct Recorder {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Every request received.
    requests: Arc<Mutex<Vec<Recorded>>>,
    /// Replies to use first, in order; then `default`.
    script: Arc<Mutex<Vec<Reply>>>,
    /// The reply once the script is used up.
    default: Arc<Mutex<Reply>>,
    /// Tells the accept loop to end.
    stopped: Arc<AtomicBool>,
}

impl Recorder {
    /// Starts a recorder answering 200 with `body`.
    pub fn start(body: &str) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let recorder = Recorder {
            addr,
            requests: Arc::default(),
            script: Arc::default(),
            default: Arc::new(Mutex::new(Reply::Status(200, body.to_string()))),
            stopped: Arc::default(),
        };
        let requests = Arc::clone(&recorder.requests);
        let script = Arc::clone(&recorder.script);
        let default = Arc::clone(&recorder.default);
        let stopped = Arc::clone(&recorder.stopped);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let requests = Arc::clone(&requests);
                let script = Arc::clone(&script);
                let default = Arc::clone(&default);
                std::thread::spawn(move || serve(stream, &requests, &script, &default));
            }
        });
        recorder
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers the next requests with these replies, in order.
    pub fn script(&self, replies: Vec<Reply>) {
        *self.script.lock().unwrap() = replies;
    }

    /// Sets the reply used once the script is used up.
    pub fn set_default(&self, reply: Reply) {
        *self.default.lock().unwrap() = reply;
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits until at least `count` requests arrived.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Recorded> {
        wait_until(timeout, || self.requests().len() >= count);
        self.requests()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(
    mut stream: TcpStream,
    requests: &Mutex<Vec<Recorded>>,
    script: &Mutex<Vec<Reply>>,
    default: &Mutex<Reply>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut raw = Vec::new();
    let mut buffer = [0u8; 8192];
    let head_end = loop {
        let Ok(read) = stream.read(&mut buffer) else {
            return;
        };
        if read == 0 {
            return;
        }
        raw.extend_from_slice(&buffer[..read]);
        if let Some(end) = raw.windows(4).position(|window| window == b"\r\n\r\n") {
            break end;
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default().to_string();
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_ascii_lowercase(), value.trim().to_string()))
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = raw[head_end + 4..].to_vec();
    while body.len() < length {
        let Ok(read) = stream.read(&mut buffer) else {
            return;
        };
        if read == 0 {
            break;
        }
        body.extend_from_slice(&buffer[..read]);
    }
    requests.lock().unwrap().push(Recorded {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let reply = {
        let mut script = script.lock().unwrap();
        if script.is_empty() {
            default.lock().unwrap().clone()
        } else {
            script.remove(0)
        }
    };
    match reply {
        Reply::Hang => std::thread::sleep(Duration::from_secs(120)),
        Reply::Status(status, body) => {
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    }
}

/// A running Debian prometheus-alertmanager.
pub struct AlertmanagerPeer {
    /// The process.
    child: Child,
    /// Where its API is.
    pub addr: SocketAddr,
    /// Config and storage.
    _dir: tempfile::TempDir,
}

impl AlertmanagerPeer {
    /// Starts one with a route to a receiver that does nothing.
    pub fn start() -> AlertmanagerPeer {
        AlertmanagerPeer::start_with_config(
            "route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n",
        )
    }

    /// Starts one with this `alertmanager.yml`.
    pub fn start_with_config(yaml: &str) -> AlertmanagerPeer {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, yaml).unwrap();
        // Alertmanager cannot be told to pick a port and report it, so take
        // a free one from the kernel and hand it over.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new("/usr/bin/prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager is installed by tests/run.sh");
        let peer = AlertmanagerPeer {
            child,
            addr,
            _dir: dir,
        };
        assert!(
            wait_until(Duration::from_secs(30), || {
                crate::http::get(addr, "/-/ready").is_ok_and(|response| response.status == 200)
            }),
            "alertmanager did not become ready"
        );
        peer
    }

    /// Its active alerts (`GET /api/v2/alerts`).
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        let response = crate::http::get(self.addr, "/api/v2/alerts").unwrap();
        serde_json::from_str::<Vec<serde_json::Value>>(&response.body).unwrap_or_default()
    }
}

impl Drop for AlertmanagerPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `method path` with a JSON body and returns (status, body). It
/// carries an operator's bearer token when `addr` is a collector this
/// process started (its `/api/v2/` reads need a viewer, writes an operator).
pub fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let authorization = crate::process::operator_token(addr)
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// Posts alerts in Alertmanager's API v2 shape to the collector.
pub fn post_alerts(addr: SocketAddr, alerts: &serde_json::Value) {
    let (status, body) = request(addr, "POST", "/api/v2/alerts", &alerts.to_string());
    assert_eq!(status, 200, "{body}");
}

/// Rows in the collector's outbox (read-only; WAL allows it while it runs).
pub fn outbox_rows(data_dir: &Path) -> i64 {
    let Ok(connection) = rusqlite::Connection::open_with_flags(
        data_dir.join("notify.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) else {
        return -1;
    };
    connection
        .query_row("SELECT COUNT(*) FROM outbox", [], |row| row.get(0))
        .unwrap_or(-1)
}
