//! Receivers: one file per integration kind, all behind [`Integration`].
//! A receiver in the config is a name with any number of integrations;
//! each integration has its own outbox queue, so a hanging one delays only
//! itself.
//!
//! Each kind's file owns its config struct and implements [`Kind`]; the
//! `receiver_kinds!` table below is the one place that lists them: it
//! declares their modules, gives [`ReceiverConfig`] its `NAME_configs`
//! keys, and building and
//! checking receivers (also those read from an `alertmanager.yml`) go
//! through it.

pub mod chat_bot;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use countywatch_config::config_file::{Problems, Spanned};
use countywatch_config::duration::PromDuration;
use countywatch_net::send_error::SendError;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::notification::Notification;
use crate::receiver::chat_bot::ChatBot;
use crate::template::TemplateDefaults;

/// One kind of integration, as its file declares it: the settings under
/// its `NAME_configs` key, how they are checked, and how an integration is
/// built from them.
pub trait Kind: Integration + Sized + 'static {
    /// The settings of one integration, one entry of `NAME_configs`.
    type Config: Clone + Debug + DeserializeOwned;

    /// Builds the integration (reads secret and template files, builds TLS
    /// configurations).
    fn build(config: &Self::Config, context: &BuildContext<'_>) -> Result<Self, BuildError>;

    /// Adds a problem, at its position, for everything wrong in `config`
    /// that a running collector would otherwise find only when it sends.
    fn validate(config: &Self::Config, problems: &mut Problems);
}

/// What building an integration needs besides its own settings.
pub struct BuildContext<'a> {
    /// The default language and display settings of templates.
    pub defaults: &'a TemplateDefaults,
    /// The collector's base URL, for links.
    pub external_url: &'a str,
}

