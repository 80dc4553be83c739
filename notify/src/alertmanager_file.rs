//! An unmodified `alertmanager.yml` (Alertmanager 0.25's format) read as the
//! collector's notification configuration: `notify.alertmanager_config:
//! PATH`, and `notify routes test --alertmanager-config PATH`.
//!
//! The route tree, inhibit rules and time intervals already have
//! Alertmanager's shape in [`crate::config`] and are read as they
//! are. This module owns what differs: `global:` defaults (resolve_timeout,
//! `smtp_*`, `http_config`), top-level `mute_time_intervals:`, email and
//! webhook receivers in Alertmanager's form, and the refusal, at their line
//! and column, of what countywatch lacks (Slack, PagerDuty and the other
//! integrations county networks cannot reach, Go templates, HTTP options
//! our client does not have), each saying what to use instead.
//!
//! Invariant: nothing is ignored silently. A key either changes what the
//! collector does as it would change what Alertmanager does, or is a
//! problem reported by `check-config`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use countywatch_config::config_file::{Problems, Spanned};
use countywatch_config::duration::PromDuration;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::config::{InhibitRuleConfig, RouteConfig};
use crate::go_template::TemplateSet;
use crate::http_client::HttpTlsConfig;
use crate::receiver::ReceiverConfig;
use crate::receiver::email::{EmailConfig, SmtpTls};
use crate::receiver::webhook::WebhookConfig;
use crate::template::TemplateOverrides;
use crate::time_interval::TimeIntervalConfig;

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerFile {
    /// Defaults for every receiver and the resolve timeout.
    #[serde(default)]
    pub global: GlobalConfig,
    /// The routing tree; Alertmanager requires one.
    pub route: Option<RouteConfig>,
    /// Where notifications go.
    #[serde(default)]
    pub receivers: Vec<AmReceiver>,
    /// Alerts that mute other alerts while they fire.
    #[serde(default)]
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    /// Named time intervals.
    #[serde(default)]
    pub time_intervals: Vec<TimeIntervalConfig>,
    /// The older name of `time_intervals`; both are read.
    #[serde(default)]
    pub mute_time_intervals: Vec<TimeIntervalConfig>,
    /// Go template files (`*` and `?` allowed in the file name), relative
    /// to this file's directory; their `define`s serve the email fields
    /// (`go_template.rs` says which subset of Go templates runs).
    #[serde(default)]
    pub templates: Vec<Spanned<String>>,
}

/// `global:`. Settings of integrations countywatch lacks are accepted and
/// unused, since every receiver using them is refused anyway.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalConfig {
    /// A firing alert not re-sent for this long resolves.
    pub resolve_timeout: PromDuration,
    /// HTTP settings of every webhook without its own `http_config`.
    pub http_config: Option<AmHttpConfig>,
    /// Default sender address of email receivers.
    pub smtp_from: Option<String>,
    /// Default EHLO name.
    pub smtp_hello: Option<String>,
    /// Default SMTP server, `HOST:PORT`.
    pub smtp_smarthost: Option<Spanned<String>>,
    /// Default SMTP AUTH user.
    pub smtp_auth_username: Option<String>,
    /// Default SMTP AUTH password.
    pub smtp_auth_password: Option<String>,
    /// Default file holding the SMTP AUTH password.
    pub smtp_auth_password_file: Option<PathBuf>,
    /// CRAM-MD5 secret: countywatch authenticates with PLAIN or LOGIN only.
    pub smtp_auth_secret: Option<Spanned<String>>,
    /// PLAIN identity: countywatch sends none.
    pub smtp_auth_identity: Option<Spanned<String>>,
    /// Whether STARTTLS is required (Alertmanager's default: yes).
    pub smtp_require_tls: bool,
    /// Slack's API URL (unused: no Slack integration).
    pub slack_api_url: Option<IgnoredAny>,
    /// File holding Slack's API URL (unused).
    pub slack_api_url_file: Option<IgnoredAny>,
    /// PagerDuty's URL (unused).
    pub pagerduty_url: Option<IgnoredAny>,
    /// OpsGenie's URL (unused).
    pub opsgenie_api_url: Option<IgnoredAny>,
    /// OpsGenie's key (unused).
    pub opsgenie_api_key: Option<IgnoredAny>,
    /// File holding OpsGenie's key (unused).
    pub opsgenie_api_key_file: Option<IgnoredAny>,
    /// WeChat's URL (unused).
    pub wechat_api_url: Option<IgnoredAny>,
    /// WeChat's secret (unused).
    pub wechat_api_secret: Option<IgnoredAny>,
    /// WeChat's corp ID (unused).
    pub wechat_api_corp_id: Option<IgnoredAny>,
    /// VictorOps's URL (unused).
    pub victorops_api_url: Option<IgnoredAny>,
    /// VictorOps's key (unused).
    pub victorops_api_key: Option<IgnoredAny>,
    /// File holding VictorOps's key (unused).
    pub victorops_api_key_file: Option<IgnoredAny>,
    /// Telegram's URL (unused).
    pub telegram_api_url: Option<IgnoredAny>,
    /// Webex's URL (unused).
    pub webex_api_url: Option<IgnoredAny>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            resolve_timeout: PromDuration(Duration::from_secs(300)),
            http_config: None,
            smtp_from: None,
            smtp_hello: None,
            smtp_smarthost: None,
            smtp_auth_username: None,
            smtp_auth_password: None,
            smtp_auth_password_file: None,
            smtp_auth_secret: None,
            smtp_auth_identity: None,
            smtp_require_tls: true,
            slack_api_url: None,
            slack_api_url_file: None,
            pagerduty_url: None,
            opsgenie_api_url: None,
            opsgenie_api_key: None,
            opsgenie_api_key_file: None,
            wechat_api_url: None,
            wechat_api_secret: None,
            wechat_api_corp_id: None,
            victorops_api_url: None,
            victorops_api_key: None,
            victorops_api_key_file: None,
            telegram_api_url: None,
            webex_api_url: None,
        }
    }
}

