//! Cisco IOS and IOS XE messages (`%FACILITY-SEVERITY-MNEMONIC: text`),
//! which Ruijie RGOS switches also use for the messages parsed here.
//!
//! Known shapes (Cisco's System Message Guide; Ruijie writes the interface
//! with a space, `GigabitEthernet 0/1`, and ends with a period):
//! - `%SEC_LOGIN-4-LOGIN_FAILED: Login failed [user: U] [Source: A]
//!   [localport: P] [Reason: R] at TIME`
//! - `%SEC_LOGIN-5-LOGIN_SUCCESS: Login Success [user: U] [Source: A]
//!   [localport: P] at TIME`
//! - `%SYS-5-CONFIG_I: Configured from console by U on vty0 (A)`
//! - `%LINK-3-UPDOWN: Interface I, changed state to down`,
//!   `%LINK-5-CHANGED: Interface I, changed state to administratively down`
//! - `%LINEPROTO-5-UPDOWN: Line protocol on Interface I, changed state to up`
//!
//! User names come before the address, so addresses are found from the
//! end: a user named `x] [Source: 6.6.6.6` stays a user name.

use countywatch_wire::{EventFields, EventKind};

use crate::device_tag::{self, DeviceTag};
use crate::set_remote;

/// Finds the first `%FACILITY-N-MNEMONIC:` tag at the start of `text` or
/// after a space; returns where it starts, the tag, and the text after its
/// colon (trimmed).
pub fn find_tag(text: &str) -> Option<(usize, DeviceTag<'_>, &str)> {
    device_tag::find(text, b"%", tag_at)
}

/// `FACILITY-N-MNEMONIC: rest` → the tag and `rest`.
fn tag_at(text: &str) -> Option<(DeviceTag<'_>, &str)> {
    let (head, rest) = text.split_once(':')?;
    let name_byte = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_';
    Some((device_tag::split(head, '-', name_byte)?, rest))
}

/// The event a tagged message means, if it is one we know.
pub fn parse(tag: &DeviceTag<'_>, text: &str) -> Option<(EventKind, EventFields)> {
    match (tag.module, tag.mnemonic) {
        ("SEC_LOGIN", "LOGIN_FAILED") => login(text.strip_prefix("Login failed ")?, false),
        ("SEC_LOGIN", "LOGIN_SUCCESS") => login(text.strip_prefix("Login Success ")?, true),
        ("SYS", "CONFIG_I") => configured(text),
        ("LINK", "UPDOWN" | "CHANGED") => link(text.strip_prefix("Interface ")?),
        ("LINEPROTO", "UPDOWN") => link(text.strip_prefix("Line protocol on Interface ")?),
        _ => None,
    }
}

/// `[user: U] [Source: A] [localport: P][ [Reason: R]] at TIME`.
fn login(text: &str, succeeded: bool) -> Option<(EventKind, EventFields)> {
    let text = text.strip_prefix("[user: ")?;
    let source_at = memchr::memmem::rfind(text.as_bytes(), b"] [Source: ")?;
    let mut fields = EventFields {
        user: Some(text[..source_at].to_string()),
        ..EventFields::default()
    };
    let after = &text[source_at + "] [Source: ".len()..];
    let (address, after) = after.split_once(']')?;
    set_remote(&mut fields, address);
    if let Some(reason) = after
        .find("[Reason: ")
        .map(|at| &after[at + "[Reason: ".len()..])
        .and_then(|reason| reason.split_once(']'))
    {
        fields.reason = Some(reason.0.to_string());
    }
    let kind = if succeeded {
        EventKind::DeviceLoginSucceeded
    } else {
        EventKind::DeviceLoginFailed
    };
    Some((kind, fields))
}

/// `Configured from SOURCE by U[ on LINE[ (A)]]`.
fn configured(text: &str) -> Option<(EventKind, EventFields)> {
    let rest = text.strip_prefix("Configured from ")?;
    let (method, rest) = rest.split_once(" by ")?;
    let mut fields = EventFields {
        method: Some(method.to_string()),
        ..EventFields::default()
    };
    let mut user = rest.trim_end_matches('.');
    if let Some(open) = user.rfind(" (")
        && user.ends_with(')')
    {
        set_remote(&mut fields, &user[open + 2..user.len() - 1]);
        user = &user[..open];
    }
    if let Some((name, line)) = user.rsplit_once(" on ") {
        fields.tty = Some(line.to_string());
        user = name;
    }
    fields.user = Some(user.to_string());
    Some((EventKind::DeviceConfigChanged, fields))
}

