//! The county report's words in Chinese and English: headings, column
//! names, checklist requirements and their evidence sentences. The report
//! is Chinese first; English is for the same figures read elsewhere.

use countywatch_notify::display::Language;

/// The report's words in one language.
pub struct Texts {
    /// Chinese when true.
    zh: bool,
}

impl Texts {
    /// The words of `language`.
    pub fn new(language: Language) -> Texts {
        Texts {
            zh: language == Language::Zh,
        }
    }

    /// `zh` or `en`.
    pub fn code(&self) -> &'static str {
        if self.zh { "zh" } else { "en" }
    }

    /// A fixed word or heading by key; the key itself when unknown.
    pub fn word(&self, key: &str) -> &'static str {
        let (zh, en) = match key {
            "title" => (
                "县级信息系统运行与安全月报",
                "County systems availability and security report",
            ),
            "period" => ("报告期", "Period"),
            "timezone" => ("时区", "Time zone"),
            "generated" => ("生成时间", "Generated"),
            "department" => ("部门", "Department"),
            "all_departments" => ("全部部门", "All departments"),
            "summary" => ("概要", "Summary"),
            "departments" => ("各部门服务可用性", "Service availability by department"),
            "services" => ("服务可用性", "Service availability"),
            "hosts" => ("主机可用性", "Host availability"),
            "devices" => ("网络设备与接口", "Network devices and interfaces"),
            "outages" => ("中断明细", "Outages"),
            "certificates" => ("30 天内到期的证书", "Certificates expiring within 30 days"),
            "security" => ("安全事件", "Security incidents"),
            "compliance" => ("等保 2.0 合规检查", "MLPS 2.0 compliance checklist"),
            "service" => ("服务", "Service"),
            "name" => ("主机/设备", "Host/device"),
            "target" => ("检测目标", "Target"),
            "availability" => ("可用率 (%)", "Availability (%)"),
            "downtime" => ("中断时长 (分钟)", "Downtime (min)"),
            "outage_count" => ("中断次数", "Outages"),
            "longest" => ("最长中断 (分钟)", "Longest outage (min)"),
            "observed" => ("有数据时长 (小时)", "Observed (h)"),
            "http_status" => ("HTTP 状态", "HTTP status"),
            "services_count" => ("服务数", "Services"),
            "kind" => ("类型", "Kind"),
            "start" => ("开始", "Start"),
            "end" => ("结束", "End"),
            "minutes" => ("时长 (分钟)", "Minutes"),
            "ongoing" => ("持续中", "ongoing"),
            "expires" => ("到期时间", "Expires"),
            "days_left" => ("剩余天数", "Days left"),
            "incidents" => ("事件数", "Incidents"),
            "previous" => ("上期", "Previous period"),
            "change" => ("变化", "Change"),
            "severity" => ("严重程度", "Severity"),
            "status" => ("状态", "Status"),
            "rule" => ("规则", "Rule"),
            "count" => ("数量", "Count"),
            "metric" => ("指标", "Measure"),
            "value" => ("数值", "Value"),
            "ack" => ("响应时间 (分钟)", "Time to acknowledge (min)"),
            "resolve" => ("处置时间 (分钟)", "Time to resolve (min)"),
            "median" => ("中位数", "Median"),
            "p90" => ("90 分位", "90th percentile"),
            "top_sources" => ("主要攻击来源", "Top source addresses"),
            "top_hosts" => ("主要被攻击主机", "Most targeted hosts"),
            "address" => ("地址", "Address"),
            "host" => ("主机", "Host"),
            "requirement" => ("要求", "Requirement"),
            "result" => ("结果", "Result"),
            "evidence" => ("依据", "Evidence"),
            "pass" => ("符合", "Pass"),
            "fail" => ("不符合", "Fail"),
            "no_data" => ("无数据", "No data"),
            "none" => ("无", "None"),
            "unassigned" => ("未设置", "(none)"),
            "agent" => ("主机", "host"),
            "device" => ("设备", "device"),
            "interface" => ("接口", "interface"),
            "time_sync" => ("时间同步", "time sync"),
            "critical" => ("严重", "critical"),
            "high" => ("高", "high"),
            "medium" => ("中", "medium"),
            "low" => ("低", "low"),
            "info" => ("信息", "info"),
            "open" => ("待处理", "open"),
            "acknowledged" => ("处理中", "acknowledged"),
            "resolved" => ("已解决", "resolved"),
            "false_positive" => ("误报", "false positive"),
            _ => ("", ""),
        };
        if zh.is_empty() {
            return "";
        }
        if self.zh { zh } else { en }
    }

    /// A checklist line's requirement.
    pub fn requirement(&self, id: &str) -> String {
        let (zh, en) = match id {
            "log_retention" => (
                "网络日志和安全事件留存不少于 180 天",
                "Logs and security events kept for at least 180 days",
            ),
            "audit_trail" => (
                "审计记录完整、防篡改（签名检查点校验）",
                "Audit trail intact and tamper-evident (signed checkpoints verified)",
            ),
            "agents_reporting" => (
                "所有纳管主机均在上报监测数据",
                "Every enrolled host is reporting",
            ),
            "time_sync" => ("主机时间与时间源同步", "Host clocks synchronised"),
            "backups" => (
                "报告期内有数据备份记录",
                "Backups recorded during the period",
            ),
            _ => ("", ""),
        };
        self.pick(zh, en)
    }

    /// Evidence: how many days of events are kept.
    pub fn events_kept(&self, days: i64, required: i64, oldest: &str) -> String {
        if self.zh {
            format!("实际留存 {days} 天（要求 {required} 天），最早事件 {oldest}")
        } else {
            format!("{days} days of events kept ({required} required); oldest {oldest}")
        }
    }

    /// Evidence: no events at all.
    pub fn no_events(&self) -> String {
        self.pick("尚无安全事件记录", "no security events recorded yet")
    }

    /// Evidence: the audit trail verified.
    pub fn audit_intact(&self, entries: i64, checkpoints: i64, checkpoint: &str) -> String {
        if self.zh {
            format!(
                "audit verify 通过：{entries} 条记录，{checkpoints} 个签名检查点，最近检查点 {checkpoint}"
            )
        } else {
            format!(
                "audit verify passed: {entries} entries, {checkpoints} signed checkpoints, last checkpoint {checkpoint}"
            )
        }
    }

    /// Evidence: the audit trail is broken.
    pub fn audit_broken(&self, problem: &str, checkpoint: &str) -> String {
        if self.zh {
            format!("audit verify 失败：{problem}；最近检查点 {checkpoint}")
        } else {
            format!("audit verify failed: {problem}; last checkpoint {checkpoint}")
        }
    }

    /// Evidence: the audit trail could not be read.
    pub fn no_audit(&self) -> String {
        self.pick("无法读取审计记录", "the audit trail could not be read")
    }

    /// Evidence: agents enrolled and reporting.
    pub fn agents(&self, enrolled: usize, reporting: usize) -> String {
        if self.zh {
            format!("已纳管 {enrolled} 台，正在上报 {reporting} 台")
        } else {
            format!("{enrolled} enrolled, {reporting} reporting")
        }
    }

    /// Evidence: no timex metrics.
    pub fn no_timex(&self) -> String {
        self.pick(
            "无数据（主机未上报 node_timex_sync_status）",
            "no data (no host reports node_timex_sync_status)",
        )
    }

    /// Evidence: clocks in sync.
    pub fn clocks(&self, hosts: usize, in_sync: usize) -> String {
        if self.zh {
            format!("{hosts} 台主机中 {in_sync} 台整个报告期时间同步")
        } else {
            format!("{in_sync} of {hosts} hosts in sync for the whole period")
        }
    }

    /// Evidence: no backup recorded.
    pub fn no_backups(&self) -> String {
        self.pick(
            "审计记录中报告期内没有 backup 记录",
            "no backup recorded in the audit trail during the period",
        )
    }

    /// Evidence: backups recorded.
    pub fn backups(&self, count: usize, last: &str) -> String {
        if self.zh {
            format!("审计记录中有 {count} 次备份，最近一次 {last}")
        } else {
            format!("{count} backups recorded in the audit trail, the last at {last}")
        }
    }

    /// The body of the monthly mail the report is attached to.
    pub fn mail_text(&self, month: &str) -> String {
        if self.zh {
            format!("附件为 {month} 的县级信息系统运行与安全月报（HTML，可直接打印为 PDF）。")
        } else {
            format!(
                "Attached: the county systems availability and security report for {month} (HTML, prints to PDF)."
            )
        }
    }

    fn pick(&self, zh: &str, en: &str) -> String {
        if self.zh { zh } else { en }.to_string()
    }
}
