//! PAM lines as RHEL/CentOS 4 and 5 wrote them: pam_unix put itself in the
//! program field instead of the message (`sshd(pam_unix)[2412]:
//! authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser=
//! rhost=host.example.net user=root`), and those servers' `ftpd[PID]`
//! logged the same texts under its own name. These servers cannot run the
//! agent (it needs glibc 2.17); their lines arrive by syslog forwarding or
//! in old log files given to `countywatch-agent replay`.
//!
//! Unlike a modern sshd, which logs every failed attempt itself, these
//! write one `authentication failure` line and then `N more authentication
//! failures;` for the rest of the conversation, so that summary counts as
//! N failures ([`more_failures`]) for the `NAME(pam_unix)` programs only.

use crate::{Parsed, pam};

/// The PAM service of a `NAME(pam_unix)` program (`sshd(pam_unix)` →
/// `sshd`); `None` for any other program.
pub fn service(program: &str) -> Option<&str> {
    program
        .strip_suffix("(pam_unix)")
        .filter(|service| !service.is_empty())
}

/// Parses one message of a `NAME(pam_unix)` program or of `ftpd`, as
/// PAM's text for `service`.
pub fn parse(service: &str, message: &str) -> Parsed {
    pam::parse_text(service, message)
}

/// `N more authentication failures; DETAILS` logged by a `NAME(pam_unix)`
/// program: N failures of the user and address in DETAILS. `None` for any
/// other program or message.
pub fn more_failures(program: &str, message: &str) -> Option<(u32, Parsed)> {
    let service = service(program)?;
    let (count, details) = pam::more_failures(message)?;
    Some((count, pam::auth_failure(service, details)))
}

#[cfg(test)]
mod tests {
    use countywatch_wire::EventKind;

    use super::*;
    use crate::parse_message;

    fn event(program: &str, message: &str) -> countywatch_wire::EventFields {
        match parse_message(program, message) {
            Parsed::Event(EventKind::PamAuthFailed, fields) => *fields,
            other => panic!("{program}: {message}: {other:?}"),
        }
    }

    #[test]
    fn rhel4_authentication_failures_with_host_names_and_addresses() {
        let fields = event(
            "sshd(pam_unix)",
            "authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=host-44.example.net user=root",
        );
        assert_eq!(fields.service.as_deref(), Some("sshd"));
        assert_eq!(fields.user.as_deref(), Some("root"));
        assert_eq!(fields.src_host.as_deref(), Some("host-44.example.net"));
        assert_eq!(fields.src_ip, None);
        assert_eq!(fields.tty.as_deref(), Some("NODEVssh"));
        let fields = event(
            "login(pam_unix)",
            "authentication failure; logname=LOGIN uid=0 euid=0 tty=tty1 ruser= rhost=  user=oracle",
        );
        assert_eq!(fields.service.as_deref(), Some("login"));
        assert_eq!(fields.user.as_deref(), Some("oracle"));
        assert_eq!(fields.src_host, None);
        let fields = event(
            "ftpd",
            "authentication failure; logname= uid=0 euid=0 tty= ruser= rhost=192.0.2.44 user=ftpadmin",
        );
        assert_eq!(fields.service.as_deref(), Some("ftpd"));
        assert_eq!(fields.src_ip, Some("192.0.2.44".parse().unwrap()));
    }

    #[test]
    fn rhel4_su_sessions_and_bookkeeping() {
        let Parsed::Event(kind, fields) = parse_message(
            "su(pam_unix)",
            "session opened for user root by alice(uid=500)",
        ) else {
            panic!()
        };
        assert_eq!(kind, EventKind::Su);
        assert_eq!(fields.user.as_deref(), Some("alice"));
        assert_eq!(fields.target_user.as_deref(), Some("root"));
        for (program, message) in [
            (
                "sshd(pam_unix)",
                "session opened for user oracle by (uid=0)",
            ),
            ("sshd(pam_unix)", "session closed for user oracle"),
            ("sshd(pam_unix)", "check pass; user unknown"),
            ("su(pam_unix)", "session closed for user root"),
            ("ftpd", "check pass; user unknown"),
            (
                "sshd(pam_unix)",
                "2 more authentication failures; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=192.0.2.44  user=root",
            ),
        ] {
            assert_eq!(
                parse_message(program, message),
                Parsed::Ignored,
                "{program}: {message}"
            );
        }
        assert_eq!(
            parse_message("sshd(pam_unix)", "something else"),
            Parsed::Unknown
        );
        assert_eq!(
            parse_message("(pam_unix)", "session closed for user x"),
            Parsed::Unknown
        );
    }

    #[test]
    fn the_summary_counts_for_pam_unix_programs_only() {
        let message = "5 more authentication failures; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=192.0.2.44  user=root";
        let (count, Parsed::Event(kind, fields)) =
            more_failures("sshd(pam_unix)", message).unwrap()
        else {
            panic!()
        };
        assert_eq!((count, kind), (5, EventKind::PamAuthFailed));
        assert_eq!(fields.user.as_deref(), Some("root"));
        assert_eq!(fields.src_ip, Some("192.0.2.44".parse().unwrap()));
        assert_eq!(more_failures("sshd", message), None);
        assert_eq!(more_failures("ftpd", message), None);
        assert_eq!(
            more_failures(
                "sshd(pam_unix)",
                "x more authentication failures; user=root"
            ),
            None
        );
    }
}