/// Prometheus's common HTTP client settings, as far as countywatch's HTTP
/// client has them; the rest are read only to be refused.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AmHttpConfig {
    /// `Authorization: <type> <credentials>`; only `Bearer` is supported.
    pub authorization: Option<AmAuthorization>,
    /// The older form of a bearer token.
    pub bearer_token: Option<String>,
    /// The older form of a bearer token file.
    pub bearer_token_file: Option<PathBuf>,
    /// TLS settings.
    pub tls_config: Option<AmTlsConfig>,
    /// Basic authentication (refused: not in countywatch's client).
    pub basic_auth: Option<Spanned<IgnoredAny>>,
    /// OAuth 2 (refused).
    pub oauth2: Option<Spanned<IgnoredAny>>,
    /// An HTTP proxy (refused).
    pub proxy_url: Option<Spanned<String>>,
    /// Hosts not to proxy (accepted without a proxy).
    pub no_proxy: Option<IgnoredAny>,
    /// Proxy from the environment (refused when true).
    pub proxy_from_environment: Option<Spanned<bool>>,
    /// Headers for the proxy (refused).
    pub proxy_connect_header: Option<Spanned<IgnoredAny>>,
    /// countywatch never follows redirects: a webhook answering 3xx fails.
    pub follow_redirects: Option<Spanned<bool>>,
    /// HTTP/2 is negotiated as the server offers; nothing to set.
    pub enable_http2: Option<bool>,
}

/// `authorization:` in `http_config`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmAuthorization {
    /// The scheme; Alertmanager's default is `Bearer`.
    #[serde(rename = "type", default)]
    pub scheme: Option<Spanned<String>>,
    /// The credentials.
    #[serde(default)]
    pub credentials: Option<String>,
    /// A file holding the credentials.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
}

/// `tls_config:`; a CA file is what countywatch's clients take.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AmTlsConfig {
    /// Trust this CA (PEM) besides the public roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (refused).
    pub cert_file: Option<Spanned<String>>,
    /// Client key (refused with `cert_file`).
    pub key_file: Option<Spanned<String>>,
    /// Expected server name (refused: the URL's host is checked).
    pub server_name: Option<Spanned<String>>,
    /// Skipping verification is refused.
    pub insecure_skip_verify: Option<Spanned<bool>>,
    /// Oldest TLS version (countywatch allows TLS 1.2 and 1.3 only).
    pub min_version: Option<IgnoredAny>,
}

/// A receiver in Alertmanager's form.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmReceiver {
    /// Its name, referenced by routes.
    pub name: Spanned<String>,
    /// Email.
    #[serde(default)]
    pub email_configs: Vec<AmEmailConfig>,
    /// Webhooks.
    #[serde(default)]
    pub webhook_configs: Vec<AmWebhookConfig>,
    /// Refused: Discord.
    pub discord_configs: Option<Spanned<IgnoredAny>>,
    /// Refused: PagerDuty.
    pub pagerduty_configs: Option<Spanned<IgnoredAny>>,
    /// Refused: Slack.
    pub slack_configs: Option<Spanned<IgnoredAny>>,
    /// Refused: OpsGenie.
    pub opsgenie_configs: Option<Spanned<IgnoredAny>>,
    /// Refused: WeChat (the application API, not a group robot).
    pub wechat_configs: Option<Spanned<IgnoredAny>>,
    /// Refused: Pushover.
    pub pushover_configs: Option<Spanned<IgnoredAny>>,
    /// Refused: VictorOps.
    pub victorops_configs: Option<Spanned<IgnoredAny>>,
    /// Refused: Amazon SNS.
    pub sns_configs: Option<Spanned<IgnoredAny>>,
    /// Refused: Telegram.
    pub telegram_configs: Option<Spanned<IgnoredAny>>,
    /// Refused: Webex.
    pub webex_configs: Option<Spanned<IgnoredAny>>,
}

