//! OpenSSH server messages (`sshd`, and `sshd-session` since OpenSSH 9.8).
//!
//! The formats are OpenSSH's own (auth.c `auth_log`, sshd.c, auth2.c); the
//! user name in them is whatever the client sent, so every address is taken
//! from the end of the line (see [`crate::split_last_from`]).

use countywatch_wire::{EventFields, EventKind};

use crate::{Parsed, set_remote, split_last_address, split_last_from};

/// Messages that are understood and carry no security event of their own:
/// session bookkeeping, protocol noise, and lines that duplicate another
/// line's event (sshd logs "Disconnecting ... Too many authentication
/// failures" right after "maximum authentication attempts exceeded").
const IGNORED_PREFIXES: &[&str] = &[
    "Received disconnect from ",
    "Connection closed by ",
    "Connection reset by ",
    "Disconnected from ",
    "Disconnecting ",
    "Server listening on ",
    "Received signal ",
    "Starting session: ",
    "Close session: ",
    "User child is on pid ",
    "Postponed ",
    "PAM ",
    "kex_exchange_identification: ",
    "banner exchange: ",
    "Unable to negotiate with ",
    "Timeout before authentication ",
    "fatal: Timeout before authentication ",
    "Bad protocol version identification ",
    "Did not receive identification string from ",
    "ssh_dispatch_run_fatal: ",
    "pam_unix(sshd:session): ",
    "Connection from ",
    "Accepted key ",
    "Failed to release session",
    "drop connection #",
    "beginning MaxStartups throttling",
    "exited MaxStartups throttling",
];

/// Parses one sshd message.
pub fn parse(message: &str) -> Parsed {
    let message = message.strip_prefix("error: ").unwrap_or(message);
    if let Some(rest) = message.strip_prefix("Failed ") {
        return login(EventKind::SshLoginFailed, rest);
    }
    if let Some(rest) = message.strip_prefix("Accepted ") {
        return login(EventKind::SshLoginAccepted, rest);
    }
    if let Some(rest) = message.strip_prefix("Invalid user ") {
        return match split_last_from(rest) {
            Some((user, address, port, _)) => with_remote(
                EventKind::SshInvalidUser,
                Some(user),
                address,
                Some(port),
                EventFields::default(),
            ),
            None => invalid_user_without_port(rest),
        };
    }
    if let Some(rest) = message.strip_prefix("maximum authentication attempts exceeded for ") {
        return match split_last_from(rest) {
            Some((user, address, port, _)) => with_remote(
                EventKind::SshMaxAuthAttempts,
                Some(strip_invalid(user)),
                address,
                Some(port),
                EventFields::default(),
            ),
            None => Parsed::Unknown,
        };
    }
    for (prefix, kind) in [
        (
            "Connection closed by authenticating user ",
            EventKind::SshConnectionClosed,
        ),
        (
            "Connection closed by invalid user ",
            EventKind::SshConnectionClosed,
        ),
        (
            "Disconnected from authenticating user ",
            EventKind::SshConnectionClosed,
        ),
        (
            "Disconnected from invalid user ",
            EventKind::SshConnectionClosed,
        ),
        ("Disconnected from user ", EventKind::SshDisconnected),
    ] {
        if let Some(rest) = message.strip_prefix(prefix) {
            return match split_last_address(rest) {
                Some((user, address, port, _)) => with_remote(
                    kind,
                    Some(user),
                    address,
                    Some(port),
                    EventFields::default(),
                ),
                None => Parsed::Unknown,
            };
        }
    }
    if let Some(parsed) = break_in(message) {
        return parsed;
    }
    if IGNORED_PREFIXES
        .iter()
        .any(|prefix| message.starts_with(prefix))
    {
        return Parsed::Ignored;
    }
    Parsed::Unknown
}

/// `METHOD for [invalid user ]USER from ADDR port N ssh2[: KEYTYPE FP]`.
fn login(kind: EventKind, rest: &str) -> Parsed {
    let Some(for_at) = memchr::memmem::find(rest.as_bytes(), b" for ") else {
        return Parsed::Unknown;
    };
    let (method, rest) = (&rest[..for_at], &rest[for_at + 5..]);
    let Some((user, address, port, tail)) = split_last_from(rest) else {
        return Parsed::Unknown;
    };
    let mut fields = EventFields {
        method: Some(method.to_string()),
        ..EventFields::default()
    };
    if let Some((_, key)) = tail.split_once(": ")
        && let Some(fingerprint) = key.split(' ').find(|word| word.starts_with("SHA256:"))
    {
        fields.key_fingerprint = Some(fingerprint.to_string());
    }
    if user.starts_with("invalid user ") {
        fields.reason = Some("invalid user".to_string());
    }
    with_remote(kind, Some(strip_invalid(user)), address, Some(port), fields)
}

