//! Reading authentication messages from systemd-journald, for hosts where
//! neither `/var/log/auth.log` nor `/var/log/secure` exists (minimal
//! installations without rsyslog).
//!
//! The source runs `journalctl --follow --output=json` restricted to the
//! auth and authpriv facilities and feeds each entry's `MESSAGE`,
//! `SYSLOG_IDENTIFIER` and `_PID` to the same parsers as the log files. Its
//! position is the journal cursor of the last entry read; after a restart
//! `--after-cursor` resumes right after it. A reader thread turns
//! journalctl's output into entries over a bounded channel, so a flood
//! blocks journalctl rather than growing memory; if journalctl exits, it is
//! started again from the last cursor on a later poll. The reader thread
//! wakes the run loop when entries arrive, as inotify does for the log
//! files, so an attack seen in the journal is sent without waiting for the
//! interval.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use countywatch_parse::auth_line::LineParser;
use countywatch_parse::line_splitter::LineSplitter;
use countywatch_parse::sanitize::escape_controls;
use countywatch_parse::syslog_prefix::SyslogLine;
use countywatch_wire::Event;
use serde::{Deserialize, Serialize};

/// Entries buffered between journalctl and the poll.
const CHANNEL_CAPACITY: usize = 4_096;
/// Longest JSON line read from journalctl; longer entries are skipped.
const MAX_ENTRY_BYTES: usize = 256 * 1024;
/// Shortest time between two starts of journalctl.
const RESTART_DELAY: Duration = Duration::from_secs(5);
/// Where journald keeps its sockets: present when journald runs.
pub const JOURNALD_RUNTIME_DIR: &str = "/run/systemd/journal";

/// Position key of the journal cursor ([`JournalPosition`]).
pub const POSITION: &str = "journal";

/// The persisted position: the cursor of the last entry consumed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalPosition {
    /// journald's cursor, opaque.
    pub cursor: Option<String>,
}

/// One journal entry, reduced to what the parsers need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `__CURSOR`.
    pub cursor: String,
    /// `__REALTIME_TIMESTAMP` in milliseconds.
    pub timestamp_ms: i64,
    /// `_HOSTNAME`.
    pub host: String,
    /// `SYSLOG_IDENTIFIER` (else `_COMM`).
    pub program: String,
    /// `SYSLOG_PID` (else `_PID`).
    pub pid: Option<u32>,
    /// `MESSAGE`, lossily decoded when journald stored it as bytes.
    pub message: String,
}

