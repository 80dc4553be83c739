//! su's own messages. Successful switches become `su` events from the PAM
//! session line, which both util-linux su (Debian) and RHEL's su log (see
//! `pam.rs`); su's own success line is therefore understood but ignored, so
//! a switch is counted once. Failures come from su's own line.

use countywatch_wire::{EventFields, EventKind};

use crate::Parsed;

/// Parses one su message.
pub fn parse(message: &str) -> Parsed {
    // util-linux: "FAILED SU (to root) alice on pts/0".
    if let Some(rest) = message.strip_prefix("FAILED SU ") {
        return match to_by_on(rest) {
            Some(fields) => Parsed::event(EventKind::SuFailed, fields),
            None => Parsed::Unknown,
        };
    }
    // shadow-utils su: "FAILED su for root by alice".
    if let Some(rest) = message.strip_prefix("FAILED su for ") {
        return match rest.split_once(" by ") {
            Some((target, caller)) => Parsed::event(
                EventKind::SuFailed,
                EventFields {
                    user: Some(caller.to_string()),
                    target_user: Some(target.to_string()),
                    ..EventFields::default()
                },
            ),
            None => Parsed::Unknown,
        };
    }
    if message.starts_with("(to ")
        || message.starts_with("Successful su for ")
        || message.starts_with("+ ")
    {
        return Parsed::Ignored;
    }
    Parsed::Unknown
}

/// `(to TARGET) CALLER on TTY`.
fn to_by_on(text: &str) -> Option<EventFields> {
    let rest = text.strip_prefix("(to ")?;
    let (target, rest) = rest.split_once(") ")?;
    let (caller, tty) = rest.rsplit_once(" on ")?;
    Some(EventFields {
        user: Some(caller.to_string()),
        target_user: Some(target.to_string()),
        tty: Some(tty.to_string()),
        ..EventFields::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_events_and_successes_come_from_pam() {
        let Parsed::Event(kind, fields) = parse("FAILED SU (to root) alice on pts/0") else {
            panic!()
        };
        assert_eq!(kind, EventKind::SuFailed);
        assert_eq!(fields.user.as_deref(), Some("alice"));
        assert_eq!(fields.target_user.as_deref(), Some("root"));
        assert_eq!(fields.tty.as_deref(), Some("pts/0"));
        let Parsed::Event(_, fields) = parse("FAILED su for root by bob") else {
            panic!()
        };
        assert_eq!(fields.user.as_deref(), Some("bob"));
        assert_eq!(parse("(to root) alice on pts/0"), Parsed::Ignored);
        assert_eq!(parse("Successful su for root by alice"), Parsed::Ignored);
        assert_eq!(parse("what"), Parsed::Unknown);
    }
}
