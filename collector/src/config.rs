//! The collector's configuration: file format, embedded defaults, validation.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use countywatch_config::config_file::{self, Problems, Spanned};
use countywatch_config::duration::PromDuration;
use serde::Deserialize;

use crate::metrics_auth::{MetricsAuthConfig, MetricsCredentials};
use crate::tls_files::TlsFiles;

/// The whole collector configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory for the collector's state: its TLS key and certificate now,
    /// incidents and the CA later. Created if missing.
    pub data_dir: PathBuf,
    /// The HTTP listener: `/metrics`, health endpoints, later the web page and API.
    pub http: HttpConfig,
    /// The listener agents send batches to (always TLS).
    pub ingest: IngestConfig,
    /// How agents' metrics are kept and exposed.
    pub metrics: MetricsConfig,
    /// Alerting and recording rules evaluated over agents' metrics.
    pub rules: crate::alerting::RulesConfig,
    /// The enrolment listener agents use once, with a token, to get their
    /// client certificate.
    pub enroll: EnrollConfig,
    /// Use this CA (certificate and key) instead of the one generated in the
    /// data dir. It signs the server certificate and agents' certificates.
    pub ca: Option<TlsFiles>,
    /// Agent liveness.
    pub agents: AgentsConfig,
    /// Notifications: routes, receivers, silences, the outbox.
    pub notify: countywatch_notify::config::NotifyConfig,
    /// Scale-out outputs: Prometheus remote_write and security-event
    /// forwarding (see `output/config.rs`).
    pub outputs: crate::output::config::OutputsConfig,
    /// Incidents, the audit trail, retention and the web page's sessions.
    pub incidents: crate::incident::config::IncidentsConfig,
    /// Detection rules over agents' security events (docs/detection.md).
    pub detection: crate::detection::DetectionConfig,
    /// The time zone and language people read (`display.rs`).
    pub display: countywatch_notify::display::DisplayConfig,
    /// Where audit checkpoints are sent off the host (docs/security.md).
    pub audit: crate::audit::anchor::AuditConfig,
    /// Active response: decisions that block attacking addresses on
    /// agents, dry run by default (docs/security.md).
    pub response: crate::active_response::config::ResponseConfig,
    /// The file this configuration was read from, which a reload reads
    /// again; `None` when the collector runs on defaults. Not a key.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// The county report and the history it reads (docs/report.md).
    pub report: crate::report::config::ReportConfig,
}

/// The enrolment listener.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrollConfig {
    /// Whether the listener runs. Turn it off when no agent is enrolling.
    pub enabled: bool,
    /// Address to listen on, `HOST:PORT` (TLS, no client certificate).
    pub listen: Spanned<String>,
    /// The enrolment URL agents use, `https://HOST:PORT`, as `token create`
    /// prints it. Unset: the first `ingest.server_names` entry with the
    /// listen port, else the listen address.
    pub public_url: Option<Spanned<String>>,
}

/// Agent liveness.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentsConfig {
    /// An enrolled agent not heard from for this long is down
    /// (`countywatch_agent_up` 0) and gets one `agent_silent` event.
    pub silent_after: PromDuration,
    /// How long the client certificates issued to agents are valid (at
    /// least 1m). Agents renew theirs over mutual TLS at two thirds of it.
    pub cert_lifetime: PromDuration,
}

/// The HTTP listener for Prometheus and people.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on, `HOST:PORT`.
    pub listen: Spanned<String>,
    /// Serve HTTPS with these files instead of plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Allow plain HTTP on a non-loopback address. Off by default because
    /// the page and API will carry incident data.
    pub insecure_http: bool,
    /// Require credentials on `/metrics`: a bearer token or basic auth, as
    /// Prometheus sends them with `authorization` or `basic_auth`. Unset,
    /// `/metrics` is open to whoever reaches the listener.
    pub metrics_auth: Option<MetricsAuthConfig>,
    /// Let anyone who reaches the listener read `GET /api/v2/alerts`
    /// without credentials, as an Alertmanager's is open (for a Grafana or
    /// a wall display without a token). Alerting-rule alerts only: the
    /// detections' alerts, whose labels name users, addresses and hosts,
    /// still need a viewer. Off by default.
    pub open_alerts_read: bool,
}

