//! The prefix syslog daemons put before a message: timestamp, host, and
//! `program[pid]:`, in both the traditional RFC 3164 form
//! (`Nov 28 01:14:37 web-01 sshd[812]: ...`, rsyslog's default on Debian and
//! RHEL) and the ISO-8601 form (`2026-11-28T01:14:37.123456+08:00 web-01
//! sshd[812]: ...`, rsyslog's `RSYSLOG_FileFormat` and `journalctl -o
//! short-iso`).
//!
//! RFC 3164 timestamps carry neither a year nor a zone. The year is the one
//! that puts the time closest before "now" (a December line read in January
//! belongs to last year); the zone is taken as UTC, which is right for most
//! servers and off by the zone offset otherwise (see docs/events.md).

/// The parts of one syslog line, borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyslogLine<'a> {
    /// When the line was logged, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The host name the syslog daemon recorded.
    pub host: &'a str,
    /// The program name from the tag (`sshd`, `sshd-session`, `sudo`...).
    pub program: &'a str,
    /// The process id from the tag, when it has one.
    pub pid: Option<u32>,
    /// Everything after `program[pid]: `.
    pub message: &'a str,
}

/// "Now", which places year-less timestamps, with its year worked out once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// Milliseconds since the Unix epoch.
    pub now_ms: i64,
    /// The (UTC) year of `now_ms`.
    year: i64,
}

impl Clock {
    /// The clock at `now_ms`.
    pub fn new(now_ms: i64) -> Clock {
        Clock {
            now_ms,
            year: civil_from_days(now_ms.div_euclid(86_400_000)).0,
        }
    }
}

