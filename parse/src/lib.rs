//! countywatch-parse owns turning attacker-written text into events: the
//! lines of authentication logs and the syslog messages network devices
//! send. Everything here is pure (text in, [`EventKind`] and
//! [`EventFields`] or a whole [`countywatch_wire::Event`] out): no IO, no
//! clock, no async, so the agent's live sources, `countywatch-agent
//! replay`, detection-rule tests (`lines:`) and the fuzz targets all run the
//! same code.
//!
//! - [`auth_line`]: one auth log line to its events (prefix, rsyslog
//!   repeats, the program's parser), with counts.
//! - [`syslog_prefix`]: the `TIMESTAMP HOST program[pid]:` a local syslog
//!   daemon writes (RFC 3164 and ISO-8601).
//! - [`sshd`], [`pam`], [`sudo`], [`su`], [`shadow_utils`]: one parser per
//!   program family, picked by [`parse_message`]; [`pam_legacy`] for the
//!   RHEL 4-5 `NAME(pam_unix)` programs.
//! - [`unknown_lines`]: the lines no parser understood, counted by shape,
//!   for `countywatch-agent replay`.
//! - [`line_splitter`]: bytes to lines with a cap on line length, for the
//!   agent's tailers and replay.
//! - [`auth_replay`]: `countywatch-agent replay --source auth`, a whole
//!   log to JSON events and a summary (kept here, built for speed, while
//!   the agent is built for size).
//! - [`syslog_message`]: one message a device sent to its event;
//!   [`forwarded_auth`]: the auth lines old servers forward over syslog.
//! - [`syslog_header`]: its RFC 3164 / RFC 5424 header (`syslog_loose`).
//! - [`cisco`] (also Ruijie), [`huawei`], [`h3c`]: one parser per vendor,
//!   dispatched by [`parse_device`]; [`device_tag`] finds and splits the
//!   vendors' `%FAC-N-MNEMONIC:` / `%%NNMOD/N/MNEMONIC:` tags.
//! - [`sanitize`]: control characters escaped and fields capped, on
//!   everything that leaves the crate.
//!
//! Each message parser is a pure function from one message (the text after
//! the syslog prefix) to a [`Parsed`] outcome. They use plain string
//! matching anchored at the start of the message, never a search anywhere
//! in the line, so text an attacker put in a user name ("Accepted password
//! for root...") cannot turn into an event of its own. Addresses are taken
//! from the end of a line, where sshd writes them after the attacker-chosen
//! user name.
//!
//! **Architecture Invariant:** no IO and no panics on any input; every
//! string that leaves the crate went through [`sanitize`]. ([`auth_replay`]
//! reads and writes, but only through the reader and writer it is given.)

#![forbid(unsafe_code)]

pub mod auth_line;
pub mod auth_replay;
pub mod cisco;
pub mod device_tag;
pub mod forwarded_auth;
pub mod h3c;
pub mod huawei;
pub mod line_splitter;
pub mod pam;
pub mod pam_legacy;
pub mod sanitize;
pub mod shadow_utils;
pub mod sshd;
pub mod su;
pub mod sudo;
pub mod syslog_header;
pub mod syslog_message;
pub mod syslog_prefix;
pub mod unknown_lines;

use std::net::IpAddr;

use countywatch_wire::{EventFields, EventKind};

/// What a parser made of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A security event.
    Event(EventKind, Box<EventFields>),
    /// A message the parser knows and deliberately turns into no event
    /// (session bookkeeping, a duplicate of another line's event).
    Ignored,
    /// A message the parser does not know; counted as not understood.
    Unknown,
}

impl Parsed {
    /// An event outcome.
    pub fn event(kind: EventKind, fields: EventFields) -> Parsed {
        Parsed::Event(kind, Box::new(fields))
    }
}

/// Parses `message` as logged by `program`. The program name picks the
/// parser; PAM messages can come from any program.
pub fn parse_message(program: &str, message: &str) -> Parsed {
    let parsed = match program {
        "sshd" | "sshd-session" | "sshd-auth" => sshd::parse(message),
        "sudo" => sudo::parse(message),
        "su" => su::parse(message),
        "useradd" | "userdel" | "usermod" | "groupadd" | "groupdel" | "groupmod" | "gpasswd"
        | "passwd" | "chpasswd" | "chage" | "newusers" => shadow_utils::parse(message),
        "ftpd" => pam_legacy::parse("ftpd", message),
        _ => match pam_legacy::service(program) {
            Some(service) => pam_legacy::parse(service, message),
            None => Parsed::Unknown,
        },
    };
    match parsed {
        Parsed::Unknown if message.starts_with("pam_") => pam::parse(message),
        other => other,
    }
}

/// What the device parsers made of a message that carries a vendor tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceMessage<'a> {
    /// The tag without its `%`s: `SEC_LOGIN-4-LOGIN_FAILED`, `SSH/5/SSH_USER_LOGIN_FAIL`.
    pub msg_id: String,
    /// The text after the tag.
    pub text: &'a str,
    /// The event it means, when a parser knows the message.
    pub event: Option<(EventKind, EventFields)>,
}

/// Finds the first vendor tag in `text` (a received message after its
/// `<PRI>`): Cisco/Ruijie `%FAC-N-MNEMONIC:` or Huawei/H3C
/// `%%NNMOD/N/MNEMONIC:`. The first tag is the device's own; anything an
/// attacker typed (a user name) comes after it. `None` when there is none.
pub fn parse_device(text: &str) -> Option<DeviceMessage<'_>> {
    let cisco = cisco::find_tag(text);
    let vrp = huawei::find_tag(text);
    let cisco_first = match (&cisco, &vrp) {
        (Some(cisco), Some(vrp)) => cisco.0 < vrp.0,
        (found, _) => found.is_some(),
    };
    if cisco_first {
        let (_, tag, rest) = cisco?;
        return Some(DeviceMessage {
            msg_id: tag.msg_id(),
            text: rest,
            event: cisco::parse(&tag, rest),
        });
    }
    let (_, tag, rest) = vrp?;
    Some(DeviceMessage {
        msg_id: tag.msg_id(),
        text: rest,
        event: huawei::parse(&tag, rest).or_else(|| h3c::parse(&tag, rest)),
    })
}

