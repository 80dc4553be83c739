//! Feishu / Lark group robots: an interactive card with a markdown body,
//! and when a secret is set ("签名校验"), `timestamp` and `sign` in the body,
//! the signature being HMAC-SHA256 keyed with `timestamp\nsecret` over an
//! empty message, as Feishu documents. Code 11232 (rate limit) is retried.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::json;

use crate::notify::alert::now_ms;
use crate::notify::config::{BotConfig, Language};
use crate::notify::http_client::{self, Target};
use crate::notify::notification::Notification;
use crate::notify::receiver::dingtalk::truncate;
use crate::notify::receiver::{Integration, SendFuture, check_bot_answer, hmac_sha256};
use crate::notify::template::Templates;

/// Feishu refuses request bodies above 20 KB.
const MAX_CONTENT_BYTES: usize = 18_000;

/// One Feishu robot.
pub struct Feishu {
    /// The robot URL.
    target: Target,
    /// Signing secret.
    secret: Option<String>,
    /// TLS client configuration.
    tls: Arc<rustls::ClientConfig>,
    /// Title and markdown.
    templates: Templates,
    /// Whether resolved-only notifications are wanted.
    send_resolved: bool,
    /// Bound on one delivery.
    timeout: Duration,
}

/// Feishu's signature for `timestamp` (seconds).
pub fn sign(secret: &str, timestamp_seconds: i64) -> String {
    let key = format!("{timestamp_seconds}\n{secret}");
    base64::engine::general_purpose::STANDARD.encode(hmac_sha256(key.as_bytes(), b""))
}

impl Feishu {
    /// Builds the integration from its config.
    pub fn new(config: &BotConfig, language: Language) -> Result<Feishu, String> {
        Ok(Feishu {
            target: Target::parse(&config.url.value)?,
            secret: config.secret.clone(),
            tls: http_client::tls_config(config.tls_config.ca_file.as_deref())?,
            templates: Templates::new(config.language.unwrap_or(language), &config.templates)?,
            send_resolved: config.send_resolved,
            timeout: config.timeout.get(),
        })
    }
}

impl Integration for Feishu {
    fn kind(&self) -> &'static str {
        "feishu"
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn send<'a>(&'a self, notification: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let rendered = self.templates.render(notification);
            let color = if notification.status() == "firing" {
                "red"
            } else {
                "green"
            };
            let mut body = json!({
                "msg_type": "interactive",
                "card": {
                    "header": {
                        "title": {"tag": "plain_text", "content": rendered.subject},
                        "template": color,
                    },
                    "elements": [{"tag": "markdown", "content": truncate(&rendered.markdown, MAX_CONTENT_BYTES)}],
                },
            });
            if let Some(secret) = &self.secret {
                let timestamp = now_ms() / 1000;
                body["timestamp"] = json!(timestamp.to_string());
                body["sign"] = json!(sign(secret, timestamp));
            }
            let (_, answer) = http_client::post(
                &self.target,
                &[],
                body.to_string().into_bytes(),
                &self.tls,
                self.timeout,
            )
            .await?;
            check_bot_answer(&answer, &[11232, 9499])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_feishus() {
        // Computed independently with Python's hmac and base64 modules.
        assert_eq!(
            sign("SEC000", 1_700_000_000),
            "QKhXycVUGrhA1dUEbXA2Vo/zGkv/W88IgYgKNA7Xmk0="
        );
    }
}
