//! Security events: what an agent observed on its host (an SSH login, a
//! changed file, a new listening port), with typed fields and the original
//! evidence.
//!
//! Every kind and field is documented in `docs/events.md`; this file is the
//! schema. The collector decodes events from the network, so unknown fields
//! and unknown kinds are refused and every string is capped in length.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Longest `raw` evidence kept, in bytes. Agents cap lines before this.
pub const MAX_RAW_BYTES: usize = 16 * 1024;
/// Longest string field (user, command, path...), in bytes.
pub const MAX_FIELD_BYTES: usize = 4 * 1024;
/// Most user names in one `users_changed` list.
pub const MAX_USERS_CHANGED: usize = 1_000;

/// A security event as observed on a host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// When it happened, in milliseconds since the Unix epoch: the log
    /// line's own timestamp when it has one, else when the agent saw it.
    pub timestamp_ms: i64,
    /// The host it happened on. Agents fill in their name; the collector
    /// treats the batch's (authenticated) agent name as the truth.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// Which source saw it.
    pub source: EventSource,
    /// What happened.
    pub kind: EventKind,
    /// The typed details; which ones are set depends on the kind.
    #[serde(default, skip_serializing_if = "EventFields::is_empty")]
    pub fields: EventFields,
    /// The original log line or observation, kept as evidence, with control
    /// characters escaped. Never holds a secret's content.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub raw: String,
}

/// The part of an agent that observed an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    /// Authentication logs (`/var/log/auth.log`, `/var/log/secure`).
    Auth,
    /// File integrity monitoring.
    Fim,
    /// Listening sockets.
    Ports,
    /// The agent's syslog receiver: messages network devices sent it.
    Syslog,
    /// The agent's SNMP probe: state changes it saw on a network device.
    Snmp,
    /// The agent itself.
    Agent,
}

impl EventSource {
    /// The name as it appears on the wire and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            EventSource::Auth => "auth",
            EventSource::Fim => "fim",
            EventSource::Ports => "ports",
            EventSource::Syslog => "syslog",
            EventSource::Snmp => "snmp",
            EventSource::Agent => "agent",
        }
    }
}

/// Generates [`EventKind`] with its wire names from one list, so the enum,
/// [`EventKind::as_str`] and [`EventKind::ALL`] cannot disagree.
macro_rules! event_kinds {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// What happened. `docs/events.md` lists the fields each kind sets.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum EventKind {
            $($(#[$doc])* #[serde(rename = $name)] $variant,)*
        }

        impl EventKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant,)*];

            /// The name as it appears on the wire and in metric labels.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $name,)*
                }
            }
        }
    };
}

