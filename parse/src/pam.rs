//! PAM module messages, whatever program logged them:
//! `pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0
//! tty=ssh ruser= rhost=203.0.113.5  user=root`, password changes, and
//! session lines (which become `su` events for the `su` services).

use countywatch_wire::{EventFields, EventKind};

use crate::{Parsed, set_remote};

/// Parses one `pam_MODULE(SERVICE:TYPE): TEXT` message.
pub fn parse(message: &str) -> Parsed {
    let Some((module_and_service, text)) = message.split_once("): ") else {
        return Parsed::Unknown;
    };
    let Some((_module, service_type)) = module_and_service.split_once('(') else {
        return Parsed::Unknown;
    };
    let service = service_type
        .split_once(':')
        .map_or(service_type, |(service, _)| service);
    parse_text(service, text)
}

/// Parses the text a PAM module logged for `service` (after
/// `pam_MODULE(SERVICE:TYPE): `, or the whole message of the RHEL 4-5
/// `SERVICE(pam_unix)` programs).
pub(crate) fn parse_text(service: &str, text: &str) -> Parsed {
    if let Some(details) = text.strip_prefix("authentication failure;") {
        return auth_failure(service, details);
    }
    if let Some(user) = text.strip_prefix("password changed for ") {
        return Parsed::event(
            EventKind::PasswdChanged,
            EventFields {
                user: Some(user.trim_end().to_string()),
                service: Some(service.to_string()),
                ..EventFields::default()
            },
        );
    }
    if let Some(rest) = text.strip_prefix("session opened for user ") {
        if matches!(service, "su" | "su-l") {
            return su_session(service, rest);
        }
        return Parsed::Ignored;
    }
    const IGNORED: &[&str] = &[
        "session closed for user ",
        "check pass; user unknown",
        "auth could not identify password for ",
        "account ",
        "Consecutive login failures",
    ];
    if IGNORED.iter().any(|prefix| text.starts_with(prefix)) || more_failures(text).is_some() {
        return Parsed::Ignored;
    }
    Parsed::Unknown
}

/// `N more authentication failures;DETAILS` → (N, DETAILS): pam_unix's
/// summary of the failures after the first in one conversation.
pub(crate) fn more_failures(text: &str) -> Option<(u32, &str)> {
    let (count, details) = text.split_once(" more authentication failures;")?;
    if count.is_empty() || !count.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    // All digits: only an overflow fails, and a forged huge count is capped
    // by the caller anyway.
    Some((count.parse().unwrap_or(u32::MAX), details))
}

/// `logname=X uid=N euid=N tty=T ruser=R rhost=H  user=U`. `user=` comes
/// last and holds whatever name was tried, spaces and `key=` text
/// included, so it is everything after the first ` user=` that follows
/// `rhost=`.
pub(crate) fn auth_failure(service: &str, details: &str) -> Parsed {
    let mut fields = EventFields {
        service: Some(service.to_string()),
        ..EventFields::default()
    };
    let (before_user, user) = match details.find(" rhost=") {
        Some(rhost_at) => {
            let after_rhost = &details[rhost_at..];
            match after_rhost.find(" user=") {
                Some(user_at) => (
                    &details[..rhost_at + user_at],
                    Some(&after_rhost[user_at + 6..]),
                ),
                None => (details, None),
            }
        }
        None => (details, None),
    };
    for pair in before_user.split(' ') {
        match pair.split_once('=') {
            Some(("tty", tty)) if !tty.is_empty() => fields.tty = Some(tty.to_string()),
            Some(("uid", uid)) => fields.uid = uid.parse().ok(),
            Some(("rhost", host)) => set_remote(&mut fields, host),
            Some(("logname", name)) if !name.is_empty() => {
                fields.target_user = Some(name.to_string());
            }
            _ => {}
        }
    }
    fields.user = user.map(|user| user.trim_start().to_string());
    Parsed::event(EventKind::PamAuthFailed, fields)
}

