//! Authentication log lines that a server too old to run the agent (CentOS
//! 5/6: the agent needs glibc 2.17) forwards over syslog to a nearby
//! agent's receiver: told apart from network devices' messages by their
//! program (`sshd`, `su`, `sudo`, `login`, `passwd`, the shadow tools,
//! RHEL 4-5's `NAME(pam_unix)`), and split into the same
//! [`SyslogLine`] a local log line gives, so [`crate::auth_line`] parses
//! both alike.
//!
//! The header is rsyslog's traditional forwarding format (`<PRI>Mmm dd
//! hh:mm:ss HOST TAG: MSG`, its default, zone-less: read in the clock's
//! zone) or RFC 5424 (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`,
//! with its offset). HOST is whatever the sender wrote; the receiver
//! decides what to make of it.

use crate::syslog_prefix::{self, Clock, SyslogLine};
use crate::{pam_legacy, syslog_header};

/// Programs whose forwarded lines go to the auth-log parsers.
pub const AUTH_PROGRAMS: &[&str] = &[
    "sshd",
    "sshd-session",
    "sshd-auth",
    "su",
    "sudo",
    "login",
    "ftpd",
    "passwd",
    "chpasswd",
    "chage",
    "useradd",
    "userdel",
    "usermod",
    "groupadd",
    "groupdel",
    "groupmod",
    "gpasswd",
    "newusers",
];

/// Whether `program`'s lines are authentication log lines.
pub fn is_auth_program(program: &str) -> bool {
    AUTH_PROGRAMS.contains(&program) || pam_legacy::service(program).is_some()
}

/// The parts of a received message (`<PRI>` first, control characters
/// escaped) when an auth program logged it; `None` for anything else.
pub fn split<'a>(text: &'a str, clock: &Clock) -> Option<SyslogLine<'a>> {
    let (_, after_pri) = syslog_header::pri(text)?;
    let line = if after_pri.starts_with("1 ") {
        let header = syslog_header::parse(text, 1970);
        if !header.rfc5424 {
            return None;
        }
        SyslogLine {
            timestamp_ms: header.timestamp_ms.unwrap_or(clock.now_ms),
            host: header.hostname?,
            program: header.app_name?,
            pid: header.pid,
            message: header.message,
        }
    } else {
        syslog_prefix::parse(after_pri, clock)?
    };
    is_auth_program(line.program).then_some(line)
}

#[cfg(test)]
mod tests {
    use jiff::tz::TimeZone;

    use super::*;

    /// 2026-12-06T12:00:00Z.
    const NOW: i64 = 1_796_558_400_000;

    #[test]
    fn traditional_forwarding_is_read_in_the_clocks_zone() {
        let shanghai = Clock::new(NOW, &TimeZone::get("Asia/Shanghai").unwrap());
        let text = "<86>Dec  6 19:10:01 old-db sshd(pam_unix)[2412]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=192.0.2.44  user=root";
        let line = split(text, &shanghai).unwrap();
        assert_eq!(line.host, "old-db");
        assert_eq!(line.program, "sshd(pam_unix)");
        assert_eq!(line.pid, Some(2412));
        assert!(line.message.starts_with("authentication failure;"));
        // 19:10:01 in Shanghai is 11:10:01Z.
        assert_eq!(line.timestamp_ms, NOW - 50 * 60_000 + 1_000);
    }

    #[test]
    fn rfc5424_keeps_its_offset_and_pid() {
        let clock = Clock::new(NOW, &TimeZone::UTC);
        let text = "<38>1 2026-12-06T19:10:01.000000+08:00 old-web sshd 2412 - [timeQuality tzKnown=\"1\"] Invalid user oracle from 192.0.2.44";
        let line = split(text, &clock).unwrap();
        assert_eq!(
            (line.host, line.program, line.pid),
            ("old-web", "sshd", Some(2412))
        );
        assert_eq!(line.message, "Invalid user oracle from 192.0.2.44");
        assert_eq!(line.timestamp_ms, NOW - 50 * 60_000 + 1_000);
    }

    #[test]
    fn no_cut_or_mutation_of_a_forwarded_line_panics_or_makes_an_invalid_event() {
        use crate::auth_line::LineParser;
        let fixtures: [&[u8]; 4] = [
            b"<86>Dec  6 19:10:15 old-db sshd(pam_unix)[2413]: 4000000000 more authentication failures; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=host-44.example.net  user=root",
            b"<38>1 2026-12-06T19:10:01+08:00 old-web sshd 2412 - - Invalid user oracle from 192.0.2.44",
            b"<38>Dec  6 19:10:01 old-web sshd[1]: Failed password for invalid user x from 6.6.6.6 port 1 from 192.0.2.44 port 22 ssh2",
            b"<85>Dec  6 19:10:01 old-web sudo:    alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/sh",
        ];
        let mut parser = LineParser::new(TimeZone::get("Asia/Shanghai").unwrap());
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut events = Vec::new();
        let mut check = |parser: &mut LineParser, bytes: &[u8]| {
            let text = String::from_utf8_lossy(bytes);
            let text = crate::sanitize::escape_controls(&text);
            events.clear();
            parser.parse_forwarded(&text, NOW, &mut events);
            assert!(events.len() <= crate::auth_line::MAX_REPEAT as usize);
            for event in &events {
                assert!(event.validate(0).is_ok(), "{event:?}");
                assert!(event.timestamp_ms <= NOW + crate::auth_line::MAX_FUTURE_MS);
            }
        };
        for fixture in fixtures {
            for end in 0..=fixture.len() {
                check(&mut parser, &fixture[..end]);
            }
            for _ in 0..300 {
                let mut mutated = fixture.to_vec();
                for _ in 0..3 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let at = (seed % mutated.len() as u64) as usize;
                    mutated[at] = (seed >> 32) as u8;
                }
                check(&mut parser, &mutated);
            }
        }
    }

    #[test]
    fn other_programs_and_device_messages_are_not_auth_lines() {
        let clock = Clock::new(NOW, &TimeZone::UTC);
        for text in [
            "<13>Dec  6 11:00:00 old-db ntpd[99]: synchronized",
            "<189>52: *Mar  1 00:01:02.345: %LINK-3-UPDOWN: Interface Gi0/1, changed state to down",
            "<13>1 2026-12-06T11:00:00Z sw1 app - - - hello",
            "Dec  6 11:00:00 old-db sshd[1]: no priority",
            "<13>Dec  6 11:00:00 old-db sshd[x]: bad pid",
        ] {
            assert_eq!(split(text, &clock), None, "{text}");
        }
        assert!(is_auth_program("login(pam_unix)"));
        assert!(!is_auth_program("(pam_unix)"));
    }
}
