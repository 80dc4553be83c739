//! Forwarding to an Alertmanager: `POST <url>/api/v2/alerts` with the
//! group's alerts, for sites that already run one or scale out to a
//! cluster. Firing alerts are sent without `endsAt`, so Alertmanager
//! resolves them after its `resolve_timeout` unless they come again: route
//! them with a `repeat_interval` shorter than that. Resolved alerts carry
//! their `endsAt` and resolve at once.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::notify::config::AlertmanagerConfig;
use crate::notify::http_client::{self, Target};
use crate::notify::notification::Notification;
use crate::notify::receiver::{Integration, SendFuture};

/// One Alertmanager.
pub struct Alertmanager {
    /// `<url>/api/v2/alerts`.
    target: Target,
    /// `Authorization: Bearer` value, if any.
    bearer_token: Option<String>,
    /// TLS client configuration.
    tls: Arc<rustls::ClientConfig>,
    /// Whether resolved-only notifications are forwarded.
    send_resolved: bool,
    /// Bound on one delivery.
    timeout: Duration,
}

/// The body Alertmanager's API v2 expects.
pub fn payload(notification: &Notification) -> Value {
    Value::Array(
        notification
            .alerts
            .iter()
            .map(|alert| {
                let mut item = json!({
                    "labels": alert.labels,
                    "annotations": alert.annotations,
                    "startsAt": alert.starts_at(),
                    "generatorURL": if alert.generator_url.is_empty() { notification.alert_url(alert) } else { alert.generator_url.clone() },
                });
                if !alert.firing() {
                    item["endsAt"] = json!(alert.ends_at());
                }
                item
            })
            .collect(),
    )
}

impl Alertmanager {
    /// Builds the integration from its config.
    pub fn new(config: &AlertmanagerConfig) -> Result<Alertmanager, String> {
        let base = config.url.value.trim_end_matches('/');
        Ok(Alertmanager {
            target: Target::parse(&format!("{base}/api/v2/alerts"))?,
            bearer_token: config.bearer_token.clone(),
            tls: http_client::tls_config(config.tls_config.ca_file.as_deref())?,
            send_resolved: config.send_resolved,
            timeout: config.timeout.get(),
        })
    }
}

impl Integration for Alertmanager {
    fn kind(&self) -> &'static str {
        "alertmanager"
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn send<'a>(&'a self, notification: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let mut headers = Vec::new();
            if let Some(token) = &self.bearer_token {
                headers.push(("authorization", format!("Bearer {token}")));
            }
            let body = payload(notification).to_string();
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
