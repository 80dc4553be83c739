//! Credentials `/metrics` requires (`http.metrics_auth`): their config and
//! the check of a request's `Authorization` header. Apart from `http` so
//! that the config can validate them without importing the HTTP layer.

use std::path::PathBuf;

use serde::Deserialize;

/// Credentials `/metrics` requires. Set either `bearer_token_file`, or
/// `username` and `password_file`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsAuthConfig {
    /// File holding the token Prometheus sends as `Authorization: Bearer
    /// TOKEN` (its `authorization: {credentials_file: ...}`). Read at start.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// Basic auth user name (Prometheus's `basic_auth.username`).
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the basic auth password (`basic_auth.password_file`).
    /// Read at start.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

/// What `/metrics` accepts in the `Authorization` header.
#[derive(Clone)]
pub struct MetricsCredentials {
    /// The whole expected header value: `Bearer TOKEN` or `Basic BASE64`.
    expected: String,
    /// The challenge sent with a 401 (`Bearer` or `Basic realm=...`).
    challenge: &'static str,
}

/// Why the `/metrics` credentials cannot be loaded; the operator must fix
/// the config or the secret file.
#[derive(Debug, thiserror::Error)]
pub enum MetricsAuthError {
    /// A secret file cannot be read.
    #[error(transparent)]
    Secret(#[from] countywatch_net::secret::SecretError),
    /// The bearer token file holds nothing.
    #[error("{} is empty", .0.display())]
    EmptyToken(std::path::PathBuf),
    /// Neither or both of the two forms are configured.
    #[error("set either bearer_token_file, or username and password_file")]
    NoSingleForm,
}

impl MetricsCredentials {
    /// Reads the configured secret files.
    pub fn load(config: &MetricsAuthConfig) -> Result<Self, MetricsAuthError> {
        use base64::Engine;
        let read = countywatch_net::secret::read_secret;
        match (
            &config.bearer_token_file,
            &config.username,
            &config.password_file,
        ) {
            (Some(token_file), None, None) => {
                let token = read(token_file)?;
                if token.is_empty() {
                    return Err(MetricsAuthError::EmptyToken(token_file.clone()));
                }
                Ok(MetricsCredentials {
                    expected: format!("Bearer {token}"),
                    challenge: "Bearer",
                })
            }
            (None, Some(username), Some(password_file)) => {
                let password = read(password_file)?;
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}"));
                Ok(MetricsCredentials {
                    expected: format!("Basic {encoded}"),
                    challenge: "Basic realm=\"countywatch\"",
                })
            }
            _ => Err(MetricsAuthError::NoSingleForm),
        }
    }

    /// The challenge to send with a 401.
    pub fn challenge(&self) -> &'static str {
        self.challenge
    }

    /// Whether `header` (the request's `Authorization` value) matches, in
    /// time that does not depend on where it differs.
    pub fn accepts(&self, header: Option<&[u8]>) -> bool {
        let Some(header) = header else {
            return false;
        };
        let expected = self.expected.as_bytes();
        if header.len() != expected.len() {
            return false;
        }
        header
            .iter()
            .zip(expected)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic_credentials_are_checked_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        let bearer = MetricsCredentials::load(&MetricsAuthConfig {
            bearer_token_file: Some(token.clone()),
            username: None,
            password_file: None,
        })
        .unwrap();
        assert!(bearer.accepts(Some(b"Bearer s3cret")));
        assert!(!bearer.accepts(Some(b"Bearer s3creT")));
        assert!(!bearer.accepts(Some(b"Bearer s3cret2")));
        assert!(!bearer.accepts(None));
        let basic = MetricsCredentials::load(&MetricsAuthConfig {
            bearer_token_file: None,
            username: Some("prometheus".to_string()),
            password_file: Some(token),
        })
        .unwrap();
        // base64("prometheus:s3cret")
        assert!(basic.accepts(Some(b"Basic cHJvbWV0aGV1czpzM2NyZXQ=")));
        assert!(!basic.accepts(Some(b"Bearer s3cret")));
    }
}
