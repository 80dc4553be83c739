//! WeCom (企业微信) group robots: a markdown message to the robot's
//! webhook URL (its key is in the URL). Code 45009 (rate limit) is retried.

use serde_json::{Value, json};

use crate::http_client::Target;
use crate::notification::Notification;
use crate::receiver::chat_bot::{ChatBot, Dialect, truncate};

/// WeCom refuses markdown content longer than 4096 bytes.
const MAX_CONTENT_BYTES: usize = 4_000;

/// The WeCom dialect.
pub struct WeCom;

impl Dialect for WeCom {
    const KIND: &'static str = "wecom";
    const RATE_LIMIT_CODES: &'static [i64] = &[45009];

    fn request(bot: &ChatBot<Self>, notification: &Notification) -> (Target, Value) {
        let rendered = bot.templates.render(notification);
        let body = json!({
            "msgtype": "markdown",
            "markdown": {"content": truncate(&rendered.markdown, MAX_CONTENT_BYTES)},
        });
        (bot.target.clone(), body)
    }
}
