//! What the chat-bot receivers (DingTalk, WeCom, Feishu) share: their
//! config, the JSON POST to the robot's webhook URL, and the answer check,
//! where the robot says `errcode` 0 or refuses with a code of its own.
//! Each robot's file is only its [`Dialect`]: how its message and signature
//! look, and which of its codes mean "slow down".

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use countywatch_config::config_file::{Problems, Spanned};
use countywatch_config::duration::PromDuration;
use serde::Deserialize;
use serde_json::Value;

use crate::display::Language;
use crate::http_client::{self, HttpTlsConfig, Target};
use crate::notification::Notification;
use crate::receiver::{
    BuildContext, BuildError, Integration, Kind, SendFuture, check_bot_answer, check_url,
};
use crate::template::{TemplateDefaults, TemplateOverrides, Templates, check_overrides};

/// One robot's wire format.
pub trait Dialect: Send + Sync + 'static {
    /// The kind, for logs and metrics: `dingtalk`, ...
    const KIND: &'static str;
    /// Answer codes that mean a rate limit, so the message is retried.
    const RATE_LIMIT_CODES: &'static [i64];

    /// The URL to post to (signed when the robot signs URLs) and the JSON
    /// body for one notification.
    fn request(bot: &ChatBot<Self>, notification: &Notification) -> (Target, Value)
    where
        Self: Sized;
}

/// A DingTalk, WeCom or Feishu group robot.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotConfig {
    /// The robot's webhook URL, with its access token.
    pub url: Spanned<String>,
    /// Signing secret (DingTalk "加签", Feishu "签名校验"); unused by WeCom.
    #[serde(default)]
    pub secret: Option<String>,
    /// TLS options for `https` URLs.
    #[serde(default)]
    pub tls_config: HttpTlsConfig,
    /// Also notify when alerts resolve.
    #[serde(default = "crate::receiver::yes")]
    pub send_resolved: bool,
    /// Longest time one delivery attempt may take.
    #[serde(default = "crate::receiver::default_timeout")]
    pub timeout: PromDuration,
    /// Language of the default templates for this integration.
    #[serde(default)]
    pub language: Option<Language>,
    /// Templates replacing the defaults (`subject` and `markdown`).
    #[serde(default)]
    pub templates: TemplateOverrides,
}

/// One configured robot of dialect `D`.
pub struct ChatBot<D> {
    /// The robot URL, with its access token or key.
    pub target: Target,
    /// Signing secret, for the robots that sign.
    pub secret: Option<String>,
    /// TLS client configuration.
    tls: Arc<rustls::ClientConfig>,
    /// Title and markdown.
    pub templates: Templates,
    /// Whether resolved-only notifications are wanted.
    send_resolved: bool,
    /// Bound on one delivery.
    timeout: Duration,
    /// The dialect is a type only; `fn() -> D` keeps the bot `Send` and
    /// `Sync` whatever `D` is.
    dialect: PhantomData<fn() -> D>,
}

impl<D: Dialect> ChatBot<D> {
    /// Builds the integration from its config.
    pub fn new(config: &BotConfig, defaults: &TemplateDefaults) -> Result<ChatBot<D>, BuildError> {
        Ok(ChatBot {
            target: Target::parse(&config.url.value)?,
            secret: config.secret.clone(),
            tls: http_client::tls_config(config.tls_config.ca_file.as_deref())?,
            templates: Templates::new(
                config.language.unwrap_or(defaults.language),
                &config.templates,
                &defaults.display,
            )
            .map_err(BuildError::Template)?,
            send_resolved: config.send_resolved,
            timeout: config.timeout.get(),
            dialect: PhantomData,
        })
    }
}

impl<D: Dialect> Kind for ChatBot<D> {
    type Config = BotConfig;

    fn build(config: &BotConfig, context: &BuildContext<'_>) -> Result<ChatBot<D>, BuildError> {
        ChatBot::new(config, context.defaults)
    }

    fn validate(config: &BotConfig, problems: &mut Problems) {
        check_url(&config.url, problems);
        check_overrides(&config.templates, &config.url, problems);
    }
}

impl<D: Dialect> Integration for ChatBot<D> {
    fn kind(&self) -> &'static str {
        D::KIND
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn send<'a>(&'a self, notification: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let (target, body) = D::request(self, notification);
            let (_, answer) = http_client::post(
                &target,
                &[],
                body.to_string().into_bytes(),
                &self.tls,
                self.timeout,
            )
            .await?;
            check_bot_answer(&answer, D::RATE_LIMIT_CODES)
        })
    }
}

/// Cuts text to at most `max` bytes on a character boundary: the robots
/// refuse long messages outright, and a cut alert is better than none.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("告警告警", 7), "告警…");
        assert_eq!(truncate("short", 7), "short");
    }
}
