//! The `outputs:` section of the collector config: where samples are
//! remote-written and where security events are forwarded, with the checks
//! the types cannot express (reported with file:line:column like the rest).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use countywatch_config::config_file::{Problems, Spanned};
use countywatch_config::duration::PromDuration;
use serde::Deserialize;

/// Every scale-out output.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputsConfig {
    /// Prometheus remote_write 1.0 receivers (Prometheus, Thanos receive,
    /// Mimir, VictoriaMetrics) that get every sample the collector accepts.
    pub remote_write: Vec<RemoteWriteConfig>,
    /// Destinations (a SIEM, a syslog relay) that get every stored security
    /// event, at least once.
    pub forward: Vec<ForwardConfig>,
}

/// One remote_write receiver.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// A unique name: it keys this output's queue in `<data_dir>/outputs.db`
    /// and labels its metrics, so renaming it abandons the queued samples.
    pub name: String,
    /// The receiver's endpoint, e.g. `https://mimir.example:443/api/v1/push`.
    pub url: Spanned<String>,
    /// Labels added to every series that does not already carry them, e.g.
    /// `county: "M"`, so a central store can tell collectors apart.
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    /// HTTP basic authentication.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// File holding a bearer token sent as `Authorization: Bearer`.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// TLS options for `https://` URLs.
    #[serde(default)]
    pub tls: Option<ClientTls>,
    /// Time allowed for one request (connect, send, answer).
    #[serde(default = "default_timeout")]
    pub timeout: PromDuration,
    /// Most samples kept on disk waiting for the receiver; beyond this the
    /// oldest are dropped and counted (`result="dropped"`). The default, 50
    /// million (about 800 MB of disk at ~16 bytes a sample), covers 12
    /// minutes of outage for 1,000 hosts sending 1,000 samples every 15 s,
    /// two hours for 100 hosts; size it as samples/s x longest outage.
    #[serde(default = "default_max_pending_samples")]
    pub max_pending_samples: u64,
    /// Most samples in one request (Prometheus's own default is 2,000).
    #[serde(default = "default_max_samples_per_send")]
    pub max_samples_per_send: usize,
    /// First wait after a failed request; doubles per failure, with jitter.
    #[serde(default = "default_min_backoff")]
    pub min_backoff: PromDuration,
    /// Longest wait between retries.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: PromDuration,
}

/// HTTP basic authentication; the password is read from a file so that the
/// config file can be world-readable.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// File whose content (trailing newline removed) is the password.
    pub password_file: PathBuf,
}

/// TLS options for an output's client connection.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientTls {
    /// CA certificates (PEM) that the receiver's certificate must chain to.
    /// Required: outputs trust no system store, so what they trust is
    /// written in the config.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS.
    pub key_file: Option<PathBuf>,
    /// Name to verify the receiver's certificate against, when it differs
    /// from the host in the address.
    pub server_name: Option<String>,
}

/// One event forwarding destination. Exactly one of `syslog` and
/// `json_lines` is set.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// A unique name: it keys this output's cursor in `<data_dir>/outputs.db`
    /// and labels its metrics.
    pub name: String,
    /// RFC 5424 syslog over TCP with octet-counting framing (RFC 6587), or
    /// over TLS (RFC 5425) when `tls` is set.
    #[serde(default)]
    pub syslog: Option<SyslogTarget>,
    /// One JSON object per line, POSTed over HTTP(S).
    #[serde(default)]
    pub json_lines: Option<JsonLinesTarget>,
    /// Which events go to this output; all when empty.
    #[serde(default)]
    pub filter: EventFilter,
    /// On the first start with this output, forward the events already
    /// stored too (`true`), or only those accepted from now on (`false`).
    #[serde(default)]
    pub from_beginning: bool,
    /// Most events sent per write.
    #[serde(default = "default_forward_batch")]
    pub max_events_per_send: usize,
    /// Longest wait between reconnection attempts.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: PromDuration,
}

/// A syslog receiver.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogTarget {
    /// `HOST:PORT` of the receiver (514 for plain TCP, 6514 for TLS by convention).
    pub address: Spanned<String>,
    /// Use TLS (RFC 5425) with these options.
    #[serde(default)]
    pub tls: Option<ClientTls>,
    /// Syslog facility number, 0-23 (10 is authpriv, 13 log audit).
    #[serde(default = "default_facility")]
    pub facility: u8,
}