event_kinds! {
    /// sshd: a password, key or other method was refused.
    SshLoginFailed => "ssh_login_failed",
    /// sshd: a login succeeded.
    SshLoginAccepted => "ssh_login_accepted",
    /// sshd: a client asked for a user that does not exist.
    SshInvalidUser => "ssh_invalid_user",
    /// sshd: the client went away during authentication (`[preauth]`).
    SshConnectionClosed => "ssh_connection_closed",
    /// sshd: a session of an authenticated user ended.
    SshDisconnected => "ssh_disconnected",
    /// sshd: the client hit `MaxAuthTries`.
    SshMaxAuthAttempts => "ssh_max_auth_attempts",
    /// sshd: the client's address and its DNS name do not match.
    SshPossibleBreakIn => "ssh_possible_break_in",
    /// sudo: a command was run (or allowed to run).
    SudoCommand => "sudo_command",
    /// sudo: wrong passwords, or the user may not run the command.
    SudoAuthFailed => "sudo_auth_failed",
    /// su: a user switched to another user.
    Su => "su",
    /// su: a switch failed.
    SuFailed => "su_failed",
    /// shadow-utils: an account was created.
    UserAdded => "user_added",
    /// shadow-utils: an account was deleted.
    UserDeleted => "user_deleted",
    /// shadow-utils: an account was changed (shell, lock, home...).
    UserModified => "user_modified",
    /// shadow-utils: a group was created.
    GroupAdded => "group_added",
    /// shadow-utils: a group was deleted.
    GroupDeleted => "group_deleted",
    /// shadow-utils: a user was added to a group.
    GroupMemberAdded => "group_member_added",
    /// shadow-utils: a user was removed from a group.
    GroupMemberRemoved => "group_member_removed",
    /// passwd/chpasswd: a password was changed.
    PasswdChanged => "passwd_changed",
    /// PAM: an authentication failed (any service).
    PamAuthFailed => "pam_auth_failed",
    /// FIM: a watched file's content changed.
    FileChanged => "file_changed",
    /// FIM: a watched file appeared.
    FileCreated => "file_created",
    /// FIM: a watched file disappeared.
    FileDeleted => "file_deleted",
    /// FIM: a watched file's mode or owner changed, its content did not.
    FileModeChanged => "file_mode_changed",
    /// Ports: a socket started listening.
    PortOpened => "port_opened",
    /// Ports: a listening socket went away.
    PortClosed => "port_closed",
    /// Agent: its spool was full and batches were dropped unsent.
    SpoolOverflow => "spool_overflow",
    /// Collector: an agent sent nothing for longer than allowed.
    AgentSilent => "agent_silent",
    /// Collector: a login to its web page or API failed.
    WebLoginFailed => "web_login_failed",
    /// Network device: a login (SSH, telnet, console, web) was refused.
    DeviceLoginFailed => "device_login_failed",
    /// Network device: a login succeeded.
    DeviceLoginSucceeded => "device_login_succeeded",
    /// Network device: its configuration was changed.
    DeviceConfigChanged => "device_config_changed",
    /// Network device: an interface went down (SNMP ifOperStatus on an
    /// admin-up interface, or the device's own link-down message).
    InterfaceDown => "interface_down",
    /// Network device: an interface came back up.
    InterfaceUp => "interface_up",
    /// Network device: its uptime went back, so it restarted.
    DeviceRebooted => "device_rebooted",
    /// Network device: SNMP polls stopped being answered.
    DeviceUnreachable => "device_unreachable",
    /// Network device: SNMP polls are answered again.
    DeviceReachable => "device_reachable",
    /// Collector: an incident was opened, reopened or changed status
    /// (`status` says to what), so that platforms fed by event forwarding
    /// see incidents' lifecycle as well as the events behind them.
    IncidentChanged => "incident_changed",
    /// Syslog: a message no device parser recognised, kept with its
    /// facility and severity rather than dropped.
    SyslogMessage => "syslog_message",
    /// Agent: its spool file was found damaged; every readable batch was
    /// salvaged and the rest were lost, counted (last, so that adding it
    /// moved no other kind's bit in saved detection state).
    SpoolDamaged => "spool_damaged",
    /// Collector: it signed an audit checkpoint; `message` is the anchor
    /// line (`countywatch-audit-checkpoint {json}`), so the SIEM keeps a
    /// copy the collector's root cannot rewrite (after `spool_damaged`, for
    /// the same reason).
    AuditCheckpoint => "audit_checkpoint",
}

