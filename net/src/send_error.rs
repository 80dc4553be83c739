//! Why a delivery failed, and whether trying again can help: the one
//! retryable-error notion of everything the collector sends (notification
//! receivers, remote_write, event forwarding), and the one reading of an
//! HTTP status into it.

/// Why a delivery failed, and whether trying again can help.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// A temporary failure: connection refused, timeout, 5xx, rate limit.
    #[error("{0}")]
    Retryable(String),
    /// A failure no retry will fix: bad address, 4xx, refused credentials.
    #[error("{0}")]
    Permanent(String),
}

impl SendError {
    /// Whether a retry can help.
    pub fn retryable(&self) -> bool {
        matches!(self, SendError::Retryable(_))
    }

    /// The failure a non-2xx HTTP `status` means, with `message`: 5xx, 429
    /// (rate limited) and 408 (request timeout) say "later"; any other
    /// status says the same request will never be accepted.
    pub fn from_status(status: u16, message: String) -> SendError {
        if status >= 500 || status == 429 || status == 408 {
            SendError::Retryable(message)
        } else {
            SendError::Permanent(message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_rate_limits_and_timeouts_are_retried_other_refusals_not() {
        for status in [500, 503, 429, 408] {
            assert!(
                SendError::from_status(status, String::new()).retryable(),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 413] {
            assert!(
                !SendError::from_status(status, String::new()).retryable(),
                "{status}"
            );
        }
    }
}
