//! shadow-utils account management: useradd, userdel, usermod, groupadd,
//! groupdel, gpasswd, passwd, chpasswd, chage. Formats are shadow's own
//! `SYSLOG` calls. Several tools log the same change once per database
//! (`/etc/group` and `/etc/gshadow`); only one of those lines becomes an
//! event, the others are understood and ignored.

use countywatch_wire::{EventFields, EventKind};

use crate::{Parsed, key_value, quoted};

/// Parses one shadow-utils message.
pub fn parse(message: &str) -> Parsed {
    // useradd: "new user: name=bob, UID=1001, GID=1001, home=/home/bob, shell=/bin/bash, from=/dev/pts/0"
    if let Some(rest) = message.strip_prefix("new user: ") {
        let Some(name) = key_value(rest, "name") else {
            return Parsed::Unknown;
        };
        return Parsed::event(
            EventKind::UserAdded,
            EventFields {
                user: Some(name.to_string()),
                uid: key_value(rest, "UID").and_then(|uid| uid.parse().ok()),
                gid: key_value(rest, "GID").and_then(|gid| gid.parse().ok()),
                home: key_value(rest, "home").map(str::to_string),
                shell: key_value(rest, "shell").map(str::to_string),
                tty: key_value(rest, "from")
                    .filter(|from| *from != "none")
                    .map(str::to_string),
                ..EventFields::default()
            },
        );
    }
    // useradd, groupadd: "new group: name=devs, GID=1002"
    if let Some(rest) = message.strip_prefix("new group: ") {
        let Some(name) = key_value(rest, "name") else {
            return Parsed::Unknown;
        };
        return Parsed::event(
            EventKind::GroupAdded,
            EventFields {
                group: Some(name.to_string()),
                gid: key_value(rest, "GID").and_then(|gid| gid.parse().ok()),
                ..EventFields::default()
            },
        );
    }
    // userdel: "delete user 'bob'"
    if let Some((user, _)) = message.strip_prefix("delete user ").and_then(quoted) {
        return user_event(EventKind::UserDeleted, user, None);
    }
    // userdel: "removed group 'bob' owned by 'bob'"
    if let Some((group, _)) = message.strip_prefix("removed group ").and_then(quoted) {
        return group_event(EventKind::GroupDeleted, group);
    }
    // useradd/usermod: "add 'bob' to group 'sudo'"; userdel/usermod: "delete 'bob' from group 'sudo'"
    for (prefix, middle, kind) in [
        ("add ", " to group ", EventKind::GroupMemberAdded),
        ("delete ", " from group ", EventKind::GroupMemberRemoved),
    ] {
        if let Some((user, rest)) = message.strip_prefix(prefix).and_then(quoted) {
            if rest.starts_with(" to shadow group ") || rest.starts_with(" from shadow group ") {
                return Parsed::Ignored;
            }
            if let Some((group, _)) = rest.strip_prefix(middle).and_then(quoted) {
                return Parsed::event(
                    kind,
                    EventFields {
                        user: Some(user.to_string()),
                        group: Some(group.to_string()),
                        ..EventFields::default()
                    },
                );
            }
            return Parsed::Unknown;
        }
    }
    // gpasswd: "user bob added by root to group sudo", "user bob removed by root from group sudo"
    if let Some(rest) = message.strip_prefix("user ") {
        for (middle, separator, kind) in [
            (" added by ", " to group ", EventKind::GroupMemberAdded),
            (
                " removed by ",
                " from group ",
                EventKind::GroupMemberRemoved,
            ),
        ] {
            if let Some((user, rest)) = rest.split_once(middle)
                && let Some((actor, group)) = rest.split_once(separator)
            {
                return Parsed::event(
                    kind,
                    EventFields {
                        user: Some(user.to_string()),
                        group: Some(group.to_string()),
                        reason: Some(format!("by {actor}")),
                        ..EventFields::default()
                    },
                );
            }
        }
    }
    // usermod: "change user 'bob' shell from '/bin/sh' to '/bin/bash'", "lock user 'bob' password", ...
    for prefix in ["change user ", "lock user ", "unlock user "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let user = match quoted(rest) {
                Some((user, _)) => user,
                // "change user name 'bob' to 'rob'"
                None => match rest.strip_prefix("name ").and_then(quoted) {
                    Some((user, _)) => user,
                    None => return Parsed::Unknown,
                },
            };
            return user_event(EventKind::UserModified, user, Some(message));
        }
    }
    // chage: "changed password expiry for bob"
    if let Some(user) = message.strip_prefix("changed password expiry for ") {
        return user_event(EventKind::UserModified, user, Some(message));
    }
    // passwd (shadow's own, without PAM): "password for 'bob' changed by 'root'"
    if let Some((user, _)) = message.strip_prefix("password for ").and_then(quoted) {
        return user_event(EventKind::PasswdChanged, user, None);
    }
    // groupdel: "group 'devs' removed" (and once per database: "... removed from /etc/group").
    if let Some((group, rest)) = message.strip_prefix("group ").and_then(quoted) {
        if rest == " removed" {
            return group_event(EventKind::GroupDeleted, group);
        }
        if rest.starts_with(" removed from ") {
            return Parsed::Ignored;
        }
        return Parsed::Unknown;
    }
    const IGNORED: &[&str] = &[
        "group added to ",
        "removed shadow group ",
        "members of group ",
        "failed adding user ",
        "password of group ",
    ];
    if IGNORED.iter().any(|prefix| message.starts_with(prefix)) {
        return Parsed::Ignored;
    }
    Parsed::Unknown
}

