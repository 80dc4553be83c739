//! The service probe: blackbox_exporter-style checks of the services a
//! county runs (web portals, internal systems), from the host the agent is
//! on: TCP connect, HTTP(S) GET with an expected status, and TLS
//! certificate expiry. Metric names are blackbox_exporter's
//! (`probe_success`, `probe_duration_seconds`, `probe_http_status_code`,
//! `probe_ssl_earliest_cert_expiry`), labelled by the target's `name`,
//! `module` and `target`, since one agent reports many targets in one batch
//! where blackbox_exporter has one scrape per target.
//!
//! Each target runs on its own thread with its own timeout, so a dead
//! server delays nothing but its own result. The HTTP client is a few lines
//! of HTTP/1.1 over std sockets and rustls: a probe needs the status line
//! only, and a full client would double the agent's dependencies.
//! Redirects are not followed: a redirect's status is the answer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use countywatch_config::config_file::{Problems, Spanned};
use countywatch_config::duration::PromDuration;
use countywatch_wire::{MetricFamily, MetricKind};
use rustls::client::danger::ServerCertVerified;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde::Deserialize;

use super::toggle::{ProbeSection, ProbeToggle};
use super::{Probe, ProbeError};
use crate::tls_verifier::{self, ChainCheck, PresentedChain};

/// Where Debian and its derivatives keep the system's trusted CAs.
const DEFAULT_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The service probe's config section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Whether the probe runs (it also needs at least one target).
    pub enabled: bool,
    /// How often the targets are checked; defaults to the agent's interval.
    pub interval: Option<PromDuration>,
    /// The services to check.
    pub targets: Vec<TargetConfig>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            enabled: true,
            interval: None,
            targets: Vec::new(),
        }
    }
}

impl ProbeSection for ServiceConfig {
    fn toggle(&self) -> ProbeToggle {
        ProbeToggle {
            enabled: self.enabled,
            interval: self.interval,
        }
    }

    fn has_work(&self) -> bool {
        !self.targets.is_empty()
    }

    fn validate(&self, probe_timeout: Duration, problems: &mut Problems) {
        validate(self, probe_timeout, problems);
    }
}

/// What kind of check a target gets (blackbox_exporter's "module").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Module {
    /// TCP connect to `host:port`.
    Tcp,
    /// GET an `http://` or `https://` URL and check the status.
    Http,
    /// TLS handshake with `host:port`, reporting the certificate expiry.
    Tls,
}

impl Module {
    fn as_str(self) -> &'static str {
        match self {
            Module::Tcp => "tcp",
            Module::Http => "http",
            Module::Tls => "tls",
        }
    }
}

/// One service to check.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// A short name for the `name` label, e.g. `tax-portal`.
    pub name: String,
    /// `tcp`, `http` or `tls`.
    pub module: Module,
    /// `host:port` for tcp and tls, a URL for http.
    pub target: Spanned<String>,
    /// HTTP statuses that count as success; any 2xx when empty.
    #[serde(default)]
    pub expect_status: Vec<u16>,
    /// Time limit of the whole check, connection included. Must be shorter
    /// than `probes.timeout`.
    #[serde(default = "default_target_timeout")]
    pub timeout: PromDuration,
    /// PEM file of the CAs to trust for https and tls; the system's CA
    /// bundle by default.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate (self-signed internal systems): the handshake
    /// and the expiry are still checked, the issuer and name are not.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// The department that runs the service, e.g. `政务服务中心`, reported
    /// as the `department` label; the county report groups by it (the
    /// agent's own `labels.department` otherwise).
    #[serde(default)]
    pub department: Option<String>,
    /// The service's name for people, e.g. `政务服务网`, reported as the
    /// `service` label; the county report lists it (the target's `name`
    /// otherwise).
    #[serde(default)]
    pub service: Option<String>,
}

fn default_target_timeout() -> PromDuration {
    PromDuration(Duration::from_secs(3))
}

