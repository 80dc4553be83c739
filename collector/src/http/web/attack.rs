//! MITRE ATT&CK technique names for the ids detection rules put in their
//! `tags`, in English (ATT&CK's own names) and Chinese. Only techniques the
//! shipped packs use and their parents are listed; an unknown id shows as
//! the id alone.

use crate::http::web::i18n::Lang;

/// Technique id, English name, Chinese name.
const TECHNIQUES: &[(&str, &str, &str)] = &[
    ("T1053", "Scheduled Task/Job", "计划任务/作业"),
    ("T1053.003", "Scheduled Task/Job: Cron", "计划任务：Cron"),
    ("T1070", "Indicator Removal", "痕迹清除"),
    ("T1078", "Valid Accounts", "有效账号"),
    (
        "T1078.003",
        "Valid Accounts: Local Accounts",
        "有效账号：本地账号",
    ),
    ("T1098", "Account Manipulation", "账号操纵"),
    (
        "T1098.004",
        "Account Manipulation: SSH Authorized Keys",
        "账号操纵：SSH 授权密钥",
    ),
    ("T1110", "Brute Force", "暴力破解"),
    (
        "T1110.001",
        "Brute Force: Password Guessing",
        "暴力破解：密码猜测",
    ),
    (
        "T1110.003",
        "Brute Force: Password Spraying",
        "暴力破解：密码喷洒",
    ),
    ("T1136", "Create Account", "创建账号"),
    (
        "T1136.001",
        "Create Account: Local Account",
        "创建账号：本地账号",
    ),
    ("T1205", "Traffic Signaling", "流量信令"),
    (
        "T1548",
        "Abuse Elevation Control Mechanism",
        "滥用提权控制机制",
    ),
    (
        "T1548.003",
        "Abuse Elevation Control Mechanism: Sudo and Sudo Caching",
        "滥用提权控制机制：Sudo 与 Sudo 缓存",
    ),
    ("T1562", "Impair Defenses", "削弱防御"),
    (
        "T1562.001",
        "Impair Defenses: Disable or Modify Tools",
        "削弱防御：禁用或修改安全工具",
    ),
    ("T1571", "Non-Standard Port", "非标准端口"),
];

/// The technique's name in `lang`, when the id is a known technique.
pub fn technique_name(lang: Lang, id: &str) -> Option<&'static str> {
    TECHNIQUES
        .iter()
        .find(|(known, _, _)| *known == id)
        .map(|(_, en, zh)| match lang {
            Lang::Zh => *zh,
            Lang::En => *en,
        })
}

/// The ATT&CK page of a technique id (`T1110.001` → `.../T1110/001/`);
/// `None` for tags that are not technique ids.
pub fn technique_url(id: &str) -> Option<String> {
    let rest = id.strip_prefix('T')?;
    let (technique, sub) = match rest.split_once('.') {
        Some((technique, sub)) => (technique, Some(sub)),
        None => (rest, None),
    };
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    if !digits(technique) || !sub.is_none_or(digits) {
        return None;
    }
    Some(match sub {
        Some(sub) => format!("https://attack.mitre.org/techniques/T{technique}/{sub}/"),
        None => format!("https://attack.mitre.org/techniques/T{technique}/"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn technique_ids_have_names_and_links() {
        assert_eq!(
            technique_name(Lang::En, "T1110.001"),
            Some("Brute Force: Password Guessing")
        );
        assert_eq!(technique_name(Lang::Zh, "T1110"), Some("暴力破解"));
        assert_eq!(technique_name(Lang::Zh, "T9999"), None);
        assert_eq!(
            technique_url("T1110.001").as_deref(),
            Some("https://attack.mitre.org/techniques/T1110/001/")
        );
        assert_eq!(technique_url("ssh"), None);
        assert_eq!(technique_url("T11x"), None);
    }
}