/// `I, changed state to STATE`.
fn link(text: &str) -> Option<(EventKind, EventFields)> {
    let (interface, state) = text.rsplit_once(", changed state to ")?;
    let state = state.trim_end_matches('.').trim();
    let kind = match state {
        "up" => EventKind::InterfaceUp,
        "down" | "administratively down" => EventKind::InterfaceDown,
        _ => return None,
    };
    let fields = EventFields {
        interface: Some(interface.to_string()),
        reason: (state == "administratively down").then(|| state.to_string()),
        ..EventFields::default()
    };
    Some((kind, fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Option<(EventKind, EventFields)> {
        let (_, tag, rest) = find_tag(text)?;
        parse(&tag, rest)
    }

    #[test]
    fn logins() {
        let (kind, fields) = check("52: *Mar  1 00:01:02.345: %SEC_LOGIN-4-LOGIN_FAILED: Login failed [user: admin] [Source: 10.1.1.1] [localport: 22] [Reason: Login Authentication Failed] at 10:56:24 UTC Wed Mar 3 2010").unwrap();
        assert_eq!(kind, EventKind::DeviceLoginFailed);
        assert_eq!(fields.user.as_deref(), Some("admin"));
        assert_eq!(fields.src_ip, Some("10.1.1.1".parse().unwrap()));
        assert_eq!(
            fields.reason.as_deref(),
            Some("Login Authentication Failed")
        );
        let (kind, fields) = check("%SEC_LOGIN-5-LOGIN_SUCCESS: Login Success [user: ops] [Source: 2001:db8::7] [localport: 22] at 10:55:10 UTC Wed Mar 3 2010").unwrap();
        assert_eq!(kind, EventKind::DeviceLoginSucceeded);
        assert_eq!(fields.user.as_deref(), Some("ops"));
        assert_eq!(fields.src_ip, Some("2001:db8::7".parse().unwrap()));
    }

    #[test]
    fn a_forged_source_in_the_user_name_stays_in_the_user_name() {
        let (kind, fields) = check("%SEC_LOGIN-4-LOGIN_FAILED: Login failed [user: x] [Source: 6.6.6.6] [localport: 1] [Reason: no] at now %SYS-5-CONFIG_I: y] [Source: 10.0.0.9] [localport: 22] [Reason: Login Authentication Failed] at 10:56:24 UTC Wed Mar 3 2010").unwrap();
        assert_eq!(kind, EventKind::DeviceLoginFailed);
        assert_eq!(fields.src_ip, Some("10.0.0.9".parse().unwrap()));
        assert!(fields.user.unwrap().contains("6.6.6.6"));
    }

    #[test]
    fn configuration_changes() {
        let (kind, fields) =
            check("%SYS-5-CONFIG_I: Configured from console by admin on vty0 (192.0.2.10)")
                .unwrap();
        assert_eq!(kind, EventKind::DeviceConfigChanged);
        assert_eq!(fields.user.as_deref(), Some("admin"));
        assert_eq!(fields.tty.as_deref(), Some("vty0"));
        assert_eq!(fields.method.as_deref(), Some("console"));
        assert_eq!(fields.src_ip, Some("192.0.2.10".parse().unwrap()));
        let (_, fields) = check("%SYS-5-CONFIG_I: Configured from memory by console").unwrap();
        assert_eq!(fields.user.as_deref(), Some("console"));
        assert_eq!(fields.src_ip, None);
    }

    #[test]
    fn links() {
        let cases = [
            (
                "Jul 17 2022 01:01:51.286 UTC: %LINK-3-UPDOWN: Interface GigabitEthernet1/0/19, changed state to down",
                EventKind::InterfaceDown,
                "GigabitEthernet1/0/19",
            ),
            (
                "%LINEPROTO-5-UPDOWN: Line protocol on Interface GigabitEthernet1/0/19, changed state to up",
                EventKind::InterfaceUp,
                "GigabitEthernet1/0/19",
            ),
            (
                "%LINK-5-CHANGED: Interface Gi0/2, changed state to administratively down",
                EventKind::InterfaceDown,
                "Gi0/2",
            ),
            // Ruijie.
            (
                "%LINK-3-UPDOWN: Interface GigabitEthernet 0/1, changed state to down.",
                EventKind::InterfaceDown,
                "GigabitEthernet 0/1",
            ),
        ];
        for (text, kind, interface) in cases {
            let (parsed, fields) = check(text).unwrap();
            assert_eq!(parsed, kind, "{text}");
            assert_eq!(fields.interface.as_deref(), Some(interface), "{text}");
        }
    }

    #[test]
    fn tags_need_their_shape() {
        for text in [
            "no tag",
            "100%LINK-3-UPDOWN: x",
            "%LINK-9-UPDOWN: x",
            "%link-3-UPDOWN: x",
            "%LINK-3-: x",
            "%LINK-3-UPDOWN",
            "%",
            "% %%",
        ] {
            assert_eq!(find_tag(text).map(|found| found.1), None, "{text}");
        }
        let (_, tag, rest) = find_tag("%C4K_EBM-4-HOSTFLAPPING: Host x").unwrap();
        assert_eq!(tag.msg_id(), "C4K_EBM-4-HOSTFLAPPING");
        assert_eq!(rest, "Host x");
        assert_eq!(
            check("%LINK-3-UPDOWN: Interface Gi0/1, changed state to sideways"),
            None
        );
    }
}