/// Checks every target: syntax, timeout, and that the CA file loads.
pub fn validate(config: &ServiceConfig, probe_timeout: Duration, problems: &mut Problems) {
    for target in &config.targets {
        if target.name.is_empty() {
            problems.at(&target.target, "service target has an empty name");
        }
        if let Err(error) = Endpoint::parse(target.module, &target.target.value) {
            problems.at(&target.target, error.to_string());
        }
        if target.timeout.get() >= probe_timeout || target.timeout.get().is_zero() {
            problems.at(
                &target.target,
                format!(
                    "timeout {} must be above 0 and shorter than probes.timeout",
                    target.timeout
                ),
            );
        }
        if target.module != Module::Http && !target.expect_status.is_empty() {
            problems.at(&target.target, "expect_status applies to http targets only");
        }
        if let Some(ca_file) = &target.ca_file
            && let Err(error) = load_roots(ca_file)
        {
            problems.at(&target.target, error.to_string());
        }
    }
}

/// Where a target is: host, port, whether TLS is spoken, and the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address, without brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Whether to speak TLS.
    pub tls: bool,
    /// Request path for http (with the query), `/` by default.
    pub path: String,
}

impl Endpoint {
    /// Parses a target as the module expects it.
    pub fn parse(module: Module, text: &str) -> Result<Endpoint, TargetError> {
        let target = || text.to_string();
        let (tls, rest, default_port) = match module {
            Module::Http => {
                if let Some(rest) = text.strip_prefix("https://") {
                    (true, rest, Some(443))
                } else if let Some(rest) = text.strip_prefix("http://") {
                    (false, rest, Some(80))
                } else {
                    return Err(TargetError::Scheme { target: target() });
                }
            }
            Module::Tcp => (false, text, None),
            Module::Tls => (true, text, None),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(index) if module == Module::Http => (&rest[..index], &rest[index..]),
            Some(_) => return Err(TargetError::NotHostAndPort { target: target() }),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        if authority.contains('@') {
            return Err(TargetError::Credentials { target: target() });
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| TargetError::UnclosedBracket { target: target() })?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(TargetError::NoHost { target: target() });
        }
        let port = match (port, default_port) {
            (Some(port), _) => port
                .parse::<u16>()
                .ok()
                .filter(|port| *port != 0)
                .ok_or_else(|| TargetError::InvalidPort { target: target() })?,
            (None, Some(port)) => port,
            (None, None) => return Err(TargetError::NotHostAndPort { target: target() }),
        };
        Ok(Endpoint {
            host: host.to_string(),
            port,
            tls,
            path,
        })
    }
}

/// Why a service target's text is not an address the module can check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// An http target without its scheme.
    #[error("http target {target:?} must start with http:// or https://")]
    Scheme {
        /// The target as configured.
        target: String,
    },
    /// A tcp or tls target with a path, or without a port.
    #[error("target {target:?} must be host:port")]
    NotHostAndPort {
        /// The target as configured.
        target: String,
    },
    /// A target with `user:password@`.
    #[error("target {target:?} must not hold credentials")]
    Credentials {
        /// The target as configured.
        target: String,
    },
    /// An IPv6 address whose `[` is not closed.
    #[error("target {target:?} has an unclosed '['")]
    UnclosedBracket {
        /// The target as configured.
        target: String,
    },
    /// An empty host, or one with spaces.
    #[error("target {target:?} has no valid host")]
    NoHost {
        /// The target as configured.
        target: String,
    },
    /// A port that is not 1 to 65535.
    #[error("target {target:?} has an invalid port")]
    InvalidPort {
        /// The target as configured.
        target: String,
    },
}

/// Why the TLS settings of a target could not be built: the user must fix
/// the CA file (checked at config load too).
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// The CA file cannot be read or is not PEM.
    #[error("cannot read CA certificates from {}: {source}", path.display())]
    ReadCa {
        /// The CA file.
        path: PathBuf,
        /// Why.
        source: rustls::pki_types::pem::Error,
    },
    /// The CA file holds no certificate rustls accepts.
    #[error("no usable CA certificate in {}", path.display())]
    NoUsableCa {
        /// The CA file.
        path: PathBuf,
    },
    /// rustls refused the settings.
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
}

