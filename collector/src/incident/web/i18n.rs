//! The page's two languages: Chinese and English. The choice comes from the
//! `lang` query parameter (the switch in the page, remembered in a cookie),
//! else the cookie, else `Accept-Language`. Every string a person reads on
//! the page goes through [`Lang::text`].

use std::collections::HashMap;

/// A page language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// Simplified Chinese.
    Zh,
    /// English.
    En,
}

impl Lang {
    /// The `lang` attribute and cookie value.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// The language for a request.
    pub fn choose(
        query: &HashMap<String, String>,
        cookie: Option<&String>,
        accept_language: Option<&str>,
        default: crate::display::Language,
    ) -> Lang {
        let parse = |code: &str| match code {
            code if code.starts_with("zh") => Some(Lang::Zh),
            code if code.starts_with("en") => Some(Lang::En),
            _ => None,
        };
        if let Some(lang) = query.get("lang").and_then(|code| parse(code)) {
            return lang;
        }
        if let Some(lang) = cookie.and_then(|code| parse(code)) {
            return lang;
        }
        // The first listed language we have; q-values are in the order
        // browsers send them.
        accept_language
            .unwrap_or("")
            .split(',')
            .filter_map(|item| parse(item.trim().to_ascii_lowercase().as_str()))
            .next()
            .unwrap_or(match default {
                crate::display::Language::Zh => Lang::Zh,
                crate::display::Language::En => Lang::En,
            })
    }

    /// The text for `key` in this language; the key itself when missing.
    pub fn text(self, key: &'static str) -> &'static str {
        let (zh, en) = match key {
            "app" => ("countywatch 安全事件", "countywatch incidents"),
            "incidents" => ("安全事件", "Incidents"),
            "agents" => ("探针", "Agents"),
            "alerts" => ("告警与静默", "Alerts and silences"),
            "logout" => ("退出", "Log out"),
            "login" => ("登录", "Log in"),
            "change_password" => ("修改密码", "Change password"),
            "must_change_password" => (
                "这是初始密码，请先设置您自己的新密码。",
                "This is the initial password: set your own before going on.",
            ),
            "current_password" => ("当前密码", "Current password"),
            "new_password" => (
                "新密码（12 至 1024 个字符）",
                "New password (12 to 1024 characters)",
            ),
            "confirm_password" => ("再次输入新密码", "New password again"),
            "password_mismatch" => ("两次输入的新密码不一致。", "The new passwords differ."),
            "password_wrong" => ("当前密码错误。", "The current password is wrong."),
            "password_busy" => (
                "服务器正忙，请稍后再试。",
                "The server is busy; try again in a moment.",
            ),
            "password_unchanged" => (
                "新密码不能与当前密码相同。",
                "The new password must differ from the current one.",
            ),
            "password_length" => (
                "密码长度须为 12 至 1024 个字符。",
                "Passwords are 12 to 1024 characters long.",
            ),
            "username" => ("用户名", "User name"),
            "password" => ("密码", "Password"),
            "login_failed" => ("用户名或密码错误。", "Wrong user name or password."),
            "login_limited" => (
                "登录失败次数过多，请稍后再试。",
                "Too many failed logins; try again later.",
            ),
            "filter" => ("筛选", "Filter"),
            "status" => ("状态", "Status"),
            "severity" => ("级别", "Severity"),
            "host" => ("主机", "Host"),
            "rule" => ("规则", "Rule"),
            "search" => ("搜索", "Search"),
            "any" => ("全部", "Any"),
            "title" => ("标题", "Title"),
            "first_seen" => ("首次发现", "First seen"),
            "last_seen" => ("最近发现", "Last seen"),
            "assignee" => ("负责人", "Assignee"),
            "evidence" => ("证据", "Evidence"),
            "timeline" => ("处理记录", "Timeline"),
            "actions" => ("处置", "Actions"),
            "time" => ("时间", "Time"),
            "kind" => ("类型", "Kind"),
            "user" => ("用户", "User"),
            "source" => ("来源地址", "Source address"),
            "raw" => ("原始日志", "Raw line"),
            "actor" => ("操作人", "Actor"),
            "action" => ("操作", "Action"),
            "detail" => ("说明", "Detail"),
            "acknowledge" => ("确认处理", "Acknowledge"),
            "resolve" => ("已解决", "Resolve"),
            "false_positive" => ("误报", "False positive"),
            "reopen" => ("重新打开", "Reopen"),
            "comment" => ("备注", "Comment"),
            "add_comment" => ("添加备注", "Add comment"),
            "reason" => ("原因", "Reason"),
            "export_csv" => ("导出 CSV", "Export CSV"),
            "export_json" => ("导出 JSON", "Export JSON"),
            "total" => ("共", "Total"),
            "none" => ("没有符合条件的事件。", "No incident matches."),
            "group" => ("分组", "Group"),
            "tags" => ("标签", "Tags"),
            "up" => ("在线", "up"),
            "down" => ("离线", "down"),
            "revoked" => ("已吊销", "revoked"),
            "name" => ("名称", "Name"),
            "cert_expiry" => ("证书到期", "Certificate expires"),
            "version" => ("版本", "Version"),
            "address" => ("地址", "Address"),
            "firing" => ("正在触发的告警", "Firing alerts"),
            "silences" => ("静默", "Silences"),
            "matchers" => ("匹配条件", "Matchers"),
            "ends" => ("结束", "Ends"),
            "created_by" => ("创建人", "Created by"),
            "nothing" => ("无", "None"),
            "open" => ("待处理", "open"),
            "acknowledged" => ("处理中", "acknowledged"),
            "resolved" => ("已解决", "resolved"),
            "info" => ("信息", "info"),
            "low" => ("低", "low"),
            "medium" => ("中", "medium"),
            "high" => ("高", "high"),
            "critical" => ("严重", "critical"),
            "signed_in_as" => ("当前用户", "Signed in as"),
            "error" => ("操作未完成", "Not done"),
            _ => (key, key),
        };
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_beats_cookie_beats_accept_language_beats_the_configured_default() {
        use crate::display::Language;
        let none = HashMap::new();
        assert_eq!(
            Lang::choose(&none, None, Some("zh-CN,zh;q=0.9,en;q=0.8"), Language::En),
            Lang::Zh
        );
        assert_eq!(
            Lang::choose(&none, None, Some("fr, en-US"), Language::Zh),
            Lang::En
        );
        assert_eq!(Lang::choose(&none, None, None, Language::En), Lang::En);
        assert_eq!(Lang::choose(&none, None, None, Language::Zh), Lang::Zh);
        assert_eq!(
            Lang::choose(&none, None, Some("fr"), Language::Zh),
            Lang::Zh
        );
        let cookie = "en".to_string();
        assert_eq!(
            Lang::choose(&none, Some(&cookie), Some("zh-CN"), Language::Zh),
            Lang::En
        );
        let query = HashMap::from([("lang".to_string(), "zh".to_string())]);
        assert_eq!(
            Lang::choose(&query, Some(&cookie), None, Language::En),
            Lang::Zh
        );
    }
}
