//! Lines of an authentication log (`/var/log/auth.log`, `/var/log/secure`,
//! or a journal entry's fields) to security events.
//!
//! [`LineParser`] escapes control characters, splits off the syslog prefix
//! ([`crate::syslog_prefix`]), expands rsyslog's `message repeated N times:
//! [ ... ]`, and hands the message to the program's parser
//! ([`crate::parse_message`]). It is shared by the agent's live source, by
//! `countywatch-agent replay` and by detection-rule tests' `lines:`.

use std::collections::BTreeMap;

use countywatch_wire::{Event, EventKind, EventSource, MAX_FIELD_BYTES, MAX_RAW_BYTES};
use jiff::tz::TimeZone;

use crate::sanitize::{cap, cap_fields, escape_controls};
use crate::unknown_lines::UnknownLines;
use crate::{Parsed, pam_legacy, syslog_prefix};

/// Most events one `message repeated N times` line expands to; rsyslog
/// repeats for bursts, and a forged huge N must not flood the batch.
pub const MAX_REPEAT: u32 = 1_000;

/// How far after "now" a line's time may be before it is taken as clock
/// skew and the line stamped with "now".
pub const MAX_FUTURE_MS: i64 = 5 * 60_000;

/// Counts of what the parser saw, for self-metrics and the replay summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParseStats {
    /// Lines offered to the parser.
    pub lines: u64,
    /// Lines that produced at least one event.
    pub lines_with_events: u64,
    /// Lines understood and deliberately turned into no event.
    pub lines_ignored: u64,
    /// Lines not understood: no syslog prefix, or an unknown message.
    pub lines_unknown: u64,
    /// Lines longer than the cap, kept cut.
    pub lines_truncated: u64,
    /// Events whose line was stamped more than [`MAX_FUTURE_MS`] ahead of
    /// "now", stamped with "now" instead.
    pub events_clock_skew: u64,
    /// Events produced, by kind.
    pub events: BTreeMap<EventKind, u64>,
}

/// What became of one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineOutcome {
    /// It gave this many events (at least one).
    Events(usize),
    /// It was understood and means no event.
    Ignored,
    /// No parser understood it.
    Unknown,
}

impl LineOutcome {
    /// How many events the line gave.
    pub fn events(self) -> usize {
        match self {
            LineOutcome::Events(events) => events,
            LineOutcome::Ignored | LineOutcome::Unknown => 0,
        }
    }
}

/// Parses authentication log lines into events.
#[derive(Debug)]
pub struct LineParser {
    /// What was seen so far.
    pub stats: ParseStats,
    /// The not-understood lines by shape, when asked for
    /// ([`LineParser::count_unknown`]; `replay` does, the live agent not).
    pub unknown: Option<UnknownLines>,
    /// The zone RFC 3164 timestamps are read in.
    zone: TimeZone,
    /// The clock of the last line, reused while "now" stays the same.
    clock: Option<syslog_prefix::Clock>,
}

impl Default for LineParser {
    /// A parser reading zone-less times as UTC (detection-rule tests,
    /// fuzzing); the agent passes the host's zone to [`LineParser::new`].
    fn default() -> Self {
        LineParser::new(TimeZone::UTC)
    }
}

impl LineParser {
    /// A parser reading zone-less timestamps in `zone`.
    pub fn new(zone: TimeZone) -> LineParser {
        LineParser {
            stats: ParseStats::default(),
            unknown: None,
            zone,
            clock: None,
        }
    }

    /// Also counts not-understood lines by shape, keeping `samples`
    /// examples of each.
    pub fn count_unknown(mut self, samples: usize) -> LineParser {
        self.unknown = Some(UnknownLines::new(samples));
        self
    }

    /// The clock for `now_ms`, computed once per distinct value.
    fn clock(&mut self, now_ms: i64) -> syslog_prefix::Clock {
        match &self.clock {
            Some(clock) if clock.now_ms == now_ms => clock.clone(),
            _ => {
                let clock = syslog_prefix::Clock::new(now_ms, &self.zone);
                self.clock = Some(clock.clone());
                clock
            }
        }
    }

