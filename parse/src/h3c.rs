//! H3C Comware messages. They share the `%%10MODULE/SEVERITY/MNEMONIC:`
//! tag with Huawei VRP (parsed in [`crate::huawei`]); the texts differ.
//!
//! Known shapes (H3C's system log message references):
//! - `SSHS/6/SSHS_AUTH_FAIL: SSH user U (IP: A) didn't pass public key
//!   authentication for R.`
//! - `SSHS/6/SSHS_LOG: Authentication failed for user U from A port P
//!   because of R.`
//! - `LOGIN/5/LOGIN_FAILED: U failed to log in from A.`
//! - `SHELL/5/SHELL_LOGIN: U logged in from A.`
//! - `CFGMAN/5/CFGMAN_CFGCHANGED: -EventIndex=N-CommandSource=N-...;
//!   Configuration changed.`
//! - `IFNET/3/PHY_UPDOWN: Physical state on the interface I changed to down.`
//! - `IFNET/5/LINK_UPDOWN: Line protocol state on the interface I changed to up.`
//!
//! As everywhere, the address is found after the (attacker-chosen) user
//! name by searching from the end.

use countywatch_wire::{EventFields, EventKind};

use crate::device_tag::DeviceTag;
use crate::{set_remote, split_last_from};

/// The event a tagged Comware message means, if it is one we know.
pub fn parse(tag: &DeviceTag<'_>, text: &str) -> Option<(EventKind, EventFields)> {
    let text = text.trim_end_matches('.');
    match (tag.module, tag.mnemonic) {
        ("SSHS", "SSHS_AUTH_FAIL") => {
            let rest = text.strip_prefix("SSH user ")?;
            let open = rest.rfind(" (IP: ")?;
            let (address, reason) = rest[open + " (IP: ".len()..].split_once(')')?;
            let mut fields = user_from(&rest[..open], address);
            fields.reason = Some(reason.trim().to_string());
            Some((EventKind::DeviceLoginFailed, fields))
        }
        ("SSHS", "SSHS_LOG") => {
            let rest = text.strip_prefix("Authentication failed for user ")?;
            let (user, address, port, reason) = split_last_from(rest)?;
            let mut fields = user_from(user, address);
            fields.src_port = Some(port);
            fields.reason = reason
                .trim()
                .strip_prefix("because of ")
                .map(str::to_string);
            Some((EventKind::DeviceLoginFailed, fields))
        }
        ("LOGIN", "LOGIN_FAILED") => {
            let (user, address) = text.rsplit_once(" failed to log in from ")?;
            Some((EventKind::DeviceLoginFailed, user_from(user, address)))
        }
        ("SHELL", "SHELL_LOGIN") => {
            let (user, address) = text.rsplit_once(" logged in from ")?;
            Some((EventKind::DeviceLoginSucceeded, user_from(user, address)))
        }
        ("CFGMAN", "CFGMAN_CFGCHANGED") => Some((
            EventKind::DeviceConfigChanged,
            EventFields {
                reason: Some(text.to_string()),
                ..EventFields::default()
            },
        )),
        ("IFNET", "PHY_UPDOWN") => link(text.strip_prefix("Physical state on the interface ")?),
        ("IFNET", "LINK_UPDOWN") => {
            link(text.strip_prefix("Line protocol state on the interface ")?)
        }
        _ => None,
    }
}

fn user_from(user: &str, address: &str) -> EventFields {
    let mut fields = EventFields {
        user: Some(user.to_string()),
        ..EventFields::default()
    };
    set_remote(&mut fields, address.trim());
    fields
}

/// `I changed to STATE`.
fn link(text: &str) -> Option<(EventKind, EventFields)> {
    let (interface, state) = text.rsplit_once(" changed to ")?;
    let kind = match state.trim() {
        "up" => EventKind::InterfaceUp,
        "down" => EventKind::InterfaceDown,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::huawei::find_tag;

    fn check(text: &str) -> Option<(EventKind, EventFields)> {
        let (_, tag, rest) = find_tag(text)?;
        parse(&tag, rest)
    }

    #[test]
    fn logins() {
        let (kind, fields) = check("Nov 28 01:02:03:123 2026 H3C %%10SSHS/6/SSHS_AUTH_FAIL: SSH user David (IP: 192.168.1.1) didn't pass public key authentication for wrong public key algorithm.").unwrap();
        assert_eq!(kind, EventKind::DeviceLoginFailed);
        assert_eq!(fields.user.as_deref(), Some("David"));
        assert_eq!(fields.src_ip, Some("192.168.1.1".parse().unwrap()));
        assert_eq!(
            fields.reason.as_deref(),
            Some("didn't pass public key authentication for wrong public key algorithm")
        );
        let (kind, fields) = check("%%10SSHS/6/SSHS_LOG: Authentication failed for user root from 140.1.1.46 port 16266 because of invalid username or wrong password.").unwrap();
        assert_eq!(kind, EventKind::DeviceLoginFailed);
        assert_eq!(fields.src_port, Some(16266));
        assert_eq!(
            fields.reason.as_deref(),
            Some("invalid username or wrong password")
        );
        let (kind, fields) =
            check("%%10LOGIN/5/LOGIN_FAILED: admin failed to log in from 10.1.1.2.").unwrap();
        assert_eq!(kind, EventKind::DeviceLoginFailed);
        assert_eq!(fields.src_ip, Some("10.1.1.2".parse().unwrap()));
        let (kind, fields) =
            check("%%10SHELL/5/SHELL_LOGIN: admin logged in from 10.1.1.2.").unwrap();
        assert_eq!(kind, EventKind::DeviceLoginSucceeded);
        assert_eq!(fields.user.as_deref(), Some("admin"));
    }

    #[test]
    fn a_forged_address_in_the_user_name_stays_in_it() {
        let (_, fields) = check("%%10SSHS/6/SSHS_AUTH_FAIL: SSH user x (IP: 6.6.6.6) y (IP: 10.9.9.9) didn't pass public key authentication for z.").unwrap();
        assert_eq!(fields.src_ip, Some("10.9.9.9".parse().unwrap()));
        assert_eq!(fields.user.as_deref(), Some("x (IP: 6.6.6.6) y"));
    }

    #[test]
    fn configuration_and_links() {
        let (kind, _) = check("%%10CFGMAN/5/CFGMAN_CFGCHANGED: -EventIndex=26-CommandSource=2-ConfigSource=4-ConfigDestination=3; Configuration changed.").unwrap();
        assert_eq!(kind, EventKind::DeviceConfigChanged);
        let (kind, fields) = check("%%10IFNET/3/PHY_UPDOWN: Physical state on the interface GigabitEthernet1/0/1 changed to down.").unwrap();
        assert_eq!(kind, EventKind::InterfaceDown);
        assert_eq!(fields.interface.as_deref(), Some("GigabitEthernet1/0/1"));
        let (kind, _) = check("%%10IFNET/5/LINK_UPDOWN: Line protocol state on the interface GigabitEthernet1/0/1 changed to up.").unwrap();
        assert_eq!(kind, EventKind::InterfaceUp);
    }
}
