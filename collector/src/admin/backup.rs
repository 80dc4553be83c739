//! `backup`: copies of the incident store and, optionally, the raw events.

use std::path::Path;

use crate::config::Config;
use crate::incident::store::{IncidentStore, backup_file};

/// Copies the incident store to `file` and, when given, `collector.db` (the
/// security events) to `events`, with SQLite's online backup while the
/// collector runs; neither file may exist. Audited as `store.backed_up`.
pub fn run(config: &Config, file: &Path, events: Option<&Path>) -> anyhow::Result<()> {
    for target in std::iter::once(file).chain(events) {
        if target.exists() {
            anyhow::bail!("{} exists; give a new file name", target.display());
        }
    }
    let store = IncidentStore::open_with(&config.data_dir, &config.incidents)?;
    store.backup(file)?;
    println!("incident store copied to {}", file.display());
    if let Some(events) = events {
        backup_file(&config.data_dir.join("collector.db"), events)?;
        println!("security events copied to {}", events.display());
    }
    super::record(
        &config.data_dir,
        "store.backed_up",
        &file.display().to_string(),
        "",
    );
    Ok(())
}