/// Why one check of a target failed: a finding about the service, logged
/// when the target starts failing.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The target did not parse (refused at config load, so not expected).
    #[error("invalid target")]
    InvalidTarget,
    /// The target's TLS settings could not be built when the probe started.
    #[error(transparent)]
    TlsConfig(Arc<TlsConfigError>),
    /// The check's timeout passed.
    #[error("timed out")]
    TimedOut,
    /// The socket refused its timeouts.
    #[error(transparent)]
    SetTimeouts(std::io::Error),
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The host.
        host: String,
        /// Why.
        source: std::io::Error,
    },
    /// The host name resolved to no address.
    #[error("{host} has no address")]
    NoAddress {
        /// The host.
        host: String,
    },
    /// No address accepted the connection; the last one tried.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The host is not a name TLS can verify.
    #[error("invalid server name: {0}")]
    ServerName(rustls::pki_types::InvalidDnsNameError),
    /// rustls could not start the connection.
    #[error("TLS set-up failed: {0}")]
    TlsSetup(rustls::Error),
    /// The TLS handshake failed (a bad certificate, a closed connection).
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    /// The request could not be sent.
    #[error("cannot send the request: {0}")]
    Send(std::io::Error),
    /// The response could not be read.
    #[error("cannot read the response: {0}")]
    Receive(std::io::Error),
    /// The response did not start with an HTTP status line.
    #[error("no HTTP status line in the response")]
    NoStatusLine,
    /// The status is not one the target expects.
    #[error("unexpected HTTP status {0}")]
    Status(u16),
}

/// A target ready to run.
struct Target {
    /// Labels: name, module, target.
    config: TargetConfig,
    /// Parsed address (validated at config load).
    endpoint: Option<Endpoint>,
    /// TLS settings, for https and tls targets; an error when the CA file
    /// could not be read, reported on every run.
    tls: Option<Result<Arc<ClientConfig>, Arc<TlsConfigError>>>,
    /// Whether the last check failed, so that a failure is logged once per
    /// change of state, not every interval.
    failing: bool,
}

/// What one check found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Whether the check passed.
    pub success: bool,
    /// How long it took.
    pub duration: f64,
    /// The HTTP status, for http targets that answered.
    pub status: Option<u16>,
    /// The earliest `notAfter` of the presented chain, seconds since the
    /// epoch, when a TLS handshake completed.
    pub earliest_expiry: Option<f64>,
    /// Why it failed, for the log.
    pub error: Option<String>,
}

/// Checks every configured target.
pub struct ServiceProbe {
    /// The targets.
    targets: Vec<Target>,
}

impl ServiceProbe {
    /// A probe for the configured targets. CA files are read once, here.
    pub fn new(config: &ServiceConfig) -> Self {
        let targets = config
            .targets
            .iter()
            .map(|target| {
                let endpoint = Endpoint::parse(target.module, &target.target.value).ok();
                let tls = endpoint
                    .as_ref()
                    .filter(|endpoint| endpoint.tls)
                    .map(|_| client_config(target).map_err(Arc::new));
                Target {
                    config: target.clone(),
                    endpoint,
                    tls,
                    failing: false,
                }
            })
            .collect();
        ServiceProbe { targets }
    }
}

impl Probe for ServiceProbe {
    fn name(&self) -> &'static str {
        "service"
    }

    fn needs_own_thread(&self) -> bool {
        true
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<(), ProbeError> {
        let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .targets
                .iter()
                .map(|target| scope.spawn(|| check(target)))
                .collect();
            handles
                .into_iter()
                .map(|handle| {
                    handle.join().unwrap_or_else(|_| Outcome {
                        error: Some("check panicked".to_string()),
                        ..Outcome::default()
                    })
                })
                .collect()
        });
        for (target, outcome) in self.targets.iter_mut().zip(&outcomes) {
            let label = &target.config.target.value;
            match (&outcome.error, target.failing) {
                (Some(error), false) => {
                    tracing::warn!(name = %target.config.name, target = %label, %error, "service check failed");
                }
                (None, true) => {
                    tracing::info!(name = %target.config.name, target = %label, "service check passes again");
                }
                _ => {}
            }
            target.failing = outcome.error.is_some();
        }
        let labelled: Vec<(&TargetConfig, &Outcome)> = self
            .targets
            .iter()
            .map(|target| &target.config)
            .zip(&outcomes)
            .collect();
        out.extend(families(&labelled));
        // A failing target is a finding about the service, not a fault of
        // the probe: the probe succeeded in finding it out.
        Ok(())
    }
}