/// `TARGET(uid=N) by CALLER(uid=M)` (Debian) or `TARGET by CALLER(uid=M)`
/// (RHEL).
pub(crate) fn su_session(service: &str, rest: &str) -> Parsed {
    let Some((target, caller)) = rest.rsplit_once(" by ") else {
        return Parsed::Unknown;
    };
    let strip_uid = |name: &str| {
        name.split_once("(uid=")
            .map_or(name, |(name, _)| name)
            .to_string()
    };
    Parsed::event(
        EventKind::Su,
        EventFields {
            user: Some(strip_uid(caller)).filter(|name| !name.is_empty()),
            target_user: Some(strip_uid(target)),
            service: Some(service.to_string()),
            ..EventFields::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(message: &str) -> (EventKind, EventFields) {
        match parse(message) {
            Parsed::Event(kind, fields) => (kind, *fields),
            other => panic!("{message}: {other:?}"),
        }
    }

    #[test]
    fn authentication_failures() {
        let (kind, fields) = event(
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5  user=root",
        );
        assert_eq!(kind, EventKind::PamAuthFailed);
        assert_eq!(fields.service.as_deref(), Some("sshd"));
        assert_eq!(fields.user.as_deref(), Some("root"));
        assert_eq!(fields.src_ip, Some("203.0.113.5".parse().unwrap()));
        assert_eq!(fields.tty.as_deref(), Some("ssh"));
        // No user= at all (pam_unix logs it only for known users).
        let (_, fields) = event(
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5",
        );
        assert_eq!(fields.user, None);
        let (_, fields) = event(
            "pam_unix(sudo:auth): authentication failure; logname=alice uid=1000 euid=0 tty=/dev/pts/0 ruser=alice rhost=  user=alice",
        );
        assert_eq!(fields.service.as_deref(), Some("sudo"));
        assert_eq!(fields.user.as_deref(), Some("alice"));
        assert_eq!(fields.uid, Some(1000));
        assert_eq!(fields.src_ip, None);
        let (_, fields) = event(
            "pam_sss(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=gw.example.net user=carol",
        );
        assert_eq!(fields.src_host.as_deref(), Some("gw.example.net"));
    }

    #[test]
    fn a_user_name_holding_rhost_text_does_not_move_the_address() {
        let (_, fields) = event(
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=10.9.8.7  user=x rhost=6.6.6.6 user=root",
        );
        assert_eq!(fields.src_ip, Some("10.9.8.7".parse().unwrap()));
        assert_eq!(fields.user.as_deref(), Some("x rhost=6.6.6.6 user=root"));
    }

    #[test]
    fn password_changes_and_su_sessions() {
        let (kind, fields) = event("pam_unix(passwd:chauthtok): password changed for bob");
        assert_eq!(kind, EventKind::PasswdChanged);
        assert_eq!(fields.user.as_deref(), Some("bob"));
        let (kind, fields) =
            event("pam_unix(su:session): session opened for user root(uid=0) by alice(uid=1000)");
        assert_eq!(kind, EventKind::Su);
        assert_eq!(fields.user.as_deref(), Some("alice"));
        assert_eq!(fields.target_user.as_deref(), Some("root"));
        let (_, fields) =
            event("pam_unix(su-l:session): session opened for user root by alice(uid=1000)");
        assert_eq!(fields.target_user.as_deref(), Some("root"));
        assert_eq!(fields.service.as_deref(), Some("su-l"));
        assert_eq!(
            parse("pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)"),
            Parsed::Ignored
        );
        assert_eq!(
            parse("pam_unix(cron:session): session closed for user root"),
            Parsed::Ignored
        );
        assert_eq!(parse("pam_whatever(x:y): something"), Parsed::Unknown);
        assert_eq!(parse("pam_broken"), Parsed::Unknown);
    }
}
