//! Email through SMTP with lettre (async, tokio, rustls): STARTTLS,
//! implicit TLS or none, optional AUTH, plain-text and HTML parts from the
//! templates. Non-ASCII subjects and addresses are RFC 2047-encoded and
//! bodies sent as UTF-8 by lettre, so Chinese arrives intact.

use std::path::PathBuf;

use countywatch_config::config_file::{Problems, Spanned};
use countywatch_config::duration::PromDuration;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::display::Language;
use crate::notification::Notification;
use crate::receiver::{BuildContext, BuildError, Integration, Kind, SendFuture};
use crate::template::{TemplateDefaults, TemplateOverrides, Templates, check_overrides};
use countywatch_net::secret::read_secret;
use countywatch_net::send_error::SendError;
use serde::Deserialize;

/// One email integration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// Recipients.
    pub to: Vec<String>,
    /// Copy recipients.
    #[serde(default)]
    pub cc: Vec<String>,
    /// Sender address, e.g. `countywatch <alerts@county.gov.cn>`.
    pub from: String,
    /// SMTP server, `HOST:PORT`.
    pub smarthost: Spanned<String>,
    /// How the connection is secured.
    #[serde(default)]
    pub tls: SmtpTls,
    /// Trust this CA file (PEM) in addition to the public roots, for a
    /// mail server with a certificate from the county's own CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// SMTP AUTH user name (PLAIN or LOGIN, only over TLS).
    #[serde(default)]
    pub auth_username: Option<String>,
    /// SMTP AUTH password; prefer `auth_password_file`.
    #[serde(default)]
    pub auth_password: Option<String>,
    /// File holding the SMTP AUTH password.
    #[serde(default)]
    pub auth_password_file: Option<PathBuf>,
    /// Name sent in EHLO; defaults to `localhost`.
    #[serde(default)]
    pub hello: Option<String>,
    /// Also notify when alerts resolve.
    #[serde(default)]
    pub send_resolved: bool,
    /// Longest time one delivery attempt may take.
    #[serde(default = "crate::receiver::default_timeout")]
    pub timeout: PromDuration,
    /// Language of the default templates for this integration.
    #[serde(default)]
    pub language: Option<Language>,
    /// Templates replacing the defaults.
    #[serde(default)]
    pub templates: TemplateOverrides,
}

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS; refuses servers without it.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
    /// No TLS at all: only for a relay on the same host.
    None,
}

/// One email integration.
pub struct Email {
    /// The SMTP client; connects per message (no pool: alerts are rare
    /// enough that an idle connection would only time out).
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// Sender.
    from: Mailbox,
    /// Recipients.
    to: Vec<Mailbox>,
    /// Copy recipients.
    cc: Vec<Mailbox>,
    /// Subject and bodies.
    templates: Templates,
    /// Whether resolved-only notifications are wanted.
    send_resolved: bool,
    /// Bound on one whole delivery.
    timeout: std::time::Duration,
}

/// Splits `host:port` or `[v6]:port`.
pub fn split_host_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port))
}