fn user_event(kind: EventKind, user: &str, reason: Option<&str>) -> Parsed {
    Parsed::event(
        kind,
        EventFields {
            user: Some(user.to_string()),
            reason: reason.map(str::to_string),
            ..EventFields::default()
        },
    )
}

fn group_event(kind: EventKind, group: &str) -> Parsed {
    Parsed::event(
        kind,
        EventFields {
            group: Some(group.to_string()),
            ..EventFields::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(message: &str) -> (EventKind, EventFields) {
        match parse(message) {
            Parsed::Event(kind, fields) => (kind, *fields),
            other => panic!("{message}: {other:?}"),
        }
    }

    #[test]
    fn accounts() {
        let (kind, fields) = event(
            "new user: name=bob, UID=1001, GID=1001, home=/home/bob, shell=/bin/bash, from=/dev/pts/0",
        );
        assert_eq!(kind, EventKind::UserAdded);
        assert_eq!(fields.user.as_deref(), Some("bob"));
        assert_eq!(fields.uid, Some(1001));
        assert_eq!(fields.gid, Some(1001));
        assert_eq!(fields.home.as_deref(), Some("/home/bob"));
        assert_eq!(fields.shell.as_deref(), Some("/bin/bash"));
        assert_eq!(fields.tty.as_deref(), Some("/dev/pts/0"));
        let (kind, fields) = event("delete user 'bob'");
        assert_eq!(
            (kind, fields.user.as_deref()),
            (EventKind::UserDeleted, Some("bob"))
        );
        let (kind, fields) = event("change user 'bob' UID from '1001' to '0'");
        assert_eq!(kind, EventKind::UserModified);
        assert_eq!(fields.user.as_deref(), Some("bob"));
        let (kind, _) = event("lock user 'bob' password");
        assert_eq!(kind, EventKind::UserModified);
        let (_, fields) = event("change user name 'bob' to 'rob'");
        assert_eq!(fields.user.as_deref(), Some("bob"));
        let (kind, _) = event("changed password expiry for bob");
        assert_eq!(kind, EventKind::UserModified);
        let (kind, fields) = event("password for 'bob' changed by 'root'");
        assert_eq!(
            (kind, fields.user.as_deref()),
            (EventKind::PasswdChanged, Some("bob"))
        );
    }

    #[test]
    fn groups_and_members() {
        let (kind, fields) = event("new group: name=devs, GID=1002");
        assert_eq!(kind, EventKind::GroupAdded);
        assert_eq!(fields.group.as_deref(), Some("devs"));
        assert_eq!(fields.gid, Some(1002));
        let (kind, fields) = event("add 'bob' to group 'sudo'");
        assert_eq!(kind, EventKind::GroupMemberAdded);
        assert_eq!(fields.user.as_deref(), Some("bob"));
        assert_eq!(fields.group.as_deref(), Some("sudo"));
        assert_eq!(parse("add 'bob' to shadow group 'sudo'"), Parsed::Ignored);
        let (kind, _) = event("delete 'bob' from group 'sudo'");
        assert_eq!(kind, EventKind::GroupMemberRemoved);
        let (kind, fields) = event("user bob added by root to group wheel");
        assert_eq!(kind, EventKind::GroupMemberAdded);
        assert_eq!(fields.group.as_deref(), Some("wheel"));
        assert_eq!(fields.reason.as_deref(), Some("by root"));
        let (kind, _) = event("user bob removed by root from group wheel");
        assert_eq!(kind, EventKind::GroupMemberRemoved);
        let (kind, _) = event("removed group 'bob' owned by 'bob'");
        assert_eq!(kind, EventKind::GroupDeleted);
        let (kind, fields) = event("group 'devs' removed");
        assert_eq!(
            (kind, fields.group.as_deref()),
            (EventKind::GroupDeleted, Some("devs"))
        );
        assert_eq!(
            parse("group 'devs' removed from /etc/group"),
            Parsed::Ignored
        );
        assert_eq!(
            parse("group added to /etc/group: name=devs, GID=1002"),
            Parsed::Ignored
        );
        assert_eq!(parse("something else"), Parsed::Unknown);
    }
}