/// The ingest listener.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Address to listen on, `HOST:PORT`.
    pub listen: Spanned<String>,
    /// Use these files instead of the server certificate the CA issues in
    /// the data dir (used by the enrolment listener too). The chain must end
    /// in the CA agents pin.
    pub tls: Option<TlsFiles>,
    /// Extra DNS names or IP addresses to put in the generated certificate
    /// (localhost, 127.0.0.1, ::1 and the host name are always there).
    pub server_names: Vec<String>,
    /// Largest request body accepted, compressed, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Largest body after decompression, in bytes (413 beyond); refuses gzip bombs.
    pub max_decompressed_bytes: usize,
    /// Most decompressed bytes held by all ingest requests in flight
    /// together; a request that would pass it is answered 503 with
    /// `Retry-After` and the agent retries. At least
    /// `max_decompressed_bytes`, so that a largest batch can get through.
    pub max_inflight_decompressed_bytes: usize,
    /// Most connections served at once; further ones wait in the kernel's
    /// backlog rather than costing memory here.
    pub max_connections: usize,
    /// Time allowed for the TLS handshake and for reading a whole request;
    /// a slow sender (slowloris) is cut off after it.
    pub request_timeout: PromDuration,
}

/// Keeping agents' metrics.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// An agent's metrics disappear from `/metrics` when it has not reported
    /// for this long, so a dead host's last values are not served forever
    /// (its `countywatch_agent_last_seen_timestamp_seconds` stays).
    pub stale_after: PromDuration,
}

/// Default HTTP listener address.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:9780";
/// Default ingest listener address.
pub const DEFAULT_INGEST_LISTEN: &str = "127.0.0.1:9781";
/// Default enrolment listener address.
pub const DEFAULT_ENROLL_LISTEN: &str = "127.0.0.1:9782";

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(".countywatch/collector"),
            http: HttpConfig::default(),
            ingest: IngestConfig::default(),
            metrics: MetricsConfig::default(),
            rules: crate::alerting::RulesConfig::default(),
            enroll: EnrollConfig::default(),
            ca: None,
            agents: AgentsConfig::default(),
            notify: countywatch_notify::config::NotifyConfig::default(),
            outputs: Default::default(),
            incidents: Default::default(),
            detection: Default::default(),
            display: Default::default(),
            audit: Default::default(),
            response: Default::default(),
            source: None,
            report: Default::default(),
        }
    }
}

impl Default for EnrollConfig {
    fn default() -> Self {
        EnrollConfig {
            enabled: true,
            listen: unspanned(DEFAULT_ENROLL_LISTEN.to_string()),
            public_url: None,
        }
    }
}

impl Default for AgentsConfig {
    fn default() -> Self {
        AgentsConfig {
            silent_after: PromDuration(Duration::from_secs(120)),
            cert_lifetime: PromDuration(crate::ca::AGENT_CERT_VALIDITY),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: unspanned(DEFAULT_HTTP_LISTEN.to_string()),
            tls: None,
            insecure_http: false,
            metrics_auth: None,
            open_alerts_read: false,
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            listen: unspanned(DEFAULT_INGEST_LISTEN.to_string()),
            tls: None,
            server_names: Vec::new(),
            max_body_bytes: 8 * 1024 * 1024,
            max_decompressed_bytes: 64 * 1024 * 1024,
            max_inflight_decompressed_bytes: 256 * 1024 * 1024,
            max_connections: 4096,
            request_timeout: PromDuration(Duration::from_secs(30)),
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            stale_after: PromDuration(Duration::from_secs(300)),
        }
    }
}

pub use countywatch_config::config_file::unspanned;

