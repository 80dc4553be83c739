//! One syslog message a network device sent (RFC 3164, RFC 5424, or a bare
//! `<PRI>` and text) to its event: the header through [`crate::syslog_header`],
//! the message through the vendor parsers ([`crate::parse_device`]). Shared
//! by the agent's syslog receiver, `countywatch-agent replay --source
//! syslog`, and detection-rule tests' `lines:` with `parser: syslog`.

use std::borrow::Cow;

use countywatch_wire::{Event, EventFields, EventKind, EventSource, MAX_RAW_BYTES};

use crate::parse_device;
use crate::sanitize::{cap, cap_fields, escape_controls};
use crate::syslog_header;

/// Prefix put before `raw` when the message was not valid UTF-8.
pub const INVALID_UTF8_MARK: &str = "[invalid UTF-8] ";

/// Turns one received message into its event: a device event when a
/// vendor parser knows the message, else `syslog_message`. `device` is the
/// sender; `received_ms` stamps the event; `now_ms` places RFC 3164 years.
/// Returns the event and whether the bytes were not valid UTF-8. Never
/// fails: every message becomes an event.
pub fn message_to_event(
    bytes: &[u8],
    device: &str,
    received_ms: i64,
    now_ms: i64,
) -> (Event, bool) {
    let text = String::from_utf8_lossy(bytes);
    let lossy = matches!(text, Cow::Owned(_));
    let text = escape_controls(&text);
    let header = syslog_header::parse(&text, year_of(now_ms));
    let device_message = parse_device(header.after_pri);
    let (kind, mut fields, msg_id, message) = match device_message {
        Some(found) => {
            let (kind, fields) = found
                .event
                .unwrap_or((EventKind::SyslogMessage, EventFields::default()));
            (kind, fields, Some(found.msg_id), found.text)
        }
        None => (
            EventKind::SyslogMessage,
            EventFields::default(),
            header.msg_id.map(str::to_string),
            header.message,
        ),
    };
    fields.device = Some(device.to_string());
    fields.facility = header.facility;
    fields.syslog_severity = header.severity;
    fields.app_name = header.app_name.map(str::to_string);
    fields.msg_id = msg_id;
    fields.message = Some(message.to_string());
    cap_fields(&mut fields);
    let mut event = Event::new(received_ms, EventSource::Syslog, kind);
    event.fields = fields;
    event.raw = if lossy {
        format!(
            "{INVALID_UTF8_MARK}{}",
            cap(&text, MAX_RAW_BYTES - INVALID_UTF8_MARK.len())
        )
    } else {
        cap(&text, MAX_RAW_BYTES).to_string()
    };
    if text.len() > MAX_RAW_BYTES {
        event.fields.truncated = true;
    }
    (event, lossy)
}

/// The UTC year of `now_ms`, which RFC 3164 timestamps lack.
fn year_of(now_ms: i64) -> i32 {
    use chrono::Datelike;
    chrono::DateTime::from_timestamp_millis(now_ms).map_or(1970, |time| time.year())
}

