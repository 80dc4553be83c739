//! The prefix syslog daemons put before a message: timestamp, host, and
//! `program[pid]:`, in both the traditional RFC 3164 form
//! (`Nov 28 01:14:37 web-01 sshd[812]: ...`, rsyslog's default on Debian and
//! RHEL) and the ISO-8601 form (`2026-11-28T01:14:37.123456+08:00 web-01
//! sshd[812]: ...`, rsyslog's `RSYSLOG_FileFormat` and `journalctl -o
//! short-iso`).
//!
//! RFC 3164 timestamps carry neither a year nor a zone. They are read in the
//! zone the [`Clock`] carries (the agent passes the host's zone, or the one
//! configured for the source), and the year is the one that puts the time
//! closest before "now" in that zone (a December line read in January
//! belongs to last year). ISO-8601 timestamps keep their own offset.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;

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

/// "Now" and the zone, which place zone-less, year-less timestamps, with
/// the local year worked out once.
#[derive(Clone, Debug)]
pub struct Clock {
    /// Milliseconds since the Unix epoch.
    pub now_ms: i64,
    /// The year of `now_ms` in `zone`.
    year: i16,
    /// The zone RFC 3164 timestamps are read in.
    zone: TimeZone,
}

impl Clock {
    /// The clock at `now_ms`, reading zone-less times in `zone`.
    pub fn new(now_ms: i64, zone: &TimeZone) -> Clock {
        let year = jiff::Timestamp::from_millisecond(now_ms)
            .map_or(1970, |now| zone.to_datetime(now).year());
        Clock {
            now_ms,
            year,
            zone: zone.clone(),
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
    let time = |year: i16| {
        let local = civil(year, month, day, hour, minute, second, 0)?;
        Some(now.zone.to_timestamp(local).ok()?.as_millisecond())
    };
    // Up to a day in the future is clock skew; more means last year. Feb 29
    // of a leap year read in the next year exists only in the year before.
    let timestamp = match time(now.year) {
        Some(timestamp) if timestamp <= now.now_ms + 86_400_000 => timestamp,
        _ => time(now.year.checked_sub(1)?)?,
    };
    Some((timestamp, &line[16..]))
}

/// `2026-11-28T01:14:37[.fraction](Z|+hh:mm|-hh:mm) `.
fn iso8601(line: &str) -> Option<(i64, &str)> {
    let (stamp, rest) = line.split_once(' ')?;
    let bytes = stamp.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[10] != b'T' {
        return None;
    }
    let year = i16::try_from(number(&bytes[0..4])?).ok()?;
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
    let local = civil(year, month, day, hour, minute, second, millis)?;
    let utc = TimeZone::UTC.to_timestamp(local).ok()?.as_millisecond();
    Some((utc - offset_minutes * 60_000, rest))
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

/// A civil date and time, `None` when it does not exist (Feb 30, 25:00). A
/// leap second (`:60`) is read as `:59`.
fn civil(
    year: i16,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millis: u32,
) -> Option<DateTime> {
    let small = |value: u32| i8::try_from(value).ok();
    DateTime::new(
        year,
        small(month)?,
        small(day)?,
        small(hour)?,
        small(minute)?,
        small(second.min(59))?,
        i32::try_from(millis).ok()? * 1_000_000,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-28T12:00:00Z.
    const NOW: i64 = 1_795_867_200_000;

    fn utc() -> Clock {
        Clock::new(NOW, &TimeZone::UTC)
    }

    fn shanghai() -> TimeZone {
        TimeZone::get("Asia/Shanghai").unwrap()
    }

    /// Milliseconds of a UTC date and time.
    fn at(year: i16, month: i8, day: i8, hour: i8, minute: i8, second: i8, millis: i32) -> i64 {
        let time = DateTime::new(year, month, day, hour, minute, second, millis * 1_000_000);
        TimeZone::UTC
            .to_timestamp(time.unwrap())
            .unwrap()
            .as_millisecond()
    }

    #[test]
    fn the_clock_knows_its_year_in_its_zone() {
        assert_eq!(utc().year, 2026);
        // 2026-12-31T20:00:00Z is already 2027 in Shanghai.
        let new_year = at(2026, 12, 31, 20, 0, 0, 0);
        assert_eq!(Clock::new(new_year, &TimeZone::UTC).year, 2026);
        assert_eq!(Clock::new(new_year, &shanghai()).year, 2027);
    }

    #[test]
    fn rfc3164_lines() {
        let line = parse(
            "Nov 28 01:14:37 web-01 sshd[812]: Accepted password for bob from 10.0.0.5 port 50000 ssh2",
            &utc(),
        )
        .unwrap();
        assert_eq!(line.timestamp_ms, at(2026, 11, 28, 1, 14, 37, 0));
        assert_eq!(line.host, "web-01");
        assert_eq!(line.program, "sshd");
        assert_eq!(line.pid, Some(812));
        assert!(line.message.starts_with("Accepted password"));
        let padded = parse("Nov  8 09:00:00 h sudo:   alice : TTY=pts/0", &utc()).unwrap();
        assert_eq!(padded.program, "sudo");
        assert_eq!(padded.pid, None);
        assert_eq!(padded.message, "alice : TTY=pts/0");
        assert_eq!(padded.timestamp_ms, at(2026, 11, 8, 9, 0, 0, 0));
    }

    #[test]
    fn rfc3164_times_are_read_in_the_clocks_zone() {
        let line = "Nov 28 09:14:37 web-01 sshd[812]: x";
        let in_utc = parse(line, &utc()).unwrap().timestamp_ms;
        let in_shanghai = parse(line, &Clock::new(NOW, &shanghai()))
            .unwrap()
            .timestamp_ms;
        assert_eq!(in_utc, at(2026, 11, 28, 9, 14, 37, 0));
        assert_eq!(in_shanghai, at(2026, 11, 28, 1, 14, 37, 0));
        assert_eq!(in_utc - in_shanghai, 8 * 3_600_000);
        // A zone with summer time: July in New York is UTC-4.
        let new_york = TimeZone::get("America/New_York").unwrap();
        let summer = parse("Jul  4 12:00:00 h su: x", &Clock::new(NOW, &new_york)).unwrap();
        assert_eq!(summer.timestamp_ms, at(2026, 7, 4, 16, 0, 0, 0));
    }

    #[test]
    fn a_december_line_read_in_january_is_last_year() {
        let january = at(2027, 1, 2, 0, 0, 0, 0);
        let line = parse(
            "Dec 31 23:59:59 h su: x",
            &Clock::new(january, &TimeZone::UTC),
        )
        .unwrap();
        assert_eq!(line.timestamp_ms, at(2026, 12, 31, 23, 59, 59, 0));
    }

    #[test]
    fn new_year_in_shanghai_is_placed_in_local_time() {
        let zone = shanghai();
        // 2027-01-01T00:00:30+08:00, which is still 2026 in UTC: the agent
        // reads a line written half a minute before, in the old local year.
        let now = at(2026, 12, 31, 16, 0, 30, 0);
        let before = parse("Dec 31 23:59:59 h sshd[1]: x", &Clock::new(now, &zone)).unwrap();
        assert_eq!(before.timestamp_ms, at(2026, 12, 31, 15, 59, 59, 0));
        let after = parse("Jan  1 00:00:10 h sshd[1]: x", &Clock::new(now, &zone)).unwrap();
        assert_eq!(after.timestamp_ms, at(2026, 12, 31, 16, 0, 10, 0));
        // Read a day later (in 2027 everywhere), the December line is still
        // last year's and the January one this year's.
        let later = Clock::new(at(2027, 1, 1, 16, 0, 0, 0), &zone);
        assert_eq!(
            parse("Dec 31 23:59:59 h sshd[1]: x", &later)
                .unwrap()
                .timestamp_ms,
            at(2026, 12, 31, 15, 59, 59, 0)
        );
        assert_eq!(
            parse("Jan  1 00:00:10 h sshd[1]: x", &later)
                .unwrap()
                .timestamp_ms,
            at(2026, 12, 31, 16, 0, 10, 0)
        );
    }

    #[test]
    fn iso8601_lines_keep_their_offset_whatever_the_clocks_zone() {
        for clock in [utc(), Clock::new(NOW, &shanghai())] {
            let line = parse(
                "2026-11-28T09:14:37.123456+08:00 kylin-01 sshd-session[4242]: Invalid user admin from 203.0.113.7 port 41000",
                &clock,
            )
            .unwrap();
            assert_eq!(line.timestamp_ms, at(2026, 11, 28, 1, 14, 37, 123));
            assert_eq!(line.program, "sshd-session");
            assert_eq!(line.pid, Some(4242));
            let zulu = parse("2026-11-28T01:14:37Z h passwd[1]: x", &clock).unwrap();
            assert_eq!(zulu.timestamp_ms, at(2026, 11, 28, 1, 14, 37, 0));
            let west = parse("2026-11-27T20:14:37.5-05:00 h passwd[1]: x", &clock).unwrap();
            assert_eq!(west.timestamp_ms, at(2026, 11, 28, 1, 14, 37, 500));
        }
    }

    #[test]
    fn lines_without_a_prefix_are_refused() {
        for line in [
            "",
            "Accepted password for root from 1.2.3.4 port 22 ssh2",
            "Foo 28 01:14:37 h sshd[1]: x",
            "Nov 28 01:14:37 h no tag here",
            "Nov 28 25:14:37 h sshd[1]: x",
            "Nov 31 01:14:37 h sshd[1]: x",
            "Nov 28 01:14:37 h sshd[x]: y",
            "2026-13-28T01:14:37Z h sshd[1]: x",
            "2026-11-28T01:14:37 h sshd[1]: x",
            "Nov 28 01:14:37",
        ] {
            assert_eq!(parse(line, &utc()), None, "{line:?}");
        }
    }
}