impl Config {
    /// Loads and validates a config file, reporting every problem in file
    /// order: the shape ones (unknown keys, wrong types) and the semantic
    /// ones of what parsed around them. Only a YAML syntax error stops early.
    pub fn load(path: &Path) -> Result<Config, Problems> {
        let (config, mut problems) = config_file::load_lenient::<Config>(path);
        let Some(mut config) = config else {
            return Err(problems);
        };
        config.notify.apply_alertmanager_file(path)?;
        if let Err(semantic) = config.validate(path) {
            problems.problems.extend(semantic.problems);
        }
        problems.into_result()?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Checks what the types cannot, reporting every problem at once.
    pub fn validate(&self, path: &Path) -> Result<(), Problems> {
        let mut problems = Problems::new(path);
        let http = parse_listen(&mut problems, "http.listen", &self.http.listen);
        parse_listen(&mut problems, "ingest.listen", &self.ingest.listen);
        parse_listen(&mut problems, "enroll.listen", &self.enroll.listen);
        if let Some(address) = http
            && !address.ip().is_loopback()
            && self.http.tls.is_none()
            && !self.http.insecure_http
        {
            problems.at(
                &self.http.listen,
                format!(
                    "http.listen {address} is not a loopback address: configure http.tls, \
                     or set http.insecure_http: true to serve plain HTTP on it"
                ),
            );
        }
        if let Some(url) = &self.enroll.public_url
            && !url.value.starts_with("https://")
        {
            problems.at(
                url,
                format!("enroll.public_url {:?} must start with https://", url.value),
            );
        }
        if let Some(auth) = &self.http.metrics_auth
            && let Err(message) = MetricsCredentials::load(auth)
        {
            problems.general(format!("http.metrics_auth: {message}"));
        }
        if self.ingest.max_body_bytes == 0 || self.ingest.max_decompressed_bytes == 0 {
            problems.general(
                "ingest.max_body_bytes and ingest.max_decompressed_bytes must be positive",
            );
        }
        if self.ingest.max_inflight_decompressed_bytes < self.ingest.max_decompressed_bytes {
            problems.general(
                "ingest.max_inflight_decompressed_bytes must be at least ingest.max_decompressed_bytes",
            );
        }
        if self.ingest.max_connections == 0 {
            problems.general("ingest.max_connections must be at least 1");
        }
        if self.agents.cert_lifetime.get() < crate::ca::MIN_AGENT_CERT_VALIDITY {
            problems.general("agents.cert_lifetime must be at least 1m");
        }
        self.notify.validate(&mut problems);
        // Rule files are part of the configuration: a bad one stops the
        // collector at start with every problem, like a bad config.
        match crate::alerting::rule_groups(&self.rules) {
            Ok(_) => self.rules.validate_disabled(&mut problems),
            Err(failures) => {
                for problem in failures.into_iter().flat_map(|failure| failure.problems) {
                    problems.general(format!("rules.files: {problem}"));
                }
            }
        }
        self.outputs.validate(&mut problems);
        self.incidents.validate(&mut problems);
        self.detection.validate(&mut problems);
        self.display.validate(&mut problems);
        self.report.validate(&self.notify, &mut problems);
        self.response.validate(&mut problems);
        problems.into_result()
    }

    /// The time zone and language people read.
    pub fn display(&self) -> countywatch_notify::display::Display {
        let calendar = countywatch_detect::calendar::Calendar::new(&self.detection.calendar)
            .unwrap_or_default();
        self.display.resolve(calendar.zone())
    }

    /// The HTTP listen address; call after [`Config::validate`].
    pub fn http_listen(&self) -> anyhow::Result<SocketAddr> {
        Ok(parse_address(&self.http.listen.value)?)
    }

    /// The enrolment listen address; call after [`Config::validate`].
    pub fn enroll_listen(&self) -> anyhow::Result<SocketAddr> {
        Ok(parse_address(&self.enroll.listen.value)?)
    }

    /// The enrolment URL `token create` prints: `enroll.public_url`, else
    /// the first `ingest.server_names` entry with the listen port, else the
    /// listen address; `None` when the listener is on every address and
    /// nothing names this collector (the machine's host name is not
    /// printed: agents on other networks rarely resolve it). Call after
    /// [`Config::validate`].
    pub fn enroll_url(&self) -> anyhow::Result<Option<String>> {
        if let Some(url) = &self.enroll.public_url {
            return Ok(Some(url.value.trim_end_matches('/').to_string()));
        }
        let listen = self.enroll_listen()?;
        let host = match self.ingest.server_names.first() {
            Some(name) if name.contains(':') => format!("[{name}]"),
            Some(name) => name.clone(),
            None if listen.ip().is_unspecified() => return Ok(None),
            None if listen.is_ipv6() => format!("[{}]", listen.ip()),
            None => listen.ip().to_string(),
        };
        Ok(Some(format!("https://{host}:{}", listen.port())))
    }

    /// The ingest listen address; call after [`Config::validate`].
    pub fn ingest_listen(&self) -> anyhow::Result<SocketAddr> {
        Ok(parse_address(&self.ingest.listen.value)?)
    }
}

fn parse_listen(
    problems: &mut Problems,
    key: &str,
    listen: &Spanned<String>,
) -> Option<SocketAddr> {
    match parse_address(&listen.value) {
        Ok(address) => Some(address),
        Err(error) => {
            problems.at(listen, format!("{key}: {error}"));
            None
        }
    }
}

/// A listen address that is not `IP:PORT`.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not an address like 127.0.0.1:9780 or [::]:9781")]
pub struct ListenAddressError {
    /// The address as configured.
    text: String,
}

fn parse_address(text: &str) -> Result<SocketAddr, ListenAddressError> {
    text.parse::<SocketAddr>().map_err(|_| ListenAddressError {
        text: text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_of(text: &str) -> String {
        let config: Config = match config_file::parse(Path::new("c.yaml"), text) {
            Ok(config) => config,
            Err(problems) => return problems.to_string(),
        };
        config
            .validate(Path::new("c.yaml"))
            .err()
            .map(|p| p.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(problems_of(""), "");
    }

    #[test]
    fn plain_http_off_loopback_needs_an_explicit_opt_in() {
        let problems = problems_of("http:\n  listen: 0.0.0.0:9780\n");
        assert!(
            problems.starts_with("c.yaml:2:11: http.listen 0.0.0.0:9780 is not a loopback"),
            "{problems}"
        );
        assert_eq!(
            problems_of("http:\n  listen: 0.0.0.0:9780\n  insecure_http: true\n"),
            ""
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let problems = problems_of(
            "http:\n  listen: nowhere\ningest:\n  listen: \"1.2.3.4\"\n  max_connections: 0\n",
        );
        let lines: Vec<&str> = problems.lines().collect();
        assert_eq!(lines.len(), 3, "{problems}");
        assert!(
            lines[0].starts_with("c.yaml:2:11: http.listen: \"nowhere\""),
            "{problems}"
        );
        assert!(
            lines[1].starts_with("c.yaml:4:11: ingest.listen"),
            "{problems}"
        );
        assert_eq!(
            lines[2],
            "c.yaml: ingest.max_connections must be at least 1"
        );
    }

    #[test]
    fn metrics_auth_needs_one_kind_of_credentials() {
        let problems = problems_of(
            "http:\n  metrics_auth:\n    bearer_token_file: /nonexistent/token\n    username: prometheus\n",
        );
        assert!(
            problems.contains(
                "http.metrics_auth: set either bearer_token_file, or username and password_file"
            ),
            "{problems}"
        );
        let problems =
            problems_of("http:\n  metrics_auth:\n    bearer_token_file: /nonexistent/token\n");
        assert!(
            problems.contains("cannot read secret file /nonexistent/token"),
            "{problems}"
        );
    }

    #[test]
    fn the_enrolment_url_comes_from_public_url_then_server_names_never_the_host_name() {
        let url = |text: &str| {
            let config: Config = config_file::parse(Path::new("c.yaml"), text).unwrap();
            config.enroll_url().unwrap()
        };
        assert_eq!(
            url("enroll:\n  public_url: https://cw.county.example:443/\n").as_deref(),
            Some("https://cw.county.example:443")
        );
        assert_eq!(
            url("ingest:\n  server_names: [cw.county.example, 10.0.0.5]\nenroll:\n  listen: 0.0.0.0:9782\n")
                .as_deref(),
            Some("https://cw.county.example:9782")
        );
        assert_eq!(
            url("ingest:\n  server_names: [\"fd00::5\"]\n").as_deref(),
            Some("https://[fd00::5]:9782")
        );
        assert_eq!(url("").as_deref(), Some("https://127.0.0.1:9782"));
        assert_eq!(url("enroll:\n  listen: 0.0.0.0:9782\n"), None);
        assert!(
            problems_of("enroll:\n  public_url: http://x:1\n")
                .starts_with("c.yaml:2:15: enroll.public_url")
        );
    }

    #[test]
    fn check_config_reports_an_unknown_key_a_bad_value_and_a_semantic_problem_in_one_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(
            &path,
            "http:\n  listen: 0.0.0.0:9780\ningest:\n  max_connections: many\nmetrics:\n  stale_afterr: 5m\n",
        )
        .unwrap();
        let report = Config::load(&path).err().unwrap().to_string();
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines.len(), 3, "{report}");
        let file = path.display().to_string();
        assert!(
            lines[0].starts_with(&format!("{file}:2:11: http.listen")),
            "{report}"
        );
        assert!(lines[1].starts_with(&format!("{file}:4:20: ")), "{report}");
        assert!(lines[2].starts_with(&format!("{file}:6:3: ")), "{report}");
        assert!(lines[2].contains("stale_afterr"), "{report}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let problems = problems_of("ingest:\n  lisen: x\n");
        assert!(problems.starts_with("c.yaml:2:3: "), "{problems}");
    }
}
