//! The page's two languages: Chinese and English. The choice comes from the
//! `lang` query parameter (the switch in the page, remembered in a cookie),
//! else the cookie, else `display.language` (default `zh`), unless that is
//! `auto`: then `Accept-Language` when it names Chinese or English, else
//! Chinese. A county's page is in the county's language even when an
//! office's browser was installed in English; a person who wants the other
//! one clicks once. Every string a person reads on the page goes through
//! [`Lang::text`], or through the functions below for text the collector
//! stores in English (timeline actions, role names, annotation keys).

use std::collections::HashMap;

use crate::incident::auth::Role;
use countywatch_notify::display::PageLanguage;

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

    /// The language for a request; `default` is `display.language`.
    pub fn choose(
        query: &HashMap<String, String>,
        cookie: Option<&String>,
        accept_language: Option<&str>,
        default: PageLanguage,
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
        match default {
            PageLanguage::Zh => Lang::Zh,
            PageLanguage::En => Lang::En,
            // The first listed language we have; q-values are in the order
            // browsers send them.
            PageLanguage::Auto => accept_language
                .unwrap_or("")
                .split(',')
                .filter_map(|item| parse(item.trim().to_ascii_lowercase().as_str()))
                .next()
                .unwrap_or(Lang::Zh),
        }
    }

    /// The same language as the display settings name it.
    pub fn language(self) -> countywatch_notify::display::Language {
        match self {
            Lang::Zh => countywatch_notify::display::Language::Zh,
            Lang::En => countywatch_notify::display::Language::En,
        }
    }

    /// The detection rules' `i18n` key of this language.
    pub fn rule_key(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// The text for `key` in this language; the key itself when missing.
    pub fn text(self, key: &'static str) -> &'static str {
        let (zh, en) = match key {
            "app" => ("countywatch 安全事件", "countywatch"),
            "incidents" => ("安全事件", "Incidents"),
            "agents" => ("探针", "Agents"),
            "alerts" => ("告警与静默", "Alerts"),
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
            "devices" => ("网络设备", "Network devices"),
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
            "overview" => ("总览", "Overview"),
            "events" => ("原始事件", "Events"),
            "audit" => ("审计记录", "Audit trail"),
            "reports" => ("月报", "Reports"),
            "users" => ("用户", "Users"),
            "decisions" => ("封禁决策", "Decisions"),
            "decisions_dry_run" => (
                "主动响应处于演练模式（默认）：决策会被记录并在此显示，但探针不会封禁任何地址。要真正封禁，在采集器配置中设置",
                "Active response is in dry run (the default): decisions are recorded and shown here, but agents block nothing. To block, set in the collector's configuration",
            ),
            "no_decisions" => ("当前没有生效的封禁决策。", "No decision is in force."),
            "decision_removed" => ("已解除封禁。", "Unblocked."),
            "decision_lifted" => ("已解除", "lifted"),
            "scope" => ("范围", "Scope"),
            "scope_county" => ("全县", "county"),
            "mode" => ("模式", "Mode"),
            "mode_enforce" => ("封禁", "enforce"),
            "mode_dry_run" => ("演练", "dry run"),
            "made_by" => ("决策来源", "Made by"),
            "applied_on" => ("已执行的主机", "Applied on"),
            "refused" => ("拒绝", "refused"),
            "unblock" => ("解除封禁", "Unblock"),
            "queue" => ("待处理队列", "Queue"),
            "queue_hint" => (
                "默认只显示待处理和处理中的事件。",
                "Showing open and acknowledged incidents by default.",
            ),
            "previous" => ("上一页", "Previous"),
            "next" => ("下一页", "Next"),
            "page_of" => ("第", "Rows"),
            "no_events" => ("没有符合条件的原始事件。", "No event matches."),
            "no_audit" => ("没有符合条件的审计记录。", "No audit entry matches."),
            "no_agents" => ("还没有探针注册。", "No agent has enrolled yet."),
            "no_alerts" => ("当前没有正在触发的告警。", "No alert is firing."),
            "no_silences" => ("没有静默。", "No silence."),
            "not_found" => ("找不到该页面或记录。", "No such page or record."),
            "forbidden" => ("您的角色无权执行此操作。", "Your role may not do this."),
            "csrf" => (
                "表单已过期，请刷新页面后重试。",
                "The form has expired; reload the page and try again.",
            ),
            "error_status" => ("未知的状态。", "Unknown status."),
            "error_reason" => (
                "标记为已解决或误报时必须填写原因。",
                "A reason is required to resolve or mark as false positive.",
            ),
            "error_transition" => (
                "当前状态下不能执行此操作。",
                "This change is not allowed from the current status.",
            ),
            "error_failed" => (
                "操作失败，请查看采集器日志。",
                "The change failed; see the collector's log.",
            ),
            "description" => ("描述", "Description"),
            "summary" => ("摘要", "Summary"),
            "runbook_url" => ("处置手册", "Runbook"),
            "guidance" => ("处置建议", "What to do"),
            "rule_description" => ("规则说明", "About this rule"),
            "max" => ("最大", "max"),
            "for_1h" => ("1 小时", "1 hour"),
            "silence_active" => ("生效中", "active"),
            "silence_pending" => ("未开始", "pending"),
            "silence_expired" => ("已失效", "expired"),
            "for_24h" => ("24 小时", "24 hours"),
            "for_7d" => ("7 天", "7 days"),
            "techniques" => ("ATT&CK 技术", "ATT&CK techniques"),
            "related" => (
                "相关事件（30 天内同一来源或主机）",
                "Related incidents (same source or host, 30 days)",
            ),
            "no_related" => ("没有相关事件。", "No related incident."),
            "assign_to" => ("指派给", "Assign to"),
            "myself" => ("我自己", "myself"),
            "agents_up" => ("在线", "Up"),
            "agents_down" => ("离线", "Down"),
            "agents_revoked" => ("已吊销", "Revoked"),
            "open_by_severity" => ("未关闭事件（按级别）", "Open incidents by severity"),
            "incidents_per_day" => ("近 30 天每日新事件", "New incidents per day, last 30 days"),
            "events_per_hour" => ("近 24 小时每小时原始事件", "Events per hour, last 24 hours"),
            "top_sources" => ("本周攻击来源 Top 10", "Top 10 source addresses this week"),
            "top_hosts" => ("本周受攻击主机 Top 10", "Top 10 targeted hosts this week"),
            "count" => ("次数", "Count"),
            "audit_verification" => ("审计记录校验", "Audit trail verification"),
            "not_verified" => ("尚未校验", "Not verified yet"),
            "verified_ok" => ("校验通过", "Verified"),
            "verified_failed" => ("校验失败", "Verification failed"),
            "since" => ("起始时间", "From"),
            "until" => ("截止时间", "Until"),
            "text" => ("关键字", "Text"),
            "target" => ("对象", "Target"),
            "outcome" => ("结果", "Outcome"),
            "success" => ("成功", "success"),
            "failure" => ("失败", "failure"),
            "evidence_of" => ("所属事件", "Evidence of"),
            "role" => ("角色", "Role"),
            "created" => ("创建时间", "Created"),
            "disabled" => ("已停用", "disabled"),
            "enabled" => ("启用", "enabled"),
            "disable" => ("停用", "Disable"),
            "enable" => ("启用", "Enable"),
            "reset_password" => ("重置密码", "Reset password"),
            "reset_password_hint" => (
                "新密码（12 至 1024 个字符），用户下次登录时必须修改",
                "New password (12 to 1024 characters); the user must change it at next login",
            ),
            "tokens" => ("API 令牌", "API tokens"),
            "label" => ("说明", "Label"),
            "expires" => ("到期", "Expires"),
            "never" => ("永不", "never"),
            "revoke" => ("吊销", "Revoke"),
            "saved" => ("已保存。", "Saved."),
            "saved_button" => ("保存", "Save"),
            "new_password_short" => ("新密码（至少 12 个字符）", "New password (12+ characters)"),
            "silence_create" => ("新建静默", "New silence"),
            "silence_this" => ("静默此告警", "Silence"),
            "expire" => ("使失效", "Expire"),
            "duration" => ("时长", "Duration"),
            "labels" => ("标签", "Labels"),
            "annotations" => ("注释", "Annotations"),
            "fired_at" => ("触发时间", "Firing since"),
            "alertname" => ("告警名称", "Alert"),
            "origin" => ("来源", "Origin"),
            "origin_alerting" => ("告警规则", "alerting rule"),
            "origin_detection" => ("检测规则", "detection rule"),
            "viewer" => ("只读用户", "viewer"),
            "operator" => ("运维人员", "operator"),
            "security_officer" => ("安全员", "security officer"),
            "admin" => ("管理员", "administrator"),
            "silent" => ("无响应", "silent"),
            "day" => ("日期", "Day"),
            "hour" => ("小时", "Hour"),
            "with_filter" => ("当前筛选", "Current filter"),
            "range_1h" => ("最近 1 小时", "last hour"),
            "range_24h" => ("最近 24 小时", "last 24 hours"),
            "range_7d" => ("最近 7 天", "last 7 days"),
            "range_30d" => ("最近 30 天", "last 30 days"),
            "newest" => ("最新", "Newest"),
            "older" => ("更早", "Older"),
            "all_agents" => ("全部探针", "All agents"),
            "more" => ("查看全部", "See all"),
            _ => (key, key),
        };
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }
}

/// A timeline action the store writes in English (`opened`, `evidence`,
/// a status name, `comment`), in `lang`.
pub fn timeline_action(lang: Lang, action: &str) -> String {
    let (zh, en) = match action {
        "opened" => ("发现", "opened"),
        "evidence" => ("新增证据", "evidence added"),
        "reopened" => ("重新打开", "reopened"),
        "acknowledged" => ("确认处理", "acknowledged"),
        "resolved" => ("已解决", "resolved"),
        "false_positive" => ("标记为误报", "marked false positive"),
        "open" => ("重新打开", "reopened"),
        "comment" => ("备注", "comment"),
        other => return other.to_string(),
    };
    match lang {
        Lang::Zh => zh.to_string(),
        Lang::En => en.to_string(),
    }
}

/// A timeline detail the store writes in English, in `lang`: the detection
/// engine's `N evidence event(s), rule X` and a transition's `assignee X`.
/// Comments and reasons people wrote stay as written.
pub fn timeline_detail(lang: Lang, action: &str, detail: &str) -> String {
    if matches!(action, "opened" | "evidence" | "reopened")
        && let Some((count, rule)) = detail.split_once(" evidence event(s), rule ")
        && count.bytes().all(|byte| byte.is_ascii_digit())
    {
        return match lang {
            Lang::Zh => format!("{count} 条证据事件，规则 {rule}"),
            Lang::En => format!("{count} evidence event{}, rule {rule}", plural(count)),
        };
    }
    if let Some(rest) = detail.strip_prefix("assignee ") {
        let (assignee, reason) = match rest.split_once(": ") {
            Some((assignee, reason)) => (assignee, Some(reason)),
            None => (rest, None),
        };
        let assignee = match lang {
            Lang::Zh => format!("负责人 {assignee}"),
            Lang::En => format!("assignee {assignee}"),
        };
        return match reason {
            Some(reason) => format!("{assignee}: {reason}"),
            None => assignee,
        };
    }
    detail.to_string()
}

fn plural(count: &str) -> &'static str {
    if count == "1" { "" } else { "s" }
}