/// Parses one line of `journalctl --output=json`; `None` for anything that
/// is not an entry with a cursor and a message.
pub fn parse_entry(line: &[u8]) -> Option<Entry> {
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    let text = |key: &str| value.get(key).and_then(serde_json::Value::as_str);
    let message = match value.get("MESSAGE")? {
        serde_json::Value::String(message) => message.clone(),
        // journald stores non-UTF-8 messages as an array of bytes.
        serde_json::Value::Array(bytes) => {
            let bytes: Vec<u8> = bytes
                .iter()
                .filter_map(|byte| byte.as_u64().and_then(|byte| u8::try_from(byte).ok()))
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        _ => return None,
    };
    let micros: i64 = text("__REALTIME_TIMESTAMP")?.parse().ok()?;
    Some(Entry {
        cursor: text("__CURSOR")?.to_string(),
        timestamp_ms: micros / 1_000,
        host: text("_HOSTNAME").unwrap_or("").to_string(),
        program: text("SYSLOG_IDENTIFIER")
            .or_else(|| text("_COMM"))
            .unwrap_or("")
            .to_string(),
        pid: text("SYSLOG_PID")
            .or_else(|| text("_PID"))
            .and_then(|pid| pid.parse().ok()),
        message,
    })
}

/// The journal source.
pub struct JournalSource {
    /// The `journalctl` program.
    command: PathBuf,
    /// Whether to start from the journal's beginning when there is no cursor.
    read_existing: bool,
    /// The cursor of the last entry handed out.
    position: JournalPosition,
    /// The running journalctl and its entries.
    running: Option<(Child, Receiver<Entry>)>,
    /// When journalctl was last started.
    started: Option<Instant>,
    /// journalctl starts that failed or runs that ended.
    pub errors: u64,
    /// Signalled by the reader thread when entries arrive; `None` in tests
    /// that poll on their own.
    wake: Option<Arc<tokio::sync::Notify>>,
}

impl JournalSource {
    /// A source running `command` (normally `journalctl`), resuming after
    /// the stored position, signalling `wake` when entries arrive.
    pub fn new(
        command: PathBuf,
        position: Option<JournalPosition>,
        read_existing: bool,
        wake: Option<Arc<tokio::sync::Notify>>,
    ) -> Self {
        JournalSource {
            command,
            read_existing,
            position: position.unwrap_or_default(),
            running: None,
            started: None,
            errors: 0,
            wake,
        }
    }

    /// The position to store with the events of the last poll.
    pub fn position(&self) -> &JournalPosition {
        &self.position
    }

    /// Hands the entries read since the last poll to `parser`, appending at
    /// most about `budget` events to `out`.
    pub fn poll(&mut self, parser: &mut LineParser, budget: usize, out: &mut Vec<Event>) {
        self.ensure_running();
        let Some((child, entries)) = &mut self.running else {
            return;
        };
        while out.len() < budget {
            let Ok(entry) = entries.try_recv() else {
                break;
            };
            let message = escape_controls(&entry.message);
            let host = escape_controls(&entry.host);
            let program = escape_controls(&entry.program);
            let prefix = SyslogLine {
                timestamp_ms: entry.timestamp_ms,
                host: &host,
                program: &program,
                pid: entry.pid,
                // sudo pads its message with spaces, as in the files.
                message: message.trim_start_matches(' '),
            };
            parser.stats.lines += 1;
            let raw = match entry.pid {
                Some(pid) => format!("{program}[{pid}]: {message}"),
                None => format!("{program}: {message}"),
            };
            parser.parse_message(&prefix, &raw, false, out);
            self.position.cursor = Some(entry.cursor);
        }
        if let Ok(Some(status)) = child.try_wait() {
            self.errors += 1;
            tracing::warn!(%status, "journalctl exited; restarting it from the last entry read");
            self.running = None;
        }
    }

    fn ensure_running(&mut self) {
        if self.running.is_some()
            || self
                .started
                .is_some_and(|started| started.elapsed() < RESTART_DELAY)
        {
            return;
        }
        self.started = Some(Instant::now());
        let mut command = Command::new(&self.command);
        command.args([
            "--follow",
            "--output=json",
            "--all",
            "--no-pager",
            "--quiet",
            "SYSLOG_FACILITY=4",
            "SYSLOG_FACILITY=10",
        ]);
        match &self.position.cursor {
            Some(cursor) => {
                command.arg(format!("--after-cursor={cursor}"));
            }
            None if self.read_existing => {
                command.arg("--lines=all");
            }
            None => {
                command.arg("--lines=0");
            }
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                self.errors += 1;
                tracing::warn!(command = %self.command.display(), %error, "cannot run journalctl");
                return;
            }
        };
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return;
        };
        let (sender, receiver) = sync_channel(CHANNEL_CAPACITY);
        let wake = self.wake.clone();
        let spawned = std::thread::Builder::new()
            .name("journal-reader".to_string())
            .spawn(move || read_entries(stdout, &sender, wake.as_deref()));
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start the journal reader thread");
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        tracing::info!(command = %self.command.display(), "reading authentication messages from the journal");
        self.running = Some((child, receiver));
    }
}

