//! Event fields by name: the names rules use in `match`, `group_by`,
//! `distinct` and `new_value`, their types (checked when a rule is loaded)
//! and their values in one [`Event`]. An unset field has no value; a rule
//! testing it simply does not match.

use std::fmt::Write as _;
use std::net::IpAddr;

use countywatch_wire::{Event, EventFields};

/// The type of a field, which decides the tests a rule may apply to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// Free text (user names, paths, messages).
    Text,
    /// A whole number (ports, ids, counts).
    Number,
    /// An IP address: equality with addresses, `in` with CIDR blocks too.
    Ip,
    /// A list of names (`users_changed`): a test matches when any does.
    TextList,
    /// `true` or `false`.
    Bool,
}

impl FieldType {
    /// The name used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Number => "number",
            FieldType::Ip => "IP address",
            FieldType::TextList => "list of names",
            FieldType::Bool => "boolean",
        }
    }
}

/// A field's value in one event.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// Text.
    Text(&'a str),
    /// A whole number.
    Number(i64),
    /// An address.
    Ip(IpAddr),
    /// A list of names.
    TextList(&'a [String]),
    /// A flag.
    Bool(bool),
}

/// Generates [`Field`] from one table of (variant, name, type, whether
/// grouping by it needs an explicit cap, accessor), so the names, types and
/// accessors cannot disagree.
macro_rules! fields {
    ($($variant:ident => $name:literal, $kind:ident, $high:literal, |$event:ident| $get:expr;)*) => {
        /// A field a rule can refer to.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Field {
            $(#[doc = concat!("`", $name, "`")] $variant,)*
        }

        impl Field {
            /// Every field, in the documented order.
            pub const ALL: &'static [Field] = &[$(Field::$variant,)*];

            /// The name rules use.
            pub fn name(self) -> &'static str {
                match self {
                    $(Field::$variant => $name,)*
                }
            }

            /// The field's type.
            pub fn field_type(self) -> FieldType {
                match self {
                    $(Field::$variant => FieldType::$kind,)*
                }
            }

            /// Whether the field can take so many values (an address, a
            /// user name typed by an attacker) that grouping by it needs an
            /// explicit `max_groups`.
            pub fn high_cardinality(self) -> bool {
                match self {
                    $(Field::$variant => $high,)*
                }
            }

            /// The field's value in `event`, if set.
            pub fn get(self, event: &Event) -> Option<Value<'_>> {
                match self {
                    $(Field::$variant => { let $event = event; $get })*
                }
            }
        }
    };
}

fn text(value: &Option<String>) -> Option<Value<'_>> {
    value.as_deref().map(Value::Text)
}

fn number(value: Option<impl Into<i64>>) -> Option<Value<'static>> {
    value.map(|value| Value::Number(value.into()))
}

fn before(fields: &EventFields) -> Option<&countywatch_wire::FileState> {
    fields.before.as_ref()
}

fn after(fields: &EventFields) -> Option<&countywatch_wire::FileState> {
    fields.after.as_ref()
}

fn big(value: Option<u64>) -> Option<Value<'static>> {
    value.map(|value| Value::Number(i64::try_from(value).unwrap_or(i64::MAX)))
}