/// Splits a line into its prefix and message; `None` when the line does not
/// start with a syslog prefix. `clock` places year-less timestamps.
pub fn parse<'a>(line: &'a str, clock: &Clock) -> Option<SyslogLine<'a>> {
    let (timestamp_ms, rest) = if line.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        iso8601(line)?
    } else {
        rfc3164(line, clock)?
    };
    let (host, rest) = rest.split_once(' ')?;
    if host.is_empty() {
        return None;
    }
    let (tag, message) = rest.split_once(':')?;
    if tag.is_empty() || tag.contains(' ') {
        return None;
    }
    let (program, pid) = match tag.split_once('[') {
        Some((program, pid)) => (program, Some(pid.strip_suffix(']')?.parse().ok()?)),
        None => (tag, None),
    };
    // sudo pads its message with spaces; the others use one.
    Some(SyslogLine {
        timestamp_ms,
        host,
        program,
        pid,
        message: message.trim_start_matches(' '),
    })
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Nov 28 01:14:37 ` (the day may be space-padded: `Nov  8`).
fn rfc3164<'a>(line: &'a str, now: &Clock) -> Option<(i64, &'a str)> {
    let bytes = line.as_bytes();
    if bytes.len() < 16 || bytes[3] != b' ' || bytes[15] != b' ' {
        return None;
    }
    let month = MONTHS
        .iter()
        .position(|name| name.as_bytes() == &bytes[..3])? as u32
        + 1;
    let day = match (bytes[4], bytes[5]) {
        (b' ', digit) => digit_value(digit)?,
        (tens, ones) => digit_value(tens)? * 10 + digit_value(ones)?,
    };
    let (hour, minute, second) = clock(&bytes[7..15])?;
    // Up to a day in the future is clock skew; more means last year.
    let mut timestamp = to_ms(now.year, month, day, hour, minute, second, 0)?;
    if timestamp > now.now_ms + 86_400_000 {
        timestamp = to_ms(now.year - 1, month, day, hour, minute, second, 0)?;
    }
    Some((timestamp, &line[16..]))
}

/// `2026-11-28T01:14:37[.fraction](Z|+hh:mm|-hh:mm) `.
fn iso8601(line: &str) -> Option<(i64, &str)> {
    let (stamp, rest) = line.split_once(' ')?;
    let bytes = stamp.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[10] != b'T' {
        return None;
    }
    let year = number(&bytes[0..4])? as i64;
    let month = number(&bytes[5..7])?;
    let day = number(&bytes[8..10])?;
    let (hour, minute, second) = clock(&bytes[11..19])?;
    let mut index = 19;
    let mut millis = 0;
    if bytes.get(index) == Some(&b'.') {
        index += 1;
        let start = index;
        while bytes.get(index).is_some_and(u8::is_ascii_digit) {
            if index - start < 3 {
                millis = millis * 10 + u32::from(bytes[index] - b'0');
            }
            index += 1;
        }
        for _ in (index - start)..3 {
            millis *= 10;
        }
    }
    let offset_minutes: i64 = match bytes.get(index..)? {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let minutes = i64::from(number(&[*h1, *h2])? * 60 + number(&[*m1, *m2])?);
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    let local = to_ms(year, month, day, hour, minute, second, millis)?;
    Some((local - offset_minutes * 60_000, rest))
}

fn digit_value(byte: u8) -> Option<u32> {
    byte.is_ascii_digit().then(|| u32::from(byte - b'0'))
}

fn number(bytes: &[u8]) -> Option<u32> {
    bytes
        .iter()
        .try_fold(0u32, |value, byte| Some(value * 10 + digit_value(*byte)?))
}

/// `hh:mm:ss`.
fn clock(bytes: &[u8]) -> Option<(u32, u32, u32)> {
    if bytes.len() != 8 || bytes[2] != b':' || bytes[5] != b':' {
        return None;
    }
    Some((
        number(&bytes[0..2])?,
        number(&bytes[3..5])?,
        number(&bytes[6..8])?,
    ))
}

fn to_ms(
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millis: u32,
) -> Option<i64> {
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let seconds =
        days * 86_400 + i64::from(hour) * 3_600 + i64::from(minute) * 60 + i64::from(second);
    Some(seconds * 1_000 + i64::from(millis))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm, exact for every year we will see).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-28T12:00:00Z.
    const NOW: i64 = 1_795_867_200_000;

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for days in [-1, 0, 59, 11_016, 20_000, 20_785] {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
        }
        assert_eq!(civil_from_days(NOW / 86_400_000), (2026, 11, 28));
    }

    #[test]
    fn rfc3164_lines() {
        let line = parse(
            "Nov 28 01:14:37 web-01 sshd[812]: Accepted password for bob from 10.0.0.5 port 50000 ssh2",
            &Clock::new(NOW),
        )
        .unwrap();
        assert_eq!(
            line.timestamp_ms,
            to_ms(2026, 11, 28, 1, 14, 37, 0).unwrap()
        );
        assert_eq!(line.host, "web-01");
        assert_eq!(line.program, "sshd");
        assert_eq!(line.pid, Some(812));
        assert!(line.message.starts_with("Accepted password"));
        let padded = parse(
            "Nov  8 09:00:00 h sudo:   alice : TTY=pts/0",
            &Clock::new(NOW),
        )
        .unwrap();
        assert_eq!(padded.program, "sudo");
        assert_eq!(padded.pid, None);
        assert_eq!(padded.message, "alice : TTY=pts/0");
        assert_eq!(padded.timestamp_ms, to_ms(2026, 11, 8, 9, 0, 0, 0).unwrap());
    }

    #[test]
    fn a_december_line_read_in_january_is_last_year() {
        let january = to_ms(2027, 1, 2, 0, 0, 0, 0).unwrap();
        let line = parse("Dec 31 23:59:59 h su: x", &Clock::new(january)).unwrap();
        assert_eq!(
            line.timestamp_ms,
            to_ms(2026, 12, 31, 23, 59, 59, 0).unwrap()
        );
    }

    #[test]
    fn iso8601_lines_with_zones_and_fractions() {
        let line = parse(
            "2026-11-28T09:14:37.123456+08:00 kylin-01 sshd-session[4242]: Invalid user admin from 203.0.113.7 port 41000",
            &Clock::new(NOW),
        )
        .unwrap();
        assert_eq!(
            line.timestamp_ms,
            to_ms(2026, 11, 28, 1, 14, 37, 123).unwrap()
        );
        assert_eq!(line.program, "sshd-session");
        assert_eq!(line.pid, Some(4242));
        let zulu = parse("2026-11-28T01:14:37Z h passwd[1]: x", &Clock::new(NOW)).unwrap();
        assert_eq!(
            zulu.timestamp_ms,
            to_ms(2026, 11, 28, 1, 14, 37, 0).unwrap()
        );
        let west = parse(
            "2026-11-27T20:14:37.5-05:00 h passwd[1]: x",
            &Clock::new(NOW),
        )
        .unwrap();
        assert_eq!(
            west.timestamp_ms,
            to_ms(2026, 11, 28, 1, 14, 37, 500).unwrap()
        );
    }

    #[test]
    fn lines_without_a_prefix_are_refused() {
        for line in [
            "",
            "Accepted password for root from 1.2.3.4 port 22 ssh2",
            "Foo 28 01:14:37 h sshd[1]: x",
            "Nov 28 01:14:37 h no tag here",
            "Nov 28 25:14:37 h sshd[1]: x",
            "Nov 28 01:14:37 h sshd[x]: y",
            "2026-13-28T01:14:37Z h sshd[1]: x",
            "2026-11-28T01:14:37 h sshd[1]: x",
            "Nov 28 01:14:37",
        ] {
            assert_eq!(parse(line, &Clock::new(NOW)), None, "{line:?}");
        }
    }
}