/// An email integration in Alertmanager's form.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmEmailConfig {
    /// Recipients, comma-separated in one string.
    pub to: Spanned<String>,
    /// Sender; `global.smtp_from` when unset.
    #[serde(default)]
    pub from: Option<String>,
    /// EHLO name; `global.smtp_hello` when unset.
    #[serde(default)]
    pub hello: Option<String>,
    /// SMTP server; `global.smtp_smarthost` when unset.
    #[serde(default)]
    pub smarthost: Option<Spanned<String>>,
    /// SMTP AUTH user.
    #[serde(default)]
    pub auth_username: Option<String>,
    /// SMTP AUTH password.
    #[serde(default)]
    pub auth_password: Option<String>,
    /// File holding the SMTP AUTH password.
    #[serde(default)]
    pub auth_password_file: Option<PathBuf>,
    /// Refused: CRAM-MD5.
    #[serde(default)]
    pub auth_secret: Option<Spanned<String>>,
    /// Refused: PLAIN identity.
    #[serde(default)]
    pub auth_identity: Option<Spanned<String>>,
    /// Whether STARTTLS is required; `global.smtp_require_tls` when unset.
    #[serde(default)]
    pub require_tls: Option<bool>,
    /// TLS settings.
    #[serde(default)]
    pub tls_config: Option<AmTlsConfig>,
    /// Refused: Go-template headers.
    #[serde(default)]
    pub headers: Option<Spanned<BTreeMap<String, String>>>,
    /// Refused: a Go-template HTML body.
    #[serde(default)]
    pub html: Option<Spanned<String>>,
    /// Refused: a Go-template text body.
    #[serde(default)]
    pub text: Option<Spanned<String>>,
    /// Also notify when alerts resolve (Alertmanager's default: no).
    #[serde(default)]
    pub send_resolved: bool,
}

/// A webhook in Alertmanager's form.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmWebhookConfig {
    /// Where to POST.
    pub url: Spanned<String>,
    /// HTTP settings; `global.http_config` when unset.
    #[serde(default)]
    pub http_config: Option<AmHttpConfig>,
    /// Also notify when alerts resolve (Alertmanager's default: yes).
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Most alerts per payload (0: all).
    #[serde(default)]
    pub max_alerts: usize,
}

fn yes() -> bool {
    true
}

/// What an `alertmanager.yml` becomes in countywatch's terms.
#[derive(Clone, Debug)]
pub struct Converted {
    /// The routing tree.
    pub route: RouteConfig,
    /// Receivers in countywatch's form.
    pub receivers: Vec<ReceiverConfig>,
    /// Inhibit rules.
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    /// `time_intervals` and `mute_time_intervals` together.
    pub time_intervals: Vec<TimeIntervalConfig>,
    /// `global.resolve_timeout`.
    pub resolve_timeout: PromDuration,
    /// The file's text, served as `config.original` by `/api/v2/status`.
    pub text: String,
}

/// Reads the file: a shape error stops at once; everything countywatch
/// cannot do as Alertmanager would is reported, all together, against the
/// file's own lines and columns.
pub fn load(path: &Path) -> Result<Converted, Problems> {
    let file: AlertmanagerFile = countywatch_config::config_file::load(path)?;
    // Read once more for `/api/v2/status`; the size was bounded just above.
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut problems = Problems::new(path);
    if file
        .route
        .as_ref()
        .is_some_and(|route| route.receiver.is_none())
    {
        problems.general("root route must specify a default receiver");
    }
    let converted = file.convert(&mut problems, text, path.parent().unwrap_or(Path::new(".")));
    if !problems.is_empty()
        && let Some(converted) = &converted
    {
        // Report the routing problems too, so that one check-config run
        // lists everything wrong with the file.
        let notify = crate::config::NotifyConfig {
            route: converted.route.clone(),
            receivers: converted.receivers.clone(),
            inhibit_rules: converted.inhibit_rules.clone(),
            time_intervals: converted.time_intervals.clone(),
            ..Default::default()
        };
        notify.validate_alerting(&mut problems);
    }
    problems.into_result()?;
    converted.ok_or_else(|| {
        let mut problems = Problems::new(path);
        problems.general("no routes provided");
        problems
    })
}