/// Who did something: a user name, or the detection engine.
pub fn actor(lang: Lang, actor: &str) -> String {
    match (lang, actor) {
        (Lang::Zh, "detection") => "检测引擎".to_string(),
        (Lang::Zh, "system") => "系统".to_string(),
        _ => actor.to_string(),
    }
}

/// A role's name as people read it.
pub fn role(lang: Lang, role: Role) -> &'static str {
    lang.text(role.as_str())
}

/// An annotation key (`summary`, `description`, `runbook_url`) as people
/// read it; other keys stay as written.
pub fn annotation_key(lang: Lang, key: &str) -> String {
    match key {
        "summary" => lang.text("summary").to_string(),
        "description" => lang.text("description").to_string(),
        "runbook_url" => lang.text("runbook_url").to_string(),
        other => other.to_string(),
    }
}

/// The language-specific variant of an annotation: `summary_zh` for
/// `summary` in Chinese (alerting packs carry both), else the key itself.
pub fn localized_annotation<'a>(
    lang: Lang,
    annotations: &'a std::collections::BTreeMap<String, String>,
    key: &str,
) -> Option<&'a String> {
    let localized = match lang {
        Lang::Zh => annotations.get(&format!("{key}_zh")),
        Lang::En => None,
    };
    localized.or_else(|| annotations.get(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_beats_the_cookie_beats_the_configured_language_beats_the_browser() {
        let none = HashMap::new();
        let english = "en".to_string();
        let chinese = HashMap::from([("lang".to_string(), "zh".to_string())]);
        let browser_zh = Some("zh-CN,zh;q=0.9,en;q=0.8");
        let browser_en = Some("en-US,en;q=0.9");
        let cases = [
            // 1. The switch (`?lang=`), whatever else is said.
            (
                &chinese,
                Some(&english),
                browser_en,
                PageLanguage::En,
                Lang::Zh,
            ),
            // 2. The cookie the switch left, over the configuration and the
            //    browser.
            (
                &none,
                Some(&english),
                browser_zh,
                PageLanguage::Zh,
                Lang::En,
            ),
            (
                &none,
                Some(&english),
                browser_zh,
                PageLanguage::Auto,
                Lang::En,
            ),
            // 3. `display.language`, over the browser's language.
            (&none, None, browser_en, PageLanguage::Zh, Lang::Zh),
            (&none, None, browser_zh, PageLanguage::En, Lang::En),
            // 4. `auto`: the first of Chinese and English the browser names.
            (&none, None, browser_en, PageLanguage::Auto, Lang::En),
            (&none, None, browser_zh, PageLanguage::Auto, Lang::Zh),
            (&none, None, Some("fr, en-US"), PageLanguage::Auto, Lang::En),
            // 5. Neither: Chinese.
            (&none, None, Some("fr"), PageLanguage::Auto, Lang::Zh),
            (&none, None, None, PageLanguage::Auto, Lang::Zh),
        ];
        for (query, cookie, browser, configured, expected) in cases {
            assert_eq!(
                Lang::choose(query, cookie, browser, configured),
                expected,
                "{query:?} {cookie:?} {browser:?} {configured:?}"
            );
        }
    }

    #[test]
    fn stored_english_reads_in_chinese() {
        assert_eq!(timeline_action(Lang::Zh, "opened"), "发现");
        assert_eq!(
            timeline_detail(
                Lang::Zh,
                "opened",
                "10 evidence event(s), rule ssh_brute_force"
            ),
            "10 条证据事件，规则 ssh_brute_force"
        );
        assert_eq!(
            timeline_detail(Lang::En, "evidence", "1 evidence event(s), rule x"),
            "1 evidence event, rule x"
        );
        assert_eq!(
            timeline_detail(Lang::Zh, "resolved", "assignee bob: blocked"),
            "负责人 bob: blocked"
        );
        // People's own words stay as written.
        assert_eq!(
            timeline_detail(Lang::Zh, "comment", "assigned evidence event(s), rule"),
            "assigned evidence event(s), rule"
        );
        assert_eq!(role(Lang::Zh, Role::SecurityOfficer), "安全员");
        assert_eq!(annotation_key(Lang::Zh, "description"), "描述");
        assert_eq!(annotation_key(Lang::Zh, "runbook"), "runbook");
    }
}
