//! Reloading the configuration without a restart, as Alertmanager and
//! Prometheus do: on SIGHUP (`systemctl reload`) and on `POST /-/reload`
//! (admins). The configuration file is read and checked again as at
//! start; the notification part (routes, receivers, inhibit rules, time
//! intervals and the `notify.alertmanager_config` file) then takes effect
//! at once, keeping alerts, silences and the notification log. A file with
//! a problem changes nothing: every problem is logged with its position,
//! the reload is audited as failed and
//! `countywatch_notify_config_last_reload_successful` turns 0.
//!
//! Rule files reload on SIGHUP in `alerting` already; `POST /-/reload`
//! reloads them too, so both triggers do the same. Every other setting
//! (listeners, TLS, the data directory, the outbox, the API switches)
//! still takes effect at the next restart.

use std::path::PathBuf;
use std::sync::Arc;

use crate::alerting::Alerting;
use crate::audit::{Outcome, record_outcome};
use crate::config::Config;
use countywatch_notify::Notifier;

/// What a reload needs: where the file is and what it reconfigures.
pub struct Reloader {
    /// The configuration file; `None` when the collector runs on defaults
    /// (then there is nothing to read again).
    path: Option<PathBuf>,
    /// Takes the new notification configuration.
    notifier: Arc<Notifier>,
    /// Reloads its rule files on `POST /-/reload`.
    alerting: Option<Arc<Alerting>>,
    /// Whose audit trail records reloads.
    data_dir: PathBuf,
    /// One reload at a time: two at once could apply an older file last.
    one_at_a_time: tokio::sync::Mutex<()>,
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file has problems (each with its position).
    #[error("{0}")]
    Invalid(countywatch_config::config_file::Problems),
    /// The file is valid but a receiver cannot be built from it (a secret
    /// file that cannot be read, say), or the collector is stopping.
    #[error("{0:#}")]
    NotApplied(anyhow::Error),
}

/// Which trigger asked, for the log and the audit trail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP; `alerting` reloads the rule files on it by itself.
    Hangup,
    /// `POST /-/reload`, by this user.
    Http,
}

impl Reloader {
    /// A reloader for the collector started from `config`.
    pub fn new(
        config: &Config,
        notifier: Arc<Notifier>,
        alerting: Option<Arc<Alerting>>,
    ) -> Reloader {
        Reloader {
            path: config.source.clone(),
            notifier,
            alerting,
            data_dir: config.data_dir.clone(),
            one_at_a_time: tokio::sync::Mutex::new(()),
        }
    }

    /// Reads the configuration file again and applies its notification
    /// part; on `POST /-/reload` reloads the rule files as well. Logs and
    /// audits the outcome as `actor`.
    pub async fn reload(&self, trigger: Trigger, actor: &str) -> Result<(), ReloadError> {
        let _one = self.one_at_a_time.lock().await;
        let reason = match trigger {
            Trigger::Hangup => "SIGHUP",
            Trigger::Http => "POST /-/reload",
        };
        if trigger == Trigger::Http
            && let Some(alerting) = &self.alerting
        {
            let alerting = Arc::clone(alerting);
            let _ = tokio::task::spawn_blocking(move || {
                crate::alerting::reload_and_log(&alerting, "POST /-/reload")
            })
            .await;
        }
        let outcome = self.reload_notify().await;
        match &outcome {
            Ok(()) => tracing::info!(reason, "notification configuration reloaded"),
            Err(error) => tracing::error!(
                reason,
                problems = %error,
                "notification configuration not reloaded; the previous one keeps running"
            ),
        }
        self.notifier.note_reload(outcome.is_ok());
        let data_dir = self.data_dir.clone();
        let actor = actor.to_string();
        let (result, details) = match &outcome {
            Ok(()) => (Outcome::Success, reason.to_string()),
            Err(error) => (Outcome::Failure, format!("{reason}: {error}")),
        };
        let _ = tokio::task::spawn_blocking(move || {
            record_outcome(
                &data_dir,
                &actor,
                "notify.reloaded",
                "notify",
                result,
                &details,
            );
        })
        .await;
        outcome
    }

    async fn reload_notify(&self) -> Result<(), ReloadError> {
        let Some(path) = self.path.clone() else {
            // Defaults cannot have changed.
            return Ok(());
        };
        let loaded = tokio::task::spawn_blocking(move || Config::load(&path))
            .await
            .map_err(|error| ReloadError::NotApplied(error.into()))?;
        let mut config = loaded.map_err(ReloadError::Invalid)?;
        config.notify.display = config.display();
        self.notifier
            .reconfigure(&config.notify)
            .await
            .map_err(ReloadError::NotApplied)
    }
}