/// The notification configuration as Alertmanager configuration text, for
/// `config.original` in `GET /api/v2/status`: the `alertmanager.yml` as
/// loaded with every secret shown as `<secret>` (`redaction.rs`), or else the collector's route tree, receiver names, inhibit
/// rules and time intervals written in Alertmanager's form (as JSON, which
/// is YAML). Receivers' settings are left out: they hold secrets, and
/// amtool needs only their names.
pub fn original_text(config: &crate::config::NotifyConfig) -> String {
    if let Some(text) = &config.alertmanager_text {
        return crate::redaction::redacted(text);
    }
    let receivers: Vec<serde_json::Value> = config
        .receivers
        .iter()
        .map(|receiver| serde_json::json!({"name": receiver.name.value}))
        .collect();
    let inhibit_rules: Vec<serde_json::Value> = config
        .inhibit_rules
        .iter()
        .map(|rule| {
            serde_json::json!({
                "source_matchers": rule.source_matchers().map(|m| m.to_string()).collect::<Vec<_>>(),
                "target_matchers": rule.target_matchers().map(|m| m.to_string()).collect::<Vec<_>>(),
                "equal": rule.equal,
            })
        })
        .collect();
    let time_intervals: Vec<serde_json::Value> = config
        .time_intervals
        .iter()
        .map(|interval| {
            let specs: Vec<serde_json::Value> = interval
                .time_intervals
                .iter()
                .map(|spec| {
                    let values = |list: &[Spanned<String>]| -> Vec<String> {
                        list.iter().map(|value| value.value.clone()).collect()
                    };
                    let mut object = serde_json::json!({
                        "times": spec.times.iter().map(|range| serde_json::json!({
                            "start_time": range.start_time.value,
                            "end_time": range.end_time.value,
                        })).collect::<Vec<_>>(),
                        "weekdays": values(&spec.weekdays),
                        "days_of_month": values(&spec.days_of_month),
                        "months": values(&spec.months),
                        "years": values(&spec.years),
                    });
                    if let Some(location) = &spec.location {
                        object["location"] = serde_json::json!(location.value);
                    }
                    object
                })
                .collect();
            serde_json::json!({"name": interval.name.value, "time_intervals": specs})
        })
        .collect();
    let mut document = serde_json::json!({
        "global": {"resolve_timeout": config.resolve_timeout.to_string()},
        "route": route_json(&config.route),
        "receivers": receivers,
        "inhibit_rules": inhibit_rules,
        "time_intervals": time_intervals,
    });
    if config.route.receiver.is_none() {
        // Alertmanager needs a root receiver; an unconfigured collector
        // notifies nobody, which an empty receiver says.
        document["route"]["receiver"] = serde_json::json!("countywatch-none");
        document["receivers"] = serde_json::json!([{"name": "countywatch-none"}]);
    }
    serde_json::to_string_pretty(&document).unwrap_or_default()
}

fn route_json(route: &RouteConfig) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    if let Some(receiver) = &route.receiver {
        object.insert("receiver".into(), receiver.value.clone().into());
    }
    if let Some(group_by) = &route.group_by {
        object.insert("group_by".into(), group_by.clone().into());
    }
    for (key, value) in [
        ("group_wait", route.group_wait),
        ("group_interval", route.group_interval),
        ("repeat_interval", route.repeat_interval),
    ] {
        if let Some(value) = value {
            object.insert(key.into(), value.to_string().into());
        }
    }
    let matchers: Vec<String> = route
        .all_matchers()
        .iter()
        .map(ToString::to_string)
        .collect();
    if !matchers.is_empty() {
        object.insert("matchers".into(), matchers.into());
    }
    if route.continue_matching {
        object.insert("continue".into(), true.into());
    }
    for (key, names) in [
        ("mute_time_intervals", &route.mute_time_intervals),
        ("active_time_intervals", &route.active_time_intervals),
    ] {
        if !names.is_empty() {
            let names: Vec<String> = names.iter().map(|name| name.value.clone()).collect();
            object.insert(key.into(), names.into());
        }
    }
    if !route.routes.is_empty() {
        let children: Vec<serde_json::Value> = route.routes.iter().map(route_json).collect();
        object.insert("routes".into(), children.into());
    }
    serde_json::Value::Object(object)
}

impl AlertmanagerFile {
    /// Converts to countywatch's configuration, reporting what it lacks;
    /// `templates:` paths are read from `base`, the file's directory.
    pub fn convert(self, problems: &mut Problems, text: String, base: &Path) -> Option<Converted> {
        let mut templates = TemplateSet::default();
        for pattern in &self.templates {
            if let Err(error) = load_templates(&mut templates, base, &pattern.value) {
                problems.at(pattern, format!("templates: {error}"));
            }
        }
        for (value, key) in [
            (&self.global.smtp_auth_secret, "smtp_auth_secret"),
            (&self.global.smtp_auth_identity, "smtp_auth_identity"),
        ] {
            if let Some(value) = value {
                problems.at(
                    value,
                    format!("global.{key}: countywatch authenticates with PLAIN or LOGIN and a password only; use smtp_auth_username and smtp_auth_password(_file)"),
                );
            }
        }
        let mut receivers = Vec::with_capacity(self.receivers.len());
        for receiver in &self.receivers {
            receivers.push(convert_receiver(
                receiver,
                &self.global,
                &templates,
                problems,
            ));
        }
        let mut time_intervals = self.time_intervals;
        time_intervals.extend(self.mute_time_intervals);
        Some(Converted {
            route: self.route?,
            receivers,
            inhibit_rules: self.inhibit_rules,
            time_intervals,
            resolve_timeout: self.global.resolve_timeout,
            text,
        })
    }
}

/// Integrations countywatch lacks and what to use instead.
const MISSING: &[(&str, &str)] = &[
    ("discord_configs", "Discord"),
    ("pagerduty_configs", "PagerDuty"),
    ("slack_configs", "Slack"),
    ("opsgenie_configs", "OpsGenie"),
    ("wechat_configs", "WeChat (application API)"),
    ("pushover_configs", "Pushover"),
    ("victorops_configs", "VictorOps"),
    ("sns_configs", "Amazon SNS"),
    ("telegram_configs", "Telegram"),
    ("webex_configs", "Webex"),
];

