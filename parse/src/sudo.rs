//! sudo's log lines: `alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ;
//! COMMAND=/usr/bin/id`, and the failure forms that put a reason first
//! (`3 incorrect password attempts ; TTY=...`, `user NOT in sudoers ; ...`).
//!
//! The working directory and the command are chosen by the user, so they
//! may contain ` ; USER=... ; COMMAND=...` themselves. The fields are read
//! left to right and the command is everything after the first `COMMAND=`:
//! an injected fake field makes the command longer, never hides the real
//! one, and the calling user before ` : ` cannot be forged this way.

use countywatch_wire::{EventFields, EventKind};

use crate::Parsed;

/// Keys sudo writes between ` ; ` separators.
const KEYS: &[&str] = &[
    "TTY=", "PWD=", "USER=", "GROUP=", "TSID=", "ENV=", "CHROOT=", "CWD=", "COMMAND=",
];

/// Parses one sudo message.
pub fn parse(message: &str) -> Parsed {
    let Some((user, rest)) = message.split_once(" : ") else {
        return Parsed::Unknown;
    };
    if user.is_empty() || user.contains(' ') {
        return Parsed::Unknown;
    }
    let mut fields = EventFields {
        user: Some(user.to_string()),
        ..EventFields::default()
    };
    let mut reason = None;
    let mut remaining = rest;
    loop {
        if let Some(command) = remaining.strip_prefix("COMMAND=") {
            fields.command = Some(command.to_string());
            break;
        }
        let (item, next) = match remaining.split_once(" ; ") {
            Some((item, next)) => (item, Some(next)),
            None => (remaining, None),
        };
        match KEYS.iter().find(|key| item.starts_with(*key)) {
            Some(&"TTY=") => fields.tty = Some(item[4..].to_string()),
            Some(&"PWD=") => fields.cwd = Some(item[4..].to_string()),
            Some(&"USER=") if fields.target_user.is_none() => {
                fields.target_user = Some(item[5..].to_string());
            }
            Some(_) => {}
            None if reason.is_none() && fields.tty.is_none() => reason = Some(item),
            None => {}
        }
        match next {
            Some(next) => remaining = next,
            None => break,
        }
    }
    if fields.tty.is_none() && fields.command.is_none() {
        return Parsed::Unknown;
    }
    let Some(reason) = reason else {
        return Parsed::event(EventKind::SudoCommand, fields);
    };
    if let Some(count) = reason
        .strip_suffix(" incorrect password attempts")
        .or_else(|| reason.strip_suffix(" incorrect password attempt"))
    {
        fields.count = count.parse().ok();
    }
    fields.reason = Some(reason.to_string());
    Parsed::event(EventKind::SudoAuthFailed, fields)
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
    fn commands() {
        let (kind, fields) =
            event("alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id -u");
        assert_eq!(kind, EventKind::SudoCommand);
        assert_eq!(fields.user.as_deref(), Some("alice"));
        assert_eq!(fields.target_user.as_deref(), Some("root"));
        assert_eq!(fields.tty.as_deref(), Some("pts/0"));
        assert_eq!(fields.cwd.as_deref(), Some("/home/alice"));
        assert_eq!(fields.command.as_deref(), Some("/usr/bin/id -u"));
        // sudo 1.9 adds GROUP= and may omit the tty.
        let (_, fields) = event(
            "deploy : PWD=/srv ; USER=postgres ; GROUP=postgres ; COMMAND=/usr/bin/psql -c 'select 1'",
        );
        assert_eq!(fields.target_user.as_deref(), Some("postgres"));
        assert_eq!(
            fields.command.as_deref(),
            Some("/usr/bin/psql -c 'select 1'")
        );
    }

    #[test]
    fn failures() {
        let (kind, fields) = event(
            "alice : 3 incorrect password attempts ; TTY=pts/1 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/bash",
        );
        assert_eq!(kind, EventKind::SudoAuthFailed);
        assert_eq!(fields.count, Some(3));
        assert_eq!(fields.command.as_deref(), Some("/bin/bash"));
        let (kind, fields) = event(
            "mallory : user NOT in sudoers ; TTY=pts/2 ; PWD=/tmp ; USER=root ; COMMAND=/bin/sh",
        );
        assert_eq!(kind, EventKind::SudoAuthFailed);
        assert_eq!(fields.reason.as_deref(), Some("user NOT in sudoers"));
        assert_eq!(fields.count, None);
        let (_, fields) = event(
            "bob : 1 incorrect password attempt ; TTY=pts/3 ; PWD=/ ; USER=root ; COMMAND=/bin/ls",
        );
        assert_eq!(fields.count, Some(1));
    }

    #[test]
    fn injected_fields_cannot_hide_the_command_or_change_the_caller() {
        // A directory named "x ; USER=nobody ; COMMAND=/bin/true".
        let (_, fields) = event(
            "alice : TTY=pts/0 ; PWD=/tmp/x ; USER=nobody ; COMMAND=/bin/true ; USER=root ; COMMAND=/bin/sh",
        );
        assert_eq!(fields.user.as_deref(), Some("alice"));
        assert_eq!(
            fields.command.as_deref(),
            Some("/bin/true ; USER=root ; COMMAND=/bin/sh")
        );
        // A command with quotes and fake fields of its own.
        let (_, fields) = event(
            "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/echo \"; USER=bob ; COMMAND=/x\"",
        );
        assert_eq!(fields.target_user.as_deref(), Some("root"));
        assert_eq!(
            fields.command.as_deref(),
            Some("/bin/echo \"; USER=bob ; COMMAND=/x\"")
        );
    }

    #[test]
    fn other_lines_are_unknown() {
        assert_eq!(parse("something else"), Parsed::Unknown);
        assert_eq!(parse("a b : TTY=pts/0"), Parsed::Unknown);
        assert_eq!(parse("alice : nothing here"), Parsed::Unknown);
    }
}
