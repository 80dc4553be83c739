//! Forwarding to an Alertmanager: `POST <url>/api/v2/alerts` with the
//! group's alerts, for sites that already run one or scale out to a
//! cluster. As Prometheus sends them: firing alerts are sent again every
//! `resend_interval` (whatever the route's `repeat_interval`) with `endsAt`
//! four sends ahead, so the Alertmanager keeps them firing however short
//! its `resolve_timeout` and resolves them by itself if the collector stops
//! sending; resolved alerts carry their resolution time and resolve at once.

use std::sync::Arc;
use std::time::Duration;

use countywatch_config::config_file::{Problems, Spanned};
use countywatch_config::duration::PromDuration;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::alert::rfc3339;
use crate::http_client::{self, HttpTlsConfig, Target};
use crate::notification::Notification;
use crate::receiver::{BuildContext, BuildError, Integration, Kind, SendFuture, check_url};
use countywatch_daemon::clock::now_ms;

/// Forwarding to an Alertmanager.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// The Alertmanager's base URL, e.g. `http://127.0.0.1:9093`.
    pub url: Spanned<String>,
    /// Sent as `Authorization: Bearer ...`.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// TLS options for `https` URLs.
    #[serde(default)]
    pub tls_config: HttpTlsConfig,
    /// Forward resolutions too (Alertmanager needs them to resolve quickly).
    #[serde(default = "crate::receiver::yes")]
    pub send_resolved: bool,
    /// Longest time one delivery attempt may take.
    #[serde(default = "crate::receiver::default_timeout")]
    pub timeout: PromDuration,
    /// Firing alerts are sent again this often (at the group's
    /// `group_interval` at the earliest), with `endsAt` four times that
    /// cadence ahead, as Prometheus's `--rules.alert.resend-delay`: the
    /// Alertmanager keeps them firing between sends and resolves them by
    /// itself if the collector stops sending.
    #[serde(default = "default_resend_interval")]
    pub resend_interval: PromDuration,
}

fn default_resend_interval() -> PromDuration {
    PromDuration(Duration::from_secs(60))
}

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
    /// How often firing alerts are sent again.
    resend_interval: Duration,
}

/// The body Alertmanager's API v2 expects, sent at `now_ms`.
pub fn payload(notification: &Notification, now_ms: i64) -> Value {
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
                } else if let Some(lease) = notification.lease_ms {
                    item["endsAt"] = json!(rfc3339(now_ms.saturating_add(lease)));
                }
                item
            })
            .collect(),
    )
}

impl Alertmanager {
    /// Builds the integration from its config.
    pub fn new(config: &AlertmanagerConfig) -> Result<Alertmanager, BuildError> {
        let base = config.url.value.trim_end_matches('/');
        Ok(Alertmanager {
            target: Target::parse(&format!("{base}/api/v2/alerts"))?,
            bearer_token: config.bearer_token.clone(),
            tls: http_client::tls_config(config.tls_config.ca_file.as_deref())?,
            send_resolved: config.send_resolved,
            timeout: config.timeout.get(),
            resend_interval: config.resend_interval.get(),
        })
    }
}

impl Kind for Alertmanager {
    type Config = AlertmanagerConfig;

    fn build(
        config: &AlertmanagerConfig,
        _: &BuildContext<'_>,
    ) -> Result<Alertmanager, BuildError> {
        Alertmanager::new(config)
    }

    fn validate(config: &AlertmanagerConfig, problems: &mut Problems) {
        check_url(&config.url, problems);
    }
}

impl Integration for Alertmanager {
    fn kind(&self) -> &'static str {
        "alertmanager"
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn resend_interval(&self) -> Option<Duration> {
        Some(self.resend_interval)
    }

    fn send<'a>(&'a self, notification: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let mut headers = Vec::new();
            if let Some(token) = &self.bearer_token {
                headers.push(("authorization", format!("Bearer {token}")));
            }
            let body = payload(notification, now_ms()).to_string();
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
