//! Huawei VRP messages (`%%01MODULE/SEVERITY/MNEMONIC(l)[seq]:text`), and
//! the tag parser H3C Comware shares (`%%10MODULE/SEVERITY/MNEMONIC:`).
//!
//! Known shapes (Huawei's log references):
//! - `SSH/5/SSH_USER_LOGIN_FAIL: The SSH user failed to login.
//!   (ServiceType=S, FailedReason=R, UserName=U, UserAddress=A, ...)`; older
//!   releases write `IPAddress=` instead of `UserAddress=`
//! - `SSH/4/SSH_FAIL: Failed to login through SSH. (IP=A, VpnInstanceName=V,
//!   UserName=U, Times=N, FailedReason=R)`
//! - `SSH/5/SSH_USER_LOGIN: The SSH user succeeded in logging in. (...)`
//! - `CFG/4/CFG_CHANGE: ...` (also `CONFIG_CHANGE`, `CFGCHANGE`)
//! - `IFNET/4/IF_STATE: Interface I has turned into DOWN state.`
//!   (also from `IFPDT`)
//! - `IFNET/4/LINK_STATE: The line protocol IP on the interface I has
//!   entered the UP state.`
//! - `IFNET/2/linkDown_active: The interface status changes. (ifName=I, ...)`
//!   and `linkDown_clear`
//!
//! Parameters come as `(Key=Value, Key=Value)`. A user name is attacker
//! text that may hold `, Key=Value`: it is cut at its first `, `, and every
//! other key is read from the side of the user name the device writes it
//! on (the first occurrence when the device writes it before `UserName`,
//! the last when after), so a user name cannot replace an address.

use countywatch_wire::{EventFields, EventKind};

use crate::device_tag::{self, DeviceTag};
use crate::set_remote;

/// Finds the first `%%NNMODULE/N/MNEMONIC[(x)][[n]]:` tag at the start of
/// `text` or after a space; returns where it starts, the tag and the text
/// after its colon (trimmed). H3C's Comware writes the same tag.
pub fn find_tag(text: &str) -> Option<(usize, DeviceTag<'_>, &str)> {
    device_tag::find(text, b"%%", tag_at)
}

/// `NNMODULE/N/MNEMONIC[(x)][[n]]: rest`.
fn tag_at(text: &str) -> Option<(DeviceTag<'_>, &str)> {
    let bytes = text.as_bytes();
    if bytes.len() < 2 || !bytes[0].is_ascii_digit() || !bytes[1].is_ascii_digit() {
        return None;
    }
    let (head, rest) = text[2..].split_once(':')?;
    let head = head.split(['(', '[']).next()?;
    let name_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    Some((device_tag::split(head, '/', name_byte)?, rest))
}

/// The event a tagged Huawei message means, if it is one we know.
pub fn parse(tag: &DeviceTag<'_>, text: &str) -> Option<(EventKind, EventFields)> {
    match (tag.module, tag.mnemonic) {
        ("SSH", "SSH_USER_LOGIN_FAIL" | "SSH_FAIL") => login(text, EventKind::DeviceLoginFailed),
        ("SSH", "SSH_USER_LOGIN") => login(text, EventKind::DeviceLoginSucceeded),
        (_, "CFG_CHANGE" | "CFGCHANGE" | "CONFIG_CHANGE") => Some((
            EventKind::DeviceConfigChanged,
            EventFields {
                reason: Some(text.to_string()),
                ..EventFields::default()
            },
        )),
        ("IFNET" | "IFPDT", "IF_STATE") => {
            let rest = text.strip_prefix("Interface ")?;
            let (interface, state) = rest.rsplit_once(" has turned into ")?;
            interface_state(interface, state.strip_suffix(" state.")?)
        }
        ("IFNET", "LINK_STATE") => {
            let rest = text.strip_prefix("The line protocol ")?;
            let (_, rest) = rest.split_once(" on the interface ")?;
            let (interface, state) = rest.rsplit_once(" has entered the ")?;
            interface_state(interface, state.strip_suffix(" state.")?)
        }
        ("IFNET", "linkDown_active" | "linkDown_clear") => {
            let parameters = Parameters::of(text)?;
            let interface = parameters.first("ifName")?;
            let state = if tag.mnemonic == "linkDown_active" {
                "DOWN"
            } else {
                "UP"
            };
            let (kind, mut fields) = interface_state(interface, state)?;
            fields.if_index = parameters.first("ifIndex").and_then(|n| n.parse().ok());
            fields.reason = parameters.first("Reason").map(str::to_string);
            Some((kind, fields))
        }
        _ => None,
    }
}