/// A JSON-lines receiver over HTTP(S).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonLinesTarget {
    /// The endpoint events are POSTed to.
    pub url: Spanned<String>,
    /// TLS options for `https://` URLs.
    #[serde(default)]
    pub tls: Option<ClientTls>,
    /// File holding a bearer token sent as `Authorization: Bearer`.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
}

/// Which events an output takes. Each non-empty list must match.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventFilter {
    /// Event sources to forward (`auth`, `fim`, `syslog`, `agent`...).
    pub sources: Vec<String>,
    /// Event kinds to forward (`ssh_login_failed`...).
    pub kinds: Vec<String>,
    /// Forward only events at least this severe (syslog names: `emerg`,
    /// `alert`, `crit`, `err`, `warning`, `notice`, `info`, `debug`). An
    /// event's severity follows from its kind (`event_forward::severity`,
    /// tabled in docs/scaling.md).
    pub min_severity: Option<Spanned<String>>,
}

fn default_timeout() -> PromDuration {
    PromDuration(Duration::from_secs(30))
}
fn default_max_pending_samples() -> u64 {
    50_000_000
}
fn default_max_samples_per_send() -> usize {
    2_000
}
fn default_min_backoff() -> PromDuration {
    PromDuration(Duration::from_millis(100))
}
fn default_max_backoff() -> PromDuration {
    PromDuration(Duration::from_secs(30))
}
fn default_forward_batch() -> usize {
    500
}
fn default_facility() -> u8 {
    10
}

/// An output's URL or syslog address that cannot be used; the operator
/// must fix the config.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The scheme is neither `http` nor `https`.
    #[error("{0:?} is not an http:// or https:// URL")]
    NotHttp(String),
    /// The URL's host or port is missing or malformed.
    #[error("{0:?} has no usable host[:port]")]
    NoHost(String),
    /// A syslog address is not `HOST:PORT`.
    #[error("{0:?} is not HOST:PORT")]
    NotHostPort(String),
}

/// A parsed `http://` or `https://` URL: the only shapes outputs accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    /// Whether the scheme is `https`.
    pub https: bool,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port, defaulted from the scheme.
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

impl HttpUrl {
    /// Parses `scheme://host[:port][/path]`.
    pub fn parse(text: &str) -> Result<HttpUrl, AddressError> {
        let (https, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(AddressError::NotHttp(text.to_string()));
        };
        let (authority, path) = match rest.find('/') {
            Some(index) => (&rest[..index], &rest[index..]),
            None => (rest, "/"),
        };
        let (host, port) =
            split_host_port(authority).ok_or_else(|| AddressError::NoHost(text.to_string()))?;
        let port = match port {
            Some(port) => port,
            None if https => 443,
            None => 80,
        };
        Ok(HttpUrl {
            https,
            host,
            port,
            path: path.to_string(),
        })
    }

    /// `host:port` as the Host header wants it.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Splits `host[:port]` (IPv6 in brackets); `None` when malformed.
pub fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return (!host.is_empty()).then(|| (host.to_string(), port));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port.parse().ok()?)),
        None => (authority, None),
    };
    (!host.is_empty() && !host.contains(['@', ' '])).then(|| (host.to_string(), port))
}

/// The syslog severity names, most severe first; the index is the number.
pub const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// The number of a syslog severity name (also `error`, `warn`, `emergency`,
/// `critical`, `informational`), case-insensitive.
pub fn severity_number(name: &str) -> Option<u8> {
    let lower = name.to_ascii_lowercase();
    let canonical = match lower.as_str() {
        "emergency" | "panic" => "emerg",
        "critical" => "crit",
        "error" => "err",
        "warn" => "warning",
        "informational" => "info",
        other => other,
    };
    SEVERITIES
        .iter()
        .position(|known| *known == canonical)
        .and_then(|index| u8::try_from(index).ok())
}

