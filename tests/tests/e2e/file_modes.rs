//! Owner-only files on both daemons (issue 21, item 8): started with the
//! usual umask 022, the collector's data dir and the agent's state dir are
//! 0700 and every database (with its WAL and SHM files), key and `backup`
//! output in them is 0600; a data dir an older version left readable is
//! tightened at start.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use countywatch_e2e::process::add_user;
use countywatch_e2e::{Agent, Collector};

use crate::incidents::collector_cli;

/// Every path under `dir` (and `dir` itself) whose mode gives anything to
/// group or others, with its mode.
fn readable_by_others(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        if metadata.file_type().is_symlink() {
            continue;
        }
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            found.push(format!("{} {mode:o}", path.display()));
        }
        if metadata.is_dir() {
            pending.extend(
                std::fs::read_dir(&path)
                    .unwrap()
                    .map(|entry| entry.unwrap().path()),
            );
        }
    }
    found
}

/// The names of the files in `dir`, to show that the check saw them.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn with_umask_022_every_database_wal_backup_and_state_dir_is_owner_only() {
    // The usual umask, as a service started by hand would inherit it (the
    // daemons inherit it from this test process).
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    // A data dir an older version left open to everyone.
    std::fs::create_dir(&data_dir).unwrap();
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(data_dir.join("old-notes.db"), "x").unwrap();
    std::fs::set_permissions(
        data_dir.join("old-notes.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let collector = Collector::start_in(dir, &data_dir, None, &[]);
    let agent = Agent::start_for("modes-host", &collector);
    assert!(
        collector
            .wait_for_series(
                "countywatch_agent_up{job=\"countywatch\",instance=\"modes-host\"}",
                Duration::from_secs(30)
            )
            .is_some()
    );
    add_user(&data_dir, "admin1", "admin", "admin-password-1");
    let backups = tempfile::tempdir().unwrap();
    let copy = backups.path().join("incidents-backup.db");
    let events = backups.path().join("events-backup.db");
    let output = collector_cli(
        &data_dir,
        &[
            "backup",
            "--events",
            events.to_str().unwrap(),
            copy.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{output:?}");

    // While both run, with their WAL and SHM files open.
    let collector_files = names(&data_dir);
    for expected in [
        "collector.db",
        "collector.db-wal",
        "incidents.db",
        "incidents.db-wal",
        "incidents.db-shm",
        "audit-signing.pk8",
    ] {
        assert!(
            collector_files.iter().any(|name| name == expected),
            "{collector_files:?}"
        );
    }
    let agent_files = names(&agent.state_dir);
    assert!(
        agent_files.iter().any(|name| name == "spool.db"),
        "{agent_files:?}"
    );
    let open = [
        readable_by_others(&data_dir),
        readable_by_others(&agent.state_dir),
        readable_by_others(backups.path())
            .into_iter()
            .filter(|path| !path.starts_with(&format!("{} ", backups.path().display())))
            .collect(),
    ]
    .concat();
    assert!(open.is_empty(), "readable by others: {open:#?}");
}