/// Why a `templates:` pattern's files could not be added.
#[derive(Debug, thiserror::Error)]
pub enum TemplateFilesError {
    /// The directory of a wildcard pattern cannot be listed.
    #[error("cannot list {}: {source}", directory.display())]
    List {
        /// The directory.
        directory: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file cannot be read.
    #[error("cannot read {}: {source}", file.display())]
    Read {
        /// The file.
        file: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file's templates do not parse.
    #[error(transparent)]
    Template(#[from] crate::go_template::TemplateError),
}

/// Adds the `define`s of every file `pattern` names (a `*` or `?` in the
/// file name matches as in a shell; a relative path is read from `base`).
/// A pattern matching nothing adds nothing, as in Alertmanager.
fn load_templates(
    set: &mut TemplateSet,
    base: &Path,
    pattern: &str,
) -> Result<(), TemplateFilesError> {
    let path = base.join(pattern);
    let directory = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut files: Vec<std::path::PathBuf> = if name.contains(['*', '?']) {
        let entries = std::fs::read_dir(&directory)
            .map_err(|source| TemplateFilesError::List { directory, source })?;
        entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|file| {
                file.file_name()
                    .is_some_and(|found| wildcard_match(&name, &found.to_string_lossy()))
            })
            .collect()
    } else {
        vec![path]
    };
    files.sort();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(source) => return Err(TemplateFilesError::Read { file, source }),
        };
        set.add_file(&file.display().to_string(), &text)?;
    }
    Ok(())
}

/// A shell-style match of one file name: `*` any run, `?` one character.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    // matched[j]: whether the pattern so far matches name[..j].
    let mut matched = vec![false; name.len() + 1];
    matched[0] = true;
    for symbol in pattern {
        let mut next = vec![false; name.len() + 1];
        for j in 0..=name.len() {
            next[j] = match symbol {
                '*' => matched[j] || (j > 0 && next[j - 1]),
                '?' => j > 0 && matched[j - 1],
                literal => j > 0 && matched[j - 1] && name[j - 1] == literal,
            };
        }
        matched = next;
    }
    matched[name.len()]
}

fn convert_receiver(
    receiver: &AmReceiver,
    global: &GlobalConfig,
    templates: &TemplateSet,
    problems: &mut Problems,
) -> ReceiverConfig {
    let unsupported = [
        &receiver.discord_configs,
        &receiver.pagerduty_configs,
        &receiver.slack_configs,
        &receiver.opsgenie_configs,
        &receiver.wechat_configs,
        &receiver.pushover_configs,
        &receiver.victorops_configs,
        &receiver.sns_configs,
        &receiver.telegram_configs,
        &receiver.webex_configs,
    ];
    for (spanned, (key, product)) in unsupported.into_iter().zip(MISSING) {
        if let Some(spanned) = spanned {
            problems.at(
                spanned,
                format!(
                    "receiver {:?}: {key}: countywatch has no {product} integration (county networks usually cannot reach it); use email_configs or webhook_configs here, or dingtalk_configs, wecom_configs or feishu_configs in the collector's notify.receivers",
                    receiver.name.value
                ),
            );
        }
    }
    // The keys Alertmanager has; a receiver kind of countywatch's own is
    // left empty, whatever the table of kinds holds.
    ReceiverConfig {
        email_configs: receiver
            .email_configs
            .iter()
            .filter_map(|email| convert_email(email, global, templates, problems))
            .collect(),
        webhook_configs: receiver
            .webhook_configs
            .iter()
            .map(|webhook| convert_webhook(webhook, global, problems))
            .collect(),
        ..ReceiverConfig::named(receiver.name.clone())
    }
}