fields! {
    Host => "host", Text, false, |e| (!e.host.is_empty()).then_some(Value::Text(&e.host));
    Source => "source", Text, false, |e| Some(Value::Text(e.source.as_str()));
    Kind => "kind", Text, false, |e| Some(Value::Text(e.kind.as_str()));
    Raw => "raw", Text, true, |e| (!e.raw.is_empty()).then_some(Value::Text(&e.raw));
    TimestampMs => "timestamp_ms", Number, true, |e| Some(Value::Number(e.timestamp_ms));
    User => "user", Text, true, |e| text(&e.fields.user);
    TargetUser => "target_user", Text, true, |e| text(&e.fields.target_user);
    Group => "group", Text, false, |e| text(&e.fields.group);
    SrcIp => "src_ip", Ip, true, |e| e.fields.src_ip.map(Value::Ip);
    SrcHost => "src_host", Text, true, |e| text(&e.fields.src_host);
    SrcPort => "src_port", Number, true, |e| number(e.fields.src_port);
    Method => "method", Text, false, |e| text(&e.fields.method);
    Tty => "tty", Text, false, |e| text(&e.fields.tty);
    Command => "command", Text, true, |e| text(&e.fields.command);
    Cwd => "cwd", Text, true, |e| text(&e.fields.cwd);
    Service => "service", Text, false, |e| text(&e.fields.service);
    Reason => "reason", Text, true, |e| text(&e.fields.reason);
    Count => "count", Number, false, |e| number(e.fields.count);
    KeyFingerprint => "key_fingerprint", Text, true, |e| text(&e.fields.key_fingerprint);
    Process => "process", Text, false, |e| text(&e.fields.process);
    Pid => "pid", Number, true, |e| number(e.fields.pid);
    Uid => "uid", Number, false, |e| number(e.fields.uid);
    Gid => "gid", Number, false, |e| number(e.fields.gid);
    Home => "home", Text, true, |e| text(&e.fields.home);
    Shell => "shell", Text, false, |e| text(&e.fields.shell);
    Path => "path", Text, false, |e| text(&e.fields.path);
    BeforeSha256 => "before.sha256", Text, true, |e| before(&e.fields).and_then(|s| s.sha256.as_deref()).map(Value::Text);
    BeforeMode => "before.mode", Number, false, |e| before(&e.fields).map(|s| Value::Number(s.mode.into()));
    BeforeUid => "before.uid", Number, false, |e| before(&e.fields).map(|s| Value::Number(s.uid.into()));
    BeforeGid => "before.gid", Number, false, |e| before(&e.fields).map(|s| Value::Number(s.gid.into()));
    BeforeSize => "before.size", Number, true, |e| before(&e.fields).and_then(|s| big(Some(s.size)));
    AfterSha256 => "after.sha256", Text, true, |e| after(&e.fields).and_then(|s| s.sha256.as_deref()).map(Value::Text);
    AfterMode => "after.mode", Number, false, |e| after(&e.fields).map(|s| Value::Number(s.mode.into()));
    AfterUid => "after.uid", Number, false, |e| after(&e.fields).map(|s| Value::Number(s.uid.into()));
    AfterGid => "after.gid", Number, false, |e| after(&e.fields).map(|s| Value::Number(s.gid.into()));
    AfterSize => "after.size", Number, true, |e| after(&e.fields).and_then(|s| big(Some(s.size)));
    UsersChanged => "users_changed", TextList, true, |e| (!e.fields.users_changed.is_empty()).then_some(Value::TextList(&e.fields.users_changed));
    Protocol => "protocol", Text, false, |e| text(&e.fields.protocol);
    LocalIp => "local_ip", Ip, false, |e| e.fields.local_ip.map(Value::Ip);
    LocalPort => "local_port", Number, false, |e| number(e.fields.local_port);
    DroppedMetricBatches => "dropped_metric_batches", Number, true, |e| big(e.fields.dropped_metric_batches);
    DroppedEventBatches => "dropped_event_batches", Number, true, |e| big(e.fields.dropped_event_batches);
    LastSeenMs => "last_seen_ms", Number, true, |e| e.fields.last_seen_ms.map(Value::Number);
    Device => "device", Text, false, |e| text(&e.fields.device);
    Interface => "interface", Text, false, |e| text(&e.fields.interface);
    IfIndex => "if_index", Number, false, |e| number(e.fields.if_index);
    Facility => "facility", Number, false, |e| number(e.fields.facility);
    SyslogSeverity => "syslog_severity", Number, false, |e| number(e.fields.syslog_severity);
    AppName => "app_name", Text, false, |e| text(&e.fields.app_name);
    MsgId => "msg_id", Text, false, |e| text(&e.fields.msg_id);
    Message => "message", Text, true, |e| text(&e.fields.message);
    Truncated => "truncated", Bool, false, |e| Some(Value::Bool(e.fields.truncated));
}

impl Field {
    /// The field called `name`.
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL
            .iter()
            .copied()
            .find(|field| field.name() == name)
    }

    /// Every field name, for "unknown field" messages.
    pub fn names() -> String {
        Field::ALL
            .iter()
            .map(|field| field.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Value<'_> {
    /// Appends the value as text (a list joined with commas); the form used
    /// in group keys and labels.
    pub fn write_to(&self, out: &mut String) {
        match self {
            Value::Text(text) => out.push_str(text),
            Value::Number(number) => {
                let _ = write!(out, "{number}");
            }
            // IPv4 by hand: group keys write an address per event, and
            // the formatter machinery was a visible part of the engine's
            // time. The text is the same as `Display`'s.
            Value::Ip(IpAddr::V4(address)) => {
                for (index, octet) in address.octets().into_iter().enumerate() {
                    if index > 0 {
                        out.push('.');
                    }
                    push_decimal(out, octet);
                }
            }
            Value::Ip(address) => {
                let _ = write!(out, "{address}");
            }
            Value::TextList(names) => {
                for (index, name) in names.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    out.push_str(name);
                }
            }
            Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        }
    }

    /// The value as text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write_to(&mut out);
        out
    }
}

/// Appends `value` in decimal.
fn push_decimal(out: &mut String, value: u8) {
    if value >= 100 {
        out.push(char::from(b'0' + value / 100));
    }
    if value >= 10 {
        out.push(char::from(b'0' + value / 10 % 10));
    }
    out.push(char::from(b'0' + value % 10));
}

#[cfg(test)]
mod tests {
    use super::*;
    use countywatch_wire::{EventKind, EventSource};

    #[test]
    fn names_are_unique_and_found_back() {
        for field in Field::ALL {
            assert_eq!(Field::from_name(field.name()), Some(*field));
        }
        assert_eq!(Field::from_name("colour"), None);
    }

    #[test]
    fn unset_fields_have_no_value_and_set_ones_read_back() {
        let mut event = Event::new(5, EventSource::Auth, EventKind::SshLoginFailed);
        assert_eq!(Field::User.get(&event), None);
        assert_eq!(Field::Host.get(&event), None);
        assert_eq!(Field::AfterMode.get(&event), None);
        event.fields.src_ip = "203.0.113.9".parse().ok();
        event.fields.src_port = Some(22);
        assert_eq!(
            Field::SrcIp.get(&event).map(|v| v.to_text()),
            Some("203.0.113.9".into())
        );
        assert_eq!(Field::SrcPort.get(&event), Some(Value::Number(22)));
        for address in ["0.0.0.0", "10.9.100.255", "192.168.1.10", "2001:db8::1"] {
            event.fields.src_ip = address.parse().ok();
            assert_eq!(
                Field::SrcIp.get(&event).map(|v| v.to_text()),
                Some(address.into())
            );
        }
        assert_eq!(
            Field::Kind.get(&event),
            Some(Value::Text("ssh_login_failed"))
        );
    }
}
