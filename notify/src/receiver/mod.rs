//! Receivers: one file per integration kind, all behind [`Integration`].
//! A receiver in the config is a name with any number of integrations;
//! each integration has its own outbox queue, so a hanging one delays only
//! itself.

pub mod alertmanager;
pub mod chat_bot;
pub mod dingtalk;
pub mod email;
pub mod feishu;
pub mod webhook;
pub mod wecom;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use crate::config::{NotifyConfig, ReceiverConfig};
use crate::notification::Notification;
use crate::receiver::chat_bot::ChatBot;
use crate::template::TemplateDefaults;
use countywatch_net::send_error::SendError;

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
    #[error("{0}")]
    Template(String),
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
pub fn build(config: &NotifyConfig) -> anyhow::Result<Receivers> {
    let mut receivers = Receivers::new();
    for receiver in &config.receivers {
        receivers.insert(
            receiver.name.value.clone(),
            build_receiver(
                receiver,
                &TemplateDefaults {
                    language: config.language.unwrap_or(config.display.language),
                    display: config.display.clone(),
                },
                &config.external_url,
            )?,
        );
    }
    Ok(receivers)
}

fn build_receiver(
    receiver: &ReceiverConfig,
    defaults: &TemplateDefaults,
    external_url: &str,
) -> anyhow::Result<Vec<Box<dyn Integration>>> {
    let name = &receiver.name.value;
    let context = |kind: &str, index: usize| format!("receiver {name:?}: {kind}_configs[{index}]");
    let mut integrations: Vec<Box<dyn Integration>> = Vec::new();
    for (index, config) in receiver.email_configs.iter().enumerate() {
        integrations.push(Box::new(email::Email::new(config, defaults).map_err(
            |error| anyhow::anyhow!("{}: {error}", context("email", index)),
        )?));
    }
    for (index, config) in receiver.webhook_configs.iter().enumerate() {
        integrations.push(Box::new(
            webhook::Webhook::new(config, external_url)
                .map_err(|error| anyhow::anyhow!("{}: {error}", context("webhook", index)))?,
        ));
    }
    for (index, config) in receiver.dingtalk_configs.iter().enumerate() {
        integrations.push(Box::new(
            ChatBot::<dingtalk::DingTalk>::new(config, defaults)
                .map_err(|error| anyhow::anyhow!("{}: {error}", context("dingtalk", index)))?,
        ));
    }
    for (index, config) in receiver.wecom_configs.iter().enumerate() {
        integrations.push(Box::new(
            ChatBot::<wecom::WeCom>::new(config, defaults)
                .map_err(|error| anyhow::anyhow!("{}: {error}", context("wecom", index)))?,
        ));
    }
    for (index, config) in receiver.feishu_configs.iter().enumerate() {
        integrations.push(Box::new(
            ChatBot::<feishu::Feishu>::new(config, defaults)
                .map_err(|error| anyhow::anyhow!("{}: {error}", context("feishu", index)))?,
        ));
    }
    for (index, config) in receiver.alertmanager_configs.iter().enumerate() {
        integrations.push(Box::new(alertmanager::Alertmanager::new(config).map_err(
            |error| anyhow::anyhow!("{}: {error}", context("alertmanager", index)),
        )?));
    }
    Ok(integrations)
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