fn convert_email(
    email: &AmEmailConfig,
    global: &GlobalConfig,
    templates: &TemplateSet,
    problems: &mut Problems,
) -> Option<EmailConfig> {
    for (value, key) in [
        (&email.auth_secret, "auth_secret"),
        (&email.auth_identity, "auth_identity"),
    ] {
        if let Some(value) = value {
            problems.at(
                value,
                format!("email_configs.{key}: countywatch authenticates with PLAIN or LOGIN and a password only"),
            );
        }
    }
    let go = email_templates(email, templates, problems);
    let Some(smarthost) = email
        .smarthost
        .clone()
        .or_else(|| global.smtp_smarthost.clone())
    else {
        problems.at(
            &email.to,
            "email_configs: no smarthost and no global smtp_smarthost set",
        );
        return None;
    };
    let Some(from) = email.from.clone().or_else(|| global.smtp_from.clone()) else {
        problems.at(
            &email.to,
            "email_configs: no from and no global smtp_from set",
        );
        return None;
    };
    let require_tls = email.require_tls.unwrap_or(global.smtp_require_tls);
    // Alertmanager speaks TLS from the first byte on port 465 and STARTTLS
    // elsewhere; without require_tls it would use STARTTLS when offered,
    // which countywatch does not do: it then sends in clear.
    let tls = if smarthost.value.ends_with(":465") {
        SmtpTls::Implicit
    } else if require_tls {
        SmtpTls::Starttls
    } else {
        SmtpTls::None
    };
    let ca_file = email
        .tls_config
        .as_ref()
        .and_then(|tls| tls_ca_file(tls, problems));
    Some(EmailConfig {
        to: email
            .to
            .value
            .split(',')
            .map(str::trim)
            .filter(|address| !address.is_empty())
            .map(str::to_string)
            .collect(),
        cc: Vec::new(),
        from,
        smarthost,
        tls,
        ca_file,
        auth_username: email
            .auth_username
            .clone()
            .or_else(|| global.smtp_auth_username.clone()),
        auth_password: email
            .auth_password
            .clone()
            .or_else(|| global.smtp_auth_password.clone()),
        auth_password_file: email
            .auth_password_file
            .clone()
            .or_else(|| global.smtp_auth_password_file.clone()),
        hello: email.hello.clone().or_else(|| global.smtp_hello.clone()),
        send_resolved: email.send_resolved,
        timeout: PromDuration(Duration::from_secs(30)),
        language: None,
        templates: TemplateOverrides {
            go,
            ..TemplateOverrides::default()
        },
    })
}

/// The email's Go-template fields (`html`, `text`, `headers.Subject`)
/// with the `templates:` files' `define`s; `None` when it sets none (the
/// collector's default message is used, as for the defaults Alertmanager
/// would use).
fn email_templates(
    email: &AmEmailConfig,
    templates: &TemplateSet,
    problems: &mut Problems,
) -> Option<std::sync::Arc<TemplateSet>> {
    let mut set = templates.clone();
    let mut any = false;
    for (value, name, key) in [(&email.html, "html", "html"), (&email.text, "text", "text")] {
        if let Some(value) = value {
            any = true;
            let field = format!("email_configs.{key}");
            if let Err(error) = set.add_field(name, &field, &value.value) {
                problems.at(value, format!("{field}: {error}"));
            }
        }
    }
    if let Some(headers) = &email.headers {
        for (header, value) in &headers.value {
            if header.eq_ignore_ascii_case("subject") {
                any = true;
                if let Err(error) = set.add_field("subject", "email_configs.headers.Subject", value)
                {
                    problems.at(headers, format!("email_configs.headers.Subject: {error}"));
                }
            } else {
                problems.at(
                    headers,
                    format!("email_configs.headers.{header}: countywatch writes From, To and the other headers itself; only Subject may be set"),
                );
            }
        }
    }
    if !any {
        return None;
    }
    if let Err(error) = set.check_calls() {
        let message = format!("email_configs: {error}");
        if let Some(value) = email.html.as_ref().or(email.text.as_ref()) {
            problems.at(value, message);
        } else if let Some(headers) = &email.headers {
            problems.at(headers, message);
        } else {
            problems.general(message);
        }
    }
    Some(std::sync::Arc::new(set))
}

fn convert_webhook(
    webhook: &AmWebhookConfig,
    global: &GlobalConfig,
    problems: &mut Problems,
) -> WebhookConfig {
    let http = webhook
        .http_config
        .as_ref()
        .or(global.http_config.as_ref())
        .cloned()
        .unwrap_or_default();
    let (bearer_token, bearer_token_file) = http_credentials(&http, problems);
    WebhookConfig {
        url: webhook.url.clone(),
        bearer_token,
        bearer_token_file,
        tls_config: HttpTlsConfig {
            ca_file: http
                .tls_config
                .as_ref()
                .and_then(|tls| tls_ca_file(tls, problems)),
        },
        max_alerts: webhook.max_alerts,
        send_resolved: webhook.send_resolved,
        timeout: PromDuration(Duration::from_secs(30)),
    }
}

/// The bearer token (inline or file) of an `http_config`, refusing what
/// countywatch's HTTP client cannot do.
fn http_credentials(
    http: &AmHttpConfig,
    problems: &mut Problems,
) -> (Option<String>, Option<PathBuf>) {
    let refuse = |problems: &mut Problems, at: &Spanned<IgnoredAny>, what: &str| {
        problems.at(
            at,
            format!("http_config.{what}: not supported by countywatch's HTTP client; use a bearer token (authorization: {{credentials: ...}}) and a CA file"),
        );
    };
    if let Some(at) = &http.basic_auth {
        refuse(problems, at, "basic_auth");
    }
    if let Some(at) = &http.oauth2 {
        refuse(problems, at, "oauth2");
    }
    if let Some(at) = &http.proxy_connect_header {
        refuse(problems, at, "proxy_connect_header");
    }
    if let Some(proxy) = &http.proxy_url {
        problems.at(
            proxy,
            "http_config.proxy_url: countywatch connects directly; proxies are not supported",
        );
    }
    if let Some(flag) = &http.proxy_from_environment
        && flag.value
    {
        problems.at(
            flag,
            "http_config.proxy_from_environment: countywatch connects directly; proxies are not supported",
        );
    }
    if let Some(flag) = &http.follow_redirects
        && flag.value
    {
        problems.at(
            flag,
            "http_config.follow_redirects: countywatch never follows redirects; point the URL at the final address and set follow_redirects: false",
        );
    }
    match &http.authorization {
        Some(authorization) => {
            if let Some(scheme) = &authorization.scheme
                && scheme.value != "Bearer"
            {
                problems.at(
                    scheme,
                    format!(
                        "http_config.authorization.type {:?}: countywatch sends Bearer credentials only",
                        scheme.value
                    ),
                );
            }
            (
                authorization.credentials.clone(),
                authorization.credentials_file.clone(),
            )
        }
        None => (http.bearer_token.clone(), http.bearer_token_file.clone()),
    }
}