impl Email {
    /// Builds the integration from its config.
    pub fn new(config: &EmailConfig, defaults: &TemplateDefaults) -> Result<Email, BuildError> {
        let (host, port) = split_host_port(&config.smarthost.value)
            .ok_or_else(|| BuildError::Smarthost(config.smarthost.value.clone()))?;
        let parameters = || -> Result<TlsParameters, BuildError> {
            let mut builder = TlsParameters::builder(host.clone());
            if let Some(path) = &config.ca_file {
                let pem = std::fs::read(path).map_err(|source| BuildError::ReadCa {
                    path: path.clone(),
                    source,
                })?;
                let certificate =
                    Certificate::from_pem(&pem).map_err(|source| BuildError::InvalidCa {
                        path: path.clone(),
                        source,
                    })?;
                builder = builder.add_root_certificate(certificate);
            }
            builder.build_rustls().map_err(BuildError::EmailTls)
        };
        let tls = match config.tls {
            SmtpTls::Starttls => Tls::Required(parameters()?),
            SmtpTls::Implicit => Tls::Wrapper(parameters()?),
            SmtpTls::None => Tls::None,
        };
        let timeout = config.timeout.get();
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .timeout(Some(timeout))
            .hello_name(ClientId::Domain(
                config
                    .hello
                    .clone()
                    .unwrap_or_else(|| "localhost".to_string()),
            ));
        if let Some(user) = &config.auth_username {
            let password = match (&config.auth_password, &config.auth_password_file) {
                (Some(password), _) => password.clone(),
                (None, Some(path)) => read_secret(path)?,
                (None, None) => String::new(),
            };
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        let mailbox = |text: &String| {
            text.parse::<Mailbox>()
                .map_err(|source| BuildError::Address {
                    text: text.clone(),
                    source,
                })
        };
        Ok(Email {
            transport: builder.build(),
            from: mailbox(&config.from)?,
            to: config.to.iter().map(mailbox).collect::<Result<_, _>>()?,
            cc: config.cc.iter().map(mailbox).collect::<Result<_, _>>()?,
            templates: Templates::new(
                config.language.unwrap_or(defaults.language),
                &config.templates,
                &defaults.display,
            )
            .map_err(BuildError::Template)?,
            send_resolved: config.send_resolved,
            timeout,
        })
    }

    /// Sends `text` with `file_name` attached (the monthly report), to the
    /// same recipients, through the same server.
    pub async fn send_attachment(
        &self,
        subject: &str,
        text: &str,
        file_name: &str,
        html: String,
    ) -> Result<(), SendError> {
        let mut builder = Message::builder().from(self.from.clone()).subject(subject);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        for cc in &self.cc {
            builder = builder.cc(cc.clone());
        }
        let attachment = lettre::message::Attachment::new(file_name.to_string())
            .body(html, lettre::message::header::ContentType::TEXT_HTML);
        let message = builder
            .multipart(
                MultiPart::mixed()
                    .singlepart(lettre::message::SinglePart::plain(text.to_string()))
                    .singlepart(attachment),
            )
            .map_err(|error| SendError::Permanent(format!("cannot build the message: {error}")))?;
        self.deliver(message).await
    }

    async fn deliver(&self, message: Message) -> Result<(), SendError> {
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            // A 5xx answer (unknown mailbox, refused credentials) will
            // not change by retrying; anything else may.
            Ok(Err(error)) if error.is_permanent() => {
                Err(SendError::Permanent(format!("SMTP: {error}")))
            }
            Ok(Err(error)) => Err(SendError::Retryable(format!("SMTP: {error}"))),
            Err(_) => Err(SendError::Retryable(
                "SMTP: no answer within the timeout".to_string(),
            )),
        }
    }

    fn message(&self, notification: &Notification) -> Result<Message, SendError> {
        let rendered = self.templates.render(notification);
        let mut builder = Message::builder()
            .from(self.from.clone())
            .message_id(Some(message_id(notification)))
            .subject(rendered.subject);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        for cc in &self.cc {
            builder = builder.cc(cc.clone());
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))
            .map_err(|error| SendError::Permanent(format!("cannot build the message: {error}")))
    }
}

/// A Message-ID derived from the notification, so that the rare repeat
/// after a crash (delivery is at least once) carries the same id and mail
/// clients show it once.
fn message_id(notification: &Notification) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(notification.receiver.as_bytes());
    hash.update([0]);
    hash.update(notification.group_key.as_bytes());
    hash.update([0]);
    hash.update(notification.created_ms.to_be_bytes());
    hash.update(serde_json::to_vec(&notification.alerts).unwrap_or_default());
    let digest = hash.finalize();
    format!(
        "<{}.{}@countywatch>",
        notification.created_ms,
        hex::encode(&digest[..12])
    )
}

impl Kind for Email {
    type Config = EmailConfig;

    fn build(config: &EmailConfig, context: &BuildContext<'_>) -> Result<Email, BuildError> {
        Email::new(config, context.defaults)
    }

    fn validate(email: &EmailConfig, problems: &mut Problems) {
        if split_host_port(&email.smarthost.value).is_none() {
            problems.at(
                &email.smarthost,
                format!("smarthost {:?} is not HOST:PORT", email.smarthost.value),
            );
        }
        if email.to.is_empty() {
            problems.at(
                &email.smarthost,
                "email_configs: `to` must name at least one address",
            );
        }
        for address in email.to.iter().chain(&email.cc).chain([&email.from]) {
            if address.parse::<Mailbox>().is_err() {
                problems.at(
                    &email.smarthost,
                    format!("email_configs: invalid address {address:?}"),
                );
            }
        }
        if email.auth_username.is_some() && email.tls == SmtpTls::None {
            problems.at(
                &email.smarthost,
                "auth_username needs tls: starttls or implicit; a password must not cross the network in clear",
            );
        }
        if email.auth_password.is_some() && email.auth_password_file.is_some() {
            problems.at(
                &email.smarthost,
                "set auth_password or auth_password_file, not both",
            );
        }
        check_overrides(&email.templates, &email.smarthost, problems);
    }
}

impl Integration for Email {
    fn kind(&self) -> &'static str {
        "email"
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn send<'a>(&'a self, notification: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let message = self.message(notification)?;
            self.deliver(message).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports() {
        assert_eq!(split_host_port("mail:25"), Some(("mail".to_string(), 25)));
        assert_eq!(split_host_port("[::1]:587"), Some(("::1".to_string(), 587)));
        assert_eq!(split_host_port("mail"), None);
        assert_eq!(split_host_port(":25"), None);
    }
}
