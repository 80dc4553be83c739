//! WeCom (企业微信) group robots: a markdown message to the robot's
//! webhook URL (its key is in the URL). Code 45009 (rate limit) is retried.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::notify::config::{BotConfig, Language};
use crate::notify::http_client::{self, Target};
use crate::notify::notification::Notification;
use crate::notify::receiver::dingtalk::truncate;
use crate::notify::receiver::{Integration, SendFuture, check_bot_answer};
use crate::notify::template::Templates;

/// WeCom refuses markdown content longer than 4096 bytes.
const MAX_CONTENT_BYTES: usize = 4_000;

/// One WeCom robot.
pub struct WeCom {
    /// The robot URL with its key.
    target: Target,
    /// TLS client configuration.
    tls: Arc<rustls::ClientConfig>,
    /// Markdown.
    templates: Templates,
    /// Whether resolved-only notifications are wanted.
    send_resolved: bool,
    /// Bound on one delivery.
    timeout: Duration,
}

impl WeCom {
    /// Builds the integration from its config.
    pub fn new(config: &BotConfig, language: Language) -> Result<WeCom, String> {
        Ok(WeCom {
            target: Target::parse(&config.url.value)?,
            tls: http_client::tls_config(config.tls_config.ca_file.as_deref())?,
            templates: Templates::new(config.language.unwrap_or(language), &config.templates)?,
            send_resolved: config.send_resolved,
            timeout: config.timeout.get(),
        })
    }
}

impl Integration for WeCom {
    fn kind(&self) -> &'static str {
        "wecom"
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn send<'a>(&'a self, notification: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let rendered = self.templates.render(notification);
            let body = json!({
                "msgtype": "markdown",
                "markdown": {"content": truncate(&rendered.markdown, MAX_CONTENT_BYTES)},
            });
            let (_, answer) = http_client::post(
                &self.target,
                &[],
                body.to_string().into_bytes(),
                &self.tls,
                self.timeout,
            )
            .await?;
            check_bot_answer(&answer, &[45009])
        })
    }
}