    /// Parses one line (without its newline) and appends its events to
    /// `out`. `now_ms` places year-less timestamps; `truncated` says the
    /// line was cut by the reader. Returns how many events were appended.
    pub fn parse_line(
        &mut self,
        line: &str,
        truncated: bool,
        now_ms: i64,
        out: &mut Vec<Event>,
    ) -> usize {
        self.stats.lines += 1;
        if truncated {
            self.stats.lines_truncated += 1;
        }
        if line.is_empty() {
            self.stats.lines_ignored += 1;
            return 0;
        }
        let line = escape_controls(line);
        let clock = self.clock(now_ms);
        let Some(mut prefix) = syslog_prefix::parse(&line, &clock) else {
            self.stats.lines_unknown += 1;
            if let Some(unknown) = &mut self.unknown {
                unknown.record(None, &line);
            }
            return 0;
        };
        let skewed = restamp_future(&mut prefix, now_ms);
        let outcome = self.message_outcome(&prefix, &line, truncated, out);
        self.count_skew(skewed, outcome)
    }

    /// Parses a message another server forwarded over syslog (`<PRI>`
    /// first, control characters escaped) when an auth program logged it
    /// ([`crate::forwarded_auth`]): its events (host: the name the sender
    /// wrote) are appended to `out` and the outcome counted and returned.
    /// `None`, and nothing counted, for any other message. `now_ms` is when
    /// it arrived.
    pub fn parse_forwarded(
        &mut self,
        text: &str,
        now_ms: i64,
        out: &mut Vec<Event>,
    ) -> Option<LineOutcome> {
        let clock = self.clock(now_ms);
        let mut line = crate::forwarded_auth::split(text, &clock)?;
        self.stats.lines += 1;
        let skewed = restamp_future(&mut line, now_ms);
        let outcome = self.message_outcome(&line, text, false, out);
        self.count_skew(skewed, outcome);
        Some(outcome)
    }

    /// Counts the events of a restamped (`skewed`) line as clock skew;
    /// returns how many events the line gave.
    fn count_skew(&mut self, skewed: bool, outcome: LineOutcome) -> usize {
        let events = outcome.events();
        if skewed {
            self.stats.events_clock_skew += events as u64;
        }
        events
    }

    /// Parses one message whose prefix is already split off (a syslog line,
    /// or a journal entry's fields); `raw` is the evidence kept. Counts the
    /// outcome and returns how many events were appended. Expects control
    /// characters to be escaped already.
    pub fn parse_message(
        &mut self,
        prefix: &syslog_prefix::SyslogLine<'_>,
        raw: &str,
        truncated: bool,
        out: &mut Vec<Event>,
    ) -> usize {
        self.message_outcome(prefix, raw, truncated, out).events()
    }

    /// [`LineParser::parse_message`], saying what became of the message.
    fn message_outcome(
        &mut self,
        prefix: &syslog_prefix::SyslogLine<'_>,
        raw: &str,
        truncated: bool,
        out: &mut Vec<Event>,
    ) -> LineOutcome {
        let (message, repeat) = repeated(prefix.message);
        let (parsed, repeat) = match pam_legacy::more_failures(prefix.program, message) {
            Some((count, parsed)) => (parsed, repeat.saturating_mul(count).clamp(1, MAX_REPEAT)),
            None => (crate::parse_message(prefix.program, message), repeat),
        };
        match parsed {
            Parsed::Event(kind, mut fields) => {
                fields.process = Some(prefix.program.to_string());
                fields.pid = prefix.pid;
                fields.truncated = truncated;
                cap_fields(&mut fields);
                let event = Event {
                    timestamp_ms: prefix.timestamp_ms,
                    host: cap(prefix.host, MAX_FIELD_BYTES.min(253)).to_string(),
                    source: EventSource::Auth,
                    kind,
                    fields: *fields,
                    raw: cap(raw, MAX_RAW_BYTES).to_string(),
                };
                for _ in 1..repeat {
                    out.push(event.clone());
                }
                out.push(event);
                self.stats.lines_with_events += 1;
                *self.stats.events.entry(kind).or_default() += u64::from(repeat);
                LineOutcome::Events(repeat as usize)
            }
            Parsed::Ignored => {
                self.stats.lines_ignored += 1;
                LineOutcome::Ignored
            }
            Parsed::Unknown => {
                self.stats.lines_unknown += 1;
                if let Some(unknown) = &mut self.unknown {
                    unknown.record(Some((prefix.program, message)), raw);
                }
                LineOutcome::Unknown
            }
        }
    }
}

