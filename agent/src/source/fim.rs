//! File integrity monitoring: watched files and directories, a baseline of
//! each file's SHA-256, size, mode, owner and mtime, and an event for every
//! difference (`file_created`, `file_changed`, `file_deleted`,
//! `file_mode_changed`) with the state before and after.
//!
//! Changes are seen in real time through inotify (the `notify` crate) on the
//! watched files' directories, which also catches editors and tools that
//! replace a file by renaming a new one over it; a periodic full rescan
//! catches whatever inotify missed (a directory created later, a queue
//! overflow). The baseline lives in the state directory and advances only
//! with the checkpoint of the batch that carried the events.
//!
//! Secrets never leave the host: for account files (`passwd`, `shadow`,
//! `group`, `gshadow`) events list only the names whose line changed, found
//! by comparing salted hashes of each line, and for `shadow`/`gshadow` not
//! even the file's hash is sent.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use countywatch_wire::{Event, EventFields, EventKind, EventSource, FileState, MAX_USERS_CHANGED};
use serde::{Deserialize, Serialize};

use countywatch_config::config_file::Problems;
use countywatch_config::duration::PromDuration;

use super::{Position, Source, SourceSection, StartContext, StartError};
use sha2::{Digest, Sha256};

/// Files larger than this are not hashed (their size, mode and owner are
/// still watched); configuration files are far smaller.
const MAX_HASHED_BYTES: u64 = 64 * 1024 * 1024;
/// Most entries watched in one directory.
const MAX_DIRECTORY_ENTRIES: usize = 10_000;

/// The persisted baseline.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// Random salt (hex) for the hashes of secret content, so the baseline
    /// file holds nothing that could be matched against known content.
    pub salt: String,
    /// What is known of each watched file that exists.
    pub files: BTreeMap<PathBuf, FileRecord>,
}

/// What the baseline knows of one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRecord {
    /// Metadata and, for non-secret files, the content hash, as sent.
    pub state: FileState,
    /// Content fingerprint used to detect changes: the SHA-256 for ordinary
    /// files, a salted SHA-256 for secret ones; empty when not hashed.
    pub content: String,
    /// For account files: user or group name to the salted hash of its line.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub accounts: BTreeMap<String, String>,
}

/// Counters the FIM reports as self-metrics.
#[derive(Debug, Default)]
pub struct FimStats {
    /// Files that could not be read (permissions, I/O errors).
    pub read_errors: AtomicU64,
    /// Full rescans performed.
    pub rescans: AtomicU64,
}

/// The FIM state shared with the inotify callback.
struct Inner {
    /// What is watched.
    paths: Vec<PathBuf>,
    /// The baseline as of the last scan (ahead of the committed one).
    baseline: Baseline,
    /// Events found since the last poll.
    pending: Vec<Event>,
    /// When the last full scan ran.
    last_scan: Instant,
    /// Signalled when a rescan finds a change, so it is sent early.
    wake: Option<Arc<tokio::sync::Notify>>,
}

/// File integrity monitoring.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FimSourceConfig {
    /// Whether the source runs.
    pub enabled: bool,
    /// Files and directories to watch; a directory's files are watched one
    /// level deep.
    pub paths: Vec<PathBuf>,
    /// How often everything is rescanned besides the realtime inotify
    /// watch.
    pub rescan_interval: PromDuration,
}

impl Default for FimSourceConfig {
    fn default() -> Self {
        FimSourceConfig {
            enabled: true,
            paths: [
                "/etc/passwd",
                "/etc/shadow",
                "/etc/group",
                "/etc/sudoers",
                "/etc/sudoers.d",
                "/etc/ssh/sshd_config",
                "/root/.ssh/authorized_keys",
                "/etc/crontab",
                "/etc/cron.d",
            ]
            .into_iter()
            .map(PathBuf::from)
            .collect(),
            rescan_interval: PromDuration(Duration::from_secs(300)),
        }
    }
}

impl SourceSection for FimSourceConfig {
    fn validate(&self, problems: &mut Problems) {
        if self.rescan_interval.get() < Duration::from_secs(1) {
            problems.general(format!(
                "sources.fim.rescan_interval {} is shorter than 1s",
                self.rescan_interval
            ));
        }
    }
}

/// Position key of the FIM baseline ([`Baseline`]).
pub const POSITION: &str = "fim";