impl OutputsConfig {
    /// Adds every problem of the outputs section to `problems`.
    pub fn validate(&self, problems: &mut Problems) {
        let mut names = Vec::new();
        for output in &self.remote_write {
            check_name(problems, "outputs.remote_write", &output.name, &mut names);
            match HttpUrl::parse(&output.url.value) {
                Ok(url) => {
                    if url.https && output.tls.as_ref().is_none_or(|tls| tls.ca_file.is_none()) {
                        problems.at(
                            &output.url,
                            format!(
                                "outputs.remote_write {:?}: an https:// URL needs tls.ca_file",
                                output.name
                            ),
                        );
                    }
                }
                Err(message) => problems.at(
                    &output.url,
                    format!("outputs.remote_write {:?}: url: {message}", output.name),
                ),
            }
            for name in output.external_labels.keys() {
                if !countywatch_wire::is_valid_label_name(name) {
                    problems.general(format!(
                        "outputs.remote_write {:?}: external label {name:?} is not a valid label name",
                        output.name
                    ));
                }
            }
            if output.basic_auth.is_some() && output.bearer_token_file.is_some() {
                problems.general(format!(
                    "outputs.remote_write {:?}: set basic_auth or bearer_token_file, not both",
                    output.name
                ));
            }
            if output.max_samples_per_send == 0 || output.max_pending_samples == 0 {
                problems.general(format!(
                    "outputs.remote_write {:?}: max_samples_per_send and max_pending_samples must be positive",
                    output.name
                ));
            }
            check_tls(problems, &output.name, output.tls.as_ref());
        }
        for output in &self.forward {
            check_name(problems, "outputs.forward", &output.name, &mut names);
            match (&output.syslog, &output.json_lines) {
                (Some(syslog), None) => {
                    if let Err(message) = parse_host_port(&syslog.address.value) {
                        problems.at(
                            &syslog.address,
                            format!(
                                "outputs.forward {:?}: syslog.address: {message}",
                                output.name
                            ),
                        );
                    }
                    if syslog.facility > 23 {
                        problems.general(format!(
                            "outputs.forward {:?}: syslog.facility must be 0-23",
                            output.name
                        ));
                    }
                    if let Some(tls) = &syslog.tls
                        && tls.ca_file.is_none()
                    {
                        problems.general(format!(
                            "outputs.forward {:?}: syslog.tls needs ca_file",
                            output.name
                        ));
                    }
                    check_tls(problems, &output.name, syslog.tls.as_ref());
                }
                (None, Some(json)) => {
                    match HttpUrl::parse(&json.url.value) {
                        Ok(url) => {
                            if url.https
                                && json.tls.as_ref().is_none_or(|tls| tls.ca_file.is_none())
                            {
                                problems.at(
                                    &json.url,
                                    format!(
                                        "outputs.forward {:?}: an https:// URL needs tls.ca_file",
                                        output.name
                                    ),
                                );
                            }
                        }
                        Err(message) => problems.at(
                            &json.url,
                            format!(
                                "outputs.forward {:?}: json_lines.url: {message}",
                                output.name
                            ),
                        ),
                    }
                    check_tls(problems, &output.name, json.tls.as_ref());
                }
                _ => problems.general(format!(
                    "outputs.forward {:?}: set exactly one of syslog and json_lines",
                    output.name
                )),
            }
            if let Some(severity) = &output.filter.min_severity
                && severity_number(&severity.value).is_none()
            {
                problems.at(
                    severity,
                    format!(
                        "outputs.forward {:?}: filter.min_severity {:?} is not one of {}",
                        output.name,
                        severity.value,
                        SEVERITIES.join(", ")
                    ),
                );
            }
            if output.max_events_per_send == 0 {
                problems.general(format!(
                    "outputs.forward {:?}: max_events_per_send must be positive",
                    output.name
                ));
            }
        }
    }
}

fn check_name(problems: &mut Problems, section: &str, name: &str, seen: &mut Vec<String>) {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"_-.".contains(&byte));
    if !valid {
        problems.general(format!(
            "{section}: name {name:?} must be 1-64 letters, digits, '_', '-' or '.'"
        ));
    }
    if seen.iter().any(|other| other == name) {
        problems.general(format!("{section}: name {name:?} is used twice"));
    }
    seen.push(name.to_string());
}