/// Sets `src_ip` when `address` is an IP address, else `src_host` (sshd logs
/// a name when `UseDNS` is on).
pub fn set_remote(fields: &mut EventFields, address: &str) {
    match address.parse::<IpAddr>() {
        Ok(ip) => fields.src_ip = Some(ip),
        Err(_) if !address.is_empty() => fields.src_host = Some(address.to_string()),
        Err(_) => {}
    }
}

/// Splits `HEAD from ADDR port N[ REST]` at the LAST ` from `, which is the
/// one sshd wrote: a user name may itself contain ` from X port Y`.
/// Returns (head, address, port, rest).
pub fn split_last_from(text: &str) -> Option<(&str, &str, u16, &str)> {
    let index = memchr::memmem::rfind(text.as_bytes(), b" from ")?;
    let (address, port, rest) = address_port(&text[index + 6..])?;
    Some((&text[..index], address, port, rest))
}

/// Splits `HEAD ADDR port N[ REST]` at the LAST ` port `, for the sshd lines
/// that put the address right after the user name without `from`.
pub fn split_last_address(text: &str) -> Option<(&str, &str, u16, &str)> {
    let index = memchr::memmem::rfind(text.as_bytes(), b" port ")?;
    let (head, address) = text[..index].rsplit_once(' ')?;
    let (port, rest) = port_and_rest(&text[index + 6..])?;
    Some((head, address, port, rest))
}

/// `ADDR port N[ REST]` → (address, port, rest).
fn address_port(text: &str) -> Option<(&str, u16, &str)> {
    let (address, after) = text.split_once(' ')?;
    let (port, rest) = port_and_rest(after.strip_prefix("port ")?)?;
    Some((address, port, rest))
}

/// `N[ REST]` or `N:REST` → (port, rest).
fn port_and_rest(text: &str) -> Option<(u16, &str)> {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let port = text[..end].parse().ok()?;
    Some((port, &text[end..]))
}

/// The text between `'` quotes at the start of `text`, and what follows.
pub fn quoted(text: &str) -> Option<(&str, &str)> {
    let inner = text.strip_prefix('\'')?;
    let end = inner.find('\'')?;
    Some((&inner[..end], &inner[end + 1..]))
}

/// The value of `key=` in a `k=v, k=v` or `k=v k=v` list, up to the next
/// `,` or space.
pub fn key_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let mut search = 0;
    while let Some(found) = text[search..].find(key) {
        let start = search + found;
        let at_boundary = start == 0 || matches!(text.as_bytes()[start - 1], b' ' | b',');
        let value_start = start + key.len();
        if at_boundary && text[value_start..].starts_with('=') {
            let value = &text[value_start + 1..];
            let end = value.find([',', ' ']).unwrap_or(value.len());
            return Some(&value[..end]);
        }
        search = value_start;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_from_is_the_real_address() {
        let text = "for invalid user x from 6.6.6.6 port 1 from 10.0.0.5 port 4444 ssh2";
        assert_eq!(
            split_last_from(text),
            Some((
                "for invalid user x from 6.6.6.6 port 1",
                "10.0.0.5",
                4444,
                " ssh2"
            ))
        );
        assert_eq!(
            split_last_address("user root 6.6.6.6 port 1 10.0.0.5 port 22 [preauth]"),
            Some(("user root 6.6.6.6 port 1", "10.0.0.5", 22, " [preauth]"))
        );
        assert_eq!(split_last_from("for x from 10.0.0.5 port notaport"), None);
    }

    #[test]
    fn the_first_vendor_tag_decides() {
        let cisco = parse_device("1: %SYS-5-CONFIG_I: Configured from console by %%01CFG/4/CFG_CHANGE:x on vty0 (10.0.0.1)").unwrap();
        assert_eq!(cisco.msg_id, "SYS-5-CONFIG_I");
        assert_eq!(cisco.event.unwrap().0, EventKind::DeviceConfigChanged);
        let vrp =
            parse_device("H %%10SHELL/5/SHELL_LOGIN: %SYS-5-CONFIG_I: logged in from 10.1.1.2.")
                .unwrap();
        assert_eq!(vrp.msg_id, "SHELL/5/SHELL_LOGIN");
        assert_eq!(vrp.event.unwrap().0, EventKind::DeviceLoginSucceeded);
        assert_eq!(parse_device("plain text, 100% sure"), None);
        let unknown = parse_device("%FOO-6-BAR: something").unwrap();
        assert_eq!(
            (unknown.msg_id.as_str(), unknown.text, unknown.event),
            ("FOO-6-BAR", "something", None)
        );
    }

    #[test]
    fn key_values_need_a_boundary() {
        let text = "name=bob, UID=1001, GID=1001, home=/home/bob, shell=/bin/bash, from=/dev/pts/0";
        assert_eq!(key_value(text, "name"), Some("bob"));
        assert_eq!(key_value(text, "UID"), Some("1001"));
        assert_eq!(key_value(text, "from"), Some("/dev/pts/0"));
        assert_eq!(key_value("username=x", "name"), None);
        assert_eq!(key_value("tty=ssh ruser= rhost=1.2.3.4", "ruser"), Some(""));
    }
}