/// The CA file of a `tls_config`, refusing the rest.
fn tls_ca_file(tls: &AmTlsConfig, problems: &mut Problems) -> Option<PathBuf> {
    for (value, key) in [
        (&tls.cert_file, "cert_file"),
        (&tls.key_file, "key_file"),
        (&tls.server_name, "server_name"),
    ] {
        if let Some(value) = value {
            problems.at(
                value,
                format!("tls_config.{key}: not supported by countywatch; only ca_file is"),
            );
        }
    }
    if let Some(flag) = &tls.insecure_skip_verify
        && flag.value
    {
        problems.at(
            flag,
            "tls_config.insecure_skip_verify: countywatch always verifies certificates; give the server's CA in ca_file",
        );
    }
    tls.ca_file.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let directory =
            std::env::temp_dir().join(format!("countywatch-amfile-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let path = directory.join("alertmanager.yml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn problems(name: &str, text: &str) -> String {
        match load(&write(name, text)) {
            Ok(_) => String::new(),
            Err(problems) => problems.to_string(),
        }
    }

    #[test]
    fn the_shipped_differential_files_load_unchanged() {
        let directory =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/testdata/alertmanager");
        for name in [
            "simple.yml",
            "route_test.yml",
            "matchers_tree.yml",
            "kube_prometheus.yml",
        ] {
            let path = directory.join(name);
            let converted = load(&path).unwrap_or_else(|problems| panic!("{problems}"));
            let notify = crate::config::NotifyConfig {
                route: converted.route,
                receivers: converted.receivers,
                inhibit_rules: converted.inhibit_rules,
                time_intervals: converted.time_intervals,
                ..Default::default()
            };
            let mut problems = Problems::new(&path);
            notify.validate(&mut problems);
            assert!(problems.is_empty(), "{name}: {problems}");
        }
    }

    #[test]
    fn global_defaults_fill_email_and_webhook_settings() {
        let converted = load(&write(
            "global",
            "global:\n  resolve_timeout: 1m\n  smtp_smarthost: mail.test:465\n  smtp_from: am@county.test\n  smtp_auth_username: u\n  smtp_auth_password: p\n  http_config:\n    bearer_token: tok\n    tls_config: {ca_file: /etc/ca.pem}\nroute: {receiver: r}\nreceivers:\n- name: r\n  email_configs:\n  - to: 'a@county.test, b@county.test'\n  webhook_configs:\n  - url: http://127.0.0.1:1/x\n    max_alerts: 3\nmute_time_intervals:\n- name: night\n  time_intervals: [{times: [{start_time: '00:00', end_time: '06:00'}]}]\n",
        ))
        .unwrap();
        assert_eq!(converted.resolve_timeout.get(), Duration::from_secs(60));
        let email = &converted.receivers[0].email_configs[0];
        assert_eq!(email.to, ["a@county.test", "b@county.test"]);
        assert_eq!(email.from, "am@county.test");
        assert_eq!(email.tls, SmtpTls::Implicit);
        assert_eq!(email.auth_password.as_deref(), Some("p"));
        assert!(!email.send_resolved);
        let webhook = &converted.receivers[0].webhook_configs[0];
        assert_eq!(webhook.bearer_token.as_deref(), Some("tok"));
        assert_eq!(
            webhook.tls_config.ca_file,
            Some(PathBuf::from("/etc/ca.pem"))
        );
        assert_eq!(webhook.max_alerts, 3);
        assert!(webhook.send_resolved);
        assert_eq!(converted.time_intervals[0].name.value, "night");
    }

    #[test]
    fn templates_files_serve_the_email_fields_and_their_faults_are_positioned() {
        let path = write(
            "templates",
            "route: {receiver: ops}\ntemplates: ['*.tmpl']\nreceivers:\n- name: ops\n  email_configs:\n  - to: ops@county.test\n    from: am@county.test\n    smarthost: 127.0.0.1:25\n    headers: {Subject: '{{ template \"county.subject\" . }}'}\n    html: '{{ template \"county.html\" . }}'\n",
        );
        let directory = path.parent().unwrap();
        std::fs::write(
            directory.join("county.tmpl"),
            "{{ define \"county.subject\" }}[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}{{ end }}\n{{ define \"county.html\" }}{{ range .Alerts }}<p>{{ .Labels.instance }}</p>{{ end }}{{ end }}\n",
        )
        .unwrap();
        let converted = load(&path).unwrap();
        let go = converted.receivers[0].email_configs[0]
            .templates
            .go
            .clone()
            .unwrap();
        assert!(go.has("subject") && go.has("html") && !go.has("text"));
        // A function the subset lacks: the yml's line, then the template
        // file's own line.
        std::fs::write(
            directory.join("county.tmpl"),
            "{{ define \"county.subject\" }}\n{{ .Alerts | humanize }}{{ end }}\n",
        )
        .unwrap();
        let found = match load(&path) {
            Ok(_) => String::new(),
            Err(problems) => problems.to_string(),
        };
        assert!(
            found.contains("alertmanager.yml:2:")
                && found.contains("county.tmpl:2: function \"humanize\" is not supported"),
            "{found}"
        );
        std::fs::remove_file(directory.join("county.tmpl")).unwrap();
        let found = match load(&path) {
            Ok(_) => String::new(),
            Err(problems) => problems.to_string(),
        };
        assert!(
            found.contains("template \"county.html\" is not defined"),
            "{found}"
        );
        assert!(wildcard_match("*.tmpl", "a.tmpl") && !wildcard_match("*.tmpl", "a.tmpl~"));
        assert!(wildcard_match("t?.tmpl", "t1.tmpl") && !wildcard_match("t?.tmpl", "t12.tmpl"));
    }

    #[test]
    fn what_countywatch_lacks_is_refused_at_its_position() {
        let found = problems(
            "slack",
            "route: {receiver: r}\nreceivers:\n- name: r\n  slack_configs:\n  - api_url: http://x/\n  webhook_configs:\n  - url: http://127.0.0.1:1/\n    http_config:\n      basic_auth: {username: a, password: b}\ntemplates: ['/nonexistent-countywatch/*.tmpl']\n",
        );
        let lines: Vec<&str> = found.lines().collect();
        assert!(
            lines.iter().any(|line| line.contains(":5:")
                && line.contains("no Slack integration")
                && line.contains("webhook_configs")),
            "{found}"
        );
        assert!(
            lines
                .iter()
                .any(|line| line.contains(":9:") && line.contains("basic_auth")),
            "{found}"
        );
        assert!(
            lines
                .iter()
                .any(|line| line.contains(":10:") && line.contains("templates: cannot list")),
            "{found}"
        );
        assert!(problems("noroute", "receivers: [{name: r}]\n").contains("no routes provided"));
        assert!(
            problems("noreceiver", "route: {group_by: [a]}\n")
                .contains("root route must specify a default receiver")
        );
    }

    #[test]
    fn both_forms_together_are_refused() {
        let path = write("both", "route: {receiver: r}\nreceivers: [{name: r}]\n");
        let mut notify: crate::config::NotifyConfig = countywatch_config::config_file::parse(
            Path::new("c.yaml"),
            &format!(
                "alertmanager_config: {}\nroute: {{receiver: x}}\nreceivers: [{{name: x}}]\n",
                path.display()
            ),
        )
        .unwrap();
        let error = notify
            .apply_alertmanager_file(Path::new("c.yaml"))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("c.yaml:1:"), "{error}");
        assert!(error.contains("keep one of the two forms"), "{error}");
        notify.route = RouteConfig::default();
        notify.receivers.clear();
        notify.apply_alertmanager_file(Path::new("c.yaml")).unwrap();
        assert_eq!(notify.receivers[0].name.value, "r");
    }

    #[test]
    fn the_collectors_own_form_is_served_as_an_equivalent_alertmanager_file() {
        let notify: crate::config::NotifyConfig = countywatch_config::config_file::parse(
            Path::new("c.yaml"),
            "route:\n  receiver: ops\n  group_by: [alertname]\n  group_wait: 10s\n  routes:\n  - matchers: ['team=~\"db|\\\\d\"', 'env!=test']\n    receiver: dba\n    continue: true\n    mute_time_intervals: [nights]\n  - match: {severity: critical}\n    receiver: ops\nreceivers:\n- name: ops\n  webhook_configs: [{url: 'http://127.0.0.1:1/', bearer_token: secret}]\n- name: dba\ninhibit_rules:\n- source_match: {severity: critical}\n  target_matchers: [severity=warning]\n  equal: [instance]\ntime_intervals:\n- name: nights\n  time_intervals: [{times: [{start_time: '22:00', end_time: '24:00'}], location: Asia/Shanghai}]\n",
        )
        .unwrap();
        let text = original_text(&notify);
        assert!(!text.contains("secret"), "{text}");
        let path = write("original", &text);
        let converted = load(&path).unwrap_or_else(|problems| panic!("{problems}\n{text}"));
        let show =
            |route: &RouteConfig| crate::cli::routes_show(&crate::route_tree::Route::build(route));
        assert_eq!(show(&converted.route), show(&notify.route));
        assert_eq!(converted.inhibit_rules.len(), 1);
        assert_eq!(converted.time_intervals[0].name.value, "nights");
    }
}