/// The table of integration kinds: each line is a `NAME_configs` key of a
/// receiver, the module of its kind and the [`Kind`] its entries build.
/// Generates the modules, [`ReceiverConfig`] and the loops over its keys.
macro_rules! receiver_kinds {
    ($($(#[doc = $doc:literal])* $key:ident in $module:ident: $kind:ty,)*) => {
        $(pub mod $module;)*

        /// A named receiver with any number of integrations.
        #[derive(Clone, Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct ReceiverConfig {
            /// Its name, referenced by routes.
            pub name: Spanned<String>,
            $(
                $(#[doc = $doc])*
                #[serde(default)]
                pub $key: Vec<<$kind as Kind>::Config>,
            )*
        }

        impl ReceiverConfig {
            /// Every `NAME_configs` key, in table order.
            pub const KEYS: &'static [&'static str] = &[$(stringify!($key)),*];

            /// A receiver named `name` with no integrations.
            pub fn named(name: Spanned<String>) -> ReceiverConfig {
                ReceiverConfig {
                    name,
                    $($key: Vec::new(),)*
                }
            }

            /// Adds the problems of every integration.
            pub fn validate(&self, problems: &mut Problems) {
                $(
                    for config in &self.$key {
                        <$kind as Kind>::validate(config, problems);
                    }
                )*
            }

            /// Builds every integration, in table order.
            fn build_integrations(
                &self,
                context: &BuildContext<'_>,
            ) -> anyhow::Result<Vec<Box<dyn Integration>>> {
                let mut integrations: Vec<Box<dyn Integration>> = Vec::new();
                $(build_each::<$kind>(&self.name.value, stringify!($key), &self.$key, context, &mut integrations)?;)*
                Ok(integrations)
            }
        }
    };
}

// The registration point: one line per kind of integration (adding one
// is its file and one line here).
receiver_kinds! {
    /// SMTP email.
    email_configs in email: email::Email,
    /// Generic webhooks with Alertmanager's payload (version 4).
    webhook_configs in webhook: webhook::Webhook,
    /// DingTalk group robots.
    dingtalk_configs in dingtalk: ChatBot<dingtalk::DingTalk>,
    /// WeCom (企业微信) group robots.
    wecom_configs in wecom: ChatBot<wecom::WeCom>,
    /// Feishu / Lark group robots.
    feishu_configs in feishu: ChatBot<feishu::Feishu>,
    /// Forwarding to an Alertmanager (or a cluster member) `/api/v2/alerts`.
    alertmanager_configs in alertmanager: alertmanager::Alertmanager,
}

/// Builds the integrations of one key of receiver `name`, naming the
/// failing entry (`receiver "ops": email_configs[1]: ...`).
fn build_each<K: Kind>(
    name: &str,
    key: &str,
    configs: &[K::Config],
    context: &BuildContext<'_>,
    integrations: &mut Vec<Box<dyn Integration>>,
) -> anyhow::Result<()> {
    for (index, config) in configs.iter().enumerate() {
        let integration = K::build(config, context)
            .map_err(|error| anyhow::anyhow!("receiver {name:?}: {key}[{index}]: {error}"))?;
        integrations.push(Box::new(integration));
    }
    Ok(())
}

/// The default bound on one delivery attempt.
pub fn default_timeout() -> PromDuration {
    PromDuration(Duration::from_secs(30))
}

/// `true`, for `#[serde(default = ...)]` of keys that default to on.
pub fn yes() -> bool {
    true
}

/// Adds a problem at `url` unless it is a usable `http(s)://` URL.
pub fn check_url(url: &Spanned<String>, problems: &mut Problems) {
    if let Err(message) = crate::http_client::Target::parse(&url.value) {
        problems.at(url, message.to_string());
    }
}

/// Why an integration cannot be built from its config: the operator must
/// fix the config or a file it names; no retry helps.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The URL is not a usable `http(s)://` URL.
    #[error(transparent)]
    Url(#[from] crate::http_client::TargetError),
    /// The TLS settings or the CA file cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::http_client::TlsConfigError),
    /// A secret file cannot be read.
    #[error(transparent)]
    Secret(#[from] countywatch_net::secret::SecretError),
    /// A template does not parse or its file cannot be read.
    #[error(transparent)]
    Template(#[from] crate::template::TemplateLoadError),
    /// The smarthost is not `HOST:PORT`.
    #[error("smarthost {0:?} is not HOST:PORT")]
    Smarthost(String),
    /// The email CA file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadCa {
        /// The configured `ca_file`.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The email CA file holds no usable certificate.
    #[error("invalid CA file {}: {source}", path.display())]
    InvalidCa {
        /// The configured `ca_file`.
        path: std::path::PathBuf,
        /// What lettre said.
        source: lettre::transport::smtp::Error,
    },
    /// lettre refused the email TLS settings.
    #[error("cannot configure TLS: {0}")]
    EmailTls(lettre::transport::smtp::Error),
    /// A `from`, `to` or `cc` address does not parse.
    #[error("invalid address {text:?}: {source}")]
    Address {
        /// The address as configured.
        text: String,
        /// What lettre said.
        source: lettre::address::AddressError,
    },
}

/// The future a delivery returns.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>>;

/// One integration: knows how to deliver a notification somewhere.
pub trait Integration: Send + Sync {
    /// The kind, for logs: `email`, `webhook`, ...
    fn kind(&self) -> &'static str;
    /// Whether resolved-only notifications are wanted.
    fn send_resolved(&self) -> bool;
    /// How often firing alerts are sent again whatever the route's
    /// `repeat_interval`: only forwarders to an Alertmanager, which
    /// resolve alerts that stop coming, as Prometheus resends them.
    fn resend_interval(&self) -> Option<std::time::Duration> {
        None
    }
    /// Delivers one notification; bounded by the integration's timeout.
    fn send<'a>(&'a self, notification: &'a Notification) -> SendFuture<'a>;
}

/// Every receiver's integrations, by receiver name, in config order.
pub type Receivers = BTreeMap<String, Vec<Box<dyn Integration>>>;

/// Builds every receiver's integrations (reads password, token and
/// template files, builds TLS configurations).
pub fn build(configs: &[ReceiverConfig], context: &BuildContext<'_>) -> anyhow::Result<Receivers> {
    let mut receivers = Receivers::new();
    for receiver in configs {
        receivers.insert(
            receiver.name.value.clone(),
            receiver.build_integrations(context)?,
        );
    }
    Ok(receivers)
}

/// HMAC-SHA256 (RFC 2104), which DingTalk and Feishu use to sign requests.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), message);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Percent-encodes for a URL query value (RFC 3986 unreserved kept).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Checks a chat bot's JSON answer: `errcode` (DingTalk, WeCom) or `code`
/// (Feishu) must be 0. Rate limits are retryable; other codes are not.
pub fn check_bot_answer(body: &[u8], rate_limit_codes: &[i64]) -> Result<(), SendError> {
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Err(SendError::Retryable(format!(
            "unreadable answer: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )));
    };
    let code = answer
        .get("errcode")
        .or_else(|| answer.get("code"))
        .or_else(|| answer.get("StatusCode"))
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0);
    if code == 0 {
        return Ok(());
    }
    let message = answer
        .get("errmsg")
        .or_else(|| answer.get("msg"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    let text = format!("the bot refused the message: code {code} {message}");
    if rate_limit_codes.contains(&code) {
        Err(SendError::Retryable(text))
    } else {
        Err(SendError::Permanent(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One entry of each kind in the table: a URL does for every kind but
    /// email.
    fn receiver_with_every_kind() -> String {
        let mut text = "receivers:\n- name: every\n".to_string();
        for key in ReceiverConfig::KEYS {
            let entry = match *key {
                "email_configs" => {
                    "{to: [ops@example.org], from: cw@example.org, smarthost: '127.0.0.1:25', tls: none}"
                }
                _ => "{url: 'http://127.0.0.1:9/'}",
            };
            text.push_str(&format!("  {key}:\n  - {entry}\n"));
        }
        text
    }

    #[test]
    fn every_kind_in_the_table_is_read_checked_and_built_from_its_key() {
        let path = std::path::Path::new("notify.yaml");
        let config: crate::config::NotifyConfig =
            countywatch_config::config_file::parse(path, &receiver_with_every_kind()).unwrap();
        let mut problems = Problems::new(path);
        config.receivers[0].validate(&mut problems);
        assert!(problems.is_empty(), "{problems}");
        let receivers = config.build_receivers().unwrap();
        let kinds: Vec<String> = receivers["every"]
            .iter()
            .map(|integration| format!("{}_configs", integration.kind()))
            .collect();
        assert_eq!(kinds, ReceiverConfig::KEYS);
        assert_eq!(
            ReceiverConfig::KEYS,
            [
                "email_configs",
                "webhook_configs",
                "dingtalk_configs",
                "wecom_configs",
                "feishu_configs",
                "alertmanager_configs"
            ]
        );
    }

    #[test]
    fn a_kinds_check_runs_for_its_key() {
        let text = receiver_with_every_kind().replace("http://127.0.0.1:9/", "ftp://x/");
        let path = std::path::Path::new("notify.yaml");
        let config: crate::config::NotifyConfig =
            countywatch_config::config_file::parse(path, &text).unwrap();
        let mut problems = Problems::new(path);
        config.receivers[0].validate(&mut problems);
        // Every kind but email has a URL, and each refuses it.
        assert_eq!(
            problems.problems.len(),
            ReceiverConfig::KEYS.len() - 1,
            "{problems}"
        );
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231 test case 2.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn bot_answers() {
        assert!(check_bot_answer(br#"{"errcode":0,"errmsg":"ok"}"#, &[]).is_ok());
        assert!(check_bot_answer(br#"{"code":0,"msg":"success"}"#, &[]).is_ok());
        assert!(
            check_bot_answer(br#"{"errcode":130101}"#, &[130101])
                .unwrap_err()
                .retryable()
        );
        assert!(
            !check_bot_answer(br#"{"errcode":310000,"errmsg":"sign not match"}"#, &[])
                .unwrap_err()
                .retryable()
        );
        assert_eq!(percent_encode("a+b/c="), "a%2Bb%2Fc%3D");
    }
}