/// The families of all targets' outcomes.
pub fn families(outcomes: &[(&TargetConfig, &Outcome)]) -> Vec<MetricFamily> {
    let gauge = |name: &'static str, help: &'static str| MetricFamily::new(name, help, MetricKind::Gauge);
    let mut success = gauge(
        "probe_success",
        "Displays whether or not the probe was a success",
    );
    let mut duration = gauge(
        "probe_duration_seconds",
        "Returns how long the probe took to complete in seconds",
    );
    let mut status = gauge("probe_http_status_code", "Response HTTP status code");
    let mut expiry = gauge(
        "probe_ssl_earliest_cert_expiry",
        "Returns last SSL chain expiry in unixtime",
    );
    for (target, outcome) in outcomes {
        let mut labels = vec![
            ("name", target.name.as_str()),
            ("module", target.module.as_str()),
            ("target", target.target.value.as_str()),
        ];
        labels.extend(
            target
                .department
                .as_deref()
                .map(|value| ("department", value)),
        );
        labels.extend(target.service.as_deref().map(|value| ("service", value)));
        success.push(&labels, if outcome.success { 1.0 } else { 0.0 });
        duration.push(&labels, outcome.duration);
        if target.module == Module::Http {
            // blackbox_exporter reports 0 when no response came.
            status.push(&labels, f64::from(outcome.status.unwrap_or(0)));
        }
        if let Some(value) = outcome.earliest_expiry {
            expiry.push(&labels, value);
        }
    }
    let mut all = vec![success, duration, status, expiry];
    all.retain(|family| !family.samples.is_empty());
    all
}

fn check(target: &Target) -> Outcome {
    let started = Instant::now();
    let mut outcome = Outcome::default();
    let result = run_check(target, started, &mut outcome);
    outcome.duration = started.elapsed().as_secs_f64();
    match result {
        Ok(()) => outcome.success = true,
        Err(error) => outcome.error = Some(error.to_string()),
    }
    outcome
}

fn run_check(target: &Target, started: Instant, outcome: &mut Outcome) -> Result<(), CheckError> {
    let endpoint = target.endpoint.as_ref().ok_or(CheckError::InvalidTarget)?;
    let deadline = started + target.config.timeout.get();
    let mut stream = connect(endpoint, deadline)?;
    let tls = match &target.tls {
        Some(Ok(config)) => Some(Arc::clone(config)),
        Some(Err(error)) => return Err(CheckError::TlsConfig(Arc::clone(error))),
        None => None,
    };
    match tls {
        None => {
            if target.config.module == Module::Http {
                let status = http_get(&mut stream, endpoint, deadline)?;
                outcome.status = Some(status);
                check_status(&target.config, status)?;
            }
            Ok(())
        }
        Some(config) => {
            let name =
                ServerName::try_from(endpoint.host.clone()).map_err(CheckError::ServerName)?;
            let connection =
                rustls::ClientConnection::new(config, name).map_err(CheckError::TlsSetup)?;
            let mut tls = rustls::StreamOwned::new(connection, stream);
            while tls.conn.is_handshaking() {
                set_timeouts(&tls.sock, deadline)?;
                tls.conn
                    .complete_io(&mut tls.sock)
                    .map_err(CheckError::Handshake)?;
            }
            outcome.earliest_expiry = tls
                .conn
                .peer_certificates()
                .unwrap_or_default()
                .iter()
                .filter_map(|certificate| not_after(certificate.as_ref()))
                .min()
                .map(|seconds| seconds as f64);
            if target.config.module == Module::Http {
                let status = http_get(&mut tls, endpoint, deadline)?;
                outcome.status = Some(status);
                check_status(&target.config, status)?;
            }
            Ok(())
        }
    }
}

fn check_status(target: &TargetConfig, status: u16) -> Result<(), CheckError> {
    let expected = if target.expect_status.is_empty() {
        (200..300).contains(&status)
    } else {
        target.expect_status.contains(&status)
    };
    if expected {
        Ok(())
    } else {
        Err(CheckError::Status(status))
    }
}

fn remaining(deadline: Instant) -> Result<Duration, CheckError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(CheckError::TimedOut)
    } else {
        Ok(left)
    }
}

fn set_timeouts(stream: &TcpStream, deadline: Instant) -> Result<(), CheckError> {
    let left = remaining(deadline)?;
    stream
        .set_read_timeout(Some(left))
        .and_then(|()| stream.set_write_timeout(Some(left)))
        .map_err(CheckError::SetTimeouts)
}

