//! The generic webhook: Alertmanager's payload, version 4, so that any
//! tool written for Alertmanager webhooks accepts ours unchanged.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use countywatch_config::config_file::{Problems, Spanned};
use countywatch_config::duration::PromDuration;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http_client::{self, HttpTlsConfig, Target};
use crate::notification::Notification;
use crate::receiver::{BuildContext, BuildError, Integration, Kind, SendFuture, check_url};
use countywatch_net::secret::read_secret;

/// A generic webhook.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The URL to POST to (`http` or `https`).
    pub url: Spanned<String>,
    /// Sent as `Authorization: Bearer ...`; prefer `bearer_token_file`.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// File holding the bearer token.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// TLS options for `https` URLs.
    #[serde(default)]
    pub tls_config: HttpTlsConfig,
    /// Most alerts per payload (0: all); the rest are counted in `truncatedAlerts`.
    #[serde(default)]
    pub max_alerts: usize,
    /// Also notify when alerts resolve.
    #[serde(default = "crate::receiver::yes")]
    pub send_resolved: bool,
    /// Longest time one delivery attempt may take.
    #[serde(default = "crate::receiver::default_timeout")]
    pub timeout: PromDuration,
}

/// One webhook integration.
pub struct Webhook {
    /// Where to POST.
    target: Target,
    /// `Authorization: Bearer` value, if any.
    bearer_token: Option<String>,
    /// TLS client configuration.
    tls: Arc<rustls::ClientConfig>,
    /// Most alerts per payload; 0 is all.
    max_alerts: usize,
    /// Whether resolved-only notifications are wanted.
    send_resolved: bool,
    /// Bound on one delivery.
    timeout: Duration,
    /// Our base URL, for `externalURL`.
    external_url: String,
}

/// Alertmanager's webhook payload (version 4) for a notification.
pub fn payload(notification: &Notification, max_alerts: usize, external_url: &str) -> Value {
    let limit = if max_alerts == 0 {
        usize::MAX
    } else {
        max_alerts
    };
    let alerts: Vec<Value> = notification
        .alerts
        .iter()
        .take(limit)
        .map(|alert| {
            json!({
                "status": alert.status,
                "labels": alert.labels,
                "annotations": alert.annotations,
                "startsAt": alert.starts_at(),
                "endsAt": alert.ends_at(),
                "generatorURL": alert.generator_url,
                "fingerprint": alert.fingerprint,
            })
        })
        .collect();
    json!({
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": notification.alerts.len() - alerts.len(),
        "status": notification.status(),
        "receiver": notification.receiver,
        "groupLabels": notification.group_labels,
        "commonLabels": notification.common_labels(),
        "commonAnnotations": notification.common_annotations(),
        "externalURL": external_url,
        "alerts": alerts,
    })
}

impl Webhook {
    /// Builds the integration from its config.
    pub fn new(config: &WebhookConfig, external_url: &str) -> Result<Webhook, BuildError> {
        let bearer_token = match (&config.bearer_token, &config.bearer_token_file) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(path)) => Some(read_secret(path)?),
            (None, None) => None,
        };
        Ok(Webhook {
            target: Target::parse(&config.url.value)?,
            bearer_token,
            tls: http_client::tls_config(config.tls_config.ca_file.as_deref())?,
            max_alerts: config.max_alerts,
            send_resolved: config.send_resolved,
            timeout: config.timeout.get(),
            external_url: external_url.to_string(),
        })
    }
}

impl Kind for Webhook {
    type Config = WebhookConfig;

    fn build(config: &WebhookConfig, context: &BuildContext<'_>) -> Result<Webhook, BuildError> {
        Webhook::new(config, context.external_url)
    }

    fn validate(config: &WebhookConfig, problems: &mut Problems) {
        check_url(&config.url, problems);
    }
}

impl Integration for Webhook {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn send<'a>(&'a self, notification: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let body = payload(notification, self.max_alerts, &self.external_url).to_string();
            let mut headers = Vec::new();
            if let Some(token) = &self.bearer_token {
                headers.push(("authorization", format!("Bearer {token}")));
            }
            http_client::post(
                &self.target,
                &headers,
                body.into_bytes(),
                &self.tls,
                self.timeout,
            )
            .await
            .map(|_| ())
        })
    }
}