fn interface_state(interface: &str, state: &str) -> Option<(EventKind, EventFields)> {
    let kind = match state {
        "UP" => EventKind::InterfaceUp,
        "DOWN" => EventKind::InterfaceDown,
        _ => return None,
    };
    Some((
        kind,
        EventFields {
            interface: Some(interface.to_string()),
            ..EventFields::default()
        },
    ))
}

fn login(text: &str, kind: EventKind) -> Option<(EventKind, EventFields)> {
    let parameters = Parameters::of(text)?;
    let mut fields = EventFields {
        user: parameters.first("UserName").map(str::to_string),
        reason: parameters
            .around_user("FailedReason", "UserName")
            .map(str::to_string),
        service: parameters
            .around_user("ServiceType", "UserName")
            .map(str::to_string),
        ..EventFields::default()
    };
    if let Some(address) = ["UserAddress", "IPAddress", "IpAddress", "IP", "Ip"]
        .into_iter()
        .find_map(|key| parameters.around_user(key, "UserName"))
    {
        set_remote(&mut fields, address);
    }
    Some((kind, fields))
}

/// The `(Key=Value, Key=Value)` list at the end of a VRP message.
pub struct Parameters<'a> {
    /// (key, value) in the order written.
    entries: Vec<(&'a str, &'a str)>,
}

impl<'a> Parameters<'a> {
    /// The list that starts at the first ` (` or `(` and ends at the last `)`.
    pub fn of(text: &'a str) -> Option<Parameters<'a>> {
        let open = text.find('(')?;
        let close = text.rfind(')').filter(|close| *close > open)?;
        let entries = text[open + 1..close]
            .split(", ")
            .filter_map(|entry| entry.split_once('='))
            .map(|(key, value)| (key.trim(), value.trim()))
            .collect();
        Some(Parameters { entries })
    }

    /// The first value of `key`.
    pub fn first(&self, key: &str) -> Option<&'a str> {
        self.position(key).map(|index| self.entries[index].1)
    }

