//! The generic webhook: Alertmanager's payload, version 4, so that any
//! tool written for Alertmanager webhooks accepts ours unchanged.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::WebhookConfig;
use crate::http_client::{self, Target};
use crate::notification::Notification;
use crate::receiver::{BuildError, Integration, SendFuture};
use countywatch_net::secret::read_secret;

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