fn check_tls(problems: &mut Problems, name: &str, tls: Option<&ClientTls>) {
    if let Some(tls) = tls
        && tls.cert_file.is_some() != tls.key_file.is_some()
    {
        problems.general(format!(
            "output {name:?}: tls.cert_file and tls.key_file go together"
        ));
    }
}

/// Parses `HOST:PORT` (IPv6 in brackets) for a syslog receiver.
pub fn parse_host_port(text: &str) -> Result<(String, u16), AddressError> {
    match split_host_port(text) {
        Some((host, Some(port))) => Ok((host, port)),
        _ => Err(AddressError::NotHostPort(text.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_default_ports_and_ipv6() {
        assert_eq!(
            HttpUrl::parse("http://127.0.0.1:9090/api/v1/write").unwrap(),
            HttpUrl {
                https: false,
                host: "127.0.0.1".into(),
                port: 9090,
                path: "/api/v1/write".into()
            }
        );
        let url = HttpUrl::parse("https://[::1]/push").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", 443));
        assert_eq!(url.authority(), "[::1]:443");
        assert!(HttpUrl::parse("ftp://x").is_err());
        assert!(HttpUrl::parse("http://:80/").is_err());
        assert!(HttpUrl::parse("http://h:port/").is_err());
    }

    fn problems_of(text: &str) -> String {
        let path = std::path::Path::new("c.yaml");
        let config: crate::config::Config = match countywatch_config::config_file::parse(path, text)
        {
            Ok(config) => config,
            Err(problems) => return problems.to_string(),
        };
        config
            .validate(path)
            .err()
            .map(|problems| problems.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn a_full_outputs_section_is_valid() {
        let text = "outputs:
  remote_write:
    - name: province
      url: https://[::1]:9201/api/v1/push
      external_labels: {county: M}
      basic_auth: {username: u, password_file: /p}
      tls: {ca_file: /ca, cert_file: /c, key_file: /k}
      max_backoff: 1m
  forward:
    - name: siem
      syslog: {address: 127.0.0.1:6514, tls: {ca_file: /ca}}
      filter: {sources: [auth], min_severity: warning}
    - name: json
      json_lines: {url: http://127.0.0.1:8080/x}
";
        assert_eq!(problems_of(text), "");
    }

    #[test]
    fn every_output_problem_is_reported_with_its_position() {
        let text = "outputs:
  remote_write:
    - name: a
      url: https://h/x
      external_labels: {0bad: x}
    - name: a
      url: mailto:x
  forward:
    - name: f
      syslog: {address: nowhere}
      filter: {min_severity: loud}
    - name: g
";
        let problems = problems_of(text);
        let lines: Vec<&str> = problems.lines().collect();
        assert!(
            lines.contains(
                &"c.yaml:4:12: outputs.remote_write \"a\": an https:// URL needs tls.ca_file"
            ),
            "{problems}"
        );
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with("c.yaml:7:12: outputs.remote_write \"a\": url:")),
            "{problems}"
        );
        assert!(lines.iter().any(|line| line.starts_with("c.yaml:10:25: outputs.forward \"f\": syslog.address")), "{problems}");
        assert!(
            lines
                .iter()
                .any(|line| line
                    .starts_with("c.yaml:11:30: outputs.forward \"f\": filter.min_severity")),
            "{problems}"
        );
        assert!(
            lines.contains(&"c.yaml: outputs.remote_write: name \"a\" is used twice"),
            "{problems}"
        );
        assert!(
            lines.contains(
                &"c.yaml: outputs.forward \"g\": set exactly one of syslog and json_lines"
            ),
            "{problems}"
        );
        assert!(
            lines
                .iter()
                .any(|line| line.contains("external label \"0bad\"")),
            "{problems}"
        );
        assert_eq!(lines.len(), 7, "{problems}");
    }

    #[test]
    fn severities_have_their_syslog_numbers() {
        assert_eq!(severity_number("emerg"), Some(0));
        assert_eq!(severity_number("Warning"), Some(4));
        assert_eq!(severity_number("error"), Some(3));
        assert_eq!(severity_number("loud"), None);
    }
}