/// Connects to the first address that answers. Name resolution uses the
/// system resolver, which has its own timeouts.
fn connect(endpoint: &Endpoint, deadline: Instant) -> Result<TcpStream, CheckError> {
    let addresses: Vec<SocketAddr> = (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .map_err(|source| CheckError::Resolve {
            host: endpoint.host.clone(),
            source,
        })?
        .collect();
    let mut last_error = CheckError::NoAddress {
        host: endpoint.host.clone(),
    };
    for address in addresses {
        match TcpStream::connect_timeout(&address, remaining(deadline)?) {
            Ok(stream) => {
                set_timeouts(&stream, deadline)?;
                return Ok(stream);
            }
            Err(source) => last_error = CheckError::Connect { address, source },
        }
    }
    Err(last_error)
}

/// Sends a GET and reads up to the end of the status line.
fn http_get(
    stream: &mut impl ReadWrite,
    endpoint: &Endpoint,
    deadline: Instant,
) -> Result<u16, CheckError> {
    let host = if endpoint.host.contains(':') {
        format!("[{}]", endpoint.host)
    } else {
        endpoint.host.clone()
    };
    let default_port = if endpoint.tls { 443 } else { 80 };
    let host_header = if endpoint.port == default_port {
        host
    } else {
        format!("{host}:{}", endpoint.port)
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: countywatch-agent/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        endpoint.path,
        env!("CARGO_PKG_VERSION")
    );
    stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.flush())
        .map_err(CheckError::Send)?;
    let mut head = Vec::with_capacity(256);
    let mut buffer = [0u8; 256];
    while !head.windows(2).any(|pair| pair == b"\r\n") {
        remaining(deadline)?;
        let read = stream.read(&mut buffer).map_err(CheckError::Receive)?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
        if head.len() > 8192 {
            break;
        }
    }
    parse_status_line(&head).ok_or(CheckError::NoStatusLine)
}

/// Both halves of a connection, plain or TLS.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// The status code of `HTTP/1.x CODE REASON`.
pub fn parse_status_line(head: &[u8]) -> Option<u16> {
    let line = head.split(|byte| *byte == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    parts
        .next()?
        .parse()
        .ok()
        .filter(|code| (100..600).contains(code))
}

fn load_roots(path: &PathBuf) -> Result<RootCertStore, TlsConfigError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsConfigError::ReadCa {
            path: path.clone(),
            source,
        })?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(TlsConfigError::NoUsableCa { path: path.clone() });
    }
    Ok(roots)
}

fn client_config(target: &TargetConfig) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    if target.insecure_skip_verify {
        let config = tls_verifier::client_config(provider, AnyCertificate)?;
        return Ok(Arc::new(config));
    }
    let path = target
        .ca_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CA_FILE));
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(load_roots(&path)?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Accepts any certificate chain; the handshake signatures are still
/// checked ([`tls_verifier`]), so the server does hold the key of the
/// certificate whose expiry we report.
#[derive(Debug)]
struct AnyCertificate;

impl ChainCheck for AnyCertificate {
    fn check_chain(
        &self,
        _chain: &PresentedChain<'_>,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
}

/// Reads one DER element: tag, contents, and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let length = rest[..count]
            .iter()
            .fold(0usize, |acc, byte| (acc << 8) | usize::from(*byte));
        (length, &rest[count..])
    };
    if rest.len() < length {
        return None;
    }
    Some((tag, &rest[..length], &rest[length..]))
}