/// The typed details of an event. Every field is optional; `docs/events.md`
/// says which kinds set which. Strings are attacker-influenced (a user name
/// is whatever the client typed), so consumers must treat them as data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventFields {
    /// The account the event is about (the login name, the sudo caller...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The account switched or run as (sudo `USER=`, su target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_user: Option<String>,
    /// The group involved (shadow-utils group events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The remote address, when the log gave an IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_ip: Option<IpAddr>,
    /// The remote host when the log gave a name instead of an address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_host: Option<String>,
    /// The remote port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    /// How authentication was attempted: `password`, `publickey`,
    /// `keyboard-interactive/pam`, `none`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The terminal (`pts/0`, `ssh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<String>,
    /// The command line (sudo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The working directory (sudo `PWD=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// The PAM service (`sshd`, `sudo`, `login`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Why it failed or ended, as the log said it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How many of something: failed sudo attempts, for instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// A key fingerprint (`SHA256:...`) for public-key logins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
    /// The process that logged the event, or that owns the socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// That process's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// A numeric user id (new account, socket owner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// A numeric group id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// A home directory (new account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
    /// A login shell (new account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// The file (FIM) or log file (auth) involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// FIM: the file's state before the change (absent for `file_created`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<FileState>,
    /// FIM: the file's state after the change (absent for `file_deleted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<FileState>,
    /// FIM on account files: the names whose line changed, was added or
    /// removed. The lines themselves are never sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users_changed: Vec<String>,
    /// Ports: `tcp`, `tcp6`, `udp` or `udp6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Ports: the address the socket is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_ip: Option<IpAddr>,
    /// Ports: the port the socket is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_port: Option<u16>,
    /// `spool_overflow`, `spool_damaged`: metric batches dropped or lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_metric_batches: Option<u64>,
    /// `spool_overflow`, `spool_damaged`: event batches dropped or lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_event_batches: Option<u64>,
    /// `agent_silent`: when the agent's last batch arrived, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_ms: Option<i64>,
    /// The network device the event is about: the syslog sender's address
    /// or the SNMP target's configured name. `host` stays the agent that
    /// observed it, because that is the only name the collector can
    /// authenticate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// A network interface's name (`ifName`, or as the device's log wrote it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// A network interface's SNMP `ifIndex`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_index: Option<u32>,
    /// Syslog facility number (0-23).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facility: Option<u8>,
    /// Syslog severity number (0 emergency .. 7 debug).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syslog_severity: Option<u8>,
    /// Syslog APP-NAME or RFC 3164 tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    /// Syslog MSGID, or a device's message mnemonic (`SEC_LOGIN-4-LOGIN_FAILED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    /// The message text, without the syslog header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `incident_changed`: the incident's id in the incident store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<i64>,
    /// `incident_changed`: the detection rule behind the incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    /// `incident_changed`: the incident's severity (`info` .. `critical`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// `incident_changed`: the status it moved to (`open`, `acknowledged`,
    /// `resolved`, `false_positive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The evidence line was longer than the agent keeps and was cut.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// What FIM knows about a file at one moment. Content is represented only by
/// its hash, and not even that for secret files (`/etc/shadow`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileState {
    /// SHA-256 of the content, hex; absent for secret files and directories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits and file type, as `st_mode`.
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Last modification, milliseconds since the Unix epoch.
    pub mtime_ms: i64,
}

/// Why an event was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("event {index} ({kind}): {problem}")]
pub struct EventError {
    /// Position of the event in its batch.
    pub index: usize,
    /// The event's kind.
    pub kind: &'static str,
    /// What is wrong.
    pub problem: String,
}

impl EventFields {
    /// Whether no field is set (then `fields` is left out of the JSON).
    pub fn is_empty(&self) -> bool {
        *self == EventFields::default()
    }

    /// Every string field with its name, for the length check.
    fn strings(&self) -> [(&'static str, Option<&str>); 25] {
        [
            ("user", self.user.as_deref()),
            ("target_user", self.target_user.as_deref()),
            ("group", self.group.as_deref()),
            ("src_host", self.src_host.as_deref()),
            ("method", self.method.as_deref()),
            ("tty", self.tty.as_deref()),
            ("command", self.command.as_deref()),
            ("cwd", self.cwd.as_deref()),
            ("service", self.service.as_deref()),
            ("reason", self.reason.as_deref()),
            ("key_fingerprint", self.key_fingerprint.as_deref()),
            ("process", self.process.as_deref()),
            ("home", self.home.as_deref()),
            ("shell", self.shell.as_deref()),
            ("path", self.path.as_deref()),
            ("before.sha256", file_hash(&self.before)),
            ("after.sha256", file_hash(&self.after)),
            ("device", self.device.as_deref()),
            ("interface", self.interface.as_deref()),
            ("app_name", self.app_name.as_deref()),
            ("msg_id", self.msg_id.as_deref()),
            ("message", self.message.as_deref()),
            ("rule_id", self.rule_id.as_deref()),
            ("severity", self.severity.as_deref()),
            ("status", self.status.as_deref()),
        ]
    }
}

fn file_hash(state: &Option<FileState>) -> Option<&str> {
    state.as_ref().and_then(|state| state.sha256.as_deref())
}

impl Event {
    /// An event with no fields and no evidence yet.
    pub fn new(timestamp_ms: i64, source: EventSource, kind: EventKind) -> Event {
        Event {
            timestamp_ms,
            host: String::new(),
            source,
            kind,
            fields: EventFields::default(),
            raw: String::new(),
        }
    }

