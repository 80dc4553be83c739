//! DingTalk (钉钉) group robots: a markdown message, and when a secret is
//! set ("加签"), the URL signed with HMAC-SHA256 of `timestamp\nsecret` as
//! DingTalk documents. Code 130101 (sending too fast) is retried.

use base64::Engine;
use serde_json::{Value, json};

use crate::http_client::Target;
use crate::notification::Notification;
use crate::receiver::chat_bot::{ChatBot, Dialect, truncate};
use crate::receiver::{hmac_sha256, percent_encode};
use countywatch_daemon::clock::now_ms;

/// DingTalk refuses markdown longer than this many bytes.
const MAX_TEXT_BYTES: usize = 18_000;

/// The DingTalk dialect.
pub struct DingTalk;

/// The `timestamp` and `sign` query parameters for a signed request.
pub fn sign_query(secret: &str, timestamp_ms: i64) -> String {
    let signature = hmac_sha256(
        secret.as_bytes(),
        format!("{timestamp_ms}\n{secret}").as_bytes(),
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(signature);
    format!("timestamp={timestamp_ms}&sign={}", percent_encode(&encoded))
}

impl Dialect for DingTalk {
    const KIND: &'static str = "dingtalk";
    const RATE_LIMIT_CODES: &'static [i64] = &[130101];

    fn request(bot: &ChatBot<Self>, notification: &Notification) -> (Target, Value) {
        let rendered = bot.templates.render(notification);
        let body = json!({
            "msgtype": "markdown",
            "markdown": {"title": rendered.subject, "text": truncate(&rendered.markdown, MAX_TEXT_BYTES)},
        });
        let target = match &bot.secret {
            Some(secret) => bot.target.with_query(&sign_query(secret, now_ms())),
            None => bot.target.clone(),
        };
        (target, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_dingtalks() {
        // Computed independently with Python's hmac and base64 modules.
        assert_eq!(
            sign_query("SEC000", 1_700_000_000_000),
            "timestamp=1700000000000&sign=ltBBey5eZrWKh1cPzFIdz3v3xpkc4Tjx4lLsPSHqdtA%3D"
        );
    }
}