/// The `notAfter` of an X.509 certificate, seconds since the epoch. A
/// dozen lines of DER walking instead of an X.509 crate: the validity is at
/// a fixed place in every certificate.
pub fn not_after(certificate: &[u8]) -> Option<i64> {
    const SEQUENCE: u8 = 0x30;
    let (tag, certificate, _) = der_element(certificate)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = der_element(certificate)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    // The optional explicit [0] version comes first.
    let (tag, _, after) = der_element(rest)?;
    if tag == 0xa0 {
        rest = after;
    }
    // serialNumber, signature, issuer, then validity.
    for _ in 0..3 {
        let (_, _, after) = der_element(rest)?;
        rest = after;
    }
    let (tag, validity, _) = der_element(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let (_, _, after_not_before) = der_element(validity)?;
    let (tag, time, _) = der_element(after_not_before)?;
    parse_time(tag, std::str::from_utf8(time).ok()?)
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 1950 to 2049) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`), as RFC 5280 restricts them.
fn parse_time(tag: u8, text: &str) -> Option<i64> {
    let digits = text.strip_suffix('Z')?;
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let short: i64 = digits[..2].parse().ok()?;
            (
                if short >= 50 {
                    1900 + short
                } else {
                    2000 + short
                },
                &digits[2..],
            )
        }
        (0x18, 14) => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let field = |index: usize| -> Option<i64> { rest.get(index..index + 2)?.parse().ok() };
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use countywatch_config::config_file::Location;

    use super::*;

    fn target(module: Module, address: &str) -> TargetConfig {
        TargetConfig {
            name: "t".into(),
            module,
            target: Spanned::new(address.to_string(), Location::UNKNOWN, Location::UNKNOWN),
            expect_status: Vec::new(),
            timeout: PromDuration(Duration::from_secs(2)),
            ca_file: None,
            insecure_skip_verify: false,
            department: None,
            service: None,
        }
    }

    #[test]
    fn a_targets_department_and_service_travel_as_labels_on_its_series() {
        let mut portal = target(Module::Tcp, "127.0.0.1:1");
        portal.department = Some("政务服务中心".into());
        portal.service = Some("政务服务网".into());
        let outcome = Outcome {
            success: false,
            duration: 0.1,
            status: None,
            earliest_expiry: None,
            error: None,
        };
        let out = families(&[(&portal, &outcome)]);
        let success = out.iter().find(|f| f.name == "probe_success").unwrap();
        let labels = &success.samples[0].labels;
        assert!(labels.contains(&("department".into(), "政务服务中心".into())));
        assert!(labels.contains(&("service".into(), "政务服务网".into())));
    }

    fn run(targets: Vec<TargetConfig>) -> Vec<MetricFamily> {
        let mut probe = ServiceProbe::new(&ServiceConfig {
            targets,
            ..ServiceConfig::default()
        });
        let mut out = Vec::new();
        probe.collect(&mut out).unwrap();
        out
    }

    fn values(out: &[MetricFamily], family: &str) -> Vec<f64> {
        out.iter()
            .find(|f| f.name == family)
            .map(|f| f.samples.iter().map(|sample| sample.value).collect())
            .unwrap_or_default()
    }

    /// A plain HTTP server on 127.0.0.1 answering every request with `status`.
    fn http_server(status: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut buffer = [0u8; 1024];
                let _ = stream.read(&mut buffer);
                let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
            }
        });
        address
    }

    /// A TLS server on 127.0.0.1 with a fresh self-signed certificate for
    /// `localhost` expiring at `not_after`; returns its address and the
    /// certificate's PEM.
    fn tls_server(year: i32) -> (SocketAddr, String) {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(year, 3, 4);
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        let pem = certificate.pem();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![certificate.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let stream = stream.unwrap();
                let connection = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
                let mut tls = rustls::StreamOwned::new(connection, stream);
                let mut buffer = [0u8; 1024];
                if let Ok(read) = tls.read(&mut buffer)
                    && read > 0
                {
                    let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                    let _ = tls.flush();
                }
            }
        });
        (address, pem)
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            Endpoint::parse(Module::Http, "https://portal.county.gov/pay?x=1"),
            Ok(Endpoint {
                host: "portal.county.gov".into(),
                port: 443,
                tls: true,
                path: "/pay?x=1".into()
            })
        );
        assert_eq!(
            Endpoint::parse(Module::Tcp, "[::1]:5432").map(|e| (e.host, e.port)),
            Ok(("::1".to_string(), 5432))
        );
        for (module, bad) in [
            (Module::Http, "ftp://x"),
            (Module::Tcp, "db.county.gov"),
            (Module::Tcp, "db:0"),
            (Module::Tls, "x:443/path"),
            (Module::Http, "http://user@x/"),
            (Module::Http, "http://:80/"),
        ] {
            assert!(Endpoint::parse(module, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 404 Not Found\r\n"), Some(404));
        assert_eq!(parse_status_line(b"HTTP/1.0 200\r\n"), Some(200));
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH\r\n"), None);
    }

    #[test]
    fn certificate_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(parse_time(0x17, "300304000000Z"), Some(1_898_812_800));
        assert_eq!(parse_time(0x18, "20300304000000Z"), Some(1_898_812_800));
        assert_eq!(parse_time(0x17, "500101000000Z"), Some(-631_152_000));
        assert_eq!(parse_time(0x17, "3003040000Z"), None);
        assert_eq!(not_after(b"\x30\x03\x02\x01\x01"), None);
    }

    #[test]
    fn tcp_connect_to_a_listener_and_to_a_closed_port() {
        let open = TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_address = closed.local_addr().unwrap();
        drop(closed);
        let out = run(vec![
            target(Module::Tcp, &open.local_addr().unwrap().to_string()),
            target(Module::Tcp, &closed_address.to_string()),
        ]);
        assert_eq!(values(&out, "probe_success"), vec![1.0, 0.0]);
        assert!(!out.iter().any(|f| f.name == "probe_http_status_code"));
    }

    #[test]
    fn http_status_against_real_servers() {
        let ok = http_server("200 OK");
        let missing = http_server("404 Not Found");
        let mut expect_404 = target(Module::Http, &format!("http://{missing}/health"));
        expect_404.expect_status = vec![404];
        let out = run(vec![
            target(Module::Http, &format!("http://{ok}/")),
            target(Module::Http, &format!("http://{missing}/")),
            expect_404,
        ]);
        assert_eq!(values(&out, "probe_success"), vec![1.0, 0.0, 1.0]);
        assert_eq!(
            values(&out, "probe_http_status_code"),
            vec![200.0, 404.0, 404.0]
        );
        let duration = values(&out, "probe_duration_seconds");
        assert!(
            duration
                .iter()
                .all(|seconds| *seconds > 0.0 && *seconds < 2.0)
        );
    }

    #[test]
    fn a_silent_server_times_out_without_delaying_the_others() {
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let ok = http_server("200 OK");
        let mut slow = target(
            Module::Http,
            &format!("http://{}/", silent.local_addr().unwrap()),
        );
        slow.timeout = PromDuration(Duration::from_millis(300));
        let started = Instant::now();
        let out = run(vec![slow, target(Module::Http, &format!("http://{ok}/"))]);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(values(&out, "probe_success"), vec![0.0, 1.0]);
        assert_eq!(values(&out, "probe_http_status_code"), vec![0.0, 200.0]);
    }

    #[test]
    fn tls_expiry_and_https_against_a_real_server() {
        let (address, pem) = tls_server(2030);
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &pem).unwrap();
        let port = address.port();
        let mut tls = target(Module::Tls, &format!("localhost:{port}"));
        tls.ca_file = Some(ca_file.clone());
        let mut https = target(Module::Http, &format!("https://localhost:{port}/"));
        https.ca_file = Some(ca_file);
        // Without the CA the certificate is not trusted...
        let mut untrusted = target(Module::Tls, &format!("localhost:{port}"));
        untrusted.ca_file = Some(PathBuf::from(DEFAULT_CA_FILE));
        // ...unless told to skip verification, which still reads the expiry.
        let mut skip = target(Module::Tls, &format!("127.0.0.1:{port}"));
        skip.insecure_skip_verify = true;
        let out = run(vec![tls, https, untrusted, skip]);
        assert_eq!(values(&out, "probe_success"), vec![1.0, 1.0, 0.0, 1.0]);
        let expected = parse_time(0x18, "20300304000000Z").unwrap() as f64;
        assert_eq!(
            values(&out, "probe_ssl_earliest_cert_expiry"),
            vec![expected, expected, expected]
        );
        assert_eq!(values(&out, "probe_http_status_code"), vec![200.0]);
    }

    #[test]
    fn targets_are_checked_at_load() {
        let mut problems = Problems::new("a.yaml");
        let mut bad_status = target(Module::Tcp, "db:5432");
        bad_status.expect_status = vec![200];
        let mut bad_timeout = target(Module::Tcp, "db:5432");
        bad_timeout.timeout = PromDuration(Duration::from_secs(10));
        let mut bad_ca = target(Module::Tls, "db:5432");
        bad_ca.ca_file = Some(PathBuf::from("/nonexistent/ca.pem"));
        let config = ServiceConfig {
            targets: vec![
                target(Module::Http, "db:5432"),
                bad_status,
                bad_timeout,
                bad_ca,
            ],
            ..ServiceConfig::default()
        };
        validate(&config, Duration::from_secs(5), &mut problems);
        assert_eq!(problems.problems.len(), 4, "{:?}", problems.problems);
    }
}