/// Stamps a line more than [`MAX_FUTURE_MS`] ahead of `now_ms` with
/// `now_ms` (its `raw` keeps the original); returns whether it did.
fn restamp_future(line: &mut syslog_prefix::SyslogLine<'_>, now_ms: i64) -> bool {
    let skewed = line.timestamp_ms > now_ms.saturating_add(MAX_FUTURE_MS);
    if skewed {
        line.timestamp_ms = now_ms;
    }
    skewed
}

/// `message repeated N times: [ MESSAGE]` → (MESSAGE, N); anything else → (message, 1).
fn repeated(message: &str) -> (&str, u32) {
    let Some(rest) = message.strip_prefix("message repeated ") else {
        return (message, 1);
    };
    let Some((count, inner)) = rest.split_once(" times: [") else {
        return (message, 1);
    };
    let (Ok(count), Some(inner)) = (count.parse::<u32>(), inner.strip_suffix(']')) else {
        return (message, 1);
    };
    (inner.trim_start(), count.clamp(1, MAX_REPEAT))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-28T12:00:00Z.
    const NOW: i64 = 1_795_867_200_000;

    fn parse_all(text: &str) -> (Vec<Event>, ParseStats) {
        let mut parser = LineParser::default();
        let mut events = Vec::new();
        for line in text.lines() {
            parser.parse_line(line, false, NOW, &mut events);
        }
        (events, parser.stats)
    }

    fn kinds(events: &[Event]) -> Vec<&'static str> {
        events.iter().map(|event| event.kind.as_str()).collect()
    }

    /// A Debian/Ubuntu auth.log excerpt in OpenSSH's, sudo's, PAM's and
    /// shadow's real formats.
    const DEBIAN_AUTH_LOG: &str = "\
Nov 28 01:00:01 web-01 sshd[1001]: Invalid user admin from 203.0.113.5 port 40000
Nov 28 01:00:01 web-01 sshd[1001]: pam_unix(sshd:auth): check pass; user unknown
Nov 28 01:00:01 web-01 sshd[1001]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5
Nov 28 01:00:03 web-01 sshd[1001]: Failed password for invalid user admin from 203.0.113.5 port 40000 ssh2
Nov 28 01:00:04 web-01 sshd[1001]: Connection closed by invalid user admin 203.0.113.5 port 40000 [preauth]
Nov 28 01:00:10 web-01 sshd[1002]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5  user=root
Nov 28 01:00:12 web-01 sshd[1002]: Failed password for root from 203.0.113.5 port 40002 ssh2
Nov 28 01:00:15 web-01 sshd[1002]: message repeated 5 times: [ Failed password for root from 203.0.113.5 port 40002 ssh2]
Nov 28 01:00:15 web-01 sshd[1002]: error: maximum authentication attempts exceeded for root from 203.0.113.5 port 40002 ssh2 [preauth]
Nov 28 01:00:15 web-01 sshd[1002]: Disconnecting authenticating user root 203.0.113.5 port 40002: Too many authentication failures [preauth]
Nov 28 01:00:15 web-01 sshd[1002]: PAM 5 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5  user=root
Nov 28 01:05:00 web-01 sshd[1100]: Accepted publickey for deploy from 10.0.0.8 port 51000 ssh2: ED25519 SHA256:q1w2e3r4t5y6u7i8o9p0
Nov 28 01:05:00 web-01 sshd[1100]: pam_unix(sshd:session): session opened for user deploy(uid=1001) by (uid=0)
Nov 28 01:05:00 web-01 systemd-logind[400]: New session 12 of user deploy.
Nov 28 01:05:30 web-01 sudo:   deploy : TTY=pts/0 ; PWD=/home/deploy ; USER=root ; COMMAND=/usr/sbin/useradd -m eve
Nov 28 01:05:30 web-01 sudo: pam_unix(sudo:session): session opened for user root(uid=0) by deploy(uid=1001)
Nov 28 01:05:30 web-01 useradd[1200]: new group: name=eve, GID=1002
Nov 28 01:05:30 web-01 useradd[1200]: new user: name=eve, UID=1002, GID=1002, home=/home/eve, shell=/bin/sh, from=/dev/pts/0
Nov 28 01:05:31 web-01 usermod[1201]: add 'eve' to group 'sudo'
Nov 28 01:05:31 web-01 usermod[1201]: add 'eve' to shadow group 'sudo'
Nov 28 01:05:40 web-01 passwd[1202]: pam_unix(passwd:chauthtok): password changed for eve
Nov 28 01:06:00 web-01 su[1300]: (to root) deploy on pts/0
Nov 28 01:06:00 web-01 su[1300]: pam_unix(su:session): session opened for user root(uid=0) by deploy(uid=1001)
Nov 28 01:07:00 web-01 su[1301]: FAILED SU (to root) eve on pts/1
Nov 28 01:08:00 web-01 sudo:      eve : 3 incorrect password attempts ; TTY=pts/1 ; PWD=/home/eve ; USER=root ; COMMAND=/bin/bash
Nov 28 01:09:00 web-01 sshd[1100]: Disconnected from user deploy 10.0.0.8 port 51000
Nov 28 01:09:01 web-01 CRON[1400]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)
";

    #[test]
    fn a_debian_auth_log() {
        let (events, stats) = parse_all(DEBIAN_AUTH_LOG);
        assert_eq!(
            kinds(&events),
            vec![
                "ssh_invalid_user",
                "pam_auth_failed",
                "ssh_login_failed",
                "ssh_connection_closed",
                "pam_auth_failed",
                "ssh_login_failed",
                "ssh_login_failed",
                "ssh_login_failed",
                "ssh_login_failed",
                "ssh_login_failed",
                "ssh_login_failed",
                "ssh_max_auth_attempts",
                "ssh_login_accepted",
                "sudo_command",
                "group_added",
                "user_added",
                "group_member_added",
                "passwd_changed",
                "su",
                "su_failed",
                "sudo_auth_failed",
                "ssh_disconnected",
            ]
        );
        assert_eq!(stats.lines, 27);
        assert_eq!(stats.lines_unknown, 1, "systemd-logind's line");
        assert_eq!(stats.events[&EventKind::SshLoginFailed], 7);
        let accepted = &events[12];
        assert_eq!(accepted.fields.user.as_deref(), Some("deploy"));
        assert_eq!(accepted.fields.src_ip, Some("10.0.0.8".parse().unwrap()));
        assert_eq!(accepted.fields.process.as_deref(), Some("sshd"));
        assert_eq!(accepted.fields.pid, Some(1100));
        assert_eq!(accepted.host, "web-01");
        assert!(accepted.raw.ends_with("SHA256:q1w2e3r4t5y6u7i8o9p0"));
        // The repeated line stands for five events with the inner message's fields.
        for event in &events[6..11] {
            assert_eq!(event.fields.user.as_deref(), Some("root"));
            assert_eq!(event.fields.src_port, Some(40002));
        }
    }

    #[test]
    fn a_rhel_secure_log_with_iso_timestamps_and_sshd_session() {
        let log = "\
2026-11-28T09:00:01.000000+08:00 kylin-01 sshd-session[2001]: Invalid user test from 198.51.100.9 port 50100
2026-11-28T09:00:03.000000+08:00 kylin-01 sshd-session[2001]: Failed password for invalid user test from 198.51.100.9 port 50100 ssh2
2026-11-28T09:00:05.000000+08:00 kylin-01 sshd-session[2002]: Accepted password for ops from 198.51.100.10 port 50200 ssh2
2026-11-28T09:00:06.000000+08:00 kylin-01 sshd[2000]: reverse mapping checking getaddrinfo for bad.example [198.51.100.11] failed - POSSIBLE BREAK-IN ATTEMPT!
2026-11-28T09:01:00.000000+08:00 kylin-01 su[2100]: pam_unix(su-l:session): session opened for user root by ops(uid=1000)
2026-11-28T09:02:00.000000+08:00 kylin-01 groupadd[2200]: group added to /etc/group: name=audit2, GID=1500
2026-11-28T09:02:00.000000+08:00 kylin-01 groupadd[2200]: group added to /etc/gshadow: name=audit2
2026-11-28T09:02:00.000000+08:00 kylin-01 groupadd[2200]: new group: name=audit2, GID=1500
2026-11-28T09:03:00.000000+08:00 kylin-01 gpasswd[2300]: user ops added by root to group audit2
2026-11-28T09:04:00.000000+08:00 kylin-01 userdel[2400]: delete user 'olduser'
2026-11-28T09:05:00.000000+08:00 kylin-01 chpasswd[2500]: pam_unix(chpasswd:chauthtok): password changed for ops
";
        let (events, stats) = parse_all(log);
        assert_eq!(
            kinds(&events),
            vec![
                "ssh_invalid_user",
                "ssh_login_failed",
                "ssh_login_accepted",
                "ssh_possible_break_in",
                "su",
                "group_added",
                "group_member_added",
                "user_deleted",
                "passwd_changed",
            ]
        );
        assert_eq!(stats.lines_unknown, 0);
        // 09:00:01+08:00 is 01:00:01Z.
        assert_eq!(events[0].timestamp_ms, NOW - 11 * 3_600_000 + 1_000);
        assert_eq!(events[2].fields.user.as_deref(), Some("ops"));
    }

    #[test]
    fn injected_text_cannot_forge_events() {
        let log = concat!(
            // A user name holding an escaped newline and a whole fake line
            // (rsyslog writes control characters as #012).
            "Nov 28 02:00:00 web-01 sshd[3000]: Invalid user x#012Nov 28 02:00:00 web-01 sshd[3000]: Accepted password for root from 6.6.6.6 port 22 ssh2 from 10.9.8.7 port 41000\n",
            // The same with a raw ESC sequence and a carriage return.
            "Nov 28 02:00:01 web-01 sshd[3001]: Invalid user \u{1b}[2K\rAccepted password for root from 6.6.6.6 port 22 ssh2 from 10.9.8.7 port 41001\n",
            // Quotes and a fake address in the user name of a failed login.
            "Nov 28 02:00:02 web-01 sshd[3002]: Failed password for invalid user \"root\" from 6.6.6.6 port 22 from 10.9.8.7 port 41002 ssh2\n",
            // A fake line in a sudo command.
            "Nov 28 02:00:03 web-01 sudo:    eve : TTY=pts/1 ; PWD=/home/eve ; USER=root ; COMMAND=/bin/echo Nov 28 02:00:03 web-01 sshd[1]: Accepted password for root from 6.6.6.6 port 22 ssh2\n",
            // A line that is nothing but the fake text: no prefix, not understood.
            "Accepted password for root from 6.6.6.6 port 22 ssh2\n",
        );
        let (events, stats) = parse_all(log);
        assert_eq!(
            kinds(&events),
            vec![
                "ssh_invalid_user",
                "ssh_invalid_user",
                "ssh_login_failed",
                "sudo_command"
            ]
        );
        assert_eq!(stats.lines_unknown, 1);
        for event in &events[..3] {
            assert_eq!(
                event.fields.src_ip,
                Some("10.9.8.7".parse().unwrap()),
                "{event:?}"
            );
            assert!(!event.raw.contains('\u{1b}') && !event.raw.contains('\r'));
        }
        assert_eq!(
            events[1].fields.user.as_deref(),
            Some("\\x1b[2K\\x0dAccepted password for root from 6.6.6.6 port 22 ssh2")
        );
        assert_eq!(
            events[2].fields.user.as_deref(),
            Some("\"root\" from 6.6.6.6 port 22")
        );
        assert_eq!(events[3].fields.user.as_deref(), Some("eve"));
    }

    #[test]
    fn the_same_line_in_shanghai_and_in_utc_is_eight_hours_apart() {
        let line = "Nov 28 09:00:01 web-01 sshd[1001]: Failed password for root from 203.0.113.5 port 40000 ssh2";
        let mut events = Vec::new();
        let shanghai = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        LineParser::new(shanghai).parse_line(line, false, NOW, &mut events);
        LineParser::new(TimeZone::UTC).parse_line(line, false, NOW, &mut events);
        // 09:00:01 in Shanghai is 01:00:01Z; in UTC it is 09:00:01Z.
        assert_eq!(events[0].timestamp_ms, NOW - 11 * 3_600_000 + 1_000);
        assert_eq!(events[1].timestamp_ms, NOW - 3 * 3_600_000 + 1_000);
        assert_eq!(
            events[1].timestamp_ms - events[0].timestamp_ms,
            8 * 3_600_000
        );
    }

    #[test]
    fn lines_from_the_future_are_stamped_now_and_counted() {
        let mut parser = LineParser::default();
        let mut events = Vec::new();
        // NOW is 12:00:00Z: four minutes ahead is skew the agent accepts,
        // ten minutes (a zone set wrong, a sender's clock ahead) is not.
        for line in [
            "Nov 28 12:04:00 h sshd[1]: Invalid user a from 192.0.2.1 port 1",
            "Nov 28 12:10:00 h sshd[1]: Invalid user b from 192.0.2.1 port 1",
            "Nov 28 12:10:00 h sshd[1]: message repeated 3 times: [ Invalid user c from 192.0.2.1 port 1]",
            "Nov 28 12:10:00 h sshd[1]: Connection closed by 192.0.2.1 port 1 [preauth]",
            "2026-11-28T20:30:00+08:00 h sshd[1]: Invalid user d from 192.0.2.1 port 1",
        ] {
            parser.parse_line(line, false, NOW, &mut events);
        }
        let stamps: Vec<i64> = events.iter().map(|event| event.timestamp_ms).collect();
        assert_eq!(stamps, vec![NOW + 240_000, NOW, NOW, NOW, NOW, NOW]);
        assert_eq!(parser.stats.events_clock_skew, 5);
        assert!(
            events[1].raw.starts_with("Nov 28 12:10:00 "),
            "original time kept"
        );
    }

    /// A CentOS/RHEL 4-5 `/var/log/secure` excerpt: OpenSSH 3.9/4.3 and
    /// pam_unix in the program field.
    const RHEL4_SECURE: &str = "\
Dec  6 03:10:01 old-db sshd[2412]: Invalid user oracle from 192.0.2.44
Dec  6 03:10:01 old-db sshd(pam_unix)[2412]: check pass; user unknown
Dec  6 03:10:01 old-db sshd(pam_unix)[2412]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=host-44.example.net
Dec  6 03:10:03 old-db sshd[2412]: Failed password for invalid user oracle from 192.0.2.44 port 51234 ssh2
Dec  6 03:10:09 old-db sshd(pam_unix)[2413]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=host-44.example.net  user=root
Dec  6 03:10:15 old-db sshd(pam_unix)[2413]: 2 more authentication failures; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=host-44.example.net  user=root
Dec  6 03:10:20 old-db sshd[2414]: Did not receive identification string from 192.0.2.44
Dec  6 03:10:21 old-db sshd[2415]: Received disconnect from 192.0.2.44: 11: Bye Bye
Dec  6 03:10:22 old-db sshd[2416]: reverse mapping checking getaddrinfo for host-44.example.net [192.0.2.44] failed - POSSIBLE BREAK-IN ATTEMPT!
Dec  6 03:11:00 old-db su(pam_unix)[2500]: session opened for user root by alice(uid=500)
Dec  6 03:11:30 old-db su(pam_unix)[2500]: session closed for user root
Dec  6 03:12:00 old-db sshd(pam_unix)[2600]: session opened for user alice by (uid=0)
Dec  6 03:12:05 old-db sshd(pam_unix)[2600]: session closed for user alice
Dec  6 03:12:10 old-db login(pam_unix)[2700]: authentication failure; logname=LOGIN uid=0 euid=0 tty=tty1 ruser= rhost=  user=root
Dec  6 03:12:20 old-db ftpd[2800]: authentication failure; logname= uid=0 euid=0 tty= ruser= rhost=192.0.2.45 user=ftp1
Dec  6 03:12:30 old-db ntpd[99]: synchronized to 192.0.2.1, stratum 2
";

    #[test]
    fn rhel4_secure_log() {
        let mut parser = LineParser::default().count_unknown(1);
        let mut events = Vec::new();
        // 2026-12-06T12:00:00Z.
        let now = NOW + 8 * 86_400_000;
        for line in RHEL4_SECURE.lines() {
            parser.parse_line(line, false, now, &mut events);
        }
        assert_eq!(
            kinds(&events),
            vec![
                "ssh_invalid_user",
                "pam_auth_failed",
                "ssh_login_failed",
                "pam_auth_failed",
                "pam_auth_failed",
                "pam_auth_failed",
                "ssh_possible_break_in",
                "su",
                "pam_auth_failed",
                "pam_auth_failed",
            ]
        );
        assert_eq!(events[0].fields.src_ip, Some("192.0.2.44".parse().unwrap()));
        assert_eq!(
            events[1].fields.src_host.as_deref(),
            Some("host-44.example.net")
        );
        for summary in &events[4..6] {
            assert_eq!(summary.fields.user.as_deref(), Some("root"));
            assert_eq!(
                summary.fields.src_host.as_deref(),
                Some("host-44.example.net")
            );
            assert_eq!(summary.fields.process.as_deref(), Some("sshd(pam_unix)"));
        }
        assert_eq!(events[7].fields.target_user.as_deref(), Some("root"));
        assert_eq!(events[8].fields.user.as_deref(), Some("root"));
        assert_eq!(events[9].fields.user.as_deref(), Some("ftp1"));
        let stats = &parser.stats;
        assert_eq!(stats.lines, 16);
        assert_eq!(stats.lines_with_events, 9);
        assert_eq!(stats.lines_ignored, 6);
        assert_eq!(stats.lines_unknown, 1);
        let unknown = parser.unknown.unwrap();
        assert_eq!(
            unknown.by_count()[0].0,
            "ntpd: synchronized to <N> stratum <N>"
        );
    }

    #[test]
    fn forwarded_lines_of_auth_programs_are_parsed_and_counted() {
        let mut parser = LineParser::default();
        let mut events = Vec::new();
        let now = NOW + 8 * 86_400_000;
        let outcomes: Vec<Option<LineOutcome>> = [
            "<38>Dec  6 03:10:01 old-db sshd[2412]: Invalid user oracle from 192.0.2.44",
            "<86>Dec  6 03:10:15 old-db sshd(pam_unix)[2413]: 2 more authentication failures; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=host-44.example.net  user=root",
            "<86>Dec  6 03:10:16 old-db sshd(pam_unix)[2413]: session closed for user root",
            "<38>Dec  6 03:10:17 old-db sshd[2414]: something new",
            "<13>Dec  6 03:10:18 old-db ntpd[1]: not an auth program",
            "<38>Dec  6 13:10:18 old-db sshd[2415]: Invalid user late from 192.0.2.44",
        ]
        .iter()
        .map(|text| parser.parse_forwarded(text, now, &mut events))
        .collect();
        assert_eq!(
            outcomes,
            vec![
                Some(LineOutcome::Events(1)),
                Some(LineOutcome::Events(2)),
                Some(LineOutcome::Ignored),
                Some(LineOutcome::Unknown),
                None,
                Some(LineOutcome::Events(1)),
            ]
        );
        assert_eq!(
            kinds(&events)[..3],
            ["ssh_invalid_user", "pam_auth_failed", "pam_auth_failed"]
        );
        assert_eq!(events[0].host, "old-db");
        assert_eq!(
            events[0].timestamp_ms,
            now - (8 * 60 + 49) * 60_000 - 59_000
        );
        assert_eq!(
            events[3].timestamp_ms, now,
            "an hour ahead: stamped on arrival"
        );
        assert_eq!(parser.stats.events_clock_skew, 1);
        assert_eq!(
            (
                parser.stats.lines,
                parser.stats.lines_ignored,
                parser.stats.lines_unknown
            ),
            (5, 1, 1)
        );
    }

    #[test]
    fn repeated_counts_are_capped_and_malformed_ones_are_plain_messages() {
        assert_eq!(repeated("message repeated 3 times: [ x]"), ("x", 3));
        assert_eq!(
            repeated("message repeated 4000000000 times: [ x]"),
            ("x", MAX_REPEAT)
        );
        assert_eq!(repeated("message repeated many times: [ x]").1, 1);
    }
}
