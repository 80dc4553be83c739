//! The header of a syslog message as a network device sends it: RFC 5424
//! (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG`) or RFC 3164
//! (`<PRI>Mmm dd hh:mm:ss HOST TAG: MSG`), parsed by the `syslog_loose`
//! crate; and, when neither fits (Cisco IOS sends `<189>52: *Mar  1
//! 00:01:02.345: %LINK-3-UPDOWN: ...` with no RFC 3164 header at all), just
//! the `<PRI>` and the rest as the message, so nothing is ever dropped.
//!
//! Unlike `syslog_prefix` (lines a local syslog daemon wrote to a file),
//! these come straight off the wire and start with `<PRI>`.

use chrono::FixedOffset;

/// The parts of one received message, borrowed from it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyslogHeader<'a> {
    /// Facility number (0-23), from `<PRI>`.
    pub facility: Option<u8>,
    /// Severity number (0 emergency .. 7 debug), from `<PRI>`.
    pub severity: Option<u8>,
    /// The header's time, milliseconds since the Unix epoch (zone-less
    /// times taken as UTC). Kept for replay; the live source stamps events
    /// with the time they arrived, because device clocks are often unset.
    pub timestamp_ms: Option<i64>,
    /// HOSTNAME as the sender claims it (not authenticated).
    pub hostname: Option<&'a str>,
    /// RFC 5424 APP-NAME or the RFC 3164 tag.
    pub app_name: Option<&'a str>,
    /// RFC 5424 PROCID or the RFC 3164 tag's `[pid]`, when numeric.
    pub pid: Option<u32>,
    /// RFC 5424 MSGID.
    pub msg_id: Option<&'a str>,
    /// The message after the header (RFC 5424 MSG, RFC 3164 CONTENT), or
    /// everything after `<PRI>` when no header fits.
    pub message: &'a str,
    /// Everything after `<PRI>` (or the whole text without one): what the
    /// device parsers search for their message tags.
    pub after_pri: &'a str,
    /// Whether the message is RFC 5424.
    pub rfc5424: bool,
}

/// Parses `text` (one message, without framing). `year` places RFC 3164
/// timestamps, which carry none. Never fails: an unparseable header leaves
/// the fields empty and the whole text as the message.
pub fn parse(text: &str, year: i32) -> SyslogHeader<'_> {
    parse_at_offset(text, year, 0)
}

/// [`parse`], reading zone-less RFC 3164 times at `utc_offset_seconds`
/// east of UTC (`replay --timezone`; the live receiver stamps device
/// events with their arrival instead).
pub fn parse_at_offset(text: &str, year: i32, utc_offset_seconds: i32) -> SyslogHeader<'_> {
    let (facility, severity, after_pri) = match pri(text) {
        Some((value, rest)) => (Some(value >> 3), Some(value & 7), rest),
        None => (None, None, text),
    };
    let fallback = SyslogHeader {
        facility,
        severity,
        message: after_pri.trim(),
        after_pri,
        ..SyslogHeader::default()
    };
    if facility.is_none() {
        return fallback;
    }
    let zone = FixedOffset::east_opt(utc_offset_seconds);
    let Ok(parsed) = syslog_loose::parse_message_with_year_exact_tz(
        text,
        |_| year,
        zone,
        syslog_loose::Variant::Either,
    ) else {
        return fallback;
    };
    SyslogHeader {
        facility,
        severity,
        timestamp_ms: parsed.timestamp.map(|time| time.timestamp_millis()),
        hostname: non_empty(parsed.hostname),
        app_name: non_empty(parsed.appname),
        pid: match parsed.procid {
            Some(syslog_loose::ProcId::PID(pid)) => u32::try_from(pid).ok(),
            Some(syslog_loose::ProcId::Name(name)) => name.parse().ok(),
            None => None,
        },
        msg_id: non_empty(parsed.msgid),
        message: parsed.msg.trim(),
        after_pri,
        rfc5424: matches!(parsed.protocol, syslog_loose::Protocol::RFC5424(_)),
    }
}

/// A header field, unless empty or RFC 5424's NILVALUE `-`.
fn non_empty(value: Option<&str>) -> Option<&str> {
    value.filter(|value| !value.is_empty() && *value != "-")
}

/// `<N>` at the start, N at most 191 (facility 23, severity 7), up to
/// three digits; returns N and the text after `>`.
pub(crate) fn pri(text: &str) -> Option<(u8, &str)> {
    let rest = text.strip_prefix('<')?;
    let end = rest.find('>')?;
    let digits = &rest[..end];
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u8 = digits.parse().ok().filter(|value| *value <= 191)?;
    Some((value, &rest[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5424_from_logger() {
        // `logger --rfc5424 -t app --msgid ID -p auth.warning hello`.
        let header = parse(
            "<36>1 2026-11-28T01:02:03.456789+08:00 web-01 app 4242 ID [timeQuality tzKnown=\"1\"] hello world",
            2026,
        );
        assert_eq!(header.facility, Some(4));
        assert_eq!(header.severity, Some(4));
        assert!(header.rfc5424);
        assert_eq!(header.hostname, Some("web-01"));
        assert_eq!(header.app_name, Some("app"));
        assert_eq!(header.msg_id, Some("ID"));
        assert_eq!(header.message, "hello world");
        assert_eq!(header.timestamp_ms, Some(1_795_798_923_456));
    }

    #[test]
    fn rfc3164_from_logger() {
        let header = parse("<13>Nov 28 01:02:03 web-01 root: hello there", 2026);
        assert_eq!(header.facility, Some(1));
        assert_eq!(header.severity, Some(5));
        assert!(!header.rfc5424);
        assert_eq!(header.hostname, Some("web-01"));
        assert_eq!(header.app_name, Some("root"));
        assert_eq!(header.message, "hello there");
        assert_eq!(header.timestamp_ms, Some(1_795_827_723_000));
    }

    #[test]
    fn a_cisco_message_without_a_header_keeps_its_priority() {
        let text = "<189>52: *Mar  1 00:01:02.345: %LINK-3-UPDOWN: Interface GigabitEthernet0/1, changed state to down";
        let header = parse(text, 2026);
        assert_eq!((header.facility, header.severity), (Some(23), Some(5)));
        assert!(header.after_pri.contains("%LINK-3-UPDOWN"));
        assert!(header.message.contains("%LINK-3-UPDOWN"));
    }

    #[test]
    fn anything_else_is_kept_whole() {
        for text in [
            "",
            "no priority at all",
            "<999>too big",
            "<1x>bad",
            "<>",
            "<13",
        ] {
            let header = parse(text, 2026);
            assert_eq!(header.facility, None, "{text:?}");
            assert_eq!(header.message, text.trim(), "{text:?}");
        }
    }
}