/// Starts file integrity monitoring when `sources.fim` enables it.
pub fn start(context: &mut StartContext<'_>) -> Result<Option<Box<dyn Source>>, StartError> {
    let settings = &context.sources.fim;
    if !settings.enabled {
        return Ok(None);
    }
    Ok(Some(Box::new(Fim::new(
        settings.paths.clone(),
        context.position(POSITION),
        settings.rescan_interval.get(),
        Some(Arc::clone(context.wake)),
    ))))
}

impl Source for Fim {
    fn poll(&mut self, _now_ms: i64, _budget: usize, out: &mut Vec<Event>) -> Option<Position> {
        let (events, baseline) = Fim::poll(self);
        out.extend(events);
        Some(Position::of(POSITION, &baseline))
    }

    fn read_errors(&self) -> Option<u64> {
        Some(self.stats.read_errors.load(Ordering::Relaxed))
    }
}

/// The FIM source.
pub struct Fim {
    /// State shared with the watcher thread.
    inner: Arc<Mutex<Inner>>,
    /// How often to rescan everything regardless of inotify.
    rescan_interval: Duration,
    /// Counters.
    pub stats: Arc<FimStats>,
    /// The inotify watcher; dropping it stops the watch.
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Fim {
    /// Watches `paths` starting from the persisted `baseline`; without one,
    /// the first scan becomes the baseline silently.
    pub fn new(
        paths: Vec<PathBuf>,
        baseline: Option<Baseline>,
        rescan_interval: Duration,
        wake: Option<Arc<tokio::sync::Notify>>,
    ) -> Fim {
        let stats = Arc::new(FimStats::default());
        let had_baseline = baseline.is_some();
        let mut baseline = baseline.unwrap_or_default();
        if baseline.salt.is_empty() {
            baseline.salt = hex::encode(rand::random::<[u8; 16]>());
        }
        let mut inner = Inner {
            paths,
            baseline,
            pending: Vec::new(),
            last_scan: Instant::now(),
            wake,
        };
        inner.rescan(&stats);
        if !had_baseline {
            inner.pending.clear();
        }
        let inner = Arc::new(Mutex::new(inner));
        let watcher = watch(&inner, &stats);
        Fim {
            inner,
            rescan_interval,
            stats,
            _watcher: watcher,
        }
    }

    /// Rescans when due and returns the events found since the last poll
    /// with the baseline to persist once they are delivered.
    pub fn poll(&self) -> (Vec<Event>, Baseline) {
        let mut inner = lock(&self.inner);
        if inner.last_scan.elapsed() >= self.rescan_interval {
            inner.rescan(&self.stats);
        }
        (std::mem::take(&mut inner.pending), inner.baseline.clone())
    }
}

fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// Sets up inotify on every watched directory and on the directory of
/// every watched file. Failure is not fatal: the periodic rescan remains.
fn watch(inner: &Arc<Mutex<Inner>>, stats: &Arc<FimStats>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let paths = lock(inner).paths.clone();
    let shared = Arc::clone(inner);
    let callback_stats = Arc::clone(stats);
    let watched = paths.clone();
    let mut watcher = match notify::recommended_watcher(
        move |result: notify::Result<notify::Event>| {
            let relevant = match &result {
                // Our own rescans open and read the watched files, which
                // inotify reports as accesses: reacting to those would loop.
                Ok(event) if event.kind.is_access() => false,
                Ok(event) => event.paths.iter().any(|path| is_watched(&watched, path)),
                // An overflow or error: rescan to be safe.
                Err(_) => true,
            };
            if relevant {
                lock(&shared).rescan(&callback_stats);
            }
        },
    ) {
        Ok(watcher) => watcher,
        Err(error) => {
            tracing::warn!(%error, "cannot use inotify for file integrity; relying on periodic rescans");
            return None;
        }
    };
    let mut directories = BTreeSet::new();
    for path in &paths {
        if path.is_dir() {
            directories.insert(path.clone());
        }
        if let Some(parent) = path.parent() {
            directories.insert(parent.to_path_buf());
        }
    }
    for directory in directories {
        if let Err(error) = watcher.watch(&directory, notify::RecursiveMode::NonRecursive) {
            tracing::debug!(directory = %directory.display(), %error, "cannot watch directory; the periodic rescan covers it");
        }
    }
    Some(watcher)
}

/// Whether a changed `path` concerns a watched file or directory.
fn is_watched(watched: &[PathBuf], path: &Path) -> bool {
    watched
        .iter()
        .any(|root| path == root || path.parent() == Some(root.as_path()))
}

impl Inner {
    fn rescan(&mut self, stats: &FimStats) {
        stats.rescans.fetch_add(1, Ordering::Relaxed);
        self.last_scan = Instant::now();
        let now = now_ms();
        let current = scan(&self.paths, &self.baseline.salt, stats);
        let before = &self.baseline.files;
        let mut events = Vec::new();
        for (path, old) in before {
            match current.get(path) {
                None => events.push(event(now, EventKind::FileDeleted, path, Some(old), None)),
                Some(new) => {
                    if let Some(event) = compare(now, path, old, new) {
                        events.push(event);
                    }
                }
            }
        }
        for (path, new) in &current {
            if !before.contains_key(path) {
                events.push(event(now, EventKind::FileCreated, path, None, Some(new)));
            }
        }
        if !events.is_empty()
            && let Some(wake) = &self.wake
        {
            wake.notify_one();
        }
        self.pending.extend(events);
        self.baseline.files = current;
    }
}

/// The event for a file present before and after, if anything that matters
/// changed.
fn compare(now: i64, path: &Path, old: &FileRecord, new: &FileRecord) -> Option<Event> {
    if old.content != new.content || old.state.size != new.state.size {
        let mut changed = event(now, EventKind::FileChanged, path, Some(old), Some(new));
        changed.fields.users_changed = accounts_changed(&old.accounts, &new.accounts);
        return Some(changed);
    }
    let (a, b) = (&old.state, &new.state);
    if (a.mode, a.uid, a.gid) != (b.mode, b.uid, b.gid) {
        return Some(event(
            now,
            EventKind::FileModeChanged,
            path,
            Some(old),
            Some(new),
        ));
    }
    None
}

fn accounts_changed(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<String> {
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    names
        .into_iter()
        .filter(|name| old.get(*name) != new.get(*name))
        .take(MAX_USERS_CHANGED)
        .cloned()
        .collect()
}

fn event(
    now: i64,
    kind: EventKind,
    path: &Path,
    before: Option<&FileRecord>,
    after: Option<&FileRecord>,
) -> Event {
    let path_text =
        countywatch_parse::sanitize::escape_controls(&path.to_string_lossy()).into_owned();
    let mut event = Event::new(now, EventSource::Fim, kind);
    event.raw = format!("{} {path_text}", kind.as_str());
    event.fields = EventFields {
        path: Some(path_text),
        before: before.map(|record| record.state.clone()),
        after: after.map(|record| record.state.clone()),
        ..EventFields::default()
    };
    event
}

/// Scans every watched path: files directly, directories one level deep.
pub fn scan(paths: &[PathBuf], salt: &str, stats: &FimStats) -> BTreeMap<PathBuf, FileRecord> {
    let mut records = BTreeMap::new();
    for path in paths {
        let Ok(metadata) = std::fs::symlink_metadata(path) else {
            continue;
        };
        if metadata.is_dir() {
            let Ok(entries) = std::fs::read_dir(path) else {
                stats.read_errors.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            for entry in entries.flatten().take(MAX_DIRECTORY_ENTRIES) {
                let entry_path = entry.path();
                if let Some(record) = record(&entry_path, salt, stats) {
                    records.insert(entry_path, record);
                }
            }
        } else if let Some(record) = record(path, salt, stats) {
            records.insert(path.clone(), record);
        }
    }
    records
}

/// The record of one regular file; `None` for anything else or when gone.
fn record(path: &Path, salt: &str, stats: &FimStats) -> Option<FileRecord> {
    let metadata = std::fs::symlink_metadata(path).ok()?;
    if !metadata.is_file() {
        return None;
    }
    let secret = is_secret(path);
    let account_file = is_account_file(path);
    let mut state = FileState {
        sha256: None,
        size: metadata.len(),
        mode: metadata.mode(),
        uid: metadata.uid(),
        gid: metadata.gid(),
        mtime_ms: metadata.mtime() * 1_000 + metadata.mtime_nsec() / 1_000_000,
    };
    let mut content = String::new();
    let mut accounts = BTreeMap::new();
    if metadata.len() <= MAX_HASHED_BYTES {
        match read_regular(path) {
            Ok(bytes) => {
                let digest = hex::encode(Sha256::digest(&bytes));
                if secret {
                    content = salted(salt, &bytes);
                } else {
                    state.sha256 = Some(digest.clone());
                    content = digest;
                }
                if account_file {
                    accounts = account_lines(&bytes, salt);
                }
            }
            Err(error) => {
                stats.read_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(path = %path.display(), %error, "cannot read watched file; watching its metadata only");
            }
        }
    }
    Some(FileRecord {
        state,
        content,
        accounts,
    })
}

fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    file.by_ref()
        .take(MAX_HASHED_BYTES)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn salted(salt: &str, bytes: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    hasher.update(bytes);
    hex::encode(hasher.finalize())
}

/// Name (the first `:` field) to salted hash of each line.
fn account_lines(bytes: &[u8], salt: &str) -> BTreeMap<String, String> {
    bytes
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty() && !line.starts_with(b"#"))
        .filter_map(|line| {
            let name = line.split(|byte| *byte == b':').next()?;
            let name = countywatch_parse::sanitize::escape_controls(&String::from_utf8_lossy(name))
                .into_owned();
            Some((name, salted(salt, line)))
        })
        .collect()
}

fn file_name(path: &Path) -> &str {
    path.file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("")
}

/// Files whose content is secret: not even their hash is sent.
fn is_secret(path: &Path) -> bool {
    matches!(
        file_name(path),
        "shadow" | "gshadow" | "shadow-" | "gshadow-"
    )
}

/// Files of `name:...` lines, whose changed names are reported.
fn is_account_file(path: &Path) -> bool {
    matches!(
        file_name(path),
        "passwd" | "shadow" | "group" | "gshadow" | "passwd-" | "shadow-" | "group-" | "gshadow-"
    )
}

use countywatch_daemon::clock::now_ms;

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// Whether `wake` holds a permit (or gets one within a second).
    fn woken(wake: &tokio::sync::Notify) -> bool {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), wake.notified())
                .await
                .is_ok()
        })
    }

    /// Replaces a file the way package managers and `vipw` do: write a new
    /// file, rename it over the old one (one inotify event, no half state).
    fn replace(path: &Path, text: &str) {
        // Outside the watched directory, so the temporary file is not seen.
        let name = path.file_name().unwrap().to_string_lossy();
        let temporary = path
            .parent()
            .and_then(Path::parent)
            .unwrap()
            .join(format!(".countywatch-{}-{name}", std::process::id()));
        std::fs::write(&temporary, text).unwrap();
        std::fs::rename(&temporary, path).unwrap();
    }

    fn kinds(events: &[Event]) -> Vec<(&'static str, String)> {
        events
            .iter()
            .map(|event| {
                let name = Path::new(event.fields.path.as_deref().unwrap())
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                (event.kind.as_str(), name)
            })
            .collect()
    }

    /// Polls until an event shows up (inotify delivers asynchronously) or
    /// a few seconds passed.
    fn poll_until_events(fim: &Fim) -> Vec<Event> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut events = Vec::new();
        while Instant::now() < deadline {
            events.extend(fim.poll().0);
            if !events.is_empty() {
                // Let a burst of inotify events settle into one rescan result.
                std::thread::sleep(Duration::from_millis(100));
                events.extend(fim.poll().0);
                return events;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        events
    }

    #[test]
    fn create_modify_chmod_delete_are_seen_in_real_time() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("sshd_config");
        let drop_in = dir.path().join("sudoers.d");
        std::fs::create_dir(&drop_in).unwrap();
        std::fs::write(&config, "PermitRootLogin no\n").unwrap();
        // A rescan interval of an hour: only inotify can report in time.
        let wake = Arc::new(tokio::sync::Notify::new());
        let fim = Fim::new(
            vec![config.clone(), drop_in.clone()],
            None,
            Duration::from_secs(3600),
            Some(Arc::clone(&wake)),
        );
        let (events, baseline) = fim.poll();
        assert!(
            events.is_empty(),
            "the first scan is the baseline: {events:?}"
        );
        assert_eq!(baseline.files.len(), 1);

        replace(&config, "PermitRootLogin yes\n");
        let events = poll_until_events(&fim);
        assert_eq!(kinds(&events), vec![("file_changed", "sshd_config".into())]);
        assert!(woken(&wake), "a change found by inotify wakes the run loop");
        let before = events[0].fields.before.as_ref().unwrap();
        let after = events[0].fields.after.as_ref().unwrap();
        assert_eq!(
            before.sha256.as_deref(),
            Some(hex::encode(Sha256::digest(b"PermitRootLogin no\n")).as_str())
        );
        assert_ne!(before.sha256, after.sha256);

        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o666)).unwrap();
        let events = poll_until_events(&fim);
        assert_eq!(
            kinds(&events),
            vec![("file_mode_changed", "sshd_config".into())]
        );
        assert_eq!(events[0].fields.after.as_ref().unwrap().mode & 0o777, 0o666);

        replace(
            &drop_in.join("90-backdoor"),
            "eve ALL=(ALL) NOPASSWD: ALL\n",
        );
        let events = poll_until_events(&fim);
        assert_eq!(kinds(&events), vec![("file_created", "90-backdoor".into())]);
        assert!(events[0].fields.before.is_none());

        std::fs::remove_file(&config).unwrap();
        let events = poll_until_events(&fim);
        assert_eq!(kinds(&events), vec![("file_deleted", "sshd_config".into())]);
        assert!(events[0].fields.after.is_none());
    }

    #[test]
    fn reading_the_watched_files_does_not_trigger_rescans_of_its_own() {
        // Regression: inotify reports our own reads as accesses; reacting to
        // them made every rescan trigger the next one, forever.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("crontab");
        std::fs::write(&file, "* * * * * root true\n").unwrap();
        let fim = Fim::new(vec![file.clone()], None, Duration::from_secs(3600), None);
        // One real change starts it; then nothing else happens.
        replace(&file, "* * * * * root false\n");
        std::thread::sleep(Duration::from_millis(500));
        let rescans = fim.stats.rescans.load(Ordering::Relaxed);
        assert!(rescans < 10, "{rescans} rescans after one change");
        assert_eq!(fim.poll().0.len(), 1);
    }

    #[test]
    fn shadow_changes_report_user_names_only() {
        let dir = tempfile::tempdir().unwrap();
        let shadow = dir.path().join("shadow");
        let old = "root:$6$salt$oldhash:19000:0:99999:7:::\nbob:$6$s$bobhash:19000:0:99999:7:::\n";
        std::fs::write(&shadow, old).unwrap();
        let fim = Fim::new(vec![shadow.clone()], None, Duration::ZERO, None);
        let (_, baseline) = fim.poll();
        let new = "root:$6$salt$NEWHASH:19001:0:99999:7:::\nbob:$6$s$bobhash:19000:0:99999:7:::\neve:$6$e$evehash:19001:0:99999:7:::\n";
        replace(&shadow, new);
        let (events, _) = fim.poll();
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(event.kind, EventKind::FileChanged);
        assert_eq!(
            event.fields.users_changed,
            vec!["eve".to_string(), "root".to_string()]
        );
        assert_eq!(event.fields.before.as_ref().unwrap().sha256, None);
        assert_eq!(event.fields.after.as_ref().unwrap().sha256, None);
        let json = serde_json::to_string(&events).unwrap();
        for secret in ["oldhash", "NEWHASH", "evehash", "$6$"] {
            assert!(!json.contains(secret), "{json}");
        }
        let persisted = serde_json::to_string(&baseline).unwrap();
        for secret in ["oldhash", "bobhash", "$6$"] {
            assert!(!persisted.contains(secret), "{persisted}");
        }
    }

    #[test]
    fn a_restart_reports_what_changed_while_the_agent_was_down() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        std::fs::write(&passwd, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
        let (_, committed) = Fim::new(vec![passwd.clone()], None, Duration::ZERO, None).poll();
        std::fs::write(
            &passwd,
            "root:x:0:0:root:/root:/bin/bash\ntoor:x:0:0::/root:/bin/sh\n",
        )
        .unwrap();
        let fim = Fim::new(vec![passwd.clone()], Some(committed), Duration::ZERO, None);
        let (events, _) = fim.poll();
        assert_eq!(kinds(&events), vec![("file_changed", "passwd".into())]);
        assert_eq!(events[0].fields.users_changed, vec!["toor".to_string()]);
        assert!(events[0].fields.after.as_ref().unwrap().sha256.is_some());
    }

    #[test]
    fn a_fifo_among_watched_files_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("cron.d-fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let records = scan(&[dir.path().to_path_buf()], "salt", &FimStats::default());
        assert!(records.is_empty());
    }
}