/// OpenSSH before 7.3 (CentOS/RHEL 6) logs `Invalid user NAME from ADDR`
/// without the port. The address is the last word; it must be an IP
/// address or a dotted host name (`UseDNS`), so that a line cut short is
/// not read as one.
fn invalid_user_without_port(rest: &str) -> Parsed {
    let Some(index) = memchr::memmem::rfind(rest.as_bytes(), b" from ") else {
        return Parsed::Unknown;
    };
    let (user, address) = (&rest[..index], &rest[index + 6..]);
    let host_name = address.contains('.')
        && address
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_'));
    if address.parse::<std::net::IpAddr>().is_err() && !host_name {
        return Parsed::Unknown;
    }
    with_remote(
        EventKind::SshInvalidUser,
        Some(user),
        address,
        None,
        EventFields::default(),
    )
}

fn strip_invalid(user: &str) -> &str {
    user.strip_prefix("invalid user ").unwrap_or(user)
}

fn with_remote(
    kind: EventKind,
    user: Option<&str>,
    address: &str,
    port: Option<u16>,
    mut fields: EventFields,
) -> Parsed {
    fields.user = user.map(str::to_string);
    set_remote(&mut fields, address);
    fields.src_port = port;
    Parsed::event(kind, fields)
}

/// The two forms of sshd's DNS mismatch warning:
/// `reverse mapping checking getaddrinfo for HOST [ADDR] failed - POSSIBLE BREAK-IN ATTEMPT!`
/// and `Address ADDR maps to HOST, but this does not map back to the address[ - POSSIBLE BREAK-IN ATTEMPT!]`.
fn break_in(message: &str) -> Option<Parsed> {
    if let Some(rest) = message.strip_prefix("reverse mapping checking getaddrinfo for ") {
        let (host, rest) = rest.split_once(" [")?;
        let (address, _) = rest.split_once(']')?;
        let mut fields = EventFields {
            reason: Some(format!("reverse mapping of {host} failed")),
            ..EventFields::default()
        };
        set_remote(&mut fields, address);
        return Some(Parsed::event(EventKind::SshPossibleBreakIn, fields));
    }
    if let Some(rest) = message.strip_prefix("Address ") {
        let (address, rest) = rest.split_once(" maps to ")?;
        let (host, rest) = rest.split_once(", but this does not map back to the address")?;
        let _ = rest;
        let mut fields = EventFields {
            reason: Some(format!("{host} does not map back to the address")),
            ..EventFields::default()
        };
        set_remote(&mut fields, address);
        return Some(Parsed::event(EventKind::SshPossibleBreakIn, fields));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (message, kind, user, src_ip, src_port, method)
    fn check(message: &str, kind: EventKind, user: &str, ip: &str, port: u16) -> EventFields {
        match parse(message) {
            Parsed::Event(got_kind, fields) => {
                assert_eq!(got_kind, kind, "{message}");
                assert_eq!(fields.user.as_deref(), Some(user), "{message}");
                assert_eq!(fields.src_ip, Some(ip.parse().unwrap()), "{message}");
                assert_eq!(fields.src_port, Some(port), "{message}");
                *fields
            }
            other => panic!("{message}: {other:?}"),
        }
    }

    #[test]
    fn failed_and_accepted_logins() {
        let fields = check(
            "Failed password for root from 203.0.113.5 port 52114 ssh2",
            EventKind::SshLoginFailed,
            "root",
            "203.0.113.5",
            52114,
        );
        assert_eq!(fields.method.as_deref(), Some("password"));
        let fields = check(
            "Failed password for invalid user admin from 2001:db8::7 port 40022 ssh2",
            EventKind::SshLoginFailed,
            "admin",
            "2001:db8::7",
            40022,
        );
        assert_eq!(fields.reason.as_deref(), Some("invalid user"));
        check(
            "Failed none for invalid user ubuntu from 198.51.100.2 port 60000 ssh2",
            EventKind::SshLoginFailed,
            "ubuntu",
            "198.51.100.2",
            60000,
        );
        let fields = check(
            "Failed publickey for git from 198.51.100.2 port 1022 ssh2: RSA SHA256:Zm9vYmFyYmF6cXV4",
            EventKind::SshLoginFailed,
            "git",
            "198.51.100.2",
            1022,
        );
        assert_eq!(
            fields.key_fingerprint.as_deref(),
            Some("SHA256:Zm9vYmFyYmF6cXV4")
        );
        let fields = check(
            "Accepted publickey for deploy from 10.1.2.3 port 50514 ssh2: ED25519 SHA256:AbCdEf012345",
            EventKind::SshLoginAccepted,
            "deploy",
            "10.1.2.3",
            50514,
        );
        assert_eq!(fields.method.as_deref(), Some("publickey"));
        assert_eq!(
            fields.key_fingerprint.as_deref(),
            Some("SHA256:AbCdEf012345")
        );
        check(
            "Accepted password for bob from 10.0.0.5 port 50000 ssh2",
            EventKind::SshLoginAccepted,
            "bob",
            "10.0.0.5",
            50000,
        );
        let fields = check(
            "Accepted keyboard-interactive/pam for alice from 10.0.0.6 port 50001 ssh2",
            EventKind::SshLoginAccepted,
            "alice",
            "10.0.0.6",
            50001,
        );
        assert_eq!(fields.method.as_deref(), Some("keyboard-interactive/pam"));
    }

    #[test]
    fn invalid_users_closed_connections_and_attempt_limits() {
        check(
            "Invalid user oracle from 192.0.2.44 port 33890",
            EventKind::SshInvalidUser,
            "oracle",
            "192.0.2.44",
            33890,
        );
        check(
            "Invalid user  from 192.0.2.44 port 33891",
            EventKind::SshInvalidUser,
            "",
            "192.0.2.44",
            33891,
        );
        check(
            "Connection closed by authenticating user root 192.0.2.44 port 33892 [preauth]",
            EventKind::SshConnectionClosed,
            "root",
            "192.0.2.44",
            33892,
        );
        check(
            "Connection closed by invalid user test 192.0.2.44 port 33893 [preauth]",
            EventKind::SshConnectionClosed,
            "test",
            "192.0.2.44",
            33893,
        );
        check(
            "Disconnected from invalid user test 192.0.2.44 port 33893 [preauth]",
            EventKind::SshConnectionClosed,
            "test",
            "192.0.2.44",
            33893,
        );
        check(
            "Disconnected from user bob 10.0.0.5 port 50000",
            EventKind::SshDisconnected,
            "bob",
            "10.0.0.5",
            50000,
        );
        check(
            "error: maximum authentication attempts exceeded for root from 192.0.2.44 port 33894 ssh2 [preauth]",
            EventKind::SshMaxAuthAttempts,
            "root",
            "192.0.2.44",
            33894,
        );
        check(
            "error: maximum authentication attempts exceeded for invalid user admin from 192.0.2.44 port 33895 ssh2 [preauth]",
            EventKind::SshMaxAuthAttempts,
            "admin",
            "192.0.2.44",
            33895,
        );
    }

    #[test]
    fn possible_break_in_attempts() {
        for message in [
            "reverse mapping checking getaddrinfo for host-44.example.net [192.0.2.44] failed - POSSIBLE BREAK-IN ATTEMPT!",
            "Address 192.0.2.44 maps to host-44.example.net, but this does not map back to the address - POSSIBLE BREAK-IN ATTEMPT!",
            "Address 192.0.2.44 maps to host-44.example.net, but this does not map back to the address [preauth]",
        ] {
            let Parsed::Event(kind, fields) = parse(message) else {
                panic!("{message}");
            };
            assert_eq!(kind, EventKind::SshPossibleBreakIn);
            assert_eq!(fields.src_ip, Some("192.0.2.44".parse().unwrap()));
        }
    }

    /// OpenSSH 5.3 as CentOS/RHEL 6 ship it (before 7.3 added ` port N`
    /// to more lines), message by message as it writes them.
    #[test]
    fn openssh_before_7_3() {
        let Parsed::Event(kind, fields) = parse("Invalid user oracle from 192.0.2.44") else {
            panic!()
        };
        assert_eq!(kind, EventKind::SshInvalidUser);
        assert_eq!(fields.user.as_deref(), Some("oracle"));
        assert_eq!(fields.src_ip, Some("192.0.2.44".parse().unwrap()));
        assert_eq!(fields.src_port, None);
        let Parsed::Event(_, fields) = parse("Invalid user test from host-44.example.net") else {
            panic!()
        };
        assert_eq!(fields.src_host.as_deref(), Some("host-44.example.net"));
        // A user name holding ` from ` keeps the last one as the address.
        let Parsed::Event(_, fields) = parse("Invalid user a from 6.6.6.6 from 192.0.2.44") else {
            panic!()
        };
        assert_eq!(fields.user.as_deref(), Some("a from 6.6.6.6"));
        assert_eq!(fields.src_ip, Some("192.0.2.44".parse().unwrap()));
        let fields = check(
            "Failed password for invalid user oracle from 192.0.2.44 port 51234 ssh2",
            EventKind::SshLoginFailed,
            "oracle",
            "192.0.2.44",
            51234,
        );
        assert_eq!(fields.reason.as_deref(), Some("invalid user"));
        for message in [
            "reverse mapping checking getaddrinfo for host-44.example.net [192.0.2.44] failed - POSSIBLE BREAK-IN ATTEMPT!",
            "Address 192.0.2.44 maps to host-44.example.net, but this does not map back to the address - POSSIBLE BREAK-IN ATTEMPT!",
        ] {
            let Parsed::Event(kind, fields) = parse(message) else {
                panic!("{message}")
            };
            assert_eq!(kind, EventKind::SshPossibleBreakIn);
            assert_eq!(fields.src_ip, Some("192.0.2.44".parse().unwrap()));
        }
        for message in [
            "Did not receive identification string from 192.0.2.44",
            "Received disconnect from 192.0.2.44: 11: Bye Bye",
        ] {
            assert_eq!(parse(message), Parsed::Ignored, "{message}");
        }
    }

    #[test]
    fn a_host_name_instead_of_an_address_goes_to_src_host() {
        let Parsed::Event(_, fields) =
            parse("Failed password for root from gw.example.net port 22 ssh2")
        else {
            panic!();
        };
        assert_eq!(fields.src_ip, None);
        assert_eq!(fields.src_host.as_deref(), Some("gw.example.net"));
    }

    #[test]
    fn attacker_chosen_user_names_cannot_move_the_address_or_forge_a_kind() {
        // The user name is "root from 6.6.6.6 port 22": sshd appends the real
        // address after it, and the last one wins.
        let fields = check(
            "Failed password for invalid user root from 6.6.6.6 port 22 from 10.9.8.7 port 41000 ssh2",
            EventKind::SshLoginFailed,
            "root from 6.6.6.6 port 22",
            "10.9.8.7",
            41000,
        );
        assert_eq!(fields.reason.as_deref(), Some("invalid user"));
        // A user name that reads like a successful login stays an invalid user.
        check(
            "Invalid user Accepted password for root from 1.2.3.4 port 22 ssh2 from 10.9.8.7 port 41001",
            EventKind::SshInvalidUser,
            "Accepted password for root from 1.2.3.4 port 22 ssh2",
            "10.9.8.7",
            41001,
        );
        check(
            "Connection closed by invalid user x 6.6.6.6 port 1 10.9.8.7 port 41002 [preauth]",
            EventKind::SshConnectionClosed,
            "x 6.6.6.6 port 1",
            "10.9.8.7",
            41002,
        );
    }

    #[test]
    fn bookkeeping_is_ignored_and_the_rest_is_unknown() {
        for message in [
            "Received disconnect from 10.0.0.5 port 50000:11: disconnected by user",
            "Connection closed by 192.0.2.44 port 33896 [preauth]",
            "pam_unix(sshd:session): session opened for user bob(uid=1000) by (uid=0)",
            "Server listening on 0.0.0.0 port 22.",
            "PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.44  user=root",
            "Disconnecting authenticating user root 192.0.2.44 port 33894: Too many authentication failures [preauth]",
        ] {
            assert_eq!(parse(message), Parsed::Ignored, "{message}");
        }
        for message in [
            "something new",
            "Failed password",
            "Invalid user x from nowhere",
        ] {
            assert_eq!(parse(message), Parsed::Unknown, "{message}");
        }
    }
}