    /// The value of `key` the device wrote, when `user_key` holds attacker
    /// text: the first occurrence if it comes before the user name, else
    /// the last one.
    pub fn around_user(&self, key: &str, user_key: &str) -> Option<&'a str> {
        let first = self.position(key)?;
        match self.position(user_key) {
            Some(user) if user < first => self
                .entries
                .iter()
                .rev()
                .find(|(name, _)| *name == key)
                .map(|(_, value)| *value),
            _ => Some(self.entries[first].1),
        }
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.entries.iter().position(|(name, _)| *name == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Option<(EventKind, EventFields)> {
        let (_, tag, rest) = find_tag(text)?;
        parse(&tag, rest)
    }

    #[test]
    fn ssh_logins() {
        let (kind, fields) = check("Nov 28 2026 01:02:03-08:00 HUAWEI %%01SSH/5/SSH_USER_LOGIN_FAIL(s)[12]:The SSH user failed to login. (ServiceType=stelnet, FailedReason=Password authentication failed, UserName=admin, UserAddress=203.0.113.5, LocalAddress=192.0.2.1, VPNInstanceName=_public_)").unwrap();
        assert_eq!(kind, EventKind::DeviceLoginFailed);
        assert_eq!(fields.user.as_deref(), Some("admin"));
        assert_eq!(fields.src_ip, Some("203.0.113.5".parse().unwrap()));
        assert_eq!(
            fields.reason.as_deref(),
            Some("Password authentication failed")
        );
        assert_eq!(fields.service.as_deref(), Some("stelnet"));
        let (kind, fields) = check("%%01SSH/4/SSH_FAIL(l)[3]:Failed to login through SSH. (IP=198.51.100.4, VpnInstanceName=_public_, UserName=root, Times=1, FailedReason=Logged out)").unwrap();
        assert_eq!(kind, EventKind::DeviceLoginFailed);
        assert_eq!(fields.src_ip, Some("198.51.100.4".parse().unwrap()));
        let (kind, fields) = check("%%01SSH/5/SSH_USER_LOGIN(s)[4]:The SSH user succeeded in logging in. (ServiceType=stelnet, UserName=ops, IPAddress=10.0.0.8, VpnInstanceName=_public_)").unwrap();
        assert_eq!(kind, EventKind::DeviceLoginSucceeded);
        assert_eq!(fields.user.as_deref(), Some("ops"));
        assert_eq!(fields.src_ip, Some("10.0.0.8".parse().unwrap()));
    }

    #[test]
    fn a_user_name_cannot_replace_the_address() {
        // Address after the user name: the last one is the device's.
        let (_, fields) = check("%%01SSH/5/SSH_USER_LOGIN_FAIL(s)[1]:The SSH user failed to login. (ServiceType=stelnet, FailedReason=x, UserName=evil, UserAddress=6.6.6.6, UserAddress=203.0.113.5, VPNInstanceName=)").unwrap();
        assert_eq!(fields.user.as_deref(), Some("evil"));
        assert_eq!(fields.src_ip, Some("203.0.113.5".parse().unwrap()));
        // Address before the user name: the first one is the device's.
        let (_, fields) = check("%%01SSH/4/SSH_FAIL(l)[3]:Failed to login through SSH. (IP=198.51.100.4, VpnInstanceName=_public_, UserName=evil, IP=6.6.6.6, Times=1, FailedReason=x)").unwrap();
        assert_eq!(fields.src_ip, Some("198.51.100.4".parse().unwrap()));
    }

    #[test]
    fn configuration_and_links() {
        let (kind, _) = check("%%01CFG/4/CFG_CHANGE(l)[5]:Configure changed. (CurrentCfgChgSeqID=14, CfgChgSeqIDReveralCount=0, CfgChgTableMaxItem=10000, CfgBaselineTime=2026-11-28 01:00:00)").unwrap();
        assert_eq!(kind, EventKind::DeviceConfigChanged);
        let (kind, fields) = check("Nov 29 2022 16:04:15-08:00 Huawei %%01IFNET/4/IF_STATE(l)[2]:Interface Vlanif1 has turned into DOWN state.").unwrap();
        assert_eq!(kind, EventKind::InterfaceDown);
        assert_eq!(fields.interface.as_deref(), Some("Vlanif1"));
        let (kind, fields) = check("Jul 15 2021 10:46:00-08:00 r1 %%01IFNET/4/LINK_STATE(l)[2]:The line protocol IP on the interface GigabitEthernet0/0/1 has entered the UP state.").unwrap();
        assert_eq!(kind, EventKind::InterfaceUp);
        assert_eq!(fields.interface.as_deref(), Some("GigabitEthernet0/0/1"));
        let (kind, fields) = check("%%01IFNET/2/linkDown_active(l):CID=0x807a0405;The interface status changes. (ifName=GE1/0/1, AdminStatus=UP, OperStatus=DOWN, Reason=The physical link is down, mainIfname=GE1/0/1)").unwrap();
        assert_eq!(kind, EventKind::InterfaceDown);
        assert_eq!(fields.interface.as_deref(), Some("GE1/0/1"));
        assert_eq!(fields.reason.as_deref(), Some("The physical link is down"));
    }

    #[test]
    fn tags_need_their_shape() {
        for text in [
            "%%SSH/5/X:y",
            "%%01SSH/9/X:y",
            "%%01SSH/5:y",
            "a%%01SSH/5/X:y",
            "%%01/5/X:y",
            "%%0",
        ] {
            assert_eq!(find_tag(text).map(|found| found.1), None, "{text}");
        }
        let (_, tag, rest) =
            find_tag("%%01SHELL/5/CMDRECORD(s)[0]:Recorded command information.").unwrap();
        assert_eq!(tag.msg_id(), "SHELL/5/CMDRECORD");
        assert_eq!(rest, "Recorded command information.");
        assert_eq!(parse(&tag, rest), None);
    }
}