    /// Checks the size caps; `index` is the event's position for the message.
    pub fn validate(&self, index: usize) -> Result<(), EventError> {
        let fail = |problem: String| EventError {
            index,
            kind: self.kind.as_str(),
            problem,
        };
        if self.raw.len() > MAX_RAW_BYTES {
            return Err(fail(format!(
                "raw is {} bytes (limit {MAX_RAW_BYTES})",
                self.raw.len()
            )));
        }
        if self.host.len() > crate::batch::MAX_AGENT_NAME {
            return Err(fail(format!("host is {} bytes", self.host.len())));
        }
        for (name, value) in self.fields.strings() {
            if let Some(value) = value
                && value.len() > MAX_FIELD_BYTES
            {
                return Err(fail(format!(
                    "field {name} is {} bytes (limit {MAX_FIELD_BYTES})",
                    value.len()
                )));
            }
        }
        let users = &self.fields.users_changed;
        if users.len() > MAX_USERS_CHANGED {
            return Err(fail(format!(
                "users_changed has {} names (limit {MAX_USERS_CHANGED})",
                users.len()
            )));
        }
        if let Some(name) = users.iter().find(|name| name.len() > MAX_FIELD_BYTES) {
            return Err(fail(format!(
                "a users_changed name is {} bytes (limit {MAX_FIELD_BYTES})",
                name.len()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_round_trips_with_only_its_set_fields() {
        let mut event = Event::new(
            1_700_000_000_000,
            EventSource::Auth,
            EventKind::SshLoginFailed,
        );
        event.fields.user = Some("root".into());
        event.fields.src_ip = Some("203.0.113.9".parse().unwrap());
        event.fields.src_port = Some(52_114);
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            json,
            r#"{"timestamp_ms":1700000000000,"source":"auth","kind":"ssh_login_failed","fields":{"user":"root","src_ip":"203.0.113.9","src_port":52114}}"#
        );
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn unknown_kinds_and_fields_are_refused() {
        let bad_kind = r#"{"timestamp_ms":1,"source":"auth","kind":"made_up"}"#;
        assert!(serde_json::from_str::<Event>(bad_kind).is_err());
        let bad_field =
            r#"{"timestamp_ms":1,"source":"auth","kind":"su","fields":{"colour":"red"}}"#;
        let error = serde_json::from_str::<Event>(bad_field)
            .unwrap_err()
            .to_string();
        assert!(error.contains("colour"), "{error}");
        let bad_ip = r#"{"timestamp_ms":1,"source":"auth","kind":"su","fields":{"src_ip":"nope"}}"#;
        assert!(serde_json::from_str::<Event>(bad_ip).is_err());
    }

    #[test]
    fn oversized_strings_are_refused() {
        let mut event = Event::new(0, EventSource::Auth, EventKind::SudoCommand);
        event.fields.command = Some("x".repeat(MAX_FIELD_BYTES + 1));
        let error = event.validate(3).unwrap_err().to_string();
        assert_eq!(
            error,
            "event 3 (sudo_command): field command is 4097 bytes (limit 4096)"
        );
        let mut event = Event::new(0, EventSource::Auth, EventKind::SudoCommand);
        event.raw = "x".repeat(MAX_RAW_BYTES + 1);
        assert!(event.validate(0).is_err());
        let mut event = Event::new(0, EventSource::Fim, EventKind::FileChanged);
        event.fields.users_changed = vec!["a".into(); MAX_USERS_CHANGED + 1];
        assert!(event.validate(0).is_err());
    }

    #[test]
    fn every_kind_has_a_distinct_snake_case_name() {
        let mut names: Vec<&str> = EventKind::ALL.iter().map(|kind| kind.as_str()).collect();
        for kind in EventKind::ALL {
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EventKind::ALL.len());
    }
}
