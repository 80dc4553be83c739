//! `<secret>` in place of every secret of an `alertmanager.yml`, as
//! Alertmanager marshals its configuration for `GET /api/v2/status`:
//! passwords, API keys and tokens, bot tokens, `http_config` credentials,
//! and URLs that carry a token (Slack's and Discord's whole; and webhook
//! URLs, which newer Alertmanagers hide too, since a county's robot URL
//! holds its access token). A webhook URL keeps its scheme and host and
//! shows `/<secret>` for its path and query: Alertmanager 0.25's amtool
//! refuses a webhook `url` that is not an http(s) URL with a host, and
//! the host is no secret. The text is parsed and written again (as JSON,
//! which is YAML, so amtool reads it), so comments and layout are gone, as
//! they are from Alertmanager's.

use serde_json::Value;

/// What Alertmanager shows for a secret.
pub const SECRET: &str = "<secret>";

/// Keys whose values are secrets wherever they appear: Alertmanager 0.25's
/// `Secret` and `SecretURL` fields and Prometheus's HTTP client secrets.
const SECRET_KEYS: &[&str] = &[
    "smtp_auth_password",
    "smtp_auth_secret",
    "auth_password",
    "auth_secret",
    "slack_api_url",
    "opsgenie_api_key",
    "victorops_api_key",
    "wechat_api_secret",
    "api_key",
    "api_secret",
    "service_key",
    "routing_key",
    "user_key",
    "token",
    "bot_token",
    "webhook_url",
    // http_config: basic_auth, authorization, the legacy bearer_token,
    // oauth2.
    "password",
    "credentials",
    "bearer_token",
    "client_secret",
];

/// Keys that are secrets only under a parent key (`url` is a secret in a
/// webhook or Slack receiver, not in general; `key` is one in
/// `tls_config`).
const SECRET_UNDER: &[(&str, &str)] = &[("slack_configs", "api_url"), ("tls_config", "key")];

/// The configuration text with every secret replaced by `<secret>`; text
/// that does not parse is not shown at all (it could not have loaded).
pub fn redacted(text: &str) -> String {
    let source = std::path::Path::new("alertmanager.yml");
    match countywatch_config::config_file::parse::<Value>(source, text) {
        Ok(mut value) => {
            redact(&mut value, "");
            serde_json::to_string_pretty(&value).unwrap_or_default()
        }
        Err(_) => String::new(),
    }
}

/// Replaces secrets in `value`, whose key in its parent mapping (or, for a
/// list item, the list's key) is `parent`.
fn redact(value: &mut Value, parent: &str) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if is_secret(parent, key) {
                    hide(item);
                } else if parent == "webhook_configs" && key == "url" {
                    if let Some(url) = item.as_str() {
                        *item = Value::String(hide_path(url));
                    }
                } else if key == "proxy_url" && item.as_str().is_some_and(|url| url.contains('@')) {
                    // A proxy URL with a user and password in it.
                    *item = Value::String(SECRET.to_string());
                } else {
                    redact(item, key);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                redact(item, parent);
            }
        }
        _ => {}
    }
}

fn is_secret(parent: &str, key: &str) -> bool {
    SECRET_KEYS.contains(&key)
        || SECRET_UNDER
            .iter()
            .any(|(under, name)| *under == parent && *name == key)
}

/// `scheme://host:port/<secret>` for a URL with a path or query (where
/// robots' tokens are) or a user in it; a bare `scheme://host:port/` as it is.
fn hide_path(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return SECRET.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host == authority && (tail.is_empty() || tail == "/") {
        return url.to_string();
    }
    format!("{scheme}://{host}/{SECRET}")
}