impl Drop for JournalSource {
    fn drop(&mut self) {
        if let Some((mut child, _)) = self.running.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads journalctl's JSON lines until it exits or the source is gone,
/// signalling `wake` after each read that passed on entries.
fn read_entries(
    mut stdout: impl Read,
    sender: &std::sync::mpsc::SyncSender<Entry>,
    wake: Option<&tokio::sync::Notify>,
) {
    let mut splitter = LineSplitter::new(MAX_ENTRY_BYTES);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut filled = 0;
    let mut receiver_gone = false;
    loop {
        if filled == buffer.len() {
            buffer.resize(buffer.len() * 2, 0);
        }
        let read = match stdout.read(&mut buffer[filled..]) {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        filled += read;
        let mut passed_on = false;
        let consumed = splitter.split(&buffer[..filled], &mut |line, truncated| {
            if truncated {
                return true;
            }
            if let Some(entry) = parse_entry(line) {
                // Blocks when the poll falls behind: journalctl then waits.
                let mut pending = entry;
                loop {
                    match sender.try_send(pending) {
                        Ok(()) => {
                            passed_on = true;
                            break;
                        }
                        Err(TrySendError::Full(entry)) => {
                            pending = entry;
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        Err(TrySendError::Disconnected(_)) => {
                            receiver_gone = true;
                            return false;
                        }
                    }
                }
            }
            true
        });
        if receiver_gone {
            return;
        }
        if passed_on && let Some(wake) = wake {
            wake.notify_one();
        }
        buffer.copy_within(consumed..filled, 0);
        filled -= consumed;
    }
}

/// Whether journald runs on this host (its runtime directory exists).
pub fn journald_present(root: &Path) -> bool {
    root.join(JOURNALD_RUNTIME_DIR.trim_start_matches('/'))
        .is_dir()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// Real `journalctl --output=json` lines (fields trimmed to the usual set).
    const ENTRIES: &str = r#"{"__CURSOR":"s=739a;i=4ece7;b=6c7c;m=d31e;t=5e4f;x=fd9e","__REALTIME_TIMESTAMP":"1795827601000123","__MONOTONIC_TIMESTAMP":"3542031129","_BOOT_ID":"6c7c","PRIORITY":"6","_UID":"0","_GID":"0","_HOSTNAME":"oe-01","SYSLOG_FACILITY":"10","SYSLOG_IDENTIFIER":"sshd-session","_TRANSPORT":"syslog","_PID":"4242","_COMM":"sshd-session","MESSAGE":"Failed password for root from 203.0.113.5 port 52114 ssh2","SYSLOG_PID":"4242"}
{"__CURSOR":"s=739a;i=4ece8;b=6c7c;m=d31f;t=5e50;x=fd9f","__REALTIME_TIMESTAMP":"1795827602000000","_HOSTNAME":"oe-01","SYSLOG_FACILITY":"10","SYSLOG_IDENTIFIER":"sudo","_PID":"4300","MESSAGE":"    ops : TTY=pts/0 ; PWD=/home/ops ; USER=root ; COMMAND=/usr/bin/id"}
{"__CURSOR":"s=739a;i=4ece9;b=6c7c;m=d320;t=5e51;x=fda0","__REALTIME_TIMESTAMP":"1795827603000000","_HOSTNAME":"oe-01","SYSLOG_IDENTIFIER":"sshd","_PID":"4301","MESSAGE":[73,110,118,97,108,105,100,32,117,115,101,114,32,255,32,102,114,111,109,32,49,57,50,46,48,46,50,46,57,32,112,111,114,116,32,50,50]}
"#;

    #[test]
    fn entries_parse_including_byte_array_messages() {
        let entries: Vec<Entry> = ENTRIES
            .lines()
            .filter_map(|line| parse_entry(line.as_bytes()))
            .collect();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].program, "sshd-session");
        assert_eq!(entries[0].pid, Some(4242));
        assert_eq!(entries[0].timestamp_ms, 1_795_827_601_000);
        assert_eq!(entries[0].host, "oe-01");
        assert_eq!(
            entries[2].message,
            "Invalid user \u{fffd} from 192.0.2.9 port 22"
        );
        assert_eq!(parse_entry(b"{\"MESSAGE\":\"no cursor\"}"), None);
        assert_eq!(parse_entry(b"not json"), None);
    }

    /// A stand-in `journalctl` that records its arguments and prints the
    /// fixture entries after the given cursor.
    fn fake_journalctl(dir: &Path) -> PathBuf {
        let entries = dir.join("entries.json");
        std::fs::write(&entries, ENTRIES).unwrap();
        let script = dir.join("journalctl");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$@\" >> {args}\nafter=''\nfor arg in \"$@\"; do case \"$arg\" in --after-cursor=*) after=\"${{arg#--after-cursor=}}\";; esac; done\nif [ -z \"$after\" ]; then cat {entries}; else awk -v c=\"$after\" 'found {{print}} index($0, \"\\\"\" c \"\\\"\") {{found=1}}' {entries}; fi\nexec sleep 30\n",
                args = dir.join("args").display(),
                entries = entries.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    fn poll_until(source: &mut JournalSource, parser: &mut LineParser, count: usize) -> Vec<Event> {
        let mut events = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while events.len() < count && Instant::now() < deadline {
            source.poll(parser, 100, &mut events);
            std::thread::sleep(Duration::from_millis(20));
        }
        events
    }

    #[test]
    fn entries_flow_through_the_parsers_and_a_restart_resumes_after_the_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let script = fake_journalctl(dir.path());
        let mut parser = LineParser::default();
        let mut source = JournalSource::new(script.clone(), None, true, None);
        let events = poll_until(&mut source, &mut parser, 3);
        let kinds: Vec<&str> = events.iter().map(|event| event.kind.as_str()).collect();
        assert_eq!(
            kinds,
            vec!["ssh_login_failed", "sudo_command", "ssh_invalid_user"]
        );
        assert_eq!(
            events[0].fields.src_ip,
            Some("203.0.113.5".parse().unwrap())
        );
        assert_eq!(events[0].fields.process.as_deref(), Some("sshd-session"));
        assert_eq!(events[1].fields.user.as_deref(), Some("ops"));
        assert_eq!(
            source.position().cursor.as_deref(),
            Some("s=739a;i=4ece9;b=6c7c;m=d320;t=5e51;x=fda0")
        );
        drop(source);

        // Restart from the cursor of the first entry: only the later two come.
        let stored = JournalPosition {
            cursor: Some("s=739a;i=4ece7;b=6c7c;m=d31e;t=5e4f;x=fd9e".to_string()),
        };
        let mut source = JournalSource::new(script, Some(stored), true, None);
        let events = poll_until(&mut source, &mut parser, 2);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].kind.as_str(), "sudo_command");
        let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
        let runs: Vec<&str> = args.lines().collect();
        assert!(
            runs[0].contains("--follow") && runs[0].contains("--lines=all"),
            "{args}"
        );
        assert!(runs[1].contains("--after-cursor=s=739a;i=4ece7"), "{args}");
    }

    #[test]
    fn entries_arriving_wake_the_run_loop() {
        let dir = tempfile::tempdir().unwrap();
        let wake = Arc::new(tokio::sync::Notify::new());
        let mut source = JournalSource::new(
            fake_journalctl(dir.path()),
            None,
            true,
            Some(Arc::clone(&wake)),
        );
        // The first poll starts journalctl; its entries arrive after.
        source.poll(&mut LineParser::default(), 100, &mut Vec::new());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let woken = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), wake.notified())
                .await
                .is_ok()
        });
        assert!(woken, "the reader thread signals new entries");
        let events = poll_until(&mut source, &mut LineParser::default(), 3);
        assert_eq!(events.len(), 3);
    }

    #[test]
    fn a_missing_journalctl_is_counted_not_fatal() {
        let mut source = JournalSource::new("/nonexistent/journalctl".into(), None, false, None);
        let mut events = Vec::new();
        source.poll(&mut LineParser::default(), 10, &mut events);
        assert!(events.is_empty());
        assert_eq!(source.errors, 1);
    }
}