/// The header's own time, for replay (the live receiver stamps events
/// with the time they arrived instead); zone-less RFC 3164 times are read
/// in `zone` (at its offset at `now_ms`).
pub fn header_time(message: &[u8], now_ms: i64, zone: &jiff::tz::TimeZone) -> Option<i64> {
    let text = String::from_utf8_lossy(message);
    let offset =
        jiff::Timestamp::from_millisecond(now_ms).map_or(0, |now| zone.to_offset(now).seconds());
    syslog_header::parse_at_offset(&text, year_of(now_ms), offset).timestamp_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_867_200_000;

    fn event(text: &[u8]) -> Event {
        message_to_event(text, "192.0.2.1", NOW, NOW).0
    }

    #[test]
    fn header_times_are_read_in_the_replay_zone() {
        let message = b"<13>Nov 28 09:00:00 sw-1 app: x";
        let utc = header_time(message, NOW, &jiff::tz::TimeZone::UTC).unwrap();
        let shanghai = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        assert_eq!(utc, NOW - 3 * 3_600_000);
        assert_eq!(
            header_time(message, NOW, &shanghai),
            Some(utc - 8 * 3_600_000)
        );
        // RFC 5424 keeps its offset.
        let with_offset = b"<13>1 2026-11-28T09:00:00+08:00 sw-1 app - - - x";
        assert_eq!(
            header_time(with_offset, NOW, &jiff::tz::TimeZone::UTC),
            Some(utc - 8 * 3_600_000)
        );
    }

    #[test]
    fn device_messages_become_device_events_with_syslog_fields() {
        let event = event(b"<189>52: *Mar  1 00:01:02.345: %LINK-3-UPDOWN: Interface GigabitEthernet0/1, changed state to down");
        assert_eq!(event.source, EventSource::Syslog);
        assert_eq!(event.kind, EventKind::InterfaceDown);
        assert_eq!(event.timestamp_ms, NOW);
        let fields = &event.fields;
        assert_eq!(fields.device.as_deref(), Some("192.0.2.1"));
        assert_eq!(fields.interface.as_deref(), Some("GigabitEthernet0/1"));
        assert_eq!(
            (fields.facility, fields.syslog_severity),
            (Some(23), Some(5))
        );
        assert_eq!(fields.msg_id.as_deref(), Some("LINK-3-UPDOWN"));
        assert_eq!(
            fields.message.as_deref(),
            Some("Interface GigabitEthernet0/1, changed state to down")
        );
        let huawei = message_to_event(b"<188>Nov 28 2026 01:02:03-08:00 HUAWEI %%01SSH/5/SSH_USER_LOGIN_FAIL(s)[12]:The SSH user failed to login. (ServiceType=stelnet, FailedReason=Password authentication failed, UserName=admin, UserAddress=203.0.113.5, LocalAddress=192.0.2.1, VPNInstanceName=_public_)", "192.0.2.2", NOW, NOW).0;
        assert_eq!(huawei.kind, EventKind::DeviceLoginFailed);
        assert_eq!(huawei.fields.user.as_deref(), Some("admin"));
        assert_eq!(
            huawei.fields.msg_id.as_deref(),
            Some("SSH/5/SSH_USER_LOGIN_FAIL")
        );
    }

    #[test]
    fn everything_else_is_a_syslog_message_never_dropped() {
        let event = event(b"<38>1 2026-11-28T01:02:03Z fw-1 sshd 77 AUTH - hello");
        assert_eq!(event.kind, EventKind::SyslogMessage);
        assert_eq!(event.fields.app_name.as_deref(), Some("sshd"));
        assert_eq!(event.fields.msg_id.as_deref(), Some("AUTH"));
        assert_eq!(event.fields.message.as_deref(), Some("hello"));
        assert_eq!(
            (event.fields.facility, event.fields.syslog_severity),
            (Some(4), Some(6))
        );
        for garbage in [
            &b""[..],
            b"<",
            b"<999>x",
            b"\x00\x01\x02",
            b"%%",
            b"%%01A/1/B:(",
        ] {
            let event = message_to_event(garbage, "d", NOW, NOW).0;
            assert_eq!(event.kind, EventKind::SyslogMessage, "{garbage:?}");
            assert!(event.validate(0).is_ok());
        }
    }

    #[test]
    fn non_utf8_is_kept_lossily_and_flagged_and_controls_escaped() {
        let (event, lossy) = message_to_event(
            b"<13>Nov 28 01:02:03 h app: caf\xe9 \x1b[31mred\n",
            "d",
            NOW,
            NOW,
        );
        assert!(lossy);
        assert!(event.raw.starts_with(INVALID_UTF8_MARK), "{}", event.raw);
        assert!(event.raw.contains("caf\u{fffd}"), "{}", event.raw);
        assert!(event.raw.contains("\\x1b[31mred\\x0a"), "{}", event.raw);
        assert!(!event.fields.message.unwrap().contains('\x1b'));
    }

    #[test]
    fn huge_messages_are_capped_to_the_wire_limits() {
        let mut text = b"<13>Nov 28 01:02:03 h app: ".to_vec();
        text.extend(std::iter::repeat_n(b'x', 70_000));
        let (event, _) = message_to_event(&text, "d", NOW, NOW);
        assert!(event.validate(0).is_ok());
        assert!(event.fields.truncated);
    }

    #[test]
    fn no_prefix_or_mutation_of_a_device_message_panics() {
        let fixtures: [&[u8]; 6] = [
            b"<188>52: *Mar  1 00:01:02.345: %SEC_LOGIN-4-LOGIN_FAILED: Login failed [user: admin] [Source: 10.1.1.1] [localport: 22] [Reason: Login Authentication Failed] at 10:56:24 UTC Wed Mar 3 2010",
            b"<189>%SYS-5-CONFIG_I: Configured from console by admin on vty0 (192.0.2.10)",
            b"<188>Nov 28 2026 01:02:03-08:00 HUAWEI %%01SSH/5/SSH_USER_LOGIN_FAIL(s)[12]:The SSH user failed to login. (ServiceType=stelnet, FailedReason=x, UserName=admin, UserAddress=203.0.113.5, VPNInstanceName=)",
            b"<190>Nov 28 01:02:03:123 2026 H3C %%10SSHS/6/SSHS_LOG: Authentication failed for user root from 140.1.1.46 port 16266 because of invalid username or wrong password.",
            b"<188>%%01IFNET/2/linkDown_active(l):CID=0x1;The interface status changes. (ifName=GE1/0/1, ifIndex=7, Reason=down)",
            b"<134>1 2026-11-28T01:02:03.456Z fw-1 policy 77 RELOAD [a b=\"c\"] policy reloaded",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for fixture in fixtures {
            for end in 0..=fixture.len() {
                let event = message_to_event(&fixture[..end], "d", NOW, NOW).0;
                assert!(event.validate(0).is_ok());
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
                let event = message_to_event(&mutated, "d", NOW, NOW).0;
                assert!(event.validate(0).is_ok());
            }
        }
    }
}