/// As Alertmanager: a set secret shows as `<secret>`, an empty one not at
/// all (left as it was).
fn hide(value: &mut Value) {
    let set = match value {
        Value::Null => false,
        Value::String(text) => !text.is_empty(),
        _ => true,
    };
    if set {
        *value = Value::String(SECRET.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An alertmanager.yml with a secret of every kind, as one is pasted.
    const PASTED: &str = r#"
global:
  resolve_timeout: 5m
  smtp_smarthost: 'mail.county.gov.cn:587'
  smtp_from: 'alerts@county.gov.cn'
  smtp_auth_username: 'alerts'
  smtp_auth_password: 'smtp-pass-1'
  smtp_auth_secret: 'smtp-secret-2'
  slack_api_url: 'https://hooks.slack.com/services/T0/B0/slack-token-3'
  opsgenie_api_key: 'opsgenie-key-4'
  victorops_api_key: 'victorops-key-5'
  wechat_api_secret: 'wechat-secret-6'
  http_config:
    basic_auth: {username: u, password: 'basic-pass-7'}
route:
  receiver: ops
receivers:
- name: ops
  email_configs:
  - to: ops@county.gov.cn
    auth_password: 'email-pass-8'
  webhook_configs:
  - url: 'https://oapi.dingtalk.com/robot/send?access_token=dingtalk-token-9'
    http_config:
      authorization: {type: Bearer, credentials: 'bearer-cred-10'}
      proxy_url: 'http://proxyuser:proxy-pass-11@proxy.county.gov.cn:3128'
      tls_config: {key: 'tls-key-12', key_file: /etc/keys/client.key}
  - url: 'http://127.0.0.1:5001/'
    http_config:
      bearer_token: 'legacy-bearer-13'
      oauth2: {client_id: cid, client_secret: 'oauth-secret-14', token_url: 'https://sso/token'}
  pagerduty_configs:
  - service_key: 'pd-service-15'
  - routing_key: 'pd-routing-16'
  opsgenie_configs:
  - api_key: 'opsgenie-17'
  pushover_configs:
  - user_key: 'pushover-user-18'
    token: 'pushover-token-19'
  telegram_configs:
  - bot_token: 'telegram-20'
    chat_id: 42
  wechat_configs:
  - api_secret: 'wechat-21'
  discord_configs:
  - webhook_url: 'https://discord.com/api/webhooks/discord-22'
  slack_configs:
  - api_url: 'https://hooks.slack.com/services/slack-23'
    channel: '#ops'
"#;

    #[test]
    fn every_kind_of_secret_shows_as_secret_and_the_rest_stays() {
        let shown = redacted(PASTED);
        for number in 1..=23 {
            let marker = format!("-{number}");
            assert!(
                !shown.contains(&format!("{marker}'")) && !shown.contains(&format!("{marker}\"")),
                "secret {number} shown:\n{shown}"
            );
        }
        assert_eq!(shown.matches(SECRET).count(), 23, "{shown}");
        // What amtool and people need stays: routes, names, usernames,
        // addresses, file paths.
        let value: Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(value["route"]["receiver"], "ops");
        assert_eq!(value["global"]["smtp_auth_username"], "alerts");
        assert_eq!(value["global"]["smtp_smarthost"], "mail.county.gov.cn:587");
        let webhook = &value["receivers"][0]["webhook_configs"][0];
        assert_eq!(webhook["url"], "https://oapi.dingtalk.com/<secret>");
        assert_eq!(
            value["receivers"][0]["webhook_configs"][1]["url"],
            "http://127.0.0.1:5001/"
        );
        assert_eq!(
            webhook["http_config"]["tls_config"]["key_file"],
            "/etc/keys/client.key"
        );
        assert_eq!(value["receivers"][0]["telegram_configs"][0]["chat_id"], 42);
        assert_eq!(value["receivers"][0]["slack_configs"][0]["channel"], "#ops");
    }

    #[test]
    fn an_empty_secret_is_not_shown_as_set() {
        let shown = redacted("global:\n  smtp_auth_password: ''\nroute: {receiver: a}\n");
        assert!(!shown.contains(SECRET), "{shown}");
    }
}
